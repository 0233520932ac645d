/* hulld --cluster: draining a node (move.h, docs/cluster.md "Draining a
 * node"). The mark is in Redis (hull_cluster_drain_mark: by POST
 * /v1/nodes/{name}/drain on any node, or `hull cluster drain`), so the
 * node acts on it whoever set it: its heartbeat sees the mark and a thread
 * of its own moves each running microVM sandbox to the node placement
 * picks (a draining node is never picked), one after another, writing
 * the report to Redis after each. Container sandboxes and paused microVM
 * sandboxes stay, said so in the report. */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cluster.h"
#include "daemon.h"
#include "move.h"
#include "sbx_metrics.h"
#include "service/cluster.h"
#include "util/clock.h"
#include "util/error.h"
#include "util/json.h"
#include "util/log.h"

#define DRAIN_WAIT_MS (3600 * 1000) /* the longest POST .../drain waits for the report */

static pthread_mutex_t drain_mu = PTHREAD_MUTEX_INITIALIZER;
static bool draining_now;

static json_object *item(const char *id, const char *iso, const char *result)
{
    json_object *o = json_object_new_object();
    json_object_object_add(o, "id", json_object_new_string(id));
    json_object_object_add(o, "isolation", json_object_new_string(iso));
    json_object_object_add(o, "result", json_object_new_string(result));
    return o;
}

/* Where sandbox id goes: placement's pick among the other nodes. */
static int pick(const char *id, char *to, size_t len, hull_error *err)
{
    cleanup_json json_object *rec = cluster_sbx_record(id, err);
    cleanup_json json_object *ns = rec ? cluster_nodes_now(err) : NULL;
    if (ns == NULL)
        return -1;
    json_object *mem = hj_get(rec, "memory"), *cpu = hj_get(rec, "cpu");
    struct hull_place_req q = {
        .policy = hulld.o->placement,
        .memory = mem ? strtoull(json_object_get_string(mem), NULL, 10) : 0,
        .cpu = cpu ? (unsigned)strtoul(json_object_get_string(cpu), NULL, 10) : 0,
        .microvm = true,
    };
    return hull_cluster_place(ns, &q, to, len, err);
}

/* One sandbox of this node: moved, or why not. */
static json_object *drain_one(const char *id)
{
    hull_error e = NULL;
    cleanup_json json_object *rec = hull_sandbox_rec_get(hulld.store, id, NULL, &e);
    json_object *iso = hj_get(rec, "isolation"), *st = hj_get(rec, "state");
    if (rec == NULL) {
        json_object *o = item(id, "?", "failed");
        json_object_object_add(o, "error", json_object_new_string(hull_error_msg(e)));
        hull_error_free(&e);
        return o;
    }
    if (iso == NULL || strcmp(json_object_get_string(iso), "microvm") != 0) {
        json_object *o = item(id, "container", "stays");
        json_object_object_add(o, "reason",
                               json_object_new_string("a container sandbox does not move: it "
                                                      "runs here until deleted or its lifetime "
                                                      "ends"));
        return o;
    }
    if (st && strcmp(json_object_get_string(st), "paused") == 0) {
        json_object *o = item(id, "microvm", "stays");
        json_object_object_add(o, "reason",
                               json_object_new_string("paused (on disk): resume it and drain "
                                                      "again, or delete it"));
        return o;
    }
    char to[HULL_NODE_NAME_MAX + 1];
    json_object *res = NULL;
    int status = 0;
    if (pick(id, to, sizeof(to), &e) < 0 || cluster_move(id, to, false, &res, &status, &e) < 0) {
        json_object *o = item(id, "microvm", "failed");
        json_object_object_add(o, "error", json_object_new_string(hull_error_msg(e)));
        json_object_object_add(o, "node", json_object_new_string(cluster_self()));
        hull_error_free(&e);
        return o;
    }
    json_object *o = item(id, "microvm", "moved");
    json_object_object_foreach(res, k, v)
    {
        if (strcmp(k, "id") != 0)
            json_object_object_add(o, k, json_object_get(v));
    }
    json_object_put(res);
    return o;
}

static void put(redisContext *c, json_object *report)
{
    hull_error e = NULL;
    if (hull_cluster_drain_put(c, cluster_self(), report, &e) < 0) {
        hull_warn("cluster: drain report: %s", hull_error_msg(e));
        hull_error_free(&e);
    }
}

static void *drain_main(void *arg)
{
    (void)arg;
    hull_error e = NULL;
    redisContext *c = hull_redis_connect(hulld.o->cluster_url, 3000, &e);
    if (c == NULL) {
        hull_warn("cluster: drain: %s", hull_error_msg(e));
        hull_error_free(&e);
    }
    char now[40];
    hull_rfc3339_now(now, sizeof(now));
    cleanup_json json_object *report = json_object_new_object();
    json_object *list = json_object_new_array();
    json_object_object_add(report, "node", json_object_new_string(cluster_self()));
    json_object_object_add(report, "state", json_object_new_string("draining"));
    json_object_object_add(report, "started", json_object_new_string(now));
    json_object_object_add(report, "sandboxes", list);
    if (c)
        put(c, report);
    hull_log(HULL_LOG_INFO, "cluster: draining node %s", cluster_self());
    struct sbx_brief *b = NULL;
    size_t n = sandboxes_brief(&b);
    unsigned counts[3] = {0}; /* moved, stays, failed */
    for (size_t i = 0; i < n; i++) {
        json_object *o = drain_one(b[i].id);
        const char *res = json_object_get_string(hj_get(o, "result"));
        counts[res[0] == 'm' ? 0 : res[0] == 's' ? 1 : 2]++;
        hull_log(HULL_LOG_INFO, "cluster: drain: sandbox %s: %s", b[i].id, res);
        json_object_array_add(list, o);
        if (c)
            put(c, report);
    }
    free(b);
    hull_rfc3339_now(now, sizeof(now));
    json_object_object_add(report, "state", json_object_new_string("done"));
    json_object_object_add(report, "finished", json_object_new_string(now));
    json_object_object_add(report, "moved", json_object_new_int((int)counts[0]));
    json_object_object_add(report, "stayed", json_object_new_int((int)counts[1]));
    json_object_object_add(report, "failed", json_object_new_int((int)counts[2]));
    if (c)
        put(c, report);
    hull_redis_close(c);
    pthread_mutex_lock(&drain_mu);
    draining_now = false;
    pthread_mutex_unlock(&drain_mu);
    return NULL;
}

void cluster_drain_check(struct redisContext *c)
{
    hull_error e = NULL;
    int on = hull_cluster_draining(c, cluster_self(), &e);
    cleanup_json json_object *rep =
        on == 1 ? hull_cluster_drain_report(c, cluster_self(), &e) : NULL;
    hull_error_free(&e); /* not draining, or asked again at the next beat */
    json_object *st = hj_get(rep, "state");
    if (st == NULL || strcmp(json_object_get_string(st), "requested") != 0)
        return;
    pthread_mutex_lock(&drain_mu);
    bool start = !draining_now && !hulld.draining;
    if (start)
        draining_now = true;
    pthread_mutex_unlock(&drain_mu);
    if (!start)
        return;
    int rc = daemon_thread(drain_main, NULL);
    if (rc != 0) {
        hull_warn("cluster: drain: no thread: %s (tried again at the next beat)", strerror(rc));
        pthread_mutex_lock(&drain_mu);
        draining_now = false;
        pthread_mutex_unlock(&drain_mu);
    }
}

/* ---- single moves asked through Redis (hull_cluster_move_ask) ---- */

struct move_ask {
    char ticket[HULL_MOVE_TICKET_LEN];
    char id[64], to[HULL_NODE_NAME_MAX + 1];
    bool cold;
};

static json_object *move_state(const struct move_ask *m, const char *state, int status)
{
    json_object *o = json_object_new_object();
    json_object_object_add(o, "state", json_object_new_string(state));
    json_object_object_add(o, "id", json_object_new_string(m->id));
    json_object_object_add(o, "from", json_object_new_string(cluster_self()));
    json_object_object_add(o, "to", json_object_new_string(m->to));
    if (status)
        json_object_object_add(o, "status", json_object_new_int(status));
    return o;
}

static void move_put(redisContext *c, const struct move_ask *m, json_object *st)
{
    hull_error e = NULL;
    if (c && hull_cluster_move_state_put(c, m->ticket, st, &e) < 0) {
        hull_warn("cluster: move %s of sandbox %s: %s", m->ticket, m->id, hull_error_msg(e));
        hull_error_free(&e);
    }
    json_object_put(st);
}

/* One move, as POST /v1/sandboxes/{id}/migrate would make it, answered
 * under its ticket. */
static void *move_main(void *arg)
{
    struct move_ask *m = arg;
    hull_error e = NULL;
    redisContext *c = hull_redis_connect(hulld.o->cluster_url, 3000, &e);
    if (c == NULL) {
        /* Nobody could learn the outcome: the move is not made. */
        hull_warn("cluster: move of sandbox %s: %s", m->id, hull_error_msg(e));
        hull_error_free(&e);
        free(m);
        return NULL;
    }
    json_object *res = NULL;
    int status = 404;
    if (!sandboxes_alive(m->id, NULL))
        hull_error_set(&e, ENOENT, "sandbox '%s' does not run on node %s (moved or gone)", m->id,
                       cluster_self());
    else
        move_put(c, m, move_state(m, "moving", 0));
    if (e == NULL && cluster_move(m->id, m->to, m->cold, &res, &status, &e) == 0) {
        json_object *st = move_state(m, "done", 200);
        json_object_object_add(st, "result", res);
        move_put(c, m, st);
    } else {
        json_object *st = move_state(m, "done", status);
        json_object_object_add(st, "error", json_object_new_string(hull_error_msg(e)));
        hull_error_free(&e);
        move_put(c, m, st);
    }
    hull_redis_close(c);
    free(m);
    return NULL;
}

static struct move_ask *move_parse(json_object *q)
{
    const char *ticket = json_object_get_string(hj_get(q, "ticket"));
    const char *id = json_object_get_string(hj_get(q, "id"));
    const char *to = json_object_get_string(hj_get(q, "to"));
    const char *mode = json_object_get_string(hj_get(q, "mode"));
    if (!ticket || strlen(ticket) != HULL_MOVE_TICKET_LEN - 1 || !id || !*id || strlen(id) >= 64 ||
        !to || hull_node_name_check(to, NULL) < 0 || !mode)
        return NULL;
    struct move_ask *m = calloc(1, sizeof(*m));
    if (m == NULL)
        return NULL;
    snprintf(m->ticket, sizeof(m->ticket), "%s", ticket);
    snprintf(m->id, sizeof(m->id), "%s", id);
    snprintf(m->to, sizeof(m->to), "%s", to);
    m->cold = strcmp(mode, "cold") == 0;
    return m;
}

void cluster_moves_check(struct redisContext *c)
{
    hull_error e = NULL;
    cleanup_json json_object *a = hull_cluster_moves_take(c, cluster_self(), &e);
    if (a == NULL) {
        hull_error_free(&e); /* asked again at the next beat */
        return;
    }
    for (size_t i = 0; i < json_object_array_length(a); i++) {
        struct move_ask *m = move_parse(json_object_array_get_idx(a, i));
        if (m == NULL) {
            hull_warn("cluster: a move asked of this node is not one: %s",
                      json_object_to_json_string(json_object_array_get_idx(a, i)));
            continue;
        }
        if (daemon_thread(move_main, m) != 0) {
            json_object *st = move_state(m, "done", 503);
            json_object_object_add(st, "error", json_object_new_string("no thread for the move"));
            move_put(c, m, st);
            free(m);
        }
    }
}

/* ---- POST|GET /v1/nodes/{name}/drain ---- */

static bool node_up(const char *name)
{
    hull_error e = NULL;
    cleanup_json json_object *ns = cluster_nodes_now(&e);
    hull_error_free(&e); /* unknown now: taken as up, asked again */
    for (size_t i = 0; ns && i < json_object_array_length(ns); i++) {
        json_object *n = json_object_array_get_idx(ns, i);
        if (strcmp(json_object_get_string(hj_get(n, "name")), name) == 0)
            return strcmp(json_object_get_string(hj_get(n, "state")), "up") == 0;
    }
    return ns == NULL;
}

void api_node_drain(const struct request *rq, const char *name, struct resp *r)
{
    if (!cluster_enabled()) {
        resp_error(r, 404, "not_found", NULL, "hulld is not part of a cluster (hulld --cluster)");
        return;
    }
    if (!rq->caller->admin) {
        resp_error(r, 403, "forbidden", NULL,
                   "draining a node needs an admin token: it moves every tenant's sandboxes");
        return;
    }
    hull_error e = NULL;
    cleanup_redis redisContext *c = hull_redis_connect(hulld.o->cluster_url, 3000, &e);
    const char *wait = request_query(rq, "wait");
    bool post = strcmp(rq->method, "POST") == 0;
    int marked = c && post ? hull_cluster_drain_mark(c, name, &e) : 0;
    json_object *rep = c && marked == 0 ? hull_cluster_drain_report(c, name, &e) : NULL;
    int64_t end = hull_monotonic_ms() + DRAIN_WAIT_MS;
    unsigned polls = 0;
    while (post && rep && !(wait && strcmp(wait, "false") == 0) &&
           strcmp(json_object_get_string(hj_get(rep, "state")), "done") != 0 &&
           hull_monotonic_ms() < end) {
        if (++polls % 8 == 0 && !node_up(name)) {
            json_object_put(rep);
            resp_error(r, 409, "node_down", NULL,
                       "node %s is down: it cannot move its sandboxes (they are lost)", name);
            return;
        }
        usleep(250000);
        json_object_put(rep);
        rep = hull_cluster_drain_report(c, name, &e);
    }
    if (rep == NULL) {
        int code = hull_error_code(e);
        resp_error(r, code == ENOENT ? 404 : 503,
                   code == ENOENT ? "not_found" : "cluster_unavailable", NULL, "%s",
                   hull_error_msg(e));
        hull_error_free(&e);
        return;
    }
    bool done = strcmp(json_object_get_string(hj_get(rep, "state")), "done") == 0;
    resp_json(r, post && !done ? 202 : 200, rep);
}
