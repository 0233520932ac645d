/* A store a failed verb made and left empty (image_store_discard_empty):
 * what `hull image load/import/build/pull` made in a root that did not
 * exist goes again when they fail, so a refused input changes nothing. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "image/image.h"
#include "image/store_int.h"
#include "util/error.h"
#include "util/fs.h"

/* The files image_store_open and the store's locks make: nothing stored. */
static bool skeleton_file(const char *rel)
{
    static const char *const files[] = {"oci-layout", "index.json", "hull/lock", "hull/gc.lock"};
    for (size_t i = 0; i < sizeof(files) / sizeof(files[0]); i++)
        if (strcmp(rel, files[i]) == 0)
            return true;
    return false;
}

/* Whether at/rel (prefix: its path in the store) holds only directories
 * and the skeleton's files, depth levels down at most. */
static bool only_skeleton(int at, const char *rel, const char *prefix, int depth)
{
    int fd = openat(at, rel, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0)
        return false;
    cleanup_dir DIR *d = fdopendir(fd);
    if (d == NULL) {
        close(fd);
        return false;
    }
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
            continue;
        char path[512];
        if (snprintf(path, sizeof(path), "%s%s%s", prefix, prefix[0] ? "/" : "", e->d_name) >=
            (int)sizeof(path))
            return false;
        struct stat st;
        if (fstatat(dirfd(d), e->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0)
            return false;
        if (S_ISDIR(st.st_mode)) {
            if (depth == 0 || !only_skeleton(dirfd(d), e->d_name, path, depth - 1))
                return false;
        } else if (!S_ISREG(st.st_mode) || !skeleton_file(path)) {
            return false;
        }
    }
    return true;
}

/* Every entry of the store's root, the root itself kept. */
static int empty_root(const struct image_store *s, hull_error *err)
{
    int fd = openat(s->rootfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return hull_error_errno(err, "open %s", s->root);
    cleanup_dir DIR *d = fdopendir(fd);
    if (d == NULL) {
        close(fd);
        return hull_error_errno(err, "open %s", s->root);
    }
    struct dirent *e;
    while ((e = readdir(d)) != NULL)
        if (strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0 &&
            hull_rm_rf_at(dirfd(d), e->d_name, err) < 0)
            return -1;
    return 0;
}

bool image_store_discard_empty(const char *root, bool keep_root)
{
    struct image_store s;
    hull_error e = NULL;
    if (image_store_open(root, false, &s, &e) < 0) {
        hull_error_free(&e); /* no store there: nothing to discard */
        return false;
    }
    /* Both locks without waiting: a pin or the store's lock held means
     * another process is at work in it, and it stays. */
    cleanup_close int gc = image_flock_at(s.rootfd, "hull/gc.lock", LOCK_EX | LOCK_NB, true, &e);
    cleanup_close int lk =
        gc < 0 ? -1 : image_flock_at(s.rootfd, "hull/lock", LOCK_EX | LOCK_NB, true, &e);
    struct image_entry *v = NULL;
    size_t n = 0;
    bool listed = lk >= 0 && image_store_list(&s, &v, &n, &e) == 0;
    bool empty = listed && n == 0 && only_skeleton(s.rootfd, ".", "", 4);
    if (listed)
        image_entries_free(v, n);
    hull_error_free(&e);
    /* Ours and empty: removed whole, under both locks, so a process that
     * opens it meanwhile fails to make its first file instead of storing
     * into a removed directory unseen. */
    if (empty && (keep_root ? empty_root(&s, &e) : hull_rm_rf_at(AT_FDCWD, s.root, &e)) < 0) {
        hull_error_free(&e);
        empty = false;
    }
    image_store_close(&s);
    return empty;
}
