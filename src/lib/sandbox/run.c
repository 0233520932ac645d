/* hull_sandbox_run: one policy, one fully isolated run, one result.
 *
 * The process and container levels are a container whose spec comes from
 * the policy (layout.c). This file is its supervisor: it owns the pipes,
 * the clocks and the kill switch, and turns the kernel's own accounting
 * (cgroup cpu usage, memory OOM kills, pids events) into the verdict.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "container/container.h"
#include "container/sync.h"
#include "linux/cgroup.h"
#include "linux/namespaces.h"
#include "linux/seccomp.h"
#include "sandbox/netpool.h"
#include "sandbox/sandbox.h"
#include "util/clock.h"
#include "util/error.h"
#include "util/fs.h"
#include "util/json.h"
#include "util/log.h"

/* Outside /run/hull (0700): the sandbox's root user, an unprivileged host uid,
 * must be able to reach the directory its tmpfs root is mounted on. */

#define STDIN_CHUNK 65536 /* read of --stdin at a time */

/* What a run owns; released in one place whatever happened. */
struct run {
    const struct hull_policy *p;
    struct hull_result *r;
    struct hull_sandbox_layout lay;
    struct hull_seccomp_filter *seccomp;
    struct hull_container_ctx c;
    bool have_ctx;
    int in_fd;    /* what becomes the sandbox's stdin */
    int in_write; /* our end of the pipe stdin is fed through */
    int in_src;   /* --stdin: the host file, read by us, never handed over */
    char *in_buf; /* what was read of in_src and not yet written */
    size_t in_len, in_off;
    int out[2], err[2];
    int status[2]; /* the reaper's report of the program's wait status */
    int copy_fds[HULL_SANDBOX_MAX_COPIES];
    size_t n_copy_fds;
    /* The run's host ids, claimed by ns_run (uids.c). */
    const struct hull_sandbox_ids *ids;
    const struct image_user *user;      /* an image's User, or NULL */
    char *dirs[HULL_SANDBOX_MAX_FILES]; /* under /tmp, made for the copies */
    size_t n_dirs;
    size_t stdin_off;
    struct hull_sandbox_cpu cpu; /* the program's CPU time, as the supervisor sees it */
    struct hull_sandbox_net net; /* --network NAME: the attachment and /etc files */
    char id[80];
};

static void run_release(struct run *x)
{
    hull_closep(&x->in_fd);
    hull_closep(&x->in_write);
    hull_closep(&x->in_src);
    free(x->in_buf);
    for (int i = 0; i < 2; i++) {
        hull_closep(&x->out[i]);
        hull_closep(&x->err[i]);
        hull_closep(&x->status[i]);
    }
    for (size_t i = 0; i < x->n_copy_fds; i++)
        hull_closep(&x->copy_fds[i]);
    for (size_t i = 0; i < x->n_dirs; i++)
        free(x->dirs[i]);
    if (x->have_ctx)
        hull_container_ctx_release(&x->c);
    /* Whatever path got here: no veth, lease or rule outlives the run. */
    hull_sandbox_net_release(&x->net);
    /* Last: the sandbox's processes are all gone (its init was reaped). */
    hull_seccomp_filter_free(x->seccomp);
    hull_sandbox_layout_free(&x->lay);
}

/* An OCI seccomp profile is a few KiB of JSON: a path that names something
 * else (a device, a FIFO, a huge file) is refused, not read on and on. */
#define SECCOMP_PROFILE_MAX (4u << 20)

static int seccomp_profile(const char *path, json_object **doc, hull_error *err)
{
    cleanup_close int fd = hull_sandbox_open_regular(path, "--seccomp", err);
    if (fd < 0)
        return -1;
    cleanup_free char *text = NULL;
    size_t len = 0;
    /* Bounded by what is read, not the size the file claims (procfs: 0). */
    if (hull_read_fd_max(fd, SECCOMP_PROFILE_MAX, &text, &len, err) < 0)
        return hull_error_prefix(err, "--seccomp %s", path);
    return hj_parse(text, len, "--seccomp", doc, err);
}

/* Everything that can be wrong with the input is found here, before any
 * namespace, cgroup or state directory exists. */
static int preflight(struct run *x, char **rootfs, hull_error *err)
{
    const struct hull_policy *p = x->p;
    if (hull_policy_validate(p, err) < 0)
        return -1;
    if (p->n_copy_in + p->n_files > HULL_SANDBOX_MAX_COPIES)
        return hull_error_set(err, E2BIG, "copy_in: at most %d files (with files)",
                              HULL_SANDBOX_MAX_COPIES);
    /* An image's root is the mount hull made (image.c): never a bundle,
     * whatever the image holds at /rootfs and /config.json. */
    if (p->image && p->rootfs && (*rootfs = strdup(p->rootfs)) == NULL)
        return hull_error_set(err, ENOMEM, "out of memory");
    if (!p->image && p->rootfs && (*rootfs = hull_sandbox_resolve_rootfs(p->rootfs, err)) == NULL)
        return -1;
    bool userns = p->isolation == HULL_ISOLATION_CONTAINER;
    if (*rootfs && userns && hull_sandbox_reachable(*rootfs, x->ids->base, "--rootfs", err) < 0)
        return -1;
    static const char *const own_mounts[] = {"/proc", "/dev", "/tmp", NULL};
    for (const char *const *m = own_mounts; *rootfs && *m; m++)
        if (hull_sandbox_check_own_mount(*rootfs, *m, err) < 0)
            return -1;
    for (size_t i = 0; i < p->n_binds; i++) {
        struct stat st;
        if (stat(p->binds[i].source, &st) < 0)
            return hull_error_errno(err, "--bind %s", p->binds[i].source);
        if (userns && hull_sandbox_reachable(p->binds[i].source, x->ids->base, "--bind", err) < 0)
            return -1;
        if (hull_sandbox_check_mountpoint(*rootfs, p->binds[i].destination, "--bind", err) < 0)
            return -1;
    }
    for (size_t i = 0; i < p->n_copy_in; i++) {
        int fd = hull_sandbox_open_regular(p->copy_in[i].host, "--copy-in", err);
        if (fd < 0)
            return -1;
        x->copy_fds[x->n_copy_fds++] = fd;
    }
    if (p->stdin_path) {
        /* Any readable non-directory: a file, a pipe ("-"), a device. The
         * supervisor reads it and feeds a pipe: the host's open file is never
         * the sandbox's (through /proc/self/fd/0 it could be reopened for
         * writing, and its host path read). */
        x->in_src = hull_sandbox_open_input(p->stdin_path, "--stdin", err);
        struct stat st;
        if (x->in_src < 0)
            return -1;
        if (fstat(x->in_src, &st) < 0 || S_ISDIR(st.st_mode))
            return hull_error_set(err, EISDIR, "--stdin %s: is a directory", p->stdin_path);
        if ((x->in_buf = malloc(STDIN_CHUNK)) == NULL)
            return hull_error_set(err, ENOMEM, "out of memory");
    }
    if (p->seccomp_path) {
        json_object *doc = NULL;
        struct hull_seccomp sc = {0};
        if (seccomp_profile(p->seccomp_path, &doc, err) < 0)
            return -1;
        int r = hull_seccomp_parse(doc, "seccomp", &sc, err);
        if (r == 0)
            r = hull_seccomp_compile(&sc, &x->seccomp, err);
        hull_seccomp_free(&sc);
        json_object_put(doc);
        if (r < 0)
            return hull_error_prefix(err, "--seccomp %s", p->seccomp_path);
    } else if (hull_seccomp_compile(p->isolation == HULL_ISOLATION_CONTAINER
                                        ? hull_seccomp_default_sandbox()
                                        : hull_seccomp_process_sandbox(),
                                    &x->seccomp, err) < 0) {
        return hull_error_prefix(err, "built-in seccomp profile");
    }
    return 0;
}

/* The directories strictly below /tmp on the way to path (and path itself
 * when self), parents first, each once. */
static int add_dirs(struct run *x, const char *path, bool self)
{
    char clean[PATH_MAX];
    if (hull_path_clean(path, clean, sizeof(clean)) < 0)
        return -1;
    size_t n = strlen(clean);
    for (size_t i = 5; i <= n; i++) { /* past "/tmp/" */
        if (!(clean[i] == '/' || (self && i == n)))
            continue;
        bool seen = false;
        for (size_t k = 0; k < x->n_dirs && !seen; k++)
            seen = strlen(x->dirs[k]) == i && strncmp(x->dirs[k], clean, i) == 0;
        if (seen)
            continue;
        if (x->n_dirs == HULL_SANDBOX_MAX_FILES || (x->dirs[x->n_dirs] = strndup(clean, i)) == NULL)
            return -1;
        x->n_dirs++;
    }
    return 0;
}

/* Files the init writes into /tmp before the workload starts, after the
 * directories they (and the workdir) need: those belong to the sandbox's
 * user, who must be able to write next to what was copied in. */
static int add_tmp_files(struct run *x)
{
    const struct hull_policy *p = x->p;
    struct hull_sandbox_layout *lay = &x->lay;
    uint32_t uid = lay->uid;
    for (size_t i = 0; i < p->n_copy_in; i++)
        if (add_dirs(x, p->copy_in[i].sandbox, false) < 0)
            return -1;
    for (size_t i = 0; i < p->n_files; i++)
        if (add_dirs(x, p->files[i].path, false) < 0)
            return -1;
    if (p->workdir && strncmp(p->workdir, "/tmp/", 5) == 0 && add_dirs(x, p->workdir, true) < 0)
        return -1;
    for (size_t i = 0; i < x->n_dirs; i++) {
        if (lay->n_files == HULL_SANDBOX_MAX_FILES)
            return -1;
        struct hull_root_file *f = &lay->files[lay->n_files++];
        memset(f, 0, sizeof(*f));
        f->path = x->dirs[i];
        f->src_fd = -1;
        f->mode = S_IFDIR | 0755;
        f->uid = uid;
        f->gid = lay->gid;
        f->after_mounts = true;
    }
    for (size_t i = 0; i < p->n_copy_in + p->n_files; i++) {
        if (lay->n_files == HULL_SANDBOX_MAX_FILES)
            return -1;
        struct hull_root_file *f = &lay->files[lay->n_files++];
        memset(f, 0, sizeof(*f));
        if (i < p->n_copy_in) {
            f->path = p->copy_in[i].sandbox;
            f->src_fd = x->copy_fds[i];
            f->mode = 0644;
            struct stat st;
            if (fstat(f->src_fd, &st) == 0)
                f->mode = st.st_mode & 0755;
        } else {
            const struct hull_inline_file *inl = &p->files[i - p->n_copy_in];
            f->path = inl->path;
            f->data = inl->data;
            f->len = inl->len;
            f->src_fd = -1;
            f->mode = inl->mode ? inl->mode : 0644;
        }
        f->uid = uid;
        f->gid = lay->gid;
        f->after_mounts = true;
    }
    lay->extras.files = lay->files;
    lay->extras.n_files = lay->n_files;
    return 0;
}

enum stop { STOP_NONE, STOP_WALL, STOP_CPU, STOP_OUTPUT, STOP_CANCEL };

static void kill_all(struct run *x)
{
    hull_error e = NULL;
    if (x->c.cgroup && hull_cgroup_kill(x->c.cgroup, SIGKILL, &e) < 0) {
        hull_debug("sandbox %s: kill: %s", x->id, hull_error_msg(e));
        hull_error_free(&e);
    }
    /* The init's death takes the whole pid namespace with it. */
    kill(x->c.launch.pid, SIGKILL);
}

/* A write that returns EPIPE instead of raising SIGPIPE (the program may
 * close its stdin early): the signal is blocked for this thread meanwhile
 * and, if the write raised it, taken back before it is unblocked. */
static ssize_t write_nosigpipe(int fd, const void *buf, size_t len)
{
    sigset_t pipe_set, old, pending;
    sigemptyset(&pipe_set);
    sigaddset(&pipe_set, SIGPIPE);
    sigpending(&pending);
    bool was_pending = sigismember(&pending, SIGPIPE);
    pthread_sigmask(SIG_BLOCK, &pipe_set, &old);
    ssize_t w = write(fd, buf, len);
    int saved = errno;
    if (w < 0 && errno == EPIPE && !was_pending) {
        struct timespec zero = {0, 0};
        while (sigtimedwait(&pipe_set, NULL, &zero) < 0 && errno == EINTR)
            ;
    }
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    errno = saved;
    return w;
}

/* Stdin reaches the program through a pipe: the policy's bytes, or the
 * --stdin file read a chunk at a time, only once the previous chunk is in
 * the pipe (an endless source costs nothing while the program does not
 * read). EOF, a read error, or a program that closed its stdin ends it. */
static void feed_stdin(struct run *x, bool src_ready, bool pipe_ready)
{
    const struct hull_policy *p = x->p;
    if (x->in_src >= 0 && src_ready && x->in_off == x->in_len) {
        ssize_t n = read(x->in_src, x->in_buf, STDIN_CHUNK);
        if (n < 0 && (errno == EINTR || errno == EAGAIN))
            return;
        if (n < 0)
            hull_warn("sandbox: --stdin %s: %s", p->stdin_path, strerror(errno));
        if (n <= 0) {
            hull_closep(&x->in_src);
            hull_closep(&x->in_write);
            return;
        }
        x->in_len = (size_t)n;
        x->in_off = 0;
        pipe_ready = true; /* try at once; EAGAIN just waits for POLLOUT */
    }
    if (!pipe_ready || x->in_write < 0)
        return;
    const char *d = x->in_src >= 0 ? x->in_buf : p->stdin_data;
    size_t *off = x->in_src >= 0 ? &x->in_off : &x->stdin_off;
    size_t len = x->in_src >= 0 ? x->in_len : p->stdin_len;
    ssize_t w = *off < len ? write_nosigpipe(x->in_write, d + *off, len - *off) : 0;
    if (w < 0 && (errno == EAGAIN || errno == EINTR))
        return;
    if (w > 0)
        *off += (size_t)w;
    /* The program closed its stdin, or the policy's bytes are all in. */
    if (w < 0 || (x->in_src < 0 && *off == len)) {
        hull_closep(&x->in_write);
        hull_closep(&x->in_src);
    }
}

/* The program's wait status from the reaper, once it is all there; false
 * while nothing (or not all of it) came. */
static bool read_program_status(struct run *x, int *st)
{
    ssize_t n;
    do {
        n = read(x->status[0], st, sizeof(*st));
    } while (n < 0 && errno == EINTR);
    return n == (ssize_t)sizeof(*st);
}

/* The workload runs: feed stdin, collect output, watch the clocks, until
 * the program ended (the reaper reported its status, or the init is gone)
 * and its output is all in. *status is the program's wait status, or the
 * init's when the reaper had none to give (it was killed with everything
 * else); *init_reaped says whether the init was reaped (*ru its usage).
 *
 * The reaper reports before it exits, and its exit is slow: the last
 * process of the sandbox's mount namespace tears it down and waits for an
 * RCU grace period. The caller reads the result meanwhile and reaps the
 * init (finish_init) only before the cgroup must go. */
/* One read of stream 1 (stdout) or 2 (stderr) into the result; what it
 * kept goes to the policy's on_output too. false at its end. */
static bool drain(struct run *x, int stream, bool *over)
{
    struct hull_output *o = stream == 1 ? &x->r->out : &x->r->err;
    size_t before = o->len;
    bool open = hull_output_drain(stream == 1 ? x->out[0] : x->err[0], o, x->p->output_bytes, over);
    if (x->p->on_output && o->len > before)
        x->p->on_output(x->p->on_output_ctx, stream, o->data + before, o->len - before);
    return open;
}

static void supervise(struct run *x, uint64_t start_ns, enum stop *why, int *status,
                      bool *init_reaped, struct rusage *ru)
{
    const struct hull_policy *p = x->p;
    pid_t pid = x->c.launch.pid;
    int pfd = (int)syscall(SYS_pidfd_open, pid, 0);
    bool out_open = true, err_open = true, exited = false, reported = false;
    uint64_t deadline = start_ns + p->wall_time_ms * 1000000ull;
    /* The cgroup's usage covers every process; without a cgroup the process
     * tree in /proc is the best there is (RLIMIT_CPU bounds each process). */
    bool watch_cpu = true;
    *why = STOP_NONE;
    *status = 0;
    memset(ru, 0, sizeof(*ru));
    /* Without a cgroup the init's rusage is the run's CPU time: the init
     * must be reaped first (see ns_supervise). */
    bool early = x->c.cgroup != NULL;
    /* When the CPU time is read next: one poll interval after the start,
     * not at once (the program has used nothing yet, and most are over
     * before the first read; a read at the start cost every run a cgroup
     * file, or a walk of /proc at process level). */
    uint64_t next_cpu = start_ns + HULL_SANDBOX_CPU_POLL_NS;

    while (!(exited || reported) || out_open || err_open) {
        bool ended = exited || reported;
        /* The host file is read only when its last chunk is in the pipe. */
        bool chunk_out = x->in_src >= 0 && x->in_off == x->in_len;
        struct pollfd f[7] = {
            {.fd = out_open ? x->out[0] : -1, .events = POLLIN},
            {.fd = err_open ? x->err[0] : -1, .events = POLLIN},
            {.fd = ended ? -1 : pfd, .events = POLLIN},
            {.fd = chunk_out ? -1 : x->in_write, .events = POLLOUT},
            {.fd = p->cancel_fd, .events = POLLIN},
            {.fd = chunk_out && x->in_write >= 0 ? x->in_src : -1, .events = POLLIN},
            {.fd = early && !ended ? x->status[0] : -1, .events = POLLIN},
        };
        uint64_t now = hull_monotonic_ns();
        int timeout = -1;
        if (!ended) {
            uint64_t until = watch_cpu && next_cpu < deadline ? next_cpu : deadline;
            timeout = now >= until ? 0 : (int)((until - now) / 1000000ull) + 1;
        }
        int n = poll(f, 7, timeout);
        if (n < 0 && errno != EINTR)
            break;
        bool over = false;
        if (f[0].revents && !drain(x, 1, &over))
            out_open = false;
        if (f[1].revents && !drain(x, 2, &over))
            err_open = false;
        if (n > 0 && (f[3].revents || f[5].revents))
            feed_stdin(x, f[5].revents != 0, f[3].revents != 0);
        /* Output past the limit is the verdict even when it came after the
         * program's end, from a process the sandbox's end had yet to kill
         * (the result says truncated: it must say why). Nothing is killed
         * then: the exiting init takes the rest with it (see below). */
        if (over && *why == STOP_NONE) {
            *why = STOP_OUTPUT;
            if (!ended)
                kill_all(x);
        }
        if (ended)
            continue;
        if (f[4].revents && *why == STOP_NONE) {
            *why = STOP_CANCEL;
            kill_all(x);
        }
        if (f[6].revents) {
            if (read_program_status(x, status)) {
                reported = true;
            } else {
                /* EOF without a status: the init's end says what happened. */
                early = false;
            }
        }
        if (!reported && (pfd < 0 || (f[2].revents & POLLIN)) &&
            wait4(pid, status, pfd < 0 ? WNOHANG : 0, ru) == pid) {
            exited = true;
            /* The reaper's report, when it made one before it ended. */
            int st;
            if (read_program_status(x, &st))
                *status = st;
        }
        if (exited || reported) {
            /* Anything left in the sandbox dies now; the pipes then close.
             * A reaper that reported is exiting, and its exit kills its pid
             * namespace: a cgroup kill meanwhile would find it still there
             * and try again and again. */
            if (exited)
                kill_all(x);
            hull_closep(&x->in_write);
            hull_closep(&x->in_src);
            continue;
        }
        now = hull_monotonic_ns();
        if (now >= deadline && *why == STOP_NONE) {
            *why = STOP_WALL;
            kill_all(x);
            deadline = UINT64_MAX;
        }
        if (watch_cpu && *why == STOP_NONE && now >= next_cpu &&
            hull_sandbox_cpu_over(&x->cpu, now, &next_cpu)) {
            *why = STOP_CPU;
            kill_all(x);
        }
    }
    if (pfd >= 0)
        close(pfd);
    *init_reaped = exited;
}

/* Reap the init, whatever supervise left of it: its pid namespace, and so
 * every process of the sandbox, is gone once this returns. */
static void finish_init(struct run *x, int *status, struct rusage *ru)
{
    pid_t pid = x->c.launch.pid;
    while (wait4(pid, status, 0, ru) < 0 && errno == EINTR)
        ;
    int st;
    if (read_program_status(x, &st))
        *status = st;
}

static void verdict(struct run *x, int status, enum stop why, const struct hull_cgroup_stats *st)
{
    struct hull_result *r = x->r;
    if (WIFEXITED(status))
        r->exit_code = WEXITSTATUS(status);
    else if (WIFSIGNALED(status))
        r->signal = WTERMSIG(status);
    /* From the accounting alone. A SIGXCPU the program died of is no
     * evidence: it can raise one itself; and one of RLIMIT_CPU (soft limit
     * above --cpu-time) comes only with its usage past --cpu-time. */
    bool cpu_over = r->cpu_time_ms >= x->p->cpu_time_ms;
    /* One verdict when several limits were hit: the kernel's memory and
     * pids events come before the clocks and the output, because they are
     * the cause when both happen -- a fork bomb spins on failing forks
     * until its CPU time runs out, a program whose helper was OOM-killed
     * may wait until the wall clock stops it. */
    if (why == STOP_CANCEL)
        r->verdict = HULL_VERDICT_KILLED;
    else if (st && st->oom_kill_events > 0)
        r->verdict = HULL_VERDICT_MEMORY_LIMIT;
    else if (st && st->pids_max_events > 0)
        r->verdict = HULL_VERDICT_PIDS_LIMIT;
    else if (why == STOP_WALL)
        r->verdict = HULL_VERDICT_WALL_TIME_LIMIT;
    else if (why == STOP_CPU || cpu_over)
        r->verdict = HULL_VERDICT_CPU_TIME_LIMIT;
    else if (why == STOP_OUTPUT)
        r->verdict = HULL_VERDICT_OUTPUT_LIMIT;
    else if (WIFSIGNALED(status))
        r->verdict = HULL_VERDICT_SIGNALED;
    else if (r->exit_code != 0)
        r->verdict = HULL_VERDICT_EXIT_NONZERO;
    else
        r->verdict = HULL_VERDICT_OK;
}

static void internal_error(struct hull_result *r, hull_error *e)
{
    r->verdict = HULL_VERDICT_INTERNAL_ERROR;
    free(r->error);
    r->error = strdup(hull_error_msg(*e));
    hull_error_free(e);
}

/* Everything before the run: checks, uid, layout, pipes. */
static int ns_prepare(struct run *x, char **rootfs, hull_error *err)
{
    const struct hull_policy *p = x->p;
    if (preflight(x, rootfs, err) < 0)
        return -1;
    /* The id first: it names the network's files the layout binds. */
    hull_sandbox_new_id("sandbox", x->id, sizeof(x->id));
    if (hull_sandbox_net_prepare(&x->net, p, x->id, err) < 0)
        return -1;
    struct hull_policy local = *p;
    local.rootfs = *rootfs;
    if (hull_mkdir_p(HULL_SANDBOX_EMPTY_ROOT, 0755, err) < 0 ||
        hull_sandbox_layout(&local, HULL_SANDBOX_EMPTY_ROOT, x->ids->base, x->user,
                            x->net.on ? x->net.dir : NULL, &x->lay, err) < 0)
        return -1;
    if (add_tmp_files(x) < 0)
        return hull_error_set(err, E2BIG, "too many files and directories to copy in");
    if (pipe2(x->out, O_CLOEXEC) < 0 || pipe2(x->err, O_CLOEXEC) < 0 ||
        pipe2(x->status, O_CLOEXEC) < 0)
        return hull_error_errno(err, "pipe");
    if (x->in_src >= 0 || p->stdin_data) {
        int in[2];
        if (pipe2(in, O_CLOEXEC) < 0)
            return hull_error_errno(err, "pipe");
        x->in_fd = in[0];
        x->in_write = in[1];
        fcntl(x->in_write, F_SETFL, O_NONBLOCK);
    } else if (x->in_fd < 0 && (x->in_fd = open("/dev/null", O_RDONLY | O_CLOEXEC)) < 0) {
        return hull_error_errno(err, "open /dev/null");
    }
    fcntl(x->out[0], F_SETFL, O_NONBLOCK);
    fcntl(x->err[0], F_SETFL, O_NONBLOCK);
    return 0;
}

/* Supervise the started program to its end and fill the result from it.
 * With a cgroup, the result is read while the init is still exiting; the
 * init is reaped here in any case, before anything of the run is removed. */
static void ns_supervise(struct run *x, uint64_t start)
{
    struct hull_result *r = x->r;
    enum stop why;
    struct rusage ru;
    int status;
    bool reaped;
    supervise(x, start, &why, &status, &reaped, &ru);
    r->wall_time_ms = (hull_monotonic_ns() - start) / 1000000ull;
    if (!reaped && x->c.cgroup == NULL) {
        /* No cgroup: the init's rusage is the run's CPU time. */
        finish_init(x, &status, &ru);
        reaped = true;
    }
    struct hull_cgroup_stats st = {0};
    bool have_stats = false;
    if (x->c.cgroup) {
        hull_error e = NULL;
        have_stats = hull_cgroup_stats_brief(x->c.cgroup, &st, &e) == 0;
        if (!have_stats)
            hull_debug("sandbox %s: stats: %s", x->id, hull_error_msg(e));
        hull_error_free(&e);
        r->cpu_time_ms = hull_sandbox_cpu_program_ns(&x->cpu, st.cpu_usage_ns) / 1000000ull;
        r->max_memory_kb = st.memory_max_usage / 1024;
    } else {
        /* No cgroup: the init's usage, which includes every process
         * it reaped (the reaper reaps them all). */
        uint64_t ru_ns = (uint64_t)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) * 1000000000ull +
                         (uint64_t)(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) * 1000ull;
        r->cpu_time_ms = hull_sandbox_cpu_program_ns(&x->cpu, ru_ns) / 1000000ull;
        r->max_memory_kb = (uint64_t)ru.ru_maxrss;
        /* A process killed before the reaper reaped it is not in
         * there; what the supervisor last saw of it is. */
        if (x->cpu.seen_ms > r->cpu_time_ms)
            r->cpu_time_ms = x->cpu.seen_ms;
    }
    verdict(x, status, why, have_stats ? &st : NULL);
    if (!reaped) {
        int init_status; /* the program's is in the result already */
        finish_init(x, &init_status, &ru);
    }
}

/* A network that cannot be attached (no such network, a host port taken,
 * the helper missing) is the caller's error, not the run's verdict: the
 * program never started, and the container goes as if it never was. */
static int ns_attach(struct run *x, const struct hull_runtime *rt, hull_error *err)
{
    if (hull_sandbox_net_attach(&x->net, x->p, x->id, x->c.launch.pid, err) == 0)
        return 0;
    kill_all(x);
    hull_reap(x->c.launch.pid); /* every process gone before the network's detach */
    hull_error e = NULL;
    if (hull_container_destroy(rt, x->c.dirfd, &x->c.cs, &e) < 0) {
        hull_warn("sandbox %s: cleanup: %s", x->id, hull_error_msg(e));
        hull_error_free(&e); /* warned; the attach error is the one returned */
    }
    return -1;
}

/* While the init mounts its root: the network's attach goes ahead. */
static void init_setting_up(pid_t init, void *arg)
{
    struct run *x = arg;
    hull_sandbox_net_request(&x->net, x->p, x->id, init);
}

/* The run itself: whatever fails here is its verdict, not an error
 * (but for a network that cannot be attached: ns_attach). */
static int ns_launch(struct run *x, hull_error *err)
{
    const struct hull_policy *p = x->p;
    struct hull_result *r = x->r;
    r->isolation = p->isolation;
    /* A runner killed by SIGKILL cannot remove its run's cgroups (its
     * processes die with it): the next run on the machine does. */
    hull_sandbox_collect_stale();
    struct hull_runtime rt = {.root = HULL_SANDBOX_ROOT};
    struct hull_create_opts co = {.id = x->id, .bundle = "/"};
    int stdio[3] = {x->in_fd, x->out[1], x->err[1]};
    struct hull_setup_opts so;
    hull_sandbox_setup_opts(p, &x->lay, x->seccomp, stdio, x->ids->owner, &so);
    so.reaper = true;
    so.status_fd = x->status[1];
    so.lean_cgroup = true; /* never paused */
    so.no_state = true;    /* the init dies with us; our pid is in the id */
    so.setting_up = init_setting_up;
    so.setting_up_arg = x;
    /* The init is born in a namespace of the host's pool, if one runs. */
    cleanup_close int pooled = hull_sandbox_netpool_offer(x->lay.spec, &so);
    hull_error e = NULL;
    int setup = hull_container_setup(&rt, &co, &so, &x->c, &e);
    hull_closep(&pooled); /* the init holds it now (or nobody: it is gone) */
    if (setup < 0) {
        hull_result_not_started(r, &e, x->id);
        return 0;
    }
    x->have_ctx = true;
    /* The init and its network namespace exist; the program does not yet. */
    if (ns_attach(x, &rt, err) < 0)
        return -1;
    /* Only the sandbox may hold the write ends now, so EOF means it is done. */
    hull_closep(&x->out[1]);
    hull_closep(&x->err[1]);
    hull_closep(&x->in_fd);
    hull_closep(&x->status[1]);

    hull_sandbox_cpu_start(&x->cpu, x->c.cgroup, x->c.launch.pid, p->cpu_time_ms);
    uint64_t start = hull_monotonic_ns();
    if (hull_sync_send(x->c.launch.sync_fd, SYNC_START, 0, &e) < 0 ||
        hull_wait_exec(x->c.launch.sync_fd, &e) < 0) {
        hull_result_not_started(r, &e, x->id);
        kill_all(x);
        hull_reap(x->c.launch.pid); /* as above */
    } else {
        ns_supervise(x, start);
    }
    /* Every process of the sandbox is gone: its veth, lease and rules go
     * now, not after the copy-outs. */
    if (hull_sandbox_net_detach(&x->net, &e) < 0) {
        hull_warn("sandbox %s: %s", x->id, hull_error_msg(e));
        if (r->verdict != HULL_VERDICT_INTERNAL_ERROR)
            internal_error(r, &e);
        hull_error_free(&e); /* warned above (and kept as the verdict's error) */
    }
    /* Copy out of the /tmp the init handed us: still readable by fd. */
    if (p->n_copy_out) {
        r->files = calloc(p->n_copy_out, sizeof(*r->files));
        uint64_t budget = p->copy_out_max;
        for (size_t i = 0; r->files && i < p->n_copy_out; i++) {
            hull_sandbox_copy_out(x->c.launch.exported_fd, &p->copy_out[i], &budget, p->cancel_fd,
                                  &r->files[i]);
            r->n_files++;
        }
        /* Stopped from outside while copying: the run is killed, not ok
         * with files missing (what was not whole was not written). */
        if (hull_sandbox_cancelled(p->cancel_fd) && r->verdict != HULL_VERDICT_INTERNAL_ERROR &&
            r->verdict != HULL_VERDICT_BAD_COMMAND)
            r->verdict = HULL_VERDICT_KILLED;
    }
    if (hull_container_destroy(&rt, x->c.dirfd, &x->c.cs, &e) < 0) {
        hull_warn("sandbox %s: cleanup: %s", x->id, hull_error_msg(e));
        if (r->verdict != HULL_VERDICT_INTERNAL_ERROR)
            internal_error(r, &e);
        hull_error_free(&e); /* warned above (and kept as the verdict's error) */
    }
    return 0;
}

static int ns_run(const struct hull_policy *p, struct hull_result *r, hull_error *err)
{
    /* The host ids first (the image's layers are mapped to them), released
     * last: no other run may have them while a process of this one lives. */
    cleanup_sandbox_ids struct hull_sandbox_ids ids = {.lock = -1};
    if (hull_policy_validate(p, err) < 0 || hull_sandbox_ids_claim(p, &ids, err) < 0)
        return -1;
    /* Released once the sandbox is gone: the image's mount and its use
     * mark outlive every process that runs from it. */
    cleanup_sandbox_host_files struct hull_sandbox_host_files hf = {.stacked = NULL};
    cleanup_sandbox_image struct hull_sandbox_image si = {.open = false};
    struct hull_policy eff;
    /* The host files before the image: when they cannot be idmapped to
     * the sandbox's block, its base is the shared block's, and the
     * image's layers are mapped to that. */
    if (hull_sandbox_image_open(p, &si, &eff, true, err) < 0 ||
        hull_sandbox_host_files_mount(&hf, p, &ids, err) < 0 ||
        hull_sandbox_image_mount(&si, &eff, ids.base, err) < 0)
        return -1;
    p = &eff;
    cleanup_free char *rootfs = NULL; /* freed after x is released */
    __attribute__((cleanup(run_release))) struct run x = {.p = p,
                                                          .r = r,
                                                          .in_fd = -1,
                                                          .in_write = -1,
                                                          .in_src = -1,
                                                          .ids = &ids,
                                                          .user = si.has_user ? &si.user : NULL,
                                                          .out = {-1, -1},
                                                          .err = {-1, -1},
                                                          .status = {-1, -1}};
    if (ns_prepare(&x, &rootfs, err) < 0)
        return -1;
    hull_sandbox_host_files_warn(&hf);
    hull_sandbox_image_result(&si, r);
    if (ns_launch(&x, err) < 0) {
        hull_result_free(r); /* no result on an error: nothing for the caller to free */
        return -1;
    }
    return 0;
}

const struct hull_sandbox_provider hull_provider_namespaces = {
    .name = "namespaces",
    .run = ns_run,
};

int hull_sandbox_run(const struct hull_policy *p, struct hull_result *r, hull_error *err)
{
    memset(r, 0, sizeof(*r));
    /* Every result names the level asked for, one that ended before the
     * program started (an internal_error) too. */
    r->isolation = p->isolation;
    /* Refused before anything is made, rather than run with less isolation
     * than the policy says: every level runs the program as host uids of
     * its own and enforces memory, pids and CPU limits with cgroups, and an
     * unprivileged caller can do neither. */
    if (hull_rootless())
        return hull_error_set(err, EPERM,
                              "needs root (running as uid %u%s): the sandbox runs the program "
                              "as unprivileged host uids of its own and enforces its limits "
                              "with cgroups, which other users cannot do; for a rootless "
                              "container use 'hull spec --rootless' and 'hull run'",
                              (unsigned)geteuid(), geteuid() == 0 ? " in a user namespace" : "");
    const struct hull_sandbox_provider *prov =
        p->isolation == HULL_ISOLATION_MICROVM ? &hull_provider_microvm : &hull_provider_namespaces;
    /* Each provider says itself, precisely, what the host lacks for it
     * (hull_vm_oneshot names the missing QEMU, KVM or image). */
    return prov->run(p, r, err);
}
