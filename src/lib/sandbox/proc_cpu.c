/* The program's CPU time, as a one-shot run's supervisor watches it
 * against --cpu-time: from the sandbox's cgroup, or without one (process
 * isolation) from the init's process tree in /proc; in both, less what the
 * sandbox used itself before the program started. */
#include <dirent.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "linux/cgroup.h"
#include "sandbox/sandbox.h"
#include "util/error.h"
#include "util/fs.h"
#include "util/log.h"

/* The processes looked at in one poll, at most: more than any --pids
 * allows (RLIMIT_NPROC counts threads too), so the bound never cuts. */
#define PROC_WALK_MAX 8192

/* utime + stime + cutime + cstime of one process, in clock ticks: its own
 * threads and every child it reaped. False if it is gone, or if the pid
 * now names a process whose parent is not parent (reused meanwhile; 0:
 * any parent). */
static bool stat_ticks(pid_t pid, pid_t parent, unsigned long long *ticks)
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
     * 4 the parent, 14-17 are utime, stime, cutime, cstime. */
    char *p = strrchr(buf, ')');
    unsigned long long t[4];
    int ppid;
    if (p == NULL ||
        sscanf(p + 2, "%*c %d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu %llu %llu", &ppid,
               &t[0], &t[1], &t[2], &t[3]) != 5 ||
        (parent > 0 && ppid != parent))
        return false;
    *ticks = t[0] + t[1] + t[2] + t[3];
    return true;
}

struct walk {
    pid_t pid, parent;
};

/* Append the children of every thread of pid to q (a thread's children
 * file lists the processes that thread made). */
static void add_children(pid_t pid, struct walk *q, size_t *n)
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
        char cpath[320];
        snprintf(cpath, sizeof(cpath), "/proc/%d/task/%s/children", (int)pid, de->d_name);
        cleanup_close int fd = open(cpath, O_RDONLY | O_CLOEXEC);
        cleanup_free char *buf = NULL;
        size_t len = 0;
        hull_error e = NULL;
        /* Whole: an init can have thousands of orphans. */
        if (fd < 0 || hull_read_fd_max(fd, PROC_WALK_MAX * 12, &buf, &len, &e) < 0) {
            hull_error_free(&e); /* gone meanwhile, as above */
            continue;
        }
        char *save = NULL;
        for (char *tok = strtok_r(buf, " \n", &save); tok && *n < PROC_WALK_MAX;
             tok = strtok_r(NULL, " \n", &save))
            q[(*n)++] = (struct walk){(pid_t)atoi(tok), pid};
    }
    closedir(d);
}

/* CPU time so far of a sandbox without a cgroup (process isolation): every
 * process of the init's tree, each with what it reaped. Nothing is counted
 * twice: each process is read before its children are listed, and its
 * cutime holds only children already gone. A process that ends unreaped
 * while the sandbox is killed takes the time since the last poll with it. */
static bool proc_cpu_ms(pid_t init, uint64_t *ms, size_t *procs)
{
    unsigned long long total = 0, t;
    if (!stat_ticks(init, 0, &total))
        return false;
    struct walk *q = malloc(PROC_WALK_MAX * sizeof(*q));
    if (q == NULL)
        return false;
    size_t n = 0;
    add_children(init, q, &n);
    /* Breadth first: q grows behind i as each process's children are
     * found (a child's pid is its parent's; a tree cannot loop). */
    for (size_t i = 0; i < n; i++) {
        if (!stat_ticks(q[i].pid, q[i].parent, &t))
            continue; /* reaped meanwhile: in its parent's cutime now */
        total += t;
        add_children(q[i].pid, q, &n);
    }
    free(q);
    *procs = n + 1;
    long hz = sysconf(_SC_CLK_TCK);
    *ms = total * 1000ull / (unsigned long long)(hz > 0 ? hz : 100);
    return true;
}

/* How often the supervisor reads the CPU time: on a clock of its own, not
 * at every wakeup (a program writing line by line wakes it thousands of
 * times a second). */
#define CPU_POLL_NS HULL_SANDBOX_CPU_POLL_NS
/* At process level a read walks the process tree, some µs a process: it
 * is spaced out to stay a few percent of a CPU however many processes
 * --pids allows (RLIMIT_CPU holds each of them meanwhile). */
#define CPU_POLL_NS_PER_PROC 200000ull

/* The CPU the sandbox used before SYNC_START: the init's setup (its
 * mounts, the copy-ins it wrote into /tmp, its id maps) and, on cgroup v1,
 * the runtime's clone from inside the cgroup. Until START the init is
 * blocked on the sync socket and the program does not exist, so the
 * number is still while it is read. It is the sandbox's cost, not the
 * program's: it is neither reported nor held against --cpu-time. */
void hull_sandbox_cpu_start(struct hull_sandbox_cpu *c, struct hull_cgroup *cg, pid_t init,
                            uint64_t limit_ms)
{
    *c = (struct hull_sandbox_cpu){.cgroup = cg, .init = init, .limit_ms = limit_ms};
    if (cg) {
        hull_error e = NULL;
        if (hull_cgroup_cpu_usage(cg, &c->setup_ns, &e) < 0) {
            /* Unknown: the program is charged for the setup too. */
            hull_debug("sandbox: setup cpu: %s", hull_error_msg(e));
            hull_error_free(&e);
            c->setup_ns = 0;
        }
        return;
    }
    /* No cgroup: the init's own clock, which its rusage (the run's CPU
     * time at this level) and the tree's sum will include. */
    clockid_t clk;
    struct timespec ts;
    if (clock_getcpuclockid(init, &clk) == 0 && clock_gettime(clk, &ts) == 0)
        c->setup_ns = (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

uint64_t hull_sandbox_cpu_program_ns(const struct hull_sandbox_cpu *c, uint64_t sandbox_ns)
{
    return sandbox_ns > c->setup_ns ? sandbox_ns - c->setup_ns : 0;
}

bool hull_sandbox_cpu_over(struct hull_sandbox_cpu *c, uint64_t now, uint64_t *next)
{
    uint64_t ns = 0, interval = CPU_POLL_NS;
    bool known;
    if (c->cgroup) {
        hull_error e = NULL;
        known = hull_cgroup_cpu_usage(c->cgroup, &ns, &e) == 0;
        hull_error_free(&e); /* unknown: read again at the next tick */
    } else {
        uint64_t ms = 0;
        size_t procs = 0;
        known = proc_cpu_ms(c->init, &ms, &procs);
        ns = ms * 1000000ull;
        if (procs * CPU_POLL_NS_PER_PROC > interval)
            interval = procs * CPU_POLL_NS_PER_PROC;
    }
    *next = now + interval;
    uint64_t used_ms = hull_sandbox_cpu_program_ns(c, ns) / 1000000ull;
    if (known && used_ms > c->seen_ms)
        c->seen_ms = used_ms;
    return known && used_ms >= c->limit_ms;
}
