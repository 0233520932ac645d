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
    if (!s->gone && sbx_keeper_send(s, "destroy", NULL, NULL, 0, -1, &f, &e) == 0)
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
    sbx_unlink(s);
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
    sbx_table_lock();
    t += s->lifetime_s;
    sbx_table_unlock();
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
    char id[sizeof(((struct sbx *)0)->id)];
    daemon_new_id(id, sizeof(id), 's');
    struct sbx *s = sbx_new(id, c->tok.tenant, "");
    if (s == NULL) {
        resp_error(r, 500, "internal", NULL, "out of memory");
        return NULL;
    }
    s->lifetime_s = lifetime;
    snprintf(r->target, sizeof(r->target), "%s", s->id);
    sbx_table_lock();
    bool full = sbx_tenant_count_locked(c->tok.tenant) >= hulld.o->tenant_sandboxes;
    bool draining = hulld.draining;
    if (!full && !draining)
        sbx_table_insert_locked(s);
    sbx_table_unlock();
    if (full) {
        resp_error(r, 429, "quota_exceeded", NULL, "tenant %s has %u sandboxes, its quota",
                   c->tok.tenant, hulld.o->tenant_sandboxes);
        r->retry_after = 5;
    } else if (draining) {
        resp_shutting_down(r, "hulld is shutting down");
    }
    if (full || draining) {
        sbx_release(s);
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
        request_image(doc, NULL, r) < 0)
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
        sbx_keeper_send(s, "create", NULL, text, strlen(text), tpl.vm ? tpl.snap : -1, &f, &e) <
            0) {
        if (e == NULL)
            hull_error_errno(&e, "eventfd");
        pthread_mutex_unlock(&s->op);
        resp_from_error(r, &e);
        s->gone = true;
        sbx_unlink(s);
        sbx_release(s);
        return;
    }
    snprintf(s->container, sizeof(s->container), "%s",
             json_object_get_string(hj_get(f.hdr, "container")));
    frame_free(&f);
    s->attach_sock = sbx_attach_over(s, s->sock, &e);
    if (s->attach_sock < 0) { /* streams and waits will say so */
        hull_log(HULL_LOG_ERROR, "sandbox %s: %s", s->id, hull_error_msg(e));
        hull_error_free(&e);
    }
    pthread_mutex_unlock(&s->op);
    json_object *extra = NULL;
    if (tpl.on && tpl_apply(s, &tpl, rq, &extra, r) < 0) {
        destroy(s, "its template failed");
        sbx_release(s);
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
    sbx_release(s);
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
    ok = sbx_keeper_send(s, "exec", NULL, rq->body, rq->len, s->kill_fd, &f, &e);
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
    int ok = sbx_keeper_send(s, put ? "put" : "get", hdr, rq->body, put ? rq->len : 0, -1, &f, &e);
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
    sbx_table_lock();
    s->lifetime_s = lifetime;
    s->last_used_ns = hull_monotonic_ns();
    s->last_used = time(NULL);
    sbx_table_unlock();
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
    int ok = sbx_keeper_send(s, pause ? "pause" : "resume", NULL, NULL, 0, -1, &f, &e);
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
    struct sbx *s = sbx_find(id, tenant);
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
        if (sbx_listed(s)) {
            if (hull_sandbox_rec_state(hulld.store, s->id, "destroyed", "its keeper died", &e) <
                0) {
                hull_log(HULL_LOG_ERROR, "sandbox %s: %s", s->id, hull_error_msg(e));
                hull_error_free(&e);
            }
            sbx_unlink(s);
            sbx_ports_drop(s->id);
            if (s->pid > 0)
                waitpid(s->pid, NULL, 0); /* gone: its supervisor must be dead for cleanup */
            s->pid = -1;
            sweep_leftovers();
            if (s->microvm)
                sbx_vm_sweep(s->container); /* its QEMU outlives the keeper */
        }
    }
    sbx_release(s);
}

void sandboxes_end(const char *id, const char *reason)
{
    /* Another node has this sandbox now (moved, or restored while this one
     * was down). Marked ending first: from then on a request for it is
     * forwarded there, never answered by this copy, while the id still
     * counts as here, so it cannot move back in before this copy is gone. */
    struct sbx *s = sbx_find_to_end(id);
    if (s) {
        destroy(s, reason);
        sbx_release(s);
    }
}

void sandboxes_reap(bool all)
{
    uint64_t now = hull_monotonic_ns();
    for (;;) {
        struct sbx *victim = sbx_table_victim(all, now);
        if (victim == NULL)
            return;
        if (all && victim->microvm && victim->paused) {
            /* On disk: its keeper goes, the sandbox stays for the next hulld. */
            hull_log(HULL_LOG_INFO, "sandbox %s: paused on disk, kept", victim->id);
            sbx_unlink(victim);
            sbx_release(victim);
            continue;
        }
        hull_log(HULL_LOG_INFO, "sandbox %s: %s", victim->id,
                 all ? "destroyed at shutdown" : "lifetime over, destroyed");
        destroy(victim, all ? "hulld stopped" : "lifetime expired");
        sbx_release(victim);
    }
}
