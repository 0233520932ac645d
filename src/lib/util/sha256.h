/* sha256 through libcrypto (SHA256_*, not EVP: see sha256.c): a streaming
 * context for data that arrives in pieces (blobs being downloaded, layers
 * being written) and one-shot helpers. Digests are given as 64 lower-case hex characters (the
 * form OCI digests use after "sha256:"). */
#ifndef HULL_UTIL_SHA256_H
#define HULL_UTIL_SHA256_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "hull.h"

/* 64 hex characters and the NUL (vm/vm.h defines the same value). */
#ifndef HULL_SHA256_HEX
#define HULL_SHA256_HEX 65
#endif

struct hull_sha256;

/* A fresh context; NULL (with err) only when libcrypto cannot allocate one. */
struct hull_sha256 *hull_sha256_new(hull_error *err);
/* Hash more bytes. A libcrypto failure is remembered and reported by final:
 * callers feed data without checking each piece. */
void hull_sha256_update(struct hull_sha256 *h, const void *data, size_t len);
/* The digest of everything fed so far, as lower-case hex. The context is
 * reset afterwards (it can hash a new stream). */
int hull_sha256_final(struct hull_sha256 *h, char out[HULL_SHA256_HEX], hull_error *err);
/* Bytes fed since the context was made or last finalised. */
uint64_t hull_sha256_length(const struct hull_sha256 *h);
void hull_sha256_free(struct hull_sha256 *h);

static inline void hull_sha256_freep(struct hull_sha256 **h)
{
    hull_sha256_free(*h);
    *h = NULL;
}
#define cleanup_sha256 __attribute__((cleanup(hull_sha256_freep)))

/* One shot over a buffer. */
int hull_sha256_buf(const void *data, size_t len, char out[HULL_SHA256_HEX], hull_error *err);
/* The rest of fd from its current offset to EOF; *size (may be NULL) gets
 * the number of bytes read. */
int hull_sha256_fd(int fd, char out[HULL_SHA256_HEX], uint64_t *size, hull_error *err);
/* 32 raw bytes -> 64 lower-case hex characters. */
void hull_sha256_to_hex(const unsigned char md[32], char out[HULL_SHA256_HEX]);
/* Exactly 64 characters of [0-9a-f]. */
bool hull_sha256_hex_valid(const char *s);

#endif
