#include <stdint.h>
#include <stdio.h>
#include <time.h>

#include "util/clock.h"

void hull_rfc3339_now(char *buf, size_t len)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    hull_rfc3339_at(ts, buf, len);
}

void hull_rfc3339_at(struct timespec ts, char *buf, size_t len)
{
    /* Neither strftime nor gmtime_r: glibc reads /etc/localtime (seven
     * syscalls and a zone file parsed on every `create` and sandbox run)
     * on the first call of either, for a UTC stamp that needs no zone.
     * The proleptic Gregorian date from the day number, in 400-year eras
     * that start on 1 March (so the leap day ends a year). */
    int64_t days = ts.tv_sec / 86400, secs = ts.tv_sec % 86400;
    if (secs < 0) {
        secs += 86400;
        days--;
    }
    days += 719468; /* 1970-01-01 -> 0000-03-01 */
    int64_t era = (days >= 0 ? days : days - 146096) / 146097;
    int64_t doe = days - era * 146097;                                   /* [0, 146096] */
    int64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365; /* [0, 399] */
    int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100);               /* [0, 365] */
    int64_t mp = (5 * doy + 2) / 153;                                    /* [0, 11] */
    int64_t day = doy - (153 * mp + 2) / 5 + 1;
    int64_t month = mp < 10 ? mp + 3 : mp - 9;
    int64_t year = yoe + era * 400 + (month <= 2);
    snprintf(buf, len, "%04lld-%02lld-%02lldT%02lld:%02lld:%02lld.%09ldZ", (long long)year,
             (long long)month, (long long)day, (long long)(secs / 3600),
             (long long)(secs / 60 % 60), (long long)(secs % 60), ts.tv_nsec);
}

uint64_t hull_monotonic_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

int64_t hull_monotonic_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int64_t hull_realtime_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}
