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
#include "util/utf8.h"
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

void vm_printable(const char *in, char *out, size_t len)
{
    const unsigned char *s = (const unsigned char *)in;
    size_t n = strlen(in), j = 0;
    if (len == 0)
        return;
    for (size_t i = 0; i < n && j + 1 < len;) {
        size_t k = hull_utf8_char(s + i, n - i);
        /* U+0080..U+009F, the C1 controls, are 0xC2 0x80..0x9F. */
        bool control =
            k <= 1 ? (s[i] < 0x20 || s[i] == 0x7f) : (k == 2 && s[i] == 0xc2 && s[i + 1] < 0xa0);
        if (k == 0 || control) {
            out[j++] = '?';
            i += k ? k : 1;
            continue;
        }
        if (j + k >= len)
            break; /* not half a character */
        memcpy(out + j, s + i, k);
        j += k;
        i += k;
    }
    out[j] = 0;
}
