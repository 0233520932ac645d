/* Passing an fd over an AF_UNIX socket (SCM_RIGHTS): the console socket,
 * the seccomp listener, the runtime's sync channel all need the same
 * control-message dance. */
#ifndef HULL_UTIL_FDPASS_H
#define HULL_UTIL_FDPASS_H

#include <stddef.h>
#include <sys/types.h>
#include <sys/uio.h>

/* sendmsg of iov with fd attached as SCM_RIGHTS (none when fd < 0), with
 * MSG_NOSIGNAL, retried on EINTR. Bytes sent, or -1 with errno set. */
ssize_t hull_sendmsg_fd(int sock, const struct iovec *iov, size_t iovcnt, int fd);
/* recvmsg into buf with at most one SCM_RIGHTS fd (close-on-exec) into *fd
 * (-1 when none came), retried on EINTR. Bytes received (0 at EOF), or -1
 * with errno set. A message longer than len is an error (EMSGSIZE), its
 * fd closed. */
ssize_t hull_recvmsg_fd(int sock, void *buf, size_t len, int *fd);

#endif
