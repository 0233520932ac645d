/* nettool: one member attached to a hull network through the library's
 * client (src/lib/net/client.c -> hull-net --helper), the way a sandbox
 * run or a microVM does it. The integration tests drive it.
 *
 *   nettool attach NETWORK MEMBER (NETNS_PATH|--tap) [--egress E]
 *           [--publish P]... [--no-hold] [--owner PID] [--want LEASE_JSON]
 *       prints the lease as one JSON line, then waits: a line or EOF on
 *       stdin detaches (held) and exits 0. With --tap the TAP fd stays
 *       open until then. SIGKILL it to test the crash path.
 *   nettool release MEMBER
 *   nettool adopt MEMBER PID
 *
 * Exit status: 0 done, 1 the library refused (message on stderr), 2 usage.
 */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <json-c/json.h>

#include "hull.h"
#include "net/net.h"

static int fail(hull_error *err)
{
    fprintf(stderr, "nettool: %s\n", hull_error_msg(*err));
    hull_error_free(err);
    return 1;
}

static void print_lease(const struct hull_net_lease *l)
{
    printf("{\"network\": \"%s\", \"member\": \"%s\", \"host_ifname\": \"%s\", \"ifname\": "
           "\"%s\", \"mac\": \"%s\", \"ip4\": \"%s\", \"prefix4\": %u, \"gw4\": \"%s\", "
           "\"ip6\": \"%s\", \"prefix6\": %u, \"gw6\": \"%s\", \"mtu\": %u, \"tap_fd\": %d, "
           "\"n_dns\": %zu}\n",
           l->network, l->member, l->host_ifname, l->ifname, l->mac, l->ip4, l->prefix4, l->gw4,
           l->ip6, l->prefix6, l->gw6, l->mtu, l->tap_fd, l->n_dns);
    fflush(stdout);
}

static int attach(int argc, char **argv)
{
    static struct hull_publish pub[HULL_NET_MAX_PUBLISH];
    struct hull_net_attach_req req = {
        .network = argv[2], .member = argv[3], .hold = true, .netns_fd = -1, .publish = pub};
    hull_error err = NULL;
    const char *ns = argv[4];
    if (strcmp(ns, "--tap") == 0)
        req.tap = true;
    for (int i = 5; i < argc; i++) {
        if (strcmp(argv[i], "--egress") == 0 && i + 1 < argc)
            req.egress = argv[++i];
        else if (strcmp(argv[i], "--publish") == 0 && i + 1 < argc) {
            if (req.n_publish == HULL_NET_MAX_PUBLISH ||
                hull_publish_parse(argv[++i], &pub[req.n_publish++], &err) < 0)
                return err ? fail(&err) : 2;
        } else if (strcmp(argv[i], "--no-hold") == 0)
            req.hold = false;
        else if (strcmp(argv[i], "--owner") == 0 && i + 1 < argc)
            req.owner_pid = atoi(argv[++i]);
        else if (strcmp(argv[i], "--want") == 0 && i + 1 < argc) {
            /* A member moving in: exactly this MAC and these addresses. */
            static struct hull_net_lease want;
            json_object *w = json_tokener_parse(argv[++i]);
            if (!w)
                return 2;
            hull_net_lease_from_json(w, &want);
            json_object_put(w);
            req.want = &want;
        } else
            return 2;
    }
    if (!req.tap) {
        req.netns_fd = open(ns, O_RDONLY | O_CLOEXEC);
        if (req.netns_fd < 0) {
            perror(ns);
            return 1;
        }
    }
    struct hull_net_session *s = NULL;
    struct hull_net_lease lease;
    if (hull_net_attach(&req, &s, &lease, &err) < 0)
        return fail(&err);
    if (req.netns_fd >= 0)
        close(req.netns_fd);
    print_lease(&lease);
    char line[64];
    if (!fgets(line, sizeof(line), stdin))
        line[0] = '\0';
    if (lease.tap_fd >= 0)
        close(lease.tap_fd);
    if (hull_net_detach(s, &err) < 0)
        return fail(&err);
    return 0;
}

int main(int argc, char **argv)
{
    hull_error err = NULL;
    if (argc >= 5 && strcmp(argv[1], "attach") == 0)
        return attach(argc, argv);
    if (argc == 3 && strcmp(argv[1], "release") == 0)
        return hull_net_release(argv[2], &err) < 0 ? fail(&err) : 0;
    if (argc == 4 && strcmp(argv[1], "adopt") == 0)
        return hull_net_adopt(argv[2], atoi(argv[3]), &err) < 0 ? fail(&err) : 0;
    fprintf(stderr, "usage: nettool attach NETWORK MEMBER NETNS|--tap [--egress E] [--publish P] "
                    "[--no-hold] [--owner PID] [--want LEASE_JSON] | release MEMBER | "
                    "adopt MEMBER PID\n");
    return 2;
}
