/* Streamed runs (run_stream.c): POST /v1/runs with Accept:
 * application/x-ndjson gets the run's output as NDJSON while it runs. */
#ifndef HULLD_RUN_STREAM_H
#define HULLD_RUN_STREAM_H

#include <stdbool.h>

#include "daemon.h"
#include "runner.h"

/* ---- in the worker ---- */

/* p's output goes to stream_fd as it comes (nothing when -1). */
void run_stream_hook(struct hull_policy *p, int stream_fd);

/* ---- in hulld ---- */

struct run_stream;
/* The client asked for a stream (its Accept header). */
bool run_stream_wanted(const struct request *rq);
/* A stream for run id: NULL with r filled when it cannot be made. */
struct run_stream *run_stream_new(const struct request *rq, const char *id, struct resp *r);
/* The worker's end, for runner_submit_stream (taken: -1 afterwards). */
int run_stream_worker_end(struct run_stream *rs);
/* r becomes the stream of job j (a reference taken over) from rs (taken). */
void run_stream_answer(struct run_stream *rs, struct run_job *j, struct resp *r);
void run_stream_free(struct run_stream *rs);
static inline void run_stream_freep(struct run_stream **rs)
{
    run_stream_free(*rs);
}
#define cleanup_run_stream __attribute__((cleanup(run_stream_freep)))

#endif
