/* One workload in a fresh microVM: the microvm isolation level of
 * `hull sandbox run`.
 *
 *   1. a VM sized for the workload (guest RAM = memory limit + 96 MiB for
 *      the guest kernel and agent, at least 128 MiB, in 64 MiB steps, so
 *      few sizes and so few templates exist), restored from the template of
 *      its configuration (cold boot the first time, or with cold);
 *   2. files copied in, the workload run with its limits, files copied out;
 *   3. the VM destroyed: QEMU, cgroups, sockets, state directory.
 *
 * The VM is ephemeral: its QEMU hangs off a monitor process that dies with
 * the caller, so killing the caller leaves nothing behind either.
 *
 * Limits are enforced and measured inside the guest (agent_exec.c): the
 * workload runs in a cgroup v2 of its own, limited by memory.max and
 * pids.max, its CPU time read from cpu.stat, its peak memory from
 * memory.peak, OOM kills from memory.events and refused forks from
 * pids.events; the wall clock and CPU time are watched by the agent, which
 * kills the whole cgroup at the limit; RLIMIT_NOFILE caps open files and
 * RLIMIT_CPU is a per-process backstop. Output beyond the limit is cut and
 * the workload killed.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "util/clock.h"
#include "util/error.h"
#include "util/log.h"
#include "vm/agent.h"
#include "vm/vm.h"

void hull_vm_oneshot_result_free(struct hull_vm_oneshot_result *r)
{
    if (!r)
        return;
    hull_vm_exec_result_free(&r->run);
    free(r->error);
    r->error = NULL;
    for (size_t i = 0; i < r->n_files; i++) {
        free(r->files[i].sandbox);
        free(r->files[i].host);
        free(r->files[i].error);
    }
    free(r->files);
    r->files = NULL;
    r->n_files = 0;
}

static void internal(struct hull_vm_oneshot_result *r, hull_error *e)
{
    int status = hull_cmd_status(e ? hull_error_code(*e) : 0);
    /* A command the guest lacks or cannot run is the caller's mistake. */
    snprintf(r->run.verdict, sizeof(r->run.verdict), status ? "bad_command" : "internal_error");
    r->run.exit_code = status ? status : -1;
    free(r->error);
    r->error = strdup(hull_error_msg(e ? *e : NULL));
    hull_error_free(e); /* its message is r->error now */
}

uint64_t vm_oneshot_memory_mb(const struct hull_vm_oneshot_opts *o)
{
    if (o->memory_mb)
        return o->memory_mb;
    uint64_t need = (o->limits.memory_bytes >> 20) + 96;
    if (need < 128)
        need = 128;
    return (need + 63) / 64 * 64;
}

static void agent_closep(struct vm_agent **a)
{
    vm_agent_close(*a);
}

/* Delete the ephemeral VM; a failure leaves it behind, so it is named. */
static void destroy(struct vm *vm)
{
    hull_error e = NULL;
    if (vm_destroy(vm, &e) < 0) {
        hull_warn("microvm run: delete VM %s: %s", vm->id, hull_error_msg(e));
        hull_error_free(&e);
    }
}

/* Copy the files out after the run, within the copy-out budget; what went
 * wrong with each goes into its entry and r->error. */
static void copy_out(struct vm_agent *a, const struct hull_vm_oneshot_opts *o,
                     struct hull_vm_oneshot_result *r)
{
    r->files = calloc(o->n_copy_out ? o->n_copy_out : 1, sizeof(*r->files));
    uint64_t budget = o->copy_out_max;
    hull_error e = NULL;
    for (size_t i = 0; r->files && i < o->n_copy_out; i++) {
        struct hull_copied_file *f = &r->files[r->n_files++];
        struct vm_got got;
        f->sandbox = strdup(o->copy_out[i].guest);
        f->host = strdup(o->copy_out[i].host);
        int got_rc = vm_get_file(a, o->copy_out[i].guest, o->copy_out[i].host, budget, &got, &e);
        f->status = got.status;
        if (got_rc == 0) {
            f->size = got.length;
            f->bytes = got.bytes;
            /* vm_get_file holds the agent to the budget; should it not,
             * the budget is used up, never wrapped round to unlimited. */
            if (budget != UINT64_MAX)
                budget = got.bytes < budget ? budget - got.bytes : 0;
        }
        if (got_rc == 0 && got.status == HULL_COPY_TRUNCATED)
            hull_error_set(&e, EFBIG,
                           "cut at %llu bytes: the copy-out limit (--copy-out-max) was reached",
                           (unsigned long long)got.length);
        if (e != NULL) {
            if (asprintf(&f->error, "%s: %s", o->copy_out[i].guest, hull_error_msg(e)) < 0)
                f->error = NULL;
            free(r->error);
            if (asprintf(&r->error, "copy-out %s: %s", o->copy_out[i].guest, hull_error_msg(e)) < 0)
                r->error = NULL;
            hull_error_free(&e); /* its message is in f->error and r->error */
        }
    }
}

/* Copy in, run, copy out on the booted VM; a failure is r's internal_error. */
static void run_workload(struct vm *vm, const struct hull_vm_oneshot_opts *o,
                         struct hull_vm_oneshot_result *r)
{
    __attribute__((cleanup(agent_closep))) struct vm_agent *a = NULL;
    hull_error e = NULL;
    if (vm_agent_connect(vm, 30000, &a, &e) < 0) {
        internal(r, &e);
        return;
    }
    for (size_t i = 0; i < o->n_copy_in; i++) {
        if (vm_put_file(a, o->copy_in[i].host, o->copy_in[i].guest, &e) < 0) {
            hull_error_prefix(&e, "copy-in %s", o->copy_in[i].host);
            internal(r, &e);
            return;
        }
    }
    struct hull_vm_exec_opts xo = {
        .argv = o->argv,
        .env = o->env,
        .cwd = o->cwd,
        .stdin_fd = -1,
        .stdin_data = o->stdin_data,
        .stdin_len = o->stdin_len,
        .stdout_fd = -1,
        .stderr_fd = -1,
        .limits = o->limits,
        .on_output = o->on_output,
        .on_output_ctx = o->on_output_ctx,
    };
    if (vm_exec_on(a, &xo, &r->run, &e) < 0) {
        internal(r, &e);
        return;
    }
    copy_out(a, o, r);
}

int hull_vm_oneshot(const struct hull_vm_oneshot_opts *o, struct hull_vm_oneshot_result *r,
                    hull_error *err)
{
    memset(r, 0, sizeof(*r));
    if (!o->argv || !o->argv[0])
        return hull_error_set(err, EINVAL, "microvm run: no command");
    for (size_t i = 0; i < o->n_copy_in; i++)
        if (access(o->copy_in[i].host, R_OK) < 0)
            return hull_error_errno(err, "microvm run: copy-in %s", o->copy_in[i].host);
    static unsigned seq;
    unsigned char rnd[4];
    int ufd = open("/dev/urandom", O_RDONLY | O_CLOEXEC);
    if (ufd < 0 || read(ufd, rnd, 4) != 4)
        memset(rnd, 0, 4);
    if (ufd >= 0)
        close(ufd);
    char id[HULL_VM_ID_MAX + 1];
    snprintf(id, sizeof(id), "oneshot-%d-%u-%02x%02x%02x%02x", (int)getpid(), ++seq, rnd[0], rnd[1],
             rnd[2], rnd[3]);
    struct hull_runtime defrt = {.root = HULL_DEFAULT_ROOT};
    struct vm_create_opts co = {
        .id = id,
        .memory_mb = vm_oneshot_memory_mb(o),
        .vcpus = 1,
        .kernel = o->kernel,
        .rootfs = o->rootfs,
        .accel = o->accel,
        .ephemeral = true,
        .image = o->image,
        .image_root = o->image_root,
        .pull = o->pull,
        .network = o->network,
        .egress = o->egress,
        .publish = o->publish,
        .n_publish = o->n_publish,
    };
    struct vm vm;
    int64_t t0 = hull_monotonic_ms();
    int rc = o->cold ? vm_create(o->rt ? o->rt : &defrt, &co, &vm, err)
                     : vm_create_from_template(o->rt ? o->rt : &defrt, &co, &vm, err);
    if (rc < 0)
        return hull_error_prefix(err, "microvm run");
    if (o->cold && vm_start(&vm, err) < 0) {
        destroy(&vm);
        return hull_error_prefix(err, "microvm run");
    }
    r->start_ms = (uint64_t)(hull_monotonic_ms() - t0);
    r->warm = vm.restored_from[0] != 0;
    snprintf(r->accel, sizeof(r->accel), "%s", vm.accel);
    run_workload(&vm, o, r);
    /* No graceful shutdown: nothing of this guest is worth keeping. */
    destroy(&vm);
    return 0;
}

/* The sandbox result's fields that describe one workload. */
static json_object *exec_json(const struct hull_vm_exec_result *x, const char *error)
{
    json_object *o = json_object_new_object();
    json_object_object_add(o, "verdict",
                           json_object_new_string(x->verdict[0] ? x->verdict : "internal_error"));
    json_object_object_add(o, "exit_code", json_object_new_int(x->exit_code));
    json_object_object_add(o, "signal", json_object_new_int(x->signal));
    json_object_object_add(o, "cpu_time_ms", json_object_new_int64((int64_t)x->cpu_time_ms));
    json_object_object_add(o, "wall_time_ms", json_object_new_int64((int64_t)x->wall_time_ms));
    json_object_object_add(o, "max_memory_kb", json_object_new_int64((int64_t)x->max_memory_kb));
    json_object_object_add(
        o, "stdout",
        json_object_new_string_len(x->stdout_buf ? x->stdout_buf : "", (int)x->stdout_len));
    json_object_object_add(
        o, "stderr",
        json_object_new_string_len(x->stderr_buf ? x->stderr_buf : "", (int)x->stderr_len));
    json_object_object_add(o, "stdout_truncated", json_object_new_boolean(x->stdout_truncated));
    json_object_object_add(o, "stderr_truncated", json_object_new_boolean(x->stderr_truncated));
    json_object_object_add(o, "isolation", json_object_new_string("microvm"));
    if (error)
        json_object_object_add(o, "error", json_object_new_string(error));
    return o;
}

static char *to_text(json_object *o)
{
    char *s = strdup(
        json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE));
    json_object_put(o);
    return s;
}

char *hull_vm_exec_result_json(const struct hull_vm_exec_result *r, const char *error)
{
    return to_text(exec_json(r, error));
}

char *hull_vm_oneshot_result_json(const struct hull_vm_oneshot_result *r)
{
    json_object *o = exec_json(&r->run, r->error);
    json_object_object_add(o, "accelerator", json_object_new_string(r->accel));
    json_object_object_add(o, "warm_start", json_object_new_boolean(r->warm));
    json_object_object_add(o, "vm_start_ms", json_object_new_int64((int64_t)r->start_ms));
    return to_text(o);
}
