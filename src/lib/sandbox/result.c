/* struct hull_result and its JSON: the one shape every front end prints. */
#include <errno.h>
#include <unistd.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hull.h"
#include "linux/seccomp.h"
#include "sandbox/sandbox.h"
#include "util/json.h"
#include "util/utf8.h"

static const char *const verdicts[] = {
    [HULL_VERDICT_OK] = "ok",
    [HULL_VERDICT_EXIT_NONZERO] = "exit_nonzero",
    [HULL_VERDICT_SIGNALED] = "signaled",
    [HULL_VERDICT_CPU_TIME_LIMIT] = "cpu_time_limit",
    [HULL_VERDICT_WALL_TIME_LIMIT] = "wall_time_limit",
    [HULL_VERDICT_MEMORY_LIMIT] = "memory_limit",
    [HULL_VERDICT_OUTPUT_LIMIT] = "output_limit",
    [HULL_VERDICT_PIDS_LIMIT] = "pids_limit",
    [HULL_VERDICT_INTERNAL_ERROR] = "internal_error",
    [HULL_VERDICT_KILLED] = "killed",
    [HULL_VERDICT_BAD_COMMAND] = "bad_command",
};

bool hull_output_drain(int fd, struct hull_output *out, uint64_t limit, bool *over)
{
    char buf[65536];
    for (;;) {
        ssize_t n = read(fd, buf, sizeof(buf));
        if (n <= 0)
            return n < 0 && (errno == EAGAIN || errno == EINTR);
        size_t keep = out->len < limit ? (size_t)n : 0;
        if (out->len + keep > limit)
            keep = (size_t)(limit - out->len);
        if (keep) {
            char *nd = realloc(out->data, out->len + keep + 1);
            if (nd == NULL)
                return false;
            out->data = nd;
            memcpy(out->data + out->len, buf, keep);
            out->len += keep;
            out->data[out->len] = '\0';
        }
        if (keep < (size_t)n)
            out->truncated = *over = true;
    }
}

const char *hull_copy_status_name(enum hull_copy_status s)
{
    static const char *const names[] = {
        [HULL_COPY_OK] = "ok",
        [HULL_COPY_MISSING] = "missing",
        [HULL_COPY_TRUNCATED] = "truncated",
        [HULL_COPY_REFUSED] = "refused",
        [HULL_COPY_FAILED] = "failed",
    };
    if ((size_t)s < sizeof(names) / sizeof(names[0]) && names[s])
        return names[s];
    return "unknown";
}

const char *hull_verdict_name(enum hull_verdict v)
{
    if ((size_t)v < sizeof(verdicts) / sizeof(verdicts[0]) && verdicts[v])
        return verdicts[v];
    return "unknown";
}

void hull_result_not_started(struct hull_result *r, hull_error *e, const char *id)
{
    int code = hull_error_code(*e);
    const char *msg = hull_error_msg(*e);
    r->verdict = HULL_VERDICT_INTERNAL_ERROR;
    if (hull_cmd_status(code)) {
        r->verdict = HULL_VERDICT_BAD_COMMAND;
        r->exit_code = hull_cmd_status(code);
        /* "VERB ID: " names the container hull made, nothing the caller
         * knows: the caller's mistake is said in the caller's terms. */
        const char *sp = strchr(msg, ' ');
        size_t n = strlen(id);
        if (sp && strncmp(sp + 1, id, n) == 0 && strncmp(sp + 1 + n, ": ", 2) == 0)
            msg = sp + 1 + n + 2;
    }
    free(r->error);
    /* The sandbox's name for process.cwd (--workdir, an image's WorkingDir). */
    if (code == HULL_ECWD && strncmp(msg, "process.cwd", 11) == 0) {
        if (asprintf(&r->error, "workdir%s", msg + 11) < 0)
            r->error = NULL;
    } else {
        r->error = strdup(msg);
    }
    hull_error_free(e);
}

void hull_result_free(struct hull_result *r)
{
    free(r->out.data);
    free(r->err.data);
    for (size_t i = 0; i < r->n_files; i++) {
        free(r->files[i].sandbox);
        free(r->files[i].host);
        free(r->files[i].error);
    }
    free(r->files);
    free(r->error);
    free(r->image);
    free(r->image_digest);
    memset(r, 0, sizeof(*r));
}

/* Strict UTF-8 (RFC 3629: no overlong forms, no surrogates, nothing above
 * U+10FFFF) without NUL, so it can travel as a JSON string as is and every
 * client's decoder accepts it. *text_len is n, or less when the bytes end
 * in the middle of a character (an output cut at its limit). */
static bool is_utf8_text(const unsigned char *s, size_t n, size_t *text_len)
{
    for (size_t i = 0; i < n;) {
        if (s[i] == 0)
            return false;
        size_t len = hull_utf8_char(s + i, n - i);
        if (len == 0) {
            if (!hull_utf8_prefix(s + i, n - i))
                return false;
            *text_len = i; /* cut short: valid so far */
            return true;
        }
        i += len;
    }
    *text_len = n;
    return true;
}

static char *base64(const unsigned char *s, size_t n)
{
    static const char tbl[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    char *out = malloc(4 * ((n + 2) / 3) + 1);
    if (out == NULL)
        return NULL;
    size_t o = 0;
    for (size_t i = 0; i < n; i += 3) {
        unsigned v = (unsigned)s[i] << 16;
        if (i + 1 < n)
            v |= (unsigned)s[i + 1] << 8;
        if (i + 2 < n)
            v |= s[i + 2];
        out[o++] = tbl[(v >> 18) & 63];
        out[o++] = tbl[(v >> 12) & 63];
        out[o++] = i + 1 < n ? tbl[(v >> 6) & 63] : '=';
        out[o++] = i + 2 < n ? tbl[v & 63] : '=';
    }
    out[o] = '\0';
    return out;
}

/* Text as "stdout"; anything else as "stdout_base64", so bytes survive. */
static void add_output(json_object *o, const char *name, const struct hull_output *out)
{
    char key[64];
    const unsigned char *d = (const unsigned char *)(out->data ? out->data : "");
    size_t text_len = 0;
    /* Text cut at the output limit may end inside a character: that part
     * goes (the stream is marked truncated anyway), the rest stays text. */
    if (is_utf8_text(d, out->len, &text_len) && (text_len == out->len || out->truncated)) {
        json_object_object_add(o, name, json_object_new_string_len((const char *)d, (int)text_len));
    } else {
        char *b = base64(d, out->len);
        snprintf(key, sizeof(key), "%s_base64", name);
        json_object_object_add(o, key, json_object_new_string(b ? b : ""));
        free(b);
    }
    snprintf(key, sizeof(key), "%s_truncated", name);
    json_object_object_add(o, key, json_object_new_boolean(out->truncated));
}

char *hull_result_to_json(const struct hull_result *r)
{
    json_object *o = json_object_new_object();
    json_object_object_add(o, "verdict", json_object_new_string(hull_verdict_name(r->verdict)));
    json_object_object_add(o, "exit_code", json_object_new_int(r->exit_code));
    json_object_object_add(o, "signal", json_object_new_int(r->signal));
    json_object_object_add(o, "cpu_time_ms", json_object_new_uint64(r->cpu_time_ms));
    json_object_object_add(o, "wall_time_ms", json_object_new_uint64(r->wall_time_ms));
    json_object_object_add(o, "max_memory_kb", json_object_new_uint64(r->max_memory_kb));
    add_output(o, "stdout", &r->out);
    add_output(o, "stderr", &r->err);
    json_object *files = json_object_new_array();
    for (size_t i = 0; i < r->n_files; i++) {
        const struct hull_copied_file *f = &r->files[i];
        json_object *fo = json_object_new_object();
        json_object_object_add(fo, "sandbox", json_object_new_string(f->sandbox));
        json_object_object_add(fo, "host", json_object_new_string(f->host));
        json_object_object_add(fo, "status",
                               json_object_new_string(hull_copy_status_name(f->status)));
        json_object_object_add(fo, "size", json_object_new_uint64(f->size));
        json_object_object_add(fo, "bytes", json_object_new_uint64(f->bytes));
        if (f->error)
            json_object_object_add(fo, "error", json_object_new_string(f->error));
        json_object_array_add(files, fo);
    }
    json_object_object_add(o, "files", files);
    json_object_object_add(o, "isolation",
                           json_object_new_string(hull_isolation_name(r->isolation)));
    if (r->error)
        json_object_object_add(o, "error", json_object_new_string(r->error));
    if (r->image) {
        json_object *img = json_object_new_object();
        json_object_object_add(img, "name", json_object_new_string(r->image));
        json_object_object_add(img, "digest",
                               json_object_new_string(r->image_digest ? r->image_digest : ""));
        json_object_object_add(o, "image", img);
    }
    /* Output is text or base64 already; an error message or a file name
     * may still carry bytes that are not UTF-8: U+FFFD, so the result
     * stays valid JSON wherever it is stored or sent. */
    const char *text = hj_to_string(o);
    char *s = hull_utf8_fix(text, strlen(text), NULL);
    json_object_put(o);
    return s;
}

char *hull_sandbox_seccomp_profile_json(void)
{
    const char *j = hull_seccomp_default_sandbox_json();
    return j ? strdup(j) : NULL;
}
