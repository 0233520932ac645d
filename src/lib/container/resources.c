/* linux.resources as the container's cgroup gets them: the device rules
 * every container has, and the limits written only after the init's birth.
 */
#include <errno.h>
#include <stdlib.h>

#include "container/container.h"
#include "util/error.h"

/* The device rules a container always gets after the spec's own, as runc
 * adds them: mknod of anything (the node is useless without access), the
 * default devices, ptys, and linux.devices. Without these the default spec
 * ("deny all") would not even let the init create /dev/null. */
int hull_container_device_rules(const struct hull_spec *spec, struct hull_resources *r,
                                hull_error *err)
{
    static const struct hull_device_rule defaults[] = {
        {true, 'c', -1, -1, "m"},    {true, 'b', -1, -1, "m"},    /* mknod */
        {true, 'c', 1, 3, "rwm"},    {true, 'c', 1, 5, "rwm"},    /* null, zero */
        {true, 'c', 1, 7, "rwm"},    {true, 'c', 1, 8, "rwm"},    /* full, random */
        {true, 'c', 1, 9, "rwm"},    {true, 'c', 5, 0, "rwm"},    /* urandom, tty */
        {true, 'c', 5, 1, "rwm"},    {true, 'c', 5, 2, "rwm"},    /* console, ptmx */
        {true, 'c', 136, -1, "rwm"}, {true, 'c', 10, 200, "rwm"}, /* pts, tun */
    };
    size_t nd = sizeof(defaults) / sizeof(defaults[0]);
    const struct hull_resources *src = spec->linux_.resources;
    size_t n_spec = src ? src->n_devices : 0, n_linux = spec->linux_.n_devices;
    struct hull_device_rule *rules = calloc(n_spec + nd + n_linux, sizeof(*rules));
    if (rules == NULL)
        return hull_error_set(err, ENOMEM, "out of memory");
    size_t k = 0;
    for (size_t i = 0; i < n_spec; i++)
        rules[k++] = src->devices[i];
    for (size_t i = 0; i < nd; i++)
        rules[k++] = defaults[i];
    for (size_t i = 0; i < n_linux; i++) {
        const struct hull_device *d = &spec->linux_.devices[i];
        if (d->type == 'p')
            continue;
        rules[k++] =
            (struct hull_device_rule){true, d->type == 'b' ? 'b' : 'c', d->major, d->minor, "rwm"};
    }
    if (src)
        *r = *src; /* shallow: the other fields stay the spec's */
    r->devices = rules;
    r->n_devices = k;
    return 0;
}

/* Limits that would bite the runtime itself while it steps into the
 * cgroup to clone the init there (a memory limit of a few pages kills it,
 * pids.max=1 refuses the clone): moved out of *r into *late, which spawn
 * writes once the init is inside and the runtime back out. */
void hull_container_split_late_limits(struct hull_resources *r, struct hull_resources *late)
{
    *late = (struct hull_resources){
        .has_memory_limit = r->has_memory_limit,
        .memory_limit = r->memory_limit,
        .has_memory_swap = r->has_memory_swap,
        .memory_swap = r->memory_swap,
        .has_pids_limit = r->has_pids_limit,
        .pids_limit = r->pids_limit,
    };
    r->has_memory_limit = r->has_memory_swap = r->has_pids_limit = false;
}
