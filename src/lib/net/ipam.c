/* Subnets and addresses (net_int.h): pure functions, no I/O, so the unit
 * tests cover them (tests/unit/test_net_ipam.c). */
#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "net/net_int.h"

static unsigned addr_bits(int family)
{
    return family == AF_INET ? 32 : 128;
}

int net_addr_parse(const char *s, int family, uint8_t addr[16])
{
    memset(addr, 0, 16);
    return inet_pton(family, s, addr) == 1 ? 0 : -1;
}

void net_addr_format(int family, const uint8_t addr[16], char *buf, size_t len)
{
    if (!inet_ntop(family, addr, buf, (socklen_t)len) && len)
        buf[0] = '\0';
}

void net_prefix_format(const struct net_prefix *p, char *buf, size_t len)
{
    char a[INET6_ADDRSTRLEN];
    net_addr_format(p->family, p->addr, a, sizeof(a));
    snprintf(buf, len, "%s/%u", a, p->len);
}

/* Bit i (from the most significant) of addr. */
static int bit(const uint8_t *addr, unsigned i)
{
    return (addr[i / 8] >> (7 - i % 8)) & 1;
}

bool net_prefix_contains(const struct net_prefix *p, const uint8_t addr[16])
{
    for (unsigned i = 0; i < p->len; i++)
        if (bit(p->addr, i) != bit(addr, i))
            return false;
    return true;
}

bool net_prefix_overlap(const struct net_prefix *a, const struct net_prefix *b)
{
    if (a->family != b->family)
        return false;
    /* Two prefixes overlap iff the shorter contains the longer's address. */
    return a->len <= b->len ? net_prefix_contains(a, b->addr) : net_prefix_contains(b, a->addr);
}

int net_prefix_parse(const char *s, int family, struct net_prefix *out, hull_error *err)
{
    char buf[INET6_ADDRSTRLEN + 8];
    memset(out, 0, sizeof(*out));
    out->family = family;
    const char *slash = s ? strchr(s, '/') : NULL;
    if (!slash || (size_t)(slash - s) >= sizeof(buf) - 1)
        return hull_error_set(err, EINVAL, "%s: not a CIDR (ADDRESS/LENGTH)", s ? s : "");
    memcpy(buf, s, (size_t)(slash - s));
    buf[slash - s] = '\0';
    char *end = NULL;
    errno = 0;
    unsigned long len = strtoul(slash + 1, &end, 10);
    if (net_addr_parse(buf, family, out->addr) < 0)
        return hull_error_set(err, EINVAL, "%s: not an %s address", s,
                              family == AF_INET ? "IPv4" : "IPv6");
    if (errno || end == slash + 1 || *end || len > addr_bits(family))
        return hull_error_set(err, EINVAL, "%s: bad prefix length", s);
    out->len = (unsigned)len;
    for (unsigned i = out->len; i < addr_bits(family); i++)
        if (bit(out->addr, i))
            return hull_error_set(err, EINVAL, "%s: host bits set (the network address is meant)",
                                  s);
    return 0;
}

void net_prefix_host(const struct net_prefix *p, uint64_t i, uint8_t addr[16])
{
    memcpy(addr, p->addr, 16);
    unsigned nbytes = addr_bits(p->family) / 8;
    /* Add i into the low bytes (host bits are zero, so this is an OR with carry). */
    for (unsigned b = nbytes; b-- > 0 && i;) {
        unsigned v = addr[b] + (unsigned)(i & 0xff);
        addr[b] = (uint8_t)v;
        i = (i >> 8) + (v >> 8);
    }
}

uint64_t net_prefix_index(const struct net_prefix *p, const uint8_t addr[16])
{
    unsigned nbytes = addr_bits(p->family) / 8;
    uint64_t v = 0;
    for (unsigned b = nbytes > 8 ? nbytes - 8 : 0; b < nbytes; b++)
        v = (v << 8) | addr[b];
    unsigned host = addr_bits(p->family) - p->len;
    return host >= 64 ? v : v & ((1ULL << host) - 1);
}

uint64_t net_prefix_capacity(const struct net_prefix *p)
{
    unsigned host = addr_bits(p->family) - p->len;
    if (host < 2)
        return 0;
    if (host > 20) /* a million members is more than any bridge takes */
        host = 20;
    return (1ULL << host) - 3; /* network, gateway, broadcast */
}

uint64_t net_pick_index(const struct net_prefix *p, const uint64_t *used, size_t n_used)
{
    uint64_t cap = net_prefix_capacity(p);
    for (uint64_t i = 2; i < cap + 2; i++) {
        bool taken = false;
        for (size_t k = 0; k < n_used && !taken; k++)
            taken = used[k] == i;
        if (!taken)
            return i;
    }
    return 0;
}

int net_pick_subnet(const struct net_prefix *avoid, size_t n_avoid, struct net_prefix *out,
                    hull_error *err)
{
    struct net_prefix podman;
    if (net_prefix_parse(NET_PODMAN_SUBNET, AF_INET, &podman, err) < 0)
        return -1;
    for (unsigned b = 89; b < 255; b++) {
        for (unsigned c = 0; c < 256; c++) {
            struct net_prefix cand = {.family = AF_INET, .len = 24};
            cand.addr[0] = 10;
            cand.addr[1] = (uint8_t)b;
            cand.addr[2] = (uint8_t)c;
            bool clash = net_prefix_overlap(&cand, &podman);
            for (size_t i = 0; i < n_avoid && !clash; i++)
                clash = net_prefix_overlap(&cand, &avoid[i]);
            if (!clash) {
                *out = cand;
                return 0;
            }
        }
    }
    return hull_error_set(err, EADDRNOTAVAIL, "no free /24 in 10.89.0.0-10.254.255.0");
}

int net_mac_linklocal(const char *mac, uint8_t addr[16])
{
    unsigned m[6];
    if (sscanf(mac, "%2x:%2x:%2x:%2x:%2x:%2x", &m[0], &m[1], &m[2], &m[3], &m[4], &m[5]) != 6)
        return -1;
    memset(addr, 0, 16);
    addr[0] = 0xfe;
    addr[1] = 0x80;
    addr[8] = (uint8_t)(m[0] ^ 0x02);
    addr[9] = (uint8_t)m[1];
    addr[10] = (uint8_t)m[2];
    addr[11] = 0xff;
    addr[12] = 0xfe;
    addr[13] = (uint8_t)m[3];
    addr[14] = (uint8_t)m[4];
    addr[15] = (uint8_t)m[5];
    return 0;
}
