/* Cleaning up after supervisors that died without finishing their runs.
 *
 * A supervisor killed with SIGKILL takes its sandbox's processes with it
 * (the init has a parent-death signal, and the pid namespace follows the
 * init), but its cgroup and state directory stay. Each run's state names
 * its supervisor by pid and start time; a run whose supervisor no longer
 * exists is deleted as `delete --force` would, and so are sandbox cgroups
 * that outlived their state. */
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
 * signals in flight): it is killed, and the last exits are waited for. */
static bool remove_orphan(int parentfd, const char *name)
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
        struct timespec ts = {0, 20 * 1000000L};
        nanosleep(&ts, NULL);
    }
    return false;
}

/* Sandbox cgroups in one hierarchy (<mount>/hull/sandbox-*) that no state
 * directory names and whose supervisor is gone. A supervisor killed after
 * its limits made a cgroup (a CPU quota joins the cpu hierarchy) but before
 * the state recorded it leaves one that delete does not know of. rmdir only
 * removes an empty cgroup, so nothing that runs is touched. */
static size_t remove_orphan_cgroups(const char *mount, int statefd)
{
    char dir[PATH_MAX];
    snprintf(dir, sizeof(dir), "%s/hull", mount);
    DIR *d = opendir(dir);
    if (d == NULL)
        return 0;
    size_t n = 0;
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        int pid = id_pid(de->d_name);
        if (pid == 0 || faccessat(statefd, de->d_name, F_OK, AT_SYMLINK_NOFOLLOW) == 0)
            continue;
        if (hull_pid_alive(pid, 0)) /* a zombie counts as gone */
            continue;
        if (remove_orphan(dirfd(d), de->d_name))
            n++;
    }
    closedir(d);
    return n;
}

static size_t sweep_cgroups(void)
{
    int statefd = open(HULL_SANDBOX_ROOT, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    FILE *f = fopen("/proc/self/mountinfo", "re");
    size_t n = 0;
    char line[4096];
    while (f && statefd >= 0 && fgets(line, sizeof(line), f)) {
        /* ID PARENT MAJ:MIN ROOT MOUNTPOINT OPTS... - FSTYPE SOURCE SUPEROPTS */
        char mp[1024], fstype[64];
        const char *sep = strstr(line, " - ");
        if (sep == NULL || sscanf(line, "%*s %*s %*s %*s %1023s", mp) != 1 ||
            sscanf(sep + 3, "%63s", fstype) != 1)
            continue;
        if (strcmp(fstype, "cgroup") == 0 || strcmp(fstype, "cgroup2") == 0)
            n += remove_orphan_cgroups(mp, statefd);
    }
    if (f)
        fclose(f);
    if (statefd >= 0)
        close(statefd);
    return n;
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
    *removed += sweep_cgroups();
    hull_sandbox_net_sweep();
    if (ret < 0)
        return hull_error_set(err, EIO, "sandbox cleanup: some leftovers could not be removed");
    return 0;
}
