/* seccomp filters through libseccomp.
 *
 * The filter is compiled in the runtime process (before fork) and loaded by
 * the container's init as the very last step before execve, after every
 * other step that needs syscalls it may block. Compiled programs can be
 * cached and reused (the sandbox compiles its default profile once).
 *
 * Owner: linux/seccomp*.c. Callers: container/, sandbox/.
 */
#ifndef HULL_LINUX_SECCOMP_H
#define HULL_LINUX_SECCOMP_H

#include <stdbool.h>

#include "hull.h"
#include "spec/spec.h"

struct hull_seccomp_filter;

/* Compile linux.seccomp into BPF. Syscall names unknown on this kernel and
 * architecture are skipped (as runc does); a malformed profile is an error
 * naming the field (linux.seccomp.syscalls[3].action: ...). */
int hull_seccomp_compile(const struct hull_seccomp *spec, struct hull_seccomp_filter **out,
                         hull_error *err);

/* Install the compiled filter in the calling process. Does not allocate, so
 * it is safe right before execve in a forked child. Needs no_new_privs or
 * CAP_SYS_ADMIN. When the profile has an SCMP_ACT_NOTIFY rule, the listener
 * fd is returned in *notify_fd (else -1). */
int hull_seccomp_load(const struct hull_seccomp_filter *f, int *notify_fd, hull_error *err);

/* True when the profile uses SCMP_ACT_NOTIFY (the runtime must then send the
 * listener fd to linux.seccomp.listenerPath). */
bool hull_seccomp_needs_listener(const struct hull_seccomp_filter *f);

void hull_seccomp_filter_free(struct hull_seccomp_filter *f);

/* The built-in profile of `hull sandbox run` at container isolation: an
 * allow-list in the spirit of Docker's default that denies (EPERM) keyctl,
 * add_key, request_key, bpf, userfaultfd, perf_event_open, mount, umount2,
 * unshare, setns, ptrace, process_vm_*, kexec_*, init_module, finit_module,
 * delete_module, pivot_root, chroot, personality changes, io_uring_*,
 * clock_settime/adjtimex/settimeofday, and every 32-bit (x86/x32) syscall on
 * x86_64. Static; do not free. */
const struct hull_seccomp *hull_seccomp_default_sandbox(void);

#endif
