/* The service's state: one SQLite database (WAL) under the state directory,
 * shared by hulld's processes and by `hull token`.
 *
 *   tokens     bearer tokens, only as SHA-256 hashes, with role and tenant
 *   runs       one-shot runs and their life cycle; results beside them
 *   sandboxes  long-lived sandboxes
 *   audit      append-only log of state-changing requests
 *   templates  sandbox templates (their files are beside the database)
 *
 * Every state change of a run is one conditional UPDATE ("... WHERE state
 * IN (...)"), so when two processes race to end a run (the worker that ran
 * it, a restarted hulld marking it interrupted) exactly one wins: a run is
 * never reported twice. Calls are thread-safe (one connection per store,
 * behind a mutex); each process opens its own store.
 */
#ifndef HULL_SERVICE_STORE_H
#define HULL_SERVICE_STORE_H

#include <json-c/json.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "hull.h"

#define HULL_STORE_FILE "hulld.db"

struct hull_store;

/* Open DIR/hulld.db, creating DIR (0700) and the schema when missing, and
 * migrating an older schema forward. Refused (EPERM) when DIR, a directory
 * above it or a file of the store can be changed by another user, or the
 * database read by one (store_perm.c). */
int hull_store_open(const char *state_dir, struct hull_store **out, hull_error *err);
/* dir, resolved into real (len bytes), when only the caller or root can
 * change it or the directories above it: 0, or -1 with *err (EPERM). */
int hull_store_dir_check(const char *dir, char *real, size_t len, hull_error *err);
/* The same for any directory hull trusts (what names it in errors: "--socket's
 * directory"): dir and every directory above it owned by the caller or root,
 * none writable by other users unless sticky (as /tmp is); with !sticky_ok,
 * dir itself not writable by others at all (they could put a file there
 * first). */
int hull_trusted_dir(const char *what, const char *dir, bool sticky_ok, char *real, size_t len,
                     hull_error *err);
/* path, when absent or a regular file of the caller's (or root's) that no
 * other user may read or write: 0, or -1 with *err (EPERM). */
int hull_store_file_check(const char *path, hull_error *err);
void hull_store_close(struct hull_store *s);
/* True while writes fail (a full disk, a broken database): the last write
 * failed, with its message in why; a write that succeeds clears it. */
bool hull_store_failing(struct hull_store *s, char *why, size_t len);
/* A write that changes nothing, to learn whether writes work again. */
int hull_store_probe(struct hull_store *s, hull_error *err);
/* hulld's connection stops checkpointing the WAL when a commit takes it
 * past 1000 pages (the checkpoint syncs the database file: milliseconds
 * inside whichever request's commit crossed the mark): it notes that one
 * is due (hull_store_checkpoint_due, true once per note) and checkpoints
 * itself only past HULL_STORE_WAL_BOUND pages, a bound should
 * hull_store_checkpoint not come. */
#define HULL_STORE_WAL_BOUND 16384
int hull_store_defer_checkpoints(struct hull_store *s, hull_error *err);
bool hull_store_checkpoint_due(struct hull_store *s);
/* Copy the WAL into the database as far as readers allow (PASSIVE: never
 * waits for a writer), on a connection of its own, off the requests' way. */
int hull_store_checkpoint(struct hull_store *s, hull_error *err);

/* ---- tokens (tokens.c) ---- */

enum hull_role { HULL_ROLE_READER, HULL_ROLE_USER, HULL_ROLE_ADMIN };
const char *hull_role_name(enum hull_role r);
int hull_role_parse(const char *s, enum hull_role *out);

/* Grants: what a token may ask for that weakens a sandbox's isolation.
 * None by default, whatever the role; an operator grants each one to a
 * token explicitly (hull token create --allow NAME,...). */
enum {
    HULL_ALLOW_HOST_NETWORK = 1u << 0,      /* "host-network": "network": "host" */
    HULL_ALLOW_PROCESS_ISOLATION = 1u << 1, /* "process-isolation": "isolation": "process" */
    /* "publish-public": a port published on an address other than the
     * host's loopback (every address, "" included): reachable from outside. */
    HULL_ALLOW_PUBLISH_PUBLIC = 1u << 2,
    /* "host-egress": an egress rule naming one of the host's own addresses
     * (the gateway's included): the host's services on it become reachable. */
    HULL_ALLOW_HOST_EGRESS = 1u << 3,
};
#define HULL_ALLOW_ALL                                                                             \
    (HULL_ALLOW_HOST_NETWORK | HULL_ALLOW_PROCESS_ISOLATION | HULL_ALLOW_PUBLISH_PUBLIC |          \
     HULL_ALLOW_HOST_EGRESS)
/* The name of one grant bit ("host-network"), or NULL. */
const char *hull_allow_name(unsigned bit);
/* "host-network,process-isolation" (or "" / "none") -> bits; EINVAL names
 * an unknown grant and lists the known ones. */
int hull_allow_parse(const char *list, unsigned *out, hull_error *err);
/* bits -> "host-network,process-isolation", "" when none. */
void hull_allow_format(unsigned allow, char *buf, size_t len);
/* A published port reachable from other machines: on every address ("") or
 * on one outside 127.0.0.0/8 and ::1 (needs HULL_ALLOW_PUBLISH_PUBLIC). */
bool hull_publish_public(const struct hull_publish *pub);

struct hull_token_info {
    char id[20]; /* public handle: "t" + 16 hex digits of the hash */
    enum hull_role role;
    char tenant[72];
    char created[40];
    char revoked[40]; /* "" while valid */
    unsigned allow;   /* HULL_ALLOW_* granted to it */
};

/* A tenant name: [A-Za-z0-9_.-], 1..64 bytes. */
int hull_tenant_validate(const char *tenant, hull_error *err);
/* New random token (32 bytes from the CSPRNG); only its hash is stored.
 * *token (malloc'd) is the one and only copy of the secret. */
int hull_token_create(struct hull_store *s, enum hull_role role, const char *tenant, char **token,
                      struct hull_token_info *info, hull_error *err);
/* The same, with grants (HULL_ALLOW_*). */
int hull_token_create_allowed(struct hull_store *s, enum hull_role role, const char *tenant,
                              unsigned allow, char **token, struct hull_token_info *info,
                              hull_error *err);
/* EACCES in *err when the token is unknown or revoked. */
int hull_token_verify(struct hull_store *s, const char *token, struct hull_token_info *info,
                      hull_error *err);
int hull_token_list(struct hull_store *s, struct hull_token_info **out, size_t *count,
                    hull_error *err);
/* ENOENT when no such id; revoking twice is fine. */
int hull_token_revoke(struct hull_store *s, const char *id, hull_error *err);
/* The revocation file as a caller last saw it (zeroed before the first). */
struct hull_revoke_mark {
    unsigned long long ino;
    long long size;
};
/* For a request that outlives its start (a stream): whether token id,
 * verified then, has been revoked since. Only when the revocation file
 * changed since *mark is the database asked. A token this store does not
 * hold (another node's) counts as not revoked; a store fault is asked
 * again at the next call. */
bool hull_token_revoked_since(struct hull_store *s, const char *id, struct hull_revoke_mark *mark);

/* ---- audit (audit.c) ---- */

struct hull_audit_entry {
    const char *token;  /* token id, or NULL when none was valid */
    const char *tenant; /* NULL when unknown */
    const char *role;
    const char *method;
    const char *path;
    const char *target;  /* the run or sandbox concerned, if any */
    int status;          /* HTTP status of the answer */
    const char *outcome; /* "ok" or the error code */
    const char *grants;  /* grants the request used ("host-network"), or NULL */
};
int hull_audit_append(struct hull_store *s, const struct hull_audit_entry *e, hull_error *err);
/* {"entries": [...]}, oldest first, id > since_id; tenant NULL: all. */
json_object *hull_audit_list(struct hull_store *s, const char *tenant, int64_t since_id, int limit,
                             hull_error *err);

/* ---- runs and sandboxes (records.c) ---- */

/* at: the RFC 3339 time to record (created, started, finished), so that the
 * caller can answer with the row without reading it back; NULL: now. */
int hull_run_insert(struct hull_store *s, const char *id, const char *tenant, const char *state,
                    const char *queue_job, const char *at, hull_error *err);
/* A run that starts at once, on the worker (pid, start time): one write. */
int hull_run_insert_running(struct hull_store *s, const char *id, const char *tenant, pid_t pid,
                            unsigned long long start, const char *at, hull_error *err);
/* queued -> running, recording the worker (pid, start time). 1 if changed. */
int hull_run_start(struct hull_store *s, const char *id, pid_t pid, unsigned long long start,
                   const char *at, hull_error *err);
/* queued|running -> finished with the result (verdict: its "verdict", or
 * NULL to read it from the JSON). 1 if recorded, 0 if the run had already
 * ended (someone else won). */
int hull_run_finish(struct hull_store *s, const char *id, const char *result_json,
                    const char *verdict, hull_error *err);
int hull_run_finish_at(struct hull_store *s, const char *id, const char *result_json,
                       const char *verdict, const char *at, hull_error *err);
/* from one of the states in from ("queued", "running", NULL-terminated) to
 * to. 1 if changed. */
int hull_run_transition(struct hull_store *s, const char *id, const char *const *from,
                        const char *to, hull_error *err);
/* The run as the API shows it; NULL with ENOENT when it does not exist for
 * tenant (NULL tenant: any). */
json_object *hull_run_get(struct hull_store *s, const char *id, const char *tenant,
                          hull_error *err);
/* Fields used internally: state, queue job, worker. */
struct hull_run_row {
    char id[64];
    char tenant[72];
    char state[16];
    char queue_job[128];
    pid_t worker_pid;
    unsigned long long worker_start;
};
int hull_run_row(struct hull_store *s, const char *id, struct hull_run_row *row, hull_error *err);
/* {"runs": [...]} newest first. */
json_object *hull_run_list(struct hull_store *s, const char *tenant, const char *state, int limit,
                           hull_error *err);
/* The tenant's runs handed to the Redis queue and not seen to end yet
 * (queued or running: a run's end is seen when its result is read). */
int hull_run_count_queued(struct hull_store *s, const char *tenant, unsigned *n, hull_error *err);
/* Remove at most limit runs that ended (finished, cancelled, interrupted)
 * before the RFC 3339 time before, with their results, in one transaction;
 * *removed says how many (fewer than limit: none of them is left). Runs
 * still queued or running are never removed; the audit log keeps its
 * entries. */
int hull_run_prune(struct hull_store *s, const char *before, unsigned limit, unsigned *removed,
                   hull_error *err);
/* The same for sandboxes destroyed before `before` (their rows; live and
 * paused ones are never removed), and for the audit log's entries written
 * before it (the oldest first: audit.c). */
int hull_sandbox_prune(struct hull_store *s, const char *before, unsigned limit, unsigned *removed,
                       hull_error *err);
int hull_audit_prune(struct hull_store *s, const char *before, unsigned limit, unsigned *removed,
                     hull_error *err);
/* One prune in one transaction (records.c): each statement of sql in turn,
 * ?1 bound to before and ?2 to limit where they appear; *removed is the
 * count of rows statement `counted` changed. what names it in errors. */
int hull_store_prune(struct hull_store *s, const char *what, const char *const *sql, size_t n,
                     size_t counted, const char *before, unsigned limit, unsigned *removed,
                     hull_error *err);
/* Runs in state (e.g. "running"), for recovery at start-up. */
int hull_run_rows_in_state(struct hull_store *s, const char *state, struct hull_run_row **rows,
                           size_t *count, hull_error *err);

int hull_sandbox_rec_insert(struct hull_store *s, const char *id, const char *tenant,
                            const char *isolation, const char *container, unsigned lifetime_s,
                            hull_error *err);
int hull_sandbox_rec_state(struct hull_store *s, const char *id, const char *state,
                           const char *reason, hull_error *err);
/* Its metadata (a JSON object of strings, as text) and a new lifetime. */
int hull_sandbox_rec_metadata(struct hull_store *s, const char *id, const char *metadata,
                              hull_error *err);
int hull_sandbox_rec_lifetime(struct hull_store *s, const char *id, unsigned lifetime_s,
                              hull_error *err);
/* Mark every sandbox not yet destroyed as destroyed (hulld restarting),
 * but paused microVM sandboxes: they are on disk (daemon/sbx_vm.c). */
int hull_sandbox_rec_destroy_all(struct hull_store *s, const char *reason, hull_error *err);
/* Those paused microVM sandboxes: [{"id","tenant","container","lifetime_s"}]. */
json_object *hull_sandbox_rec_suspended(struct hull_store *s, hull_error *err);
/* The VMs of live (not paused, not destroyed) microVM sandboxes:
 * [{"id","container"}]; at start-up, what a dead hulld's keepers left. */
json_object *hull_sandbox_rec_live_vms(struct hull_store *s, hull_error *err);
json_object *hull_sandbox_rec_get(struct hull_store *s, const char *id, const char *tenant,
                                  hull_error *err);
json_object *hull_sandbox_rec_list(struct hull_store *s, const char *tenant, hull_error *err);

/* ---- templates (templates.c) ---- */

/* A template: what a sandbox made from it is created with (spec: the
 * create request as JSON text; start_cmd, ready_cmd: JSON arrays or NULL). */
struct hull_template_rec {
    const char *id, *tenant, *name, *isolation, *spec, *start_cmd, *ready_cmd, *source;
    uint64_t ready_timeout_ms, bytes, files;
};
/* EEXIST when tenant has one of that name already. */
int hull_template_insert(struct hull_store *s, const struct hull_template_rec *t, hull_error *err);
/* The row as an object (id, name, isolation, spec, ...); ENOENT when
 * tenant has none of that name. */
json_object *hull_template_get(struct hull_store *s, const char *tenant, const char *name,
                               hull_error *err);
/* tenant's rows, by name (an array). */
json_object *hull_template_list(struct hull_store *s, const char *tenant, hull_error *err);
int hull_template_count(struct hull_store *s, const char *tenant, unsigned *n, hull_error *err);
/* ENOENT when there is none. */
int hull_template_delete(struct hull_store *s, const char *tenant, const char *name,
                         hull_error *err);
/* Every row's id (an array of {"id"}), to sweep copies no row names. */
json_object *hull_template_ids(struct hull_store *s, hull_error *err);

/* ---- internal to src/lib/service ---- */
struct sqlite3;
struct sqlite3 *hull_store_lock(struct hull_store *s);
void hull_store_unlock(struct hull_store *s);
/* err from the database's last error: EBUSY (busy, locked), ENOSPC (full)
 * or EIO. */
int hull_store_fail(struct hull_store *s, const char *what, hull_error *err);
/* Under the lock: a write ended (ret < 0: failed with err), for
 * hull_store_failing. */
void hull_store_write_done(struct hull_store *s, int ret, hull_error err);
/* Under the lock: a prepared statement for sql, from the store's cache;
 * hand it back with hull_store_release (reset, not finalized). */
struct sqlite3_stmt;
int hull_store_prepare(struct hull_store *s, const char *sql, struct sqlite3_stmt **st,
                       hull_error *err);
void hull_store_release(struct hull_store *s, struct sqlite3_stmt *st);
/* The store's lock and one statement held for a scope:
 *     cleanup_store_stmt struct hull_store_stmt q = hull_store_begin(s);
 * then hull_store_prepare(s, sql, &q.st, ...); when q goes out of scope the
 * statement is released and the lock dropped, in that order. */
/* Tokens verified on this connection, kept while DIR/tokens.revoked is
 * unchanged (tokens.c; under the store's lock): hull_token_revoke appends
 * to that file after its commit, so a revocation by any process takes
 * effect on the next request. */
#define HULL_STORE_REVOKED_FILE "tokens.revoked"
struct hull_token_info;
bool hull_store_token_cached(struct hull_store *s, const char *hash, struct hull_token_info *info);
void hull_store_token_remember(struct hull_store *s, const char *hash,
                               const struct hull_token_info *info);
/* The path of DIR/tokens.revoked. */
const char *hull_store_revoked_path(struct hull_store *s);

struct hull_store_stmt {
    struct hull_store *s;
    struct sqlite3 *db;
    struct sqlite3_stmt *st;
};
static inline struct hull_store_stmt hull_store_begin(struct hull_store *s)
{
    struct hull_store_stmt q = {.s = s, .db = hull_store_lock(s), .st = NULL};
    return q;
}
static inline void hull_store_end(struct hull_store_stmt *q)
{
    hull_store_release(q->s, q->st);
    hull_store_unlock(q->s);
}
#define cleanup_store_stmt __attribute__((cleanup(hull_store_end)))
/* One statement with text parameters (NULL binds SQL NULL; INTEGER columns
 * convert). *changes (may be NULL) gets the rows changed. */
int hull_store_exec(struct hull_store *s, const char *sql, const char *const *args, int nargs,
                    int *changes, hull_error *err);
/* Rows as a JSON array of objects keyed by column name; NULL columns are
 * left out, integer columns are numbers. */
json_object *hull_store_query(struct hull_store *s, const char *sql, const char *const *args,
                              int nargs, hull_error *err);

#endif
