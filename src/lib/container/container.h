/* Internal API of the container layer, shared by the OCI verbs and by the
 * sandbox, which builds its spec in memory and supervises the run itself. */
#ifndef HULL_CONTAINER_CONTAINER_H
#define HULL_CONTAINER_CONTAINER_H

#include <signal.h>

#include "container/launch.h"
#include "container/state.h"
#include "hull.h"
#include "linux/cgroup.h"
#include "linux/seccomp.h"
#include "spec/spec.h"

struct hull_setup_opts {
    struct hull_spec *spec;                    /* use this spec (caller keeps it) */
    const struct hull_seccomp_filter *seccomp; /* precompiled filter (caller keeps it) */
    bool foreground;                           /* the caller will send START and supervise */
    bool die_with_parent;                      /* the container dies with the calling process */
    bool no_cgroup;                            /* process isolation: no cgroup at all */
    const char *verb;                          /* for messages: "create" (default), "run", ... */
    const int *stdio; /* 3 fds for the container's stdio; NULL = inherit ours */
    bool loopback_up; /* bring lo up in the new network namespace */
    bool netns_given; /* born in netns_fd, not a new netns (see launch.h) */
    int netns_fd;
    const char *export_dir; /* hand back an fd of this container directory */
    const struct hull_rootfs_extras *rootfs_extras;
    bool lean_cgroup; /* HULL_CGROUP_LEAN: never paused, fewer hierarchies */
    bool reaper;      /* the init stays as a reaper, the program is pid 2 (sandbox) */
    int status_fd;    /* with reaper: receives the program's wait status (an int) */
    /* No state directory at all: for a supervisor that outlives its init
     * (the init dies with it), whose id names it (so its cgroups, the only
     * trace a crash leaves, are collected by name: sandbox/cleanup.c), and
     * that nothing else addresses (no hooks, exec, netDevices or `state`).
     * Needs a mount namespace and a foreground init. */
    bool no_state;
    /* See struct hull_launch: called while the init sets itself up. */
    void (*setting_up)(pid_t init, void *arg);
    void *setting_up_arg;
    uint32_t userns_owner; /* see struct hull_launch */
};

/* Everything a created container holds while its creator still runs. */
struct hull_container_ctx {
    struct hull_spec *spec;
    struct hull_cstate cs;
    struct hull_cgroup *cgroup;
    struct hull_cgroup *cgroup_view;     /* rootless, no cgroup: the caller's, to mount */
    struct hull_seccomp_filter *seccomp; /* compiled here (not from opts) */
    struct hull_launch launch;
    struct hull_resources late_limits; /* launch.late_limits points here */
    int dirfd;                         /* locked state directory */
    bool owns_spec;
    /* The created record (pid, its start time) staged while the init set
     * itself up: record_init only renames it into place. */
    bool state_staged;
    uint64_t staged_pid_start;
    /* state.json as record_init left it (malloc'd, or NULL): a run that
     * finds it unchanged at the end destroys from cs without parsing it. */
    char *state_text;
};

/* linux.resources plus the device rules every container gets after the
 * spec's own (runc's defaults and linux.devices); r->devices is malloc'd. */
int hull_container_device_rules(const struct hull_spec *spec, struct hull_resources *r,
                                hull_error *err);
/* Move the limits that would bite the runtime while it steps into the
 * cgroup (memory, memory+swap, pids) from *r to *late (see launch.h). */
void hull_container_split_late_limits(struct hull_resources *r, struct hull_resources *late);

/* Create: state directory, cgroup, init waiting at READY. On failure
 * everything is rolled back and *c released. */
int hull_container_setup(const struct hull_runtime *rt, const struct hull_create_opts *o,
                         const struct hull_setup_opts *so, struct hull_container_ctx *c,
                         hull_error *err);
void hull_container_ctx_release(struct hull_container_ctx *c);

/* The runtime-spec state document of cs as it would be in status with
 * pid, as hooks see it: the same JSON as `state` (malloc'd; NULL when out
 * of memory). */
char *hull_cstate_doc(const struct hull_cstate *cs, enum hull_status status, pid_t pid);

/* Kill what is left, run poststop hooks, remove the cgroup and the state. */
int hull_container_destroy(const struct hull_runtime *rt, int dirfd, struct hull_cstate *cs,
                           hull_error *err);

/* Whether the spec mounts a cgroup filesystem. */
bool hull_container_mounts_cgroup(const struct hull_spec *spec);
/* After the container's cgroup could not be created (*err): 0 when it may
 * run without one (a rootless caller refused by the kernel, and no
 * resource that needs a cgroup, which is refused by its field name
 * otherwise), *err freed and *view set for a cgroup mount; else -1. */
int hull_container_without_cgroup(const struct hull_spec *spec, struct hull_cgroup **view,
                                  hull_error *err);
/* Processes in the pid namespace of init (host pids), for a container
 * without a cgroup; ENOTSUP when init shares our pid namespace. */
int hull_pidns_pids(pid_t init, pid_t **pids, size_t *count, hull_error *err);
/* Signal each of them (kill --all without a cgroup). */
int hull_pidns_kill(pid_t init, int signo, hull_error *err);

/* Foreground supervision shared by `run` and `exec`. */
void hull_forwardable_signals(sigset_t *set);
/* Wait for pid (our child), forwarding signals read from the signalfd sfd
 * and relaying the pty master (or -1). Returns the wait status. */
int hull_supervise(pid_t pid, int sfd, int master);
/* After the process was told to exec: EOF on the close-on-exec sync socket
 * means execve succeeded, an error message means it failed. */
int hull_wait_exec(int sync_fd, hull_error *err);
/* Shell-style exit code of a wait status: the code, or 128+signal. */
int hull_exit_code(int status);

#endif
