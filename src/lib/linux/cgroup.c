/* A container's cgroup: create it in the hierarchies it needs, move
 * processes in, remove it, and remember it in state.json (listing its
 * processes is cgroup_pids.c's, which the freezer shares).
 *
 * Cost is what matters here: every container and every sandbox run pays
 * for create + enter + destroy, so the fast path is one mkdir, one
 * cgroup.procs write and one rmdir per joined hierarchy, plus one read to
 * see that the cgroup is already empty before removing it. See
 * cgroup_internal.h for which hierarchies are joined and why.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "linux/cgroup_internal.h"
#include "util/error.h"
#include "util/log.h"
#include "util/fs.h"
#include "util/json.h"

static int remove_node(const struct cg_hier *h, struct cg_node *n, hull_error *err);
static bool populated(const struct hull_cgroup *cg);

static const uint32_t always_joined =
    CG_BIT(CG_MEMORY) | CG_BIT(CG_PIDS) | CG_BIT(CG_FREEZER) | CG_BIT(CG_CPUACCT);

static bool under(const char *path, const char *top)
{
    size_t l = strlen(top);
    return strcmp(top, "/") == 0 ||
           (strncmp(path, top, l) == 0 && (path[l] == '\0' || path[l] == '/'));
}

static size_t count_components(const char *path)
{
    size_t n = 0;
    for (const char *p = path; *p; p++)
        if (*p == '/' && p[1] != '\0' && p[1] != '/')
            n++;
    return n;
}

/* dir of the first `k` components of node->path (k = 0: the mount itself). */
static void prefix_dir(const struct cg_hier *h, const char *path, size_t k, char *out, size_t len)
{
    const char *p = path;
    for (size_t i = 0; i < k && *p; i++) {
        p = strchr(p + 1, '/');
        if (p == NULL) {
            p = path + strlen(path);
            break;
        }
    }
    snprintf(out, len, "%s%.*s", h->mount, (int)(p - path), path);
}

static void v1_cpuset_init(const struct cg_hier *h, const char *path, size_t from, size_t k)
{
    /* A new v1 cpuset has no cpus and no mems, and a process cannot join
     * it until both are set: copy them down from the parent. */
    static const char *const files[] = {"cpuset.cpus", "cpuset.mems"};
    for (size_t j = from; j <= k; j++) {
        char dir[PATH_MAX], parent[PATH_MAX], buf[4096];
        prefix_dir(h, path, j, dir, sizeof(dir));
        prefix_dir(h, path, j - 1, parent, sizeof(parent));
        for (size_t f = 0; f < 2; f++) {
            hull_error e = NULL;
            if (cg_read(dir, files[f], buf, sizeof(buf), &e) == 0 && buf[0] == '\n' &&
                cg_read(parent, files[f], buf, sizeof(buf), &e) == 0)
                cg_write(dir, files[f], buf, &e);
            /* Left empty, the join that follows fails and names the cpuset. */
            if (e)
                hull_debug("cgroup: copy %s down to %s: %s", files[f], dir, hull_error_msg(e));
            hull_error_free(&e);
        }
    }
}

/* mkdir -p of the node, counting what we made. `keep` leading components
 * are never counted as ours (the caller's own cgroup, or /hull). */
static int make_node(const struct cg_hier *h, struct cg_node *n, size_t keep, size_t *first_made,
                     hull_error *err)
{
    size_t k = count_components(n->path);
    *first_made = 0;
    if (mkdir(n->dir, 0755) == 0) {
        n->created = 1;
        *first_made = k;
        return 0;
    }
    if (errno == EEXIST) {
        n->created = 0;
        return 0;
    }
    /* A concurrent destroy may remove a parent between our mkdirs. */
    for (int attempt = 0; errno == ENOENT && attempt < 3; attempt++) {
        size_t made = 0;
        for (size_t j = 1; j <= k; j++) {
            char dir[PATH_MAX];
            prefix_dir(h, n->path, j, dir, sizeof(dir));
            if (mkdir(dir, 0755) == 0) {
                if (made == 0)
                    made = j;
            } else if (errno != EEXIST) {
                break;
            }
            if (j == k) {
                size_t counted = made > keep ? made : keep + 1;
                n->created = made == 0 ? 0 : (int)(k - counted + 1);
                *first_made = made;
                return 0;
            }
        }
    }
    return hull_error_errno(err, "cgroup: mkdir %s", n->dir);
}

static int write_pids(const char *dir, const pid_t *pids, size_t count, hull_error *err)
{
    for (size_t j = 0; j < count; j++) {
        hull_error e = NULL;
        if (cg_writef(dir, "cgroup.procs", &e, "%d", (int)pids[j]) < 0) {
            /* A process that exited meanwhile is not an error. */
            if (hull_error_code(e) != ESRCH) {
                hull_error_set(err, hull_error_code(e), "cgroup: move %d: %s", (int)pids[j],
                               hull_error_msg(e));
                hull_error_free(&e);
                return -1;
            }
            hull_error_free(&e); /* ESRCH: that process has exited, nothing to move */
        }
    }
    return 0;
}

int cg_join(struct hull_cgroup *cg, size_t i, hull_error *err)
{
    const struct cg_hier *h = &cg->L->h[i];
    struct cg_node *n = &cg->n[i];
    if (n->joined)
        return 0;
    if (n->dir == NULL)
        return hull_error_set(err, ENOENT, "cgroup: no path known in the %s hierarchy", h->name);
    /* Which leading components are not ours to count: everything above the
     * container's own directory that existed, and hull's /hull parent,
     * which stays for the next container. */
    size_t keep = 0, first_made = 0;
    if (n->created < 0) /* set by create: number of base components */
        keep = (size_t)(-n->created);
    if (make_node(h, n, keep, &first_made, err) < 0)
        return -1;
    n->joined = true;
    if (!h->v2 && (h->ctrls & CG_BIT(CG_CPUSET)))
        v1_cpuset_init(h, n->path, first_made ? first_made : count_components(n->path),
                       count_components(n->path));
    if (cg->fresh)
        return 0;
    /* Joining later (update): the container's processes move in, frozen
     * so that none forks past the move. */
    const struct cg_node *main = NULL;
    for (size_t j = 0; j < cg->L->n; j++)
        if (j != i && cg->n[j].joined && (main == NULL || cg->L->h[j].v2))
            main = &cg->n[j];
    if (main == NULL)
        return 0;
    bool was = false;
    hull_error fe = NULL;
    int froze = cg_freeze_for_signal(cg, &was, &fe);
    /* Not frozen: the move still runs, only a fork in between may escape it. */
    if (froze < 0)
        hull_debug("cgroup: freeze for the move: %s", hull_error_msg(fe));
    hull_error_free(&fe);
    pid_t *pids = NULL;
    size_t count = 0;
    int rc = cg_collect_pids(main->dir, &pids, &count, err);
    if (rc == 0)
        rc = write_pids(n->dir, pids, count, err);
    free(pids);
    if (froze == 0 && !was && hull_cgroup_freeze(cg, false, &fe) < 0)
        hull_warn("cgroup: thaw after the move: %s", hull_error_msg(fe));
    hull_error_free(&fe);
    return rc;
}

int cg_v2_enable(struct hull_cgroup *cg, uint32_t ctrls, hull_error *err)
{
    int i = cg->L->v2;
    if (i < 0 || !cg->n[i].joined || ctrls == 0)
        return 0;
    const struct cg_hier *h = &cg->L->h[i];
    const struct cg_node *n = &cg->n[i];
    char buf[512];
    /* Usually already enabled all the way down: one read and done. */
    if (cg_read(n->dir, "cgroup.controllers", buf, sizeof(buf), err) < 0)
        return -1;
    if ((ctrls & ~cg_v2_ctrl_mask(buf)) == 0)
        return 0;
    size_t k = count_components(n->path);
    for (size_t j = 0; j < k; j++) {
        char dir[PATH_MAX], add[256] = "";
        prefix_dir(h, n->path, j, dir, sizeof(dir));
        if (cg_read(dir, "cgroup.subtree_control", buf, sizeof(buf), err) < 0)
            return -1;
        uint32_t missing = ctrls & ~cg_v2_ctrl_mask(buf);
        for (int c = 0; c < CG_NCTRL; c++)
            if ((missing & CG_BIT(c)) && cg_ctrl_v2_name[c])
                snprintf(add + strlen(add), sizeof(add) - strlen(add), "%s+%s", add[0] ? " " : "",
                         cg_ctrl_v2_name[c]);
        if (add[0] == '\0')
            continue;
        if (cg_write(dir, "cgroup.subtree_control", add, err) < 0) {
            if (hull_error_code(*err) == EBUSY)
                hull_error_prefix(err,
                                  "cgroup: cannot enable '%s' below %s, which has "
                                  "processes of its own",
                                  add, dir);
            return -1;
        }
    }
    return 0;
}

int hull_cgroup_create(const char *cgroups_path, const char *id, bool systemd,
                       struct hull_cgroup **out, hull_error *err)
{
    return hull_cgroup_create_ex(cgroups_path, id, systemd, 0, out, err);
}

/* What a one-shot sandbox needs: memory and pids for limits and verdicts,
 * cpuacct for its CPU time. No freezer (it is never paused), no named
 * hierarchy, no controller-less cgroup2 of a hybrid host (the sandbox's pid
 * namespace, not cgroup.kill, ends its processes). */
static const uint32_t lean_joined = CG_BIT(CG_MEMORY) | CG_BIT(CG_PIDS) | CG_BIT(CG_CPUACCT);

int hull_cgroup_mount_points(unsigned flags, const char **out, size_t max, size_t *n,
                             hull_error *err)
{
    *n = 0;
    const struct cg_layout *L = cg_layout_get(err);
    if (L == NULL)
        return -1;
    /* A CPU quota joins the cpu hierarchy too (hull_cgroup_join_for). */
    uint32_t lean = lean_joined | CG_BIT(CG_CPU);
    for (size_t i = 0; i < L->n && *n < max; i++) {
        const struct cg_hier *h = &L->h[i];
        bool want = !(flags & HULL_CGROUP_LEAN) ||
                    (h->v2 ? L->mode != HULL_CGROUP_HYBRID : (h->ctrls & lean) != 0);
        if (want)
            out[(*n)++] = h->mount;
    }
    return 0;
}

static void cg_own_free(char *(*own)[CG_MAX_HIER])
{
    for (size_t i = 0; i < CG_MAX_HIER; i++)
        free((*own)[i]);
}

/* Each hierarchy's node path and directory for target t, checked against
 * hull's own cgroups (destroy must not be able to kill hull itself). */
static int cg_resolve(struct hull_cgroup *cg, const struct cg_target *t, hull_error *err)
{
    const struct cg_layout *L = cg->L;
    __attribute__((cleanup(cg_own_free))) char *own[CG_MAX_HIER] = {0};
    /* The caller's own cgroups matter for a relative path, and for any
     * explicit one: destroy must not be able to kill hull itself. */
    if (!t->is_default) {
        cleanup_free char *text = NULL;
        if (hull_read_file("/proc/self/cgroup", &text, NULL, err) < 0 ||
            cg_own_paths(L, text, own, err) < 0)
            return -1;
    }
    for (size_t i = 0; i < L->n; i++) {
        const struct cg_hier *h = &L->h[i];
        struct cg_node *n = &cg->n[i];
        char path[PATH_MAX];
        size_t base = t->is_default ? 1 : 0;
        if (t->relative) {
            if (own[i] == NULL)
                return hull_error_set(err, ENOENT,
                                      "linux.cgroupsPath: hull's own cgroup in the %s hierarchy "
                                      "is unknown, so '%s' cannot be resolved",
                                      h->name, t->path);
            snprintf(path, sizeof(path), "%s/%s", strcmp(own[i], "/") ? own[i] : "", t->path);
            base = count_components(own[i]);
        } else {
            snprintf(path, sizeof(path), "%s", t->path);
        }
        if (own[i] != NULL && under(own[i], path))
            return hull_error_set(
                err, EINVAL, "linux.cgroupsPath: '%s' holds hull's own cgroup %s (%s hierarchy)",
                path, own[i], h->name);
        n->path = strdup(path);
        if (n->path == NULL || asprintf(&n->dir, "%s%s", h->mount, path) < 0)
            return hull_error_set(err, ENOMEM, "out of memory");
        n->created = -(int)base;
    }
    return 0;
}

/* Join (making as needed) the hierarchies the container needs. */
static int cg_make(struct hull_cgroup *cg, const struct cg_target *t, unsigned flags,
                   hull_error *err)
{
    const struct cg_layout *L = cg->L;
    bool reused = false;
    for (size_t i = 0; i < L->n; i++) {
        const struct cg_hier *h = &L->h[i];
        bool lean = flags & HULL_CGROUP_LEAN;
        bool want = h->v2           ? !(lean && L->mode == HULL_CGROUP_HYBRID)
                    : h->ctrls == 0 ? !lean
                                    : (h->ctrls & (lean ? lean_joined : always_joined)) != 0;
        if (want && cg_join(cg, i, err) < 0)
            return -1;
        reused |= cg->n[i].joined && cg->n[i].created == 0;
    }
    /* A cgroup that already holds processes is someone else's (another
     * container's): sharing it would let our destroy kill them. Refused,
     * as runc does; an empty one made by an engine beforehand is fine. */
    if (reused && !(flags & HULL_CGROUP_ADOPT) && populated(cg))
        return hull_error_set(err, EBUSY,
                              "linux.cgroupsPath: cgroup %s is not empty: it already holds "
                              "processes of another container",
                              t->path);
    /* Accounting for verdicts on a cgroup2 host; best effort, a resource
     * that needs a missing controller fails in hull_cgroup_apply. */
    if (L->v2 >= 0) {
        hull_error e = NULL;
        if (cg_v2_enable(cg, L->h[L->v2].ctrls & (CG_BIT(CG_MEMORY) | CG_BIT(CG_PIDS)), &e) < 0)
            hull_debug("cgroup accounting: %s", hull_error_msg(e));
        hull_error_free(&e);
    }
    return 0;
}

/* Undo only our mkdirs: a reused cgroup and whatever runs in it are not
 * ours to remove before anything entered. Frees cg. */
static void cg_create_undo(struct hull_cgroup *cg)
{
    for (size_t i = 0; i < cg->L->n; i++) {
        hull_error e = NULL;
        if (cg->n[i].joined && cg->n[i].created > 0 && remove_node(&cg->L->h[i], &cg->n[i], &e) < 0)
            hull_warn("cleanup: %s", hull_error_msg(e));
        hull_error_free(&e);
    }
    hull_cgroup_free(cg);
}

int hull_cgroup_create_ex(const char *cgroups_path, const char *id, bool systemd, unsigned flags,
                          struct hull_cgroup **out, hull_error *err)
{
    *out = NULL;
    const struct cg_layout *L = cg_layout_get(err);
    if (L == NULL)
        return -1;
    struct cg_target t;
    if (cg_target_parse(cgroups_path, id, systemd, &t, err) < 0)
        return -1;
    struct hull_cgroup *cg = calloc(1, sizeof(*cg));
    int rc = -1;
    if (cg == NULL) {
        hull_error_set(err, ENOMEM, "out of memory");
    } else {
        cg->L = L;
        cg->fresh = true;
        if (cg_resolve(cg, &t, err) < 0 || cg_make(cg, &t, flags, err) < 0) {
            cg_create_undo(cg);
        } else {
            *out = cg;
            rc = 0;
        }
    }
    cg_target_clear(&t);
    return rc;
}

int hull_cgroup_join_all(struct hull_cgroup *cg, hull_error *err)
{
    for (size_t i = 0; i < cg->L->n; i++)
        if (cg_join(cg, i, err) < 0)
            return -1;
    return 0;
}

int hull_cgroup_enter(struct hull_cgroup *cg, pid_t pid, hull_error *err)
{
    cg->fresh = false;
    for (size_t i = 0; i < cg->L->n; i++) {
        if (!cg->n[i].joined)
            continue;
        if (cg_writef(cg->n[i].dir, "cgroup.procs", err, "%d", (int)pid) < 0)
            return hull_error_prefix(err, "cgroup: move %d into the %s hierarchy", (int)pid,
                                     cg->L->h[i].name);
    }
    return 0;
}

int hull_cgroup_enter_memory(struct hull_cgroup *cg, pid_t pid, hull_error *err)
{
    int i = cg_hier_of(cg->L, CG_MEMORY);
    if (i < 0 || !cg->n[i].joined)
        return 0;
    if (cg_writef(cg->n[i].dir, "cgroup.procs", err, "%d", (int)pid) < 0)
        return hull_error_prefix(err, "cgroup: move %d into the %s hierarchy", (int)pid,
                                 cg->L->h[i].name);
    return 0;
}

/* Moving a process into a cgroup through cgroup.procs takes the kernel's
 * global threadgroup lock for writing, which waits for an RCU grace period:
 * milliseconds of dead time on every container start. A thread moving
 * itself ("0" into a v1 tasks file) needs no such lock. So the runtime
 * steps into the container's v1 cgroups itself, clones the init there (the
 * child is born in them; on cgroup2, clone3's CLONE_INTO_CGROUP does the
 * same from the fork path), and steps back out. */
_Static_assert(CG_MAX_HIER <= sizeof(((struct hull_cgroup_self *)0)->back) / sizeof(char *),
               "hull_cgroup_self.back holds every hierarchy");

static int step_in(struct hull_cgroup *cg, bool memory_only, struct hull_cgroup_self *s,
                   hull_error *err)
{
    memset(s, 0, sizeof(*s));
    s->v2fd = -1;
    cleanup_free char *text = NULL;
    char *own[CG_MAX_HIER] = {0};
    if (hull_read_file("/proc/self/cgroup", &text, NULL, err) < 0 ||
        cg_own_paths(cg->L, text, own, err) < 0)
        return -1;
    int rc = 0;
    for (size_t i = 0; i < cg->L->n && rc == 0; i++) {
        const struct cg_hier *h = &cg->L->h[i];
        if (!cg->n[i].joined)
            continue;
        if (h->v2) {
            s->v2fd = open(cg->n[i].dir, O_PATH | O_DIRECTORY | O_CLOEXEC);
            if (s->v2fd < 0)
                rc = hull_error_errno(err, "cgroup: open %s", cg->n[i].dir);
            continue;
        }
        if (memory_only && !(h->ctrls & CG_BIT(CG_MEMORY)))
            continue;
        if (own[i] == NULL) {
            rc = hull_error_set(err, ENOENT, "cgroup: own %s cgroup unknown", h->name);
            continue;
        }
        if (asprintf(&s->back[i], "%s%s", h->mount, strcmp(own[i], "/") ? own[i] : "") < 0) {
            s->back[i] = NULL;
            rc = hull_error_set(err, ENOMEM, "out of memory");
            continue;
        }
        if (cg_writef(cg->n[i].dir, "tasks", err, "0") < 0)
            rc = hull_error_prefix(err, "cgroup: step into the %s hierarchy", h->name);
    }
    for (size_t i = 0; i < CG_MAX_HIER; i++)
        free(own[i]);
    if (rc < 0) {
        hull_cgroup_step_out(s);
        return -1;
    }
    cg->fresh = false;
    s->active = true;
    return 0;
}

int hull_cgroup_step_in(struct hull_cgroup *cg, struct hull_cgroup_self *s, hull_error *err)
{
    return step_in(cg, false, s, err);
}

int hull_cgroup_step_in_memory(struct hull_cgroup *cg, struct hull_cgroup_self *s, hull_error *err)
{
    return step_in(cg, true, s, err);
}

bool hull_cgroup_memory_v1(const struct hull_cgroup *cg)
{
    int m = cg_hier_of(cg->L, CG_MEMORY);
    return m >= 0 && !cg->L->h[m].v2 && cg->n[m].joined;
}

int hull_cgroup_join_rest(struct hull_cgroup *cg, hull_error *err)
{
    for (size_t i = 0; i < cg->L->n; i++) {
        const struct cg_hier *h = &cg->L->h[i];
        if (!cg->n[i].joined || h->v2 || (h->ctrls & CG_BIT(CG_MEMORY)))
            continue;
        if (cg_writef(cg->n[i].dir, "tasks", err, "0") < 0)
            return hull_error_prefix(err, "cgroup: join the %s hierarchy", h->name);
    }
    return 0;
}

bool hull_cgroup_self_in_memory(const struct hull_cgroup *cg, const struct hull_cgroup_self *s)
{
    if (!s->active)
        return false;
    int m = cg_hier_of(cg->L, CG_MEMORY);
    return m >= 0 && !cg->L->h[m].v2 && cg->n[m].joined && s->back[m] != NULL;
}

void hull_cgroup_step_out(struct hull_cgroup_self *s)
{
    for (size_t i = 0; i < CG_MAX_HIER; i++) {
        if (s->back[i] == NULL)
            continue;
        hull_error e = NULL;
        if (cg_writef(s->back[i], "tasks", &e, "0") < 0)
            hull_warn("cgroup: could not step back into %s: %s", s->back[i], hull_error_msg(e));
        hull_error_free(&e);
        free(s->back[i]);
        s->back[i] = NULL;
    }
    if (s->v2fd >= 0)
        close(s->v2fd);
    s->v2fd = -1;
    s->active = false;
}

static bool populated(const struct hull_cgroup *cg)
{
    const struct cg_layout *L = cg->L;
    char buf[256];
    hull_error e = NULL;
    bool pop = true;
    if (L->v2 >= 0 && cg->n[L->v2].joined) {
        uint64_t v = 1;
        if (cg_read(cg->n[L->v2].dir, "cgroup.events", buf, sizeof(buf), &e) == 0)
            pop = !cg_keyed_get(buf, "populated", &v) || v != 0;
        else /* removed behind our back: nothing can live in it */
            pop = hull_error_code(e) != ENOENT;
    } else {
        const struct cg_node *m = cg_main_node(cg);
        pid_t *pids = NULL;
        size_t count = 0;
        if (m == NULL || cg_collect_pids(m->dir, &pids, &count, &e) == 0)
            pop = count > 0;
        free(pids);
    }
    hull_error_free(&e); /* unreadable: counted as populated (pop stays true), the safe side */
    return pop;
}

/* rmdir a cgroup and whatever child cgroups the container made in it. */
static int remove_tree(const char *dir, int depth)
{
    if (rmdir(dir) == 0 || errno == ENOENT)
        return 0;
    if ((errno != EBUSY && errno != ENOTEMPTY) || depth > 64)
        return -1;
    DIR *d = opendir(dir);
    if (d != NULL) {
        struct dirent *de;
        while ((de = readdir(d)) != NULL) {
            if (de->d_type != DT_DIR || de->d_name[0] == '.')
                continue;
            char p[PATH_MAX];
            snprintf(p, sizeof(p), "%s/%s", dir, de->d_name);
            remove_tree(p, depth + 1);
        }
        closedir(d);
    }
    /* The last exits may still be in flight after a kill. */
    long us = 100;
    for (long waited = 0; waited < 2000000; waited += us, us = us < 20000 ? us * 2 : us) {
        if (rmdir(dir) == 0 || errno == ENOENT)
            return 0;
        if (errno != EBUSY)
            return -1;
        cg_sleep_us(us);
    }
    return -1;
}

static int remove_node(const struct cg_hier *h, struct cg_node *n, hull_error *err)
{
    if (remove_tree(n->dir, 0) < 0)
        return hull_error_errno(err, "cgroup: rmdir %s", n->dir);
    /* Parents this container made go too, unless another container uses
     * them by now. */
    size_t k = count_components(n->path);
    for (int j = 1; j < n->created; j++) {
        char dir[PATH_MAX];
        prefix_dir(h, n->path, k - (size_t)j, dir, sizeof(dir));
        if (rmdir(dir) < 0)
            break;
    }
    n->joined = false;
    return 0;
}

int hull_cgroup_destroy(struct hull_cgroup *cg, hull_error *err)
{
    const struct cg_node *m = cg == NULL ? NULL : cg_main_node(cg);
    if (m == NULL)
        return 0;
    /* Most cgroups are empty by now (a sandbox's supervisor reaped its
     * init, and the init's pid namespace took every process with it): an
     * rmdir of the main one says so at once, where reading its processes
     * first cost two files. One that holds a process or a child cgroup
     * (EBUSY), or that is already gone (ENOENT: what its other hierarchies
     * hold is unknown), is read, killed, waited for and removed as before. */
    bool gone = rmdir(m->dir) == 0;
    if (!gone && populated(cg)) {
        if (cg_kill_all(cg, err) < 0 || cg_wait_empty(cg, 10000, err) < 0)
            return hull_error_prefix(err, "cgroup: destroy");
    }
    int rc = 0;
    for (size_t i = 0; i < cg->L->n; i++) {
        if (!cg->n[i].joined) {
            /* A hierarchy joined after the state was last saved (a crash
             * between applying limits and saving again) left the
             * container's own leaf there; it is this container's, so it
             * goes as well. Its parents were not recorded: they stay. */
            if (cg->n[i].dir && access(cg->n[i].dir, F_OK) == 0 &&
                remove_tree(cg->n[i].dir, 0) < 0 && rc == 0)
                rc = hull_error_errno(err, "cgroup: rmdir %s", cg->n[i].dir);
            continue;
        }
        hull_error e = NULL;
        if (remove_node(&cg->L->h[i], &cg->n[i], &e) < 0 && rc == 0) {
            rc = -1;
            hull_error_set(err, hull_error_code(e), "%s", hull_error_msg(e));
        }
        hull_error_free(&e);
    }
    return rc;
}

static const char *mode_name(enum hull_cgroup_mode m)
{
    return m == HULL_CGROUP_V1 ? "v1" : m == HULL_CGROUP_V2 ? "v2" : "hybrid";
}

json_object *hull_cgroup_save(const struct hull_cgroup *cg)
{
    json_object *o = json_object_new_object(), *arr = json_object_new_array();
    json_object_object_add(o, "mode", json_object_new_string(mode_name(cg->L->mode)));
    for (size_t i = 0; i < cg->L->n; i++) {
        const struct cg_node *n = &cg->n[i];
        if (n->path == NULL)
            continue;
        json_object *e = json_object_new_object();
        json_object_object_add(e, "mount", json_object_new_string(cg->L->h[i].mount));
        json_object_object_add(e, "path", json_object_new_string(n->path));
        json_object_object_add(e, "joined", json_object_new_boolean(n->joined));
        json_object_object_add(e, "created", json_object_new_int(n->created));
        json_object_array_add(arr, e);
    }
    json_object_object_add(o, "nodes", arr);
    return o;
}

int hull_cgroup_load(json_object *saved, struct hull_cgroup **out, hull_error *err)
{
    *out = NULL;
    const struct cg_layout *L = cg_layout_get(err);
    if (L == NULL)
        return -1;
    json_object *arr = hj_get(saved, "nodes");
    if (arr == NULL || !json_object_is_type(arr, json_type_array))
        return hull_error_set(err, EINVAL, "cgroup state: nodes: must be an array");
    struct hull_cgroup *cg = calloc(1, sizeof(*cg));
    if (cg == NULL)
        return hull_error_set(err, ENOMEM, "out of memory");
    cg->L = L;
    for (size_t k = 0; k < json_object_array_length(arr); k++) {
        json_object *e = json_object_array_get_idx(arr, k);
        const char *mount = json_object_get_string(hj_get(e, "mount"));
        const char *path = json_object_get_string(hj_get(e, "path"));
        if (mount == NULL || path == NULL || path[0] != '/') {
            hull_cgroup_free(cg);
            return hull_error_set(err, EINVAL, "cgroup state: nodes[%zu]: bad mount or path", k);
        }
        for (size_t i = 0; i < L->n; i++) {
            struct cg_node *n = &cg->n[i];
            if (n->path != NULL || strcmp(L->h[i].mount, mount) != 0)
                continue;
            n->path = strdup(path);
            if (n->path == NULL || asprintf(&n->dir, "%s%s", mount, path) < 0) {
                hull_cgroup_free(cg);
                return hull_error_set(err, ENOMEM, "out of memory");
            }
            n->joined = json_object_get_boolean(hj_get(e, "joined"));
            n->created = json_object_get_int(hj_get(e, "created"));
        }
    }
    *out = cg;
    return 0;
}

void hull_cgroup_free(struct hull_cgroup *cg)
{
    if (cg == NULL)
        return;
    for (size_t i = 0; i < CG_MAX_HIER; i++) {
        free(cg->n[i].path);
        free(cg->n[i].dir);
    }
    free(cg);
}
