/* Container state on disk (container/state.c) and the verbs' handling of
 * it that needs no real container: ids, the state directory and its lock,
 * state.json round trips, status derivation, half-created states. */
#include <fcntl.h>
#include <limits.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "container/state.h"
#include "unit.h"
#include "util/json.h"
#include "util/proc.h"

static void ids(void **state)
{
    (void)state;
    hull_error e = NULL;
    const char *good[] = {"a", "A-b_c.d", "0", "..a", "a..", "...", "-x", NULL};
    for (const char **g = good; *g; g++) {
        if (hull_id_validate(*g, &e) < 0)
            fail_msg("%s refused: %s", *g, hull_error_msg(e));
    }
    char longest[NAME_MAX + 2];
    memset(longest, 'x', NAME_MAX);
    longest[NAME_MAX] = '\0';
    assert_int_equal(hull_id_validate(longest, &e), 0);
    longest[NAME_MAX] = 'x';
    longest[NAME_MAX + 1] = '\0';
    assert_int_equal(hull_id_validate(longest, &e), -1);
    assert_error_msg(e, "container id is longer than 255 bytes");

    assert_int_equal(hull_id_validate("", &e), -1);
    assert_error_msg(e, "container id must not be empty");
    assert_int_equal(hull_id_validate(NULL, &e), -1);
    assert_error_msg(e, "container id must not be empty");
    assert_int_equal(hull_id_validate(".", &e), -1);
    assert_error_msg(e, "invalid container id '.'");
    assert_int_equal(hull_id_validate("..", &e), -1);
    assert_error_msg(e, "invalid container id '..'");
    const char *bad[] = {"a/b", "/", "a b", "a\nb", "ü", "a:b", "$x", "a*", NULL};
    for (const char **b = bad; *b; b++) {
        assert_int_equal(hull_id_validate(*b, &e), -1);
        char want[128];
        snprintf(want, sizeof(want), "invalid container id '%s': only [A-Za-z0-9_.-] are allowed",
                 *b);
        assert_error_msg(e, want);
    }
}

struct root {
    char *dir;
};

static int setup(void **state)
{
    struct root *r = calloc(1, sizeof(*r));
    r->dir = unit_mkdtemp();
    *state = r;
    return 0;
}

static int teardown(void **state)
{
    struct root *r = *state;
    unit_rmdir(r->dir);
    free(r);
    return 0;
}

static void open_create_and_exists(void **state)
{
    struct root *r = *state;
    char root[PATH_MAX];
    snprintf(root, sizeof(root), "%s/run/hull", r->dir); /* created on demand */
    hull_error e = NULL;
    int fd = -1;
    assert_int_equal(hull_cstate_open(root, "c1", false, &fd, &e), -1);
    assert_error_msg(e, "container 'c1' does not exist");
    assert_int_equal(hull_cstate_open(root, "c1", true, &fd, &e), 0);
    struct stat st;
    assert_int_equal(stat(root, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0700);
    /* The directory is locked: another open would wait, a try-lock fails. */
    int other = open(root, O_RDONLY | O_DIRECTORY);
    int cfd = openat(other, "c1", O_RDONLY | O_DIRECTORY);
    assert_int_equal(flock(cfd, LOCK_EX | LOCK_NB), -1);
    close(fd);
    assert_int_equal(flock(cfd, LOCK_EX | LOCK_NB), 0);
    close(cfd);
    close(other);
    assert_int_equal(hull_cstate_open(root, "c1", true, &fd, &e), -1);
    assert_int_equal(hull_error_code(e), EEXIST);
    assert_error_msg(e, "container 'c1' already exists");
    assert_int_equal(hull_cstate_open(root, "c1", false, &fd, &e), 0);
    close(fd);
    assert_int_equal(hull_cstate_open(root, "../x", true, &fd, &e), -1);
    assert_error_msg(e, "invalid container id '../x': only [A-Za-z0-9_.-] are allowed");
    /* A state "directory" that is a symlink is not followed. */
    char link[PATH_MAX + 16];
    snprintf(link, sizeof(link), "%s/evil", root);
    assert_int_equal(symlink(r->dir, link), 0);
    assert_int_equal(hull_cstate_open(root, "evil", false, &fd, &e), -1);
    hull_error_free(&e);
    assert_int_equal(hull_cstate_remove(root, "c1", &e), 0);
    assert_int_equal(hull_cstate_remove(root, "c1", &e), 0); /* gone: fine */
}

/* A root someone else could have seeded with state is not trusted. */
static void untrusted_root(void **state)
{
    struct root *r = *state;
    hull_error e = NULL;
    int fd = -1;
    assert_int_equal(chmod(r->dir, 0777), 0);
    assert_int_equal(hull_cstate_open(r->dir, "c1", true, &fd, &e), -1);
    assert_int_equal(hull_error_code(e), EPERM);
    assert_non_null(strstr(hull_error_msg(e), ": writable by every user"));
    hull_error_free(&e);
    assert_int_equal(chmod(r->dir, 0700), 0);
    if (geteuid() == 0) {
        assert_int_equal(chown(r->dir, 65534, 65534), 0);
        assert_int_equal(hull_cstate_open(r->dir, "c1", false, &fd, &e), -1);
        assert_non_null(strstr(hull_error_msg(e), ": owned by uid 65534, neither the caller"));
        hull_error_free(&e);
        assert_int_equal(chown(r->dir, 0, 0), 0);
    }
    assert_int_equal(hull_cstate_open(r->dir, "c1", true, &fd, &e), 0);
    close(fd);
    assert_int_equal(hull_cstate_remove(r->dir, "c1", &e), 0);
}

static void round_trip(void **state)
{
    struct root *r = *state;
    hull_error e = NULL;
    int fd = -1;
    assert_int_equal(hull_cstate_open(r->dir, "c2", true, &fd, &e), 0);
    char *ann[] = {"k", "v", "e", "", NULL};
    json_object *cfg = json_tokener_parse("{\"ociVersion\":\"1.0.2\"}");
    struct hull_cstate s = {
        .id = "c2",
        .oci_version = "1.0.2",
        .bundle = "/b",
        .rootfs = "/b/rootfs",
        .created = "2024-05-06T07:08:09.123456789Z",
        .owner = "root",
        .creating = true,
        .pid = 4242,
        .pid_start = 18446744073709551615ull,
        .annotations = ann,
        .config = cfg,
    };
    assert_int_equal(hull_cstate_write(fd, &s, &e), 0);
    struct hull_cstate back;
    assert_int_equal(hull_cstate_read(fd, &back, &e), 0);
    assert_string_equal(back.id, "c2");
    assert_string_equal(back.oci_version, "1.0.2");
    assert_string_equal(back.bundle, "/b");
    assert_string_equal(back.rootfs, "/b/rootfs");
    assert_string_equal(back.created, s.created);
    assert_string_equal(back.owner, "root");
    assert_true(back.creating);
    assert_int_equal(back.pid, 4242);
    assert_true(back.pid_start == 18446744073709551615ull);
    assert_string_equal(back.annotations[2], "e");
    assert_string_equal(back.annotations[3], "");
    assert_string_equal(hj_to_string(back.config), "{\"ociVersion\":\"1.0.2\"}");
    assert_null(back.cgroup);
    hull_cstate_free(&back);
    json_object_put(cfg);
    struct stat st;
    assert_int_equal(fstatat(fd, "state.json", &st, 0), 0);
    assert_int_equal(st.st_mode & 0777, 0600);

    /* A torn or foreign state.json is an error naming the file. */
    int w = openat(fd, "state.json", O_WRONLY | O_TRUNC);
    assert_int_equal(write(w, "{\"pid\":1}", 9), 9);
    close(w);
    assert_int_equal(hull_cstate_read(fd, &back, &e), -1);
    assert_error_msg(e, "state.json: id: required");
    unlinkat(fd, "state.json", 0);
    assert_int_equal(hull_cstate_read(fd, &back, &e), -1);
    assert_int_equal(hull_error_code(e), ENOENT);
    hull_error_free(&e);
    close(fd);
}

static void status(void **state)
{
    struct root *r = *state;
    hull_error e = NULL;
    int fd = -1;
    assert_int_equal(hull_cstate_open(r->dir, "c3", true, &fd, &e), 0);
    unsigned long long me = hull_pid_start_time(getpid());
    assert_true(me > 0);
    assert_true(hull_pid_alive(getpid(), me));
    assert_false(hull_pid_alive(getpid(), me + 1)); /* a reused pid */
    assert_true(hull_pid_alive(getpid(), 0));       /* start unknown: trust the pid */
    assert_false(hull_pid_alive(0, 0));
    assert_false(hull_pid_alive(-1, 0));

    struct hull_cstate s = {.id = "c3", .creating = true, .pid = 0};
    assert_int_equal(hull_cstate_status(fd, &s, false), HULL_STATUS_CREATING);
    s.pid = getpid();
    s.pid_start = me;
    assert_int_equal(hull_cstate_status(fd, &s, false), HULL_STATUS_CREATING);
    s.pid_start = me + 1; /* creating, but its init is gone */
    assert_int_equal(hull_cstate_status(fd, &s, false), HULL_STATUS_STOPPED);
    s.creating = false;
    assert_int_equal(hull_cstate_status(fd, &s, false), HULL_STATUS_STOPPED);
    s.pid_start = me;
    assert_int_equal(hull_cstate_status(fd, &s, false), HULL_STATUS_RUNNING);
    assert_int_equal(hull_cstate_status(fd, &s, true), HULL_STATUS_PAUSED);
    assert_int_equal(mkfifoat(fd, HULL_EXEC_FIFO, 0600), 0);
    assert_int_equal(hull_cstate_status(fd, &s, false), HULL_STATUS_CREATED);
    s.pid = 0;
    assert_int_equal(hull_cstate_status(fd, &s, false), HULL_STATUS_STOPPED);
    close(fd);

    assert_string_equal(hull_status_name(HULL_STATUS_CREATING), "creating");
    assert_string_equal(hull_status_name(HULL_STATUS_CREATED), "created");
    assert_string_equal(hull_status_name(HULL_STATUS_RUNNING), "running");
    assert_string_equal(hull_status_name(HULL_STATUS_PAUSED), "paused");
    assert_string_equal(hull_status_name(HULL_STATUS_STOPPED), "stopped");
}

static void state_json(void **state)
{
    (void)state;
    char *ann[] = {"a", "1", NULL};
    struct hull_state st = {.id = "c",
                            .bundle = "/b",
                            .oci_version = "1.0.2",
                            .created = "2024-01-01T00:00:00Z",
                            .owner = "root",
                            .rootfs = "/b/r",
                            .pid = 7,
                            .status = HULL_STATUS_RUNNING,
                            .annotations = ann};
    char *j = hull_state_to_json(&st, false);
    assert_string_equal(j, "{\"ociVersion\":\"1.0.2\",\"id\":\"c\",\"pid\":7,"
                           "\"status\":\"running\",\"bundle\":\"/b\",\"rootfs\":\"/b/r\","
                           "\"created\":\"2024-01-01T00:00:00Z\",\"annotations\":{\"a\":\"1\"},"
                           "\"owner\":\"root\"}");
    free(j);
    /* No annotations: the key is left out, as runc does. */
    st.annotations = NULL;
    j = hull_state_to_json(&st, false);
    assert_null(strstr(j, "annotations"));
    free(j);
}

/* ---- verbs on hand-made state ----------------------------------------------- */

static void make_state_dir(const char *root, const char *id, const char *content)
{
    char p[PATH_MAX];
    mkdir(root, 0700);
    snprintf(p, sizeof(p), "%s/%s", root, id);
    assert_int_equal(mkdir(p, 0700), 0);
    if (content) {
        snprintf(p, sizeof(p), "%s/%s/state.json", root, id);
        FILE *f = fopen(p, "w");
        fputs(content, f);
        fclose(f);
    }
}

static void half_created(void **state)
{
    struct root *r = *state;
    struct hull_runtime rt = {.root = r->dir};
    hull_error e = NULL;
    make_state_dir(r->dir, "half", NULL);
    make_state_dir(r->dir, "torn", "{\"id\":");
    make_state_dir(r->dir, "ok",
                   "{\"id\":\"ok\",\"ociVersion\":\"1.0.2\",\"bundle\":\"/b\",\"pid\":0,"
                   "\"creating\":false}");

    /* list shows only the readable one */
    struct hull_state *all = NULL;
    size_t n = 0;
    assert_int_equal(hull_container_list(&rt, &all, &n, &e), 0);
    assert_int_equal(n, 1);
    assert_string_equal(all[0].id, "ok");
    assert_int_equal(all[0].status, HULL_STATUS_STOPPED);
    hull_state_free(&all[0]);
    free(all);

    struct hull_state st;
    assert_int_equal(hull_container_state(&rt, "half", &st, &e), -1);
    assert_error_msg(e, "state half: open state.json: No such file or directory");
    assert_int_equal(hull_container_start(&rt, "half", &e), -1);
    assert_error_msg(e, "start half: container 'half' was left half-created (use delete --force)");
    assert_int_equal(hull_container_kill(&rt, "torn", 9, false, &e), -1);
    assert_error_msg(e, "kill torn: state.json: invalid JSON: unexpected end of input");
    assert_int_equal(hull_container_kill(&rt, "ok", -1, false, &e), -1);
    assert_error_msg(e, "kill ok: invalid signal -1");
    assert_int_equal(hull_container_kill(&rt, "ok", 0, true, &e), -1);
    assert_error_msg(e, "kill ok: invalid signal 0 with --all");
    /* 0 asks whether it runs: a stopped one does not. */
    assert_int_equal(hull_container_kill(&rt, "ok", 0, false, &e), -1);
    assert_error_msg(e, "kill ok: container is not running");
    assert_int_equal(hull_container_kill(&rt, "ok", 9, false, &e), -1);
    assert_error_msg(e, "kill ok: container is not running");
    assert_int_equal(hull_container_start(&rt, "ok", &e), -1);
    assert_error_msg(e, "start ok: cannot start a container that is stopped");

    assert_int_equal(hull_container_delete(&rt, "half", false, &e), -1);
    assert_error_msg(e, "delete half: container left half-created (use --force): "
                        "open state.json: No such file or directory");
    assert_int_equal(hull_container_delete(&rt, "half", true, &e), 0);
    assert_int_equal(hull_container_delete(&rt, "torn", true, &e), 0);
    assert_int_equal(hull_container_delete(&rt, "ok", false, &e), 0);
    assert_int_equal(hull_container_delete(&rt, "never", true, &e), 0);
    assert_int_equal(hull_container_delete(&rt, "never", false, &e), -1);
    assert_error_msg(e, "delete never: container 'never' does not exist");
    assert_int_equal(hull_container_list(&rt, &all, &n, &e), 0);
    assert_int_equal(n, 0);
    free(all);
    assert_int_equal(rmdir(r->dir), 0); /* nothing left in the root */
    assert_int_equal(mkdir(r->dir, 0700), 0);
}

static void duplicate_create_changes_nothing(void **state)
{
    /* No container is started: the id exists, so create must stop before
     * anything, free what it parsed (the ASan build's leak check runs this)
     * and leave the existing state alone. */
    struct root *r = *state;
    struct hull_runtime rt = {.root = r->dir};
    char bundle[PATH_MAX], p[PATH_MAX + 32];
    snprintf(bundle, sizeof(bundle), "%s/bundle", r->dir);
    assert_int_equal(mkdir(bundle, 0755), 0);
    snprintf(p, sizeof(p), "%s/rootfs", bundle);
    assert_int_equal(mkdir(p, 0755), 0);
    snprintf(p, sizeof(p), "%s/config.json", bundle);
    FILE *f = fopen(p, "w");
    fputs("{\"ociVersion\":\"1.0.2\",\"root\":{\"path\":\"rootfs\"},"
          "\"process\":{\"args\":[\"sh\"],\"cwd\":\"/"
          "\"},\"linux\":{\"namespaces\":[{\"type\":\"mount\"}]}}",
          f);
    fclose(f);
    snprintf(p, sizeof(p), "%s/state", r->dir);
    rt.root = p;
    make_state_dir(p, "dup", "{\"id\":\"dup\",\"pid\":0}");
    struct hull_create_opts o = {.id = "dup", .bundle = bundle};
    hull_error e = NULL;
    assert_int_equal(hull_container_create(&rt, &o, &e), -1);
    assert_error_msg(e, "create dup: container 'dup' already exists");
    char *text = NULL;
    char sp[PATH_MAX + 64];
    snprintf(sp, sizeof(sp), "%s/dup/state.json", p);
    assert_int_equal(hull_read_file(sp, &text, NULL, &e), 0);
    assert_string_equal(text, "{\"id\":\"dup\",\"pid\":0}");
    free(text);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(ids),
        cmocka_unit_test_setup_teardown(open_create_and_exists, setup, teardown),
        cmocka_unit_test_setup_teardown(untrusted_root, setup, teardown),
        cmocka_unit_test_setup_teardown(round_trip, setup, teardown),
        cmocka_unit_test_setup_teardown(status, setup, teardown),
        cmocka_unit_test(state_json),
        cmocka_unit_test_setup_teardown(half_created, setup, teardown),
        cmocka_unit_test_setup_teardown(duplicate_create_changes_nothing, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
