/* seccomp filters through libseccomp.
 *
 * The filter is compiled in the runtime process (before fork): libseccomp
 * builds it and the raw BPF is kept in memory. The container's init installs
 * it with one seccomp(2) call that allocates nothing. Compiled programs are
 * cached by content, so compiling the same profile again (the sandbox's
 * built-in profile on every run) costs a lookup, not a compile.
 *
 * Ordering contract for the caller (the container's init):
 *  - process.noNewPrivileges true: set PR_SET_NO_NEW_PRIVS, then load the
 *    filter as the very last step before execve, after every step that
 *    needs syscalls the profile may block (mounts, setuid, capset, ...).
 *  - noNewPrivileges false: the filter can only be loaded with
 *    CAP_SYS_ADMIN, so load it before dropping capabilities; every later
 *    step (capset, setgroups/setuid, execve) then runs under the filter and
 *    must be allowed by the profile (as with runc and crun).
 *  - Either way execve itself runs under the filter: a profile that denies
 *    it cannot start a container (same as runc).
 *  - SCMP_ACT_NOTIFY: hull_seccomp_load returns the listener fd (O_CLOEXEC)
 *    in the init; hand it to the runtime with write (its number, the parent
 *    then takes it with pidfd_getfd) or sendmsg/SCM_RIGHTS -- the compiler
 *    refuses NOTIFY on write and sendmsg so that this cannot deadlock -- and
 *    the runtime calls hull_seccomp_send_listener, before the init execs.
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
 * naming the field (linux.seccomp.syscalls[3].action: ...); a flag or action
 * the kernel lacks is an error too. Results are cached by content (8
 * profiles, least recently used out): a repeated call returns a new
 * reference to the same compiled filter. Free with hull_seccomp_filter_free.
 * Thread-safe; hull_seccomp_load takes no lock, so a child forked while
 * another thread compiles can still load. Flags: TSYNC, LOG, SPEC_ALLOW and
 * WAIT_KILLABLE_RECV are passed to seccomp(2) when the kernel has them
 * (else an error naming linux.seccomp.flags[i]); WAIT_KILLABLE_RECV is
 * dropped when no rule uses SCMP_ACT_NOTIFY (the kernel refuses it alone). */
int hull_seccomp_compile(const struct hull_seccomp *spec, struct hull_seccomp_filter **out,
                         hull_error *err);
/* The same without the cache (benchmarks, tests). */
int hull_seccomp_compile_uncached(const struct hull_seccomp *spec, struct hull_seccomp_filter **out,
                                  hull_error *err);
/* Drop the cache's references (tests; a daemon at exit). */
void hull_seccomp_cache_clear(void);

/* Install the compiled filter in the calling process (one seccomp(2) call,
 * with the profile's flags). Allocates nothing on success, so it is safe
 * right before execve in a forked child; only a failure formats *err. Needs
 * no_new_privs or CAP_SYS_ADMIN. When the profile has an SCMP_ACT_NOTIFY
 * rule, the listener fd (O_CLOEXEC) is returned in *notify_fd (else -1); with
 * notify_fd NULL it is closed. */
int hull_seccomp_load(const struct hull_seccomp_filter *f, int *notify_fd, hull_error *err);

/* True when the profile uses SCMP_ACT_NOTIFY (the runtime must then send the
 * listener fd to linux.seccomp.listenerPath). */
bool hull_seccomp_needs_listener(const struct hull_seccomp_filter *f);

/* Another reference to f (returns f). */
struct hull_seccomp_filter *hull_seccomp_filter_ref(struct hull_seccomp_filter *f);
/* Drop a reference; the last one frees. NULL is fine. */
void hull_seccomp_filter_free(struct hull_seccomp_filter *f);
/* The BPF program: instruction count and the struct sock_filter array. */
size_t hull_seccomp_filter_len(const struct hull_seccomp_filter *f);
unsigned long hull_seccomp_filter_flags(const struct hull_seccomp_filter *f);
/* A filter from a program compiled earlier (the on-disk cache); NULL when
 * len is not a valid program length or memory runs out. */
struct hull_seccomp_filter *hull_seccomp_filter_from_bpf(const void *insns, size_t len,
                                                         unsigned long flags, bool notify);
const void *hull_seccomp_filter_insns(const struct hull_seccomp_filter *f);

/* Send the listener fd of an SCMP_ACT_NOTIFY filter to the seccomp agent at
 * linux.seccomp.listenerPath, as runtime-spec requires: one AF_UNIX stream
 * connection, the fd as SCM_RIGHTS alongside the containerProcessState JSON
 * {"ociVersion", "fds": ["seccompFd"], "pid", "metadata", "state"}.
 * state_json is the container's state (the `state` verb's JSON); metadata is
 * linux.seccomp.listenerMetadata (may be NULL). Does not close notify_fd. */
int hull_seccomp_send_listener(const char *listener_path, int notify_fd, const char *metadata,
                               const char *state_json, pid_t pid, hull_error *err);

/* The built-in profile of `hull sandbox run` at container isolation: an
 * allow-list in the spirit of Docker's default that denies (EPERM) keyctl,
 * add_key, request_key, bpf, userfaultfd, perf_event_open, mount, umount2,
 * unshare, setns, ptrace, process_vm_*, kexec_*, init_module, finit_module,
 * delete_module, pivot_root, chroot, personality changes, io_uring_*,
 * clock_settime/adjtimex/settimeofday, and every 32-bit (x86/x32) syscall on
 * x86_64 (those kill the process). Details in linux/seccomp_default.c.
 * Built once per process; static, do not free. NULL only when out of memory.
 * Compile it with hull_seccomp_compile (cached after the first call). */
const struct hull_seccomp *hull_seccomp_default_sandbox(void);
/* The same profile as an OCI linux.seccomp JSON document (pretty-printed),
 * for `hull sandbox seccomp-profile` and as a starting point for --seccomp.
 * Static; NULL only when out of memory. */
const char *hull_seccomp_default_sandbox_json(void);
/* The same document, new, for a spec (the caller owns it); NULL when out of
 * memory. */
struct json_object;
struct json_object *hull_seccomp_default_sandbox_document(void);
/* The profile of the sandbox's process level: everything allowed but
 * add_key, request_key and keyctl (EPERM), on every architecture the
 * machine runs: a key left in a uid's keyrings would outlive the run and
 * reach the next run given that uid (linux/seccomp_keys.c). Static, do not
 * free; NULL only when out of memory. */
const struct hull_seccomp *hull_seccomp_process_sandbox(void);
/* The same profile as a new linux.seccomp document (the caller owns it);
 * NULL when out of memory. */
struct json_object *hull_seccomp_process_sandbox_document(void);

#endif
