/* Producers' side of the Redis job queue: submit a run request, read back
 * its state or result. Each call opens its own short connection, so the
 * calls are safe from any thread (the daemon's request handlers) and hold
 * nothing between calls; on loopback a connection costs far less than the
 * sandbox run it stands for.
 *
 * A job is a hash hull:job:ID (the request and its bookkeeping) plus its ID
 * in the list hull:jobs; docs/queue.md has every key. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include "service/queue.h"
#include "util/clock.h"
#include "util/error.h"
#include "util/json.h"

#define CONNECT_TIMEOUT_MS 5000

static int new_id(char out[HULL_QUEUE_ID_LEN + 1], hull_error *err)
{
    unsigned char b[HULL_QUEUE_ID_LEN / 2];
    if (getrandom(b, sizeof(b), 0) != (ssize_t)sizeof(b))
        return hull_error_errno(err, "getrandom");
    for (size_t i = 0; i < sizeof(b); i++)
        snprintf(out + 2 * i, 3, "%02x", b[i]);
    return 0;
}

/* A job is a run request plus the queue's own fields, which are not the
 * run's: they are taken out and kept beside it in the job's hash. */
struct queue_job {
    char *request; /* the run request alone (what the worker parses) */
    int max_attempts;
    char *tenant, *run_id; /* who asked (hulld's), for operators */
};

static void job_free(struct queue_job *j)
{
    free(j->request);
    free(j->tenant);
    free(j->run_id);
}

static int take_string(json_object *doc, const char *key, char **out, hull_error *err)
{
    if (hj_string(doc, "", key, false, out, err) < 0)
        return -1;
    if (*out && strlen(*out) > 256)
        return hull_error_set(err, EINVAL, "%s: at most 256 bytes", key);
    json_object_object_del(doc, key);
    return 0;
}

/* Split the job and check its request as a local run would be checked,
 * so that a bad request is refused here (the caller can answer 400)
 * instead of reaching the dead-letter list. */
static int parse_job(const char *job_json, struct queue_job *j, hull_error *err)
{
    size_t len = strlen(job_json);
    if (len > HULL_QUEUE_MAX_REQUEST)
        return hull_error_set(err, E2BIG, "request: larger than %u bytes", HULL_QUEUE_MAX_REQUEST);
    cleanup_json json_object *doc = NULL;
    if (hj_parse(job_json, len, "request", &doc, err) < 0)
        return -1;
    int64_t v = 0;
    bool present = false;
    if (hj_int_range(doc, "", "max_attempts", 1, HULL_QUEUE_MAX_ATTEMPTS_LIMIT, &v, &present, err) <
            0 ||
        take_string(doc, "tenant", &j->tenant, err) < 0 ||
        take_string(doc, "run_id", &j->run_id, err) < 0)
        return -1;
    json_object_object_del(doc, "max_attempts");
    j->max_attempts = present ? (int)v : 0;
    if ((j->request = strdup(hj_to_string(doc))) == NULL)
        return hull_error_set(err, ENOMEM, "out of memory");
    struct hull_policy p;
    hull_policy_init(&p);
    int r = hull_policy_from_json(j->request, strlen(j->request), &p, err);
    hull_policy_free(&p);
    return r;
}

/* HSET key field value ... for the fields that are set. */
static int append_job_hash(redisContext *c, const char *key, const struct queue_job *j,
                           const char *now, hull_error *err)
{
    char max[16];
    snprintf(max, sizeof(max), "%d", j->max_attempts);
    const char *argv[20];
    int n = 0;
    argv[n++] = "HSET";
    argv[n++] = key;
    argv[n++] = "request", argv[n++] = j->request;
    argv[n++] = "state", argv[n++] = "queued";
    argv[n++] = "attempts", argv[n++] = "0";
    argv[n++] = "created_at", argv[n++] = now;
    if (j->max_attempts)
        argv[n++] = "max_attempts", argv[n++] = max;
    if (j->tenant)
        argv[n++] = "tenant", argv[n++] = j->tenant;
    if (j->run_id)
        argv[n++] = "run_id", argv[n++] = j->run_id;
    return hull_redis_appendv(c, err, n, argv);
}

static int submit_job(const char *redis_url, const char *job_json, char **job_id, hull_error *err)
{
    /* Released in reverse: the connection, then the job. */
    __attribute__((cleanup(job_free))) struct queue_job j = {0};
    char id[HULL_QUEUE_ID_LEN + 1], key[HULL_QUEUE_KEY_MAX], now[64];
    cleanup_redis redisContext *c = NULL;
    if (parse_job(job_json, &j, err) < 0 || new_id(id, err) < 0 ||
        (c = hull_redis_connect(redis_url, CONNECT_TIMEOUT_MS, err)) == NULL)
        return -1;
    hull_rfc3339_now(now, sizeof(now));
    hull_queue_key(key, "job", id);
    /* The hash and the list entry appear together or not at all: a worker
     * never pops an id whose hash is not there yet. */
    if (hull_redis_append(c, err, "MULTI", NULL) < 0 || append_job_hash(c, key, &j, now, err) < 0 ||
        hull_redis_append(c, err, "LPUSH", HULL_QUEUE_JOBS, id, NULL) < 0 ||
        hull_redis_append(c, err, "EXEC", NULL) < 0)
        return -1;
    for (int i = 0; i < 4; i++) {
        cleanup_reply redisReply *r = hull_redis_reply(c, err);
        if (r == NULL)
            return -1;
        if (i == 3 && r->type != REDIS_REPLY_ARRAY)
            return hull_error_set(err, EIO, "redis EXEC: transaction aborted");
    }
    *job_id = strdup(id);
    return *job_id ? 0 : hull_error_set(err, ENOMEM, "out of memory");
}

int hull_queue_submit(const char *redis_url, const char *job_json, char **job_id, hull_error *err)
{
    *job_id = NULL;
    if (job_json == NULL)
        return hull_error_set(err, EINVAL, "queue submit: no request");
    if (submit_job(redis_url, job_json, job_id, err) < 0)
        return hull_error_prefix(err, "queue submit");
    return 0;
}

/* A job that went to the dead-letter list reads, through the API, as a run
 * that hull could not do: verdict internal_error, with the reason. */
static char *dead_result(const char *why)
{
    struct hull_result r = {.verdict = HULL_VERDICT_INTERNAL_ERROR,
                            .isolation = HULL_ISOLATION_CONTAINER};
    r.error = (char *)(why ? why : "dead-lettered");
    return hull_result_to_json(&r);
}

/* The job's stored result, a dead-letter verdict, or NULL while it waits. */
static int read_result(redisContext *c, const char *job_id, char **result_json, hull_error *err)
{
    char res[HULL_QUEUE_KEY_MAX], job[HULL_QUEUE_KEY_MAX];
    cleanup_reply redisReply *r1 = NULL;
    cleanup_reply redisReply *r2 = NULL;
    if (hull_redis_append(c, err, "GET", hull_queue_key(res, "result", job_id), NULL) < 0 ||
        hull_redis_append(c, err, "HMGET", hull_queue_key(job, "job", job_id), "state", "error",
                          NULL) < 0 ||
        (r1 = hull_redis_reply(c, err)) == NULL || (r2 = hull_redis_reply(c, err)) == NULL)
        return -1;
    const char *stored = hull_redis_str(r1);
    const char *state = NULL, *why = NULL;
    if (r2->type == REDIS_REPLY_ARRAY && r2->elements == 2) {
        state = hull_redis_str(r2->element[0]);
        why = hull_redis_str(r2->element[1]);
    }
    if (stored)
        *result_json = strdup(stored);
    else if (state && strcmp(state, "failed") == 0)
        *result_json = dead_result(why);
    else if (state && strcmp(state, "cancelled") == 0)
        return hull_error_set(err, ECANCELED, "cancelled before it ran");
    else if (state && strcmp(state, "finished") != 0)
        return 0; /* queued or running: no result yet */
    else
        return hull_error_set(err, ENOENT, "no such job (never submitted, or its result expired)");
    return *result_json ? 0 : hull_error_set(err, ENOMEM, "out of memory");
}

int hull_queue_result(const char *redis_url, const char *job_id, char **result_json,
                      hull_error *err)
{
    *result_json = NULL;
    if (!hull_queue_id_valid(job_id))
        return hull_error_set(err, ENOENT, "queue job %s: no such job", job_id ? job_id : "");
    cleanup_redis redisContext *c = hull_redis_connect(redis_url, CONNECT_TIMEOUT_MS, err);
    if (c == NULL)
        return hull_error_prefix(err, "queue job %s", job_id);
    if (read_result(c, job_id, result_json, err) < 0)
        return hull_error_prefix(err, "queue job %s", job_id);
    return 0;
}
int hull_queue_cancel(const char *redis_url, const char *job_id, hull_error *err)
{
    if (!hull_queue_id_valid(job_id))
        return hull_error_set(err, ENOENT, "queue job %s: no such job", job_id ? job_id : "");
    redisContext *c = hull_redis_connect(redis_url, CONNECT_TIMEOUT_MS, err);
    if (c == NULL)
        return hull_error_prefix(err, "queue job %s", job_id);
    /* A job still waiting is taken out. Once a worker moved it, it runs:
     * it is marked to stop, which its worker sees at its next heartbeat
     * (and its result, verdict killed, is what the job ends with). */
    static const char script[] = "if redis.call('LREM', KEYS[1], 1, ARGV[2]) == 0 then\n"
                                 "  if redis.call('HGET', KEYS[2], 'state') == 'running' then\n"
                                 "    redis.call('HSET', KEYS[2], 'stop', '1')\n"
                                 "  end\n"
                                 "  return 0\n"
                                 "end\n"
                                 "redis.call('HSET', KEYS[2], 'state', 'cancelled')\n"
                                 "redis.call('EXPIRE', KEYS[2], ARGV[1])\n"
                                 "return 1\n";
    char job[HULL_QUEUE_KEY_MAX];
    redisReply *r = hull_redis_cmd(c, err, "EVAL", script, "2", HULL_QUEUE_JOBS,
                                   hull_queue_key(job, "job", job_id), "3600", job_id, NULL);
    hull_redis_close(c);
    if (r == NULL)
        return hull_error_prefix(err, "queue job %s: cancel", job_id);
    int ret = (int)hull_redis_int(r, 0);
    freeReplyObject(r);
    return ret;
}
