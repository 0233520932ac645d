/* The connection-tracking entries of a member's address, deleted when the
 * member leaves (ctnetlink through libmnl).
 *
 * A member's address goes to the next member at once (the lowest free one
 * is handed out). A flow the old member had would then be the new one's:
 * an established TCP entry lives for days, a UDP one for minutes, and the
 * forward chain's "ct state established,related accept" lets its packets
 * in whatever the new member's egress says. So once a member's link and
 * rules are gone (nothing makes new entries for it) and before its lease
 * goes (nothing takes its address yet), every entry whose original source
 * or reply source is the address is deleted: its own connections out, and
 * those made to it, published ports included (their reply source is the
 * member). */
#include <net/if.h>
#include <netinet/in.h>

#include <errno.h>
#include <linux/netfilter.h>
#include <linux/netfilter/nfnetlink.h>
#include <linux/netfilter/nfnetlink_conntrack.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "net/net_int.h"

/* The kernel's CTA_FILTER_F_CTA_IP_SRC (nf_conntrack_netlink.c; not in the
 * uapi headers): filter a dump on the tuple's source address. */
#define CT_FILTER_IP_SRC (1u << 0)

/* One entry to delete: its original tuple as the kernel sent it, and its
 * zone (an entry is found by both). */
struct ct_entry {
    uint8_t tuple[256];
    uint16_t tuple_len;
    bool has_zone;
    uint16_t zone; /* network byte order, as sent */
};

struct ct_list {
    struct ct_entry *v;
    size_t n, cap;
    bool oom;
    /* What the dump asked for: a kernel without dump filters (before 5.9)
     * sends every entry, so each is checked here too. */
    int family, dir;
    const uint8_t *addr;
};

/* The source address in tuple attribute t (CTA_TUPLE_ORIG or _REPLY) is
 * the list's address. */
static bool tuple_source_is(const struct nlattr *t, const struct ct_list *l)
{
    const struct nlattr *a, *b;
    uint16_t want = l->family == AF_INET ? CTA_IP_V4_SRC : CTA_IP_V6_SRC;
    size_t len = l->family == AF_INET ? 4 : 16;
    mnl_attr_for_each_nested(a, t)
    {
        if (mnl_attr_get_type(a) != CTA_TUPLE_IP)
            continue;
        mnl_attr_for_each_nested(b, a)
        {
            if (mnl_attr_get_type(b) == want && mnl_attr_get_payload_len(b) == len)
                return memcmp(mnl_attr_get_payload(b), l->addr, len) == 0;
        }
    }
    return false;
}

static int entry_cb(const struct nlmsghdr *h, void *data)
{
    struct ct_list *l = data;
    struct ct_entry e = {0};
    bool match = false;
    const struct nlattr *a;
    mnl_attr_for_each(a, h, sizeof(struct nfgenmsg))
    {
        uint16_t type = mnl_attr_get_type(a);
        if (type == l->dir)
            match = tuple_source_is(a, l);
        if (type == CTA_TUPLE_ORIG && mnl_attr_get_payload_len(a) <= sizeof(e.tuple)) {
            e.tuple_len = mnl_attr_get_payload_len(a);
            memcpy(e.tuple, mnl_attr_get_payload(a), e.tuple_len);
        } else if (type == CTA_ZONE && mnl_attr_get_payload_len(a) >= sizeof(uint16_t)) {
            e.has_zone = true;
            memcpy(&e.zone, mnl_attr_get_payload(a), sizeof(e.zone));
        }
    }
    if (e.tuple_len == 0 || !match)
        return MNL_CB_OK;
    if (l->n == l->cap) {
        size_t cap = l->cap ? l->cap * 2 : 16;
        struct ct_entry *v = realloc(l->v, cap * sizeof(*v));
        if (v == NULL) {
            l->oom = true;
            return MNL_CB_ERROR;
        }
        l->v = v;
        l->cap = cap;
    }
    l->v[l->n++] = e;
    return MNL_CB_OK;
}

static struct nlmsghdr *ct_msg(char *buf, int type, int flags, int family)
{
    struct nlmsghdr *h = mnl_nlmsg_put_header(buf);
    h->nlmsg_type = (uint16_t)((NFNL_SUBSYS_CTNETLINK << 8) | type);
    h->nlmsg_flags = (uint16_t)(NLM_F_REQUEST | flags);
    struct nfgenmsg *g = mnl_nlmsg_put_extra_header(h, sizeof(*g));
    g->nfgen_family = (uint8_t)family;
    g->version = NFNETLINK_V0;
    g->res_id = 0;
    return h;
}

/* The entries whose tuple in direction dir (CTA_TUPLE_ORIG or _REPLY) has
 * addr as its source, filtered by the kernel. */
static int dump_by_source(struct nl *n, int family, const uint8_t addr[16], int dir,
                          struct ct_list *l)
{
    char buf[MNL_SOCKET_BUFFER_SIZE];
    l->family = family;
    l->dir = dir;
    l->addr = addr;
    struct nlmsghdr *h = ct_msg(buf, IPCTNL_MSG_CT_GET, NLM_F_DUMP, family);
    struct nlattr *tuple = mnl_attr_nest_start(h, (uint16_t)dir);
    struct nlattr *ip = mnl_attr_nest_start(h, CTA_TUPLE_IP);
    if (family == AF_INET)
        mnl_attr_put(h, CTA_IP_V4_SRC, 4, addr);
    else
        mnl_attr_put(h, CTA_IP_V6_SRC, 16, addr);
    mnl_attr_nest_end(h, ip);
    mnl_attr_nest_end(h, tuple);
    struct nlattr *filter = mnl_attr_nest_start(h, CTA_FILTER);
    mnl_attr_put_u32(h, dir == CTA_TUPLE_ORIG ? CTA_FILTER_ORIG_FLAGS : CTA_FILTER_REPLY_FLAGS,
                     CT_FILTER_IP_SRC);
    mnl_attr_put_u32(h, dir == CTA_TUPLE_ORIG ? CTA_FILTER_REPLY_FLAGS : CTA_FILTER_ORIG_FLAGS, 0);
    mnl_attr_nest_end(h, filter);
    return nl_exchange(n, h, entry_cb, l);
}

static int delete_entry(struct nl *n, int family, const struct ct_entry *e)
{
    char buf[MNL_SOCKET_BUFFER_SIZE];
    struct nlmsghdr *h = ct_msg(buf, IPCTNL_MSG_CT_DELETE, NLM_F_ACK, family);
    mnl_attr_put(h, CTA_TUPLE_ORIG | NLA_F_NESTED, e->tuple_len, e->tuple);
    if (e->has_zone)
        mnl_attr_put(h, CTA_ZONE, sizeof(e->zone), &e->zone);
    return nl_exchange(n, h, NULL, NULL);
}

/* The entries of one direction (dir) whose source is addr, deleted. */
static int forget_dir(int family, const uint8_t addr[16], int dir, hull_error *err)
{
    cleanup_nl struct nl n = {0};
    if (nl_open_bus(&n, NETLINK_NETFILTER, err) < 0)
        return hull_error_prefix(err, "conntrack");
    struct ct_list l = {0};
    int rc = dump_by_source(&n, family, addr, dir, &l);
    if (rc < 0) {
        int e = errno;
        free(l.v);
        /* No conntrack in this kernel (or not loaded): nothing is tracked. */
        if (!l.oom && (e == ENOENT || e == EOPNOTSUPP || e == ENOTSUP || e == EPROTONOSUPPORT))
            return 0;
        if (l.oom)
            return hull_error_set(err, ENOMEM, "conntrack: out of memory");
        return hull_error_set(err, e, "conntrack: list the entries of a leaving address: %s",
                              strerror(e));
    }
    /* One that expired since is ENOENT. */
    for (size_t i = 0; i < l.n && rc == 0; i++)
        if (delete_entry(&n, family, &l.v[i]) < 0 && errno != ENOENT)
            rc = hull_error_errno(err, "conntrack: delete an entry of a leaving address");
    free(l.v);
    return rc;
}

int nl_conntrack_forget(int family, const uint8_t addr[16], hull_error *err)
{
    /* Each dump walks every bucket of the host's table (milliseconds on a
     * large one, whatever it holds), so the two directions go at once: the
     * replies' in a child (the callers are single-threaded helpers and
     * CLI verbs). A child that fails is done again here, for its error. */
    pid_t child = fork();
    if (child == 0)
        _exit(forget_dir(family, addr, CTA_TUPLE_REPLY, NULL) == 0 ? 0 : 1);
    int rc = forget_dir(family, addr, CTA_TUPLE_ORIG, err);
    int status = -1;
    while (child > 0 && waitpid(child, &status, 0) < 0 && errno == EINTR)
        ;
    bool reply_done = child > 0 && WIFEXITED(status) && WEXITSTATUS(status) == 0;
    if (rc == 0 && !reply_done)
        rc = forget_dir(family, addr, CTA_TUPLE_REPLY, err);
    return rc;
}
