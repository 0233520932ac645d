/* Templates (hulld's /v1/templates): a long-lived sandbox's /tmp, its only
 * writable place besides /dev/shm, copied out to a host directory, and
 * later copied into the /tmp of a new sandbox.
 *
 * Saving reads what the sandbox's processes made, so everything there is
 * hostile: the walk goes one directory fd at a time from the sandbox's
 * /tmp fd, opens nothing through a symlink (O_NOFOLLOW, checked against the
 * fstatat that chose it), never leaves that filesystem (a mount is
 * skipped), copies only directories, regular files (their data extents:
 * a sparse file costs what it holds) and symlinks (as links: they are only
 * ever resolved inside a sandbox), skips fifos, sockets and devices, and
 * stops at a byte budget and a depth. The sandbox is frozen meanwhile when
 * it has a cgroup, so the copy is one moment of it and nothing changes
 * under the walk. Set-id bits are dropped.
 *
 * Loading writes into a new sandbox's /tmp as the sandbox's user (fsuid),
 * as hull_session_put_file does, from the host directory hulld wrote. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/fsuid.h>
#include <sys/stat.h>
#include <unistd.h>

#include "linux/cgroup.h"
#include "sandbox/session.h"
#include "util/error.h"
#include "util/fs.h"
#include "util/log.h"

#define TPL_MAX_DEPTH 64
/* What an entry costs of the budget besides its data (its inode, name). */
#define TPL_ENTRY_COST 512u

struct walk {
    struct hull_session *s;
    dev_t dev;       /* save: the sandbox's /tmp; nothing on another fs is copied */
    bool load;       /* writing into the sandbox: as its user */
    uint64_t budget; /* save: bytes left */
    uint64_t max;    /* save: the budget at the start */
    struct hull_tmp_stats *st;
    char path[PATH_MAX]; /* of the entry at hand, relative, for messages */
};

/* The sandbox's user for what load creates (see session_files.c: its /tmp
 * may be in its user namespace, where host root may create nothing). The
 * keeper calling this is single-threaded. */
static void as_user(const struct walk *w, bool on)
{
    if (!w->load)
        return;
    if (on) {
        setfsgid(w->s->host_gid);
        setfsuid(w->s->host_uid);
    } else {
        setfsuid(0);
        setfsgid(0);
    }
}

static int charge(struct walk *w, uint64_t n, hull_error *err)
{
    if (w->load)
        return 0;
    if (n > w->budget)
        return hull_error_set(err, EFBIG, "the copy is over its limit of %llu bytes",
                              (unsigned long long)w->max);
    w->budget -= n;
    return 0;
}

/* in's data extents into out at the same offsets, holes left holes. */
static int copy_data(struct walk *w, int in, int out, off_t size, hull_error *err)
{
    off_t off = 0;
    off_t data;
    uint64_t len;
    int more;
    while ((more = hull_next_extent(in, off, size, &data, &len, err)) > 0) {
        if (charge(w, len, err) < 0 || hull_copy_range(in, out, data, len, err) < 0)
            return -1;
        w->st->bytes += len;
        off = data + (off_t)len;
    }
    if (more < 0)
        return -1;
    if (ftruncate(out, size) < 0)
        return hull_error_errno(err, "truncate");
    return 0;
}

/* Open name in dir as what fstatat found (st): never through a symlink
 * or something swapped in since. */
static int open_same(int dir, const char *name, int flags, const struct stat *st)
{
    int fd = openat(dir, name, flags | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY | O_CLOEXEC);
    struct stat now;
    if (fd >= 0 && (fstat(fd, &now) < 0 || now.st_dev != st->st_dev || now.st_ino != st->st_ino)) {
        close(fd);
        errno = ESTALE;
        return -1;
    }
    return fd;
}

static int walk_dir(struct walk *w, int src, int dst, unsigned depth, hull_error *err);

/* Saving a live sandbox (process level: no freezer), an entry may go
 * between its listing and its opening: skipped, as if it had gone first. */
static bool gone(struct walk *w)
{
    if (w->load || errno != ENOENT)
        return false;
    w->st->skipped++;
    return true;
}

static int copy_file(struct walk *w, int src, int dst, const char *name, const struct stat *st,
                     hull_error *err)
{
    cleanup_close int in = open_same(src, name, O_RDONLY, st);
    if (in < 0 && gone(w))
        return 0;
    if (in < 0)
        return hull_error_errno(err, "/tmp/%s", w->path);
    as_user(w, true);
    cleanup_close int out =
        openat(dst, name, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
    as_user(w, false);
    if (out < 0)
        return hull_error_errno(err, "/tmp/%s", w->path);
    struct timespec ts[2] = {st->st_atim, st->st_mtim};
    if (copy_data(w, in, out, st->st_size, err) < 0)
        return hull_error_prefix(err, "/tmp/%s", w->path);
    if (fchmod(out, st->st_mode & 0777) < 0 || futimens(out, ts) < 0)
        return hull_error_errno(err, "/tmp/%s", w->path);
    w->st->files++;
    return 0;
}

static int copy_link(struct walk *w, int src, int dst, const char *name, hull_error *err)
{
    char target[PATH_MAX];
    ssize_t n = readlinkat(src, name, target, sizeof(target) - 1);
    if (n < 0 && gone(w))
        return 0;
    if (n < 0)
        return hull_error_errno(err, "/tmp/%s", w->path);
    target[n] = '\0';
    if (charge(w, (uint64_t)n, err) < 0)
        return hull_error_prefix(err, "/tmp/%s", w->path);
    as_user(w, true);
    int r = symlinkat(target, dst, name);
    as_user(w, false);
    if (r < 0)
        return hull_error_errno(err, "/tmp/%s", w->path);
    w->st->symlinks++;
    return 0;
}

static int copy_subdir(struct walk *w, int src, int dst, const char *name, const struct stat *st,
                       unsigned depth, hull_error *err)
{
    if (depth >= TPL_MAX_DEPTH)
        return hull_error_set(err, ELOOP, "/tmp/%s: deeper than %u directories", w->path,
                              TPL_MAX_DEPTH);
    cleanup_close int in = open_same(src, name, O_RDONLY | O_DIRECTORY, st);
    if (in < 0 && gone(w))
        return 0;
    if (in < 0)
        return hull_error_errno(err, "/tmp/%s", w->path);
    as_user(w, true);
    int r = mkdirat(dst, name, 0700);
    cleanup_close int out =
        r == 0 ? openat(dst, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC) : -1;
    as_user(w, false);
    if (out < 0)
        return hull_error_errno(err, "/tmp/%s", w->path);
    if (walk_dir(w, in, out, depth + 1, err) < 0)
        return -1;
    struct timespec ts[2] = {st->st_atim, st->st_mtim};
    if (fchmod(out, st->st_mode & 01777) < 0 || futimens(out, ts) < 0)
        return hull_error_errno(err, "/tmp/%s", w->path);
    w->st->dirs++;
    return 0;
}

static int copy_entry(struct walk *w, int src, int dst, const char *name, unsigned depth,
                      hull_error *err)
{
    struct stat st;
    if (fstatat(src, name, &st, AT_SYMLINK_NOFOLLOW) < 0)
        return gone(w) ? 0 : hull_error_errno(err, "/tmp/%s", w->path);
    if (!w->load && st.st_dev != w->dev) {
        w->st->skipped++; /* a mount on /tmp: not the sandbox's /tmp */
        return 0;
    }
    if (charge(w, TPL_ENTRY_COST, err) < 0)
        return hull_error_prefix(err, "/tmp/%s", w->path);
    if (S_ISREG(st.st_mode))
        return copy_file(w, src, dst, name, &st, err);
    if (S_ISLNK(st.st_mode))
        return copy_link(w, src, dst, name, err);
    if (S_ISDIR(st.st_mode))
        return copy_subdir(w, src, dst, name, &st, depth, err);
    w->st->skipped++; /* a fifo, socket or device: nothing to keep */
    return 0;
}

static int walk_dir(struct walk *w, int src, int dst, unsigned depth, hull_error *err)
{
    int fd = openat(src, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return hull_error_errno(err, "/tmp/%s", w->path);
    cleanup_dir DIR *d = fdopendir(fd);
    if (d == NULL) {
        close(fd);
        return hull_error_errno(err, "/tmp/%s", w->path);
    }
    size_t base = strlen(w->path);
    struct dirent *de;
    errno = 0;
    while ((de = readdir(d)) != NULL) {
        if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
            continue;
        if (snprintf(w->path + base, sizeof(w->path) - base, "%s%s", base ? "/" : "", de->d_name) >=
            (int)(sizeof(w->path) - base))
            return hull_error_set(err, ENAMETOOLONG, "/tmp/%s...: path too long", w->path);
        if (copy_entry(w, src, dst, de->d_name, depth, err) < 0)
            return -1;
        w->path[base] = '\0';
        errno = 0;
    }
    if (errno)
        return hull_error_errno(err, "/tmp/%s", w->path);
    return 0;
}

int hull_session_save_tmp(struct hull_session *s, int dirfd, uint64_t max_bytes,
                          struct hull_tmp_stats *st, hull_error *err)
{
    memset(st, 0, sizeof(*st));
    struct walk w = {.s = s, .budget = max_bytes, .max = max_bytes, .st = st};
    struct stat root;
    if (fstat(s->tmpfd, &root) < 0)
        return hull_error_errno(err, "save /tmp");
    w.dev = root.st_dev;
    /* Frozen while copied: one moment of it, nothing moving under the walk. */
    bool freeze = s->c.cgroup && !s->paused;
    if (freeze && hull_cgroup_freeze(s->c.cgroup, true, err) < 0)
        return hull_error_prefix(err, "save /tmp: freeze");
    int r = walk_dir(&w, s->tmpfd, dirfd, 0, err);
    hull_error e = NULL;
    if (freeze && hull_cgroup_freeze(s->c.cgroup, false, &e) < 0) {
        if (r == 0) {
            *err = e;
            r = -1;
        } else {
            hull_warn("sandbox %s: thaw: %s", s->id, hull_error_msg(e));
            hull_error_free(&e);
        }
    }
    return r < 0 ? hull_error_prefix(err, "save /tmp") : 0;
}

struct load {
    int dirfd;
    struct hull_tmp_stats *st;
};

static int load_charged(struct hull_session *s, void *arg, hull_error *err)
{
    struct load *l = arg;
    struct walk w = {.s = s, .load = true, .budget = UINT64_MAX, .st = l->st};
    return walk_dir(&w, l->dirfd, s->tmpfd, 0, err);
}

int hull_session_load_tmp(struct hull_session *s, int dirfd, struct hull_tmp_stats *st,
                          hull_error *err)
{
    memset(st, 0, sizeof(*st));
    /* Written by a child in the sandbox's memory cgroup: the template's
     * files count against the new sandbox's limit (session_charge.c). */
    struct load l = {.dirfd = dirfd, .st = st};
    return hull_session_charged(s, "the template's files", load_charged, &l, st, sizeof(*st), err) <
                   0
               ? hull_error_prefix(err, "load /tmp")
               : 0;
}
