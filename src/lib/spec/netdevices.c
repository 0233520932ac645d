/* linux.netDevices (runtime-spec 1.2, config-linux.md "Network Devices"):
 * {"<host name>": {"name": "<name inside>"}}, parsed and checked here; the
 * move itself is container/netdev.c's. */
#include <ctype.h>
#include <errno.h>
#include <net/if.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "spec/spec.h"
#include "util/error.h"
#include "util/json.h"

bool hull_ifname_valid(const char *name, bool allow_template)
{
    size_t len = name ? strlen(name) : 0;
    if (len == 0 || len >= IFNAMSIZ || strcmp(name, ".") == 0 || strcmp(name, "..") == 0)
        return false;
    int percents = 0;
    for (const char *c = name; *c; c++) {
        if (*c == '/' || *c == ':' || isspace((unsigned char)*c))
            return false;
        /* The kernel's template: exactly "%d", once. */
        if (*c == '%' && (!allow_template || c[1] != 'd' || ++percents > 1))
            return false;
    }
    return true;
}

static int device_parse(const char *key, json_object *v, struct hull_net_device *d, hull_error *err)
{
    char p[128];
    snprintf(p, sizeof(p), "linux.netDevices.%s", key);
    if (!hull_ifname_valid(key, false))
        return hull_error_set(err, EINVAL,
                              "linux.netDevices: '%s' is not an interface name (1-%d "
                              "characters, no '/', ':', '%%' or spaces)",
                              key, IFNAMSIZ - 1);
    d->name = strdup(key);
    if (d->name == NULL)
        return hull_error_set(err, ENOMEM, "out of memory");
    if (hj_require_object(v, p, err) < 0 || hj_string(v, p, "name", false, &d->new_name, err) < 0)
        return -1;
    if (d->new_name && d->new_name[0] == '\0') {
        free(d->new_name); /* "": as absent, the host's name */
        d->new_name = NULL;
    }
    if (d->new_name && !hull_ifname_valid(d->new_name, true))
        return hull_error_set(err, EINVAL,
                              "%s.name: '%s' is not an interface name (1-%d characters, no "
                              "'/', ':' or spaces, at most one \"%%d\")",
                              p, d->new_name, IFNAMSIZ - 1);
    return 0;
}

int hull_net_devices_parse(json_object *lx, struct hull_linux *l, hull_error *err)
{
    json_object *nd = hj_get(lx, "netDevices");
    if (nd == NULL)
        return 0;
    if (hj_require_object(nd, "linux.netDevices", err) < 0)
        return -1;
    size_t n = (size_t)json_object_object_length(nd);
    l->net_devices = calloc(n ? n : 1, sizeof(*l->net_devices));
    if (l->net_devices == NULL)
        return hull_error_set(err, ENOMEM, "out of memory");
    json_object_object_foreach(nd, key, val)
    {
        /* Counted first: spec_free frees what a failed entry holds. */
        struct hull_net_device *d = &l->net_devices[l->n_net_devices++];
        if (device_parse(key, val, d, err) < 0)
            return -1;
    }
    /* Two devices cannot have one name inside (templates get distinct
     * names from the kernel). */
    for (size_t i = 0; i < l->n_net_devices; i++) {
        const struct hull_net_device *a = &l->net_devices[i];
        const char *an = a->new_name ? a->new_name : a->name;
        for (size_t j = i + 1; j < l->n_net_devices; j++) {
            const struct hull_net_device *b = &l->net_devices[j];
            const char *bn = b->new_name ? b->new_name : b->name;
            if (strcmp(an, bn) == 0 && strchr(an, '%') == NULL)
                return hull_error_set(err, EINVAL,
                                      "linux.netDevices: %s and %s would both be '%s' in the "
                                      "container",
                                      a->name, b->name, an);
        }
    }
    return 0;
}
