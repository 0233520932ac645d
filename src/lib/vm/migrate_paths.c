/* The files a migration's manifest names, confined (migrate_recv.c).
 *
 * A snapshot's manifest is signed with this host's key, so its paths are
 * this host's own. A migration's manifest is the peer's: any source that
 * passed the handshake (any certificate of the fleet's CA, or the token)
 * names the kernel, initramfs and disk the receiver hashes and hands to
 * QEMU. Unchecked, a source could have any file of the receiver's host
 * attached to its guest as a disk (a bind mount skips the directories'
 * permissions), learn any file's sha256 from the refusal, or hang the
 * receiver on /dev/zero. So each file must be a regular one where hull
 * keeps such files: the vmlinux, initramfs and rootfs in this host's VM
 * cache (an image's disk in its store's hull/disks), under their real
 * paths, which replace the peer's in the manifest. */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "util/error.h"
#include "util/json.h"
#include "vm/migrate.h"
#include "vm/vm.h"

/* real: the real path of a regular file directly in the directory dir
 * (itself resolved here). */
static bool in_dir(const char *real, const char *dir)
{
    char rd[PATH_MAX];
    if (!realpath(dir, rd))
        return false;
    size_t n = strlen(rd);
    return strncmp(real, rd, n) == 0 && real[n] == '/' && !strchr(real + n + 1, '/');
}

/* An image's disk: <store>/hull/disks/<manifest hex>.sqfs of a store
 * (it has an oci-layout file) and of the manifest's image. */
static bool image_disk(const char *real, json_object *m)
{
    json_object *img = hj_get(m, "image"), *d = img ? hj_get(img, "digest") : NULL;
    const char *digest = d ? json_object_get_string(d) : "";
    if (strncmp(digest, "sha256:", 7) != 0 || strlen(digest) != 7 + 64)
        return false;
    char want[128], store[PATH_MAX];
    snprintf(want, sizeof(want), "/hull/disks/%s.sqfs", digest + 7);
    size_t n = strlen(real), w = strlen(want);
    if (n <= w || n - w >= sizeof(store) - 16 || strcmp(real + n - w, want) != 0)
        return false;
    snprintf(store, sizeof(store), "%.*s/oci-layout", (int)(n - w), real);
    struct stat st;
    return stat(store, &st) == 0 && S_ISREG(st.st_mode);
}

/* The manifest's m[what].key: a regular file, then confined (dir: its
 * cache subdirectory, or NULL for the kernel's bzImage, which is only
 * hashed); the peer's path replaced by the real one. */
static int confine(json_object *m, const char *what, const char *key, const char *dir,
                   hull_error *err)
{
    json_object *o = hj_get(m, what), *v = o ? hj_get(o, key) : NULL;
    const char *path = v ? json_object_get_string(v) : "";
    const char *name = strcmp(key, "path") == 0 ? what : key;
    char real[PATH_MAX];
    struct stat st;
    if (!path[0] || !realpath(path, real) || stat(real, &st) < 0 || !S_ISREG(st.st_mode))
        return hull_error_set(err, EPERM, "the %s %s named by the source is not a file here", name,
                              path);
    char sub[4096];
    if (dir && vm_cache_subdir(dir, sub, sizeof(sub), err) < 0)
        return -1;
    bool ok = !dir || in_dir(real, sub) || (strcmp(what, "rootfs") == 0 && image_disk(real, m));
    if (!ok)
        return hull_error_set(err, EPERM,
                              "the %s %s named by the source is not one of hull's (this host's "
                              "VM cache%s)",
                              name, path, strcmp(what, "rootfs") == 0 ? " or an image's disk" : "");
    json_object_object_add(o, key, json_object_new_string(real));
    return 0;
}

int mig_manifest_confine(json_object *m, hull_error *err)
{
    if (confine(m, "kernel", "path", NULL, err) < 0 ||
        confine(m, "kernel", "vmlinux", "kernels", err) < 0 ||
        confine(m, "initrd", "path", "initrd", err) < 0 ||
        confine(m, "rootfs", "path", "rootfs", err) < 0)
        return hull_error_prefix(err, "the source's manifest");
    return 0;
}
