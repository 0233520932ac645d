/* Redis URLs and synchronous commands over hiredis.
 *
 * hiredis reports two kinds of failure: the connection (c->err, after which
 * the context is dead) and an error reply (a Redis "-ERR ..." line, after
 * which the connection is fine). Both become a hull_error here; callers
 * that reconnect ask hull_redis_broken() which one it was. */
#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>

#include "service/redis.h"
#include "util/error.h"

#define MAX_ARGS     32
#define DEFAULT_PORT 6379

static int hexval(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* Copy s[0..n) to out, decoding %XX (user names and passwords may hold ':'
 * or '@' only that way). */
static int pct_decode(const char *s, size_t n, char *out, size_t outlen)
{
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (c == '%') {
            int hi = i + 2 < n ? hexval(s[i + 1]) : -1;
            int lo = i + 2 < n ? hexval(s[i + 2]) : -1;
            if (hi < 0 || lo < 0)
                return -1;
            c = (char)(hi * 16 + lo);
            i += 2;
        }
        if (o + 1 >= outlen || c == '\0')
            return -1;
        out[o++] = c;
    }
    out[o] = '\0';
    return 0;
}

static int parse_db(const char *s, const char *url, int *db, hull_error *err)
{
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (*s == '\0' || *end != '\0' || errno || v < 0 || v > INT_MAX)
        return hull_error_set(err, EINVAL, "redis URL %s: database must be a number, not '%s'", url,
                              s);
    *db = (int)v;
    return 0;
}

static int parse_unix(const char *url, const char *rest, struct hull_redis_url *u, hull_error *err)
{
    const char *q = strchr(rest, '?');
    size_t n = q ? (size_t)(q - rest) : strlen(rest);
    if (n == 0 || rest[0] != '/')
        return hull_error_set(err, EINVAL, "redis URL %s: want unix:///absolute/path", url);
    if (n >= sizeof(u->path))
        return hull_error_set(err, ENAMETOOLONG, "redis URL %s: socket path too long", url);
    memcpy(u->path, rest, n);
    u->path[n] = '\0';
    if (q) {
        if (strncmp(q, "?db=", 4) != 0)
            return hull_error_set(err, EINVAL, "redis URL %s: the only query is ?db=N", url);
        return parse_db(q + 4, url, &u->db, err);
    }
    return 0;
}

/* [user[:password]@] */
static int parse_userinfo(const char *url, const char *s, size_t n, struct hull_redis_url *u,
                          hull_error *err)
{
    const char *colon = memchr(s, ':', n);
    size_t ulen = colon ? (size_t)(colon - s) : n;
    if (pct_decode(s, ulen, u->user, sizeof(u->user)) < 0)
        return hull_error_set(err, EINVAL, "redis URL %s: bad user name", url);
    if (colon && pct_decode(colon + 1, n - ulen - 1, u->password, sizeof(u->password)) < 0)
        return hull_error_set(err, EINVAL, "redis URL %s: bad password", url);
    if (!colon) {
        /* redis://secret@host: a lone name is the password (Redis < 6 had no users). */
        snprintf(u->password, sizeof(u->password), "%s", u->user);
        u->user[0] = '\0';
    }
    return 0;
}

/* HOST[:PORT] or [V6ADDR][:PORT], n bytes at s. */
static int parse_hostport(const char *url, const char *s, size_t n, struct hull_redis_url *u,
                          hull_error *err)
{
    const char *host = s, *port = NULL;
    size_t hlen = n, plen = 0;
    if (n > 0 && s[0] == '[') {
        const char *close = memchr(s, ']', n);
        if (close == NULL)
            return hull_error_set(err, EINVAL, "redis URL %s: unclosed '[' in host", url);
        host = s + 1;
        hlen = (size_t)(close - host);
        const char *after = close + 1;
        size_t left = (size_t)(s + n - after);
        if (left > 0 && *after != ':')
            return hull_error_set(err, EINVAL, "redis URL %s: junk after ']'", url);
        if (left > 0) {
            port = after + 1;
            plen = left - 1;
        }
    } else {
        const char *colon = memchr(s, ':', n);
        if (colon) {
            hlen = (size_t)(colon - s);
            port = colon + 1;
            plen = n - hlen - 1;
        }
    }
    if (hlen == 0)
        return hull_error_set(err, EINVAL, "redis URL %s: no host", url);
    if (hlen >= sizeof(u->host))
        return hull_error_set(err, ENAMETOOLONG, "redis URL %s: host too long", url);
    memcpy(u->host, host, hlen);
    u->host[hlen] = '\0';
    u->port = DEFAULT_PORT;
    if (port) {
        char buf[8];
        if (plen == 0 || plen >= sizeof(buf))
            return hull_error_set(err, EINVAL, "redis URL %s: bad port", url);
        memcpy(buf, port, plen);
        buf[plen] = '\0';
        char *end;
        long p = strtol(buf, &end, 10);
        if (*end != '\0' || p < 1 || p > 65535)
            return hull_error_set(err, EINVAL, "redis URL %s: port must be 1-65535, not '%s'", url,
                                  buf);
        u->port = (int)p;
    }
    return 0;
}

static int url_parse(const char *url, const char *shown, struct hull_redis_url *u, hull_error *err);

/* The password of a redis:// URL: [*start, *start + *n), or false. */
static bool password_span(const char *url, size_t *start, size_t *n)
{
    if (url == NULL || strncmp(url, "redis://", 8) != 0)
        return false;
    const char *s = url + 8;
    size_t authority = strcspn(s, "/");
    const char *at = memchr(s, '@', authority);
    if (at == NULL)
        return false;
    /* USER:PASSWORD@, or a lone PASSWORD@ (redis_login's reading). */
    const char *colon = memchr(s, ':', (size_t)(at - s));
    const char *p = colon ? colon + 1 : s;
    *start = (size_t)(p - url);
    *n = (size_t)(at - p);
    return true;
}

void hull_redis_url_shown(const char *url, char *out, size_t len)
{
    size_t start, n;
    if (!password_span(url, &start, &n))
        snprintf(out, len, "%s", url ? url : "");
    else
        snprintf(out, len, "%.*s***%s", (int)start, url, url + start + n);
}

void hull_redis_url_scrub(char *url)
{
    size_t start, n;
    if (password_span(url, &start, &n))
        memset(url + start, '*', n);
}

int hull_redis_url_parse(const char *url, struct hull_redis_url *u, hull_error *err)
{
    char shown[512];
    hull_redis_url_shown(url, shown, sizeof(shown));
    return url_parse(url, shown, u, err);
}

/* url parsed into u; errors name it as shown. */
static int url_parse(const char *url, const char *shown, struct hull_redis_url *u, hull_error *err)
{
    memset(u, 0, sizeof(*u));
    if (url == NULL || *url == '\0')
        return hull_error_set(err, EINVAL, "redis URL: empty");
    if (strncmp(url, "unix://", 7) == 0)
        return parse_unix(shown, url + 7, u, err);
    if (strncmp(url, "rediss://", 9) == 0)
        return hull_error_set(err, ENOTSUP, "redis URL %s: TLS (rediss://) is not supported",
                              shown);
    if (strncmp(url, "redis://", 8) != 0)
        return hull_error_set(err, EINVAL, "redis URL %s: must start with redis:// or unix://",
                              shown);
    const char *s = url + 8;
    const char *slash = strchr(s, '/');
    size_t authority = slash ? (size_t)(slash - s) : strlen(s);
    const char *at = memchr(s, '@', authority);
    if (at) {
        if (parse_userinfo(shown, s, (size_t)(at - s), u, err) < 0)
            return -1;
        authority -= (size_t)(at + 1 - s);
        s = at + 1;
    }
    if (parse_hostport(shown, s, authority, u, err) < 0)
        return -1;
    if (slash && slash[1] != '\0')
        return parse_db(slash + 1, shown, &u->db, err);
    return 0;
}

static struct timeval ms_tv(unsigned ms)
{
    return (struct timeval){.tv_sec = ms / 1000, .tv_usec = (ms % 1000) * 1000};
}

/* AUTH and SELECT as the URL asks; 0, or -1 with the server's answer. */
static int redis_login(redisContext *c, const struct hull_redis_url *u, hull_error *err)
{
    if (u->password[0]) {
        cleanup_reply redisReply *r =
            u->user[0] ? hull_redis_cmd(c, err, "AUTH", u->user, u->password, NULL)
                       : hull_redis_cmd(c, err, "AUTH", u->password, NULL);
        if (r == NULL)
            return -1;
    }
    if (u->db) {
        char db[16];
        snprintf(db, sizeof(db), "%d", u->db);
        cleanup_reply redisReply *r = hull_redis_cmd(c, err, "SELECT", db, NULL);
        if (r == NULL)
            return -1;
    }
    return 0;
}

redisContext *hull_redis_connect(const char *url, unsigned timeout_ms, hull_error *err)
{
    struct hull_redis_url u;
    /* Its messages reach logs and API clients (a queue's 503): never the
     * password. */
    char shown[512];
    hull_redis_url_shown(url, shown, sizeof(shown));
    if (url_parse(url, shown, &u, err) < 0)
        return NULL;
    struct timeval tv = ms_tv(timeout_ms ? timeout_ms : 5000);
    redisContext *c = u.path[0] ? redisConnectUnixWithTimeout(u.path, tv)
                                : redisConnectWithTimeout(u.host, u.port, tv);
    if (c == NULL) {
        hull_error_set(err, ENOMEM, "redis %s: out of memory", shown);
        return NULL;
    }
    if (c->err) {
        /* hiredis keeps errno for I/O errors; a name lookup failure has none. */
        hull_error_set(err, c->err == REDIS_ERR_IO ? errno : ECONNREFUSED, "redis %s: %s", shown,
                       c->errstr);
        redisFree(c);
        return NULL;
    }
    /* A blocking command (BLMOVE) must be allowed to block: 0 = no bound. */
    if (timeout_ms)
        redisSetTimeout(c, tv);
    else
        redisSetTimeout(c, (struct timeval){0, 0});
    if (!u.path[0])
        redisEnableKeepAlive(c);
    if (redis_login(c, &u, err) < 0) {
        hull_error_prefix(err, "redis %s", shown);
        redisFree(c);
        return NULL;
    }
    return c;
}

void hull_redis_close(redisContext *c)
{
    if (c)
        redisFree(c);
}

bool hull_redis_broken(const redisContext *c)
{
    return c == NULL || c->err != 0;
}

redisContext *hull_redis_ensure(redisContext **c, const char *url, unsigned timeout_ms,
                                hull_error *err)
{
    if (*c && hull_redis_broken(*c)) {
        hull_redis_close(*c);
        *c = NULL;
    }
    if (*c == NULL)
        *c = hull_redis_connect(url, timeout_ms, err);
    return *c;
}

/* The reply, or NULL with *err set for a dead connection or an error reply. */
static redisReply *check_reply(redisContext *c, redisReply *r, const char *cmd, hull_error *err)
{
    if (r == NULL) {
        int code = c->err == REDIS_ERR_IO ? errno : c->err == REDIS_ERR_EOF ? ECONNRESET : EIO;
        hull_error_set(err, code ? code : EIO, "redis %s: %s", cmd,
                       c->errstr[0] ? c->errstr : "connection lost");
        return NULL;
    }
    if (r->type == REDIS_REPLY_ERROR) {
        hull_error_set(err, EPROTO, "redis %s: %s", cmd, r->str);
        freeReplyObject(r);
        return NULL;
    }
    return r;
}

static int collect(const char **argv, const char *arg0, va_list ap)
{
    int n = 0;
    for (const char *a = arg0; a != NULL; a = va_arg(ap, const char *)) {
        if (n == MAX_ARGS)
            return -1;
        argv[n++] = a;
    }
    return n;
}

redisReply *hull_redis_cmdv(redisContext *c, hull_error *err, int argc, const char **argv)
{
    size_t lens[MAX_ARGS];
    if (argc > MAX_ARGS) {
        hull_error_set(err, E2BIG, "redis %s: too many arguments", argv[0]);
        return NULL;
    }
    for (int i = 0; i < argc; i++)
        lens[i] = strlen(argv[i]);
    redisReply *r = redisCommandArgv(c, argc, argv, lens);
    return check_reply(c, r, argv[0], err);
}

redisReply *hull_redis_cmd(redisContext *c, hull_error *err, const char *arg0, ...)
{
    const char *argv[MAX_ARGS];
    va_list ap;
    va_start(ap, arg0);
    int n = collect(argv, arg0, ap);
    va_end(ap);
    if (n < 0) {
        hull_error_set(err, E2BIG, "redis %s: too many arguments", arg0);
        return NULL;
    }
    return hull_redis_cmdv(c, err, n, argv);
}

int hull_redis_appendv(redisContext *c, hull_error *err, int argc, const char **argv)
{
    size_t lens[MAX_ARGS];
    if (argc > MAX_ARGS)
        return hull_error_set(err, E2BIG, "redis %s: too many arguments", argv[0]);
    for (int i = 0; i < argc; i++)
        lens[i] = strlen(argv[i]);
    if (redisAppendCommandArgv(c, argc, argv, lens) != REDIS_OK)
        return hull_error_set(err, ENOMEM, "redis %s: %s", argv[0], c->errstr);
    return 0;
}

int hull_redis_append(redisContext *c, hull_error *err, const char *arg0, ...)
{
    const char *argv[MAX_ARGS];
    va_list ap;
    va_start(ap, arg0);
    int n = collect(argv, arg0, ap);
    va_end(ap);
    if (n < 0)
        return hull_error_set(err, E2BIG, "redis %s: too many arguments", arg0);
    return hull_redis_appendv(c, err, n, argv);
}

redisReply *hull_redis_reply(redisContext *c, hull_error *err)
{
    void *r = NULL;
    if (redisGetReply(c, &r) != REDIS_OK)
        r = NULL;
    return check_reply(c, r, "reply", err);
}

const char *hull_redis_str(const redisReply *r)
{
    if (r && (r->type == REDIS_REPLY_STRING || r->type == REDIS_REPLY_STATUS))
        return r->str;
    return NULL;
}

long long hull_redis_int(const redisReply *r, long long dflt)
{
    if (r == NULL)
        return dflt;
    if (r->type == REDIS_REPLY_INTEGER)
        return r->integer;
    if (r->type == REDIS_REPLY_STRING) {
        char *end;
        long long v = strtoll(r->str, &end, 10);
        if (end != r->str && *end == '\0')
            return v;
    }
    return dflt;
}
