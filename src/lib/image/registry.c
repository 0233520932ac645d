/* The HTTP layer of the registry client: one libcurl easy handle per
 * request, set up the same way for the sequential requests (manifests,
 * uploads) and the parallel blob fetches of pull.c.
 *
 * Transport: https, verified against the system CAs plus the *.crt files of
 * --cert-dir. With tls_insecure nothing is verified and a registry that does
 * not speak TLS is reached over http (https is tried first, as podman and
 * skopeo do); the scheme that worked is kept for the client's later requests.
 * Redirects (blob storage elsewhere) are followed; libcurl drops a custom
 * Authorization header when a redirect leaves the host, port or scheme, so
 * registry credentials never reach another host.
 */
#include <curl/curl.h>
#include <dirent.h>
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "image/registry.h"
#include "util/clock.h"
#include "util/error.h"
#include "util/fs.h"
#include "util/json.h"
#include "util/log.h"
#include "util/sha256.h"

#define REG_ERROR_BODY_MAX (64u << 10)
#define REG_SYSTEM_CA      "/etc/ssl/certs/ca-certificates.crt"

static pthread_once_t curl_once = PTHREAD_ONCE_INIT;

static void curl_init_once(void)
{
    curl_global_init(CURL_GLOBAL_DEFAULT);
}

void reg_sha256(const void *buf, size_t len, char out[72])
{
    cleanup_hull_error hull_error e = NULL;
    memcpy(out, "sha256:", 7);
    /* Only an allocation can fail here; an empty digest then matches nothing. */
    if (hull_sha256_buf(buf, len, out + 7, &e) < 0) {
        hull_warn("sha256: %s", hull_error_msg(e));
        out[7] = '\0';
    }
}

long reg_timeout(const struct image_registry_opts *o)
{
    if (o && o->timeout_s > 0)
        return o->timeout_s;
    const char *e = getenv("HULL_REGISTRY_TIMEOUT");
    if (e && *e) {
        char *end = NULL;
        long v = strtol(e, &end, 10);
        if (end && *end == '\0' && v > 0)
            return v;
    }
    return 30;
}

void reg_resp_free(struct reg_resp *r)
{
    free(r->body);
    free(r->content_type);
    free(r->location);
    free(r->docker_digest);
    free(r->www_auth);
    memset(r, 0, sizeof(*r));
}

/* System CAs followed by every *.crt of cert_dir, as one PEM blob (libcurl
 * takes one CA source; CAPATH would need OpenSSL's hashed names). */
static int load_ca_blob(struct reg_client *c, char **out, size_t *outlen, hull_error *err)
{
    cleanup_free char *all = NULL;
    size_t len = 0;
    if (hull_read_file(REG_SYSTEM_CA, &all, &len, NULL) < 0) {
        all = strdup("");
        len = 0;
        if (!all)
            return hull_error_errno(err, "out of memory");
    }
    cleanup_dir DIR *d = opendir(c->cert_dir);
    if (!d)
        return hull_error_errno(err, "cert dir %s", c->cert_dir);
    struct dirent *de;
    while ((de = readdir(d))) {
        size_t n = strlen(de->d_name);
        if (n < 5 || strcmp(de->d_name + n - 4, ".crt") != 0)
            continue;
        cleanup_free char *path = NULL;
        if (asprintf(&path, "%s/%s", c->cert_dir, de->d_name) < 0)
            return hull_error_errno(err, "out of memory");
        cleanup_free char *pem = NULL;
        size_t plen = 0;
        if (hull_read_file(path, &pem, &plen, err) < 0)
            return hull_error_prefix(err, "cert dir");
        char *grown = realloc(all, len + plen + 2);
        if (!grown)
            return hull_error_errno(err, "out of memory");
        all = grown;
        all[len++] = '\n';
        memcpy(all + len, pem, plen);
        len += plen;
        all[len] = '\0';
    }
    *outlen = len;
    *out = steal_ptr(&all);
    return 0;
}

int reg_client_init(struct reg_client *c, const char *host, bool insecure,
                    const struct image_registry_opts *o, hull_error *err)
{
    pthread_once(&curl_once, curl_init_once);
    memset(c, 0, sizeof(*c));
    c->host = strdup(host);
    /* Docker Hub's name and its API host differ. */
    c->endpoint = strdup(strcmp(host, "docker.io") == 0 ? "registry-1.docker.io" : host);
    if (!c->host || !c->endpoint)
        return hull_error_errno(err, "out of memory");
    c->insecure = insecure || (o && o->tls_insecure);
    c->scheme = "https";
    c->cert_dir = o ? o->cert_dir : NULL;
    c->timeout_s = reg_timeout(o);
    if (reg_auth_lookup(host, o, &c->basic, err) < 0)
        return -1;
    return 0;
}

void reg_client_free(struct reg_client *c)
{
    free(c->host);
    free(c->endpoint);
    free(c->basic);
    free(c->realm);
    free(c->service);
    free(c->ca_blob);
    for (size_t i = 0; i < c->n_tokens; i++) {
        free(c->tokens[i].scope);
        free(c->tokens[i].token);
    }
    free(c->tokens);
    memset(c, 0, sizeof(*c));
}

char *reg_url(struct reg_client *c, const char *path)
{
    if (strncmp(path, "https://", 8) == 0 || strncmp(path, "http://", 7) == 0)
        return strdup(path);
    char *u = NULL;
    if (asprintf(&u, "%s://%s%s", c->scheme, c->endpoint, path) < 0)
        return NULL;
    return u;
}

/* ---- callbacks ---- */

static char *header_value(const char *line, size_t n, const char *name)
{
    size_t k = strlen(name);
    if (n <= k || strncasecmp(line, name, k) != 0 || line[k] != ':')
        return NULL;
    const char *v = line + k + 1;
    const char *end = line + n;
    while (v < end && (*v == ' ' || *v == '\t'))
        v++;
    while (end > v && (end[-1] == '\r' || end[-1] == '\n' || end[-1] == ' '))
        end--;
    return strndup(v, (size_t)(end - v));
}

static void replace(char **slot, char *v)
{
    if (v) {
        free(*slot);
        *slot = v;
    }
}

static size_t on_header(char *buf, size_t size, size_t nitems, void *arg)
{
    struct reg_xfer *x = arg;
    size_t n = size * nitems;
    struct reg_resp *r = x->resp;
    if (n > 5 && strncmp(buf, "HTTP/", 5) == 0) {
        /* A new response (after a redirect or a 100): forget the last one's. */
        const char *sp = memchr(buf, ' ', n);
        r->status = sp ? strtol(sp + 1, NULL, 10) : 0;
        free(r->content_type), r->content_type = NULL;
        free(r->location), r->location = NULL;
        free(r->docker_digest), r->docker_digest = NULL;
        free(r->www_auth), r->www_auth = NULL;
        r->content_length = -1;
        return n;
    }
    replace(&r->content_type, header_value(buf, n, "Content-Type"));
    replace(&r->location, header_value(buf, n, "Location"));
    replace(&r->docker_digest, header_value(buf, n, "Docker-Content-Digest"));
    replace(&r->www_auth, header_value(buf, n, "WWW-Authenticate"));
    cleanup_free char *cl = header_value(buf, n, "Content-Length");
    if (cl)
        r->content_length = strtoll(cl, NULL, 10);
    return n;
}

static size_t on_write(char *buf, size_t size, size_t nmemb, void *arg)
{
    struct reg_xfer *x = arg;
    size_t n = size * nmemb;
    struct reg_resp *r = x->resp;
    bool ok = r->status >= 200 && r->status < 300;
    if (ok && x->req->sink) {
        if (x->req->sink(x->req->sink_arg, buf, n, &x->sink_err) < 0)
            return 0; /* aborts the transfer: CURLE_WRITE_ERROR */
        return n;
    }
    size_t max = ok ? x->max : REG_ERROR_BODY_MAX;
    if (r->len + n > max) {
        if (ok) {
            x->overflow = true;
            return 0;
        }
        n = max - r->len; /* an error page: its start is enough */
        if (n == 0)
            return size * nmemb;
    }
    if (r->len + n + 1 > x->cap) {
        size_t cap = x->cap ? x->cap : 4096;
        while (cap < r->len + n + 1)
            cap *= 2;
        char *b = realloc(r->body, cap);
        if (!b)
            return 0;
        r->body = b;
        x->cap = cap;
    }
    memcpy(r->body + r->len, buf, n);
    r->len += n;
    r->body[r->len] = '\0';
    return size * nmemb;
}

static size_t on_read(char *buf, size_t size, size_t nitems, void *arg)
{
    struct reg_xfer *x = arg;
    const struct reg_req *q = x->req;
    size_t want = size * nitems;
    if (q->body_from_fd) {
        ssize_t got = pread(q->body_fd, buf, want, x->read_off);
        if (got < 0)
            return CURL_READFUNC_ABORT;
        x->read_off += got;
        return (size_t)got;
    }
    size_t left = q->body_len - (size_t)x->read_off;
    if (want > left)
        want = left;
    if (want)
        memcpy(buf, q->body + x->read_off, want);
    x->read_off += (int64_t)want;
    return want;
}

/* ---- one handle ---- */

/* Milliseconds left before c's deadline (0: it has none); the pull's
 * "timed out" once it has passed. */
static int deadline_left_ms(struct reg_client *c, long *ms, hull_error *err)
{
    *ms = 0;
    if (c->deadline_ns == 0)
        return 0;
    uint64_t now = hull_monotonic_ns();
    if (now >= c->deadline_ns) {
        c->deadline_hit = true;
        return hull_error_set(err, ETIMEDOUT, "timed out after %ld s", c->deadline_s);
    }
    *ms = (long)((c->deadline_ns - now + 999999) / 1000000);
    return 0;
}

void *reg_easy(struct reg_client *c, const struct reg_req *req, struct reg_resp *resp,
               struct curl_slist **headers, struct reg_xfer *x, hull_error *err)
{
    memset(x, 0, sizeof(*x));
    x->req = req;
    x->resp = resp;
    x->max = req->max ? req->max : REG_ERROR_BODY_MAX;
    resp->content_length = -1;
    long left_ms;
    if (deadline_left_ms(c, &left_ms, err) < 0)
        return NULL;
    cleanup_free char *url = reg_url(c, req->path);
    cleanup_free char *auth = NULL;
    if (!url)
        return hull_error_errno(err, "out of memory"), NULL;
    if (req->authorization) {
        if (*req->authorization && !(auth = strdup(req->authorization)))
            return hull_error_errno(err, "out of memory"), NULL;
    } else if (reg_auth_header(c, req->scope, &auth, err) < 0) {
        return NULL;
    }
    CURL *h = curl_easy_init();
    if (!h)
        return hull_error_set(err, ENOMEM, "curl_easy_init failed"), NULL;
    struct curl_slist *hl = NULL;
    char line[8192];
    if (req->accept) {
        snprintf(line, sizeof(line), "Accept: %s", req->accept);
        hl = curl_slist_append(hl, line);
    }
    if (req->content_type) {
        snprintf(line, sizeof(line), "Content-Type: %s", req->content_type);
        hl = curl_slist_append(hl, line);
    }
    if (auth) {
        /* Tokens can be long (a JWT with its certificate chain). */
        cleanup_free char *a = NULL;
        if (asprintf(&a, "Authorization: %s", auth) < 0) {
            curl_slist_free_all(hl);
            curl_easy_cleanup(h);
            return hull_error_errno(err, "out of memory"), NULL;
        }
        hl = curl_slist_append(hl, a);
    }
    if (req->range_from > 0) {
        snprintf(line, sizeof(line), "Range: bytes=%lld-", (long long)req->range_from);
        hl = curl_slist_append(hl, line);
    }
    hl = curl_slist_append(hl, "Expect:");
    *headers = hl;
    curl_easy_setopt(h, CURLOPT_URL, url);
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, hl);
    curl_easy_setopt(h, CURLOPT_USERAGENT, "hull/1");
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(h, CURLOPT_REDIR_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(h, CURLOPT_FOLLOWLOCATION, 1L);
    curl_easy_setopt(h, CURLOPT_MAXREDIRS, 5L);
    curl_easy_setopt(h, CURLOPT_UNRESTRICTED_AUTH, 0L);
    curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT, c->timeout_s);
    curl_easy_setopt(h, CURLOPT_LOW_SPEED_LIMIT, (long)REG_LOW_SPEED);
    curl_easy_setopt(h, CURLOPT_LOW_SPEED_TIME, c->timeout_s);
    if (left_ms > 0)
        curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, left_ms);
    curl_easy_setopt(h, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(h, CURLOPT_HEADERDATA, x);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_write);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, x);
    if (c->insecure) {
        curl_easy_setopt(h, CURLOPT_SSL_VERIFYPEER, 0L);
        curl_easy_setopt(h, CURLOPT_SSL_VERIFYHOST, 0L);
    } else if (c->ca_blob) {
        struct curl_blob blob = {.data = c->ca_blob, .len = c->ca_len, .flags = CURL_BLOB_COPY};
        curl_easy_setopt(h, CURLOPT_CAINFO_BLOB, &blob);
    }
    const char *m = req->method ? req->method : "GET";
    if (strcmp(m, "HEAD") == 0) {
        curl_easy_setopt(h, CURLOPT_NOBODY, 1L);
    } else if (strcmp(m, "PUT") == 0 || strcmp(m, "PATCH") == 0) {
        curl_easy_setopt(h, CURLOPT_UPLOAD, 1L);
        curl_easy_setopt(h, CURLOPT_READFUNCTION, on_read);
        curl_easy_setopt(h, CURLOPT_READDATA, x);
        curl_off_t size = req->body_from_fd ? req->body_size : (curl_off_t)req->body_len;
        curl_easy_setopt(h, CURLOPT_INFILESIZE_LARGE, size);
        if (strcmp(m, "PATCH") == 0)
            curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, "PATCH");
    } else if (strcmp(m, "POST") == 0) {
        curl_easy_setopt(h, CURLOPT_POST, 1L);
        curl_easy_setopt(h, CURLOPT_POSTFIELDS, req->body ? req->body : "");
        curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE, (long)(req->body ? req->body_len : 0));
    } else if (strcmp(m, "GET") != 0) {
        curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, m);
    }
    return h;
}

/* Why a transfer failed, for the user: curl's words, and what to do about
 * a certificate. */
int reg_xfer_error(struct reg_client *c, int code, const char *errbuf, struct reg_xfer *x,
                   hull_error *err)
{
    CURLcode rc = (CURLcode)code;
    if (rc == CURLE_WRITE_ERROR && x->sink_err) {
        hull_error e = x->sink_err;
        x->sink_err = NULL;
        *err = e;
        return -1;
    }
    if (rc == CURLE_WRITE_ERROR && x->overflow)
        return hull_error_set(err, EFBIG, "response too large (over the %zu-byte limit)", x->max);
    const char *why = errbuf && *errbuf ? errbuf : curl_easy_strerror(rc);
    if (rc == CURLE_PEER_FAILED_VERIFICATION || rc == CURLE_SSL_CACERT_BADFILE ||
        rc == CURLE_SSL_CERTPROBLEM)
        return hull_error_set(err, EPROTO,
                              "%s: TLS certificate not trusted: %s (--cert-dir DIR with the "
                              "registry's CA, or --tls-verify=false)",
                              c->host, why);
    /* A cut at the deadline (curl's clock is not ours: allow it a little
     * early) is the pull's timeout, not this registry's slowness. */
    if (rc == CURLE_OPERATION_TIMEDOUT && c->deadline_ns &&
        hull_monotonic_ns() + 250000000ull >= c->deadline_ns) {
        c->deadline_hit = true;
        return hull_error_set(err, ETIMEDOUT, "timed out after %ld s", c->deadline_s);
    }
    if (rc == CURLE_OPERATION_TIMEDOUT)
        return hull_error_set(err, ETIMEDOUT, "%s: stalled: under %d bytes/s for %ld s: %s",
                              c->host, REG_LOW_SPEED, c->timeout_s, why);
    if (rc == CURLE_COULDNT_CONNECT || rc == CURLE_COULDNT_RESOLVE_HOST)
        return hull_error_set(err, ECONNREFUSED, "%s: %s", c->host, why);
    return hull_error_set(err, EIO, "%s: %s", c->host, why);
}

static int perform_once(struct reg_client *c, const struct reg_req *req, struct reg_resp *resp,
                        hull_error *err)
{
    struct reg_xfer x;
    struct curl_slist *hl = NULL;
    reg_resp_free(resp);
    CURL *h = reg_easy(c, req, resp, &hl, &x, err);
    if (!h)
        return -1;
    char errbuf[CURL_ERROR_SIZE] = "";
    curl_easy_setopt(h, CURLOPT_ERRORBUFFER, errbuf);
    CURLcode rc = curl_easy_perform(h);
    curl_easy_cleanup(h);
    curl_slist_free_all(hl);
    if (rc != CURLE_OK) {
        int r = reg_xfer_error(c, rc, errbuf, &x, err);
        hull_error_free(&x.sink_err);
        return r;
    }
    return 0;
}

/* The first request settles the scheme: https, or with tls_insecure http
 * when https fails. */
static int perform(struct reg_client *c, const struct reg_req *req, struct reg_resp *resp,
                   hull_error *err)
{
    if (c->scheme_known || !c->insecure)
        return perform_once(c, req, resp, err) < 0 ? -1 : (c->scheme_known = true, 0);
    cleanup_hull_error hull_error https_err = NULL;
    if (perform_once(c, req, resp, &https_err) == 0) {
        c->scheme_known = true;
        return 0;
    }
    c->scheme = "http";
    if (perform_once(c, req, resp, err) < 0) {
        c->scheme = "https";
        /* When http reached the registry, https's failure says nothing. */
        if (hull_error_code(*err) == ECONNREFUSED)
            return hull_error_prefix(err, "https: %s; http", hull_error_msg(https_err));
        return -1;
    }
    c->scheme_known = true;
    return 0;
}

int reg_client_prepare(struct reg_client *c, hull_error *err)
{
    if (!c->ca_blob && !c->insecure && c->cert_dir &&
        load_ca_blob(c, &c->ca_blob, &c->ca_len, err) < 0)
        return -1;
    return 0;
}

int reg_do(struct reg_client *c, const struct reg_req *req, struct reg_resp *resp, hull_error *err)
{
    if (reg_client_prepare(c, err) < 0)
        return -1;
    for (int attempt = 0;; attempt++) {
        if (perform(c, req, resp, err) < 0)
            return -1;
        if (resp->status != 401 || !resp->www_auth || attempt > 0 || req->authorization)
            return 0;
        int r = reg_auth_challenge(c, resp->www_auth, req->scope, err);
        if (r < 0)
            return -1;
        if (r == 0)
            return 0;
    }
}

/* The registry's own words: {"errors":[{"code":..,"message":..}]}. */
static void registry_message(const struct reg_resp *resp, char *buf, size_t len)
{
    buf[0] = '\0';
    if (!resp->body || !resp->len)
        return;
    json_object *doc = json_tokener_parse(resp->body);
    if (!doc)
        return;
    json_object *errors = hj_get(doc, "errors");
    if (errors && json_object_is_type(errors, json_type_array) &&
        json_object_array_length(errors) > 0) {
        json_object *e0 = json_object_array_get_idx(errors, 0);
        json_object *msg = hj_get(e0, "message");
        if (msg && json_object_is_type(msg, json_type_string))
            snprintf(buf, len, " (%s)", json_object_get_string(msg));
    }
    json_object_put(doc);
}

int reg_status_error(const struct reg_resp *resp, const char *what, hull_error *err)
{
    char msg[512];
    registry_message(resp, msg, sizeof(msg));
    long s = resp->status;
    char base[128];
    int code = EPROTO;
    if (s == 401)
        code = EACCES, snprintf(base, sizeof(base), "authentication required");
    else if (s == 403)
        code = EPERM, snprintf(base, sizeof(base), "access denied");
    else if (s == 404)
        code = ENOENT, snprintf(base, sizeof(base), "%s unknown", what ? what : "resource");
    else if (s == 429)
        code = EAGAIN, snprintf(base, sizeof(base), "too many requests (retry later)");
    else if (s >= 500)
        code = EIO, snprintf(base, sizeof(base), "registry error %ld", s);
    else
        snprintf(base, sizeof(base), "unexpected status %ld", s);
    /* The registry's words, unless they only repeat ours: " (words)". */
    size_t ml = strlen(msg);
    if (s == 404 || s == 429 || s >= 500 ||
        (ml > 3 && strncasecmp(msg + 2, base, ml - 3) == 0 && base[ml - 3] == '\0'))
        msg[0] = '\0';
    return hull_error_set(err, code, "%s%s", base, msg);
}
