/* hulld --cluster: where a sandbox request is served (cluster.h).
 *
 * POST /v1/sandboxes is placed: "placement" ({"node": NAME},
 * {"labels": {KEY: VALUE}}, {"anti_affinity": {KEY: VALUE}}) is taken out
 * of the body, the nodes (and, for anti-affinity, every sandbox record)
 * are read from Redis and one is chosen by the policy (hull_cluster_place) with the
 * request's predicted memory: what sandboxes of the same image used so far
 * (EWMA), else its memory limit. Placed here: served here. Placed on
 * another node: forwarded to it pinned ("placement": {"node": it}), so it
 * does not place again. A request for a sandbox id this node does not run
 * goes to the node Redis says runs it; when that node is down the sandbox
 * is "lost". A forwarded request (CLUSTER_FORWARDED_HEADER) is never
 * forwarded again. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cluster.h"
#include "daemon.h"
#include "service/cluster.h"
#include "util/error.h"
#include "util/json.h"
#include "util/log.h"

#define DEFAULT_MEMORY (256ull << 20)

static bool forwarded(const struct request *rq)
{
    return rq->header && rq->header(rq->conn, CLUSTER_FORWARDED_HEADER) != NULL;
}

/* An object of strings (at most max pairs, none empty when nonempty). */
static bool strings_object(json_object *v, int max, bool nonempty)
{
    bool ok = json_object_is_type(v, json_type_object) && json_object_object_length(v) <= max &&
              (!nonempty || json_object_object_length(v) > 0);
    if (ok) {
        json_object_object_foreach(v, lk, lv)
        {
            (void)lk;
            ok = ok && json_object_is_type(lv, json_type_string);
        }
    }
    return ok;
}

/* What "placement" asks for, besides a pin and node labels. */
struct place_extra {
    json_object *anti; /* anti_affinity */
    bool required;     /* anti_affinity_required */
};

/* "placement" checked: 0, or -1 with a 400 naming the field. */
static int take_placement(json_object *doc, const char **pin, json_object **labels,
                          struct place_extra *x, struct resp *r)
{
    json_object *p = hj_get(doc, "placement");
    *pin = NULL;
    *labels = NULL;
    *x = (struct place_extra){0};
    if (p == NULL)
        return 0;
    if (!json_object_is_type(p, json_type_object)) {
        resp_error(r, 400, "invalid_request", "placement",
                   "placement: must be an object ({\"node\": NAME} or {\"labels\": {...}})");
        return -1;
    }
    json_object_object_foreach(p, k, v)
    {
        if (strcmp(k, "node") == 0) {
            hull_error e = NULL;
            if (!json_object_is_type(v, json_type_string) ||
                hull_node_name_check(json_object_get_string(v), &e) < 0) {
                resp_error(r, 400, "invalid_request", "placement.node",
                           "placement.node: must be a node name%s%s", e ? ": " : "",
                           e ? hull_error_msg(e) : "");
                hull_error_free(&e);
                return -1;
            }
            *pin = json_object_get_string(v);
        } else if (strcmp(k, "labels") == 0) {
            if (!strings_object(v, 64, false)) {
                resp_error(r, 400, "invalid_request", "placement.labels",
                           "placement.labels: must be an object of strings");
                return -1;
            }
            *labels = v;
        } else if (strcmp(k, "anti_affinity") == 0) {
            if (!strings_object(v, SBX_META_KEYS, true)) {
                resp_error(r, 400, "invalid_request", "placement.anti_affinity",
                           "placement.anti_affinity: must be an object of 1 to %d strings "
                           "(metadata pairs to keep apart, {\"app\": \"web\"})",
                           SBX_META_KEYS);
                return -1;
            }
            x->anti = v;
        } else if (strcmp(k, "anti_affinity_required") == 0) {
            if (!json_object_is_type(v, json_type_boolean)) {
                resp_error(r, 400, "invalid_request", "placement.anti_affinity_required",
                           "placement.anti_affinity_required: must be true or false");
                return -1;
            }
            x->required = json_object_get_boolean(v);
        } else {
            char path[80];
            snprintf(path, sizeof(path), "placement.%.60s", k);
            resp_error(r, 400, "invalid_request", path,
                       "%s: unknown field (accepted: node, labels, anti_affinity, "
                       "anti_affinity_required)",
                       path);
            return -1;
        }
    }
    if (x->required && x->anti == NULL) {
        resp_error(r, 400, "invalid_request", "placement.anti_affinity_required",
                   "placement.anti_affinity_required: only with placement.anti_affinity");
        return -1;
    }
    return 0;
}

/* The memory the request asks for (limits.memory), else the default; a
 * bad value is left for the request's own checks (any here). */
static uint64_t asked_memory(json_object *doc)
{
    json_object *l = hj_get(doc, "limits"), *m = l ? hj_get(l, "memory") : NULL;
    uint64_t v = 0;
    if (m && json_object_is_type(m, json_type_int) && json_object_get_int64(m) > 0)
        return (uint64_t)json_object_get_int64(m);
    if (m && json_object_is_type(m, json_type_string) &&
        hull_parse_size(json_object_get_string(m), &v) == 0 && v > 0)
        return v;
    return DEFAULT_MEMORY;
}

static void place_error(struct resp *r, hull_error *e)
{
    switch (hull_error_code(*e)) {
    case EINVAL:
        resp_error(r, 400, "invalid_request", "placement.node", "%s", hull_error_msg(*e));
        break;
    case EHOSTDOWN:
    case ENOSPC:
        resp_error(r, 409, "no_capacity", NULL, "%s", hull_error_msg(*e));
        break;
    default:
        resp_error(r, 503, "cluster_unavailable", NULL, "%s", hull_error_msg(*e));
        r->retry_after = 2;
    }
    hull_error_free(e);
}

static int place(const struct request *rq, char **body, struct resp *r)
{
    cleanup_json json_object *doc = NULL;
    if (request_doc(rq, true, &doc, r) < 0)
        return 1;
    if (!json_object_is_type(doc, json_type_object))
        return 0; /* the request's own checks say what is wrong */
    const char *pin;
    json_object *labels;
    struct place_extra x;
    if (take_placement(doc, &pin, &labels, &x, r) < 0)
        return 1;
    char pinned[HULL_NODE_NAME_MAX + 1] = "";
    snprintf(pinned, sizeof(pinned), "%s", pin ? pin : "");
    cleanup_json json_object *lab = labels ? json_object_get(labels) : NULL;
    cleanup_json json_object *anti = x.anti ? json_object_get(x.anti) : NULL;
    json_object_object_del(doc, "placement");
    if (cluster_restart_take(doc, false, r) < 0)
        return 1;

    /* The prediction: what this template's or image's sandboxes used, else
     * the limit. A template lives in one node's state directory: its
     * sandboxes stay on the node that has it (the receiving one, unless
     * pinned). */
    json_object *img = hj_get(doc, "image"), *iso = hj_get(doc, "isolation");
    json_object *tpl = hj_get(doc, "template");
    /* Per tenant: another tenant's sandboxes (its template of the same
     * name, its heavy use of a shared image) must not move this one's
     * prediction, and so its placement. */
    const char *tenant = rq->caller->tok.tenant;
    char key[512];
    if (tpl && json_object_is_type(tpl, json_type_string))
        snprintf(key, sizeof(key), "%s/template:%s", tenant, json_object_get_string(tpl));
    else
        snprintf(key, sizeof(key), "%s/%s", tenant,
                 img && json_object_is_type(img, json_type_string) ? json_object_get_string(img)
                                                                   : "-");
    if (tpl && pinned[0] == '\0')
        snprintf(pinned, sizeof(pinned), "%s", cluster_self());
    uint64_t limit = asked_memory(doc), mem = limit;
    unsigned cpu = 0, samples = 0;
    hull_error e = NULL;
    if (cluster_prediction(key, &mem, &cpu, &samples, &e) < 0) {
        place_error(r, &e);
        return 1;
    }
    if (samples == 0 || mem == 0 || mem > limit)
        mem = limit;

    char target[HULL_NODE_NAME_MAX + 1];
    if (forwarded(rq)) {
        /* Placed by the node that sent it: here, or refused. */
        if (pinned[0] && strcmp(pinned, cluster_self()) != 0) {
            resp_error(r, 409, "conflict", "placement.node",
                       "placement.node: forwarded to %s for node %s", cluster_self(), pinned);
            return 1;
        }
        snprintf(target, sizeof(target), "%s", cluster_self());
    } else {
        cleanup_json json_object *ns = cluster_nodes_now(&e);
        /* Anti-affinity looks at every sandbox of the fleet, this node's too. */
        cleanup_json json_object *all = ns && anti ? cluster_sbx_all_now(&e) : NULL;
        struct hull_place_req q = {.policy = hulld.o->placement,
                                   .pin = pinned[0] ? pinned : NULL,
                                   .labels = lab,
                                   .memory = mem,
                                   .cpu = cpu,
                                   .microvm =
                                       iso && strcmp(json_object_get_string(iso), "microvm") == 0,
                                   .anti = anti,
                                   .tenant = tenant,
                                   .sandboxes = all,
                                   .anti_required = x.required};
        if (ns == NULL || (anti && all == NULL) ||
            hull_cluster_place(ns, &q, target, sizeof(target), &e) < 0) {
            place_error(r, &e);
            return 1;
        }
        if (strcmp(target, cluster_self()) != 0) {
            json_object *p = json_object_new_object();
            json_object_object_add(p, "node", json_object_new_string(target));
            json_object_object_add(doc, "placement", p);
            const char *text = hj_to_string(doc);
            json_object *node = NULL;
            for (size_t i = 0; i < json_object_array_length(ns); i++) {
                json_object *n = json_object_array_get_idx(ns, i), *v = hj_get(n, "name");
                if (v && strcmp(json_object_get_string(v), target) == 0)
                    node = n;
            }
            json_object *addr = node ? hj_get(node, "address") : NULL;
            hull_log(HULL_LOG_DEBUG, "cluster: sandbox placed on %s", target);
            cluster_forward(rq, addr ? json_object_get_string(addr) : "", text, strlen(text), r);
            return 1;
        }
    }
    if (cluster_restart_take(doc, true, r) < 0) /* served here: taken */
        return 1;
    json_object *meta = hj_get(doc, "metadata");
    cluster_placed(key, mem, cpu,
                   meta && json_object_is_type(meta, json_type_object)
                       ? json_object_to_json_string_ext(meta, JSON_C_TO_STRING_PLAIN)
                       : NULL);
    *body = strdup(hj_to_string(doc));
    if (*body == NULL) {
        resp_error(r, 500, "internal", NULL, "out of memory");
        return 1;
    }
    return 0;
}

/* The sandbox lives on node, which is down. */
static int lost(const struct request *rq, json_object *rec, const char *node, struct resp *r)
{
    const char *id = json_object_get_string(hj_get(rec, "id"));
    char plain[96];
    snprintf(plain, sizeof(plain), "/v1/sandboxes/%s", id);
    bool whole = strcmp(rq->path, plain) == 0;
    if (whole && strcmp(rq->method, "GET") == 0) {
        json_object *o = json_object_new_object();
        static const char *const keep[] = {"id", "node", "tenant", "isolation"};
        for (size_t k = 0; k < 4; k++) {
            json_object *v = hj_get(rec, keep[k]);
            if (v)
                json_object_object_add(o, keep[k], json_object_get(v));
        }
        json_object_object_add(o, "state", json_object_new_string("lost"));
        json_object_object_add(o, "reason",
                               json_object_new_string("its node stopped sending heartbeats"));
        resp_json(r, 200, o);
        return 1;
    }
    if (whole && strcmp(rq->method, "DELETE") == 0) {
        /* Forgotten: its node, when it comes back, has it no more either
         * (a restarted hulld destroys what it kept). */
        hull_error e = NULL;
        if (cluster_sbx_forget(node, id, &e) < 0) {
            resp_error(r, 503, "cluster_unavailable", NULL, "%s", hull_error_msg(e));
            hull_error_free(&e);
            return 1;
        }
        json_object *o = json_object_new_object();
        json_object_object_add(o, "id", json_object_new_string(id));
        json_object_object_add(o, "state", json_object_new_string("destroyed"));
        resp_json(r, 200, o);
        return 1;
    }
    resp_error(r, 409, "lost", NULL, "sandbox '%s' is lost: its node %s is down", id, node);
    return 1;
}

int cluster_request(const struct request *rq, const char *id, char **body, struct resp *r)
{
    *body = NULL;
    if (!cluster_enabled())
        return 0;
    if (id == NULL)
        return strcmp(rq->method, "POST") == 0 ? place(rq, body, r) : 0;
    if (forwarded(rq) || sandboxes_alive(id, NULL))
        return 0;
    hull_error e = NULL;
    cleanup_json json_object *rec = cluster_sbx_record(id, &e);
    if (rec == NULL && hull_error_code(e) != ENOENT) {
        /* Where it lives cannot be known now: not a 404. */
        resp_error(r, 503, "cluster_unavailable", NULL, "%s", hull_error_msg(e));
        r->retry_after = 2;
        hull_error_free(&e);
        return 1;
    }
    if (rec == NULL) {
        hull_error_free(&e); /* this node's store answers (404, or a destroyed one) */
        return 0;
    }
    json_object *nv = hj_get(rec, "node"), *tv = hj_get(rec, "tenant");
    const char *node = nv ? json_object_get_string(nv) : "";
    const char *tenant = rq->caller->tenant;
    if (strcmp(node, cluster_self()) == 0 ||
        (tenant && (tv == NULL || strcmp(json_object_get_string(tv), tenant) != 0)))
        return 0;
    cleanup_json json_object *ns = cluster_nodes_now(&e);
    if (ns == NULL) {
        resp_error(r, 503, "cluster_unavailable", NULL, "%s", hull_error_msg(e));
        hull_error_free(&e);
        return 1;
    }
    json_object *n = NULL;
    for (size_t i = 0; i < json_object_array_length(ns); i++) {
        json_object *x = json_object_array_get_idx(ns, i), *v = hj_get(x, "name");
        if (v && strcmp(json_object_get_string(v), node) == 0)
            n = x;
    }
    json_object *st = n ? hj_get(n, "state") : NULL, *addr = n ? hj_get(n, "address") : NULL;
    if (st == NULL || strcmp(json_object_get_string(st), "up") != 0 || addr == NULL)
        return lost(rq, rec, node, r);
    cluster_forward(rq, json_object_get_string(addr), rq->body, rq->len, r);
    return 1;
}
