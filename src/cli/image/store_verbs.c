/* hull image list | inspect | tag | remove | prune | prepare: the store's
 * own verbs (no network, no archives). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "image_cli.h"
#include "util/json.h"

/* What list and inspect show of one name. */
struct shown {
    struct image img;
    char *created;           /* the config's "created", else the index annotation */
    int64_t size;            /* config + layers, as stored (compressed) */
    json_object *config_doc; /* the whole config document */
};

static void shown_free(struct shown *s)
{
    image_free(&s->img);
    free(s->created);
    json_object_put(s->config_doc);
}
#define cleanup_shown __attribute__((cleanup(shown_free)))

static int shown_load(struct img_cli *c, struct image_store *s, const char *text, struct shown *out,
                      hull_error *err)
{
    if (image_load(s, text, c->platform, &out->img, err) < 0)
        return -1;
    cleanup_free char *raw = NULL;
    size_t len = 0;
    if (image_blob_read(s, out->img.manifest.config.digest, HULL_IMAGE_CONFIG_MAX, &raw, &len,
                        err) < 0)
        return -1;
    if (hj_parse(raw, len, "image config", &out->config_doc, err) < 0)
        return -1;
    json_object *cr = hj_get(out->config_doc, "created");
    if (cr != NULL && json_object_is_type(cr, json_type_string))
        out->created = strdup(json_object_get_string(cr));
    else if (out->img.entry.created != NULL)
        out->created = strdup(out->img.entry.created);
    out->size = out->img.manifest.config.size;
    for (size_t i = 0; i < out->img.manifest.n_layers; i++)
        out->size += out->img.manifest.layers[i].size;
    return 0;
}

/* "docker.io/library/busybox:latest" -> repository and tag ("<none>" for a
 * digest-only name). */
static void split_name(const char *name, char *repo, size_t rlen, char *tag, size_t tlen)
{
    const char *at = strchr(name, '@');
    size_t end = at ? (size_t)(at - name) : strlen(name);
    const char *slash = memrchr(name, '/', end);
    const char *colon = memrchr(slash ? slash : name, ':', end - (slash ? slash - name : 0));
    if (colon != NULL) {
        snprintf(repo, rlen, "%.*s", (int)(colon - name), name);
        snprintf(tag, tlen, "%.*s", (int)(end - (colon - name) - 1), colon + 1);
    } else {
        snprintf(repo, rlen, "%.*s", (int)end, name);
        snprintf(tag, tlen, "<none>");
    }
}

static void human_size(int64_t n, char *buf, size_t len)
{
    const char *units[] = {"B", "kB", "MB", "GB", "TB"};
    double v = (double)n;
    size_t u = 0;
    while (v >= 1000 && u < 4) {
        v /= 1000;
        u++;
    }
    if (u == 0)
        snprintf(buf, len, "%lld B", (long long)n);
    else
        snprintf(buf, len, "%.3g %s", v, units[u]);
}

/* "3 hours ago" from an RFC 3339 time; the text itself when unparsable. */
static void human_age(const char *created, char *buf, size_t len)
{
    struct tm tm = {0};
    const char *rest = created ? strptime(created, "%Y-%m-%dT%H:%M:%S", &tm) : NULL;
    if (rest == NULL) {
        snprintf(buf, len, "%s", created ? created : "unknown");
        return;
    }
    time_t then = timegm(&tm);
    long long d = (long long)(time(NULL) - then);
    static const struct {
        long long secs;
        const char *unit;
    } steps[] = {{365LL * 86400, "year"}, {30LL * 86400, "month"}, {7LL * 86400, "week"},
                 {86400, "day"},          {3600, "hour"},          {60, "minute"}};
    for (size_t i = 0; i < sizeof(steps) / sizeof(steps[0]); i++) {
        if (d >= steps[i].secs) {
            long long k = d / steps[i].secs;
            snprintf(buf, len, "%lld %s%s ago", k, steps[i].unit, k == 1 ? "" : "s");
            return;
        }
    }
    snprintf(buf, len, "%s", d < 0 ? "in the future" : "seconds ago");
}

/* The short id people type: the first 12 hex digits of the digest. */
static const char *short_id(const char *digest)
{
    static char buf[16];
    const char *hex = strchr(digest, ':');
    snprintf(buf, sizeof(buf), "%.12s", hex ? hex + 1 : digest);
    return buf;
}

static void help_list(void)
{
    printf("usage: hull image list [--format table|json] [-q]\n"
           "\n"
           "List the store's images: one line per name, with the id (the first 12\n"
           "hex digits of its manifest digest, accepted wherever an image is named),\n"
           "when it was created and the size of its blobs.\n"
           "\n"
           "  --format table|json  a table (default) or a JSON array\n"
           "  -q, --quiet          only the ids, one per image\n");
}

int img_list(struct img_cli *c, int argc, char **argv)
{
    static const struct option opts[] = {{0}};
    int opt;
    while ((opt = img_getopt(c, argc, argv, "", opts)) != -1) {
        if (opt == 'h') {
            help_list();
            return 0;
        }
        return 1;
    }
    if (img_need_args(c, argc, argv, 0, "") != 0)
        return 1;
    bool json = c->format != NULL && strcmp(c->format, "json") == 0;
    if (c->format != NULL && !json && strcmp(c->format, "table") != 0)
        return img_usage(c, "--format: '%s' is not table or json", c->format);
    hull_error err = NULL;
    cleanup_image_store struct image_store s = {.rootfd = -1, .lockfd = -1};
    if (img_open_store(c, false, &s, &err) < 0) {
        /* No store yet is an empty list, not an error. */
        if (hull_error_code(err) == ENOENT) {
            hull_error_free(&err);
            if (json)
                puts("[]");
            else if (!c->quiet)
                printf("%-40s %-16s %-12s %-16s %s\n", "REPOSITORY", "TAG", "IMAGE ID", "CREATED",
                       "SIZE");
            return 0;
        }
        return img_fail(c, &err, NULL);
    }
    struct image_entry *e = NULL;
    size_t n = 0;
    if (image_store_list(&s, &e, &n, &err) < 0)
        return img_fail(c, &err, NULL);
    cleanup_json json_object *arr = json_object_new_array();
    if (!json && !c->quiet)
        printf("%-40s %-16s %-12s %-16s %s\n", "REPOSITORY", "TAG", "IMAGE ID", "CREATED", "SIZE");
    int rc = 0;
    for (size_t i = 0; i < n; i++) {
        cleanup_shown struct shown sh = {0};
        if (shown_load(c, &s, e[i].desc.digest, &sh, &err) < 0) {
            /* One broken image must not hide the others. */
            fprintf(stderr, "hull: image list %s: %s\n", e[i].name, hull_error_msg(err));
            hull_error_free(&err);
            rc = 1;
            continue;
        }
        if (c->quiet && !json) {
            bool seen = false; /* one line per image, however many names */
            for (size_t j = 0; j < i && !seen; j++)
                seen = strcmp(e[j].desc.digest, e[i].desc.digest) == 0;
            if (!seen)
                printf("%s\n", short_id(e[i].desc.digest));
            continue;
        }
        char repo[512], tag[160], size[32], age[64];
        split_name(e[i].name, repo, sizeof(repo), tag, sizeof(tag));
        if (json) {
            json_object *o = json_object_new_object();
            json_object_object_add(o, "name", json_object_new_string(e[i].name));
            json_object_object_add(o, "repository", json_object_new_string(repo));
            json_object_object_add(o, "tag", json_object_new_string(tag));
            json_object_object_add(o, "id", json_object_new_string(short_id(e[i].desc.digest)));
            json_object_object_add(o, "digest", json_object_new_string(e[i].desc.digest));
            json_object_object_add(o, "created",
                                   sh.created ? json_object_new_string(sh.created) : NULL);
            json_object_object_add(o, "size", json_object_new_int64(sh.size));
            json_object_array_add(arr, o);
            continue;
        }
        human_size(sh.size, size, sizeof(size));
        human_age(sh.created, age, sizeof(age));
        printf("%-40s %-16s %-12s %-16s %s\n", repo, tag, short_id(e[i].desc.digest), age, size);
    }
    image_entries_free(e, n);
    if (json)
        puts(json_object_to_json_string_ext(arr, JSON_C_TO_STRING_PRETTY | JSON_C_TO_STRING_SPACED |
                                                     JSON_C_TO_STRING_NOSLASHESCAPE));
    return rc;
}

static json_object *inspect_one(struct img_cli *c, struct image_store *s, const char *text,
                                hull_error *err)
{
    cleanup_shown struct shown sh = {0};
    if (shown_load(c, s, text, &sh, err) < 0)
        return NULL;
    struct image_entry *e = NULL;
    size_t n = 0;
    if (image_store_list(s, &e, &n, err) < 0)
        return NULL;
    json_object *o = json_object_new_object();
    json_object *names = json_object_new_array();
    for (size_t i = 0; i < n; i++)
        if (strcmp(e[i].desc.digest, sh.img.entry.desc.digest) == 0)
            json_object_array_add(names, json_object_new_string(e[i].name));
    image_entries_free(e, n);
    const struct image_manifest *m = &sh.img.manifest;
    const struct image_config *cf = &sh.img.config;
    json_object_object_add(o, "name",
                           sh.img.entry.name ? json_object_new_string(sh.img.entry.name) : NULL);
    json_object_object_add(o, "names", names);
    json_object_object_add(o, "id", json_object_new_string(short_id(sh.img.entry.desc.digest)));
    json_object_object_add(o, "digest", json_object_new_string(sh.img.manifest_digest));
    if (strcmp(sh.img.entry.desc.digest, sh.img.manifest_digest) != 0)
        json_object_object_add(o, "index_digest", json_object_new_string(sh.img.entry.desc.digest));
    json_object_object_add(o, "media_type", json_object_new_string(m->media_type));
    json_object_object_add(o, "config_digest", json_object_new_string(m->config.digest));
    json_object_object_add(o, "os", cf->os ? json_object_new_string(cf->os) : NULL);
    json_object_object_add(o, "architecture", cf->arch ? json_object_new_string(cf->arch) : NULL);
    if (cf->variant != NULL)
        json_object_object_add(o, "variant", json_object_new_string(cf->variant));
    json_object_object_add(o, "created", sh.created ? json_object_new_string(sh.created) : NULL);
    json_object_object_add(o, "size", json_object_new_int64(sh.size));
    json_object *conf = hj_get(sh.config_doc, "config");
    json_object_object_add(o, "config", conf ? json_object_get(conf) : json_object_new_object());
    json_object *layers = json_object_new_array();
    for (size_t i = 0; i < m->n_layers; i++) {
        json_object *l = json_object_new_object();
        json_object_object_add(l, "digest", json_object_new_string(m->layers[i].digest));
        json_object_object_add(l, "size", json_object_new_int64(m->layers[i].size));
        json_object_object_add(l, "media_type", json_object_new_string(m->layers[i].media_type));
        if (i < cf->n_diff_ids)
            json_object_object_add(l, "diff_id", json_object_new_string(cf->diff_ids[i]));
        json_object_array_add(layers, l);
    }
    json_object_object_add(o, "layers", layers);
    if (m->annotations != NULL)
        json_object_object_add(o, "annotations", json_object_get(m->annotations));
    return o;
}

static void help_inspect(void)
{
    printf("usage: hull image inspect [--platform OS/ARCH] IMAGE...\n"
           "\n"
           "Print a JSON array with one object per IMAGE (a name, a digest or an id):\n"
           "its names, manifest digest, os/architecture, creation time, size, the\n"
           "image config's \"config\" (Entrypoint, Cmd, Env, ...) and its layers with\n"
           "their sizes and diff ids.\n");
}

int img_inspect(struct img_cli *c, int argc, char **argv)
{
    static const struct option opts[] = {{0}};
    int opt;
    while ((opt = img_getopt(c, argc, argv, "", opts)) != -1) {
        if (opt == 'h') {
            help_inspect();
            return 0;
        }
        return 1;
    }
    if (img_need_args(c, argc, argv, -1, "IMAGE") != 0)
        return 1;
    if (c->format != NULL && strcmp(c->format, "json") != 0)
        return img_usage(c, "--format: '%s' is not json (the only format of inspect)", c->format);
    hull_error err = NULL;
    cleanup_image_store struct image_store s = {.rootfd = -1, .lockfd = -1};
    if (img_open_store(c, false, &s, &err) < 0)
        return img_fail(c, &err, "%s", argv[optind]);
    cleanup_json json_object *arr = json_object_new_array();
    int rc = 0;
    for (int i = optind; i < argc; i++) {
        json_object *o = inspect_one(c, &s, argv[i], &err);
        if (o == NULL) {
            rc = img_fail(c, &err, "%s", argv[i]);
            continue;
        }
        json_object_array_add(arr, o);
    }
    puts(json_object_to_json_string_ext(arr, JSON_C_TO_STRING_PRETTY | JSON_C_TO_STRING_SPACED |
                                                 JSON_C_TO_STRING_NOSLASHESCAPE));
    return rc;
}

static void help_tag(void)
{
    printf("usage: hull image tag IMAGE NAME\n"
           "\n"
           "Give IMAGE (a name, digest or id) the name NAME as well, replacing\n"
           "whatever NAME named before. No blob is copied.\n");
}

int img_tag(struct img_cli *c, int argc, char **argv)
{
    static const struct option opts[] = {{0}};
    int opt;
    while ((opt = img_getopt(c, argc, argv, "", opts)) != -1) {
        if (opt == 'h') {
            help_tag();
            return 0;
        }
        return 1;
    }
    if (img_need_args(c, argc, argv, 2, "IMAGE and NAME") != 0)
        return 1;
    const char *src = argv[optind], *dst = argv[optind + 1];
    hull_error err = NULL;
    cleanup_image_ref struct image_ref ref = {0};
    if (image_ref_parse(dst, &ref, &err) < 0)
        return img_fail(c, &err, "%s", dst);
    if (ref.digest != NULL) {
        hull_error_set(&err, EINVAL, "a name to tag with cannot hold a digest");
        return img_fail(c, &err, "%s", dst);
    }
    cleanup_free char *name = image_ref_name(&ref);
    cleanup_image_store struct image_store s = {.rootfd = -1, .lockfd = -1};
    if (img_open_store(c, false, &s, &err) < 0)
        return img_fail(c, &err, "%s", src);
    struct image_entry e = {0};
    if (image_store_resolve(&s, src, &e, &err) < 0)
        return img_fail(c, &err, "%s", src);
    int r = image_store_tag(&s, name, &e.desc, &err);
    image_desc_free(&e.desc);
    free(e.name);
    free(e.created);
    if (r < 0)
        return img_fail(c, &err, "%s %s", src, dst);
    return 0;
}

static void help_remove(void)
{
    printf("usage: hull image remove [--force] IMAGE...\n"
           "\n"
           "Remove each IMAGE: a name drops that name; a digest or an id drops every\n"
           "name of that image (refused when there are several, unless --force).\n"
           "An image a running sandbox or container uses is refused (EBUSY) unless\n"
           "--force. Blobs and layers no name keeps go at the next 'prune'.\n"
           "\n"
           "  -f, --force   remove even when in use or named several times\n");
}

int img_remove(struct img_cli *c, int argc, char **argv)
{
    static const struct option opts[] = {{"force", no_argument, NULL, 'f'}, {0}};
    bool force = false;
    int opt;
    while ((opt = img_getopt(c, argc, argv, "f", opts)) != -1) {
        if (opt == 'h') {
            help_remove();
            return 0;
        }
        if (opt == 'f') {
            force = true;
            continue;
        }
        return 1;
    }
    if (img_need_args(c, argc, argv, -1, "IMAGE") != 0)
        return 1;
    hull_error err = NULL;
    cleanup_image_store struct image_store s = {.rootfd = -1, .lockfd = -1};
    if (img_open_store(c, false, &s, &err) < 0)
        return img_fail(c, &err, "%s", argv[optind]);
    int rc = 0;
    for (int i = optind; i < argc; i++) {
        if (image_store_remove(&s, argv[i], force, &err) < 0) {
            rc = img_fail(c, &err, "%s", argv[i]);
            continue;
        }
        if (!c->quiet)
            printf("%s\n", argv[i]);
    }
    return rc;
}

static void help_prune(void)
{
    printf("usage: hull image prune\n"
           "\n"
           "Delete every blob, unpacked layer and microVM disk that no named image\n"
           "uses, and print what was freed.\n");
}

int img_prune(struct img_cli *c, int argc, char **argv)
{
    static const struct option opts[] = {{0}};
    int opt;
    while ((opt = img_getopt(c, argc, argv, "", opts)) != -1) {
        if (opt == 'h') {
            help_prune();
            return 0;
        }
        return 1;
    }
    if (img_need_args(c, argc, argv, 0, "") != 0)
        return 1;
    hull_error err = NULL;
    cleanup_image_store struct image_store s = {.rootfd = -1, .lockfd = -1};
    if (img_open_store(c, false, &s, &err) < 0)
        return img_fail(c, &err, NULL);
    struct image_prune_report r = {0};
    if (image_store_prune(&s, &r, &err) < 0)
        return img_fail(c, &err, NULL);
    char size[32];
    human_size((int64_t)r.bytes, size, sizeof(size));
    if (!c->quiet)
        printf("deleted %zu blobs and %zu layers, %s freed\n", (size_t)r.blobs, (size_t)r.layers,
               size);
    return 0;
}

static void help_prepare(void)
{
    printf("usage: hull image prepare [--platform OS/ARCH] IMAGE\n"
           "\n"
           "Unpack every layer of IMAGE that is not unpacked yet, without the network:\n"
           "for images copied into the store by other tools (skopeo copy oci:DIR:NAME)\n"
           "before a sandbox or microVM runs them.\n");
}

int img_prepare(struct img_cli *c, int argc, char **argv)
{
    static const struct option opts[] = {{0}};
    int opt;
    while ((opt = img_getopt(c, argc, argv, "", opts)) != -1) {
        if (opt == 'h') {
            help_prepare();
            return 0;
        }
        return 1;
    }
    if (img_need_args(c, argc, argv, 1, "IMAGE") != 0)
        return 1;
    const char *text = argv[optind];
    hull_error err = NULL;
    cleanup_image_store struct image_store s = {.rootfd = -1, .lockfd = -1};
    if (img_open_store(c, false, &s, &err) < 0)
        return img_fail(c, &err, "%s", text);
    cleanup_image struct image img = {0};
    if (image_load(&s, text, c->platform, &img, &err) < 0 || image_unpack_all(&s, &img, &err) < 0)
        return img_fail(c, &err, "%s", text);
    if (!c->quiet)
        printf("%s\n", img.manifest_digest);
    return 0;
}
