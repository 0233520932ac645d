/* Container state on disk: <root>/<id>/state.json, written atomically under
 * a lock on the container's directory, plus exec.fifo while the container
 * waits for start. Status is derived, not trusted: a recorded pid counts as
 * alive only if a process with that pid and that start time still runs. */
#ifndef HULL_CONTAINER_STATE_H
#define HULL_CONTAINER_STATE_H

#include <json-c/json.h>
#include <stdbool.h>
#include <sys/types.h>

#include "hull.h"

struct hull_cstate {
    char *id;
    char *oci_version;
    char *bundle;
    char *rootfs;
    char *created;
    char *owner;
    bool creating; /* setup not finished (or crashed during it) */
    pid_t pid;
    unsigned long long pid_start; /* /proc/PID/stat starttime */
    char **annotations;
    json_object *config; /* the spec as created (hooks, process defaults for exec) */
    json_object *cgroup; /* hull_cgroup_save() */
    /* No mount namespace of its own: the id of the mount at the rootfs before
     * hull bound the rootfs on itself (0: no such bind). Delete detaches
     * whatever is stacked above it. */
    uint64_t host_mount_below;
    /* Not stored: there is no state directory (hull_setup_opts.no_state). */
    bool stateless;
};

void hull_cstate_free(struct hull_cstate *s);
/* Freed on scope exit; the variable must start zeroed ({0}) or be read. */
#define cleanup_cstate __attribute__((cleanup(hull_cstate_free)))

/* Open (or create, failing with EEXIST) <root>/<id>; returns a locked dir fd.
 * The root itself is created 0700 when missing. */
int hull_cstate_open(const char *root, const char *id, bool create, int *dirfd, hull_error *err);
int hull_cstate_write(int dirfd, const struct hull_cstate *s, hull_error *err);
/* hull_cstate_write in two steps (hull_write_file_stage): the record
 * written aside now, put in place by hull_cstate_commit later. */
int hull_cstate_stage(int dirfd, const struct hull_cstate *s, hull_error *err);
int hull_cstate_commit(int dirfd, hull_error *err);
/* The JSON hull_cstate_write writes (malloc'd; NULL when out of memory),
 * and the write (or, with stage, the staging) of such a text. */
char *hull_cstate_text(const struct hull_cstate *s);
int hull_cstate_write_text(int dirfd, const char *text, bool stage, hull_error *err);
/* ENOENT in *err when state.json is missing (a crash before the first write). */
int hull_cstate_read(int dirfd, struct hull_cstate *s, hull_error *err);
/* The same, except that when state.json holds exactly the text known (what
 * the caller wrote last, still unchanged), *same is set and s is left
 * zeroed: the caller's own record is the file's, nothing is parsed. */
int hull_cstate_read_known(int dirfd, const char *known, struct hull_cstate *s, bool *same,
                           hull_error *err);
/* Remove <root>/<id> and everything in it. */
int hull_cstate_remove(const char *root, const char *id, hull_error *err);

/* Derive the OCI status. frozen is asked of the cgroup by the caller. */
enum hull_status hull_cstate_status(int dirfd, const struct hull_cstate *s, bool frozen);

#define HULL_EXEC_FIFO "exec.fifo"
/* Why the init died after `create` returned, for `start` to report. */
#define HULL_EXEC_ERROR "exec.error"

#endif
