/* A container without a cgroup of its own: what a rootless caller gets when
 * the kernel will not let it create one (docs/runtime.md, "Rootless").
 * Deciding whether that is allowed, and finding the container's processes
 * through its pid namespace where the cgroup would have listed them.
 */
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "container/container.h"
#include "linux/namespaces.h"
#include "util/error.h"
#include "util/log.h"

bool hull_container_mounts_cgroup(const struct hull_spec *spec)
{
    for (size_t i = 0; i < spec->n_mounts; i++) {
        const char *t = spec->mounts[i].type;
        if (t && (strcmp(t, "cgroup") == 0 || strcmp(t, "cgroup2") == 0))
            return true;
    }
    return false;
}

int hull_container_without_cgroup(const struct hull_spec *spec, struct hull_cgroup **view,
                                  hull_error *err)
{
    int code = hull_error_code(*err);
    if (!hull_rootless() || (code != EACCES && code != EPERM && code != EROFS))
        return -1;
    const char *field = hull_cgroup_needed_by(spec->linux_.resources, true);
    if (field != NULL) {
        hull_error_prefix(err,
                          "%s: cannot be enforced by a rootless runtime without a writable "
                          "cgroup",
                          field);
        return -1;
    }
    hull_debug("rootless: running without a cgroup (%s)", hull_error_msg(*err));
    hull_error_free(err);
    /* A cgroup filesystem in the container shows the cgroups it is in:
     * the caller's, read-only or not as the mount says (the caller cannot
     * write to them anyway, or hull could have made its own). */
    if (hull_container_mounts_cgroup(spec) && hull_cgroup_caller_view(view, err) < 0)
        return -1;
    return 0;
}

/* Zombies are gone from a cgroup too, and signals do not reach them. */
static bool zombie(pid_t pid)
{
    char path[64], buf[512];
    snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
    cleanup_file FILE *f = fopen(path, "re");
    if (f == NULL)
        return true;
    size_t n = fread(buf, 1, sizeof(buf) - 1, f);
    buf[n] = '\0';
    const char *p = strrchr(buf, ')');
    return p == NULL || p[1] == '\0' || p[2] == 'Z' || p[2] == 'X';
}

static int ns_inode(pid_t pid, ino_t *ino)
{
    char path[64];
    struct stat st;
    snprintf(path, sizeof(path), "/proc/%d/ns/pid", (int)pid);
    if (stat(path, &st) < 0)
        return -1;
    *ino = st.st_ino;
    return 0;
}

int hull_pidns_pids(pid_t init, pid_t **pids, size_t *count, hull_error *err)
{
    *pids = NULL;
    *count = 0;
    ino_t want, ours;
    if (ns_inode(init, &want) < 0) {
        if (errno == ENOENT)
            return 0; /* gone: nothing left to list */
        return hull_error_errno(err, "pid namespace of %d", (int)init);
    }
    if (ns_inode(getpid(), &ours) == 0 && ours == want)
        return hull_error_set(err, ENOTSUP,
                              "the container has neither a cgroup nor a pid namespace of its "
                              "own, so its processes cannot be told from others");
    cleanup_dir DIR *d = opendir("/proc");
    if (d == NULL)
        return hull_error_errno(err, "open /proc");
    size_t cap = 0;
    struct dirent *de;
    int rc = 0;
    while (rc == 0 && (de = readdir(d)) != NULL) {
        char *end;
        long pid = strtol(de->d_name, &end, 10);
        ino_t ino;
        /* Processes in nested pid namespaces are the container's too, but
         * they show the nested namespace here: the init's namespace is
         * what the kernel kills with the init, so that is what counts. */
        if (*end != '\0' || pid <= 0 || ns_inode((pid_t)pid, &ino) < 0 || ino != want ||
            zombie((pid_t)pid))
            continue;
        if (*count == cap) {
            cap = cap ? cap * 2 : 16;
            pid_t *n = realloc(*pids, cap * sizeof(pid_t));
            if (n == NULL) {
                rc = hull_error_set(err, ENOMEM, "out of memory");
                break;
            }
            *pids = n;
        }
        (*pids)[(*count)++] = (pid_t)pid;
    }
    if (rc < 0) {
        free(*pids);
        *pids = NULL;
        *count = 0;
    }
    return rc;
}

int hull_pidns_kill(pid_t init, int signo, hull_error *err)
{
    pid_t *pids = NULL;
    size_t n = 0;
    ino_t want;
    if (ns_inode(init, &want) < 0)
        return 0; /* gone, and its namespace with it */
    if (hull_pidns_pids(init, &pids, &n, err) < 0)
        return -1;
    for (size_t i = 0; i < n; i++) {
        /* Pinned by a pidfd, then checked again: a pid that was reused
         * since the listing is someone else's process. */
        int pfd = (int)syscall(SYS_pidfd_open, pids[i], 0);
        ino_t ino;
        if (pfd >= 0 && ns_inode(pids[i], &ino) == 0 && ino == want)
            syscall(SYS_pidfd_send_signal, pfd, signo, NULL, 0);
        if (pfd >= 0)
            close(pfd);
    }
    free(pids);
    return 0;
}
