/* Connecting to the sockets QEMU serves in a VM's run directory. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "util/clock.h"
#include "util/error.h"
#include "vm/vm.h"

int vm_unix_connect(const char *path, int timeout_ms, bool (*alive)(void *), void *arg,
                    hull_error *err)
{
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    if (strlen(path) >= sizeof(sa.sun_path))
        return hull_error_set(err, ENAMETOOLONG, "socket %s", path);
    strcpy(sa.sun_path, path);
    int64_t end = hull_monotonic_ms() + timeout_ms;
    for (;;) {
        int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (fd < 0)
            return hull_error_errno(err, "socket");
        if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0)
            return fd;
        int e = errno;
        close(fd);
        if (alive && !alive(arg))
            return hull_error_set(err, ESRCH, "the VMM exited");
        /* Absent or refused: QEMU is still starting. */
        if (hull_monotonic_ms() > end || (e != ENOENT && e != ECONNREFUSED)) {
            errno = e;
            return hull_error_errno(err, "connect to %s",
                                    strrchr(path, '/') ? strrchr(path, '/') + 1 : path);
        }
        usleep(5000);
    }
}

/* "/proc/self/fd/N/<name>": a VM directory's path may be longer than a
 * sockaddr_un holds; the magic link of an O_PATH fd on run/ never is. */
int vm_run_socket(const struct vm *vm, const char *name, char out[128], hull_error *err)
{
    char run[4200];
    vm_path(vm, "run", run, sizeof(run));
    int dfd = open(run, O_PATH | O_DIRECTORY | O_CLOEXEC);
    if (dfd < 0)
        return hull_error_errno(err, "open %s", run);
    /* A cut path would be another socket. */
    if (snprintf(out, 128, "/proc/self/fd/%d/%s", dfd, name) >= 128) {
        close(dfd);
        return hull_error_set(err, ENAMETOOLONG, "socket name %s", name);
    }
    return dfd;
}
