/* image/containerfile.c: lines into instructions, and Docker's word rules
 * with variable substitution. */
#include "image/build.h"
#include "unit.h"
#include "util/strv.h"

static void parse_ok(const char *text, struct containerfile *cf)
{
    hull_error e = NULL;
    int r = containerfile_parse(text, strlen(text), "Containerfile", cf, &e);
    if (r < 0)
        fail_msg("parse: %s", hull_error_msg(e));
    assert_int_equal(r, 0);
}

static void parse_fails(const char *text, const char *msg)
{
    struct containerfile cf;
    hull_error e = NULL;
    assert_int_equal(containerfile_parse(text, strlen(text), "Containerfile", &cf, &e), -1);
    assert_null(cf.v);
    assert_error_msg(e, msg);
}

static void lines(void **state)
{
    (void)state;
    struct containerfile cf;
    parse_ok("# a comment\n"
             "from busybox AS base\n"
             "\n"
             "RUN echo a \\\n"
             "# a comment inside\n"
             "\n"
             "    && echo b\n"
             "ENV A=1 \\\n"
             "    B=2\n"
             "CMD [\"sh\", \"-c\", \"echo hi\"]\n"
             "ENTRYPOINT /bin/sh -c 'x'\n"
             "COPY --chown=1:2 a b /dst/\n"
             "ADD [\"x y\", \"/z\"]\n"
             "RUN [ -f /x ]\n"
             "LABEL trailing=\\",
             &cf);
    assert_int_equal(cf.n, 9);
    assert_int_equal(cf.v[0].op, CF_FROM);
    assert_string_equal(cf.v[0].keyword, "FROM");
    assert_int_equal(cf.v[0].line, 2);
    assert_string_equal(cf.v[0].args, "busybox AS base");
    assert_int_equal(cf.v[1].op, CF_RUN);
    assert_int_equal(cf.v[1].line, 4);
    assert_string_equal(cf.v[1].args, "echo a  && echo b");
    assert_null(cf.v[1].json);
    assert_int_equal(cf.v[2].line, 8);
    assert_string_equal(cf.v[2].args, "A=1  B=2");
    assert_int_equal(cf.v[3].op, CF_CMD);
    assert_non_null(cf.v[3].json);
    assert_int_equal(hull_strv_len(cf.v[3].json), 3);
    assert_string_equal(cf.v[3].json[2], "echo hi");
    assert_null(cf.v[4].json);
    assert_int_equal(cf.v[5].op, CF_COPY);
    assert_string_equal(cf.v[5].flags[0], "--chown=1:2");
    assert_null(cf.v[5].flags[1]);
    assert_string_equal(cf.v[5].args, "a b /dst/");
    assert_string_equal(cf.v[6].json[0], "x y");
    /* Not a JSON array of strings: the shell form, as Docker reads it. */
    assert_null(cf.v[7].json);
    assert_string_equal(cf.v[7].args, "[ -f /x ]");
    assert_int_equal(cf.v[8].line, 15);
    assert_string_equal(cf.v[8].args, "trailing=");
    char *t = cf_instr_text(&cf.v[5]);
    assert_string_equal(t, "COPY --chown=1:2 a b /dst/");
    free(t);
    containerfile_free(&cf);
}

static void errors(void **state)
{
    (void)state;
    parse_fails("FROM x\n\n\n\n\n\nFOO bar\n", "Containerfile:7: unknown instruction FOO");
    parse_fails("FROM x\nfoo bar\n", "Containerfile:2: unknown instruction FOO");
    parse_fails("FROM x\nVOLUME /data\n",
                "Containerfile:2: VOLUME is not supported by hull image build");
    parse_fails("FROM x\nRUN\n", "Containerfile:2: RUN needs an argument");
    parse_fails("FROM x\nCOPY --from=base /a /b\n",
                "Containerfile:2: COPY --from: multi-stage builds are not supported");
    parse_fails("FROM x\nRUN --mount=type=cache,target=/x true\n",
                "Containerfile:2: RUN: unsupported flag --mount");
    parse_fails("FROM x\nCOPY --chown a b\n",
                "Containerfile:2: COPY --chown needs a value (--chown=VALUE)");
    parse_fails("FROM x\nCOPY [\"a\"]\n", "Containerfile:2: COPY needs a source and a destination");
    parse_fails("# only\n\n", "Containerfile: no instructions");
}

static char *const env_a[] = {"A=apple", "E=", "SP=a b", NULL};
static char *const env_b[] = {"A=avocado", NULL};

static char **words(const char *s, bool split)
{
    struct cf_vars vars = {{env_a, env_b}};
    char **w = NULL;
    hull_error e = NULL;
    if (cf_words(s, &vars, split, &w, &e) < 0)
        fail_msg("cf_words %s: %s", s, hull_error_msg(e));
    return w;
}

static void check_words(const char *s, bool split, const char *const *expect)
{
    char **w = words(s, split);
    size_t i = 0;
    for (; expect[i]; i++) {
        if (w[i] == NULL)
            fail_msg("%s: word %zu missing (want %s)", s, i, expect[i]);
        if (strcmp(w[i], expect[i]) != 0)
            fail_msg("%s: word %zu is \"%s\", want \"%s\"", s, i, w[i], expect[i]);
    }
    if (w[i] != NULL)
        fail_msg("%s: extra word %s", s, w[i]);
    hull_strv_free(w);
}

#define WORDS(s, split, ...) check_words(s, split, (const char *const[]){__VA_ARGS__, NULL})

static void substitution(void **state)
{
    (void)state;
    /* The later vector wins (ENV over ARG, a later ENV over an earlier). */
    WORDS("$A", true, "avocado");
    WORDS("${A}x $Ax", true, "avocadox", "");
    WORDS("${NO:-def} ${A:-def} ${E:-def} ${E-def}", true, "def", "avocado", "def", "");
    WORDS("${A:+set} ${NO:+set}x ${E:+set}x ${E+set}", true, "set", "x", "x", "set");
    WORDS("${NO:-${A}-nested}", true, "avocado-nested");
    WORDS("'$A' \"$A\" \\$A", true, "$A", "avocado", "$A");
    WORDS("\"a b\" c\\ d 'e f'g", true, "a b", "c d", "e fg");
    WORDS("K=\"v w\" L=x", true, "K=v w", "L=x");
    WORDS("\"\\\"q\\\" \\n\"", true, "\"q\" \\n");
    /* Substituted values are not split again. */
    WORDS("$SP", true, "a b");
    WORDS("  spaced   out  $A ", false, "spaced   out  avocado ");
    WORDS("$ 5$ $1", true, "$", "5$", "$1");
    WORDS("", true, NULL);
    char **w = NULL;
    hull_error e = NULL;
    struct cf_vars vars = {{env_a}};
    assert_int_equal(cf_words("${A:?x}", &vars, true, &w, &e), -1);
    assert_non_null(strstr(hull_error_msg(e), "bad substitution"));
    hull_error_free(&e);
    assert_int_equal(cf_words("\"open", &vars, true, &w, &e), -1);
    assert_error_msg(e, "unterminated quote in \"open");
    assert_int_equal(cf_words("${A", &vars, true, &w, &e), -1);
    hull_error_free(&e);
    /* No vars: $ is literal (RUN's text is the shell's business). */
    assert_int_equal(cf_words("$A '$A'", NULL, true, &w, &e), 0);
    assert_string_equal(w[0], "$A");
    assert_string_equal(w[1], "$A");
    hull_strv_free(w);
    assert_string_equal(cf_var_get(&vars, "A"), "apple");
    assert_null(cf_var_get(&vars, "AP"));
}

static void ignore_patterns(void **state)
{
    (void)state;
    char *const pats[] = {"*.log", "build", "docs/**/*.tmp", "!keep.log", NULL};
    assert_true(build_ignored(pats, "a.log"));
    assert_false(build_ignored(pats, "keep.log"));  /* the later negation wins */
    assert_false(build_ignored(pats, "sub/a.log")); /* * does not cross / */
    assert_true(build_ignored(pats, "build"));
    assert_true(build_ignored(pats, "build/x/y")); /* a directory's contents go with it */
    assert_true(build_ignored(pats, "docs/a/b/c.tmp"));
    assert_false(build_ignored(pats, "docs/c.txt"));
    assert_false(build_ignored(pats, "src/main.c"));
    assert_false(build_ignored(NULL, "a.log"));
}

/* Every prefix of a file full of edge cases parses or fails cleanly, and
 * its arguments split and substitute or fail cleanly (ASan in CI). */
static void prefixes(void **state)
{
    (void)state;
    static const char text[] =
        "ARG B=\"b a\"se\nFROM ${B:-x} AS y\nENV K=\"v \\\" w\" L='$K' M=${K:+${L}}\\\n"
        "  N=\\$K\nRUN [\"a\", \"b\"\nCOPY --chown=1 [\"s\", \"d\"]\n"
        "LABEL \"k k\"=v ${NOPE-d}\r\nCMD []\n# c\n  \t\nEXPOSE 80/udp \\";
    struct cf_vars vars = {{env_a, env_b}};
    for (size_t n = 0; n <= sizeof(text) - 1; n++) {
        struct containerfile cf;
        hull_error e = NULL;
        if (containerfile_parse(text, n, "C", &cf, &e) < 0) {
            assert_non_null(e);
            hull_error_free(&e);
            continue;
        }
        for (size_t i = 0; i < cf.n; i++) {
            for (int split = 0; split < 2; split++) {
                char **w = NULL;
                if (cf_words(cf.v[i].args, &vars, split, &w, &e) < 0) {
                    assert_null(w);
                    hull_error_free(&e);
                }
                hull_strv_free(w);
            }
            free(cf_instr_text(&cf.v[i]));
        }
        containerfile_free(&cf);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(lines),        cmocka_unit_test(errors),
        cmocka_unit_test(substitution), cmocka_unit_test(ignore_patterns),
        cmocka_unit_test(prefixes),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
