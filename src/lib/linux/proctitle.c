/* Hiding the host's command line from the processes of a container.
 *
 * The kernel serves /proc/<pid>/cmdline to anyone who can see the pid,
 * whatever the process's dumpability, from the range [arg_start, arg_end)
 * of its memory. A fork of hull that a container can see (its init until
 * execve, the sandbox's reaper which never execs, a process joining by
 * `exec`) would show the host's `hull ... --bundle /host/path` or `hulld
 * --helper worker --state-dir /host/path`. Overwriting the strings in place
 * would break the parsed spec, whose strings may point into them, so the
 * range itself is moved to a static title: PR_SET_MM_MAP, which an
 * unprivileged process may use on its own mm as long as it changes neither
 * the executable nor the auxiliary vector. Every other field is passed back
 * unchanged, read from /proc/self/stat (brk from sbrk(0), which stat lacks).
 */
#include <errno.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <linux/prctl.h>
#include <sys/prctl.h>
#include <unistd.h>

#include "linux/proctitle.h"
#include "util/error.h"
#include "util/fs.h"

/* The command line every hidden process shows: static, so its address
 * stays valid in every fork, and in the data segment, which the kernel
 * accepts as a command line's place. */
static char title_buf[16];

/* Fields of /proc/self/stat, numbered as proc(5) does. */
enum { F_STARTCODE = 26, F_ENDCODE, F_STARTSTACK, F_START_DATA = 45, F_END_DATA, F_START_BRK };

static int read_stat_fields(uint64_t f[52], hull_error *err)
{
    cleanup_free char *buf = NULL;
    size_t len;
    if (hull_read_file("/proc/self/stat", &buf, &len, err) < 0)
        return -1;
    /* The task name may hold spaces and parentheses: fields restart after
     * the last ')'. Field 3 is the state letter. */
    char *p = strrchr(buf, ')');
    if (p == NULL || p[1] != ' ')
        return hull_error_set(err, EINVAL, "/proc/self/stat: unexpected format");
    p += 2;
    int i = 3;
    for (char *save = NULL, *tok = strtok_r(p, " \n", &save); tok && i < 52;
         tok = strtok_r(NULL, " \n", &save), i++)
        f[i] = strtoull(tok, NULL, 10);
    if (i <= F_START_BRK)
        return hull_error_set(err, EINVAL, "/proc/self/stat: only %d fields", i - 1);
    return 0;
}

/* Set once done: a fork keeps the hidden range, and a second call after
 * joining another mount namespace could not read /proc/self there. */
static bool hidden;

int hull_proc_hide_host_argv(const char *title, hull_error *err)
{
    if (hidden)
        return 0;
    uint64_t f[52] = {0};
    if (read_stat_fields(f, err) < 0)
        return hull_error_prefix(err, "hide the host's command line");
    snprintf(title_buf, sizeof(title_buf), "%s", title);
    uint64_t arg = (uintptr_t)title_buf;
    struct prctl_mm_map m = {
        .start_code = f[F_STARTCODE],
        .end_code = f[F_ENDCODE],
        .start_data = f[F_START_DATA],
        .end_data = f[F_END_DATA],
        .start_brk = f[F_START_BRK],
        .brk = (uintptr_t)sbrk(0),
        .start_stack = f[F_STARTSTACK],
        .arg_start = arg,
        .arg_end = arg + strlen(title_buf) + 1, /* with its NUL: one argument */
        .env_start = arg + strlen(title_buf) + 1,
        .env_end = arg + strlen(title_buf) + 1, /* an empty environment */
        .auxv = NULL,
        .auxv_size = 0,
        .exe_fd = (uint32_t)-1,
    };
    /* Safe: only this process's own view in /proc changes; the code, data,
     * heap and stack bounds are passed back as the kernel reported them. */
    if (prctl(PR_SET_MM, PR_SET_MM_MAP, (unsigned long)&m, sizeof(m), 0) < 0)
        return hull_error_errno(err, "hide the host's command line: prctl(PR_SET_MM_MAP)");
    /* The task name is argv[0]'s base name: "hull" or "hulld". */
    if (prctl(PR_SET_NAME, (unsigned long)title_buf, 0, 0, 0) < 0)
        return hull_error_errno(err, "hide the host's command line: prctl(PR_SET_NAME)");
    hidden = true;
    return 0;
}
