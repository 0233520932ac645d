/* The container's root filesystem: its mounts in spec order, pivot_root,
 * and the protections applied afterwards (masked and read-only paths). */
#ifndef HULL_LINUX_MOUNTS_H
#define HULL_LINUX_MOUNTS_H

#include <stdbool.h>

#include "hull.h"
#include "linux/cgroup.h"
#include "spec/spec.h"

/* A file the runtime writes into the container: into a tmpfs root before
 * the mounts (/etc/passwd, symlinks like /bin -> usr/bin) or, with
 * after_mounts, into a mounted tmpfs (copy-in to /tmp). Content comes from
 * data/len, or from src_fd (a host file the runtime opened: the init itself
 * may not be allowed to open it), or the file is a symlink to link. */
struct hull_root_file {
    const char *path;
    const char *data;
    size_t len;
    int src_fd; /* >= 0: copy from this fd instead of data */
    const char *link;
    unsigned mode;     /* S_IFDIR | perms: a directory (made if missing) */
    unsigned uid, gid; /* owner in the container's user namespace */
    bool after_mounts;
};

/* What the sandbox asks beyond the OCI spec. */
struct hull_rootfs_extras {
    bool tmpfs_root; /* a fresh tmpfs becomes the root: mount points and files
                        are made in it, nothing on the host changes */
    const struct hull_root_file *files;
    size_t n_files;
};

struct hull_rootfs {
    const struct hull_spec *spec;
    struct hull_cgroup *cgroup;              /* for "cgroup" mounts; may be NULL */
    bool userns;                             /* in a new user namespace: no mknod, locked mounts */
    bool cgroupns;                           /* in a new cgroup namespace */
    int rootfd;                              /* O_PATH fd of the bound rootfs, set by prepare */
    const struct hull_rootfs_extras *extras; /* may be NULL */
};

/* In the container's new mount namespace, before pivot_root: stop mount
 * propagation to the host, bind the rootfs on itself, perform spec->mounts in
 * order (destinations resolved inside the rootfs, never through a symlink
 * out of it), create /dev nodes and links. */
int hull_rootfs_prepare(struct hull_rootfs *r, hull_error *err);

/* Make the rootfs "/" (pivot_root, or MS_MOVE + chroot when no_pivot). */
int hull_rootfs_pivot(struct hull_rootfs *r, bool no_pivot, hull_error *err);

/* After pivot_root: rootfsPropagation. */
int hull_rootfs_propagation(struct hull_rootfs *r, hull_error *err);

/* After pivot_root and sysctls: readonlyPaths, maskedPaths, root.readonly. */
int hull_rootfs_protect(struct hull_rootfs *r, hull_error *err);

#endif
