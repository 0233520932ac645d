/* A directory -> a layer blob and its unpacked layer directory.
 *
 * Two libarchive writers in a chain: the inner one writes the tar, whose
 * bytes are hashed (the diff-id) on their way into the outer one (format
 * "raw" + the compression filter), whose bytes are hashed (the digest) on
 * their way into an image_blob_writer. Nothing is held whole in memory.
 *
 * The tar is deterministic: names sorted bytewise, numeric owners only, no
 * access or change times, no gzip timestamp. The same tree gives the same
 * digest, which is what lets a build cache or a second push find it again.
 */
#include <archive.h>
#include <archive_entry.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <unistd.h>

#include "image/image.h"
#include "image/layers.h"
#include "util/error.h"
#include "util/sha256.h"

struct seen {
    dev_t dev;
    ino_t ino;
    char *name;
};

struct lw {
    struct archive *tar, *comp;
    struct hull_sha256 *diff, *blob;
    struct image_blob_writer *w;
    hull_error werr; /* an error of the blob writer, seen inside a callback */
    int64_t size;
    bool upper;
    struct seen *seen;
    size_t n_seen, cap_seen;
};

static la_ssize_t comp_out(struct archive *a, void *arg, const void *buf, size_t len)
{
    struct lw *l = arg;
    if (image_blob_writer_write(l->w, buf, len, &l->werr) < 0) {
        archive_set_error(a, EIO, "%s", hull_error_msg(l->werr));
        return -1;
    }
    hull_sha256_update(l->blob, buf, len);
    l->size += (int64_t)len;
    return (la_ssize_t)len;
}

static la_ssize_t tar_out(struct archive *a, void *arg, const void *buf, size_t len)
{
    struct lw *l = arg;
    hull_sha256_update(l->diff, buf, len);
    la_ssize_t n = archive_write_data(l->comp, buf, len);
    if (n < 0) {
        archive_set_error(a, EIO, "%s", archive_error_string(l->comp));
        return -1;
    }
    return (la_ssize_t)len;
}

static int lw_open(struct lw *l, enum image_compression c, hull_error *err)
{
    if ((l->diff = hull_sha256_new(err)) == NULL || (l->blob = hull_sha256_new(err)) == NULL)
        return -1;
    l->comp = archive_write_new();
    l->tar = archive_write_new();
    if (!l->comp || !l->tar)
        return hull_error_set(err, ENOMEM, "out of memory");
    int r = c == IMAGE_COMPRESS_ZSTD   ? archive_write_add_filter_zstd(l->comp)
            : c == IMAGE_COMPRESS_GZIP ? archive_write_add_filter_gzip(l->comp)
                                       : archive_write_add_filter_none(l->comp);
    if (r == ARCHIVE_OK && c == IMAGE_COMPRESS_GZIP)
        r = archive_write_set_filter_option(l->comp, "gzip", "timestamp", NULL);
    if (r == ARCHIVE_OK)
        r = archive_write_set_format_raw(l->comp);
    /* the compressed stream ends where it ends: no padding to a block */
    if (r == ARCHIVE_OK)
        r = archive_write_set_bytes_in_last_block(l->comp, 1);
    if (r == ARCHIVE_OK)
        r = archive_write_open(l->comp, l, NULL, comp_out, NULL);
    if (r != ARCHIVE_OK)
        return hull_error_set(err, EIO, "compressor: %s", archive_error_string(l->comp));
    struct archive_entry *e = archive_entry_new();
    archive_entry_set_pathname(e, "layer.tar");
    archive_entry_set_filetype(e, AE_IFREG);
    archive_entry_set_perm(e, 0644);
    r = archive_write_header(l->comp, e);
    archive_entry_free(e);
    if (r != ARCHIVE_OK)
        return hull_error_set(err, EIO, "compressor: %s", archive_error_string(l->comp));
    r = archive_write_set_format_pax_restricted(l->tar);
    if (r == ARCHIVE_OK)
        r = archive_write_add_filter_none(l->tar);
    if (r == ARCHIVE_OK)
        r = archive_write_open(l->tar, l, NULL, tar_out, NULL);
    if (r != ARCHIVE_OK)
        return hull_error_set(err, EIO, "tar: %s", archive_error_string(l->tar));
    return 0;
}

static void lw_free(struct lw *l)
{
    if (l->tar)
        archive_write_free(l->tar);
    if (l->comp)
        archive_write_free(l->comp);
    hull_sha256_free(l->diff);
    hull_sha256_free(l->blob);
    if (l->w)
        image_blob_writer_abort(l->w, false);
    hull_error_free(&l->werr);
    for (size_t i = 0; i < l->n_seen; i++)
        free(l->seen[i].name);
    free(l->seen);
}

static int tar_fail(struct lw *l, const char *name, hull_error *err)
{
    if (l->werr) {
        hull_error_prefix(&l->werr, "write layer blob");
        *err = steal_ptr(&l->werr);
        return -1;
    }
    return hull_error_set(err, EIO, "tar %s: %s", name, archive_error_string(l->tar));
}

/* The same policy as unpacking: user.* and file capabilities travel;
 * trusted.* and the rest of security.* are the host's. */
static int add_xattrs(struct archive_entry *e, int fd, const char *name, hull_error *err)
{
    char list[8192];
    ssize_t n = flistxattr(fd, list, sizeof(list));
    if (n < 0)
        return errno == ENOTSUP ? 0 : hull_error_errno(err, "list xattrs of %s", name);
    /* flistxattr's order is the filesystem's: sort for a stable tar */
    const char *keys[256];
    size_t k = 0;
    for (char *p = list; p < list + n && k < 256; p += strlen(p) + 1)
        if (strncmp(p, "user.", 5) == 0 || strcmp(p, "security.capability") == 0)
            keys[k++] = p;
    for (size_t i = 1; i < k; i++)
        for (size_t j = i; j > 0 && strcmp(keys[j - 1], keys[j]) > 0; j--) {
            const char *t = keys[j];
            keys[j] = keys[j - 1];
            keys[j - 1] = t;
        }
    for (size_t i = 0; i < k; i++) {
        char v[65536];
        ssize_t vl = fgetxattr(fd, keys[i], v, sizeof(v));
        if (vl < 0)
            return hull_error_errno(err, "read %s of %s", keys[i], name);
        archive_entry_xattr_add_entry(e, keys[i], v, (size_t)vl);
    }
    return 0;
}

static int tar_sink(void *arg, const void *buf, size_t n, const char *name, hull_error *err)
{
    struct lw *l = arg;
    if (archive_write_data(l->tar, buf, n) < 0)
        return tar_fail(l, name, err);
    return 0;
}

static int emit(struct lw *l, struct archive_entry *e, int datafd, const char *name,
                hull_error *err)
{
    if (archive_write_header(l->tar, e) < ARCHIVE_WARN)
        return tar_fail(l, name, err);
    if (datafd < 0)
        return 0;
    return image_layer_pump(datafd, name, tar_sink, l, err);
}

/* An empty regular file standing for a whiteout or an opaque marker. */
static int emit_marker(struct lw *l, const char *name, const struct stat *st, hull_error *err)
{
    struct archive_entry *e = archive_entry_new();
    archive_entry_set_pathname(e, name);
    archive_entry_set_filetype(e, AE_IFREG);
    archive_entry_set_perm(e, 0600);
    archive_entry_set_size(e, 0);
    archive_entry_set_mtime(e, st->st_mtim.tv_sec, st->st_mtim.tv_nsec);
    int rc = emit(l, e, -1, name, err);
    archive_entry_free(e);
    return rc;
}

/* A second name of an inode already in the tar: a hard link entry. */
static const char *first_name(struct lw *l, const struct stat *st, const char *name,
                              hull_error *err, int *rc)
{
    *rc = 0;
    for (size_t i = 0; i < l->n_seen; i++)
        if (l->seen[i].dev == st->st_dev && l->seen[i].ino == st->st_ino)
            return l->seen[i].name;
    if (l->n_seen == l->cap_seen) {
        size_t cap = l->cap_seen ? 2 * l->cap_seen : 32;
        struct seen *ns = realloc(l->seen, cap * sizeof(*ns));
        if (ns == NULL) {
            *rc = hull_error_set(err, ENOMEM, "out of memory");
            return NULL;
        }
        l->seen = ns;
        l->cap_seen = cap;
    }
    char *copy = strdup(name);
    if (copy == NULL) {
        *rc = hull_error_set(err, ENOMEM, "out of memory");
        return NULL;
    }
    l->seen[l->n_seen++] = (struct seen){st->st_dev, st->st_ino, copy};
    return NULL;
}

static int walk(struct lw *l, int dirfd, const char *rel, hull_error *err);

static int add_entry(struct lw *l, int dirfd, const char *leaf, const char *name, hull_error *err)
{
    struct stat st;
    if (fstatat(dirfd, leaf, &st, AT_SYMLINK_NOFOLLOW) < 0)
        return hull_error_errno(err, "stat %s", name);
    if (S_ISSOCK(st.st_mode))
        return 0;
    if (l->upper && S_ISCHR(st.st_mode) && st.st_rdev == 0) {
        char wh[4096 + 8];
        const char *slash = strrchr(name, '/');
        snprintf(wh, sizeof(wh), "%.*s.wh.%s", slash ? (int)(slash - name + 1) : 0, name, leaf);
        return emit_marker(l, wh, &st, err);
    }
    struct archive_entry *e = archive_entry_new();
    if (e == NULL)
        return hull_error_set(err, ENOMEM, "out of memory");
    archive_entry_set_pathname(e, name);
    archive_entry_set_mode(e, st.st_mode);
    archive_entry_set_uid(e, st.st_uid);
    archive_entry_set_gid(e, st.st_gid);
    archive_entry_set_mtime(e, st.st_mtim.tv_sec, st.st_mtim.tv_nsec);
    cleanup_close int fd = -1;
    int rc = 0;
    if (S_ISREG(st.st_mode) || S_ISDIR(st.st_mode)) {
        fd = image_layer_open_at(dirfd, leaf, O_RDONLY | (S_ISDIR(st.st_mode) ? O_DIRECTORY : 0));
        if (fd < 0)
            rc = hull_error_errno(err, "open %s", name);
        if (rc == 0)
            rc = add_xattrs(e, fd, name, err);
    }
    const char *link = NULL;
    if (rc == 0 && !S_ISDIR(st.st_mode) && st.st_nlink > 1)
        link = first_name(l, &st, name, err, &rc);
    int datafd = -1;
    if (rc == 0 && link) {
        archive_entry_set_hardlink(e, link);
        archive_entry_set_size(e, 0);
    } else if (rc == 0 && S_ISREG(st.st_mode)) {
        archive_entry_set_size(e, st.st_size);
        datafd = fd;
    } else if (rc == 0 && S_ISLNK(st.st_mode)) {
        char target[4096];
        ssize_t n = readlinkat(dirfd, leaf, target, sizeof(target) - 1);
        if (n < 0)
            rc = hull_error_errno(err, "readlink %s", name);
        else
            target[n] = '\0', archive_entry_set_symlink(e, target);
    } else if (rc == 0 && (S_ISCHR(st.st_mode) || S_ISBLK(st.st_mode))) {
        archive_entry_set_rdev(e, st.st_rdev);
    }
    if (rc == 0)
        rc = emit(l, e, datafd, name, err);
    archive_entry_free(e);
    if (rc < 0 || !S_ISDIR(st.st_mode))
        return rc;
    char v[2];
    if (l->upper && fgetxattr(fd, "trusted.overlay.opaque", v, sizeof(v)) == 1 && v[0] == 'y') {
        char opq[4096 + 16];
        if ((size_t)snprintf(opq, sizeof(opq), "%s/.wh..wh..opq", name) >= sizeof(opq) ||
            emit_marker(l, opq, &st, err) < 0)
            return -1;
    }
    return walk(l, fd, name, err);
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static int walk(struct lw *l, int dirfd, const char *rel, hull_error *err)
{
    DIR *d = image_layer_opendir(dirfd, *rel ? rel : "/", err);
    if (d == NULL)
        return -1;
    char **names = NULL;
    size_t n = 0, cap = 0;
    int rc = 0;
    struct dirent *de;
    while (rc == 0 && (de = readdir(d)) != NULL) {
        if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
            continue;
        if (n == cap) {
            cap = cap ? 2 * cap : 64;
            char **nn = realloc(names, cap * sizeof(*nn));
            if (nn == NULL) {
                rc = hull_error_set(err, ENOMEM, "out of memory");
                break;
            }
            names = nn;
        }
        if ((names[n] = strdup(de->d_name)) == NULL)
            rc = hull_error_set(err, ENOMEM, "out of memory");
        else
            n++;
    }
    closedir(d);
    if (n > 1)
        qsort(names, n, sizeof(*names), cmp_str);
    for (size_t i = 0; i < n; i++) {
        char name[4096];
        if (rc == 0 && (size_t)snprintf(name, sizeof(name), "%s%s%s", rel, *rel ? "/" : "",
                                        names[i]) >= sizeof(name))
            rc = hull_error_set(err, ENAMETOOLONG, "%s/%s: name too long", rel, names[i]);
        if (rc == 0)
            rc = add_entry(l, dirfd, names[i], name, err);
        free(names[i]);
    }
    free(names);
    return rc;
}

static const char *media_type(enum image_compression c)
{
    return c == IMAGE_COMPRESS_ZSTD   ? MT_OCI_LAYER_ZSTD
           : c == IMAGE_COMPRESS_GZIP ? MT_OCI_LAYER_GZIP
                                      : MT_OCI_LAYER;
}

static int finish(struct lw *l, char **digest, char **diff, hull_error *err)
{
    if (archive_write_close(l->tar) != ARCHIVE_OK)
        return tar_fail(l, "end", err);
    if (archive_write_close(l->comp) != ARCHIVE_OK) {
        if (l->werr)
            return tar_fail(l, "end", err);
        return hull_error_set(err, EIO, "compress: %s", archive_error_string(l->comp));
    }
    char hex[HULL_SHA256_HEX];
    if (hull_sha256_final(l->diff, hex, err) < 0)
        return -1;
    if (asprintf(diff, "sha256:%s", hex) < 0)
        return hull_error_set(err, ENOMEM, "out of memory");
    if (hull_sha256_final(l->blob, hex, err) < 0)
        return -1;
    struct image_blob_writer *w = steal_ptr(&l->w);
    if (image_blob_writer_commit(w, digest, err) < 0)
        return hull_error_prefix(err, "store layer blob");
    if (strcmp(*digest + 7, hex) != 0)
        return hull_error_set(err, EIO, "layer blob stored as %s, written as sha256:%s", *digest,
                              hex);
    return 0;
}

int image_layer_write(struct image_store *s, const char *dir, bool upper_dir,
                      enum image_compression c, struct image_desc *out, char **diff_id,
                      hull_error *err)
{
    cleanup_close int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return hull_error_errno(err, "open %s", dir);
    /* prune must not take the blob between its commit and the unpack; the
     * caller pins again until its image is tagged */
    cleanup_close int pin = image_store_pin(s, err);
    if (pin < 0)
        return -1;
    struct lw l = {.upper = upper_dir};
    int64_t resume = 0;
    cleanup_free char *digest = NULL, *diff = NULL;
    int rc = image_blob_writer_open(s, NULL, -1, &l.w, &resume, err);
    if (rc == 0)
        rc = lw_open(&l, c, err);
    if (rc == 0)
        rc = walk(&l, fd, "", err);
    if (rc == 0)
        rc = finish(&l, &digest, &diff, err);
    int64_t size = l.size;
    lw_free(&l);
    if (rc < 0)
        return hull_error_prefix(err, "layer of %s", dir);
    /* The layer directory from the blob itself: what others will unpack is
     * exactly what this store holds. */
    if (image_layer_unpack(s, digest, diff, err) < 0)
        return -1;
    memset(out, 0, sizeof(*out));
    out->media_type = strdup(media_type(c));
    if (out->media_type == NULL)
        return hull_error_set(err, ENOMEM, "out of memory");
    out->digest = steal_ptr(&digest);
    out->size = size;
    *diff_id = steal_ptr(&diff);
    return 0;
}
