/* The queue's multi-key steps, as Lua scripts run by Redis atomically.
 *
 * Redis runs a script to completion before any other command, so a step
 * that reads a key and then changes others (is the worker's heartbeat gone?
 * is there a result already? how many attempts?) cannot race a worker or
 * another reaper. Only the heartbeat, processing and workers keys are passed
 * as KEYS; job and result keys are derived from the id inside, which is
 * fine on a single Redis (not on Redis Cluster, documented in docs/queue.md).
 *
 * Ownership rule: a job belongs to whoever removes it from a processing
 * list. The worker's fail/finish/release steps act on the job only when
 * their LREM removed it; when it returns 0, a reaper took the job first and
 * already settled it, so the step does nothing (or, for finish, only
 * records the result, which the next claimer will find). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "service/queue.h"
#include "util/clock.h"
#include "util/error.h"

/* settle(id, why, max_default, now): what to do with a job nobody runs. One
 * someone asked to stop (hull_queue_cancel) is not run again. */
#define SETTLE_LUA                                                                                 \
    "local P = ARGV[1]\n"                                                                          \
    "local function fail(job, id, why, now)\n"                                                     \
    "  redis.call('HSET', job, 'state', 'failed', 'error', why, 'failed_at', now)\n"               \
    "  redis.call('RPUSH', P .. 'dead', id)\n"                                                     \
    "  return 'dead'\n"                                                                            \
    "end\n"                                                                                        \
    "local function settle(id, why, max_default, now)\n"                                           \
    "  local job = P .. 'job:' .. id\n"                                                            \
    "  local res = P .. 'result:' .. id\n"                                                         \
    "  if redis.call('EXISTS', res) == 1 then\n"                                                   \
    "    redis.call('HSET', job, 'state', 'finished')\n"                                           \
    "    local ttl = redis.call('TTL', res)\n"                                                     \
    "    if ttl > 0 then redis.call('EXPIRE', job, ttl) end\n"                                     \
    "    return 'done'\n"                                                                          \
    "  end\n"                                                                                      \
    "  if redis.call('EXISTS', job) == 0 then return fail(job, id, 'no such job', now) end\n"      \
    "  if redis.call('TYPE', job).ok ~= 'hash' then\n"                                             \
    "    redis.call('DEL', job)\n"                                                                 \
    "    return fail(job, id, 'not a job: its key is no hash', now)\n"                             \
    "  end\n"                                                                                      \
    "  local attempts = tonumber(redis.call('HGET', job, 'attempts') or '0')\n"                    \
    "  if attempts == nil then return fail(job, id, 'not a job: attempts is no number', now) "     \
    "end\n"                                                                                        \
    "  if redis.call('HGET', job, 'stop') == '1' then\n"                                           \
    "    redis.call('HSET', job, 'state', 'cancelled')\n"                                          \
    "    redis.call('EXPIRE', job, 3600)\n"                                                        \
    "    return 'done'\n"                                                                          \
    "  end\n"                                                                                      \
    "  local max = tonumber(redis.call('HGET', job, 'max_attempts') or '') or max_default\n"       \
    "  if attempts >= max then\n"                                                                  \
    "    return fail(job, id, 'gave up after ' .. attempts .. ' attempts: ' .. why, now)\n"        \
    "  end\n"                                                                                      \
    "  redis.call('HSET', job, 'state', 'queued', 'requeued_because', why)\n"                      \
    "  redis.call('RPUSH', P .. 'jobs', id)\n"                                                     \
    "  return 'requeued'\n"                                                                        \
    "end\n"

/* KEYS: heartbeat, processing, workers. ARGV: prefix, worker, force,
 * max_attempts, now. The newest claim is popped first and pushed to the
 * consuming end first, so the oldest ends up running first. */
static const char reap_lua[] = SETTLE_LUA
    "if ARGV[3] ~= '1' and redis.call('EXISTS', KEYS[1]) == 1 then return {0, 0, 0, 0} end\n"
    "local n = {requeued = 0, dead = 0, done = 0}\n"
    "local why = 'worker ' .. ARGV[2] .. ' died while running it'\n"
    "while true do\n"
    "  local id = redis.call('LPOP', KEYS[2])\n"
    "  if not id then break end\n"
    "  local what = settle(id, why, tonumber(ARGV[4]), ARGV[5])\n"
    "  n[what] = n[what] + 1\n"
    "end\n"
    "redis.call('SREM', KEYS[3], ARGV[2])\n"
    "return {1, n.requeued, n.dead, n.done}\n";

/* KEYS: processing. ARGV: prefix, worker, id, max_attempts, now. */
static const char start_lua[] = SETTLE_LUA
    "local id = ARGV[3]\n"
    "local job = P .. 'job:' .. id\n"
    "local exists = redis.call('EXISTS', job) == 1\n"
    /* Garbage under the job's key (any Redis client can write there) is
     * settled, which dead-letters it, rather than failing the script and
     * leaving the id in the processing list for every restart to retry. */
    "local ok = exists and redis.call('TYPE', job).ok == 'hash'\n"
    "local attempts = ok and tonumber(redis.call('HGET', job, 'attempts') or '0')\n"
    "local max = ok and tonumber(redis.call('HGET', job, 'max_attempts') or '')\n"
    "max = max or tonumber(ARGV[4])\n"
    "if redis.call('EXISTS', P .. 'result:' .. id) == 1 or not exists or not ok or\n"
    "    attempts == nil or attempts >= max then\n"
    "  redis.call('LREM', KEYS[1], 1, id)\n"
    "  return {settle(id, 'retried too often', tonumber(ARGV[4]), ARGV[5])}\n"
    "end\n"
    "redis.call('HINCRBY', job, 'attempts', 1)\n"
    "redis.call('HSET', job, 'state', 'running', 'worker', ARGV[2], 'started_at', ARGV[5])\n"
    "return {'run', redis.call('HGET', job, 'request') or ''}\n";

/* KEYS: processing. ARGV: prefix, id, why, now. */
static const char fail_lua[] =
    SETTLE_LUA "if redis.call('LREM', KEYS[1], 1, ARGV[2]) == 0 then return 'gone' end\n"
               "return fail(P .. 'job:' .. ARGV[2], ARGV[2], ARGV[3], ARGV[4])\n";

/* KEYS: processing. ARGV: prefix, id, ttl, now. */
static const char ack_lua[] =
    "local P = ARGV[1]\n"
    "local job = P .. 'job:' .. ARGV[2]\n"
    "redis.call('LREM', KEYS[1], 1, ARGV[2])\n"
    "if redis.call('EXISTS', job) == 1 then\n"
    "  redis.call('HSET', job, 'state', 'finished', 'finished_at', ARGV[4])\n"
    "  redis.call('EXPIRE', job, ARGV[3])\n"
    "end\n"
    "return 'ok'\n";

/* KEYS: processing. ARGV: prefix, id, why, max_attempts, now. */
static const char release_lua[] =
    SETTLE_LUA "if redis.call('LREM', KEYS[1], 1, ARGV[2]) == 0 then return 'gone' end\n"
               "return settle(ARGV[2], ARGV[3], tonumber(ARGV[4]), ARGV[5])\n";

const char *hull_queue_key(char *buf, const char *kind, const char *name)
{
    snprintf(buf, HULL_QUEUE_KEY_MAX, HULL_QUEUE_PREFIX "%s:%s", kind, name);
    return buf;
}

bool hull_queue_id_valid(const char *id)
{
    if (id == NULL || strlen(id) != HULL_QUEUE_ID_LEN)
        return false;
    for (const char *p = id; *p; p++)
        if (!((*p >= '0' && *p <= '9') || (*p >= 'a' && *p <= 'f')))
            return false;
    return true;
}

/* EVAL script with n_keys keys, then the arguments (NULL-terminated). */
static redisReply *eval(redisContext *c, const char *script, int n_keys, const char *const *args,
                        hull_error *err)
{
    const char *argv[24];
    char nk[8];
    snprintf(nk, sizeof(nk), "%d", n_keys);
    int n = 0;
    argv[n++] = "EVAL";
    argv[n++] = script;
    argv[n++] = nk;
    for (const char *const *a = args; *a && n < 24; a++)
        argv[n++] = *a;
    return hull_redis_cmdv(c, err, n, argv);
}

int hull_queue_reap(redisContext *c, const char *worker, bool force, unsigned max_attempts,
                    long long counts[3], hull_error *err)
{
    char alive[HULL_QUEUE_KEY_MAX], proc[HULL_QUEUE_KEY_MAX], max[16], now[64];
    snprintf(max, sizeof(max), "%u", max_attempts);
    hull_rfc3339_now(now, sizeof(now));
    const char *args[] = {hull_queue_key(alive, "alive", worker),
                          hull_queue_key(proc, "processing", worker),
                          HULL_QUEUE_WORKERS,
                          HULL_QUEUE_PREFIX,
                          worker,
                          force ? "1" : "0",
                          max,
                          now,
                          NULL};
    redisReply *r = eval(c, reap_lua, 3, args, err);
    if (r == NULL)
        return hull_error_prefix(err, "reap worker %s", worker);
    int ret = 0;
    if (r->type == REDIS_REPLY_ARRAY && r->elements == 4) {
        ret = (int)hull_redis_int(r->element[0], 0);
        for (int i = 0; i < 3; i++)
            counts[i] = hull_redis_int(r->element[i + 1], 0);
    }
    freeReplyObject(r);
    return ret;
}

int hull_queue_start(redisContext *c, const char *worker, const char *id, unsigned max_attempts,
                     char **request, hull_error *err)
{
    char proc[HULL_QUEUE_KEY_MAX], max[16], now[64];
    snprintf(max, sizeof(max), "%u", max_attempts);
    hull_rfc3339_now(now, sizeof(now));
    const char *args[] = {
        hull_queue_key(proc, "processing", worker), HULL_QUEUE_PREFIX, worker, id, max, now, NULL};
    *request = NULL;
    redisReply *r = eval(c, start_lua, 1, args, err);
    if (r == NULL)
        return hull_error_prefix(err, "start job %s", id);
    const char *what =
        r->type == REDIS_REPLY_ARRAY && r->elements >= 1 ? hull_redis_str(r->element[0]) : NULL;
    int ret = HULL_QUEUE_DEAD_LETTERED;
    if (what && strcmp(what, "run") == 0 && r->elements == 2) {
        const char *req = hull_redis_str(r->element[1]);
        *request = strdup(req ? req : "");
        ret = *request ? HULL_QUEUE_RUN : hull_error_set(err, ENOMEM, "out of memory");
    } else if (what && (strcmp(what, "done") == 0)) {
        ret = HULL_QUEUE_ALREADY_DONE;
    } else if (what && strcmp(what, "requeued") == 0) {
        /* Cannot happen (start only settles finished or exhausted jobs),
         * but if it did the job is back in the queue: not ours to run. */
        ret = HULL_QUEUE_ALREADY_DONE;
    }
    freeReplyObject(r);
    return ret;
}

static int simple_eval(redisContext *c, const char *script, const char *what, const char *id,
                       const char *const *args, hull_error *err)
{
    redisReply *r = eval(c, script, 1, args, err);
    if (r == NULL)
        return hull_error_prefix(err, "%s job %s", what, id);
    freeReplyObject(r);
    return 0;
}

int hull_queue_fail(redisContext *c, const char *worker, const char *id, const char *why,
                    hull_error *err)
{
    char proc[HULL_QUEUE_KEY_MAX], now[64];
    hull_rfc3339_now(now, sizeof(now));
    const char *args[] = {
        hull_queue_key(proc, "processing", worker), HULL_QUEUE_PREFIX, id, why, now, NULL};
    return simple_eval(c, fail_lua, "dead-letter", id, args, err);
}

int hull_queue_finish(redisContext *c, const char *worker, const char *id, const char *result,
                      unsigned ttl_s, hull_error *err)
{
    char proc[HULL_QUEUE_KEY_MAX], res[HULL_QUEUE_KEY_MAX], ttl[16], now[64];
    snprintf(ttl, sizeof(ttl), "%u", ttl_s);
    /* Store first, and only if no run of this job stored one before: the
     * first result is the job's result, whoever else finishes it later. */
    redisReply *r = hull_redis_cmd(c, err, "SET", hull_queue_key(res, "result", id), result, "NX",
                                   "EX", ttl, NULL);
    if (r == NULL)
        return hull_error_prefix(err, "store result of job %s", id);
    freeReplyObject(r);
    /* A crash here leaves a result and a claimed job: whoever settles the
     * job next (reaper, claimer) sees the result and only acknowledges. */
    hull_rfc3339_now(now, sizeof(now));
    const char *args[] = {
        hull_queue_key(proc, "processing", worker), HULL_QUEUE_PREFIX, id, ttl, now, NULL};
    return simple_eval(c, ack_lua, "acknowledge", id, args, err);
}

int hull_queue_release(redisContext *c, const char *worker, const char *id, const char *why,
                       unsigned max_attempts, hull_error *err)
{
    char proc[HULL_QUEUE_KEY_MAX], max[16], now[64];
    snprintf(max, sizeof(max), "%u", max_attempts);
    hull_rfc3339_now(now, sizeof(now));
    const char *args[] = {
        hull_queue_key(proc, "processing", worker), HULL_QUEUE_PREFIX, id, why, max, now, NULL};
    return simple_eval(c, release_lua, "release", id, args, err);
}
