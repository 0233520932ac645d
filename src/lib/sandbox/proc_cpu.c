/* CPU time of a sandbox without a cgroup (process isolation), from /proc:
 * what the supervisor polls against --cpu-time there. */
#include <dirent.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "sandbox/sandbox.h"

/* The processes looked at in one poll, at most: more than any --pids
 * allows (RLIMIT_NPROC counts threads too), so the bound never cuts. */
#define PROC_WALK_MAX 8192

/* utime + stime + cutime + cstime of one process, in clock ticks: its own
 * threads and every child it reaped. */
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

/* Append the children of every thread of pid to q (a thread's children
 * file lists the processes that thread made). */
static void add_children(pid_t pid, pid_t *q, size_t *n)
{
    char path[64];
    snprintf(path, sizeof(path), "/proc/%d/task", (int)pid);
    DIR *d = opendir(path);
    if (d == NULL)
        return; /* gone meanwhile: it and its children count once reaped */
    struct dirent *de;
    while ((de = readdir(d)) != NULL && *n < PROC_WALK_MAX) {
        if (de->d_name[0] < '0' || de->d_name[0] > '9')
            continue;
        char buf[4096], cpath[320];
        snprintf(cpath, sizeof(cpath), "/proc/%d/task/%s/children", (int)pid, de->d_name);
        int fd = open(cpath, O_RDONLY | O_CLOEXEC);
        ssize_t len = fd < 0 ? -1 : read(fd, buf, sizeof(buf) - 1);
        if (fd >= 0)
            close(fd);
        if (len <= 0)
            continue;
        buf[len] = '\0';
        char *save = NULL;
        for (char *tok = strtok_r(buf, " \n", &save); tok && *n < PROC_WALK_MAX;
             tok = strtok_r(NULL, " \n", &save))
            q[(*n)++] = (pid_t)atoi(tok);
    }
    closedir(d);
}

/* CPU time so far of a sandbox without a cgroup (process isolation): every
 * process of the init's tree, each with what it reaped. Nothing is counted
 * twice: a process's cutime holds only children that are gone. A process
 * that ends unreaped while the sandbox is killed takes the time since the
 * last poll with it. */
bool hull_sandbox_proc_cpu_ms(pid_t init, uint64_t *ms)
{
    unsigned long long total = 0, t;
    if (!stat_ticks(init, &total))
        return false;
    pid_t *q = malloc(PROC_WALK_MAX * sizeof(*q));
    if (q == NULL)
        return false;
    size_t n = 0;
    add_children(init, q, &n);
    /* Breadth first: q grows behind i as each process's children are
     * found (a child's pid is its parent's; a tree cannot loop). */
    for (size_t i = 0; i < n; i++) {
        if (!stat_ticks(q[i], &t))
            continue; /* reaped meanwhile: in its parent's cutime now */
        total += t;
        add_children(q[i], q, &n);
    }
    free(q);
    long hz = sysconf(_SC_CLK_TCK);
    *ms = total * 1000ull / (unsigned long long)(hz > 0 ? hz : 100);
    return true;
}
