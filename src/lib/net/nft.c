/* hull's rules in nftables (libnftables): "table inet hull" (filtering, NAT,
 * publishing, egress) and "table bridge hull" (anti-spoofing), nothing
 * outside them. docs/network.md explains every rule written here.
 *
 * Per-network state is set elements (the bridge in @bridges and in
 * @nat_bridges or @internal_bridges); per-member state is chains named
 * after the member's host interface plus the map elements that jump to
 * them, so a member's teardown deletes exactly its own objects. Each
 * change is one nft transaction: it applies whole or not at all. */
#include <errno.h>
#include <fcntl.h>
#include <sys/file.h>
#include <nftables/libnftables.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "net/net_int.h"
#include "util/error.h"

/* One context for the process (making one reads iproute2's tables each
 * time); hull-net is single-threaded and short-lived. */
static struct nft_ctx *context(void)
{
    static struct nft_ctx *ctx;
    if (!ctx && (ctx = nft_ctx_new(NFT_CTX_DEFAULT))) {
        nft_ctx_buffer_output(ctx);
        nft_ctx_buffer_error(ctx);
    }
    return ctx;
}

int nft_run(const char *script, hull_error *err)
{
    struct nft_ctx *ctx = context();
    if (!ctx)
        return hull_error_set(err, ENOMEM, "nftables: no context");
    int rc = nft_run_cmd_from_buffer(ctx, script);
    /* Reading the buffers empties them for the next command. */
    nft_ctx_get_output_buffer(ctx);
    const char *e = nft_ctx_get_error_buffer(ctx);
    if (rc != 0 && err) {
        /* The first line of nft's complaint says what; the rest points at it. */
        size_t n = e ? strcspn(e, "\n") : 0;
        hull_error_set(err, EIO, "nftables: %.*s", (int)n, n ? e : "failed");
    }
    return rc != 0 ? -1 : 0;
}

/* A script built in memory: open_memstream's buffer. */
struct script {
    char *text;
    size_t len;
    FILE *f;
};

static int script_open(struct script *s, hull_error *err)
{
    s->text = NULL;
    s->f = open_memstream(&s->text, &s->len);
    return s->f ? 0 : hull_error_errno(err, "nftables: script");
}

static int script_run(struct script *s, hull_error *err)
{
    fclose(s->f);
    s->f = NULL;
    int rc = nft_run(s->text, err);
    free(s->text);
    s->text = NULL;
    return rc;
}

static const char base_inet[] =
    "table inet hull {\n"
    "  set bridges { type ifname; }\n"
    "  set nat_bridges { type ifname; }\n"
    "  set internal_bridges { type ifname; }\n"
    "  map out4 { type ipv4_addr : verdict; }\n"
    "  map out6 { type ipv6_addr : verdict; }\n"
    "  map in4 { type ipv4_addr : verdict; }\n"
    "  map in6 { type ipv6_addr : verdict; }\n"
    "  map pub { type inet_proto . inet_service : verdict; }\n"
    "  chain forward {\n"
    "    type filter hook forward priority filter; policy accept;\n"
    "    ct state established,related accept\n"
    "    iifname @internal_bridges oifname != @bridges drop\n"
    "    iifname != @internal_bridges oifname @bridges ct status dnat accept\n"
    "    iifname @bridges ip saddr vmap @out4\n"
    "    iifname @bridges ip6 saddr vmap @out6\n"
    "    iifname @bridges drop\n"
    "    oifname @bridges drop\n"
    "  }\n"
    "  chain input {\n"
    "    type filter hook input priority filter; policy accept;\n"
    "    iifname != @bridges accept\n"
    "    ct state established,related accept\n"
    "    ip daddr 127.0.0.0/8 drop\n"
    "    ip6 daddr ::1 drop\n"
    "    icmpv6 type { nd-neighbor-solicit, nd-neighbor-advert } accept\n"
    "    ip saddr vmap @in4\n"
    "    ip6 saddr vmap @in6\n"
    "    drop\n"
    "  }\n"
    "  chain prerouting {\n"
    "    type nat hook prerouting priority dstnat; policy accept;\n"
    "    ip daddr 127.0.0.0/8 return\n"
    "    fib daddr type local meta l4proto . th dport vmap @pub\n"
    "  }\n"
    "  chain output {\n"
    "    type nat hook output priority -100; policy accept;\n"
    "    fib daddr type local meta l4proto . th dport vmap @pub\n"
    "  }\n"
    "  chain postrouting {\n"
    "    type nat hook postrouting priority srcnat; policy accept;\n"
    "    oifname @bridges ip saddr 127.0.0.0/8 masquerade\n"
    "    iifname @bridges oifname @bridges ct status dnat masquerade\n"
    "    oifname @bridges return\n"
    "    iifname @nat_bridges masquerade\n"
    "  }\n"
    "}\n";

static const char base_bridge[] =
    "table bridge hull {\n"
    "  map ports { type ifname : verdict; }\n"
    "  chain prerouting {\n"
    "    type filter hook prerouting priority filter; policy accept;\n"
    "    iifname vmap @ports\n"
    "  }\n"
    "}\n";

static bool table_exists(const char *family)
{
    /* One netlink request, not a listing of the whole table. */
    return nl_nft_exists(family, "hull", NULL);
}

/* The base chains' rules change with hull: BASE_VERSION names an empty
 * chain that says which rules the tables hold. */
#define BASE_VERSION "base_v6"
#define BASE_NUMBER  6
#define BASE_OLDEST  2

static const struct {
    const char *family, *chain, *spec;
} base_chains[] = {
    {"inet", "forward", "type filter hook forward priority filter; policy accept;"},
    {"inet", "input", "type filter hook input priority filter; policy accept;"},
    {"inet", "prerouting", "type nat hook prerouting priority dstnat; policy accept;"},
    {"inet", "output", "type nat hook output priority -100; policy accept;"},
    {"inet", "postrouting", "type nat hook postrouting priority srcnat; policy accept;"},
    {"bridge", "prerouting", "type filter hook prerouting priority filter; policy accept;"},
};

/* The tables are the kernel's, shared by every hull state directory, so
 * their creation is serialised by the host-wide lock "nft"
 * (net_host_lock_named; HULL_NET_RUN_DIR's lock is per state directory). The script is one
 * transaction that makes what is missing and replaces the base chains' rules (flush, then add):
 * sets, maps and member chains stay as they are, so tables made by an
 * older hull are brought up to date under live members. */

static int write_base(hull_error *err)
{
    struct script s;
    if (script_open(&s, err) < 0)
        return -1;
    fprintf(s.f, "add table inet hull\nadd table bridge hull\n");
    for (size_t i = 0; i < sizeof(base_chains) / sizeof(base_chains[0]); i++)
        fprintf(s.f, "add chain %s hull %s { %s }\nflush chain %s hull %s\n", base_chains[i].family,
                base_chains[i].chain, base_chains[i].spec, base_chains[i].family,
                base_chains[i].chain);
    fputs(base_inet, s.f);
    fputs(base_bridge, s.f);
    /* An older hull's version marker goes (added first: delete of a missing
     * chain would fail the whole transaction). */
    for (int v = BASE_OLDEST; v < BASE_NUMBER; v++)
        fprintf(s.f, "add chain inet hull base_v%d\ndelete chain inet hull base_v%d\n", v, v);
    fprintf(s.f, "add chain inet hull " BASE_VERSION "\n");
    return script_run(&s, err);
}

/* Whether the base chains hold this hull's rules: its marker, and no older
 * one beside it (an older hull that rewrote the shared tables after this one
 * added its marker and left it). */
static bool base_current(void)
{
    if (!nl_nft_exists("inet", "hull", BASE_VERSION))
        return false;
    for (int v = BASE_OLDEST; v < BASE_NUMBER; v++) {
        char name[32];
        snprintf(name, sizeof(name), "base_v%d", v);
        if (nl_nft_exists("inet", "hull", name))
            return false;
    }
    return true;
}

int nft_ensure_base(hull_error *err)
{
    /* Once per process: hull-net attaches one member and exits. */
    static bool done;
    if (!done && base_current())
        done = true;
    if (done)
        return 0;
    cleanup_close int lock = net_host_lock_named("nft", err);
    if (lock < 0)
        return -1;
    if (!base_current() && write_base(err) < 0)
        return hull_error_prefix(err, "hull's nftables tables");
    done = true;
    return 0;
}

static void network_elements(FILE *f, const char *verb, const struct net_def *d)
{
    fprintf(f, "%s element inet hull bridges { \"%s\" }\n", verb, d->bridge);
    fprintf(f, "%s element inet hull %s { \"%s\" }\n", verb,
            d->internal ? "internal_bridges" : "nat_bridges", d->bridge);
}

int nft_network_add(const struct net_def *d, hull_error *err)
{
    struct script s;
    if (nft_ensure_base(err) < 0 || script_open(&s, err) < 0)
        return -1;
    network_elements(s.f, "add", d);
    return script_run(&s, err);
}

int nft_network_remove(const struct net_def *d, hull_error *err)
{
    if (!table_exists("inet"))
        return 0;
    /* One element at a time: a missing one (a half-made network) is fine. */
    char cmd[256];
    snprintf(cmd, sizeof(cmd), "delete element inet hull bridges { \"%s\" }", d->bridge);
    nft_run(cmd, NULL);
    snprintf(cmd, sizeof(cmd), "delete element inet hull %s { \"%s\" }",
             d->internal ? "internal_bridges" : "nat_bridges", d->bridge);
    nft_run(cmd, NULL);
    return 0;
}

static void fmt4(const uint8_t a[16], char *buf)
{
    net_addr_format(AF_INET, a, buf, INET6_ADDRSTRLEN);
}

static void fmt6(const uint8_t a[16], char *buf)
{
    net_addr_format(AF_INET6, a, buf, INET6_ADDRSTRLEN);
}

/* One egress rule as a match: "ip daddr 10.0.0.0/8 meta l4proto tcp th dport 80". */
static void egress_match(FILE *f, const struct hull_egress_rule *r)
{
    char a[INET6_ADDRSTRLEN];
    net_addr_format(r->family, r->addr, a, sizeof(a));
    fprintf(f, "%s daddr %s/%u", r->family == AF_INET ? "ip" : "ip6", a, r->prefix);
    if (r->proto)
        fprintf(f, " meta l4proto %s", r->proto == IPPROTO_UDP ? "udp" : "tcp");
    else if (r->port)
        fprintf(f, " meta l4proto { tcp, udp }");
    if (r->port)
        fprintf(f, " th dport %u", r->port);
}

/* The member's chains in inet hull: _o (forwarded: egress), _i (to the
 * host: only what an egress rule names), _p (its published ports). */
static void member_inet(FILE *f, const struct net_def *d, const struct net_member *m,
                        const struct hull_egress *eg)
{
    const char *c = m->host_ifname;
    char ip4[INET6_ADDRSTRLEN], ip6[INET6_ADDRSTRLEN];
    fmt4(m->ip4, ip4);
    fmt6(m->ip6, ip6);
    fprintf(f, "add chain inet hull %s_o\nadd chain inet hull %s_i\nadd chain inet hull %s_p\n", c,
            c, c);
    /* First: new connections past the member's share of the host's
     * conntrack table are dropped, wherever they were going. */
    fprintf(f, "add rule inet hull %s_o ct state new ct count over %u drop\n", c,
            HULL_NET_MAX_CONNS);
    fprintf(f, "add rule inet hull %s_i ct state new ct count over %u drop\n", c,
            HULL_NET_MAX_CONNS);
    /* Peers and members of other hull networks before any egress rule: a
     * rule as wide as 0.0.0.0/0 or 10.0.0.0/8 must not reach them. */
    if (d->allow_peers)
        fprintf(f, "add rule inet hull %s_o oifname \"%s\" accept\n", c, d->bridge);
    fprintf(f, "add rule inet hull %s_o oifname @bridges drop\n", c);
    for (size_t i = 0; i < eg->n; i++) {
        const struct hull_egress_rule *r = &eg->rules[i];
        fprintf(f, "add rule inet hull %s_o ", c);
        egress_match(f, r);
        fprintf(f, " accept\n");
        /* The host only through a rule naming one address exactly: a range
         * that happens to hold one of the host's addresses is not asking
         * for the host's own services. */
        if (r->prefix == (r->family == AF_INET ? 32 : 128)) {
            fprintf(f, "add rule inet hull %s_i ", c);
            egress_match(f, r);
            fprintf(f, " accept\n");
        }
    }
    /* "all" is the internet, not the link-local range: 169.254.169.254 is
     * a cloud's metadata service (its credentials and user data) on many
     * hosts. A rule above that names it still reaches it. */
    if (eg->all)
        fprintf(f,
                "add rule inet hull %s_o ip daddr 169.254.0.0/16 drop\n"
                "add rule inet hull %s_o accept\n",
                c, c);
    fprintf(f, "add rule inet hull %s_o drop\nadd rule inet hull %s_i drop\n", c, c);
    for (size_t i = 0; i < m->n_publish; i++) {
        const struct hull_publish *p = &m->publish[i];
        const char *proto = p->udp ? "udp" : "tcp";
        bool v6host = strchr(p->host_ip, ':') != NULL;
        if (!v6host) {
            fprintf(f, "add rule inet hull %s_p meta nfproto ipv4 ", c);
            if (p->host_ip[0])
                fprintf(f, "ip daddr %s ", p->host_ip);
            fprintf(f, "meta l4proto %s th dport %u dnat ip to %s:%u\n", proto, p->host_port, ip4,
                    p->port);
        }
        if (m->has6 && (v6host || !p->host_ip[0])) {
            fprintf(f, "add rule inet hull %s_p meta nfproto ipv6 ", c);
            if (p->host_ip[0])
                fprintf(f, "ip6 daddr %s ", p->host_ip);
            fprintf(f, "meta l4proto %s th dport %u dnat ip6 to [%s]:%u\n", proto, p->host_port,
                    ip6, p->port);
        }
        fprintf(f, "add element inet hull pub { %s . %u : jump %s_p }\n", proto, p->host_port, c);
    }
    fprintf(f, "add element inet hull out4 { %s : jump %s_o }\n", ip4, c);
    fprintf(f, "add element inet hull in4 { %s : jump %s_i }\n", ip4, c);
    if (m->has6) {
        fprintf(f, "add element inet hull out6 { %s : jump %s_o }\n", ip6, c);
        fprintf(f, "add element inet hull in6 { %s : jump %s_i }\n", ip6, c);
    }
}

/* An IPv6 address as the 128-bit integer a raw payload match compares. */
static void hex128(const uint8_t a[16], char *buf)
{
    char *p = buf + sprintf(buf, "0x");
    for (int i = 0; i < 16; i++)
        p += sprintf(p, "%02x", a[i]);
}

/* The member's port chain in bridge hull: frames from its own MAC and
 * addresses only; no ARP/ND answers for others, no RA, no DHCP server. */
static void member_bridge(FILE *f, const struct net_member *m)
{
    const char *c = m->host_ifname;
    char ip4[INET6_ADDRSTRLEN], ip6[INET6_ADDRSTRLEN], ll[INET6_ADDRSTRLEN];
    char ll_hex[40], ip6_hex[40];
    uint8_t lla[16];
    fmt4(m->ip4, ip4);
    fmt6(m->ip6, ip6);
    net_mac_linklocal(m->mac, lla);
    fmt6(lla, ll);
    hex128(lla, ll_hex);
    hex128(m->ip6, ip6_hex);
    fprintf(f, "add chain bridge hull %s\n", c);
#define R(...)                                                                                     \
    do {                                                                                           \
        fprintf(f, "add rule bridge hull %s ", c);                                                 \
        fprintf(f, __VA_ARGS__);                                                                   \
        fputc('\n', f);                                                                            \
    } while (0)
    R("ether saddr != %s drop", m->mac);
    R("ether type != { ip, ip6, arp } drop");
    R("arp saddr ether != %s drop", m->mac);
    R("arp saddr ip != %s drop", ip4);
    R("ip saddr != %s drop", ip4);
    R("udp sport 67 drop");
    if (m->has6) {
        R("ip6 saddr != { ::, %s, %s } drop", ll, ip6);
        R("icmpv6 type nd-neighbor-advert @th,64,128 != { %s, %s } drop", ll_hex, ip6_hex);
    } else {
        R("ip6 saddr != { ::, %s } drop", ll);
        R("icmpv6 type nd-neighbor-advert @th,64,128 != %s drop", ll_hex);
    }
    R("icmpv6 type { nd-router-advert, nd-redirect } drop");
    R("udp sport 547 drop");
#undef R
    fprintf(f, "add element bridge hull ports { \"%s\" : jump %s }\n", c, c);
}

int nft_member_add(const struct net_def *d, const struct net_member *m,
                   const struct hull_egress *eg, hull_error *err)
{
    if (nft_ensure_base(err) < 0)
        return -1;
    /* The common member without libnftables (nft_batch.c); anything else,
     * or a batch the kernel refused (nothing changed), as a script: its
     * errors say which command failed. */
    if (nft_member_add_batch(d, m, eg) == 0)
        return 0;
    struct script s;
    if (script_open(&s, err) < 0)
        return -1;
    /* The network's elements again (no-ops when there): a ruleset flushed
     * under a live bridge heals with its next member. */
    network_elements(s.f, "add", d);
    member_inet(s.f, d, m, eg);
    member_bridge(s.f, m);
    return script_run(&s, err);
}

/* The commands removing a member's objects, one per line. */
static void member_remove_cmds(FILE *f, const struct net_member *m)
{
    const char *c = m->host_ifname;
    char ip4[INET6_ADDRSTRLEN], ip6[INET6_ADDRSTRLEN];
    fmt4(m->ip4, ip4);
    fmt6(m->ip6, ip6);
    fprintf(f, "delete element bridge hull ports { \"%s\" }\n", c);
    fprintf(f, "delete element inet hull out4 { %s }\n", ip4);
    fprintf(f, "delete element inet hull in4 { %s }\n", ip4);
    if (m->has6) {
        fprintf(f, "delete element inet hull out6 { %s }\n", ip6);
        fprintf(f, "delete element inet hull in6 { %s }\n", ip6);
    }
    for (size_t i = 0; i < m->n_publish; i++)
        fprintf(f, "delete element inet hull pub { %s . %u }\n", m->publish[i].udp ? "udp" : "tcp",
                m->publish[i].host_port);
    fprintf(f, "delete chain bridge hull %s\n", c);
    fprintf(f, "delete chain inet hull %s_o\n", c);
    fprintf(f, "delete chain inet hull %s_i\n", c);
    fprintf(f, "delete chain inet hull %s_p\n", c);
}

int nft_member_remove(const struct net_member *m, hull_error *err)
{
    /* The common case without libnftables (nft_batch.c). */
    if (nft_member_remove_batch(m) == 0)
        return 0;
    struct script s;
    if (script_open(&s, err) < 0)
        return -1;
    member_remove_cmds(s.f, m);
    fclose(s.f);
    s.f = NULL;
    int rc = 0;
    if (nft_run(s.text, NULL) < 0) {
        /* Part of it is gone already (a half-made attach, a crash): remove
         * what is there, one object at a time; elements before chains. */
        for (char *line = strtok(s.text, "\n"); line; line = strtok(NULL, "\n"))
            nft_run(line, NULL);
    }
    free(s.text);
    (void)err;
    return rc;
}

/* The table as libnftables' JSON (NULL when it does not exist). */
static json_object *table_json(const char *family)
{
    struct nft_ctx *ctx = nft_ctx_new(NFT_CTX_DEFAULT);
    if (!ctx)
        return NULL;
    nft_ctx_output_set_flags(ctx, NFT_CTX_OUTPUT_JSON);
    nft_ctx_buffer_output(ctx);
    nft_ctx_buffer_error(ctx);
    char cmd[64];
    snprintf(cmd, sizeof(cmd), "list table %s hull", family);
    json_object *o = NULL;
    if (nft_run_cmd_from_buffer(ctx, cmd) == 0)
        o = json_tokener_parse(nft_ctx_get_output_buffer(ctx));
    nft_ctx_free(ctx);
    return o;
}

/* A member chain's interface: "hullv0123abcd_o" -> "hullv0123abcd". */
static bool member_chain(const char *name, char ifname[16])
{
    size_t n = strlen(name);
    if (strncmp(name, NET_VETH_PREFIX, 5) != 0 && strncmp(name, NET_TAP_PREFIX, 5) != 0)
        return false;
    if (n != 13 && !(n == 15 && name[13] == '_'))
        return false;
    snprintf(ifname, 16, "%.13s", name);
    return true;
}

/* An element's key as nft writes it in a command. */
static void key_text(json_object *k, char *buf, size_t len)
{
    json_object *c =
        json_object_get_type(k) == json_type_object ? json_object_object_get(k, "concat") : NULL;
    if (c && json_object_array_length(c) == 2)
        snprintf(buf, len, "%s . %s", json_object_get_string(json_object_array_get_idx(c, 0)),
                 json_object_get_string(json_object_array_get_idx(c, 1)));
    else if (json_object_is_type(k, json_type_string) &&
             strncmp(json_object_get_string(k), "hull", 4) == 0)
        snprintf(buf, len, "\"%s\"", json_object_get_string(k));
    else
        snprintf(buf, len, "%s", json_object_get_string(k));
}

/* The jump target of a verdict map element [key, {"jump": {"target": T}}]. */
static const char *elem_target(json_object *e)
{
    json_object *v = json_object_array_get_idx(e, 1), *j = NULL, *t = NULL;
    if (v && json_object_object_get_ex(v, "jump", &j) && json_object_object_get_ex(j, "target", &t))
        return json_object_get_string(t);
    return NULL;
}

static void prune_table(FILE *f, const char *family, bool (*keep)(const char *, void *),
                        bool (*keep_bridge)(const char *, void *), void *arg, size_t *removed)
{
    json_object *top = table_json(family), *items = NULL;
    if (!top || !json_object_object_get_ex(top, "nftables", &items)) {
        json_object_put(top);
        return;
    }
    char ifname[16], key[128];
    for (size_t pass = 0; pass < 2; pass++) {
        /* Elements first, chains after: a chain is deleted only once no
         * map element jumps to it. */
        for (size_t i = 0; i < json_object_array_length(items); i++) {
            json_object *it = json_object_array_get_idx(items, i), *o = NULL, *elems = NULL;
            if (pass == 1 && json_object_object_get_ex(it, "chain", &o)) {
                const char *name = json_object_get_string(json_object_object_get(o, "name"));
                if (name && member_chain(name, ifname) && !keep(ifname, arg)) {
                    fprintf(f, "flush chain %s hull %s\ndelete chain %s hull %s\n", family, name,
                            family, name);
                    (*removed)++;
                }
                continue;
            }
            bool is_map = json_object_object_get_ex(it, "map", &o);
            if (pass == 1 || (!is_map && !json_object_object_get_ex(it, "set", &o)) ||
                !json_object_object_get_ex(o, "elem", &elems))
                continue;
            const char *set = json_object_get_string(json_object_object_get(o, "name"));
            for (size_t k = 0; k < json_object_array_length(elems); k++) {
                json_object *e = json_object_array_get_idx(elems, k);
                bool drop;
                if (is_map) {
                    const char *t = elem_target(e);
                    drop = t && member_chain(t, ifname) && !keep(ifname, arg);
                    key_text(json_object_array_get_idx(e, 0), key, sizeof(key));
                } else {
                    drop = !keep_bridge(json_object_get_string(e), arg);
                    key_text(e, key, sizeof(key));
                }
                if (drop)
                    fprintf(f, "delete element %s hull %s { %s }\n", family, set, key);
            }
        }
    }
    json_object_put(top);
}

int nft_prune(bool (*keep)(const char *ifname, void *arg),
              bool (*keep_bridge)(const char *bridge, void *arg), void *arg, size_t *removed,
              hull_error *err)
{
    struct script s;
    if (script_open(&s, err) < 0)
        return -1;
    prune_table(s.f, "inet", keep, keep_bridge, arg, removed);
    prune_table(s.f, "bridge", keep, keep_bridge, arg, removed);
    fclose(s.f);
    s.f = NULL;
    /* Other states' members come and go meanwhile: an object already gone
     * fails the whole batch, so then each command goes alone and an
     * object that vanished is no error. */
    if (s.len && nft_run(s.text, NULL) < 0)
        for (char *line = strtok(s.text, "\n"); line; line = strtok(NULL, "\n"))
            nft_run(line, NULL);
    free(s.text);
    (void)err;
    return 0;
}
