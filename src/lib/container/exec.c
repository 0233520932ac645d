/* `exec`: a new process inside a running container.
 *
 * A first child joins every namespace of the container's init (user first,
 * so the rest are judged against it) and clones the real process with
 * CLONE_PARENT, so it lands in the container's pid namespace yet stays our
 * child. We put that process in the container's cgroup and apply rlimits
 * from outside before it runs anything; it then takes the container's
 * credentials, capabilities and seccomp filter exactly like the init.
 */
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "container/container.h"
#include "container/process.h"
#include "container/state.h"
#include "container/sync.h"
#include "linux/cgroup.h"
#include "linux/creds.h"
#include "linux/namespaces.h"
#include "linux/proctitle.h"
#include "linux/terminal.h"
#include "util/error.h"
#include "util/fs.h"
#include "util/json.h"
#include "util/log.h"
#include "util/proc.h"
#include "util/strv.h"

/* setns order: user first, pid and time last (they only apply to children). */
static const enum hull_ns_type join_order[] = {HULL_NS_USER, HULL_NS_MNT, HULL_NS_NET,
                                               HULL_NS_IPC,  HULL_NS_UTS, HULL_NS_CGROUP,
                                               HULL_NS_PID,  HULL_NS_TIME};

struct exec_ctx {
    struct hull_spec *spec;   /* the container's config, as created */
    struct hull_process proc; /* the process to run */
    struct hull_seccomp_filter *seccomp;
    struct hull_cgroup *cgroup;
    int ns_fds[HULL_NS_COUNT];
    int root_fd; /* the init's root, when it shares our mount namespace; else -1 */
    pid_t init_pid;
    int sync_fd, child_fd;
    int preserve_fds;
    const int *stdio; /* NULL: inherit ours */
    bool ctty;        /* stdio[0] becomes the controlling terminal */
};

/* Open the init's namespaces that differ from ours. */
static int open_namespaces(struct exec_ctx *x, hull_error *err)
{
    for (int t = 0; t < HULL_NS_COUNT; t++) {
        x->ns_fds[t] = -1;
        char theirs[64], ours[64];
        const char *name = hull_ns_proc_name(t);
        snprintf(theirs, sizeof(theirs), "/proc/%d/ns/%s", (int)x->init_pid, name);
        snprintf(ours, sizeof(ours), "/proc/self/ns/%s", name);
        struct stat a, b;
        if (stat(theirs, &a) < 0) {
            if (errno == ENOENT && t == HULL_NS_TIME)
                continue; /* kernel without time namespaces */
            return hull_error_errno(err, "open %s namespace of the container", name);
        }
        if (stat(ours, &b) == 0 && a.st_ino == b.st_ino && a.st_dev == b.st_dev)
            continue;
        x->ns_fds[t] = open(theirs, O_RDONLY | O_CLOEXEC);
        if (x->ns_fds[t] < 0)
            return hull_error_errno(err, "open %s namespace of the container", name);
    }
    /* No mount namespace to join (the container has none of its own): the
     * root that setns would have given is the init's chroot. */
    if (x->ns_fds[HULL_NS_MNT] < 0) {
        char root[64];
        snprintf(root, sizeof(root), "/proc/%d/root", (int)x->init_pid);
        x->root_fd = open(root, O_PATH | O_DIRECTORY | O_CLOEXEC);
        if (x->root_fd < 0)
            return hull_error_errno(err, "open the container's root");
    }
    return 0;
}

static void close_namespaces(struct exec_ctx *x)
{
    for (int t = 0; t < HULL_NS_COUNT; t++)
        if (x->ns_fds[t] >= 0) {
            close(x->ns_fds[t]);
            x->ns_fds[t] = -1;
        }
    if (x->root_fd >= 0)
        close(x->root_fd);
    x->root_fd = -1;
}

/* exec_child's steps before the exec: 0, or -1 with *err set. */
static int exec_child_prepare(struct exec_ctx *x, struct hull_proc_plan *plan, hull_error *err)
{
    struct hull_sync_msg m;
    if (hull_sync_expect(x->child_fd, SYNC_CGROUP_DONE, &m, err) < 0)
        return -1;
    if (x->proc.terminal) {
        int master, slave;
        if (hull_pty_open(&master, &slave, x->proc.console_height, x->proc.console_width, err) <
                0 ||
            hull_sync_send_fd(x->child_fd, SYNC_PTY, master, err) < 0)
            return -1;
        close(master);
        if (hull_pty_become_console(slave, err) < 0)
            return -1;
    }
    if (chdir(x->proc.cwd) < 0) {
        hull_error_errno(err, "process.cwd: %s", x->proc.cwd);
        hull_proc_mark_cwd_error(err);
        return -1;
    }
    if (hull_proc_resolve(plan, err) < 0 || hull_proc_finish(plan, err) < 0)
        return -1;
    return 0;
}

/* The process that will exec, inside the container. */
__attribute__((noreturn)) static void exec_child(struct exec_ctx *x)
{
    hull_error err = NULL;
    struct hull_proc_plan plan = {
        .proc = &x->proc,
        .lx = &x->spec->linux_,
        .seccomp = x->seccomp,
        .new_session = !x->proc.terminal,
        .ctty = x->ctty && !x->proc.terminal,
        .preserve_fds = x->preserve_fds,
        .error_fd = -1,
    };
    if (exec_child_prepare(x, &plan, &err) == 0)
        hull_proc_exec(&plan, x->child_fd);
    hull_sync_send_error(x->child_fd, err);
    _exit(1);
}

/* join_child's steps: hide our argv, join, enter the root, clone. 0 with
 * *pid set (to 0 in the clone itself), or -1 with *err set. */
static int join_and_clone(struct exec_ctx *x, pid_t *pid, hull_error *err)
{
    /* Nor read our command line (host paths) from /proc/<pid>/cmdline,
     * which dumpability does not guard, before the process execs. */
    if (hull_proc_hide_host_argv("hull-exec", err) < 0)
        return -1;
    if (hull_ns_join(x->ns_fds, join_order, sizeof(join_order) / sizeof(join_order[0]), err) < 0)
        return -1;
    /* Into the init's root (held by fd since before the pid was checked). */
    if (x->root_fd >= 0 && (fchdir(x->root_fd) < 0 || chroot(".") < 0 || chdir("/") < 0))
        return hull_error_errno(err, "enter the container's root");
    *pid = (pid_t)syscall(SYS_clone, CLONE_PARENT, NULL, NULL, NULL, NULL);
    if (*pid < 0)
        return hull_error_errno(err, "clone");
    return 0;
}

/* Joins the namespaces, then clones the exec'd process as our parent's child. */
__attribute__((noreturn)) static void join_child(struct exec_ctx *x)
{
    hull_error err = NULL;
    /* The caller's chosen stdio, before fds are shed (they may be >= 3). */
    for (int i = 0; x->stdio && i < 3; i++)
        if (x->stdio[i] >= 0 && x->stdio[i] != i && dup2(x->stdio[i], i) < 0)
            _exit(1);
    int keep[HULL_NS_COUNT + 3] = {x->child_fd, hull_log_fd(), x->root_fd};
    for (int t = 0; t < HULL_NS_COUNT; t++)
        keep[3 + t] = x->ns_fds[t];
    hull_close_fds_except(3 + x->preserve_fds, keep, sizeof(keep) / sizeof(keep[0]));
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    /* Non-dumpable before entering: a process already in the container must
     * not reach our memory or /proc/<pid>/exe, the hull binary (CVE-2019-5736). */
    prctl(PR_SET_DUMPABLE, 0);
    pid_t pid = -1;
    if (join_and_clone(x, &pid, &err) < 0) {
        hull_sync_send_error(x->child_fd, err);
        _exit(1);
    }
    if (pid == 0) {
        prctl(PR_SET_DUMPABLE, 0);
        exec_child(x);
    }
    hull_sync_send(x->child_fd, SYNC_PID, pid, NULL);
    _exit(0);
}

static int parse_user(const char *s, struct hull_user *u, hull_error *err)
{
    char *end;
    unsigned long uid = strtoul(s, &end, 10);
    if (end == s || (*end != '\0' && *end != ':') || uid > UINT32_MAX - 1)
        return hull_error_set(err, EINVAL, "--user: '%s' must be UID[:GID]", s);
    u->uid = (uint32_t)uid;
    if (*end == ':') {
        const char *g = end + 1;
        unsigned long gid = strtoul(g, &end, 10);
        if (end == g || *end != '\0' || gid > UINT32_MAX - 1)
            return hull_error_set(err, EINVAL, "--user: '%s' must be UID[:GID]", s);
        u->gid = (uint32_t)gid;
    }
    return 0;
}

/* Put `add` into env, replacing an entry with the same key. */
static int env_set(char ***env, const char *add)
{
    size_t kl = strcspn(add, "=");
    for (char **e = *env; e && *e; e++)
        if (strncmp(*e, add, kl) == 0 && (*e)[kl] == '=') {
            char *d = strdup(add);
            if (d == NULL)
                return -1;
            free(*e);
            *e = d;
            return 0;
        }
    return hull_strv_append(env, add);
}

/* What a --process file leaves out and the container's process decides
 * (as with runc): its capabilities (every set empty when it names none)
 * and its oomScoreAdj. */
static int inherit_from_container(struct exec_ctx *x, struct hull_process *p, hull_error *err)
{
    struct hull_process c = {0};
    json_object *proc = hj_get(x->spec->json, "process");
    if (proc != NULL && hull_process_parse(proc, "process", &c, err) < 0) {
        hull_process_free(&c);
        return -1;
    }
    if (!p->has_caps) {
        p->caps = c.caps;
        memset(&c.caps, 0, sizeof(c.caps));
        p->has_caps = true;
    }
    if (!p->has_oom_score_adj) {
        p->has_oom_score_adj = c.has_oom_score_adj;
        p->oom_score_adj = c.oom_score_adj;
    }
    hull_process_free(&c);
    return 0;
}

/* The process to run: --process, or the container's process overridden. */
static int build_process(struct exec_ctx *x, const struct hull_exec_opts *o, hull_error *err)
{
    struct hull_process *p = &x->proc;
    if (o->process_path || o->process_json) {
        json_object *doc = NULL;
        cleanup_free char *text = NULL;
        size_t len = 0;
        if (o->process_path &&
            hull_read_file_max(o->process_path, HULL_SPEC_MAX, &text, &len, err) < 0)
            return hull_error_prefix(err, "--process");
        if (o->process_json
                ? hj_parse(o->process_json, strlen(o->process_json), "process", &doc, err) < 0
                : hj_parse(text, len, "process", &doc, err) < 0)
            return hull_error_prefix(err, "--process");
        int r = hull_process_parse(doc, "process", p, err);
        json_object_put(doc);
        if (r < 0)
            return hull_error_prefix(err, "--process %s", o->process_path ? o->process_path : "");
        hull_caps_warn_unknown(&p->caps, "--process: process.capabilities");
        /* Without capabilities of its own the process gets the container's
         * (none when config.json names none), as runc does: never those of
         * the root that runs us. Likewise its oomScoreAdj, never our
         * caller's (older conmon runs us at -1000). */
        if (inherit_from_container(x, p, err) < 0)
            return -1;
    } else {
        if (o->args == NULL || o->args[0] == NULL)
            return hull_error_set(err, EINVAL, "no command given (and no --process)");
        /* Start from the container's own process, as runc does. */
        json_object *proc = hj_get(x->spec->json, "process");
        if (hull_process_parse(proc, "process", p, err) < 0)
            return -1;
        p->has_caps = true; /* none named: none, as for the container's init */
        hull_strv_free(p->args);
        p->args = hull_strv_dup(o->args);
        p->terminal = o->tty;
        if (p->args == NULL)
            return hull_error_set(err, ENOMEM, "out of memory");
    }
    for (char *const *e = o->env; e && *e; e++) {
        if (strchr(*e, '=') == NULL || **e == '=')
            return hull_error_set(err, EINVAL, "--env: '%s' must be KEY=VALUE", *e);
        if (env_set(&p->env, *e) < 0)
            return hull_error_set(err, ENOMEM, "out of memory");
    }
    if (o->cwd) {
        if (o->cwd[0] != '/')
            return hull_error_set(err, EINVAL, "--cwd: '%s' must be an absolute path", o->cwd);
        free(p->cwd);
        p->cwd = strdup(o->cwd);
    }
    if (o->user && parse_user(o->user, &p->user, err) < 0)
        return -1;
    size_t ng = hull_strv_len(o->additional_gids);
    if (ng) {
        uint32_t *g = calloc(ng, sizeof(uint32_t));
        if (g == NULL)
            return hull_error_set(err, ENOMEM, "out of memory");
        for (size_t i = 0; i < ng; i++) {
            char *end;
            unsigned long v = strtoul(o->additional_gids[i], &end, 10);
            if (*end != '\0' || end == o->additional_gids[i] || v > UINT32_MAX - 1) {
                free(g);
                return hull_error_set(err, EINVAL, "--additional-gids: '%s' is not a gid",
                                      o->additional_gids[i]);
            }
            g[i] = (uint32_t)v;
        }
        free(p->user.additional_gids);
        p->user.additional_gids = g;
        p->user.n_additional_gids = ng;
    }
    for (char *const *c = o->caps; c && *c; c++) {
        char ***sets[] = {&p->caps.bounding, &p->caps.effective, &p->caps.permitted,
                          &p->caps.inheritable, &p->caps.ambient};
        /* As for process.capabilities: a malformed name is refused, a
         * CAP_ name unknown here is a warning and ignored. */
        if (!hull_cap_name_ok(*c))
            return hull_error_set(err, EINVAL, "--cap: '%s' is not a capability name (CAP_...)",
                                  *c);
        if (hull_cap_valid(*c) < 0) {
            hull_warn("--cap: unknown capability '%s' (not known to this kernel or libcap); "
                      "ignored",
                      *c);
            continue;
        }
        for (size_t i = 0; i < 5; i++)
            if (hull_strv_append(sets[i], *c) < 0)
                return hull_error_set(err, ENOMEM, "out of memory");
        p->has_caps = true;
    }
    if (o->no_new_privs)
        p->no_new_privileges = true;
    if (o->apparmor_profile) {
        free(p->apparmor_profile);
        p->apparmor_profile = strdup(o->apparmor_profile);
    }
    if (o->process_label) {
        free(p->selinux_label);
        p->selinux_label = strdup(o->process_label);
    }
    if (p->terminal && o->detach && o->console_socket == NULL)
        return hull_error_set(err, EINVAL,
                              "a detached process with a terminal needs --console-socket");
    /* Before anything runs: the process would start on a pty nobody gets. */
    if (p->terminal && o->console_socket && hull_console_socket_check(o->console_socket, err) < 0)
        return -1;
    /* Relayed in the foreground: the pty starts at the caller's window size
     * (made with it, so the program never sees 0x0); SIGWINCH relays changes. */
    struct winsize ws;
    if (p->terminal && !o->detach && o->console_socket == NULL && !p->console_height &&
        ioctl(STDIN_FILENO, TIOCGWINSZ, &ws) == 0 && ws.ws_row && ws.ws_col) {
        p->console_height = ws.ws_row;
        p->console_width = ws.ws_col;
    }
    return hull_proc_check_lsm(p, "process", err);
}

static void exec_ctx_free(struct exec_ctx *x)
{
    close_namespaces(x);
    if (x->sync_fd >= 0)
        close(x->sync_fd);
    if (x->child_fd >= 0)
        close(x->child_fd);
    hull_process_free(&x->proc);
    hull_seccomp_filter_free(x->seccomp);
    hull_cgroup_free(x->cgroup);
    hull_spec_free(x->spec);
}

/* The launched process, from the host: cgroup, rlimits, pty, then its exec. */
static int launch_finish(struct exec_ctx *x, const struct hull_exec_opts *o, pid_t pid, int *master,
                         hull_error *err)
{
    struct hull_sync_msg m;
    /* From the host, before the process runs anything of its own. */
    if ((x->cgroup && hull_cgroup_enter(x->cgroup, pid, err) < 0) ||
        hull_rlimits_raise(pid, &x->proc, err) < 0 ||
        hull_oom_score_adj_apply(pid, &x->proc, err) < 0 ||
        hull_sync_send(x->sync_fd, SYNC_CGROUP_DONE, 0, err) < 0)
        return -1;
    if (x->proc.terminal) {
        if (hull_sync_expect(x->sync_fd, SYNC_PTY, &m, err) < 0)
            return -1;
        *master = m.fd;
        if (o->console_socket) {
            if (hull_console_socket_send(o->console_socket, *master, err) < 0)
                return -1;
            close(*master);
            *master = -1;
        }
    }
    return hull_wait_exec(x->sync_fd, err);
}

/* Start the process; on return it has exec'd (or failed). *pid and *master set. */
static int launch(struct exec_ctx *x, const struct hull_exec_opts *o, pid_t *pid, int *master,
                  hull_error *err)
{
    int sv[2];
    struct hull_sync_msg m;
    *pid = -1;
    *master = -1;
    if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) < 0)
        return hull_error_errno(err, "socketpair");
    x->sync_fd = sv[0];
    x->child_fd = sv[1];
    pid_t joiner = fork();
    if (joiner < 0)
        return hull_error_errno(err, "fork");
    if (joiner == 0)
        join_child(x);
    close(x->child_fd);
    x->child_fd = -1;
    close_namespaces(x);
    int r = hull_sync_expect(x->sync_fd, SYNC_PID, &m, err);
    hull_reap(joiner);
    if (r < 0)
        return -1;
    *pid = m.value;
    if (launch_finish(x, o, *pid, master, err) < 0) {
        /* Not left half-started: the process is killed, its pty closed. */
        kill(*pid, SIGKILL);
        hull_reap(*pid);
        *pid = -1;
        if (*master >= 0)
            close(*master);
        *master = -1;
        return -1;
    }
    return 0;
}

/* The process relayed in the foreground, or its pid handed back (detach). */
static int exec_and_wait(struct exec_ctx *x, const struct hull_exec_opts *o, int *exit_status,
                         hull_error *err)
{
    sigset_t fwd, old;
    int sfd = -1;
    if (!o->detach) {
        hull_forwardable_signals(&fwd);
        sigprocmask(SIG_BLOCK, &fwd, &old);
        sfd = signalfd(-1, &fwd, SFD_CLOEXEC);
    }
    int ret = -1;
    pid_t pid;
    int master;
    if (launch(x, o, &pid, &master, err) == 0) {
        ret = 0;
        if (o->pid_file) {
            char buf[32];
            int n = snprintf(buf, sizeof(buf), "%d", (int)pid);
            if (hull_write_path_atomic(o->pid_file, buf, (size_t)n, 0644, err) < 0) {
                hull_error_prefix(err, "--pid-file");
                ret = -1;
                /* A failed exec leaves no process behind (runc kills it too). */
                kill(pid, SIGKILL);
                hull_reap(pid);
            }
        }
        if (ret == 0 && o->detach && o->pid)
            *o->pid = pid;
        if (!o->detach && ret == 0) {
            /* Keystrokes go to the container's pty as they are, as with run. */
            struct termios saved;
            bool raw =
                master >= 0 && isatty(STDIN_FILENO) && hull_tty_raw(STDIN_FILENO, &saved) == 0;
            *exit_status = hull_exit_code(hull_supervise(pid, sfd, master));
            if (raw)
                hull_tty_restore(STDIN_FILENO, &saved);
        }
        if (master >= 0)
            close(master);
    }
    if (!o->detach) {
        close(sfd);
        sigprocmask(SIG_SETMASK, &old, NULL);
    }
    return ret;
}

/* A step of joining the init failed: when the init died meanwhile (a kill
 * or delete --force in between), say so, not which step met its end. */
static int exec_failed(const struct hull_cstate *cs, hull_error *err)
{
    if (hull_pid_alive(cs->pid, cs->pid_start) && !hull_pid_exiting(cs->pid))
        return -1;
    hull_debug("exec %s: %s", cs->id, hull_error_msg(*err));
    hull_error_free(err);
    return hull_error_set(err, ESRCH, "the container stopped");
}

static int do_exec(const struct hull_runtime *rt, const char *id, const struct hull_exec_opts *o,
                   int *exit_status, hull_error *err)
{
    /* Released in reverse: the state dir's fd, the state, then the context. */
    __attribute__((cleanup(exec_ctx_free))) struct exec_ctx x = {.sync_fd = -1,
                                                                 .child_fd = -1,
                                                                 .root_fd = -1,
                                                                 .preserve_fds = o->preserve_fds,
                                                                 .stdio = o->stdio,
                                                                 .ctty = o->ctty};
    for (int t = 0; t < HULL_NS_COUNT; t++)
        x.ns_fds[t] = -1;
    cleanup_cstate struct hull_cstate cs = {0};
    cleanup_close int dirfd = -1;

    if (hull_cstate_open(rt->root, id, false, &dirfd, err) < 0 ||
        hull_cstate_read(dirfd, &cs, err) < 0)
        return -1;
    if (cs.cgroup && hull_cgroup_load(cs.cgroup, &x.cgroup, err) < 0)
        return -1;
    bool frozen = false;
    if (x.cgroup && hull_pid_alive(cs.pid, cs.pid_start) &&
        hull_cgroup_is_frozen(x.cgroup, &frozen, err) < 0)
        return -1;
    enum hull_status st = hull_cstate_status(dirfd, &cs, frozen);
    if (st != HULL_STATUS_RUNNING && st != HULL_STATUS_CREATED)
        return hull_error_set(err, EINVAL, "cannot exec in a container that is %s",
                              hull_status_name(st));
    x.init_pid = cs.pid;
    const char *text = cs.config ? hj_to_string(cs.config) : "{}";
    if (hull_spec_parse(text, strlen(text), cs.bundle, &x.spec, err) < 0 ||
        build_process(&x, o, err) < 0)
        return -1;
    if (x.spec->linux_.seccomp && hull_seccomp_compile(x.spec->linux_.seccomp, &x.seccomp, err) < 0)
        return -1;
    if (open_namespaces(&x, err) < 0)
        return exec_failed(&cs, err);
    /* The namespaces we hold must be the init we checked, not a reused pid. */
    if (!hull_pid_alive(cs.pid, cs.pid_start))
        return hull_error_set(err, ESRCH, "the container stopped");
    /* The lock guards state changes, not the life of an exec'd process. */
    close(dirfd);
    dirfd = -1;
    if (exec_and_wait(&x, o, exit_status, err) < 0)
        return exec_failed(&cs, err);
    return 0;
}

int hull_container_exec(const struct hull_runtime *rt, const char *id,
                        const struct hull_exec_opts *o, int *exit_status, hull_error *err)
{
    *exit_status = 0;
    if (do_exec(rt, id, o, exit_status, err) < 0)
        return hull_error_prefix(err, "exec %s", id);
    return 0;
}
