/* sha256 (util/sha256.h): libcrypto's SHA256_* functions, streaming and
 * one-shot.
 *
 * Not EVP: OpenSSL 3's first EVP digest loads its configuration file and
 * the default provider (~1.5 ms), which `hull sandbox run --image` paid
 * for hashing two small JSON blobs. SHA256_Init/Update/Final run the same
 * assembly (SHA extensions, AVX2) without a provider; they are deprecated
 * in 3.0, not removed, hence the suppression below, for this file only. */
#define OPENSSL_SUPPRESS_DEPRECATED 1

#include <errno.h>
#include <openssl/sha.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "util/error.h"
#include "util/sha256.h"

struct hull_sha256 {
    SHA256_CTX ctx;
    uint64_t length;
    bool failed; /* an update failed: final reports it */
};

static int sha256_init(struct hull_sha256 *h, hull_error *err)
{
    h->length = 0;
    h->failed = false;
    if (SHA256_Init(&h->ctx) != 1)
        return hull_error_set(err, EIO, "sha256: cannot initialise libcrypto's digest");
    return 0;
}

struct hull_sha256 *hull_sha256_new(hull_error *err)
{
    struct hull_sha256 *h = calloc(1, sizeof(*h));
    if (h == NULL) {
        hull_error_set(err, ENOMEM, "sha256: out of memory");
        return NULL;
    }
    if (sha256_init(h, err) < 0) {
        hull_sha256_free(h);
        return NULL;
    }
    return h;
}

void hull_sha256_update(struct hull_sha256 *h, const void *data, size_t len)
{
    if (len == 0)
        return;
    if (SHA256_Update(&h->ctx, data, len) != 1)
        h->failed = true;
    h->length += len;
}

void hull_sha256_to_hex(const unsigned char md[32], char out[HULL_SHA256_HEX])
{
    static const char hex[] = "0123456789abcdef";
    for (int i = 0; i < 32; i++) {
        out[2 * i] = hex[md[i] >> 4];
        out[2 * i + 1] = hex[md[i] & 15];
    }
    out[64] = '\0';
}

int hull_sha256_final(struct hull_sha256 *h, char out[HULL_SHA256_HEX], hull_error *err)
{
    unsigned char md[SHA256_DIGEST_LENGTH];
    bool failed = h->failed;
    if (SHA256_Final(md, &h->ctx) != 1)
        failed = true;
    if (sha256_init(h, err) < 0)
        return -1;
    if (failed)
        return hull_error_set(err, EIO, "sha256: libcrypto failed while hashing");
    hull_sha256_to_hex(md, out);
    return 0;
}

uint64_t hull_sha256_length(const struct hull_sha256 *h)
{
    return h->length;
}

void hull_sha256_free(struct hull_sha256 *h)
{
    if (h == NULL)
        return;
    free(h);
}

int hull_sha256_buf(const void *data, size_t len, char out[HULL_SHA256_HEX], hull_error *err)
{
    cleanup_sha256 struct hull_sha256 *h = hull_sha256_new(err);
    if (h == NULL)
        return -1;
    hull_sha256_update(h, data, len);
    return hull_sha256_final(h, out, err);
}

int hull_sha256_fd(int fd, char out[HULL_SHA256_HEX], uint64_t *size, hull_error *err)
{
    cleanup_sha256 struct hull_sha256 *h = hull_sha256_new(err);
    if (h == NULL)
        return -1;
    cleanup_free char *buf = malloc(1 << 16);
    if (buf == NULL)
        return hull_error_set(err, ENOMEM, "sha256: out of memory");
    for (;;) {
        ssize_t n = read(fd, buf, 1 << 16);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return hull_error_errno(err, "read");
        if (n == 0)
            break;
        hull_sha256_update(h, buf, (size_t)n);
    }
    if (size)
        *size = h->length;
    return hull_sha256_final(h, out, err);
}

bool hull_sha256_hex_valid(const char *s)
{
    return s != NULL && strlen(s) == 64 && strspn(s, "0123456789abcdef") == 64;
}
