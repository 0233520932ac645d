/* The built-in sandbox filter's tables: see seccomp_default.c for what is
 * left out and why, and seccomp_rules.h for who uses them. */
#include <errno.h>
#include <linux/netlink.h>
#include <sched.h>
#include <sys/socket.h>

#include "linux/seccomp_rules.h"

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

const char *const *const hull_sbx_allow_groups[] = {
    allow_files, allow_metadata, allow_memory, allow_processes, allow_ids,
    allow_signals_time, allow_ipc,
};
// clang-format on

const size_t hull_sbx_allow_group_count =
    sizeof(hull_sbx_allow_groups) / sizeof(hull_sbx_allow_groups[0]);

#define NS_CLONE_FLAGS                                                                             \
    (CLONE_NEWNS | CLONE_NEWCGROUP | CLONE_NEWUTS | CLONE_NEWIPC | CLONE_NEWUSER | CLONE_NEWPID |  \
     CLONE_NEWNET)
#define PERSONALITY_QUERY 0xffffffffULL

const struct hull_sbx_rule hull_sbx_rules[] = {
    /* clone only without namespace flags (a masked compare of the flags). */
    {"clone", -1, 1, {{0, HULL_SBX_MASKED_EQ, NS_CLONE_FLAGS, 0}}},
    /* clone3's flags live in memory seccomp cannot read: ENOSYS, so that
     * glibc falls back to clone, whose flags are checked. */
    {"clone3", ENOSYS, 0, {{0}}},
    /* personality: only PER_LINUX and the query. */
    {"personality", -1, 1, {{0, HULL_SBX_EQ, 0, 0}}},
    {"personality", -1, 1, {{0, HULL_SBX_EQ, PERSONALITY_QUERY, 0}}},
    /* socket: unix, IPv4, IPv6 and route netlink only. */
    {"socket", -1, 1, {{0, HULL_SBX_EQ, AF_UNIX, 0}}},
    {"socket", -1, 1, {{0, HULL_SBX_EQ, AF_INET, 0}}},
    {"socket", -1, 1, {{0, HULL_SBX_EQ, AF_INET6, 0}}},
    {"socket", -1, 2, {{0, HULL_SBX_EQ, AF_NETLINK, 0}, {2, HULL_SBX_EQ, NETLINK_ROUTE, 0}}},
};

const size_t hull_sbx_rule_count = sizeof(hull_sbx_rules) / sizeof(hull_sbx_rules[0]);
