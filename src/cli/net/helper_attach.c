/* hull-net --helper attach/release/adopt. (Owner: netcore; stub.) */
#include <errno.h>
#include <unistd.h>

#include "net_cli.h"

static int todo(int fd_in, hull_error *err)
{
    if (fd_in >= 0)
        close(fd_in);
    return hull_error_set(err, ENOSYS, "network helper: not implemented yet");
}

int net_helper_attach(int sock, json_object *req, int fd_in, hull_error *err)
{
    return todo(fd_in, err);
}
int net_helper_release(int sock, json_object *req, int fd_in, hull_error *err)
{
    return todo(fd_in, err);
}
int net_helper_adopt(int sock, json_object *req, int fd_in, hull_error *err)
{
    return todo(fd_in, err);
}
