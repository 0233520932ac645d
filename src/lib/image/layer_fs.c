/* Layer directories on disk (see layers.h): no libarchive, no libcurl. */
#include <errno.h>
#include <fcntl.h>
#include <linux/openat2.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "image/image.h"
#include "image/layers.h"
#include "util/error.h"
#include "util/fs.h"

bool image_layer_digest_ok(const char *d)
{
    if (d == NULL || strncmp(d, "sha256:", 7) != 0 || strlen(d) != 7 + 64)
        return false;
    for (const char *p = d + 7; *p; p++)
        if (!((*p >= '0' && *p <= '9') || (*p >= 'a' && *p <= 'f')))
            return false;
    return true;
}

int image_layer_clean_name(const char *in, char *out, size_t outlen)
{
    size_t o = 0;
    const char *p = in;
    if (outlen == 0)
        return -2;
    while (*p) {
        while (*p == '/')
            p++;
        const char *s = p;
        while (*p && *p != '/')
            p++;
        size_t len = (size_t)(p - s);
        if (len == 0 || (len == 1 && s[0] == '.'))
            continue;
        if (len == 2 && s[0] == '.' && s[1] == '.')
            return -1;
        if (o + len + 2 > outlen)
            return -2;
        if (o)
            out[o++] = '/';
        memcpy(out + o, s, len);
        o += len;
    }
    out[o] = '\0';
    return 0;
}

int image_layers_dir(struct image_store *s, bool create, hull_error *err)
{
    if (create) {
        if (mkdirat(s->rootfd, "hull", 0700) < 0 && errno != EEXIST)
            return hull_error_errno(err, "mkdir %s/hull", s->root);
        if (mkdirat(s->rootfd, "hull/layers", 0700) < 0 && errno != EEXIST)
            return hull_error_errno(err, "mkdir %s/hull/layers", s->root);
    }
    int fd = openat(s->rootfd, "hull/layers", O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0)
        return hull_error_errno(err, "open %s/hull/layers", s->root);
    return fd;
}

char *image_layer_path(struct image_store *s, const char *diff_id, hull_error *err)
{
    if (!image_layer_digest_ok(diff_id)) {
        hull_error_set(err, EINVAL, "bad diff-id \"%s\"", diff_id ? diff_id : "");
        return NULL;
    }
    char rel[96];
    snprintf(rel, sizeof(rel), "hull/layers/%s", diff_id + 7);
    struct stat st;
    if (fstatat(s->rootfd, rel, &st, AT_SYMLINK_NOFOLLOW) < 0 || !S_ISDIR(st.st_mode)) {
        hull_error_set(err, ENOENT, "layer %s is not unpacked", diff_id);
        return NULL;
    }
    char *path = NULL;
    if (asprintf(&path, "%s/%s", s->root, rel) < 0) {
        hull_error_set(err, ENOMEM, "out of memory");
        return NULL;
    }
    return path;
}

int image_layer_lock(int layersfd, const char *name, hull_error *err)
{
    for (;;) {
        int fd = openat(layersfd, name, O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0600);
        if (fd < 0)
            return hull_error_errno(err, "open lock %s", name);
        int r;
        while ((r = flock(fd, LOCK_EX)) < 0 && errno == EINTR)
            ;
        if (r < 0) {
            int e = errno;
            close(fd);
            errno = e;
            return hull_error_errno(err, "lock %s", name);
        }
        struct stat a, b;
        if (fstat(fd, &a) == 0 && fstatat(layersfd, name, &b, AT_SYMLINK_NOFOLLOW) == 0 &&
            a.st_dev == b.st_dev && a.st_ino == b.st_ino)
            return fd;
        close(fd); /* its holder removed it meanwhile: take the new one */
    }
}

void image_layer_unlock(int layersfd, const char *name, int fd)
{
    if (fd < 0)
        return;
    unlinkat(layersfd, name, 0);
    close(fd);
}

/* Probed once by whichever thread gets here first (unpack_queue.c). */
static _Atomic int openat2_works = -1;

int image_layer_open_at(int dirfd, const char *comp, int flags)
{
    if (openat2_works != 0) {
        struct open_how how = {
            .flags = (uint64_t)(flags | O_CLOEXEC | O_NOFOLLOW),
            .resolve =
                RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS | RESOLVE_NO_XDEV,
        };
        long fd = syscall(SYS_openat2, dirfd, comp, &how, sizeof(how));
        if (fd >= 0 || errno != ENOSYS) {
            openat2_works = 1;
            return (int)fd;
        }
        openat2_works = 0;
    }
    return openat(dirfd, comp, flags | O_CLOEXEC | O_NOFOLLOW);
}

int image_layer_open_parent(int rootfd, const char *name, bool create, const char **leaf,
                            hull_error *err)
{
    const char *slash = strrchr(name, '/');
    *leaf = slash ? slash + 1 : name;
    cleanup_close int fd = fcntl(rootfd, F_DUPFD_CLOEXEC, 3);
    if (fd < 0)
        return hull_error_errno(err, "dup");
    const char *p = name;
    char comp[256];
    while (slash && p < slash) {
        const char *e = strchr(p, '/');
        int plen = (int)(e - name);
        size_t len = (size_t)(e - p);
        if (len >= sizeof(comp))
            return hull_error_set(err, ENAMETOOLONG, "\"%s\": name too long", name);
        memcpy(comp, p, len);
        comp[len] = '\0';
        int next = image_layer_open_at(fd, comp, O_RDONLY | O_DIRECTORY);
        if (next < 0 && errno == ENOENT && create) {
            if (mkdirat(fd, comp, 0755) < 0 && errno != EEXIST)
                return hull_error_errno(err, "mkdir %.*s", plen, name);
            next = image_layer_open_at(fd, comp, O_RDONLY | O_DIRECTORY);
        }
        if (next < 0) {
            if (errno == ELOOP || errno == ENOTDIR || errno == EXDEV || errno == EAGAIN)
                return hull_error_set(err, EPERM,
                                      "entry \"%s\": %.*s is a symlink or not a directory", name,
                                      plen, name);
            return hull_error_errno(err, "open %.*s", plen, name);
        }
        close(fd);
        fd = next;
        p = e + 1;
    }
    return hull_steal_fd(&fd);
}

int image_layer_pump(int fd, const char *name, image_layer_sink sink, void *arg, hull_error *err)
{
    char buf[65536];
    for (;;) {
        ssize_t n = read(fd, buf, sizeof(buf));
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return hull_error_errno(err, "read %s", name);
        if (n == 0)
            return 0;
        if (sink(arg, buf, (size_t)n, name, err) < 0)
            return -1;
    }
}

DIR *image_layer_opendir(int dirfd, const char *name, hull_error *err)
{
    int fd = fcntl(dirfd, F_DUPFD_CLOEXEC, 3);
    DIR *d = fd >= 0 ? fdopendir(fd) : NULL;
    if (d == NULL) {
        int saved = errno; /* close must not change the reason given */
        if (fd >= 0)
            close(fd);
        errno = saved;
        hull_error_errno(err, "read %s", name);
        return NULL;
    }
    /* The duplicate shares dirfd's offset, which may be past the start. */
    rewinddir(d);
    return d;
}

/* [off, off + len) of src into dst at the same offsets: copy_file_range
 * (shared extents where the filesystem can), else read and write. */
static int copy_extent(int src, int dst, off_t off, uint64_t len, const char *name, hull_error *err)
{
    while (len > 0) {
        loff_t in = off, out = off;
        size_t want = len > (1u << 30) ? (1u << 30) : (size_t)len;
        ssize_t n = copy_file_range(src, &in, dst, &out, want, 0);
        if (n == 0)
            return 0; /* shorter than it was */
        if (n > 0) {
            off += n;
            len -= (uint64_t)n;
            continue;
        }
        if (errno == EINTR)
            continue;
        if (errno != EXDEV && errno != EINVAL && errno != ENOSYS && errno != EOPNOTSUPP)
            return hull_error_errno(err, "copy %s", name);
        if (hull_copy_range(src, dst, off, len, err) < 0)
            return hull_error_prefix(err, "copy %s", name);
        return 0;
    }
    return 0;
}

int image_layer_copy_data(int src, int dst, const char *name, hull_error *err)
{
    /* Data extents only: a hole stays a hole (an image's gigabytes of
     * zeros were unpacked as holes, and must not become blocks here). */
    struct stat st;
    if (fstat(src, &st) < 0)
        return hull_error_errno(err, "stat %s", name);
    off_t off = 0, data;
    uint64_t len;
    int more;
    while ((more = hull_next_extent(src, off, st.st_size, &data, &len, err)) > 0) {
        if (copy_extent(src, dst, data, len, name, err) < 0)
            return -1;
        off = data + (off_t)len;
    }
    if (more < 0)
        return hull_error_prefix(err, "copy %s", name);
    if (ftruncate(dst, st.st_size) < 0)
        return hull_error_errno(err, "copy %s", name);
    return 0;
}
