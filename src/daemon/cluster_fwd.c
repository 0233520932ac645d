/* hulld --cluster: a request sent on to the node that serves it, over
 * HTTPS (libcurl), the peer's certificate checked against --cluster-ca
 * (else the system's CAs) and its address. The caller's own token goes
 * with it: every node accepts every node's tokens (cluster.h). An answer
 * comes back whole (up to FWD_MAX), except a streamed one (NDJSON: a
 * streamed run or exec, a watch), which is passed on as the owning node
 * sends it, holding at most FWD_WINDOW of it: a slow client slows the
 * upstream transfer, not this node's memory. */
#include <curl/curl.h>
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cluster.h"
#include "daemon.h"
#include "util/error.h"
#include "util/log.h"

#define FWD_MAX       (256u << 20)
#define FWD_WINDOW    (1u << 20) /* of a streamed answer not yet sent on */
#define FWD_CONNECT_S 10L
#define FWD_TIMEOUT_S 3600L /* an exec may run long; nothing waits forever */
#define FWD_URL_MAX   8192

/* One forwarded request: the transfer (a multi handle, so that a streamed
 * answer can be read as the client takes it) and what it received. */
struct fwd {
    struct resp_stream base; /* for a streamed answer */
    CURLM *multi;
    CURL *curl;
    struct curl_slist *headers;
    char *p; /* the body received and not yet sent on */
    size_t len, cap, sent;
    bool over;         /* more than FWD_MAX (buffered) */
    bool headers_done; /* a final status's headers have all arrived */
    bool streaming;    /* passed on as it comes: bounded by FWD_WINDOW */
    bool paused;       /* the window is full: the transfer waits */
    bool done;
    CURLcode rc;
    int client_fd;
    char errbuf[CURL_ERROR_SIZE];
};

static size_t take(char *data, size_t size, size_t n, void *cls)
{
    struct fwd *f = cls;
    size_t add = size * n;
    if (f->sent == f->len)
        f->sent = f->len = 0;
    if (f->streaming && f->len - f->sent + add > FWD_WINDOW && f->len > f->sent) {
        f->paused = true; /* curl delivers the same bytes again on resume */
        return CURL_WRITEFUNC_PAUSE;
    }
    if (!f->streaming && f->len + add > FWD_MAX) {
        f->over = true;
        return 0;
    }
    if (f->sent && f->len + add + 1 > f->cap) {
        memmove(f->p, f->p + f->sent, f->len - f->sent);
        f->len -= f->sent;
        f->sent = 0;
    }
    if (f->len + add + 1 > f->cap) {
        size_t cap = f->cap ? f->cap : 16384;
        while (cap < f->len + add + 1)
            cap *= 2;
        char *np = realloc(f->p, cap);
        if (np == NULL)
            return 0;
        f->p = np;
        f->cap = cap;
    }
    memcpy(f->p + f->len, data, add);
    f->len += add;
    return add;
}

/* The blank line after a final (not 1xx) status's headers: the answer's
 * status and type are known. */
static size_t header_line(char *data, size_t size, size_t n, void *cls)
{
    struct fwd *f = cls;
    size_t len = size * n;
    if ((len == 2 && data[0] == '\r') || (len == 1 && data[0] == '\n')) {
        long status = 0;
        curl_easy_getinfo(f->curl, CURLINFO_RESPONSE_CODE, &status);
        f->headers_done = status >= 200;
    }
    return len;
}

/* Move the transfer on: 0, or -1 when the client went away meanwhile. */
static int drive(struct fwd *f)
{
    int running = 0;
    curl_multi_perform(f->multi, &running);
    int left;
    for (CURLMsg *m; (m = curl_multi_info_read(f->multi, &left)) != NULL;)
        if (m->msg == CURLMSG_DONE) {
            f->done = true;
            f->rc = m->data.result;
        }
    if (f->done || running == 0) {
        f->done = true;
        return 0;
    }
    if (f->streaming && (f->len > f->sent || f->paused))
        return 0; /* something to hand on first */
    struct curl_waitfd client = {.fd = f->client_fd, .events = POLLRDHUP};
    int ready = 0;
    curl_multi_poll(f->multi, &client, f->client_fd >= 0 ? 1 : 0, 500, &ready);
    if (client.revents & (POLLRDHUP | POLLHUP | POLLERR))
        return -1;
    return 0;
}

static long fwd_read(struct resp_stream *st, char *buf, size_t max)
{
    struct fwd *f = (struct fwd *)st;
    while (f->len == f->sent) {
        if (f->done)
            return f->rc == CURLE_OK ? 0 : -1; /* a cut upstream cuts this stream */
        if (f->paused) {
            f->paused = false;
            curl_easy_pause(f->curl, CURLPAUSE_CONT);
            continue;
        }
        if (drive(f) < 0)
            return -1;
    }
    size_t n = f->len - f->sent < max ? f->len - f->sent : max;
    memcpy(buf, f->p + f->sent, n);
    f->sent += n;
    return (long)n;
}

static void fwd_free(struct resp_stream *st)
{
    struct fwd *f = (struct fwd *)st;
    if (f->multi && f->curl)
        curl_multi_remove_handle(f->multi, f->curl);
    curl_easy_cleanup(f->curl);
    curl_multi_cleanup(f->multi);
    curl_slist_free_all(f->headers);
    free(f->p);
    free(f);
}

struct url {
    char s[FWD_URL_MAX];
    size_t len;
    bool first, over;
    CURL *curl;
};

static void url_add(struct url *u, const char *text)
{
    int w = snprintf(u->s + u->len, sizeof(u->s) - u->len, "%s", text);
    if (w < 0 || (size_t)w >= sizeof(u->s) - u->len)
        u->over = true;
    else
        u->len += (size_t)w;
}

static bool query_one(void *cls, const char *key, const char *value)
{
    struct url *u = cls;
    char *k = curl_easy_escape(u->curl, key, 0), *v = curl_easy_escape(u->curl, value, 0);
    if (k == NULL || v == NULL)
        u->over = true;
    else {
        url_add(u, u->first ? "?" : "&");
        url_add(u, k);
        url_add(u, "=");
        url_add(u, v);
    }
    u->first = false;
    curl_free(k);
    curl_free(v);
    return !u->over;
}

/* Static strings for resp's content_type (not owned). */
static const char *content_type(CURL *curl)
{
    char *ct = NULL;
    curl_easy_getinfo(curl, CURLINFO_CONTENT_TYPE, &ct);
    static const char *const known[] = {"application/json", "application/x-ndjson",
                                        "text/plain; version=0.0.4; charset=utf-8",
                                        "application/octet-stream"};
    for (size_t i = 0; ct && i < sizeof(known) / sizeof(known[0]); i++)
        if (strncmp(ct, known[i], strlen(known[i])) == 0)
            return known[i];
    return "application/octet-stream";
}

static struct curl_slist *headers(const struct request *rq)
{
    struct curl_slist *h = NULL;
    static const char *const pass[] = {"Authorization", "Content-Type", "Accept"};
    char line[8192];
    for (size_t i = 0; rq->header && i < sizeof(pass) / sizeof(pass[0]); i++) {
        const char *v = rq->header(rq->conn, pass[i]);
        if (v) {
            snprintf(line, sizeof(line), "%s: %s", pass[i], v);
            h = curl_slist_append(h, line);
        }
    }
    snprintf(line, sizeof(line), "%s: %s", CLUSTER_FORWARDED_HEADER, cluster_self());
    h = curl_slist_append(h, line);
    /* No "Expect: 100-continue" round trip before the body. */
    return curl_slist_append(h, "Expect:");
}

static void set_options(struct fwd *f, const struct request *rq, const char *url, const char *body,
                        size_t len)
{
    CURL *curl = f->curl;
    curl_easy_setopt(curl, CURLOPT_URL, url);
    curl_easy_setopt(curl, CURLOPT_CUSTOMREQUEST, rq->method);
    curl_easy_setopt(curl, CURLOPT_HTTPHEADER, f->headers);
    if (strcmp(rq->method, "GET") != 0 && strcmp(rq->method, "HEAD") != 0) {
        /* The body is copied: a streamed answer outlives the request. */
        curl_easy_setopt(curl, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)(body ? len : 0));
        curl_easy_setopt(curl, CURLOPT_COPYPOSTFIELDS, body ? body : "");
    }
    curl_easy_setopt(curl, CURLOPT_PROTOCOLS_STR, "https");
    curl_easy_setopt(curl, CURLOPT_FOLLOWLOCATION, 0L);
    if (cluster_ca())
        curl_easy_setopt(curl, CURLOPT_CAINFO, cluster_ca());
    curl_easy_setopt(curl, CURLOPT_CONNECTTIMEOUT, FWD_CONNECT_S);
    curl_easy_setopt(curl, CURLOPT_TIMEOUT, FWD_TIMEOUT_S);
    curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(curl, CURLOPT_TCP_KEEPALIVE, 1L);
    curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, take);
    curl_easy_setopt(curl, CURLOPT_WRITEDATA, f);
    curl_easy_setopt(curl, CURLOPT_HEADERFUNCTION, header_line);
    curl_easy_setopt(curl, CURLOPT_HEADERDATA, f);
    curl_easy_setopt(curl, CURLOPT_ERRORBUFFER, f->errbuf);
}

void cluster_forward(const struct request *rq, const char *address, const char *body, size_t len,
                     struct resp *r)
{
    struct fwd *f = calloc(1, sizeof(*f));
    if (f == NULL || (f->curl = curl_easy_init()) == NULL ||
        (f->multi = curl_multi_init()) == NULL) {
        if (f)
            fwd_free(&f->base);
        resp_error(r, 500, "internal", NULL, "forwarding: libcurl did not start");
        return;
    }
    f->base.read = fwd_read;
    f->base.free = fwd_free;
    f->client_fd = rq->client_fd;
    struct url u = {.first = true, .curl = f->curl};
    url_add(&u, "https://");
    url_add(&u, address);
    url_add(&u, rq->path);
    if (rq->query_each)
        rq->query_each(rq->conn, query_one, &u);
    if (u.over) {
        fwd_free(&f->base);
        resp_error(r, 414, "uri_too_long", NULL, "forwarding: the URL is too long");
        return;
    }
    f->headers = headers(rq);
    set_options(f, rq, u.s, body, len);
    curl_multi_add_handle(f->multi, f->curl);
    /* Until the answer's headers are in: then a stream is passed on, and
     * anything else read to its end. */
    bool client_gone = false;
    while (!f->done && !client_gone && !f->headers_done)
        client_gone = drive(f) < 0;
    long status = 0;
    curl_easy_getinfo(f->curl, CURLINFO_RESPONSE_CODE, &status);
    if (!f->done && !client_gone && status >= 200 &&
        strcmp(content_type(f->curl), "application/x-ndjson") == 0) {
        f->streaming = true;
        r->status = (int)status;
        r->content_type = "application/x-ndjson";
        r->stream = &f->base;
        return;
    }
    while (!f->done && !client_gone)
        client_gone = drive(f) < 0;
    curl_easy_getinfo(f->curl, CURLINFO_RESPONSE_CODE, &status);
    if (client_gone) {
        resp_error(r, 499, "client_gone", NULL, "forwarding to %s: the client went away", address);
    } else if (f->rc != CURLE_OK || status < 100) {
        resp_error(r, 502, "node_unreachable", NULL, "forwarding to %s: %s", address,
                   f->over        ? "the answer is too large"
                   : f->errbuf[0] ? f->errbuf
                                  : curl_easy_strerror(f->rc));
    } else {
        r->status = (int)status;
        r->raw = f->p ? f->p : strdup("");
        r->raw_len = f->len;
        r->content_type = content_type(f->curl);
        f->p = NULL;
        if (r->raw == NULL)
            resp_error(r, 500, "internal", NULL, "out of memory");
    }
    fwd_free(&f->base);
}
