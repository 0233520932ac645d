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
    bool tmpfs_root;        /* a fresh tmpfs becomes the root: mount points and files
                               are made in it, nothing on the host changes */
    bool root_nosuid_nodev; /* the bound rootfs and every mount under it get
                               nosuid,nodev: device nodes and set-id bits a
                               --rootfs carries are never honoured */
    const struct hull_root_file *files;
    size_t n_files;
};

struct hull_rootfs {
    const struct hull_spec *spec;
    struct hull_cgroup *cgroup; /* for "cgroup" mounts; may be NULL */
    bool userns;                /* in a new user namespace: no mknod, locked mounts */
    bool cgroupns;              /* in a new cgroup namespace */
    bool host_ns;               /* shares the runtime's mount namespace: the runtime bound the
                                   rootfs (hull_rootfs_host_bind); no propagation change, chroot */
    int rootfd;                 /* O_PATH fd of the bound rootfs, set by prepare */
    const struct hull_rootfs_extras *extras; /* may be NULL */
    /* For a bind source the init may not even look up (EACCES: a directory
     * only host root can enter): an O_PATH fd of mounts[index].source in
     * this mount namespace, opened by someone who can. May be NULL. */
    int (*open_source)(void *arg, size_t index, hull_error *err);
    void *open_source_arg;
    /* Called before the first mount that may take the mounter's network
     * namespace as its own (sysfs, a network filesystem, a bind of a /proc
     * or namespace file), when the init is not in its network namespace
     * yet; 0 once it is. May be NULL. */
    int (*enter_netns)(void *arg, hull_error *err);
    void *enter_netns_arg;
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

/* A container without a mount namespace of its own mounts in the runtime's.
 * So that delete can take every such mount away in one step, the runtime
 * binds the rootfs on itself (private: nothing below it propagates) and the
 * container's mounts all hang below that bind. hull_rootfs_host_below gives
 * the id of the mount at rootfs now, to be recorded before the bind. */
int hull_rootfs_host_below(const char *rootfs, uint64_t *below, hull_error *err);
int hull_rootfs_host_bind(const char *rootfs, hull_error *err);
/* Detach (lazily, with everything below) each mount stacked on rootfs above
 * the mount `below`; nothing when `below` is no longer mounted there. */
int hull_rootfs_host_release(const char *rootfs, uint64_t below, hull_error *err);

#endif
