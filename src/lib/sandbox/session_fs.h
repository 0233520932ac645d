/* The file API of a long-lived sandbox (session_fs.c, session_fs_ops.c).
 *
 * Every operation runs in a short-lived child of the sandbox's supervisor
 * that joined the sandbox's user and mount namespaces and became the
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

#include "hull.h"

/* At most this many entries in one list answer ("truncated": true). */
#define HULL_FS_LIST_MAX 10000
/* A list's depth, and a recursive watch's, at most. */
#define HULL_FS_DEPTH_MAX 32
/* Directories one recursive watch adds at most. */
#define HULL_FS_WATCH_DIRS_MAX 4096

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
int hull_fs_verb_parse(const char *name);

/* Run op inside sandbox s. *out: the answer (the caller puts it); *fd_out:
 * the fd the verb gives, or -1. Errors carry the errno the kernel gave in
 * the sandbox (ENOENT, EACCES, EISDIR, ENOSPC, ...). */
int hull_session_fs(struct hull_session *s, const struct hull_fs_op *op, json_object **out,
                    int *fd_out, hull_error *err);

/* session_fs_ops.c: the verbs, in the child (root: the sandbox's "/";
 * procfd: this process's /proc/self/fd, opened before entering). */
int hull_fs_do(const struct hull_fs_op *op, int root, int procfd, json_object **out, int *fd_out,
               hull_error *err);

#endif
