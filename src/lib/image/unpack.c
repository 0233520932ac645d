/* A layer blob -> hull/layers/<diff-id hex>, in overlayfs form.
 *
 * The blob's bytes say what it is (tar, gzip, zstd): an outer libarchive
 * reader (format "raw" with the one filter the magic names) decompresses,
 * every uncompressed byte is hashed on its way into the inner tar reader,
 * and the sum must equal the diff-id when the stream ends.
 *
 * Entries are never extracted by path: the temporary layer directory is
 * opened once and every entry is created relative to a directory fd reached
 * one component at a time without following symlinks, so no name in the tar
 * (.., absolute, through a symlink it planted, a hard link to outside) can
 * land anywhere but beneath it. Anything that tries is refused, and the
 * temporary directory is removed: a layer is unpacked whole or not at all.
 */
#include <archive.h>
#include <archive_entry.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/openat2.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <sys/xattr.h>
#include <unistd.h>

#include "image/image.h"
#include "image/layers.h"
#include "image/unpack_data.h"
#include "util/error.h"
#include "util/fs.h"
#include "util/sha256.h"
#include "util/strv.h"

enum blob_kind { BLOB_TAR, BLOB_GZIP, BLOB_ZSTD };

struct feed {
    int fd;
    const atomic_bool *stop; /* set: stop reading (NULL: never) */
    enum blob_kind kind;
    struct archive *outer; /* decompressor; NULL for a plain tar */
    struct hull_sha256 *md;
    char err[256];
    char buf[128 * 1024];
};

/* Pull the next piece of the uncompressed stream, hashing it. */
static ssize_t feed_next(struct feed *f)
{
    ssize_t n;
    if (f->stop && atomic_load_explicit(f->stop, memory_order_relaxed)) {
        snprintf(f->err, sizeof(f->err), "unpacking stopped");
        return -1;
    }
    if (f->outer == NULL) {
        do
            n = read(f->fd, f->buf, sizeof(f->buf));
        while (n < 0 && errno == EINTR);
        if (n < 0)
            snprintf(f->err, sizeof(f->err), "read: %s", strerror(errno));
    } else {
        n = archive_read_data(f->outer, f->buf, sizeof(f->buf));
        if (n < 0)
            snprintf(f->err, sizeof(f->err), "decompress: %s", archive_error_string(f->outer));
    }
    if (n > 0)
        hull_sha256_update(f->md, f->buf, (size_t)n);
    return n;
}

static ssize_t feed_cb(struct archive *a, void *arg, const void **buf)
{
    struct feed *f = arg;
    ssize_t n = feed_next(f);
    if (n < 0) {
        archive_set_error(a, EIO, "%s", f->err);
        return -1;
    }
    *buf = f->buf;
    return n;
}

static int feed_open(struct feed *f, int fd, const char *what, hull_error *err)
{
    unsigned char m[4] = {0};
    ssize_t n = pread(fd, m, sizeof(m), 0);
    if (n < 0)
        return hull_error_errno(err, "read %s", what);
    f->fd = fd;
    if (n >= 2 && m[0] == 0x1f && m[1] == 0x8b)
        f->kind = BLOB_GZIP;
    else if (n == 4 && m[0] == 0x28 && m[1] == 0xb5 && m[2] == 0x2f && m[3] == 0xfd)
        f->kind = BLOB_ZSTD;
    else if (n == 4 && (memcmp(m,
                               "\xfd"
                               "7zX",
                               4) == 0 ||
                        memcmp(m, "BZh", 3) == 0))
        return hull_error_set(err, EINVAL,
                              "layer %s: compressed with %s; a layer is a tar, plain or "
                              "compressed with gzip or zstd",
                              what, m[0] == 'B' ? "bzip2" : "xz");
    else
        f->kind = BLOB_TAR;
    f->md = hull_sha256_new(err);
    if (f->md == NULL)
        return -1;
    if (f->kind == BLOB_TAR)
        return 0;
    f->outer = archive_read_new();
    if (f->outer == NULL)
        return hull_error_set(err, ENOMEM, "libarchive");
    int r = archive_read_support_format_raw(f->outer);
    if (r == ARCHIVE_OK)
        r = f->kind == BLOB_GZIP ? archive_read_support_filter_gzip(f->outer)
                                 : archive_read_support_filter_zstd(f->outer);
    struct archive_entry *e;
    if (r == ARCHIVE_OK || r == ARCHIVE_WARN)
        r = archive_read_open_fd(f->outer, fd, 64 * 1024);
    if (r == ARCHIVE_OK)
        r = archive_read_next_header(f->outer, &e);
    if (r != ARCHIVE_OK)
        return hull_error_set(err, EINVAL, "%s: %s", what, archive_error_string(f->outer));
    return 0;
}

static void feed_close(struct feed *f)
{
    if (f->outer)
        archive_read_free(f->outer);
    hull_sha256_free(f->md);
}

/* ---- names ---- */

/* ---- the layer being written ---- */

struct dir_time {
    char *name;
    struct timespec ts[2];
};

struct unpack {
    int rootfd; /* the temporary layer directory */
    /* the last parent directory reached, kept open: tars list siblings together */
    char *parent_name;
    int parentfd;
    struct dir_time *dirs; /* times set last: creating children changes them */
    size_t n_dirs, cap_dirs;
    char **opaque; /* directories made opaque */
    struct layer_space space;
};

/* Longest part of an entry's name an error shows: a hostile tar's names can
 * be kilobytes long, and one line should stay readable. */
#define NAME_SHOWN 200

/* (unpack_stream puts "layer DIGEST: " before every entry's error.) */
static int entry_error(int code, const char *name, const char *why, hull_error *err)
{
    size_t n = strlen(name);
    return hull_error_set(err, code, "entry \"%.*s%s\": %s", (int)(n > NAME_SHOWN ? NAME_SHOWN : n),
                          name, n > NAME_SHOWN ? "..." : "", why);
}

/* An entry that would reach outside the layer or forge overlay state. */
static int refuse(const char *name, const char *why, hull_error *err)
{
    return entry_error(EPERM, name, why, err);
}

static int parent_of(struct unpack *u, const char *name, const char **leaf, hull_error *err)
{
    const char *slash = strrchr(name, '/');
    size_t plen = slash ? (size_t)(slash - name) : 0;
    *leaf = slash ? slash + 1 : name;
    if (u->parent_name && strlen(u->parent_name) == plen &&
        strncmp(u->parent_name, name, plen) == 0)
        return u->parentfd;
    int fd = image_layer_open_parent(u->rootfd, name, true, leaf, err);
    if (fd < 0)
        return -1;
    if (u->parentfd >= 0)
        close(u->parentfd);
    free(u->parent_name);
    u->parentfd = fd;
    u->parent_name = strndup(name, plen);
    if (u->parent_name == NULL)
        return hull_error_set(err, ENOMEM, "out of memory");
    return fd;
}

/* Drop the cached parent (before walks of their own, and at the end). */
static void forget_parent(struct unpack *u)
{
    if (u->parentfd >= 0)
        close(u->parentfd);
    u->parentfd = -1;
    free(u->parent_name);
    u->parent_name = NULL;
}

/* Make room for a new entry: a later entry of the same name replaces an
 * earlier one; a directory stays a directory when the new one is too.
 * Returns 1 when an existing directory is kept, 2 when a whiteout of this
 * layer was removed. */
static int clear_leaf(struct unpack *u, int pfd, const char *leaf, bool want_dir, hull_error *err)
{
    struct stat st;
    if (fstatat(pfd, leaf, &st, AT_SYMLINK_NOFOLLOW) < 0)
        return errno == ENOENT ? 0 : hull_error_errno(err, "stat %s", leaf);
    if (S_ISDIR(st.st_mode)) {
        if (want_dir)
            return 1;
        /* pfd (the cached parent) is not inside leaf: it stays valid */
        return hull_rm_rf_at(pfd, leaf, err);
    }
    if (unlinkat(pfd, leaf, 0) < 0)
        return hull_error_errno(err, "remove %s", leaf);
    return S_ISCHR(st.st_mode) && st.st_rdev == 0 ? 2 : 0;
}

/* Which extended attributes a layer may carry: user.* and file
 * capabilities. trusted.overlay.* would forge whiteouts and opaque
 * directories (refused); other security.* / trusted.* / system.* are the
 * host's business (dropped). */
static int xattr_policy(const char *name)
{
    if (strncmp(name, "trusted.overlay.", 16) == 0)
        return -1;
    if (strncmp(name, "user.", 5) == 0 || strcmp(name, "security.capability") == 0)
        return 1;
    return 0;
}

static int check_xattrs(struct archive_entry *e, const char *name, hull_error *err)
{
    const char *xn;
    const void *v;
    size_t sz;
    archive_entry_xattr_reset(e);
    while (archive_entry_xattr_next(e, &xn, &v, &sz) == ARCHIVE_OK)
        if (xattr_policy(xn) < 0)
            return refuse(name, "sets a trusted.overlay attribute", err);
    return 0;
}

/* Owner, mode, xattrs, in that order: chown clears set-id bits and file
 * capabilities. */
static int apply_meta(int fd, struct archive_entry *e, const char *name, hull_error *err)
{
    if (fchown(fd, archive_entry_uid(e), archive_entry_gid(e)) < 0)
        return hull_error_errno(err, "chown %s", name);
    if (fchmod(fd, archive_entry_mode(e) & 07777) < 0)
        return hull_error_errno(err, "chmod %s", name);
    const char *xn;
    const void *v;
    size_t sz;
    archive_entry_xattr_reset(e);
    while (archive_entry_xattr_next(e, &xn, &v, &sz) == ARCHIVE_OK)
        if (xattr_policy(xn) > 0 && fsetxattr(fd, xn, v, sz, 0) < 0)
            return hull_error_errno(err, "set %s on %s", xn, name);
    return 0;
}

static void entry_times(struct archive_entry *e, struct timespec ts[2])
{
    ts[1].tv_sec = archive_entry_mtime(e);
    ts[1].tv_nsec = archive_entry_mtime_is_set(e) ? archive_entry_mtime_nsec(e) : 0;
    if (archive_entry_atime_is_set(e)) {
        ts[0].tv_sec = archive_entry_atime(e);
        ts[0].tv_nsec = archive_entry_atime_nsec(e);
    } else {
        ts[0] = ts[1];
    }
}

static int make_file(struct unpack *u, struct archive *a, struct archive_entry *e, int pfd,
                     const char *leaf, const char *name, hull_error *err)
{
    cleanup_close int fd =
        openat(pfd, leaf, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
    if (fd < 0)
        return hull_error_errno(err, "create %s", name);
    if (layer_write_data(a, fd, name, &u->space, err) < 0)
        return -1;
    /* a sparse file may end in a hole: the size says where it ends */
    la_int64_t size = archive_entry_size(e);
    if (size > 0 && ftruncate(fd, size) < 0)
        return hull_error_errno(err, "write %s", name);
    if (apply_meta(fd, e, name, err) < 0)
        return -1;
    struct timespec ts[2];
    entry_times(e, ts);
    if (futimens(fd, ts) < 0)
        return hull_error_errno(err, "set times of %s", name);
    return 0;
}

static int make_dir(struct unpack *u, struct archive_entry *e, int pfd, const char *leaf,
                    const char *name, hull_error *err)
{
    cleanup_close int fd = -1;
    if (*name == '\0') {
        fd = fcntl(u->rootfd, F_DUPFD_CLOEXEC, 3);
    } else {
        int kept = clear_leaf(u, pfd, leaf, true, err);
        if (kept < 0)
            return -1;
        if (kept != 1 && mkdirat(pfd, leaf, 0700) < 0)
            return hull_error_errno(err, "mkdir %s", name);
        fd = image_layer_open_at(pfd, leaf, O_RDONLY | O_DIRECTORY);
        /* ".wh.d" then "d/": the lower d is gone and a new one made, which
         * in overlay form is an opaque directory */
        if (kept == 2 && fd >= 0) {
            if (fsetxattr(fd, "trusted.overlay.opaque", "y", 1, 0) < 0)
                return hull_error_errno(err, "mark %s opaque", name);
            if (hull_strv_append(&u->opaque, name) < 0)
                return hull_error_set(err, ENOMEM, "out of memory");
        }
    }
    if (fd < 0)
        return hull_error_errno(err, "open %s", name);
    if (apply_meta(fd, e, name, err) < 0)
        return -1;
    if (u->n_dirs == u->cap_dirs) {
        size_t cap = u->cap_dirs ? u->cap_dirs * 2 : 64;
        struct dir_time *d = realloc(u->dirs, cap * sizeof(*d));
        if (d == NULL)
            return hull_error_set(err, ENOMEM, "out of memory");
        u->dirs = d;
        u->cap_dirs = cap;
    }
    struct dir_time *d = &u->dirs[u->n_dirs];
    d->name = strdup(name);
    if (d->name == NULL)
        return hull_error_set(err, ENOMEM, "out of memory");
    entry_times(e, d->ts);
    u->n_dirs++;
    return 0;
}

static int make_link(struct unpack *u, struct archive_entry *e, const char *target, int pfd,
                     const char *leaf, const char *name, hull_error *err)
{
    char tname[4096];
    int clean = image_layer_clean_name(target, tname, sizeof(tname));
    if (clean == -2)
        return entry_error(EINVAL, name, "hard link target name too long", err);
    if (clean < 0 || tname[0] == '\0')
        return refuse(name, "hard link outside the layer", err);
    const char *tleaf;
    cleanup_close int tfd = image_layer_open_parent(u->rootfd, tname, false, &tleaf, err);
    if (tfd < 0) {
        hull_error_free(err);
        return refuse(name, "hard link to a file not in the layer", err);
    }
    struct stat st;
    if (fstatat(tfd, tleaf, &st, AT_SYMLINK_NOFOLLOW) < 0 || S_ISDIR(st.st_mode))
        return refuse(name, "hard link to a file not in the layer", err);
    if (strcmp(tname, name) == 0)
        return 0;
    if (clear_leaf(u, pfd, leaf, false, err) < 0)
        return -1;
    /* no AT_SYMLINK_FOLLOW: a link to a symlink is a link to the symlink */
    if (linkat(tfd, tleaf, pfd, leaf, 0) < 0)
        return hull_error_errno(err, "link %s to %s", name, tname);
    return 0;
}

static int make_other(struct unpack *u, struct archive_entry *e, int pfd, const char *leaf,
                      const char *name, hull_error *err)
{
    mode_t type = archive_entry_filetype(e);
    if (clear_leaf(u, pfd, leaf, false, err) < 0)
        return -1;
    if (type == AE_IFLNK) {
        const char *target = archive_entry_symlink(e);
        if (target == NULL)
            target = archive_entry_symlink_utf8(e);
        if (target == NULL)
            return entry_error(EINVAL, name, "a symlink without a target", err);
        if (symlinkat(target, pfd, leaf) < 0)
            return hull_error_errno(err, "symlink %s", name);
    } else {
        dev_t dev = makedev(archive_entry_rdevmajor(e), archive_entry_rdevminor(e));
        if (type == AE_IFIFO)
            dev = 0;
        if (mknodat(pfd, leaf, type | 0600, dev) < 0)
            return hull_error_errno(err, "mknod %s", name);
        /* set-id bits on a device survive: chmod after chown */
        if (fchownat(pfd, leaf, archive_entry_uid(e), archive_entry_gid(e), AT_SYMLINK_NOFOLLOW) <
                0 ||
            fchmodat(pfd, leaf, archive_entry_mode(e) & 07777, 0) < 0)
            return hull_error_errno(err, "chown/chmod %s", name);
    }
    if (type == AE_IFLNK &&
        fchownat(pfd, leaf, archive_entry_uid(e), archive_entry_gid(e), AT_SYMLINK_NOFOLLOW) < 0)
        return hull_error_errno(err, "chown %s", name);
    struct timespec ts[2];
    entry_times(e, ts);
    if (utimensat(pfd, leaf, ts, AT_SYMLINK_NOFOLLOW) < 0)
        return hull_error_errno(err, "set times of %s", name);
    return 0;
}

/* .wh.NAME -> NAME as a 0:0 character device; .wh..wh..opq -> its directory
 * opaque. Returns 1 when the entry was a whiteout (handled). */
static int whiteout(struct unpack *u, int pfd, const char *leaf, const char *name, hull_error *err)
{
    if (strncmp(leaf, ".wh.", 4) != 0)
        return 0;
    if (strcmp(leaf, ".wh..wh..opq") == 0) {
        if (leaf == name)
            return refuse(name, "an opaque marker at the layer's root", err);
        if (fsetxattr(pfd, "trusted.overlay.opaque", "y", 1, 0) < 0)
            return hull_error_errno(err, "mark %s opaque", name);
        if (hull_strv_append(&u->opaque, u->parent_name) < 0)
            return hull_error_set(err, ENOMEM, "out of memory");
        return 1;
    }
    if (strncmp(leaf, ".wh..wh.", 8) == 0)
        return 1; /* hull-internal (aufs-era) names: nothing to do */
    const char *target = leaf + 4;
    if (*target == '\0' || strcmp(target, ".") == 0 || strcmp(target, "..") == 0)
        return refuse(name, "a whiteout of no name", err);
    /* A file of that name in this layer already hides the lower one. */
    struct stat st;
    if (fstatat(pfd, target, &st, AT_SYMLINK_NOFOLLOW) == 0)
        return 1;
    if (mknodat(pfd, target, S_IFCHR | 0000, makedev(0, 0)) < 0 ||
        fchownat(pfd, target, 0, 0, AT_SYMLINK_NOFOLLOW) < 0)
        return hull_error_errno(err, "whiteout %s", name);
    return 1;
}

static int unpack_entry(struct unpack *u, struct archive *a, struct archive_entry *e,
                        hull_error *err)
{
    const char *raw = archive_entry_pathname(e);
    if (raw == NULL)
        raw = archive_entry_pathname_utf8(e);
    if (raw == NULL)
        return hull_error_set(err, EINVAL, "an entry without a name");
    char name[4096];
    int clean = image_layer_clean_name(raw, name, sizeof(name));
    if (clean < 0)
        return clean == -2 ? entry_error(EINVAL, raw, "name too long", err)
                           : refuse(raw, "outside the layer", err);
    if (check_xattrs(e, raw, err) < 0)
        return -1;
    const char *hl = archive_entry_hardlink(e);
    if (hl == NULL)
        hl = archive_entry_hardlink_utf8(e);
    mode_t type = archive_entry_filetype(e);
    /* Even an empty entry takes an inode and a directory slot; a directory
     * (or a symlink with a long target) a block too. */
    if (layer_space_entry(
            &u->space, hl == NULL && (type == AE_IFDIR || type == AE_IFLNK) ? 4096 : 512, err) < 0)
        return -1;
    if (name[0] == '\0') {
        if (hl != NULL || type != AE_IFDIR)
            return refuse(raw, "the layer's root must be a directory", err);
        return make_dir(u, e, -1, "", "", err);
    }
    const char *leaf;
    int pfd = parent_of(u, name, &leaf, err);
    if (pfd < 0)
        return -1;
    int w = whiteout(u, pfd, leaf, name, err);
    if (w != 0)
        return w < 0 ? -1 : 0;
    if (hl != NULL)
        return make_link(u, e, hl, pfd, leaf, name, err);
    switch (type) {
    case AE_IFREG:
        if (clear_leaf(u, pfd, leaf, false, err) < 0)
            return -1;
        return make_file(u, a, e, pfd, leaf, name, err);
    case AE_IFDIR:
        return make_dir(u, e, pfd, leaf, name, err);
    case AE_IFLNK:
    case AE_IFCHR:
    case AE_IFBLK:
    case AE_IFIFO:
        return make_other(u, e, pfd, leaf, name, err);
    default:
        return 0; /* sockets and the like have no place in a layer */
    }
}

/* Whiteouts beneath an opaque directory hide nothing (the directory hides
 * all below it already), and overlayfs lists them in a directory it does
 * not merge: drop them. */
static int drop_whiteouts(int dirfd, const char *name, hull_error *err)
{
    DIR *d = image_layer_opendir(dirfd, name, err);
    if (d == NULL)
        return -1;
    int rc = 0;
    struct dirent *de;
    while (rc == 0 && (de = readdir(d)) != NULL) {
        struct stat st;
        if (de->d_type != DT_CHR && de->d_type != DT_DIR && de->d_type != DT_UNKNOWN)
            continue;
        if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0 ||
            fstatat(dirfd, de->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0)
            continue;
        if (S_ISCHR(st.st_mode) && st.st_rdev == 0) {
            if (unlinkat(dirfd, de->d_name, 0) < 0)
                rc = hull_error_errno(err, "remove %s/%s", name, de->d_name);
        } else if (S_ISDIR(st.st_mode)) {
            cleanup_close int sub = image_layer_open_at(dirfd, de->d_name, O_RDONLY | O_DIRECTORY);
            rc = sub < 0 ? hull_error_errno(err, "open %s/%s", name, de->d_name)
                         : drop_whiteouts(sub, name, err);
        }
    }
    closedir(d);
    return rc;
}

static int tidy_opaque(struct unpack *u, hull_error *err)
{
    for (size_t i = 0; u->opaque && u->opaque[i]; i++) {
        const char *leaf;
        /* gone or no longer a directory: replaced by a later entry */
        cleanup_hull_error hull_error gone = NULL;
        cleanup_close int pfd =
            image_layer_open_parent(u->rootfd, u->opaque[i], false, &leaf, &gone);
        if (pfd < 0)
            continue;
        cleanup_close int fd = image_layer_open_at(pfd, leaf, O_RDONLY | O_DIRECTORY);
        if (fd < 0)
            continue;
        if (drop_whiteouts(fd, u->opaque[i], err) < 0)
            return -1;
    }
    return 0;
}

/* Directory times last, deepest first. */
static int set_dir_times(struct unpack *u, hull_error *err)
{
    forget_parent(u);
    for (size_t i = u->n_dirs; i-- > 0;) {
        struct dir_time *d = &u->dirs[i];
        if (d->name[0] == '\0') {
            if (futimens(u->rootfd, d->ts) < 0)
                return hull_error_errno(err, "set times of the layer root");
            continue;
        }
        const char *leaf;
        cleanup_close int pfd = image_layer_open_parent(u->rootfd, d->name, false, &leaf, err);
        if (pfd < 0)
            return -1;
        if (utimensat(pfd, leaf, d->ts, AT_SYMLINK_NOFOLLOW) < 0 && errno != ENOENT)
            return hull_error_errno(err, "set times of %s", d->name);
    }
    return 0;
}

static void unpack_free(struct unpack *u)
{
    forget_parent(u);
    for (size_t i = 0; i < u->n_dirs; i++)
        free(u->dirs[i].name);
    free(u->dirs);
    hull_strv_free(u->opaque);
}

/* Read the whole stream into rootfd; *diff_hex receives the uncompressed
 * stream's sha256. */
static int unpack_stream(int blobfd, int rootfd, const char *layer, const atomic_bool *stop,
                         char diff_hex[65], hull_error *err)
{
    struct feed *f = calloc(1, sizeof(*f));
    if (f == NULL)
        return hull_error_set(err, ENOMEM, "out of memory");
    f->stop = stop;
    struct unpack u = {.rootfd = rootfd, .parentfd = -1};
    struct archive *a = NULL;
    int rc = feed_open(f, blobfd, layer, err);
    if (rc == 0)
        rc = layer_space_init(&u.space, rootfd, err);
    if (rc == 0) {
        a = archive_read_new();
        if (a == NULL || archive_read_support_format_tar(a) != ARCHIVE_OK ||
            archive_read_open(a, f, NULL, feed_cb, NULL) != ARCHIVE_OK)
            rc = hull_error_set(err, EINVAL, "layer %s: %s", layer,
                                a ? archive_error_string(a) : "out of memory");
    }
    while (rc == 0) {
        struct archive_entry *e;
        int r = archive_read_next_header(a, &e);
        if (r == ARCHIVE_EOF)
            break;
        if (r != ARCHIVE_OK && r != ARCHIVE_WARN) {
            rc = hull_error_set(err, EINVAL, "layer %s: %s", layer, archive_error_string(a));
            break;
        }
        if ((rc = unpack_entry(&u, a, e, err)) < 0)
            hull_error_prefix(err, "layer %s", layer);
    }
    /* The tar's end marker may come before the stream's: the rest (padding)
     * is part of the diff-id too. */
    ssize_t n = 0;
    while (rc == 0 && (n = feed_next(f)) > 0)
        ;
    if (rc == 0 && n < 0)
        rc = hull_error_set(err, EIO, "layer %s: %s", layer, f->err);
    if (rc == 0)
        rc = tidy_opaque(&u, err);
    if (rc == 0)
        rc = set_dir_times(&u, err);
    if (rc == 0)
        rc = hull_sha256_final(f->md, diff_hex, err);
    if (a)
        archive_read_free(a);
    unpack_free(&u);
    feed_close(f);
    free(f);
    return rc;
}

/* Under the layer's lock: leftovers of a killed unpacker are ours to
 * remove. */
static void remove_stale(int layersfd, const char *hex)
{
    cleanup_close int fd = openat(layersfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    DIR *d = fd >= 0 ? fdopendir(fd) : NULL;
    if (d == NULL)
        return;
    fd = -1;
    size_t hl = strlen(hex);
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        if (strncmp(de->d_name, hex, hl) == 0 && strncmp(de->d_name + hl, ".tmp-", 5) == 0) {
            cleanup_hull_error hull_error e = NULL;
            hull_rm_rf_at(dirfd(d), de->d_name, &e);
        }
    }
    closedir(d);
}

static int unpack_locked(struct image_store *s, int layersfd, const char *layer_digest,
                         const char *hex, const atomic_bool *stop, hull_error *err)
{
    struct stat st;
    if (fstatat(layersfd, hex, &st, AT_SYMLINK_NOFOLLOW) == 0 && S_ISDIR(st.st_mode))
        return 0; /* another unpacker finished it while this one waited */
    remove_stale(layersfd, hex);
    cleanup_close int blobfd = image_blob_open(s, layer_digest, err);
    if (blobfd < 0)
        return -1;
    char tmp[96];
    int created = -1;
    for (int i = 0; i < 100 && created < 0; i++) {
        unsigned r;
        if (getentropy(&r, sizeof(r)) < 0)
            r = (unsigned)getpid() + (unsigned)i;
        snprintf(tmp, sizeof(tmp), "%s.tmp-%08x", hex, r);
        created = mkdirat(layersfd, tmp, 0700);
        if (created < 0 && errno != EEXIST)
            return hull_error_errno(err, "mkdir hull/layers/%s", tmp);
    }
    if (created < 0)
        return hull_error_errno(err, "mkdir hull/layers/%s", tmp);
    int rc;
    char got[65];
    {
        cleanup_close int rootfd =
            openat(layersfd, tmp, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        if (rootfd < 0 || fchmod(rootfd, 0755) < 0)
            rc = hull_error_errno(err, "open hull/layers/%s", tmp);
        else
            rc = unpack_stream(blobfd, rootfd, layer_digest, stop, got, err);
        /* On disk before its name says it is complete: a layer is never
         * unpacked twice, so a crash must not leave a truncated one. */
        if (rc == 0 && syncfs(rootfd) < 0)
            rc = hull_error_errno(err, "sync hull/layers/%s", tmp);
    }
    if (stop && atomic_load(stop)) {
        /* Asked to stop, during the stream (whatever libarchive made of
         * the cut stream, this is the cause) or after it: nothing is kept. */
        hull_error_free(err);
        rc = hull_error_set(err, ECANCELED, "layer %s: unpacking stopped", layer_digest);
    }
    if (rc == 0 && strcmp(got, hex) != 0)
        rc = hull_error_set(err, EINVAL,
                            "layer %s: its content is sha256:%s, not the diff-id sha256:%s",
                            layer_digest, got, hex);
    if (rc == 0 && renameat(layersfd, tmp, layersfd, hex) < 0)
        rc = hull_error_errno(err, "rename hull/layers/%s", tmp);
    if (rc < 0) {
        cleanup_hull_error hull_error e2 = NULL;
        hull_rm_rf_at(layersfd, tmp, &e2);
        return -1;
    }
    fsync(layersfd);
    return 0;
}

int image_layer_unpack_until(struct image_store *s, const char *layer_digest, const char *diff_id,
                             const atomic_bool *stop, hull_error *err)
{
    if (!image_layer_digest_ok(diff_id))
        return hull_error_set(err, EINVAL, "bad diff-id \"%s\"", diff_id ? diff_id : "");
    const char *hex = diff_id + 7;
    cleanup_close int layersfd = image_layers_dir(s, true, err);
    if (layersfd < 0)
        return -1;
    char lockname[80];
    snprintf(lockname, sizeof(lockname), "%s.lock", hex);
    cleanup_close int lockfd = image_layer_lock(layersfd, lockname, err);
    if (lockfd < 0)
        return -1;
    int rc = unpack_locked(s, layersfd, layer_digest, hex, stop, err);
    image_layer_unlock(layersfd, lockname, lockfd);
    lockfd = -1;
    return rc;
}

int image_layer_unpack(struct image_store *s, const char *layer_digest, const char *diff_id,
                       hull_error *err)
{
    return image_layer_unpack_until(s, layer_digest, diff_id, NULL, err);
}

int image_unpack_all(struct image_store *s, const struct image *img, hull_error *err)
{
    const struct image_manifest *m = &img->manifest;
    if (img->config.n_diff_ids != m->n_layers)
        return hull_error_set(err, EINVAL, "image has %zu layers but %zu diff-ids", m->n_layers,
                              img->config.n_diff_ids);
    for (size_t i = 0; i < m->n_layers; i++) {
        const char *diff = img->config.diff_ids[i];
        cleanup_hull_error hull_error probe = NULL;
        cleanup_free char *path = image_layer_path(s, diff, &probe);
        if (path != NULL)
            continue;
        if (image_layer_unpack(s, m->layers[i].digest, diff, err) < 0)
            return -1;
    }
    return 0;
}
