/* A microVM sandbox's network and ports (docs/api.md, "microVM sandboxes").
 *
 * Network: the sandbox's "network" (a hull network's name and egress
 * allow-list) is passed to the VM library, which gives the guest a TAP of
 * its own with a lease and the member's egress rules (src/lib/vm/vmnet.c),
 * all tied to QEMU: they go with it whenever it goes (delete, pause to
 * disk, hulld gone). A resume, an adopt after a hulld restart and a create
 * from a template restore a snapshot, and the VM library leases again then:
 * the guest gets the new lease's address (it may differ from the last).
 * "publish" is refused: the snapshot does not carry it, so a resume would
 * drop it silently; the ports API reaches a guest's port instead.
 *
 * Ports (op "socket", the counterpart of keeper_ports.c): a guest has no
 * network namespace on the host to make a socket in. The keeper hands hulld
 * a plain host socket with the address to connect it to, the guest's
 * current lease (read from the VM's record at each connection, so it
 * follows a resume); hulld connects it (sbx_ports.c). The host reaches its
 * networks' members directly (hull's rules filter what members send, not
 * what the host opens to them; docs/network.md), and the bridge's
 * anti-spoofing rules keep any other member from answering for that
 * address. A server bound only to the guest's loopback is not reachable,
 * and a microVM sandbox without a network has no ports (409 naming
 * "ports"). */
#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "ports.h"
#include "util/error.h"
#include "util/json.h"
#include "util/log.h"

int vmk_net_opts(const struct hull_policy *p, struct hull_vm_create_opts *o, hull_error *err)
{
    if (p->network_host)
        return hull_error_set(err, ENOTSUP,
                              "network: \"host\" is not available for microVM sandboxes (a "
                              "guest has its own kernel; give it a hull network by name)");
    if (p->n_publish)
        return hull_error_set(err, ENOTSUP,
                              "network.publish: not available for microVM sandboxes (their "
                              "lease is made again at each resume; use the ports API)");
    o->network = p->network;
    o->egress = p->egress;
    return 0;
}

/* The guest's address of family on its network, from the VM's record. */
static int guest_addr(const char *vm, int family, char *out, size_t len, hull_error *err)
{
    cleanup_free char *text = hull_vm_state(NULL, vm, err);
    if (text == NULL)
        return hull_error_prefix(err, "ports");
    cleanup_json json_object *st = json_tokener_parse(text);
    json_object *net = hj_get(st, "network");
    if (net == NULL)
        return hull_error_set(err, EPERM,
                              "ports: this microVM sandbox has no network; a guest's port is "
                              "reached at its address on a hull network (create it with "
                              "\"network\": NAME)");
    json_object *ip = hj_get(net, family == AF_INET6 ? "ip6" : "ip");
    const char *s = ip ? json_object_get_string(ip) : "";
    unsigned char bin[sizeof(struct in6_addr)];
    if (*s == '\0' || inet_pton(family, s, bin) != 1)
        return hull_error_set(err, EADDRNOTAVAIL, "ports: the guest has no IPv%d address",
                              family == AF_INET6 ? 6 : 4);
    snprintf(out, len, "%s", s);
    return 0;
}

void vmk_socket(const char *vm, bool paused, int sock, struct frame *f)
{
    hull_error e = NULL;
    json_object *v = hj_get(f->hdr, "family");
    int family = v && json_object_get_int(v) == 6 ? AF_INET6 : AF_INET;
    char addr[INET6_ADDRSTRLEN] = "";
    int fd = -1;
    if (paused)
        hull_error_set(&e, EBUSY, "sandbox is paused: its ports answer again once resumed");
    else if (guest_addr(vm, family, addr, sizeof(addr), &e) == 0 &&
             (fd = socket(family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0)) < 0)
        hull_error_errno(&e, "ports: socket");
    if (fd < 0) {
        frame_reply_error(sock, &e);
        return;
    }
    json_object *hdr = json_object_new_object();
    json_object_object_add(hdr, "ok", json_object_new_boolean(1));
    json_object_object_add(hdr, "addr", json_object_new_string(addr));
    frame_send(sock, hdr, NULL, 0, fd);
    json_object_put(hdr);
    close(fd);
}

/* ---- in hulld ---- */

void vmk_ports_renew(const char *id, struct resp *r)
{
    if (r->status != 200 || r->body == NULL)
        return;
    json_object *have = json_object_new_object();
    sbx_ports_show(id, have);
    bool known = hj_get(have, "ports") != NULL;
    json_object_put(have);
    /* Its token died with the hulld that made it: a new one, shown this
     * once, in the resume's answer (no port is open yet). */
    if (known)
        return;
    json_object *o = json_object_get(r->body); /* an error would replace it */
    if (sbx_ports_open(id, NULL, 0, NULL, o, r) < 0)
        hull_log(HULL_LOG_ERROR, "sandbox %s: no new access token", id);
    json_object_put(o);
}
