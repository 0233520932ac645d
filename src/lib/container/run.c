/* `run` in the foreground: hull stays as the container's parent, forwards
 * the signals it receives, relays the terminal when there is one, and
 * deletes the container when its init exits. No extra process: the runtime
 * itself is the supervisor for exactly as long as the container lives. */
#include <errno.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <sys/wait.h>
#include <termios.h>
#include <unistd.h>

#include "container/container.h"
#include "container/hooks.h"
#include "container/sync.h"
#include "linux/terminal.h"
#include "util/error.h"
#include "util/log.h"

/* Signals that report a fault in hull itself stay unblocked. */
void hull_forwardable_signals(sigset_t *set)
{
    sigfillset(set);
    int keep[] = {SIGSEGV, SIGBUS, SIGILL, SIGFPE, SIGTRAP, SIGABRT, SIGSYS, SIGKILL, SIGSTOP};
    for (size_t i = 0; i < sizeof(keep) / sizeof(keep[0]); i++)
        sigdelset(set, keep[i]);
}

static void relay(int from, int to, bool *open_)
{
    char buf[16384];
    ssize_t n = read(from, buf, sizeof(buf));
    if (n <= 0) {
        if (n == 0 || (errno != EINTR && errno != EAGAIN))
            *open_ = false;
        return;
    }
    for (ssize_t off = 0; off < n;) {
        ssize_t w = write(to, buf + off, (size_t)(n - off));
        if (w < 0) {
            if (errno == EINTR)
                continue;
            *open_ = false;
            return;
        }
        off += w;
    }
}

int hull_supervise(pid_t pid, int sfd, int master)
{
    bool in_open = master >= 0, out_open = master >= 0;
    for (;;) {
        struct pollfd p[3] = {{.fd = sfd, .events = POLLIN},
                              {.fd = out_open ? master : -1, .events = POLLIN},
                              {.fd = in_open ? STDIN_FILENO : -1, .events = POLLIN}};
        if (poll(p, 3, -1) < 0 && errno != EINTR)
            return -1;
        if (p[1].revents)
            relay(master, STDOUT_FILENO, &out_open);
        if (p[2].revents)
            relay(STDIN_FILENO, master, &in_open);
        if (!(p[0].revents & POLLIN))
            continue;
        struct signalfd_siginfo si;
        if (read(sfd, &si, sizeof(si)) != sizeof(si))
            continue;
        if (si.ssi_signo == SIGCHLD) {
            int status;
            pid_t r;
            while ((r = waitpid(-1, &status, WNOHANG)) > 0) {
                if (r == pid) {
                    /* Whatever the container wrote last is still in the pty. */
                    while (out_open) {
                        struct pollfd q = {.fd = master, .events = POLLIN};
                        if (poll(&q, 1, 0) <= 0)
                            break;
                        relay(master, STDOUT_FILENO, &out_open);
                    }
                    return status;
                }
            }
            continue;
        }
        if (si.ssi_signo == SIGWINCH) {
            if (master >= 0)
                hull_tty_copy_winsize(STDIN_FILENO, master);
            continue;
        }
        kill(pid, (int)si.ssi_signo);
    }
}

/* After START: EOF on the sync socket means execve succeeded (the socket
 * is close-on-exec); a message means it failed. */
int hull_wait_exec(int sync_fd, hull_error *err)
{
    struct hull_sync_msg m;
    if (hull_sync_recv(sync_fd, &m, err) < 0) {
        if (hull_error_code(*err) == EPIPE) {
            hull_error_free(err); /* EOF: close-on-exec closed it, execve succeeded */
            return 0;
        }
        return -1;
    }
    if (m.type == SYNC_ERROR) {
        hull_error_set(err, 0, "%s", m.text);
        (*err)->code = m.value;
        return -1;
    }
    return hull_error_set(err, EPROTO, "sync: unexpected message %d", m.type);
}

/* The run's container, whatever became of it, destroyed. */
static void destroy_after_run(const struct hull_runtime *rt, const struct hull_create_opts *o,
                              struct hull_container_ctx *c)
{
    cleanup_close int dirfd = -1;
    cleanup_hull_error hull_error e = NULL;
    if (c->dirfd >= 0) {
        dirfd = c->dirfd;
        c->dirfd = -1;
    } else if (hull_cstate_open(rt->root, o->id, false, &dirfd, &e) < 0) {
        /* Someone may have deleted it meanwhile (delete --force): fine. */
        hull_debug("run %s: cleanup: %s", o->id, hull_error_msg(e));
        return;
    }
    cleanup_cstate struct hull_cstate cs = {0};
    bool same = false;
    if (hull_cstate_read_known(dirfd, c->state_text, &cs, &same, &e) < 0) {
        /* Likewise: a delete --force under way removes the state first. */
        hull_debug("run %s: cleanup: %s", o->id, hull_error_msg(e));
        return;
    }
    /* state.json as this run wrote it (no `update` since): the record in
     * hand is the file's, without parsing it again. */
    if (hull_container_destroy(rt, dirfd, same ? &c->cs : &cs, &e) < 0)
        hull_warn("run %s: cleanup: %s", o->id, hull_error_msg(e));
}

/* The created init started, its poststart hooks run, and supervised to its
 * end; 0 with *exit_status, or -1 when it never exec'd (then it is killed). */
static int run_started(struct hull_container_ctx *c, const struct hull_create_opts *o, int sfd,
                       int master, int *exit_status, hull_error *err)
{
    if (hull_sync_send(c->launch.sync_fd, SYNC_START, 0, err) < 0 ||
        hull_wait_exec(c->launch.sync_fd, err) < 0) {
        hull_error_prefix(err, "run %s", o->id);
        kill(c->launch.pid, SIGKILL);
        waitpid(c->launch.pid, NULL, 0);
        return -1;
    }
    if (c->spec->hooks.n_poststart) {
        struct hull_state st = {.id = c->cs.id,
                                .bundle = c->cs.bundle,
                                .oci_version = c->cs.oci_version,
                                .created = c->cs.created,
                                .owner = c->cs.owner,
                                .rootfs = c->cs.rootfs,
                                .pid = c->launch.pid,
                                .status = HULL_STATUS_RUNNING,
                                .annotations = c->cs.annotations};
        cleanup_free char *sj = hull_state_to_json(&st, false);
        char ctx[NAME_MAX + 16];
        snprintf(ctx, sizeof(ctx), "run %s", o->id);
        /* runtime-spec: a failing poststart hook is logged, the rest run. */
        hull_hooks_run_all(c->spec->hooks.poststart, c->spec->hooks.n_poststart, "poststart", sj,
                           ctx);
    }
    /* The lock is only for verbs racing us; others (kill, state) must work. */
    close(c->dirfd);
    c->dirfd = -1;

    int status = hull_supervise(c->launch.pid, sfd, master);
    *exit_status = hull_exit_code(status);
    hull_debug("run %s: init %d exited, status %d", o->id, (int)c->launch.pid, *exit_status);
    return 0;
}

static int run_container(const struct hull_runtime *rt, const struct hull_create_opts *o, int sfd,
                         int *exit_status, hull_error *err)
{
    struct hull_container_ctx c;
    struct hull_setup_opts so = {.foreground = true, .verb = "run"};
    if (hull_container_setup(rt, o, &so, &c, err) < 0)
        return -1;

    struct termios saved;
    bool raw = false;
    int master = c.launch.pty_master;
    if (master >= 0 && isatty(STDIN_FILENO)) {
        raw = hull_tty_raw(STDIN_FILENO, &saved) == 0;
        hull_tty_copy_winsize(STDIN_FILENO, master);
    }
    int ret = run_started(&c, o, sfd, master, exit_status, err);
    if (raw)
        hull_tty_restore(STDIN_FILENO, &saved);
    /* --keep: a program that ran stays, stopped, for `delete` (as runc);
     * one that never started is removed all the same. */
    if (!(o->keep && ret == 0))
        destroy_after_run(rt, o, &c);
    hull_container_ctx_release(&c);
    return ret;
}

static int run_foreground(const struct hull_runtime *rt, const struct hull_create_opts *o,
                          int *exit_status, hull_error *err)
{
    sigset_t fwd, old;
    hull_forwardable_signals(&fwd);
    /* Blocked before the init exists, so no signal falls between the cracks;
     * the init unblocks everything before execve. */
    sigprocmask(SIG_BLOCK, &fwd, &old);
    int sfd = signalfd(-1, &fwd, SFD_CLOEXEC);
    if (sfd < 0) {
        sigprocmask(SIG_SETMASK, &old, NULL);
        return hull_error_errno(err, "run %s: signalfd", o->id);
    }
    int ret = run_container(rt, o, sfd, exit_status, err);
    close(sfd);
    sigprocmask(SIG_SETMASK, &old, NULL);
    return ret;
}

int hull_exit_code(int status)
{
    if (WIFEXITED(status))
        return WEXITSTATUS(status);
    if (WIFSIGNALED(status))
        return 128 + WTERMSIG(status);
    return 255;
}

int hull_container_run(const struct hull_runtime *rt, const struct hull_create_opts *opts,
                       bool detach, int *exit_status, hull_error *err)
{
    *exit_status = 0;
    if (!detach)
        return run_foreground(rt, opts, exit_status, err);
    if (hull_container_create(rt, opts, err) < 0)
        return -1;
    if (hull_container_start(rt, opts->id, err) < 0) {
        hull_error e = NULL;
        if (hull_container_delete(rt, opts->id, true, &e) < 0)
            hull_warn("run %s: cleanup: %s", opts->id, hull_error_msg(e));
        hull_error_free(&e);
        return -1;
    }
    return 0;
}
