/* util/clock: the millisecond clocks vm/ and others time deadlines with. */
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "unit.h"
#include "util/clock.h"

/* Milliseconds of the same monotonic clock as hull_monotonic_ns, never
 * going back. */
static void monotonic_ms(void **state)
{
    (void)state;
    int64_t a = hull_monotonic_ms();
    uint64_t ns = hull_monotonic_ns();
    int64_t b = hull_monotonic_ms();
    assert_true(a >= 0 && a <= b);
    assert_true(a <= (int64_t)(ns / 1000000) && (int64_t)(ns / 1000000) <= b);
    struct timespec d = {0, 30 * 1000 * 1000};
    nanosleep(&d, NULL);
    assert_true(hull_monotonic_ms() - b >= 30);
}

/* Milliseconds since the epoch: time(2) times a thousand, give or take
 * the second the two calls may straddle. */
static void realtime_ms(void **state)
{
    (void)state;
    time_t before = time(NULL);
    int64_t ms = hull_realtime_ms();
    time_t after = time(NULL);
    assert_true(ms / 1000 >= (int64_t)before && ms / 1000 <= (int64_t)after);
}

/* The RFC 3339 stamp (computed by hand, without the zone machinery) is
 * the UTC date and time gmtime_r gives for the same second. */
static void rfc3339_now(void **state)
{
    (void)state;
    for (int tries = 0; tries < 3; tries++) {
        time_t before = time(NULL);
        char buf[64];
        hull_rfc3339_now(buf, sizeof(buf));
        if (time(NULL) != before)
            continue; /* straddled a second: try again */
        struct tm tm;
        gmtime_r(&before, &tm);
        char want[80];
        snprintf(want, sizeof(want), "%04d-%02d-%02dT%02d:%02d:%02d.", tm.tm_year + 1900,
                 tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec);
        assert_int_equal(strlen(buf), strlen(want) + 10);
        assert_memory_equal(buf, want, strlen(want));
        assert_true(buf[strlen(buf) - 1] == 'Z');
        return;
    }
    fail_msg("the clock straddled a second three times");
}

int main(void)
{
    const struct CMUnitTest tests[] = {cmocka_unit_test(monotonic_ms),
                                       cmocka_unit_test(realtime_ms),
                                       cmocka_unit_test(rfc3339_now)};
    return cmocka_run_group_tests(tests, NULL, NULL);
}
