/* File helpers: whole-file reads and writes, atomic replacement, and path
 * resolution confined to a root directory (the guard against CVE-2021-30465
 * style symlink races on container rootfs contents). */
#ifndef HULL_UTIL_FS_H
#define HULL_UTIL_FS_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include "hull.h"

/* Read a whole file (NUL-terminated, len excludes the NUL). */
int hull_read_file(const char *path, char **out, size_t *len, hull_error *err);
int hull_read_fd(int fd, char **out, size_t *len, hull_error *err);
/* The same, refusing (EFBIG) a file of more than max bytes, whatever size
 * it claims: only that much plus a read's worth is ever held. */
int hull_read_fd_max(int fd, size_t max, char **out, size_t *len, hull_error *err);
/* path opened for reading without waiting in the open for a FIFO's writer
 * (or a device that waits): O_NONBLOCK for the open only, so reads then
 * block as usual. The fd, or -1 with errno. */
int hull_open_input(const char *path);
/* A file a user named (a config, a --process JSON): at most max bytes (so
 * /dev/zero is refused, not read until memory runs out), not a directory,
 * and a FIFO without a writer reads as empty instead of blocking the open. */
int hull_read_file_max(const char *path, size_t max, char **out, size_t *len, hull_error *err);
/* All n bytes of buf at off (at the file position when off < 0: a pipe, a
 * socket), across short writes and EINTR: 0, or -1 with errno. */
int hull_pwrite_all(int fd, const void *buf, size_t n, off_t off);
/* Up to n bytes into buf, across short reads and EINTR, until end of file
 * or an error: how many it got (errno tells an error from the end). */
size_t hull_read_all(int fd, void *buf, size_t n);
/* Whether the directory path has no entry: 1 empty, 0 not, -1 when it
 * cannot be read (errno). */
int hull_dir_empty(const char *path);
/* len bytes of in from off into out at the same offset (a file shorter than
 * it was ends the copy early, no error). */
int hull_copy_range(int in, int out, off_t off, uint64_t len, hull_error *err);
/* The next data extent of in at or after off and below size: 1 with *data
 * and *len (cut at size), 0 when only holes remain, -1 on error. */
int hull_next_extent(int in, off_t off, off_t size, off_t *data, uint64_t *len, hull_error *err);
int hull_read_file_at(int dirfd, const char *name, char **out, size_t *len, hull_error *err);
/* Write to an existing file, e.g. under /proc or /sys: one write(2) call. */
int hull_write_file(const char *path, const char *data, size_t len, hull_error *err);
int hull_write_file_at(int dirfd, const char *name, const char *data, size_t len, hull_error *err);
/* The same for a file that must be procfs's (/proc/PID/uid_map,
 * /proc/sys/..., /proc/self/attr/exec): opened close-on-exec without
 * following a last-component symlink, then refused with EXDEV unless
 * fstatfs says procfs, so a file or mount shadowing the path (from the
 * container's rootfs or mounts) cannot receive the write. */
int hull_write_proc_file(const char *path, const char *data, size_t len, hull_error *err);
/* Replace dirfd/name atomically: write a temporary, fsync it, rename. A
 * reader sees the old or the new contents, never a torn file, even after a
 * crash of the writer or of the machine. */
int hull_write_file_atomic(int dirfd, const char *name, const char *data, size_t len, mode_t mode,
                           hull_error *err);
/* The same without the fsync when !durable: still never torn for readers
 * or after the writer crashes, but not meant to outlive the machine. */
int hull_write_file_replace(int dirfd, const char *name, const char *data, size_t len, mode_t mode,
                            bool durable, hull_error *err);
/* hull_write_file_replace in two steps, for a writer that knows the
 * contents before they may be seen: stage writes the temporary
 * (".NAME.PID.tmp", the same one), commit renames it over name later.
 * Between the two, name keeps its old contents; a failed commit removes
 * the temporary. The same process must do both. */
int hull_write_file_stage(int dirfd, const char *name, const char *data, size_t len, mode_t mode,
                          bool durable, hull_error *err);
int hull_write_file_commit(int dirfd, const char *name, hull_error *err);
/* Remove the temporaries hull_write_file_replace left in dirfd
 * (".NAME.PID.tmp") when its writer was killed between creating one and the
 * rename, if that PID no longer runs (a PID in use keeps its file: only a
 * leftover is ever removed). Callers hold the lock their directory's writers
 * hold, so no writer is between the two steps. Returns how many went. */
size_t hull_remove_stale_temps(int dirfd);
/* The same for a path. */
int hull_write_path_atomic(const char *path, const char *data, size_t len, mode_t mode,
                           hull_error *err);
/* mkdir -p; existing directories are fine. */
int hull_mkdir_p(const char *path, mode_t mode, hull_error *err);
/* rm -rf of dirfd/name without following symlinks and without leaving the
 * filesystem it starts on. ENOENT is success. */
int hull_rm_rf_at(int dirfd, const char *name, hull_error *err);

enum {
    HULL_RESOLVE_MKDIR = 1 << 0,       /* create missing directories (0755) */
    HULL_RESOLVE_MKFILE = 1 << 1,      /* create the last component as an empty file */
    HULL_RESOLVE_NOFOLLOW = 1 << 2,    /* do not follow a symlink in the last component */
    HULL_RESOLVE_DIRECTORY = 1 << 3,   /* last component must be a directory */
    HULL_RESOLVE_NO_SYMLINKS = 1 << 4, /* a symlink anywhere on the way is an error (ELOOP) */
};

/* Resolve path beneath rootfd, one component at a time, never opening "..":
 * absolute symlinks restart at rootfd, relative ones are spliced in, and a
 * symlink or ".." that climbs above the root is an error (EXDEV), not a
 * silent clamp. Returns an O_PATH fd of the result (or -1 with *err set).
 * Callers act through the fd (/proc/self/fd/N, *at calls), so a component
 * swapped for a symlink after the walk cannot redirect them. */
int hull_resolve_in_root(int rootfd, const char *path, int flags, hull_error *err);

/* Close every fd >= lowest except those in keep (at most 128) (a forked child sheds what
 * its parent had open, e.g. the state lock, before anything else). */
void hull_close_fds_except(int lowest, const int *keep, size_t n);

/* "/proc/self/fd/N" for an fd. */
const char *hull_fd_path(char buf[static 32], int fd);
/* fn(arg) run with the cwd at dirfd, so that relative names it passes to
 * the kernel (overlay layers) resolve there. The cwd is made this thread's
 * own first (unshare CLONE_FS): another thread of a daemon never sees it
 * move. -1 with errno when the cwd cannot be moved or put back; otherwise
 * fn's result, with its errno. */
int hull_call_in_dir(int dirfd, int (*fn)(void *), void *arg);

/* Lexically normalise an absolute path ("//a/./b/../c" -> "/a/c"). Returns -1
 * when ".." would climb above "/". */
int hull_path_clean(const char *in, char *out, size_t outlen);

#endif
