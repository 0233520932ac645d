/* unpack.c's file data: zeros left as holes, and a floor of free space
 * (unpack_data.c). */
#ifndef HULL_IMAGE_UNPACK_DATA_H
#define HULL_IMAGE_UNPACK_DATA_H

#include <stdint.h>

#include "util/error.h"

struct archive;

struct layer_space {
    int fd;               /* any fd on the store's filesystem */
    uint64_t keep;        /* bytes to leave free; 0: no check */
    uint64_t keep_inodes; /* inodes to leave free; 0: no check */
    uint64_t unchecked;   /* written since the last look */
    unsigned entries;     /* entries made since the last look */
};

/* keep: $HULL_IMAGE_MIN_FREE (a size; 0 turns both checks off), else the
 * smaller of 1 GiB and 5% of fd's filesystem; keep_inodes: the smaller of
 * 1 Mi and 5% of its inodes. */
int layer_space_init(struct layer_space *sp, int fd, hull_error *err);
/* n more bytes are about to be written (entries count a little too, a
 * directory or symlink a block); now and then, ENOSPC when the filesystem
 * has less than keep bytes or keep_inodes inodes free. */
int layer_space_use(struct layer_space *sp, uint64_t n, hull_error *err);
/* The same for an entry (an inode) of n bytes: looks every 256 entries too. */
int layer_space_entry(struct layer_space *sp, uint64_t n, hull_error *err);
/* The current entry's data into fd, a new empty file, without its zeros;
 * the caller sets the size. */
int layer_write_data(struct archive *a, int fd, const char *name, struct layer_space *sp,
                     hull_error *err);

#endif
