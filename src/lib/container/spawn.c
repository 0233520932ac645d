/* The runtime's side of launching an init (see launch.h).
 *
 * Fast path: one clone() that creates every new namespace at once, user
 * namespace first by construction, so all others are owned by it. When a
 * namespace is joined by path, or a time namespace needs offsets before its
 * first process, a short-lived stage-1 child joins/unshares first and then
 * clones the init with CLONE_PARENT, so the init is still our child.
 */
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <linux/sched.h>
#include <linux/securebits.h>
#include <sys/wait.h>
#include <unistd.h>

#include "container/hooks.h"
#include "container/launch.h"
#include "container/sync.h"
#include "linux/creds.h"
#include "linux/namespaces.h"
#include "linux/proctitle.h"
#include "util/error.h"
#include "util/fs.h"
#include "util/log.h"

/* fork() semantics (the child returns 0, shares nothing) with namespace
 * flags, born into the cgroup2 directory cgroup_fd when it is >= 0. */
static pid_t raw_clone(unsigned long flags, int cgroup_fd)
{
    struct clone_args a = {
        .flags = flags | (cgroup_fd >= 0 ? CLONE_INTO_CGROUP : 0),
        .exit_signal = SIGCHLD,
        .cgroup = cgroup_fd >= 0 ? (uint64_t)cgroup_fd : 0,
    };
    return (pid_t)syscall(SYS_clone3, &a, sizeof(a));
}

static bool needs_stage1(const struct hull_linux *lx)
{
    return hull_ns_any_join(lx) ||
           (lx->ns[HULL_NS_TIME].enabled && lx->ns[HULL_NS_TIME].path == NULL);
}

/* Stage 1's steps up to the init's clone: 0 with *init set (to 0 in the
 * init itself), or -1. */
static int stage1_steps(struct hull_launch *l, pid_t *init, hull_error *err)
{
    const struct hull_linux *lx = &l->spec->linux_;
    struct hull_sync_msg m;
    /* Join the user namespace first so the other joins and unshares are
     * judged against it; without one, join the rest while still host-root. */
    static const enum hull_ns_type order[] = {HULL_NS_USER,   HULL_NS_MNT, HULL_NS_NET,
                                              HULL_NS_IPC,    HULL_NS_UTS, HULL_NS_PID,
                                              HULL_NS_CGROUP, HULL_NS_TIME};
    if (hull_ns_join(l->join_fds, order, sizeof(order) / sizeof(order[0]), err) < 0)
        return -1;

    int flags = hull_ns_new_flags(lx) & ~CLONE_NEWCGROUP;
    if (flags & CLONE_NEWUSER) {
        if (unshare(CLONE_NEWUSER) < 0)
            return hull_error_errno(err, "unshare user namespace");
        if (hull_sync_send(l->child_fd, SYNC_USERMAP, getpid(), err) < 0 ||
            hull_sync_expect(l->child_fd, SYNC_USERMAP_DONE, &m, err) < 0)
            return -1;
        if (setresgid(0, 0, 0) < 0 || setresuid(0, 0, 0) < 0)
            return hull_error_errno(err, "become root in the user namespace");
    }
    if (unshare(flags & ~CLONE_NEWUSER) < 0)
        return hull_error_errno(err, "unshare namespaces");
    /* Offsets can only be set before the first process enters. */
    if ((flags & CLONE_NEWTIME) && hull_ns_write_time_offsets(getpid(), lx, err) < 0)
        return -1;

    *init = (pid_t)syscall(SYS_clone, CLONE_PARENT, NULL, NULL, NULL, NULL);
    if (*init < 0)
        return hull_error_errno(err, "clone init");
    return 0;
}

/* Stage 1: join what must be joined, create what must be created, then
 * clone the init as our parent's child. Runs in a child of the runtime. */
__attribute__((noreturn)) static void stage1_main(struct hull_launch *l)
{
    hull_error err = NULL;
    hull_launch_shed_fds(l, true);
    l->sync_fd = -1;
    prctl(PR_SET_PDEATHSIG, SIGKILL);

    pid_t init = -1;
    /* Before any namespace is joined: a pid namespace joined by path lets
     * its processes see the init born from here, host argv and all. */
    if (hull_proc_hide_host_argv("hull-init", &err) < 0 || stage1_steps(l, &init, &err) < 0) {
        hull_sync_send_error(l->child_fd, err);
        _exit(1);
    }
    if (init == 0)
        hull_init_main(l);
    hull_sync_send(l->child_fd, SYNC_PID, init, NULL);
    _exit(0);
}

int hull_reap(pid_t pid)
{
    int status;
    while (waitpid(pid, &status, 0) < 0)
        if (errno != EINTR)
            return -1;
    return status;
}

static void kill_init(struct hull_launch *l)
{
    if (l->pid > 0) {
        kill(l->pid, SIGKILL);
        hull_reap(l->pid);
        l->pid = -1;
    }
}

static int start_stage1(struct hull_launch *l, hull_error *err)
{
    pid_t s1 = fork();
    if (s1 < 0)
        return hull_error_errno(err, "fork");
    if (s1 == 0)
        stage1_main(l);
    struct hull_sync_msg m;
    for (;;) {
        if (hull_sync_recv(l->sync_fd, &m, err) < 0)
            break;
        if (m.type == SYNC_USERMAP) {
            if (hull_ns_write_id_maps(m.value, &l->spec->linux_, err) < 0)
                break;
            if (hull_sync_send(l->sync_fd, SYNC_USERMAP_DONE, 0, err) < 0)
                break;
            continue;
        }
        if (m.type == SYNC_PID) {
            l->pid = m.value;
            hull_reap(s1);
            return 0;
        }
        if (m.type == SYNC_ERROR) {
            hull_error_set(err, 0, "%s", m.text);
            (*err)->code = m.value;
        } else {
            hull_error_set(err, EPROTO, "sync: unexpected message %d from stage 1", m.type);
        }
        break;
    }
    kill(s1, SIGKILL);
    hull_reap(s1);
    return -1;
}

/* SYNC_BIND_SOURCE: a bind source the init cannot look up from its user
 * namespace (a directory only host root may enter on the way), which runc
 * and crun bind. A short-lived helper enters the init's mount namespace as
 * host root and opens the source there with O_PATH: the same path the init
 * would have resolved, in the same mount namespace, so the init can clone
 * the mount from the fd and the kernel still locks the host mount's flags.
 * Only the lookup is done with host rights; the init mounts as before. */
static int send_bind_source(struct hull_launch *l, int index, hull_error *err)
{
    const struct hull_spec *spec = l->spec;
    if (index < 0 || (size_t)index >= spec->n_mounts || !spec->mounts[index].bind)
        return hull_error_set(err, EPROTO, "sync: bad bind source request %d", index);
    const char *src = spec->mounts[index].source;
    char p[64];
    snprintf(p, sizeof(p), "/proc/%d/ns/mnt", (int)l->pid);
    cleanup_close int ns = open(p, O_RDONLY | O_CLOEXEC);
    if (ns < 0)
        return hull_error_errno(err, "open %s", p);
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) < 0)
        return hull_error_errno(err, "socketpair");
    pid_t h = fork();
    if (h < 0) {
        close(sv[0]);
        close(sv[1]);
        return hull_error_errno(err, "fork");
    }
    if (h == 0) {
        hull_error e = NULL;
        /* Host root in the init's mount namespace: it sees what the init
         * sees; it opens one path read-nothing (O_PATH) and exits. */
        if (setns(ns, CLONE_NEWNS) < 0) {
            /* A runtime without host privileges (rootless) reaches no more
             * than the init: the source stays out of reach. */
            hull_error_set(&e, EACCES,
                           "%s: Permission denied from the container's user namespace, and the "
                           "runtime may not enter its mount namespace to open it (%s)",
                           src, strerror(errno));
        } else {
            int fd = open(src, O_PATH | O_CLOEXEC);
            if (fd < 0)
                hull_error_errno(&e, "%s", src);
            else if (hull_sync_send_fd(sv[1], SYNC_BIND_SOURCE, fd, &e) == 0)
                _exit(0);
        }
        hull_sync_send_error(sv[1], e);
        _exit(1);
    }
    close(sv[1]);
    struct hull_sync_msg m;
    int r = hull_sync_expect(sv[0], SYNC_BIND_SOURCE, &m, err);
    close(sv[0]);
    hull_reap(h);
    if (r < 0)
        return hull_error_prefix(err, "mounts[%d].source", index);
    r = hull_sync_send_fd(l->sync_fd, SYNC_BIND_SOURCE, m.fd, err);
    close(m.fd);
    return r;
}

/* The init's user namespace gets an owner of its own (launch.h). */
static bool owned_userns(const struct hull_launch *l)
{
    return l->userns_owner && (hull_ns_new_flags(&l->spec->linux_) & CLONE_NEWUSER);
}

/* A new user namespace is owned by its creator's effective uid at the
 * clone. To give it another owner, this thread takes that uid as its
 * effective one for the clone alone and root back right after. */
struct owner_switch {
    int securebits;
    /* What the kernel resets when a thread's euid changes, put back after:
     * its parent-death signal (a runner must still die with its worker)
     * and the process's dumpable flag. */
    int pdeathsig, dumpable;
    pid_t ppid;
};

static int owner_enter(uint32_t owner, struct owner_switch *sw, hull_error *err)
{
    sw->ppid = getppid();
    if ((sw->securebits = prctl(PR_GET_SECUREBITS)) < 0 ||
        prctl(PR_GET_PDEATHSIG, &sw->pdeathsig) < 0 || (sw->dumpable = prctl(PR_GET_DUMPABLE)) < 0)
        return hull_error_errno(err, "read securebits, parent-death signal and dumpable flag");
    /* Keep host root's capabilities across the uid change: the clone still
     * needs them (CLONE_INTO_CGROUP writes into root's cgroups). */
    if (prctl(PR_SET_SECUREBITS, sw->securebits | SECBIT_NO_SETUID_FIXUP) < 0)
        return hull_error_errno(err, "set securebits");
    /* Safe: the raw syscall changes this thread's effective and fs uid
     * only (glibc's setresuid would change every thread's), the saved uid
     * stays 0 to come back, and nothing but the clone runs until then. */
    if (syscall(SYS_setresuid, -1, owner, -1) < 0) {
        hull_error_errno(err, "take uid %u to own the user namespace", owner);
        prctl(PR_SET_SECUREBITS, sw->securebits);
        return -1;
    }
    return 0;
}

static void owner_leave(const struct owner_switch *sw)
{
    /* Cannot fail: the saved uid is 0 and CAP_SETUID was kept. Should it
     * anyway, this thread must not go on as another uid. */
    if (syscall(SYS_setresuid, -1, 0, -1) < 0 || prctl(PR_SET_SECUREBITS, sw->securebits) < 0 ||
        prctl(PR_SET_DUMPABLE, sw->dumpable) < 0 || prctl(PR_SET_PDEATHSIG, sw->pdeathsig) < 0)
        abort();
    /* The parent died while no signal was armed: take it now. */
    if (sw->pdeathsig && getppid() != sw->ppid)
        raise(sw->pdeathsig);
}

/* Whether the init's new network namespace can be made by the runtime
 * after the clone (launch.h, netns_late), before the runtime has stepped
 * out of the cgroups: the caller allows it (nothing of its own looks at
 * the init's namespace before READY), a new one (not joined, not given),
 * no user namespace (the runtime's namespace must own it, as it owns the
 * clone's), and no limits written only after the step out (the init is
 * told CGROUP_DONE before it). The cgroup part is asked once stepped in. */
static bool netns_late_possible(const struct hull_launch *l, int flags)
{
    const struct hull_resources *late = l->late_limits;
    return l->netns_late_ok && (flags & CLONE_NEWNET) && !(flags & CLONE_NEWUSER) &&
           !l->netns_given && !l->rootless && l->cgroup &&
           (late == NULL ||
            !(late->has_memory_limit || late->has_memory_swap || late->has_pids_limit));
}

/* Start the init: through stage 1 when namespaces must be joined first,
 * else cloned directly (born in its cgroup when it can be). With
 * netns_late set on return, *kept holds the runtime's step into the
 * cgroups, still active, for make_late_netns. */
static int spawn_init(struct hull_launch *l, bool *in_cgroup, struct hull_cgroup_self *kept,
                      hull_error *err)
{
    const struct hull_linux *lx = &l->spec->linux_;
    l->ipc_after_userns = false; /* stage 1 unshares it as root of the user ns already */
    if (needs_stage1(lx))
        return l->netns_given || l->userns_owner
                   ? hull_error_set(err, EINVAL,
                                    "a given network namespace or user namespace owner needs a "
                                    "direct clone")
                   : start_stage1(l, err);
    int flags = hull_ns_new_flags(lx) & ~CLONE_NEWCGROUP;
    /* A new IPC namespace made by this clone would get its mqueue root
     * owned by our uid, unmapped in the new user namespace (/dev/mqueue
     * then shows as nobody's): the init makes it once it is that
     * namespace's root, as stage 1 and runc do. */
    l->ipc_after_userns = (flags & CLONE_NEWUSER) && (flags & CLONE_NEWIPC);
    if (l->ipc_after_userns)
        flags &= ~CLONE_NEWIPC;
    bool owned = owned_userns(l);
    /* Such an init runs as the owner's uid, which prlimit(2) from here may
     * not reach: it inherits our limits instead, raised (never lowered) to
     * its own first. They bound this process alone, which needs no less. */
    if (owned && hull_rlimits_raise(0, l->spec->process, err) < 0)
        return -1;
    /* A given network namespace: this thread steps into it for the clone
     * only, so the init is born there (a setns of the init itself could
     * not be: it is root of its own user namespace only). */
    cleanup_close int own_net = -1;
    if (l->netns_given) {
        if (!(flags & CLONE_NEWNET))
            return hull_error_set(err, EINVAL, "a given network namespace needs the spec's own");
        if ((own_net = open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC)) < 0)
            return hull_error_errno(err, "open /proc/thread-self/ns/net");
        /* Safe: host root joins an empty namespace of its own pool, for
         * this thread alone, and leaves it right after the clone. */
        if (setns(l->netns_fd, CLONE_NEWNET) < 0)
            return hull_error_errno(err, "join the pooled network namespace");
        flags &= ~CLONE_NEWNET;
    }
    /* Born in its cgroup rather than moved there (see cgroup.h); if
     * stepping in fails, the move below does it the slow way. */
    /* netns_late: the init, which waits for its network namespace anyway,
     * joins the hierarchies other than memory itself (hull_cgroup_join_rest),
     * so this thread steps into the memory one alone (what the namespaces
     * are charged to). */
    bool late = netns_late_possible(l, flags) && hull_cgroup_memory_v1(l->cgroup);
    struct hull_cgroup_self self = {.v2fd = -1};
    if (l->cgroup && l->cgroup_at_birth) {
        hull_error e = NULL;
        if ((late ? hull_cgroup_step_in_memory(l->cgroup, &self, &e)
                  : hull_cgroup_step_in(l->cgroup, &self, &e)) < 0)
            hull_debug("cgroup at birth: %s", hull_error_msg(e));
        hull_error_free(&e);
    }
    /* Charged where the clone's would be: only from inside the memory
     * cgroup. A failed step leaves the init to hull_cgroup_enter. */
    l->netns_late = late && hull_cgroup_self_in_memory(l->cgroup, &self);
    if (l->netns_late)
        flags &= ~CLONE_NEWNET;
    /* After the cgroup step: a cgroup v1 move needs an effective uid 0. */
    struct owner_switch sw;
    bool owner_failed = owned && owner_enter(l->userns_owner, &sw, err) < 0;
    l->pid = owner_failed ? -1 : raw_clone((unsigned long)flags, self.active ? self.v2fd : -1);
    if (l->pid == 0)
        hull_init_main(l);
    int clone_errno = errno;
    if (owned && !owner_failed)
        owner_leave(&sw);
    if (own_net >= 0 && setns(own_net, CLONE_NEWNET) < 0) {
        /* Not back home: nothing more may run in this thread's namespace. */
        hull_cgroup_step_out(&self);
        if (l->pid > 0)
            kill_init(l);
        return hull_error_errno(err, "return to the host network namespace");
    }
    bool born_in = self.active;
    if (l->netns_late && l->pid > 0)
        *kept = self; /* stepped out once the namespace is made */
    else
        hull_cgroup_step_out(&self);
    errno = clone_errno;
    if (owner_failed)
        return -1;
    if (l->pid < 0)
        return hull_error_errno(err, "clone");
    *in_cgroup = born_in;
    /* The init cannot become root of its user namespace before this. */
    if ((flags & CLONE_NEWUSER) && hull_ns_write_id_maps(l->pid, lx, err) < 0)
        return -1;
    return 0;
}

/* SYNC_HOOKS: run prestart and createRuntime, then let the init go on. */
static int run_create_hooks(struct hull_launch *l, char *(*hook_state)(pid_t pid, void *arg),
                            void *arg, hull_error *err)
{
    cleanup_free char *state = hook_state ? hook_state(l->pid, arg) : NULL;
    const struct hull_hooks *hk = &l->spec->hooks;
    /* prestart belongs to `start` in the runtime-spec (config.md:
     * "after the start operation is called"), so it reads "created";
     * createRuntime is part of create: still "creating". */
    cleanup_free char *started =
        hk->n_prestart ? hull_hooks_state_with_status(state, "created") : NULL;
    if (hull_hooks_run(hk->prestart, hk->n_prestart, "prestart", started ? started : state, err) <
            0 ||
        hull_hooks_run(hk->create_runtime, hk->n_create_runtime, "createRuntime", state, err) < 0)
        return -1;
    return hull_sync_send_text(l->sync_fd, SYNC_HOOKS_DONE, state ? state : "{}", err);
}

/* SYNC_SECCOMP: hand the init's seccomp listener fd to the agent. */
static int send_seccomp_listener(struct hull_launch *l, int fd,
                                 char *(*hook_state)(pid_t pid, void *arg), void *arg,
                                 hull_error *err)
{
    cleanup_close int listener = fd;
    const struct hull_seccomp *sc = l->spec->linux_.seccomp;
    cleanup_free char *state = hook_state ? hook_state(l->pid, arg) : NULL;
    return hull_seccomp_send_listener(sc->listener_path, listener, sc->listener_metadata,
                                      state ? state : "{}", l->pid, err);
}

/* Serve the init's requests until it is ready (0) or fails (-1). */
static int serve_init(struct hull_launch *l, char *(*hook_state)(pid_t pid, void *arg), void *arg,
                      hull_error *err)
{
    struct hull_sync_msg m;
    for (;;) {
        if (hull_sync_recv(l->sync_fd, &m, err) < 0)
            return -1;
        switch (m.type) {
        case SYNC_HOOKS:
            if (run_create_hooks(l, hook_state, arg, err) < 0)
                return -1;
            break;
        case SYNC_PTY:
            l->pty_master = m.fd;
            break;
        case SYNC_BIND_SOURCE:
            if (send_bind_source(l, m.value, err) < 0)
                return -1;
            break;
        case SYNC_EXPORT:
            l->exported_fd = m.fd;
            break;
        case SYNC_SECCOMP:
            if (send_seccomp_listener(l, m.fd, hook_state, arg, err) < 0)
                return -1;
            break;
        case SYNC_READY:
            return 0;
        case SYNC_ERROR:
            hull_error_set(err, 0, "%s", m.text);
            (*err)->code = m.value;
            return -1;
        default:
            return hull_error_set(err, EPROTO, "sync: unexpected message %d", m.type);
        }
    }
}

/* netns_late: the init's network namespace, made by this thread while it
 * is still in the container's cgroups (so the namespace is charged there,
 * as the clone's would be) and the init already builds its root; sent to
 * the init, which joins it before its first mount that may see it (sysfs). */
static int make_late_netns(struct hull_launch *l, hull_error *err)
{
    cleanup_close int own = open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC);
    if (own < 0)
        return hull_error_errno(err, "open /proc/thread-self/ns/net");
    /* Safe: this thread alone enters a new, empty namespace and comes
     * straight back; nothing else runs in it meanwhile. */
    if (unshare(CLONE_NEWNET) < 0)
        return hull_error_errno(err, "create the network namespace");
    cleanup_close int made = open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC);
    int made_errno = errno;
    if (setns(own, CLONE_NEWNET) < 0)
        return hull_error_errno(err, "return to the host network namespace");
    if (made < 0) {
        errno = made_errno;
        return hull_error_errno(err, "open the new network namespace");
    }
    return hull_sync_send_fd(l->sync_fd, SYNC_NETNS, made, err);
}

/* netns_late: the init already builds its root while this thread still
 * sends to it, so a send may find it gone (EPIPE): it failed on its own
 * (a bad mount) and said why before it exited. That reason, queued on the
 * socket, is the error rather than the broken pipe. Reading cannot block:
 * the init's end is closed. */
static int init_reason(struct hull_launch *l, hull_error *err)
{
    int code = hull_error_code(*err);
    if (code != EPIPE && code != ECONNRESET)
        return -1;
    struct hull_sync_msg m;
    cleanup_hull_error hull_error e = NULL;
    while (hull_sync_recv(l->sync_fd, &m, &e) == 0) {
        if (m.fd >= 0)
            close(m.fd);
        if (m.type == SYNC_ERROR) {
            hull_error_set(err, m.value, "%s", m.text);
            return -1;
        }
    }
    return -1;
}

static int launch_steps(struct hull_launch *l, char *(*hook_state)(pid_t pid, void *arg), void *arg,
                        hull_error *err)
{
    const struct hull_spec *spec = l->spec;
    bool in_cgroup = false;
    struct hull_cgroup_self kept = {.v2fd = -1};
    if (spawn_init(l, &in_cgroup, &kept, err) < 0) {
        hull_cgroup_step_out(&kept);
        return -1;
    }
    hull_ns_close_joins(l->join_fds);
    close(l->child_fd);
    l->child_fd = -1;

    /* From the runtime, with host privileges: cgroup placement before the
     * init runs anything, and limits the init itself could not raise. With
     * netns_late the init places itself and there are no late limits. */
    if (!l->netns_late) {
        if (l->cgroup && !in_cgroup && hull_cgroup_enter(l->cgroup, l->pid, err) < 0)
            return -1;
        /* Only now, with the runtime back in its own cgroup: a memory or
         * pids limit set while it stepped in would have applied to it. */
        if (l->cgroup && hull_cgroup_apply(l->cgroup, l->late_limits, err) < 0)
            return -1;
    }
    /* netns_late: CGROUP_DONE at once, then the namespace, made while the
     * runtime is still stepped into the cgroups (kept), then the step out.
     * A send the init broke off is told by the init's own error. */
    bool failed = (!owned_userns(l) && hull_rlimits_raise(l->pid, spec->process, err) < 0) ||
                  hull_oom_score_adj_apply(l->pid, spec->process, err) < 0 ||
                  hull_sync_send(l->sync_fd, SYNC_CGROUP_DONE, 0, err) < 0 ||
                  (l->netns_late && make_late_netns(l, err) < 0);
    hull_cgroup_step_out(&kept);
    if (failed)
        return l->netns_late ? init_reason(l, err) : -1;
    if (l->setting_up)
        l->setting_up(l->pid, l->setting_up_arg);
    return serve_init(l, hook_state, arg, err);
}

/* A launch that failed part-way: the init killed, every fd it held closed. */
static void launch_abort(struct hull_launch *l)
{
    kill_init(l);
    hull_ns_close_joins(l->join_fds);
    if (l->child_fd >= 0)
        close(l->child_fd);
    close(l->sync_fd);
    l->sync_fd = l->child_fd = -1;
    if (l->pty_master >= 0)
        close(l->pty_master);
    if (l->exported_fd >= 0)
        close(l->exported_fd);
    l->pty_master = l->exported_fd = -1;
}

int hull_launch_spawn(struct hull_launch *l, char *(*hook_state)(pid_t pid, void *arg), void *arg,
                      hull_error *err)
{
    l->pid = -1;
    l->pty_master = -1;
    l->exported_fd = -1;
    l->netns_late = false;

    if (hull_ns_open_joins(&l->spec->linux_, l->join_fds, err) < 0)
        return -1;
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) < 0) {
        hull_ns_close_joins(l->join_fds);
        return hull_error_errno(err, "socketpair");
    }
    l->sync_fd = sv[0];
    l->child_fd = sv[1];
    if (launch_steps(l, hook_state, arg, err) < 0) {
        launch_abort(l);
        return -1;
    }
    return 0;
}
