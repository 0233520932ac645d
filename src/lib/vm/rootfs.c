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

#define ROOTFS_FORMAT "hull-rootfs-1 squashfs lz4"

static EVP_MD_CTX *walk_ctx;

static int walk_one(const char *path, const struct stat *st, int type, struct FTW *ftw)
{
    char line[PATH_MAX + 256];
    int n = snprintf(line, sizeof(line), "%s\t%o\t%u\t%u\t%lld\t%lld.%09ld\t", path, st->st_mode,
                     st->st_uid, st->st_gid, (long long)st->st_size, (long long)st->st_mtim.tv_sec,
                     st->st_mtim.tv_nsec);
    EVP_DigestUpdate(walk_ctx, line, (size_t)n);
    if (type == FTW_SL) {
        char target[PATH_MAX];
        ssize_t l = readlink(path, target, sizeof(target));
        if (l > 0)
            EVP_DigestUpdate(walk_ctx, target, (size_t)l);
    }
    EVP_DigestUpdate(walk_ctx, "\n", 1);
    (void)ftw;
    return 0;
}

/* Digest of a tree's metadata, plus extra bytes (the default rootfs's file list). */
static int tree_key(const char *const *roots, size_t nroots, char key[HULL_SHA256_HEX],
                    hull_error *err)
{
    walk_ctx = EVP_MD_CTX_new();
    EVP_DigestInit_ex(walk_ctx, EVP_sha256(), NULL);
    EVP_DigestUpdate(walk_ctx, ROOTFS_FORMAT, strlen(ROOTFS_FORMAT));
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

int vm_rootfs_prepare(const char *dir, struct vm_rootfs *out, hull_error *err)
{
    memset(out, 0, sizeof(*out));
    char cache[PATH_MAX], key[HULL_SHA256_HEX], tmp[PATH_MAX + 64];
    __attribute__((cleanup(sources_freep))) char **srcs = NULL;
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
        if (tree_key(roots, 1, key, err) < 0)
            return -1;
    } else {
        if (default_sources(&srcs, &n, err) < 0)
            return -1;
        if (tree_key((const char *const *)srcs, n, key, err) < 0)
            return -1;
    }
    /* A cut path would name another image of the cache. */
    if (snprintf(out->image, sizeof(out->image), "%s/rootfs-%s.sqfs", cache, key) >=
        (int)sizeof(out->image))
        return hull_error_set(err, ENAMETOOLONG, "rootfs cache %s: path too long", cache);
    if (access(out->image, R_OK) < 0) {
        snprintf(tmp, sizeof(tmp), "%s.tmp.%d", out->image, getpid());
        int rc = build_image(out, cache, srcs, n, tmp, err);
        if (rc == 0 && rename(tmp, out->image) < 0)
            rc = hull_error_errno(err, "rename %s", out->image);
        if (rc < 0) {
            unlink(tmp);
            return -1;
        }
    }
    return vm_sha256_file(out->image, out->sha256, err);
}
