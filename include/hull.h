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
 * that joined the sandbox's user and mount namespaces as its user, without
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
};

struct hull_fs_op {
    enum hull_fs_verb verb;
    const char *path; /* absolute, inside the sandbox */
    const char *to;   /* RENAME */
    unsigned depth;   /* LIST (1: the directory's own entries) */
    bool recursive;   /* REMOVE, WATCH, WATCH_ADD */
    unsigned mode;    /* WRITE, MKDIR; 0: 0644 / 0755 */
    uint64_t size;    /* WRITE: the declared length, or 0 when unknown */
    int fd;           /* COMMIT, WATCH_ADD; else -1 */
};

/* The verb named (stat, list, mkdir, rename, remove, read, write, commit,
 * watch, watch_add); -1 when unknown. */
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
 * (it will never run), 0 when it is already running or done. */
HULL_PUBLIC int hull_queue_cancel(const char *redis_url, const char *job_id, hull_error *err);

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
 * cgroup v2 of its own (and RLIMIT_NOFILE / RLIMIT_CPU); 0 = none. */
struct hull_vm_limits {
    uint64_t cpu_time_ms, wall_time_ms, memory_bytes, pids, output_bytes, open_files;
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
