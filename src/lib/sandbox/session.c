/* Long-lived sandboxes: a container built exactly like a run's (layout.c),
 * whose process is an idle shell loop instead of the workload, kept alive
 * by its creator; commands are exec'd into it (container/exec.c) with their
 * own stdio, clocks and verdict, and files move through an fd of its /tmp.
 *
 * The creator is the supervisor: the init has a parent-death signal, and
 * the state names the creator (HULL_SANDBOX_SUPERVISOR_KEY), so a creator
 * that dies leaves nothing that hull_sandbox_cleanup() would not remove.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "container/container.h"
#include "container/sync.h"
#include "linux/cgroup.h"
#include "linux/seccomp.h"
#include "sandbox/sandbox.h"
#include "sandbox/session.h"
#include "util/error.h"
#include "util/fs.h"
#include "util/json.h"
#include "util/log.h"
#include "util/proc.h"
#include "util/strv.h"

/* PID 1 of the sandbox: waits in the foreground so the shell reaps every
 * orphan the commands leave (dash waits for any child); as a namespace's
 * init without handlers it ignores signals sent from inside. */
static char *const idle_argv[] = {"/bin/sh", "-c", "while :; do sleep 3600; done", NULL};

const char *hull_session_id(const struct hull_session *s)
{
    return s->id;
}

/* A hull network's fields, for the attach at the start. -1: no memory. */
static int copy_network(struct hull_policy *to, const struct hull_policy *p)
{
    if ((p->network && (to->network = strdup(p->network)) == NULL) ||
        (p->egress && (to->egress = strdup(p->egress)) == NULL))
        return -1;
    if (p->n_publish) {
        to->publish = calloc(p->n_publish, sizeof(*to->publish));
        if (to->publish == NULL)
            return -1;
        memcpy(to->publish, p->publish, p->n_publish * sizeof(*to->publish));
        to->n_publish = p->n_publish;
    }
    return 0;
}

/* What the sandbox needs before it exists: its policy, seccomp filter,
 * (process level) host uid and layout. */
static int session_prepare(struct hull_session *s, const struct hull_policy *p, hull_error *err)
{
    /* Keep only what the sandbox itself needs of the policy. */
    hull_policy_init(&s->policy);
    s->policy.isolation = p->isolation;
    s->policy.memory_bytes = p->memory_bytes;
    s->policy.pids = p->pids;
    s->policy.cpus = p->cpus;
    s->policy.cpus_given = p->cpus_given; /* process level refuses it: no cgroup */
    s->policy.tmp_bytes = p->tmp_bytes;
    s->policy.open_files = p->open_files;
    s->policy.network_host = p->network_host;
    if (copy_network(&s->policy, p) < 0)
        return hull_error_set(err, ENOMEM, "out of memory");
    /* The idle init itself is not CPU-limited per process: the sandbox's
     * CPU is bounded by its quota (cpus), each exec by its own cpu_time. */
    s->policy.cpu_time_ms = 24ull * 3600 * 1000;
    s->policy.argv = hull_strv_dup(idle_argv);
    s->policy.env = p->env ? hull_strv_dup(p->env) : NULL;
    if (s->policy.argv == NULL || (p->env && s->policy.env == NULL))
        return hull_error_set(err, ENOMEM, "out of memory");
    /* An image's root (mounted by the caller) and WorkingDir, the execs' default. */
    if (p->image && ((s->policy.rootfs = strdup(p->rootfs)) == NULL ||
                     (p->workdir && (s->policy.workdir = strdup(p->workdir)) == NULL)))
        return hull_error_set(err, ENOMEM, "out of memory");
    if (hull_policy_validate(&s->policy, err) < 0)
        return -1;
    if (hull_seccomp_compile(p->isolation == HULL_ISOLATION_CONTAINER
                                 ? hull_seccomp_default_sandbox()
                                 : hull_seccomp_process_sandbox(),
                             &s->seccomp, err) < 0)
        return hull_error_prefix(err, "built-in seccomp profile");
    /* The id now: it names the network's files the layout binds. */
    hull_sandbox_new_id("session", s->id, sizeof(s->id));
    if (hull_host_pid_view())
        hull_sandbox_net_sweep(false);
    if (hull_sandbox_net_prepare(&s->net, &s->policy, s->id, err) < 0)
        return -1;
    if (hull_mkdir_p(HULL_SANDBOX_EMPTY_ROOT, 0755, err) < 0 ||
        hull_sandbox_layout(&s->policy, HULL_SANDBOX_EMPTY_ROOT, s->ids.base,
                            s->img.has_user ? &s->img.user : NULL, s->net.on ? s->net.dir : NULL,
                            &s->lay, err) < 0)
        return -1;
    bool container = p->isolation == HULL_ISOLATION_CONTAINER;
    s->host_uid = container ? s->ids.base + s->lay.uid : s->lay.uid;
    s->host_gid = container ? s->ids.base + s->lay.gid : s->lay.gid;
    /* What is exec'd into the sandbox later (exec, processes) takes its
     * filter from the config kept in the sandbox's state, as `hull exec`
     * does; the init's filter comes precompiled and is not in there. */
    json_object *lx = hj_get(s->lay.spec->json, "linux");
    json_object *filter = container ? hull_seccomp_default_sandbox_document()
                                    : hull_seccomp_process_sandbox_document();
    if (lx == NULL || filter == NULL) {
        json_object_put(filter);
        return hull_error_set(err, ENOMEM, "built-in seccomp profile: out of memory");
    }
    json_object_object_add(lx, "seccomp", filter);
    return 0;
}

/* The sandbox's container, its init waiting for the start. */
static int session_setup(struct hull_session *s, const struct hull_policy *p, hull_error *err)
{
    cleanup_close int null_fd = open("/dev/null", O_RDWR | O_CLOEXEC);
    if (null_fd < 0)
        return hull_error_errno(err, "open /dev/null");
    struct hull_runtime rt = {.root = HULL_SANDBOX_ROOT};
    struct hull_create_opts co = {.id = s->id, .bundle = "/"};
    int stdio[3] = {null_fd, null_fd, null_fd};
    struct hull_setup_opts so;
    hull_sandbox_setup_opts(p, &s->lay, s->seccomp, stdio, s->ids.owner, &so);
    return hull_container_setup(&rt, &co, &so, &s->c, err);
}

/* Start the idle init and put the policy's files. */
static int session_start(struct hull_session *s, const struct hull_policy *p, hull_error *err)
{
    /* exec, pause and friends take the state lock themselves. */
    hull_closep(&s->c.dirfd);
    s->tmpfd = s->c.launch.exported_fd;
    s->c.launch.exported_fd = -1;
    /* The init and its network namespace exist; the idle loop does not yet. */
    if (hull_sandbox_net_attach(&s->net, &s->policy, s->id, s->c.launch.pid, err) < 0)
        return -1;
    if (hull_sync_send(s->c.launch.sync_fd, SYNC_START, 0, err) < 0 ||
        hull_wait_exec(s->c.launch.sync_fd, err) < 0)
        return -1;
    hull_closep(&s->c.launch.sync_fd);
    for (size_t i = 0; i < p->n_files; i++)
        if (hull_session_put_file(s, p->files[i].path, p->files[i].data, p->files[i].len,
                                  p->files[i].mode, err) < 0)
            return hull_error_prefix(err, "files[%zu]", i);
    return 0;
}

int hull_session_create(const struct hull_policy *p, struct hull_session **out, hull_error *err)
{
    *out = NULL;
    if (p->isolation == HULL_ISOLATION_MICROVM)
        return hull_error_set(err, ENOTSUP,
                              "isolation microvm: long-lived microVM sandboxes are not supported "
                              "(one-shot runs are)");
    struct hull_session *s = calloc(1, sizeof(*s));
    if (s == NULL)
        return hull_error_set(err, ENOMEM, "out of memory");
    s->tmpfd = s->ids.lock = -1;
    s->c.dirfd = s->c.launch.sync_fd = s->c.launch.pty_master = s->c.launch.exported_fd = -1;
    /* Its host ids for its lifetime, then an image (its layers are mapped
     * to them): mounted in this process's own mount namespace (the
     * creator is the sandbox's supervisor), for as long as s lives. */
    struct hull_policy eff;
    if (hull_sandbox_ids_claim(p, &s->ids, err) < 0 ||
        hull_sandbox_image_open(p, &s->img, &eff, false, err) < 0 ||
        hull_sandbox_image_mount(&s->img, &eff, s->ids.base, err) < 0 ||
        session_prepare(s, &eff, err) < 0 || session_setup(s, &eff, err) < 0) {
        /* No container yet: only what prepare took. */
        hull_seccomp_filter_free(s->seccomp);
        hull_sandbox_layout_free(&s->lay);
        hull_policy_free(&s->policy);
        hull_sandbox_ids_release(&s->ids);
        hull_sandbox_net_release(&s->net);
        hull_sandbox_image_close(&s->img);
        free(s);
        return hull_error_prefix(err, "create sandbox");
    }
    if (session_start(s, &eff, err) < 0) {
        hull_session_destroy(s);
        return hull_error_prefix(err, "create sandbox");
    }
    *out = s;
    return 0;
}

bool hull_session_alive(struct hull_session *s)
{
    pid_t pid = s->c.launch.pid;
    if (pid <= 0)
        return false;
    int r = waitpid(pid, NULL, WNOHANG);
    /* Not our child: we are a fork of its parent (hulld's keeper runs an
     * exec so), which looked just before. */
    return r == 0 || (r < 0 && errno == ECHILD && kill(pid, 0) == 0);
}

void hull_session_destroy(struct hull_session *s)
{
    if (s == NULL)
        return;
    hull_error e = NULL;
    if (s->c.cgroup) {
        /* A frozen cgroup would hold the SIGKILL until thawed. */
        if (s->paused && hull_cgroup_freeze(s->c.cgroup, false, &e) < 0) {
            hull_warn("sandbox %s: thaw: %s", s->id, hull_error_msg(e));
            hull_error_free(&e);
        }
        if (hull_cgroup_kill(s->c.cgroup, SIGKILL, &e) < 0) {
            hull_debug("sandbox %s: kill: %s", s->id, hull_error_msg(e));
            hull_error_free(&e);
        }
    }
    if (s->c.launch.pid > 0) {
        kill(s->c.launch.pid, SIGKILL);
        /* its namespaces' last process: the detach below relies on it */
        hull_reap(s->c.launch.pid);
    }
    struct hull_runtime rt = {.root = HULL_SANDBOX_ROOT};
    if (s->c.cs.id && hull_container_destroy(&rt, -1, &s->c.cs, &e) < 0) {
        hull_warn("sandbox %s: cleanup: %s", s->id, hull_error_msg(e));
        hull_error_free(&e);
    }
    hull_closep(&s->tmpfd);
    /* Every process of the sandbox is gone: its veth, lease and rules go. */
    hull_sandbox_net_release(&s->net);
    /* Only now, with every process of the sandbox gone, are its uids free. */
    hull_sandbox_ids_release(&s->ids);
    hull_container_ctx_release(&s->c);
    hull_seccomp_filter_free(s->seccomp);
    hull_sandbox_layout_free(&s->lay);
    hull_policy_free(&s->policy);
    /* After every process of the sandbox is gone: its root and use mark. */
    hull_sandbox_image_close(&s->img);
    free(s);
}

static int freeze(struct hull_session *s, bool frozen, hull_error *err)
{
    if (s->c.cgroup == NULL)
        return hull_error_set(err, ENOTSUP, "%s: process isolation has no cgroup to freeze",
                              frozen ? "pause" : "resume");
    if (hull_cgroup_freeze(s->c.cgroup, frozen, err) < 0)
        return hull_error_prefix(err, "%s", frozen ? "pause" : "resume");
    s->paused = frozen;
    return 0;
}

int hull_session_pause(struct hull_session *s, hull_error *err)
{
    return freeze(s, true, err);
}

int hull_session_resume(struct hull_session *s, hull_error *err)
{
    return freeze(s, false, err);
}
