/* TEMPORARY stand-in until linux/cgroup.c lands: no cgroups at all. */
#include <errno.h>
#include <stdlib.h>

#include "linux/cgroup.h"
#include "util/error.h"

struct hull_cgroup {
    int unused;
};

int hull_cgroup_mode(enum hull_cgroup_mode *mode, hull_error *err)
{
    *mode = HULL_CGROUP_HYBRID;
    return 0;
}
int hull_cgroup_create(const char *p, const char *id, bool systemd, struct hull_cgroup **out,
                       hull_error *err)
{
    *out = calloc(1, sizeof(**out));
    return 0;
}
int hull_cgroup_apply(struct hull_cgroup *cg, const struct hull_resources *r, hull_error *err)
{
    return 0;
}
int hull_cgroup_enter(struct hull_cgroup *cg, pid_t pid, hull_error *err)
{
    return 0;
}
int hull_cgroup_mount(struct hull_cgroup *cg, const char *dest, bool ro, bool ns,
                      unsigned long f, hull_error *err)
{
    return 0;
}
int hull_cgroup_pids(struct hull_cgroup *cg, pid_t **pids, size_t *count, hull_error *err)
{
    *pids = NULL;
    *count = 0;
    return 0;
}
int hull_cgroup_kill(struct hull_cgroup *cg, int signo, hull_error *err)
{
    return 0;
}
int hull_cgroup_freeze(struct hull_cgroup *cg, bool frozen, hull_error *err)
{
    return hull_error_set(err, ENOTSUP, "freezer not available");
}
int hull_cgroup_is_frozen(struct hull_cgroup *cg, bool *frozen, hull_error *err)
{
    *frozen = false;
    return 0;
}
int hull_cgroup_destroy(struct hull_cgroup *cg, hull_error *err)
{
    return 0;
}
int hull_cgroup_stats(struct hull_cgroup *cg, struct hull_cgroup_stats *st, hull_error *err)
{
    return hull_error_set(err, ENOTSUP, "no stats");
}
json_object *hull_cgroup_stats_json(struct hull_cgroup *cg, hull_error *err)
{
    return NULL;
}
int hull_cgroup_oom_fd(struct hull_cgroup *cg, hull_error *err)
{
    return -1;
}
json_object *hull_cgroup_save(const struct hull_cgroup *cg)
{
    return json_object_new_object();
}
int hull_cgroup_load(json_object *saved, struct hull_cgroup **out, hull_error *err)
{
    *out = calloc(1, sizeof(**out));
    return 0;
}
void hull_cgroup_free(struct hull_cgroup *cg)
{
    free(cg);
}
