/* The public microVM verbs of include/hull.h (create, start, pause,
 * resume, stop, delete, state, snapshot, restore, initrd): each takes the
 * VM's lock, reads its record under it (vm_load_locked) and calls the
 * primitives below it. Nothing in vm/
 * calls back up into this file:
 *
 *   api.c        these verbs; exec.c (exec, cp, list) and oneshot.c (the
 *                sandbox's microvm level) beside it
 *   template.c   warm start, on snapshot.c and vm.c
 *   snapshot.c   a VM's saved state, on vm.c
 *   vm.c         the VM's life: create, start, stop, release, load
 *   vmm_qemu.c   QEMU (confine.c, qmp.c); agent.c the guest's agent
 *   kernel.c, initrd.c, rootfs.c, digest.c, cache.c, accel.c, vmutil.c
 *   state.c      the record, its paths and locks, which all of the above read
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "util/error.h"
#include "util/fs.h"
#include "util/json.h"
#include "util/log.h"
#include "vm/vm.h"

int hull_vm_create(const struct hull_runtime *rt, const struct hull_vm_create_opts *o,
                   hull_error *err)
{
    struct vm vm;
    struct vm_create_opts co = {
        .id = o->id,
        .memory_mb = o->memory_mb,
        .agent_ports = o->agent_ports,
        .vcpus = o->vcpus,
        .kernel = o->kernel,
        .rootfs = o->rootfs,
        .accel = o->accel,
        .expect_kernel_sha256 = o->expect_kernel_sha256,
        .expect_initrd_sha256 = o->expect_initrd_sha256,
        .expect_rootfs_sha256 = o->expect_rootfs_sha256,
        /* Only recorded: create creates, `start` restores the template. */
        .from_template = o->from_template,
        .image = o->image,
        .image_root = o->image_root,
        .pull = o->pull,
        .network = o->network,
        .egress = o->egress,
        .publish = o->publish,
        .n_publish = o->n_publish,
    };
    if (vm_create(rt, &co, &vm, err) < 0)
        return hull_error_prefix(err, "create %s", o->id && o->id[0] ? o->id : "''");
    return 0;
}

int hull_vm_start(const struct hull_runtime *rt, const char *id, hull_error *err)
{
    struct vm vm;
    if (vm_read(rt, id, &vm, err) < 0)
        return hull_error_prefix(err, "start");
    /* A template's start waits for the VM's lock (then the template's);
     * a cold one finds a VM being acted on busy. Either decides on the
     * record read under the lock. */
    cleanup_close int lk = vm_load_locked(rt, id, vm.from_template, &vm, err);
    if (lk < 0)
        return hull_error_prefix(err, "start");
    if (vm.from_template && (vm.status == VM_CREATED || vm.status == VM_STOPPED))
        return vm_start_from_template(&vm, err) < 0 ? hull_error_prefix(err, "start %s", id) : 0;
    return vm_start(&vm, err) < 0 ? hull_error_prefix(err, "start %s", id) : 0;
}

static int simple_op(const struct hull_runtime *rt, const char *id, const char *what,
                     int (*fn)(struct vm *, hull_error *), hull_error *err)
{
    struct vm vm;
    cleanup_close int lk = vm_load_locked(rt, id, true, &vm, err);
    if (lk < 0)
        return hull_error_prefix(err, "%s", what);
    return fn(&vm, err) < 0 ? hull_error_prefix(err, "%s %s", what, id) : 0;
}

static int do_stop(struct vm *vm, hull_error *err)
{
    return vm_stop(vm, true, err);
}

int hull_vm_pause(const struct hull_runtime *rt, const char *id, hull_error *err)
{
    return simple_op(rt, id, "pause", vm_pause, err);
}

int hull_vm_resume(const struct hull_runtime *rt, const char *id, hull_error *err)
{
    return simple_op(rt, id, "resume", vm_resume, err);
}

int hull_vm_stop(const struct hull_runtime *rt, const char *id, hull_error *err)
{
    return simple_op(rt, id, "stop", do_stop, err);
}

int hull_vm_delete(const struct hull_runtime *rt, const char *id, bool force, hull_error *err)
{
    struct vm vm;
    cleanup_close int lk = vm_load_locked(rt, id, true, &vm, err);
    if (lk < 0)
        return hull_error_prefix(err, "delete");
    if ((vm.status == VM_RUNNING || vm.status == VM_PAUSED) && !force) {
        hull_error_set(err, EBUSY, "VM %s is %s (stop it first or use --force)", id,
                       vm_status_name(vm.status));
        return hull_error_prefix(err, "delete");
    }
    return vm_destroy(&vm, err) < 0 ? hull_error_prefix(err, "delete") : 0;
}

char *hull_vm_state(const struct hull_runtime *rt, const char *id, hull_error *err)
{
    struct vm vm;
    if (vm_load(rt, id, &vm, err) < 0) {
        hull_error_prefix(err, "state");
        return NULL;
    }
    cleanup_json json_object *o = vm_state_json(&vm);
    return strdup(json_object_to_json_string_ext(o, JSON_C_TO_STRING_PRETTY |
                                                        JSON_C_TO_STRING_NOSLASHESCAPE));
}

int hull_vm_snapshot(const struct hull_runtime *rt, const char *id, const char *file,
                     hull_error *err)
{
    struct vm vm;
    if (!file || !*file)
        return hull_error_set(err, EINVAL, "snapshot: missing file");
    cleanup_close int lk = vm_load_locked(rt, id, true, &vm, err);
    if (lk < 0)
        return hull_error_prefix(err, "snapshot");
    int rc;
    {
        /* No agent session may be mid-request inside the saved state. */
        cleanup_close int alk = vm_lock(&vm, "agent.lock", true, err);
        rc = alk < 0 ? -1 : vm_snapshot_to(&vm, file, err);
    }
    if (!rc)
        rc = vm_save(&vm, err);
    return rc < 0 ? hull_error_prefix(err, "snapshot %s", id) : 0;
}

/* The stream is saved the ordinary way, then made shareable through an
 * intermediate VM (template_share.c). */
int hull_vm_snapshot_shared(const struct hull_runtime *rt, const char *id, const char *file,
                            hull_error *err)
{
    struct vm src;
    char stream[4200];
    if (!file || !*file)
        return hull_error_set(err, EINVAL, "snapshot: missing file");
    if (snprintf(stream, sizeof(stream), "%s.stream", file) >= (int)sizeof(stream))
        return hull_error_set(err, ENAMETOOLONG, "snapshot %s: path too long", file);
    if (vm_load(rt, id, &src, err) < 0)
        return hull_error_prefix(err, "snapshot");
    int rc = hull_vm_snapshot(rt, id, stream, err);
    if (!rc)
        rc = vm_template_reshare(rt, id, src.memory_mb, stream, file, err);
    unlink(stream);
    return rc < 0 ? hull_error_prefix(err, "snapshot %s (shared RAM)", id) : 0;
}

int hull_vm_restore(const struct hull_runtime *rt, const char *file, const char *new_id,
                    hull_error *err)
{
    struct vm vm;
    memset(&vm, 0, sizeof(vm));
    if (vm_dir_of(rt, new_id, vm.dir, sizeof(vm.dir), err) < 0)
        return hull_error_prefix(err, "restore");
    snprintf(vm.id, sizeof(vm.id), "%s", new_id);
    if (access(vm.dir, F_OK) == 0)
        return hull_error_set(err, EEXIST, "restore: VM %s already exists", new_id);
    /* Check the file before making anything. */
    if (vm_snapshot_check(file, err) < 0 || vm_make_dirs(&vm, err) < 0)
        return hull_error_prefix(err, "restore");
    cleanup_close int lk = vm_lock(&vm, "lock", false, err);
    if (lk >= 0 && vm_restore_into(&vm, file, NULL, err) == 0)
        return 0;
    hull_error e = NULL;
    if (hull_rm_rf_at(AT_FDCWD, vm.dir, &e) < 0) {
        /* The restore's own error is the one to report; name the leftover. */
        hull_warn("restore: remove %s: %s", vm.dir, hull_error_msg(e));
        hull_error_free(&e);
    }
    return hull_error_prefix(err, "restore");
}

int hull_vm_initrd(const char *kernel, char path[4096], char sha256[65], hull_error *err)
{
    struct vm_kernel k;
    struct vm_initrd i;
    if (vm_kernel_prepare(kernel, &k, err) < 0 || vm_initrd_prepare(k.release, &i, err) < 0)
        return hull_error_prefix(err, "initrd");
    snprintf(path, 4096, "%s", i.path);
    snprintf(sha256, 65, "%s", i.sha256);
    return 0;
}
