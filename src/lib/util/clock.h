/* Time helpers. */
#ifndef HULL_UTIL_CLOCK_H
#define HULL_UTIL_CLOCK_H

#include <stddef.h>
#include <stdint.h>
#include <time.h>

/* Wall clock as RFC 3339 UTC with nanoseconds: "2025-01-01T00:00:00.123456789Z". */
void hull_rfc3339_now(char *buf, size_t len);
/* The same for a CLOCK_REALTIME time ts (e.g. a cutoff in the past). */
void hull_rfc3339_at(struct timespec ts, char *buf, size_t len);
/* CLOCK_MONOTONIC in nanoseconds. */
uint64_t hull_monotonic_ns(void);
/* CLOCK_MONOTONIC in milliseconds, signed so deadlines and differences
 * can be computed without casts. */
int64_t hull_monotonic_ms(void);
/* CLOCK_REALTIME in milliseconds since the epoch. */
int64_t hull_realtime_ms(void);

#endif
