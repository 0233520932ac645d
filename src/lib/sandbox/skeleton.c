/* The default sandbox root, built once and shared read-only.
 *
 * Every sandbox of the default layout needs the same root: empty mount
 * points for the host's /usr and libraries, the /bin -> usr/bin links of a
 * merged-/usr host, and the sandbox's /etc/passwd, group and hosts. Making
 * that in a fresh tmpfs for each run cost a mount and a score of creations;
 * instead the supervisor builds it once under EMPTY_ROOT/<digest of its
 * contents>, and each sandbox binds it read-only as its root. Whatever the
 * layout changes (another host directory, another uid) names another
 * directory, so a skeleton is never edited, only created.
 *
 * Built by root in a temporary directory and renamed into place, so no
 * sandbox sees a half-made one; EMPTY_ROOT is root's and not writable by
 * others, so nobody else can have made or changed one.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "sandbox/sandbox.h"
#include "util/error.h"
#include "util/log.h"
#include "util/fs.h"
#include "util/json.h"

struct desc {
    char buf[8192];
    size_t len;
};

static void add(struct desc *d, const char *a, const char *b)
{
    int n = snprintf(d->buf + d->len, sizeof(d->buf) - d->len, "%s\t%s\n", a, b ? b : "");
    if (n > 0 && d->len + (size_t)n < sizeof(d->buf))
        d->len += (size_t)n;
}

static uint64_t fnv1a(const char *s, size_t n)
{
    uint64_t h = 1469598103934665603ull;
    for (size_t i = 0; i < n; i++) {
        h ^= (unsigned char)s[i];
        h *= 1099511628211ull;
    }
    return h;
}

/* Create path (relative, no leading '/') under dirfd, parents too. */
static int make_path(int dirfd, const char *path, bool file, hull_error *err)
{
    cleanup_close int fd =
        hull_resolve_in_root(dirfd, path, file ? HULL_RESOLVE_MKFILE : HULL_RESOLVE_MKDIR, err);
    return fd < 0 ? -1 : 0;
}

static bool is_file_source(json_object *m)
{
    json_object *t = hj_get(m, "type"), *src = hj_get(m, "source");
    struct stat st;
    return t && strcmp(json_object_get_string(t), "bind") == 0 && src &&
           stat(json_object_get_string(src), &st) == 0 && !S_ISDIR(st.st_mode);
}

static int build(int dirfd, json_object *mounts, const struct hull_root_file *files, size_t n,
                 hull_error *err)
{
    for (size_t i = 0; i < json_object_array_length(mounts); i++) {
        json_object *m = json_object_array_get_idx(mounts, i);
        const char *dest = json_object_get_string(hj_get(m, "destination"));
        if (make_path(dirfd, dest, is_file_source(m), err) < 0)
            return -1;
    }
    for (size_t i = 0; i < n; i++) {
        const struct hull_root_file *f = &files[i];
        if (f->after_mounts)
            continue;
        char parent[PATH_MAX];
        snprintf(parent, sizeof(parent), "%s", f->path);
        char *slash = strrchr(parent, '/');
        *slash = '\0';
        cleanup_close int pfd = hull_resolve_in_root(
            dirfd, parent[0] ? parent : "/", HULL_RESOLVE_MKDIR | HULL_RESOLVE_DIRECTORY, err);
        if (pfd < 0)
            return -1;
        const char *name = slash + 1;
        if (f->link) {
            if (symlinkat(f->link, pfd, name) < 0)
                return hull_error_errno(err, "skeleton: symlink %s", f->path);
            continue;
        }
        char fdp[32];
        cleanup_close int dfd = open(hull_fd_path(fdp, pfd), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (dfd < 0 || hull_write_file_replace(dfd, name, f->data, f->len, f->mode, false, err) < 0)
            return dfd < 0 ? hull_error_errno(err, "skeleton: %s", f->path) : -1;
    }
    return 0;
}

int hull_sandbox_skeleton(const char *base, json_object *mounts, const struct hull_root_file *files,
                          size_t n, char *path, size_t len, hull_error *err)
{
    struct desc d = {.len = 0};
    for (size_t i = 0; i < json_object_array_length(mounts); i++) {
        json_object *m = json_object_array_get_idx(mounts, i);
        add(&d, json_object_get_string(hj_get(m, "destination")),
            is_file_source(m) ? "file" : "dir");
    }
    for (size_t i = 0; i < n; i++)
        if (!files[i].after_mounts)
            add(&d, files[i].path, files[i].link ? files[i].link : files[i].data);
    snprintf(path, len, "%s/skel-%016llx", base, (unsigned long long)fnv1a(d.buf, d.len));

    struct stat st;
    if (lstat(path, &st) == 0 && S_ISDIR(st.st_mode) && st.st_uid == 0 && !(st.st_mode & 022))
        return 0;

    char tmp[PATH_MAX];
    snprintf(tmp, sizeof(tmp), "%s/.skel-%d-%llx", base, (int)getpid(),
             (unsigned long long)fnv1a(path, strlen(path)) ^ (unsigned long long)getpid());
    if (mkdir(tmp, 0755) < 0 && errno != EEXIST)
        return hull_error_errno(err, "sandbox skeleton %s", tmp);
    cleanup_close int dirfd = open(tmp, O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    int r = dirfd < 0 ? hull_error_errno(err, "sandbox skeleton %s", tmp)
                      : build(dirfd, mounts, files, n, err);
    if (r == 0 && rename(tmp, path) < 0 && errno != EEXIST && errno != ENOTEMPTY)
        r = hull_error_errno(err, "sandbox skeleton %s", path);
    /* Lost a race with another supervisor (theirs is identical), or failed. */
    hull_error e = NULL;
    if (hull_rm_rf_at(AT_FDCWD, tmp, &e) < 0)
        hull_warn("sandbox skeleton: %s", hull_error_msg(e));
    hull_error_free(&e);
    return r;
}
