/* The processes in a container's cgroup: which node to read them from and
 * the recursive cgroup.procs walk. Below both cgroup.c (join, emptiness
 * before removal) and cgroup_freeze.c (signal and kill everything), so
 * neither has to call into the other for it.
 */
#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "linux/cgroup_internal.h"
#include "util/error.h"
#include "util/fs.h"

const struct cg_node *cg_main_node(const struct hull_cgroup *cg)
{
    const struct cg_layout *L = cg->L;
    if (L->v2 >= 0 && cg->n[L->v2].joined)
        return &cg->n[L->v2];
    int f = cg_hier_of(L, CG_FREEZER);
    if (f >= 0 && cg->n[f].joined)
        return &cg->n[f];
    for (size_t i = 0; i < L->n; i++)
        if (cg->n[i].joined)
            return &cg->n[i];
    return NULL;
}

static int append_pids(const char *text, pid_t **pids, size_t *count, size_t *cap)
{
    for (const char *p = text; *p;) {
        char *end;
        long v = strtol(p, &end, 10);
        if (end == p)
            break;
        if (*count == *cap) {
            size_t nc = *cap ? *cap * 2 : 16;
            pid_t *np = realloc(*pids, nc * sizeof(pid_t));
            if (np == NULL)
                return -1;
            *pids = np;
            *cap = nc;
        }
        (*pids)[(*count)++] = (pid_t)v;
        p = end + strspn(end, "\n");
    }
    return 0;
}

static int collect(const char *dir, pid_t **pids, size_t *count, size_t *cap, int depth,
                   hull_error *err)
{
    char p[PATH_MAX];
    snprintf(p, sizeof(p), "%s/cgroup.procs", dir);
    cleanup_free char *text = NULL;
    if (hull_read_file(p, &text, NULL, err) < 0) {
        if (hull_error_code(*err) == ENOENT || hull_error_code(*err) == ENODEV) {
            hull_error_free(err); /* removed meanwhile: empty */
            return 0;
        }
        return -1;
    }
    if (append_pids(text, pids, count, cap) < 0)
        return hull_error_set(err, ENOMEM, "out of memory");
    if (depth > 64)
        return 0;
    DIR *d = opendir(dir);
    if (d == NULL)
        return 0;
    int rc = 0;
    struct dirent *de;
    while (rc == 0 && (de = readdir(d)) != NULL) {
        if (de->d_type != DT_DIR || de->d_name[0] == '.')
            continue;
        snprintf(p, sizeof(p), "%s/%s", dir, de->d_name);
        rc = collect(p, pids, count, cap, depth + 1, err);
    }
    closedir(d);
    return rc;
}

int cg_collect_pids(const char *dir, pid_t **pids, size_t *count, hull_error *err)
{
    size_t cap = 0;
    *pids = NULL;
    *count = 0;
    if (collect(dir, pids, count, &cap, 0, err) < 0) {
        free(*pids);
        *pids = NULL;
        *count = 0;
        return -1;
    }
    return 0;
}

int hull_cgroup_pids(struct hull_cgroup *cg, pid_t **pids, size_t *count, hull_error *err)
{
    const struct cg_node *m = cg_main_node(cg);
    if (m == NULL) {
        *pids = NULL;
        *count = 0;
        return 0;
    }
    return cg_collect_pids(m->dir, pids, count, err);
}
