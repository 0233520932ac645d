/* Draining a node (cluster.h): the mark in its hash, which placement
 * honours, and its report, which its hulld writes as it moves its microVM
 * sandboxes off (src/daemon/cluster_drain.c) and `hull cluster drain` and
 * POST /v1/nodes/{name}/drain read. Also single moves asked the same way,
 * through Redis, of the node that runs the sandbox. */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/random.h>

#include "service/cluster.h"
#include "util/error.h"
#include "util/json.h"

#define K "hull:cluster:"

/* KEYS[1] the node's hash, KEYS[2] its report; ARGV[1] the new report.
 * An unknown node is not made up: 0. */
static const char mark_lua[] = "if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end\n"
                               "redis.call('HSET', KEYS[1], 'draining', '1')\n"
                               "redis.call('SET', KEYS[2], ARGV[1])\n"
                               "return 1\n";

int hull_cluster_drain_mark(redisContext *c, const char *name, hull_error *err)
{
    char node[128], rep[128];
    snprintf(node, sizeof(node), K "node:%s", name);
    snprintf(rep, sizeof(rep), K "drain:%s", name);
    cleanup_json json_object *o = json_object_new_object();
    json_object_object_add(o, "node", json_object_new_string(name));
    json_object_object_add(o, "state", json_object_new_string("requested"));
    json_object_object_add(o, "sandboxes", json_object_new_array());
    const char *argv[] = {"EVAL", mark_lua,
                          "2",    node,
                          rep,    json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN)};
    cleanup_reply redisReply *r = hull_redis_cmdv(c, err, 6, argv);
    if (r == NULL)
        return hull_error_prefix(err, "cluster");
    if (hull_redis_int(r, 0) != 1)
        return hull_error_set(err, ENOENT, "no node named '%s' in the cluster", name);
    return 0;
}

/* The JSON object at key into *out: 1, 0 when there is none, -1 with
 * err when Redis failed. */
static int get_object(redisContext *c, const char *key, json_object **out, hull_error *err)
{
    *out = NULL;
    cleanup_reply redisReply *r = hull_redis_cmd(c, err, "GET", key, NULL);
    if (r == NULL)
        return hull_error_prefix(err, "cluster");
    const char *text = hull_redis_str(r);
    json_object *o = text ? json_tokener_parse(text) : NULL;
    if (o == NULL || !json_object_is_type(o, json_type_object)) {
        json_object_put(o);
        return 0;
    }
    *out = o;
    return 1;
}

json_object *hull_cluster_drain_report(redisContext *c, const char *name, hull_error *err)
{
    char rep[128];
    snprintf(rep, sizeof(rep), K "drain:%s", name);
    json_object *o;
    if (get_object(c, rep, &o, err) == 0)
        hull_error_set(err, ENOENT, "node '%s' was not drained", name);
    return o;
}

int hull_cluster_drain_put(redisContext *c, const char *name, json_object *report, hull_error *err)
{
    char rep[128];
    snprintf(rep, sizeof(rep), K "drain:%s", name);
    const char *argv[] = {"SET", rep,
                          json_object_to_json_string_ext(report, JSON_C_TO_STRING_PLAIN)};
    cleanup_reply redisReply *r = hull_redis_cmdv(c, err, 3, argv);
    return r ? 0 : hull_error_prefix(err, "cluster");
}

int hull_cluster_draining(redisContext *c, const char *name, hull_error *err)
{
    char node[128];
    snprintf(node, sizeof(node), K "node:%s", name);
    cleanup_reply redisReply *r = hull_redis_cmd(c, err, "HGET", node, "draining", NULL);
    if (r == NULL)
        return hull_error_prefix(err, "cluster");
    const char *v = hull_redis_str(r);
    return v && strcmp(v, "1") == 0 ? 1 : 0;
}

/* ---- single moves ---- */

#define MOVE_TTL "86400"

/* KEYS[1] the node's list, KEYS[2] the ticket's state; ARGV[1] the
 * request, ARGV[2] the first state. */
static const char ask_lua[] = "redis.call('SET', KEYS[2], ARGV[2], 'EX', " MOVE_TTL ")\n"
                              "redis.call('RPUSH', KEYS[1], ARGV[1])\n"
                              "redis.call('EXPIRE', KEYS[1], " MOVE_TTL ")\n"
                              "return 1\n";

int hull_cluster_move_ask(redisContext *c, const char *node, const char *id, const char *to,
                          bool cold, char ticket[HULL_MOVE_TICKET_LEN], hull_error *err)
{
    uint8_t b[16];
    if (getrandom(b, sizeof(b), 0) != (ssize_t)sizeof(b))
        return hull_error_errno(err, "getrandom");
    for (size_t i = 0; i < sizeof(b); i++)
        snprintf(ticket + 2 * i, 3, "%02x", b[i]);
    char list[128], key[128];
    snprintf(list, sizeof(list), K "moves:%s", node);
    snprintf(key, sizeof(key), K "move:%s", ticket);
    cleanup_json json_object *q = json_object_new_object();
    json_object_object_add(q, "ticket", json_object_new_string(ticket));
    json_object_object_add(q, "id", json_object_new_string(id));
    json_object_object_add(q, "to", json_object_new_string(to));
    json_object_object_add(q, "mode", json_object_new_string(cold ? "cold" : "live"));
    cleanup_json json_object *st = json_object_new_object();
    json_object_object_add(st, "state", json_object_new_string("requested"));
    json_object_object_add(st, "id", json_object_new_string(id));
    json_object_object_add(st, "from", json_object_new_string(node));
    json_object_object_add(st, "to", json_object_new_string(to));
    cleanup_free char *qt = strdup(json_object_to_json_string_ext(q, JSON_C_TO_STRING_PLAIN));
    const char *argv[] = {"EVAL",
                          ask_lua,
                          "2",
                          list,
                          key,
                          qt ? qt : "{}",
                          json_object_to_json_string_ext(st, JSON_C_TO_STRING_PLAIN)};
    cleanup_reply redisReply *r = hull_redis_cmdv(c, err, 7, argv);
    return r ? 0 : hull_error_prefix(err, "cluster");
}

json_object *hull_cluster_move_state(redisContext *c, const char *ticket, hull_error *err)
{
    char key[128];
    snprintf(key, sizeof(key), K "move:%s", ticket);
    json_object *o;
    if (get_object(c, key, &o, err) == 0)
        hull_error_set(err, ENOENT, "no move %s (asked more than a day ago?)", ticket);
    return o;
}

int hull_cluster_move_state_put(redisContext *c, const char *ticket, json_object *state,
                                hull_error *err)
{
    char key[128];
    snprintf(key, sizeof(key), K "move:%s", ticket);
    const char *argv[] = {"SET", key, json_object_to_json_string_ext(state, JSON_C_TO_STRING_PLAIN),
                          "EX", MOVE_TTL};
    cleanup_reply redisReply *r = hull_redis_cmdv(c, err, 5, argv);
    return r ? 0 : hull_error_prefix(err, "cluster");
}

static const char take_lua[] = "local v = redis.call('LRANGE', KEYS[1], 0, -1)\n"
                               "redis.call('DEL', KEYS[1])\n"
                               "return v\n";

json_object *hull_cluster_moves_take(redisContext *c, const char *name, hull_error *err)
{
    char list[128];
    snprintf(list, sizeof(list), K "moves:%s", name);
    const char *argv[] = {"EVAL", take_lua, "1", list};
    cleanup_reply redisReply *r = hull_redis_cmdv(c, err, 4, argv);
    if (r == NULL) {
        hull_error_prefix(err, "cluster");
        return NULL;
    }
    json_object *a = json_object_new_array();
    for (size_t i = 0; r->type == REDIS_REPLY_ARRAY && i < r->elements; i++) {
        const char *text = hull_redis_str(r->element[i]);
        json_object *o = text ? json_tokener_parse(text) : NULL;
        if (o && json_object_is_type(o, json_type_object))
            json_object_array_add(a, o);
        else
            json_object_put(o);
    }
    return a;
}
