/* The built-in seccomp profile of `hull sandbox run` (container isolation).
 *
 * An allow-list in the spirit of Docker's default profile: whatever is not
 * listed fails with EPERM. It is written as tables of syscall names grouped by
 * purpose, turned once into an OCI linux.seccomp JSON document, and that
 * document is parsed by the same parser a user's --seccomp FILE goes
 * through -- so `hull sandbox seccomp-profile > p.json; --seccomp p.json`
 * gives exactly the same filter.
 *
 * Deliberately NOT allowed (they fall to the default EPERM), and why:
 *   kernel attack surface that ordinary programs never need: bpf,
 *     perf_event_open, userfaultfd, io_uring_setup/enter/register, keyctl,
 *     add_key, request_key, modify_ldt, lookup_dcookie, memfd_secret;
 *   leaving or reshaping the sandbox: mount, umount2, pivot_root, chroot,
 *     unshare, setns, the new mount API (fsopen, fsmount, move_mount, ...),
 *     name_to_handle_at, open_by_handle_at (the "shocker" escape);
 *   other processes' memory: ptrace, process_vm_readv/writev, kcmp,
 *     pidfd_getfd, process_madvise, process_mrelease, move_pages,
 *     migrate_pages;
 *   the host's machine state: kexec_load, kexec_file_load, init_module,
 *     finit_module, delete_module, reboot, swapon, swapoff, acct, syslog,
 *     quotactl, clock_settime, clock_adjtime, adjtimex, settimeofday,
 *     sethostname, setdomainname, iopl, ioperm, vhangup, fanotify_*;
 *   obsolete or never implemented: _sysctl, ustat, sysfs, uselib,
 *     create_module, get_kernel_syms, query_module, nfsservctl, vm86,
 *     afs_syscall, tuxcall, security, vserver, getpmsg, putpmsg.
 *
 * Allowed only with conditions:
 *   clone: only without CLONE_NEW* flags (a masked compare of the flags);
 *     clone3 answers ENOSYS because its flags live in memory seccomp cannot
 *     read, and glibc then falls back to clone (as with Docker's profile);
 *   personality: only the query (0xffffffff) and PER_LINUX (0);
 *   socket: AF_UNIX, AF_INET, AF_INET6, and AF_NETLINK with NETLINK_ROUTE
 *     only (what getaddrinfo, `ip` and ifaddrs need; the sandbox's own net
 *     namespace has nothing else). Packet, raw netlink families (netfilter,
 *     audit, uevent...), AF_ALG, AF_VSOCK, bluetooth etc. are refused:
 *     rarely needed by programs and a recurring source of kernel bugs.
 *
 * The filter lists only the native architecture. On x86_64 a 32-bit syscall
 * (int 0x80, sysenter) or an x32 one arrives with another audit arch or the
 * x32 bit, which the filter treats as a bad architecture: the process is
 * killed with SIGSYS (linux/seccomp.c sets that action).
 *
 * ioctl is allowed whole: TIOCSTI/TIOCLINUX cannot be singled out reliably
 * against a full allow of ioctl with libseccomp, and the sandbox's process
 * runs in its own session without a controlling terminal of the host.
 */
#include <errno.h>
#include <linux/netlink.h>
#include <pthread.h>
#include <sched.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "linux/seccomp.h"
#include "spec/spec.h"
#include "util/error.h"
#include "util/json.h"

/* The name tables read better packed by hand. */
// clang-format off
static const char *const allow_files[] = {
    "read", "write", "readv", "writev", "pread64", "pwrite64", "preadv", "pwritev",
    "preadv2", "pwritev2", "open", "openat", "openat2", "creat", "close", "close_range",
    "lseek", "dup", "dup2", "dup3", "fcntl", "flock", "ioctl", "fsync", "fdatasync", "sync",
    "syncfs", "sync_file_range", "truncate", "ftruncate", "fallocate", "fadvise64",
    "readahead", "sendfile", "splice", "tee", "vmsplice", "copy_file_range", NULL};

static const char *const allow_metadata[] = {
    "stat", "fstat", "lstat", "newfstatat", "statx", "statfs", "fstatfs", "access",
    "faccessat", "faccessat2", "readlink", "readlinkat", "getdents", "getdents64", "getcwd",
    "chdir", "fchdir", "rename", "renameat", "renameat2", "mkdir", "mkdirat", "rmdir", "link",
    "linkat", "unlink", "unlinkat", "symlink", "symlinkat", "mknod", "mknodat", "chmod",
    "fchmod", "fchmodat", "fchmodat2", "chown", "fchown", "lchown", "fchownat", "umask",
    "utime", "utimes", "futimesat", "utimensat", "getxattr", "lgetxattr", "fgetxattr",
    "setxattr", "lsetxattr", "fsetxattr", "listxattr", "llistxattr", "flistxattr",
    "removexattr", "lremovexattr", "fremovexattr", "inotify_init", "inotify_init1",
    "inotify_add_watch", "inotify_rm_watch", NULL};

static const char *const allow_memory[] = {
    "brk", "mmap", "munmap", "mremap", "mprotect", "msync", "mincore", "madvise", "mlock",
    "mlock2", "munlock", "mlockall", "munlockall", "remap_file_pages", "memfd_create",
    "membarrier", "mbind", "get_mempolicy", "set_mempolicy", "pkey_alloc", "pkey_free",
    "pkey_mprotect", "map_shadow_stack", "mseal", NULL};

/* fork and vfork carry no namespace flags; clone is conditional below. */
static const char *const allow_processes[] = {
    "execve", "execveat", "exit", "exit_group", "fork", "vfork", "wait4", "waitid", "kill",
    "tkill", "tgkill", "rt_sigqueueinfo", "rt_tgsigqueueinfo", "pidfd_open",
    "pidfd_send_signal", "getpid", "getppid", "gettid", "getpgid", "setpgid", "getpgrp",
    "getsid", "setsid", "set_tid_address", "set_robust_list", "get_robust_list", "rseq",
    "arch_prctl", "prctl", "set_thread_area", "get_thread_area", "capget", "capset",
    "seccomp", "landlock_create_ruleset", "landlock_add_rule", "landlock_restrict_self",
    "futex", "futex_waitv", "futex_wake", "futex_wait", "futex_requeue", "sched_yield",
    "sched_getaffinity", "sched_setaffinity", "sched_getparam", "sched_setparam",
    "sched_getscheduler", "sched_setscheduler", "sched_get_priority_max",
    "sched_get_priority_min", "sched_rr_get_interval", "sched_getattr", "sched_setattr",
    "getpriority", "setpriority", "ioprio_get", "ioprio_set", "getrlimit", "setrlimit",
    "prlimit64", "getrusage", "times", "uname", "sysinfo", "getrandom", "getcpu", NULL};

/* Changing ids needs capabilities the sandbox does not have; programs still
 * call these to drop or check privileges and must get a real answer. */
static const char *const allow_ids[] = {
    "getuid", "geteuid", "getgid", "getegid", "getresuid", "getresgid", "getgroups",
    "setuid", "setgid", "setreuid", "setregid", "setresuid", "setresgid", "setgroups",
    "setfsuid", "setfsgid", NULL};

static const char *const allow_signals_time[] = {
    "rt_sigaction", "rt_sigprocmask", "rt_sigreturn", "rt_sigpending", "rt_sigtimedwait",
    "rt_sigsuspend", "sigaltstack", "signalfd", "signalfd4", "restart_syscall", "pause",
    "alarm", "nanosleep", "clock_nanosleep", "clock_gettime", "clock_getres", "gettimeofday",
    "time", "getitimer", "setitimer", "timer_create", "timer_settime", "timer_gettime",
    "timer_getoverrun", "timer_delete", "timerfd_create", "timerfd_settime",
    "timerfd_gettime", NULL};

static const char *const allow_ipc[] = {
    "pipe", "pipe2", "eventfd", "eventfd2", "epoll_create", "epoll_create1", "epoll_ctl",
    "epoll_wait", "epoll_pwait", "epoll_pwait2", "poll", "ppoll", "select", "pselect6",
    "socketpair", "bind", "connect", "listen", "accept", "accept4", "getsockname",
    "getpeername", "sendto", "recvfrom", "sendmsg", "recvmsg", "sendmmsg", "recvmmsg",
    "shutdown", "setsockopt", "getsockopt", "mq_open", "mq_unlink", "mq_timedsend",
    "mq_timedreceive", "mq_notify", "mq_getsetattr", "msgget", "msgsnd", "msgrcv", "msgctl",
    "semget", "semop", "semtimedop", "semctl", "shmget", "shmat", "shmdt", "shmctl",
    "io_setup", "io_destroy", "io_submit", "io_cancel", "io_getevents", "io_pgetevents",
    NULL};

static const char *const *const allow_groups[] = {
    allow_files, allow_metadata, allow_memory, allow_processes, allow_ids,
    allow_signals_time, allow_ipc,
};
// clang-format on

#define NS_CLONE_FLAGS                                                                             \
    (CLONE_NEWNS | CLONE_NEWCGROUP | CLONE_NEWUTS | CLONE_NEWIPC | CLONE_NEWUSER | CLONE_NEWPID |  \
     CLONE_NEWNET)
#define PERSONALITY_QUERY 0xffffffffULL

/* ---- building the JSON document -------------------------------------------- */

static json_object *names_array(const char *const *names)
{
    json_object *a = json_object_new_array();
    for (size_t i = 0; a && names[i]; i++)
        json_object_array_add(a, json_object_new_string(names[i]));
    return a;
}

static json_object *arg(unsigned index, uint64_t value, uint64_t value_two, const char *op)
{
    json_object *o = json_object_new_object();
    json_object_object_add(o, "index", json_object_new_int((int)index));
    json_object_object_add(o, "value", json_object_new_uint64(value));
    json_object_object_add(o, "valueTwo", json_object_new_uint64(value_two));
    json_object_object_add(o, "op", json_object_new_string(op));
    return o;
}

/* One "syscalls" entry; args is a NULL-terminated list of arg objects. */
static json_object *entry(const char *const *names, const char *action, int errno_ret,
                          json_object **args)
{
    json_object *o = json_object_new_object();
    json_object_object_add(o, "names", names_array(names));
    json_object_object_add(o, "action", json_object_new_string(action));
    if (errno_ret >= 0)
        json_object_object_add(o, "errnoRet", json_object_new_int(errno_ret));
    if (args && args[0]) {
        json_object *a = json_object_new_array();
        for (size_t i = 0; args[i]; i++)
            json_object_array_add(a, args[i]);
        json_object_object_add(o, "args", a);
    }
    return o;
}

static json_object *conditional_entries(void)
{
    static const char *const clone_[] = {"clone", NULL};
    static const char *const clone3[] = {"clone3", NULL};
    static const char *const personality[] = {"personality", NULL};
    static const char *const socket_[] = {"socket", NULL};
    json_object *a = json_object_new_array();

    json_object *no_ns[] = {arg(0, NS_CLONE_FLAGS, 0, "SCMP_CMP_MASKED_EQ"), NULL};
    json_object_array_add(a, entry(clone_, "SCMP_ACT_ALLOW", -1, no_ns));
    json_object_array_add(a, entry(clone3, "SCMP_ACT_ERRNO", ENOSYS, NULL));

    /* Two conditions on argument 0: OR-ed, one rule each. */
    json_object *pers[] = {arg(0, 0, 0, "SCMP_CMP_EQ"), arg(0, PERSONALITY_QUERY, 0, "SCMP_CMP_EQ"),
                           NULL};
    json_object_array_add(a, entry(personality, "SCMP_ACT_ALLOW", -1, pers));

    json_object *fam[] = {arg(0, AF_UNIX, 0, "SCMP_CMP_EQ"), arg(0, AF_INET, 0, "SCMP_CMP_EQ"),
                          arg(0, AF_INET6, 0, "SCMP_CMP_EQ"), NULL};
    json_object_array_add(a, entry(socket_, "SCMP_ACT_ALLOW", -1, fam));
    json_object *route[] = {arg(0, AF_NETLINK, 0, "SCMP_CMP_EQ"),
                            arg(2, NETLINK_ROUTE, 0, "SCMP_CMP_EQ"), NULL};
    json_object_array_add(a, entry(socket_, "SCMP_ACT_ALLOW", -1, route));
    return a;
}

static const char *native_arch_name(void)
{
#if defined(__x86_64__)
    return "SCMP_ARCH_X86_64";
#elif defined(__aarch64__)
    return "SCMP_ARCH_AARCH64";
#else
    return "SCMP_ARCH_NATIVE";
#endif
}

static json_object *build_document(void)
{
    json_object *doc = json_object_new_object();
    if (doc == NULL)
        return NULL;
    json_object_object_add(doc, "defaultAction", json_object_new_string("SCMP_ACT_ERRNO"));
    json_object_object_add(doc, "defaultErrnoRet", json_object_new_int(EPERM));
    json_object *arches = json_object_new_array();
    json_object_array_add(arches, json_object_new_string(native_arch_name()));
    json_object_object_add(doc, "architectures", arches);

    json_object *calls = json_object_new_array();
    size_t total = 0;
    for (size_t g = 0; g < sizeof(allow_groups) / sizeof(allow_groups[0]); g++)
        for (size_t i = 0; allow_groups[g][i]; i++)
            total++;
    /* One entry for every unconditional name: shortest to read and diff. */
    const char **all = calloc(total + 1, sizeof(*all));
    if (all == NULL || calls == NULL) {
        free(all);
        json_object_put(calls);
        json_object_put(doc);
        return NULL;
    }
    size_t n = 0;
    for (size_t g = 0; g < sizeof(allow_groups) / sizeof(allow_groups[0]); g++)
        for (size_t i = 0; allow_groups[g][i]; i++)
            all[n++] = allow_groups[g][i];
    json_object_array_add(calls, entry(all, "SCMP_ACT_ALLOW", -1, NULL));
    free(all);

    json_object *cond = conditional_entries();
    for (size_t i = 0; cond && i < json_object_array_length(cond); i++)
        json_object_array_add(calls, json_object_get(json_object_array_get_idx(cond, i)));
    json_object_put(cond);
    json_object_object_add(doc, "syscalls", calls);
    return doc;
}

/* ---- the process-wide instances ---------------------------------------------- */

static pthread_once_t once = PTHREAD_ONCE_INIT;
static json_object *document;
static const char *document_text;
static struct hull_seccomp profile;
static bool profile_ok;

static void build_once(void)
{
    document = build_document();
    if (document == NULL)
        return;
    document_text =
        json_object_to_json_string_ext(document, JSON_C_TO_STRING_PRETTY | JSON_C_TO_STRING_SPACED |
                                                     JSON_C_TO_STRING_NOSLASHESCAPE);
    hull_error err = NULL;
    if (hull_seccomp_parse(document, "linux.seccomp", &profile, &err) < 0) {
        /* Only memory can fail here; the document is ours. */
        hull_seccomp_free(&profile);
        hull_error_free(&err);
        return;
    }
    profile_ok = true;
}

const struct hull_seccomp *hull_seccomp_default_sandbox(void)
{
    pthread_once(&once, build_once);
    return profile_ok ? &profile : NULL;
}

const char *hull_seccomp_default_sandbox_json(void)
{
    pthread_once(&once, build_once);
    return document_text;
}
