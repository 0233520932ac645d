/* OCI create (runtime-spec runtime.md): the checks, the container's state
 * directory and cgroup, the init launched and held until start, the state
 * recorded; any failure on the way rolls back what was made. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
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

struct hook_ctx {
    const struct hull_cstate *cs;
};

static char *hook_state(pid_t pid, void *arg)
{
    struct hook_ctx *h = arg;
    return hull_cstate_doc(h->cs, HULL_STATUS_CREATING, pid);
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
    free(c->state_text);
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
    if (!c->cs.stateless && hull_cstate_remove(rt->root, c->cs.id, &e) < 0)
        warn_cleanup(&e);
}

/* An init that died in its setup because the OOM killer took it (files it
 * copies into a tmpfs are charged to its memory limit) says so, instead of
 * "exited during setup". Read before create_rollback removes the cgroup. */
static void oom_in_setup(struct hull_container_ctx *c, hull_error *err)
{
    struct hull_cgroup_stats st;
    hull_error e = NULL;
    if (c->cgroup == NULL)
        return;
    if (hull_cgroup_stats_brief(c->cgroup, &st, &e) < 0) {
        hull_error_free(&e); /* unknown: the setup's own error stands */
        return;
    }
    if (st.oom_kill_events == 0)
        return;
    /* Said first, the setup's own error kept after it. */
    const struct hull_resources *r = c->spec->linux_.resources;
    if (r && r->has_memory_limit)
        hull_error_prefix(err,
                          "the OOM killer stopped the init during setup: its memory limit (%lld "
                          "bytes) is less than the setup needs (files it writes into a tmpfs "
                          "count)",
                          (long long)r->memory_limit);
    else
        hull_error_prefix(err, "the OOM killer stopped the init during setup");
    if (err && *err)
        (*err)->code = ENOMEM;
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
    if (host_ns && hull_rootfs_host_below(c->spec->rootfs, &c->cs.host_mount_below, err) < 0)
        return -1;
    /* Recorded before use, so delete --force finds the cgroup after a crash. */
    if (!so->no_state && hull_cstate_write(c->dirfd, &c->cs, err) < 0)
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

struct setting_up_ctx {
    struct hull_container_ctx *c;
    const struct hull_setup_opts *so;
};

/* The init runs in its cgroup and builds its root while the runtime only
 * waits for READY: the record record_init will put in place (the same
 * fields it sets) is written aside now, so only a rename is left between
 * READY and the program. state.json is unchanged until that rename; a
 * failure here leaves the whole write to record_init. Not with hooks that
 * run during create: they see the state directory without temporaries. */
static void init_setting_up(pid_t pid, void *arg)
{
    struct setting_up_ctx *u = arg;
    if (u->so->setting_up)
        u->so->setting_up(pid, u->so->setting_up_arg);
    const struct hull_hooks *hk = &u->c->spec->hooks;
    if (u->so->no_state || hk->n_prestart || hk->n_create_runtime || hk->n_create_container ||
        hk->n_start_container)
        return;
    struct hull_cstate s = u->c->cs; /* shallow: written, never freed */
    s.pid = pid;
    s.pid_start = hull_pid_start_time(pid);
    s.creating = false;
    char *text = hull_cstate_text(&s);
    hull_error e = NULL;
    u->c->state_staged = text && hull_cstate_write_text(u->c->dirfd, text, true, &e) == 0;
    u->c->staged_pid_start = s.pid_start;
    hull_error_free(&e);
    if (u->c->state_staged)
        u->c->state_text = text;
    else
        free(text);
}

/* record_init's write of the created record: the staged one renamed into
 * place, or written whole; its text kept for destroy_after_run. */
static int record_state(struct hull_container_ctx *c, hull_error *err)
{
    if (c->state_staged)
        return hull_cstate_commit(c->dirfd, err) < 0 ? -1 : 0;
    char *text = hull_cstate_text(&c->cs);
    if (text == NULL)
        return hull_error_set(err, ENOMEM, "out of memory");
    if (hull_cstate_write_text(c->dirfd, text, false, err) < 0) {
        free(text);
        return -1;
    }
    free(c->state_text);
    c->state_text = text;
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
    c->launch.userns_owner = so->userns_owner;
    c->launch.netns_fd = so->netns_fd;
    c->launch.export_dir = so->export_dir;
    c->launch.rootfs_extras = so->rootfs_extras;
    c->launch.reaper = so->reaper;
    c->launch.status_fd = so->reaper ? so->status_fd : -1;
    /* A caller's setting_up (the sandbox's network attach) looks at the
     * init's network namespace before READY: it must be there from the
     * clone. */
    c->launch.netns_late_ok = so->setting_up == NULL;
    struct setting_up_ctx su = {c, so};
    c->launch.setting_up = init_setting_up;
    c->launch.setting_up_arg = &su;
    c->launch.preserve_fds = o->preserve_fds;
    /* Safe for every limit: the ones that could bite the runtime while it
     * steps in are written only after it has stepped out (late_limits). */
    c->launch.cgroup_at_birth = true;
    /* As runc: each container gets its own session keyring, so keys the
     * runtime's caller holds are not the container's. */
    c->launch.keyring = o->no_new_keyring ? NULL : c->cs.id;
    struct hook_ctx hc = {&c->cs};
    int r = hull_launch_spawn(&c->launch, hook_state, &hc, err);
    c->launch.setting_up = NULL; /* su ends with this call */
    c->launch.setting_up_arg = NULL;
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
    c->cs.pid_start = c->state_staged ? c->staged_pid_start : hull_pid_start_time(c->launch.pid);
    c->cs.creating = false;
    if (!so->no_state && record_state(c, err) < 0)
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

/* A run without state is collected by its cgroups' name alone (the sandbox
 * sweep): only one that nothing outside its supervisor can address, and
 * whose cgroups are exactly where that sweep looks, qualifies. */
static int stateless_refused(const struct hull_runtime *rt, const struct hull_setup_opts *so,
                             const struct hull_spec *spec, hull_error *err)
{
    const struct hull_linux *l = &spec->linux_;
    if (so->foreground && l->ns[HULL_NS_MNT].enabled && !l->n_net_devices &&
        !spec->hooks.n_poststop && so->lean_cgroup && !l->cgroups_path && !rt->systemd_cgroup &&
        !hull_container_mounts_cgroup(spec))
        return 0;
    return hull_error_set(err, EINVAL,
                          "a run without a state directory needs a foreground init, a mount "
                          "namespace, a lean cgroup at the default path that it does not mount, "
                          "no linux.netDevices and no poststop hooks");
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

    if (so->no_state && stateless_refused(rt, so, c->spec, err) < 0) {
        hull_container_ctx_release(c);
        return -1;
    }
    /* From here on something exists and failures must roll back. On a disk
     * /run, the state directory costs a run a synchronous discard when it
     * goes (ext4 with `discard`): a stateless run skips it. */
    if (!so->no_state && hull_cstate_open(rt->root, o->id, true, &c->dirfd, err) < 0) {
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
    c->cs.stateless = so->no_state;
    c->cs.annotations = hull_strv_dup(c->spec->annotations);
    /* Without state, nothing reads the config again (no hooks, no exec). */
    c->cs.config = so->no_state ? NULL : json_object_get(c->spec->json);

    if (prepare(rt, o, so, c, err) < 0 || launch_init(o, so, c, err) < 0) {
        oom_in_setup(c, err);
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
