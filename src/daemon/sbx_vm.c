/* The keeper of a long-lived microVM sandbox (docs/api.md, "microVM
 * sandboxes"): the same protocol as keeper.c (one process per sandbox,
 * single-threaded, answering hulld's frames), served with hull's VM
 * library instead of a container session. The VM starts warm from the
 * cached template of its configuration and is reached through its agent.
 *
 * Pause goes to disk: the VM is snapshotted (hull_vm_snapshot: signed,
 * digests checked on restore) to <state-dir>/microvm/<vm>.snap and its QEMU
 * stopped; resume restores it under the same id. The file outlives this
 * keeper and hulld, so a paused sandbox is adopted again after a restart
 * ("adopt"). A keeper that loses hulld (EOF) deletes a running VM and
 * leaves a paused one's file; "destroy" removes either. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "daemon.h"
#include "ports.h"
#include "procs.h"
#include "util/error.h"
#include "util/fs.h"
#include "util/json.h"
#include "util/log.h"

#define VMK_ID_MAX 64

struct vmk {
    char id[VMK_ID_MAX + 1];
    char snap[4096]; /* where a paused VM is */
    char stage[96];  /* private host directory for file copies */
    bool on_disk;    /* paused: the VM is only its snapshot */
    uint64_t memory_bytes;
    uint32_t pids;
};

bool vmk_serves(struct frame *f)
{
    const char *op = frame_str(f, "op");
    if (strcmp(op, "adopt") == 0 || strcmp(op, "receive") == 0)
        return true;
    if (strcmp(op, "create") != 0 || f->data == NULL)
        return false;
    cleanup_json json_object *doc = json_tokener_parse(f->data);
    json_object *iso = hj_get(doc, "isolation");
    return iso && strcmp(json_object_get_string(iso), "microvm") == 0;
}

/* The snapshot's path and the staging directory of VM id. */
static int vmk_paths(struct vmk *k, hull_error *err)
{
    char dir[4096];
    snprintf(dir, sizeof(dir), "%s/microvm", hulld.o->state_dir);
    if (mkdir(dir, 0700) < 0 && errno != EEXIST)
        return hull_error_errno(err, "%s", dir);
    if ((size_t)snprintf(k->snap, sizeof(k->snap), "%s/%s.snap", dir, k->id) >= sizeof(k->snap))
        return hull_error_set(err, ENAMETOOLONG, "%s: path too long", dir);
    if (mkdir("/run/hull", 0700) < 0 && errno != EEXIST)
        return hull_error_errno(err, "/run/hull");
    /* Named after the VM (ids are random and root's /run/hull is 0700), so
     * that hulld can remove it when the keeper dies (sbx_vm_sweep.c); one
     * left by a keeper that died is emptied first. */
    snprintf(k->stage, sizeof(k->stage), "/run/hull/vmsbx-%s", k->id);
    if (mkdir(k->stage, 0700) < 0 &&
        (errno != EEXIST || hull_rm_rf_at(AT_FDCWD, k->stage, err) < 0 ||
         mkdir(k->stage, 0700) < 0)) {
        int saved = errno;
        k->stage[0] = '\0';
        return *err ? -1 : hull_error_set(err, saved, "staging directory: %s", strerror(saved));
    }
    return 0;
}

/* What the VM cannot give a sandbox is refused by name, never ignored. */
static int vmk_refuse(const struct hull_policy *p, json_object *doc, hull_error *err)
{
    static const char *const limits_ok[] = {"memory", "pids",       "cpu_time", "wall_time",
                                            "output", "open_files", NULL};
    json_object *limits = hj_get(doc, "limits");
    if (limits && json_object_is_type(limits, json_type_object)) {
        json_object_object_foreach(limits, key, v)
        {
            (void)v;
            bool ok = false;
            for (const char *const *l = limits_ok; *l; l++)
                ok = ok || strcmp(*l, key) == 0;
            if (!ok)
                return hull_error_set(err, ENOTSUP,
                                      "limits.%s: not available for microVM sandboxes (the "
                                      "guest's files are in its RAM: limits.memory bounds both)",
                                      key);
        }
    }
    if (p->n_binds)
        return hull_error_set(err, ENOTSUP,
                              "binds: host binds are not available at microvm "
                              "isolation");
    if (p->seccomp_path)
        return hull_error_set(err, ENOTSUP, "seccomp: the microVM's agent applies its own");
    if (p->n_files || p->n_copy_in || p->n_copy_out)
        return hull_error_set(err, ENOTSUP, "files: use the files API of a microVM sandbox");
    return 0;
}

static int vmk_new_id(struct vmk *k, hull_error *err)
{
    unsigned char b[8];
    if (getrandom(b, sizeof(b), 0) != (ssize_t)sizeof(b))
        return hull_error_errno(err, "getrandom");
    int n = snprintf(k->id, sizeof(k->id), "hulld-");
    for (size_t i = 0; i < sizeof(b); i++)
        n += snprintf(k->id + n, sizeof(k->id) - (size_t)n, "%02x", b[i]);
    return 0;
}

/* RAM for the guest: as a one-shot run sizes it, and 64 MiB more for the
 * agent's 8 sessions (their virtio buffers, server processes, workloads
 * at once). */
static uint64_t vmk_memory_mb(uint64_t memory_bytes)
{
    uint64_t need = (memory_bytes >> 20) + 96;
    if (need < 128)
        need = 128;
    need += 64;
    return (need + 63) / 64 * 64;
}

static int vmk_create(struct vmk *k, struct frame *f, hull_error *err)
{
    struct hull_policy p;
    hull_policy_init(&p);
    cleanup_json json_object *doc = json_tokener_parse(f->data);
    bool mem_given = hj_get(hj_get(doc, "limits"), "memory") != NULL;
    bool pids_given = hj_get(hj_get(doc, "limits"), "pids") != NULL;
    int r = hull_policy_from_json(f->data, f->len, &p, err);
    if (r == 0)
        r = request_policy_image(&p, err);
    if (r == 0)
        r = vmk_refuse(&p, doc, err);
    if (r == 0)
        r = vmk_new_id(k, err);
    if (r == 0)
        r = vmk_paths(k, err);
    k->memory_bytes = mem_given ? p.memory_bytes : 0;
    k->pids = pids_given ? p.pids : 0;
    struct hull_vm_create_opts o = {
        .id = k->id,
        .memory_mb = vmk_memory_mb(k->memory_bytes),
        .rootfs = p.rootfs,
        /* Warm: restored from the template of this configuration (booted
         * and saved the first time). */
        .from_template = true,
        /* Processes, watches, execs and file calls at once (procs.h). */
        .agent_ports = HULL_VM_AGENT_PORTS,
        .image = p.image,
        .image_root = p.image_root,
        .pull = p.pull,
    };
    if (r == 0)
        r = vmk_net_opts(&p, &o, err); /* its lease comes and goes with QEMU */
    if (r == 0 && f->fd >= 0) {
        /* From a template (sbx_vm_tpl.c): its directory, opened by hulld;
         * its snapshot restored as this sandbox's own VM (a failed restore
         * leaves none). */
        char snap[64];
        snprintf(snap, sizeof(snap), "/proc/self/fd/%d/%s", f->fd, TPL_VM_SNAP);
        r = hull_vm_restore(NULL, snap, k->id, err);
    } else if (r == 0 &&
               (hull_vm_create(NULL, &o, err) < 0 || hull_vm_start(NULL, k->id, err) < 0)) {
        hull_error e = NULL;
        if (hull_vm_delete(NULL, k->id, true, &e) < 0)
            hull_error_free(&e); /* never made: nothing to remove */
        r = -1;
    }
    hull_policy_free(&p);
    return r;
}

static int vmk_resume(struct vmk *k, hull_error *err);

/* A paused sandbox's snapshot served again ("resume": running again at
 * once, for a restore on another node: cluster_restart.c). */
static int vmk_adopt(struct vmk *k, struct frame *f, hull_error *err)
{
    const char *id = frame_str(f, "vm");
    if (strncmp(id, "hulld-", 6) != 0 || strlen(id) > VMK_ID_MAX || strchr(id, '/') ||
        strchr(id, '.'))
        return hull_error_set(err, EINVAL, "adopt: '%s' is not a microVM sandbox's VM", id);
    snprintf(k->id, sizeof(k->id), "%s", id);
    if (vmk_paths(k, err) < 0)
        return -1;
    if (access(k->snap, R_OK) < 0)
        return hull_error_errno(err, "adopt: %s", k->snap);
    k->on_disk = true;
    json_object *resume = hj_get(f->hdr, "resume");
    return resume && json_object_get_boolean(resume) ? vmk_resume(k, err) : 0;
}

/* A sandbox's VM moving here from another node (sbx_vm_move.c); f->data
 * its create request, for the limits the VM applies. */
static int vmk_receive(struct vmk *k, int sock, struct frame *f, hull_error *err)
{
    struct hull_policy p;
    hull_policy_init(&p);
    cleanup_json json_object *doc = f->data ? json_tokener_parse(f->data) : NULL;
    int r = f->data ? hull_policy_from_json(f->data, f->len, &p, err)
                    : hull_error_set(err, EINVAL, "receive: no create request");
    k->memory_bytes = hj_get(hj_get(doc, "limits"), "memory") ? p.memory_bytes : 0;
    k->pids = hj_get(hj_get(doc, "limits"), "pids") ? p.pids : 0;
    hull_policy_free(&p);
    if (r < 0 || vmk_new_id(k, err) < 0 || vmk_paths(k, err) < 0)
        return -1;
    return vmk_migrate_in(k->id, sock, f, err);
}

/* A default PATH and HOME, under the command's own. */
static char **vmk_env(char **given)
{
    static const char *const defaults[] = {
        "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "HOME=/root",
        "TERM=xterm", NULL};
    size_t n = 0;
    while (given && given[n])
        n++;
    char **env = calloc(n + 4, sizeof(*env));
    if (env == NULL)
        return NULL;
    size_t j = 0;
    for (const char *const *d = defaults; *d; d++) {
        size_t klen = (size_t)(strchr(*d, '=') - *d) + 1;
        bool over = false;
        for (size_t i = 0; i < n; i++)
            over = over || strncmp(given[i], *d, klen) == 0;
        if (!over)
            env[j++] = (char *)*d;
    }
    for (size_t i = 0; i < n; i++)
        env[j++] = given[i];
    return env;
}

static int vmk_exec_opts(const struct vmk *k, const struct hull_policy *p,
                         struct hull_vm_exec_opts *o, char ***env, hull_error *err)
{
    if (p->argv == NULL || p->argv[0] == NULL)
        return hull_error_set(err, EINVAL, "cmd: required");
    *env = vmk_env(p->env);
    if (*env == NULL)
        return hull_error_set(err, ENOMEM, "out of memory");
    *o = (struct hull_vm_exec_opts){
        .argv = p->argv,
        .env = *env,
        .cwd = p->workdir,
        .stdin_fd = -1,
        .stdin_data = p->stdin_data,
        .stdin_len = p->stdin_len,
        .stdout_fd = -1,
        .stderr_fd = -1,
        .limits = {.cpu_time_ms = p->cpu_time_ms,
                   .wall_time_ms = p->wall_time_ms,
                   .memory_bytes = k->memory_bytes,
                   .pids = k->pids ? k->pids : p->pids,
                   .output_bytes = p->output_bytes,
                   .open_files = p->open_files},
    };
    return 0;
}

/* The result of a command that could not start (e: why; NULL: no memory),
 * as at the container level: bad_command with a shell's status when it is
 * the command's fault, internal_error otherwise. */
static char *not_started_json(const hull_error e)
{
    struct hull_vm_exec_result r;
    memset(&r, 0, sizeof(r));
    int status = hull_cmd_status(e ? hull_error_code(e) : ENOMEM);
    snprintf(r.verdict, sizeof(r.verdict), status ? "bad_command" : "internal_error");
    r.exit_code = status ? status : -1;
    return hull_vm_exec_result_json(&r, e ? hull_error_msg(e) : "out of memory");
}

/* A non-streamed exec (in a child of the keeper): its result JSON. */
static void vmk_exec(struct vmk *k, int sock, struct frame *f)
{
    struct hull_policy p;
    hull_error e = NULL;
    hull_policy_init(&p);
    struct hull_vm_exec_opts o;
    char **env = NULL;
    if (hull_policy_from_json(f->data, f->len, &p, &e) < 0 ||
        vmk_exec_opts(k, &p, &o, &env, &e) < 0) {
        hull_policy_free(&p);
        free(env);
        frame_reply_error(sock, &e);
        return;
    }
    struct hull_vm_exec_result r;
    int rc = hull_vm_exec(NULL, k->id, &o, &r, &e);
    char *json = NULL;
    if (rc == 0) {
        json = hull_vm_exec_result_json(&r, NULL);
    } else if (hull_error_code(e) != ETIMEDOUT && hull_error_code(e) != EINVAL) {
        json = not_started_json(e);
        hull_error_free(&e);
        memset(&r, 0, sizeof(r));
    }
    hull_vm_exec_result_free(&r);
    hull_policy_free(&p);
    free(env);
    if (json == NULL && e == NULL)
        hull_error_set(&e, ENOMEM, "out of memory");
    if (json == NULL)
        frame_reply_error(sock, &e);
    else
        frame_reply_ok(sock, NULL, NULL, json, strlen(json));
    free(json);
}

/* The old files API: a path under /tmp ("x/y" or "/tmp/x/y"). */
static int vmk_tmp_path(const char *path, char *out, size_t len, hull_error *err)
{
    if (strncmp(path, "/tmp/", 5) == 0)
        path += 5;
    while (*path == '/')
        path++;
    if (*path == '\0' || (size_t)snprintf(out, len, "/tmp/%s", path) >= len)
        return hull_error_set(err, EINVAL, "path: not a file under /tmp");
    return 0;
}

/* Missing parents of guest path made (mkdir -p, by the guest's agent in
 * the workload root, every path resolved beneath it); /tmp itself is
 * there. No program of the guest runs for it: a workload cannot stand in. */
static int vmk_parents(struct vmk *k, const char *guest, hull_error *err)
{
    const char *slash = strrchr(guest, '/');
    if (slash == NULL || slash - guest <= 4) /* "/tmp" itself */
        return 0;
    if (vmk_fs_parents(k->id, guest, err) < 0)
        return hull_error_prefix(err, "put: parents: path: %.*s", (int)(slash - guest), guest);
    return 0;
}

static int vmk_put(struct vmk *k, struct frame *f, hull_error *err)
{
    char guest[4200], host[128];
    if (vmk_tmp_path(frame_str(f, "path"), guest, sizeof(guest), err) < 0)
        return -1;
    json_object *m = hj_get(f->hdr, "mode");
    snprintf(host, sizeof(host), "%s/put", k->stage);
    int fd = open(host, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW,
                  m ? (mode_t)(json_object_get_int(m) & 0777) : 0644);
    if (fd < 0)
        return hull_error_errno(err, "put: staging file");
    bool ok = f->len == 0 || write(fd, f->data, f->len) == (ssize_t)f->len;
    close(fd);
    int r = ok ? vmk_parents(k, guest, err) : hull_error_errno(err, "put: staging file");
    if (r == 0)
        r = hull_vm_copy_in(NULL, k->id, host, guest, err);
    unlink(host);
    return r;
}

static int vmk_get(struct vmk *k, struct frame *f, char **data, size_t *len, hull_error *err)
{
    char guest[4200], host[128];
    if (vmk_tmp_path(frame_str(f, "path"), guest, sizeof(guest), err) < 0)
        return -1;
    snprintf(host, sizeof(host), "%s/get", k->stage);
    unlink(host);
    int r = hull_vm_copy_out(NULL, k->id, guest, host, err);
    json_object *mx = hj_get(f->hdr, "max");
    size_t max = mx ? (size_t)json_object_get_int64(mx) : 0;
    struct stat st;
    int fd = r == 0 ? open(host, O_RDONLY | O_CLOEXEC | O_NOFOLLOW) : -1;
    if (r == 0 && (fd < 0 || fstat(fd, &st) < 0))
        r = hull_error_errno(err, "get: staging file");
    else if (r == 0 && max && (size_t)st.st_size > max)
        r = hull_error_set(err, EFBIG, "%s: %lld bytes, more than %zu", guest,
                           (long long)st.st_size, max);
    else if (r == 0 && hull_read_fd(fd, data, len, err) < 0)
        r = -1;
    if (fd >= 0)
        close(fd);
    unlink(host);
    return r;
}

static int vmk_refuse_busy(const char *what, hull_error *err);

/* Pause to disk: snapshot, then the VM goes; its file stays (refused
 * while a process of it runs). */
static int vmk_pause(struct vmk *k, hull_error *err)
{
    if (k->on_disk)
        return hull_error_set(err, EBUSY, "sandbox is paused already");
    if (vmk_refuse_busy("a pause to disk", err) < 0)
        return -1;
    char tmp[4200];
    snprintf(tmp, sizeof(tmp), "%s.part", k->snap);
    unlink(tmp);
    if (hull_vm_snapshot(NULL, k->id, tmp, err) < 0) {
        unlink(tmp);
        return hull_error_prefix(err, "pause");
    }
    /* Durable before the VM goes: it is all that is left of it. */
    int fd = open(tmp, O_RDONLY | O_CLOEXEC);
    bool synced = fd >= 0 && fsync(fd) == 0;
    if (fd >= 0)
        close(fd);
    if (!synced || rename(tmp, k->snap) < 0) {
        hull_error_errno(err, "pause: %s", k->snap);
        unlink(tmp);
        return -1;
    }
    if (hull_vm_delete(NULL, k->id, true, err) < 0) {
        unlink(k->snap);
        return hull_error_prefix(err, "pause");
    }
    k->on_disk = true;
    return 0;
}

static int vmk_resume(struct vmk *k, hull_error *err)
{
    if (!k->on_disk)
        return hull_error_set(err, EBUSY, "sandbox is not paused");
    if (hull_vm_restore(NULL, k->snap, k->id, err) < 0)
        return hull_error_prefix(err, "resume");
    k->on_disk = false;
    if (unlink(k->snap) < 0)
        hull_warn("microVM %s: %s: %s", k->id, k->snap, strerror(errno));
    return 0;
}

/* The VM goes (a paused one's snapshot too, when forget). */
static void vmk_end(struct vmk *k, bool forget)
{
    hull_error e = NULL;
    vmk_watch_reap(true);
    if (!k->on_disk && k->id[0] && hull_vm_delete(NULL, k->id, true, &e) < 0) {
        hull_log(HULL_LOG_ERROR, "microVM %s: %s", k->id, hull_error_msg(e));
        hull_error_free(&e);
    }
    if (k->on_disk && forget && unlink(k->snap) < 0 && errno != ENOENT)
        hull_warn("microVM %s: %s: %s", k->id, k->snap, strerror(errno));
    if (k->stage[0] && rmdir(k->stage) < 0)
        hull_warn("microVM %s: %s: %s", k->id, k->stage, strerror(errno));
    k->stage[0] = '\0';
}

/* ---- background processes (keeper_procs.c with this backend) ----
 *
 * A process is a child of the keeper running hull_vm_exec with its stdin,
 * stdout and stderr on pipes the keeper holds; it writes the agent's result
 * to a fourth pipe and exits. The agent serves one session at a time, so
 * processes of one microVM run one after another (the next waits for the
 * agent). Killing the child ends its session, and the agent kills the
 * workload of a host that left. */

static const struct vmk *vmk_self; /* the keeper's one sandbox */

#define VMK_RESULTS 128
static struct {
    pid_t pid;
    int fd;
} vmk_results[VMK_RESULTS];

static void vmk_child(int in, int out, int errfd, int res, int ctl, const unsigned tty[2],
                      const struct hull_policy *p)
{
    /* Only what the run needs: hulld's connections are the keeper's. */
    for (int fd = 3; fd < 1024; fd++)
        if (fd != in && fd != out && fd != errfd && fd != res && fd != ctl)
            close(fd);
    signal(SIGPIPE, SIG_IGN);
    hull_error e = NULL;
    struct hull_vm_exec_opts o;
    char **env = NULL;
    struct hull_vm_exec_result r;
    char *json = NULL;
    if (vmk_exec_opts(vmk_self, p, &o, &env, &e) == 0) {
        o.stdin_fd = in;
        o.stdin_data = NULL;
        o.stdin_len = 0;
        o.stdout_fd = out;
        o.stderr_fd = errfd;
        o.ctl_fd = ctl; /* signals and sizes (sbx_vm_procs.c) */
        /* The keeper keeps a process's wall time (a streamed exec's, or
         * one given), as for a container: the policy's default of 10 s
         * must not end a background process in the guest. */
        o.limits.wall_time_ms = 0;
        o.pty_rows = tty[0];
        o.pty_cols = tty[1];
        if (hull_vm_exec(NULL, vmk_self->id, &o, &r, &e) == 0) {
            json = hull_vm_exec_result_json(&r, NULL);
            hull_vm_exec_result_free(&r);
        }
    }
    if (json == NULL)
        json = not_started_json(e);
    if (json && write(res, json, strlen(json)) < 0)
        _exit(1);
    _exit(0);
}

static void vmk_close_pipes(int fds[5][2])
{
    for (int i = 0; i < 5; i++)
        for (int j = 0; j < 2; j++)
            if (fds[i][j] >= 0)
                close(fds[i][j]);
}

int vmk_procs_running(void)
{
    int n = 0;
    for (int i = 0; i < VMK_RESULTS; i++)
        n += vmk_results[i].pid > 0;
    return n;
}

static int vmk_spawn(const struct hull_policy *p, bool with_stdin, unsigned rows, unsigned cols,
                     struct hull_session_proc *sp, hull_error *err)
{
    if (vmk_procs_running() + vmk_watch_count() >= VMK_SESSIONS_MAX)
        return hull_error_set(err, EBUSY,
                              "the sandbox has %d processes and watches running, its most at "
                              "microvm isolation (each holds one of its agent's sessions)",
                              VMK_SESSIONS_MAX);
    int slot = 0;
    while (slot < VMK_RESULTS && vmk_results[slot].pid > 0)
        slot++;
    if (slot == VMK_RESULTS)
        return hull_error_set(err, EBUSY, "the sandbox has %d processes, its most", VMK_RESULTS);
    /* in, out, err, result, control */
    int fds[5][2] = {{-1, -1}, {-1, -1}, {-1, -1}, {-1, -1}, {-1, -1}};
    const unsigned tty[2] = {rows && cols ? rows : 0, rows && cols ? cols : 0};
    with_stdin = with_stdin || tty[0]; /* a terminal always takes input */
    for (int i = 0; i < 5; i++)
        if ((i > 0 || with_stdin) && pipe2(fds[i], O_CLOEXEC) < 0) {
            vmk_close_pipes(fds);
            return hull_error_errno(err, "pipe");
        }
    pid_t pid = fork(); /* safe: the keeper has one thread */
    if (pid < 0) {
        vmk_close_pipes(fds);
        return hull_error_errno(err, "fork");
    }
    if (pid == 0)
        vmk_child(fds[0][0], fds[1][1], fds[2][1], fds[3][1], fds[4][0], tty, p);
    int keep[4] = {fds[0][1], fds[1][0], fds[2][0], fds[3][0]};
    vmk_ctl_add(pid, fds[4][1]);
    fds[0][1] = fds[1][0] = fds[2][0] = fds[3][0] = fds[4][1] = -1;
    vmk_close_pipes(fds);
    for (int i = 0; i < 3; i++)
        if (keep[i] >= 0)
            fcntl(keep[i], F_SETFL, O_NONBLOCK);
    *sp = (struct hull_session_proc){.pid = pid, .in = keep[0], .out = keep[1], .err = keep[2]};
    sp->pidfd = (int)syscall(SYS_pidfd_open, pid, 0);
    vmk_results[slot].pid = pid;
    vmk_results[slot].fd = keep[3];
    return 0;
}

static json_object *vmk_result(pid_t pid, int status, int stop)
{
    json_object *o = NULL;
    vmk_ctl_drop(pid);
    for (int i = 0; i < VMK_RESULTS; i++) {
        if (vmk_results[i].pid != pid)
            continue;
        char *text = NULL;
        size_t len = 0;
        hull_error e = NULL;
        if (hull_read_fd(vmk_results[i].fd, &text, &len, &e) == 0 && len)
            o = json_tokener_parse(text);
        hull_error_free(&e);
        free(text);
        close(vmk_results[i].fd);
        vmk_results[i].pid = 0;
    }
    if (o) /* the child ran to its end: the agent's verdict */
        return o;
    /* Killed before it had one: by the keeper (a limit, the end) or a signal. */
    static const char *const by_stop[] = {"signaled", "wall_time_limit", "output_limit", "killed"};
    o = json_object_new_object();
    json_object_object_add(o, "verdict", json_object_new_string(by_stop[stop & 3]));
    json_object_object_add(o, "exit_code", json_object_new_int(-1));
    json_object_object_add(o, "signal",
                           json_object_new_int(WIFSIGNALED(status) ? WTERMSIG(status) : 0));
    json_object_object_add(o, "isolation", json_object_new_string("microvm"));
    return o;
}

/* EBUSY while a process of the sandbox runs: what needs the guest's
 * agent quiet (a snapshot, a move, a pause to disk) would wait for it
 * for as long as it runs, with the sandbox's operation lock held. */
static int vmk_refuse_busy(const char *what, hull_error *err)
{
    for (int i = 0; i < VMK_RESULTS; i++)
        if (vmk_results[i].pid > 0)
            return hull_error_set(err, EBUSY,
                                  "a process of the sandbox is running (%s needs its agent): "
                                  "wait for it or kill it",
                                  what);
    return 0;
}

/* A template of this VM (sbx_vm_tpl.c), refused while a process of it
 * runs: the snapshot waits for the agent, which that process holds. */
static void vmk_tpl_op(struct vmk *k, int sock, struct frame *f)
{
    hull_error e = NULL;
    json_object *stats = NULL, *m = hj_get(f->hdr, "max");
    if (vmk_refuse_busy("the snapshot", &e) < 0 ||
        vmk_tpl_save(k->id, f->fd, m ? (uint64_t)json_object_get_int64(m) : 0, &stats, &e) < 0) {
        frame_reply_error(sock, &e);
        return;
    }
    json_object *hdr = json_object_new_object();
    json_object_object_add(hdr, "ok", json_object_new_boolean(1));
    json_object_object_add(hdr, "stats", stats);
    frame_send(sock, hdr, NULL, 0, -1);
    json_object_put(hdr);
}

/* The VM moves to another node (sbx_vm_move.c); refused while a process
 * of it runs (the move waits for its agent, which that process holds). */
static void vmk_migrate_op(struct vmk *k, int sock, struct frame *f)
{
    hull_error e = NULL;
    if (vmk_refuse_busy("the move", &e) < 0 || vmk_migrate_out(k->id, sock, f, &e) < 0)
        frame_reply_error(sock, &e);
    else
        k->id[0] = '\0'; /* its VM runs on the other node now, none here */
}

/* The cluster's copy of its snapshot (sbx_vm_csnap.c). */
static void vmk_csnap_op(struct vmk *k, int sock, struct frame *f)
{
    hull_error e = NULL;
    /* A process or a watch holds an agent session, which the snapshot
     * waits for: this period is skipped rather than the keeper blocked. */
    bool busy = vmk_watch_count() > 0, unchanged = false;
    for (int i = 0; i < VMK_RESULTS; i++)
        busy = busy || vmk_results[i].pid > 0;
    if (vmk_csnap(k->id, k->snap, k->on_disk, busy, f->fd, frame_str(f, "name"), &unchanged, &e) <
        0) {
        frame_reply_error(sock, &e);
        return;
    }
    json_object *hdr = json_object_new_object();
    json_object_object_add(hdr, "ok", json_object_new_boolean(1));
    json_object_object_add(hdr, "paused", json_object_new_boolean(k->on_disk));
    json_object_object_add(hdr, "unchanged", json_object_new_boolean(unchanged));
    frame_send(sock, hdr, NULL, 0, -1);
    json_object_put(hdr);
}

static const struct kprocs_backend vmk_backend = {
    .spawn = vmk_spawn, .result = vmk_result, .signal = vmk_signal, .resize = vmk_resize};

static void vmk_procs_op(struct kprocs *kp, int sock, struct frame *f)
{
    kprocs_op(kp, NULL, sock, f);
}

/* One request; true when the keeper is done. */
static bool vmk_op(struct vmk *k, struct kprocs *kp, int sock, struct frame *f)
{
    const char *op = frame_str(f, "op");
    hull_error e = NULL;
    vmk_watch_reap(false); /* watches whose client went */
    static const char *const need_vm[] = {"exec",    "put",        "get",        "fs",
                                          "pause",   "proc_start", "proc_stdin", "tpl_save",
                                          "migrate", NULL};
    bool paused_refused = false;
    for (const char *const *n = need_vm; k->on_disk && *n; n++)
        paused_refused = paused_refused || strcmp(op, *n) == 0;
    if (!k->on_disk && k->id[0] == '\0' && strcmp(op, "destroy") != 0) {
        hull_error_set(&e, ENOENT, "sandbox moved to another node");
        frame_reply_error(sock, &e);
    } else if (paused_refused) {
        hull_error_set(&e, EBUSY, "sandbox is paused");
        frame_reply_error(sock, &e);
    } else if (strcmp(op, "attach") == 0 || strncmp(op, "proc_", 5) == 0) {
        vmk_procs_op(kp, sock, f);
    } else if (strcmp(op, "exec") == 0) {
        pid_t child = kprocs_fork(kp, sock);
        if (child <= 0)
            vmk_exec(k, sock, f);
        if (child == 0)
            _exit(0);
    } else if (strcmp(op, "put") == 0) {
        if (vmk_put(k, f, &e) < 0)
            frame_reply_error(sock, &e);
        else
            frame_reply_ok(sock, NULL, NULL, NULL, 0);
    } else if (strcmp(op, "get") == 0) {
        char *data = NULL;
        size_t len = 0;
        if (vmk_get(k, f, &data, &len, &e) < 0)
            frame_reply_error(sock, &e);
        else
            frame_reply_ok(sock, NULL, NULL, data, len);
        free(data);
    } else if (strcmp(op, "socket") == 0) {
        vmk_socket(k->id, k->on_disk, sock, f); /* a port's connection (sbx_vm_net.c) */
    } else if (strcmp(op, "fs") == 0) {
        vmk_fs_op(k->id, k->stage, vmk_memory_mb(k->memory_bytes) << 20, sock, f);
    } else if (strcmp(op, "tpl_save") == 0) {
        vmk_watch_reap(true); /* a watch's session would hold the snapshot back */
        vmk_tpl_op(k, sock, f);
    } else if (strcmp(op, "migrate") == 0) {
        vmk_watch_reap(true); /* their sessions would hold the move back, as a pause's */
        vmk_migrate_op(k, sock, f);
    } else if (strcmp(op, "csnap") == 0) {
        vmk_csnap_op(k, sock, f);
    } else if (strcmp(op, "pause") == 0 || strcmp(op, "resume") == 0) {
        vmk_watch_reap(true); /* watches end at a pause, as their streams say */
        int r = op[0] == 'p' ? vmk_pause(k, &e) : vmk_resume(k, &e);
        if (r < 0)
            frame_reply_error(sock, &e);
        else
            frame_reply_ok(sock, NULL, NULL, NULL, 0);
    } else if (strcmp(op, "destroy") == 0) {
        kprocs_kill(kp, NULL);
        vmk_end(k, true);
        frame_reply_ok(sock, NULL, NULL, NULL, 0);
        return true;
    } else {
        hull_error_set(&e, EPROTO, "keeper: unknown operation '%s'", op);
        frame_reply_error(sock, &e);
    }
    return false;
}

int vmk_loop(struct kprocs *kp, int sock, struct frame *first)
{
    struct vmk k = {0};
    hull_error e = NULL;
    bool adopt = strcmp(frame_str(first, "op"), "adopt") == 0;
    bool receive = strcmp(frame_str(first, "op"), "receive") == 0;
    if ((adopt     ? vmk_adopt(&k, first, &e)
         : receive ? vmk_receive(&k, sock, first, &e)
                   : vmk_create(&k, first, &e)) < 0) {
        frame_reply_error(sock, &e);
        if (!adopt)
            k.on_disk = false;
        if (k.stage[0])
            rmdir(k.stage);
        return 1;
    }
    frame_reply_ok(sock, "container", k.id, NULL, 0);
    vmk_self = &k;
    kprocs_set_backend(kp, &vmk_backend);
    for (;;) {
        struct frame f;
        int conn;
        if (kprocs_next(kp, NULL, &conn, &f) < 0)
            break; /* hulld went: a paused VM stays on disk for the next */
        bool done = vmk_op(&k, kp, conn, &f);
        frame_free(&f);
        if (done)
            return 0;
    }
    kprocs_kill(kp, NULL);
    vmk_end(&k, false);
    return 0;
}
