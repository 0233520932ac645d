/* util/utf8: strict UTF-8 (RFC 3629), so that what hull writes as JSON is
 * valid for every reader, whatever bytes it was given. */
#ifndef HULL_UTIL_UTF8_H
#define HULL_UTIL_UTF8_H

#include <stdbool.h>
#include <stddef.h>

/* Length of the valid character at s (1 to 4), or 0 when the bytes there
 * are not one (overlong forms, surrogates, above U+10FFFF, cut short). */
size_t hull_utf8_char(const unsigned char *s, size_t n);
/* True when the n bytes at s (fewer than 4) begin a valid character that
 * they are too short to hold: what an output cut at its limit ends with. */
bool hull_utf8_prefix(const unsigned char *s, size_t n);
/* True when all n bytes are valid UTF-8; else *bad (may be NULL) gets the
 * offset of the first invalid byte. */
bool hull_utf8_valid(const void *s, size_t n, size_t *bad);
/* A malloc'd, NUL-terminated copy with each invalid byte replaced by
 * U+FFFD; *out_len (may be NULL) gets its length. NULL when out of memory. */
char *hull_utf8_fix(const void *s, size_t n, size_t *out_len);

#endif
