/* CPU time of a sandbox without a cgroup (process isolation), from /proc:
 * what the supervisor polls against --cpu-time there. */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "sandbox/sandbox.h"

/* utime + stime + cutime + cstime of one process, in clock ticks. */
static bool stat_ticks(pid_t pid, unsigned long long *ticks)
{
    char path[64], buf[1024];
    snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return false;
    ssize_t n = read(fd, buf, sizeof(buf) - 1);
    close(fd);
    if (n <= 0)
        return false;
    buf[n] = '\0';
    /* Fields after the last ')' (comm may hold anything): 3 is the state,
     * 14-17 are utime, stime, cutime, cstime. */
    char *p = strrchr(buf, ')');
    unsigned long long t[4];
    if (p == NULL ||
        sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu %llu %llu", &t[0],
               &t[1], &t[2], &t[3]) != 4)
        return false;
    *ticks = t[0] + t[1] + t[2] + t[3];
    return true;
}

/* CPU time so far of a sandbox without a cgroup (process isolation): the
 * init (the reaper) and its children, each with what it reaped. Processes
 * deeper down count once reaped; RLIMIT_CPU bounds each meanwhile. */
bool hull_sandbox_proc_cpu_ms(pid_t init, uint64_t *ms)
{
    unsigned long long total = 0, t;
    if (!stat_ticks(init, &total))
        return false;
    char path[64], buf[4096];
    snprintf(path, sizeof(path), "/proc/%d/task/%d/children", (int)init, (int)init);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    ssize_t n = fd < 0 ? -1 : read(fd, buf, sizeof(buf) - 1);
    if (fd >= 0)
        close(fd);
    if (n > 0) {
        buf[n] = '\0';
        char *save = NULL;
        for (char *tok = strtok_r(buf, " \n", &save); tok; tok = strtok_r(NULL, " \n", &save))
            if (stat_ticks((pid_t)atoi(tok), &t))
                total += t;
    }
    long hz = sysconf(_SC_CLK_TCK);
    *ms = total * 1000ull / (unsigned long long)(hz > 0 ? hz : 100);
    return true;
}
