/* hulld --cluster: a microVM sandbox moves to another node (move.h,
 * docs/cluster.md "Moving sandboxes").
 *
 * The source node S (which runs it) asks the target T over HTTPS (POST
 * /v1/cluster/receive, signed with the cluster's shared secret) to take
 * it: T starts a keeper that listens for the VM library's migration stream
 * and says where. S's keeper migrates the VM there (hull_vm_migrate,
 * authenticated with the same secret); T's keeper runs it and T takes the
 * sandbox: its table, its store, its record in Redis (same id, same
 * tenant, same reservation). S waits until Redis names T, then lets go of
 * its own. Until T runs the guest every failure leaves it running on S
 * (the library's guarantee); T's half-received VM is removed by its
 * receiver's guard. */
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <signal.h>
#include <stdarg.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "cluster.h"
#include "daemon.h"
#include "move.h"
#include "ports.h"
#include "service/cluster.h"
#include "util/clock.h"
#include "util/error.h"
#include "util/fs.h"
#include "util/json.h"
#include "util/log.h"

#define SECRET_MIN    16
#define SECRET_MAX    256
#define SKEW_MS       60000 /* a signed request older or newer than this is refused */
#define SEEN_MAX      256   /* signatures remembered against replay */
#define TAKEN_WAIT_MS 30000 /* how long S waits for T's record after the switch */
#define AUTH_SCHEME   "HullCluster "

static struct {
    unsigned char key[SECRET_MAX];
    size_t len;
    char path[PATH_MAX];
} sec;

static pthread_mutex_t seen_mu = PTHREAD_MUTEX_INITIALIZER;
static struct {
    char mac[65];
    int64_t ts;
} seen[SEEN_MAX];

int cluster_secret_load(hull_error *err)
{
    const char *p = hulld.o->cluster_secret;
    if (p == NULL)
        return 0;
    struct stat st;
    cleanup_free char *text = NULL;
    size_t len = 0;
    if (realpath(p, sec.path) == NULL || stat(sec.path, &st) < 0)
        return hull_error_errno(err, "--cluster-secret %s", p);
    if (!S_ISREG(st.st_mode) || (st.st_mode & 077))
        return hull_error_set(err, EACCES,
                              "--cluster-secret %s: must be a file only its owner may read "
                              "(chmod 600)",
                              p);
    /* Whoever owns it may read it, and may change it: hulld's or root's
     * only, as --tls-key and hulld.db (one check for all). */
    if (hull_store_file_check(sec.path, err) < 0)
        return hull_error_prefix(err, "--cluster-secret %s", p);
    if (hull_read_file(sec.path, &text, &len, err) < 0)
        return hull_error_prefix(err, "--cluster-secret");
    while (len && (text[len - 1] == '\n' || text[len - 1] == '\r' || text[len - 1] == ' ' ||
                   text[len - 1] == '\t'))
        len--;
    if (len < SECRET_MIN || len > SECRET_MAX)
        return hull_error_set(err, EINVAL, "--cluster-secret %s: must hold %d to %d bytes", p,
                              SECRET_MIN, SECRET_MAX);
    memcpy(sec.key, text, len);
    sec.len = len;
    OPENSSL_cleanse(text, len);
    return 0;
}

/* HMAC-SHA256 of a request from node `from` to node `to` under the secret,
 * as hex ("" when out of memory: it then matches nothing). The target is
 * signed too: a request made for one node is no good at another. */
static void sign(const char *from, const char *to, const char *method, const char *path, int64_t ts,
                 const char *body, size_t len, char out[65])
{
    char head[512];
    int n = snprintf(head, sizeof(head), "hull-cluster v2\n%s\n%s\n%s\n%s\n%" PRId64 "\n", from, to,
                     method, path, ts);
    out[0] = '\0';
    if (n < 0 || (size_t)n >= sizeof(head))
        return;
    cleanup_free unsigned char *msg = malloc((size_t)n + len + 1);
    if (msg == NULL)
        return;
    memcpy(msg, head, (size_t)n);
    if (len)
        memcpy(msg + n, body, len);
    unsigned char mac[EVP_MAX_MD_SIZE];
    unsigned int mlen = 0;
    if (HMAC(EVP_sha256(), sec.key, (int)sec.len, msg, (size_t)n + len, mac, &mlen) == NULL)
        return;
    for (unsigned int i = 0; i < mlen && i < 32; i++)
        snprintf(out + 2 * i, 3, "%02x", mac[i]);
}

/* ---- signed requests between nodes ---- */

/* The request rq signed by a node of the fleet (Authorization:
 * HullCluster NODE TIME_MS HMAC), not seen before: 0, or -1 with a 401. */
static int verify(const struct request *rq, char *from, size_t flen, struct resp *r)
{
    const char *h = rq->header ? rq->header(rq->conn, "Authorization") : NULL;
    char node[HULL_NODE_NAME_MAX + 1] = "", mac[65] = "", want[65];
    long long ts = 0;
    if (h == NULL || strncmp(h, AUTH_SCHEME, strlen(AUTH_SCHEME)) != 0 ||
        sscanf(h + strlen(AUTH_SCHEME), "%63s %lld %64s", node, &ts, mac) != 3) {
        resp_error(r, 401, "unauthorized", NULL,
                   "a request signed with the cluster's secret is required");
        return -1;
    }
    int64_t now = hull_realtime_ms();
    sign(node, cluster_self(), rq->method, rq->path, ts, rq->body, rq->len, want);
    bool ok = strlen(want) == 64 && strlen(mac) == 64 && CRYPTO_memcmp(want, mac, 64) == 0;
    bool fresh = ts > now - SKEW_MS && ts < now + SKEW_MS;
    pthread_mutex_lock(&seen_mu);
    size_t slot = 0;
    for (size_t i = 0; ok && fresh && i < SEEN_MAX; i++) {
        if (seen[i].ts > now - 2 * SKEW_MS && strcmp(seen[i].mac, mac) == 0)
            fresh = false; /* replayed */
        if (seen[i].ts < seen[slot].ts)
            slot = i;
    }
    if (ok && fresh) {
        snprintf(seen[slot].mac, sizeof(seen[slot].mac), "%s", mac);
        seen[slot].ts = now;
    }
    pthread_mutex_unlock(&seen_mu);
    if (!ok || !fresh) {
        /* Which check failed is logged, not told. */
        hull_warn("cluster: a request for %s signed as %s refused: %s", rq->path, node,
                  !ok ? "bad signature" : "stale or replayed");
        resp_error(r, 401, "unauthorized", NULL, "invalid cluster signature");
        return -1;
    }
    snprintf(from, flen, "%s", node);
    return 0;
}

struct signed_req {
    char auth[256];
};

static const char *signed_header(void *conn, const char *key)
{
    struct signed_req *s = conn;
    if (strcasecmp(key, "Authorization") == 0)
        return s->auth;
    if (strcasecmp(key, "Content-Type") == 0 || strcasecmp(key, "Accept") == 0)
        return "application/json";
    return NULL;
}

/* POST body to path on the node at address, signed; its answer in r. */
/* The migration channel for a move (sbx_vm_move.c): TLS with this node's
 * own certificate and key, the peer checked against --cluster-ca, when
 * hulld has all three; else the plain channel authenticated with the
 * cluster secret (not encrypted: docs/cluster.md). */
static void move_channel(json_object *hdr, const char *secret_path)
{
    const struct hulld_options *o = hulld.o;
    if (o->tls_cert && o->tls_key && o->cluster_ca) {
        json_object_object_add(hdr, "tls_cert", json_object_new_string(o->tls_cert));
        json_object_object_add(hdr, "tls_key", json_object_new_string(o->tls_key));
        json_object_object_add(hdr, "tls_ca", json_object_new_string(o->cluster_ca));
    } else {
        json_object_object_add(hdr, "token_file", json_object_new_string(secret_path));
    }
}

static void call_node(const char *node, const char *address, const char *path, const char *body,
                      struct resp *r)
{
    struct signed_req s;
    int64_t ts = hull_realtime_ms();
    char mac[65];
    sign(cluster_self(), node, "POST", path, ts, body, strlen(body), mac);
    snprintf(s.auth, sizeof(s.auth), AUTH_SCHEME "%s %" PRId64 " %s", cluster_self(), ts, mac);
    struct request rq = {.method = "POST",
                         .path = path,
                         .body = body,
                         .len = strlen(body),
                         .conn = &s,
                         .client_fd = -1,
                         .header = signed_header};
    cluster_forward(&rq, address, body, strlen(body), r);
}

/* An answer's body as JSON (NULL when it is not). */
static json_object *answer_json(struct resp *r)
{
    if (r->body)
        return json_object_get(r->body);
    return r->raw ? json_tokener_parse(r->raw) : NULL;
}

static const char *error_message(json_object *o)
{
    json_object *m = hj_get(hj_get(o, "error"), "message");
    return m ? json_object_get_string(m) : "no answer";
}

/* ---- the target: POST /v1/cluster/receive ---- */

/* A sandbox on its way here: its keeper waits for the VM. */
struct incoming {
    pid_t pid;
    int sock;
    char id[40], tenant[72], from[HULL_NODE_NAME_MAX + 1], key[512];
    char *spec, *metadata;
    unsigned lifetime_s, cpu;
    uint64_t memory;
    bool counted; /* against its tenant's quota here (sandboxes_arrival_begin) */
    /* Its ports API on the source: the guest's ports and access token. */
    unsigned ports[SBX_PORTS_MAX];
    size_t n_ports;
    char token[PORT_TOKEN_LEN + 1];
};

static void incoming_free(struct incoming *in)
{
    if (in->sock >= 0)
        close(in->sock);
    if (in->pid > 0)
        waitpid(in->pid, NULL, 0); /* it ends once its socket closed */
    /* After the keeper's end: in the table by now, or never. */
    if (in->counted)
        sandboxes_arrival_end(in->tenant);
    free(in->spec);
    free(in->metadata);
    free(in);
}

/* Recorded in this node's store: a row the id has from an earlier stay
 * here (destroyed when it moved away) makes room first. */
static int record(const struct incoming *in, const char *container, hull_error *err)
{
    const char *args[] = {in->id};
    if (hull_store_exec(hulld.store, "DELETE FROM sandboxes WHERE id = ? AND state = 'destroyed'",
                        args, 1, NULL, err) < 0 ||
        hull_sandbox_rec_insert(hulld.store, in->id, in->tenant, "microvm", container,
                                in->lifetime_s, err) < 0)
        return -1;
    return in->metadata ? hull_sandbox_rec_metadata(hulld.store, in->id, in->metadata, err) : 0;
}

/* Its ports as they were on the node it came from: the same guest ports
 * behind the same access token, on listeners of this node (their URLs are
 * this node's). The guest kept its address (the VM library's move), so
 * they reach it at once. A failure leaves the sandbox without them. */
static void reopen_ports(const struct incoming *in)
{
    struct resp pr = {0};
    json_object *o = json_object_new_object();
    if (sbx_ports_open(in->id, in->ports, in->n_ports, in->token, o, &pr) < 0)
        hull_log(HULL_LOG_ERROR, "sandbox %s: its ports are not open here: %s", in->id,
                 error_message(pr.body));
    json_object_put(o);
    json_object_put(pr.body);
    free(pr.raw);
}

/* The keeper's last word: the VM runs here (the sandbox is this node's,
 * in its table, store and Redis record), or it did not come. */
static void *take_over(void *arg)
{
    struct incoming *in = arg;
    struct frame f;
    hull_error e = NULL;
    if (frame_recv(in->sock, &f) < 0) {
        hull_log(HULL_LOG_ERROR, "sandbox %s from %s: its receiving keeper died", in->id, in->from);
        incoming_free(in);
        return NULL;
    }
    json_object *er = hj_get(f.hdr, "error");
    if (er) {
        json_object *m = hj_get(er, "message");
        hull_warn("sandbox %s from %s: not received: %s", in->id, in->from,
                  m ? json_object_get_string(m) : "?");
        frame_free(&f);
        incoming_free(in);
        return NULL;
    }
    char container[64];
    snprintf(container, sizeof(container), "%s", frame_str(&f, "container"));
    frame_free(&f);
    if (record(in, container, &e) < 0) {
        /* Its keeper goes with the socket, and the VM with it. */
        hull_log(HULL_LOG_ERROR, "sandbox %s from %s: runs here but cannot be recorded: %s", in->id,
                 in->from, hull_error_msg(e));
        hull_error_free(&e);
        incoming_free(in);
        return NULL;
    }
    pid_t pid = in->pid;
    in->pid = -1;
    int sock = in->sock;
    in->sock = -1;
    if (sandboxes_insert(in->id, in->tenant, container, in->spec, in->lifetime_s, pid, sock, &e) <
        0) {
        hull_log(HULL_LOG_ERROR, "sandbox %s from %s: %s", in->id, in->from, hull_error_msg(e));
        hull_error_free(&e);
        if (hull_sandbox_rec_state(hulld.store, in->id, "destroyed", "could not be taken", &e) < 0)
            hull_error_free(&e); /* logged above: the row says running until the next start */
        incoming_free(in);
        return NULL;
    }
    if (in->token[0])
        reopen_ports(in);
    cluster_placed(in->key, in->memory, in->cpu, in->metadata);
    cluster_sandbox_added(in->id, in->tenant, container, "microvm");
    hull_log(HULL_LOG_INFO, "sandbox %s: moved here from %s (VM %s)", in->id, in->from, container);
    incoming_free(in);
    return NULL;
}

/* The request's fields into in: 0, or -1 with a 400. */
static int take_fields(json_object *doc, struct incoming *in, struct resp *r)
{
    static const char *const strings[] = {"sandbox", "tenant", "spec", "key"};
    for (size_t i = 0; i < 4; i++) {
        json_object *v = hj_get(doc, strings[i]);
        if (v == NULL || !json_object_is_type(v, json_type_string)) {
            resp_error(r, 400, "invalid_request", strings[i], "%s: required (a string)",
                       strings[i]);
            return -1;
        }
    }
    const char *id = json_object_get_string(hj_get(doc, "sandbox"));
    if (id[0] == '\0' || strlen(id) >= sizeof(in->id) ||
        strspn(id, "abcdefghijklmnopqrstuvwxyz"
                   "0123456789-_") != strlen(id)) {
        resp_error(r, 400, "invalid_request", "sandbox", "sandbox: not a sandbox id");
        return -1;
    }
    snprintf(in->id, sizeof(in->id), "%s", id);
    snprintf(in->tenant, sizeof(in->tenant), "%s", json_object_get_string(hj_get(doc, "tenant")));
    snprintf(in->key, sizeof(in->key), "%s", json_object_get_string(hj_get(doc, "key")));
    in->spec = strdup(json_object_get_string(hj_get(doc, "spec")));
    json_object *m = hj_get(doc, "metadata");
    in->metadata =
        m && json_object_is_type(m, json_type_string) ? strdup(json_object_get_string(m)) : NULL;
    in->lifetime_s = (unsigned)json_object_get_int64(hj_get(doc, "lifetime_s"));
    in->memory = (uint64_t)json_object_get_int64(hj_get(doc, "memory"));
    in->cpu = (unsigned)json_object_get_int64(hj_get(doc, "cpu"));
    if (in->spec == NULL || in->lifetime_s == 0) {
        resp_error(r, 400, "invalid_request", "lifetime_s", "lifetime_s: required");
        return -1;
    }
    json_object *t = hj_get(doc, "access_token");
    if (t && (!json_object_is_type(t, json_type_string) ||
              strlen(json_object_get_string(t)) != PORT_TOKEN_LEN)) {
        resp_error(r, 400, "invalid_request", "access_token", "access_token: not a port token");
        return -1;
    }
    if (t)
        snprintf(in->token, sizeof(in->token), "%s", json_object_get_string(t));
    return sbx_ports_take(doc, in->ports, &in->n_ports, r);
}

/* A keeper listening for the VM on this node's advertised address: its
 * address, or -1 with r filled. */
static int start_keeper(struct incoming *in, char *addr, size_t alen, struct resp *r)
{
    hull_error e = NULL;
    const char *adv = hulld.o->advertise;
    const char *colon = strrchr(adv, ':');
    char listen[160];
    snprintf(listen, sizeof(listen), "%.*s:0", colon ? (int)(colon - adv) : (int)strlen(adv), adv);
    in->pid = helper_spawn("keeper", &in->sock, &e);
    if (in->pid < 0) {
        resp_from_error(r, &e);
        return -1;
    }
    json_object *hdr = json_object_new_object();
    json_object_object_add(hdr, "op", json_object_new_string("receive"));
    json_object_object_add(hdr, "listen", json_object_new_string(listen));
    move_channel(hdr, sec.path);
    struct frame f;
    int ok = frame_send(in->sock, hdr, in->spec, strlen(in->spec), -1);
    json_object_put(hdr);
    if (ok < 0 || frame_recv(in->sock, &f) < 0) {
        resp_error(r, 500, "internal", NULL, "receive: the keeper died");
        return -1;
    }
    json_object *er = hj_get(f.hdr, "error");
    if (er) {
        json_object *m = hj_get(er, "message");
        resp_error(r, 500, "internal", NULL, "%s",
                   m ? json_object_get_string(m) : "receive failed");
    } else {
        snprintf(addr, alen, "%s", frame_str(&f, "address"));
    }
    frame_free(&f);
    return er ? -1 : 0;
}

void api_cluster_receive(const struct request *rq, struct resp *r)
{
    if (!cluster_enabled() || sec.len == 0) {
        resp_error(r, 404, "not_found", NULL,
                   "this node takes no sandboxes from others (hulld --cluster --cluster-secret)");
        return;
    }
    char from[HULL_NODE_NAME_MAX + 1];
    if (verify(rq, from, sizeof(from), r) < 0)
        return;
    cleanup_json json_object *doc = NULL;
    if (request_doc(rq, false, &doc, r) < 0)
        return;
    struct incoming *in = calloc(1, sizeof(*in));
    if (in == NULL) {
        resp_error(r, 500, "internal", NULL, "out of memory");
        return;
    }
    in->sock = in->pid = -1;
    snprintf(in->from, sizeof(in->from), "%s", from);
    char addr[160] = "";
    if (take_fields(doc, in, r) < 0) {
        incoming_free(in);
        return;
    }
    if (hulld.draining) {
        resp_shutting_down(r, "hulld is shutting down");
        incoming_free(in);
        return;
    }
    if (sandboxes_here(in->id)) { /* live, or its previous copy still ending */
        resp_error(r, 409, "conflict", "sandbox", "sandbox '%s' already runs here", in->id);
        incoming_free(in);
        return;
    }
    hull_error e = NULL;
    if (sandboxes_arrival_begin(in->tenant, &e) < 0) {
        resp_error(r, hull_error_code(e) == EDQUOT ? 409 : 503,
                   hull_error_code(e) == EDQUOT ? "quota_exceeded" : "busy", NULL, "%s",
                   hull_error_msg(e));
        hull_error_free(&e);
        incoming_free(in);
        return;
    }
    in->counted = true;
    if (start_keeper(in, addr, sizeof(addr), r) < 0) {
        incoming_free(in);
        return;
    }
    hull_log(HULL_LOG_INFO, "sandbox %s: %s sends it here, listening on %s", in->id, from, addr);
    int rc = daemon_thread(take_over, in);
    if (rc != 0) {
        /* Nobody would take the VM: the keeper goes before it comes. */
        kill(in->pid, SIGKILL); /* our child, by pid: its receiver's guard cleans up */
        incoming_free(in);
        resp_error(r, 503, "busy", NULL, "receive: no thread: %s", strerror(rc));
        return;
    }
    json_object *o = json_object_new_object();
    json_object_object_add(o, "address", json_object_new_string(addr));
    resp_json(r, 200, o);
}

/* ---- the source: the move ---- */

static int fail(int *status, int code, hull_error *err, int e, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));
static int fail(int *status, int code, hull_error *err, int e, const char *fmt, ...)
{
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    *status = code;
    return hull_error_set(err, e, "%s", msg);
}

/* The node named to, up and not draining, for a move from here: its
 * address, or -1 with err and *status. */
static int target_address(const char *to, char *addr, size_t len, int *status, hull_error *err)
{
    if (strcmp(to, cluster_self()) == 0)
        return fail(status, 409, err, EEXIST, "to: the sandbox runs on %s already", to);
    cleanup_json json_object *ns = cluster_nodes_now(err);
    if (ns == NULL) {
        *status = 503;
        return -1;
    }
    for (size_t i = 0; i < json_object_array_length(ns); i++) {
        json_object *n = json_object_array_get_idx(ns, i);
        if (strcmp(json_object_get_string(hj_get(n, "name")), to) != 0)
            continue;
        json_object *st = hj_get(n, "state"), *dr = hj_get(n, "draining");
        if (st == NULL || strcmp(json_object_get_string(st), "up") != 0)
            return fail(status, 409, err, EHOSTDOWN, "to: node %s is down", to);
        if (dr && strcmp(json_object_get_string(dr), "1") == 0)
            return fail(status, 409, err, EBUSY, "to: node %s is draining", to);
        if (json_object_get_int64(hj_get(n, "vms")) >= json_object_get_int64(hj_get(n, "vm_slots")))
            return fail(status, 409, err, ENOSPC, "to: node %s has no free microVM slot", to);
        snprintf(addr, len, "%s", json_object_get_string(hj_get(n, "address")));
        return 0;
    }
    return fail(status, 400, err, EINVAL, "to: no node named '%s' in the cluster", to);
}

/* What the target needs to take sandbox id: its owner, lifetime,
 * metadata, create request and reservation; NULL with err. */
static char *offer(const char *id, int *status, hull_error *err)
{
    cleanup_json json_object *rec = hull_sandbox_rec_get(hulld.store, id, NULL, err);
    cleanup_json json_object *crec = rec ? cluster_sbx_record(id, err) : NULL;
    cleanup_free char *spec = NULL;
    *status = 500;
    if (crec == NULL || sandboxes_spec(id, NULL, &spec, err) < 0)
        return NULL;
    json_object *iso = hj_get(rec, "isolation"), *st = hj_get(rec, "state");
    if (iso == NULL || strcmp(json_object_get_string(iso), "microvm") != 0) {
        *status = 501;
        hull_error_set(err, ENOTSUP,
                       "migrate: only microVM sandboxes move between nodes (a container "
                       "sandbox lives in its node's kernel: it stays until deleted)");
        return NULL;
    }
    if (st && strcmp(json_object_get_string(st), "paused") == 0) {
        *status = 409;
        hull_error_set(err, EBUSY, "migrate: sandbox '%s' is paused (on disk): resume it first",
                       id);
        return NULL;
    }
    cleanup_json json_object *o = json_object_new_object();
    json_object_object_add(o, "sandbox", json_object_new_string(id));
    json_object_object_add(o, "tenant", json_object_get(hj_get(crec, "tenant")));
    json_object_object_add(o, "key", json_object_get(hj_get(crec, "key")));
    json_object *mem = hj_get(crec, "memory"), *cpu = hj_get(crec, "cpu");
    json_object_object_add(
        o, "memory",
        json_object_new_int64(mem ? strtoll(json_object_get_string(mem), NULL, 10) : 0));
    json_object_object_add(
        o, "cpu", json_object_new_int64(cpu ? strtoll(json_object_get_string(cpu), NULL, 10) : 0));
    json_object_object_add(o, "lifetime_s", json_object_get(hj_get(rec, "lifetime_s")));
    json_object *meta = hj_get(rec, "metadata");
    if (meta)
        json_object_object_add(o, "metadata", json_object_get(meta));
    json_object_object_add(o, "spec", json_object_new_string(spec));
    /* Its ports follow it (the guest keeps its address): the target opens
     * them again behind the same token. The request is signed and travels
     * over the nodes' TLS. */
    sbx_ports_export(id, o);
    char *text = strdup(json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN));
    if (text == NULL)
        hull_error_set(err, ENOMEM, "out of memory");
    return text;
}

/* After the switch: Redis names the target once it took the sandbox. */
static bool taken(const char *id, const char *to)
{
    for (int64_t end = hull_monotonic_ms() + TAKEN_WAIT_MS; hull_monotonic_ms() < end;) {
        hull_error e = NULL;
        cleanup_json json_object *rec = cluster_sbx_record(id, &e);
        hull_error_free(&e); /* not there yet, or Redis away a moment: asked again */
        json_object *n = hj_get(rec, "node");
        if (n && strcmp(json_object_get_string(n), to) == 0)
            return true;
        usleep(50000);
    }
    return false;
}

int cluster_move(const char *id, const char *to, bool cold, json_object **result, int *status,
                 hull_error *err)
{
    *result = NULL;
    if (!cluster_enabled() || sec.len == 0)
        return fail(status, 501, err, ENOTSUP,
                    "migrate: needs hulld --cluster and --cluster-secret (on every node)");
    char addr[160];
    if (target_address(to, addr, sizeof(addr), status, err) < 0)
        return -1;
    cleanup_free char *body = offer(id, status, err);
    if (body == NULL)
        return -1;
    /* The target listens for it... */
    struct resp tr = {0};
    call_node(to, addr, "/v1/cluster/receive", body, &tr);
    cleanup_json json_object *ta = answer_json(&tr);
    int tstatus = tr.status;
    json_object_put(tr.body);
    free(tr.raw);
    json_object *where = hj_get(ta, "address");
    if (tstatus != 200 || where == NULL) {
        *status = tstatus == 409 || tstatus == 503 ? tstatus : 502;
        return hull_error_set(err, EREMOTEIO, "migrate: node %s does not take it: %s", to,
                              error_message(ta));
    }
    /* ...and this node's keeper sends the VM there (running here again on
     * any failure before the target runs it). */
    json_object *hdr = json_object_new_object();
    json_object_object_add(hdr, "to", json_object_get(where));
    move_channel(hdr, sec.path);
    json_object_object_add(hdr, "mode", json_object_new_string(cold ? "cold" : "live"));
    struct frame f = {.fd = -1};
    if (sandboxes_call(id, NULL, "migrate", hdr, -1, &f, err) < 0) {
        int e = hull_error_code(*err);
        /* The library's one undecided case (its message says "in doubt"):
         * the connection broke after the target was told to run the guest.
         * The source keeps its guest paused; when the target took the
         * sandbox, the move happened, and the paused copy here goes. */
        if (strstr(hull_error_msg(*err), "in doubt") == NULL || !taken(id, to)) {
            *status = e == EBUSY ? 409 : e == ENOENT ? 404 : 502;
            return -1;
        }
        hull_warn("sandbox %s: %s; %s took it", id, hull_error_msg(*err), to);
        hull_error_free(err);
    }
    json_object *res = f.data ? json_tokener_parse(f.data) : NULL;
    frame_free(&f);
    if (res == NULL)
        res = json_object_new_object();
    char reason[128];
    snprintf(reason, sizeof(reason), "moved to node %s", to);
    if (!taken(id, to)) {
        hull_log(HULL_LOG_ERROR, "sandbox %s: runs on %s, which did not record it in %d s", id, to,
                 TAKEN_WAIT_MS / 1000);
        json_object_object_add(res, "warning",
                               json_object_new_string("the target did not record it in time"));
    }
    sandboxes_end(id, reason);
    json_object_object_add(res, "id", json_object_new_string(id));
    json_object_object_add(res, "from", json_object_new_string(cluster_self()));
    json_object_object_add(res, "node", json_object_new_string(to));
    *result = res;
    *status = 200;
    return 0;
}

/* ---- POST /v1/sandboxes/{id}/migrate ---- */

void sbx_migrate(const struct request *rq, const char *id, struct resp *r)
{
    cleanup_json json_object *doc = NULL;
    if (request_doc(rq, false, &doc, r) < 0)
        return;
    const char *to = NULL;
    bool cold = false;
    json_object_object_foreach(doc, k, v)
    {
        bool str = json_object_is_type(v, json_type_string);
        if (strcmp(k, "to") == 0 && str) {
            to = json_object_get_string(v);
        } else if (strcmp(k, "mode") == 0 && str &&
                   (strcmp(json_object_get_string(v), "live") == 0 ||
                    strcmp(json_object_get_string(v), "cold") == 0)) {
            cold = strcmp(json_object_get_string(v), "cold") == 0;
        } else if (strcmp(k, "to") == 0 || strcmp(k, "mode") == 0) {
            resp_error(r, 400, "invalid_request", k, "%s: must be %s", k,
                       k[0] == 't' ? "a node name" : "\"live\" or \"cold\"");
            return;
        } else {
            resp_error(r, 400, "invalid_request", k, "%s: unknown field (accepted: to, mode)", k);
            return;
        }
    }
    hull_error e = NULL;
    if (to == NULL || hull_node_name_check(to, &e) < 0) {
        resp_error(r, 400, "invalid_request", "to", "to: %s",
                   e ? hull_error_msg(e) : "required (a node name)");
        hull_error_free(&e);
        return;
    }
    json_object *res = NULL;
    int status = 500;
    if (cluster_move(id, to, cold, &res, &status, &e) == 0) {
        resp_json(r, 200, res);
        return;
    }
    static const struct {
        int status;
        const char *code;
    } codes[] = {{400, "invalid_request"}, {404, "not_found"},        {409, "conflict"},
                 {501, "not_implemented"}, {502, "migration_failed"}, {503, "cluster_unavailable"}};
    const char *code = "internal";
    for (size_t i = 0; i < sizeof(codes) / sizeof(codes[0]); i++)
        if (codes[i].status == status)
            code = codes[i].code;
    resp_error(r, status, code, status == 400 ? "to" : NULL, "%s", hull_error_msg(e));
    hull_error_free(&e);
}
