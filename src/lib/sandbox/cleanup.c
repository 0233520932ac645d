/* Cleaning up after supervisors that died without finishing their runs.
 *
 * A supervisor killed with SIGKILL takes its sandbox's processes with it
 * (the init has a parent-death signal, and the pid namespace follows the
 * init), but its cgroup and state directory stay. Each run's state names
 * its supervisor by pid and start time; a run whose supervisor no longer
 * exists is deleted as `delete --force` would. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "container/container.h"
#include "container/state.h"
#include "sandbox/sandbox.h"
#include "util/error.h"
#include "util/log.h"

/* 1: the supervisor runs, 0: it is gone, -1: none is recorded. */
static int supervisor_alive(const struct hull_cstate *cs)
{
    for (char **a = cs->annotations; a && a[0] && a[1]; a += 2) {
        if (strcmp(a[0], HULL_SANDBOX_SUPERVISOR_KEY) != 0)
            continue;
        int pid = 0;
        unsigned long long start = 0;
        if (sscanf(a[1], "%d:%llu", &pid, &start) != 2)
            return 0;
        return hull_pid_alive(pid, start);
    }
    return -1;
}

int hull_sandbox_cleanup(size_t *removed, hull_error *err)
{
    *removed = 0;
    struct hull_runtime rt = {.root = HULL_SANDBOX_ROOT};
    DIR *d = opendir(HULL_SANDBOX_ROOT);
    if (d == NULL)
        return errno == ENOENT ? 0
                               : hull_error_errno(err, "sandbox cleanup: %s", HULL_SANDBOX_ROOT);
    int ret = 0;
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        if (de->d_name[0] == '.')
            continue;
        int fd = openat(dirfd(d), de->d_name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        if (fd < 0)
            continue;
        struct hull_cstate cs;
        hull_error e = NULL;
        int alive = -1;
        if (hull_cstate_read(fd, &cs, &e) == 0) {
            alive = supervisor_alive(&cs);
            hull_cstate_free(&cs);
        }
        /* No state yet (a run being set up right now, or a crash before the
         * first write) or no supervisor in it (a hull from before the
         * annotation, maybe still running): only old directories count. */
        struct stat st;
        bool leftover =
            alive == 0 || (alive < 0 && fstat(fd, &st) == 0 && st.st_mtime < time(NULL) - 60);
        hull_error_free(&e);
        close(fd);
        if (!leftover)
            continue;
        if (hull_container_delete(&rt, de->d_name, true, &e) < 0) {
            hull_warn("sandbox cleanup: %s", hull_error_msg(e));
            hull_error_free(&e);
            ret = -1;
        } else {
            (*removed)++;
        }
    }
    closedir(d);
    if (ret < 0)
        return hull_error_set(err, EIO, "sandbox cleanup: some leftovers could not be removed");
    return 0;
}
