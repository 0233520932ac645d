/* sandboxtool: one sandbox run through the library alone, the way the
 * daemon will do it: a REST-style JSON request (hull_policy_from_json) in,
 * the result JSON (hull_result_to_json) out. The integration tests use it
 * to check that the library path, inline files and stdin given as data
 * behave as the CLI does.
 *
 *   sandboxtool < request.json
 *
 * Exit status: 0 when the run happened (the verdict is in the JSON), 2 for
 * a request hull_policy_from_json refuses (message on stderr), 3 when the
 * run could not start.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hull.h"

int main(void)
{
    size_t cap = 1 << 16, len = 0;
    char *req = malloc(cap);
    size_t n;
    while (req && (n = fread(req + len, 1, cap - len, stdin)) > 0) {
        len += n;
        if (len == cap)
            req = realloc(req, cap *= 2);
    }
    if (req == NULL)
        return 3;
    struct hull_policy p;
    hull_policy_init(&p);
    hull_error err = NULL;
    int rc = 0;
    if (hull_policy_from_json(req, len, &p, &err) < 0) {
        fprintf(stderr, "sandboxtool: %s\n", hull_error_msg(err));
        rc = 2;
    } else {
        struct hull_result r;
        if (hull_sandbox_run(&p, &r, &err) < 0) {
            fprintf(stderr, "sandboxtool: %s\n", hull_error_msg(err));
            rc = 3;
        } else {
            char *j = hull_result_to_json(&r);
            printf("%s\n", j);
            free(j);
            hull_result_free(&r);
        }
    }
    hull_error_free(&err);
    hull_policy_free(&p);
    free(req);
    return rc;
}
