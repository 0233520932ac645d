/* Unit tests of the service store (src/lib/service): tokens are random,
 * stored only hashed, verified, revoked; a run ends once whoever races to
 * end it; ended runs are removed after their retention; the audit log refuses changes; a second
 * open migrates nothing; hulld's WAL checkpoints can be left to a connection of their own; a token
 * hulld verified before is refused once revoked. */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>
#include <sqlite3.h>

#include "service/store.h"
#include "util/error.h"
#include "util/fs.h"

struct fx {
    char dir[64];
    struct hull_store *st;
};

static int setup(void **state)
{
    struct fx *f = calloc(1, sizeof(*f));
    snprintf(f->dir, sizeof(f->dir), "/tmp/hull-store-XXXXXX");
    assert_non_null(mkdtemp(f->dir));
    hull_error err = NULL;
    assert_int_equal(hull_store_open(f->dir, &f->st, &err), 0);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fx *f = *state;
    hull_store_close(f->st);
    hull_error err = NULL;
    hull_rm_rf_at(AT_FDCWD, f->dir, &err);
    hull_error_free(&err);
    free(f);
    return 0;
}

static char *db_text(struct fx *f, const char *sql)
{
    char path[128], *out = NULL;
    snprintf(path, sizeof(path), "%s/hulld.db", f->dir);
    sqlite3 *db;
    sqlite3_stmt *st;
    assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
    assert_int_equal(sqlite3_prepare_v2(db, sql, -1, &st, NULL), SQLITE_OK);
    if (sqlite3_step(st) == SQLITE_ROW && sqlite3_column_text(st, 0))
        out = strdup((const char *)sqlite3_column_text(st, 0));
    sqlite3_finalize(st);
    sqlite3_close(db);
    return out;
}

static void test_tokens(void **state)
{
    struct fx *f = *state;
    hull_error err = NULL;
    char *a = NULL, *b = NULL;
    struct hull_token_info ia, ib, got;
    assert_int_equal(hull_token_create(f->st, HULL_ROLE_USER, "acme", &a, &ia, &err), 0);
    assert_int_equal(hull_token_create(f->st, HULL_ROLE_READER, "acme", &b, &ib, &err), 0);
    assert_int_equal(strlen(a), 5 + 64);
    assert_string_not_equal(a, b);
    /* Only the hash is stored: the secret appears nowhere in the file. */
    char *hash = db_text(f, "SELECT hash FROM tokens ORDER BY created LIMIT 1");
    assert_non_null(hash);
    assert_null(strstr(a, hash));
    free(hash);
    assert_int_equal(hull_token_verify(f->st, a, &got, &err), 0);
    assert_string_equal(got.id, ia.id);
    assert_string_equal(got.tenant, "acme");
    assert_int_equal(got.role, HULL_ROLE_USER);
    a[10] ^= 1;
    assert_int_equal(hull_token_verify(f->st, a, &got, &err), -1);
    assert_int_equal(hull_error_code(err), EACCES);
    hull_error_free(&err);
    assert_int_equal(hull_token_revoke(f->st, ib.id, &err), 0);
    assert_int_equal(hull_token_verify(f->st, b, &got, &err), -1);
    hull_error_free(&err);
    assert_int_equal(hull_token_revoke(f->st, "tnope", &err), -1);
    assert_int_equal(hull_error_code(err), ENOENT);
    hull_error_free(&err);
    free(a);
    free(b);
    assert_int_equal(hull_token_create(f->st, HULL_ROLE_USER, "a b", &a, &ia, &err), -1);
    assert_null(a);
    hull_error_free(&err);
}

/* Grants that weaken isolation: none unless given, kept with the token. */
static void test_token_grants(void **state)
{
    struct fx *f = *state;
    hull_error err = NULL;
    char *a = NULL, *b = NULL;
    struct hull_token_info ia, ib, got;
    unsigned allow = 0;
    assert_int_equal(hull_allow_parse("host-network,process-isolation", &allow, &err), 0);
    assert_int_equal(allow, HULL_ALLOW_HOST_NETWORK | HULL_ALLOW_PROCESS_ISOLATION);
    assert_int_equal(hull_allow_parse("host-network,seccomp-off", &allow, &err), -1);
    assert_non_null(strstr(hull_error_msg(err), "unknown grant 'seccomp-off'"));
    hull_error_free(&err);
    char text[64];
    hull_allow_format(HULL_ALLOW_HOST_NETWORK, text, sizeof(text));
    assert_string_equal(text, "host-network");
    assert_int_equal(hull_token_create_allowed(f->st, HULL_ROLE_USER, "acme",
                                               HULL_ALLOW_HOST_NETWORK, &a, &ia, &err),
                     0);
    assert_int_equal(hull_token_create(f->st, HULL_ROLE_ADMIN, "ops", &b, &ib, &err), 0);
    assert_int_equal(hull_token_verify(f->st, a, &got, &err), 0);
    assert_int_equal(got.allow, HULL_ALLOW_HOST_NETWORK);
    assert_int_equal(hull_token_verify(f->st, b, &got, &err), 0);
    assert_int_equal(got.allow, 0); /* an admin too has none it was not given */
    free(a);
    free(b);
    struct hull_audit_entry e = {.method = "POST",
                                 .path = "/v1/runs",
                                 .status = 200,
                                 .outcome = "ok",
                                 .grants = "host-network"};
    assert_int_equal(hull_audit_append(f->st, &e, &err), 0);
    json_object *l = hull_audit_list(f->st, NULL, 0, 10, &err);
    json_object *row = json_object_array_get_idx(json_object_object_get(l, "entries"), 0);
    assert_string_equal(json_object_get_string(json_object_object_get(row, "grants")),
                        "host-network");
    json_object_put(l);
}

static void test_run_ends_once(void **state)
{
    struct fx *f = *state;
    hull_error err = NULL;
    assert_int_equal(hull_run_insert(f->st, "r-1", "acme", "queued", NULL, NULL, &err), 0);
    assert_int_equal(hull_run_start(f->st, "r-1", 42, 7, NULL, &err), 1);
    assert_int_equal(hull_run_start(f->st, "r-1", 42, 7, NULL, &err), 0);
    assert_int_equal(hull_run_finish(f->st, "r-1", "{\"verdict\":\"ok\"}", NULL, &err), 1);
    /* A late second word (a restarted hulld, a duplicate) changes nothing. */
    assert_int_equal(hull_run_finish(f->st, "r-1", "{\"verdict\":\"killed\"}", "killed", &err), 0);
    static const char *const from[] = {"queued", "running", NULL};
    assert_int_equal(hull_run_transition(f->st, "r-1", from, "interrupted", &err), 0);
    json_object *o = hull_run_get(f->st, "r-1", "acme", &err);
    assert_non_null(o);
    assert_string_equal(json_object_get_string(json_object_object_get(o, "verdict")), "ok");
    assert_string_equal(json_object_get_string(json_object_object_get(o, "state")), "finished");
    json_object_put(o);
    /* Another tenant does not see it. */
    assert_null(hull_run_get(f->st, "r-1", "globex", &err));
    assert_int_equal(hull_error_code(err), ENOENT);
    hull_error_free(&err);
}

/* --run-retention: runs that ended before the cut go with their results,
 * in batches of at most the limit, oldest first; runs still queued or
 * running stay whatever their age. */
static void test_run_prune(void **state)
{
    struct fx *f = *state;
    hull_error err = NULL;
    static const char *const from[] = {"queued", NULL};
    const char *ends[] = {"2020-01-01T00:00:01.000000000Z", "2020-01-01T00:00:02.000000000Z",
                          "2020-01-01T00:00:03.000000000Z", "2030-01-01T00:00:00.000000000Z"};
    for (int i = 0; i < 4; i++) {
        char id[16];
        snprintf(id, sizeof(id), "r-%d", i);
        assert_int_equal(hull_run_insert(f->st, id, "acme", "queued", NULL, ends[0], &err), 0);
        assert_int_equal(hull_run_finish_at(f->st, id, "{\"verdict\":\"ok\"}", "ok", ends[i], &err),
                         1);
    }
    assert_int_equal(hull_run_insert(f->st, "r-q", "acme", "queued", NULL, ends[0], &err), 0);
    assert_int_equal(hull_run_insert(f->st, "r-c", "acme", "queued", NULL, ends[0], &err), 0);
    assert_int_equal(hull_run_transition(f->st, "r-c", from, "cancelled", &err), 1);
    unsigned n = 0;
    assert_int_equal(hull_run_prune(f->st, "2025-01-01T00:00:00Z", 2, &n, &err), 0);
    assert_int_equal(n, 2);
    assert_null(hull_run_get(f->st, "r-0", NULL, &err)); /* the oldest first */
    hull_error_free(&err);
    assert_null(hull_run_get(f->st, "r-1", NULL, &err));
    hull_error_free(&err);
    json_object *o = hull_run_get(f->st, "r-2", NULL, &err);
    assert_non_null(o);
    json_object_put(o);
    assert_int_equal(hull_run_prune(f->st, "2025-01-01T00:00:00Z", 2, &n, &err), 0);
    assert_int_equal(n, 1); /* fewer than the limit: nothing more to remove */
    assert_int_equal(hull_run_prune(f->st, "2025-01-01T00:00:00Z", 2, &n, &err), 0);
    assert_int_equal(n, 0);
    /* Left: the run that ended after the cut, the queued one, and the one
     * cancelled now (after the cut too); no result without its run. */
    char *left = db_text(f, "SELECT group_concat(id, ',') FROM (SELECT id FROM runs ORDER BY id)");
    assert_string_equal(left, "r-3,r-c,r-q");
    free(left);
    char *results = db_text(f, "SELECT group_concat(run_id, ',') FROM results");
    assert_string_equal(results, "r-3");
    free(results);
    /* A cut after everything still leaves the queued run. */
    assert_int_equal(hull_run_prune(f->st, "2099-01-01T00:00:00Z", 100, &n, &err), 0);
    assert_int_equal(n, 2);
    left = db_text(f, "SELECT group_concat(id, ',') FROM runs");
    assert_string_equal(left, "r-q");
    free(left);
}

static void test_audit_append_only(void **state)
{
    struct fx *f = *state;
    hull_error err = NULL;
    struct hull_audit_entry e = {
        .method = "POST", .path = "/v1/runs", .status = 401, .outcome = "unauthorized"};
    assert_int_equal(hull_audit_append(f->st, &e, &err), 0);
    assert_int_equal(hull_store_exec(f->st, "UPDATE audit SET status = 200", NULL, 0, NULL, &err),
                     -1);
    assert_non_null(strstr(hull_error_msg(err), "append-only"));
    hull_error_free(&err);
    assert_int_equal(hull_store_exec(f->st, "DELETE FROM audit", NULL, 0, NULL, &err), -1);
    hull_error_free(&err);
    json_object *l = hull_audit_list(f->st, NULL, 0, 10, &err);
    assert_int_equal(json_object_array_length(json_object_object_get(l, "entries")), 1);
    json_object_put(l);
}

/* --sandbox-retention and --audit-retention: destroyed sandboxes' rows
 * older than the cut go, live ones stay; the audit log loses only its
 * oldest entries, and only through the prune: any other DELETE is still
 * refused. */
static void test_sandbox_and_audit_prune(void **state)
{
    struct fx *f = *state;
    hull_error err = NULL;
    for (int i = 0; i < 3; i++) {
        char id[16];
        snprintf(id, sizeof(id), "s-%d", i);
        assert_int_equal(hull_sandbox_rec_insert(f->st, id, "acme", "container", "c", 600, &err),
                         0);
    }
    assert_int_equal(hull_store_exec(f->st,
                                     "UPDATE sandboxes SET state = 'destroyed', destroyed = "
                                     "CASE id WHEN 's-0' THEN '2020-01-01T00:00:00.000000000Z' "
                                     "ELSE '2030-01-01T00:00:00.000000000Z' END WHERE id != 's-2'",
                                     NULL, 0, NULL, &err),
                     0);
    unsigned n = 0;
    assert_int_equal(hull_sandbox_prune(f->st, "2025-01-01T00:00:00Z", 10, &n, &err), 0);
    assert_int_equal(n, 1);
    char *left = db_text(f, "SELECT group_concat(id, ',') FROM (SELECT id FROM sandboxes ORDER "
                            "BY id)");
    assert_string_equal(left, "s-1,s-2");
    free(left);
    /* The audit log: two old entries, one new, one of the future. */
    struct hull_audit_entry e = {
        .method = "POST", .path = "/v1/runs", .status = 200, .outcome = "ok"};
    for (int i = 0; i < 2; i++)
        assert_int_equal(hull_store_exec(f->st,
                                         "INSERT INTO audit (time, method, path, status, outcome) "
                                         "VALUES ('2020-01-01T00:00:00.000000000Z', 'POST', "
                                         "'/old', 200, 'ok')",
                                         NULL, 0, NULL, &err),
                         0);
    assert_int_equal(hull_audit_append(f->st, &e, &err), 0);
    assert_int_equal(hull_store_exec(f->st,
                                     "INSERT INTO audit (time, method, path, status, outcome) "
                                     "VALUES ('2099-01-01T00:00:00.000000000Z', 'POST', '/new', "
                                     "200, 'ok')",
                                     NULL, 0, NULL, &err),
                     0);
    assert_int_equal(hull_audit_prune(f->st, "2025-01-01T00:00:00Z", 1, &n, &err), 0);
    assert_int_equal(n, 1); /* the limit */
    assert_int_equal(hull_audit_prune(f->st, "2025-01-01T00:00:00Z", 10, &n, &err), 0);
    assert_int_equal(n, 1);
    left = db_text(f, "SELECT group_concat(path, ',') FROM (SELECT path FROM audit ORDER BY id)");
    assert_string_equal(left, "/v1/runs,/new");
    free(left);
    char *mark = db_text(f, "SELECT COUNT(*) FROM audit_trim");
    assert_string_equal(mark, "0");
    free(mark);
    /* Outside a prune nothing may go, the oldest entry included. */
    assert_int_equal(
        hull_store_exec(f->st, "DELETE FROM audit WHERE path = '/v1/runs'", NULL, 0, NULL, &err),
        -1);
    assert_non_null(strstr(hull_error_msg(err), "append-only"));
    hull_error_free(&err);
}

static void test_reopen(void **state)
{
    struct fx *f = *state;
    struct hull_store *again = NULL;
    hull_error err = NULL;
    assert_int_equal(hull_store_open(f->dir, &again, &err), 0);
    hull_store_close(again);
    char *v = db_text(f, "PRAGMA user_version");
    char *mode = db_text(f, "PRAGMA journal_mode");
    assert_string_equal(mode, "wal");
    free(v);
    free(mode);
}

/* A token verified (and so kept) by hulld's connection stops working on
 * the next request once revoked, by another process or by hulld itself. */
static void test_revoked_after_verified(void **state)
{
    struct fx *f = *state;
    hull_error err = NULL;
    char *a = NULL, *b = NULL;
    struct hull_token_info ia, ib, got;
    struct hull_store *cli = NULL; /* `hull token revoke`'s connection */
    assert_int_equal(hull_store_open(f->dir, &cli, &err), 0);
    assert_int_equal(hull_token_create(f->st, HULL_ROLE_USER, "acme", &a, &ia, &err), 0);
    assert_int_equal(hull_token_create(f->st, HULL_ROLE_ADMIN, "acme", &b, &ib, &err), 0);
    for (int i = 0; i < 2; i++) {
        assert_int_equal(hull_token_verify(f->st, a, &got, &err), 0);
        assert_int_equal(hull_token_verify(f->st, b, &got, &err), 0);
        assert_int_equal(got.role, HULL_ROLE_ADMIN);
    }
    assert_int_equal(hull_token_revoke(cli, ib.id, &err), 0);
    assert_int_equal(hull_token_verify(f->st, b, &got, &err), -1);
    assert_int_equal(hull_error_code(err), EACCES);
    hull_error_free(&err);
    assert_int_equal(hull_token_verify(f->st, a, &got, &err), 0);
    assert_string_equal(got.id, ia.id);
    assert_int_equal(hull_token_revoke(f->st, ia.id, &err), 0);
    assert_int_equal(hull_token_verify(f->st, a, &got, &err), -1);
    hull_error_free(&err);
    hull_store_close(cli);
    free(a);
    free(b);
}

static long long db_size(struct fx *f)
{
    char path[128];
    struct stat sb;
    snprintf(path, sizeof(path), "%s/hulld.db", f->dir);
    assert_int_equal(stat(path, &sb), 0);
    return (long long)sb.st_size;
}

/* hulld's connection leaves the WAL alone (no checkpoint inside a
 * request's commit); a checkpoint from a connection of its own copies it
 * into the database file. */
static void test_deferred_checkpoint(void **state)
{
    struct fx *f = *state;
    hull_error err = NULL;
    struct hull_store *ck = NULL;
    assert_int_equal(hull_store_defer_checkpoints(f->st, &err), 0);
    assert_int_equal(hull_store_open(f->dir, &ck, &err), 0);
    long long before = db_size(f);
    /* Well over the 1000 pages at which SQLite would checkpoint itself. */
    for (int i = 0; i < 400; i++) {
        char id[32];
        snprintf(id, sizeof(id), "r-%d", i);
        assert_int_equal(hull_run_insert(f->st, id, "acme", "queued", NULL, NULL, &err), 0);
        assert_int_equal(hull_run_finish(f->st, id, "{\"verdict\":\"ok\"}", "ok", &err), 1);
    }
    assert_int_equal(db_size(f), before); /* all of it still in the WAL */
    assert_true(hull_store_checkpoint_due(f->st));
    assert_false(hull_store_checkpoint_due(f->st)); /* noted once */
    assert_int_equal(hull_store_checkpoint(ck, &err), 0);
    assert_true(db_size(f) > before);
    hull_store_close(ck);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_token_grants, setup, teardown),
        cmocka_unit_test_setup_teardown(test_tokens, setup, teardown),
        cmocka_unit_test_setup_teardown(test_run_ends_once, setup, teardown),
        cmocka_unit_test_setup_teardown(test_sandbox_and_audit_prune, setup, teardown),
        cmocka_unit_test_setup_teardown(test_run_prune, setup, teardown),
        cmocka_unit_test_setup_teardown(test_audit_append_only, setup, teardown),
        cmocka_unit_test_setup_teardown(test_reopen, setup, teardown),
        cmocka_unit_test_setup_teardown(test_deferred_checkpoint, setup, teardown),
        cmocka_unit_test_setup_teardown(test_revoked_after_verified, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
