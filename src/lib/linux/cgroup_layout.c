/* Which cgroup layout the host has, read from /proc/self/mountinfo only:
 * v1 hierarchies (each with its controllers, or a name=), a cgroup2 mount,
 * or both (hybrid). Nothing is assumed about where they are mounted. */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "linux/cgroup_internal.h"
#include "util/error.h"
#include "util/fs.h"

const char *const cg_ctrl_v1_name[CG_NCTRL] = {
    [CG_CPU] = "cpu",         [CG_CPUACCT] = "cpuacct",   [CG_CPUSET] = "cpuset",
    [CG_MEMORY] = "memory",   [CG_DEVICES] = "devices",   [CG_FREEZER] = "freezer",
    [CG_BLKIO] = "blkio",     [CG_PIDS] = "pids",         [CG_HUGETLB] = "hugetlb",
    [CG_NET_CLS] = "net_cls", [CG_NET_PRIO] = "net_prio", [CG_PERF_EVENT] = "perf_event",
    [CG_RDMA] = "rdma",       [CG_MISC] = "misc",
};

const char *const cg_ctrl_v2_name[CG_NCTRL] = {
    [CG_CPU] = "cpu",
    [CG_CPUSET] = "cpuset",
    [CG_MEMORY] = "memory",
    [CG_BLKIO] = "io",
    [CG_PIDS] = "pids",
    [CG_HUGETLB] = "hugetlb",
    [CG_PERF_EVENT] = "perf_event",
    [CG_RDMA] = "rdma",
    [CG_MISC] = "misc",
};

static int v1_ctrl(const char *name, size_t len)
{
    for (int c = 0; c < CG_NCTRL; c++)
        if (strlen(cg_ctrl_v1_name[c]) == len && strncmp(cg_ctrl_v1_name[c], name, len) == 0)
            return c;
    return -1;
}

uint32_t cg_v2_ctrl_mask(const char *line)
{
    uint32_t mask = 0;
    const char *p = line;
    while (*p) {
        p += strspn(p, " \t\n");
        size_t l = strcspn(p, " \t\n");
        if (l == 0)
            break;
        for (int c = 0; c < CG_NCTRL; c++)
            if (cg_ctrl_v2_name[c] && strlen(cg_ctrl_v2_name[c]) == l &&
                strncmp(cg_ctrl_v2_name[c], p, l) == 0)
                mask |= CG_BIT(c);
        p += l;
    }
    return mask;
}

/* mountinfo escapes space, tab, newline and backslash as \ooo. */
static void unescape(char *s)
{
    char *o = s;
    for (char *p = s; *p; p++) {
        if (p[0] == '\\' && p[1] >= '0' && p[1] <= '3' && p[2] >= '0' && p[2] <= '7' &&
            p[3] >= '0' && p[3] <= '7') {
            *o++ = (char)((p[1] - '0') * 64 + (p[2] - '0') * 8 + (p[3] - '0'));
            p += 3;
        } else {
            *o++ = *p;
        }
    }
    *o = '\0';
}

static void hier_free(struct cg_hier *h)
{
    free(h->mount);
    free(h->root);
    free(h->name);
    free(h->opts);
    free(h->cgname);
    memset(h, 0, sizeof(*h));
}

void cg_layout_clear(struct cg_layout *L)
{
    for (size_t i = 0; i < L->n; i++)
        hier_free(&L->h[i]);
    L->n = 0;
    L->v2 = -1;
}

static bool under(const char *path, const char *top)
{
    size_t l = strlen(top);
    if (strcmp(top, "/") == 0)
        return true;
    return strncmp(path, top, l) == 0 && (path[l] == '\0' || path[l] == '/');
}

/* A mount at `mp` hides every earlier mount at or below it. */
static void drop_shadowed(struct cg_layout *L, const char *mp)
{
    size_t o = 0;
    for (size_t i = 0; i < L->n; i++) {
        if (under(L->h[i].mount, mp))
            hier_free(&L->h[i]);
        else
            L->h[o++] = L->h[i];
    }
    for (size_t i = o; i < L->n; i++)
        memset(&L->h[i], 0, sizeof(L->h[i]));
    L->n = o;
}

/* v1 super options: controllers and name= decide the hierarchy; the rest
 * (rw, xattr, release_agent=...) do not. */
static void v1_opts(const char *super, struct cg_hier *h)
{
    char opts[512] = "";
    const char *p = super;
    while (*p) {
        size_t l = strcspn(p, ",");
        int c = v1_ctrl(p, l);
        if (c >= 0) {
            h->ctrls |= CG_BIT(c);
            snprintf(opts + strlen(opts), sizeof(opts) - strlen(opts), "%s%.*s", opts[0] ? "," : "",
                     (int)l, p);
        } else if (l > 5 && strncmp(p, "name=", 5) == 0) {
            h->cgname = strndup(p + 5, l - 5);
        }
        p += l;
        if (*p == ',')
            p++;
    }
    if (h->cgname) {
        char named[600];
        snprintf(named, sizeof(named), "%s,name=%s", opts[0] ? opts : "none", h->cgname);
        h->opts = strdup(named);
    } else {
        h->opts = strdup(opts);
    }
}

static bool same_hierarchy(const struct cg_hier *a, const struct cg_hier *b)
{
    if (a->v2 || b->v2)
        return a->v2 && b->v2;
    if (a->ctrls != b->ctrls)
        return false;
    if ((a->cgname == NULL) != (b->cgname == NULL))
        return false;
    return a->cgname == NULL || strcmp(a->cgname, b->cgname) == 0;
}

static int parse_line(char *line, struct cg_layout *L, hull_error *err)
{
    char *tok[64];
    size_t nt = 0;
    for (char *save = NULL, *t = strtok_r(line, " ", &save); t && nt < 64;
         t = strtok_r(NULL, " ", &save))
        tok[nt++] = t;
    size_t sep = 6;
    while (sep < nt && strcmp(tok[sep], "-") != 0)
        sep++;
    if (nt < 7 || sep + 1 >= nt)
        return 0; /* not a line we understand; ignore */
    char *root = tok[3], *mp = tok[4], *fstype = tok[sep + 1];
    char *super = sep + 3 < nt ? tok[sep + 3] : "";
    unescape(root);
    unescape(mp);
    drop_shadowed(L, mp);

    bool v2 = strcmp(fstype, "cgroup2") == 0;
    if (!v2 && strcmp(fstype, "cgroup") != 0)
        return 0;
    struct cg_hier h = {.v2 = v2};
    if (!v2)
        v1_opts(super, &h);
    if (!v2 && h.ctrls == 0 && h.cgname == NULL) {
        hier_free(&h);
        return 0;
    }
    for (size_t i = 0; i < L->n; i++) {
        if (same_hierarchy(&L->h[i], &h)) { /* a second (bind) mount of it: keep the first */
            hier_free(&h);
            return 0;
        }
    }
    if (L->n == CG_MAX_HIER) {
        hier_free(&h);
        return hull_error_set(err, E2BIG, "too many cgroup hierarchies");
    }
    const char *base = strrchr(mp, '/');
    h.mount = strdup(mp);
    h.root = strdup(root);
    h.name = strdup(base && base[1] ? base + 1 : "cgroup");
    if (h.mount == NULL || h.root == NULL || h.name == NULL || (!v2 && h.opts == NULL)) {
        hier_free(&h);
        return hull_error_set(err, ENOMEM, "out of memory");
    }
    L->h[L->n++] = h;
    return 0;
}

int cg_layout_parse(const char *mountinfo, struct cg_layout *L, hull_error *err)
{
    memset(L, 0, sizeof(*L));
    L->v2 = -1;
    char *copy = strdup(mountinfo);
    if (copy == NULL)
        return hull_error_set(err, ENOMEM, "out of memory");
    int rc = 0;
    for (char *save = NULL, *line = strtok_r(copy, "\n", &save); line && rc == 0;
         line = strtok_r(NULL, "\n", &save))
        rc = parse_line(line, L, err);
    free(copy);
    if (rc < 0) {
        cg_layout_clear(L);
        return -1;
    }
    bool v1_ctrls = false;
    for (size_t i = 0; i < L->n; i++) {
        if (L->h[i].v2)
            L->v2 = (int)i;
        else if (L->h[i].ctrls)
            v1_ctrls = true;
    }
    if (!v1_ctrls && L->v2 < 0) {
        cg_layout_clear(L);
        return hull_error_set(err, ENOENT, "cgroups: no cgroup filesystem is mounted");
    }
    L->mode = !v1_ctrls ? HULL_CGROUP_V2 : L->v2 >= 0 ? HULL_CGROUP_HYBRID : HULL_CGROUP_V1;
    return 0;
}

static struct cg_layout host_layout;
static hull_error host_error;
static pthread_once_t host_once = PTHREAD_ONCE_INIT;

static void detect(void)
{
    char *text = NULL;
    if (hull_read_file("/proc/self/mountinfo", &text, NULL, &host_error) < 0)
        return;
    if (cg_layout_parse(text, &host_layout, &host_error) == 0 && host_layout.v2 >= 0) {
        /* The controllers cgroup2 offers at its root; on a hybrid host this
         * is usually nothing or a leftover such as hugetlb. */
        char buf[512];
        struct cg_hier *h = &host_layout.h[host_layout.v2];
        hull_error ignored = NULL;
        if (cg_read(h->mount, "cgroup.controllers", buf, sizeof(buf), &ignored) == 0)
            h->ctrls = cg_v2_ctrl_mask(buf);
        hull_error_free(&ignored); /* unreadable: no controllers offered, as on a bare root */
    }
    free(text);
}

const struct cg_layout *cg_layout_get(hull_error *err)
{
    pthread_once(&host_once, detect);
    if (host_error != NULL) {
        hull_error_set(err, hull_error_code(host_error), "%s", hull_error_msg(host_error));
        return NULL;
    }
    return &host_layout;
}

int hull_cgroup_mode(enum hull_cgroup_mode *mode, hull_error *err)
{
    const struct cg_layout *L = cg_layout_get(err);
    if (L == NULL)
        return -1;
    *mode = L->mode;
    return 0;
}

int cg_hier_of(const struct cg_layout *L, enum cg_ctrl c)
{
    for (size_t i = 0; i < L->n; i++)
        if (!L->h[i].v2 && (L->h[i].ctrls & CG_BIT(c)))
            return (int)i;
    if (L->v2 < 0)
        return -1;
    if (c == CG_FREEZER || c == CG_DEVICES || c == CG_CPUACCT)
        return L->v2; /* cgroup.freeze, eBPF, cpu.stat: part of cgroup2 itself */
    return (L->h[L->v2].ctrls & CG_BIT(c)) ? L->v2 : -1;
}

void cg_hier_key(const struct cg_hier *h, char *buf, size_t len)
{
    if (h->v2) {
        snprintf(buf, len, "%s", "");
        return;
    }
    size_t o = 0;
    buf[0] = '\0';
    for (int c = 0; c < CG_NCTRL; c++)
        if (h->ctrls & CG_BIT(c))
            o += (size_t)snprintf(buf + o, o < len ? len - o : 0, "%s%s", o ? "," : "",
                                  cg_ctrl_v1_name[c]);
    if (h->cgname)
        snprintf(buf + o, o < len ? len - o : 0, "%sname=%s", o ? "," : "", h->cgname);
}

/* /proc/PID/cgroup lists controllers in the kernel's order, which need not
 * be ours: compare as sets. */
static bool key_matches(const struct cg_hier *h, const char *key)
{
    if (h->v2)
        return key[0] == '\0';
    uint32_t mask = 0;
    char *name = NULL;
    const char *p = key;
    bool ok = true;
    while (*p) {
        size_t l = strcspn(p, ",");
        int c = v1_ctrl(p, l);
        if (c >= 0)
            mask |= CG_BIT(c);
        else if (l > 5 && strncmp(p, "name=", 5) == 0)
            name = strndup(p + 5, l - 5);
        else
            ok = false;
        p += l;
        if (*p == ',')
            p++;
    }
    ok = ok && mask == h->ctrls && (name == NULL) == (h->cgname == NULL) &&
         (name == NULL || strcmp(name, h->cgname) == 0);
    free(name);
    return ok && (mask || h->cgname);
}

int cg_own_paths(const struct cg_layout *L, const char *proc_cgroup, char *out[CG_MAX_HIER],
                 hull_error *err)
{
    for (size_t i = 0; i < CG_MAX_HIER; i++)
        out[i] = NULL;
    const char *p = proc_cgroup;
    while (p && *p) {
        const char *eol = strchrnul(p, '\n');
        const char *c1 = memchr(p, ':', (size_t)(eol - p));
        const char *c2 = c1 ? memchr(c1 + 1, ':', (size_t)(eol - c1 - 1)) : NULL;
        if (c2 != NULL) {
            char key[256], path[4096];
            snprintf(key, sizeof(key), "%.*s", (int)(c2 - c1 - 1), c1 + 1);
            snprintf(path, sizeof(path), "%.*s", (int)(eol - c2 - 1), c2 + 1);
            for (size_t i = 0; i < L->n; i++) {
                if (out[i] != NULL || !key_matches(&L->h[i], key))
                    continue;
                /* Make it relative to what the mount shows. */
                const char *root = L->h[i].root, *rel = path;
                size_t rl = strlen(root);
                if (strcmp(root, "/") != 0 && under(path, root))
                    rel = path[rl] ? path + rl : "/";
                if ((out[i] = strdup(rel)) == NULL) {
                    for (size_t j = 0; j < CG_MAX_HIER; j++)
                        free(out[j]);
                    return hull_error_set(err, ENOMEM, "out of memory");
                }
            }
        }
        p = *eol ? eol + 1 : NULL;
    }
    return 0;
}
