/* `hull network remove` and `hull network prune`: networks away, and what
 * a crash left (stale leases, orphan bridges/veths/TAPs, orphan rules).
 *
 * Several hull installations (state directories) may share one kernel, so
 * an interface or rule counts as an orphan only when nothing could own it.
 * Interfaces carry their state directory in their ifalias ("hull <dir>");
 * an orphan is one of ours that nothing accounts for: a
 * bridge named hullbr... with no definition here and no port; a veth or
 * TAP named hullv... or hullt... with no lease here. A member chain is an
 * orphan when its interface is gone and it has no lease here. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "net/net_int.h"
#include "util/fs.h"

int net_network_remove(const char *name, bool force, hull_error *err)
{
    cleanup_close int lock = net_lock(err);
    if (lock < 0)
        return -1;
    struct net_def d;
    if (net_def_load(name, &d, err) < 0 || net_sweep(err) < 0)
        return -1;
    struct net_member *ms = NULL;
    size_t n = 0;
    if (net_member_list(name, &ms, &n, err) < 0)
        return -1;
    int rc = 0;
    if (n && !force)
        rc = hull_error_set(err, EBUSY, "%s: %zu member%s still attached (--force detaches them)",
                            name, n, n == 1 ? "" : "s");
    for (size_t i = 0; i < n && rc == 0; i++)
        rc = net_member_undo(&ms[i], false, err);
    net_members_free(ms, n);
    if (rc < 0 || net_network_down(&d, err) < 0)
        return -1;
    return net_def_delete(name, err);
}

struct state {
    struct net_def *defs;
    size_t n_defs;
    struct net_member *ms;
    size_t n_ms;
};

static bool has_def_bridge(const struct state *s, const char *bridge)
{
    for (size_t i = 0; i < s->n_defs; i++)
        if (strcmp(s->defs[i].bridge, bridge) == 0)
            return true;
    return false;
}

static bool has_lease(const struct state *s, const char *ifname)
{
    for (size_t i = 0; i < s->n_ms; i++)
        if (strcmp(s->ms[i].host_ifname, ifname) == 0)
            return true;
    return false;
}

static bool keep_member(const char *ifname, void *arg)
{
    return has_lease(arg, ifname) || nl_link_index(ifname) != 0;
}

static bool keep_bridge(const char *bridge, void *arg)
{
    return has_def_bridge(arg, bridge) || nl_link_index(bridge) != 0;
}

/* The bridge a port is on ("" when none), from sysfs. */
static void master_of(const char *ifname, char *buf, size_t len)
{
    char path[128], link[256];
    snprintf(path, sizeof(path), "/sys/class/net/%s/master", ifname);
    ssize_t n = readlink(path, link, sizeof(link) - 1);
    buf[0] = '\0';
    if (n > 0) {
        link[n] = '\0';
        const char *slash = strrchr(link, '/');
        snprintf(buf, len, "%.15s", slash ? slash + 1 : link);
    }
}

/* The interface is this state's: its alias says so. (An unmarked one may be
 * another hull's half-way through an attach: never ours to delete.) */
static bool ours(const char *ifname, bool bridge)
{
    char want[256], have[300];
    net_link_alias(ifname, have, sizeof(have));
    net_alias(bridge, want, sizeof(want));
    return strcmp(have, want) == 0;
}

static bool bridge_has_ports(const char *bridge)
{
    char path[128];
    snprintf(path, sizeof(path), "/sys/class/net/%s/brif", bridge);
    cleanup_dir DIR *d = opendir(path);
    struct dirent *e;
    while (d && (e = readdir(d)))
        if (e->d_name[0] != '.')
            return true;
    return false;
}

static int prune_links(const struct state *s, size_t *count, hull_error *err)
{
    static const char *const prefixes[] = {NET_VETH_PREFIX, NET_TAP_PREFIX, NET_BRIDGE_PREFIX};
    for (size_t p = 0; p < 3; p++) {
        char(*names)[16] = NULL;
        size_t n = 0;
        if (nl_links_with_prefix(prefixes[p], &names, &n, err) < 0)
            return -1;
        int rc = 0;
        for (size_t i = 0; i < n && rc == 0; i++) {
            bool orphan;
            if (p == 2) {
                orphan = ours(names[i], true) && !has_def_bridge(s, names[i]) &&
                         !bridge_has_ports(names[i]);
            } else {
                char master[16];
                master_of(names[i], master, sizeof(master));
                orphan = ours(names[i], false) && !has_lease(s, names[i]) &&
                         (!master[0] || has_def_bridge(s, master));
            }
            if (orphan && (rc = nl_link_delete(names[i], err)) == 0)
                (*count)++;
        }
        free(names);
        if (rc < 0)
            return -1;
    }
    return 0;
}

static int add_name(char ***v, size_t *n, const char *name, hull_error *err)
{
    char **nv = realloc(*v, (*n + 2) * sizeof(*nv));
    if (!nv)
        return hull_error_set(err, ENOMEM, "out of memory");
    *v = nv;
    nv[*n] = strdup(name);
    nv[++*n] = NULL;
    return nv[*n - 1] ? 0 : hull_error_set(err, ENOMEM, "out of memory");
}

/* Networks without members, except the default one (made again on first
 * use anyway, kept like podman keeps its own). */
static int prune_networks(struct state *s, char ***names, size_t *count, hull_error *err)
{
    for (size_t i = 0; i < s->n_defs; i++) {
        const struct net_def *d = &s->defs[i];
        bool used = strcmp(d->name, HULL_NET_DEFAULT) == 0;
        for (size_t k = 0; k < s->n_ms && !used; k++)
            used = strcmp(s->ms[k].network, d->name) == 0;
        if (used)
            continue;
        if (net_network_down(d, err) < 0 || net_def_delete(d->name, err) < 0 ||
            add_name(names, count, d->name, err) < 0)
            return -1;
        s->defs[i] = s->defs[--s->n_defs];
        i--;
    }
    return 0;
}

int net_prune_state(struct net_prune_report *r, char ***removed_names, hull_error *err)
{
    memset(r, 0, sizeof(*r));
    *removed_names = NULL;
    cleanup_close int lock = net_lock(err);
    if (lock < 0)
        return -1;
    struct net_member *before = NULL;
    size_t n_before = 0;
    if (net_member_list(NULL, &before, &n_before, err) < 0)
        return -1;
    net_members_free(before, n_before);
    if (net_sweep(err) < 0)
        return -1;
    struct state s = {0};
    int rc = net_member_list(NULL, &s.ms, &s.n_ms, err);
    if (rc == 0)
        rc = net_def_list(&s.defs, &s.n_defs, err);
    r->leases = n_before - s.n_ms;
    if (rc == 0)
        rc = prune_networks(&s, removed_names, &r->networks, err);
    if (rc == 0)
        rc = prune_links(&s, &r->links, err);
    if (rc == 0)
        rc = nft_prune(keep_member, keep_bridge, &s, &r->rules, err);
    net_members_free(s.ms, s.n_ms);
    free(s.defs);
    return rc;
}
