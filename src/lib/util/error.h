/* Internal helpers around the public hull_error type (see include/hull.h). */
#ifndef HULL_UTIL_ERROR_H
#define HULL_UTIL_ERROR_H

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "hull.h"

/* Set *err to the message (complete as given) with errno-style code; returns -1. */
int hull_error_set(hull_error *err, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Like hull_error_set with code = errno; errno is preserved. Returns -1. */
int hull_error_errno(hull_error *err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* The exit status a shell gives a program that could not start for what it
 * is (HULL_ENOCMD: 127; HULL_ECMDEXEC, HULL_ECWD: 126), 0 for any other
 * error code: the caller's mistake (verdict bad_command), not hull's. */
int hull_cmd_status(int code);

/* Prepend "<fmt>: " to the message already in *err; returns -1. */
int hull_error_prefix(hull_error *err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Print one line (a newline is added) of a message a user reads: a word
 * longer than 4096 bytes, PATH_MAX (a 100 KB argument echoed back), is shown by its
 * first 64 and last 24 bytes around "...", cut between UTF-8 characters;
 * nothing else is cut, however long the line. */
void hull_error_print(FILE *f, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

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

static inline void hull_closedirp(DIR **d)
{
    if (*d != NULL)
        closedir(*d);
    *d = NULL;
}
#define cleanup_dir __attribute__((cleanup(hull_closedirp)))

static inline void hull_fclosep(FILE **f)
{
    if (*f != NULL)
        fclose(*f);
    *f = NULL;
}
#define cleanup_file __attribute__((cleanup(hull_fclosep)))

/* An error that is only a scratch value (a probe whose failure is handled by
 * the caller's own path) is released on scope exit; hull_error_free is a no-op
 * on NULL. */
#define cleanup_hull_error __attribute__((cleanup(hull_error_free)))

/* Hand a scope-owned value to the caller: the variable is left NULL (or -1
 * for fds) so its cleanup does nothing. */
static inline void *hull_steal_ptr(void *pp)
{
    void **p = pp;
    void *v = *p;
    *p = NULL;
    return v;
}
#define steal_ptr(p) ((__typeof__(*(p)))hull_steal_ptr(p))

static inline int hull_steal_fd(int *fd)
{
    int v = *fd;
    *fd = -1;
    return v;
}

#endif
