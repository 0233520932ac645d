/* The microvm isolation level: the same policy and result as the container
 * level, run by hull_vm_oneshot in a fresh guest with its own kernel (a
 * warm template when one is cached). The guest's agent enforces the limits
 * inside the guest and measures them there.
 *
 * What the guest cannot offer is refused by name rather than ignored: host
 * binds, the host's network, and a custom seccomp profile (the agent applies
 * its own). A hull network (--network NAME) is the VM's own TAP and lease
 * (vm/vmnet.c). Inline files travel as copy-ins of private temporary files. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "sandbox/sandbox.h"
#include "util/error.h"
#include "util/log.h"
#include "util/fs.h"
#include "util/strv.h"

static int refuse_unsupported(const struct hull_policy *p, hull_error *err)
{
    if (p->n_binds)
        return hull_error_set(err, ENOTSUP,
                              "bind: host binds are not available at microvm "
                              "isolation (use --copy-in)");
    if (p->network_host || (p->network && strcmp(p->network, "host") == 0))
        return hull_error_set(err, ENOTSUP,
                              "network: a microVM cannot share the host's network (it has its "
                              "own kernel); --network host is refused (give it --network NAME)");
    if (p->seccomp_path)
        return hull_error_set(err, ENOTSUP,
                              "seccomp: the microVM's agent applies its own "
                              "profile; --seccomp is refused at microvm isolation");
    /* The guest's /tmp is part of its root, whose writes live in guest RAM
     * and are charged to the workload's memory: no size of its own. */
    if (p->tmp_given)
        return hull_error_set(err, ENOTSUP,
                              "tmp_size: a microVM's /tmp is in guest memory, bounded by the "
                              "memory limit; --tmp-size is refused at microvm isolation");
    return 0;
}

/* Copy-ins land in the guest's /tmp and nowhere else: a --rootfs whose
 * tmp (proc, dev) is a symlink is refused as at the other levels. One that
 * lacks them is the guest's to make. */
static int check_rootfs(const struct hull_policy *p, hull_error *err)
{
    if (p->rootfs == NULL)
        return 0;
    char *root = hull_sandbox_resolve_rootfs(p->rootfs, err);
    if (root == NULL)
        return -1;
    static const char *const own[] = {"/proc", "/dev", "/tmp", NULL};
    int rc = 0;
    for (const char *const *m = own; *m && rc == 0; m++) {
        if (hull_sandbox_check_own_mount(root, *m, err) == 0)
            continue;
        if (hull_error_code(*err) == ENOENT)
            hull_error_free(err); /* absent: the guest makes it (see above) */
        else
            rc = -1;
    }
    free(root);
    return rc;
}

static enum hull_verdict verdict_from_name(const char *name)
{
    for (int v = HULL_VERDICT_OK; v <= HULL_VERDICT_BAD_COMMAND; v++)
        if (strcmp(hull_verdict_name((enum hull_verdict)v), name) == 0)
            return (enum hull_verdict)v;
    return HULL_VERDICT_INTERNAL_ERROR;
}

/* Inline files become private host files handed over as copy-ins. */
static int stage_inline_files(const struct hull_policy *p, char *dir, size_t dirlen,
                              char (*paths)[PATH_MAX], hull_error *err)
{
    if (p->n_files == 0)
        return 0;
    snprintf(dir, dirlen, "/run/hull/vm-inline-XXXXXX");
    if (hull_mkdir_p("/run/hull", 0700, err) < 0)
        return -1;
    if (mkdtemp(dir) == NULL)
        return hull_error_errno(err, "files: staging directory");
    for (size_t i = 0; i < p->n_files; i++) {
        snprintf(paths[i], PATH_MAX, "%s/%zu", dir, i);
        int fd = open(paths[i], O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC,
                      p->files[i].mode ? p->files[i].mode : 0644);
        if (fd < 0)
            return hull_error_errno(err, "files: stage %s", p->files[i].path);
        bool ok = write(fd, p->files[i].data, p->files[i].len) == (ssize_t)p->files[i].len;
        close(fd);
        if (!ok)
            return hull_error_errno(err, "files: stage %s", p->files[i].path);
    }
    return 0;
}

static int read_stdin_file(const char *path, uint64_t wait_ms, char **data, size_t *len,
                           hull_error *err)
{
    cleanup_close int fd = hull_sandbox_open_input(path, "--stdin", err);
    if (fd < 0)
        return -1;
    /* A FIFO reads as empty until its writer comes: wait for it (or for
     * its end) as long as the run may take, signals still heard. */
    struct pollfd pf = {.fd = fd, .events = POLLIN};
    int n = poll(&pf, 1, wait_ms > INT_MAX ? INT_MAX : (int)wait_ms);
    if (n < 0) /* a signal (the run is being stopped) ends the wait */
        return hull_error_errno(err, "--stdin %s", path);
    if (n == 0)
        return hull_error_set(err, ETIMEDOUT, "--stdin %s: nothing to read within the wall time",
                              path);
    if (hull_read_fd_max(fd, HULL_VM_STDIN_MAX, data, len, err) < 0)
        return hull_error_prefix(err, "--stdin %s", path);
    return 0;
}

/* What the oneshot copied out, or, when the run never got there, that
 * nothing was. */
static void copied_out(const struct hull_policy *p, struct hull_vm_oneshot_result *vr,
                       struct hull_result *r)
{
    if (p->n_copy_out == 0)
        return;
    if (vr->n_files == p->n_copy_out) {
        r->files = vr->files; /* changes hands */
        r->n_files = vr->n_files;
        vr->files = NULL;
        vr->n_files = 0;
        return;
    }
    r->files = calloc(p->n_copy_out, sizeof(*r->files));
    for (size_t i = 0; r->files && i < p->n_copy_out; i++) {
        struct hull_copied_file *f = &r->files[r->n_files++];
        f->sandbox = strdup(p->copy_out[i].sandbox);
        f->host = strdup(p->copy_out[i].host);
        f->status = HULL_COPY_MISSING;
        if (asprintf(&f->error, "%s: not copied out: the run did not finish", f->sandbox) < 0)
            f->error = NULL;
    }
}

/* The run itself; inline files are staged in dir (made here, removed by
 * the caller). */
static int vm_run_staged(const struct hull_policy *p, struct hull_result *r, char *dir,
                         size_t dirlen, hull_error *err)
{
    size_t n_in = p->n_copy_in + p->n_files;
    cleanup_free struct hull_vm_file *in = calloc(n_in ? n_in : 1, sizeof(*in));
    cleanup_free struct hull_vm_file *out = calloc(p->n_copy_out ? p->n_copy_out : 1, sizeof(*out));
    cleanup_free char(*staged)[PATH_MAX] = calloc(p->n_files ? p->n_files : 1, PATH_MAX);
    cleanup_free char *stdin_buf = NULL;
    size_t stdin_len = 0;
    if (in == NULL || out == NULL || staged == NULL)
        return hull_error_set(err, ENOMEM, "out of memory");
    for (size_t i = 0; i < p->n_copy_in; i++) {
        in[i].host = p->copy_in[i].host;
        in[i].guest = p->copy_in[i].sandbox;
    }
    if (stage_inline_files(p, dir, dirlen, staged, err) < 0)
        return -1;
    for (size_t i = 0; i < p->n_files; i++) {
        in[p->n_copy_in + i].host = staged[i];
        in[p->n_copy_in + i].guest = p->files[i].path;
    }
    for (size_t i = 0; i < p->n_copy_out; i++) {
        out[i].host = p->copy_out[i].host;
        out[i].guest = p->copy_out[i].sandbox;
    }
    if (p->stdin_path &&
        read_stdin_file(p->stdin_path, p->wall_time_ms, &stdin_buf, &stdin_len, err) < 0)
        return -1;

    /* An image's run gets the sandbox's defaults under its Env (which may
     * have no PATH), as at the other levels. */
    cleanup_strv char **env = p->image ? vm_env_merge(hull_sandbox_default_env, p->env) : NULL;
    if (p->image && env == NULL)
        return hull_error_set(err, ENOMEM, "out of memory");
    struct hull_vm_oneshot_opts o = {
        .argv = p->argv,
        .env = env ? env : p->env,
        .cwd = p->workdir ? p->workdir : "/tmp",
        .stdin_data = stdin_buf ? stdin_buf : p->stdin_data,
        .stdin_len = stdin_buf ? stdin_len : p->stdin_len,
        .copy_in = in,
        .n_copy_in = n_in,
        .copy_out = out,
        .n_copy_out = p->n_copy_out,
        .copy_out_max = p->copy_out_max,
        .limits = {.cpu_time_ms = p->cpu_time_ms,
                   .wall_time_ms = p->wall_time_ms,
                   .memory_bytes = p->memory_bytes,
                   .pids = p->pids,
                   .output_bytes = p->output_bytes,
                   .open_files = p->open_files,
                   .cpu_milli = (uint64_t)(p->cpus * 1000 + 0.5)},
        .rootfs = p->rootfs,
        /* Found (and pulled) already, and in use until the run ends. */
        .image = p->image,
        .image_root = p->image_root,
        .pull = HULL_PULL_NEVER,
        /* A TAP and a lease of the run's own, released with its VM. */
        .network = p->network,
        .egress = p->egress,
        .publish = p->publish,
        .n_publish = p->n_publish,
        .on_output = p->on_output,
        .on_output_ctx = p->on_output_ctx,
    };
    struct hull_vm_oneshot_result vr;
    memset(&vr, 0, sizeof(vr));
    if (hull_vm_oneshot(&o, &vr, err) < 0)
        return -1;
    r->isolation = HULL_ISOLATION_MICROVM;
    r->verdict = verdict_from_name(vr.run.verdict);
    r->exit_code = vr.run.exit_code < 0 ? 0 : vr.run.exit_code;
    r->signal = vr.run.signal;
    r->cpu_time_ms = vr.run.cpu_time_ms;
    r->wall_time_ms = vr.run.wall_time_ms;
    r->max_memory_kb = vr.run.max_memory_kb;
    /* The buffers change hands. */
    r->out = (struct hull_output){vr.run.stdout_buf, vr.run.stdout_len, vr.run.stdout_truncated};
    r->err = (struct hull_output){vr.run.stderr_buf, vr.run.stderr_len, vr.run.stderr_truncated};
    vr.run.stdout_buf = vr.run.stderr_buf = NULL;
    /* Copy-out failures are in r->files; the error is for internal_error
     * and bad_command. */
    if (vr.error &&
        (r->verdict == HULL_VERDICT_INTERNAL_ERROR || r->verdict == HULL_VERDICT_BAD_COMMAND))
        r->error = strdup(vr.error);
    copied_out(p, &vr, r);
    hull_vm_oneshot_result_free(&vr);
    return 0;
}

static int vm_run(const struct hull_policy *p, struct hull_result *r, hull_error *err)
{
    /* An image: its config applied here, its disk built by the oneshot;
     * in use until the run is over. */
    cleanup_sandbox_image struct hull_sandbox_image si = {.open = false};
    struct hull_policy eff;
    if (hull_policy_validate(p, err) < 0 || refuse_unsupported(p, err) < 0 ||
        check_rootfs(p, err) < 0 || hull_sandbox_image_open(p, &si, &eff, true, err) < 0)
        return -1;
    char dir[64] = "";
    int ret = vm_run_staged(&eff, r, dir, sizeof(dir), err);
    if (ret == 0)
        hull_sandbox_image_result(&si, r);
    if (dir[0]) {
        hull_error e = NULL;
        if (hull_rm_rf_at(AT_FDCWD, dir, &e) < 0)
            hull_warn("sandbox microvm: %s", hull_error_msg(e));
        hull_error_free(&e);
    }
    return ret;
}

const struct hull_sandbox_provider hull_provider_microvm = {
    .name = "microvm",
    .run = vm_run,
};
