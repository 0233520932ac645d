/* linux.resources on cgroup v1 controllers (and the few writers whose
 * files are named the same on v1 and v2: cpuset, pids, hugetlb's limit).
 * Every error names the spec field; a file the kernel lacks means the host
 * cannot enforce the field, which is an error, not a silent no-op. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "linux/cgroup_internal.h"
#include "util/error.h"
#include "util/log.h"

#define MEM "linux.resources.memory"

static int set_i64(const char *dir, const char *file, int64_t v, const char *field, hull_error *err)
{
    char buf[32];
    snprintf(buf, sizeof(buf), "%lld", (long long)v);
    return cg_set_field(dir, file, buf, field, err);
}

static int set_u64(const char *dir, const char *file, uint64_t v, const char *field,
                   hull_error *err)
{
    char buf[32];
    snprintf(buf, sizeof(buf), "%llu", (unsigned long long)v);
    return cg_set_field(dir, file, buf, field, err);
}

static int v1_limit(const char *dir, int64_t v, hull_error *err)
{
    if (set_i64(dir, "memory.limit_in_bytes", v, MEM ".limit", err) == 0)
        return 0;
    if (hull_error_code(*err) == EBUSY)
        hull_error_set(err, EBUSY,
                       MEM ".limit: the kernel could not reclaim the container's memory down to "
                           "%lld bytes (EBUSY)",
                       (long long)v);
    return -1;
}

/* memory.limit and memory.swap (memory+swap on v1): the kernel keeps
 * memsw >= limit at every step, so the order of the two writes depends on
 * the direction of the change. Try limit first; if that breaks the rule,
 * memsw first. */
static int v1_limit_and_swap(const char *dir, const struct hull_resources *r, hull_error *err)
{
    bool memsw = r->has_memory_swap && cg_exists(dir, "memory.memsw.limit_in_bytes");
    if (r->has_memory_swap && !memsw && r->memory_swap != -1)
        return hull_error_set(err, ENOTSUP,
                              MEM ".swap: swap accounting is not enabled on this host (no "
                                  "memory.memsw.limit_in_bytes)");
    if (!memsw && r->has_memory_limit && !r->has_memory_swap &&
        cg_exists(dir, "memory.memsw.limit_in_bytes")) {
        /* Unlimited memory with no word on swap lifts memory+swap too, as
         * runc does: the kernel keeps memsw >= limit, so -1 alone fails. */
        if (r->memory_limit == -1 &&
            set_i64(dir, "memory.memsw.limit_in_bytes", -1, MEM ".swap", err) < 0)
            return -1;
        if (v1_limit(dir, r->memory_limit, err) == 0)
            return 0;
        if (hull_error_code(*err) == EINVAL)
            hull_error_set(err, EINVAL,
                           MEM ".limit: %lld is above the container's memory+swap limit: "
                               "raise memory.swap (--memory-swap) with it",
                           (long long)r->memory_limit);
        return -1;
    }
    if (!memsw)
        return r->has_memory_limit ? v1_limit(dir, r->memory_limit, err) : 0;
    if (!r->has_memory_limit)
        return set_i64(dir, "memory.memsw.limit_in_bytes", r->memory_swap, MEM ".swap", err);
    if (r->memory_swap != -1) {
        hull_error first = NULL;
        if (v1_limit(dir, r->memory_limit, &first) == 0)
            return set_i64(dir, "memory.memsw.limit_in_bytes", r->memory_swap, MEM ".swap", err);
        if (hull_error_code(first) != EINVAL) {
            hull_error_free(err); /* first is the error to report */
            *err = first;
            return -1;
        }
        hull_error_free(&first); /* EINVAL: below memsw; raise memsw first, as below */
    }
    if (set_i64(dir, "memory.memsw.limit_in_bytes", r->memory_swap, MEM ".swap", err) < 0)
        return -1;
    return v1_limit(dir, r->memory_limit, err);
}

/* Kernels since 6.x keep memory.kmem.limit_in_bytes but ignore writes to it:
 * read back to tell an enforced limit from a no-op. */
static int v1_kmem(const char *dir, const char *file, int64_t v, const char *field, hull_error *err)
{
    if (set_i64(dir, file, v, field, err) < 0)
        return -1;
    uint64_t got = 0;
    if (v < 0 || cg_read_u64(dir, file, &got, err) < 0)
        return v < 0 ? 0 : -1;
    if (got > (uint64_t)v + 4096)
        return hull_error_set(err, ENOTSUP,
                              "%s: this kernel no longer enforces kernel memory limits", field);
    return 0;
}

int cg_v1_memory(const char *dir, const struct hull_resources *r, hull_error *err)
{
    if (v1_limit_and_swap(dir, r, err) < 0)
        return -1;
    if (r->has_memory_reservation && set_i64(dir, "memory.soft_limit_in_bytes",
                                             r->memory_reservation, MEM ".reservation", err) < 0)
        return -1;
    if (r->has_memory_kernel) {
        /* Deprecated by the runtime-spec and ignored by kernels since 6.x:
         * set where it still bites, else warn and go on, as runc (which
         * ignores it) and crun (which writes it) both accept it. */
        hull_error e = NULL;
        if (v1_kmem(dir, "memory.kmem.limit_in_bytes", r->memory_kernel, MEM ".kernel", &e) < 0)
            hull_warn("%s; ignored", hull_error_msg(e));
        hull_error_free(&e);
    }
    if (r->has_memory_kernel_tcp && v1_kmem(dir, "memory.kmem.tcp.limit_in_bytes",
                                            r->memory_kernel_tcp, MEM ".kernelTCP", err) < 0)
        return -1;
    if (r->has_memory_swappiness &&
        set_u64(dir, "memory.swappiness", r->memory_swappiness, MEM ".swappiness", err) < 0)
        return -1;
    if (r->has_disable_oom_killer &&
        cg_set_field(dir, "memory.oom_control", r->disable_oom_killer ? "1" : "0",
                     MEM ".disableOOMKiller", err) < 0)
        return -1;
    if (r->has_use_hierarchy &&
        cg_set_field(dir, "memory.use_hierarchy", r->use_hierarchy ? "1" : "0", MEM ".useHierarchy",
                     err) < 0)
        return -1;
    return 0;
}

/* The kernel clamps cpu.shares into [2, 262144] without an error: a
 * value it did not keep is refused, as runc does, never silently moved. */
static int v1_shares(const char *dir, uint64_t v, const char *field, hull_error *err)
{
    uint64_t got = 0;
    if (set_u64(dir, "cpu.shares", v, field, err) < 0 ||
        cg_read_u64(dir, "cpu.shares", &got, err) < 0)
        return -1;
    if (got != v)
        return hull_error_set(err, ERANGE,
                              "%s: %llu is outside what the kernel accepts (it would be %llu)",
                              field, (unsigned long long)v, (unsigned long long)got);
    return 0;
}

int cg_v1_cpu(const char *dir, const struct hull_resources *r, hull_error *err)
{
    const char *F = "linux.resources.cpu";
    char f[64];
#define FIELD(name) (snprintf(f, sizeof(f), "%s.%s", F, name), f)
    if (r->has_cpu_shares && r->cpu_shares &&
        v1_shares(dir, r->cpu_shares, FIELD("shares"), err) < 0)
        return -1;
    /* The period first: the quota is checked against it. */
    if (r->has_cpu_period &&
        set_u64(dir, "cpu.cfs_period_us", r->cpu_period, FIELD("period"), err) < 0)
        return -1;
    if (r->has_cpu_quota && set_i64(dir, "cpu.cfs_quota_us", r->cpu_quota, FIELD("quota"), err) < 0)
        return -1;
    if (r->has_cpu_burst && set_u64(dir, "cpu.cfs_burst_us", r->cpu_burst, FIELD("burst"), err) < 0)
        return -1;
    if (r->has_cpu_rt_period &&
        set_u64(dir, "cpu.rt_period_us", r->cpu_rt_period, FIELD("realtimePeriod"), err) < 0)
        return -1;
    if (r->has_cpu_rt_runtime &&
        set_i64(dir, "cpu.rt_runtime_us", r->cpu_rt_runtime, FIELD("realtimeRuntime"), err) < 0)
        return -1;
    if (r->has_cpu_idle && set_i64(dir, "cpu.idle", r->cpu_idle, FIELD("idle"), err) < 0)
        return -1;
#undef FIELD
    return 0;
}

/* "maj:min value" lines, one write each (the kernel takes one per write). */
static int per_device(const char *dir, const char *file, const struct hull_throttle_device *t,
                      size_t n, const char *field, hull_error *err)
{
    for (size_t i = 0; i < n; i++) {
        char line[96], f[160];
        snprintf(line, sizeof(line), "%lld:%lld %llu", (long long)t[i].major, (long long)t[i].minor,
                 (unsigned long long)t[i].rate);
        snprintf(f, sizeof(f), "linux.resources.blockIO.%s[%zu]", field, i);
        if (cg_set_field(dir, file, line, f, err) < 0)
            return -1;
    }
    return 0;
}

int cg_v1_blkio(const char *dir, const struct hull_resources *r, hull_error *err)
{
    const char *F = "linux.resources.blockIO";
    /* With blk-mq the proportional weight lives in BFQ's files. */
    bool bfq = !cg_exists(dir, "blkio.weight") && cg_exists(dir, "blkio.bfq.weight");
    const char *wfile = bfq ? "blkio.bfq.weight" : "blkio.weight";
    const char *wdfile = bfq ? "blkio.bfq.weight_device" : "blkio.weight_device";
    char f[128];
    if (r->has_blkio_weight &&
        set_u64(dir, wfile, r->blkio_weight, "linux.resources.blockIO.weight", err) < 0)
        return -1;
    if (r->has_blkio_leaf_weight && set_u64(dir, "blkio.leaf_weight", r->blkio_leaf_weight,
                                            "linux.resources.blockIO.leafWeight", err) < 0)
        return -1;
    for (size_t i = 0; i < r->n_blkio_weight_devices; i++) {
        const struct hull_weight_device *w = &r->blkio_weight_devices[i];
        char line[96];
        snprintf(f, sizeof(f), "%s.weightDevice[%zu]", F, i);
        if (w->has_weight) {
            snprintf(line, sizeof(line), "%lld:%lld %u", (long long)w->major, (long long)w->minor,
                     w->weight);
            if (cg_set_field(dir, wdfile, line, f, err) < 0)
                return -1;
        }
        if (w->has_leaf_weight) {
            snprintf(line, sizeof(line), "%lld:%lld %u", (long long)w->major, (long long)w->minor,
                     w->leaf_weight);
            if (cg_set_field(dir, "blkio.leaf_weight_device", line, f, err) < 0)
                return -1;
        }
    }
    if (per_device(dir, "blkio.throttle.read_bps_device", r->throttle_read_bps,
                   r->n_throttle_read_bps, "throttleReadBpsDevice", err) < 0 ||
        per_device(dir, "blkio.throttle.write_bps_device", r->throttle_write_bps,
                   r->n_throttle_write_bps, "throttleWriteBpsDevice", err) < 0 ||
        per_device(dir, "blkio.throttle.read_iops_device", r->throttle_read_iops,
                   r->n_throttle_read_iops, "throttleReadIOPSDevice", err) < 0 ||
        per_device(dir, "blkio.throttle.write_iops_device", r->throttle_write_iops,
                   r->n_throttle_write_iops, "throttleWriteIOPSDevice", err) < 0)
        return -1;
    return 0;
}

static int open_ctl(const char *dir, const char *file, hull_error *err)
{
    char p[PATH_MAX];
    snprintf(p, sizeof(p), "%s/%s", dir, file);
    int fd = open(p, O_WRONLY | O_CLOEXEC);
    if (fd < 0)
        hull_error_errno(err, "linux.resources.devices: open %s", p);
    return fd;
}

/* Deny everything first, then replay the rules in order: the v1 devices
 * controller keeps an allow list, so what is left is what the rules allow,
 * whatever the cgroup allowed before (an update starts from scratch too). */
int cg_v1_devices(const char *dir, const struct hull_resources *r, hull_error *err)
{
    cleanup_close int deny = open_ctl(dir, "devices.deny", err);
    if (deny < 0)
        return -1;
    cleanup_close int allow = open_ctl(dir, "devices.allow", err);
    if (allow < 0)
        return -1;
    if (write(deny, "a", 1) < 0)
        return hull_error_errno(err, "linux.resources.devices: deny all");
    for (size_t i = 0; i < r->n_devices; i++) {
        const struct hull_device_rule *d = &r->devices[i];
        char line[96], maj[24] = "*", min[24] = "*";
        if (d->major >= 0)
            snprintf(maj, sizeof(maj), "%lld", (long long)d->major);
        if (d->minor >= 0)
            snprintf(min, sizeof(min), "%lld", (long long)d->minor);
        int n = snprintf(line, sizeof(line), "%c %s:%s %s", d->type, maj, min, d->access);
        if (write(d->allow ? allow : deny, line, (size_t)n) < 0)
            return hull_error_errno(err, "linux.resources.devices[%zu]: %s '%s'", i,
                                    d->allow ? "allow" : "deny", line);
    }
    return 0;
}

int cg_v1_net(const char *cls_dir, const char *prio_dir, const struct hull_resources *r,
              hull_error *err)
{
    if (r->has_net_cls_classid && cls_dir != NULL &&
        set_u64(cls_dir, "net_cls.classid", r->net_cls_classid, "linux.resources.network.classID",
                err) < 0)
        return -1;
    for (size_t i = 0; prio_dir != NULL && r->net_prio && r->net_prio[i]; i += 2) {
        char line[128], f[96];
        snprintf(line, sizeof(line), "%s %s", r->net_prio[i], r->net_prio[i + 1]);
        snprintf(f, sizeof(f), "linux.resources.network.priorities[%zu]", i / 2);
        if (cg_set_field(prio_dir, "net_prio.ifpriomap", line, f, err) < 0)
            return -1;
    }
    return 0;
}

/* ---- the same files on v1 and v2 ---- */

int cg_cpuset(const char *dir, const struct hull_resources *r, hull_error *err)
{
    if (r->cpu_cpus && r->cpu_cpus[0] &&
        cg_set_field(dir, "cpuset.cpus", r->cpu_cpus, "linux.resources.cpu.cpus", err) < 0)
        return -1;
    if (r->cpu_mems && r->cpu_mems[0] &&
        cg_set_field(dir, "cpuset.mems", r->cpu_mems, "linux.resources.cpu.mems", err) < 0)
        return -1;
    return 0;
}

int cg_pids(const char *dir, const struct hull_resources *r, hull_error *err)
{
    char buf[32] = "max";
    /* The spec's 0 and -1 both mean no limit. */
    if (r->pids_limit > 0)
        snprintf(buf, sizeof(buf), "%lld", (long long)r->pids_limit);
    return cg_set_field(dir, "pids.max", buf, "linux.resources.pids.limit", err);
}

int cg_hugetlb(const char *dir, bool v2, const struct hull_resources *r, hull_error *err)
{
    for (size_t i = 0; i < r->n_hugepage_limits; i++) {
        const struct hull_hugepage_limit *h = &r->hugepage_limits[i];
        char file[128], rsvd[128], f[96];
        snprintf(f, sizeof(f), "linux.resources.hugepageLimits[%zu]", i);
        if (strchr(h->page_size, '/') != NULL || strlen(h->page_size) > 32)
            return hull_error_set(err, EINVAL, "%s.pageSize: '%s' is not a page size", f,
                                  h->page_size);
        snprintf(file, sizeof(file), "hugetlb.%s.%s", h->page_size, v2 ? "max" : "limit_in_bytes");
        snprintf(rsvd, sizeof(rsvd), "hugetlb.%s.rsvd.%s", h->page_size,
                 v2 ? "max" : "limit_in_bytes");
        if (!cg_exists(dir, file))
            return hull_error_set(err, ENOTSUP,
                                  "%s.pageSize: '%s' is not a huge page size of this host", f,
                                  h->page_size);
        if (set_u64(dir, file, h->limit, f, err) < 0)
            return -1;
        /* Reservations count too where the kernel tracks them, so that a
         * mapping cannot reserve past the limit and fault later. */
        if (cg_exists(dir, rsvd) && set_u64(dir, rsvd, h->limit, f, err) < 0)
            return -1;
    }
    return 0;
}
