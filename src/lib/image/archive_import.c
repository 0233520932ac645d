/* `hull image import`: a rootfs tarball (plain, gzip or zstd) becomes a
 * one-layer image. The tarball is extracted inside the store (libarchive,
 * refusing anything that would land outside) and written back as a layer by
 * image_layer_write, so the layer has hull's canonical form whatever tool
 * made the tarball (./ prefixes, absolute names, odd ordering). */
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
#include "util/log.h"

#define ARCHIVE_BLOCK (64 * 1024)

/* "./a/b" or "/a/b" -> "a/b"; NULL for a path with ".." (refused). */
static char *rel_path(const char *p)
{
    while (*p == '/' || (p[0] == '.' && p[1] == '/'))
        p += p[0] == '/' ? 1 : 2;
    if (strcmp(p, ".") == 0)
        return strdup("");
    for (const char *c = p; c != NULL; c = strchr(c, '/')) {
        c += *c == '/';
        if (strncmp(c, "..", 2) == 0 && (c[2] == '/' || c[2] == '\0'))
            return NULL;
    }
    return strdup(p);
}

/* Extract a rootfs tarball under dir (absolute, free of symlinks): owners,
 * modes, times and xattrs as stored; libarchive refuses to go through a
 * symlink the tarball made. */
static int extract_entry(struct archive *a, struct archive *w, struct archive_entry *e,
                         const char *dir, hull_error *err)
{
    cleanup_free char *rel = rel_path(archive_entry_pathname(e));
    if (rel == NULL)
        return hull_error_set(err, EPERM, "%s: refused: outside the root",
                              archive_entry_pathname(e));
    if (rel[0] == '\0') {
        /* "./": the root's own owner and mode (the temporary dir's 0700 would
         * otherwise become the image's /). */
        if (archive_entry_filetype(e) == AE_IFDIR &&
            (chmod(dir, archive_entry_perm(e)) < 0 ||
             chown(dir, (uid_t)archive_entry_uid(e), (gid_t)archive_entry_gid(e)) < 0))
            return hull_error_errno(err, "set the root's owner and mode");
        return 0;
    }
    char full[PATH_MAX];
    if (snprintf(full, sizeof(full), "%s/%s", dir, rel) >= (int)sizeof(full))
        return hull_error_set(err, ENAMETOOLONG, "%s: name too long", rel);
    archive_entry_set_pathname(e, full);
    const char *hard = archive_entry_hardlink(e);
    if (hard != NULL) {
        cleanup_free char *hrel = rel_path(hard);
        if (hrel == NULL || hrel[0] == '\0')
            return hull_error_set(err, EPERM, "%s: refused: hard link outside the root", rel);
        char hfull[PATH_MAX];
        if (snprintf(hfull, sizeof(hfull), "%s/%s", dir, hrel) >= (int)sizeof(hfull))
            return hull_error_set(err, ENAMETOOLONG, "%s: name too long", hrel);
        archive_entry_set_hardlink(e, hfull);
    }
    if (archive_write_header(w, e) != ARCHIVE_OK)
        return hull_error_set(err, EPERM, "%s: %s", rel, archive_error_string(w));
    const void *buf;
    size_t len;
    la_int64_t off;
    int r;
    while ((r = archive_read_data_block(a, &buf, &len, &off)) == ARCHIVE_OK)
        if (archive_write_data_block(w, buf, len, off) != ARCHIVE_OK)
            return hull_error_set(err, EIO, "%s: %s", rel, archive_error_string(w));
    if (r != ARCHIVE_EOF)
        return hull_error_set(err, EIO, "%s: %s", rel, archive_error_string(a));
    if (archive_write_finish_entry(w) != ARCHIVE_OK)
        return hull_error_set(err, EIO, "%s: %s", rel, archive_error_string(w));
    return 0;
}

static int extract_tarball(int fd, const char *dir, hull_error *err)
{
    struct archive *a = archive_read_new(), *w = archive_write_disk_new();
    int r = 0;
    if (a == NULL || w == NULL)
        r = hull_error_set(err, ENOMEM, "out of memory");
    if (r == 0) {
        archive_read_support_filter_all(a);
        archive_read_support_format_tar(a);
        archive_write_disk_set_options(
            w, ARCHIVE_EXTRACT_OWNER | ARCHIVE_EXTRACT_PERM | ARCHIVE_EXTRACT_TIME |
                   ARCHIVE_EXTRACT_XATTR | ARCHIVE_EXTRACT_SECURE_SYMLINKS |
                   ARCHIVE_EXTRACT_SECURE_NODOTDOT | ARCHIVE_EXTRACT_UNLINK);
        if (archive_read_open_fd(a, fd, ARCHIVE_BLOCK) != ARCHIVE_OK)
            r = hull_error_set(err, EINVAL, "not a tarball: %s", archive_error_string(a));
    }
    struct archive_entry *e;
    int ar = ARCHIVE_OK;
    while (r == 0 && (ar = archive_read_next_header(a, &e)) == ARCHIVE_OK)
        r = extract_entry(a, w, e, dir, err);
    if (r == 0 && ar != ARCHIVE_EOF)
        r = hull_error_set(err, EINVAL, "not a tarball: %s", archive_error_string(a));
    /* Directory modes and times are applied at close. */
    if (w != NULL && archive_write_close(w) != ARCHIVE_OK && r == 0)
        r = hull_error_set(err, EIO, "%s", archive_error_string(w));
    archive_read_free(a);
    archive_write_free(w);
    return r;
}

static json_object *import_config(json_object *config)
{
    char now[32];
    time_t t = time(NULL);
    struct tm tm;
    strftime(now, sizeof(now), "%Y-%m-%dT%H:%M:%SZ", gmtime_r(&t, &tm));
    char plat[64];
    snprintf(plat, sizeof(plat), "%s", image_host_platform());
    char *arch = strchr(plat, '/');
    *arch++ = '\0';
    char *variant = strchr(arch, '/');
    if (variant != NULL)
        *variant++ = '\0';
    json_object *doc = json_object_new_object();
    json_object_object_add(doc, "created", json_object_new_string(now));
    json_object_object_add(doc, "architecture", json_object_new_string(arch));
    json_object_object_add(doc, "os", json_object_new_string(plat));
    if (variant != NULL)
        json_object_object_add(doc, "variant", json_object_new_string(variant));
    json_object_object_add(doc, "config",
                           config ? json_object_get(config) : json_object_new_object());
    json_object *rootfs = json_object_new_object();
    json_object_object_add(rootfs, "type", json_object_new_string("layers"));
    json_object_object_add(rootfs, "diff_ids", json_object_new_array());
    json_object_object_add(doc, "rootfs", rootfs);
    json_object *h = json_object_new_object();
    json_object_object_add(h, "created", json_object_new_string(now));
    json_object_object_add(h, "created_by", json_object_new_string("hull image import"));
    json_object *hist = json_object_new_array();
    json_object_array_add(hist, h);
    json_object_object_add(doc, "history", hist);
    return doc;
}

int image_import(struct image_store *s, int fd, const char *name, json_object *config,
                 enum image_compression c, char **manifest_digest, hull_error *err)
{
    /* Inside the store: image_layer_write can rename it into hull/layers. */
    char tmpl[PATH_MAX];
    snprintf(tmpl, sizeof(tmpl), "%s/hull", s->root);
    if (hull_mkdir_p(tmpl, 0700, err) < 0)
        return -1;
    snprintf(tmpl, sizeof(tmpl), "%s/hull/import-XXXXXX", s->root);
    if (mkdtemp(tmpl) == NULL)
        return hull_error_errno(err, "mkdtemp %s", tmpl);
    cleanup_close int pin = image_store_pin(s, err);
    if (pin < 0) {
        rmdir(tmpl);
        return -1;
    }
    char dir[PATH_MAX];
    /* A tarball without a "./" entry gets the usual mode for / */
    int r = chmod(tmpl, 0755) == 0 && realpath(tmpl, dir)
                ? 0
                : hull_error_errno(err, "prepare %s", tmpl);
    if (r == 0)
        r = extract_tarball(fd, dir, err);
    struct image_desc desc = {0};
    cleanup_free char *diff_id = NULL;
    if (r == 0)
        r = image_layer_write(s, dir, false, c, &desc, &diff_id, err);
    if (r == 0) {
        cleanup_json json_object *doc = import_config(config);
        r = image_commit(s, name, doc, &desc, &diff_id, 1, manifest_digest, err);
    }
    image_desc_free(&desc);
    cleanup_hull_error hull_error rmerr = NULL;
    if (hull_rm_rf_at(AT_FDCWD, tmpl, &rmerr) < 0 && r == 0)
        hull_warn("import: %s", hull_error_msg(rmerr));
    return r;
}
