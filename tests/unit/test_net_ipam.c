/* net/ipam.c and net/store.c: subnets, the default subnet, picking
 * addresses, and network definitions and leases on disk (no kernel). */
#include <arpa/inet.h>

#include "net/net_int.h"
#include "unit.h"

static struct net_prefix P4(const char *s) {
    struct net_prefix p;
    hull_error err = NULL;
    assert_int_equal(net_prefix_parse(s, AF_INET, &p, &err), 0);
    return p;
}

static void
prefix_parse(void **state)
{
    (void)state;
    struct net_prefix p;
    hull_error err = NULL;
    char buf[64];
    assert_int_equal(net_prefix_parse("10.89.3.0/24", AF_INET, &p, &err), 0);
    assert_int_equal(p.len, 24);
    net_prefix_format(&p, buf, sizeof(buf));
    assert_string_equal(buf, "10.89.3.0/24");
    assert_int_equal(net_prefix_parse("fd00:1::/64", AF_INET6, &p, &err), 0);
    net_prefix_format(&p, buf, sizeof(buf));
    assert_string_equal(buf, "fd00:1::/64");

    assert_int_equal(net_prefix_parse("10.89.3.1/24", AF_INET, &p, &err), -1);
    assert_error_msg(err, "10.89.3.1/24: host bits set (the network address is meant)");
    assert_int_equal(net_prefix_parse("10.89.3.0", AF_INET, &p, &err), -1);
    assert_error_msg(err, "10.89.3.0: not a CIDR (ADDRESS/LENGTH)");
    assert_int_equal(net_prefix_parse("10.89.3.0/33", AF_INET, &p, &err), -1);
    assert_error_msg(err, "10.89.3.0/33: bad prefix length");
    assert_int_equal(net_prefix_parse("10.89.3.0/", AF_INET, &p, &err), -1);
    assert_error_msg(err, "10.89.3.0/: bad prefix length");
    assert_int_equal(net_prefix_parse("fd00::/64", AF_INET, &p, &err), -1);
    assert_error_msg(err, "fd00::/64: not an IPv4 address");
    assert_int_equal(net_prefix_parse("10.0.0.0/8", AF_INET6, &p, &err), -1);
    assert_error_msg(err, "10.0.0.0/8: not an IPv6 address");
    assert_int_equal(net_prefix_parse("0.0.0.0/0", AF_INET, &p, &err), 0);
}

static void overlap_and_contains(void **state)
{
    (void)state;
    struct net_prefix a = P4("10.88.0.0/16"), b = P4("10.88.7.0/24"), c = P4("10.89.0.0/24");
    assert_true(net_prefix_overlap(&a, &b));
    assert_true(net_prefix_overlap(&b, &a));
    assert_false(net_prefix_overlap(&a, &c));
    struct net_prefix all = P4("0.0.0.0/0");
    assert_true(net_prefix_overlap(&all, &c));
    struct net_prefix adj1 = P4("10.1.0.0/25"), adj2 = P4("10.1.0.128/25");
    assert_false(net_prefix_overlap(&adj1, &adj2));
    uint8_t addr[16];
    net_addr_parse("10.88.7.200", AF_INET, addr);
    assert_true(net_prefix_contains(&b, addr));
    assert_false(net_prefix_contains(&c, addr));
    struct net_prefix v6;
    hull_error err = NULL;
    net_prefix_parse("fd00::/64", AF_INET6, &v6, &err);
    assert_false(net_prefix_overlap(&v6, &all)); /* families never overlap */
}

static void hosts_and_indexes(void **state)
{
    (void)state;
    struct net_prefix p = P4("10.89.3.0/24");
    uint8_t a[16];
    char buf[64];
    net_prefix_host(&p, 1, a);
    net_addr_format(AF_INET, a, buf, sizeof(buf));
    assert_string_equal(buf, "10.89.3.1");
    net_prefix_host(&p, 254, a);
    net_addr_format(AF_INET, a, buf, sizeof(buf));
    assert_string_equal(buf, "10.89.3.254");
    assert_int_equal(net_prefix_index(&p, a), 254);
    struct net_prefix big = P4("10.64.0.0/10");
    net_prefix_host(&big, 300, a); /* carries into the next byte */
    net_addr_format(AF_INET, a, buf, sizeof(buf));
    assert_string_equal(buf, "10.64.1.44");
    assert_int_equal(net_prefix_index(&big, a), 300);
    assert_int_equal(net_prefix_capacity(&p), 253);
    struct net_prefix small = P4("10.1.1.0/29");
    assert_int_equal(net_prefix_capacity(&small), 5);
    struct net_prefix tiny = P4("10.1.1.0/31");
    assert_int_equal(net_prefix_capacity(&tiny), 0);

    struct net_prefix v6;
    hull_error err = NULL;
    net_prefix_parse("fd00:1::/64", AF_INET6, &v6, &err);
    net_prefix_host(&v6, 0x1234, a);
    net_addr_format(AF_INET6, a, buf, sizeof(buf));
    assert_string_equal(buf, "fd00:1::1234");
    assert_int_equal(net_prefix_index(&v6, a), 0x1234);
}

static void pick_index(void **state)
{
    (void)state;
    struct net_prefix p = P4("10.1.1.0/29"); /* members .2 .. .6 */
    uint64_t used[8] = {1};
    assert_int_equal(net_pick_index(&p, used, 1), 2);
    uint64_t some[] = {1, 2, 4};
    assert_int_equal(net_pick_index(&p, some, 3), 3);
    uint64_t full[] = {1, 2, 3, 4, 5, 6};
    assert_int_equal(net_pick_index(&p, full, 6), 0);
    /* a custom gateway in the middle is skipped like a member */
    uint64_t gw5[] = {5, 2, 3, 4};
    assert_int_equal(net_pick_index(&p, gw5, 4), 6);
}

static void pick_subnet(void **state)
{
    (void)state;
    struct net_prefix out;
    hull_error err = NULL;
    char buf[64];
    assert_int_equal(net_pick_subnet(NULL, 0, &out, &err), 0);
    net_prefix_format(&out, buf, sizeof(buf));
    assert_string_equal(buf, "10.89.0.0/24");
    /* the host's routes and other networks are avoided; a wide route
     * covering 10.89.0.0/16 pushes it to 10.90 */
    struct net_prefix avoid[] = {P4("10.89.0.0/24"), P4("10.89.1.0/24"), P4("10.89.2.0/23")};
    assert_int_equal(net_pick_subnet(avoid, 3, &out, &err), 0);
    net_prefix_format(&out, buf, sizeof(buf));
    assert_string_equal(buf, "10.89.4.0/24");
    struct net_prefix wide[] = {P4("10.89.0.0/16")};
    assert_int_equal(net_pick_subnet(wide, 1, &out, &err), 0);
    net_prefix_format(&out, buf, sizeof(buf));
    assert_string_equal(buf, "10.90.0.0/24");
    /* never podman's 10.88.0.0/16, whatever else is free */
    struct net_prefix podman = P4("10.88.0.0/16");
    assert_false(net_prefix_overlap(&out, &podman));
    struct net_prefix everything[] = {P4("10.0.0.0/8")};
    assert_int_equal(net_pick_subnet(everything, 1, &out, &err), -1);
    assert_error_msg(err, "no free /24 in 10.89.0.0-10.254.255.0");
}

static void linklocal(void **state)
{
    (void)state;
    uint8_t a[16];
    char buf[64];
    assert_int_equal(net_mac_linklocal("02:f4:5a:bc:eb:e2", a), 0);
    net_addr_format(AF_INET6, a, buf, sizeof(buf));
    assert_string_equal(buf, "fe80::f4:5aff:febc:ebe2");
    assert_int_equal(net_mac_linklocal("nonsense", a), -1);
}

/* Definitions and leases: written whole, read back, listed. */
static void store_roundtrip(void **state)
{
    (void)state;
    char *dir = unit_mkdtemp();
    assert_non_null(dir);
    char run[4200], cfg[4200];
    snprintf(run, sizeof(run), "%s/run", dir);
    snprintf(cfg, sizeof(cfg), "%s/cfg", dir);
    setenv("HULL_NET_RUN_DIR", run, 1);
    setenv("HULL_NET_CONFIG_DIR", cfg, 1);
    hull_error err = NULL;
    int lock = net_lock(&err);
    assert_true(lock >= 0);

    struct net_def d = {.subnet4 = P4("10.89.3.0/24"), .has6 = true, .allow_peers = true};
    snprintf(d.name, sizeof(d.name), "unit-net");
    snprintf(d.bridge, sizeof(d.bridge), "hullbr7");
    net_prefix_host(&d.subnet4, 1, d.gw4);
    assert_int_equal(net_prefix_parse("fd00:7::/64", AF_INET6, &d.subnet6, &err), 0);
    net_prefix_host(&d.subnet6, 1, d.gw6);
    assert_int_equal(net_def_save(&d, &err), 0);
    struct net_def back;
    assert_int_equal(net_def_load("unit-net", &back, &err), 0);
    assert_string_equal(back.bridge, "hullbr7");
    assert_true(back.has6 && back.allow_peers && !back.internal);
    assert_memory_equal(back.gw6, d.gw6, 16);
    assert_int_equal(net_def_load("unit-nope", &back, &err), -1);
    assert_int_equal(hull_error_code(err), ENOENT);
    assert_error_msg(err, "unit-nope: no such network");

    struct net_member m = {.owner_pid = getpid(), .has6 = true, .n_publish = 1};
    snprintf(m.member, sizeof(m.member), "sandbox-1");
    snprintf(m.network, sizeof(m.network), "unit-net");
    snprintf(m.host_ifname, sizeof(m.host_ifname), "hullv01234567");
    snprintf(m.mac, sizeof(m.mac), "02:00:00:00:00:01");
    net_prefix_host(&d.subnet4, 2, m.ip4);
    net_prefix_host(&d.subnet6, 2, m.ip6);
    m.egress = (char *)"10.0.0.0/8:443/tcp";
    m.publish[0] = (struct hull_publish){.host_ip = "127.0.0.1", .host_port = 8080, .port = 80};
    assert_int_equal(net_member_save(&m, &err), 0);
    struct net_member mb;
    assert_int_equal(net_member_load("sandbox-1", &mb, &err), 0);
    assert_string_equal(mb.egress, "10.0.0.0/8:443/tcp");
    assert_int_equal(mb.n_publish, 1);
    assert_int_equal(mb.publish[0].host_port, 8080);
    assert_string_equal(mb.publish[0].host_ip, "127.0.0.1");
    assert_memory_equal(mb.ip6, m.ip6, 16);
    net_member_free(&mb);

    struct net_member *all = NULL;
    size_t n = 0;
    assert_int_equal(net_member_list("unit-net", &all, &n, &err), 0);
    assert_int_equal(n, 1);
    net_members_free(all, n);
    assert_int_equal(net_member_list("other", &all, &n, &err), 0);
    assert_int_equal(n, 0);
    net_members_free(all, n);
    assert_false(net_member_id_valid("../x"));
    assert_false(net_member_id_valid(""));
    assert_true(net_member_id_valid("vm-abc_1.2"));

    assert_int_equal(net_member_delete("sandbox-1", &err), 0);
    assert_int_equal(net_member_load("sandbox-1", &mb, &err), -1);
    assert_error_msg(err, "sandbox-1: no such member");
    struct net_def *defs = NULL;
    assert_int_equal(net_def_list(&defs, &n, &err), 0);
    assert_int_equal(n, 1);
    free(defs);
    assert_int_equal(net_def_delete("unit-net", &err), 0);
    assert_int_equal(net_def_list(&defs, &n, &err), 0);
    assert_int_equal(n, 0);
    free(defs);
    close(lock);
    unit_rmdir(dir); /* frees dir */
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(prefix_parse),      cmocka_unit_test(overlap_and_contains),
        cmocka_unit_test(hosts_and_indexes), cmocka_unit_test(pick_index),
        cmocka_unit_test(pick_subnet),       cmocka_unit_test(linklocal),
        cmocka_unit_test(store_roundtrip),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
