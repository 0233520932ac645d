/* imagetool: drives the image store's layer code (src/lib/image unpack.c,
 * rootfs.c, layer_write.c) from the command line for the integration tests,
 * before and beside hull-image.
 *
 *   imagetool unpack STORE REF                  unpack every layer of a stored image
 *   imagetool unpack-layer STORE DIGEST DIFFID  unpack one layer blob
 *   imagetool unpack-stopped STORE DIGEST DIFFID  the same, asked to stop
 *                                               (a cancelled pull's unpack)
 *   imagetool path STORE DIFFID                 print the layer's directory
 *   imagetool mount STORE REF TARGET [UPPER WORK]   overlay (read-only without UPPER)
 *   imagetool umount TARGET
 *   imagetool flatten STORE REF DIR
 *   imagetool write-layer [--upper] [--compression zstd|gzip|none] STORE DIR
 *                                               prints "DIGEST DIFFID MEDIATYPE SIZE"
 *
 * Errors are printed as "imagetool: <what>: <why>" with exit status 1; EPERM
 * exits 3 so tests can tell a refusal from other failures.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>

#include "image/image.h"
#include "util/error.h"

static int die(hull_error *err, const char *what)
{
    int code = hull_error_code(*err);
    fprintf(stderr, "imagetool: %s: %s\n", what, hull_error_msg(*err));
    hull_error_free(err);
    exit(code == EPERM ? 3 : 1);
}

static void usage(void)
{
    fprintf(stderr, "usage: imagetool unpack|unpack-layer|unpack-stopped|path|mount|umount|"
                    "flatten|write-layer ...\n");
    exit(2);
}

static void open_store(const char *root, bool create, struct image_store *s, hull_error *err)
{
    if (image_store_open(root, create, s, err) < 0)
        die(err, "open store");
}

static void load(struct image_store *s, const char *ref, struct image *img, hull_error *err)
{
    memset(img, 0, sizeof(*img));
    if (image_load(s, ref, NULL, img, err) < 0)
        die(err, ref);
}

static int cmd_write_layer(int argc, char **argv, hull_error *err)
{
    bool upper = false;
    enum image_compression c = IMAGE_COMPRESS_ZSTD;
    int i = 0;
    for (; i < argc && argv[i][0] == '-'; i++) {
        if (strcmp(argv[i], "--upper") == 0) {
            upper = true;
        } else if (strcmp(argv[i], "--compression") == 0 && i + 1 < argc) {
            const char *v = argv[++i];
            c = strcmp(v, "gzip") == 0   ? IMAGE_COMPRESS_GZIP
                : strcmp(v, "none") == 0 ? IMAGE_COMPRESS_NONE
                                         : IMAGE_COMPRESS_ZSTD;
        } else {
            usage();
        }
    }
    if (argc - i != 2)
        usage();
    cleanup_image_store struct image_store s = {.rootfd = -1, .lockfd = -1};
    open_store(argv[i], true, &s, err);
    struct image_desc d = {0};
    cleanup_free char *diff = NULL;
    if (image_layer_write(&s, argv[i + 1], upper, c, &d, &diff, err) < 0)
        die(err, "write layer");
    printf("%s %s %s %" PRId64 "\n", d.digest, diff, d.media_type, d.size);
    image_desc_free(&d);
    return 0;
}

int main(int argc, char **argv)
{
    hull_error err = NULL;
    if (argc < 3)
        usage();
    const char *cmd = argv[1];
    if (strcmp(cmd, "umount") == 0) {
        if (umount2(argv[2], 0) < 0) {
            hull_error_errno(&err, "umount %s", argv[2]);
            die(&err, "umount");
        }
        return 0;
    }
    if (strcmp(cmd, "write-layer") == 0)
        return cmd_write_layer(argc - 2, argv + 2, &err);
    cleanup_image_store struct image_store s = {.rootfd = -1, .lockfd = -1};
    if (strcmp(cmd, "unpack-layer") == 0 && argc == 5) {
        open_store(argv[2], false, &s, &err);
        if (image_layer_unpack(&s, argv[3], argv[4], &err) < 0)
            die(&err, "unpack");
        return 0;
    }
    if (strcmp(cmd, "unpack-stopped") == 0 && argc == 5) {
        atomic_bool stop;
        atomic_init(&stop, true);
        open_store(argv[2], false, &s, &err);
        if (image_layer_unpack_until(&s, argv[3], argv[4], &stop, &err) < 0) {
            /* the one failure it may have: exit 4 */
            if (hull_error_code(err) == ECANCELED) {
                fprintf(stderr, "imagetool: unpack: %s\n", hull_error_msg(err));
                hull_error_free(&err);
                return 4;
            }
            die(&err, "unpack");
        }
        return 0;
    }
    if (strcmp(cmd, "path") == 0 && argc == 4) {
        open_store(argv[2], false, &s, &err);
        cleanup_free char *p = image_layer_path(&s, argv[3], &err);
        if (p == NULL)
            die(&err, "path");
        printf("%s\n", p);
        return 0;
    }
    if (argc < 4)
        usage();
    open_store(argv[2], false, &s, &err);
    cleanup_image struct image img;
    load(&s, argv[3], &img, &err);
    if (strcmp(cmd, "unpack") == 0 && argc == 4) {
        if (image_unpack_all(&s, &img, &err) < 0)
            die(&err, "unpack");
    } else if (strcmp(cmd, "mount") == 0 && (argc == 5 || argc == 7)) {
        const char *upper = argc == 7 ? argv[5] : NULL, *work = argc == 7 ? argv[6] : NULL;
        if (image_rootfs_mount(&s, &img, argv[4], upper, work, upper == NULL, &err) < 0)
            die(&err, "mount");
    } else if (strcmp(cmd, "flatten") == 0 && argc == 5) {
        if (image_rootfs_flatten(&s, &img, argv[4], &err) < 0)
            die(&err, "flatten");
    } else {
        usage();
    }
    return 0;
}
