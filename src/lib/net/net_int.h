/* The network internals behind hull-net (net.h says who may call them: only
 * hull-net, hulld, libhull.so and the tests; never the static hull).
 *
 *   ipam.c     subnets and addresses: parsing, overlap, the default subnet,
 *              picking a free address (pure functions, unit-tested)
 *   store.c    network definitions and leases on disk, the lock
 *   netlink.c  libmnl: bridges, veth, TAP, addresses, routes, sysctls
 *   nft.c      libnftables: hull's two tables, per-network and per-member
 *   attach.c   a member in and out, the crash sweep, network create/remove
 */
#ifndef HULL_NET_NET_INT_H
#define HULL_NET_NET_INT_H

#include <json-c/json.h>
#include <libmnl/libmnl.h>
#include <netinet/in.h>
#include <stdbool.h>
#include <stdint.h>

#include "net/net.h"

/* Interface names hull makes: every one starts with "hull" so that prune
 * can tell its own orphans from anyone else's interfaces. */
#define NET_BRIDGE_PREFIX "hullbr" /* hullbr<N> */
#define NET_VETH_PREFIX   "hullv"  /* hullv<8 hex>: host side of a veth */
#define NET_TAP_PREFIX    "hullt"  /* hullt<8 hex> */
#define NET_PODMAN_SUBNET "10.88.0.0/16"

/* ---- ipam.c ---- */

struct net_prefix {
    int family; /* AF_INET, AF_INET6 */
    uint8_t addr[16];
    unsigned len;
};

/* "A.B.C.D/N" or "X::/N" (host bits must be zero); what names the field in errors. */
int net_prefix_parse(const char *s, int family, struct net_prefix *out, hull_error *err);
int net_addr_parse(const char *s, int family, uint8_t addr[16]);
void net_prefix_format(const struct net_prefix *p, char *buf, size_t len);
void net_addr_format(int family, const uint8_t addr[16], char *buf, size_t len);
bool net_prefix_overlap(const struct net_prefix *a, const struct net_prefix *b);
bool net_prefix_contains(const struct net_prefix *p, const uint8_t addr[16]);
/* The address at host index i of p (0 is the network address). */
void net_prefix_host(const struct net_prefix *p, uint64_t i, uint8_t addr[16]);
/* Host index of addr inside p. */
uint64_t net_prefix_index(const struct net_prefix *p, const uint8_t addr[16]);
/* Usable member addresses: excludes network, gateway (.1), broadcast. */
uint64_t net_prefix_capacity(const struct net_prefix *p);
/* The first /24 in 10.89.0.0-10.254.255.0 that overlaps none of avoid[]. */
int net_pick_subnet(const struct net_prefix *avoid, size_t n_avoid, struct net_prefix *out,
                    hull_error *err);
/* The lowest free host index >= 2 (1 is the gateway), skipping used[]
 * (sorted or not); 0 when full. */
uint64_t net_pick_index(const struct net_prefix *p, const uint64_t *used, size_t n_used);
/* The EUI-64 link-local address of a MAC "02:..". */
int net_mac_linklocal(const char *mac, uint8_t addr[16]);

/* ---- store.c ---- */

struct net_def {
    char name[HULL_NET_NAME_MAX + 1];
    char bridge[16];
    struct net_prefix subnet4;
    uint8_t gw4[16];
    bool has6;
    struct net_prefix subnet6;
    uint8_t gw6[16];
    bool internal, allow_peers;
    long long created;
};

struct net_member {
    char member[80];
    char network[HULL_NET_NAME_MAX + 1];
    char host_ifname[16];
    char mac[18];
    uint8_t ip4[16], ip6[16];
    bool has6, tap;
    pid_t owner_pid;
    unsigned long long owner_start;
    char *egress; /* text, as --egress writes it */
    struct hull_publish publish[HULL_NET_MAX_PUBLISH];
    size_t n_publish;
};

const char *net_config_dir(void);
const char *net_run_dir(void);
/* The ifalias of hull's bridges ("hull <config dir>") and ports ("hull <run dir>"). */
void net_alias(bool bridge, char *buf, size_t len);
/* An interface's ifalias ("" when it has none or is gone). */
void net_link_alias(const char *ifname, char *buf, size_t len);
/* flock of HULL_NET_RUN_DIR/lock (made on first use); returns the fd. */
int net_lock(hull_error *err);
/* The host's own lock, beside the state's (taken after it): a new
 * network's subnet and bridge are picked from what the kernel has, and
 * every state directory on it must see one network made before it picks
 * the next, or two take the same free subnet. */
#define NET_HOST_LOCK "host"
int net_host_lock(hull_error *err);
/* The host-wide lock `name` (NET_HOST_LOCK, "nft"), held until the fd is
 * closed. Its file is in NET_HOST_LOCK_DIR, which only root may write: in
 * /run/lock (every user's, sticky) another user could make it first and
 * hold it for ever, or leave a symlink there for root to create a file
 * through. */
#define NET_HOST_LOCK_DIR "/run/hull/net-host"
int net_host_lock_named(const char *name, hull_error *err);

int net_def_load(const char *name, struct net_def *out, hull_error *err); /* ENOENT if absent */
int net_def_save(const struct net_def *d, hull_error *err);
int net_def_delete(const char *name, hull_error *err);
/* Every definition; *out malloc'd. */
int net_def_list(struct net_def **out, size_t *n, hull_error *err);
json_object *net_def_json(const struct net_def *d);

int net_member_load(const char *member, struct net_member *out, hull_error *err);
int net_member_save(const struct net_member *m, hull_error *err);
int net_member_delete(const char *member, hull_error *err);
/* Every lease (of network, or all when NULL). */
int net_member_list(const char *network, struct net_member **out, size_t *n, hull_error *err);
/* The same; with remove_torn (under the lock only), a torn lease (see
 * net_leases_mark_boot) is removed as well as skipped. */
int net_member_list_ex(const char *network, bool remove_torn, struct net_member **out, size_t *n,
                       hull_error *err);
/* Mark the leases directory with this boot (net_sweep, under the lock):
 * a lease that does not parse counts as torn only in a directory marked
 * with an earlier boot. */
void net_leases_mark_boot(void);
/* Remove the temporary files (".NAME.PID.tmp") a writer killed before its
 * rename left in the leases, run and config directories (net_sweep, under
 * the lock every writer of them holds). */
void net_store_remove_temps(void);
void net_member_free(struct net_member *m);
void net_members_free(struct net_member *m, size_t n);
json_object *net_member_json(const struct net_member *m);
bool net_member_id_valid(const char *id);

/* ---- netlink.c ---- */

/* A netlink socket of one bus (NETLINK_ROUTE, NETLINK_NETFILTER) and the
 * sequence numbers of what it sent. */
struct nl {
    struct mnl_socket *sock;
    unsigned seq, portid;
};
void nl_closep(struct nl *n);
#define cleanup_nl __attribute__((cleanup(nl_closep)))
int nl_open_bus(struct nl *n, int bus, hull_error *err);
/* Send h as it is (flags the caller's) with the next sequence number, and
 * read the answers to their end: cb on each data message (a dump's), then
 * DONE or the ack. 0 (or cb's stop), or -1 with errno (the kernel's). */
int nl_exchange(struct nl *n, struct nlmsghdr *h, mnl_cb_t cb, void *data);
int nl_link_index(const char *name); /* 0 when absent */
int nl_bridge_create(const char *name, const char *mac, hull_error *err);
int nl_link_delete(const char *name, hull_error *err); /* absent is fine */
/* Whether the link name is gone now or within timeout_ms (waits for its
 * RTM_DELLINK); false too when that cannot be told. */
bool nl_link_gone_within(const char *name, unsigned timeout_ms);
int nl_link_up(const char *name, hull_error *err);
bool nl_link_is_up(const char *name); /* IFF_UP set (false when absent) */
/* ifalias: "hull <state dir>" marks whose an interface is (prune.c). */
int nl_link_set_alias(const char *name, const char *alias, hull_error *err);
int nl_link_set_master(const char *name, const char *master, bool isolated, hull_error *err);
int nl_link_set_mac(const char *name, const char *mac, hull_error *err);
int nl_addr_add(const char *ifname, int family, const uint8_t addr[16], unsigned prefix, bool nodad,
                hull_error *err);
/* veth: host end `host` in this netns, peer `peer` with MAC mac inside netns_fd. */
int nl_veth_create(const char *host, const char *peer, const char *mac, int netns_fd,
                   hull_error *err);
/* Inside netns_fd: ifname gets addresses, goes up, default routes via gateways. */
int nl_configure_inside(int netns_fd, const char *ifname, const struct net_def *d,
                        const struct net_member *m, hull_error *err);
/* A non-persistent TAP (IFF_TAP|IFF_NO_PI|IFF_VNET_HDR): returns its fd. */
int nl_tap_create(const char *name, hull_error *err);
/* /proc/sys/net/<family>/conf/<ifname>/<key> = value. */
int nl_sysctl(const char *family, const char *ifname, const char *key, const char *value,
              hull_error *err);
/* nftables has table `table` of family ("inet" or "bridge"), and in it
 * chain `chain` (unless NULL). */
bool nl_nft_exists(const char *family, const char *table, const char *chain);
/* Map inet hull pub holds PROTO . PORT: some hull on this host (any state
 * directory) publishes that host port. */
bool nl_nft_pub_taken(bool udp, uint16_t port);
/* Delete every connection-tracking entry whose original or reply source is
 * addr (4 or 16 bytes by family): a leaving member's flows (conntrack.c). */
int nl_conntrack_forget(int family, const uint8_t addr[16], hull_error *err);
/* Names of every link whose name starts with prefix; *out malloc'd [16]. */
int nl_links_with_prefix(const char *prefix, char (**out)[16], size_t *n, hull_error *err);
/* Every IPv4/IPv6 route and address prefix of the host (for the default subnet). */
int nl_host_prefixes(int family, struct net_prefix **out, size_t *n, hull_error *err);

/* ---- nft.c ---- */

/* Run an nft script (one transaction). */
int nft_run(const char *script, hull_error *err);
/* Both tables with their base chains, sets and maps, when missing. */
int nft_ensure_base(hull_error *err);
/* A network's set elements (bridges, NAT). */
int nft_network_add(const struct net_def *d, hull_error *err);
int nft_network_remove(const struct net_def *d, hull_error *err);
/* A member's chains and map elements (egress, publish, anti-spoofing). */
int nft_member_add(const struct net_def *d, const struct net_member *m,
                   const struct hull_egress *eg, hull_error *err);
int nft_member_remove(const struct net_member *m, hull_error *err);
/* The same as one raw nf_tables batch: 0 when every object was there and
 * is gone, -1 (nothing changed) otherwise. */
int nft_member_remove_batch(const struct net_member *m);
/* nft_member_add as one raw batch for the common member: 0 done, 1 not a
 * member it writes (the caller uses nft_member_add), -1 failed (nothing
 * changed). */
int nft_member_add_batch(const struct net_def *d, const struct net_member *m,
                         const struct hull_egress *eg);
/* Delete member chains (and the map elements jumping to them) whose
 * interface keep() does not keep, and bridge set elements keep_bridge()
 * does not keep; *removed counts the chains. */
int nft_prune(bool (*keep)(const char *ifname, void *arg),
              bool (*keep_bridge)(const char *bridge, void *arg), void *arg, size_t *removed,
              hull_error *err);

/* ---- attach.c ---- */

/* The bridge's MAC: derived from d's name and subnet (the same on every host). */
void net_bridge_mac(const struct net_def *d, char buf[18]);
/* The network up on the host (bridge, sysctls, rules): idempotent. */
int net_network_ensure(const struct net_def *d, hull_error *err);
/* Make a network from options (locks). */
struct net_create_opts {
    const char *name, *subnet, *gateway, *ipv6;
    bool internal, allow_peers;
};
int net_network_create(const struct net_create_opts *o, struct net_def *out, hull_error *err);
/* Attach under the lock; on failure nothing is left. m is filled. */
int net_member_attach(const struct hull_net_attach_req *req, struct net_member *m, int *tap_fd,
                      struct hull_net_lease *lease, hull_error *err);
/* Undo one member (kernel state, rules, lease); locks unless locked. */
/* owner_gone: the caller's processes, and so its network namespace's last
 * users, are gone (see net_member_undo). */
int net_member_detach(const char *member, bool locked, bool owner_gone, hull_error *err);
/* Undo one loaded member: interface, rules, lease (lock held). */
int net_member_undo(const struct net_member *m, bool owner_gone, hull_error *err);
/* Remove every member whose owner is gone (caller holds the lock). */
int net_sweep(hull_error *err);
/* Tear down a network's kernel state and rules (not its definition). */
int net_network_down(const struct net_def *d, hull_error *err);
/* Fill a lease for the client from a member. */
void net_lease_fill(const struct net_def *d, const struct net_member *m, struct hull_net_lease *l);
json_object *net_lease_json(const struct hull_net_lease *l);

/* ---- prune.c ---- */

struct net_prune_report {
    size_t leases, networks, links, rules;
};
/* Remove networks (names; force: with their members). */
int net_network_remove(const char *name, bool force, hull_error *err);
/* Stale leases, unused networks (not the default), orphan interfaces and
 * rules (caller does not hold the lock). */
int net_prune_state(struct net_prune_report *r, char ***removed_names, hull_error *err);

#endif
