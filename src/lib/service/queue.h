/* The job queue over Redis: producers (hull_queue_submit, declared in
 * hull.h) and workers (hull_queue_worker_run). docs/queue.md describes the
 * keys and the protocol; the Lua scripts that change several keys at once
 * live in queue_scripts.c. */
#ifndef HULL_SERVICE_QUEUE_H
#define HULL_SERVICE_QUEUE_H

#include <signal.h>
#include <stdbool.h>
#include <sys/types.h>

#include "hull.h"
#include "service/redis.h"

/* Every key starts with this, so one Redis can hold other data too. */
#define HULL_QUEUE_PREFIX "hull:"
/* A job id: 32 lowercase hex digits (128 random bits). */
#define HULL_QUEUE_ID_LEN 32
/* A request is at most this big (the REST API's body limit is smaller). */
#define HULL_QUEUE_MAX_REQUEST        (64u << 20)
#define HULL_QUEUE_MAX_ATTEMPTS_LIMIT 100

/* Key names; buf must hold HULL_QUEUE_KEY_MAX bytes. */
#define HULL_QUEUE_KEY_MAX 512
const char *hull_queue_key(char *buf, const char *kind, const char *name);
#define HULL_QUEUE_JOBS    HULL_QUEUE_PREFIX "jobs"
#define HULL_QUEUE_DEAD    HULL_QUEUE_PREFIX "dead"
#define HULL_QUEUE_WORKERS HULL_QUEUE_PREFIX "workers"

/* True for a well-formed job id (it becomes part of key names). */
bool hull_queue_id_valid(const char *id);

struct hull_queue_worker_opts {
    const char *redis_url;
    const char *name;          /* unique among live workers; NULL: HOSTNAME:PID */
    unsigned concurrency;      /* jobs at once, one per runner slot (default 1) */
    unsigned heartbeat_ms;     /* default 1000; the heartbeat lives 3 times that */
    unsigned reap_interval_ms; /* default 2 x heartbeat_ms */
    unsigned max_attempts;     /* starts per job before the dead-letter list (default 3) */
    unsigned result_ttl_s;     /* how long results and finished jobs stay (default 3600) */
    /* Grants (HULL_ALLOW_*) of jobs it may run: a job asking for host
     * networking or process isolation without the worker's grant is
     * dead-lettered. hulld checked the submitter's token; a job pushed to
     * Redis by anyone else had no token to check. */
    unsigned allow;
    /* The caller's own check of a job's policy (hulld: its --max-limit
     * ceilings), or NULL: a job it refuses is dead-lettered with its error. */
    int (*check)(const struct hull_policy *p, hull_error *err);
    /* Set (by the caller's SIGTERM handler) to stop taking jobs, finish
     * those running, deregister and return. */
    volatile sig_atomic_t *stop;
    /* Where started jobs run (required): see struct hull_queue_runner. */
    const struct hull_queue_runner *runner;
};

/* The processes that run the jobs: one persistent single-threaded process
 * per slot (hulld's --helper runner, the same kind that runs its HTTP
 * runs), fed one job at a time. The queue loop keeps the claims, the
 * heartbeat and the reaping; exactly-once stays in the scripts below. */
struct hull_queue_runner {
    void *ctx;
    /* Hand the job's request to slot's process (started when it has none):
     * returns an fd that becomes readable when it answered or died, and
     * its pid in *pid; -1 with err when no process could take it. */
    int (*start)(void *ctx, unsigned slot, const char *id, const char *request, pid_t *pid,
                 hull_error *err);
    /* Once that fd is readable: 0 with *result (malloc'd result JSON); 1
     * when the run could not start (why); -1 when the process died (why;
     * the next start starts another). */
    int (*collect)(void *ctx, unsigned slot, char **result, char *why, size_t n);
    /* Stop slot's process (if any) and wait for it. */
    void (*close)(void *ctx, unsigned slot);
    /* Kill the job slot's process runs now (its result then says killed);
     * NULL: jobs cannot be stopped. */
    void (*cancel)(void *ctx, unsigned slot);
};

/* Run a worker until *stop. Returns 0 after a clean stop, -1 when it could
 * not start (bad options, Redis unreachable at start). Redis going away
 * later is waited out, not fatal. Each job runs in o->runner's processes. */
int hull_queue_worker_run(const struct hull_queue_worker_opts *o, hull_error *err);

/* ---- the scripts (queue_scripts.c) ----------------------------------------
 * Each changes several keys atomically. They share one way to settle a job
 * that a worker no longer runs: if it has a result it is done; if it has no
 * hash it is dead ("no such job"); if it used up its attempts it is dead;
 * otherwise it goes back to the head of the queue. */

/* Take back every job of a worker whose heartbeat expired (or, with force,
 * of this worker's previous life under the same name). *requeued, *dead and
 * *done count what became of them; returns 1 when the worker was reaped, 0
 * when it was alive. */
int hull_queue_reap(redisContext *c, const char *worker, bool force, unsigned max_attempts,
                    long long counts[3], hull_error *err);
/* Start a claimed job: its hash says running on this worker, attempts+1.
 * Returns HULL_QUEUE_RUN with *request set (caller frees), or one of the
 * others when it must not run (already done, no such job, out of attempts:
 * the script has settled it). */
enum hull_queue_start { HULL_QUEUE_RUN, HULL_QUEUE_ALREADY_DONE, HULL_QUEUE_DEAD_LETTERED };
int hull_queue_start(redisContext *c, const char *worker, const char *id, unsigned max_attempts,
                     char **request, hull_error *err);
/* The job cannot run (bad request): to the dead-letter list with why. */
int hull_queue_fail(redisContext *c, const char *worker, const char *id, const char *why,
                    hull_error *err);
/* Store the result (only if none is there yet), then acknowledge. Both
 * steps are idempotent, so a worker that dies between them is harmless. */
int hull_queue_finish(redisContext *c, const char *worker, const char *id, const char *result,
                      unsigned ttl_s, hull_error *err);
/* A job whose runner died: settle it (done, requeued or dead). */
int hull_queue_release(redisContext *c, const char *worker, const char *id, const char *why,
                       unsigned max_attempts, hull_error *err);

#endif
