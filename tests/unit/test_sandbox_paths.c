/* sandbox/paths.c: hull_sandbox_reachable, which tries a path as the
 * sandbox's root in a child sharing our memory: its answer, and our own
 * dumpable flag left as it was (the child's change of ids resets the flag
 * of the memory it shares). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "sandbox/sandbox.h"
#include "util/error.h"

static void test_dumpable_kept(void **state)
{
    (void)state;
    for (int want = 0; want <= 1; want++) {
        assert_int_equal(prctl(PR_SET_DUMPABLE, want), 0);
        hull_error err = NULL;
        assert_int_equal(hull_sandbox_reachable("/", HULL_SANDBOX_UID_BASE, "--bind", &err), 0);
        assert_null(err);
        assert_int_equal(prctl(PR_GET_DUMPABLE), want);
        /* And when the answer is no (as root; else nothing is judged). */
        int r =
            hull_sandbox_reachable("/nonexistent-hull-unit", HULL_SANDBOX_UID_BASE, "--bind", &err);
        assert_int_equal(prctl(PR_GET_DUMPABLE), want);
        if (r < 0)
            hull_error_free(&err);
    }
    assert_int_equal(prctl(PR_SET_DUMPABLE, 1), 0);
}

/* A 0700 directory of root's on the way: refused, with the errno; one the
 * sandbox's uid owns or whose group is the sandbox's gid: reachable. */
static void test_reachable_answers(void **state)
{
    (void)state;
    if (geteuid() != 0)
        skip();
    char dir[] = "/tmp/hull-unit-reach-XXXXXX";
    assert_non_null(mkdtemp(dir));
    char sub[sizeof(dir) + 8];
    snprintf(sub, sizeof(sub), "%s/sub", dir);
    assert_int_equal(mkdir(sub, 0755), 0);

    assert_int_equal(chmod(dir, 0700), 0);
    hull_error err = NULL;
    assert_int_equal(hull_sandbox_reachable(sub, HULL_SANDBOX_UID_BASE, "--bind", &err), -1);
    assert_int_equal(hull_error_code(err), EACCES);
    assert_non_null(strstr(hull_error_msg(err), "--bind"));
    hull_error_free(&err);
    /* The parent's own access is untouched by the child's ids. */
    assert_int_equal(access(sub, F_OK), 0);

    assert_int_equal(chown(dir, 0, HULL_SANDBOX_UID_BASE), 0);
    assert_int_equal(chmod(dir, 0710), 0);
    assert_int_equal(hull_sandbox_reachable(sub, HULL_SANDBOX_UID_BASE, "--bind", &err), 0);
    assert_int_equal(chown(dir, HULL_SANDBOX_UID_BASE, 0), 0);
    assert_int_equal(chmod(dir, 0700), 0);
    assert_int_equal(hull_sandbox_reachable(sub, HULL_SANDBOX_UID_BASE, "--bind", &err), 0);
    assert_null(err);

    assert_int_equal(rmdir(sub), 0);
    assert_int_equal(rmdir(dir), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_dumpable_kept),
        cmocka_unit_test(test_reachable_answers),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
