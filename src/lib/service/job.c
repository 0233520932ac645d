/* A job's run: the policy in, the result JSON out (service/job.h). */
#include <errno.h>
#include <stdlib.h>

#include "service/job.h"
#include "util/clock.h"
#include "util/error.h"

int hull_job_run(const struct hull_policy *p, char **result, const char **verdict, double *lib_ms,
                 hull_error *err)
{
    struct hull_result r;
    *result = NULL;
    *verdict = hull_verdict_name(HULL_VERDICT_INTERNAL_ERROR);
    uint64_t t0 = hull_monotonic_ns();
    int rc = hull_sandbox_run(p, &r, err);
    if (lib_ms)
        *lib_ms = (double)(hull_monotonic_ns() - t0) / 1e6;
    if (rc < 0)
        return -1;
    *result = hull_result_to_json(&r);
    if (*result)
        *verdict = hull_verdict_name(r.verdict);
    hull_result_free(&r);
    if (*result == NULL)
        return hull_error_set(err, ENOMEM, "out of memory formatting the result");
    return 0;
}
