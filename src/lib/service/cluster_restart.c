/* Restoring the sandboxes of a node that went down (cluster.h,
 * docs/cluster.md "Restart from a snapshot"): the registry side. A record
 * made with "restart": "from-snapshot" carries restart, lifetime, and,
 * once its node saved one, snap_at and paused. The claim moves a record
 * from a down node to the claiming one in one Lua script: whoever runs it
 * first gets it, every other node's claim finds it moved and gets 0. */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "service/cluster.h"
#include "util/error.h"

#define K "hull:cluster:"

/* KEYS: the record, the dead node's set and hash, the claimer's set and
 * hash; ARGV: id, dead node, claimer, down-after (ms). 1 when claimed. */
static const char claim_lua[] =
    "if redis.call('HGET', KEYS[1], 'node') ~= ARGV[2] then return 0 end\n"
    "if redis.call('HGET', KEYS[1], 'restart') ~= 'from-snapshot' then return 0 end\n"
    "local t = redis.call('TIME')\n"
    "local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)\n"
    "local hb = tonumber(redis.call('HGET', KEYS[3], 'heartbeat') or '0') or 0\n"
    "if hb > 0 and now - hb <= tonumber(ARGV[4]) then return 0 end\n"
    "local r = redis.call('HMGET', KEYS[1], 'memory', 'cpu')\n"
    "local m, c = tonumber(r[1]) or 0, tonumber(r[2]) or 0\n"
    "if redis.call('SREM', KEYS[2], ARGV[1]) == 1 and redis.call('EXISTS', KEYS[3]) == 1 then\n"
    "  redis.call('HINCRBY', KEYS[3], 'sandboxes', -1)\n"
    "  redis.call('HINCRBY', KEYS[3], 'vms', -1)\n"
    "  redis.call('HINCRBY', KEYS[3], 'reserved_memory', string.format('%d', 0 - m))\n"
    "  redis.call('HINCRBY', KEYS[3], 'reserved_cpu', string.format('%d', 0 - c))\n"
    "end\n"
    "if redis.call('SADD', KEYS[4], ARGV[1]) == 1 then\n"
    "  redis.call('HINCRBY', KEYS[5], 'sandboxes', 1)\n"
    "  redis.call('HINCRBY', KEYS[5], 'vms', 1)\n"
    "  redis.call('HINCRBY', KEYS[5], 'reserved_memory', string.format('%d', m))\n"
    "  redis.call('HINCRBY', KEYS[5], 'reserved_cpu', string.format('%d', c))\n"
    "end\n"
    "redis.call('HSET', KEYS[1], 'node', ARGV[3], 'state', 'restored', 'restored_from', "
    "ARGV[2], 'restored_at', string.format('%d', now))\n"
    "return 1\n";

int hull_cluster_claim(redisContext *c, const char *id, const char *dead, const char *self,
                       unsigned down_after_ms, hull_error *err)
{
    char rec[128], dset[160], dnode[128], sset[160], snode[128], down[16];
    snprintf(rec, sizeof(rec), K "sbx:%s", id);
    snprintf(dnode, sizeof(dnode), K "node:%s", dead);
    snprintf(dset, sizeof(dset), "%s:sandboxes", dnode);
    snprintf(snode, sizeof(snode), K "node:%s", self);
    snprintf(sset, sizeof(sset), "%s:sandboxes", snode);
    snprintf(down, sizeof(down), "%u", down_after_ms);
    const char *argv[] = {"EVAL", claim_lua, "5", rec,  dset, dnode,
                          sset,   snode,     id,  dead, self, down};
    cleanup_reply redisReply *r = hull_redis_cmdv(c, err, 12, argv);
    if (r == NULL)
        return hull_error_prefix(err, "cluster: claim %s", id);
    return hull_redis_int(r, 0) == 1 ? 1 : 0;
}

/* KEYS[1] the record; ARGV: node, then field/value pairs: written only
 * while the record names node (a deleted or moved one is left alone). */
static const char mark_lua[] =
    "if redis.call('HGET', KEYS[1], 'node') ~= ARGV[1] then return 0 end\n"
    "redis.call('HSET', KEYS[1], unpack(ARGV, 2))\n"
    "return 1\n";

int hull_cluster_snapshot_saved(redisContext *c, const char *id, const char *node, bool paused,
                                hull_error *err)
{
    char rec[128];
    snprintf(rec, sizeof(rec), K "sbx:%s", id);
    cleanup_reply redisReply *t = hull_redis_cmd(c, err, "TIME", NULL);
    if (t == NULL)
        return hull_error_prefix(err, "cluster");
    if (t->type != REDIS_REPLY_ARRAY || t->elements != 2)
        return hull_error_set(err, EPROTO, "cluster: TIME: unexpected reply");
    char at[32];
    snprintf(at, sizeof(at), "%lld",
             strtoll(hull_redis_str(t->element[0]), NULL, 10) * 1000 +
                 strtoll(hull_redis_str(t->element[1]), NULL, 10) / 1000);
    const char *argv[] = {"EVAL",   mark_lua,          "1", rec, node, "snap_at", at,
                          "paused", paused ? "1" : "0"};
    cleanup_reply redisReply *r = hull_redis_cmdv(c, err, 9, argv);
    return r ? 0 : hull_error_prefix(err, "cluster: snapshot of %s", id);
}
