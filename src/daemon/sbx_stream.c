/* A process's output as NDJSON (docs/api.md "Processes"), made while it is
 * sent: each time the client can take more, one "proc_read" on this
 * stream's own keeper connection (never the sandbox's op lock), for at most
 * READ_MAX bytes, waiting there for new output when following. hulld holds
 * one read's lines per stream, whatever the process writes: a slow client
 * only falls behind in the keeper's bounded buffer, and is told what it
 * lost ("cut"). A client that goes is seen while waiting (its socket's
 * hang-up) and only its stream ends: the process runs on. */
#include <errno.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "procs.h"
#include "streams.h"
#include "util/error.h"
#include "util/json.h"
#include "util/utf8.h"

#define READ_MAX (64u << 10)

struct pstream {
    struct resp_stream base;
    struct sbx *sbx; /* held */
    int ks;          /* our keeper connection */
    int client_fd;   /* the client's socket, -1 if unknown */
    char id[40], sid[40];
    uint64_t offset, after;
    bool follow, done;
    json_object *first; /* the "start" line's process, still to send */
    char quota[72];     /* the tenant whose stream place it holds (streams.c) */
    char token[sizeof(((struct hull_token_info *)0)->id)]; /* whose stream */
    struct hull_revoke_mark mark;                          /* tokens.revoked, last seen */
    char *buf;                                             /* lines to send, from pos */
    size_t len, pos, cap;
};

static void put_line(struct pstream *st, json_object *o)
{
    const char *t = hj_to_string(o);
    size_t n = strlen(t);
    if (st->len + n + 1 > st->cap) {
        size_t cap = st->cap ? st->cap : 4096;
        while (cap < st->len + n + 1)
            cap *= 2;
        char *b = realloc(st->buf, cap);
        if (b == NULL) {
            json_object_put(o);
            st->done = true;
            return;
        }
        st->buf = b;
        st->cap = cap;
    }
    memcpy(st->buf + st->len, t, n);
    st->buf[st->len + n] = '\n';
    st->len += n + 1;
    json_object_put(o);
}

static void error_line(struct pstream *st, hull_error *e)
{
    struct resp r = {0};
    resp_from_error(&r, e);
    json_object *o = json_object_new_object();
    json_object_object_add(o, "type", json_object_new_string("error"));
    json_object *er = r.body ? json_object_get(hj_get(r.body, "error")) : NULL;
    json_object_object_add(o, "error", er ? er : json_object_new_object());
    json_object_put(r.body);
    put_line(st, o);
    st->done = true;
}

char *stream_base64(const unsigned char *s, size_t n)
{
    static const char tab[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    char *out = malloc((n + 2) / 3 * 4 + 1), *o = out;
    if (out == NULL)
        return NULL;
    for (size_t i = 0; i < n; i += 3) {
        unsigned v = (unsigned)s[i] << 16 | (i + 1 < n ? (unsigned)s[i + 1] << 8 : 0) |
                     (i + 2 < n ? s[i + 2] : 0);
        *o++ = tab[v >> 18 & 63];
        *o++ = tab[v >> 12 & 63];
        *o++ = i + 1 < n ? tab[v >> 6 & 63] : '=';
        *o++ = i + 2 < n ? tab[v & 63] : '=';
    }
    *o = '\0';
    return out;
}

static void chunk_line(struct pstream *st, int stream, uint64_t off, const char *d, size_t n,
                       bool text)
{
    if (n == 0)
        return;
    json_object *o = json_object_new_object();
    json_object_object_add(o, "type", json_object_new_string(stream ? "stderr" : "stdout"));
    json_object_object_add(o, "offset", json_object_new_uint64(off));
    if (text) {
        json_object_object_add(o, "data", json_object_new_string_len(d, (int)n));
    } else {
        char *b = stream_base64((const unsigned char *)d, n);
        json_object_object_add(o, "data_b64", json_object_new_string(b ? b : ""));
        free(b);
    }
    put_line(st, o);
}

/* One segment as lines; false when its last bytes (a character cut short
 * with more to come) are held back for the next read. */
static bool segment(struct pstream *st, int stream, uint64_t off, const char *d, size_t n,
                    bool more_later)
{
    size_t bad = 0;
    if (hull_utf8_valid(d, n, &bad)) {
        chunk_line(st, stream, off, d, n, true);
        return true;
    }
    bool cut_short = n - bad < 4 && hull_utf8_prefix((const unsigned char *)d + bad, n - bad);
    /* The text before the first byte that is not: as text still. */
    chunk_line(st, stream, off, d, bad, true);
    if (!cut_short) {
        chunk_line(st, stream, off + bad, d + bad, n - bad, false);
        return true;
    }
    if (more_later) {
        st->offset = off + bad;
        return false;
    }
    chunk_line(st, stream, off + bad, d + bad, n - bad, false);
    return true;
}

/* Wait for fd to be readable: 0; -1 when the client went (ECONNRESET),
 * hulld is stopping (ESHUTDOWN) or token (when not NULL) was revoked
 * meanwhile (EKEYREVOKED), with errno. A client waiting on the
 * sandbox's work (following a quiet process, waiting for its end) is
 * using it: s (when given) is touched meanwhile, so its idle lifetime
 * does not run out under the request. */
static int wait_keeper(int fd, int client_fd, struct sbx *s, const char *token,
                       struct hull_revoke_mark *mark)
{
    for (;;) {
        if (s)
            sbx_touch(s);
        struct pollfd p[2] = {{.fd = fd, .events = POLLIN}, {.fd = client_fd, .events = POLLRDHUP}};
        /* Now and then: a stream open must not hold up hulld's stop. */
        int r = poll(p, client_fd >= 0 ? 2 : 1, 500);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0 || (p[1].revents & (POLLRDHUP | POLLHUP | POLLERR))) {
            errno = ECONNRESET;
            return -1;
        }
        if (p[0].revents)
            return 0;
        if (hulld.draining) {
            errno = ESHUTDOWN;
            return -1;
        }
        /* A wait may last as long as a stream: a revoked token ends it
         * as it ends a stream (http.c). */
        if (token && token[0] && hull_token_revoked_since(hulld.store, token, mark)) {
            errno = EKEYREVOKED;
            return -1;
        }
    }
}

int sbx_keeper_ask(struct sbx *s, int ks, int client_fd, const char *token,
                   struct hull_revoke_mark *mark, json_object *hdr, struct frame *f,
                   hull_error *err)
{
    int r = frame_send(ks, hdr, NULL, 0, -1);
    json_object_put(hdr);
    if (r < 0)
        return hull_error_set(err, ESRCH, "the sandbox is gone");
    if (wait_keeper(ks, client_fd, s, token, mark) < 0)
        return errno == ESHUTDOWN ? hull_error_set(err, ESHUTDOWN, "hulld is shutting down")
               : errno == EKEYREVOKED
                   ? hull_error_set(err, EKEYREVOKED, "token %s was revoked", token)
                   : hull_error_set(err, ECONNRESET, "the client went");
    if (frame_recv(ks, f) < 0)
        return hull_error_set(err, ESRCH, "the sandbox is gone");
    if (frame_error(f, "keeper failed", err) < 0) {
        frame_free(f);
        return -1;
    }
    return 0;
}

static void result_line(struct pstream *st, json_object *res)
{
    json_object *o = json_object_new_object();
    json_object_object_add(o, "type", json_object_new_string("result"));
    json_object *copy = json_object_get(res);
    json_object_object_add(copy, "sandbox", json_object_new_string(st->sid));
    json_object_object_add(o, "result", copy);
    put_line(st, o);
    st->done = true;
}

/* The next read's lines into st->buf: -1 when the client went. */
static int fill(struct pstream *st)
{
    if (st->first) {
        json_object *o = json_object_new_object();
        json_object_object_add(o, "type", json_object_new_string("start"));
        json_object_object_add(o, "process", st->first);
        st->first = NULL;
        put_line(st, o);
        return 0;
    }
    sbx_touch(st->sbx);
    json_object *hdr = json_object_new_object();
    json_object_object_add(hdr, "op", json_object_new_string("proc_read"));
    json_object_object_add(hdr, "id", json_object_new_string(st->id));
    json_object_object_add(hdr, "offset", json_object_new_uint64(st->offset));
    json_object_object_add(hdr, "after", json_object_new_uint64(st->after));
    json_object_object_add(hdr, "max", json_object_new_uint64(READ_MAX));
    json_object_object_add(hdr, "wait", json_object_new_int(st->follow));
    struct frame f;
    hull_error e = NULL;
    if (sbx_keeper_ask(st->sbx, st->ks, st->client_fd, st->token, &st->mark, hdr, &f, &e) < 0) {
        if (hull_error_code(e) == ECONNRESET) {
            hull_error_free(&e);
            return -1;
        }
        error_line(st, &e);
        return 0;
    }
    json_object *cut = hj_get(f.hdr, "cut"), *segs = hj_get(f.hdr, "segs");
    uint64_t end = json_object_get_uint64(hj_get(f.hdr, "end"));
    bool running = json_object_get_boolean(hj_get(f.hdr, "running"));
    if (cut) {
        json_object *o = json_object_new_object();
        json_object_object_add(o, "type", json_object_new_string("cut"));
        json_object_object_add(o, "offset", json_object_get(json_object_array_get_idx(cut, 0)));
        json_object_object_add(o, "lost", json_object_get(json_object_array_get_idx(cut, 1)));
        put_line(st, o);
        st->offset += json_object_get_uint64(json_object_array_get_idx(cut, 1));
    }
    size_t n = segs ? json_object_array_length(segs) : 0, used = 0;
    bool held = false;
    uint64_t held_end = 0;
    for (size_t i = 0; i < n && !held; i++) {
        json_object *sg = json_object_array_get_idx(segs, i);
        int stream = json_object_get_int(json_object_array_get_idx(sg, 0));
        uint64_t off = json_object_get_uint64(json_object_array_get_idx(sg, 1));
        size_t len = (size_t)json_object_get_uint64(json_object_array_get_idx(sg, 2));
        if (used + len > f.len)
            break;
        bool more = i + 1 == n && (running || off + len < end);
        held = !segment(st, stream, off, f.data + used, len, more);
        if (!held)
            st->offset = off + len;
        held_end = off + len;
        used += len;
    }
    /* A character held back at the end of all there is: wait for more. */
    st->after = held && held_end >= end ? end : st->offset;
    json_object *res = hj_get(f.hdr, "result");
    if (!running && st->offset >= end)
        result_line(st, res ? res : json_object_new_object());
    else if (!st->follow && st->offset >= end)
        st->done = true;
    frame_free(&f);
    return 0;
}

static long pstream_read(struct resp_stream *base, char *buf, size_t max)
{
    struct pstream *st = (struct pstream *)base;
    while (st->pos == st->len) {
        if (st->done)
            return 0;
        st->pos = st->len = 0;
        if (fill(st) < 0)
            return -1;
    }
    size_t n = st->len - st->pos < max ? st->len - st->pos : max;
    memcpy(buf, st->buf + st->pos, n);
    st->pos += n;
    return (long)n;
}

static void pstream_free(struct resp_stream *base)
{
    struct pstream *st = (struct pstream *)base;
    if (st->ks >= 0)
        close(st->ks); /* the keeper forgets this reader; the process runs on */
    json_object_put(st->first);
    free(st->buf);
    sbx_touch(st->sbx); /* idle from the stream's end on */
    sbx_release(st->sbx);
    streams_give(st->quota);
    free(st);
}

int sbx_stream_answer(struct sbx *s, const struct request *rq, int ks, const char *pid,
                      uint64_t offset, bool follow, json_object *first, const char *quota,
                      struct resp *r)
{
    struct pstream *st = calloc(1, sizeof(*st));
    if (st == NULL) {
        close(ks);
        json_object_put(first);
        streams_give(quota);
        resp_error(r, 500, "internal", NULL, "out of memory");
        return -1;
    }
    st->base.read = pstream_read;
    st->base.free = pstream_free;
    st->ks = ks;
    st->sbx = s;
    sbx_hold(s);
    st->client_fd = rq->client_fd;
    snprintf(st->token, sizeof(st->token), "%s", rq->caller->tok.id);
    snprintf(st->id, sizeof(st->id), "%s", pid);
    snprintf(st->sid, sizeof(st->sid), "%s", sbx_id(s));
    st->offset = st->after = offset;
    st->follow = follow;
    st->first = first;
    snprintf(st->quota, sizeof(st->quota), "%s", quota ? quota : "");
    r->status = 200;
    r->stream = &st->base;
    r->content_type = "application/x-ndjson";
    return 0;
}
