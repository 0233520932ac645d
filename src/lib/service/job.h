/* One job of either job runner: hulld's workers (runs posted over HTTP,
 * src/daemon/runner.c) and the Redis queue worker (queue_worker.c). Both
 * hand a parsed policy here; only here is hull_sandbox_run called for a
 * job, so the two give the same result for the same request. */
#ifndef HULL_SERVICE_JOB_H
#define HULL_SERVICE_JOB_H

#include "hull.h"

/* Run p (in a single-threaded process: the library clones the sandbox's
 * init directly). 0 with *result (the result JSON, caller frees) and
 * *verdict (its verdict's name); -1 with err when the run could not be
 * made or its result not formatted. *lib_ms: how long hull_sandbox_run
 * took (the API reports it, so clients can tell its own share). */
int hull_job_run(const struct hull_policy *p, char **result, const char **verdict, double *lib_ms,
                 hull_error *err);

#endif
