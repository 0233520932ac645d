/* microVMs: libhull's internal interfaces (the public calls are in
 * include/hull.h, "microVMs").
 *
 * A microVM is a QEMU process (machine "microvm": virtio-mmio, no PCI, no
 * firmware to speak of) booting Debian's kernel with an initramfs that holds
 * only hull-agent and the kernel modules it needs. hull drives QEMU over QMP
 * and talks to the agent over a virtio-serial port (docs/agent-protocol.md).
 *
 *   artifacts   kernel.c (vmlinux from bzImage, cached), initrd.c (cpio newc,
 *               reproducible), rootfs.c (directory -> read-only squashfs),
 *               image.c (an image of the store as a root, for every level,
 *               and as a VM's disk), digest.c (sha256, HMAC)
 *   the VMM     vmm.h: start/stop/pause/resume/snapshot/restore behind a small
 *               interface; vmm_qemu.c implements it with QEMU, confine.c runs
 *               QEMU confined (in a cgroup from linux/cgroup.h), qmp.c speaks QMP
 *   the guest   agent.c: the host side of the agent protocol
 *   lifecycle   state.c (the record), vm.c (create/start/stop/release/load),
 *               snapshot.c (on vm.c), template.c (on snapshot.c and vm.c)
 *   the verbs   api.c (include/hull.h's hull_vm_* lifecycle calls), exec.c
 *               (exec, cp, list), oneshot.c (the sandbox's microvm level)
 *
 * Calls never run back up: state.c is the record the VMM and all above
 * read, vm.c builds on the VMM and the guest, snapshot.c on vm.c,
 * template.c on both, the verbs on all of them, and nothing calls api.c
 * (docs/architecture.md; tests/integration/test_vm_layers.py).
 *
 * Files live in two places: per-VM state under <root>/vm/<id>/ (tmpfs, gone
 * with the VM) and shared, content-addressed artifacts under the cache
 * directory ($HULL_VM_CACHE, default /var/cache/hull/vm).
 */
#ifndef HULL_VM_VM_H
#define HULL_VM_VM_H

#include <json-c/json.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "hull.h"
#include "image/image.h"
#include "net/net.h"

#define HULL_VM_DEFAULT_MEMORY_MB 256
#define HULL_VM_MIN_MEMORY_MB     96 /* this kernel needs 88 MiB to boot; keep a margin */
#define HULL_VM_MAX_MEMORY_MB     (64 * 1024)
#define HULL_VM_MAX_VCPUS         64
/* Agent ports (sessions served at once): HULL_VM_AGENT_PORTS at most
 * (hull.h); a VM whose record or snapshot does not say has one. */
#define HULL_VM_ID_MAX 64 /* cgroup and socket paths embed it */

/* ---- digests (digest.c; hex and validity are util/sha256.h's) ---- */

#define HULL_SHA256_HEX 65
int vm_sha256_file(const char *path, char out[HULL_SHA256_HEX], hull_error *err);
/* HMAC-SHA256 with the host's snapshot key (created 0600 on first use). */
int vm_hmac(const char *data, size_t len, char out[HULL_SHA256_HEX], hull_error *err);

/* ---- a template's guest RAM as a file (ramfile.c) ---- */

/* What the RAM file's digest covers: its non-zero pages (ramfile.c). */
#define VM_RAM_DIGEST "pages-1"
/* A memfd of size bytes for guest RAM (close-on-exec, sealable). */
int vm_ram_memfd(uint64_t size, int *out, hull_error *err);
/* Copy memfd (paused guest RAM) to path, a new file the caller renames
 * into place (removed on failure); hex is its sha256. */
int vm_ram_save(int memfd, uint64_t size, const char *path, char hex[HULL_SHA256_HEX],
                hull_error *err);
/* path into a new memfd, refused unless its sha256 is want; sealed against
 * every write before it is returned in *out. */
int vm_ram_load(const char *path, uint64_t size, const char *want, int *out, hull_error *err);
/* The same, shared by every clone (ramkeeper.c): the sealed memfd of the
 * RAM file path (digest want) from its keeper, started here when none
 * runs. *conn (-1 when the copy is private) goes to vm_ram_keeper_hold once
 * the VMM that maps the memfd runs, or is closed. */
int vm_ram_shared(const char *path, uint64_t size, const char *want, int *out, int *conn,
                  hull_error *err);
/* The keeper holds its memfd while vmm lives; closes conn. */
void vm_ram_keeper_hold(int conn, pid_t vmm);
/* Remove the sockets of keepers that were killed (vm delete does). */
void vm_ram_keepers_sweep(void);

/* ---- helpers (vmutil.c) ---- */

/* Connect to a unix socket, retrying while it is absent or refused until
 * timeout_ms; alive(arg) false ends the wait early. Returns the fd. */
int vm_unix_connect(const char *path, int timeout_ms, bool (*alive)(void *), void *arg,
                    hull_error *err);
struct vm;
/* A short path for run/<name> of vm; returns the fd it goes through (close
 * it after connecting). */
int vm_run_socket(const struct vm *vm, const char *name, char out[128], hull_error *err);
/* Text from the guest, fit to print on the host's terminal: every control
 * character (C0, DEL, C1) and every byte that is not UTF-8 becomes '?',
 * so a guest can neither drive the terminal nor forge lines. Cut to len. */
void vm_printable(const char *in, char *out, size_t len);

/* ---- artifacts ---- */

/* The cache directory, created 0700 on demand. */
const char *vm_cache_dir(void);
int vm_cache_subdir(const char *name, char *out, size_t len, hull_error *err);
/* The cache's use lock (<cache>/use.lock), held (an fd to close) shared by
 * a create from measuring its artifacts until its record names them, and
 * exclusively by `vm cache prune`, which so never takes a file a VM is
 * about to record. */
int vm_cache_use_lock(bool exclusive, hull_error *err);

struct vm_kernel {
    char bzimage[4096]; /* as given or found */
    char bzimage_sha256[HULL_SHA256_HEX];
    char release[128];  /* "6.1.0-56-amd64", from the bzImage header */
    char vmlinux[4096]; /* cached ELF QEMU boots through PVH */
    char vmlinux_sha256[HULL_SHA256_HEX];
};
/* path NULL: the newest /boot/vmlinuz-*. Refuses anything that is not an
 * x86 bzImage with an XZ-compressed payload holding an ELF kernel. */
int vm_kernel_prepare(const char *path, struct vm_kernel *k, hull_error *err);
/* The host's TSC frequency in kHz, measured once per boot of the host. */
long vm_tsc_khz(void);

struct vm_initrd {
    char path[4096];
    char sha256[HULL_SHA256_HEX];
};
/* Build (or find in the cache) the initramfs for a kernel release: the agent
 * plus the modules the agent needs that are not built in. */
int vm_initrd_prepare(const char *release, struct vm_initrd *out, hull_error *err);
/* The hull-agent binary: $HULL_AGENT, next to the hull binary, or
 * PREFIX/lib/hull/hull-agent. */
int vm_agent_path(char *out, size_t len, hull_error *err);

struct vm_rootfs {
    char source[4096]; /* directory, or "" for the default rootfs */
    char image[4096];  /* squashfs image in the cache */
    char sha256[HULL_SHA256_HEX];
};
/* dir NULL: the default rootfs (busybox + the host's python3). A bundle
 * directory (with config.json) means its root.path. */
int vm_rootfs_prepare(const char *dir, struct vm_rootfs *out, hull_error *err);

/* mksquashfs SRC DST (lz4, no xattrs, fixed time; and the root
 * directory's time 0 with root_time_zero); its stderr in the error. */
int vm_mksquashfs(const char *src, const char *dst, bool root_time_zero, hull_error *err);

/* ---- images as roots (image.c), for every isolation level ----
 *
 * Run path only: resolving, mounting and the disk use image/'s ref, store,
 * manifest and rootfs; a missing image or unpacked layer is `hull-image
 * pull` / `hull-image prepare`, run as a child. */
struct vm_image {
    struct image_store store;
    struct image img;
    int use_fd; /* image_use(): held while the image is in use */
    bool store_open, loaded;
    char ref[512]; /* as given */
};
/* Find ref in the store at root (pulling it when absent and pull allows),
 * unpack what is not, and mark it in use (until vm_image_close). */
int vm_image_open(const char *root, const char *ref, enum hull_pull_policy pull,
                  struct vm_image *vi, hull_error *err);
void vm_image_close(struct vm_image *vi);
/* Its name in the store (or the reference it was found by). */
const char *vm_image_name(const struct vm_image *vi);
/* In the caller's mount namespace (a private one): the image's layers
 * read-only at lower, and at target the root to run in, read-only, nosuid,
 * nodev: those layers, with hull's layer (empty /tmp, /proc, /dev
 * directories) over them when the image lacks one of these directories or
 * has a symlink there. */
int vm_image_mount(struct vm_image *vi, const char *lower, const char *target, hull_error *err);
void vm_image_umount(const char *lower, const char *target);
/* hull's layer of empty /tmp, /proc and /dev that vm_image_mount puts over
 * an image lacking them: made once (root's, never changed) at VM_IMAGE_BASE. */
#define VM_IMAGE_BASE "/run/hull-empty/image-base"
int vm_image_base_layer(hull_error *err);
/* vm_image_mount with hull's layer from the caller (VM_IMAGE_BASE seen
 * through another mount): base(ctx, &path, err) is called only when the
 * image needs that layer, and sets path (NULL: VM_IMAGE_BASE) or fails. */
typedef int (*vm_image_base_fn)(void *ctx, const char **path, hull_error *err);
int vm_image_mount_base(struct vm_image *vi, const char *lower, const char *target,
                        vm_image_base_fn base, void *ctx, hull_error *err);
/* A VM's rootfs from an image: the disk, its digest, and the record's
 * image fields (name, digest, store, config). */
int vm_image_rootfs(const char *root, const char *ref, enum hull_pull_policy pull, struct vm *vm,
                    hull_error *err);
/* The use mark of vm's image, for its QEMU to hold while it runs; the
 * disk must still be there. Returns the fd. */
int vm_image_hold(const struct vm *vm, hull_error *err);
/* The read-only squashfs of that root, built once per manifest under a
 * lock (<store>/hull/disks/<hex>.sqfs) in a child with a private mount
 * namespace; out receives its path. */
int vm_image_disk(struct vm_image *vi, char *out, size_t len, hull_error *err);
/* base with each KEY=VALUE of over replacing base's KEY (or added);
 * NULL-terminated, malloc'd; NULL without memory. */
char **vm_env_merge(char *const *base, char *const *over);

/* ---- accelerator (accel.c) ---- */

/* "kvm" or "tcg" for a request of "kvm", "tcg", "auto" or NULL ($HULL_VM_ACCEL,
 * then auto). auto takes KVM only when /dev/kvm opens and can run a guest
 * with the CPU features the kernel needs. */
int vm_accel_resolve(const char *want, char out[8], hull_error *err);
bool vm_kvm_usable(char *why, size_t len);

/* ---- the VM record (state.c) ---- */

enum vm_status {
    VM_CREATED,
    VM_RUNNING,
    VM_PAUSED,
    VM_STOPPED,
    VM_FAILED,
};
const char *vm_status_name(enum vm_status s);

struct vm_agent; /* agent.h */

struct vm {
    char id[HULL_VM_ID_MAX + 1];
    char dir[4096]; /* <root>/vm/<id> */
    enum vm_status status;
    char failure[512]; /* why, when VM_FAILED */
    char created[40];
    uint64_t memory_mb;
    unsigned vcpus;
    unsigned agent_ports; /* virtio-serial ports of the agent: 1..HULL_VM_AGENT_PORTS */
    char accel[8];
    struct vm_kernel kernel;
    struct vm_initrd initrd;
    struct vm_rootfs rootfs;
    pid_t pid;                    /* QEMU, host pid namespace; 0 when not running */
    unsigned long long pid_start; /* /proc/<pid>/stat starttime, against pid reuse */
    pid_t monitor;                /* the attached parent of an ephemeral VM, else 0 */
    uid_t uid;                    /* QEMU's unprivileged uid and gid */
    int64_t started_ms;           /* CLOCK_REALTIME ms when QEMU started */
    int64_t boot_ms;              /* start to agent ready */
    char restored_from[4096];
    bool ephemeral;     /* oneshot: deleted by whoever made it */
    bool from_template; /* `start` restores the cached template (template.c) */
    char cgroup[4096];  /* the VMM's cgroup, hull_cgroup_save() JSON; "" when none */
    /* A rootfs made from an image of the store (image.c): its name, the
     * manifest digest, the store, and {"env": [...], "workdir": "..."} of
     * its config (exec's defaults); all "" otherwise. */
    char image[512], image_digest[80], image_root[4096], image_config[8192];
    /* While QEMU starts: the image's use mark (image_use), which QEMU
     * inherits and holds as long as it runs; -1 otherwise. Not saved. */
    int image_hold_fd;
    /* While QEMU starts and a template is saved: guest RAM as a memfd
     * (ram_open), mapped shared by the template's maker (its RAM is saved
     * beside the stream, template.c) or private over the sealed copy of a
     * template's RAM (snapshot.c); ram_fd is meaningful only when ram_open.
     * Not saved. */
    bool ram_open, ram_share;
    int ram_fd;
    /* A hull network (vmnet.c): its name ("" for none), the egress text
     * and the published ports, as created; the lease while QEMU runs
     * (lease.ip4 "" otherwise; lease.tap_fd only while QEMU starts). */
    char network[HULL_NET_NAME_MAX + 1];
    char egress[2048];
    struct hull_publish publish[HULL_NET_MAX_PUBLISH];
    size_t n_publish;
    struct hull_net_lease lease;
    /* A VM migrating in (migrate_recv.c): lease holds the MAC and addresses
     * it had on the source, which the next attach must get exactly. Not
     * saved. */
    bool lease_wanted;
};

/* The state directory of VMs under a runtime root. */
int vm_root_dir(const struct hull_runtime *rt, char *out, size_t len, hull_error *err);
int vm_dir_of(const struct hull_runtime *rt, const char *id, char *out, size_t len,
              hull_error *err);
int vm_id_validate(const char *id, hull_error *err);
int vm_save(const struct vm *vm, hull_error *err);
/* The record as saved, unchecked against /proc (vm_load checks it). */
int vm_read(const struct hull_runtime *rt, const char *id, struct vm *vm, hull_error *err);
/* The same, again, of the VM that vm names (its dir and id). */
int vm_reread(struct vm *vm, hull_error *err);
json_object *vm_state_json(const struct vm *vm);
bool vm_qemu_alive(const struct vm *vm);
unsigned long long vm_proc_start_time(pid_t pid);
/* Paths inside the VM directory. */
void vm_path(const struct vm *vm, const char *name, char *out, size_t len);
/* What run/<log> (console.log, qemu.log) last said, for an error: its last
 * line, after the reason of a kernel panic when the guest had one; "" when
 * there is no log. */
void vm_log_said(const struct vm *vm, const char *log, char *out, size_t len);

/* flock on <dir>/<name>; returns the fd (close to unlock). */
int vm_lock(const struct vm *vm, const char *name, bool wait, hull_error *err);
/* A recorded port count, 0 (not recorded: an older hull's VM) as 1. */
unsigned vm_agent_ports_valid(int64_t n);
/* An agent session of its own (exec.c): agent.lock shared (a snapshot or a
 * migration takes it exclusive: no session mid-request in the saved
 * state), then the first free port's lock, waiting when all are taken.
 * *port: its index; returns the port lock (the caller closes both). */
int vm_agent_session_lock(const struct vm *vm, int *gate, unsigned *port, hull_error *err);
int vm_agent_connect_port(struct vm *vm, unsigned port, int timeout_ms, struct vm_agent **out,
                          hull_error *err);
/* A running VM and an agent session of its own on it (exec.c). */
struct vm_session {
    struct vm vm;
    int lock, gate;
    struct vm_agent *a;
};
int vm_session_begin(const struct hull_runtime *rt, const char *id, struct vm_session *s,
                     hull_error *err);
void vm_session_end(struct vm_session *s);
/* The agent stopped answering (err ETIMEDOUT): record it, so `state` says
 * failed, not hung. Any other error is left alone. */
void vm_session_mark_failed(struct vm_session *s, hull_error *err);

/* ---- networks (vmnet.c): a TAP on a hull network for QEMU ----
 *
 * The lease is taken when QEMU starts (a TAP made by the hull-net helper,
 * its fd inherited by QEMU, which can make none itself), handed to QEMU's
 * pid once it runs (so the crash sweep keeps it exactly as long as QEMU
 * lives), and released when the VM stops, is deleted, or is found dead.
 * The guest is told its address by the agent ("net" request) after every
 * boot and every restore: a restored VM has a TAP and a lease of its own. */

struct vm_create_opts;
/* Check and record o's network, egress and publish in vm. */
int vm_net_setup(struct vm *vm, const struct vm_create_opts *o, hull_error *err);
/* Lease and TAP for vm (vm->lease, tap_fd open) before QEMU starts; no-op
 * without a network. */
int vm_net_attach(struct vm *vm, hull_error *err);
/* QEMU runs (vm->pid): the lease is its; our copy of the TAP fd closes. */
int vm_net_adopt(struct vm *vm, hull_error *err);
/* The lease, TAP and rules go (a VM that has none: nothing happens);
 * failures are warned about (the sweep retries). */
void vm_net_release(struct vm *vm);
struct vm_agent;
/* Tell the guest its lease (agent "net" request). */
int vm_net_configure(struct vm *vm, struct vm_agent *a, hull_error *err);
/* A migration's manifest m (made by vm_manifest_json) gets what the
 * receiver needs to give the VM the same network identity: the published
 * ports and the lease (MAC, addresses, gateways). */
void vm_net_manifest(const struct vm *vm, json_object *m);
/* The receiver's side: publish and the wanted lease from m into vm
 * (network and egress came with vm_manifest_artifacts). */
int vm_net_from_manifest(json_object *m, struct vm *vm, hull_error *err);
/* The state document's "network" object; NULL without a network. */
json_object *vm_net_json(const struct vm *vm);
/* Back from it (vm_read). */
void vm_net_from_json(struct vm *vm, json_object *o);

/* ---- lifecycle (vm.c) ---- */

struct vm_create_opts {
    const char *id;
    unsigned agent_ports; /* 0 = 1 */
    uint64_t memory_mb;
    unsigned vcpus;
    const char *kernel, *rootfs, *accel;
    const char *expect_kernel_sha256, *expect_initrd_sha256, *expect_rootfs_sha256;
    bool ephemeral;
    bool from_template;             /* recorded: `start` goes through the template */
    const char *image, *image_root; /* an image of the store instead of rootfs */
    enum hull_pull_policy pull;
    const char *network, *egress; /* a hull network (vmnet.c); NULL: none */
    const struct hull_publish *publish;
    size_t n_publish;
};
int vm_create(const struct hull_runtime *rt, const struct vm_create_opts *o, struct vm *vm,
              hull_error *err);
/* Boot and wait for the agent. */
int vm_start(struct vm *vm, hull_error *err);
/* Kill QEMU if it runs (politely first when graceful), release everything
 * but the state directory. */
int vm_stop(struct vm *vm, bool graceful, hull_error *err);
/* Stop (force) and remove the state directory. */
int vm_destroy(struct vm *vm, hull_error *err);
/* Release what a dead QEMU left: cgroups, sockets, the monitor. */
void vm_release(struct vm *vm);
/* Load and refresh: a VM whose QEMU is gone is reported stopped (and its
 * leftovers released). */
int vm_load(const struct hull_runtime *rt, const char *id, struct vm *vm, hull_error *err);
/* vm_load, then the VM's lock (vm_lock; wait or not), then the record
 * read again under it: the lock's fd, or -1. Every verb that changes a VM
 * acts on what this returns, never on a record read before its lock. */
int vm_load_locked(const struct hull_runtime *rt, const char *id, bool wait, struct vm *vm,
                   hull_error *err);
/* Pause a running VM, resume a paused one (the caller holds the lock). */
int vm_pause(struct vm *vm, hull_error *err);
int vm_resume(struct vm *vm, hull_error *err);
/* Start the VMM only (status running, or paused when loading incoming_fd). */
int vm_start_vmm(struct vm *vm, int incoming_fd, hull_error *err);
int vm_boot_timeout_ms(const struct vm *vm);
/* Restore a template snapshot of this configuration (made by a cold boot
 * on first use) into a new VM: template.c. */
int vm_create_from_template(const struct hull_runtime *rt, const struct vm_create_opts *o,
                            struct vm *vm, hull_error *err);
/* The name of vm's configuration's template in <cache>/templates
 * (<key>.snap): its artifacts' digests, size, accelerator and QEMU. */
void vm_template_key(const struct vm *vm, char key[HULL_SHA256_HEX]);
/* Start a created (or stopped) VM from its configuration's template, cold
 * booting and saving the template the first time. The VM stays on failure.
 * The caller holds the VM's lock. */
int vm_start_from_template(struct vm *vm, hull_error *err);
/* Connect to the agent and say hello (repeated until answered). */
struct vm_agent;
int vm_agent_connect(struct vm *vm, int timeout_ms, struct vm_agent **out, hull_error *err);

/* ---- one-shot runs (oneshot.c): the sandbox's microvm level ----
 *
 * int hull_vm_oneshot(const struct hull_vm_oneshot_opts *o,
 *                     struct hull_vm_oneshot_result *r, hull_error *err);
 *
 * Runs o->argv once in a fresh, ephemeral microVM and destroys it:
 *   - the VM: guest RAM o->memory_mb, or limits.memory_bytes + 96 MiB
 *     rounded up to 64 MiB (at least 128 MiB); one vCPU; o->kernel,
 *     o->rootfs (directory or bundle; NULL = default rootfs with busybox and
 *     python3), o->accel (NULL = $HULL_VM_ACCEL or auto). Restored from the
 *     template of that configuration (made by a cold boot on first use)
 *     unless o->cold. Its QEMU dies with the calling process.
 *   - network: o->network (with egress, publish) gives the VM a TAP and a
 *     lease of its own (vmnet.c), released with the VM (or by its monitor
 *     when the caller dies); NULL: no card.
 *   - files: o->copy_in[i].host -> .guest before the run, o->copy_out[i]
 *     .guest -> .host after it (binary-safe; guest paths absolute, inside
 *     the workload root, not /proc, /sys, /dev).
 *   - the run: argv with env (NULL = PATH, HOME, TERM), cwd, stdin bytes,
 *     and limits (0 = none): cpu_time_ms, wall_time_ms, memory_bytes, pids,
 *     output_bytes (per stream), open_files.
 *
 * Returns -1 with *err for bad input or when no VM could be made (nothing is
 * left behind either way). Returns 0 once a VM ran: r->run holds verdict
 * (ok, exit_nonzero, signaled, cpu_time_limit, wall_time_limit,
 * memory_limit, output_limit, pids_limit, internal_error), exit_code (-1 if
 * signaled), signal, stdout/stderr (NUL-terminated, lengths, truncated
 * flags), cpu_time_ms, wall_time_ms, max_memory_kb; r->error says why for
 * internal_error (e.g. the command does not exist) or a failed copy-out;
 * r->warm, r->start_ms and r->accel describe the VM. Free with
 * hull_vm_oneshot_result_free(); hull_vm_oneshot_result_json() gives the
 * sandbox result JSON.
 *
 * Accounting is the guest kernel's: the agent runs the workload in a cgroup
 * v2 of its own inside the guest (memory.max, pids.max), reads cpu.stat
 * usage_usec (CPU time of the whole tree, checked every 20 ms, killed at
 * the limit), memory.peak (max_memory_kb), memory.events oom_kill and
 * memory.pressure (memory_limit, including a workload thrashing at its
 * limit), pids.events max (pids_limit); wall time is the agent's clock;
 * RLIMIT_NOFILE limits open files and RLIMIT_CPU is a per-process backstop.
 */
int hull_vm_oneshot(const struct hull_vm_oneshot_opts *o, struct hull_vm_oneshot_result *r,
                    hull_error *err);
uint64_t vm_oneshot_memory_mb(const struct hull_vm_oneshot_opts *o);

/* template_share.c: restore stream into a VM "<id>.tpl" whose RAM hull
 * shares, save it to file with its RAM beside it, destroy that VM. */
int vm_template_reshare(const struct hull_runtime *rt, const char *id, uint64_t memory_mb,
                        const char *stream, const char *file, hull_error *err);

/* vm.c: the VM directory (run/ for QEMU's uid, jail/), uid, created time. */
int vm_make_dirs(struct vm *vm, hull_error *err);

/* uids.c: QEMU's host uid and gid, VM_UID_BASE + a slot claimed by one VM
 * from create to delete (a file in claims naming the VM's directory; one
 * whose directory is gone is stale and taken). claim: dir's claim if it
 * has one, else the first free slot from first on. keep (at each start): *uid's
 * slot claimed again for dir, or, when another VM holds it, another slot
 * (*moved). release: *uid's claim, if it is dir's. */
#define VM_UID_BASE 2000000000u
#define VM_UIDS     65536u
#define VM_UID_DIR  "/run/hull/vm-uids"
int vm_uid_claim_at(const char *claims, const char *dir, uint32_t first, uid_t *uid,
                    hull_error *err);
int vm_uid_keep_at(const char *claims, const char *dir, uid_t *uid, bool *moved, hull_error *err);
void vm_uid_release_at(const char *claims, const char *dir, uid_t uid);
/* snapshot.c */
int vm_snapshot_to(struct vm *vm, const char *file, hull_error *err);
/* Is file a snapshot made on this host (header, signed manifest)? */
int vm_snapshot_check(const char *file, hull_error *err);
/* The same, and are its payload and its RAM file (if any) the ones the
 * manifest names: is it whole, whatever a restore of it did. */
int vm_snapshot_verify(const char *file, hull_error *err);
int vm_restore_into(struct vm *vm, const char *file, int64_t *ready_ms, hull_error *err);
/* A snapshot's manifest without its stream (what a migration sends), and
 * back: vm's size and artifacts from m, each checked against the disk. */
json_object *vm_manifest_json(const struct vm *vm);
int vm_manifest_artifacts(json_object *m, struct vm *vm, hull_error *err);

/* exec.c, on an open agent session (oneshot uses these directly). */
int vm_exec_on(struct vm_agent *a, const struct hull_vm_exec_opts *o, struct hull_vm_exec_result *r,
               hull_error *err);
int vm_put_file(struct vm_agent *a, const char *host, const char *guest, hull_error *err);
/* Only the file's data extents travel and are written (holes stay holes),
 * at most max_data bytes of them: a file with more is cut (truncated), one
 * cut before its first byte is refused. got (may be NULL) receives what
 * became of it, the host file's length and the data written. */
struct vm_got {
    enum hull_copy_status status;
    uint64_t length, bytes;
};
int vm_get_file(struct vm_agent *a, const char *guest, const char *host, uint64_t max_data,
                struct vm_got *got, hull_error *err);

#endif
