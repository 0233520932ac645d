/* The image config's User as ids: resolved against the image's own
 * /etc/passwd and /etc/group, read beneath its root. Run path (no libarchive,
 * no libcurl): `hull image bundle` and the sandbox's run both use it. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "image/user.h"
#include "util/fs.h"

#define ID_FILE_MAX (4u << 20)

/* A file of the rootfs, resolved beneath it (a symlinked /etc/passwd cannot
 * make us read the host's); *out NULL when it does not exist. */
static int read_in_root(int rootfd, const char *path, char **out, hull_error *err)
{
    hull_error e = NULL;
    cleanup_close int pfd = hull_resolve_in_root(rootfd, path, 0, &e);
    if (pfd < 0) {
        if (hull_error_code(e) == ENOENT) {
            hull_error_free(&e);
            *out = NULL;
            return 0;
        }
        *err = e;
        return -1;
    }
    char p[32];
    cleanup_close int fd = open(hull_fd_path(p, pfd), O_RDONLY | O_CLOEXEC | O_NOCTTY);
    struct stat st;
    if (fd < 0 || fstat(fd, &st) < 0)
        return hull_error_errno(err, "open the image's %s", path);
    if (!S_ISREG(st.st_mode) || st.st_size > (off_t)ID_FILE_MAX)
        return hull_error_set(err, EINVAL, "the image's %s is not a regular file of sane size",
                              path);
    size_t len;
    return hull_read_fd(fd, out, &len, err);
}

static bool parse_id(const char *s, unsigned *out)
{
    char *end;
    errno = 0;
    unsigned long v = strtoul(s, &end, 10);
    if (s[0] == '\0' || *end != '\0' || errno != 0 || v > 0xfffffffeUL)
        return false;
    *out = (unsigned)v;
    return true;
}

/* The line of a passwd/group file whose field key_field equals key; fields
 * are split into f (at most 4). */
static bool find_line(char *text, const char *key, int key_field, char *f[4])
{
    for (char *save = NULL, *line = strtok_r(text, "\n", &save); line != NULL;
         line = strtok_r(NULL, "\n", &save)) {
        char *cur = line;
        for (int i = 0; i < 4; i++)
            f[i] = strsep(&cur, ":");
        if (f[3] == NULL || line[0] == '#')
            continue;
        if (strcmp(f[key_field], key) == 0)
            return true;
    }
    return false;
}

/* The groups of /etc/group that list name as a member. */
static void supplementary(const char *group, const char *name, struct image_user *ids)
{
    cleanup_free char *copy = group ? strdup(group) : NULL;
    for (char *save = NULL, *line = copy ? strtok_r(copy, "\n", &save) : NULL; line != NULL;
         line = strtok_r(NULL, "\n", &save)) {
        char *cur = line, *f[4];
        for (int i = 0; i < 4; i++)
            f[i] = strsep(&cur, ":");
        unsigned gid;
        if (f[3] == NULL || !parse_id(f[2], &gid) || gid == ids->gid)
            continue;
        for (char *m, *rest = f[3]; (m = strsep(&rest, ",")) != NULL;)
            if (strcmp(m, name) == 0 && ids->n_extra < 64)
                ids->extra[ids->n_extra++] = gid;
    }
}

int image_user_resolve(int rootfd, const char *spec, struct image_user *ids, hull_error *err)
{
    *ids = (struct image_user){0};
    if (spec == NULL || spec[0] == '\0')
        return 0;
    cleanup_free char *passwd = NULL, *group = NULL;
    if (read_in_root(rootfd, "/etc/passwd", &passwd, err) < 0 ||
        read_in_root(rootfd, "/etc/group", &group, err) < 0)
        return -1;
    char user[256];
    snprintf(user, sizeof(user), "%s", spec);
    char *grp = strchr(user, ':');
    if (grp != NULL)
        *grp++ = '\0';
    char *f[4];
    cleanup_free char *pw = passwd ? strdup(passwd) : NULL;
    const char *name = NULL;
    /* All digits but no uid (past 4294967294): a number out of range, not
     * a name to look up. */
    if (user[0] && strspn(user, "0123456789") == strlen(user) && !parse_id(user, &ids->uid))
        return hull_error_set(err, EINVAL, "user '%s': not a uid (0 to 4294967294)", user);
    if (grp != NULL && grp[0] && strspn(grp, "0123456789") == strlen(grp) &&
        !parse_id(grp, &ids->gid))
        return hull_error_set(err, EINVAL, "group '%s': not a gid (0 to 4294967294)", grp);
    if (parse_id(user, &ids->uid)) {
        if (pw != NULL && find_line(pw, user, 2, f) && parse_id(f[3], &ids->gid))
            name = f[0];
    } else {
        if (pw == NULL || !find_line(pw, user, 0, f) || !parse_id(f[2], &ids->uid) ||
            !parse_id(f[3], &ids->gid))
            return hull_error_set(err, ENOENT, "user '%s' is not in the image's /etc/passwd", user);
        name = f[0];
    }
    if (grp != NULL && !parse_id(grp, &ids->gid)) {
        cleanup_free char *gr = group ? strdup(group) : NULL;
        if (gr == NULL || !find_line(gr, grp, 0, f) || !parse_id(f[2], &ids->gid))
            return hull_error_set(err, ENOENT, "group '%s' is not in the image's /etc/group", grp);
    }
    if (name != NULL)
        supplementary(group, name, ids);
    return 0;
}
