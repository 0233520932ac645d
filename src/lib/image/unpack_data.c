/* The data of a layer's regular files, and the disk it may take.
 *
 * Zeros are not written. Each file is created empty, so a byte that is
 * skipped reads back as zero and the caller's final ftruncate gives the
 * size: a layer holding gigabytes of zeros (a few megabytes of gzip, more
 * ratio still with zstd) costs no disk, and a sparse file stays sparse.
 *
 * What is written is counted, and every HOLE_CHECK_EVERY bytes the store's
 * filesystem is asked how much room is left: an unpack stops while the host
 * still has the space kept free (HULL_IMAGE_MIN_FREE, else the smaller of
 * 1 GiB and 5% of the filesystem), instead of at ENOSPC with the disk full
 * for everybody else. Inodes are kept the same way (the smaller of 1 Mi and
 * 5% of them): a layer of millions of empty files costs little disk and
 * would otherwise leave the host no file to create. The caller removes the
 * half-made layer.
 */
#include <archive.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include "hull.h"
#include "image/unpack_data.h"
#include "util/error.h"
#include "util/fs.h"

/* A filesystem block: a skipped piece that covers one whole is one block
 * never allocated. */
#define HOLE_BLOCK 4096
/* fstatvfs is cheap; once per MiB keeps a reserve of a few MiB meaningful
 * on a small filesystem too. */
#define HOLE_CHECK_EVERY (1u << 20)
#define MIN_FREE_MAX     (1ull << 30)
#define MIN_INODES_MAX   (1ull << 20)
/* and once per so many entries: a reserve of inodes on a small filesystem */
#define ENTRY_CHECK_EVERY 256
#define MIB               (1024.0 * 1024.0)

int layer_space_init(struct layer_space *sp, int fd, hull_error *err)
{
    *sp = (struct layer_space){.fd = fd};
    struct statvfs vfs;
    if (fstatvfs(fd, &vfs) < 0)
        return hull_error_errno(err, "statvfs of the image store");
    /* A filesystem without an inode count (f_files 0) has no such limit. */
    uint64_t inodes = (uint64_t)vfs.f_files / 20;
    sp->keep_inodes = inodes < MIN_INODES_MAX ? inodes : MIN_INODES_MAX;
    const char *env = getenv("HULL_IMAGE_MIN_FREE");
    if (env && *env) {
        if (hull_parse_size(env, &sp->keep) < 0)
            return hull_error_set(err, EINVAL, "HULL_IMAGE_MIN_FREE: '%s' is not a size (2G, 512M)",
                                  env);
        if (sp->keep == 0)
            sp->keep_inodes = 0; /* 0 turns the check off */
        return 0;
    }
    uint64_t twentieth = (uint64_t)vfs.f_blocks * vfs.f_frsize / 20;
    sp->keep = twentieth < MIN_FREE_MAX ? twentieth : MIN_FREE_MAX;
    return 0;
}

/* The filesystem still has both reserves free: 0, or ENOSPC. */
static int space_check(struct layer_space *sp, hull_error *err)
{
    sp->unchecked = 0;
    sp->entries = 0;
    struct statvfs vfs;
    if (fstatvfs(sp->fd, &vfs) < 0)
        return hull_error_errno(err, "statvfs of the image store");
    if (vfs.f_files && (uint64_t)vfs.f_favail < sp->keep_inodes)
        return hull_error_set(err, ENOSPC,
                              "no inodes left: %llu free on the image store's filesystem, under "
                              "the %llu kept free (5%%, at most %llu)",
                              (unsigned long long)vfs.f_favail, (unsigned long long)sp->keep_inodes,
                              MIN_INODES_MAX);
    uint64_t avail = (uint64_t)vfs.f_bavail * vfs.f_frsize;
    if (avail >= sp->keep)
        return 0;
    return hull_error_set(err, ENOSPC,
                          "no space left: %.1f MiB free on the image store's "
                          "filesystem, under the %.1f MiB kept free (HULL_IMAGE_MIN_FREE)",
                          (double)avail / MIB, (double)sp->keep / MIB);
}

int layer_space_use(struct layer_space *sp, uint64_t n, hull_error *err)
{
    sp->unchecked += n;
    if ((sp->keep == 0 && sp->keep_inodes == 0) || sp->unchecked < HOLE_CHECK_EVERY)
        return 0;
    return space_check(sp, err);
}

int layer_space_entry(struct layer_space *sp, uint64_t n, hull_error *err)
{
    if (++sp->entries < ENTRY_CHECK_EVERY)
        return layer_space_use(sp, n, err);
    sp->unchecked += n;
    return sp->keep == 0 && sp->keep_inodes == 0 ? 0 : space_check(sp, err);
}

static bool all_zero(const char *p, size_t n)
{
    return n == 0 || (p[0] == 0 && memcmp(p, p + 1, n - 1) == 0);
}

static int write_run(int fd, const char *p, size_t n, int64_t off, const char *name,
                     struct layer_space *sp, hull_error *err)
{
    if (n == 0)
        return 0;
    if (layer_space_use(sp, n, err) < 0)
        return -1;
    if (hull_pwrite_all(fd, p, n, (off_t)off) < 0)
        return hull_error_errno(err, "write %s", name);
    return 0;
}

int layer_write_data(struct archive *a, int fd, const char *name, struct layer_space *sp,
                     hull_error *err)
{
    const void *buf;
    size_t size;
    la_int64_t off;
    int r;
    while ((r = archive_read_data_block(a, &buf, &size, &off)) == ARCHIVE_OK) {
        const char *p = buf;
        /* Pieces end on HOLE_BLOCK file offsets; the non-zero ones in a row
         * ([start, i)) go out in one write. */
        size_t start = 0, i = 0;
        while (i < size) {
            size_t piece = HOLE_BLOCK - (size_t)((uint64_t)(off + (int64_t)i) % HOLE_BLOCK);
            if (piece > size - i)
                piece = size - i;
            if (all_zero(p + i, piece)) {
                if (write_run(fd, p + start, i - start, off + (int64_t)start, name, sp, err) < 0)
                    return -1;
                start = i + piece;
            }
            i += piece;
        }
        if (write_run(fd, p + start, size - start, off + (int64_t)start, name, sp, err) < 0)
            return -1;
    }
    if (r != ARCHIVE_EOF)
        return hull_error_set(err, EIO, "read %s: %s", name, archive_error_string(a));
    return 0;
}
