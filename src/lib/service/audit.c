/* The audit log: one row per state-changing request, never changed (the
 * schema's triggers refuse UPDATE) and never removed but by retention
 * (hulld --audit-retention), which takes the oldest rows only: the
 * DELETE trigger refuses any row above the mark the prune sets in its
 * transaction. */
#include <errno.h>
#include <stdio.h>

#include "service/store.h"
#include "util/clock.h"
#include "util/error.h"

int hull_audit_append(struct hull_store *s, const struct hull_audit_entry *e, hull_error *err)
{
    char now[40], status[16];
    hull_rfc3339_now(now, sizeof(now));
    snprintf(status, sizeof(status), "%d", e->status);
    const char *args[] = {now,
                          e->token,
                          e->tenant,
                          e->role,
                          e->method ? e->method : "",
                          e->path ? e->path : "",
                          e->target,
                          status,
                          e->outcome ? e->outcome : "",
                          e->grants};
    if (hull_store_exec(s,
                        "INSERT INTO audit (time, token, tenant, role, method, path, target, "
                        "status, outcome, grants) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                        args, 10, NULL, err) < 0)
        return hull_error_prefix(err, "audit");
    return 0;
}

json_object *hull_audit_list(struct hull_store *s, const char *tenant, int64_t since_id, int limit,
                             hull_error *err)
{
    char since[32], lim[16];
    snprintf(since, sizeof(since), "%lld", (long long)since_id);
    snprintf(lim, sizeof(lim), "%d", limit);
    const char *args[] = {since, tenant, tenant, lim};
    json_object *rows = hull_store_query(
        s,
        "SELECT id, time, token, tenant, role, method, path, target, status, outcome, grants "
        "FROM audit "
        "WHERE id > ? AND (? IS NULL OR tenant = ?) ORDER BY id LIMIT ?",
        args, 4, err);
    if (rows == NULL)
        return NULL;
    json_object *o = json_object_new_object();
    json_object_object_add(o, "entries", rows);
    return o;
}

int hull_audit_prune(struct hull_store *s, const char *before, unsigned limit, unsigned *removed,
                     hull_error *err)
{
    /* The mark: the newest of the (at most limit) oldest rows written
     * before `before`; what is at or below it and that old goes. */
    static const char mark[] = "INSERT INTO audit_trim (upto) SELECT COALESCE(MAX(id), 0) FROM "
                               "(SELECT id FROM audit WHERE time < ?1 ORDER BY time LIMIT ?2)";
    static const char *const sql[] = {
        mark,
        "DELETE FROM audit WHERE id <= (SELECT MAX(upto) FROM audit_trim) AND time < ?1",
        "DELETE FROM audit_trim",
    };
    return hull_store_prune(s, "prune the audit log", sql, 3, 1, before, limit, removed, err);
}
