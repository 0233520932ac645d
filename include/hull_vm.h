/* libhull's microVM API: part of hull.h, which includes it (include hull.h). */
#ifndef HULL_VM_H
#define HULL_VM_H

#include "hull.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---- microVMs -------------------------------------------------------------
 *
 * A microVM is a guest with its own kernel (Debian's) under QEMU's microvm
 * machine, driven by hull over QMP and reached through hull-agent, PID 1 of
 * the guest. State lives under <root>/vm/<id>/; kernels, initramfs and
 * rootfs images and template snapshots are cached under $HULL_VM_CACHE
 * (default /var/cache/hull/vm). The accelerator is KVM when usable, else TCG;
 * $HULL_VM_ACCEL=kvm|tcg|auto overrides. docs/vm.md has the whole story.
 */

struct hull_vm_create_opts {
    const char *id;     /* [A-Za-z0-9_.-], at most 64 bytes */
    uint64_t memory_mb; /* guest RAM; 0 = 256 */
    unsigned vcpus;     /* 0 = 1 */
    const char *kernel; /* bzImage; NULL = newest /boot/vmlinuz-* */
    const char *rootfs; /* directory or OCI bundle; NULL = default rootfs */
    const char *accel;  /* "kvm", "tcg", "auto"; NULL = $HULL_VM_ACCEL or auto */
    /* Attestation: refuse to boot when the measured sha256 differs. */
    const char *expect_kernel_sha256, *expect_initrd_sha256, *expect_rootfs_sha256;
    /* Create *and start* from the cached booted template of this
     * configuration (made by a cold boot the first time). */
    bool from_template;
    /* An OCI image of the store as the rootfs instead of rootfs (not both):
     * its layers as one read-only squashfs disk, built once per manifest
     * (<store>/hull/disks/<hex>.sqfs); its Env and WorkingDir become the
     * defaults of `exec`. The image is in use (hull image remove refuses
     * it) while the VM runs. */
    const char *image, *image_root; /* image_root NULL: $HULL_IMAGE_ROOT or the default */
    enum hull_pull_policy pull;
    /* A hull network (docs/network.md): a TAP made by hull, handed to QEMU
     * as an fd, a virtio-net device, the guest configured by hull-agent.
     * NULL: no network card. egress and publish as in struct hull_policy. */
    const char *network;
    const char *egress;
    const struct hull_publish *publish;
    size_t n_publish;
    /* Agent sessions served at once (one virtio-serial port each, up to
     * HULL_VM_AGENT_PORTS); 0 = 1. Each costs the guest about a MiB of
     * kernel buffers and a server process. */
    unsigned agent_ports;
};
#define HULL_VM_AGENT_PORTS 8

HULL_PUBLIC int hull_vm_create(const struct hull_runtime *rt, const struct hull_vm_create_opts *o,
                               hull_error *err);
/* Boot and wait for the agent. */
HULL_PUBLIC int hull_vm_start(const struct hull_runtime *rt, const char *id, hull_error *err);
HULL_PUBLIC int hull_vm_pause(const struct hull_runtime *rt, const char *id, hull_error *err);
HULL_PUBLIC int hull_vm_resume(const struct hull_runtime *rt, const char *id, hull_error *err);
/* Guest power-off, then QMP quit, then SIGKILL; releases cgroups and sockets. */
HULL_PUBLIC int hull_vm_stop(const struct hull_runtime *rt, const char *id, hull_error *err);
/* force: stop a running VM first. */
HULL_PUBLIC int hull_vm_delete(const struct hull_runtime *rt, const char *id, bool force,
                               hull_error *err);
/* The VM's state as JSON (status, pid, accelerator, memory_mb, vcpus,
 * uptime_ms, measured digests...); caller frees. */
HULL_PUBLIC char *hull_vm_state(const struct hull_runtime *rt, const char *id, hull_error *err);
/* Every VM's state as a JSON array; caller frees. */
HULL_PUBLIC char *hull_vm_list(const struct hull_runtime *rt, hull_error *err);
/* `hull vm cache prune`: remove from the VM cache ($HULL_VM_CACHE, else
 * /var/cache/hull/vm) the kernels, initramfs and rootfs images and the
 * templates that no VM of rt's state root uses (any VM record names its
 * artifacts; a --from-template VM its template; a restore or save under
 * way holds its template's lock); each is built again when next needed.
 * dry_run: say what would go, remove nothing. The report as JSON
 * ({"cache", "dry_run", "removed": [{"path", "bytes"}], "kept": [{"path",
 * "in_use_by"}], "bytes"}); caller frees. */
HULL_PUBLIC char *hull_vm_cache_prune(const struct hull_runtime *rt, bool dry_run, hull_error *err);
/* Save a running or paused VM to file (it keeps its state afterwards). */
HULL_PUBLIC int hull_vm_snapshot(const struct hull_runtime *rt, const char *id, const char *file,
                                 hull_error *err);
/* The same, made to be restored many times: the guest RAM goes to
 * <file>.ram, which every restore maps copy-on-write and shares with the
 * others (docs/vm.md, "Snapshots, templates, warm start"). */
HULL_PUBLIC int hull_vm_snapshot_shared(const struct hull_runtime *rt, const char *id,
                                        const char *file, hull_error *err);
/* A new running VM from a snapshot; refuses a file whose digests or
 * signature do not match, or whose kernel/initrd/rootfs changed. */
HULL_PUBLIC int hull_vm_restore(const struct hull_runtime *rt, const char *file, const char *new_id,
                                hull_error *err);
/* Live migration (docs/vm.md, "Migration"): the VM's state travels over
 * one TCP connection to `hull vm receive` (hull_vm_receive) on the target,
 * in TLS 1.3 with mutual certificates (tls_cert, tls_key, each checking
 * the other's against tls_ca); or, only with insecure_plain, unencrypted
 * and authenticated with a shared token (a file, 0600, at least 16 bytes).
 * The guest runs while its memory is copied (cold: stopped first). On any
 * failure before the receiver runs the guest, the VM runs here again. */
struct hull_vm_migrate_opts {
    const char *to;         /* HOST:PORT of the receiver */
    const char *token_file; /* the shared token (insecure_plain only) */
    bool cold;              /* stop, copy, start on the target */
    uint64_t bandwidth;     /* bytes/s cap on the stream; 0 = none */
    unsigned timeout_s;     /* the longest wait for the peer; 0 = 60 */
    /* PEM files: our certificate (chain) and key (0600), the CA the
     * receiver's certificate must chain to. */
    const char *tls_cert, *tls_key, *tls_ca;
    /* The name (DNS or IP) the receiver's certificate must carry; NULL:
     * the host of `to`. */
    const char *tls_name;
    bool insecure_plain; /* no TLS: the token channel, in clear */
};
struct hull_vm_migrate_result {
    char mode[8];    /* "live" or "cold" */
    char target[72]; /* the VM's id on the receiver */
    /* total: connect to the guest running there. downtime: the guest's
     * pause, from QEMU's stop for the last round (QEMU's own figure,
     * qemu_downtime_ms) to the receiver's word that it runs again (cold:
     * from the stop). */
    int64_t total_ms, downtime_ms, qemu_downtime_ms;
    int64_t copy_ms;   /* from QEMU's migrate command to the guest running there */
    uint64_t bytes;    /* the stream's bytes */
    uint64_t rounds;   /* QEMU's dirty-sync count */
    char transport[8]; /* "tls" or "plain" */
};
HULL_PUBLIC int hull_vm_migrate(const struct hull_runtime *rt, const char *id,
                                const struct hull_vm_migrate_opts *o,
                                struct hull_vm_migrate_result *r, hull_error *err);
HULL_PUBLIC char *hull_vm_migrate_result_json(const struct hull_vm_migrate_result *r);
struct hull_vm_receive_opts {
    const char *listen;     /* HOST:PORT (port 0: any) */
    const char *token_file; /* the shared token (insecure_plain only) */
    const char *id;         /* the VM's id here; NULL = the source's */
    unsigned timeout_s;     /* the longest wait for the source; 0 = 300 */
    /* Called once listening, with the address bound (may be NULL). */
    void (*ready)(const char *addr, void *arg);
    void *ready_arg;
    /* As for hull_vm_migrate: the source's certificate must chain to tls_ca. */
    const char *tls_cert, *tls_key, *tls_ca;
    bool insecure_plain; /* no TLS: the token channel, in clear */
};
/* Take one migration and return; *result_json (caller frees) describes
 * the VM now running here. Nothing is left here on failure. */
HULL_PUBLIC int hull_vm_receive(const struct hull_runtime *rt, const struct hull_vm_receive_opts *o,
                                char **result_json, hull_error *err);
/* Build (or find) the initramfs for a kernel; path and sha256 out. */
HULL_PUBLIC int hull_vm_initrd(const char *kernel, char path[4096], char sha256[65],
                               hull_error *err);

/* Limits on one workload, enforced and measured inside the guest by a
 * cgroup v2 of its own (and RLIMIT_NOFILE / RLIMIT_CPU); 0 = none.
 * cpu_milli: CPU bandwidth in thousandths of a CPU (500: half of one). */
struct hull_vm_limits {
    uint64_t cpu_time_ms, wall_time_ms, memory_bytes, pids, output_bytes, open_files;
    uint64_t cpu_milli;
};

struct hull_vm_exec_opts {
    char *const *argv; /* required */
    char *const *env;  /* "K=V"; NULL = PATH only */
    const char *cwd;   /* NULL = "/" */
    int stdin_fd;      /* streamed to the workload; -1 = use stdin_data */
    const void *stdin_data;
    size_t stdin_len;
    int stdout_fd, stderr_fd; /* streamed there; -1 = collected in the result */
    bool detach;              /* start and return; the process outlives the call */
    struct hull_vm_limits limits;
    /* Collected output as it arrives, as hull_policy.on_output; NULL = none. */
    void (*on_output)(void *ctx, int stream, const char *data, size_t len);
    void *on_output_ctx;
    /* A terminal: rows and cols both non-zero give the workload a pty of
     * that size in the guest (stdout and stderr both arrive on stdout). */
    unsigned pty_rows, pty_cols;
    /* > 0: read while the workload runs, records of struct
     * hull_vm_exec_ctl (a signal for the workload, a new pty size); its
     * end changes nothing. 0 = none. */
    int ctl_fd;
};
enum { HULL_VM_CTL_SIGNAL = 1, HULL_VM_CTL_RESIZE = 2 };
struct hull_vm_exec_ctl {
    int32_t op;   /* HULL_VM_CTL_* */
    int32_t a, b; /* the signal; or rows, cols */
};

struct hull_vm_exec_result {
    char verdict[32]; /* ok, exit_nonzero, signaled, cpu_time_limit, wall_time_limit,
                         memory_limit, output_limit, pids_limit, internal_error */
    int exit_code;    /* -1 when signaled */
    int signal;
    uint64_t cpu_time_ms, wall_time_ms, max_memory_kb;
    char *stdout_buf, *stderr_buf; /* when collected; NUL-terminated, may hold NULs */
    size_t stdout_len, stderr_len;
    bool stdout_truncated, stderr_truncated;
    pid_t pid; /* in the guest */
};
HULL_PUBLIC void hull_vm_exec_result_free(struct hull_vm_exec_result *r);
/* The result of an exec as JSON: the sandbox result's fields for one
 * workload (verdict, exit_code, signal, cpu_time_ms, wall_time_ms,
 * max_memory_kb, stdout, stderr, truncation flags, isolation) and error
 * when given. malloc'd; NULL without memory. */
HULL_PUBLIC char *hull_vm_exec_result_json(const struct hull_vm_exec_result *r, const char *error);
/* Run a command in a running VM. Returns 0 when the workload ran (whatever
 * its exit); a command that cannot start is an error (code: its errno). */
HULL_PUBLIC int hull_vm_exec(const struct hull_runtime *rt, const char *id,
                             const struct hull_vm_exec_opts *o, struct hull_vm_exec_result *r,
                             hull_error *err);
/* Copy a file into / out of the guest's workload root (binary-safe). */
HULL_PUBLIC int hull_vm_copy_in(const struct hull_runtime *rt, const char *id, const char *host,
                                const char *guest, hull_error *err);
/* Changes under a guest directory (inotify in the guest), as NDJSON lines
 * {"type", "path", "dir"} written to out_fd (type create, modify, delete,
 * rename_from, rename_to; "overflow" without a path) until out_fd's
 * reader goes (0), the directory goes (0) or the VM does (-1). started,
 * when given, is called once the watches are in place. Each line is
 * checked and rewritten on the host: the guest cannot inject other JSON. */
struct hull_vm_watch_opts {
    const char *path;
    bool recursive;
    int out_fd;
    void (*started)(void *ctx, uint64_t watches);
    void *ctx;
};
HULL_PUBLIC int hull_vm_watch(const struct hull_runtime *rt, const char *id,
                              const struct hull_vm_watch_opts *o, hull_error *err);
/* stat, list, mkdir, rename or remove (op->verb) in the guest's workload
 * root, done by the guest's agent itself, as hull_session_fs does them in a
 * container sandbox: *out is the same answer (the caller puts it). Errors
 * carry the errno the guest's kernel gave. */
HULL_PUBLIC int hull_vm_fs(const struct hull_runtime *rt, const char *id,
                           const struct hull_fs_op *op, struct json_object **out, hull_error *err);
HULL_PUBLIC int hull_vm_copy_out(const struct hull_runtime *rt, const char *id, const char *guest,
                                 const char *host, hull_error *err);
/* The same, for a file of at most max_data bytes of data (holes are
 * free): one with more is refused (EFBIG) and nothing is left at host. */
HULL_PUBLIC int hull_vm_copy_out_max(const struct hull_runtime *rt, const char *id,
                                     const char *guest, const char *host, uint64_t max_data,
                                     hull_error *err);

/* One workload in a fresh microVM, for `hull sandbox run --isolation
 * microvm`: restore (or, the first time, boot and save) the template of this
 * configuration, copy files in, run, copy files out, destroy. See
 * src/lib/vm/vm.h for the details. */
struct hull_vm_file {
    const char *host, *guest;
};
/* The most stdin a oneshot's caller reads into memory for it (`hull vm run
 * --stdin`, a microVM sandbox's --stdin): a file that never ends
 * (/dev/zero) is refused, not read until memory runs out. */
#define HULL_VM_STDIN_MAX ((size_t)256 << 20)

struct hull_vm_oneshot_opts {
    const struct hull_runtime *rt; /* NULL = default root */
    char *const *argv;
    char *const *env;
    const char *cwd;
    const void *stdin_data;
    size_t stdin_len;
    const struct hull_vm_file *copy_in, *copy_out;
    size_t n_copy_in, n_copy_out;
    /* Data bytes all copy-outs may write to the host together (holes are
     * free); the file that reaches it is cut. UINT64_MAX: no limit. */
    uint64_t copy_out_max;
    struct hull_vm_limits limits;
    const char *rootfs; /* NULL = default rootfs */
    const char *kernel; /* NULL = newest /boot/vmlinuz-* */
    const char *accel;  /* NULL = $HULL_VM_ACCEL or auto */
    uint64_t memory_mb; /* guest RAM; 0 = enough for limits.memory_bytes */
    bool cold;          /* boot instead of restoring a template */
    /* An image of the store as the rootfs (see hull_vm_create_opts); its
     * config is not applied here: argv, env and cwd are the caller's. */
    const char *image, *image_root;
    enum hull_pull_policy pull;
    /* A hull network for the run's VM, as in hull_vm_create_opts: its own
     * TAP and lease, released when the VM goes. NULL: no network card.
     * A template restore (not cold) reconfigures the guest's card. */
    const char *network;
    const char *egress;
    const struct hull_publish *publish;
    size_t n_publish;
    /* The workload's output as it arrives (hull_vm_exec_opts.on_output). */
    void (*on_output)(void *ctx, int stream, const char *data, size_t len);
    void *on_output_ctx;
};
struct hull_vm_oneshot_result {
    struct hull_vm_exec_result run;
    char *error;                    /* why, when run.verdict is internal_error */
    struct hull_copied_file *files; /* one per copy_out, once the run ran */
    size_t n_files;
    bool warm;         /* restored from a template */
    uint64_t start_ms; /* VM creation to agent-ready */
    char accel[8];
};
HULL_PUBLIC int hull_vm_oneshot(const struct hull_vm_oneshot_opts *o,
                                struct hull_vm_oneshot_result *r, hull_error *err);
HULL_PUBLIC void hull_vm_oneshot_result_free(struct hull_vm_oneshot_result *r);
/* The sandbox result JSON of a oneshot (verdict, exit_code, signal,
 * cpu_time_ms, wall_time_ms, max_memory_kb, stdout, stderr, *_truncated,
 * isolation, accelerator, warm_start, vm_start_ms, error); caller frees. */
HULL_PUBLIC char *hull_vm_oneshot_result_json(const struct hull_vm_oneshot_result *r);

#ifdef __cplusplus
}
#endif

#endif
