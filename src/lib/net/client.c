/* hull_net_attach/detach/release/adopt over the hull-net helper. (Owner: netcore; stub.) */
#include <errno.h>
#include <stdlib.h>

#include "net/helper.h"
#include "net/net.h"

int hull_net_attach(const struct hull_net_attach_req *req, struct hull_net_session **session,
                    struct hull_net_lease *lease, hull_error *err)
{
    return hull_error_set(err, ENOSYS, "network: not implemented yet");
}

int hull_net_detach(struct hull_net_session *session, hull_error *err)
{
    return 0;
}

int hull_net_release(const char *member, hull_error *err)
{
    return 0;
}

int hull_net_adopt(const char *member, pid_t owner_pid, hull_error *err)
{
    return hull_error_set(err, ENOSYS, "network: not implemented yet");
}
