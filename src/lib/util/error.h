/* Internal helpers around the public hull_error type (see include/hull.h). */
#ifndef HULL_UTIL_ERROR_H
#define HULL_UTIL_ERROR_H

#include <stdlib.h>
#include <unistd.h>

#include "hull.h"

/* Set *err to the message (complete as given) with errno-style code; returns -1. */
int hull_error_set(hull_error *err, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Like hull_error_set with code = errno; errno is preserved. Returns -1. */
int hull_error_errno(hull_error *err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Prepend "<fmt>: " to the message already in *err; returns -1. */
int hull_error_prefix(hull_error *err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Scope-bound cleanup, as in crun: the pointer is freed / the fd closed when
 * the variable goes out of scope, so early returns on error cannot leak. */
static inline void hull_freep(void *p)
{
    free(*(void **)p);
}
#define cleanup_free __attribute__((cleanup(hull_freep)))

static inline void hull_closep(int *fd)
{
    if (*fd >= 0)
        close(*fd);
    *fd = -1;
}
#define cleanup_close __attribute__((cleanup(hull_closep)))

#endif
