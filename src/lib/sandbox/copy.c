/* --copy-out: files leave the sandbox only by a path that cannot be turned
 * against the host.
 *
 * The source is resolved inside the sandbox's /tmp (held open by fd after
 * the sandbox is gone) without following a final symlink, must be a regular
 * file with one link on that same filesystem, and is read through the fd
 * the walk produced. The host target is written as a new file beside it and
 * renamed into place: an existing symlink or hard link at the target is
 * replaced, never written through. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "sandbox/sandbox.h"
#include "util/error.h"
#include "util/fs.h"

static int copy_out(int tmpfd, const struct hull_copy *c, uint64_t *size, hull_error *err)
{
    char clean[PATH_MAX];
    if (hull_path_clean(c->sandbox, clean, sizeof(clean)) < 0 || strncmp(clean, "/tmp/", 5) != 0)
        return hull_error_set(err, EINVAL, "not a path under /tmp");
    struct stat tst;
    if (fstat(tmpfd, &tst) < 0)
        return hull_error_errno(err, "stat /tmp");
    cleanup_close int src = hull_resolve_in_root(tmpfd, clean + 5, HULL_RESOLVE_NOFOLLOW, err);
    if (src < 0)
        return -1;
    struct stat st;
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
    cleanup_close int in = open(hull_fd_path(fdp, src), O_RDONLY | O_CLOEXEC);
    if (in < 0)
        return hull_error_errno(err, "open");

    char dir[PATH_MAX];
    snprintf(dir, sizeof(dir), "%s", c->host);
    char *slash = strrchr(dir, '/');
    const char *name = c->host;
    if (slash) {
        *slash = '\0';
        name = c->host + (slash - dir) + 1;
    }
    if (*name == '\0' || strcmp(name, ".") == 0 || strcmp(name, "..") == 0)
        return hull_error_set(err, EINVAL, "host path %s names no file", c->host);
    cleanup_close int dfd =
        open(slash ? (dir[0] ? dir : "/") : ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd < 0)
        return hull_error_errno(err, "host directory of %s", c->host);
    char tmp[NAME_MAX + 1];
    snprintf(tmp, sizeof(tmp), ".%.200s.hull-%d.tmp", name, (int)getpid());
    cleanup_close int out =
        openat(dfd, tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0644);
    if (out < 0)
        return hull_error_errno(err, "create beside %s", c->host);
    char buf[65536];
    ssize_t n;
    uint64_t total = 0;
    while ((n = read(in, buf, sizeof(buf))) > 0) {
        if (write(out, buf, (size_t)n) != n) {
            hull_error_errno(err, "write %s", c->host);
            unlinkat(dfd, tmp, 0);
            return -1;
        }
        total += (uint64_t)n;
    }
    if (n < 0 || fsync(out) < 0 || renameat(dfd, tmp, dfd, name) < 0) {
        hull_error_errno(err, "write %s", c->host);
        unlinkat(dfd, tmp, 0);
        return -1;
    }
    *size = total;
    return 0;
}

void hull_sandbox_copy_out(int tmpfd, const struct hull_copy *c, struct hull_copied_file *f)
{
    hull_error e = NULL;
    f->sandbox = strdup(c->sandbox);
    f->host = strdup(c->host);
    if (tmpfd < 0)
        hull_error_set(&e, ENOENT, "the sandbox's /tmp is not available");
    else
        copy_out(tmpfd, c, &f->size, &e);
    if (e != NULL) {
        if (asprintf(&f->error, "%s: %s", c->sandbox, hull_error_msg(e)) < 0)
            f->error = NULL;
        hull_error_free(&e);
    }
}
