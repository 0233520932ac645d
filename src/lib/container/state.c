#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "container/state.h"
#include "linux/namespaces.h"
#include "util/error.h"
#include "util/clock.h"
#include "util/fs.h"
#include "util/json.h"
#include "util/proc.h"
#include "util/strv.h"

void hull_cstate_free(struct hull_cstate *s)
{
    free(s->id);
    free(s->oci_version);
    free(s->bundle);
    free(s->rootfs);
    free(s->created);
    free(s->owner);
    hull_strv_free(s->annotations);
    json_object_put(s->config);
    json_object_put(s->cgroup);
    memset(s, 0, sizeof(*s));
}

int hull_id_validate(const char *id, hull_error *err)
{
    size_t n = id ? strlen(id) : 0;
    if (n == 0)
        return hull_error_set(err, EINVAL, "container id must not be empty");
    /* The id names the state directory: longer than NAME_MAX it could
     * never be created, and mkdir would fail with a less clear message. */
    if (n > NAME_MAX)
        return hull_error_set(err, EINVAL, "container id is longer than %d bytes", NAME_MAX);
    if (strcmp(id, ".") == 0 || strcmp(id, "..") == 0)
        return hull_error_set(err, EINVAL, "invalid container id '%s'", id);
    for (const char *p = id; *p; p++) {
        char c = *p;
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '_' || c == '.' || c == '-'))
            return hull_error_set(err, EINVAL,
                                  "invalid container id '%s': only [A-Za-z0-9_.-] are allowed", id);
    }
    return 0;
}

const char *hull_default_root(void)
{
    static char buf[PATH_MAX];
    if (buf[0] != '\0')
        return buf;
    const char *xdg = getenv("XDG_RUNTIME_DIR");
    if (!hull_rootless())
        snprintf(buf, sizeof(buf), "%s", HULL_DEFAULT_ROOT);
    else if (xdg != NULL && xdg[0] == '/' && strlen(xdg) + sizeof("/hull") <= sizeof(buf))
        snprintf(buf, sizeof(buf), "%s/hull", xdg);
    else
        snprintf(buf, sizeof(buf), "/tmp/hull-%u", (unsigned)geteuid());
    return buf;
}

/* The root names every container, its bundle and its pid, and verbs trust
 * what they read there: a root that someone else owns or can write to
 * (say a /tmp/hull-<uid> made by another user first) would let them
 * plant a state.json that makes delete kill or remove what they choose. */
static int root_trusted(int rootfd, const char *root, hull_error *err)
{
    struct stat st;
    if (fstat(rootfd, &st) < 0)
        return hull_error_errno(err, "--root %s", root);
    if (st.st_uid != geteuid() && st.st_uid != 0)
        return hull_error_set(err, EPERM,
                              "--root %s: owned by uid %u, neither the caller (uid %u) nor root",
                              root, (unsigned)st.st_uid, (unsigned)geteuid());
    if (st.st_mode & S_IWOTH)
        return hull_error_set(err, EPERM, "--root %s: writable by every user", root);
    return 0;
}

/* Whether the directory we locked is still the one named id under the root:
 * a verb that waited for the lock behind a delete holds a directory that is
 * gone (or, after a create of the same id, another container's). */
static int cstate_still_named(int rootfd, const char *id, int fd, bool *named, hull_error *err)
{
    struct stat ours, now;
    if (fstat(fd, &ours) < 0)
        return hull_error_errno(err, "state of %s", id);
    if (fstatat(rootfd, id, &now, AT_SYMLINK_NOFOLLOW) < 0) {
        if (errno != ENOENT)
            return hull_error_errno(err, "state of %s", id);
        *named = false;
        return 0;
    }
    *named = ours.st_nlink > 0 && ours.st_dev == now.st_dev && ours.st_ino == now.st_ino;
    return 0;
}

/* One try: the directory opened and locked, or *dirfd -1 when it was
 * removed (or replaced) while we waited for its lock. */
static int cstate_open_once(int rootfd, const char *root, const char *id, bool create, int *dirfd,
                            hull_error *err)
{
    *dirfd = -1;
    if (create && mkdirat(rootfd, id, 0700) < 0) {
        if (errno == EEXIST)
            return hull_error_set(err, EEXIST, "container '%s' already exists", id);
        return hull_error_errno(err, "create state directory %s/%s", root, id);
    }
    cleanup_close int fd = openat(rootfd, id, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0) {
        if (errno == ENOENT)
            return hull_error_set(err, ENOENT, "container '%s' does not exist", id);
        return hull_error_errno(err, "open state of %s", id);
    }
    /* One verb at a time per container; readers (state, list) do not lock. */
    if (flock(fd, LOCK_EX) < 0)
        return hull_error_errno(err, "lock state of %s", id);
    bool named = false;
    if (cstate_still_named(rootfd, id, fd, &named, err) < 0)
        return -1;
    if (named)
        *dirfd = hull_steal_fd(&fd);
    return 0;
}

int hull_cstate_open(const char *root, const char *id, bool create, int *dirfd, hull_error *err)
{
    if (hull_id_validate(id, err) < 0)
        return -1;
    cleanup_close int rootfd = open(root, O_PATH | O_DIRECTORY | O_CLOEXEC);
    if (rootfd < 0 && errno == ENOENT && create) {
        /* State names every container and its bundle: root only. */
        if (hull_mkdir_p(root, 0700, err) < 0)
            return hull_error_prefix(err, "--root");
        rootfd = open(root, O_PATH | O_DIRECTORY | O_CLOEXEC);
    }
    if (rootfd < 0) {
        if (errno == ENOENT && !create)
            return hull_error_set(err, ENOENT, "container '%s' does not exist", id);
        return hull_error_errno(err, "--root %s", root);
    }
    if (root_trusted(rootfd, root, err) < 0)
        return -1;
    /* Each retry follows a verb that removed the directory we waited on (a
     * delete): we act on the id as it is now, never on a removed state. */
    for (;;) {
        if (cstate_open_once(rootfd, root, id, create, dirfd, err) < 0)
            return -1;
        if (*dirfd >= 0)
            return 0;
    }
}

static void add_string(json_object *o, const char *k, const char *v)
{
    if (v)
        json_object_object_add(o, k, json_object_new_string(v));
}

char *hull_cstate_text(const struct hull_cstate *s)
{
    json_object *o = json_object_new_object();
    add_string(o, "id", s->id);
    add_string(o, "ociVersion", s->oci_version);
    add_string(o, "bundle", s->bundle);
    add_string(o, "rootfs", s->rootfs);
    add_string(o, "created", s->created);
    add_string(o, "owner", s->owner);
    json_object_object_add(o, "creating", json_object_new_boolean(s->creating));
    json_object_object_add(o, "pid", json_object_new_int(s->pid));
    json_object_object_add(o, "pidStart", json_object_new_uint64(s->pid_start));
    if (s->annotations) {
        json_object *a = json_object_new_object();
        for (char **p = s->annotations; p[0] && p[1]; p += 2)
            json_object_object_add(a, p[0], json_object_new_string(p[1]));
        json_object_object_add(o, "annotations", a);
    }
    if (s->config)
        json_object_object_add(o, "config", json_object_get(s->config));
    if (s->cgroup)
        json_object_object_add(o, "cgroup", json_object_get(s->cgroup));
    if (s->host_mount_below)
        json_object_object_add(o, "hostMountBelow", json_object_new_uint64(s->host_mount_below));
    char *text = strdup(hj_to_string(o));
    json_object_put(o);
    return text;
}

int hull_cstate_write_text(int dirfd, const char *text, bool stage, hull_error *err)
{
    /* Replaced atomically but not fsynced: the state has to outlive its
     * runtime's crash, never the machine's. Nothing it names (processes,
     * cgroups, mounts) survives a reboot, so after one it can only be
     * removed, and `delete --force` removes even a torn one. An fsync cost
     * each create and start a journal commit where --root is on a disk. */
    return stage
               ? hull_write_file_stage(dirfd, "state.json", text, strlen(text), 0600, false, err)
               : hull_write_file_replace(dirfd, "state.json", text, strlen(text), 0600, false, err);
}

static int cstate_put(int dirfd, const struct hull_cstate *s, bool stage, hull_error *err)
{
    char *text = hull_cstate_text(s);
    if (text == NULL)
        return hull_error_set(err, ENOMEM, "out of memory");
    int r = hull_cstate_write_text(dirfd, text, stage, err);
    free(text);
    return r;
}

int hull_cstate_write(int dirfd, const struct hull_cstate *s, hull_error *err)
{
    return cstate_put(dirfd, s, false, err);
}

int hull_cstate_stage(int dirfd, const struct hull_cstate *s, hull_error *err)
{
    return cstate_put(dirfd, s, true, err);
}

int hull_cstate_commit(int dirfd, hull_error *err)
{
    return hull_write_file_commit(dirfd, "state.json", err);
}

static int cstate_parse(const char *text, size_t len, struct hull_cstate *s, hull_error *err)
{
    json_object *o = NULL;
    if (hj_parse(text, len, "state.json", &o, err) < 0)
        return -1;
    int64_t pid = 0;
    uint64_t start = 0;
    if (hj_string(o, "", "id", true, &s->id, err) < 0 ||
        hj_string(o, "", "ociVersion", false, &s->oci_version, err) < 0 ||
        hj_string(o, "", "bundle", false, &s->bundle, err) < 0 ||
        hj_string(o, "", "rootfs", false, &s->rootfs, err) < 0 ||
        hj_string(o, "", "created", false, &s->created, err) < 0 ||
        hj_string(o, "", "owner", false, &s->owner, err) < 0 ||
        hj_bool(o, "", "creating", &s->creating, err) < 0 ||
        hj_int64(o, "", "pid", &pid, NULL, err) < 0 ||
        hj_uint64(o, "", "pidStart", &start, NULL, err) < 0 ||
        hj_uint64(o, "", "hostMountBelow", &s->host_mount_below, NULL, err) < 0 ||
        hj_string_map(o, "", "annotations", &s->annotations, NULL, err) < 0) {
        json_object_put(o);
        hull_cstate_free(s);
        return hull_error_prefix(err, "state.json");
    }
    s->pid = (pid_t)pid;
    s->pid_start = start;
    s->config = json_object_get(hj_get(o, "config"));
    s->cgroup = json_object_get(hj_get(o, "cgroup"));
    json_object_put(o);
    return 0;
}

int hull_cstate_read_known(int dirfd, const char *known, struct hull_cstate *s, bool *same,
                           hull_error *err)
{
    memset(s, 0, sizeof(*s));
    *same = false;
    char *text = NULL;
    size_t len = 0;
    if (hull_read_file_at(dirfd, "state.json", &text, &len, err) < 0)
        return -1;
    *same = known != NULL && strlen(known) == len && memcmp(known, text, len) == 0;
    int r = *same ? 0 : cstate_parse(text, len, s, err);
    free(text);
    return r;
}

int hull_cstate_read(int dirfd, struct hull_cstate *s, hull_error *err)
{
    bool same;
    return hull_cstate_read_known(dirfd, NULL, s, &same, err);
}

int hull_cstate_remove(const char *root, const char *id, hull_error *err)
{
    cleanup_close int rootfd = open(root, O_PATH | O_DIRECTORY | O_CLOEXEC);
    if (rootfd < 0)
        return errno == ENOENT ? 0 : hull_error_errno(err, "open %s", root);
    return hull_rm_rf_at(rootfd, id, err);
}

enum hull_status hull_cstate_status(int dirfd, const struct hull_cstate *s, bool frozen)
{
    if (s->creating)
        return hull_pid_alive(s->pid, s->pid_start) || s->pid == 0 ? HULL_STATUS_CREATING
                                                                   : HULL_STATUS_STOPPED;
    if (!hull_pid_alive(s->pid, s->pid_start))
        return HULL_STATUS_STOPPED;
    if (frozen)
        return HULL_STATUS_PAUSED;
    struct stat st;
    if (fstatat(dirfd, HULL_EXEC_FIFO, &st, 0) == 0)
        return HULL_STATUS_CREATED;
    return HULL_STATUS_RUNNING;
}

const char *hull_status_name(enum hull_status s)
{
    switch (s) {
    case HULL_STATUS_CREATING:
        return "creating";
    case HULL_STATUS_CREATED:
        return "created";
    case HULL_STATUS_RUNNING:
        return "running";
    case HULL_STATUS_PAUSED:
        return "paused";
    case HULL_STATUS_STOPPED:
        return "stopped";
    }
    return "unknown";
}
