/* hull image import | load | save | bundle: images in and out of files. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "image/archive.h"
#include "image_cli.h"
#include "util/fs.h"
#include "util/json.h"
#include "util/strv.h"

#define DEFAULT_PATH "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

int img_parse_compression(const char *s, enum image_compression *out)
{
    if (strcmp(s, "zstd") == 0)
        *out = IMAGE_COMPRESS_ZSTD;
    else if (strcmp(s, "gzip") == 0)
        *out = IMAGE_COMPRESS_GZIP;
    else if (strcmp(s, "none") == 0)
        *out = IMAGE_COMPRESS_NONE;
    else
        return -1;
    return 0;
}

/* CMD/ENTRYPOINT: a JSON array, or a shell command run by /bin/sh -c. */
static json_object *command_value(const char *v)
{
    json_object *a = NULL;
    if (v[0] == '[') {
        a = json_tokener_parse(v);
        bool ok = a != NULL && json_object_is_type(a, json_type_array);
        for (size_t i = 0; ok && i < json_object_array_length(a); i++)
            ok = json_object_is_type(json_object_array_get_idx(a, i), json_type_string);
        if (ok)
            return a;
        json_object_put(a);
        return NULL;
    }
    a = json_object_new_array();
    json_object_array_add(a, json_object_new_string("/bin/sh"));
    json_object_array_add(a, json_object_new_string("-c"));
    json_object_array_add(a, json_object_new_string(v));
    return a;
}

static void env_set(json_object *env, const char *kv)
{
    size_t klen = strcspn(kv, "=");
    for (size_t i = 0; i < json_object_array_length(env); i++) {
        const char *e = json_object_get_string(json_object_array_get_idx(env, i));
        if (strncmp(e, kv, klen) == 0 && e[klen] == '=') {
            json_object_array_put_idx(env, i, json_object_new_string(kv));
            return;
        }
    }
    json_object_array_add(env, json_object_new_string(kv));
}

static json_object *sub_object(json_object *conf, const char *key)
{
    json_object *o = hj_get(conf, key);
    if (o == NULL) {
        o = json_object_new_object();
        json_object_object_add(conf, key, o);
    }
    return o;
}

/* One --change "INSTRUCTION VALUE" (a Containerfile instruction) applied to
 * the image config's "config" object. */
static int apply_change(json_object *conf, const char *change, hull_error *err)
{
    char word[16];
    size_t wlen = strcspn(change, " \t");
    const char *v = change + wlen + strspn(change + wlen, " \t");
    if (wlen == 0 || wlen >= sizeof(word) || v[0] == '\0')
        return hull_error_set(err, EINVAL, "--change '%s': want INSTRUCTION VALUE", change);
    for (size_t i = 0; i < wlen; i++)
        word[i] = (char)(change[i] >= 'a' && change[i] <= 'z' ? change[i] - 32 : change[i]);
    word[wlen] = '\0';
    if (strcmp(word, "CMD") == 0 || strcmp(word, "ENTRYPOINT") == 0) {
        json_object *a = command_value(v);
        if (a == NULL)
            return hull_error_set(err, EINVAL, "--change '%s': not a JSON array of strings",
                                  change);
        json_object_object_add(conf, word[0] == 'C' ? "Cmd" : "Entrypoint", a);
    } else if (strcmp(word, "ENV") == 0) {
        char kv[4096];
        size_t k = strcspn(v, "= \t");
        snprintf(kv, sizeof(kv), "%.*s=%s", (int)k, v,
                 v[k] == '\0' ? "" : v + k + 1 + strspn(v + k + 1, v[k] == '=' ? "" : " \t"));
        env_set(sub_object(conf, "Env"), kv);
    } else if (strcmp(word, "WORKDIR") == 0) {
        json_object_object_add(conf, "WorkingDir", json_object_new_string(v));
    } else if (strcmp(word, "USER") == 0) {
        json_object_object_add(conf, "User", json_object_new_string(v));
    } else if (strcmp(word, "STOPSIGNAL") == 0) {
        json_object_object_add(conf, "StopSignal", json_object_new_string(v));
    } else if (strcmp(word, "EXPOSE") == 0) {
        char port[64];
        snprintf(port, sizeof(port), "%s%s", v, strchr(v, '/') ? "" : "/tcp");
        json_object_object_add(sub_object(conf, "ExposedPorts"), port, json_object_new_object());
    } else if (strcmp(word, "LABEL") == 0) {
        const char *eq = strchr(v, '=');
        if (eq == NULL)
            return hull_error_set(err, EINVAL, "--change '%s': want LABEL KEY=VALUE", change);
        char key[512];
        snprintf(key, sizeof(key), "%.*s", (int)(eq - v), v);
        json_object_object_add(sub_object(conf, "Labels"), key, json_object_new_string(eq + 1));
    } else {
        return hull_error_set(err, EINVAL,
                              "--change '%s': %s is not one of CMD, ENTRYPOINT, ENV, WORKDIR, "
                              "USER, EXPOSE, LABEL, STOPSIGNAL",
                              change, word);
    }
    return 0;
}

/* The operand as a reference the store names images by (usage checked
 * before anything is read or written). */
static char *checked_name(const char *text, hull_error *err)
{
    cleanup_image_ref struct image_ref ref = {0};
    if (image_ref_parse(text, &ref, err) < 0)
        return NULL;
    if (ref.digest != NULL) {
        hull_error_set(err, EINVAL, "a new image's name cannot hold a digest");
        return NULL;
    }
    return image_ref_name(&ref);
}

static int open_input(const char *path, hull_error *err)
{
    /* A FIFO without a writer opens at once and reads as empty (refused
     * as no archive), as every other verb's input, instead of waiting in
     * the open forever. */
    int fd =
        strcmp(path, "-") == 0 ? fcntl(STDIN_FILENO, F_DUPFD_CLOEXEC, 3) : hull_open_input(path);
    if (fd < 0)
        return hull_error_errno(err, "open %s", path);
    /* A directory opens, and libarchive would then say "Error reading fd
     * 3": said as what it is. */
    struct stat st;
    if (fstat(fd, &st) == 0 && S_ISDIR(st.st_mode)) {
        close(fd);
        return hull_error_set(err, EISDIR, "%s: is a directory, not an archive", path);
    }
    return fd;
}

static void help_import(void)
{
    printf("usage: hull image import [--change INSTR]... [--compression zstd|gzip|none]\n"
           "                         TARBALL|- NAME\n"
           "\n"
           "Make a one-layer image NAME from a root filesystem tarball (plain, gzip or\n"
           "zstd; '-' reads standard input). Entries that would land outside the root\n"
           "are refused. Prints the manifest digest.\n"
           "\n"
           "  -c, --change INSTR   a Containerfile instruction for the config: CMD,\n"
           "                       ENTRYPOINT, ENV, WORKDIR, USER, EXPOSE, LABEL or\n"
           "                       STOPSIGNAL, e.g. --change 'CMD [\"/bin/sh\"]'\n"
           "  --compression ALG    of the layer: zstd (default), gzip or none\n");
}

int img_import(struct img_cli *c, int argc, char **argv)
{
    static const struct option opts[] = {
        {"change", required_argument, NULL, 'c'},
        {"compression", required_argument, NULL, 'C'},
        {0},
    };
    hull_error err = NULL;
    cleanup_json json_object *conf = json_object_new_object();
    json_object *env = json_object_new_array();
    json_object_array_add(env, json_object_new_string(DEFAULT_PATH));
    json_object_object_add(conf, "Env", env);
    enum image_compression comp = IMAGE_COMPRESS_ZSTD;
    int opt;
    while ((opt = img_getopt(c, argc, argv, "c:", opts)) != -1) {
        if (opt == 'h') {
            help_import();
            return 0;
        } else if (opt == 'c') {
            if (apply_change(conf, optarg, &err) < 0)
                return img_fail(c, &err, NULL);
        } else if (opt == 'C') {
            if (img_parse_compression(optarg, &comp) < 0)
                return img_usage(c, "--compression: '%s' is not zstd, gzip or none", optarg);
        } else {
            return 1;
        }
    }
    if (img_need_args(c, argc, argv, 2, "TARBALL and NAME") != 0)
        return 1;
    const char *src = argv[optind], *text = argv[optind + 1];
    cleanup_free char *name = checked_name(text, &err);
    if (name == NULL)
        return img_fail(c, &err, "%s", text);
    cleanup_close int fd = open_input(src, &err);
    if (fd < 0)
        return img_fail(c, &err, "%s", text);
    cleanup_image_store struct image_store s = {.rootfd = -1, .lockfd = -1};
    cleanup_free char *digest = NULL;
    if (img_open_store(c, true, &s, &err) < 0 ||
        image_import(&s, fd, name, conf, comp, &digest, &err) < 0)
        return img_fail(c, &err, "%s", text);
    printf("%s\n", digest);
    return 0;
}

static void help_load(void)
{
    printf("usage: hull image load [-i FILE]\n"
           "\n"
           "Load the images of a docker-archive (docker save, podman save, hull image\n"
           "save) or an oci-archive, told apart by their contents; compressed archives\n"
           "are fine. Every blob is checked against its digest; names are added only\n"
           "when the whole archive is good. Prints each name and manifest digest.\n"
           "\n"
           "  -i, --input FILE   the archive (default, or '-': standard input)\n");
}

int img_load(struct img_cli *c, int argc, char **argv)
{
    static const struct option opts[] = {{"input", required_argument, NULL, 'i'}, {0}};
    const char *input = "-";
    int opt;
    while ((opt = img_getopt(c, argc, argv, "i:", opts)) != -1) {
        if (opt == 'h') {
            help_load();
            return 0;
        } else if (opt == 'i') {
            input = optarg;
        } else {
            return 1;
        }
    }
    if (img_need_args(c, argc, argv, 0, "") != 0)
        return 1;
    if (strcmp(input, "-") == 0 && isatty(STDIN_FILENO))
        return img_usage(c, "standard input is a terminal (give -i FILE or a pipe)");
    hull_error err = NULL;
    cleanup_close int fd = open_input(input, &err);
    if (fd < 0)
        return img_fail(c, &err, "%s", input);
    cleanup_image_store struct image_store s = {.rootfd = -1, .lockfd = -1};
    cleanup_strv char **names = NULL, **digests = NULL;
    if (img_open_store(c, true, &s, &err) < 0 ||
        image_archive_load(&s, fd, &names, &digests, &err) < 0)
        return img_fail(c, &err, "%s", input);
    for (size_t i = 0; names != NULL && names[i] != NULL; i++) {
        if (c->quiet)
            printf("%s\n", digests[i]);
        else
            printf("Loaded image: %s %s\n", names[i], digests[i]);
    }
    return 0;
}

static void help_save(void)
{
    printf("usage: hull image save [-o FILE] [--format docker-archive|oci-archive] IMAGE\n"
           "\n"
           "Write IMAGE (its manifest, config and layers, unchanged: loading the file\n"
           "gives the same manifest digest) as a tar that docker/podman load\n"
           "(docker-archive, the default) or skopeo's oci-archive: reads.\n"
           "\n"
           "  -o, --output FILE   where (default: standard output, unless a terminal);\n"
           "                      FILE appears complete or not at all\n"
           "  --format FMT        docker-archive (default) or oci-archive\n");
}

static int save_to(struct img_cli *c, struct image_store *s, const char *text, const char *out,
                   enum image_archive_format f, hull_error *err)
{
    if (out == NULL || strcmp(out, "-") == 0)
        return image_archive_save(s, text, c->platform, f, STDOUT_FILENO, err);
    /* Beside the target, renamed when complete. */
    char tmp[PATH_MAX];
    snprintf(tmp, sizeof(tmp), "%s.tmp-XXXXXX", out);
    cleanup_close int fd = mkostemp(tmp, O_CLOEXEC);
    if (fd < 0)
        return hull_error_errno(err, "create %s", tmp);
    if (image_archive_save(s, text, c->platform, f, fd, err) < 0 || fchmod(fd, 0644) < 0 ||
        fsync(fd) < 0 || rename(tmp, out) < 0) {
        if (*err == NULL)
            hull_error_errno(err, "write %s", out);
        unlink(tmp);
        return -1;
    }
    return 0;
}

int img_save(struct img_cli *c, int argc, char **argv)
{
    static const struct option opts[] = {{"output", required_argument, NULL, 'o'}, {0}};
    const char *out = NULL;
    int opt;
    while ((opt = img_getopt(c, argc, argv, "o:", opts)) != -1) {
        if (opt == 'h') {
            help_save();
            return 0;
        } else if (opt == 'o') {
            out = optarg;
        } else {
            return 1;
        }
    }
    if (img_need_args(c, argc, argv, 1, "IMAGE") != 0)
        return 1;
    enum image_archive_format f = IMAGE_ARCHIVE_DOCKER;
    if (c->format != NULL && strcmp(c->format, "oci-archive") == 0)
        f = IMAGE_ARCHIVE_OCI;
    else if (c->format != NULL && strcmp(c->format, "docker-archive") != 0)
        return img_usage(c, "--format: '%s' is not docker-archive or oci-archive", c->format);
    if ((out == NULL || strcmp(out, "-") == 0) && isatty(STDOUT_FILENO))
        return img_usage(c, "standard output is a terminal (give -o FILE)");
    const char *text = argv[optind];
    hull_error err = NULL;
    cleanup_image_store struct image_store s = {.rootfd = -1, .lockfd = -1};
    if (img_open_store(c, false, &s, &err) < 0 || save_to(c, &s, text, out, f, &err) < 0)
        return img_fail(c, &err, "%s", text);
    return 0;
}

static void help_bundle(void)
{
    printf("usage: hull image bundle [--platform OS/ARCH] IMAGE DIR\n"
           "\n"
           "Make an OCI bundle of IMAGE in DIR (which must not exist, or be empty):\n"
           "DIR/rootfs, a copy of the image's files, and DIR/config.json, hull's\n"
           "default spec with the image's command (Entrypoint + Cmd), environment,\n"
           "working directory and user (names resolved in the image's /etc/passwd),\n"
           "and its exposed ports, stop signal and labels as annotations. Run it with\n"
           "'hull run --bundle DIR ID'. On error DIR is left as it was.\n");
}

int img_bundle(struct img_cli *c, int argc, char **argv)
{
    static const struct option opts[] = {{0}};
    int opt;
    while ((opt = img_getopt(c, argc, argv, "", opts)) != -1) {
        if (opt == 'h') {
            help_bundle();
            return 0;
        }
        return 1;
    }
    if (img_need_args(c, argc, argv, 2, "IMAGE and DIR") != 0)
        return 1;
    const char *text = argv[optind], *dir = argv[optind + 1];
    hull_error err = NULL;
    cleanup_image_store struct image_store s = {.rootfd = -1, .lockfd = -1};
    if (img_open_store(c, false, &s, &err) < 0 ||
        image_bundle(&s, text, c->platform, dir, &err) < 0)
        return img_fail(c, &err, "%s", text);
    return 0;
}
