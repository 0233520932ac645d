/* hull_net_attach/detach/release/adopt: the caller's end of the hull-net
 * helper protocol (helper.h). The requests and answers, one JSON object
 * each:
 *
 *   attach  {"network", "member", "owner_pid", "tap", "egress", "hold",
 *            "publish": [{"host_ip", "host_port", "port", "proto"}],
 *            "want": {"mac", "ip4", "prefix4", "gw4", "ip6", "prefix6", "gw6"}}
 *           (want: only for a member moving in, net.h)
 *           + the member's netns fd (veth)  ->  {"ok", "lease": {...}} + TAP fd
 *           then, with hold: {"op": "detach"} -> {"ok"}  (or EOF: undone too)
 *   release {"member"}                  ->  {"ok"}
 *   adopt   {"member", "owner_pid"}     ->  {"ok"}
 *
 * No libmnl or libnftables here: the static hull links this file. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "net/helper.h"
#include "net/net.h"
#include "util/json.h"

struct hull_net_session {
    struct hull_net_helper h;
    char member[80];
    bool requested; /* a spawned helper that has its attach request */
};

static void copy_str(char *dst, size_t len, json_object *o, const char *key)
{
    const char *s = json_object_get_string(hj_get(o, key));
    snprintf(dst, len, "%s", s ? s : "");
}

void hull_net_lease_from_json(json_object *o, struct hull_net_lease *l)
{
    memset(l, 0, sizeof(*l));
    copy_str(l->network, sizeof(l->network), o, "network");
    copy_str(l->member, sizeof(l->member), o, "member");
    copy_str(l->host_ifname, sizeof(l->host_ifname), o, "host_ifname");
    copy_str(l->ifname, sizeof(l->ifname), o, "ifname");
    copy_str(l->mac, sizeof(l->mac), o, "mac");
    copy_str(l->ip4, sizeof(l->ip4), o, "ip4");
    copy_str(l->gw4, sizeof(l->gw4), o, "gw4");
    copy_str(l->ip6, sizeof(l->ip6), o, "ip6");
    copy_str(l->gw6, sizeof(l->gw6), o, "gw6");
    l->prefix4 = (unsigned)json_object_get_int(hj_get(o, "prefix4"));
    l->prefix6 = (unsigned)json_object_get_int(hj_get(o, "prefix6"));
    l->mtu = (unsigned)json_object_get_int(hj_get(o, "mtu"));
    json_object *dns = hj_get(o, "dns");
    for (size_t i = 0; dns && i < json_object_array_length(dns) && i < HULL_NET_MAX_DNS; i++)
        snprintf(l->dns[l->n_dns++], sizeof(l->dns[0]), "%s",
                 json_object_get_string(json_object_array_get_idx(dns, i)));
    l->tap_fd = -1;
}

static json_object *request_json(const struct hull_net_attach_req *req)
{
    json_object *msg = json_object_new_object();
    json_object_object_add(msg, "network",
                           json_object_new_string(req->network ? req->network : HULL_NET_DEFAULT));
    json_object_object_add(msg, "member", json_object_new_string(req->member ? req->member : ""));
    json_object_object_add(msg, "owner_pid",
                           json_object_new_int(req->owner_pid > 0 ? req->owner_pid : getpid()));
    json_object_object_add(msg, "tap", json_object_new_boolean(req->tap));
    json_object_object_add(msg, "hold", json_object_new_boolean(req->hold));
    if (req->egress)
        json_object_object_add(msg, "egress", json_object_new_string(req->egress));
    json_object_object_add(msg, "publish", hull_publish_to_json(req->publish, req->n_publish));
    if (req->want)
        json_object_object_add(msg, "want", hull_net_want_json(req->want));
    return msg;
}

json_object *hull_net_want_json(const struct hull_net_lease *w)
{
    json_object *o = json_object_new_object();
    json_object_object_add(o, "mac", json_object_new_string(w->mac));
    json_object_object_add(o, "ip4", json_object_new_string(w->ip4));
    json_object_object_add(o, "prefix4", json_object_new_int((int)w->prefix4));
    json_object_object_add(o, "gw4", json_object_new_string(w->gw4));
    json_object_object_add(o, "ip6", json_object_new_string(w->ip6));
    json_object_object_add(o, "prefix6", json_object_new_int((int)w->prefix6));
    json_object_object_add(o, "gw6", json_object_new_string(w->gw6));
    return o;
}

int hull_net_attach_request(const struct hull_net_attach_req *req, hull_error *err)
{
    struct hull_net_session *pre = req->helper;
    if (!pre || pre->requested || !req->hold || req->tap)
        return hull_error_set(err, EINVAL, "network: an early request needs a spawned helper");
    cleanup_json json_object *msg = request_json(req);
    if (hull_net_msg_send(pre->h.sock, msg, req->netns_fd, err) < 0)
        return -1;
    pre->requested = true;
    return 0;
}

int hull_net_attach_spawn(struct hull_net_session **helper, hull_error *err)
{
    *helper = NULL;
    struct hull_net_session *s = calloc(1, sizeof(*s));
    if (!s)
        return hull_error_set(err, ENOMEM, "out of memory");
    if (hull_net_helper_spawn("attach", &s->h, err) < 0) {
        free(s);
        return -1;
    }
    *helper = s;
    return 0;
}

void hull_net_session_drop(struct hull_net_session **helper)
{
    if (!*helper)
        return;
    hull_net_helper_end(&(*helper)->h, NULL);
    free(*helper);
    *helper = NULL;
}

int hull_net_attach(const struct hull_net_attach_req *req, struct hull_net_session **session,
                    struct hull_net_lease *lease, hull_error *err)
{
    struct hull_net_session *pre = req->helper;
    if (session)
        *session = NULL;
    if (pre && (!req->hold || req->tap)) {
        hull_net_session_drop(&pre);
        return hull_error_set(err, EINVAL, "network: a spawned helper is for a held veth attach");
    }
    if (req->hold && !session) {
        hull_net_session_drop(&pre);
        return hull_error_set(err, EINVAL, "network: a held attach needs a session");
    }
    cleanup_json json_object *msg = request_json(req);
    struct hull_net_helper h;
    cleanup_json json_object *reply = NULL;
    int tap_fd = -1;
    int rc;
    if (pre) {
        bool requested = pre->requested;
        h = pre->h;
        free(pre);
        rc = requested ? hull_net_helper_answer(&h, &reply, &tap_fd, err)
                       : hull_net_helper_first(&h, msg, req->netns_fd, &reply, &tap_fd, err);
    } else {
        rc = hull_net_helper_start("attach", msg, req->tap ? -1 : req->netns_fd, &h, &reply,
                                   &tap_fd, err);
    }
    if (rc < 0)
        return -1;
    hull_net_lease_from_json(hj_get(reply, "lease"), lease);
    lease->tap_fd = tap_fd;
    if (req->tap && tap_fd < 0) {
        hull_net_helper_end(&h, NULL);
        return hull_error_set(err, EPROTO, "network helper: no TAP fd in the answer");
    }
    if (!req->hold)
        return hull_net_helper_end(&h, err);
    struct hull_net_session *s = malloc(sizeof(*s));
    if (!s) {
        if (tap_fd >= 0)
            close(tap_fd);
        lease->tap_fd = -1;
        hull_net_helper_end(&h, NULL); /* EOF: the helper undoes the attach */
        return hull_error_set(err, ENOMEM, "out of memory");
    }
    s->h = h;
    snprintf(s->member, sizeof(s->member), "%s", req->member);
    *session = s;
    return 0;
}

int hull_net_detach(struct hull_net_session *session, hull_error *err)
{
    if (!session)
        return 0;
    cleanup_json json_object *msg = json_object_new_object();
    json_object_object_add(msg, "op", json_object_new_string("detach"));
    hull_error call_err = NULL;
    int rc = hull_net_helper_call(&session->h, msg, NULL, &call_err);
    bool gone = rc < 0 && hull_error_code(call_err) == EPIPE;
    if (hull_net_helper_end(&session->h, rc < 0 ? NULL : err) < 0)
        rc = -1;
    if (gone) {
        /* The holding helper died (killed on its own): undo by member id
         * with a new one, as a crash sweep would. */
        hull_error_free(&call_err);
        rc = hull_net_release(session->member, err);
    } else if (call_err) {
        *err = call_err;
    }
    free(session);
    return rc;
}

int hull_net_release(const char *member, hull_error *err)
{
    cleanup_json json_object *msg = json_object_new_object();
    json_object_object_add(msg, "member", json_object_new_string(member ? member : ""));
    return hull_net_helper_once("release", msg, -1, NULL, NULL, err);
}

int hull_net_adopt(const char *member, pid_t owner_pid, hull_error *err)
{
    cleanup_json json_object *msg = json_object_new_object();
    json_object_object_add(msg, "member", json_object_new_string(member ? member : ""));
    json_object_object_add(msg, "owner_pid", json_object_new_int(owner_pid));
    return hull_net_helper_once("adopt", msg, -1, NULL, NULL, err);
}
