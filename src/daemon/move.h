/* hulld --cluster: moving microVM sandboxes between nodes (docs/cluster.md,
 * "Moving sandboxes"): POST /v1/sandboxes/{id}/migrate on the node that
 * runs it (cluster_move.c), the target's side of it (POST
 * /v1/cluster/receive, authenticated with the cluster's shared secret, not
 * a user token), and draining a node (cluster_drain.c). */
#ifndef HULLD_MOVE_H
#define HULLD_MOVE_H

#include <json-c/json.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "hull.h"
#include "response.h"

/* --cluster-secret: read and checked (mode 0600 or stricter, 16 to 256
 * bytes without trailing white space); 0 without the option. */
int cluster_secret_load(hull_error *err);

/* POST /v1/sandboxes/{id}/migrate {"to": NODE, "mode": "live"|"cold"} of
 * the live sandbox id here. */
void sbx_migrate(const struct request *rq, const char *id, struct resp *r);
/* The move itself: sandbox id (live here, microVM) to node to; *result
 * (the answer's JSON) on success; -1 with err (the sandbox still runs
 * here) and *status the HTTP status that fits. */
int cluster_move(const char *id, const char *to, bool cold, json_object **result, int *status,
                 hull_error *err);
/* POST /v1/cluster/receive: the target's side (no user token). */
void api_cluster_receive(const struct request *rq, struct resp *r);

/* cluster_drain.c: POST /v1/nodes/{name}/drain (an admin token). */
void api_node_drain(const struct request *rq, const char *name, struct resp *r);
/* From the heartbeat (its Redis connection): this node was marked
 * draining: its microVM sandboxes move off it, once. */
struct redisContext;
void cluster_drain_check(struct redisContext *c);
/* From the heartbeat too: the moves asked of this node through Redis
 * (`hull vm migrate ID --to NODE --cluster URL`), each in a thread of its
 * own, answered under its ticket. */
void cluster_moves_check(struct redisContext *c);

/* sandboxes.c, for cluster_move.c: a sandbox that came from another node
 * (its keeper pid on sock, its VM running) into the table; they are its
 * from here on, also on failure (its keeper told to end). */
int sandboxes_insert(const char *id, const char *tenant, const char *container, const char *spec,
                     unsigned lifetime_s, pid_t pid, int sock, hull_error *err);
/* Sandbox id moved away: marked ending (a request for it is forwarded to
 * its node from then on), its keeper ended, out of the table, recorded
 * "destroyed" with reason. */
void sandboxes_end(const char *id, const char *reason);

#endif
