/* Layer directories -> a root: overlayfs, or a flattened copy where overlay
 * cannot serve. Run path: no libarchive, no libcurl (see image.h).
 *
 * Layers are named relative to hull/layers (the mount is made with the cwd
 * there): the mount's options, which a sandbox sees in its mountinfo, then
 * show digests, not host paths, and mount data, limited to a page, holds
 * some 60 of them. They are given to the kernel one by one where it can
 * take them that way (fsconfig "lowerdir+", Linux 6.8), else as one option
 * string, and only when that does not fit or overlay is refused, a
 * flattened copy is made. */
#include <errno.h>
#include <linux/magic.h>
#include <sched.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <sys/xattr.h>
#include <unistd.h>

#include "image/image.h"
#include "image/layers.h"
#include "util/error.h"
#include "util/fs.h"
#include "util/log.h"

/* The layers' hex names, base first, each checked to be unpacked. */
static int layer_names(struct image_store *s, const struct image *img, const char ***out, size_t *n,
                       hull_error *err)
{
    size_t k = img->config.n_diff_ids;
    if (k == 0)
        return hull_error_set(err, EINVAL, "image has no layers");
    const char **names = calloc(k, sizeof(*names));
    if (names == NULL)
        return hull_error_set(err, ENOMEM, "out of memory");
    for (size_t i = 0; i < k; i++) {
        const char *d = img->config.diff_ids[i];
        cleanup_free char *p = image_layer_path(s, d, err);
        if (p == NULL) {
            free(names);
            return hull_error_prefix(err, "image %s (hull image prepare)",
                                     img->entry.name ? img->entry.name : img->manifest_digest);
        }
        names[i] = d + 7;
    }
    *out = names;
    *n = k;
    return 0;
}

static int bind_ro(const char *src, const char *target, hull_error *err)
{
    if (mount(src, target, NULL, MS_BIND, NULL) < 0)
        return hull_error_errno(err, "bind mount %s on %s", src, target);
    if (mount(NULL, target, NULL, MS_BIND | MS_REMOUNT | MS_RDONLY | MS_NODEV, NULL) < 0) {
        int e = errno;
        umount2(target, MNT_DETACH);
        errno = e;
        return hull_error_errno(err, "remount %s read-only", target);
    }
    return 0;
}

struct fsapi_layers {
    int fs;
    const char **names;
    size_t n;
};

static int add_lowers(void *arg)
{
    struct fsapi_layers *l = arg;
    for (size_t i = l->n; i-- > 0;)
        if (fsconfig(l->fs, FSCONFIG_SET_STRING, "lowerdir+", l->names[i], 0) < 0)
            return -1;
    return 0;
}

/* An image's one layer bound read-only (its path shows in mountinfo). */
static int bind_layer(struct image_store *s, const char *name, const char *target, hull_error *err)
{
    char path[4096];
    snprintf(path, sizeof(path), "%s/hull/layers/%s", s->root, name);
    return bind_ro(path, target, err);
}

/* Linux 6.8+: one fsconfig per layer, no page limit. The layers are named
 * relative to hull/layers, as the mount's options show them: a sandbox's
 * mountinfo names no host path. Returns 1 when this kernel has no
 * "lowerdir+" (or no new mount API): the caller tries the option string. */
static int mount_fsapi(int layersfd, const char **names, size_t n, const char *target,
                       const char *upper, const char *work, bool readonly, hull_error *err)
{
    cleanup_close int fs = fsopen("overlay", FSOPEN_CLOEXEC);
    if (fs < 0)
        return 1;
    /* Before 6.5 overlayfs had no parser of its own for this API: the
     * kernel's generic one takes any key and only the final create fails.
     * A key no parser knows tells the two apart. */
    if (fsconfig(fs, FSCONFIG_SET_FLAG, "hull-no-such-option", NULL, 0) == 0)
        return 1;
    struct fsapi_layers l = {.fs = fs, .names = names, .n = n};
    if (hull_call_in_dir(layersfd, add_lowers, &l) < 0)
        return 1;
    if (upper && (strlen(upper) >= 256 || strlen(work) >= 256 ||
                  fsconfig(fs, FSCONFIG_SET_STRING, "upperdir", upper, 0) < 0 ||
                  fsconfig(fs, FSCONFIG_SET_STRING, "workdir", work, 0) < 0))
        return 1;
    /* see UPPER_OPTS; every kernel with "lowerdir+" has both */
    if (upper && (fsconfig(fs, FSCONFIG_SET_STRING, "redirect_dir", "off", 0) < 0 ||
                  fsconfig(fs, FSCONFIG_SET_STRING, "metacopy", "off", 0) < 0))
        return 1;
    if (fsconfig(fs, FSCONFIG_CMD_CREATE, NULL, NULL, 0) < 0)
        return hull_error_errno(err, "overlay on %s", target);
    cleanup_close int mnt =
        fsmount(fs, FSMOUNT_CLOEXEC, MOUNT_ATTR_NODEV | (readonly ? MOUNT_ATTR_RDONLY : 0));
    if (mnt < 0)
        return hull_error_errno(err, "overlay on %s", target);
    if (move_mount(mnt, "", AT_FDCWD, target, MOVE_MOUNT_F_EMPTY_PATH) < 0)
        return hull_error_errno(err, "mount overlay on %s", target);
    return 0;
}

/* An upper directory is the diff a build turns into a layer: a renamed
 * lower directory (a redirect) or a metadata-only copy-up would be in it as
 * an empty directory or a file without its data, which no layer can carry.
 * Kernels before 4.19 know only the first option, before 4.10 neither:
 * the legacy mount is retried without them. */
#define UPPER_OPTS ",redirect_dir=off,metacopy=off"

/* "lowerdir=TOP:...:BASE[,upperdir=U,workdir=W]extra". Returns 1 when it
 * does not fit in a page. */
static int overlay_data(char *buf, size_t size, const char **names, size_t n, const char *upper,
                        const char *work, const char *extra)
{
    size_t o = (size_t)snprintf(buf, size, "lowerdir=");
    for (size_t i = n; i-- > 0 && o < size;)
        o += (size_t)snprintf(buf + o, size - o, "%s%s", i == n - 1 ? "" : ":", names[i]);
    if (upper && o < size)
        o += (size_t)snprintf(buf + o, size - o, ",upperdir=%s,workdir=%s%s", upper, work, extra);
    return o >= size ? 1 : 0;
}

struct legacy_mount {
    const char *target;
    unsigned long flags;
    const char *data;
};

static int do_legacy_mount(void *arg)
{
    struct legacy_mount *m = arg;
    return mount("overlay", m->target, "overlay", m->flags, m->data);
}

/* The option string, layers named relative to hull/layers (as for
 * mount_fsapi, and 40 of them fit in a page). */
static int mount_legacy(int layersfd, const char **names, size_t n, const char *target,
                        const char *upper, const char *work, bool readonly, hull_error *err)
{
    long page = sysconf(_SC_PAGESIZE);
    size_t size = page > 0 ? (size_t)page : 4096;
    cleanup_free char *data = malloc(size);
    if (data == NULL)
        return hull_error_set(err, ENOMEM, "out of memory");
    struct legacy_mount m = {
        .target = target, .flags = MS_NODEV | (readonly ? MS_RDONLY : 0), .data = data};
    for (int opts = upper ? 1 : 0; opts >= 0; opts--) {
        if (overlay_data(data, size, names, n, upper, work, opts ? UPPER_OPTS : "") != 0)
            return 1;
        if (hull_call_in_dir(layersfd, do_legacy_mount, &m) == 0)
            return 0;
        if (!(errno == EINVAL && opts))
            return hull_error_errno(err, "overlay on %s", target);
    }
    return hull_error_errno(err, "overlay on %s", target);
}

/* Neither way fits or overlay is refused: a copy. Read-only, it is a tmpfs
 * made read-only once filled, so unmounting target leaves nothing; with an
 * upper directory the copy is the upper directory, bound on target. */
static int mount_flat(struct image_store *s, const struct image *img, const char *target,
                      const char *upper, const char *work, bool readonly, hull_error *err)
{
    if (upper) {
        /* Made once: a second mount of the same upper (a restart) keeps
         * the changes made in it. The mark lives in the work directory,
         * which overlay would own but a copy leaves unused. */
        struct stat st;
        cleanup_free char *mark = NULL;
        if (asprintf(&mark, "%s/hull-flattened", work) < 0)
            return hull_error_set(err, ENOMEM, "out of memory");
        if (stat(mark, &st) < 0) {
            if (image_rootfs_flatten(s, img, upper, err) < 0)
                return -1;
            if (hull_write_path_atomic(mark, "", 0, 0600, err) < 0)
                return -1;
        }
        if (mount(upper, target, NULL, MS_BIND, NULL) < 0)
            return hull_error_errno(err, "bind mount %s on %s", upper, target);
        if (readonly &&
            mount(NULL, target, NULL, MS_BIND | MS_REMOUNT | MS_RDONLY | MS_NODEV, NULL) < 0) {
            umount2(target, MNT_DETACH);
            return hull_error_errno(err, "remount %s read-only", target);
        }
        return 0;
    }
    if (mount("tmpfs", target, "tmpfs", MS_NODEV, "mode=0755") < 0)
        return hull_error_errno(err, "tmpfs on %s", target);
    if (image_rootfs_flatten(s, img, target, err) < 0 ||
        mount(NULL, target, NULL, MS_REMOUNT | MS_RDONLY | MS_NODEV, NULL) < 0) {
        if (*err == NULL)
            hull_error_errno(err, "remount %s read-only", target);
        umount2(target, MNT_DETACH);
        return -1;
    }
    return 0;
}

int image_rootfs_mount(struct image_store *s, const struct image *img, const char *target,
                       const char *upper, const char *work, bool readonly, hull_error *err)
{
    cleanup_free const char **names = NULL;
    size_t n = 0;
    if (layer_names(s, img, &names, &n, err) < 0)
        return -1;
    if ((upper == NULL) != (work == NULL))
        return hull_error_set(err, EINVAL, "an upper directory needs a work directory");
    if (upper) {
        if (hull_mkdir_p(upper, 0755, err) < 0 || hull_mkdir_p(work, 0700, err) < 0)
            return -1;
    } else {
        readonly = true;
    }
    /* By path, not through the store's fd: overlayfs takes its layers only
     * from mounts of the caller's mount namespace, and the store may have
     * been opened before the caller made its own. */
    char layers[4096];
    snprintf(layers, sizeof(layers), "%s/hull/layers", s->root);
    cleanup_close int layersfd = open(layers, O_PATH | O_DIRECTORY | O_CLOEXEC);
    if (layersfd < 0)
        return hull_error_errno(err, "open %s", layers);
    /* HULL_IMAGE_OVERLAY: "auto" (default); "legacy" skips the per-layer
     * fsconfig (as on kernels before 6.8); "copy" never mounts overlayfs
     * (a filesystem or kernel where it misbehaves). */
    const char *how = getenv("HULL_IMAGE_OVERLAY");
    how = how && *how ? how : "auto";
    if (strcmp(how, "auto") != 0 && strcmp(how, "legacy") != 0 && strcmp(how, "copy") != 0)
        return hull_error_set(err, EINVAL, "HULL_IMAGE_OVERLAY=%s: auto, legacy or copy", how);
    /* One layer read-only: overlayfs wants a second lower, the empty one.
     * A store on overlayfs keeps the bind: hull's base layer may go on top
     * (vm/image.c), and a third level of stacking is one too many. */
    const char *one[2] = {IMAGE_EMPTY_LOWER, names[0]};
    bool single = upper == NULL && n == 1;
    struct statfs sfs;
    if (single &&
        (strcmp(how, "copy") == 0 || faccessat(layersfd, IMAGE_EMPTY_LOWER, F_OK, 0) < 0 ||
         fstatfs(layersfd, &sfs) < 0 || sfs.f_type == OVERLAYFS_SUPER_MAGIC))
        return bind_layer(s, names[0], target, err);
    cleanup_hull_error hull_error why = NULL;
    int r = 1;
    if (strcmp(how, "auto") == 0)
        r = mount_fsapi(layersfd, single ? one : names, single ? 2 : n, target, upper, work,
                        readonly, &why);
    if (r == 1 && strcmp(how, "copy") != 0)
        r = mount_legacy(layersfd, single ? one : names, single ? 2 : n, target, upper, work,
                         readonly, &why);
    if (r == 0)
        return 0;
    if (single) {
        hull_debug("%s; binding the image's one layer instead", why ? hull_error_msg(why) : "");
        return bind_layer(s, names[0], target, err);
    }
    /* Overlay refused (no overlayfs, an upper on a filesystem it cannot
     * use, too many layers for the kernel) or too long to say: copy. */
    if (why != NULL)
        hull_warn("%s; using a copy of the image's layers instead", hull_error_msg(why));
    else if (strcmp(how, "copy") != 0)
        hull_warn("%zu layers do not fit in overlay's mount options; using a copy instead", n);
    return mount_flat(s, img, target, upper, work, readonly, err);
}

/* ---- flatten ---- */

struct inode_seen {
    dev_t dev;
    ino_t ino;
    char *name; /* where its first name was copied, relative to the root */
};

struct flat {
    int dstroot;
    struct inode_seen *seen; /* hard links of the layer being copied */
    size_t n_seen, cap_seen;
};

static bool is_whiteout(const struct stat *st)
{
    return S_ISCHR(st->st_mode) && st->st_rdev == 0;
}

static bool is_opaque(int fd)
{
    char v[2];
    return fgetxattr(fd, "trusted.overlay.opaque", v, sizeof(v)) == 1 && v[0] == 'y';
}

static int copy_xattrs(int src, int dst, const char *name, hull_error *err)
{
    char list[8192];
    ssize_t n = flistxattr(src, list, sizeof(list));
    if (n < 0)
        return errno == ENOTSUP ? 0 : hull_error_errno(err, "list xattrs of %s", name);
    for (char *k = list; k < list + n; k += strlen(k) + 1) {
        if (strncmp(k, "trusted.overlay.", 16) == 0)
            continue;
        char v[65536];
        ssize_t vl = fgetxattr(src, k, v, sizeof(v));
        if (vl < 0)
            return hull_error_errno(err, "read %s of %s", k, name);
        if (fsetxattr(dst, k, v, (size_t)vl, 0) < 0 && errno != ENOTSUP)
            return hull_error_errno(err, "set %s on %s", k, name);
    }
    return 0;
}

/* Owner, mode, xattrs (chown first: it clears set-id bits and capabilities). */
static int copy_meta(int src, int dst, const struct stat *st, const char *name, hull_error *err)
{
    if (fchown(dst, st->st_uid, st->st_gid) < 0 || fchmod(dst, st->st_mode & 07777) < 0)
        return hull_error_errno(err, "chown/chmod %s", name);
    return copy_xattrs(src, dst, name, err);
}

/* A second name of an inode already copied from this layer: link to the copy. */
static int link_seen(struct flat *f, const struct stat *st, int dpfd, const char *leaf,
                     const char *rel, hull_error *err)
{
    for (size_t i = 0; i < f->n_seen; i++) {
        if (f->seen[i].dev != st->st_dev || f->seen[i].ino != st->st_ino)
            continue;
        const char *tleaf;
        cleanup_close int tfd =
            image_layer_open_parent(f->dstroot, f->seen[i].name, false, &tleaf, err);
        if (tfd < 0)
            return -1;
        if (linkat(tfd, tleaf, dpfd, leaf, 0) < 0)
            return hull_error_errno(err, "link %s", rel);
        return 1;
    }
    if (f->n_seen == f->cap_seen) {
        size_t cap = f->cap_seen ? f->cap_seen * 2 : 32;
        struct inode_seen *ns = realloc(f->seen, cap * sizeof(*ns));
        if (ns == NULL)
            return hull_error_set(err, ENOMEM, "out of memory");
        f->seen = ns;
        f->cap_seen = cap;
    }
    char *copy = strdup(rel);
    if (copy == NULL)
        return hull_error_set(err, ENOMEM, "out of memory");
    f->seen[f->n_seen++] = (struct inode_seen){st->st_dev, st->st_ino, copy};
    return 0;
}

static int copy_node(struct flat *f, int spfd, int dpfd, const char *leaf, const struct stat *st,
                     const char *rel, hull_error *err)
{
    if (!S_ISDIR(st->st_mode) && st->st_nlink > 1) {
        int r = link_seen(f, st, dpfd, leaf, rel, err);
        if (r != 0)
            return r < 0 ? -1 : 0;
    }
    if (S_ISREG(st->st_mode)) {
        cleanup_close int src = openat(spfd, leaf, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
        cleanup_close int dst =
            openat(dpfd, leaf, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
        if (src < 0 || dst < 0)
            return hull_error_errno(err, "copy %s", rel);
        if (image_layer_copy_data(src, dst, rel, err) < 0 || copy_meta(src, dst, st, rel, err) < 0)
            return -1;
        if (futimens(dst, (struct timespec[2]){st->st_atim, st->st_mtim}) < 0)
            return hull_error_errno(err, "set times of %s", rel);
        return 0;
    }
    if (S_ISLNK(st->st_mode)) {
        char target[4096];
        ssize_t n = readlinkat(spfd, leaf, target, sizeof(target) - 1);
        if (n < 0)
            return hull_error_errno(err, "readlink %s", rel);
        target[n] = '\0';
        if (symlinkat(target, dpfd, leaf) < 0)
            return hull_error_errno(err, "symlink %s", rel);
    } else if (mknodat(dpfd, leaf, (st->st_mode & S_IFMT) | 0600, st->st_rdev) < 0) {
        return hull_error_errno(err, "mknod %s", rel);
    }
    if (fchownat(dpfd, leaf, st->st_uid, st->st_gid, AT_SYMLINK_NOFOLLOW) < 0 ||
        (!S_ISLNK(st->st_mode) && fchmodat(dpfd, leaf, st->st_mode & 07777, 0) < 0))
        return hull_error_errno(err, "chown/chmod %s", rel);
    if (utimensat(dpfd, leaf, (struct timespec[2]){st->st_atim, st->st_mtim}, AT_SYMLINK_NOFOLLOW) <
        0)
        return hull_error_errno(err, "set times of %s", rel);
    return 0;
}

static int copy_dir(struct flat *f, int src, int dst, const char *rel, hull_error *err);

/* One entry of a layer's directory onto the copy. */
static int merge_entry(struct flat *f, int src, int dst, const char *leaf, const char *rel,
                       hull_error *err)
{
    struct stat st, dt;
    if (fstatat(src, leaf, &st, AT_SYMLINK_NOFOLLOW) < 0)
        return hull_error_errno(err, "stat %s", rel);
    bool exists = fstatat(dst, leaf, &dt, AT_SYMLINK_NOFOLLOW) == 0;
    if (is_whiteout(&st))
        return exists ? hull_rm_rf_at(dst, leaf, err) : 0;
    if (exists && !(S_ISDIR(st.st_mode) && S_ISDIR(dt.st_mode)) &&
        hull_rm_rf_at(dst, leaf, err) < 0)
        return -1;
    if (!S_ISDIR(st.st_mode))
        return copy_node(f, src, dst, leaf, &st, rel, err);
    if (!(exists && S_ISDIR(dt.st_mode)) && mkdirat(dst, leaf, 0700) < 0)
        return hull_error_errno(err, "mkdir %s", rel);
    cleanup_close int s2 = image_layer_open_at(src, leaf, O_RDONLY | O_DIRECTORY);
    cleanup_close int d2 = image_layer_open_at(dst, leaf, O_RDONLY | O_DIRECTORY);
    if (s2 < 0 || d2 < 0)
        return hull_error_errno(err, "open %s", rel);
    if (exists && S_ISDIR(dt.st_mode) && is_opaque(s2)) {
        /* an opaque directory hides what the layers below had in it */
        if (hull_rm_rf_at(dst, leaf, err) < 0 || mkdirat(dst, leaf, 0700) < 0)
            return hull_error_prefix(err, "replace %s", rel);
        close(d2);
        d2 = image_layer_open_at(dst, leaf, O_RDONLY | O_DIRECTORY);
        if (d2 < 0)
            return hull_error_errno(err, "open %s", rel);
    }
    if (copy_dir(f, s2, d2, rel, err) < 0 || copy_meta(s2, d2, &st, rel, err) < 0)
        return -1;
    if (futimens(d2, (struct timespec[2]){st.st_atim, st.st_mtim}) < 0)
        return hull_error_errno(err, "set times of %s", rel);
    return 0;
}

static int copy_dir(struct flat *f, int src, int dst, const char *rel, hull_error *err)
{
    DIR *d = image_layer_opendir(src, *rel ? rel : "/", err);
    if (d == NULL)
        return -1;
    int rc = 0;
    struct dirent *de;
    while (rc == 0 && (de = readdir(d)) != NULL) {
        if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
            continue;
        char sub[4096];
        if ((size_t)snprintf(sub, sizeof(sub), "%s%s%s", rel, *rel ? "/" : "", de->d_name) >=
            sizeof(sub)) {
            rc = hull_error_set(err, ENAMETOOLONG, "%s: name too long", rel);
            break;
        }
        rc = merge_entry(f, src, dst, de->d_name, sub, err);
    }
    closedir(d);
    return rc;
}

static void flat_forget(struct flat *f)
{
    for (size_t i = 0; i < f->n_seen; i++)
        free(f->seen[i].name);
    f->n_seen = 0;
}

int image_rootfs_flatten(struct image_store *s, const struct image *img, const char *dir,
                         hull_error *err)
{
    cleanup_free const char **names = NULL;
    size_t n = 0;
    if (layer_names(s, img, &names, &n, err) < 0)
        return -1;
    if (hull_mkdir_p(dir, 0755, err) < 0)
        return -1;
    cleanup_close int layersfd = image_layers_dir(s, false, err);
    if (layersfd < 0)
        return -1;
    cleanup_close int dst = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dst < 0)
        return hull_error_errno(err, "open %s", dir);
    struct flat f = {.dstroot = dst};
    int rc = 0;
    for (size_t i = 0; i < n && rc == 0; i++) {
        cleanup_close int src = image_layer_open_at(layersfd, names[i], O_RDONLY | O_DIRECTORY);
        struct stat st;
        if (src < 0 || fstat(src, &st) < 0)
            rc = hull_error_errno(err, "open layer %s", names[i]);
        if (rc == 0)
            rc = copy_dir(&f, src, dst, "", err);
        if (rc == 0)
            rc = copy_meta(src, dst, &st, "/", err);
        if (rc == 0 && futimens(dst, (struct timespec[2]){st.st_atim, st.st_mtim}) < 0)
            rc = hull_error_errno(err, "set times of %s", dir);
        if (rc < 0)
            hull_error_prefix(err, "flatten layer sha256:%s into %s", names[i], dir);
        flat_forget(&f);
    }
    free(f.seen);
    return rc;
}
