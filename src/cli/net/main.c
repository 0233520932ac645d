/* hull-net: the program behind `hull network` (hull execs it with argv
 * starting at the verb), and `hull-net --helper VERB`, the one place where
 * runs change the host's network (src/lib/net/net.h).
 *
 * Exit codes: 0 success, 1 any failure (usage errors included, as in the
 * rest of hull); a failed verb leaves the host as it was. */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "net/helper.h"
#include "net_cli.h"
#include "util/json.h"

static const struct {
    const char *name, *alias;
    netcli_verb_fn fn;
    const char *summary;
} verbs[] = {
    {"create", NULL, net_create, "make a network (a bridge, a subnet, hull's rules)"},
    {"list", "ls", net_list, "list networks"},
    {"inspect", NULL, net_inspect, "print networks and their members as JSON"},
    {"remove", "rm", net_remove, "remove networks (--force: and their members' leases)"},
    {"prune", NULL, net_prune, "remove unused networks and whatever a crash left"},
};

static const struct {
    const char *name;
    netcli_helper_fn fn;
} helpers[] = {
    {"attach", net_helper_attach},   {"release", net_helper_release},   {"adopt", net_helper_adopt},
    {"move-in", net_helper_move_in}, {"move-out", net_helper_move_out},
};

static void usage(FILE *out)
{
    fprintf(out, "usage: hull network COMMAND [options] [arguments]\n"
                 "\n"
                 "hull's own networks: a bridge each, leased addresses, NAT, published\n"
                 "ports and egress rules in nftables tables of hull's own\n"
                 "(docs/network.md, hull-network(1)).\n"
                 "\n"
                 "Commands:\n");
    for (size_t i = 0; i < sizeof(verbs) / sizeof(verbs[0]); i++)
        fprintf(out, "  %-8s %s\n", verbs[i].name, verbs[i].summary);
    fprintf(out, "\n'hull network COMMAND --help' says more.\n");
}

int netcli_fail(const char *verb, hull_error *err)
{
    hull_error_print(stderr, "hull: network %s: %s", verb, hull_error_msg(*err));
    hull_error_free(err);
    return 1;
}

int netcli_reply(int sock, json_object *extra, int fd, hull_error *err)
{
    json_object *r = extra ? extra : json_object_new_object();
    json_object_object_add(r, "ok", json_object_new_boolean(1));
    int rc = hull_net_msg_send(sock, r, fd, err);
    json_object_put(r);
    return rc;
}

void netcli_reply_error(int sock, hull_error e)
{
    json_object *r = json_object_new_object();
    json_object_object_add(r, "ok", json_object_new_boolean(0));
    json_object_object_add(r, "errno", json_object_new_int(e ? hull_error_code(e) : EIO));
    json_object_object_add(r, "error", json_object_new_string(e ? hull_error_msg(e) : "failed"));
    hull_net_msg_send(sock, r, -1, NULL);
    json_object_put(r);
}

static int helper_main(const char *verb)
{
    for (size_t i = 0; i < sizeof(helpers) / sizeof(helpers[0]); i++) {
        if (strcmp(verb, helpers[i].name) != 0)
            continue;
        hull_error e = NULL;
        json_object *req = NULL;
        int fd = -1;
        int rc = hull_net_msg_recv(0, &req, &fd, &e);
        if (rc == 0)
            return 1; /* the caller went away before asking */
        if (rc > 0)
            rc = helpers[i].fn(0, req, fd, &e);
        json_object_put(req);
        if (rc < 0) {
            netcli_reply_error(0, e);
            hull_error_free(&e);
            return 1;
        }
        return 0;
    }
    fprintf(stderr, "hull: network helper: unknown verb '%s'\n", verb);
    return 1;
}

int main(int argc, char **argv)
{
    if (argc >= 3 && strcmp(argv[1], "--helper") == 0)
        return helper_main(argv[2]);
    if (argc < 2) {
        usage(stderr);
        return 1;
    }
    if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0 ||
        strcmp(argv[1], "help") == 0) {
        usage(stdout);
        return 0;
    }
    for (size_t i = 0; i < sizeof(verbs) / sizeof(verbs[0]); i++)
        if (strcmp(argv[1], verbs[i].name) == 0 ||
            (verbs[i].alias && strcmp(argv[1], verbs[i].alias) == 0))
            return verbs[i].fn(argc - 1, argv + 1);
    fprintf(stderr, "hull: network: unknown command '%s' (see 'hull network --help')\n", argv[1]);
    return 1;
}
