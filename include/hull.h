/* hull.h — the public C API of libhull.
 *
 * This is the only header a user of libhull needs. Every call that can fail
 * returns a negative value (or NULL) and fills a hull_error; the caller frees
 * it with hull_error_free(). Messages read from the outermost operation to the
 * root cause: "create foo: config.json: process.args: must be ...".
 */
#ifndef HULL_H
#define HULL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Marks libhull's interface: the library is built -fvisibility=hidden, so
 * these declarations are all that libhull.so exports. */
#if defined(__GNUC__)
#define HULL_PUBLIC __attribute__((visibility("default")))
#else
#define HULL_PUBLIC
#endif

#define HULL_VERSION "0.1.0"
/* The newest OCI runtime-spec version hull implements. */
#define HULL_OCI_VERSION "1.2.0"

/* "hull version X\nspec: Y\n..." with the versions of the libraries in use; caller frees. */
HULL_PUBLIC char *hull_version_text(void);

/* ---- errors -------------------------------------------------------------- */

struct hull_error_s {
    int code;  /* errno value, one of HULL_E* below, or 0 */
    char *msg; /* full message, context first */
};
typedef struct hull_error_s *hull_error; /* NULL means "no error" */

HULL_PUBLIC void hull_error_free(hull_error *err);
HULL_PUBLIC const char *hull_error_msg(hull_error err);
HULL_PUBLIC int hull_error_code(hull_error err);

/* Codes of hull's own, beyond every errno value: a process's program could
 * not be started, which is the caller's mistake, not the runtime's (a
 * shell's exit statuses 127 and 126). The message says which file and why. */
#define HULL_ENOCMD   4097 /* no such program: not in $PATH, or its path names nothing */
#define HULL_ECMDEXEC 4098 /* it is there but cannot be executed (permissions, format) */
#define HULL_ECWD     4099 /* its working directory cannot be entered, nor made (read-only root) */

/* ---- OCI containers ------------------------------------------------------- */

/* Where container state lives and how the runtime behaves; one per process. */
struct hull_runtime {
    const char *root;    /* state directory root, see hull_default_root() */
    bool systemd_cgroup; /* cgroupsPath is "slice:prefix:name" */
    /* No cgroup at all (crun's --cgroup-manager disabled): the container
     * stays in the caller's; a config with resource limits is refused. */
    bool no_cgroups;
};

#define HULL_DEFAULT_ROOT "/run/hull"

/* The state root a caller gets without --root: HULL_DEFAULT_ROOT for root of
 * the initial user namespace; for anyone else (rootless) $XDG_RUNTIME_DIR/hull
 * when XDG_RUNTIME_DIR is an absolute path, else /tmp/hull-<euid>. A root
 * that another user owns or may write to is refused when it is opened. The
 * string is static (computed once). */
HULL_PUBLIC const char *hull_default_root(void);

struct hull_create_opts {
    const char *id;
    const char *bundle;         /* directory holding config.json */
    const char *config_path;    /* default <bundle>/config.json */
    const char *pid_file;       /* written with the init pid (host view) */
    const char *console_socket; /* AF_UNIX socket receiving the pty master */
    bool no_pivot;              /* MS_MOVE + chroot instead of pivot_root */
    bool no_new_keyring;        /* keep the caller's session keyring */
    int preserve_fds;           /* extra fds (3..3+n-1) passed to the process */
    bool keep;                  /* run in the foreground: leave it stopped, not deleted */
};

/* OCI statuses (runtime-spec runtime.md) plus paused (cgroup freezer). */
enum hull_status {
    HULL_STATUS_CREATING,
    HULL_STATUS_CREATED,
    HULL_STATUS_RUNNING,
    HULL_STATUS_PAUSED,
    HULL_STATUS_STOPPED,
};
HULL_PUBLIC const char *hull_status_name(enum hull_status s);

struct hull_state {
    char *id;
    char *bundle;
    char *oci_version;
    char *created; /* RFC 3339 UTC */
    char *owner;   /* user name of the creator, for `list` */
    char *rootfs;  /* absolute rootfs path */
    pid_t pid;     /* init pid in the host's pid namespace; 0 when stopped */
    enum hull_status status;
    char **annotations; /* "key", "value", ..., NULL */
};
HULL_PUBLIC void hull_state_free(struct hull_state *s);
/* runc's `state` JSON; caller frees. */
HULL_PUBLIC char *hull_state_to_json(const struct hull_state *s, bool pretty);

/* create: set everything up and leave the init process waiting for start. */
HULL_PUBLIC int hull_container_create(const struct hull_runtime *rt,
                                      const struct hull_create_opts *opts, hull_error *err);
HULL_PUBLIC int hull_container_start(const struct hull_runtime *rt, const char *id,
                                     hull_error *err);
/* run: create + start. With detach false, waits for the container, relays
 * signals to it, deletes it, and stores its exit status in *exit_status
 * (128+N for a signal, as a shell reports it). */
HULL_PUBLIC int hull_container_run(const struct hull_runtime *rt,
                                   const struct hull_create_opts *opts, bool detach,
                                   int *exit_status, hull_error *err);
HULL_PUBLIC int hull_container_kill(const struct hull_runtime *rt, const char *id, int signo,
                                    bool all, hull_error *err);
HULL_PUBLIC int hull_container_delete(const struct hull_runtime *rt, const char *id, bool force,
                                      hull_error *err);
HULL_PUBLIC int hull_container_state(const struct hull_runtime *rt, const char *id,
                                     struct hull_state *out, hull_error *err);
HULL_PUBLIC int hull_container_list(const struct hull_runtime *rt, struct hull_state **out,
                                    size_t *count, hull_error *err);

/* exec: run another process in a running container, in all its namespaces
 * and its cgroup, with its seccomp filter, capabilities and rlimits. Without
 * process_path, the container's own process is the template and the fields
 * below override it (as runc does). */
struct hull_exec_opts {
    const char *process_path; /* a process JSON document (config.md "process") */
    char *const *args;        /* the command, when no process_path */
    char *const *env;         /* KEY=VALUE added to the environment */
    const char *cwd;
    const char *user; /* "uid[:gid]" */
    char *const *additional_gids;
    char *const *caps; /* capabilities added to every set */
    const char *apparmor_profile;
    const char *process_label;
    bool tty;
    bool detach;
    bool no_new_privs;
    const char *pid_file;
    const char *console_socket;
    int preserve_fds;
    /* For library callers that supervise the process themselves (hulld's
     * sandboxes): */
    const int *stdio;         /* 3 fds that become its 0, 1, 2; NULL: the caller's */
    const char *process_json; /* a process JSON document as text, like process_path */
    pid_t *pid;               /* with detach: its pid (our child: reap it) */
    bool ctty;                /* stdio[0] is a terminal: made the new session's controlling one */
};
HULL_PUBLIC int hull_container_exec(const struct hull_runtime *rt, const char *id,
                                    const struct hull_exec_opts *opts, int *exit_status,
                                    hull_error *err);

/* Processes of the container (host pids), from its cgroup. */
HULL_PUBLIC int hull_container_pids(const struct hull_runtime *rt, const char *id, pid_t **pids,
                                    size_t *count, hull_error *err);
HULL_PUBLIC int hull_container_pause(const struct hull_runtime *rt, const char *id,
                                     hull_error *err);
HULL_PUBLIC int hull_container_resume(const struct hull_runtime *rt, const char *id,
                                      hull_error *err);
/* update: resources_json is a linux.resources object (what `update
 * --resources` reads); fields left out are left alone. */
HULL_PUBLIC int hull_container_update(const struct hull_runtime *rt, const char *id,
                                      const char *resources_json, hull_error *err);
/* One runc-style event: {"type":"stats","id":...,"data":{...}}; caller frees. */
HULL_PUBLIC char *hull_container_stats_json(const struct hull_runtime *rt, const char *id,
                                            hull_error *err);
/* An fd readable on OOM kill in the container (-1 if the host cannot tell). */
HULL_PUBLIC int hull_container_oom_fd(const struct hull_runtime *rt, const char *id,
                                      hull_error *err);
/* runtime-spec features.md document for this build and host; caller frees. */
HULL_PUBLIC char *hull_features_json(void);

/* A default config.json like `runc spec` (rootless: user namespace mapping
 * the caller); caller frees. */
HULL_PUBLIC char *hull_spec_default_json(bool rootless);

/* Parse a signal given as a name ("KILL", "SIGKILL") or number; -1 if unknown. */
HULL_PUBLIC int hull_signal_parse(const char *s);

/* A container id is [A-Za-z0-9_.-]+, not "." or "..", at most 255 bytes (NAME_MAX). */
HULL_PUBLIC int hull_id_validate(const char *id, hull_error *err);

/* ---- sandboxes: one-shot runs of untrusted code ------------------------- */

enum hull_isolation {
    HULL_ISOLATION_PROCESS,   /* namespaces + rlimits: trusted code, fastest */
    HULL_ISOLATION_CONTAINER, /* + user namespace, cgroup limits, seccomp, no capabilities */
    HULL_ISOLATION_MICROVM,   /* its own kernel under a VMM */
};
HULL_PUBLIC const char *hull_isolation_name(enum hull_isolation i);
HULL_PUBLIC int hull_isolation_parse(const char *s, enum hull_isolation *out);

struct hull_bind {
    char *source;      /* host path */
    char *destination; /* path in the sandbox */
    bool writable;
};

struct hull_copy {
    char *host;    /* host path (source of copy-in, target of copy-out) */
    char *sandbox; /* path in the sandbox (under /tmp) */
};

/* A file given by content (the REST API's "files"): written under /tmp. */
struct hull_inline_file {
    char *path; /* in the sandbox, under /tmp */
    char *data;
    size_t len;
    unsigned mode;
};

/* What a run does about an image the store does not have: fetch it
 * (`hull-image pull`, run as a child of its own), or refuse. Layers that
 * are stored but not unpacked are unpacked either way (no network). */
enum hull_pull_policy {
    HULL_PULL_MISSING, /* pull when absent (the default) */
    HULL_PULL_NEVER,   /* refuse when absent */
};
HULL_PUBLIC const char *hull_pull_policy_name(enum hull_pull_policy p);
HULL_PUBLIC int hull_pull_policy_parse(const char *s, enum hull_pull_policy *out);

/* A port of a sandbox or microVM published on the host, as `--publish`
 * writes it: [HOSTIP:]HOSTPORT:PORT[/tcp|udp] (docs/network.md). host_ip ""
 * means every address of the host, 127.0.0.1 included. */
struct hull_publish {
    char host_ip[46];
    uint16_t host_port;
    uint16_t port;
    bool udp;
};
/* Parse one --publish value; errors quote it. */
HULL_PUBLIC int hull_publish_parse(const char *s, struct hull_publish *out, hull_error *err);

/* Everything that defines one run. hull_policy_init() sets the defaults:
 * container isolation, 2 s CPU, 10 s wall, 256 MiB, 64 pids, 1 MiB of each
 * output stream, 64 MiB /tmp, 64 open files, 1 CPU, no network, 64 MiB of
 * copy-out. */
struct hull_policy {
    enum hull_isolation isolation;
    char **argv; /* NULL-terminated, argv[0] looked up in PATH */
    char **env;  /* KEY=VALUE added to the default environment */
    char *workdir;

    uint64_t cpu_time_ms;
    uint64_t wall_time_ms;
    uint64_t memory_bytes;
    uint64_t output_bytes; /* per stream */
    uint64_t tmp_bytes;
    uint32_t pids;
    uint32_t open_files;
    double cpus;
    bool cpus_given; /* cpus was asked for (process isolation refuses it: no cgroup) */
    bool tmp_given;  /* tmp_bytes was asked for (microvm isolation refuses it) */

    char *rootfs; /* NULL: the host's /usr, /bin, /lib* read-only */
    struct hull_bind *binds;
    size_t n_binds;

    char *stdin_path; /* a host file, or NULL */
    char *stdin_data; /* or the bytes themselves (REST API) */
    size_t stdin_len;
    struct hull_copy *copy_in, *copy_out;
    size_t n_copy_in, n_copy_out;
    /* Data bytes all copy-outs of a run may write to the host together
     * (holes stay holes and cost nothing); the file that reaches it is cut,
     * later ones are refused. Default 64 MiB. */
    uint64_t copy_out_max;
    struct hull_inline_file *files;
    size_t n_files;

    bool network_host;  /* share the host's network (explicit opt-in) */
    char *seccomp_path; /* an OCI seccomp JSON instead of the built-in profile */

    /* A hull network by name (docs/network.md): a veth pair into the
     * sandbox's own network namespace, a leased address, a default route,
     * /etc/resolv.conf and /etc/hosts. NULL: loopback only (or the host's
     * network with network_host; not both). */
    char *network;
    /* With network: the egress allow-list as `--egress` writes it ("none",
     * "all", "CIDR[:PORT[/PROTO]],..."); NULL = "all", which never includes
     * the host or the network's other members. */
    char *egress;
    struct hull_publish *publish; /* with network: ports published on the host */
    size_t n_publish;

    int cancel_fd; /* readable = kill the run now (verdict "killed"); -1 = none */
    /* hull_sandbox_run calls this in its supervisor as the program's output
     * arrives (stream 1 stdout, 2 stderr), with the bytes the result keeps
     * (within output_bytes), in order; NULL = none. It must not block. */
    void (*on_output)(void *ctx, int stream, const char *data, size_t len);
    void *on_output_ctx;

    /* An OCI image of the store as the root instead of rootfs (not both):
     * its layers read-only, with the sandbox's own /tmp, /proc and /dev;
     * its Env under env, its WorkingDir unless workdir, and, when argv is
     * empty, its Entrypoint + Cmd (Entrypoint + argv when both are given).
     * docs/sandbox.md, "Images". */
    char *image;      /* a name, "name@sha256:...", a manifest digest or an id prefix */
    char *image_root; /* the store; NULL: $HULL_IMAGE_ROOT, else /var/lib/hull/images */
    enum hull_pull_policy pull;
};
HULL_PUBLIC void hull_policy_init(struct hull_policy *p);
HULL_PUBLIC void hull_policy_free(struct hull_policy *p);
/* Append to argv / env (copies); 0, or -1 when out of memory. */
HULL_PUBLIC int hull_policy_add_arg(struct hull_policy *p, const char *arg);
HULL_PUBLIC int hull_policy_add_env(struct hull_policy *p, const char *key_value);
/* Check a policy: every limit in range, paths sane. Errors name the field. */
HULL_PUBLIC int hull_policy_validate(const struct hull_policy *p, hull_error *err);
/* The REST API's run request: {"cmd": [...], "limits": {...}, ...} ("cmd"
 * may be left out when "image" names one; the store is not part of a
 * request: image_root stays the caller's); errors
 * name the full JSON path ("limits.memory"). Fields absent keep their
 * defaults; unknown fields are refused. Durations and sizes follow
 * hull_json_duration_ms / hull_json_size. */
HULL_PUBLIC int hull_policy_from_json(const char *json, size_t len, struct hull_policy *p,
                                      hull_error *err);
/* The API's one rule for every duration and size: a string with a unit
 * ("2s", "500ms", "10m", "1h"; "256M", "1GiB", "512B") or a bare number,
 * as a JSON number or a string, of SECONDS (fractions allowed) or BYTES
 * (whole). path names the value in errors ("limits.cpu_time"). */
struct json_object;
HULL_PUBLIC int hull_json_duration_ms(struct json_object *v, const char *path, uint64_t *ms,
                                      hull_error *err);
HULL_PUBLIC int hull_json_size(struct json_object *v, const char *path, uint64_t *bytes,
                               hull_error *err);
/* "2s", "500ms", "1m", "2" (seconds) -> ms; "256M", "1GiB", "512B",
 * "1048576" -> bytes (binary units). -1 for anything else, *out untouched. */
HULL_PUBLIC int hull_parse_duration_ms(const char *s, uint64_t *ms);
HULL_PUBLIC int hull_parse_size(const char *s, uint64_t *bytes);

enum hull_verdict {
    HULL_VERDICT_OK,
    HULL_VERDICT_EXIT_NONZERO,
    HULL_VERDICT_SIGNALED,
    HULL_VERDICT_CPU_TIME_LIMIT,
    HULL_VERDICT_WALL_TIME_LIMIT,
    HULL_VERDICT_MEMORY_LIMIT,
    HULL_VERDICT_OUTPUT_LIMIT,
    HULL_VERDICT_PIDS_LIMIT,
    HULL_VERDICT_INTERNAL_ERROR,
    HULL_VERDICT_KILLED,      /* stopped from outside (cancel_fd) */
    HULL_VERDICT_BAD_COMMAND, /* the program could not be started (HULL_ENOCMD, HULL_ECMDEXEC,
                                 HULL_ECWD) */
};
HULL_PUBLIC const char *hull_verdict_name(enum hull_verdict v);

struct hull_output {
    char *data;
    size_t len;
    bool truncated;
};

/* What became of one copy-out. */
enum hull_copy_status {
    HULL_COPY_OK,        /* copied whole */
    HULL_COPY_MISSING,   /* the program did not leave it there */
    HULL_COPY_TRUNCATED, /* cut where copy_out_max was reached */
    HULL_COPY_REFUSED,   /* not copied: not a plain file of /tmp, or over copy_out_max */
    HULL_COPY_FAILED,    /* the host side failed (target directory, disk) */
};
HULL_PUBLIC const char *hull_copy_status_name(enum hull_copy_status s);

struct hull_copied_file {
    char *sandbox;
    char *host;
    enum hull_copy_status status;
    uint64_t size;  /* length of the host file (holes included) */
    uint64_t bytes; /* data written to the host (holes are not) */
    char *error;    /* why it was not copied whole, or NULL */
};

struct hull_result {
    enum hull_verdict verdict;
    int exit_code; /* when the program exited; bad_command: 127 not found, else 126 */
    int signal;    /* when a signal ended it */
    uint64_t cpu_time_ms, wall_time_ms, max_memory_kb;
    struct hull_output out, err;
    struct hull_copied_file *files;
    size_t n_files;
    char *error; /* for internal_error and bad_command: what went wrong */
    enum hull_isolation isolation;
    /* The image the run was rooted in (policy.image), else NULL: its name
     * in the store and the manifest digest actually used. */
    char *image, *image_digest;
};
HULL_PUBLIC void hull_result_free(struct hull_result *r);
/* The result as one JSON object (the same everywhere: CLI --json, REST API). */
HULL_PUBLIC char *hull_result_to_json(const struct hull_result *r);

/* Remove what sandboxes left when their supervisor died (SIGKILL, crash):
 * state, cgroups, any process still in them. Runs whose supervisor lives are
 * not touched. *removed counts what was cleaned. */
HULL_PUBLIC int hull_sandbox_cleanup(size_t *removed, hull_error *err);

/* The built-in seccomp profile as OCI JSON (a start for --seccomp FILE). */
HULL_PUBLIC char *hull_sandbox_seccomp_profile_json(void);

/* `hull sandbox netpool`: keep size fresh network namespaces ready and
 * hand each to exactly one sandbox run that asks on socket_path (NULL: the
 * default, where runs look), until SIGINT/SIGTERM/SIGHUP. Host root only.
 * Prints one line on stdout once the pool is full. */
HULL_PUBLIC int hull_sandbox_netpool_serve(const char *socket_path, unsigned size, hull_error *err);

/* Run one policy to completion. Returns 0 when the run happened (whatever
 * its verdict, which may be internal_error with r->error set); -1 only for
 * bad input, with nothing created.
 *
 * Threads: like every call here that starts a container, this forks with a
 * raw clone(2), which skips glibc's fork handlers; call it from a
 * single-threaded process (hulld forks a worker per run). SIGCHLD must not
 * be ignored (SIG_IGN), or the supervisor could not wait for the sandbox. */
HULL_PUBLIC int hull_sandbox_run(const struct hull_policy *p, struct hull_result *r,
                                 hull_error *err);

/* ---- long-lived sandboxes (hulld's POST /v1/sandboxes) ------------------ */

/* A sandbox that stays up between commands: a container with the same
 * layout and isolation as a run of the policy, whose init only idles (and
 * reaps). Like hull_sandbox_run, call these from a single-threaded process:
 * the sandbox dies with the process that created it. */
struct hull_session;
/* p: isolation, limits (memory, pids, cpus, tmp_size, open_files), env,
 * network, image (its root; its Env under env; its WorkingDir the execs'
 * default; it needs /bin/sh); p->argv is ignored; p->files are written to
 * /tmp. */
HULL_PUBLIC int hull_session_create(const struct hull_policy *p, struct hull_session **out,
                                    hull_error *err);
/* The container's id under the sandbox state root (for hull_sandbox_usage). */
HULL_PUBLIC const char *hull_session_id(const struct hull_session *s);
/* Run p->argv in it (its namespaces, cgroup, seccomp filter, user) with
 * p's stdin, env, workdir, cpu_time, wall_time and output limits and
 * cancel_fd; the result as for a run. 0 when it ran (any verdict). */
HULL_PUBLIC int hull_session_exec(struct hull_session *s, const struct hull_policy *p,
                                  struct hull_result *r, hull_error *err);
/* A command started in the sandbox and left running for the caller to
 * supervise (hulld's background processes): confined like an exec. */
struct hull_session_proc {
    pid_t pid; /* the caller's child: reap it with wait4 */
    int pidfd; /* readable once it exited, or -1 */
    int in;    /* its stdin: a pipe or the pty's master; -1 when /dev/null */
    int out;   /* its stdout pipe, or the pty's master (another fd than in) */
    int err;   /* its stderr pipe; -1 with a pty */
    uint64_t start_ns;
    uint64_t oom_before, pids_before; /* the sandbox's limit events at its start */
};
/* How the caller stopped it, for the verdict. */
enum { HULL_STOP_NONE, HULL_STOP_WALL, HULL_STOP_OUTPUT, HULL_STOP_CANCEL };
/* p: argv, env, workdir, cpu_time (wall_time and output are the caller's
 * to watch). with_stdin: a pipe, else /dev/null. rows and cols non-zero: a
 * pty of that size as its stdin, stdout, stderr and controlling terminal;
 * only the terminal's end is in the sandbox, the master stays ours. */
HULL_PUBLIC int hull_session_spawn(struct hull_session *s, const struct hull_policy *p,
                                   bool with_stdin, unsigned rows, unsigned cols,
                                   struct hull_session_proc *out, hull_error *err);
/* Its result once reaped: status from wait4, cpu and max rss from its
 * rusage, stop a HULL_STOP_*; no output (the caller kept it). */
HULL_PUBLIC void hull_session_proc_result(struct hull_session *s, const struct hull_policy *p,
                                          const struct hull_session_proc *sp, int status,
                                          uint64_t cpu_ms, uint64_t maxrss_kb, int stop,
                                          struct hull_result *r);
/* Close our ends (not the pidfd). */
HULL_PUBLIC void hull_session_proc_close(struct hull_session_proc *sp);
/* Files under the sandbox's /tmp ("x/y" or "/tmp/x/y"). Never follows a
 * symlink out of /tmp (EXDEV); only regular files. put creates missing
 * directories, owned by the sandbox's user like the file. */
HULL_PUBLIC int hull_session_put_file(struct hull_session *s, const char *path, const void *data,
                                      size_t len, unsigned mode, hull_error *err);
/* At most max bytes (EFBIG beyond). *data is malloc'd. */
HULL_PUBLIC int hull_session_get_file(struct hull_session *s, const char *path, size_t max,
                                      char **data, size_t *len, hull_error *err);
/* The file API (src/lib/sandbox/session_fs.c): each verb runs in a child
 * that joined the sandbox's net, IPC, UTS, user and mount namespaces as its user, without
 * capabilities, paths resolved in its root (openat2 RESOLVE_IN_ROOT |
 * RESOLVE_NO_MAGICLINKS), the last component never followed; no ".."
 * (EINVAL); fds come back for streaming. */
enum hull_fs_verb {
    HULL_FS_STAT,      /* -> entry */
    HULL_FS_LIST,      /* -> {"entries": [...], "truncated"?} */
    HULL_FS_MKDIR,     /* mkdir -p -> entry */
    HULL_FS_RENAME,    /* path -> to -> entry of to */
    HULL_FS_REMOVE,    /* -> {"path", "removed": true} */
    HULL_FS_READ,      /* -> {"size"}, *fd_out the file (O_RDONLY) */
    HULL_FS_WRITE,     /* -> {"limit"}, *fd_out an unnamed file beside path (O_TMPFILE) */
    HULL_FS_COMMIT,    /* fd: WRITE's file, linked in as path -> entry */
    HULL_FS_WATCH,     /* -> {"watches": [{"wd","path"}]}, *fd_out an inotify fd */
    HULL_FS_WATCH_ADD, /* fd: WATCH's inotify fd; path's directory (and below) added */
    HULL_FS_RESERVE,   /* fd: WRITE's file, made size bytes long by the sandbox -> {"size"} */
};

struct hull_fs_op {
    enum hull_fs_verb verb;
    const char *path; /* absolute, inside the sandbox */
    const char *to;   /* RENAME */
    unsigned depth;   /* LIST (1: the directory's own entries) */
    bool recursive;   /* REMOVE, WATCH, WATCH_ADD */
    unsigned mode;    /* WRITE, MKDIR; 0: 0644 / 0755 */
    uint64_t size;    /* WRITE: the declared length, or 0 when unknown; RESERVE: the length */
    int fd;           /* COMMIT, WATCH_ADD; else -1 */
};

/* The verb named (stat, list, mkdir, rename, remove, read, write, commit,
 * watch, watch_add, reserve); -1 when unknown. */
HULL_PUBLIC int hull_fs_verb_parse(const char *name);

/* Run op inside sandbox s. *out: the answer (the caller puts it); *fd_out:
 * the fd the verb gives, or -1. Errors carry the errno the kernel gave in
 * the sandbox (ENOENT, EACCES, EISDIR, ENOSPC, ...). */
HULL_PUBLIC int hull_session_fs(struct hull_session *s, const struct hull_fs_op *op,
                                struct json_object **out, int *fd_out, hull_error *err);

/* Templates (session_template.c): the sandbox's /tmp copied into the host
 * directory dirfd (empty), frozen meanwhile when it has a cgroup, at most
 * max_bytes of data and entries (EFBIG beyond); only directories, regular
 * files (their data extents) and symlinks (as links), set-id bits dropped;
 * and such a copy loaded into a new sandbox's /tmp as its user. */
struct hull_tmp_stats {
    uint64_t bytes, files, dirs, symlinks, skipped;
};
HULL_PUBLIC int hull_session_save_tmp(struct hull_session *s, int dirfd, uint64_t max_bytes,
                                      struct hull_tmp_stats *st, hull_error *err);
HULL_PUBLIC int hull_session_load_tmp(struct hull_session *s, int dirfd, struct hull_tmp_stats *st,
                                      hull_error *err);

/* Freeze / thaw every process in it (cgroup freezer; ENOTSUP at process level). */
HULL_PUBLIC int hull_session_pause(struct hull_session *s, hull_error *err);
HULL_PUBLIC int hull_session_resume(struct hull_session *s, hull_error *err);
/* A TCP socket (family AF_INET or AF_INET6, non-blocking, close-on-exec)
 * made in the sandbox's network namespace, not connected: *fd_out for the
 * caller to connect to one of the sandbox's ports on its loopback (hulld's
 * ports). EPERM when the sandbox shares the host's network. Call from a
 * single-threaded process (it enters the namespace and comes back). */
HULL_PUBLIC int hull_session_socket(struct hull_session *s, int family, int *fd_out,
                                    hull_error *err);

/* The init still runs. */
HULL_PUBLIC bool hull_session_alive(struct hull_session *s);
/* Kill everything in it, remove its cgroup and state, free s. */
HULL_PUBLIC void hull_session_destroy(struct hull_session *s);
/* CPU time and memory in use of a sandbox or run by its container id, read
 * from its cgroup (any thread, any process). */
HULL_PUBLIC int hull_sandbox_usage(const char *id, uint64_t *cpu_ns, uint64_t *memory_bytes,
                                   hull_error *err);
/* What a sandbox or run uses now, by its container id (any thread, any
 * process; hulld's per-sandbox metrics). A has_* flag false: not measured
 * (no cgroup at process isolation, no network of its own). */
struct hull_sandbox_stats {
    bool has_cgroup;
    uint64_t cpu_ns, memory_bytes, memory_peak_bytes; /* memory_peak: 0 where the kernel has none */
    bool has_disk;
    uint64_t disk_bytes; /* used on its writable tmpfs mounts (/tmp, /dev/shm) */
    bool has_net;
    uint64_t net_rx_bytes, net_tx_bytes; /* its network namespace's interfaces but lo */
};
HULL_PUBLIC int hull_sandbox_stats(const char *id, struct hull_sandbox_stats *st, hull_error *err);

/* ---- the job queue (Redis; docs/queue.md) -------------------------------- */

/* Enqueue a run request (the JSON of hull_policy_from_json) for `hulld
 * --worker`s to run. The queue's own optional fields are taken out of it:
 * "max_attempts" (1-100), "tenant" and "run_id" (kept with the job for
 * operators). Validated first: a bad request is an error naming the field
 * and enqueues nothing.
 * *job_id (caller frees) is 32 hex digits. redis_url: redis://HOST[:PORT][/DB]. */
HULL_PUBLIC int hull_queue_submit(const char *redis_url, const char *job_json, char **job_id,
                                  hull_error *err);
/* 0 with *result_json (hull_result_to_json text, caller frees) once the
 * job ran; 0 with *result_json NULL while it is queued or running; a job
 * given up on (dead-lettered: its workers kept dying, or its request was
 * bad) reads as verdict internal_error with "error" saying why. -1 with
 * code ENOENT for an unknown or expired job id, ECANCELED for a job
 * cancelled before it ran. */
HULL_PUBLIC int hull_queue_result(const char *redis_url, const char *job_id, char **result_json,
                                  hull_error *err);
/* Take a job out of the queue if no worker has taken it yet: 1 when it was
 * (it will never run), 0 when it is already running or done. A running one
 * is asked to stop: its worker kills it at its next heartbeat, and its
 * result (verdict "killed") is stored as any job's. */
HULL_PUBLIC int hull_queue_cancel(const char *redis_url, const char *job_id, hull_error *err);

#ifdef __cplusplus
}
#endif

/* The microVM part of the API. */
#include "hull_vm.h"

#endif
