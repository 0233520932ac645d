/* hulld --cluster: a request sent on to the node that serves it, over
 * HTTPS (libcurl), the peer's certificate checked against --cluster-ca
 * (else the system's CAs) and its address. The caller's own token goes
 * with it: every node accepts every node's tokens (cluster.h). The answer
 * comes back whole (a streamed one too: buffered, up to FWD_MAX). */
#include <curl/curl.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cluster.h"
#include "daemon.h"
#include "util/error.h"
#include "util/log.h"

#define FWD_MAX       (256u << 20)
#define FWD_CONNECT_S 10L
#define FWD_TIMEOUT_S 3600L /* an exec may run long; nothing waits forever */
#define FWD_URL_MAX   8192

struct buf {
    char *p;
    size_t len, cap;
    bool over;
};

static size_t take(char *data, size_t size, size_t n, void *cls)
{
    struct buf *b = cls;
    size_t add = size * n;
    if (b->len + add > FWD_MAX) {
        b->over = true;
        return 0;
    }
    if (b->len + add + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 16384;
        while (cap < b->len + add + 1)
            cap *= 2;
        char *np = realloc(b->p, cap);
        if (np == NULL)
            return 0;
        b->p = np;
        b->cap = cap;
    }
    memcpy(b->p + b->len, data, add);
    b->len += add;
    return add;
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

void cluster_forward(const struct request *rq, const char *address, const char *body, size_t len,
                     struct resp *r)
{
    CURL *curl = curl_easy_init();
    if (curl == NULL) {
        resp_error(r, 500, "internal", NULL, "forwarding: libcurl did not start");
        return;
    }
    struct url u = {.first = true, .curl = curl};
    url_add(&u, "https://");
    url_add(&u, address);
    url_add(&u, rq->path);
    if (rq->query_each)
        rq->query_each(rq->conn, query_one, &u);
    if (u.over) {
        curl_easy_cleanup(curl);
        resp_error(r, 414, "uri_too_long", NULL, "forwarding: the URL is too long");
        return;
    }
    struct curl_slist *h = headers(rq);
    struct buf b = {0};
    char errbuf[CURL_ERROR_SIZE] = "";
    curl_easy_setopt(curl, CURLOPT_URL, u.s);
    curl_easy_setopt(curl, CURLOPT_CUSTOMREQUEST, rq->method);
    curl_easy_setopt(curl, CURLOPT_HTTPHEADER, h);
    if (strcmp(rq->method, "GET") != 0 && strcmp(rq->method, "HEAD") != 0) {
        curl_easy_setopt(curl, CURLOPT_POSTFIELDS, body ? body : "");
        curl_easy_setopt(curl, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)(body ? len : 0));
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
    curl_easy_setopt(curl, CURLOPT_WRITEDATA, &b);
    curl_easy_setopt(curl, CURLOPT_ERRORBUFFER, errbuf);
    CURLcode rc = curl_easy_perform(curl);
    long status = 0;
    curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &status);
    if (rc != CURLE_OK || status < 100) {
        resp_error(r, 502, "node_unreachable", NULL, "forwarding to %s: %s", address,
                   b.over      ? "the answer is too large"
                   : errbuf[0] ? errbuf
                               : curl_easy_strerror(rc));
        free(b.p);
    } else {
        r->status = (int)status;
        r->raw = b.p ? b.p : strdup("");
        r->raw_len = b.len;
        r->content_type = content_type(curl);
        if (r->raw == NULL)
            resp_error(r, 500, "internal", NULL, "out of memory");
    }
    curl_slist_free_all(h);
    curl_easy_cleanup(curl);
}
