/* What a container can read of the processes hull forks into it. */
#ifndef HULL_LINUX_PROCTITLE_H
#define HULL_LINUX_PROCTITLE_H

#include "hull.h"

/* Give this process (and every fork of it) the command line `title`, an
 * empty environment in /proc/<pid>/environ and the task name `title`, so a
 * process inside a container reading /proc/<pid>/{cmdline,environ,comm,stat}
 * of a hull fork learns nothing of the host's argv, environment or paths.
 * The memory of the original strings is left as it is (pointers into it
 * stay valid); only the kernel's idea of where the command line lives
 * moves, with prctl(PR_SET_MM_MAP). title must be short (under 16 bytes). */
int hull_proc_hide_host_argv(const char *title, hull_error *err);

#endif
