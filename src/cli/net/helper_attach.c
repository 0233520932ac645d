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
        /* Asked: the caller's processes have all exited (see
         * net_member_undo). A caller that is gone (EOF) may have left
         * them running a moment longer: its init dies with it, but the
         * link goes first all the same. */
        if (net_member_detach(member, false, rc > 0, err) < 0)
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
    if (hull_publish_from_json(hj_get(req, "publish"), publish, HULL_NET_MAX_PUBLISH, &r.n_publish,
                               err) < 0)
        return -1;
    r.publish = publish;
    struct hull_net_lease want;
    json_object *w = hj_get(req, "want");
    if (w) {
        hull_net_lease_from_json(w, &want);
        r.want = &want;
    }
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
        net_member_detach(m.member, false, false, NULL);
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
    if (fd_in >= 0) /* no fd rides with these */
        close(fd_in);
    const char *member = json_object_get_string(hj_get(req, "member"));
    if (!member || !net_member_id_valid(member))
        return hull_error_set(err, EINVAL, "network release: not a member id");
    if (net_member_detach(member, false, false, err) < 0)
        return -1;
    return netcli_reply(sock, NULL, -1, err);
}

int net_helper_adopt(int sock, json_object *req, int fd_in, hull_error *err)
{
    if (fd_in >= 0) /* no fd rides with these */
        close(fd_in);
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
