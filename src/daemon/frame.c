/* Messages between hulld and its helpers: [u32 header length][u32 data
 * length][header JSON][data], an fd riding along with the first bytes.
 * A stream socket carries results of any size (a SEQPACKET datagram would
 * cap them), the lengths keep the boundaries. */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include "daemon.h"
#include "util/error.h"
#include "util/fdpass.h"
#include "util/json.h"

static int write_all(int sock, const char *p, size_t len)
{
    while (len) {
        ssize_t n = send(sock, p, len, MSG_NOSIGNAL);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return -1;
        p += n;
        len -= (size_t)n;
    }
    return 0;
}

int frame_send(int sock, json_object *hdr, const void *data, size_t len, int fd)
{
    const char *h = hdr ? hj_to_string(hdr) : "{}";
    size_t hlen = strlen(h);
    /* The receiver takes a frame over FRAME_MAX for a broken stream: none is
     * sent, so that the peer never waits on the rest of one it refused. */
    if (hlen > FRAME_MAX || len > FRAME_MAX) {
        errno = EMSGSIZE;
        return -1;
    }
    uint32_t lens[2] = {(uint32_t)hlen, (uint32_t)len};
    /* One sendmsg for the whole frame (the fd goes with its first bytes):
     * in pieces, the receiver woke for the length words and slept again
     * until the rest came, a wake-up more per message. */
    struct iovec iov[3] = {{.iov_base = lens, .iov_len = sizeof(lens)},
                           {.iov_base = (char *)h, .iov_len = lens[0]},
                           {.iov_base = (void *)data, .iov_len = len}};
    ssize_t n = hull_sendmsg_fd(sock, iov, len ? 3 : 2, fd);
    if (n <= 0) {
        if (n == 0)
            errno = EIO;
        return -1;
    }
    /* A large frame goes in several writes: the rest of it. */
    size_t done = (size_t)n;
    for (size_t i = 0; i < 3; i++) {
        size_t l = iov[i].iov_len;
        if (done >= l) {
            done -= l;
            continue;
        }
        if (write_all(sock, (const char *)iov[i].iov_base + done, l - done) < 0)
            return -1;
        done = 0;
    }
    return 0;
}

static int read_all(int sock, char *p, size_t len)
{
    while (len) {
        ssize_t n = recv(sock, p, len, 0);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            if (n == 0)
                errno = EPIPE;
            return -1;
        }
        p += n;
        len -= (size_t)n;
    }
    return 0;
}

/* The rest of a frame whose first got bytes (of the length words) are in
 * lens: 0, or -1 with errno and what was read left in f for the caller to
 * free. */
static int frame_body(int sock, struct frame *f, uint32_t lens[2], size_t got)
{
    if (got < 2 * sizeof(uint32_t) &&
        read_all(sock, (char *)lens + got, 2 * sizeof(uint32_t) - got) < 0)
        return -1;
    if (lens[0] > FRAME_MAX || lens[1] > FRAME_MAX) {
        errno = EPROTO;
        return -1;
    }
    cleanup_free char *h = malloc(lens[0] + 1);
    f->data = malloc(lens[1] + 1);
    if (h == NULL || f->data == NULL) {
        errno = ENOMEM;
        return -1;
    }
    if (read_all(sock, h, lens[0]) < 0 || read_all(sock, f->data, lens[1]) < 0)
        return -1;
    h[lens[0]] = '\0';
    f->data[lens[1]] = '\0';
    f->len = lens[1];
    f->hdr = json_tokener_parse(h);
    if (f->hdr == NULL) {
        errno = EPROTO;
        return -1;
    }
    return 0;
}

int frame_recv(int sock, struct frame *f)
{
    memset(f, 0, sizeof(*f));
    f->fd = -1;
    uint32_t lens[2];
    char cbuf[CMSG_SPACE(sizeof(int))];
    struct iovec iov = {.iov_base = lens, .iov_len = sizeof(lens)};
    struct msghdr m = {
        .msg_iov = &iov, .msg_iovlen = 1, .msg_control = cbuf, .msg_controllen = sizeof(cbuf)};
    ssize_t n;
    do
        n = recvmsg(sock, &m, MSG_CMSG_CLOEXEC);
    while (n < 0 && errno == EINTR);
    if (n <= 0) {
        if (n == 0)
            errno = EPIPE;
        return -1;
    }
    for (struct cmsghdr *c = CMSG_FIRSTHDR(&m); c; c = CMSG_NXTHDR(&m, c))
        if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_RIGHTS)
            memcpy(&f->fd, CMSG_DATA(c), sizeof(int));
    if (frame_body(sock, f, lens, (size_t)n) < 0) {
        frame_free(f); /* with the fd that came along */
        return -1;
    }
    return 0;
}

void frame_free(struct frame *f)
{
    json_object_put(f->hdr);
    free(f->data);
    if (f->fd >= 0)
        close(f->fd);
    memset(f, 0, sizeof(*f));
    f->fd = -1;
}

/* A keeper's answer that failed: {"error":{"errno","message"}}; e is freed. */
void frame_reply_error(int sock, hull_error *e)
{
    json_object *hdr = json_object_new_object(), *er = json_object_new_object();
    json_object_object_add(er, "errno", json_object_new_int(hull_error_code(*e)));
    json_object_object_add(er, "message", json_object_new_string(hull_error_msg(*e)));
    json_object_object_add(hdr, "error", er);
    frame_send(sock, hdr, NULL, 0, -1);
    json_object_put(hdr);
    hull_error_free(e);
}

int frame_error(const struct frame *f, const char *fallback, hull_error *err)
{
    json_object *er = hj_get(f->hdr, "error");
    if (er == NULL)
        return 0;
    json_object *code = hj_get(er, "errno"), *msg = hj_get(er, "message");
    return hull_error_set(err, code ? json_object_get_int(code) : EIO, "%s",
                          msg ? json_object_get_string(msg) : fallback);
}

/* A keeper's answer that worked: {"ok":true[, key: val]} and data. */
void frame_reply_ok(int sock, const char *key, const char *val, const void *data, size_t len)
{
    json_object *hdr = json_object_new_object();
    json_object_object_add(hdr, "ok", json_object_new_boolean(1));
    if (key)
        json_object_object_add(hdr, key, json_object_new_string(val));
    int sent = frame_send(sock, hdr, data, len, -1);
    json_object_put(hdr);
    if (sent < 0 && errno == EMSGSIZE) {
        hull_error e = NULL;
        hull_error_set(&e, EFBIG, "the answer is %zu MiB, more than one message carries (%u MiB)",
                       len >> 20, FRAME_MAX >> 20);
        frame_reply_error(sock, &e);
    }
}

/* The header's string at key, "" when absent. */
const char *frame_str(const struct frame *f, const char *key)
{
    json_object *v = hj_get(f->hdr, key);
    return v ? json_object_get_string(v) : "";
}
