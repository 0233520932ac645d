/* The file API's verbs, run in a child already inside the sandbox as its
 * user (session_fs.c). Every path is resolved from the sandbox's root with
 * openat2(RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS): a symlink on the way is
 * followed as the sandbox would follow it, clamped at its root, and a
 * /proc magic link is refused. The last component is acted on through its
 * parent's fd without following it: a symlink there is read (stat), listed,
 * renamed or removed as itself, replaced by an upload, never read through.
 * A read opens only a regular file, without blocking, and checks that what
 * it opened is what it looked at. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/magic.h>
#include <linux/openat2.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/inotify.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/statvfs.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "sandbox/session_fs.h"
#include "util/error.h"
#include "util/fs.h"

/* The verbs' names, for the API, hulld and the guest's agent alike. */
static const char *const verbs[] = {
    [HULL_FS_STAT] = "stat",           [HULL_FS_LIST] = "list",       [HULL_FS_MKDIR] = "mkdir",
    [HULL_FS_RENAME] = "rename",       [HULL_FS_REMOVE] = "remove",   [HULL_FS_READ] = "read",
    [HULL_FS_WRITE] = "write",         [HULL_FS_COMMIT] = "commit",   [HULL_FS_WATCH] = "watch",
    [HULL_FS_WATCH_ADD] = "watch_add", [HULL_FS_RESERVE] = "reserve",
};

int hull_fs_verb_parse(const char *name)
{
    for (size_t i = 0; i < sizeof(verbs) / sizeof(verbs[0]); i++)
        if (name && strcmp(name, verbs[i]) == 0)
            return (int)i;
    return -1;
}

const char *hull_fs_verb_name(enum hull_fs_verb v)
{
    return (size_t)v < sizeof(verbs) / sizeof(verbs[0]) ? verbs[v] : NULL;
}

#define WATCH_MASK                                                                                 \
    (IN_CREATE | IN_MODIFY | IN_DELETE | IN_MOVED_FROM | IN_MOVED_TO | IN_DELETE_SELF |            \
     IN_MOVE_SELF | IN_ONLYDIR | IN_DONT_FOLLOW | IN_EXCL_UNLINK)

/* path from the sandbox's root. -1 with errno. */
static int resolve(int root, const char *path, int flags)
{
    struct open_how how = {
        .flags = (uint64_t)(flags | O_CLOEXEC),
        .resolve = RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS,
    };
    return (int)syscall(SYS_openat2, root, path, &how, sizeof(how));
}

/* "/a/b/c" -> parent "/a/b", name "c"; "/" -> "/", "". */
static void split(const char *path, char *parent, size_t len, const char **name)
{
    size_t n = strlen(path);
    while (n > 1 && path[n - 1] == '/')
        n--;
    const char *slash = path + n;
    while (slash > path && slash[-1] != '/')
        slash--;
    static __thread char last[NAME_MAX + 1];
    snprintf(last, sizeof(last), "%.*s", (int)(path + n - slash), slash);
    *name = last;
    size_t pl = (size_t)(slash - path);
    while (pl > 1 && path[pl - 1] == '/')
        pl--;
    snprintf(parent, len, "%.*s", (int)(pl ? pl : 1), pl ? path : "/");
}

static bool pseudo_fs(int fd)
{
    struct statfs sf;
    if (fstatfs(fd, &sf) < 0)
        return true;
    switch ((unsigned long)sf.f_type) {
    case PROC_SUPER_MAGIC:
    case SYSFS_MAGIC:
    case CGROUP_SUPER_MAGIC:
    case CGROUP2_SUPER_MAGIC:
    case DEBUGFS_MAGIC:
    case TRACEFS_MAGIC:
    case SECURITYFS_MAGIC:
    case BPF_FS_MAGIC:
    case DEVPTS_SUPER_MAGIC:
    case NSFS_MAGIC:
    case SELINUX_MAGIC:
    case SMACK_MAGIC:
    case EFIVARFS_MAGIC:
    case PSTOREFS_MAGIC:
    case BINFMTFS_MAGIC:
        return true;
    default:
        return false;
    }
}

static const char *type_of(mode_t m)
{
    return S_ISREG(m) ? "file" : S_ISDIR(m) ? "dir" : S_ISLNK(m) ? "symlink" : "other";
}

static json_object *entry_of(const struct stat *st, const char *name, const char *path,
                             const char *target)
{
    json_object *o = json_object_new_object();
    char mode[8], mtime[40];
    struct tm tm;
    snprintf(mode, sizeof(mode), "%04o", (unsigned)(st->st_mode & 07777));
    gmtime_r(&st->st_mtim.tv_sec, &tm);
    strftime(mtime, sizeof(mtime), "%Y-%m-%dT%H:%M:%SZ", &tm);
    json_object_object_add(o, "name", json_object_new_string(name[0] ? name : "/"));
    json_object_object_add(o, "path", json_object_new_string(path));
    json_object_object_add(o, "type", json_object_new_string(type_of(st->st_mode)));
    json_object_object_add(o, "size", json_object_new_int64((int64_t)st->st_size));
    json_object_object_add(o, "mode", json_object_new_string(mode));
    json_object_object_add(o, "mtime", json_object_new_string(mtime));
    if (target)
        json_object_object_add(o, "target", json_object_new_string(target));
    return o;
}

/* The entry of dir/name (name "" : dir itself), not following a symlink. */
static int entry_at(int dir, const char *name, const char *path, json_object **out, hull_error *err)
{
    struct stat st;
    if (fstatat(dir, name, &st, AT_SYMLINK_NOFOLLOW | (name[0] ? 0 : AT_EMPTY_PATH)) < 0)
        return hull_error_errno(err, "stat");
    char target[PATH_MAX];
    ssize_t n = -1;
    if (S_ISLNK(st.st_mode) && (n = readlinkat(dir, name, target, sizeof(target) - 1)) >= 0)
        target[n] = '\0';
    *out = entry_of(&st, name, path, n >= 0 ? target : NULL);
    return 0;
}

/* An O_PATH fd of directory path, made (mode) with its parents when
 * missing, or -1. */
static int mkdirs(int root, const char *path, unsigned mode, hull_error *err)
{
    char prefix[PATH_MAX];
    int cur = resolve(root, "/", O_PATH | O_DIRECTORY);
    if (cur < 0)
        return hull_error_errno(err, "open /");
    for (const char *c = path; *c;) {
        while (*c == '/')
            c++;
        size_t k = strcspn(c, "/");
        if (k == 0)
            break;
        char comp[NAME_MAX + 1];
        snprintf(comp, sizeof(comp), "%.*s", (int)k, c);
        c += k;
        snprintf(prefix, sizeof(prefix), "%.*s", (int)(c - path), path);
        int next = resolve(root, prefix, O_PATH | O_DIRECTORY);
        if (next < 0 && errno == ENOENT) {
            if (mkdirat(cur, comp, mode) < 0 && errno != EEXIST) {
                hull_error_errno(err, "mkdir %s", prefix);
                close(cur);
                return -1;
            }
            next = resolve(root, prefix, O_PATH | O_DIRECTORY);
        }
        if (next < 0) {
            hull_error_errno(err, "%s", prefix);
            close(cur);
            return -1;
        }
        close(cur);
        cur = next;
    }
    return cur;
}

static int parent_of(int root, const char *path, bool make, const char **name, hull_error *err)
{
    char parent[PATH_MAX];
    split(path, parent, sizeof(parent), name);
    if (make)
        return mkdirs(root, parent, 0755, err);
    int fd = resolve(root, parent, O_PATH | O_DIRECTORY);
    return fd < 0 ? hull_error_errno(err, "%s", parent) : fd;
}

static int do_stat(const struct hull_fs_op *op, int root, json_object **out, hull_error *err)
{
    const char *name;
    cleanup_close int dir = parent_of(root, op->path, false, &name, err);
    return dir < 0 ? -1 : entry_at(dir, name, op->path, out, err);
}

struct lister {
    json_object *entries;
    size_t n;
    size_t bytes; /* of the entries' JSON so far */
    bool truncated;
};

static int list_dir(struct lister *l, int dirfd, const char *base, unsigned depth, hull_error *err)
{
    DIR *d = fdopendir(dirfd);
    if (d == NULL) {
        close(dirfd);
        return hull_error_errno(err, "list %s", base);
    }
    struct dirent *de;
    int ret = 0;
    while (ret == 0 && (de = readdir(d)) != NULL) {
        if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
            continue;
        if (l->n >= HULL_FS_LIST_MAX) {
            l->truncated = true;
            break;
        }
        char path[PATH_MAX];
        if (snprintf(path, sizeof(path), "%s%s%s", base, strcmp(base, "/") ? "/" : "",
                     de->d_name) >= (int)sizeof(path))
            continue; /* deeper than a path can name */
        json_object *e = NULL;
        if (entry_at(dirfd, de->d_name, path, &e, err) < 0) {
            hull_error_free(err); /* gone since readdir: not listed */
            continue;
        }
        /* Names are the sandbox's: 10000 paths of 4 KiB, each byte a
         * control character escaped to six, would be 240 MiB of answer. */
        size_t len = 0;
        json_object_to_json_string_length(e, JSON_C_TO_STRING_PLAIN, &len);
        if (l->bytes + len > HULL_FS_LIST_BYTES) {
            json_object_put(e);
            l->truncated = true;
            break;
        }
        l->bytes += len + 1;
        json_object_array_add(l->entries, e);
        l->n++;
        json_object *t = NULL;
        json_object_object_get_ex(e, "type", &t);
        if (depth > 1 && strcmp(json_object_get_string(t), "dir") == 0) {
            int sub = openat(dirfd, de->d_name,
                             O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
            if (sub >= 0)
                ret = list_dir(l, sub, path, depth - 1, err);
        }
    }
    closedir(d);
    return ret;
}

static int do_list(const struct hull_fs_op *op, int root, json_object **out, hull_error *err)
{
    int dir = resolve(root, op->path, O_RDONLY | O_DIRECTORY | O_NONBLOCK);
    if (dir < 0)
        return hull_error_errno(err, "open");
    struct lister l = {.entries = json_object_new_array()};
    unsigned depth = op->depth ? op->depth : 1;
    if (list_dir(&l, dir, op->path, depth > HULL_FS_DEPTH_MAX ? HULL_FS_DEPTH_MAX : depth, err) <
        0) {
        json_object_put(l.entries);
        return -1;
    }
    *out = json_object_new_object();
    json_object_object_add(*out, "entries", l.entries);
    if (l.truncated)
        json_object_object_add(*out, "truncated", json_object_new_boolean(1));
    return 0;
}

static int do_mkdir(const struct hull_fs_op *op, int root, json_object **out, hull_error *err)
{
    cleanup_close int dir = mkdirs(root, op->path, op->mode ? op->mode & 07777 : 0755, err);
    if (dir < 0)
        return -1;
    const char *name;
    char parent[PATH_MAX];
    split(op->path, parent, sizeof(parent), &name);
    if (entry_at(dir, "", op->path, out, err) < 0)
        return -1;
    json_object_object_add(*out, "name", json_object_new_string(name[0] ? name : "/"));
    return 0;
}

static int do_rename(const struct hull_fs_op *op, int root, json_object **out, hull_error *err)
{
    const char *name, *to_name;
    cleanup_close int from = parent_of(root, op->path, false, &name, err);
    if (from < 0)
        return -1;
    char keep[NAME_MAX + 1];
    snprintf(keep, sizeof(keep), "%s", name);
    cleanup_close int to = parent_of(root, op->to, false, &to_name, err);
    if (to < 0)
        return hull_error_prefix(err, "to");
    if (keep[0] == '\0' || to_name[0] == '\0')
        return hull_error_set(err, EBUSY, "the sandbox's root cannot be renamed");
    if (renameat(from, keep, to, to_name) < 0)
        return hull_error_errno(err, "rename to %s", op->to);
    return entry_at(to, to_name, op->to, out, err);
}

static int do_remove(const struct hull_fs_op *op, int root, json_object **out, hull_error *err)
{
    const char *name;
    cleanup_close int dir = parent_of(root, op->path, false, &name, err);
    if (dir < 0)
        return -1;
    struct stat st;
    if (name[0] == '\0')
        return hull_error_set(err, EBUSY, "the sandbox's root cannot be removed");
    if (fstatat(dir, name, &st, AT_SYMLINK_NOFOLLOW) < 0)
        return hull_error_errno(err, "stat");
    if (S_ISDIR(st.st_mode) && op->recursive) {
        if (hull_rm_rf_at(dir, name, err) < 0)
            return -1;
    } else if (unlinkat(dir, name, S_ISDIR(st.st_mode) ? AT_REMOVEDIR : 0) < 0) {
        return hull_error_errno(err, "remove%s",
                                errno == ENOTEMPTY ? " (not empty: ?recursive=true)" : "");
    }
    *out = json_object_new_object();
    json_object_object_add(*out, "path", json_object_new_string(op->path));
    json_object_object_add(*out, "removed", json_object_new_boolean(1));
    return 0;
}

static int do_read(const struct hull_fs_op *op, int root, json_object **out, int *fd_out,
                   hull_error *err)
{
    const char *name;
    cleanup_close int dir = parent_of(root, op->path, false, &name, err);
    if (dir < 0)
        return -1;
    struct stat a, b;
    if (name[0] == '\0')
        return hull_error_set(err, EISDIR, "is a directory");
    /* What is there, looked at without opening it. */
    if (fstatat(dir, name, &a, AT_SYMLINK_NOFOLLOW) < 0)
        return hull_error_errno(err, "stat");
    if (S_ISDIR(a.st_mode))
        return hull_error_set(err, EISDIR, "is a directory");
    if (S_ISLNK(a.st_mode))
        return hull_error_set(err, ELOOP, "is a symlink (read its target's path instead)");
    if (!S_ISREG(a.st_mode))
        return hull_error_set(err, EINVAL, "not a regular file");
    /* Non-blocking: a FIFO swapped in since the look opens at once. */
    int fd = openat(dir, name, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY | O_CLOEXEC);
    if (fd < 0)
        return hull_error_errno(err, "open");
    if (fstat(fd, &b) < 0 || !S_ISREG(b.st_mode) || b.st_ino != a.st_ino || b.st_dev != a.st_dev) {
        close(fd);
        return hull_error_set(err, EINVAL, "not a regular file (changed while opened)");
    }
    if (pseudo_fs(fd)) {
        close(fd);
        return hull_error_set(err, EINVAL, "on a kernel pseudo-filesystem: not served");
    }
    fcntl(fd, F_SETFL, 0);
    *fd_out = fd;
    *out = json_object_new_object();
    json_object_object_add(*out, "size", json_object_new_int64((int64_t)b.st_size));
    return 0;
}

/* Which limit bounds a file in dir: the sandbox's /tmp and /dev/shm are
 * tmpfs sized by limits.tmp_size. */
static void limit_of(int root, int dir, const char *parent, char *buf, size_t len)
{
    struct stat d, t;
    fstat(dir, &d);
    static const char *const tmps[] = {"/tmp", "/dev/shm"};
    for (size_t i = 0; i < 2; i++) {
        int fd = resolve(root, tmps[i], O_PATH | O_DIRECTORY);
        bool same = fd >= 0 && fstat(fd, &t) == 0 && t.st_dev == d.st_dev;
        if (fd >= 0)
            close(fd);
        if (same) {
            snprintf(buf, len, "limits.tmp_size%s",
                     i ? " (the sandbox's /dev/shm: at most 64 MiB of it)" : "");
            return;
        }
    }
    snprintf(buf, len, "the free space of the filesystem holding %s", parent);
}

/* No room for size bytes: ENOSPC when the filesystem (bounded by limit)
 * refused them, mem_code when the sandbox's memory limit did (the OOM
 * killer took this process, or the charge failed). */
static int room_error(int e, uint64_t size, const char *limit, int mem_code, hull_error *err)
{
    if (e == ENOSPC || e == EFBIG)
        return hull_error_set(err, ENOSPC, "%llu bytes do not fit: bounded by %s",
                              (unsigned long long)size, limit);
    if (e == ENOMEM || e == EINTR)
        return hull_error_set(err, mem_code, "%llu bytes do not fit in " HULL_FS_MEMORY_NOTE,
                              (unsigned long long)size);
    errno = e;
    return hull_error_errno(err, "make room for %llu bytes", (unsigned long long)size);
}

static int do_write(const struct hull_fs_op *op, int root, json_object **out, int *fd_out,
                    hull_error *err)
{
    const char *name;
    char parent[PATH_MAX], limit[PATH_MAX + 64];
    split(op->path, parent, sizeof(parent), &name);
    cleanup_close int dir = parent_of(root, op->path, true, &name, err);
    if (dir < 0)
        return -1;
    struct stat st;
    if (name[0] == '\0' ||
        (fstatat(dir, name, &st, AT_SYMLINK_NOFOLLOW) == 0 && S_ISDIR(st.st_mode)))
        return hull_error_set(err, EISDIR, "is a directory");
    if (pseudo_fs(dir))
        return hull_error_set(err, EINVAL, "on a kernel pseudo-filesystem: not written");
    limit_of(root, dir, parent, limit, sizeof(limit));
    struct statvfs sv;
    if (fstatvfs(dir, &sv) == 0 && op->size > (uint64_t)sv.f_bavail * sv.f_frsize)
        return hull_error_set(err, ENOSPC, "%llu bytes do not fit: %llu bytes free under %s",
                              (unsigned long long)op->size,
                              (unsigned long long)sv.f_bavail * sv.f_frsize, limit);
    /* Unnamed until the whole body is in: a cut upload leaves nothing. */
    int fd = openat(dir, ".", O_TMPFILE | O_WRONLY | O_CLOEXEC, op->mode ? op->mode & 0777 : 0644);
    if (fd < 0 && (errno == EOPNOTSUPP || errno == EISDIR))
        return hull_error_set(err, ENOTSUP, "the filesystem of %s has no unnamed files (O_TMPFILE)",
                              parent);
    if (fd < 0)
        return hull_error_errno(err, "create");
    /* The declared length made now, by this process (see do_reserve). */
    if (op->size && fallocate(fd, 0, 0, (off_t)op->size) < 0 && errno != EOPNOTSUPP) {
        int e = errno;
        close(fd);
        return room_error(e, op->size, limit, ENOSPC, err);
    }
    *fd_out = fd;
    *out = json_object_new_object();
    json_object_object_add(*out, "limit", json_object_new_string(limit));
    return 0;
}

/* An upload's pages are charged to the memory cgroup of whoever first
 * writes them, on a tmpfs: hulld's, were they left to its writes, and the
 * sandbox's /tmp would hold data its memory limit never counted. So this
 * process, which stands in the sandbox's memory cgroup (session_fs.c),
 * allocates the file's length ahead of hulld's writes. fd: WRITE's
 * unnamed file; op->size: the length it needs. */
static int do_reserve(const struct hull_fs_op *op, json_object **out, hull_error *err)
{
    struct stat st;
    if (op->fd < 0 || fstat(op->fd, &st) < 0 || !S_ISREG(st.st_mode) || st.st_nlink != 0)
        return hull_error_set(err, EINVAL, "reserve: not an unnamed upload");
    /* A filesystem without fallocate is no tmpfs: its page cache is
     * reclaimable, whoever it is charged to. */
    if (op->size > (uint64_t)st.st_size && fallocate(op->fd, 0, 0, (off_t)op->size) < 0 &&
        errno != EOPNOTSUPP)
        return room_error(errno, op->size, "the sandbox's disk", ENOMEM, err);
    *out = json_object_new_object();
    json_object_object_add(*out, "size", json_object_new_int64((int64_t)op->size));
    return 0;
}

static int do_commit(const struct hull_fs_op *op, int root, int procfd, json_object **out,
                     hull_error *err)
{
    const char *name;
    cleanup_close int dir = parent_of(root, op->path, true, &name, err);
    if (dir < 0)
        return -1;
    struct stat st;
    if (op->fd < 0 || fstat(op->fd, &st) < 0 || !S_ISREG(st.st_mode) || st.st_nlink != 0)
        return hull_error_set(err, EINVAL, "commit: not an unnamed upload");
    if (name[0] == '\0')
        return hull_error_set(err, EISDIR, "is a directory");
    char fdname[16], tmp[64];
    snprintf(fdname, sizeof(fdname), "%d", op->fd);
    snprintf(tmp, sizeof(tmp), ".hull-upload-%d", (int)getpid());
    /* Our own /proc/self/fd/N (opened before entering): the one way to
     * give an O_TMPFILE a name without CAP_DAC_READ_SEARCH. A new name
     * directly; an existing one is replaced by a rename (never followed). */
    if (linkat(procfd, fdname, dir, name, AT_SYMLINK_FOLLOW) == 0)
        return entry_at(dir, name, op->path, out, err);
    if (errno != EEXIST)
        return hull_error_errno(err, "link");
    if (linkat(procfd, fdname, dir, tmp, AT_SYMLINK_FOLLOW) < 0)
        return hull_error_errno(err, "link");
    /* Replaces a file or a symlink as itself; never follows one. */
    if (renameat(dir, tmp, dir, name) < 0) {
        hull_error_errno(err, "rename into place");
        unlinkat(dir, tmp, 0);
        return -1;
    }
    return entry_at(dir, name, op->path, out, err);
}

struct watcher {
    int ifd;
    json_object *watches;
    size_t n;
    size_t bytes; /* of the watches' JSON so far: bounded as a list's */
    int last_wd;  /* the newest watch (a new one's wd is larger) */
};

/* Watch dirfd (path), and below it when recursive. Consumes dirfd. */
static int watch_dir(struct watcher *w, int dirfd, const char *path, bool recursive, unsigned depth,
                     hull_error *err)
{
    if (w->n >= HULL_FS_WATCH_DIRS_MAX) {
        close(dirfd);
        return 0;
    }
    /* inotify takes a path: "." of the directory held by fd. */
    int wd = fchdir(dirfd) == 0 ? inotify_add_watch(w->ifd, ".", WATCH_MASK) : -1;
    if (wd < 0 && (errno == ENOSPC || errno == EMFILE)) {
        /* The kernel's inotify limits for the sandbox's user, not a disk. */
        hull_error_set(err, EBUSY, "watch %s: too many inotify watches (%s)", path,
                       strerror(errno));
        close(dirfd);
        return -1;
    }
    if (wd < 0) {
        hull_error_errno(err, "watch %s", path);
        close(dirfd);
        return -1;
    }
    json_object *o = json_object_new_object();
    json_object_object_add(o, "wd", json_object_new_int(wd));
    json_object_object_add(o, "path", json_object_new_string(path));
    size_t len = 0;
    json_object_to_json_string_length(o, JSON_C_TO_STRING_PLAIN, &len);
    if (w->bytes + len > HULL_FS_LIST_BYTES) {
        /* The sandbox's names, escaped, would outgrow the answer: the
         * directories past here go unwatched, as past the 4096th. */
        if (wd > w->last_wd)
            inotify_rm_watch(w->ifd, wd); /* ours alone, not an earlier one's */
        json_object_put(o);
        w->n = HULL_FS_WATCH_DIRS_MAX;
        close(dirfd);
        return 0;
    }
    w->bytes += len + 1;
    w->last_wd = wd > w->last_wd ? wd : w->last_wd;
    json_object_array_add(w->watches, o);
    w->n++;
    DIR *d = recursive && depth < HULL_FS_DEPTH_MAX ? fdopendir(dirfd) : NULL;
    if (d == NULL) {
        close(dirfd);
        return 0;
    }
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0 ||
            (de->d_type != DT_DIR && de->d_type != DT_UNKNOWN))
            continue;
        char sub[PATH_MAX];
        if (snprintf(sub, sizeof(sub), "%s%s%s", path, strcmp(path, "/") ? "/" : "", de->d_name) >=
            (int)sizeof(sub))
            continue;
        int fd = openat(dirfd, de->d_name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        if (fd >= 0 && watch_dir(w, fd, sub, true, depth + 1, err) < 0)
            hull_error_free(err); /* gone or closed meanwhile: not watched */
    }
    closedir(d);
    return 0;
}

static int do_watch(const struct hull_fs_op *op, int root, json_object **out, int *fd_out,
                    hull_error *err)
{
    int ifd = op->verb == HULL_FS_WATCH ? inotify_init1(IN_CLOEXEC | IN_NONBLOCK) : op->fd;
    if (ifd < 0 && op->verb == HULL_FS_WATCH && errno == EMFILE)
        return hull_error_set(err, EBUSY, "too many inotify instances for the sandbox's user");
    if (ifd < 0)
        return hull_error_errno(err, op->verb == HULL_FS_WATCH ? "inotify" : "no inotify fd");
    struct watcher w = {.ifd = ifd, .watches = json_object_new_array()};
    int dir = resolve(root, op->path, O_RDONLY | O_DIRECTORY | O_NONBLOCK);
    if (dir < 0 || watch_dir(&w, dir, op->path, op->recursive, 0, err) < 0) {
        if (dir < 0)
            hull_error_errno(err, "open");
        json_object_put(w.watches);
        if (op->verb == HULL_FS_WATCH)
            close(ifd);
        return -1;
    }
    *out = json_object_new_object();
    json_object_object_add(*out, "watches", w.watches);
    if (op->verb == HULL_FS_WATCH)
        *fd_out = ifd;
    return 0;
}

int hull_fs_do(const struct hull_fs_op *op, int root, int procfd, json_object **out, int *fd_out,
               hull_error *err)
{
    switch (op->verb) {
    case HULL_FS_STAT:
        return do_stat(op, root, out, err);
    case HULL_FS_LIST:
        return do_list(op, root, out, err);
    case HULL_FS_MKDIR:
        return do_mkdir(op, root, out, err);
    case HULL_FS_RENAME:
        return do_rename(op, root, out, err);
    case HULL_FS_REMOVE:
        return do_remove(op, root, out, err);
    case HULL_FS_READ:
        return do_read(op, root, out, fd_out, err);
    case HULL_FS_WRITE:
        return do_write(op, root, out, fd_out, err);
    case HULL_FS_COMMIT:
        return do_commit(op, root, procfd, out, err);
    case HULL_FS_WATCH:
    case HULL_FS_WATCH_ADD:
        return do_watch(op, root, out, fd_out, err);
    case HULL_FS_RESERVE:
        return do_reserve(op, out, err);
    }
    return hull_error_set(err, EINVAL, "unknown file operation");
}
