/* Control-file I/O for the cgroup code: each read or write is one open and
 * one read/write on a path built in a stack buffer, because a cgroup's
 * lifetime is short and the hot path (create, enter, destroy) must not pay
 * for anything else. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "linux/cgroup_internal.h"
#include "util/error.h"

static int join_path(char *buf, size_t len, const char *dir, const char *file)
{
    int n = snprintf(buf, len, "%s/%s", dir, file);
    if (n < 0 || (size_t)n >= len) {
        errno = ENAMETOOLONG;
        return -1;
    }
    return 0;
}

/* open + one write; on failure errno is set and *opened says how far it got. */
static int write_ctl(const char *p, const char *val, bool *opened)
{
    *opened = false;
    cleanup_close int fd = open(p, O_WRONLY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    *opened = true;
    ssize_t w;
    do {
        w = write(fd, val, strlen(val));
    } while (w < 0 && errno == EINTR);
    return w < 0 ? -1 : 0;
}

int cg_write(const char *dir, const char *file, const char *val, hull_error *err)
{
    char p[PATH_MAX];
    bool opened;
    if (join_path(p, sizeof(p), dir, file) < 0)
        return hull_error_errno(err, "%s/%s", dir, file);
    if (write_ctl(p, val, &opened) < 0)
        return opened ? hull_error_errno(err, "write '%s' to %s", val, p)
                      : hull_error_errno(err, "open %s", p);
    return 0;
}

int cg_writef(const char *dir, const char *file, hull_error *err, const char *fmt, ...)
{
    char val[512];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(val, sizeof(val), fmt, ap);
    va_end(ap);
    if (n < 0 || (size_t)n >= sizeof(val))
        return hull_error_set(err, EINVAL, "%s/%s: value too long", dir, file);
    return cg_write(dir, file, val, err);
}

int cg_read(const char *dir, const char *file, char *buf, size_t len, hull_error *err)
{
    char p[PATH_MAX];
    if (join_path(p, sizeof(p), dir, file) < 0)
        return hull_error_errno(err, "%s/%s", dir, file);
    cleanup_close int fd = open(p, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return hull_error_errno(err, "open %s", p);
    size_t n = 0;
    while (n + 1 < len) {
        ssize_t r = read(fd, buf + n, len - n - 1);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0)
            return hull_error_errno(err, "read %s", p);
        if (r == 0)
            break;
        n += (size_t)r;
    }
    buf[n] = '\0';
    return 0;
}

int cg_read_u64(const char *dir, const char *file, uint64_t *out, hull_error *err)
{
    char buf[64];
    if (cg_read(dir, file, buf, sizeof(buf), err) < 0)
        return -1;
    if (strncmp(buf, "max", 3) == 0) {
        *out = UINT64_MAX;
        return 0;
    }
    char *end;
    errno = 0;
    long long v = strtoll(buf, &end, 10);
    if (errno != 0 || end == buf)
        return hull_error_set(err, EINVAL, "%s/%s: '%s' is not a number", dir, file, buf);
    /* v1 reports "unlimited" limits as a huge positive number and some
     * files as -1; both mean no limit. */
    *out = v < 0 ? UINT64_MAX : (uint64_t)v;
    return 0;
}

bool cg_keyed_get(const char *text, const char *key, uint64_t *out)
{
    size_t kl = strlen(key);
    const char *p = text;
    while (p != NULL && *p) {
        if (strncmp(p, key, kl) == 0 && (p[kl] == ' ' || p[kl] == '\t')) {
            *out = strtoull(p + kl + 1, NULL, 10);
            return true;
        }
        p = strchr(p, '\n');
        if (p != NULL)
            p++;
    }
    return false;
}

bool cg_exists(const char *dir, const char *file)
{
    char p[PATH_MAX];
    if (join_path(p, sizeof(p), dir, file) < 0)
        return false;
    return access(p, F_OK) == 0;
}

int cg_set_field(const char *dir, const char *file, const char *val, const char *field,
                 hull_error *err)
{
    char p[PATH_MAX];
    bool opened;
    if (join_path(p, sizeof(p), dir, file) < 0)
        return hull_error_errno(err, "%s", field);
    if (write_ctl(p, val, &opened) == 0)
        return 0;
    if (!opened && errno == ENOENT)
        return hull_error_set(err, ENOTSUP, "%s: not supported on this host (no %s)", field, file);
    return opened ? hull_error_errno(err, "%s: write '%s' to %s", field, val, file)
                  : hull_error_errno(err, "%s: open %s", field, p);
}

void cg_sleep_us(long us)
{
    struct timespec ts = {us / 1000000, (us % 1000000) * 1000};
    while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
        ;
}

long cg_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1000L + ts.tv_nsec / 1000000L;
}
