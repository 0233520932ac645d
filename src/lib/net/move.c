/* hull_net_move_in/out (OCI linux.netDevices) over the hull-net helper:
 * the static hull carries no netlink library, so the moves are the
 * helper's (src/cli/net/helper_move.c); this side only asks. */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "net/helper.h"
#include "net/net.h"
#include "util/json.h"

static json_object *request(const char *from, const char *to)
{
    json_object *req = json_object_new_object();
    json_object_object_add(req, "name", json_object_new_string(from));
    if (to && to[0])
        json_object_object_add(req, "new_name", json_object_new_string(to));
    return req;
}

int hull_net_move_in(const char *name, const char *new_name, int netns_fd, char *got,
                     size_t got_len, hull_error *err)
{
    json_object *req = request(name, new_name);
    json_object *reply = NULL;
    int rc = hull_net_helper_once("move-in", req, netns_fd, &reply, NULL, err);
    json_object_put(req);
    if (rc < 0)
        return -1;
    const char *inside = json_object_get_string(hj_get(reply, "ifname"));
    if (got && got_len)
        snprintf(got, got_len, "%s", inside ? inside : (new_name && new_name[0] ? new_name : name));
    json_object_put(reply);
    return 0;
}

int hull_net_move_out(const char *inside_name, const char *name, int netns_fd, hull_error *err)
{
    json_object *req = request(inside_name, name);
    int rc = hull_net_helper_once("move-out", req, netns_fd, NULL, NULL, err);
    json_object_put(req);
    return rc;
}
