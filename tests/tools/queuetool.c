/* queuetool: the producer side of the Redis queue from the command line,
 * through the same libhull calls hulld's POST /v1/runs {"queue": true} and
 * GET /v1/runs/{id} make, so tests/integration/test_queue.py and
 * bench/queue_load.py exercise that path.
 *
 *   queuetool submit URL JSON         prints the job id
 *   queuetool submit-many URL N JSON  N jobs, one id per line
 *   queuetool result URL ID           the result JSON, or "pending";
 *                                     exit 2 for an unknown job
 *   queuetool cancel URL ID           "cancelled" or "too late"
 */
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hull.h"

static int fail(const char *what, hull_error *err)
{
    fprintf(stderr, "queuetool: %s: %s\n", what, hull_error_msg(*err));
    int code = hull_error_code(*err) == ENOENT ? 2 : 1;
    hull_error_free(err);
    return code;
}

int main(int argc, char **argv)
{
    hull_error err = NULL;
    bool one = argc == 4 && strcmp(argv[1], "submit") == 0;
    if (one || (argc == 5 && strcmp(argv[1], "submit-many") == 0)) {
        long n = one ? 1 : strtol(argv[3], NULL, 10);
        for (long i = 0; i < n; i++) {
            char *id = NULL;
            if (hull_queue_submit(argv[2], argv[argc - 1], &id, &err) < 0)
                return fail("submit", &err);
            printf("%s\n", id);
            free(id);
        }
        return 0;
    }
    if (argc == 4 && strcmp(argv[1], "result") == 0) {
        char *res = NULL;
        if (hull_queue_result(argv[2], argv[3], &res, &err) < 0)
            return fail("result", &err);
        printf("%s\n", res ? res : "pending");
        free(res);
        return 0;
    }
    if (argc == 4 && strcmp(argv[1], "cancel") == 0) {
        int r = hull_queue_cancel(argv[2], argv[3], &err);
        if (r < 0)
            return fail("cancel", &err);
        printf("%s\n", r ? "cancelled" : "too late");
        return 0;
    }
    fprintf(stderr, "usage: queuetool submit URL JSON | submit-many URL N JSON | result URL ID | "
                    "cancel URL ID\n");
    return 2;
}
