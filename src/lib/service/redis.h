/* A thin layer over hiredis's synchronous API: Redis URLs, connecting
 * (with AUTH and SELECT), and commands given as strings whose failures come
 * back as hull_errors. One connection belongs to one thread (or one
 * process after fork: a child opens its own). */
#ifndef HULL_SERVICE_REDIS_H
#define HULL_SERVICE_REDIS_H

#include <hiredis/hiredis.h>
#include <stdbool.h>
#include <stddef.h>

#include "hull.h"

struct hull_redis_url {
    char host[256]; /* host name or address; empty for a unix socket */
    int port;
    char path[108]; /* unix socket path, or empty */
    char password[256];
    char user[128];
    int db;
};

/* redis://[[USER]:PASSWORD@]HOST[:PORT][/DB] or unix://PATH[?db=N]; IPv6
 * hosts in brackets. Errors say what part is wrong. */
int hull_redis_url_parse(const char *url, struct hull_redis_url *u, hull_error *err);

/* url as it may be shown (logs, error messages, answers to API clients):
 * a password in it replaced by "***" ("redis://USER:***@HOST"). */
void hull_redis_url_shown(const char *url, char *out, size_t len);
/* Overwrite the password of url in place with '*' (the same length), so
 * that a process's /proc/PID/cmdline does not show it to other users. */
void hull_redis_url_scrub(char *url);

/* Connect, authenticate, select the database. timeout_ms bounds the connect
 * and every later reply (0: no bound, for blocking commands). */
redisContext *hull_redis_connect(const char *url, unsigned timeout_ms, hull_error *err);
void hull_redis_close(redisContext *c);
static inline void hull_redis_closep(redisContext **c)
{
    hull_redis_close(*c);
    *c = NULL;
}
/* The connection is closed when the variable goes out of scope. */
#define cleanup_redis __attribute__((cleanup(hull_redis_closep)))
static inline void hull_redis_reply_freep(redisReply **r)
{
    if (*r != NULL)
        freeReplyObject(*r);
    *r = NULL;
}
/* The reply is freed when the variable goes out of scope. */
#define cleanup_reply __attribute__((cleanup(hull_redis_reply_freep)))

/* Run one command; the arguments are NUL-terminated strings ending with
 * NULL. Returns the reply (caller frees with freeReplyObject), or NULL with
 * *err set on a broken connection or an error reply. */
redisReply *hull_redis_cmd(redisContext *c, hull_error *err, const char *arg0, ...)
    __attribute__((sentinel));
/* The same with a vector. */
redisReply *hull_redis_cmdv(redisContext *c, hull_error *err, int argc, const char **argv);

/* Pipelining: queue commands, then read their replies in order. */
int hull_redis_append(redisContext *c, hull_error *err, const char *arg0, ...)
    __attribute__((sentinel));
int hull_redis_appendv(redisContext *c, hull_error *err, int argc, const char **argv);
redisReply *hull_redis_reply(redisContext *c, hull_error *err);

/* A broken connection cannot be used again (as opposed to an error reply). */
bool hull_redis_broken(const redisContext *c);
/* *c usable again: a broken one closed, a missing one made (url,
 * timeout_ms as hull_redis_connect); *c, or NULL with err. */
redisContext *hull_redis_ensure(redisContext **c, const char *url, unsigned timeout_ms,
                                hull_error *err);

/* Reply helpers: NULL / -1 when the reply is not of that type. */
const char *hull_redis_str(const redisReply *r);
long long hull_redis_int(const redisReply *r, long long dflt);

#endif
