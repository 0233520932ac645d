/* hulld --cluster: this node in the fleet (docs/cluster.md). The registry
 * lives in Redis (src/lib/service/cluster.c); this side registers the node,
 * beats, records the sandboxes it runs and what they use, places new
 * sandboxes, and forwards requests for sandboxes on other nodes. Without
 * --cluster every hook here is a no-op. */
#ifndef HULLD_CLUSTER_H
#define HULLD_CLUSTER_H

#include <json-c/json.h>
#include <stdbool.h>
#include <stdint.h>

#include "hull.h"
#include "response.h"

struct hulld_options;
struct redisContext; /* hiredis's, for cluster_restart_mine/orphans */

/* --node-label KEY=VALUE (repeatable): 0, or -1 with the message printed. */
int cluster_add_label(const char *kv);
/* Options that go together: 0, or -1 with the message printed. */
int cluster_check_options(const struct hulld_options *o);
/* Register and start beating (after recovery, before HTTP). */
int cluster_start(hull_error *err);
/* Stop beating; the node shows down at once. After the sandboxes went. */
void cluster_stop(void);
bool cluster_enabled(void);

/* A sandbox route (id NULL: /v1/sandboxes): 1 when answered here (placed
 * and forwarded to another node, forwarded to the node the sandbox lives
 * on, a lost sandbox, a refused placement), 0 to go on locally, with *body
 * (malloc'd, or NULL to keep the request's) the body to use instead. */
int cluster_request(const struct request *rq, const char *id, char **body, struct resp *r);
/* A token made on another node (published in Redis): as hull_token_verify. */
int cluster_token_verify(const char *token, struct hull_token_info *info, hull_error *err);
/* "node": this node's name into a sandbox's JSON. */
void cluster_annotate(json_object *o);
/* The sandboxes of other nodes the caller's tenant (NULL: any) owns, added
 * to a list of this node's (each with "node", and "state": "lost" when its
 * node is down); not when the list is filtered by metadata, which only
 * their own nodes know. */
void cluster_list_merge(const struct request *rq, json_object *list, const char *tenant);
/* A sandbox of this node made / about to go / gone: recorded in Redis, its
 * use sampled, what it used learned for its image. */
void cluster_sandbox_added(const char *id, const char *tenant, const char *container,
                           const char *isolation);
void cluster_sandbox_sample(const char *id);
void cluster_sandbox_removed(const char *id);
/* GET /v1/nodes. */
void api_nodes(const struct request *rq, struct resp *r);

/* cluster_fwd.c: rq sent on to the node at address (HTTPS, verified with
 * --cluster-ca), with body instead of rq's; its answer into r (502 when
 * that node cannot be reached). */
void cluster_forward(const struct request *rq, const char *address, const char *body, size_t len,
                     struct resp *r);
/* The header a forwarded request carries: the forwarding node's name. */
#define CLUSTER_FORWARDED_HEADER "X-Hull-Forwarded-By"
/* cluster.c: this node's name, the CA file. */
const char *cluster_self(void);
const char *cluster_ca(void);
/* cluster.c, for cluster_route.c: placement's answer for the sandbox this
 * thread is about to make; Redis through the shared connection. */
void cluster_placed(const char *key, uint64_t memory, unsigned cpu, const char *metadata);
json_object *cluster_nodes_now(hull_error *err);
/* Every sandbox record of the fleet (this node's too). */
json_object *cluster_sbx_all_now(hull_error *err);
json_object *cluster_sbx_record(const char *id, hull_error *err);
int cluster_sbx_forget(const char *node, const char *id, hull_error *err);
int cluster_prediction(const char *key, uint64_t *memory, unsigned *cpu, unsigned *samples,
                       hull_error *err);

/* cluster_restart.c: "restart": "from-snapshot" (docs/cluster.md).
 * take: checked in a create (400 in r: -1); local: it is served here, so
 * it is taken out and remembered for cluster_sandbox_added (wanted). */
int cluster_restart_take(json_object *doc, bool local, struct resp *r);
bool cluster_restart_wanted(unsigned *lifetime_s);
/* A restartable sandbox of this node: saved every period from now on;
 * forget: gone for good, its saved snapshot too. */
void cluster_restart_track(const char *id);
void cluster_restart_forget(const char *id);
/* No more snapshots of id from this node; its file stays (another node's). */
void cluster_restart_untrack(const char *id);
/* "restart", "snapshot_at", and for a restored one "state": "restored",
 * "restored_from", "restored_at" into its JSON. */
void cluster_restart_annotate(json_object *o);
/* --cluster-snapshots made (0700) when missing, and refused when another
 * user may change it or a directory above it (hull_trusted_dir): before
 * the node joins the fleet. */
int cluster_restart_check(hull_error *err);
/* The thread that saves snapshots and restores a down node's sandboxes:
 * started with the cluster; stopped before the sandboxes go at shutdown
 * (a restore then could outlive them). */
int cluster_restart_start(hull_error *err);
/* At registration: mine (before it) lists the restartable sandboxes the
 * registry still gives this node; orphans (after it) removes the
 * snapshots of those the registration forgot (not claimed elsewhere):
 * this node came back before another restored them. */
char **cluster_restart_mine(struct redisContext *c);
void cluster_restart_orphans(struct redisContext *c, char **ids);
/* At registration, before the node serves the cluster: a sandbox adopted
 * from this node's disk (paused) that the registry says another node
 * restored meanwhile is destroyed here (nothing of it is in the registry
 * under this node: the other node's record and snapshot stay). */
void cluster_restart_drop_moved(struct redisContext *c);
void cluster_restart_stop(void);

#endif
