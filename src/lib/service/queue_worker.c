/* A queue worker: claim jobs from Redis, run each in a sandbox, store its
 * result, acknowledge; heartbeat; reap the jobs of workers that died.
 *
 * One process, one thread: the loop claims a job (atomically moving its id
 * into this worker's processing list), checks its request, and hands it to
 * a slot of the runner (o->runner: persistent single-threaded processes,
 * the same hulld uses for its HTTP runs; hull_sandbox_run clones the
 * sandbox's init with a raw clone(2), only sound in a single-threaded
 * process, and a crash in one costs one job, not the worker). While a
 * claim blocks, the loop also watches the runners: a result is stored and
 * acknowledged over a second connection at once.
 *
 * Dying is part of the protocol. The runners have a parent-death signal,
 * and the sandbox's init has one on its runner, so SIGKILL of the worker
 * takes its runs down with it; what they leave on the host is collected by
 * hull_sandbox_cleanup on this machine's next reaper pass, and their jobs
 * by any worker's reaper once the heartbeat has expired. A runner that dies
 * under a job releases it (an attempt counted). */
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "net/net.h"
#include "service/queue.h"
#include "service/store.h"
#include "util/clock.h"
#include "util/error.h"
#include "util/log.h"

#define MS               1000000ull
#define MAX_CONCURRENCY  256
#define RECONNECT_MAX_MS 2000
/* A result keeps being offered to Redis this long. */
#define STORE_PATIENCE_MS 60000

struct slot {
    int fd;                         /* readable when its runner answered, -1 when none runs */
    pid_t pid;                      /* the runner, for the log */
    char id[HULL_QUEUE_ID_LEN + 1]; /* the job, "" when the slot is free */
    char why[1024];                 /* a run that could not start (fail) or a dead runner */
    bool release;                   /* why: the runner died: release the job */
    bool stopping;                  /* its job was asked to stop, its runner told */
    char *result;                   /* a result not stored yet */
    uint64_t give_up;               /* stop offering it then */
};

struct worker {
    struct hull_queue_worker_opts o; /* with defaults filled in */
    char name[256];
    char proc_key[HULL_QUEUE_KEY_MAX], alive_key[HULL_QUEUE_KEY_MAX];
    char ttl_ms[24], block_s[24];
    redisContext *c;
    redisContext *rc; /* results and failures, while c may be blocked in a claim */
    struct slot *slots;
    unsigned busy; /* slots with an id */
    uint64_t next_heartbeat, next_reap, retry_at;
    uint64_t next_stop_check; /* for jobs asked to stop (stop_marked) */
    unsigned backoff_ms;
    bool brpoplpush;  /* Redis older than 6.2: no BLMOVE */
    bool reconnected; /* look for claims whose reply was lost */
};

static bool stopping(const struct worker *w)
{
    return w->o.stop && *w->o.stop;
}

static void wait_event(struct worker *w, uint64_t until);

/* After a failed command: forget a broken connection (the loop reconnects
 * with backoff); after an error reply, pause so that a Redis that keeps
 * refusing (wrong key type, out of memory) is not hammered. */
static void check_conn(struct worker *w, hull_error *e)
{
    hull_warn("queue worker %s: %s", w->name, hull_error_msg(*e));
    hull_error_free(e);
    if (hull_redis_broken(w->c)) {
        hull_redis_close(w->c);
        w->c = NULL;
        w->retry_at = hull_monotonic_ns();
    } else {
        wait_event(w, hull_monotonic_ns() + 200 * MS);
    }
}

static bool connected(struct worker *w)
{
    if (w->c)
        return true;
    uint64_t now = hull_monotonic_ns();
    if (now < w->retry_at)
        return false;
    hull_error e = NULL;
    /* Replies may take as long as the blocking claim, plus slack. */
    w->c = hull_redis_connect(w->o.redis_url, w->o.heartbeat_ms + 5000, &e);
    if (w->c == NULL) {
        if (w->backoff_ms == 0 || w->backoff_ms >= RECONNECT_MAX_MS)
            hull_warn("queue worker %s: %s (retrying)", w->name, hull_error_msg(e));
        hull_error_free(&e);
        w->backoff_ms = w->backoff_ms ? w->backoff_ms * 2 : 100;
        if (w->backoff_ms > RECONNECT_MAX_MS)
            w->backoff_ms = RECONNECT_MAX_MS;
        w->retry_at = now + w->backoff_ms * MS;
        return false;
    }
    w->backoff_ms = 0;
    w->next_heartbeat = 0;
    w->reconnected = true;
    return true;
}

/* The heartbeat proves this worker alive for 3 periods; the set membership
 * lets reapers find its processing list. Both precede every claim. */
static int append_heartbeat(struct worker *w, hull_error *err)
{
    char now[64];
    hull_rfc3339_now(now, sizeof(now));
    if (hull_redis_append(w->c, err, "SET", w->alive_key, now, "PX", w->ttl_ms, NULL) < 0 ||
        hull_redis_append(w->c, err, "SADD", HULL_QUEUE_WORKERS, w->name, NULL) < 0)
        return -1;
    w->next_heartbeat = hull_monotonic_ns() + w->o.heartbeat_ms * MS;
    return 0;
}

static int read_replies(struct worker *w, int n, redisReply **last, hull_error *err)
{
    for (int i = 0; i < n; i++) {
        redisReply *r = hull_redis_reply(w->c, err);
        if (r == NULL) {
            /* Drain the rest of the pipeline, or the next command reads them. */
            for (int k = i + 1; k < n && !hull_redis_broken(w->c); k++) {
                hull_error e2 = NULL;
                redisReply *x = hull_redis_reply(w->c, &e2);
                hull_error_free(&e2);
                if (x)
                    freeReplyObject(x);
            }
            return -1;
        }
        if (i == n - 1 && last)
            *last = r;
        else
            freeReplyObject(r);
    }
    return 0;
}

/* The replies of n commands already sent, after a failure: dropped. */
static void drain(struct worker *w, unsigned n)
{
    hull_error e = NULL;
    if (n && read_replies(w, (int)n, NULL, &e) < 0)
        hull_error_free(&e);
}

/* Once a heartbeat period: the running jobs someone asked to stop
 * (hull_queue_cancel marks them), killed through their runners. */
static int stop_marked(struct worker *w, hull_error *err)
{
    uint64_t now = hull_monotonic_ns();
    if (w->o.runner->cancel == NULL || w->busy == 0 || now < w->next_stop_check)
        return 0;
    w->next_stop_check = now + w->o.heartbeat_ms * MS;
    unsigned asked[MAX_CONCURRENCY], n = 0;
    for (unsigned i = 0; i < w->o.concurrency; i++) {
        struct slot *s = &w->slots[i];
        if (s->id[0] == '\0' || s->stopping || s->fd < 0)
            continue;
        char job[HULL_QUEUE_KEY_MAX];
        if (hull_redis_append(w->c, err, "HGET", hull_queue_key(job, "job", s->id), "stop", NULL) <
            0) {
            drain(w, n);
            return -1;
        }
        asked[n++] = i;
    }
    for (unsigned k = 0; k < n; k++) {
        redisReply *r = NULL;
        if (read_replies(w, 1, &r, err) < 0) {
            drain(w, n - k - 1);
            return -1;
        }
        const char *v = hull_redis_str(r);
        struct slot *s = &w->slots[asked[k]];
        if (v && strcmp(v, "1") == 0) {
            hull_log(HULL_LOG_INFO, "queue worker %s: job %s: asked to stop: killed", w->name,
                     s->id);
            w->o.runner->cancel(w->o.runner->ctx, asked[k]);
            s->stopping = true;
        }
        freeReplyObject(r);
    }
    return 0;
}

static void heartbeat(struct worker *w)
{
    hull_error e = NULL;
    if (append_heartbeat(w, &e) < 0 || read_replies(w, 2, NULL, &e) < 0 || stop_marked(w, &e) < 0)
        check_conn(w, &e);
}

/* Take back the jobs of every registered worker whose heartbeat expired,
 * then remove what dead runs left on this machine. */
static void reap_pass(struct worker *w)
{
    w->next_reap = hull_monotonic_ns() + w->o.reap_interval_ms * MS;
    hull_error e = NULL;
    redisReply *m = hull_redis_cmd(w->c, &e, "SMEMBERS", HULL_QUEUE_WORKERS, NULL);
    if (m == NULL) {
        check_conn(w, &e);
        return;
    }
    for (size_t i = 0; m->type == REDIS_REPLY_ARRAY && i < m->elements; i++) {
        const char *other = hull_redis_str(m->element[i]);
        if (other == NULL || strcmp(other, w->name) == 0)
            continue;
        long long n[3] = {0, 0, 0};
        int r = hull_queue_reap(w->c, other, false, w->o.max_attempts, n, &e);
        if (r < 0) {
            /* One member that cannot be reaped (garbage under its keys)
             * must not keep the dead workers after it: only a lost
             * connection ends the pass. */
            if (hull_redis_broken(w->c)) {
                check_conn(w, &e);
                break;
            }
            hull_warn("queue worker %s: reap %s: %s", w->name, other, hull_error_msg(e));
            hull_error_free(&e);
            continue;
        }
        if (r == 1)
            hull_log(HULL_LOG_INFO,
                     "queue worker %s: reaped dead worker %s: %lld requeued, %lld dead-lettered, "
                     "%lld already done",
                     w->name, other, n[0], n[1], n[2]);
    }
    freeReplyObject(m);
    size_t removed = 0;
    if (hull_sandbox_cleanup(&removed, &e) < 0) {
        hull_warn("queue worker %s: %s", w->name, hull_error_msg(e));
        hull_error_free(&e);
    }
    if (removed)
        hull_log(HULL_LOG_INFO, "queue worker %s: removed %zu sandbox(es) left by dead runs",
                 w->name, removed);
}

static struct slot *free_slot(struct worker *w)
{
    for (unsigned i = 0; i < w->o.concurrency; i++)
        if (w->slots[i].id[0] == '\0')
            return &w->slots[i];
    return NULL;
}

/* A job that weakens isolation runs only with the worker's grant. */
static int refused(const struct worker *w, const struct hull_policy *p, hull_error *err)
{
    struct {
        bool asks;
        const char *field, *value;
        unsigned grant;
    } weakening[] = {
        {p->network_host, "network", "host", HULL_ALLOW_HOST_NETWORK},
        {p->isolation == HULL_ISOLATION_PROCESS, "isolation", "process",
         HULL_ALLOW_PROCESS_ISOLATION},
        {false, "network.publish", "beyond 127.0.0.1", HULL_ALLOW_PUBLISH_PUBLIC},
        {false, "network.egress", "an address of the host", HULL_ALLOW_HOST_EGRESS},
    };
    for (size_t i = 0; i < p->n_publish; i++)
        if (hull_publish_public(&p->publish[i]))
            weakening[2].asks = true;
    struct hull_egress eg;
    hull_error e = NULL;
    if (p->egress && hull_egress_parse(p->egress, &eg, &e) == 0)
        weakening[3].asks = hull_egress_host_rule(&eg) >= 0;
    hull_error_free(&e);
    /* hulld refuses "image" with "queue": a worker pulls nothing for a job
     * (a registry of the job's choosing, reached from the worker's host). */
    if (p->image)
        return hull_error_set(err, EPERM,
                              "not allowed: image: a queue job runs on the worker's root, never "
                              "an image it would have to pull");
    for (size_t i = 0; i < sizeof(weakening) / sizeof(weakening[0]); i++)
        if (weakening[i].asks && !(w->o.allow & weakening[i].grant))
            return hull_error_set(err, EPERM,
                                  "not allowed: %s: \"%s\" needs the %s grant, which this "
                                  "worker was not given (hulld --worker --allow %s)",
                                  weakening[i].field, weakening[i].value,
                                  hull_allow_name(weakening[i].grant),
                                  hull_allow_name(weakening[i].grant));
    return 0;
}

/* A job that cannot run (e is why, and is freed) goes to the dead letters. */
static void dead_letter(struct worker *w, const char *id, hull_error *e)
{
    hull_log(HULL_LOG_INFO, "queue worker %s: job %s: %s: dead-lettered", w->name, id,
             hull_error_msg(*e));
    hull_error e2 = NULL;
    if (hull_queue_fail(w->c, w->name, id, hull_error_msg(*e), &e2) < 0)
        check_conn(w, &e2);
    hull_error_free(e);
}

/* A claimed job: check it, then hand it to a runner. */
static void start_job(struct worker *w, const char *id)
{
    hull_error e = NULL;
    cleanup_free char *request = NULL;
    int what = hull_queue_start(w->c, w->name, id, w->o.max_attempts, &request, &e);
    if (what < 0) {
        check_conn(w, &e);
        return; /* still in our processing list: settled when we are reaped or restart */
    }
    if (what != HULL_QUEUE_RUN) {
        hull_log(HULL_LOG_INFO, "queue worker %s: job %s: %s, not run", w->name, id,
                 what == HULL_QUEUE_ALREADY_DONE ? "already has a result" : "dead-lettered");
        return;
    }
    /* Freed before the request it was read from. */
    __attribute__((cleanup(hull_policy_free))) struct hull_policy p;
    hull_policy_init(&p);
    /* hulld's submit holds jobs to this size; one pushed to Redis by anyone
     * else is held to it here, before it is parsed and handed on. */
    if (strlen(request) > HULL_QUEUE_MAX_REQUEST) {
        hull_error_set(&e, E2BIG, "invalid request: more than %u bytes", HULL_QUEUE_MAX_REQUEST);
        dead_letter(w, id, &e);
        return;
    }
    if (hull_policy_from_json(request, strlen(request), &p, &e) < 0) {
        hull_error_prefix(&e, "invalid request");
        dead_letter(w, id, &e);
        return;
    }
    if (refused(w, &p, &e) < 0 || (w->o.check && w->o.check(&p, &e) < 0)) {
        dead_letter(w, id, &e);
        return;
    }
    struct slot *s = free_slot(w);
    if (s == NULL) /* cannot happen: claims wait for a free slot */
        return;
    snprintf(s->id, sizeof(s->id), "%s", id);
    w->busy++;
    s->pid = 0;
    s->fd =
        w->o.runner->start(w->o.runner->ctx, (unsigned)(s - w->slots), id, request, &s->pid, &e);
    if (s->fd < 0) {
        snprintf(s->why, sizeof(s->why), "no runner: %s", hull_error_msg(e));
        hull_error_free(&e);
        s->release = true;
    }
    hull_debug("queue worker %s: job %s: runner %d", w->name, id, (int)s->pid);
}

static bool wait_event_fd(struct worker *w, uint64_t until, int fd);

/* A reply already read off the socket (nothing to wait for on the fd). */
static bool reply_buffered(const redisContext *c)
{
    return c->reader && c->reader->pos < c->reader->len;
}

/* The claim failed: an older server without BLMOVE, or the connection. */
static void claim_failed(struct worker *w, hull_error *e)
{
    if (!w->brpoplpush && *e && strstr(hull_error_msg(*e), "unknown command")) {
        w->brpoplpush = true;
        hull_error_free(e); /* an older server: the next claim uses BRPOPLPUSH */
        return;
    }
    check_conn(w, e);
}

/* Wait (at most until the heartbeat is due) for a job to come, and start
 * it; meanwhile, what the runners answer is stored. */
static void claim(struct worker *w)
{
    hull_error e = NULL;
    redisReply *r = NULL;
    if (append_heartbeat(w, &e) < 0 ||
        (w->brpoplpush ? hull_redis_append(w->c, &e, "BRPOPLPUSH", HULL_QUEUE_JOBS, w->proc_key,
                                           w->block_s, NULL)
                       : hull_redis_append(w->c, &e, "BLMOVE", HULL_QUEUE_JOBS, w->proc_key,
                                           "RIGHT", "LEFT", w->block_s, NULL)) < 0) {
        claim_failed(w, &e);
        return;
    }
    if (read_replies(w, 2, NULL, &e) < 0) {
        /* The claim's own reply is still to come: read and drop it. */
        if (!hull_redis_broken(w->c)) {
            hull_error e2 = NULL;
            redisReply *x = hull_redis_reply(w->c, &e2);
            hull_error_free(&e2);
            if (x)
                freeReplyObject(x);
        }
        check_conn(w, &e);
        return;
    }
    uint64_t until = hull_monotonic_ns() + (w->o.heartbeat_ms + 5000ull) * MS;
    while (!reply_buffered(w->c) && !wait_event_fd(w, until, w->c->fd) &&
           hull_monotonic_ns() < until)
        ;
    if (read_replies(w, 1, &r, &e) < 0) {
        claim_failed(w, &e);
        return;
    }
    const char *id = hull_redis_str(r);
    if (id && hull_queue_id_valid(id)) {
        start_job(w, id);
    } else if (id) {
        /* Not a job id (someone pushed a request itself): dead-letter it so
         * it is seen, rather than dropping it. */
        hull_warn("queue worker %s: '%.64s' in %s is not a job id: dead-lettered", w->name, id,
                  HULL_QUEUE_JOBS);
        redisReply *x = NULL;
        if (hull_redis_append(w->c, &e, "MULTI", NULL) < 0 ||
            hull_redis_append(w->c, &e, "LREM", w->proc_key, "1", id, NULL) < 0 ||
            hull_redis_append(w->c, &e, "RPUSH", HULL_QUEUE_DEAD, id, NULL) < 0 ||
            hull_redis_append(w->c, &e, "EXEC", NULL) < 0 || read_replies(w, 4, &x, &e) < 0)
            check_conn(w, &e);
        if (x)
            freeReplyObject(x);
    }
    freeReplyObject(r);
}

static void slot_clear(struct worker *w, struct slot *s)
{
    free(s->result);
    s->result = NULL;
    s->why[0] = '\0';
    s->release = false;
    s->stopping = false;
    s->id[0] = '\0';
    w->busy--;
}

/* Store a slot's outcome (its result, or why it could not run) over the
 * second connection; false while Redis refuses (tried again later). */
static bool report(struct worker *w, struct slot *s)
{
    hull_error e = NULL;
    if (w->rc == NULL)
        w->rc = hull_redis_connect(w->o.redis_url, 5000, &e);
    int r = -1;
    if (w->rc)
        r = s->result ? hull_queue_finish(w->rc, w->name, s->id, s->result, w->o.result_ttl_s, &e)
                      : hull_queue_fail(w->rc, w->name, s->id, s->why, &e);
    if (r == 0) {
        slot_clear(w, s);
        return true;
    }
    if (w->rc && hull_redis_broken(w->rc)) {
        hull_redis_close(w->rc);
        w->rc = NULL;
    }
    if (hull_monotonic_ns() > s->give_up) {
        /* Back through the attempt count, as a runner that died. */
        hull_warn("queue worker %s: job %s: giving up storing its outcome: %s", w->name, s->id,
                  hull_error_msg(e));
        snprintf(s->why, sizeof(s->why), "its outcome could not be stored: %s", hull_error_msg(e));
        free(s->result);
        s->result = NULL;
        s->release = true;
    }
    hull_error_free(&e);
    return false;
}

static bool unreported(const struct slot *s)
{
    return s->id[0] && s->fd < 0 && !s->release;
}

/* slot's runner answered or died. */
static void collect(struct worker *w, struct slot *s)
{
    char *res = NULL;
    s->why[0] = '\0';
    int r = w->o.runner->collect(w->o.runner->ctx, (unsigned)(s - w->slots), &res, s->why,
                                 sizeof(s->why));
    s->fd = -1;
    if (r < 0) {
        if (s->why[0] == '\0')
            snprintf(s->why, sizeof(s->why), "its runner died");
        s->release = true;
        /* The run's sandbox may be left behind: it is gone before the retry. */
        size_t removed = 0;
        hull_error e = NULL;
        if (hull_sandbox_cleanup(&removed, &e) < 0)
            hull_error_free(&e);
        return;
    }
    s->result = r == 0 ? res : NULL;
    if (r != 0) {
        free(res);
        if (s->why[0] == '\0')
            snprintf(s->why, sizeof(s->why), "cannot run");
    }
    s->give_up = hull_monotonic_ns() + STORE_PATIENCE_MS * MS;
    report(w, s);
}

/* Sleep until a runner answers, fd (>= 0) is readable, a signal comes, or
 * until; collect what the runners answered. True when fd is readable. */
static bool wait_event_fd(struct worker *w, uint64_t until, int fd)
{
    struct pollfd pf[MAX_CONCURRENCY + 1];
    unsigned at[MAX_CONCURRENCY], n = 0;
    bool retry = false;
    for (unsigned i = 0; i < w->o.concurrency; i++) {
        if (w->slots[i].fd >= 0) {
            at[n] = i;
            pf[n++] = (struct pollfd){.fd = w->slots[i].fd, .events = POLLIN};
        }
        retry |= unreported(&w->slots[i]);
    }
    uint64_t now = hull_monotonic_ns();
    if (retry && until > now + 200 * MS)
        until = now + 200 * MS; /* outcomes Redis refused: try again soon */
    unsigned total = n;
    if (fd >= 0)
        pf[total++] = (struct pollfd){.fd = fd, .events = POLLIN};
    int timeout = until > now ? (int)((until - now + MS - 1) / MS) : 0;
    int r = poll(pf, total, timeout);
    for (unsigned k = 0; r > 0 && k < n; k++)
        if (pf[k].revents)
            collect(w, &w->slots[at[k]]);
    for (unsigned i = 0; retry && i < w->o.concurrency; i++)
        if (unreported(&w->slots[i]) && w->slots[i].give_up)
            report(w, &w->slots[i]);
    return fd >= 0 && r > 0 && pf[n].revents != 0;
}

static void wait_event(struct worker *w, uint64_t until)
{
    wait_event_fd(w, until, -1);
}

/* Jobs whose runner failed go back through the attempt count. */
static void release_failed(struct worker *w)
{
    for (unsigned i = 0; i < w->o.concurrency && w->c; i++) {
        struct slot *s = &w->slots[i];
        if (!s->release || s->id[0] == '\0')
            continue;
        hull_error e = NULL;
        if (hull_queue_release(w->c, w->name, s->id, s->why, w->o.max_attempts, &e) < 0) {
            check_conn(w, &e);
            return;
        }
        hull_log(HULL_LOG_INFO, "queue worker %s: job %s released: %s", w->name, s->id, s->why);
        slot_clear(w, s);
    }
}

/* After a lost connection, our processing list may hold jobs no slot
 * knows: a claim whose reply was lost, a start or a dead-lettering that
 * failed half-way. Nobody would ever reap them while we heartbeat, so they
 * go back through the settling rule now. */
static void reclaim_strays(struct worker *w)
{
    hull_error e = NULL;
    redisReply *l = hull_redis_cmd(w->c, &e, "LRANGE", w->proc_key, "0", "-1", NULL);
    if (l == NULL) {
        check_conn(w, &e);
        return;
    }
    w->reconnected = false;
    for (size_t i = 0; l->type == REDIS_REPLY_ARRAY && i < l->elements; i++) {
        const char *id = hull_redis_str(l->element[i]);
        bool held = false;
        for (unsigned k = 0; id && k < w->o.concurrency; k++)
            held |= strcmp(w->slots[k].id, id) == 0;
        if (id == NULL || held)
            continue;
        if (hull_queue_release(w->c, w->name, id, "its worker lost the connection to Redis",
                               w->o.max_attempts, &e) < 0) {
            check_conn(w, &e);
            break;
        }
        hull_log(HULL_LOG_INFO, "queue worker %s: job %s released after reconnecting", w->name, id);
    }
    freeReplyObject(l);
}

static uint64_t min_u64(uint64_t a, uint64_t b)
{
    return a < b ? a : b;
}

static int setup(struct worker *w, const struct hull_queue_worker_opts *o, hull_error *err)
{
    w->o = *o;
    if (w->o.concurrency == 0)
        w->o.concurrency = 1;
    if (w->o.heartbeat_ms == 0)
        w->o.heartbeat_ms = 1000;
    if (w->o.reap_interval_ms == 0)
        w->o.reap_interval_ms = 2 * w->o.heartbeat_ms;
    if (w->o.max_attempts == 0)
        w->o.max_attempts = 3;
    if (w->o.result_ttl_s == 0)
        w->o.result_ttl_s = 3600;
    if (w->o.concurrency > MAX_CONCURRENCY)
        return hull_error_set(err, EINVAL, "concurrency: at most %d", MAX_CONCURRENCY);
    if (w->o.heartbeat_ms < 10 || w->o.heartbeat_ms > 600000)
        return hull_error_set(err, EINVAL, "heartbeat: must be 10 ms to 10 min");
    if (w->o.max_attempts > HULL_QUEUE_MAX_ATTEMPTS_LIMIT)
        return hull_error_set(err, EINVAL, "max attempts: at most %d",
                              HULL_QUEUE_MAX_ATTEMPTS_LIMIT);
    if (o->name) {
        snprintf(w->name, sizeof(w->name), "%s", o->name);
    } else {
        char host[200] = "localhost";
        gethostname(host, sizeof(host) - 1);
        snprintf(w->name, sizeof(w->name), "%s:%d", host, (int)getpid());
    }
    if (strlen(w->name) > 200 || w->name[0] == '\0' || strpbrk(w->name, " \t\n\r{}") != NULL)
        return hull_error_set(err, EINVAL,
                              "worker name '%s': 1-200 characters, no spaces or braces", w->name);
    hull_queue_key(w->proc_key, "processing", w->name);
    hull_queue_key(w->alive_key, "alive", w->name);
    snprintf(w->ttl_ms, sizeof(w->ttl_ms), "%u", 3 * w->o.heartbeat_ms);
    snprintf(w->block_s, sizeof(w->block_s), "%.3f", w->o.heartbeat_ms / 1000.0);
    if (w->o.runner == NULL)
        return hull_error_set(err, EINVAL, "no runner for the jobs");
    w->slots = calloc(w->o.concurrency, sizeof(*w->slots));
    if (w->slots == NULL)
        return hull_error_set(err, ENOMEM, "out of memory");
    for (unsigned i = 0; i < w->o.concurrency; i++)
        w->slots[i].fd = -1;
    return 0;
}

/* Back to the queue with whatever our previous life under this name left
 * claimed, and leave the host clean of runs that died with it. */
static int begin(struct worker *w, hull_error *err)
{
    w->c = hull_redis_connect(w->o.redis_url, w->o.heartbeat_ms + 5000, err);
    if (w->c == NULL)
        return -1;
    size_t removed = 0;
    hull_error e = NULL;
    if (hull_sandbox_cleanup(&removed, &e) < 0) {
        hull_warn("queue worker %s: %s", w->name, hull_error_msg(e));
        hull_error_free(&e);
    }
    long long n[3];
    if (hull_queue_reap(w->c, w->name, true, w->o.max_attempts, n, err) < 0)
        return -1;
    if (n[0] + n[1] + n[2])
        hull_log(HULL_LOG_INFO, "queue worker %s: took back %lld job(s) of a previous run", w->name,
                 n[0] + n[1] + n[2]);
    heartbeat(w);
    w->reconnected = false;
    return 0;
}

/* Deregister: nothing is claimed any more (the force-reap requeues what a
 * failed release left), and the heartbeat goes at once. */
static void end(struct worker *w)
{
    /* The last runs that died may have left something; not for the next
     * worker to find. */
    size_t removed = 0;
    hull_error e0 = NULL;
    if (hull_sandbox_cleanup(&removed, &e0) < 0)
        hull_warn("queue worker %s: %s", w->name, hull_error_msg(e0));
    hull_error_free(&e0);
    if (!connected(w))
        return;
    /* Best effort on the way out: jobs left in our processing list and our
     * liveness key are settled by the next reap (the key also expires). */
    long long n[3];
    hull_error e = NULL;
    if (hull_queue_reap(w->c, w->name, true, w->o.max_attempts, n, &e) < 0)
        hull_debug("queue worker %s: %s", w->name, hull_error_msg(e));
    hull_error_free(&e);
    redisReply *r = hull_redis_cmd(w->c, &e, "DEL", w->alive_key, NULL);
    if (r)
        freeReplyObject(r);
    else
        hull_debug("queue worker %s: %s", w->name, hull_error_msg(e));
    hull_error_free(&e);
}

int hull_queue_worker_run(const struct hull_queue_worker_opts *o, hull_error *err)
{
    struct worker w = {0};
    if (setup(&w, o, err) < 0 || begin(&w, err) < 0) {
        hull_redis_close(w.c);
        free(w.slots);
        return hull_error_prefix(err, "queue worker");
    }
    char shown[512];
    hull_redis_url_shown(o->redis_url, shown, sizeof(shown));
    hull_log(HULL_LOG_INFO, "queue worker %s: taking jobs from %s (%u at a time)", w.name, shown,
             w.o.concurrency);

    while (!(stopping(&w) && w.busy == 0)) {
        if (!connected(&w)) {
            wait_event(&w, w.retry_at);
            continue;
        }
        release_failed(&w);
        if (w.c && w.reconnected)
            reclaim_strays(&w);
        if (w.c == NULL)
            continue;
        uint64_t now = hull_monotonic_ns();
        if (now >= w.next_reap)
            reap_pass(&w);
        if (w.c == NULL)
            continue;
        if (stopping(&w) || w.busy == w.o.concurrency) {
            if (now >= w.next_heartbeat)
                heartbeat(&w);
            wait_event(&w, min_u64(w.next_heartbeat, w.next_reap));
            continue;
        }
        hull_error e = NULL;
        if (stop_marked(&w, &e) < 0) { /* between claims: c is not blocked */
            check_conn(&w, &e);
            continue;
        }
        claim(&w);
    }
    end(&w);
    for (unsigned i = 0; i < w.o.concurrency; i++)
        w.o.runner->close(w.o.runner->ctx, i);
    hull_log(HULL_LOG_INFO, "queue worker %s: stopped", w.name);
    hull_redis_close(w.rc);
    hull_redis_close(w.c);
    free(w.slots);
    return 0;
}
