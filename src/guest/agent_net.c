/* "net": the guest's side of a hull network (docs/vm.md, "Networks").
 *
 * The host made a TAP on one of its bridges, leased an address and gave
 * QEMU a virtio-net card with the lease's MAC; this request carries the
 * lease. The agent loads the driver (its modules are in the initramfs but
 * not loaded at boot, see initrd.c), finds the card, and configures it with
 * plain ioctls (the agent is static and links no netlink library):
 *
 *   down (drops the old routes, neighbours and IPv6 addresses of a guest
 *   restored from a snapshot), renamed to the lease's name, the lease's MAC
 *   (a restored guest still has the snapshot's; virtio-net passes the change
 *   to the device), MTU, no router advertisements or autoconfiguration (the
 *   host decides the addresses), up; the IPv4 address, netmask and default
 *   route; the IPv6 address and default route when the lease has one;
 *   loopback up; /etc/resolv.conf and /etc/hosts in the workload root.
 *
 * The same request serves a fresh boot and a restore, and may come again:
 * every step sets rather than adds.
 */
#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <net/if.h>
#include <net/if_arp.h>
#include <net/route.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "agent.h"

bool agent_net_up;

bool agent_net_is_up(void)
{
    return agent_net_up || access(AGENT_RUN "/net-up", F_OK) == 0;
}

/* linux/ipv6.h's struct in6_ifreq (that header clashes with glibc's). */
struct agent_in6_ifreq {
    struct in6_addr addr;
    uint32_t prefixlen;
    int ifindex;
};

static const char *req_str(json_object *req, const char *key)
{
    json_object *v;
    return json_object_object_get_ex(req, key, &v) && json_object_is_type(v, json_type_string)
               ? json_object_get_string(v)
               : "";
}

static int req_int(json_object *req, const char *key)
{
    json_object *v;
    return json_object_object_get_ex(req, key, &v) ? json_object_get_int(v) : 0;
}

/* The driver and what it needs, in order, as the host listed them. */
static int load_net_modules(char *why, size_t len)
{
    FILE *f = fopen("/hull/modules.net", "re");
    if (!f)
        return 0; /* built into this kernel */
    char line[256];
    int rc = 0;
    while (!rc && fgets(line, sizeof(line), f)) {
        line[strcspn(line, "\n")] = 0;
        if (!line[0])
            continue;
        char path[320];
        snprintf(path, sizeof(path), "/hull/modules/%s", line);
        int fd = open(path, O_RDONLY | O_CLOEXEC);
        if (fd < 0 || (syscall(SYS_finit_module, fd, "", 0) < 0 && errno != EEXIST)) {
            snprintf(why, len, "load module %s: %s", line, strerror(errno));
            rc = -1;
        }
        if (fd >= 0)
            close(fd);
    }
    fclose(f);
    return rc;
}

/* The card: the interface with the lease's MAC, else the only one with a
 * device behind it (a restored guest's card still has the snapshot's MAC). */
static int find_card(const char *mac, char name[IFNAMSIZ])
{
    uint64_t end = now_ms() + 10000;
    for (;;) {
        char other[IFNAMSIZ] = "";
        int others = 0;
        DIR *d = opendir("/sys/class/net");
        struct dirent *e;
        while (d && (e = readdir(d))) {
            if (e->d_name[0] == '.' || strlen(e->d_name) >= IFNAMSIZ)
                continue;
            char p[300], addr[64];
            snprintf(p, sizeof(p), "/sys/class/net/%s/device", e->d_name);
            if (access(p, F_OK) < 0)
                continue; /* lo and other virtual interfaces */
            snprintf(p, sizeof(p), "/sys/class/net/%s/address", e->d_name);
            if (read_text(p, addr, sizeof(addr)) > 0 && strncasecmp(addr, mac, 17) == 0) {
                snprintf(name, IFNAMSIZ, "%s", e->d_name);
                closedir(d);
                return 0;
            }
            snprintf(other, sizeof(other), "%s", e->d_name);
            others++;
        }
        if (d)
            closedir(d);
        if (others == 1) {
            snprintf(name, IFNAMSIZ, "%s", other);
            return 0;
        }
        if (others > 1 || now_ms() > end)
            return -1;
        usleep(2000);
    }
}

static int set_flags(int s, const char *ifname, bool up)
{
    struct ifreq ifr = {0};
    snprintf(ifr.ifr_name, IFNAMSIZ, "%s", ifname);
    if (ioctl(s, SIOCGIFFLAGS, &ifr) < 0)
        return -1;
    if (up)
        ifr.ifr_flags |= IFF_UP;
    else
        ifr.ifr_flags &= ~IFF_UP;
    return ioctl(s, SIOCSIFFLAGS, &ifr);
}

static int parse_mac(const char *s, unsigned char out[6])
{
    unsigned b[6];
    if (sscanf(s, "%2x:%2x:%2x:%2x:%2x:%2x", &b[0], &b[1], &b[2], &b[3], &b[4], &b[5]) != 6)
        return -1;
    for (int i = 0; i < 6; i++)
        out[i] = (unsigned char)b[i];
    return 0;
}

static void sysctl6(const char *ifname, const char *key, const char *val)
{
    char p[160];
    snprintf(p, sizeof(p), "/proc/sys/net/ipv6/conf/%s/%s", ifname, key);
    /* Absent without IPv6 in the kernel: then there is nothing to turn off. */
    write_text(p, val);
}

/* why = "IFNAME STEP: strerror(errno)"; -1. */
static int failed(char *why, size_t len, const char *ifname, const char *step)
{
    snprintf(why, len, "%s %s: %s", ifname, step, strerror(errno));
    return -1;
}

/* Down, renamed, MAC, MTU, no autoconfiguration, up. */
static int link_setup(int s, const char *found, const char *ifname, const char *mac, int mtu,
                      char *why, size_t len)
{
    struct ifreq ifr = {0};
    if (set_flags(s, found, false) < 0)
        return failed(why, len, found, "down");
    if (strcmp(found, ifname) != 0) {
        snprintf(ifr.ifr_name, IFNAMSIZ, "%s", found);
        snprintf(ifr.ifr_newname, IFNAMSIZ, "%s", ifname);
        if (ioctl(s, SIOCSIFNAME, &ifr) < 0)
            return failed(why, len, found, "rename");
    }
    memset(&ifr, 0, sizeof(ifr));
    snprintf(ifr.ifr_name, IFNAMSIZ, "%s", ifname);
    ifr.ifr_hwaddr.sa_family = ARPHRD_ETHER;
    if (parse_mac(mac, (unsigned char *)ifr.ifr_hwaddr.sa_data) < 0)
        return errno = EINVAL, failed(why, len, ifname, mac);
    if (ioctl(s, SIOCSIFHWADDR, &ifr) < 0)
        return failed(why, len, ifname, "set the MAC address");
    if (mtu > 0) {
        memset(&ifr, 0, sizeof(ifr));
        snprintf(ifr.ifr_name, IFNAMSIZ, "%s", ifname);
        ifr.ifr_mtu = mtu;
        if (ioctl(s, SIOCSIFMTU, &ifr) < 0)
            return failed(why, len, ifname, "set the MTU");
    }
    /* The host hands out every address: no RA, no SLAAC, and no DAD delay
     * for an address the host's IPAM made unique. */
    sysctl6(ifname, "accept_ra", "0");
    sysctl6(ifname, "autoconf", "0");
    sysctl6(ifname, "accept_dad", "0");
    if (set_flags(s, ifname, true) < 0)
        return failed(why, len, ifname, "up");
    return 0;
}

static void sin_of(struct sockaddr *sa, in_addr_t a)
{
    struct sockaddr_in *sin = (struct sockaddr_in *)sa;
    memset(sin, 0, sizeof(*sin));
    sin->sin_family = AF_INET;
    sin->sin_addr.s_addr = a;
}

static int ipv4_setup(int s, const char *ifname, const char *ip, int prefix, const char *gw,
                      char *why, size_t len)
{
    struct in_addr a, g = {0};
    if (inet_pton(AF_INET, ip, &a) != 1 || prefix < 0 || prefix > 32 ||
        (gw[0] && inet_pton(AF_INET, gw, &g) != 1)) {
        snprintf(why, len, "bad IPv4 lease %s/%d via %s", ip, prefix, gw);
        return -1;
    }
    struct ifreq ifr = {0};
    snprintf(ifr.ifr_name, IFNAMSIZ, "%s", ifname);
    sin_of(&ifr.ifr_addr, a.s_addr);
    if (ioctl(s, SIOCSIFADDR, &ifr) < 0)
        return failed(why, len, ifname, "IPv4 address");
    sin_of(&ifr.ifr_netmask, prefix ? htonl(~0u << (32 - prefix)) : 0);
    if (ioctl(s, SIOCSIFNETMASK, &ifr) < 0)
        return failed(why, len, ifname, "IPv4 netmask");
    if (!gw[0])
        return 0;
    struct rtentry rt = {0};
    sin_of(&rt.rt_dst, 0);
    sin_of(&rt.rt_genmask, 0);
    sin_of(&rt.rt_gateway, g.s_addr);
    rt.rt_flags = RTF_UP | RTF_GATEWAY;
    rt.rt_dev = (char *)ifname;
    if (ioctl(s, SIOCADDRT, &rt) < 0 && errno != EEXIST)
        return failed(why, len, ifname, "IPv4 default route");
    return 0;
}

static int ipv6_setup(const char *ifname, const char *ip, int prefix, const char *gw, char *why,
                      size_t len)
{
    struct agent_in6_ifreq r = {.prefixlen = (uint32_t)prefix,
                                .ifindex = (int)if_nametoindex(ifname)};
    struct in6_rtmsg rt = {0};
    if (inet_pton(AF_INET6, ip, &r.addr) != 1 || prefix < 0 || prefix > 128 ||
        (gw[0] && inet_pton(AF_INET6, gw, &rt.rtmsg_gateway) != 1)) {
        snprintf(why, len, "bad IPv6 lease %s/%d via %s", ip, prefix, gw);
        return -1;
    }
    int s = socket(AF_INET6, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (s < 0)
        return failed(why, len, ifname, "IPv6 socket");
    int rc = 0;
    if (ioctl(s, SIOCSIFADDR, &r) < 0 && errno != EEXIST)
        rc = failed(why, len, ifname, "IPv6 address");
    rt.rtmsg_dst_len = 0;
    rt.rtmsg_flags = RTF_UP | RTF_GATEWAY;
    rt.rtmsg_metric = 1;
    rt.rtmsg_ifindex = r.ifindex;
    if (!rc && gw[0] && ioctl(s, SIOCADDRT, &rt) < 0 && errno != EEXIST)
        rc = failed(why, len, ifname, "IPv6 default route");
    close(s);
    return rc;
}

/* name in the workload root's /etc, replaced (never written through a
 * symlink: the image's /etc/resolv.conf is often one). */
static int write_etc(const char *name, const char *text)
{
    int etc = agent_open_in_root("/etc", O_PATH | O_DIRECTORY, 0);
    if (etc < 0 && errno == ENOENT) {
        int root = open(AGENT_ROOT, O_PATH | O_DIRECTORY | O_CLOEXEC);
        if (root >= 0) {
            mkdirat(root, "etc", 0755);
            close(root);
        }
        etc = agent_open_in_root("/etc", O_PATH | O_DIRECTORY, 0);
    }
    if (etc < 0)
        return -1;
    if (unlinkat(etc, name, 0) < 0 && errno != ENOENT) {
        close(etc);
        return -1;
    }
    int fd = openat(etc, name, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0644);
    int e = errno;
    close(etc);
    if (fd < 0) {
        errno = e;
        return -1;
    }
    ssize_t n = write(fd, text, strlen(text));
    e = errno;
    close(fd);
    errno = e;
    return n == (ssize_t)strlen(text) ? 0 : -1;
}

static int etc_files(json_object *req, const char *ip4, const char *ip6, char *why, size_t len)
{
    char text[1024] = "";
    json_object *dns;
    if (json_object_object_get_ex(req, "dns", &dns) && json_object_is_type(dns, json_type_array))
        for (size_t i = 0; i < json_object_array_length(dns) && i < 8; i++) {
            const char *ns = json_object_get_string(json_object_array_get_idx(dns, i));
            if (ns && strlen(ns) < 64 && strchr(ns, '\n') == NULL)
                snprintf(text + strlen(text), sizeof(text) - strlen(text), "nameserver %s\n", ns);
        }
    if (write_etc("resolv.conf", text) < 0) {
        snprintf(why, len, "write /etc/resolv.conf: %s", strerror(errno));
        return -1;
    }
    const char *host = req_str(req, "hostname");
    if (!host[0] || strlen(host) > 63 || strpbrk(host, " \t\n#"))
        host = "hull";
    int n = snprintf(text, sizeof(text), "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost\n");
    if (ip4[0])
        n += snprintf(text + n, sizeof(text) - (size_t)n, "%s\t%s\n", ip4, host);
    if (ip6[0])
        snprintf(text + n, sizeof(text) - (size_t)n, "%s\t%s\n", ip6, host);
    if (write_etc("hosts", text) < 0) {
        snprintf(why, len, "write /etc/hosts: %s", strerror(errno));
        return -1;
    }
    return 0;
}

static int configure(json_object *req, char ifname[IFNAMSIZ], char *why, size_t len)
{
    const char *mac = req_str(req, "mac"), *want = req_str(req, "ifname");
    const char *ip4 = req_str(req, "ip4"), *ip6 = req_str(req, "ip6");
    if (!want[0])
        want = "eth0";
    if (strlen(mac) != 17 || strlen(want) >= IFNAMSIZ || !ip4[0]) {
        snprintf(why, len, "needs mac, ip4 (and ifname shorter than %d bytes)", IFNAMSIZ);
        return -1;
    }
    if (load_net_modules(why, len) < 0)
        return -1;
    char found[IFNAMSIZ];
    if (find_card(mac, found) < 0) {
        snprintf(why, len, "no network card (or more than one) appeared");
        return -1;
    }
    int s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (s < 0) {
        snprintf(why, len, "socket: %s", strerror(errno));
        return -1;
    }
    int rc = link_setup(s, found, want, mac, req_int(req, "mtu"), why, len);
    if (!rc)
        rc = ipv4_setup(s, want, ip4, req_int(req, "prefix4"), req_str(req, "gw4"), why, len);
    if (!rc && ip6[0])
        rc = ipv6_setup(want, ip6, req_int(req, "prefix6"), req_str(req, "gw6"), why, len);
    /* Workloads share this namespace from now on: its loopback too. */
    if (!rc && set_flags(s, "lo", true) < 0)
        rc = failed(why, len, "lo", "up");
    close(s);
    if (!rc)
        rc = etc_files(req, ip4, ip6, why, len);
    snprintf(ifname, IFNAMSIZ, "%s", want);
    return rc;
}

int agent_net(struct conn *c, json_object *req)
{
    char why[512] = "", ifname[IFNAMSIZ] = "";
    if (configure(req, ifname, why, sizeof(why)) < 0) {
        agent_log("net: %s", why);
        return conn_send_error(c, "net: %s", why);
    }
    agent_net_up = true;
    /* For the other sessions' servers (separate processes). */
    int mark = open(AGENT_RUN "/net-up", O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
    if (mark >= 0)
        close(mark);
    agent_log("net: %s is %s/%d", ifname, req_str(req, "ip4"), req_int(req, "prefix4"));
    json_object *o = json_object_new_object();
    json_object_object_add(o, "ok", json_object_new_boolean(1));
    json_object_object_add(o, "ifname", json_object_new_string(ifname));
    int rc = conn_send_json(c, HULL_FRAME_RESP, o);
    json_object_put(o);
    return rc;
}
