/* image store (src/lib/image: ref.c, manifest.c, store.c, blob.c, gc.c):
 * references, documents, the OCI layout on disk, blobs and their writer,
 * names, remove and prune. */
#include <dirent.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include "image_unit.h"

#define HEX_A "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
#define SUF_A "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
#define SUF_B "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb"
#define HEX_B "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb"

/* ---- references ---- */

static void test_ref_table(void **state)
{
    (void)state;
    static const struct {
        const char *in, *name;
    } good[] = {
        {"busybox", "docker.io/library/busybox:latest"},
        {"busybox:1.36", "docker.io/library/busybox:1.36"},
        {"library/busybox", "docker.io/library/busybox:latest"},
        {"docker.io/busybox", "docker.io/library/busybox:latest"},
        {"index.docker.io/busybox", "docker.io/library/busybox:latest"},
        {"user/app:v1.2_3-x", "docker.io/user/app:v1.2_3-x"},
        {"localhost/app", "localhost/app:latest"},
        {"localhost:5000/a/b/c:t", "localhost:5000/a/b/c:t"},
        {"127.0.0.1:5000/app", "127.0.0.1:5000/app:latest"},
        {"quay.io/org/app_x.y__z-w--v", "quay.io/org/app_x.y__z-w--v:latest"},
        {"[::1]:5000/app", "[::1]:5000/app:latest"},
        {"busybox@sha256:" HEX_A, "docker.io/library/busybox@sha256:" HEX_A},
        {"busybox:1@sha256:" HEX_A, "docker.io/library/busybox:1@sha256:" HEX_A},
        {"localhost", "docker.io/library/localhost:latest"},
        {"Registry.Example.com/app", "Registry.Example.com/app:latest"},
    };
    for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
        struct image_ref r;
        hull_error err = NULL;
        if (image_ref_parse(good[i].in, &r, &err) < 0)
            fail_msg("%s: %s", good[i].in, hull_error_msg(err));
        char *n = image_ref_name(&r);
        assert_string_equal(n, good[i].name);
        free(n);
        image_ref_free(&r);
    }
    struct image_ref r;
    hull_error err = NULL;
    assert_int_equal(image_ref_parse("busybox@sha256:" HEX_A, &r, &err), 0);
    assert_null(r.tag);
    assert_string_equal(r.digest, "sha256:" HEX_A);
    image_ref_free(&r);

    static const struct {
        const char *in, *msg;
    } bad[] = {
        {"", "invalid reference '': empty"},
        {"Busybox", "invalid reference 'Busybox': repository name must be lowercase"},
        {"a//b", "invalid reference 'a//b': empty path component"},
        {"/a", "invalid reference '/a': empty registry or path component"},
        {"a/", "invalid reference 'a/': empty path component"},
        {"busybox:", "invalid reference 'busybox:': empty tag"},
        {"busybox:a/b", "invalid reference 'busybox:a/b': invalid registry port"},
        {"busybox:.x", "invalid reference 'busybox:.x': tag must not start with '.' or '-'"},
        {"busybox:x!", "invalid reference 'busybox:x!': invalid character in tag (allowed: "
                       "A-Z a-z 0-9 _ . -)"},
        {"busybox@sha256:abc",
         "invalid reference 'busybox@sha256:abc': digest must be sha256:<64 lower-case hex "
         "characters>"},
        {"busybox@md5:" HEX_A,
         "invalid reference 'busybox@md5:" HEX_A "': digest must be sha256:<64 hex characters>"},
        {"a..b", "invalid reference 'a..b': invalid separator in repository name"},
        {"-a", "invalid reference '-a': path components must start and end with a letter or "
               "digit"},
        {"host:port/app", "invalid reference 'host:port/app': invalid registry port"},
        {"bad_host.com/app", "invalid reference 'bad_host.com/app': invalid character in "
                             "registry host"},
        {"a b", "invalid reference 'a b': contains whitespace or a non-ASCII character"},
        {HEX_A,
         "invalid reference '" HEX_A "': a 64-character hex string is an image ID, not a name"},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        err = NULL;
        if (image_ref_parse(bad[i].in, &r, &err) == 0)
            fail_msg("%s: accepted", bad[i].in);
        assert_int_equal(hull_error_code(err), EINVAL);
        assert_error_msg(err, bad[i].msg);
    }
    /* The tag limit is 128 characters. */
    char tag[200];
    snprintf(tag, sizeof(tag), "a:%0128d", 0);
    assert_int_equal(image_ref_parse(tag, &r, &err), 0);
    image_ref_free(&r);
    snprintf(tag, sizeof(tag), "a:%0129d", 0);
    assert_int_equal(image_ref_parse(tag, &r, &err), -1);
    assert_true(strstr(hull_error_msg(err), "tag longer than 128") != NULL);
    hull_error_free(&err);
}

/* ---- documents ---- */

#define LAYER(mt, hex, size)                                                                       \
    "{\"mediaType\":\"" mt "\",\"digest\":\"sha256:" hex "\",\"size\":" size "}"

static void manifest_ok(const char *text, const char *mt, size_t layers)
{
    struct image_manifest m;
    hull_error err = NULL;
    if (image_manifest_parse(text, strlen(text), &m, &err) < 0)
        fail_msg("%s", hull_error_msg(err));
    assert_string_equal(m.media_type, mt);
    assert_int_equal(m.n_layers, layers);
    image_manifest_free(&m);
}

static void manifest_bad(const char *text, int code, const char *msg)
{
    struct image_manifest m;
    hull_error err = NULL;
    assert_int_equal(image_manifest_parse(text, strlen(text), &m, &err), -1);
    assert_int_equal(hull_error_code(err), code);
    if (strstr(hull_error_msg(err), msg) == NULL)
        fail_msg("'%s' does not say '%s'", hull_error_msg(err), msg);
    hull_error_free(&err);
}

static void test_manifest_parse(void **state)
{
    (void)state;
    const char *cfg = LAYER(MT_OCI_CONFIG, HEX_A, "10");
    char *t = fmt("{\"schemaVersion\":2,\"mediaType\":\"%s\",\"config\":%s,\"layers\":[" LAYER(
                      MT_OCI_LAYER_GZIP, HEX_B, "5") "," LAYER(MT_OCI_LAYER_ZSTD, HEX_A, "0") "]}",
                  MT_OCI_MANIFEST, cfg);
    manifest_ok(t, MT_OCI_MANIFEST, 2);
    free(t);
    /* OCI may leave mediaType out; Docker schema 2 names itself. */
    t = fmt("{\"schemaVersion\":2,\"config\":%s,\"layers\":[]}", cfg);
    manifest_ok(t, MT_OCI_MANIFEST, 0);
    free(t);
    t = fmt(
        "{\"schemaVersion\":2,\"mediaType\":\"%s\",\"config\":" LAYER(
            MT_DOCKER_CONFIG, HEX_A, "3") ",\"layers\":[" LAYER(MT_DOCKER_LAYER, HEX_B, "7") "]}",
        MT_DOCKER_MANIFEST);
    manifest_ok(t, MT_DOCKER_MANIFEST, 1);
    free(t);

    manifest_bad("{\"schemaVersion\":1,\"name\":\"x\",\"fsLayers\":[]}", ENOTSUP,
                 "Docker schema 1 manifests are not supported");
    manifest_bad("{\"schemaVersion\":2,\"mediaType\":"
                 "\"application/vnd.docker.distribution.manifest.v1+prettyjws\"}",
                 ENOTSUP, "Docker schema 1");
    manifest_bad("{\"schemaVersion\":3,\"config\":{},\"layers\":[]}", ENOTSUP,
                 "schemaVersion 3 is not supported");
    manifest_bad("{\"config\":{},\"layers\":[]}", EINVAL, "schemaVersion: required");
    manifest_bad("{\"schemaVersion\":2,", EINVAL, "invalid JSON");
    t = fmt("{\"schemaVersion\":2,\"config\":%s,\"layers\":[" LAYER("application/vnd.example.weird",
                                                                    HEX_B, "5") "]}",
            cfg);
    manifest_bad(t, ENOTSUP, "unsupported layer media type 'application/vnd.example.weird'");
    free(t);
    t = fmt("{\"schemaVersion\":2,\"config\":%s,\"layers\":[" LAYER(MT_OCI_LAYER, HEX_B, "-1") "]}",
            cfg);
    manifest_bad(t, EINVAL, "manifest.layers[0].size: must not be negative");
    free(t);
    t = fmt("{\"schemaVersion\":2,\"config\":%s,\"layers\":[{\"mediaType\":\"%s\",\"digest\":"
            "\"sha256:ABC\",\"size\":1}]}",
            cfg, MT_OCI_LAYER);
    manifest_bad(t, EINVAL, "manifest.layers[0].digest: 'sha256:ABC' is not sha256");
    free(t);
    manifest_bad("{\"schemaVersion\":2,\"config\":" LAYER("application/vnd.cncf.helm.config."
                                                          "v1+json",
                                                          HEX_A, "1") ",\"layers\":[]}",
                 ENOTSUP, "is not a container image config");
    t = fmt("{\"schemaVersion\":2,\"mediaType\":\"%s\",\"manifests\":[]}", MT_OCI_INDEX);
    manifest_bad(t, EINVAL, "is an image index");
    free(t);
    /* Over the cap: refused before parsing. */
    size_t big = HULL_IMAGE_MANIFEST_MAX + 1;
    char *huge = malloc(big + 1);
    memset(huge, ' ', big);
    huge[0] = '{';
    huge[big - 1] = '}';
    huge[big] = '\0';
    manifest_bad(huge, EFBIG, "over the limit");
    free(huge);
}

static const char *index_text =
    "{\"schemaVersion\":2,\"mediaType\":\"" MT_DOCKER_LIST "\",\"manifests\":["
    "{\"mediaType\":\"" MT_DOCKER_MANIFEST "\",\"digest\":\"sha256:" HEX_A "\",\"size\":1,"
    "\"platform\":{\"os\":\"linux\",\"architecture\":\"arm\",\"variant\":\"v7\"}},"
    "{\"mediaType\":\"" MT_OCI_MANIFEST "\",\"digest\":\"sha256:" HEX_B "\",\"size\":2,"
    "\"platform\":{\"os\":\"unknown\",\"architecture\":\"unknown\"}},"
    "{\"mediaType\":\"" MT_DOCKER_MANIFEST "\",\"digest\":\"sha256:"
    "cccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccc\",\"size\":3,"
    "\"platform\":{\"os\":\"linux\",\"architecture\":\"amd64\",\"variant\":\"v3\"}},"
    "{\"mediaType\":\"" MT_DOCKER_MANIFEST "\",\"digest\":\"sha256:"
    "dddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddd\",\"size\":4,"
    "\"platform\":{\"os\":\"linux\",\"architecture\":\"arm64\"}}]}";

static void select_ok(const char *platform, char hexchar)
{
    struct image_desc d;
    hull_error err = NULL;
    if (image_index_select(index_text, strlen(index_text), platform, &d, &err) < 0)
        fail_msg("%s: %s", platform, hull_error_msg(err));
    assert_int_equal(d.digest[7], hexchar);
    image_desc_free(&d);
}

static void test_platform_select(void **state)
{
    (void)state;
    const char *t = index_text;
    assert_string_equal(image_doc_kind(t, strlen(t), NULL, NULL), MT_DOCKER_LIST);
    select_ok("linux/arm/v7", 'a');
    select_ok("linux/amd64", 'c'); /* amd64's variant ignored unless asked */
    select_ok("linux/amd64/v3", 'c');
    select_ok("linux/x86_64", 'c');
    select_ok("linux/arm64", 'd');
    select_ok("linux/arm64/v8", 'd'); /* arm64 without a variant is v8 */
    if (strcmp(image_host_platform(), "linux/amd64") == 0)
        select_ok(NULL, 'c');
    struct image_desc d;
    hull_error err = NULL;
    assert_int_equal(image_index_select(t, strlen(t), "linux/riscv64", &d, &err), -1);
    assert_int_equal(hull_error_code(err), ENOENT);
    assert_error_msg(err, "no image for platform linux/riscv64 (available: linux/arm/v7, "
                          "linux/amd64/v3, linux/arm64)");
    assert_int_equal(image_index_select(t, strlen(t), "linux/amd64/v2", &d, &err), -1);
    assert_int_equal(hull_error_code(err), ENOENT);
    hull_error_free(&err);
    assert_int_equal(image_index_select(t, strlen(t), "linux", &d, &err), -1);
    assert_error_msg(err, "invalid platform 'linux' (want os/arch[/variant])");
    /* An index of an unknown kind, and a manifest given as an index. */
    const char *m = "{\"schemaVersion\":2,\"mediaType\":\"application/x-foo\"}";
    assert_null(image_doc_kind(m, strlen(m), NULL, &err));
    assert_error_msg(err, "document: unsupported media type 'application/x-foo'");
    const char *o = "{\"schemaVersion\":2,\"manifests\":[]}";
    assert_string_equal(image_doc_kind(o, strlen(o), NULL, NULL), MT_OCI_INDEX);
    /* An index of indexes: said so, not "available: none". */
    const char *nest = "{\"schemaVersion\":2,\"mediaType\":\"" MT_OCI_INDEX "\",\"manifests\":["
                       "{\"mediaType\":\"" MT_OCI_INDEX "\",\"digest\":\"sha256:" HEX_B "\","
                       "\"size\":2,\"platform\":{\"os\":\"linux\",\"architecture\":\"amd64\"}}]}";
    assert_int_equal(image_index_select(nest, strlen(nest), "linux/amd64", &d, &err), -1);
    assert_int_equal(hull_error_code(err), ENOTSUP);
    assert_error_msg(err, "no image for platform linux/amd64 (available: none; 1 entry is an index "
                          "itself, which hull does not follow: one level of index only)");
}

static void test_config_parse(void **state)
{
    (void)state;
    const char *t =
        "{\"os\":\"linux\",\"architecture\":\"amd64\",\"config\":{\"Entrypoint\":[\"/bin/sh\"],"
        "\"Cmd\":[\"-c\",\"echo\"],\"Env\":[\"A=1\"],\"WorkingDir\":\"/w\",\"User\":\"1:2\","
        "\"StopSignal\":\"SIGINT\",\"ExposedPorts\":{\"80/tcp\":{}},\"Labels\":{\"k\":\"v\"}},"
        "\"rootfs\":{\"type\":\"layers\",\"diff_ids\":[\"sha256:" HEX_A "\"]}}";
    struct image_config c;
    hull_error err = NULL;
    assert_int_equal(image_config_parse(t, strlen(t), &c, &err), 0);
    assert_string_equal(c.os, "linux");
    assert_string_equal(c.entrypoint[0], "/bin/sh");
    assert_string_equal(c.cmd[1], "echo");
    assert_string_equal(c.env[0], "A=1");
    assert_string_equal(c.working_dir, "/w");
    assert_string_equal(c.user, "1:2");
    assert_string_equal(c.stop_signal, "SIGINT");
    assert_string_equal(c.exposed_ports[0], "80/tcp");
    assert_string_equal(json_object_get_string(json_object_object_get(c.labels, "k")), "v");
    assert_int_equal(c.n_diff_ids, 1);
    image_config_free(&c);
    const char *bad[][2] = {
        {"{\"os\":\"linux\",\"architecture\":\"amd64\"}", "config.rootfs: required"},
        {"{\"os\":\"linux\",\"architecture\":\"amd64\",\"rootfs\":{\"type\":\"x\","
         "\"diff_ids\":[]}}",
         "config.rootfs.type: 'x', not \"layers\""},
        {"{\"os\":\"linux\",\"architecture\":\"amd64\",\"rootfs\":{\"type\":\"layers\","
         "\"diff_ids\":[\"sha256:x\"]}}",
         "config.rootfs.diff_ids[0]: 'sha256:x' is not sha256:<64 hex>"},
        {"{\"architecture\":\"amd64\",\"rootfs\":{\"type\":\"layers\",\"diff_ids\":[]}}",
         "config.os: required"},
        {"{\"os\":\"linux\",\"architecture\":\"amd64\",\"config\":{\"Cmd\":\"sh\"},\"rootfs\":{"
         "\"type\":\"layers\",\"diff_ids\":[]}}",
         "config.config.Cmd: must be an array of strings"},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        assert_int_equal(image_config_parse(bad[i][0], strlen(bad[i][0]), &c, &err), -1);
        assert_error_msg(err, bad[i][1]);
    }
}

static void test_store_layout(void **state)
{
    struct fx *f = *state;
    char *t = read_rel(f, "oci-layout");
    assert_string_equal(t, "{\"imageLayoutVersion\":\"1.0.0\"}");
    free(t);
    t = read_rel(f, "index.json");
    assert_non_null(strstr(t, "\"schemaVersion\":2"));
    assert_non_null(strstr(t, "\"manifests\":[]"));
    free(t);
    assert_true(exists(f, "blobs/sha256") && exists(f, "hull/ingest") && exists(f, "hull/layers"));
    assert_true(exists(f, "hull/using") && exists(f, "hull/disks"));
    struct stat st;
    assert_int_equal(stat(f->root, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0700);

    struct image_store again;
    hull_error err = NULL;
    assert_int_equal(image_store_open(f->root, false, &again, &err), 0);
    assert_true(again.root[0] == '/' && again.lockfd == -1);
    image_store_close(&again);
    char *missing = fmt("%s/none", f->dir);
    assert_int_equal(image_store_open(missing, false, &again, &err), -1);
    assert_int_equal(hull_error_code(err), ENOENT);
    char *msg = fmt("no images in %s (hull image pull)", missing);
    assert_error_msg(err, msg);
    free(msg);
    assert_false(exists(f, "../none"));
    free(missing);
    /* $HULL_IMAGE_ROOT when no root is given. */
    setenv("HULL_IMAGE_ROOT", f->root, 1);
    assert_int_equal(image_store_open(NULL, false, &again, &err), 0);
    image_store_close(&again);
    unsetenv("HULL_IMAGE_ROOT");
}

static void test_blobs(void **state)
{
    struct fx *f = *state;
    char *d = put(f, "hello");
    char *want = digest_of("hello");
    assert_string_equal(d, want);
    assert_true(image_blob_exists(&f->s, d));
    char *text = NULL;
    size_t len = 0;
    hull_error err = NULL;
    assert_int_equal(image_blob_read(&f->s, d, 100, &text, &len, &err), 0);
    assert_int_equal(len, 5);
    assert_string_equal(text, "hello");
    free(text);
    assert_int_equal(image_blob_read(&f->s, d, 4, &text, &len, &err), -1);
    assert_int_equal(hull_error_code(err), EFBIG);
    hull_error_free(&err);
    /* Putting it again is a no-op. */
    char *d2 = put(f, "hello");
    assert_string_equal(d2, d);
    free(d2);
    /* A tampered blob is refused by read. */
    char rel[200];
    snprintf(rel, sizeof(rel), "blobs/sha256/%s", d + 7);
    write_rel(f, rel, "hellp");
    assert_int_equal(image_blob_read(&f->s, d, 100, &text, &len, &err), -1);
    assert_int_equal(hull_error_code(err), EIO);
    assert_non_null(strstr(hull_error_msg(err), "is corrupt"));
    hull_error_free(&err);

    /* The wrong bytes for a digest: refused at commit, nothing kept. */
    char *other = digest_of("world");
    struct image_blob_writer *w = NULL;
    int64_t from = -1;
    assert_int_equal(image_blob_writer_open(&f->s, other, 5, &w, &from, &err), 0);
    assert_int_equal(from, 0);
    assert_false(image_blob_writer_done(w));
    assert_int_equal(image_blob_writer_write(w, "worle", 5, &err), 0);
    assert_int_equal(image_blob_writer_commit(w, NULL, &err), -1);
    assert_int_equal(hull_error_code(err), EIO);
    assert_non_null(strstr(hull_error_msg(err), "digest mismatch"));
    hull_error_free(&err);
    assert_false(image_blob_exists(&f->s, other));
    assert_int_equal(count_dir(f, "hull/ingest"), 0);
    /* Too many bytes: refused while streaming; too few: at commit. */
    assert_int_equal(image_blob_writer_open(&f->s, other, 5, &w, &from, &err), 0);
    assert_int_equal(image_blob_writer_write(w, "world!", 6, &err), -1);
    assert_int_equal(hull_error_code(err), EFBIG);
    hull_error_free(&err);
    assert_int_equal(image_blob_writer_write(w, "wor", 3, &err), 0);
    assert_int_equal(image_blob_writer_commit(w, NULL, &err), -1);
    assert_non_null(strstr(hull_error_msg(err), "3 bytes, expected 5"));
    hull_error_free(&err);
    assert_false(image_blob_exists(&f->s, other));
    assert_int_equal(count_dir(f, "hull/ingest"), 0);
    /* No expected digest: the digest is what was written. */
    assert_int_equal(image_blob_writer_open(&f->s, NULL, -1, &w, NULL, &err), 0);
    assert_int_equal(image_blob_writer_write(w, "wor", 3, &err), 0);
    assert_int_equal(image_blob_writer_write(w, "ld", 2, &err), 0);
    char *got = NULL;
    assert_int_equal(image_blob_writer_commit(w, &got, &err), 0);
    assert_string_equal(got, other);
    assert_true(image_blob_exists(&f->s, other));
    assert_int_equal(count_dir(f, "hull/ingest"), 0);
    assert_int_equal(image_blob_open(&f->s, "sha256:" HEX_A, &err), -1);
    assert_int_equal(hull_error_code(err), ENOENT);
    hull_error_free(&err);
    free(got);
    free(other);
    free(d);
    free(want);
}

static void test_writer_resume(void **state)
{
    struct fx *f = *state;
    const char *data = "0123456789abcdefghij";
    char *d = digest_of(data);
    struct image_blob_writer *w = NULL;
    int64_t from = -1;
    hull_error err = NULL;
    assert_int_equal(image_blob_writer_open(&f->s, d, 20, &w, &from, &err), 0);
    assert_int_equal(image_blob_writer_write(w, data, 8, &err), 0);
    image_blob_writer_abort(w, true);
    char part[200];
    snprintf(part, sizeof(part), "hull/ingest/%s.part", d + 7);
    assert_true(exists(f, part));
    assert_false(image_blob_exists(&f->s, d));
    assert_int_equal(image_blob_writer_open(&f->s, d, 20, &w, &from, &err), 0);
    assert_int_equal(from, 8);
    assert_int_equal(image_blob_writer_write(w, data + 8, 12, &err), 0);
    char *got = NULL;
    assert_int_equal(image_blob_writer_commit(w, &got, &err), 0);
    assert_string_equal(got, d);
    assert_int_equal(count_dir(f, "hull/ingest"), 0);
    free(got);
    /* Once stored, a writer is done at once and commit is a no-op. */
    assert_int_equal(image_blob_writer_open(&f->s, d, 20, &w, &from, &err), 0);
    assert_true(image_blob_writer_done(w));
    assert_int_equal(image_blob_writer_commit(w, &got, &err), 0);
    assert_string_equal(got, d);
    free(got);
    /* abort without keep_partial leaves nothing. */
    char *d2 = digest_of("other");
    assert_int_equal(image_blob_writer_open(&f->s, d2, -1, &w, &from, &err), 0);
    assert_int_equal(image_blob_writer_write(w, "oth", 3, &err), 0);
    image_blob_writer_abort(w, false);
    assert_int_equal(count_dir(f, "hull/ingest"), 0);
    free(d2);
    free(d);
}

/* Two processes write one blob: the second waits for the first and finds
 * the blob done; one blob, no ingest files left. */
static void test_two_writers(void **state)
{
    struct fx *f = *state;
    const char *data = "shared blob contents";
    char *d = digest_of(data);
    struct image_blob_writer *w = NULL;
    hull_error err = NULL;
    assert_int_equal(image_blob_writer_open(&f->s, d, (int64_t)strlen(data), &w, NULL, &err), 0);
    assert_int_equal(image_blob_writer_write(w, data, 6, &err), 0);
    int p[2];
    assert_int_equal(pipe(p), 0);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        /* A separate process: none of the parent's open files (its blob
         * lock is shared with any copy of the descriptor). */
        int keep[] = {p[1]};
        hull_close_fds_except(3, keep, 1);
        struct image_store s2;
        struct image_blob_writer *w2 = NULL;
        hull_error e2 = NULL;
        if (image_store_open(f->root, false, &s2, &e2) < 0)
            _exit(2);
        if (write(p[1], "x", 1) != 1)
            _exit(3);
        if (image_blob_writer_open(&s2, d, (int64_t)strlen(data), &w2, NULL, &e2) < 0)
            _exit(4);
        bool done = image_blob_writer_done(w2);
        image_blob_writer_abort(w2, true);
        _exit(done ? 0 : 5);
    }
    close(p[1]);
    char c;
    assert_int_equal(read(p[0], &c, 1), 1);
    close(p[0]);
    /* The child now blocks on the blob's lock (or finds it done). */
    char lock[200];
    snprintf(lock, sizeof(lock), "hull/ingest/%s.lock", d + 7);
    assert_true(exists(f, lock));
    assert_int_equal(image_blob_writer_write(w, data + 6, strlen(data) - 6, &err), 0);
    assert_int_equal(image_blob_writer_commit(w, NULL, &err), 0);
    int status = 0;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 0);
    assert_true(image_blob_exists(&f->s, d));
    assert_int_equal(count_dir(f, "blobs/sha256"), 1);
    assert_int_equal(count_dir(f, "hull/ingest"), 0);
    free(d);
}

static void resolves(struct fx *f, const char *text, const char *digest)
{
    struct image_entry e;
    hull_error err = NULL;
    if (image_store_resolve(&f->s, text, &e, &err) < 0)
        fail_msg("%s: %s", text, hull_error_msg(err));
    assert_string_equal(e.desc.digest, digest);
    image_entries_free(NULL, 0);
    free(e.name);
    free(e.created);
    image_desc_free(&e.desc);
}

static void resolve_fails(struct fx *f, const char *text, int code, const char *msg)
{
    struct image_entry e;
    hull_error err = NULL;
    assert_int_equal(image_store_resolve(&f->s, text, &e, &err), -1);
    assert_int_equal(hull_error_code(err), code);
    assert_error_msg(err, msg);
}

/* index.json keeps what other tools wrote: unknown fields, entries hull
 * cannot use, annotations. */
static void test_index_foreign(void **state)
{
    struct fx *f = *state;
    char *md = make_image(f, NULL, "x", 1);
    char *idx = fmt("{\"schemaVersion\":2,\"annotations\":{\"tool\":\"umoci\"},\"manifests\":["
                    "{\"mediaType\":\"%s\",\"digest\":\"%s\",\"size\":1,\"annotations\":{"
                    "\"org.opencontainers.image.ref.name\":\"busybox\",\"x.custom\":\"keep\"}},"
                    "{\"what\":\"not a descriptor\"},"
                    "{\"mediaType\":\"%s\",\"digest\":\"%s\",\"size\":1}]}",
                    MT_OCI_MANIFEST, md, MT_OCI_MANIFEST, md);
    write_rel(f, "index.json", idx);
    free(idx);
    struct image_entry *v = NULL;
    size_t n = 0;
    hull_error err = NULL;
    assert_int_equal(image_store_list(&f->s, &v, &n, &err), 0);
    assert_int_equal(n, 2);
    assert_string_equal(v[0].name, "busybox");
    assert_null(v[1].name);
    image_entries_free(v, n);
    /* skopeo's raw name is found as is and in normal form. */
    resolves(f, "busybox", md);
    resolves(f, "docker.io/library/busybox:latest", md);
    struct image_desc d = {.media_type = MT_OCI_MANIFEST, .digest = md, .size = 1};
    assert_int_equal(image_store_tag(&f->s, "localhost/new:1", &d, &err), 0);
    char *t = read_rel(f, "index.json");
    assert_non_null(strstr(t, "\"tool\":\"umoci\""));
    assert_non_null(strstr(t, "\"x.custom\":\"keep\""));
    assert_non_null(strstr(t, "\"what\":\"not a descriptor\""));
    assert_non_null(strstr(t, "localhost/new:1"));
    free(t);
    assert_int_equal(image_store_untag(&f->s, "docker.io/library/busybox:latest", &err), 0);
    t = read_rel(f, "index.json");
    assert_null(strstr(t, "x.custom"));
    assert_non_null(strstr(t, "\"what\":\"not a descriptor\""));
    free(t);
    free(md);
}

static void test_names(void **state)
{
    struct fx *f = *state;
    char *a = make_image(f, "app", "a", 2);
    char *b = make_image(f, "localhost:5000/team/b:v1", "b", 1);
    resolves(f, "app", a);
    resolves(f, "app:latest", a);
    resolves(f, "docker.io/library/app", a);
    resolves(f, a, a);
    resolves(f, a + 7, a);
    char prefix[13];
    snprintf(prefix, sizeof(prefix), "%s", a + 7);
    resolves(f, prefix, a);
    resolves(f, "localhost:5000/team/b:v1", b);
    char *at = fmt("app@%s", a);
    resolves(f, at, a);
    free(at);
    resolve_fails(f, "app:v2", ENOENT, "image app:v2 not found");
    resolve_fails(f, "sha256:" HEX_A, ENOENT, "image sha256:" HEX_A " not found");
    resolve_fails(f, "Bad", EINVAL, "invalid reference 'Bad': repository name must be lowercase");
    /* tag another name, untag one. */
    hull_error err = NULL;
    struct image_desc d = {.media_type = MT_OCI_MANIFEST, .digest = b, .size = 10};
    assert_int_equal(image_store_tag(&f->s, "docker.io/library/app:latest", &d, &err), 0);
    resolves(f, "app", b); /* replaced, not duplicated */
    struct image_entry *v = NULL;
    size_t n = 0;
    assert_int_equal(image_store_list(&f->s, &v, &n, &err), 0);
    assert_int_equal(n, 2);
    image_entries_free(v, n);
    assert_int_equal(image_store_untag(&f->s, "app", &err), 0);
    resolve_fails(f, "app", ENOENT, "image app not found");
    assert_int_equal(image_store_untag(&f->s, "app", &err), -1);
    assert_error_msg(err, "image app not found");
    /* No name may point at a missing blob. */
    d.digest = "sha256:" HEX_A;
    assert_int_equal(image_store_tag(&f->s, "x", &d, &err), -1);
    assert_int_equal(hull_error_code(err), ENOENT);
    hull_error_free(&err);
    /* An ambiguous ID prefix is an error (entries written by hand). */
    char *idx = fmt("{\"schemaVersion\":2,\"manifests\":["
                    "{\"mediaType\":\"%s\",\"digest\":\"sha256:0123456789ab%s\",\"size\":1},"
                    "{\"mediaType\":\"%s\",\"digest\":\"sha256:0123456789ac%s\",\"size\":1}]}",
                    MT_OCI_MANIFEST, SUF_A, MT_OCI_MANIFEST, SUF_B);
    write_rel(f, "index.json", idx);
    free(idx);
    resolves(f, "0123456789ab", "sha256:0123456789ab" SUF_A);
    resolve_fails(f, "0123456789a", ENOENT, "image 0123456789a not found");
    write_rel(f, "index.json",
              "{\"schemaVersion\":2,\"manifests\":[{\"mediaType\":\"" MT_OCI_MANIFEST
              "\",\"digest\":\"sha256:0123456789ab" SUF_A
              "\",\"size\":1},{\"mediaType\":\"" MT_OCI_MANIFEST
              "\",\"digest\":\"sha256:0123456789ab" SUF_B "\",\"size\":1}]}");
    resolve_fails(f, "0123456789ab", EINVAL,
                  "image ID prefix 0123456789ab is ambiguous (sha256:0123456789ab" SUF_A
                  ", sha256:0123456789ab" SUF_B ", ...)");
    free(a);
    free(b);
}

/* ---- sha256 (util/sha256.c) ---- */

/* FIPS 180-2's examples: one shot, in pieces, and a context reused after
 * final (which resets it). */
static void test_sha256(void **state)
{
    (void)state;
    char hex[HULL_SHA256_HEX];
    assert_int_equal(hull_sha256_buf("", 0, hex, NULL), 0);
    assert_string_equal(hex, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
    assert_int_equal(hull_sha256_buf("abc", 3, hex, NULL), 0);
    assert_string_equal(hex, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    cleanup_sha256 struct hull_sha256 *h = hull_sha256_new(NULL);
    assert_non_null(h);
    const char *two = "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq";
    for (size_t i = 0; i < strlen(two); i += 5)
        hull_sha256_update(h, two + i, strlen(two) - i < 5 ? strlen(two) - i : 5);
    assert_int_equal(hull_sha256_length(h), strlen(two));
    assert_int_equal(hull_sha256_final(h, hex, NULL), 0);
    assert_string_equal(hex, "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
    assert_int_equal(hull_sha256_length(h), 0);
    char a[1000];
    memset(a, 'a', sizeof(a));
    for (int i = 0; i < 1000; i++)
        hull_sha256_update(h, a, sizeof(a));
    assert_int_equal(hull_sha256_final(h, hex, NULL), 0);
    assert_string_equal(hex, "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sha256),
        cmocka_unit_test(test_ref_table),
        cmocka_unit_test(test_manifest_parse),
        cmocka_unit_test(test_platform_select),
        cmocka_unit_test(test_config_parse),
        cmocka_unit_test_setup_teardown(test_store_layout, setup, teardown),
        cmocka_unit_test_setup_teardown(test_blobs, setup, teardown),
        cmocka_unit_test_setup_teardown(test_writer_resume, setup, teardown),
        cmocka_unit_test_setup_teardown(test_two_writers, setup, teardown),
        cmocka_unit_test_setup_teardown(test_index_foreign, setup, teardown),
        cmocka_unit_test_setup_teardown(test_names, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
