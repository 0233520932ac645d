/* A cgroup for each VM's QEMU, so a guest (or a compromised QEMU) cannot
 * take more memory, CPU or tasks than it was given.
 *
 * This is the small part of cgroup handling the VM needs: one leaf per VM,
 * hull-vm/<id>, in the v1 memory, cpu and pids hierarchies when the host
 * has them (hybrid hosts keep their controllers there), else in cgroup2.
 * The layout is read from /proc/self/mountinfo. TODO: move to
 * linux/cgroup.h once that lands on main; the interface below is all the
 * VM code uses.
 */
#include <errno.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "util/error.h"
#include "util/fs.h"
#include "vm/vm.h"
#include "vm/vmcg.h"

enum { CG_MEMORY, CG_CPU, CG_PIDS, CG_N };
static const char *const cg_names[CG_N] = {"memory", "cpu", "pids"};

struct layout {
    char v1[CG_N][PATH_MAX]; /* mount point of each v1 controller, "" if none */
    char v2[PATH_MAX];       /* cgroup2 mount, "" if none */
    bool v2_has[CG_N];
};

static bool has_opt(const char *opts, const char *name)
{
    size_t l = strlen(name);
    for (const char *p = opts; p; p = strchr(p, ',') ? strchr(p, ',') + 1 : NULL)
        if (strncmp(p, name, l) == 0 && (p[l] == ',' || p[l] == 0 || p[l] == ' ' || p[l] == '\n'))
            return true;
    return false;
}

static void read_layout(struct layout *lo)
{
    memset(lo, 0, sizeof(*lo));
    FILE *f = fopen("/proc/self/mountinfo", "re");
    char line[4096];
    while (f && fgets(line, sizeof(line), f)) {
        /* id parent maj:min root mountpoint opts ... - fstype source superopts */
        char mnt[PATH_MAX], fstype[64], superopts[1024];
        char *dash = strstr(line, " - ");
        if (!dash || sscanf(line, "%*s %*s %*s %*s %4095s", mnt) != 1 ||
            sscanf(dash + 3, "%63s %*s %1023s", fstype, superopts) != 2)
            continue;
        if (strcmp(fstype, "cgroup") == 0) {
            for (int i = 0; i < CG_N; i++)
                if (has_opt(superopts, cg_names[i]) && !lo->v1[i][0])
                    snprintf(lo->v1[i], PATH_MAX, "%s", mnt);
        } else if (strcmp(fstype, "cgroup2") == 0 && !lo->v2[0])
            snprintf(lo->v2, sizeof(lo->v2), "%s", mnt);
    }
    if (f)
        fclose(f);
    if (lo->v2[0]) {
        char p[PATH_MAX + 32], *c = NULL;
        size_t l;
        snprintf(p, sizeof(p), "%s/cgroup.controllers", lo->v2);
        if (hull_read_file(p, &c, &l, NULL) == 0) {
            for (int i = 0; i < CG_N; i++)
                lo->v2_has[i] = has_opt(c, cg_names[i]) || strstr(c, cg_names[i]);
            free(c);
        }
    }
}

static int write_val(const char *dir, const char *file, const char *val, hull_error *err)
{
    char p[PATH_MAX + 64];
    snprintf(p, sizeof(p), "%s/%s", dir, file);
    return hull_write_file(p, val, strlen(val), err);
}

int vmcg_create(const char *id, const struct vmcg_limits *lim, struct vmcg *cg, hull_error *err)
{
    struct layout lo;
    read_layout(&lo);
    memset(cg, 0, sizeof(*cg));
    char val[64];
    for (int i = 0; i < CG_N; i++) {
        bool v1 = lo.v1[i][0] != 0;
        if (!v1 && !(lo.v2[0] && lo.v2_has[i]))
            continue; /* the host does not have this controller */
        const char *base = v1 ? lo.v1[i] : lo.v2;
        char parent[PATH_MAX];
        snprintf(parent, sizeof(parent), "%s/hull-vm", base);
        bool dup = false;
        for (size_t j = 0; j < cg->n && !dup; j++)
            dup = strncmp(cg->path[j], parent, strlen(parent)) == 0 && cg->path[j][strlen(parent)] == '/';
        char *path = cg->path[cg->n];
        snprintf(path, PATH_MAX, "%s/%s", parent, id);
        if (!dup) {
            if (mkdir(parent, 0755) < 0 && errno != EEXIST)
                return hull_error_errno(err, "cgroup %s", parent);
            if (!v1) {
                char ctl[32];
                snprintf(ctl, sizeof(ctl), "+%s", cg_names[i]);
                write_val(base, "cgroup.subtree_control", ctl, NULL);
                write_val(parent, "cgroup.subtree_control", ctl, NULL);
            }
            if (mkdir(path, 0755) < 0 && errno != EEXIST) {
                vmcg_destroy(cg);
                return hull_error_errno(err, "cgroup %s", path);
            }
            cg->n++;
        }
        int rc = 0;
        if (i == CG_MEMORY) {
            snprintf(val, sizeof(val), "%llu", (unsigned long long)lim->memory_bytes);
            rc = write_val(path, v1 ? "memory.limit_in_bytes" : "memory.max", val, err);
            if (!v1)
                write_val(path, "memory.swap.max", "0", NULL);
        } else if (i == CG_CPU && lim->cpu_millis) {
            if (v1) {
                snprintf(val, sizeof(val), "%u", lim->cpu_millis * 100);
                rc = write_val(path, "cpu.cfs_period_us", "100000", err);
                if (!rc)
                    rc = write_val(path, "cpu.cfs_quota_us", val, err);
            } else {
                snprintf(val, sizeof(val), "%u 100000", lim->cpu_millis * 100);
                rc = write_val(path, "cpu.max", val, err);
            }
        } else if (i == CG_PIDS) {
            snprintf(val, sizeof(val), "%u", lim->pids);
            rc = write_val(path, "pids.max", val, err);
        }
        if (rc < 0) {
            vmcg_destroy(cg);
            return hull_error_prefix(err, "cgroup %s", path);
        }
    }
    if (!cg->n)
        return hull_error_set(err, ENOTSUP, "cgroup: the host has no memory, cpu or pids controller");
    return 0;
}

int vmcg_enter(const struct vmcg *cg, pid_t pid)
{
    char val[32];
    snprintf(val, sizeof(val), "%d", (int)pid);
    for (size_t i = 0; i < cg->n; i++) {
        char p[PATH_MAX + 32];
        snprintf(p, sizeof(p), "%s/cgroup.procs", cg->path[i]);
        if (hull_write_file(p, val, strlen(val), NULL) < 0)
            return -1;
    }
    return 0;
}

void vmcg_paths(const char *id, struct vmcg *cg)
{
    struct layout lo;
    read_layout(&lo);
    memset(cg, 0, sizeof(*cg));
    for (int i = 0; i < CG_N; i++) {
        const char *base = lo.v1[i][0] ? lo.v1[i] : (lo.v2[0] && lo.v2_has[i]) ? lo.v2 : NULL;
        if (!base)
            continue;
        char p[PATH_MAX];
        snprintf(p, sizeof(p), "%s/hull-vm/%s", base, id);
        bool dup = false;
        for (size_t j = 0; j < cg->n && !dup; j++)
            dup = strcmp(cg->path[j], p) == 0;
        if (!dup)
            snprintf(cg->path[cg->n++], PATH_MAX, "%s", p);
    }
}

/* Kill what is left and remove the leaves; the shared hull-vm parents stay. */
void vmcg_destroy(const struct vmcg *cg)
{
    for (size_t i = 0; i < cg->n; i++) {
        for (int tries = 0; tries < 500; tries++) {
            if (rmdir(cg->path[i]) == 0 || errno == ENOENT)
                break;
            if (errno != EBUSY)
                break;
            char p[PATH_MAX + 32], *procs = NULL;
            size_t l;
            snprintf(p, sizeof(p), "%s/cgroup.procs", cg->path[i]);
            if (hull_read_file(p, &procs, &l, NULL) == 0) {
                for (char *s = procs; *s;) {
                    long pid = strtol(s, &s, 10);
                    if (pid > 0)
                        kill((pid_t)pid, SIGKILL);
                    while (*s == '\n')
                        s++;
                }
                free(procs);
            }
            usleep(2000);
        }
    }
}

bool vmcg_exists(const struct vmcg *cg)
{
    for (size_t i = 0; i < cg->n; i++)
        if (access(cg->path[i], F_OK) == 0)
            return true;
    return false;
}
