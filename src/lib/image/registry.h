/* Registries: the OCI distribution API over libcurl (pull, push, login).
 *
 * Only hull-image, hulld, libhull.so and the tests reach these (libcurl is
 * never linked into the static `hull`, see image.h).
 *
 *   registry.c  one HTTP layer: transport (https, verification, the http
 *               fallback of tls_insecure), timeouts, status -> clear errors
 *   auth.c      WWW-Authenticate: Basic, Bearer tokens (cached per scope),
 *               credentials from --creds and the auth files, login/logout
 *   mirrors.c   registries.conf subset: [[registry]] location and mirrors
 *   pull.c      manifest (index -> platform), config, layers in parallel
 *   push.c      blobs (exists / cross-repository mount / upload), manifest
 *   progress.c  the renderer the CLI hands to pull/push
 */
#ifndef HULL_IMAGE_REGISTRY_H
#define HULL_IMAGE_REGISTRY_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "image/image.h"

typedef void (*image_progress_fn)(void *arg, const char *what /* short digest or "manifest" */,
                                  const char *state /* "fetching","exists","done","unpacking",
                                                       "pushing","mounted" */
                                  ,
                                  int64_t done, int64_t total);

/* Bytes/s a transfer must average over timeout_s. A registry that sends a
 * byte now and then (a hostile or broken one) would otherwise hold a pull
 * for days; any real link, even a poor mobile one, is far above 1 KiB/s. */
#define REG_LOW_SPEED 1024

struct image_registry_opts {
    const char *platform; /* NULL: the host's */
    /* false (the zero value): verify against system CAs (+cert_dir); true:
     * --tls-verify=false (no verification, and plain http allowed). Named so
     * that an options struct left zeroed is the safe one. */
    bool tls_insecure;
    const char *cert_dir;        /* --cert-dir: extra CA files *.crt */
    const char *auth_file;       /* --authfile; NULL: $REGISTRY_AUTH_FILE, then
                                    $XDG_RUNTIME_DIR/containers/auth.json, then ~/.docker/config.json */
    const char *creds;           /* --creds USER:PASS, or NULL */
    const char *registries_conf; /* NULL: $HULL_REGISTRIES_CONF, else /etc/hull/registries.conf
                                    when it exists */
    int parallel;                /* layers at once; 0 = 4 */
    /* Seconds a transfer may stay under REG_LOW_SPEED bytes/s (or take to
     * connect) before it fails; 0 = $HULL_REGISTRY_TIMEOUT or 30. */
    int timeout_s;
    /* image_pull only: seconds the whole pull may take, 0 = no limit. Past
     * it no request starts and the one under way is cut: "timed out after
     * N s", with the .part files kept for the next pull to resume. */
    long pull_timeout_s;
    image_progress_fn progress;
    void *progress_arg;
};

int image_pull(struct image_store *s, const char *ref, const struct image_registry_opts *o,
               char **manifest_digest, hull_error *err);
int image_push(struct image_store *s, const char *local, const char *dest /* NULL: same name */,
               const struct image_registry_opts *o, char **manifest_digest, hull_error *err);
int image_login(const char *registry, const char *user, const char *password,
                const struct image_registry_opts *o, hull_error *err);
int image_logout(const char *registry, const struct image_registry_opts *o, hull_error *err);

/* A progress renderer the CLI hands to image_pull/push: bars per layer on a
 * tty, one summary line otherwise, nothing when quiet. */
struct image_progress_view;
struct image_progress_view *image_progress_view_new(FILE *out, bool quiet);
void image_progress_view_cb(void *view, const char *what, const char *state, int64_t done,
                            int64_t total);
/* Print "SUMMARY: N layers, X MB in Y s (K already present)" unless quiet
 * (summary NULL: nothing), then free. */
void image_progress_view_finish(struct image_progress_view *v, const char *summary);

/* ---- internal to registry*.c, pull.c, push.c, auth.c, mirrors.c ---- */

/* One registry host as seen by a pull or push. */
struct reg_client {
    char *host;         /* "127.0.0.1:5000", "docker.io" as in the reference */
    char *endpoint;     /* what is contacted: "registry-1.docker.io" for docker.io */
    bool insecure;      /* no TLS verification, plain http allowed */
    const char *scheme; /* "https" or "http", settled by the first request */
    bool scheme_known;
    const char *cert_dir;
    char *ca_blob; /* system CAs + the cert_dir crt files, PEM, loaded on first use */
    size_t ca_len;
    char *basic; /* "user:pass" for this host, or NULL (anonymous) */
    long timeout_s;
    /* The pull's deadline (hull_monotonic_ns; 0: none), its length for the
     * message, and whether a request ran into it. */
    uint64_t deadline_ns;
    long deadline_s;
    bool deadline_hit;
    /* Authorization: how the registry asked, and tokens per scope. */
    int auth_kind; /* 0 unknown/none, 1 Basic, 2 Bearer */
    char *realm, *service;
    struct reg_token {
        char *scope;
        char *token;
    } * tokens;
    size_t n_tokens;
};

struct reg_resp {
    long status;
    char *body; /* NUL-terminated; only kept for non-streamed requests and errors */
    size_t len;
    char *content_type;
    char *location;
    char *docker_digest;
    char *www_auth;
    int64_t content_length;
};
void reg_resp_free(struct reg_resp *r);
#define cleanup_reg_resp __attribute__((cleanup(reg_resp_free)))

/* A request. path is "/v2/..." on the client's endpoint, or a full URL (an
 * upload Location). scope: the Bearer scopes it needs ("repository:R:pull",
 * space separated). */
struct reg_req {
    const char *method;
    const char *path;
    const char *scope;
    const char *accept;       /* Accept header or NULL */
    const char *content_type; /* of the body */
    const char *body;         /* a request body in memory */
    size_t body_len;
    bool body_from_fd; /* or streamed from body_fd, body_size bytes */
    int body_fd;
    int64_t body_size;
    size_t max; /* cap of a buffered response body (0: 64 KiB) */
    /* Streamed response body (2xx only): every byte goes to sink. */
    int (*sink)(void *arg, const void *buf, size_t len, hull_error *err);
    void *sink_arg;
    int64_t range_from; /* > 0: ask for bytes from here (Range) */
    /* The whole Authorization header value to send instead of the client's
     * ("" for none): token requests to the realm. */
    const char *authorization;
};

int reg_client_init(struct reg_client *c, const char *host, bool insecure,
                    const struct image_registry_opts *o, hull_error *err);
void reg_client_free(struct reg_client *c);
#define cleanup_reg_client __attribute__((cleanup(reg_client_free)))

/* Perform req (answering an authentication challenge once); any status is
 * returned in resp, err only for transport failures. */
int reg_do(struct reg_client *c, const struct reg_req *req, struct reg_resp *resp, hull_error *err);
/* The error for a response that is not what was wanted: what is "manifest",
 * "blob" or NULL. Returns -1. */
int reg_status_error(const struct reg_resp *resp, const char *what, hull_error *err);
/* The URL for path (or path itself when it is a full URL), malloc'd. */
char *reg_url(struct reg_client *c, const char *path);
/* Set up an easy handle for req like reg_do does (used by the parallel
 * fetches of pull.c); headers to free with curl_slist_free_all. */
struct reg_xfer {
    const struct reg_req *req;
    struct reg_resp *resp;
    size_t max;
    bool overflow;
    hull_error sink_err;
    int64_t read_off;
    size_t cap;
};
struct curl_slist;
void *reg_easy(struct reg_client *c, const struct reg_req *req, struct reg_resp *resp,
               struct curl_slist **headers, struct reg_xfer *x, hull_error *err);
/* The error of a failed transfer (a CURLcode): the sink's own error, a
 * certificate not trusted (with what to do), a stall, curl's words. */
int reg_xfer_error(struct reg_client *c, int code, const char *errbuf, struct reg_xfer *x,
                   hull_error *err);
/* CA blob for c when it verifies with a --cert-dir (done by reg_do; the
 * parallel fetches call it first). */
int reg_client_prepare(struct reg_client *c, hull_error *err);
long reg_timeout(const struct image_registry_opts *o);
/* "sha256:<hex>" of buf into out. */
void reg_sha256(const void *buf, size_t len, char out[72]);

/* auth.c */
/* The Authorization header value for a request to c needing scope, or NULL
 * (anonymous). Fetches a token when the registry wants Bearer. */
int reg_auth_header(struct reg_client *c, const char *scope, char **out, hull_error *err);
/* Learn from a 401's WWW-Authenticate. Returns 1 when a retry can help. */
int reg_auth_challenge(struct reg_client *c, const char *www_auth, const char *scope,
                       hull_error *err);
/* "user:pass" for host from o->creds or the auth files; NULL when none. */
int reg_auth_lookup(const char *host, const struct image_registry_opts *o, char **out,
                    hull_error *err);

/* mirrors.c */
struct reg_endpoint {
    char *host;       /* registry host to contact */
    char *repository; /* repository there */
    bool insecure;
    bool mirror;
};
/* Where to pull registry/repository from: mirrors first (when pull), then
 * the location (the registry itself when no [[registry]] matches). */
int reg_endpoints(const char *registry, const char *repository, const struct image_registry_opts *o,
                  bool pull, struct reg_endpoint **out, size_t *n, hull_error *err);
void reg_endpoints_free(struct reg_endpoint *e, size_t n);

/* registry_undo.c: what a pull added, removed again when it fails (unless
 * a name reaches it or another writer holds a pin). */
struct reg_added {
    char **v;
    size_t n;
};
int reg_added_push(struct reg_added *a, bool layer, const char *digest);
void reg_added_free(struct reg_added *a);
void reg_undo(struct image_store *s, struct reg_added *a);

/* Where a blob came from ("registry/repository" lines in hull/sources/<hex>),
 * for cross-repository mounts on push. */
int reg_source_add(struct image_store *s, const char *digest, const char *registry,
                   const char *repository, hull_error *err);
char **reg_sources(struct image_store *s, const char *digest);

#endif
