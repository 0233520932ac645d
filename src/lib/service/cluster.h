/* The fleet registry in Redis: nodes, where each sandbox lives, learned
 * predictions of what an image's sandboxes use, and the tokens every node
 * accepts. hulld --cluster writes it (src/daemon/cluster*.c); `hull cluster
 * nodes` reads it. Redis is the only shared state: no node talks to another
 * to agree on anything (docs/cluster.md).
 *
 * Keys (prefix hull:cluster:):
 *   nodes                 SET of node names
 *   node:NAME             HASH name address cpus memory disk vm_slots
 *                         accelerator labels(JSON) placement started heartbeat
 *                         (ms, Redis TIME) sandboxes vms reserved_memory
 *                         reserved_cpu (millicores)
 *   node:NAME:sandboxes   SET of the sandbox ids it runs
 *   sbx:ID                HASH node tenant key memory cpu isolation
 *                         metadata(JSON) restart vm snap_at (cluster_restart.c)
 *   predict:KEY           HASH memory cpu samples (EWMA per image)
 *   tokens                HASH SHA-256 of a token -> JSON {id, role, ...}
 *   drain:NAME            STRING the node's drain report (JSON, cluster_drain.c)
 *   moves:NAME            LIST moves asked of node NAME (JSON {ticket id to mode})
 *   move:TICKET           STRING that move's state, then its answer (JSON) */
#ifndef HULL_SERVICE_CLUSTER_H
#define HULL_SERVICE_CLUSTER_H

#include <json-c/json.h>
#include <stdbool.h>
#include <stdint.h>

#include "hull.h"
#include "service/redis.h"
#include "service/store.h"

#define HULL_NODE_NAME_MAX 63
/* The weight of a new observation in a prediction (EWMA). */
#define HULL_PREDICT_ALPHA 0.3

struct hull_node_info {
    char name[HULL_NODE_NAME_MAX + 1];
    char address[128];  /* HOST:PORT other nodes reach its API at (HTTPS) */
    unsigned cpus;      /* online CPUs */
    uint64_t memory;    /* bytes */
    uint64_t disk;      /* bytes free in its state directory */
    unsigned vm_slots;  /* microVMs it may run at once */
    char accel[8];      /* "kvm" or "tcg" */
    const char *labels; /* JSON object of strings */
    const char *placement;
};

/* A node name: 1-63 of [A-Za-z0-9_.-]. */
int hull_node_name_check(const char *name, hull_error *err);

/* Register (or re-register after a restart) node n: its hash written, its
 * previous sandboxes forgotten (they died with its previous hulld), counts
 * zeroed, a first heartbeat. */
int hull_cluster_register(redisContext *c, const struct hull_node_info *n, hull_error *err);
/* The heartbeat: now (Redis's clock) into the node's hash: 1; 0 when Redis
 * does not know the node (it lost its data): register again. */
int hull_cluster_heartbeat(redisContext *c, const char *name, hull_error *err);
/* A clean stop: heartbeat 0, so it is down at once. */
int hull_cluster_leave(redisContext *c, const char *name, hull_error *err);
/* Every node as an array of objects (numbers as numbers, labels an object,
 * "state": "up" or "down" by down_after_ms, "heartbeat_age_ms"), by name. */
json_object *hull_cluster_nodes(redisContext *c, unsigned down_after_ms, hull_error *err);

/* A sandbox placed on node: recorded, counted, its predicted use reserved
 * on the node. */
struct hull_cluster_sbx {
    const char *id, *node, *tenant, *key, *isolation;
    const char *metadata; /* JSON object text, or NULL: "{}" */
    const char *restart;  /* "from-snapshot", or NULL */
    unsigned lifetime_s;  /* its lifetime (kept for a restore) */
    uint64_t memory;      /* bytes reserved */
    unsigned cpu;         /* millicores reserved */
};
int hull_cluster_sbx_add(redisContext *c, const struct hull_cluster_sbx *s, hull_error *err);
/* Gone from node: its record and reservation released (once). */
int hull_cluster_sbx_remove(redisContext *c, const char *node, const char *id, hull_error *err);
/* Its record as an object (node, tenant, ...), or NULL: ENOENT without. */
json_object *hull_cluster_sbx_get(redisContext *c, const char *id, hull_error *err);
/* The records of every sandbox on every node but self (NULL: all). */
json_object *hull_cluster_sbx_all(redisContext *c, const char *self, hull_error *err);

/* What sandboxes of key (an image, or "-") used so far: 0 with *samples 0
 * when nothing was learned yet. */
int hull_cluster_predict_get(redisContext *c, const char *key, uint64_t *memory, unsigned *cpu,
                             unsigned *samples, hull_error *err);
/* One sandbox's observed peak memory and mean CPU folded in (EWMA, alpha
 * HULL_PREDICT_ALPHA; the first observation is taken as it is). */
int hull_cluster_predict_observe(redisContext *c, const char *key, uint64_t memory, unsigned cpu,
                                 hull_error *err);

/* Placement: the node for a request among nodes (as hull_cluster_nodes
 * gives them). policy "spread" (fewest sandboxes, then most free memory)
 * or "binpack" (least free memory that still fits). pin: only that node;
 * labels: an object every key=value of which the node's labels must have.
 * 0 with out filled; -1 with err: EINVAL for an unknown pinned node,
 * EHOSTDOWN when it is down, ENOSPC when no up node fits. */
struct hull_place_req {
    const char *policy;
    const char *pin;
    json_object *labels;
    uint64_t memory;
    unsigned cpu;
    bool microvm;
    /* Anti-affinity (cluster_affinity.c): an object of strings; a node
     * running a sandbox (of sandboxes: records as hull_cluster_sbx_all
     * gives them, with "metadata" a JSON text) whose metadata has every
     * pair is avoided while a node without one fits; required: never
     * chosen (ENOSPC when every fitting node runs one). */
    json_object *anti;
    json_object *sandboxes;
    /* Only this tenant's sandboxes count: another's metadata is neither
     * seen through a 409 nor able to keep this one off a node. */
    const char *tenant;
    bool anti_required;
};
int hull_cluster_place(json_object *nodes, const struct hull_place_req *q, char *out, size_t len,
                       hull_error *err);
/* How many of q->sandboxes on node match q->anti (0 without anti). */
unsigned hull_cluster_affinity_count(const struct hull_place_req *q, const char *node);

/* Restart from a snapshot (cluster_restart.c). A record of a sandbox
 * made with "restart": "from-snapshot" moved from dead (a node down for
 * down_after_ms on Redis's clock) to self, counts and reservations with
 * it, marked state restored: 1; 0 when it is not dead's any more (another
 * node claimed it first), not restartable, or dead is up again. */
int hull_cluster_claim(redisContext *c, const char *id, const char *dead, const char *self,
                       unsigned down_after_ms, hull_error *err);
/* node saved the sandbox's snapshot now (Redis's clock): snap_at, paused;
 * nothing when the record does not name node (any more). */
int hull_cluster_snapshot_saved(redisContext *c, const char *id, const char *node, bool paused,
                                hull_error *err);

/* Tokens: every token of store st published under its SHA-256 by node
 * (revoked ones too, so a revocation reaches every node); what node
 * published before and st no longer holds is withdrawn. */
int hull_cluster_tokens_publish(redisContext *c, const char *node, struct hull_store *st,
                                hull_error *err);
/* A token made on another node, published by a node of the fleet (one in
 * its node set): EACCES when unknown or revoked. */
int hull_cluster_token_verify(redisContext *c, const char *token, struct hull_token_info *info,
                              hull_error *err);

/* Draining (cluster_drain.c): node name marked so (its hash's "draining"
 * 1: placement skips it) and its report reset to {"state": "requested"};
 * ENOENT for an unknown node. Its hulld sees the mark, moves its microVM
 * sandboxes off and writes the report ("draining", then "done"). A node
 * registering again (restarted) is not draining. */
int hull_cluster_drain_mark(redisContext *c, const char *name, hull_error *err);
/* The report as an object; NULL with ENOENT when there is none. */
json_object *hull_cluster_drain_report(redisContext *c, const char *name, hull_error *err);
int hull_cluster_drain_put(redisContext *c, const char *name, json_object *report, hull_error *err);
/* 1 when node name is marked draining, else 0. */
int hull_cluster_draining(redisContext *c, const char *name, hull_error *err);

/* Moves asked through Redis (cluster_drain.c; `hull vm migrate ID --to
 * NODE --cluster URL`): a request for the node running sandbox id, which
 * its hulld takes at its next heartbeat, runs as POST .../migrate would
 * and answers under the ticket (both kept a day). */
#define HULL_MOVE_TICKET_LEN 33
int hull_cluster_move_ask(redisContext *c, const char *node, const char *id, const char *to,
                          bool cold, char ticket[HULL_MOVE_TICKET_LEN], hull_error *err);
/* The move's state: {"state": "requested"|"moving"|"done", ...}, with
 * "status" (as the HTTP answer's) and "result" or "error" once done;
 * NULL with ENOENT for an unknown (or expired) ticket. */
json_object *hull_cluster_move_state(redisContext *c, const char *ticket, hull_error *err);
int hull_cluster_move_state_put(redisContext *c, const char *ticket, json_object *state,
                                hull_error *err);
/* The moves asked of node name, taken (each given once): an array. */
json_object *hull_cluster_moves_take(redisContext *c, const char *name, hull_error *err);

#endif
