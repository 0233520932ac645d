/* Small typed accessors over json-c that name the JSON path of whatever is
 * wrong, so every parser in hull reports errors the same way:
 *
 *     process.args: must be a non-empty array of strings
 *
 * `path` is the path of the object being read ("" for the document root);
 * accessors append ".key" themselves. Absent optional fields leave *out as it
 * was, so callers set defaults first.
 */
#ifndef HULL_UTIL_JSON_H
#define HULL_UTIL_JSON_H

#include <json-c/json.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "hull.h"

static inline void hull_json_putp(json_object **o)
{
    if (*o != NULL)
        json_object_put(*o);
    *o = NULL;
}
/* The reference is dropped when the variable goes out of scope. */
#define cleanup_json __attribute__((cleanup(hull_json_putp)))

/* "a" + "b" -> "a.b"; "" + "b" -> "b". Result is static per call site only if
 * buf is; callers pass a buffer. */
const char *hj_path(char *buf, size_t len, const char *path, const char *key);
const char *hj_path_index(char *buf, size_t len, const char *path, size_t index);

/* Parse text into a JSON object document; the error names `what` (a file name). */
int hj_parse(const char *text, size_t len, const char *what, json_object **out, hull_error *err);
int hj_parse_file(const char *file, json_object **out, hull_error *err);

/* The value of key, or NULL when absent or JSON null. */
json_object *hj_get(json_object *obj, const char *key);

int hj_require_object(json_object *v, const char *path, hull_error *err);
int hj_require_array(json_object *v, const char *path, hull_error *err);

int hj_string(json_object *obj, const char *path, const char *key, bool required, char **out,
              hull_error *err);
int hj_bool(json_object *obj, const char *path, const char *key, bool *out, hull_error *err);
/* Integers: present (may be NULL) says whether the key was there. */
int hj_int64(json_object *obj, const char *path, const char *key, int64_t *out, bool *present,
             hull_error *err);
int hj_uint64(json_object *obj, const char *path, const char *key, uint64_t *out, bool *present,
              hull_error *err);
/* An integer in [min, max]. */
int hj_int_range(json_object *obj, const char *path, const char *key, int64_t min, int64_t max,
                 int64_t *out, bool *present, hull_error *err);
/* NULL-terminated vector of strings; *out NULL when absent. */
int hj_string_array(json_object *obj, const char *path, const char *key, char ***out, size_t *count,
                    hull_error *err);
/* {"k": "v", ...} as a NULL-terminated vector "k", "v", "k", "v", ... */
int hj_string_map(json_object *obj, const char *path, const char *key, char ***out, size_t *pairs,
                  hull_error *err);

/* A JSON string literal (with quotes) for s; caller frees. */
char *hull_json_quote(const char *s);
/* Serialize compactly; the string lives as long as obj. */
const char *hj_to_string(json_object *obj);

#endif
