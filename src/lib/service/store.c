/* The service database: open, pragmas, schema migrations. */
#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "service/store.h"
#include "util/error.h"
#include "util/fs.h"

#define STMT_CACHE  48
#define TOKEN_CACHE 32

struct hull_store {
    sqlite3 *db;
    pthread_mutex_t mu;
    /* Prepared statements by SQL text: parsing SQL was a third of hulld's
     * CPU per request before. Used under mu only. */
    struct {
        char *sql;
        sqlite3_stmt *st;
    } cache[STMT_CACHE];
    size_t n_cache;
    /* The last write's failure, "" once a write succeeds (under mu). */
    char write_error[256];
    /* Verified tokens by hash (under mu), valid while the revocation file
     * has the inode and size seen when they were verified (store.h). */
    char revoked_path[PATH_MAX];
    struct {
        char hash[65];
        struct hull_token_info info;
    } tokens[TOKEN_CACHE];
    size_t n_tokens, next_token;
    unsigned long long revoked_ino;
    long long revoked_size;
    /* the WAL reached 1000 pages on a connection that defers checkpoints */
    atomic_bool checkpoint_due;
};

/* The revocation file as (inode, size); (0, -1) when absent. */
static void revoked_mark(struct hull_store *s, unsigned long long *ino, long long *size)
{
    struct stat sb;
    *ino = 0;
    *size = -1;
    if (stat(s->revoked_path, &sb) == 0) {
        *ino = (unsigned long long)sb.st_ino;
        *size = (long long)sb.st_size;
    }
}

bool hull_store_token_cached(struct hull_store *s, const char *hash, struct hull_token_info *info)
{
    unsigned long long ino;
    long long size;
    revoked_mark(s, &ino, &size);
    if (ino != s->revoked_ino || size != s->revoked_size) {
        /* A token may have been revoked: everything is verified again. */
        s->n_tokens = s->next_token = 0;
        s->revoked_ino = ino;
        s->revoked_size = size;
        return false;
    }
    for (size_t i = 0; i < s->n_tokens; i++)
        if (strcmp(s->tokens[i].hash, hash) == 0) {
            *info = s->tokens[i].info;
            return true;
        }
    return false;
}

void hull_store_token_remember(struct hull_store *s, const char *hash,
                               const struct hull_token_info *info)
{
    size_t i = s->next_token;
    s->next_token = (i + 1) % TOKEN_CACHE;
    if (s->n_tokens < TOKEN_CACHE)
        s->n_tokens++;
    snprintf(s->tokens[i].hash, sizeof(s->tokens[i].hash), "%s", hash);
    s->tokens[i].info = *info;
}

const char *hull_store_revoked_path(struct hull_store *s)
{
    return s->revoked_path;
}

int hull_store_prepare(struct hull_store *s, const char *sql, sqlite3_stmt **st, hull_error *err)
{
    for (size_t i = 0; i < s->n_cache; i++)
        if (strcmp(s->cache[i].sql, sql) == 0) {
            *st = s->cache[i].st;
            return 0;
        }
    if (sqlite3_prepare_v3(s->db, sql, -1, SQLITE_PREPARE_PERSISTENT, st, NULL) != SQLITE_OK) {
        *st = NULL;
        return hull_store_fail(s, "prepare", err);
    }
    if (s->n_cache < STMT_CACHE && (s->cache[s->n_cache].sql = strdup(sql)) != NULL)
        s->cache[s->n_cache++].st = *st;
    return 0;
}

void hull_store_release(struct hull_store *s, sqlite3_stmt *st)
{
    if (st == NULL)
        return;
    for (size_t i = 0; i < s->n_cache; i++)
        if (s->cache[i].st == st) {
            sqlite3_reset(st);
            sqlite3_clear_bindings(st);
            return;
        }
    sqlite3_finalize(st);
}

/* Schema versions, applied in order; PRAGMA user_version counts how many a
 * database already has. Only ever append: a shipped step never changes. */
static const char *const migrations[] = {
    /* 1: the first schema */
    "CREATE TABLE tokens ("
    "  id TEXT PRIMARY KEY,"
    "  hash TEXT NOT NULL UNIQUE,"
    "  role TEXT NOT NULL CHECK (role IN ('admin', 'user', 'reader')),"
    "  tenant TEXT NOT NULL,"
    "  created TEXT NOT NULL,"
    "  revoked TEXT);"
    "CREATE TABLE runs ("
    "  id TEXT PRIMARY KEY,"
    "  tenant TEXT NOT NULL,"
    "  state TEXT NOT NULL CHECK (state IN ('queued', 'running', 'finished', 'cancelled',"
    "                                       'interrupted')),"
    "  created TEXT NOT NULL,"
    "  started TEXT,"
    "  finished TEXT,"
    "  verdict TEXT,"
    "  worker_pid INTEGER,"
    "  worker_start INTEGER,"
    "  queue_job TEXT);"
    "CREATE INDEX runs_by_tenant ON runs (tenant, created);"
    "CREATE INDEX runs_by_state ON runs (state);"
    "CREATE TABLE results ("
    "  run_id TEXT PRIMARY KEY REFERENCES runs (id),"
    "  result TEXT NOT NULL);"
    "CREATE TABLE sandboxes ("
    "  id TEXT PRIMARY KEY,"
    "  tenant TEXT NOT NULL,"
    "  state TEXT NOT NULL,"
    "  isolation TEXT NOT NULL,"
    "  container TEXT,"
    "  created TEXT NOT NULL,"
    "  lifetime_s INTEGER NOT NULL,"
    "  destroyed TEXT,"
    "  reason TEXT);"
    "CREATE INDEX sandboxes_by_tenant ON sandboxes (tenant, created);"
    "CREATE TABLE audit ("
    "  id INTEGER PRIMARY KEY AUTOINCREMENT,"
    "  time TEXT NOT NULL,"
    "  token TEXT,"
    "  tenant TEXT,"
    "  role TEXT,"
    "  method TEXT NOT NULL,"
    "  path TEXT NOT NULL,"
    "  target TEXT,"
    "  status INTEGER NOT NULL,"
    "  outcome TEXT NOT NULL);"
    "CREATE INDEX audit_by_tenant ON audit (tenant, id);"
    /* Append-only, enforced by the database itself, not by our good manners. */
    "CREATE TRIGGER audit_no_update BEFORE UPDATE ON audit"
    "  BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;"
    "CREATE TRIGGER audit_no_delete BEFORE DELETE ON audit"
    "  BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;",
    /* 2: grants that weaken isolation, given to a token explicitly, and
     * which of them each audited request used */
    ("ALTER TABLE tokens ADD COLUMN allow TEXT NOT NULL DEFAULT '';"
     "ALTER TABLE audit ADD COLUMN grants TEXT;"),
    /* 3: a sandbox's metadata (labels), a JSON object of strings */
    "ALTER TABLE sandboxes ADD COLUMN metadata TEXT;",
    /* 4: sandbox templates, one per tenant and name */
    ("CREATE TABLE templates ("
     "  id TEXT PRIMARY KEY,"
     "  tenant TEXT NOT NULL,"
     "  name TEXT NOT NULL,"
     "  isolation TEXT NOT NULL,"
     "  spec TEXT NOT NULL,"
     "  start_cmd TEXT,"
     "  ready_cmd TEXT,"
     "  ready_timeout_ms INTEGER NOT NULL,"
     "  bytes INTEGER NOT NULL,"
     "  files INTEGER NOT NULL,"
     "  source TEXT,"
     "  created TEXT NOT NULL,"
     "  UNIQUE (tenant, name));"),
    /* 5: runs that ended, by when, for hulld --run-retention */
    "CREATE INDEX runs_by_end ON runs (state, finished);",
    /* 6: retention of ended sandboxes and of the audit log's oldest
     * entries. The log stays append-only but for its head: a row may be
     * removed only at or below the mark a prune sets in its own
     * transaction (audit.c), never one above it, and never changed. */
    ("CREATE INDEX sandboxes_by_end ON sandboxes (state, destroyed);"
     "CREATE INDEX audit_by_time ON audit (time);"
     "CREATE TABLE audit_trim (upto INTEGER NOT NULL);"
     "DROP TRIGGER audit_no_delete;"
     "CREATE TRIGGER audit_no_delete BEFORE DELETE ON audit"
     "  WHEN OLD.id > COALESCE((SELECT MAX(upto) FROM audit_trim), 0)"
     "  BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;"),
};
#define N_MIGRATIONS ((int)(sizeof(migrations) / sizeof(migrations[0])))

int hull_store_fail(struct hull_store *s, const char *what, hull_error *err)
{
    int code;
    switch (sqlite3_errcode(s->db)) {
    case SQLITE_BUSY:
    case SQLITE_LOCKED:
        code = EBUSY;
        break;
    case SQLITE_FULL:
        code = ENOSPC;
        break;
    default:
        code = EIO;
    }
    return hull_error_set(err, code, "store: %s: %s", what, sqlite3_errmsg(s->db));
}

void hull_store_write_done(struct hull_store *s, int ret, hull_error err)
{
    if (ret < 0)
        snprintf(s->write_error, sizeof(s->write_error), "%s",
                 err ? hull_error_msg(err) : "store: write failed");
    else
        s->write_error[0] = '\0';
}

bool hull_store_failing(struct hull_store *s, char *why, size_t len)
{
    pthread_mutex_lock(&s->mu);
    bool failing = s->write_error[0] != '\0';
    if (failing && why)
        snprintf(why, len, "%s", s->write_error);
    pthread_mutex_unlock(&s->mu);
    return failing;
}

sqlite3 *hull_store_lock(struct hull_store *s)
{
    pthread_mutex_lock(&s->mu);
    return s->db;
}

void hull_store_unlock(struct hull_store *s)
{
    pthread_mutex_unlock(&s->mu);
}

static int user_version(sqlite3 *db, int *v)
{
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(db, "PRAGMA user_version", -1, &st, NULL) != SQLITE_OK)
        return -1;
    int rc = sqlite3_step(st);
    *v = rc == SQLITE_ROW ? sqlite3_column_int(st, 0) : 0;
    sqlite3_finalize(st);
    return rc == SQLITE_ROW ? 0 : -1;
}

int hull_store_probe(struct hull_store *s, hull_error *err)
{
    pthread_mutex_lock(&s->mu);
    int v = 0, ret = 0;
    char pragma[64];
    /* Setting the schema version to itself commits one page, as any write
     * does, and changes nothing. */
    if (user_version(s->db, &v) < 0)
        ret = hull_store_fail(s, "probe", err);
    snprintf(pragma, sizeof(pragma), "PRAGMA user_version = %d", v);
    if (ret == 0 && sqlite3_exec(s->db, pragma, NULL, NULL, NULL) != SQLITE_OK)
        ret = hull_store_fail(s, "probe", err);
    hull_store_write_done(s, ret, ret < 0 ? *err : NULL);
    pthread_mutex_unlock(&s->mu);
    return ret;
}

/* After each commit on a connection that defers its checkpoints: SQLite's
 * own rule (checkpoint at 1000 pages) becomes a note for
 * hull_store_checkpoint_due, and only HULL_STORE_WAL_BOUND pages make the
 * commit checkpoint itself. */
static int wal_hook(void *arg, sqlite3 *db, const char *name, int pages)
{
    struct hull_store *s = arg;
    if (pages >= HULL_STORE_WAL_BOUND)
        sqlite3_wal_checkpoint_v2(db, name, SQLITE_CHECKPOINT_PASSIVE, NULL, NULL);
    else if (pages >= 1000)
        atomic_store(&s->checkpoint_due, true);
    return SQLITE_OK;
}

int hull_store_defer_checkpoints(struct hull_store *s, hull_error *err)
{
    (void)err; /* sqlite3_wal_hook cannot fail */
    pthread_mutex_lock(&s->mu);
    sqlite3_wal_hook(s->db, wal_hook, s);
    pthread_mutex_unlock(&s->mu);
    return 0;
}

bool hull_store_checkpoint_due(struct hull_store *s)
{
    return atomic_exchange(&s->checkpoint_due, false);
}

int hull_store_checkpoint(struct hull_store *s, hull_error *err)
{
    pthread_mutex_lock(&s->mu);
    int rc = sqlite3_wal_checkpoint_v2(s->db, NULL, SQLITE_CHECKPOINT_PASSIVE, NULL, NULL);
    int ret = 0;
    /* BUSY: another checkpoint runs (a worker's, `hull token`'s): it does
     * the work. */
    if (rc != SQLITE_OK && rc != SQLITE_BUSY)
        ret = hull_store_fail(s, "checkpoint", err);
    pthread_mutex_unlock(&s->mu);
    return ret;
}

/* Bring the schema up to date in one IMMEDIATE transaction, so two
 * processes opening a fresh database do not both create it. */
static int migrate_steps(struct hull_store *s, hull_error *err)
{
    int v = 0;
    if (user_version(s->db, &v) < 0)
        return hull_store_fail(s, "read schema version", err);
    if (v > N_MIGRATIONS)
        return hull_error_set(
            err, EPROTO, "store: the database has schema version %d, newer than this hull (%d)", v,
            N_MIGRATIONS);
    for (int i = v; i < N_MIGRATIONS; i++) {
        char pragma[64];
        snprintf(pragma, sizeof(pragma), "PRAGMA user_version = %d", i + 1);
        if (sqlite3_exec(s->db, migrations[i], NULL, NULL, NULL) != SQLITE_OK ||
            sqlite3_exec(s->db, pragma, NULL, NULL, NULL) != SQLITE_OK)
            return hull_store_fail(s, "migrate schema", err);
    }
    if (sqlite3_exec(s->db, "COMMIT", NULL, NULL, NULL) != SQLITE_OK)
        return hull_store_fail(s, "commit migration", err);
    return 0;
}

static int migrate(struct hull_store *s, hull_error *err)
{
    if (sqlite3_exec(s->db, "BEGIN IMMEDIATE", NULL, NULL, NULL) != SQLITE_OK)
        return hull_store_fail(s, "begin migration", err);
    if (migrate_steps(s, err) < 0) {
        sqlite3_exec(s->db, "ROLLBACK", NULL, NULL, NULL);
        return -1;
    }
    return 0;
}

int hull_store_open(const char *state_dir, struct hull_store **out, hull_error *err)
{
    *out = NULL;
    if (hull_mkdir_p(state_dir, 0700, err) < 0)
        return hull_error_prefix(err, "state directory");
    /* Everything below is opened by the resolved path of a directory only
     * the caller or root can change, so what was checked is what is used. */
    char dir[PATH_MAX];
    if (hull_store_dir_check(state_dir, dir, sizeof(dir), err) < 0)
        return -1;
    char path[PATH_MAX];
    if (snprintf(path, sizeof(path), "%s/%s", dir, HULL_STORE_FILE) >= (int)sizeof(path) - 4)
        return hull_error_set(err, ENAMETOOLONG, "state directory %s: path too long", state_dir);
    static const char *const suffix[] = {"", "-wal", "-shm"};
    for (size_t i = 0; i < sizeof(suffix) / sizeof(suffix[0]); i++) {
        char f[PATH_MAX];
        snprintf(f, sizeof(f), "%s%s", path, suffix[i]);
        if (hull_store_file_check(f, err) < 0)
            return -1;
    }
    struct hull_store *s = calloc(1, sizeof(*s));
    if (s == NULL)
        return hull_error_set(err, ENOMEM, "out of memory");
    if (snprintf(s->revoked_path, sizeof(s->revoked_path), "%s/%s", dir, HULL_STORE_REVOKED_FILE) >=
        (int)sizeof(s->revoked_path)) {
        free(s);
        return hull_error_set(err, ENAMETOOLONG, "state directory %s: path too long", state_dir);
    }
    s->revoked_size = -2; /* nothing seen yet: the first verify reads it */
    pthread_mutex_init(&s->mu, NULL);
    /* Tokens' hashes live here: nobody but root reads the file. */
    mode_t old = umask(077);
    int rc = sqlite3_open_v2(path, &s->db,
                             SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX |
                                 SQLITE_OPEN_NOFOLLOW,
                             NULL);
    umask(old);
    if (rc != SQLITE_OK) {
        hull_error_set(err, EIO, "store %s: %s", path,
                       s->db ? sqlite3_errmsg(s->db) : sqlite3_errstr(rc));
        hull_store_close(s);
        return -1;
    }
    /* Several processes write (hulld, its workers, `hull token`): wait for
     * each other instead of failing with SQLITE_BUSY. */
    sqlite3_busy_timeout(s->db, 10000);
    /* WAL + synchronous=NORMAL: a commit is in the WAL file when it returns,
     * so it survives the crash of any process (the case that matters: hulld
     * SIGKILLed); only a power loss may drop the last commits. */
    if (sqlite3_exec(s->db,
                     "PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL;"
                     "PRAGMA foreign_keys = ON;",
                     NULL, NULL, NULL) != SQLITE_OK) {
        hull_store_fail(s, path, err);
        hull_store_close(s);
        return -1;
    }
    if (migrate(s, err) < 0) {
        hull_error_prefix(err, "%s", path);
        hull_store_close(s);
        return -1;
    }
    *out = s;
    return 0;
}

void hull_store_close(struct hull_store *s)
{
    if (s == NULL)
        return;
    for (size_t i = 0; i < s->n_cache; i++) {
        sqlite3_finalize(s->cache[i].st);
        free(s->cache[i].sql);
    }
    sqlite3_close(s->db);
    pthread_mutex_destroy(&s->mu);
    free(s);
}

static int prepare(struct hull_store *s, const char *sql, const char *const *args, int nargs,
                   sqlite3_stmt **st, hull_error *err)
{
    if (hull_store_prepare(s, sql, st, err) < 0)
        return -1;
    for (int i = 0; i < nargs; i++)
        if (args[i])
            sqlite3_bind_text(*st, i + 1, args[i], -1, SQLITE_STATIC);
    return 0;
}

int hull_store_exec(struct hull_store *s, const char *sql, const char *const *args, int nargs,
                    int *changes, hull_error *err)
{
    sqlite3_stmt *st = NULL;
    pthread_mutex_lock(&s->mu);
    int ret = prepare(s, sql, args, nargs, &st, err);
    if (ret == 0 && sqlite3_step(st) != SQLITE_DONE)
        ret = hull_store_fail(s, "write", err);
    if (ret == 0 && changes)
        *changes = sqlite3_changes(s->db);
    hull_store_write_done(s, ret, err ? *err : NULL);
    hull_store_release(s, st);
    pthread_mutex_unlock(&s->mu);
    return ret;
}

/* The statement's rows, as hull_store_query returns them; NULL on failure. */
static json_object *rows_json(struct hull_store *s, sqlite3_stmt *st, hull_error *err)
{
    json_object *rows = json_object_new_array();
    int rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        json_object *row = json_object_new_object();
        for (int c = 0; c < sqlite3_column_count(st); c++) {
            json_object *v = NULL;
            switch (sqlite3_column_type(st, c)) {
            case SQLITE_NULL:
                continue;
            case SQLITE_INTEGER:
                v = json_object_new_int64(sqlite3_column_int64(st, c));
                break;
            default:
                v = json_object_new_string_len((const char *)sqlite3_column_text(st, c),
                                               sqlite3_column_bytes(st, c));
            }
            json_object_object_add(row, sqlite3_column_name(st, c), v);
        }
        json_object_array_add(rows, row);
    }
    if (rc != SQLITE_DONE) {
        hull_store_fail(s, "read", err);
        json_object_put(rows);
        rows = NULL;
    }
    return rows;
}

json_object *hull_store_query(struct hull_store *s, const char *sql, const char *const *args,
                              int nargs, hull_error *err)
{
    sqlite3_stmt *st = NULL;
    json_object *rows = NULL;
    pthread_mutex_lock(&s->mu);
    if (prepare(s, sql, args, nargs, &st, err) == 0)
        rows = rows_json(s, st, err);
    hull_store_release(s, st);
    pthread_mutex_unlock(&s->mu);
    return rows;
}
