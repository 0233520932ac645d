/* The port proxy's HTTP (sbx_ports.c): the first request's head read and
 * its access token taken out, the token compared, the proxy's own
 * answers. Only the first request of a connection is looked at; what
 * follows passes as bytes. */
#include <errno.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>

#include "ports.h"
#include "util/json.h"
#include "util/log.h"

bool port_token_ok(const char *want, const char *got, size_t len)
{
    /* Constant time over the token's fixed length: how far a guess
     * matches is not measurable. */
    unsigned char d = len != PORT_TOKEN_LEN;
    for (size_t i = 0; i < PORT_TOKEN_LEN; i++)
        d |= (unsigned char)(want[i] ^ (i < len ? got[i] : 0));
    return d == 0;
}

/* An answer of the proxy's own, best effort (the connection then closes). */
void port_say(int fd, int status, const char *reason, const char *code, const char *fmt, ...)
{
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    json_object *o = json_object_new_object(), *er = json_object_new_object();
    json_object_object_add(er, "code", json_object_new_string(code));
    json_object_object_add(er, "message", json_object_new_string(msg));
    json_object_object_add(o, "error", er);
    const char *body = json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN);
    char buf[1024];
    int n = snprintf(buf, sizeof(buf),
                     "HTTP/1.1 %d %s\r\nContent-Type: application/json\r\nContent-Length: "
                     "%zu\r\nConnection: close\r\n\r\n%s\n",
                     status, reason, strlen(body) + 1, body);
    json_object_put(o);
    /* The client may be gone or slow: it loses only this answer. */
    if (n > 0 && send(fd, buf, (size_t)n < sizeof(buf) ? (size_t)n : sizeof(buf) - 1,
                      MSG_NOSIGNAL | MSG_DONTWAIT) < 0)
        hull_debug("port proxy: answer %d: %s", status, strerror(errno));
}

/* Wait for fd (events) or the port's end: 1 ready, 0 timeout or stopped. */
int port_wait_fd(int fd, short events, int stop, int timeout_ms)
{
    struct pollfd p[2] = {{.fd = fd, .events = events}, {.fd = stop, .events = POLLIN}};
    int n = poll(p, 2, timeout_ms);
    return n > 0 && p[1].revents == 0 ? 1 : 0;
}

/* The first request's head, up to its blank line, into buf: its length
 * (*have: all bytes read, which may run into the body), 0 when the client
 * went or was too slow, -1 when the head is over PORT_HEAD_MAX. */
size_t port_read_head(int fd, int stop, int timeout_ms, char *buf, size_t *have)
{
    *have = 0;
    for (;;) {
        char *end = memmem(buf, *have, "\r\n\r\n", 4);
        if (end)
            return (size_t)(end - buf) + 4;
        if (*have >= PORT_HEAD_MAX)
            return (size_t)-1;
        if (port_wait_fd(fd, POLLIN, stop, timeout_ms) <= 0)
            return 0;
        ssize_t n = recv(fd, buf + *have, PORT_HEAD_MAX - *have, 0);
        if (n <= 0 && !(n < 0 && (errno == EAGAIN || errno == EINTR)))
            return 0;
        if (n > 0)
            *have += (size_t)n;
    }
}

/* A header line [p, e) named PORT_TOKEN_HEADER: its value trimmed, else NULL. */
static const char *token_header(const char *p, const char *e, size_t *len)
{
    size_t k = sizeof(PORT_TOKEN_HEADER) - 1;
    if ((size_t)(e - p) <= k || strncasecmp(p, PORT_TOKEN_HEADER, k) != 0 || p[k] != ':')
        return NULL;
    const char *v = p + k + 1;
    while (v < e && (*v == ' ' || *v == '\t'))
        v++;
    while (e > v && (e[-1] == ' ' || e[-1] == '\t'))
        e--;
    *len = (size_t)(e - v);
    return v;
}

/* A header line [p, e) that a server may read as a token header while
 * token_header does not: a continuation (obs-fold, which some servers join
 * to the line before) or a name with blanks before its colon (which some
 * trim). RFC 9112 has a server refuse both; so does the proxy. */
static bool folded_or_spaced(const char *p, const char *e)
{
    if (*p == ' ' || *p == '\t')
        return true;
    const char *colon = memchr(p, ':', (size_t)(e - p));
    return colon && (memchr(p, ' ', (size_t)(colon - p)) || memchr(p, '\t', (size_t)(colon - p)));
}

/* The token the head shows (the first PORT_TOKEN_HEADER, else ?token=), and
 * the head without any of them in *out (malloc'd, *out_len): the sandbox
 * never sees the token. *tok NULL: none. */
int port_take_token(const char *head, size_t len, const char **tok, size_t *tok_len, char **out,
                    size_t *out_len)
{
    *tok = NULL;
    *tok_len = 0;
    *out = NULL;
    *out_len = 0;
    /* Lines end in CRLF only: a bare CR or LF, or a NUL, could split a
     * line where the sandbox's server would and this would not (and pass
     * the token on). */
    for (size_t i = 0; i < len; i++)
        if (head[i] == '\0' || (head[i] == '\r' && (i + 1 == len || head[i + 1] != '\n')) ||
            (head[i] == '\n' && (i == 0 || head[i - 1] != '\r')))
            return -2;
    char *o = malloc(len + 1);
    if (o == NULL)
        return -1;
    size_t w = 0;
    const char *line_end = memmem(head, len, "\r\n", 2);
    const char *sp1 = memchr(head, ' ', (size_t)(line_end - head));
    const char *sp2 = sp1 ? memchr(sp1 + 1, ' ', (size_t)(line_end - sp1 - 1)) : NULL;
    const char *q = sp2 ? memchr(sp1, '?', (size_t)(sp2 - sp1)) : NULL;
    const char *qtok = NULL;
    size_t qtok_len = 0;
    /* The request line, the token parameter left out of its query. */
    if (q == NULL) {
        memcpy(o, head, (size_t)(line_end - head) + 2);
        w = (size_t)(line_end - head) + 2;
    } else {
        memcpy(o, head, (size_t)(q - head));
        w = (size_t)(q - head);
        char sep = '?';
        for (const char *a = q + 1; a < sp2;) {
            const char *b = memchr(a, '&', (size_t)(sp2 - a));
            if (b == NULL)
                b = sp2;
            if ((size_t)(b - a) >= 6 && strncmp(a, "token=", 6) == 0) {
                if (qtok == NULL && b - a > 6) {
                    qtok = a + 6;
                    qtok_len = (size_t)(b - a - 6);
                }
            } else if (b > a) {
                o[w++] = sep;
                memcpy(o + w, a, (size_t)(b - a));
                w += (size_t)(b - a);
                sep = '&';
            }
            a = b < sp2 ? b + 1 : sp2;
        }
        memcpy(o + w, sp2, (size_t)(line_end - sp2) + 2);
        w += (size_t)(line_end - sp2) + 2;
    }
    /* The headers (and the blank line), without the token's. */
    for (const char *p = line_end + 2; p < head + len;) {
        const char *e = memmem(p, (size_t)(head + len - p), "\r\n", 2);
        if (e > p && folded_or_spaced(p, e)) {
            free(o);
            *tok = NULL; /* refused: nothing taken from it either */
            *tok_len = 0;
            return -2;
        }
        size_t vl = 0;
        const char *v = token_header(p, e, &vl);
        if (v && vl && *tok == NULL) {
            *tok = v;
            *tok_len = vl;
        }
        if (v == NULL) {
            memcpy(o + w, p, (size_t)(e + 2 - p));
            w += (size_t)(e + 2 - p);
        }
        p = e + 2;
    }
    if (*tok == NULL) {
        *tok = qtok;
        *tok_len = qtok_len;
    }
    *out = o;
    *out_len = w;
    return 0;
}
