/* hulld's API helpers (response.c): what every handler (runs.c,
 * sandboxes.c, http.c's own endpoints) shares: the answer, the request as a
 * handler sees it, the uniform error body, and the checks and ids common to
 * runs and sandboxes. Handlers depend on this, never on each other or on
 * http.c. */
#ifndef HULLD_RESPONSE_H
#define HULLD_RESPONSE_H

#include <json-c/json.h>
#include <stdbool.h>
#include <stddef.h>

#include "hull.h"
#include "service/store.h"

/* A body made while it is sent (chunked), in the connection's thread. */
struct resp_stream {
    /* Up to max bytes into buf: their count, 0 at its end, -1 to cut the
     * connection (the client went, or a failure after the status). */
    long (*read)(struct resp_stream *st, char *buf, size_t max);
    void (*free)(struct resp_stream *st);
};

/* An API answer: JSON or raw bytes, or a stream, or an error. */
struct resp {
    int status;
    json_object *body; /* JSON body (owned) */
    char *raw;         /* or raw bytes (owned) */
    size_t raw_len;
    const char *content_type;   /* for raw and stream */
    struct resp_stream *stream; /* or this (owned) */
    int retry_after;            /* seconds, 0 = no header */
    const char *allow;          /* for 405 */
    char target[64];            /* run/sandbox id, for the audit log */
    char timing[48];            /* Server-Timing header, or "" */
    char grants[64];            /* grants the request used, for the audit log, or "" */
    const char *code;           /* error code, NULL on success */
    void *mhd;                  /* or a ready MHD_Response (a streamed file), sent as is */
    /* Work that the answer need not wait for (a run's record), done by the
     * after-answer thread while the answer is sent (after.c). */
    void (*after)(void *arg);
    void *after_arg;
};
/* Fill r with the uniform error body. field may be NULL. */
void resp_error(struct resp *r, int status, const char *code, const char *field, const char *fmt,
                ...) __attribute__((format(printf, 5, 6)));
/* A library error (freed): EINVAL-like -> 400 with the field path taken
 * from the message ("limits.memory: ..."), ENOENT 404, ENOTSUP 501, ... */
/* 503 shutting_down with Retry-After: what every request hulld refuses
 * because it is draining gets (new ones, and waits and streams it ends),
 * so a client retries later, against the next hulld or another node. */
#define HULLD_DRAIN_RETRY_S 5
void resp_shutting_down(struct resp *r, const char *msg);
/* ESHUTDOWN is resp_shutting_down. */
void resp_from_error(struct resp *r, hull_error *err);
void resp_json(struct resp *r, int status, json_object *body);
/* A store error (freed) as the answer: logged; 503 for a busy or full
 * store, 404 for ENOENT, 500 for anything else. */
void resp_store_error(struct resp *r, hull_error *err);

struct caller {
    struct hull_token_info tok;
    bool admin;
    const char *tenant; /* NULL for an admin: every tenant */
};

/* One API request, as the handlers see it (made by http.c). */
struct request {
    const char *method;
    const char *path;
    const char *body;
    size_t len;
    const struct caller *caller;
    void *conn;    /* the connection, for query */
    int client_fd; /* its socket: for a stream, to see the client go */
    /* A query parameter of conn, or NULL (http.c's, on the MHD
     * connection). */
    const char *(*query)(void *conn, const char *key);
    /* Every query parameter of conn in turn, until fn returns false. */
    void (*query_each)(void *conn, bool (*fn)(void *cls, const char *key, const char *value),
                       void *cls);
    /* A request header of conn, or NULL. */
    const char *(*header)(void *conn, const char *key);
};
/* A query parameter, or NULL. */
const char *request_query(const struct request *rq, const char *key);

/* Validate a run request (or exec/sandbox request) in full, so bad input
 * is a 400 now, never a failed run later. Every isolation passes here: a
 * one-shot run at microvm is served; a long-lived microvm sandbox is
 * refused 501 when the session is made (ENOTSUP). 0 or -1 with r filled. */
int policy_check(const char *text, struct resp *r);
/* ceiling.c: hulld --max-limit NAME=VALUE, and a parsed request held to
 * the ceilings (EINVAL naming the limit; policy_check applies them). */
int ceiling_add(const char *arg, hull_error *err);
int ceiling_check(const struct hull_policy *p, hull_error *err);
/* A new run or sandbox id: prefix ('r' or 's') + "-" + 16 random hex
 * digits. */
void daemon_new_id(char *buf, size_t len, char prefix);

#endif
