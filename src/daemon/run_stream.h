/* Streamed runs (run_stream.c): POST /v1/runs with Accept:
 * application/x-ndjson gets the run's output as NDJSON while it runs. */
#ifndef HULLD_RUN_STREAM_H
#define HULLD_RUN_STREAM_H

#include <stdbool.h>
#include <stdint.h>

#include "daemon.h"
#include "runner.h"

/* One datagram: this header, then up to RUN_STREAM_REC_MAX bytes of output. */
#define RUN_STREAM_REC_MAX (32u << 10)
struct run_stream_rec {
    uint32_t stream; /* 1 stdout, 2 stderr */
    uint32_t pad;
    uint64_t offset; /* in the run's combined output */
};

/* ---- in the worker (runner_worker.c) ---- */

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
