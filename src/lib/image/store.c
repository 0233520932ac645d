/* The store (image.h "the store"): an OCI image layout plus hull's own
 * directory. This file: opening and creating it, the lock, index.json and
 * the names in it, loading an image, "used" marks. Blobs are in blob.c. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "image/image.h"
#include "image/store_int.h"
#include "util/error.h"
#include "util/fs.h"
#include "util/json.h"
#include "util/sha256.h"

/* hull/empty-layer: IMAGE_EMPTY_LOWER (rootfs.c). */
static const char *const hull_dirs[] = {
    "hull", "hull/ingest", "hull/layers", "hull/using", "hull/disks", "hull/empty-layer", NULL};
static const char *const layout_dirs[] = {"blobs", "blobs/sha256", NULL};

#define OCI_LAYOUT_TEXT  "{\"imageLayoutVersion\":\"1.0.0\"}"
#define EMPTY_INDEX_TEXT "{\"schemaVersion\":2,\"mediaType\":\"" MT_OCI_INDEX "\",\"manifests\":[]}"

void image_blob_relpath(char out[IMAGE_PATH_MAX], const char *digest)
{
    snprintf(out, IMAGE_PATH_MAX, "blobs/sha256/%s", digest + 7);
}

int image_fsync_dir(struct image_store *s, const char *rel, hull_error *err)
{
    cleanup_close int fd = openat(s->rootfd, rel, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return hull_error_errno(err, "open %s/%s", s->root, rel);
    if (fsync(fd) < 0)
        return hull_error_errno(err, "fsync %s/%s", s->root, rel);
    return 0;
}

int image_flock_at(int dirfd, const char *name, int op, bool create, hull_error *err)
{
    for (;;) {
        int flags = O_RDWR | O_CLOEXEC | O_NOFOLLOW | (create ? O_CREAT : 0);
        cleanup_close int fd = openat(dirfd, name, flags, 0600);
        if (fd < 0)
            return hull_error_errno(err, "open %s", name);
        int r;
        do {
            r = flock(fd, op);
        } while (r < 0 && errno == EINTR);
        if (r < 0)
            return hull_error_errno(err, "lock %s", name);
        struct stat held, now;
        if (fstat(fd, &held) < 0)
            return hull_error_errno(err, "stat %s", name);
        if (fstatat(dirfd, name, &now, AT_SYMLINK_NOFOLLOW) == 0 && now.st_ino == held.st_ino &&
            now.st_dev == held.st_dev)
            return hull_steal_fd(&fd);
        if (!create)
            return hull_error_set(err, ENOENT, "lock %s: removed while waiting", name);
        /* Unlinked by its holder while we waited: lock the new one. */
    }
}

static int mkdirs(struct image_store *s, const char *const *dirs, bool tolerate_ro, hull_error *err)
{
    for (; *dirs; dirs++) {
        if (mkdirat(s->rootfd, *dirs, 0700) == 0 || errno == EEXIST)
            continue;
        /* A store someone else owns can still be read (list, resolve, load);
         * what needs the directories fails later, naming them. */
        if (tolerate_ro && (errno == EACCES || errno == EROFS || errno == EPERM))
            continue;
        return hull_error_errno(err, "mkdir %s/%s", s->root, *dirs);
    }
    return 0;
}

static bool exists_at(int dirfd, const char *name)
{
    struct stat st;
    return fstatat(dirfd, name, &st, AT_SYMLINK_NOFOLLOW) == 0;
}

/* Make the layout's files where missing. index.json is made under the lock:
 * two first pulls racing must not overwrite each other's names. */
static int layout_create(struct image_store *s, hull_error *err)
{
    if (mkdirs(s, layout_dirs, false, err) < 0 || mkdirs(s, hull_dirs, false, err) < 0)
        return -1;
    if (!exists_at(s->rootfd, "oci-layout") &&
        hull_write_file_atomic(s->rootfd, "oci-layout", OCI_LAYOUT_TEXT, strlen(OCI_LAYOUT_TEXT),
                               0644, err) < 0)
        return hull_error_prefix(err, "%s", s->root);
    cleanup_lock_guard struct image_lock_guard g = {0};
    if (image_lock_guard_take(s, &g, err) < 0)
        return -1;
    if (!exists_at(s->rootfd, "index.json") &&
        hull_write_file_atomic(s->rootfd, "index.json", EMPTY_INDEX_TEXT, strlen(EMPTY_INDEX_TEXT),
                               0644, err) < 0)
        return hull_error_prefix(err, "%s", s->root);
    return 0;
}

static int layout_check(struct image_store *s, hull_error *err)
{
    cleanup_free char *text = NULL;
    size_t len = 0;
    cleanup_close int fd = openat(s->rootfd, "oci-layout", O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    if (fd < 0 && errno == ENOENT)
        return hull_error_set(err, ENOENT, "no images in %s (hull image pull)", s->root);
    if (fd < 0)
        return hull_error_errno(err, "open %s/oci-layout", s->root);
    struct stat st;
    if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode) || st.st_size > 4096)
        return hull_error_set(err, EINVAL, "%s/oci-layout: not an OCI layout file", s->root);
    if (hull_read_fd(fd, &text, &len, err) < 0)
        return hull_error_prefix(err, "%s/oci-layout", s->root);
    cleanup_json json_object *doc = NULL;
    cleanup_free char *version = NULL;
    if (hj_parse(text, len, "oci-layout", &doc, err) < 0 ||
        hj_string(doc, "oci-layout", "imageLayoutVersion", true, &version, err) < 0)
        return hull_error_prefix(err, "%s", s->root);
    if (strncmp(version, "1.", 2) != 0)
        return hull_error_set(err, ENOTSUP, "%s: OCI layout version %s is not supported", s->root,
                              version);
    return 0;
}

int image_store_open(const char *root, bool create, struct image_store *out, hull_error *err)
{
    *out = (struct image_store){.root = NULL, .rootfd = -1, .lockfd = -1};
    const char *r = image_store_root(root);
    if (create && hull_mkdir_p(r, 0700, err) < 0)
        return hull_error_prefix(err, "image store");
    char abs[PATH_MAX];
    if (realpath(r, abs) == NULL) {
        if (errno == ENOENT || errno == ENOTDIR)
            return hull_error_set(err, ENOENT, "no images in %s (hull image pull)", r);
        return hull_error_errno(err, "image store %s", r);
    }
    struct image_store s = {.root = strdup(abs), .rootfd = -1, .lockfd = -1};
    if (s.root == NULL)
        return hull_error_set(err, ENOMEM, "out of memory");
    s.rootfd = open(abs, O_PATH | O_DIRECTORY | O_CLOEXEC);
    if (s.rootfd < 0) {
        hull_error_errno(err, "image store %s", abs);
        image_store_close(&s);
        return -1;
    }
    if ((create && layout_create(&s, err) < 0) || layout_check(&s, err) < 0 ||
        mkdirs(&s, hull_dirs, true, err) < 0) {
        image_store_close(&s);
        return -1;
    }
    *out = s;
    return 0;
}

void image_store_close(struct image_store *s)
{
    if (s == NULL)
        return;
    image_store_unlock(s);
    if (s->rootfd >= 0)
        close(s->rootfd);
    free(s->root);
    s->root = NULL;
    s->rootfd = -1;
}

int image_store_lock(struct image_store *s, hull_error *err)
{
    if (s->lockfd >= 0)
        return hull_error_set(err, EDEADLK, "image store %s: already locked by this handle",
                              s->root);
    int fd = image_flock_at(s->rootfd, "hull/lock", LOCK_EX, true, err);
    if (fd < 0)
        return hull_error_prefix(err, "image store %s", s->root);
    s->lockfd = fd;
    return 0;
}

void image_store_unlock(struct image_store *s)
{
    if (s->lockfd >= 0)
        close(s->lockfd);
    s->lockfd = -1;
}

int image_lock_guard_take(struct image_store *s, struct image_lock_guard *g, hull_error *err)
{
    g->s = s;
    g->mine = false;
    if (s->lockfd >= 0)
        return 0;
    if (image_store_lock(s, err) < 0)
        return -1;
    g->mine = true;
    return 0;
}

/* ---- index.json ---- */

int image_index_read(struct image_store *s, json_object **out, hull_error *err)
{
    cleanup_close int fd = openat(s->rootfd, "index.json", O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    cleanup_free char *text = NULL;
    size_t len = 0;
    if (fd < 0 && errno != ENOENT)
        return hull_error_errno(err, "open %s/index.json", s->root);
    if (fd < 0) {
        text = strdup(EMPTY_INDEX_TEXT);
        if (text == NULL)
            return hull_error_set(err, ENOMEM, "out of memory");
        len = strlen(text);
    } else {
        struct stat st;
        if (fstat(fd, &st) < 0)
            return hull_error_errno(err, "stat %s/index.json", s->root);
        if (st.st_size > (off_t)IMAGE_INDEX_MAX)
            return hull_error_set(err, EFBIG, "%s/index.json: %lld bytes, over the limit of %u",
                                  s->root, (long long)st.st_size, IMAGE_INDEX_MAX);
        if (hull_read_fd(fd, &text, &len, err) < 0)
            return hull_error_prefix(err, "%s/index.json", s->root);
    }
    cleanup_json json_object *doc = NULL;
    int64_t version = 0;
    bool present = false;
    if (hj_parse(text, len, "index.json", &doc, err) < 0 ||
        hj_int64(doc, "index.json", "schemaVersion", &version, &present, err) < 0)
        return hull_error_prefix(err, "%s", s->root);
    if (!present || version != 2)
        return hull_error_set(err, EINVAL, "%s/index.json: schemaVersion must be 2", s->root);
    json_object *m = hj_get(doc, "manifests");
    if (m == NULL) {
        m = json_object_new_array();
        if (m == NULL || json_object_object_add(doc, "manifests", m) < 0)
            return hull_error_set(err, ENOMEM, "out of memory");
    } else if (!json_object_is_type(m, json_type_array)) {
        return hull_error_set(err, EINVAL, "%s/index.json: manifests: must be an array", s->root);
    }
    *out = steal_ptr(&doc);
    return 0;
}

int image_index_write(struct image_store *s, json_object *index, hull_error *err)
{
    if (s->lockfd < 0)
        return hull_error_set(err, EINVAL, "%s/index.json: written without the store lock",
                              s->root);
    const char *text = json_object_to_json_string_ext(index, JSON_C_TO_STRING_PLAIN |
                                                                 JSON_C_TO_STRING_NOSLASHESCAPE);
    if (text == NULL)
        return hull_error_set(err, ENOMEM, "out of memory");
    if (hull_write_file_atomic(s->rootfd, "index.json", text, strlen(text), 0644, err) < 0)
        return hull_error_prefix(err, "%s", s->root);
    /* The rename itself is durable only once the directory is synced. */
    return image_fsync_dir(s, ".", err);
}

const char *image_index_entry_name(json_object *entry)
{
    json_object *ann = hj_get(entry, "annotations");
    json_object *name = ann ? hj_get(ann, IMAGE_REF_NAME_ANNOTATION) : NULL;
    if (name == NULL || !json_object_is_type(name, json_type_string))
        return NULL;
    return json_object_get_string(name);
}

/* ---- names ---- */

void image_entry_clear(struct image_entry *e)
{
    free(e->name);
    image_desc_free(&e->desc);
    free(e->created);
    memset(e, 0, sizeof(*e));
}

void image_entries_free(struct image_entry *e, size_t n)
{
    if (e == NULL)
        return;
    for (size_t i = 0; i < n; i++)
        image_entry_clear(&e[i]);
    free(e);
}

static int entry_copy(const struct image_entry *in, struct image_entry *out, hull_error *err)
{
    memset(out, 0, sizeof(*out));
    if (image_desc_copy(&in->desc, &out->desc, err) < 0)
        return -1;
    out->name = in->name ? strdup(in->name) : NULL;
    out->created = in->created ? strdup(in->created) : NULL;
    if ((in->name && !out->name) || (in->created && !out->created)) {
        image_entry_clear(out);
        return hull_error_set(err, ENOMEM, "out of memory");
    }
    return 0;
}

/* One index.json entry as an image_entry; 1 when it is not a descriptor
 * hull can use (kept in the file, left out of lists). */
static int entry_from_json(json_object *o, size_t i, struct image_entry *out, hull_error *err)
{
    memset(out, 0, sizeof(*out));
    char path[64];
    snprintf(path, sizeof(path), "index.json.manifests[%zu]", i);
    cleanup_hull_error hull_error skip = NULL;
    if (image_desc_from_json(o, path, true, &out->desc, &skip) < 0)
        return 1; /* another tool's entry that is no descriptor: not an image */
    const char *name = image_index_entry_name(o);
    json_object *ann = hj_get(o, "annotations");
    json_object *created = ann ? hj_get(ann, IMAGE_CREATED_ANNOTATION) : NULL;
    out->name = name ? strdup(name) : NULL;
    if (created && json_object_is_type(created, json_type_string))
        out->created = strdup(json_object_get_string(created));
    if ((name && !out->name) || (created && !out->created)) {
        image_entry_clear(out);
        return hull_error_set(err, ENOMEM, "out of memory");
    }
    return 0;
}

int image_store_list(struct image_store *s, struct image_entry **out, size_t *n, hull_error *err)
{
    *out = NULL;
    *n = 0;
    cleanup_json json_object *index = NULL;
    if (image_index_read(s, &index, err) < 0)
        return -1;
    json_object *m = hj_get(index, "manifests");
    size_t total = json_object_array_length(m);
    struct image_entry *v = calloc(total ? total : 1, sizeof(*v));
    if (v == NULL)
        return hull_error_set(err, ENOMEM, "out of memory");
    size_t k = 0;
    for (size_t i = 0; i < total; i++) {
        int r = entry_from_json(json_object_array_get_idx(m, i), i, &v[k], err);
        if (r < 0) {
            image_entries_free(v, k);
            return -1;
        }
        if (r == 0)
            k++;
    }
    *out = v;
    *n = k;
    return 0;
}

/* The normalised form of a stored name ("busybox" as skopeo may have
 * written it -> "docker.io/library/busybox:latest"), or NULL. */
static char *normalised(const char *name)
{
    cleanup_image_ref struct image_ref ref = {0};
    cleanup_hull_error hull_error ignored = NULL; /* not a reference: no normal form */
    if (name == NULL || image_ref_parse(name, &ref, &ignored) < 0)
        return NULL;
    return image_ref_name(&ref);
}

static bool is_hex_prefix(const char *t)
{
    size_t len = strlen(t);
    return len >= 12 && len <= 64 && strspn(t, "0123456789abcdef") == len;
}

/* By manifest digest: full or a unique hex prefix. -1 with err (ambiguous),
 * 0 found (*found set), 1 not found. */
static int find_by_digest(struct image_entry *v, size_t n, const char *hex, size_t *found,
                          const char *text, hull_error *err)
{
    size_t len = strlen(hex);
    const char *match = NULL;
    for (size_t i = 0; i < n; i++) {
        if (strncmp(v[i].desc.digest + 7, hex, len) != 0)
            continue;
        if (match && strcmp(match, v[i].desc.digest) != 0)
            return hull_error_set(err, EINVAL, "image ID prefix %s is ambiguous (%s, %s, ...)",
                                  text, match, v[i].desc.digest);
        if (!match)
            *found = i;
        match = v[i].desc.digest;
    }
    return match ? 0 : 1;
}

/* By reference: the normalised name, then stored names in normal form, then
 * (for NAME@DIGEST) an entry of that repository with that digest. */
static int find_by_ref(struct image_entry *v, size_t n, const struct image_ref *ref, size_t *found,
                       hull_error *err)
{
    cleanup_free char *want = image_ref_name(ref);
    if (want == NULL)
        return hull_error_set(err, ENOMEM, "out of memory");
    for (size_t i = 0; i < n; i++)
        if (v[i].name && strcmp(v[i].name, want) == 0)
            return (*found = i), 0;
    for (size_t i = 0; i < n; i++) {
        cleanup_free char *norm = normalised(v[i].name);
        if (norm && strcmp(norm, want) == 0)
            return (*found = i), 0;
    }
    if (ref->digest == NULL)
        return 1;
    for (size_t i = 0; i < n; i++) {
        cleanup_image_ref struct image_ref have = {0};
        cleanup_hull_error hull_error ignored = NULL; /* unparsable names cannot match */
        if (strcmp(v[i].desc.digest, ref->digest) != 0 || v[i].name == NULL ||
            image_ref_parse(v[i].name, &have, &ignored) < 0)
            continue;
        if (strcmp(have.registry, ref->registry) == 0 &&
            strcmp(have.repository, ref->repository) == 0)
            return (*found = i), 0;
    }
    return 1;
}

static int resolve_in(struct image_entry *v, size_t n, const char *text, size_t *found,
                      hull_error *err)
{
    for (size_t i = 0; i < n; i++)
        if (v[i].name && strcmp(v[i].name, text) == 0)
            return (*found = i), 0;
    if (strncmp(text, "sha256:", 7) == 0) {
        if (!image_digest_valid(text))
            return hull_error_set(err, EINVAL, "invalid image ID '%s'", text);
        int r = find_by_digest(v, n, text + 7, found, text, err);
        if (r <= 0)
            return r;
        return hull_error_set(err, ENOENT, "image %s not found", text);
    }
    if (is_hex_prefix(text)) {
        int r = find_by_digest(v, n, text, found, text, err);
        if (r <= 0)
            return r;
        if (strlen(text) == 64)
            return hull_error_set(err, ENOENT, "image %s not found", text);
    }
    cleanup_image_ref struct image_ref ref = {0};
    if (image_ref_parse(text, &ref, err) < 0)
        return -1;
    int r = find_by_ref(v, n, &ref, found, err);
    if (r == 1)
        return hull_error_set(err, ENOENT, "image %s not found", text);
    return r;
}

int image_store_resolve(struct image_store *s, const char *text, struct image_entry *out,
                        hull_error *err)
{
    memset(out, 0, sizeof(*out));
    struct image_entry *v = NULL;
    size_t n = 0, found = 0;
    if (image_store_list(s, &v, &n, err) < 0)
        return -1;
    int r = resolve_in(v, n, text, &found, err);
    if (r == 0)
        r = entry_copy(&v[found], out, err);
    image_entries_free(v, n);
    return r;
}

/* The current time as RFC 3339 UTC. */
static void now_rfc3339(char buf[32])
{
    time_t t = time(NULL);
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(buf, 32, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

static json_object *entry_to_json(const char *name, const struct image_desc *d)
{
    char created[32];
    now_rfc3339(created);
    json_object *o = json_object_new_object();
    json_object *ann = json_object_new_object();
    if (o == NULL || ann == NULL) {
        json_object_put(o);
        json_object_put(ann);
        return NULL;
    }
    json_object_object_add(o, "mediaType", json_object_new_string(d->media_type));
    json_object_object_add(o, "digest", json_object_new_string(d->digest));
    json_object_object_add(o, "size", json_object_new_int64(d->size));
    json_object_object_add(ann, IMAGE_REF_NAME_ANNOTATION, json_object_new_string(name));
    json_object_object_add(ann, IMAGE_CREATED_ANNOTATION, json_object_new_string(created));
    json_object_object_add(o, "annotations", ann);
    return o;
}

/* Drop every entry named name (exactly); how many went. */
static size_t index_drop_name(json_object *index, const char *name)
{
    json_object *m = hj_get(index, "manifests");
    size_t dropped = 0;
    for (size_t i = json_object_array_length(m); i-- > 0;) {
        const char *have = image_index_entry_name(json_object_array_get_idx(m, i));
        if (have && strcmp(have, name) == 0) {
            json_object_array_del_idx(m, i, 1);
            dropped++;
        }
    }
    return dropped;
}

int image_store_tag(struct image_store *s, const char *name, const struct image_desc *desc,
                    hull_error *err)
{
    /* Stored in normal form: "app" and "docker.io/library/app:latest" are
     * one name, whoever tags it. */
    cleanup_image_ref struct image_ref ref = {0};
    if (image_ref_parse(name, &ref, err) < 0)
        return -1;
    cleanup_free char *full = image_ref_name(&ref);
    if (full == NULL)
        return hull_error_set(err, ENOMEM, "out of memory");
    name = full;
    if (!image_digest_valid(desc->digest) || desc->media_type == NULL || desc->size < 0)
        return hull_error_set(err, EINVAL, "tag %s: invalid descriptor", name);
    /* No name may point at nothing. */
    if (!image_blob_exists(s, desc->digest))
        return hull_error_set(err, ENOENT, "tag %s: blob %s is not in the store", name,
                              desc->digest);
    cleanup_lock_guard struct image_lock_guard g = {0};
    cleanup_json json_object *index = NULL;
    if (image_lock_guard_take(s, &g, err) < 0 || image_index_read(s, &index, err) < 0)
        return -1;
    index_drop_name(index, name);
    json_object *e = entry_to_json(name, desc);
    if (e == NULL || json_object_array_add(hj_get(index, "manifests"), e) < 0) {
        json_object_put(e);
        return hull_error_set(err, ENOMEM, "out of memory");
    }
    return image_index_write(s, index, err);
}

int image_store_untag(struct image_store *s, const char *name, hull_error *err)
{
    cleanup_lock_guard struct image_lock_guard g = {0};
    cleanup_json json_object *index = NULL;
    if (image_lock_guard_take(s, &g, err) < 0 || image_index_read(s, &index, err) < 0)
        return -1;
    if (index_drop_name(index, name) == 0) {
        /* "busybox" for "docker.io/library/busybox:latest" (or the other way). */
        cleanup_free char *want = normalised(name);
        json_object *m = hj_get(index, "manifests");
        size_t dropped = 0;
        for (size_t i = json_object_array_length(m); want && i-- > 0;) {
            cleanup_free char *have =
                normalised(image_index_entry_name(json_object_array_get_idx(m, i)));
            if (have && strcmp(have, want) == 0) {
                json_object_array_del_idx(m, i, 1);
                dropped++;
            }
        }
        if (dropped == 0)
            return hull_error_set(err, ENOENT, "image %s not found", name);
    }
    return image_index_write(s, index, err);
}

/* ---- loading an image ---- */

void image_free(struct image *img)
{
    if (img == NULL)
        return;
    image_entry_clear(&img->entry);
    image_manifest_free(&img->manifest);
    image_config_free(&img->config);
    free(img->manifest_digest);
    memset(img, 0, sizeof(*img));
}

/* An entry for a digest that is in blobs/ but has no name (a platform
 * manifest inside an index, an image pulled by digest and untagged). */
static int entry_for_blob(struct image_store *s, const char *digest, struct image_entry *out,
                          hull_error *err)
{
    cleanup_free char *text = NULL;
    size_t len = 0;
    if (image_blob_read(s, digest, HULL_IMAGE_MANIFEST_MAX, &text, &len, err) < 0)
        return -1;
    const char *kind = image_doc_kind(text, len, NULL, err);
    if (kind == NULL)
        return hull_error_prefix(err, "%s", digest);
    memset(out, 0, sizeof(*out));
    out->desc.media_type = strdup(kind);
    out->desc.digest = strdup(digest);
    out->desc.size = (int64_t)len;
    if (!out->desc.media_type || !out->desc.digest) {
        image_entry_clear(out);
        return hull_error_set(err, ENOMEM, "out of memory");
    }
    return 0;
}

static int load_resolve(struct image_store *s, const char *text, struct image_entry *out,
                        hull_error *err)
{
    if (image_store_resolve(s, text, out, err) == 0)
        return 0;
    if (hull_error_code(*err) == ENOENT && image_digest_valid(text) && image_blob_exists(s, text)) {
        hull_error_free(err);
        return entry_for_blob(s, text, out, err);
    }
    return -1;
}

/* The platform manifest of img->entry: itself, or the one an index picks. */
static int load_manifest(struct image_store *s, struct image *img, const char *platform,
                         hull_error *err)
{
    cleanup_free char *text = NULL;
    size_t len = 0;
    const char *digest = img->entry.desc.digest;
    if (image_blob_read(s, digest, HULL_IMAGE_MANIFEST_MAX, &text, &len, err) < 0)
        return -1;
    const char *kind = image_doc_kind(text, len, img->entry.desc.media_type, err);
    if (kind == NULL)
        return hull_error_prefix(err, "%s", digest);
    if (strcmp(kind, MT_OCI_INDEX) == 0 || strcmp(kind, MT_DOCKER_LIST) == 0) {
        struct image_desc pick = {0};
        if (image_index_select(text, len, platform, &pick, err) < 0)
            return -1;
        img->manifest_digest = steal_ptr(&pick.digest);
        image_desc_free(&pick);
        free(steal_ptr(&text));
        if (!image_blob_exists(s, img->manifest_digest))
            return hull_error_set(err, ENOENT,
                                  "the manifest %s for platform %s is not in the store (pull "
                                  "the image for that platform)",
                                  img->manifest_digest,
                                  platform ? platform : image_host_platform());
        if (image_blob_read(s, img->manifest_digest, HULL_IMAGE_MANIFEST_MAX, &text, &len, err) < 0)
            return -1;
    } else {
        img->manifest_digest = strdup(digest);
        if (img->manifest_digest == NULL)
            return hull_error_set(err, ENOMEM, "out of memory");
    }
    if (image_manifest_parse(text, len, &img->manifest, err) < 0)
        return hull_error_prefix(err, "%s", img->manifest_digest);
    return 0;
}

static int load_config(struct image_store *s, struct image *img, hull_error *err)
{
    cleanup_free char *text = NULL;
    size_t len = 0;
    const char *digest = img->manifest.config.digest;
    if (image_blob_read(s, digest, HULL_IMAGE_CONFIG_MAX, &text, &len, err) < 0 ||
        image_config_parse(text, len, &img->config, err) < 0)
        return hull_error_prefix(err, "config %s", digest);
    if (img->config.n_diff_ids != img->manifest.n_layers)
        return hull_error_set(err, EINVAL,
                              "config %s: %zu diff_ids for %zu layers (every layer needs one)",
                              digest, img->config.n_diff_ids, img->manifest.n_layers);
    return 0;
}

int image_load(struct image_store *s, const char *text, const char *platform, struct image *out,
               hull_error *err)
{
    memset(out, 0, sizeof(*out));
    struct image img = {0};
    if (load_resolve(s, text, &img.entry, err) < 0) {
        image_free(&img);
        /* "image TEXT not found" names it already. */
        bool named = err && hull_error_code(*err) == ENOENT;
        return named ? -1 : hull_error_prefix(err, "image %s", text);
    }
    if (load_manifest(s, &img, platform, err) < 0 || load_config(s, &img, err) < 0) {
        image_free(&img);
        return hull_error_prefix(err, "image %s", text);
    }
    *out = img;
    return 0;
}

/* ---- "used" marks ---- */

int image_use(struct image_store *s, const char *manifest_digest, hull_error *err)
{
    if (!image_digest_valid(manifest_digest))
        return hull_error_set(err, EINVAL, "invalid manifest digest '%s'",
                              manifest_digest ? manifest_digest : "");
    /* The mark is made under the gc pin, which prune holds exclusively from
     * its walk of the marks to its last removal: a prune either walks with
     * this mark there, or was over before it (and the caller's check after
     * the mark finds what it took). Unpinned, a mark made just after the
     * walk left a running image's layers to the sweep. */
    cleanup_close int pin = image_store_pin(s, err);
    if (pin < 0)
        return -1;
    char name[IMAGE_PATH_MAX];
    snprintf(name, sizeof(name), "hull/using/%s", manifest_digest + 7);
    int fd = image_flock_at(s->rootfd, name, LOCK_SH, true, err);
    if (fd < 0)
        return hull_error_prefix(err, "image store %s", s->root);
    return fd;
}

bool image_in_use(struct image_store *s, const char *manifest_digest)
{
    if (!image_digest_valid(manifest_digest))
        return false;
    char name[IMAGE_PATH_MAX];
    snprintf(name, sizeof(name), "hull/using/%s", manifest_digest + 7);
    cleanup_close int fd = openat(s->rootfd, name, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    if (fd < 0)
        return false; /* no mark was ever made: nobody uses it */
    return flock(fd, LOCK_EX | LOCK_NB) < 0 && errno == EWOULDBLOCK;
}
