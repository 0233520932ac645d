#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "util/clock.h"
#include "util/error.h"
#include "util/json.h"
#include "util/log.h"

static int log_fd = -1; /* -1: stderr, text */
static bool log_json;
static bool log_debug;

static const char *level_name[] = {"error", "warning", "info", "debug"};

int hull_log_init(const char *path, const char *format, bool debug, hull_error *err)
{
    log_debug = debug;
    if (format != NULL) {
        if (strcmp(format, "json") == 0)
            log_json = true;
        else if (strcmp(format, "text") == 0)
            log_json = false;
        else
            return hull_error_set(err, EINVAL, "--log-format: unknown format '%s' (text or json)",
                                  format);
    }
    if (path != NULL && path[0] != '\0') {
        int fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
        if (fd < 0)
            return hull_error_errno(err, "--log: open %s", path);
        if (log_fd >= 0)
            close(log_fd);
        log_fd = fd;
    }
    return 0;
}

void hull_log_set_debug(bool debug)
{
    log_debug = debug;
}

bool hull_log_debug_enabled(void)
{
    return log_debug;
}

int hull_log_fd(void)
{
    return log_fd;
}

void hull_log(enum hull_log_level level, const char *fmt, ...)
{
    int saved = errno;
    char msg[4096];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);

    char line[8192];
    int n;
    if (log_json && log_fd >= 0) {
        char ts[64];
        hull_rfc3339_now(ts, sizeof(ts));
        char *quoted = hull_json_quote(msg);
        n = snprintf(line, sizeof(line), "{\"level\":\"%s\",\"msg\":%s,\"time\":\"%s\"}\n",
                     level_name[level], quoted ? quoted : "\"\"", ts);
        free(quoted);
    } else {
        if (level == HULL_LOG_ERROR)
            n = snprintf(line, sizeof(line), "hull: %s\n", msg);
        else
            n = snprintf(line, sizeof(line), "hull: %s: %s\n", level_name[level], msg);
    }
    if (n >= 0) {
        if ((size_t)n >= sizeof(line))
            n = sizeof(line) - 1;
        /* One write per line keeps lines whole when several processes share the file. */
        if (write(log_fd >= 0 ? log_fd : STDERR_FILENO, line, (size_t)n) < 0) {
            /* nowhere left to report it */
        }
    }
    errno = saved;
}
