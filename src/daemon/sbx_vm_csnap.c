/* The microVM keeper's side of "restart": "from-snapshot"
 * (cluster_restart.c, docs/cluster.md): op "csnap" saves the sandbox's
 * snapshot into the cluster snapshot directory that came with the frame
 * (an fd hulld opened), as NAME.part first, synced, then renamed to NAME:
 * a node that restores it never sees half a file. A running VM is
 * snapshotted (hull_vm_snapshot: the guest paused for the copy, then
 * running again; signed, digests checked on restore); a paused one is
 * already its snapshot on disk, copied unless the copy is current. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "daemon.h"
#include "procs.h"
#include "util/error.h"
#include "util/json.h"

/* src copied to dirfd/name (made, truncated), then synced. */
int csnap_copy(const char *src, int dirfd, const char *name, hull_error *err)
{
    int in = open(src, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    if (in < 0)
        return hull_error_errno(err, "%s", src);
    int out = openat(dirfd, name, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600);
    if (out < 0) {
        close(in);
        return hull_error_errno(err, "%s", name);
    }
    char buf[1 << 16];
    ssize_t n;
    int rc = 0;
    while ((n = read(in, buf, sizeof(buf))) > 0)
        for (ssize_t off = 0; off < n && rc == 0;) {
            ssize_t w = write(out, buf + off, (size_t)(n - off));
            if (w < 0)
                rc = hull_error_errno(err, "%s", name);
            else
                off += w;
        }
    if (n < 0 && rc == 0)
        rc = hull_error_errno(err, "%s", src);
    if (rc == 0 && fsync(out) < 0)
        rc = hull_error_errno(err, "%s", name);
    close(in);
    close(out);
    return rc;
}

int vmk_csnap(const char *vm, const char *disk_snap, bool on_disk, bool busy, int dirfd,
              const char *name, bool *unchanged, hull_error *err)
{
    *unchanged = false;
    if (dirfd < 0)
        return hull_error_set(err, EPROTO, "keeper: csnap without a directory");
    if (name[0] == '\0' || strchr(name, '/') || name[0] == '.')
        return hull_error_set(err, EINVAL, "keeper: csnap: bad name '%s'", name);
    if (busy && !on_disk)
        return hull_error_set(err, EBUSY,
                              "a process of the sandbox is running (the snapshot needs its "
                              "agent): the next period");
    char part[300];
    snprintf(part, sizeof(part), "%s.part", name);
    struct stat src, dst;
    if (on_disk && stat(disk_snap, &src) == 0 && fstatat(dirfd, name, &dst, 0) == 0 &&
        dst.st_size == src.st_size && dst.st_mtime >= src.st_mtime) {
        *unchanged = true; /* paused since the last copy: nothing new */
        return 0;
    }
    unlinkat(dirfd, part, 0);
    int rc;
    if (on_disk) {
        rc = csnap_copy(disk_snap, dirfd, part, err);
    } else {
        char path[400];
        snprintf(path, sizeof(path), "/proc/self/fd/%d/%s", dirfd, part);
        rc = hull_vm_snapshot(NULL, vm, path, err);
        int fd = rc == 0 ? openat(dirfd, part, O_RDONLY | O_CLOEXEC | O_NOFOLLOW) : -1;
        if (rc == 0 && (fd < 0 || fsync(fd) < 0))
            rc = hull_error_errno(err, "%s", part);
        if (fd >= 0)
            close(fd);
    }
    if (rc == 0 && renameat(dirfd, part, dirfd, name) < 0)
        rc = hull_error_errno(err, "%s", name);
    if (rc < 0) {
        unlinkat(dirfd, part, 0);
        return hull_error_prefix(err, "cluster snapshot");
    }
    /* The rename itself durable: the directory synced. */
    if (fsync(dirfd) < 0)
        return hull_error_errno(err, "cluster snapshot: sync the directory");
    return 0;
}
