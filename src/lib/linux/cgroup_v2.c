/* linux.resources on cgroup v2: the OCI fields were designed around v1, so
 * several translate (shares -> cpu.weight, memory+swap -> swap.max,
 * blkio weight -> io.weight) and a few have no v2 counterpart at all
 * (kernel memory, swappiness, realtime, disabling the OOM killer): those
 * are errors when set, since the host cannot enforce them. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "linux/cgroup_internal.h"
#include "util/error.h"
#include "util/log.h"

#define MEM "linux.resources.memory"
#define CPU "linux.resources.cpu"

/* [lo, hi] onto cgroup2's [1, 10000], clamping; 0 stays "unset". */
static uint64_t rescale(uint64_t v, uint64_t lo, uint64_t hi)
{
    if (v == 0)
        return 0;
    v = v < lo ? lo : v > hi ? hi : v;
    return 1 + ((v - lo) * 9999) / (hi - lo);
}

/* As runc and crun convert them. */
uint64_t cg_shares_to_weight(uint64_t shares)
{
    return rescale(shares, 2, 262144);
}

uint64_t cg_blkio_to_io_weight(uint64_t weight)
{
    return rescale(weight, 10, 1000);
}

static void limit_str(char *buf, size_t len, int64_t v)
{
    if (v < 0)
        snprintf(buf, len, "max");
    else
        snprintf(buf, len, "%lld", (long long)v);
}

static int unsupported(const char *field, hull_error *err)
{
    return hull_error_set(err, ENOTSUP, "%s: not supported on cgroup v2", field);
}

int cg_v2_memory(const char *dir, const struct hull_resources *r, hull_error *err)
{
    char v[32];
    /* kernel is deprecated (runtime-spec) and has no cgroup2 file: runc
     * ignores it, so a config made for runc must not fail here. kernelTCP
     * is not deprecated and v1 enforces it: refused. */
    if (r->has_memory_kernel && r->memory_kernel != -1)
        hull_warn(MEM ".kernel: deprecated, not supported on cgroup v2; ignored");
    if (r->has_memory_kernel_tcp && r->memory_kernel_tcp != -1)
        return unsupported(MEM ".kernelTCP", err);
    if (r->has_memory_swappiness)
        return unsupported(MEM ".swappiness", err);
    if (r->has_disable_oom_killer && r->disable_oom_killer)
        return unsupported(MEM ".disableOOMKiller", err);
    if (r->has_use_hierarchy && !r->use_hierarchy)
        return hull_error_set(err, ENOTSUP,
                              MEM ".useHierarchy: cgroup v2 is always "
                                  "hierarchical");
    /* OCI's swap is memory+swap; swap.max is swap alone. */
    char swap[32] = "";
    if (r->has_memory_swap) {
        bool limited = r->has_memory_limit && r->memory_limit >= 0;
        if (r->memory_swap < 0)
            snprintf(swap, sizeof(swap), "max");
        else if (!limited)
            return hull_error_set(err, EINVAL,
                                  MEM ".swap: on cgroup v2 it needs memory.limit as well");
        else
            snprintf(swap, sizeof(swap), "%lld", (long long)(r->memory_swap - r->memory_limit));
    }
    if (r->has_memory_limit) {
        limit_str(v, sizeof(v), r->memory_limit);
        if (cg_set_field(dir, "memory.max", v, MEM ".limit", err) < 0)
            return -1;
    }
    if (swap[0] && cg_set_field(dir, "memory.swap.max", swap, MEM ".swap", err) < 0)
        return -1;
    if (r->has_memory_reservation) {
        limit_str(v, sizeof(v), r->memory_reservation);
        if (cg_set_field(dir, "memory.low", v, MEM ".reservation", err) < 0)
            return -1;
    }
    return 0;
}

int cg_v2_cpu(const char *dir, const struct hull_resources *r, hull_error *err)
{
    char v[64];
    if (r->has_cpu_rt_runtime || r->has_cpu_rt_period)
        return unsupported(r->has_cpu_rt_runtime ? CPU ".realtimeRuntime" : CPU ".realtimePeriod",
                           err);
    if (r->has_cpu_shares && r->cpu_shares) {
        snprintf(v, sizeof(v), "%llu", (unsigned long long)cg_shares_to_weight(r->cpu_shares));
        if (cg_set_field(dir, "cpu.weight", v, CPU ".shares", err) < 0)
            return -1;
    }
    if (r->has_cpu_quota || r->has_cpu_period) {
        /* cpu.max holds both: keep the half the spec leaves unset. */
        char cur[64] = "max 100000", quota[32];
        if (!r->has_cpu_quota || !r->has_cpu_period) {
            hull_error e = NULL;
            /* Unreadable: the kernel's default ("max 100000") stands in. */
            if (cg_read(dir, "cpu.max", cur, sizeof(cur), &e) < 0)
                hull_debug("%s/cpu.max: %s", dir, hull_error_msg(e));
            hull_error_free(&e);
        }
        unsigned long long period = strtoull(strchrnul(cur, ' '), NULL, 10);
        snprintf(quota, sizeof(quota), "%.*s", (int)strcspn(cur, " \n"), cur);
        if (r->has_cpu_quota)
            limit_str(quota, sizeof(quota), r->cpu_quota);
        if (r->has_cpu_period)
            period = r->cpu_period;
        snprintf(v, sizeof(v), "%s %llu", quota, period ? period : 100000ULL);
        if (cg_set_field(dir, "cpu.max", v, r->has_cpu_quota ? CPU ".quota" : CPU ".period", err) <
            0)
            return -1;
    }
    if (r->has_cpu_burst) {
        snprintf(v, sizeof(v), "%llu", (unsigned long long)r->cpu_burst);
        if (cg_set_field(dir, "cpu.max.burst", v, CPU ".burst", err) < 0)
            return -1;
    }
    if (r->has_cpu_idle) {
        snprintf(v, sizeof(v), "%lld", (long long)r->cpu_idle);
        if (cg_set_field(dir, "cpu.idle", v, CPU ".idle", err) < 0)
            return -1;
    }
    return 0;
}

static int io_max(const char *dir, const char *key, const struct hull_throttle_device *t, size_t n,
                  const char *field, hull_error *err)
{
    for (size_t i = 0; i < n; i++) {
        char line[128], f[128];
        snprintf(line, sizeof(line), "%lld:%lld %s=%llu", (long long)t[i].major,
                 (long long)t[i].minor, key, (unsigned long long)t[i].rate);
        snprintf(f, sizeof(f), "linux.resources.blockIO.%s[%zu]", field, i);
        if (cg_set_field(dir, "io.max", line, f, err) < 0)
            return -1;
    }
    return 0;
}

int cg_v2_io(const char *dir, const struct hull_resources *r, hull_error *err)
{
    if (r->has_blkio_leaf_weight)
        return unsupported("linux.resources.blockIO.leafWeight", err);
    /* BFQ takes the v1 range as is; io.weight (the io cost model) takes
     * the converted one. */
    bool bfq = cg_exists(dir, "io.bfq.weight");
    const char *wfile = bfq ? "io.bfq.weight" : "io.weight";
    char line[96], f[128];
    if (r->has_blkio_weight) {
        uint64_t w = bfq ? r->blkio_weight : cg_blkio_to_io_weight(r->blkio_weight);
        snprintf(line, sizeof(line), "%s%llu", bfq ? "" : "default ", (unsigned long long)w);
        if (cg_set_field(dir, wfile, line, "linux.resources.blockIO.weight", err) < 0)
            return -1;
    }
    for (size_t i = 0; i < r->n_blkio_weight_devices; i++) {
        const struct hull_weight_device *d = &r->blkio_weight_devices[i];
        snprintf(f, sizeof(f), "linux.resources.blockIO.weightDevice[%zu]", i);
        if (d->has_leaf_weight)
            return unsupported(f, err);
        if (!d->has_weight)
            continue;
        uint64_t w = bfq ? d->weight : cg_blkio_to_io_weight(d->weight);
        snprintf(line, sizeof(line), "%lld:%lld %llu", (long long)d->major, (long long)d->minor,
                 (unsigned long long)w);
        if (cg_set_field(dir, wfile, line, f, err) < 0)
            return -1;
    }
    if (io_max(dir, "rbps", r->throttle_read_bps, r->n_throttle_read_bps, "throttleReadBpsDevice",
               err) < 0 ||
        io_max(dir, "wbps", r->throttle_write_bps, r->n_throttle_write_bps,
               "throttleWriteBpsDevice", err) < 0 ||
        io_max(dir, "riops", r->throttle_read_iops, r->n_throttle_read_iops,
               "throttleReadIOPSDevice", err) < 0 ||
        io_max(dir, "wiops", r->throttle_write_iops, r->n_throttle_write_iops,
               "throttleWriteIOPSDevice", err) < 0)
        return -1;
    return 0;
}

/* Keys were checked by hull_cgroup_apply (a plain file name, controller
 * available); written verbatim and last, so they override the fields. */
int cg_v2_unified(const char *dir, char *const *kv, hull_error *err)
{
    for (size_t i = 0; kv[i] != NULL && kv[i + 1] != NULL; i += 2) {
        char f[300];
        snprintf(f, sizeof(f), "linux.resources.unified.%s", kv[i]);
        if (cg_set_field(dir, kv[i], kv[i + 1], f, err) < 0)
            return -1;
    }
    return 0;
}
