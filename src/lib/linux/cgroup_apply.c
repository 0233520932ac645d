/* hull_cgroup_apply: linux.resources -> control files, for create and update.
 *
 * Each resource goes to the hierarchy that enforces its controller: on a
 * hybrid host that is a v1 hierarchy when one has the controller and
 * cgroup2 otherwise (this machine's hugetlb). Everything that can be
 * refused without touching the kernel (a missing controller, a bad
 * unified key, a limit below current usage) is refused before the first
 * write, so bad input changes nothing.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "linux/cgroup_internal.h"
#include "util/error.h"
#include "util/log.h"

static const char *const ctrl_field[CG_NCTRL] = {
    [CG_CPU] = "linux.resources.cpu",
    [CG_CPUSET] = "linux.resources.cpu.cpus/mems",
    [CG_MEMORY] = "linux.resources.memory",
    [CG_DEVICES] = "linux.resources.devices",
    [CG_BLKIO] = "linux.resources.blockIO",
    [CG_PIDS] = "linux.resources.pids",
    [CG_HUGETLB] = "linux.resources.hugepageLimits",
    [CG_NET_CLS] = "linux.resources.network.classID",
    [CG_NET_PRIO] = "linux.resources.network.priorities",
};

static bool nonempty(const char *s)
{
    return s != NULL && s[0] != '\0';
}

uint32_t cg_resources_ctrls(const struct hull_resources *r)
{
    uint32_t m = 0;
    if (r->has_memory_limit || r->has_memory_reservation || r->has_memory_swap ||
        r->has_memory_kernel || r->has_memory_kernel_tcp || r->has_memory_swappiness ||
        r->has_disable_oom_killer || r->has_use_hierarchy)
        m |= CG_BIT(CG_MEMORY);
    if ((r->has_cpu_shares && r->cpu_shares) || r->has_cpu_quota || r->has_cpu_period ||
        r->has_cpu_burst || r->has_cpu_rt_runtime || r->has_cpu_rt_period || r->has_cpu_idle)
        m |= CG_BIT(CG_CPU);
    if (nonempty(r->cpu_cpus) || nonempty(r->cpu_mems))
        m |= CG_BIT(CG_CPUSET);
    if (r->has_pids_limit)
        m |= CG_BIT(CG_PIDS);
    if (r->has_blkio_weight || r->has_blkio_leaf_weight || r->n_blkio_weight_devices ||
        r->n_throttle_read_bps || r->n_throttle_write_bps || r->n_throttle_read_iops ||
        r->n_throttle_write_iops)
        m |= CG_BIT(CG_BLKIO);
    if (r->n_hugepage_limits)
        m |= CG_BIT(CG_HUGETLB);
    if (r->n_devices)
        m |= CG_BIT(CG_DEVICES);
    if (r->has_net_cls_classid)
        m |= CG_BIT(CG_NET_CLS);
    if (r->net_prio != NULL && r->net_prio[0] != NULL)
        m |= CG_BIT(CG_NET_PRIO);
    return m;
}

const char *hull_cgroup_needed_by(const struct hull_resources *r, bool ignore_devices)
{
    if (r == NULL)
        return NULL;
    uint32_t need = cg_resources_ctrls(r);
    if (ignore_devices)
        need &= ~CG_BIT(CG_DEVICES);
    for (int c = 0; c < CG_NCTRL; c++)
        if ((need & CG_BIT(c)) && ctrl_field[c] != NULL)
            return ctrl_field[c];
    if (r->unified != NULL && r->unified[0] != NULL)
        return "linux.resources.unified";
    if (r->rdma != NULL && r->rdma[0] != NULL)
        return "linux.resources.rdma";
    return NULL;
}

int hull_cgroup_check_disabled(const struct hull_resources *r, hull_error *err)
{
    const char *field = hull_cgroup_needed_by(r, true);
    if (field != NULL)
        return hull_error_set(err, ENOTSUP, "%s: cannot be enforced with --cgroup-manager disabled",
                              field);
    /* Allow rules change nothing without a cgroup, and "deny all" still
     * holds for every node the container does not have; a deny of a
     * particular node it has would not. */
    for (size_t i = 0; r != NULL && i < r->n_devices; i++) {
        if (!r->devices[i].allow && r->devices[i].type != 'a') {
            hull_warn("linux.resources.devices[%zu]: not enforced with --cgroup-manager disabled",
                      i);
            break;
        }
    }
    return 0;
}

static int check_unified(const struct cg_layout *L, char *const *kv, uint32_t *ctrls,
                         hull_error *err)
{
    if (kv == NULL || kv[0] == NULL)
        return 0;
    if (L->v2 < 0)
        return hull_error_set(err, ENOTSUP,
                              "linux.resources.unified: needs cgroup v2, and this host has "
                              "only v1 hierarchies");
    for (size_t i = 0; kv[i] != NULL && kv[i + 1] != NULL; i += 2) {
        const char *k = kv[i];
        /* A key is a file name in the container's own directory, never a
         * path that could reach another cgroup. */
        if (k[0] == '\0' || strchr(k, '/') != NULL || strcmp(k, ".") == 0 || strcmp(k, "..") == 0 ||
            strchr(k, '.') == NULL)
            return hull_error_set(err, EINVAL,
                                  "linux.resources.unified: '%s' is not a cgroup2 control "
                                  "file name",
                                  k);
        /* Membership, killing and freezing belong to the runtime: a key
         * writing cgroup.procs could pull a host process into the
         * container's cgroup, where destroy would kill it. */
        static const char *const reserved[] = {
            "cgroup.procs",  "cgroup.threads",         "cgroup.kill",
            "cgroup.freeze", "cgroup.subtree_control", "cgroup.type"};
        for (size_t j = 0; j < sizeof(reserved) / sizeof(reserved[0]); j++)
            if (strcmp(k, reserved[j]) == 0)
                return hull_error_set(err, EPERM,
                                      "linux.resources.unified.%s: managed by the runtime, "
                                      "not settable",
                                      k);
        size_t pl = strcspn(k, ".");
        for (int c = 0; c < CG_NCTRL; c++) {
            const char *n = cg_ctrl_v2_name[c];
            if (n == NULL || strlen(n) != pl || strncmp(n, k, pl) != 0)
                continue;
            if (!(L->h[L->v2].ctrls & CG_BIT(c)))
                return hull_error_set(err, ENOTSUP,
                                      "linux.resources.unified.%s: the %s controller is not "
                                      "available on this host's cgroup2",
                                      k, n);
            *ctrls |= CG_BIT(c);
        }
    }
    return 0;
}

/* Shrinking the limit below what the container uses makes v1 fail with
 * EBUSY after a futile reclaim and makes v2 OOM-kill it: refuse first. */
static int check_memory_usage(struct hull_cgroup *cg, const struct hull_resources *r,
                              hull_error *err)
{
    if (cg->fresh || !r->has_memory_limit || r->memory_limit < 0)
        return 0;
    int h = cg_hier_of(cg->L, CG_MEMORY);
    if (h < 0 || !cg->n[h].joined)
        return 0;
    uint64_t usage = 0;
    const char *file = cg->L->h[h].v2 ? "memory.current" : "memory.usage_in_bytes";
    if (cg_read_u64(cg->n[h].dir, file, &usage, err) < 0)
        return -1;
    if (usage > (uint64_t)r->memory_limit)
        return hull_error_set(err, EBUSY,
                              "linux.resources.memory.limit: %lld is below the container's "
                              "current memory usage (%llu bytes)",
                              (long long)r->memory_limit, (unsigned long long)usage);
    return 0;
}

static const char *dir_of(struct hull_cgroup *cg, enum cg_ctrl c, bool *v2)
{
    int h = cg_hier_of(cg->L, c);
    if (h < 0 || !cg->n[h].joined)
        return NULL;
    *v2 = cg->L->h[h].v2;
    return cg->n[h].dir;
}

static int write_all(struct hull_cgroup *cg, const struct hull_resources *r, uint32_t need,
                     hull_error *err)
{
    bool v2 = false;
    const char *d;
    if ((need & CG_BIT(CG_MEMORY)) && (d = dir_of(cg, CG_MEMORY, &v2)) &&
        (v2 ? cg_v2_memory(d, r, err) : cg_v1_memory(d, r, err)) < 0)
        return -1;
    if ((need & CG_BIT(CG_CPU)) && (d = dir_of(cg, CG_CPU, &v2)) &&
        (v2 ? cg_v2_cpu(d, r, err) : cg_v1_cpu(d, r, err)) < 0)
        return -1;
    if ((need & CG_BIT(CG_CPUSET)) && (d = dir_of(cg, CG_CPUSET, &v2)) && cg_cpuset(d, r, err) < 0)
        return -1;
    if ((need & CG_BIT(CG_PIDS)) && (d = dir_of(cg, CG_PIDS, &v2)) && cg_pids(d, r, err) < 0)
        return -1;
    if ((need & CG_BIT(CG_BLKIO)) && (d = dir_of(cg, CG_BLKIO, &v2)) &&
        (v2 ? cg_v2_io(d, r, err) : cg_v1_blkio(d, r, err)) < 0)
        return -1;
    if ((need & CG_BIT(CG_HUGETLB)) && (d = dir_of(cg, CG_HUGETLB, &v2)) &&
        cg_hugetlb(d, v2, r, err) < 0)
        return -1;
    if ((need & CG_BIT(CG_DEVICES)) && (d = dir_of(cg, CG_DEVICES, &v2)) &&
        (v2 ? cg_devices_bpf_apply(d, r->devices, r->n_devices, err) : cg_v1_devices(d, r, err)) <
            0)
        return -1;
    if (need & (CG_BIT(CG_NET_CLS) | CG_BIT(CG_NET_PRIO))) {
        const char *cls = dir_of(cg, CG_NET_CLS, &v2), *prio = dir_of(cg, CG_NET_PRIO, &v2);
        if (cg_v1_net(cls, prio, r, err) < 0)
            return -1;
    }
    if (r->unified != NULL && r->unified[0] != NULL &&
        cg_v2_unified(cg->n[cg->L->v2].dir, r->unified, err) < 0)
        return -1;
    return 0;
}

int hull_cgroup_check_limits(const struct hull_resources *r, hull_error *err)
{
    if (r != NULL && r->has_memory_limit && r->memory_limit >= 0 &&
        r->memory_limit < HULL_CGROUP_MEMORY_MIN)
        return hull_error_set(err, EINVAL,
                              "linux.resources.memory.limit: %lld is below the minimum of %lld "
                              "bytes a container's processes can start with",
                              (long long)r->memory_limit, (long long)HULL_CGROUP_MEMORY_MIN);
    return 0;
}

/* Everything apply does before its first write: checks, then joining the
 * hierarchies (and enabling the cgroup2 controllers) r needs. */
static int prepare(struct hull_cgroup *cg, const struct hull_resources *r, uint32_t *needp,
                   hull_error *err)
{
    if (hull_cgroup_check_limits(r, err) < 0)
        return -1;
    const struct cg_layout *L = cg->L;
    if (r->rdma != NULL && r->rdma[0] != NULL)
        return hull_error_set(err, ENOTSUP, "linux.resources.rdma: not supported by hull");
    uint32_t need = cg_resources_ctrls(r), v2_ctrls = 0;
    for (int c = 0; c < CG_NCTRL; c++) {
        if (!(need & CG_BIT(c)))
            continue;
        int h = cg_hier_of(L, (enum cg_ctrl)c);
        if (h < 0)
            return hull_error_set(err, ENOTSUP, "%s: the %s controller is not available",
                                  ctrl_field[c], cg_ctrl_v1_name[c]);
        if (L->h[h].v2 && (c == CG_NET_CLS || c == CG_NET_PRIO))
            return hull_error_set(err, ENOTSUP, "%s: the %s controller is not available",
                                  ctrl_field[c], cg_ctrl_v1_name[c]);
        if (L->h[h].v2 && cg_ctrl_v2_name[c] != NULL)
            v2_ctrls |= CG_BIT(c);
    }
    /* OCI's swap counts memory+swap, so it cannot be below the limit. */
    if (r->has_memory_swap && r->has_memory_limit && r->memory_swap >= 0 && r->memory_limit >= 0 &&
        r->memory_swap < r->memory_limit)
        return hull_error_set(err, EINVAL,
                              "linux.resources.memory.swap: %lld is below memory.limit %lld "
                              "(swap counts memory+swap)",
                              (long long)r->memory_swap, (long long)r->memory_limit);
    if (check_unified(L, r->unified, &v2_ctrls, err) < 0 || check_memory_usage(cg, r, err) < 0)
        return -1;
    for (int c = 0; c < CG_NCTRL; c++) {
        int h = (need & CG_BIT(c)) ? cg_hier_of(L, (enum cg_ctrl)c) : -1;
        if (h >= 0 && cg_join(cg, (size_t)h, err) < 0)
            return -1;
    }
    if (L->v2 >= 0 && (v2_ctrls || (r->unified && r->unified[0])) &&
        cg_join(cg, (size_t)L->v2, err) < 0)
        return -1;
    if (cg_v2_enable(cg, v2_ctrls, err) < 0)
        return -1;
    *needp = need;
    return 0;
}

int hull_cgroup_join_for(struct hull_cgroup *cg, const struct hull_resources *r, hull_error *err)
{
    uint32_t need = 0;
    return r == NULL ? 0 : prepare(cg, r, &need, err);
}

int hull_cgroup_apply(struct hull_cgroup *cg, const struct hull_resources *r, hull_error *err)
{
    uint32_t need = 0;
    if (r == NULL)
        return 0;
    if (prepare(cg, r, &need, err) < 0)
        return -1;
    return write_all(cg, r, need, err);
}
