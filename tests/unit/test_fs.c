/* util/fs: path resolution confined to a root (the CVE-2021-30465 guard),
 * lexical path cleaning, atomic file replacement, rm -rf, fd shedding. */
#include <dirent.h>
#include <fcntl.h>
#include <limits.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "unit.h"

struct tree {
    char *outer; /* holds root/ and a sibling, "outside", that must stay untouched */
    char *root;
    int rootfd;
};

static void mkdir_at(const char *base, const char *rel)
{
    char p[PATH_MAX];
    snprintf(p, sizeof(p), "%s/%s", base, rel);
    assert_int_equal(mkdir(p, 0755), 0);
}

static void link_at(const char *base, const char *rel, const char *target)
{
    char p[PATH_MAX];
    snprintf(p, sizeof(p), "%s/%s", base, rel);
    assert_int_equal(symlink(target, p), 0);
}

static void file_at(const char *base, const char *rel)
{
    char p[PATH_MAX];
    snprintf(p, sizeof(p), "%s/%s", base, rel);
    int fd = open(p, O_CREAT | O_WRONLY | O_EXCL, 0644);
    assert_true(fd >= 0);
    close(fd);
}

/* base/rel exists and is of this type (S_IFDIR, S_IFREG). */
static void assert_type_at(const char *base, const char *rel, mode_t type)
{
    char p[PATH_MAX];
    struct stat st;
    snprintf(p, sizeof(p), "%s/%s", base, rel);
    assert_int_equal(lstat(p, &st), 0);
    assert_int_equal(st.st_mode & S_IFMT, type);
}

static bool exists_at(const char *base, const char *rel)
{
    char p[PATH_MAX];
    struct stat st;
    snprintf(p, sizeof(p), "%s/%s", base, rel);
    return lstat(p, &st) == 0;
}

/*   outer/outside/          (a "host" directory next to the root)
 *   outer/root/a/b/
 *   outer/root/file
 *   outer/root/abs     -> /a            (absolute: means root/a)
 *   outer/root/rel     -> a/b
 *   outer/root/up      -> ../outside    (climbs out)
 *   outer/root/upin    -> a/../a        (stays in)
 *   outer/root/a/par   -> ../file
 *   outer/root/loop1   -> loop2, loop2 -> /loop1
 *   outer/root/chain   -> /abs/b        (absolute through absolute)
 *   outer/root/dangle  -> /outside/new  (absolute, target missing)
 *   outer/root/hostabs -> <outer>/outside (an absolute host path)
 */
static int setup(void **state)
{
    struct tree *t = calloc(1, sizeof(*t));
    t->outer = unit_mkdtemp();
    assert_non_null(t->outer);
    assert_true(asprintf(&t->root, "%s/root", t->outer) > 0);
    mkdir_at(t->outer, "outside");
    mkdir_at(t->outer, "root");
    mkdir_at(t->root, "a");
    mkdir_at(t->root, "a/b");
    file_at(t->root, "file");
    link_at(t->root, "abs", "/a");
    link_at(t->root, "rel", "a/b");
    link_at(t->root, "up", "../outside");
    link_at(t->root, "upin", "a/../a");
    link_at(t->root, "a/par", "../file");
    link_at(t->root, "loop1", "loop2");
    link_at(t->root, "loop2", "/loop1");
    link_at(t->root, "chain", "/abs/b");
    link_at(t->root, "dangle", "/outside/new");
    char host[PATH_MAX];
    snprintf(host, sizeof(host), "%s/outside", t->outer);
    link_at(t->root, "hostabs", host);
    t->rootfd = open(t->root, O_PATH | O_DIRECTORY | O_CLOEXEC);
    assert_true(t->rootfd >= 0);
    *state = t;
    return 0;
}

static int teardown(void **state)
{
    struct tree *t = *state;
    close(t->rootfd);
    free(t->root);
    unit_rmdir(t->outer);
    free(t);
    return 0;
}

/* resolve must succeed and land on root/<expect>. */
static void resolves_to(struct tree *t, const char *path, int flags, const char *expect)
{
    hull_error e = NULL;
    int fd = hull_resolve_in_root(t->rootfd, path, flags, &e);
    if (fd < 0)
        fail_msg("resolve %s: %s", path, hull_error_msg(e));
    struct stat got, want;
    assert_int_equal(fstatat(fd, "", &got, AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW), 0);
    char p[PATH_MAX];
    snprintf(p, sizeof(p), "%s/%s", t->root, expect);
    assert_int_equal(lstat(p, &want), 0);
    if (got.st_ino != want.st_ino || got.st_dev != want.st_dev)
        fail_msg("%s resolved elsewhere than %s", path, expect);
    /* O_PATH: the caller acts through the fd, never by name again. */
    assert_int_equal(fcntl(fd, F_GETFL) & O_PATH, O_PATH);
    close(fd);
}

static void fails_with(struct tree *t, const char *path, int flags, int code, const char *msg)
{
    hull_error e = NULL;
    int fd = hull_resolve_in_root(t->rootfd, path, flags, &e);
    assert_int_equal(fd, -1);
    assert_int_equal(hull_error_code(e), code);
    assert_error_msg(e, msg);
}

static void plain_paths(void **state)
{
    struct tree *t = *state;
    resolves_to(t, "a/b", 0, "a/b");
    resolves_to(t, "/a/b", 0, "a/b");
    resolves_to(t, "//a/./b//", 0, "a/b");
    resolves_to(t, "/", 0, ".");
    resolves_to(t, "", 0, ".");
    resolves_to(t, "a/b/..", 0, "a");
    resolves_to(t, "/a/../a/b/../../file", 0, "file");
}

static void absolute_symlinks_restart_at_the_root(void **state)
{
    struct tree *t = *state;
    resolves_to(t, "abs", 0, "a");
    resolves_to(t, "abs/b", 0, "a/b");
    resolves_to(t, "chain", 0, "a/b");
    /* A link naming a host path means that path inside the root: it does
     * not exist there, so resolution fails instead of reaching the host. */
    hull_error e = NULL;
    assert_int_equal(hull_resolve_in_root(t->rootfd, "hostabs", 0, &e), -1);
    assert_int_equal(hull_error_code(e), ENOENT);
    hull_error_free(&e);
}

static void relative_symlinks(void **state)
{
    struct tree *t = *state;
    resolves_to(t, "rel", 0, "a/b");
    resolves_to(t, "upin/b", 0, "a/b");
    resolves_to(t, "a/par", 0, "file");
}

static void dotdot_escapes_are_errors(void **state)
{
    struct tree *t = *state;
    fails_with(t, "..", 0, EXDEV, "..: escapes the root through '..'");
    fails_with(t, "/../outside", 0, EXDEV, "/../outside: escapes the root through '..'");
    fails_with(t, "a/../../outside", 0, EXDEV, "a/../../outside: escapes the root through '..'");
    fails_with(t, "up", 0, EXDEV, "up: escapes the root through '..'");
    fails_with(t, "up/x", HULL_RESOLVE_MKDIR, EXDEV, "up/x: escapes the root through '..'");
    assert_false(exists_at(t->outer, "outside/x"));
}

static void loops(void **state)
{
    struct tree *t = *state;
    fails_with(t, "loop1", 0, ELOOP, "loop1: too many levels of symbolic links");
    fails_with(t, "loop1/x", HULL_RESOLVE_MKDIR, ELOOP,
               "loop1/x: too many levels of symbolic links");
}

static void not_a_directory(void **state)
{
    struct tree *t = *state;
    fails_with(t, "file/x", 0, ENOTDIR, "file/x: not a directory");
    fails_with(t, "file", HULL_RESOLVE_DIRECTORY, ENOTDIR, "file: not a directory");
    fails_with(t, "a/par", HULL_RESOLVE_DIRECTORY, ENOTDIR, "a/par: not a directory");
    resolves_to(t, "file", 0, "file");
    resolves_to(t, "abs", HULL_RESOLVE_DIRECTORY, "a");
}

static void nofollow_last(void **state)
{
    struct tree *t = *state;
    resolves_to(t, "abs", HULL_RESOLVE_NOFOLLOW, "abs");
    resolves_to(t, "up", HULL_RESOLVE_NOFOLLOW, "up");
    /* Only the last component: earlier links are still followed. */
    resolves_to(t, "abs/b", HULL_RESOLVE_NOFOLLOW, "a/b");
}

static void missing(void **state)
{
    struct tree *t = *state;
    fails_with(t, "nope", 0, ENOENT, "nope: No such file or directory");
    fails_with(t, "a/nope/deeper", 0, ENOENT, "a/nope/deeper: No such file or directory");
}

static void mkdir_creates_inside(void **state)
{
    struct tree *t = *state;
    resolves_to(t, "new/dir/deep", HULL_RESOLVE_MKDIR, "new/dir/deep");
    assert_type_at(t->root, "new/dir", S_IFDIR);
    /* Through an absolute link: created under root/a, not /a. */
    resolves_to(t, "abs/made", HULL_RESOLVE_MKDIR, "a/made");
    /* A dangling absolute link is completed inside the root. */
    resolves_to(t, "dangle", HULL_RESOLVE_MKDIR, "outside/new");
    assert_false(exists_at(t->outer, "outside/new"));
    /* The host path named by a link is created inside, never outside. */
    char rel[PATH_MAX];
    snprintf(rel, sizeof(rel), "%s/outside/x", t->outer + 1);
    resolves_to(t, "hostabs/x", HULL_RESOLVE_MKDIR, rel);
    assert_false(exists_at(t->outer, "outside/x"));
    /* Existing directories are fine. */
    resolves_to(t, "a/b", HULL_RESOLVE_MKDIR, "a/b");
}

/* NO_SYMLINKS: a link anywhere on the way is refused, even one that stays
 * inside, and nothing is created behind it. */
static void no_symlinks_refuses_every_link(void **state)
{
    struct tree *t = *state;
    int mk = HULL_RESOLVE_MKDIR | HULL_RESOLVE_NO_SYMLINKS;
    resolves_to(t, "a/b", HULL_RESOLVE_NO_SYMLINKS, "a/b");
    resolves_to(t, "a/new", mk, "a/new");
    fails_with(t, "abs/x", mk, ELOOP, "abs/x: 'abs' is a symlink (not followed here)");
    assert_false(exists_at(t->root, "a/x"));
    fails_with(t, "rel", HULL_RESOLVE_NO_SYMLINKS, ELOOP,
               "rel: 'rel' is a symlink (not followed here)");
    fails_with(t, "a/par", HULL_RESOLVE_MKFILE | HULL_RESOLVE_NO_SYMLINKS, ELOOP,
               "a/par: 'par' is a symlink (not followed here)");
    /* NOFOLLOW still returns a final link as itself. */
    resolves_to(t, "a/par", HULL_RESOLVE_NOFOLLOW | HULL_RESOLVE_NO_SYMLINKS, "a/par");
}

static void mkfile_creates_the_last_component(void **state)
{
    struct tree *t = *state;
    resolves_to(t, "etc/app.conf", HULL_RESOLVE_MKFILE, "etc/app.conf");
    assert_type_at(t->root, "etc/app.conf", S_IFREG);
    assert_type_at(t->root, "etc", S_IFDIR);
    /* An existing file is kept, not truncated or replaced. */
    resolves_to(t, "file", HULL_RESOLVE_MKFILE, "file");
    /* Through an absolute link whose target is missing: inside the root. */
    link_at(t->root, "etc/victim", "/outside/victim.conf");
    resolves_to(t, "etc/victim", HULL_RESOLVE_MKFILE, "outside/victim.conf");
    assert_false(exists_at(t->outer, "outside/victim.conf"));
}

static void long_names(void **state)
{
    struct tree *t = *state;
    char name[NAME_MAX + 2];
    memset(name, 'n', NAME_MAX + 1);
    name[NAME_MAX + 1] = '\0';
    char msg[NAME_MAX + 64];
    snprintf(msg, sizeof(msg), "%s: path too long", name);
    fails_with(t, name, 0, ENAMETOOLONG, msg);
    /* Deeper than the walk can hold. */
    char deep[1024] = "";
    for (int i = 0; i < 200; i++)
        strcat(deep, "d/");
    hull_error e = NULL;
    assert_int_equal(hull_resolve_in_root(t->rootfd, deep, HULL_RESOLVE_MKDIR, &e), -1);
    assert_int_equal(hull_error_code(e), ENAMETOOLONG);
    hull_error_free(&e);
}

/* ---- hull_path_clean ------------------------------------------------------ */

static void clean_ok(const char *in, const char *want)
{
    char out[PATH_MAX];
    assert_int_equal(hull_path_clean(in, out, sizeof(out)), 0);
    assert_string_equal(out, want);
}

static void clean_fails(const char *in)
{
    char out[PATH_MAX];
    assert_int_equal(hull_path_clean(in, out, sizeof(out)), -1);
}

static void path_clean(void **state)
{
    (void)state;
    clean_ok("/", "/");
    clean_ok("", "/");
    clean_ok("//a/./b/../c", "/a/c");
    clean_ok("/a/b/", "/a/b");
    clean_ok("a/b", "/a/b");
    clean_ok("/a/b/..", "/a");
    clean_ok("/a/..", "/");
    clean_ok("/./././", "/");
    clean_ok("/a/b/../../c/./d/..", "/c");
    clean_ok("/..a/b..", "/..a/b..");
    clean_ok("/...", "/...");
    clean_fails("/..");
    clean_fails("..");
    clean_fails("/a/../..");
    clean_fails("/a/b/../../../c");
    clean_fails("rel/../../x");
    /* Output buffer too small. */
    char small[4];
    assert_int_equal(hull_path_clean("/abcdef", small, sizeof(small)), -1);
    assert_int_equal(hull_path_clean("/ab", small, sizeof(small)), 0);
    assert_string_equal(small, "/ab");
    assert_int_equal(hull_path_clean("/", small, 1), -1);
}

/* ---- files ----------------------------------------------------------------- */

static void atomic_write_replaces_whole(void **state)
{
    struct tree *t = *state;
    hull_error e = NULL;
    int dfd = open(t->root, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    assert_int_equal(hull_write_file_atomic(dfd, "state.json", "old", 3, 0600, &e), 0);
    int old = openat(dfd, "state.json", O_RDONLY);
    assert_true(old >= 0);
    assert_int_equal(hull_write_file_atomic(dfd, "state.json", "newer", 5, 0640, &e), 0);
    /* The reader that opened the old file still sees it whole: the name was
     * moved to a new inode, the old one was never rewritten in place. */
    char buf[16] = "";
    assert_int_equal(read(old, buf, sizeof(buf)), 3);
    assert_memory_equal(buf, "old", 3);
    close(old);
    char *text = NULL;
    size_t len = 0;
    assert_int_equal(hull_read_file_at(dfd, "state.json", &text, &len, &e), 0);
    assert_int_equal(len, 5);
    assert_string_equal(text, "newer");
    free(text);
    struct stat st;
    assert_int_equal(fstatat(dfd, "state.json", &st, 0), 0);
    assert_int_equal(st.st_mode & 0777, 0640);
    /* No temporary file left next to it. */
    DIR *d = fdopendir(dup(dfd));
    struct dirent *de;
    while ((de = readdir(d)) != NULL)
        assert_null(strstr(de->d_name, ".tmp"));
    closedir(d);
    /* Writing into a missing directory fails without leaving anything. */
    int gone = openat(dfd, "a", O_RDONLY | O_DIRECTORY);
    assert_int_equal(hull_write_file_atomic(gone, "../../x/y", "z", 1, 0600, &e), -1);
    assert_int_equal(hull_error_code(e), ENOENT);
    hull_error_free(&e);
    close(gone);
    close(dfd);
}

static void read_write_errors(void **state)
{
    struct tree *t = *state;
    hull_error e = NULL;
    char *text = NULL;
    char p[PATH_MAX];
    snprintf(p, sizeof(p), "%s/nope", t->root);
    assert_int_equal(hull_read_file(p, &text, NULL, &e), -1);
    char msg[PATH_MAX + 64];
    snprintf(msg, sizeof(msg), "open %s: No such file or directory", p);
    assert_error_msg(e, msg);
    /* hull_write_file never creates (it is for /proc and /sys). */
    assert_int_equal(hull_write_file(p, "x", 1, &e), -1);
    assert_int_equal(hull_error_code(e), ENOENT);
    hull_error_free(&e);
    assert_false(exists_at(t->root, "nope"));
}

/* hull_write_proc_file writes only into procfs: a regular file where a
 * /proc path should be (a shadowing mount, a container's own file) is
 * refused and left untouched, and a symlink as the last component is not
 * followed even when it leads into /proc. */
static void proc_write_only_on_procfs(void **state)
{
    struct tree *t = *state;
    hull_error e = NULL;
    char p[PATH_MAX];
    file_at(t->root, "oom_score_adj");
    snprintf(p, sizeof(p), "%s/oom_score_adj", t->root);
    assert_int_equal(hull_write_proc_file(p, "500", 3, &e), -1);
    assert_int_equal(hull_error_code(e), EXDEV);
    char msg[PATH_MAX + 64];
    snprintf(msg, sizeof(msg), "%s: not on procfs (something is mounted over it)", p);
    assert_error_msg(e, msg);
    struct stat st;
    assert_int_equal(stat(p, &st), 0);
    assert_int_equal(st.st_size, 0); /* nothing written */

    /* The real thing works: our own thread's name, written back unchanged. */
    char *comm = NULL;
    size_t len = 0;
    assert_int_equal(hull_read_file("/proc/thread-self/comm", &comm, &len, &e), 0);
    assert_int_equal(hull_write_proc_file("/proc/thread-self/comm", comm, len, &e), 0);

    link_at(t->root, "comm-link", "/proc/thread-self/comm");
    snprintf(p, sizeof(p), "%s/comm-link", t->root);
    assert_int_equal(hull_write_proc_file(p, comm, len, &e), -1);
    assert_int_equal(hull_error_code(e), ELOOP);
    hull_error_free(&e);
    free(comm);
}

static void mkdir_p(void **state)
{
    struct tree *t = *state;
    hull_error e = NULL;
    char p[PATH_MAX];
    snprintf(p, sizeof(p), "%s/m/n/o", t->root);
    assert_int_equal(hull_mkdir_p(p, 0700, &e), 0);
    assert_int_equal(hull_mkdir_p(p, 0700, &e), 0); /* exists: fine */
    struct stat st;
    assert_int_equal(stat(p, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0700);
    snprintf(p, sizeof(p), "%s/file/sub", t->root);
    assert_int_equal(hull_mkdir_p(p, 0700, &e), -1);
    assert_int_equal(hull_error_code(e), ENOTDIR);
    hull_error_free(&e);
    snprintf(p, sizeof(p), "%s/file", t->root);
    assert_int_equal(hull_mkdir_p(p, 0700, &e), -1);
    hull_error_free(&e);
}

static void rm_rf_does_not_follow_links(void **state)
{
    struct tree *t = *state;
    hull_error e = NULL;
    /* The whole root goes, but the directory its links lead to stays. */
    file_at(t->outer, "outside/keep");
    int outer = open(t->outer, O_PATH | O_DIRECTORY | O_CLOEXEC);
    assert_int_equal(hull_rm_rf_at(outer, "root", &e), 0);
    assert_null(e);
    assert_false(exists_at(t->outer, "root"));
    assert_true(exists_at(t->outer, "outside/keep"));
    /* Missing is success. */
    assert_int_equal(hull_rm_rf_at(outer, "root", &e), 0);
    close(outer);
    /* Recreate what teardown expects. */
    mkdir_at(t->outer, "root");
    close(t->rootfd);
    t->rootfd = open(t->root, O_PATH | O_DIRECTORY | O_CLOEXEC);
}

static void close_fds_except(void **state)
{
    (void)state;
    int a = open("/dev/null", O_RDONLY), b = open("/dev/null", O_RDONLY);
    int c = open("/dev/null", O_RDONLY), d = open("/dev/null", O_RDONLY);
    int keep[] = {c, a, -1, 1};
    pid_t pid = fork();
    if (pid == 0) {
        hull_close_fds_except(3, keep, 4);
        bool ok = fcntl(a, F_GETFD) >= 0 && fcntl(c, F_GETFD) >= 0 && fcntl(b, F_GETFD) < 0 &&
                  fcntl(d, F_GETFD) < 0 && fcntl(1, F_GETFD) >= 0;
        _exit(ok ? 0 : 1);
    }
    int status = 0;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    close(a);
    close(b);
    close(c);
    close(d);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(plain_paths, setup, teardown),
        cmocka_unit_test_setup_teardown(absolute_symlinks_restart_at_the_root, setup, teardown),
        cmocka_unit_test_setup_teardown(relative_symlinks, setup, teardown),
        cmocka_unit_test_setup_teardown(dotdot_escapes_are_errors, setup, teardown),
        cmocka_unit_test_setup_teardown(loops, setup, teardown),
        cmocka_unit_test_setup_teardown(not_a_directory, setup, teardown),
        cmocka_unit_test_setup_teardown(nofollow_last, setup, teardown),
        cmocka_unit_test_setup_teardown(missing, setup, teardown),
        cmocka_unit_test_setup_teardown(mkdir_creates_inside, setup, teardown),
        cmocka_unit_test_setup_teardown(mkfile_creates_the_last_component, setup, teardown),
        cmocka_unit_test_setup_teardown(no_symlinks_refuses_every_link, setup, teardown),
        cmocka_unit_test_setup_teardown(long_names, setup, teardown),
        cmocka_unit_test(path_clean),
        cmocka_unit_test_setup_teardown(atomic_write_replaces_whole, setup, teardown),
        cmocka_unit_test_setup_teardown(read_write_errors, setup, teardown),
        cmocka_unit_test_setup_teardown(proc_write_only_on_procfs, setup, teardown),
        cmocka_unit_test_setup_teardown(mkdir_p, setup, teardown),
        cmocka_unit_test_setup_teardown(rm_rf_does_not_follow_links, setup, teardown),
        cmocka_unit_test(close_fds_except),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
