/* hull_error: one error value threaded through every libhull call.
 *
 * A failing function sets *err (errno + message) and returns -1. Each caller
 * that adds meaning prefixes its own context, so the final message reads from
 * the outermost operation to the root cause:
 *
 *     create foo: config.json: process.args: must be a non-empty array
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hull.h"
#include "util/error.h"

static char *vformat(const char *fmt, va_list ap)
{
    char *s = NULL;
    if (vasprintf(&s, fmt, ap) < 0)
        return NULL;
    return s;
}

static int error_store(hull_error *err, int code, char *msg)
{
    if (err == NULL) {
        free(msg);
        return -1;
    }
    if (*err == NULL) {
        *err = calloc(1, sizeof(**err));
        if (*err == NULL) {
            free(msg);
            return -1;
        }
    } else {
        free((*err)->msg);
    }
    (*err)->code = code;
    (*err)->msg = msg ? msg : strdup("out of memory");
    return -1;
}

int hull_error_set(hull_error *err, int code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    char *msg = vformat(fmt, ap);
    va_end(ap);
    return error_store(err, code, msg);
}

int hull_error_errno(hull_error *err, const char *fmt, ...)
{
    int saved = errno;
    va_list ap;
    va_start(ap, fmt);
    char *what = vformat(fmt, ap);
    va_end(ap);

    char *msg = what;
    if (what != NULL) {
        if (asprintf(&msg, "%s: %s", what, strerror(saved)) < 0)
            msg = NULL;
        free(what);
    }
    error_store(err, saved, msg);
    errno = saved;
    return -1;
}

int hull_error_prefix(hull_error *err, const char *fmt, ...)
{
    if (err == NULL || *err == NULL)
        return -1;
    va_list ap;
    va_start(ap, fmt);
    char *ctx = vformat(fmt, ap);
    va_end(ap);
    if (ctx == NULL)
        return -1;

    char *msg = NULL;
    if (asprintf(&msg, "%s: %s", ctx, (*err)->msg) >= 0) {
        free((*err)->msg);
        (*err)->msg = msg;
    }
    free(ctx);
    return -1;
}

/* A word (bytes between spaces) longer than this is shown by its ends. */
#define ELIDE_OVER 4096
#define ELIDE_HEAD 64
#define ELIDE_TAIL 24

void hull_error_print(FILE *f, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    char *line = vformat(fmt, ap);
    va_end(ap);
    if (line == NULL) {
        fputs("hull: out of memory\n", f);
        return;
    }
    /* Elided in place: the result is never longer than the line. */
    char *out = line;
    for (const char *p = line; *p;) {
        size_t n = strcspn(p, " ");
        if (n > ELIDE_OVER) {
            size_t head = ELIDE_HEAD, tail = n - ELIDE_TAIL;
            while (head > 0 && ((unsigned char)p[head] & 0xC0) == 0x80)
                head--; /* not inside a UTF-8 character */
            while (tail < n && ((unsigned char)p[tail] & 0xC0) == 0x80)
                tail++;
            memmove(out, p, head);
            memcpy(out + head, "...", 3);
            memmove(out + head + 3, p + tail, n - tail);
            out += head + 3 + (n - tail);
        } else {
            memmove(out, p, n);
            out += n;
        }
        p += n;
        if (*p == ' ')
            *out++ = *p++;
    }
    *out = '\0';
    fprintf(f, "%s\n", line);
    free(line);
}

void hull_error_free(hull_error *err)
{
    if (err == NULL || *err == NULL)
        return;
    free((*err)->msg);
    free(*err);
    *err = NULL;
}

const char *hull_error_msg(hull_error err)
{
    return err && err->msg ? err->msg : "unknown error";
}

int hull_error_code(hull_error err)
{
    return err ? err->code : 0;
}

int hull_cmd_status(int code)
{
    return code == HULL_ENOCMD ? 127 : code == HULL_ECMDEXEC || code == HULL_ECWD ? 126 : 0;
}
