/* hull network create/list/inspect/remove/prune (hull-network(1),
 * docs/network.md). Errors: "hull: network <verb>: <what>: <why>", exit 1;
 * a failed verb leaves the host as it was. */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "net/net_int.h"
#include "net_cli.h"
#include "util/error.h"
#include "util/json.h"

/* Usage errors: the verb's message and a pointer at --help. */
static int usage_error(const char *verb, const char *fmt, const char *arg)
{
    char *msg = NULL;
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wformat-nonliteral"
    if (asprintf(&msg, fmt, arg) < 0)
        msg = NULL;
#pragma GCC diagnostic pop
    /* hull_error_print: a huge argument is shortened, not echoed whole. */
    hull_error_print(stderr, "hull: network %s: %s (see 'hull network %s --help')", verb,
                     msg ? msg : "out of memory", verb);
    free(msg);
    return 1;
}

/* getopt_long with ':' (missing arguments reported by us) and -h/--help. */
static int next_opt(const char *verb, int argc, char **argv, const char *shorts,
                    const struct option *opts, bool *bad)
{
    int opt = getopt_long(argc, argv, shorts, opts, NULL);
    *bad = false;
    if (opt == '?' || opt == ':') {
        *bad = true;
        usage_error(verb, opt == ':' ? "%s needs an argument" : "unknown option '%s'",
                    argv[optind - 1]);
    }
    return opt;
}

static void help_create(void)
{
    printf("usage: hull network create [--subnet CIDR] [--gateway IP] [--ipv6 CIDR]\n"
           "                           [--internal] [--allow-peers] NAME\n"
           "\n"
           "Make a network: a Linux bridge, an IPv4 subnet (by default the first free\n"
           "/24 from 10.89.0.0 on, clear of podman's 10.88.0.0/16, the host's routes\n"
           "and other hull networks), optionally IPv6, and hull's nftables rules.\n"
           "\n"
           "  --subnet CIDR    the IPv4 subnet (/8 to /29, must not overlap anything)\n"
           "  --gateway IP     the host's address on it (default: the first address)\n"
           "  --ipv6 CIDR      an IPv6 subnet too (/64 to /120)\n"
           "  --internal       no way out: no NAT, nothing forwarded off the bridge\n"
           "  --allow-peers    members may reach each other (isolated by default)\n");
}

int net_create(int argc, char **argv)
{
    enum { O_SUBNET = 256, O_GATEWAY, O_IPV6, O_INTERNAL, O_PEERS };
    static const struct option opts[] = {{"subnet", required_argument, NULL, O_SUBNET},
                                         {"gateway", required_argument, NULL, O_GATEWAY},
                                         {"ipv6", required_argument, NULL, O_IPV6},
                                         {"internal", no_argument, NULL, O_INTERNAL},
                                         {"allow-peers", no_argument, NULL, O_PEERS},
                                         {"help", no_argument, NULL, 'h'},
                                         {0}};
    struct net_create_opts o = {0};
    int opt;
    bool bad;
    while ((opt = next_opt("create", argc, argv, ":h", opts, &bad)) != -1) {
        if (bad)
            return 1;
        switch (opt) {
        case 'h':
            help_create();
            return 0;
        case O_SUBNET:
            o.subnet = optarg;
            break;
        case O_GATEWAY:
            o.gateway = optarg;
            break;
        case O_IPV6:
            o.ipv6 = optarg;
            break;
        case O_INTERNAL:
            o.internal = true;
            break;
        case O_PEERS:
            o.allow_peers = true;
            break;
        }
    }
    if (argc - optind != 1)
        return usage_error("create", "%s", argc == optind ? "a NAME is needed" : "one NAME only");
    o.name = argv[optind];
    if (o.gateway && !o.subnet)
        return usage_error("create", "%s", "--gateway needs --subnet");
    hull_error err = NULL;
    struct net_def d;
    if (net_network_create(&o, &d, &err) < 0)
        return netcli_fail("create", &err);
    printf("%s\n", d.name);
    return 0;
}

/* A network with its members, as inspect and list --format json print it. */
static json_object *network_json(const struct net_def *d, hull_error *err)
{
    struct net_member *ms = NULL;
    size_t n = 0;
    if (net_member_list(d->name, &ms, &n, err) < 0)
        return NULL;
    json_object *o = net_def_json(d);
    json_object *a = json_object_new_array();
    for (size_t i = 0; i < n; i++)
        json_object_array_add(a, net_member_json(&ms[i]));
    net_members_free(ms, n);
    json_object_object_add(o, "members", a);
    return o;
}

static void help_list(void)
{
    printf("usage: hull network list [--format table|json] [-q]\n"
           "\n"
           "List networks: name, bridge, subnets, gateway, members, flags.\n"
           "\n"
           "  --format FMT   table (default) or json (what inspect prints, as an array)\n"
           "  -q, --quiet    names only\n");
}

static int list_table(const struct net_def *defs, size_t n, bool quiet, hull_error *err)
{
    if (!quiet)
        printf("%-20s %-10s %-18s %-16s %-24s %-7s %s\n", "NAME", "BRIDGE", "SUBNET", "GATEWAY",
               "IPV6", "MEMBERS", "FLAGS");
    for (size_t i = 0; i < n; i++) {
        const struct net_def *d = &defs[i];
        if (quiet) {
            printf("%s\n", d->name);
            continue;
        }
        struct net_member *ms = NULL;
        size_t nm = 0;
        if (net_member_list(d->name, &ms, &nm, err) < 0)
            return -1;
        net_members_free(ms, nm);
        char sub[64], gw[INET6_ADDRSTRLEN], v6[64] = "-", flags[32] = "";
        net_prefix_format(&d->subnet4, sub, sizeof(sub));
        net_addr_format(AF_INET, d->gw4, gw, sizeof(gw));
        if (d->has6)
            net_prefix_format(&d->subnet6, v6, sizeof(v6));
        snprintf(flags, sizeof(flags), "%s%s%s", d->internal ? "internal" : "",
                 d->internal && d->allow_peers ? "," : "", d->allow_peers ? "allow-peers" : "");
        printf("%-20s %-10s %-18s %-16s %-24s %-7zu %s\n", d->name, d->bridge, sub, gw, v6, nm,
               flags[0] ? flags : "-");
    }
    return 0;
}

int net_list(int argc, char **argv)
{
    static const struct option opts[] = {{"format", required_argument, NULL, 'f'},
                                         {"quiet", no_argument, NULL, 'q'},
                                         {"help", no_argument, NULL, 'h'},
                                         {0}};
    const char *format = "table";
    bool quiet = false, bad;
    int opt;
    while ((opt = next_opt("list", argc, argv, ":hqf:", opts, &bad)) != -1) {
        if (bad)
            return 1;
        if (opt == 'h') {
            help_list();
            return 0;
        }
        if (opt == 'q')
            quiet = true;
        if (opt == 'f')
            format = optarg;
    }
    if (strcmp(format, "table") != 0 && strcmp(format, "json") != 0)
        return usage_error("list", "--format: '%s' is not table or json", format);
    if (optind != argc)
        return usage_error("list", "unexpected argument '%s'", argv[optind]);
    hull_error err = NULL;
    cleanup_free struct net_def *defs = NULL;
    size_t n = 0;
    if (net_def_list(&defs, &n, &err) < 0)
        return netcli_fail("list", &err);
    if (strcmp(format, "table") == 0)
        return list_table(defs, n, quiet, &err) < 0 ? netcli_fail("list", &err) : 0;
    cleanup_json json_object *a = json_object_new_array();
    for (size_t i = 0; i < n; i++) {
        json_object *o = network_json(&defs[i], &err);
        if (!o)
            return netcli_fail("list", &err);
        json_object_array_add(a, o);
    }
    printf("%s\n", json_object_to_json_string_ext(a, JSON_C_TO_STRING_PRETTY |
                                                         JSON_C_TO_STRING_NOSLASHESCAPE));
    return 0;
}

static void help_inspect(void)
{
    printf("usage: hull network inspect NAME...\n"
           "\n"
           "Print the networks as a JSON array: definition, bridge, subnets, flags and\n"
           "members (each lease: member id, interface, MAC, addresses, owner pid,\n"
           "egress, published ports).\n");
}

int net_inspect(int argc, char **argv)
{
    static const struct option opts[] = {{"help", no_argument, NULL, 'h'}, {0}};
    int opt;
    bool bad;
    while ((opt = next_opt("inspect", argc, argv, ":h", opts, &bad)) != -1) {
        if (bad)
            return 1;
        help_inspect();
        return 0;
    }
    if (optind == argc)
        return usage_error("inspect", "%s", "a NAME is needed");
    hull_error err = NULL;
    cleanup_json json_object *a = json_object_new_array();
    for (int i = optind; i < argc; i++) {
        struct net_def d;
        json_object *o = net_def_load(argv[i], &d, &err) < 0 ? NULL : network_json(&d, &err);
        if (!o)
            return netcli_fail("inspect", &err);
        json_object_array_add(a, o);
    }
    printf("%s\n", json_object_to_json_string_ext(a, JSON_C_TO_STRING_PRETTY |
                                                         JSON_C_TO_STRING_NOSLASHESCAPE));
    return 0;
}

static void help_remove(void)
{
    printf("usage: hull network remove [--force] NAME...\n"
           "\n"
           "Remove networks: bridge, rules, definition. A network with members is\n"
           "refused unless --force, which detaches them first (their interfaces,\n"
           "rules and leases go).\n"
           "\n"
           "  -f, --force   detach the members too\n");
}

int net_remove(int argc, char **argv)
{
    static const struct option opts[] = {
        {"force", no_argument, NULL, 'f'}, {"help", no_argument, NULL, 'h'}, {0}};
    bool force = false, bad;
    int opt;
    while ((opt = next_opt("remove", argc, argv, ":hf", opts, &bad)) != -1) {
        if (bad)
            return 1;
        if (opt == 'h') {
            help_remove();
            return 0;
        }
        force = true;
    }
    if (optind == argc)
        return usage_error("remove", "%s", "a NAME is needed");
    hull_error err = NULL;
    for (int i = optind; i < argc; i++) {
        if (net_network_remove(argv[i], force, &err) < 0)
            return netcli_fail("remove", &err);
        printf("%s\n", argv[i]);
    }
    return 0;
}

static void help_prune(void)
{
    printf("usage: hull network prune\n"
           "\n"
           "Remove what nothing uses: leases whose owner process is gone (and their\n"
           "interfaces and rules), networks without members (except the default\n"
           "network, hull0), and what a crash of hull left: bridges, veths and TAPs\n"
           "named hull... that no network or lease accounts for, and orphan rules in\n"
           "hull's nftables tables. Prints the networks removed.\n");
}

int net_prune(int argc, char **argv)
{
    static const struct option opts[] = {{"help", no_argument, NULL, 'h'}, {0}};
    int opt;
    bool bad;
    while ((opt = next_opt("prune", argc, argv, ":h", opts, &bad)) != -1) {
        if (bad)
            return 1;
        help_prune();
        return 0;
    }
    if (optind != argc)
        return usage_error("prune", "unexpected argument '%s'", argv[optind]);
    hull_error err = NULL;
    struct net_prune_report r;
    char **names = NULL;
    if (net_prune_state(&r, &names, &err) < 0)
        return netcli_fail("prune", &err);
    for (size_t i = 0; names && names[i]; i++) {
        printf("%s\n", names[i]);
        free(names[i]);
    }
    free(names);
    fprintf(stderr, "pruned: %zu stale lease%s, %zu network%s, %zu interface%s, %zu rule set%s\n",
            r.leases, r.leases == 1 ? "" : "s", r.networks, r.networks == 1 ? "" : "s", r.links,
            r.links == 1 ? "" : "s", r.rules, r.rules == 1 ? "" : "s");
    return 0;
}
