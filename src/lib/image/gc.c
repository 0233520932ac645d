/* Removing images and freeing space (image.h "gc.c").
 *
 * remove drops names; prune deletes what no name reaches and no run uses.
 * Both work under the store lock, prune also under the exclusive gc lock
 * that pins (pulls, builds between their first blob and their tag) hold
 * shared, so a blob written a moment ago for an image about to be named is
 * never taken for garbage. Lock order, everywhere: gc lock, then store lock. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "image/image.h"
#include "image/store_int.h"
#include "util/error.h"
#include "util/fs.h"
#include "util/json.h"
#include "util/sha256.h"
#include "util/strv.h"

int image_store_pin(struct image_store *s, hull_error *err)
{
    int fd = image_flock_at(s->rootfd, "hull/gc.lock", LOCK_SH, true, err);
    if (fd < 0)
        return hull_error_prefix(err, "image store %s", s->root);
    return fd;
}

/* ---- remove ---- */

static bool is_id_text(const char *text, const char *digest)
{
    if (strncmp(text, "sha256:", 7) == 0)
        return strcmp(text, digest) == 0;
    size_t len = strlen(text);
    return len >= 12 && len <= 64 && strspn(text, "0123456789abcdef") == len &&
           strncmp(digest + 7, text, len) == 0;
}

/* In use: the manifest itself, or (for an index) any of its manifests. */
static bool digest_in_use(struct image_store *s, const char *digest)
{
    if (image_in_use(s, digest))
        return true;
    cleanup_free char *text = NULL;
    size_t len = 0;
    cleanup_hull_error hull_error ignored = NULL; /* no readable index: nothing more in use */
    cleanup_json json_object *doc = NULL;
    if (image_blob_read(s, digest, HULL_IMAGE_MANIFEST_MAX, &text, &len, &ignored) < 0 ||
        hj_parse(text, len, "index", &doc, &ignored) < 0)
        return false;
    json_object *m = hj_get(doc, "manifests");
    for (size_t i = 0;
         m && json_object_is_type(m, json_type_array) && i < json_object_array_length(m); i++) {
        json_object *d = hj_get(json_object_array_get_idx(m, i), "digest");
        if (d && json_object_is_type(d, json_type_string) &&
            image_in_use(s, json_object_get_string(d)))
            return true;
    }
    return false;
}

/* Drop the entries that go: by ID every entry of the digest, by name the
 * entries of that name. How many names of the digest remain. */
static size_t drop_entries(json_object *index, const char *digest, const char *name,
                           size_t *names_dropped)
{
    json_object *m = hj_get(index, "manifests");
    size_t remain = 0;
    *names_dropped = 0;
    for (size_t i = json_object_array_length(m); i-- > 0;) {
        json_object *e = json_object_array_get_idx(m, i);
        json_object *d = hj_get(e, "digest");
        const char *have = image_index_entry_name(e);
        bool same = d && json_object_is_type(d, json_type_string) &&
                    strcmp(json_object_get_string(d), digest) == 0;
        if (same && (name == NULL || (have && strcmp(have, name) == 0))) {
            json_object_array_del_idx(m, i, 1);
            *names_dropped += have != NULL;
        } else if (same && have) {
            remain++;
        }
    }
    return remain;
}

static size_t count_names(json_object *index, const char *digest, char *buf, size_t cap)
{
    json_object *m = hj_get(index, "manifests");
    size_t n = 0;
    buf[0] = '\0';
    for (size_t i = 0; i < json_object_array_length(m); i++) {
        json_object *e = json_object_array_get_idx(m, i);
        json_object *d = hj_get(e, "digest");
        const char *name = image_index_entry_name(e);
        if (!name || !d || !json_object_is_type(d, json_type_string) ||
            strcmp(json_object_get_string(d), digest) != 0)
            continue;
        size_t used = strlen(buf);
        snprintf(buf + used, cap - used, "%s%s", n ? ", " : "", name);
        n++;
    }
    return n;
}

int image_store_remove(struct image_store *s, const char *text, bool force, hull_error *err)
{
    cleanup_lock_guard struct image_lock_guard g = {0};
    if (image_lock_guard_take(s, &g, err) < 0)
        return -1;
    struct image_entry e = {0};
    if (image_store_resolve(s, text, &e, err) < 0)
        return -1;
    cleanup_free char *digest = steal_ptr(&e.desc.digest);
    cleanup_free char *name = steal_ptr(&e.name);
    image_entry_clear(&e);
    bool by_id = is_id_text(text, digest);
    cleanup_json json_object *index = NULL;
    if (image_index_read(s, &index, err) < 0)
        return -1;
    char names[1024];
    if (by_id && count_names(index, digest, names, sizeof(names)) > 1 && !force)
        return hull_error_set(err, EINVAL,
                              "image %s has several names (%s): remove them by name, or force",
                              text, names);
    size_t dropped = 0;
    size_t remain = drop_entries(index, digest, by_id ? NULL : name, &dropped);
    if (remain == 0 && !force && digest_in_use(s, digest))
        return hull_error_set(err, EBUSY, "image %s is in use by a running sandbox or container",
                              text);
    return image_index_write(s, index, err);
}

int image_store_resolve_use(struct image_store *s, const char *text, struct image_entry *out,
                            hull_error *err)
{
    memset(out, 0, sizeof(*out));
    /* The pin, then the store's lock (prune's order); under the lock a
     * remove (image_store_remove) is either over, and text not found, or
     * still to come, and finds the mark. */
    cleanup_close int pin = image_store_pin(s, err);
    if (pin < 0)
        return -1;
    cleanup_lock_guard struct image_lock_guard g = {0};
    if (image_lock_guard_take(s, &g, err) < 0 || image_store_resolve(s, text, out, err) < 0)
        return -1;
    cleanup_image struct image img = {0};
    if (image_load(s, out->desc.digest, NULL, &img, err) < 0) {
        image_entry_clear(out);
        return -1; /* its message names the image */
    }
    char name[IMAGE_PATH_MAX];
    snprintf(name, sizeof(name), "hull/using/%s", img.manifest_digest + 7);
    int fd = image_flock_at(s->rootfd, name, LOCK_SH, true, err);
    if (fd < 0) {
        image_entry_clear(out);
        return hull_error_prefix(err, "image store %s", s->root);
    }
    return fd;
}

/* ---- prune: what is reachable ---- */

struct reach {
    char **digests;  /* blobs to keep (manifests, indexes, configs, layers) */
    char **diff_ids; /* unpacked layers to keep */
    char **visited;  /* documents already walked */
};

static void reach_free(struct reach *r)
{
    hull_strv_free(r->digests);
    hull_strv_free(r->diff_ids);
    hull_strv_free(r->visited);
}

static int add(char ***v, const char *s, hull_error *err)
{
    if (hull_strv_append(v, s) < 0)
        return hull_error_set(err, ENOMEM, "out of memory");
    return 0;
}

static bool in_strv(char **v, const char *s)
{
    for (size_t i = 0; v && v[i]; i++)
        if (strcmp(v[i], s) == 0)
            return true;
    return false;
}

/* A blob the walk reads. Missing is fine (an index's other platforms), so
 * is a blob that is no JSON document (it refers to nothing); one that cannot
 * be read or is corrupt stops prune, which cannot know what it names. */
static int walk_read(struct image_store *s, const char *digest, size_t max, json_object **doc,
                     hull_error *err)
{
    *doc = NULL;
    char rel[IMAGE_PATH_MAX];
    struct stat st;
    image_blob_relpath(rel, digest);
    if (fstatat(s->rootfd, rel, &st, AT_SYMLINK_NOFOLLOW) < 0)
        return errno == ENOENT ? 0 : hull_error_errno(err, "prune: stat %s", digest);
    if ((uint64_t)st.st_size > max)
        return 0;
    cleanup_free char *text = NULL;
    size_t len = 0;
    if (image_blob_read(s, digest, max, &text, &len, err) < 0)
        return hull_error_prefix(err, "prune: cannot tell what %s refers to", digest);
    cleanup_hull_error hull_error not_json = NULL; /* a leaf: keeps nothing else */
    if (hj_parse(text, len, digest, doc, &not_json) < 0)
        *doc = NULL;
    return 0;
}

static const char *desc_digest(json_object *d)
{
    json_object *v = hj_get(d, "digest");
    if (v == NULL || !json_object_is_type(v, json_type_string) ||
        !image_digest_valid(json_object_get_string(v)))
        return NULL;
    return json_object_get_string(v);
}

static int walk_config(struct image_store *s, struct reach *r, const char *digest, hull_error *err)
{
    cleanup_json json_object *doc = NULL;
    if (add(&r->digests, digest, err) < 0 ||
        walk_read(s, digest, HULL_IMAGE_CONFIG_MAX, &doc, err) < 0)
        return -1;
    json_object *rootfs = hj_get(doc, "rootfs");
    json_object *ids = rootfs ? hj_get(rootfs, "diff_ids") : NULL;
    for (size_t i = 0;
         ids && json_object_is_type(ids, json_type_array) && i < json_object_array_length(ids);
         i++) {
        json_object *id = json_object_array_get_idx(ids, i);
        if (json_object_is_type(id, json_type_string) &&
            add(&r->diff_ids, json_object_get_string(id), err) < 0)
            return -1;
    }
    return 0;
}

/* An index, list or manifest and everything below it. */
static int walk_doc(struct image_store *s, struct reach *r, const char *digest, int depth,
                    hull_error *err)
{
    if (in_strv(r->visited, digest))
        return 0;
    if (depth > 8)
        return hull_error_set(err, ELOOP, "prune: %s: indexes nested too deep", digest);
    cleanup_json json_object *doc = NULL;
    if (add(&r->visited, digest, err) < 0 || add(&r->digests, digest, err) < 0 ||
        walk_read(s, digest, HULL_IMAGE_MANIFEST_MAX, &doc, err) < 0)
        return -1;
    const char *cfg = desc_digest(hj_get(doc, "config"));
    if (cfg && walk_config(s, r, cfg, err) < 0)
        return -1;
    json_object *layers = hj_get(doc, "layers");
    for (size_t i = 0; layers && json_object_is_type(layers, json_type_array) &&
                       i < json_object_array_length(layers);
         i++) {
        const char *d = desc_digest(json_object_array_get_idx(layers, i));
        if (d && add(&r->digests, d, err) < 0)
            return -1;
    }
    json_object *m = hj_get(doc, "manifests");
    for (size_t i = 0;
         m && json_object_is_type(m, json_type_array) && i < json_object_array_length(m); i++) {
        const char *d = desc_digest(json_object_array_get_idx(m, i));
        if (d && walk_doc(s, r, d, depth + 1, err) < 0)
            return -1;
    }
    return 0;
}

static int walk_index(struct image_store *s, struct reach *r, hull_error *err)
{
    cleanup_json json_object *index = NULL;
    if (image_index_read(s, &index, err) < 0)
        return -1;
    json_object *m = hj_get(index, "manifests");
    for (size_t i = 0; i < json_object_array_length(m); i++) {
        const char *d = desc_digest(json_object_array_get_idx(m, i));
        if (d && walk_doc(s, r, d, 0, err) < 0)
            return -1;
    }
    return 0;
}

/* Manifests held by runs (image_use) stay, with all they reach. Marks
 * nobody holds are removed (under their lock: image_use retries when the
 * name goes away under it). */
static int walk_in_use(struct image_store *s, struct reach *r, hull_error *err)
{
    cleanup_close int dfd = openat(s->rootfd, "hull/using", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd < 0)
        return errno == ENOENT ? 0 : hull_error_errno(err, "open %s/hull/using", s->root);
    cleanup_dir DIR *d = fdopendir(dfd);
    if (d == NULL)
        return hull_error_errno(err, "open %s/hull/using", s->root);
    int dir = hull_steal_fd(&dfd);
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        if (!hull_sha256_hex_valid(de->d_name))
            continue;
        cleanup_hull_error hull_error held = NULL;
        cleanup_close int fd = image_flock_at(dir, de->d_name, LOCK_EX | LOCK_NB, false, &held);
        if (fd >= 0) {
            unlinkat(dir, de->d_name, 0);
            continue;
        }
        if (hull_error_code(held) != EWOULDBLOCK)
            continue; /* gone meanwhile: its run ended */
        char digest[300];
        snprintf(digest, sizeof(digest), "sha256:%s", de->d_name);
        if (walk_doc(s, r, digest, 0, err) < 0)
            return -1;
    }
    return 0;
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static bool kept(char **sorted, size_t n, const char *hex)
{
    char key[80];
    snprintf(key, sizeof(key), "sha256:%s", hex);
    const char *k = key;
    return n && bsearch(&k, sorted, n, sizeof(char *), cmp_str) != NULL;
}

/* Bytes of the regular files under path (nftw has no context argument). */
static __thread uint64_t tree_bytes;
static int tree_add(const char *path, const struct stat *st, int type, struct FTW *ftw)
{
    (void)path, (void)ftw;
    if (type == FTW_F && S_ISREG(st->st_mode))
        tree_bytes += (uint64_t)st->st_size;
    return 0;
}

/* Remove dir/name (file or tree), adding its size to *bytes. */
static int remove_counted(struct image_store *s, int dir, const char *sub, const char *name,
                          uint64_t *bytes, hull_error *err)
{
    struct stat st;
    if (fstatat(dir, name, &st, AT_SYMLINK_NOFOLLOW) < 0)
        return errno == ENOENT ? 0 : hull_error_errno(err, "stat %s/%s/%s", s->root, sub, name);
    if (S_ISDIR(st.st_mode)) {
        char path[PATH_MAX];
        snprintf(path, sizeof(path), "%s/%s/%s", s->root, sub, name);
        tree_bytes = 0;
        /* Sizes are for the report only: an unreadable corner is still removed. */
        if (nftw(path, tree_add, 16, FTW_PHYS | FTW_MOUNT) == 0)
            *bytes += tree_bytes;
        if (hull_rm_rf_at(dir, name, err) < 0)
            return hull_error_prefix(err, "prune %s/%s", s->root, sub);
        return 0;
    }
    if (unlinkat(dir, name, 0) < 0 && errno != ENOENT)
        return hull_error_errno(err, "prune: remove %s/%s/%s", s->root, sub, name);
    if (S_ISREG(st.st_mode))
        *bytes += (uint64_t)st.st_size;
    return 0;
}

struct sweep {
    struct image_store *s;
    struct reach *r;
    size_t n_digests, n_diff_ids;
    struct image_prune_report *rep;
};

typedef int (*sweep_fn)(struct sweep *w, int dir, const char *name, hull_error *err);

static int sweep_dir(struct sweep *w, const char *sub, sweep_fn fn, hull_error *err)
{
    cleanup_close int dfd = openat(w->s->rootfd, sub, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd < 0)
        return errno == ENOENT ? 0 : hull_error_errno(err, "open %s/%s", w->s->root, sub);
    cleanup_dir DIR *d = fdopendir(dfd);
    if (d == NULL)
        return hull_error_errno(err, "open %s/%s", w->s->root, sub);
    int dir = hull_steal_fd(&dfd);
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
            continue;
        if (fn(w, dir, de->d_name, err) < 0)
            return -1;
    }
    return 0;
}

static int sweep_blob(struct sweep *w, int dir, const char *name, hull_error *err)
{
    /* Other names are another tool's (skopeo's temporaries): not ours to judge. */
    if (!hull_sha256_hex_valid(name) || kept(w->r->digests, w->n_digests, name))
        return 0;
    if (remove_counted(w->s, dir, "blobs/sha256", name, &w->rep->bytes, err) < 0)
        return -1;
    w->rep->blobs++;
    return 0;
}

/* "<hex>" or "<hex>.<suffix>": the hex, NULL for other names. */
static bool hex_prefix(const char *name, char hex[HULL_SHA256_HEX], const char **suffix)
{
    if (strlen(name) < 64 || strspn(name, "0123456789abcdef") < 64 ||
        (name[64] != '\0' && name[64] != '.'))
        return false;
    memcpy(hex, name, 64);
    hex[64] = '\0';
    *suffix = name + 64;
    return true;
}

/* Layers: "<diffhex>" directories, "<diffhex>.lock" held while unpacking
 * (unpack.c unlinks it when done), "<diffhex>.tmp-*" an unpack's
 * temporary. A layer is removed when no kept config names it and nobody
 * holds its lock; a temporary or a lone lock file whenever nobody holds the
 * lock (an unpack that died). */
static int sweep_layer(struct sweep *w, int dir, const char *name, hull_error *err)
{
    char hex[HULL_SHA256_HEX], lock[80];
    const char *suffix;
    if (!hex_prefix(name, hex, &suffix))
        return 0;
    bool is_layer = suffix[0] == '\0', is_lock = strcmp(suffix, ".lock") == 0;
    struct stat st;
    if (is_layer && kept(w->r->diff_ids, w->n_diff_ids, hex))
        return 0;
    if (is_lock && fstatat(dir, hex, &st, AT_SYMLINK_NOFOLLOW) == 0)
        return 0; /* goes with its layer, or stays with it */
    snprintf(lock, sizeof(lock), "%s.lock", hex);
    cleanup_hull_error hull_error held = NULL; /* held: an unpack is at work, leave it */
    cleanup_close int fd = image_flock_at(dir, lock, LOCK_EX | LOCK_NB, true, &held);
    if (fd < 0)
        return 0;
    if (!is_lock && remove_counted(w->s, dir, "hull/layers", name, &w->rep->bytes, err) < 0)
        return -1;
    w->rep->layers += is_layer;
    /* Under the lock: an unpacker waiting on it retries on a new file. A
     * kept layer's lock (its temporary was removed) stays where it was. */
    if (fstatat(dir, hex, &st, AT_SYMLINK_NOFOLLOW) < 0)
        unlinkat(dir, lock, 0);
    return 0;
}

/* Ingest: "<hex>.part"/"<hex>.lock" of writers that are gone (their lock
 * is free), and "tmp-*.part" of anonymous writers no one holds. */
static int sweep_ingest(struct sweep *w, int dir, const char *name, hull_error *err)
{
    char hex[HULL_SHA256_HEX], lock[80], part[80];
    const char *suffix;
    cleanup_hull_error hull_error held = NULL; /* a writer at work: leave its files */
    if (hex_prefix(name, hex, &suffix)) {
        if (strcmp(suffix, ".part") != 0)
            return 0; /* a .lock alone goes with its .part, or is a writer's */
        snprintf(lock, sizeof(lock), "%s.lock", hex);
        snprintf(part, sizeof(part), "%s.part", hex);
        cleanup_close int fd = image_flock_at(dir, lock, LOCK_EX | LOCK_NB, true, &held);
        if (fd < 0)
            return 0;
        if (remove_counted(w->s, dir, "hull/ingest", part, &w->rep->bytes, err) < 0)
            return -1;
        unlinkat(dir, lock, 0);
        return 0;
    }
    if (strncmp(name, "tmp-", 4) != 0)
        return 0;
    cleanup_close int fd = openat(dir, name, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    if (fd < 0 || flock(fd, LOCK_EX | LOCK_NB) < 0)
        return 0;
    return remove_counted(w->s, dir, "hull/ingest", name, &w->rep->bytes, err);
}

/* Lock files in ingest with no .part: writers that ended between their
 * commit and unlink, or a crash. Separate pass: .part files went first. */
static int sweep_ingest_locks(struct sweep *w, int dir, const char *name, hull_error *err)
{
    char hex[HULL_SHA256_HEX];
    const char *suffix;
    if (!hex_prefix(name, hex, &suffix) || strcmp(suffix, ".lock") != 0)
        return 0;
    cleanup_hull_error hull_error held = NULL; /* held: a writer at work */
    cleanup_close int fd = image_flock_at(dir, name, LOCK_EX | LOCK_NB, false, &held);
    if (fd >= 0)
        unlinkat(dir, name, 0);
    (void)w, (void)err;
    return 0;
}

/* microVM disks "<manifest hex>.<ext>" of manifests no longer kept. */
static int sweep_disk(struct sweep *w, int dir, const char *name, hull_error *err)
{
    char hex[HULL_SHA256_HEX];
    const char *suffix;
    if (!hex_prefix(name, hex, &suffix) || kept(w->r->digests, w->n_digests, hex))
        return 0;
    return remove_counted(w->s, dir, "hull/disks", name, &w->rep->bytes, err);
}

/* hull/sources/<hex>: the registries and repositories a blob came from or
 * went to (push.c, for cross-repository mounts). Worth nothing once the
 * blob is gone, and a record of what was pulled that should go with it. */
static int sweep_source(struct sweep *w, int dir, const char *name, hull_error *err)
{
    char hex[HULL_SHA256_HEX];
    const char *suffix;
    if (!hex_prefix(name, hex, &suffix) || suffix[0] != '\0' ||
        kept(w->r->digests, w->n_digests, hex))
        return 0;
    return remove_counted(w->s, dir, "hull/sources", name, &w->rep->bytes, err);
}

/* index.json temporaries of writers that crashed (written only under the
 * store lock, which prune holds). */
static int sweep_root(struct sweep *w, int dir, const char *name, hull_error *err)
{
    size_t len = strlen(name);
    if (strncmp(name, ".index.json.", 12) != 0 || len < 16 || strcmp(name + len - 4, ".tmp") != 0)
        return 0;
    return remove_counted(w->s, dir, ".", name, &w->rep->bytes, err);
}

static int prune_locked(struct image_store *s, struct image_prune_report *rep, hull_error *err)
{
    struct reach r = {0};
    int ret = -1;
    if (walk_index(s, &r, err) == 0 && walk_in_use(s, &r, err) == 0) {
        struct sweep w = {.s = s, .r = &r, .rep = rep};
        w.n_digests = hull_strv_len(r.digests);
        w.n_diff_ids = hull_strv_len(r.diff_ids);
        if (w.n_digests)
            qsort(r.digests, w.n_digests, sizeof(char *), cmp_str);
        if (w.n_diff_ids)
            qsort(r.diff_ids, w.n_diff_ids, sizeof(char *), cmp_str);
        if (sweep_dir(&w, "blobs/sha256", sweep_blob, err) == 0 &&
            sweep_dir(&w, "hull/layers", sweep_layer, err) == 0 &&
            sweep_dir(&w, "hull/ingest", sweep_ingest, err) == 0 &&
            sweep_dir(&w, "hull/ingest", sweep_ingest_locks, err) == 0 &&
            sweep_dir(&w, "hull/disks", sweep_disk, err) == 0 &&
            sweep_dir(&w, "hull/sources", sweep_source, err) == 0 &&
            sweep_dir(&w, ".", sweep_root, err) == 0)
            ret = 0;
    }
    reach_free(&r);
    return ret;
}

int image_store_prune(struct image_store *s, struct image_prune_report *r, hull_error *err)
{
    struct image_prune_report local;
    if (r == NULL)
        r = &local;
    memset(r, 0, sizeof(*r));
    /* Pins first, then the store lock: the order pullers take them in. */
    cleanup_close int gc = image_flock_at(s->rootfd, "hull/gc.lock", LOCK_EX, true, err);
    if (gc < 0)
        return hull_error_prefix(err, "prune %s", s->root);
    cleanup_lock_guard struct image_lock_guard g = {0};
    if (image_lock_guard_take(s, &g, err) < 0)
        return hull_error_prefix(err, "prune");
    return prune_locked(s, r, err);
}
