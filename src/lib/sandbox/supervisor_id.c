/* Sandbox and session ids name their supervisor: "sandbox-PID-START-N-HEX"
 * (one-shot runs) and "session-..." (long-lived sandboxes), made and read
 * here. Judging from an id whether that supervisor is gone is what the
 * cgroup sweep (cleanup.c) and the network files' sweep (network.c) both
 * need: it sits below them. */
#include <errno.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "sandbox/sandbox.h"
#include "util/clock.h"
#include "util/proc.h"

void hull_sandbox_new_id(const char *kind, char *buf, size_t len)
{
    static atomic_uint counter;
    /* A pid or start time read in another pid or time namespace means
     * nothing to the host's sweep: such a supervisor marks its pid ("n"
     * before it), and its runs are never swept. */
    snprintf(buf, len, "%s-%s%d-%llu-%u-%lx", kind, hull_host_pid_view() ? "" : "n", (int)getpid(),
             hull_self_start_time(), atomic_fetch_add(&counter, 1),
             (unsigned long)(hull_monotonic_ns() & 0xffffff));
}

/* A decimal number of at most max, followed by '-'; *s moves past both. */
static bool take_number(const char **s, unsigned long long max, unsigned long long *out)
{
    const char *p = *s;
    unsigned long long v = 0;
    if (*p < '0' || *p > '9')
        return false;
    for (; *p >= '0' && *p <= '9'; p++) {
        if (v > (max - (unsigned)(*p - '0')) / 10)
            return false;
        v = v * 10 + (unsigned)(*p - '0');
    }
    if (*p != '-')
        return false;
    *s = p + 1;
    *out = v;
    return true;
}

/* Lower-case hex to the end of the string. */
static bool is_hex_tail(const char *s)
{
    if (*s == '\0')
        return false;
    for (; *s; s++)
        if (!((*s >= '0' && *s <= '9') || (*s >= 'a' && *s <= 'f')))
            return false;
    return true;
}

/* The supervisor a sandbox or session id names: "sandbox-PID-START-N-HEX",
 * or "sandbox-PID-N-HEX" from a hull before the start time was in it
 * (*start 0: the pid alone). false: anything else, "sandbox-nPID-..." too. */
static bool id_supervisor(const char *name, int *pid, unsigned long long *start)
{
    if (strncmp(name, "sandbox-", 8) != 0 && strncmp(name, "session-", 8) != 0)
        return false;
    const char *s = name + 8;
    unsigned long long p, a, b;
    if (!take_number(&s, 4194304, &p) || p == 0 || !take_number(&s, ~0ULL, &a))
        return false;
    *pid = (int)p;
    *start = 0;
    if (is_hex_tail(s)) /* PID-N-HEX */
        return true;
    if (!take_number(&s, ~0U, &b) || !is_hex_tail(s))
        return false;
    *start = a;
    return true;
}

bool hull_sandbox_id_orphaned(const char *id)
{
    int pid;
    unsigned long long start;
    if (!id_supervisor(id, &pid, &start))
        return false;
    if (kill(pid, 0) < 0 && errno == ESRCH)
        return true;
    return hull_pid_check(pid, start) == 0; /* a zombie, or the pid reused */
}
