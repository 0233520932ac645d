/* Logging for libhull and its front ends.
 *
 * Container engines pass `--log FILE --log-format json` and read the file back
 * to learn why a runtime call failed (containerd's shim takes the last
 * "error" line), so the JSON form mirrors runc's: one object per line with
 * "level", "msg" and "time". Without --log, messages go to stderr.
 */
#ifndef HULL_UTIL_LOG_H
#define HULL_UTIL_LOG_H

#include <stdbool.h>

enum hull_log_level { HULL_LOG_ERROR, HULL_LOG_WARNING, HULL_LOG_INFO, HULL_LOG_DEBUG };

/* Configure the log sink. path NULL keeps stderr; format is "text" or "json". */
int hull_log_init(const char *path, const char *format, bool debug, hull_error *err);
void hull_log_set_debug(bool debug);
bool hull_log_debug_enabled(void);
/* The log fd, for children that must keep logging after fork (-1 = stderr). */
int hull_log_fd(void);

void hull_log(enum hull_log_level level, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

#define hull_debug(...)                                                                            \
    do {                                                                                           \
        if (hull_log_debug_enabled())                                                              \
            hull_log(HULL_LOG_DEBUG, __VA_ARGS__);                                                 \
    } while (0)
#define hull_warn(...) hull_log(HULL_LOG_WARNING, __VA_ARGS__)

#endif
