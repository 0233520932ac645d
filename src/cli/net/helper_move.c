/* hull-net --helper move-in/move-out: OCI linux.netDevices.
 *
 * move-in  {"name": host name, "new_name"?: name inside} + the container's
 *          netns fd -> {"ifname": the name it got inside}
 * move-out {"name": name inside, "new_name": host name} + the netns fd
 *
 * A move to another network namespace takes the interface down and drops
 * its addresses; the runtime-spec wants the permanent global ones kept and
 * the interface up inside, so both are read before the move and put back
 * after it, on whichever side it landed. Two netlink sockets: one in the
 * host's namespace (this process's), one opened inside the container's
 * (setns there and straight back; a socket stays in the namespace it was
 * made in). */
#include <errno.h>
#include <fcntl.h>
#include <libmnl/libmnl.h>
#include <linux/if_addr.h>
#include <linux/if_link.h>
#include <linux/rtnetlink.h>
#include <net/if.h>
#include <sched.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "net_cli.h"
#include "spec/spec.h"
#include "util/json.h"

#define MAX_ADDRS 64

struct addr {
    struct ifaddrmsg ifa;
    uint32_t flags;
    bool has_local, has_address, has_brd;
    uint8_t local[16], address[16], brd[4];
};

struct link {
    int index;
    unsigned flags;
    char name[IFNAMSIZ];
};

struct nl {
    struct mnl_socket *s;
    unsigned seq;
};

static void nl_close(struct nl *n)
{
    if (n->s)
        mnl_socket_close(n->s);
    n->s = NULL;
}
#define cleanup_nl __attribute__((cleanup(nl_close)))

static int nl_open(struct nl *n, hull_error *err)
{
    n->s = mnl_socket_open(NETLINK_ROUTE);
    if (n->s == NULL || mnl_socket_bind(n->s, 0, MNL_SOCKET_AUTOPID) < 0)
        return hull_error_errno(err, "netlink socket");
    return 0;
}

/* One request and its answers through cb, to the ack or the dump's end:
 * 0, or -1 with errno the kernel's. */
static int talk(struct nl *n, struct nlmsghdr *nlh, mnl_cb_t cb, void *data)
{
    nlh->nlmsg_seq = ++n->seq;
    /* Acked unless a dump (which ends in NLMSG_DONE). Not told apart by
     * the flags: NLM_F_DUMP's bits are NLM_F_REPLACE|NLM_F_EXCL on a NEW. */
    if (nlh->nlmsg_type != RTM_GETADDR)
        nlh->nlmsg_flags |= NLM_F_ACK;
    if (mnl_socket_sendto(n->s, nlh, nlh->nlmsg_len) < 0)
        return -1;
    unsigned portid = mnl_socket_get_portid(n->s);
    char buf[32768];
    for (;;) {
        ssize_t got = mnl_socket_recvfrom(n->s, buf, sizeof(buf));
        if (got < 0)
            return -1;
        int r = mnl_cb_run(buf, (size_t)got, n->seq, portid, cb, data);
        if (r < 0)
            return -1;
        if (r == MNL_CB_STOP)
            return 0;
    }
}

static int link_attr(const struct nlattr *a, void *data)
{
    struct link *l = data;
    if (mnl_attr_get_type(a) == IFLA_IFNAME && mnl_attr_validate(a, MNL_TYPE_NUL_STRING) == 0)
        snprintf(l->name, sizeof(l->name), "%s", mnl_attr_get_str(a));
    return MNL_CB_OK;
}

static int link_cb(const struct nlmsghdr *nlh, void *data)
{
    struct link *l = data;
    const struct ifinfomsg *ifi = mnl_nlmsg_get_payload(nlh);
    l->index = ifi->ifi_index;
    l->flags = ifi->ifi_flags;
    mnl_attr_parse(nlh, sizeof(*ifi), link_attr, l);
    return MNL_CB_OK;
}

/* An interface by name (index 0) or index: 0, or -1 with errno (ENODEV). */
static int link_get(struct nl *n, const char *name, int index, struct link *out)
{
    char buf[MNL_SOCKET_BUFFER_SIZE];
    struct nlmsghdr *nlh = mnl_nlmsg_put_header(buf);
    nlh->nlmsg_type = RTM_GETLINK;
    nlh->nlmsg_flags = NLM_F_REQUEST;
    struct ifinfomsg *ifi = mnl_nlmsg_put_extra_header(nlh, sizeof(*ifi));
    ifi->ifi_family = AF_UNSPEC;
    ifi->ifi_index = index;
    if (name)
        mnl_attr_put_strz(nlh, IFLA_IFNAME, name);
    memset(out, 0, sizeof(*out));
    if (talk(n, nlh, link_cb, out) < 0)
        return -1;
    if (out->index == 0) {
        errno = ENODEV;
        return -1;
    }
    return 0;
}

/* RTM_NEWLINK on one interface: into netns_fd (>= 0), renamed (name not
 * NULL), up (set_up). */
static int link_change(struct nl *n, int index, int netns_fd, const char *name, bool set_up)
{
    char buf[MNL_SOCKET_BUFFER_SIZE];
    struct nlmsghdr *nlh = mnl_nlmsg_put_header(buf);
    nlh->nlmsg_type = RTM_NEWLINK;
    nlh->nlmsg_flags = NLM_F_REQUEST;
    struct ifinfomsg *ifi = mnl_nlmsg_put_extra_header(nlh, sizeof(*ifi));
    ifi->ifi_family = AF_UNSPEC;
    ifi->ifi_index = index;
    if (set_up) {
        ifi->ifi_flags = IFF_UP;
        ifi->ifi_change = IFF_UP;
    }
    if (netns_fd >= 0)
        mnl_attr_put_u32(nlh, IFLA_NET_NS_FD, (uint32_t)netns_fd);
    if (name)
        mnl_attr_put_strz(nlh, IFLA_IFNAME, name);
    return talk(n, nlh, NULL, NULL);
}

struct addr_list {
    int index;
    size_t n;
    struct addr a[MAX_ADDRS];
};

static int addr_attr(const struct nlattr *at, void *data)
{
    struct addr *a = data;
    size_t len = mnl_attr_get_payload_len(at);
    size_t want = a->ifa.ifa_family == AF_INET ? 4 : 16;
    switch (mnl_attr_get_type(at)) {
    case IFA_LOCAL:
        if (len == want) {
            memcpy(a->local, mnl_attr_get_payload(at), len);
            a->has_local = true;
        }
        break;
    case IFA_ADDRESS:
        if (len == want) {
            memcpy(a->address, mnl_attr_get_payload(at), len);
            a->has_address = true;
        }
        break;
    case IFA_BROADCAST:
        if (len == 4) {
            memcpy(a->brd, mnl_attr_get_payload(at), 4);
            a->has_brd = true;
        }
        break;
    case IFA_FLAGS:
        if (len == 4)
            a->flags = mnl_attr_get_u32(at);
        break;
    }
    return MNL_CB_OK;
}

/* runtime-spec: the permanent addresses of global scope travel along. */
static int addr_cb(const struct nlmsghdr *nlh, void *data)
{
    struct addr_list *l = data;
    const struct ifaddrmsg *ifa = mnl_nlmsg_get_payload(nlh);
    if ((int)ifa->ifa_index != l->index || ifa->ifa_scope != RT_SCOPE_UNIVERSE ||
        (ifa->ifa_family != AF_INET && ifa->ifa_family != AF_INET6) || l->n == MAX_ADDRS)
        return MNL_CB_OK;
    struct addr a = {.ifa = *ifa, .flags = ifa->ifa_flags};
    mnl_attr_parse(nlh, sizeof(*ifa), addr_attr, &a);
    if ((a.flags & IFA_F_PERMANENT) && (a.has_local || a.has_address))
        l->a[l->n++] = a;
    return MNL_CB_OK;
}

static int addrs_read(struct nl *n, int index, struct addr_list *out)
{
    char buf[MNL_SOCKET_BUFFER_SIZE];
    struct nlmsghdr *nlh = mnl_nlmsg_put_header(buf);
    nlh->nlmsg_type = RTM_GETADDR;
    nlh->nlmsg_flags = NLM_F_REQUEST | NLM_F_DUMP;
    struct ifaddrmsg *ifa = mnl_nlmsg_put_extra_header(nlh, sizeof(*ifa));
    ifa->ifa_family = AF_UNSPEC;
    out->index = index;
    out->n = 0;
    return talk(n, nlh, addr_cb, out);
}

/* The flags one may ask for (the kernel's own state bits, tentative and
 * the like, are not). */
#define ADDR_FLAGS_ASKABLE                                                                         \
    (IFA_F_NODAD | IFA_F_HOMEADDRESS | IFA_F_MANAGETEMPADDR | IFA_F_NOPREFIXROUTE |                \
     IFA_F_MCAUTOJOIN)

static int addrs_write(struct nl *n, int index, const struct addr_list *l)
{
    for (size_t i = 0; i < l->n; i++) {
        const struct addr *a = &l->a[i];
        size_t alen = a->ifa.ifa_family == AF_INET ? 4 : 16;
        char buf[MNL_SOCKET_BUFFER_SIZE];
        struct nlmsghdr *nlh = mnl_nlmsg_put_header(buf);
        nlh->nlmsg_type = RTM_NEWADDR;
        nlh->nlmsg_flags = NLM_F_REQUEST | NLM_F_CREATE | NLM_F_REPLACE;
        struct ifaddrmsg *ifa = mnl_nlmsg_put_extra_header(nlh, sizeof(*ifa));
        *ifa = a->ifa;
        ifa->ifa_index = (unsigned)index;
        uint32_t flags = a->flags & ADDR_FLAGS_ASKABLE;
        ifa->ifa_flags = (uint8_t)flags;
        if (a->has_local)
            mnl_attr_put(nlh, IFA_LOCAL, alen, a->local);
        if (a->has_address)
            mnl_attr_put(nlh, IFA_ADDRESS, alen, a->address);
        if (a->has_brd)
            mnl_attr_put(nlh, IFA_BROADCAST, 4, a->brd);
        mnl_attr_put_u32(nlh, IFA_FLAGS, flags);
        if (talk(n, nlh, NULL, NULL) < 0)
            return -1;
    }
    return 0;
}

/* A netlink socket in the network namespace netns_fd. setns() and back:
 * this helper is single-threaded, and the socket keeps the namespace it
 * was made in. */
static int nl_open_in(int netns_fd, int host_fd, struct nl *n, hull_error *err)
{
    if (setns(netns_fd, CLONE_NEWNET) < 0)
        return hull_error_errno(err, "enter the container's network namespace");
    int r = nl_open(n, err);
    if (setns(host_fd, CLONE_NEWNET) < 0) {
        /* Nothing may be done from the wrong namespace: stop here. */
        hull_error_free(err);
        return hull_error_errno(err, "return to the host's network namespace");
    }
    return r;
}

struct move_ctx {
    int netns_fd, host_fd;
    struct nl host, inner;
};

static int ctx_open(struct move_ctx *c, int fd_in, hull_error *err)
{
    c->netns_fd = fd_in;
    c->host_fd = open("/proc/self/ns/net", O_RDONLY | O_CLOEXEC);
    if (fd_in < 0)
        return hull_error_set(err, EINVAL, "no network namespace was passed");
    if (c->host_fd < 0)
        return hull_error_errno(err, "open /proc/self/ns/net");
    if (nl_open(&c->host, err) < 0 || nl_open_in(c->netns_fd, c->host_fd, &c->inner, err) < 0)
        return -1;
    return 0;
}

static void ctx_close(struct move_ctx *c)
{
    nl_close(&c->host);
    nl_close(&c->inner);
    if (c->netns_fd >= 0)
        close(c->netns_fd);
    if (c->host_fd >= 0)
        close(c->host_fd);
}

/* Put back what a failed move-in did: the interface at index inside goes
 * home under its name, with its addresses. Best effort (the error that
 * got us here is the one reported). */
static void move_in_undo(struct move_ctx *c, int index, const char *name,
                         const struct addr_list *addrs, bool was_up)
{
    struct link l;
    if (link_change(&c->inner, index, c->host_fd, name, false) < 0 ||
        link_get(&c->host, name, 0, &l) < 0) {
        fprintf(stderr, "hull: network move-in: could not move %s back: %s\n", name,
                strerror(errno));
        return;
    }
    addrs_write(&c->host, l.index, addrs);
    if (was_up)
        link_change(&c->host, l.index, -1, NULL, true);
}

static int move_in(struct move_ctx *c, const char *name, const char *new_name, char *got,
                   hull_error *err)
{
    struct link hl, il;
    struct addr_list addrs;
    const char *target = new_name ? new_name : name;
    bool templ = strchr(target, '%') != NULL;
    if (link_get(&c->host, name, 0, &hl) < 0)
        return errno == ENODEV ? hull_error_set(err, ENODEV, "no interface '%s' on the host", name)
                               : hull_error_errno(err, "look up %s", name);
    if (!templ && link_get(&c->inner, target, 0, &il) == 0)
        return hull_error_set(err, EEXIST, "the container already has an interface named '%s'",
                              target);
    /* Read before the move, which drops them. */
    if (addrs_read(&c->host, hl.index, &addrs) < 0)
        return hull_error_errno(err, "read the addresses of %s", name);
    /* One kernel step out of the host's netns into the container's: every
     * failure after it sends the device home (move_in_undo). A template is
     * resolved inside, once it is there under a name we know: the host's. */
    if (link_change(&c->host, hl.index, c->netns_fd, templ ? NULL : target, false) < 0)
        return hull_error_errno(err, "move %s into the container", name);
    const char *step = "find";
    int index = 0;
    if (link_get(&c->inner, templ ? name : target, 0, &il) == 0) {
        index = il.index;
        step = "rename";
        if ((!templ || (link_change(&c->inner, index, -1, target, false) == 0 &&
                        link_get(&c->inner, NULL, index, &il) == 0)) &&
            (step = "address", addrs_write(&c->inner, index, &addrs) == 0) &&
            (step = "bring up", link_change(&c->inner, index, -1, NULL, true) == 0)) {
            snprintf(got, IFNAMSIZ, "%s", il.name);
            return 0;
        }
    }
    hull_error_errno(err, "%s %s in the container", step, name);
    if (index)
        move_in_undo(c, index, name, &addrs, hl.flags & IFF_UP);
    return -1;
}

static int move_out(struct move_ctx *c, const char *inside, const char *name, hull_error *err)
{
    struct link il, hl;
    struct addr_list addrs;
    if (link_get(&c->inner, inside, 0, &il) < 0)
        return errno == ENODEV
                   ? hull_error_set(err, ENODEV, "no interface '%s' in the container", inside)
                   : hull_error_errno(err, "look up %s in the container", inside);
    if (link_get(&c->host, name, 0, &hl) == 0)
        return hull_error_set(err, EEXIST,
                              "the host has an interface named '%s' again; %s stays in the "
                              "container",
                              name, inside);
    if (addrs_read(&c->inner, il.index, &addrs) < 0)
        return hull_error_errno(err, "read the addresses of %s", inside);
    /* Home under its own name, checked free above: the kernel refuses a
     * name taken meanwhile, and the device then stays where it is. */
    if (link_change(&c->inner, il.index, c->host_fd, name, false) < 0)
        return hull_error_errno(err, "move %s back to the host", inside);
    if (link_get(&c->host, name, 0, &hl) < 0)
        return hull_error_errno(err, "find %s on the host", name);
    if (addrs_write(&c->host, hl.index, &addrs) < 0)
        return hull_error_errno(err, "give %s back its addresses", name);
    if ((il.flags & IFF_UP) && link_change(&c->host, hl.index, -1, NULL, true) < 0)
        return hull_error_errno(err, "bring %s up", name);
    return 0;
}

static int move_verb(int sock, json_object *req, int fd_in, bool in, hull_error *err)
{
    const char *name = json_object_get_string(hj_get(req, "name"));
    const char *new_name = json_object_get_string(hj_get(req, "new_name"));
    if (name == NULL || !hull_ifname_valid(name, false) ||
        (new_name && !hull_ifname_valid(new_name, in)) || (!in && new_name == NULL)) {
        if (fd_in >= 0)
            close(fd_in);
        return hull_error_set(err, EINVAL, "network helper: a request without valid names");
    }
    /* From here the context owns fd_in. */
    struct move_ctx c = {.netns_fd = -1, .host_fd = -1};
    char got[IFNAMSIZ] = "";
    int r = ctx_open(&c, fd_in, err);
    if (r == 0)
        r = in ? move_in(&c, name, new_name, got, err) : move_out(&c, name, new_name, err);
    ctx_close(&c);
    if (r < 0)
        return -1;
    json_object *extra = json_object_new_object();
    if (in)
        json_object_object_add(extra, "ifname", json_object_new_string(got));
    return netcli_reply(sock, extra, -1, err);
}

int net_helper_move_in(int sock, json_object *req, int fd_in, hull_error *err)
{
    return move_verb(sock, req, fd_in, true, err);
}

int net_helper_move_out(int sock, json_object *req, int fd_in, hull_error *err)
{
    return move_verb(sock, req, fd_in, false, err);
}
