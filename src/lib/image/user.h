/* The image config's User (user.c): run path, no libarchive, no libcurl. */
#ifndef HULL_IMAGE_USER_H
#define HULL_IMAGE_USER_H

#include <stddef.h>

#include "util/error.h"

struct image_user {
    unsigned uid, gid;
    unsigned extra[64]; /* supplementary groups: those of /etc/group naming the user */
    size_t n_extra;
};
/* "user", "uid", "user:group", "uid:gid", "uid:group"... as runc and umoci
 * read them: names from rootfd's /etc/passwd and /etc/group, resolved
 * beneath rootfd (a symlink cannot lead out of the image). A numeric uid
 * not in /etc/passwd is used as it is, with gid 0. An empty or NULL spec
 * is 0:0. ENOENT names a user or group the image does not have. */
int image_user_resolve(int rootfd, const char *spec, struct image_user *out, hull_error *err);

#endif
