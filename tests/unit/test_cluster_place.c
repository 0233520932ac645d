/* Unit tests of placement (service/cluster_place.c) over node lists as the
 * registry gives them: spread, binpack, pins, labels, capacity, microVM
 * slots, down and draining nodes, anti-affinity by metadata, and the errors
 * that say why nothing fits. Redis and
 * real nodes: tests/integration/test_cluster.py. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "service/cluster.h"
#include "util/error.h"

#define MiB (1ll << 20)

static json_object *node(const char *name, const char *state, long long free_mem, int sandboxes,
                         int vms, int slots, const char *zone)
{
    json_object *o = json_object_new_object();
    json_object_object_add(o, "name", json_object_new_string(name));
    json_object_object_add(o, "state", json_object_new_string(state));
    json_object_object_add(o, "free_memory", json_object_new_int64(free_mem));
    json_object_object_add(o, "sandboxes", json_object_new_int(sandboxes));
    json_object_object_add(o, "vms", json_object_new_int(vms));
    json_object_object_add(o, "vm_slots", json_object_new_int(slots));
    json_object *l = json_object_new_object();
    json_object_object_add(l, "zone", json_object_new_string(zone));
    json_object_object_add(o, "labels", l);
    return o;
}

/* a: 800 MiB free, 1 sandbox; b: 300 MiB, 3; c: 1000 MiB, 0, down. */
static json_object *fleet(void)
{
    json_object *a = json_object_new_array();
    json_object_array_add(a, node("a", "up", 800 * MiB, 1, 0, 2, "x"));
    json_object_array_add(a, node("b", "up", 300 * MiB, 3, 2, 2, "y"));
    json_object_array_add(a, node("c", "down", 1000 * MiB, 0, 0, 2, "x"));
    return a;
}

static int place(json_object *nodes, struct hull_place_req q, char *out, hull_error *err)
{
    return hull_cluster_place(nodes, &q, out, 64, err);
}

static void test_spread_and_binpack(void **state)
{
    (void)state;
    json_object *n = fleet();
    char out[64];
    hull_error e = NULL;
    assert_int_equal(
        place(n, (struct hull_place_req){.policy = "spread", .memory = 100 * MiB}, out, &e), 0);
    assert_string_equal(out, "a"); /* fewer sandboxes; c is down */
    assert_int_equal(
        place(n, (struct hull_place_req){.policy = "binpack", .memory = 100 * MiB}, out, &e), 0);
    assert_string_equal(out, "b"); /* least free that fits */
    assert_int_equal(
        place(n, (struct hull_place_req){.policy = "binpack", .memory = 400 * MiB}, out, &e), 0);
    assert_string_equal(out, "a"); /* b has no room */
    json_object_put(n);
}

static void test_constraints(void **state)
{
    (void)state;
    json_object *n = fleet(), *want = json_object_new_object();
    char out[64];
    hull_error e = NULL;
    json_object_object_add(want, "zone", json_object_new_string("y"));
    assert_int_equal(place(n, (struct hull_place_req){.labels = want, .memory = MiB}, out, &e), 0);
    assert_string_equal(out, "b");
    assert_int_equal(place(n, (struct hull_place_req){.pin = "a", .memory = MiB}, out, &e), 0);
    assert_string_equal(out, "a");
    /* b's microVM slots are taken. */
    assert_int_equal(
        place(n, (struct hull_place_req){.labels = want, .memory = MiB, .microvm = true}, out, &e),
        -1);
    assert_int_equal(hull_error_code(e), ENOSPC);
    assert_non_null(strstr(hull_error_msg(e), "microVM slot"));
    hull_error_free(&e);
    json_object_object_add(want, "zone", json_object_new_string("none"));
    assert_int_equal(place(n, (struct hull_place_req){.labels = want, .memory = MiB}, out, &e), -1);
    assert_int_equal(hull_error_code(e), ENOSPC);
    assert_non_null(strstr(hull_error_msg(e), "placement.labels"));
    hull_error_free(&e);
    json_object_put(want);
    json_object_put(n);
}

static void test_errors(void **state)
{
    (void)state;
    json_object *n = fleet();
    char out[64] = "unchanged";
    hull_error e = NULL;
    assert_int_equal(place(n, (struct hull_place_req){.pin = "zz", .memory = MiB}, out, &e), -1);
    assert_int_equal(hull_error_code(e), EINVAL);
    assert_non_null(strstr(hull_error_msg(e), "placement.node"));
    hull_error_free(&e);
    assert_int_equal(place(n, (struct hull_place_req){.pin = "c", .memory = MiB}, out, &e), -1);
    assert_int_equal(hull_error_code(e), EHOSTDOWN);
    hull_error_free(&e);
    assert_int_equal(place(n, (struct hull_place_req){.memory = 900 * MiB}, out, &e), -1);
    assert_int_equal(hull_error_code(e), ENOSPC);
    hull_error_free(&e);
    assert_string_equal(out, "unchanged");
    json_object *empty = json_object_new_array();
    assert_int_equal(place(empty, (struct hull_place_req){.memory = MiB}, out, &e), -1);
    hull_error_free(&e);
    json_object_put(empty);
    json_object_put(n);
}

/* A draining node (cluster_drain.c) takes nothing new, pinned or not. */
static void test_draining_is_skipped(void **state)
{
    (void)state;
    json_object *n = fleet();
    json_object_object_add(json_object_array_get_idx(n, 0), "draining",
                           json_object_new_string("1"));
    char out[64];
    hull_error e = NULL;
    assert_int_equal(
        place(n, (struct hull_place_req){.policy = "spread", .memory = 100 * MiB}, out, &e), 0);
    assert_string_equal(out, "b");
    assert_int_equal(place(n, (struct hull_place_req){.pin = "a", .memory = MiB}, out, &e), -1);
    assert_int_equal(hull_error_code(e), EHOSTDOWN);
    assert_non_null(strstr(hull_error_msg(e), "draining"));
    hull_error_free(&e);
    json_object_put(n);
}

/* A sandbox record as the registry lists them. */
static json_object *rec(const char *node, const char *meta)
{
    json_object *o = json_object_new_object();
    json_object_object_add(o, "node", json_object_new_string(node));
    if (meta)
        json_object_object_add(o, "metadata", json_object_new_string(meta));
    return o;
}

static void test_anti_affinity(void **state)
{
    (void)state;
    /* d: up, 1000 MiB free, 0 sandboxes: spread's first choice. */
    json_object *n = fleet(), *want = json_object_new_object(), *all = json_object_new_array();
    json_object_array_add(n, node("d", "up", 1000 * MiB, 0, 0, 2, "x"));
    json_object_object_add(want, "app", json_object_new_string("web"));
    json_object_array_add(all, rec("d", "{\"app\":\"web\",\"team\":\"ml\"}"));
    json_object_array_add(all, rec("a", "{\"app\":\"db\"}"));
    json_object_array_add(all, rec("b", NULL));
    json_object_array_add(all, rec("c", "not json"));
    char out[64];
    hull_error e = NULL;
    struct hull_place_req q = {.policy = "spread", .memory = 100 * MiB};
    assert_int_equal(place(n, q, out, &e), 0);
    assert_string_equal(out, "d"); /* no anti-affinity: policy */
    q.anti = want;
    q.sandboxes = all;
    assert_int_equal(hull_cluster_affinity_count(&q, "d"), 1);
    assert_int_equal(hull_cluster_affinity_count(&q, "a"), 0);
    assert_int_equal(hull_cluster_affinity_count(&q, "c"), 0);
    assert_int_equal(place(n, q, out, &e), 0);
    assert_string_equal(out, "a"); /* d runs app=web: the next by policy */
    q.policy = "binpack";
    assert_int_equal(place(n, q, out, &e), 0);
    assert_string_equal(out, "b"); /* binpack among those without one */
    /* Every node that fits runs one: the one with the fewest, unless required. */
    json_object_array_add(all, rec("a", "{\"app\":\"web\"}"));
    json_object_array_add(all, rec("b", "{\"app\":\"web\"}"));
    json_object_array_add(all, rec("b", "{\"app\":\"web\"}"));
    q.policy = "spread";
    assert_int_equal(place(n, q, out, &e), 0);
    assert_string_equal(out, "d"); /* a and d have one, b two; spread: d (no sandboxes) */
    q.policy = "binpack";
    assert_int_equal(place(n, q, out, &e), 0);
    assert_string_equal(out, "a"); /* binpack between a and d: a (less free) */
    q.policy = "spread";
    q.anti_required = true;
    strcpy(out, "unchanged");
    assert_int_equal(place(n, q, out, &e), -1);
    assert_int_equal(hull_error_code(e), ENOSPC);
    assert_non_null(strstr(hull_error_msg(e), "placement.anti_affinity"));
    assert_string_equal(out, "unchanged");
    hull_error_free(&e);
    /* Required, and a node without one fits only by its labels' choice. */
    json_object *zone = json_object_new_object();
    json_object_object_add(zone, "zone", json_object_new_string("x"));
    q.labels = zone;
    json_object *all2 = json_object_new_array();
    json_object_array_add(all2, rec("d", "{\"app\":\"web\"}"));
    q.sandboxes = all2;
    assert_int_equal(place(n, q, out, &e), 0);
    assert_string_equal(out, "a"); /* zone x: a, d (c down); d runs one */
    /* A pair must match whole: app=web alone does not match app=web2. */
    json_object_object_add(want, "app", json_object_new_string("web2"));
    assert_int_equal(hull_cluster_affinity_count(&q, "d"), 0);
    json_object_put(all2);
    json_object_put(zone);
    json_object_put(all);
    json_object_put(want);
    json_object_put(n);
}

static void test_node_names(void **state)
{
    (void)state;
    hull_error e = NULL;
    assert_int_equal(hull_node_name_check("n-1.zone_a", &e), 0);
    assert_int_equal(hull_node_name_check("", &e), -1);
    hull_error_free(&e);
    assert_int_equal(hull_node_name_check("a b", &e), -1);
    hull_error_free(&e);
    char long_name[80];
    memset(long_name, 'x', sizeof(long_name) - 1);
    long_name[sizeof(long_name) - 1] = '\0';
    assert_int_equal(hull_node_name_check(long_name, &e), -1);
    hull_error_free(&e);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_spread_and_binpack),
        cmocka_unit_test(test_constraints),
        cmocka_unit_test(test_errors),
        cmocka_unit_test(test_anti_affinity),
        cmocka_unit_test(test_node_names),
        cmocka_unit_test(test_draining_is_skipped),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
