/* QEMU as the VMM: the command line, and QMP for everything after start.
 *
 * The command line is the same for every VM of a given size: QEMU sees its
 * files at fixed paths in its jail (/vm/kernel, /vm/initrd, /vm/rootfs,
 * /run/{qmp,agent}.sock), which is also what lets a migration stream saved from one
 * VM load into another.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "util/error.h"
#include "util/log.h"
#include "vm/confine.h"
#include "vm/qmp.h"
#include "vm/vm.h"
#include "linux/cgroup.h"
#include "vm/agent_proto.h"
#include "vm/vmm.h"

#define QEMU_BINARY "/usr/bin/qemu-system-x86_64"
/* The VMM's own memory beyond guest RAM: TCG's code cache (tb-size, at
 * most 64 MiB, below), QEMU's heap and libraries, and slack for migration
 * buffers. */
#define QEMU_OVERHEAD_MB 256

/* TCG's translation cache. A cold boot translates ~40 MB of host code
 * (QEMU 7.2, this kernel and the agent's modules): with 16 MiB TCG flushed
 * it three times and translated the kernel's boot again after each, ~10 %
 * of the boot's CPU (3860 -> 3480 ms, hull's guest in plain QEMU, median
 * of 3); with 64 MiB nothing is flushed. Only the pages used are resident,
 * so a cold-booted VM holds ~24 MiB more. A VM restored from a stream (a
 * template's clone, a snapshot, a migration) does not boot: it keeps 16
 * MiB, which an idle clone does not fill, so clones' memory (the density
 * goal) is not moved. */
#define TCG_BOOT    "tcg,tb-size=64"
#define TCG_RESTORE "tcg,tb-size=16"

static int qemu_available(hull_error *err)
{
    if (access(QEMU_BINARY, X_OK) < 0)
        return hull_error_errno(err, "%s (install qemu-system-x86: scripts/deps.sh vm)",
                                QEMU_BINARY);
    return 0;
}

/* QMP through /proc/self/fd/N/qmp.sock: the VM directory's own path may be
 * longer than a sockaddr_un can hold. */
static int open_qmp(struct vm *vm, struct qmp **q, int timeout_ms, hull_error *err)
{
    char sock[128];
    cleanup_close int dfd = vm_run_socket(vm, "qmp.sock", sock, err);
    if (dfd < 0)
        return -1;
    return qmp_connect(sock, timeout_ms, q, err);
}

static int qmp_simple(struct vm *vm, const char *cmd, hull_error *err)
{
    struct qmp *q = NULL;
    if (open_qmp(vm, &q, 5000, err) < 0)
        return -1;
    int rc = qmp_cmd(q, cmd, NULL, -1, NULL, err);
    qmp_close(q);
    return rc;
}

static int qemu_pause(struct vm *vm, hull_error *err)
{
    return qmp_simple(vm, "stop", err);
}

static int qemu_resume(struct vm *vm, hull_error *err)
{
    return qmp_simple(vm, "cont", err);
}

static int qemu_quit(struct vm *vm, hull_error *err)
{
    return qmp_simple(vm, "quit", err);
}

static void cmdline(const struct vm *vm, char *out, size_t len)
{
    /* quiet: every console byte is an emulated UART write. panic=-1 with
     * -no-reboot turns a guest panic into QEMU exiting. pci=off: microvm
     * has none. hull.disk: the agent waits for /dev/vda. */
    int n = snprintf(
        out, len, "console=ttyS0 quiet panic=-1 pci=off cryptomgr.notests rdinit=/init hull.disk");
    if (strcmp(vm->accel, "tcg") == 0)
        n += snprintf(out + n, len - (size_t)n, " tsc_early_khz=%ld", vm_tsc_khz());
    /* A template's maker zeroes what its kernel frees: free pages are then
     * holes in the template's RAM file and in every clone's copy of it. */
    if (vm->ram_open && vm->ram_share)
        n += snprintf(out + n, len - (size_t)n, " init_on_free=1");
    /* The agent waits for this many ports before it serves. */
    if (vm->agent_ports > 1)
        snprintf(out + n, len - (size_t)n, " hull.ports=%u", vm->agent_ports);
}

static json_object *ignore_shared(bool on)
{
    json_object *args = json_object_new_object();
    json_object *caps = json_object_new_array(), *cap = json_object_new_object();
    json_object_object_add(cap, "capability", json_object_new_string("x-ignore-shared"));
    json_object_object_add(cap, "state", json_object_new_boolean(on));
    json_object_array_add(caps, cap);
    json_object_object_add(args, "capabilities", caps);
    return args;
}

/* QEMU started with -incoming defer: read the stream (fd 3) as one saved
 * with x-ignore-shared, guest RAM being the mapped template copy. */
static int incoming_without_ram(struct vm *vm, hull_error *err)
{
    struct qmp *q = NULL;
    if (open_qmp(vm, &q, 10000, err) < 0)
        return -1;
    int rc = qmp_cmd(q, "migrate-set-capabilities", ignore_shared(true), -1, NULL, err);
    json_object *args = json_object_new_object();
    json_object_object_add(args, "uri", json_object_new_string("fd:3"));
    if (!rc)
        rc = qmp_cmd(q, "migrate-incoming", args, -1, NULL, err);
    else
        json_object_put(args);
    qmp_close(q);
    return rc;
}

/* QEMU's command line for vm, and the strings it points into. */
struct qemu_cmd {
    char mem[32], smp[16], append[512], name[128], nic[64], ramobj[160], serial[48];
    char ports[HULL_VM_AGENT_PORTS][2][96];
    char *argv[128];
    bool defer; /* -incoming defer: the stream is started over QMP */
};

static void qemu_argv(struct vm *vm, int incoming_fd, struct qemu_cmd *c)
{
    char *mem = c->mem, *smp = c->smp, *append = c->append, *name = c->name, *nic = c->nic,
         *ramobj = c->ramobj;
    snprintf(mem, sizeof(c->mem), "%lluM", (unsigned long long)vm->memory_mb);
    snprintf(smp, sizeof(c->smp), "%u", vm->vcpus);
    snprintf(name, sizeof(c->name), "hull-%s", vm->id);
    cmdline(vm, append, sizeof(c->append));
    bool kvm = strcmp(vm->accel, "kvm") == 0;
    char **argv = c->argv;
    int n = 0;
    /* One virtio-serial port per agent session served at once (port 0 is
     * the console's slot in virtio-serial, hence one more). */
    char *serial = c->serial;
    char(*ports)[2][96] = c->ports;
    unsigned nports = vm->agent_ports ? vm->agent_ports : 1;
    snprintf(serial, sizeof(c->serial), "virtio-serial-device,max_ports=%u", nports + 1);
#define A(x) argv[n++] = (char *)(x)
    A(QEMU_BINARY);
    A("-name");
    A(name);
    A("-machine");
    /* Guest RAM is always the backend "ram": its RAM block's name is in
     * every migration stream, so a snapshot of a template's clone (backend
     * "ram") restores into a VM that has one too. */
    A("microvm,acpi=on,memory-backend=ram");
    if (!vm->ram_open) {
        snprintf(ramobj, sizeof(c->ramobj), "memory-backend-ram,id=ram,size=%lluM",
                 (unsigned long long)vm->memory_mb);
        A("-object");
        A(ramobj);
    } else {
        /* Guest RAM is the memfd hull made (VM_RAM_FD): shared for a
         * template's maker, whose RAM hull copies out beside the stream;
         * private (copy-on-write) over a template's sealed copy, which then
         * holds the RAM the stream does not carry (x-ignore-shared). */
        snprintf(ramobj, sizeof(c->ramobj),
                 "memory-backend-file,id=ram,size=%lluM,mem-path=/proc/self/fd/" VM_RAM_FD_STR
                 ",share=%s",
                 (unsigned long long)vm->memory_mb, vm->ram_share ? "on" : "off");
        A("-object");
        A(ramobj);
    }
    A("-accel");
    A(kvm ? "kvm" : incoming_fd >= 0 ? TCG_RESTORE : TCG_BOOT);
    if (kvm) {
        A("-cpu");
        A("host");
    }
    A("-m");
    A(mem);
    A("-smp");
    A(smp);
    A("-nodefaults");
    A("-no-user-config");
    A("-display");
    A("none");
    A("-no-reboot");
    A("-kernel");
    A("/vm/kernel");
    A("-initrd");
    A("/vm/initrd");
    A("-append");
    A(append);
    A("-chardev");
    A("file,id=con,path=/run/console.log");
    A("-serial");
    A("chardev:con");
    A("-device");
    A(serial);
    A("-chardev");
    A("socket,id=agent,path=/run/agent.sock,server=on,wait=off");
    A("-device");
    A("virtserialport,chardev=agent,name=" HULL_AGENT_PORT_NAME);
    for (unsigned i = 1; i < nports && i < HULL_VM_AGENT_PORTS; i++) {
        snprintf(ports[i][0], sizeof(ports[i][0]),
                 "socket,id=agent%u,path=/run/agent%u.sock,server=on,wait=off", i, i);
        snprintf(ports[i][1], sizeof(ports[i][1]),
                 "virtserialport,chardev=agent%u,name=" HULL_AGENT_PORT_NAME ".%u", i, i);
        A("-chardev");
        A(ports[i][0]);
        A("-device");
        A(ports[i][1]);
    }
    A("-drive");
    A("id=rootfs,file=/vm/rootfs,format=raw,if=none,readonly=on");
    A("-device");
    A("virtio-blk-device,drive=rootfs");
    if (vm->lease.tap_fd >= 0) {
        /* The TAP hull made (QEMU could not: no capability, no host
         * network namespace), inherited as fd VM_TAP_FD; the card has the
         * lease's MAC, which the bridge's anti-spoofing rules expect. After
         * the disk, so the agent's port and the disk keep their virtio-mmio
         * slots whether a VM has a card or not. */
        A("-netdev");
        A("tap,id=net0,fd=" VM_TAP_FD_STR ",vhost=off");
        snprintf(nic, sizeof(c->nic), "virtio-net-device,netdev=net0,mac=%s", vm->lease.mac);
        A("-device");
        A(nic);
    }
    A("-qmp");
    A("unix:/run/qmp.sock,server=on,wait=off");
    A("-sandbox");
    A("on,obsolete=deny,elevateprivileges=deny,spawn=deny,resourcecontrol=deny");
    /* A stream saved without RAM is read with x-ignore-shared on (it
     * carries each block's address), which only QMP can set: defer. */
    c->defer = incoming_fd >= 0 && vm->ram_open && !vm->ram_share;
    if (incoming_fd >= 0) {
        A("-incoming");
        A(c->defer ? "defer" : "fd:3");
        A("-S");
    }
    argv[n] = NULL;
#undef A
}

/* Undo a VMM cgroup on a path that already fails: the first error is
 * the one returned, this one is logged. */
static void destroy_quietly(struct hull_cgroup *cg)
{
    hull_error e = NULL;
    if (hull_cgroup_destroy(cg, &e) < 0)
        hull_warn("VMM cgroup: cleanup: %s", hull_error_msg(e));
    hull_error_free(&e);
    hull_cgroup_free(cg);
}

/* The VMM's own cgroup, limits applied and recorded in vm->cgroup. */
static int vmm_cgroup(struct vm *vm, struct hull_cgroup **out, hull_error *err)
{
    /* Its own cgroup: memory = guest RAM + the VMM's bounded overhead,
     * CPU = one per vCPU plus one for QEMU's own threads, and a task cap. */
    char cgpath[128];
    snprintf(cgpath, sizeof(cgpath), "/hull-vm/%s", vm->id);
    struct hull_cgroup *cg = NULL;
    *out = NULL;
    struct hull_resources res = {
        .has_memory_limit = true,
        .memory_limit = (int64_t)((vm->memory_mb + QEMU_OVERHEAD_MB) << 20),
        .has_cpu_period = true,
        .cpu_period = 100000,
        .has_cpu_quota = true,
        .cpu_quota = (int64_t)(vm->vcpus + 1) * 100000,
        .has_pids_limit = true,
        .pids_limit = 512,
    };
    if (hull_cgroup_create(cgpath, vm->id, false, &cg, err) < 0)
        return hull_error_prefix(err, "VMM cgroup");
    if (hull_cgroup_apply(cg, &res, err) < 0) {
        hull_error_prefix(err, "VMM cgroup");
        destroy_quietly(cg);
        return -1;
    }
    /* Recorded after apply (which joins the hierarchies the limits need)
     * and before QEMU exists: the monitor of an ephemeral VM, forked below,
     * must know everything to remove if its caller dies. */
    json_object *saved = hull_cgroup_save(cg);
    snprintf(vm->cgroup, sizeof(vm->cgroup), "%s",
             saved ? json_object_to_json_string_ext(saved, JSON_C_TO_STRING_PLAIN) : "");
    json_object_put(saved);
    *out = cg;
    return 0;
}

static int qemu_start(struct vm *vm, int incoming_fd, bool attached, void (*cleanup)(void *),
                      void *arg, hull_error *err)
{
    if (qemu_available(err) < 0)
        return -1;
    cleanup_free struct qemu_cmd *c = calloc(1, sizeof(*c)); /* argv points into it */
    if (c == NULL)
        return hull_error_set(err, ENOMEM, "out of memory");
    qemu_argv(vm, incoming_fd, c);
    char **argv = c->argv;
    bool kvm = strcmp(vm->accel, "kvm") == 0;
    struct vm_jail_file files[] = {
        {vm->kernel.vmlinux, "kernel"},
        {vm->initrd.path, "initrd"},
        {vm->rootfs.image, "rootfs"},
    };
    char jail[4200], run[4200];
    vm_path(vm, "jail", jail, sizeof(jail));
    vm_path(vm, "run", run, sizeof(run));
    struct hull_cgroup *cg = NULL;
    if (vmm_cgroup(vm, &cg, err) < 0)
        return -1;
    struct vm_spawn s = {
        .binary = QEMU_BINARY,
        .argv = argv,
        .uid = vm->uid,
        .jail = jail,
        .rundir = run,
        .files = files,
        .nfiles = 3,
        .kvm = kvm,
        .cg = cg,
        .incoming_fd = incoming_fd,
        .hold_fd = vm->image_digest[0] ? vm->image_hold_fd : -1,
        .tap_fd = vm->lease.tap_fd,
        .ram_fd = vm->ram_open ? vm->ram_fd : -1,
        .attached = attached,
        .cleanup = cleanup,
        .cleanup_arg = arg,
    };
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    int rc = vm_spawn_vmm(&s, &vm->pid, &vm->monitor, err);
    if (rc < 0) {
        destroy_quietly(cg);
        vm->cgroup[0] = 0;
        return -1;
    }
    hull_cgroup_free(cg);
    vm->started_ms = (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
    vm->pid_start = vm_proc_start_time(vm->pid);
    return c->defer ? incoming_without_ram(vm, err) : 0;
}

static int wait_migration(struct qmp *q, int timeout_ms, hull_error *err)
{
    char st[512];
    for (int waited = 0;; waited += 5) {
        if (qmp_migrate_status(q, st, sizeof(st), err) < 0)
            return -1;
        if (strcmp(st, "completed") == 0)
            return 0;
        if (strncmp(st, "failed", 6) == 0 || strcmp(st, "cancelled") == 0)
            return hull_error_set(err, EIO, "migration %s", st);
        if (waited > timeout_ms)
            return hull_error_set(err, ETIMEDOUT, "migration still \"%s\" after %d ms", st,
                                  timeout_ms);
        usleep(5000);
    }
}

static int qemu_save(struct vm *vm, int fd, int (*pump)(void *), void *arg, hull_error *err)
{
    struct qmp *q = NULL;
    if (open_qmp(vm, &q, 5000, err) < 0)
        return -1;
    int rc = qmp_cmd(q, "stop", NULL, -1, NULL, err);
    json_object *args = json_object_new_object();
    json_object_object_add(args, "fdname", json_object_new_string("hullsnap"));
    if (!rc)
        rc = qmp_cmd(q, "getfd", args, fd, NULL, err);
    else
        json_object_put(args);
    /* The default 128 MiB/s cap is for live migration over a network; a
     * paused VM into a local pipe wants all the bandwidth there is. */
    args = json_object_new_object();
    json_object_object_add(args, "max-bandwidth", json_object_new_int64(INT64_C(1) << 40));
    if (!rc)
        rc = qmp_cmd(q, "migrate-set-parameters", args, -1, NULL, err);
    else
        json_object_put(args);
    /* RAM shared with hull (a template's maker) stays out of the stream:
     * hull saves it as its own file. Any other save carries all RAM, and
     * says so explicitly in case a restored VM was started with the
     * capability on (incoming_without_ram). */
    args = ignore_shared(vm->ram_open && vm->ram_share);
    if (!rc)
        rc = qmp_cmd(q, "migrate-set-capabilities", args, -1, NULL, err);
    else
        json_object_put(args);
    args = json_object_new_object();
    json_object_object_add(args, "uri", json_object_new_string("fd:hullsnap"));
    if (!rc)
        rc = qmp_cmd(q, "migrate", args, -1, NULL, err);
    else
        json_object_put(args);
    if (!rc)
        rc = pump(arg);
    if (!rc)
        rc = wait_migration(q, 60000, err);
    qmp_close(q);
    return rc;
}

static int qemu_load_wait(struct vm *vm, hull_error *err)
{
    struct qmp *q = NULL;
    if (open_qmp(vm, &q, 10000, err) < 0)
        return -1;
    int rc = wait_migration(q, 60000, err);
    qmp_close(q);
    return rc;
}

static const struct vmm_ops qemu_ops = {
    .name = "qemu",
    .available = qemu_available,
    .start = qemu_start,
    .pause = qemu_pause,
    .resume = qemu_resume,
    .quit = qemu_quit,
    .save = qemu_save,
    .load_wait = qemu_load_wait,
    .migrate_out = vm_qemu_migrate_out,
    .migrate_wait = vm_qemu_migrate_wait,
    .migrate_abort = vm_qemu_migrate_abort,
    .announce = vm_qemu_announce,
};

const struct vmm_ops *vm_vmm(void)
{
    return &qemu_ops;
}
