/* Control groups on every host layout: v1, v2 (unified) and hybrid.
 *
 * A struct hull_cgroup names one container's cgroup in every hierarchy it
 * uses. The runtime creates it before the container's init runs, applies the
 * spec's linux.resources, moves the init in, and records it in state.json
 * (hull_cgroup_save) so later verbs (kill --all, pause, update, events, ps,
 * delete) can reload it (hull_cgroup_load) without re-reading config.json.
 *
 * Owner: linux/cgroup*.c. Callers: container/, sandbox/, vm/.
 */
#ifndef HULL_LINUX_CGROUP_H
#define HULL_LINUX_CGROUP_H

#include <json-c/json.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "hull.h"
#include "spec/spec.h"

enum hull_cgroup_mode {
    HULL_CGROUP_V1,     /* only v1 hierarchies (maybe a name=systemd one) */
    HULL_CGROUP_HYBRID, /* v1 controllers + a cgroup2 mount (often controller-less) */
    HULL_CGROUP_V2,     /* cgroup2 at /sys/fs/cgroup */
};

/* What the host has; detected once per process from /proc/self/mountinfo. */
int hull_cgroup_mode(enum hull_cgroup_mode *mode, hull_error *err);

struct hull_cgroup;

/* Resolve a container's cgroup path and create it in every hierarchy used.
 * cgroups_path: linux.cgroupsPath as written (absolute, relative to the
 * caller's own cgroup, or "slice:prefix:name" when systemd is true); NULL or
 * "" means the default "/hull/<id>". A path that climbs out of the cgroup
 * root ("../..") is an error. An existing cgroup is reused (podman and
 * containerd may pre-create it), a created one is remembered for destroy. */
int hull_cgroup_create(const char *cgroups_path, const char *id, bool systemd,
                       struct hull_cgroup **out, hull_error *err);

/* hull_cgroup_create with flags: HULL_CGROUP_LEAN joins only what a one-shot
 * sandbox needs (memory, pids, cpu accounting; no freezer, so no pause). */
#define HULL_CGROUP_LEAN 1u
/* HULL_CGROUP_ADOPT takes an existing cgroup that holds processes instead
 * of refusing it: only to remove what a container whose state is lost
 * left in its default cgroup (delete --force). */
#define HULL_CGROUP_ADOPT 2u
int hull_cgroup_create_ex(const char *cgroups_path, const char *id, bool systemd, unsigned flags,
                          struct hull_cgroup **out, hull_error *err);

/* Mount points of the host's hierarchies, in mountinfo order: all of them,
 * or (HULL_CGROUP_LEAN) those a lean cgroup can join, its limits included.
 * The strings live as long as the process. At most max; *n says how many. */
int hull_cgroup_mount_points(unsigned flags, const char **out, size_t max, size_t *n,
                             hull_error *err);

/* Write linux.resources. A field the host cannot enforce is an error naming
 * the field; unset fields are left alone. Also used by `update`, where a
 * memory limit below current usage is an error. It may join hierarchies
 * (moving the running processes in), so save the state again afterwards. */
int hull_cgroup_apply(struct hull_cgroup *cg, const struct hull_resources *r, hull_error *err);

/* For a container without a cgroup (--cgroup-manager disabled): a limit
 * in r is an error naming its field, since nothing could enforce it; a
 * device rule that denies particular devices is a warning (without a
 * cgroup only the nodes the container has are reachable). r may be NULL. */
int hull_cgroup_check_disabled(const struct hull_resources *r, hull_error *err);

/* The first linux.resources field that only a cgroup enforces, or NULL when
 * r sets none. Device rules do not count (ignore_devices): a container
 * without a cgroup, which only a rootless caller may run, gets no device the
 * caller could not open anyway, since the kernel refuses device nodes made
 * in a user namespace. A caller that runs without a cgroup refuses the
 * field by this name instead of ignoring it. */
const char *hull_cgroup_needed_by(const struct hull_resources *r, bool ignore_devices);

/* Join every hierarchy the host has, as runc does, instead of only those
 * needed for accounting and the spec's resources (see cgroup_internal.h).
 * Call it before hull_cgroup_enter when the container mounts a cgroup view
 * (the view shows only joined hierarchies) or runs systemd. */
int hull_cgroup_join_all(struct hull_cgroup *cg, hull_error *err);

/* Join the hierarchies r needs (as hull_cgroup_apply would) without writing
 * any control file: for limits written later, once the cgroup is populated. */
int hull_cgroup_join_for(struct hull_cgroup *cg, const struct hull_resources *r, hull_error *err);

/* The smallest memory limit accepted: the container's init (a copy of the
 * runtime until execve) and the program's first pages need a few hundred
 * KiB; below this nothing can start (measured: 256 KiB fails, 512 KiB runs
 * busybox sh on x86-64 4 KiB pages), so such a limit is refused by name. */
#define HULL_CGROUP_MEMORY_MIN (1ll << 20)

/* Refuse limits no container could start under, before anything exists
 * (hull_cgroup_apply checks them too, for update). */
int hull_cgroup_check_limits(const struct hull_resources *r, hull_error *err);

/* Put a child into the cgroup at birth instead of moving it later (which
 * waits for an RCU grace period in the kernel): step the calling thread
 * into the cgroup's v1 hierarchies, clone with CLONE_INTO_CGROUP = v2fd
 * when v2fd >= 0, then step out. The runtime counts against the cgroup's
 * limits meanwhile, so callers write the memory and pids limits only after
 * stepping out (hull_cgroup_join_for first, hull_cgroup_apply after). */
struct hull_cgroup_self {
    char *back[24]; /* the caller's own cgroup dirs to return to */
    int v2fd;       /* for clone3's CLONE_INTO_CGROUP, or -1 */
    bool active;
};
int hull_cgroup_step_in(struct hull_cgroup *cg, struct hull_cgroup_self *s, hull_error *err);
/* The same into the v1 memory hierarchy alone (and cgroup2 by its fd): the
 * child born there joins the other v1 hierarchies itself, by
 * hull_cgroup_join_rest, before it runs anything. */
int hull_cgroup_step_in_memory(struct hull_cgroup *cg, struct hull_cgroup_self *s, hull_error *err);
/* Whether cg's memory controller is in a v1 hierarchy cg has joined. */
bool hull_cgroup_memory_v1(const struct hull_cgroup *cg);
/* In the child born by a hull_cgroup_step_in_memory clone: move itself
 * ("0" into tasks: a thread moving itself takes no global lock) into every
 * other v1 hierarchy cg has joined. */
int hull_cgroup_join_rest(struct hull_cgroup *cg, hull_error *err);
void hull_cgroup_step_out(struct hull_cgroup_self *s);
/* Whether the thread, stepped in by s, is in cg's memory cgroup (a v1
 * memory hierarchy, entered by the step): what it allocates in the kernel
 * then is charged to the container, as for the child born there. */
bool hull_cgroup_self_in_memory(const struct hull_cgroup *cg, const struct hull_cgroup_self *s);

/* Move pid into the cgroup (every hierarchy). */
int hull_cgroup_enter(struct hull_cgroup *cg, pid_t pid, hull_error *err);
/* Move pid into the hierarchy of the cgroup that holds its memory
 * controller alone, so that what pid allocates from then on (a tmpfs page
 * included: the kernel charges it to whoever allocates it) counts against
 * the cgroup's memory limit. 0 and nothing done without one. On cgroup2
 * that hierarchy is the freezer's too: never for a frozen cgroup. */
int hull_cgroup_enter_memory(struct hull_cgroup *cg, pid_t pid, hull_error *err);

/* Mount the container's view of cgroups at dest (an absolute path in the
 * caller's mount namespace, normally "/proc/self/fd/N" of the resolved
 * destination), read-only when readonly. Runs in the container's init after
 * it has unshared its cgroup namespace (cgroupns true) or not. */
int hull_cgroup_mount(struct hull_cgroup *cg, const char *dest, bool readonly, bool cgroupns,
                      unsigned long mount_flags, hull_error *err);

/* The cgroups the caller is in, as a struct hull_cgroup that only
 * hull_cgroup_mount may use (with cgroupns false: bind mounts of each
 * directory): the view of a container that runs without a cgroup of its own
 * (rootless), as runc gives it. Never save, apply to or destroy it. */
int hull_cgroup_caller_view(struct hull_cgroup **out, hull_error *err);

/* Processes in the cgroup (host pids). *pids is malloc'd. */
int hull_cgroup_pids(struct hull_cgroup *cg, pid_t **pids, size_t *count, hull_error *err);
/* Signal every process in the cgroup. */
int hull_cgroup_kill(struct hull_cgroup *cg, int signo, hull_error *err);
/* Freezer v1 / cgroup.freeze v2; waits until the state is reached. */
int hull_cgroup_freeze(struct hull_cgroup *cg, bool frozen, hull_error *err);
int hull_cgroup_is_frozen(struct hull_cgroup *cg, bool *frozen, hull_error *err);
/* Kill anything left (SIGKILL, wait until empty) and remove the cgroups this
 * container created. Safe to call twice and on a half-made cgroup. */
int hull_cgroup_destroy(struct hull_cgroup *cg, hull_error *err);

/* Accounting, for `events --stats`, sandbox verdicts and hulld metrics. */
struct hull_cgroup_stats {
    uint64_t cpu_usage_ns, cpu_user_ns, cpu_system_ns;
    uint64_t cpu_throttled_periods, cpu_throttled_ns, cpu_periods;
    uint64_t memory_usage, memory_max_usage, memory_limit, memory_failcnt;
    /* memory+swap, as v1 and runc count it */
    uint64_t swap_usage, swap_limit;
    /* times the limit was hit: memory.events "max"; on v1 the failcnt of
     * memory and memory+swap, and at least oom_kill_events */
    uint64_t oom_events;
    uint64_t oom_kill_events; /* processes killed by the OOM killer */

    uint64_t pids_current, pids_limit, pids_max_events; /* fork refused at the limit */
};
int hull_cgroup_stats(struct hull_cgroup *cg, struct hull_cgroup_stats *st, hull_error *err);
/* Only what a sandbox's result needs, four files instead of some fifteen:
 * cpu_usage_ns, memory_max_usage, oom_kill_events, pids_max_events (the
 * other fields are 0). */
int hull_cgroup_stats_brief(struct hull_cgroup *cg, struct hull_cgroup_stats *st, hull_error *err);
/* Just the CPU time used (one file read): what a supervisor polls. */
int hull_cgroup_cpu_usage(struct hull_cgroup *cg, uint64_t *ns, hull_error *err);
/* The "data" object of runc's `events --stats` JSON. */
json_object *hull_cgroup_stats_json(struct hull_cgroup *cg, hull_error *err);

/* An fd that becomes readable on an OOM kill (eventfd on v1 memory.oom_control,
 * inotify on v2 memory.events, which also wakes on other memory events:
 * confirm with hull_cgroup_stats); -1 with ENOTSUP when the host cannot tell. */
int hull_cgroup_oom_fd(struct hull_cgroup *cg, hull_error *err);

/* Persist in state.json and load back. */
json_object *hull_cgroup_save(const struct hull_cgroup *cg);
int hull_cgroup_load(json_object *saved, struct hull_cgroup **out, hull_error *err);
void hull_cgroup_free(struct hull_cgroup *cg);
static inline void hull_cgroup_freep(struct hull_cgroup **cg)
{
    hull_cgroup_free(*cg);
    *cg = NULL;
}
/* The handle is freed (not destroyed) when the variable goes out of scope. */
#define cleanup_cgroup __attribute__((cleanup(hull_cgroup_freep)))

#endif
