/* A microVM on a hull network (docs/vm.md, "Networks").
 *
 * QEMU runs confined, without a capability, in an empty network namespace
 * of its own: it can make no TAP and join no bridge. hull asks the hull-net
 * helper (net.h) for a TAP on the network's bridge with a lease (MAC,
 * addresses, gateway, resolvers) and the member's egress and publish
 * rules; QEMU inherits the TAP's fd (confine.c) and gives the guest a
 * virtio-net card with the lease's MAC (vmm_qemu.c). The agent configures
 * the card from the lease (agent_net.c).
 *
 * The lease's life is QEMU's: attached without "hold" (hull itself
 * exits after `vm start`), it is handed to QEMU's pid at once, so the
 * helper's sweep releases it if QEMU dies unseen; stop, delete and every
 * path that finds QEMU dead release it by member id.
 *
 * Only client.c and parse.c of net/ are called from here: this runs in
 * the static hull, which links no libmnl or libnftables.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "util/error.h"
#include "util/json.h"
#include "util/log.h"
#include "vm/agent.h"
#include "vm/vm.h"

/* The lease's owner id: the VM's id and a hash of its directory, so VMs
 * of the same id under two state roots do not share one. */
static void member_of(const struct vm *vm, char out[80])
{
    uint32_t h = 2166136261u;
    for (const char *p = vm->dir; *p; p++)
        h = (h ^ (uint8_t)*p) * 16777619u;
    snprintf(out, 80, "vm-%s-%08x", vm->id, h);
}

/* A network's definition exists (the default one is made on first use). */
static int net_known(const char *name, hull_error *err)
{
    if (strcmp(name, HULL_NET_DEFAULT) == 0)
        return 0;
    const char *dir = getenv("HULL_NET_CONFIG_DIR");
    char p[4200];
    snprintf(p, sizeof(p), "%s/%s.json", dir && *dir ? dir : HULL_NET_CONFIG_DIR, name);
    if (access(p, F_OK) < 0)
        return hull_error_set(err, ENOENT, "--network %s: no such network (hull network create %s)",
                              name, name);
    return 0;
}

int vm_net_setup(struct vm *vm, const struct vm_create_opts *o, hull_error *err)
{
    vm->lease.tap_fd = -1;
    const char *name = o->network;
    if (name && strcmp(name, "none") == 0)
        name = NULL;
    if (!name || !*name) {
        if ((o->egress && *o->egress) || o->n_publish)
            return hull_error_set(err, EINVAL, "--%s needs --network NAME",
                                  o->n_publish ? "publish" : "egress");
        return 0;
    }
    if (strcmp(name, "host") == 0)
        return hull_error_set(err, ENOTSUP,
                              "--network host: a microVM cannot share the host's network (it "
                              "has its own kernel); give it a hull network: --network NAME");
    if (!hull_net_name_valid(name))
        return hull_error_set(err, EINVAL,
                              "--network %s: not a network name ([a-z0-9][a-z0-9_.-], at most %d "
                              "bytes)",
                              name, HULL_NET_NAME_MAX);
    if (net_known(name, err) < 0)
        return -1;
    struct hull_egress eg;
    if (hull_egress_parse(o->egress, &eg, err) < 0)
        return hull_error_prefix(err, "--egress");
    if (o->egress && strlen(o->egress) >= sizeof(vm->egress))
        return hull_error_set(err, E2BIG, "--egress: longer than %zu bytes",
                              sizeof(vm->egress) - 1);
    if (o->n_publish > HULL_NET_MAX_PUBLISH)
        return hull_error_set(err, E2BIG, "--publish: at most %d ports", HULL_NET_MAX_PUBLISH);
    snprintf(vm->network, sizeof(vm->network), "%s", name);
    snprintf(vm->egress, sizeof(vm->egress), "%s", o->egress ? o->egress : "");
    for (size_t i = 0; i < o->n_publish; i++)
        vm->publish[i] = o->publish[i];
    vm->n_publish = o->n_publish;
    return 0;
}

void vm_net_manifest(const struct vm *vm, json_object *m)
{
    json_object *net = hj_get(m, "network");
    if (!net || !vm->network[0])
        return;
    json_object_object_add(net, "publish", hull_publish_to_json(vm->publish, vm->n_publish));
    json_object_object_add(net, "lease", hull_net_want_json(&vm->lease));
}

int vm_net_from_manifest(json_object *m, struct vm *vm, hull_error *err)
{
    json_object *net = hj_get(m, "network");
    if (!net)
        return 0;
    json_object *l = hj_get(net, "lease");
    if (!l)
        return hull_error_set(err, EPROTO, "the manifest has a network without its lease");
    if (hull_publish_from_json(hj_get(net, "publish"), vm->publish, HULL_NET_MAX_PUBLISH,
                               &vm->n_publish, err) < 0)
        return hull_error_prefix(err, "the manifest's published ports");
    hull_net_lease_from_json(l, &vm->lease);
    if (!vm->lease.ip4[0] || !vm->lease.mac[0])
        return hull_error_set(err, EPROTO, "the manifest's lease has no address or MAC");
    vm->lease_wanted = true;
    return 0;
}

int vm_net_attach(struct vm *vm, hull_error *err)
{
    /* A migrated VM asks for exactly the lease it had (vm_net_from_manifest). */
    struct hull_net_lease want = vm->lease;
    bool wanted = vm->lease_wanted;
    vm->lease_wanted = false;
    memset(&vm->lease, 0, sizeof(vm->lease));
    vm->lease.tap_fd = -1;
    if (!vm->network[0])
        return 0;
    char member[80];
    member_of(vm, member);
    /* Owned by this process until QEMU runs (vm_net_adopt): if hull dies
     * in between, the sweep takes the lease back. */
    struct hull_net_attach_req req = {
        .network = vm->network,
        .member = member,
        .owner_pid = 0,
        .tap = true,
        .netns_fd = -1,
        .egress = vm->egress[0] ? vm->egress : NULL,
        .publish = vm->publish,
        .n_publish = vm->n_publish,
        .hold = false,
        .want = wanted ? &want : NULL,
    };
    if (hull_net_attach(&req, NULL, &vm->lease, err) < 0) {
        memset(&vm->lease, 0, sizeof(vm->lease));
        vm->lease.tap_fd = -1;
        return hull_error_prefix(err, "network %s", vm->network);
    }
    if (vm->lease.tap_fd < 0) {
        vm_net_release(vm);
        return hull_error_set(err, EPROTO, "network %s: the helper gave no TAP", vm->network);
    }
    hull_debug("vm %s: %s on %s (TAP %s, MAC %s)", vm->id, vm->lease.ip4, vm->network,
               vm->lease.host_ifname, vm->lease.mac);
    return 0;
}

int vm_net_adopt(struct vm *vm, hull_error *err)
{
    if (!vm->network[0])
        return 0;
    if (vm->lease.tap_fd >= 0) {
        /* QEMU has its own copy: the TAP lives exactly as long as QEMU. */
        close(vm->lease.tap_fd);
        vm->lease.tap_fd = -1;
    }
    char member[80];
    member_of(vm, member);
    if (hull_net_adopt(member, vm->pid, err) < 0)
        return hull_error_prefix(err, "network %s: hand the lease to QEMU", vm->network);
    return 0;
}

void vm_net_release(struct vm *vm)
{
    if (!vm->network[0])
        return;
    if (vm->lease.tap_fd >= 0)
        close(vm->lease.tap_fd);
    vm->lease.tap_fd = -1;
    char member[80];
    member_of(vm, member);
    hull_error e = NULL;
    if (hull_net_release(member, &e) < 0) {
        /* Release goes on; the helper's sweep retries once QEMU is gone. */
        hull_warn("VM %s: release its network lease: %s", vm->id, hull_error_msg(e));
        hull_error_free(&e);
    }
    memset(&vm->lease, 0, sizeof(vm->lease));
    vm->lease.tap_fd = -1;
}

int vm_net_configure(struct vm *vm, struct vm_agent *a, hull_error *err)
{
    if (!vm->network[0])
        return 0;
    const struct hull_net_lease *l = &vm->lease;
    json_object *req = json_object_new_object();
    json_object_object_add(req, "op", json_object_new_string("net"));
    json_object_object_add(req, "ifname",
                           json_object_new_string(l->ifname[0] ? l->ifname : "eth0"));
    json_object_object_add(req, "mac", json_object_new_string(l->mac));
    json_object_object_add(req, "ip4", json_object_new_string(l->ip4));
    json_object_object_add(req, "prefix4", json_object_new_int((int)l->prefix4));
    json_object_object_add(req, "gw4", json_object_new_string(l->gw4));
    json_object_object_add(req, "ip6", json_object_new_string(l->ip6));
    json_object_object_add(req, "prefix6", json_object_new_int((int)l->prefix6));
    json_object_object_add(req, "gw6", json_object_new_string(l->gw6));
    json_object_object_add(req, "mtu", json_object_new_int((int)l->mtu));
    json_object *dns = json_object_new_array();
    for (size_t i = 0; i < l->n_dns && i < HULL_NET_MAX_DNS; i++)
        json_object_array_add(dns, json_object_new_string(l->dns[i]));
    json_object_object_add(req, "dns", dns);
    json_object_object_add(req, "hostname", json_object_new_string(vm->id));
    /* Module loading and the ioctls take a moment under emulation. */
    if (vm_agent_call(a, req, 60000, NULL, err) < 0)
        return hull_error_prefix(err, "network %s: configure the guest", vm->network);
    return 0;
}
