/* --egress and --publish syntax, network names, and the /etc files of a
 * network member (docs/network.md). No libmnl/libnftables here: the static
 * hull's run path links this file (src/lib/net/net.h). */
#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <json-c/json.h>

#include "net/net.h"
#include "util/error.h"

/* Longest item we quote or copy: an IPv6 CIDR in brackets plus port and
 * protocol fits easily; anything longer is an error anyway. */
#define ITEM_MAX 96

/* 1 to max_digits decimal digits (no sign, no space) as a number. */
static bool parse_digits(const char *s, size_t len, size_t max_digits, unsigned *out)
{
    if (len == 0 || len > max_digits)
        return false;
    unsigned v = 0;
    for (size_t i = 0; i < len; i++) {
        if (s[i] < '0' || s[i] > '9')
            return false;
        v = v * 10 + (unsigned)(s[i] - '0');
    }
    *out = v;
    return true;
}

/* "1".."65535", decimal digits only. */
static bool parse_port(const char *s, size_t len, uint16_t *out)
{
    unsigned v;
    if (!parse_digits(s, len, 5, &v) || v < 1 || v > 65535)
        return false;
    *out = (uint16_t)v;
    return true;
}

/* "0".."max", decimal digits only. */
static bool parse_prefix(const char *s, unsigned max, unsigned *out)
{
    unsigned v;
    if (!parse_digits(s, strlen(s), 3, &v))
        return false;
    if (v > max)
        return false;
    *out = v;
    return true;
}

/* ADDR or ADDR/LEN of one family (family 0: whichever parses). */
static int parse_cidr(const char *item, const char *s, int family, struct hull_egress_rule *r,
                      hull_error *err)
{
    char addr[INET6_ADDRSTRLEN + 8];
    const char *slash = strchr(s, '/');
    size_t alen = slash ? (size_t)(slash - s) : strlen(s);
    if (alen == 0 || alen >= sizeof(addr))
        return hull_error_set(err, EINVAL, "egress rule \"%s\": no valid address", item);
    memcpy(addr, s, alen);
    addr[alen] = '\0';
    memset(r->addr, 0, sizeof(r->addr));
    if ((family == 0 || family == AF_INET) && inet_pton(AF_INET, addr, r->addr) == 1)
        r->family = AF_INET;
    else if ((family == 0 || family == AF_INET6) && inet_pton(AF_INET6, addr, r->addr) == 1)
        r->family = AF_INET6;
    else
        return hull_error_set(err, EINVAL, "egress rule \"%s\": \"%s\" is not an IP%s address",
                              item, addr, family == AF_INET6 ? "v6" : "");
    unsigned max = r->family == AF_INET ? 32 : 128;
    r->prefix = max;
    if (slash && !parse_prefix(slash + 1, max, &r->prefix))
        return hull_error_set(err, EINVAL,
                              "egress rule \"%s\": prefix length \"%s\" is not a number 0-%u", item,
                              slash + 1, max);
    /* Host bits beyond the prefix are almost always a typo for another
     * network: say so instead of silently widening or narrowing the rule. */
    for (unsigned bit = r->prefix; bit < max; bit++) {
        if (r->addr[bit / 8] & (0x80u >> (bit % 8))) {
            uint8_t net[16];
            memcpy(net, r->addr, sizeof(net));
            for (unsigned b = r->prefix; b < max; b++)
                net[b / 8] &= (uint8_t) ~(0x80u >> (b % 8));
            char txt[INET6_ADDRSTRLEN];
            inet_ntop(r->family, net, txt, sizeof(txt));
            return hull_error_set(err, EINVAL,
                                  "egress rule \"%s\": address has bits set beyond the /%u prefix "
                                  "(the network is %s/%u)",
                                  item, r->prefix, txt, r->prefix);
        }
    }
    return 0;
}

/* ":PORT[/PROTO]" or "" after the address part. */
static int parse_port_proto(const char *item, const char *s, struct hull_egress_rule *r,
                            hull_error *err)
{
    r->port = 0;
    r->proto = 0;
    if (*s == '\0')
        return 0;
    if (*s != ':')
        return hull_error_set(err, EINVAL,
                              "egress rule \"%s\": expected CIDR[:PORT[/tcp|udp]] (IPv6 as "
                              "[ADDR/LEN]:PORT/PROTO)",
                              item);
    s++;
    const char *slash = strchr(s, '/');
    size_t plen = slash ? (size_t)(slash - s) : strlen(s);
    if (!parse_port(s, plen, &r->port))
        return hull_error_set(err, EINVAL, "egress rule \"%s\": port \"%.*s\" is not 1-65535", item,
                              (int)plen, s);
    if (!slash)
        return 0;
    if (strcmp(slash + 1, "tcp") == 0)
        r->proto = IPPROTO_TCP;
    else if (strcmp(slash + 1, "udp") == 0)
        r->proto = IPPROTO_UDP;
    else
        return hull_error_set(err, EINVAL, "egress rule \"%s\": protocol \"%s\" is not tcp or udp",
                              item, slash + 1);
    return 0;
}

/* One CIDR[:PORT[/PROTO]] item (already trimmed, not "all"). */
static int parse_rule(const char *item, struct hull_egress_rule *r, hull_error *err)
{
    char addr[ITEM_MAX];
    const char *rest;
    int family = 0;
    if (item[0] == '[') {
        const char *close = strchr(item, ']');
        if (!close)
            return hull_error_set(err, EINVAL, "egress rule \"%s\": missing ']'", item);
        size_t n = (size_t)(close - item - 1);
        if (n >= sizeof(addr))
            return hull_error_set(err, EINVAL, "egress rule \"%s\": address too long", item);
        memcpy(addr, item + 1, n);
        addr[n] = '\0';
        rest = close + 1;
        family = AF_INET6;
    } else if (strchr(item, ':') != NULL && strchr(item, '.') == NULL) {
        /* An IPv6 CIDR without brackets (so without a port): "fd00::/8". */
        if (strlen(item) >= sizeof(addr))
            return hull_error_set(err, EINVAL, "egress rule \"%s\": address too long", item);
        strcpy(addr, item);
        rest = "";
        family = AF_INET6;
    } else {
        const char *colon = strchr(item, ':');
        size_t n = colon ? (size_t)(colon - item) : strlen(item);
        if (n >= sizeof(addr))
            return hull_error_set(err, EINVAL, "egress rule \"%s\": address too long", item);
        memcpy(addr, item, n);
        addr[n] = '\0';
        rest = item + n;
        family = AF_INET;
    }
    if (parse_cidr(item, addr, family, r, err) < 0)
        return -1;
    return parse_port_proto(item, rest, r, err);
}

int hull_egress_parse(const char *s, struct hull_egress *out, hull_error *err)
{
    struct hull_egress e = {0};
    /* No --egress at all is "all"; an empty one is a mistake (a variable
     * that expanded to nothing), not a wish for everything. */
    if (s != NULL && *s == '\0')
        return hull_error_set(err, EINVAL,
                              "egress: empty (say \"all\", \"none\" or CIDR[:PORT[/PROTO]],...)");
    if (s == NULL || strcmp(s, "all") == 0) {
        e.all = true;
        *out = e;
        return 0;
    }
    if (strcmp(s, "none") == 0) {
        *out = e;
        return 0;
    }
    const char *p = s;
    for (;;) {
        const char *comma = strchr(p, ',');
        size_t n = comma ? (size_t)(comma - p) : strlen(p);
        while (n > 0 && isspace((unsigned char)*p))
            p++, n--;
        while (n > 0 && isspace((unsigned char)p[n - 1]))
            n--;
        char item[ITEM_MAX];
        if (n == 0)
            return hull_error_set(err, EINVAL, "--egress \"%s\": empty rule", s);
        if (n >= sizeof(item))
            return hull_error_set(err, EINVAL, "egress rule \"%.*s\": too long", (int)n, p);
        memcpy(item, p, n);
        item[n] = '\0';
        if (strcmp(item, "all") == 0) {
            e.all = true;
        } else if (strcmp(item, "none") == 0) {
            return hull_error_set(err, EINVAL,
                                  "--egress \"%s\": \"none\" cannot be combined with rules", s);
        } else {
            if (e.n == HULL_NET_MAX_EGRESS)
                return hull_error_set(err, EINVAL, "--egress: more than %d rules",
                                      HULL_NET_MAX_EGRESS);
            if (parse_rule(item, &e.rules[e.n], err) < 0)
                return -1;
            e.n++;
        }
        if (!comma)
            break;
        p = comma + 1;
    }
    *out = e;
    return 0;
}

/* Append to buf at *off; false when it does not fit. */
static bool put(char *buf, size_t len, size_t *off, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static bool put(char *buf, size_t len, size_t *off, const char *fmt, ...)
{
    if (*off >= len)
        return false;
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(buf + *off, len - *off, fmt, ap);
    va_end(ap);
    if (n < 0 || (size_t)n >= len - *off)
        return false;
    *off += (size_t)n;
    return true;
}

int hull_egress_host_rule(const struct hull_egress *e)
{
    for (size_t i = 0; i < e->n; i++) {
        const struct hull_egress_rule *r = &e->rules[i];
        if (r->prefix != (r->family == AF_INET ? 32u : 128u))
            continue; /* the host chain takes exact addresses only (nft.c) */
        /* An address is the host's when a socket can be bound to it. */
        struct sockaddr_storage ss = {0};
        socklen_t len;
        if (r->family == AF_INET) {
            struct sockaddr_in *a = (struct sockaddr_in *)&ss;
            a->sin_family = AF_INET;
            memcpy(&a->sin_addr, r->addr, 4);
            len = sizeof(*a);
        } else {
            struct sockaddr_in6 *a = (struct sockaddr_in6 *)&ss;
            a->sin6_family = AF_INET6;
            memcpy(&a->sin6_addr, r->addr, 16);
            len = sizeof(*a);
        }
        /* Only "no such address here" (or no IPv6 at all) says it is not
         * the host's. Anything else counts as the host's, so the caller
         * asks for the grant: a link-local or multicast address cannot be
         * bound without a scope (EINVAL) and does reach the host, and a
         * failed socket() must not wave every rule through. */
        int fd = socket(r->family, SOCK_DGRAM | SOCK_CLOEXEC, 0);
        int bound = fd < 0 ? -1 : bind(fd, (struct sockaddr *)&ss, len);
        int why = errno;
        if (fd >= 0)
            close(fd);
        if (bound == 0 || (why != EADDRNOTAVAIL && why != EAFNOSUPPORT))
            return (int)i;
    }
    return -1;
}

int hull_egress_format(const struct hull_egress *e, char *buf, size_t len)
{
    size_t off = 0;
    if (len == 0)
        return -1;
    buf[0] = '\0';
    if (e->n == 0)
        return put(buf, len, &off, "%s", e->all ? "all" : "none") ? 0 : -1;
    if (e->all && !put(buf, len, &off, "all"))
        return -1;
    for (size_t i = 0; i < e->n; i++) {
        const struct hull_egress_rule *r = &e->rules[i];
        char a[INET6_ADDRSTRLEN];
        if ((r->family != AF_INET && r->family != AF_INET6) ||
            inet_ntop(r->family, r->addr, a, sizeof(a)) == NULL)
            return -1;
        /* A protocol needs a port in the syntax. */
        if (r->proto != 0 && r->port == 0)
            return -1;
        const char *sep = off ? "," : "";
        bool ok = r->family == AF_INET ? put(buf, len, &off, "%s%s/%u", sep, a, r->prefix)
                                       : put(buf, len, &off, "%s[%s/%u]", sep, a, r->prefix);
        if (ok && r->port)
            ok = put(buf, len, &off, ":%u", r->port);
        if (ok && r->proto)
            ok = put(buf, len, &off, "/%s", r->proto == IPPROTO_UDP ? "udp" : "tcp");
        if (!ok)
            return -1;
    }
    return 0;
}

bool hull_net_name_valid(const char *name)
{
    if (name == NULL || name[0] == '\0')
        return false;
    size_t len = strlen(name);
    if (len > HULL_NET_NAME_MAX)
        return false;
    if (!((name[0] >= 'a' && name[0] <= 'z') || (name[0] >= '0' && name[0] <= '9')))
        return false;
    for (size_t i = 1; i < len; i++) {
        char c = name[i];
        if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' || c == '.' || c == '-'))
            return false;
    }
    return strcmp(name, "none") != 0 && strcmp(name, "host") != 0;
}

/* A published port's host address, settled: 0.0.0.0 and :: are what
 * docker and podman take for "every address", so here too (as a
 * destination they match nothing), and the address becomes "". Then why
 * the address cannot take a published port, or NULL: no packet is ever
 * addressed to it as a destination on this host, or (link-local) it needs
 * an interface hull does not ask for. */
static const char *publish_addr_unusable(char *ip)
{
    if (strcmp(ip, "0.0.0.0") == 0 || strcmp(ip, "::") == 0)
        ip[0] = '\0';
    if (ip[0] == '\0')
        return NULL;
    struct in_addr a4;
    struct in6_addr a6;
    if (inet_pton(AF_INET, ip, &a4) == 1) {
        uint32_t a = ntohl(a4.s_addr);
        if (a == 0xffffffffu || (a >> 28) == 0xe)
            return "a broadcast or multicast address";
        return NULL;
    }
    if (inet_pton(AF_INET6, ip, &a6) == 1) {
        if (IN6_IS_ADDR_MULTICAST(&a6))
            return "a multicast address";
        if (IN6_IS_ADDR_LINKLOCAL(&a6))
            return "a link-local address (it needs an interface; use another address of the host)";
        if (IN6_IS_ADDR_V4MAPPED(&a6))
            return "an IPv4-mapped address (write the IPv4 address)";
    }
    return NULL;
}

int hull_publish_parse(const char *s, struct hull_publish *out, hull_error *err)
{
    struct hull_publish p = {0};
    if (s == NULL || *s == '\0')
        return hull_error_set(err, EINVAL, "--publish: empty value (want [HOSTIP:]HOSTPORT:PORT)");
    char buf[ITEM_MAX];
    if (strlen(s) >= sizeof(buf))
        return hull_error_set(err, EINVAL, "--publish \"%.40s...\": too long", s);
    strcpy(buf, s);

    char *proto = strchr(buf, '/');
    if (proto) {
        *proto++ = '\0';
        if (strcmp(proto, "udp") == 0)
            p.udp = true;
        else if (strcmp(proto, "tcp") != 0)
            return hull_error_set(err, EINVAL,
                                  "--publish \"%s\": protocol \"%s\" is not tcp or udp", s, proto);
    }
    char *ports = buf;
    if (buf[0] == '[') {
        char *close = strchr(buf, ']');
        if (!close || close[1] != ':')
            return hull_error_set(err, EINVAL,
                                  "--publish \"%s\": want [HOSTIP]:HOSTPORT:PORT for an IPv6 host "
                                  "address",
                                  s);
        *close = '\0';
        struct in6_addr a6;
        if (inet_pton(AF_INET6, buf + 1, &a6) != 1)
            return hull_error_set(err, EINVAL, "--publish \"%s\": \"%s\" is not an IPv6 address", s,
                                  buf + 1);
        inet_ntop(AF_INET6, &a6, p.host_ip, sizeof(p.host_ip));
        ports = close + 2;
    } else {
        char *c1 = strchr(buf, ':');
        char *c2 = c1 ? strchr(c1 + 1, ':') : NULL;
        if (c2 && strchr(c2 + 1, ':'))
            return hull_error_set(err, EINVAL,
                                  "--publish \"%s\": want [HOSTIP:]HOSTPORT:PORT[/tcp|udp] (an "
                                  "IPv6 host address in brackets)",
                                  s);
        if (c2) {
            *c1 = '\0';
            struct in_addr a4;
            if (inet_pton(AF_INET, buf, &a4) != 1)
                return hull_error_set(err, EINVAL,
                                      "--publish \"%s\": \"%s\" is not an IPv4 address", s, buf);
            inet_ntop(AF_INET, &a4, p.host_ip, sizeof(p.host_ip));
            ports = c1 + 1;
        }
    }
    const char *unusable = publish_addr_unusable(p.host_ip);
    if (unusable)
        return hull_error_set(err, EINVAL, "--publish \"%s\": %s is %s", s, p.host_ip, unusable);
    char *colon = strchr(ports, ':');
    if (!colon)
        return hull_error_set(err, EINVAL,
                              "--publish \"%s\": want [HOSTIP:]HOSTPORT:PORT[/tcp|udp]", s);
    if (!parse_port(ports, (size_t)(colon - ports), &p.host_port))
        return hull_error_set(err, EINVAL, "--publish \"%s\": host port \"%.*s\" is not 1-65535", s,
                              (int)(colon - ports), ports);
    if (!parse_port(colon + 1, strlen(colon + 1), &p.port))
        return hull_error_set(err, EINVAL, "--publish \"%s\": port \"%s\" is not 1-65535", s,
                              colon + 1);
    *out = p;
    return 0;
}

/* A hostname that can go into /etc/hosts as one field. */
static bool hostname_ok(const char *h)
{
    size_t len = strlen(h);
    if (len == 0 || len > 253)
        return false;
    for (size_t i = 0; i < len; i++)
        if (!(isalnum((unsigned char)h[i]) || h[i] == '-' || h[i] == '.' || h[i] == '_'))
            return false;
    return true;
}

/* dirfd/name truncated and written whole (created 0644 if missing). */
static int write_in_place(int dirfd, const char *name, const char *data, size_t len,
                          hull_error *err)
{
    cleanup_close int fd =
        openat(dirfd, name, O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC, 0644);
    if (fd < 0)
        return hull_error_errno(err, "network: %s", name);
    while (len > 0) {
        ssize_t w = write(fd, data, len);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return hull_error_errno(err, "network: write %s", name);
        data += w;
        len -= (size_t)w;
    }
    return 0;
}

int hull_net_write_etc(const struct hull_net_lease *lease, const char *hostname, int dirfd,
                       hull_error *err)
{
    if (hostname && *hostname && !hostname_ok(hostname))
        return hull_error_set(err, EINVAL, "network: hostname \"%s\" cannot go into /etc/hosts",
                              hostname);
    char resolv[512];
    size_t off = 0;
    if (!put(resolv, sizeof(resolv), &off, "# written by hull for network %s\n", lease->network))
        return hull_error_set(err, ENAMETOOLONG, "network: resolv.conf too long");
    for (size_t i = 0; i < lease->n_dns && i < HULL_NET_MAX_DNS; i++)
        if (lease->dns[i][0] &&
            !put(resolv, sizeof(resolv), &off, "nameserver %s\n", lease->dns[i]))
            return hull_error_set(err, ENAMETOOLONG, "network: resolv.conf too long");

    char hosts[1024];
    size_t hoff = 0;
    bool ok = put(hosts, sizeof(hosts), &hoff,
                  "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n");
    if (ok && hostname && *hostname && lease->ip4[0])
        ok = put(hosts, sizeof(hosts), &hoff, "%s\t%s\n", lease->ip4, hostname);
    if (ok && hostname && *hostname && lease->ip6[0])
        ok = put(hosts, sizeof(hosts), &hoff, "%s\t%s\n", lease->ip6, hostname);
    if (!ok)
        return hull_error_set(err, ENAMETOOLONG, "network: hosts too long");

    /* In place, not renamed over: a sandbox's /etc binds these very
     * inodes (sandbox/network.c) before the lease is known. A symlink at
     * the name is refused (O_NOFOLLOW), never followed. */
    if (write_in_place(dirfd, "resolv.conf", resolv, off, err) < 0 ||
        write_in_place(dirfd, "hosts", hosts, hoff, err) < 0)
        return -1;
    return 0;
}

struct json_object *hull_publish_to_json(const struct hull_publish *p, size_t n)
{
    json_object *a = json_object_new_array();
    for (size_t i = 0; i < n; i++) {
        json_object *e = json_object_new_object();
        json_object_object_add(e, "host_ip", json_object_new_string(p[i].host_ip));
        json_object_object_add(e, "host_port", json_object_new_int(p[i].host_port));
        json_object_object_add(e, "port", json_object_new_int(p[i].port));
        json_object_object_add(e, "proto", json_object_new_string(p[i].udp ? "udp" : "tcp"));
        json_object_array_add(a, e);
    }
    return a;
}

int hull_publish_from_json(struct json_object *a, struct hull_publish *p, size_t max, size_t *n,
                           hull_error *err)
{
    *n = 0;
    if (!a)
        return 0;
    if (!json_object_is_type(a, json_type_array) || json_object_array_length(a) > max)
        return hull_error_set(err, EINVAL, "publish: not an array of at most %zu", max);
    for (size_t i = 0; i < json_object_array_length(a); i++) {
        json_object *e = json_object_array_get_idx(a, i);
        struct hull_publish *x = &p[(*n)++];
        memset(x, 0, sizeof(*x));
        const char *ip = json_object_get_string(json_object_object_get(e, "host_ip"));
        snprintf(x->host_ip, sizeof(x->host_ip), "%s", ip ? ip : "");
        int hp = json_object_get_int(json_object_object_get(e, "host_port"));
        int pp = json_object_get_int(json_object_object_get(e, "port"));
        const char *proto = json_object_get_string(json_object_object_get(e, "proto"));
        if (hp < 1 || hp > 65535 || pp < 1 || pp > 65535)
            return hull_error_set(err, EINVAL, "publish: a port outside 1-65535");
        /* The address goes into an nft rule: an address and nothing else. */
        uint8_t addr[16];
        if (x->host_ip[0] && inet_pton(AF_INET, x->host_ip, addr) != 1 &&
            inet_pton(AF_INET6, x->host_ip, addr) != 1)
            return hull_error_set(err, EINVAL, "publish: '%s' is not an IP address", x->host_ip);
        const char *unusable = publish_addr_unusable(x->host_ip);
        if (unusable)
            return hull_error_set(err, EINVAL, "publish: %s is %s", x->host_ip, unusable);
        x->host_port = (uint16_t)hp;
        x->port = (uint16_t)pp;
        x->udp = proto && strcmp(proto, "udp") == 0;
    }
    return 0;
}
