/* config.json -> struct hull_spec.
 *
 * Every check here names the JSON path of the offending value, so a user
 * reading "hull: create c1: config.json: mounts[3].destination: ..." can go
 * straight to the line. Checks that need the filesystem (does the rootfs
 * exist?) happen in hull_spec_load; everything else is pure.
 */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/capability.h>
#include <sys/mount.h>
#include <sys/stat.h>

#include "spec/spec.h"
#include "util/error.h"
#include "util/fs.h"
#include "util/json.h"

#define P(buf, path, key) hj_path(buf, sizeof(buf), path, key)

static int id_mappings_parse(json_object *obj, const char *path, const char *key,
                             struct hull_id_mapping **out, size_t *count, hull_error *err)
{
    char p[512], ep[512];
    json_object *arr = hj_get(obj, key);
    *count = 0;
    if (arr == NULL)
        return 0;
    P(p, path, key);
    if (hj_require_array(arr, p, err) < 0)
        return -1;
    size_t n = json_object_array_length(arr);
    cleanup_free struct hull_id_mapping *m = calloc(n ? n : 1, sizeof(*m));
    if (m == NULL)
        return hull_error_set(err, ENOMEM, "out of memory");
    for (size_t i = 0; i < n; i++) {
        json_object *e = json_object_array_get_idx(arr, i);
        hj_path_index(ep, sizeof(ep), p, i);
        int64_t c = 0, h = 0, s = 0;
        bool pc, ph, ps;
        if (hj_require_object(e, ep, err) < 0 ||
            hj_int_range(e, ep, "containerID", 0, UINT32_MAX, &c, &pc, err) < 0 ||
            hj_int_range(e, ep, "hostID", 0, UINT32_MAX, &h, &ph, err) < 0 ||
            hj_int_range(e, ep, "size", 1, UINT32_MAX, &s, &ps, err) < 0)
            return -1;
        if (!pc || !ph || !ps)
            return hull_error_set(err, EINVAL, "%s: containerID, hostID and size are required", ep);
        m[i] = (struct hull_id_mapping){(uint32_t)c, (uint32_t)h, (uint32_t)s};
    }
    *out = steal_ptr(&m);
    *count = n;
    return 0;
}

static int check_abs_path(const char *value, const char *p, hull_error *err)
{
    if (value == NULL || value[0] != '/')
        return hull_error_set(err, EINVAL, "%s: must be an absolute path", p);
    return 0;
}

/* A path inside the container must not climb above "/" lexically. Symlinks
 * are checked when the path is resolved against the rootfs. */
static int check_in_root(const char *value, const char *p, hull_error *err)
{
    char clean[PATH_MAX];
    if (hull_path_clean(value, clean, sizeof(clean)) < 0)
        return hull_error_set(err, EINVAL, "%s: '%s' escapes the rootfs", p, value);
    return 0;
}

static int mounts_parse(json_object *doc, const char *bundle, struct hull_spec *spec,
                        hull_error *err)
{
    char p[512];
    json_object *arr = hj_get(doc, "mounts");
    if (arr == NULL)
        return 0;
    if (hj_require_array(arr, "mounts", err) < 0)
        return -1;
    size_t n = json_object_array_length(arr);
    spec->mounts = calloc(n ? n : 1, sizeof(struct hull_mount));
    if (spec->mounts == NULL)
        return hull_error_set(err, ENOMEM, "out of memory");
    spec->n_mounts = n;
    for (size_t i = 0; i < n; i++) {
        struct hull_mount *m = &spec->mounts[i];
        json_object *e = json_object_array_get_idx(arr, i);
        hj_path_index(p, sizeof(p), "mounts", i);
        if (hj_require_object(e, p, err) < 0 ||
            hj_string(e, p, "destination", true, &m->destination, err) < 0 ||
            hj_string(e, p, "type", false, &m->type, err) < 0 ||
            hj_string(e, p, "source", false, &m->source, err) < 0 ||
            hj_string_array(e, p, "options", &m->options, NULL, err) < 0 ||
            id_mappings_parse(e, p, "uidMappings", &m->uid_mappings, &m->n_uid_mappings, err) < 0 ||
            id_mappings_parse(e, p, "gidMappings", &m->gid_mappings, &m->n_gid_mappings, err) < 0)
            return -1;
        char dp[600];
        snprintf(dp, sizeof(dp), "%s.destination", p);
        if (m->destination[0] == '\0')
            return hull_error_set(err, EINVAL, "%s: must not be empty", dp);
        if (check_in_root(m->destination, dp, err) < 0)
            return -1;
        if (hull_mount_options_parse(m, p, err) < 0)
            return -1;
        if (m->type == NULL && !m->bind)
            return hull_error_set(err, EINVAL, "%s.type: required unless options has bind", p);
        if (m->bind && (m->source == NULL || m->source[0] == '\0'))
            return hull_error_set(err, EINVAL, "%s.source: required for a bind mount", p);
        /* runtime-spec: a relative bind source is relative to the bundle,
         * not to wherever the runtime happens to be started from. */
        if (m->bind && m->source[0] != '/') {
            char *abs = NULL;
            if (asprintf(&abs, "%s/%s", bundle ? bundle : ".", m->source) < 0)
                return hull_error_set(err, ENOMEM, "out of memory");
            free(m->source);
            m->source = abs;
        }
    }
    return 0;
}

static int caps_parse(json_object *proc, const char *path, struct hull_caps *caps, bool *has,
                      hull_error *err)
{
    char p[512], sp[600];
    json_object *c = hj_get(proc, "capabilities");
    if (c == NULL)
        return 0;
    P(p, path, "capabilities");
    if (hj_require_object(c, p, err) < 0)
        return -1;
    *has = true;
    const char *keys[] = {"bounding", "effective", "inheritable", "permitted", "ambient"};
    char ***sets[] = {&caps->bounding, &caps->effective, &caps->inheritable, &caps->permitted,
                      &caps->ambient};
    for (size_t k = 0; k < 5; k++) {
        if (hj_string_array(c, p, keys[k], sets[k], NULL, err) < 0)
            return -1;
        for (size_t i = 0; *sets[k] && (*sets[k])[i]; i++) {
            /* A CAP_ name this libcap or kernel does not know is accepted
             * (and warned about at create), as runc and crun do: configs
             * made for newer kernels name newer capabilities. */
            if (!hull_cap_name_ok((*sets[k])[i])) {
                snprintf(sp, sizeof(sp), "%s.%s[%zu]", p, keys[k], i);
                return hull_error_set(err, EINVAL, "%s: '%s' is not a capability name (CAP_...)",
                                      sp, (*sets[k])[i]);
            }
        }
    }
    return 0;
}

static int rlimits_parse(json_object *proc, const char *path, struct hull_process *pr,
                         hull_error *err)
{
    char p[512], ep[600];
    json_object *arr = hj_get(proc, "rlimits");
    if (arr == NULL)
        return 0;
    P(p, path, "rlimits");
    if (hj_require_array(arr, p, err) < 0)
        return -1;
    size_t n = json_object_array_length(arr);
    pr->rlimits = calloc(n ? n : 1, sizeof(struct hull_rlimit));
    if (pr->rlimits == NULL)
        return hull_error_set(err, ENOMEM, "out of memory");
    pr->n_rlimits = n;
    for (size_t i = 0; i < n; i++) {
        struct hull_rlimit *r = &pr->rlimits[i];
        json_object *e = json_object_array_get_idx(arr, i);
        hj_path_index(ep, sizeof(ep), p, i);
        bool hs, hh;
        if (hj_require_object(e, ep, err) < 0 ||
            hj_string(e, ep, "type", true, &r->type, err) < 0 ||
            hj_uint64(e, ep, "soft", &r->soft, &hs, err) < 0 ||
            hj_uint64(e, ep, "hard", &r->hard, &hh, err) < 0)
            return -1;
        r->resource = hull_rlimit_from_name(r->type);
        if (r->resource < 0)
            return hull_error_set(err, EINVAL, "%s.type: unknown rlimit '%s'", ep, r->type);
        if (!hs || !hh)
            return hull_error_set(err, EINVAL, "%s: soft and hard are required", ep);
        if (r->soft > r->hard)
            return hull_error_set(err, EINVAL, "%s: soft limit %llu is above hard limit %llu", ep,
                                  (unsigned long long)r->soft, (unsigned long long)r->hard);
        for (size_t j = 0; j < i; j++)
            if (pr->rlimits[j].resource == r->resource)
                return hull_error_set(err, EINVAL, "%s.type: %s given twice", ep, r->type);
    }
    return 0;
}

static int env_check(char **env, const char *p, hull_error *err)
{
    for (size_t i = 0; env && env[i]; i++)
        if (strchr(env[i], '=') == NULL || env[i][0] == '=')
            return hull_error_set(err, EINVAL, "%s.env[%zu]: '%s' must be KEY=VALUE", p, i, env[i]);
    return 0;
}

int hull_process_parse(json_object *proc, const char *p, struct hull_process *pr, hull_error *err)
{
    char q[512];
    if (hj_require_object(proc, p, err) < 0)
        return -1;
    if (hj_bool(proc, p, "terminal", &pr->terminal, err) < 0)
        return -1;

    json_object *cs = hj_get(proc, "consoleSize");
    if (cs != NULL) {
        int64_t h = 0, w = 0;
        P(q, p, "consoleSize");
        if (hj_require_object(cs, q, err) < 0 ||
            hj_int_range(cs, q, "height", 0, UINT16_MAX, &h, NULL, err) < 0 ||
            hj_int_range(cs, q, "width", 0, UINT16_MAX, &w, NULL, err) < 0)
            return -1;
        pr->has_console_size = true;
        pr->console_height = (unsigned)h;
        pr->console_width = (unsigned)w;
    }

    json_object *user = hj_get(proc, "user");
    if (user != NULL) {
        int64_t v = 0;
        bool here;
        P(q, p, "user");
        if (hj_require_object(user, q, err) < 0 ||
            hj_int_range(user, q, "uid", 0, UINT32_MAX - 1, &v, &here, err) < 0)
            return -1;
        pr->user.uid = (uint32_t)v;
        v = 0;
        if (hj_int_range(user, q, "gid", 0, UINT32_MAX - 1, &v, &here, err) < 0)
            return -1;
        pr->user.gid = (uint32_t)v;
        if (hj_int_range(user, q, "umask", 0, 0777, &v, &pr->user.has_umask, err) < 0)
            return -1;
        pr->user.umask = (uint32_t)v;
        json_object *ag = hj_get(user, "additionalGids");
        if (ag != NULL) {
            char ap[600];
            snprintf(ap, sizeof(ap), "%s.additionalGids", q);
            if (hj_require_array(ag, ap, err) < 0)
                return -1;
            size_t n = json_object_array_length(ag);
            pr->user.additional_gids = calloc(n ? n : 1, sizeof(uint32_t));
            if (pr->user.additional_gids == NULL)
                return hull_error_set(err, ENOMEM, "out of memory");
            pr->user.n_additional_gids = n;
            for (size_t i = 0; i < n; i++) {
                json_object *g = json_object_array_get_idx(ag, i);
                int64_t gv = json_object_get_int64(g);
                if (!json_object_is_type(g, json_type_int) || gv < 0 || gv > UINT32_MAX - 1)
                    return hull_error_set(err, EINVAL, "%s[%zu]: must be a gid", ap, i);
                pr->user.additional_gids[i] = (uint32_t)gv;
            }
        }
    }

    size_t nargs = 0;
    json_object *args = hj_get(proc, "args");
    if (args != NULL && !json_object_is_type(args, json_type_array))
        return hull_error_set(err, EINVAL, "%s: must be a non-empty array of strings",
                              P(q, p, "args"));
    if (hj_string_array(proc, p, "args", &pr->args, &nargs, err) < 0) {
        hull_error_free(err); /* replaced by the one message for every bad args */
        return hull_error_set(err, EINVAL, "%s: must be a non-empty array of strings",
                              P(q, p, "args"));
    }
    if (nargs == 0 || pr->args[0][0] == '\0')
        return hull_error_set(err, EINVAL, "%s: must be a non-empty array of strings",
                              P(q, p, "args"));

    if (hj_string_array(proc, p, "env", &pr->env, NULL, err) < 0 || env_check(pr->env, p, err) < 0)
        return -1;
    if (hj_string(proc, p, "cwd", false, &pr->cwd, err) < 0)
        return -1;
    if (pr->cwd == NULL && (pr->cwd = strdup("/")) == NULL)
        return hull_error_set(err, ENOMEM, "out of memory");
    if (check_abs_path(pr->cwd, P(q, p, "cwd"), err) < 0)
        return -1;
    if (caps_parse(proc, p, &pr->caps, &pr->has_caps, err) < 0)
        return -1;
    if (rlimits_parse(proc, p, pr, err) < 0)
        return -1;
    if (hj_bool(proc, p, "noNewPrivileges", &pr->no_new_privileges, err) < 0 ||
        hj_string(proc, p, "apparmorProfile", false, &pr->apparmor_profile, err) < 0 ||
        hj_string(proc, p, "selinuxLabel", false, &pr->selinux_label, err) < 0)
        return -1;
    int64_t oom = 0;
    if (hj_int_range(proc, p, "oomScoreAdj", -1000, 1000, &oom, &pr->has_oom_score_adj, err) < 0)
        return -1;
    pr->oom_score_adj = (int)oom;

    json_object *iop = hj_get(proc, "ioPriority");
    if (iop != NULL) {
        char *cls = NULL;
        int64_t prio = 0;
        P(q, p, "ioPriority");
        if (hj_require_object(iop, q, err) < 0 || hj_string(iop, q, "class", true, &cls, err) < 0 ||
            hj_int_range(iop, q, "priority", 0, 7, &prio, NULL, err) < 0) {
            free(cls);
            return -1;
        }
        if (strcmp(cls, "IOPRIO_CLASS_RT") == 0)
            pr->io_priority_class = 1;
        else if (strcmp(cls, "IOPRIO_CLASS_BE") == 0)
            pr->io_priority_class = 2;
        else if (strcmp(cls, "IOPRIO_CLASS_IDLE") == 0)
            pr->io_priority_class = 3;
        else {
            hull_error_set(err, EINVAL, "%s.class: unknown class '%s'", q, cls);
            free(cls);
            return -1;
        }
        free(cls);
        pr->io_priority = (int)prio;
        pr->has_io_priority = true;
    }

    json_object *sch = hj_get(proc, "scheduler");
    if (sch != NULL) {
        int64_t nice = 0, prio = 0;
        P(q, p, "scheduler");
        if (hj_require_object(sch, q, err) < 0 ||
            hj_string(sch, q, "policy", true, &pr->sched_policy, err) < 0 ||
            hj_int_range(sch, q, "nice", -20, 19, &nice, NULL, err) < 0 ||
            hj_int_range(sch, q, "priority", 0, 99, &prio, NULL, err) < 0 ||
            hj_uint64(sch, q, "runtime", &pr->sched_runtime, NULL, err) < 0 ||
            hj_uint64(sch, q, "deadline", &pr->sched_deadline, NULL, err) < 0 ||
            hj_uint64(sch, q, "period", &pr->sched_period, NULL, err) < 0 ||
            hj_string_array(sch, q, "flags", &pr->sched_flags, NULL, err) < 0)
            return -1;
        if (hull_sched_policy_from_name(pr->sched_policy) < 0)
            return hull_error_set(err, EINVAL, "%s.policy: unknown policy '%s'", q,
                                  pr->sched_policy);
        for (size_t i = 0; pr->sched_flags && pr->sched_flags[i]; i++)
            if (hull_sched_flag_from_name(pr->sched_flags[i]) == 0)
                return hull_error_set(err, EINVAL, "%s.flags[%zu]: unknown flag '%s'", q, i,
                                      pr->sched_flags[i]);
        pr->sched_nice = (int)nice;
        pr->sched_priority = (int)prio;
        pr->has_scheduler = true;
    }
    return 0;
}

static int hooks_list_parse(json_object *hooks, const char *key, struct hull_hook **out,
                            size_t *count, hull_error *err)
{
    char p[512], ep[600];
    json_object *arr = hj_get(hooks, key);
    *count = 0;
    if (arr == NULL)
        return 0;
    snprintf(p, sizeof(p), "hooks.%s", key);
    if (hj_require_array(arr, p, err) < 0)
        return -1;
    size_t n = json_object_array_length(arr);
    *out = calloc(n ? n : 1, sizeof(struct hull_hook));
    if (*out == NULL)
        return hull_error_set(err, ENOMEM, "out of memory");
    *count = n;
    for (size_t i = 0; i < n; i++) {
        struct hull_hook *h = &(*out)[i];
        json_object *e = json_object_array_get_idx(arr, i);
        hj_path_index(ep, sizeof(ep), p, i);
        int64_t t = 0;
        if (hj_require_object(e, ep, err) < 0 ||
            hj_string(e, ep, "path", true, &h->path, err) < 0 ||
            hj_string_array(e, ep, "args", &h->args, NULL, err) < 0 ||
            hj_string_array(e, ep, "env", &h->env, NULL, err) < 0 ||
            hj_int_range(e, ep, "timeout", 1, INT_MAX, &t, &h->has_timeout, err) < 0)
            return -1;
        char pp[700];
        snprintf(pp, sizeof(pp), "%s.path", ep);
        if (check_abs_path(h->path, pp, err) < 0)
            return -1;
        h->timeout = (int)t;
    }
    return 0;
}

static int hooks_parse(json_object *doc, struct hull_hooks *hk, hull_error *err)
{
    json_object *hooks = hj_get(doc, "hooks");
    if (hooks == NULL)
        return 0;
    if (hj_require_object(hooks, "hooks", err) < 0)
        return -1;
    if (hooks_list_parse(hooks, "prestart", &hk->prestart, &hk->n_prestart, err) < 0 ||
        hooks_list_parse(hooks, "createRuntime", &hk->create_runtime, &hk->n_create_runtime, err) <
            0 ||
        hooks_list_parse(hooks, "createContainer", &hk->create_container, &hk->n_create_container,
                         err) < 0 ||
        hooks_list_parse(hooks, "startContainer", &hk->start_container, &hk->n_start_container,
                         err) < 0 ||
        hooks_list_parse(hooks, "poststart", &hk->poststart, &hk->n_poststart, err) < 0 ||
        hooks_list_parse(hooks, "poststop", &hk->poststop, &hk->n_poststop, err) < 0)
        return -1;
    return 0;
}

static int namespaces_parse(json_object *lx, struct hull_linux *l, hull_error *err)
{
    char ep[512];
    json_object *arr = hj_get(lx, "namespaces");
    if (arr == NULL)
        return 0;
    if (hj_require_array(arr, "linux.namespaces", err) < 0)
        return -1;
    size_t n = json_object_array_length(arr);
    for (size_t i = 0; i < n; i++) {
        json_object *e = json_object_array_get_idx(arr, i);
        hj_path_index(ep, sizeof(ep), "linux.namespaces", i);
        cleanup_free char *type = NULL;
        cleanup_free char *path = NULL;
        if (hj_require_object(e, ep, err) < 0 || hj_string(e, ep, "type", true, &type, err) < 0 ||
            hj_string(e, ep, "path", false, &path, err) < 0)
            return -1;
        int t;
        for (t = 0; t < HULL_NS_COUNT; t++)
            if (strcmp(hull_ns_name(t), type) == 0)
                break;
        if (t == HULL_NS_COUNT)
            return hull_error_set(err, EINVAL, "%s.type: unknown namespace '%s'", ep, type);
        if (l->ns[t].enabled)
            return hull_error_set(err, EINVAL, "%s.type: namespace '%s' listed twice", ep, type);
        if (path != NULL && path[0] != '\0' && path[0] != '/')
            return hull_error_set(err, EINVAL, "%s.path: must be an absolute path", ep);
        l->ns[t].enabled = true;
        /* An empty path means none: a new namespace. */
        l->ns[t].path = path != NULL && path[0] == '\0' ? NULL : steal_ptr(&path);
    }
    return 0;
}

static int devices_parse(json_object *lx, struct hull_linux *l, hull_error *err)
{
    char ep[512];
    json_object *arr = hj_get(lx, "devices");
    if (arr == NULL)
        return 0;
    if (hj_require_array(arr, "linux.devices", err) < 0)
        return -1;
    size_t n = json_object_array_length(arr);
    l->devices = calloc(n ? n : 1, sizeof(struct hull_device));
    if (l->devices == NULL)
        return hull_error_set(err, ENOMEM, "out of memory");
    l->n_devices = n;
    for (size_t i = 0; i < n; i++) {
        struct hull_device *d = &l->devices[i];
        json_object *e = json_object_array_get_idx(arr, i);
        hj_path_index(ep, sizeof(ep), "linux.devices", i);
        char *type = NULL;
        int64_t mode = 0, uid = 0, gid = 0;
        bool hmaj, hmin;
        if (hj_require_object(e, ep, err) < 0 || hj_string(e, ep, "type", true, &type, err) < 0)
            return -1;
        d->type = type[0];
        bool bad = strlen(type) != 1 || strchr("cbup", type[0]) == NULL;
        free(type);
        if (bad)
            return hull_error_set(err, EINVAL, "%s.type: must be one of c, b, u, p", ep);
        if (hj_string(e, ep, "path", true, &d->path, err) < 0)
            return -1;
        char pp[600];
        snprintf(pp, sizeof(pp), "%s.path", ep);
        if (check_abs_path(d->path, pp, err) < 0 || check_in_root(d->path, pp, err) < 0)
            return -1;
        if (hj_int_range(e, ep, "major", 0, UINT32_MAX, &d->major, &hmaj, err) < 0 ||
            hj_int_range(e, ep, "minor", 0, UINT32_MAX, &d->minor, &hmin, err) < 0 ||
            hj_int_range(e, ep, "fileMode", 0, 07777, &mode, &d->has_file_mode, err) < 0 ||
            hj_int_range(e, ep, "uid", 0, UINT32_MAX - 1, &uid, &d->has_uid, err) < 0 ||
            hj_int_range(e, ep, "gid", 0, UINT32_MAX - 1, &gid, &d->has_gid, err) < 0)
            return -1;
        if (d->type != 'p' && (!hmaj || !hmin))
            return hull_error_set(err, EINVAL, "%s: major and minor are required", ep);
        d->file_mode = (uint32_t)mode;
        d->uid = (uint32_t)uid;
        d->gid = (uint32_t)gid;
    }
    return 0;
}

static int paths_check(char **v, const char *p, hull_error *err)
{
    char ep[600];
    for (size_t i = 0; v && v[i]; i++) {
        hj_path_index(ep, sizeof(ep), p, i);
        if (check_abs_path(v[i], ep, err) < 0 || check_in_root(v[i], ep, err) < 0)
            return -1;
    }
    return 0;
}

static int time_offset_parse(json_object *offs, const char *key, struct hull_time_offset *t,
                             hull_error *err)
{
    char p[128];
    json_object *o = hj_get(offs, key);
    if (o == NULL)
        return 0;
    snprintf(p, sizeof(p), "linux.timeOffsets.%s", key);
    int64_t ns = 0;
    if (hj_require_object(o, p, err) < 0 || hj_int64(o, p, "secs", &t->secs, NULL, err) < 0 ||
        hj_int_range(o, p, "nanosecs", 0, 999999999, &ns, NULL, err) < 0)
        return -1;
    t->nanosecs = (uint32_t)ns;
    t->set = true;
    return 0;
}

static int linux_parse(json_object *doc, struct hull_spec *spec, hull_error *err)
{
    struct hull_linux *l = &spec->linux_;
    json_object *lx = hj_get(doc, "linux");
    if (lx == NULL)
        return 0;
    const char *p = "linux";
    if (hj_require_object(lx, p, err) < 0 || namespaces_parse(lx, l, err) < 0 ||
        id_mappings_parse(lx, p, "uidMappings", &l->uid_mappings, &l->n_uid_mappings, err) < 0 ||
        id_mappings_parse(lx, p, "gidMappings", &l->gid_mappings, &l->n_gid_mappings, err) < 0 ||
        devices_parse(lx, l, err) < 0 ||
        hj_string(lx, p, "cgroupsPath", false, &l->cgroups_path, err) < 0 ||
        hj_string_map(lx, p, "sysctl", &l->sysctl, NULL, err) < 0 ||
        hj_string(lx, p, "rootfsPropagation", false, &l->rootfs_propagation, err) < 0 ||
        hj_string_array(lx, p, "maskedPaths", &l->masked_paths, NULL, err) < 0 ||
        hj_string_array(lx, p, "readonlyPaths", &l->readonly_paths, NULL, err) < 0 ||
        hj_string(lx, p, "mountLabel", false, &l->mount_label, err) < 0)
        return -1;
    if (paths_check(l->masked_paths, "linux.maskedPaths", err) < 0 ||
        paths_check(l->readonly_paths, "linux.readonlyPaths", err) < 0)
        return -1;
    /* These two have their own fields; as runc, two sources for one value
     * are refused rather than one silently winning. */
    for (char **kv = l->sysctl; kv && kv[0] && kv[1]; kv += 2)
        if (strcmp(kv[0], "kernel.hostname") == 0 || strcmp(kv[0], "kernel.domainname") == 0)
            return hull_error_set(err, EINVAL,
                                  "linux.sysctl: %s conflicts with the %s field; set that instead",
                                  kv[0], kv[0] + strlen("kernel."));
    if (hull_net_devices_parse(lx, l, err) < 0)
        return -1;

    if (l->rootfs_propagation != NULL) {
        static const struct {
            const char *name;
            unsigned long flags;
        } prop[] = {{"private", MS_PRIVATE},       {"rprivate", MS_PRIVATE | MS_REC},
                    {"shared", MS_SHARED},         {"rshared", MS_SHARED | MS_REC},
                    {"slave", MS_SLAVE},           {"rslave", MS_SLAVE | MS_REC},
                    {"unbindable", MS_UNBINDABLE}, {"runbindable", MS_UNBINDABLE | MS_REC}};
        size_t i;
        for (i = 0; i < sizeof(prop) / sizeof(prop[0]); i++)
            if (strcmp(prop[i].name, l->rootfs_propagation) == 0)
                break;
        if (i == sizeof(prop) / sizeof(prop[0]))
            return hull_error_set(err, EINVAL,
                                  "linux.rootfsPropagation: unknown propagation '%s' (private, "
                                  "shared, slave or unbindable)",
                                  l->rootfs_propagation);
        l->rootfs_propagation_flags = prop[i].flags;
    }

    json_object *res = hj_get(lx, "resources");
    if (res != NULL) {
        l->resources = calloc(1, sizeof(*l->resources));
        if (l->resources == NULL)
            return hull_error_set(err, ENOMEM, "out of memory");
        if (hull_resources_parse(res, "linux.resources", l->resources, err) < 0)
            return -1;
    }
    json_object *sec = hj_get(lx, "seccomp");
    if (sec != NULL) {
        l->seccomp = calloc(1, sizeof(*l->seccomp));
        if (l->seccomp == NULL)
            return hull_error_set(err, ENOMEM, "out of memory");
        if (hull_seccomp_parse(sec, "linux.seccomp", l->seccomp, err) < 0)
            return -1;
    }

    json_object *pers = hj_get(lx, "personality");
    if (pers != NULL) {
        const char *pp = "linux.personality";
        if (hj_require_object(pers, pp, err) < 0 ||
            hj_string(pers, pp, "domain", true, &l->personality_domain, err) < 0 ||
            hj_string_array(pers, pp, "flags", &l->personality_flags, NULL, err) < 0)
            return -1;
        if (strcmp(l->personality_domain, "LINUX") != 0 &&
            strcmp(l->personality_domain, "LINUX32") != 0)
            return hull_error_set(err, EINVAL,
                                  "linux.personality.domain: unknown domain '%s' (LINUX or "
                                  "LINUX32)",
                                  l->personality_domain);
        l->has_personality = true;
    }
    l->has_intel_rdt = hj_get(lx, "intelRdt") != NULL;

    json_object *offs = hj_get(lx, "timeOffsets");
    if (offs != NULL) {
        if (hj_require_object(offs, "linux.timeOffsets", err) < 0 ||
            time_offset_parse(offs, "monotonic", &l->time_monotonic, err) < 0 ||
            time_offset_parse(offs, "boottime", &l->time_boottime, err) < 0)
            return -1;
    }
    return 0;
}

/* Checks across sections: what one field requires of another. */
static int spec_cross_check(struct hull_spec *spec, hull_error *err)
{
    struct hull_linux *l = &spec->linux_;
    bool userns = l->ns[HULL_NS_USER].enabled;
    if ((l->n_uid_mappings || l->n_gid_mappings) && !userns)
        return hull_error_set(err, EINVAL,
                              "linux.uidMappings: given without a user namespace in "
                              "linux.namespaces");
    if (userns && l->ns[HULL_NS_USER].path == NULL &&
        (l->n_uid_mappings == 0 || l->n_gid_mappings == 0))
        return hull_error_set(err, EINVAL,
                              "linux.uidMappings: a new user namespace needs uidMappings and "
                              "gidMappings");
    if (spec->hostname && spec->hostname[0] && !l->ns[HULL_NS_UTS].enabled)
        return hull_error_set(err, EINVAL, "hostname: needs a uts namespace in linux.namespaces");
    if (spec->domainname && spec->domainname[0] && !l->ns[HULL_NS_UTS].enabled)
        return hull_error_set(err, EINVAL, "domainname: needs a uts namespace in linux.namespaces");
    if ((l->time_monotonic.set || l->time_boottime.set) &&
        (!l->ns[HULL_NS_TIME].enabled || l->ns[HULL_NS_TIME].path != NULL))
        return hull_error_set(err, EINVAL,
                              "linux.timeOffsets: needs a new time namespace in "
                              "linux.namespaces");
    /* Without a network namespace of its own the container is in the host's:
     * there is nowhere to move a device to (runtime-spec: the runtime MUST
     * check that the move is possible). */
    if (l->n_net_devices && !l->ns[HULL_NS_NET].enabled)
        return hull_error_set(err, EINVAL,
                              "linux.netDevices: needs a network namespace in linux.namespaces "
                              "(the container shares the host's)");
    for (size_t i = 0; i < spec->n_mounts; i++) {
        if (spec->mounts[i].n_uid_mappings || spec->mounts[i].n_gid_mappings)
            return hull_error_set(err, ENOTSUP,
                                  "mounts[%zu].uidMappings: id-mapped mounts are not supported", i);
    }
    return 0;
}

int hull_spec_parse(const char *text, size_t len, const char *bundle, struct hull_spec **out,
                    hull_error *err)
{
    json_object *doc = NULL;
    if (hj_parse(text, len, "config.json", &doc, err) < 0)
        return -1; /* hj_parse already named the file */
    return hull_spec_from_json(doc, bundle, out, err);
}

int hull_spec_from_json(json_object *doc, const char *bundle, struct hull_spec **out,
                        hull_error *err)
{
    /* Freed with all it holds on any failure below. */
    cleanup_spec struct hull_spec *spec = calloc(1, sizeof(*spec));
    if (spec == NULL) {
        json_object_put(doc);
        return hull_error_set(err, ENOMEM, "out of memory");
    }
    spec->json = doc;

    if (hj_string(doc, "", "ociVersion", true, &spec->oci_version, err) < 0)
        return -1;
    char *end = NULL;
    long major = strtol(spec->oci_version, &end, 10);
    if (end == spec->oci_version || (*end != '.' && *end != '\0') || major != 1)
        return hull_error_set(err, EINVAL,
                              "ociVersion: unsupported version '%s' (hull implements %s)",
                              spec->oci_version, HULL_OCI_VERSION);

    json_object *root = hj_get(doc, "root");
    if (root == NULL)
        return hull_error_set(err, EINVAL, "root: required");
    if (hj_require_object(root, "root", err) < 0 ||
        hj_string(root, "root", "path", true, &spec->root_path, err) < 0 ||
        hj_bool(root, "root", "readonly", &spec->root_readonly, err) < 0)
        return -1;
    if (spec->root_path[0] == '/') {
        spec->rootfs = strdup(spec->root_path);
    } else if (asprintf(&spec->rootfs, "%s/%s", bundle ? bundle : ".", spec->root_path) < 0) {
        spec->rootfs = NULL;
    }
    if (spec->rootfs == NULL)
        return hull_error_set(err, ENOMEM, "out of memory");

    if (mounts_parse(doc, bundle, spec, err) < 0)
        return -1;

    json_object *proc = hj_get(doc, "process");
    /* The runtime spec makes process.cwd REQUIRED, and runc refuses a
     * config.json without it: so does hull, rather than start the
     * container's process somewhere the bundle never said. (An exec's
     * --process file may leave it out: "/".) */
    if (proc != NULL && json_object_is_type(proc, json_type_object) && hj_get(proc, "cwd") == NULL)
        return hull_error_set(err, EINVAL,
                              "process.cwd: required (an absolute path in the container, such "
                              "as \"/\")");
    if (proc != NULL) {
        spec->process = calloc(1, sizeof(*spec->process));
        if (spec->process == NULL)
            return hull_error_set(err, ENOMEM, "out of memory");
        if (hull_process_parse(proc, "process", spec->process, err) < 0)
            return -1;
        /* No process.capabilities is every set empty, as runc does: the
         * container must not keep the full set of the root that ran us. */
        spec->process->has_caps = true;
    }
    if (hj_string(doc, "", "hostname", false, &spec->hostname, err) < 0 ||
        hj_string(doc, "", "domainname", false, &spec->domainname, err) < 0 ||
        hooks_parse(doc, &spec->hooks, err) < 0 ||
        hj_string_map(doc, "", "annotations", &spec->annotations, NULL, err) < 0 ||
        linux_parse(doc, spec, err) < 0 || spec_cross_check(spec, err) < 0)
        return -1;

    *out = steal_ptr(&spec);
    return 0;
}

/* The rootfs must be a directory; held absolute and canonical, since later
 * steps run from other cwds. */
static int rootfs_resolve(struct hull_spec *spec, hull_error *err)
{
    struct stat st;
    if (stat(spec->rootfs, &st) < 0)
        return hull_error_errno(err, "root.path: %s", spec->rootfs);
    if (!S_ISDIR(st.st_mode))
        return hull_error_set(err, ENOTDIR, "root.path: %s: not a directory", spec->rootfs);
    char *real = realpath(spec->rootfs, NULL);
    if (real == NULL)
        return hull_error_errno(err, "root.path: %s", spec->rootfs);
    free(spec->rootfs);
    spec->rootfs = real;
    return 0;
}

int hull_spec_load(const char *bundle, const char *config_path, struct hull_spec **out,
                   hull_error *err)
{
    char path[PATH_MAX];
    if (config_path == NULL) {
        snprintf(path, sizeof(path), "%s/config.json", bundle);
        config_path = path;
    }
    cleanup_free char *text = NULL;
    size_t len = 0;
    if (hull_read_file_max(config_path, HULL_SPEC_MAX, &text, &len, err) < 0)
        return hull_error_prefix(err, "config.json");
    if (hull_spec_parse(text, len, bundle, out, err) < 0) {
        /* parse errors from hj_parse already start with "config.json" */
        if (strncmp(hull_error_msg(*err), "config.json", 11) != 0)
            hull_error_prefix(err, "config.json");
        return -1;
    }
    if (rootfs_resolve(*out, err) < 0) {
        hull_error_prefix(err, "config.json");
        hull_spec_free(*out);
        *out = NULL;
        return -1;
    }
    return 0;
}
