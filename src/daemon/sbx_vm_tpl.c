/* The microVM keeper's side of templates (templates.c, sbx_vm.c).
 *
 * "tpl_save": the running VM is snapshotted (hull_vm_snapshot: the guest
 * paused for the copy, then running again; signed, digests checked on
 * restore) into the template's host directory that came with the frame.
 * A microVM's files are in its RAM, so the snapshot holds them with its
 * memory. A sandbox made from the template is then a restore of that file
 * under its own VM id (vmk_create): its own QEMU and its own copy of the
 * RAM, so what one clone writes no other sees. */
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

int vmk_tpl_save(const char *vm, int dirfd, uint64_t max, json_object **stats, hull_error *err)
{
    char path[64];
    *stats = NULL;
    if (dirfd < 0)
        return hull_error_set(err, EPROTO, "keeper: tpl_save without a directory");
    /* The directory hulld made for this template (root's, 0700), by its fd:
     * the snapshot lands in it whatever its path became. */
    snprintf(path, sizeof(path), "/proc/self/fd/%d/%s", dirfd, TPL_VM_SNAP);
    if (hull_vm_snapshot(NULL, vm, path, err) < 0)
        return hull_error_prefix(err, "template");
    struct stat st;
    if (fstatat(dirfd, TPL_VM_SNAP, &st, AT_SYMLINK_NOFOLLOW) < 0) {
        hull_error_errno(err, "template: %s", TPL_VM_SNAP);
    } else if (max && (uint64_t)st.st_size > max) {
        hull_error_set(err, EFBIG, "template: the VM's snapshot is %lld bytes, more than %llu",
                       (long long)st.st_size, (unsigned long long)max);
    } else {
        *stats = json_object_new_object();
        json_object_object_add(*stats, "bytes", json_object_new_uint64((uint64_t)st.st_size));
        json_object_object_add(*stats, "files", json_object_new_uint64(0));
        return 0;
    }
    /* templates.c removes the directory; nothing of it is used. */
    return -1;
}
