/* hull cluster nodes --cluster redis://HOST:PORT [--json] [--down-after SECS]
 *
 * The fleet's nodes as the Redis registry holds them (docs/cluster.md):
 * read straight from Redis, as hulld's GET /v1/nodes reads them, so it
 * works with every hulld down too. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "service/cluster.h"
#include "util/error.h"
#include "util/json.h"

static void help(FILE *out)
{
    fprintf(out, "usage: hull cluster nodes --cluster redis://HOST:PORT [--json]\n"
                 "                          [--down-after SECS]\n"
                 "       hull cluster drain NODE --cluster redis://HOST:PORT [--json]\n"
                 "                          [--no-wait] [--down-after SECS]\n"
                 "\n"
                 "Show the nodes of a hull cluster (hulld --cluster): name, state (up, or\n"
                 "down after SECS without a heartbeat, default 15), address, sandboxes\n"
                 "running, memory reserved for them of its capacity, CPUs, microVMs and\n"
                 "their slots, accelerator (kvm or tcg) and labels. --cluster defaults to\n"
                 "$HULL_CLUSTER. --json prints the registry's objects as they are.\n"
                 "\n"
                 "drain marks NODE draining (new sandboxes are not placed on it); its hulld\n"
                 "moves each running microVM sandbox live to another node and reports each\n"
                 "sandbox: moved (to which node, downtime), stays (container sandboxes and\n"
                 "paused microVMs) or failed (it still runs on NODE). Waits for the end\n"
                 "unless --no-wait; exits 1 when one failed or NODE went down.\n");
}

static long long num(json_object *o, const char *k)
{
    json_object *v = hj_get(o, k);
    return v ? json_object_get_int64(v) : 0;
}

static const char *str(json_object *o, const char *k)
{
    json_object *v = hj_get(o, k);
    return v ? json_object_get_string(v) : "-";
}

static void table(json_object *a)
{
    printf("%-16s %-5s %-24s %-9s %-19s %-5s %-7s %-5s %s\n", "NAME", "STATE", "ADDRESS",
           "SANDBOXES", "MEMORY (MiB)", "CPUS", "VMS", "ACCEL", "LABELS");
    for (size_t i = 0; i < json_object_array_length(a); i++) {
        json_object *n = json_object_array_get_idx(a, i);
        char mem[32], vms[24], labels[512] = "";
        snprintf(mem, sizeof(mem), "%lld/%lld", num(n, "reserved_memory") >> 20,
                 num(n, "memory") >> 20);
        snprintf(vms, sizeof(vms), "%lld/%lld", num(n, "vms"), num(n, "vm_slots"));
        size_t used = 0;
        json_object *l = hj_get(n, "labels");
        if (l) {
            json_object_object_foreach(l, k, v)
            {
                int w = snprintf(labels + used, sizeof(labels) - used, "%s%s=%s", used ? "," : "",
                                 k, json_object_get_string(v));
                if (w < 0 || (size_t)w >= sizeof(labels) - used)
                    break;
                used += (size_t)w;
            }
        }
        printf("%-16s %-5s %-24s %-9lld %-19s %-5lld %-7s %-5s %s\n", str(n, "name"),
               str(n, "state"), str(n, "address"), num(n, "sandboxes"), mem, num(n, "cpus"), vms,
               str(n, "accelerator"), labels[0] ? labels : "-");
    }
}

int cmd_cluster(struct cli *cli, int argc, char **argv)
{
    enum { OPT_CLUSTER = 256, OPT_JSON, OPT_DOWN, OPT_NO_WAIT };
    static const struct option opts[] = {
        {"cluster", required_argument, NULL, OPT_CLUSTER},
        {"json", no_argument, NULL, OPT_JSON},
        {"down-after", required_argument, NULL, OPT_DOWN},
        {"no-wait", no_argument, NULL, OPT_NO_WAIT},
        {"help", no_argument, NULL, 'h'},
        {0},
    };
    const char *url = getenv("HULL_CLUSTER");
    bool as_json = false, wait = true;
    unsigned long down = 15;
    int c;
    while ((c = cli_getopt(argc, argv, "h", opts)) != -1) {
        char *end = NULL;
        switch (c) {
        case OPT_CLUSTER:
            url = optarg;
            break;
        case OPT_JSON:
            as_json = true;
            break;
        case OPT_NO_WAIT:
            wait = false;
            break;
        case OPT_DOWN:
            errno = 0;
            down = strtoul(optarg, &end, 10);
            if (!cli_plain_number(optarg, false) || errno || end == optarg || *end || down < 1 ||
                down > 3600)
                return cli_usage_error(cli, "--down-after: '%s' is not a number from 1 to 3600",
                                       optarg);
            break;
        case 'h':
            help(stdout);
            return 0;
        default:
            return cli_bad_option(cli, argc, argv, c);
        }
    }
    if (optind >= argc)
        return cli_usage_error(cli, "missing subcommand (nodes, drain)");
    const char *sub = argv[optind++];
    bool drain = strcmp(sub, "drain") == 0;
    if (!drain && strcmp(sub, "nodes") != 0)
        return cli_usage_error(cli, "unknown subcommand '%s' (nodes, drain)", sub);
    if (drain && optind == argc)
        return cli_usage_error(cli, "drain: missing NODE");
    if (optind + drain != argc)
        return cli_usage_error(cli, "unexpected argument '%s'", argv[optind + drain]);
    if (url == NULL || url[0] == '\0')
        return cli_usage_error(cli, "--cluster redis://HOST:PORT is required (or $HULL_CLUSTER)");
    if (drain)
        return cluster_drain(cli, url, argv[optind], as_json, wait, (unsigned)down);
    hull_error err = NULL;
    cleanup_redis redisContext *rc = hull_redis_connect(url, 5000, &err);
    if (rc == NULL)
        return cli_fail(cli, &err, "cluster nodes");
    cleanup_json json_object *a = hull_cluster_nodes(rc, (unsigned)down * 1000, &err);
    if (a == NULL)
        return cli_fail(cli, &err, "cluster nodes");
    if (as_json)
        printf("%s\n", json_object_to_json_string_ext(a, JSON_C_TO_STRING_PLAIN));
    else
        table(a);
    return 0;
}
