/* A sandbox rooted in an OCI image (policy.image), at process and
 * container level: the run is the same container as with --rootfs, whose
 * root is the image's layers read-only with hull's layer of empty /tmp,
 * /proc and /dev on top (vm/image.c), and whose command, environment and
 * working directory come from the image's config where the policy leaves
 * them open.
 *
 * The overlay is mounted in a private mount namespace of the supervisor
 * (unshare, then / made a slave so nothing mounted here propagates back):
 * the sandbox's init is cloned from the supervisor and inherits it, the
 * host never sees it, and when the supervisor dies, however it dies, the
 * namespace and the mount die with it. The image is marked in use
 * (image_use) until the run is over, so `hull image remove` refuses it.
 *
 * At container level the layers are idmapped there with the sandbox's own
 * mapping first, so the image's files keep the image's owners inside its
 * user namespace, and the image's User becomes the workload's user.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <unistd.h>

#include "sandbox/sandbox.h"
#include "util/error.h"
#include "util/fs.h"
#include "util/log.h"
#include "util/strv.h"
#include "vm/vm.h"

#define IMAGE_LOWER HULL_SANDBOX_EMPTY_ROOT "/image-lower"
#define IMAGE_ROOT  HULL_SANDBOX_EMPTY_ROOT "/image-root"
/* hull's base layer (vm/image.c) idmapped, when the kernel can. */
#define IMAGE_BASE_IDMAPPED HULL_SANDBOX_EMPTY_ROOT "/image-base-idmapped"

/* Entrypoint + the command given, or Entrypoint + Cmd without one. */
static int image_argv(const struct vm_image *vi, char *const *user, bool need, char ***out,
                      hull_error *err)
{
    const struct image_config *c = &vi->img.config;
    bool given = user && user[0];
    char **v = calloc(1, sizeof(char *));
    for (char **e = c->entrypoint; v && e && *e; e++)
        if (hull_strv_append(&v, *e) < 0)
            hull_strv_freep(&v);
    for (char *const *a = given ? user : c->cmd; v && a && *a; a++)
        if (hull_strv_append(&v, *a) < 0)
            hull_strv_freep(&v);
    if (v == NULL)
        return hull_error_set(err, ENOMEM, "out of memory");
    if (need && (v[0] == NULL || v[0][0] == '\0')) {
        hull_strv_free(v);
        return hull_error_set(err, EINVAL, "cmd: image %s has no Entrypoint or Cmd: give a command",
                              vm_image_name(vi));
    }
    *out = v;
    return 0;
}

int hull_sandbox_image_open(const struct hull_policy *p, struct hull_sandbox_image *si,
                            struct hull_policy *eff, bool need_cmd, hull_error *err)
{
    memset(si, 0, sizeof(*si));
    si->vi.use_fd = -1;
    *eff = *p;
    if (p->image == NULL)
        return 0;
    if (p->rootfs)
        return hull_error_set(err, EINVAL, "--image and --rootfs: give one root, not both");
    if (vm_image_open(p->image_root, p->image, p->pull, &si->vi, err) < 0)
        return -1;
    si->open = true;
    const struct image_config *c = &si->vi.img.config;
    if (image_argv(&si->vi, p->argv, need_cmd, &si->argv, err) < 0)
        return -1;
    /* The image's Env under the policy's (--env wins). */
    if ((si->env = vm_env_merge(c->env, p->env)) == NULL)
        return hull_error_set(err, ENOMEM, "out of memory");
    if (p->workdir == NULL && c->working_dir && c->working_dir[0] &&
        (si->workdir = strdup(c->working_dir)) == NULL)
        return hull_error_set(err, ENOMEM, "out of memory");
    eff->argv = si->argv;
    eff->env = si->env;
    if (si->workdir)
        eff->workdir = si->workdir;
    return 0;
}

/* A user namespace whose maps are exactly a container-level sandbox's
 * (layout.c: container ids 0..HULL_SANDBOX_ID_RANGE-1 -> host ids from
 * si->uid_base), as an fd; its helper is reaped at close. */
static int sandbox_userns(struct hull_sandbox_image *si, hull_error *err)
{
    struct hull_id_mapping m = {0, si->uid_base, HULL_SANDBOX_ID_RANGE};
    return hull_idmap_userns(&m, 1, &si->userns, err);
}

/* path's mount cloned, idmapped with userns, read-only, nosuid, nodev,
 * and attached at dest (over path itself when dest is path) in this
 * private mount namespace. 1 when this kernel or filesystem cannot idmap
 * it (no mount_setattr or MOUNT_ATTR_IDMAP, a filesystem without idmapped
 * mounts: tmpfs before 6.3...): path is left as it was. */
static int idmap_over(const char *path, const char *dest, int userns, hull_error *err)
{
    cleanup_close int tree = -1;
    int r = hull_idmap_clone(path, userns, MOUNT_ATTR_RDONLY | MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV,
                             false, &tree, err);
    if (r != 0)
        return r;
    return hull_idmap_attach(tree, path, dest, err);
}

/* The layers the root is made of, seen with the sandbox's own mapping:
 * the store's layer directory idmapped over itself in this private
 * namespace, so the overlay built from them shows a file the image's uid
 * 1000 owns as uid 1000 inside, not nobody. Overlayfs takes idmapped
 * layers (Linux 5.19) but cannot itself be idmapped, so the layers are.
 * *userns keeps the namespace for hull's base layer (image_base). 1 when
 * the kernel cannot: the caller warns and keeps the owners as they are. */
static int idmap_layers(struct hull_sandbox_image *si, int *userns_out, hull_error *err)
{
    const char *how = getenv("HULL_IMAGE_IDMAP");
    if (how && strcmp(how, "off") == 0)
        return 1;
    if (snprintf(si->layers, sizeof(si->layers), "%s/hull/layers", si->vi.store.root) >=
        (int)sizeof(si->layers))
        return hull_error_set(err, ENAMETOOLONG, "%s: path too long", si->vi.store.root);
    cleanup_close int userns = sandbox_userns(si, err);
    if (userns < 0)
        return -1;
    int r = idmap_over(si->layers, si->layers, userns, err);
    if (r != 0)
        return r;
    si->layers_idmapped = true;
    /* The store's fd was opened in the namespace before: lookups through
     * it would not cross the mount just made. */
    int fd = open(si->vi.store.root, O_PATH | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return hull_error_errno(err, "reopen %s", si->vi.store.root);
    close(si->vi.store.rootfd);
    si->vi.store.rootfd = fd;
    *userns_out = userns;
    userns = -1;
    return 0;
}

struct image_base_ctx {
    struct hull_sandbox_image *si;
    int userns; /* -1: the layers are not idmapped */
};

/* hull's layer only shows where an image lacks /tmp, /proc or /dev (most
 * have all three: then this is never called), and then only its root
 * directory is seen (its three directories are mounted over): idmapped
 * where tmpfs can be, else left root's (*path NULL: VM_IMAGE_BASE). */
static int image_base(void *arg, const char **path, hull_error *err)
{
    struct image_base_ctx *c = arg;
    *path = NULL;
    if (c->userns < 0)
        return 0;
    if (vm_image_base_layer(err) < 0 || hull_mkdir_p(IMAGE_BASE_IDMAPPED, 0755, err) < 0)
        return -1;
    int r = idmap_over(VM_IMAGE_BASE, IMAGE_BASE_IDMAPPED, c->userns, err);
    if (r < 0)
        return -1;
    c->si->base_idmapped = r == 0;
    if (r == 0)
        *path = IMAGE_BASE_IDMAPPED;
    return 0;
}

/* The image's User, resolved in its own /etc/passwd and /etc/group, as
 * the sandbox's user: it must be an id the sandbox's user namespace maps. */
static int image_user(struct hull_sandbox_image *si, const char *root, hull_error *err)
{
    const char *spec = si->vi.img.config.user;
    if (spec == NULL || spec[0] == '\0')
        return 0;
    cleanup_close int rootfd = open(root, O_PATH | O_DIRECTORY | O_CLOEXEC);
    if (rootfd < 0)
        return hull_error_errno(err, "image %s: open its root", vm_image_name(&si->vi));
    struct image_user *u = &si->user;
    if (image_user_resolve(rootfd, spec, u, err) < 0)
        return hull_error_prefix(err, "image %s: User '%s'", vm_image_name(&si->vi), spec);
    if (u->uid >= HULL_SANDBOX_ID_RANGE || u->gid >= HULL_SANDBOX_ID_RANGE)
        return hull_error_set(err, ERANGE,
                              "image %s: User '%s' is %u:%u, outside the ids the sandbox maps "
                              "(0-%u)",
                              vm_image_name(&si->vi), spec, u->uid, u->gid,
                              HULL_SANDBOX_ID_RANGE - 1);
    /* Supplementary groups the sandbox cannot map are left out. */
    size_t k = 0;
    for (size_t i = 0; i < u->n_extra; i++)
        if (u->extra[i] < HULL_SANDBOX_ID_RANGE)
            u->extra[k++] = u->extra[i];
    u->n_extra = k;
    si->has_user = true;
    return 0;
}

int hull_sandbox_image_mount(struct hull_sandbox_image *si, struct hull_policy *eff,
                             uint32_t uid_base, hull_error *err)
{
    if (!si->open)
        return 0;
    si->uid_base = uid_base;
    if (hull_sandbox_private_mounts(err) < 0)
        return hull_error_prefix(err, "image %s", vm_image_name(&si->vi));
    /* Process level has no user namespace: the workload is a host uid of
     * its own, and the image's owners are what the host sees. */
    bool container = eff->isolation == HULL_ISOLATION_CONTAINER;
    cleanup_close int userns = -1;
    int r = container ? idmap_layers(si, &userns, err) : 0;
    if (r < 0)
        return hull_error_prefix(err, "image %s", vm_image_name(&si->vi));
    if (r > 0)
        hull_warn("image %s: this kernel cannot idmap its layers: its files show as owned by "
                  "nobody (65534) inside the sandbox",
                  vm_image_name(&si->vi));
    struct image_base_ctx base = {si, userns};
    if (vm_image_mount_base(&si->vi, IMAGE_LOWER, IMAGE_ROOT, image_base, &base, err) < 0)
        return -1;
    si->mounted = true;
    eff->rootfs = IMAGE_ROOT;
    /* The killed userns helper is most likely gone by now: reaped here if
     * so, so that a long-lived sandbox does not keep a zombie. */
    hull_idmap_reap(&si->userns, false);
    return container ? image_user(si, IMAGE_ROOT, err) : 0;
}

void hull_sandbox_image_close(struct hull_sandbox_image *si)
{
    if (si->mounted)
        vm_image_umount(IMAGE_LOWER, IMAGE_ROOT);
    /* Only the idmapped mounts stacked here: what is below stays. */
    if (si->base_idmapped && umount2(IMAGE_BASE_IDMAPPED, MNT_DETACH) < 0)
        hull_debug("umount %s: %s", IMAGE_BASE_IDMAPPED, strerror(errno));
    if (si->layers_idmapped && umount2(si->layers, MNT_DETACH) < 0)
        hull_debug("umount %s: %s", si->layers, strerror(errno));
    si->mounted = si->layers_idmapped = si->base_idmapped = si->has_user = false;
    hull_idmap_reap(&si->userns, true);
    if (si->open)
        vm_image_close(&si->vi);
    si->open = false;
    hull_strv_freep(&si->argv);
    hull_strv_freep(&si->env);
    free(si->workdir);
    si->workdir = NULL;
}

void hull_sandbox_image_result(const struct hull_sandbox_image *si, struct hull_result *r)
{
    if (!si->open)
        return;
    free(r->image);
    free(r->image_digest);
    r->image = strdup(vm_image_name(&si->vi));
    r->image_digest = strdup(si->vi.img.manifest_digest);
}
