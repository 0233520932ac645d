/* sha256 of files (attestation, cache keys) and the snapshot HMAC key. */
#include <errno.h>
#include <fcntl.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "util/error.h"
#include "util/fs.h"
#include "util/sha256.h"
#include "vm/vm.h"

int vm_sha256_file(const char *path, char out[HULL_SHA256_HEX], hull_error *err)
{
    /* O_NONBLOCK: a FIFO must not hang the open; only a regular file is
     * an artifact (a device such as /dev/zero would be read forever). */
    cleanup_close int fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
    struct stat st;
    if (fd < 0 || fstat(fd, &st) < 0)
        return hull_error_errno(err, "open %s", path);
    if (!S_ISREG(st.st_mode))
        return hull_error_set(err, EINVAL, "%s is not a regular file", path);
    if (hull_sha256_fd(fd, out, NULL, err) < 0)
        return hull_error_prefix(err, "sha256 %s", path);
    return 0;
}

/* The key never leaves the host: a snapshot's manifest is signed with it, so
 * a manifest edited to match a tampered stream is refused too. */
static int snapshot_key(unsigned char key[32], hull_error *err)
{
    char dir[4096];
    if (vm_cache_subdir("keys", dir, sizeof(dir), err) < 0)
        return -1;
    char path[4200];
    snprintf(path, sizeof(path), "%s/snapshot.key", dir);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0 && errno == ENOENT) {
        unsigned char k[32];
        if (RAND_bytes(k, sizeof(k)) != 1)
            return hull_error_set(err, EIO, "generate snapshot key");
        cleanup_close int dfd = open(dir, O_DIRECTORY | O_RDONLY | O_CLOEXEC);
        if (dfd < 0 ||
            hull_write_file_atomic(dfd, "snapshot.key", (char *)k, sizeof(k), 0600, err) < 0)
            return dfd < 0 ? hull_error_errno(err, "open %s", dir) : -1;
        fd = open(path, O_RDONLY | O_CLOEXEC);
    }
    if (fd < 0)
        return hull_error_errno(err, "open %s", path);
    ssize_t n = read(fd, key, 32);
    close(fd);
    if (n != 32)
        return hull_error_set(err, EINVAL, "%s: not a 32-byte key", path);
    return 0;
}

int vm_hmac(const char *data, size_t len, char out[HULL_SHA256_HEX], hull_error *err)
{
    unsigned char key[32], md[32];
    unsigned mdlen = 0;
    if (snapshot_key(key, err) < 0)
        return -1;
    if (!HMAC(EVP_sha256(), key, sizeof(key), (const unsigned char *)data, len, md, &mdlen))
        return hull_error_set(err, EIO, "HMAC-SHA256");
    hull_sha256_to_hex(md, out);
    return 0;
}
