/* `hull vm cache prune`: remove what the VM cache holds and nothing uses.
 *
 * Every file of kernels/, initrd/ and rootfs/ is a cache entry that the
 * next `vm create` of that configuration builds again, and so is every
 * template (templates/<key>.snap and its RAM file): the next warm start of
 * that configuration boots cold and saves it anew. In use, and kept, is:
 *   - an artifact a VM record of the state root names (in any state: a
 *     stopped VM starts from the files its record names);
 *   - the template of a VM recorded with --from-template (its next start
 *     restores it), and one whose <key>.lock is held (a restore or a save
 *     under way).
 * The cache's use lock is held exclusively throughout, so no create can
 * measure an artifact between our reading of the records and its removal;
 * rootfs/build.lock too, so no rootfs image is being written. keys/ (the
 * snapshot key) and lock files are never removed. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "util/error.h"
#include "util/json.h"
#include "util/log.h"
#include "vm/vm.h"

/* A file in use: its identity, and who uses it. */
struct used {
    dev_t dev;
    ino_t ino;
    char by[80];
};

struct prune {
    struct used *used;
    size_t n_used;
    char (*keys)[HULL_SHA256_HEX + 80]; /* template key, then who uses it */
    size_t n_keys;
    bool dry_run;
    json_object *removed, *kept;
    unsigned long long bytes;
};

static void prune_free(struct prune *p)
{
    free(p->used);
    free(p->keys);
    json_object_put(p->removed);
    json_object_put(p->kept);
}

static int note_file(struct prune *p, const char *path, const char *id, hull_error *err)
{
    struct stat st;
    if (path[0] == '\0' || stat(path, &st) < 0)
        return 0; /* nothing there to keep (another cache, or already gone) */
    struct used *u = realloc(p->used, (p->n_used + 1) * sizeof(*u));
    if (u == NULL)
        return hull_error_set(err, ENOMEM, "out of memory");
    p->used = u;
    u[p->n_used].dev = st.st_dev;
    u[p->n_used].ino = st.st_ino;
    snprintf(u[p->n_used].by, sizeof(u[p->n_used].by), "VM %s", id);
    p->n_used++;
    return 0;
}

/* What each VM record of the state root names. An unreadable record stops
 * the prune: what it uses cannot be known. */
static int note_vms(const struct hull_runtime *rt, struct prune *p, hull_error *err)
{
    char root[4096];
    if (vm_root_dir(rt, root, sizeof(root), err) < 0)
        return -1;
    DIR *d = opendir(root);
    if (d == NULL)
        return hull_error_errno(err, "list %s", root);
    struct dirent *e;
    int rc = 0;
    struct vm *vm = malloc(sizeof(*vm));
    if (vm == NULL)
        rc = hull_error_set(err, ENOMEM, "out of memory");
    while (rc == 0 && (e = readdir(d))) {
        if (e->d_name[0] == '.')
            continue;
        if (vm_load(rt, e->d_name, vm, err) < 0) {
            rc = hull_error_prefix(err,
                                   "VM %s: its record cannot be read, so what it uses is "
                                   "unknown; nothing removed",
                                   e->d_name);
            break;
        }
        if (note_file(p, vm->kernel.vmlinux, vm->id, err) < 0 ||
            note_file(p, vm->initrd.path, vm->id, err) < 0 ||
            note_file(p, vm->rootfs.image, vm->id, err) < 0) {
            rc = -1;
            break;
        }
        if (vm->from_template) {
            void *k = realloc(p->keys, (p->n_keys + 1) * sizeof(*p->keys));
            if (k == NULL) {
                rc = hull_error_set(err, ENOMEM, "out of memory");
                break;
            }
            p->keys = k;
            vm_template_key(vm, p->keys[p->n_keys]);
            snprintf(p->keys[p->n_keys] + HULL_SHA256_HEX, 80, "VM %s", vm->id);
            p->n_keys++;
        }
    }
    free(vm);
    closedir(d);
    return rc;
}

static const char *user_of(const struct prune *p, const struct stat *st)
{
    for (size_t i = 0; i < p->n_used; i++)
        if (p->used[i].dev == st->st_dev && p->used[i].ino == st->st_ino)
            return p->used[i].by;
    return NULL;
}

static void note_kept(struct prune *p, const char *path, const char *why)
{
    json_object *o = json_object_new_object();
    json_object_object_add(o, "path", json_object_new_string(path));
    json_object_object_add(o, "in_use_by", json_object_new_string(why));
    json_object_array_add(p->kept, o);
}

/* Remove dir/name (unless a dry run) and record it. */
static int take(struct prune *p, int dfd, const char *dir, const char *name, hull_error *err)
{
    struct stat st;
    if (fstatat(dfd, name, &st, AT_SYMLINK_NOFOLLOW) < 0)
        return errno == ENOENT ? 0 : hull_error_errno(err, "stat %s/%s", dir, name);
    if (!p->dry_run && unlinkat(dfd, name, 0) < 0)
        return hull_error_errno(err, "remove %s/%s", dir, name);
    char path[4400];
    snprintf(path, sizeof(path), "%s/%s", dir, name);
    json_object *o = json_object_new_object();
    json_object_object_add(o, "path", json_object_new_string(path));
    json_object_object_add(o, "bytes", json_object_new_int64((int64_t)st.st_blocks * 512));
    json_object_array_add(p->removed, o);
    p->bytes += (unsigned long long)st.st_blocks * 512;
    return 0;
}

static bool has_suffix(const char *s, const char *suffix)
{
    size_t n = strlen(s), m = strlen(suffix);
    return n > m && strcmp(s + n - m, suffix) == 0;
}

/* The cache's directory sub, as *dfd (its path in dir) and a listing *d of
 * it: 1; 0 when there is none; -1 with *err. */
static int open_listing(const char *sub, char *dir, size_t size, int *dfd, DIR **d, hull_error *err)
{
    snprintf(dir, size, "%s/%s", vm_cache_dir(), sub);
    *dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (*dfd < 0)
        return errno == ENOENT ? 0 : hull_error_errno(err, "open %s", dir);
    int listing = fcntl(*dfd, F_DUPFD_CLOEXEC, 0);
    if (listing < 0 || (*d = fdopendir(listing)) == NULL) {
        hull_error_errno(err, "list %s", dir);
        if (listing >= 0)
            close(listing);
        hull_closep(dfd);
        return -1;
    }
    return 1;
}

/* kernels/, initrd/, rootfs/: the artifacts (prefix...) and their .sha256
 * files, unless a record names the artifact. */
static int prune_artifacts(struct prune *p, const char *sub, const char *prefix, hull_error *err)
{
    char dir[4200];
    cleanup_close int dfd = -1;
    DIR *d = NULL;
    int opened = open_listing(sub, dir, sizeof(dir), &dfd, &d, err);
    if (opened <= 0)
        return opened;
    struct dirent *e;
    int rc = 0;
    while (rc == 0 && (e = readdir(d))) {
        if (strncmp(e->d_name, prefix, strlen(prefix)) != 0 || has_suffix(e->d_name, ".lock"))
            continue;
        /* A digest file goes with its artifact. */
        char base[300];
        snprintf(base, sizeof(base), "%s", e->d_name);
        if (has_suffix(base, ".sha256"))
            base[strlen(base) - 7] = '\0';
        struct stat st;
        const char *by = NULL;
        if (fstatat(dfd, base, &st, 0) == 0)
            by = user_of(p, &st);
        if (by == NULL)
            rc = take(p, dfd, dir, e->d_name, err);
        else if (strcmp(base, e->d_name) == 0) {
            char path[sizeof(dir) + NAME_MAX + 2];
            snprintf(path, sizeof(path), "%s/%s", dir, e->d_name);
            note_kept(p, path, by);
        }
    }
    closedir(d);
    return rc;
}

static const char *template_user(const struct prune *p, const char *key)
{
    for (size_t i = 0; i < p->n_keys; i++)
        if (strcmp(p->keys[i], key) == 0)
            return p->keys[i] + HULL_SHA256_HEX;
    return NULL;
}

/* templates/: <key>.snap and <key>.snap.ram, each under its <key>.lock
 * taken without waiting (held: a restore or save is under way). */
static int prune_templates(struct prune *p, hull_error *err)
{
    char dir[4200];
    cleanup_close int dfd = -1;
    DIR *d = NULL;
    int opened = open_listing("templates", dir, sizeof(dir), &dfd, &d, err);
    if (opened <= 0)
        return opened;
    struct dirent *e;
    int rc = 0;
    while (rc == 0 && (e = readdir(d))) {
        if (!has_suffix(e->d_name, ".snap"))
            continue;
        char key[256], lock[300], ram[300], path[sizeof(dir) + NAME_MAX + 2];
        snprintf(key, sizeof(key), "%.*s", (int)(strlen(e->d_name) - 5), e->d_name);
        snprintf(lock, sizeof(lock), "%s.lock", key);
        snprintf(ram, sizeof(ram), "%s.ram", e->d_name);
        snprintf(path, sizeof(path), "%s/%s", dir, e->d_name);
        const char *by = template_user(p, key);
        if (by) {
            note_kept(p, path, by);
            continue;
        }
        /* Its own open of the lock, released when closed. */
        cleanup_close int lk = openat(dfd, lock, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
        if (lk < 0) {
            rc = hull_error_errno(err, "open %s/%s", dir, lock);
            break;
        }
        if (flock(lk, LOCK_EX | LOCK_NB) < 0) {
            note_kept(p, path, "a restore or save under way");
            continue;
        }
        rc = take(p, dfd, dir, ram, err);
        if (rc == 0)
            rc = take(p, dfd, dir, e->d_name, err);
    }
    closedir(d);
    return rc;
}

char *hull_vm_cache_prune(const struct hull_runtime *rt, bool dry_run, hull_error *err)
{
    struct prune p = {
        .dry_run = dry_run, .removed = json_object_new_array(), .kept = json_object_new_array()};
    char *out = NULL;
    /* No create measures an artifact, and no rootfs image is written,
     * until we are done. */
    cleanup_close int use = vm_cache_use_lock(true, err);
    char build[4200];
    snprintf(build, sizeof(build), "%s/rootfs/build.lock", vm_cache_dir());
    cleanup_close int bl = use < 0 ? -1 : open(build, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (use < 0 || bl < 0 || flock(bl, LOCK_EX) < 0) {
        if (use >= 0)
            hull_error_errno(err, "lock %s", build);
        prune_free(&p);
        return NULL;
    }
    if (note_vms(rt, &p, err) == 0 && prune_templates(&p, err) == 0 &&
        prune_artifacts(&p, "kernels", "vmlinux-", err) == 0 &&
        prune_artifacts(&p, "initrd", "initrd-", err) == 0 &&
        prune_artifacts(&p, "rootfs", "rootfs-", err) == 0) {
        json_object *o = json_object_new_object();
        json_object_object_add(o, "cache", json_object_new_string(vm_cache_dir()));
        json_object_object_add(o, "dry_run", json_object_new_boolean(dry_run));
        json_object_object_add(o, "removed", json_object_get(p.removed));
        json_object_object_add(o, "kept", json_object_get(p.kept));
        json_object_object_add(o, "bytes", json_object_new_int64((int64_t)p.bytes));
        out = strdup(json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN |
                                                           JSON_C_TO_STRING_NOSLASHESCAPE));
        json_object_put(o);
        if (out == NULL)
            hull_error_set(err, ENOMEM, "out of memory");
    }
    prune_free(&p);
    return out;
}
