/* What libmicrohttpd (0.9.75, Debian 12) answers on its own, made hull's.
 *
 * Most is refused before MHD would: a query over HTTP_MAX_QUERY (cut off
 * in the URI log callback, answered 414 by the handler), and the body's
 * framing, checked from the headers as sent on the handler's first call
 * (http_framing: two Content-Lengths, Content-Length with
 * Transfer-Encoding, a transfer coding other than chunked that MHD would
 * wait on for ever). The rest MHD refuses before the handler is called:
 *
 * MHD refuses some requests before hulld's handler sees them (headers or
 * URL over its memory pool: 431/414; an HTTP version it does not speak:
 * 505; a malformed request line or chunk: 400; a Content-Length that is
 * not a number: 400/413) with a built-in HTML page, and it has no option
 * to change that page. Its internal calls to its own exported functions go
 * through the PLT, so hulld, which defines these two, is called instead
 * (the symbols are exported from the executable: see the Makefile):
 *
 * - MHD_queue_response: an answer of status >= 400 without a Content-Type
 *   is one of MHD's own (every answer hulld makes has one): it is replaced
 *   by hull's JSON error with the same status.
 * - MHD_lookup_connection_value_n: a Content-Length that is not a plain
 *   decimal number is hidden from MHD. MHD 0.9.75 writes its own 400/413
 *   for it twice (its state machine goes on after the error and builds the
 *   header again); hidden, the request reaches hulld's handler, which
 *   answers it once (http.c, framing()), reading the headers itself.
 *
 * The real functions are found with dlsym(RTLD_NEXT). If a future MHD
 * binds these calls inside the library, nothing breaks: MHD's own pages
 * come back, and tests/integration/test_hulld_faults.py says so. */
#include <dlfcn.h>
#include <limits.h>
#include <microhttpd.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "daemon.h"

typedef enum MHD_Result (*queue_fn)(struct MHD_Connection *, unsigned int, struct MHD_Response *);
typedef enum MHD_Result (*lookup_fn)(struct MHD_Connection *, enum MHD_ValueKind, const char *,
                                     size_t, const char **, size_t *);

static queue_fn real_queue;
static lookup_fn real_lookup;
static pthread_once_t once = PTHREAD_ONCE_INIT;

static void resolve(void)
{
    real_queue = (queue_fn)dlsym(RTLD_NEXT, "MHD_queue_response");
    real_lookup = (lookup_fn)dlsym(RTLD_NEXT, "MHD_lookup_connection_value_n");
}

static const char *code_of(unsigned status, const char **msg)
{
    switch (status) {
    case MHD_HTTP_BAD_REQUEST:
        *msg = "malformed HTTP request";
        return "invalid_request";
    case MHD_HTTP_CONTENT_TOO_LARGE:
        *msg = "the body is too large";
        return "payload_too_large";
    case MHD_HTTP_URI_TOO_LONG:
        *msg = "the request line is too long";
        return "uri_too_long";
    case MHD_HTTP_REQUEST_HEADER_FIELDS_TOO_LARGE:
        *msg = "the request headers are too large";
        return "headers_too_large";
    case MHD_HTTP_HTTP_VERSION_NOT_SUPPORTED:
        *msg = "only HTTP/1.0 and HTTP/1.1 are served";
        return "http_version_not_supported";
    case MHD_HTTP_NOT_IMPLEMENTED:
        *msg = "not implemented";
        return "not_implemented";
    default:
        *msg = "the HTTP server refused the request";
        return status >= 500 ? "internal" : "invalid_request";
    }
}

enum MHD_Result MHD_queue_response(struct MHD_Connection *connection, unsigned int status_code,
                                   struct MHD_Response *response)
{
    pthread_once(&once, resolve);
    if (real_queue == NULL)
        return MHD_NO;
    unsigned status = status_code & ~MHD_ICY_FLAG;
    if (status < 400 || response == NULL ||
        MHD_get_response_header(response, MHD_HTTP_HEADER_CONTENT_TYPE) != NULL)
        return real_queue(connection, status_code, response);
    /* One of MHD's own error pages. */
    const char *msg;
    const char *code = code_of(status, &msg);
    char body[256];
    int n = snprintf(body, sizeof(body), "{\"error\":{\"code\":\"%s\",\"message\":\"%s\"}}\n", code,
                     msg);
    struct MHD_Response *mine =
        MHD_create_response_from_buffer((size_t)n, body, MHD_RESPMEM_MUST_COPY);
    if (mine == NULL)
        return real_queue(connection, status_code, response);
    MHD_add_response_header(mine, MHD_HTTP_HEADER_CONTENT_TYPE, "application/json");
    MHD_add_response_header(mine, MHD_HTTP_HEADER_CONNECTION, "close");
    metrics_rejected(code);
    enum MHD_Result ret = real_queue(connection, status_code, mine);
    MHD_destroy_response(mine);
    return ret;
}

/* A plain decimal Content-Length that fits: 1 to 18 digits. */
static bool plain_length(const char *v, size_t n)
{
    if (n == 0 || n > 18)
        return false;
    for (size_t i = 0; i < n; i++)
        if (v[i] < '0' || v[i] > '9')
            return false;
    return true;
}

enum MHD_Result MHD_lookup_connection_value_n(struct MHD_Connection *connection,
                                              enum MHD_ValueKind kind, const char *key,
                                              size_t key_size, const char **value_ptr,
                                              size_t *value_size_ptr)
{
    pthread_once(&once, resolve);
    if (real_lookup == NULL)
        return MHD_NO;
    const char *v = NULL;
    size_t n = 0;
    enum MHD_Result r = real_lookup(connection, kind, key, key_size, &v, &n);
    if (r == MHD_YES && key && key_size == strlen(MHD_HTTP_HEADER_CONTENT_LENGTH) &&
        strncasecmp(key, MHD_HTTP_HEADER_CONTENT_LENGTH, key_size) == 0 &&
        (kind & MHD_HEADER_KIND) && !plain_length(v, n))
        return MHD_NO; /* http.c answers it */
    if (value_ptr)
        *value_ptr = v;
    if (value_size_ptr)
        *value_size_ptr = n;
    return r;
}

/* ---- what hulld refuses before MHD would ---- */

bool http_query_cut(const char *uri)
{
    const char *query = strchr(uri, '?');
    if (query == NULL || strlen(query + 1) <= HTTP_MAX_QUERY)
        return false;
    /* Called from MHD's URI log callback: MHD parses the arguments from
     * this very buffer (its own, and writable) once it returns. Cut off, a
     * huge query cannot exhaust the connection's pool (MHD then closes
     * without a word); the handler answers 414. */
    ((char *)query)[1] = '\0';
    return true;
}

struct framing {
    unsigned lengths;     /* Content-Length headers */
    const char *length;   /* the first one */
    const char *encoding; /* Transfer-Encoding, or NULL */
    unsigned encodings;
    unsigned auths; /* Authorization headers */
};

static enum MHD_Result framing_header(void *cls, enum MHD_ValueKind kind, const char *key,
                                      const char *value)
{
    (void)kind;
    struct framing *f = cls;
    if (strcasecmp(key, "Content-Length") == 0 && f->lengths++ == 0)
        f->length = value;
    if (strcasecmp(key, "Transfer-Encoding") == 0 && f->encodings++ == 0)
        f->encoding = value;
    if (strcasecmp(key, "Authorization") == 0)
        f->auths++;
    return MHD_YES;
}

/* How the body is framed, checked before anything else, from the headers
 * as sent (MHD would take the first of two Content-Lengths, and wait for
 * ever for a body in a transfer coding it does not know). A refusal here
 * is answered at once and the connection closed: where the body ends is
 * not known. */
int http_framing(struct MHD_Connection *conn, struct resp *r, bool *overflow)
{
    struct framing f = {0};
    MHD_get_connection_values(conn, MHD_HEADER_KIND, framing_header, &f);
    if (f.encodings && f.lengths) {
        resp_error(r, 400, "invalid_request", NULL,
                   "Content-Length and Transfer-Encoding together: the body's length is unclear");
        return -1;
    }
    if (f.encodings > 1 || (f.encoding && strcasecmp(f.encoding, "chunked") != 0)) {
        resp_error(r, 501, "not_implemented", NULL,
                   "Transfer-Encoding '%s': only chunked is supported",
                   f.encodings > 1 ? "(several)" : f.encoding);
        return -1;
    }
    if (f.lengths > 1) {
        resp_error(r, 400, "invalid_request", NULL, "Content-Length is given %u times", f.lengths);
        return -1;
    }
    /* Whose request it is must be as clear as its length: MHD would take
     * the first of two (a proxy's and a client's, say), another server on
     * the way the last. */
    if (f.auths > 1) {
        resp_error(r, 400, "invalid_request", NULL, "Authorization is given %u times", f.auths);
        return -1;
    }
    if (f.length) {
        size_t n = strlen(f.length);
        bool digits = n > 0 && strspn(f.length, "0123456789") == n;
        if (!digits) {
            resp_error(r, 400, "invalid_request", NULL, "Content-Length '%s' is not a number",
                       f.length);
            return -1;
        }
        unsigned long long len = n > 18 ? ULLONG_MAX : strtoull(f.length, NULL, 10);
        if (overflow == NULL)
            return 0; /* a streamed upload: no --max-body */
        if (len > (unsigned long long)hulld.o->max_body + HTTP_DISCARD_MAX) {
            resp_error(r, 413, "payload_too_large", NULL, "the body is over %zu bytes",
                       hulld.o->max_body);
            return -1;
        }
        /* Over the limit, but not by much: read and dropped, so a client
         * that sends its whole body before it reads (Python's http.client)
         * gets its 413 rather than a broken pipe. */
        *overflow = len > hulld.o->max_body;
    }
    return 0;
}
