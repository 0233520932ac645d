/* util/watch_tree: what a real inotify watch's events are told as — the
 * story hulld's and the guest agent's watch streams share. */
#include <sys/stat.h>

#include "unit.h"
#include "util/watch_tree.h"

#define MASK                                                                                       \
    (IN_CREATE | IN_MODIFY | IN_DELETE | IN_MOVED_FROM | IN_MOVED_TO | IN_DELETE_SELF |            \
     IN_MOVE_SELF | IN_ONLYDIR)

/* Every event waiting on ifd, told through t: "type path[/]" lines, the
 * client-side names (watched as "/w"). */
static void tell(int ifd, struct watch_tree *t, char *log, size_t cap)
{
    char buf[8192] __attribute__((aligned(__alignof__(struct inotify_event))));
    ssize_t n;
    while ((n = read(ifd, buf, sizeof(buf))) > 0)
        for (ssize_t off = 0; off < n;) {
            const struct inotify_event *ev = (const void *)(buf + off);
            struct watch_news news;
            if (watch_tree_event(t, ev, &news)) {
                size_t l = strlen(log);
                snprintf(log + l, cap - l, "%s %s%s\n", news.type, news.path ? news.path : "-",
                         news.dir ? "/" : "");
            }
            off += (ssize_t)(sizeof(*ev) + ev->len);
        }
}

static void a_directory_s_story(void **state)
{
    (void)state;
    char dir[] = "/tmp/hull-watch-XXXXXX", p[256], q[256];
    assert_non_null(mkdtemp(dir));
    int ifd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
    assert_true(ifd >= 0);
    struct watch_tree t;
    watch_tree_init(&t, ".tmp-");
    int wd = inotify_add_watch(ifd, dir, MASK);
    assert_true(watch_tree_remember(&t, wd, "/w"));
    assert_int_equal(t.root_wd, wd);
    assert_false(watch_tree_remember(&t, -1, "/nowhere"));

    snprintf(p, sizeof(p), "%s/a", dir);
    int fd = open(p, O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
    assert_true(fd >= 0 && write(fd, "x", 1) == 1);
    close(fd);
    snprintf(p, sizeof(p), "%s/sub", dir);
    assert_int_equal(mkdir(p, 0700), 0);
    /* A writer's temporary is not news; its rename onto the name is a create. */
    snprintf(p, sizeof(p), "%s/.tmp-1", dir);
    snprintf(q, sizeof(q), "%s/b", dir);
    fd = open(p, O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
    assert_true(fd >= 0);
    close(fd);
    assert_int_equal(rename(p, q), 0);
    snprintf(p, sizeof(p), "%s/a", dir);
    snprintf(q, sizeof(q), "%s/c", dir);
    assert_int_equal(rename(p, q), 0);
    assert_int_equal(unlink(q), 0);
    char log[2048] = "";
    tell(ifd, &t, log, sizeof(log));
    assert_string_equal(log, "create /w/a\n"
                             "modify /w/a\n"
                             "create /w/sub/\n"
                             "create /w/b\n"
                             "rename_from /w/a\n"
                             "rename_to /w/c\n"
                             "delete /w/c\n");
    assert_false(t.ended);

    /* The root goes: told once, then the tree has ended. */
    snprintf(p, sizeof(p), "%s/sub", dir);
    assert_int_equal(rmdir(p), 0);
    snprintf(p, sizeof(p), "%s/b", dir);
    assert_int_equal(unlink(p), 0);
    assert_int_equal(rmdir(dir), 0);
    log[0] = 0;
    tell(ifd, &t, log, sizeof(log));
    assert_string_equal(log, "delete /w/sub/\n"
                             "delete /w/b\n"
                             "delete /w/\n");
    assert_true(t.ended);
    assert_int_equal(t.live, 0);
    watch_tree_free(&t);
    close(ifd);
}

/* A directory renamed away is no longer told of by its old path (nor
 * those below it); one renamed within the tree is told of by its new one
 * once watched again; the root renamed ends the tree. */
static void renamed_directories(void **state)
{
    (void)state;
    char dir[] = "/tmp/hull-watch-XXXXXX", out[] = "/tmp/hull-watch-out-XXXXXX", p[256], q[256];
    assert_non_null(mkdtemp(dir));
    assert_non_null(mkdtemp(out));
    int ifd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
    assert_true(ifd >= 0);
    struct watch_tree t;
    watch_tree_init(&t, NULL);
    assert_true(watch_tree_remember(&t, inotify_add_watch(ifd, dir, MASK), "/w"));
    static const char *const subs[] = {"a", "a/b", "c"};
    for (size_t i = 0; i < 3; i++) {
        snprintf(p, sizeof(p), "%s/%s", dir, subs[i]);
        assert_int_equal(mkdir(p, 0700), 0);
        snprintf(q, sizeof(q), "/w/%s", subs[i]);
        assert_true(watch_tree_remember(&t, inotify_add_watch(ifd, p, MASK), q));
    }
    char log[2048] = "";
    tell(ifd, &t, log, sizeof(log));
    log[0] = 0;

    /* a (with a/b) goes out of the tree: what happens in it is not news. */
    snprintf(p, sizeof(p), "%s/a", dir);
    snprintf(q, sizeof(q), "%s/a", out);
    assert_int_equal(rename(p, q), 0);
    snprintf(p, sizeof(p), "%s/a/x", out);
    int fd = open(p, O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
    assert_true(fd >= 0);
    close(fd);
    snprintf(p, sizeof(p), "%s/a/b/y", out);
    fd = open(p, O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
    assert_true(fd >= 0);
    close(fd);
    /* c becomes d within the tree and is watched again (as a recursive
     * watch does on its rename_to). */
    snprintf(p, sizeof(p), "%s/c", dir);
    snprintf(q, sizeof(q), "%s/d", dir);
    assert_int_equal(rename(p, q), 0);
    tell(ifd, &t, log, sizeof(log));
    assert_true(watch_tree_remember(&t, inotify_add_watch(ifd, q, MASK), "/w/d"));
    snprintf(p, sizeof(p), "%s/d/z", dir);
    fd = open(p, O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
    assert_true(fd >= 0);
    close(fd);
    tell(ifd, &t, log, sizeof(log));
    assert_string_equal(log, "rename_from /w/a/\n"
                             "rename_from /w/c/\n"
                             "rename_to /w/d/\n"
                             "create /w/d/z\n");
    assert_false(t.ended);

    /* The root renamed: told once, and the tree has ended. */
    snprintf(p, sizeof(p), "%s/moved", out);
    assert_int_equal(rename(dir, p), 0);
    log[0] = 0;
    tell(ifd, &t, log, sizeof(log));
    assert_string_equal(log, "rename_from /w/\n");
    assert_true(t.ended);
    watch_tree_free(&t);
    close(ifd);
    char cmd[128];
    snprintf(cmd, sizeof(cmd), "rm -rf %s", out);
    assert_int_equal(system(cmd), 0);
}

/* Events the tree cannot place (an unknown or forgotten watch) are not
 * news; a queue overflow always is, with no path. */
static void strays_and_overflow(void **state)
{
    (void)state;
    struct watch_tree t;
    watch_tree_init(&t, NULL);
    assert_true(watch_tree_remember(&t, 3, "/"));
    struct watch_news n;
    struct inotify_event ev = {.wd = 7, .mask = IN_CREATE};
    assert_false(watch_tree_event(&t, &ev, &n));
    ev.wd = -1;
    ev.mask = IN_Q_OVERFLOW;
    assert_true(watch_tree_event(&t, &ev, &n));
    assert_string_equal(n.type, "overflow");
    assert_null(n.path);
    /* The root "/" joins its children without a double slash. */
    char buf[sizeof(struct inotify_event) + 16]
        __attribute__((aligned(__alignof__(struct inotify_event)))) = {0};
    struct inotify_event *named = (void *)buf;
    *named = (struct inotify_event){.wd = 3, .mask = IN_MODIFY, .len = 16};
    memcpy(named->name, "f", 2);
    assert_true(watch_tree_event(&t, named, &n));
    assert_string_equal(n.path, "/f");
    ev.wd = 3;
    ev.mask = IN_IGNORED;
    assert_false(watch_tree_event(&t, &ev, &n));
    assert_true(t.ended);
    ev.mask = IN_MODIFY;
    assert_false(watch_tree_event(&t, &ev, &n));
    watch_tree_free(&t);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(a_directory_s_story),
        cmocka_unit_test(strays_and_overflow),
        cmocka_unit_test(renamed_directories),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
