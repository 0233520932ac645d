/* --copy-out: files leave the sandbox only by a path that cannot be turned
 * against the host, and only as many bytes as the policy allows.
 *
 * The source is resolved inside the sandbox's /tmp (held open by fd after
 * the sandbox is gone) without following a final symlink, must be a regular
 * file with one link on that same filesystem, and is read through the fd
 * the walk produced. The host target is written as a new file beside it and
 * renamed into place: an existing symlink or hard link at the target is
 * replaced, never written through.
 *
 * Only the file's data is copied (SEEK_DATA / SEEK_HOLE): a hole stays a
 * hole on the host, so `truncate -s 4G` in the sandbox costs the host no
 * disk. The data of all copy-outs of a run together is bounded by
 * policy.copy_out_max: the file that reaches the bound is cut there
 * (truncated), those after it are refused. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "sandbox/sandbox.h"
#include "util/error.h"
#include "util/fs.h"

/* The source, checked: a regular file of the sandbox's /tmp, opened for
 * reading. -1 with *status missing or refused. */
static int open_source(int tmpfd, const char *path, enum hull_copy_status *status, hull_error *err)
{
    char clean[PATH_MAX];
    *status = HULL_COPY_REFUSED;
    if (hull_path_clean(path, clean, sizeof(clean)) < 0 || strncmp(clean, "/tmp/", 5) != 0)
        return hull_error_set(err, EINVAL, "not a path under /tmp");
    struct stat tst, st;
    if (fstat(tmpfd, &tst) < 0)
        return hull_error_errno(err, "stat /tmp");
    cleanup_close int src = hull_resolve_in_root(tmpfd, clean + 5, HULL_RESOLVE_NOFOLLOW, err);
    if (src < 0) {
        if (hull_error_code(*err) == ENOENT)
            *status = HULL_COPY_MISSING;
        return -1;
    }
    if (fstat(src, &st) < 0)
        return hull_error_errno(err, "stat");
    if (!S_ISREG(st.st_mode))
        return hull_error_set(err, EPERM,
                              "not a regular file (symlinks, directories and "
                              "devices are not copied out)");
    if (st.st_nlink != 1)
        return hull_error_set(err, EPERM, "has %lu hard links; not copied out",
                              (unsigned long)st.st_nlink);
    if (st.st_dev != tst.st_dev)
        return hull_error_set(err, EPERM, "is not on the sandbox's /tmp");
    char fdp[32];
    int in = open(hull_fd_path(fdp, src), O_RDONLY | O_CLOEXEC);
    if (in < 0)
        return hull_error_errno(err, "open");
    return in;
}

/* The length the data ends at, holes included (a trailing hole too). */
static int finish_sparse(int out, off_t size, uint64_t *length, hull_error *err)
{
    if (ftruncate(out, size) < 0)
        return hull_error_errno(err, "truncate");
    *length = (uint64_t)size;
    return 0;
}

bool hull_sandbox_cancelled(int fd)
{
    struct pollfd p = {.fd = fd, .events = POLLIN};
    return fd >= 0 && poll(&p, 1, 0) > 0 && (p.revents & POLLIN);
}

/* Data copied between two looks at the cancel fd: a few milliseconds. */
#define COPY_CHUNK (8u << 20)

/* The data extents of in, into out at the same offsets, at most *budget
 * bytes of them, in chunks with a look at cancel_fd before each. *length
 * is the host file's length, *bytes the data written; *cut when the budget
 * ended the copy early. */
static int copy_sparse(int in, int out, uint64_t *budget, int cancel_fd, uint64_t *length,
                       uint64_t *bytes, bool *cut, hull_error *err)
{
    struct stat st;
    if (fstat(in, &st) < 0)
        return hull_error_errno(err, "stat");
    off_t size = st.st_size, off = 0;
    *bytes = 0;
    *cut = false;
    while (off < size) {
        off_t data;
        uint64_t len;
        int more = hull_next_extent(in, off, size, &data, &len, err);
        if (more <= 0)
            return more < 0 ? -1 : finish_sparse(out, size, length, err);
        if (len > *budget) {
            len = *budget;
            *cut = true;
        }
        for (uint64_t done = 0; done < len;) {
            uint64_t n = len - done < COPY_CHUNK ? len - done : COPY_CHUNK;
            if (hull_sandbox_cancelled(cancel_fd))
                return hull_error_set(err, ECANCELED, "stopped: the run was cancelled");
            if (hull_copy_range(in, out, data + (off_t)done, n, err) < 0)
                return -1;
            done += n;
        }
        *budget -= len;
        *bytes += len;
        off = data + (off_t)len;
        if (*cut)
            return finish_sparse(out, off, length, err);
    }
    return finish_sparse(out, size, length, err);
}

/* The directory fd and the last name of a host path. */
static int host_parent(const char *host, const char **name, hull_error *err)
{
    char dir[PATH_MAX];
    snprintf(dir, sizeof(dir), "%s", host);
    char *slash = strrchr(dir, '/');
    *name = host;
    if (slash) {
        *slash = '\0';
        *name = host + (slash - dir) + 1;
    }
    if (**name == '\0' || strcmp(*name, ".") == 0 || strcmp(*name, "..") == 0)
        return hull_error_set(err, EINVAL, "host path %s names no file", host);
    int dfd = open(slash ? (dir[0] ? dir : "/") : ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd < 0)
        return hull_error_errno(err, "host directory of %s", host);
    return dfd;
}

static int copy_out(int tmpfd, const struct hull_copy *c, uint64_t *budget, int cancel_fd,
                    struct hull_copied_file *f, hull_error *err)
{
    cleanup_close int in = open_source(tmpfd, c->sandbox, &f->status, err);
    if (in < 0)
        return -1;
    /* The cap is spent: nothing of this file reaches the host. Only an
     * empty (or all-hole) file would still fit. */
    off_t first = lseek(in, 0, SEEK_DATA);
    if (*budget == 0 && first >= 0)
        return hull_error_set(err, EFBIG,
                              "the copy-out limit (--copy-out-max) is used up by the "
                              "files before it");
    f->status = HULL_COPY_FAILED;
    const char *name;
    cleanup_close int dfd = host_parent(c->host, &name, err);
    if (dfd < 0)
        return -1;
    char tmp[NAME_MAX + 1];
    snprintf(tmp, sizeof(tmp), ".%.200s.hull-%d.tmp", name, (int)getpid());
    /* Unnamed until whole (O_TMPFILE): a run killed mid-copy (SIGKILL, up
     * to --copy-out-max written) leaves nothing in the caller's directory.
     * It gets the temporary name only for the rename over the target. A
     * filesystem without O_TMPFILE gets the named temporary from the start. */
    bool unnamed = true;
    cleanup_close int out = openat(dfd, ".", O_TMPFILE | O_WRONLY | O_CLOEXEC, 0644);
    if (out < 0) {
        unnamed = false;
        out = openat(dfd, tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0644);
    }
    if (out < 0)
        return hull_error_errno(err, "create beside %s", c->host);
    bool cut = false;
    char self[64];
    snprintf(self, sizeof(self), "/proc/self/fd/%d", out);
    if (copy_sparse(in, out, budget, cancel_fd, &f->size, &f->bytes, &cut, err) < 0 ||
        fsync(out) < 0 || hull_sandbox_cancelled(cancel_fd) ||
        (unnamed && linkat(AT_FDCWD, self, dfd, tmp, AT_SYMLINK_FOLLOW) < 0) ||
        renameat(dfd, tmp, dfd, name) < 0) {
        if (*err == NULL && hull_sandbox_cancelled(cancel_fd))
            hull_error_set(err, ECANCELED, "write %s: stopped: the run was cancelled", c->host);
        else if (!hull_error_code(*err))
            hull_error_errno(err, "write %s", c->host);
        else
            hull_error_prefix(err, "write %s", c->host);
        unlinkat(dfd, tmp, 0);
        return -1;
    }
    f->status = cut ? HULL_COPY_TRUNCATED : HULL_COPY_OK;
    if (cut)
        return hull_error_set(err, EFBIG,
                              "cut at %llu bytes: the copy-out limit (--copy-out-max) "
                              "was reached",
                              (unsigned long long)f->size);
    return 0;
}

void hull_sandbox_copy_out(int tmpfd, const struct hull_copy *c, uint64_t *budget, int cancel_fd,
                           struct hull_copied_file *f)
{
    hull_error e = NULL;
    f->sandbox = strdup(c->sandbox);
    f->host = strdup(c->host);
    f->status = HULL_COPY_MISSING;
    if (tmpfd < 0) {
        hull_error_set(&e, ENOENT, "the sandbox's /tmp is not available");
    } else if (hull_sandbox_cancelled(cancel_fd)) {
        f->status = HULL_COPY_FAILED;
        hull_error_set(&e, ECANCELED, "not copied: the run was cancelled");
    } else {
        copy_out(tmpfd, c, budget, cancel_fd, f, &e);
    }
    if (e != NULL) {
        if (asprintf(&f->error, "%s: %s", c->sandbox, hull_error_msg(e)) < 0)
            f->error = NULL;
        hull_error_free(&e);
    }
}
