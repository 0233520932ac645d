/* Shared between the cgroup*.c files (and their unit tests), not part of
 * libhull's interface: the host layout, a container's node in each
 * hierarchy, and the small file helpers every controller writer uses.
 *
 * Which hierarchies a container joins (the cost of a cgroup is one mkdir,
 * one cgroup.procs write and one rmdir per hierarchy, 50-250 us each):
 *   always     memory, pids, freezer and the cpuacct hierarchy (verdicts,
 *              pause, kill), named v1 hierarchies such as name=systemd
 *              (controller-less, cheap, and what systemd inside a container
 *              expects) and the cgroup2 hierarchy (cgroup.kill and
 *              cgroup.events make destroy race-free and event-driven);
 *   on demand  cpu (when separate from cpuacct), cpuset, blkio, devices,
 *              hugetlb, net_cls, net_prio: joined by hull_cgroup_apply when
 *              linux.resources sets something they enforce (an `update`
 *              joins them later by moving the running processes in).
 */
#ifndef HULL_LINUX_CGROUP_INTERNAL_H
#define HULL_LINUX_CGROUP_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "linux/cgroup.h"

#define CG_MAX_HIER 24

enum cg_ctrl {
    CG_CPU,
    CG_CPUACCT,
    CG_CPUSET,
    CG_MEMORY,
    CG_DEVICES,
    CG_FREEZER,
    CG_BLKIO, /* "io" on cgroup2 */
    CG_PIDS,
    CG_HUGETLB,
    CG_NET_CLS,
    CG_NET_PRIO,
    CG_PERF_EVENT,
    CG_RDMA,
    CG_MISC,
    CG_NCTRL
};
#define CG_BIT(c) (1u << (c))

/* v1 controller names; v2 names ("io" for blkio, NULL where cgroup2 has no
 * such controller) */
extern const char *const cg_ctrl_v1_name[CG_NCTRL];
extern const char *const cg_ctrl_v2_name[CG_NCTRL];

struct cg_hier {
    char *mount;    /* mount point in our mount namespace */
    char *root;     /* the mount's root inside the hierarchy (mountinfo field 4) */
    char *name;     /* directory name in a container's view: basename of mount */
    char *opts;     /* v1 mount data naming the hierarchy ("cpu,cpuacct", "none,name=systemd") */
    char *cgname;   /* v1 "name=" of a named hierarchy, without "name=" */
    uint32_t ctrls; /* v1: bound controllers; v2: listed in the root's cgroup.controllers */
    bool v2;
};

struct cg_layout {
    enum hull_cgroup_mode mode;
    struct cg_hier h[CG_MAX_HIER];
    size_t n;
    int v2; /* index of the cgroup2 hierarchy, -1 if none */
};

/* The container's cgroup in one hierarchy. */
struct cg_node {
    char *path;  /* cgroup path below the mount's root: "/hull/abc" */
    char *dir;   /* mount + path */
    int created; /* trailing path components this container created; 0 = reused */
    bool joined; /* the directory exists and is ours to use */
};

struct hull_cgroup {
    const struct cg_layout *L;
    struct cg_node n[CG_MAX_HIER]; /* indexed like L->h */
    bool fresh; /* created by this call and never entered: nothing to measure yet */
};

/* ---- layout (cgroup_layout.c) ---- */

/* Parse /proc/self/mountinfo text. Mounts hidden under a later mount at or
 * above their mount point are dropped, so a test that mounts cgroup2 over
 * /sys/fs/cgroup in a private namespace sees a v2 host. v2 controllers are
 * not read here (ctrls 0); cg_layout_get fills them in. */
int cg_layout_parse(const char *mountinfo, struct cg_layout *L, hull_error *err);
void cg_layout_clear(struct cg_layout *L);
/* Parse a cgroup.controllers line into a bit mask of known controllers. */
uint32_t cg_v2_ctrl_mask(const char *line);
/* The host's layout, detected once per process (thread-safe). */
const struct cg_layout *cg_layout_get(hull_error *err);
/* Hierarchy that enforces controller c, -1 if none. Freezer and devices are
 * always available on cgroup2 (cgroup.freeze, eBPF). */
int cg_hier_of(const struct cg_layout *L, enum cg_ctrl c);
/* Hierarchy i as it appears in /proc/PID/cgroup: "cpu,cpuacct", "name=systemd", "". */
void cg_hier_key(const struct cg_hier *h, char *buf, size_t len);
/* Paths of the caller's own cgroups (from /proc/self/cgroup text), made
 * relative to each mount's root; out[i] NULL when the hierarchy is absent. */
int cg_own_paths(const struct cg_layout *L, const char *proc_cgroup, char *out[CG_MAX_HIER],
                 hull_error *err);

/* ---- linux.cgroupsPath (cgroup_path.c) ---- */

struct cg_target {
    bool relative; /* path is below the caller's own cgroup */
    bool is_default;
    char *path; /* absolute: "/a/b"; relative: "a/b" (cleaned, never empty) */
};
int cg_target_parse(const char *cgroups_path, const char *id, bool systemd, struct cg_target *t,
                    hull_error *err);
void cg_target_clear(struct cg_target *t);
/* "slice:prefix:name" -> "/a.slice/a-b.slice/prefix-name.scope" */
int cg_systemd_path(const char *spec, char **out, hull_error *err);
/* Whether s looks like "slice:prefix:name". */
bool cg_is_systemd_form(const char *s);

/* ---- nodes (cgroup.c) ---- */

/* Create the node for hierarchy i (mkdir -p, cpuset init on v1) and move
 * the container's current processes in; with nothing to move this is just
 * the mkdir. */
int cg_join(struct hull_cgroup *cg, size_t i, hull_error *err);
/* Enable controllers (CG_BIT mask) in the cgroup2 ancestors' subtree_control
 * so the container's cgroup2 node has their files. */
int cg_v2_enable(struct hull_cgroup *cg, uint32_t ctrls, hull_error *err);

/* ---- a node's processes (cgroup_pids.c; used by cgroup.c and cgroup_freeze.c) ---- */

/* Node used for process lists and emptiness: cgroup2 if joined, else the
 * freezer's, else any joined one; NULL when nothing is joined. */
const struct cg_node *cg_main_node(const struct hull_cgroup *cg);
/* Every pid in dir and below (recursive). */
int cg_collect_pids(const char *dir, pid_t **pids, size_t *count, hull_error *err);

/* ---- files (cgroup_file.c) ---- */

/* Write a control file: one open + write. The error names the file. */
int cg_write(const char *dir, const char *file, const char *val, hull_error *err);
int cg_writef(const char *dir, const char *file, hull_error *err, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
/* Read a small control file into buf (NUL-terminated, trailing newline kept). */
int cg_read(const char *dir, const char *file, char *buf, size_t len, hull_error *err);
/* A file holding one number; "max" reads as UINT64_MAX. */
int cg_read_u64(const char *dir, const char *file, uint64_t *out, hull_error *err);
/* "key value" lines (memory.stat, cpu.stat, memory.events, ...): the value of key. */
bool cg_keyed_get(const char *text, const char *key, uint64_t *out);
bool cg_exists(const char *dir, const char *file);
/* Write a linux.resources field: ENOENT becomes "not supported on this host
 * (no <file>)", other errors keep the kernel's reason; all name the field. */
int cg_set_field(const char *dir, const char *file, const char *val, const char *field,
                 hull_error *err);

/* ---- resources (cgroup_apply.c, cgroup_v1.c, cgroup_v2.c) ---- */

/* Controllers linux.resources needs (CG_BIT mask); unified keys and rdma are
 * checked separately. */
uint32_t cg_resources_ctrls(const struct hull_resources *r);
int cg_v1_memory(const char *dir, const struct hull_resources *r, hull_error *err);
int cg_v1_cpu(const char *dir, const struct hull_resources *r, hull_error *err);
int cg_v1_blkio(const char *dir, const struct hull_resources *r, hull_error *err);
int cg_v1_devices(const char *dir, const struct hull_resources *r, hull_error *err);
int cg_v1_net(const char *cls_dir, const char *prio_dir, const struct hull_resources *r,
              hull_error *err);
int cg_v2_memory(const char *dir, const struct hull_resources *r, hull_error *err);
int cg_v2_cpu(const char *dir, const struct hull_resources *r, hull_error *err);
int cg_v2_io(const char *dir, const struct hull_resources *r, hull_error *err);
int cg_v2_unified(const char *dir, char *const *kv, hull_error *err);
/* cpuset, pids and hugetlb differ between v1 and v2 only in file names. */
int cg_cpuset(const char *dir, const struct hull_resources *r, hull_error *err);
int cg_pids(const char *dir, const struct hull_resources *r, hull_error *err);
int cg_hugetlb(const char *dir, bool v2, const struct hull_resources *r, hull_error *err);

/* OCI weights to cgroup2 ones, as runc and crun convert them. */
uint64_t cg_shares_to_weight(uint64_t shares);
uint64_t cg_blkio_to_io_weight(uint64_t weight);

/* ---- devices on cgroup2 (cgroup_devices_bpf.c) ---- */

struct bpf_insn;
/* Assemble the BPF_PROG_TYPE_CGROUP_DEVICE program for rules (last matching
 * rule wins, default deny). Returns the instruction count, or 0 when max is
 * too small. */
size_t cg_devices_bpf_assemble(const struct hull_device_rule *rules, size_t n, struct bpf_insn *out,
                               size_t max);
/* Load it and attach it to the cgroup2 directory, replacing the programs
 * hull attached there before. */
int cg_devices_bpf_apply(const char *dir, const struct hull_device_rule *rules, size_t n,
                         hull_error *err);

/* ---- freezer (cgroup_freeze.c) ---- */

/* Freeze without touching the state a caller may have set: *was tells
 * whether it was frozen already. */
int cg_freeze_for_signal(struct hull_cgroup *cg, bool *was, hull_error *err);
/* Kill every process, fork-safe: cgroup.kill when the kernel has it, else
 * freeze + SIGKILL + thaw. */
int cg_kill_all(struct hull_cgroup *cg, hull_error *err);
/* Wait until no process is left (bounded). */
int cg_wait_empty(struct hull_cgroup *cg, int timeout_ms, hull_error *err);
/* Wait for cgroup.events "key value" on a cgroup2 dir (bounded). */
int cg_v2_wait_event(const char *dir, const char *key, uint64_t want, int timeout_ms,
                     hull_error *err);

/* ---- helpers ---- */
void cg_sleep_us(long us);
long cg_now_ms(void);

#endif
