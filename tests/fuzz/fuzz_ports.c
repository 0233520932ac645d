/* The first request's head on a sandbox's port (src/daemon/sbx_ports_head.c)
 * to the proxy's token taking, as port_read_head hands it over (cut at its
 * first blank line), and the token compare. Besides crashes, leaks and UB:
 * a head is refused only when a line does not end in CRLF, it holds a NUL,
 * or a header line is folded or has blanks before its colon; the head passed on never holds the
 * token's header, is never longer than what came, still ends in its blank line; a token found lies
 * inside the head and is not empty. */
#include <string.h>
#include <strings.h>

#include "../../src/daemon/ports.h"
#include "fuzz.h"

/* A header line [p, e) a server could read otherwise than the proxy: a
 * continuation (it starts with a blank), or blanks before its colon (a
 * line without one is no header to misread). */
static bool ambiguous_line(const char *p, const char *e)
{
    if (*p == ' ' || *p == '\t')
        return true;
    const char *colon = memchr(p, ':', (size_t)(e - p));
    for (const char *c = p; colon && c < colon; c++)
        if (*c == ' ' || *c == '\t')
            return true;
    return false;
}

/* A NUL, a CR not before an LF, an LF not after a CR; or, after the
 * request line, a header line that is ambiguous. */
static bool malformed(const char *h, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (h[i] == '\0' || (h[i] == '\r' && (i + 1 == n || h[i + 1] != '\n')) ||
            (h[i] == '\n' && (i == 0 || h[i - 1] != '\r')))
            return true;
    const char *p = memmem(h, n, "\r\n", 2);
    for (p = p ? p + 2 : h + n; p < h + n;) {
        const char *e = memmem(p, (size_t)(h + n - p), "\r\n", 2);
        if (e == NULL)
            break;
        if (e > p && ambiguous_line(p, e))
            return true;
        p = e + 2;
    }
    return false;
}

static void check_out(const char *out, size_t n)
{
    FUZZ_CHECK(n >= 4 && memcmp(out + n - 4, "\r\n\r\n", 4) == 0);
    const char *line = memchr(out, '\n', n);
    size_t k = strlen(PORT_TOKEN_HEADER);
    while (line && (size_t)(out + n - line) > k + 1) {
        line++;
        /* A header line naming the token is never passed on. */
        FUZZ_CHECK(!(strncasecmp(line, PORT_TOKEN_HEADER, k) == 0 && line[k] == ':'));
        line = memchr(line, '\n', (size_t)(out + n - line));
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > PORT_HEAD_MAX)
        return 0;
    char *head = malloc(size + 5);
    FUZZ_CHECK(head != NULL);
    memcpy(head, data, size);
    char *end = memmem(head, size, "\r\n\r\n", 4);
    size_t len = end ? (size_t)(end - head) + 4 : size + 4;
    if (end == NULL)
        memcpy(head + size, "\r\n\r\n", 4);
    const char *tok = NULL;
    size_t tok_len = 0, out_len = 0;
    char *out = NULL;
    int rc = port_take_token(head, len, &tok, &tok_len, &out, &out_len);
    FUZZ_CHECK(rc == 0 || rc == -2);
    /* Refused exactly when it says, and then nothing made. */
    FUZZ_CHECK((rc == -2) == malformed(head, len));
    if (rc == -2) {
        FUZZ_CHECK(out == NULL && tok == NULL);
        free(head);
        return 0;
    }
    FUZZ_CHECK(out_len <= len);
    check_out(out, out_len);
    if (tok) {
        FUZZ_CHECK(tok >= head && tok + tok_len <= head + len && tok_len > 0);
        char want[PORT_TOKEN_LEN + 1];
        memset(want, 'a', PORT_TOKEN_LEN);
        want[PORT_TOKEN_LEN] = '\0';
        bool same = tok_len == PORT_TOKEN_LEN && memcmp(tok, want, PORT_TOKEN_LEN) == 0;
        FUZZ_CHECK(port_token_ok(want, tok, tok_len) == same);
    }
    free(out);
    free(head);
    return 0;
}
