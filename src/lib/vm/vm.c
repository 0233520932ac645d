/* VM lifecycle: create (measure and prepare), start (boot to agent-ready),
 * pause/resume, stop, delete. Every step that fails undoes what it did. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "util/clock.h"
#include "util/error.h"
#include "util/sha256.h"
#include "util/fs.h"
#include "util/proc.h"
#include "util/json.h"
#include "util/log.h"
#include "vm/agent.h"
#include "vm/vm.h"
#include "linux/cgroup.h"
#include "vm/vmm.h"

/* QEMU runs as uid = gid = VM_UID_BASE + a slot of the VM's own
 * (uids.c): unprivileged, owning nothing on the host, and no other VM's,
 * so no other QEMU shares its per-user kernel counts. The slot tried
 * first is a hash of the id (what the uid was before slots were claimed). */
static uint32_t first_slot(const char *id)
{
    uint32_t h = 2166136261u;
    for (const char *p = id; *p; p++)
        h = (h ^ (uint8_t)*p) * 16777619u;
    return h & 0xffff;
}

int vm_boot_timeout_ms(const struct vm *vm)
{
    const char *e = getenv("HULL_VM_BOOT_TIMEOUT");
    if (e && atoi(e) > 0)
        return atoi(e) * 1000;
    return strcmp(vm->accel, "kvm") == 0 ? 20000 : 90000;
}

static int check_digest(const char *what, const char *got, const char *want, hull_error *err)
{
    if (!want || !*want)
        return 0;
    if (!hull_sha256_hex_valid(want))
        return hull_error_set(err, EINVAL,
                              "--expect-%s-sha256: not a sha256 (64 lower-case hex digits)", what);
    if (strcmp(got, want) != 0)
        return hull_error_set(err, EPERM, "attestation failed: %s sha256 is %s, expected %s", what,
                              got, want);
    return 0;
}

/* Undo a VM directory made moments ago, on the way out of a failure. */
static void remove_dir(const struct vm *vm)
{
    /* The claim first: once the directory is gone, a create of the same
     * id may make it again and take this claim as its own. */
    vm_uid_release_at(VM_UID_DIR, vm->dir, vm->uid);
    hull_error e = NULL;
    if (hull_rm_rf_at(AT_FDCWD, vm->dir, &e) < 0) {
        /* The caller reports its own failure; this one is secondary. */
        hull_warn("VM %s: remove %s: %s", vm->id, vm->dir, hull_error_msg(e));
        hull_error_free(&e);
    }
}

/* QEMU's private directory: its uid alone, so no other VM's QEMU (and no
 * other user) reaches its sockets. */
static int make_run_dir(const struct vm *vm, hull_error *err)
{
    char p[4200];
    vm_path(vm, "run", p, sizeof(p));
    if (mkdir(p, 0700) < 0 || chown(p, vm->uid, vm->uid) < 0)
        return hull_error_errno(err, "mkdir %s", p);
    return 0;
}

/* Before QEMU starts: the VM's uid still its own (uids.c). Moved to
 * another (its claim was lost with /run at a reboot, and another VM has
 * it now, or it predates claims), the run directory is made anew for the
 * new uid -- it holds only what QEMU makes at each start (sockets, logs
 * start empty) -- and the record says the new uid before QEMU runs. */
static int keep_uid(struct vm *vm, hull_error *err)
{
    bool moved;
    uid_t was = vm->uid;
    if (vm_uid_keep_at(VM_UID_DIR, vm->dir, &vm->uid, &moved, err) < 0)
        return hull_error_prefix(err, "VM %s", vm->id);
    if (!moved)
        return 0;
    hull_debug("VM %s: QEMU uid %u is another VM's now: %u", vm->id, (unsigned)was,
               (unsigned)vm->uid);
    char p[4200];
    vm_path(vm, "run", p, sizeof(p));
    /* Removed as root, without following what QEMU (the old uid) left. */
    if (hull_rm_rf_at(AT_FDCWD, p, err) < 0 || make_run_dir(vm, err) < 0 || vm_save(vm, err) < 0)
        return hull_error_prefix(err, "VM %s: QEMU's new uid %u", vm->id, (unsigned)vm->uid);
    return 0;
}

int vm_create(const struct hull_runtime *rt, const struct vm_create_opts *o, struct vm *vm,
              hull_error *err)
{
    memset(vm, 0, sizeof(*vm));
    vm->lease.tap_fd = -1;
    if (!o->id)
        return hull_error_set(err, EINVAL, "missing VM id");
    if (vm_dir_of(rt, o->id, vm->dir, sizeof(vm->dir), err) < 0)
        return -1;
    snprintf(vm->id, sizeof(vm->id), "%s", o->id);
    vm->memory_mb = o->memory_mb ? o->memory_mb : HULL_VM_DEFAULT_MEMORY_MB;
    vm->vcpus = o->vcpus ? o->vcpus : 1;
    vm->agent_ports = vm_agent_ports_valid(o->agent_ports);
    if (vm->memory_mb < HULL_VM_MIN_MEMORY_MB)
        return hull_error_set(err, EINVAL,
                              "memory %lluM is too small: the guest kernel needs at least %dM",
                              (unsigned long long)vm->memory_mb, HULL_VM_MIN_MEMORY_MB);
    if (vm->memory_mb > HULL_VM_MAX_MEMORY_MB)
        return hull_error_set(err, EINVAL, "memory %lluM is over the maximum of %dM",
                              (unsigned long long)vm->memory_mb, HULL_VM_MAX_MEMORY_MB);
    if (vm->vcpus > HULL_VM_MAX_VCPUS)
        return hull_error_set(err, EINVAL, "vcpus %u is over the maximum of %d", vm->vcpus,
                              HULL_VM_MAX_VCPUS);
    const char *expect[] = {o->expect_kernel_sha256, o->expect_initrd_sha256,
                            o->expect_rootfs_sha256};
    for (size_t i = 0; i < 3; i++)
        if (expect[i] && *expect[i] && !hull_sha256_hex_valid(expect[i]))
            return hull_error_set(err, EINVAL,
                                  "expected digest \"%s\": not a sha256 (64 lower-case hex digits)",
                                  expect[i]);
    if (o->image && o->rootfs)
        return hull_error_set(err, EINVAL, "--image and --rootfs: give one rootfs, not both");
    if (access(vm->dir, F_OK) == 0)
        return hull_error_set(err, EEXIST, "VM %s already exists", vm->id);
    if (vm_net_setup(vm, o, err) < 0)
        return -1;
    if (vm_accel_resolve(o->accel, vm->accel, err) < 0 || vm_vmm()->available(err) < 0)
        return -1;
    /* Until the record names them, no prune may take the artifacts. */
    cleanup_close int use = vm_cache_use_lock(false, err);
    if (use < 0)
        return -1;
    /* Measure before anything boots: a mismatch stops here. */
    if (vm_kernel_prepare(o->kernel, &vm->kernel, err) < 0 ||
        check_digest("kernel", vm->kernel.bzimage_sha256, o->expect_kernel_sha256, err) < 0 ||
        vm_initrd_prepare(vm->kernel.release, &vm->initrd, err) < 0 ||
        check_digest("initrd", vm->initrd.sha256, o->expect_initrd_sha256, err) < 0 ||
        (o->image ? vm_image_rootfs(o->image_root, o->image, o->pull, vm, err)
                  : vm_rootfs_prepare(o->rootfs, &vm->rootfs, err)) < 0 ||
        check_digest("rootfs", vm->rootfs.sha256, o->expect_rootfs_sha256, err) < 0)
        return -1;
    vm->ephemeral = o->ephemeral;
    vm->from_template = o->from_template;
    if (vm_make_dirs(vm, err) < 0)
        return -1;
    if (vm_save(vm, err) < 0) {
        remove_dir(vm);
        return -1;
    }
    return 0;
}

int vm_make_dirs(struct vm *vm, hull_error *err)
{
    vm->uid = 0; /* claimed below, once its directory names it */
    vm->status = VM_CREATED;
    vm->lease.tap_fd = -1;
    time_t now = time(NULL);
    struct tm tm;
    gmtime_r(&now, &tm);
    strftime(vm->created, sizeof(vm->created), "%Y-%m-%dT%H:%M:%SZ", &tm);
    char p[4200];
    /* ROOT/vm, made with the first VM (vm_dir_of only names it). */
    snprintf(p, sizeof(p), "%s", vm->dir);
    char *slash = strrchr(p, '/');
    if (slash != NULL && slash != p) {
        *slash = '\0';
        if (hull_mkdir_p(p, 0700, err) < 0)
            return hull_error_prefix(err, "state directory");
    }
    if (mkdir(vm->dir, 0700) < 0)
        return hull_error_errno(err, "mkdir %s", vm->dir);
    /* After the directory: a claim naming a directory that exists is
     * never taken as stale. */
    if (vm_uid_claim_at(VM_UID_DIR, vm->dir, first_slot(vm->id), &vm->uid, err) < 0 ||
        make_run_dir(vm, err) < 0) {
        remove_dir(vm);
        return -1;
    }
    vm_path(vm, "jail", p, sizeof(p));
    if (mkdir(p, 0755) < 0) {
        hull_error_errno(err, "mkdir %s", p);
        remove_dir(vm);
        return -1;
    }
    return 0;
}

static bool alive_cb(void *arg)
{
    return vm_qemu_alive(arg);
}

void vm_log_said(const struct vm *vm, const char *log, char *out, size_t len)
{
    char p[4200];
    cleanup_free char *s = NULL;
    size_t l;
    out[0] = 0;
    char name[64];
    snprintf(name, sizeof(name), "run/%s", log);
    vm_path(vm, name, p, sizeof(p));
    if (hull_read_file(p, &s, &l, NULL) < 0)
        return; /* a log not written (yet) has nothing to say */
    while (l && (s[l - 1] == '\n' || s[l - 1] == '\r'))
        s[--l] = 0;
    const char *last = strrchr(s, '\n');
    last = last ? last + 1 : s;
    /* A panic's last line ("Kernel Offset: ...") does not say why: its
     * first does. */
    const char *panic = strstr(s, "Kernel panic");
    char why[256] = "";
    if (panic && panic != last) {
        size_t n = strcspn(panic, "\r\n");
        snprintf(why, sizeof(why), "%.*s; ", (int)(n < 200 ? n : 200), panic);
    }
    snprintf(out, len, "%s%s", why, last);
}

/* The last lines of the guest console and QEMU's stderr, for errors. */
static void log_tail(const struct vm *vm, char *out, size_t len)
{
    out[0] = 0;
    static const char *const logs[] = {"qemu.log", "console.log"};
    for (size_t i = 0; i < 2; i++) {
        char said[280];
        vm_log_said(vm, logs[i], said, sizeof(said));
        if (said[0] && strlen(out) + 8 < len)
            snprintf(out + strlen(out), len - strlen(out), "%s%s", out[0] ? "; " : " (", said);
    }
    if (out[0] && strlen(out) + 2 < len)
        strcat(out, ")");
}

int vm_agent_connect(struct vm *vm, int timeout_ms, struct vm_agent **out, hull_error *err)
{
    return vm_agent_connect_port(vm, 0, timeout_ms, out, err);
}

int vm_agent_connect_port(struct vm *vm, unsigned port, int timeout_ms, struct vm_agent **out,
                          hull_error *err)
{
    char sock[128], name[32];
    if (port)
        snprintf(name, sizeof(name), "agent%u.sock", port);
    else
        snprintf(name, sizeof(name), "agent.sock");
    cleanup_close int dfd = vm_run_socket(vm, name, sock, err);
    if (dfd < 0)
        return -1;
    json_object *hello = NULL;
    if (vm_agent_open(sock, timeout_ms, alive_cb, vm, out, &hello, err) < 0)
        return -1;
    json_object_put(hello);
    return 0;
}

static void ephemeral_cleanup(void *arg)
{
    struct vm *vm = arg;
    vm_release(vm);
    /* The monitor's last act after its caller died: nobody to tell. The
     * claim before the directory, as in remove_dir. */
    vm_uid_release_at(VM_UID_DIR, vm->dir, vm->uid);
    hull_rm_rf_at(AT_FDCWD, vm->dir, NULL);
}

/* Release what QEMU left and record the VM as status. The caller's own
 * result stands: a record that cannot be written is named, and the next
 * vm_load finds QEMU gone all the same. */
static void record_down(struct vm *vm, enum vm_status status)
{
    vm_release(vm);
    vm->status = status;
    vm->pid = 0;
    hull_error e = NULL;
    if (vm_save(vm, &e) < 0) {
        hull_warn("VM %s: record it %s: %s", vm->id, vm_status_name(status), hull_error_msg(e));
        hull_error_free(&e);
    }
}

/* Mark failed, kill and release: a VM that did not come up is not left half-running. */
static int start_failed(struct vm *vm, hull_error *err)
{
    char tail[600];
    log_tail(vm, tail, sizeof(tail));
    /* Only a description for `state`: a long one is cut, and says so in debug. */
    if (snprintf(vm->failure, sizeof(vm->failure), "%s%s", hull_error_msg(err ? *err : NULL),
                 tail) >= (int)sizeof(vm->failure))
        hull_debug("vm %s: failure text cut to %zu bytes", vm->id, sizeof(vm->failure) - 1);
    if (vm->pid > 0 && vm_qemu_alive(vm))
        kill(vm->pid, SIGKILL);
    record_down(vm, VM_FAILED);
    if (err && *err && tail[0]) {
        hull_error_prefix(err, "%s", "boot");
        char *m = NULL;
        if (asprintf(&m, "%s%s", (*err)->msg, tail) >= 0) {
            free((*err)->msg);
            (*err)->msg = m;
        }
    }
    return -1;
}

int vm_start_vmm(struct vm *vm, int incoming_fd, hull_error *err)
{
    vm->failure[0] = 0;
    if (keep_uid(vm, err) < 0)
        return -1;
    char p[4200];
    /* Fresh logs for this run. */
    vm_path(vm, "run/console.log", p, sizeof(p));
    unlink(p);
    vm_path(vm, "run/qemu.log", p, sizeof(p));
    unlink(p);
    /* A VM of an image keeps it in use while it runs: QEMU inherits the
     * mark and holds it to its end (confine.c), so `hull image remove`
     * refuses the image and its disk stays. */
    cleanup_close int hold = -1;
    if (vm->image_digest[0] && (hold = vm_image_hold(vm, err)) < 0)
        return -1;
    vm->image_hold_fd = hold;
    /* A VM on a network: its TAP (and lease) before QEMU, which inherits
     * the fd; then the lease is QEMU's. */
    if (vm_net_attach(vm, err) < 0) {
        vm->image_hold_fd = -1;
        return -1;
    }
    int rc = vm_vmm()->start(vm, incoming_fd, vm->ephemeral, ephemeral_cleanup, vm, err);
    vm->image_hold_fd = -1;
    if (rc == 0)
        rc = vm_net_adopt(vm, err);
    if (rc < 0) {
        /* QEMU may run (adopt failed): kill it before its lease goes. */
        if (vm->pid > 0 && vm_qemu_alive(vm))
            kill(vm->pid, SIGKILL);
        vm_net_release(vm);
        return -1;
    }
    vm->status = incoming_fd >= 0 ? VM_PAUSED : VM_RUNNING;
    return vm_save(vm, err);
}

int vm_start(struct vm *vm, hull_error *err)
{
    if (vm->status != VM_CREATED && vm->status != VM_STOPPED && vm->status != VM_FAILED)
        return hull_error_set(err, EBUSY, "VM %s is %s", vm->id, vm_status_name(vm->status));
    int64_t t0 = hull_monotonic_ms();
    if (vm_start_vmm(vm, -1, err) < 0)
        return start_failed(vm, err);
    hull_debug("vm %s: VMM pid %d up after %lld ms", vm->id, (int)vm->pid,
               (long long)(hull_monotonic_ms() - t0));
    struct vm_agent *a = NULL;
    if (vm_agent_connect(vm, vm_boot_timeout_ms(vm), &a, err) < 0)
        return start_failed(vm, err);
    int rc = vm_net_configure(vm, a, err);
    vm_agent_close(a);
    if (rc < 0)
        return start_failed(vm, err);
    vm->boot_ms = hull_monotonic_ms() - t0;
    hull_debug("vm %s: agent ready after %lld ms", vm->id, (long long)vm->boot_ms);
    return vm_save(vm, err);
}

static bool wait_gone(struct vm *vm, int timeout_ms)
{
    int64_t end = hull_monotonic_ms() + timeout_ms;
    while (vm_qemu_alive(vm)) {
        if (hull_monotonic_ms() > end)
            return false;
        usleep(2000);
    }
    return true;
}

void vm_release(struct vm *vm)
{
    if (vm->pid > 0 && vm_qemu_alive(vm))
        kill(vm->pid, SIGKILL);
    if (vm->monitor > 0) {
        /* Our child (ephemeral VMs only). It reaps QEMU and exits by itself;
         * killing it first would leave QEMU an unreaped zombie in its cgroup. */
        int64_t end = hull_monotonic_ms() + 5000;
        pid_t r;
        while ((r = waitpid(vm->monitor, NULL, WNOHANG)) == 0 && hull_monotonic_ms() < end)
            usleep(1000);
        if (r == 0) {
            kill(vm->monitor, SIGKILL);
            waitpid(vm->monitor, NULL, 0);
        }
        vm->monitor = 0;
    }
    wait_gone(vm, 5000);
    if (vm->cgroup[0]) {
        cleanup_json json_object *saved = json_tokener_parse(vm->cgroup);
        struct hull_cgroup *cg = NULL;
        hull_error e = NULL;
        if (saved && (hull_cgroup_load(saved, &cg, &e) < 0 || hull_cgroup_destroy(cg, &e) < 0)) {
            /* Release goes on: what is left is the cgroup, named here. */
            hull_warn("VM %s: release its cgroup: %s", vm->id, hull_error_msg(e));
            hull_error_free(&e);
        }
        hull_cgroup_free(cg);
        vm->cgroup[0] = 0;
    }
    /* QEMU is gone, and its TAP with it: now the lease and rules. */
    vm_net_release(vm);
    static const char *const socks[] = {"run/qmp.sock", "run/agent.sock"};
    for (size_t i = 0; i < 2 + HULL_VM_AGENT_PORTS - 1; i++) {
        char p[4200], port[32];
        snprintf(port, sizeof(port), "run/agent%zu.sock", i - 1);
        vm_path(vm, i < 2 ? socks[i] : port, p, sizeof(p));
        unlink(p);
    }
}

int vm_stop(struct vm *vm, bool graceful, hull_error *err)
{
    if (vm_qemu_alive(vm)) {
        bool gone = false;
        if (graceful && vm->status == VM_RUNNING) {
            /* Ask the guest to power off: it syncs and QEMU exits by itself.
             * Errors are not wanted here: a busy or silent agent only means
             * the VMM is told to quit below. */
            struct vm_agent *a = NULL;
            cleanup_close int lk = vm_lock(vm, "agent.lock", false, NULL);
            if (lk >= 0 && vm_agent_connect(vm, 5000, &a, NULL) == 0) {
                json_object *req = json_object_new_object();
                json_object_object_add(req, "op", json_object_new_string("shutdown"));
                vm_agent_call(a, req, 5000, NULL, NULL);
                vm_agent_close(a);
                gone = wait_gone(vm, 10000);
            }
        }
        /* A VMM that does not take the quit gets SIGKILL below. */
        if (!gone && vm_vmm()->quit(vm, NULL) == 0)
            gone = wait_gone(vm, 3000);
        if (!gone) {
            kill(vm->pid, SIGKILL);
            if (!wait_gone(vm, 5000))
                return hull_error_set(err, EBUSY, "VM %s: QEMU (pid %d) does not die", vm->id,
                                      vm->pid);
        }
    }
    vm_release(vm);
    vm->status = VM_STOPPED;
    vm->pid = 0;
    return vm_save(vm, err);
}

int vm_pause(struct vm *vm, hull_error *err)
{
    if (vm->status != VM_RUNNING)
        return hull_error_set(err, EINVAL, "VM is %s, not running", vm_status_name(vm->status));
    if (vm_vmm()->pause(vm, err) < 0)
        return -1;
    vm->status = VM_PAUSED;
    return vm_save(vm, err);
}

int vm_resume(struct vm *vm, hull_error *err)
{
    if (vm->status != VM_PAUSED)
        return hull_error_set(err, EINVAL, "VM is %s, not paused", vm_status_name(vm->status));
    if (vm_vmm()->resume(vm, err) < 0)
        return -1;
    vm->status = VM_RUNNING;
    return vm_save(vm, err);
}

#define VM_DELETING ".deleting."

/* What a delete killed between its rename and its removal left beside the
 * VMs: ".ID.deleting.PID" of a pid that no longer runs. */
static void sweep_deleting(const char *parent)
{
    cleanup_dir DIR *d = opendir(parent);
    struct dirent *e;
    while (d && (e = readdir(d)) != NULL) {
        const char *tag = strstr(e->d_name, VM_DELETING);
        if (e->d_name[0] != '.' || tag == NULL)
            continue;
        pid_t pid = (pid_t)strtol(tag + strlen(VM_DELETING), NULL, 10);
        /* Gone (0) only, as for temporaries (hull_remove_stale_temps): a
         * /proc that cannot be read removes nothing on a guess. */
        if (pid <= 0 || hull_pid_check(pid, 0) != 0)
            continue; /* its delete may still be at work */
        hull_error e2 = NULL;
        if (hull_rm_rf_at(dirfd(d), e->d_name, &e2) < 0)
            hull_warn("remove %s/%s: %s", parent, e->d_name, hull_error_msg(e2));
        hull_error_free(&e2);
    }
}

int vm_destroy(struct vm *vm, hull_error *err)
{
    vm_release(vm);
    if (vm_qemu_alive(vm))
        return hull_error_set(err, EBUSY, "VM %s: QEMU (pid %d) does not die", vm->id, vm->pid);
    /* Out of its id's name first, under the VM's lock: a verb queued on the
     * lock wakes to find it unlinked (vm_lock), one that comes later finds
     * no VM, and none makes a lock file in a directory being removed (which
     * then could not be removed). */
    size_t parent = strlen(vm->dir) - strlen(vm->id) - 1;
    if (strlen(vm->dir) <= strlen(vm->id) || vm->dir[parent] != '/' ||
        strcmp(vm->dir + parent + 1, vm->id) != 0)
        return hull_error_set(err, EINVAL, "delete VM %s: directory %s is not its id's", vm->id,
                              vm->dir);
    /* QEMU is dead: its uid is free. Released while the directory still
     * has the id's name, so that a create of the same id after the rename
     * cannot have taken this claim as its own first. A rename that fails
     * leaves the VM unclaimed; its next start claims a uid again. */
    vm_uid_release_at(VM_UID_DIR, vm->dir, vm->uid);
    char gone[4300];
    snprintf(gone, sizeof(gone), "%.*s/.%s" VM_DELETING "%d", (int)parent, vm->dir, vm->id,
             (int)getpid());
    if (rename(vm->dir, gone) < 0) {
        if (errno == ENOENT) /* a delete queued beside ours came first */
            return hull_error_set(err, ENOENT, "VM %s does not exist", vm->id);
        return hull_error_errno(err, "delete VM %s: rename %s", vm->id, vm->dir);
    }
    /* A verb that looked the lock up just before the rename may still make
     * a new lock file in it (it then finds the lock's name gone and stops):
     * the removal is tried again for that straggler. */
    hull_error e = NULL;
    for (int tries = 0; hull_rm_rf_at(AT_FDCWD, gone, &e) < 0; tries++) {
        if (hull_error_code(e) != ENOTEMPTY || tries == 8) {
            if (err)
                *err = e;
            else
                hull_error_free(&e);
            return hull_error_prefix(err, "delete VM %s", vm->id);
        }
        hull_error_free(&e);
    }
    gone[parent] = '\0';
    sweep_deleting(gone);
    /* What a killed template RAM keeper left (ramkeeper.c). */
    vm_ram_keepers_sweep();
    return 0;
}

int vm_load(const struct hull_runtime *rt, const char *id, struct vm *vm, hull_error *err)
{
    if (vm_read(rt, id, vm, err) < 0)
        return -1;
    /* The file says running; /proc decides. */
    if ((vm->status == VM_RUNNING || vm->status == VM_PAUSED) && !vm_qemu_alive(vm)) {
        cleanup_close int lk = vm_lock(vm, "lock", false, NULL);
        if (lk < 0) {
            vm->status = VM_STOPPED; /* someone else holds it and will record it */
            return 0;
        }
        record_down(vm, VM_STOPPED);
    }
    return 0;
}

int vm_load_locked(const struct hull_runtime *rt, const char *id, bool wait, struct vm *vm,
                   hull_error *err)
{
    if (vm_load(rt, id, vm, err) < 0)
        return -1;
    int lk = vm_lock(vm, "lock", wait, err);
    if (lk < 0)
        return -1;
    /* What was read above may be another verb's before: the one this
     * waited behind stopped, paused or started the VM since. Read again
     * under the lock, and let /proc decide as vm_load does (the lock is
     * ours, so the record is ours to correct). */
    if (vm_reread(vm, err) < 0) {
        close(lk);
        return -1;
    }
    if ((vm->status == VM_RUNNING || vm->status == VM_PAUSED) && !vm_qemu_alive(vm))
        record_down(vm, VM_STOPPED);
    return lk;
}
