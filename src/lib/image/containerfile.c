/* The Containerfile: lines into instructions (comments, continuations,
 * flags, exec form), and Docker's word rules with variable substitution,
 * which the builder applies to each instruction at its turn (the values
 * of ARG and ENV change as the file goes). */
#include <ctype.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "image/build.h"
#include "util/error.h"
#include "util/json.h"
#include "util/strv.h"

static const struct {
    const char *name;
    enum cf_op op;
} ops[] = {
    {"FROM", CF_FROM},       {"ARG", CF_ARG},   {"ENV", CF_ENV},
    {"RUN", CF_RUN},         {"COPY", CF_COPY}, {"ADD", CF_ADD},
    {"WORKDIR", CF_WORKDIR}, {"USER", CF_USER}, {"LABEL", CF_LABEL},
    {"EXPOSE", CF_EXPOSE},   {"CMD", CF_CMD},   {"ENTRYPOINT", CF_ENTRYPOINT},
};

/* Docker instructions hull does not implement: refused by name rather
 * than as unknown, so the message says what to change. */
static const char *const unsupported[] = {"VOLUME",  "STOPSIGNAL", "HEALTHCHECK", "SHELL",
                                          "ONBUILD", "MAINTAINER", NULL};

/* A growing string. */
struct buf {
    char *s;
    size_t len, cap;
};

static int buf_add(struct buf *b, const char *s, size_t n)
{
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap * 2 : 64;
        while (cap < b->len + n + 1)
            cap *= 2;
        char *p = realloc(b->s, cap);
        if (p == NULL)
            return -1;
        b->s = p;
        b->cap = cap;
    }
    memcpy(b->s + b->len, s, n);
    b->len += n;
    b->s[b->len] = '\0';
    return 0;
}

static int buf_addc(struct buf *b, char c)
{
    return buf_add(b, &c, 1);
}

void containerfile_free(struct containerfile *cf)
{
    for (size_t i = 0; i < cf->n; i++) {
        free(cf->v[i].keyword);
        free(cf->v[i].args);
        hull_strv_free(cf->v[i].flags);
        hull_strv_free(cf->v[i].json);
    }
    free(cf->v);
    free(cf->name);
    memset(cf, 0, sizeof(*cf));
}

static char *trim(char *s)
{
    while (isspace((unsigned char)*s))
        s++;
    size_t n = strlen(s);
    while (n > 0 && isspace((unsigned char)s[n - 1]))
        s[--n] = '\0';
    return s;
}

/* ["a", "b"]: the strings; NULL when s is not a JSON array of strings (then
 * it is the shell form, as Docker reads it). */
static char **exec_form(const char *s)
{
    if (*s != '[')
        return NULL;
    cleanup_json json_object *arr = json_tokener_parse(s);
    if (arr == NULL || !json_object_is_type(arr, json_type_array))
        return NULL;
    size_t n = json_object_array_length(arr);
    cleanup_strv char **v = calloc(n + 1, sizeof(char *));
    if (v == NULL)
        return NULL;
    for (size_t i = 0; i < n; i++) {
        json_object *e = json_object_array_get_idx(arr, i);
        if (!json_object_is_type(e, json_type_string))
            return NULL;
        if ((v[i] = strdup(json_object_get_string(e))) == NULL)
            return NULL;
    }
    return steal_ptr(&v);
}

/* Leading --name[=value] words of COPY/ADD/RUN, checked against what the
 * builder implements; *rest moves past them. */
static int take_flags(struct cf_instr *in, char **rest, const char *where, hull_error *err)
{
    char *p = *rest;
    while (p[0] == '-' && p[1] == '-') {
        size_t n = strcspn(p, " \t");
        cleanup_free char *flag = strndup(p, n);
        if (flag == NULL)
            return hull_error_set(err, ENOMEM, "out of memory");
        size_t name_len = strcspn(flag, "=");
        bool ok = false;
        if (in->op == CF_COPY || in->op == CF_ADD) {
            if (strncmp(flag, "--from", name_len) == 0 && name_len == 6)
                return hull_error_set(err, ENOTSUP,
                                      "%s: %s --from: multi-stage builds are not supported", where,
                                      in->keyword);
            ok = (name_len == 7 && strncmp(flag, "--chown", 7) == 0) ||
                 (name_len == 7 && strncmp(flag, "--chmod", 7) == 0);
            if (ok && flag[name_len] != '=')
                return hull_error_set(err, EINVAL, "%s: %s %s needs a value (%s=VALUE)", where,
                                      in->keyword, flag, flag);
        }
        if (!ok)
            return hull_error_set(err, ENOTSUP, "%s: %s: unsupported flag %.*s", where, in->keyword,
                                  (int)name_len, flag);
        if (hull_strv_append(&in->flags, flag) < 0)
            return hull_error_set(err, ENOMEM, "out of memory");
        p += n;
        while (*p == ' ' || *p == '\t')
            p++;
    }
    *rest = p;
    return 0;
}

static int instr_parse(struct cf_instr *in, int line, char *text, const char *name, hull_error *err)
{
    char where[256];
    snprintf(where, sizeof(where), "%s:%d", name, line);
    in->line = line;
    size_t kw = strcspn(text, " \t");
    char *rest = trim(text + kw);
    text[kw] = '\0';
    for (char *c = text; *c; c++)
        *c = (char)toupper((unsigned char)*c);
    if ((in->keyword = strdup(text)) == NULL)
        return hull_error_set(err, ENOMEM, "out of memory");
    size_t i = 0;
    while (i < sizeof(ops) / sizeof(ops[0]) && strcmp(ops[i].name, text) != 0)
        i++;
    if (i == sizeof(ops) / sizeof(ops[0])) {
        for (size_t u = 0; unsupported[u]; u++)
            if (strcmp(unsupported[u], text) == 0)
                return hull_error_set(err, ENOTSUP, "%s: %s is not supported by hull image build",
                                      where, text);
        return hull_error_set(err, EINVAL, "%s: unknown instruction %s", where, text);
    }
    in->op = ops[i].op;
    if ((in->op == CF_COPY || in->op == CF_ADD || in->op == CF_RUN) &&
        take_flags(in, &rest, where, err) < 0)
        return -1;
    if (*rest == '\0')
        return hull_error_set(err, EINVAL, "%s: %s needs an argument", where, in->keyword);
    if ((in->args = strdup(rest)) == NULL)
        return hull_error_set(err, ENOMEM, "out of memory");
    if (in->op == CF_RUN || in->op == CF_CMD || in->op == CF_ENTRYPOINT || in->op == CF_COPY ||
        in->op == CF_ADD) {
        in->json = exec_form(rest);
        if (in->json && in->json[0] == NULL && in->op != CF_CMD && in->op != CF_ENTRYPOINT)
            return hull_error_set(err, EINVAL, "%s: %s needs an argument", where, in->keyword);
        if (in->json && (in->op == CF_COPY || in->op == CF_ADD) && hull_strv_len(in->json) < 2)
            return hull_error_set(err, EINVAL, "%s: %s needs a source and a destination", where,
                                  in->keyword);
    }
    return 0;
}

/* One logical line made: an instruction unless blank. */
static int flush(struct containerfile *out, struct buf *cur, int start, hull_error *err)
{
    if (cur->len == 0)
        return 0;
    char *logical = trim(cur->s);
    cur->len = 0;
    if (*logical == '\0')
        return 0;
    struct cf_instr *v = realloc(out->v, (out->n + 1) * sizeof(*v));
    if (v == NULL)
        return hull_error_set(err, ENOMEM, "out of memory");
    out->v = v;
    memset(&v[out->n], 0, sizeof(*v));
    out->n++;
    return instr_parse(&v[out->n - 1], start, logical, out->name, err);
}

/* The logical lines: a line ending in a backslash continues on the next;
 * comment lines and blank lines inside a continuation are skipped, as
 * Docker does. */
int containerfile_parse(const char *text, size_t len, const char *name, struct containerfile *out,
                        hull_error *err)
{
    memset(out, 0, sizeof(*out));
    if ((out->name = strdup(name)) == NULL)
        return hull_error_set(err, ENOMEM, "out of memory");
    struct buf cur = {0};
    int start = 0, lineno = 0;
    size_t pos = 0;
    int ret = 0;
    while (pos < len && ret == 0) {
        size_t end = pos;
        while (end < len && text[end] != '\n')
            end++;
        lineno++;
        cleanup_free char *line = strndup(text + pos, end - pos);
        pos = end + 1;
        if (line == NULL) {
            ret = hull_error_set(err, ENOMEM, "out of memory");
            break;
        }
        char *t = trim(line);
        if (*t == '#' || *t == '\0')
            continue;
        if (cur.len == 0)
            start = lineno;
        size_t n = strlen(t);
        bool more = t[n - 1] == '\\';
        if (more)
            t[--n] = '\0';
        if ((cur.len && buf_addc(&cur, ' ') < 0) || buf_add(&cur, t, n) < 0)
            ret = hull_error_set(err, ENOMEM, "out of memory");
        else if (!more)
            ret = flush(out, &cur, start, err);
    }
    if (ret == 0)
        ret = flush(out, &cur, start, err);
    free(cur.s);
    if (ret == 0 && out->n == 0)
        ret = hull_error_set(err, EINVAL, "%s: no instructions", name);
    if (ret < 0)
        containerfile_free(out);
    return ret;
}

char *cf_instr_text(const struct cf_instr *in)
{
    struct buf b = {0};
    if (buf_add(&b, in->keyword, strlen(in->keyword)) < 0)
        return NULL;
    for (size_t i = 0; in->flags && in->flags[i]; i++)
        if (buf_addc(&b, ' ') < 0 || buf_add(&b, in->flags[i], strlen(in->flags[i])) < 0) {
            free(b.s);
            return NULL;
        }
    if (buf_addc(&b, ' ') < 0 || buf_add(&b, in->args, strlen(in->args)) < 0) {
        free(b.s);
        return NULL;
    }
    return b.s;
}

/* ---- words and variables ---- */

const char *cf_var_get(const struct cf_vars *vars, const char *name)
{
    size_t nl = strlen(name);
    for (int l = 3; l >= 0; l--) {
        char *const *v = vars->v[l];
        size_t n = hull_strv_len(v);
        for (size_t i = n; i-- > 0;)
            if (strncmp(v[i], name, nl) == 0 && v[i][nl] == '=')
                return v[i] + nl + 1;
    }
    return NULL;
}

struct lex {
    const char *s;
    size_t i;
    const struct cf_vars *vars;
    hull_error *err;
};

static int lex_until(struct lex *x, struct buf *out, bool in_brace);

static bool name_char(char c, bool first)
{
    return c == '_' || isalpha((unsigned char)c) || (!first && isdigit((unsigned char)c));
}

/* At '$': append the substitution to out. */
static int substitute(struct lex *x, struct buf *out)
{
    const char *s = x->s;
    size_t i = x->i + 1;
    if (x->vars == NULL || (s[i] != '{' && !name_char(s[i], true))) {
        x->i++;
        return buf_addc(out, '$') < 0 ? hull_error_set(x->err, ENOMEM, "out of memory") : 0;
    }
    bool brace = s[i] == '{';
    if (brace)
        i++;
    size_t n0 = i;
    while (name_char(s[i], i == n0))
        i++;
    cleanup_free char *name = strndup(s + n0, i - n0);
    if (name == NULL)
        return hull_error_set(x->err, ENOMEM, "out of memory");
    const char *val = cf_var_get(x->vars, name);
    if (!brace) {
        x->i = i;
        return val && buf_add(out, val, strlen(val)) < 0
                   ? hull_error_set(x->err, ENOMEM, "out of memory")
                   : 0;
    }
    if (i == n0)
        return hull_error_set(x->err, EINVAL, "bad substitution in %s", s);
    if (s[i] == '}') {
        x->i = i + 1;
        return val && buf_add(out, val, strlen(val)) < 0
                   ? hull_error_set(x->err, ENOMEM, "out of memory")
                   : 0;
    }
    bool colon = s[i] == ':';
    if (colon)
        i++;
    char mod = s[i];
    if (mod != '-' && mod != '+')
        return hull_error_set(x->err, EINVAL,
                              "bad substitution in %s (hull knows ${V}, ${V:-x}, "
                              "${V:+x}, ${V-x}, ${V+x})",
                              s);
    x->i = i + 1;
    struct buf word = {0};
    if (lex_until(x, &word, true) < 0) {
        free(word.s);
        return -1;
    }
    bool set = val != NULL && (!colon || *val);
    const char *r = mod == '-' ? (set ? val : word.s) : (set ? word.s : NULL);
    int ret =
        r && buf_add(out, r, strlen(r)) < 0 ? hull_error_set(x->err, ENOMEM, "out of memory") : 0;
    free(word.s);
    return ret;
}

/* Inside "...": \ escapes only " \ $ (and a newline). */
static int lex_dquote(struct lex *x, struct buf *out)
{
    x->i++;
    for (;;) {
        char c = x->s[x->i];
        if (c == '\0')
            return hull_error_set(x->err, EINVAL, "unterminated quote in %s", x->s);
        if (c == '"') {
            x->i++;
            return 0;
        }
        if (c == '$') {
            if (substitute(x, out) < 0)
                return -1;
            continue;
        }
        if (c == '\\' && strchr("\"\\$", x->s[x->i + 1]) && x->s[x->i + 1]) {
            c = x->s[++x->i];
        }
        if (buf_addc(out, c) < 0)
            return hull_error_set(x->err, ENOMEM, "out of memory");
        x->i++;
    }
}

/* A single-quoted run at x (on the opening quote), taken as it is. */
static int lex_squote(struct lex *x, struct buf *out)
{
    const char *q = strchr(x->s + x->i + 1, '\'');
    if (q == NULL)
        return hull_error_set(x->err, EINVAL, "unterminated quote in %s", x->s);
    if (buf_add(out, x->s + x->i + 1, (size_t)(q - x->s - x->i - 1)) < 0)
        return hull_error_set(x->err, ENOMEM, "out of memory");
    x->i = (size_t)(q - x->s) + 1;
    return 0;
}

/* One word (or, in a ${V:-word}, up to the closing brace). */
static int lex_until(struct lex *x, struct buf *out, bool in_brace)
{
    int depth = 0;
    for (;;) {
        char c = x->s[x->i];
        if (c == '\0') {
            if (in_brace)
                return hull_error_set(x->err, EINVAL, "missing } in %s", x->s);
            return 0;
        }
        if (in_brace && c == '}' && depth == 0) {
            x->i++;
            return 0;
        }
        if (c == '\'') {
            if (lex_squote(x, out) < 0)
                return -1;
            continue;
        }
        if (c == '"') {
            if (lex_dquote(x, out) < 0)
                return -1;
            continue;
        }
        if (c == '$') {
            if (substitute(x, out) < 0)
                return -1;
            continue;
        }
        if (c == '\\' && x->s[x->i + 1])
            c = x->s[++x->i];
        if (in_brace && c == '{')
            depth++;
        if (in_brace && c == '}')
            depth--;
        if (buf_addc(out, c) < 0)
            return hull_error_set(x->err, ENOMEM, "out of memory");
        x->i++;
    }
}

/* One word of a split: stops at unquoted blanks. */
static int lex_word(struct lex *x, struct buf *out)
{
    for (;;) {
        char c = x->s[x->i];
        if (c == '\0' || c == ' ' || c == '\t')
            return 0;
        if (c == '\'' || c == '"' || c == '$') {
            /* One quoted run or substitution, then go on with the word. */
            int r = c == '\''  ? lex_squote(x, out)
                    : c == '"' ? lex_dquote(x, out)
                               : substitute(x, out);
            if (r < 0)
                return -1;
            continue;
        }
        if (c == '\\' && x->s[x->i + 1])
            c = x->s[++x->i];
        if (buf_addc(out, c) < 0)
            return hull_error_set(x->err, ENOMEM, "out of memory");
        x->i++;
    }
}

/* Lex one word at x (the rest of the line when rest) onto words. A lexing
 * error is already in x->err; running out of memory is said here. */
static int add_word(struct lex *x, char ***words, bool rest)
{
    struct buf b = {0};
    if (buf_add(&b, "", 0) < 0 || (rest ? lex_until(x, &b, false) : lex_word(x, &b)) < 0) {
        free(b.s);
        return b.s ? -1 : hull_error_set(x->err, ENOMEM, "out of memory");
    }
    int r = hull_strv_append(words, b.s);
    free(b.s);
    if (r < 0)
        return hull_error_set(x->err, ENOMEM, "out of memory");
    return 0;
}

int cf_words(const char *s, const struct cf_vars *vars, bool split, char ***out, hull_error *err)
{
    *out = NULL;
    cleanup_strv char **words = calloc(1, sizeof(char *));
    if (words == NULL)
        return hull_error_set(err, ENOMEM, "out of memory");
    struct lex x = {.s = s, .vars = vars, .err = err};
    for (;;) {
        while (s[x.i] == ' ' || s[x.i] == '\t')
            x.i++;
        if (!split) {
            /* The rest of the line is one word, even an empty one. */
            if (add_word(&x, &words, true) < 0)
                return -1;
            break;
        }
        if (s[x.i] == '\0')
            break;
        if (add_word(&x, &words, false) < 0)
            return -1;
    }
    *out = steal_ptr(&words);
    return 0;
}
