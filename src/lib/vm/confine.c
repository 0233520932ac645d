/* Confining QEMU: the VMM is the one piece of hull that parses
 * guest-controlled data, so it gets as little of the host as it can run
 * with.
 *
 *   hull ── fork ──> A: setsid, unshare(pid)
 *                    └─ fork ──> B: pid 1 of the new pid namespace
 *                                   joins the VM's cgroup, unshares mount,
 *                                   ipc, net and uts, builds a root on
 *                                   tmpfs holding only /usr (read-only), the
 *                                   VM's kernel/initrd/rootfs (read-only),
 *                                   its private run directory and a few
 *                                   device nodes; pivot_root; drops to the
 *                                   VM's uid with no capabilities and
 *                                   no_new_privs; execs QEMU (which adds its
 *                                   own seccomp filter: -sandbox on).
 *
 * A exits at once for a long-lived VM (QEMU is reparented to init), or stays
 * as a tiny monitor for an ephemeral one so QEMU dies with its caller.
 * Errors in B travel back over a CLOEXEC pipe: EOF means exec succeeded.
 */
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <limits.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <sys/wait.h>
#include <unistd.h>

#include "util/error.h"
#include "util/fs.h"
#include "vm/confine.h"
#include "vm/vm.h"

static void fail(int fd, const char *what) __attribute__((noreturn));
static void fail(int fd, const char *what)
{
    int e = errno;
    dprintf(fd, "%d:%s", e, what);
    _exit(127);
}

static void jail_path(char *out, size_t len, const char *jail, const char *rel)
{
    snprintf(out, len, "%s/%s", jail, rel);
}

static void bind_ro(int ef, const char *src, const char *dst, bool file)
{
    if (file) {
        int fd = open(dst, O_WRONLY | O_CREAT | O_CLOEXEC, 0444);
        if (fd < 0)
            fail(ef, dst);
        close(fd);
    } else if (mkdir(dst, 0755) < 0 && errno != EEXIST)
        fail(ef, dst);
    if (mount(src, dst, NULL, MS_BIND | MS_REC, NULL) < 0)
        fail(ef, src);
    /* A bind mount ignores MS_RDONLY until remounted. */
    if (mount(NULL, dst, NULL, MS_REMOUNT | MS_BIND | MS_RDONLY | MS_NOSUID | MS_NODEV, NULL) < 0)
        fail(ef, dst);
}

/* B: runs as root in fresh namespaces, ends in execve or _exit. */
static void child(const struct vm_spawn *s, int ef) __attribute__((noreturn));
static void child(const struct vm_spawn *s, int ef)
{
    char p[PATH_MAX];
    /* Into the cgroup first, so everything QEMU allocates is charged. "0"
     * is "the writer" whatever its pid namespace. */
    if (s->cg && hull_cgroup_enter(s->cg, 0, NULL) < 0)
        fail(ef, "join the VM's cgroup");
    if (unshare(CLONE_NEWNS | CLONE_NEWIPC | CLONE_NEWNET | CLONE_NEWUTS) < 0)
        fail(ef, "unshare namespaces");
    /* Nothing below may propagate back to the host's mount table. */
    if (mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0)
        fail(ef, "make mounts private");
    if (mount("tmpfs", s->jail, "tmpfs", MS_NOSUID, "mode=0755,size=1m") < 0)
        fail(ef, "mount the jail tmpfs");
    static const char *const dirs[] = {"dev", "run", "vm", "proc", "etc", "tmp"};
    for (size_t i = 0; i < sizeof(dirs) / sizeof(dirs[0]); i++) {
        jail_path(p, sizeof(p), s->jail, dirs[i]);
        if (mkdir(p, 0755) < 0)
            fail(ef, p);
    }
    static const char *const links[][2] = {
        {"bin", "usr/bin"}, {"sbin", "usr/sbin"}, {"lib", "usr/lib"}, {"lib64", "usr/lib64"}};
    for (size_t i = 0; i < 4; i++) {
        jail_path(p, sizeof(p), s->jail, links[i][0]);
        if (symlink(links[i][1], p) < 0)
            fail(ef, p);
    }
    /* QEMU and its libraries, read-only; the loader's cache so it finds them. */
    jail_path(p, sizeof(p), s->jail, "usr");
    bind_ro(ef, "/usr", p, false);
    if (access("/etc/ld.so.cache", R_OK) == 0) {
        jail_path(p, sizeof(p), s->jail, "etc/ld.so.cache");
        bind_ro(ef, "/etc/ld.so.cache", p, true);
    }
    for (size_t i = 0; i < s->nfiles; i++) {
        char rel[128];
        snprintf(rel, sizeof(rel), "vm/%s", s->files[i].name);
        jail_path(p, sizeof(p), s->jail, rel);
        bind_ro(ef, s->files[i].src, p, true);
    }
    /* Device nodes made here rather than bind-mounted from the host's /dev:
     * only these exist, and /dev/kvm belongs to the VM's uid alone. */
    static const struct {
        const char *n;
        int maj, min;
        mode_t mode;
    } nodes[] = {
        {"dev/null", 1, 3, 0666},   {"dev/zero", 1, 5, 0666},   {"dev/urandom", 1, 9, 0666},
        {"dev/random", 1, 8, 0666}, {"dev/kvm", 10, 232, 0600},
    };
    for (size_t i = 0; i < sizeof(nodes) / sizeof(nodes[0]); i++) {
        if (nodes[i].maj == 10 && !s->kvm)
            continue;
        jail_path(p, sizeof(p), s->jail, nodes[i].n);
        if (mknod(p, S_IFCHR | nodes[i].mode, makedev(nodes[i].maj, nodes[i].min)) < 0 ||
            chmod(p, nodes[i].mode) < 0 || (nodes[i].maj == 10 && chown(p, s->uid, s->uid) < 0))
            fail(ef, p);
    }
    jail_path(p, sizeof(p), s->jail, "run");
    if (mount(s->rundir, p, NULL, MS_BIND, NULL) < 0 ||
        mount(NULL, p, NULL, MS_REMOUNT | MS_BIND | MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL) < 0)
        fail(ef, "bind the run directory");
    jail_path(p, sizeof(p), s->jail, "tmp");
    if (chown(p, s->uid, s->uid) < 0 || chmod(p, 0700) < 0)
        fail(ef, p);
    jail_path(p, sizeof(p), s->jail, "proc");
    if (mount("proc", p, "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL) < 0)
        fail(ef, "mount /proc");
    /* QEMU's stderr: the reason when it refuses to start or to migrate. */
    jail_path(p, sizeof(p), s->jail, "run/qemu.log");
    int log = open(p, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC | O_NOFOLLOW, 0600);
    if (log < 0 || fchown(log, s->uid, s->uid) < 0)
        fail(ef, "open qemu.log");
    /* It is kept across starts, and capped (below): a full one would say
     * nothing of this start. */
    struct stat lst;
    if (fstat(log, &lst) == 0 && lst.st_size > VM_LOG_MAX / 2 && ftruncate(log, 0) < 0)
        fail(ef, "truncate qemu.log");
    /* Read-only from here: the jail's own tmpfs holds nothing QEMU may change. */
    if (mount(NULL, s->jail, NULL, MS_REMOUNT | MS_RDONLY | MS_NOSUID, "mode=0755,size=1m") < 0)
        fail(ef, "remount the jail read-only");
    if (chdir(s->jail) < 0 || syscall(SYS_pivot_root, ".", ".") < 0 ||
        umount2(".", MNT_DETACH) < 0 || chdir("/") < 0)
        fail(ef, "pivot_root into the jail");
    /* fds: 0 and 1 /dev/null, 2 the log, 3 the incoming stream, the error
     * pipe (CLOEXEC) high up, out of the way of the dup2s, and nothing else
     * of hull's or of hull's caller. */
    ef = fcntl(ef, F_DUPFD_CLOEXEC, 100);
    /* The image's use mark (a shared flock): without close-on-exec, so
     * QEMU holds it as long as it runs; it opens nothing but a lock file. */
    int hold = s->hold_fd >= 0 ? fcntl(s->hold_fd, F_DUPFD, 101) : -1;
    if (s->hold_fd >= 0 && hold < 0)
        fail(ef, "keep the image's use mark");
    /* The TAP out of the way too, until it takes its fixed number. */
    int tap = s->tap_fd >= 0 ? fcntl(s->tap_fd, F_DUPFD_CLOEXEC, 102) : -1;
    if (s->tap_fd >= 0 && tap < 0)
        fail(ef, "keep the TAP");
    /* Guest RAM too (a memfd: sealed against writes when it is a
     * template's, see snapshot.c). */
    int ram = s->ram_fd >= 0 ? fcntl(s->ram_fd, F_DUPFD_CLOEXEC, 103) : -1;
    if (s->ram_fd >= 0 && ram < 0)
        fail(ef, "keep guest RAM");
    int null = open("/dev/null", O_RDWR);
    if (ef < 0 || null < 0 || dup2(null, 0) < 0 || dup2(null, 1) < 0 || dup2(log, 2) < 0)
        _exit(126);
    /* An incoming fd that already is 3 keeps its close-on-exec through
     * dup2 (a no-op then): clear it, or QEMU starts without its stream. */
    if (s->incoming_fd >= 0 && (dup2(s->incoming_fd, 3) < 0 || fcntl(3, F_SETFD, 0) < 0))
        fail(ef, "dup2 incoming fd");
    /* dup2 clears close-on-exec: QEMU gets the TAP (and nothing more of
     * the host's network: the device is on a bridge hull's rules guard). */
    if (tap >= 0 && dup2(tap, VM_TAP_FD) < 0)
        fail(ef, "dup2 the TAP");
    if (ram >= 0 && dup2(ram, VM_RAM_FD) < 0)
        fail(ef, "dup2 guest RAM");
    int keep[5], nkeep = 0;
    keep[nkeep++] = ef;
    if (hold >= 0)
        keep[nkeep++] = hold;
    if (s->incoming_fd >= 0)
        keep[nkeep++] = 3;
    if (tap >= 0)
        keep[nkeep++] = VM_TAP_FD;
    if (ram >= 0)
        keep[nkeep++] = VM_RAM_FD;
    hull_close_fds_except(3, keep, (size_t)nkeep);
    /* Drop to the VM's uid: setgroups first (needs CAP_SETGID), then gid,
     * then uid, which takes every capability with it. */
    gid_t g = s->uid;
    if (setgroups(1, &g) < 0 || setresgid(s->uid, s->uid, s->uid) < 0 ||
        setresuid(s->uid, s->uid, s->uid) < 0)
        fail(ef, "drop to the VM's uid");
    if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0)
        fail(ef, "no_new_privs");
    /* The guest prints to its console without end, and QEMU writes it to
     * run/console.log on the host's disk: QEMU's files stop at VM_LOG_MAX,
     * where its serial port drops what does not fit (SIGXFSZ, ignored,
     * does not kill it). The first part, the boot and what went wrong
     * first, is what stays. QEMU writes no other regular file: snapshots
     * and migrations go to pipes, guest RAM is hull's memfd, sized already. */
    struct rlimit fsize = {VM_LOG_MAX, VM_LOG_MAX};
    if (setrlimit(RLIMIT_FSIZE, &fsize) < 0)
        fail(ef, "limit QEMU's file size");
    signal(SIGXFSZ, SIG_IGN);
    /* After the uid change, which clears it: QEMU must not outlive the monitor. */
    if (s->attached)
        prctl(PR_SET_PDEATHSIG, SIGKILL);
    char *envp[] = {"PATH=/usr/bin", "HOME=/tmp", NULL};
    execve(s->binary, s->argv, envp);
    fail(ef, "exec QEMU");
}

/* What the monitor waits for: its caller's death (SIGTERM, by PDEATHSIG),
 * QEMU's exit, and the terminal signals. */
static void monitor_signals(sigset_t *set)
{
    sigemptyset(set);
    sigaddset(set, SIGTERM);
    sigaddset(set, SIGCHLD);
    sigaddset(set, SIGINT);
    sigaddset(set, SIGHUP);
}

/* A as the monitor of an ephemeral VM. own_pidns: A's own pid namespace
 * (for its children once QEMU is gone, see below). */
static void monitor(const struct vm_spawn *s, pid_t qemu, pid_t caller, int own_pidns)
    __attribute__((noreturn));
static void monitor(const struct vm_spawn *s, pid_t qemu, pid_t caller, int own_pidns)
{
    sigset_t set;
    monitor_signals(&set);
    for (;;) {
        int sig = 0;
        if (getppid() != caller)
            sig = SIGTERM; /* the caller died before PDEATHSIG was armed */
        else
            sigwait(&set, &sig);
        if (sig == SIGCHLD) {
            int st;
            if (waitpid(qemu, &st, WNOHANG) == qemu)
                _exit(0); /* QEMU ended; the caller cleans up */
            continue;
        }
        /* The caller is gone: nobody else will stop this VM. */
        kill(qemu, SIGKILL);
        while (waitpid(qemu, NULL, 0) < 0 && errno == EINTR)
            ;
        /* A's children would be born in QEMU's pid namespace, whose init
         * (QEMU) is dead: fork fails there (ENOMEM). The cleanup forks (the
         * network helper releases the VM's lease), so children go back to
         * A's own namespace, an ancestor, which setns allows. */
        if (own_pidns >= 0)
            setns(own_pidns, CLONE_NEWPID);
        if (s->cleanup)
            s->cleanup(s->cleanup_arg);
        _exit(0);
    }
}

int vm_spawn_vmm(const struct vm_spawn *s, pid_t *pid, pid_t *mon, hull_error *err)
{
    int ep[2], pp[2];
    if (pipe2(ep, O_CLOEXEC) < 0)
        return hull_error_errno(err, "pipe");
    if (pipe2(pp, O_CLOEXEC) < 0) {
        close(ep[0]);
        close(ep[1]);
        return hull_error_errno(err, "pipe");
    }
    pid_t caller = getpid();
    pid_t a = fork();
    if (a < 0) {
        close(ep[0]), close(ep[1]), close(pp[0]), close(pp[1]);
        return hull_error_errno(err, "fork");
    }
    if (a == 0) {
        close(ep[0]);
        close(pp[0]);
        sigset_t set;
        monitor_signals(&set);
        if (s->attached) {
            sigprocmask(SIG_BLOCK, &set, NULL);
            prctl(PR_SET_PDEATHSIG, SIGTERM);
        }
        /* Own session: a terminal's ^C aimed at hull must not reach QEMU. */
        setsid();
        /* Only the pid namespace here: it applies to A's next child. The
         * rest B unshares itself, so B's pivot_root cannot move A's root
         * (pivot_root re-roots every process of its mount namespace). */
        int own_pidns = s->attached ? open("/proc/self/ns/pid", O_RDONLY | O_CLOEXEC) : -1;
        if (unshare(CLONE_NEWPID) < 0)
            fail(ep[1], "unshare the pid namespace");
        pid_t b = fork();
        if (b < 0)
            fail(ep[1], "fork");
        if (b == 0) {
            close(pp[1]);
            sigset_t none;
            sigemptyset(&none);
            sigprocmask(SIG_SETMASK, &none, NULL);
            child(s, ep[1]);
        }
        close(ep[1]);
        if (write(pp[1], &b, sizeof(b)) != sizeof(b))
            _exit(1);
        close(pp[1]);
        if (!s->attached)
            _exit(0);
        monitor(s, b, caller, own_pidns);
    }
    close(ep[1]);
    close(pp[1]);
    pid_t b = 0;
    ssize_t n = read(pp[0], &b, sizeof(b));
    close(pp[0]);
    if (!s->attached) {
        while (waitpid(a, NULL, 0) < 0 && errno == EINTR)
            ;
    }
    char msg[512];
    ssize_t m = read(ep[0], msg, sizeof(msg) - 1);
    close(ep[0]);
    if (m > 0 || n != sizeof(b)) {
        msg[m > 0 ? m : 0] = 0;
        char *colon = strchr(msg, ':');
        if (s->attached) {
            kill(a, SIGKILL);
            waitpid(a, NULL, 0);
        }
        if (b > 0)
            waitpid(b, NULL, WNOHANG);
        return hull_error_set(err, m > 0 ? atoi(msg) : EIO, "start the VMM: %s",
                              m > 0 && colon ? colon + 1 : "the jail setup died");
    }
    *pid = b;
    *mon = s->attached ? a : 0;
    return 0;
}
