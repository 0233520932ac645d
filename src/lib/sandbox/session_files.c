/* Files in and out of a long-lived sandbox's /tmp, and its usage.
 *
 * The sandbox's processes own its /tmp and may have put symlinks, fifos or
 * devices anywhere in it. Every path is therefore resolved beneath an fd of
 * that /tmp (hull_resolve_in_root: a symlink that climbs out is EXDEV), the
 * last component is opened without following a symlink and without
 * blocking, and only a regular file is read or written. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/fsuid.h>
#include <sys/stat.h>
#include <unistd.h>

#include "container/state.h"
#include "linux/cgroup.h"
#include "sandbox/session.h"
#include "util/error.h"
#include "util/fs.h"

/* "x/y", "/tmp/x/y" -> "x/y" (cleaned); never empty, never above /tmp. */
static int tmp_relative(const char *path, char *out, size_t len, hull_error *err)
{
    char abs[PATH_MAX], clean[PATH_MAX];
    if (path == NULL || path[0] == '\0')
        return hull_error_set(err, EINVAL, "path: empty");
    if (strncmp(path, "/tmp/", 5) == 0)
        path += 5;
    else if (path[0] == '/')
        return hull_error_set(err, EINVAL, "path: '%s' must be under /tmp", path);
    if (snprintf(abs, sizeof(abs), "/%s", path) >= (int)sizeof(abs))
        return hull_error_set(err, ENAMETOOLONG, "path: too long");
    if (hull_path_clean(abs, clean, sizeof(clean)) < 0 || strcmp(clean, "/") == 0)
        return hull_error_set(err, EINVAL, "path: '%s' is not a file under /tmp", path);
    snprintf(out, len, "%s", clean + 1);
    return 0;
}

/* Act as the sandbox's user: its /tmp may live in its user namespace,
 * where the host's root is unmapped and may not create anything; and the
 * API should not touch what that user could not. The keeper calling this
 * is single-threaded, so the switch covers nothing else. */
static void as_sandbox_user(const struct hull_session *s, bool on)
{
    if (on) {
        setfsgid(s->host_gid);
        setfsuid(s->host_uid);
    } else {
        setfsuid(0);
        setfsgid(0);
    }
}

/* Each missing directory of rel's parent is made (by the sandbox user);
 * returns an O_PATH fd of the parent and the last name in *name. A symlink
 * on the way is refused (400), not followed: the upload must land where a
 * reader of the same path finds it. */
static int parent_dir(struct hull_session *s, char *rel, const char **name, hull_error *err)
{
    char *slash = strrchr(rel, '/');
    if (slash == NULL) {
        *name = rel;
        return hull_resolve_in_root(s->tmpfd, ".", HULL_RESOLVE_DIRECTORY, err);
    }
    *slash = '\0';
    *name = slash + 1;
    int dir = hull_resolve_in_root(
        s->tmpfd, rel, HULL_RESOLVE_MKDIR | HULL_RESOLVE_DIRECTORY | HULL_RESOLVE_NO_SYMLINKS, err);
    *slash = '/';
    return dir;
}

/* put, with the sandbox user's fsuid already taken. */
static int put_file_as_user(struct hull_session *s, char *rel, const void *data, size_t len,
                            unsigned mode, hull_error *err)
{
    const char *name;
    int dir = parent_dir(s, rel, &name, err);
    if (dir < 0)
        return hull_error_prefix(err, "put /tmp/%s", rel);
    /* What is there already, before opening it: a fifo, socket or device
     * is the client's mistake (400), as for get, never opened. */
    struct stat st;
    if (fstatat(dir, name, &st, AT_SYMLINK_NOFOLLOW) == 0 && !S_ISREG(st.st_mode) &&
        !S_ISDIR(st.st_mode)) {
        close(dir);
        return hull_error_set(err, EINVAL, "put /tmp/%s: not a regular file", rel);
    }
    cleanup_close int fd =
        openat(dir, name, O_WRONLY | O_CREAT | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC,
               (mode ? mode : 0644) & 0777);
    close(dir);
    if (fd < 0 && (errno == ENXIO || errno == ELOOP))
        /* Replaced by a fifo, socket or symlink since the look. */
        return hull_error_set(err, EINVAL, "put /tmp/%s: not a regular file", rel);
    if (fd < 0)
        return hull_error_errno(err, "put /tmp/%s", rel);
    if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode))
        return hull_error_set(err, EINVAL, "put /tmp/%s: not a regular file", rel);
    if (ftruncate(fd, 0) < 0 || hull_pwrite_all(fd, data, len, -1) < 0)
        return hull_error_errno(err, "put /tmp/%s", rel);
    if (mode && fchmod(fd, mode & 0777) < 0)
        return hull_error_errno(err, "put /tmp/%s: chmod", rel);
    return 0;
}

struct put {
    char rel[PATH_MAX];
    const void *data;
    size_t len;
    unsigned mode;
};

static int put_charged(struct hull_session *s, void *arg, hull_error *err)
{
    struct put *p = arg;
    as_sandbox_user(s, true);
    int ret = put_file_as_user(s, p->rel, p->data, p->len, p->mode, err);
    as_sandbox_user(s, false);
    return ret;
}

int hull_session_put_file(struct hull_session *s, const char *path, const void *data, size_t len,
                          unsigned mode, hull_error *err)
{
    struct put p = {.data = data, .len = len, .mode = mode};
    if (tmp_relative(path, p.rel, sizeof(p.rel), err) < 0)
        return -1;
    /* Written by a child in the sandbox's memory cgroup: its pages count
     * against the sandbox's limit, not the keeper's (session_charge.c). */
    char what[PATH_MAX + 16];
    snprintf(what, sizeof(what), "put /tmp/%s", p.rel);
    return hull_session_charged(s, what, put_charged, &p, NULL, 0, err);
}

int hull_session_get_file(struct hull_session *s, const char *path, size_t max, char **data,
                          size_t *len, hull_error *err)
{
    char rel[PATH_MAX], buf[32];
    *data = NULL;
    *len = 0;
    if (tmp_relative(path, rel, sizeof(rel), err) < 0)
        return -1;
    int at = hull_resolve_in_root(s->tmpfd, rel, HULL_RESOLVE_NOFOLLOW, err);
    if (at < 0)
        return hull_error_prefix(err, "get /tmp/%s", rel);
    /* What the walk found, before opening it: a symlink, fifo or device
     * is refused here, never opened. */
    struct stat st;
    if (fstat(at, &st) < 0 || !S_ISREG(st.st_mode)) {
        close(at);
        return hull_error_set(err, EINVAL, "get /tmp/%s: not a regular file", rel);
    }
    as_sandbox_user(s, true);
    int fd = open(hull_fd_path(buf, at), O_RDONLY | O_NONBLOCK | O_CLOEXEC);
    as_sandbox_user(s, false);
    close(at);
    if (fd < 0)
        return hull_error_errno(err, "get /tmp/%s", rel);
    int ret = -1;
    if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
        hull_error_set(err, EINVAL, "get /tmp/%s: not a regular file", rel);
    } else if ((size_t)st.st_size > max) {
        hull_error_set(err, EFBIG, "get /tmp/%s: %lld bytes, over the limit of %zu", rel,
                       (long long)st.st_size, max);
    } else if (hull_read_fd(fd, data, len, err) < 0) {
        hull_error_prefix(err, "get /tmp/%s", rel);
    } else if (*len > max) {
        free(*data);
        *data = NULL;
        hull_error_set(err, EFBIG, "get /tmp/%s: over the limit of %zu bytes", rel, max);
    } else {
        ret = 0;
    }
    close(fd);
    return ret;
}

int hull_sandbox_usage(const char *id, uint64_t *cpu_ns, uint64_t *memory_bytes, hull_error *err)
{
    char path[PATH_MAX];
    *cpu_ns = *memory_bytes = 0;
    if (hull_id_validate(id, err) < 0)
        return -1;
    snprintf(path, sizeof(path), "%s/%s", HULL_SANDBOX_ROOT, id);
    /* A reader: state.json is replaced atomically, no lock needed. */
    cleanup_close int dirfd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dirfd < 0)
        return hull_error_errno(err, "usage of %s", id);
    struct hull_cstate cs;
    if (hull_cstate_read(dirfd, &cs, err) < 0)
        return hull_error_prefix(err, "usage of %s", id);
    struct hull_cgroup *cg = NULL;
    struct hull_cgroup_stats st;
    int ret = -1;
    if (cs.cgroup == NULL)
        hull_error_set(err, ENOTSUP, "usage of %s: no cgroup (process isolation)", id);
    else if (hull_cgroup_load(cs.cgroup, &cg, err) == 0 && hull_cgroup_stats(cg, &st, err) == 0)
        ret = 0;
    if (ret == 0) {
        *cpu_ns = st.cpu_usage_ns;
        *memory_bytes = st.memory_usage;
    }
    hull_cgroup_free(cg);
    hull_cstate_free(&cs);
    return ret < 0 ? hull_error_prefix(err, "usage of %s", id) : 0;
}
