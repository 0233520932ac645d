/* A template's guest RAM as a file beside its snapshot, so a restore maps
 * it instead of copying it through the migration stream.
 *
 * Saving: the template's maker runs on a memfd hull made and QEMU maps
 * shared (vm->ram_share); its stream is saved with x-ignore-shared, which in
 * QEMU 7.2 leaves out exactly the shared blocks, and hull copies the memfd,
 * paused, into <snapshot>.ram while hashing it. The digest goes into the
 * signed manifest.
 *
 * Restoring: QEMU 7.2 opens a memory-backend-file read-write even with
 * share=off (a read-only open of a private mapping came in 8.2), so it never
 * gets the file itself: hull copies it into a fresh memfd while hashing it,
 * refuses it unless the digest is the manifest's, and seals the memfd
 * against any write, grow or shrink before QEMU sees it. QEMU maps that
 * copy private: what the guest starts from is exactly what was hashed, and
 * neither QEMU nor the guest can change it (writes are copy-on-write in
 * QEMU's own memory). Zero pages stay holes in both files, and the digest
 * names the non-zero pages only (below), so holes are neither read nor
 * hashed. Every clone of a template shares one such copy (ramkeeper.c).
 */
#include <errno.h>
#include <fcntl.h>
#include <openssl/evp.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "util/error.h"
#include "util/fs.h"
#include "util/sha256.h"
#include "vm/vm.h"

#define CHUNK (1u << 20)
#define PAGE  4096u

static void md_freep(EVP_MD_CTX **c)
{
    EVP_MD_CTX_free(*c);
}

static bool all_zero(const char *p, size_t n)
{
    return n == 0 || (p[0] == 0 && memcmp(p, p + 1, n - 1) == 0);
}

/* The RAM digest ("pages-1"): sha256 over, for every page that is not all
 * zeros, in order, its offset (8 bytes, little endian) and its bytes; then
 * the size. It depends on the contents alone (not on where a file has
 * holes), and names exactly one RAM image: every page it does not name is
 * zero. So a copy need not read, let alone hash, the holes. */
static void hash_page(EVP_MD_CTX *md, uint64_t off, const char *p, size_t len)
{
    unsigned char le[8];
    for (int i = 0; i < 8; i++)
        le[i] = (unsigned char)(off >> (8 * i));
    EVP_DigestUpdate(md, le, sizeof(le));
    EVP_DigestUpdate(md, p, len);
}

/* Pages [off, off+n) of buf: hash the non-zero ones and write them to out
 * (already size long and all zero) in runs, so zero pages stay holes. */
static int copy_pages(EVP_MD_CTX *md, int out, const char *buf, size_t n, uint64_t off,
                      hull_error *err)
{
    size_t run = 0, p = 0;
    while (p <= n) {
        size_t len = n - p < PAGE ? n - p : PAGE;
        bool end = p == n;
        if (!end && !all_zero(buf + p, len)) {
            hash_page(md, off + p, buf + p, len);
            p += len;
            continue;
        }
        if (p > run && pwrite(out, buf + run, p - run, (off_t)(off + run)) != (ssize_t)(p - run))
            return hull_error_errno(err, "write guest RAM");
        if (end)
            return 0;
        p += len;
        run = p;
    }
    return 0;
}

/* Where in's next data is at or after off: [*data, *hole); false when
 * none is left. A file system without SEEK_DATA is all data. */
static bool next_data(int in, uint64_t off, uint64_t size, uint64_t *data, uint64_t *hole)
{
    off_t d = lseek(in, (off_t)off, SEEK_DATA);
    if (d < 0 && errno == ENXIO)
        return false;
    if (d < 0) {
        *data = off, *hole = size;
        return true;
    }
    /* Whole pages, each read once: a block smaller than a page must not
     * split one (its halves would hash as two). */
    off_t h = lseek(in, d, SEEK_HOLE);
    uint64_t a = (uint64_t)d & ~(uint64_t)(PAGE - 1);
    *data = a > off ? a : off;
    *hole = h < 0 ? size : ((uint64_t)h + PAGE - 1) & ~(uint64_t)(PAGE - 1);
    if (*hole > size)
        *hole = size;
    return *data < size;
}

/* Copy size bytes of in to out, hashing them (the digest above); only
 * in's data is read. */
static int copy_hashed(int in, int out, uint64_t size, char hex[HULL_SHA256_HEX], hull_error *err)
{
    __attribute__((cleanup(md_freep))) EVP_MD_CTX *md = EVP_MD_CTX_new();
    cleanup_free char *buf = malloc(CHUNK);
    if (!md || !buf || EVP_DigestInit_ex(md, EVP_sha256(), NULL) != 1)
        return hull_error_set(err, ENOMEM, "guest RAM file: no memory to copy it");
    uint64_t data, hole;
    for (uint64_t off = 0; off < size && next_data(in, off, size, &data, &hole);) {
        for (off = data; off < hole;) {
            size_t want = hole - off < CHUNK ? (size_t)(hole - off) : CHUNK;
            ssize_t n = pread(in, buf, want, (off_t)off);
            if (n < 0 && errno == EINTR)
                continue;
            if (n < 0)
                return hull_error_errno(err, "read guest RAM");
            if (n == 0)
                return hull_error_set(err, EINVAL, "guest RAM file is truncated");
            if (copy_pages(md, out, buf, (size_t)n, off, err) < 0)
                return -1;
            off += (uint64_t)n;
        }
    }
    unsigned char le[8], d[32];
    for (int i = 0; i < 8; i++)
        le[i] = (unsigned char)(size >> (8 * i));
    EVP_DigestUpdate(md, le, sizeof(le));
    EVP_DigestFinal_ex(md, d, NULL);
    hull_sha256_to_hex(d, hex);
    return 0;
}

int vm_ram_memfd(uint64_t size, int *out, hull_error *err)
{
    int fd = memfd_create("hull-guest-ram", MFD_CLOEXEC | MFD_ALLOW_SEALING);
    if (fd < 0)
        return hull_error_errno(err, "memfd for guest RAM");
    if (ftruncate(fd, (off_t)size) < 0) {
        close(fd);
        return hull_error_errno(err, "size the guest RAM memfd");
    }
    *out = fd;
    return 0;
}

int vm_ram_save(int memfd, uint64_t size, const char *path, char hex[HULL_SHA256_HEX],
                hull_error *err)
{
    cleanup_close int out = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (out < 0)
        return hull_error_errno(err, "create %s", path);
    int rc = ftruncate(out, (off_t)size) < 0 ? hull_error_errno(err, "size %s", path)
                                             : copy_hashed(memfd, out, size, hex, err);
    if (!rc && fsync(out) < 0)
        rc = hull_error_errno(err, "write %s", path);
    if (rc)
        unlink(path);
    return rc;
}

int vm_ram_load(const char *path, uint64_t size, const char *want, int *out, hull_error *err)
{
    cleanup_close int in = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    struct stat st;
    if (in < 0)
        return hull_error_errno(err, "guest RAM file %s", path);
    if (fstat(in, &st) < 0 || !S_ISREG(st.st_mode) || (uint64_t)st.st_size != size)
        return hull_error_set(err, EPERM, "guest RAM file %s is not the snapshot's (size)", path);
    int fd;
    if (vm_ram_memfd(size, &fd, err) < 0)
        return -1;
    char got[HULL_SHA256_HEX];
    int rc = copy_hashed(in, fd, size, got, err);
    if (!rc && strcmp(got, want) != 0)
        rc = hull_error_set(err, EPERM,
                            "guest RAM file %s does not match the snapshot's digest "
                            "(tampered with or damaged)",
                            path);
    /* From here on nobody writes it: not QEMU, not hull. */
    if (!rc && fcntl(fd, F_ADD_SEALS, F_SEAL_WRITE | F_SEAL_GROW | F_SEAL_SHRINK | F_SEAL_SEAL) < 0)
        rc = hull_error_errno(err, "seal the guest RAM copy");
    if (rc) {
        close(fd);
        return -1;
    }
    *out = fd;
    return 0;
}
