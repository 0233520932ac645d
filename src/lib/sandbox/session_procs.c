/* Background processes of a long-lived sandbox: started exactly like an
 * exec (session_exec.c: the same policy, layout, namespaces, cgroup, user
 * and seccomp filter) and handed to the caller, who supervises them in its
 * own loop (hulld's keeper: keeper_procs.c).
 *
 * A pty is made on the host's /dev/ptmx by us: the sandbox gets only the
 * terminal's end (opened through the master with TIOCGPTPEER, never by a
 * path), as its stdio and controlling terminal. The master stays in the
 * caller's process; nothing in the sandbox can reach it or another pty. */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "linux/terminal.h"
#include "sandbox/session.h"
#include "util/clock.h"
#include "util/error.h"
#include "util/json.h"
#include "util/strv.h"

void hull_session_proc_close(struct hull_session_proc *sp)
{
    hull_closep(&sp->in);
    hull_closep(&sp->out);
    hull_closep(&sp->err);
}

/* Our ends in sp, the child's in child[3]. -1 with err. */
static int proc_stdio(struct hull_session_proc *sp, int child[3], bool with_stdin, unsigned rows,
                      unsigned cols, hull_error *err)
{
    int p[2];
    if (rows && cols) {
        int master, slave;
        if (hull_pty_open(&master, &slave, rows, cols, err) < 0)
            return hull_error_prefix(err, "pty");
        sp->in = master;
        child[0] = slave;
        if ((child[1] = fcntl(slave, F_DUPFD_CLOEXEC, 3)) < 0 ||
            (child[2] = fcntl(slave, F_DUPFD_CLOEXEC, 3)) < 0 ||
            (sp->out = fcntl(master, F_DUPFD_CLOEXEC, 3)) < 0)
            return hull_error_errno(err, "pty: dup");
        fcntl(master, F_SETFL, O_NONBLOCK); /* the same open file as out */
        return 0;
    }
    if (pipe2(p, O_CLOEXEC | O_NONBLOCK) < 0)
        return hull_error_errno(err, "pipe");
    sp->out = p[0], child[1] = p[1];
    if (pipe2(p, O_CLOEXEC | O_NONBLOCK) < 0)
        return hull_error_errno(err, "pipe");
    sp->err = p[0], child[2] = p[1];
    if (with_stdin) {
        if (pipe2(p, O_CLOEXEC) < 0)
            return hull_error_errno(err, "pipe");
        child[0] = p[0], sp->in = p[1];
        fcntl(sp->in, F_SETFL, O_NONBLOCK);
    } else if ((child[0] = open("/dev/null", O_RDONLY | O_CLOEXEC)) < 0) {
        return hull_error_errno(err, "/dev/null");
    }
    /* The child's ends block as a program expects. */
    fcntl(child[1], F_SETFL, 0);
    fcntl(child[2], F_SETFL, 0);
    return 0;
}

static int proc_start(struct hull_session *s, struct hull_sandbox_layout *lay, bool pty,
                      int child[3], struct hull_session_proc *sp, hull_error *err)
{
    struct hull_cgroup_stats before;
    hull_session_stats(s, &before);
    sp->oom_before = before.oom_kill_events;
    sp->pids_before = before.pids_max_events;
    struct hull_runtime rt = {.root = HULL_SANDBOX_ROOT};
    struct hull_exec_opts o = {
        .process_json = hj_to_string(hj_get(lay->spec->json, "process")),
        .stdio = child,
        .detach = true,
        .pid = &sp->pid,
        .ctty = pty,
    };
    int ignored;
    sp->start_ns = hull_monotonic_ns();
    if (hull_container_exec(&rt, s->id, &o, &ignored, err) < 0)
        return -1;
    sp->pidfd = (int)syscall(SYS_pidfd_open, sp->pid, 0);
    if (sp->pidfd >= 0)
        fcntl(sp->pidfd, F_SETFD, FD_CLOEXEC);
    return 0;
}

int hull_session_spawn(struct hull_session *s, const struct hull_policy *p, bool with_stdin,
                       unsigned rows, unsigned cols, struct hull_session_proc *sp, hull_error *err)
{
    memset(sp, 0, sizeof(*sp));
    sp->pid = -1;
    sp->pidfd = sp->in = sp->out = sp->err = -1;
    struct hull_sandbox_layout lay;
    if (hull_session_command_layout(s, p, "start", &lay, err) < 0)
        return -1;
    int child[3] = {-1, -1, -1};
    bool pty = rows && cols;
    int ret = proc_stdio(sp, child, with_stdin, rows, cols, err);
    if (ret == 0)
        ret = proc_start(s, &lay, pty, child, sp, err);
    for (int i = 0; i < 3; i++)
        hull_closep(&child[i]);
    hull_sandbox_layout_free(&lay);
    if (ret < 0)
        hull_session_proc_close(sp);
    return ret;
}

void hull_session_proc_result(struct hull_session *s, const struct hull_policy *p,
                              const struct hull_session_proc *sp, int status, uint64_t cpu_ms,
                              uint64_t maxrss_kb, int stop, struct hull_result *r)
{
    memset(r, 0, sizeof(*r));
    r->isolation = s->policy.isolation;
    r->wall_time_ms = (hull_monotonic_ns() - sp->start_ns) / 1000000ull;
    r->cpu_time_ms = cpu_ms;
    r->max_memory_kb = maxrss_kb;
    struct hull_cgroup_stats before = {0}, after;
    before.oom_kill_events = sp->oom_before;
    before.pids_max_events = sp->pids_before;
    hull_session_stats(s, &after);
    hull_session_verdict(r, p, status, stop, &before, &after);
}
