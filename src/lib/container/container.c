/* The OCI lifecycle (runtime-spec runtime.md): create, start, run, kill,
 * delete, state, list. Each verb takes the container's lock, reads its
 * state, checks the status allows the verb, acts, and writes state back.
 */
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

/* The runtime-spec state document, as hooks see it: the same JSON as `state`. */
static char *state_doc_text(const struct hull_cstate *s, enum hull_status status, pid_t pid)
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

struct hook_ctx {
    const struct hull_cstate *cs;
};

static char *hook_state(pid_t pid, void *arg)
{
    struct hook_ctx *h = arg;
    return state_doc_text(h->cs, HULL_STATUS_CREATING, pid);
}

/* The creator's user name for `list`, read from /etc/passwd directly: the
 * NSS machinery behind getpwuid() cannot run in a static binary. */
static char *owner_name(void)
{
    uid_t uid = geteuid();
    char line[1024];
    cleanup_file FILE *f = fopen("/etc/passwd", "re");
    while (f && fgets(line, sizeof(line), f)) {
        char *name = line, *colon = strchr(line, ':');
        if (colon == NULL)
            continue;
        *colon = '\0';
        char *pw = colon + 1, *c2 = strchr(pw, ':');
        if (c2 && strtoul(c2 + 1, NULL, 10) == uid)
            return strdup(name);
    }
    char buf[16];
    snprintf(buf, sizeof(buf), "%u", (unsigned)uid);
    return strdup(buf);
}

static int write_pid_file(const char *path, pid_t pid, hull_error *err)
{
    char buf[32];
    int n = snprintf(buf, sizeof(buf), "%d", (int)pid);
    if (hull_write_path_atomic(path, buf, (size_t)n, 0644, err) < 0)
        return hull_error_prefix(err, "--pid-file");
    return 0;
}

static int apply_resources(struct hull_container_ctx *c, hull_error *err)
{
    const struct hull_resources *spec_r = c->spec->linux_.resources;
    if (spec_r == NULL)
        return 0;
    struct hull_resources r = *spec_r; /* shallow: the pointers stay the spec's */
    /* No device rules at all: the cgroup keeps its parent's, and the devices
     * hierarchy need not even be joined (cheaper for every sandbox run). */
    if (spec_r->n_devices > 0 && hull_container_device_rules(c->spec, &r, err) < 0)
        return -1;
    hull_container_split_late_limits(&r, &c->late_limits);
    /* The late limits' hierarchies are joined now, so the init is born in
     * them too; only their control files wait. */
    int ret = hull_cgroup_apply(c->cgroup, &r, err) < 0 ||
                      hull_cgroup_join_for(c->cgroup, &c->late_limits, err) < 0
                  ? -1
                  : 0;
    if (r.devices != spec_r->devices)
        free(r.devices); /* made by hull_container_device_rules */
    c->launch.late_limits = &c->late_limits;
    return ret;
}

/* Check what can be checked before anything is created. */
static int precheck(const struct hull_spec *spec, const struct hull_create_opts *o, bool detached,
                    bool no_cgroups, hull_error *err)
{
    if (spec->process == NULL)
        return hull_error_set(err, EINVAL, "config.json: process: required");
    if (hull_cgroup_check_limits(spec->linux_.resources, err) < 0)
        return hull_error_prefix(err, "config.json");
    /* Without a mount namespace the init mounts in the runtime's, which an
     * init that is root of a user namespace only may not do. */
    if (!spec->linux_.ns[HULL_NS_MNT].enabled && spec->linux_.ns[HULL_NS_USER].enabled)
        return hull_error_set(err, EINVAL,
                              "config.json: linux.namespaces: a user namespace needs a mount "
                              "namespace (the container's root could not mount in the host's)");
    if (spec->process->terminal && detached && o->console_socket == NULL)
        return hull_error_set(err, EINVAL,
                              "config.json: process.terminal: a detached container needs "
                              "--console-socket to receive its terminal");
    if (o->console_socket && hull_console_socket_check(o->console_socket, err) < 0)
        return -1;
    if (hull_proc_check_lsm(spec->process, "config.json: process", err) < 0)
        return -1;
    /* As crun: a mount label means nothing without SELinux; configs made on
     * SELinux hosts carry one, so it is a warning, not a failure. */
    if (spec->linux_.mount_label && spec->linux_.mount_label[0] && !hull_lsm_selinux_enabled())
        hull_warn("config.json: linux.mountLabel: SELinux is not enabled on this host; ignored");
    hull_caps_warn_unknown(&spec->process->caps, "config.json: process.capabilities");
    if (no_cgroups && hull_cgroup_check_disabled(spec->linux_.resources, err) < 0)
        return hull_error_prefix(err, "config.json");
    if (spec->linux_.has_intel_rdt)
        return hull_error_set(err, ENOTSUP,
                              "config.json: linux.intelRdt: Intel RDT is not supported by hull");
    return hull_netdev_precheck(spec, err);
}

void hull_container_ctx_release(struct hull_container_ctx *c)
{
    if (c->launch.sync_fd >= 0)
        close(c->launch.sync_fd);
    if (c->launch.pty_master >= 0)
        close(c->launch.pty_master);
    if (c->launch.exported_fd >= 0)
        close(c->launch.exported_fd);
    if (c->dirfd >= 0)
        close(c->dirfd);
    hull_cgroup_free(c->cgroup);
    hull_cgroup_free(c->cgroup_view);
    hull_seccomp_filter_free(c->seccomp);
    hull_cstate_free(&c->cs);
    if (c->owns_spec)
        hull_spec_free(c->spec);
    memset(c, 0, sizeof(*c));
    c->dirfd = c->launch.sync_fd = c->launch.pty_master = c->launch.exported_fd = -1;
}

static void warn_cleanup(hull_error *e)
{
    hull_warn("cleanup: %s", hull_error_msg(*e));
    hull_error_free(e);
}

/* Undo a failed create: the init is already dead (spawn kills it). Each
 * step is tried whatever the one before did. */
static void create_rollback(const struct hull_runtime *rt, struct hull_container_ctx *c)
{
    hull_error e = NULL;
    /* Before the state goes: it holds the namespace the devices are in. */
    if (c->dirfd >= 0)
        hull_netdev_move_out(c->dirfd);
    if (c->spec && hull_rootfs_host_release(c->spec->rootfs, c->cs.host_mount_below, &e) < 0)
        warn_cleanup(&e);
    if (c->cgroup && hull_cgroup_destroy(c->cgroup, &e) < 0)
        warn_cleanup(&e);
    if (hull_cstate_remove(rt->root, c->cs.id, &e) < 0)
        warn_cleanup(&e);
}

/* What the init needs before it is cloned: its cgroup (or a view without
 * one), the host-namespace rootfs bind, the first state record, limits and
 * the exec fifo. Failures leave what was made to create_rollback. */
static int prepare(const struct hull_runtime *rt, const struct hull_create_opts *o,
                   const struct hull_setup_opts *so, struct hull_container_ctx *c, hull_error *err)
{
    /* The first state write comes once the cgroup exists, so it can name it;
     * a crash before it leaves a directory without state.json, which delete
     * --force handles (removing the default cgroup too). */
    if (!so->no_cgroup && !rt->no_cgroups &&
        hull_cgroup_create_ex(c->spec->linux_.cgroups_path, o->id, rt->systemd_cgroup,
                              so->lean_cgroup ? HULL_CGROUP_LEAN : 0, &c->cgroup, err) < 0 &&
        hull_container_without_cgroup(c->spec, &c->cgroup_view, err) < 0)
        return -1;
    if (c->cgroup) {
        /* A container that sees cgroupfs must see all of its hierarchies;
         * otherwise only the ones accounting and limits need are joined. */
        if (hull_container_mounts_cgroup(c->spec) && hull_cgroup_join_all(c->cgroup, err) < 0)
            return -1;
        c->cs.cgroup = hull_cgroup_save(c->cgroup);
    }
    /* No mount namespace: the container mounts in ours, all below one bind
     * of the rootfs, recorded (by the mount under it) before it is made. */
    bool host_ns = !c->spec->linux_.ns[HULL_NS_MNT].enabled;
    bool once = so->state_once && !host_ns; /* a host bind is recorded before it is made */
    if (host_ns && hull_rootfs_host_below(c->spec->rootfs, &c->cs.host_mount_below, err) < 0)
        return -1;
    /* Recorded before use, so delete --force finds the cgroup after a crash
     * (state_once: after the limits, naming every hierarchy; see delete). */
    if (!once && hull_cstate_write(c->dirfd, &c->cs, err) < 0)
        return -1;
    if (host_ns && hull_rootfs_host_bind(c->spec->rootfs, err) < 0)
        return -1;
    if (c->cgroup) {
        if (apply_resources(c, err) < 0)
            return -1;
        /* Limits may join more hierarchies (cpu for a quota): the state
         * written after spawn must name them, or destroy leaves them. */
        json_object_put(c->cs.cgroup);
        c->cs.cgroup = hull_cgroup_save(c->cgroup);
    }
    if (once && hull_cstate_write(c->dirfd, &c->cs, err) < 0)
        return -1;

    if (!so->foreground) {
        if (mkfifoat(c->dirfd, HULL_EXEC_FIFO, 0600) < 0)
            return hull_error_errno(err, "create %s", HULL_EXEC_FIFO);
        /* O_RDWR never blocks on a fifo; the init keeps this open and
         * blocks in read() until `start` writes. */
        c->launch.fifo_fd = openat(c->dirfd, HULL_EXEC_FIFO, O_RDWR | O_CLOEXEC);
        /* Opened here, by host root: the init may be an unprivileged uid
         * by the time it has something to say. */
        c->launch.error_fd =
            openat(c->dirfd, HULL_EXEC_ERROR, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
        if (c->launch.fifo_fd < 0 || c->launch.error_fd < 0)
            return hull_error_errno(err, "open %s", HULL_EXEC_FIFO);
    }
    return 0;
}

/* Clone the init; the fifo and error fds are the init's alone afterwards. */
static int launch_init(const struct hull_create_opts *o, const struct hull_setup_opts *so,
                       struct hull_container_ctx *c, hull_error *err)
{
    c->launch.spec = c->spec;
    c->launch.cgroup = c->cgroup;
    c->launch.cgroup_view = c->cgroup_view;
    c->launch.rootless = hull_rootless();
    c->launch.seccomp = so->seccomp ? so->seccomp : c->seccomp;
    c->launch.no_pivot = o->no_pivot;
    c->launch.foreground = so->foreground;
    c->launch.die_with_parent = so->die_with_parent;
    for (int i = 0; i < 3; i++)
        c->launch.stdio[i] = so->stdio ? so->stdio[i] : -1;
    c->launch.loopback_up = so->loopback_up;
    c->launch.netns_given = so->netns_given;
    c->launch.netns_fd = so->netns_fd;
    c->launch.export_dir = so->export_dir;
    c->launch.rootfs_extras = so->rootfs_extras;
    c->launch.reaper = so->reaper;
    c->launch.status_fd = so->reaper ? so->status_fd : -1;
    c->launch.setting_up = so->setting_up;
    c->launch.setting_up_arg = so->setting_up_arg;
    c->launch.preserve_fds = o->preserve_fds;
    /* Safe for every limit: the ones that could bite the runtime while it
     * steps in are written only after it has stepped out (late_limits). */
    c->launch.cgroup_at_birth = true;
    /* As runc: each container gets its own session keyring, so keys the
     * runtime's caller holds are not the container's. */
    c->launch.keyring = o->no_new_keyring ? NULL : c->cs.id;
    struct hook_ctx hc = {&c->cs};
    int r = hull_launch_spawn(&c->launch, hook_state, &hc, err);
    if (c->launch.fifo_fd >= 0)
        close(c->launch.fifo_fd);
    if (c->launch.error_fd >= 0)
        close(c->launch.error_fd);
    c->launch.fifo_fd = c->launch.error_fd = -1;
    return r;
}

/* The init exists: record its pid, hand out its pty, let it outlive us. */
static int record_init(const struct hull_create_opts *o, const struct hull_setup_opts *so,
                       struct hull_container_ctx *c, hull_error *err)
{
    c->cs.pid = c->launch.pid;
    c->cs.pid_start = hull_pid_start_time(c->launch.pid);
    c->cs.creating = false;
    /* state_once: not again (a state.json renamed over another makes ext4
     * write it, and unlinking it wait for a discard); the init dies with us. */
    if (!so->state_once && hull_cstate_write(c->dirfd, &c->cs, err) < 0)
        return -1;
    if (o->pid_file && write_pid_file(o->pid_file, c->launch.pid, err) < 0)
        return -1;
    if (c->launch.pty_master >= 0 && o->console_socket) {
        if (hull_console_socket_send(o->console_socket, c->launch.pty_master, err) < 0)
            return -1;
        close(c->launch.pty_master);
        c->launch.pty_master = -1;
    }
    if (!so->foreground) {
        /* The pid is on record: the init may outlive us now. */
        struct hull_sync_msg m;
        if (hull_sync_send(c->launch.sync_fd, SYNC_DETACH, 0, err) < 0 ||
            hull_sync_expect(c->launch.sync_fd, SYNC_DETACHED, &m, err) < 0)
            return -1;
    }
    return 0;
}

static int setup(const struct hull_runtime *rt, const struct hull_create_opts *o,
                 const struct hull_setup_opts *so, struct hull_container_ctx *c, hull_error *err)
{
    memset(c, 0, sizeof(*c));
    c->dirfd = c->launch.sync_fd = c->launch.pty_master = c->launch.exported_fd = -1;
    c->launch.fifo_fd = c->launch.error_fd = -1;
    if (hull_id_validate(o->id, err) < 0)
        return -1;
    char bundle[PATH_MAX];
    if (realpath(o->bundle ? o->bundle : ".", bundle) == NULL)
        return hull_error_errno(err, "--bundle %s", o->bundle ? o->bundle : ".");
    if (so->spec) {
        c->spec = so->spec;
    } else {
        if (hull_spec_load(bundle, o->config_path, &c->spec, err) < 0)
            return -1;
        c->owns_spec = true;
    }
    if (precheck(c->spec, o, !so->foreground, rt->no_cgroups && !so->no_cgroup, err) < 0 ||
        (c->spec->linux_.seccomp && so->seccomp == NULL &&
         hull_seccomp_compile(c->spec->linux_.seccomp, &c->seccomp, err) < 0)) {
        hull_container_ctx_release(c);
        return -1;
    }

    /* From here on something exists and failures must roll back. */
    if (hull_cstate_open(rt->root, o->id, true, &c->dirfd, err) < 0) {
        hull_container_ctx_release(c); /* the spec and filter made above */
        return -1;
    }
    char created[64];
    hull_rfc3339_now(created, sizeof(created));
    c->cs.id = strdup(o->id);
    c->cs.oci_version = strdup(c->spec->oci_version);
    c->cs.bundle = strdup(bundle);
    c->cs.rootfs = strdup(c->spec->rootfs);
    c->cs.created = strdup(created);
    c->cs.owner = owner_name();
    c->cs.creating = true;
    c->cs.ephemeral = so->ephemeral_state;
    c->cs.annotations = hull_strv_dup(c->spec->annotations);
    /* state_once: only to collect a crashed run (no hooks, no exec into it). */
    c->cs.config = so->state_once ? NULL : json_object_get(c->spec->json);

    if (prepare(rt, o, so, c, err) < 0 || launch_init(o, so, c, err) < 0) {
        create_rollback(rt, c);
        hull_container_ctx_release(c);
        return -1;
    }
    /* Init and netns exist, the program does not run yet: devices go in;
     * on failure create_rollback brings them out of the held netns. */
    if (hull_netdev_move_in(c->spec, c->launch.pid, c->dirfd, err) < 0 ||
        record_init(o, so, c, err) < 0) {
        kill(c->launch.pid, SIGKILL);
        create_rollback(rt, c);
        hull_container_ctx_release(c);
        return -1;
    }
    hull_debug("%s %s: init %d waiting, bundle %s", so->verb ? so->verb : "create", o->id,
               (int)c->launch.pid, bundle);
    return 0;
}

int hull_container_setup(const struct hull_runtime *rt, const struct hull_create_opts *o,
                         const struct hull_setup_opts *so, struct hull_container_ctx *c,
                         hull_error *err)
{
    if (setup(rt, o, so, c, err) < 0)
        return hull_error_prefix(err, "%s %s", so->verb ? so->verb : "create", o->id ? o->id : "");
    return 0;
}

int hull_container_create(const struct hull_runtime *rt, const struct hull_create_opts *opts,
                          hull_error *err)
{
    struct hull_container_ctx c;
    struct hull_setup_opts so = {0};
    if (hull_container_setup(rt, opts, &so, &c, err) < 0)
        return -1;
    hull_container_ctx_release(&c);
    return 0;
}

/* Open and read a container's state under its lock. */
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
        cleanup_free char *sj = state_doc_text(&cs, HULL_STATUS_RUNNING, cs.pid);
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
    if (signo <= 0 || signo >= NSIG)
        return hull_error_set(err, EINVAL, "kill %s: invalid signal %d", id, signo);
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
        char *sj = state_doc_text(cs, HULL_STATUS_STOPPED, 0);
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
    if (ret == 0 && hull_cstate_remove(rt->root, cs->id, err) < 0)
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
         * hierarchy (a state_once create writes its state after its limits). */
        struct hull_cgroup *cg = NULL;
        hull_error e = NULL;
        if (hull_cgroup_create(NULL, id, false, &cg, &e) < 0 || hull_cgroup_join_all(cg, &e) < 0) {
            hull_debug("delete %s: no default cgroup to remove: %s", id, hull_error_msg(e));
            hull_error_free(&e); /* said; whatever was made is removed below */
        }
        if (cg && hull_cgroup_destroy(cg, &e) < 0)
            hull_warn("delete %s: cleanup: %s", id, hull_error_msg(e));
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
