#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>

#include "container/sync.h"
#include "util/error.h"
#include "util/fdpass.h"

struct wire {
    int type;
    int value;
};

static int send_packet(int sock, int type, int value, const char *text, int fd, hull_error *err)
{
    struct wire w = {type, value};
    struct iovec iov[2] = {{&w, sizeof(w)}, {(void *)text, text ? strlen(text) : 0}};
    if (hull_sendmsg_fd(sock, iov, text ? 2 : 1, fd) < 0)
        return hull_error_errno(err, "sync: send");
    return 0;
}

int hull_sync_send(int sock, int type, int value, hull_error *err)
{
    return send_packet(sock, type, value, NULL, -1, err);
}

int hull_sync_send_text(int sock, int type, const char *text, hull_error *err)
{
    char buf[3072];
    snprintf(buf, sizeof(buf), "%s", text);
    return send_packet(sock, type, 0, buf, -1, err);
}

int hull_sync_send_error(int sock, hull_error e)
{
    char buf[3072];
    snprintf(buf, sizeof(buf), "%s", hull_error_msg(e));
    return send_packet(sock, SYNC_ERROR, hull_error_code(e), buf, -1, NULL);
}

int hull_sync_send_fd(int sock, int type, int fd, hull_error *err)
{
    return send_packet(sock, type, 0, NULL, fd, err);
}

int hull_sync_recv(int sock, struct hull_sync_msg *msg, hull_error *err)
{
    struct wire w;
    struct iovec iov[2] = {{&w, sizeof(w)}, {msg->text, sizeof(msg->text) - 1}};
    union {
        char buf[CMSG_SPACE(sizeof(int))];
        struct cmsghdr align;
    } ctl;
    struct msghdr mh = {
        .msg_iov = iov, .msg_iovlen = 2, .msg_control = ctl.buf, .msg_controllen = sizeof(ctl.buf)};
    ssize_t n;
    do {
        n = recvmsg(sock, &mh, MSG_CMSG_CLOEXEC);
    } while (n < 0 && errno == EINTR);
    if (n < 0)
        return hull_error_errno(err, "sync: receive");
    if (n == 0)
        return hull_error_set(err, EPIPE, "the container's init exited during setup");
    if ((size_t)n < sizeof(w))
        return hull_error_set(err, EPROTO, "sync: short message");
    msg->type = w.type;
    msg->value = w.value;
    msg->text[(size_t)n - sizeof(w)] = '\0';
    msg->fd = -1;
    for (struct cmsghdr *c = CMSG_FIRSTHDR(&mh); c; c = CMSG_NXTHDR(&mh, c))
        if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_RIGHTS)
            memcpy(&msg->fd, CMSG_DATA(c), sizeof(int));
    return 0;
}

int hull_sync_expect(int sock, int type, struct hull_sync_msg *msg, hull_error *err)
{
    if (hull_sync_recv(sock, msg, err) < 0)
        return -1;
    if (msg->type == SYNC_ERROR) {
        /* The text is complete (it already names the errno); keep the code. */
        hull_error_set(err, 0, "%s", msg->text);
        if (err && *err)
            (*err)->code = msg->value;
        return -1;
    }
    if (msg->type != type)
        return hull_error_set(err, EPROTO, "sync: expected message %d, got %d", type, msg->type);
    return 0;
}
