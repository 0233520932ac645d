/* Internal pieces of the sandbox: the layout (policy -> spec), copy-out,
 * and the isolation-level providers behind hull_sandbox_run(). */
#ifndef HULL_SANDBOX_SANDBOX_H
#define HULL_SANDBOX_SANDBOX_H

#include <stdbool.h>
#include <stdint.h>

#include "hull.h"
#include <json-c/json.h>

#include "linux/mounts.h"
#include "linux/seccomp.h"
#include "net/net.h"
#include "spec/spec.h"
#include "image/user.h"
#include "vm/vm.h"

/* The workload's uid (and gid) inside a container-level sandbox. */
#define HULL_SANDBOX_UID 1000u
/* Container uids 0..65535 map to host uids base..base+65535: root inside is
 * an unprivileged nobody outside. The shared block: the host uids of what
 * sandboxes write on host files (struct hull_sandbox_ids): */
#define HULL_SANDBOX_ID_RANGE 65536u
#define HULL_SANDBOX_UID_BASE 1000000000u
/* Process level (no user namespace): each concurrent run is a host uid
 * (and gid) of its own, base..base+count-1, claimed in uids.c. */
#define HULL_SANDBOX_PROC_UID_BASE 1000100000u
#define HULL_SANDBOX_PROC_UIDS     1024u
#define HULL_SANDBOX_UID_DIR       "/run/hull/sandbox-uids"
/* Container level: each concurrent sandbox's user namespace is owned by a
 * host uid of its own that no process runs as (uids.c, docs/sandbox.md). */
#define HULL_SANDBOX_OWNER_UID_BASE 1000200000u
#define HULL_SANDBOX_OWNER_UIDS     4096u
#define HULL_SANDBOX_OWNER_DIR      "/run/hull/sandbox-owners"
/* ... and its uids 0..65535 are host uids of its own: the block of its
 * owner's slot, from here (4096 blocks, up to 1269435455). */
#define HULL_SANDBOX_BLOCKS_BASE 1001000000u
#define HULL_SANDBOX_MAX_FILES   96 /* root files: layout, copies, their directories */
#define HULL_SANDBOX_MAX_COPIES  32 /* copy-in + inline files of one policy */
#define HULL_SANDBOX_ROOT        "/run/hull/sandbox"
/* Roots for sandboxes: outside /run/hull (0700), because the sandbox's root
 * user, an unprivileged host uid, must reach the directory it is bound from. */
#define HULL_SANDBOX_EMPTY_ROOT "/run/hull-empty"
/* Annotation naming a run's supervisor, "pid:starttime". */
#define HULL_SANDBOX_SUPERVISOR_KEY "io.hull.sandbox.supervisor"

struct hull_sandbox_layout {
    struct hull_spec *spec;
    struct hull_rootfs_extras extras;
    struct hull_root_file files[HULL_SANDBOX_MAX_FILES];
    size_t n_files;
    char links[8][256]; /* symlink targets for /bin -> usr/bin and friends */
    size_t n_links;
    char passwd[512], group[256];
    uint32_t uid, gid; /* the workload's uid and gid inside */
};

/* The host ids one sandbox runs as, and the claim that keeps them its
 * own (uids.c) until lock is closed, which the kernel does at the latest
 * when the holder dies.
 * - Process level: base is the run's own host uid (and gid): RLIMIT_NPROC
 *   and the kernel's other per-uid counts are that uid's alone.
 * - Container level: owner owns the user namespace: the kernel charges what
 *   the sandbox's users hold (inotify, message queues, pending signals,
 *   namespaces) to it as well. base is the host uid of uid 0 inside, the
 *   first of a block of HULL_SANDBOX_ID_RANGE of the sandbox's own: the
 *   counts the kernel keeps per host user (fds in flight over unix
 *   sockets, pipe buffers, epoll watches) are then the sandbox's alone.
 *   Host files it uses (--bind, --rootfs) are idmapped to the shared
 *   block at HULL_SANDBOX_UID_BASE, whose uids they may be made for
 *   (host_files.c, docs/sandbox.md "Users"); where their filesystem
 *   cannot be, base is the shared block's instead. */
struct hull_sandbox_ids {
    int lock; /* -1: nothing claimed (microVM level) */
    uint32_t base;
    uint32_t owner; /* container level */
};
int hull_sandbox_ids_claim(const struct hull_policy *p, struct hull_sandbox_ids *ids,
                           hull_error *err);
void hull_sandbox_ids_release(struct hull_sandbox_ids *ids);
#define cleanup_sandbox_ids __attribute__((cleanup(hull_sandbox_ids_release)))

/* Idmapped mounts (idmap.c), made by a supervisor in its private mount
 * namespace. The process that made a user namespace for a mapping is
 * killed at once; reap it (waiting when wait) before h goes. */
struct hull_idmap_helper {
    pid_t pid; /* 0: none */
    void *mem; /* its stack, ours to free once it is reaped */
};
/* The supervisor's own mount namespace, a slave of the host's: what is
 * mounted there reaches neither the host nor other sandboxes. */
int hull_sandbox_private_mounts(hull_error *err);
/* A user namespace with the n mappings as its uid and gid maps, as an fd
 * (for MOUNT_ATTR_IDMAP). */
int hull_idmap_userns(const struct hull_id_mapping *m, size_t n, struct hull_idmap_helper *h,
                      hull_error *err);
void hull_idmap_reap(struct hull_idmap_helper *h, bool wait);
/* A detached copy of the mount at path (with every mount below it when
 * recursive), idmapped with userns and given attrs (MOUNT_ATTR_*), into
 * *tree. 1 when the kernel or a filesystem in it cannot be idmapped
 * (*tree -1, nothing changed). */
int hull_idmap_clone(const char *path, int userns, uint64_t attrs, bool recursive, int *tree,
                     hull_error *err);
/* Attach tree (from path) at dest in this mount namespace. */
int hull_idmap_attach(int tree, const char *path, const char *dest, hull_error *err);

/* Container level: the host files a sandbox uses -- its --bind sources
 * and its --rootfs directory -- idmapped over themselves in the
 * supervisor's private mount namespace, so that the sandbox, running as a
 * block of host uids of its own, reads and writes them as the shared
 * block's uids (host_files.c, docs/sandbox.md "Users"). */
struct hull_sandbox_host_files {
    char **stacked; /* the paths an idmapped mount was stacked on, in order */
    size_t n_stacked;
    struct hull_idmap_helper userns;
    char fallback[512]; /* why the sandbox keeps the shared block, or "" */
};
/* Before the image's mount (which takes ids->base): when a filesystem of
 * those files cannot be idmapped, nothing is stacked, fallback says why,
 * and ids->base becomes the shared block's (HULL_SANDBOX_UID_BASE). */
int hull_sandbox_host_files_mount(struct hull_sandbox_host_files *hf, const struct hull_policy *p,
                                  struct hull_sandbox_ids *ids, hull_error *err);
/* The fallback as a warning: once the run is certain to go ahead (a run
 * refused for its input says that alone). */
void hull_sandbox_host_files_warn(const struct hull_sandbox_host_files *hf);
void hull_sandbox_host_files_close(struct hull_sandbox_host_files *hf);
#define cleanup_sandbox_host_files __attribute__((cleanup(hull_sandbox_host_files_close)))

/* A sandbox on a hull network (network.c); all zero: none. */
#define HULL_SANDBOX_NET_DIR "/run/hull/sandbox-net"
struct hull_sandbox_net {
    bool on;                          /* the policy names a network: dir holds the /etc files */
    bool made_dir;                    /* dir is ours to remove */
    bool mounted;                     /* and the tmpfs on it, to unmount */
    char dir[128];                    /* HULL_SANDBOX_NET_DIR/<id>: hosts, resolv.conf */
    struct hull_net_session *session; /* the held attachment, NULL before/after */
    struct hull_net_session *helper;  /* hull-net started by prepare, for attach */
    struct hull_net_lease lease;
};
/* Before the layout: the (empty) files it binds over /etc/hosts and
 * /etc/resolv.conf; nothing without p->network (or at microVM level). */
int hull_sandbox_net_prepare(struct hull_sandbox_net *n, const struct hull_policy *p,
                             const char *id, hull_error *err);
/* After the init exists, before it starts the program: a veth into its
 * network namespace (member "sandbox-<id>") and the lease in the files. */
int hull_sandbox_net_attach(struct hull_sandbox_net *n, const struct hull_policy *p, const char *id,
                            pid_t init, hull_error *err);
/* While the init sets itself up: send the attach request ahead, so the
 * helper's work overlaps the init's (best effort; attach completes it). */
void hull_sandbox_net_request(struct hull_sandbox_net *n, const struct hull_policy *p,
                              const char *id, pid_t init);
/* Undo the attachment (a no-op when there is none). */
int hull_sandbox_net_detach(struct hull_sandbox_net *n, hull_error *err);
/* Detach (warning on failure) and remove the directory. */
void hull_sandbox_net_release(struct hull_sandbox_net *n);
/* Remove the directories of supervisors that are gone (call only where
 * hull_host_pid_view()); returns how many could not be, warned when
 * report. */
int hull_sandbox_net_sweep(bool report);
/* Before every one-shot run (cleanup.c): the cgroups of one-shot runs
 * whose supervisor is gone, and their network directories. */
void hull_sandbox_collect_stale(void);
/* A new id for a run ("sandbox") or a long-lived sandbox ("session"),
 * naming this process as its supervisor by pid and start time. */
void hull_sandbox_new_id(const char *kind, char *buf, size_t len);
/* A sandbox or session id names a supervisor (pid and start time) that is
 * certainly gone (supervisor_id.c). Call only where hull_host_pid_view(). */
bool hull_sandbox_id_orphaned(const char *id);

/* The policy's network fields (policy_net.c): validated for every caller,
 * and the request JSON's "network" (errors name the JSON path). */
int hull_policy_net_validate(const struct hull_policy *p, hull_error *err);
int hull_policy_net_from_json(json_object *net, struct hull_policy *p, hull_error *err);

/* Build the spec (and the files the init writes) for a policy. uid_base
 * is, at container level, the host uid the sandbox's root maps to; at
 * process level, the host uid (and gid) the workload runs as. user, at
 * container level: an image's User (ids inside) instead of HULL_SANDBOX_UID;
 * NULL for the default. net_etc: a directory whose hosts and resolv.conf
 * are bound read-only over /etc's (a hull network), or NULL. */
int hull_sandbox_layout(const struct hull_policy *p, const char *empty_root, uint32_t uid_base,
                        const struct image_user *user, const char *net_etc,
                        struct hull_sandbox_layout *lay, hull_error *err);
void hull_sandbox_layout_free(struct hull_sandbox_layout *lay);
/* The environment every workload starts from (the policy's env, and an
 * image's, replace these by name). */
extern char *const hull_sandbox_default_env[];
/* Whether a sandbox path lies in one of the host directories the default
 * layout binds read-only (/usr, /bin, /lib...): nothing can be created there. */
bool hull_sandbox_under_host_dir(const char *path);

/* Host paths (paths.c). A regular file opened for reading; the root a
 * --rootfs names (DIR, or DIR/rootfs of a bundle), malloc'd; whether the
 * sandbox's root (host uid root_uid) could reach path; whether dst exists where the sandbox
 * cannot create a mount point (in rootfs, or a read-only host directory
 * when rootfs is NULL). what names the option in errors. */
int hull_sandbox_open_regular(const char *path, const char *what, hull_error *err);
/* Any file a run reads from the host (--stdin, --seccomp), opened without
 * waiting for a FIFO's writer; "what: path: why" on failure. */
int hull_sandbox_open_input(const char *path, const char *what, hull_error *err);
char *hull_sandbox_resolve_rootfs(const char *dir, hull_error *err);
int hull_sandbox_reachable(const char *path, uint32_t root_uid, const char *what, hull_error *err);
int hull_sandbox_check_mountpoint(const char *rootfs, const char *dst, const char *what,
                                  hull_error *err);
/* dst (/proc, /dev, /tmp) is a directory of rootfs, reached without any
 * symlink: where the sandbox's own mounts (and its copy-ins) go. */
int hull_sandbox_check_own_mount(const char *rootfs, const char *dst, hull_error *err);

/* The container options every sandbox shares, runs and long-lived ones:
 * the policy's spec and filter, dying with its supervisor, the given stdio,
 * loopback up, /tmp handed back, state that need not survive the machine.
 * Callers add what is theirs (the reaper, lean cgroups). */
struct hull_setup_opts;
void hull_sandbox_setup_opts(const struct hull_policy *p, struct hull_sandbox_layout *lay,
                             const struct hull_seccomp_filter *seccomp, const int stdio[3],
                             uint32_t userns_owner, struct hull_setup_opts *so);

/* Read what a non-blocking pipe holds into out, keeping at most limit
 * bytes (the rest sets out->truncated and *over). False at EOF or error,
 * true when the pipe is merely empty for now. */
bool hull_output_drain(int fd, struct hull_output *out, uint64_t limit, bool *over);
/* The run ended before its program started, for the reason in *e (taken):
 * bad_command with a shell's exit status (127, 126) when the program could
 * not be started as asked (HULL_ENOCMD; HULL_ECMDEXEC, HULL_ECWD),
 * internal_error otherwise. id: the container's, which a bad_command's
 * error does not repeat. */
void hull_result_not_started(struct hull_result *r, hull_error *e, const char *id);
/* The program's CPU time as a one-shot run's supervisor watches it
 * (proc_cpu.c): the sandbox's cgroup, or without one (process isolation)
 * the init's process tree in /proc, less what the setup used. */
struct hull_cgroup;
struct hull_sandbox_cpu {
    struct hull_cgroup *cgroup; /* NULL: process isolation */
    pid_t init;
    uint64_t limit_ms; /* --cpu-time */
    uint64_t setup_ns; /* the sandbox's own, before the program */
    uint64_t seen_ms;  /* the most the supervisor saw */
};
/* Just before the program is let go (SYNC_START), while the init waits. */
void hull_sandbox_cpu_start(struct hull_sandbox_cpu *c, struct hull_cgroup *cg, pid_t init,
                            uint64_t limit_ms);
/* The program's share of a CPU time read of the whole sandbox. */
uint64_t hull_sandbox_cpu_program_ns(const struct hull_sandbox_cpu *c, uint64_t sandbox_ns);
/* How often the supervisor reads it, at least (a read at process level
 * walks the process tree and is spaced out further). */
#define HULL_SANDBOX_CPU_POLL_NS (20 * 1000000ull)
/* Read it now (monotonic ns); true when it reached the limit. *next is when
 * to read it again. */
bool hull_sandbox_cpu_over(struct hull_sandbox_cpu *c, uint64_t now, uint64_t *next);

/* Copy sandbox:/tmp/... out of the exported /tmp (tmpfd) to the host path,
 * never following a symlink or a hard link out of the sandbox and never
 * writing anywhere but host; holes stay holes, and at most *budget data
 * bytes are written (*budget is reduced by what was). Fills f. A readable
 * cancel_fd (-1: none) stops the copy between chunks: the host path is
 * left as it was and f says failed. */
void hull_sandbox_copy_out(int tmpfd, const struct hull_copy *c, uint64_t *budget, int cancel_fd,
                           struct hull_copied_file *f);
/* Whether fd (the policy's cancel_fd, or -1) is readable now. */
bool hull_sandbox_cancelled(int fd);

/* A run rooted in an image (image.c). open: resolve (pull, unpack as the
 * policy allows), mark in use, and make eff the policy to run: p with the
 * image's Entrypoint/Cmd, Env and WorkingDir where p leaves them open
 * (eff's strings belong to si; eff == *p without an image); need_cmd: an
 * image with neither command nor Entrypoint/Cmd is an error. mount: in a
 * private mount namespace of the caller, the image's read-only root, which
 * becomes eff->rootfs. close releases all of it. */
struct hull_sandbox_image {
    struct vm_image vi;
    bool open, mounted;
    uint32_t uid_base; /* the sandbox's host uid of uid 0 inside */
    /* Container level: the store's layers (and hull's base layer)
     * idmapped over themselves in the private namespace. */
    bool layers_idmapped, base_idmapped;
    char layers[4096];
    /* Container level: the helper that made the user namespace for the
     * idmapped layers, killed, reaped at close. */
    struct hull_idmap_helper userns;
    /* Container level: the image's User (has_user), resolved by mount. */
    bool has_user;
    struct image_user user;
    char **argv, **env;
    char *workdir;
};
int hull_sandbox_image_open(const struct hull_policy *p, struct hull_sandbox_image *si,
                            struct hull_policy *eff, bool need_cmd, hull_error *err);
/* uid_base: the sandbox's (struct hull_sandbox_ids), which the layers are
 * mapped to at container level. */
int hull_sandbox_image_mount(struct hull_sandbox_image *si, struct hull_policy *eff,
                             uint32_t uid_base, hull_error *err);
void hull_sandbox_image_close(struct hull_sandbox_image *si);
#define cleanup_sandbox_image __attribute__((cleanup(hull_sandbox_image_close)))
/* The image's name and manifest digest into the result. */
void hull_sandbox_image_result(const struct hull_sandbox_image *si, struct hull_result *r);

/* A provider runs a policy at one isolation level. */
struct hull_sandbox_provider {
    const char *name;
    int (*run)(const struct hull_policy *p, struct hull_result *r, hull_error *err);
};

extern const struct hull_sandbox_provider hull_provider_namespaces; /* process + container */
extern const struct hull_sandbox_provider hull_provider_microvm;

#endif
