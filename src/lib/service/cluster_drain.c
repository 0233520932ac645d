/* Draining a node (cluster.h): the mark in its hash, which placement
 * honours, and its report, which its hulld writes as it moves its microVM
 * sandboxes off (src/daemon/cluster_drain.c) and `hull cluster drain` and
 * POST /v1/nodes/{name}/drain read. */
#include <errno.h>
#include <stdio.h>
#include <string.h>

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

json_object *hull_cluster_drain_report(redisContext *c, const char *name, hull_error *err)
{
    char rep[128];
    snprintf(rep, sizeof(rep), K "drain:%s", name);
    cleanup_reply redisReply *r = hull_redis_cmd(c, err, "GET", rep, NULL);
    if (r == NULL) {
        hull_error_prefix(err, "cluster");
        return NULL;
    }
    const char *text = hull_redis_str(r);
    json_object *o = text ? json_tokener_parse(text) : NULL;
    if (o == NULL || !json_object_is_type(o, json_type_object)) {
        json_object_put(o);
        hull_error_set(err, ENOENT, "node '%s' was not drained", name);
        return NULL;
    }
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
