/* Placement over the registry's view of the nodes, and the tokens every
 * node accepts (cluster.h). */
#include <errno.h>
#include <openssl/evp.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "service/cluster.h"
#include "util/error.h"
#include "util/json.h"

static long long num(json_object *o, const char *k)
{
    json_object *v = hj_get(o, k);
    return v ? json_object_get_int64(v) : 0;
}

static const char *str(json_object *o, const char *k)
{
    json_object *v = hj_get(o, k);
    return v ? json_object_get_string(v) : "";
}

/* Every key=value of want among the node's labels. */
static bool labels_match(json_object *node, json_object *want)
{
    if (want == NULL)
        return true;
    json_object *have = hj_get(node, "labels");
    json_object_object_foreach(want, k, v)
    {
        json_object *h = have ? hj_get(have, k) : NULL;
        if (h == NULL || strcmp(json_object_get_string(h), json_object_get_string(v)) != 0)
            return false;
    }
    return true;
}

static bool fits(json_object *node, const struct hull_place_req *q)
{
    if (num(node, "free_memory") < (long long)q->memory)
        return false;
    return !q->microvm || num(node, "vms") < num(node, "vm_slots");
}

/* True when a is the better choice than b under the policy. */
static bool better(json_object *a, json_object *b, bool binpack)
{
    long long fa = num(a, "free_memory"), fb = num(b, "free_memory");
    long long sa = num(a, "sandboxes"), sb = num(b, "sandboxes");
    if (binpack) {
        if (fa != fb)
            return fa < fb;
        if (sa != sb)
            return sa > sb;
    } else {
        if (sa != sb)
            return sa < sb;
        if (fa != fb)
            return fa > fb;
    }
    return strcmp(str(a, "name"), str(b, "name")) < 0;
}

int hull_cluster_place(json_object *nodes, const struct hull_place_req *q, char *out, size_t len,
                       hull_error *err)
{
    bool binpack = q->policy && strcmp(q->policy, "binpack") == 0;
    json_object *best = NULL;
    size_t n = json_object_array_length(nodes), up = 0, matching = 0, apart = 0;
    unsigned best_count = 0;
    bool pin_seen = false;
    for (size_t i = 0; i < n; i++) {
        json_object *node = json_object_array_get_idx(nodes, i);
        if (q->pin && strcmp(str(node, "name"), q->pin) != 0)
            continue;
        pin_seen = true;
        /* A draining node takes nothing new (cluster_drain.c). */
        if (strcmp(str(node, "state"), "up") != 0 || strcmp(str(node, "draining"), "1") == 0)
            continue;
        up++;
        if (!labels_match(node, q->labels))
            continue;
        matching++;
        if (!fits(node, q))
            continue;
        /* Anti-affinity first: the fewest sandboxes to keep apart from
         * (none while any node that fits has none), then the policy. */
        unsigned count = hull_cluster_affinity_count(q, str(node, "name"));
        apart++;
        if (count && q->anti_required)
            continue;
        if (best == NULL || count < best_count ||
            (count == best_count && better(node, best, binpack))) {
            best = node;
            best_count = count;
        }
    }
    if (q->pin && !pin_seen)
        return hull_error_set(err, EINVAL, "placement.node: no node named '%s' in the cluster",
                              q->pin);
    if (q->pin && up == 0)
        return hull_error_set(err, EHOSTDOWN, "placement.node: node '%s' is down or draining",
                              q->pin);
    if (matching == 0)
        return hull_error_set(err, ENOSPC, "placement.labels: no up node has these labels");
    if (best == NULL && apart > 0)
        return hull_error_set(err, ENOSPC,
                              "placement.anti_affinity: each of the %zu up node(s) that fit runs "
                              "a sandbox with these metadata (required)",
                              apart);
    if (best == NULL)
        return hull_error_set(err, ENOSPC,
                              "placement: no up node has room for %llu MiB%s (of %zu that match)",
                              (unsigned long long)(q->memory >> 20),
                              q->microvm ? " and a microVM slot" : "", matching);
    snprintf(out, len, "%s", str(best, "name"));
    return 0;
}

/* ---- tokens ---- */

static int token_hash(const char *token, char out[65], hull_error *err)
{
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int len = 0;
    if (EVP_Digest(token, strlen(token), md, &len, EVP_sha256(), NULL) != 1 || len != 32)
        return hull_error_set(err, EIO, "token: SHA-256 failed");
    for (unsigned i = 0; i < 32; i++)
        snprintf(out + 2 * i, 3, "%02x", md[i]);
    return 0;
}

static const char *col(sqlite3_stmt *st, int i)
{
    const char *s = (const char *)sqlite3_column_text(st, i);
    return s ? s : "";
}

/* KEYS[1] the tokens hash, KEYS[2] the set of what this node published;
 * ARGV[1] the node, then hash, entry pairs: its store's tokens now. What it
 * published before and its store no longer holds (a store wiped or
 * restored from an older copy) goes, so the token stops working on every
 * node as it did on this one. */
static const char publish_lua[] = "local keep = {}\n"
                                  "for i = 2, #ARGV, 2 do keep[ARGV[i]] = true end\n"
                                  "for _, h in ipairs(redis.call('SMEMBERS', KEYS[2])) do\n"
                                  "  if not keep[h] then\n"
                                  "    local v = redis.call('HGET', KEYS[1], h)\n"
                                  "    local ok, o = pcall(cjson.decode, v or '')\n"
                                  "    if ok and type(o) == 'table' and o.node == ARGV[1] then\n"
                                  "      redis.call('HDEL', KEYS[1], h)\n"
                                  "    end\n"
                                  "  end\n"
                                  "end\n"
                                  "redis.call('DEL', KEYS[2])\n"
                                  "for i = 2, #ARGV, 2 do\n"
                                  "  redis.call('HSET', KEYS[1], ARGV[i], ARGV[i + 1])\n"
                                  "  redis.call('SADD', KEYS[2], ARGV[i])\n"
                                  "end\n"
                                  "return 1\n";

int hull_cluster_tokens_publish(redisContext *c, const char *node, struct hull_store *s,
                                hull_error *err)
{
    /* Read under the store's lock, written to Redis after it. */
    cleanup_json json_object *all = json_object_new_object();
    {
        cleanup_store_stmt struct hull_store_stmt q = hull_store_begin(s);
        if (hull_store_prepare(s,
                               "SELECT hash, id, role, tenant, created, revoked, allow FROM tokens",
                               &q.st, NULL) < 0)
            return hull_store_fail(s, "cluster: list tokens", err);
        int rc;
        while ((rc = sqlite3_step(q.st)) == SQLITE_ROW) {
            json_object *o = json_object_new_object();
            static const char *const names[] = {"id",      "role",    "tenant",
                                                "created", "revoked", "allow"};
            for (int i = 0; i < 6; i++)
                json_object_object_add(o, names[i], json_object_new_string(col(q.st, i + 1)));
            json_object_object_add(o, "node", json_object_new_string(node));
            json_object_object_add(all, col(q.st, 0), o);
        }
        if (rc != SQLITE_DONE)
            return hull_store_fail(s, "cluster: list tokens", err);
    }
    char mine[160];
    snprintf(mine, sizeof(mine), "hull:cluster:node:%s:tokens", node);
    size_t n = 6 + 2 * (size_t)json_object_object_length(all), i = 6;
    cleanup_free const char **argv = calloc(n, sizeof(*argv));
    if (argv == NULL)
        return hull_error_set(err, ENOMEM, "out of memory");
    argv[0] = "EVAL";
    argv[1] = publish_lua;
    argv[2] = "2";
    argv[3] = "hull:cluster:tokens";
    argv[4] = mine;
    argv[5] = node;
    json_object_object_foreach(all, hash, o)
    {
        argv[i++] = hash;
        argv[i++] = json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN);
    }
    cleanup_reply redisReply *r = hull_redis_cmdv(c, err, (int)n, argv);
    return r ? 0 : hull_error_prefix(err, "cluster: publish tokens");
}

/* KEYS[1] the tokens hash, KEYS[2] the node set; ARGV[1] a token's hash:
 * its entry when a node of the fleet published it, else nil. */
static const char lookup_lua[] =
    "local v = redis.call('HGET', KEYS[1], ARGV[1])\n"
    "if not v then return false end\n"
    "local ok, o = pcall(cjson.decode, v)\n"
    "if not ok or type(o) ~= 'table' or type(o.node) ~= 'string' then return false end\n"
    "if redis.call('SISMEMBER', KEYS[2], o.node) == 0 then return false end\n"
    "return v\n";

int hull_cluster_token_verify(redisContext *c, const char *token, struct hull_token_info *info,
                              hull_error *err)
{
    if (token == NULL || strncmp(token, "hull_", 5) != 0 || strlen(token) != 69)
        return hull_error_set(err, EACCES, "invalid token");
    char hash[65];
    if (token_hash(token, hash, err) < 0)
        return -1;
    const char *argv[] = {"EVAL", lookup_lua, "2", "hull:cluster:tokens", "hull:cluster:nodes",
                          hash};
    cleanup_reply redisReply *r = hull_redis_cmdv(c, err, 6, argv);
    if (r == NULL)
        return hull_error_prefix(err, "cluster");
    const char *text = hull_redis_str(r);
    if (text == NULL)
        return hull_error_set(err, EACCES, "invalid token");
    cleanup_json json_object *o = json_tokener_parse(text);
    if (o == NULL || !json_object_is_type(o, json_type_object))
        return hull_error_set(err, EACCES, "invalid token");
    memset(info, 0, sizeof(*info));
    snprintf(info->id, sizeof(info->id), "%s", str(o, "id"));
    snprintf(info->tenant, sizeof(info->tenant), "%s", str(o, "tenant"));
    snprintf(info->created, sizeof(info->created), "%s", str(o, "created"));
    snprintf(info->revoked, sizeof(info->revoked), "%s", str(o, "revoked"));
    /* Anything unreadable grants the least. */
    if (hull_role_parse(str(o, "role"), &info->role) < 0)
        info->role = HULL_ROLE_READER;
    hull_error e = NULL;
    if (hull_allow_parse(str(o, "allow"), &info->allow, &e) < 0) {
        info->allow = 0;
        hull_error_free(&e);
    }
    if (info->revoked[0])
        return hull_error_set(err, EACCES, "token %s was revoked", info->id);
    return 0;
}
