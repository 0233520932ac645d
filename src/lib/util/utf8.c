#include <stdlib.h>
#include <string.h>

#include "util/utf8.h"

size_t hull_utf8_char(const unsigned char *s, size_t n)
{
    if (n == 0)
        return 0;
    unsigned char c = s[0];
    if (c < 0x80)
        return 1;
    size_t len;
    unsigned char lo = 0x80, hi = 0xbf; /* the allowed second byte */
    if (c >= 0xc2 && c <= 0xdf)
        len = 2;
    else if (c == 0xe0)
        len = 3, lo = 0xa0;
    else if (c == 0xed)
        len = 3, hi = 0x9f; /* no surrogates */
    else if (c >= 0xe1 && c <= 0xef)
        len = 3;
    else if (c == 0xf0)
        len = 4, lo = 0x90;
    else if (c >= 0xf1 && c <= 0xf3)
        len = 4;
    else if (c == 0xf4)
        len = 4, hi = 0x8f; /* nothing above U+10FFFF */
    else
        return 0;
    if (n < len)
        return 0;
    if (s[1] < lo || s[1] > hi)
        return 0;
    for (size_t k = 2; k < len; k++)
        if ((s[k] & 0xc0) != 0x80)
            return 0;
    return len;
}

bool hull_utf8_prefix(const unsigned char *s, size_t n)
{
    if (n == 0 || n >= 4)
        return false;
    /* Complete it with continuation bytes: the allowed second bytes of
     * every lead byte include one of these three. */
    static const unsigned char pads[] = {0x80, 0x90, 0xa0};
    for (size_t p = 0; p < sizeof(pads); p++) {
        unsigned char buf[4];
        memcpy(buf, s, n);
        memset(buf + n, pads[p], 4 - n);
        if (hull_utf8_char(buf, 4) > n)
            return true;
    }
    return false;
}

bool hull_utf8_valid(const void *s, size_t n, size_t *bad)
{
    const unsigned char *p = s;
    for (size_t i = 0; i < n;) {
        size_t k = hull_utf8_char(p + i, n - i);
        if (k == 0) {
            if (bad)
                *bad = i;
            return false;
        }
        i += k;
    }
    return true;
}

char *hull_utf8_fix(const void *s, size_t n, size_t *out_len)
{
    static const char repl[] = "\xef\xbf\xbd"; /* U+FFFD */
    const unsigned char *p = s;
    /* At most three bytes out for each byte in. */
    if (n > (((size_t)-1) - 1) / 3)
        return NULL;
    char *out = malloc(3 * n + 1);
    if (out == NULL)
        return NULL;
    size_t o = 0;
    for (size_t i = 0; i < n;) {
        size_t k = hull_utf8_char(p + i, n - i);
        if (k == 0) {
            memcpy(out + o, repl, 3);
            o += 3;
            i++;
        } else {
            memcpy(out + o, p + i, k);
            o += k;
            i += k;
        }
    }
    out[o] = '\0';
    if (out_len)
        *out_len = o;
    return out;
}
