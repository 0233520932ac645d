/* Runs and sandboxes as rows. Every change of a run's state is a
 * conditional UPDATE, the one place where concurrent processes (the worker
 * finishing a run, a restarted hulld interrupting it, a DELETE cancelling
 * it) decide who wins. */
#include <errno.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "service/store.h"
#include "util/clock.h"
#include "util/error.h"
#include "util/json.h"
#include "util/log.h"

/* The time a row records: the caller's (it answers with it later without
 * reading the row back), or now. */
static const char *stamp(char now[40], const char *at)
{
    if (at)
        return at;
    hull_rfc3339_now(now, 40);
    return now;
}

int hull_run_insert(struct hull_store *s, const char *id, const char *tenant, const char *state,
                    const char *queue_job, const char *at, hull_error *err)
{
    char buf[40];
    const char *now = stamp(buf, at);
    const char *args[] = {id, tenant, state, now, queue_job};
    return hull_store_exec(s,
                           "INSERT INTO runs (id, tenant, state, created, queue_job) "
                           "VALUES (?, ?, ?, ?, ?)",
                           args, 5, NULL, err);
}

int hull_run_count_queued(struct hull_store *s, const char *tenant, unsigned *n, hull_error *err)
{
    const char *args[] = {tenant};
    json_object *rows = hull_store_query(s,
                                         "SELECT COUNT(*) AS n FROM runs WHERE tenant = ? AND "
                                         "queue_job IS NOT NULL AND state IN ('queued', 'running')",
                                         args, 1, err);
    if (rows == NULL)
        return -1;
    json_object *v = hj_get(json_object_array_get_idx(rows, 0), "n");
    *n = v ? (unsigned)json_object_get_int64(v) : 0;
    json_object_put(rows);
    return 0;
}

int hull_run_insert_running(struct hull_store *s, const char *id, const char *tenant, pid_t pid,
                            unsigned long long start, const char *at, hull_error *err)
{
    char buf[40], p[16], st[32];
    const char *now = stamp(buf, at);
    snprintf(p, sizeof(p), "%d", (int)pid);
    snprintf(st, sizeof(st), "%llu", start);
    const char *args[] = {id, tenant, now, now, p, st};
    return hull_store_exec(s,
                           "INSERT INTO runs (id, tenant, state, created, started, worker_pid, "
                           "worker_start) VALUES (?, ?, 'running', ?, ?, ?, ?)",
                           args, 6, NULL, err);
}

int hull_run_start(struct hull_store *s, const char *id, pid_t pid, unsigned long long start,
                   const char *at, hull_error *err)
{
    char buf[40], p[16], st[32];
    const char *now = stamp(buf, at);
    snprintf(p, sizeof(p), "%d", (int)pid);
    snprintf(st, sizeof(st), "%llu", start);
    const char *args[] = {now, p, st, id};
    int changed = 0;
    if (hull_store_exec(s,
                        "UPDATE runs SET state = 'running', started = ?, worker_pid = ?, "
                        "worker_start = ? WHERE id = ? AND state = 'queued'",
                        args, 4, &changed, err) < 0)
        return -1;
    return changed;
}

/* hull_run_finish's transaction: 1 committed, 0 nothing to change (the run
 * already ended), -1 failed (the database says why); *st is the statement
 * in use, for the caller to release. */
static int finish_steps(struct hull_store *s, sqlite3 *db, sqlite3_stmt **st, const char *id,
                        const char *now, const char *verdict, const char *result_json)
{
    if (hull_store_prepare(s,
                           "UPDATE runs SET state = 'finished', finished = ?, verdict = ? "
                           "WHERE id = ? AND state IN ('queued', 'running')",
                           st, NULL) < 0)
        return -1;
    sqlite3_bind_text(*st, 1, now, -1, SQLITE_STATIC);
    sqlite3_bind_text(*st, 2, verdict, -1, SQLITE_STATIC);
    sqlite3_bind_text(*st, 3, id, -1, SQLITE_STATIC);
    if (sqlite3_step(*st) != SQLITE_DONE)
        return -1;
    hull_store_release(s, *st);
    *st = NULL;
    if (sqlite3_changes(db) == 0)
        return 0;
    if (hull_store_prepare(s, "INSERT INTO results (run_id, result) VALUES (?, ?)", st, NULL) < 0)
        return -1;
    sqlite3_bind_text(*st, 1, id, -1, SQLITE_STATIC);
    sqlite3_bind_text(*st, 2, result_json, -1, SQLITE_STATIC);
    if (sqlite3_step(*st) != SQLITE_DONE ||
        sqlite3_exec(db, "COMMIT", NULL, NULL, NULL) != SQLITE_OK)
        return -1;
    return 1;
}

int hull_run_finish(struct hull_store *s, const char *id, const char *result_json,
                    const char *verdict_name, hull_error *err)
{
    return hull_run_finish_at(s, id, result_json, verdict_name, NULL, err);
}

int hull_run_finish_at(struct hull_store *s, const char *id, const char *result_json,
                       const char *verdict_name, const char *at, hull_error *err)
{
    char buf[40], verdict[32] = "";
    const char *now = stamp(buf, at);
    if (verdict_name) {
        snprintf(verdict, sizeof(verdict), "%s", verdict_name);
    } else {
        json_object *r = json_tokener_parse(result_json);
        json_object *v = r ? hj_get(r, "verdict") : NULL;
        snprintf(verdict, sizeof(verdict), "%s", v ? json_object_get_string(v) : "internal_error");
        json_object_put(r);
    }

    sqlite3 *db = hull_store_lock(s);
    if (sqlite3_exec(db, "BEGIN IMMEDIATE", NULL, NULL, NULL) != SQLITE_OK) {
        hull_store_fail(s, "finish run", err);
        hull_store_write_done(s, -1, err ? *err : NULL);
        hull_store_unlock(s);
        return -1;
    }
    sqlite3_stmt *st = NULL;
    int r = finish_steps(s, db, &st, id, now, verdict, result_json);
    if (r < 0) {
        hull_store_fail(s, "finish run", err);
        hull_store_write_done(s, -1, err ? *err : NULL);
        hull_store_release(s, st);
        sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
    } else {
        /* 0: already finished, cancelled or interrupted: the first word stands. */
        if (r == 0)
            sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
        hull_store_write_done(s, 0, NULL);
        hull_store_release(s, st);
    }
    hull_store_unlock(s);
    return r;
}

int hull_run_transition(struct hull_store *s, const char *id, const char *const *from,
                        const char *to, hull_error *err)
{
    char now[40];
    hull_rfc3339_now(now, sizeof(now));
    const char *args[6] = {to, now, id};
    int n = 3;
    char sql[256] = "UPDATE runs SET state = ?, finished = ? WHERE id = ? AND state IN (";
    for (size_t i = 0; from[i] && n < 6; i++) {
        strcat(sql, i ? ", ?" : "?");
        args[n++] = from[i];
    }
    strcat(sql, ")");
    int changed = 0;
    if (hull_store_exec(s, sql, args, n, &changed, err) < 0)
        return -1;
    return changed;
}

/* Merge the stored result's fields into the run object. */
static void add_result(json_object *run)
{
    json_object *text = hj_get(run, "result");
    if (text == NULL)
        return;
    json_object *res = json_tokener_parse(json_object_get_string(text));
    json_object_object_del(run, "result");
    if (res == NULL)
        return;
    json_object_object_foreach(res, k, v)
    {
        if (strcmp(k, "id") != 0 && strcmp(k, "state") != 0)
            json_object_object_add(run, k, json_object_get(v));
    }
    json_object_put(res);
}

static json_object *one_row(json_object *rows, const char *what, const char *id, hull_error *err)
{
    if (rows == NULL)
        return NULL;
    if (json_object_array_length(rows) == 0) {
        json_object_put(rows);
        hull_error_set(err, ENOENT, "%s '%s' not found", what, id);
        return NULL;
    }
    json_object *o = json_object_get(json_object_array_get_idx(rows, 0));
    json_object_put(rows);
    return o;
}

json_object *hull_run_get(struct hull_store *s, const char *id, const char *tenant, hull_error *err)
{
    const char *args[] = {id, tenant, tenant};
    json_object *o = one_row(
        hull_store_query(s,
                         "SELECT runs.id AS id, state, created, started, finished, "
                         "CASE WHEN queue_job IS NULL THEN NULL ELSE 1 END AS queue, result "
                         "FROM runs LEFT JOIN results ON results.run_id = runs.id "
                         "WHERE runs.id = ? AND (? IS NULL OR tenant = ?)",
                         args, 3, err),
        "run", id, err);
    if (o == NULL)
        return NULL;
    json_object *q = hj_get(o, "queue");
    if (q)
        json_object_object_add(o, "queue", json_object_new_boolean(1));
    add_result(o);
    return o;
}

int hull_run_row(struct hull_store *s, const char *id, struct hull_run_row *row, hull_error *err)
{
    const char *args[] = {id};
    json_object *o = one_row(hull_store_query(s,
                                              "SELECT id, tenant, state, queue_job, worker_pid, "
                                              "worker_start FROM runs WHERE id = ?",
                                              args, 1, err),
                             "run", id, err);
    if (o == NULL)
        return -1;
    memset(row, 0, sizeof(*row));
    json_object *v;
    snprintf(row->id, sizeof(row->id), "%s", id);
    if ((v = hj_get(o, "tenant")))
        snprintf(row->tenant, sizeof(row->tenant), "%s", json_object_get_string(v));
    if ((v = hj_get(o, "state")))
        snprintf(row->state, sizeof(row->state), "%s", json_object_get_string(v));
    if ((v = hj_get(o, "queue_job")))
        snprintf(row->queue_job, sizeof(row->queue_job), "%s", json_object_get_string(v));
    if ((v = hj_get(o, "worker_pid")))
        row->worker_pid = (pid_t)json_object_get_int64(v);
    if ((v = hj_get(o, "worker_start")))
        row->worker_start = (unsigned long long)json_object_get_int64(v);
    json_object_put(o);
    return 0;
}

/* The ended runs hull_run_prune takes in one go (?1 the time, ?2 the limit):
 * the same set for both statements, oldest first. */
#define PRUNE_SET                                                                                  \
    "SELECT id FROM runs WHERE state IN ('finished', 'cancelled', 'interrupted') AND "             \
    "finished < ?1 ORDER BY finished, id LIMIT ?2"

/* One prune's transaction, under the lock: each statement of sql in turn
 * (?1 the time, ?2 the limit, where it has them); *removed is how many
 * rows statement `counted` changed. */
static int prune_steps(struct hull_store *s, sqlite3 *db, sqlite3_stmt **st, const char *const *sql,
                       size_t n, size_t counted, const char *before, unsigned limit,
                       unsigned *removed)
{
    for (size_t i = 0; i < n; i++) {
        if (hull_store_prepare(s, sql[i], st, NULL) < 0)
            return -1;
        /* A statement without ?1 or ?2 refuses the binding (SQLITE_RANGE): harmless. */
        if (sqlite3_bind_parameter_count(*st) >= 1)
            sqlite3_bind_text(*st, 1, before, -1, SQLITE_STATIC);
        if (sqlite3_bind_parameter_count(*st) >= 2)
            sqlite3_bind_int64(*st, 2, limit);
        if (sqlite3_step(*st) != SQLITE_DONE)
            return -1;
        if (i == counted)
            *removed = (unsigned)sqlite3_changes(db);
        hull_store_release(s, *st);
        *st = NULL;
    }
    return sqlite3_exec(db, "COMMIT", NULL, NULL, NULL) == SQLITE_OK ? 0 : -1;
}

int hull_store_prune(struct hull_store *s, const char *what, const char *const *sql, size_t n,
                     size_t counted, const char *before, unsigned limit, unsigned *removed,
                     hull_error *err)
{
    *removed = 0;
    cleanup_store_stmt struct hull_store_stmt q = hull_store_begin(s);
    if (sqlite3_exec(q.db, "BEGIN IMMEDIATE", NULL, NULL, NULL) != SQLITE_OK) {
        hull_store_fail(s, what, err);
        hull_store_write_done(s, -1, err ? *err : NULL);
        return -1;
    }
    if (prune_steps(s, q.db, &q.st, sql, n, counted, before, limit, removed) < 0) {
        hull_store_fail(s, what, err);
        hull_store_write_done(s, -1, err ? *err : NULL);
        hull_store_release(s, q.st);
        q.st = NULL;
        sqlite3_exec(q.db, "ROLLBACK", NULL, NULL, NULL);
        *removed = 0;
        return -1;
    }
    hull_store_write_done(s, 0, NULL);
    return 0;
}

int hull_run_prune(struct hull_store *s, const char *before, unsigned limit, unsigned *removed,
                   hull_error *err)
{
    static const char *const sql[] = {
        "DELETE FROM results WHERE run_id IN (" PRUNE_SET ")",
        "DELETE FROM runs WHERE id IN (" PRUNE_SET ")",
    };
    return hull_store_prune(s, "prune runs", sql, 2, 1, before, limit, removed, err);
}

int hull_sandbox_prune(struct hull_store *s, const char *before, unsigned limit, unsigned *removed,
                       hull_error *err)
{
    static const char *const sql[] = {
        "DELETE FROM sandboxes WHERE id IN (SELECT id FROM sandboxes WHERE state = 'destroyed' "
        "AND destroyed < ?1 ORDER BY destroyed, id LIMIT ?2)",
    };
    return hull_store_prune(s, "prune sandboxes", sql, 1, 0, before, limit, removed, err);
}

int hull_run_rows_in_state(struct hull_store *s, const char *state, struct hull_run_row **rows,
                           size_t *count, hull_error *err)
{
    *rows = NULL;
    *count = 0;
    const char *args[] = {state};
    json_object *a = hull_store_query(s, "SELECT id FROM runs WHERE state = ?", args, 1, err);
    if (a == NULL)
        return -1;
    size_t n = json_object_array_length(a);
    *rows = calloc(n ? n : 1, sizeof(**rows));
    for (size_t i = 0; *rows && i < n; i++) {
        const char *id = json_object_get_string(hj_get(json_object_array_get_idx(a, i), "id"));
        hull_error e = NULL;
        if (hull_run_row(s, id, &(*rows)[*count], &e) == 0)
            (*count)++;
        else /* gone since the query (deleted): not listed */
            hull_debug("run %s: %s", id, hull_error_msg(e));
        hull_error_free(&e);
    }
    json_object_put(a);
    return *rows ? 0 : hull_error_set(err, ENOMEM, "out of memory");
}

json_object *hull_run_list(struct hull_store *s, const char *tenant, const char *state, int limit,
                           hull_error *err)
{
    char lim[16];
    snprintf(lim, sizeof(lim), "%d", limit);
    const char *args[] = {tenant, tenant, state, state, lim};
    json_object *rows =
        hull_store_query(s,
                         "SELECT id, state, created, started, finished, verdict FROM runs "
                         "WHERE (? IS NULL OR tenant = ?) AND (? IS NULL OR state = ?) "
                         "ORDER BY created DESC, id DESC LIMIT ?",
                         args, 5, err);
    if (rows == NULL)
        return NULL;
    json_object *o = json_object_new_object();
    json_object_object_add(o, "runs", rows);
    return o;
}

/* ---- sandboxes ---- */

int hull_sandbox_rec_insert(struct hull_store *s, const char *id, const char *tenant,
                            const char *isolation, const char *container, unsigned lifetime_s,
                            hull_error *err)
{
    char now[40], life[16];
    hull_rfc3339_now(now, sizeof(now));
    snprintf(life, sizeof(life), "%u", lifetime_s);
    const char *args[] = {id, tenant, isolation, container, now, life};
    return hull_store_exec(s,
                           "INSERT INTO sandboxes (id, tenant, state, isolation, container, "
                           "created, lifetime_s) VALUES (?, ?, 'running', ?, ?, ?, ?)",
                           args, 6, NULL, err);
}

int hull_sandbox_rec_state(struct hull_store *s, const char *id, const char *state,
                           const char *reason, hull_error *err)
{
    char now[40];
    hull_rfc3339_now(now, sizeof(now));
    bool gone = strcmp(state, "destroyed") == 0;
    const char *args[] = {state, gone ? now : NULL, reason, id};
    return hull_store_exec(s,
                           "UPDATE sandboxes SET state = ?, destroyed = ?, reason = ? "
                           "WHERE id = ? AND state != 'destroyed'",
                           args, 4, NULL, err);
}

int hull_sandbox_rec_destroy_all(struct hull_store *s, const char *reason, hull_error *err)
{
    char now[40];
    hull_rfc3339_now(now, sizeof(now));
    const char *args[] = {now, reason};
    return hull_store_exec(s,
                           "UPDATE sandboxes SET state = 'destroyed', destroyed = ?, reason = ? "
                           "WHERE state != 'destroyed' AND "
                           "NOT (state = 'paused' AND isolation = 'microvm')",
                           args, 2, NULL, err);
}

json_object *hull_sandbox_rec_suspended(struct hull_store *s, hull_error *err)
{
    return hull_store_query(s,
                            "SELECT id, tenant, container, lifetime_s FROM sandboxes "
                            "WHERE state = 'paused' AND isolation = 'microvm'",
                            NULL, 0, err);
}

json_object *hull_sandbox_rec_live_vms(struct hull_store *s, hull_error *err)
{
    return hull_store_query(s,
                            "SELECT id, container FROM sandboxes WHERE isolation = 'microvm' "
                            "AND state NOT IN ('destroyed', 'paused')",
                            NULL, 0, err);
}

int hull_sandbox_rec_metadata(struct hull_store *s, const char *id, const char *metadata,
                              hull_error *err)
{
    const char *args[] = {metadata, id};
    return hull_store_exec(s, "UPDATE sandboxes SET metadata = ? WHERE id = ?", args, 2, NULL, err);
}

int hull_sandbox_rec_lifetime(struct hull_store *s, const char *id, unsigned lifetime_s,
                              hull_error *err)
{
    char life[16];
    snprintf(life, sizeof(life), "%u", lifetime_s);
    const char *args[] = {life, id};
    return hull_store_exec(s, "UPDATE sandboxes SET lifetime_s = ? WHERE id = ?", args, 2, NULL,
                           err);
}

#define SANDBOX_COLUMNS "id, state, isolation, created, lifetime_s, destroyed, reason, metadata"

json_object *hull_sandbox_rec_get(struct hull_store *s, const char *id, const char *tenant,
                                  hull_error *err)
{
    const char *args[] = {id, tenant, tenant};
    return one_row(hull_store_query(s,
                                    "SELECT " SANDBOX_COLUMNS " FROM sandboxes "
                                    "WHERE id = ? AND (? IS NULL OR tenant = ?)",
                                    args, 3, err),
                   "sandbox", id, err);
}

json_object *hull_sandbox_rec_list(struct hull_store *s, const char *tenant, hull_error *err)
{
    const char *args[] = {tenant, tenant};
    json_object *rows = hull_store_query(s,
                                         "SELECT " SANDBOX_COLUMNS " FROM sandboxes "
                                         "WHERE (? IS NULL OR tenant = ?) AND "
                                         "state != 'destroyed' ORDER BY created DESC",
                                         args, 2, err);
    if (rows == NULL)
        return NULL;
    json_object *o = json_object_new_object();
    json_object_object_add(o, "sandboxes", rows);
    return o;
}
