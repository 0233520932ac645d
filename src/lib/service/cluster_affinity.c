/* Anti-affinity by label for placement (cluster.h, docs/cluster.md): how
 * many sandboxes a node already runs whose metadata has every pair a
 * request wants kept apart. The records are the registry's (each with its
 * node and its metadata as JSON text), read once per placement. */
#include <string.h>

#include "service/cluster.h"
#include "util/json.h"

/* Every key=value of want in the metadata text of a record. */
static bool meta_match(json_object *rec, json_object *want)
{
    json_object *t = hj_get(rec, "metadata");
    if (t == NULL || !json_object_is_type(t, json_type_string))
        return false;
    cleanup_json json_object *m = json_tokener_parse(json_object_get_string(t));
    if (m == NULL || !json_object_is_type(m, json_type_object))
        return false;
    json_object_object_foreach(want, k, v)
    {
        json_object *h = hj_get(m, k);
        if (h == NULL || !json_object_is_type(h, json_type_string) ||
            strcmp(json_object_get_string(h), json_object_get_string(v)) != 0)
            return false;
    }
    return true;
}

unsigned hull_cluster_affinity_count(const struct hull_place_req *q, const char *node)
{
    if (q->anti == NULL || q->sandboxes == NULL || json_object_object_length(q->anti) == 0)
        return 0;
    unsigned n = 0;
    for (size_t i = 0; i < json_object_array_length(q->sandboxes); i++) {
        json_object *rec = json_object_array_get_idx(q->sandboxes, i), *nv = hj_get(rec, "node");
        json_object *tv = hj_get(rec, "tenant");
        bool mine = q->tenant == NULL || (tv && strcmp(json_object_get_string(tv), q->tenant) == 0);
        if (mine && nv && strcmp(json_object_get_string(nv), node) == 0 && meta_match(rec, q->anti))
            n++;
    }
    return n;
}
