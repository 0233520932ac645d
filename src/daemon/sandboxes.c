/* /v1/sandboxes: long-lived sandboxes, each owned by a keeper process
 * (keeper.c). Requests to one sandbox go one at a time (its op lock); the
 * table lock only guards the list. Idle sandboxes are destroyed once their
 * lifetime has passed since the last request that touched them. */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "cluster.h"
#include "daemon.h"
#include "move.h"
#include "ports.h"
#include "procs.h"
#include "response.h"
#include "sbx_metrics.h"
#include "sbx_table.h"
#include "util/clock.h"
#include "util/error.h"
#include "util/json.h"
#include "util/log.h"

#define DEFAULT_LIFETIME_S 600u
#define MAX_LIFETIME_S     (24u * 3600u)

static pthread_mutex_t tab_mu = PTHREAD_MUTEX_INITIALIZER;
static struct sbx *table;

static void unref(struct sbx *s)
{
    pthread_mutex_lock(&tab_mu);
    bool last = --s->refs == 0;
    pthread_mutex_unlock(&tab_mu);
    if (!last)
        return;
    if (s->sock >= 0)
        close(s->sock);
    if (s->kill_fd >= 0)
        close(s->kill_fd);
    if (s->attach_sock >= 0)
        close(s->attach_sock);
    pthread_mutex_destroy(&s->attach_mu);
    if (s->pid > 0)
        waitpid(s->pid, NULL, 0);
    pthread_mutex_destroy(&s->op);
    free(s->spec);
    free(s);
}

/* The live sandbox id of tenant (NULL: any), with a reference. */
static struct sbx *find(const char *id, const char *tenant)
{
    pthread_mutex_lock(&tab_mu);
    struct sbx *s = table;
    while (s && (strcmp(s->id, id) != 0 || (tenant && strcmp(s->tenant, tenant) != 0)))
        s = s->next;
    if (s)
        s->refs++;
    pthread_mutex_unlock(&tab_mu);
    return s;
}

static void unlink_sbx(struct sbx *s)
{
    pthread_mutex_lock(&tab_mu);
    for (struct sbx **p = &table; *p; p = &(*p)->next)
        if (*p == s) {
            *p = s->next;
            s->refs--; /* the table's reference */
            break;
        }
    pthread_mutex_unlock(&tab_mu);
    cluster_sandbox_removed(s->id);
}

struct sbx *sbx_new(const char *id, const char *tenant, const char *container)
{
    struct sbx *s = calloc(1, sizeof(*s));
    if (s == NULL)
        return NULL;
    s->sock = s->attach_sock = s->kill_fd = -1;
    s->pid = -1;
    s->refs = 1; /* the caller's, until the table has it */
    pthread_mutex_init(&s->op, NULL);
    pthread_mutex_init(&s->attach_mu, NULL);
    snprintf(s->id, sizeof(s->id), "%s", id);
    snprintf(s->tenant, sizeof(s->tenant), "%s", tenant);
    snprintf(s->container, sizeof(s->container), "%s", container);
    return s;
}

void sbx_table_push(struct sbx *s)
{
    pthread_mutex_lock(&tab_mu);
    s->refs++;
    s->next = table;
    table = s;
    pthread_mutex_unlock(&tab_mu);
}

unsigned sandboxes_active(void)
{
    unsigned n = 0;
    pthread_mutex_lock(&tab_mu);
    for (struct sbx *s = table; s; s = s->next)
        n++;
    pthread_mutex_unlock(&tab_mu);
    return n;
}

static unsigned tenant_count(const char *tenant)
{
    unsigned n = sbx_arriving_locked(tenant);
    for (struct sbx *s = table; s; s = s->next)
        n += strcmp(s->tenant, tenant) == 0;
    return n;
}

void sbx_table_lock(void)
{
    pthread_mutex_lock(&tab_mu);
}

void sbx_table_unlock(void)
{
    pthread_mutex_unlock(&tab_mu);
}

unsigned sbx_tenant_count_locked(const char *tenant)
{
    return tenant_count(tenant);
}

/* One request to the keeper, under the op lock. A keeper that does not
 * answer is gone, and so is its sandbox. */
static int call(struct sbx *s, const char *op, json_object *extra, const void *data, size_t len,
                int fd, struct frame *reply, hull_error *err)
{
    if (s->gone)
        return hull_error_set(err, ENOENT, "sandbox '%s' is gone", s->id);
    json_object *hdr = extra ? extra : json_object_new_object();
    json_object_object_add(hdr, "op", json_object_new_string(op));
    int r = frame_send(s->sock, hdr, data, len, fd);
    json_object_put(hdr);
    if (r < 0 || frame_recv(s->sock, reply) < 0) {
        s->gone = true;
        return hull_error_set(err, ESRCH, "sandbox '%s': its keeper process died", s->id);
    }
    json_object *er = hj_get(reply->hdr, "error");
    if (er) {
        json_object *code = hj_get(er, "errno"), *msg = hj_get(er, "message");
        hull_error_set(err, code ? json_object_get_int(code) : EIO, "%s",
                       msg ? json_object_get_string(msg) : "keeper failed");
        frame_free(reply);
        return -1;
    }
    if (strcmp(op, "csnap") == 0)
        return 0; /* the cluster's periodic snapshot is no use of it */
    __atomic_store_n(&s->last_used_ns, hull_monotonic_ns(), __ATOMIC_RELAXED);
    s->last_used = time(NULL);
    return 0;
}

int sandboxes_call(const char *id, const char *tenant, const char *op, json_object *hdr, int fd,
                   struct frame *reply, hull_error *err)
{
    struct sbx *s = find(id, tenant);
    if (s == NULL) {
        json_object_put(hdr);
        return hull_error_set(err, ENOENT, "sandbox '%s' not found", id);
    }
    pthread_mutex_lock(&s->op);
    int ok = s->gone ? hull_error_set(err, ENOENT, "sandbox '%s' is gone", id)
                     : call(s, op, hdr, NULL, 0, fd, reply, err);
    if (s->gone && ok < 0 && hull_error_code(*err) == ENOENT)
        json_object_put(hdr); /* call() did not take it */
    pthread_mutex_unlock(&s->op);
    unref(s);
    return ok;
}

void sandboxes_touch(const char *id, const char *tenant)
{
    struct sbx *s = find(id, tenant);
    if (s) {
        sbx_touch(s);
        unref(s);
    }
}

int sandboxes_spec(const char *id, const char *tenant, char **spec, hull_error *err)
{
    struct sbx *s = find(id, tenant);
    *spec = s && !s->gone && s->spec ? strdup(s->spec) : NULL;
    if (s)
        unref(s);
    if (*spec == NULL)
        return hull_error_set(err, ENOENT, "sandbox '%s' not found", id);
    return 0;
}

bool sandboxes_alive(const char *id, const char *tenant)
{
    struct sbx *s = find(id, tenant);
    bool alive = s && !s->gone;
    if (s)
        unref(s);
    return alive;
}

int sbx_call(struct sbx *s, const char *op, json_object *extra, const void *data, size_t len,
             bool refuse_paused, struct frame *reply, hull_error *err)
{
    pthread_mutex_lock(&s->op);
    int r = refuse_paused && s->paused ? hull_error_set(err, EBUSY, "sandbox '%s' is paused", s->id)
                                       : call(s, op, extra, data, len, -1, reply, err);
    if (refuse_paused && s->paused)
        json_object_put(extra);
    pthread_mutex_unlock(&s->op);
    return r;
}

const char *sbx_id(const struct sbx *s)
{
    return s->id;
}

void sbx_hold(struct sbx *s)
{
    pthread_mutex_lock(&tab_mu);
    s->refs++;
    pthread_mutex_unlock(&tab_mu);
}

void sbx_release(struct sbx *s)
{
    unref(s);
}

void sbx_touch(struct sbx *s)
{
    /* Without the op lock (a stream must not wait behind an exec): the
     * reaper reads it atomically too. */
    __atomic_store_n(&s->last_used_ns, hull_monotonic_ns(), __ATOMIC_RELAXED);
    s->last_used = time(NULL);
}

/* A new keeper connection, attached over via (the main one under the op
 * lock, else the attach connection): -1 with err. */
static int attach_over(struct sbx *s, int via, hull_error *err)
{
    int sv[2];
    if (s->gone)
        return hull_error_set(err, ENOENT, "sandbox '%s' is gone", s->id);
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0)
        return hull_error_errno(err, "socketpair");
    json_object *hdr = json_object_new_object();
    json_object_object_add(hdr, "op", json_object_new_string("attach"));
    struct frame f;
    int r = frame_send(via, hdr, NULL, 0, sv[1]);
    json_object_put(hdr);
    close(sv[1]);
    if (r < 0 || frame_recv(via, &f) < 0) {
        close(sv[0]);
        return hull_error_set(err, ESRCH, "sandbox '%s': its keeper process died", s->id);
    }
    json_object *er = hj_get(f.hdr, "error");
    if (er) {
        json_object *msg = hj_get(er, "message");
        hull_error_set(err, EBUSY, "%s", msg ? json_object_get_string(msg) : "keeper failed");
        frame_free(&f);
        close(sv[0]);
        return -1;
    }
    frame_free(&f);
    return sv[0];
}

int sbx_attach_over(struct sbx *s, int via, hull_error *err)
{
    return attach_over(s, via, err);
}

int sbx_keeper_call(struct sbx *s, const char *op, json_object *extra, struct frame *reply,
                    hull_error *err)
{
    return call(s, op, extra, NULL, 0, -1, reply, err);
}

int sbx_connect(struct sbx *s, hull_error *err)
{
    pthread_mutex_lock(&s->attach_mu);
    int r = s->attach_sock >= 0 ? attach_over(s, s->attach_sock, err)
                                : hull_error_set(err, ESRCH, "sandbox '%s' is gone", s->id);
    pthread_mutex_unlock(&s->attach_mu);
    return r;
}

int sandboxes_socket(const char *id, int family, char *addr, size_t addr_len, hull_error *err)
{
    struct sbx *s = find(id, NULL);
    if (s == NULL)
        return hull_error_set(err, ENOENT, "sandbox '%s' not found", id);
    json_object *hdr = json_object_new_object();
    json_object_object_add(hdr, "op", json_object_new_string("socket"));
    json_object_object_add(hdr, "family", json_object_new_int(family == AF_INET6 ? 6 : 4));
    int fd = -1;
    struct frame f;
    /* The attach connection, not the op lock: a port's connection does not
     * wait behind an exec. */
    pthread_mutex_lock(&s->attach_mu);
    if (s->gone || s->attach_sock < 0) {
        hull_error_set(err, ENOENT, "sandbox '%s' is gone", id);
    } else if (frame_send(s->attach_sock, hdr, NULL, 0, -1) < 0 ||
               frame_recv(s->attach_sock, &f) < 0) {
        hull_error_set(err, ESRCH, "sandbox '%s': its keeper process died", id);
    } else {
        json_object *er = hj_get(f.hdr, "error");
        if (er) {
            json_object *code = hj_get(er, "errno"), *msg = hj_get(er, "message");
            hull_error_set(err, code ? json_object_get_int(code) : EIO, "%s",
                           msg ? json_object_get_string(msg) : "keeper failed");
        } else if (f.fd < 0) {
            hull_error_set(err, EPROTO, "sandbox '%s': the keeper sent no socket", id);
        } else {
            fd = f.fd;
            f.fd = -1;
            if (addr) /* a microVM's guest address (sbx_vm_net.c), else "" */
                snprintf(addr, addr_len, "%s", frame_str(&f, "addr"));
        }
        frame_free(&f);
    }
    pthread_mutex_unlock(&s->attach_mu);
    json_object_put(hdr);
    if (fd >= 0)
        sbx_touch(s);
    unref(s);
    return fd;
}

static void destroy(struct sbx *s, const char *reason)
{
    cluster_sandbox_sample(s->id); /* what it used, while it still runs */
    uint64_t one = 1;
    sbx_ports_drop(s->id); /* its listeners and connections end first */
    /* Stop a command running in it now, rather than waiting for it. */
    if (write(s->kill_fd, &one, sizeof(one)) < 0)
        hull_warn("sandbox %s: %s", s->id, strerror(errno));
    pthread_mutex_lock(&s->op);
    struct frame f;
    hull_error e = NULL;
    bool keeper_gone = s->gone;
    if (!s->gone && call(s, "destroy", NULL, NULL, 0, -1, &f, &e) == 0)
        frame_free(&f);
    if (e) {
        keeper_gone = true;
        hull_log(HULL_LOG_ERROR, "sandbox %s: destroy: %s", s->id, hull_error_msg(e));
        hull_error_free(&e);
    }
    s->gone = true;
    pthread_mutex_unlock(&s->op);
    if (keeper_gone && s->microvm)
        sbx_vm_sweep(s->container); /* its QEMU outlives the keeper */
    if (hull_sandbox_rec_state(hulld.store, s->id, "destroyed", reason, &e) < 0) {
        hull_log(HULL_LOG_ERROR, "sandbox %s: %s", s->id, hull_error_msg(e));
        hull_error_free(&e);
    }
    unlink_sbx(s);
}

static json_object *describe(struct sbx *s, const char *tenant, hull_error *err)
{
    json_object *o = hull_sandbox_rec_get(hulld.store, s->id, tenant, err);
    if (o == NULL)
        return NULL;
    sbx_meta_show(o);
    char buf[64];
    struct tm tm;
    time_t t = s->last_used;
    gmtime_r(&t, &tm);
    strftime(buf, sizeof(buf), "%Y-%m-%dT%H:%M:%SZ", &tm);
    json_object_object_add(o, "last_used", json_object_new_string(buf));
    pthread_mutex_lock(&tab_mu);
    t += s->lifetime_s;
    pthread_mutex_unlock(&tab_mu);
    gmtime_r(&t, &tm);
    strftime(buf, sizeof(buf), "%Y-%m-%dT%H:%M:%SZ", &tm);
    json_object_object_add(o, "expires", json_object_new_string(buf));
    if (!s->gone)
        json_object_object_add(o, "state",
                               json_object_new_string(s->paused ? "paused" : "running"));
    if (s->image[0])
        json_object_object_add(o, "image", json_object_new_string(s->image));
    sbx_ports_show(s->id, o);
    cluster_annotate(o);
    return o;
}

static void answer(struct resp *r, int status, struct sbx *s, const char *tenant)
{
    hull_error e = NULL;
    json_object *o = describe(s, tenant, &e);
    if (o == NULL)
        resp_store_error(r, &e);
    else
        resp_json(r, status, o);
}

/* The 201 of a create gets the sandbox's access token (shown this once)
 * and its ports opened; when a port cannot be, that error is the answer
 * and the sandbox goes. */
static void ports_created(struct resp *r, struct sbx *s, const unsigned *ports, size_t n_ports)
{
    if (r->status != 201 || r->body == NULL)
        return;
    json_object *o = json_object_get(r->body);
    if (sbx_ports_open(s->id, ports, n_ports, NULL, o, r) < 0)
        destroy(s, "its ports could not be opened");
    json_object_put(o);
}

/* lifetime: a duration like every other ("10m", or a number of seconds);
 * absent: the default. */
static int take_lifetime(json_object *doc, unsigned *out, struct resp *r)
{
    json_object *v = NULL;
    *out = DEFAULT_LIFETIME_S;
    if (!json_object_object_get_ex(doc, "lifetime", &v) || v == NULL)
        return 0;
    uint64_t ms = 0;
    hull_error e = NULL;
    if (hull_json_duration_ms(v, "lifetime", &ms, &e) < 0) {
        resp_from_error(r, &e);
        return -1;
    }
    if (ms < 1000 || ms > MAX_LIFETIME_S * 1000ull) {
        resp_error(r, 400, "invalid_request", "lifetime",
                   "lifetime: must be from 1s to 24h (\"10m\", or a number of seconds)");
        return -1;
    }
    *out = (unsigned)(ms / 1000);
    json_object_object_del(doc, "lifetime");
    return 0;
}

/* A new sandbox of caller c in the table, counted against its tenant's
 * quota from here on (so racing creates cannot both pass), with a
 * reference for the caller; NULL with r filled when over the quota,
 * shutting down, or out of memory. */
static struct sbx *table_add(const struct caller *c, unsigned lifetime, struct resp *r)
{
    struct sbx *s = calloc(1, sizeof(*s));
    if (s == NULL) {
        resp_error(r, 500, "internal", NULL, "out of memory");
        return NULL;
    }
    s->sock = s->kill_fd = s->attach_sock = -1;
    s->pid = -1;
    s->refs = 2; /* the table's and ours */
    pthread_mutex_init(&s->op, NULL);
    pthread_mutex_init(&s->attach_mu, NULL);
    daemon_new_id(s->id, sizeof(s->id), 's');
    snprintf(s->tenant, sizeof(s->tenant), "%s", c->tok.tenant);
    s->lifetime_s = lifetime;
    snprintf(r->target, sizeof(r->target), "%s", s->id);
    pthread_mutex_lock(&tab_mu);
    bool full = tenant_count(c->tok.tenant) >= hulld.o->tenant_sandboxes;
    bool draining = hulld.draining;
    if (!full && !draining) {
        s->next = table;
        table = s;
    }
    pthread_mutex_unlock(&tab_mu);
    if (full || draining) {
        if (full) {
            resp_error(r, 429, "quota_exceeded", NULL, "tenant %s has %u sandboxes, its quota",
                       c->tok.tenant, hulld.o->tenant_sandboxes);
            r->retry_after = 5;
        } else {
            resp_error(r, 503, "shutting_down", NULL, "hulld is shutting down");
        }
        s->refs = 1;
        unref(s);
        return NULL;
    }
    return s;
}

static void create(const struct request *rq, struct resp *r)
{
    const struct caller *c = rq->caller;
    hull_error e = NULL;
    cleanup_json json_object *doc = NULL;
    __attribute__((cleanup(tpl_use_free))) struct tpl_use tpl = {0};
    if (request_doc(rq, true, &doc, r) < 0 || tpl_expand(c, &doc, &tpl, r) < 0)
        return;
    unsigned lifetime, ports[SBX_PORTS_MAX];
    size_t n_ports = 0;
    cleanup_free char *meta = NULL;
    if (request_fields(doc, &endpoint_create, r) < 0 || take_lifetime(doc, &lifetime, r) < 0 ||
        sbx_meta_take(doc, &meta, r) < 0 || sbx_ports_take(doc, ports, &n_ports, r) < 0 ||
        request_image(doc, r) < 0)
        return;
    /* The policy parser wants a command: the keeper ignores it. */
    json_object *cmd = json_object_new_array();
    json_object_array_add(cmd, json_object_new_string("true"));
    json_object_object_add(doc, "cmd", cmd);
    const char *text = hj_to_string(doc);
    if (policy_check(text, r) < 0 || request_grants(c, doc, r) < 0)
        return;
    json_object *iso_v = hj_get(doc, "isolation");
    const char *iso = iso_v ? json_object_get_string(iso_v) : "container";
    struct sbx *s = table_add(c, lifetime, r);
    if (s == NULL)
        return;
    s->microvm = strcmp(iso, "microvm") == 0;
    json_object *img = hj_get(doc, "image");
    if (img)
        snprintf(s->image, sizeof(s->image), "%s", json_object_get_string(img));
    s->spec = strdup(text); /* NULL: it cannot be a template's source */
    pthread_mutex_lock(&s->op);
    struct frame f;
    s->kill_fd = eventfd(0, EFD_CLOEXEC);
    s->pid = helper_spawn("keeper", &s->sock, &e);
    if (s->pid < 0 || s->kill_fd < 0 ||
        call(s, "create", NULL, text, strlen(text), tpl.vm ? tpl.snap : -1, &f, &e) < 0) {
        if (e == NULL)
            hull_error_errno(&e, "eventfd");
        pthread_mutex_unlock(&s->op);
        resp_from_error(r, &e);
        s->gone = true;
        unlink_sbx(s);
        unref(s);
        return;
    }
    snprintf(s->container, sizeof(s->container), "%s",
             json_object_get_string(hj_get(f.hdr, "container")));
    frame_free(&f);
    s->attach_sock = attach_over(s, s->sock, &e);
    if (s->attach_sock < 0) { /* streams and waits will say so */
        hull_log(HULL_LOG_ERROR, "sandbox %s: %s", s->id, hull_error_msg(e));
        hull_error_free(&e);
    }
    pthread_mutex_unlock(&s->op);
    json_object *extra = NULL;
    if (tpl.on && tpl_apply(s, &tpl, rq, &extra, r) < 0) {
        destroy(s, "its template failed");
        unref(s);
        return;
    }
    if (hull_sandbox_rec_insert(hulld.store, s->id, s->tenant, iso, s->container, lifetime, &e) <
            0 ||
        (meta && hull_sandbox_rec_metadata(hulld.store, s->id, meta, &e) < 0)) {
        resp_store_error(r, &e);
        destroy(s, "could not be recorded");
    } else {
        cluster_sandbox_added(s->id, s->tenant, s->container, iso);
        answer(r, 201, s, NULL);
        if (extra && r->body) {
            json_object_object_foreach(extra, k, v)
            {
                json_object_object_add(r->body, k, json_object_get(v));
            }
        }
        ports_created(r, s, ports, n_ports);
    }
    json_object_put(extra);
    unref(s);
}

static void exec_in(struct sbx *s, const struct request *rq, struct resp *r)
{
    hull_error e = NULL;
    json_object *doc = NULL;
    if (request_doc(rq, false, &doc, r) < 0)
        return;
    /* What a command cannot have on its own (memory, pids, isolation,
     * network: the sandbox's) is refused by name, never ignored. */
    int ok = request_fields(doc, &endpoint_exec, r);
    json_object_put(doc);
    if (ok < 0 || policy_check(rq->body, r) < 0)
        return;
    const char *accept = rq->header ? rq->header(rq->conn, "Accept") : NULL;
    if (accept && strstr(accept, "application/x-ndjson")) {
        sbx_exec_stream(s, rq, r);
        return;
    }
    struct frame f;
    pthread_mutex_lock(&s->op);
    if (s->paused) {
        pthread_mutex_unlock(&s->op);
        resp_error(r, 409, "conflict", NULL, "sandbox '%s' is paused", s->id);
        return;
    }
    ok = call(s, "exec", NULL, rq->body, rq->len, s->kill_fd, &f, &e);
    pthread_mutex_unlock(&s->op);
    if (ok < 0) {
        resp_from_error(r, &e);
        return;
    }
    json_object *res = json_tokener_parse(f.data);
    frame_free(&f);
    if (res == NULL) {
        resp_error(r, 500, "internal", NULL, "exec: the keeper's result is not JSON");
        return;
    }
    json_object_object_add(res, "sandbox", json_object_new_string(s->id));
    resp_json(r, 200, res);
}

static void files(struct sbx *s, const struct request *rq, const char *path, struct resp *r)
{
    hull_error e = NULL;
    struct frame f;
    json_object *hdr = json_object_new_object();
    json_object_object_add(hdr, "path", json_object_new_string(path));
    bool put = strcmp(rq->method, "PUT") == 0;
    if (!put)
        json_object_object_add(hdr, "max", json_object_new_int64((int64_t)hulld.o->max_body));
    pthread_mutex_lock(&s->op);
    int ok = call(s, put ? "put" : "get", hdr, rq->body, put ? rq->len : 0, -1, &f, &e);
    pthread_mutex_unlock(&s->op);
    if (ok < 0) {
        resp_from_error(r, &e);
        return;
    }
    if (put) {
        json_object *o = json_object_new_object();
        char full[4200];
        snprintf(full, sizeof(full), "/tmp/%s", strncmp(path, "/tmp/", 5) == 0 ? path + 5 : path);
        json_object_object_add(o, "path", json_object_new_string(full));
        json_object_object_add(o, "size", json_object_new_int64((int64_t)rq->len));
        resp_json(r, 200, o);
    } else {
        r->status = 200;
        r->raw = f.data;
        r->raw_len = f.len;
        r->content_type = "application/octet-stream";
        f.data = NULL;
    }
    frame_free(&f);
}

/* POST /v1/sandboxes/{id}/timeout {"lifetime": "30m"}: a new idle
 * lifetime, counted from now. Not under the op lock: it changes no state
 * of the keeper, and must not wait for a long exec. */
static void set_timeout(struct sbx *s, const struct request *rq, struct resp *r)
{
    cleanup_json json_object *doc = NULL;
    if (request_doc(rq, false, &doc, r) < 0)
        return;
    json_object_object_foreach(doc, key, v)
    {
        (void)v;
        if (strcmp(key, "lifetime") != 0) {
            resp_error(r, 400, "invalid_request", key, "%s: unknown field (accepted: lifetime)",
                       key);
            return;
        }
    }
    unsigned lifetime;
    if (hj_get(doc, "lifetime") == NULL) {
        resp_error(r, 400, "invalid_request", "lifetime", "lifetime: required (\"30m\")");
        return;
    }
    if (take_lifetime(doc, &lifetime, r) < 0)
        return;
    pthread_mutex_lock(&tab_mu);
    s->lifetime_s = lifetime;
    s->last_used_ns = hull_monotonic_ns();
    s->last_used = time(NULL);
    pthread_mutex_unlock(&tab_mu);
    hull_error e = NULL;
    if (hull_sandbox_rec_lifetime(hulld.store, s->id, lifetime, &e) < 0)
        resp_store_error(r, &e);
    else
        answer(r, 200, s, NULL);
}

static void freeze(struct sbx *s, bool pause, struct resp *r)
{
    hull_error e = NULL;
    struct frame f;
    pthread_mutex_lock(&s->op);
    int ok = call(s, pause ? "pause" : "resume", NULL, NULL, 0, -1, &f, &e);
    if (ok == 0) {
        s->paused = pause;
        frame_free(&f);
    }
    /* A paused microVM is on disk: recorded so, it outlives hulld. */
    if (ok == 0 && s->microvm &&
        hull_sandbox_rec_state(hulld.store, s->id, pause ? "paused" : "running", NULL, &e) < 0) {
        hull_log(HULL_LOG_ERROR, "sandbox %s: %s", s->id, hull_error_msg(e));
        hull_error_free(&e);
    }
    pthread_mutex_unlock(&s->op);
    if (ok < 0)
        resp_from_error(r, &e);
    else
        answer(r, 200, s, NULL);
    if (ok == 0 && !pause && s->microvm)
        vmk_ports_renew(s->id, r); /* adopted after a restart: a new token */
}

void api_sandboxes(const struct request *rq, const char *id, const char *action, const char *path,
                   struct resp *r)
{
    const char *tenant = rq->caller->tenant;
    hull_error e = NULL;
    if (id == NULL) {
        if (strcmp(rq->method, "POST") == 0) {
            create(rq, r);
            return;
        }
        json_object *o = hull_sandbox_rec_list(hulld.store, tenant, &e);
        if (o == NULL)
            resp_store_error(r, &e);
        else if (sbx_meta_filter(rq, o, r) < 0)
            json_object_put(o);
        else {
            cluster_list_merge(rq, o, tenant);
            resp_json(r, 200, o);
        }
        return;
    }
    snprintf(r->target, sizeof(r->target), "%s", id);
    struct sbx *s = find(id, tenant);
    if (s == NULL) {
        /* Not live: a destroyed one can still be looked at. */
        json_object *o = action == NULL && strcmp(rq->method, "GET") == 0
                             ? hull_sandbox_rec_get(hulld.store, id, tenant, &e)
                             : NULL;
        if (o) {
            sbx_meta_show(o);
            cluster_annotate(o);
        }
        if (o)
            resp_json(r, 200, o);
        else if (e && hull_error_code(e) != ENOENT)
            resp_store_error(r, &e);
        else
            resp_error(r, 404, "not_found", NULL, "sandbox '%s' not found", id);
        hull_error_free(&e); /* none, or ENOENT: the 404 says it */
        return;
    }
    if (action == NULL && strcmp(rq->method, "DELETE") == 0) {
        destroy(s, "deleted");
        json_object *o = json_object_new_object();
        json_object_object_add(o, "id", json_object_new_string(id));
        json_object_object_add(o, "state", json_object_new_string("destroyed"));
        resp_json(r, 200, o);
    } else if (action == NULL) {
        answer(r, 200, s, NULL);
    } else if (strcmp(action, "exec") == 0) {
        exec_in(s, rq, r);
    } else if (strcmp(action, "ports") == 0) {
        sbx_ports_api(s, rq, path, r);
    } else if (strcmp(action, "files") == 0) {
        files(s, rq, path, r);
    } else if (strcmp(action, "timeout") == 0) {
        set_timeout(s, rq, r);
    } else if (strcmp(action, "processes") == 0) {
        sbx_processes(s, rq, path, r);
    } else if (strcmp(action, "metrics") == 0) {
        sbx_metrics_answer(s->id, rq, r);
    } else if (strcmp(action, "migrate") == 0) {
        sbx_migrate(rq, s->id, r); /* cluster_move.c */
    } else {
        freeze(s, strcmp(action, "pause") == 0, r);
    }
    if (s->gone) {
        pthread_mutex_lock(&tab_mu);
        bool listed = false;
        for (struct sbx *t = table; t; t = t->next)
            listed = listed || t == s;
        pthread_mutex_unlock(&tab_mu);
        if (listed) {
            if (hull_sandbox_rec_state(hulld.store, s->id, "destroyed", "its keeper died", &e) <
                0) {
                hull_log(HULL_LOG_ERROR, "sandbox %s: %s", s->id, hull_error_msg(e));
                hull_error_free(&e);
            }
            unlink_sbx(s);
            sbx_ports_drop(s->id);
            if (s->pid > 0)
                waitpid(s->pid, NULL, 0); /* gone: its supervisor must be dead for cleanup */
            s->pid = -1;
            sweep_leftovers();
            if (s->microvm)
                sbx_vm_sweep(s->container); /* its QEMU outlives the keeper */
        }
    }
    unref(s);
}

void sandboxes_end(const char *id, const char *reason)
{
    struct sbx *s = find(id, NULL);
    if (s) {
        destroy(s, reason);
        unref(s);
    }
}

void sandboxes_reap(bool all)
{
    uint64_t now = hull_monotonic_ns();
    for (;;) {
        struct sbx *victim = NULL;
        pthread_mutex_lock(&tab_mu);
        for (struct sbx *s = table; s && !victim; s = s->next) {
            uint64_t used = __atomic_load_n(&s->last_used_ns, __ATOMIC_RELAXED);
            bool idle = used < now && now - used > (uint64_t)s->lifetime_s * 1000000000ull;
            if (all || s->gone || idle) {
                /* Busy right now is not idle: its request will touch it. */
                if (!all && pthread_mutex_trylock(&s->op) != 0)
                    continue;
                if (!all)
                    pthread_mutex_unlock(&s->op);
                victim = s;
                s->refs++;
            }
        }
        pthread_mutex_unlock(&tab_mu);
        if (victim == NULL)
            return;
        if (all && victim->microvm && victim->paused) {
            /* On disk: its keeper goes, the sandbox stays for the next hulld. */
            hull_log(HULL_LOG_INFO, "sandbox %s: paused on disk, kept", victim->id);
            unlink_sbx(victim);
            unref(victim);
            continue;
        }
        hull_log(HULL_LOG_INFO, "sandbox %s: %s", victim->id,
                 all ? "destroyed at shutdown" : "lifetime over, destroyed");
        destroy(victim, all ? "hulld stopped" : "lifetime expired");
        unref(victim);
    }
}

size_t sandboxes_brief(struct sbx_brief **out)
{
    pthread_mutex_lock(&tab_mu);
    size_t n = 0;
    for (struct sbx *s = table; s; s = s->next)
        n++;
    struct sbx_brief *b = n ? calloc(n, sizeof(*b)) : NULL;
    n = 0;
    for (struct sbx *s = table; b && s; s = s->next, n++) {
        snprintf(b[n].id, sizeof(b[n].id), "%s", s->id);
        snprintf(b[n].tenant, sizeof(b[n].tenant), "%s", s->tenant);
        snprintf(b[n].container, sizeof(b[n].container), "%s", s->container);
    }
    pthread_mutex_unlock(&tab_mu);
    *out = b;
    return n;
}
