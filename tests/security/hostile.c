/* hostile: the attacks of the escape battery, one per subcommand, for the
 * tests in tests/security/ to run inside a sandbox. Each attempt prints one
 * line "NAME RET ERRNO-NAME" (RET is the syscall's return value), so the
 * tests can check exactly how each attack failed; attacks whose success
 * cannot be printed (a kill, an overwrite) are checked from the host.
 *
 * Built by the test fixture with the host's gcc and copied into the
 * sandbox; not part of hull.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <linux/keyctl.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/ptrace.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <sys/time.h>
#include <sys/timex.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static const char *ename(int e)
{
    const char *n = strerrorname_np(e);
    return n ? n : "0";
}

#define T(name, expr)                                                                              \
    do {                                                                                           \
        errno = 0;                                                                                 \
        long r_ = (long)(expr);                                                                    \
        printf("%s %ld %s\n", name, r_, r_ < 0 ? ename(errno) : "0");                              \
        fflush(stdout);                                                                            \
    } while (0)

/* Every syscall the sandbox must refuse, and how it answers. */
static int syscalls(void)
{
    T("mount", mount("tmpfs", "/tmp", "tmpfs", 0, NULL));
    T("mount_cgroup", mount("cgroup", "/tmp", "cgroup", 0, "rdma"));
    T("mount_proc", mount("proc", "/tmp", "proc", 0, NULL));
    T("umount", umount2("/proc", MNT_DETACH));
    T("unshare_user", unshare(CLONE_NEWUSER));
    T("unshare_mnt", unshare(CLONE_NEWNS));
    T("unshare_cgroup", unshare(CLONE_NEWCGROUP));
    T("unshare_net", unshare(CLONE_NEWNET));
    int nsfd = open("/proc/self/ns/net", O_RDONLY);
    T("setns", setns(nsfd, 0));
    T("clone_newuser", syscall(SYS_clone, CLONE_NEWUSER | SIGCHLD, 0, 0, 0, 0));
    T("clone3", syscall(SYS_clone3, NULL, 0));
    T("pivot_root", syscall(SYS_pivot_root, "/tmp", "/tmp"));
    T("chroot", chroot("/tmp"));
    T("init_module", syscall(SYS_init_module, "", 0, ""));
    int devnull = open("/dev/null", O_RDONLY);
    T("finit_module", syscall(SYS_finit_module, devnull, "", 0));
    T("delete_module", syscall(SYS_delete_module, "ext4", O_NONBLOCK));
    T("kexec_load", syscall(SYS_kexec_load, 0, 0, NULL, 0));
    T("kexec_file_load", syscall(SYS_kexec_file_load, devnull, devnull, 0, "", 0));
    T("keyctl", syscall(SYS_keyctl, KEYCTL_GET_KEYRING_ID, KEY_SPEC_SESSION_KEYRING, 0));
    T("add_key", syscall(SYS_add_key, "user", "hull", "x", 1, KEY_SPEC_SESSION_KEYRING));
    T("request_key", syscall(SYS_request_key, "user", "hull", NULL, 0));
    T("bpf", syscall(SYS_bpf, 0, NULL, 0));
    T("perf_event_open", syscall(SYS_perf_event_open, NULL, 0, -1, -1, 0));
    T("userfaultfd", syscall(SYS_userfaultfd, 0));
    T("io_uring_setup", syscall(SYS_io_uring_setup, 1, NULL));
    T("personality", syscall(SYS_personality, 0x0400000 /* READ_IMPLIES_EXEC */));
    T("open_by_handle_at", syscall(SYS_open_by_handle_at, AT_FDCWD, NULL, 0));
    T("name_to_handle_at", syscall(SYS_name_to_handle_at, AT_FDCWD, "/", NULL, NULL, 0));
    T("reboot", syscall(SYS_reboot, 0xfee1dead, 0x28121969, 0x4321fedc, NULL));
    T("swapon", syscall(SYS_swapon, "/tmp/swap", 0));
    T("syslog", syscall(SYS_syslog, 3, NULL, 0));
    T("acct", syscall(SYS_acct, "/tmp/acct"));
    T("sethostname", sethostname("evil", 4));
    T("iopl", syscall(SYS_iopl, 3));
    T("ioperm", syscall(SYS_ioperm, 0x80, 1, 1));
    T("mknod_block", mknod("/tmp/sda", S_IFBLK | 0600, makedev(8, 0)));
    T("mknod_char", mknod("/tmp/mem", S_IFCHR | 0600, makedev(1, 1)));
    T("socket_raw", socket(AF_INET, SOCK_RAW, 1));
    T("socket_packet", socket(AF_PACKET, SOCK_RAW, 0));
    T("socket_netlink_audit", socket(AF_NETLINK, SOCK_RAW, 9));
    T("socket_vsock", socket(40 /* AF_VSOCK */, SOCK_STREAM, 0));
    T("socket_alg", socket(38 /* AF_ALG */, SOCK_SEQPACKET, 0));
    T("setuid0", setuid(0));
    T("setgid0", setgid(0));
    T("modify_ldt", syscall(SYS_modify_ldt, 0, NULL, 0));
    return 0;
}

/* A new namespace through clone and clone3, which unshare's refusal does
 * not cover: a user namespace gives its first process every capability in
 * it. A child that does get made exits at once; its parent waits. */
static long clone_ns(unsigned long flags)
{
    long r = syscall(SYS_clone, flags | SIGCHLD, 0, 0, 0, 0);
    if (r == 0)
        _exit(0);
    if (r > 0)
        waitpid((pid_t)r, NULL, 0);
    return r;
}

static long clone3_ns(unsigned long long flags)
{
    struct {
        unsigned long long flags, pidfd, child_tid, parent_tid, exit_signal, stack, stack_size, tls;
    } a = {.flags = flags, .exit_signal = SIGCHLD};
    long r = syscall(SYS_clone3, &a, sizeof(a));
    if (r == 0)
        _exit(0);
    if (r > 0)
        waitpid((pid_t)r, NULL, 0);
    return r;
}

static int nsclone(void)
{
    T("clone_newuser", clone_ns(CLONE_NEWUSER));
    T("clone_newuser_newnet", clone_ns(CLONE_NEWUSER | CLONE_NEWNET));
    T("clone_newns", clone_ns(CLONE_NEWNS));
    T("clone_newpid", clone_ns(CLONE_NEWPID));
    T("clone3_newuser", clone3_ns(CLONE_NEWUSER));
    T("clone3_plain", clone3_ns(0));
    T("unshare_user", unshare(CLONE_NEWUSER));
    T("unshare_net", unshare(CLONE_NEWNET));
    return 0;
}

/* Setting the clock, every way there is. */
static int clock_(void)
{
    struct timespec y2k = {.tv_sec = 946684800};
    T("clock_settime", clock_settime(CLOCK_REALTIME, &y2k));
    struct timeval tv = {.tv_sec = 946684800};
    T("settimeofday", settimeofday(&tv, NULL));
    struct timex tx = {.modes = ADJ_OFFSET | ADJ_STATUS, .offset = 1000000, .status = 0};
    T("adjtimex", adjtimex(&tx));
    struct timex tx2 = {.modes = ADJ_SETOFFSET, .time = {.tv_sec = 3600}};
    T("clock_adjtime", syscall(SYS_clock_adjtime, CLOCK_REALTIME, &tx2));
    T("stime_like", syscall(SYS_settimeofday, &tv, NULL));
    return 0;
}

/* ptrace and friends against a sibling of the same uid. */
static int ptrace_(void)
{
    pid_t c = fork();
    if (c == 0) {
        pause();
        _exit(0);
    }
    char buf[8];
    struct iovec l = {buf, sizeof(buf)}, rm = {(void *)0x400000, sizeof(buf)};
    T("ptrace_attach", ptrace(PTRACE_ATTACH, c, NULL, NULL));
    T("ptrace_seize", ptrace(PTRACE_SEIZE, c, NULL, NULL));
    T("process_vm_readv", syscall(SYS_process_vm_readv, c, &l, 1, &rm, 1, 0));
    T("process_vm_writev", syscall(SYS_process_vm_writev, c, &l, 1, &rm, 1, 0));
    char path[64];
    snprintf(path, sizeof(path), "/proc/%d/mem", (int)c);
    T("proc_mem_write", open(path, O_WRONLY));
    T("kcmp", syscall(SYS_kcmp, getpid(), c, 0, 0, 0));
    T("pidfd_getfd", syscall(SYS_pidfd_getfd, syscall(SYS_pidfd_open, c, 0), 0, 0));
    T("ptrace_traceme", ptrace(PTRACE_TRACEME, 0, NULL, NULL));
    /* The sandbox's init (hull's reaper) is not dumpable: its memory is
     * closed to the program, unlike a sibling's /proc/PID/mem. */
    T("proc1_mem", open("/proc/1/mem", O_RDWR));
    kill(c, SIGKILL);
    waitpid(c, NULL, 0);
    return 0;
}

/* Signals to pids that are not in the sandbox. */
static int kill_(int argc, char **argv)
{
    for (int i = 2; i < argc; i++) {
        char name[64];
        snprintf(name, sizeof(name), "kill_%s", argv[i]);
        T(name, kill(atoi(argv[i]), SIGKILL));
    }
    /* Everything this process may signal: only the sandbox's own. */
    signal(SIGTERM, SIG_IGN);
    T("kill_all", kill(-1, SIGTERM));
    return 0;
}

/* Only 0, 1 and 2 are open, and none leads to a host directory. */
static int fds(void)
{
    for (int fd = 0; fd < 65536; fd++) {
        if (fcntl(fd, F_GETFD) < 0)
            continue;
        char p[64], target[4096] = "";
        snprintf(p, sizeof(p), "/proc/self/fd/%d", fd);
        ssize_t n = readlink(p, target, sizeof(target) - 1);
        if (n > 0)
            target[n] = '\0';
        struct stat st;
        fstat(fd, &st);
        printf("fd %d %s %s\n", fd, S_ISDIR(st.st_mode) ? "dir" : "other", target);
    }
    char cwd[4096];
    printf("cwd %s\n", getcwd(cwd, sizeof(cwd)) ? cwd : "?");
    /* The reaper (pid 1) is the hull binary: none of it may be reachable. */
    char t[4096];
    T("readlink_proc1_exe", readlink("/proc/1/exe", t, sizeof(t)));
    T("open_proc1_exe", open("/proc/1/exe", O_RDONLY));
    T("open_proc1_fd", open("/proc/1/fd", O_RDONLY | O_DIRECTORY));
    T("open_proc1_root", open("/proc/1/root/", O_RDONLY | O_DIRECTORY));
    T("open_proc1_cwd", open("/proc/1/cwd/", O_RDONLY | O_DIRECTORY));
    return 0;
}

/* CVE-2019-5736 and friends: overwrite the binaries that run us. */
static int exe(int argc, char **argv)
{
    T("open_self_exe_w", open("/proc/self/exe", O_WRONLY));
    T("open_self_exe_rw", open("/proc/self/exe", O_RDWR));
    T("open_proc1_exe_w", open("/proc/1/exe", O_WRONLY));
    T("open_proc1_exe_path", open("/proc/1/exe", O_PATH));
    for (int i = 2; i < argc; i++) {
        T("open_w", open(argv[i], O_WRONLY));
        T("open_trunc", open(argv[i], O_WRONLY | O_TRUNC));
        T("chmod", chmod(argv[i], 0777));
        T("unlink", unlink(argv[i]));
        char moved[4096];
        snprintf(moved, sizeof(moved), "%s.moved", argv[i]); /* same directory */
        T("rename", rename(argv[i], moved));
        T("truncate", truncate(argv[i], 0));
    }
    return 0;
}

/* Every read-only place: files created in each directory mount point,
 * each file mount opened for writing. */
static int rofs(int argc, char **argv)
{
    for (int i = 2; i < argc; i++) {
        struct stat st;
        if (stat(argv[i], &st) < 0) {
            printf("%s absent %s\n", argv[i], ename(errno));
            continue;
        }
        char p[4096];
        int fd;
        if (S_ISDIR(st.st_mode)) {
            snprintf(p, sizeof(p), "%s/hull-escape", argv[i]);
            fd = open(p, O_WRONLY | O_CREAT | O_EXCL, 0644);
        } else {
            fd = open(argv[i], O_WRONLY | O_APPEND);
        }
        printf("%s %d %s\n", argv[i], fd, fd < 0 ? ename(errno) : "0");
    }
    return 0;
}

/* Reads of what must not be there or must not be readable. */
static int secrets(int argc, char **argv)
{
    for (int i = 2; i < argc; i++) {
        int fd = open(argv[i], O_RDONLY);
        printf("%s %d %s\n", argv[i], fd, fd < 0 ? ename(errno) : "0");
    }
    return 0;
}

static int int80(void)
{
    long r;
    fflush(stdout);
    /* getpid through the 32-bit entry point: the filter kills on sight. */
    __asm__ volatile("int $0x80" : "=a"(r) : "a"(20L) : "memory");
    printf("int80 returned %ld\n", r);
    return 0;
}

static int x32(void)
{
    fflush(stdout);
    long r = syscall(39 | 0x40000000); /* getpid via the x32 ABI */
    printf("x32 returned %ld errno %d\n", r, errno);
    return 0;
}

__attribute__((noreturn)) static int forkbomb(void)
{
    for (;;)
        fork();
}

static void *idle(void *a)
{
    pause();
    return a;
}

static int threads(void)
{
    long n = 0;
    pthread_t t;
    while (pthread_create(&t, NULL, idle, NULL) == 0)
        n++;
    printf("threads %ld\n", n);
    fflush(stdout);
    pause();
    return 0;
}

/* Touch memory until something stops us. */
__attribute__((noreturn)) static int membomb(void)
{
    for (;;) {
        char *p = malloc(1 << 20);
        if (p == NULL) {
            printf("malloc failed\n");
            fflush(stdout);
            pause();
        }
        memset(p, 1, 1 << 20);
    }
}

/* Zombies that nobody waits for, orphans that sleep and ignore signals,
 * a daemon in its own session; then the main process leaves. */
static int storm(void)
{
    for (int i = 0; i < 10; i++)
        if (fork() == 0)
            _exit(0); /* a zombie: never waited for */
    for (int i = 0; i < 10; i++) {
        if (fork() == 0) {
            if (fork() == 0) { /* an orphan */
                signal(SIGTERM, SIG_IGN);
                signal(SIGHUP, SIG_IGN);
                signal(SIGINT, SIG_IGN);
                for (;;)
                    sleep(3600);
            }
            _exit(0);
        }
    }
    if (fork() == 0) {
        setsid();
        if (fork() == 0) { /* a daemon */
            for (;;)
                sleep(3600);
        }
        _exit(0);
    }
    usleep(200000);
    printf("storm ready\n");
    return 0;
}

/* Attacks take no arguments (run0) or the command line's (runN). */
static const struct {
    const char *name;
    int (*run0)(void);
    int (*runN)(int argc, char **argv);
} attacks[] = {
    {"syscalls", syscalls, NULL}, {"clock", clock_, NULL},      {"ptrace", ptrace_, NULL},
    {"kill", NULL, kill_},        {"fds", fds, NULL},           {"exe", NULL, exe},
    {"rofs", NULL, rofs},         {"secrets", NULL, secrets},   {"int80", int80, NULL},
    {"x32", x32, NULL},           {"forkbomb", forkbomb, NULL}, {"threads", threads, NULL},
    {"membomb", membomb, NULL},   {"storm", storm, NULL},       {"nsclone", nsclone, NULL},
};

int main(int argc, char **argv)
{
    for (size_t i = 0; argc > 1 && i < sizeof(attacks) / sizeof(attacks[0]); i++)
        if (strcmp(argv[1], attacks[i].name) == 0)
            return attacks[i].run0 ? attacks[i].run0() : attacks[i].runN(argc, argv);
    fprintf(stderr, "usage: hostile ATTACK [ARGS...]\n");
    return 2;
}
