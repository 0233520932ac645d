/* Unit tests of the queue code that needs no Redis: URL parsing (every
 * part and every way it can be wrong), job ids and key names. The protocol
 * itself runs against a real redis-server in tests/integration/test_queue.py. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "service/queue.h"
#include "service/redis.h"
#include "util/error.h"

static struct hull_redis_url parse_ok(const char *url)
{
    struct hull_redis_url u;
    hull_error err = NULL;
    int r = hull_redis_url_parse(url, &u, &err);
    if (r != 0)
        fail_msg("%s: %s", url, hull_error_msg(err));
    return u;
}

static void parse_bad(const char *url, const char *msg)
{
    struct hull_redis_url u;
    hull_error err = NULL;
    assert_int_equal(hull_redis_url_parse(url, &u, &err), -1);
    if (strstr(hull_error_msg(err), msg) == NULL)
        fail_msg("%s: '%s' does not say '%s'", url, hull_error_msg(err), msg);
    hull_error_free(&err);
}

static void test_url_host_port_db(void **state)
{
    (void)state;
    struct hull_redis_url u = parse_ok("redis://127.0.0.1:6380/3");
    assert_string_equal(u.host, "127.0.0.1");
    assert_int_equal(u.port, 6380);
    assert_int_equal(u.db, 3);
    assert_string_equal(u.password, "");
    u = parse_ok("redis://cache.local");
    assert_string_equal(u.host, "cache.local");
    assert_int_equal(u.port, 6379);
    assert_int_equal(u.db, 0);
    u = parse_ok("redis://[::1]:7000/");
    assert_string_equal(u.host, "::1");
    assert_int_equal(u.port, 7000);
    u = parse_ok("redis://[fe80::1]");
    assert_string_equal(u.host, "fe80::1");
    assert_int_equal(u.port, 6379);
}

static void test_url_credentials(void **state)
{
    (void)state;
    struct hull_redis_url u = parse_ok("redis://worker:s%40cr%3At@h:1");
    assert_string_equal(u.user, "worker");
    assert_string_equal(u.password, "s@cr:t");
    u = parse_ok("redis://:onlypass@h");
    assert_string_equal(u.user, "");
    assert_string_equal(u.password, "onlypass");
    u = parse_ok("redis://lonepass@h");
    assert_string_equal(u.user, "");
    assert_string_equal(u.password, "lonepass");
}

static void test_url_unix(void **state)
{
    (void)state;
    struct hull_redis_url u = parse_ok("unix:///run/redis/redis.sock?db=2");
    assert_string_equal(u.path, "/run/redis/redis.sock");
    assert_int_equal(u.db, 2);
    assert_string_equal(u.host, "");
}

static void test_url_errors(void **state)
{
    (void)state;
    parse_bad("", "empty");
    parse_bad("http://h", "must start with redis://");
    parse_bad("rediss://h", "TLS");
    parse_bad("redis://", "no host");
    parse_bad("redis://:6379", "no host");
    parse_bad("redis://h:0", "port must be 1-65535");
    parse_bad("redis://h:70000", "port must be 1-65535");
    parse_bad("redis://h:12ab", "port must be 1-65535");
    parse_bad("redis://h:", "bad port");
    parse_bad("redis://h/x", "database must be a number");
    parse_bad("redis://h/-1", "database must be a number");
    parse_bad("redis://[::1", "unclosed");
    parse_bad("redis://[::1]x", "junk after");
    parse_bad("redis://u:%zz@h", "bad password");
    parse_bad("redis://u:%00@h", "bad password");
    parse_bad("unix://relative.sock", "absolute");
    parse_bad("unix:///s.sock?x=1", "?db=N");
}

static void test_ids_and_keys(void **state)
{
    (void)state;
    assert_true(hull_queue_id_valid("0123456789abcdef0123456789abcdef"));
    assert_false(hull_queue_id_valid("0123456789ABCDEF0123456789abcdef"));
    assert_false(hull_queue_id_valid("0123456789abcdef"));
    assert_false(hull_queue_id_valid("*"));
    assert_false(hull_queue_id_valid(NULL));
    char k[HULL_QUEUE_KEY_MAX];
    assert_string_equal(hull_queue_key(k, "processing", "host:12"), "hull:processing:host:12");
}

static void test_submit_refuses_bad_requests_before_connecting(void **state)
{
    (void)state;
    /* Nothing listens on port 1: a request that got that far would fail
     * with a connection error, not with the field's path. */
    char *id = (char *)"untouched";
    hull_error err = NULL;
    assert_int_equal(hull_queue_submit("redis://127.0.0.1:1", "{\"cmd\": []}", &id, &err), -1);
    assert_null(id);
    assert_string_equal(hull_error_msg(err),
                        "queue submit: cmd: must be a non-empty array of strings");
    hull_error_free(&err);
    assert_int_equal(hull_queue_submit("redis://127.0.0.1:1",
                                       "{\"cmd\": [\"true\"], \"max_attempts\": 101}", &id, &err),
                     -1);
    assert_non_null(strstr(hull_error_msg(err), "max_attempts"));
    hull_error_free(&err);
    assert_int_equal(hull_queue_submit("nope://", "{\"cmd\": [\"true\"]}", &id, &err), -1);
    assert_non_null(strstr(hull_error_msg(err), "must start with redis://"));
    hull_error_free(&err);
    char *res = NULL;
    assert_int_equal(hull_queue_result("redis://127.0.0.1:1", "../../etc", &res, &err), -1);
    assert_int_equal(hull_error_code(err), ENOENT);
    hull_error_free(&err);
}

/* The password never in a message, nor in argv once scrubbed. */
static void test_url_password_hidden(void **state)
{
    (void)state;
    char out[256];
    hull_redis_url_shown("redis://w:s%40cr@h:1/2", out, sizeof(out));
    assert_string_equal(out, "redis://w:***@h:1/2");
    hull_redis_url_shown("redis://secret@h", out, sizeof(out));
    assert_string_equal(out, "redis://***@h");
    hull_redis_url_shown("redis://h:1", out, sizeof(out));
    assert_string_equal(out, "redis://h:1");
    hull_redis_url_shown("unix:///run/r.sock?db=1", out, sizeof(out));
    assert_string_equal(out, "unix:///run/r.sock?db=1");
    char argv1[] = "redis://w:pw@h:1";
    hull_redis_url_scrub(argv1);
    assert_string_equal(argv1, "redis://w:**@h:1");
    parse_bad("redis://w:pw%zz@h", "redis URL redis://w:***@h: bad password");
    parse_bad("redis://w:hidden@h:0", "redis URL redis://w:***@h:0: port");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_url_host_port_db),
        cmocka_unit_test(test_url_credentials),
        cmocka_unit_test(test_url_unix),
        cmocka_unit_test(test_url_errors),
        cmocka_unit_test(test_url_password_hidden),
        cmocka_unit_test(test_ids_and_keys),
        cmocka_unit_test(test_submit_refuses_bad_requests_before_connecting),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
