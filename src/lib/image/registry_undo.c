/* A failed pull leaves the store as it was.
 *
 * Blobs are verified before they are published and layers are unpacked
 * from published blobs, so a pull that fails halfway (a 500 on the fourth
 * layer, a layer that tries to escape) has already added some. They are
 * harmless, but the user was told the pull failed and the store should show
 * nothing of it. So the pull lists what it added, and on failure removes
 * each of those that no name reaches.
 *
 * Safety against concurrent writers: every pull, build and load holds a
 * pin (image_store_pin, a shared lock on hull/gc.lock) from its first blob
 * until its name is written. The undo runs only when it gets that lock
 * exclusively without waiting, i.e. when nobody else is between writing
 * blobs and naming them; otherwise it keeps what it added (verified blobs,
 * reused by the next pull, freed by prune). With the lock, index.json is
 * final for the moment, and what no name in it reaches can go.
 * .part files in hull/ingest are kept: the next pull resumes from them.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <unistd.h>

#include "image/registry.h"
#include "image/store_int.h"
#include "util/error.h"
#include "util/fs.h"
#include "util/json.h"

int reg_added_push(struct reg_added *a, bool layer, const char *digest)
{
    if (!image_digest_valid(digest))
        return 0;
    char *v = NULL;
    if (asprintf(&v, "%c%s", layer ? 'L' : 'B', digest + 7) < 0)
        return -1;
    char **g = realloc(a->v, (a->n + 1) * sizeof(*g));
    if (!g) {
        free(v);
        return -1;
    }
    a->v = g;
    a->v[a->n++] = v;
    return 0;
}

void reg_added_free(struct reg_added *a)
{
    for (size_t i = 0; i < a->n; i++)
        free(a->v[i]);
    free(a->v);
    a->v = NULL;
    a->n = 0;
}

/* The set of what names reach: "B<hex>" blobs, "L<hex>" layer diff-ids. */
struct reach {
    char **v;
    size_t n;
};

static void reach_add(struct reach *r, char kind, const char *digest)
{
    if (!digest || !image_digest_valid(digest))
        return;
    char **g = realloc(r->v, (r->n + 1) * sizeof(*g));
    if (!g)
        return;
    r->v = g;
    if (asprintf(&r->v[r->n], "%c%s", kind, digest + 7) >= 0)
        r->n++;
}

static bool reach_has(const struct reach *r, const char *key)
{
    for (size_t i = 0; i < r->n; i++)
        if (strcmp(r->v[i], key) == 0)
            return true;
    return false;
}

static void reach_manifest(struct image_store *s, const char *digest, int depth, struct reach *r)
{
    reach_add(r, 'B', digest);
    cleanup_free char *text = NULL;
    size_t len = 0;
    cleanup_hull_error hull_error e = NULL;
    if (image_blob_read(s, digest, HULL_IMAGE_MANIFEST_MAX, &text, &len, &e) < 0)
        return;
    const char *kind = image_doc_kind(text, len, NULL, &e);
    if (!kind)
        return;
    if (strcmp(kind, MT_OCI_INDEX) == 0 || strcmp(kind, MT_DOCKER_LIST) == 0) {
        cleanup_json json_object *doc = json_tokener_parse(text);
        json_object *arr = doc ? hj_get(doc, "manifests") : NULL;
        for (size_t i = 0; depth < 2 && arr && json_object_is_type(arr, json_type_array) &&
                           i < json_object_array_length(arr);
             i++) {
            json_object *d = hj_get(json_object_array_get_idx(arr, i), "digest");
            if (d && json_object_is_type(d, json_type_string))
                reach_manifest(s, json_object_get_string(d), depth + 1, r);
        }
        return;
    }
    cleanup_image_manifest struct image_manifest m = {0};
    if (image_manifest_parse(text, len, &m, &e) < 0)
        return;
    reach_add(r, 'B', m.config.digest);
    for (size_t i = 0; i < m.n_layers; i++)
        reach_add(r, 'B', m.layers[i].digest);
    cleanup_free char *ctext = NULL;
    size_t clen = 0;
    cleanup_image_config struct image_config c = {0};
    if (image_blob_read(s, m.config.digest, HULL_IMAGE_CONFIG_MAX, &ctext, &clen, &e) < 0 ||
        image_config_parse(ctext, clen, &c, &e) < 0)
        return;
    for (size_t i = 0; i < c.n_diff_ids; i++)
        reach_add(r, 'L', c.diff_ids[i]);
}

void reg_undo(struct image_store *s, struct reg_added *a)
{
    if (a->n == 0)
        return;
    cleanup_hull_error hull_error e = NULL;
    cleanup_close int gc = image_flock_at(s->rootfd, "hull/gc.lock", LOCK_EX | LOCK_NB, true, &e);
    if (gc < 0)
        return; /* someone is writing: keep (see above) */
    struct image_entry *ents = NULL;
    size_t n = 0;
    if (image_store_list(s, &ents, &n, &e) < 0)
        return;
    struct reach r = {0};
    for (size_t i = 0; i < n; i++)
        reach_manifest(s, ents[i].desc.digest, 0, &r);
    image_entries_free(ents, n);
    for (size_t i = 0; i < a->n; i++) {
        const char *k = a->v[i];
        if (reach_has(&r, k))
            continue;
        char rel[128];
        if (k[0] == 'B') {
            snprintf(rel, sizeof(rel), "blobs/sha256/%s", k + 1);
            unlinkat(s->rootfd, rel, 0);
        } else {
            snprintf(rel, sizeof(rel), "hull/layers/%s", k + 1);
            hull_error_free(&e);
            hull_rm_rf_at(s->rootfd, rel, &e);
        }
    }
    for (size_t i = 0; i < r.n; i++)
        free(r.v[i]);
    free(r.v);
}
