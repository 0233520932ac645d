/* Is a recorded process still the same process: pid plus the start time
 * from /proc/PID/stat, so a reused pid is not taken for the one recorded. */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "util/error.h"
#include "util/proc.h"

unsigned long long hull_pid_start_time(pid_t pid)
{
    char path[64], buf[1024];
    snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
    cleanup_close int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return 0;
    ssize_t n = read(fd, buf, sizeof(buf) - 1);
    if (n <= 0)
        return 0;
    buf[n] = '\0';
    /* comm may hold spaces and parentheses: fields restart after the last ')'. */
    char *p = strrchr(buf, ')');
    if (p == NULL || p[1] == '\0')
        return 0;
    p += 2; /* now at field 3, the state */
    if (*p == 'Z' || *p == 'X')
        return 0; /* exited; only waiting to be reaped */
    for (int field = 3; field < 22 && p; field++) {
        p = strchr(p, ' ');
        if (p)
            p++;
    }
    return p ? strtoull(p, NULL, 10) : 0;
}

bool hull_pid_alive(pid_t pid, unsigned long long start)
{
    if (pid <= 0)
        return false;
    unsigned long long now = hull_pid_start_time(pid);
    return now != 0 && (start == 0 || now == start);
}

unsigned long long hull_self_start_time(void)
{
    /* Per thread, keyed by pid: a forked child reads its own. */
    static _Thread_local pid_t cached_pid;
    static _Thread_local unsigned long long cached_start;
    pid_t self = getpid();
    if (cached_pid != self) {
        cached_start = hull_pid_start_time(self);
        cached_pid = self;
    }
    return cached_start;
}

bool hull_in_initial_pid_ns(void)
{
    /* The kernel gives the initial namespaces fixed inode numbers
     * (PROC_PID_INIT_INO for pid). */
    struct stat st;
    return stat("/proc/self/ns/pid", &st) == 0 && st.st_ino == 0xEFFFFFFCU;
}
