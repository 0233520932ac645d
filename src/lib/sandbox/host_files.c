/* The host files a container-level sandbox uses: its --bind sources and
 * its --rootfs directory.
 *
 * The sandbox runs as a block of host uids of its own (uids.c), base ..
 * base+65535, so that the kernel's per-user counts are its alone. What it
 * writes on a host file must still be owned, on the host, by the shared
 * block's uids (uid 0 inside -> 1000000000, the workload's 1000 ->
 * 1000001000: docs/sandbox.md "Users"), and a file made for those uids must
 * stay its own. So in the supervisor's private mount namespace each such
 * path gets an idmapped copy of its mount (with every mount below it)
 * stacked over itself; the sandbox's init is cloned from there and binds
 * that copy.
 *
 * The mount's mapping swaps two ranges of ids and leaves every other id as
 * it is: on-disk shared block <-> the sandbox's block. A file owned by
 * 1000001000 is seen as base+1000 (uid 1000 inside); a file the sandbox's
 * uid 1000 (base+1000) creates is stored as 1000001000. Every other owner
 * is seen as itself, which the sandbox's user namespace maps to nobody
 * exactly as before: root's files are root's, read-only to it where they
 * were, writable where their mode lets others write, never its own. The
 * view inside is the one a sandbox in the shared block had, id for id;
 * no permission check can come out otherwise. The mounts are nosuid and
 * nodev, as every bind and root of a sandbox is anyway.
 *
 * A filesystem that cannot be idmapped (NFS, FUSE, overlayfs, procfs,
 * anything mounted below a bind source that is one of those) leaves the
 * sandbox in the shared block, as before, with a warning naming it.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

#include "sandbox/sandbox.h"
#include "util/error.h"
#include "util/fs.h"
#include "util/log.h"

/* One host path to idmap. */
struct host_path {
    char *path;       /* resolved, no symlink */
    const char *what; /* "--bind" or "--rootfs", for messages */
    int tree;         /* its idmapped copy, before it is attached */
};

/* The uid (and gid) mapping of the copies: the shared block and the
 * sandbox's swapped, every other id unchanged. Inside (on disk) ->
 * outside (what the sandbox's user namespace sees). */
static size_t swap_map(uint32_t base, struct hull_id_mapping m[5])
{
    const uint32_t s = HULL_SANDBOX_UID_BASE, r = HULL_SANDBOX_ID_RANGE;
    size_t n = 0;
    m[n++] = (struct hull_id_mapping){0, 0, s};
    m[n++] = (struct hull_id_mapping){s, base, r};
    if (base > s + r)
        m[n++] = (struct hull_id_mapping){s + r, s + r, base - (s + r)};
    m[n++] = (struct hull_id_mapping){base, s, r};
    /* Up to 4294967294: (uid_t)-1 is no id. */
    m[n++] = (struct hull_id_mapping){base + r, base + r, UINT32_MAX - (base + r)};
    return n;
}

/* Whether path is at or below dir. */
static bool under(const char *path, const char *dir)
{
    size_t n = strlen(dir);
    if (n == 1)
        return true; /* "/" */
    return strncmp(path, dir, n) == 0 && (path[n] == '\0' || path[n] == '/');
}

/* Add path (taken) unless it is at or below one already there; one
 * already there below it is dropped. The copy of a path's mount holds
 * everything below it, idmapped alike: a bind of something below it is
 * made from that copy, and stacking another copy there would only split
 * one mount into two (a rename across them would fail with EXDEV). */
static void add(struct host_path *hp, size_t *n, char *path, const char *what)
{
    for (size_t i = 0; i < *n; i++)
        if (under(path, hp[i].path)) {
            free(path);
            return;
        }
    size_t k = 0;
    for (size_t i = 0; i < *n; i++) {
        if (under(hp[i].path, path))
            free(hp[i].path);
        else
            hp[k++] = hp[i];
    }
    hp[k++] = (struct host_path){path, what, -1};
    *n = k;
}

/* The resolved paths of the policy's root directory and bind sources,
 * with the messages the preflight gives for a missing one. */
static int collect(const struct hull_policy *p, struct host_path *hp, size_t *n, hull_error *err)
{
    if (p->rootfs && p->image == NULL) {
        char *root = hull_sandbox_resolve_rootfs(p->rootfs, err);
        if (root == NULL)
            return -1;
        add(hp, n, root, "--rootfs");
    }
    for (size_t i = 0; i < p->n_binds; i++) {
        char *real = realpath(p->binds[i].source, NULL);
        if (real == NULL)
            return hull_error_errno(err, "--bind %s", p->binds[i].source);
        add(hp, n, real, "--bind");
    }
    return 0;
}

/* The filesystem type of the mount path is on, or "?". */
static void fs_type(const char *path, char *out, size_t len)
{
    snprintf(out, len, "?");
    struct statx sx;
    if (statx(AT_FDCWD, path, 0, STATX_MNT_ID, &sx) < 0 || !(sx.stx_mask & STATX_MNT_ID))
        return;
    FILE *f = fopen("/proc/self/mountinfo", "re");
    char line[4096];
    while (f && fgets(line, sizeof(line), f)) {
        const char *sep = strstr(line, " - ");
        if (strtoull(line, NULL, 10) != sx.stx_mnt_id || sep == NULL)
            continue;
        snprintf(out, len, "%.*s", (int)strcspn(sep + 3, " \n"), sep + 3);
        break;
    }
    if (f)
        fclose(f);
}

/* Why hp cannot be idmapped, for the warning: its own filesystem, or one
 * mounted below it (a bind takes every mount below its source). */
/* The warning of a sandbox left in the shared block: what about hp's path
 * (why) keeps it there. */
static void fallback(struct hull_sandbox_host_files *hf, const struct host_path *hp,
                     const char *why)
{
    snprintf(hf->fallback, sizeof(hf->fallback),
             "%s %s: %s, so this sandbox runs as the shared host uids %u-%u, whose per-user "
             "kernel counts it shares with every other sandbox that does so (docs/sandbox.md "
             "\"Users\")",
             hp->what, hp->path, why, HULL_SANDBOX_UID_BASE,
             HULL_SANDBOX_UID_BASE + HULL_SANDBOX_ID_RANGE - 1);
}

static void say_fallback(const struct host_path *hp, int userns, struct hull_sandbox_host_files *hf)
{
    char type[64];
    fs_type(hp->path, type, sizeof(type));
    hull_error e = NULL;
    int tree = -1;
    bool top = hull_idmap_clone(hp->path, userns, 0, false, &tree, &e) != 0;
    hull_error_free(&e); /* only a hint for the warning below */
    hull_closep(&tree);
    char why[256];
    snprintf(why, sizeof(why), "%s (%s) cannot be idmapped",
             top ? "its filesystem" : "a filesystem mounted below it",
             top ? type : "a bind takes every mount below its source");
    fallback(hf, hp, why);
}

/* Whether the sandbox's init, as its own block's root, can reach every
 * path: only the paths themselves are idmapped, not the directories on the
 * way to them, which it crosses with its host uid. A directory there made
 * for the shared block (0700, owned by 1000000000) lets a sandbox in the
 * shared block through and this one not: such a sandbox keeps the shared
 * block, as before, and a path that block cannot reach either is refused
 * by the preflight (run.c) as before. 1 when one cannot be reached. */
static int reach_all(const struct host_path *hp, size_t n, uint32_t base,
                     struct hull_sandbox_host_files *hf)
{
    for (size_t i = 0; i < n; i++) {
        hull_error e = NULL;
        if (hull_sandbox_reachable(hp[i].path, base, hp[i].what, &e) == 0)
            continue;
        char why[256];
        snprintf(why, sizeof(why), "%s for the sandbox's own host uids",
                 strerror(hull_error_code(e)));
        fallback(hf, &hp[i], why);
        hull_error_free(&e);
        return 1;
    }
    return 0;
}

/* An idmapped copy of each path's mount (every mount below it too),
 * nosuid and nodev; 1 when one cannot be made (the others are closed). */
static int clone_all(struct host_path *hp, size_t n, uint32_t base,
                     struct hull_sandbox_host_files *hf, hull_error *err)
{
    struct hull_id_mapping m[5];
    size_t nm = swap_map(base, m);
    cleanup_close int userns = hull_idmap_userns(m, nm, &hf->userns, err);
    if (userns < 0)
        return -1;
    for (size_t i = 0; i < n; i++) {
        int r = hull_idmap_clone(hp[i].path, userns, MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV, true,
                                 &hp[i].tree, err);
        if (r < 0)
            return hull_error_prefix(err, "%s %s", hp[i].what, hp[i].path);
        if (r > 0) {
            say_fallback(&hp[i], userns, hf);
            return 1;
        }
    }
    return 0;
}

int hull_sandbox_host_files_mount(struct hull_sandbox_host_files *hf, const struct hull_policy *p,
                                  struct hull_sandbox_ids *ids, hull_error *err)
{
    memset(hf, 0, sizeof(*hf));
    if (p->isolation != HULL_ISOLATION_CONTAINER || ids->base == HULL_SANDBOX_UID_BASE ||
        (p->n_binds == 0 && (p->rootfs == NULL || p->image)))
        return 0;
    struct host_path *hp = calloc(p->n_binds + 1, sizeof(*hp));
    hf->stacked = calloc(p->n_binds + 1, sizeof(char *));
    if (hp == NULL || hf->stacked == NULL) {
        free(hp);
        return hull_error_set(err, ENOMEM, "out of memory");
    }
    size_t n = 0;
    int r = collect(p, hp, &n, err);
    if (r == 0)
        r = reach_all(hp, n, ids->base, hf);
    if (r == 0)
        r = hull_sandbox_private_mounts(err) < 0 ? -1 : clone_all(hp, n, ids->base, hf, err);
    for (size_t i = 0; r == 0 && i < n; i++) {
        r = hull_idmap_attach(hp[i].tree, hp[i].path, hp[i].path, err);
        if (r < 0) {
            hull_error_prefix(err, "%s %s", hp[i].what, hp[i].path);
        } else {
            hf->stacked[hf->n_stacked++] = hp[i].path;
            hp[i].path = NULL;
        }
    }
    for (size_t i = 0; i < n; i++) {
        hull_closep(&hp[i].tree);
        free(hp[i].path);
    }
    free(hp);
    /* The killed helper is most likely gone by now: reaped here if so. */
    hull_idmap_reap(&hf->userns, false);
    if (r > 0) /* the shared block, whose uids the files are made for */
        ids->base = HULL_SANDBOX_UID_BASE;
    return r < 0 ? -1 : 0;
}

void hull_sandbox_host_files_warn(const struct hull_sandbox_host_files *hf)
{
    if (hf->fallback[0])
        hull_warn("%s", hf->fallback);
}

void hull_sandbox_host_files_close(struct hull_sandbox_host_files *hf)
{
    /* Last stacked first: each unmount uncovers what was below it. */
    for (size_t i = hf->n_stacked; i-- > 0;) {
        if (umount2(hf->stacked[i], MNT_DETACH | UMOUNT_NOFOLLOW) < 0)
            hull_debug("umount %s: %s", hf->stacked[i], strerror(errno));
        free(hf->stacked[i]);
    }
    free(hf->stacked);
    hf->stacked = NULL;
    hf->n_stacked = 0;
    hull_idmap_reap(&hf->userns, true);
}
