/* image_push: a stored image to a registry.
 *
 * For the config and every layer: HEAD on the destination (there already:
 * skip); else a cross-repository mount from a repository of the same
 * registry the blob is known to be in (hull/sources/<hex>, written by pulls
 * and pushes); else an upload session, and one PUT streaming the blob file
 * with its digest. Then the manifest, under the tag, with its media type.
 * Bearer scopes: pull,push on the destination, pull on a mount source.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "image/registry.h"
#include "util/error.h"
#include "util/fs.h"

/* ---- where blobs came from ---- */

static int sources_dir(struct image_store *s, hull_error *err)
{
    if (mkdirat(s->rootfd, "hull", 0700) < 0 && errno != EEXIST)
        return hull_error_errno(err, "mkdir %s/hull", s->root);
    if (mkdirat(s->rootfd, "hull/sources", 0700) < 0 && errno != EEXIST)
        return hull_error_errno(err, "mkdir %s/hull/sources", s->root);
    return 0;
}

static int sources_read(struct image_store *s, const char *digest, char **out)
{
    *out = NULL;
    if (!image_digest_valid(digest))
        return -1;
    char name[128];
    snprintf(name, sizeof(name), "hull/sources/%s", digest + 7);
    size_t len = 0;
    cleanup_hull_error hull_error e = NULL;
    return hull_read_file_at(s->rootfd, name, out, &len, &e);
}

int reg_source_add(struct image_store *s, const char *digest, const char *registry,
                   const char *repository, hull_error *err)
{
    if (!image_digest_valid(digest))
        return hull_error_set(err, EINVAL, "invalid digest %s", digest);
    char line[1024];
    snprintf(line, sizeof(line), "%s/%s\n", registry, repository);
    cleanup_free char *have = NULL;
    if (sources_read(s, digest, &have) == 0) {
        for (char *p = have; p && *p;) {
            size_t k = strcspn(p, "\n");
            if (k + 1 == strlen(line) && strncmp(p, line, k) == 0)
                return 0;
            p += k + (p[k] == '\n');
        }
    }
    if (sources_dir(s, err) < 0)
        return -1;
    char name[128];
    snprintf(name, sizeof(name), "hull/sources/%s", digest + 7);
    /* One short O_APPEND write: concurrent pulls add whole lines. */
    cleanup_close int fd =
        openat(s->rootfd, name, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC | O_NOFOLLOW, 0600);
    if (fd < 0)
        return hull_error_errno(err, "open %s/%s", s->root, name);
    size_t n = strlen(line);
    if (write(fd, line, n) != (ssize_t)n)
        return hull_error_errno(err, "write %s/%s", s->root, name);
    return 0;
}

char **reg_sources(struct image_store *s, const char *digest)
{
    cleanup_free char *have = NULL;
    if (sources_read(s, digest, &have) < 0)
        return NULL;
    size_t n = 0;
    char **v = calloc(1, sizeof(char *));
    char *save = NULL;
    for (char *l = strtok_r(have, "\n", &save); v && l; l = strtok_r(NULL, "\n", &save)) {
        char **g = realloc(v, (n + 2) * sizeof(char *));
        if (!g)
            break;
        v = g;
        v[n] = strdup(l);
        if (v[n])
            v[++n] = NULL;
    }
    return v;
}

/* ---- one blob ---- */

struct push {
    struct image_store *s;
    const struct image_registry_opts *o;
    struct reg_client c;
    const char *repo;
    char *scope;
};

static void progress(const struct image_registry_opts *o, const char *what, const char *state,
                     int64_t done, int64_t total)
{
    if (o && o->progress)
        o->progress(o->progress_arg, what, state, done, total);
}

/* A repository of this registry (not the destination) the blob is in. */
static char *mount_source(struct push *p, const char *digest)
{
    char **v = reg_sources(p->s, digest);
    char *found = NULL;
    size_t hl = strlen(p->c.host);
    for (size_t i = 0; v && v[i] && !found; i++) {
        if (strncmp(v[i], p->c.host, hl) == 0 && v[i][hl] == '/' &&
            strcmp(v[i] + hl + 1, p->repo) != 0)
            found = strdup(v[i] + hl + 1);
    }
    for (size_t i = 0; v && v[i]; i++)
        free(v[i]);
    free(v);
    return found;
}

static int blob_exists_remote(struct push *p, const char *digest, bool *exists, hull_error *err)
{
    cleanup_free char *path = NULL;
    if (asprintf(&path, "/v2/%s/blobs/%s", p->repo, digest) < 0)
        return hull_error_errno(err, "out of memory");
    struct reg_req req = {.method = "HEAD", .path = path, .scope = p->scope};
    cleanup_reg_resp struct reg_resp resp = {0};
    if (reg_do(&p->c, &req, &resp, err) < 0)
        return -1;
    if (resp.status == 200) {
        *exists = true;
        return 0;
    }
    if (resp.status == 404) {
        *exists = false;
        return 0;
    }
    return reg_status_error(&resp, "blob", err);
}

/* POST .../blobs/uploads/ (with mount=&from= when from): 201 mounted, 202
 * upload session at *location. */
static int upload_start(struct push *p, const char *digest, const char *from, bool *mounted,
                        char **location, hull_error *err)
{
    cleanup_free char *path = NULL, *scope = NULL;
    int n = from ? asprintf(&path, "/v2/%s/blobs/uploads/?mount=%s&from=%s", p->repo, digest, from)
                 : asprintf(&path, "/v2/%s/blobs/uploads/", p->repo);
    if (n < 0 || (from && asprintf(&scope, "%s repository:%s:pull", p->scope, from) < 0))
        return hull_error_errno(err, "out of memory");
    struct reg_req req = {.method = "POST", .path = path, .scope = scope ? scope : p->scope};
    cleanup_reg_resp struct reg_resp resp = {0};
    if (reg_do(&p->c, &req, &resp, err) < 0)
        return -1;
    *mounted = resp.status == 201;
    if (*mounted)
        return 0;
    if (resp.status != 202 || !resp.location)
        return reg_status_error(&resp, "upload", err);
    *location = steal_ptr(&resp.location);
    return 0;
}

static int upload_put(struct push *p, const char *location, const char *digest, hull_error *err)
{
    struct stat st;
    cleanup_close int fd = image_blob_open(p->s, digest, err);
    if (fd < 0)
        return -1;
    if (fstat(fd, &st) < 0)
        return hull_error_errno(err, "stat blob %s", digest);
    cleanup_free char *url = NULL;
    if (asprintf(&url, "%s%cdigest=%s", location, strchr(location, '?') ? '&' : '?', digest) < 0)
        return hull_error_errno(err, "out of memory");
    struct reg_req req = {.method = "PUT",
                          .path = url,
                          .scope = p->scope,
                          .content_type = "application/octet-stream",
                          .body_from_fd = true,
                          .body_fd = fd,
                          .body_size = st.st_size};
    cleanup_reg_resp struct reg_resp resp = {0};
    if (reg_do(&p->c, &req, &resp, err) < 0)
        return -1;
    if (resp.status != 201 && resp.status != 204)
        return reg_status_error(&resp, "upload", err);
    return 0;
}

static int push_blob(struct push *p, const struct image_desc *d, const char *label, hull_error *err)
{
    char what[20];
    const char *hex = strchr(d->digest, ':');
    if (label)
        snprintf(what, sizeof(what), "%s", label);
    else
        snprintf(what, sizeof(what), "%.12s", hex ? hex + 1 : d->digest);
    bool exists = false;
    if (blob_exists_remote(p, d->digest, &exists, err) < 0)
        return -1;
    if (exists) {
        progress(p->o, what, "exists", d->size, d->size);
        return 0;
    }
    cleanup_free char *from = mount_source(p, d->digest);
    cleanup_free char *location = NULL;
    bool mounted = false;
    if (upload_start(p, d->digest, from, &mounted, &location, err) < 0)
        return -1;
    if (mounted) {
        progress(p->o, what, "mounted", d->size, d->size);
        return 0;
    }
    progress(p->o, what, "pushing", 0, d->size);
    if (upload_put(p, location, d->digest, err) < 0)
        return -1;
    progress(p->o, what, "done", d->size, d->size);
    return 0;
}

static int put_manifest(struct push *p, const struct image_ref *dst, const struct image *img,
                        hull_error *err)
{
    cleanup_free char *body = NULL;
    size_t len = 0;
    if (image_blob_read(p->s, img->manifest_digest, HULL_IMAGE_MANIFEST_MAX, &body, &len, err) < 0)
        return -1;
    cleanup_free char *path = NULL;
    if (asprintf(&path, "/v2/%s/manifests/%s", p->repo,
                 dst->tag ? dst->tag : img->manifest_digest) < 0)
        return hull_error_errno(err, "out of memory");
    const char *type = img->manifest.media_type ? img->manifest.media_type : MT_OCI_MANIFEST;
    struct reg_req req = {.method = "PUT",
                          .path = path,
                          .scope = p->scope,
                          .content_type = type,
                          .body = body,
                          .body_len = len};
    cleanup_reg_resp struct reg_resp resp = {0};
    if (reg_do(&p->c, &req, &resp, err) < 0)
        return -1;
    if (resp.status != 201 && resp.status != 200)
        return reg_status_error(&resp, "manifest", err);
    progress(p->o, "manifest", "done", (int64_t)len, (int64_t)len);
    return 0;
}

static int push_image(struct push *p, const struct image_ref *dst, const struct image *img,
                      hull_error *err)
{
    if (push_blob(p, &img->manifest.config, "config", err) < 0)
        return hull_error_prefix(err, "config %s", img->manifest.config.digest);
    for (size_t i = 0; i < img->manifest.n_layers; i++)
        if (push_blob(p, &img->manifest.layers[i], NULL, err) < 0)
            return hull_error_prefix(err, "layer %s", img->manifest.layers[i].digest);
    if (put_manifest(p, dst, img, err) < 0)
        return -1;
    cleanup_hull_error hull_error e = NULL;
    reg_source_add(p->s, img->manifest.config.digest, p->c.host, p->repo, &e);
    for (size_t i = 0; i < img->manifest.n_layers; i++)
        reg_source_add(p->s, img->manifest.layers[i].digest, p->c.host, p->repo, &e);
    return 0;
}

int image_push(struct image_store *s, const char *local, const char *dest,
               const struct image_registry_opts *o, char **manifest_digest, hull_error *err)
{
    if (manifest_digest)
        *manifest_digest = NULL;
    const char *shown = dest ? dest : local;
    cleanup_image struct image img = {0};
    if (image_load(s, local, o ? o->platform : NULL, &img, err) < 0)
        return hull_error_prefix(err, "push %s", shown);
    if (!dest && !img.entry.name)
        return hull_error_set(err, EINVAL, "push %s: the image has no name; give a destination",
                              local);
    cleanup_image_ref struct image_ref dst = {0};
    if (image_ref_parse(dest ? dest : img.entry.name, &dst, err) < 0)
        return hull_error_prefix(err, "push %s", shown);
    /* By digest (an image pulled by digest keeps that name): the manifest
     * goes under its digest, which must be this image's. */
    if (dst.digest && strcmp(dst.digest, img.manifest_digest) != 0)
        return hull_error_set(err, EINVAL, "push %s: the image's manifest is %s, not %s", shown,
                              img.manifest_digest, dst.digest);
    struct reg_endpoint *eps = NULL;
    size_t n = 0;
    if (reg_endpoints(dst.registry, dst.repository, o, false, &eps, &n, err) < 0)
        return hull_error_prefix(err, "push %s", shown);
    struct push p = {.s = s, .o = o, .repo = eps[n - 1].repository};
    int r = -1;
    if (asprintf(&p.scope, "repository:%s:pull,push", p.repo) < 0)
        hull_error_errno(err, "out of memory");
    else if (reg_client_init(&p.c, eps[n - 1].host, eps[n - 1].insecure, o, err) == 0)
        r = push_image(&p, &dst, &img, err);
    reg_client_free(&p.c);
    free(p.scope);
    reg_endpoints_free(eps, n);
    if (r < 0)
        return hull_error_prefix(err, "push %s", shown);
    if (manifest_digest && !(*manifest_digest = strdup(img.manifest_digest)))
        return hull_error_errno(err, "out of memory");
    return 0;
}
