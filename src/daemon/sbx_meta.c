/* A sandbox's metadata: labels a client gives on create ("metadata":
 * {"k": "v"}), stored with its record, shown in its JSON and used to
 * filter the list (GET /v1/sandboxes?metadata.k=v, several ANDed). Bounded
 * so a tenant cannot grow the store through them: at most SBX_META_KEYS
 * keys, each key and value at most SBX_META_LEN bytes. */
#include <stdlib.h>
#include <string.h>

#include "daemon.h"
#include "util/json.h"

#define FILTER_PREFIX "metadata."

int sbx_meta_take(json_object *doc, char **text, struct resp *r)
{
    *text = NULL;
    json_object *m = hj_get(doc, "metadata");
    if (m == NULL) {
        json_object_object_del(doc, "metadata"); /* an explicit null: none */
        return 0;
    }
    if (!json_object_is_type(m, json_type_object)) {
        resp_error(r, 400, "invalid_request", "metadata",
                   "metadata: must be an object of strings ({\"key\": \"value\"})");
        return -1;
    }
    if (json_object_object_length(m) > SBX_META_KEYS) {
        resp_error(r, 400, "invalid_request", "metadata", "metadata: %d keys, at most %d",
                   json_object_object_length(m), SBX_META_KEYS);
        return -1;
    }
    char path[SBX_META_LEN + 64];
    json_object_object_foreach(m, key, v)
    {
        size_t klen = strlen(key);
        /* The path names a key over the limit by its start only. */
        snprintf(path, sizeof(path), "metadata.%.*s", klen > 64 ? 64 : (int)klen, key);
        if (klen == 0 || klen > SBX_META_LEN) {
            resp_error(r, 400, "invalid_request", path,
                       "%s: a key must be 1 to %d bytes (this one is %zu)", path, SBX_META_LEN,
                       klen);
            return -1;
        }
        if (!json_object_is_type(v, json_type_string)) {
            resp_error(r, 400, "invalid_request", path, "%s: must be a string", path);
            return -1;
        }
        size_t vlen = (size_t)json_object_get_string_len(v);
        if (vlen > SBX_META_LEN || strlen(json_object_get_string(v)) != vlen) {
            resp_error(r, 400, "invalid_request", path,
                       "%s: a value must be at most %d bytes, without NUL (this one is %zu)", path,
                       SBX_META_LEN, vlen);
            return -1;
        }
    }
    *text = strdup(hj_to_string(m));
    json_object_object_del(doc, "metadata");
    if (*text == NULL) {
        resp_error(r, 500, "internal", NULL, "out of memory");
        return -1;
    }
    return 0;
}

void sbx_meta_show(json_object *row)
{
    json_object *stored = hj_get(row, "metadata"), *m = NULL;
    if (stored && json_object_is_type(stored, json_type_string))
        m = json_tokener_parse(json_object_get_string(stored));
    if (m && !json_object_is_type(m, json_type_object)) {
        json_object_put(m);
        m = NULL;
    }
    json_object_object_add(row, "metadata", m ? m : json_object_new_object());
}

struct filter {
    const char *key[SBX_META_KEYS], *value[SBX_META_KEYS];
    int n;
    bool bad;
    char why[200];
};

static bool take_filter(void *cls, const char *key, const char *value)
{
    struct filter *f = cls;
    size_t plen = strlen(FILTER_PREFIX);
    if (strncmp(key, FILTER_PREFIX, plen) != 0)
        return true; /* not a filter: other parameters are not the list's */
    key += plen;
    if (key[0] == '\0' || strlen(key) > SBX_META_LEN || strlen(value) > SBX_META_LEN) {
        snprintf(f->why, sizeof(f->why),
                 "metadata.KEY=VALUE: a key of 1 to %d bytes and a "
                 "value of at most %d",
                 SBX_META_LEN, SBX_META_LEN);
        f->bad = true;
        return false;
    }
    if (f->n == SBX_META_KEYS) {
        snprintf(f->why, sizeof(f->why), "metadata: at most %d filters", SBX_META_KEYS);
        f->bad = true;
        return false;
    }
    f->key[f->n] = key;
    f->value[f->n++] = value;
    return true;
}

static bool matches(json_object *row, const struct filter *f)
{
    json_object *m = hj_get(row, "metadata");
    for (int i = 0; i < f->n; i++) {
        json_object *v = m ? hj_get(m, f->key[i]) : NULL;
        if (v == NULL || strcmp(json_object_get_string(v), f->value[i]) != 0)
            return false;
    }
    return true;
}

int sbx_meta_filter(const struct request *rq, json_object *list, struct resp *r)
{
    struct filter f = {.n = 0};
    if (rq->query_each)
        rq->query_each(rq->conn, take_filter, &f);
    if (f.bad) {
        resp_error(r, 400, "invalid_request", "metadata", "%s", f.why);
        return -1;
    }
    json_object *rows = hj_get(list, "sandboxes");
    if (rows == NULL)
        return 0;
    json_object *kept = json_object_new_array();
    size_t n = json_object_array_length(rows);
    for (size_t i = 0; i < n; i++) {
        json_object *row = json_object_array_get_idx(rows, i);
        sbx_meta_show(row);
        if (matches(row, &f))
            json_object_array_add(kept, json_object_get(row));
    }
    json_object_object_add(list, "sandboxes", kept);
    return 0;
}
