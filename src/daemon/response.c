/* hulld's API helpers (response.h): the uniform error body, a library or
 * store error as an answer, query parameters, the policy check and the ids
 * every handler shares. Nothing here knows about HTTP. */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/random.h>

#include "response.h"
#include "util/error.h"
#include "util/log.h"

void resp_json(struct resp *r, int status, json_object *body)
{
    json_object_put(r->body);
    r->status = status;
    r->body = body;
}

void resp_error(struct resp *r, int status, const char *code, const char *field, const char *fmt,
                ...)
{
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    json_object *e = json_object_new_object();
    json_object_object_add(e, "code", json_object_new_string(code));
    json_object_object_add(e, "message", json_object_new_string(msg));
    if (field)
        json_object_object_add(e, "field", json_object_new_string(field));
    json_object *o = json_object_new_object();
    json_object_object_add(o, "error", e);
    resp_json(r, status, o);
    r->code = code;
}

/* "limits.memory: ..." -> "limits.memory": the JSON path libhull's
 * validation errors start with. */
static bool field_of(const char *msg, char *out, size_t len)
{
    size_t n = strcspn(msg, ":");
    if (msg[n] != ':' || n == 0 || n >= len)
        return false;
    /* A path starts with a plain name; past its first '.', a key may hold
     * anything but a space ("env.A_B", "files./tmp/x"). */
    bool in_key = false;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)msg[i];
        bool plain = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                     c == '_' || c == '.' || c == '[' || c == ']';
        if (!plain && !(in_key && c > ' ' && c != 0x7f))
            return false;
        in_key = in_key || c == '.';
    }
    memcpy(out, msg, n);
    out[n] = '\0';
    return true;
}

void resp_shutting_down(struct resp *r, const char *msg)
{
    resp_error(r, 503, "shutting_down", NULL, "%s", msg);
    r->retry_after = HULLD_DRAIN_RETRY_S;
}

void resp_from_error(struct resp *r, hull_error *err)
{
    const char *msg = hull_error_msg(*err);
    char field[128];
    switch (hull_error_code(*err)) {
    case EINVAL:
    case ERANGE:
    case E2BIG:
    case EXDEV:
    case ELOOP:
    case ENAMETOOLONG:
    case EISDIR:
    case ENOTDIR:
        resp_error(r, 400, "invalid_request", field_of(msg, field, sizeof(field)) ? field : NULL,
                   "%s", msg);
        break;
    case ENOENT:
        resp_error(r, 404, "not_found", NULL, "%s", msg);
        break;
    case HULL_ENOCMD: /* the request's program cannot be started: its mistake */
    case HULL_ECMDEXEC:
        resp_error(r, 400, "invalid_request", "cmd", "%s", msg);
        break;
    case HULL_ECWD:
        resp_error(r, 400, "invalid_request", "workdir", "%s", msg);
        break;
    case EBUSY:
    case ESRCH:
        resp_error(r, 409, "conflict", NULL, "%s", msg);
        break;
    case EFBIG:
    case ENOSPC:
        resp_error(r, 413, "payload_too_large", NULL, "%s", msg);
        break;
    case ENOTSUP:
        resp_error(r, 501, "not_implemented", NULL, "%s", msg);
        break;
    case ESHUTDOWN:
        resp_shutting_down(r, msg);
        break;
    case EKEYREVOKED: /* during a wait: as a request with that token is answered */
        resp_error(r, 401, "unauthorized", NULL, "%s", msg);
        break;
    default:
        resp_error(r, 500, "internal", NULL, "%s", msg);
    }
    hull_error_free(err);
}

void resp_store_error(struct resp *r, hull_error *err)
{
    const char *msg = hull_error_msg(*err);
    if (hull_error_code(*err) != ENOENT) /* not there is an answer, not a fault */
        hull_log(HULL_LOG_ERROR, "%s", msg);
    switch (hull_error_code(*err)) {
    case EBUSY:
    case ENOSPC:
        resp_error(r, 503, "store_unavailable", NULL, "%s", msg);
        r->retry_after = 1;
        break;
    case ENOENT:
        resp_error(r, 404, "not_found", NULL, "%s", msg);
        break;
    default:
        resp_error(r, 500, "internal", NULL, "%s", msg);
    }
    hull_error_free(err);
}

const char *request_query(const struct request *rq, const char *key)
{
    return rq->query ? rq->query(rq->conn, key) : NULL;
}

void daemon_new_id(char *buf, size_t len, char prefix)
{
    unsigned char b[8] = {0};
    if (getrandom(b, sizeof(b), 0) != sizeof(b))
        hull_warn("getrandom: %s", strerror(errno));
    snprintf(buf, len, "%c-%02x%02x%02x%02x%02x%02x%02x%02x", prefix, b[0], b[1], b[2], b[3], b[4],
             b[5], b[6], b[7]);
}

int policy_check(const char *text, struct resp *r)
{
    struct hull_policy p;
    hull_error e = NULL;
    hull_policy_init(&p);
    int ok = hull_policy_from_json(text, strlen(text), &p, &e);
    if (ok == 0)
        ok = ceiling_check(&p, &e);
    hull_policy_free(&p);
    if (ok < 0) {
        resp_from_error(r, &e);
        return -1;
    }
    return 0;
}
