/* image store, part 2: loading images (store.c), "used" marks, remove and
 * prune (gc.c). */
#include <sys/file.h>
#include <sys/wait.h>

#include "image_unit.h"

static void load_ok(struct fx *f, const char *text, const char *platform, struct image *img)
{
    hull_error err = NULL;
    if (image_load(&f->s, text, platform, img, &err) < 0)
        fail_msg("%s: %s", text, hull_error_msg(err));
}

static void load_fails(struct fx *f, const char *text, const char *platform, int code,
                       const char *msg)
{
    struct image img;
    hull_error err = NULL;
    assert_int_equal(image_load(&f->s, text, platform, &img, &err), -1);
    assert_int_equal(hull_error_code(err), code);
    if (strstr(hull_error_msg(err), msg) == NULL)
        fail_msg("'%s' does not say '%s'", hull_error_msg(err), msg);
    hull_error_free(&err);
}

static size_t file_size(struct fx *f, const char *rel)
{
    char p[PATH_MAX];
    struct stat st;
    snprintf(p, sizeof(p), "%s/%s", f->root, rel);
    assert_int_equal(stat(p, &st), 0);
    return (size_t)st.st_size;
}

static char *blob_rel(const char *digest)
{
    return fmt("blobs/sha256/%s", digest + 7);
}

/* An index naming md for the host's platform and a missing arm64 one. */
static char *make_index(struct fx *f, const char *md, const char *name)
{
    char os[32], arch[32];
    assert_int_equal(sscanf(image_host_platform(), "%31[^/]/%31[^/]", os, arch), 2);
    char *rel = blob_rel(md);
    char *text =
        fmt("{\"schemaVersion\":2,\"mediaType\":\"%s\",\"manifests\":["
            "{\"mediaType\":\"%s\",\"digest\":\"sha256:%064d\",\"size\":3,"
            "\"platform\":{\"os\":\"linux\",\"architecture\":\"s390x\"}},"
            "{\"mediaType\":\"%s\",\"digest\":\"%s\",\"size\":%zu,"
            "\"platform\":{\"os\":\"%s\",\"architecture\":\"%s\"}}]}",
            MT_OCI_INDEX, MT_OCI_MANIFEST, 7, MT_OCI_MANIFEST, md, file_size(f, rel), os, arch);
    char *d = put(f, text);
    struct image_desc desc = {
        .media_type = MT_OCI_INDEX, .digest = d, .size = (int64_t)strlen(text)};
    hull_error err = NULL;
    assert_int_equal(image_store_tag(&f->s, name, &desc, &err), 0);
    free(text);
    free(rel);
    return d;
}

static void test_load(void **state)
{
    struct fx *f = *state;
    char *md = make_image(f, "app", "a", 2);
    struct image img;
    load_ok(f, "app", NULL, &img);
    assert_string_equal(img.manifest_digest, md);
    assert_string_equal(img.entry.name, "docker.io/library/app:latest");
    assert_int_equal(img.manifest.n_layers, 2);
    assert_int_equal(img.config.n_diff_ids, 2);
    assert_string_equal(img.config.os, "linux");
    image_free(&img);
    /* Through an index: the host's manifest; another platform's is absent. */
    char *idx = make_index(f, md, "localhost/multi:1");
    load_ok(f, "localhost/multi:1", NULL, &img);
    assert_string_equal(img.manifest_digest, md);
    assert_string_equal(img.entry.desc.digest, idx);
    image_free(&img);
    load_fails(f, "localhost/multi:1", "linux/s390x", ENOENT, "is not in the store");
    load_fails(f, "localhost/multi:1", "linux/mips64", ENOENT,
               "no image for platform linux/mips64 (available: linux/s390x, ");
    /* A bare digest with no name. */
    char *other = make_image(f, NULL, "o", 1);
    load_ok(f, other, NULL, &img);
    assert_null(img.entry.name);
    assert_string_equal(img.manifest_digest, other);
    image_free(&img);
    load_fails(f, "nothere", NULL, ENOENT, "image nothere not found");
    /* A config without a diff_id for every layer. */
    char *cfg = put(f, "{\"os\":\"linux\",\"architecture\":\"amd64\",\"rootfs\":{\"type\":"
                       "\"layers\",\"diff_ids\":[]}}");
    char *m = fmt("{\"schemaVersion\":2,\"config\":{\"mediaType\":\"%s\",\"digest\":\"%s\","
                  "\"size\":1},\"layers\":[{\"mediaType\":\"%s\",\"digest\":\"%s\",\"size\":1}]}",
                  MT_OCI_CONFIG, cfg, MT_OCI_LAYER, md);
    char *mdig = put(f, m);
    struct image_desc d = {.media_type = MT_OCI_MANIFEST, .digest = mdig, .size = 1};
    hull_error err = NULL;
    assert_int_equal(image_store_tag(&f->s, "broken", &d, &err), 0);
    load_fails(f, "broken", NULL, EINVAL, "0 diff_ids for 1 layers");
    /* A tampered config is refused. */
    load_ok(f, "app", NULL, &img);
    char *rel = blob_rel(img.manifest.config.digest);
    image_free(&img);
    write_rel(f, rel, "{}");
    load_fails(f, "app", NULL, EIO, "is corrupt");
    free(rel);
    free(m);
    free(mdig);
    free(cfg);
    free(other);
    free(idx);
    free(md);
}

static void test_remove(void **state)
{
    struct fx *f = *state;
    hull_error err = NULL;
    char *md = make_image(f, "x", "x", 1);
    char *rel = blob_rel(md);
    struct image_desc d = {
        .media_type = MT_OCI_MANIFEST, .digest = md, .size = (int64_t)file_size(f, rel)};
    assert_int_equal(image_store_tag(&f->s, "y", &d, &err), 0);
    char prefix[13];
    snprintf(prefix, sizeof(prefix), "%s", md + 7);
    assert_int_equal(image_store_remove(&f->s, prefix, false, &err), -1);
    assert_int_equal(hull_error_code(err), EINVAL);
    char *msg = fmt("image %s has several names (docker.io/library/x:latest, "
                    "docker.io/library/y:latest): remove them by name, or force",
                    prefix);
    assert_error_msg(err, msg);
    free(msg);
    assert_int_equal(image_store_remove(&f->s, "x", false, &err), 0);
    struct image img;
    load_fails(f, "x", NULL, ENOENT, "not found");
    /* In use (another process holds the mark): the last name stays. */
    int go[2], ready[2];
    assert_int_equal(pipe(go), 0);
    assert_int_equal(pipe(ready), 0);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        int keep[] = {go[0], ready[1]};
        hull_close_fds_except(3, keep, 2);
        struct image_store s2;
        hull_error e2 = NULL;
        char c;
        if (image_store_open(f->root, false, &s2, &e2) < 0 || image_use(&s2, md, &e2) < 0)
            _exit(2);
        if (write(ready[1], "x", 1) != 1 || read(go[0], &c, 1) != 1)
            _exit(3);
        _exit(0);
    }
    close(go[0]);
    close(ready[1]);
    char c;
    assert_int_equal(read(ready[0], &c, 1), 1);
    assert_true(image_in_use(&f->s, md));
    assert_int_equal(image_store_remove(&f->s, "y", false, &err), -1);
    assert_int_equal(hull_error_code(err), EBUSY);
    assert_error_msg(err, "image y is in use by a running sandbox or container");
    load_ok(f, "y", NULL, &img);
    image_free(&img);
    /* An index over it is in use too. */
    char *idx = make_index(f, md, "multi");
    assert_int_equal(image_store_remove(&f->s, "multi", false, &err), -1);
    assert_int_equal(hull_error_code(err), EBUSY);
    hull_error_free(&err);
    assert_int_equal(image_store_remove(&f->s, "multi", true, &err), 0);
    assert_int_equal(write(go[1], "x", 1), 1);
    int status;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    close(go[1]);
    close(ready[0]);
    assert_false(image_in_use(&f->s, md));
    /* The same process's own mark counts as well; force overrides it. */
    int fd = image_use(&f->s, md, &err);
    assert_true(fd >= 0);
    assert_int_equal(image_store_remove(&f->s, md, false, &err), -1);
    assert_int_equal(hull_error_code(err), EBUSY);
    hull_error_free(&err);
    assert_int_equal(image_store_remove(&f->s, md, true, &err), 0);
    close(fd);
    load_fails(f, "y", NULL, ENOENT, "not found");
    assert_int_equal(image_store_remove(&f->s, "y", false, &err), -1);
    assert_int_equal(hull_error_code(err), ENOENT);
    hull_error_free(&err);
    free(idx);
    free(rel);
    free(md);
}

static void mkfile(struct fx *f, const char *rel, const char *text)
{
    char p[PATH_MAX];
    snprintf(p, sizeof(p), "%s/%s", f->root, rel);
    int fd = open(p, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
    close(fd);
}

static void mkdir_rel(struct fx *f, const char *rel)
{
    char p[PATH_MAX];
    snprintf(p, sizeof(p), "%s/%s", f->root, rel);
    assert_int_equal(mkdir(p, 0755), 0);
}

/* hull/layers/<hex of diff-SEED-I>[SUFFIX] */
static char *layer_rel(const char *seed, int i, const char *suffix)
{
    char *diff = fmt("diff-%s-%d", seed, i);
    char *d = digest_of(diff);
    char *r = fmt("hull/layers/%s%s", d + 7, suffix);
    free(d);
    free(diff);
    return r;
}

static void test_prune(void **state)
{
    struct fx *f = *state;
    hull_error err = NULL;
    /* A named (2 layers); B unnamed, sharing A's layers plus one; C unnamed
     * but used by a run; an index over A; a junk blob. */
    char *a = make_image(f, "a", "s", 2);
    char *b = make_image(f, NULL, "s", 3);
    char *c = make_image(f, NULL, "c", 1);
    char *idx = make_index(f, a, "multi");
    char *junk = put(f, "junk");
    int use_c = image_use(&f->s, c, &err);
    assert_true(use_c >= 0);
    int stale = image_use(&f->s, b, &err); /* a run of B that ended */
    close(stale);
    struct image img;
    load_ok(f, b, NULL, &img);
    char *b_rel = blob_rel(b), *b_cfg = blob_rel(img.manifest.config.digest);
    char *s2 = blob_rel(img.manifest.layers[2].digest),
         *s0 = blob_rel(img.manifest.layers[0].digest);
    image_free(&img);
    uint64_t bytes = file_size(f, b_rel) + file_size(f, b_cfg) + 3 /* "s-2" */ + 4 /* junk */;
    /* Unpacked layers: A's, B's own, C's, one being unpacked (lock held),
     * and a dead unpack's temporary. */
    char *la = layer_rel("s", 0, ""), *lb = layer_rel("s", 2, ""), *lc = layer_rel("c", 0, "");
    char *lbusy = layer_rel("busy", 0, ""), *lbusy_lock = layer_rel("busy", 0, ".lock");
    char *ltmp = layer_rel("dead", 0, ".tmp-1");
    const char *dirs[] = {la, lb, lc, lbusy, ltmp};
    for (size_t i = 0; i < 5; i++) {
        mkdir_rel(f, dirs[i]);
        char *file = fmt("%s/file", dirs[i]);
        mkfile(f, file, "0123456789");
        free(file);
    }
    bytes += 10 + 10;
    char p[PATH_MAX];
    snprintf(p, sizeof(p), "%s/%s", f->root, lbusy_lock);
    int busy = open(p, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    assert_true(busy >= 0 && flock(busy, LOCK_EX) == 0);
    /* Ingest: an abandoned .part and a writer at work. */
    char *gone = digest_of("gone"), *work = digest_of("work in progress");
    char *gone_part = fmt("hull/ingest/%s.part", gone + 7);
    mkfile(f, gone_part, "gone!");
    bytes += 5;
    struct image_blob_writer *w = NULL;
    assert_int_equal(image_blob_writer_open(&f->s, work, 16, &w, NULL, &err), 0);
    assert_int_equal(image_blob_writer_write(w, "work", 4, &err), 0);
    char *work_part = fmt("hull/ingest/%s.part", work + 7);
    /* Disks of A (kept) and B (removed); an index.json temporary. */
    char *disk_a = fmt("hull/disks/%s.sqfs", a + 7), *disk_b = fmt("hull/disks/%s.sqfs", b + 7);
    mkfile(f, disk_a, "disk");
    mkfile(f, disk_b, "disk b!");
    mkfile(f, ".index.json.999.tmp", "{}{}");
    bytes += 7 + 4;

    struct image_prune_report r;
    if (image_store_prune(&f->s, &r, &err) < 0)
        fail_msg("%s", hull_error_msg(err));
    assert_int_equal(r.blobs, 4);
    assert_int_equal(r.layers, 1);
    assert_int_equal(r.bytes, bytes);
    /* Gone: */
    const char *removed[] = {b_rel, b_cfg, s2, lb, ltmp, gone_part, disk_b, ".index.json.999.tmp"};
    for (size_t i = 0; i < sizeof(removed) / sizeof(removed[0]); i++)
        if (exists(f, removed[i]))
            fail_msg("%s was not removed", removed[i]);
    char *junk_rel = blob_rel(junk), *using_b = fmt("hull/using/%s", b + 7);
    assert_false(exists(f, junk_rel));
    assert_false(exists(f, using_b));
    /* Kept: */
    const char *kept[] = {s0, la, lc, lbusy, lbusy_lock, work_part, disk_a};
    for (size_t i = 0; i < sizeof(kept) / sizeof(kept[0]); i++)
        if (!exists(f, kept[i]))
            fail_msg("%s was removed", kept[i]);
    load_ok(f, "a", NULL, &img);
    image_free(&img);
    load_ok(f, "multi", NULL, &img);
    image_free(&img);
    load_ok(f, c, NULL, &img);
    image_free(&img);
    /* Once C's run ends and the unpack and writer are gone, C goes too;
     * then nothing is left to prune. */
    close(use_c);
    close(busy);
    image_blob_writer_abort(w, true);
    assert_int_equal(image_store_prune(&f->s, &r, &err), 0);
    assert_int_equal(r.blobs, 3);  /* C's manifest, config, layer */
    assert_int_equal(r.layers, 2); /* C's and the one that was being unpacked */
    assert_false(exists(f, work_part));
    assert_int_equal(count_dir(f, "hull/ingest"), 0);
    assert_int_equal(count_dir(f, "hull/using"), 0);
    /* Only A's layer is left among the unpacked ones: no lock files. */
    assert_int_equal(count_dir(f, "hull/layers"), 1);
    assert_int_equal(image_store_prune(&f->s, &r, &err), 0);
    assert_true(r.blobs == 0 && r.layers == 0 && r.bytes == 0);
    load_ok(f, "a", NULL, &img);
    image_free(&img);
    char *ptrs[] = {a,    b,         c,         idx,    junk,   b_rel,      b_cfg,  s2,
                    s0,   la,        lb,        lc,     lbusy,  lbusy_lock, ltmp,   gone,
                    work, gone_part, work_part, disk_a, disk_b, junk_rel,   using_b};
    for (size_t i = 0; i < sizeof(ptrs) / sizeof(ptrs[0]); i++)
        free(ptrs[i]);
}

/* Processes tagging at once: index.json is rewritten under the store lock,
 * so no name is lost to another's write. */
static void test_concurrent_tags(void **state)
{
    struct fx *f = *state;
    char *md = make_image(f, NULL, "t", 1);
    char *rel = blob_rel(md);
    struct image_desc d = {
        .media_type = MT_OCI_MANIFEST, .digest = md, .size = (int64_t)file_size(f, rel)};
    enum { KIDS = 6, EACH = 15 };
    pid_t pids[KIDS];
    for (int k = 0; k < KIDS; k++) {
        pids[k] = fork();
        assert_true(pids[k] >= 0);
        if (pids[k] == 0) {
            hull_close_fds_except(3, NULL, 0);
            struct image_store s2;
            hull_error e2 = NULL;
            if (image_store_open(f->root, false, &s2, &e2) < 0)
                _exit(2);
            for (int i = 0; i < EACH; i++) {
                char name[64];
                snprintf(name, sizeof(name), "localhost/k%d:%d", k, i);
                if (image_store_tag(&s2, name, &d, &e2) < 0)
                    _exit(3);
            }
            _exit(0);
        }
    }
    for (int k = 0; k < KIDS; k++) {
        int status;
        assert_int_equal(waitpid(pids[k], &status, 0), pids[k]);
        assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    }
    struct image_entry *v = NULL;
    size_t n = 0;
    hull_error err = NULL;
    assert_int_equal(image_store_list(&f->s, &v, &n, &err), 0);
    assert_int_equal(n, KIDS * EACH);
    image_entries_free(v, n);
    free(rel);
    free(md);
}

/* A .part of a blob's digest holding other bytes (a disk fault, a bad
 * mirror): put drops it and stores the right bytes. */
static void test_bad_part(void **state)
{
    struct fx *f = *state;
    const char *data = "the right bytes";
    char *d = digest_of(data);
    char *part = fmt("hull/ingest/%s.part", d + 7);
    mkfile(f, part, "the wrong");
    char *got = put(f, data);
    assert_string_equal(got, d);
    assert_false(exists(f, part));
    assert_int_equal(count_dir(f, "hull/ingest"), 0);
    hull_error err = NULL;
    char *text = NULL;
    size_t len = 0;
    assert_int_equal(image_blob_read(&f->s, d, 100, &text, &len, &err), 0);
    assert_string_equal(text, data);
    free(text);
    free(got);
    free(part);
    free(d);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_load, setup, teardown),
        cmocka_unit_test_setup_teardown(test_remove, setup, teardown),
        cmocka_unit_test_setup_teardown(test_prune, setup, teardown),
        cmocka_unit_test_setup_teardown(test_concurrent_tags, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bad_part, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
