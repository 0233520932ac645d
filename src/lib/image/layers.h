/* Layer directories on disk: helpers shared by unpack.c, layer_write.c and
 * rootfs.c. Implemented in layer_fs.c, which calls neither libarchive nor
 * libcurl (the static `hull` links it through rootfs.c).
 *
 * image_layer_path (image.h) lives in layer_fs.c too, for the same reason:
 * rootfs.c needs it and must not pull unpack.c's libarchive into `hull`. */
#ifndef HULL_IMAGE_LAYERS_H
#define HULL_IMAGE_LAYERS_H

#include <dirent.h>
#include <stdbool.h>
#include <stddef.h>

#include "image/image.h"

/* "sha256:" + 64 lower-case hex (a diff-id or digest). */
bool image_layer_digest_ok(const char *digest);
/* A tar entry's name relative to the layer root: leading "/", "." and empty
 * components dropped ("/./a//b/" -> "a/b", "./" -> ""). -1 when a component
 * is "..", -2 when the result does not fit. */
int image_layer_clean_name(const char *in, char *out, size_t outlen);
/* O_RDONLY|O_DIRECTORY fd of <root>/hull/layers (made when create). */
int image_layers_dir(struct image_store *s, bool create, hull_error *err);
/* flock(LOCK_EX) layersfd/name, created when missing; the returned fd holds
 * it. A lock file unlinked by its previous holder is opened again, so two
 * processes never hold different files of the same name. */
int image_layer_lock(int layersfd, const char *name, hull_error *err);
/* Unlink the lock file (still held, so nobody takes it meanwhile) and close. */
void image_layer_unlock(int layersfd, const char *name, int fd);
/* One path component beneath dirfd, never following a symlink (openat2
 * RESOLVE_BENEATH|RESOLVE_NO_SYMLINKS where the kernel has it, else
 * O_NOFOLLOW, which is the same guarantee for a single name that is not
 * ".."). flags: O_RDONLY|O_DIRECTORY and the like; O_CLOEXEC is added. */
int image_layer_open_at(int dirfd, const char *comp, int flags);
/* The directory holding clean name "a/b/c" (fd of a/b, *leaf = "c"),
 * reached from rootfd one component at a time; missing directories are made
 * (0755) when create. A symlink or non-directory on the way is EPERM. */
int image_layer_open_parent(int rootfd, const char *name, bool create, const char **leaf,
                            hull_error *err);
/* Read fd (named name in errors) to its end, 64 KiB at a time, handing each
 * chunk to sink; a read interrupted by a signal is retried. The first error,
 * from read or from sink, ends it. */
/* A stream over dirfd's directory from its start, on a duplicate so that
 * closedir leaves dirfd open. NULL with err set ("read <name>"). */
DIR *image_layer_opendir(int dirfd, const char *name, hull_error *err);
typedef int (*image_layer_sink)(void *arg, const void *buf, size_t n, const char *name,
                                hull_error *err);
int image_layer_pump(int fd, const char *name, image_layer_sink sink, void *arg, hull_error *err);
/* Copy the whole of src's data into dst (a new, empty file), extent by
 * extent: holes stay holes. copy_file_range (shared extents where the
 * filesystem can), else read and write. name is for errors. */
int image_layer_copy_data(int src, int dst, const char *name, hull_error *err);

#endif
