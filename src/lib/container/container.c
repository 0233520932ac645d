/* The OCI lifecycle (runtime-spec runtime.md) after create (create.c):
 * start, kill, delete, state, list. Each verb takes the container's lock,
 * reads its state, checks the status allows the verb, acts, and writes
 * state back. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "container/container.h"
#include "container/hooks.h"
#include "container/launch.h"
#include "container/netdev.h"
#include "container/process.h"
#include "container/state.h"
#include "container/sync.h"
#include "linux/cgroup.h"
#include "linux/creds.h"
#include "linux/namespaces.h"
#include "linux/seccomp.h"
#include "linux/terminal.h"
#include "util/clock.h"
#include "util/error.h"
#include "util/fs.h"
#include "util/json.h"
#include "util/log.h"
#include "util/proc.h"
#include "util/strv.h"

char *hull_cstate_doc(const struct hull_cstate *s, enum hull_status status, pid_t pid)
{
    struct hull_state view = {
        .id = s->id,
        .bundle = s->bundle,
        .oci_version = s->oci_version,
        .created = s->created,
        .owner = s->owner,
        .rootfs = s->rootfs,
        .pid = pid,
        .status = status,
        .annotations = s->annotations,
    };
    return hull_state_to_json(&view, false);
}

static int load(const struct hull_runtime *rt, const char *id, int *dirfd, struct hull_cstate *cs,
                hull_error *err)
{
    if (hull_cstate_open(rt->root, id, false, dirfd, err) < 0)
        return -1;
    if (hull_cstate_read(*dirfd, cs, err) < 0) {
        close(*dirfd);
        *dirfd = -1;
        if (hull_error_code(*err) == ENOENT) {
            hull_error_free(err); /* replaced by what ENOENT means here */
            return hull_error_set(err, ENOENT,
                                  "container '%s' was left half-created (use delete --force)", id);
        }
        return -1;
    }
    return 0;
}

static struct hull_cgroup *load_cgroup(const struct hull_cstate *cs)
{
    struct hull_cgroup *cg = NULL;
    hull_error e = NULL;
    if (cs->cgroup && hull_cgroup_load(cs->cgroup, &cg, &e) < 0) {
        hull_debug("load cgroup of %s: %s", cs->id, hull_error_msg(e));
        hull_error_free(&e);
        cg = NULL;
    }
    return cg;
}

static enum hull_status status_of(int dirfd, const struct hull_cstate *cs, struct hull_cgroup *cg)
{
    bool frozen = false;
    if (cg && hull_pid_alive(cs->pid, cs->pid_start)) {
        hull_error e = NULL;
        /* Unreadable freezer state: the status reads as not paused. */
        if (hull_cgroup_is_frozen(cg, &frozen, &e) < 0)
            hull_debug("freezer state of %s: %s", cs->id, hull_error_msg(e));
        hull_error_free(&e);
    }
    return hull_cstate_status(dirfd, cs, frozen);
}

/* Wait until a started init has called execve (or died). It holds
 * exec.fifo open (O_RDWR, close-on-exec) until then, so opening the fifo
 * for writing without blocking fails with ENXIO once no reader is left. */
static void wait_for_exec(int dirfd, pid_t pid, unsigned long long start)
{
    for (useconds_t us = 50; hull_pid_alive(pid, start); us = us < 2000 ? us * 2 : us) {
        int fd = openat(dirfd, HULL_EXEC_FIFO, O_WRONLY | O_NONBLOCK | O_CLOEXEC);
        if (fd < 0)
            return;
        close(fd);
        usleep(us);
    }
}

/* Release the waiting init and wait for its execve; 0, or -1 when it is not
 * waiting or died on the way (the reason it left in exec.error). */
static int release_init(int dirfd, const struct hull_cstate *cs, const char *id, hull_error *err)
{
    /* Non-blocking: ENXIO means no reader, i.e. the init is gone. */
    int fd = openat(dirfd, HULL_EXEC_FIFO, O_WRONLY | O_NONBLOCK | O_CLOEXEC);
    if (fd < 0)
        return hull_error_errno(err, "start %s: the container's init is not waiting", id);
    ssize_t w = write(fd, "0", 1);
    close(fd);
    if (w != 1)
        return hull_error_errno(err, "start %s: signal the init", id);
    /* runtime-spec: "running" means the user's program has been executed,
     * and poststart hooks run after that (and after the init's
     * startContainer hooks); an engine that looks at the process right
     * after start must not find hull's init still setting up. */
    wait_for_exec(dirfd, cs->pid, cs->pid_start);
    /* Without the fifo, the status reads "running" from now on. */
    unlinkat(dirfd, HULL_EXEC_FIFO, 0);
    /* The init died on the way to execve (a startContainer hook, exec
     * itself): that is start's failure, and the container is stopped. */
    cleanup_free char *why = NULL;
    size_t len = 0;
    cleanup_hull_error hull_error e = NULL; /* no exec.error: the init exec'd */
    int r = 0;
    if (hull_read_file_at(dirfd, HULL_EXEC_ERROR, &why, &len, &e) == 0 && len > 0)
        r = hull_error_set(err, EIO, "start %s: %s", id, why);
    unlinkat(dirfd, HULL_EXEC_ERROR, 0);
    return r;
}

int hull_container_start(const struct hull_runtime *rt, const char *id, hull_error *err)
{
    cleanup_close int dirfd = -1;
    cleanup_cstate struct hull_cstate cs = {0};
    if (load(rt, id, &dirfd, &cs, err) < 0)
        return hull_error_prefix(err, "start %s", id);
    cleanup_cgroup struct hull_cgroup *cg = load_cgroup(&cs);
    enum hull_status st = status_of(dirfd, &cs, cg);
    if (st != HULL_STATUS_CREATED)
        return hull_error_set(err, EINVAL, "start %s: cannot start a container that is %s", id,
                              hull_status_name(st));
    /* The config was validated at create; if it no longer parses (state.json
     * changed under us), the hooks it names cannot be run: refuse before the
     * init is released rather than start without them. */
    cleanup_spec struct hull_spec *spec = NULL;
    if (cs.config) {
        const char *text = hj_to_string(cs.config);
        if (hull_spec_parse(text, strlen(text), cs.bundle, &spec, err) < 0)
            return hull_error_prefix(err, "start %s: state.json: config", id);
    }
    if (release_init(dirfd, &cs, id, err) < 0)
        return -1;
    hull_debug("start %s: init %d released", id, (int)cs.pid);

    if (spec && spec->hooks.n_poststart) {
        cleanup_free char *sj = hull_cstate_doc(&cs, HULL_STATUS_RUNNING, cs.pid);
        char ctx[NAME_MAX + 16];
        snprintf(ctx, sizeof(ctx), "start %s", id);
        /* runtime-spec: a failing poststart hook is logged, the rest run. */
        hull_hooks_run_all(spec->hooks.poststart, spec->hooks.n_poststart, "poststart", sj, ctx);
    }
    return 0;
}

/* After SIGKILL to a paused container: the v1 freezer holds even a fatal
 * signal until thaw, so thaw it, as runc does. The init never runs again
 * (the signal is pending); the rest die with its pid namespace, or are as
 * after a SIGKILL to a running container without one. */
static void thaw_killed(struct hull_cgroup *cg)
{
    bool frozen = false;
    hull_error e = NULL;
    if (cg && hull_cgroup_is_frozen(cg, &frozen, &e) == 0 && frozen)
        hull_cgroup_freeze(cg, false, &e);
    /* Best effort: the kill was sent; destroy removes the cgroup anyway. */
    if (e)
        hull_debug("thaw after SIGKILL: %s", hull_error_msg(e));
    hull_error_free(&e);
}

int hull_container_kill(const struct hull_runtime *rt, const char *id, int signo, bool all,
                        hull_error *err)
{
    /* Released in reverse: the cgroup handle, the state, the lock. */
    cleanup_close int dirfd = -1;
    cleanup_cstate struct hull_cstate cs = {0};
    /* Signal 0 only asks whether the init runs (kill(1)'s "kill -0"). */
    if (signo < 0 || signo >= NSIG || (signo == 0 && all))
        return hull_error_set(err, EINVAL, "kill %s: invalid signal %d%s", id, signo,
                              signo == 0 ? " with --all" : "");
    if (load(rt, id, &dirfd, &cs, err) < 0)
        return hull_error_prefix(err, "kill %s", id);
    int ret = -1;
    cleanup_cgroup struct hull_cgroup *cg = load_cgroup(&cs);
    enum hull_status st = status_of(dirfd, &cs, cg);
    if (all && cg) {
        /* --all reaches every process, also those left behind by a dead init. */
        if (hull_cgroup_kill(cg, signo, err) < 0)
            hull_error_prefix(err, "kill %s", id);
        else
            ret = 0;
        if (ret == 0 && st != HULL_STATUS_STOPPED)
            kill(cs.pid, signo);
    } else if (all && cs.cgroup == NULL) {
        /* No cgroup (rootless): the init's pid namespace holds the rest. */
        if (st != HULL_STATUS_STOPPED && hull_pidns_kill(cs.pid, signo, err) < 0)
            hull_error_prefix(err, "kill %s: --all", id);
        else
            ret = 0;
    } else if (st == HULL_STATUS_STOPPED || st == HULL_STATUS_CREATING) {
        hull_error_set(err, ESRCH, "kill %s: container is not running", id);
    } else if (kill(cs.pid, signo) < 0) {
        hull_error_errno(err, "kill %s", id);
    } else {
        ret = 0;
        if (signo == SIGKILL && st == HULL_STATUS_PAUSED)
            thaw_killed(cg);
    }
    if (ret == 0)
        hull_debug("kill %s: signal %d to init %d%s", id, signo, (int)cs.pid,
                   all ? " and its cgroup" : "");
    return ret;
}

/* Wait (bounded) until a process that is not our child has exited. */
static void wait_gone(pid_t pid, unsigned long long start)
{
    int pfd = (int)syscall(SYS_pidfd_open, pid, 0);
    if (pfd >= 0) {
        if (hull_pid_alive(pid, start)) {
            struct pollfd p = {.fd = pfd, .events = POLLIN};
            poll(&p, 1, 10000);
        }
        close(pfd);
        return;
    }
    for (int i = 0; i < 1000 && hull_pid_alive(pid, start); i++)
        usleep(10000);
}

int hull_container_destroy(const struct hull_runtime *rt, int dirfd, struct hull_cstate *cs,
                           hull_error *err)
{
    struct hull_cgroup *cg = load_cgroup(cs);
    hull_debug("delete %s: init %d, removing cgroup and state", cs->id, (int)cs->pid);
    if (hull_pid_alive(cs->pid, cs->pid_start)) {
        kill(cs->pid, SIGKILL);
        thaw_killed(cg);
        wait_gone(cs->pid, cs->pid_start);
    }
    struct hull_spec *spec = NULL;
    /* Only poststop hooks need the config parsed again; without "hooks"
     * (every sandbox run) there are none, and no printing and re-reading. */
    if (cs->config && !cs->creating && hj_get(cs->config, "hooks") != NULL) {
        const char *text = hj_to_string(cs->config);
        hull_error e = NULL;
        /* delete must still go on (it is how a broken container goes away),
         * but not skip the poststop hooks without a word. */
        if (hull_spec_parse(text, strlen(text), cs->bundle, &spec, &e) < 0)
            hull_warn("delete %s: state.json: config: %s; poststop hooks not run", cs->id,
                      hull_error_msg(e));
        hull_error_free(&e);
    }
    if (spec && spec->hooks.n_poststop) {
        char *sj = hull_cstate_doc(cs, HULL_STATUS_STOPPED, 0);
        char ctx[NAME_MAX + 16];
        snprintf(ctx, sizeof(ctx), "delete %s", cs->id);
        /* runtime-spec: a failing poststop hook is logged, the rest run. */
        hull_hooks_run_all(spec->hooks.poststop, spec->hooks.n_poststop, "poststop", sj, ctx);
        free(sj);
    }
    hull_spec_free(spec);
    /* Processes gone, the netns held: the devices go home before it does. */
    hull_netdev_move_out(dirfd);
    int ret = 0;
    /* After the processes (which may hold the mounts busy) are gone. */
    if (cs->rootfs && hull_rootfs_host_release(cs->rootfs, cs->host_mount_below, err) < 0)
        ret = -1;
    if (ret == 0 && cg && hull_cgroup_destroy(cg, err) < 0)
        ret = -1;
    hull_cgroup_free(cg);
    if (ret == 0 && !cs->stateless && hull_cstate_remove(rt->root, cs->id, err) < 0)
        ret = -1;
    return ret;
}

int hull_container_delete(const struct hull_runtime *rt, const char *id, bool force,
                          hull_error *err)
{
    int dirfd = -1;
    struct hull_cstate cs;
    if (hull_cstate_open(rt->root, id, false, &dirfd, err) < 0) {
        if (force && hull_error_code(*err) == ENOENT) {
            hull_error_free(err); /* --force: a container already gone is deleted */
            return 0;
        }
        return hull_error_prefix(err, "delete %s", id);
    }
    if (hull_cstate_read(dirfd, &cs, err) < 0) {
        /* No readable state: a create that crashed before its first write. */
        if (!force) {
            close(dirfd);
            return hull_error_prefix(err, "delete %s: container left half-created (use --force)",
                                     id);
        }
        hull_debug("delete %s: %s; removing what a crashed create may have left", id,
                   hull_error_msg(*err));
        hull_error_free(err);
        /* The crash may have come after devices were moved in. */
        hull_netdev_move_out(dirfd);
        close(dirfd);
        /* The crash may have come after the default cgroup was made, in any
         * hierarchy, and after the init started in it (or the state was
         * torn later): what runs there is this container's (the default
         * path is its id's), and destroy kills it before the rmdir. Left
         * alone, it would run on unseen, the id blocked by its cgroup. */
        struct hull_cgroup *cg = NULL;
        hull_error e = NULL;
        if (hull_cgroup_create_ex(NULL, id, false, HULL_CGROUP_ADOPT, &cg, &e) < 0 ||
            hull_cgroup_join_all(cg, &e) < 0) {
            hull_debug("delete %s: no default cgroup to remove: %s", id, hull_error_msg(e));
            hull_error_free(&e); /* said; whatever was made is removed below */
        }
        if (cg && hull_cgroup_destroy(cg, &e) < 0) {
            /* Something of it may still run: the state stays, and so does
             * the error, so that it is not reported deleted. */
            hull_cgroup_free(cg);
            hull_error_set(err, hull_error_code(e), "delete %s: %s", id, hull_error_msg(e));
            hull_error_free(&e);
            return -1;
        }
        hull_cgroup_free(cg);
        hull_error_free(&e);
        if (hull_cstate_remove(rt->root, id, err) < 0)
            return hull_error_prefix(err, "delete %s", id);
        return 0;
    }
    struct hull_cgroup *cg = load_cgroup(&cs);
    enum hull_status st = status_of(dirfd, &cs, cg);
    hull_cgroup_free(cg);
    int ret = -1;
    if (!force &&
        (st == HULL_STATUS_RUNNING || st == HULL_STATUS_PAUSED || st == HULL_STATUS_CREATING)) {
        hull_error_set(err, EBUSY,
                       "delete %s: cannot delete a container that is %s (stop it or "
                       "use --force)",
                       id, hull_status_name(st));
    } else if (hull_container_destroy(rt, dirfd, &cs, err) < 0) {
        hull_error_prefix(err, "delete %s", id);
    } else {
        ret = 0;
    }
    hull_cstate_free(&cs);
    close(dirfd);
    return ret;
}

static void fill_state(int dirfd, struct hull_cstate *cs, struct hull_state *out)
{
    struct hull_cgroup *cg = load_cgroup(cs);
    memset(out, 0, sizeof(*out));
    out->status = status_of(dirfd, cs, cg);
    hull_cgroup_free(cg);
    out->pid = out->status == HULL_STATUS_STOPPED ? 0 : cs->pid;
    out->id = cs->id;
    out->bundle = cs->bundle;
    out->oci_version = cs->oci_version;
    out->created = cs->created;
    out->owner = cs->owner;
    out->rootfs = cs->rootfs;
    out->annotations = cs->annotations;
    /* The strings now belong to *out. */
    cs->id = cs->bundle = cs->oci_version = cs->created = cs->owner = cs->rootfs = NULL;
    cs->annotations = NULL;
}

int hull_container_state(const struct hull_runtime *rt, const char *id, struct hull_state *out,
                         hull_error *err)
{
    if (hull_id_validate(id, err) < 0)
        return hull_error_prefix(err, "state %s", id);
    char path[PATH_MAX];
    snprintf(path, sizeof(path), "%s/%s", rt->root, id);
    /* Readers do not take the lock: state.json is replaced atomically. */
    cleanup_close int dirfd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dirfd < 0) {
        if (errno == ENOENT)
            return hull_error_set(err, ENOENT, "state %s: container '%s' does not exist", id, id);
        return hull_error_errno(err, "state %s", id);
    }
    struct hull_cstate cs;
    if (hull_cstate_read(dirfd, &cs, err) < 0)
        return hull_error_prefix(err, "state %s", id);
    fill_state(dirfd, &cs, out);
    hull_cstate_free(&cs);
    return 0;
}

int hull_container_list(const struct hull_runtime *rt, struct hull_state **out, size_t *count,
                        hull_error *err)
{
    *out = NULL;
    *count = 0;
    cleanup_dir DIR *d = opendir(rt->root);
    if (d == NULL)
        return errno == ENOENT ? 0 : hull_error_errno(err, "list: %s", rt->root);
    size_t cap = 0;
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        if (de->d_name[0] == '.')
            continue;
        cleanup_close int cfd =
            openat(dirfd(d), de->d_name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        if (cfd < 0)
            continue;
        cleanup_cstate struct hull_cstate cs = {0};
        hull_error e = NULL;
        if (hull_cstate_read(cfd, &cs, &e) < 0) {
            hull_debug("list: skipping %s: %s", de->d_name, hull_error_msg(e));
            hull_error_free(&e);
            continue; /* half-created: only delete --force deals with those */
        }
        if (*count == cap) {
            cap = cap ? cap * 2 : 16;
            struct hull_state *n = realloc(*out, cap * sizeof(**out));
            if (n == NULL)
                return hull_error_set(err, ENOMEM, "out of memory");
            *out = n;
        }
        fill_state(cfd, &cs, &(*out)[(*count)++]);
    }
    return 0;
}

void hull_state_free(struct hull_state *s)
{
    free(s->id);
    free(s->bundle);
    free(s->oci_version);
    free(s->created);
    free(s->owner);
    free(s->rootfs);
    hull_strv_free(s->annotations);
    memset(s, 0, sizeof(*s));
}

char *hull_state_to_json(const struct hull_state *s, bool pretty)
{
    json_object *o = json_object_new_object();
    json_object_object_add(o, "ociVersion",
                           json_object_new_string(s->oci_version ? s->oci_version : ""));
    json_object_object_add(o, "id", json_object_new_string(s->id));
    json_object_object_add(o, "pid", json_object_new_int(s->pid));
    json_object_object_add(o, "status", json_object_new_string(hull_status_name(s->status)));
    json_object_object_add(o, "bundle", json_object_new_string(s->bundle ? s->bundle : ""));
    json_object_object_add(o, "rootfs", json_object_new_string(s->rootfs ? s->rootfs : ""));
    json_object_object_add(o, "created", json_object_new_string(s->created ? s->created : ""));
    if (s->annotations && s->annotations[0]) {
        json_object *a = json_object_new_object();
        for (char **p = s->annotations; p[0] && p[1]; p += 2)
            json_object_object_add(a, p[0], json_object_new_string(p[1]));
        json_object_object_add(o, "annotations", a);
    }
    json_object_object_add(o, "owner", json_object_new_string(s->owner ? s->owner : ""));
    int flags =
        JSON_C_TO_STRING_NOSLASHESCAPE |
        (pretty ? JSON_C_TO_STRING_PRETTY | JSON_C_TO_STRING_SPACED : JSON_C_TO_STRING_PLAIN);
    char *t = strdup(json_object_to_json_string_ext(o, flags));
    json_object_put(o);
    return t;
}
