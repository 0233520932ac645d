/* Bind mounts built detached: open_tree(OPEN_TREE_CLONE), attributes set
 * with mount_setattr() on the detached tree, then move_mount() onto an fd
 * the caller resolved inside the rootfs. Below both mounts.c (spec mounts,
 * read-only paths) and devices.c (host nodes bound in a user namespace).
 */
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

#include "linux/bind.h"
#include "util/error.h"
#include "util/fs.h"

#ifndef MS_NOSYMFOLLOW
#define MS_NOSYMFOLLOW 256
#endif

/* MS_* of mount(2) -> MOUNT_ATTR_* of mount_setattr(2), for bind mounts. */
static void flags_to_attr(unsigned long set, unsigned long clear, struct mount_attr *a)
{
    static const struct {
        unsigned long ms;
        uint64_t attr;
    } map[] = {
        {MS_RDONLY, MOUNT_ATTR_RDONLY},         {MS_NOSUID, MOUNT_ATTR_NOSUID},
        {MS_NODEV, MOUNT_ATTR_NODEV},           {MS_NOEXEC, MOUNT_ATTR_NOEXEC},
        {MS_NODIRATIME, MOUNT_ATTR_NODIRATIME}, {MS_NOSYMFOLLOW, MOUNT_ATTR_NOSYMFOLLOW},
    };
    for (size_t i = 0; i < sizeof(map) / sizeof(map[0]); i++) {
        if (set & map[i].ms)
            a->attr_set |= map[i].attr;
        if (clear & map[i].ms)
            a->attr_clr |= map[i].attr;
    }
    /* The atime modes are one field: setting one replaces the others. */
    uint64_t atime = 0;
    if (set & MS_NOATIME)
        atime = MOUNT_ATTR_NOATIME;
    else if (set & MS_STRICTATIME)
        atime = MOUNT_ATTR_STRICTATIME;
    else if (set & MS_RELATIME)
        atime = MOUNT_ATTR_RELATIME;
    if (atime) {
        a->attr_set |= atime;
        a->attr_clr |= MOUNT_ATTR__ATIME;
    }
}

int hull_mount_propagation_fd(int fd, unsigned long prop, hull_error *err)
{
    if (prop == 0)
        return 0;
    struct mount_attr a = {.propagation = prop & ~MS_REC};
    unsigned flags = AT_EMPTY_PATH | ((prop & MS_REC) ? AT_RECURSIVE : 0);
    if (mount_setattr(fd, "", flags, &a, sizeof(a)) < 0)
        return hull_error_errno(err, "set mount propagation");
    return 0;
}

int hull_bind_mount_from(int srcfd, const char *src, int destfd, const struct hull_mount *m,
                         unsigned long extra_set, bool recursive, hull_error *err)
{
    unsigned flags = OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC | (recursive ? AT_RECURSIVE : 0);
    cleanup_close int tree =
        srcfd >= 0 ? open_tree(srcfd, "", flags | AT_EMPTY_PATH) : open_tree(AT_FDCWD, src, flags);
    if (tree < 0)
        return hull_error_errno(err, "bind %s", src);

    struct mount_attr a = {0};
    flags_to_attr((m ? m->flags : 0) | extra_set, m ? m->clear : 0, &a);
    /* Plain options ("ro", "nosuid") apply to the top mount only, as with
     * mount(2) remounts; the r-prefixed ones ("rro") go down the tree. When
     * the recursive ones include them (the sandbox's "rro,rnosuid,rnodev"
     * binds give both), the recursive call sets them on the top mount too:
     * one mount_setattr(2) instead of two, with the same result. */
    bool top_covered = m && (a.attr_set & ~m->attr_set) == 0 && (a.attr_clr & ~m->attr_clr) == 0;
    if ((a.attr_set || a.attr_clr) && !top_covered &&
        mount_setattr(tree, "", AT_EMPTY_PATH, &a, sizeof(a)) < 0)
        return hull_error_errno(err, "set attributes of bind %s", src);
    if (m && (m->attr_set || m->attr_clr)) {
        struct mount_attr r = {.attr_set = m->attr_set, .attr_clr = m->attr_clr};
        if (mount_setattr(tree, "", AT_EMPTY_PATH | AT_RECURSIVE, &r, sizeof(r)) < 0)
            return hull_error_errno(err, "set recursive attributes of bind %s", src);
    }
    if (m && hull_mount_propagation_fd(tree, m->propagation, err) < 0)
        return -1;
    if (move_mount(tree, "", destfd, "", MOVE_MOUNT_F_EMPTY_PATH | MOVE_MOUNT_T_EMPTY_PATH) < 0)
        return hull_error_errno(err, "attach bind %s", src);
    return 0;
}

int hull_bind_into(int rootfd, const char *src, const char *dest, bool recursive, bool readonly,
                   hull_error *err)
{
    struct stat st;
    if (stat(src, &st) < 0)
        return hull_error_errno(err, "bind %s", src);
    int how = S_ISDIR(st.st_mode) ? HULL_RESOLVE_MKDIR : HULL_RESOLVE_MKFILE;
    cleanup_close int destfd = hull_resolve_in_root(rootfd, dest, how, err);
    if (destfd < 0)
        return -1;
    return hull_bind_mount_from(-1, src, destfd, NULL, readonly ? MS_RDONLY : 0, recursive, err);
}
