/* The VMs of microVM sandboxes whose keeper is gone.
 *
 * A microVM sandbox's QEMU is not the keeper's child in the way a
 * container's init is: the VM library starts it detached, so that a VM
 * outlives the command that started it. A keeper killed outright (SIGKILL,
 * the OOM killer, or with hulld, whose death kills its keepers) thus leaves
 * its VM running. hulld removes it: at once when it finds the keeper dead,
 * and at start-up for every microVM sandbox the store still lists as live
 * (a paused one is kept: its snapshot is adopted instead). A sandbox
 * destroyed this way has no use for a snapshot on disk either. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "daemon.h"
#include "service/store.h"
#include "util/fs.h"
#include "util/json.h"
#include "util/log.h"

static void delete_vm(const char *vm)
{
    hull_error e = NULL;
    /* force: a VM whose keeper died is stopped first; its lease, TAP,
     * cgroups and directory go with it (hull_vm_delete). */
    if (hull_vm_delete(NULL, vm, true, &e) == 0)
        hull_log(HULL_LOG_INFO, "VM %s: its keeper was gone, removed", vm);
    else if (hull_error_code(e) != ENOENT)
        hull_warn("VM %s: %s", vm, hull_error_msg(e));
    hull_error_free(&e);
}

/* <state>/microvm/<vm>.snap and its companions (sbx_vm.c's vmk_paths). */
static void delete_snapshot(const char *vm)
{
    char dir[4096];
    snprintf(dir, sizeof(dir), "%s/microvm", hulld.o->state_dir);
    DIR *d = opendir(dir);
    if (d == NULL)
        return;
    char prefix[160];
    int n = snprintf(prefix, sizeof(prefix), "%s.snap", vm);
    for (struct dirent *de; (de = readdir(d)) != NULL;) {
        if (strncmp(de->d_name, prefix, (size_t)n) != 0 ||
            (de->d_name[n] != '\0' && de->d_name[n] != '.'))
            continue;
        if (unlinkat(dirfd(d), de->d_name, 0) < 0 && errno != ENOENT)
            hull_warn("%s/%s: %s", dir, de->d_name, strerror(errno));
    }
    closedir(d);
}

void sbx_vm_sweep(const char *vm)
{
    /* Only hulld's own VMs (sbx_vm.c names them hulld-<hex>). */
    if (vm == NULL || strncmp(vm, "hulld-", 6) != 0 || strchr(vm, '/') || strchr(vm, '.'))
        return;
    delete_vm(vm);
    /* A template's intermediate copy (template_share.c) of a keeper that
     * died while saving. */
    char tpl[128];
    if (snprintf(tpl, sizeof(tpl), "%s.tpl", vm) < (int)sizeof(tpl))
        delete_vm(tpl);
    delete_snapshot(vm);
    /* Its keeper's staging directory (sbx_vm.c's vmk_paths). */
    char stage[128];
    hull_error e = NULL;
    snprintf(stage, sizeof(stage), "/run/hull/vmsbx-%s", vm);
    if (hull_rm_rf_at(AT_FDCWD, stage, &e) < 0) {
        hull_warn("%s: %s", stage, hull_error_msg(e));
        hull_error_free(&e);
    }
}

void sbx_vm_recover(void)
{
    hull_error e = NULL;
    json_object *rows = hull_sandbox_rec_live_vms(hulld.store, &e);
    if (rows == NULL) {
        hull_warn("start-up: %s", hull_error_msg(e));
        hull_error_free(&e);
        return;
    }
    for (size_t i = 0; i < json_object_array_length(rows); i++)
        sbx_vm_sweep(
            json_object_get_string(hj_get(json_object_array_get_idx(rows, i), "container")));
    json_object_put(rows);
}
