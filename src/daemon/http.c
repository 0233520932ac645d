/* The HTTP side of hulld on libmicrohttpd: listening (unix socket, TCP with
 * TLS), request bodies, routing, authentication, roles, audit, and the
 * uniform error body.
 *
 * Everything that can be refused without the body is refused before it is
 * read: an unknown route (404), a wrong method (405), a missing or bad
 * token (401), a reader writing (403), a declared body over the limit
 * (413). A client that stalls on headers or body is cut off by MHD's idle
 * timeout. Connections are served by a thread each, so a synchronous run
 * simply blocks its own thread while the run's worker does the work. */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <microhttpd.h>
#include <netdb.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "cluster.h"
#include "move.h"
#include "daemon.h"
#include "http_audit.h"
#include "http_deadline.h"
#include "http_route.h"
#include "runner.h"
#include "sbx_files.h"
#include "util/error.h"
#include "util/fs.h"
#include "util/json.h"
#include "util/log.h"
#include "util/utf8.h"

/* The connection's memory pool (MHD's default is 32 KiB): room for the
 * arguments of a query of HTTP_MAX_QUERY bytes (MHD takes 64 bytes for
 * each) besides the headers. */
#define CONNECTION_MEMORY (256u << 10)

struct req {
    bool seen;         /* the handler's first call is done */
    bool uri_too_long; /* the query was over HTTP_MAX_QUERY (uri_logger) */
    bool uri_nul;      /* the URI encodes a NUL byte (%00) (uri_logger) */
    bool overflow;     /* a chunked body went over --max-body: 413 at its end */
    bool started;      /* routed and authorised, body accepted */
    bool responded;    /* an answer is queued already */
    bool rejected;     /* refused before the body: answer once it is read */
    struct resp reject;
    struct route rt;
    struct caller caller;
    bool authed;
    char *body;
    size_t len, cap;
    bool fs_put;              /* PUT .../fs/{path}: the body streams to a file */
    struct fs_upload *upload; /* its upload (sbx_files.c), NULL when refused */
};

static struct MHD_Daemon *unix_d, *tcp_d;
/* Requests between their first byte and their answer's last: shutdown
 * waits for them before MHD tears the connections down. */
static atomic_int in_flight;
static int unix_fd = -1;
static char *tls_key_pem, *tls_cert_pem;

/* ---- answers ---- */

/* A stream and the token that opened it: revoked meanwhile, the stream
 * ends before it gives anything more (a token is checked at each request,
 * and a stream is one request that may last for days). */
struct guarded {
    struct resp_stream *st;
    char token[sizeof(((struct hull_token_info *)0)->id)];
    struct hull_revoke_mark mark;
};

static ssize_t stream_read(void *cls, uint64_t pos, char *buf, size_t max)
{
    (void)pos;
    struct guarded *g = cls;
    long n = g->st->read(g->st, buf, max);
    if (n > 0 && g->token[0] && hull_token_revoked_since(hulld.store, g->token, &g->mark)) {
        hull_log(HULL_LOG_INFO, "token %s was revoked: its stream ends", g->token);
        return MHD_CONTENT_READER_END_WITH_ERROR;
    }
    return n > 0    ? (ssize_t)n
           : n == 0 ? MHD_CONTENT_READER_END_OF_STREAM
                    : MHD_CONTENT_READER_END_WITH_ERROR;
}

static void stream_free(void *cls)
{
    struct guarded *g = cls;
    g->st->free(g->st);
    free(g);
}

static enum MHD_Result send_resp(struct MHD_Connection *conn, struct resp *r, const char *token,
                                 bool close_conn)
{
    struct MHD_Response *m;
    if (r->mhd) {
        m = r->mhd;
        r->mhd = NULL;
    } else if (r->stream) {
        /* Chunked, read in the connection's own thread as the client takes
         * it. A stream may wait long for output: not an idle client (one
         * that goes is seen by the stream itself). */
        MHD_set_connection_option(conn, MHD_CONNECTION_OPTION_TIMEOUT, (unsigned int)0);
        struct guarded *g = calloc(1, sizeof(*g));
        m = NULL;
        if (g) {
            g->st = r->stream;
            snprintf(g->token, sizeof(g->token), "%s", token ? token : "");
            m = MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 32 << 10, stream_read, g,
                                                  stream_free);
        }
        close_conn = true; /* not kept idle afterwards without its timeout */
        if (m == NULL) {
            r->stream->free(r->stream);
            free(g);
        }
        r->stream = NULL;
    } else if (r->raw) {
        m = MHD_create_response_from_buffer(r->raw_len, r->raw, MHD_RESPMEM_MUST_FREE);
        r->raw = NULL;
    } else {
        const char *text =
            r->body ? json_object_to_json_string_ext(r->body, JSON_C_TO_STRING_PLAIN |
                                                                  JSON_C_TO_STRING_NOSLASHESCAPE)
                    : "{}";
        /* json-c copies a string's bytes as they are: whatever a client
         * sent that is not UTF-8 (a path, a query) and came back in a
         * message becomes U+FFFD, so the answer is valid JSON. */
        size_t n = 0;
        char *copy = hull_utf8_fix(text, strlen(text), &n);
        char *nl = copy ? realloc(copy, n + 1) : NULL;
        if (nl == NULL) {
            free(copy);
            return MHD_NO;
        }
        nl[n] = '\n';
        m = MHD_create_response_from_buffer(n + 1, nl, MHD_RESPMEM_MUST_FREE);
    }
    if (m == NULL)
        return MHD_NO;
    MHD_add_response_header(m, "Content-Type",
                            r->content_type ? r->content_type : "application/json");
    if (r->retry_after) {
        char b[16];
        snprintf(b, sizeof(b), "%d", r->retry_after);
        MHD_add_response_header(m, "Retry-After", b);
    }
    if (r->allow)
        MHD_add_response_header(m, "Allow", r->allow);
    if (r->timing[0])
        MHD_add_response_header(m, "Server-Timing", r->timing);
    if (close_conn)
        MHD_add_response_header(m, "Connection", "close");
    if (r->code)
        metrics_rejected(r->code);
    enum MHD_Result ret = MHD_queue_response(conn, (unsigned)r->status, m);
    MHD_destroy_response(m);
    return ret;
}

static bool method_allowed(const char *allow, const char *method)
{
    size_t n = strlen(method);
    for (const char *a = allow; *a;) {
        size_t k = strcspn(a, ",");
        if (k == n && strncmp(a, method, n) == 0)
            return true;
        a += k;
        while (*a == ',' || *a == ' ')
            a++;
    }
    return false;
}

/* struct request's query: a query parameter of the MHD connection. */
static const char *query_arg(void *conn, const char *key)
{
    return MHD_lookup_connection_value(conn, MHD_GET_ARGUMENT_KIND, key);
}

struct query_walk {
    bool (*fn)(void *cls, const char *key, const char *value);
    void *cls;
};

static enum MHD_Result query_walk_one(void *cls, enum MHD_ValueKind kind, const char *key,
                                      const char *value)
{
    (void)kind;
    struct query_walk *w = cls;
    return w->fn(w->cls, key, value ? value : "") ? MHD_YES : MHD_NO;
}

static void query_each(void *conn, bool (*fn)(void *cls, const char *key, const char *value),
                       void *cls)
{
    struct query_walk w = {fn, cls};
    MHD_get_connection_values(conn, MHD_GET_ARGUMENT_KIND, query_walk_one, &w);
}

static const char *header_arg(void *conn, const char *key)
{
    return MHD_lookup_connection_value(conn, MHD_HEADER_KIND, key);
}

/* ---- authentication ---- */

static int authenticate(struct MHD_Connection *conn, struct req *q, struct resp *r)
{
    const char *h = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Authorization");
    if (h == NULL || strncasecmp(h, "Bearer ", 7) != 0) {
        resp_error(r, 401, "unauthorized", NULL, "a bearer token is required");
        return -1;
    }
    hull_error e = NULL;
    memset(&q->caller.tok, 0, sizeof(q->caller.tok));
    int ok = hull_token_verify(hulld.store, h + 7, &q->caller.tok, &e);
    /* A token this node does not know (not one it revoked) may be another
     * node's (cluster.h). */
    if (ok < 0 && hull_error_code(e) == EACCES && q->caller.tok.revoked[0] == '\0' &&
        cluster_enabled()) {
        hull_error_free(&e);
        ok = cluster_token_verify(h + 7, &q->caller.tok, &e);
    }
    if (ok < 0) {
        if (hull_error_code(e) == EACCES)
            resp_error(r, 401, "unauthorized", NULL, "invalid or revoked token");
        else
            resp_store_error(r, &e);
        /* EACCES: which check the token failed is not told to the caller,
         * so the answer does not help guess tokens (a store fault is
         * logged and answered by resp_store_error, which freed it). */
        hull_error_free(&e);
        return -1;
    }
    q->authed = true;
    q->caller.admin = q->caller.tok.role == HULL_ROLE_ADMIN;
    q->caller.tenant = q->caller.admin ? NULL : q->caller.tok.tenant;
    return 0;
}

static void audit(struct req *q, const char *method, const char *url, const struct resp *r)
{
    http_audit(q->authed ? &q->caller : NULL, q->rt.id, method, url, r);
}

/* MHD's URI log callback: called with the request line's URI before MHD
 * parses the query into its memory pool. Its answer is the request's
 * state (con_cls). */
static void *uri_logger(void *cls, const char *uri, struct MHD_Connection *conn)
{
    (void)cls;
    (void)conn;
    struct req *q = calloc(1, sizeof(*q));
    if (q == NULL)
        return NULL;
    atomic_fetch_add(&in_flight, 1);
    /* Decoded, %00 would end the path or a parameter early wherever it is
     * used as a C string: what was checked and what is acted on would differ. */
    q->uri_nul = strstr(uri, "%00") != NULL;
    q->uri_too_long = http_query_cut(uri);
    return q;
}

/* Checks made before the body: 0 to go on, -1 with r filled. */
static int admit(struct MHD_Connection *conn, const char *url, const char *method, struct req *q,
                 struct resp *r)
{
    if (http_route(url, &q->rt) < 0) {
        resp_error(r, 404, "not_found", NULL, "no such endpoint: %s", url);
        return -1;
    }
    if (!method_allowed(q->rt.allow, method)) {
        resp_error(r, 405, "method_not_allowed", NULL, "%s is not allowed on %s", method, url);
        r->allow = q->rt.allow;
        return -1;
    }
    if (q->rt.public)
        return 0;
    if (authenticate(conn, q, r) < 0)
        return -1;
    if (http_state_changing(method) && q->caller.tok.role == HULL_ROLE_READER) {
        resp_error(r, 403, "forbidden", NULL, "token %s is a reader: it may only read",
                   q->caller.tok.id);
        return -1;
    }
    if (http_state_changing(method) && q->rt.admin_writes && !q->caller.admin) {
        resp_error(r, 403, "forbidden", NULL,
                   "%s %s needs an admin token: images are shared by every tenant", method, url);
        return -1;
    }
    if (http_state_changing(method) && hulld.draining) {
        resp_shutting_down(r, "hulld is shutting down");
        return -1;
    }
    return 0;
}

static void dispatch(struct MHD_Connection *conn, const char *url, const char *method,
                     struct req *q, struct resp *r)
{
    struct request rq = {.method = method,
                         .path = url,
                         .body = q->body ? q->body : "",
                         .len = q->len,
                         .caller = &q->caller,
                         .conn = conn,
                         .client_fd = -1,
                         .query = query_arg,
                         .query_each = query_each,
                         .header = header_arg};
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CONNECTION_FD);
    if (ci)
        rq.client_fd = ci->connect_fd;
    const struct route *rt = &q->rt;
    cleanup_free char *placed = NULL;
    bool sbx = rt->kind == R_SANDBOXES || rt->kind == R_SANDBOX || rt->kind == R_SBX_ACTION ||
               rt->kind == R_SBX_FILE || rt->kind == R_SBX_PROCS || rt->kind == R_SBX_FS;
    if (sbx && cluster_request(&rq, rt->kind == R_SANDBOXES ? NULL : rt->id, &placed, r))
        return;
    if (placed) {
        rq.body = placed;
        rq.len = strlen(placed);
    }
    switch (rt->kind) {
    case R_HEALTH: {
        /* Not healthy while the store refuses writes: runs' ends wait in
         * memory (pending.c), and new work cannot be recorded. */
        char why[512] = "";
        bool failing = pending_failing(why, sizeof(why));
        json_object *o = json_object_new_object();
        json_object_object_add(o, "status",
                               json_object_new_string(hulld.draining ? "draining"
                                                      : failing      ? "store_failing"
                                                                     : "ok"));
        if (failing)
            json_object_object_add(o, "reason", json_object_new_string(why));
        resp_json(r, hulld.draining || failing ? 503 : 200, o);
        break;
    }
    case R_METRICS:
        r->raw = metrics_render(&r->raw_len, q->caller.tenant);
        r->status = r->raw ? 200 : 500;
        r->content_type = "text/plain; version=0.0.4; charset=utf-8";
        break;
    case R_OPENAPI:
        r->raw = strdup(hulld_openapi);
        r->raw_len = r->raw ? strlen(r->raw) : 0;
        r->status = r->raw ? 200 : 500;
        break;
    case R_AUDIT: {
        const char *since = request_query(&rq, "since_id"), *lim = request_query(&rq, "limit");
        long limit = lim ? strtol(lim, NULL, 10) : 1000;
        if (limit < 1 || limit > 10000) {
            resp_error(r, 400, "invalid_request", "limit", "limit: must be 1 to 10000");
            break;
        }
        hull_error e = NULL;
        runner_wait_recorded(NULL); /* audit_after's entries */
        json_object *o = hull_audit_list(hulld.store, q->caller.tenant,
                                         since ? strtoll(since, NULL, 10) : 0, (int)limit, &e);
        if (o)
            resp_json(r, 200, o);
        else
            resp_store_error(r, &e);
        break;
    }
    case R_RUNS:
    case R_RUN:
        api_runs(&rq, rt->kind == R_RUN ? rt->id : NULL, r);
        break;
    case R_SANDBOXES:
    case R_SANDBOX:
    case R_SBX_ACTION:
    case R_SBX_FILE:
    case R_SBX_PROCS:
    case R_SBX_PORTS:
        api_sandboxes(&rq, rt->kind == R_SANDBOXES ? NULL : rt->id,
                      rt->kind == R_SBX_ACTION  ? rt->action
                      : rt->kind == R_SBX_FILE  ? "files"
                      : rt->kind == R_SBX_PROCS ? "processes"
                      : rt->kind == R_SBX_PORTS ? "ports"
                                                : NULL,
                      rt->file, r);
        break;
    case R_SBX_FS:
        sbx_fs(&rq, rt->id, rt->file, r);
        break;
    case R_IMAGES:
    case R_IMAGE:
        api_images(&rq, rt->kind == R_IMAGE ? rt->file : NULL, r);
        break;
    case R_NETWORKS:
        api_networks(&rq, r);
        break;
    case R_NODES:
        api_nodes(&rq, r);
        break;
    case R_NODE_DRAIN:
        api_node_drain(&rq, rt->id, r);
        break;
    case R_CLUSTER_RECEIVE:
        api_cluster_receive(&rq, r);
        break;
    case R_TEMPLATES:
    case R_TEMPLATE:
        api_templates(&rq, rt->kind == R_TEMPLATE ? rt->id : NULL, r);
        break;
    }
    if (r->status == 0)
        resp_error(r, 500, "internal", NULL, "no answer");
}

/* Send r (and free it). */
static enum MHD_Result answer_with(struct MHD_Connection *conn, struct req *q, struct resp *r,
                                   bool close_conn)
{
    q->responded = true;
    enum MHD_Result ret = send_resp(conn, r, q->authed ? q->caller.tok.id : NULL, close_conn);
    json_object_put(r->body);
    r->body = NULL;
    free(r->raw);
    r->raw = NULL;
    if (r->stream)
        r->stream->free(r->stream);
    r->stream = NULL;
    return ret;
}

/* PUT .../fs/{path}, admitted: the file to stream the body into, or the
 * refusal to answer once the body is dropped. */
static void fs_upload_begin(struct MHD_Connection *conn, const char *url, const char *method,
                            struct req *q)
{
    struct request rq = {
        .method = method, .path = url, .caller = &q->caller, .conn = conn, .query = query_arg};
    const char *cl = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Content-Length");
    struct resp r = {0};
    if (sbx_fs_upload_begin(&rq, q->rt.id, q->rt.file, cl ? strtoull(cl, NULL, 10) : 0, &q->upload,
                            &r) == 0)
        return;
    audit(q, method, url, &r);
    q->rejected = true;
    q->reject = r;
}

/* A streamed upload's body part, or its end. */
static enum MHD_Result fs_upload_step(struct MHD_Connection *conn, const char *url,
                                      const char *method, struct req *q, const char *upload,
                                      size_t *upload_size)
{
    size_t n = *upload_size;
    *upload_size = 0;
    if (n && q->upload)
        return sbx_fs_upload_part(q->upload, upload, n) ? MHD_YES : MHD_NO;
    if (n) { /* refused: dropped, up to a point */
        q->len += n;
        return q->len > HTTP_DISCARD_MAX ? MHD_NO : MHD_YES;
    }
    struct resp r = {0};
    if (q->rejected) {
        r = q->reject;
        memset(&q->reject, 0, sizeof(q->reject));
        return answer_with(conn, q, &r, false);
    }
    sbx_fs_upload_end(q->upload, &r);
    audit(q, method, url, &r);
    return answer_with(conn, q, &r, false);
}

/* The first call, headers only: refuse what can be refused now. */
static enum MHD_Result first_call(struct MHD_Connection *conn, const char *url, const char *method,
                                  struct req *q)
{
    q->seen = true;
    struct resp r = {0};
    if (q->uri_too_long) {
        resp_error(&r, 414, "uri_too_long", NULL, "the query string is over %d bytes",
                   HTTP_MAX_QUERY);
        audit(q, method, url, &r);
        return answer_with(conn, q, &r, true);
    }
    if (q->uri_nul) {
        resp_error(&r, 400, "invalid_request", NULL, "the URI holds a NUL byte (%%00)");
        audit(q, method, url, &r);
        return answer_with(conn, q, &r, true);
    }
    struct route pre;
    q->fs_put = http_route(url, &pre) == 0 && pre.kind == R_SBX_FS && strcmp(method, "PUT") == 0;
    if (http_framing(conn, &r, q->fs_put ? NULL : &q->overflow) < 0) {
        audit(q, method, url, &r);
        return answer_with(conn, q, &r, true);
    }
    if (admit(conn, url, method, q, &r) < 0) {
        audit(q, method, url, &r);
        /* A body within the limit is read and dropped, so the client
         * gets its answer on a connection it can keep using. */
        q->rejected = true;
        q->reject = r;
        return MHD_YES;
    }
    q->started = true;
    if (q->fs_put)
        fs_upload_begin(conn, url, method, q);
    return MHD_YES;
}

/* Part of a body: kept, or dropped (refused request, over the limit). */
static enum MHD_Result body_part(struct req *q, const char *upload, size_t *upload_size)
{
    size_t n = *upload_size;
    *upload_size = 0;
    if (q->overflow || q->rejected || q->len + n > hulld.o->max_body) {
        if (!q->rejected && !q->overflow) {
            q->overflow = true;
            free(q->body);
            q->body = NULL;
            q->cap = 0;
        }
        q->overflow = q->overflow || q->len + n > hulld.o->max_body;
        q->len += n;
        /* Still sending far past the limit: given up on. (overflow may come
         * from the declared Content-Length while len is still below it.) */
        return q->overflow && q->len > hulld.o->max_body + (size_t)HTTP_DISCARD_MAX ? MHD_NO
                                                                                    : MHD_YES;
    }
    if (q->len + n + 1 > q->cap) {
        size_t cap = q->cap ? q->cap : 4096;
        while (cap < q->len + n + 1)
            cap *= 2;
        char *nb = realloc(q->body, cap);
        if (nb == NULL)
            return MHD_NO;
        q->body = nb;
        q->cap = cap;
    }
    memcpy(q->body + q->len, upload, n);
    q->len += n;
    q->body[q->len] = '\0';
    return MHD_YES;
}

static enum MHD_Result handler(void *cls, struct MHD_Connection *conn, const char *url,
                               const char *method, const char *version, const char *upload,
                               size_t *upload_size, void **con_cls)
{
    (void)cls;
    (void)version;
    struct req *q = *con_cls;
    if (q == NULL) {
        q = uri_logger(NULL, "", conn);
        if (q == NULL)
            return MHD_NO;
        *con_cls = q;
    }
    if (!q->seen) {
        enum MHD_Result ret = first_call(conn, url, method, q);
        /* Only an admitted request's body goes by the idle timer alone: a
         * refused one (no token, say) is drained within the head's
         * deadline, or it could be trickled for long by anyone. */
        if (q->started && !q->rejected)
            http_deadline_head_done(conn);
        return ret;
    }
    if (q->responded) {
        *upload_size = 0; /* discard */
        return MHD_YES;
    }
    if (q->fs_put && (q->upload || q->rejected))
        return fs_upload_step(conn, url, method, q, upload, upload_size);
    if (*upload_size)
        return body_part(q, upload, upload_size);
    /* The whole body is in. */
    struct resp r = {0};
    if (q->rejected) {
        /* Refused from its headers (and audited so): that answer. */
        r = q->reject;
        memset(&q->reject, 0, sizeof(q->reject));
        return answer_with(conn, q, &r, q->overflow);
    }
    if (q->overflow) {
        resp_error(&r, 413, "payload_too_large", NULL, "the body is over %zu bytes",
                   hulld.o->max_body);
        audit(q, method, url, &r);
        return answer_with(conn, q, &r, true);
    }
    size_t bad = 0;
    /* JSON bodies are UTF-8 (RFC 8259); a file's bytes (PUT) are any. */
    if (q->len && !q->rt.raw_body && !hull_utf8_valid(q->body, q->len, &bad))
        resp_error(&r, 400, "invalid_json", NULL, "request: not valid UTF-8 at byte %zu", bad);
    else
        dispatch(conn, url, method, q, &r);
    if (r.after)
        http_audit_after(q->authed ? &q->caller : NULL, q->rt.id, method, url, &r);
    else
        audit(q, method, url, &r);
    return answer_with(conn, q, &r, false);
}

static void completed(void *cls, struct MHD_Connection *conn, void **con_cls,
                      enum MHD_RequestTerminationCode toe)
{
    (void)cls;
    (void)toe;
    http_deadline_next(conn); /* kept alive: the next head's time starts */
    struct req *q = *con_cls;
    if (q) {
        atomic_fetch_sub(&in_flight, 1);
        json_object_put(q->reject.body);
        sbx_fs_upload_free(q->upload); /* cut mid-body: the unnamed file goes */
        free(q->body);
        free(q);
    }
    *con_cls = NULL;
}

/* ---- listening ---- */

static int unix_listen(const char *path, hull_error *err)
{
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    if (strlen(path) >= sizeof(sa.sun_path))
        return hull_error_set(err, ENAMETOOLONG, "--socket %s: path too long", path);
    strcpy(sa.sun_path, path);
    char dir[sizeof(sa.sun_path)];
    snprintf(dir, sizeof(dir), "%s", path);
    char *slash = strrchr(dir, '/');
    if (slash && slash != dir) {
        *slash = '\0';
        if (hull_mkdir_p(dir, 0755, err) < 0)
            return hull_error_prefix(err, "--socket %s", path);
    } else {
        snprintf(dir, sizeof(dir), "%s", slash ? "/" : ".");
    }
    /* Whoever may rename or remove what is in the socket's directory can
     * put a socket of theirs in hulld's place, before it starts or after,
     * and take the tokens its clients send: the directory and those above
     * it are held to the state directory's rule for ancestors. */
    char real[PATH_MAX];
    if (hull_trusted_dir("directory", dir, true, real, sizeof(real), err) < 0)
        return hull_error_prefix(err, "--socket %s", path);
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return hull_error_errno(err, "socket");
    struct stat st;
    if (lstat(path, &st) == 0) {
        /* A socket nobody answers on is a previous hulld's: replace it. */
        if (!S_ISSOCK(st.st_mode)) {
            close(fd);
            return hull_error_set(err, EEXIST, "--socket %s: exists and is not a socket", path);
        }
        if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0) {
            close(fd);
            return hull_error_set(err, EADDRINUSE, "--socket %s: another hulld is listening", path);
        }
        unlink(path);
    }
    /* 0660 from the start: no moment where anyone else can connect. */
    mode_t old = umask(0117);
    int r = bind(fd, (struct sockaddr *)&sa, sizeof(sa));
    umask(old);
    if (r < 0 || chmod(path, 0660) < 0 || listen(fd, 256) < 0) {
        hull_error_errno(err, "--socket %s", path);
        close(fd);
        return -1;
    }
    return fd;
}

/* The TLS key: whoever else can read it can be hulld on --listen to its
 * clients and take their tokens, whoever can write it choose it. So, as
 * ssh does for its keys: the caller's or root's, and nobody's but theirs
 * (a group may read it, the usual ssl-cert way). */
static int read_tls_key(const char *path, size_t *n, hull_error *err)
{
    cleanup_close int fd = open(path, O_RDONLY | O_CLOEXEC);
    struct stat st;
    if (fd < 0 || fstat(fd, &st) < 0)
        return hull_error_errno(err, "%s", path);
    if (!S_ISREG(st.st_mode))
        return hull_error_set(err, EINVAL, "%s: not a file", path);
    if (st.st_uid != geteuid() && st.st_uid != 0)
        return hull_error_set(err, EPERM, "%s: owned by uid %u, neither hulld (uid %u) nor root",
                              path, (unsigned)st.st_uid, (unsigned)geteuid());
    if (st.st_mode & (S_IWGRP | S_IRWXO))
        return hull_error_set(err, EPERM,
                              "%s: other users may read or write it (mode %04o): chmod 600 %s",
                              path, (unsigned)(st.st_mode & 07777), path);
    return hull_read_fd(fd, &tls_key_pem, n, err);
}

static int tcp_addr(const char *hostport, struct sockaddr_storage *ss, hull_error *err)
{
    char host[256];
    const char *colon = strrchr(hostport, ':');
    if (colon == NULL || colon == hostport || colon[1] == '\0')
        return hull_error_set(err, EINVAL, "--listen %s: must be HOST:PORT", hostport);
    size_t n = (size_t)(colon - hostport);
    if (hostport[0] == '[' && colon[-1] == ']') {
        hostport++;
        n -= 2;
    }
    if (n >= sizeof(host))
        return hull_error_set(err, EINVAL, "--listen %s: host too long", hostport);
    memcpy(host, hostport, n);
    host[n] = '\0';
    struct addrinfo hints = {.ai_family = AF_UNSPEC,
                             .ai_socktype = SOCK_STREAM,
                             .ai_flags = AI_NUMERICSERV},
                    *ai = NULL;
    int rc = getaddrinfo(host, colon + 1, &hints, &ai);
    if (rc != 0)
        return hull_error_set(err, EINVAL, "--listen %s: %s", hostport, gai_strerror(rc));
    memcpy(ss, ai->ai_addr, ai->ai_addrlen);
    freeaddrinfo(ai);
    return 0;
}

static unsigned common_flags(void)
{
    return MHD_USE_THREAD_PER_CONNECTION | MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_POLL |
           MHD_USE_ITC | (hulld.o->debug ? MHD_USE_ERROR_LOG : 0);
}

/* Connections one client address may hold on --listen: without a bound, a
 * few idle keep-alive connections (/healthz needs no token) or trickled
 * bodies from one address take them all, every tenant's included. */
static unsigned per_client_limit(const struct hulld_options *o)
{
    if (o->max_client_connections)
        return o->max_client_connections;
    return o->max_connections / 4 ? o->max_connections / 4 : 1;
}
/* --socket's directory, or the nearest of its parents that exists when
 * it does not yet (unix_listen makes the rest, root's and 0755), held to
 * the rule unix_listen checks again: a refused one leaves no state. */
static int socket_dir_check(const char *path, hull_error *err)
{
    char dir[PATH_MAX];
    snprintf(dir, sizeof(dir), "%s", path);
    char *slash = strrchr(dir, '/');
    if (slash == NULL)
        snprintf(dir, sizeof(dir), ".");
    else
        slash[slash == dir ? 1 : 0] = '\0';
    struct stat st;
    while (stat(dir, &st) < 0 && errno == ENOENT) {
        if ((slash = strrchr(dir, '/')) == NULL) {
            snprintf(dir, sizeof(dir), "."); /* a relative path's first part */
            break;
        }
        slash[slash == dir ? 1 : 0] = '\0';
    }
    char real[PATH_MAX];
    if (hull_trusted_dir("directory", dir, true, real, sizeof(real), err) < 0)
        return hull_error_prefix(err, "--socket %s", path);
    return 0;
}

int http_load_tls(hull_error *err)
{
    const struct hulld_options *o = hulld.o;
    if (socket_dir_check(o->socket_path, err) < 0)
        return -1;
    size_t n;
    if (o->listen && read_tls_key(o->tls_key, &n, err) < 0)
        return hull_error_prefix(err, "--tls-key");
    /* At most 1 MiB (a chain is a few KiB): --tls-cert /dev/zero is
     * refused, not read until memory runs out. */
    if (o->listen && hull_read_file_max(o->tls_cert, (size_t)1 << 20, &tls_cert_pem, &n, err) < 0)
        return hull_error_prefix(err, "--tls-cert");
    return 0;
}

int http_start(hull_error *err)
{
    const struct hulld_options *o = hulld.o;
    /* The key and certificate were read by http_load_tls, before anything
     * was made: a refused one leaves no socket and no state. */
    unix_fd = unix_listen(o->socket_path, err);
    if (unix_fd < 0)
        return -1;
    if (http_deadline_start(o->client_timeout) < 0)
        return hull_error_set(err, EAGAIN, "the request-head watcher did not start");
    unix_d = MHD_start_daemon(
        common_flags(), 0, NULL, NULL, handler, NULL, MHD_OPTION_LISTEN_SOCKET, unix_fd,
        MHD_OPTION_CONNECTION_TIMEOUT, o->client_timeout, MHD_OPTION_CONNECTION_LIMIT,
        o->max_connections, MHD_OPTION_NOTIFY_COMPLETED, completed, NULL,
        MHD_OPTION_NOTIFY_CONNECTION, http_deadline_notify, NULL, MHD_OPTION_URI_LOG_CALLBACK,
        uri_logger, NULL, MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)CONNECTION_MEMORY,
        MHD_OPTION_END);
    if (unix_d == NULL)
        return hull_error_set(err, EIO, "--socket %s: the HTTP server did not start",
                              o->socket_path);
    if (o->listen == NULL)
        return 0;
    struct sockaddr_storage ss;
    if (tcp_addr(o->listen, &ss, err) < 0)
        return -1;
    tcp_d = MHD_start_daemon(
        common_flags() | MHD_USE_TLS | (ss.ss_family == AF_INET6 ? MHD_USE_IPv6 : 0), 0, NULL, NULL,
        handler, NULL, MHD_OPTION_SOCK_ADDR, &ss, MHD_OPTION_HTTPS_MEM_KEY, tls_key_pem,
        MHD_OPTION_HTTPS_MEM_CERT, tls_cert_pem, MHD_OPTION_CONNECTION_TIMEOUT, o->client_timeout,
        MHD_OPTION_CONNECTION_LIMIT, o->max_connections, MHD_OPTION_PER_IP_CONNECTION_LIMIT,
        per_client_limit(o), MHD_OPTION_NOTIFY_COMPLETED, completed, NULL,
        MHD_OPTION_NOTIFY_CONNECTION, http_deadline_notify, NULL, MHD_OPTION_URI_LOG_CALLBACK,
        uri_logger, NULL, MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)CONNECTION_MEMORY,
        MHD_OPTION_END);
    if (tcp_d == NULL)
        return hull_error_set(err, EIO,
                              "--listen %s: the HTTPS server did not start (address in use, or "
                              "a bad key/certificate)",
                              o->listen);
    return 0;
}

void http_stop(void)
{
    /* Let answers in progress (a synchronous run just finished) go out. */
    for (int i = 0; i < 3000 && atomic_load(&in_flight) > 0; i++)
        usleep(10000);
    if (tcp_d)
        MHD_stop_daemon(tcp_d);
    /* Quiesced first, the listening socket stays ours to close. */
    if (unix_d && MHD_quiesce_daemon(unix_d) == MHD_INVALID_SOCKET)
        unix_fd = -1; /* MHD closes it */
    if (unix_d)
        MHD_stop_daemon(unix_d);
    tcp_d = unix_d = NULL;
    http_deadline_stop();
    if (unix_fd >= 0)
        close(unix_fd);
    unlink(hulld.o->socket_path);
    unix_fd = -1;
    free(tls_key_pem);
    free(tls_cert_pem);
}
