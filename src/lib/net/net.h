/* Networks: libhull's internal interface to hull's own networks
 * (docs/network.md).
 *
 * A network is a Linux bridge with an IPv4 subnet (and optionally IPv6),
 * leased addresses, and rules in nftables tables of hull's own
 * ("inet hull" for filtering/NAT/publishing, "bridge hull" for
 * anti-spoofing and peer isolation), so that removing hull's rules never
 * touches anyone else's. A member is a sandbox (a veth pair, its peer inside
 * the sandbox's network namespace) or a microVM (a TAP device whose fd QEMU
 * inherits).
 *
 * Linking: the static `hull` must not carry libmnl or libnftables (Debian
 * ships no static libmnl). So every run-time change to the host's network
 * goes through one dynamically linked helper, `hull-net` (src/cli/net/),
 * found by hull_find_sibling("hull-net", "HULL_NET_HELPER"):
 *
 *   client.c, parse.c    no libmnl/libnftables: linked into every binary
 *                        (the run path of the static hull uses only these)
 *   netlink.c            libmnl: links, addresses, routes, bridges, veth, TAP
 *   nft.c                libnftables: hull's tables, per-network and
 *                        per-member rules, publishing, egress
 *   ipam.c, store.c      network definitions and leases, on disk under a lock
 *   attach.c             one member in / out; the crash sweep
 *
 * Only hull-net, hulld, libhull.so and the tests call the second group.
 * A file of the first group must never call a function of the second.
 *
 * State (root only):
 *   HULL_NET_CONFIG_DIR/<name>.json   a network's definition (survives reboot;
 *                                     $HULL_NET_CONFIG_DIR overrides)
 *   HULL_NET_RUN_DIR/                 leases and members (kernel state does not
 *                                     survive reboot, so neither does this;
 *                                     $HULL_NET_RUN_DIR overrides)
 *   HULL_NET_RUN_DIR/lock             flock: every change to either
 */
#ifndef HULL_NET_NET_H
#define HULL_NET_NET_H

#include <netinet/in.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "hull.h"
#include "util/error.h"

#define HULL_NET_CONFIG_DIR "/var/lib/hull/networks"
#define HULL_NET_RUN_DIR    "/run/hull/net"
#define HULL_NET_DEFAULT    "hull0"
#define HULL_NET_NAME_MAX   32 /* [a-z0-9][a-z0-9_.-]*, like podman's */
/* Connections one member may have tracked at once, out and to the host:
 * the host's conntrack table is shared (262144 entries here), and one
 * member filling it would make the host drop every new connection. */
#define HULL_NET_MAX_CONNS   4096
#define HULL_NET_MAX_EGRESS  64
#define HULL_NET_MAX_PUBLISH 32
#define HULL_NET_MAX_DNS     3

/* One egress allow rule: packets to addr/prefix, to port (0: any), of proto
 * (0: any, else IPPROTO_TCP or IPPROTO_UDP). */
struct hull_egress_rule {
    int family; /* AF_INET or AF_INET6 */
    uint8_t addr[16];
    unsigned prefix;
    uint16_t port;
    uint8_t proto;
};

/* `--egress`: "none", "all", or a comma-separated list of
 * CIDR[:PORT[/PROTO]] (IPv6 as [ADDR/LEN]:PORT/PROTO), optionally with "all"
 * among them. "all" opens everything outside the host and the network's
 * other members; the host (any of its addresses, its loopback, the bridge's
 * gateway address) and peers are reachable only when a rule names them. */
struct hull_egress {
    bool all;
    size_t n;
    struct hull_egress_rule rules[HULL_NET_MAX_EGRESS];
};
/* NULL parses as the default, "all"; "" is refused. Errors quote the bad item. */
int hull_egress_parse(const char *s, struct hull_egress *out, hull_error *err);
/* The index of the first rule that opens this host to the member (one of
 * the host's own addresses named exactly: /32, /128), or -1. */
int hull_egress_host_rule(const struct hull_egress *e);
/* Back to text in the accepted syntax (for the helper's request, JSON). */
int hull_egress_format(const struct hull_egress *e, char *buf, size_t len);

/* Published ports as JSON, the same in a member's lease file and a VM's
 * state: [{"host_ip", "host_port", "port", "proto"}, ...]. */
struct json_object;
struct json_object *hull_publish_to_json(const struct hull_publish *p, size_t n);
/* And back: NULL is an empty list; more than max entries, a port outside
 * 1-65535 or a host_ip that is not an address (it goes into nft rules) is
 * an error. */
int hull_publish_from_json(struct json_object *a, struct hull_publish *p, size_t max, size_t *n,
                           hull_error *err);

/* A network name: [a-z0-9][a-z0-9_.-]{0,31}. "none" and "host" are not names. */
bool hull_net_name_valid(const char *name);

/* What a member was given: everything a sandbox's /etc and a guest agent
 * need to configure the inside. */
struct hull_net_lease {
    char network[HULL_NET_NAME_MAX + 1];
    char member[80];      /* the owner id the lease is filed under */
    char host_ifname[16]; /* host side: the veth or TAP on the bridge */
    char ifname[16];      /* inside: "eth0" */
    char mac[18];         /* the member's MAC, "02:..:..:..:..:.." */
    char ip4[INET_ADDRSTRLEN];
    unsigned prefix4;
    char gw4[INET_ADDRSTRLEN];
    char ip6[INET6_ADDRSTRLEN]; /* "" when the network has no IPv6 */
    unsigned prefix6;
    char gw6[INET6_ADDRSTRLEN];
    unsigned mtu;
    char dns[HULL_NET_MAX_DNS][INET6_ADDRSTRLEN]; /* resolv.conf nameservers */
    size_t n_dns;
    int tap_fd; /* the TAP (tap requests), else -1; the caller owns it */
};

/* A lease's JSON (the helper's answer, net_lease_json; a "want" of the
 * attach request) back into l; missing fields are empty. */
void hull_net_lease_from_json(struct json_object *o, struct hull_net_lease *l);
/* What identifies a lease on its network (mac, ip4, prefix4, gw4, ip6,
 * prefix6, gw6) as JSON: an attach's "want", a migration's manifest. */
struct json_object *hull_net_want_json(const struct hull_net_lease *w);

/* One member joining a network. */
struct hull_net_attach_req {
    const char *network; /* a name; HULL_NET_DEFAULT is made on first use */
    const char *member;  /* unique owner id ("sandbox-<id>", "vm-<id>"): names the lease */
    /* The lease is swept (by the next attach, or `hull network prune`) once
     * this process is gone: pid plus its start time, so a reused pid does
     * not keep it. 0: the caller's own pid. */
    pid_t owner_pid;
    bool tap;           /* a TAP for a microVM (lease->tap_fd) instead of a veth */
    int netns_fd;       /* veth: the member's network namespace (configured inside:
                         * eth0 up with address, default route); -1 with tap */
    const char *egress; /* --egress text; NULL: "all" */
    const struct hull_publish *publish;
    size_t n_publish;
    /* hold: the helper stays alive holding the attachment and undoes it when
     * hull_net_detach() asks or when the caller dies (the socket closes).
     * !hold: the helper exits after attaching; undo with hull_net_release(). */
    bool hold;
    /* A helper started earlier by hull_net_attach_spawn (hold only), or
     * NULL: hull_net_attach starts one. Consumed either way. */
    struct hull_net_session *helper;
    /* A member moving in from another host (a migrated microVM): the lease
     * must be exactly want's mac, ip4 and ip6, on a network of this name
     * that already exists with want's prefix4/gw4 (and prefix6/gw6, or no
     * IPv6 when want has none). Anything else is refused by name, nothing
     * made: the network missing, its subnet or gateway different, the
     * address or MAC taken, the address outside the subnet. NULL: the
     * helper picks a free address and a random MAC. */
    const struct hull_net_lease *want;
};

/* A running hull-net helper holding one attachment (hold requests). */
struct hull_net_session;

/* Start the helper of a later held attach now: its exec (shared libraries
 * and all) overlaps the caller's own work until the request is sent. */
int hull_net_attach_spawn(struct hull_net_session **helper, hull_error *err);
/* Send the request of a held veth attach to a spawned helper now (req as
 * for hull_net_attach, whose netns_fd the helper gets a copy of), without
 * waiting: the helper attaches while the caller works on; the later
 * hull_net_attach with the same req->helper takes the answer. A helper
 * that is dropped instead (or whose caller dies) undoes what it did. */
int hull_net_attach_request(const struct hull_net_attach_req *req, hull_error *err);
/* A spawned helper that will not be used: the socket closes, it exits
 * having done nothing, it is reaped. NULL is a no-op; *helper = NULL. */
void hull_net_session_drop(struct hull_net_session **helper);

/* Attach: exec hull-net, send the request (and netns_fd), receive the
 * lease (and the TAP fd). On failure nothing of it is left on the host. */
int hull_net_attach(const struct hull_net_attach_req *req, struct hull_net_session **session,
                    struct hull_net_lease *lease, hull_error *err);
/* Undo a held attachment and reap the helper; frees session. NULL is a no-op.
 * Only once every process in the member's network namespace has exited
 * (its pid namespace's init reaped): the helper then removes the rules
 * while the veth goes with the namespace (net_member_undo). */
int hull_net_detach(struct hull_net_session *session, hull_error *err);
/* Undo an attachment by member id (!hold attaches; crash leftovers). A
 * member that is not attached is not an error. */
int hull_net_release(const char *member, hull_error *err);
/* Hand a !hold attachment to another owner process (a VM's QEMU once it
 * runs), so the sweep keeps it while that process lives. */
int hull_net_adopt(const char *member, pid_t owner_pid, hull_error *err);

/* OCI linux.netDevices: move host interface `name` into the network
 * namespace netns_fd, renamed to `new_name` (NULL or "": keep the name; a
 * "%d" template: the kernel picks), with its permanent global addresses and
 * up; the name it got inside in got (got_len bytes, may be NULL); and back
 * out of it (found as `inside_name`, given back its host name `name` and its
 * addresses) before the namespace goes away. On failure the device is
 * where it was. */
int hull_net_move_in(const char *name, const char *new_name, int netns_fd, char *got,
                     size_t got_len, hull_error *err);
int hull_net_move_out(const char *inside_name, const char *name, int netns_fd, hull_error *err);

/* The network's files for a member's /etc, written into dir (created by
 * the caller): "resolv.conf" (the lease's nameservers) and "hosts"
 * (localhost, the member's own address under hostname). */
int hull_net_write_etc(const struct hull_net_lease *lease, const char *hostname, int dirfd,
                       hull_error *err);

#endif
