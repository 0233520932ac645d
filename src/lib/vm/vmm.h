/* The VMM behind a small interface (vmm_qemu.c implements it with QEMU's
 * microvm machine). Another VMM (Firecracker, Cloud Hypervisor) would be a
 * second struct vmm_ops; nothing above this file names QEMU. */
#ifndef HULL_VM_VMM_H
#define HULL_VM_VMM_H

#include <stdbool.h>

#include "hull.h"
#include "vm/vm.h"

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
};

const struct vmm_ops *vm_vmm(void);

#endif
