#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <linux/magic.h>
#include <linux/openat2.h>
#include <sys/syscall.h>
#include <stdint.h>
#include <unistd.h>

#include "util/error.h"
#include "util/fs.h"
#include "util/proc.h"

/* All of fd, up to max bytes: more is EFBIG (nothing kept). */
static int read_fd_all(int fd, size_t max, char **out, size_t *len)
{
    size_t cap = 4096, n = 0;
    char *buf = malloc(cap);
    if (buf == NULL)
        return -1;
    for (;;) {
        if (n + 1 >= cap) {
            cap *= 2;
            char *nb = realloc(buf, cap);
            if (nb == NULL) {
                free(buf);
                return -1;
            }
            buf = nb;
        }
        ssize_t r = read(fd, buf + n, cap - n - 1);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0) {
            int e = errno;
            free(buf);
            errno = e;
            return -1;
        }
        if (r == 0)
            break;
        n += (size_t)r;
        if (n > max) {
            free(buf);
            errno = EFBIG;
            return -1;
        }
    }
    buf[n] = '\0';
    *out = buf;
    if (len)
        *len = n;
    return 0;
}

int hull_read_fd(int fd, char **out, size_t *len, hull_error *err)
{
    if (read_fd_all(fd, SIZE_MAX, out, len) < 0)
        return hull_error_errno(err, "read");
    return 0;
}

int hull_read_fd_max(int fd, size_t max, char **out, size_t *len, hull_error *err)
{
    if (read_fd_all(fd, max, out, len) < 0)
        return errno == EFBIG ? hull_error_set(err, EFBIG, "more than %zu bytes", max)
                              : hull_error_errno(err, "read");
    return 0;
}

int hull_read_file_at(int dirfd, const char *name, char **out, size_t *len, hull_error *err)
{
    cleanup_close int fd = openat(dirfd, name, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return hull_error_errno(err, "open %s", name);
    if (read_fd_all(fd, SIZE_MAX, out, len) < 0)
        return hull_error_errno(err, "read %s", name);
    return 0;
}

int hull_read_file(const char *path, char **out, size_t *len, hull_error *err)
{
    return hull_read_file_at(AT_FDCWD, path, out, len, err);
}

int hull_open_input(const char *path)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
    if (fd < 0)
        return -1;
    int fl = fcntl(fd, F_GETFL);
    if (fl < 0 || fcntl(fd, F_SETFL, fl & ~O_NONBLOCK) < 0) {
        int e = errno;
        close(fd);
        errno = e;
        return -1;
    }
    return fd;
}

int hull_read_file_max(const char *path, size_t max, char **out, size_t *len, hull_error *err)
{
    /* A FIFO without a writer opens at once (and then reads as empty)
     * instead of holding the caller forever. */
    cleanup_close int fd = hull_open_input(path);
    if (fd < 0)
        return hull_error_errno(err, "open %s", path);
    struct stat st;
    if (fstat(fd, &st) < 0)
        return hull_error_errno(err, "stat %s", path);
    if (S_ISDIR(st.st_mode))
        return hull_error_set(err, EISDIR, "%s: is a directory", path);
    if (hull_read_fd_max(fd, max, out, len, err) < 0)
        return hull_error_prefix(err, "read %s", path);
    return 0;
}

int hull_write_file_at(int dirfd, const char *name, const char *data, size_t len, hull_error *err)
{
    cleanup_close int fd = openat(dirfd, name, O_WRONLY | O_CLOEXEC | O_NOCTTY);
    if (fd < 0)
        return hull_error_errno(err, "open %s", name);
    ssize_t w;
    do {
        w = write(fd, data, len);
    } while (w < 0 && errno == EINTR);
    if (w < 0)
        return hull_error_errno(err, "write %s", name);
    if ((size_t)w != len)
        return hull_error_set(err, EIO, "write %s: short write", name);
    return 0;
}

int hull_write_file(const char *path, const char *data, size_t len, hull_error *err)
{
    return hull_write_file_at(AT_FDCWD, path, data, len, err);
}

int hull_write_proc_file(const char *path, const char *data, size_t len, hull_error *err)
{
    cleanup_close int fd = open(path, O_WRONLY | O_CLOEXEC | O_NOCTTY | O_NOFOLLOW);
    if (fd < 0)
        return hull_error_errno(err, "open %s", path);
    /* Checked on the open file, not the path: nothing can be swapped in
     * between the check and the write. */
    struct statfs fs;
    if (fstatfs(fd, &fs) < 0)
        return hull_error_errno(err, "statfs %s", path);
    if (fs.f_type != PROC_SUPER_MAGIC)
        return hull_error_set(err, EXDEV, "%s: not on procfs (something is mounted over it)", path);
    ssize_t w;
    do {
        w = write(fd, data, len);
    } while (w < 0 && errno == EINTR);
    if (w < 0)
        return hull_error_errno(err, "write %s", path);
    if ((size_t)w != len)
        return hull_error_set(err, EIO, "write %s: short write", path);
    return 0;
}

int hull_write_file_atomic(int dirfd, const char *name, const char *data, size_t len, mode_t mode,
                           hull_error *err)
{
    return hull_write_file_replace(dirfd, name, data, len, mode, true, err);
}

/* All of data into fd (the temporary file tmp), synced when durable. */
static int write_all(int fd, const char *tmp, const char *data, size_t len, bool durable,
                     hull_error *err)
{
    if (hull_pwrite_all(fd, data, len, -1) < 0)
        return hull_error_errno(err, "write %s", tmp);
    /* fsync before rename: after a crash the name points at old or new
     * contents, never at a torn file. */
    if (durable && fsync(fd) < 0)
        return hull_error_errno(err, "fsync %s", tmp);
    return 0;
}

static void temp_name(const char *name, char *tmp, size_t size)
{
    snprintf(tmp, size, ".%s.%d.tmp", name, (int)getpid());
}

int hull_write_file_stage(int dirfd, const char *name, const char *data, size_t len, mode_t mode,
                          bool durable, hull_error *err)
{
    char tmp[PATH_MAX];
    temp_name(name, tmp, sizeof(tmp));
    int fd = openat(dirfd, tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, mode);
    if (fd < 0)
        return hull_error_errno(err, "create %s", tmp);
    int r = write_all(fd, tmp, data, len, durable, err);
    close(fd);
    if (r < 0)
        unlinkat(dirfd, tmp, 0); /* no temporary file left behind */
    return r;
}

int hull_write_file_commit(int dirfd, const char *name, hull_error *err)
{
    char tmp[PATH_MAX];
    temp_name(name, tmp, sizeof(tmp));
    if (renameat(dirfd, tmp, dirfd, name) == 0)
        return 0;
    hull_error_errno(err, "rename %s", name);
    unlinkat(dirfd, tmp, 0);
    return -1;
}

int hull_write_file_replace(int dirfd, const char *name, const char *data, size_t len, mode_t mode,
                            bool durable, hull_error *err)
{
    if (hull_write_file_stage(dirfd, name, data, len, mode, durable, err) < 0)
        return -1;
    return hull_write_file_commit(dirfd, name, err);
}

/* The writer's pid when name is ".NAME.PID.tmp", else 0. */
static pid_t temp_writer(const char *name)
{
    size_t n = strlen(name);
    if (name[0] != '.' || n < 7 || strcmp(name + n - 4, ".tmp") != 0)
        return 0;
    const char *end = name + n - 4, *p = end;
    while (p > name + 1 && p[-1] >= '0' && p[-1] <= '9')
        p--;
    if (p == end || p - 1 <= name + 1 || p[-1] != '.' || end - p > 9)
        return 0;
    return (pid_t)strtol(p, NULL, 10);
}

size_t hull_remove_stale_temps(int dirfd)
{
    int fd = openat(dirfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return 0; /* nothing to list: nothing is removed */
    DIR *d = fdopendir(fd);
    if (d == NULL) {
        close(fd);
        return 0;
    }
    size_t removed = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        pid_t pid = temp_writer(e->d_name);
        /* 0 only: a /proc that cannot be read (-1) removes nothing on a guess. */
        if (pid > 0 && hull_pid_check(pid, 0) == 0 && /* never a directory: flags 0 */
            unlinkat(dirfd, e->d_name, 0) == 0)
            removed++;
    }
    closedir(d);
    return removed;
}

int hull_write_path_atomic(const char *path, const char *data, size_t len, mode_t mode,
                           hull_error *err)
{
    char dir[PATH_MAX];
    if (snprintf(dir, sizeof(dir), "%s", path) >= (int)sizeof(dir))
        return hull_error_set(err, ENAMETOOLONG, "%s: path too long", path);
    char *slash = strrchr(dir, '/');
    const char *name = path;
    int dirfd = AT_FDCWD;
    if (slash) {
        *slash = '\0';
        name = path + (slash - dir) + 1;
        dirfd = open(slash == dir ? "/" : dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (dirfd < 0)
            return hull_error_errno(err, "%s", path);
    }
    int r = hull_write_file_atomic(dirfd, name, data, len, mode, err);
    if (dirfd != AT_FDCWD)
        close(dirfd);
    return r;
}

int hull_mkdir_p(const char *path, mode_t mode, hull_error *err)
{
    char buf[PATH_MAX];
    if (snprintf(buf, sizeof(buf), "%s", path) >= (int)sizeof(buf))
        return hull_error_set(err, ENAMETOOLONG, "mkdir %s: path too long", path);
    for (char *p = buf + 1;; p++) {
        if (*p == '/' || *p == '\0') {
            char c = *p;
            *p = '\0';
            if (mkdir(buf, mode) < 0 && errno != EEXIST)
                return hull_error_errno(err, "mkdir %s", buf);
            *p = c;
            if (c == '\0')
                break;
        }
    }
    struct stat st;
    if (stat(path, &st) < 0)
        return hull_error_errno(err, "stat %s", path);
    if (!S_ISDIR(st.st_mode))
        return hull_error_set(err, ENOTDIR, "mkdir %s: not a directory", path);
    return 0;
}

static int rm_rf_fd(int dfd, dev_t dev, hull_error *err)
{
    DIR *d = fdopendir(dfd);
    if (d == NULL) {
        close(dfd);
        return hull_error_errno(err, "opendir");
    }
    int ret = 0;
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
            continue;
        struct stat st;
        if (fstatat(dirfd(d), de->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0)
            continue;
        if (S_ISDIR(st.st_mode)) {
            if (st.st_dev != dev) {
                /* A mount point: never descend into another filesystem. */
                ret = hull_error_set(err, EBUSY, "remove %s: is a mount point", de->d_name);
                continue;
            }
            int sub = openat(dirfd(d), de->d_name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
            if (sub >= 0 && rm_rf_fd(sub, dev, err) < 0)
                ret = -1;
            if (unlinkat(dirfd(d), de->d_name, AT_REMOVEDIR) < 0 && errno != ENOENT)
                ret = hull_error_errno(err, "remove %s", de->d_name);
        } else if (unlinkat(dirfd(d), de->d_name, 0) < 0 && errno != ENOENT) {
            ret = hull_error_errno(err, "remove %s", de->d_name);
        }
    }
    closedir(d);
    return ret;
}

int hull_rm_rf_at(int dirfd, const char *name, hull_error *err)
{
    struct stat st;
    if (fstatat(dirfd, name, &st, AT_SYMLINK_NOFOLLOW) < 0)
        return errno == ENOENT ? 0 : hull_error_errno(err, "stat %s", name);
    if (!S_ISDIR(st.st_mode)) {
        if (unlinkat(dirfd, name, 0) < 0 && errno != ENOENT)
            return hull_error_errno(err, "remove %s", name);
        return 0;
    }
    int fd = openat(dirfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0)
        return hull_error_errno(err, "open %s", name);
    if (rm_rf_fd(fd, st.st_dev, err) < 0)
        return hull_error_prefix(err, "remove %s", name);
    if (unlinkat(dirfd, name, AT_REMOVEDIR) < 0 && errno != ENOENT)
        return hull_error_errno(err, "remove %s", name);
    return 0;
}

static int cmp_int(const void *a, const void *b)
{
    return *(const int *)a - *(const int *)b;
}

void hull_close_fds_except(int lowest, const int *keep, size_t n)
{
    int sorted[128];
    size_t k = 0;
    for (size_t i = 0; i < n && k < 128; i++)
        if (keep[i] >= lowest)
            sorted[k++] = keep[i];
    qsort(sorted, k, sizeof(int), cmp_int);
    unsigned from = (unsigned)lowest;
    for (size_t i = 0; i <= k; i++) {
        unsigned to = i < k ? (unsigned)sorted[i] : ~0U;
        if (to > from && syscall(SYS_close_range, from, to - 1, 0) < 0) {
            for (unsigned fd = from; fd < to && fd < 65536; fd++)
                close((int)fd);
        }
        if (i < k)
            from = (unsigned)sorted[i] + 1;
    }
}

int hull_call_in_dir(int dirfd, int (*fn)(void *), void *arg)
{
    if (unshare(CLONE_FS) < 0)
        return -1;
    cleanup_close int cwd = open(".", O_PATH | O_DIRECTORY | O_CLOEXEC);
    if (cwd < 0 || fchdir(dirfd) < 0)
        return -1;
    int r = fn(arg);
    int e = errno;
    if (fchdir(cwd) < 0)
        return -1;
    errno = e;
    return r;
}

const char *hull_fd_path(char buf[static 32], int fd)
{
    snprintf(buf, 32, "/proc/self/fd/%d", fd);
    return buf;
}

int hull_path_clean(const char *in, char *out, size_t outlen)
{
    if (outlen < 2)
        return -1;
    size_t n = 0;
    out[n++] = '/';
    const char *p = in;
    while (*p) {
        while (*p == '/')
            p++;
        if (!*p)
            break;
        const char *e = strchrnul(p, '/');
        size_t cl = (size_t)(e - p);
        if (cl == 1 && p[0] == '.') {
            /* skip */
        } else if (cl == 2 && p[0] == '.' && p[1] == '.') {
            if (n == 1)
                return -1;
            n--; /* drop trailing component */
            while (n > 1 && out[n - 1] != '/')
                n--;
            if (n > 1)
                n--;
        } else {
            if (n > 1) {
                if (n + 1 >= outlen)
                    return -1;
                out[n++] = '/';
            }
            if (n + cl >= outlen)
                return -1;
            memcpy(out + n, p, cl);
            n += cl;
        }
        p = e;
    }
    out[n] = '\0';
    return 0;
}

/* --- resolution confined to a root ------------------------------------- */

#define MAX_DEPTH    128
#define MAX_SYMLINKS 40

struct walk {
    int fds[MAX_DEPTH]; /* fds[0] is the root (not owned) */
    int depth;
};

static void walk_pop(struct walk *w)
{
    if (w->depth > 0) {
        close(w->fds[w->depth]);
        w->depth--;
    }
}

static void walk_release(struct walk *w)
{
    while (w->depth > 0)
        walk_pop(w);
}

/* The common case in one syscall: a path with no symlink in it that stays
 * beneath the root. The kernel refuses (ELOOP, EXDEV, EAGAIN on a rename
 * race) rather than follow or escape, and every refusal, like a missing
 * component to create, falls back to the walk below, which has the final
 * word on symlinks and errors. */
static int resolve_fast(int rootfd, const char *path, int flags)
{
    while (*path == '/')
        path++;
    struct open_how how = {
        .flags = O_PATH | O_CLOEXEC | ((flags & HULL_RESOLVE_NOFOLLOW) ? O_NOFOLLOW : 0) |
                 ((flags & HULL_RESOLVE_DIRECTORY) ? O_DIRECTORY : 0),
        .resolve = RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS,
    };
    int fd = (int)syscall(SYS_openat2, rootfd, *path ? path : ".", &how, sizeof(how));
    if (fd < 0)
        return -1;
    /* A trailing symlink comes back as itself only under NOFOLLOW, which is
     * what the caller asked for; MKFILE wants a file, anything else is fine. */
    return fd;
}

int hull_resolve_in_root(int rootfd, const char *path, int flags, hull_error *err)
{
    int fast = resolve_fast(rootfd, path, flags);
    if (fast >= 0)
        return fast;
    /* ENOENT from the fast path is final when nothing is to be created: it
     * refuses every symlink (ELOOP) and escape (EXDEV) before it looks
     * further, so the missing component comes before any of them, and the
     * walk would stop at the same place with the same error. (A missing
     * maskedPath costs one syscall instead of five.) */
    if (errno == ENOENT && !(flags & (HULL_RESOLVE_MKDIR | HULL_RESOLVE_MKFILE)))
        return hull_error_errno(err, "%s", path);

    struct walk w = {.depth = 0};
    w.fds[0] = rootfd;
    /* The remaining path to walk; symlink targets are spliced in front. */
    char *rest = strdup(path);
    if (rest == NULL)
        return hull_error_set(err, ENOMEM, "out of memory");
    int symlinks = 0;
    int result = -1;

    char *cur = rest;
    for (;;) {
        while (*cur == '/')
            cur++;
        if (*cur == '\0') {
            /* Path fully consumed: the answer is the directory on top. */
            result = openat(w.fds[w.depth], ".", O_PATH | O_CLOEXEC);
            if (result < 0)
                hull_error_errno(err, "%s", path);
            break;
        }
        char *end = strchrnul(cur, '/');
        bool last = true;
        for (char *q = end; *q; q++)
            if (*q != '/') {
                last = false;
                break;
            }
        char name[NAME_MAX + 1];
        size_t len = (size_t)(end - cur);
        if (len > NAME_MAX) {
            hull_error_set(err, ENAMETOOLONG, "%s: path too long", path);
            break;
        }
        memcpy(name, cur, len);
        name[len] = '\0';
        cur = end;

        if (strcmp(name, ".") == 0)
            continue;
        if (strcmp(name, "..") == 0) {
            if (w.depth == 0) {
                hull_error_set(err, EXDEV, "%s: escapes the root through '..'", path);
                break;
            }
            walk_pop(&w);
            continue;
        }

        int parent = w.fds[w.depth];
        int fd = openat(parent, name, O_PATH | O_NOFOLLOW | O_CLOEXEC);
        if (fd < 0 && errno == ENOENT && (flags & (HULL_RESOLVE_MKDIR | HULL_RESOLVE_MKFILE))) {
            if (last && (flags & HULL_RESOLVE_MKFILE)) {
                int c = openat(parent, name, O_CREAT | O_EXCL | O_WRONLY | O_NOFOLLOW | O_CLOEXEC,
                               0644);
                if (c >= 0)
                    close(c);
                else if (errno != EEXIST) {
                    hull_error_errno(err, "create %s", path);
                    break;
                }
            } else if (mkdirat(parent, name, 0755) < 0 && errno != EEXIST) {
                hull_error_errno(err, "mkdir %s", path);
                break;
            }
            fd = openat(parent, name, O_PATH | O_NOFOLLOW | O_CLOEXEC);
        }
        if (fd < 0) {
            hull_error_errno(err, "%s", path);
            break;
        }
        struct stat st;
        if (fstat(fd, &st) < 0) {
            close(fd);
            hull_error_errno(err, "stat %s", path);
            break;
        }
        if (S_ISLNK(st.st_mode) && !(last && (flags & HULL_RESOLVE_NOFOLLOW))) {
            close(fd);
            if (flags & HULL_RESOLVE_NO_SYMLINKS) {
                hull_error_set(err, ELOOP, "%s: '%s' is a symlink (not followed here)", path, name);
                break;
            }
            if (++symlinks > MAX_SYMLINKS) {
                hull_error_set(err, ELOOP, "%s: too many levels of symbolic links", path);
                break;
            }
            char target[PATH_MAX];
            ssize_t tl = readlinkat(parent, name, target, sizeof(target) - 1);
            if (tl < 0) {
                hull_error_errno(err, "readlink %s", path);
                break;
            }
            target[tl] = '\0';
            /* An absolute target is absolute inside the root. */
            if (target[0] == '/')
                walk_release(&w);
            char *spliced = NULL;
            if (asprintf(&spliced, "%s/%s", target, cur) < 0) {
                hull_error_set(err, ENOMEM, "out of memory");
                break;
            }
            free(rest);
            rest = cur = spliced;
            continue;
        }
        if (last) {
            if ((flags & HULL_RESOLVE_DIRECTORY) && !S_ISDIR(st.st_mode)) {
                close(fd);
                hull_error_set(err, ENOTDIR, "%s: not a directory", path);
                break;
            }
            result = fd;
            break;
        }
        if (!S_ISDIR(st.st_mode)) {
            close(fd);
            hull_error_set(err, ENOTDIR, "%s: not a directory", path);
            break;
        }
        if (w.depth + 1 >= MAX_DEPTH) {
            close(fd);
            hull_error_set(err, ENAMETOOLONG, "%s: path too long", path);
            break;
        }
        w.fds[++w.depth] = fd;
    }
    walk_release(&w);
    free(rest);
    return result;
}

int hull_pwrite_all(int fd, const void *buf, size_t n, off_t off)
{
    const char *p = buf;
    while (n > 0) {
        ssize_t w = off < 0 ? write(fd, p, n) : pwrite(fd, p, n, off);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0) {
            if (w == 0) /* no progress: never loop on it */
                errno = EIO;
            return -1;
        }
        p += w;
        n -= (size_t)w;
        if (off >= 0)
            off += w;
    }
    return 0;
}

int hull_dir_empty(const char *path)
{
    cleanup_dir DIR *d = opendir(path);
    if (d == NULL)
        return -1;
    struct dirent *de;
    while ((de = readdir(d)) != NULL)
        if (strcmp(de->d_name, ".") != 0 && strcmp(de->d_name, "..") != 0)
            return 0;
    return 1;
}

size_t hull_read_all(int fd, void *buf, size_t n)
{
    char *p = buf;
    size_t got = 0;
    while (got < n) {
        ssize_t r = read(fd, p + got, n - got);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            break;
        got += (size_t)r;
    }
    return got;
}

int hull_copy_range(int in, int out, off_t off, uint64_t len, hull_error *err)
{
    char buf[65536];
    while (len > 0) {
        size_t want = len < sizeof(buf) ? (size_t)len : sizeof(buf);
        ssize_t n = pread(in, buf, want, off);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return hull_error_errno(err, "read");
        if (n == 0)
            break; /* the file is shorter than it was: nothing more to copy */
        if (hull_pwrite_all(out, buf, (size_t)n, off) < 0)
            return hull_error_errno(err, "write");
        off += n;
        len -= (uint64_t)n;
    }
    return 0;
}

int hull_next_extent(int in, off_t off, off_t size, off_t *data, uint64_t *len, hull_error *err)
{
    off_t d = lseek(in, off, SEEK_DATA);
    if ((d < 0 && errno == ENXIO) || (d >= 0 && d >= size))
        return 0; /* a hole to the end (of the size the copy took) */
    if (d < 0)
        return hull_error_errno(err, "seek");
    off_t h = lseek(in, d, SEEK_HOLE);
    if (h < 0)
        return hull_error_errno(err, "seek");
    *data = d;
    *len = (uint64_t)((h > size ? size : h) - d);
    return 1;
}
