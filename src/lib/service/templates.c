/* Templates as rows (hulld's /v1/templates): one per (tenant, name), with
 * what a sandbox made from it is created with. The copy of the sandbox's
 * files lives in the state directory under the row's id (hulld's
 * templates.c); the row is written only once that copy is complete and
 * removed before it, so a row always names a whole copy. */
#include <errno.h>
#include <stdio.h>

#include "service/store.h"
#include "util/clock.h"
#include "util/error.h"
#include "util/json.h"

int hull_template_insert(struct hull_store *s, const struct hull_template_rec *t, hull_error *err)
{
    char now[40], bytes[24], files[24], ready_ms[24];
    hull_rfc3339_now(now, sizeof(now));
    snprintf(bytes, sizeof(bytes), "%llu", (unsigned long long)t->bytes);
    snprintf(files, sizeof(files), "%llu", (unsigned long long)t->files);
    snprintf(ready_ms, sizeof(ready_ms), "%llu", (unsigned long long)t->ready_timeout_ms);
    const char *args[] = {t->id,        t->tenant, t->name, t->isolation, t->spec,   t->start_cmd,
                          t->ready_cmd, ready_ms,  bytes,   files,        t->source, now};
    int changes = 0;
    if (hull_store_exec(s,
                        "INSERT INTO templates (id, tenant, name, isolation, spec, start_cmd, "
                        "ready_cmd, ready_timeout_ms, bytes, files, source, created) "
                        "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) "
                        "ON CONFLICT (tenant, name) DO NOTHING",
                        args, 12, &changes, err) < 0)
        return -1;
    if (changes == 0)
        return hull_error_set(err, EEXIST, "template '%s' exists already", t->name);
    return 0;
}

#define TEMPLATE_COLUMNS                                                                           \
    "id, name, isolation, spec, start_cmd, ready_cmd, ready_timeout_ms, bytes, files, source, "    \
    "created"

json_object *hull_template_get(struct hull_store *s, const char *tenant, const char *name,
                               hull_error *err)
{
    const char *args[] = {tenant, name};
    json_object *rows = hull_store_query(
        s, "SELECT " TEMPLATE_COLUMNS " FROM templates WHERE tenant = ? AND name = ?", args, 2,
        err);
    if (rows == NULL)
        return NULL;
    if (json_object_array_length(rows) == 0) {
        json_object_put(rows);
        hull_error_set(err, ENOENT, "template '%s' not found", name);
        return NULL;
    }
    json_object *o = json_object_get(json_object_array_get_idx(rows, 0));
    json_object_put(rows);
    return o;
}

json_object *hull_template_list(struct hull_store *s, const char *tenant, hull_error *err)
{
    const char *args[] = {tenant};
    return hull_store_query(s,
                            "SELECT " TEMPLATE_COLUMNS " FROM templates WHERE tenant = ? "
                            "ORDER BY name",
                            args, 1, err);
}

int hull_template_count(struct hull_store *s, const char *tenant, unsigned *n, hull_error *err)
{
    const char *args[] = {tenant};
    json_object *rows =
        hull_store_query(s, "SELECT COUNT(*) AS n FROM templates WHERE tenant = ?", args, 1, err);
    if (rows == NULL)
        return -1;
    json_object *v = hj_get(json_object_array_get_idx(rows, 0), "n");
    *n = v ? (unsigned)json_object_get_int64(v) : 0;
    json_object_put(rows);
    return 0;
}

int hull_template_delete(struct hull_store *s, const char *tenant, const char *name,
                         hull_error *err)
{
    const char *args[] = {tenant, name};
    int changes = 0;
    if (hull_store_exec(s, "DELETE FROM templates WHERE tenant = ? AND name = ?", args, 2, &changes,
                        err) < 0)
        return -1;
    if (changes == 0)
        return hull_error_set(err, ENOENT, "template '%s' not found", name);
    return 0;
}

json_object *hull_template_ids(struct hull_store *s, hull_error *err)
{
    return hull_store_query(s, "SELECT id FROM templates", NULL, 0, err);
}
