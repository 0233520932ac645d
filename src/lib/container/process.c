#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/personality.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "container/process.h"
#include "container/sync.h"
#include "linux/creds.h"
#include "linux/sched.h"
#include "util/error.h"
#include "util/fs.h"
#include "util/strv.h"

#ifndef CLOSE_RANGE_CLOEXEC
#define CLOSE_RANGE_CLOEXEC (1U << 2)
#endif

#define DEFAULT_PATH "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

static const char *env_get(char *const *env, const char *key)
{
    size_t kl = strlen(key);
    for (char *const *e = env; e && *e; e++)
        if (strncmp(*e, key, kl) == 0 && (*e)[kl] == '=')
            return *e + kl + 1;
    return NULL;
}

static bool is_executable(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 && S_ISREG(st.st_mode) && access(path, X_OK) == 0;
}

/* The program could not be started because of what it is (or is not): the
 * caller's mistake, told apart from the runtime's own failures by a code of
 * hull's (a shell's 127 and 126). Other errnos (ENOMEM, E2BIG) stay ours. */
static void mark_cmd_error(hull_error *err, int errnum)
{
    if (err == NULL || *err == NULL)
        return;
    if (errnum == ENOENT || errnum == ENOTDIR)
        (*err)->code = HULL_ENOCMD;
    else if (errnum == EACCES || errnum == ENOEXEC || errnum == EISDIR || errnum == ELOOP ||
             errnum == ETXTBSY || errnum == ELIBBAD)
        (*err)->code = HULL_ECMDEXEC;
}

void hull_proc_mark_cwd_error(hull_error *err)
{
    if (err == NULL || *err == NULL)
        return;
    switch ((*err)->code) {
    case EROFS:
    case ENOENT:
    case ENOTDIR:
    case EACCES:
    case ELOOP:
    case EXDEV:
    case ENAMETOOLONG:
        (*err)->code = HULL_ECWD;
        break;
    default:
        break;
    }
}

char *hull_find_executable(const char *file, char *const *env, hull_error *err)
{
    if (strchr(file, '/') != NULL) {
        if (!is_executable(file)) {
            struct stat st;
            if (stat(file, &st) < 0) {
                int e = errno;
                hull_error_errno(err, "exec: \"%s\"", file);
                mark_cmd_error(err, e);
            } else {
                hull_error_set(err, HULL_ECMDEXEC, "exec: \"%s\": not an executable file", file);
            }
            return NULL;
        }
        return strdup(file);
    }
    const char *path = env_get(env, "PATH");
    if (path == NULL)
        path = DEFAULT_PATH;
    const char *p = path;
    for (;;) {
        const char *end = strchrnul(p, ':');
        char cand[PATH_MAX];
        int n = end == p ? snprintf(cand, sizeof(cand), "./%s", file)
                         : snprintf(cand, sizeof(cand), "%.*s/%s", (int)(end - p), p, file);
        if (n > 0 && (size_t)n < sizeof(cand) && is_executable(cand))
            return strdup(cand);
        if (*end == '\0')
            break;
        p = end + 1;
    }
    hull_error_set(err, HULL_ENOCMD, "exec: \"%s\": executable file not found in $PATH", file);
    return NULL;
}

/* HOME from the container's /etc/passwd when the spec's env has none. */
static char **env_with_home(char **env, uint32_t uid)
{
    size_t n = hull_strv_len(env);
    char **out = calloc(n + 2, sizeof(char *));
    if (out == NULL)
        return NULL;
    for (size_t i = 0; i < n; i++)
        out[i] = env[i];
    if (env_get(env, "HOME") != NULL)
        return out;
    const char *home = "/";
    char line[1024];
    static char found[PATH_MAX];
    cleanup_file FILE *f = fopen("/etc/passwd", "re");
    while (f && fgets(line, sizeof(line), f)) {
        /* name:pw:uid:gid:gecos:dir:shell */
        char *fields[7] = {0};
        char *s = line;
        for (int i = 0; i < 7 && s; i++) {
            fields[i] = s;
            s = strchr(s, ':');
            if (s)
                *s++ = '\0';
        }
        if (fields[2] && fields[5] && strtoul(fields[2], NULL, 10) == uid) {
            snprintf(found, sizeof(found), "%s", fields[5]);
            home = found;
            break;
        }
    }
    static char entry[PATH_MAX + 8];
    snprintf(entry, sizeof(entry), "HOME=%s", home);
    out[n] = entry;
    return out;
}

/* The kernel's struct sigaction for rt_sigaction (no restorer needed for
 * SIG_DFL, which never returns to user space). */
struct kernel_sigaction {
    void (*handler)(int);
    unsigned long flags;
    void (*restorer)(void);
    uint64_t mask;
};

/* Signals to set back to SIG_DFL before execve: all of them unless
 * hull_proc_note_ignored_signals learnt which are ignored. */
static uint64_t ignored_signals = ~0ull;

void hull_proc_note_ignored_signals(void)
{
    char buf[4096];
    int fd = open("/proc/self/status", O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return;
    ssize_t n = read(fd, buf, sizeof(buf) - 1);
    close(fd);
    if (n <= 0)
        return;
    buf[n] = '\0';
    const char *p = strstr(buf, "\nSigIgn:");
    char *end = NULL;
    unsigned long long mask = p ? strtoull(p + 8, &end, 16) : 0;
    if (p && end != p + 8 && *end == '\n')
        ignored_signals = mask;
}

static void reset_signals(void)
{
    /* Raw syscalls: glibc's wrappers refuse to touch signals 32 and 33 (its
     * own thread cancellation and setxid), and a workload must not inherit
     * them blocked or ignored from whoever started hull. */
    uint64_t none = 0;
    syscall(SYS_rt_sigprocmask, SIG_SETMASK, &none, NULL, sizeof(none));
    /* Ignored signals survive execve (caught ones become SIG_DFL there);
     * the container must start clean. */
    struct kernel_sigaction dfl = {.handler = SIG_DFL};
    for (int s = 1; s <= 64; s++)
        if (s != SIGKILL && s != SIGSTOP && (ignored_signals & (1ull << (s - 1))))
            syscall(SYS_rt_sigaction, s, &dfl, NULL, sizeof(uint64_t));
}

int hull_proc_resolve(struct hull_proc_plan *p, hull_error *err)
{
    /* Resolved before the process is started, so a missing program fails
     * `create` rather than leaving `start` to do nothing. */
    p->path = hull_find_executable(p->proc->args[0], p->proc->env, err);
    if (p->path == NULL)
        return -1;
    p->envp = env_with_home(p->proc->env, p->proc->user.uid);
    if (p->envp == NULL)
        return hull_error_set(err, ENOMEM, "out of memory");
    return 0;
}

bool hull_lsm_apparmor_enabled(void)
{
    char *v = NULL;
    hull_error e = NULL;
    bool on =
        hull_read_file("/sys/module/apparmor/parameters/enabled", &v, NULL, &e) == 0 && v[0] == 'Y';
    hull_error_free(&e); /* no such file: AppArmor is not in this kernel */
    free(v);
    return on;
}

bool hull_lsm_selinux_enabled(void)
{
    struct stat st;
    return stat("/sys/fs/selinux/enforce", &st) == 0;
}

int hull_proc_check_lsm(const struct hull_process *proc, const char *path, hull_error *err)
{
    if (proc->apparmor_profile && proc->apparmor_profile[0] && !hull_lsm_apparmor_enabled())
        return hull_error_set(err, ENOTSUP,
                              "%s.apparmorProfile: AppArmor is not enabled on this host", path);
    if (proc->selinux_label && proc->selinux_label[0] && !hull_lsm_selinux_enabled())
        return hull_error_set(err, ENOTSUP, "%s.selinuxLabel: SELinux is not enabled on this host",
                              path);
    return 0;
}

/* The label the kernel puts on the program at execve. */
static int set_exec_label(const struct hull_process *proc, hull_error *err)
{
    if (proc->apparmor_profile && proc->apparmor_profile[0]) {
        char buf[4096];
        int n = snprintf(buf, sizeof(buf), "exec %s", proc->apparmor_profile);
        const char *path = access("/proc/self/attr/apparmor/exec", F_OK) == 0
                               ? "/proc/self/attr/apparmor/exec"
                               : "/proc/self/attr/exec";
        if (hull_write_proc_file(path, buf, (size_t)n, err) < 0)
            return hull_error_prefix(err, "process.apparmorProfile: %s", proc->apparmor_profile);
    }
    if (proc->selinux_label && proc->selinux_label[0]) {
        if (hull_write_proc_file("/proc/self/attr/exec", proc->selinux_label,
                                 strlen(proc->selinux_label), err) < 0)
            return hull_error_prefix(err, "process.selinuxLabel: %s", proc->selinux_label);
    }
    return 0;
}

/* The process's stdio owned by its user, as runc and crun leave it: a
 * program that is not root reopens /dev/stdout, /dev/stderr or its tty
 * through /proc/self/fd, which checks the owner (a pipe is 0600). Only
 * pipes and sockets (anonymous, or an engine's fifos) and the pty made for
 * process.terminal: never a regular file or a device the caller passed (a
 * host terminal, /dev/null). An owner we may not change (not mapped in a
 * user namespace, a read-only fifo) stays, as runc and crun leave it. */
static int stdio_to_user(const struct hull_process *proc, hull_error *err)
{
    for (int fd = 0; fd < 3; fd++) {
        struct stat st;
        if (fstat(fd, &st) < 0 || st.st_uid == proc->user.uid)
            continue;
        bool pty = proc->terminal && S_ISCHR(st.st_mode) && isatty(fd);
        if (!(S_ISFIFO(st.st_mode) || S_ISSOCK(st.st_mode) || pty))
            continue;
        /* Safe: only the owner of the process's own stdio changes, to the
         * user that is about to hold it anyway; the group stays. */
        if (fchown(fd, proc->user.uid, (gid_t)-1) < 0 && errno != EPERM && errno != EINVAL &&
            errno != EROFS)
            return hull_error_errno(err, "give fd %d to process.user.uid %u", fd, proc->user.uid);
    }
    return 0;
}

int hull_proc_finish(struct hull_proc_plan *p, hull_error *err)
{
    const struct hull_process *proc = p->proc;
    if (p->lx && hull_personality_apply(p->lx, err) < 0)
        return -1;
    if (p->new_session && setsid() < 0 && errno != EPERM)
        return hull_error_errno(err, "setsid");
    /* A terminal the caller made for this process alone (hulld's pty). */
    if (p->ctty && ioctl(0, TIOCSCTTY, 0) < 0)
        return hull_error_errno(err, "set controlling terminal");
    /* Before the capability drop: a real-time policy needs CAP_SYS_NICE. */
    if (hull_sched_apply(proc, err) < 0)
        return -1;
    /* Written while still root: the attr files belong to us until the switch. */
    if (set_exec_label(proc, err) < 0)
        return -1;
    /* After the last step that opens a file, before any filter that might
     * deny setrlimit: process.rlimits exactly (the runtime only raised). */
    if (hull_rlimits_set_own(proc, err) < 0)
        return -1;
    /* Without no_new_privs, installing a filter needs CAP_SYS_ADMIN: load it
     * while we still have it (the profile must then allow what follows). */
    if (p->seccomp && !proc->no_new_privileges && hull_seccomp_load(p->seccomp, NULL, err) < 0)
        return -1;
    if (stdio_to_user(proc, err) < 0)
        return -1;
    if (proc->has_caps && hull_caps_drop_bounding(&proc->caps, err) < 0)
        return -1;
    if (hull_creds_apply(proc, err) < 0)
        return -1;
    /* A uid change resets dumpability to fs.suid_dumpable: until execve,
     * /proc/<pid>/mem and exe must stay closed to the container. */
    if (prctl(PR_SET_DUMPABLE, 0) < 0)
        return hull_error_errno(err, "prctl(PR_SET_DUMPABLE)");
    /* A uid change clears the parent-death signal; arm it again. */
    if (p->die_with_parent && prctl(PR_SET_PDEATHSIG, SIGKILL) < 0)
        return hull_error_errno(err, "prctl(PR_SET_PDEATHSIG)");
    if (proc->no_new_privileges && prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0)
        return hull_error_errno(err, "process.noNewPrivileges");
    /* Last, so the filter constrains only the container's own program. */
    if (p->seccomp && proc->no_new_privileges && hull_seccomp_load(p->seccomp, NULL, err) < 0)
        return -1;
    return 0;
}

void hull_proc_exec(struct hull_proc_plan *p, int report_fd)
{
    hull_error err = NULL;
    /* Only 0-2 and the preserved fds cross into the container; everything
     * else (sync socket, fifo, log, anything a library caller had open)
     * closes on exec: no host fd leaks in (CVE-2024-21626). */
    int first = 3 + p->preserve_fds;
    if (syscall(SYS_close_range, first, ~0U, CLOSE_RANGE_CLOEXEC) < 0) {
        for (int fd = first; fd < 65536; fd++)
            fcntl(fd, F_SETFD, FD_CLOEXEC);
    }
    for (int fd = 3; fd < first; fd++)
        fcntl(fd, F_SETFD, 0);
    reset_signals();

    execve(p->path, p->proc->args, p->envp);
    int e = errno;
    hull_error_errno(&err, "exec %s", p->path);
    mark_cmd_error(&err, e); /* ENOENT here: its interpreter or loader is missing */
    hull_proc_report(report_fd, p->error_fd, err);
    _exit(127);
}

void hull_proc_report(int report_fd, int error_fd, hull_error err)
{
    /* In a foreground run the runtime still listens; after `create` returned
     * nobody does: `start` reads exec.error, people read the stderr. */
    if (report_fd >= 0 && hull_sync_send_error(report_fd, err) == 0)
        return;
    const char *msg = hull_error_msg(err);
    if (error_fd >= 0 && write(error_fd, msg, strlen(msg)) < 0) {
        /* the container's stderr below still says it */
    }
    dprintf(2, "hull: %s\n", msg);
}
