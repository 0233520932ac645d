/* The microVM keeper's side of templates (templates.c, sbx_vm.c).
 *
 * "tpl_save": the running VM is snapshotted (hull_vm_snapshot_shared: the
 * guest paused for the copy, then running again; signed, digests checked
 * on restore) into the template's host directory that came with the frame
 * (templates.c removes it on failure). A microVM's files are in its RAM, so
 * the snapshot holds them with its memory. A sandbox made from the template
 * is then a restore of it under its own VM id (vmk_create): its own QEMU,
 * whose RAM maps the template's RAM file copy-on-write, one copy shared by
 * all its sandboxes (ramkeeper.c), so what one writes no other sees. */
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
    if (hull_vm_snapshot_shared(NULL, vm, path, err) < 0)
        return hull_error_prefix(err, "template");
    /* What it holds on the disk: the stream and the RAM file's data (its
     * zero pages are holes). */
    struct stat st, ram;
    if (fstatat(dirfd, TPL_VM_SNAP, &st, AT_SYMLINK_NOFOLLOW) < 0 ||
        fstatat(dirfd, TPL_VM_SNAP ".ram", &ram, AT_SYMLINK_NOFOLLOW) < 0)
        return hull_error_errno(err, "template: %s", TPL_VM_SNAP);
    uint64_t bytes = (uint64_t)st.st_size + (uint64_t)ram.st_blocks * 512;
    if (max && bytes > max)
        return hull_error_set(err, EFBIG,
                              "template: the VM's snapshot is %llu bytes, more than %llu",
                              (unsigned long long)bytes, (unsigned long long)max);
    *stats = json_object_new_object();
    json_object_object_add(*stats, "bytes", json_object_new_uint64(bytes));
    json_object_object_add(*stats, "files", json_object_new_uint64(0));
    return 0;
    /* templates.c removes the directory; nothing of it is used. */
    return -1;
}
