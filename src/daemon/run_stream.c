/* Streamed runs: POST /v1/runs with Accept: application/x-ndjson.
 *
 * The run goes through the pool like any other (runner.c), with one more
 * fd: the worker's end of a SOCK_SEQPACKET socket pair. In the worker,
 * hull_sandbox_run's on_output hook sends each piece of output the result
 * keeps as one datagram [stream, offset][bytes], never waiting: a client
 * too slow to take it loses that piece, and the gap in the offsets
 * becomes a "cut" line; the run's clocks never wait for a client. hulld's
 * side turns the datagrams into the same NDJSON as a streamed exec (start,
 * stdout/stderr chunks, cut, result; docs/api.md), in the connection's
 * thread, one datagram at a time, so hulld holds at most one datagram's
 * lines per stream whatever the run writes. The stream ends when the
 * worker closes its end (the run ended); the result line is the run's
 * result with its id and state. A client that goes ends only its stream:
 * the run goes on and is recorded, and GET /v1/runs/{id} shows it. */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include "procs.h"
#include "run_stream.h"
#include "streams.h"
#include "util/error.h"
#include "util/json.h"
#include "util/log.h"
#include "util/utf8.h"

#define STREAM_BUF (1u << 20) /* the socket's buffer: what a slow client may lag */

/* ---- in hulld ---- */

struct run_stream {
    struct resp_stream base;
    int fd, worker_end, client_fd;
    struct run_job *j; /* held */
    char id[40];
    uint64_t next; /* offset after the last byte that came */
    bool any, started, done;
    /* a UTF-8 character cut short at the end of a datagram, held until the
     * same stream's next bytes come */
    int held_stream;
    uint64_t held_off;
    unsigned char held[4];
    size_t held_len;
    char *buf; /* lines to send, from pos */
    size_t len, pos, cap;
    char quota[72]; /* the tenant whose stream place it holds (streams.c) */
};

bool run_stream_wanted(const struct request *rq)
{
    const char *accept = rq->header ? rq->header(rq->conn, "Accept") : NULL;
    return accept && strstr(accept, "application/x-ndjson");
}

struct run_stream *run_stream_new(const struct request *rq, const char *id, struct resp *r)
{
    /* The answer outlives the run when its client stops reading (no idle
     * timeout): it counts among the tenant's streams, not only its runs. */
    char quota[72];
    if (streams_take(rq, quota, sizeof(quota), r) < 0)
        return NULL;
    struct run_stream *rs = calloc(1, sizeof(*rs));
    int sv[2];
    if (rs == NULL || socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) < 0) {
        free(rs);
        streams_give(quota);
        resp_error(r, 500, "internal", NULL, "cannot make the run's stream: %s", strerror(errno));
        return NULL;
    }
    snprintf(rs->quota, sizeof(rs->quota), "%s", quota);
    int size = STREAM_BUF;
    /* hulld is root: FORCE passes net.core.wmem_max, still one fixed bound. */
    if (setsockopt(sv[1], SOL_SOCKET, SO_SNDBUFFORCE, &size, sizeof(size)) < 0)
        hull_debug("run stream: SO_SNDBUFFORCE: %s (the default buffer is used)", strerror(errno));
    rs->fd = sv[0];
    rs->worker_end = sv[1];
    rs->client_fd = rq->client_fd;
    snprintf(rs->id, sizeof(rs->id), "%s", id);
    return rs;
}

int run_stream_worker_end(struct run_stream *rs)
{
    int fd = rs->worker_end;
    rs->worker_end = -1;
    return fd;
}

void run_stream_free(struct run_stream *rs)
{
    if (rs == NULL)
        return;
    if (rs->fd >= 0)
        close(rs->fd); /* the run goes on without a reader */
    if (rs->worker_end >= 0)
        close(rs->worker_end);
    if (rs->j)
        job_release(rs->j);
    streams_give(rs->quota);
    free(rs->buf);
    free(rs);
}

static void put_line(struct run_stream *rs, json_object *o)
{
    const char *t = hj_to_string(o);
    size_t n = strlen(t);
    if (rs->len + n + 1 > rs->cap) {
        size_t cap = rs->cap ? rs->cap : 4096;
        while (cap < rs->len + n + 1)
            cap *= 2;
        char *b = realloc(rs->buf, cap);
        if (b == NULL) {
            json_object_put(o);
            rs->done = true;
            return;
        }
        rs->buf = b;
        rs->cap = cap;
    }
    memcpy(rs->buf + rs->len, t, n);
    rs->buf[rs->len + n] = '\n';
    rs->len += n + 1;
    json_object_put(o);
}

static void chunk_line(struct run_stream *rs, int stream, uint64_t off, const void *d, size_t n,
                       bool text)
{
    if (n == 0)
        return;
    json_object *o = json_object_new_object();
    json_object_object_add(o, "type", json_object_new_string(stream == 2 ? "stderr" : "stdout"));
    json_object_object_add(o, "offset", json_object_new_uint64(off));
    if (text) {
        json_object_object_add(o, "data", json_object_new_string_len(d, (int)n));
    } else {
        char *b = stream_base64(d, n);
        json_object_object_add(o, "data_b64", json_object_new_string(b ? b : ""));
        free(b);
    }
    put_line(rs, o);
}

static void cut_line(struct run_stream *rs, uint64_t off, uint64_t lost)
{
    json_object *o = json_object_new_object();
    json_object_object_add(o, "type", json_object_new_string("cut"));
    json_object_object_add(o, "offset", json_object_new_uint64(off));
    json_object_object_add(o, "lost", json_object_new_uint64(lost));
    put_line(rs, o);
}

static void flush_held(struct run_stream *rs)
{
    chunk_line(rs, rs->held_stream, rs->held_off, rs->held, rs->held_len, false);
    rs->held_len = 0;
}

/* One datagram's bytes as lines: text while they are UTF-8, the rest as
 * base64, a character cut short at the end held for the next. */
static void output_lines(struct run_stream *rs, int stream, uint64_t off, const unsigned char *d,
                         size_t n)
{
    if (rs->held_len && (rs->held_stream != stream || rs->held_off + rs->held_len != off))
        flush_held(rs);
    if (off > rs->next)
        cut_line(rs, rs->next, off - rs->next);
    if (off + n > rs->next)
        rs->next = off + n;
    unsigned char *joined = NULL;
    if (rs->held_len) {
        joined = malloc(rs->held_len + n);
        if (joined == NULL) {
            flush_held(rs);
        } else {
            memcpy(joined, rs->held, rs->held_len);
            memcpy(joined + rs->held_len, d, n);
            off = rs->held_off;
            n += rs->held_len;
            d = joined;
            rs->held_len = 0;
        }
    }
    size_t bad = 0;
    if (hull_utf8_valid(d, n, &bad)) {
        chunk_line(rs, stream, off, d, n, true);
    } else {
        chunk_line(rs, stream, off, d, bad, true);
        if (n - bad < 4 && hull_utf8_prefix(d + bad, n - bad)) {
            memcpy(rs->held, d + bad, n - bad);
            rs->held_len = n - bad;
            rs->held_stream = stream;
            rs->held_off = off + bad;
        } else {
            chunk_line(rs, stream, off + bad, d + bad, n - bad, false);
        }
    }
    free(joined);
}

/* Bytes of a result's "stdout"/"stderr" (text or "…_base64"). */
static size_t output_len(json_object *res, const char *key, const char **text, bool *b64)
{
    char k64[32];
    snprintf(k64, sizeof(k64), "%s_base64", key);
    json_object *v = hj_get(res, key);
    *b64 = v == NULL && (v = hj_get(res, k64)) != NULL;
    *text = v ? json_object_get_string(v) : "";
    size_t n = strlen(*text);
    if (!*b64)
        return n;
    size_t pad = n >= 1 && (*text)[n - 1] == '=' ? (n >= 2 && (*text)[n - 2] == '=' ? 2 : 1) : 0;
    return n / 4 * 3 - pad;
}

/* The run ended: what never came as chunks, then the result line. */
static void finish(struct run_stream *rs)
{
    if (rs->held_len)
        flush_held(rs);
    job_wait(rs->j);
    const struct run_job *j = rs->j;
    json_object *res = j->result ? json_tokener_parse(j->result) : NULL;
    if (json_object_is_type(res, json_type_object)) {
        const char *so, *se;
        bool so64, se64;
        size_t no = output_len(res, "stdout", &so, &so64),
               ne = output_len(res, "stderr", &se, &se64);
        if (!rs->any) {
            /* Nothing came while it ran (a run path without the hook):
             * its output from the result, as chunks all the same. */
            json_object *o = json_object_new_object();
            if (no) {
                json_object_object_add(o, "type", json_object_new_string("stdout"));
                json_object_object_add(o, "offset", json_object_new_uint64(0));
                json_object_object_add(o, so64 ? "data_b64" : "data", json_object_new_string(so));
                put_line(rs, o);
                o = json_object_new_object();
            }
            if (ne) {
                json_object_object_add(o, "type", json_object_new_string("stderr"));
                json_object_object_add(o, "offset", json_object_new_uint64(no));
                json_object_object_add(o, se64 ? "data_b64" : "data", json_object_new_string(se));
                put_line(rs, o);
            } else {
                json_object_put(o);
            }
        } else if (rs->next < no + ne) {
            cut_line(rs, rs->next, no + ne - rs->next);
        }
        json_object *full = json_object_new_object();
        json_object_object_add(full, "id", json_object_new_string(j->id));
        json_object_object_add(full, "state", json_object_new_string("finished"));
        if (j->recorded) {
            json_object_object_add(full, "created", json_object_new_string(j->created_at));
            json_object_object_add(full, "started", json_object_new_string(j->started_at));
            json_object_object_add(full, "finished", json_object_new_string(j->finished_at));
        }
        json_object_object_foreach(res, k, v)
        {
            if (strcmp(k, "id") != 0 && strcmp(k, "state") != 0)
                json_object_object_add(full, k, json_object_get(v));
        }
        json_object_put(res);
        res = full;
    } else {
        /* Only a run cancelled while queued ends without a result (a
         * worker's failure is an internal_error result); its row may not
         * say so yet: the canceller records it after the job ended. */
        json_object_put(res);
        res = json_object_new_object();
        json_object_object_add(res, "id", json_object_new_string(j->id));
        json_object_object_add(res, "state", json_object_new_string("cancelled"));
        json_object_object_add(res, "created", json_object_new_string(j->created_at));
    }
    json_object *o = json_object_new_object();
    json_object_object_add(o, "type", json_object_new_string("result"));
    json_object_object_add(o, "result", res);
    put_line(rs, o);
    rs->done = true;
}

/* The next datagram's lines into rs->buf (none after a quiet wait): -1
 * when the client went. */
static int fill(struct run_stream *rs)
{
    if (!rs->started) {
        rs->started = true;
        json_object *run = json_object_new_object();
        json_object_object_add(run, "id", json_object_new_string(rs->id));
        json_object_object_add(run, "created", json_object_new_string(rs->j->created_at));
        json_object *o = json_object_new_object();
        json_object_object_add(o, "type", json_object_new_string("start"));
        json_object_object_add(o, "run", run);
        put_line(rs, o);
        return 0;
    }
    struct pollfd p[2] = {{.fd = rs->fd, .events = POLLIN},
                          {.fd = rs->client_fd, .events = POLLRDHUP}};
    int r = poll(p, rs->client_fd >= 0 ? 2 : 1, 500);
    if (r < 0 && errno != EINTR)
        return -1;
    if (r > 0 && (p[1].revents & (POLLRDHUP | POLLHUP | POLLERR)))
        return -1;
    if (r <= 0 || p[0].revents == 0)
        return 0;
    static __thread unsigned char rec[sizeof(struct run_stream_rec) + RUN_STREAM_REC_MAX];
    ssize_t n = recv(rs->fd, rec, sizeof(rec), MSG_DONTWAIT);
    if (n < 0 && (errno == EAGAIN || errno == EINTR))
        return 0;
    if (n <= 0) {
        finish(rs); /* the worker closed its end: the run is over */
        return 0;
    }
    struct run_stream_rec h;
    if ((size_t)n < sizeof(h))
        return 0; /* not one of ours: the worker sends whole records */
    memcpy(&h, rec, sizeof(h));
    rs->any = true;
    output_lines(rs, h.stream == 2 ? 2 : 1, h.offset, rec + sizeof(h), (size_t)n - sizeof(h));
    return 0;
}

static long rs_read(struct resp_stream *base, char *buf, size_t max)
{
    struct run_stream *rs = (struct run_stream *)base;
    while (rs->pos == rs->len) {
        if (rs->done)
            return 0;
        rs->pos = rs->len = 0;
        if (fill(rs) < 0)
            return -1;
    }
    size_t n = rs->len - rs->pos < max ? rs->len - rs->pos : max;
    memcpy(buf, rs->buf + rs->pos, n);
    rs->pos += n;
    return (long)n;
}

static void rs_free(struct resp_stream *base)
{
    run_stream_free((struct run_stream *)base);
}

void run_stream_answer(struct run_stream *rs, struct run_job *j, struct resp *r)
{
    rs->j = j;
    rs->base.read = rs_read;
    rs->base.free = rs_free;
    r->status = 200;
    r->stream = &rs->base;
    r->content_type = "application/x-ndjson";
    snprintf(r->target, sizeof(r->target), "%s", j->id);
}
