/* The host side of the agent protocol: framing, hello, request/response. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <openssl/rand.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "util/clock.h"
#include "util/error.h"
#include "util/json.h"
#include "util/sha256.h"
#include "vm/agent.h"
#include "vm/vm.h"

void vm_agent_close(struct vm_agent *a)
{
    if (!a)
        return;
    if (a->fd >= 0)
        close(a->fd);
    free(a->buf);
    free(a);
}

void vm_agent_drop(struct vm_agent *a)
{
    if (a && a->fd >= 0) {
        close(a->fd);
        a->fd = -1;
    }
}

int vm_ms_left(int64_t deadline)
{
    if (deadline < 0)
        return -1;
    int64_t left = deadline - hull_monotonic_ms();
    return left <= 0 ? 0 : left > INT_MAX ? INT_MAX : (int)left;
}

static int dropped(hull_error *err)
{
    return hull_error_set(err, ECONNRESET,
                          "agent: the session was dropped (the guest broke the protocol)");
}

int vm_agent_send(struct vm_agent *a, uint8_t type, const void *data, size_t len, hull_error *err)
{
    if (a->fd < 0)
        return dropped(err);
    struct hull_agent_hdr h = {.magic = HULL_AGENT_MAGIC, .type = type, .len = (uint32_t)len};
    struct iovec iov[2] = {{&h, sizeof(h)}, {(void *)data, len}};
    size_t total = sizeof(h) + len;
    int cnt = len ? 2 : 1;
    while (total) {
        ssize_t n = writev(a->fd, iov, cnt);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return hull_error_errno(err, "send to the agent");
        total -= (size_t)n;
        for (int i = 0; i < cnt && n; i++) {
            size_t k = (size_t)n < iov[i].iov_len ? (size_t)n : iov[i].iov_len;
            iov[i].iov_base = (char *)iov[i].iov_base + k;
            iov[i].iov_len -= k;
            n -= (ssize_t)k;
        }
    }
    return 0;
}

int64_t vm_agent_send_req(struct vm_agent *a, json_object *req, hull_error *err)
{
    int64_t id = ++a->next_id;
    json_object_object_add(req, "id", json_object_new_int64(id));
    size_t len;
    const char *s = json_object_to_json_string_length(req, JSON_C_TO_STRING_PLAIN, &len);
    int r = vm_agent_send(a, HULL_FRAME_REQ, s, len, err);
    json_object_put(req);
    return r < 0 ? -1 : id;
}

int vm_agent_recv(struct vm_agent *a, int timeout_ms, struct vm_frame *f, hull_error *err)
{
    int64_t end = timeout_ms < 0 ? -1 : hull_monotonic_ms() + timeout_ms;
    bool polled = false;
    if (a->fd < 0)
        return dropped(err);
    if (a->consumed) {
        memmove(a->buf, a->buf + a->consumed, a->len - a->consumed);
        a->len -= a->consumed;
        a->consumed = 0;
    }
    for (;;) {
        /* A new connection can start with the tail of a frame the agent
         * was writing to the previous host: skip to the next header. */
        size_t skip = 0;
        while (a->len - skip >= sizeof(struct hull_agent_hdr)) {
            struct hull_agent_hdr h;
            memcpy(&h, a->buf + skip, sizeof(h));
            if (h.magic == HULL_AGENT_MAGIC && h.len <= HULL_AGENT_MAX_FRAME &&
                h.type >= HULL_FRAME_REQ && h.type <= HULL_FRAME_EXIT && h.flags == 0 &&
                h.reserved == 0)
                break;
            skip++;
        }
        if (skip) {
            memmove(a->buf, a->buf + skip, a->len - skip);
            a->len -= skip;
        }
        if (a->len >= sizeof(struct hull_agent_hdr)) {
            struct hull_agent_hdr h;
            memcpy(&h, a->buf, sizeof(h));
            if (a->len >= sizeof(h) + h.len) {
                f->type = h.type;
                f->len = h.len;
                f->data = a->buf + sizeof(h);
                a->consumed = sizeof(h) + h.len;
                return 0;
            }
        }
        if (a->cap - a->len < (64 << 10)) {
            size_t nc = a->cap ? a->cap * 2 : (256 << 10);
            uint8_t *nb = realloc(a->buf, nc);
            if (!nb)
                return hull_error_set(err, ENOMEM, "agent: buffer");
            a->buf = nb;
            a->cap = nc;
        }
        /* Time up: but one look at the socket first, so a call with no
         * time to wait still takes what has arrived. */
        int left = vm_ms_left(end);
        if (left == 0 && polled)
            return 1;
        polled = true;
        struct pollfd p = {.fd = a->fd, .events = POLLIN};
        int r = poll(&p, 1, left);
        if (r < 0 && errno == EINTR)
            continue;
        if (r == 0)
            return 1;
        ssize_t n = read(a->fd, a->buf + a->len, a->cap - a->len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return hull_error_errno(err, "agent: read");
        if (n == 0)
            return hull_error_set(err, ECONNRESET, "agent: connection closed (the VM stopped?)");
        a->len += (size_t)n;
    }
}

static json_object *parse_frame(const struct vm_frame *f)
{
    json_tokener *tok = json_tokener_new();
    json_object *o = json_tokener_parse_ex(tok, (const char *)f->data, (int)f->len);
    json_tokener_free(tok);
    return o;
}

static int wait_resp_range(struct vm_agent *a, int64_t min_id, int64_t id, int timeout_ms,
                           bool on_ready, json_object **resp, hull_error *err);

int vm_agent_wait_resp(struct vm_agent *a, int64_t id, int timeout_ms, json_object **resp,
                       hull_error *err)
{
    return wait_resp_range(a, id, id, timeout_ms, false, resp, err);
}

/* The agent's word that it now sees this host: a RESP with "ready" and no id. */
static bool is_ready(json_object *o)
{
    json_object *v;
    return !json_object_object_get_ex(o, "id", &v) && json_object_object_get_ex(o, "ready", &v) &&
           json_object_get_boolean(v);
}

/* The agent's "ok": false as an error: its message (made printable, as
 * it goes to a terminal) and its errno. */
static int refusal(json_object *o, hull_error *err)
{
    json_object *e = hj_get(o, "error"), *en = hj_get(o, "errno");
    char msg[512];
    vm_printable(e && json_object_is_type(e, json_type_string) ? json_object_get_string(e)
                                                               : "the agent refused",
                 msg, sizeof(msg));
    int code = en && json_object_is_type(en, json_type_int) ? json_object_get_int(en) : EIO;
    /* A start that failed says at which step: its working directory is the
     * caller's (HULL_ECWD), the sandbox's setup is not (EIO); at its exec,
     * the errno says what (vm/exec.c). */
    json_object *st = hj_get(o, "stage");
    const char *stage =
        st && json_object_is_type(st, json_type_string) ? json_object_get_string(st) : "";
    if (strcmp(stage, "workdir") == 0)
        code = HULL_ECWD;
    else if (strcmp(stage, "setup") == 0)
        code = EIO;
    /* The guest's message already says why; keep its errno as the code. */
    hull_error_set(err, 0, "%s", msg);
    if (err && *err)
        (*err)->code = code > 0 ? code : EIO;
    return -1;
}

/* The answer to any request with an id in [min_id, id]; with on_ready, 2
 * when the agent says it is ready (the caller says hello again at once).
 * The deadline is fixed at the start: frames that are not the answer do
 * not extend it, or a guest talking of other things would hold us. */
static int wait_resp_range(struct vm_agent *a, int64_t min_id, int64_t id, int timeout_ms,
                           bool on_ready, json_object **resp, hull_error *err)
{
    int64_t end = timeout_ms < 0 ? -1 : hull_monotonic_ms() + timeout_ms;
    for (bool first = true;; first = false) {
        struct vm_frame f;
        if (!first && end >= 0 && hull_monotonic_ms() >= end)
            return hull_error_set(err, ETIMEDOUT, "the agent did not answer within %d ms",
                                  timeout_ms);
        int r = vm_agent_recv(a, vm_ms_left(end), &f, err);
        if (r < 0)
            return -1;
        if (r == 1)
            return hull_error_set(err, ETIMEDOUT, "the agent did not answer within %d ms",
                                  timeout_ms);
        if (f.type != HULL_FRAME_RESP)
            continue;
        json_object *o = parse_frame(&f), *v;
        if (on_ready && o && is_ready(o)) {
            json_object_put(o);
            return 2;
        }
        if (!json_object_object_get_ex(o, "id", &v) || !json_object_is_type(v, json_type_int) ||
            json_object_get_int64(v) < min_id || json_object_get_int64(v) > id) {
            json_object_put(o);
            continue; /* an answer to an earlier hello */
        }
        v = hj_get(o, "ok");
        if (v && !json_object_is_type(v, json_type_boolean)) {
            json_object_put(o);
            return hull_error_set(err, EPROTO, "malformed answer from the agent");
        }
        if (v && !json_object_get_boolean(v)) {
            refusal(o, err);
            json_object_put(o);
            return -1;
        }
        if (resp)
            *resp = o;
        else
            json_object_put(o);
        return 0;
    }
}

int vm_agent_call(struct vm_agent *a, json_object *req, int timeout_ms, json_object **resp,
                  hull_error *err)
{
    int64_t id = vm_agent_send_req(a, req, err);
    if (id < 0)
        return -1;
    return vm_agent_wait_resp(a, id, timeout_ms, resp, err);
}

static json_object *hello_req(const struct vm_agent *a)
{
    unsigned char seed[32];
    char hex[65];
    RAND_bytes(seed, sizeof(seed));
    hull_sha256_to_hex(seed, hex); /* just hex formatting of 32 bytes */
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    json_object *o = json_object_new_object();
    json_object_object_add(o, "op", json_object_new_string("hello"));
    json_object_object_add(o, "nonce", json_object_new_string(a->nonce));
    json_object_object_add(o, "time_ns",
                           json_object_new_int64((int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec));
    json_object_object_add(o, "seed", json_object_new_string(hex));
    return o;
}

int vm_agent_open(const char *sock, int timeout_ms, bool (*alive)(void *), void *arg,
                  struct vm_agent **out, json_object **hello, hull_error *err)
{
    int64_t end = hull_monotonic_ms() + timeout_ms;
    int fd = vm_unix_connect(sock, timeout_ms, alive, arg, err);
    if (fd < 0)
        return hull_error_prefix(err, "agent");
    struct vm_agent *a = calloc(1, sizeof(*a));
    a->fd = fd;
    unsigned char r[8];
    RAND_bytes(r, sizeof(r));
    /* Ids start at a random point: a restored guest can still be answering
     * the requests of the connection its snapshot was taken under, and
     * those answers must not match ours. */
    uint64_t start;
    RAND_bytes((unsigned char *)&start, sizeof(start));
    a->next_id = (int64_t)(start >> 12);
    for (int i = 0; i < 8; i++)
        snprintf(a->nonce + 2 * i, 3, "%02x", r[i]);
    /* Repeat hello until answered: bytes sent before the guest has seen the
     * connection open are dropped by QEMU. During a boot they are not
     * dropped but queue up unread, so the interval grows (the agent answers
     * each queued hello before anything else) and an answer to any of them
     * will do. The agent says "ready" the moment it sees a host: then the
     * next hello goes at once, so a boot or a connect is not left waiting
     * out an interval (an agent that never says it is served the same). */
    int interval = 50;
    int64_t first = a->next_id + 1;
    for (;;) {
        int64_t id = vm_agent_send_req(a, hello_req(a), err);
        if (id < 0)
            break;
        json_object *resp = NULL;
        hull_error e2 = NULL;
        int left = (int)(end - hull_monotonic_ms());
        int rc = wait_resp_range(a, first, id, left < interval ? (left > 0 ? left : 0) : interval,
                                 true, &resp, &e2);
        /* A guest saying "ready" over and over still meets the deadline. */
        if (rc == 2 && hull_monotonic_ms() < end)
            continue;
        if (rc == 2) {
            hull_error_set(err, ETIMEDOUT, "the agent did not answer within %d ms", timeout_ms);
            break;
        }
        if (interval < 400)
            interval *= 2;
        if (rc == 0) {
            /* Any answer to our hellos will do; later ones are skipped by id. */
            if (hello)
                *hello = resp;
            else
                json_object_put(resp);
            *out = a;
            return 0;
        }
        bool timeout = hull_error_code(e2) == ETIMEDOUT;
        if (!timeout) {
            if (err)
                *err = e2;
            else
                hull_error_free(&e2); /* the caller asked not to be told (err NULL) */
            break;
        }
        hull_error_free(&e2); /* a timeout here only means: say hello again */
        if (alive && !alive(arg)) {
            hull_error_set(err, ESRCH, "the VMM exited before the agent answered");
            break;
        }
        if (hull_monotonic_ms() >= end) {
            hull_error_set(err, ETIMEDOUT, "the agent did not answer within %d ms", timeout_ms);
            break;
        }
    }
    vm_agent_close(a);
    return -1;
}
