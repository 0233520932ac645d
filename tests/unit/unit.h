/* Shared helpers for the cmocka unit tests (each tests/unit/test_*.c is its
 * own program; this header is included, not built). */
#ifndef HULL_TESTS_UNIT_H
#define HULL_TESTS_UNIT_H

#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <fcntl.h>
#include <unistd.h>

#include "hull.h"
#include "util/error.h"
#include "util/fs.h"

/* The call failed with exactly this message (and the error is freed). */
#define assert_error_msg(err, expected)                                                            \
    do {                                                                                           \
        assert_non_null(err);                                                                      \
        assert_string_equal(hull_error_msg(err), (expected));                                      \
        hull_error_free(&(err));                                                                   \
    } while (0)

/* A fresh directory under $TMPDIR (or /tmp); rm -rf'd by unit_rmdir. */
static inline char *unit_mkdtemp(void)
{
    const char *base = getenv("TMPDIR");
    char *t = NULL;
    if (asprintf(&t, "%s/hull-unit-XXXXXX", base && *base ? base : "/tmp") < 0)
        return NULL;
    if (mkdtemp(t) == NULL) {
        free(t);
        return NULL;
    }
    return t;
}

static inline void unit_rmdir(char *dir)
{
    if (dir == NULL)
        return;
    hull_error e = NULL;
    char *slash = strrchr(dir, '/');
    *slash = '\0';
    int parent = open(dir[0] ? dir : "/", O_PATH | O_DIRECTORY | O_CLOEXEC);
    *slash = '/';
    if (parent >= 0) {
        hull_rm_rf_at(parent, slash + 1, &e);
        close(parent);
    }
    hull_error_free(&e);
    free(dir);
}

#endif
