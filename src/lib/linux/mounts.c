/* Root filesystem assembly inside the container's mount namespace.
 *
 * Every destination is resolved with hull_resolve_in_root() to an O_PATH fd
 * and mounted through /proc/self/fd/N (or move_mount onto the fd). The path
 * is never looked up again by name, so a container that swaps a directory
 * for a symlink between our check and our mount (CVE-2021-30465) moves
 * nothing outside its rootfs. Bind mounts are built detached with
 * open_tree(OPEN_TREE_CLONE), given their attributes with mount_setattr(),
 * and only then attached: no window where a writable bind is visible
 * (linux/bind.c, which devices.c uses too).
 */
#include <errno.h>
#include <dirent.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/syscall.h>
#include <linux/magic.h>
#include <unistd.h>

#include "linux/bind.h"
#include "linux/devices.h"
#include "linux/mounts.h"
#include "util/error.h"
#include "util/fs.h"
#include "util/log.h"

static int bind_mount(const char *src, int destfd, const struct hull_mount *m,
                      unsigned long extra_set, bool recursive, hull_error *err)
{
    return hull_bind_mount_from(-1, src, destfd, m, extra_set, recursive, err);
}

/* Copy the directory behind a fresh tmpfs into it ("tmpcopyup"), so the
 * tmpfs starts with what the image had there. Shallow trees only matter
 * here (/etc, /run); deep ones recurse. */
static int copy_tree(int from, int to, hull_error *err);

static int copy_entry(int from, int to, const char *name, const struct stat *st, hull_error *err)
{
    if (S_ISDIR(st->st_mode)) {
        if (mkdirat(to, name, st->st_mode & 07777) < 0 && errno != EEXIST)
            return hull_error_errno(err, "tmpcopyup: mkdir %s", name);
        cleanup_close int sf = openat(from, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        cleanup_close int df = openat(to, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        if (sf < 0 || df < 0)
            return hull_error_errno(err, "tmpcopyup: open %s", name);
        if (copy_tree(sf, df, err) < 0)
            return -1;
    } else if (S_ISLNK(st->st_mode)) {
        char target[PATH_MAX];
        ssize_t n = readlinkat(from, name, target, sizeof(target) - 1);
        if (n < 0)
            return hull_error_errno(err, "tmpcopyup: readlink %s", name);
        target[n] = '\0';
        if (symlinkat(target, to, name) < 0)
            return hull_error_errno(err, "tmpcopyup: symlink %s", name);
    } else if (S_ISREG(st->st_mode)) {
        cleanup_close int sf = openat(from, name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
        cleanup_close int df =
            openat(to, name, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, st->st_mode & 07777);
        if (sf < 0 || df < 0)
            return hull_error_errno(err, "tmpcopyup: copy %s", name);
        char buf[65536];
        ssize_t n;
        while ((n = read(sf, buf, sizeof(buf))) > 0)
            if (write(df, buf, (size_t)n) != n)
                return hull_error_errno(err, "tmpcopyup: write %s", name);
        if (n < 0)
            return hull_error_errno(err, "tmpcopyup: read %s", name);
    } else {
        return 0; /* devices, fifos, sockets: not copied */
    }
    if (fchownat(to, name, st->st_uid, st->st_gid, AT_SYMLINK_NOFOLLOW) < 0 && errno != EINVAL)
        return hull_error_errno(err, "tmpcopyup: chown %s", name);
    return 0;
}

static int copy_tree(int from, int to, hull_error *err)
{
    int dfd = dup(from);
    if (dfd < 0)
        return hull_error_errno(err, "tmpcopyup");
    DIR *d = fdopendir(dfd);
    if (d == NULL) {
        close(dfd);
        return hull_error_errno(err, "tmpcopyup");
    }
    int ret = 0;
    struct dirent *de;
    while (ret == 0 && (de = readdir(d)) != NULL) {
        if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
            continue;
        struct stat st;
        if (fstatat(from, de->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0)
            continue;
        ret = copy_entry(from, to, de->d_name, &st, err);
    }
    closedir(d);
    return ret;
}

static bool is_type(const struct hull_mount *m, const char *type)
{
    return m->type != NULL && strcmp(m->type, type) == 0;
}

/* A mount the kernel refuses in a user namespace without its own netns/ipcns
 * is replaced by a bind of the host's, as runc does. */
static int fs_mount_fallback(struct hull_rootfs *r, const struct hull_mount *m, int destfd,
                             hull_error *err)
{
    const char *src = is_type(m, "sysfs") ? "/sys" : "/dev/mqueue";
    hull_debug("mount %s: %s refused in this user namespace, binding %s instead", m->destination,
               m->type, src);
    (void)r;
    return bind_mount(src, destfd, m, 0, true, err);
}

static int mount_one(struct hull_rootfs *r, const struct hull_mount *m, size_t index,
                     hull_error *err)
{
    char fdp[32];
    if (m->bind) {
        struct stat st;
        cleanup_close int srcfd = -1;
        if (stat(m->source, &st) < 0) {
            if (errno != EACCES || r->open_source == NULL)
                return hull_error_errno(err, "mounts[%zu].source: %s", index, m->source);
            /* runc and crun bind such a source: get it opened for us, and
             * clone the mount from the fd (the kernel still locks the host
             * mount's flags in our namespace). */
            srcfd = r->open_source(r->open_source_arg, index, err);
            if (srcfd < 0)
                return -1;
            if (fstat(srcfd, &st) < 0)
                return hull_error_errno(err, "mounts[%zu].source: %s", index, m->source);
        }
        int how = S_ISDIR(st.st_mode) ? HULL_RESOLVE_MKDIR : HULL_RESOLVE_MKFILE;
        cleanup_close int destfd = hull_resolve_in_root(r->rootfd, m->destination, how, err);
        if (destfd < 0)
            return hull_error_prefix(err, "mounts[%zu].destination", index);
        if (hull_bind_mount_from(srcfd, m->source, destfd, m, 0, m->rbind, err) < 0)
            return hull_error_prefix(err, "mounts[%zu]", index);
        return 0;
    }

    cleanup_close int destfd = hull_resolve_in_root(
        r->rootfd, m->destination, HULL_RESOLVE_MKDIR | HULL_RESOLVE_DIRECTORY, err);
    if (destfd < 0)
        return hull_error_prefix(err, "mounts[%zu].destination", index);

    if (is_type(m, "cgroup") || is_type(m, "cgroup2")) {
        if (r->cgroup == NULL) {
            /* No cgroup of its own (--cgroup-manager disabled): the
             * caller's cgroups are not the container's to see, so an empty
             * read-only tmpfs stands where the view would be. */
            hull_debug("mounts[%zu]: no cgroup: an empty tmpfs on %s", index, m->destination);
            if (mount("tmpfs", hull_fd_path(fdp, destfd), "tmpfs",
                      MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC, "size=4k,mode=0555") < 0)
                return hull_error_errno(err, "mounts[%zu]: mount an empty tmpfs on %s", index,
                                        m->destination);
            return 0;
        }
        if (hull_cgroup_mount(r->cgroup, hull_fd_path(fdp, destfd), (m->flags & MS_RDONLY) != 0,
                              r->cgroupns, m->flags & ~MS_RDONLY, err) < 0)
            return hull_error_prefix(err, "mounts[%zu]", index);
        return 0;
    }

    /* tmpcopyup needs the directory we are about to cover. */
    cleanup_close int below = -1;
    if (m->tmpcopyup && is_type(m, "tmpfs")) {
        below = openat(destfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (below < 0)
            return hull_error_errno(err, "mounts[%zu]: tmpcopyup", index);
    }

    const char *src = m->source ? m->source : (m->type ? m->type : "none");
    if (mount(src, hull_fd_path(fdp, destfd), m->type, m->flags, m->data) < 0) {
        int e = errno;
        if ((e == EPERM || e == EINVAL) && r->userns &&
            (is_type(m, "sysfs") || is_type(m, "mqueue")))
            return fs_mount_fallback(r, m, destfd, err) < 0
                       ? hull_error_prefix(err, "mounts[%zu]", index)
                       : 0;
        errno = e;
        return hull_error_errno(err, "mounts[%zu]: mount %s on %s", index, m->type, m->destination);
    }
    if (below >= 0 || m->propagation || m->attr_set || m->attr_clr) {
        /* Reopen the destination: destfd still names the covered directory. */
        cleanup_close int top =
            hull_resolve_in_root(r->rootfd, m->destination, HULL_RESOLVE_DIRECTORY, err);
        if (top < 0)
            return hull_error_prefix(err, "mounts[%zu]", index);
        if (below >= 0) {
            cleanup_close int dir = openat(top, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
            if (dir < 0 || copy_tree(below, dir, err) < 0)
                return hull_error_prefix(err, "mounts[%zu]", index);
        }
        /* The recursive options ("rro", "rnosuid", ...) apply to every
         * mount type, not only binds; after tmpcopyup, which must write. */
        if (m->attr_set || m->attr_clr) {
            struct mount_attr a = {.attr_set = m->attr_set, .attr_clr = m->attr_clr};
            if (mount_setattr(top, "", AT_EMPTY_PATH | AT_RECURSIVE, &a, sizeof(a)) < 0)
                return hull_error_errno(err, "mounts[%zu]: set recursive attributes", index);
        }
        if (hull_mount_propagation_fd(top, m->propagation, err) < 0)
            return hull_error_prefix(err, "mounts[%zu]", index);
    }
    return 0;
}

static int copy_fd(int from, int to)
{
    char buf[65536];
    ssize_t n;
    if (lseek(from, 0, SEEK_SET) < 0 && errno != ESPIPE)
        return -1;
    while ((n = read(from, buf, sizeof(buf))) > 0)
        for (ssize_t off = 0; off < n;) {
            ssize_t w = write(to, buf + off, (size_t)(n - off));
            if (w < 0)
                return -1;
            off += w;
        }
    return n < 0 ? -1 : 0;
}

static int write_root_file(int rootfd, const struct hull_root_file *f, hull_error *err)
{
    /* Files written after the mounts go into a fresh tmpfs (the sandbox's
     * /tmp), where nothing is a symlink: one on the way means the path
     * leads elsewhere (a rootfs whose tmp is a link), and is refused. */
    int strict = f->after_mounts ? HULL_RESOLVE_NO_SYMLINKS : 0;
    if (S_ISDIR(f->mode)) {
        /* A directory with its owner (the sandbox's /tmp/... for its user). */
        cleanup_close int dfd = hull_resolve_in_root(
            rootfd, f->path, HULL_RESOLVE_MKDIR | HULL_RESOLVE_DIRECTORY | strict, err);
        char fdp[32];
        if (dfd < 0)
            return hull_error_prefix(err, "mkdir %s", f->path);
        if (fchownat(dfd, "", f->uid, f->gid, AT_EMPTY_PATH) < 0 ||
            chmod(hull_fd_path(fdp, dfd), f->mode & 07777) < 0)
            return hull_error_errno(err, "mkdir %s", f->path);
        return 0;
    }
    char parent[PATH_MAX];
    snprintf(parent, sizeof(parent), "%s", f->path);
    char *slash = strrchr(parent, '/');
    if (slash == NULL || slash[1] == '\0')
        return hull_error_set(err, EINVAL, "%s: bad path", f->path);
    *slash = '\0';
    const char *name = slash + 1;
    cleanup_close int dir =
        hull_resolve_in_root(rootfd, parent[0] ? parent : "/",
                             HULL_RESOLVE_MKDIR | HULL_RESOLVE_DIRECTORY | strict, err);
    if (dir < 0)
        return hull_error_prefix(err, "%s", f->path);
    if (f->link) {
        if (symlinkat(f->link, dir, name) < 0)
            return hull_error_errno(err, "symlink %s", f->path);
        return 0;
    }
    /* The directory was found without leaving the root; O_NOFOLLOW refuses
     * a symlink in the last place (ELOOP), O_NONBLOCK a FIFO with nobody
     * reading instead of waiting on it. */
    cleanup_close int wfd =
        openat(dir, name, O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC,
               f->mode & 07777);
    if (wfd < 0)
        return hull_error_errno(err, "write %s", f->path);
    if (f->src_fd >= 0 ? copy_fd(f->src_fd, wfd) < 0
                       : write(wfd, f->data, f->len) != (ssize_t)f->len)
        return hull_error_errno(err, "write %s", f->path);
    if (fchown(wfd, f->uid, f->gid) < 0)
        return hull_error_errno(err, "chown %s", f->path);
    if (fchmod(wfd, f->mode) < 0)
        return hull_error_errno(err, "chmod %s", f->path);
    return 0;
}

/* The id of the mount path is on (the topmost, when it is a mount point). */
static int mount_id_of(const char *path, uint64_t *id, bool *is_root, hull_error *err)
{
    struct statx sx;
    if (statx(AT_FDCWD, path, AT_SYMLINK_NOFOLLOW, STATX_MNT_ID, &sx) < 0)
        return hull_error_errno(err, "statx %s", path);
    if (!(sx.stx_mask & STATX_MNT_ID))
        return hull_error_set(err, ENOTSUP, "statx %s: no mount id (kernel too old)", path);
    *id = sx.stx_mnt_id;
    if (is_root)
        *is_root = (sx.stx_attributes_mask & STATX_ATTR_MOUNT_ROOT) &&
                   (sx.stx_attributes & STATX_ATTR_MOUNT_ROOT);
    return 0;
}

int hull_rootfs_host_below(const char *rootfs, uint64_t *below, hull_error *err)
{
    return mount_id_of(rootfs, below, NULL, err);
}

int hull_rootfs_host_bind(const char *rootfs, hull_error *err)
{
    /* The runtime's own namespace: a bind of the bundle's rootfs on itself,
     * then private, so the container's mounts below it reach no other
     * namespace. The bind itself may propagate to the parent's peers;
     * detaching it later propagates the same way. */
    if (mount(rootfs, rootfs, NULL, MS_BIND | MS_REC, NULL) < 0)
        return hull_error_errno(err, "bind rootfs %s", rootfs);
    if (mount(NULL, rootfs, NULL, MS_PRIVATE | MS_REC, NULL) < 0) {
        int e = errno;
        umount2(rootfs, MNT_DETACH | UMOUNT_NOFOLLOW);
        errno = e;
        return hull_error_errno(err, "make rootfs %s private", rootfs);
    }
    return 0;
}

static bool mount_exists(uint64_t id)
{
    FILE *f = fopen("/proc/self/mountinfo", "re");
    char line[4096];
    bool found = false;
    while (f && !found && fgets(line, sizeof(line), f))
        found = strtoull(line, NULL, 10) == id;
    if (f)
        fclose(f);
    return found;
}

int hull_rootfs_host_release(const char *rootfs, uint64_t below, hull_error *err)
{
    if (below == 0)
        return 0;
    /* Only what sits above the recorded mount is ours (or the container's):
     * if that mount is gone, the stack is someone else's now. */
    if (!mount_exists(below))
        return 0;
    for (int i = 0; i < 64; i++) {
        uint64_t top = 0;
        bool is_root = false;
        hull_error e = NULL;
        if (mount_id_of(rootfs, &top, &is_root, &e) < 0) {
            hull_debug("release %s: %s", rootfs, hull_error_msg(e));
            hull_error_free(&e);
            return 0; /* the rootfs is gone: nothing can be mounted on it */
        }
        if (top == below || !is_root)
            return 0;
        /* Lazily, with every mount below it: the container's processes are
         * dead or dying, and no mount of theirs may stay in this namespace. */
        if (umount2(rootfs, MNT_DETACH | UMOUNT_NOFOLLOW) < 0)
            return hull_error_errno(err, "detach the mounts on %s", rootfs);
    }
    return hull_error_set(err, EBUSY, "detach the mounts on %s: too many stacked", rootfs);
}

/* In the container's own mount namespace: cut propagation towards the host
 * and make the root a mount point (pivot_root needs one). */
static int own_root(struct hull_rootfs *r, hull_error *err)
{
    const struct hull_spec *spec = r->spec;
    /* Stop propagation towards the host before the first mount: nothing we
     * mount below may appear in the host's namespace. rprivate when asked,
     * otherwise rslave so host mounts made later still reach binds. */
    unsigned long prop = MS_REC | MS_SLAVE;
    if (spec->linux_.rootfs_propagation_flags & MS_PRIVATE)
        prop = MS_REC | MS_PRIVATE;
    if (mount(NULL, "/", NULL, prop, NULL) < 0)
        return hull_error_errno(err, "make / %s", prop & MS_PRIVATE ? "rprivate" : "rslave");

    const struct hull_rootfs_extras *x = r->extras;
    if (x && x->tmpfs_root) {
        /* A root that exists only in this mount namespace: the mount points
         * made below vanish with it. Small: it holds directories and a few
         * text files; the root is read-only once assembled. */
        if (mount("tmpfs", spec->rootfs, "tmpfs", MS_NOSUID | MS_NODEV, "mode=0755,size=1m") < 0)
            return hull_error_errno(err, "mount tmpfs root on %s", spec->rootfs);
    } else if (mount(spec->rootfs, spec->rootfs, NULL, MS_BIND | MS_REC, NULL) < 0) {
        return hull_error_errno(err, "bind rootfs %s", spec->rootfs);
    }
    if (x && x->root_nosuid_nodev) {
        /* On our own bind (this namespace only), before anything is mounted
         * into it: only bits are added, none of a locked mount's cleared. */
        struct mount_attr a = {.attr_set = MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV};
        if (mount_setattr(AT_FDCWD, spec->rootfs, AT_RECURSIVE, &a, sizeof(a)) < 0)
            return hull_error_errno(err, "rootfs %s: nosuid,nodev", spec->rootfs);
    }
    return 0;
}

/* Whether a mount may take the mounter's network namespace as its own, so
 * that a late network namespace (rootfs.enter_netns) must be joined first:
 * sysfs does, so may any filesystem not known to be blind to it (nfs,
 * cifs: their sockets), and a bind of a namespace file or of /proc
 * (/proc/self/ns/net, /proc/net/...), resolved by the mounter. */
static bool sees_netns(const struct hull_mount *m)
{
    if (m->bind) {
        struct statfs fs;
        /* A source that cannot be looked up fails its own mount. */
        return statfs(m->source, &fs) == 0 &&
               (fs.f_type == PROC_SUPER_MAGIC || fs.f_type == NSFS_MAGIC);
    }
    static const char *const blind[] = {"proc", "tmpfs", "devpts", "mqueue", "cgroup", "cgroup2"};
    for (size_t i = 0; i < sizeof(blind) / sizeof(blind[0]); i++)
        if (is_type(m, blind[i]))
            return false;
    return true;
}

int hull_rootfs_prepare(struct hull_rootfs *r, hull_error *err)
{
    const struct hull_spec *spec = r->spec;
    const struct hull_rootfs_extras *x = r->extras;
    /* In the runtime's mount namespace (host_ns) its propagation is not ours
     * to change, and the runtime has bound the rootfs already. */
    if (!r->host_ns && own_root(r, err) < 0)
        return -1;
    r->rootfd = open(spec->rootfs, O_PATH | O_DIRECTORY | O_CLOEXEC);
    if (r->rootfd < 0)
        return hull_error_errno(err, "open rootfs %s", spec->rootfs);
    for (size_t i = 0; x && i < x->n_files; i++)
        if (!x->files[i].after_mounts && write_root_file(r->rootfd, &x->files[i], err) < 0)
            return -1;

    for (size_t i = 0; i < spec->n_mounts; i++) {
        const struct hull_mount *m = &spec->mounts[i];
        if (r->enter_netns && sees_netns(m)) {
            if (r->enter_netns(r->enter_netns_arg, err) < 0)
                return -1;
            r->enter_netns = NULL;
        }
        if (mount_one(r, m, i, err) < 0)
            return -1;
    }
    for (size_t i = 0; x && i < x->n_files; i++)
        if (x->files[i].after_mounts && write_root_file(r->rootfd, &x->files[i], err) < 0)
            return -1;

    return hull_devices_setup(r->rootfd, spec, r->userns, err);
}

/* After the root changed: the caller's cwd is the new / and r->rootfd
 * names it. */
static int reopen_root(struct hull_rootfs *r, hull_error *err)
{
    if (chdir("/") < 0)
        return hull_error_errno(err, "chdir /");
    close(r->rootfd);
    r->rootfd = open("/", O_PATH | O_DIRECTORY | O_CLOEXEC);
    if (r->rootfd < 0)
        return hull_error_errno(err, "open new root");
    return 0;
}

int hull_rootfs_pivot(struct hull_rootfs *r, bool no_pivot, hull_error *err)
{
    const char *rootfs = r->spec->rootfs;
    if (r->host_ns) {
        /* pivot_root or MS_MOVE would change the runtime's (the host's)
         * root: the container only gets its own view by chroot. */
        if (fchdir(r->rootfd) < 0)
            return hull_error_errno(err, "chdir %s", rootfs);
        if (chroot(".") < 0)
            return hull_error_errno(err, "chroot %s", rootfs);
        return reopen_root(r, err);
    }
    if (no_pivot) {
        /* For roots where pivot_root is impossible (initramfs): move the
         * rootfs over / and chroot. Weaker: the old root stays reachable to
         * a process with CAP_SYS_CHROOT. */
        if (chdir(rootfs) < 0)
            return hull_error_errno(err, "chdir %s", rootfs);
        if (mount(rootfs, "/", NULL, MS_MOVE, NULL) < 0)
            return hull_error_errno(err, "move rootfs to /");
        if (chroot(".") < 0)
            return hull_error_errno(err, "chroot");
        if (chdir("/") < 0)
            return hull_error_errno(err, "chdir /");
        return 0;
    }
    cleanup_close int oldroot = open("/", O_DIRECTORY | O_PATH | O_CLOEXEC);
    if (oldroot < 0)
        return hull_error_errno(err, "open /");
    if (fchdir(r->rootfd) < 0)
        return hull_error_errno(err, "chdir %s", rootfs);
    /* pivot_root(".", "."): the old root ends up stacked on the new one, so
     * no directory inside the container is needed to hold it. */
    if (syscall(SYS_pivot_root, ".", ".") < 0)
        return hull_error_errno(err, "pivot_root %s", rootfs);
    if (fchdir(oldroot) < 0)
        return hull_error_errno(err, "chdir old root");
    /* Detaching the old root must not propagate an unmount to the host. */
    if (mount(NULL, ".", NULL, MS_SLAVE | MS_REC, NULL) < 0)
        return hull_error_errno(err, "make old root rslave");
    if (umount2(".", MNT_DETACH) < 0)
        return hull_error_errno(err, "detach old root");
    return reopen_root(r, err);
}

int hull_rootfs_propagation(struct hull_rootfs *r, hull_error *err)
{
    unsigned long prop = r->spec->linux_.rootfs_propagation_flags;
    if (prop != 0 && mount(NULL, "/", NULL, prop, NULL) < 0)
        return hull_error_errno(err, "linux.rootfsPropagation: %s",
                                r->spec->linux_.rootfs_propagation);
    return 0;
}

static int readonly_path(int rootfd, const char *path, hull_error *err)
{
    cleanup_close int fd = hull_resolve_in_root(rootfd, path, 0, err);
    if (fd < 0) {
        if (hull_error_code(*err) == ENOENT) {
            hull_error_free(err); /* runtime-spec: a missing readonlyPath is skipped */
            return 0;
        }
        return -1;
    }
    /* A fresh recursive bind of the path over itself, made read-only before
     * it is attached: the original mount keeps its own flags. */
    return hull_bind_mount_from(fd, path, fd, NULL, MS_RDONLY | MS_NOSUID | MS_NODEV, true, err);
}

/* An empty read-only tmpfs attached on destfd, built with fsopen/fsmount so
 * it needs no /proc inside the container. One per container: *empty is -1
 * for the first masked directory, which gets a new tmpfs; it then holds
 * that mount (attached, so it may be cloned), and every later masked
 * directory gets a clone of it (open_tree), not a superblock of its own:
 * the same empty, read-only, nosuid/nodev/noexec directory, for one
 * mount's worth of memory instead of a superblock's. */
static int empty_tmpfs_on(int destfd, int *empty, hull_error *err)
{
    if (*empty >= 0) {
        cleanup_close int clone =
            open_tree(*empty, "", OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC | AT_EMPTY_PATH);
        if (clone < 0)
            return hull_error_errno(err, "clone the empty tmpfs");
        if (move_mount(clone, "", destfd, "", MOVE_MOUNT_F_EMPTY_PATH | MOVE_MOUNT_T_EMPTY_PATH) <
            0)
            return hull_error_errno(err, "attach the empty tmpfs");
        return 0;
    }
    cleanup_close int fs = fsopen("tmpfs", FSOPEN_CLOEXEC);
    if (fs < 0)
        return hull_error_errno(err, "fsopen tmpfs");
    if (fsconfig(fs, FSCONFIG_SET_STRING, "size", "0", 0) < 0 ||
        fsconfig(fs, FSCONFIG_SET_STRING, "mode", "0755", 0) < 0 ||
        fsconfig(fs, FSCONFIG_CMD_CREATE, NULL, NULL, 0) < 0)
        return hull_error_errno(err, "configure tmpfs");
    cleanup_close int mnt =
        fsmount(fs, FSMOUNT_CLOEXEC,
                MOUNT_ATTR_RDONLY | MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV | MOUNT_ATTR_NOEXEC);
    if (mnt < 0)
        return hull_error_errno(err, "fsmount tmpfs");
    if (move_mount(mnt, "", destfd, "", MOVE_MOUNT_F_EMPTY_PATH | MOVE_MOUNT_T_EMPTY_PATH) < 0)
        return hull_error_errno(err, "attach tmpfs");
    *empty = hull_steal_fd(&mnt);
    return 0;
}

static int mask_path(int rootfd, const char *path, int *empty, hull_error *err)
{
    cleanup_close int fd = hull_resolve_in_root(rootfd, path, HULL_RESOLVE_NOFOLLOW, err);
    if (fd < 0) {
        if (hull_error_code(*err) == ENOENT) {
            hull_error_free(err); /* runtime-spec: a missing maskedPath is skipped */
            return 0;
        }
        return -1;
    }
    struct stat st;
    if (fstat(fd, &st) < 0)
        return hull_error_errno(err, "stat %s", path);
    if (S_ISDIR(st.st_mode))
        return empty_tmpfs_on(fd, empty, err); /* hides the directory's contents */
    /* /dev/null over a file: reads give nothing, writes go nowhere. */
    return bind_mount("/dev/null", fd, NULL, 0, false, err);
}

int hull_rootfs_protect(struct hull_rootfs *r, hull_error *err)
{
    const struct hull_linux *l = &r->spec->linux_;
    for (char **p = l->readonly_paths; p && *p; p++)
        if (readonly_path(r->rootfd, *p, err) < 0)
            return hull_error_prefix(err, "linux.readonlyPaths: %s", *p);
    cleanup_close int empty = -1; /* the container's one empty tmpfs, see empty_tmpfs_on */
    for (char **p = l->masked_paths; p && *p; p++)
        if (mask_path(r->rootfd, *p, &empty, err) < 0)
            return hull_error_prefix(err, "linux.maskedPaths: %s", *p);
    if (r->spec->root_readonly) {
        /* Only the root mount: /tmp or volumes mounted rw stay writable. */
        struct mount_attr a = {.attr_set = MOUNT_ATTR_RDONLY};
        if (mount_setattr(AT_FDCWD, "/", 0, &a, sizeof(a)) < 0)
            return hull_error_errno(err, "root.readonly: remount / read-only");
    }
    return 0;
}
