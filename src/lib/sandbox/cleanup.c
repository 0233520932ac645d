/* Cleaning up after supervisors that died without finishing their runs.
 *
 * A supervisor killed with SIGKILL takes its sandbox's processes with it
 * (the init has a parent-death signal, and the pid namespace follows the
 * init), but its cgroups stay, and a session's state directory. A one-shot
 * run has no state directory: its id names its supervisor by pid and start
 * time, and its cgroups go when that process is gone. A session's state
 * names its supervisor the same way; a session whose supervisor no longer
 * exists is deleted as `delete --force` would.
 *
 * Pids and start times mean the same to every process only in the host's
 * pid and time namespaces: only there is anything judged, and a supervisor
 * anywhere else marks its ids ("sandbox-nPID-...") so they are never
 * judged. Whatever cannot be judged for sure (an unreadable /proc) is left:
 * nothing is removed or killed on a guess. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdbool.h>
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

/* 1: the supervisor runs (or cannot be told from /proc), 0: it is gone,
 * -1: none is recorded. */
static int supervisor_alive(const struct hull_cstate *cs)
{
    for (char **a = cs->annotations; a && a[0] && a[1]; a += 2) {
        if (strcmp(a[0], HULL_SANDBOX_SUPERVISOR_KEY) != 0)
            continue;
        int pid = 0;
        unsigned long long start = 0;
        if (sscanf(a[1], "%d:%llu", &pid, &start) != 2)
            return 0;
        return hull_pid_check(pid, start) != 0;
    }
    return -1;
}

/* rmdir one orphaned sandbox cgroup. Its supervisor is dead, so whatever
 * is still in it belongs to a sandbox being torn down (parent-death signals
 * in flight): it is killed, and the last exits are waited for. */
static int kill_orphan(int parentfd, const char *name, hull_error *err)
{
    int why = EBUSY;
    for (int tries = 0; tries < 50; tries++) {
        if (unlinkat(parentfd, name, AT_REMOVEDIR) == 0 || errno == ENOENT)
            return 0;
        if ((why = errno) != EBUSY)
            break;
        char procs[PATH_MAX], *text = NULL;
        size_t len = 0;
        hull_error e = NULL;
        snprintf(procs, sizeof(procs), "%s/cgroup.procs", name);
        if (hull_read_file_at(parentfd, procs, &text, &len, &e) == 0) {
            for (char *p = text; *p;) {
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
    return hull_error_set(err, why, "%s: %s", name, strerror(why));
}

/* The names a sweep has judged, each once however many hierarchies it is
 * in, and whether any of its cgroups went. */
struct judged {
    struct judged_name {
        char *name;
        bool dead, removed;
    } * v;
    size_t n;
    int failed; /* kill mode: cgroups that stayed */
};

/* The entry of a name, judged the first time it is seen; NULL with no
 * memory left (the caller judges it itself, every time). */
static struct judged_name *judge(struct judged *j, const char *name)
{
    for (size_t i = 0; i < j->n; i++)
        if (strcmp(j->v[i].name, name) == 0)
            return &j->v[i];
    struct judged_name *grown = realloc(j->v, (j->n + 1) * sizeof(*grown));
    if (grown == NULL)
        return NULL;
    j->v = grown;
    struct judged_name *e = &grown[j->n];
    if ((e->name = strdup(name)) == NULL)
        return NULL;
    j->n++;
    e->dead = hull_sandbox_id_orphaned(name);
    e->removed = false;
    return e;
}

static size_t judged_done(struct judged *j)
{
    size_t removed = 0;
    for (size_t i = 0; i < j->n; i++) {
        removed += j->v[i].removed;
        free(j->v[i].name);
    }
    free(j->v);
    return removed;
}

/* Sandbox cgroups in one hierarchy (<mount>/hull/sandbox-*) whose supervisor
 * is gone and that no state directory names (those go with their state).
 * A one-shot run has no state directory at all: its cgroups are all a
 * killed supervisor leaves, and its id names that supervisor. Without
 * kill_them (the sweep before every run, which must never kill what a
 * look-alike name holds, and must cost a run little) one rmdir each: it
 * removes only an empty cgroup, so nothing that runs is touched. */
static void sweep_hierarchy(const char *mount, int statefd, bool kill_them, struct judged *j)
{
    char dir[PATH_MAX];
    snprintf(dir, sizeof(dir), "%s/hull", mount);
    DIR *d = opendir(dir);
    if (d == NULL) {
        if (errno != ENOENT && kill_them) { /* ENOENT: no run ever made one here */
            hull_warn("sandbox cleanup: %s: %s", dir, strerror(errno));
            j->failed++;
        }
        return;
    }
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        if (strncmp(de->d_name, "sandbox-", 8) != 0 ||
            (statefd >= 0 && faccessat(statefd, de->d_name, F_OK, AT_SYMLINK_NOFOLLOW) == 0))
            continue;
        struct judged_name *e = judge(j, de->d_name);
        if (!(e ? e->dead : hull_sandbox_id_orphaned(de->d_name)))
            continue;
        bool removed = false;
        hull_error e2 = NULL;
        if (!kill_them) {
            removed = unlinkat(dirfd(d), de->d_name, AT_REMOVEDIR) == 0;
            if (!removed && errno != ENOENT)
                hull_debug("sandbox: stale cgroup %s/%s: %s", dir, de->d_name, strerror(errno));
        } else if (kill_orphan(dirfd(d), de->d_name, &e2) == 0) {
            removed = true;
        } else {
            hull_warn("sandbox cleanup: cgroup %s/%s", dir, hull_error_msg(e2));
            hull_error_free(&e2);
            j->failed++;
        }
        if (removed && e)
            e->removed = true;
    }
    closedir(d);
}

/* flags: HULL_CGROUP_LEAN for the hierarchies a one-shot run can be in,
 * without killing anything (every run does this), 0 for all of them, killing
 * what is left in them (cleanup). Returns the runs removed; *failed counts
 * cgroups that stayed. */
static size_t sweep_cgroups(unsigned flags, int *failed)
{
    *failed = 0;
    const char *mounts[32];
    size_t n = 0;
    hull_error e = NULL;
    if (hull_cgroup_mount_points(flags, mounts, sizeof(mounts) / sizeof(mounts[0]), &n, &e) < 0) {
        if (flags == 0) {
            hull_warn("sandbox cleanup: cgroups: %s", hull_error_msg(e));
            (*failed)++;
        }
        hull_error_free(&e); /* per run: the run's own cgroup setup reports it */
        return 0;
    }
    /* Missing when no run with state was ever made: then nothing is skipped. */
    cleanup_close int statefd = open(HULL_SANDBOX_ROOT, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    struct judged j = {0};
    for (size_t i = 0; i < n; i++)
        sweep_hierarchy(mounts[i], statefd, flags == 0, &j);
    *failed = j.failed;
    return judged_done(&j);
}

void hull_sandbox_collect_stale(void)
{
    if (!hull_host_pid_view())
        return; /* its pids cannot be judged here (see the top) */
    int failed;
    size_t n = sweep_cgroups(HULL_CGROUP_LEAN, &failed);
    if (n)
        hull_debug("sandbox: removed the cgroups of %zu runs whose supervisor was killed", n);
    hull_sandbox_net_sweep(false);
}

/* A session directory is a leftover: its state names a supervisor that is
 * gone; or it has no state yet (a run being set up right now, or a crash
 * before the first write) or no supervisor in it (a hull from before the
 * annotation, maybe still running), and its id names a supervisor that is
 * gone, or the directory is old. */
static bool session_leftover(int dirfd, const char *name)
{
    struct hull_cstate cs;
    hull_error e = NULL;
    int alive = -1;
    if (hull_cstate_read(dirfd, &cs, &e) == 0) {
        alive = supervisor_alive(&cs);
        hull_cstate_free(&cs);
    }
    hull_error_free(&e); /* unreadable state is the "no state yet" case */
    if (alive >= 0)
        return alive == 0;
    struct stat st;
    return hull_sandbox_id_orphaned(name) ||
           (fstat(dirfd, &st) == 0 && st.st_mtime < time(NULL) - 60);
}

/* Sessions whose supervisor is gone: deleted as `delete --force` would.
 * Returns -1 when one could not be (warned). */
static int remove_dead_sessions(size_t *removed, hull_error *err)
{
    struct hull_runtime rt = {.root = HULL_SANDBOX_ROOT};
    DIR *d = opendir(HULL_SANDBOX_ROOT);
    if (d == NULL) /* ENOENT: no session was ever made here */
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
        bool leftover = session_leftover(fd, de->d_name);
        close(fd);
        if (!leftover)
            continue;
        hull_error e = NULL;
        if (hull_container_delete(&rt, de->d_name, true, &e) < 0) {
            hull_warn("sandbox cleanup: %s", hull_error_msg(e));
            hull_error_free(&e);
            ret = -1;
        } else {
            (*removed)++;
        }
    }
    closedir(d);
    return ret;
}

int hull_sandbox_cleanup(size_t *removed, hull_error *err)
{
    *removed = 0;
    if (!hull_host_pid_view())
        return hull_error_set(err, EPERM,
                              "sandbox cleanup: not in the host's pid and time namespaces, where "
                              "the supervisors named by runs' ids can be judged");
    hull_error e = NULL;
    int ret = remove_dead_sessions(removed, &e);
    if (ret < 0 && e != NULL) {
        hull_warn("%s", hull_error_msg(e));
        hull_error_free(&e);
    }
    /* Then the cgroups no state names: one-shot runs' (after the sessions,
     * whose cgroups their delete removed). */
    int failed;
    *removed += sweep_cgroups(0, &failed);
    failed += hull_sandbox_net_sweep(true);
    if (ret < 0 || failed)
        return hull_error_set(err, EIO, "sandbox cleanup: some leftovers could not be removed");
    return 0;
}
