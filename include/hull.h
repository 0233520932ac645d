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

#define HULL_VERSION "0.1.0"
/* The newest OCI runtime-spec version hull implements. */
#define HULL_OCI_VERSION "1.2.0"

/* "hull version X\nspec: Y\n..." with the versions of the libraries in use; caller frees. */
char *hull_version_text(void);

/* ---- errors -------------------------------------------------------------- */

struct hull_error_s {
    int code;  /* errno value, 0 when not from a system call */
    char *msg; /* full message, context first */
};
typedef struct hull_error_s *hull_error; /* NULL means "no error" */

void hull_error_free(hull_error *err);
const char *hull_error_msg(hull_error err);
int hull_error_code(hull_error err);

/* ---- OCI containers ------------------------------------------------------- */

/* Where container state lives and how the runtime behaves; one per process. */
struct hull_runtime {
    const char *root;    /* state directory root, default /run/hull */
    bool systemd_cgroup; /* cgroupsPath is "slice:prefix:name" */
};

#define HULL_DEFAULT_ROOT "/run/hull"

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
const char *hull_status_name(enum hull_status s);

struct hull_state {
    char *id;
    char *bundle;
    char *oci_version;
    char *created;  /* RFC 3339 UTC */
    char *owner;    /* user name of the creator, for `list` */
    char *rootfs;   /* absolute rootfs path */
    pid_t pid;      /* init pid in the host's pid namespace; 0 when stopped */
    enum hull_status status;
    char **annotations; /* "key", "value", ..., NULL */
};
void hull_state_free(struct hull_state *s);
/* runc's `state` JSON; caller frees. */
char *hull_state_to_json(const struct hull_state *s, bool pretty);

/* create: set everything up and leave the init process waiting for start. */
int hull_container_create(const struct hull_runtime *rt, const struct hull_create_opts *opts,
                          hull_error *err);
int hull_container_start(const struct hull_runtime *rt, const char *id, hull_error *err);
/* run: create + start. With detach false, waits for the container, relays
 * signals to it, deletes it, and stores its exit status in *exit_status
 * (128+N for a signal, as a shell reports it). */
int hull_container_run(const struct hull_runtime *rt, const struct hull_create_opts *opts,
                       bool detach, int *exit_status, hull_error *err);
int hull_container_kill(const struct hull_runtime *rt, const char *id, int signo, bool all,
                        hull_error *err);
int hull_container_delete(const struct hull_runtime *rt, const char *id, bool force,
                          hull_error *err);
int hull_container_state(const struct hull_runtime *rt, const char *id, struct hull_state *out,
                         hull_error *err);
int hull_container_list(const struct hull_runtime *rt, struct hull_state **out, size_t *count,
                        hull_error *err);

/* A default config.json like `runc spec` (rootless: user namespace mapping
 * the caller); caller frees. */
char *hull_spec_default_json(bool rootless);

/* Parse a signal given as a name ("KILL", "SIGKILL") or number; -1 if unknown. */
int hull_signal_parse(const char *s);

/* A container id is [A-Za-z0-9_.-]+, not "." or "..", at most 255 bytes (NAME_MAX). */
int hull_id_validate(const char *id, hull_error *err);

#ifdef __cplusplus
}
#endif

#endif
