/* Blobs (image.h "the store", blobs): content-addressed files under
 * blobs/sha256. Nothing appears there before its bytes were hashed and
 * matched: writers stream into hull/ingest and rename when verified. And
 * image_commit, which writes an image's config and manifest. */
#include <errno.h>
#include <fcntl.h>
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

bool image_blob_exists(struct image_store *s, const char *digest)
{
    if (!image_digest_valid(digest))
        return false;
    char rel[IMAGE_PATH_MAX];
    image_blob_relpath(rel, digest);
    struct stat st;
    return fstatat(s->rootfd, rel, &st, AT_SYMLINK_NOFOLLOW) == 0 && S_ISREG(st.st_mode);
}

int image_blob_open(struct image_store *s, const char *digest, hull_error *err)
{
    if (!image_digest_valid(digest))
        return hull_error_set(err, EINVAL, "invalid digest '%s'", digest ? digest : "");
    char rel[IMAGE_PATH_MAX];
    image_blob_relpath(rel, digest);
    int fd = openat(s->rootfd, rel, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    if (fd < 0 && errno == ENOENT)
        return hull_error_set(err, ENOENT, "blob %s is not in the store", digest);
    if (fd < 0)
        return hull_error_errno(err, "open blob %s", digest);
    return fd;
}

int image_blob_read(struct image_store *s, const char *digest, size_t max, char **out, size_t *len,
                    hull_error *err)
{
    *out = NULL;
    *len = 0;
    cleanup_close int fd = image_blob_open(s, digest, err);
    if (fd < 0)
        return -1;
    struct stat st;
    if (fstat(fd, &st) < 0)
        return hull_error_errno(err, "stat blob %s", digest);
    if ((uint64_t)st.st_size > max)
        return hull_error_set(err, EFBIG, "blob %s: %lld bytes, over the limit of %zu", digest,
                              (long long)st.st_size, max);
    cleanup_free char *text = NULL;
    size_t n = 0;
    char hex[HULL_SHA256_HEX];
    if (hull_read_fd(fd, &text, &n, err) < 0 || hull_sha256_buf(text, n, hex, err) < 0)
        return hull_error_prefix(err, "blob %s", digest);
    if (n > max)
        return hull_error_set(err, EFBIG, "blob %s: over the limit of %zu bytes", digest, max);
    if (strcmp(hex, digest + 7) != 0)
        return hull_error_set(err, EIO,
                              "blob %s is corrupt: its content hashes to sha256:%s (remove the "
                              "image and pull it again)",
                              digest, hex);
    *out = steal_ptr(&text);
    *len = n;
    return 0;
}

/* ---- the streaming writer ---- */

struct image_blob_writer {
    struct image_store *s;
    char hex[HULL_SHA256_HEX]; /* expected, or "" */
    int64_t size;              /* expected, or -1 */
    int fd;                    /* the .part (or an O_TMPFILE when anonymous) */
    int lockfd;                /* hull/ingest/<hex>.lock */
    char part[IMAGE_PATH_MAX]; /* "hull/ingest/<hex>.part"; "" for an O_TMPFILE */
    char lock[IMAGE_PATH_MAX];
    struct hull_sha256 *h;
    bool done;
};

static void writer_free(struct image_blob_writer *w)
{
    if (w->fd >= 0)
        close(w->fd);
    if (w->lockfd >= 0) {
        /* Unlinked while held: a waiter that wins this lock sees the name
         * gone and locks the next file (image_flock_at). */
        unlinkat(w->s->rootfd, w->lock, 0);
        close(w->lockfd);
    }
    hull_sha256_free(w->h);
    free(w);
}

static void writer_freep(struct image_blob_writer **w)
{
    if (*w)
        writer_free(*w);
    *w = NULL;
}
#define cleanup_writer __attribute__((cleanup(writer_freep)))

/* Hash what a killed writer left in the .part, to continue after it. A .part
 * longer than the blob can only be garbage: start again. */
static int part_resume(struct image_blob_writer *w, int64_t *resume_from, hull_error *err)
{
    struct stat st;
    if (fstat(w->fd, &st) < 0)
        return hull_error_errno(err, "stat %s", w->part);
    if (w->size >= 0 && st.st_size > w->size) {
        if (ftruncate(w->fd, 0) < 0)
            return hull_error_errno(err, "truncate %s", w->part);
        st.st_size = 0;
    }
    if (st.st_size > 0) {
        cleanup_free char *buf = malloc(1 << 16);
        if (buf == NULL)
            return hull_error_set(err, ENOMEM, "out of memory");
        for (off_t off = 0; off < st.st_size;) {
            ssize_t n = pread(w->fd, buf, 1 << 16, off);
            if (n < 0 && errno == EINTR)
                continue;
            if (n <= 0)
                return n < 0 ? hull_error_errno(err, "read %s", w->part)
                             : hull_error_set(err, EIO, "read %s: file shrank", w->part);
            hull_sha256_update(w->h, buf, (size_t)n);
            off += n;
        }
    }
    if (lseek(w->fd, st.st_size, SEEK_SET) < 0)
        return hull_error_errno(err, "seek %s", w->part);
    *resume_from = st.st_size;
    return 0;
}

static int writer_open_expected(struct image_blob_writer *w, const char *expected,
                                int64_t *resume_from, hull_error *err)
{
    snprintf(w->hex, sizeof(w->hex), "%s", expected + 7);
    snprintf(w->lock, sizeof(w->lock), "hull/ingest/%s.lock", w->hex);
    snprintf(w->part, sizeof(w->part), "hull/ingest/%s.part", w->hex);
    if (image_blob_exists(w->s, expected)) {
        w->done = true;
        return 0;
    }
    /* One writer per blob: a second one waits here, then finds it done. */
    w->lockfd = image_flock_at(w->s->rootfd, w->lock, LOCK_EX, true, err);
    if (w->lockfd < 0)
        return -1;
    if (image_blob_exists(w->s, expected)) {
        w->done = true;
        return 0;
    }
    w->fd = openat(w->s->rootfd, w->part, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
    if (w->fd < 0)
        return hull_error_errno(err, "open %s", w->part);
    return part_resume(w, resume_from, err);
}

/* No digest known: an unnamed file, which vanishes by itself if the writer
 * dies and is linked into blobs/ once hashed. */
static int writer_open_anonymous(struct image_blob_writer *w, hull_error *err)
{
    w->fd = openat(w->s->rootfd, "hull/ingest", O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
    if (w->fd >= 0)
        return 0;
    if (errno != EOPNOTSUPP && errno != EISDIR && errno != EINVAL)
        return hull_error_errno(err, "create a temporary file in %s/hull/ingest", w->s->root);
    /* Filesystems without O_TMPFILE: a named file, flocked so that prune
     * leaves it alone while it is written. */
    static unsigned counter; /* hulld writes from several threads */
    snprintf(w->part, sizeof(w->part), "hull/ingest/tmp-%d-%u.part", (int)getpid(),
             __atomic_fetch_add(&counter, 1, __ATOMIC_RELAXED));
    w->fd = openat(w->s->rootfd, w->part, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
    if (w->fd < 0)
        return hull_error_errno(err, "create %s", w->part);
    if (flock(w->fd, LOCK_EX) < 0) {
        hull_error_errno(err, "lock %s", w->part);
        unlinkat(w->s->rootfd, w->part, 0);
        return -1;
    }
    return 0;
}

int image_blob_writer_open(struct image_store *s, const char *expected, int64_t size,
                           struct image_blob_writer **out, int64_t *resume_from, hull_error *err)
{
    *out = NULL;
    int64_t from = 0;
    if (expected && !image_digest_valid(expected))
        return hull_error_set(err, EINVAL, "invalid digest '%s'", expected);
    cleanup_writer struct image_blob_writer *w = calloc(1, sizeof(*w));
    if (w == NULL)
        return hull_error_set(err, ENOMEM, "out of memory");
    w->s = s;
    w->fd = w->lockfd = -1;
    w->size = size < 0 ? -1 : size;
    w->h = hull_sha256_new(err);
    if (w->h == NULL)
        return -1;
    int r =
        expected ? writer_open_expected(w, expected, &from, err) : writer_open_anonymous(w, err);
    if (r < 0)
        return hull_error_prefix(err, "image store %s", s->root);
    if (resume_from)
        *resume_from = from;
    *out = steal_ptr(&w);
    return 0;
}

bool image_blob_writer_done(const struct image_blob_writer *w)
{
    return w->done;
}

int image_blob_writer_write(struct image_blob_writer *w, const void *buf, size_t len,
                            hull_error *err)
{
    if (w->done)
        return 0; /* already stored by another writer: the bytes are not needed */
    uint64_t have = hull_sha256_length(w->h);
    if (w->size >= 0 && have + len > (uint64_t)w->size)
        return hull_error_set(err, EFBIG, "blob %s%s: more than the %lld bytes its descriptor says",
                              w->hex[0] ? "sha256:" : "", w->hex[0] ? w->hex : "",
                              (long long)w->size);
    for (size_t off = 0; off < len;) {
        ssize_t n = write(w->fd, (const char *)buf + off, len - off);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return hull_error_errno(err, "write %s/%s", w->s->root,
                                    w->part[0] ? w->part : "hull/ingest");
        off += (size_t)n;
    }
    hull_sha256_update(w->h, buf, len);
    return 0;
}

/* Put the verified bytes at blobs/sha256/<hex>. */
static int writer_publish(struct image_blob_writer *w, const char *hex, hull_error *err)
{
    char rel[IMAGE_PATH_MAX];
    snprintf(rel, sizeof(rel), "blobs/sha256/%s", hex);
    if (fsync(w->fd) < 0)
        return hull_error_errno(err, "fsync blob sha256:%s", hex);
    if (w->part[0]) {
        if (renameat(w->s->rootfd, w->part, w->s->rootfd, rel) < 0)
            return hull_error_errno(err, "rename %s to %s", w->part, rel);
        w->part[0] = '\0';
    } else {
        char proc[32];
        if (linkat(AT_FDCWD, hull_fd_path(proc, w->fd), w->s->rootfd, rel, AT_SYMLINK_FOLLOW) < 0 &&
            errno != EEXIST)
            return hull_error_errno(err, "link blob sha256:%s", hex);
    }
    return image_fsync_dir(w->s, "blobs/sha256", err);
}

int image_blob_writer_commit(struct image_blob_writer *wp, char **digest_out, hull_error *err)
{
    cleanup_writer struct image_blob_writer *w = wp;
    if (digest_out)
        *digest_out = NULL;
    char hex[HULL_SHA256_HEX];
    if (w->done) {
        snprintf(hex, sizeof(hex), "%s", w->hex);
    } else {
        uint64_t got = hull_sha256_length(w->h);
        if (hull_sha256_final(w->h, hex, err) < 0)
            return -1;
        /* A blob that is not what was asked for leaves nothing behind. */
        if (w->size >= 0 && got != (uint64_t)w->size) {
            if (w->part[0])
                unlinkat(w->s->rootfd, w->part, 0);
            return hull_error_set(err, EIO, "blob sha256:%s: %llu bytes, expected %lld",
                                  w->hex[0] ? w->hex : hex, (unsigned long long)got,
                                  (long long)w->size);
        }
        if (w->hex[0] && strcmp(hex, w->hex) != 0) {
            unlinkat(w->s->rootfd, w->part, 0);
            return hull_error_set(err, EIO, "blob sha256:%s: digest mismatch (got sha256:%s)",
                                  w->hex, hex);
        }
        if (writer_publish(w, hex, err) < 0) {
            if (w->part[0])
                unlinkat(w->s->rootfd, w->part, 0);
            return -1;
        }
    }
    if (digest_out && asprintf(digest_out, "sha256:%s", hex) < 0) {
        *digest_out = NULL;
        return hull_error_set(err, ENOMEM, "out of memory");
    }
    return 0;
}

void image_blob_writer_abort(struct image_blob_writer *w, bool keep_partial)
{
    if (w == NULL)
        return;
    /* An anonymous writer's bytes cannot be resumed (no digest names them). */
    bool anonymous = w->hex[0] == '\0';
    if (w->part[0] && (!keep_partial || anonymous))
        unlinkat(w->s->rootfd, w->part, 0);
    writer_free(w);
}

int image_blob_put(struct image_store *s, const char *data, size_t len, char **digest_out,
                   hull_error *err)
{
    char hex[HULL_SHA256_HEX], digest[80];
    if (hull_sha256_buf(data, len, hex, err) < 0)
        return -1;
    snprintf(digest, sizeof(digest), "sha256:%s", hex);
    /* Twice at most: a .part of this digest left by a killed writer is
     * resumed; if it held other bytes, commit drops it and we start over. */
    for (int attempt = 0;; attempt++) {
        struct image_blob_writer *w = NULL;
        int64_t from = 0;
        if (image_blob_writer_open(s, digest, (int64_t)len, &w, &from, err) < 0)
            return -1;
        if (!w->done && image_blob_writer_write(w, data + from, len - (size_t)from, err) < 0) {
            image_blob_writer_abort(w, false);
            return -1;
        }
        if (image_blob_writer_commit(w, digest_out, err) == 0)
            return 0;
        if (from == 0 || attempt > 0)
            return -1;
        hull_error_free(err);
    }
}

/* ---- committing an image ---- */

static json_object *desc_json(const char *media_type, const char *digest, int64_t size)
{
    json_object *o = json_object_new_object();
    if (o == NULL)
        return NULL;
    json_object_object_add(o, "mediaType", json_object_new_string(media_type));
    json_object_object_add(o, "digest", json_object_new_string(digest));
    json_object_object_add(o, "size", json_object_new_int64(size));
    return o;
}

/* The config document: the caller's, with rootfs from diff_ids and the
 * host's os/architecture where it names none. */
static json_object *commit_config(json_object *config, char *const *diff_ids, size_t n)
{
    json_object *c = NULL;
    if (config == NULL)
        c = json_object_new_object();
    else if (json_object_deep_copy(config, &c, NULL) < 0)
        return NULL;
    json_object *rootfs = json_object_new_object();
    json_object *ids = json_object_new_array();
    if (c == NULL || rootfs == NULL || ids == NULL) {
        json_object_put(c);
        json_object_put(rootfs);
        json_object_put(ids);
        return NULL;
    }
    for (size_t i = 0; i < n; i++)
        json_object_array_add(ids, json_object_new_string(diff_ids[i]));
    json_object_object_add(rootfs, "type", json_object_new_string("layers"));
    json_object_object_add(rootfs, "diff_ids", ids);
    json_object_object_add(c, "rootfs", rootfs);
    const char *host = image_host_platform(); /* "linux/amd64" */
    const char *slash = strchr(host, '/');
    if (hj_get(c, "os") == NULL)
        json_object_object_add(c, "os", json_object_new_string_len(host, (int)(slash - host)));
    if (hj_get(c, "architecture") == NULL) {
        const char *arch = slash + 1, *v = strchr(arch, '/');
        json_object_object_add(
            c, "architecture",
            json_object_new_string_len(arch, v ? (int)(v - arch) : (int)strlen(arch)));
    }
    return c;
}

static int put_json(struct image_store *s, json_object *doc, char **digest, size_t *len,
                    hull_error *err)
{
    const char *text = json_object_to_json_string_ext(doc, JSON_C_TO_STRING_PLAIN |
                                                               JSON_C_TO_STRING_NOSLASHESCAPE);
    if (text == NULL)
        return hull_error_set(err, ENOMEM, "out of memory");
    *len = strlen(text);
    return image_blob_put(s, text, *len, digest, err);
}

int image_commit(struct image_store *s, const char *name, json_object *config,
                 const struct image_desc *layers, char *const *diff_ids, size_t n,
                 char **manifest_digest, hull_error *err)
{
    *manifest_digest = NULL;
    /* The name is checked first: a bad one must not leave blobs behind. */
    cleanup_free char *full = NULL;
    if (name) {
        cleanup_image_ref struct image_ref ref = {0};
        if (image_ref_parse(name, &ref, err) < 0)
            return -1;
        if ((full = image_ref_name(&ref)) == NULL)
            return hull_error_set(err, ENOMEM, "out of memory");
    }
    for (size_t i = 0; i < n; i++)
        if (!image_digest_valid(layers[i].digest) || !image_digest_valid(diff_ids[i]) ||
            !image_blob_exists(s, layers[i].digest))
            return hull_error_set(err, EINVAL, "commit: layer %zu (%s) is not a stored blob", i,
                                  layers[i].digest ? layers[i].digest : "none");
    cleanup_json json_object *cfg = commit_config(config, diff_ids, n);
    cleanup_json json_object *manifest = json_object_new_object();
    json_object *arr = json_object_new_array();
    if (cfg == NULL || manifest == NULL || arr == NULL) {
        json_object_put(arr);
        return hull_error_set(err, ENOMEM, "out of memory");
    }
    cleanup_free char *cfg_digest = NULL, *digest = NULL;
    size_t cfg_len = 0, len = 0;
    if (put_json(s, cfg, &cfg_digest, &cfg_len, err) < 0) {
        json_object_put(arr);
        return hull_error_prefix(err, "commit: config");
    }
    json_object_object_add(manifest, "schemaVersion", json_object_new_int(2));
    json_object_object_add(manifest, "mediaType", json_object_new_string(MT_OCI_MANIFEST));
    json_object_object_add(manifest, "config",
                           desc_json(MT_OCI_CONFIG, cfg_digest, (int64_t)cfg_len));
    for (size_t i = 0; i < n; i++)
        json_object_array_add(arr,
                              desc_json(layers[i].media_type, layers[i].digest, layers[i].size));
    json_object_object_add(manifest, "layers", arr);
    if (put_json(s, manifest, &digest, &len, err) < 0)
        return hull_error_prefix(err, "commit: manifest");
    struct image_desc d = {.media_type = MT_OCI_MANIFEST, .digest = digest, .size = (int64_t)len};
    if (full && image_store_tag(s, full, &d, err) < 0)
        return -1;
    *manifest_digest = steal_ptr(&digest);
    return 0;
}
