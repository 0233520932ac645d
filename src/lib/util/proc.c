/* Is a recorded process still the same process: pid plus the start time
 * from /proc/PID/stat, so a reused pid is not taken for the one recorded. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "util/error.h"
#include "util/proc.h"

/* 1: running, *start set; 0: gone (no such pid, or exited and only waiting
 * to be reaped); -1: /proc could not be read (no fds, hidepid...), errno set. */
static int read_start_time(pid_t pid, unsigned long long *start)
{
    char path[64], buf[1024];
    snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
    cleanup_close int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return errno == ENOENT || errno == ESRCH ? 0 : -1;
    ssize_t n = read(fd, buf, sizeof(buf) - 1);
    if (n < 0)
        return errno == ESRCH ? 0 : -1; /* ESRCH: it went between open and read */
    buf[n] = '\0';
    /* comm may hold spaces and parentheses: fields restart after the last ')'. */
    char *p = strrchr(buf, ')');
    if (p == NULL || p[1] == '\0') {
        errno = EINVAL;
        return -1;
    }
    p += 2; /* now at field 3, the state */
    if (*p == 'Z' || *p == 'X')
        return 0;
    for (int field = 3; field < 22 && p; field++) {
        p = strchr(p, ' ');
        if (p)
            p++;
    }
    if (p == NULL) {
        errno = EINVAL;
        return -1;
    }
    *start = strtoull(p, NULL, 10);
    return 1;
}

unsigned long long hull_pid_start_time(pid_t pid)
{
    unsigned long long start = 0;
    return read_start_time(pid, &start) == 1 ? start : 0;
}

int hull_pid_check(pid_t pid, unsigned long long start)
{
    if (pid <= 0)
        return 0;
    unsigned long long now = 0;
    int r = read_start_time(pid, &now);
    return r == 1 ? (start == 0 || now == start) : r;
}

bool hull_pid_alive(pid_t pid, unsigned long long start)
{
    return hull_pid_check(pid, start) == 1;
}

/* The kernel's PF_EXITING (include/linux/sched.h), set in do_exit: a pid
 * namespace's init keeps running there until every other task of its
 * namespace is gone, and no process can join the namespace meanwhile. */
#define HULL_PF_EXITING 0x4UL

bool hull_pid_exiting(pid_t pid)
{
    char path[64], buf[1024];
    snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
    cleanup_close int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return true; /* gone: as good as exiting for the callers */
    ssize_t n = read(fd, buf, sizeof(buf) - 1);
    if (n <= 0)
        return true;
    buf[n] = '\0';
    char *p = strrchr(buf, ')');
    if (p == NULL || p[1] == '\0')
        return false;
    p += 2; /* field 3, the state; the flags are field 9 */
    for (int field = 3; field < 9 && p; field++) {
        p = strchr(p, ' ');
        if (p)
            p++;
    }
    return p != NULL && (strtoul(p, NULL, 10) & HULL_PF_EXITING) != 0;
}

unsigned long long hull_self_start_time(void)
{
    /* Per thread, keyed by pid: a forked child reads its own. A failed read
     * (0) is not kept. */
    static _Thread_local pid_t cached_pid;
    static _Thread_local unsigned long long cached_start;
    pid_t self = getpid();
    if (cached_pid != self || cached_start == 0) {
        cached_start = hull_pid_start_time(self);
        cached_pid = self;
    }
    return cached_start;
}

/* The kernel gives each initial namespace a fixed inode number. */
#define PROC_PID_INIT_INO  0xEFFFFFFCU
#define PROC_TIME_INIT_INO 0xEFFFFFFAU

/* 1: the host's view, 0: not, -1: /proc could not tell (not kept). */
static int read_host_pid_view(void)
{
    struct stat st;
    if (stat("/proc/self/ns/pid", &st) < 0)
        return -1;
    if (st.st_ino != PROC_PID_INIT_INO)
        return 0;
    /* Start times in /proc are shifted by the reader's time namespace (a
     * kernel without time namespaces has no such file: the host's view). */
    if (stat("/proc/self/ns/time", &st) < 0)
        return errno == ENOENT ? 1 : -1;
    return st.st_ino == PROC_TIME_INIT_INO;
}

bool hull_host_pid_view(void)
{
    /* A process's own pid and time namespaces never change (setns and
     * unshare move only its children): read once per process, keyed by
     * pid, so a child cloned into new namespaces reads its own. */
    static _Thread_local pid_t cached_pid;
    static _Thread_local bool cached_view;
    pid_t self = getpid();
    if (cached_pid != self) {
        int view = read_host_pid_view();
        if (view < 0)
            return false;
        cached_view = view == 1;
        cached_pid = self;
    }
    return cached_view;
}

void hull_block_all_signals(uint64_t *old)
{
    uint64_t all = ~(uint64_t)0;
    /* The kernel's mask is 64 bits on every Linux hull builds for. */
    syscall(SYS_rt_sigprocmask, SIG_SETMASK, &all, old, sizeof(all));
}

void hull_restore_signals(const uint64_t *old)
{
    syscall(SYS_rt_sigprocmask, SIG_SETMASK, old, NULL, sizeof(*old));
}
