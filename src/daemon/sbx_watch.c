/* GET /v1/sandboxes/{sid}/fs/{path}?op=watch: inotify events as NDJSON.
 *
 * The keeper's child (inside the sandbox, as its user) makes the inotify
 * instance and its watches and hands the fd here; this connection's thread
 * turns its events into lines until the client goes away (its socket hangs
 * up), the watched directory goes, the sandbox ends, or hulld drains. A
 * directory created under a recursive watch is added through the keeper
 * the same way. Memory is one read's worth of events at a time. */
#include <errno.h>
#include <microhttpd.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/inotify.h>
#include <unistd.h>

#include "daemon.h"
#include "sbx_files.h"
#include "streams.h"
#include "util/clock.h"
#include "util/error.h"
#include "util/json.h"
#include "util/utf8.h"
#include "util/watch_tree.h"

/* How often a quiet watch checks on its client, sandbox and hulld. */
#define WATCH_TICK_MS 500
/* An upload's temporary name while it replaces a file (session_fs_ops.c). */
#define UPLOAD_PREFIX ".hull-upload-"

struct watch {
    char sid[64];
    char tenant[72];
    bool recursive;
    int ifd;
    int client_fd;
    struct watch_tree tree;
    char *out; /* lines not yet given to MHD */
    size_t out_len, out_off, out_cap;
    bool ndjson; /* a microVM's: ifd is a pipe of ready lines (sbx_vm_watch.c) */
    char *part;  /* its bytes after the last whole line */
    size_t part_len;
    char quota[72]; /* the tenant whose stream place it holds (streams.c) */
    char token[sizeof(((struct hull_token_info *)0)->id)]; /* whose watch: ends if revoked */
    struct hull_revoke_mark mark;
    uint64_t touched_ns; /* when the sandbox was last marked in use */
};

static void add_watches(struct watch *w, json_object *res)
{
    json_object *arr = hj_get(res, "watches");
    size_t n = arr ? json_object_array_length(arr) : 0;
    for (size_t i = 0; i < n; i++) {
        json_object *o = json_object_array_get_idx(arr, i);
        int wd = json_object_get_int(hj_get(o, "wd"));
        const char *p = json_object_get_string(hj_get(o, "path"));
        if (p)
            watch_tree_remember(&w->tree, wd, p);
    }
}

static void emit(struct watch *w, const char *type, const char *path, bool dir)
{
    json_object *o = json_object_new_object();
    json_object_object_add(o, "type", json_object_new_string(type));
    if (path) {
        json_object_object_add(o, "path", json_object_new_string(path));
        json_object_object_add(o, "dir", json_object_new_boolean(dir));
    }
    const char *text =
        json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE);
    size_t n = 0;
    char *fixed = hull_utf8_fix(text, strlen(text), &n); /* a name may be any bytes */
    json_object_put(o);
    if (fixed == NULL)
        return;
    if (w->out_len + n + 1 > w->out_cap) {
        size_t cap = (w->out_len + n + 1) * 2;
        char *nb = realloc(w->out, cap);
        if (nb == NULL) {
            free(fixed);
            return;
        }
        w->out = nb;
        w->out_cap = cap;
    }
    memcpy(w->out + w->out_len, fixed, n);
    w->out[w->out_len + n] = '\n';
    w->out_len += n + 1;
    free(fixed);
}

/* A directory made under a recursive watch: watched too. */
static void follow_new_dir(struct watch *w, const char *path)
{
    json_object *hdr = json_object_new_object(), *res = NULL;
    json_object_object_add(hdr, "verb", json_object_new_string("watch_add"));
    json_object_object_add(hdr, "path", json_object_new_string(path));
    json_object_object_add(hdr, "recursive", json_object_new_boolean(1));
    hull_error e = NULL;
    if (sbx_fs_call(w->sid, w->tenant[0] ? w->tenant : NULL, hdr, w->ifd, &res, NULL, &e) < 0)
        hull_error_free(&e); /* gone again already: its delete event follows */
    else
        add_watches(w, res);
    json_object_put(res);
}

static void one_event(struct watch *w, const struct inotify_event *ev)
{
    struct watch_news n;
    if (!watch_tree_event(&w->tree, ev, &n))
        return;
    emit(w, n.type, n.path, n.dir);
    if (w->recursive && n.dir && (ev->mask & (IN_CREATE | IN_MOVED_TO)))
        follow_new_dir(w, n.path);
}

static void read_events(struct watch *w)
{
    char buf[4096] __attribute__((aligned(__alignof__(struct inotify_event))));
    ssize_t n = read(w->ifd, buf, sizeof(buf));
    for (ssize_t off = 0; n > 0 && off < n;) {
        const struct inotify_event *ev = (const void *)(buf + off);
        one_event(w, ev);
        off += (ssize_t)(sizeof(*ev) + ev->len);
    }
}

/* A microVM's events: lines the keeper's child checked already
 * (sbx_vm_watch.c), passed on as they are, whole lines only (as a
 * container's): a client may read a chunk as lines. A line is at most a
 * few KiB (hull_vm_watch bounds it); more without an end of line is
 * dropped. */
#define PART_MAX (64u << 10)
static void take_lines(struct watch *w)
{
    char tmp[4096];
    ssize_t n = read(w->ifd, tmp, sizeof(tmp));
    if (n < 0 && (errno == EINTR || errno == EAGAIN))
        return;
    if (n <= 0) {
        w->tree.ended = true;
        return;
    }
    if (w->part_len + (size_t)n > PART_MAX)
        w->part_len = 0;
    char *np = realloc(w->part, w->part_len + (size_t)n);
    if (np == NULL)
        return;
    w->part = np;
    memcpy(w->part + w->part_len, tmp, (size_t)n);
    w->part_len += (size_t)n;
    char *nl = memrchr(w->part, '\n', w->part_len);
    if (nl == NULL)
        return;
    size_t k = (size_t)(nl - w->part) + 1;
    if (w->out_len + k > w->out_cap) {
        char *nb = realloc(w->out, w->out_len + k);
        if (nb == NULL)
            return;
        w->out = nb;
        w->out_cap = w->out_len + k;
    }
    memcpy(w->out + w->out_len, w->part, k);
    w->out_len += k;
    memmove(w->part, w->part + k, w->part_len - k);
    w->part_len -= k;
}

static ssize_t watch_reader(void *cls, uint64_t pos, char *buf, size_t max)
{
    (void)pos;
    struct watch *w = cls;
    for (;;) {
        if (w->out_off < w->out_len) {
            size_t n = w->out_len - w->out_off;
            n = n < max ? n : max;
            memcpy(buf, w->out + w->out_off, n);
            w->out_off += n;
            return (ssize_t)n;
        }
        w->out_len = w->out_off = 0;
        if (w->tree.ended || hulld.draining ||
            !sandboxes_alive(w->sid, w->tenant[0] ? w->tenant : NULL))
            return MHD_CONTENT_READER_END_OF_STREAM;
        if (hull_token_revoked_since(hulld.store, w->token, &w->mark))
            return MHD_CONTENT_READER_END_WITH_ERROR;
        /* A client watching the sandbox is using it: its idle lifetime
         * does not run out under the watch (as under a wait or a stream). */
        uint64_t now = hull_monotonic_ns();
        if (now - w->touched_ns > 1000000000ull) {
            sandboxes_touch(w->sid, w->tenant[0] ? w->tenant : NULL);
            w->touched_ns = now;
        }
        struct pollfd p[2] = {{.fd = w->ifd, .events = POLLIN},
                              {.fd = w->client_fd, .events = POLLRDHUP}};
        int k = poll(p, w->client_fd >= 0 ? 2 : 1, WATCH_TICK_MS);
        if (k < 0 && errno != EINTR)
            return MHD_CONTENT_READER_END_WITH_ERROR;
        /* The client hung up: nobody to tell. */
        if (p[1].revents & (POLLRDHUP | POLLHUP | POLLERR))
            return MHD_CONTENT_READER_END_WITH_ERROR;
        if ((p[0].revents & (POLLIN | POLLHUP)) && w->ndjson)
            take_lines(w);
        else if (p[0].revents & POLLIN)
            read_events(w);
    }
}

static void watch_free(void *cls)
{
    struct watch *w = cls;
    watch_tree_free(&w->tree);
    free(w->out);
    free(w->part);
    close(w->ifd);
    streams_give(w->quota);
    free(w);
}

void sbx_watch(const struct request *rq, const char *sid, const char *path, bool recursive,
               struct resp *r)
{
    char quota[72];
    if (streams_take(rq, quota, sizeof(quota), r) < 0)
        return;
    json_object *hdr = json_object_new_object(), *res = NULL;
    json_object_object_add(hdr, "verb", json_object_new_string("watch"));
    json_object_object_add(hdr, "path", json_object_new_string(path));
    json_object_object_add(hdr, "recursive", json_object_new_boolean(recursive));
    hull_error e = NULL;
    int ifd = -1;
    if (sbx_fs_call(sid, rq->caller->tenant, hdr, -1, &res, &ifd, &e) < 0 || ifd < 0) {
        if (e == NULL)
            hull_error_set(&e, EIO, "watch %s: no inotify fd came back", path);
        json_object_put(res);
        streams_give(quota);
        sbx_fs_error(r, &e);
        return;
    }
    struct watch *w = calloc(1, sizeof(*w));
    if (w == NULL) {
        close(ifd);
        json_object_put(res);
        streams_give(quota);
        resp_error(r, 500, "internal", NULL, "out of memory");
        return;
    }
    snprintf(w->quota, sizeof(w->quota), "%s", quota);
    snprintf(w->sid, sizeof(w->sid), "%s", sid);
    snprintf(w->token, sizeof(w->token), "%s", rq->caller->tok.id);
    snprintf(w->tenant, sizeof(w->tenant), "%s", rq->caller->tenant ? rq->caller->tenant : "");
    w->recursive = recursive;
    w->ndjson = hj_get(res, "ndjson") != NULL;
    w->ifd = ifd;
    watch_tree_init(&w->tree, UPLOAD_PREFIX);
    add_watches(w, res);
    json_object_put(res);
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(rq->conn, MHD_CONNECTION_INFO_CONNECTION_FD);
    w->client_fd = ci ? ci->connect_fd : -1;
    struct MHD_Response *m =
        MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 4096, watch_reader, w, watch_free);
    if (m == NULL) {
        watch_free(w);
        resp_error(r, 500, "internal", NULL, "watch %s: no response", path);
        return;
    }
    /* Quiet for long is not an idle client: one that goes is seen by the
     * reader (its socket hangs up). */
    MHD_set_connection_option(rq->conn, MHD_CONNECTION_OPTION_TIMEOUT, (unsigned int)0);
    r->mhd = m;
    r->status = 200;
    r->content_type = "application/x-ndjson";
}
