/* GET /v1/networks: hull's networks (docs/network.md), read from their
 * definitions (HULL_NET_CONFIG_DIR) through the net library, as `hull
 * network list --format json` prints them but without the members: a
 * member is another tenant's sandbox or VM, so each network says only how
 * many it has. Any role may read it; networks are made by an operator
 * (hull network create), never through the API. */
#include <errno.h>
#include <stdlib.h>

#include "daemon.h"
#include "net/net_int.h"
#include "util/json.h"

void api_networks(const struct request *rq, struct resp *r)
{
    (void)rq;
    struct net_def *defs = NULL;
    size_t n = 0;
    hull_error e = NULL;
    if (net_def_list(&defs, &n, &e) < 0) {
        hull_error_prefix(&e, "networks");
        resp_from_error(r, &e);
        return;
    }
    json_object *a = json_object_new_array();
    for (size_t i = 0; i < n; i++) {
        json_object *o = net_def_json(&defs[i]);
        struct net_member *ms = NULL;
        size_t nm = 0;
        /* Unreadable leases: the network is still listed, without a count. */
        if (net_member_list(defs[i].name, &ms, &nm, &e) == 0) {
            json_object_object_add(o, "members", json_object_new_int64((int64_t)nm));
            net_members_free(ms, nm);
        }
        hull_error_free(&e);
        json_object_array_add(a, o);
    }
    free(defs);
    json_object *body = json_object_new_object();
    json_object_object_add(body, "networks", a);
    /* Made on first use, so it may not be listed yet. */
    json_object_object_add(body, "default", json_object_new_string(HULL_NET_DEFAULT));
    resp_json(r, 200, body);
}
