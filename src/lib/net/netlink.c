/* Links, addresses and routes through rtnetlink (libmnl), sysctls through
 * /proc/sys. Every request is acknowledged (NLM_F_ACK) so a failure comes
 * back as the kernel's errno, never silently. */
/* glibc's net/if.h before any linux/ header (libc-compat.h then skips the
 * kernel's duplicate definitions). */
#include <net/if.h>
#include <netinet/in.h>

#include <errno.h>
#include <fcntl.h>
#include <libmnl/libmnl.h>
#include <linux/if_link.h>
#include <linux/if_tun.h>
#include <linux/netfilter.h>
#include <linux/netfilter/nf_tables.h>
#include <linux/netfilter/nfnetlink.h>
#include <linux/rtnetlink.h>
#include <linux/veth.h>
#include <poll.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <time.h>

#include "net/net_int.h"
#include "util/clock.h"
#include "util/fs.h"

void nl_closep(struct nl *n)
{
    if (n->sock)
        mnl_socket_close(n->sock);
    n->sock = NULL;
}

int nl_open_bus(struct nl *n, int bus, hull_error *err)
{
    n->sock = mnl_socket_open2(bus, SOCK_CLOEXEC);
    if (!n->sock)
        return hull_error_errno(err, "netlink socket");
    if (mnl_socket_bind(n->sock, 0, MNL_SOCKET_AUTOPID) < 0) {
        hull_error_errno(err, "netlink bind");
        nl_closep(n);
        return -1;
    }
    n->portid = mnl_socket_get_portid(n->sock);
    n->seq = (unsigned)time(NULL);
    return 0;
}

/* A socket in the current network namespace (it stays there). */
static int nl_open(struct nl *n, hull_error *err)
{
    return nl_open_bus(n, NETLINK_ROUTE, err);
}

int nl_exchange(struct nl *n, struct nlmsghdr *h, mnl_cb_t cb, void *data)
{
    h->nlmsg_seq = ++n->seq;
    if (mnl_socket_sendto(n->sock, h, h->nlmsg_len) < 0)
        return -1;
    char buf[MNL_SOCKET_BUFFER_SIZE];
    for (;;) {
        ssize_t r = mnl_socket_recvfrom(n->sock, buf, sizeof(buf));
        if (r < 0)
            return -1;
        int rc = mnl_cb_run(buf, (size_t)r, h->nlmsg_seq, n->portid, cb, data);
        if (rc <= MNL_CB_STOP)
            return rc;
    }
}

/* Send one request and wait for its ack (or run cb on each answer of a dump). */
static int nl_talk(struct nl *n, struct nlmsghdr *h, mnl_cb_t cb, void *data)
{
    /* A dump (the GET requests here) ends with NLMSG_DONE; anything else is
     * acknowledged. (The flag bits overlap: NLM_F_EXCL is NLM_F_MATCH.) */
    bool dump = h->nlmsg_type == RTM_GETLINK || h->nlmsg_type == RTM_GETADDR ||
                h->nlmsg_type == RTM_GETROUTE;
    h->nlmsg_flags |= NLM_F_REQUEST | (dump ? 0 : NLM_F_ACK);
    return nl_exchange(n, h, cb, data);
}

static struct nlmsghdr *msg_link(char *buf, int type, int flags, int family)
{
    struct nlmsghdr *h = mnl_nlmsg_put_header(buf);
    h->nlmsg_type = (uint16_t)type;
    h->nlmsg_flags = (uint16_t)flags;
    struct ifinfomsg *ifi = mnl_nlmsg_put_extra_header(h, sizeof(*ifi));
    ifi->ifi_family = (uint8_t)family;
    return h;
}

static int mac_parse(const char *s, uint8_t mac[6])
{
    unsigned m[6];
    if (sscanf(s, "%2x:%2x:%2x:%2x:%2x:%2x", &m[0], &m[1], &m[2], &m[3], &m[4], &m[5]) != 6)
        return -1;
    for (int i = 0; i < 6; i++)
        mac[i] = (uint8_t)m[i];
    return 0;
}

int nl_link_index(const char *name)
{
    return (int)if_nametoindex(name);
}

int nl_bridge_create(const char *name, const char *mac, hull_error *err)
{
    cleanup_nl struct nl n = {0};
    char buf[MNL_SOCKET_BUFFER_SIZE];
    uint8_t hw[6];
    if (nl_open(&n, err) < 0)
        return -1;
    struct nlmsghdr *h = msg_link(buf, RTM_NEWLINK, NLM_F_CREATE | NLM_F_EXCL, AF_UNSPEC);
    mnl_attr_put_strz(h, IFLA_IFNAME, name);
    if (mac && mac_parse(mac, hw) == 0)
        mnl_attr_put(h, IFLA_ADDRESS, 6, hw);
    struct nlattr *li = mnl_attr_nest_start(h, IFLA_LINKINFO);
    mnl_attr_put_strz(h, IFLA_INFO_KIND, "bridge");
    mnl_attr_nest_end(h, li);
    if (nl_talk(&n, h, NULL, NULL) < 0)
        return hull_error_errno(err, "create bridge %s", name);
    return 0;
}

/* 1: the link with this index exists, 0: it does not, -1: the lookup
 * failed (EMFILE...). By index: a renamed link, or one that only left its
 * bridge (an AF_BRIDGE RTM_DELLINK), is still there. */
static int link_index_exists(int index)
{
    char name[IF_NAMESIZE];
    if (if_indextoname((unsigned)index, name))
        return 1;
    return errno == ENXIO || errno == ENODEV ? 0 : -1;
}

bool nl_link_gone_within(const char *name, unsigned timeout_ms)
{
    int index = nl_link_index(name);
    if (index == 0)
        return errno == ENODEV;
    /* Listen first, then look again: a deletion between the two is seen
     * by the look, one after it wakes the listener. */
    struct mnl_socket *sock = mnl_socket_open2(NETLINK_ROUTE, SOCK_CLOEXEC);
    if (!sock)
        return false;
    bool gone = false;
    if (mnl_socket_bind(sock, RTMGRP_LINK, MNL_SOCKET_AUTOPID) == 0) {
        uint64_t end = hull_monotonic_ns() + (uint64_t)timeout_ms * 1000000ull;
        char buf[MNL_SOCKET_BUFFER_SIZE];
        for (;;) {
            int state = link_index_exists(index);
            if (state <= 0) {
                gone = state == 0;
                break;
            }
            uint64_t now = hull_monotonic_ns();
            if (now >= end)
                break;
            struct pollfd pfd = {.fd = mnl_socket_get_fd(sock), .events = POLLIN};
            int ms = (int)((end - now + 999999) / 1000000);
            if (poll(&pfd, 1, ms) < 0 && errno != EINTR)
                break;
            /* Any link event (or ENOBUFS: too many) only means: look again. */
            while (recv(pfd.fd, buf, sizeof(buf), MSG_DONTWAIT) > 0)
                ;
        }
    }
    mnl_socket_close(sock);
    return gone;
}

int nl_link_delete(const char *name, hull_error *err)
{
    int idx = nl_link_index(name);
    if (idx == 0) /* absent is done; a failed lookup (EMFILE...) is not */
        return errno == ENODEV ? 0 : hull_error_errno(err, "delete link %s: look up", name);
    cleanup_nl struct nl n = {0};
    char buf[MNL_SOCKET_BUFFER_SIZE];
    if (nl_open(&n, err) < 0)
        return -1;
    struct nlmsghdr *h = msg_link(buf, RTM_DELLINK, 0, AF_UNSPEC);
    ((struct ifinfomsg *)mnl_nlmsg_get_payload(h))->ifi_index = idx;
    if (nl_talk(&n, h, NULL, NULL) < 0 && errno != ENODEV)
        return hull_error_errno(err, "delete link %s", name);
    return 0;
}

static int link_up_sock(struct nl *n, const char *name, hull_error *err)
{
    char buf[MNL_SOCKET_BUFFER_SIZE];
    struct nlmsghdr *h = msg_link(buf, RTM_NEWLINK, 0, AF_UNSPEC);
    struct ifinfomsg *ifi = mnl_nlmsg_get_payload(h);
    ifi->ifi_change = IFF_UP;
    ifi->ifi_flags = IFF_UP;
    mnl_attr_put_strz(h, IFLA_IFNAME, name);
    if (nl_talk(n, h, NULL, NULL) < 0)
        return hull_error_errno(err, "set %s up", name);
    return 0;
}

bool nl_link_is_up(const char *name)
{
    struct ifreq r = {0};
    snprintf(r.ifr_name, sizeof(r.ifr_name), "%s", name);
    cleanup_close int s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    return s >= 0 && ioctl(s, SIOCGIFFLAGS, &r) == 0 && (r.ifr_flags & IFF_UP);
}

int nl_link_up(const char *name, hull_error *err)
{
    cleanup_nl struct nl n = {0};
    if (nl_open(&n, err) < 0)
        return -1;
    return link_up_sock(&n, name, err);
}

int nl_link_set_alias(const char *name, const char *alias, hull_error *err)
{
    cleanup_nl struct nl n = {0};
    char buf[MNL_SOCKET_BUFFER_SIZE];
    if (nl_open(&n, err) < 0)
        return -1;
    struct nlmsghdr *h = msg_link(buf, RTM_NEWLINK, 0, AF_UNSPEC);
    mnl_attr_put_strz(h, IFLA_IFNAME, name);
    mnl_attr_put_strz(h, IFLA_IFALIAS, alias);
    if (nl_talk(&n, h, NULL, NULL) < 0)
        return hull_error_errno(err, "set the alias of %s", name);
    return 0;
}

int nl_link_set_mac(const char *name, const char *mac, hull_error *err)
{
    cleanup_nl struct nl n = {0};
    char buf[MNL_SOCKET_BUFFER_SIZE];
    uint8_t hw[6];
    if (mac_parse(mac, hw) < 0)
        return hull_error_set(err, EINVAL, "'%s': not a MAC address", mac);
    if (nl_open(&n, err) < 0)
        return -1;
    struct nlmsghdr *h = msg_link(buf, RTM_NEWLINK, 0, AF_UNSPEC);
    mnl_attr_put_strz(h, IFLA_IFNAME, name);
    mnl_attr_put(h, IFLA_ADDRESS, 6, hw);
    if (nl_talk(&n, h, NULL, NULL) < 0)
        return hull_error_errno(err, "set the MAC of %s", name);
    return 0;
}

int nl_link_set_master(const char *name, const char *master, bool isolated, hull_error *err)
{
    cleanup_nl struct nl n = {0};
    char buf[MNL_SOCKET_BUFFER_SIZE];
    int mi = nl_link_index(master);
    if (mi == 0)
        return hull_error_set(err, ENODEV, "bridge %s: no such device", master);
    if (nl_open(&n, err) < 0)
        return -1;
    struct nlmsghdr *h = msg_link(buf, RTM_NEWLINK, 0, AF_UNSPEC);
    mnl_attr_put_strz(h, IFLA_IFNAME, name);
    mnl_attr_put_u32(h, IFLA_MASTER, (uint32_t)mi);
    if (nl_talk(&n, h, NULL, NULL) < 0)
        return hull_error_errno(err, "attach %s to bridge %s", name, master);
    if (!isolated)
        return 0;
    /* The port's "isolated" flag: isolated ports of one bridge never
     * forward frames to each other (peers apart, below any IP rule). */
    h = msg_link(buf, RTM_SETLINK, 0, AF_BRIDGE);
    ((struct ifinfomsg *)mnl_nlmsg_get_payload(h))->ifi_index = nl_link_index(name);
    struct nlattr *pi = mnl_attr_nest_start(h, IFLA_PROTINFO | NLA_F_NESTED);
    mnl_attr_put_u8(h, IFLA_BRPORT_ISOLATED, 1);
    mnl_attr_nest_end(h, pi);
    if (nl_talk(&n, h, NULL, NULL) < 0)
        return hull_error_errno(err, "isolate bridge port %s", name);
    return 0;
}

static int addr_add_sock(struct nl *n, int ifindex, int family, const uint8_t addr[16],
                         unsigned prefix, bool nodad)
{
    char buf[MNL_SOCKET_BUFFER_SIZE];
    struct nlmsghdr *h = mnl_nlmsg_put_header(buf);
    h->nlmsg_type = RTM_NEWADDR;
    h->nlmsg_flags = NLM_F_CREATE | NLM_F_REPLACE;
    struct ifaddrmsg *ifa = mnl_nlmsg_put_extra_header(h, sizeof(*ifa));
    ifa->ifa_family = (uint8_t)family;
    ifa->ifa_prefixlen = (uint8_t)prefix;
    ifa->ifa_index = (unsigned)ifindex;
    ifa->ifa_flags = nodad ? IFA_F_NODAD : 0;
    size_t alen = family == AF_INET ? 4 : 16;
    mnl_attr_put(h, IFA_LOCAL, alen, addr);
    mnl_attr_put(h, IFA_ADDRESS, alen, addr);
    return nl_talk(n, h, NULL, NULL);
}

int nl_addr_add(const char *ifname, int family, const uint8_t addr[16], unsigned prefix, bool nodad,
                hull_error *err)
{
    cleanup_nl struct nl n = {0};
    int idx = nl_link_index(ifname);
    if (idx == 0)
        return hull_error_set(err, ENODEV, "%s: no such device", ifname);
    if (nl_open(&n, err) < 0)
        return -1;
    if (addr_add_sock(&n, idx, family, addr, prefix, nodad) < 0) {
        char a[INET6_ADDRSTRLEN];
        net_addr_format(family, addr, a, sizeof(a));
        return hull_error_errno(err, "add address %s/%u to %s", a, prefix, ifname);
    }
    return 0;
}

int nl_veth_create(const char *host, const char *peer, const char *mac, int netns_fd,
                   hull_error *err)
{
    cleanup_nl struct nl n = {0};
    char buf[MNL_SOCKET_BUFFER_SIZE];
    uint8_t hw[6];
    if (nl_open(&n, err) < 0)
        return -1;
    struct nlmsghdr *h = msg_link(buf, RTM_NEWLINK, NLM_F_CREATE | NLM_F_EXCL, AF_UNSPEC);
    mnl_attr_put_strz(h, IFLA_IFNAME, host);
    struct nlattr *li = mnl_attr_nest_start(h, IFLA_LINKINFO);
    mnl_attr_put_strz(h, IFLA_INFO_KIND, "veth");
    struct nlattr *data = mnl_attr_nest_start(h, IFLA_INFO_DATA);
    struct nlattr *pe = mnl_attr_nest_start(h, VETH_INFO_PEER);
    /* The peer's ifinfomsg, then its attributes: made directly inside the
     * member's namespace (IFLA_NET_NS_FD), so it never exists on the host. */
    struct ifinfomsg *pifi = mnl_nlmsg_put_extra_header(h, sizeof(*pifi));
    pifi->ifi_family = AF_UNSPEC;
    mnl_attr_put_strz(h, IFLA_IFNAME, peer);
    mnl_attr_put_u32(h, IFLA_NET_NS_FD, (uint32_t)netns_fd);
    if (mac && mac_parse(mac, hw) == 0)
        mnl_attr_put(h, IFLA_ADDRESS, 6, hw);
    mnl_attr_nest_end(h, pe);
    mnl_attr_nest_end(h, data);
    mnl_attr_nest_end(h, li);
    if (nl_talk(&n, h, NULL, NULL) < 0)
        return hull_error_errno(err, "create veth %s", host);
    return 0;
}

static int route_default_sock(struct nl *n, int ifindex, int family, const uint8_t gw[16])
{
    char buf[MNL_SOCKET_BUFFER_SIZE];
    struct nlmsghdr *h = mnl_nlmsg_put_header(buf);
    h->nlmsg_type = RTM_NEWROUTE;
    h->nlmsg_flags = NLM_F_CREATE | NLM_F_REPLACE;
    struct rtmsg *rt = mnl_nlmsg_put_extra_header(h, sizeof(*rt));
    rt->rtm_family = (uint8_t)family;
    rt->rtm_dst_len = 0;
    rt->rtm_table = RT_TABLE_MAIN;
    rt->rtm_protocol = RTPROT_STATIC;
    rt->rtm_scope = RT_SCOPE_UNIVERSE;
    rt->rtm_type = RTN_UNICAST;
    mnl_attr_put(h, RTA_GATEWAY, family == AF_INET ? 4 : 16, gw);
    mnl_attr_put_u32(h, RTA_OIF, (uint32_t)ifindex);
    return nl_talk(n, h, NULL, NULL);
}

/* In the member's netns: a socket made there stays there, so the
 * configuration below never touches the host. */
static int configure_here(const char *ifname, const struct net_def *d, const struct net_member *m,
                          hull_error *err)
{
    cleanup_nl struct nl n = {0};
    if (nl_open(&n, err) < 0)
        return -1;
    int idx = (int)if_nametoindex(ifname);
    if (idx == 0)
        return hull_error_set(err, ENODEV, "%s: no such device inside the member", ifname);
    if (addr_add_sock(&n, idx, AF_INET, m->ip4, d->subnet4.len, false) < 0)
        return hull_error_errno(err, "inside: add IPv4 address");
    /* The address is hull's lease: duplicate detection would only delay it. */
    if (m->has6 && addr_add_sock(&n, idx, AF_INET6, m->ip6, d->subnet6.len, true) < 0)
        return hull_error_errno(err, "inside: add IPv6 address");
    if (link_up_sock(&n, ifname, err) < 0)
        return hull_error_prefix(err, "inside");
    if (route_default_sock(&n, idx, AF_INET, d->gw4) < 0)
        return hull_error_errno(err, "inside: default route");
    if (m->has6 && route_default_sock(&n, idx, AF_INET6, d->gw6) < 0)
        return hull_error_errno(err, "inside: IPv6 default route");
    return 0;
}

int nl_configure_inside(int netns_fd, const char *ifname, const struct net_def *d,
                        const struct net_member *m, hull_error *err)
{
    cleanup_close int self = open("/proc/self/ns/net", O_RDONLY | O_CLOEXEC);
    if (self < 0)
        return hull_error_errno(err, "open /proc/self/ns/net");
    /* hull-net is single-threaded, so switching its namespace is safe; it
     * switches back before anything else touches the network. */
    if (setns(netns_fd, CLONE_NEWNET) < 0)
        return hull_error_errno(err, "enter the member's network namespace");
    /* The member never gets router advertisements from anyone: its routes
     * are hull's. */
    nl_sysctl("ipv6", ifname, "accept_ra", "0", NULL);
    int rc = configure_here(ifname, d, m, err);
    if (setns(self, CLONE_NEWNET) < 0) {
        /* Cannot happen short of a kernel bug; continuing here would
         * configure the member's namespace as if it were the host. */
        perror("hull-net: back to the host's network namespace");
        abort();
    }
    return rc;
}

int nl_tap_create(const char *name, hull_error *err)
{
    int fd = open("/dev/net/tun", O_RDWR | O_CLOEXEC);
    if (fd < 0)
        return hull_error_errno(err, "open /dev/net/tun");
    struct ifreq ifr = {0};
    /* Not TUNSETPERSIST: the device lives exactly as long as an fd on it
     * (QEMU's), so a dead VM cannot leave its TAP behind. */
    ifr.ifr_flags = IFF_TAP | IFF_NO_PI | IFF_VNET_HDR;
    snprintf(ifr.ifr_name, sizeof(ifr.ifr_name), "%s", name);
    if (ioctl(fd, TUNSETIFF, &ifr) < 0) {
        hull_error_errno(err, "create TAP %s", name);
        close(fd);
        return -1;
    }
    return fd;
}

static int found_cb(const struct nlmsghdr *h, void *data)
{
    (void)h;
    *(bool *)data = true;
    return MNL_CB_OK;
}

/* The answer to one nf_tables GET: true when the object came back (then
 * the ack); an error (ENOENT) or no socket is false. */
static bool nft_get_found(int family, int msg, void (*put_attrs)(struct nlmsghdr *, const void *),
                          const void *arg)
{
    cleanup_nl struct nl n = {0};
    if (nl_open_bus(&n, NETLINK_NETFILTER, NULL) < 0)
        return false;
    char buf[MNL_SOCKET_BUFFER_SIZE];
    struct nlmsghdr *h = mnl_nlmsg_put_header(buf);
    h->nlmsg_type = (uint16_t)((NFNL_SUBSYS_NFTABLES << 8) | msg);
    h->nlmsg_flags = NLM_F_REQUEST | NLM_F_ACK;
    struct nfgenmsg *g = mnl_nlmsg_put_extra_header(h, sizeof(*g));
    g->nfgen_family = (uint8_t)family;
    g->version = NFNETLINK_V0;
    put_attrs(h, arg);
    bool found = false;
    return nl_exchange(&n, h, found_cb, &found) >= 0 && found;
}

struct nft_obj {
    const char *table, *chain;
};

static void put_table_or_chain(struct nlmsghdr *h, const void *arg)
{
    const struct nft_obj *o = arg;
    if (o->chain) {
        mnl_attr_put_strz(h, NFTA_CHAIN_TABLE, o->table);
        mnl_attr_put_strz(h, NFTA_CHAIN_NAME, o->chain);
    } else {
        mnl_attr_put_strz(h, NFTA_TABLE_NAME, o->table);
    }
}

bool nl_nft_exists(const char *fam, const char *table, const char *chain)
{
    int family = strcmp(fam, "inet") == 0 ? NFPROTO_INET : NFPROTO_BRIDGE;
    struct nft_obj o = {table, chain};
    return nft_get_found(family, chain ? NFT_MSG_GETCHAIN : NFT_MSG_GETTABLE, put_table_or_chain,
                         &o);
}

/* The key of map pub: inet_proto . inet_service, each padded to 32 bits as
 * nf_tables concatenates them. */
static void put_pub_elem(struct nlmsghdr *h, const void *arg)
{
    const uint8_t *key = arg;
    mnl_attr_put_strz(h, NFTA_SET_ELEM_LIST_TABLE, "hull");
    mnl_attr_put_strz(h, NFTA_SET_ELEM_LIST_SET, "pub");
    struct nlattr *list = mnl_attr_nest_start(h, NFTA_SET_ELEM_LIST_ELEMENTS);
    struct nlattr *el = mnl_attr_nest_start(h, NFTA_LIST_ELEM);
    struct nlattr *k = mnl_attr_nest_start(h, NFTA_SET_ELEM_KEY);
    mnl_attr_put(h, NFTA_DATA_VALUE, 8, key);
    mnl_attr_nest_end(h, k);
    mnl_attr_nest_end(h, el);
    mnl_attr_nest_end(h, list);
}

bool nl_nft_pub_taken(bool udp, uint16_t port)
{
    uint8_t key[8] = {
        udp ? IPPROTO_UDP : IPPROTO_TCP, 0, 0, 0, (uint8_t)(port >> 8), (uint8_t)port, 0, 0};
    return nft_get_found(NFPROTO_INET, NFT_MSG_GETSETELEM, put_pub_elem, key);
}

int nl_sysctl(const char *family, const char *ifname, const char *key, const char *value,
              hull_error *err)
{
    char path[256];
    snprintf(path, sizeof(path), "/proc/sys/net/%s/conf/%s/%s", family, ifname, key);
    if (hull_write_file(path, value, strlen(value), err) < 0)
        return -1;
    return 0;
}

struct dump_names {
    const char *prefix;
    char (*v)[16];
    size_t n;
};

static int name_cb(const struct nlmsghdr *h, void *data)
{
    struct dump_names *d = data;
    struct nlattr *a;
    mnl_attr_for_each(a, h, sizeof(struct ifinfomsg))
    {
        if (mnl_attr_get_type(a) != IFLA_IFNAME)
            continue;
        const char *name = mnl_attr_get_str(a);
        if (strncmp(name, d->prefix, strlen(d->prefix)) != 0)
            continue;
        char(*nv)[16] = realloc(d->v, (d->n + 1) * sizeof(*nv));
        if (!nv)
            return MNL_CB_ERROR;
        d->v = nv;
        snprintf(d->v[d->n++], 16, "%s", name);
    }
    return MNL_CB_OK;
}

int nl_links_with_prefix(const char *prefix, char (**out)[16], size_t *n, hull_error *err)
{
    cleanup_nl struct nl nl = {0};
    char buf[MNL_SOCKET_BUFFER_SIZE];
    struct dump_names d = {.prefix = prefix};
    if (nl_open(&nl, err) < 0)
        return -1;
    struct nlmsghdr *h = msg_link(buf, RTM_GETLINK, NLM_F_DUMP, AF_UNSPEC);
    if (nl_talk(&nl, h, name_cb, &d) < 0) {
        free(d.v);
        return hull_error_errno(err, "list links");
    }
    *out = d.v;
    *n = d.n;
    return 0;
}

struct dump_prefixes {
    struct net_prefix *v;
    size_t n;
    int family;
};

static int push_prefix(struct dump_prefixes *d, int family, const void *addr, unsigned len)
{
    struct net_prefix *nv = realloc(d->v, (d->n + 1) * sizeof(*nv));
    if (!nv)
        return MNL_CB_ERROR;
    d->v = nv;
    struct net_prefix *p = &d->v[d->n++];
    memset(p, 0, sizeof(*p));
    p->family = family;
    p->len = len;
    memcpy(p->addr, addr, family == AF_INET ? 4 : 16);
    return MNL_CB_OK;
}

static int route_cb(const struct nlmsghdr *h, void *data)
{
    const struct rtmsg *rt = mnl_nlmsg_get_payload(h);
    struct dump_prefixes *d = data;
    struct nlattr *a;
    if (rt->rtm_family != d->family || rt->rtm_dst_len == 0)
        return MNL_CB_OK;
    mnl_attr_for_each(a, h, sizeof(*rt))
    {
        if (mnl_attr_get_type(a) == RTA_DST)
            return push_prefix(d, d->family, mnl_attr_get_payload(a), rt->rtm_dst_len);
    }
    return MNL_CB_OK;
}

static int addr_cb(const struct nlmsghdr *h, void *data)
{
    const struct ifaddrmsg *ifa = mnl_nlmsg_get_payload(h);
    struct dump_prefixes *d = data;
    struct nlattr *a;
    if (ifa->ifa_family != d->family)
        return MNL_CB_OK;
    mnl_attr_for_each(a, h, sizeof(*ifa))
    {
        if (mnl_attr_get_type(a) == IFA_ADDRESS)
            return push_prefix(d, d->family, mnl_attr_get_payload(a), ifa->ifa_prefixlen);
    }
    return MNL_CB_OK;
}

int nl_host_prefixes(int family, struct net_prefix **out, size_t *n, hull_error *err)
{
    cleanup_nl struct nl nl = {0};
    char buf[MNL_SOCKET_BUFFER_SIZE];
    struct dump_prefixes d = {.family = family};
    if (nl_open(&nl, err) < 0)
        return -1;
    struct nlmsghdr *h = mnl_nlmsg_put_header(buf);
    h->nlmsg_type = RTM_GETROUTE;
    h->nlmsg_flags = NLM_F_DUMP;
    struct rtmsg *rt = mnl_nlmsg_put_extra_header(h, sizeof(*rt));
    rt->rtm_family = (uint8_t)family;
    rt->rtm_table = RT_TABLE_UNSPEC;
    if (nl_talk(&nl, h, route_cb, &d) < 0) {
        free(d.v);
        return hull_error_errno(err, "list routes");
    }
    h = mnl_nlmsg_put_header(buf);
    h->nlmsg_type = RTM_GETADDR;
    h->nlmsg_flags = NLM_F_DUMP;
    struct ifaddrmsg *ifa = mnl_nlmsg_put_extra_header(h, sizeof(*ifa));
    ifa->ifa_family = (uint8_t)family;
    if (nl_talk(&nl, h, addr_cb, &d) < 0) {
        free(d.v);
        return hull_error_errno(err, "list addresses");
    }
    /* An address's prefix must have its host bits cleared for overlap tests. */
    for (size_t i = 0; i < d.n; i++)
        for (unsigned b = d.v[i].len; b < (family == AF_INET ? 32u : 128u); b++)
            d.v[i].addr[b / 8] &= (uint8_t) ~(0x80 >> (b % 8));
    *out = d.v;
    *n = d.n;
    return 0;
}
