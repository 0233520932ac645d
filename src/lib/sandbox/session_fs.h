/* The file API of a long-lived sandbox (session_fs.c, session_fs_ops.c).
 *
 * Every operation runs in a short-lived child of the sandbox's supervisor
 * that joined the sandbox's net, IPC, UTS, user and mount namespaces and became the
 * sandbox's user: a path resolves in the sandbox's own mount tree and the
 * kernel applies the sandbox's own permissions, so nothing of the host is
 * reachable whatever the sandbox put on the way. Paths are resolved with
 * openat2(RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS) besides, and the last
 * component is never followed when it is acted on. */
#ifndef HULL_SANDBOX_SESSION_FS_H
#define HULL_SANDBOX_SESSION_FS_H

#include <json-c/json.h>
#include <stdbool.h>
#include <stdint.h>

#include "hull.h" /* struct hull_fs_op, hull_session_fs */

/* At most this many entries in one list answer ("truncated": true), and
 * at most this much of their JSON (well below what an answer may be). */
#define HULL_FS_LIST_MAX   10000
#define HULL_FS_LIST_BYTES (16u << 20)
/* What an upload that does not fit the sandbox's memory is told: a
 * container sandbox's /tmp is a tmpfs charged to its memory cgroup. */
#define HULL_FS_MEMORY_NOTE "the sandbox's memory (limits.memory: its /tmp counts there)"
/* A list's depth, and a recursive watch's, at most. */
#define HULL_FS_DEPTH_MAX 32
/* Directories one recursive watch adds at most. */
#define HULL_FS_WATCH_DIRS_MAX 4096

/* The verb's name ("stat", ...), NULL for none: hull_fs_verb_parse's reverse. */
const char *hull_fs_verb_name(enum hull_fs_verb v);
/* Whether a microVM's agent does v itself in its guest: stat, list, mkdir,
 * rename and remove (data goes by get_file and put_file). */
static inline bool hull_fs_verb_in_guest(int v)
{
    return v >= HULL_FS_STAT && v <= HULL_FS_REMOVE;
}

/* session_fs_ops.c: the verbs, in the child (root: the sandbox's "/";
 * procfd: this process's /proc/self/fd, opened before entering). */
int hull_fs_do(const struct hull_fs_op *op, int root, int procfd, json_object **out, int *fd_out,
               hull_error *err);

#endif
