/* hull_net_move_in/out (OCI linux.netDevices) over the hull-net helper. (Owner: oci; stub.) */
#include <errno.h>

#include "net/helper.h"
#include "net/net.h"

int hull_net_move_in(const char *name, const char *new_name, int netns_fd, hull_error *err)
{
    return hull_error_set(err, ENOSYS, "linux.netDevices: not implemented yet");
}

int hull_net_move_out(const char *inside_name, const char *name, int netns_fd, hull_error *err)
{
    return hull_error_set(err, ENOSYS, "linux.netDevices: not implemented yet");
}
