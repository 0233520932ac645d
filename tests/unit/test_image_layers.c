/* image/layer_fs.c: the pure parts of unpacking layers: how a tar entry's
 * name becomes a name beneath the layer root (or is refused), digest checks,
 * and walking to an entry's parent without following symlinks. */
#include <sys/stat.h>

#include "image/layers.h"
#include "unit.h"

static void clean_names(void **state)
{
    (void)state;
    static const struct {
        const char *in, *out;
    } ok[] = {{"a", "a"},
              {"/a/b", "a/b"},
              {"./a//b/", "a/b"},
              {"./", ""},
              {"/", ""},
              {".", ""},
              {"a/./b", "a/b"},
              {"...", "..."},
              {"..a/b..", "..a/b.."},
              {"//etc/passwd", "etc/passwd"},
              {".wh..wh..opq", ".wh..wh..opq"}};
    char out[64];
    for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
        assert_int_equal(image_layer_clean_name(ok[i].in, out, sizeof(out)), 0);
        assert_string_equal(out, ok[i].out);
    }
    /* Any ".." component is refused, wherever it is and whatever it would
     * resolve to: the layer root is not a place to climb out of. */
    static const char *const ko[] = {"..",      "../x",     "a/../../x", "a/..",
                                     "/../etc", "a/b/../c", "./.."};
    for (size_t i = 0; i < sizeof(ko) / sizeof(ko[0]); i++)
        assert_int_equal(image_layer_clean_name(ko[i], out, sizeof(out)), -1);
    /* too long for the buffer: refused, not cut, and told apart from ".."
     * (-2) so that the error can say which */
    assert_int_equal(image_layer_clean_name("abcdefgh/ijklmnop", out, 10), -2);
    assert_int_equal(image_layer_clean_name("a", out, 0), -2);
}

static void digests(void **state)
{
    (void)state;
    char d[80];
    snprintf(d, sizeof(d), "sha256:%s",
             "0009121b242d363f0009121b242d363f0009121b242d363f0009121b242d363f");
    assert_true(image_layer_digest_ok(d));
    d[10] = 'A';
    assert_false(image_layer_digest_ok(d));
    assert_false(image_layer_digest_ok("sha256:abc"));
    assert_false(image_layer_digest_ok("sha512:0009121b242d363f"));
    assert_false(image_layer_digest_ok(NULL));
}

static void parents(void **state)
{
    (void)state;
    char *dir = unit_mkdtemp();
    assert_non_null(dir);
    int root = open(dir, O_RDONLY | O_DIRECTORY);
    assert_true(root >= 0);
    hull_error err = NULL;
    const char *leaf;
    /* missing directories are made when asked */
    int fd = image_layer_open_parent(root, "a/b/c", true, &leaf, &err);
    assert_true(fd >= 0);
    assert_string_equal(leaf, "c");
    struct stat st;
    assert_int_equal(fstatat(root, "a/b", &st, 0), 0);
    assert_true(S_ISDIR(st.st_mode));
    close(fd);
    /* not made otherwise */
    assert_true(image_layer_open_parent(root, "x/y", false, &leaf, &err) < 0);
    assert_int_equal(hull_error_code(err), ENOENT);
    hull_error_free(&err);
    /* a symlink on the way is refused, even one that points inside */
    assert_int_equal(symlinkat("a", root, "s"), 0);
    assert_true(image_layer_open_parent(root, "s/b/c", true, &leaf, &err) < 0);
    assert_int_equal(hull_error_code(err), EPERM);
    hull_error_free(&err);
    assert_int_equal(symlinkat("/", root, "abs"), 0);
    assert_true(image_layer_open_parent(root, "abs/etc/passwd", true, &leaf, &err) < 0);
    assert_int_equal(hull_error_code(err), EPERM);
    hull_error_free(&err);
    /* a file on the way too */
    int f = openat(root, "file", O_CREAT | O_WRONLY, 0600);
    close(f);
    assert_true(image_layer_open_parent(root, "file/x", true, &leaf, &err) < 0);
    assert_int_equal(hull_error_code(err), EPERM);
    hull_error_free(&err);
    /* a name with no directory: the root itself */
    fd = image_layer_open_parent(root, "top", false, &leaf, &err);
    assert_true(fd >= 0);
    assert_string_equal(leaf, "top");
    close(fd);
    close(root);
    unit_rmdir(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(clean_names),
        cmocka_unit_test(digests),
        cmocka_unit_test(parents),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
