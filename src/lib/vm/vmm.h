/* The VMM behind a small interface (vmm_qemu.c implements it with QEMU's
 * microvm machine). Another VMM (Firecracker, Cloud Hypervisor) would be a
 * second struct vmm_ops; nothing above this file names QEMU. */
#ifndef HULL_VM_VMM_H
#define HULL_VM_VMM_H

#include <stdbool.h>

#include "hull.h"
#include "vm/vm.h"

/* What QEMU reports of a finished outgoing migration. */
struct vmm_migration {
    char status[64];
    int64_t total_ms, downtime_ms, setup_ms;
    uint64_t transferred, dirty_syncs;
};

struct vmm_ops {
    const char *name;
    /* Available on this host? (binary installed) */
    int (*available)(hull_error *err);
    /* Start the VMM for vm (sets vm->pid, pid_start, monitor, started_ms).
     * incoming_fd >= 0: do not boot, load a saved state from that fd and
     * stay paused. attached: the VMM dies with the calling process. */
    int (*start)(struct vm *vm, int incoming_fd, bool attached, void (*cleanup)(void *), void *arg,
                 hull_error *err);
    int (*pause)(struct vm *vm, hull_error *err);
    int (*resume)(struct vm *vm, hull_error *err);
    /* Ask the VMM to exit now (no guest shutdown). */
    int (*quit)(struct vm *vm, hull_error *err);
    /* Write the VM's state to fd; pump(arg) drains fd's other end
     * concurrently and returns when it sees EOF. Leaves the VM paused. */
    int (*save)(struct vm *vm, int fd, int (*pump)(void *), void *arg, hull_error *err);
    /* After the caller fed an incoming stream: wait until it is loaded. */
    int (*load_wait)(struct vm *vm, hull_error *err);
    /* Live migration out (migrate_send.c): write the VM's state to fd
     * while the guest runs (stopped first when !live), at most bandwidth
     * bytes/s (0: unlimited); returns once the migration has begun. */
    int (*migrate_out)(struct vm *vm, int fd, bool live, uint64_t bandwidth, hull_error *err);
    /* Wait up to timeout_ms for it to end; its figures in *m. */
    int (*migrate_wait)(struct vm *vm, int timeout_ms, struct vmm_migration *m, hull_error *err);
    /* Cancel it if it still runs; the guest runs again when resume. */
    int (*migrate_abort)(struct vm *vm, bool resume, hull_error *err);
    /* After an incoming migration: the guest's network card announces its
     * MAC (and addresses) on the new host's network. */
    int (*announce)(struct vm *vm, hull_error *err);
};

/* vmm_qemu_migrate.c */
int vm_qemu_migrate_out(struct vm *vm, int fd, bool live, uint64_t bandwidth, hull_error *err);
int vm_qemu_migrate_wait(struct vm *vm, int timeout_ms, struct vmm_migration *m, hull_error *err);
int vm_qemu_migrate_abort(struct vm *vm, bool resume, hull_error *err);
int vm_qemu_announce(struct vm *vm, hull_error *err);

const struct vmm_ops *vm_vmm(void);

#endif
