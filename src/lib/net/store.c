/* Network definitions (HULL_NET_CONFIG_DIR/<name>.json) and leases
 * (HULL_NET_RUN_DIR/leases/<member>.json), each written whole (temporary +
 * rename) so a reader never sees half a file; every change happens under
 * the flock of HULL_NET_RUN_DIR/lock. */
#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>

#include "net/net_int.h"
#include "util/log.h"
#include "util/fs.h"
#include "util/json.h"

const char *net_config_dir(void)
{
    const char *d = getenv("HULL_NET_CONFIG_DIR");
    return d && *d ? d : HULL_NET_CONFIG_DIR;
}

const char *net_run_dir(void)
{
    const char *d = getenv("HULL_NET_RUN_DIR");
    return d && *d ? d : HULL_NET_RUN_DIR;
}

void net_alias(bool bridge, char *buf, size_t len)
{
    snprintf(buf, len, "hull %.200s", bridge ? net_config_dir() : net_run_dir());
}

void net_link_alias(const char *ifname, char *buf, size_t len)
{
    char path[128];
    snprintf(path, sizeof(path), "/sys/class/net/%s/ifalias", ifname);
    cleanup_file FILE *f = fopen(path, "re");
    if (!f || !fgets(buf, (int)len, f))
        buf[0] = '\0';
    buf[strcspn(buf, "\n")] = '\0';
}

static int lock_path(const char *path, hull_error *err)
{
    int fd = open(path, O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0600);
    if (fd < 0)
        return hull_error_errno(err, "open %s", path);
    int rc;
    do
        rc = flock(fd, LOCK_EX);
    while (rc < 0 && errno == EINTR);
    if (rc < 0) {
        hull_error_errno(err, "lock %s", path);
        close(fd);
        return -1;
    }
    return fd;
}

int net_lock(hull_error *err)
{
    char path[4096];
    snprintf(path, sizeof(path), "%.3900s/leases", net_run_dir());
    if (hull_mkdir_p(path, 0700, err) < 0 || hull_mkdir_p(net_config_dir(), 0700, err) < 0)
        return -1;
    snprintf(path, sizeof(path), "%.3900s/lock", net_run_dir());
    return lock_path(path, err);
}

int net_host_lock_named(const char *name, hull_error *err)
{
    /* Made root's and 0700 by its first user (under /run: after each boot). */
    if (hull_mkdir_p(NET_HOST_LOCK_DIR, 0700, err) < 0)
        return -1;
    char path[256];
    snprintf(path, sizeof(path), "%s/%.64s.lock", NET_HOST_LOCK_DIR, name);
    return lock_path(path, err);
}

int net_host_lock(hull_error *err)
{
    return net_host_lock_named(NET_HOST_LOCK, err);
}

/* prefix followed by 1 to 10 of [0-9a-f]: the interface names hull makes
 * (they go into nft rules, so nothing else may come from a file). */
static bool ifname_ours(const char *name, const char *prefix)
{
    size_t p = strlen(prefix), n = strlen(name);
    if (strncmp(name, prefix, p) != 0 || n == p || n > 15)
        return false;
    return strspn(name + p, "0123456789abcdef") == n - p;
}

bool net_member_id_valid(const char *id)
{
    size_t n = strlen(id);
    if (n == 0 || n >= 80 || id[0] == '.')
        return false;
    for (size_t i = 0; i < n; i++)
        if (!strchr("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.-", id[i]))
            return false;
    return true;
}

static void add_str(json_object *o, const char *k, const char *v)
{
    json_object_object_add(o, k, json_object_new_string(v));
}

static void add_addr(json_object *o, const char *k, int family, const uint8_t a[16])
{
    char buf[INET6_ADDRSTRLEN];
    net_addr_format(family, a, buf, sizeof(buf));
    add_str(o, k, buf);
}

static void add_prefix(json_object *o, const char *k, const struct net_prefix *p)
{
    char buf[INET6_ADDRSTRLEN + 8];
    net_prefix_format(p, buf, sizeof(buf));
    add_str(o, k, buf);
}

json_object *net_def_json(const struct net_def *d)
{
    json_object *o = json_object_new_object();
    add_str(o, "name", d->name);
    add_str(o, "bridge", d->bridge);
    add_prefix(o, "subnet", &d->subnet4);
    add_addr(o, "gateway", AF_INET, d->gw4);
    if (d->has6) {
        add_prefix(o, "ipv6_subnet", &d->subnet6);
        add_addr(o, "ipv6_gateway", AF_INET6, d->gw6);
    }
    json_object_object_add(o, "internal", json_object_new_boolean(d->internal));
    json_object_object_add(o, "allow_peers", json_object_new_boolean(d->allow_peers));
    json_object_object_add(o, "created", json_object_new_int64(d->created));
    return o;
}

static const char *jstr(json_object *o, const char *k)
{
    const char *s = json_object_get_string(hj_get(o, k));
    return s ? s : "";
}

static int def_from_json(json_object *o, const char *what, struct net_def *d, hull_error *err)
{
    memset(d, 0, sizeof(*d));
    snprintf(d->name, sizeof(d->name), "%s", jstr(o, "name"));
    snprintf(d->bridge, sizeof(d->bridge), "%s", jstr(o, "bridge"));
    if (net_prefix_parse(jstr(o, "subnet"), AF_INET, &d->subnet4, err) < 0 ||
        net_addr_parse(jstr(o, "gateway"), AF_INET, d->gw4) < 0)
        return hull_error_prefix(err, "%s: bad subnet or gateway", what);
    d->has6 = hj_get(o, "ipv6_subnet") != NULL;
    if (d->has6 && (net_prefix_parse(jstr(o, "ipv6_subnet"), AF_INET6, &d->subnet6, err) < 0 ||
                    net_addr_parse(jstr(o, "ipv6_gateway"), AF_INET6, d->gw6) < 0))
        return hull_error_prefix(err, "%s: bad IPv6 subnet or gateway", what);
    d->internal = json_object_get_boolean(hj_get(o, "internal"));
    d->allow_peers = json_object_get_boolean(hj_get(o, "allow_peers"));
    d->created = json_object_get_int64(hj_get(o, "created"));
    if (!hull_net_name_valid(d->name) || !ifname_ours(d->bridge, NET_BRIDGE_PREFIX))
        return hull_error_set(err, EINVAL, "%s: bad name or bridge", what);
    return 0;
}

static int save_json(const char *dir, const char *name, json_object *o, bool durable,
                     hull_error *err)
{
    char file[256];
    snprintf(file, sizeof(file), "%s.json", name);
    cleanup_close int dfd = open(dir, O_DIRECTORY | O_RDONLY | O_CLOEXEC);
    if (dfd < 0)
        return hull_error_errno(err, "open %s", dir);
    const char *text =
        json_object_to_json_string_ext(o, JSON_C_TO_STRING_PRETTY | JSON_C_TO_STRING_NOSLASHESCAPE);
    return hull_write_file_replace(dfd, file, text, strlen(text), 0600, durable, err);
}

static int load_json(const char *dir, const char *name, json_object **o, hull_error *err)
{
    char path[4096];
    snprintf(path, sizeof(path), "%.3900s/%.100s.json", dir, name);
    return hj_parse_file(path, o, err);
}

int net_def_load(const char *name, struct net_def *out, hull_error *err)
{
    cleanup_json json_object *o = NULL;
    if (!hull_net_name_valid(name))
        return hull_error_set(err, EINVAL, "%s: not a network name ([a-z0-9][a-z0-9_.-]{0,31})",
                              name[0] ? name : "''");
    char path[4096];
    snprintf(path, sizeof(path), "%.3900s/%.100s.json", net_config_dir(), name);
    if (access(path, F_OK) < 0)
        return hull_error_set(err, ENOENT, "%s: no such network", name);
    if (load_json(net_config_dir(), name, &o, err) < 0)
        return -1;
    return def_from_json(o, path, out, err);
}

int net_def_save(const struct net_def *d, hull_error *err)
{
    cleanup_json json_object *o = net_def_json(d);
    return save_json(net_config_dir(), d->name, o, true, err);
}

static int unlink_json(const char *dir, const char *name, hull_error *err)
{
    char path[4096];
    snprintf(path, sizeof(path), "%.3900s/%.100s.json", dir, name);
    if (unlink(path) < 0 && errno != ENOENT)
        return hull_error_errno(err, "remove %s", path);
    return 0;
}

int net_def_delete(const char *name, hull_error *err)
{
    return unlink_json(net_config_dir(), name, err);
}

/* The names (without .json) in dir, calling fn for each. */
static int each_json(const char *dir, int (*fn)(const char *name, void *arg, hull_error *err),
                     void *arg, hull_error *err)
{
    cleanup_dir DIR *d = opendir(dir);
    if (!d)
        return errno == ENOENT ? 0 : hull_error_errno(err, "open %s", dir);
    struct dirent *e;
    while ((e = readdir(d))) {
        size_t n = strlen(e->d_name);
        if (e->d_name[0] == '.' || n < 6 || strcmp(e->d_name + n - 5, ".json") != 0)
            continue;
        char name[256];
        snprintf(name, sizeof(name), "%.*s", (int)(n - 5), e->d_name);
        if (fn(name, arg, err) < 0)
            return -1;
    }
    return 0;
}

struct def_vec {
    struct net_def *v;
    size_t n;
};

static int collect_def(const char *name, void *arg, hull_error *err)
{
    struct def_vec *dv = arg;
    struct net_def d;
    if (!hull_net_name_valid(name))
        return 0;
    if (net_def_load(name, &d, err) < 0)
        return -1;
    struct net_def *nv = realloc(dv->v, (dv->n + 1) * sizeof(*nv));
    if (!nv)
        return hull_error_set(err, ENOMEM, "out of memory");
    dv->v = nv;
    dv->v[dv->n++] = d;
    return 0;
}

static int def_cmp(const void *a, const void *b)
{
    return strcmp(((const struct net_def *)a)->name, ((const struct net_def *)b)->name);
}

int net_def_list(struct net_def **out, size_t *n, hull_error *err)
{
    struct def_vec dv = {0};
    if (each_json(net_config_dir(), collect_def, &dv, err) < 0) {
        free(dv.v);
        return -1;
    }
    if (dv.n)
        qsort(dv.v, dv.n, sizeof(*dv.v), def_cmp);
    *out = dv.v;
    *n = dv.n;
    return 0;
}

/* ---- leases ---- */

static void leases_dir(char *buf, size_t len)
{
    snprintf(buf, len, "%.3900s/leases", net_run_dir());
}

json_object *net_member_json(const struct net_member *m)
{
    json_object *o = json_object_new_object();
    add_str(o, "member", m->member);
    add_str(o, "network", m->network);
    add_str(o, "host_ifname", m->host_ifname);
    add_str(o, "mac", m->mac);
    add_addr(o, "ip4", AF_INET, m->ip4);
    if (m->has6)
        add_addr(o, "ip6", AF_INET6, m->ip6);
    add_str(o, "kind", m->tap ? "tap" : "veth");
    json_object_object_add(o, "owner_pid", json_object_new_int(m->owner_pid));
    json_object_object_add(o, "owner_start", json_object_new_uint64(m->owner_start));
    add_str(o, "egress", m->egress ? m->egress : "all");
    json_object_object_add(o, "publish", hull_publish_to_json(m->publish, m->n_publish));
    return o;
}

static int member_from_json(json_object *o, struct net_member *m, hull_error *err)
{
    memset(m, 0, sizeof(*m));
    snprintf(m->member, sizeof(m->member), "%s", jstr(o, "member"));
    snprintf(m->network, sizeof(m->network), "%s", jstr(o, "network"));
    snprintf(m->host_ifname, sizeof(m->host_ifname), "%s", jstr(o, "host_ifname"));
    snprintf(m->mac, sizeof(m->mac), "%s", jstr(o, "mac"));
    if (net_addr_parse(jstr(o, "ip4"), AF_INET, m->ip4) < 0)
        return hull_error_set(err, EINVAL, "lease %s: bad ip4", m->member);
    m->has6 = hj_get(o, "ip6") != NULL;
    if (m->has6 && net_addr_parse(jstr(o, "ip6"), AF_INET6, m->ip6) < 0)
        return hull_error_set(err, EINVAL, "lease %s: bad ip6", m->member);
    m->tap = strcmp(jstr(o, "kind"), "tap") == 0;
    m->owner_pid = json_object_get_int(hj_get(o, "owner_pid"));
    m->owner_start = json_object_get_uint64(hj_get(o, "owner_start"));
    m->egress = strdup(jstr(o, "egress"));
    if (!m->egress)
        return hull_error_set(err, ENOMEM, "out of memory");
    if (!ifname_ours(m->host_ifname, m->tap ? NET_TAP_PREFIX : NET_VETH_PREFIX) ||
        !net_member_id_valid(m->member) || !hull_net_name_valid(m->network))
        return hull_error_set(err, EINVAL, "lease %s: bad member, network or interface name",
                              m->member);
    if (hull_publish_from_json(hj_get(o, "publish"), m->publish, HULL_NET_MAX_PUBLISH,
                               &m->n_publish, err) < 0)
        return hull_error_prefix(err, "lease %s", m->member);
    return 0;
}

int net_member_load(const char *member, struct net_member *out, hull_error *err)
{
    char dir[4096];
    cleanup_json json_object *o = NULL;
    memset(out, 0, sizeof(*out));
    if (!net_member_id_valid(member))
        return hull_error_set(err, EINVAL, "%s: not a member id", member);
    leases_dir(dir, sizeof(dir));
    char path[4200];
    snprintf(path, sizeof(path), "%.3900s/%.100s.json", dir, member);
    if (access(path, F_OK) < 0)
        return hull_error_set(err, ENOENT, "%s: no such member", member);
    if (load_json(dir, member, &o, err) < 0)
        return -1;
    return member_from_json(o, out, err);
}

int net_member_save(const struct net_member *m, hull_error *err)
{
    char dir[4096];
    leases_dir(dir, sizeof(dir));
    cleanup_json json_object *o = net_member_json(m);
    /* Replaced atomically but not fsynced (an fsync per attach cost 1.5-3
     * ms where /run is a disk, as here): what a lease names (a veth, rules,
     * an owner's pid) never outlives the machine, and a lease a power loss
     * tore is skipped by the listings and removed by the next sweep. */
    return save_json(dir, m->member, o, false, err);
}

int net_member_delete(const char *member, hull_error *err)
{
    char dir[4096];
    leases_dir(dir, sizeof(dir));
    return unlink_json(dir, member, err);
}

void net_member_free(struct net_member *m)
{
    free(m->egress);
    m->egress = NULL;
}

void net_members_free(struct net_member *m, size_t n)
{
    for (size_t i = 0; i < n; i++)
        net_member_free(&m[i]);
    free(m);
}

struct member_vec {
    const char *dir; /* the leases directory */
    const char *network;
    struct net_member *v;
    size_t n;
    bool remove_torn;
};

/* The boot the leases directory was last swept in (net_sweep, under the
 * lock, before any attach writes a lease), as the kernel's boot id: in
 * LEASES_DIR.boot, beside the directory, whose every file is a lease. */
#define BOOT_MARK ".boot"

static bool boot_id_now(char id[40])
{
    cleanup_free char *text = NULL;
    hull_error ignored = NULL;
    bool ok = hull_read_file("/proc/sys/kernel/random/boot_id", &text, NULL, &ignored) == 0;
    hull_error_free(&ignored); /* no boot id: no lease counts as torn */
    if (ok)
        snprintf(id, 40, "%.*s", (int)strcspn(text, "\n"), text);
    return ok && id[0];
}

static void boot_mark_path(const char *dir, char path[4200])
{
    snprintf(path, 4200, "%.3900s%s", dir, BOOT_MARK);
}

/* Whether dir's mark names the boot `now`: 1 yes, 0 another boot, -1 no
 * mark (never swept, an older hull's) or an unreadable one. */
static int boot_mark_is(const char *dir, const char *now)
{
    char path[4200];
    boot_mark_path(dir, path);
    cleanup_free char *mark = NULL;
    hull_error ignored = NULL;
    bool marked = hull_read_file(path, &mark, NULL, &ignored) == 0;
    hull_error_free(&ignored); /* unreadable: as unmarked */
    return marked ? strncmp(mark, now, strlen(now)) == 0 : -1;
}

/* Whether every lease in dir was written before this boot: the directory
 * was last swept in another. Not known (no mark or no boot id): no. */
static bool leases_predate_boot(const char *dir)
{
    char now[40];
    return boot_id_now(now) && boot_mark_is(dir, now) == 0;
}

void net_store_remove_temps(void)
{
    char dir[4096];
    leases_dir(dir, sizeof(dir));
    const char *dirs[] = {dir, net_run_dir(), net_config_dir()};
    size_t n = 0;
    for (size_t i = 0; i < sizeof(dirs) / sizeof(dirs[0]); i++) {
        cleanup_close int fd = open(dirs[i], O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (fd >= 0) /* a directory that cannot be opened has nothing to sweep here */
            n += hull_remove_stale_temps(fd);
    }
    if (n)
        hull_debug("network: removed %zu temporary files of killed writers", n);
}

void net_leases_mark_boot(void)
{
    char dir[4096], now[40], path[4200];
    leases_dir(dir, sizeof(dir));
    if (!boot_id_now(now) || boot_mark_is(dir, now) == 1)
        return;
    boot_mark_path(dir, path);
    hull_error e = NULL;
    if (hull_write_path_atomic(path, now, strlen(now), 0600, &e) < 0)
        hull_debug("leases: boot mark: %s", hull_error_msg(e));
    hull_error_free(&e); /* without a mark, a torn lease stays an error: fail closed */
}

/* A lease a power loss tore (net_member_save does not fsync): not JSON at
 * all, in a directory last swept in an earlier boot, so nothing it named
 * exists. A lease that fails to load for any other reason (another hull
 * version's, say) may describe a live member: that stays an error. */
static bool lease_torn(const char *dir, const char *name)
{
    if (!leases_predate_boot(dir))
        return false;
    char path[4200];
    snprintf(path, sizeof(path), "%.3900s/%.100s.json", dir, name);
    cleanup_json json_object *o = NULL;
    cleanup_hull_error hull_error e = NULL;
    return hj_parse_file(path, &o, &e) < 0 && hull_error_code(e) == EINVAL;
}

static int collect_member(const char *name, void *arg, hull_error *err)
{
    struct member_vec *mv = arg;
    struct net_member m;
    if (!net_member_id_valid(name))
        return 0;
    if (net_member_load(name, &m, err) < 0) {
        net_member_free(&m);
        /* ENOENT: detached since the directory was read (readers such as
         * hulld's listing do not take the lock). */
        bool gone = hull_error_code(*err) == ENOENT, torn = !gone && lease_torn(mv->dir, name);
        if (!gone && !torn)
            return -1;
        hull_error_free(err);
        if (torn && mv->remove_torn) {
            hull_warn("lease %s: torn before this boot (not JSON): removed", name);
            net_member_delete(name, NULL); /* if it stays, it is only skipped again */
        }
        return 0;
    }
    if (mv->network && strcmp(mv->network, m.network) != 0) {
        net_member_free(&m);
        return 0;
    }
    struct net_member *nv = realloc(mv->v, (mv->n + 1) * sizeof(*nv));
    if (!nv) {
        net_member_free(&m);
        return hull_error_set(err, ENOMEM, "out of memory");
    }
    mv->v = nv;
    mv->v[mv->n++] = m;
    return 0;
}

int net_member_list(const char *network, struct net_member **out, size_t *n, hull_error *err)
{
    return net_member_list_ex(network, false, out, n, err);
}

int net_member_list_ex(const char *network, bool remove_torn, struct net_member **out, size_t *n,
                       hull_error *err)
{
    char dir[4096];
    leases_dir(dir, sizeof(dir));
    struct member_vec mv = {.dir = dir, .network = network, .remove_torn = remove_torn};
    if (each_json(dir, collect_member, &mv, err) < 0) {
        net_members_free(mv.v, mv.n);
        return -1;
    }
    *out = mv.v;
    *n = mv.n;
    return 0;
}
