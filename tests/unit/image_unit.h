/* Shared by the image store's unit tests (test_image.c, test_image_gc.c):
 * a store in a temporary directory and images made in it. Included, not
 * built. */
#ifndef HULL_TESTS_IMAGE_UNIT_H
#define HULL_TESTS_IMAGE_UNIT_H

#include <dirent.h>
#include <sys/stat.h>

#include "image/image.h"
#include "unit.h"
#include "util/json.h"
#include "util/sha256.h"

static inline char *fmt(const char *f, ...) __attribute__((format(printf, 1, 2)));
static inline char *fmt(const char *f, ...)
{
    va_list ap;
    va_start(ap, f);
    char *s = NULL;
    assert_true(vasprintf(&s, f, ap) >= 0);
    va_end(ap);
    return s;
}

struct fx {
    char *dir;
    char *root; /* dir/store */
    struct image_store s;
};

static inline int setup(void **state)
{
    struct fx *f = calloc(1, sizeof(*f));
    f->dir = unit_mkdtemp();
    assert_non_null(f->dir);
    f->root = fmt("%s/store", f->dir);
    hull_error err = NULL;
    if (image_store_open(f->root, true, &f->s, &err) < 0)
        fail_msg("%s", hull_error_msg(err));
    *state = f;
    return 0;
}

static inline int teardown(void **state)
{
    struct fx *f = *state;
    image_store_close(&f->s);
    unit_rmdir(f->dir);
    free(f->root);
    free(f);
    return 0;
}

static inline bool exists(struct fx *f, const char *rel)
{
    char p[PATH_MAX];
    struct stat st;
    snprintf(p, sizeof(p), "%s/%s", f->root, rel);
    return lstat(p, &st) == 0;
}

static inline size_t count_dir(struct fx *f, const char *rel)
{
    char p[PATH_MAX];
    snprintf(p, sizeof(p), "%s/%s", f->root, rel);
    DIR *d = opendir(p);
    assert_non_null(d);
    size_t n = 0;
    struct dirent *de;
    while ((de = readdir(d)) != NULL)
        n += de->d_name[0] != '.';
    closedir(d);
    return n;
}

static inline void write_rel(struct fx *f, const char *rel, const char *text)
{
    char p[PATH_MAX];
    snprintf(p, sizeof(p), "%s/%s", f->root, rel);
    hull_error err = NULL;
    assert_int_equal(hull_write_path_atomic(p, text, strlen(text), 0644, &err), 0);
}

static inline char *read_rel(struct fx *f, const char *rel)
{
    char p[PATH_MAX], *t = NULL;
    snprintf(p, sizeof(p), "%s/%s", f->root, rel);
    hull_error err = NULL;
    assert_int_equal(hull_read_file(p, &t, NULL, &err), 0);
    return t;
}

static inline char *digest_of(const char *text)
{
    char hex[HULL_SHA256_HEX];
    assert_int_equal(hull_sha256_buf(text, strlen(text), hex, NULL), 0);
    return fmt("sha256:%s", hex);
}

static inline char *put(struct fx *f, const char *text)
{
    char *d = NULL;
    hull_error err = NULL;
    if (image_blob_put(&f->s, text, strlen(text), &d, &err) < 0)
        fail_msg("%s", hull_error_msg(err));
    return d;
}

/* An image of n layers with contents "<seed>-<i>" (diff_ids: digests of
 * "diff-<seed>-<i>"), tagged name (NULL: untagged). The manifest digest. */
static inline char *make_image(struct fx *f, const char *name, const char *seed, size_t n)
{
    struct image_desc layers[4];
    char *diff_ids[4];
    for (size_t i = 0; i < n; i++) {
        char *content = fmt("%s-%zu", seed, i), *diff = fmt("diff-%s-%zu", seed, i);
        layers[i] = (struct image_desc){.media_type = MT_OCI_LAYER,
                                        .digest = put(f, content),
                                        .size = (int64_t)strlen(content)};
        diff_ids[i] = digest_of(diff);
        free(content);
        free(diff);
    }
    json_object *cfg = json_object_new_object();
    json_object_object_add(cfg, "os", json_object_new_string("linux"));
    json_object_object_add(cfg, "architecture", json_object_new_string("amd64"));
    char *md = NULL;
    hull_error err = NULL;
    if (image_commit(&f->s, name, cfg, layers, diff_ids, n, &md, &err) < 0)
        fail_msg("%s", hull_error_msg(err));
    json_object_put(cfg);
    for (size_t i = 0; i < n; i++) {
        free(layers[i].digest);
        free(diff_ids[i]);
    }
    return md;
}

#endif
