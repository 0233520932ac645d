/* Launching a container's init: the parent side (spawn.c) and the child side
 * (init.c) of one fork, talking over the sync socket (sync.h).
 *
 *   runtime                              init (child)
 *   -------                              ------------
 *   clone(new namespaces)  ------------> non-dumpable, parent-death signal
 *   uid/gid maps, cgroup, memory and
 *   pids limits, rlimits,
 *   oom_score_adj; CGROUP_DONE --------> become root in the user namespace,
 *                                        unshare cgroupns, build the rootfs
 *   (netns_late: make the network
 *   namespace; NETNS(fd) -------------> joined before the first mount that
 *                                        may see it: sysfs, nfs, a /proc bind)
 *                          <------------ BIND_SOURCE(i), for each bind source
 *   a helper opens it in the init's       the init cannot reach from its
 *   mount ns; BIND_SOURCE(fd) ---------> user namespace
 *                          <------------ HOOKS (only when hooks exist)
 *   prestart + createRuntime hooks;
 *   HOOKS_DONE(state json) ------------> createContainer hooks, pivot_root,
 *                                        hostname, sysctl, masked/ro paths,
 *                          <------------ PTY (when process.terminal)
 *                          <------------ READY
 *   create: record the pid; DETACH ----> stop dying with the runtime
 *                          <------------ DETACHED
 *     exit; `start` writes exec.fifo --> startContainer hooks, credentials,
 *   run: START ------------------------> seccomp, close fds, execve
 */
#ifndef HULL_CONTAINER_LAUNCH_H
#define HULL_CONTAINER_LAUNCH_H

#include <stdbool.h>
#include <sys/types.h>

#include "hull.h"
#include "linux/cgroup.h"
#include "linux/mounts.h"
#include "linux/seccomp.h"
#include "spec/spec.h"

struct hull_launch {
    /* inputs */
    const struct hull_spec *spec;
    struct hull_cgroup *cgroup;      /* may be NULL (no cgroups) */
    struct hull_cgroup *cgroup_view; /* without one: the caller's, for cgroup mounts only */
    const struct hull_seccomp_filter *seccomp; /* may be NULL */
    bool no_pivot;
    bool foreground;      /* wait for SYNC_START instead of exec.fifo */
    bool die_with_parent; /* keep PR_SET_PDEATHSIG(SIGKILL) into the container (sandbox) */
    int fifo_fd;          /* exec.fifo opened O_RDWR, or -1 */
    int error_fd;         /* exec.error opened for writing, or -1 (see hull_proc_report) */
    int preserve_fds;     /* fds 3 .. 3+n-1 survive into the container */
    bool cgroup_at_birth; /* clone the init inside its cgroup (hull_cgroup_step_in) */
    bool rootless;        /* the runtime is not root of the initial user namespace */
    const char *keyring;  /* join a new session keyring of this name (NULL: keep ours) */
    const char *state_json_for_hooks; /* prestart/createRuntime stdin (may be NULL) */
    int stdio[3];                     /* fds to become the container's 0, 1, 2; -1 = inherit ours */
    bool loopback_up;                 /* bring up lo in a new network namespace */
    /* With netns_given: the init is born in this network namespace (a
     * fresh one of the sandbox's pool, see sandbox/netpool.h) instead of
     * a new one; the caller keeps and closes the fd. */
    bool netns_given;
    int netns_fd;
    /* Set by hull_launch_spawn: the init's new network namespace is not
     * made by its clone but by the runtime, in its cgroups still, while the
     * init builds its root (the longest step of a clone, taken off the
     * path), and joined by the init before its first mount that may see
     * it (sysfs; SYNC_NETNS). */
    bool netns_late;
    /* Input: the caller lets netns_late be used (it has no setting_up
     * callback or other use of the init's network namespace before READY). */
    bool netns_late_ok;
    const char *export_dir; /* send an fd of this container directory (SYNC_EXPORT) */
    const struct hull_rootfs_extras *rootfs_extras;
    /* Limits written into the cgroup only once the init is in it and the
     * runtime is not (memory, pids: they would bite the runtime); may be NULL. */
    const struct hull_resources *late_limits;
    int exported_fd; /* filled: the fd of export_dir, or -1 */
    bool reaper;     /* the init stays as pid 1 and runs the program as pid 2 */
    int status_fd;   /* with reaper: the program's wait status is written here */
    /* Called once the init runs in its cgroup and sets itself up (mounts),
     * so that work of the caller's overlaps it (a sandbox's network attach
     * request); NULL: none. */
    void (*setting_up)(pid_t pid, void *arg);
    void *setting_up_arg;
    /* Nonzero: the new user namespace is owned by this host uid rather
     * than by the runtime's (see spawn.c); 0: the runtime's, as runc. */
    uint32_t userns_owner;

    /* filled by hull_launch_spawn */
    pid_t pid;      /* init's pid in the runtime's pid namespace */
    int sync_fd;    /* runtime end of the sync socket */
    int pty_master; /* when process.terminal, else -1 */

    /* private to the two sides */
    int child_fd;
    int join_fds[HULL_NS_COUNT];
    bool ipc_after_userns; /* the init unshares its IPC namespace as root of its user ns */
};

/* Fork the init and walk it to READY. On failure the init is killed and
 * reaped; the caller still owns the cgroup. hook_state builds the state JSON
 * handed to hooks (the pid is known only now). */
int hull_launch_spawn(struct hull_launch *l, char *(*hook_state)(pid_t pid, void *arg), void *arg,
                      hull_error *err);

/* In a forked child: close every fd the runtime had open except the ones
 * this launch hands on (sync socket, fifo, log, copy-in sources; in stage 1
 * also the namespaces to join and the chosen stdio). Keeps the locked state
 * directory in particular out of the container. */
#define HULL_LAUNCH_MAX_KEEP 96
void hull_launch_shed_fds(const struct hull_launch *l, bool stage1);

/* waitpid for one child, through EINTR: its wait status, or -1. */
int hull_reap(pid_t pid);

/* The child side; never returns. */
__attribute__((noreturn)) void hull_init_main(struct hull_launch *l);

#endif
