/* /v1/runs: one-shot runs, local (runner.c) or through the Redis queue. */
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "daemon.h"
#include "response.h"
#include "run_stream.h"
#include "runner.h"
#include "util/clock.h"
#include "util/error.h"
#include "util/json.h"
#include "util/log.h"
#include "util/proc.h"

static const char *const states[] = {"queued",    "running",     "finished",
                                     "cancelled", "interrupted", NULL};

/* The run as stored, or as it ended while the store refused to record it
 * (pending.c): the answer of GET, and of a synchronous POST. */
static void answer_run(struct resp *r, int status, const char *id, const char *tenant)
{
    hull_error e = NULL;
    json_object *o = hull_run_get(hulld.store, id, tenant, &e);
    if (o == NULL) {
        resp_store_error(r, &e);
        return;
    }
    json_object *p = pending_result(id);
    if (p) {
        json_object_object_add(o, "state", json_object_get(hj_get(p, "state")));
        /* A cancel or an interruption waits without a result: only its state. */
        const char *kept = json_object_get_string(hj_get(p, "result"));
        cleanup_json json_object *res = kept ? json_tokener_parse(kept) : NULL;
        if (json_object_is_type(res, json_type_object)) {
            json_object_object_foreach(res, k, v)
            {
                if (strcmp(k, "id") != 0 && strcmp(k, "state") != 0)
                    json_object_object_add(o, k, json_object_get(v));
            }
        }
        json_object_put(p);
    }
    snprintf(r->target, sizeof(r->target), "%s", id);
    resp_json(r, status, o);
}

/* A synchronous run that hulld itself recorded finished: the answer is
 * the row as GET shows it (id, state, times, then the result's fields),
 * made from what is in hand rather than read back. false: ask the store. */
static bool answer_in_hand(struct resp *r, const struct run_job *j)
{
    const char *res = j->result;
    if (!j->recorded || res == NULL || res[0] != '{')
        return false;
    const char *rest = res + 1;
    while (*rest == ' ')
        rest++;
    char *text = NULL;
    int n = asprintf(&text,
                     "{\"id\":\"%s\",\"state\":\"finished\",\"created\":\"%s\",\"started\":"
                     "\"%s\",\"finished\":\"%s\"%s%s\n",
                     j->id, j->created_at, j->started_at, j->finished_at, *rest == '}' ? "" : ",",
                     rest);
    if (n < 0)
        return false;
    r->status = 200;
    r->raw = text;
    r->raw_len = (size_t)n;
    r->content_type = "application/json";
    snprintf(r->target, sizeof(r->target), "%s", j->id);
    return true;
}

/* A Redis error as the answer: the client's own mistake is 400, anything
 * else means the queue cannot be reached now (503). */
static void resp_queue_error(struct resp *r, hull_error *err)
{
    int code = hull_error_code(*err);
    if (code == E2BIG || code == EINVAL) {
        resp_from_error(r, err);
        return;
    }
    hull_log(HULL_LOG_ERROR, "queue: %s", hull_error_msg(*err));
    resp_error(r, 503, "queue_unavailable", NULL, "%s", hull_error_msg(*err));
    r->retry_after = 1;
    hull_error_free(err);
}

/* Split "async" and "queue" off the request; the rest is the policy. */
static int take_flag(json_object *doc, const char *key, bool *out, struct resp *r)
{
    json_object *v = NULL;
    *out = false;
    if (!json_object_object_get_ex(doc, key, &v))
        return 0;
    if (v && !json_object_is_type(v, json_type_boolean)) {
        resp_error(r, 400, "invalid_request", key, "%s: must be true or false", key);
        return -1;
    }
    *out = v && json_object_get_boolean(v);
    json_object_object_del(doc, key);
    return 0;
}

static void submit_queue(struct resp *r, const struct caller *c, json_object *doc, const char *id)
{
    if (hulld.o->redis_url == NULL) {
        resp_error(r, 501, "not_implemented", "queue", "queue: hulld was started without --redis");
        return;
    }
    /* The tenant's quota holds for queued runs too: each is counted until
     * its end is seen (its result read), as hulld cannot see Redis's. */
    char *job = NULL;
    hull_error e = NULL;
    unsigned n = 0;
    if (hull_run_count_queued(hulld.store, c->tok.tenant, &n, &e) < 0) {
        resp_store_error(r, &e);
        return;
    }
    if (n >= hulld.o->tenant_runs) {
        resp_error(r, 429, "quota_exceeded", NULL,
                   "tenant %s has %u queued runs not seen to end (their results unread), its "
                   "quota (--tenant-runs)",
                   c->tok.tenant, n);
        r->retry_after = 1;
        return;
    }
    json_object_object_add(doc, "tenant", json_object_new_string(c->tok.tenant));
    json_object_object_add(doc, "run_id", json_object_new_string(id));
    if (hull_queue_submit(hulld.o->redis_url, hj_to_string(doc), &job, &e) < 0) {
        resp_queue_error(r, &e);
        return;
    }
    if (hull_run_insert(hulld.store, id, c->tok.tenant, "queued", job, NULL, &e) < 0) {
        /* Not recorded: taken back out of the queue, so it does not run
         * unseen; if even that fails, its result is never looked at. */
        hull_error ce = NULL;
        if (hull_queue_cancel(hulld.o->redis_url, job, &ce) < 0) {
            hull_log(HULL_LOG_ERROR, "run %s: queue job %s left queued: %s", id, job,
                     hull_error_msg(ce));
            hull_error_free(&ce);
        }
        free(job);
        resp_store_error(r, &e);
        return;
    }
    free(job);
    json_object *o = json_object_new_object();
    json_object_object_add(o, "id", json_object_new_string(id));
    json_object_object_add(o, "state", json_object_new_string("queued"));
    json_object_object_add(o, "queue", json_object_new_boolean(1));
    snprintf(r->target, sizeof(r->target), "%s", id);
    resp_json(r, 202, o);
}

static void post_run(const struct request *rq, struct resp *r)
{
    const struct caller *c = rq->caller;
    hull_error e = NULL;
    cleanup_json json_object *doc = NULL;
    if (request_doc(rq, false, &doc, r) < 0)
        return;
    bool async, queue;
    if (request_fields(doc, &endpoint_run, r) < 0 || take_flag(doc, "async", &async, r) < 0 ||
        take_flag(doc, "queue", &queue, r) < 0)
        return;
    if (queue && hj_get(doc, "image")) {
        /* A queue worker may be another host, with another image store. */
        resp_error(r, 400, "invalid_request", "image",
                   "image: not with \"queue\": a queue worker has no access to hulld's images");
        return;
    }
    /* The image is in use from here: a DELETE of it is a 409 until the
     * run is over, not a run that fails to start. */
    cleanup_close int image_hold = -1;
    if (request_image(doc, &image_hold, r) < 0)
        return;
    const char *text = hj_to_string(doc);
    if (policy_check(text, r) < 0 || request_grants(c, doc, r) < 0)
        return;
    char id[40];
    daemon_new_id(id, sizeof(id), 'r');
    /* Streamed (Accept: application/x-ndjson): output as it comes. */
    cleanup_run_stream struct run_stream *rs = NULL;
    if (run_stream_wanted(rq) && (async || queue)) {
        resp_error(r, 400, "invalid_request", async ? "async" : "queue",
                   "%s: a streamed run (Accept: application/x-ndjson) is answered as it runs",
                   async ? "async" : "queue");
        return;
    }
    if (run_stream_wanted(rq) && (rs = run_stream_new(rq, id, r)) == NULL)
        return;
    if (queue) {
        submit_queue(r, c, doc, id);
        return;
    }
    char *req = strdup(text);
    struct run_job *j = NULL;
    switch (rs ? runner_submit_stream(id, c->tok.tenant, req, run_stream_worker_end(rs), &j, &e)
               : runner_submit(id, c->tok.tenant, req, !async, &j, &e)) {
    case SUBMIT_OK:
        if (image_hold >= 0)
            runner_hold_image(j, hull_steal_fd(&image_hold));
        break;
    case SUBMIT_QUEUE_FULL:
        resp_error(r, 429, "queue_full", NULL, "every run slot is busy and the queue is full");
        r->retry_after = 1;
        return;
    case SUBMIT_QUOTA:
        resp_error(r, 429, "quota_exceeded", NULL,
                   "tenant %s has %u runs queued or running, its quota", c->tok.tenant,
                   hulld.o->tenant_runs);
        r->retry_after = 1;
        return;
    case SUBMIT_DRAINING:
        resp_shutting_down(r, "hulld is shutting down");
        return;
    case SUBMIT_ERROR:
        resp_store_error(r, &e);
        return;
    }
    snprintf(r->target, sizeof(r->target), "%s", id);
    if (rs) {
        run_stream_answer(rs, j, r);
        rs = NULL; /* the answer's now */
        return;
    }
    if (async) {
        job_release(j);
        json_object *o = json_object_new_object();
        json_object_object_add(o, "id", json_object_new_string(id));
        json_object_object_add(o, "state", json_object_new_string("queued"));
        resp_json(r, 202, o);
        return;
    }
    /* Run on this thread: answered from the result in hand, its end
     * recorded once the answer is sent (readers of runs wait for that). */
    bool deferred = job_wait_answer_first(j);
    if (j->error) {
        resp_store_error(r, &j->error);
        job_release(j);
        return;
    }
    /* What the library call took, so clients can tell the API's share
     * (bench/api_load.py does). */
    snprintf(r->timing, sizeof(r->timing), "run;dur=%.3f", j->lib_ms);
    if (deferred && answer_in_hand(r, j)) {
        r->after = runner_record_deferred;
        r->after_arg = j;
        return;
    }
    if (deferred) {
        runner_record_deferred(j); /* releases j */
        answer_run(r, 200, id, NULL);
        return;
    }
    if (!answer_in_hand(r, j))
        answer_run(r, 200, id, NULL);
    job_release(j);
}

/* A result from Redis, which any client of that Redis can write: an object
 * with a verdict, without the fields the row itself answers (id, state,
 * times, tenant), or an internal_error saying it was not one. Takes res. */
static char *queue_result_checked(char *res)
{
    cleanup_json json_object *o = res ? json_tokener_parse(res) : NULL;
    free(res);
    json_object *v = hj_get(o, "verdict");
    if (!json_object_is_type(o, json_type_object) || !json_object_is_type(v, json_type_string))
        return run_failed_result("the queue's result for this run is not a run result");
    static const char *const row_fields[] = {"id",       "state",  "created", "started",
                                             "finished", "tenant", "queue"};
    for (size_t i = 0; i < sizeof(row_fields) / sizeof(row_fields[0]); i++)
        json_object_object_del(o, row_fields[i]);
    return strdup(json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN));
}

/* A run in the Redis queue: ask for its result, record it once. -1 with
 * r filled when the queue cannot be asked. */
static int poll_queue(const char *id, const struct hull_run_row *row, struct resp *r)
{
    char *res = NULL;
    hull_error e = NULL;
    if (hulld.o->redis_url == NULL) {
        resp_error(r, 503, "queue_unavailable", NULL,
                   "run '%s' is in the Redis queue, but hulld was started without --redis", id);
        return -1;
    }
    if (hull_queue_result(hulld.o->redis_url, row->queue_job, &res, &e) < 0) {
        int code = hull_error_code(e);
        if (code != ENOENT && code != ECANCELED) {
            resp_queue_error(r, &e);
            return -1;
        }
        /* Settled in Redis for good: gone (its result outlived --result-ttl,
         * or someone removed it) or cancelled there. The row says so, rather
         * than "queued" behind a 503 for ever. */
        hull_log(HULL_LOG_INFO, "run %s: %s", id, hull_error_msg(e));
        hull_error_free(&e);
        static const char *const from[] = {"queued", NULL};
        if (hull_run_transition(hulld.store, id, from, code == ENOENT ? "interrupted" : "cancelled",
                                &e) < 0) {
            resp_store_error(r, &e);
            return -1;
        }
        return 0;
    }
    if (res)
        res = queue_result_checked(res);
    if (res && hull_run_finish(hulld.store, id, res, NULL, &e) < 0)
        pending_finish(id, res, NULL, &e);
    free(res);
    return 0;
}

static void get_run(const struct request *rq, const char *id, struct resp *r)
{
    struct hull_run_row row;
    hull_error e = NULL;
    runner_wait_recorded(id);
    if (hull_run_row(hulld.store, id, &row, &e) < 0) {
        if (hull_error_code(e) == ENOENT)
            resp_error(r, 404, "not_found", NULL, "run '%s' not found", id);
        else
            resp_store_error(r, &e);
        hull_error_free(&e); /* ENOENT: the 404 says it; a store fault was freed above */
        return;
    }
    if (row.queue_job[0] && strcmp(row.state, "queued") == 0 &&
        (rq->caller->tenant == NULL || strcmp(row.tenant, rq->caller->tenant) == 0) &&
        poll_queue(id, &row, r) < 0)
        return;
    answer_run(r, 200, id, rq->caller->tenant);
}

static void list_runs(const struct request *rq, struct resp *r)
{
    const char *state = request_query(rq, "state");
    const char *lim = request_query(rq, "limit");
    if (state) {
        bool ok = false;
        for (const char *const *s = states; *s; s++)
            ok = ok || strcmp(*s, state) == 0;
        if (!ok) {
            resp_error(r, 400, "invalid_request", "state",
                       "state: '%s' is not queued, running, finished, cancelled or interrupted",
                       state);
            return;
        }
    }
    long limit = 100;
    if (lim) {
        char *end;
        limit = strtol(lim, &end, 10);
        if (*end || end == lim || limit < 1 || limit > 1000) {
            resp_error(r, 400, "invalid_request", "limit", "limit: must be 1 to 1000");
            return;
        }
    }
    hull_error e = NULL;
    runner_wait_recorded(NULL);
    json_object *o = hull_run_list(hulld.store, rq->caller->tenant, state, (int)limit, &e);
    if (o == NULL)
        resp_store_error(r, &e);
    else
        resp_json(r, 200, o);
}

static void delete_run(const struct request *rq, const char *id, struct resp *r)
{
    struct hull_run_row row;
    hull_error e = NULL;
    snprintf(r->target, sizeof(r->target), "%s", id);
    runner_wait_recorded(id);
    if (hull_run_row(hulld.store, id, &row, &e) < 0 && hull_error_code(e) != ENOENT) {
        resp_store_error(r, &e);
        return;
    }
    if (e || (rq->caller->tenant && strcmp(row.tenant, rq->caller->tenant) != 0)) {
        hull_error_free(&e); /* only ENOENT gets here: the 404 says it */
        resp_error(r, 404, "not_found", NULL, "run '%s' not found", id);
        return;
    }
    static const char *const from[] = {"queued", NULL};
    bool was_queued = false;
    struct run_job *j = runner_cancel(id, &was_queued);
    if (j) {
        int rc = 0;
        if (was_queued)
            rc = hull_run_transition(hulld.store, id, from, "cancelled", &e);
        else
            job_wait(j); /* the worker records the "killed" result */
        job_release(j);
        if (rc < 0) {
            /* Off the queue already: recorded as soon as the store can. */
            resp_error(r, 503, "store_unavailable", NULL,
                       "run '%s' is cancelled, but not recorded yet: %s", id, hull_error_msg(e));
            r->retry_after = 1;
            pending_transition(id, from, "cancelled", &e);
            return;
        }
    } else if (strcmp(row.state, "queued") == 0 && row.queue_job[0]) {
        /* In the Redis queue: taken out if no worker has it yet; else it
         * may still run, its result then ignored (the run already ended
         * as cancelled). A queue that cannot be asked cancels nothing. */
        if (hulld.o->redis_url == NULL) {
            resp_error(r, 503, "queue_unavailable", NULL,
                       "run '%s' is in the Redis queue, but hulld was started without --redis", id);
            return;
        }
        int taken = hull_queue_cancel(hulld.o->redis_url, row.queue_job, &e);
        if (taken < 0) {
            resp_queue_error(r, &e);
            return;
        }
        if (taken == 0) {
            /* A worker has it, running or done. If it ended, its end is
             * recorded as any queued run's and there is nothing to cancel;
             * else it was marked to stop, which its worker does at its next
             * heartbeat: the run is cancelled, its result then ignored. */
            if (poll_queue(id, &row, r) < 0)
                return;
            struct hull_run_row now;
            bool over =
                hull_run_row(hulld.store, id, &now, &e) == 0 && strcmp(now.state, "queued") != 0;
            hull_error_free(&e);
            if (over) {
                resp_error(r, 409, "conflict", NULL, "run '%s' is over: nothing to cancel", id);
                return;
            }
        }
        if (hull_run_transition(hulld.store, id, from, "cancelled", &e) < 0) {
            resp_error(r, 503, "store_unavailable", NULL,
                       "run '%s' is cancelled, but not recorded yet: %s", id, hull_error_msg(e));
            r->retry_after = 1;
            pending_transition(id, from, "cancelled", &e);
            return;
        }
    } else {
        resp_error(r, 409, "conflict", NULL, "run '%s' is %s: nothing to cancel", id, row.state);
        return;
    }
    answer_run(r, 200, id, NULL);
}

void api_runs(const struct request *rq, const char *id, struct resp *r)
{
    bool get = strcmp(rq->method, "GET") == 0;
    if (id == NULL) {
        if (get)
            list_runs(rq, r);
        else
            post_run(rq, r);
    } else if (get) {
        get_run(rq, id, r);
    } else {
        delete_run(rq, id, r);
    }
}

/* ---- start-up ---- */

/* A worker of the previous hulld still runs this run: it will record the
 * result; if it dies first, the run was interrupted. */
static void *await_orphan(void *arg)
{
    struct hull_run_row *row = arg;
    int pfd = (int)syscall(SYS_pidfd_open, row->worker_pid, 0);
    if (pfd >= 0) {
        if (hull_pid_alive(row->worker_pid, row->worker_start)) {
            struct pollfd p = {.fd = pfd, .events = POLLIN};
            poll(&p, 1, -1);
        }
        close(pfd);
    } else {
        while (hull_pid_alive(row->worker_pid, row->worker_start))
            usleep(100000);
    }
    static const char *const from[] = {"running", "queued", NULL};
    hull_error e = NULL;
    if (hull_run_transition(hulld.store, row->id, from, "interrupted", &e) < 0)
        pending_transition(row->id, from, "interrupted", &e);
    free(row);
    return NULL;
}

void runs_recover(void)
{
    struct hull_run_row *rows = NULL;
    size_t n = 0;
    hull_error e = NULL;
    static const char *const from_q[] = {"queued", NULL};
    static const char *const from_r[] = {"running", NULL};
    /* Local runs still queued died with the old hulld's memory. */
    if (hull_run_rows_in_state(hulld.store, "queued", &rows, &n, &e) == 0) {
        for (size_t i = 0; i < n; i++)
            if (rows[i].queue_job[0] == '\0' &&
                hull_run_transition(hulld.store, rows[i].id, from_q, "interrupted", &e) < 0)
                pending_transition(rows[i].id, from_q, "interrupted", &e);
        free(rows);
    } else {
        hull_log(HULL_LOG_ERROR, "start-up: %s", hull_error_msg(e));
        hull_error_free(&e);
    }
    if (hull_run_rows_in_state(hulld.store, "running", &rows, &n, &e) == 0) {
        for (size_t i = 0; i < n; i++) {
            if (rows[i].worker_pid > 0 &&
                hull_pid_alive(rows[i].worker_pid, rows[i].worker_start)) {
                struct hull_run_row *copy = malloc(sizeof(*copy));
                pthread_t t;
                if (copy) {
                    *copy = rows[i];
                    if (pthread_create(&t, NULL, await_orphan, copy) == 0) {
                        pthread_detach(t);
                        hull_log(HULL_LOG_INFO, "run %s: its worker %d still runs it", rows[i].id,
                                 (int)rows[i].worker_pid);
                        continue;
                    }
                    free(copy);
                }
            }
            if (hull_run_transition(hulld.store, rows[i].id, from_r, "interrupted", &e) < 0)
                pending_transition(rows[i].id, from_r, "interrupted", &e);
            else
                hull_log(HULL_LOG_INFO, "run %s: interrupted by hulld's restart", rows[i].id);
        }
        free(rows);
    } else {
        hull_log(HULL_LOG_ERROR, "start-up: %s", hull_error_msg(e));
        hull_error_free(&e);
    }
}
