/* COPY and ADD: files of the build context into the mounted image.
 *
 * Sources are resolved beneath the context (hull_resolve_in_root: `..`
 * and symlinks cannot leave it); destinations beneath the mounted image
 * the same way, so a symlink in the image cannot send a write to the host.
 * Inside a copied tree nothing is followed: symlinks are copied as links.
 * Owners are 0:0 (or --chown), modes and times kept. ADD extracts a local
 * tar archive, in a child chrooted to the destination with libarchive's
 * guards on. */
#include <archive.h>
#include <archive_entry.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <fnmatch.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "image/build.h"
#include "image/layers.h"
#include "util/error.h"
#include "util/fs.h"
#include "util/sha256.h"
#include "util/log.h"
#include "util/strv.h"

/* ---- .containerignore ---- */

int build_ignore_load(int context_fd, char ***out, hull_error *err)
{
    *out = NULL;
    cleanup_free char *text = NULL;
    size_t len = 0;
    const char *names[] = {".containerignore", ".dockerignore"};
    for (size_t i = 0; i < 2 && text == NULL; i++) {
        cleanup_close int fd = openat(context_fd, names[i], O_RDONLY | O_CLOEXEC);
        if (fd < 0)
            continue;
        if (hull_read_fd(fd, &text, &len, err) < 0)
            return hull_error_prefix(err, "%s", names[i]);
    }
    if (text == NULL)
        return 0;
    cleanup_strv char **pats = calloc(1, sizeof(char *));
    if (pats == NULL)
        return hull_error_set(err, ENOMEM, "out of memory");
    for (char *line = strtok(text, "\n"); line; line = strtok(NULL, "\n")) {
        while (*line == ' ' || *line == '\t')
            line++;
        size_t n = strlen(line);
        while (n && (line[n - 1] == ' ' || line[n - 1] == '\t' || line[n - 1] == '\r'))
            line[--n] = '\0';
        if (*line == '\0' || *line == '#')
            continue;
        bool neg = *line == '!';
        char *p = line + neg;
        while (*p == '/')
            p++;
        char clean[PATH_MAX];
        cleanup_free char *abs = NULL;
        if (asprintf(&abs, "/%s", p) < 0)
            return hull_error_set(err, ENOMEM, "out of memory");
        if (hull_path_clean(abs, clean, sizeof(clean)) < 0)
            continue;
        cleanup_free char *pat = NULL;
        if (asprintf(&pat, "%s%s", neg ? "!" : "", clean + 1) < 0 ||
            hull_strv_append(&pats, pat) < 0)
            return hull_error_set(err, ENOMEM, "out of memory");
    }
    *out = steal_ptr(&pats);
    return 0;
}

/* The pattern matches rel or one of its parent directories. "**" spans
 * directories. */
static bool pattern_matches(const char *pat, const char *rel)
{
    int flags = strstr(pat, "**") ? 0 : FNM_PATHNAME;
    cleanup_free char *r = strdup(rel);
    if (r == NULL)
        return false;
    for (;;) {
        if (fnmatch(pat, r, flags) == 0)
            return true;
        char *slash = strrchr(r, '/');
        if (slash == NULL)
            return false;
        *slash = '\0';
    }
}

bool build_ignored(char *const *ignore, const char *rel)
{
    bool ignored = false;
    for (size_t i = 0; ignore && ignore[i]; i++) {
        bool neg = ignore[i][0] == '!';
        if (pattern_matches(ignore[i] + neg, rel))
            ignored = !neg; /* the last matching line wins */
    }
    return ignored;
}

/* ---- sources ---- */

struct src {
    char *rel; /* clean, relative to the context ("" for the context itself) */
    int fd;    /* O_PATH, symlinks resolved beneath the context */
    struct stat st;
};

struct srcs {
    struct src *v;
    size_t n;
};

static void srcs_free(struct srcs *s)
{
    for (size_t i = 0; i < s->n; i++) {
        free(s->v[i].rel);
        hull_closep(&s->v[i].fd);
    }
    free(s->v);
}

static int src_add(const struct build_copy *c, struct srcs *s, const char *rel, const char *word,
                   hull_error *err)
{
    if (*rel && build_ignored(c->ignore, rel))
        return hull_error_set(err, ENOENT, "%s: excluded by .containerignore", word);
    int fd = hull_resolve_in_root(c->context_fd, *rel ? rel : ".", 0, err);
    if (fd < 0) {
        int code = hull_error_code(*err);
        hull_error_free(err);
        if (code == EXDEV)
            return hull_error_set(err, EXDEV, "%s: leads outside the build context", word);
        return hull_error_set(err, code, "%s: not in the build context: %s", word, strerror(code));
    }
    struct src *v = realloc(s->v, (s->n + 1) * sizeof(*v));
    if (v == NULL) {
        close(fd);
        return hull_error_set(err, ENOMEM, "out of memory");
    }
    s->v = v;
    v[s->n] = (struct src){.rel = strdup(rel), .fd = fd};
    s->n++;
    if (v[s->n - 1].rel == NULL)
        return hull_error_set(err, ENOMEM, "out of memory");
    if (fstatat(fd, "", &v[s->n - 1].st, AT_EMPTY_PATH) < 0)
        return hull_error_errno(err, "%s", word);
    return 0;
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Names in an O_PATH directory, sorted. */
static int list_dir(int dfd, char ***out, hull_error *err)
{
    *out = NULL;
    int fd = openat(dfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    DIR *d = fd >= 0 ? fdopendir(fd) : NULL;
    if (d == NULL) {
        if (fd >= 0)
            close(fd);
        return hull_error_errno(err, "opendir");
    }
    cleanup_dir DIR *dir = d;
    cleanup_strv char **names = calloc(1, sizeof(char *));
    if (names == NULL)
        return hull_error_set(err, ENOMEM, "out of memory");
    struct dirent *de;
    while ((de = readdir(dir)) != NULL)
        if (strcmp(de->d_name, ".") && strcmp(de->d_name, "..") &&
            hull_strv_append(&names, de->d_name) < 0)
            return hull_error_set(err, ENOMEM, "out of memory");
    qsort(names, hull_strv_len(names), sizeof(char *), cmp_str);
    *out = steal_ptr(&names);
    return 0;
}

/* Each source word: a path or a pattern (wildcards in its last part). */
static int expand_sources(const struct build_copy *c, struct srcs *s, hull_error *err)
{
    memset(s, 0, sizeof(*s));
    for (size_t i = 0; c->sources[i]; i++) {
        const char *w = c->sources[i];
        cleanup_free char *abs = NULL;
        char clean[PATH_MAX];
        if (asprintf(&abs, "/%s", w) < 0)
            return hull_error_set(err, ENOMEM, "out of memory");
        if (hull_path_clean(abs, clean, sizeof(clean)) < 0)
            return hull_error_set(err, EXDEV, "%s: outside the build context", w);
        const char *rel = clean + 1;
        const char *base = strrchr(clean, '/') + 1;
        if (strpbrk(base, "*?[") == NULL) {
            if (src_add(c, s, rel, w, err) < 0)
                return -1;
            continue;
        }
        cleanup_free char *dir = strndup(rel, (size_t)(base - rel));
        if (dir == NULL)
            return hull_error_set(err, ENOMEM, "out of memory");
        if (strpbrk(dir, "*?["))
            return hull_error_set(err, ENOTSUP, "%s: wildcards only in the last part", w);
        cleanup_close int dfd =
            hull_resolve_in_root(c->context_fd, *dir ? dir : ".", HULL_RESOLVE_DIRECTORY, err);
        cleanup_strv char **names = NULL;
        if (dfd < 0 || list_dir(dfd, &names, err) < 0)
            return hull_error_prefix(err, "%s", w);
        size_t before = s->n;
        for (size_t j = 0; names[j]; j++) {
            cleanup_free char *r = NULL;
            if (fnmatch(base, names[j], 0) != 0)
                continue;
            if (asprintf(&r, "%s%s", dir, names[j]) < 0)
                return hull_error_set(err, ENOMEM, "out of memory");
            if (build_ignored(c->ignore, r))
                continue;
            if (src_add(c, s, r, w, err) < 0)
                return -1;
        }
        if (s->n == before)
            return hull_error_set(err, ENOENT, "%s: no file in the build context matches", w);
    }
    return 0;
}

/* ---- the digest of the sources ---- */

static int open_src(int dfd, const char *name, int flags)
{
    char p[32];
    if (*name == '\0')
        return open(hull_fd_path(p, dfd), flags | O_CLOEXEC);
    return openat(dfd, name, flags | O_NOFOLLOW | O_CLOEXEC);
}

static int hash_entry(struct hull_sha256 *h, const struct build_copy *c, int dfd, const char *name,
                      const char *rel, hull_error *err)
{
    struct stat st;
    if (fstatat(dfd, name, &st, AT_SYMLINK_NOFOLLOW | (*name ? 0 : AT_EMPTY_PATH)) < 0)
        return hull_error_errno(err, "%s", rel);
    char head[128];
    int n = snprintf(head, sizeof(head), "%c%o %lld\n",
                     S_ISDIR(st.st_mode)   ? 'd'
                     : S_ISREG(st.st_mode) ? 'f'
                     : S_ISLNK(st.st_mode) ? 'l'
                                           : 'o',
                     (unsigned)(st.st_mode & 07777), (long long)st.st_size);
    hull_sha256_update(h, rel, strlen(rel) + 1);
    hull_sha256_update(h, head, (size_t)n);
    if (S_ISLNK(st.st_mode)) {
        char t[PATH_MAX];
        ssize_t l = readlinkat(dfd, name, t, sizeof(t));
        if (l < 0)
            return hull_error_errno(err, "readlink %s", rel);
        hull_sha256_update(h, t, (size_t)l);
    } else if (S_ISREG(st.st_mode)) {
        cleanup_close int fd = open_src(dfd, name, O_RDONLY);
        if (fd < 0)
            return hull_error_errno(err, "open %s", rel);
        char buf[65536];
        ssize_t r;
        while ((r = read(fd, buf, sizeof(buf))) > 0)
            hull_sha256_update(h, buf, (size_t)r);
        if (r < 0)
            return hull_error_errno(err, "read %s", rel);
    } else if (S_ISDIR(st.st_mode)) {
        cleanup_close int sub =
            *name ? openat(dfd, name, O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC) : dup(dfd);
        cleanup_strv char **names = NULL;
        if (sub < 0 || list_dir(sub, &names, err) < 0)
            return sub < 0 ? hull_error_errno(err, "open %s", rel)
                           : hull_error_prefix(err, "%s", rel);
        for (size_t i = 0; names[i]; i++) {
            cleanup_free char *r = NULL;
            if (asprintf(&r, "%s%s%s", rel, *rel ? "/" : "", names[i]) < 0)
                return hull_error_set(err, ENOMEM, "out of memory");
            if (build_ignored(c->ignore, r))
                continue;
            if (hash_entry(h, c, sub, names[i], r, err) < 0)
                return -1;
        }
    }
    return 0;
}

int build_copy_digest(const struct build_copy *c, char out[65], hull_error *err)
{
    struct srcs s;
    int r = expand_sources(c, &s, err); /* s is freed below either way */
    cleanup_sha256 struct hull_sha256 *h = r == 0 ? hull_sha256_new(err) : NULL;
    if (r == 0 && h == NULL)
        r = -1;
    for (size_t i = 0; r == 0 && i < s.n; i++)
        r = hash_entry(h, c, s.v[i].fd, "", s.v[i].rel, err);
    if (r == 0)
        r = hull_sha256_final(h, out, err);
    srcs_free(&s);
    return r;
}

/* ---- copying ---- */

static mode_t mode_of(const struct build_copy *c, const struct stat *st)
{
    return c->chmod ? (c->chmod & 07777) : (st->st_mode & 07777);
}

/* Make room for a non-directory at ddir/dname: what is there goes, unless
 * it is a directory. */
static int clear_for_file(int ddir, const char *dname, const char *dpath, hull_error *err)
{
    struct stat st;
    if (fstatat(ddir, dname, &st, AT_SYMLINK_NOFOLLOW) < 0)
        return 0;
    if (S_ISDIR(st.st_mode))
        return hull_error_set(err, EISDIR, "%s: a directory is in the way", dpath);
    if (unlinkat(ddir, dname, 0) < 0)
        return hull_error_errno(err, "replace %s", dpath);
    return 0;
}

static int copy_tree(const struct build_copy *c, int sdir, const char *sname, const char *rel,
                     const char *dpath, hull_error *err);

static int copy_dir_contents(const struct build_copy *c, int sfd, const char *rel,
                             const char *dpath, hull_error *err)
{
    cleanup_strv char **names = NULL;
    if (list_dir(sfd, &names, err) < 0)
        return hull_error_prefix(err, "%s", rel);
    for (size_t i = 0; names[i]; i++) {
        cleanup_free char *r = NULL, *d = NULL;
        if (asprintf(&r, "%s%s%s", rel, *rel ? "/" : "", names[i]) < 0 ||
            asprintf(&d, "%s%s%s", dpath, strcmp(dpath, "/") ? "/" : "", names[i]) < 0)
            return hull_error_set(err, ENOMEM, "out of memory");
        if (build_ignored(c->ignore, r))
            continue;
        if (copy_tree(c, sfd, names[i], r, d, err) < 0)
            return -1;
    }
    return 0;
}

/* A directory at dpath in the image (made when missing: its mode and owner
 * are the source's), then its contents. */
static int copy_dir(const struct build_copy *c, int sfd, const struct stat *st, const char *rel,
                    const char *dpath, hull_error *err)
{
    cleanup_hull_error hull_error probe = NULL;
    cleanup_close int existing =
        hull_resolve_in_root(c->root_fd, dpath, HULL_RESOLVE_DIRECTORY, &probe);
    cleanup_close int dfd =
        existing >= 0 ? hull_steal_fd(&existing)
                      : hull_resolve_in_root(c->root_fd, dpath,
                                             HULL_RESOLVE_MKDIR | HULL_RESOLVE_DIRECTORY, err);
    if (dfd < 0)
        return hull_error_prefix(err, "%s", dpath);
    if (probe != NULL) {
        char p[32];
        if (fchownat(dfd, "", c->uid, c->gid, AT_EMPTY_PATH) < 0 ||
            chmod(hull_fd_path(p, dfd), mode_of(c, st)) < 0)
            return hull_error_errno(err, "%s", dpath);
    }
    return copy_dir_contents(c, sfd, rel, dpath, err);
}

static int copy_tree(const struct build_copy *c, int sdir, const char *sname, const char *rel,
                     const char *dpath, hull_error *err)
{
    struct stat st;
    if (fstatat(sdir, sname, &st, AT_SYMLINK_NOFOLLOW | (*sname ? 0 : AT_EMPTY_PATH)) < 0)
        return hull_error_errno(err, "%s", rel);
    if (S_ISDIR(st.st_mode)) {
        cleanup_close int sub =
            *sname ? openat(sdir, sname, O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC) : dup(sdir);
        if (sub < 0)
            return hull_error_errno(err, "open %s", rel);
        return copy_dir(c, sub, &st, rel, dpath, err);
    }
    /* The parent exists (made by the caller); the entry goes beneath it. */
    cleanup_free char *parent = strdup(dpath);
    if (parent == NULL)
        return hull_error_set(err, ENOMEM, "out of memory");
    char *slash = strrchr(parent, '/');
    const char *dname = dpath + (slash - parent) + 1;
    *(slash == parent ? slash + 1 : slash) = '\0';
    cleanup_close int ddir =
        hull_resolve_in_root(c->root_fd, parent, HULL_RESOLVE_MKDIR | HULL_RESOLVE_DIRECTORY, err);
    if (ddir < 0)
        return hull_error_prefix(err, "%s", parent);
    if (clear_for_file(ddir, dname, dpath, err) < 0)
        return -1;
    struct timespec times[2] = {st.st_atim, st.st_mtim};
    if (S_ISLNK(st.st_mode)) {
        char t[PATH_MAX];
        ssize_t l = readlinkat(sdir, sname, t, sizeof(t) - 1);
        if (l < 0)
            return hull_error_errno(err, "readlink %s", rel);
        t[l] = '\0';
        if (symlinkat(t, ddir, dname) < 0 ||
            fchownat(ddir, dname, c->uid, c->gid, AT_SYMLINK_NOFOLLOW) < 0 ||
            utimensat(ddir, dname, times, AT_SYMLINK_NOFOLLOW) < 0)
            return hull_error_errno(err, "symlink %s", dpath);
        return 0;
    }
    if (S_ISFIFO(st.st_mode)) {
        if (mknodat(ddir, dname, S_IFIFO | mode_of(c, &st), 0) < 0 ||
            fchownat(ddir, dname, c->uid, c->gid, AT_SYMLINK_NOFOLLOW) < 0)
            return hull_error_errno(err, "mkfifo %s", dpath);
        return 0;
    }
    if (!S_ISREG(st.st_mode)) {
        hull_warn("COPY: %s: not a file, directory or symlink; skipped", rel);
        return 0;
    }
    cleanup_close int in = open_src(sdir, sname, O_RDONLY);
    cleanup_close int out =
        openat(ddir, dname, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
    if (in < 0 || out < 0)
        return hull_error_errno(err, "%s %s", in < 0 ? "open" : "create", in < 0 ? rel : dpath);
    if (image_layer_copy_data(in, out, rel, err) < 0)
        return -1;
    if (fchown(out, c->uid, c->gid) < 0 || fchmod(out, mode_of(c, &st)) < 0 ||
        futimens(out, times) < 0)
        return hull_error_errno(err, "%s", dpath);
    return 0;
}

/* ---- ADD of a tar archive ---- */

static bool is_archive(int fd)
{
    struct archive *a = archive_read_new();
    if (a == NULL)
        return false;
    archive_read_support_filter_all(a);
    archive_read_support_format_tar(a);
    struct archive_entry *e;
    bool yes = archive_read_open_fd(a, fd, 65536) == ARCHIVE_OK &&
               archive_read_next_header(a, &e) == ARCHIVE_OK;
    archive_read_free(a);
    lseek(fd, 0, SEEK_SET);
    return yes;
}

static __attribute__((noreturn)) void extract_child(int in, int dfd, int msg)
{
    const char *what = "chroot";
    struct archive *a = NULL, *w = NULL;
    if (fchdir(dfd) == 0 && chroot(".") == 0 && chdir("/") == 0) {
        what = "archive";
        a = archive_read_new();
        w = archive_write_disk_new();
    }
    if (a && w) {
        archive_read_support_filter_all(a);
        archive_read_support_format_tar(a);
        archive_write_disk_set_options(
            w, ARCHIVE_EXTRACT_TIME | ARCHIVE_EXTRACT_PERM | ARCHIVE_EXTRACT_OWNER |
                   ARCHIVE_EXTRACT_SECURE_SYMLINKS | ARCHIVE_EXTRACT_SECURE_NODOTDOT |
                   ARCHIVE_EXTRACT_SECURE_NOABSOLUTEPATHS | ARCHIVE_EXTRACT_UNLINK);
        struct archive_entry *e;
        int r = archive_read_open_fd(a, in, 65536);
        while (r == ARCHIVE_OK && (r = archive_read_next_header(a, &e)) == ARCHIVE_OK) {
            r = archive_write_header(w, e);
            const void *buf;
            size_t len;
            int64_t off;
            while (r == ARCHIVE_OK &&
                   (r = archive_read_data_block(a, &buf, &len, &off)) == ARCHIVE_OK)
                if (archive_write_data_block(w, buf, len, off) < ARCHIVE_OK)
                    r = ARCHIVE_FATAL;
            if (r == ARCHIVE_EOF)
                r = archive_write_finish_entry(w);
            if (r < ARCHIVE_OK)
                break;
        }
        if (r == ARCHIVE_EOF && archive_write_close(w) == ARCHIVE_OK)
            _exit(0);
        const char *m = archive_error_string(r < ARCHIVE_OK && archive_errno(w) ? w : a);
        if (m == NULL)
            m = archive_error_string(w);
        dprintf(msg, "%s", m ? m : "archive error");
        _exit(1);
    }
    dprintf(msg, "%s: %s", what, strerror(errno));
    _exit(1);
}

static int extract(int in, int dfd, const char *rel, const char *dpath, hull_error *err)
{
    int p[2];
    if (pipe2(p, O_CLOEXEC) < 0)
        return hull_error_errno(err, "pipe");
    pid_t pid = fork();
    if (pid < 0) {
        close(p[0]);
        close(p[1]);
        return hull_error_errno(err, "fork");
    }
    if (pid == 0) {
        close(p[0]);
        extract_child(in, dfd, p[1]);
    }
    close(p[1]);
    cleanup_free char *msg = NULL;
    size_t len = 0;
    hull_error e = NULL;
    if (hull_read_fd(p[0], &msg, &len, &e) < 0)
        hull_error_free(&e); /* the status below tells */
    close(p[0]);
    int status;
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
        ;
    if (WIFEXITED(status) && WEXITSTATUS(status) == 0)
        return 0;
    return hull_error_set(err, EIO, "ADD %s: extracting into %s: %s", rel, dpath,
                          msg && *msg ? msg : "failed");
}

int build_copy_run(const struct build_copy *c, hull_error *err)
{
    struct srcs s;
    if (expand_sources(c, &s, err) < 0) {
        srcs_free(&s);
        return -1;
    }
    const char *dest = c->dest;
    size_t dl = strlen(dest);
    bool dest_dir = dl && dest[dl - 1] == '/';
    int r = 0;
    for (size_t i = 0; r == 0 && i < s.n; i++) {
        struct src *x = &s.v[i];
        const char *base = strrchr(x->rel, '/') ? strrchr(x->rel, '/') + 1 : x->rel;
        cleanup_free char *clean_dest = strndup(dest, dest_dir && dl > 1 ? dl - 1 : dl);
        if (clean_dest == NULL) {
            r = hull_error_set(err, ENOMEM, "out of memory");
            break;
        }
        if (S_ISREG(x->st.st_mode) && c->add) {
            cleanup_close int in = open_src(x->fd, "", O_RDONLY);
            if (in >= 0 && is_archive(in)) {
                cleanup_close int dfd = hull_resolve_in_root(
                    c->root_fd, clean_dest, HULL_RESOLVE_MKDIR | HULL_RESOLVE_DIRECTORY, err);
                r = dfd < 0 ? hull_error_prefix(err, "%s", clean_dest)
                            : extract(in, dfd, x->rel, clean_dest, err);
                continue;
            }
        }
        if (S_ISDIR(x->st.st_mode)) {
            r = copy_tree(c, x->fd, "", x->rel, clean_dest, err);
            continue;
        }
        /* A file into a directory (named so, or one that is there). */
        cleanup_hull_error hull_error probe = NULL;
        cleanup_close int existing =
            hull_resolve_in_root(c->root_fd, clean_dest, HULL_RESOLVE_DIRECTORY, &probe);
        cleanup_free char *target = NULL;
        if ((dest_dir || existing >= 0)
                ? asprintf(&target, "%s/%s", strcmp(clean_dest, "/") ? clean_dest : "", base) < 0
                : (target = strdup(clean_dest)) == NULL) {
            r = hull_error_set(err, ENOMEM, "out of memory");
            break;
        }
        r = copy_tree(c, x->fd, "", x->rel, target, err);
    }
    srcs_free(&s);
    if (r < 0)
        return hull_error_prefix(err, "%s", c->add ? "ADD" : "COPY");
    return 0;
}
