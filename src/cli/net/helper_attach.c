/* hull-net --helper attach/release/adopt: the helper's end of the protocol
 * described in src/lib/net/client.c. */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "net/helper.h"
#include "net/net_int.h"
#include "net_cli.h"
#include "util/json.h"
#include "util/proc.h"

static int publish_from_json(json_object *a, struct hull_publish *p, size_t *n, hull_error *err)
{
    *n = 0;
    if (!a)
        return 0;
    if (!json_object_is_type(a, json_type_array) ||
        json_object_array_length(a) > HULL_NET_MAX_PUBLISH)
        return hull_error_set(err, EINVAL, "publish: not an array of at most %d",
                              HULL_NET_MAX_PUBLISH);
    for (size_t i = 0; i < json_object_array_length(a); i++) {
        json_object *e = json_object_array_get_idx(a, i);
        struct hull_publish *x = &p[(*n)++];
        memset(x, 0, sizeof(*x));
        const char *ip = json_object_get_string(hj_get(e, "host_ip"));
        snprintf(x->host_ip, sizeof(x->host_ip), "%s", ip ? ip : "");
        int hp = json_object_get_int(hj_get(e, "host_port"));
        int pp = json_object_get_int(hj_get(e, "port"));
        const char *proto = json_object_get_string(hj_get(e, "proto"));
        if (hp < 1 || hp > 65535 || pp < 1 || pp > 65535)
            return hull_error_set(err, EINVAL, "publish: a port outside 1-65535");
        x->host_port = (uint16_t)hp;
        x->port = (uint16_t)pp;
        x->udp = proto && strcmp(proto, "udp") == 0;
    }
    return 0;
}

/* Hold: wait for {"op": "detach"} or EOF (the caller is gone), then undo. */
static int hold(int sock, const char *member, hull_error *err)
{
    for (;;) {
        json_object *msg = NULL;
        hull_error e = NULL;
        int rc = hull_net_msg_recv(sock, &msg, NULL, &e);
        hull_error_free(&e);
        bool detach =
            rc > 0 && strcmp(json_object_get_string(hj_get(msg, "op")) ?: "", "detach") == 0;
        json_object_put(msg);
        if (rc > 0 && !detach) {
            hull_error_set(&e, EINVAL, "network helper: expected detach");
            netcli_reply_error(sock, e);
            hull_error_free(&e);
            continue;
        }
        if (net_member_detach(member, false, err) < 0)
            return -1;
        if (rc > 0)
            return netcli_reply(sock, NULL, -1, err);
        return 0;
    }
}

int net_helper_attach(int sock, json_object *req, int fd_in, hull_error *err)
{
    cleanup_close int netns = fd_in;
    struct hull_publish publish[HULL_NET_MAX_PUBLISH];
    struct hull_net_attach_req r = {0};
    signal(SIGPIPE, SIG_IGN);
    r.network = json_object_get_string(hj_get(req, "network"));
    r.member = json_object_get_string(hj_get(req, "member"));
    r.owner_pid = json_object_get_int(hj_get(req, "owner_pid"));
    r.tap = json_object_get_boolean(hj_get(req, "tap"));
    r.hold = json_object_get_boolean(hj_get(req, "hold"));
    r.egress = json_object_get_string(hj_get(req, "egress"));
    r.netns_fd = r.tap ? -1 : netns;
    if (!r.network || !r.member)
        return hull_error_set(err, EINVAL, "network helper: attach needs network and member");
    if (r.owner_pid <= 0)
        r.owner_pid = getppid();
    if (publish_from_json(hj_get(req, "publish"), publish, &r.n_publish, err) < 0)
        return -1;
    r.publish = publish;
    struct net_member m;
    struct hull_net_lease lease;
    int tap_fd = -1;
    if (net_member_attach(&r, &m, &tap_fd, &lease, err) < 0)
        return -1;
    cleanup_close int tap = tap_fd;
    json_object *reply = json_object_new_object();
    json_object_object_add(reply, "lease", net_lease_json(&lease));
    if (netcli_reply(sock, reply, tap, err) < 0) {
        /* The caller is gone before it had the lease: nothing holds it. */
        net_member_detach(m.member, false, NULL);
        net_member_free(&m);
        return -1;
    }
    hull_closep(&tap);
    hull_closep(&netns);
    int rc = r.hold ? hold(sock, m.member, err) : 0;
    net_member_free(&m);
    return rc;
}

int net_helper_release(int sock, json_object *req, int fd_in, hull_error *err)
{
    cleanup_close int unused = fd_in;
    const char *member = json_object_get_string(hj_get(req, "member"));
    if (!member || !net_member_id_valid(member))
        return hull_error_set(err, EINVAL, "network release: not a member id");
    if (net_member_detach(member, false, err) < 0)
        return -1;
    return netcli_reply(sock, NULL, -1, err);
}

int net_helper_adopt(int sock, json_object *req, int fd_in, hull_error *err)
{
    cleanup_close int unused = fd_in;
    const char *member = json_object_get_string(hj_get(req, "member"));
    pid_t pid = json_object_get_int(hj_get(req, "owner_pid"));
    if (!member || !net_member_id_valid(member))
        return hull_error_set(err, EINVAL, "network adopt: not a member id");
    cleanup_close int lock = net_lock(err);
    if (lock < 0)
        return -1;
    struct net_member m;
    if (net_member_load(member, &m, err) < 0)
        return hull_error_prefix(err, "network adopt");
    m.owner_pid = pid;
    m.owner_start = hull_pid_start_time(pid);
    int rc = m.owner_start == 0
                 ? hull_error_set(err, ESRCH, "network adopt: pid %d: no such process", (int)pid)
                 : net_member_save(&m, err);
    net_member_free(&m);
    if (rc < 0)
        return -1;
    return netcli_reply(sock, NULL, -1, err);
}
