/* Processes by pid and start time: a pid recorded with its start time is
 * "alive" only while that same process runs, never a later one reusing the
 * pid. Used by the container state, the sandbox sweeper and hulld. */
#ifndef HULL_UTIL_PROC_H
#define HULL_UTIL_PROC_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

/* The pid still runs the process recorded with start (not a reused pid);
 * start 0: unknown, trust the pid. A zombie counts as gone. */
bool hull_pid_alive(pid_t pid, unsigned long long start);
/* The same, telling a /proc that cannot be read (no fds left, hidepid: -1,
 * errno set) from a process that is gone (0) or runs (1), for callers that
 * must not remove or kill on a guess. */
int hull_pid_check(pid_t pid, unsigned long long start);
/* The process is on its way out (or gone): it has begun to exit, though it may
 * still wait there for its children (a pid namespace's init) before /proc
 * shows it a zombie. */
bool hull_pid_exiting(pid_t pid);
/* starttime of /proc/PID/stat, 0 when the process is gone. */
unsigned long long hull_pid_start_time(pid_t pid);
/* The calling process's own start time, read once per process. */
unsigned long long hull_self_start_time(void);
/* The caller sees pids and start times as the host does: it runs in the
 * initial pid and time namespaces, so what it records means the same to
 * every other such process. */
bool hull_host_pid_view(void);

/* Every signal blocked in this thread, glibc's own (cancellation,
 * setxid) too, which pthread_sigmask leaves open: before a child is cloned
 * onto a stack of its own in our memory, where no handler may run. The
 * mask before goes to *old, for hull_restore_signals. */
void hull_block_all_signals(uint64_t *old);
void hull_restore_signals(const uint64_t *old);

#endif
