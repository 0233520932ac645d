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
#include "vm/vm.h"

void vm_sha256_hex(const unsigned char digest[32], char out[HULL_SHA256_HEX])
{
    for (int i = 0; i < 32; i++)
        snprintf(out + 2 * i, 3, "%02x", digest[i]);
}

bool vm_is_sha256(const char *s)
{
    if (!s || strlen(s) != 64)
        return false;
    return strspn(s, "0123456789abcdef") == 64;
}

int vm_sha256_file(const char *path, char out[HULL_SHA256_HEX], hull_error *err)
{
    cleanup_close int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return hull_error_errno(err, "open %s", path);
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    if (!ctx || EVP_DigestInit_ex(ctx, EVP_sha256(), NULL) != 1) {
        EVP_MD_CTX_free(ctx);
        return hull_error_set(err, ENOMEM, "sha256 %s", path);
    }
    static __thread unsigned char buf[1 << 16];
    ssize_t n;
    while ((n = read(fd, buf, sizeof(buf))) > 0)
        EVP_DigestUpdate(ctx, buf, (size_t)n);
    if (n < 0) {
        EVP_MD_CTX_free(ctx);
        return hull_error_errno(err, "read %s", path);
    }
    unsigned char md[32];
    unsigned mdlen = 0;
    EVP_DigestFinal_ex(ctx, md, &mdlen);
    EVP_MD_CTX_free(ctx);
    vm_sha256_hex(md, out);
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
    vm_sha256_hex(md, out);
    return 0;
}
