/* Verbs that act on a container's cgroup: ps, pause, resume, update,
 * events --stats, and the OOM notifier `events` waits on. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "container/container.h"
#include "container/state.h"
#include "hull.h"
#include "linux/cgroup.h"
#include "spec/spec.h"
#include "util/error.h"
#include "util/json.h"
#include "util/log.h"
#include "util/proc.h"

struct managed {
    int dirfd;
    struct hull_cstate cs;
    struct hull_cgroup *cg;
    enum hull_status status;
};

static void managed_release(struct managed *m)
{
    hull_cgroup_free(m->cg);
    hull_cstate_free(&m->cs);
    if (m->dirfd >= 0)
        close(m->dirfd);
    m->cg = NULL;
    m->dirfd = -1;
}

static int managed_load(const struct hull_runtime *rt, const char *id, bool need_cgroup,
                        struct managed *m, hull_error *err)
{
    if (hull_cstate_open(rt->root, id, false, &m->dirfd, err) < 0 ||
        hull_cstate_read(m->dirfd, &m->cs, err) < 0)
        return -1;
    if (m->cs.cgroup == NULL && need_cgroup)
        return hull_error_set(err, ENOTSUP,
                              "the container has no cgroup (a rootless runtime could not create "
                              "one)");
    if (m->cs.cgroup != NULL && hull_cgroup_load(m->cs.cgroup, &m->cg, err) < 0)
        return -1;
    bool frozen = false;
    if (m->cg && hull_pid_alive(m->cs.pid, m->cs.pid_start) &&
        hull_cgroup_is_frozen(m->cg, &frozen, err) < 0)
        return -1;
    m->status = hull_cstate_status(m->dirfd, &m->cs, frozen);
    return 0;
}

/* Lock, read state, load the cgroup, derive the status. Without need_cgroup,
 * a container that has none (rootless) opens with m->cg NULL. On failure
 * nothing is held (m is released). */
static int managed_open_ex(const struct hull_runtime *rt, const char *id, bool need_cgroup,
                           struct managed *m, hull_error *err)
{
    memset(m, 0, sizeof(*m));
    m->dirfd = -1;
    if (managed_load(rt, id, need_cgroup, m, err) < 0) {
        managed_release(m);
        return -1;
    }
    return 0;
}

static int managed_open(const struct hull_runtime *rt, const char *id, struct managed *m,
                        hull_error *err)
{
    return managed_open_ex(rt, id, true, m, err);
}

int hull_container_pids(const struct hull_runtime *rt, const char *id, pid_t **pids, size_t *count,
                        hull_error *err)
{
    struct managed m;
    if (managed_open_ex(rt, id, false, &m, err) < 0)
        return hull_error_prefix(err, "ps %s", id);
    *pids = NULL;
    *count = 0;
    int r = 0;
    if (m.cg)
        r = hull_cgroup_pids(m.cg, pids, count, err);
    else if (m.status != HULL_STATUS_STOPPED) /* no cgroup (rootless): its pid namespace */
        r = hull_pidns_pids(m.cs.pid, pids, count, err);
    managed_release(&m);
    return r < 0 ? hull_error_prefix(err, "ps %s", id) : 0;
}

static int freeze(const struct hull_runtime *rt, const char *id, bool pause, hull_error *err)
{
    const char *verb = pause ? "pause" : "resume";
    struct managed m;
    if (managed_open(rt, id, &m, err) < 0)
        return hull_error_prefix(err, "%s %s", verb, id);
    int r = -1;
    enum hull_status want = pause ? HULL_STATUS_RUNNING : HULL_STATUS_PAUSED;
    if (m.status != want && !(pause && m.status == HULL_STATUS_CREATED))
        hull_error_set(err, EINVAL, "%s %s: the container is %s, not %s", verb, id,
                       hull_status_name(m.status), hull_status_name(want));
    else if (hull_cgroup_freeze(m.cg, pause, err) < 0)
        hull_error_prefix(err, "%s %s", verb, id);
    else
        r = 0;
    managed_release(&m);
    return r;
}

int hull_container_pause(const struct hull_runtime *rt, const char *id, hull_error *err)
{
    return freeze(rt, id, true, err);
}

int hull_container_resume(const struct hull_runtime *rt, const char *id, hull_error *err)
{
    return freeze(rt, id, false, err);
}

/* Merge the update into the recorded config, so exec and state stay true. */
static void record_resources(json_object *config, json_object *update)
{
    json_object *lx = hj_get(config, "linux");
    if (lx == NULL) {
        lx = json_object_new_object();
        json_object_object_add(config, "linux", lx);
    }
    json_object *res = hj_get(lx, "resources");
    if (res == NULL) {
        res = json_object_new_object();
        json_object_object_add(lx, "resources", res);
    }
    json_object_object_foreach(update, key, val)
    {
        if (strcmp(key, "devices") == 0)
            continue; /* never applied: see keep_device_rules */
        json_object *cur = hj_get(res, key);
        if (cur && json_object_is_type(cur, json_type_object) &&
            json_object_is_type(val, json_type_object)) {
            json_object_object_foreach(val, k2, v2)
                json_object_object_add(cur, k2, json_object_get(v2));
        } else {
            json_object_object_add(res, key, json_object_get(val));
        }
    }
}

/* An update leaves the device rules as create made them, as runc's does:
 * the runc shim hands over the whole linux.resources it holds (containerd's
 * CRI plugin: a bare "deny all" beside the new limits), and applying those
 * rules alone would take /dev/null, /dev/ptmx and the spec's linux.devices
 * from the running container, which create granted after the spec's rules. */
static void keep_device_rules(const char *id, struct hull_resources *r)
{
    if (r->n_devices)
        hull_debug("update %s: linux.resources.devices left as create set them", id);
    for (size_t i = 0; i < r->n_devices; i++)
        free(r->devices[i].access);
    free(r->devices);
    r->devices = NULL;
    r->n_devices = 0;
}

int hull_container_update(const struct hull_runtime *rt, const char *id, const char *resources_json,
                          hull_error *err)
{
    /* Released in reverse: the container, the limits, the document. */
    cleanup_json json_object *doc = NULL;
    __attribute__((cleanup(hull_resources_free))) struct hull_resources r = {0};
    if (hj_parse(resources_json, strlen(resources_json), "resources", &doc, err) < 0 ||
        hull_resources_parse(doc, "linux.resources", &r, err) < 0)
        return hull_error_prefix(err, "update %s", id);
    __attribute__((cleanup(managed_release))) struct managed m;
    if (managed_open(rt, id, &m, err) < 0)
        return hull_error_prefix(err, "update %s", id);
    if (m.status == HULL_STATUS_STOPPED)
        return hull_error_set(err, EINVAL, "update %s: the container is stopped", id);
    keep_device_rules(id, &r);
    if (hull_cgroup_apply(m.cg, &r, err) < 0)
        return hull_error_prefix(err, "update %s", id);
    if (m.cs.config)
        record_resources(m.cs.config, doc);
    return hull_cstate_write(m.dirfd, &m.cs, err);
}

char *hull_container_stats_json(const struct hull_runtime *rt, const char *id, hull_error *err)
{
    struct managed m;
    if (managed_open(rt, id, &m, err) < 0) {
        hull_error_prefix(err, "events %s", id);
        return NULL;
    }
    char *out = NULL;
    if (m.status == HULL_STATUS_STOPPED) {
        hull_error_set(err, ESRCH, "events %s: the container is stopped", id);
    } else {
        json_object *data = hull_cgroup_stats_json(m.cg, err);
        if (data == NULL) {
            hull_error_prefix(err, "events %s", id);
        } else {
            json_object *ev = json_object_new_object();
            json_object_object_add(ev, "type", json_object_new_string("stats"));
            json_object_object_add(ev, "id", json_object_new_string(id));
            json_object_object_add(ev, "data", data);
            out = strdup(hj_to_string(ev));
            json_object_put(ev);
        }
    }
    managed_release(&m);
    return out;
}

int hull_container_oom_fd(const struct hull_runtime *rt, const char *id, hull_error *err)
{
    struct managed m;
    if (managed_open(rt, id, &m, err) < 0)
        return hull_error_prefix(err, "events %s", id);
    int fd = hull_cgroup_oom_fd(m.cg, err);
    managed_release(&m);
    return fd;
}
