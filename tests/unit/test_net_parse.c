/* net/parse.c: the --egress and --publish syntax (what parses, what it
 * means, errors that quote the bad item), egress back to text, network
 * names, and the resolv.conf/hosts a member's /etc gets. */
#include "unit.h"

#include <arpa/inet.h>
#include <sys/stat.h>

#include "net/net.h"

/* ---- --egress ------------------------------------------------------------ */

static void expect_rule(const struct hull_egress_rule *r, int family, const char *addr,
                        unsigned prefix, uint16_t port, uint8_t proto)
{
    uint8_t want[16] = {0};
    assert_int_equal(inet_pton(family, addr, want), 1);
    assert_int_equal(r->family, family);
    assert_memory_equal(r->addr, want, family == AF_INET ? 4 : 16);
    assert_int_equal(r->prefix, prefix);
    assert_int_equal(r->port, port);
    assert_int_equal(r->proto, proto);
}

static void test_egress_keywords(void **state)
{
    (void)state;
    hull_error err = NULL;
    struct hull_egress e;
    memset(&e, 0xaa, sizeof(e));
    assert_int_equal(hull_egress_parse(NULL, &e, &err), 0);
    assert_true(e.all);
    assert_int_equal(e.n, 0);
    /* empty is a mistake (a variable that expanded to nothing), not "all" */
    assert_int_equal(hull_egress_parse("", &e, &err), -1);
    assert_error_msg(err, "egress: empty (say \"all\", \"none\" or CIDR[:PORT[/PROTO]],...)");
    assert_int_equal(hull_egress_parse("all", &e, &err), 0);
    assert_true(e.all);
    assert_int_equal(e.n, 0);
    assert_int_equal(hull_egress_parse("none", &e, &err), 0);
    assert_false(e.all);
    assert_int_equal(e.n, 0);
    assert_null(err);
}

static void test_egress_rules(void **state)
{
    (void)state;
    hull_error err = NULL;
    struct hull_egress e;
    assert_int_equal(hull_egress_parse("10.0.0.0/8,198.18.0.1:80,198.18.0.0/15:53/udp,"
                                       "1.2.3.4:443/tcp",
                                       &e, &err),
                     0);
    assert_false(e.all);
    assert_int_equal(e.n, 4);
    expect_rule(&e.rules[0], AF_INET, "10.0.0.0", 8, 0, 0);
    expect_rule(&e.rules[1], AF_INET, "198.18.0.1", 32, 80, 0); /* bare address: /32 */
    expect_rule(&e.rules[2], AF_INET, "198.18.0.0", 15, 53, IPPROTO_UDP);
    expect_rule(&e.rules[3], AF_INET, "1.2.3.4", 32, 443, IPPROTO_TCP);

    /* IPv6: in brackets with a port, bare without. */
    assert_int_equal(hull_egress_parse("[fd00::/64]:443/tcp, [2001:db8::1]:53/udp,fd01::/16,"
                                       "::1,[fe80::1]",
                                       &e, &err),
                     0);
    assert_int_equal(e.n, 5);
    expect_rule(&e.rules[0], AF_INET6, "fd00::", 64, 443, IPPROTO_TCP);
    expect_rule(&e.rules[1], AF_INET6, "2001:db8::1", 128, 53, IPPROTO_UDP);
    expect_rule(&e.rules[2], AF_INET6, "fd01::", 16, 0, 0);
    expect_rule(&e.rules[3], AF_INET6, "::1", 128, 0, 0);
    expect_rule(&e.rules[4], AF_INET6, "fe80::1", 128, 0, 0);

    /* "all" among rules: everything outside plus what the rules name. */
    assert_int_equal(hull_egress_parse("all,10.88.0.1:6379", &e, &err), 0);
    assert_true(e.all);
    assert_int_equal(e.n, 1);
    expect_rule(&e.rules[0], AF_INET, "10.88.0.1", 32, 6379, 0);
    assert_int_equal(hull_egress_parse("0.0.0.0/0", &e, &err), 0);
    expect_rule(&e.rules[0], AF_INET, "0.0.0.0", 0, 0, 0);
    assert_null(err);
}

static void test_egress_errors_quote_the_item(void **state)
{
    (void)state;
    static const struct {
        const char *in, *msg;
    } bad[] = {
        {"10.0.0.0/33", "egress rule \"10.0.0.0/33\": prefix length \"33\" is not a number 0-32"},
        {"10.0.0.0/8,bogus", "egress rule \"bogus\": \"bogus\" is not an IP address"},
        {"1.2.3.4:0", "egress rule \"1.2.3.4:0\": port \"0\" is not 1-65535"},
        {"1.2.3.4:65536", "egress rule \"1.2.3.4:65536\": port \"65536\" is not 1-65535"},
        {"1.2.3.4:80/icmp", "egress rule \"1.2.3.4:80/icmp\": protocol \"icmp\" is not tcp or udp"},
        {"1.2.3.4:", "egress rule \"1.2.3.4:\": port \"\" is not 1-65535"},
        {"10.0.0.1/8", "egress rule \"10.0.0.1/8\": address has bits set beyond the /8 prefix "
                       "(the network is 10.0.0.0/8)"},
        {"[fd00::/64:443", "egress rule \"[fd00::/64:443\": missing ']'"},
        {"[10.0.0.1]:80", "egress rule \"[10.0.0.1]:80\": \"10.0.0.1\" is not an IPv6 address"},
        {"[fd00::1]443", "egress rule \"[fd00::1]443\": expected CIDR[:PORT[/tcp|udp]] (IPv6 as "
                         "[ADDR/LEN]:PORT/PROTO)"},
        {"10.0.0.0/8,,1.2.3.4", "--egress \"10.0.0.0/8,,1.2.3.4\": empty rule"},
        {"10.0.0.0/8,", "--egress \"10.0.0.0/8,\": empty rule"},
        {"none,10.0.0.0/8", "--egress \"none,10.0.0.0/8\": \"none\" cannot be combined with rules"},
        {"10.0.0.0/x", "egress rule \"10.0.0.0/x\": prefix length \"x\" is not a number 0-32"},
        {"1.2.3.4:80:90", "egress rule \"1.2.3.4:80:90\": port \"80:90\" is not 1-65535"},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        hull_error err = NULL;
        struct hull_egress e;
        e.n = 7;
        assert_int_equal(hull_egress_parse(bad[i].in, &e, &err), -1);
        assert_int_equal(e.n, 7); /* untouched on error */
        assert_error_msg(err, bad[i].msg);
    }
    /* More rules than fit. */
    char many[2048] = "";
    for (int i = 0; i <= HULL_NET_MAX_EGRESS; i++)
        snprintf(many + strlen(many), sizeof(many) - strlen(many), "%s10.0.%d.0/24", i ? "," : "",
                 i);
    hull_error err = NULL;
    struct hull_egress e;
    assert_int_equal(hull_egress_parse(many, &e, &err), -1);
    assert_error_msg(err, "--egress: more than 64 rules");
}

static void test_egress_format_round_trip(void **state)
{
    (void)state;
    static const struct {
        const char *in, *out;
    } cases[] = {
        {"none", "none"},
        {"all", "all"},
        {"1.2.3.4", "1.2.3.4/32"},
        {"10.0.0.0/8:443/tcp,[FD00::/64]:53/udp,all", "all,10.0.0.0/8:443/tcp,[fd00::/64]:53/udp"},
        {"::1", "[::1/128]"},
        {"198.18.0.1:8080", "198.18.0.1/32:8080"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        hull_error err = NULL;
        struct hull_egress e, again;
        char buf[256];
        assert_int_equal(hull_egress_parse(cases[i].in, &e, &err), 0);
        assert_int_equal(hull_egress_format(&e, buf, sizeof(buf)), 0);
        assert_string_equal(buf, cases[i].out);
        /* What format writes parses back to the same rules. */
        assert_int_equal(hull_egress_parse(buf, &again, &err), 0);
        assert_memory_equal(&e, &again, sizeof(e));
    }
    /* Too small a buffer is an error, never a cut rule. */
    struct hull_egress e;
    hull_error err = NULL;
    char small[8];
    assert_int_equal(hull_egress_parse("10.0.0.0/8:443/tcp", &e, &err), 0);
    assert_int_equal(hull_egress_format(&e, small, sizeof(small)), -1);
}

/* ---- --publish ----------------------------------------------------------- */

static void test_publish(void **state)
{
    (void)state;
    static const struct {
        const char *in, *ip;
        uint16_t host_port, port;
        bool udp;
    } ok[] = {
        {"8080:80", "", 8080, 80, false},
        {"8080:80/tcp", "", 8080, 80, false},
        {"5353:53/udp", "", 5353, 53, true},
        {"127.0.0.1:8080:80", "127.0.0.1", 8080, 80, false},
        {"0.0.0.0:1:65535/udp", "", 1, 65535, true}, /* every address, as in docker */
        {"[::]:8080:80", "", 8080, 80, false},
        {"[::1]:8080:80", "::1", 8080, 80, false},
        {"[FD00::0001]:443:8443/tcp", "fd00::1", 443, 8443, false},
    };
    for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
        hull_error err = NULL;
        struct hull_publish p;
        assert_int_equal(hull_publish_parse(ok[i].in, &p, &err), 0);
        assert_string_equal(p.host_ip, ok[i].ip);
        assert_int_equal(p.host_port, ok[i].host_port);
        assert_int_equal(p.port, ok[i].port);
        assert_int_equal(p.udp, ok[i].udp);
    }
}

static void test_publish_errors(void **state)
{
    (void)state;
    static const struct {
        const char *in, *msg;
    } bad[] = {
        {"", "--publish: empty value (want [HOSTIP:]HOSTPORT:PORT)"},
        {"80", "--publish \"80\": want [HOSTIP:]HOSTPORT:PORT[/tcp|udp]"},
        {"0:80", "--publish \"0:80\": host port \"0\" is not 1-65535"},
        {"8080:70000", "--publish \"8080:70000\": port \"70000\" is not 1-65535"},
        {"8080:80/sctp", "--publish \"8080:80/sctp\": protocol \"sctp\" is not tcp or udp"},
        {"1.2.3:8080:80", "--publish \"1.2.3:8080:80\": \"1.2.3\" is not an IPv4 address"},
        {"::1:8080:80", "--publish \"::1:8080:80\": want [HOSTIP:]HOSTPORT:PORT[/tcp|udp] (an "
                        "IPv6 host address in brackets)"},
        {"[::1]8080:80",
         "--publish \"[::1]8080:80\": want [HOSTIP]:HOSTPORT:PORT for an IPv6 host address"},
        {"[nope]:8080:80", "--publish \"[nope]:8080:80\": \"nope\" is not an IPv6 address"},
        {"a:80", "--publish \"a:80\": host port \"a\" is not 1-65535"},
        {"8080:", "--publish \"8080:\": port \"\" is not 1-65535"},
        {"-1:80", "--publish \"-1:80\": host port \"-1\" is not 1-65535"},
        /* addresses no packet on this host is ever sent to */
        {"255.255.255.255:8000:80",
         "--publish \"255.255.255.255:8000:80\": 255.255.255.255 is a broadcast or multicast "
         "address"},
        {"239.1.2.3:8000:80",
         "--publish \"239.1.2.3:8000:80\": 239.1.2.3 is a broadcast or multicast address"},
        {"[ff02::1]:8000:80", "--publish \"[ff02::1]:8000:80\": ff02::1 is a multicast address"},
        {"[fe80::1]:8000:80", "--publish \"[fe80::1]:8000:80\": fe80::1 is a link-local address "
                              "(it needs an interface; use another address of the host)"},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        hull_error err = NULL;
        struct hull_publish p = {.port = 9};
        assert_int_equal(hull_publish_parse(bad[i].in, &p, &err), -1);
        assert_int_equal(p.port, 9);
        assert_error_msg(err, bad[i].msg);
    }
}

/* ---- names --------------------------------------------------------------- */

static void test_names(void **state)
{
    (void)state;
    static const char *const ok[] = {"hull0",  "a",         "0",
                                     "my-net", "my_net.v2", "abcdefghijklmnopqrstuvwxyz012345"};
    for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++)
        assert_true(hull_net_name_valid(ok[i]));
    static const char *const bad[] = {NULL,    "",     "none",  "host",
                                      "Hull0", "-net", ".net",  "_net",
                                      "a b",   "a/b",  "net\n", "abcdefghijklmnopqrstuvwxyz0123456",
                                      "ä"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        assert_false(hull_net_name_valid(bad[i]));
}

/* ---- /etc files ---------------------------------------------------------- */

static void test_write_etc(void **state)
{
    (void)state;
    char *dir = unit_mkdtemp();
    assert_non_null(dir);
    int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    assert_true(dfd >= 0);
    struct hull_net_lease l = {0};
    strcpy(l.network, "hull0");
    strcpy(l.ip4, "10.89.0.5");
    strcpy(l.ip6, "fd89::5");
    strcpy(l.dns[0], "10.89.0.1");
    strcpy(l.dns[1], "fd89::1");
    l.n_dns = 2;
    hull_error err = NULL;
    assert_int_equal(hull_net_write_etc(&l, "box", dfd, &err), 0);
    char *s = NULL;
    size_t len = 0;
    assert_int_equal(hull_read_file_at(dfd, "resolv.conf", &s, &len, &err), 0);
    assert_string_equal(s, "# written by hull for network hull0\n"
                           "nameserver 10.89.0.1\nnameserver fd89::1\n");
    free(s);
    assert_int_equal(hull_read_file_at(dfd, "hosts", &s, &len, &err), 0);
    assert_string_equal(s, "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n"
                           "10.89.0.5\tbox\nfd89::5\tbox\n");
    free(s);

    /* Written in place: a bind of the file (a sandbox's /etc/hosts) sees it. */
    struct stat before, after;
    assert_int_equal(fstatat(dfd, "hosts", &before, 0), 0);
    l.ip6[0] = '\0';
    l.n_dns = 0;
    assert_int_equal(hull_net_write_etc(&l, NULL, dfd, &err), 0);
    assert_int_equal(fstatat(dfd, "hosts", &after, 0), 0);
    assert_int_equal(before.st_ino, after.st_ino);
    assert_int_equal(hull_read_file_at(dfd, "hosts", &s, &len, &err), 0);
    assert_string_equal(s, "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n");
    free(s);

    /* A symlink at the name is refused, not followed. */
    assert_int_equal(unlinkat(dfd, "hosts", 0), 0);
    assert_int_equal(symlinkat("/nonexistent-hull-target", dfd, "hosts"), 0);
    assert_int_equal(hull_net_write_etc(&l, NULL, dfd, &err), -1);
    assert_non_null(strstr(hull_error_msg(err), "network: hosts"));
    hull_error_free(&err);
    assert_int_equal(access("/nonexistent-hull-target", F_OK), -1);

    /* A hostname that would break the file's format is refused. */
    assert_int_equal(hull_net_write_etc(&l, "a b\n1.2.3.4 evil", dfd, &err), -1);
    assert_error_msg(err, "network: hostname \"a b\n1.2.3.4 evil\" cannot go into /etc/hosts");
    close(dfd);
    unit_rmdir(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_egress_keywords),
        cmocka_unit_test(test_egress_rules),
        cmocka_unit_test(test_egress_errors_quote_the_item),
        cmocka_unit_test(test_egress_format_round_trip),
        cmocka_unit_test(test_publish),
        cmocka_unit_test(test_publish_errors),
        cmocka_unit_test(test_names),
        cmocka_unit_test(test_write_etc),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
