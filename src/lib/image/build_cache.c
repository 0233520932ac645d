/* The build cache: <root>/hull/build-cache/<key>.json, one per step, keyed
 * by the state before the step and the step after substitution (with the
 * digest of COPY's sources). An entry holds what the step left: its layer
 * (when it made one) and the whole config. A cache only ever saves work:
 * an entry that is unreadable, or whose layer blob is gone (pruned), is a
 * miss, never an error. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "image/build_internal.h"
#include "util/error.h"
#include "util/fs.h"
#include "util/json.h"
#include "util/sha256.h"
#include "util/log.h"

void build_sha256_hex(const void *data, size_t len, char out[65])
{
    cleanup_hull_error hull_error e = NULL;
    /* Only an allocation can fail here; an empty key then matches nothing. */
    if (hull_sha256_buf(data, len, out, &e) < 0) {
        hull_warn("build cache key: %s", hull_error_msg(e));
        out[0] = '\0';
    }
}

void build_cache_entry_free(struct build_cache_entry *e)
{
    image_desc_free(&e->layer);
    free(e->diff_id);
    json_object_put(e->config);
    memset(e, 0, sizeof(*e));
}

static int cache_dir(struct image_store *s, bool create, hull_error *err)
{
    if (create) {
        char path[4096];
        snprintf(path, sizeof(path), "%s/hull/build-cache", s->root);
        if (hull_mkdir_p(path, 0700, err) < 0)
            return -1;
    }
    int fd = openat(s->rootfd, "hull/build-cache", O_PATH | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return hull_error_errno(err, "open %s/hull/build-cache", s->root);
    return fd;
}

static bool key_valid(const char *key)
{
    if (strlen(key) != 64)
        return false;
    for (const char *p = key; *p; p++)
        if (!((*p >= '0' && *p <= '9') || (*p >= 'a' && *p <= 'f')))
            return false;
    return true;
}

int build_cache_get(struct image_store *s, const char *key, struct build_cache_entry *out)
{
    memset(out, 0, sizeof(*out));
    cleanup_hull_error hull_error e = NULL;
    if (!key_valid(key))
        return 0;
    cleanup_close int dfd = cache_dir(s, false, &e);
    if (dfd < 0)
        return 0;
    char name[80];
    snprintf(name, sizeof(name), "%s.json", key);
    cleanup_free char *text = NULL;
    size_t len = 0;
    cleanup_json json_object *doc = NULL;
    if (hull_read_file_at(dfd, name, &text, &len, &e) < 0 ||
        hj_parse(text, len, name, &doc, &e) < 0)
        return 0;
    json_object *config = hj_get(doc, "config");
    json_object *layer = hj_get(doc, "layer");
    if (config == NULL || !json_object_is_type(config, json_type_object))
        return 0;
    if (layer) {
        struct build_cache_entry r = {.has_layer = true};
        int64_t size = -1;
        if (hj_string(layer, "layer", "mediaType", true, &r.layer.media_type, &e) < 0 ||
            hj_string(layer, "layer", "digest", true, &r.layer.digest, &e) < 0 ||
            hj_int64(layer, "layer", "size", &size, NULL, &e) < 0 ||
            hj_string(doc, "", "diff_id", true, &r.diff_id, &e) < 0 ||
            !image_digest_valid(r.layer.digest) || !image_digest_valid(r.diff_id) ||
            !image_blob_exists(s, r.layer.digest)) {
            /* Pruned (or broken): the entry can never be used again. */
            if (unlinkat(dfd, name, 0) < 0 && errno != ENOENT)
                hull_debug("build cache: remove %s: %s", name, strerror(errno));
            build_cache_entry_free(&r);
            return 0;
        }
        r.layer.size = size;
        *out = r;
    }
    out->config = json_object_get(config);
    return 1;
}

int build_cache_put(struct image_store *s, const char *key, const struct build_cache_entry *e,
                    hull_error *err)
{
    cleanup_close int dfd = cache_dir(s, true, err);
    if (dfd < 0)
        return -1;
    cleanup_json json_object *doc = json_object_new_object();
    if (e->has_layer) {
        json_object *l = json_object_new_object();
        json_object_object_add(l, "mediaType", json_object_new_string(e->layer.media_type));
        json_object_object_add(l, "digest", json_object_new_string(e->layer.digest));
        json_object_object_add(l, "size", json_object_new_int64(e->layer.size));
        json_object_object_add(doc, "layer", l);
        json_object_object_add(doc, "diff_id", json_object_new_string(e->diff_id));
    }
    json_object_object_add(doc, "config", json_object_get(e->config));
    const char *text = json_object_to_json_string_ext(doc, JSON_C_TO_STRING_PLAIN);
    char name[80];
    snprintf(name, sizeof(name), "%s.json", key);
    return hull_write_file_replace(dfd, name, text, strlen(text), 0600, false, err);
}
