#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/xattr.h>
#include <unistd.h>

#include "linux/bind.h"
#include "linux/devices.h"
#include "util/error.h"
#include "util/fs.h"

static const struct hull_device default_devices[] = {
    {.type = 'c', .path = "/dev/null", .major = 1, .minor = 3},
    {.type = 'c', .path = "/dev/zero", .major = 1, .minor = 5},
    {.type = 'c', .path = "/dev/full", .major = 1, .minor = 7},
    {.type = 'c', .path = "/dev/random", .major = 1, .minor = 8},
    {.type = 'c', .path = "/dev/urandom", .major = 1, .minor = 9},
    {.type = 'c', .path = "/dev/tty", .major = 5, .minor = 0},
};

static bool dev_is_bind(const struct hull_spec *spec)
{
    for (size_t i = 0; i < spec->n_mounts; i++)
        if (strcmp(spec->mounts[i].destination, "/dev") == 0 && spec->mounts[i].bind)
            return true;
    return false;
}

static bool has_mount(const struct hull_spec *spec, const char *dest)
{
    for (size_t i = 0; i < spec->n_mounts; i++)
        if (strcmp(spec->mounts[i].destination, dest) == 0)
            return true;
    return false;
}

/* What a node made by mknod in a directory gets without being told, when
 * that is known: its mode is exactly the one asked for (umask 0 while the
 * nodes are made, and no default ACL on the directory), its owner our
 * fsuid and its group our fsgid (the directory's group is ours too, so
 * neither a setgid directory nor a grpid mount gives another). Where the
 * spec asks for just that, the chmod and chown after mknod change nothing
 * and are left out. Unknown: both are done, as for any node. */
struct made_as {
    bool exact_mode;
    bool owner_known;
    uid_t uid;
    gid_t gid;
};

static struct made_as made_as(int dirfd)
{
    struct made_as m = {0};
    struct stat st;
    char p[64];
    snprintf(p, sizeof(p), "/proc/self/fd/%d", dirfd);
    /* ENODATA: no default ACL; ENOTSUP: none possible on this filesystem. */
    m.exact_mode = getxattr(p, "system.posix_acl_default", NULL, 0) < 0 &&
                   (errno == ENODATA || errno == ENOTSUP);
    if (fstat(dirfd, &st) == 0 && st.st_gid == getegid()) {
        m.owner_known = true;
        m.uid = geteuid();
        m.gid = st.st_gid;
    }
    return m;
}

/* One device node in the directory dirfd (its parent, already resolved);
 * made, when known (NULL: nothing known), as made_as says. */
static int make_device_at(int rootfd, int dirfd, const char *base, const struct hull_device *d,
                          bool userns, const struct made_as *made, hull_error *err)
{
    if (userns) {
        /* Replace whatever the image had there: a device must be what the
         * spec says. */
        if (unlinkat(dirfd, base, 0) < 0 && errno != ENOENT && errno != EISDIR)
            return hull_error_errno(err, "remove %s", d->path);
        /* mknod is not allowed in a user namespace; bind the host's node. */
        int fd = openat(dirfd, base, O_CREAT | O_EXCL | O_WRONLY | O_NOFOLLOW | O_CLOEXEC, 0000);
        if (fd < 0)
            return hull_error_errno(err, "create %s", d->path);
        close(fd);
        return hull_bind_into(rootfd, d->path, d->path, false, false, err);
    }

    mode_t type = d->type == 'b' ? S_IFBLK : d->type == 'p' ? S_IFIFO : S_IFCHR;
    mode_t perm = d->has_file_mode ? (d->file_mode & 07777) : 0666;
    dev_t dev = makedev((unsigned)d->major, (unsigned)d->minor);
    int r = mknodat(dirfd, base, type | perm, dev);
    if (r < 0 && errno == EEXIST) {
        /* Replace whatever the image had there: a device must be what the
         * spec says. (A fresh /dev has nothing: no removal to try.) */
        if (unlinkat(dirfd, base, 0) < 0 && errno != ENOENT && errno != EISDIR)
            return hull_error_errno(err, "remove %s", d->path);
        r = mknodat(dirfd, base, type | perm, dev);
    }
    if (r < 0)
        return hull_error_errno(err, "mknod %s", d->path);
    /* mknod applies the umask (or a default ACL), and may drop setgid: the
     * spec's mode is exact. */
    if (!(made && made->exact_mode && !(perm & 07000)) && fchmodat(dirfd, base, perm, 0) < 0)
        return hull_error_errno(err, "chmod %s", d->path);
    uid_t uid = d->has_uid ? d->uid : 0;
    gid_t gid = d->has_gid ? d->gid : 0;
    if (!(made && made->owner_known && made->uid == uid && made->gid == gid) &&
        fchownat(dirfd, base, uid, gid, AT_SYMLINK_NOFOLLOW) < 0)
        return hull_error_errno(err, "chown %s", d->path);
    return 0;
}

/* devfd: the resolved /dev, used for nodes directly in it (all defaults). */
static int make_device(int rootfd, int devfd, const struct made_as *made,
                       const struct hull_device *d, bool userns, hull_error *err)
{
    char parent[PATH_MAX], name[PATH_MAX];
    snprintf(parent, sizeof(parent), "%s", d->path);
    snprintf(name, sizeof(name), "%s", d->path);
    const char *dir = dirname(parent);
    const char *base = basename(name);
    if (strcmp(dir, "/dev") == 0)
        return make_device_at(rootfd, devfd, base, d, userns, made, err);
    cleanup_close int dirfd =
        hull_resolve_in_root(rootfd, dir, HULL_RESOLVE_MKDIR | HULL_RESOLVE_DIRECTORY, err);
    if (dirfd < 0)
        return -1;
    return make_device_at(rootfd, dirfd, base, d, userns, NULL, err);
}

static int make_link(int devfd, const char *target, const char *name, hull_error *err)
{
    if (symlinkat(target, devfd, name) < 0 && errno != EEXIST)
        return hull_error_errno(err, "symlink /dev/%s", name);
    return 0;
}

int hull_devices_setup(int rootfd, const struct hull_spec *spec, bool userns, hull_error *err)
{
    if (dev_is_bind(spec))
        return 0;
    const struct hull_linux *l = &spec->linux_;
    /* /dev resolved once for every node in it, rather than once per node. */
    cleanup_close int devfd =
        hull_resolve_in_root(rootfd, "/dev", HULL_RESOLVE_MKDIR | HULL_RESOLVE_DIRECTORY, err);
    if (devfd < 0)
        return -1;
    struct made_as made = userns ? (struct made_as){0} : made_as(devfd);
    /* Safe: only the nodes below are made while it is 0 (their modes are
     * the spec's, exactly), and the init is single-threaded. */
    mode_t old_umask = umask(0);
    int ret = 0;
    for (size_t i = 0; ret == 0 && i < sizeof(default_devices) / sizeof(default_devices[0]); i++) {
        bool overridden = false;
        for (size_t j = 0; j < l->n_devices; j++)
            if (strcmp(l->devices[j].path, default_devices[i].path) == 0)
                overridden = true;
        if (!overridden && make_device(rootfd, devfd, &made, &default_devices[i], userns, err) < 0)
            ret = hull_error_prefix(err, "default devices");
    }
    for (size_t j = 0; ret == 0 && j < l->n_devices; j++)
        if (make_device(rootfd, devfd, &made, &l->devices[j], userns, err) < 0)
            ret = hull_error_prefix(err, "linux.devices[%zu]", j);
    umask(old_umask);
    if (ret < 0)
        return -1;
    if (make_link(devfd, "/proc/self/fd", "fd", err) < 0 ||
        make_link(devfd, "/proc/self/fd/0", "stdin", err) < 0 ||
        make_link(devfd, "/proc/self/fd/1", "stdout", err) < 0 ||
        make_link(devfd, "/proc/self/fd/2", "stderr", err) < 0)
        return -1;
    /* Only where the kernel has a /proc/kcore (CONFIG_PROC_KCORE), as runc:
     * not a link that leads nowhere. This is still the host's /proc. */
    if (access("/proc/kcore", F_OK) == 0 && make_link(devfd, "/proc/kcore", "core", err) < 0)
        return -1;
    if (has_mount(spec, "/dev/pts")) {
        /* Each container has its own devpts; /dev/ptmx must lead to it,
         * whatever the image had there. */
        if (symlinkat("pts/ptmx", devfd, "ptmx") == 0)
            return 0;
        if (errno != EEXIST)
            return hull_error_errno(err, "symlink /dev/ptmx");
        if (unlinkat(devfd, "ptmx", 0) < 0 && errno != ENOENT)
            return hull_error_errno(err, "remove /dev/ptmx");
        if (symlinkat("pts/ptmx", devfd, "ptmx") < 0)
            return hull_error_errno(err, "symlink /dev/ptmx");
    }
    return 0;
}
