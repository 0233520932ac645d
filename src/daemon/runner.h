/* The run queue and pool (runner.c), for the API handlers (runs.c). */
#ifndef HULLD_RUNNER_H
#define HULLD_RUNNER_H

#include <stdbool.h>
#include <stdint.h>

#include "hull.h"

enum job_state { JOB_QUEUED, JOB_RUNNING, JOB_DONE };

struct job {
    char id[40];
    char tenant[72];
    char *request;  /* the run request JSON for the worker */
    int cancel_fd;  /* eventfd: written to cancel */
    enum job_state state;
    char *result;   /* result JSON once done (NULL when cancelled while queued) */
    uint64_t enqueued_ns;
    int refs;
    struct job *next;        /* queue order */
    struct job *next_active; /* all queued or running jobs */
};

enum submit { SUBMIT_OK, SUBMIT_QUEUE_FULL, SUBMIT_QUOTA, SUBMIT_DRAINING, SUBMIT_ERROR };

/* Queue a run (the row is inserted as "queued"); takes request. On
 * SUBMIT_OK *out holds a reference for the caller (job_release). */
enum submit runner_submit(const char *id, const char *tenant, char *request, struct job **out,
                          hull_error *err);
void job_wait(struct job *j);
void job_release(struct job *j);
/* A queued job is taken off the queue (*was_queued); a running one is told
 * to stop. Returns a reference, or NULL when no such job is active. */
struct job *runner_cancel(const char *id, bool *was_queued);

#endif
