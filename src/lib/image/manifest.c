/* Documents (image.h "descriptors and documents"): OCI image index, manifest
 * and config, and their Docker schema 2 equivalents (manifest list, manifest,
 * container config). Everything is checked before anyone acts on it: size
 * caps, schemaVersion, digests, sizes, media types. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "image/image.h"
#include "image/store_int.h"
#include "util/error.h"
#include "util/json.h"
#include "util/strv.h"

#define MT_DOCKER_SCHEMA1      "application/vnd.docker.distribution.manifest.v1+json"
#define MT_DOCKER_SCHEMA1_SIGN "application/vnd.docker.distribution.manifest.v1+prettyjws"
/* Layers whose blob a registry may not serve (the tar itself is ordinary):
 * accepted, since once the blob is in the store they unpack like any other. */
#define MT_DOCKER_FOREIGN   "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip"
#define MT_OCI_NONDIST      "application/vnd.oci.image.layer.nondistributable.v1.tar"
#define MT_OCI_NONDIST_GZIP "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip"
#define MT_OCI_NONDIST_ZSTD "application/vnd.oci.image.layer.nondistributable.v1.tar+zstd"

static const char *const layer_types[] = {
    MT_OCI_LAYER,        MT_OCI_LAYER_GZIP,   MT_OCI_LAYER_ZSTD,
    MT_DOCKER_LAYER,     MT_DOCKER_FOREIGN,   MT_OCI_NONDIST,
    MT_OCI_NONDIST_GZIP, MT_OCI_NONDIST_ZSTD, NULL,
};

static bool in_list(const char *s, const char *const *list)
{
    for (; *list; list++)
        if (strcmp(s, *list) == 0)
            return true;
    return false;
}

void image_desc_free(struct image_desc *d)
{
    if (d == NULL)
        return;
    free(d->media_type);
    free(d->digest);
    free(d->platform);
    memset(d, 0, sizeof(*d));
}

void image_manifest_free(struct image_manifest *m)
{
    if (m == NULL)
        return;
    free(m->media_type);
    image_desc_free(&m->config);
    for (size_t i = 0; i < m->n_layers; i++)
        image_desc_free(&m->layers[i]);
    free(m->layers);
    json_object_put(m->annotations);
    memset(m, 0, sizeof(*m));
}

void image_config_free(struct image_config *c)
{
    if (c == NULL)
        return;
    free(c->os);
    free(c->arch);
    free(c->variant);
    hull_strv_free(c->entrypoint);
    hull_strv_free(c->cmd);
    hull_strv_free(c->env);
    free(c->working_dir);
    free(c->user);
    free(c->stop_signal);
    hull_strv_free(c->exposed_ports);
    json_object_put(c->labels);
    hull_strv_free(c->diff_ids);
    memset(c, 0, sizeof(*c));
}

const char *image_host_platform(void)
{
#if defined(__x86_64__)
    return "linux/amd64";
#elif defined(__aarch64__)
    return "linux/arm64";
#elif defined(__arm__)
    return "linux/arm/v7";
#elif defined(__i386__)
    return "linux/386";
#elif defined(__powerpc64__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
    return "linux/ppc64le";
#elif defined(__s390x__)
    return "linux/s390x";
#elif defined(__riscv) && __riscv_xlen == 64
    return "linux/riscv64";
#else
    return "linux/unknown";
#endif
}

/* Parse a document of at most max bytes as a JSON object. */
static int doc_parse(const char *text, size_t len, size_t max, const char *what, json_object **out,
                     hull_error *err)
{
    if (len > max)
        return hull_error_set(err, EFBIG, "%s: %zu bytes, over the limit of %zu", what, len, max);
    return hj_parse(text, len, what, out, err);
}

static int schema_version_2(json_object *doc, const char *what, hull_error *err)
{
    int64_t v = 0;
    bool present = false;
    if (hj_int64(doc, what, "schemaVersion", &v, &present, err) < 0)
        return -1;
    if (!present)
        return hull_error_set(err, EINVAL, "%s: schemaVersion: required", what);
    if (v == 1)
        return hull_error_set(err, ENOTSUP,
                              "%s: Docker schema 1 manifests are not supported (the registry "
                              "or image is too old; push it again with a current client)",
                              what);
    if (v != 2)
        return hull_error_set(err, ENOTSUP, "%s: schemaVersion %lld is not supported (only 2)",
                              what, (long long)v);
    return 0;
}

/* "os/arch[/variant]" of a platform object, malloc'd. */
static int platform_string(json_object *p, const char *path, char **out, hull_error *err)
{
    cleanup_free char *os = NULL, *arch = NULL, *variant = NULL;
    if (hj_require_object(p, path, err) < 0 || hj_string(p, path, "os", true, &os, err) < 0 ||
        hj_string(p, path, "architecture", true, &arch, err) < 0 ||
        hj_string(p, path, "variant", false, &variant, err) < 0)
        return -1;
    if (asprintf(out, "%s/%s%s%s", os, arch, variant ? "/" : "", variant ? variant : "") < 0)
        return hull_error_set(err, ENOMEM, "out of memory");
    return 0;
}

#define cleanup_desc __attribute__((cleanup(image_desc_free)))

int image_desc_from_json(json_object *o, const char *path, bool with_platform,
                         struct image_desc *out, hull_error *err)
{
    cleanup_desc struct image_desc d = {0};
    int64_t size = -1;
    bool present = false;
    if (hj_require_object(o, path, err) < 0 ||
        hj_string(o, path, "mediaType", true, &d.media_type, err) < 0 ||
        hj_string(o, path, "digest", true, &d.digest, err) < 0 ||
        hj_int64(o, path, "size", &size, &present, err) < 0)
        return -1;
    if (!image_digest_valid(d.digest))
        return hull_error_set(err, EINVAL, "%s.digest: '%s' is not sha256:<64 lower-case hex>",
                              path, d.digest);
    if (!present || size < 0)
        return hull_error_set(err, EINVAL, "%s.size: %s", path,
                              present ? "must not be negative" : "required");
    d.size = size;
    json_object *p = hj_get(o, "platform");
    if (with_platform && p) {
        char pp[512];
        snprintf(pp, sizeof(pp), "%s.platform", path);
        if (platform_string(p, pp, &d.platform, err) < 0)
            return -1;
    }
    *out = d;
    memset(&d, 0, sizeof(d)); /* handed to the caller */
    return 0;
}

static bool is_index_type(const char *mt)
{
    return strcmp(mt, MT_OCI_INDEX) == 0 || strcmp(mt, MT_DOCKER_LIST) == 0;
}

static bool is_manifest_type(const char *mt)
{
    return strcmp(mt, MT_OCI_MANIFEST) == 0 || strcmp(mt, MT_DOCKER_MANIFEST) == 0;
}

/* The static string for a known document media type, NULL otherwise. */
static const char *known_doc_type(const char *mt)
{
    static const char *const types[] = {MT_OCI_INDEX, MT_DOCKER_LIST, MT_OCI_MANIFEST,
                                        MT_DOCKER_MANIFEST};
    for (size_t i = 0; i < sizeof(types) / sizeof(types[0]); i++)
        if (strcmp(mt, types[i]) == 0)
            return types[i];
    return NULL;
}

static const char *doc_kind_of(json_object *doc, const char *transport_type, hull_error *err)
{
    cleanup_free char *mt = NULL;
    if (hj_string(doc, "document", "mediaType", false, &mt, err) < 0)
        return NULL;
    const char *t = mt ? mt : transport_type;
    if (t && (strcmp(t, MT_DOCKER_SCHEMA1) == 0 || strcmp(t, MT_DOCKER_SCHEMA1_SIGN) == 0)) {
        hull_error_set(err, ENOTSUP,
                       "%s: Docker schema 1 manifests are not supported (the registry or image "
                       "is too old; push it again with a current client)",
                       t);
        return NULL;
    }
    if (schema_version_2(doc, "document", err) < 0)
        return NULL;
    if (t == NULL) {
        /* OCI documents may omit mediaType: tell them by their fields. */
        if (hj_get(doc, "manifests"))
            return MT_OCI_INDEX;
        if (hj_get(doc, "config") && hj_get(doc, "layers"))
            return MT_OCI_MANIFEST;
        hull_error_set(err, EINVAL, "document: neither an image index nor a manifest");
        return NULL;
    }
    const char *k = known_doc_type(t);
    if (k == NULL)
        hull_error_set(err, ENOTSUP, "document: unsupported media type '%s'", t);
    return k;
}

const char *image_doc_kind(const char *text, size_t len, const char *transport_type,
                           hull_error *err)
{
    cleanup_json json_object *doc = NULL;
    if (doc_parse(text, len, HULL_IMAGE_MANIFEST_MAX, "document", &doc, err) < 0)
        return NULL;
    return doc_kind_of(doc, transport_type, err);
}

static int layers_parse(json_object *doc, struct image_manifest *m, hull_error *err)
{
    json_object *layers = hj_get(doc, "layers");
    if (layers == NULL)
        return hull_error_set(err, EINVAL, "manifest: layers: required");
    if (hj_require_array(layers, "manifest.layers", err) < 0)
        return -1;
    size_t n = json_object_array_length(layers);
    m->layers = calloc(n ? n : 1, sizeof(*m->layers));
    if (m->layers == NULL)
        return hull_error_set(err, ENOMEM, "out of memory");
    for (size_t i = 0; i < n; i++) {
        char p[64];
        snprintf(p, sizeof(p), "manifest.layers[%zu]", i);
        if (image_desc_from_json(json_object_array_get_idx(layers, i), p, false, &m->layers[i],
                                 err) < 0)
            return -1;
        m->n_layers = i + 1;
        if (!in_list(m->layers[i].media_type, layer_types))
            return hull_error_set(err, ENOTSUP, "%s: unsupported layer media type '%s'", p,
                                  m->layers[i].media_type);
    }
    return 0;
}

int image_manifest_parse(const char *text, size_t len, struct image_manifest *out, hull_error *err)
{
    memset(out, 0, sizeof(*out));
    cleanup_json json_object *doc = NULL;
    if (doc_parse(text, len, HULL_IMAGE_MANIFEST_MAX, "manifest", &doc, err) < 0)
        return -1;
    const char *kind = doc_kind_of(doc, NULL, err);
    if (kind == NULL)
        return hull_error_prefix(err, "manifest");
    if (!is_manifest_type(kind))
        return hull_error_set(err, EINVAL, "manifest: is an image index (%s), not a manifest",
                              kind);
    struct image_manifest m = {0};
    m.media_type = strdup(kind);
    if (m.media_type == NULL)
        return hull_error_set(err, ENOMEM, "out of memory");
    if (image_desc_from_json(hj_get(doc, "config"), "manifest.config", false, &m.config, err) < 0 ||
        layers_parse(doc, &m, err) < 0) {
        image_manifest_free(&m);
        return -1;
    }
    if (strcmp(m.config.media_type, MT_OCI_CONFIG) != 0 &&
        strcmp(m.config.media_type, MT_DOCKER_CONFIG) != 0) {
        hull_error_set(err, ENOTSUP,
                       "manifest: config media type '%s' is not a container image config "
                       "(an artifact?)",
                       m.config.media_type);
        image_manifest_free(&m);
        return -1;
    }
    json_object *ann = hj_get(doc, "annotations");
    if (ann && json_object_is_type(ann, json_type_object))
        m.annotations = json_object_get(ann);
    *out = m;
    return 0;
}

/* "x86_64" and "aarch64" as the OCI names. */
static const char *arch_alias(const char *a)
{
    if (strcmp(a, "x86_64") == 0 || strcmp(a, "x86-64") == 0)
        return "amd64";
    if (strcmp(a, "aarch64") == 0)
        return "arm64";
    return a;
}

struct platform {
    char os[64], arch[64], variant[64];
};

static int platform_split(const char *s, struct platform *p)
{
    memset(p, 0, sizeof(*p));
    const char *a = strchr(s, '/');
    if (a == NULL || a == s || a[1] == '\0')
        return -1;
    const char *v = strchr(a + 1, '/');
    size_t oslen = (size_t)(a - s);
    size_t archlen = v ? (size_t)(v - a - 1) : strlen(a + 1);
    if (oslen >= sizeof(p->os) || archlen == 0 || archlen >= sizeof(p->arch) ||
        (v && (v[1] == '\0' || strlen(v + 1) >= sizeof(p->variant) || strchr(v + 1, '/'))))
        return -1;
    memcpy(p->os, s, oslen);
    char arch[64];
    memcpy(arch, a + 1, archlen);
    arch[archlen] = '\0';
    snprintf(p->arch, sizeof(p->arch), "%s", arch_alias(arch));
    if (v)
        snprintf(p->variant, sizeof(p->variant), "%s", v + 1);
    return 0;
}

/* Does an entry's platform satisfy the wanted one? A variant asked for must
 * match (arm64 entries without one are v8); none asked for matches any,
 * which is how amd64's v2/v3 variants stay invisible unless asked. */
static bool platform_match(const struct platform *want, const struct platform *have)
{
    if (strcmp(want->os, have->os) != 0 || strcmp(want->arch, have->arch) != 0)
        return false;
    if (want->variant[0] == '\0')
        return true;
    const char *hv = have->variant;
    if (hv[0] == '\0' && strcmp(have->arch, "arm64") == 0)
        hv = "v8";
    return strcmp(want->variant, hv) == 0;
}

static int index_entries(json_object *doc, json_object **arr, hull_error *err)
{
    const char *kind = doc_kind_of(doc, NULL, err);
    if (kind == NULL)
        return hull_error_prefix(err, "index");
    if (!is_index_type(kind))
        return hull_error_set(err, EINVAL, "index: is a manifest (%s), not an index", kind);
    *arr = hj_get(doc, "manifests");
    if (*arr == NULL)
        return hull_error_set(err, EINVAL, "index: manifests: required");
    return hj_require_array(*arr, "index.manifests", err);
}

/* Append "os/arch[/variant]" to the list of available platforms (for the
 * ENOENT message). */
static void list_add(char *buf, size_t cap, const char *p)
{
    size_t used = strlen(buf);
    if (strstr(buf, p) != NULL && used)
        return;
    snprintf(buf + used, cap - used, "%s%s", used ? ", " : "", p);
}

int image_index_select(const char *text, size_t len, const char *platform, struct image_desc *out,
                       hull_error *err)
{
    memset(out, 0, sizeof(*out));
    const char *want_s = platform ? platform : image_host_platform();
    struct platform want;
    if (platform_split(want_s, &want) < 0)
        return hull_error_set(err, EINVAL, "invalid platform '%s' (want os/arch[/variant])",
                              want_s);
    cleanup_json json_object *doc = NULL;
    json_object *arr = NULL;
    if (doc_parse(text, len, HULL_IMAGE_MANIFEST_MAX, "index", &doc, err) < 0 ||
        index_entries(doc, &arr, err) < 0)
        return -1;
    char avail[1024] = "";
    size_t n = json_object_array_length(arr), nested = 0;
    for (size_t i = 0; i < n; i++) {
        char p[64];
        snprintf(p, sizeof(p), "index.manifests[%zu]", i);
        struct image_desc d = {0};
        if (image_desc_from_json(json_object_array_get_idx(arr, i), p, true, &d, err) < 0)
            return -1;
        struct platform have;
        nested += is_index_type(d.media_type);
        /* Attestations and other artifacts have no usable platform. */
        if (!is_manifest_type(d.media_type) || d.platform == NULL ||
            platform_split(d.platform, &have) < 0 || strcmp(have.os, "unknown") == 0) {
            image_desc_free(&d);
            continue;
        }
        if (platform_match(&want, &have)) {
            *out = d;
            return 0;
        }
        list_add(avail, sizeof(avail), d.platform);
        image_desc_free(&d);
    }
    if (nested)
        return hull_error_set(err, ENOTSUP,
                              "no image for platform %s (available: %s; %zu entr%s an index "
                              "itself, which hull does not follow: one level of index only)",
                              want_s, avail[0] ? avail : "none", nested,
                              nested == 1 ? "y is" : "ies are");
    return hull_error_set(err, ENOENT, "no image for platform %s (available: %s)", want_s,
                          avail[0] ? avail : "none");
}

static int config_ports(json_object *cfg, struct image_config *c, hull_error *err)
{
    json_object *ports = hj_get(cfg, "ExposedPorts");
    if (ports == NULL)
        return 0;
    if (hj_require_object(ports, "config.config.ExposedPorts", err) < 0)
        return -1;
    json_object_object_foreach(ports, k, v)
    {
        (void)v;
        if (hull_strv_append(&c->exposed_ports, k) < 0)
            return hull_error_set(err, ENOMEM, "out of memory");
    }
    return 0;
}

static int config_process(json_object *cfg, struct image_config *c, hull_error *err)
{
    const char *p = "config.config";
    if (hj_require_object(cfg, p, err) < 0 ||
        hj_string_array(cfg, p, "Entrypoint", &c->entrypoint, NULL, err) < 0 ||
        hj_string_array(cfg, p, "Cmd", &c->cmd, NULL, err) < 0 ||
        hj_string_array(cfg, p, "Env", &c->env, NULL, err) < 0 ||
        hj_string(cfg, p, "WorkingDir", false, &c->working_dir, err) < 0 ||
        hj_string(cfg, p, "User", false, &c->user, err) < 0 ||
        hj_string(cfg, p, "StopSignal", false, &c->stop_signal, err) < 0 ||
        config_ports(cfg, c, err) < 0)
        return -1;
    json_object *labels = hj_get(cfg, "Labels");
    if (labels) {
        if (hj_require_object(labels, "config.config.Labels", err) < 0)
            return -1;
        json_object_object_foreach(labels, k, v)
        {
            if (!json_object_is_type(v, json_type_string))
                return hull_error_set(err, EINVAL, "config.config.Labels.%s: must be a string", k);
        }
        c->labels = json_object_get(labels);
    }
    return 0;
}

static int config_rootfs(json_object *doc, struct image_config *c, hull_error *err)
{
    json_object *rootfs = hj_get(doc, "rootfs");
    cleanup_free char *type = NULL;
    if (rootfs == NULL)
        return hull_error_set(err, EINVAL, "config.rootfs: required");
    if (hj_require_object(rootfs, "config.rootfs", err) < 0 ||
        hj_string(rootfs, "config.rootfs", "type", true, &type, err) < 0)
        return -1;
    if (strcmp(type, "layers") != 0)
        return hull_error_set(err, EINVAL, "config.rootfs.type: '%s', not \"layers\"", type);
    if (hj_get(rootfs, "diff_ids") == NULL)
        return hull_error_set(err, EINVAL, "config.rootfs.diff_ids: required");
    if (hj_string_array(rootfs, "config.rootfs", "diff_ids", &c->diff_ids, &c->n_diff_ids, err) < 0)
        return -1;
    for (size_t i = 0; i < c->n_diff_ids; i++)
        if (!image_digest_valid(c->diff_ids[i]))
            return hull_error_set(err, EINVAL,
                                  "config.rootfs.diff_ids[%zu]: '%s' is not sha256:<64 hex>", i,
                                  c->diff_ids[i]);
    return 0;
}

int image_config_parse(const char *text, size_t len, struct image_config *out, hull_error *err)
{
    memset(out, 0, sizeof(*out));
    cleanup_json json_object *doc = NULL;
    if (doc_parse(text, len, HULL_IMAGE_CONFIG_MAX, "config", &doc, err) < 0)
        return -1;
    struct image_config c = {0};
    json_object *cfg = hj_get(doc, "config");
    if (hj_string(doc, "config", "os", true, &c.os, err) < 0 ||
        hj_string(doc, "config", "architecture", true, &c.arch, err) < 0 ||
        hj_string(doc, "config", "variant", false, &c.variant, err) < 0 ||
        (cfg && config_process(cfg, &c, err) < 0) || config_rootfs(doc, &c, err) < 0) {
        image_config_free(&c);
        return -1;
    }
    *out = c;
    return 0;
}

int image_desc_copy(const struct image_desc *in, struct image_desc *out, hull_error *err)
{
    memset(out, 0, sizeof(*out));
    out->size = in->size;
    out->media_type = in->media_type ? strdup(in->media_type) : NULL;
    out->digest = in->digest ? strdup(in->digest) : NULL;
    out->platform = in->platform ? strdup(in->platform) : NULL;
    if ((in->media_type && !out->media_type) || (in->digest && !out->digest) ||
        (in->platform && !out->platform)) {
        image_desc_free(out);
        return hull_error_set(err, ENOMEM, "out of memory");
    }
    return 0;
}
