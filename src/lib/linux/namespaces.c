#include <errno.h>
#include <fcntl.h>
#include <linux/nsfs.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <time.h>
#include <unistd.h>

#include "linux/namespaces.h"
#include "util/error.h"
#include "util/fs.h"

int hull_ns_new_flags(const struct hull_linux *l)
{
    int flags = 0;
    for (int t = 0; t < HULL_NS_COUNT; t++)
        if (l->ns[t].enabled && l->ns[t].path == NULL)
            flags |= hull_ns_clone_flag(t);
    return flags;
}

bool hull_ns_any_join(const struct hull_linux *l)
{
    for (int t = 0; t < HULL_NS_COUNT; t++)
        if (l->ns[t].enabled && l->ns[t].path != NULL)
            return true;
    return false;
}

void hull_ns_close_joins(int fds[HULL_NS_COUNT])
{
    for (int t = 0; t < HULL_NS_COUNT; t++) {
        if (fds[t] >= 0)
            close(fds[t]);
        fds[t] = -1;
    }
}

/* Open the namespace of type t to join; it must be one, and of that type. */
static int open_join(const struct hull_linux *l, int t, int *out, hull_error *err)
{
    cleanup_close int fd = open(l->ns[t].path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return hull_error_errno(err, "linux.namespaces: %s namespace %s", hull_ns_name(t),
                                l->ns[t].path);
    /* A regular file or a namespace of another type would make setns
     * fail later, after things were created; check it now. */
    int type = ioctl(fd, NS_GET_NSTYPE);
    if (type < 0)
        return hull_error_set(err, EINVAL, "linux.namespaces: %s is not a namespace",
                              l->ns[t].path);
    if (type != hull_ns_clone_flag(t))
        return hull_error_set(err, EINVAL, "linux.namespaces: %s is not a %s namespace",
                              l->ns[t].path, hull_ns_name(t));
    *out = hull_steal_fd(&fd);
    return 0;
}

int hull_ns_open_joins(const struct hull_linux *l, int fds[HULL_NS_COUNT], hull_error *err)
{
    for (int t = 0; t < HULL_NS_COUNT; t++)
        fds[t] = -1;
    for (int t = 0; t < HULL_NS_COUNT; t++) {
        if (!l->ns[t].enabled || l->ns[t].path == NULL)
            continue;
        if (open_join(l, t, &fds[t], err) < 0) {
            hull_ns_close_joins(fds);
            return -1;
        }
    }
    return 0;
}

int hull_ns_join(int fds[HULL_NS_COUNT], const enum hull_ns_type *order, size_t n, hull_error *err)
{
    for (size_t i = 0; i < n; i++) {
        enum hull_ns_type t = order[i];
        if (fds[t] < 0)
            continue;
        if (setns(fds[t], hull_ns_clone_flag(t)) < 0)
            return hull_error_errno(err, "join %s namespace", hull_ns_name(t));
        close(fds[t]);
        fds[t] = -1;
    }
    return 0;
}

static int write_map(pid_t pid, const char *file, const struct hull_id_mapping *m, size_t n,
                     hull_error *err)
{
    char buf[4096], path[64];
    size_t off = 0;
    for (size_t i = 0; i < n; i++) {
        int w = snprintf(buf + off, sizeof(buf) - off, "%u %u %u\n", m[i].container_id,
                         m[i].host_id, m[i].size);
        if (w < 0 || (size_t)w >= sizeof(buf) - off)
            return hull_error_set(err, E2BIG, "%s: too many mappings", file);
        off += (size_t)w;
    }
    snprintf(path, sizeof(path), "/proc/%d/%s", (int)pid, file);
    /* The kernel checks the whole map in one write; its refusal (EPERM,
     * EINVAL for overlaps) is the error the user needs to see. */
    if (hull_write_proc_file(path, buf, off, err) < 0)
        return hull_error_prefix(err, "linux.%s: the kernel refused the mapping",
                                 strcmp(file, "uid_map") == 0 ? "uidMappings" : "gidMappings");
    return 0;
}

int hull_ns_write_id_maps(pid_t pid, const struct hull_linux *l, hull_error *err)
{
    if (write_map(pid, "uid_map", l->uid_mappings, l->n_uid_mappings, err) < 0)
        return -1;
    /* As root in the parent namespace we may keep setgroups allowed; an
     * unprivileged caller would have to write "deny" first. */
    if (geteuid() != 0) {
        char path[64];
        snprintf(path, sizeof(path), "/proc/%d/setgroups", (int)pid);
        if (hull_write_proc_file(path, "deny", 4, err) < 0)
            return -1;
    }
    return write_map(pid, "gid_map", l->gid_mappings, l->n_gid_mappings, err);
}

static bool rootless_now(void)
{
    if (geteuid() != 0)
        return true;
    /* Root of the initial user namespace sees the identity map of every
     * id; root of any other sees a narrower one (or none written yet). */
    cleanup_free char *map = NULL;
    hull_error e = NULL;
    if (hull_read_file("/proc/self/uid_map", &map, NULL, &e) < 0) {
        hull_error_free(&e); /* no uid_map to read: treated as rootless, the safe side */
        return true;
    }
    unsigned long inside = 1, outside = 1, count = 0;
    return sscanf(map, "%lu %lu %lu", &inside, &outside, &count) != 3 || inside != 0 ||
           outside != 0 || count != 4294967295UL;
}

bool hull_rootless(void)
{
    /* Asked on every container start; a process does not change user
     * namespace or euid under hull, so once is enough. */
    static _Atomic int known = -1;
    int v = known;
    if (v < 0)
        known = v = rootless_now();
    return v;
}

int hull_ns_write_time_offsets(pid_t pid, const struct hull_linux *l, hull_error *err)
{
    char buf[256], path[64];
    size_t off = 0;
    const struct hull_time_offset *o[2] = {&l->time_monotonic, &l->time_boottime};
    const char *names[2] = {"monotonic", "boottime"};
    for (int i = 0; i < 2; i++) {
        if (!o[i]->set)
            continue;
        off += (size_t)snprintf(buf + off, sizeof(buf) - off, "%s %lld %u\n", names[i],
                                (long long)o[i]->secs, o[i]->nanosecs);
    }
    if (off == 0)
        return 0;
    snprintf(path, sizeof(path), "/proc/%d/timens_offsets", (int)pid);
    if (hull_write_proc_file(path, buf, off, err) < 0)
        return hull_error_prefix(err, "linux.timeOffsets");
    return 0;
}
