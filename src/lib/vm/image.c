/* Images as roots, for every isolation level: an OCI image of the store
 * (src/lib/image) found, fetched when the policy allows, unpacked, and held
 * in use for as long as something runs from it; the overlay hull roots a
 * sandbox in; and the read-only disk a microVM boots it from.
 *
 * Linking: this is the run path of the static `hull`, so only the run-path
 * files of image/ are called (ref, store, manifest, rootfs). Fetching and
 * unpacking need libcurl and libarchive: they are `hull-image pull` and
 * `hull-image prepare`, run as children (hull-image sits beside the running
 * program; $HULL_IMAGE_HELPER names another).
 *
 * The sandbox mounts its own /tmp, /proc and /dev (and copies files into
 * that /tmp), so they must be directories of the root itself. An image
 * that has them is used as it is; one that lacks them, or has symlinks
 * there (tmp -> /), gets one layer of hull's own on top: those three empty
 * directories. It still runs, and the upper layer's directory hides the
 * symlink (overlayfs ends its lookup at a non-directory below a
 * directory), so nothing mounted or written there can land elsewhere.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <limits.h>
#include <sched.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "util/error.h"
#include "util/fs.h"
#include "util/json.h"
#include "util/log.h"
#include "util/sibling.h"
#include "util/strv.h"
#include "vm/vm.h"

/* Root's, outside /run/hull (0700): the sandbox's root user, an
 * unprivileged host uid, must reach the root mounted below it. */
#define IMAGE_DIR  "/run/hull-empty"
#define IMAGE_BASE VM_IMAGE_BASE

/* hull-image, found as `hull image` finds it (util/sibling.h). */
static int image_tool(char *out, size_t len, hull_error *err)
{
    return hull_find_sibling("hull-image", "HULL_IMAGE_HELPER", out, len, err);
}

/* What hull-image said on stderr, as one line: its "hull: " prefixes
 * dropped (ours comes first), lines joined with "; ". */
static void tool_message(int fd, char *out, size_t len)
{
    char buf[2048];
    ssize_t n = pread(fd, buf, sizeof(buf) - 1, 0);
    buf[n > 0 ? n : 0] = '\0';
    out[0] = '\0';
    char *save = NULL;
    for (char *ln = strtok_r(buf, "\n", &save); ln; ln = strtok_r(NULL, "\n", &save)) {
        if (strncmp(ln, "hull: ", 6) == 0)
            ln += 6;
        size_t o = strlen(out);
        if (*ln && o + 3 < len)
            snprintf(out + o, len - o, "%s%s", o ? "; " : "", ln);
    }
}

/* hull-image VERB [--quiet] --image-root ROOT REF. Its stdout (the
 * digest) is not wanted, and a --json caller's stdout is the result
 * alone; its stderr is kept: passed on when it succeeds (warnings), folded
 * into our one error line when it fails. */
static int run_tool(const char *verb, const char *root, const char *ref, hull_error *err)
{
    char tool[PATH_MAX];
    if (image_tool(tool, sizeof(tool), err) < 0)
        return -1;
    char *argv[8];
    size_t n = 0;
    argv[n++] = "hull-image";
    argv[n++] = (char *)verb;
    if (strcmp(verb, "pull") == 0)
        argv[n++] = "--quiet";
    argv[n++] = "--image-root";
    argv[n++] = (char *)root;
    argv[n++] = (char *)ref;
    argv[n] = NULL;
    cleanup_close int efd = memfd_create("hull-image-stderr", MFD_CLOEXEC);
    if (efd < 0)
        return hull_error_errno(err, "memfd_create");
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addopen(&fa, 1, "/dev/null", O_WRONLY, 0);
    posix_spawn_file_actions_adddup2(&fa, efd, 2);
    extern char **environ;
    pid_t pid;
    int r = posix_spawn(&pid, tool, &fa, NULL, argv, environ);
    posix_spawn_file_actions_destroy(&fa);
    if (r)
        return hull_error_set(err, r, "%s %s: run %s: %s", verb, ref, tool, strerror(r));
    int st = 0;
    while (waitpid(pid, &st, 0) < 0 && errno == EINTR)
        ;
    char msg[1024];
    tool_message(efd, msg, sizeof(msg));
    if (WIFEXITED(st) && WEXITSTATUS(st) == 0) {
        if (msg[0])
            hull_warn("%s", msg);
        return 0;
    }
    if (msg[0])
        return hull_error_set(err, EIO, "%s", msg);
    return hull_error_set(err, EIO, "hull-image %s %s failed (%s %d)", verb, ref,
                          WIFEXITED(st) ? "exit status" : "signal",
                          WIFEXITED(st) ? WEXITSTATUS(st) : WTERMSIG(st));
}

/* Every layer of the image has its unpacked directory (hull/layers/<hex>). */
static bool layers_unpacked(struct vm_image *vi)
{
    for (size_t i = 0; i < vi->img.config.n_diff_ids; i++) {
        const char *d = vi->img.config.diff_ids[i];
        const char *hex = strchr(d, ':') ? strchr(d, ':') + 1 : d;
        char rel[128];
        struct stat st;
        snprintf(rel, sizeof(rel), "hull/layers/%s", hex);
        if (fstatat(vi->store.rootfd, rel, &st, AT_SYMLINK_NOFOLLOW) < 0 || !S_ISDIR(st.st_mode))
            return false;
    }
    return true;
}

static int load(const char *root, const char *ref, struct vm_image *vi, hull_error *err)
{
    if (image_store_open(root, false, &vi->store, err) < 0)
        return hull_error_prefix(err, "image %s", ref);
    vi->store_open = true;
    if (image_load(&vi->store, ref, NULL, &vi->img, err) < 0)
        return -1; /* its message names the image */
    vi->loaded = true;
    return 0;
}

static void unload(struct vm_image *vi)
{
    if (vi->loaded)
        image_free(&vi->img);
    if (vi->store_open)
        image_store_close(&vi->store);
    vi->loaded = vi->store_open = false;
}

int vm_image_open(const char *root, const char *ref, enum hull_pull_policy pull,
                  struct vm_image *vi, hull_error *err)
{
    memset(vi, 0, sizeof(*vi));
    vi->use_fd = -1;
    root = image_store_root(root);
    hull_error e = NULL;
    if (load(root, ref, vi, &e) < 0) {
        if (hull_error_code(e) != ENOENT || pull == HULL_PULL_NEVER) {
            if (err)
                *err = e;
            else
                hull_error_free(&e);
            unload(vi);
            return -1;
        }
        /* Not there and we may fetch it: the pull's own message is on stderr. */
        hull_debug("image %s: %s: pulling", ref, hull_error_msg(e));
        hull_error_free(&e);
        unload(vi);
        if (run_tool("pull", root, ref, err) < 0 || load(root, ref, vi, err) < 0) {
            unload(vi);
            return -1; /* each names the image */
        }
    }
    /* Stored but not unpacked (skopeo copied it in, or a pull was cut):
     * unpacking needs no network, so --pull never allows it too. */
    if (!layers_unpacked(vi) && (run_tool("prepare", root, ref, err) < 0 || !layers_unpacked(vi))) {
        if (err && *err == NULL)
            hull_error_set(err, ENOENT, "layers are not unpacked after hull-image prepare");
        unload(vi);
        return hull_error_prefix(err, "image %s", ref);
    }
    vi->use_fd = image_use(&vi->store, vi->img.manifest_digest, err);
    if (vi->use_fd < 0) {
        unload(vi);
        return hull_error_prefix(err, "image %s", ref);
    }
    /* In use from here, prune spares it; one that ran between the load and
     * the mark may have taken it already. */
    if (!image_blob_exists(&vi->store, vi->img.manifest_digest) || !layers_unpacked(vi)) {
        vm_image_close(vi);
        return hull_error_set(err, ENOENT, "image %s: removed while it was being opened", ref);
    }
    snprintf(vi->ref, sizeof(vi->ref), "%s", ref);
    return 0;
}

void vm_image_close(struct vm_image *vi)
{
    hull_closep(&vi->use_fd);
    unload(vi);
}

const char *vm_image_name(const struct vm_image *vi)
{
    return vi->img.entry.name ? vi->img.entry.name : vi->ref;
}

/* hull's layer: empty tmp (1777), proc and dev, made once, root's, never
 * changed (a new one is built aside and renamed into place). */
int vm_image_base_layer(hull_error *err)
{
    struct stat st;
    if (lstat(IMAGE_BASE, &st) == 0) {
        if (!S_ISDIR(st.st_mode) || st.st_uid != 0 || (st.st_mode & 022))
            return hull_error_set(err, EPERM,
                                  "%s is not a directory of root's that only root may write; "
                                  "remove it",
                                  IMAGE_BASE);
        return 0;
    }
    if (hull_mkdir_p(IMAGE_DIR, 0755, err) < 0)
        return -1;
    char tmp[] = IMAGE_DIR "/.image-base-XXXXXX";
    if (mkdtemp(tmp) == NULL)
        return hull_error_errno(err, "mkdtemp %s", tmp);
    static const struct {
        const char *name;
        mode_t mode;
    } dirs[] = {{"tmp", 01777}, {"proc", 0555}, {"dev", 0755}};
    int rc = chmod(tmp, 0755) < 0 ? hull_error_errno(err, "chmod %s", tmp) : 0;
    for (size_t i = 0; rc == 0 && i < sizeof(dirs) / sizeof(dirs[0]); i++) {
        char p[sizeof(tmp) + 16];
        snprintf(p, sizeof(p), "%s/%s", tmp, dirs[i].name);
        /* chmod after mkdir: the umask must not take the sticky /tmp's bits. */
        if (mkdir(p, 0700) < 0 || chmod(p, dirs[i].mode) < 0)
            rc = hull_error_errno(err, "mkdir %s", p);
    }
    /* Times fixed (and the children's set before the parent's, which
     * their creation changed): the root of a disk takes its attributes from
     * this layer, and the same image must make the same disk. */
    static const struct timespec epoch[2] = {{0, 0}, {0, 0}};
    for (size_t i = 0; rc == 0 && i <= sizeof(dirs) / sizeof(dirs[0]); i++) {
        char p[sizeof(tmp) + 16];
        snprintf(p, sizeof(p), "%s/%s", tmp,
                 i < sizeof(dirs) / sizeof(dirs[0]) ? dirs[i].name : "");
        if (utimensat(AT_FDCWD, p, epoch, AT_SYMLINK_NOFOLLOW) < 0)
            rc = hull_error_errno(err, "utimensat %s", p);
    }
    if (rc == 0 && rename(tmp, IMAGE_BASE) < 0 && errno != EEXIST && errno != ENOTEMPTY)
        rc = hull_error_errno(err, "rename %s", IMAGE_BASE);
    /* Lost a race with another run (its layer is the same), or failed. */
    hull_error e = NULL;
    if (access(tmp, F_OK) == 0 && hull_rm_rf_at(AT_FDCWD, tmp, &e) < 0) {
        hull_warn("image base layer: %s", hull_error_msg(e));
        hull_error_free(&e);
    }
    return rc;
}

/* The image has /tmp, /proc and /dev as directories of its own, reached
 * without a symlink: its root can serve as it is. */
static bool has_own_dirs(const char *root)
{
    cleanup_close int rootfd = open(root, O_PATH | O_DIRECTORY | O_CLOEXEC);
    static const char *const dirs[] = {"/tmp", "/proc", "/dev"};
    for (size_t i = 0; rootfd >= 0 && i < sizeof(dirs) / sizeof(dirs[0]); i++) {
        cleanup_hull_error hull_error e = NULL; /* absent or a symlink: hull's layer serves */
        cleanup_close int fd = hull_resolve_in_root(
            rootfd, dirs[i], HULL_RESOLVE_NO_SYMLINKS | HULL_RESOLVE_DIRECTORY, &e);
        if (fd < 0)
            return false;
    }
    return rootfd >= 0;
}

int vm_image_mount(struct vm_image *vi, const char *lower, const char *target, hull_error *err)
{
    return vm_image_mount_base(vi, lower, target, NULL, NULL, err);
}

struct base_mount {
    const char *target, *opts;
};

static int do_base_mount(void *arg)
{
    const struct base_mount *m = arg;
    return mount("overlay", m->target, "overlay", MS_RDONLY | MS_NOSUID | MS_NODEV, m->opts);
}

/* overlay "lowerdir=BASE:LOWER" on target. Named relative to the directory
 * both are in, where they share one (/run/hull-empty), so that the mount's
 * options, which a sandbox sees in its mountinfo, show no host path. -1
 * with errno. */
static int mount_over_base(const char *base, const char *lower, const char *target)
{
    const char *bs = strrchr(base, '/'), *ls = strrchr(lower, '/');
    char opts[PATH_MAX * 2 + 32];
    struct base_mount m = {target, opts};
    bool relative = bs && ls && bs != base && bs - base == ls - lower &&
                    strncmp(base, lower, (size_t)(bs - base)) == 0;
    if (!relative) {
        snprintf(opts, sizeof(opts), "lowerdir=%s:%s", base, lower);
        return do_base_mount(&m);
    }
    char dir[PATH_MAX];
    snprintf(dir, sizeof(dir), "%.*s", (int)(bs - base), base);
    snprintf(opts, sizeof(opts), "lowerdir=%s:%s", bs + 1, ls + 1);
    cleanup_close int dirfd = open(dir, O_PATH | O_DIRECTORY | O_CLOEXEC);
    return dirfd < 0 ? -1 : hull_call_in_dir(dirfd, do_base_mount, &m);
}

int vm_image_mount_base(struct vm_image *vi, const char *lower, const char *target,
                        vm_image_base_fn base_fn, void *ctx, hull_error *err)
{
    if (hull_mkdir_p(lower, 0755, err) < 0 || hull_mkdir_p(target, 0755, err) < 0)
        return hull_error_prefix(err, "image %s", vm_image_name(vi));
    if (image_rootfs_mount(&vi->store, &vi->img, lower, NULL, NULL, true, err) < 0)
        return hull_error_prefix(err, "image %s: mount its layers", vm_image_name(vi));
    int rc;
    if (has_own_dirs(lower)) {
        /* Most images: the layers as they are (no second overlay, which
         * would also be one level of stacking more than a store on
         * overlayfs allows), read-only, nosuid, nodev. */
        rc = mount(lower, target, NULL, MS_BIND, NULL);
        if (rc == 0 &&
            (rc = mount(NULL, target, NULL, MS_BIND | MS_REMOUNT | MS_RDONLY | MS_NOSUID | MS_NODEV,
                        NULL)) < 0) {
            int e = errno;
            umount2(target, MNT_DETACH);
            errno = e;
        }
    } else {
        const char *base = NULL;
        if ((base_fn && base_fn(ctx, &base, err) < 0) ||
            (base == NULL && vm_image_base_layer(err) < 0)) {
            umount2(lower, MNT_DETACH);
            return hull_error_prefix(err, "image %s", vm_image_name(vi));
        }
        rc = mount_over_base(base ? base : IMAGE_BASE, lower, target);
    }
    if (rc < 0) {
        int e = errno;
        umount2(lower, MNT_DETACH);
        errno = e;
        return hull_error_errno(err, "image %s: mount its root at %s", vm_image_name(vi), target);
    }
    return 0;
}

void vm_image_umount(const char *lower, const char *target)
{
    /* Only tidiness: the mounts live in a private namespace that ends
     * with its last process. */
    if (umount2(target, MNT_DETACH) < 0 && errno != EINVAL && errno != ENOENT)
        hull_debug("umount %s: %s", target, strerror(errno));
    if (umount2(lower, MNT_DETACH) < 0 && errno != EINVAL && errno != ENOENT)
        hull_debug("umount %s: %s", lower, strerror(errno));
}

/* In a child with a private mount namespace: the image's root (with hull's
 * layer) mounted read-only, and mksquashfs over it into tmp. */
static int build_disk(struct vm_image *vi, const char *tmp, hull_error *err)
{
    int ep[2];
    if (pipe2(ep, O_CLOEXEC) < 0)
        return hull_error_errno(err, "pipe");
    pid_t pid = fork();
    if (pid < 0) {
        close(ep[0]);
        close(ep[1]);
        return hull_error_errno(err, "fork");
    }
    if (pid == 0) {
        close(ep[0]);
        hull_error e = NULL;
        /* The mounts exist only for mksquashfs, and vanish with this child:
         * none can reach the host's mount table, even if it is killed. */
        if (unshare(CLONE_NEWNS) < 0 || mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0)
            hull_error_errno(&e, "private mount namespace");
        else if (vm_image_mount(vi, IMAGE_DIR "/disk-lower", IMAGE_DIR "/disk-root", &e) == 0)
            /* The root directory is a layer's own, made when it was
             * unpacked: its time would make each store's disk differ. */
            vm_mksquashfs(IMAGE_DIR "/disk-root", tmp, true, &e);
        if (e)
            dprintf(ep[1], "%s", hull_error_msg(e));
        _exit(e ? 1 : 0);
    }
    close(ep[1]);
    char msg[1024];
    ssize_t n = read(ep[0], msg, sizeof(msg) - 1);
    close(ep[0]);
    int st = 0;
    while (waitpid(pid, &st, 0) < 0 && errno == EINTR)
        ;
    if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) {
        msg[n > 0 ? n : 0] = '\0';
        return hull_error_set(err, EIO, "build its disk: %s", n > 0 ? msg : "the builder died");
    }
    return 0;
}

static void drop_stale(const char *dir, const char *hex)
{
    cleanup_dir DIR *d = opendir(dir);
    char prefix[128];
    snprintf(prefix, sizeof(prefix), "%s.sqfs.tmp.", hex);
    struct dirent *de;
    while (d && (de = readdir(d)) != NULL)
        if (strncmp(de->d_name, prefix, strlen(prefix)) == 0 &&
            unlinkat(dirfd(d), de->d_name, 0) < 0)
            hull_warn("image disk: remove %s/%s: %s", dir, de->d_name, strerror(errno));
}

int vm_image_disk(struct vm_image *vi, char *out, size_t len, hull_error *err)
{
    const char *d = vi->img.manifest_digest;
    const char *hex = strchr(d, ':') ? strchr(d, ':') + 1 : d;
    char dir[PATH_MAX];
    if (snprintf(dir, sizeof(dir), "%s/hull/disks", vi->store.root) >= (int)sizeof(dir) ||
        snprintf(out, len, "%s/%s.sqfs", dir, hex) >= (int)len)
        return hull_error_set(err, ENAMETOOLONG, "image disk: path too long");
    if (access(out, R_OK) == 0)
        return 0;
    if (hull_mkdir_p(dir, 0700, err) < 0)
        return hull_error_prefix(err, "image %s: disk", vm_image_name(vi));
    /* One builder per manifest; the others wait and find it built. */
    char lockp[PATH_MAX + 16];
    snprintf(lockp, sizeof(lockp), "%s/%s.lock", dir, hex);
    cleanup_close int lk = open(lockp, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (lk < 0 || flock(lk, LOCK_EX) < 0)
        return hull_error_errno(err, "lock %s", lockp);
    if (access(out, R_OK) == 0)
        return 0;
    /* Under the lock, any <hex>.sqfs.tmp.* is a builder's that died. */
    drop_stale(dir, hex);
    char tmp[PATH_MAX + 32];
    snprintf(tmp, sizeof(tmp), "%s.tmp.%d", out, (int)getpid());
    int rc = build_disk(vi, tmp, err);
    if (rc == 0 && rename(tmp, out) < 0)
        rc = hull_error_errno(err, "rename %s", out);
    if (rc < 0) {
        unlink(tmp);
        return hull_error_prefix(err, "image %s", vm_image_name(vi));
    }
    return 0;
}

char **vm_env_merge(char *const *base, char *const *over)
{
    char **out = base ? hull_strv_dup(base) : calloc(1, sizeof(char *));
    for (char *const *o = over; out && o && *o; o++) {
        size_t k = strcspn(*o, "=");
        char **slot = NULL;
        for (char **b = out; *b && !slot; b++)
            if (strncmp(*b, *o, k) == 0 && (*b)[k] == '=')
                slot = b;
        if (slot) {
            char *v = strdup(*o);
            if (v == NULL) {
                hull_strv_free(out);
                return NULL;
            }
            free(*slot);
            *slot = v;
        } else if (hull_strv_append(&out, *o) < 0) {
            hull_strv_free(out);
            return NULL;
        }
    }
    return out;
}

/* {"env": [...], "workdir": "..."}: what `exec` takes from the config. */
static int config_json(const struct image_config *c, char *out, size_t len, hull_error *err)
{
    cleanup_json json_object *o = json_object_new_object();
    json_object *env = json_object_new_array();
    for (char **e = c->env; e && *e; e++)
        json_object_array_add(env, json_object_new_string(*e));
    json_object_object_add(o, "env", env);
    json_object_object_add(o, "workdir",
                           json_object_new_string(c->working_dir ? c->working_dir : ""));
    const char *s = json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN);
    if (snprintf(out, len, "%s", s) >= (int)len)
        return hull_error_set(err, E2BIG, "its config's Env is over %zu bytes", len - 1);
    return 0;
}

int vm_image_rootfs(const char *root, const char *ref, enum hull_pull_policy pull, struct vm *vm,
                    hull_error *err)
{
    struct vm_image vi;
    if (vm_image_open(root, ref, pull, &vi, err) < 0)
        return -1;
    struct vm_rootfs *r = &vm->rootfs;
    int rc = vm_image_disk(&vi, r->image, sizeof(r->image), err);
    if (rc == 0)
        rc = vm_sha256_file(r->image, r->sha256, err);
    if (rc == 0)
        rc = config_json(&vi.img.config, vm->image_config, sizeof(vm->image_config), err);
    if (rc == 0) {
        snprintf(vm->image, sizeof(vm->image), "%s", vm_image_name(&vi));
        snprintf(vm->image_digest, sizeof(vm->image_digest), "%s", vi.img.manifest_digest);
        snprintf(vm->image_root, sizeof(vm->image_root), "%s", vi.store.root);
        snprintf(r->source, sizeof(r->source), "image %s@%s", vm->image, vm->image_digest);
    } else {
        hull_error_prefix(err, "image %s", ref);
    }
    vm_image_close(&vi);
    return rc;
}

int vm_image_hold(const struct vm *vm, hull_error *err)
{
    struct image_store s;
    if (image_store_open(vm->image_root, false, &s, err) < 0)
        return hull_error_prefix(err, "VM %s: image %s", vm->id, vm->image);
    int fd = image_use(&s, vm->image_digest, err);
    image_store_close(&s);
    if (fd < 0)
        return hull_error_prefix(err, "VM %s: image %s", vm->id, vm->image);
    /* Marked in use from here on: a disk still there now stays. */
    if (access(vm->rootfs.image, R_OK) < 0) {
        close(fd);
        return hull_error_errno(err,
                                "VM %s: the disk of image %s (%s) is gone: the image was "
                                "removed; create the VM again",
                                vm->id, vm->image, vm->rootfs.image);
    }
    return fd;
}
