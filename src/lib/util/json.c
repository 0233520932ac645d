#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/error.h"
#include "util/fs.h"
#include "util/json.h"
#include "util/strv.h"

const char *hj_path(char *buf, size_t len, const char *path, const char *key)
{
    if (path == NULL || path[0] == '\0')
        snprintf(buf, len, "%s", key);
    else
        snprintf(buf, len, "%s.%s", path, key);
    return buf;
}

const char *hj_path_index(char *buf, size_t len, const char *path, size_t index)
{
    snprintf(buf, len, "%s[%zu]", path, index);
    return buf;
}

int hj_parse(const char *text, size_t len, const char *what, json_object **out, hull_error *err)
{
    json_tokener *tok = json_tokener_new();
    if (tok == NULL)
        return hull_error_set(err, ENOMEM, "%s: out of memory", what);
    /* RFC 8259 only: json-c's lenient mode takes trailing commas, single
     * quotes and NaN, which runc and every other reader of the same
     * config.json reject. */
    json_tokener_set_flags(tok, JSON_TOKENER_STRICT);
    json_object *obj = json_tokener_parse_ex(tok, text, (int)len);
    enum json_tokener_error jerr = json_tokener_get_error(tok);
    size_t offset = json_tokener_get_parse_end(tok);
    if (jerr == json_tokener_continue) {
        /* A bare literal ("null", "1") waits for a delimiter that may still
         * come; a NUL says the input ended. Only a complete value passes. */
        obj = json_tokener_parse_ex(tok, "", 1);
        if (json_tokener_get_error(tok) != json_tokener_success) {
            json_object_put(obj);
            json_tokener_free(tok);
            return hull_error_set(err, EINVAL, "%s: invalid JSON: unexpected end of input", what);
        }
        jerr = json_tokener_success;
        offset = len;
    }
    json_tokener_free(tok);

    if (jerr != json_tokener_success) {
        json_object_put(obj);
        return hull_error_set(err, EINVAL, "%s: invalid JSON at byte %zu: %s", what, offset,
                              json_tokener_error_desc(jerr));
    }
    /* Trailing garbage after the document is as malformed as a missing brace. */
    for (size_t i = offset; i < len; i++) {
        if (text[i] != ' ' && text[i] != '\n' && text[i] != '\t' && text[i] != '\r') {
            json_object_put(obj);
            return hull_error_set(err, EINVAL, "%s: invalid JSON at byte %zu: trailing data", what,
                                  i);
        }
    }
    if (!json_object_is_type(obj, json_type_object)) {
        json_object_put(obj);
        return hull_error_set(err, EINVAL, "%s: must be a JSON object", what);
    }
    *out = obj;
    return 0;
}

int hj_parse_file(const char *file, json_object **out, hull_error *err)
{
    char *text = NULL;
    size_t len = 0;
    if (hull_read_file(file, &text, &len, err) < 0)
        return -1;
    const char *base = strrchr(file, '/');
    int r = hj_parse(text, len, base ? base + 1 : file, out, err);
    free(text);
    return r;
}

json_object *hj_get(json_object *obj, const char *key)
{
    json_object *v = NULL;
    if (obj == NULL || !json_object_object_get_ex(obj, key, &v))
        return NULL;
    if (json_object_is_type(v, json_type_null))
        return NULL;
    return v;
}

int hj_require_object(json_object *v, const char *path, hull_error *err)
{
    if (!json_object_is_type(v, json_type_object))
        return hull_error_set(err, EINVAL, "%s: must be an object", path);
    return 0;
}

int hj_require_array(json_object *v, const char *path, hull_error *err)
{
    if (!json_object_is_type(v, json_type_array))
        return hull_error_set(err, EINVAL, "%s: must be an array", path);
    return 0;
}

/* A JSON string's bytes as a C string: it must not hold NUL (\u0000), which
 * would end it early where it is used (an argument, a name, a path) and so
 * act on less than was checked. */
static bool nul_free(json_object *v)
{
    return strlen(json_object_get_string(v)) == (size_t)json_object_get_string_len(v);
}

int hj_string(json_object *obj, const char *path, const char *key, bool required, char **out,
              hull_error *err)
{
    char p[512];
    json_object *v = hj_get(obj, key);
    if (v == NULL) {
        if (required)
            return hull_error_set(err, EINVAL, "%s: required", hj_path(p, sizeof(p), path, key));
        return 0;
    }
    if (!json_object_is_type(v, json_type_string))
        return hull_error_set(err, EINVAL, "%s: must be a string",
                              hj_path(p, sizeof(p), path, key));
    if (!nul_free(v))
        return hull_error_set(err, EINVAL, "%s: holds a NUL byte",
                              hj_path(p, sizeof(p), path, key));
    char *s = strdup(json_object_get_string(v));
    if (s == NULL)
        return hull_error_set(err, ENOMEM, "out of memory");
    free(*out);
    *out = s;
    return 0;
}

int hj_bool(json_object *obj, const char *path, const char *key, bool *out, hull_error *err)
{
    char p[512];
    json_object *v = hj_get(obj, key);
    if (v == NULL)
        return 0;
    if (!json_object_is_type(v, json_type_boolean))
        return hull_error_set(err, EINVAL, "%s: must be true or false",
                              hj_path(p, sizeof(p), path, key));
    *out = json_object_get_boolean(v);
    return 0;
}

int hj_int64(json_object *obj, const char *path, const char *key, int64_t *out, bool *present,
             hull_error *err)
{
    char p[512];
    json_object *v = hj_get(obj, key);
    if (present)
        *present = false;
    if (v == NULL)
        return 0;
    if (!json_object_is_type(v, json_type_int))
        return hull_error_set(err, EINVAL, "%s: must be an integer",
                              hj_path(p, sizeof(p), path, key));
    errno = 0;
    int64_t n = json_object_get_int64(v);
    if (errno == ERANGE)
        return hull_error_set(err, ERANGE, "%s: out of range", hj_path(p, sizeof(p), path, key));
    *out = n;
    if (present)
        *present = true;
    return 0;
}

int hj_uint64(json_object *obj, const char *path, const char *key, uint64_t *out, bool *present,
              hull_error *err)
{
    char p[512];
    json_object *v = hj_get(obj, key);
    if (present)
        *present = false;
    if (v == NULL)
        return 0;
    if (!json_object_is_type(v, json_type_int))
        return hull_error_set(err, EINVAL, "%s: must be an integer",
                              hj_path(p, sizeof(p), path, key));
    /* json-c keeps values above INT64_MAX as unsigned; a negative one is signed. */
    if (json_object_get_int64(v) < 0)
        return hull_error_set(err, ERANGE, "%s: must not be negative",
                              hj_path(p, sizeof(p), path, key));
    *out = json_object_get_uint64(v);
    if (present)
        *present = true;
    return 0;
}

int hj_int_range(json_object *obj, const char *path, const char *key, int64_t min, int64_t max,
                 int64_t *out, bool *present, hull_error *err)
{
    char p[512];
    int64_t n = 0;
    bool here = false;
    if (hj_int64(obj, path, key, &n, &here, err) < 0)
        return -1;
    if (present)
        *present = here;
    if (!here)
        return 0;
    if (n < min || n > max)
        return hull_error_set(err, ERANGE, "%s: %lld is out of range [%lld, %lld]",
                              hj_path(p, sizeof(p), path, key), (long long)n, (long long)min,
                              (long long)max);
    *out = n;
    return 0;
}

int hj_string_array(json_object *obj, const char *path, const char *key, char ***out, size_t *count,
                    hull_error *err)
{
    char p[512];
    json_object *v = hj_get(obj, key);
    if (count)
        *count = 0;
    if (v == NULL)
        return 0;
    hj_path(p, sizeof(p), path, key);
    if (!json_object_is_type(v, json_type_array))
        return hull_error_set(err, EINVAL, "%s: must be an array of strings", p);
    size_t n = json_object_array_length(v);
    char **vec = calloc(n + 1, sizeof(char *));
    if (vec == NULL)
        return hull_error_set(err, ENOMEM, "out of memory");
    for (size_t i = 0; i < n; i++) {
        json_object *e = json_object_array_get_idx(v, i);
        if (!json_object_is_type(e, json_type_string)) {
            hull_strv_free(vec);
            return hull_error_set(err, EINVAL, "%s[%zu]: must be a string", p, i);
        }
        if (!nul_free(e)) {
            hull_strv_free(vec);
            return hull_error_set(err, EINVAL, "%s[%zu]: holds a NUL byte", p, i);
        }
        vec[i] = strdup(json_object_get_string(e));
        if (vec[i] == NULL) {
            hull_strv_free(vec);
            return hull_error_set(err, ENOMEM, "out of memory");
        }
    }
    hull_strv_free(*out);
    *out = vec;
    if (count)
        *count = n;
    return 0;
}

int hj_string_map(json_object *obj, const char *path, const char *key, char ***out, size_t *pairs,
                  hull_error *err)
{
    char p[512];
    json_object *v = hj_get(obj, key);
    if (pairs)
        *pairs = 0;
    if (v == NULL)
        return 0;
    hj_path(p, sizeof(p), path, key);
    if (!json_object_is_type(v, json_type_object))
        return hull_error_set(err, EINVAL, "%s: must be an object of strings", p);
    size_t n = (size_t)json_object_object_length(v);
    char **vec = calloc(2 * n + 1, sizeof(char *));
    if (vec == NULL)
        return hull_error_set(err, ENOMEM, "out of memory");
    size_t i = 0;
    json_object_object_foreach(v, k, val)
    {
        if (!json_object_is_type(val, json_type_string)) {
            hull_strv_free(vec);
            return hull_error_set(err, EINVAL, "%s.%s: must be a string", p, k);
        }
        if (!nul_free(val)) {
            hull_strv_free(vec);
            return hull_error_set(err, EINVAL, "%s.%s: holds a NUL byte", p, k);
        }
        vec[i] = strdup(k);
        vec[i + 1] = strdup(json_object_get_string(val));
        if (vec[i] == NULL || vec[i + 1] == NULL) {
            hull_strv_free(vec);
            return hull_error_set(err, ENOMEM, "out of memory");
        }
        i += 2;
    }
    hull_strv_free(*out);
    *out = vec;
    if (pairs)
        *pairs = n;
    return 0;
}

char *hull_json_quote(const char *s)
{
    json_object *o = json_object_new_string(s ? s : "");
    if (o == NULL)
        return NULL;
    char *r = strdup(json_object_to_json_string_ext(o, JSON_C_TO_STRING_NOSLASHESCAPE));
    json_object_put(o);
    return r;
}

const char *hj_to_string(json_object *obj)
{
    return json_object_to_json_string_ext(obj,
                                          JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE);
}
