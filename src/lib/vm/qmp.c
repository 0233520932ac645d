/* QMP over a unix socket: line-delimited JSON, asynchronous events
 * interleaved with replies (skipped here: callers poll state instead). */
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "util/clock.h"
#include "util/error.h"
#include "vm/qmp.h"
#include "vm/vm.h"

#define QMP_TIMEOUT_MS 30000

struct qmp {
    int fd;
    char buf[1 << 16];
    size_t len;
};

/* One JSON line; the caller frees. */
static int read_msg(struct qmp *q, json_object **out, hull_error *err)
{
    int64_t end = hull_monotonic_ms() + QMP_TIMEOUT_MS;
    for (;;) {
        char *nl = memchr(q->buf, '\n', q->len);
        if (nl) {
            size_t l = (size_t)(nl - q->buf) + 1;
            json_tokener *tok = json_tokener_new();
            *out = json_tokener_parse_ex(tok, q->buf, (int)l);
            json_tokener_free(tok);
            memmove(q->buf, q->buf + l, q->len - l);
            q->len -= l;
            if (!*out)
                return hull_error_set(err, EPROTO, "QMP: unparsable message");
            return 0;
        }
        if (q->len == sizeof(q->buf))
            return hull_error_set(err, EPROTO, "QMP: message too long");
        int left = (int)(end - hull_monotonic_ms());
        struct pollfd p = {.fd = q->fd, .events = POLLIN};
        if (left <= 0 || poll(&p, 1, left) == 0)
            return hull_error_set(err, ETIMEDOUT, "QMP: no answer from QEMU");
        ssize_t n = read(q->fd, q->buf + q->len, sizeof(q->buf) - q->len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return hull_error_set(err, ECONNRESET, "QMP: QEMU closed the connection");
        q->len += (size_t)n;
    }
}

int qmp_connect(const char *path, int timeout_ms, struct qmp **out, hull_error *err)
{
    int fd = vm_unix_connect(path, timeout_ms, NULL, NULL, err);
    if (fd < 0)
        return hull_error_prefix(err, "QMP");
    struct qmp *q = calloc(1, sizeof(*q));
    q->fd = fd;
    json_object *greet = NULL;
    if (read_msg(q, &greet, err) < 0 || !json_object_object_get_ex(greet, "QMP", NULL)) {
        json_object_put(greet);
        qmp_close(q);
        return err && *err ? -1 : hull_error_set(err, EPROTO, "QMP: no greeting");
    }
    json_object_put(greet);
    if (qmp_cmd(q, "qmp_capabilities", NULL, -1, NULL, err) < 0) {
        qmp_close(q);
        return -1;
    }
    *out = q;
    return 0;
}

static int send_all(int fd, const char *s, size_t len, int sendfd)
{
    struct iovec iov = {.iov_base = (void *)s, .iov_len = len};
    char ctl[CMSG_SPACE(sizeof(int))] = {0};
    struct msghdr mh = {.msg_iov = &iov, .msg_iovlen = 1};
    if (sendfd >= 0) {
        mh.msg_control = ctl;
        mh.msg_controllen = sizeof(ctl);
        struct cmsghdr *c = CMSG_FIRSTHDR(&mh);
        c->cmsg_level = SOL_SOCKET;
        c->cmsg_type = SCM_RIGHTS;
        c->cmsg_len = CMSG_LEN(sizeof(int));
        memcpy(CMSG_DATA(c), &sendfd, sizeof(int));
    }
    while (iov.iov_len) {
        ssize_t n = sendmsg(fd, &mh, MSG_NOSIGNAL);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return -1;
        iov.iov_base = (char *)iov.iov_base + n;
        iov.iov_len -= (size_t)n;
        mh.msg_control = NULL; /* the fd goes with the first byte only */
        mh.msg_controllen = 0;
    }
    return 0;
}

int qmp_cmd(struct qmp *q, const char *cmd, json_object *args, int sendfd, json_object **ret,
            hull_error *err)
{
    json_object *m = json_object_new_object();
    json_object_object_add(m, "execute", json_object_new_string(cmd));
    if (args)
        json_object_object_add(m, "arguments", args);
    const char *s = json_object_to_json_string_ext(m, JSON_C_TO_STRING_PLAIN);
    char *line = NULL;
    if (asprintf(&line, "%s\n", s) < 0)
        line = NULL;
    json_object_put(m);
    int rc = line && send_all(q->fd, line, strlen(line), sendfd) == 0
                 ? 0
                 : hull_error_errno(err, "QMP %s", cmd);
    free(line);
    if (rc < 0)
        return -1;
    for (;;) {
        json_object *msg = NULL;
        if (read_msg(q, &msg, err) < 0)
            return hull_error_prefix(err, "QMP %s", cmd);
        json_object *v;
        if (json_object_object_get_ex(msg, "event", NULL)) {
            json_object_put(msg);
            continue;
        }
        if (json_object_object_get_ex(msg, "error", &v)) {
            json_object *d = NULL;
            json_object_object_get_ex(v, "desc", &d);
            rc = hull_error_set(err, EIO, "QMP %s: %s", cmd,
                                d ? json_object_get_string(d) : "error");
        } else if (ret && json_object_object_get_ex(msg, "return", &v))
            *ret = json_object_get(v);
        json_object_put(msg);
        return rc;
    }
}

int qmp_migrate_status(struct qmp *q, char *out, size_t len, hull_error *err)
{
    json_object *r = NULL, *st;
    if (qmp_cmd(q, "query-migrate", NULL, -1, &r, err) < 0)
        return -1;
    const char *s =
        json_object_object_get_ex(r, "status", &st) ? json_object_get_string(st) : "none";
    snprintf(out, len, "%s", s);
    json_object *e;
    if (strcmp(s, "failed") == 0 && json_object_object_get_ex(r, "error-desc", &e))
        snprintf(out, len, "failed: %s", json_object_get_string(e));
    json_object_put(r);
    return 0;
}

void qmp_close(struct qmp *q)
{
    if (!q)
        return;
    close(q->fd);
    free(q);
}
