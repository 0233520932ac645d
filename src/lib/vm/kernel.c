/* The guest kernel: Debian's bzImage, booted as the ELF inside it.
 *
 * QEMU boots an ELF kernel through its PVH entry point, skipping the
 * bzImage's self-decompression, which under TCG is most of the boot (XZ
 * decoded by an emulated CPU). So hull extracts the ELF once: find the XZ
 * stream in the bzImage payload, decode it with liblzma, check it is an
 * x86-64 ELF, and cache it keyed by the bzImage's sha256, so a changed
 * kernel is a new cache entry and never a stale one.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <lzma.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <x86intrin.h>

#include "util/error.h"
#include "util/fs.h"
#include "util/log.h"
#include "vm/vm.h"

/* The largest bzImage read: distributions' are 8-15 MiB. */
#define VM_KERNEL_MAX ((size_t)256 << 20)

static int newest_boot_kernel(char *out, size_t len, hull_error *err)
{
    DIR *d = opendir("/boot");
    if (!d)
        return hull_error_errno(err, "no --kernel given and /boot unreadable");
    char best[256] = "";
    struct dirent *e;
    while ((e = readdir(d))) {
        if (strncmp(e->d_name, "vmlinuz-", 8) == 0 && strlen(e->d_name) < sizeof(best) &&
            (!best[0] || strverscmp(e->d_name, best) > 0))
            snprintf(best, sizeof(best), "%s", e->d_name);
    }
    closedir(d);
    if (!best[0])
        return hull_error_set(
            err, ENOENT,
            "no --kernel given and no /boot/vmlinuz-* (install linux-image-amd64: "
            "scripts/deps.sh vm)");
    snprintf(out, len, "/boot/%s", best);
    return 0;
}

/* x86 boot protocol: "HdrS" at 0x202, the version string via 0x20e. */
static int bzimage_release(const unsigned char *img, size_t size, char *rel, size_t rlen)
{
    if (size < 0x1000 || memcmp(img + 0x202, "HdrS", 4) != 0 || img[0x1fe] != 0x55 ||
        img[0x1ff] != 0xaa)
        return -1;
    size_t off = (size_t)(img[0x20e] | img[0x20f] << 8) + 0x200;
    if (off >= size)
        return -1;
    size_t i = 0;
    while (off + i < size && img[off + i] && img[off + i] != ' ' && i + 1 < rlen) {
        rel[i] = (char)img[off + i];
        i++;
    }
    rel[i] = 0;
    return i ? 0 : -1;
}

static int extract_elf(const unsigned char *img, size_t size, const char *dst, hull_error *err)
{
    static const unsigned char xz_magic[6] = {0xfd, '7', 'z', 'X', 'Z', 0};
    const unsigned char *p = memmem(img, size, xz_magic, sizeof(xz_magic));
    if (!p)
        return hull_error_set(err, EINVAL,
                              "no XZ-compressed kernel inside (only XZ bzImages are supported)");
    lzma_stream s = LZMA_STREAM_INIT;
    if (lzma_stream_decoder(&s, UINT64_MAX, 0) != LZMA_OK)
        return hull_error_set(err, ENOMEM, "liblzma init");
    char tmp[4200];
    snprintf(tmp, sizeof(tmp), "%s.tmp.%d", dst, getpid());
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) {
        lzma_end(&s);
        return hull_error_errno(err, "create %s", tmp);
    }
    s.next_in = p;
    s.avail_in = size - (size_t)(p - img);
    static unsigned char out[1 << 20];
    bool first = true;
    lzma_ret r;
    int rc = 0;
    do {
        s.next_out = out;
        s.avail_out = sizeof(out);
        r = lzma_code(&s, LZMA_FINISH);
        size_t n = sizeof(out) - s.avail_out;
        if (first && n >= 20) {
            /* ELF64, little-endian, EM_X86_64 */
            if (memcmp(out,
                       "\x7f"
                       "ELF\x02\x01",
                       6) != 0 ||
                out[18] != 62) {
                rc = hull_error_set(err, EINVAL, "the decompressed kernel is not an x86-64 ELF");
                break;
            }
            first = false;
        }
        if (n && write(fd, out, n) != (ssize_t)n) {
            rc = hull_error_errno(err, "write %s", tmp);
            break;
        }
    } while (r == LZMA_OK);
    lzma_end(&s);
    if (!rc && (r != LZMA_STREAM_END || first))
        rc = hull_error_set(err, EINVAL, "corrupt XZ stream in the kernel (liblzma: %d)", (int)r);
    if (!rc && fsync(fd) < 0)
        rc = hull_error_errno(err, "fsync %s", tmp);
    close(fd);
    if (!rc && rename(tmp, dst) < 0)
        rc = hull_error_errno(err, "rename %s", dst);
    if (rc)
        unlink(tmp);
    return rc;
}

int vm_kernel_prepare(const char *path, struct vm_kernel *k, hull_error *err)
{
    memset(k, 0, sizeof(*k));
    if (!path || !*path) {
        if (newest_boot_kernel(k->bzimage, sizeof(k->bzimage), err) < 0)
            return -1;
    } else if (!realpath(path, k->bzimage))
        return hull_error_errno(err, "kernel %s", path);
    /* A kernel is a regular file: /dev/zero or a FIFO given as --kernel is
     * refused here, not read until memory runs out or a writer comes. */
    struct stat st;
    if (stat(k->bzimage, &st) < 0)
        return hull_error_errno(err, "kernel %s", k->bzimage);
    if (!S_ISREG(st.st_mode))
        return hull_error_set(err, EINVAL, "kernel %s: not a regular file", k->bzimage);
    cleanup_free char *img = NULL;
    size_t size = 0;
    if (hull_read_file_max(k->bzimage, VM_KERNEL_MAX, &img, &size, err) < 0)
        return hull_error_prefix(err, "kernel");
    if (bzimage_release((unsigned char *)img, size, k->release, sizeof(k->release)) < 0)
        return hull_error_set(err, EINVAL, "kernel %s: not an x86 bzImage", k->bzimage);
    if (vm_sha256_file(k->bzimage, k->bzimage_sha256, err) < 0)
        return -1;
    char dir[4096], sumfile[4200];
    if (vm_cache_subdir("kernels", dir, sizeof(dir), err) < 0)
        return -1;
    /* A cut path would name another file of the cache. */
    if (snprintf(k->vmlinux, sizeof(k->vmlinux), "%s/vmlinux-%s", dir, k->bzimage_sha256) >=
            (int)sizeof(k->vmlinux) ||
        snprintf(sumfile, sizeof(sumfile), "%s.sha256", k->vmlinux) >= (int)sizeof(sumfile))
        return hull_error_set(err, ENAMETOOLONG, "kernel cache directory %s: path too long", dir);
    cleanup_free char *sum = NULL;
    size_t sl;
    /* A missing or short digest file only means extracting again. */
    if (access(k->vmlinux, R_OK) == 0 && hull_read_file(sumfile, &sum, &sl, NULL) == 0 &&
        sl >= 64) {
        memcpy(k->vmlinux_sha256, sum, 64);
        k->vmlinux_sha256[64] = 0;
        return 0;
    }
    if (extract_elf((unsigned char *)img, size, k->vmlinux, err) < 0)
        return hull_error_prefix(err, "kernel %s", k->bzimage);
    if (vm_sha256_file(k->vmlinux, k->vmlinux_sha256, err) < 0 ||
        hull_write_path_atomic(sumfile, k->vmlinux_sha256, 64, 0644, err) < 0)
        return -1;
    return 0;
}

/* Under TCG the guest calibrates its TSC against the emulated PIT, which
 * fails in a fifth to half of boots on a loaded host; giving it the
 * frequency on the command line removes the calibration. The value is the
 * host's, measured (rdtsc against CLOCK_MONOTONIC_RAW), never a constant,
 * and kept for the life of the host boot in /run. */
long vm_tsc_khz(void)
{
    static long cached;
    if (cached)
        return cached;
    const char *file = "/run/hull-vm-tsc-khz";
    char *s = NULL;
    size_t l;
    /* No reading kept yet (first use since the host booted): measure one. */
    if (hull_read_file(file, &s, &l, NULL) == 0) {
        cached = strtol(s, NULL, 10);
        free(s);
        if (cached > 0)
            return cached;
    }
    long best = 0;
    for (int i = 0; i < 3; i++) {
        struct timespec a, b;
        clock_gettime(CLOCK_MONOTONIC_RAW, &a);
        unsigned long long t0 = __rdtsc();
        struct timespec d = {0, 20 * 1000 * 1000};
        nanosleep(&d, NULL);
        unsigned long long t1 = __rdtsc();
        clock_gettime(CLOCK_MONOTONIC_RAW, &b);
        long long ns = (b.tv_sec - a.tv_sec) * 1000000000LL + (b.tv_nsec - a.tv_nsec);
        long khz = (long)((t1 - t0) * 1000000ULL / (unsigned long long)ns);
        if (i == 0 || labs(khz - best) > best / 1000)
            best = khz; /* keep the last of agreeing readings */
    }
    cached = best;
    char buf[32];
    int n = snprintf(buf, sizeof(buf), "%ld\n", best);
    hull_error e = NULL;
    if (hull_write_path_atomic(file, buf, (size_t)n, 0644, &e) < 0) {
        /* Only a cache: without it the next hull measures again. */
        hull_debug("%s: %s", file, hull_error_msg(e));
        hull_error_free(&e);
    }
    return cached;
}
