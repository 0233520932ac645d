/* The container's view of cgroups at its /sys/fs/cgroup.
 *
 * cgroup2 host: one cgroup2 mount. v1 and hybrid hosts: a tmpfs holding
 * one mount per v1 hierarchy (named ones too), symlinks for co-mounted
 * controllers ("cpu" -> "cpu,cpuacct") and, on hybrid, cgroup2 at
 * "unified" - the layout programs inside expect from a systemd host.
 *
 * With a cgroup namespace the kernel roots each new mount at the
 * container's own cgroup. Without one a fresh mount would show the host's
 * whole tree, so each hierarchy is a bind mount of the container's own
 * directory instead (what runc does). Only hierarchies the container is in
 * appear: call hull_cgroup_join_all first for runc's full view.
 *
 * Runs in the container's init, in its mount namespace, before
 * pivot_root; dest is usually /proc/self/fd/N of the resolved target.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

#include "linux/cgroup_internal.h"
#include "util/error.h"
#include "util/fs.h"

#define PER_MOUNT_FLAGS                                                                            \
    (MS_NOSUID | MS_NODEV | MS_NOEXEC | MS_NOATIME | MS_NODIRATIME | MS_RELATIME | MS_STRICTATIME)

struct view {
    struct hull_cgroup *cg;
    bool cgroupns;
    unsigned long flags; /* per-mount flags, ro included */
};

static int set_flags(int fd, unsigned long ms)
{
    struct mount_attr a = {0};
    a.attr_set = (ms & MS_RDONLY ? MOUNT_ATTR_RDONLY : 0) |
                 (ms & MS_NOSUID ? MOUNT_ATTR_NOSUID : 0) | (ms & MS_NODEV ? MOUNT_ATTR_NODEV : 0) |
                 (ms & MS_NOEXEC ? MOUNT_ATTR_NOEXEC : 0) |
                 (ms & MS_NODIRATIME ? MOUNT_ATTR_NODIRATIME : 0);
    if (ms & (MS_NOATIME | MS_STRICTATIME | MS_RELATIME)) {
        a.attr_clr = MOUNT_ATTR__ATIME;
        a.attr_set |= ms & MS_NOATIME       ? MOUNT_ATTR_NOATIME
                      : ms & MS_STRICTATIME ? MOUNT_ATTR_STRICTATIME
                                            : MOUNT_ATTR_RELATIME;
    }
    return mount_setattr(fd, "", AT_EMPTY_PATH, &a, sizeof(a));
}

static int mount_hier(struct view *v, size_t i, const char *target, hull_error *err)
{
    const struct cg_hier *h = &v->cg->L->h[i];
    if (v->cgroupns) {
        /* Safe: a new instance of an existing hierarchy, rooted by the
         * kernel at the container's cgroup namespace. */
        if (mount(h->v2 ? "cgroup2" : "cgroup", target, h->v2 ? "cgroup2" : "cgroup", v->flags,
                  h->v2 ? NULL : h->opts) < 0)
            return hull_error_errno(err, "cgroup: mount the %s hierarchy", h->name);
        return 0;
    }
    const char *src = v->cg->n[i].dir;
    /* A detached copy gets its flags before it is attached, so the view
     * is never writable, not even for a moment, and no remount has to
     * find it again through a /proc/self/fd path. */
    cleanup_close int t = open_tree(AT_FDCWD, src, OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC);
    if (t < 0)
        return hull_error_errno(err, "cgroup: bind %s", src);
    if (set_flags(t, v->flags) < 0)
        return hull_error_errno(err, "cgroup: set flags on %s", src);
    if (move_mount(t, "", AT_FDCWD, target, MOVE_MOUNT_F_EMPTY_PATH | MOVE_MOUNT_T_SYMLINKS) < 0)
        return hull_error_errno(err, "cgroup: attach %s", src);
    return 0;
}

/* A tmpfs attached at dest, returned as an fd of its root: through a
 * /proc/self/fd path, lookups would stop at the directory underneath. */
static int tmpfs_at(const char *dest, hull_error *err)
{
    cleanup_close int fs = fsopen("tmpfs", FSOPEN_CLOEXEC);
    if (fs < 0)
        return hull_error_errno(err, "cgroup: fsopen tmpfs");
    if (fsconfig(fs, FSCONFIG_SET_STRING, "mode", "755", 0) < 0 ||
        fsconfig(fs, FSCONFIG_CMD_CREATE, NULL, NULL, 0) < 0)
        return hull_error_errno(err, "cgroup: create tmpfs");
    int m = fsmount(fs, FSMOUNT_CLOEXEC, MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV | MOUNT_ATTR_NOEXEC);
    if (m < 0)
        return hull_error_errno(err, "cgroup: fsmount tmpfs");
    if (move_mount(m, "", AT_FDCWD, dest, MOVE_MOUNT_F_EMPTY_PATH | MOVE_MOUNT_T_SYMLINKS) < 0) {
        hull_error_errno(err, "cgroup: attach tmpfs at %s", dest);
        close(m);
        return -1;
    }
    return m;
}

/* "cpu" and "cpuacct" -> "cpu,cpuacct", as hosts lay them out. */
static void comount_links(const struct cg_hier *h, int root)
{
    if (h->v2 || __builtin_popcount(h->ctrls) < 2)
        return;
    for (int c = 0; c < CG_NCTRL; c++)
        if ((h->ctrls & CG_BIT(c)) && strcmp(cg_ctrl_v1_name[c], h->name) != 0)
            symlinkat(h->name, root, cg_ctrl_v1_name[c]);
}

static int v1_view(struct view *v, const char *dest, hull_error *err)
{
    const struct cg_layout *L = v->cg->L;
    cleanup_close int root = tmpfs_at(dest, err);
    if (root < 0)
        return -1;
    for (size_t i = 0; i < L->n; i++) {
        const struct cg_hier *h = &L->h[i];
        const char *name = h->v2 ? "unified" : h->name;
        /* A hierarchy the container is not in would show the runtime's
         * cgroup (with a cgroup namespace: the whole tree above it). */
        if (!v->cg->n[i].joined)
            continue;
        char target[PATH_MAX];
        if (mkdirat(root, name, 0755) < 0 && errno != EEXIST)
            return hull_error_errno(err, "cgroup: mkdir %s", name);
        snprintf(target, sizeof(target), "/proc/self/fd/%d/%s", root, name);
        if (mount_hier(v, i, target, err) < 0)
            return -1;
        comount_links(h, root);
    }
    /* Read-only last, once every directory and link is in place. */
    if ((v->flags & MS_RDONLY) && set_flags(root, v->flags) < 0)
        return hull_error_errno(err, "cgroup: make the tmpfs read-only");
    return 0;
}

int hull_cgroup_mount(struct hull_cgroup *cg, const char *dest, bool readonly, bool cgroupns,
                      unsigned long mount_flags, hull_error *err)
{
    struct view v = {
        .cg = cg,
        .cgroupns = cgroupns,
        .flags = (mount_flags & PER_MOUNT_FLAGS) | MS_NOSUID | MS_NODEV | MS_NOEXEC |
                 (readonly ? MS_RDONLY : 0),
    };
    if (cg->L->mode != HULL_CGROUP_V2)
        return v1_view(&v, dest, err);
    if (!cg->n[cg->L->v2].joined)
        return hull_error_set(err, ENOENT, "cgroup: the container has no cgroup to mount");
    return mount_hier(&v, (size_t)cg->L->v2, dest, err);
}

int hull_cgroup_caller_view(struct hull_cgroup **out, hull_error *err)
{
    *out = NULL;
    const struct cg_layout *L = cg_layout_get(err);
    if (L == NULL)
        return -1;
    cleanup_free char *text = NULL;
    char *own[CG_MAX_HIER] = {0};
    if (hull_read_file("/proc/self/cgroup", &text, NULL, err) < 0 ||
        cg_own_paths(L, text, own, err) < 0)
        return -1;
    struct hull_cgroup *cg = calloc(1, sizeof(*cg));
    int rc = cg ? 0 : hull_error_set(err, ENOMEM, "out of memory");
    for (size_t i = 0; rc == 0 && i < L->n; i++) {
        if (own[i] == NULL)
            continue;
        cg->n[i].path = own[i];
        own[i] = NULL;
        if (asprintf(&cg->n[i].dir, "%s%s", L->h[i].mount,
                     strcmp(cg->n[i].path, "/") ? cg->n[i].path : "") < 0) {
            cg->n[i].dir = NULL;
            rc = hull_error_set(err, ENOMEM, "out of memory");
        }
        cg->n[i].joined = true; /* created stays 0: nothing here is ours */
    }
    for (size_t i = 0; i < CG_MAX_HIER; i++)
        free(own[i]);
    if (cg)
        cg->L = L;
    if (rc < 0) {
        hull_cgroup_free(cg);
        return -1;
    }
    *out = cg;
    return 0;
}
