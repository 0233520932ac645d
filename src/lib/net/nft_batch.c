/* A member's nftables objects added and removed by one raw nf_tables
 * batch each (libmnl), without libnftables: its context, its cache of
 * hull's tables and its parser cost tens of milliseconds per run, a batch
 * well under one. Each batch applies whole or not at all.
 *
 * Add: the common member only (egress "all", no published port, peers
 * isolated; veth or TAP); anything else goes through nft.c's script. The
 * objects and rules are exactly nft.c's member_inet/member_bridge, written
 * as the expressions nft compiles them to (`nft --debug=netlink`), with
 * one difference of form: where nft makes an anonymous set ("ether type
 * != { ip, ip6, arp }"), a negated set is a row of "!=" compares on the
 * same register and a positive one ("icmpv6 type { nd-router-advert,
 * nd-redirect }") two rules with the same verdict. Same packets, same
 * verdicts.
 *
 * Remove: what nft.c's member_remove_cmds says in nft's language: the map
 * elements that jump to the member's chains, then the chains (the kernel
 * deletes a chain's rules with it). When any object is missing (a
 * half-made attach, a crash) the caller falls back to removing what is
 * there one object at a time. */
#include <net/if.h>
#include <netinet/in.h>

#include <errno.h>
#include <libmnl/libmnl.h>
#include <linux/netfilter.h>
#include <linux/netfilter/nf_conntrack_common.h>
#include <linux/netfilter/nf_tables.h>
#include <linux/netfilter/nfnetlink.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

#include "net/net.h"
#include "net/net_int.h"

struct batch {
    char buf[16384];
    size_t len;
    unsigned seq, n;
    bool full;
};

static struct nlmsghdr *put(struct batch *b, uint16_t type, uint16_t flags, uint8_t family,
                            uint16_t res_id)
{
    /* Each message below is far smaller than this: a batch that could
     * overflow is refused (full) rather than cut. */
    if (b->len + 1024 > sizeof(b->buf)) {
        b->full = true;
        b->len = 0;
    }
    struct nlmsghdr *h = mnl_nlmsg_put_header(b->buf + b->len);
    h->nlmsg_type = type;
    h->nlmsg_flags = NLM_F_REQUEST | flags;
    h->nlmsg_seq = b->seq++;
    struct nfgenmsg *g = mnl_nlmsg_put_extra_header(h, sizeof(*g));
    g->nfgen_family = family;
    g->version = NFNETLINK_V0;
    g->res_id = htons(res_id);
    return h;
}

static void done(struct batch *b, struct nlmsghdr *h)
{
    b->len += NLMSG_ALIGN(h->nlmsg_len);
}

static uint16_t nft_type(int msg)
{
    return (uint16_t)((NFNL_SUBSYS_NFTABLES << 8) | msg);
}

/* delete element FAMILY hull SET { KEY } */
static void del_elem(struct batch *b, uint8_t family, const char *set, const void *key, size_t klen)
{
    struct nlmsghdr *h = put(b, nft_type(NFT_MSG_DELSETELEM), NLM_F_ACK, family, 0);
    mnl_attr_put_strz(h, NFTA_SET_ELEM_LIST_TABLE, "hull");
    mnl_attr_put_strz(h, NFTA_SET_ELEM_LIST_SET, set);
    struct nlattr *list = mnl_attr_nest_start(h, NFTA_SET_ELEM_LIST_ELEMENTS);
    struct nlattr *el = mnl_attr_nest_start(h, NFTA_LIST_ELEM);
    struct nlattr *k = mnl_attr_nest_start(h, NFTA_SET_ELEM_KEY);
    mnl_attr_put(h, NFTA_DATA_VALUE, klen, key);
    mnl_attr_nest_end(h, k);
    mnl_attr_nest_end(h, el);
    mnl_attr_nest_end(h, list);
    done(b, h);
    b->n++;
}

/* delete chain FAMILY hull NAME (with its rules) */
static void del_chain(struct batch *b, uint8_t family, const char *name)
{
    struct nlmsghdr *h = put(b, nft_type(NFT_MSG_DELCHAIN), NLM_F_ACK, family, 0);
    mnl_attr_put_strz(h, NFTA_CHAIN_TABLE, "hull");
    mnl_attr_put_strz(h, NFTA_CHAIN_NAME, name);
    done(b, h);
    b->n++;
}

/* ---- rules ---- */

static void put_u32(struct nlmsghdr *h, uint16_t type, uint32_t v)
{
    mnl_attr_put_u32(h, type, htonl(v));
}

static void data_value(struct nlmsghdr *h, uint16_t type, const void *v, size_t len)
{
    struct nlattr *d = mnl_attr_nest_start(h, type);
    mnl_attr_put(h, NFTA_DATA_VALUE, len, v);
    mnl_attr_nest_end(h, d);
}

static void verdict(struct nlmsghdr *h, uint16_t type, int code, const char *chain)
{
    struct nlattr *d = mnl_attr_nest_start(h, type);
    struct nlattr *v = mnl_attr_nest_start(h, NFTA_DATA_VERDICT);
    put_u32(h, NFTA_VERDICT_CODE, (uint32_t)code);
    if (chain)
        mnl_attr_put_strz(h, NFTA_VERDICT_CHAIN, chain);
    mnl_attr_nest_end(h, v);
    mnl_attr_nest_end(h, d);
}

/* A rule under construction: its expressions nest. */
struct rule {
    struct nlmsghdr *h;
    struct nlattr *list;
};

static struct rule rule_start(struct batch *b, uint8_t family, const char *chain)
{
    struct rule r;
    r.h = put(b, nft_type(NFT_MSG_NEWRULE), NLM_F_CREATE | NLM_F_APPEND | NLM_F_ACK, family, 0);
    mnl_attr_put_strz(r.h, NFTA_RULE_TABLE, "hull");
    mnl_attr_put_strz(r.h, NFTA_RULE_CHAIN, chain);
    r.list = mnl_attr_nest_start(r.h, NFTA_RULE_EXPRESSIONS);
    return r;
}

/* [ meta load KEY => reg 1 ] */
static void e_meta(struct rule *r, uint32_t key)
{
    struct nlattr *e = mnl_attr_nest_start(r->h, NFTA_LIST_ELEM);
    mnl_attr_put_strz(r->h, NFTA_EXPR_NAME, "meta");
    struct nlattr *d = mnl_attr_nest_start(r->h, NFTA_EXPR_DATA);
    put_u32(r->h, NFTA_META_DREG, NFT_REG_1);
    put_u32(r->h, NFTA_META_KEY, key);
    mnl_attr_nest_end(r->h, d);
    mnl_attr_nest_end(r->h, e);
}

/* [ payload load LENb @ BASE + OFFSET => reg 1 ] */
static void e_payload(struct rule *r, uint32_t base, uint32_t offset, uint32_t len)
{
    struct nlattr *e = mnl_attr_nest_start(r->h, NFTA_LIST_ELEM);
    mnl_attr_put_strz(r->h, NFTA_EXPR_NAME, "payload");
    struct nlattr *d = mnl_attr_nest_start(r->h, NFTA_EXPR_DATA);
    put_u32(r->h, NFTA_PAYLOAD_DREG, NFT_REG_1);
    put_u32(r->h, NFTA_PAYLOAD_BASE, base);
    put_u32(r->h, NFTA_PAYLOAD_OFFSET, offset);
    put_u32(r->h, NFTA_PAYLOAD_LEN, len);
    mnl_attr_nest_end(r->h, d);
    mnl_attr_nest_end(r->h, e);
}

/* [ cmp OP reg 1 VALUE ] */
static void e_cmp(struct rule *r, uint32_t op, const void *v, size_t len)
{
    struct nlattr *e = mnl_attr_nest_start(r->h, NFTA_LIST_ELEM);
    mnl_attr_put_strz(r->h, NFTA_EXPR_NAME, "cmp");
    struct nlattr *d = mnl_attr_nest_start(r->h, NFTA_EXPR_DATA);
    put_u32(r->h, NFTA_CMP_SREG, NFT_REG_1);
    put_u32(r->h, NFTA_CMP_OP, op);
    data_value(r->h, NFTA_CMP_DATA, v, len);
    mnl_attr_nest_end(r->h, d);
    mnl_attr_nest_end(r->h, e);
}

/* [ lookup reg 1 set NAME ] */
static void e_lookup(struct rule *r, const char *set)
{
    struct nlattr *e = mnl_attr_nest_start(r->h, NFTA_LIST_ELEM);
    mnl_attr_put_strz(r->h, NFTA_EXPR_NAME, "lookup");
    struct nlattr *d = mnl_attr_nest_start(r->h, NFTA_EXPR_DATA);
    mnl_attr_put_strz(r->h, NFTA_LOOKUP_SET, set);
    put_u32(r->h, NFTA_LOOKUP_SREG, NFT_REG_1);
    mnl_attr_nest_end(r->h, d);
    mnl_attr_nest_end(r->h, e);
}

/* [ ct load state => reg 1 ] [ bitwise reg 1 = (reg 1 & NEW) ^ 0 ]
 * [ cmp neq reg 1 0 ]: "ct state new". */
static void e_ct_state_new(struct rule *r)
{
    struct nlattr *e = mnl_attr_nest_start(r->h, NFTA_LIST_ELEM);
    mnl_attr_put_strz(r->h, NFTA_EXPR_NAME, "ct");
    struct nlattr *d = mnl_attr_nest_start(r->h, NFTA_EXPR_DATA);
    put_u32(r->h, NFTA_CT_DREG, NFT_REG_1);
    put_u32(r->h, NFTA_CT_KEY, NFT_CT_STATE);
    mnl_attr_nest_end(r->h, d);
    mnl_attr_nest_end(r->h, e);
    uint32_t mask = NF_CT_STATE_BIT(IP_CT_NEW), zero = 0;
    e = mnl_attr_nest_start(r->h, NFTA_LIST_ELEM);
    mnl_attr_put_strz(r->h, NFTA_EXPR_NAME, "bitwise");
    d = mnl_attr_nest_start(r->h, NFTA_EXPR_DATA);
    put_u32(r->h, NFTA_BITWISE_SREG, NFT_REG_1);
    put_u32(r->h, NFTA_BITWISE_DREG, NFT_REG_1);
    put_u32(r->h, NFTA_BITWISE_LEN, sizeof(mask));
    data_value(r->h, NFTA_BITWISE_MASK, &mask, sizeof(mask));
    data_value(r->h, NFTA_BITWISE_XOR, &zero, sizeof(zero));
    mnl_attr_nest_end(r->h, d);
    mnl_attr_nest_end(r->h, e);
    e_cmp(r, NFT_CMP_NEQ, &zero, sizeof(zero));
}

/* [ connlimit count N flags 1 ]: "ct count over N". */
static void e_ct_count_over(struct rule *r, uint32_t n)
{
    struct nlattr *e = mnl_attr_nest_start(r->h, NFTA_LIST_ELEM);
    mnl_attr_put_strz(r->h, NFTA_EXPR_NAME, "connlimit");
    struct nlattr *d = mnl_attr_nest_start(r->h, NFTA_EXPR_DATA);
    put_u32(r->h, NFTA_CONNLIMIT_COUNT, n);
    put_u32(r->h, NFTA_CONNLIMIT_FLAGS, NFT_CONNLIMIT_F_INV);
    mnl_attr_nest_end(r->h, d);
    mnl_attr_nest_end(r->h, e);
}

/* [ immediate reg 0 VERDICT ], the rule's last expression. */
static void rule_end(struct batch *b, struct rule *r, int code)
{
    struct nlattr *e = mnl_attr_nest_start(r->h, NFTA_LIST_ELEM);
    mnl_attr_put_strz(r->h, NFTA_EXPR_NAME, "immediate");
    struct nlattr *d = mnl_attr_nest_start(r->h, NFTA_EXPR_DATA);
    put_u32(r->h, NFTA_IMMEDIATE_DREG, NFT_REG_VERDICT);
    verdict(r->h, NFTA_IMMEDIATE_DATA, code, NULL);
    mnl_attr_nest_end(r->h, d);
    mnl_attr_nest_end(r->h, e);
    mnl_attr_nest_end(r->h, r->list);
    done(b, r->h);
    b->n++;
}

static void add_chain(struct batch *b, uint8_t family, const char *name)
{
    struct nlmsghdr *h = put(b, nft_type(NFT_MSG_NEWCHAIN), NLM_F_CREATE | NLM_F_ACK, family, 0);
    mnl_attr_put_strz(h, NFTA_CHAIN_TABLE, "hull");
    mnl_attr_put_strz(h, NFTA_CHAIN_NAME, name);
    done(b, h);
    b->n++;
}

/* add element FAMILY hull SET { KEY [: jump CHAIN] } */
static void add_elem(struct batch *b, uint8_t family, const char *set, const void *key, size_t klen,
                     const char *jump)
{
    struct nlmsghdr *h = put(b, nft_type(NFT_MSG_NEWSETELEM), NLM_F_CREATE | NLM_F_ACK, family, 0);
    mnl_attr_put_strz(h, NFTA_SET_ELEM_LIST_TABLE, "hull");
    mnl_attr_put_strz(h, NFTA_SET_ELEM_LIST_SET, set);
    struct nlattr *list = mnl_attr_nest_start(h, NFTA_SET_ELEM_LIST_ELEMENTS);
    struct nlattr *el = mnl_attr_nest_start(h, NFTA_LIST_ELEM);
    data_value(h, NFTA_SET_ELEM_KEY, key, klen);
    if (jump)
        verdict(h, NFTA_SET_ELEM_DATA, NFT_JUMP, jump);
    mnl_attr_nest_end(h, el);
    mnl_attr_nest_end(h, list);
    done(b, h);
    b->n++;
}

static void ifname_key(char key[IFNAMSIZ], const char *name)
{
    memset(key, 0, IFNAMSIZ);
    snprintf(key, IFNAMSIZ, "%s", name);
}

/* member_inet for egress "all" or none, no published port, isolated peers. */
static void add_inet(struct batch *b, const struct net_member *m, const struct hull_egress *eg)
{
    char o[IFNAMSIZ + 2], i[IFNAMSIZ + 2], p[IFNAMSIZ + 2];
    snprintf(o, sizeof(o), "%s_o", m->host_ifname);
    snprintf(i, sizeof(i), "%s_i", m->host_ifname);
    snprintf(p, sizeof(p), "%s_p", m->host_ifname);
    add_chain(b, NFPROTO_INET, o);
    add_chain(b, NFPROTO_INET, i);
    add_chain(b, NFPROTO_INET, p);
    /* ct state new ct count over HULL_NET_MAX_CONNS drop, in _o and _i */
    for (int k = 0; k < 2; k++) {
        struct rule c = rule_start(b, NFPROTO_INET, k ? i : o);
        e_ct_state_new(&c);
        e_ct_count_over(&c, HULL_NET_MAX_CONNS);
        rule_end(b, &c, NF_DROP);
    }
    /* oifname @bridges drop */
    struct rule r = rule_start(b, NFPROTO_INET, o);
    e_meta(&r, NFT_META_OIFNAME);
    e_lookup(&r, "bridges");
    rule_end(b, &r, NF_DROP);
    if (eg->all) {
        /* ip daddr 169.254.0.0/16 drop: [ meta load nfproto ] [ cmp eq ipv4 ]
         * [ payload load 2b @ network + 16 ] [ cmp eq 169.254 ] */
        static const uint8_t ipv4 = NFPROTO_IPV4, link_local[2] = {169, 254};
        r = rule_start(b, NFPROTO_INET, o);
        e_meta(&r, NFT_META_NFPROTO);
        e_cmp(&r, NFT_CMP_EQ, &ipv4, 1);
        e_payload(&r, NFT_PAYLOAD_NETWORK_HEADER, 16, 2);
        e_cmp(&r, NFT_CMP_EQ, link_local, 2);
        rule_end(b, &r, NF_DROP);
        r = rule_start(b, NFPROTO_INET, o);
        rule_end(b, &r, NF_ACCEPT);
    }
    r = rule_start(b, NFPROTO_INET, o);
    rule_end(b, &r, NF_DROP);
    r = rule_start(b, NFPROTO_INET, i);
    rule_end(b, &r, NF_DROP);
    add_elem(b, NFPROTO_INET, "out4", m->ip4, 4, o);
    add_elem(b, NFPROTO_INET, "in4", m->ip4, 4, i);
    if (m->has6) {
        add_elem(b, NFPROTO_INET, "out6", m->ip6, 16, o);
        add_elem(b, NFPROTO_INET, "in6", m->ip6, 16, i);
    }
}

/* A dependency on the link layer's type: [ payload ll+12 2b ] [ cmp eq ]. */
static void ether_type(struct rule *r, uint16_t type)
{
    uint16_t t = htons(type);
    e_payload(r, NFT_PAYLOAD_LL_HEADER, 12, 2);
    e_cmp(r, NFT_CMP_EQ, &t, 2);
}

/* [ meta load protocol ] [ cmp eq TYPE ] */
static void meta_protocol(struct rule *r, uint16_t type)
{
    uint16_t t = htons(type);
    e_meta(r, NFT_META_PROTOCOL);
    e_cmp(r, NFT_CMP_EQ, &t, 2);
}

static void l4proto(struct rule *r, uint8_t proto)
{
    e_meta(r, NFT_META_L4PROTO);
    e_cmp(r, NFT_CMP_EQ, &proto, 1);
}

/* udp sport PORT drop */
static void udp_sport_drop(struct batch *b, const char *c, uint16_t port)
{
    uint16_t p = htons(port);
    struct rule r = rule_start(b, NFPROTO_BRIDGE, c);
    l4proto(&r, IPPROTO_UDP);
    e_payload(&r, NFT_PAYLOAD_TRANSPORT_HEADER, 0, 2);
    e_cmp(&r, NFT_CMP_EQ, &p, 2);
    rule_end(b, &r, NF_DROP);
}

/* icmpv6 type TYPE: [ ether type ip6 ] [ l4proto icmpv6 ] [ th+0 1b == TYPE ] */
static void icmpv6_type(struct rule *r, uint8_t type)
{
    ether_type(r, 0x86dd);
    l4proto(r, IPPROTO_ICMPV6);
    e_payload(r, NFT_PAYLOAD_TRANSPORT_HEADER, 0, 1);
    e_cmp(r, NFT_CMP_EQ, &type, 1);
}

/* member_bridge: frames from the member's own MAC and addresses only. */
static int add_bridge(struct batch *b, const struct net_member *m)
{
    const char *c = m->host_ifname;
    uint8_t mac[6], lla[16], ip6_any[16] = {0};
    unsigned v[6];
    if (sscanf(m->mac, "%2x:%2x:%2x:%2x:%2x:%2x", &v[0], &v[1], &v[2], &v[3], &v[4], &v[5]) != 6 ||
        net_mac_linklocal(m->mac, lla) < 0)
        return -1;
    for (int k = 0; k < 6; k++)
        mac[k] = (uint8_t)v[k];
    add_chain(b, NFPROTO_BRIDGE, c);
    /* ether saddr != MAC drop */
    struct rule r = rule_start(b, NFPROTO_BRIDGE, c);
    e_payload(&r, NFT_PAYLOAD_LL_HEADER, 6, 6);
    e_cmp(&r, NFT_CMP_NEQ, mac, 6);
    rule_end(b, &r, NF_DROP);
    /* ether type != { ip, ip6, arp } drop */
    static const uint16_t types[] = {0x0800, 0x86dd, 0x0806};
    r = rule_start(b, NFPROTO_BRIDGE, c);
    e_payload(&r, NFT_PAYLOAD_LL_HEADER, 12, 2);
    for (size_t k = 0; k < 3; k++) {
        uint16_t t = htons(types[k]);
        e_cmp(&r, NFT_CMP_NEQ, &t, 2);
    }
    rule_end(b, &r, NF_DROP);
    /* arp saddr ether != MAC drop */
    r = rule_start(b, NFPROTO_BRIDGE, c);
    ether_type(&r, 0x0806);
    e_payload(&r, NFT_PAYLOAD_NETWORK_HEADER, 8, 6);
    e_cmp(&r, NFT_CMP_NEQ, mac, 6);
    rule_end(b, &r, NF_DROP);
    /* arp saddr ip != IP drop */
    r = rule_start(b, NFPROTO_BRIDGE, c);
    ether_type(&r, 0x0806);
    e_payload(&r, NFT_PAYLOAD_NETWORK_HEADER, 14, 4);
    e_cmp(&r, NFT_CMP_NEQ, m->ip4, 4);
    rule_end(b, &r, NF_DROP);
    /* ip saddr != IP drop */
    r = rule_start(b, NFPROTO_BRIDGE, c);
    meta_protocol(&r, 0x0800);
    e_payload(&r, NFT_PAYLOAD_NETWORK_HEADER, 12, 4);
    e_cmp(&r, NFT_CMP_NEQ, m->ip4, 4);
    rule_end(b, &r, NF_DROP);
    udp_sport_drop(b, c, 67);
    /* ip6 saddr != { ::, LL[, IP6] } drop */
    r = rule_start(b, NFPROTO_BRIDGE, c);
    meta_protocol(&r, 0x86dd);
    e_payload(&r, NFT_PAYLOAD_NETWORK_HEADER, 8, 16);
    e_cmp(&r, NFT_CMP_NEQ, ip6_any, 16);
    e_cmp(&r, NFT_CMP_NEQ, lla, 16);
    if (m->has6)
        e_cmp(&r, NFT_CMP_NEQ, m->ip6, 16);
    rule_end(b, &r, NF_DROP);
    /* icmpv6 type nd-neighbor-advert @th,64,128 != { LL[, IP6] } drop */
    r = rule_start(b, NFPROTO_BRIDGE, c);
    icmpv6_type(&r, 136);
    e_payload(&r, NFT_PAYLOAD_TRANSPORT_HEADER, 8, 16);
    e_cmp(&r, NFT_CMP_NEQ, lla, 16);
    if (m->has6)
        e_cmp(&r, NFT_CMP_NEQ, m->ip6, 16);
    rule_end(b, &r, NF_DROP);
    /* icmpv6 type { nd-router-advert, nd-redirect } drop */
    static const uint8_t icmp[] = {134, 137};
    for (size_t k = 0; k < 2; k++) {
        r = rule_start(b, NFPROTO_BRIDGE, c);
        icmpv6_type(&r, icmp[k]);
        rule_end(b, &r, NF_DROP);
    }
    udp_sport_drop(b, c, 547);
    char key[IFNAMSIZ];
    ifname_key(key, c);
    add_elem(b, NFPROTO_BRIDGE, "ports", key, sizeof(key), c);
    return 0;
}

static void member_batch(struct batch *b, const struct net_member *m)
{
    const char *c = m->host_ifname;
    char ifkey[IFNAMSIZ], name[IFNAMSIZ + 2];
    ifname_key(ifkey, c);
    del_elem(b, NFPROTO_BRIDGE, "ports", ifkey, sizeof(ifkey));
    /* Addresses as nft keys them: network order, 4 or 16 bytes. */
    del_elem(b, NFPROTO_INET, "out4", m->ip4, 4);
    del_elem(b, NFPROTO_INET, "in4", m->ip4, 4);
    if (m->has6) {
        del_elem(b, NFPROTO_INET, "out6", m->ip6, 16);
        del_elem(b, NFPROTO_INET, "in6", m->ip6, 16);
    }
    for (size_t i = 0; i < m->n_publish; i++) {
        /* inet_proto . inet_service: each part in a 4-byte register slot. */
        uint8_t key[8] = {0};
        uint16_t port = htons((uint16_t)m->publish[i].host_port);
        key[0] = m->publish[i].udp ? IPPROTO_UDP : IPPROTO_TCP;
        memcpy(key + 4, &port, 2);
        del_elem(b, NFPROTO_INET, "pub", key, sizeof(key));
    }
    del_chain(b, NFPROTO_BRIDGE, c);
    static const char *const suffix[] = {"_o", "_i", "_p"};
    for (size_t i = 0; i < 3; i++) {
        snprintf(name, sizeof(name), "%s%s", c, suffix[i]);
        del_chain(b, NFPROTO_INET, name);
    }
}

/* Every answer is queued on the socket before sendmsg returns (nfnetlink
 * runs the batch in the sender's context): read them without blocking;
 * any error, or fewer acks than messages, fails the batch. */
static int read_acks(struct mnl_socket *sock, const struct batch *b)
{
    char buf[MNL_SOCKET_BUFFER_SIZE];
    unsigned acked = 0;
    for (;;) {
        ssize_t r = recv(mnl_socket_get_fd(sock), buf, sizeof(buf), MSG_DONTWAIT);
        if (r < 0)
            return errno == EAGAIN && acked == b->n ? 0 : -1;
        const struct nlmsghdr *h = (const struct nlmsghdr *)buf;
        size_t left = (size_t)r;
        for (; mnl_nlmsg_ok(h, (int)left); h = mnl_nlmsg_next(h, (int *)&left)) {
            if (h->nlmsg_type != NLMSG_ERROR)
                continue;
            const struct nlmsgerr *e = mnl_nlmsg_get_payload(h);
            if (e->error != 0)
                return -1;
            acked++;
        }
    }
}

/* Send a batch: BEGIN, what fill() puts, END; 0 when every message was
 * acknowledged (the transaction committed), -1 when nothing changed. */
static int run_batch(struct batch *b)
{
    struct nlmsghdr *h = put(b, NFNL_MSG_BATCH_END, 0, AF_UNSPEC, NFNL_SUBSYS_NFTABLES);
    done(b, h);
    if (b->full)
        return -1;
    struct mnl_socket *sock = mnl_socket_open2(NETLINK_NETFILTER, SOCK_CLOEXEC);
    if (!sock)
        return -1;
    int rc = -1;
    if (mnl_socket_bind(sock, 0, MNL_SOCKET_AUTOPID) == 0 &&
        mnl_socket_sendto(sock, b->buf, b->len) == (ssize_t)b->len)
        rc = read_acks(sock, b);
    mnl_socket_close(sock);
    return rc;
}

static void batch_begin(struct batch *b)
{
    memset(b, 0, sizeof(*b));
    b->seq = (unsigned)time(NULL);
    /* res_id: the subsystem the batch is for. */
    struct nlmsghdr *h = put(b, NFNL_MSG_BATCH_BEGIN, 0, AF_UNSPEC, NFNL_SUBSYS_NFTABLES);
    done(b, h);
}

int nft_member_remove_batch(const struct net_member *m)
{
    static struct batch b;
    batch_begin(&b);
    member_batch(&b, m);
    return run_batch(&b);
}

int nft_member_add_batch(const struct net_def *d, const struct net_member *m,
                         const struct hull_egress *eg)
{
    if (eg->n || m->n_publish || d->allow_peers)
        return 1;
    static struct batch b;
    batch_begin(&b);
    /* The network's elements again, as nft_member_add does. */
    char key[IFNAMSIZ];
    ifname_key(key, d->bridge);
    add_elem(&b, NFPROTO_INET, "bridges", key, sizeof(key), NULL);
    add_elem(&b, NFPROTO_INET, d->internal ? "internal_bridges" : "nat_bridges", key, sizeof(key),
             NULL);
    add_inet(&b, m, eg);
    if (add_bridge(&b, m) < 0)
        return -1;
    return run_batch(&b);
}
