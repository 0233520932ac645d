/* A command in a long-lived sandbox: exec'd into the sandbox's namespaces,
 * cgroup, user and seccomp filter (container/exec.c), with the process
 * document a run of the same command would get (layout.c), so an exec is
 * confined exactly like a run. Its own clocks and output limits apply; the
 * memory, pids and CPU quota are the sandbox's, shared with what else runs
 * in it. */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "sandbox/session.h"
#include "util/clock.h"
#include "util/error.h"
#include "util/log.h"
#include "util/json.h"
#include "util/strv.h"

struct xrun {
    const struct hull_policy *p;
    struct hull_result *r;
    pid_t pid;
    int out, err, in; /* our ends */
    size_t in_off;
};

enum stop {
    STOP_NONE = HULL_STOP_NONE,
    STOP_WALL = HULL_STOP_WALL,
    STOP_OUTPUT = HULL_STOP_OUTPUT,
    STOP_CANCEL = HULL_STOP_CANCEL
};

/* Its process group (it made its own session) and the process itself. */
static void kill_cmd(pid_t pid)
{
    kill(-pid, SIGKILL);
    kill(pid, SIGKILL);
}

/* Feed stdin, collect output, watch the wall clock and the cancel fd until
 * the command exits. Background processes it leaves may hold the pipes
 * open: once it is gone, what is buffered is read and that is the output. */
static int supervise(struct xrun *x, enum stop *why, struct rusage *ru)
{
    const struct hull_policy *p = x->p;
    int pfd = (int)syscall(SYS_pidfd_open, x->pid, 0);
    uint64_t deadline = hull_monotonic_ns() + p->wall_time_ms * 1000000ull;
    int status = 0;
    bool out_open = true, err_open = true;
    *why = STOP_NONE;
    for (;;) {
        struct pollfd f[5] = {
            {.fd = out_open ? x->out : -1, .events = POLLIN},
            {.fd = err_open ? x->err : -1, .events = POLLIN},
            {.fd = pfd, .events = POLLIN},
            {.fd = x->in, .events = POLLOUT},
            {.fd = *why == STOP_NONE ? p->cancel_fd : -1, .events = POLLIN},
        };
        uint64_t now = hull_monotonic_ns();
        int timeout = now >= deadline ? 0 : (int)((deadline - now) / 1000000ull) + 1;
        if (pfd < 0 && timeout > 20)
            timeout = 20; /* no pidfd: look for the exit now and then */
        if (poll(f, 5, *why == STOP_NONE ? timeout : 20) < 0 && errno != EINTR)
            break;
        bool over = false;
        if (f[0].revents && !hull_output_drain(x->out, &x->r->out, p->output_bytes, &over))
            out_open = false;
        if (f[1].revents && !hull_output_drain(x->err, &x->r->err, p->output_bytes, &over))
            err_open = false;
        if (f[3].revents) {
            size_t left = p->stdin_len - x->in_off;
            ssize_t w = left ? write(x->in, p->stdin_data + x->in_off, left) : 0;
            if (w > 0)
                x->in_off += (size_t)w;
            if (w < 0 || x->in_off == p->stdin_len)
                hull_closep(&x->in);
        }
        if (*why == STOP_NONE) {
            if (over)
                *why = STOP_OUTPUT;
            else if (f[4].revents)
                *why = STOP_CANCEL;
            else if (hull_monotonic_ns() >= deadline)
                *why = STOP_WALL;
            if (*why != STOP_NONE)
                kill_cmd(x->pid);
        }
        if (wait4(x->pid, &status, WNOHANG, ru) == x->pid)
            break;
    }
    if (out_open)
        hull_output_drain(x->out, &x->r->out, p->output_bytes, &(bool){false});
    if (err_open)
        hull_output_drain(x->err, &x->r->err, p->output_bytes, &(bool){false});
    if (pfd >= 0)
        close(pfd);
    return status;
}

void hull_session_stats(struct hull_session *s, struct hull_cgroup_stats *st)
{
    memset(st, 0, sizeof(*st));
    hull_error e = NULL;
    if (s->c.cgroup && hull_cgroup_stats(s->c.cgroup, st, &e) < 0) {
        hull_debug("sandbox %s: stats: %s", s->id, hull_error_msg(e));
        hull_error_free(&e);
    }
}

void hull_session_verdict(struct hull_result *r, const struct hull_policy *p, int status, int why,
                          const struct hull_cgroup_stats *before,
                          const struct hull_cgroup_stats *after)
{
    if (WIFEXITED(status))
        r->exit_code = WEXITSTATUS(status);
    else if (WIFSIGNALED(status))
        r->signal = WTERMSIG(status);
    /* From the accounting alone: the program can raise a SIGXCPU itself,
     * and RLIMIT_CPU's comes only with its usage past the limit. */
    bool cpu_over = r->cpu_time_ms >= p->cpu_time_ms;
    if (why == STOP_CANCEL)
        r->verdict = HULL_VERDICT_KILLED;
    else if (why == STOP_WALL)
        r->verdict = HULL_VERDICT_WALL_TIME_LIMIT;
    else if (cpu_over && (r->signal || r->exit_code))
        r->verdict = HULL_VERDICT_CPU_TIME_LIMIT;
    else if (why == STOP_OUTPUT)
        r->verdict = HULL_VERDICT_OUTPUT_LIMIT;
    else if (after->oom_kill_events > before->oom_kill_events)
        r->verdict = HULL_VERDICT_MEMORY_LIMIT;
    else if (after->pids_max_events > before->pids_max_events && (r->signal || r->exit_code))
        r->verdict = HULL_VERDICT_PIDS_LIMIT;
    else if (r->signal)
        r->verdict = HULL_VERDICT_SIGNALED;
    else if (r->exit_code)
        r->verdict = HULL_VERDICT_EXIT_NONZERO;
    else
        r->verdict = HULL_VERDICT_OK;
}

/* The policy of this exec: the command's own fields on the sandbox's. */
static int exec_policy(const struct hull_session *s, const struct hull_policy *p,
                       struct hull_policy *ep, hull_error *err)
{
    *ep = s->policy;
    ep->argv = p->argv;
    ep->workdir = p->workdir ? p->workdir : s->policy.workdir; /* an image's WorkingDir */
    ep->cpu_time_ms = p->cpu_time_ms;
    ep->wall_time_ms = p->wall_time_ms;
    ep->output_bytes = p->output_bytes;
    ep->env = NULL;
    if (hull_policy_validate(ep, err) < 0)
        return -1;
    ep->env = p->env ? hull_strv_dup(p->env) : NULL;
    if (s->policy.env) {
        char **both =
            calloc(hull_strv_len(s->policy.env) + hull_strv_len(p->env) + 1, sizeof(char *));
        size_t n = 0;
        for (char **e = s->policy.env; both && *e; e++)
            both[n++] = strdup(*e);
        for (char **e = p->env; both && e && *e; e++)
            both[n++] = strdup(*e); /* later wins: the command's own over the sandbox's */
        hull_strv_free(ep->env);
        ep->env = both;
    }
    return 0;
}

/* The command's stdio: pipes for its output (and for stdin data), else
 * /dev/null. -1 with errno. */
static int open_stdio(struct xrun *x, int child[3], bool with_stdin)
{
    int pipes[2];
    if (pipe2(pipes, O_CLOEXEC) < 0)
        return -1;
    x->out = pipes[0], child[1] = pipes[1];
    if (pipe2(pipes, O_CLOEXEC) < 0)
        return -1;
    x->err = pipes[0], child[2] = pipes[1];
    if (with_stdin) {
        if (pipe2(pipes, O_CLOEXEC) < 0)
            return -1;
        child[0] = pipes[0], x->in = pipes[1];
        fcntl(x->in, F_SETFL, O_NONBLOCK);
    } else if ((child[0] = open("/dev/null", O_RDONLY | O_CLOEXEC)) < 0) {
        return -1;
    }
    fcntl(x->out, F_SETFL, O_NONBLOCK);
    fcntl(x->err, F_SETFL, O_NONBLOCK);
    return 0;
}

/* The command runs, or its failure to start is its verdict (in x->r). */
static void run_cmd(struct hull_session *s, struct hull_sandbox_layout *lay, struct xrun *x,
                    int child[3])
{
    struct hull_result *r = x->r;
    struct hull_cgroup_stats before, after;
    hull_session_stats(s, &before);
    struct hull_runtime rt = {.root = HULL_SANDBOX_ROOT};
    struct hull_exec_opts o = {
        .process_json = hj_to_string(hj_get(lay->spec->json, "process")),
        .stdio = child,
        .detach = true,
        .pid = &x->pid,
    };
    int ignored;
    hull_error e = NULL;
    uint64_t start = hull_monotonic_ns();
    if (hull_container_exec(&rt, s->id, &o, &ignored, &e) < 0) {
        hull_result_not_started(r, &e, s->id); /* kept in r->error */
        return;
    }
    for (int i = 0; i < 3; i++)
        hull_closep(&child[i]);
    enum stop why;
    struct rusage ru = {0};
    int status = supervise(x, &why, &ru);
    r->wall_time_ms = (hull_monotonic_ns() - start) / 1000000ull;
    r->cpu_time_ms = (uint64_t)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) * 1000ull +
                     (uint64_t)(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1000ull;
    r->max_memory_kb = (uint64_t)ru.ru_maxrss;
    hull_session_stats(s, &after);
    hull_session_verdict(r, x->p, status, why, &before, &after);
}

int hull_session_command_layout(struct hull_session *s, const struct hull_policy *p,
                                const char *what, struct hull_sandbox_layout *lay, hull_error *err)
{
    if (s->paused)
        return hull_error_set(err, EBUSY, "%s: the sandbox is paused", what);
    if (!hull_session_alive(s))
        return hull_error_set(err, ESRCH, "%s: the sandbox is no longer running", what);
    struct hull_policy ep;
    if (exec_policy(s, p, &ep, err) < 0)
        return -1;
    /* Process level: the session's own host uid. */
    int ret = hull_sandbox_layout(&ep, HULL_SANDBOX_EMPTY_ROOT, s->ids.base,
                                  s->img.has_user ? &s->img.user : NULL, NULL, lay, err);
    hull_strv_free(ep.env);
    return ret;
}

int hull_session_exec(struct hull_session *s, const struct hull_policy *p, struct hull_result *r,
                      hull_error *err)
{
    memset(r, 0, sizeof(*r));
    r->isolation = s->policy.isolation;
    struct hull_sandbox_layout lay;
    if (hull_session_command_layout(s, p, "exec", &lay, err) < 0)
        return -1;
    struct xrun x = {.p = p, .r = r, .pid = -1, .out = -1, .err = -1, .in = -1};
    int child[3] = {-1, -1, -1};
    int ret = 0;
    if (open_stdio(&x, child, p->stdin_data != NULL) < 0)
        ret = hull_error_errno(err, "exec: pipe");
    else
        run_cmd(s, &lay, &x, child);
    for (int i = 0; i < 3; i++)
        hull_closep(&child[i]);
    hull_closep(&x.out);
    hull_closep(&x.err);
    hull_closep(&x.in);
    hull_sandbox_layout_free(&lay);
    return ret;
}
