/* Whether the state directory can be trusted (store.h). hulld.db holds
 * every token's hash, role and tenant, and every tenant's runs: whoever can
 * put a database of their own there (or replace the one there) has an
 * admin token, whoever can read it sees every tenant's output. So, as ssh
 * does for its keys, the store refuses a directory, or a file in it, that
 * another user owns or may change, and a database others may read. */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "service/store.h"
#include "util/error.h"

static bool owner_ok(const struct stat *st)
{
    return st->st_uid == geteuid() || st->st_uid == 0;
}

/* A directory on the way to the one checked (what dir): nobody else may
 * rename what is in it (owned by the caller or root; writable by others
 * only when sticky, as /tmp is). */
static int ancestor_ok(const char *what, const char *path, const char *dir, hull_error *err)
{
    struct stat st;
    if (stat(path, &st) < 0)
        return hull_error_errno(err, "%s %s: %s", what, dir, path);
    if (!owner_ok(&st))
        return hull_error_set(err, EPERM,
                              "%s %s: %s is owned by uid %u, neither the caller (uid %u) nor root",
                              what, dir, path, (unsigned)st.st_uid, (unsigned)geteuid());
    if ((st.st_mode & (S_IWGRP | S_IWOTH)) && !(st.st_mode & S_ISVTX))
        return hull_error_set(err, EPERM, "%s %s: %s may be written by other users (mode %04o)",
                              what, dir, path, (unsigned)(st.st_mode & 07777));
    return 0;
}

int hull_trusted_dir(const char *what, const char *dir, bool sticky_ok, char *real, size_t len,
                     hull_error *err)
{
    char buf[PATH_MAX];
    if (realpath(dir, buf) == NULL)
        return hull_error_errno(err, "%s %s", what, dir);
    if (strlen(buf) >= len)
        return hull_error_set(err, ENAMETOOLONG, "%s %s: path too long", what, dir);
    /* Every directory above it, "/" first. */
    char up[PATH_MAX];
    for (char *p = strchr(buf, '/'); p; p = strchr(p + 1, '/')) {
        size_t n = p == buf ? 1 : (size_t)(p - buf);
        memcpy(up, buf, n);
        up[n] = '\0';
        if (ancestor_ok(what, up, dir, err) < 0)
            return -1;
    }
    if (sticky_ok) {
        if (ancestor_ok(what, buf, dir, err) < 0)
            return -1;
        snprintf(real, len, "%s", buf);
        return 0;
    }
    struct stat st;
    if (stat(buf, &st) < 0)
        return hull_error_errno(err, "%s %s", what, dir);
    if (!owner_ok(&st))
        return hull_error_set(err, EPERM,
                              "%s %s: owned by uid %u, neither the caller (uid %u) nor root", what,
                              dir, (unsigned)st.st_uid, (unsigned)geteuid());
    /* Sticky or not: another user could make a file there before we do. */
    if (st.st_mode & (S_IWGRP | S_IWOTH))
        return hull_error_set(err, EPERM,
                              "%s %s: other users may write to it (mode %04o): chmod 700 %s", what,
                              dir, (unsigned)(st.st_mode & 07777), dir);
    snprintf(real, len, "%s", buf);
    return 0;
}

int hull_store_dir_check(const char *dir, char *real, size_t len, hull_error *err)
{
    return hull_trusted_dir("state directory", dir, false, real, len, err);
}

int hull_store_file_check(const char *path, hull_error *err)
{
    struct stat st;
    if (lstat(path, &st) < 0) {
        if (errno == ENOENT)
            return 0;
        return hull_error_errno(err, "%s", path);
    }
    if (!S_ISREG(st.st_mode))
        return hull_error_set(err, EPERM, "%s: not a regular file (a symbolic link?)", path);
    if (!owner_ok(&st))
        return hull_error_set(err, EPERM,
                              "%s: owned by uid %u, neither the caller (uid %u) nor root", path,
                              (unsigned)st.st_uid, (unsigned)geteuid());
    if (st.st_mode & 077)
        return hull_error_set(err, EPERM,
                              "%s: other users may read or write it (mode %04o): chmod 600 %s",
                              path, (unsigned)(st.st_mode & 07777), path);
    return 0;
}
