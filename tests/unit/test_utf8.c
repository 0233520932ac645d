/* util/utf8: what is valid UTF-8, and invalid bytes made U+FFFD. */
#include "unit.h"
#include "util/utf8.h"

static void valid(void **state)
{
    (void)state;
    static const char *const ok[] = {"",
                                     "plain",
                                     "\xc3\xa9",
                                     "\xe2\x82\xac",
                                     "\xf0\x9f\x98\x80",
                                     "\xed\x9f\xbf",
                                     "\xf4\x8f\xbf\xbf"};
    for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++)
        assert_true(hull_utf8_valid(ok[i], strlen(ok[i]), NULL));
    /* Stray continuation, cut short, overlong, surrogate, above U+10FFFF,
     * bytes never used. */
    static const struct {
        const char *s;
        size_t bad;
    } ko[] = {{"ab\x80", 2},           {"\xc3", 0},         {"x\xe2\x82", 1},
              {"\xc0\xaf", 0},         {"\xe0\x80\xaf", 0}, {"\xed\xa0\x80", 0},
              {"\xf4\x90\x80\x80", 0}, {"\xff\xfe", 0},     {"ok \xf5\x80\x80\x80", 3}};
    for (size_t i = 0; i < sizeof(ko) / sizeof(ko[0]); i++) {
        size_t bad = 99;
        assert_false(hull_utf8_valid(ko[i].s, strlen(ko[i].s), &bad));
        assert_int_equal(bad, ko[i].bad);
    }
}

static void fix(void **state)
{
    (void)state;
    size_t n = 0;
    char *s = hull_utf8_fix("a\xff\xfe"
                            "b\xc3\xa9\xc3",
                            7, &n);
    assert_string_equal(s, "a\xef\xbf\xbd\xef\xbf\xbd"
                           "b\xc3\xa9\xef\xbf\xbd");
    assert_int_equal(n, strlen(s));
    assert_true(hull_utf8_valid(s, n, NULL));
    free(s);
    s = hull_utf8_fix("", 0, &n);
    assert_string_equal(s, "");
    assert_int_equal(n, 0);
    free(s);
}

/* A run result names files and errors that may hold any byte: its JSON is
 * UTF-8 all the same. */
/* The start of a character cut short (an output cut at its limit) is told
 * apart from bytes that no character begins with. */
static void prefix(void **state)
{
    (void)state;
    const char *cut[] = {"\xc3", "\xe0",         "\xe0\xa0", "\xed\x9f",
                         "\xf0", "\xf0\x90\x80", "\xf4\x8f"};
    for (size_t i = 0; i < sizeof(cut) / sizeof(cut[0]); i++)
        assert_true(hull_utf8_prefix((const unsigned char *)cut[i], strlen(cut[i])));
    const char *bad[] = {"a",        "\x80",     "\xc0", "\xe0\x80", "\xed\xa0",
                         "\xf0\x80", "\xf4\x90", "\xf5", "\xff",     "\xc3\xa9"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        assert_false(hull_utf8_prefix((const unsigned char *)bad[i], strlen(bad[i])));
    assert_false(hull_utf8_prefix((const unsigned char *)"\xf0\x90\x80\x80", 4));
}

static void result_json(void **state)
{
    (void)state;
    struct hull_result r = {.verdict = HULL_VERDICT_INTERNAL_ERROR,
                            .error = (char *)"exec \xff\xfe: not found"};
    char *j = hull_result_to_json(&r);
    assert_non_null(j);
    assert_true(hull_utf8_valid(j, strlen(j), NULL));
    assert_non_null(strstr(j, "\"error\":\"exec \xef\xbf\xbd\xef\xbf\xbd: not found\""));
    free(j);
}

int main(void)
{
    const struct CMUnitTest tests[] = {cmocka_unit_test(valid), cmocka_unit_test(fix),
                                       cmocka_unit_test(prefix), cmocka_unit_test(result_json)};
    return cmocka_run_group_tests(tests, NULL, NULL);
}
