/* linux.resources: shared by config.json and `hull update --resources`. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "spec/spec.h"
#include "util/error.h"
#include "util/json.h"
#include "util/strv.h"

static int device_rules_parse(json_object *res, const char *path, struct hull_resources *r,
                              hull_error *err)
{
    char p[512], ep[600];
    json_object *arr = hj_get(res, "devices");
    if (arr == NULL)
        return 0;
    hj_path(p, sizeof(p), path, "devices");
    if (hj_require_array(arr, p, err) < 0)
        return -1;
    size_t n = json_object_array_length(arr);
    r->devices = calloc(n ? n : 1, sizeof(*r->devices));
    if (r->devices == NULL)
        return hull_error_set(err, ENOMEM, "out of memory");
    r->n_devices = n;
    for (size_t i = 0; i < n; i++) {
        struct hull_device_rule *d = &r->devices[i];
        json_object *e = json_object_array_get_idx(arr, i);
        hj_path_index(ep, sizeof(ep), p, i);
        char *type = NULL;
        d->major = d->minor = -1;
        if (hj_require_object(e, ep, err) < 0)
            return -1;
        if (hj_get(e, "allow") == NULL)
            return hull_error_set(err, EINVAL, "%s.allow: required", ep);
        if (hj_bool(e, ep, "allow", &d->allow, err) < 0 ||
            hj_string(e, ep, "type", false, &type, err) < 0)
            return -1;
        d->type = type ? type[0] : 'a';
        bool bad = type && (strlen(type) != 1 || strchr("abc", type[0]) == NULL);
        free(type);
        if (bad)
            return hull_error_set(err, EINVAL, "%s.type: must be a, b or c", ep);
        if (hj_int_range(e, ep, "major", -1, UINT32_MAX, &d->major, NULL, err) < 0 ||
            hj_int_range(e, ep, "minor", -1, UINT32_MAX, &d->minor, NULL, err) < 0 ||
            hj_string(e, ep, "access", false, &d->access, err) < 0)
            return -1;
        if (d->access == NULL && (d->access = strdup("rwm")) == NULL)
            return hull_error_set(err, ENOMEM, "out of memory");
        if (d->access[0] == '\0' || strspn(d->access, "rwm") != strlen(d->access))
            return hull_error_set(err, EINVAL, "%s.access: '%s' must be made of r, w and m", ep,
                                  d->access);
    }
    return 0;
}

static int memory_parse(json_object *res, const char *path, struct hull_resources *r,
                        hull_error *err)
{
    char p[512];
    json_object *m = hj_get(res, "memory");
    if (m == NULL)
        return 0;
    hj_path(p, sizeof(p), path, "memory");
    if (hj_require_object(m, p, err) < 0 ||
        hj_int_range(m, p, "limit", -1, INT64_MAX, &r->memory_limit, &r->has_memory_limit, err) <
            0 ||
        hj_int_range(m, p, "reservation", -1, INT64_MAX, &r->memory_reservation,
                     &r->has_memory_reservation, err) < 0 ||
        hj_int_range(m, p, "swap", -1, INT64_MAX, &r->memory_swap, &r->has_memory_swap, err) < 0 ||
        hj_int_range(m, p, "kernel", -1, INT64_MAX, &r->memory_kernel, &r->has_memory_kernel, err) <
            0 ||
        hj_int_range(m, p, "kernelTCP", -1, INT64_MAX, &r->memory_kernel_tcp,
                     &r->has_memory_kernel_tcp, err) < 0 ||
        hj_uint64(m, p, "swappiness", &r->memory_swappiness, &r->has_memory_swappiness, err) < 0)
        return -1;
    if (r->has_memory_swappiness && r->memory_swappiness > 100)
        return hull_error_set(err, ERANGE, "%s.swappiness: %llu is out of range [0, 100]", p,
                              (unsigned long long)r->memory_swappiness);
    r->has_disable_oom_killer = hj_get(m, "disableOOMKiller") != NULL;
    r->has_use_hierarchy = hj_get(m, "useHierarchy") != NULL;
    r->has_check_before_update = hj_get(m, "checkBeforeUpdate") != NULL;
    if (hj_bool(m, p, "disableOOMKiller", &r->disable_oom_killer, err) < 0 ||
        hj_bool(m, p, "useHierarchy", &r->use_hierarchy, err) < 0 ||
        hj_bool(m, p, "checkBeforeUpdate", &r->check_before_update, err) < 0)
        return -1;
    return 0;
}

static int cpu_parse(json_object *res, const char *path, struct hull_resources *r, hull_error *err)
{
    char p[512];
    json_object *c = hj_get(res, "cpu");
    if (c == NULL)
        return 0;
    hj_path(p, sizeof(p), path, "cpu");
    if (hj_require_object(c, p, err) < 0 ||
        hj_uint64(c, p, "shares", &r->cpu_shares, &r->has_cpu_shares, err) < 0 ||
        hj_int_range(c, p, "quota", -1, INT64_MAX, &r->cpu_quota, &r->has_cpu_quota, err) < 0 ||
        hj_uint64(c, p, "burst", &r->cpu_burst, &r->has_cpu_burst, err) < 0 ||
        hj_uint64(c, p, "period", &r->cpu_period, &r->has_cpu_period, err) < 0 ||
        hj_int64(c, p, "realtimeRuntime", &r->cpu_rt_runtime, &r->has_cpu_rt_runtime, err) < 0 ||
        hj_uint64(c, p, "realtimePeriod", &r->cpu_rt_period, &r->has_cpu_rt_period, err) < 0 ||
        hj_string(c, p, "cpus", false, &r->cpu_cpus, err) < 0 ||
        hj_string(c, p, "mems", false, &r->cpu_mems, err) < 0 ||
        hj_int64(c, p, "idle", &r->cpu_idle, &r->has_cpu_idle, err) < 0)
        return -1;
    return 0;
}

static int weight_devices_parse(json_object *b, const char *p, struct hull_resources *r,
                                hull_error *err)
{
    char ap[600], ep[700];
    json_object *arr = hj_get(b, "weightDevice");
    if (arr == NULL)
        return 0;
    hj_path(ap, sizeof(ap), p, "weightDevice");
    if (hj_require_array(arr, ap, err) < 0)
        return -1;
    size_t n = json_object_array_length(arr);
    r->blkio_weight_devices = calloc(n ? n : 1, sizeof(*r->blkio_weight_devices));
    if (r->blkio_weight_devices == NULL)
        return hull_error_set(err, ENOMEM, "out of memory");
    r->n_blkio_weight_devices = n;
    for (size_t i = 0; i < n; i++) {
        struct hull_weight_device *w = &r->blkio_weight_devices[i];
        json_object *e = json_object_array_get_idx(arr, i);
        hj_path_index(ep, sizeof(ep), ap, i);
        int64_t wt = 0, lw = 0;
        bool hmaj, hmin;
        if (hj_require_object(e, ep, err) < 0 ||
            hj_int_range(e, ep, "major", 0, UINT32_MAX, &w->major, &hmaj, err) < 0 ||
            hj_int_range(e, ep, "minor", 0, UINT32_MAX, &w->minor, &hmin, err) < 0 ||
            hj_int_range(e, ep, "weight", 0, UINT16_MAX, &wt, &w->has_weight, err) < 0 ||
            hj_int_range(e, ep, "leafWeight", 0, UINT16_MAX, &lw, &w->has_leaf_weight, err) < 0)
            return -1;
        if (!hmaj || !hmin)
            return hull_error_set(err, EINVAL, "%s: major and minor are required", ep);
        w->weight = (uint16_t)wt;
        w->leaf_weight = (uint16_t)lw;
    }
    return 0;
}

static int throttle_parse(json_object *b, const char *p, const char *key,
                          struct hull_throttle_device **out, size_t *count, hull_error *err)
{
    char ap[600], ep[700];
    json_object *arr = hj_get(b, key);
    if (arr == NULL)
        return 0;
    hj_path(ap, sizeof(ap), p, key);
    if (hj_require_array(arr, ap, err) < 0)
        return -1;
    size_t n = json_object_array_length(arr);
    *out = calloc(n ? n : 1, sizeof(**out));
    if (*out == NULL)
        return hull_error_set(err, ENOMEM, "out of memory");
    *count = n;
    for (size_t i = 0; i < n; i++) {
        struct hull_throttle_device *t = &(*out)[i];
        json_object *e = json_object_array_get_idx(arr, i);
        hj_path_index(ep, sizeof(ep), ap, i);
        bool hmaj, hmin, hr;
        if (hj_require_object(e, ep, err) < 0 ||
            hj_int_range(e, ep, "major", 0, UINT32_MAX, &t->major, &hmaj, err) < 0 ||
            hj_int_range(e, ep, "minor", 0, UINT32_MAX, &t->minor, &hmin, err) < 0 ||
            hj_uint64(e, ep, "rate", &t->rate, &hr, err) < 0)
            return -1;
        if (!hmaj || !hmin || !hr)
            return hull_error_set(err, EINVAL, "%s: major, minor and rate are required", ep);
    }
    return 0;
}

static int blockio_parse(json_object *res, const char *path, struct hull_resources *r,
                         hull_error *err)
{
    char p[512];
    json_object *b = hj_get(res, "blockIO");
    if (b == NULL)
        return 0;
    hj_path(p, sizeof(p), path, "blockIO");
    int64_t w = 0, lw = 0;
    if (hj_require_object(b, p, err) < 0 ||
        hj_int_range(b, p, "weight", 0, UINT16_MAX, &w, &r->has_blkio_weight, err) < 0 ||
        hj_int_range(b, p, "leafWeight", 0, UINT16_MAX, &lw, &r->has_blkio_leaf_weight, err) < 0 ||
        weight_devices_parse(b, p, r, err) < 0 ||
        throttle_parse(b, p, "throttleReadBpsDevice", &r->throttle_read_bps,
                       &r->n_throttle_read_bps, err) < 0 ||
        throttle_parse(b, p, "throttleWriteBpsDevice", &r->throttle_write_bps,
                       &r->n_throttle_write_bps, err) < 0 ||
        throttle_parse(b, p, "throttleReadIOPSDevice", &r->throttle_read_iops,
                       &r->n_throttle_read_iops, err) < 0 ||
        throttle_parse(b, p, "throttleWriteIOPSDevice", &r->throttle_write_iops,
                       &r->n_throttle_write_iops, err) < 0)
        return -1;
    r->blkio_weight = (uint16_t)w;
    r->blkio_leaf_weight = (uint16_t)lw;
    return 0;
}

static int hugepages_parse(json_object *res, const char *path, struct hull_resources *r,
                           hull_error *err)
{
    char p[512], ep[600];
    json_object *arr = hj_get(res, "hugepageLimits");
    if (arr == NULL)
        return 0;
    hj_path(p, sizeof(p), path, "hugepageLimits");
    if (hj_require_array(arr, p, err) < 0)
        return -1;
    size_t n = json_object_array_length(arr);
    r->hugepage_limits = calloc(n ? n : 1, sizeof(*r->hugepage_limits));
    if (r->hugepage_limits == NULL)
        return hull_error_set(err, ENOMEM, "out of memory");
    r->n_hugepage_limits = n;
    for (size_t i = 0; i < n; i++) {
        struct hull_hugepage_limit *h = &r->hugepage_limits[i];
        json_object *e = json_object_array_get_idx(arr, i);
        hj_path_index(ep, sizeof(ep), p, i);
        bool hl;
        if (hj_require_object(e, ep, err) < 0 ||
            hj_string(e, ep, "pageSize", true, &h->page_size, err) < 0 ||
            hj_uint64(e, ep, "limit", &h->limit, &hl, err) < 0)
            return -1;
        if (!hl)
            return hull_error_set(err, EINVAL, "%s.limit: required", ep);
    }
    return 0;
}

static int network_parse(json_object *res, const char *path, struct hull_resources *r,
                         hull_error *err)
{
    char p[512], ap[600], ep[700];
    json_object *net = hj_get(res, "network");
    if (net == NULL)
        return 0;
    hj_path(p, sizeof(p), path, "network");
    int64_t cls = 0;
    if (hj_require_object(net, p, err) < 0 ||
        hj_int_range(net, p, "classID", 0, UINT32_MAX, &cls, &r->has_net_cls_classid, err) < 0)
        return -1;
    r->net_cls_classid = (uint32_t)cls;
    json_object *arr = hj_get(net, "priorities");
    if (arr == NULL)
        return 0;
    hj_path(ap, sizeof(ap), p, "priorities");
    if (hj_require_array(arr, ap, err) < 0)
        return -1;
    size_t n = json_object_array_length(arr);
    r->net_prio = calloc(2 * n + 1, sizeof(char *));
    if (r->net_prio == NULL)
        return hull_error_set(err, ENOMEM, "out of memory");
    for (size_t i = 0; i < n; i++) {
        json_object *e = json_object_array_get_idx(arr, i);
        hj_path_index(ep, sizeof(ep), ap, i);
        int64_t prio = 0;
        bool hp;
        if (hj_require_object(e, ep, err) < 0 ||
            hj_string(e, ep, "name", true, &r->net_prio[2 * i], err) < 0 ||
            hj_int_range(e, ep, "priority", 0, UINT32_MAX, &prio, &hp, err) < 0)
            return -1;
        if (asprintf(&r->net_prio[2 * i + 1], "%lld", (long long)prio) < 0)
            return hull_error_set(err, ENOMEM, "out of memory");
    }
    return 0;
}

int hull_resources_parse(json_object *res, const char *path, struct hull_resources *r,
                         hull_error *err)
{
    char p[512];
    if (hj_require_object(res, path, err) < 0 || device_rules_parse(res, path, r, err) < 0 ||
        memory_parse(res, path, r, err) < 0 || cpu_parse(res, path, r, err) < 0 ||
        blockio_parse(res, path, r, err) < 0 || hugepages_parse(res, path, r, err) < 0 ||
        network_parse(res, path, r, err) < 0 ||
        hj_string_map(res, path, "unified", &r->unified, NULL, err) < 0)
        return -1;
    json_object *pids = hj_get(res, "pids");
    if (pids != NULL) {
        hj_path(p, sizeof(p), path, "pids");
        if (hj_require_object(pids, p, err) < 0 ||
            hj_int64(pids, p, "limit", &r->pids_limit, &r->has_pids_limit, err) < 0)
            return -1;
        /* 0 sets nothing, as with runc: no limit at create, the limit left
         * as it is at update (an update -r with 0 must not lift it). Only
         * a negative limit means unlimited. */
        if (r->has_pids_limit && r->pids_limit == 0)
            r->has_pids_limit = false;
    }
    json_object *rdma = hj_get(res, "rdma");
    if (rdma != NULL) {
        hj_path(p, sizeof(p), path, "rdma");
        if (hj_require_object(rdma, p, err) < 0)
            return -1;
        if (json_object_object_length(rdma) > 0) {
            r->rdma = calloc(2, sizeof(char *));
            if (r->rdma == NULL || (r->rdma[0] = strdup(hj_to_string(rdma))) == NULL)
                return hull_error_set(err, ENOMEM, "out of memory");
        }
    }
    return 0;
}

void hull_resources_free(struct hull_resources *r)
{
    if (r == NULL)
        return;
    for (size_t i = 0; i < r->n_devices; i++)
        free(r->devices[i].access);
    free(r->devices);
    free(r->cpu_cpus);
    free(r->cpu_mems);
    free(r->blkio_weight_devices);
    free(r->throttle_read_bps);
    free(r->throttle_write_bps);
    free(r->throttle_read_iops);
    free(r->throttle_write_iops);
    for (size_t i = 0; i < r->n_hugepage_limits; i++)
        free(r->hugepage_limits[i].page_size);
    free(r->hugepage_limits);
    hull_strv_free(r->net_prio);
    hull_strv_free(r->rdma);
    hull_strv_free(r->unified);
    memset(r, 0, sizeof(*r));
}
