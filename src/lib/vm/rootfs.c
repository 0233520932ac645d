/* Workload root filesystems: a directory made into a read-only squashfs
 * image (virtio-blk in the guest, under a tmpfs overlay for writes).
 *
 * Images are cached by a digest of the directory's metadata (every path,
 * type, mode, owner, size, mtime and symlink target), so an unchanged
 * directory is not re-imaged and a changed one never reuses a stale image.
 * The image's own sha256 is what attestation and snapshots record.
 *
 * The default rootfs mirrors what the container sandbox shows a workload of
 * the host: busybox for a shell and the usual tools, and the host's python3
 * with its standard library and the shared libraries it loads, at the
 * host's paths. It is assembled without copying: a child in a private mount
 * namespace bind-mounts those host files into an empty skeleton and runs
 * mksquashfs over it.
 */
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <limits.h>
#include <openssl/evp.h>
#include <sched.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "util/error.h"
#include "util/sha256.h"
#include "util/fs.h"
#include "util/json.h"
#include "util/log.h"
#include "vm/vm.h"

#define ROOTFS_FORMAT "hull-rootfs-2 squashfs lz4"

static EVP_MD_CTX *walk_ctx;

/* What changes when a file does: type and mode, owner, size, inode (a
 * package upgrade renames a new file into place), mtime and ctime (a
 * rewrite in place); for a symlink, its target. */
static int stat_text(const char *path, const struct stat *st, char *out, size_t len)
{
    int n = snprintf(out, len, "%s\t%o\t%u\t%u\t%lld\t%llu\t%lld.%09ld\t%lld.%09ld\t", path,
                     st->st_mode, st->st_uid, st->st_gid, (long long)st->st_size,
                     (unsigned long long)st->st_ino, (long long)st->st_mtim.tv_sec,
                     st->st_mtim.tv_nsec, (long long)st->st_ctim.tv_sec, st->st_ctim.tv_nsec);
    if (n < 0 || (size_t)n >= len)
        return -1;
    if (S_ISLNK(st->st_mode)) {
        ssize_t l = readlink(path, out + n, len - (size_t)n - 1);
        if (l > 0)
            n += (int)l;
        out[n] = 0;
    }
    return n;
}

static int walk_one(const char *path, const struct stat *st, int type, struct FTW *ftw)
{
    char line[2 * PATH_MAX + 256];
    int n = stat_text(path, st, line, sizeof(line));
    if (n > 0)
        EVP_DigestUpdate(walk_ctx, line, (size_t)n);
    /* A symlink named as a root (a library ldd found) stands for what it
     * points to too: the bind mount that puts it in the image follows it. */
    struct stat target;
    if (type == FTW_F && S_ISLNK(st->st_mode) && stat(path, &target) == 0 &&
        (n = stat_text(path, &target, line, sizeof(line))) > 0)
        EVP_DigestUpdate(walk_ctx, line, (size_t)n);
    EVP_DigestUpdate(walk_ctx, "\n", 1);
    (void)ftw;
    return 0;
}

/* Digest of the metadata of trees and files, after a format string (the
 * default rootfs's names hull's version: its skeleton is hull's). */
static int tree_key(const char *format, const char *const *roots, size_t nroots,
                    char key[HULL_SHA256_HEX], hull_error *err)
{
    walk_ctx = EVP_MD_CTX_new();
    EVP_DigestInit_ex(walk_ctx, EVP_sha256(), NULL);
    EVP_DigestUpdate(walk_ctx, format, strlen(format));
    int rc = 0;
    for (size_t i = 0; i < nroots && !rc; i++) {
        struct stat st;
        if (lstat(roots[i], &st) < 0) {
            rc = hull_error_errno(err, "rootfs %s", roots[i]);
            break;
        }
        if (S_ISDIR(st.st_mode)) {
            if (nftw(roots[i], walk_one, 64, FTW_PHYS | FTW_MOUNT) < 0)
                rc = hull_error_errno(err, "rootfs: walk %s", roots[i]);
        } else
            walk_one(roots[i], &st, FTW_F, NULL);
    }
    unsigned char md[32];
    EVP_DigestFinal_ex(walk_ctx, md, NULL);
    EVP_MD_CTX_free(walk_ctx);
    walk_ctx = NULL;
    hull_sha256_to_hex(md, key);
    return rc;
}

/* mksquashfs SRC DST; stderr kept for the error message. */
int vm_mksquashfs(const char *src, const char *dst, bool root_time_zero, hull_error *err)
{
    char errfile[] = "/tmp/hull-mksquashfs-XXXXXX";
    int efd = mkstemp(errfile);
    if (efd < 0)
        return hull_error_errno(err, "mkstemp");
    unlink(errfile);
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
    posix_spawn_file_actions_addopen(&fa, 1, "/dev/null", O_WRONLY, 0);
    posix_spawn_file_actions_adddup2(&fa, efd, 2);
    char *argv[] = {"mksquashfs",   (char *)src, (char *)dst, "-noappend",  "-quiet",
                    "-no-progress", "-comp",     "lz4",       "-mkfs-time", "0",
                    "-no-xattrs",   NULL,        NULL,        NULL};
    if (root_time_zero) {
        argv[11] = "-root-time";
        argv[12] = "0";
    }
    pid_t pid;
    extern char **environ;
    int r = posix_spawnp(&pid, "mksquashfs", &fa, NULL, argv, environ);
    posix_spawn_file_actions_destroy(&fa);
    if (r) {
        close(efd);
        return hull_error_set(err, r,
                              "run mksquashfs (install squashfs-tools: scripts/deps.sh vm)");
    }
    int st;
    while (waitpid(pid, &st, 0) < 0 && errno == EINTR)
        ;
    if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) {
        char msg[512] = "";
        ssize_t n = pread(efd, msg, sizeof(msg) - 1, 0);
        msg[n > 0 ? n : 0] = 0;
        msg[strcspn(msg, "\n")] = 0;
        close(efd);
        return hull_error_set(err, EIO, "mksquashfs %s: %s", src, msg[0] ? msg : "failed");
    }
    close(efd);
    return 0;
}

/* The default rootfs's host files: python3 and what ldd says it loads. */
static int default_sources(char ***out, size_t *n, hull_error *err)
{
    char py[PATH_MAX];
    if (!realpath("/usr/bin/python3", py))
        py[0] = 0;
    size_t cap = 256, cnt = 0;
    char **v = calloc(cap, sizeof(char *));
    v[cnt++] = strdup("/bin/busybox");
    if (access("/bin/busybox", X_OK) < 0) {
        free(v[0]);
        free(v);
        return hull_error_set(err, ENOENT,
                              "default rootfs: /bin/busybox missing (install busybox-static)");
    }
    if (py[0]) {
        char cmd[PATH_MAX * 2];
        snprintf(cmd, sizeof(cmd), "ldd %s /usr/lib/python3*/lib-dynload/*.so 2>/dev/null", py);
        FILE *f = popen(cmd, "re");
        char line[PATH_MAX];
        v[cnt++] = strdup(py);
        v[cnt++] = strdup("/usr/bin/python3");
        while (f && fgets(line, sizeof(line), f)) {
            char *p = strchr(line, '/');
            if (!p || strstr(line, ":") == line + strlen(line) - 2)
                continue;
            p[strcspn(p, " \n")] = 0;
            bool dup = false;
            for (size_t i = 0; i < cnt && !dup; i++)
                dup = strcmp(v[i], p) == 0;
            if (dup || access(p, R_OK) < 0 || strstr(p, "lib-dynload"))
                continue;
            if (cnt + 2 >= cap)
                v = realloc(v, (cap *= 2) * sizeof(char *));
            v[cnt++] = strdup(p);
        }
        if (f)
            pclose(f);
        char lib[PATH_MAX];
        const char *base = strrchr(py, '/') + 1;
        snprintf(lib, sizeof(lib), "/usr/lib/%s", base);
        if (access(lib, R_OK) == 0)
            v[cnt++] = strdup(lib);
    }
    v[cnt] = NULL;
    *out = v;
    *n = cnt;
    return 0;
}

/* skel/rel into p; false when it does not fit (a cut path is another file). */
static bool skel_path(char p[PATH_MAX], const char *skel, const char *rel)
{
    if (snprintf(p, PATH_MAX, "%s/%s", skel, rel) < PATH_MAX)
        return true;
    errno = ENAMETOOLONG;
    return false;
}

/* In a child with its own mount namespace: skeleton + bind mounts + mksquashfs. */
static int build_default(const char *skel, char **srcs, size_t n, const char *dst, hull_error *err)
{
    char p[PATH_MAX];
    static const char *const dirs[] = {"usr",  "usr/bin", "usr/lib", "usr/lib64", "etc", "tmp",
                                       "root", "proc",    "dev",     "sys",       "home"};
    /* Best effort: a directory that could not be made shows up as a failed
     * write, mount or mksquashfs below. */
    for (size_t i = 0; i < sizeof(dirs) / sizeof(dirs[0]); i++)
        if (skel_path(p, skel, dirs[i]))
            mkdir(p, i == 5 ? 01777 : 0755);
    static const char *const links[][2] = {
        {"bin", "usr/bin"}, {"sbin", "usr/bin"}, {"lib", "usr/lib"}, {"lib64", "usr/lib64"}};
    for (size_t i = 0; i < 4; i++) {
        if (!skel_path(p, skel, links[i][0]) || symlink(links[i][1], p) < 0)
            return hull_error_errno(err, "symlink %s", p);
    }
    static const char passwd[] =
        "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\n";
    static const char group[] = "root:x:0:\nnogroup:x:65534:\n";
    cleanup_close int etc =
        skel_path(p, skel, "etc") ? open(p, O_DIRECTORY | O_RDONLY | O_CLOEXEC) : -1;
    if (etc < 0 || hull_write_file_atomic(etc, "passwd", passwd, strlen(passwd), 0644, err) < 0 ||
        hull_write_file_atomic(etc, "group", group, strlen(group), 0644, err) < 0 ||
        hull_write_file_atomic(etc, "hostname", "hull\n", 5, 0644, err) < 0)
        return etc < 0 ? hull_error_errno(err, "open %s", p) : -1;
    /* busybox applets as symlinks next to it */
    FILE *f = popen("/bin/busybox --list", "re");
    char app[128];
    while (f && fgets(app, sizeof(app), f)) {
        app[strcspn(app, "\n")] = 0;
        if (!app[0] || strchr(app, '/') || strncmp(app, "python", 6) == 0)
            continue;
        char rel[160];
        snprintf(rel, sizeof(rel), "usr/bin/%s", app);
        if (skel_path(p, skel, rel))
            symlink("busybox", p);
    }
    if (f)
        pclose(f);
    /* Host paths under the merged /usr: /lib/x -> usr/lib/x. */
    pid_t pid = fork();
    if (pid < 0)
        return hull_error_errno(err, "fork");
    if (pid == 0) {
        /* Private mount namespace: the bind mounts exist only for mksquashfs
         * and vanish with this child; none can leak to the host. */
        if (unshare(CLONE_NEWNS) < 0 || mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0)
            _exit(120);
        for (size_t i = 0; i < n; i++) {
            const char *s = srcs[i];
            char dstp[PATH_MAX];
            /* Merged /usr: /lib/x and /usr/lib/x both land in usr/lib/x. */
            const char *rel = strncmp(s, "/usr/", 5) == 0 ? s + 5 : s + 1;
            struct stat st;
            if (snprintf(dstp, sizeof(dstp), "%s/usr/%s", skel, rel) >= (int)sizeof(dstp) ||
                stat(s, &st) < 0)
                _exit(121);
            /* create parents and the mount point */
            for (char *q = dstp + strlen(skel) + 1; (q = strchr(q, '/')); q++) {
                *q = 0;
                mkdir(dstp, 0755);
                *q = '/';
            }
            if (S_ISDIR(st.st_mode))
                mkdir(dstp, 0755);
            else {
                unlink(dstp);
                int fd = open(dstp, O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
                if (fd >= 0)
                    close(fd);
            }
            if (mount(s, dstp, NULL, MS_BIND | MS_REC, NULL) < 0)
                _exit(122);
        }
        hull_error e = NULL;
        if (vm_mksquashfs(skel, dst, false, &e) < 0) {
            fprintf(stderr, "hull: %s\n", hull_error_msg(e));
            _exit(123);
        }
        _exit(0);
    }
    int st;
    while (waitpid(pid, &st, 0) < 0 && errno == EINTR)
        ;
    if (!WIFEXITED(st) || WEXITSTATUS(st) != 0)
        return hull_error_set(err, EIO, "build the default rootfs image (step %d)",
                              WIFEXITED(st) ? WEXITSTATUS(st) : -1);
    return 0;
}

/* A bundle (config.json beside a rootfs) means its root.path. */
static int bundle_root(const char *dir, char *out, size_t len, hull_error *err)
{
    char cfg[PATH_MAX];
    snprintf(cfg, sizeof(cfg), "%s/config.json", dir);
    if (access(cfg, F_OK) < 0) {
        snprintf(out, len, "%s", dir);
        return 0;
    }
    json_object *doc = NULL;
    if (hj_parse_file(cfg, &doc, err) < 0)
        return -1;
    json_object *root = hj_get(doc, "root");
    const char *path = root ? json_object_get_string(hj_get(root, "path")) : NULL;
    if (!path)
        path = "rootfs";
    if (path[0] == '/')
        snprintf(out, len, "%s", path);
    else
        snprintf(out, len, "%s/%s", dir, path);
    json_object_put(doc);
    return 0;
}

/* default_sources' NULL-terminated list. */
static void sources_freep(char ***v)
{
    for (char **p = *v; p && *p; p++)
        free(*p);
    free(*v);
}

/* Build the image at tmp: from the directory, or the default rootfs in a
 * skeleton directory of the cache made and removed around it. */
static int build_image(const struct vm_rootfs *out, const char *cache, char **srcs, size_t n,
                       const char *tmp, hull_error *err)
{
    if (out->source[0])
        return vm_mksquashfs(out->source, tmp, false, err);
    char skel[PATH_MAX];
    /* A cut path would be another directory, and it is removed below. */
    if (snprintf(skel, sizeof(skel), "%s/skel.%d", cache, getpid()) >= (int)sizeof(skel))
        return hull_error_set(err, ENAMETOOLONG, "rootfs cache %s: path too long", cache);
    if (mkdir(skel, 0755) < 0)
        return hull_error_errno(err, "mkdir %s", skel);
    int rc = build_default(skel, srcs, n, tmp, err);
    hull_error e = NULL;
    if (hull_rm_rf_at(AT_FDCWD, skel, &e) < 0) {
        /* The image is built or not; a leftover skeleton only takes space. */
        hull_warn("rootfs: remove %s: %s", skel, hull_error_msg(e));
        hull_error_free(&e);
    }
    return rc;
}

/* The default rootfs's file list is what ldd found over python3 and its
 * extension modules: slow (seconds), so it is kept in sources-<probe> and
 * ldd runs again only when it could answer differently. <probe> digests
 * the files whose change can change the answer (python3, its lib-dynload
 * directory, busybox, the loader's cache and configuration) and hull's
 * version; the list also records the image key of the files it names, so
 * a change in any of them (a library upgraded, even under the same name)
 * runs ldd again too, and builds a new image. */
#define SOURCES_FORMAT "hull-rootfs-sources-1 " HULL_VERSION
#define DEFAULT_FORMAT ROOTFS_FORMAT " default " HULL_VERSION

static int probe_key(const char *py, char key[HULL_SHA256_HEX], hull_error *err)
{
    const char *cand[8] = {py, "/usr/bin/python3", "/bin/busybox", "/etc/ld.so.cache",
                           "/etc/ld.so.conf"};
    size_t n = 0, nc = 5;
    char dyn[PATH_MAX];
    const char *base = strrchr(py, '/');
    if (base && snprintf(dyn, sizeof(dyn), "/usr/lib/%s/lib-dynload", base + 1) < (int)sizeof(dyn))
        cand[nc++] = dyn;
    const char *roots[8];
    /* A file that is not there is left out: one appearing changes the key. */
    for (size_t i = 0; i < nc; i++)
        if (cand[i][0] && access(cand[i], F_OK) == 0)
            roots[n++] = cand[i];
    return tree_key(SOURCES_FORMAT, roots, n, key, err);
}

/* sources-<probe>: one path a line, then "key <image key>". 0 and the
 * list, or 1 when there is none (or it is not one). */
static int read_sources(const char *path, char ***out, size_t *n, char key[HULL_SHA256_HEX])
{
    cleanup_free char *text = NULL;
    size_t len;
    if (hull_read_file(path, &text, &len, NULL) < 0)
        return 1; /* not listed yet: ldd runs */
    size_t cap = 8, cnt = 0;
    char **v = calloc(cap, sizeof(char *));
    key[0] = 0;
    for (char *save = NULL, *l = strtok_r(text, "\n", &save); l; l = strtok_r(NULL, "\n", &save)) {
        if (strncmp(l, "key ", 4) == 0) {
            snprintf(key, HULL_SHA256_HEX, "%s", l + 4);
            continue;
        }
        if (cnt + 2 >= cap)
            v = realloc(v, (cap *= 2) * sizeof(char *));
        v[cnt++] = strdup(l);
    }
    v[cnt] = NULL;
    if (!cnt || !hull_sha256_hex_valid(key)) {
        sources_freep(&v);
        return 1;
    }
    *out = v;
    *n = cnt;
    return 0;
}

static int write_sources(const char *path, char **srcs, size_t n, const char *key, hull_error *err)
{
    size_t len = 0;
    for (size_t i = 0; i < n; i++)
        len += strlen(srcs[i]) + 1;
    cleanup_free char *text = malloc(len + 80);
    char *p = text;
    for (size_t i = 0; i < n; i++)
        p += sprintf(p, "%s\n", srcs[i]);
    p += sprintf(p, "key %s\n", key);
    return hull_write_path_atomic(path, text, (size_t)(p - text), 0644, err);
}

/* The image's sha256, kept beside it (as the kernel's vmlinux's is): the
 * cache is root's alone (0700), and the file is never written in place. */
static int image_digest(const char *image, char out[HULL_SHA256_HEX], hull_error *err)
{
    char side[PATH_MAX + 16];
    cleanup_free char *sum = NULL;
    size_t l;
    snprintf(side, sizeof(side), "%s.sha256", image);
    /* A missing or short digest file only means hashing the image again. */
    if (hull_read_file(side, &sum, &l, NULL) == 0 && l >= 64) {
        sum[64] = 0;
        if (hull_sha256_hex_valid(sum)) {
            memcpy(out, sum, HULL_SHA256_HEX);
            return 0;
        }
    }
    if (vm_sha256_file(image, out, err) < 0 || hull_write_path_atomic(side, out, 64, 0644, err) < 0)
        return -1;
    return 0;
}

/* One builder at a time: the others wait and find the list and image made. */
static int cache_lock(const char *cache, hull_error *err)
{
    char p[PATH_MAX + 16];
    snprintf(p, sizeof(p), "%s/build.lock", cache);
    int fd = open(p, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (fd < 0 || flock(fd, LOCK_EX) < 0) {
        hull_error_errno(err, "lock %s", p);
        if (fd >= 0)
            close(fd);
        return -1;
    }
    return fd;
}

/* The default rootfs's sources and image key: from sources-<probe> when
 * nothing it names changed, else from ldd (under the lock) and kept. */
static int default_key(const char *cache, int *lk, char ***srcs, size_t *n,
                       char key[HULL_SHA256_HEX], hull_error *err)
{
    char py[PATH_MAX], probe[HULL_SHA256_HEX], list[PATH_MAX + 96], kept[HULL_SHA256_HEX];
    if (!realpath("/usr/bin/python3", py))
        py[0] = 0;
    if (probe_key(py, probe, err) < 0)
        return -1;
    snprintf(list, sizeof(list), "%s/sources-%s", cache, probe);
    for (int pass = 0; pass < 2; pass++) {
        if (read_sources(list, srcs, n, kept) == 0) {
            if (tree_key(DEFAULT_FORMAT, (const char *const *)*srcs, *n, key, err) < 0)
                return -1;
            if (strcmp(key, kept) == 0)
                return 0;
            sources_freep(srcs);
            *srcs = NULL;
        }
        /* Another hull may be listing them now: wait for it, then look again. */
        if (pass == 0 && (*lk = cache_lock(cache, err)) < 0)
            return -1;
    }
    if (default_sources(srcs, n, err) < 0 ||
        tree_key(DEFAULT_FORMAT, (const char *const *)*srcs, *n, key, err) < 0 ||
        write_sources(list, *srcs, *n, key, err) < 0)
        return -1;
    return 0;
}

int vm_rootfs_prepare(const char *dir, struct vm_rootfs *out, hull_error *err)
{
    memset(out, 0, sizeof(*out));
    char cache[PATH_MAX], key[HULL_SHA256_HEX], tmp[PATH_MAX + 64];
    __attribute__((cleanup(sources_freep))) char **srcs = NULL;
    cleanup_close int lk = -1;
    size_t n = 0;
    if (vm_cache_subdir("rootfs", cache, sizeof(cache), err) < 0)
        return -1;
    if (dir) {
        char src[PATH_MAX];
        struct stat st;
        if (bundle_root(dir, src, sizeof(src), err) < 0)
            return hull_error_prefix(err, "rootfs %s", dir);
        if (!realpath(src, out->source) || stat(out->source, &st) < 0)
            return hull_error_errno(err, "rootfs %s", src);
        if (!S_ISDIR(st.st_mode))
            return hull_error_set(err, ENOTDIR, "rootfs %s: not a directory", src);
        const char *roots[] = {out->source};
        if (tree_key(ROOTFS_FORMAT, roots, 1, key, err) < 0)
            return -1;
    } else if (default_key(cache, &lk, &srcs, &n, key, err) < 0)
        return hull_error_prefix(err, "default rootfs");
    /* A cut path would name another image of the cache. */
    if (snprintf(out->image, sizeof(out->image), "%s/rootfs-%s.sqfs", cache, key) >=
        (int)sizeof(out->image))
        return hull_error_set(err, ENAMETOOLONG, "rootfs cache %s: path too long", cache);
    if (access(out->image, R_OK) < 0) {
        if (lk < 0 && (lk = cache_lock(cache, err)) < 0)
            return -1;
        /* Built by another hull while this one waited for the lock? */
        if (access(out->image, R_OK) < 0) {
            snprintf(tmp, sizeof(tmp), "%s.tmp.%d", out->image, getpid());
            int rc = build_image(out, cache, srcs, n, tmp, err);
            /* The digest beside it first: whoever sees the image sees it too. */
            if (rc == 0 && vm_sha256_file(tmp, out->sha256, err) < 0)
                rc = -1;
            char side[PATH_MAX + 16];
            snprintf(side, sizeof(side), "%s.sha256", out->image);
            if (rc == 0 && hull_write_path_atomic(side, out->sha256, 64, 0644, err) < 0)
                rc = -1;
            if (rc == 0 && rename(tmp, out->image) < 0)
                rc = hull_error_errno(err, "rename %s", out->image);
            if (rc < 0) {
                unlink(tmp);
                return -1;
            }
            return 0;
        }
    }
    return image_digest(out->image, out->sha256, err);
}
