/* struct hull_spec: the OCI runtime-spec config.json, parsed and validated.
 *
 * Every field of config-linux.md that hull acts on has a typed member here.
 * The parsed json_object is kept (spec->json) for the few consumers that need
 * to pass parts through untouched (hooks see the state, not the spec).
 * Optional numbers carry a has_* flag: "absent" and "0" differ in the spec.
 */
#ifndef HULL_SPEC_SPEC_H
#define HULL_SPEC_SPEC_H

#include <json-c/json.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "hull.h"

struct hull_id_mapping {
    uint32_t container_id, host_id, size;
};

struct hull_mount {
    char *destination;
    char *type;
    char *source;
    char **options;
    /* derived from options by spec/mount_options.c */
    unsigned long flags;         /* MS_* to set */
    unsigned long clear;         /* MS_* explicitly cleared (rw, suid, dev, exec, ...) */
    unsigned long propagation;   /* MS_SHARED/MS_SLAVE/MS_PRIVATE/MS_UNBINDABLE (+MS_REC) */
    uint64_t attr_set, attr_clr; /* MOUNT_ATTR_* for recursive options (rro, rnosuid, ...) */
    char *data;                  /* filesystem options, comma separated */
    bool bind, rbind;
    bool tmpcopyup;
    struct hull_id_mapping *uid_mappings, *gid_mappings;
    size_t n_uid_mappings, n_gid_mappings;
};

struct hull_rlimit {
    int resource; /* RLIMIT_* */
    char *type;
    uint64_t soft, hard;
};

struct hull_caps {
    /* NULL-terminated names ("CAP_CHOWN"); NULL when the set is absent */
    char **bounding, **effective, **inheritable, **permitted, **ambient;
};

struct hull_user {
    uint32_t uid, gid;
    uint32_t *additional_gids;
    size_t n_additional_gids;
    bool has_umask;
    uint32_t umask;
};

struct hull_process {
    bool terminal;
    bool has_console_size;
    unsigned console_height, console_width;
    struct hull_user user;
    char **args; /* non-empty */
    char **env;
    char *cwd; /* absolute */
    struct hull_caps caps;
    bool has_caps;
    struct hull_rlimit *rlimits;
    size_t n_rlimits;
    bool no_new_privileges;
    char *apparmor_profile;
    char *selinux_label;
    bool has_oom_score_adj;
    int oom_score_adj;
    bool has_io_priority;
    int io_priority_class, io_priority;
    bool has_scheduler;
    char *sched_policy;
    int sched_nice, sched_priority;
    uint64_t sched_runtime, sched_deadline, sched_period;
    char **sched_flags;
};

struct hull_hook {
    char *path;
    char **args;
    char **env;
    bool has_timeout;
    int timeout; /* seconds, > 0 */
};

struct hull_hooks {
    struct hull_hook *prestart, *create_runtime, *create_container, *start_container, *poststart,
        *poststop;
    size_t n_prestart, n_create_runtime, n_create_container, n_start_container, n_poststart,
        n_poststop;
};

enum hull_ns_type {
    HULL_NS_PID,
    HULL_NS_NET,
    HULL_NS_MNT,
    HULL_NS_IPC,
    HULL_NS_UTS,
    HULL_NS_USER,
    HULL_NS_CGROUP,
    HULL_NS_TIME,
    HULL_NS_COUNT
};

struct hull_namespace {
    bool enabled; /* listed in linux.namespaces */
    char *path;   /* join this one instead of creating (may be NULL) */
};

struct hull_device {
    char type; /* 'c', 'b', 'u', 'p' */
    char *path;
    int64_t major, minor;
    bool has_file_mode, has_uid, has_gid;
    uint32_t file_mode, uid, gid;
};

/* linux.resources; -1 / has_* = false means "leave as is" */
struct hull_device_rule {
    bool allow;
    char type;            /* 'a', 'c', 'b' */
    int64_t major, minor; /* -1 = wildcard */
    char *access;         /* subset of "rwm" */
};

struct hull_weight_device {
    int64_t major, minor;
    bool has_weight, has_leaf_weight;
    uint16_t weight, leaf_weight;
};

struct hull_throttle_device {
    int64_t major, minor;
    uint64_t rate;
};

struct hull_hugepage_limit {
    char *page_size; /* "2MB", "1GB" */
    uint64_t limit;
};

struct hull_resources {
    struct hull_device_rule *devices;
    size_t n_devices;

    bool has_memory_limit, has_memory_reservation, has_memory_swap, has_memory_kernel,
        has_memory_kernel_tcp, has_memory_swappiness, has_disable_oom_killer, has_use_hierarchy,
        has_check_before_update;
    int64_t memory_limit, memory_reservation, memory_swap, memory_kernel, memory_kernel_tcp;
    uint64_t memory_swappiness;
    bool disable_oom_killer, use_hierarchy, check_before_update;

    bool has_cpu_shares, has_cpu_quota, has_cpu_burst, has_cpu_period, has_cpu_rt_runtime,
        has_cpu_rt_period, has_cpu_idle;
    uint64_t cpu_shares, cpu_period, cpu_rt_period, cpu_burst;
    int64_t cpu_quota, cpu_rt_runtime, cpu_idle;
    char *cpu_cpus, *cpu_mems;

    bool has_pids_limit;
    int64_t pids_limit;

    bool has_blkio_weight, has_blkio_leaf_weight;
    uint16_t blkio_weight, blkio_leaf_weight;
    struct hull_weight_device *blkio_weight_devices;
    size_t n_blkio_weight_devices;
    struct hull_throttle_device *throttle_read_bps, *throttle_write_bps, *throttle_read_iops,
        *throttle_write_iops;
    size_t n_throttle_read_bps, n_throttle_write_bps, n_throttle_read_iops, n_throttle_write_iops;

    struct hull_hugepage_limit *hugepage_limits;
    size_t n_hugepage_limits;

    bool has_net_cls_classid;
    uint32_t net_cls_classid;
    char **net_prio; /* "iface", "prio", ... */

    char **rdma;    /* raw, reported as unsupported when set */
    char **unified; /* "key", "value", ... for cgroup v2 */
};

struct hull_seccomp_arg {
    unsigned index;
    uint64_t value, value_two;
    char *op; /* SCMP_CMP_* */
};

struct hull_seccomp_rule {
    char **names;
    char *action; /* SCMP_ACT_* */
    bool has_errno_ret;
    unsigned errno_ret;
    struct hull_seccomp_arg *args;
    size_t n_args;
};

struct hull_seccomp {
    char *default_action;
    bool has_default_errno_ret;
    unsigned default_errno_ret;
    char **architectures;
    char **flags;
    char *listener_path, *listener_metadata;
    struct hull_seccomp_rule *syscalls;
    size_t n_syscalls;
};

/* linux.netDevices (runtime-spec 1.2): a host interface moved into the
 * container's network namespace at create, and back at delete. */
struct hull_net_device {
    char *name;     /* on the host: the entry's key */
    char *new_name; /* inside; may end in a "%d" template; NULL: keep name */
};

struct hull_time_offset {
    bool set;
    int64_t secs;
    uint32_t nanosecs;
};

struct hull_linux {
    struct hull_namespace ns[HULL_NS_COUNT];
    struct hull_id_mapping *uid_mappings, *gid_mappings;
    size_t n_uid_mappings, n_gid_mappings;
    struct hull_device *devices;
    size_t n_devices;
    char *cgroups_path;
    struct hull_resources *resources; /* NULL when absent */
    struct hull_seccomp *seccomp;     /* NULL when absent */
    char **sysctl;                    /* "key", "value", ... */
    char *rootfs_propagation;
    unsigned long rootfs_propagation_flags; /* MS_* or 0 */
    char **masked_paths, **readonly_paths;
    char *mount_label;
    bool has_personality;
    char *personality_domain;
    char **personality_flags;
    bool has_intel_rdt;
    struct hull_time_offset time_monotonic, time_boottime;
    struct hull_net_device *net_devices; /* linux.netDevices, in key order */
    size_t n_net_devices;
};

struct hull_spec {
    json_object *json; /* the parsed document, owned */
    char *oci_version;
    char *root_path; /* as written; absolute form in rootfs */
    char *rootfs;    /* absolute path */
    bool root_readonly;
    struct hull_mount *mounts;
    size_t n_mounts;
    struct hull_process *process; /* NULL when absent (allowed only for create w/o start?) */
    char *hostname;
    char *domainname;
    struct hull_hooks hooks;
    char **annotations; /* "key", "value", ... */
    struct hull_linux linux_;
};

/* Parse config.json text. bundle is the directory relative to which root.path
 * resolves. Errors name the JSON path: "process.args: must be ...". */
int hull_spec_parse(const char *text, size_t len, const char *bundle, struct hull_spec **out,
                    hull_error *err);
/* The same from a document already in memory (a config built by hull
 * itself: no text printed and read back). Takes doc's reference, also on
 * failure. */
int hull_spec_from_json(json_object *doc, const char *bundle, struct hull_spec **out,
                        hull_error *err);
/* The most a config.json or a --process JSON may hold: far above any real
 * one, and what keeps `--config /dev/zero` from reading until memory runs
 * out. */
#define HULL_SPEC_MAX (16u << 20)
/* Load <bundle>/config.json (or config_path when given), at most
 * HULL_SPEC_MAX bytes. Errors start with "config.json: ". */
int hull_spec_load(const char *bundle, const char *config_path, struct hull_spec **out,
                   hull_error *err);
void hull_spec_free(struct hull_spec *spec);
static inline void hull_spec_freep(struct hull_spec **spec)
{
    hull_spec_free(*spec);
    *spec = NULL;
}
/* The spec is freed when the variable goes out of scope. */
#define cleanup_spec __attribute__((cleanup(hull_spec_freep)))

/* Parse a linux.resources object (also what `update --resources` reads). */
int hull_resources_parse(json_object *obj, const char *path, struct hull_resources *out,
                         hull_error *err);
void hull_resources_free(struct hull_resources *r);

/* Parse a process object (also what `exec --process` reads). */
int hull_process_parse(json_object *obj, const char *path, struct hull_process *out,
                       hull_error *err);
void hull_process_free(struct hull_process *p);

/* Parse a linux.seccomp object (also `hull sandbox run --seccomp FILE`). */
/* linux.netDevices of lx (absent: none); names checked as the kernel would. */
int hull_net_devices_parse(json_object *lx, struct hull_linux *l, hull_error *err);
/* An interface name the kernel accepts: 1-15 bytes, not "." or "..", no
 * '/', ':' or white space; a template (one "%d") only when allowed. */
bool hull_ifname_valid(const char *name, bool allow_template);

int hull_seccomp_parse(json_object *obj, const char *path, struct hull_seccomp *out,
                       hull_error *err);
void hull_seccomp_free(struct hull_seccomp *s);

/* Translate mount options into flags; unknown ones become filesystem data. */
int hull_mount_options_parse(struct hull_mount *m, const char *path, hull_error *err);

/* Names the parsers accept, for `hull features`. */
size_t hull_mount_option_count(void);
const char *hull_mount_option_name(size_t i);
const char *const *hull_seccomp_action_names(void); /* NULL-terminated */
const char *const *hull_seccomp_operator_names(void);
const char *const *hull_seccomp_arch_names(void);
const char *const *hull_seccomp_flag_names(void);

const char *hull_ns_name(enum hull_ns_type t);      /* "pid", "network", ... (spec names) */
int hull_ns_clone_flag(enum hull_ns_type t);        /* CLONE_NEW* */
const char *hull_ns_proc_name(enum hull_ns_type t); /* "pid", "net", ... (/proc/PID/ns) */

/* Whether name is shaped like a capability ("CAP_" and letters, digits,
 * underscores). The parser refuses anything else; a well-formed name this
 * system does not know is accepted (see hull_caps_warn_unknown). */
bool hull_cap_name_ok(const char *name);

/* The SCHED_* value of a process.scheduler policy name, -1 if unknown. */
int hull_sched_policy_from_name(const char *name);
/* The SCHED_FLAG_* bit of a process.scheduler flag name, 0 if unknown. */
unsigned long long hull_sched_flag_from_name(const char *name);

/* RLIMIT_* from "RLIMIT_NOFILE"; -1 when unknown. */
int hull_rlimit_from_name(const char *name);

#endif
