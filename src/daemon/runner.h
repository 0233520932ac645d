/* The run queue and pool (runner.c), for the API handlers (runs.c): a
 * struct run_job is one local run (not the Redis queue's queue_job). */
#ifndef HULLD_RUNNER_H
#define HULLD_RUNNER_H

#include <stdbool.h>
#include <stdint.h>

#include "hull.h"

struct slot;

enum job_state { JOB_QUEUED, JOB_RUNNING, JOB_DONE };

struct run_job {
    char id[40];
    char tenant[72];
    char *request; /* the run request JSON for the worker */
    int cancel_fd; /* eventfd: written to cancel */
    /* A streamed run (run_stream.c): the worker's end of its output socket,
     * handed over with the run and closed by hulld then; -1 = none. */
    int stream_fd;
    /* A run of an image: its use mark (image_store_resolve_use), taken when
     * the run was accepted and held until it is done, so the image is not
     * removed under a run waiting for a slot; -1 = none. */
    int image_hold;
    enum job_state state;
    char *result; /* result JSON once done (NULL when cancelled while queued) */
    uint64_t enqueued_ns;
    /* how long hull_sandbox_run took in the worker */
    double lib_ms;
    /* What its row says (RFC 3339), so that a synchronous POST answers
     * from the result in hand instead of reading the row back. */
    char created_at[40], started_at[40], finished_at[40];
    /* hulld itself recorded it finished, with the times above (or will,
     * right after the answer: deferred) */
    bool recorded;
    /* Its end is recorded after the answer is sent (job_wait_answer_first):
     * until runner_record_deferred, the job stays active and its slot busy,
     * and readers of runs wait for it (runner_wait_recorded). */
    bool deferred;
    unsigned long deferred_gen;
    char verdict[32];
    struct slot *held; /* the slot it ran on, busy until then */
    uint64_t t0_ns;    /* when its dispatch began (metrics) */
    struct slot *slot; /* set: the caller runs it on this slot (job_wait) */
    /* its row says running already */
    bool started;
    /* handed straight to a worker, its row not written yet (dispatch
     * writes it while the worker starts the run) */
    bool unrecorded;
    /* set when the store refused its row: the run was stopped, the answer
     * is this error */
    hull_error error;
    int refs;
    struct run_job *next;        /* queue order */
    struct run_job *next_active; /* all queued or running jobs */
};

enum submit { SUBMIT_OK, SUBMIT_QUEUE_FULL, SUBMIT_QUOTA, SUBMIT_DRAINING, SUBMIT_ERROR };

/* Queue a run (the row is inserted as "queued"); takes request. On
 * SUBMIT_OK *out holds a reference for the caller (job_release). direct:
 * the caller will job_wait() at once, so with a slot idle and nobody
 * waiting the job is not queued: job_wait runs it on the caller's thread. */
enum submit runner_submit(const char *id, const char *tenant, char *request, bool direct,
                          struct run_job **out, hull_error *err);
/* The same for a streamed run, never run on the caller's thread: its
 * output goes to stream_fd (taken, closed on failure) while it runs. */
enum submit runner_submit_stream(const char *id, const char *tenant, char *request, int stream_fd,
                                 struct run_job **out, hull_error *err);
/* Until the job is done (running it first when it was given to us). */
void job_wait(struct run_job *j);
/* job_wait, except that a job run on the caller's thread is not recorded
 * yet when it returns true (j->deferred): the caller answers from the
 * result in hand, then calls runner_record_deferred(j), which records the
 * run's end, frees the slot and drops the caller's reference. */
bool job_wait_answer_first(struct run_job *j);
void runner_record_deferred(void *job);
/* Until the run id (NULL: every run deferred so far) has its end recorded,
 * so that what a reader gets from the store is what was answered. */
void runner_wait_recorded(const char *id);
void job_release(struct run_job *j);
/* Give j the image use mark fd (taken; closed at once when j is done). */
void runner_hold_image(struct run_job *j, int fd);
/* A queued job is taken off the queue (*was_queued); a running one is told
 * to stop. Returns a reference, or NULL when no such job is active. */
struct run_job *runner_cancel(const char *id, bool *was_queued);

#endif
