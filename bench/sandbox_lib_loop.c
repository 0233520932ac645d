/* The library call alone: hull_sandbox_run of one command, N times in one
 * process, one latency per line (microseconds). bench/api_load.py compares
 * hulld's end-to-end latency with these. */
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "hull.h"

int main(int argc, char **argv)
{
    int n = argc > 1 ? atoi(argv[1]) : 100;
    char *cmd[] = {"true", NULL};
    for (int i = 0; i < n; i++) {
        struct hull_policy p;
        struct hull_result r;
        hull_error err = NULL;
        hull_policy_init(&p);
        p.argv = cmd;
        struct timespec a, b;
        clock_gettime(CLOCK_MONOTONIC, &a);
        int rc = hull_sandbox_run(&p, &r, &err);
        clock_gettime(CLOCK_MONOTONIC, &b);
        if (rc < 0 || r.verdict != HULL_VERDICT_OK) {
            fprintf(stderr, "run failed: %s %s\n", hull_error_msg(err), r.error ? r.error : "");
            return 1;
        }
        hull_result_free(&r);
        printf("%lld\n",
               (long long)(b.tv_sec - a.tv_sec) * 1000000 + (b.tv_nsec - a.tv_nsec) / 1000);
    }
    return 0;
}
