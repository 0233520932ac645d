/* docker-archive / oci-archive load and save, and rootfs tarball import
 * (libarchive; never reached from the static hull, see image.h).
 *
 * Loading streams the tar once: blobs/sha256/<hex> files go straight into
 * the store through a blob writer that checks their digest, other large
 * files (a legacy docker archive's layer.tar) are stored under whatever
 * digest they have, and the small JSON documents (index.json,
 * manifest.json, configs) stay in memory. Only when the whole archive has
 * been read and every image in it checked are names written: a failed load
 * changes no name and takes back the blobs it added. */
#include <archive.h>
#include <archive_entry.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "image/archive.h"
#include "util/fs.h"
#include "util/json.h"
#include "util/strv.h"

#define REF_NAME_ANN    "org.opencontainers.image.ref.name"
#define CONTAINERD_NAME "io.containerd.image.name"
#define ARCHIVE_BLOCK   (64 * 1024)

struct afile {
    char *path;   /* as in the archive, without a leading "./" or "/" */
    char *digest; /* a file stored as a blob */
    int64_t size;
    char *data; /* a small document kept in memory */
    size_t len;
    char *link; /* a symlink's or hard link's target, as a path in the archive */
};

struct loader {
    struct image_store *s;
    struct afile *files;
    size_t n;
    char **added; /* blobs this load created, removed again on failure */
};

static void loader_free(struct loader *L)
{
    for (size_t i = 0; i < L->n; i++) {
        free(L->files[i].path);
        free(L->files[i].digest);
        free(L->files[i].data);
        free(L->files[i].link);
    }
    free(L->files);
    hull_strv_free(L->added);
}

/* Only blobs that were not there before this load. A concurrent pull or
 * load of the very same blob that found it here (and so skipped it) would
 * lose it; its image then fails image_load with "missing blob" until pulled
 * again. Rare, and what a failed load must otherwise leave behind is
 * garbage only prune would find. */
static void loader_rollback(struct loader *L)
{
    for (size_t i = 0; L->added != NULL && L->added[i] != NULL; i++) {
        char path[128];
        snprintf(path, sizeof(path), "blobs/sha256/%s", L->added[i] + strlen("sha256:"));
        unlinkat(L->s->rootfd, path, 0);
    }
}

/* "./a//b/" -> "a/b"; ".." components are kept (they only ever fail to match). */
static char *norm_path(const char *dir, const char *p)
{
    char joined[PATH_MAX + 2], clean[PATH_MAX + 2];
    if (p[0] == '/' || dir == NULL)
        snprintf(joined, sizeof(joined), "/%s", p);
    else
        snprintf(joined, sizeof(joined), "/%s/%s", dir, p);
    if (hull_path_clean(joined, clean, sizeof(clean)) < 0)
        return strdup("..");
    return strdup(clean + 1);
}

static bool is_blob_path(const char *path, char *digest, size_t len)
{
    const char *hex = path + strlen("blobs/sha256/");
    if (strncmp(path, "blobs/sha256/", strlen("blobs/sha256/")) != 0)
        return false;
    snprintf(digest, len, "sha256:%s", hex);
    return image_digest_valid(digest);
}

/* Files kept in memory: the documents, and any small file (a legacy
 * archive's <id>/json and VERSION must not become blobs of the store; a small
 * layer among them is stored when manifest.json names it). */
#define SMALL_FILE (256 * 1024)
static bool is_document(const char *path, int64_t size)
{
    const char *dot = strrchr(path, '.');
    return size <= SMALL_FILE ||
           (size <= (int64_t)HULL_IMAGE_CONFIG_MAX &&
            (strcmp(path, "index.json") == 0 || strcmp(path, "manifest.json") == 0 ||
             (dot != NULL && strcmp(dot, ".json") == 0 && strchr(path, '/') == NULL)));
}

static int read_document(struct archive *a, int64_t size, struct afile *f, hull_error *err)
{
    f->data = malloc((size_t)size + 1);
    if (f->data == NULL)
        return hull_error_set(err, ENOMEM, "out of memory");
    la_ssize_t got = archive_read_data(a, f->data, (size_t)size);
    if (got != size)
        return hull_error_set(err, EIO, "%s: %s", f->path,
                              got < 0 ? archive_error_string(a) : "truncated");
    f->data[size] = '\0';
    f->len = (size_t)size;
    return 0;
}

/* Copy the current entry's data into the store; expected may be NULL. */
static int stream_blob(struct loader *L, struct archive *a, const char *expected, int64_t size,
                       struct afile *f, hull_error *err)
{
    if (expected != NULL && image_blob_exists(L->s, expected)) {
        f->digest = strdup(expected);
        archive_read_data_skip(a);
        return 0;
    }
    struct image_blob_writer *w = NULL;
    int64_t resume = 0;
    if (image_blob_writer_open(L->s, expected, size, &w, &resume, err) < 0)
        return hull_error_prefix(err, "%s", f->path);
    cleanup_free char *buf = malloc(ARCHIVE_BLOCK); /* not static: hulld has threads */
    if (buf == NULL) {
        image_blob_writer_abort(w, false);
        return hull_error_set(err, ENOMEM, "out of memory");
    }
    if (!image_blob_writer_done(w)) {
        int64_t seen = 0;
        la_ssize_t n;
        while ((n = archive_read_data(a, buf, ARCHIVE_BLOCK)) > 0) {
            /* A killed writer's .part holds the first bytes already. */
            int64_t skip = resume > seen ? resume - seen : 0;
            if (skip < n && image_blob_writer_write(w, buf + skip, (size_t)(n - skip), err) < 0) {
                image_blob_writer_abort(w, false);
                return hull_error_prefix(err, "%s", f->path);
            }
            seen += n;
        }
        if (n < 0) {
            image_blob_writer_abort(w, false);
            return hull_error_set(err, EIO, "%s: %s", f->path, archive_error_string(a));
        }
    }
    if (image_blob_writer_commit(w, &f->digest, err) < 0)
        return hull_error_prefix(err, "%s", f->path);
    if (expected != NULL && hull_strv_append(&L->added, expected) < 0)
        return hull_error_set(err, ENOMEM, "out of memory");
    return 0;
}

static int read_entry(struct loader *L, struct archive *a, struct archive_entry *ent,
                      hull_error *err)
{
    cleanup_free char *path = norm_path(NULL, archive_entry_pathname(ent));
    if (path == NULL)
        return hull_error_set(err, ENOMEM, "out of memory");
    mode_t type = archive_entry_filetype(ent);
    const char *hard = archive_entry_hardlink(ent);
    if (type != AE_IFREG && type != AE_IFLNK && hard == NULL)
        return 0; /* directories and the like carry nothing an image needs */
    struct afile *grown = realloc(L->files, (L->n + 1) * sizeof(*grown));
    if (grown == NULL)
        return hull_error_set(err, ENOMEM, "out of memory");
    L->files = grown;
    struct afile *f = &L->files[L->n++];
    *f = (struct afile){.path = steal_ptr(&path)};
    if (hard != NULL) {
        f->link = norm_path(NULL, hard);
        return 0;
    }
    if (type == AE_IFLNK) {
        char dir[PATH_MAX];
        snprintf(dir, sizeof(dir), "%s", f->path);
        char *slash = strrchr(dir, '/');
        if (slash != NULL)
            *slash = '\0';
        f->link = norm_path(slash ? dir : "", archive_entry_symlink(ent));
        return 0;
    }
    int64_t size = archive_entry_size(ent);
    f->size = size;
    char digest[96];
    if (is_blob_path(f->path, digest, sizeof(digest)))
        return stream_blob(L, a, digest, size, f, err);
    if (is_document(f->path, size))
        return read_document(a, size, f, err);
    return stream_blob(L, a, NULL, size, f, err);
}

static struct afile *find_file(const struct loader *L, const char *path)
{
    cleanup_free char *p = norm_path(NULL, path);
    for (int hops = 0; p != NULL && hops < 16; hops++) {
        struct afile *hit = NULL;
        for (size_t i = 0; i < L->n && hit == NULL; i++)
            if (strcmp(L->files[i].path, p) == 0)
                hit = &L->files[i];
        if (hit == NULL || hit->link == NULL)
            return hit;
        free(p);
        p = strdup(hit->link);
    }
    return NULL;
}

/* A file's bytes: kept in memory, or read back from the store. */
static int file_bytes(struct loader *L, const struct afile *f, size_t max, char **out, size_t *len,
                      hull_error *err)
{
    if (f->data != NULL) {
        *out = malloc(f->len + 1);
        if (*out == NULL)
            return hull_error_set(err, ENOMEM, "out of memory");
        memcpy(*out, f->data, f->len + 1);
        *len = f->len;
        return 0;
    }
    return image_blob_read(L->s, f->digest, max, out, len, err);
}

/* Every blob an image (manifest or index) needs is in the store. */
static int check_image(struct loader *L, const struct image_desc *d, hull_error *err)
{
    if (!image_digest_valid(d->digest) || !image_blob_exists(L->s, d->digest))
        return hull_error_set(err, ENOENT, "the archive lacks manifest %s", d->digest);
    cleanup_free char *text = NULL;
    size_t len = 0;
    if (image_blob_read(L->s, d->digest, HULL_IMAGE_MANIFEST_MAX, &text, &len, err) < 0)
        return -1;
    const char *kind = image_doc_kind(text, len, d->media_type, err);
    if (kind == NULL)
        return -1;
    if (strcmp(kind, MT_OCI_INDEX) == 0 || strcmp(kind, MT_DOCKER_LIST) == 0) {
        struct image_desc sel = {0};
        if (image_index_select(text, len, NULL, &sel, err) < 0) {
            /* An index for other platforms only: keep it, as skopeo does. */
            hull_error_free(err);
            return 0;
        }
        int r = check_image(L, &sel, err);
        image_desc_free(&sel);
        return r;
    }
    cleanup_image_manifest struct image_manifest m = {0};
    if (image_manifest_parse(text, len, &m, err) < 0)
        return -1;
    if (!image_blob_exists(L->s, m.config.digest))
        return hull_error_set(err, ENOENT, "the archive lacks config %s", m.config.digest);
    for (size_t i = 0; i < m.n_layers; i++)
        if (!image_blob_exists(L->s, m.layers[i].digest))
            return hull_error_set(err, ENOENT, "the archive lacks layer %s", m.layers[i].digest);
    return 0;
}

/* A reference as the store names it, or NULL when text is none. */
static char *normal_name(const char *text)
{
    cleanup_image_ref struct image_ref ref = {0};
    cleanup_hull_error hull_error e = NULL;
    if (text == NULL || image_ref_parse(text, &ref, &e) < 0)
        return NULL;
    return image_ref_name(&ref);
}

static char *fallback_name(const char *digest)
{
    char *name = NULL;
    if (asprintf(&name, "localhost/%.12s:latest", digest + strlen("sha256:")) < 0)
        return NULL;
    return name;
}

/* The RepoTags manifest.json gives the image whose config is config_digest. */
static json_object *repo_tags_for(json_object *mj, struct loader *L, const char *config_digest)
{
    for (size_t i = 0; mj != NULL && i < json_object_array_length(mj); i++) {
        json_object *e = json_object_array_get_idx(mj, i);
        json_object *cfg = hj_get(e, "Config");
        const struct afile *f = cfg ? find_file(L, json_object_get_string(cfg)) : NULL;
        if (f != NULL && f->digest != NULL && strcmp(f->digest, config_digest) == 0)
            return hj_get(e, "RepoTags");
    }
    return NULL;
}

static int add_result(char ***names, char ***digests, const char *name, const char *digest,
                      hull_error *err)
{
    if (hull_strv_append(names, name) < 0 || hull_strv_append(digests, digest) < 0)
        return hull_error_set(err, ENOMEM, "out of memory");
    return 0;
}

static int config_digest_of(struct loader *L, const char *mdigest, char **out, hull_error *err)
{
    cleanup_free char *text = NULL;
    size_t len = 0;
    if (image_blob_read(L->s, mdigest, HULL_IMAGE_MANIFEST_MAX, &text, &len, err) < 0)
        return -1;
    cleanup_image_manifest struct image_manifest m = {0};
    cleanup_hull_error hull_error e = NULL;
    if (image_manifest_parse(text, len, &m, &e) < 0)
        return 0; /* an index: no config of its own */
    *out = strdup(m.config.digest);
    return 0;
}

/* An OCI layout (oci-archive, or a docker 25+ / hull docker-archive). */
static int load_layout(struct loader *L, const struct afile *idx, json_object *mj, char ***names,
                       char ***digests, hull_error *err)
{
    cleanup_json json_object *doc = NULL;
    if (hj_parse(idx->data, idx->len, "index.json", &doc, err) < 0)
        return -1;
    json_object *ms = hj_get(doc, "manifests");
    if (ms == NULL || !json_object_is_type(ms, json_type_array))
        return hull_error_set(err, EINVAL, "index.json: manifests must be an array");
    for (size_t i = 0; i < json_object_array_length(ms); i++) {
        json_object *m = json_object_array_get_idx(ms, i);
        struct image_desc d = {0};
        int64_t size = -1;
        if (hj_string(m, "manifests[]", "mediaType", false, &d.media_type, err) < 0 ||
            hj_string(m, "manifests[]", "digest", true, &d.digest, err) < 0 ||
            hj_int64(m, "manifests[]", "size", &size, NULL, err) < 0) {
            image_desc_free(&d);
            return -1;
        }
        d.size = size;
        int r = check_image(L, &d, err);
        json_object *ann = hj_get(m, "annotations");
        json_object *cn = hj_get(ann, CONTAINERD_NAME), *rn = hj_get(ann, REF_NAME_ANN);
        cleanup_free char *name = normal_name(cn ? json_object_get_string(cn) : NULL);
        const char *rs = rn ? json_object_get_string(rn) : NULL;
        /* A bare tag ("latest", as docker writes it) is no name of its own. */
        if (name == NULL && rs != NULL && strpbrk(rs, "/:@.") != NULL)
            name = normal_name(rs);
        cleanup_free char *cdigest = NULL;
        if (r == 0 && name == NULL)
            r = config_digest_of(L, d.digest, &cdigest, err);
        json_object *tags = cdigest ? repo_tags_for(mj, L, cdigest) : NULL;
        if (r == 0 && name == NULL && tags != NULL && json_object_array_length(tags) > 0)
            name = normal_name(json_object_get_string(json_object_array_get_idx(tags, 0)));
        if (r == 0 && name == NULL && rs != NULL)
            name = normal_name(rs);
        if (r == 0 && name == NULL)
            name = fallback_name(d.digest);
        if (r == 0)
            r = add_result(names, digests, name, d.digest, err);
        image_desc_free(&d);
        if (r < 0)
            return -1;
    }
    return 0;
}

/* Layer media type from the blob's first bytes. */
static const char *layer_type(struct image_store *s, const char *digest)
{
    cleanup_close int fd = image_blob_open(s, digest, NULL);
    unsigned char magic[4] = {0};
    if (fd >= 0 && read(fd, magic, sizeof(magic)) == (ssize_t)sizeof(magic)) {
        if (magic[0] == 0x1f && magic[1] == 0x8b)
            return MT_OCI_LAYER_GZIP;
        if (magic[0] == 0x28 && magic[1] == 0xb5 && magic[2] == 0x2f && magic[3] == 0xfd)
            return MT_OCI_LAYER_ZSTD;
    }
    return MT_OCI_LAYER;
}

/* One image of a legacy docker archive: a new OCI manifest over its config
 * and layer files. Names are written by the caller. */
static int load_legacy_one(struct loader *L, json_object *e, char **mdigest, hull_error *err)
{
    json_object *cfg = hj_get(e, "Config"), *layers = hj_get(e, "Layers");
    const struct afile *cf = cfg ? find_file(L, json_object_get_string(cfg)) : NULL;
    if (cf == NULL)
        return hull_error_set(err, ENOENT, "manifest.json: Config names no file of the archive");
    cleanup_free char *text = NULL;
    size_t len = 0;
    if (file_bytes(L, cf, HULL_IMAGE_CONFIG_MAX, &text, &len, err) < 0)
        return -1;
    cleanup_json json_object *config = NULL;
    if (hj_parse(text, len, cf->path, &config, err) < 0)
        return -1;
    cleanup_strv char **diff_ids = NULL;
    size_t n_diff = 0;
    json_object *rootfs = hj_get(config, "rootfs");
    if (hj_string_array(rootfs, "rootfs", "diff_ids", &diff_ids, &n_diff, err) < 0)
        return -1;
    size_t n = layers ? json_object_array_length(layers) : 0;
    if (n != n_diff)
        return hull_error_set(err, EINVAL, "%s: %zu diff_ids for %zu layers", cf->path, n_diff, n);
    struct image_desc *descs = calloc(n ? n : 1, sizeof(*descs));
    if (descs == NULL)
        return hull_error_set(err, ENOMEM, "out of memory");
    int r = 0;
    for (size_t i = 0; i < n && r == 0; i++) {
        const char *lp = json_object_get_string(json_object_array_get_idx(layers, i));
        struct afile *lf = lp ? find_file(L, lp) : NULL;
        if (lf != NULL && lf->digest == NULL && lf->data != NULL) {
            r = image_blob_put(L->s, lf->data, lf->len, &lf->digest, err);
            if (r < 0)
                break;
        }
        if (lf == NULL || lf->digest == NULL) {
            r = hull_error_set(err, ENOENT, "manifest.json: layer %s is not in the archive",
                               lp ? lp : "?");
            break;
        }
        descs[i].digest = lf->digest;
        descs[i].size = lf->size;
        descs[i].media_type = (char *)layer_type(L->s, lf->digest);
        if (strcmp(descs[i].media_type, MT_OCI_LAYER) == 0 && strcmp(lf->digest, diff_ids[i]) != 0)
            r = hull_error_set(err, EINVAL, "layer %s does not match its diff id %s", lp,
                               diff_ids[i]);
    }
    if (r == 0)
        r = image_commit(L->s, NULL, config, descs, diff_ids, n, mdigest, err);
    free(descs); /* the strings belong to L */
    return r;
}

static int load_legacy(struct loader *L, json_object *mj, char ***names, char ***digests,
                       hull_error *err)
{
    if (!json_object_is_type(mj, json_type_array))
        return hull_error_set(err, EINVAL, "manifest.json: must be an array");
    for (size_t i = 0; i < json_object_array_length(mj); i++) {
        json_object *e = json_object_array_get_idx(mj, i);
        cleanup_free char *digest = NULL;
        if (load_legacy_one(L, e, &digest, err) < 0)
            return -1;
        json_object *tags = hj_get(e, "RepoTags");
        size_t nt = tags ? json_object_array_length(tags) : 0;
        for (size_t t = 0; t < nt; t++) {
            cleanup_free char *name =
                normal_name(json_object_get_string(json_object_array_get_idx(tags, t)));
            if (name == NULL)
                return hull_error_set(err, EINVAL, "manifest.json: RepoTags: '%s' is no name",
                                      json_object_get_string(json_object_array_get_idx(tags, t)));
            if (add_result(names, digests, name, digest, err) < 0)
                return -1;
        }
        if (nt == 0) {
            cleanup_free char *name = fallback_name(digest);
            if (add_result(names, digests, name, digest, err) < 0)
                return -1;
        }
    }
    return 0;
}

static int read_archive(struct loader *L, int fd, hull_error *err)
{
    struct archive *a = archive_read_new();
    if (a == NULL)
        return hull_error_set(err, ENOMEM, "out of memory");
    archive_read_support_filter_all(a);
    archive_read_support_format_tar(a);
    int r = 0;
    if (archive_read_open_fd(a, fd, ARCHIVE_BLOCK) != ARCHIVE_OK) {
        r = hull_error_set(err, EINVAL, "not an archive: %s", archive_error_string(a));
    } else {
        struct archive_entry *ent;
        int ar;
        while (r == 0 && (ar = archive_read_next_header(a, &ent)) == ARCHIVE_OK)
            r = read_entry(L, a, ent, err);
        if (r == 0 && ar != ARCHIVE_EOF)
            r = hull_error_set(err, EINVAL, "not a docker-archive or oci-archive: %s",
                               archive_error_string(a));
    }
    archive_read_free(a);
    return r;
}

static int load_names(struct loader *L, char ***names, char ***digests, hull_error *err)
{
    const struct afile *idx = find_file(L, "index.json");
    const struct afile *mf = find_file(L, "manifest.json");
    cleanup_json json_object *mj = NULL;
    if (mf != NULL && mf->data != NULL) {
        /* An array, which hj_parse (objects only) does not take. */
        mj = json_tokener_parse(mf->data);
        if (mj == NULL || !json_object_is_type(mj, json_type_array))
            return hull_error_set(err, EINVAL, "manifest.json: not a JSON array");
    }
    if (idx != NULL && idx->data != NULL)
        return load_layout(L, idx, mj, names, digests, err);
    if (mj != NULL)
        return load_legacy(L, mj, names, digests, err);
    return hull_error_set(err, EINVAL,
                          "not a docker-archive or oci-archive (no index.json or manifest.json)");
}

int image_archive_load(struct image_store *s, int fd, char ***names, char ***digests,
                       hull_error *err)
{
    struct loader L = {.s = s};
    cleanup_strv char **nm = NULL, **dg = NULL;
    /* Keeps prune from taking blobs that are written but not yet named. */
    cleanup_close int pin = image_store_pin(s, err);
    if (pin < 0)
        return -1;
    int r = read_archive(&L, fd, err);
    if (r == 0)
        r = load_names(&L, &nm, &dg, err);
    for (size_t i = 0; r == 0 && nm != NULL && nm[i] != NULL; i++) {
        struct image_desc d = {0};
        cleanup_free char *text = NULL;
        size_t len = 0;
        r = image_blob_read(s, dg[i], HULL_IMAGE_MANIFEST_MAX, &text, &len, err);
        const char *kind = r == 0 ? image_doc_kind(text, len, NULL, err) : NULL;
        if (kind == NULL) {
            r = -1;
            break;
        }
        d.media_type = (char *)kind;
        d.digest = dg[i];
        d.size = (int64_t)len;
        r = image_store_tag(s, nm[i], &d, err);
    }
    if (r < 0)
        loader_rollback(&L);
    loader_free(&L);
    if (r < 0)
        return -1;
    *names = steal_ptr(&nm);
    *digests = steal_ptr(&dg);
    return 0;
}

/* ---- save ---- */

static int write_header(struct archive *a, const char *path, mode_t type, int64_t size,
                        hull_error *err)
{
    struct archive_entry *e = archive_entry_new();
    if (e == NULL)
        return hull_error_set(err, ENOMEM, "out of memory");
    archive_entry_set_pathname(e, path);
    archive_entry_set_filetype(e, type);
    archive_entry_set_perm(e, type == AE_IFDIR ? 0755 : 0644);
    archive_entry_set_size(e, type == AE_IFDIR ? 0 : size);
    archive_entry_set_mtime(e, 0, 0); /* the same image gives the same bytes */
    int r = archive_write_header(a, e);
    archive_entry_free(e);
    if (r != ARCHIVE_OK)
        return hull_error_set(err, EIO, "write %s: %s", path, archive_error_string(a));
    return 0;
}

static int write_mem(struct archive *a, const char *path, const char *data, size_t len,
                     hull_error *err)
{
    if (write_header(a, path, AE_IFREG, (int64_t)len, err) < 0)
        return -1;
    if (len > 0 && archive_write_data(a, data, len) != (la_ssize_t)len)
        return hull_error_set(err, EIO, "write %s: %s", path, archive_error_string(a));
    return 0;
}

static int write_blob(struct archive *a, struct image_store *s, const char *digest, hull_error *err)
{
    cleanup_close int fd = image_blob_open(s, digest, err);
    struct stat st;
    if (fd < 0)
        return -1;
    if (fstat(fd, &st) < 0)
        return hull_error_errno(err, "stat blob %s", digest);
    char path[128];
    snprintf(path, sizeof(path), "blobs/sha256/%s", digest + strlen("sha256:"));
    if (write_header(a, path, AE_IFREG, st.st_size, err) < 0)
        return -1;
    cleanup_free char *buf = malloc(ARCHIVE_BLOCK);
    if (buf == NULL)
        return hull_error_set(err, ENOMEM, "out of memory");
    ssize_t n;
    while ((n = read(fd, buf, ARCHIVE_BLOCK)) > 0)
        if (archive_write_data(a, buf, (size_t)n) != n)
            return hull_error_set(err, EIO, "write %s: %s", path, archive_error_string(a));
    if (n < 0)
        return hull_error_errno(err, "read blob %s", digest);
    return 0;
}

static json_object *index_doc(const struct image *img, const char *name, size_t mlen)
{
    json_object *d = json_object_new_object();
    json_object_object_add(d, "mediaType", json_object_new_string(img->manifest.media_type));
    json_object_object_add(d, "digest", json_object_new_string(img->manifest_digest));
    json_object_object_add(d, "size", json_object_new_int64((int64_t)mlen));
    if (name != NULL) {
        json_object *ann = json_object_new_object();
        json_object_object_add(ann, CONTAINERD_NAME, json_object_new_string(name));
        json_object_object_add(ann, REF_NAME_ANN, json_object_new_string(name));
        json_object_object_add(d, "annotations", ann);
    }
    json_object *ms = json_object_new_array();
    json_object_array_add(ms, d);
    json_object *idx = json_object_new_object();
    json_object_object_add(idx, "schemaVersion", json_object_new_int(2));
    json_object_object_add(idx, "mediaType", json_object_new_string(MT_OCI_INDEX));
    json_object_object_add(idx, "manifests", ms);
    return idx;
}

/* docker load's manifest.json, pointing into the same blobs. */
static json_object *docker_manifest_doc(const struct image *img, const char *name)
{
    char path[128];
    json_object *e = json_object_new_object();
    snprintf(path, sizeof(path), "blobs/sha256/%s",
             img->manifest.config.digest + strlen("sha256:"));
    json_object_object_add(e, "Config", json_object_new_string(path));
    json_object *tags = json_object_new_array();
    if (name != NULL && strchr(name, '@') == NULL)
        json_object_array_add(tags, json_object_new_string(name));
    json_object_object_add(e, "RepoTags", tags);
    json_object *layers = json_object_new_array();
    for (size_t i = 0; i < img->manifest.n_layers; i++) {
        snprintf(path, sizeof(path), "blobs/sha256/%s",
                 img->manifest.layers[i].digest + strlen("sha256:"));
        json_object_array_add(layers, json_object_new_string(path));
    }
    json_object_object_add(e, "Layers", layers);
    json_object *arr = json_object_new_array();
    json_object_array_add(arr, e);
    return arr;
}

static int save_entries(struct archive *a, struct image_store *s, const struct image *img,
                        enum image_archive_format f, hull_error *err)
{
    static const char layout[] = "{\"imageLayoutVersion\":\"1.0.0\"}";
    const char *name = img->entry.name;
    cleanup_free char *mtext = NULL;
    size_t mlen = 0;
    if (image_blob_read(s, img->manifest_digest, HULL_IMAGE_MANIFEST_MAX, &mtext, &mlen, err) < 0)
        return -1;
    cleanup_json json_object *idx = index_doc(img, name, mlen);
    const char *itext = json_object_to_json_string_ext(idx, JSON_C_TO_STRING_PLAIN |
                                                                JSON_C_TO_STRING_NOSLASHESCAPE);
    if (write_header(a, "blobs", AE_IFDIR, 0, err) < 0 ||
        write_header(a, "blobs/sha256", AE_IFDIR, 0, err) < 0 ||
        write_mem(a, "oci-layout", layout, strlen(layout), err) < 0 ||
        write_mem(a, "index.json", itext, strlen(itext), err) < 0)
        return -1;
    if (f == IMAGE_ARCHIVE_DOCKER) {
        cleanup_json json_object *mj = docker_manifest_doc(img, name);
        const char *t = json_object_to_json_string_ext(mj, JSON_C_TO_STRING_PLAIN |
                                                               JSON_C_TO_STRING_NOSLASHESCAPE);
        if (write_mem(a, "manifest.json", t, strlen(t), err) < 0)
            return -1;
    }
    if (write_blob(a, s, img->manifest_digest, err) < 0 ||
        write_blob(a, s, img->manifest.config.digest, err) < 0)
        return -1;
    for (size_t i = 0; i < img->manifest.n_layers; i++) {
        bool dup = false;
        for (size_t j = 0; j < i; j++)
            dup =
                dup || strcmp(img->manifest.layers[i].digest, img->manifest.layers[j].digest) == 0;
        if (!dup && write_blob(a, s, img->manifest.layers[i].digest, err) < 0)
            return -1;
    }
    return 0;
}

int image_archive_save(struct image_store *s, const char *text, const char *platform,
                       enum image_archive_format f, int fd, hull_error *err)
{
    cleanup_image struct image img = {0};
    if (image_load(s, text, platform, &img, err) < 0)
        return -1;
    struct archive *a = archive_write_new();
    if (a == NULL)
        return hull_error_set(err, ENOMEM, "out of memory");
    int r = 0;
    if (archive_write_set_format_pax_restricted(a) != ARCHIVE_OK ||
        archive_write_open_fd(a, fd) != ARCHIVE_OK)
        r = hull_error_set(err, EIO, "%s", archive_error_string(a));
    if (r == 0)
        r = save_entries(a, s, &img, f == IMAGE_ARCHIVE_AUTO ? IMAGE_ARCHIVE_DOCKER : f, err);
    if (archive_write_close(a) != ARCHIVE_OK && r == 0)
        r = hull_error_set(err, EIO, "%s", archive_error_string(a));
    archive_write_free(a);
    return r;
}
