/* Removing images and freeing space (image.h "gc.c"). */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <unistd.h>

#include "image/image.h"
#include "image/store_int.h"
#include "util/error.h"

int image_store_pin(struct image_store *s, hull_error *err)
{
    int fd = image_flock_at(s->rootfd, "hull/gc.lock", LOCK_SH, true, err);
    if (fd < 0)
        return hull_error_prefix(err, "image store %s", s->root);
    return fd;
}

int image_store_remove(struct image_store *s, const char *text, bool force, hull_error *err)
{
    (void)force;
    return image_store_untag(s, text, err);
}

int image_store_prune(struct image_store *s, struct image_prune_report *r, hull_error *err)
{
    if (r)
        memset(r, 0, sizeof(*r));
    (void)s;
    return hull_error_set(err, ENOSYS, "prune: not implemented yet");
}
