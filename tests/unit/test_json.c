/* util/json: parsing and the typed accessors every parser in hull uses;
 * each error names the JSON path of the offending value. */
#include "unit.h"
#include "util/json.h"
#include "util/strv.h"

static json_object *parse(const char *text)
{
    json_object *o = NULL;
    hull_error e = NULL;
    assert_int_equal(hj_parse(text, strlen(text), "t.json", &o, &e), 0);
    assert_null(e);
    return o;
}

static void parse_fails(const char *text, const char *msg)
{
    json_object *o = NULL;
    hull_error e = NULL;
    assert_int_equal(hj_parse(text, strlen(text), "t.json", &o, &e), -1);
    assert_null(o);
    assert_error_msg(e, msg);
}

static void parse_errors(void **state)
{
    (void)state;
    parse_fails("", "t.json: invalid JSON: unexpected end of input");
    parse_fails("{", "t.json: invalid JSON: unexpected end of input");
    parse_fails("{\"a\": }", "t.json: invalid JSON at byte 6: unexpected character");
    parse_fails("{\"a\": 1,}", "t.json: invalid JSON at byte 8: unexpected character");
    parse_fails("{\"a\": 1} x", "t.json: invalid JSON at byte 9: unexpected character");
    parse_fails("/* c */ {}", "t.json: invalid JSON at byte 0: unexpected character");
    parse_fails("{\"a\": TRUE}", "t.json: invalid JSON at byte 6: boolean expected");
    parse_fails("[1, 2]", "t.json: must be a JSON object");
    parse_fails("\"s\"", "t.json: must be a JSON object");
    parse_fails("null", "t.json: must be a JSON object");
}

static void parse_ok(void **state)
{
    (void)state;
    json_object *o = parse(" \n{\"a\": [1, {\"b\": null}], \"u\": \"\\u00e9\"}\n\t ");
    assert_string_equal(json_object_get_string(hj_get(o, "u")), "\xc3\xa9");
    json_object_put(o);
}

static void paths(void **state)
{
    (void)state;
    char b[64];
    assert_string_equal(hj_path(b, sizeof(b), "", "k"), "k");
    assert_string_equal(hj_path(b, sizeof(b), NULL, "k"), "k");
    assert_string_equal(hj_path(b, sizeof(b), "a.b", "k"), "a.b.k");
    assert_string_equal(hj_path_index(b, sizeof(b), "mounts", 3), "mounts[3]");
}

static void get_treats_null_as_absent(void **state)
{
    (void)state;
    json_object *o = parse("{\"n\": null, \"z\": 0}");
    assert_null(hj_get(o, "n"));
    assert_null(hj_get(o, "missing"));
    assert_non_null(hj_get(o, "z"));
    assert_null(hj_get(NULL, "z"));
    json_object_put(o);
}

static void strings(void **state)
{
    (void)state;
    json_object *o = parse("{\"s\": \"x\", \"n\": 1, \"z\": null}");
    hull_error e = NULL;
    char *s = NULL;
    assert_int_equal(hj_string(o, "p", "s", true, &s, &e), 0);
    assert_string_equal(s, "x");
    /* absent optional: untouched */
    assert_int_equal(hj_string(o, "p", "missing", false, &s, &e), 0);
    assert_string_equal(s, "x");
    assert_int_equal(hj_string(o, "p", "z", false, &s, &e), 0);
    assert_string_equal(s, "x");
    free(s);
    s = NULL;
    assert_int_equal(hj_string(o, "p", "missing", true, &s, &e), -1);
    assert_error_msg(e, "p.missing: required");
    assert_int_equal(hj_string(o, "", "n", false, &s, &e), -1);
    assert_error_msg(e, "n: must be a string");
    assert_null(s);
    json_object_put(o);
}

static void bools(void **state)
{
    (void)state;
    json_object *o = parse("{\"t\": true, \"s\": \"true\", \"i\": 1}");
    hull_error e = NULL;
    bool b = false;
    assert_int_equal(hj_bool(o, "x", "t", &b, &e), 0);
    assert_true(b);
    b = false;
    assert_int_equal(hj_bool(o, "x", "missing", &b, &e), 0);
    assert_false(b);
    assert_int_equal(hj_bool(o, "x", "s", &b, &e), -1);
    assert_error_msg(e, "x.s: must be true or false");
    assert_int_equal(hj_bool(o, "x", "i", &b, &e), -1);
    assert_error_msg(e, "x.i: must be true or false");
    json_object_put(o);
}

static void integers(void **state)
{
    (void)state;
    json_object *o = parse("{\"i\": -5, \"big\": 18446744073709551615, \"f\": 1.5, "
                           "\"s\": \"1\", \"max\": 9223372036854775807}");
    hull_error e = NULL;
    int64_t i = 0;
    uint64_t u = 0;
    bool here = true;
    assert_int_equal(hj_int64(o, "p", "i", &i, &here, &e), 0);
    assert_int_equal(i, -5);
    assert_true(here);
    assert_int_equal(hj_int64(o, "p", "missing", &i, &here, &e), 0);
    assert_false(here);
    assert_int_equal(i, -5);
    assert_int_equal(hj_int64(o, "p", "f", &i, NULL, &e), -1);
    assert_error_msg(e, "p.f: must be an integer");
    assert_int_equal(hj_int64(o, "p", "s", &i, NULL, &e), -1);
    assert_error_msg(e, "p.s: must be an integer");

    assert_int_equal(hj_uint64(o, "p", "big", &u, &here, &e), 0);
    assert_true(u == UINT64_MAX);
    assert_int_equal(hj_uint64(o, "p", "max", &u, NULL, &e), 0);
    assert_true(u == (uint64_t)INT64_MAX);
    assert_int_equal(hj_uint64(o, "p", "i", &u, NULL, &e), -1);
    assert_error_msg(e, "p.i: must not be negative");

    assert_int_equal(hj_int_range(o, "p", "i", -10, 0, &i, &here, &e), 0);
    assert_int_equal(i, -5);
    i = 7;
    assert_int_equal(hj_int_range(o, "p", "i", 0, 10, &i, &here, &e), -1);
    assert_error_msg(e, "p.i: -5 is out of range [0, 10]");
    assert_int_equal(i, 7);
    assert_int_equal(hj_int_range(o, "p", "missing", 0, 10, &i, &here, &e), 0);
    assert_false(here);
    json_object_put(o);
}

static void string_arrays(void **state)
{
    (void)state;
    json_object *o = parse("{\"a\": [\"x\", \"y\"], \"e\": [], \"bad\": [\"x\", 2], "
                           "\"s\": \"x\"}");
    hull_error e = NULL;
    char **v = NULL;
    size_t n = 9;
    assert_int_equal(hj_string_array(o, "p", "a", &v, &n, &e), 0);
    assert_int_equal(n, 2);
    assert_string_equal(v[0], "x");
    assert_string_equal(v[1], "y");
    assert_null(v[2]);
    assert_int_equal(hull_strv_len(v), 2);
    char **d = hull_strv_dup(v);
    assert_string_equal(d[1], "y");
    assert_null(d[2]);
    hull_strv_free(d);
    hull_strv_free(v);
    v = NULL;
    assert_int_equal(hj_string_array(o, "p", "e", &v, &n, &e), 0);
    assert_int_equal(n, 0);
    assert_non_null(v);
    assert_null(v[0]);
    hull_strv_free(v);
    v = NULL;
    assert_int_equal(hj_string_array(o, "p", "missing", &v, &n, &e), 0);
    assert_null(v);
    assert_int_equal(n, 0);
    assert_int_equal(hj_string_array(o, "p", "bad", &v, &n, &e), -1);
    assert_error_msg(e, "p.bad[1]: must be a string");
    assert_int_equal(hj_string_array(o, "p", "s", &v, &n, &e), -1);
    assert_error_msg(e, "p.s: must be an array of strings");
    assert_null(v);
    json_object_put(o);
}

static void string_maps(void **state)
{
    (void)state;
    json_object *o = parse("{\"m\": {\"k\": \"v\", \"k2\": \"\"}, \"bad\": {\"k\": 1}, "
                           "\"a\": []}");
    hull_error e = NULL;
    char **v = NULL;
    size_t n = 0;
    assert_int_equal(hj_string_map(o, "p", "m", &v, &n, &e), 0);
    assert_int_equal(n, 2);
    assert_string_equal(v[0], "k");
    assert_string_equal(v[1], "v");
    assert_string_equal(v[2], "k2");
    assert_string_equal(v[3], "");
    assert_null(v[4]);
    hull_strv_free(v);
    v = NULL;
    assert_int_equal(hj_string_map(o, "p", "bad", &v, &n, &e), -1);
    assert_error_msg(e, "p.bad.k: must be a string");
    assert_int_equal(hj_string_map(o, "", "a", &v, &n, &e), -1);
    assert_error_msg(e, "a: must be an object of strings");
    json_object_put(o);
}

static void require(void **state)
{
    (void)state;
    json_object *o = parse("{\"a\": [], \"o\": {}}");
    hull_error e = NULL;
    assert_int_equal(hj_require_object(hj_get(o, "o"), "x.o", &e), 0);
    assert_int_equal(hj_require_object(hj_get(o, "a"), "x.a", &e), -1);
    assert_error_msg(e, "x.a: must be an object");
    assert_int_equal(hj_require_array(hj_get(o, "a"), "x.a", &e), 0);
    assert_int_equal(hj_require_array(hj_get(o, "o"), "x.o", &e), -1);
    assert_error_msg(e, "x.o: must be an array");
    json_object_put(o);
}

static void quoting(void **state)
{
    (void)state;
    char *q = hull_json_quote("a\"b\\c/d\n\x01");
    assert_string_equal(q, "\"a\\\"b\\\\c/d\\n\\u0001\"");
    free(q);
    q = hull_json_quote(NULL);
    assert_string_equal(q, "\"\"");
    free(q);
    json_object *o = parse("{\"p\": \"/a/b\"}");
    assert_string_equal(hj_to_string(o), "{\"p\":\"/a/b\"}");
    json_object_put(o);
}

static void parse_file(void **state)
{
    (void)state;
    char *dir = unit_mkdtemp();
    char path[4096];
    snprintf(path, sizeof(path), "%s/conf.json", dir);
    FILE *f = fopen(path, "w");
    fputs("{\"x\": 1", f);
    fclose(f);
    json_object *o = NULL;
    hull_error e = NULL;
    assert_int_equal(hj_parse_file(path, &o, &e), -1);
    assert_error_msg(e, "conf.json: invalid JSON: unexpected end of input");
    snprintf(path, sizeof(path), "%s/missing.json", dir);
    assert_int_equal(hj_parse_file(path, &o, &e), -1);
    assert_int_equal(hull_error_code(e), ENOENT);
    hull_error_free(&e);
    unit_rmdir(dir);
}

static void errors(void **state)
{
    (void)state;
    hull_error e = NULL;
    assert_int_equal(hull_error_set(&e, EINVAL, "inner %d", 1), -1);
    assert_int_equal(hull_error_prefix(&e, "mid"), -1);
    assert_int_equal(hull_error_prefix(&e, "outer %s", "x"), -1);
    assert_int_equal(hull_error_code(e), EINVAL);
    assert_error_msg(e, "outer x: mid: inner 1");
    errno = ENOENT;
    assert_int_equal(hull_error_errno(&e, "open %s", "f"), -1);
    assert_int_equal(errno, ENOENT);
    assert_int_equal(hull_error_code(e), ENOENT);
    assert_error_msg(e, "open f: No such file or directory");
    /* A NULL error pointer is allowed: the failure is just not described. */
    assert_int_equal(hull_error_set(NULL, EINVAL, "x"), -1);
    assert_int_equal(hull_error_prefix(NULL, "x"), -1);
    assert_string_equal(hull_error_msg(NULL), "unknown error");
    assert_int_equal(hull_error_code(NULL), 0);
}

/* cleanup_json drops the scope's reference, on every way out of it. */
static void cleanup_json_releases(void **state)
{
    (void)state;
    json_object *outer = json_object_new_object();
    for (int i = 0; i < 2; i++) {
        cleanup_json json_object *o = json_object_get(outer);
        if (i == 0)
            continue; /* leaving early releases too */
        assert_ptr_equal(o, outer);
    }
    {
        cleanup_json json_object *none = NULL; /* and NULL is fine */
        (void)none;
    }
    /* Only our reference is left: this put frees the object. */
    assert_int_equal(json_object_put(outer), 1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(parse_errors), cmocka_unit_test(parse_ok),
        cmocka_unit_test(paths),        cmocka_unit_test(get_treats_null_as_absent),
        cmocka_unit_test(strings),      cmocka_unit_test(bools),
        cmocka_unit_test(integers),     cmocka_unit_test(string_arrays),
        cmocka_unit_test(string_maps),  cmocka_unit_test(require),
        cmocka_unit_test(quoting),      cmocka_unit_test(parse_file),
        cmocka_unit_test(errors),       cmocka_unit_test(cleanup_json_releases),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
