/* hull cluster drain NODE --cluster redis://HOST:PORT [--json] [--no-wait]
 * hull vm migrate ID --to NODE --cluster redis://HOST:PORT [--mode M] [--timeout S]
 *
 * Marks the node draining in the Redis registry (docs/cluster.md,
 * "Draining a node"): placement skips it, and its hulld, seeing the mark,
 * moves its running microVM sandboxes to other nodes and writes a report,
 * which this prints (waiting for the end unless --no-wait). Exit 1 when a
 * sandbox could not be moved or the node went down meanwhile. */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "service/cluster.h"
#include "util/error.h"
#include "util/json.h"

static const char *str(json_object *o, const char *k)
{
    json_object *v = hj_get(o, k);
    return v ? json_object_get_string(v) : "-";
}

static void table(json_object *rep)
{
    json_object *a = hj_get(rep, "sandboxes");
    printf("%-24s %-9s %-7s %-16s %s\n", "SANDBOX", "ISOLATION", "RESULT", "NODE", "DETAIL");
    for (size_t i = 0; a && i < json_object_array_length(a); i++) {
        json_object *s = json_object_array_get_idx(a, i);
        char detail[512];
        if (hj_get(s, "downtime_ms"))
            snprintf(detail, sizeof(detail), "downtime %s ms, total %s ms", str(s, "downtime_ms"),
                     str(s, "total_ms"));
        else
            snprintf(detail, sizeof(detail), "%s",
                     hj_get(s, "error") ? str(s, "error") : str(s, "reason"));
        printf("%-24s %-9s %-7s %-16s %s\n", str(s, "id"), str(s, "isolation"), str(s, "result"),
               str(s, "node"), detail);
    }
    printf("node %s: %s", str(rep, "node"), str(rep, "state"));
    if (hj_get(rep, "moved"))
        printf(" (moved %s, stayed %s, failed %s)", str(rep, "moved"), str(rep, "stayed"),
               str(rep, "failed"));
    printf("\n");
}

/* The node is up in the registry (a down one never finishes its drain). */
static int node_up(redisContext *rc, const char *name, unsigned down_s, hull_error *err)
{
    cleanup_json json_object *a = hull_cluster_nodes(rc, down_s * 1000, err);
    if (a == NULL)
        return -1;
    for (size_t i = 0; i < json_object_array_length(a); i++) {
        json_object *n = json_object_array_get_idx(a, i);
        if (strcmp(str(n, "name"), name) == 0)
            return strcmp(str(n, "state"), "up") == 0;
    }
    return 0;
}

/* The move of sandbox id to node `to`, asked of the node that runs it
 * through Redis (hull_cluster_move_ask), as POST /v1/sandboxes/{id}/migrate
 * would make it; its answer printed as that request's is. */
int cluster_migrate(struct cli *cli, const char *url, const char *id, const char *to, bool cold,
                    unsigned timeout_s, unsigned down_s)
{
    hull_error err = NULL;
    if (hull_node_name_check(to, &err) < 0)
        return cli_fail(cli, &err, "vm migrate %s: --to", id);
    cleanup_redis redisContext *rc = hull_redis_connect(url, 5000, &err);
    if (rc == NULL)
        return cli_fail(cli, &err, "vm migrate %s", id);
    cleanup_json json_object *rec = hull_cluster_sbx_get(rc, id, &err);
    if (rec == NULL)
        return cli_fail(cli, &err, "vm migrate %s", id);
    char from[HULL_NODE_NAME_MAX + 1];
    snprintf(from, sizeof(from), "%s", str(rec, "node"));
    int up = node_up(rc, from, down_s, &err);
    if (up <= 0) {
        if (up == 0)
            hull_error_set(&err, EHOSTDOWN, "node %s, which runs it, is down", from);
        return cli_fail(cli, &err, "vm migrate %s", id);
    }
    char ticket[HULL_MOVE_TICKET_LEN];
    if (hull_cluster_move_ask(rc, from, id, to, cold, ticket, &err) < 0)
        return cli_fail(cli, &err, "vm migrate %s", id);
    cleanup_json json_object *st = NULL;
    for (unsigned polls = 1;; polls++) {
        usleep(250000);
        json_object_put(st);
        st = hull_cluster_move_state(rc, ticket, &err);
        if (st == NULL)
            return cli_fail(cli, &err, "vm migrate %s", id);
        if (strcmp(str(st, "state"), "done") == 0)
            break;
        /* Nothing waits forever: the node going down, or no answer. */
        up = polls % 8 == 0 ? node_up(rc, from, down_s, &err) : 1;
        if (up == 0)
            hull_error_set(&err, EHOSTDOWN, "node %s went down during the move", from);
        else if (up > 0 && polls / 4 >= timeout_s)
            hull_error_set(&err, ETIMEDOUT,
                           "no answer from node %s in %u s (move %s: the move may go on)", from,
                           timeout_s, ticket);
        if (up <= 0 || polls / 4 >= timeout_s)
            return cli_fail(cli, &err, "vm migrate %s", id);
    }
    json_object *res = hj_get(st, "result");
    if (res == NULL || json_object_get_int(hj_get(st, "status")) != 200) {
        hull_error_set(&err, EREMOTEIO, "%s (node %s, %s)", str(st, "error"), from,
                       str(st, "status"));
        return cli_fail(cli, &err, "vm migrate %s", id);
    }
    printf("%s\n", json_object_to_json_string_ext(res, JSON_C_TO_STRING_PLAIN));
    return 0;
}

int cluster_drain(struct cli *cli, const char *url, const char *node, bool as_json, bool wait,
                  unsigned down_s)
{
    hull_error err = NULL;
    if (hull_node_name_check(node, &err) < 0)
        return cli_fail(cli, &err, "cluster drain");
    cleanup_redis redisContext *rc = hull_redis_connect(url, 5000, &err);
    if (rc == NULL)
        return cli_fail(cli, &err, "cluster drain");
    if (hull_cluster_drain_mark(rc, node, &err) < 0)
        return cli_fail(cli, &err, "cluster drain %s", node);
    json_object *rep = NULL;
    for (unsigned polls = 0;; polls++) {
        json_object_put(rep);
        rep = hull_cluster_drain_report(rc, node, &err);
        if (rep == NULL)
            return cli_fail(cli, &err, "cluster drain %s", node);
        if (!wait || strcmp(str(rep, "state"), "done") == 0)
            break;
        int up = polls % 8 == 7 ? node_up(rc, node, down_s, &err) : 1;
        if (up <= 0) {
            json_object_put(rep);
            if (up < 0)
                return cli_fail(cli, &err, "cluster drain %s", node);
            hull_error_set(&err, EHOSTDOWN, "the node is down: it cannot move its sandboxes");
            return cli_fail(cli, &err, "cluster drain %s", node);
        }
        usleep(250000);
    }
    if (as_json)
        printf("%s\n", json_object_to_json_string_ext(rep, JSON_C_TO_STRING_PLAIN));
    else
        table(rep);
    json_object *failed = hj_get(rep, "failed");
    int rc_exit = failed && json_object_get_int(failed) > 0 ? 1 : 0;
    json_object_put(rep);
    return rc_exit;
}
