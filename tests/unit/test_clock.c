/* util/clock: the millisecond clocks vm/ and others time deadlines with. */
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

int main(void)
{
    const struct CMUnitTest tests[] = {cmocka_unit_test(monotonic_ms),
                                       cmocka_unit_test(realtime_ms)};
    return cmocka_run_group_tests(tests, NULL, NULL);
}
