/* Cleaning up after supervisors that died without finishing their runs.
 *
 * A supervisor killed with SIGKILL takes its sandbox's processes with it
 * (the init has a parent-death signal, and the pid namespace follows the
 * init), but its cgroups stay, and a session's state directory. A one-shot
 * run has no state directory: its id names its supervisor by pid, and its
 * cgroups go when that is gone. A session's state names its supervisor by
 * pid and start time; a session whose supervisor no longer exists is
 * deleted as `delete --force` would. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "container/container.h"
#include "container/state.h"
#include "linux/cgroup.h"
#include "sandbox/sandbox.h"
#include "util/error.h"
#include "util/fs.h"
#include "util/log.h"
#include "util/proc.h"

/* The supervisor's pid, from a sandbox id "sandbox-PID-N-HEX" (0 if not one). */
static int id_pid(const char *name)
{
    int pid = 0;
    if (sscanf(name, "sandbox-%d-", &pid) != 1 || pid <= 0)
        return 0;
    return pid;
}

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

/* rmdir one orphaned sandbox cgroup. Its supervisor is dead, so whatever
 * is still in it belongs to a sandbox that is being torn down (parent-death
 * signals in flight): with kill, it is killed, and the last exits are waited
 * for. Without (the sweep before every run, which must never kill what a
 * look-alike name holds), a cgroup with processes is left, and only exits
 * already done (tasks not yet released) are waited for. */
static bool remove_orphan(int parentfd, const char *name, bool kill_them)
{
    for (int tries = 0; tries < 50; tries++) {
        if (unlinkat(parentfd, name, AT_REMOVEDIR) == 0)
            return true;
        if (errno != EBUSY)
            return false;
        char procs[PATH_MAX], *text = NULL;
        size_t len = 0;
        hull_error e = NULL;
        snprintf(procs, sizeof(procs), "%s/cgroup.procs", name);
        if (hull_read_file_at(parentfd, procs, &text, &len, &e) == 0) {
            if (!kill_them && len > 0) {
                free(text);
                return false;
            }
            for (char *p = text; p && *p;) {
                char *end;
                long pid = strtol(p, &end, 10);
                if (end == p)
                    break;
                if (pid > 0)
                    kill((pid_t)pid, SIGKILL);
                p = end;
            }
        }
        hull_error_free(&e); /* procs unreadable: the cgroup went; the next rmdir says */
        free(text);
        struct timespec ts = {0, (kill_them ? 20 : 2) * 1000000L};
        nanosleep(&ts, NULL);
    }
    return false;
}

/* Names of the runs whose cgroups a sweep removed, each counted once
 * however many hierarchies it was in. */
struct swept {
    char **names;
    size_t n;
};

static void swept_add(struct swept *s, const char *name)
{
    for (size_t i = 0; i < s->n; i++)
        if (strcmp(s->names[i], name) == 0)
            return;
    char **grown = realloc(s->names, (s->n + 1) * sizeof(*grown));
    if (grown == NULL)
        return; /* only the count suffers */
    s->names = grown;
    if ((s->names[s->n] = strdup(name)) != NULL)
        s->n++;
}

/* Sandbox cgroups in one hierarchy (<mount>/hull/sandbox-*) whose supervisor
 * is gone and that no state directory names (those go with their state).
 * A one-shot run has no state directory at all: its cgroups are all a
 * killed supervisor leaves, and its id names that supervisor. rmdir only
 * removes an empty cgroup, so nothing that runs is touched. */
static void remove_orphan_cgroups(const char *mount, int statefd, bool kill_them, struct swept *s)
{
    char dir[PATH_MAX];
    snprintf(dir, sizeof(dir), "%s/hull", mount);
    DIR *d = opendir(dir);
    if (d == NULL)
        return;
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        int pid = id_pid(de->d_name);
        if (pid == 0 ||
            (statefd >= 0 && faccessat(statefd, de->d_name, F_OK, AT_SYMLINK_NOFOLLOW) == 0))
            continue;
        if (hull_pid_alive(pid, 0)) /* a zombie counts as gone */
            continue;
        if (remove_orphan(dirfd(d), de->d_name, kill_them))
            swept_add(s, de->d_name);
    }
    closedir(d);
}

/* flags: HULL_CGROUP_LEAN for the hierarchies a one-shot run can be in,
 * without killing anything (every run does this), 0 for all of them, killing
 * what is left in them (cleanup). Returns the runs removed. */
static size_t sweep_cgroups(unsigned flags)
{
    const char *mounts[32];
    size_t n = 0;
    hull_error e = NULL;
    if (hull_cgroup_mount_points(flags, mounts, sizeof(mounts) / sizeof(mounts[0]), &n, &e) < 0) {
        /* No cgroups on this host: then no run made any. */
        hull_debug("sandbox cleanup: cgroups: %s", hull_error_msg(e));
        hull_error_free(&e);
        return 0;
    }
    /* Missing when no run with state was ever made: then nothing is skipped. */
    cleanup_close int statefd = open(HULL_SANDBOX_ROOT, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    struct swept s = {0};
    for (size_t i = 0; i < n; i++)
        remove_orphan_cgroups(mounts[i], statefd, flags == 0, &s);
    for (size_t i = 0; i < s.n; i++)
        free(s.names[i]);
    free(s.names);
    return s.n;
}

void hull_sandbox_collect_stale(void)
{
    size_t n = sweep_cgroups(HULL_CGROUP_LEAN);
    if (n)
        hull_debug("sandbox: removed the cgroups of %zu runs whose supervisor was killed", n);
    hull_sandbox_net_sweep();
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
         * annotation, maybe still running): the id names the supervisor
         * (its pid); when that is gone, or the directory is old, it is a
         * leftover. */
        struct stat st;
        int pid = id_pid(de->d_name);
        bool leftover =
            alive == 0 || (alive < 0 && ((pid > 0 && !hull_pid_alive(pid, 0)) ||
                                         (fstat(fd, &st) == 0 && st.st_mtime < time(NULL) - 60)));
        hull_error_free(&e); /* unreadable state is the "no state yet" case just above */
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
    *removed += sweep_cgroups(0);
    hull_sandbox_net_sweep();
    if (ret < 0)
        return hull_error_set(err, EIO, "sandbox cleanup: some leftovers could not be removed");
    return 0;
}
