/* Framed I/O over the virtio-serial port.
 *
 * The port is non-blocking. When no host is connected, virtio_console makes
 * read() return 0 and poll() report POLLHUP, so "connected" is tracked here
 * and the main loop waits for SIGIO (sent by the driver when the host side
 * opens) instead of spinning.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "agent.h"

int conn_open(struct conn *c, int fd)
{
    memset(c, 0, sizeof(*c));
    c->fd = fd;
    c->cap = 64 << 10;
    c->buf = malloc(c->cap);
    return c->buf ? 0 : -1;
}

void conn_reset(struct conn *c)
{
    c->len = 0;
    c->consumed = 0;
}

static void drop_consumed(struct conn *c)
{
    if (c->consumed) {
        memmove(c->buf, c->buf + c->consumed, c->len - c->consumed);
        c->len -= c->consumed;
        c->consumed = 0;
    }
}

int conn_fill(struct conn *c)
{
    drop_consumed(c);
    for (;;) {
        if (c->len == c->cap) {
            if (c->cap >= HULL_AGENT_MAX_FRAME + sizeof(struct hull_agent_hdr) + (64 << 10))
                return 0; /* full: the caller consumes first */
            size_t ncap = c->cap * 2;
            uint8_t *nb = realloc(c->buf, ncap);
            if (!nb)
                return 0;
            c->buf = nb;
            c->cap = ncap;
        }
        ssize_t n = read(c->fd, c->buf + c->len, c->cap - c->len);
        if (n > 0) {
            c->len += (size_t)n;
            c->connected = true;
            continue;
        }
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && errno == EAGAIN) {
            c->connected = true; /* open and idle: read would block */
            return 0;
        }
        /* 0: the host closed its side; anything else we cannot read past. */
        c->connected = false;
        return -1;
    }
}

int conn_frame(struct conn *c, struct frame *f)
{
    drop_consumed(c);
    /* Skip to the next valid header: after a host reconnect the stream may
     * start in the middle of a frame the previous host never finished, and
     * a magic followed by a header that is not ours is skipped too. One
     * pass and one move, whatever the garbage: a stream of magics with bad
     * headers once cost a move of the whole buffer (and a recursion) per
     * magic. */
    size_t off = 0;
    struct hull_agent_hdr h;
    for (; off + sizeof(h) <= c->len; off++) {
        memcpy(&h, c->buf + off, sizeof(h));
        if (h.magic == HULL_AGENT_MAGIC && h.len <= HULL_AGENT_MAX_FRAME &&
            h.type >= HULL_FRAME_REQ && h.type <= HULL_FRAME_EXIT && !h.flags && !h.reserved)
            break;
    }
    /* Fewer than a header's bytes left: keep them from the first byte
     * that may start a magic. */
    static const uint32_t magic = HULL_AGENT_MAGIC;
    while (off < c->len && off + sizeof(h) > c->len) {
        size_t n = c->len - off < sizeof(magic) ? c->len - off : sizeof(magic);
        if (memcmp(c->buf + off, &magic, n) == 0)
            break;
        off++;
    }
    if (off) {
        memmove(c->buf, c->buf + off, c->len - off);
        c->len -= off;
    }
    if (c->len < sizeof(h))
        return 0;
    memcpy(&h, c->buf, sizeof(h));
    if (c->len < sizeof(h) + h.len)
        return 0;
    f->type = h.type;
    f->len = h.len;
    f->data = c->buf + sizeof(h);
    c->consumed = sizeof(h) + h.len;
    return 1;
}

/* Blocks until written. A write can find the port "not connected" for a
 * moment even though the host is there: the driver learns of the host's
 * open on the control queue, which may be processed after the host's first
 * bytes arrived on the data queue. So POLLHUP alone is not a disconnect;
 * only a port that stays unwritable for WRITE_GRACE_MS is. */
#define WRITE_GRACE_MS 3000
static int write_all(struct conn *c, const void *data, size_t len)
{
    const uint8_t *p = data;
    uint64_t stuck_since = 0;
    while (len) {
        ssize_t n = write(c->fd, p, len);
        if (n > 0) {
            p += n;
            len -= (size_t)n;
            stuck_since = 0;
            continue;
        }
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && errno == EAGAIN) {
            if (!stuck_since)
                stuck_since = now_ms();
            else if (now_ms() - stuck_since > WRITE_GRACE_MS)
                break;
            struct pollfd pfd = {.fd = c->fd, .events = POLLOUT};
            if (poll(&pfd, 1, 20) > 0 && (pfd.revents & POLLOUT))
                continue;
            if (pfd.revents & POLLHUP)
                usleep(2000); /* poll() returns at once while "not connected" */
            continue;
        }
        break;
    }
    if (len) {
        c->connected = false;
        return -1;
    }
    return 0;
}

int conn_send(struct conn *c, uint8_t type, const void *data, size_t len)
{
    if (!c->connected)
        return -1;
    struct hull_agent_hdr h = {.magic = HULL_AGENT_MAGIC, .type = type, .len = (uint32_t)len};
    if (write_all(c, &h, sizeof(h)) < 0)
        return -1;
    return len ? write_all(c, data, len) : 0;
}

json_object *agent_req_id;

int conn_send_json(struct conn *c, uint8_t type, json_object *obj)
{
    if (agent_req_id && (type == HULL_FRAME_RESP || type == HULL_FRAME_EXIT))
        json_object_object_add(obj, "id", json_object_get(agent_req_id));
    size_t len;
    const char *s = json_object_to_json_string_length(obj, JSON_C_TO_STRING_PLAIN, &len);
    return conn_send(c, type, s, len);
}

int conn_send_error(struct conn *c, const char *fmt, ...)
{
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    json_object *o = json_object_new_object();
    json_object_object_add(o, "ok", json_object_new_boolean(0));
    json_object_object_add(o, "error", json_object_new_string(msg));
    int r = conn_send_json(c, HULL_FRAME_RESP, o);
    json_object_put(o);
    return r;
}

int conn_send_ok(struct conn *c)
{
    json_object *o = json_object_new_object();
    json_object_object_add(o, "ok", json_object_new_boolean(1));
    int r = conn_send_json(c, HULL_FRAME_RESP, o);
    json_object_put(o);
    return r;
}

int conn_wait_frame(struct conn *c, struct frame *f)
{
    for (;;) {
        if (conn_frame(c, f))
            return 0;
        if (!c->connected)
            return -1;
        struct pollfd pfd = {.fd = c->fd, .events = POLLIN};
        int r = poll(&pfd, 1, -1);
        if (r < 0 && errno != EINTR)
            return -1;
        int fr = conn_fill(c);
        if (conn_frame(c, f))
            return 0;
        if (fr < 0)
            return -1;
    }
}
