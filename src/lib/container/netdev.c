/* linux.netDevices at create and delete: the named host interfaces go into
 * the container's network namespace and come back to the host.
 *
 * The runtime-spec leaves an interface to the kernel when the namespace
 * dies (a physical one returns under its container name, a virtual one is
 * destroyed); hull's users asked for their interface back as it was
 * (issue 12). So the namespace is held by a bind mount in the container's
 * state directory (HOLD) from before the first move until delete, however
 * the container's processes end, and delete moves each interface back under
 * its host name with its addresses, then lets the namespace go. NETDEVS
 * records what was moved where, written after each move, so a crashed
 * create is undone by delete --force as well.
 *
 * The moves themselves are the hull-net helper's (net/net.h). */
#include <errno.h>
#include <fcntl.h>
#include <net/if.h>
#include <stdio.h>
#include <string.h>
#include <sys/mount.h>
#include <unistd.h>

#include "container/netdev.h"
#include "linux/namespaces.h"
#include "net/net.h"
#include "util/error.h"
#include "util/fs.h"
#include "util/json.h"
#include "util/log.h"

#define HOLD    "netns"
#define NETDEVS "netdevs.json"

int hull_netdev_precheck(const struct hull_spec *spec, hull_error *err)
{
    const struct hull_linux *l = &spec->linux_;
    if (l->n_net_devices == 0)
        return 0;
    /* Moving a host interface needs CAP_NET_ADMIN over the host's network. */
    if (hull_rootless())
        return hull_error_set(err, EPERM,
                              "config.json: linux.netDevices: moving host interfaces needs root");
    for (size_t i = 0; i < l->n_net_devices; i++)
        if (if_nametoindex(l->net_devices[i].name) == 0)
            return hull_error_set(err, ENODEV,
                                  "config.json: linux.netDevices: no interface '%s' on the host",
                                  l->net_devices[i].name);
    return 0;
}

/* The record of moved interfaces:
 * {"moved": [{"name": host name, "inside": name inside}, ...]}. */
static int record_write(int dirfd, json_object *moved, hull_error *err)
{
    cleanup_json json_object *doc = json_object_new_object();
    json_object_object_add(doc, "moved", json_object_get(moved));
    const char *text = hj_to_string(doc);
    return hull_write_file_replace(dirfd, NETDEVS, text, strlen(text), 0600, false, err);
}

/* Hold the namespace: bind it onto a file of the state directory, so it
 * outlives the container's processes until delete (as `ip netns add`). */
static int hold(int dirfd, int netns_fd, hull_error *err)
{
    int fd = openat(dirfd, HOLD, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd < 0)
        return hull_error_errno(err, "create %s", HOLD);
    close(fd);
    char src[64], dst[64];
    snprintf(src, sizeof(src), "/proc/self/fd/%d", netns_fd);
    snprintf(dst, sizeof(dst), "/proc/self/fd/%d/%s", dirfd, HOLD);
    /* A bind of an nsfs file onto an empty file of ours: no other path
     * changes, and unmounting it only drops a reference. */
    if (mount(src, dst, NULL, MS_BIND, NULL) < 0) {
        int e = errno;
        unlinkat(dirfd, HOLD, 0);
        errno = e;
        return hull_error_errno(err, "hold the network namespace");
    }
    return 0;
}

static void release_hold(int dirfd)
{
    char dst[64];
    snprintf(dst, sizeof(dst), "/proc/self/fd/%d/%s", dirfd, HOLD);
    /* Detached: a reference still open elsewhere must not stop delete. */
    if (umount2(dst, MNT_DETACH) < 0 && errno != EINVAL && errno != ENOENT)
        hull_warn("linux.netDevices: release the network namespace: %s", strerror(errno));
    unlinkat(dirfd, HOLD, 0);
    unlinkat(dirfd, NETDEVS, 0);
}

static int open_netns(const struct hull_spec *spec, pid_t init, hull_error *err)
{
    const char *path = spec->linux_.ns[HULL_NS_NET].path;
    char proc[64];
    if (path == NULL) {
        snprintf(proc, sizeof(proc), "/proc/%d/ns/net", (int)init);
        path = proc;
    }
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return hull_error_errno(err, "open %s", path);
    return fd;
}

int hull_netdev_move_in(const struct hull_spec *spec, pid_t init, int dirfd, hull_error *err)
{
    const struct hull_linux *l = &spec->linux_;
    if (l->n_net_devices == 0)
        return 0;
    cleanup_close int netns = open_netns(spec, init, err);
    if (netns < 0 || hold(dirfd, netns, err) < 0)
        return hull_error_prefix(err, "linux.netDevices");
    cleanup_json json_object *moved = json_object_new_array();
    for (size_t i = 0; i < l->n_net_devices; i++) {
        const struct hull_net_device *d = &l->net_devices[i];
        char got[IFNAMSIZ];
        if (hull_net_move_in(d->name, d->new_name, netns, got, sizeof(got), err) < 0) {
            hull_error_prefix(err, "linux.netDevices: %s", d->name);
            /* The ones before go home; the caller's rollback would too,
             * but the error must come with the host as it was. */
            hull_netdev_move_out(dirfd);
            return -1;
        }
        json_object *o = json_object_new_object();
        json_object_object_add(o, "name", json_object_new_string(d->name));
        json_object_object_add(o, "inside", json_object_new_string(got));
        json_object_array_add(moved, o);
        if (record_write(dirfd, moved, err) < 0) {
            hull_error_prefix(err, "linux.netDevices");
            hull_netdev_move_out(dirfd);
            return -1;
        }
        hull_debug("linux.netDevices: %s moved in as %s", d->name, got);
    }
    return 0;
}

void hull_netdev_move_out(int dirfd)
{
    if (dirfd < 0)
        return; /* no state directory (a stateless run): nothing was moved */
    char path[64];
    snprintf(path, sizeof(path), "/proc/self/fd/%d/%s", dirfd, HOLD);
    cleanup_close int netns = open(path, O_RDONLY | O_CLOEXEC);
    if (netns < 0)
        return; /* never held: nothing was moved */
    cleanup_free char *text = NULL;
    size_t len = 0;
    cleanup_json json_object *doc = NULL;
    hull_error e = NULL;
    if (hull_read_file_at(dirfd, NETDEVS, &text, &len, &e) == 0)
        hj_parse(text, len, NETDEVS, &doc, &e);
    hull_error_free(&e); /* no record: the hold came before any move */
    json_object *moved = hj_get(doc, "moved");
    /* In reverse order of the moves, as an undo; each one on its own (one
     * that cannot go home does not keep the others in). */
    size_t n = json_object_is_type(moved, json_type_array) ? json_object_array_length(moved) : 0;
    for (size_t i = n; i-- > 0;) {
        json_object *o = json_object_array_get_idx(moved, i);
        const char *name = json_object_get_string(hj_get(o, "name"));
        const char *inside = json_object_get_string(hj_get(o, "inside"));
        if (name == NULL || inside == NULL)
            continue;
        if (hull_net_move_out(inside, name, netns, &e) < 0) {
            hull_warn("linux.netDevices: %s: %s", name, hull_error_msg(e));
            hull_error_free(&e);
        } else {
            hull_debug("linux.netDevices: %s moved back from %s", name, inside);
        }
    }
    release_hold(dirfd);
}
