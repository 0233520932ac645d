/* --egress and --publish syntax, network names. (Owner: sandbox; stub.) */
#include <errno.h>
#include <string.h>

#include "net/net.h"

int hull_egress_parse(const char *s, struct hull_egress *out, hull_error *err)
{
    memset(out, 0, sizeof(*out));
    out->all = true;
    return 0;
}

int hull_egress_format(const struct hull_egress *e, char *buf, size_t len)
{
    return -1;
}

bool hull_net_name_valid(const char *name)
{
    return false;
}

int hull_publish_parse(const char *s, struct hull_publish *out, hull_error *err)
{
    return hull_error_set(err, ENOSYS, "--publish: not implemented yet");
}

int hull_net_write_etc(const struct hull_net_lease *lease, const char *hostname, int dirfd,
                       hull_error *err)
{
    return hull_error_set(err, ENOSYS, "network: not implemented yet");
}
