/* util cleanup helpers: each releases what its variable holds when the scope
 * ends, and a value handed on with steal_ptr / hull_steal_fd is not released. */
#include <dirent.h>
#include <sys/stat.h>

#include "unit.h"
#include "util/json.h"
#include "util/strv.h"

/* fd is open in this process. */
static bool fd_open(int fd)
{
    return fcntl(fd, F_GETFD) >= 0;
}

static void fd_and_dir_closed(void **state)
{
    (void)state;
    int seen_fd = -1, seen_dir = -1, seen_file = -1;
    {
        cleanup_close int fd = open("/", O_PATH | O_CLOEXEC);
        cleanup_dir DIR *d = opendir("/");
        cleanup_file FILE *f = fopen("/proc/self/stat", "re");
        assert_true(fd >= 0);
        assert_non_null(d);
        assert_non_null(f);
        seen_fd = fd;
        seen_dir = dirfd(d);
        seen_file = fileno(f);
        assert_true(fd_open(seen_fd) && fd_open(seen_dir) && fd_open(seen_file));
    }
    assert_false(fd_open(seen_fd));
    assert_false(fd_open(seen_dir));
    assert_false(fd_open(seen_file));
    /* NULL / -1 are left alone. */
    {
        cleanup_close int fd = -1;
        cleanup_dir DIR *d = NULL;
        cleanup_file FILE *f = NULL;
        (void)fd, (void)d, (void)f;
    }
}

static void steal_keeps_value(void **state)
{
    (void)state;
    int kept = -1;
    char *s = NULL;
    {
        cleanup_close int fd = open("/", O_PATH | O_CLOEXEC);
        cleanup_free char *p = strdup("kept");
        kept = hull_steal_fd(&fd);
        s = steal_ptr(&p);
        assert_int_equal(fd, -1);
        assert_null(p);
    }
    assert_true(fd_open(kept));
    assert_string_equal(s, "kept");
    close(kept);
    free(s);
}

static void error_strv_json_released(void **state)
{
    (void)state;
    /* Run under ASan (make asan) these show as leaks if not released. */
    {
        cleanup_hull_error hull_error e = NULL;
        hull_error_set(&e, EINVAL, "scratch");
        cleanup_strv char **v = NULL;
        assert_int_equal(hull_strv_append(&v, "a"), 0);
        assert_int_equal(hull_strv_append(&v, "b"), 0);
        cleanup_json json_object *o = json_object_new_object();
        json_object_object_add(o, "k", json_object_new_string("v"));
        assert_non_null(e);
        assert_int_equal(hull_strv_len(v), 2);
    }
    {
        cleanup_hull_error hull_error e = NULL;
        cleanup_strv char **v = NULL;
        cleanup_json json_object *o = NULL;
        (void)e, (void)v, (void)o;
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(fd_and_dir_closed),
        cmocka_unit_test(steal_keeps_value),
        cmocka_unit_test(error_strv_json_released),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
