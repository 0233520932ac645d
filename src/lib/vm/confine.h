/* Starting the VMM confined (confine.c). Internal to vm/. */
#ifndef HULL_VM_CONFINE_H
#define HULL_VM_CONFINE_H

#include <stdbool.h>
#include <sys/types.h>

#include "hull.h"
#include "linux/cgroup.h"

/* The fd number QEMU finds the VM's TAP at (-netdev tap,fd=4). */
#define VM_TAP_FD     4
#define VM_TAP_FD_STR "4"
/* The fd number QEMU finds guest RAM at when it is a memfd hull made
 * (memory-backend-file,mem-path=/proc/self/fd/5). */
/* The most QEMU writes to any file: its console log (run/console.log,
 * whatever the guest prints) and its stderr (run/qemu.log). */
#define VM_LOG_MAX    (8 << 20)
#define VM_RAM_FD     5
#define VM_RAM_FD_STR "5"

struct vm_jail_file {
    const char *src;  /* host path */
    const char *name; /* visible to QEMU as /vm/<name>, read-only */
};

struct vm_spawn {
    const char *binary; /* host path of the VMM, also its path inside */
    char *const *argv;  /* paths as QEMU sees them (/vm, /run) */
    uid_t uid;          /* unprivileged uid = gid for QEMU */
    const char *jail;   /* empty directory to build QEMU's root on */
    const char *rundir; /* becomes /run: sockets, console and QEMU's log */
    const struct vm_jail_file *files;
    size_t nfiles;
    bool kvm;               /* give it /dev/kvm */
    struct hull_cgroup *cg; /* QEMU joins it before anything else */
    int incoming_fd;        /* becomes fd 3 (migration stream), -1 for none */
    int hold_fd;            /* kept open in QEMU to its end (a lock it holds), -1 for none */
    int tap_fd;             /* the VM's TAP, becomes VM_TAP_FD; -1 for none */
    int ram_fd;             /* guest RAM (a memfd), becomes VM_RAM_FD; -1 for none */
    /* Keep a small parent process that dies with the caller and takes QEMU
     * with it (ephemeral VMs); cleanup runs in it when the caller is gone. */
    bool attached;
    void (*cleanup)(void *arg);
    void *cleanup_arg;
};

/* Fork, confine, exec. Returns once QEMU runs (or failed to start, with the
 * reason from the child). *pid is QEMU's host pid, *monitor the attached
 * parent or 0. */
int vm_spawn_vmm(const struct vm_spawn *s, pid_t *pid, pid_t *monitor, hull_error *err);

#endif
