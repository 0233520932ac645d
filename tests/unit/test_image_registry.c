/* The registry client's offline parts: registries.conf (mirrors.c),
 * credentials from --creds and auth files (auth.c), status -> error
 * (registry.c), the progress view's summary line (progress.c). The network
 * parts are tested against a real registry in
 * tests/integration/test_image_registry.py. */
#include "unit.h"

#include "image/registry.h"

static char *write_tmp(const char *dir, const char *name, const char *text)
{
    char *p = NULL;
    assert_true(asprintf(&p, "%s/%s", dir, name) > 0);
    hull_error err = NULL;
    if (hull_write_path_atomic(p, text, strlen(text), 0600, &err) < 0)
        fail_msg("%s: %s", p, hull_error_msg(err));
    return p;
}

static void endpoints(const char *conf, const char *reg, const char *repo, bool pull,
                      const char *expect)
{
    struct image_registry_opts o = {.registries_conf = conf};
    struct reg_endpoint *e = NULL;
    size_t n = 0;
    hull_error err = NULL;
    if (reg_endpoints(reg, repo, &o, pull, &e, &n, &err) < 0)
        fail_msg("%s/%s: %s", reg, repo, hull_error_msg(err));
    char got[1024] = "";
    for (size_t i = 0; i < n; i++) {
        size_t k = strlen(got);
        snprintf(got + k, sizeof(got) - k, "%s%s/%s%s", i ? " " : "", e[i].host, e[i].repository,
                 e[i].insecure ? "!" : "");
    }
    reg_endpoints_free(e, n);
    assert_string_equal(got, expect);
}

static void mirrors_conf(void **state)
{
    (void)state;
    char *dir = unit_mkdtemp();
    char *conf = write_tmp(dir, "registries.conf",
                           "# comment\n"
                           "unqualified-search-registries = [\"a.io\",\n  \"b.io\"]\n"
                           "[aliases]\n"
                           "x = \"y\"\n"
                           "\n"
                           "[[registry]]\n"
                           "prefix = \"example.com\"\n"
                           "location = \"10.0.0.1:5000\"   # the real one\n"
                           "insecure = true\n"
                           "[[registry.mirror]]\n"
                           "location = \"m1.local/cache\"\n"
                           "[[registry.mirror]]\n"
                           "location = 'm2.local:81'\n"
                           "insecure = true\n"
                           "\n"
                           "[[registry]]\n"
                           "prefix = \"example.com/team/special\"\n"
                           "location = \"special.io/s\"\n"
                           "\n"
                           "[[registry]]\n"
                           "location = \"plain.io\"\n");
    endpoints(conf, "example.com", "team/app", true,
              "m1.local/cache/team/app m2.local:81/team/app! 10.0.0.1:5000/team/app!");
    /* Pushes ignore mirrors. */
    endpoints(conf, "example.com", "team/app", false, "10.0.0.1:5000/team/app!");
    /* The longest prefix wins; whole components only. */
    endpoints(conf, "example.com", "team/special/x", true, "special.io/s/x");
    endpoints(conf, "example.com", "team/specialist", true,
              "m1.local/cache/team/specialist m2.local:81/team/specialist! "
              "10.0.0.1:5000/team/specialist!");
    endpoints(conf, "plain.io", "lib/a", true, "plain.io/lib/a");
    endpoints(conf, "other.io", "lib/a", true, "other.io/lib/a");

    char *bad = write_tmp(dir, "bad.conf", "[[registry]]\nprefix example.com\n");
    struct image_registry_opts o = {.registries_conf = bad};
    struct reg_endpoint *e = NULL;
    size_t n = 0;
    hull_error err = NULL;
    assert_int_equal(reg_endpoints("example.com", "a", &o, true, &e, &n, &err), -1);
    assert_non_null(strstr(hull_error_msg(err), "bad.conf:2: expected KEY = VALUE"));
    hull_error_free(&err);
    o.registries_conf = "/nonexistent/registries.conf";
    assert_int_equal(reg_endpoints("example.com", "a", &o, true, &e, &n, &err), -1);
    assert_int_equal(hull_error_code(err), ENOENT);
    hull_error_free(&err);
    free(conf);
    free(bad);
    unit_rmdir(dir);
}

static void lookup(const struct image_registry_opts *o, const char *host, const char *expect)
{
    char *got = NULL;
    hull_error err = NULL;
    if (reg_auth_lookup(host, o, &got, &err) < 0)
        fail_msg("%s: %s", host, hull_error_msg(err));
    if (expect)
        assert_string_equal(got ? got : "(none)", expect);
    else
        assert_null(got);
    free(got);
}

static void credentials(void **state)
{
    (void)state;
    char *dir = unit_mkdtemp();
    /* "alice:pw" and "bob:x:y" (a password may hold ':') */
    char *a = write_tmp(dir, "a.json",
                        "{\"auths\": {\"r.io\": {\"auth\": \"YWxpY2U6cHc=\"},"
                        " \"https://s.io\": {\"auth\": \"Ym9iOng6eQ==\"}}}");
    char *bad = write_tmp(dir, "bad.json", "{\"auths\": {\"r.io\": {\"auth\": \"bm9jb2xvbg==\"}}}");
    char *home = NULL;
    assert_true(asprintf(&home, "%s/home", dir) > 0);
    char *dockerdir = NULL;
    assert_true(asprintf(&dockerdir, "%s/.docker", home) > 0);
    hull_error err = NULL;
    assert_int_equal(hull_mkdir_p(dockerdir, 0700, &err), 0);
    char *dc = write_tmp(dockerdir, "config.json",
                         "{\"auths\": {\"https://index.docker.io/v1/\": {\"auth\": "
                         "\"ZDpodWI=\"}}}");
    setenv("HOME", home, 1);
    unsetenv("XDG_RUNTIME_DIR");
    unsetenv("REGISTRY_AUTH_FILE");

    struct image_registry_opts o = {.auth_file = a};
    lookup(&o, "r.io", "alice:pw");
    lookup(&o, "s.io", "bob:x:y");
    lookup(&o, "t.io", NULL);
    o.creds = "carol:secret"; /* --creds wins */
    lookup(&o, "r.io", "carol:secret");
    o.creds = "nocolon";
    char *got = NULL;
    assert_int_equal(reg_auth_lookup("r.io", &o, &got, &err), -1);
    assert_error_msg(err, "--creds: expected USER:PASSWORD");

    /* Without --authfile: $REGISTRY_AUTH_FILE, then ~/.docker/config.json. */
    o = (struct image_registry_opts){0};
    setenv("REGISTRY_AUTH_FILE", a, 1);
    lookup(&o, "r.io", "alice:pw");
    lookup(&o, "docker.io", "d:hub");
    unsetenv("REGISTRY_AUTH_FILE");
    lookup(&o, "r.io", NULL);

    o.auth_file = bad;
    assert_int_equal(reg_auth_lookup("r.io", &o, &got, &err), -1);
    assert_non_null(strstr(hull_error_msg(err), "not base64(user:pass)"));
    hull_error_free(&err);
    free(a);
    free(bad);
    free(dc);
    free(home);
    free(dockerdir);
    unit_rmdir(dir);
}

static void status_errors(void **state)
{
    (void)state;
    struct {
        long status;
        const char *body, *what, *expect;
        int code;
    } cases[] = {
        {401, "{\"errors\":[{\"code\":\"UNAUTHORIZED\",\"message\":\"authentication required\"}]}",
         "manifest", "authentication required", EACCES},
        {403, "{\"errors\":[{\"code\":\"DENIED\",\"message\":\"no pushing here\"}]}", NULL,
         "access denied (no pushing here)", EPERM},
        {404, "", "manifest", "manifest unknown", ENOENT},
        {404, "", "blob", "blob unknown", ENOENT},
        {429, "slow down", NULL, "too many requests (retry later)", EAGAIN},
        {503, "<html>", NULL, "registry error 503", EIO},
        {418, "", NULL, "unexpected status 418", EPROTO},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct reg_resp r = {
            .status = cases[i].status, .body = strdup(cases[i].body), .len = strlen(cases[i].body)};
        hull_error err = NULL;
        assert_int_equal(reg_status_error(&r, cases[i].what, &err), -1);
        assert_int_equal(hull_error_code(err), cases[i].code);
        assert_error_msg(err, cases[i].expect);
        reg_resp_free(&r);
    }
}

static void progress_summary(void **state)
{
    (void)state;
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    struct image_progress_view *v = image_progress_view_new(f, false);
    image_progress_view_cb(v, "manifest", "done", 500, 500);
    image_progress_view_cb(v, "config", "fetching", 0, 100);
    image_progress_view_cb(v, "config", "done", 100, 100);
    image_progress_view_cb(v, "aaaaaaaaaaaa", "exists", 1000, 1000);
    image_progress_view_cb(v, "bbbbbbbbbbbb", "fetching", 0, 2000000);
    image_progress_view_cb(v, "bbbbbbbbbbbb", "fetching", 1500000, 2000000);
    image_progress_view_cb(v, "bbbbbbbbbbbb", "done", 2000000, 2000000);
    image_progress_view_cb(v, "cccccccccccc", "done", 500000, 500000);
    image_progress_view_finish(v, "pulled x/y:1");
    fclose(f);
    /* Not a terminal: nothing until the one summary line. */
    assert_non_null(strstr(buf, "pulled x/y:1: 3 layers, 2.5 MB in "));
    assert_non_null(strstr(buf, " s (1 already present)\n"));
    assert_null(strchr(buf, '\033'));
    assert_int_equal(strchr(buf, '\n') - buf + 1, (long)len);
    free(buf);

    buf = NULL;
    f = open_memstream(&buf, &len);
    v = image_progress_view_new(f, true);
    image_progress_view_cb(v, "aaaaaaaaaaaa", "done", 1, 1);
    image_progress_view_finish(v, "pulled x/y:1");
    fclose(f);
    assert_int_equal(len, 0); /* quiet: nothing */
    free(buf);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(mirrors_conf),
        cmocka_unit_test(credentials),
        cmocka_unit_test(status_errors),
        cmocka_unit_test(progress_summary),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
