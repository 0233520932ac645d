/* exec: run one workload in the guest, stream its output, report its end.
 *
 * The VM is the isolation boundary; this is defence in depth, the same layers
 * as hull's container level: fresh pid/mount/ipc/uts/net namespaces, a
 * pivot_root into the workload root, every capability dropped,
 * no_new_privs, a seccomp filter, rlimits, and a cgroup (v2, inside the
 * guest) that both limits the workload and measures it: cpu.stat for CPU
 * time, memory.peak for memory, memory.events and pids.events for the
 * verdict. The workload is PID 1 of its namespace, so when it exits
 * everything it started dies with it (a detached exec keeps running until
 * it exits by itself).
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/capability.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "agent.h"
#include "agent_seccomp_bpf.h" /* generated: build/gen/, by src/guest/gen/seccomp_gen.c */

struct limits {
    int64_t cpu_time_ms, wall_time_ms, memory_bytes, pids, output_bytes, open_files;
    int64_t cpu_milli; /* CPU bandwidth, thousandths of a CPU */
};

struct child_args {
    char **argv, **envp;
    const char *cwd;
    const char *cgroup;
    int in, out, err; /* become 0, 1, 2 */
    int errpipe;      /* CLOEXEC; written only on failure */
    int statpipe;     /* CLOEXEC; the init writes the workload's wait status */
    bool pty;         /* in is a terminal's slave: the workload's controlling tty */
    struct limits lim;
};

/* The workload's filter is the container level's built-in one, from the
 * same tables (src/lib/linux/seccomp_rules.c), compiled by libseccomp when
 * the agent is built (src/guest/gen/seccomp_gen.c says what it allows and
 * why it is made there); each workload only loads the program. */
static struct sock_fprog seccomp_prog = {
    .len = sizeof(agent_seccomp_filter) / sizeof(agent_seccomp_filter[0]),
    .filter = (struct sock_filter *)agent_seccomp_filter,
};

/* The workload could not start: "errno:step:what: why" goes to the error
 * pipe (send_start_error), the step one of these: */
#define START_FAILED_EXEC  'x' /* its exec: the command's fault */
#define START_FAILED_CWD   'w' /* its working directory */
#define START_FAILED_SETUP 's' /* the sandbox's setup before */
static void child_fail_at(int fd, const char *what, char step) __attribute__((noreturn));
static void child_fail_at(int fd, const char *what, char step)
{
    int e = errno;
    dprintf(fd, "%d:%c:%s: %s", e, step, what, strerror(e));
    _exit(127);
}

static void child_fail(int fd, const char *what) __attribute__((noreturn));
static void child_fail(int fd, const char *what)
{
    child_fail_at(fd, what, START_FAILED_SETUP);
}

static void drop_capabilities(int errfd)
{
    for (int cap = 0; cap <= 63; cap++)
        if (prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) < 0 && errno != EINVAL)
            child_fail(errfd, "drop capability bounding set");
    prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0);
    struct __user_cap_header_struct h = {.version = _LINUX_CAPABILITY_VERSION_3};
    struct __user_cap_data_struct d[2] = {{0}};
    if (syscall(SYS_capset, &h, d) < 0)
        child_fail(errfd, "drop capabilities");
}

static void set_rlimit(int errfd, int res, int64_t v, const char *what)
{
    if (v <= 0)
        return;
    struct rlimit rl = {.rlim_cur = (rlim_t)v, .rlim_max = (rlim_t)v};
    if (setrlimit(res, &rl) < 0)
        child_fail(errfd, what);
}

/* execvpe with PATH taken from the workload's environment, not the agent's. */
static void exec_in_path(struct child_args *a)
{
    const char *file = a->argv[0];
    if (strchr(file, '/')) {
        execve(file, a->argv, a->envp);
        child_fail_at(a->errpipe, file, START_FAILED_EXEC);
    }
    const char *path = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
    for (char **e = a->envp; *e; e++)
        if (strncmp(*e, "PATH=", 5) == 0)
            path = *e + 5;
    int first_err = ENOENT;
    for (const char *p = path; *p;) {
        const char *colon = strchrnul(p, ':');
        char full[4096];
        snprintf(full, sizeof(full), "%.*s/%s", (int)(colon - p), p, file);
        execve(full, a->argv, a->envp);
        if (errno != ENOENT && errno != ENOTDIR)
            first_err = errno;
        p = *colon ? colon + 1 : colon;
    }
    errno = first_err;
    child_fail_at(a->errpipe, file, START_FAILED_EXEC);
}

static pid_t init_workload;
static int ef_global = -1;

static void init_forward(int sig)
{
    kill(init_workload, sig);
}

/* The namespace's init: forward signals, reap everything, and when the
 * workload ends report its wait status and exit (which kills the rest). */
static void init_main(pid_t w, int statfd) __attribute__((noreturn));
static void init_main(pid_t w, int statfd)
{
    init_workload = w;
    (void)ef_global;
    /* Keep nothing of the agent's: a pipe end held here (the host's stdin
     * to the workload, above all) would keep the other side from its EOF. */
    int null = open("/dev/null", O_RDWR | O_CLOEXEC);
    for (int fd = 0; fd < 3; fd++)
        dup2(null, fd);
    if (dup2(statfd, 3) == 3)
        statfd = 3;
    syscall(SYS_close_range, 4, ~0U, 0);
    static const int fwd[] = {SIGTERM, SIGINT,  SIGHUP,  SIGQUIT,  SIGUSR1,
                              SIGUSR2, SIGCONT, SIGTSTP, SIGWINCH, SIGALRM};
    for (size_t i = 0; i < sizeof(fwd) / sizeof(fwd[0]); i++)
        signal(fwd[i], init_forward);
    drop_capabilities(statfd);
    for (;;) {
        int st;
        pid_t p = waitpid(-1, &st, 0);
        if (p == w) {
            (void)!write(statfd, &st, sizeof(st));
            _exit(0);
        }
        if (p < 0 && errno == ECHILD)
            _exit(0);
    }
}

static int child_main(void *arg)
{
    struct child_args *a = arg;
    int ef = a->errpipe;
    ef_global = ef;
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);
    signal(SIGPIPE, SIG_DFL);
    char procs[256];
    snprintf(procs, sizeof(procs), "%s/cgroup.procs", a->cgroup);
    /* Into the cgroup before anything else runs, so every byte and cycle
     * the workload uses is accounted. */
    if (write_text(procs, "0") < 0)
        child_fail(ef, "join cgroup");
    if (dup2(a->in, 0) < 0 || dup2(a->out, 1) < 0 || dup2(a->err, 2) < 0)
        child_fail(ef, "dup2");
    /* Private propagation first: the mounts below must not leak into the
     * agent's namespace (they are per-workload: its own /proc). */
    if (mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0)
        child_fail(ef, "make / private");
    if (mount("proc", AGENT_ROOT "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL) < 0)
        child_fail(ef, "mount /proc");
    if (mount(AGENT_DEV, AGENT_ROOT "/dev", NULL, MS_BIND | MS_REC, NULL) < 0)
        child_fail(ef, "mount /dev");
    if (mount("tmpfs", AGENT_ROOT "/dev/shm", "tmpfs", MS_NOSUID | MS_NODEV, "mode=1777,size=16m") <
        0)
        child_fail(ef, "mount /dev/shm");
    /* pivot_root(2) refuses the initramfs the agent runs from, so move the
     * workload root over "/" and chroot into it, as switch_root does; with
     * every capability gone and chroot denied by seccomp, the workload
     * cannot climb back out. */
    if (chdir(AGENT_ROOT) < 0 || mount(".", "/", NULL, MS_MOVE, NULL) < 0 || chroot(".") < 0 ||
        chdir("/") < 0)
        child_fail(ef, "enter the workload root");
    if (chdir(a->cwd) < 0) {
        char what[300];
        snprintf(what, sizeof(what), "workdir %.280s", a->cwd);
        child_fail_at(ef, what, START_FAILED_CWD);
    }
    sethostname("hull", 4);
    /* PID 1 of the namespace is a small init, not the workload: the kernel
     * shields a namespace's init from its own signals, so a workload that
     * was PID 1 could not "kill $$" itself, and orphans need a reaper.
     * The init has no seccomp filter: non-dumpable before the workload
     * exists, so the workload (the same uid) cannot open /proc/1/mem and
     * run code in it unfiltered. The workload's execve makes the workload
     * itself dumpable again. */
    prctl(PR_SET_DUMPABLE, 0);
    /* The agent is exempt from the guest's OOM killer (-1000, inherited):
     * a workload must not be, or a guest out of memory has nothing to kill
     * and panics (raising the value needs no privilege). */
    write_text("/proc/self/oom_score_adj", "0");
    /* After the last file this process opens (above): an RLIMIT_NOFILE of 4
     * must bind the workload, not make that write fail unseen. */
    set_rlimit(ef, RLIMIT_NOFILE, a->lim.open_files, "RLIMIT_NOFILE");
    /* A backstop only: the agent watches the cgroup's CPU time, which also
     * counts children; RLIMIT_CPU is per process. */
    if (a->lim.cpu_time_ms > 0)
        set_rlimit(ef, RLIMIT_CPU, (a->lim.cpu_time_ms + 999) / 1000 + 1, "RLIMIT_CPU");
    set_rlimit(ef, RLIMIT_CORE, 0, "RLIMIT_CORE");
    struct rlimit core0 = {0, 0};
    setrlimit(RLIMIT_CORE, &core0);
    pid_t w = fork();
    if (w < 0)
        child_fail(ef, "fork");
    if (w == 0) {
        /* A terminal: a session of its own with the slave as its
         * controlling tty, so ^C, job control and SIGWINCH reach it. */
        if (a->pty && (setsid() < 0 || ioctl(0, TIOCSCTTY, 0) < 0))
            child_fail(ef, "controlling terminal");
        drop_capabilities(ef);
        if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0)
            child_fail(ef, "no_new_privs");
        /* Last: the filter forbids mount and pivot_root used above. */
        if (prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &seccomp_prog) < 0)
            child_fail(ef, "seccomp");
        exec_in_path(a);
    }
    init_main(w, a->statpipe);
    return 127;
}
/* ---- the request ---- */

static int parse_strv(json_object *req, const char *key, char ***out)
{
    json_object *a;
    *out = NULL;
    if (!json_object_object_get_ex(req, key, &a) || !json_object_is_type(a, json_type_array))
        return 0;
    size_t n = json_object_array_length(a);
    char **v = calloc(n + 1, sizeof(char *));
    for (size_t i = 0; i < n; i++) {
        json_object *s = json_object_array_get_idx(a, i);
        if (!json_object_is_type(s, json_type_string)) {
            free(v);
            return -1;
        }
        v[i] = (char *)json_object_get_string(s);
    }
    *out = v;
    return (int)n;
}

static int64_t get_i64(json_object *o, const char *key)
{
    json_object *v;
    return o && json_object_object_get_ex(o, key, &v) ? json_object_get_int64(v) : 0;
}

static bool get_bool(json_object *o, const char *key)
{
    json_object *v;
    return o && json_object_object_get_ex(o, key, &v) && json_object_get_boolean(v);
}

enum kill_reason {
    KILLED_NONE,
    KILLED_WALL,
    KILLED_CPU,
    KILLED_OUTPUT,
    KILLED_HOST,
    KILLED_MEMORY
};

struct run {
    struct conn *c;
    int pty; /* the terminal's master (also in and out), -1 without one */
    pid_t pid;
    int status;
    bool exited;
    int in, out, err; /* our ends; -1 when closed */
    uint8_t *inbuf;
    size_t inlen;
    bool in_eof;
    int64_t sent[2];
    bool truncated[2];
    enum kill_reason killed;
};

static void close_fd(int *fd)
{
    if (*fd >= 0)
        close(*fd);
    *fd = -1;
}

static void pump_output(struct run *r, int *fd, int idx, const struct limits *lim, const char *cg)
{
    uint8_t buf[HULL_AGENT_CHUNK];
    ssize_t n = read(*fd, buf, sizeof(buf));
    if (n < 0 && (errno == EAGAIN || errno == EINTR))
        return;
    if (n <= 0) {
        close_fd(fd);
        return;
    }
    size_t send = (size_t)n;
    if (lim->output_bytes > 0 && r->sent[idx] + n > lim->output_bytes) {
        send = (size_t)(lim->output_bytes - r->sent[idx]);
        r->truncated[idx] = true;
        if (r->killed == KILLED_NONE)
            r->killed = KILLED_OUTPUT;
        cg_kill(cg);
    }
    if (send) {
        if (conn_send(r->c, idx ? HULL_FRAME_STDERR : HULL_FRAME_STDOUT, buf, send) < 0 &&
            r->killed == KILLED_NONE) {
            r->killed = KILLED_HOST;
            cg_kill(cg);
        }
    }
    r->sent[idx] += (int64_t)send;
}

static void take_frame(struct run *r, struct frame *f, const char *cg)
{
    if (f->type == HULL_FRAME_STDIN) {
        if (r->in < 0)
            return;
        if (f->len == 0) {
            r->in_eof = true;
            return;
        }
        uint8_t *nb = realloc(r->inbuf, r->inlen + f->len);
        if (!nb)
            return;
        memcpy(nb + r->inlen, f->data, f->len);
        r->inbuf = nb;
        r->inlen += f->len;
    } else if (f->type == HULL_FRAME_REQ) {
        /* {"op":"signal","signal":N} while the workload runs. */
        json_tokener *tok = json_tokener_new();
        json_object *o = json_tokener_parse_ex(tok, (const char *)f->data, (int)f->len);
        json_tokener_free(tok);
        /* {"op":"resize","rows":R,"cols":C}: the kernel tells the
         * terminal's foreground group (SIGWINCH). */
        json_object *opv;
        const char *op =
            o && json_object_object_get_ex(o, "op", &opv) ? json_object_get_string(opv) : "";
        int64_t rows = get_i64(o, "rows"), cols = get_i64(o, "cols");
        if (strcmp(op, "resize") == 0 && r->pty >= 0 && rows > 0 && cols > 0 && rows < 65536 &&
            cols < 65536) {
            struct winsize ws = {.ws_row = (unsigned short)rows, .ws_col = (unsigned short)cols};
            ioctl(r->pty, TIOCSWINSZ, &ws);
        }
        int sig = (int)get_i64(o, "signal");
        if (strcmp(op, "resize") != 0 && sig > 0 && sig < 65)
            kill(r->pid, sig);
        json_object_put(o);
    }
    (void)cg;
}

static void feed_stdin(struct run *r)
{
    if (r->in < 0)
        return;
    if (r->inlen) {
        ssize_t n = write(r->in, r->inbuf, r->inlen);
        if (n > 0) {
            memmove(r->inbuf, r->inbuf + n, r->inlen - (size_t)n);
            r->inlen -= (size_t)n;
        } else if (n < 0 && errno != EAGAIN && errno != EINTR) {
            r->inlen = 0; /* EPIPE: the workload closed stdin */
            close_fd(&r->in);
        }
    }
    if (r->in_eof && !r->inlen)
        close_fd(&r->in);
}

static const char *verdict_of(const struct run *r, const struct limits *lim, int64_t cpu_us,
                              int64_t oom_kills, int64_t pids_max)
{
    bool sig = WIFSIGNALED(r->status);
    int code = WIFEXITED(r->status) ? WEXITSTATUS(r->status) : -1;
    if (r->killed == KILLED_WALL)
        return "wall_time_limit";
    /* From the accounting alone: the program can raise a SIGXCPU itself,
     * and RLIMIT_CPU's comes only with its usage past the limit. */
    if (r->killed == KILLED_CPU ||
        (lim->cpu_time_ms > 0 && cpu_us / 1000 >= lim->cpu_time_ms && (sig || code != 0)))
        return "cpu_time_limit";
    if (oom_kills > 0 || r->killed == KILLED_MEMORY)
        return "memory_limit";
    if (r->killed == KILLED_OUTPUT)
        return "output_limit";
    if (pids_max > 0 && code != 0)
        return "pids_limit";
    if (sig)
        return "signaled";
    return code == 0 ? "ok" : "exit_nonzero";
}

static void send_exit(struct run *r, const struct limits *lim, const char *cg, uint64_t t0)
{
    int64_t cpu_us = cg_read_key(cg, "cpu.stat", "usage_usec");
    int64_t peak = cg_read_key(cg, "memory.peak", NULL);
    int64_t ooms = cg_read_key(cg, "memory.events", "oom_kill");
    int64_t pmax = cg_read_key(cg, "pids.events", "max");
    json_object *o = json_object_new_object();
    json_object_object_add(o, "verdict",
                           json_object_new_string(verdict_of(r, lim, cpu_us, ooms, pmax)));
    json_object_object_add(o, "exit_code",
                           json_object_new_int(WIFEXITED(r->status) ? WEXITSTATUS(r->status) : -1));
    json_object_object_add(o, "signal",
                           json_object_new_int(WIFSIGNALED(r->status) ? WTERMSIG(r->status) : 0));
    json_object_object_add(o, "cpu_time_ms", json_object_new_int64(cpu_us > 0 ? cpu_us / 1000 : 0));
    json_object_object_add(o, "wall_time_ms", json_object_new_int64((int64_t)(now_ms() - t0)));
    json_object_object_add(o, "max_memory_kb", json_object_new_int64(peak > 0 ? peak / 1024 : 0));
    json_object_object_add(o, "oom_kills", json_object_new_int64(ooms > 0 ? ooms : 0));
    json_object_object_add(o, "pids_limit_hits", json_object_new_int64(pmax > 0 ? pmax : 0));
    json_object_object_add(o, "stdout_truncated", json_object_new_boolean(r->truncated[0]));
    json_object_object_add(o, "stderr_truncated", json_object_new_boolean(r->truncated[1]));
    conn_send_json(r->c, HULL_FRAME_EXIT, o);
    json_object_put(o);
}

/* At its memory limit a workload can thrash instead of being OOM-killed:
 * the kernel keeps reclaiming its file pages (its own program text, read
 * back from the rootfs) and counts that as progress. Like oomd, judge by
 * pressure: more than half of a one-second window fully stalled on memory
 * means the workload cannot run within its limit. */
#define THRASH_WINDOW_MS 1000
#define THRASH_STALL_US  500000

static int64_t memory_full_stall_us(const char *cg)
{
    char path[256], buf[512];
    snprintf(path, sizeof(path), "%s/memory.pressure", cg);
    if (read_text(path, buf, sizeof(buf)) < 0)
        return -1;
    char *full = strstr(buf, "full ");
    char *total = full ? strstr(full, "total=") : NULL;
    return total ? strtoll(total + 6, NULL, 10) : -1;
}

static void run_loop(struct run *r, const struct limits *lim, const char *cg, uint64_t t0)
{
    uint64_t wall_end = lim->wall_time_ms > 0 ? t0 + (uint64_t)lim->wall_time_ms : 0;
    uint64_t window_start = t0;
    int64_t stall_start = lim->memory_bytes > 0 ? memory_full_stall_us(cg) : -1;
    while (!r->exited || r->out >= 0 || r->err >= 0) {
        feed_stdin(r);
        struct pollfd p[5];
        int n = 0;
        int ip = -1, io = -1, ie = -1, iin = -1;
        p[n++] = (struct pollfd){.fd = agent_sigfd, .events = POLLIN};
        if (r->c->connected && r->inlen < (1u << 20)) {
            ip = n;
            p[n++] = (struct pollfd){.fd = r->c->fd, .events = POLLIN};
        }
        if (r->out >= 0) {
            io = n;
            p[n++] = (struct pollfd){.fd = r->out, .events = POLLIN};
        }
        if (r->err >= 0) {
            ie = n;
            p[n++] = (struct pollfd){.fd = r->err, .events = POLLIN};
        }
        if (r->in >= 0 && r->inlen) {
            iin = n;
            p[n++] = (struct pollfd){.fd = r->in, .events = POLLOUT};
        }
        int timeout = -1;
        if (wall_end && !r->exited)
            timeout = now_ms() >= wall_end ? 0 : (int)(wall_end - now_ms());
        if (lim->cpu_time_ms > 0 && !r->exited && (timeout < 0 || timeout > 20))
            timeout = 20;
        if (stall_start >= 0 && !r->exited && (timeout < 0 || timeout > 100))
            timeout = 100;
        poll(p, (nfds_t)n, timeout);
        (void)iin;
        agent_drain_signals();
        if (!r->exited) {
            int st;
            if (waitpid(r->pid, &st, WNOHANG) == r->pid) {
                r->exited = true;
                r->status = st;
            }
        }
        agent_reap_detached();
        if (ip >= 0 && (p[ip].revents & (POLLIN | POLLHUP))) {
            if (conn_fill(r->c) < 0 && r->killed == KILLED_NONE) {
                /* The host is gone: nobody will read the result. */
                r->killed = KILLED_HOST;
                cg_kill(cg);
            }
            struct frame f;
            while (conn_frame(r->c, &f))
                take_frame(r, &f, cg);
        }
        if (io >= 0 && p[io].revents)
            pump_output(r, &r->out, 0, lim, cg);
        if (ie >= 0 && p[ie].revents)
            pump_output(r, &r->err, 1, lim, cg);
        if (!r->exited && wall_end && now_ms() >= wall_end && r->killed == KILLED_NONE) {
            r->killed = KILLED_WALL;
            cg_kill(cg);
        }
        if (stall_start >= 0 && !r->exited && r->killed == KILLED_NONE &&
            now_ms() - window_start >= THRASH_WINDOW_MS) {
            int64_t stall = memory_full_stall_us(cg);
            if (stall - stall_start > THRASH_STALL_US) {
                r->killed = KILLED_MEMORY;
                cg_kill(cg);
            }
            stall_start = stall;
            window_start = now_ms();
        }
        if (!r->exited && lim->cpu_time_ms > 0 && r->killed == KILLED_NONE &&
            cg_read_key(cg, "cpu.stat", "usage_usec") / 1000 >= lim->cpu_time_ms) {
            r->killed = KILLED_CPU;
            cg_kill(cg);
        }
    }
}

/* The descriptors of one exec, each closed on scope exit unless handed on
 * (set to -1). */
struct exec_fds {
    int null, in[2], out[2], err[2], ep[2], sp[2], master, slave;
};

static void exec_fds_close(struct exec_fds *f)
{
    int *all[] = {&f->null,  &f->in[0], &f->in[1], &f->out[0], &f->out[1], &f->err[0], &f->err[1],
                  &f->ep[0], &f->ep[1], &f->sp[0], &f->sp[1],  &f->master, &f->slave};
    for (size_t i = 0; i < sizeof(all) / sizeof(all[0]); i++)
        close_fd(all[i]);
}

/* One exec's cgroup: killed and removed on scope exit unless kept (a
 * detached workload lives on in it). */
struct exec_cgroup {
    char path[64];
    bool made, keep;
};

static void exec_cgroup_release(struct exec_cgroup *g)
{
    if (g->made && !g->keep) {
        cg_kill(g->path);
        cg_remove(g->path);
    }
}

/* A terminal of rows x cols: its master (the agent's) and its slave (the
 * workload's), from the agent's own devpts. */
static int open_pty(struct exec_fds *f, unsigned short rows, unsigned short cols)
{
    int unlock = 0;
    f->master = open(AGENT_DEV "/pts/ptmx", O_RDWR | O_NOCTTY | O_CLOEXEC);
    if (f->master < 0 || ioctl(f->master, TIOCSPTLCK, &unlock) < 0)
        return -1;
    f->slave = ioctl(f->master, TIOCGPTPEER, O_RDWR | O_NOCTTY | O_CLOEXEC);
    if (f->slave < 0)
        return -1;
    struct winsize ws = {.ws_row = rows, .ws_col = cols};
    return ioctl(f->master, TIOCSWINSZ, &ws);
}

/* The workload could not start: its errno and message, as the child wrote
 * them to the error pipe. */
static void send_start_error(struct conn *c, pid_t pid, char *msg)
{
    int st;
    waitpid(pid, &st, 0);
    char *colon = strchr(msg, ':');
    char step = colon && colon[1] && colon[2] == ':' ? colon[1] : START_FAILED_SETUP;
    const char *why = colon && colon[1] && colon[2] == ':' ? colon + 3 : colon ? colon + 1 : msg;
    json_object *o = json_object_new_object();
    json_object_object_add(o, "ok", json_object_new_boolean(0));
    json_object_object_add(o, "errno", json_object_new_int(atoi(msg)));
    json_object_object_add(o, "stage",
                           json_object_new_string(step == START_FAILED_EXEC  ? "exec"
                                                  : step == START_FAILED_CWD ? "workdir"
                                                                             : "setup"));
    json_object_object_add(o, "error", json_object_new_string(why));
    conn_send_json(c, HULL_FRAME_RESP, o);
    json_object_put(o);
}

/* Start argv in a cgroup of its own and, unless detached, relay its stdio
 * until it ends. */
static int exec_start(struct conn *c, json_object *req, char **argv, char **envp)
{
    static unsigned seq;
    json_object *lo = NULL, *cwdv = NULL;
    json_object_object_get_ex(req, "limits", &lo);
    struct limits lim = {
        .cpu_time_ms = get_i64(lo, "cpu_time_ms"),
        .wall_time_ms = get_i64(lo, "wall_time_ms"),
        .memory_bytes = get_i64(lo, "memory_bytes"),
        .pids = get_i64(lo, "pids"),
        .output_bytes = get_i64(lo, "output_bytes"),
        .open_files = get_i64(lo, "open_files"),
        .cpu_milli = get_i64(lo, "cpu_milli"),
    };
    bool detach = get_bool(req, "detach");
    bool want_stdin = get_bool(req, "stdin") && !detach;
    const char *cwd =
        json_object_object_get_ex(req, "cwd", &cwdv) ? json_object_get_string(cwdv) : "/";

    __attribute__((cleanup(exec_fds_close))) struct exec_fds f = {
        .null = open(AGENT_DEV "/null", O_RDWR | O_CLOEXEC),
        .in = {-1, -1},
        .out = {-1, -1},
        .err = {-1, -1},
        .ep = {-1, -1},
        .sp = {-1, -1},
        .master = -1,
        .slave = -1,
    };
    __attribute__((cleanup(exec_cgroup_release))) struct exec_cgroup g = {0};
    /* Unique across the session servers (one process per port). */
    snprintf(g.path, sizeof(g.path), AGENT_CGROUP "/w%d-%u", (int)getpid(), ++seq);
    if (mkdir(g.path, 0755) < 0)
        return conn_send_error(c, "exec: create cgroup: %s", strerror(errno));
    g.made = true;
    const char *cg = g.path;
    if ((lim.memory_bytes > 0 && (cg_write(cg, "memory.max", lim.memory_bytes) < 0 ||
                                  cg_write(cg, "memory.swap.max", 0) < 0)) ||
        (lim.pids > 0 && cg_write(cg, "pids.max", lim.pids) < 0) ||
        (lim.cpu_milli > 0 && cg_cpu_max(cg, lim.cpu_milli) < 0))
        return conn_send_error(c, "exec: set cgroup limits: %s", strerror(errno));
    json_object *ptyv = NULL;
    json_object_object_get_ex(req, "pty", &ptyv);
    int64_t rows = get_i64(ptyv, "rows"), cols = get_i64(ptyv, "cols");
    bool pty = !detach && rows > 0 && cols > 0 && rows < 65536 && cols < 65536;
    if (pty && open_pty(&f, (unsigned short)rows, (unsigned short)cols) < 0)
        return conn_send_error(c, "exec: pty: %s", strerror(errno));
    if (pipe2(f.ep, O_CLOEXEC) < 0 || pipe2(f.sp, O_CLOEXEC) < 0 ||
        (want_stdin && !pty && pipe2(f.in, O_CLOEXEC) < 0) ||
        (!detach && !pty && (pipe2(f.out, O_CLOEXEC) < 0 || pipe2(f.err, O_CLOEXEC) < 0)))
        return conn_send_error(c, "exec: pipe: %s", strerror(errno));
    struct child_args a = {
        .argv = argv,
        .envp = envp,
        .cwd = cwd,
        .cgroup = cg,
        .in = pty          ? f.slave
              : want_stdin ? f.in[0]
                           : f.null,
        .out = pty      ? f.slave
               : detach ? f.null
                        : f.out[1],
        .err = pty      ? f.slave
               : detach ? f.null
                        : f.err[1],
        .errpipe = f.ep[1],
        .statpipe = f.sp[1],
        .pty = pty,
        .lim = lim,
    };
    static char stack[256 << 10] __attribute__((aligned(16)));
    uint64_t t0 = now_ms();
    /* A VM on a hull network: workloads use the guest's card (the host's
     * rules confine what it reaches; they hold no capability to change
     * it). Otherwise an empty network namespace of their own. */
    int flags = CLONE_NEWPID | CLONE_NEWNS | CLONE_NEWIPC | CLONE_NEWUTS | SIGCHLD;
    if (!agent_net_is_up())
        flags |= CLONE_NEWNET;
    pid_t pid = clone(child_main, stack + sizeof(stack), flags, &a);
    if (pid < 0)
        return conn_send_error(c, "exec: clone: %s", strerror(errno));
    close_fd(&f.ep[1]);
    close_fd(&f.sp[1]);
    close_fd(&f.in[0]);
    close_fd(&f.out[1]);
    close_fd(&f.err[1]);
    close_fd(&f.slave); /* the workload's alone: its end is the master's EOF */
    char msg[1024];
    ssize_t n = read(f.ep[0], msg, sizeof(msg) - 1);
    if (n > 0) {
        msg[n] = 0;
        send_start_error(c, pid, msg);
        return -1;
    }
    json_object *ok = json_object_new_object();
    json_object_object_add(ok, "ok", json_object_new_boolean(1));
    json_object_object_add(ok, "pid", json_object_new_int(pid));
    conn_send_json(c, HULL_FRAME_RESP, ok);
    json_object_put(ok);
    if (detach) {
        if (agent_remember_detached(pid, cg) < 0)
            agent_log("too many detached workloads; %d will not be reaped", pid);
        g.keep = true;
        return 0;
    }
    struct run r = {.c = c, .pty = -1, .pid = pid, .in = f.in[1], .out = f.out[0], .err = f.err[0]};
    f.in[1] = f.out[0] = f.err[0] = -1;
    if (pty) {
        /* The master is stdin and stdout both; a stdin closed by the host
         * leaves the terminal open (^D is its end of input). */
        r.pty = f.master;
        r.out = fcntl(f.master, F_DUPFD_CLOEXEC, 0);
        r.in = want_stdin ? fcntl(f.master, F_DUPFD_CLOEXEC, 0) : -1;
        f.master = -1;
    }
    fcntl(r.out, F_SETFL, O_NONBLOCK);
    fcntl(r.err, F_SETFL, O_NONBLOCK);
    if (r.in >= 0)
        fcntl(r.in, F_SETFL, O_NONBLOCK);
    else
        r.in_eof = true;
    run_loop(&r, &lim, cg, t0);
    /* The workload's own status, as its init saw it (absent when the init
     * itself was killed, e.g. by cgroup.kill: then the init's status says it). */
    int wst;
    if (read(f.sp[0], &wst, sizeof(wst)) == sizeof(wst))
        r.status = wst;
    close_fd(&r.in);
    close_fd(&r.pty);
    free(r.inbuf);
    if (r.killed != KILLED_HOST)
        send_exit(&r, &lim, cg, t0);
    return 0;
}

int agent_exec(struct conn *c, json_object *req)
{
    char **argv = NULL, **envp = NULL;
    if (parse_strv(req, "args", &argv) <= 0) {
        free(argv);
        return conn_send_error(c, "exec: args must be a non-empty array of strings");
    }
    if (parse_strv(req, "env", &envp) < 0) {
        free(argv);
        return conn_send_error(c, "exec: env must be an array of strings");
    }
    if (!envp)
        envp = calloc(1, sizeof(char *));
    int rc = exec_start(c, req, argv, envp);
    free(argv);
    free(envp);
    return rc;
}
