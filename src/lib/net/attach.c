/* A network up on the host, a member in and out of it, and the crash sweep
 * (net_int.h). Every change runs under the lock of store.c; a failed step
 * undoes the ones before it, so nothing half-made stays on the host. */
#include <arpa/inet.h>
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "net/net_int.h"
#include "util/fs.h"
#include "util/log.h"
#include "util/proc.h"

static void random_bytes(uint8_t *b, size_t n)
{
    if (getrandom(b, n, 0) != (ssize_t)n)
        for (size_t i = 0; i < n; i++)
            b[i] = (uint8_t)rand();
}

/* A locally administered unicast MAC (02:...). */
static void random_mac(char buf[18])
{
    uint8_t b[5];
    random_bytes(b, sizeof(b));
    snprintf(buf, 18, "02:%02x:%02x:%02x:%02x:%02x", b[0], b[1], b[2], b[3], b[4]);
}

/* IPv6 NAT needs forwarding on the bridge and on whatever interface the
 * replies come in by. Not all.forwarding: that would also make every
 * interface ignore router advertisements (the host's uplink among them).
 * force_forwarding (per interface, Linux 6.17+) forwards without touching
 * accept_ra: set on every interface there is, and on "default" for those
 * made later. */
static int ipv6_forwarding(hull_error *err)
{
    cleanup_dir DIR *dir = opendir("/proc/sys/net/ipv6/conf");
    if (!dir)
        return hull_error_errno(err, "open /proc/sys/net/ipv6/conf");
    struct dirent *e;
    while ((e = readdir(dir)))
        if (e->d_name[0] != '.' && strcmp(e->d_name, "all") != 0 && strcmp(e->d_name, "lo") != 0)
            nl_sysctl("ipv6", e->d_name, "force_forwarding", "1", NULL);
    return nl_sysctl("ipv6", "default", "force_forwarding", "1", err);
}

/* NAT needs the host to forward (docs/network.md): IPv4 by ip_forward,
 * IPv6 as above. Again on every attach: interfaces made since need it. */
static int forwarding(const struct net_def *d, hull_error *err)
{
    if (d->internal)
        return 0;
    if (hull_write_file("/proc/sys/net/ipv4/ip_forward", "1", 1, err) < 0)
        return -1;
    return d->has6 ? ipv6_forwarding(err) : 0;
}

static int sysctl_all(const char *bridge, const struct net_def *d, hull_error *err)
{
    /* Before the bridge goes up: it must never take a router advertisement
     * (this host defaults to accept_ra=1) nor configure itself from one. */
    if (nl_sysctl("ipv6", bridge, "accept_ra", "0", err) < 0 ||
        nl_sysctl("ipv6", bridge, "autoconf", "0", err) < 0)
        return -1;
    /* Published ports on 127.0.0.1: the DNATed packet leaves through the
     * bridge with a loopback source (masqueraded in postrouting). Packets
     * from members to 127.0.0.0/8 are dropped by the input chain. */
    if (nl_sysctl("ipv4", bridge, "route_localnet", "1", err) < 0)
        return -1;
    return forwarding(d, err);
}

int net_network_down(const struct net_def *d, hull_error *err)
{
    if (nft_network_remove(d, err) < 0)
        return -1;
    return nl_link_delete(d->bridge, err);
}

/* The bridge's MAC, derived from the network's name and subnet (FNV-1a),
 * locally administered and unicast: the same network has the same gateway
 * MAC on every host, so a microVM that migrates keeps a valid neighbour
 * entry for its gateway (docs/network.md, "Bridges and sysctls"). */
void net_bridge_mac(const struct net_def *d, char buf[18])
{
    char key[128], sub[64];
    net_prefix_format(&d->subnet4, sub, sizeof(sub));
    snprintf(key, sizeof(key), "hull-bridge %s %s", d->name, sub);
    uint64_t h = 14695981039346656037ull;
    for (const char *p = key; *p; p++)
        h = (h ^ (uint8_t)*p) * 1099511628211ull;
    snprintf(buf, 18, "02:%02x:%02x:%02x:%02x:%02x", (unsigned)(h >> 32) & 0xff,
             (unsigned)(h >> 24) & 0xff, (unsigned)(h >> 16) & 0xff, (unsigned)(h >> 8) & 0xff,
             (unsigned)h & 0xff);
}

/* A bridge whose set-up a killed helper left unfinished: the definition
 * is written before the bridge is made, and link up is the set-up's last
 * kernel step, so such a bridge is down, with no alias or this state's. */
static bool bridge_unfinished(const char *bridge)
{
    char have[300], want[256];
    if (nl_link_is_up(bridge))
        return false;
    net_link_alias(bridge, have, sizeof(have));
    net_alias(true, want, sizeof(want));
    return !have[0] || strcmp(have, want) == 0;
}

int net_network_ensure(const struct net_def *d, hull_error *err)
{
    bool made = false;
    if (nl_link_index(d->bridge) == 0) {
        char mac[18];
        /* A fixed MAC: a bridge otherwise takes its lowest port's, and the
         * members' neighbour entries for the gateway would go stale. */
        net_bridge_mac(d, mac);
        if (nl_bridge_create(d->bridge, mac, err) < 0)
            return -1;
        made = true;
    } else if (!bridge_unfinished(d->bridge)) {
        /* An existing bridge: its set elements come again with each member
         * (nft_member_add); forwarding may have been turned off since. */
        return forwarding(d, err);
    }
    /* Every step is idempotent, so an unfinished bridge is set up again
     * whole: left as it was, it would have no address, stay down and take
     * router advertisements. */
    char alias[256];
    net_alias(true, alias, sizeof(alias));
    if (nl_link_set_alias(d->bridge, alias, err) < 0 || sysctl_all(d->bridge, d, err) < 0 ||
        nl_addr_add(d->bridge, AF_INET, d->gw4, d->subnet4.len, false, err) < 0 ||
        (d->has6 && nl_addr_add(d->bridge, AF_INET6, d->gw6, d->subnet6.len, true, err) < 0) ||
        nl_link_up(d->bridge, err) < 0 || nft_network_add(d, err) < 0) {
        /* Only what this call made: the bridge it created. */
        if (made) {
            nft_network_remove(d, NULL);
            nl_link_delete(d->bridge, NULL);
        }
        return -1;
    }
    return 0;
}

/* Every subnet a new network must not overlap: the host's routes and
 * addresses, and the other hull networks. */
static int taken_prefixes(const struct net_def *defs, size_t n_defs, struct net_prefix **out,
                          size_t *n, hull_error *err)
{
    if (nl_host_prefixes(AF_INET, out, n, err) < 0)
        return -1;
    struct net_prefix *v = realloc(*out, (*n + n_defs + 1) * sizeof(*v));
    if (!v) {
        free(*out);
        return hull_error_set(err, ENOMEM, "out of memory");
    }
    for (size_t i = 0; i < n_defs; i++)
        v[(*n)++] = defs[i].subnet4;
    *out = v;
    return 0;
}

static int pick_bridge(const struct net_def *defs, size_t n_defs, char name[16], hull_error *err)
{
    for (unsigned i = 0; i < 10000; i++) {
        snprintf(name, 16, NET_BRIDGE_PREFIX "%u", i);
        bool used = nl_link_index(name) != 0;
        for (size_t k = 0; k < n_defs && !used; k++)
            used = strcmp(defs[k].bridge, name) == 0;
        if (!used)
            return 0;
    }
    return hull_error_set(err, ENOSPC, "no free bridge name");
}

static int check_subnet4(struct net_def *d, const struct net_create_opts *o,
                         const struct net_def *defs, size_t n_defs, const struct net_prefix *taken,
                         size_t n_taken, hull_error *err)
{
    if (!o->subnet)
        return net_pick_subnet(taken, n_taken, &d->subnet4, err);
    if (net_prefix_parse(o->subnet, AF_INET, &d->subnet4, err) < 0)
        return hull_error_prefix(err, "--subnet");
    if (d->subnet4.len < 8 || d->subnet4.len > 29)
        return hull_error_set(err, EINVAL, "--subnet %s: the prefix must be /8 to /29", o->subnet);
    struct net_prefix special[3];
    net_prefix_parse("127.0.0.0/8", AF_INET, &special[0], NULL);
    net_prefix_parse("224.0.0.0/3", AF_INET, &special[1], NULL);
    net_prefix_parse("0.0.0.0/8", AF_INET, &special[2], NULL);
    for (size_t i = 0; i < 3; i++)
        if (net_prefix_overlap(&d->subnet4, &special[i]))
            return hull_error_set(err, EINVAL, "--subnet %s: not a unicast range", o->subnet);
    for (size_t i = 0; i < n_defs; i++)
        if (net_prefix_overlap(&d->subnet4, &defs[i].subnet4))
            return hull_error_set(err, EADDRINUSE, "--subnet %s: overlaps network %s", o->subnet,
                                  defs[i].name);
    for (size_t i = 0; i < n_taken; i++) {
        if (!net_prefix_overlap(&d->subnet4, &taken[i]))
            continue;
        char t[64];
        net_prefix_format(&taken[i], t, sizeof(t));
        return hull_error_set(err, EADDRINUSE,
                              "--subnet %s: overlaps %s, a route or address of the host", o->subnet,
                              t);
    }
    return 0;
}

static int check_gateway(struct net_def *d, const struct net_create_opts *o, hull_error *err)
{
    net_prefix_host(&d->subnet4, 1, d->gw4);
    if (!o->gateway)
        return 0;
    if (net_addr_parse(o->gateway, AF_INET, d->gw4) < 0)
        return hull_error_set(err, EINVAL, "--gateway %s: not an IPv4 address", o->gateway);
    uint64_t i = net_prefix_index(&d->subnet4, d->gw4);
    if (!net_prefix_contains(&d->subnet4, d->gw4) || i == 0 ||
        i >= net_prefix_capacity(&d->subnet4) + 2)
        return hull_error_set(err, EINVAL, "--gateway %s: not a host address of the subnet",
                              o->gateway);
    return 0;
}

static int check_subnet6(struct net_def *d, const struct net_create_opts *o,
                         const struct net_def *defs, size_t n_defs, hull_error *err)
{
    if (!o->ipv6)
        return 0;
    d->has6 = true;
    if (net_prefix_parse(o->ipv6, AF_INET6, &d->subnet6, err) < 0)
        return hull_error_prefix(err, "--ipv6");
    if (d->subnet6.len < 64 || d->subnet6.len > 120)
        return hull_error_set(err, EINVAL, "--ipv6 %s: the prefix must be /64 to /120", o->ipv6);
    /* Global unicast (2000::/3) or unique-local (fc00::/7) only: not ::,
     * ::1, IPv4-mapped, link-local or multicast ranges. */
    uint8_t top = d->subnet6.addr[0];
    if ((top & 0xe0) != 0x20 && (top & 0xfe) != 0xfc)
        return hull_error_set(err, EINVAL,
                              "--ipv6 %s: not a global (2000::/3) or unique-local (fc00::/7) range",
                              o->ipv6);
    for (size_t i = 0; i < n_defs; i++)
        if (defs[i].has6 && net_prefix_overlap(&defs[i].subnet6, &d->subnet6))
            return hull_error_set(err, EADDRINUSE, "--ipv6 %s: overlaps network %s", o->ipv6,
                                  defs[i].name);
    /* Nor a route or address the host has (its uplink's fd00::/64, say). */
    struct net_prefix *host = NULL;
    size_t n_host = 0;
    if (nl_host_prefixes(AF_INET6, &host, &n_host, err) < 0)
        return -1;
    for (size_t i = 0; i < n_host; i++) {
        if (!net_prefix_overlap(&d->subnet6, &host[i]))
            continue;
        char t[64];
        net_prefix_format(&host[i], t, sizeof(t));
        free(host);
        return hull_error_set(err, EADDRINUSE,
                              "--ipv6 %s: overlaps %s, a route or address of the host", o->ipv6, t);
    }
    free(host);
    net_prefix_host(&d->subnet6, 1, d->gw6);
    return 0;
}

static int create_locked(const struct net_create_opts *o, struct net_def *d, hull_error *err)
{
    memset(d, 0, sizeof(*d));
    if (!hull_net_name_valid(o->name))
        return hull_error_set(err, EINVAL, "%s: not a network name ([a-z0-9][a-z0-9_.-]{0,31})",
                              o->name[0] ? o->name : "''");
    struct net_def old;
    if (net_def_load(o->name, &old, NULL) == 0)
        return hull_error_set(err, EEXIST, "%s: a network of that name exists", o->name);
    /* Held until the bridge has its address (a route every picker sees). */
    cleanup_close int host = net_host_lock(err);
    if (host < 0)
        return -1;
    cleanup_free struct net_def *defs = NULL;
    cleanup_free struct net_prefix *taken = NULL;
    size_t n_defs = 0, n_taken = 0;
    if (net_def_list(&defs, &n_defs, err) < 0 ||
        taken_prefixes(defs, n_defs, &taken, &n_taken, err) < 0)
        return -1;
    snprintf(d->name, sizeof(d->name), "%s", o->name);
    d->internal = o->internal;
    d->allow_peers = o->allow_peers;
    d->created = (long long)time(NULL);
    if (check_subnet4(d, o, defs, n_defs, taken, n_taken, err) < 0 ||
        check_gateway(d, o, err) < 0 || check_subnet6(d, o, defs, n_defs, err) < 0)
        return -1;
    /* Another state directory may take the same free bridge name at the
     * same moment: its bridge is never touched, another name is tried. */
    for (int tries = 0;; tries++) {
        if (pick_bridge(defs, n_defs, d->bridge, err) < 0 || net_def_save(d, err) < 0)
            return -1;
        if (net_network_ensure(d, err) == 0)
            return 0;
        net_def_delete(d->name, NULL);
        if (hull_error_code(*err) != EEXIST || tries == 3)
            return -1;
        hull_error_free(err);
    }
}

int net_network_create(const struct net_create_opts *o, struct net_def *out, hull_error *err)
{
    cleanup_close int lock = net_lock(err);
    if (lock < 0)
        return -1;
    return create_locked(o, out, err);
}

/* A bridge an older hull made has a random MAC: while the network has no
 * member (nobody has a neighbour entry for its gateway), it gets the
 * derived one, so guests that move here find their gateway's MAC. */
static int bridge_mac_again(const struct net_def *d, hull_error *err)
{
    struct net_member *ms = NULL;
    size_t n = 0;
    if (net_member_list(d->name, &ms, &n, err) < 0)
        return -1;
    net_members_free(ms, n);
    if (n)
        return 0;
    char mac[18];
    net_bridge_mac(d, mac);
    return nl_link_set_mac(d->bridge, mac, err);
}

/* The network a member joins: the default one is made on first use, but
 * not for a member moving in (its subnet must be the one it had). */
static int network_for(const char *name, bool moving, struct net_def *d, hull_error *err)
{
    if (net_def_load(name, d, err) == 0)
        return net_network_ensure(d, err) < 0 ? -1 : bridge_mac_again(d, err);
    if (hull_error_code(*err) != ENOENT)
        return -1;
    hull_error_free(err);
    if (moving)
        return hull_error_set(err, ENOENT,
                              "no such network on this host (create it with the same subnet: "
                              "hull network create %s --subnet ...)",
                              name);
    if (strcmp(name, HULL_NET_DEFAULT) != 0) /* the caller names the network */
        return hull_error_set(err, ENOENT, "no such network");
    struct net_create_opts o = {.name = HULL_NET_DEFAULT};
    return create_locked(&o, d, err);
}

/* How long a finished veth member's link may take to go with its
 * namespace before it is deleted the slow way. The network lock is held
 * meanwhile, and a member can keep its namespace alive after its last
 * process (an orphaned TCP socket still sending), so every other attach
 * and detach waits this long behind such a member: it stays short, ten
 * times a quiet machine's teardown. Past it, the delete is only slower. */
#define LINK_TEARDOWN_WAIT_MS 200

/* owner_gone: the caller said every process of the member has exited (its
 * pid namespace's init was reaped). What its namespace may still send is
 * the kernel's own (a lingering socket's FIN or retransmission) from the
 * addresses hull gave it, which no process without CAP_NET_ADMIN changed;
 * so the rules can go while the link does, and the two slow parts overlap.
 *
 * Both wait for RCU grace periods in the kernel. Deleting a link returns
 * only once the netdev is unregistered (15-30 ms here). But the member's
 * namespace has no user left, and its teardown takes the veth pair off
 * the host's list after one grace period, doing the rest in a worker: so
 * the link is not deleted but waited for (its RTM_DELLINK), and deleted
 * here only if it is still there after LINK_TEARDOWN_WAIT_MS (the
 * namespace kept alive by something else). nf_tables frees a deletion's
 * objects after a grace period, and closing the netlink socket that sent
 * it waits for that (5-15 ms): the rules go in a child meanwhile (raw
 * batch only, so libnftables' context and its socket stay ours). */
/* After the link and its rules, before the lease: the address's flows go
 * (conntrack.c says why), so the next member given it inherits none. */
static int forget_flows(const struct net_member *m, hull_error *err)
{
    if (nl_conntrack_forget(AF_INET, m->ip4, err) < 0 ||
        (m->has6 && nl_conntrack_forget(AF_INET6, m->ip6, err) < 0))
        return hull_error_prefix(err, "member %s", m->member);
    return 0;
}

static int undo_after_owner(const struct net_member *m, hull_error *err)
{
    pid_t rules = fork();
    if (rules == 0)
        _exit(nft_member_remove_batch(m) == 0 ? 0 : 1);
    if (rules < 0)
        hull_debug("member %s: fork: %s; rules after the link", m->member, strerror(errno));
    bool gone = nl_link_gone_within(m->host_ifname, LINK_TEARDOWN_WAIT_MS);
    int link = gone ? 0 : nl_link_delete(m->host_ifname, err);
    int status = -1;
    while (rules > 0 && waitpid(rules, &status, 0) < 0 && errno == EINTR)
        ;
    /* No child, or its batch did not apply (a member with egress rules or
     * a half-made one): the whole removal, here. */
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
        nft_member_remove(m, NULL);
    /* A link neither gone nor deleted has lost its rules already; nothing
     * runs behind it, and the lease stays for the next sweep. */
    if (link < 0 || forget_flows(m, err) < 0)
        return -1;
    return net_member_delete(m->member, err);
}

/* The link, its rules, then the lease: the lease goes last, so that its
 * address and names are not reused before the old ones are gone.
 *
 * While the member's processes may run (owner_gone false: an attach that
 * failed, a caller that died, prune --force, a TAP whose QEMU may live),
 * the link goes before its rules: a frame from a port whose element has
 * left the bridge's port map would skip that port's checks. A link that
 * stays keeps its rules and lease, and the next sweep tries again. */
int net_member_undo(const struct net_member *m, bool owner_gone, hull_error *err)
{
    if (owner_gone && !m->tap)
        return undo_after_owner(m, err);
    if (nl_link_delete(m->host_ifname, err) < 0)
        return -1;
    nft_member_remove(m, NULL); /* reports nothing: what is left is removed one by one */
    if (forget_flows(m, err) < 0)
        return -1;
    return net_member_delete(m->member, err);
}

int net_sweep(hull_error *err)
{
    struct net_member *ms = NULL;
    size_t n = 0;
    if (net_member_list_ex(NULL, true, &ms, &n, err) < 0)
        return -1;
    net_leases_mark_boot(); /* torn leases of an earlier boot are gone now */
    net_store_remove_temps();
    /* Every dead member is tried: one that cannot be undone (reported)
     * does not keep the others. */
    int rc = 0;
    for (size_t i = 0; i < n; i++) {
        hull_error e = NULL;
        if (!hull_pid_alive(ms[i].owner_pid, ms[i].owner_start) &&
            net_member_undo(&ms[i], false, &e) < 0 && rc == 0) {
            rc = hull_error_set(err, hull_error_code(e), "%s: %s", ms[i].member, hull_error_msg(e));
        }
        hull_error_free(&e);
    }
    net_members_free(ms, n);
    return rc;
}

/* Bind p's host port (and address) as a probe, closed at once: 0 when
 * free, else why not. */
static int probe_bind(const struct hull_publish *p, bool v6, hull_error *err)
{
    struct sockaddr_storage ss = {0};
    socklen_t len;
    if (v6) {
        struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&ss;
        s6->sin6_family = AF_INET6;
        s6->sin6_port = htons(p->host_port);
        if (p->host_ip[0])
            inet_pton(AF_INET6, p->host_ip, &s6->sin6_addr);
        len = sizeof(*s6);
    } else {
        struct sockaddr_in *s4 = (struct sockaddr_in *)&ss;
        s4->sin_family = AF_INET;
        s4->sin_port = htons(p->host_port);
        if (p->host_ip[0])
            inet_pton(AF_INET, p->host_ip, &s4->sin_addr);
        len = sizeof(*s4);
    }
    cleanup_close int s =
        socket(ss.ss_family, (p->udp ? SOCK_DGRAM : SOCK_STREAM) | SOCK_CLOEXEC, 0);
    if (s < 0)
        return hull_error_errno(err, "--publish: socket");
    int one = 1, zero = 0;
    /* TCP: a port in TIME_WAIT is free. Never for UDP, where SO_REUSEADDR
     * would bind beside a host service that set it too, and the published
     * port would then take that service's traffic. */
    if (!p->udp)
        setsockopt(s, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    if (v6 && !p->host_ip[0])
        setsockopt(s, IPPROTO_IPV6, IPV6_V6ONLY, &zero, sizeof(zero));
    if (bind(s, (struct sockaddr *)&ss, len) == 0)
        return 0;
    if (errno == EADDRNOTAVAIL)
        return hull_error_set(err, EADDRNOTAVAIL, "--publish %s: not an address of this host",
                              p->host_ip);
    if (errno == EAFNOSUPPORT)
        return hull_error_errno(err, "--publish: IPv6");
    return hull_error_errno(err, "--publish %s%s%u/%s: host port taken", p->host_ip,
                            p->host_ip[0] ? ":" : "", p->host_port, p->udp ? "udp" : "tcp");
}

/* A host port hull or anyone else already listens on is refused. */
static int check_publish(const struct hull_publish *p, bool has6, const struct net_member *all,
                         size_t n, hull_error *err)
{
    for (size_t i = 0; i < n; i++)
        for (size_t k = 0; k < all[i].n_publish; k++)
            if (all[i].publish[k].host_port == p->host_port && all[i].publish[k].udp == p->udp)
                return hull_error_set(err, EADDRINUSE,
                                      "--publish %u/%s: host port published by %s already",
                                      p->host_port, p->udp ? "udp" : "tcp", all[i].member);
    /* Another state directory's member is in the kernel's map only: its
     * element must not be replaced, nor removed by this attach's undo. */
    if (nl_nft_pub_taken(p->udp, p->host_port))
        return hull_error_set(err, EADDRINUSE,
                              "--publish %u/%s: host port published already by another hull "
                              "(another state directory) on this host",
                              p->host_port, p->udp ? "udp" : "tcp");
    /* Without a host address the port is published on every address, IPv6
     * too (::1 included) when the network has it: the probe is then a
     * dual-stack wildcard. */
    bool v6 = strchr(p->host_ip, ':') != NULL || (!p->host_ip[0] && has6);
    int rc = probe_bind(p, v6, err);
    if (rc < 0 && !p->host_ip[0] && v6 && (*err)->code == EAFNOSUPPORT) {
        hull_error_free(err); /* a host without IPv6 */
        rc = probe_bind(p, false, err);
    }
    return rc;
}

/* The lowest free address of d (and a random MAC) for m; peers: d's members. */
static int pick_free(const struct net_def *d, const struct net_member *peers, size_t n,
                     struct net_member *m, hull_error *err)
{
    cleanup_free uint64_t *used = calloc(n + 1, sizeof(*used));
    if (!used)
        return hull_error_set(err, ENOMEM, "out of memory");
    for (size_t i = 0; i < n; i++)
        used[i] = net_prefix_index(&d->subnet4, peers[i].ip4);
    used[n] = net_prefix_index(&d->subnet4, d->gw4);
    uint64_t idx = net_pick_index(&d->subnet4, used, n + 1);
    if (idx == 0) {
        char s[64];
        net_prefix_format(&d->subnet4, s, sizeof(s));
        return hull_error_set(err, ENOSPC, "network %s: subnet %s is full", d->name, s);
    }
    net_prefix_host(&d->subnet4, idx, m->ip4);
    if (d->has6) {
        m->has6 = true;
        net_prefix_host(&d->subnet6, idx, m->ip6);
    }
    random_mac(m->mac);
    return 0;
}

/* One wanted address of a family: on d's subnet with d's gateway. */
static int want_addr(const struct net_def *d, int family, const char *ip, unsigned prefix,
                     const char *gw, uint8_t out[16], hull_error *err)
{
    const struct net_prefix *sub = family == AF_INET ? &d->subnet4 : &d->subnet6;
    const uint8_t *dgw = family == AF_INET ? d->gw4 : d->gw6;
    char here[64], here_gw[INET6_ADDRSTRLEN];
    net_prefix_format(sub, here, sizeof(here));
    net_addr_format(family, dgw, here_gw, sizeof(here_gw));
    uint8_t g[16];
    if (prefix != sub->len || net_addr_parse(gw, family, g) < 0 || memcmp(g, dgw, 16) != 0)
        return hull_error_set(err, EADDRNOTAVAIL,
                              "network %s here is %s with gateway %s; the member's is /%u with "
                              "gateway %s (the subnet differs)",
                              d->name, here, here_gw, prefix, gw);
    uint64_t i = 0;
    bool ok = net_addr_parse(ip, family, out) == 0 && net_prefix_contains(sub, out);
    if (ok)
        i = net_prefix_index(sub, out);
    if (!ok || i == 0 || i > net_prefix_capacity(sub) + 1 || memcmp(out, dgw, 16) == 0)
        return hull_error_set(err, EADDRNOTAVAIL, "address %s: not a member address of %s", ip,
                              here);
    return 0;
}

static bool mac_unicast(const char *mac)
{
    unsigned b[6];
    char end;
    if (strlen(mac) != 17 || sscanf(mac, "%2x:%2x:%2x:%2x:%2x:%2x%c", &b[0], &b[1], &b[2], &b[3],
                                    &b[4], &b[5], &end) != 6)
        return false;
    return !(b[0] & 1) && (b[0] | b[1] | b[2] | b[3] | b[4] | b[5]);
}

/* A member moving in: exactly the addresses and MAC it had (net.h, want). */
static int pick_wanted(const struct net_def *d, const struct hull_net_lease *w,
                       const struct net_member *peers, size_t n, struct net_member *m,
                       hull_error *err)
{
    if (!w->ip6[0] != !d->has6)
        return hull_error_set(err, EADDRNOTAVAIL,
                              "network %s here has %s IPv6 and the member %s (the subnet "
                              "differs)",
                              d->name, d->has6 ? "an" : "no", w->ip6[0] ? "has one" : "has none");
    if (want_addr(d, AF_INET, w->ip4, w->prefix4, w->gw4, m->ip4, err) < 0 ||
        (d->has6 && want_addr(d, AF_INET6, w->ip6, w->prefix6, w->gw6, m->ip6, err) < 0))
        return -1;
    m->has6 = d->has6;
    if (!mac_unicast(w->mac))
        return hull_error_set(err, EINVAL, "MAC '%s': not a unicast MAC address", w->mac);
    for (size_t i = 0; i < n; i++) {
        const char *what = NULL;
        if (memcmp(peers[i].ip4, m->ip4, 16) == 0)
            what = w->ip4;
        else if (m->has6 && memcmp(peers[i].ip6, m->ip6, 16) == 0)
            what = w->ip6;
        else if (strcasecmp(peers[i].mac, w->mac) == 0)
            what = w->mac;
        if (what)
            return hull_error_set(err, EADDRINUSE, "%s is taken on network %s (by member %s)", what,
                                  d->name, peers[i].member);
    }
    /* As the helper writes MACs (nft rules, lease files): lower case. */
    for (size_t i = 0; i < sizeof(m->mac) - 1 && w->mac[i]; i++)
        m->mac[i] = (char)tolower((unsigned char)w->mac[i]);
    return 0;
}

/* Address and names for a new member of d. */
static int pick_member(const struct hull_net_attach_req *req, const struct net_def *d,
                       struct net_member *m, hull_error *err)
{
    struct net_member *peers = NULL;
    size_t n = 0;
    if (net_member_list(d->name, &peers, &n, err) < 0)
        return -1;
    int rc =
        req->want ? pick_wanted(d, req->want, peers, n, m, err) : pick_free(d, peers, n, m, err);
    net_members_free(peers, n);
    if (rc < 0)
        return -1;
    snprintf(m->member, sizeof(m->member), "%s", req->member);
    snprintf(m->network, sizeof(m->network), "%s", d->name);
    uint8_t r[4];
    random_bytes(r, sizeof(r));
    snprintf(m->host_ifname, sizeof(m->host_ifname), "%s%02x%02x%02x%02x",
             req->tap ? NET_TAP_PREFIX : NET_VETH_PREFIX, r[0], r[1], r[2], r[3]);
    m->tap = req->tap;
    m->owner_pid = req->owner_pid;
    m->owner_start = hull_pid_start_time(req->owner_pid);
    if (m->owner_start == 0)
        return hull_error_set(err, ESRCH, "owner pid %d: no such process", (int)req->owner_pid);
    return 0;
}

/* The kernel side of a member: its interface on the bridge, its rules,
 * the inside configured. */
static int plumb(const struct hull_net_attach_req *req, const struct net_def *d,
                 const struct net_member *m, const struct hull_egress *eg, int *tap_fd,
                 hull_error *err)
{
    if (req->tap) {
        *tap_fd = nl_tap_create(m->host_ifname, err);
        if (*tap_fd < 0)
            return -1;
    } else if (nl_veth_create(m->host_ifname, "eth0", m->mac, req->netns_fd, err) < 0) {
        return -1;
    }
    /* The host side is a bridge port only: no router advertisements, no
     * addresses of its own (IPv6 off on it); then onto the bridge, the
     * member's rules in place before the port goes up. */
    char alias[256];
    net_alias(false, alias, sizeof(alias));
    if (nl_link_set_alias(m->host_ifname, alias, err) < 0 ||
        nl_sysctl("ipv6", m->host_ifname, "accept_ra", "0", err) < 0 ||
        nl_sysctl("ipv6", m->host_ifname, "disable_ipv6", "1", err) < 0 ||
        nl_link_set_master(m->host_ifname, d->bridge, !d->allow_peers, err) < 0 ||
        nft_member_add(d, m, eg, err) < 0 || nl_link_up(m->host_ifname, err) < 0)
        return -1;
    if (!req->tap && nl_configure_inside(req->netns_fd, "eth0", d, m, err) < 0)
        return -1;
    return 0;
}

static int attach_locked(const struct hull_net_attach_req *req, struct net_member *m, int *tap_fd,
                         struct net_def *d, hull_error *err)
{
    struct hull_egress eg;
    if (!net_member_id_valid(req->member))
        return hull_error_set(err, EINVAL, "%s: not a member id", req->member);
    if (!req->tap && req->netns_fd < 0)
        return hull_error_set(err, EINVAL, "a veth member needs a network namespace");
    if (hull_egress_parse(req->egress, &eg, err) < 0)
        return hull_error_prefix(err, "--egress");
    if (req->n_publish > HULL_NET_MAX_PUBLISH)
        return hull_error_set(err, EINVAL, "--publish: more than %d ports", HULL_NET_MAX_PUBLISH);
    /* A leftover that cannot be swept is prune's to report; this member's
     * attach does not depend on it. */
    cleanup_hull_error hull_error sweep_err = NULL;
    net_sweep(&sweep_err);
    struct net_member old;
    if (net_member_load(req->member, &old, NULL) == 0) {
        net_member_free(&old);
        return hull_error_set(err, EEXIST, "%s: already attached", req->member);
    }
    if (network_for(req->network, req->want != NULL, d, err) < 0)
        return -1;
    /* A published port is checked against the kernel's map, which every
     * state directory shares: from that check to this member's element,
     * no other state's attach may publish (it would fail on the element
     * and its undo take this one's). Taken after network_for, which may
     * take it to make the network. */
    cleanup_close int host = -1;
    if (req->n_publish && (host = net_host_lock(err)) < 0)
        return -1;
    struct net_member *all = NULL;
    size_t n_all = 0;
    if (net_member_list(NULL, &all, &n_all, err) < 0)
        return -1;
    int rc = 0;
    for (size_t i = 0; i < req->n_publish && rc == 0; i++)
        if (strchr(req->publish[i].host_ip, ':') && !d->has6)
            rc = hull_error_set(err, EINVAL, "--publish %s: network %s has no IPv6",
                                req->publish[i].host_ip, d->name);
        else
            rc = check_publish(&req->publish[i], d->has6, all, n_all, err);
    net_members_free(all, n_all);
    if (rc < 0 || pick_member(req, d, m, err) < 0)
        return -1;
    m->egress = strdup(req->egress && *req->egress ? req->egress : "all");
    memcpy(m->publish, req->publish, req->n_publish * sizeof(*req->publish));
    m->n_publish = req->n_publish;
    /* The lease first: if hull-net dies half-way, the sweep finds it and
     * removes whatever of it exists. */
    if (!m->egress || net_member_save(m, err) < 0)
        return -1;
    if (plumb(req, d, m, &eg, tap_fd, err) < 0) {
        hull_closep(tap_fd);
        net_member_undo(m, false, NULL);
        return -1;
    }
    return 0;
}

int net_member_attach(const struct hull_net_attach_req *req, struct net_member *m, int *tap_fd,
                      struct hull_net_lease *lease, hull_error *err)
{
    memset(m, 0, sizeof(*m));
    *tap_fd = -1;
    struct net_def d;
    cleanup_close int lock = net_lock(err);
    if (lock < 0)
        return -1;
    if (attach_locked(req, m, tap_fd, &d, err) < 0) {
        net_member_free(m);
        return hull_error_prefix(err, "network %s", req->network);
    }
    net_lease_fill(&d, m, lease);
    lease->tap_fd = *tap_fd;
    return 0;
}

int net_member_detach(const char *member, bool locked, bool owner_gone, hull_error *err)
{
    cleanup_close int lock = locked ? -1 : net_lock(err);
    if (!locked && lock < 0)
        return -1;
    struct net_member m;
    if (net_member_load(member, &m, err) < 0) {
        if (hull_error_code(*err) != ENOENT)
            return -1;
        hull_error_free(err);
        return 0;
    }
    int rc = net_member_undo(&m, owner_gone, err);
    net_member_free(&m);
    return rc;
}

static void read_dns(struct hull_net_lease *l)
{
    cleanup_file FILE *f = fopen("/etc/resolv.conf", "re");
    char line[512], addr[INET6_ADDRSTRLEN];
    while (f && fgets(line, sizeof(line), f) && l->n_dns < HULL_NET_MAX_DNS) {
        if (sscanf(line, "nameserver %45s", addr) != 1)
            continue;
        /* The host's own loopback resolver is not reachable from a member. */
        if (strncmp(addr, "127.", 4) == 0 || strcmp(addr, "::1") == 0)
            continue;
        snprintf(l->dns[l->n_dns++], sizeof(l->dns[0]), "%s", addr);
    }
}

void net_lease_fill(const struct net_def *d, const struct net_member *m, struct hull_net_lease *l)
{
    memset(l, 0, sizeof(*l));
    snprintf(l->network, sizeof(l->network), "%s", d->name);
    snprintf(l->member, sizeof(l->member), "%s", m->member);
    snprintf(l->host_ifname, sizeof(l->host_ifname), "%s", m->host_ifname);
    snprintf(l->ifname, sizeof(l->ifname), "eth0");
    snprintf(l->mac, sizeof(l->mac), "%s", m->mac);
    net_addr_format(AF_INET, m->ip4, l->ip4, sizeof(l->ip4));
    l->prefix4 = d->subnet4.len;
    net_addr_format(AF_INET, d->gw4, l->gw4, sizeof(l->gw4));
    if (m->has6) {
        net_addr_format(AF_INET6, m->ip6, l->ip6, sizeof(l->ip6));
        l->prefix6 = d->subnet6.len;
        net_addr_format(AF_INET6, d->gw6, l->gw6, sizeof(l->gw6));
    }
    l->mtu = 1500;
    l->tap_fd = -1;
    read_dns(l);
}

json_object *net_lease_json(const struct hull_net_lease *l)
{
    json_object *o = json_object_new_object();
#define S(k) json_object_object_add(o, #k, json_object_new_string(l->k))
    S(network);
    S(member);
    S(host_ifname);
    S(ifname);
    S(mac);
    S(ip4);
    S(gw4);
    S(ip6);
    S(gw6);
#undef S
    json_object_object_add(o, "prefix4", json_object_new_int((int)l->prefix4));
    json_object_object_add(o, "prefix6", json_object_new_int((int)l->prefix6));
    json_object_object_add(o, "mtu", json_object_new_int((int)l->mtu));
    json_object *dns = json_object_new_array();
    for (size_t i = 0; i < l->n_dns; i++)
        json_object_array_add(dns, json_object_new_string(l->dns[i]));
    json_object_object_add(o, "dns", dns);
    return o;
}
