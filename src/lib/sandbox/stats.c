/* A sandbox's usage for hulld's metrics: its cgroup's CPU and memory, the
 * space used on its writable tmpfs mounts and its network's byte counts.
 *
 * Everything under /proc/PID belongs to a process the sandbox controls:
 * its mounts are reached only beneath its root (openat2 RESOLVE_IN_ROOT,
 * no magic links) and counted only when they are a tmpfs; its network's
 * counters come from the kernel's own /proc/PID/net/dev of that pid,
 * checked to be the pid the state recorded (start time). */
#include <errno.h>
#include <fcntl.h>
#include <linux/magic.h>
#include <linux/openat2.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "container/state.h"
#include "linux/cgroup.h"
#include "sandbox/sandbox.h"
#include "util/error.h"
#include "util/proc.h"

/* Bytes in use on the tmpfs at path beneath root; false when it is none. */
static bool tmpfs_used(int root, const char *path, uint64_t *used)
{
    struct open_how how = {
        .flags = O_PATH | O_CLOEXEC,
        .resolve = RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS,
    };
    int fd = (int)syscall(SYS_openat2, root, path, &how, sizeof(how));
    if (fd < 0)
        return false;
    struct statfs sf;
    bool ok = fstatfs(fd, &sf) == 0 && (unsigned long)sf.f_type == TMPFS_MAGIC;
    close(fd);
    if (ok)
        *used += (uint64_t)(sf.f_blocks - sf.f_bfree) * (uint64_t)sf.f_bsize;
    return ok;
}

static void disk_stats(pid_t pid, struct hull_sandbox_stats *st)
{
    char path[64];
    snprintf(path, sizeof(path), "/proc/%d/root", (int)pid);
    int root = open(path, O_PATH | O_DIRECTORY | O_CLOEXEC);
    if (root < 0)
        return;
    bool tmp = tmpfs_used(root, "/tmp", &st->disk_bytes);
    bool shm = tmpfs_used(root, "/dev/shm", &st->disk_bytes);
    st->has_disk = tmp || shm;
    close(root);
}

/* Its own network namespace only: one shared with hulld (the host's) is
 * not the sandbox's traffic. */
static void net_stats(pid_t pid, struct hull_sandbox_stats *st)
{
    char path[64];
    struct stat mine, its;
    snprintf(path, sizeof(path), "/proc/%d/ns/net", (int)pid);
    if (stat("/proc/self/ns/net", &mine) < 0 || stat(path, &its) < 0 ||
        (mine.st_ino == its.st_ino && mine.st_dev == its.st_dev))
        return;
    snprintf(path, sizeof(path), "/proc/%d/net/dev", (int)pid);
    FILE *f = fopen(path, "re");
    if (f == NULL)
        return;
    char line[512];
    while (fgets(line, sizeof(line), f)) {
        char *colon = strchr(line, ':');
        if (colon == NULL)
            continue; /* the two header lines */
        *colon = '\0';
        const char *name = line + strspn(line, " ");
        unsigned long long v[9];
        if (strcmp(name, "lo") == 0 ||
            sscanf(colon + 1, "%llu %llu %llu %llu %llu %llu %llu %llu %llu", &v[0], &v[1], &v[2],
                   &v[3], &v[4], &v[5], &v[6], &v[7], &v[8]) != 9)
            continue;
        st->has_net = true;
        st->net_rx_bytes += v[0];
        st->net_tx_bytes += v[8];
    }
    fclose(f);
}

int hull_sandbox_stats(const char *id, struct hull_sandbox_stats *st, hull_error *err)
{
    memset(st, 0, sizeof(*st));
    if (hull_id_validate(id, err) < 0)
        return -1;
    char path[4096];
    snprintf(path, sizeof(path), "%s/%s", HULL_SANDBOX_ROOT, id);
    /* A reader: state.json is replaced atomically, no lock needed. */
    cleanup_close int dirfd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dirfd < 0)
        return hull_error_errno(err, "stats of %s", id);
    struct hull_cstate cs;
    if (hull_cstate_read(dirfd, &cs, err) < 0)
        return hull_error_prefix(err, "stats of %s", id);
    int ret = 0;
    if (cs.cgroup) {
        struct hull_cgroup *cg = NULL;
        struct hull_cgroup_stats cst;
        if (hull_cgroup_load(cs.cgroup, &cg, err) < 0 || hull_cgroup_stats(cg, &cst, err) < 0) {
            ret = hull_error_prefix(err, "stats of %s", id);
        } else {
            st->has_cgroup = true;
            st->cpu_ns = cst.cpu_usage_ns;
            st->memory_bytes = cst.memory_usage;
            st->memory_peak_bytes = cst.memory_max_usage;
        }
        hull_cgroup_free(cg);
    }
    /* The pid the state names, still the same process: else its /proc is
     * some other process's. */
    if (ret == 0 && cs.pid > 0 && hull_pid_start_time(cs.pid) == cs.pid_start) {
        disk_stats(cs.pid, st);
        net_stats(cs.pid, st);
    }
    hull_cstate_free(&cs);
    return ret;
}
