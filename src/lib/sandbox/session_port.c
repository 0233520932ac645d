/* A socket in a long-lived sandbox's network namespace, for hulld's ports
 * (src/daemon/sbx_ports.c): hulld connects it to 127.0.0.1:PORT (or ::1)
 * and so reaches a server of the sandbox as the sandbox's own loopback
 * would, without a route, a rule or an address on the host. */
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "sandbox/session.h"
#include "util/error.h"
#include "util/log.h"

int hull_session_socket(struct hull_session *s, int family, int *fd_out, hull_error *err)
{
    *fd_out = -1;
    if (family != AF_INET && family != AF_INET6)
        return hull_error_set(err, EINVAL, "socket: family %d is not IPv4 or IPv6", family);
    pid_t init = s->c.launch.pid;
    if (init <= 0)
        return hull_error_set(err, ESRCH, "sandbox %s: not running", s->id);
    char path[64];
    snprintf(path, sizeof(path), "/proc/%d/ns/net", (int)init);
    /* The init is our child, not reaped before destroy: its pid is its own. */
    cleanup_close int ns = open(path, O_RDONLY | O_CLOEXEC);
    cleanup_close int self = open("/proc/self/ns/net", O_RDONLY | O_CLOEXEC);
    if (ns < 0 || self < 0)
        return hull_error_errno(err, "open %s", ns < 0 ? path : "/proc/self/ns/net");
    struct stat a, b;
    if (fstat(ns, &a) < 0 || fstat(self, &b) < 0)
        return hull_error_errno(err, "stat network namespace");
    /* network "host": a socket there would reach the host's own services. */
    if (a.st_dev == b.st_dev && a.st_ino == b.st_ino)
        return hull_error_set(
            err, EPERM, "sandbox %s shares the host's network: it has no ports of its own", s->id);
    /* Safe: the caller (the keeper) is single-threaded, and only a socket
     * is made in the sandbox's namespace before it switches back; nothing
     * of the sandbox's runs or is read in ours. */
    if (setns(ns, CLONE_NEWNET) < 0)
        return hull_error_errno(err, "enter sandbox %s's network namespace", s->id);
    int fd = socket(family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    int saved = errno;
    if (setns(self, CLONE_NEWNET) < 0) {
        /* Cannot happen short of a kernel bug; going on would serve the
         * next request from the sandbox's network. */
        hull_log(HULL_LOG_ERROR, "back to the host's network namespace: %m");
        abort();
    }
    if (fd < 0) {
        errno = saved;
        return hull_error_errno(err, "socket in sandbox %s", s->id);
    }
    *fd_out = fd;
    return 0;
}
