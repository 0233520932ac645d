/* An image as an OCI bundle (`hull image bundle`, like `umoci unpack`):
 * DIR/rootfs is a flattened copy of the layers, DIR/config.json is hull's
 * default spec (what `hull spec` writes) with the image's process: its
 * entrypoint + cmd, environment, working directory and user, and its exposed
 * ports, stop signal and labels as annotations. Any OCI runtime can run the
 * result; nothing in it refers back to the store. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "image/archive.h"
#include "image/user.h"
#include "util/fs.h"
#include "util/json.h"
#include "util/log.h"
#include "util/strv.h"

#define DEFAULT_PATH "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

static json_object *strv_json(char *const *v)
{
    json_object *a = json_object_new_array();
    for (size_t i = 0; v != NULL && v[i] != NULL; i++)
        json_object_array_add(a, json_object_new_string(v[i]));
    return a;
}

static void set_process(json_object *proc, const struct image_config *c,
                        const struct image_user *ids)
{
    json_object_object_add(proc, "terminal", json_object_new_boolean(false));
    if (hull_strv_len(c->entrypoint) + hull_strv_len(c->cmd) > 0) {
        json_object *args = strv_json(c->entrypoint);
        for (size_t i = 0; c->cmd != NULL && c->cmd[i] != NULL; i++)
            json_object_array_add(args, json_object_new_string(c->cmd[i]));
        json_object_object_add(proc, "args", args);
    }
    json_object *env = strv_json(c->env);
    bool has_path = false;
    for (size_t i = 0; c->env != NULL && c->env[i] != NULL; i++)
        has_path = has_path || strncmp(c->env[i], "PATH=", 5) == 0;
    if (!has_path)
        json_object_array_add(env, json_object_new_string(DEFAULT_PATH));
    json_object_object_add(proc, "env", env);
    json_object_object_add(
        proc, "cwd",
        json_object_new_string(c->working_dir && c->working_dir[0] ? c->working_dir : "/"));
    json_object *user = json_object_new_object();
    json_object_object_add(user, "uid", json_object_new_int64(ids->uid));
    json_object_object_add(user, "gid", json_object_new_int64(ids->gid));
    if (ids->n_extra > 0) {
        json_object *g = json_object_new_array();
        for (size_t i = 0; i < ids->n_extra; i++)
            json_object_array_add(g, json_object_new_int64(ids->extra[i]));
        json_object_object_add(user, "additionalGids", g);
    }
    json_object_object_add(proc, "user", user);
}

static json_object *annotations(const struct image *img)
{
    const struct image_config *c = &img->config;
    json_object *ann = json_object_new_object();
    /* Labels first: the image-spec keys below win over a label of that name. */
    if (c->labels != NULL) {
        json_object_object_foreach(c->labels, k, v)
        {
            if (json_object_is_type(v, json_type_string))
                json_object_object_add(ann, k, json_object_get(v));
        }
    }
    if (c->os != NULL)
        json_object_object_add(ann, "org.opencontainers.image.os", json_object_new_string(c->os));
    if (c->arch != NULL)
        json_object_object_add(ann, "org.opencontainers.image.architecture",
                               json_object_new_string(c->arch));
    if (c->exposed_ports != NULL && c->exposed_ports[0] != NULL) {
        size_t len = 1;
        for (size_t i = 0; c->exposed_ports[i] != NULL; i++)
            len += strlen(c->exposed_ports[i]) + 1;
        cleanup_free char *ports = calloc(1, len);
        for (size_t i = 0; ports != NULL && c->exposed_ports[i] != NULL; i++) {
            if (i > 0)
                strcat(ports, ",");
            strcat(ports, c->exposed_ports[i]);
        }
        if (ports != NULL)
            json_object_object_add(ann, "org.opencontainers.image.exposedPorts",
                                   json_object_new_string(ports));
    }
    if (c->stop_signal != NULL)
        json_object_object_add(ann, "org.opencontainers.image.stopSignal",
                               json_object_new_string(c->stop_signal));
    if (img->entry.name != NULL)
        json_object_object_add(ann, "org.opencontainers.image.ref.name",
                               json_object_new_string(img->entry.name));
    json_object_object_add(ann, "org.opencontainers.image.manifest.digest",
                           json_object_new_string(img->manifest_digest));
    return ann;
}

static int write_config(const struct image *img, const char *dir, int rootfd, hull_error *err)
{
    struct image_user ids;
    if (image_user_resolve(rootfd, img->config.user, &ids, err) < 0)
        return -1;
    cleanup_free char *def = hull_spec_default_json(geteuid() != 0);
    if (def == NULL)
        return hull_error_set(err, ENOMEM, "out of memory");
    cleanup_json json_object *spec = NULL;
    if (hj_parse(def, strlen(def), "the default spec", &spec, err) < 0)
        return -1;
    set_process(hj_get(spec, "process"), &img->config, &ids);
    json_object *root = json_object_new_object();
    json_object_object_add(root, "path", json_object_new_string("rootfs"));
    /* A copy of its own, as umoci's: the workload may write to it. */
    json_object_object_add(root, "readonly", json_object_new_boolean(false));
    json_object_object_add(spec, "root", root);
    json_object_object_add(spec, "annotations", annotations(img));
    const char *text = json_object_to_json_string_ext(spec, JSON_C_TO_STRING_PRETTY |
                                                                JSON_C_TO_STRING_NOSLASHESCAPE);
    char path[PATH_MAX];
    snprintf(path, sizeof(path), "%s/config.json", dir);
    return hull_write_path_atomic(path, text, strlen(text), 0644, err);
}

/* dir is made here (true) or is an existing empty directory (false).
 * Either way it ends up 0700, as umoci's: the rootfs below keeps the
 * image's owners, setuid bits and device nodes, which an image's author
 * chose; a directory others can enter would hand them a setuid-root shell
 * or a raw disk. */
static int claim_dir(const char *dir, bool *made, hull_error *err)
{
    if (mkdir(dir, 0700) == 0) {
        *made = true;
        return 0;
    }
    if (errno != EEXIST)
        return hull_error_errno(err, "mkdir %s", dir);
    cleanup_dir DIR *d = opendir(dir);
    if (d == NULL)
        return hull_error_errno(err, "%s", dir);
    struct dirent *e;
    while ((e = readdir(d)) != NULL)
        if (strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0)
            return hull_error_set(err, EEXIST, "%s is not empty (refusing to write into it)", dir);
    if (fchmod(dirfd(d), 0700) < 0)
        return hull_error_errno(err, "chmod 0700 %s", dir);
    *made = false;
    return 0;
}

static int fill(struct image_store *s, const struct image *img, const char *dir, hull_error *err)
{
    char rootfs[PATH_MAX];
    snprintf(rootfs, sizeof(rootfs), "%s/rootfs", dir);
    if (image_unpack_all(s, img, err) < 0)
        return -1;
    if (mkdir(rootfs, 0755) < 0)
        return hull_error_errno(err, "mkdir %s", rootfs);
    if (image_rootfs_flatten(s, img, rootfs, err) < 0)
        return -1;
    cleanup_close int rootfd = open(rootfs, O_PATH | O_DIRECTORY | O_CLOEXEC);
    if (rootfd < 0)
        return hull_error_errno(err, "open %s", rootfs);
    return write_config(img, dir, rootfd, err);
}

int image_bundle(struct image_store *s, const char *text, const char *platform, const char *dir,
                 hull_error *err)
{
    cleanup_image struct image img = {0};
    if (image_load(s, text, platform, &img, err) < 0)
        return -1;
    bool made = false;
    if (claim_dir(dir, &made, err) < 0)
        return -1;
    if (fill(s, &img, dir, err) == 0)
        return 0;
    /* Nothing half-made: the directory as it was before. A failure to clean
     * up is logged; the error the caller sees is the one that stopped us. */
    cleanup_hull_error hull_error e = NULL;
    if (made) {
        if (hull_rm_rf_at(AT_FDCWD, dir, &e) < 0)
            hull_warn("bundle: removing %s: %s", dir, hull_error_msg(e));
        return -1;
    }
    cleanup_close int dfd = open(dir, O_PATH | O_DIRECTORY | O_CLOEXEC);
    if (dfd < 0 || hull_rm_rf_at(dfd, "rootfs", &e) < 0 ||
        (unlinkat(dfd, "config.json", 0) < 0 && errno != ENOENT))
        hull_warn("bundle: emptying %s: %s", dir, e ? hull_error_msg(e) : strerror(errno));
    return -1;
}
