/* The fleet registry in Redis (cluster.h): nodes, heartbeats, sandbox
 * records and reservations. Changes that must not interleave with another
 * node's (a count and a reservation moved together) are Lua scripts,
 * which Redis runs atomically. */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "service/cluster.h"
#include "util/error.h"
#include "util/json.h"

#define K "hull:cluster:"

int hull_node_name_check(const char *name, hull_error *err)
{
    size_t n = name ? strlen(name) : 0;
    if (n == 0 || n > HULL_NODE_NAME_MAX)
        return hull_error_set(err, EINVAL, "node name: must be 1 to %d characters",
                              HULL_NODE_NAME_MAX);
    for (size_t i = 0; i < n; i++) {
        char ch = name[i];
        if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
              ch == '_' || ch == '.' || ch == '-'))
            return hull_error_set(err, EINVAL,
                                  "node name '%s': only letters, digits, '_', '.', '-'", name);
    }
    return 0;
}

/* Redis's clock in ms: the one clock every node shares. */
static int redis_now_ms(redisContext *c, long long *ms, hull_error *err)
{
    cleanup_reply redisReply *r = hull_redis_cmd(c, err, "TIME", NULL);
    if (r == NULL)
        return hull_error_prefix(err, "cluster");
    if (r->type != REDIS_REPLY_ARRAY || r->elements != 2)
        return hull_error_set(err, EPROTO, "cluster: TIME: unexpected reply");
    *ms = strtoll(hull_redis_str(r->element[0]), NULL, 10) * 1000 +
          strtoll(hull_redis_str(r->element[1]), NULL, 10) / 1000;
    return 0;
}

/* A reply with no use but its success. */
static int run(redisContext *c, hull_error *err, int argc, const char **argv)
{
    cleanup_reply redisReply *r = hull_redis_cmdv(c, err, argc, argv);
    return r ? 0 : hull_error_prefix(err, "cluster");
}

/* KEYS[1] the node's sandbox set; ARGV[1] the record prefix, ARGV[2] the
 * node: its records go (only those still naming it). */
static const char forget_lua[] =
    "local ids = redis.call('SMEMBERS', KEYS[1])\n"
    "for _, id in ipairs(ids) do\n"
    "  local k = ARGV[1] .. id\n"
    "  if redis.call('HGET', k, 'node') == ARGV[2] then redis.call('DEL', k) end\n"
    "end\n"
    "redis.call('DEL', KEYS[1])\n"
    "return #ids\n";

int hull_cluster_register(redisContext *c, const struct hull_node_info *n, hull_error *err)
{
    char key[128], set[160];
    snprintf(key, sizeof(key), K "node:%s", n->name);
    snprintf(set, sizeof(set), "%s:sandboxes", key);
    const char *fg[] = {"EVAL", forget_lua, "1", set, K "sbx:", n->name};
    if (run(c, err, 6, fg) < 0)
        return -1;
    long long now;
    if (redis_now_ms(c, &now, err) < 0)
        return -1;
    char cpus[16], mem[32], disk[32], slots[16], t[32];
    snprintf(cpus, sizeof(cpus), "%u", n->cpus);
    snprintf(mem, sizeof(mem), "%" PRIu64, n->memory);
    snprintf(disk, sizeof(disk), "%" PRIu64, n->disk);
    snprintf(slots, sizeof(slots), "%u", n->vm_slots);
    snprintf(t, sizeof(t), "%lld", now);
    const char *hs[] = {"HSET",
                        key,
                        "name",
                        n->name,
                        "address",
                        n->address,
                        "cpus",
                        cpus,
                        "memory",
                        mem,
                        "disk",
                        disk,
                        "vm_slots",
                        slots,
                        "accelerator",
                        n->accel,
                        "labels",
                        n->labels,
                        "placement",
                        n->placement,
                        "started",
                        t,
                        "heartbeat",
                        t,
                        "sandboxes",
                        "0",
                        "vms",
                        "0",
                        "reserved_memory",
                        "0",
                        "reserved_cpu",
                        "0"};
    const char *sa[] = {"SADD", K "nodes", n->name};
    /* A node that starts again is not draining (cluster_drain.c). */
    const char *hd[] = {"HDEL", key, "draining"};
    if (run(c, err, (int)(sizeof(hs) / sizeof(hs[0])), hs) < 0 || run(c, err, 3, hd) < 0)
        return -1;
    return run(c, err, 3, sa);
}

/* KEYS[1] the node's hash, KEYS[2] the node set; ARGV the time, the name.
 * A node Redis does not know (restarted without persistence, flushed) is
 * not half-written: 0, and it registers again. */
static const char beat_lua[] =
    "if redis.call('EXISTS', KEYS[1]) == 0 or redis.call('SISMEMBER', KEYS[2], ARGV[2]) == 0 "
    "then return 0 end\n"
    "redis.call('HSET', KEYS[1], 'heartbeat', ARGV[1])\n"
    "return 1\n";

int hull_cluster_heartbeat(redisContext *c, const char *name, hull_error *err)
{
    long long now;
    if (redis_now_ms(c, &now, err) < 0)
        return -1;
    char key[128], t[32];
    snprintf(key, sizeof(key), K "node:%s", name);
    snprintf(t, sizeof(t), "%lld", now);
    const char *argv[] = {"EVAL", beat_lua, "2", key, K "nodes", t, name};
    cleanup_reply redisReply *r = hull_redis_cmdv(c, err, 7, argv);
    if (r == NULL)
        return hull_error_prefix(err, "cluster");
    return hull_redis_int(r, 0) == 1 ? 1 : 0;
}

int hull_cluster_leave(redisContext *c, const char *name, hull_error *err)
{
    char key[128];
    snprintf(key, sizeof(key), K "node:%s", name);
    const char *hs[] = {"HSET", key, "heartbeat", "0"};
    return run(c, err, 4, hs);
}

static const char *const number_fields[] = {
    "cpus",      "memory",    "disk", "vm_slots",        "started",
    "heartbeat", "sandboxes", "vms",  "reserved_memory", "reserved_cpu"};

/* One HGETALL reply as an object; NULL for a node whose hash is gone. */
static json_object *node_object(const redisReply *h, long long now, unsigned down_after_ms)
{
    if (h == NULL || h->type != REDIS_REPLY_ARRAY || h->elements == 0)
        return NULL;
    json_object *o = json_object_new_object();
    for (size_t i = 0; i + 1 < h->elements; i += 2) {
        const char *k = hull_redis_str(h->element[i]), *v = hull_redis_str(h->element[i + 1]);
        if (k == NULL || v == NULL)
            continue;
        bool num = false;
        for (size_t j = 0; j < sizeof(number_fields) / sizeof(number_fields[0]); j++)
            num = num || strcmp(k, number_fields[j]) == 0;
        if (num) {
            json_object_object_add(o, k, json_object_new_int64(strtoll(v, NULL, 10)));
        } else if (strcmp(k, "labels") == 0) {
            json_object *l = json_tokener_parse(v);
            json_object_object_add(
                o, k, l && json_object_is_type(l, json_type_object) ? l : json_object_new_object());
            if (l && !json_object_is_type(l, json_type_object))
                json_object_put(l);
        } else {
            json_object_object_add(o, k, json_object_new_string(v));
        }
    }
    json_object *hb = hj_get(o, "heartbeat");
    long long age = now - (hb ? json_object_get_int64(hb) : 0);
    if (age < 0)
        age = 0;
    json_object_object_add(o, "heartbeat_age_ms", json_object_new_int64(age));
    json_object_object_add(
        o, "state", json_object_new_string(hb && age <= (long long)down_after_ms ? "up" : "down"));
    json_object *mem = hj_get(o, "memory"), *res = hj_get(o, "reserved_memory");
    long long free_mem =
        (mem ? json_object_get_int64(mem) : 0) - (res ? json_object_get_int64(res) : 0);
    json_object_object_add(o, "free_memory", json_object_new_int64(free_mem > 0 ? free_mem : 0));
    return o;
}

static int by_name(const void *a, const void *b)
{
    json_object *x = *(json_object *const *)a, *y = *(json_object *const *)b;
    json_object *nx = hj_get(x, "name"), *ny = hj_get(y, "name");
    return strcmp(nx ? json_object_get_string(nx) : "", ny ? json_object_get_string(ny) : "");
}

json_object *hull_cluster_nodes(redisContext *c, unsigned down_after_ms, hull_error *err)
{
    long long now;
    if (redis_now_ms(c, &now, err) < 0)
        return NULL;
    cleanup_reply redisReply *m = hull_redis_cmd(c, err, "SMEMBERS", K "nodes", NULL);
    if (m == NULL) {
        hull_error_prefix(err, "cluster");
        return NULL;
    }
    size_t n = m->type == REDIS_REPLY_ARRAY ? m->elements : 0;
    for (size_t i = 0; i < n; i++) {
        char key[128];
        snprintf(key, sizeof(key), K "node:%s", hull_redis_str(m->element[i]));
        if (hull_redis_append(c, err, "HGETALL", key, NULL) < 0) {
            hull_error_prefix(err, "cluster");
            return NULL;
        }
    }
    json_object *a = json_object_new_array();
    for (size_t i = 0; i < n; i++) {
        cleanup_reply redisReply *h = hull_redis_reply(c, err);
        if (h == NULL) {
            json_object_put(a);
            hull_error_prefix(err, "cluster");
            return NULL;
        }
        json_object *o = node_object(h, now, down_after_ms);
        if (o)
            json_object_array_add(a, o);
    }
    json_object_array_sort(a, by_name);
    return a;
}

/* KEYS[1] the record, KEYS[2] the node's set, KEYS[3] the node's hash;
 * ARGV: id, memory, cpu, vm (0/1), then the record's field/value pairs. */
static const char add_lua[] =
    "if redis.call('SADD', KEYS[2], ARGV[1]) == 1 then\n"
    "  redis.call('HINCRBY', KEYS[3], 'sandboxes', 1)\n"
    "  redis.call('HINCRBY', KEYS[3], 'vms', tonumber(ARGV[4]))\n"
    "  redis.call('HINCRBY', KEYS[3], 'reserved_memory', tonumber(ARGV[2]))\n"
    "  redis.call('HINCRBY', KEYS[3], 'reserved_cpu', tonumber(ARGV[3]))\n"
    "end\n"
    "redis.call('HSET', KEYS[1], unpack(ARGV, 5))\n"
    "return 1\n";

int hull_cluster_sbx_add(redisContext *c, const struct hull_cluster_sbx *s, hull_error *err)
{
    char rec[128], set[160], node[128], mem[32], cpu[16];
    snprintf(rec, sizeof(rec), K "sbx:%s", s->id);
    snprintf(node, sizeof(node), K "node:%s", s->node);
    snprintf(set, sizeof(set), "%s:sandboxes", node);
    snprintf(mem, sizeof(mem), "%" PRIu64, s->memory);
    snprintf(cpu, sizeof(cpu), "%u", s->cpu);
    char life[16];
    snprintf(life, sizeof(life), "%u", s->lifetime_s);
    bool vm = s->isolation && strcmp(s->isolation, "microvm") == 0;
    const char *argv[] = {"EVAL",      add_lua,
                          "3",         rec,
                          set,         node,
                          s->id,       mem,
                          cpu,         vm ? "1" : "0",
                          "node",      s->node,
                          "tenant",    s->tenant,
                          "key",       s->key,
                          "memory",    mem,
                          "cpu",       cpu,
                          "isolation", s->isolation ? s->isolation : "container",
                          "metadata",  s->metadata ? s->metadata : "{}",
                          "restart",   s->restart ? s->restart : "",
                          "lifetime",  life};
    return run(c, err, (int)(sizeof(argv) / sizeof(argv[0])), argv);
}

/* KEYS as for add_lua; ARGV[1] the id, ARGV[2] the node: the reservation
 * it holds there is given back once, whoever calls; the record goes only
 * while it names that node (a sandbox that moved is another node's). Numbers go back to Redis as
 * integer text (a Lua -0 would be "-0", which HINCRBY refuses). */
static const char remove_lua[] =
    "if redis.call('SREM', KEYS[2], ARGV[1]) == 1 then\n"
    "  local r = redis.call('HMGET', KEYS[1], 'memory', 'cpu', 'isolation')\n"
    "  redis.call('HINCRBY', KEYS[3], 'sandboxes', -1)\n"
    "  if r[3] == 'microvm' then redis.call('HINCRBY', KEYS[3], 'vms', -1) end\n"
    "  redis.call('HINCRBY', KEYS[3], 'reserved_memory', string.format('%d', 0 - (tonumber(r[1]) "
    "or 0)))\n"
    "  redis.call('HINCRBY', KEYS[3], 'reserved_cpu', string.format('%d', 0 - (tonumber(r[2]) or "
    "0)))\n"
    "end\n"
    "local n = redis.call('HGET', KEYS[1], 'node')\n"
    "if n == false or n == ARGV[2] then redis.call('DEL', KEYS[1]) end\n"
    "return 1\n";

int hull_cluster_sbx_remove(redisContext *c, const char *node, const char *id, hull_error *err)
{
    char rec[128], set[160], nk[128];
    snprintf(rec, sizeof(rec), K "sbx:%s", id);
    snprintf(nk, sizeof(nk), K "node:%s", node);
    snprintf(set, sizeof(set), "%s:sandboxes", nk);
    const char *argv[] = {"EVAL", remove_lua, "3", rec, set, nk, id, node};
    return run(c, err, 8, argv);
}

static json_object *hash_object(const redisReply *h)
{
    json_object *o = json_object_new_object();
    for (size_t i = 0; i + 1 < h->elements; i += 2) {
        const char *k = hull_redis_str(h->element[i]), *v = hull_redis_str(h->element[i + 1]);
        if (k && v)
            json_object_object_add(o, k, json_object_new_string(v));
    }
    return o;
}

json_object *hull_cluster_sbx_get(redisContext *c, const char *id, hull_error *err)
{
    char rec[128];
    snprintf(rec, sizeof(rec), K "sbx:%s", id);
    cleanup_reply redisReply *h = hull_redis_cmd(c, err, "HGETALL", rec, NULL);
    if (h == NULL) {
        hull_error_prefix(err, "cluster");
        return NULL;
    }
    if (h->type != REDIS_REPLY_ARRAY || h->elements == 0) {
        hull_error_set(err, ENOENT, "sandbox '%s' not found in the cluster", id);
        return NULL;
    }
    json_object *o = hash_object(h);
    json_object_object_add(o, "id", json_object_new_string(id));
    return o;
}

json_object *hull_cluster_sbx_all(redisContext *c, const char *self, hull_error *err)
{
    cleanup_reply redisReply *m = hull_redis_cmd(c, err, "SMEMBERS", K "nodes", NULL);
    if (m == NULL) {
        hull_error_prefix(err, "cluster");
        return NULL;
    }
    json_object *a = json_object_new_array();
    for (size_t i = 0; m->type == REDIS_REPLY_ARRAY && i < m->elements; i++) {
        const char *node = hull_redis_str(m->element[i]);
        if (node == NULL || (self && strcmp(node, self) == 0))
            continue;
        char set[160];
        snprintf(set, sizeof(set), K "node:%s:sandboxes", node);
        cleanup_reply redisReply *ids = hull_redis_cmd(c, err, "SMEMBERS", set, NULL);
        for (size_t j = 0; ids && ids->type == REDIS_REPLY_ARRAY && j < ids->elements; j++) {
            json_object *o = hull_cluster_sbx_get(c, hull_redis_str(ids->element[j]), err);
            if (o)
                json_object_array_add(a, o);
            hull_error_free(err); /* gone meanwhile: not listed */
        }
        if (ids == NULL) {
            json_object_put(a);
            hull_error_prefix(err, "cluster");
            return NULL;
        }
    }
    return a;
}

int hull_cluster_predict_get(redisContext *c, const char *key, uint64_t *memory, unsigned *cpu,
                             unsigned *samples, hull_error *err)
{
    char k[600];
    snprintf(k, sizeof(k), K "predict:%s", key);
    cleanup_reply redisReply *r =
        hull_redis_cmd(c, err, "HMGET", k, "memory", "cpu", "samples", NULL);
    if (r == NULL)
        return hull_error_prefix(err, "cluster");
    *memory = 0;
    *cpu = *samples = 0;
    if (r->type != REDIS_REPLY_ARRAY || r->elements != 3 || hull_redis_str(r->element[2]) == NULL)
        return 0;
    *memory =
        strtoull(hull_redis_str(r->element[0]) ? hull_redis_str(r->element[0]) : "0", NULL, 10);
    *cpu = (unsigned)strtoul(hull_redis_str(r->element[1]) ? hull_redis_str(r->element[1]) : "0",
                             NULL, 10);
    *samples = (unsigned)strtoul(hull_redis_str(r->element[2]), NULL, 10);
    return 0;
}

/* KEYS[1] the prediction; ARGV memory, cpu, alpha. Read and written in one
 * step, so two nodes folding in at once both count. */
static const char observe_lua[] =
    "local m = tonumber(redis.call('HGET', KEYS[1], 'memory'))\n"
    "local c = tonumber(redis.call('HGET', KEYS[1], 'cpu'))\n"
    "local a = tonumber(ARGV[3])\n"
    "local nm, nc = tonumber(ARGV[1]), tonumber(ARGV[2])\n"
    "if m ~= nil and c ~= nil then\n"
    "  nm = math.floor(a * nm + (1 - a) * m + 0.5)\n"
    "  nc = math.floor(a * nc + (1 - a) * c + 0.5)\n"
    "end\n"
    "redis.call('HSET', KEYS[1], 'memory', string.format('%d', nm), 'cpu', string.format('%d', "
    "nc))\n"
    "return redis.call('HINCRBY', KEYS[1], 'samples', 1)\n";

int hull_cluster_predict_observe(redisContext *c, const char *key, uint64_t memory, unsigned cpu,
                                 hull_error *err)
{
    char k[600], mem[32], cp[16], alpha[16];
    snprintf(k, sizeof(k), K "predict:%s", key);
    snprintf(mem, sizeof(mem), "%" PRIu64, memory);
    snprintf(cp, sizeof(cp), "%u", cpu);
    snprintf(alpha, sizeof(alpha), "%.3f", HULL_PREDICT_ALPHA);
    const char *argv[] = {"EVAL", observe_lua, "1", k, mem, cp, alpha};
    return run(c, err, 7, argv);
}
