/* A pool of fresh, empty network namespaces for `hull sandbox run`.
 *
 * Making a network namespace is the costliest namespace of a sandbox run
 * (about 0.7 ms of CPU and at least 0.8 ms of the clone's wall time on a
 * 2-vCPU guest, several ms when other namespaces are being torn down at
 * the same time: setup_net's per-namespace work and its locks). A keeper
 * (`hull sandbox netpool`, host root) makes them ahead of time and hands
 * each to exactly one run:
 *
 * - A namespace is held only as an fd, never bind-mounted: when the keeper
 *   has sent it, it closes its own copy, so the run (its init, and hull-net
 *   for --network NAME) holds the only references and the namespace is
 *   destroyed when the run ends, as one the run made itself would be. No
 *   namespace is ever handed out twice or kept after its run, and nothing
 *   is left on disk: a keeper or a run killed by SIGKILL drops its fds
 *   with it, so there is nothing to sweep.
 * - A namespace is made by the keeper (unshare in its own thread, lo
 *   brought up, the thread back in the host's namespace) and owned by the
 *   host's user namespace, not by the run's: root of the sandbox's user
 *   namespace can change nothing in it (the program never had that
 *   power anyway: no capabilities).
 * - The run checks what it got: an fd of a network namespace (NS_GET_NSTYPE)
 *   owned by its own user namespace, from a peer running as root
 *   (SO_PEERCRED). Anything else, or no keeper at all, and the run makes
 *   its own namespace as before.
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/nsfs.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "container/container.h"
#include "hull.h"
#include "linux/namespaces.h"
#include "linux/netdev.h"
#include "sandbox/netpool.h"
#include "spec/spec.h"
#include "util/error.h"
#include "util/log.h"

#define NETPOOL_MAX 256

int hull_sandbox_netpool_offer(const struct hull_spec *spec, struct hull_setup_opts *so)
{
    const struct hull_namespace *net = &spec->linux_.ns[HULL_NS_NET];
    int fd = net->enabled && net->path == NULL ? hull_sandbox_netpool_take(NULL) : -1;
    if (fd >= 0) {
        so->netns_given = true;
        so->netns_fd = fd;
        so->loopback_up = false; /* up already, and not the init's to change */
    }
    return fd;
}

static int sock_addr(const char *path, struct sockaddr_un *a, hull_error *err)
{
    memset(a, 0, sizeof(*a));
    a->sun_family = AF_UNIX;
    if (strlen(path) >= sizeof(a->sun_path))
        return hull_error_set(err, ENAMETOOLONG, "%s: socket path too long", path);
    strcpy(a->sun_path, path);
    return 0;
}

static bool same_ns(int a, int b)
{
    struct stat sa, sb;
    return fstat(a, &sa) == 0 && fstat(b, &sb) == 0 && sa.st_dev == sb.st_dev &&
           sa.st_ino == sb.st_ino;
}

/* Is fd a network namespace owned by the caller's user namespace? */
static bool usable_netns(int fd)
{
    if (ioctl(fd, NS_GET_NSTYPE) != CLONE_NEWNET)
        return false;
    cleanup_close int owner = ioctl(fd, NS_GET_USERNS);
    cleanup_close int mine = open("/proc/self/ns/user", O_RDONLY | O_CLOEXEC);
    return owner >= 0 && mine >= 0 && same_ns(owner, mine);
}

int hull_sandbox_netpool_take(const char *path)
{
    struct sockaddr_un a;
    if (sock_addr(path ? path : HULL_SANDBOX_NETPOOL_SOCK, &a, NULL) < 0)
        return -1;
    cleanup_close int s = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
    if (s < 0 || connect(s, (struct sockaddr *)&a, sizeof(a)) < 0)
        return -1; /* no keeper: the run makes its own namespace */
    struct ucred cred;
    socklen_t clen = sizeof(cred);
    if (getsockopt(s, SOL_SOCKET, SO_PEERCRED, &cred, &clen) < 0 || cred.uid != 0) {
        hull_debug("netpool: %s: the peer is not root; ignored", a.sun_path);
        return -1;
    }
    char byte;
    struct iovec iov = {&byte, 1};
    union {
        char buf[CMSG_SPACE(sizeof(int))];
        struct cmsghdr align;
    } ctl;
    struct msghdr mh = {.msg_iov = &iov,
                        .msg_iovlen = 1,
                        .msg_control = ctl.buf,
                        .msg_controllen = sizeof(ctl.buf)};
    /* The keeper answers at once from namespaces made beforehand; a
     * keeper that hangs must not hang the run. */
    struct pollfd p = {.fd = s, .events = POLLIN};
    if (poll(&p, 1, 1000) != 1)
        return -1;
    ssize_t n;
    do {
        n = recvmsg(s, &mh, MSG_CMSG_CLOEXEC);
    } while (n < 0 && errno == EINTR);
    /* One fd is taken; any other that came is closed, not kept. */
    int fd = -1;
    for (struct cmsghdr *c = n > 0 ? CMSG_FIRSTHDR(&mh) : NULL; c; c = CMSG_NXTHDR(&mh, c)) {
        if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS)
            continue;
        size_t k = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
        for (size_t i = 0; i < k; i++) {
            int got;
            memcpy(&got, CMSG_DATA(c) + i * sizeof(int), sizeof(int));
            if (fd < 0)
                fd = got;
            else
                close(got);
        }
    }
    if (fd >= 0 && !usable_netns(fd)) {
        hull_debug("netpool: %s sent something that is not a network namespace of this host",
                   a.sun_path);
        close(fd);
        fd = -1;
    }
    return fd;
}

/* A new network namespace with lo up, as an fd; the calling thread stays
 * in the namespace it was in. */
static int make_netns(int home, hull_error *err)
{
    /* Safe: the keeper's own thread leaves the host's namespace for a new,
     * empty one only to open it and bring lo up, then goes back. */
    if (unshare(CLONE_NEWNET) < 0)
        return hull_error_errno(err, "netpool: unshare a network namespace");
    int fd = open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC);
    int r =
        fd < 0 ? hull_error_errno(err, "netpool: open the new namespace") : hull_loopback_up(err);
    if (setns(home, CLONE_NEWNET) < 0) {
        /* Not back home: this process may not go on at all. */
        hull_error_free(err);
        hull_error_errno(err, "netpool: return to the host's network namespace");
        if (fd >= 0)
            close(fd);
        return -2;
    }
    if (r < 0) {
        if (fd >= 0)
            close(fd);
        return -1;
    }
    return fd;
}

static int send_fd(int conn, int fd)
{
    char byte = 'n';
    struct iovec iov = {&byte, 1};
    union {
        char buf[CMSG_SPACE(sizeof(int))];
        struct cmsghdr align;
    } ctl;
    memset(&ctl, 0, sizeof(ctl));
    struct msghdr mh = {.msg_iov = &iov,
                        .msg_iovlen = 1,
                        .msg_control = ctl.buf,
                        .msg_controllen = sizeof(ctl.buf)};
    struct cmsghdr *c = CMSG_FIRSTHDR(&mh);
    c->cmsg_level = SOL_SOCKET;
    c->cmsg_type = SCM_RIGHTS;
    c->cmsg_len = CMSG_LEN(sizeof(int));
    memcpy(CMSG_DATA(c), &fd, sizeof(int));
    return sendmsg(conn, &mh, MSG_NOSIGNAL) == 1 ? 0 : -1;
}

static volatile sig_atomic_t stop_signal;

static void on_stop(int sig)
{
    stop_signal = sig;
}

static int listen_on(const char *path, hull_error *err)
{
    struct sockaddr_un a;
    if (sock_addr(path, &a, err) < 0)
        return -1;
    int s = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
    if (s < 0)
        return hull_error_errno(err, "netpool: socket");
    /* A socket file left by a keeper that was killed: nobody answers on
     * it any more (a live keeper would, and is not replaced). */
    cleanup_close int probe = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
    if (probe >= 0 && connect(probe, (struct sockaddr *)&a, sizeof(a)) == 0) {
        close(s);
        return hull_error_set(err, EADDRINUSE, "netpool: %s: another keeper answers there", path);
    }
    unlink(path);
    mode_t old = umask(077); /* root's alone, like the rest of /run/hull */
    int r = bind(s, (struct sockaddr *)&a, sizeof(a));
    umask(old);
    if (r < 0 || listen(s, 64) < 0) {
        hull_error_errno(err, "netpool: listen on %s", path);
        close(s);
        return -1;
    }
    return s;
}

int hull_sandbox_netpool_serve(const char *path, unsigned size, hull_error *err)
{
    if (geteuid() != 0 || hull_rootless())
        return hull_error_set(err, EPERM,
                              "netpool: needs root of the host (it makes network "
                              "namespaces for sandbox runs)");
    if (size == 0 || size > NETPOOL_MAX)
        return hull_error_set(err, EINVAL, "netpool: --size: must be 1 to %d", NETPOOL_MAX);
    path = path ? path : HULL_SANDBOX_NETPOOL_SOCK;
    cleanup_close int home = open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC);
    if (home < 0)
        return hull_error_errno(err, "netpool: open /proc/thread-self/ns/net");
    int ready[NETPOOL_MAX];
    unsigned n = 0;
    cleanup_close int ls = listen_on(path, err);
    if (ls < 0)
        return -1;
    struct sigaction sa = {.sa_handler = on_stop};
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGHUP, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);
    int ret = 0;
    unsigned long served = 0;
    bool announced = false;
    while (!stop_signal) {
        /* Refill first, but answer a waiting run before making more. */
        struct pollfd p = {.fd = ls, .events = POLLIN};
        int timeout = n < size ? 0 : -1;
        int pr = poll(&p, 1, timeout);
        if (pr < 0 && errno != EINTR) {
            ret = hull_error_errno(err, "netpool: poll");
            break;
        }
        if (pr <= 0) {
            if (n < size) {
                int fd = make_netns(home, err);
                if (fd < 0) {
                    ret = -1;
                    break;
                }
                ready[n++] = fd;
            }
            if (n == size && !announced) {
                /* The line a supervisor (or a test) waits for. */
                printf("netpool: %u network namespaces ready on %s\n", n, path);
                fflush(stdout);
                announced = true;
            }
            continue;
        }
        int conn = accept4(ls, NULL, NULL, SOCK_CLOEXEC);
        if (conn < 0)
            continue;
        if (n == 0) {
            /* Drained (runs come faster than namespaces are made): this
             * run makes its own rather than wait for the keeper. */
            close(conn);
            continue;
        }
        int fd = ready[--n];
        if (send_fd(conn, fd) == 0)
            served++;
        /* Sent or not, this namespace is never offered again. */
        close(fd);
        close(conn);
    }
    while (n > 0)
        close(ready[--n]);
    unlink(path);
    if (ret == 0)
        fprintf(stderr, "hull: sandbox netpool: %lu network namespaces handed out\n", served);
    return ret;
}
