/* `hull vm migrate` and `hull vm receive`: moving a running microVM to
 * another hull (hull_vm_migrate, hull_vm_receive; docs/vm.md "Migration").
 *
 *   hull vm receive --listen HOST:PORT AUTH [--id NEWID] [--timeout S]
 *   hull vm migrate --to HOST:PORT AUTH [--tls-name NAME] [--mode live|cold]
 *                   [--bandwidth RATE] [--timeout S] ID
 *   hull vm migrate --to NODE --cluster URL [--mode live|cold] [--timeout S] ID
 *                   (a fleet's microVM sandbox, moved by the node running it:
 *                   cluster_drain.c; docs/cluster.md "Moving sandboxes")
 *
 * AUTH: --tls-cert F --tls-key F --tls-ca F (mutual TLS), or
 * --insecure-plain --token-file F (the token channel, not encrypted).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

static void usage(void)
{
    printf("usage: hull vm receive --listen HOST:PORT AUTH [--id NEWID] [--timeout S]\n"
           "       hull vm migrate --to HOST:PORT AUTH [--tls-name NAME] [--mode live|cold]\n"
           "                       [--bandwidth RATE] [--timeout S] ID\n"
           "       hull vm migrate --to NODE --cluster redis://HOST:PORT [--mode live|cold]\n"
           "                       [--timeout S] SANDBOX\n"
           "AUTH:  --tls-cert F --tls-key F --tls-ca F\n"
           "       --insecure-plain --token-file F\n\n"
           "receive waits for one migration (HOST:PORT, port 0 for any; \"listening on\n"
           "ADDR\" on stderr once ready), runs the VM here as NEWID (default: the\n"
           "source's id) and prints what it received as JSON.\n"
           "migrate moves VM ID to that receiver: live (the guest runs while its memory\n"
           "is copied) or cold (stopped, copied, started there), prints the times as\n"
           "JSON (total_ms, downtime_ms, qemu_downtime_ms, bytes, rounds). Any failure\n"
           "before the receiver runs the guest leaves it running here.\n"
           "The channel is TLS 1.3, each side checking the other's certificate:\n"
           "  --tls-cert F    our certificate (PEM, chain)\n"
           "  --tls-key F     its private key (PEM, mode 0600)\n"
           "  --tls-ca F      the CA the peer's certificate must chain to\n"
           "  --tls-name N    (migrate) the name or address the receiver's certificate\n"
           "                  must carry (default: the HOST of --to)\n"
           "  --insecure-plain  no TLS: guest memory crosses the network in clear,\n"
           "                  both sides prove a shared token\n"
           "  --token-file F  that token (mode 0600, at least 16 bytes)\n"
           "  --bandwidth R   cap the stream, bytes/s with K, M or G (e.g. 50M)\n"
           "  --timeout S     the longest wait for the peer (migrate 60, receive 300;\n"
           "                  with --cluster, for the move's answer: 1800)\n"
           "With --cluster (or $HULL_CLUSTER and a --to without ':'), SANDBOX is a\n"
           "microVM sandbox of a hull fleet and NODE the node to move it to: the node\n"
           "running it is asked through Redis and moves it over its own channel, as\n"
           "POST /v1/sandboxes/SANDBOX/migrate does; its answer is printed.\n");
}

static int parse_rate(const char *s, uint64_t *out)
{
    char *end;
    errno = 0;
    if (!cli_plain_number(s, false))
        return -1;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno || end == s)
        return -1;
    int shift = 0;
    if (*end == 'K' || *end == 'k')
        shift = 10;
    else if (*end == 'M' || *end == 'm')
        shift = 20;
    else if (*end == 'G' || *end == 'g')
        shift = 30;
    if (shift)
        end++;
    if (*end || v == 0 || v > (UINT64_MAX >> shift))
        return -1;
    *out = (uint64_t)v << shift;
    return 0;
}

static int parse_secs(const char *s, unsigned *out)
{
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (!cli_plain_number(s, false) || errno || end == s || *end || v <= 0 || v > 86400)
        return -1;
    *out = (unsigned)v;
    return 0;
}

enum {
    O_TO = 1,
    O_TOKEN,
    O_MODE,
    O_BW,
    O_TIMEOUT,
    O_LISTEN,
    O_ID,
    O_HELP,
    O_CERT,
    O_KEY,
    O_CA,
    O_NAME,
    O_PLAIN,
    O_CLUSTER
};

static const struct option opts[] = {
    {"to", required_argument, NULL, O_TO},
    {"token-file", required_argument, NULL, O_TOKEN},
    {"mode", required_argument, NULL, O_MODE},
    {"bandwidth", required_argument, NULL, O_BW},
    {"timeout", required_argument, NULL, O_TIMEOUT},
    {"listen", required_argument, NULL, O_LISTEN},
    {"id", required_argument, NULL, O_ID},
    {"help", no_argument, NULL, O_HELP},
    {"tls-cert", required_argument, NULL, O_CERT},
    {"tls-key", required_argument, NULL, O_KEY},
    {"tls-ca", required_argument, NULL, O_CA},
    {"tls-name", required_argument, NULL, O_NAME},
    {"insecure-plain", no_argument, NULL, O_PLAIN},
    {"cluster", required_argument, NULL, O_CLUSTER},
    {0},
};

static const char *opt_name(int val)
{
    for (const struct option *o = opts; o->name; o++)
        if (o->val == val)
            return o->name;
    return "?";
}

static void ready(const char *addr, void *arg)
{
    (void)arg;
    fprintf(stderr, "listening on %s\n", addr);
    fflush(stderr);
}

/* argv[0] is "migrate" or "receive". */
int cmd_vm_migrate(struct cli *cli, int argc, char **argv)
{
    bool recv = strcmp(argv[0], "receive") == 0;
    struct hull_vm_migrate_opts m = {0};
    struct hull_vm_receive_opts r = {.ready = ready};
    const char *mode = "live", *cluster = NULL;
    bool channel_opts = false, timeout_given = false;
    int c;
    optind = 0;
    opterr = 0; /* said once, by cli_bad_option */
    while ((c = getopt_long(argc, argv, "+:", opts, NULL)) != -1) {
        bool mine = c == O_TOKEN || c == O_TIMEOUT || c == O_HELP || c == O_CERT || c == O_KEY ||
                    c == O_CA || c == O_PLAIN ||
                    (recv ? c == O_LISTEN || c == O_ID
                          : c == O_TO || c == O_MODE || c == O_BW || c == O_NAME || c == O_CLUSTER);
        channel_opts = channel_opts || c == O_TOKEN || c == O_CERT || c == O_KEY || c == O_CA ||
                       c == O_PLAIN || c == O_BW || c == O_NAME;
        timeout_given = timeout_given || c == O_TIMEOUT;
        if (c == '?' || c == ':')
            return cli_bad_option(cli, argc, argv, c);
        if (!mine)
            return cli_usage_error(cli, "option --%s does not apply here", opt_name(c));
        switch (c) {
        case O_HELP:
            usage();
            return 0;
        case O_TO:
            m.to = optarg;
            break;
        case O_TOKEN:
            m.token_file = r.token_file = optarg;
            break;
        case O_MODE:
            mode = optarg;
            if (strcmp(mode, "live") != 0 && strcmp(mode, "cold") != 0)
                return cli_usage_error(cli, "--mode %s: live or cold", mode);
            break;
        case O_BW:
            if (parse_rate(optarg, &m.bandwidth) < 0)
                return cli_usage_error(cli, "--bandwidth %s: not a rate (e.g. 50M)",
                                       optarg[0] ? optarg : "''");
            break;
        case O_TIMEOUT:
            if (parse_secs(optarg, &m.timeout_s) < 0)
                return cli_usage_error(cli, "--timeout %s: not a number of seconds",
                                       optarg[0] ? optarg : "''");
            r.timeout_s = m.timeout_s;
            break;
        case O_LISTEN:
            r.listen = optarg;
            break;
        case O_ID:
            r.id = optarg;
            break;
        case O_CERT:
            m.tls_cert = r.tls_cert = optarg;
            break;
        case O_KEY:
            m.tls_key = r.tls_key = optarg;
            break;
        case O_CA:
            m.tls_ca = r.tls_ca = optarg;
            break;
        case O_NAME:
            m.tls_name = optarg;
            break;
        case O_PLAIN:
            m.insecure_plain = r.insecure_plain = true;
            break;
        case O_CLUSTER:
            cluster = optarg;
            break;
        }
    }
    hull_error err = NULL;
    if (recv) {
        if (!r.listen)
            return cli_usage_error(cli, "--listen is required");
        if (cli_need_args(cli, argc, argv, 0, ""))
            return 1;
        char *out = NULL;
        if (hull_vm_receive(&cli->rt, &r, &out, &err) < 0)
            return cli_fail(cli, &err, NULL);
        printf("%s\n", out);
        free(out);
        return 0;
    }
    if (!m.to)
        return cli_usage_error(cli, "--to is required");
    if (cli_need_args(cli, argc, argv, 1, "ID"))
        return 1;
    m.cold = strcmp(mode, "cold") == 0;
    /* A node name: the fleet's move, over the nodes' own channel. */
    const char *env = getenv("HULL_CLUSTER");
    if (!cluster && !strchr(m.to, ':') && env && *env)
        cluster = env;
    if (cluster) {
        if (channel_opts)
            return cli_usage_error(cli, "--cluster: the nodes move it over their own channel "
                                        "(--tls-*, --token-file, --insecure-plain and "
                                        "--bandwidth do not apply)");
        return cluster_migrate(cli, cluster, argv[optind], m.to, m.cold,
                               timeout_given ? m.timeout_s : 1800, 15);
    }
    if (!strchr(m.to, ':'))
        return cli_usage_error(cli,
                               "--to %s: not HOST:PORT (a node name needs --cluster "
                               "redis://HOST:PORT or $HULL_CLUSTER)",
                               m.to);
    struct hull_vm_migrate_result res;
    if (hull_vm_migrate(&cli->rt, argv[optind], &m, &res, &err) < 0)
        return cli_fail(cli, &err, NULL);
    char *out = hull_vm_migrate_result_json(&res);
    printf("%s\n", out ? out : "{}");
    free(out);
    return 0;
}
