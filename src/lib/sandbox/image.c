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
 */
#include <errno.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>

#include "sandbox/sandbox.h"
#include "util/error.h"
#include "util/log.h"
#include "util/strv.h"
#include "vm/vm.h"

#define IMAGE_LOWER HULL_SANDBOX_EMPTY_ROOT "/image-lower"
#define IMAGE_ROOT  HULL_SANDBOX_EMPTY_ROOT "/image-root"

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

int hull_sandbox_image_mount(struct hull_sandbox_image *si, struct hull_policy *eff,
                             hull_error *err)
{
    if (!si->open)
        return 0;
    /* Slave rather than private: the host's own later unmounts still
     * reach this namespace, so it pins nothing of theirs. */
    if (unshare(CLONE_NEWNS) < 0)
        return hull_error_errno(err, "image %s: private mount namespace", vm_image_name(&si->vi));
    if (mount(NULL, "/", NULL, MS_REC | MS_SLAVE, NULL) < 0)
        return hull_error_errno(err, "image %s: make / a slave", vm_image_name(&si->vi));
    if (vm_image_mount(&si->vi, IMAGE_LOWER, IMAGE_ROOT, err) < 0)
        return -1;
    si->mounted = true;
    eff->rootfs = IMAGE_ROOT;
    return 0;
}

void hull_sandbox_image_close(struct hull_sandbox_image *si)
{
    if (si->mounted)
        vm_image_umount(IMAGE_LOWER, IMAGE_ROOT);
    si->mounted = false;
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
