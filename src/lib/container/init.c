/* The container's init, from fork to execve. See launch.h for the protocol.
 *
 * This runs in a forked copy of the runtime, single-threaded, with the parsed
 * spec already in memory: no re-exec of hull, no helper process. Any failure
 * is sent to the runtime as text and the process exits; the runtime then
 * cleans up. Order matters throughout and each step says why it is where it is.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <linux/keyctl.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "container/hooks.h"
#include "container/launch.h"
#include "container/process.h"
#include "container/sync.h"
#include "linux/creds.h"
#include "linux/mounts.h"
#include "linux/netdev.h"
#include "linux/namespaces.h"
#include "linux/proctitle.h"
#include "linux/terminal.h"
#include "util/error.h"
#include "util/fs.h"
#include "util/json.h"
#include "util/log.h"

static int set_hostname(const struct hull_spec *spec, hull_error *err)
{
    if (spec->hostname && spec->hostname[0] &&
        sethostname(spec->hostname, strlen(spec->hostname)) < 0)
        return hull_error_errno(err, "hostname: %s", spec->hostname);
    if (spec->domainname && spec->domainname[0] &&
        setdomainname(spec->domainname, strlen(spec->domainname)) < 0)
        return hull_error_errno(err, "domainname: %s", spec->domainname);
    return 0;
}

/* linux.sysctl: only keys that belong to a namespace the container owns. */
static int apply_sysctl(const struct hull_spec *spec, hull_error *err)
{
    const struct hull_linux *l = &spec->linux_;
    for (char **kv = l->sysctl; kv && kv[0] && kv[1]; kv += 2) {
        const char *key = kv[0];
        bool ipc = strncmp(key, "kernel.msg", 10) == 0 || strncmp(key, "kernel.sem", 10) == 0 ||
                   strncmp(key, "kernel.shm", 10) == 0 || strncmp(key, "fs.mqueue.", 10) == 0;
        bool net = strncmp(key, "net.", 4) == 0;
        /* kernel.hostname and kernel.domainname are refused by the parser:
         * they have their own fields. */
        if (!((ipc && l->ns[HULL_NS_IPC].enabled) || (net && l->ns[HULL_NS_NET].enabled)))
            return hull_error_set(err, EPERM,
                                  "linux.sysctl: %s is not namespaced by this container's "
                                  "namespaces and would change the host",
                                  key);
        if (strstr(key, "..") != NULL || strchr(key, '/') != NULL)
            return hull_error_set(err, EINVAL, "linux.sysctl: invalid key %s", key);
        char path[PATH_MAX];
        snprintf(path, sizeof(path), "/proc/sys/%s", key);
        for (char *p = path + 10; *p; p++)
            if (*p == '.')
                *p = '/';
        if (hull_write_proc_file(path, kv[1], strlen(kv[1]), err) < 0)
            return hull_error_prefix(err, "linux.sysctl: %s", key);
    }
    return 0;
}

/* The state document with another status; NULL if it cannot be parsed. */
/* Stop dying with the runtime (unless asked to: the sandbox). Only once the
 * runtime has recorded our pid: before that, an init orphaned by a killed
 * runtime would be one nothing knows how to find. */
static int detach(struct hull_launch *l, hull_error *err)
{
    if (l->die_with_parent)
        return 0;
    if (prctl(PR_SET_PDEATHSIG, 0) < 0)
        return hull_error_errno(err, "prctl(PR_SET_PDEATHSIG)");
    return 0;
}

static int wait_for_start(struct hull_launch *l, hull_error *err)
{
    struct hull_sync_msg m;
    if (l->foreground)
        return hull_sync_expect(l->child_fd, SYNC_START, &m, err) < 0 ? -1 : detach(l, err);
    /* create: the runtime records our pid, then lets us go and exits. */
    if (hull_sync_expect(l->child_fd, SYNC_DETACH, &m, err) < 0 || detach(l, err) < 0 ||
        hull_sync_send(l->child_fd, SYNC_DETACHED, 0, err) < 0)
        return -1;
    /* The runtime is gone; `hull start` writes one byte into exec.fifo. */
    char b;
    ssize_t n;
    do {
        n = read(l->fifo_fd, &b, 1);
    } while (n < 0 && errno == EINTR);
    if (n != 1)
        return hull_error_errno(err, "wait for start");
    return 0;
}

/* hull_rootfs.open_source: the runtime opens it (see spawn.c). */
static int ask_bind_source(void *arg, size_t index, hull_error *err)
{
    struct hull_launch *l = arg;
    struct hull_sync_msg m;
    if (hull_sync_send(l->child_fd, SYNC_BIND_SOURCE, (int)index, err) < 0 ||
        hull_sync_expect(l->child_fd, SYNC_BIND_SOURCE, &m, err) < 0)
        return -1;
    if (m.fd < 0)
        return hull_error_set(err, EPROTO, "sync: no fd for mounts[%zu].source", index);
    return m.fd;
}

/* launch.netns_late: join the network namespace the runtime made for us
 * (it comes after CGROUP_DONE, once made). Before anything that sees the
 * network namespace: the first mount that may (sysfs, mounts.c), else
 * right after the mounts. */
static int enter_late_netns(void *arg, hull_error *err)
{
    struct hull_launch *l = arg;
    if (!l->netns_late)
        return 0;
    struct hull_sync_msg m;
    if (hull_sync_expect(l->child_fd, SYNC_NETNS, &m, err) < 0)
        return -1;
    if (m.fd < 0)
        return hull_error_set(err, EPROTO, "sync: no fd for the network namespace");
    /* Safe: the empty namespace the runtime made for this container alone. */
    int r = setns(m.fd, CLONE_NEWNET);
    int e = errno;
    close(m.fd);
    if (r < 0) {
        errno = e;
        return hull_error_errno(err, "join the network namespace");
    }
    l->netns_late = false;
    return 0;
}

static int init_steps(struct hull_launch *l, struct hull_proc_plan *plan, hull_error *err)
{
    const struct hull_spec *spec = l->spec;
    const struct hull_process *proc = spec->process;
    const struct hull_linux *lx = &spec->linux_;
    struct hull_sync_msg m;
    bool userns = lx->ns[HULL_NS_USER].enabled;

    /* Born in the memory cgroup alone (spawn.c, netns_late): into the
     * container's other hierarchies before anything else. */
    if (l->netns_late && hull_cgroup_join_rest(l->cgroup, err) < 0)
        return -1;
    /* Wait until the runtime wrote our id maps and put us in our cgroup:
     * nothing below may run unaccounted or as an unmapped user. */
    if (hull_sync_expect(l->child_fd, SYNC_CGROUP_DONE, &m, err) < 0)
        return -1;
    /* A rootless runtime is no more than its caller, and needed our /proc
     * files (owned by root while we are non-dumpable) until now. */
    if (l->rootless)
        prctl(PR_SET_DUMPABLE, 0);

    if (userns) {
        /* Become root of the user namespace: the mounts below are owned by it. */
        if (setresgid(0, 0, 0) < 0 || setresuid(0, 0, 0) < 0)
            return hull_error_errno(err, "become root in the user namespace (is uid/gid 0 "
                                         "mapped in linux.uidMappings/gidMappings?)");
    }
    /* Safe: a new, empty IPC namespace of our own user namespace; made now
     * so that its mqueue root belongs to the container's root (spawn.c). */
    if (l->ipc_after_userns && unshare(CLONE_NEWIPC) < 0)
        return hull_error_errno(err, "unshare IPC namespace");

    /* A new session keyring, owned by the container's root: the caller's
     * keys stay the caller's. A kernel without keyrings is not an error. */
    if (l->keyring && syscall(SYS_keyctl, KEYCTL_JOIN_SESSION_KEYRING, l->keyring) < 0 &&
        errno != ENOSYS)
        return hull_error_errno(err, "join a new session keyring");

    /* After the cgroup move, so the namespace's root is the container's cgroup. */
    if (lx->ns[HULL_NS_CGROUP].enabled && lx->ns[HULL_NS_CGROUP].path == NULL &&
        unshare(CLONE_NEWCGROUP) < 0)
        return hull_error_errno(err, "unshare cgroup namespace");

    struct hull_rootfs rfs = {
        .spec = spec,
        .cgroup = l->cgroup ? l->cgroup : l->cgroup_view,
        /* In a user namespace of its own or the runtime's (rootless): no
         * mknod, and mounts inherited from the host are locked. */
        .userns = userns || l->rootless,
        /* The caller's view is bound, never mounted anew: a user namespace
         * may not mount cgroup v1, and a new cgroup2 mount would show the
         * whole tree above the caller's own cgroup. */
        .cgroupns = l->cgroup && lx->ns[HULL_NS_CGROUP].enabled,
        .rootfd = -1,
        .extras = l->rootfs_extras,
        .host_ns = !lx->ns[HULL_NS_MNT].enabled,
        .open_source = userns ? ask_bind_source : NULL,
        .open_source_arg = l,
        .enter_netns = l->netns_late ? enter_late_netns : NULL,
        .enter_netns_arg = l,
    };
    if (hull_rootfs_prepare(&rfs, err) < 0 || enter_late_netns(l, err) < 0)
        return -1;
    if (l->export_dir) {
        cleanup_close int fd =
            hull_resolve_in_root(rfs.rootfd, l->export_dir, HULL_RESOLVE_DIRECTORY, err);
        if (fd < 0 || hull_sync_send_fd(l->child_fd, SYNC_EXPORT, fd, err) < 0)
            return hull_error_prefix(err, "export %s", l->export_dir);
    }
    if (l->loopback_up && lx->ns[HULL_NS_NET].enabled && hull_loopback_up(err) < 0)
        return -1;

    /* Hooks that need the namespaces but the host's filesystem view run
     * here, before pivot_root takes that view away. */
    const struct hull_hooks *hk = &spec->hooks;
    char *state_json = NULL;
    if (hk->n_prestart || hk->n_create_runtime || hk->n_create_container || hk->n_start_container) {
        if (hull_sync_send(l->child_fd, SYNC_HOOKS, 0, err) < 0 ||
            hull_sync_expect(l->child_fd, SYNC_HOOKS_DONE, &m, err) < 0)
            return -1;
        state_json = strdup(m.text);
        if (hull_hooks_run(hk->create_container, hk->n_create_container, "createContainer",
                           state_json, err) < 0)
            return -1;
    }

    if (hull_rootfs_pivot(&rfs, l->no_pivot, err) < 0 || hull_rootfs_propagation(&rfs, err) < 0)
        return -1;
    /* A missing process.cwd is made (0755, the container's root), as runc and
     * crun do: resolved inside the new root, never through a symlink out of
     * it, and before root.readonly would forbid it. */
    int cwdfd = hull_resolve_in_root(rfs.rootfd, proc->cwd,
                                     HULL_RESOLVE_MKDIR | HULL_RESOLVE_DIRECTORY, err);
    if (cwdfd < 0) {
        bool ro = hull_error_code(*err) == EROFS;
        hull_proc_mark_cwd_error(err);
        return ro ? hull_error_prefix(err, "process.cwd: %s is not there and cannot be made",
                                      proc->cwd)
                  : hull_error_prefix(err, "process.cwd");
    }
    close(cwdfd); /* entered by path below, once the mounts over it are made */
    if (set_hostname(spec, err) < 0)
        return -1;
    /* sysctls go through /proc/sys, which the readonly paths below close. */
    if (apply_sysctl(spec, err) < 0)
        return -1;
    /* With a terminal, /dev/console is the pty (runtime-spec, default
     * devices): its mount point is made while the root is still writable. */
    cleanup_close int console = proc->terminal ? hull_console_target(rfs.rootfd, err) : -1;
    if (proc->terminal && console < 0)
        return -1;
    if (hull_rootfs_protect(&rfs, err) < 0)
        return -1;
    close(rfs.rootfd);

    if (proc->terminal) {
        int master, slave;
        if (hull_pty_open(&master, &slave, proc->console_height, proc->console_width, err) < 0)
            return -1;
        if (hull_sync_send_fd(l->child_fd, SYNC_PTY, master, err) < 0)
            return -1;
        close(master);
        if (hull_pty_bind_console(slave, console, err) < 0 ||
            hull_pty_become_console(slave, err) < 0)
            return -1;
    }

    /* cwd first: a relative args[0] ("./run") or PATH entry is relative to
     * process.cwd, as for runc and for exec below. */
    if (chdir(proc->cwd) < 0) {
        hull_error_errno(err, "process.cwd: %s", proc->cwd);
        hull_proc_mark_cwd_error(err);
        return -1;
    }
    if (hull_proc_resolve(plan, err) < 0)
        return -1;

    /* A notify listener must reach the agent at listenerPath, which only the
     * runtime can do: load such a filter now, while the runtime listens,
     * instead of last (the profile must then allow the remaining setup). */
    if (plan->seccomp && hull_seccomp_needs_listener(plan->seccomp)) {
        int nfd = -1;
        if (hull_seccomp_load(plan->seccomp, &nfd, err) < 0 ||
            hull_sync_send_fd(l->child_fd, SYNC_SECCOMP, nfd, err) < 0)
            return -1;
        close(nfd);
        plan->seccomp = NULL;
    }

    if (hull_sync_send(l->child_fd, SYNC_READY, 0, err) < 0)
        return -1;
    if (wait_for_start(l, err) < 0)
        return -1;

    if (hk->n_start_container) {
        /* `start` has been called: the state these hooks read says "created". */
        char *started = hull_hooks_state_with_status(state_json, "created");
        int r = hull_hooks_run(hk->start_container, hk->n_start_container, "startContainer",
                               started ? started : state_json, err);
        free(started);
        if (r < 0)
            return -1;
    }
    free(state_json);
    return hull_proc_finish(plan, err);
}

void hull_launch_shed_fds(const struct hull_launch *l, bool stage1)
{
    int keep[HULL_LAUNCH_MAX_KEEP];
    size_t n = 0;
    keep[n++] = l->child_fd;
    keep[n++] = l->fifo_fd;
    keep[n++] = l->error_fd;
    keep[n++] = hull_log_fd();
    if (l->reaper)
        keep[n++] = l->status_fd;
    if (stage1) {
        /* Stage 1 still joins namespaces and passes the rest to the init. */
        for (int t = 0; t < HULL_NS_COUNT; t++)
            keep[n++] = l->join_fds[t];
        for (int i = 0; i < 3; i++)
            keep[n++] = l->stdio[i];
    }
    const struct hull_rootfs_extras *x = l->rootfs_extras;
    for (size_t i = 0; x && i < x->n_files && n < HULL_LAUNCH_MAX_KEEP; i++)
        if (x->files[i].src_fd >= 0)
            keep[n++] = x->files[i].src_fd;
    hull_close_fds_except(3 + l->preserve_fds, keep, n);
}

void hull_init_main(struct hull_launch *l)
{
    hull_error err = NULL;
    struct hull_proc_plan plan = {
        .proc = l->spec->process,
        .lx = &l->spec->linux_,
        .seccomp = l->seccomp,
        .die_with_parent = l->die_with_parent,
        .new_session = !l->spec->process->terminal,
        .preserve_fds = l->preserve_fds,
        .error_fd = l->error_fd,
    };

    /* The caller's chosen stdio, before anything else touches 0-2. */
    for (int i = 0; i < 3; i++)
        if (l->stdio[i] >= 0 && l->stdio[i] != i && dup2(l->stdio[i], i) < 0)
            _exit(1);
    /* Shed the runtime's fds: the locked state directory above all, or
     * `start` would wait forever for a lock the init holds. */
    hull_launch_shed_fds(l, false);
    l->sync_fd = -1;
    /* Die with the runtime while setting up: a half-built container must
     * not outlive the process that would clean it up. */
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    /* /proc/<init>/exe leads to the hull binary until execve; a non-dumpable
     * process keeps the container (or another in a pid namespace it joins)
     * from opening it (CVE-2019-5736). A rootless runtime writes our
     * uid_map, gid_map and oom_score_adj first, which it may do only while
     * those files are its own: it waits for SYNC_CGROUP_DONE. */
    if (!l->rootless)
        prctl(PR_SET_DUMPABLE, 0);
    /* /proc/<init>/cmdline is readable whatever the dumpability: the
     * host's argv (bundle, state and copy paths) must not be, neither while
     * the init waits for `start` nor in a sandbox's reaper, which never
     * execs. */
    /* Before the container's /proc replaces the host's: from it, the
     * init's own dispositions (its copy, no other thread changes them). */
    hull_proc_note_ignored_signals();
    if (hull_proc_hide_host_argv("hull-init", &err) < 0 || init_steps(l, &plan, &err) < 0) {
        hull_proc_report(l->child_fd, l->error_fd, err);
        _exit(1);
    }
    if (l->reaper)
        hull_proc_exec_reaped(&plan, l->child_fd, l->status_fd);
    hull_proc_exec(&plan, l->child_fd);
}
