/* image_pull: a reference from a registry into the store.
 *
 *   manifest   GET .../manifests/REF (size capped while reading; by digest,
 *              the bytes must hash to it); an index or list selects the
 *              platform's manifest, fetched by digest and checked the same way
 *   config     GET .../blobs/D into a blob writer (capped)
 *   layers     `parallel` at once over a curl multi handle, each streamed into
 *              its blob writer (hashed as it arrives, resumed with Range from
 *              a .part a killed pull left); a blob already stored is neither
 *              fetched nor HEADed; a second pull of the same blob waits on the
 *              writer's lock and then finds it stored
 *   unpack     each layer as soon as its blob is stored, by a pool of threads
 *              (unpack_queue.c) while the other blobs are still arriving
 *   name       image_store_tag, last: a pull killed at any moment leaves no
 *              name pointing at data that is not there
 *
 * Mirrors (mirrors.c) are tried first; the first endpoint that serves the
 * whole image wins, and the error names every endpoint tried.
 */
#include <curl/curl.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "image/registry.h"
#include "image/unpack_queue.h"
#include "util/clock.h"
#include "util/error.h"

#define ACCEPT_MANIFESTS                                                                           \
    MT_OCI_INDEX ", " MT_OCI_MANIFEST ", " MT_DOCKER_LIST ", " MT_DOCKER_MANIFEST

struct pull {
    struct image_store *s;
    const struct image_registry_opts *o;
    struct reg_client c;
    const char *repo;
    char *scope;
    struct reg_added *added; /* blobs and layers this pull published */
    /* While the layers are fetched: the manifest's layers and their
     * diff-ids, and the queue a layer goes to once its blob is stored
     * (NULL: unpacked after the fetch). */
    const struct image_manifest *m;
    const struct image_config *cfg;
    struct unpack_queue *unpack;
    /* No endpoint is tried after this one: when its fetch fails, unpacks
     * still running are stopped. Before another endpoint they finish, and
     * that endpoint finds their layers done. */
    bool last_endpoint;
};

/* Blob digest is stored: every layer made of it can be unpacked now. */
static int blob_stored(struct pull *p, const char *digest, hull_error *err)
{
    if (p->unpack == NULL)
        return 0;
    for (size_t i = 0; i < p->m->n_layers; i++)
        if (strcmp(p->m->layers[i].digest, digest) == 0 &&
            unpack_queue_add(p->unpack, p->m->layers[i].digest, p->cfg->diff_ids[i], err) < 0)
            return -1;
    return 0;
}

/* image_blob_put, noting a blob that was not there before. */
static int put_blob(struct pull *p, const char *body, size_t len, hull_error *err)
{
    char digest[72];
    reg_sha256(body, len, digest);
    bool had = image_blob_exists(p->s, digest);
    cleanup_free char *stored = NULL;
    if (image_blob_put(p->s, body, len, &stored, err) < 0)
        return -1;
    if (!had && reg_added_push(p->added, false, digest) < 0)
        return hull_error_errno(err, "out of memory");
    return 0;
}

static void progress(const struct image_registry_opts *o, const char *what, const char *state,
                     int64_t done, int64_t total)
{
    if (o && o->progress)
        o->progress(o->progress_arg, what, state, done, total);
}

static void short_digest(const char *digest, char out[20])
{
    const char *hex = strchr(digest, ':');
    snprintf(out, 20, "%.12s", hex ? hex + 1 : digest);
}

/* GET a manifest (or index) by tag or digest; by digest the bytes must hash
 * to it. */
static int fetch_manifest(struct pull *p, const char *reference, char **body, size_t *len,
                          char **type, char digest[72], hull_error *err)
{
    cleanup_free char *path = NULL;
    if (asprintf(&path, "/v2/%s/manifests/%s", p->repo, reference) < 0)
        return hull_error_errno(err, "out of memory");
    struct reg_req req = {.method = "GET",
                          .path = path,
                          .scope = p->scope,
                          .accept = ACCEPT_MANIFESTS,
                          .max = HULL_IMAGE_MANIFEST_MAX};
    cleanup_reg_resp struct reg_resp resp = {0};
    if (reg_do(&p->c, &req, &resp, err) < 0)
        return strncmp(reference, "sha256:", 7) == 0
                   ? hull_error_prefix(err, "manifest %s", reference)
                   : -1;
    if (resp.status != 200)
        return reg_status_error(&resp, "manifest", err);
    reg_sha256(resp.body ? resp.body : "", resp.len, digest);
    if (strncmp(reference, "sha256:", 7) == 0 && strcmp(digest, reference) != 0)
        return hull_error_set(err, EBADMSG, "manifest %s: the registry sent %s instead", reference,
                              digest);
    *len = resp.len;
    *body = resp.body ? steal_ptr(&resp.body) : strdup("");
    *type = resp.content_type ? steal_ptr(&resp.content_type) : NULL;
    return 0;
}

/* ---- blobs ---- */

struct blob_fetch {
    struct pull *p;
    const struct image_desc *d;
    char what[20];
    struct image_blob_writer *w;
    int64_t resume, got;
    bool restart_done, retried;
    struct reg_req req;
    struct reg_resp resp;
    struct reg_xfer x;
    char *path;
    void *h;
    struct curl_slist *hl;
    char errbuf[CURL_ERROR_SIZE];
};

static int blob_sink(void *arg, const void *buf, size_t len, hull_error *err)
{
    struct blob_fetch *b = arg;
    if (b->resume > 0 && b->resp.status == 200 && !b->restart_done) {
        /* The registry ignored Range: start the blob over. */
        b->restart_done = true;
        image_blob_writer_abort(b->w, false);
        b->w = NULL;
        int64_t again = 0;
        if (image_blob_writer_open(b->p->s, b->d->digest, b->d->size, &b->w, &again, err) < 0)
            return -1;
        b->resume = again;
        b->got = 0;
    }
    b->restart_done = true;
    if (b->d->size >= 0 && b->resume + b->got + (int64_t)len > b->d->size)
        return hull_error_set(err, EFBIG, "more than the %lld bytes its descriptor says",
                              (long long)b->d->size);
    if (image_blob_writer_write(b->w, buf, len, err) < 0)
        return -1;
    b->got += (int64_t)len;
    progress(b->p->o, b->what, "fetching", b->resume + b->got, b->d->size);
    return 0;
}

static void blob_fetch_free(struct blob_fetch *b)
{
    if (b->h)
        curl_easy_cleanup(b->h);
    curl_slist_free_all(b->hl);
    hull_error_free(&b->x.sink_err);
    reg_resp_free(&b->resp);
    if (b->w)
        image_blob_writer_abort(b->w, b->resume + b->got > 0);
    free(b->path);
    memset(b, 0, sizeof(*b));
}

static int blob_end(struct blob_fetch *b, hull_error *err);

/* Open the writer. Returns 1 when there is nothing to fetch (another pull
 * stored it meanwhile). */
static int blob_begin(struct pull *p, const struct image_desc *d, const char *label,
                      struct blob_fetch *b, hull_error *err)
{
    memset(b, 0, sizeof(*b));
    b->p = p;
    b->d = d;
    if (label)
        snprintf(b->what, sizeof(b->what), "%s", label);
    else
        short_digest(d->digest, b->what);
    if (image_blob_writer_open(p->s, d->digest, d->size, &b->w, &b->resume, err) < 0)
        return -1;
    if (image_blob_writer_done(b->w)) {
        image_blob_writer_commit(b->w, NULL, NULL);
        b->w = NULL;
        progress(p->o, b->what, "exists", d->size, d->size);
        return 1;
    }
    if (d->size >= 0 && b->resume >= d->size) {
        /* A killed pull got every byte but did not commit: no request (a
         * Range past the end is a 416). If they do not verify, commit
         * drops them and the blob is fetched whole. */
        b->resp.status = 200;
        cleanup_hull_error hull_error e = NULL;
        if (blob_end(b, &e) == 0)
            return 1;
        b->resume = 0;
        if (image_blob_writer_open(p->s, d->digest, d->size, &b->w, &b->resume, err) < 0)
            return -1;
        if (image_blob_writer_done(b->w)) {
            image_blob_writer_commit(b->w, NULL, NULL);
            b->w = NULL;
            return 1;
        }
    }
    if (asprintf(&b->path, "/v2/%s/blobs/%s", p->repo, d->digest) < 0)
        return hull_error_errno(err, "out of memory");
    b->req = (struct reg_req){.method = "GET",
                              .path = b->path,
                              .scope = p->scope,
                              .sink = blob_sink,
                              .sink_arg = b,
                              .range_from = b->resume};
    progress(p->o, b->what, "fetching", b->resume, d->size);
    return 0;
}

/* After the transfer: the status, then the digest (commit). */
static int blob_end(struct blob_fetch *b, hull_error *err)
{
    long st = b->resp.status;
    if (st != 200 && st != 206)
        return reg_status_error(&b->resp, "blob", err);
    char *got = NULL;
    int r = image_blob_writer_commit(b->w, &got, err);
    b->w = NULL; /* commit frees the writer, whatever it returns */
    free(got);
    if (r < 0)
        return -1;
    if (reg_added_push(b->p->added, false, b->d->digest) < 0)
        return hull_error_errno(err, "out of memory");
    progress(b->p->o, b->what, "done", b->d->size, b->d->size);
    return blob_stored(b->p, b->d->digest, err);
}

/* One blob, here and now (the config, and a layer whose parallel fetch was
 * answered 401: reg_do answers the challenge). */
static int fetch_blob_sync(struct pull *p, const struct image_desc *d, const char *label,
                           hull_error *err)
{
    struct blob_fetch b;
    int r = blob_begin(p, d, label, &b, err);
    if (r == 0) {
        r = reg_do(&p->c, &b.req, &b.resp, err);
        if (r == 0)
            r = blob_end(&b, err);
    }
    blob_fetch_free(&b);
    return r < 0 ? hull_error_prefix(err, "blob %s", d->digest) : 0;
}

static int start_transfer(struct pull *p, CURLM *m, struct blob_fetch *b, hull_error *err)
{
    b->h = reg_easy(&p->c, &b->req, &b->resp, &b->hl, &b->x, err);
    if (!b->h)
        return -1;
    curl_easy_setopt(b->h, CURLOPT_ERRORBUFFER, b->errbuf);
    curl_easy_setopt(b->h, CURLOPT_PRIVATE, b);
    curl_multi_add_handle(m, b->h);
    return 0;
}

/* A resumed blob did not verify: the .part a killed pull left held other
 * bytes (commit dropped it). Fetch it once more from the start. */
static int restart_fresh(struct pull *p, CURLM *m, struct blob_fetch *b, hull_error *err)
{
    const struct image_desc *d = b->d;
    hull_error_free(err);
    if (b->w) {
        image_blob_writer_abort(b->w, false); /* its .part goes */
        b->w = NULL;
    }
    blob_fetch_free(b);
    int r = blob_begin(p, d, NULL, b, err);
    if (r == 0 && b->resume == 0 && start_transfer(p, m, b, err) == 0)
        return 1;
    if (r == 1) /* another pull stored it meanwhile */
        r = blob_stored(p, d->digest, err);
    if (r == 0 && b->resume > 0)
        r = hull_error_set(err, EIO, "a partial download that does not verify keeps coming back");
    if (r < 0)
        hull_error_prefix(err, "layer %s", d->digest);
    blob_fetch_free(b);
    return r < 0 ? -1 : 0;
}

/* A transfer ended. Returns 1 when it was restarted (a 401: the token
 * expired; nothing was written, the writer and its lock are kept). */
static int finish_one(struct pull *p, CURLM *m, struct blob_fetch *b, CURLcode rc, hull_error *err)
{
    curl_multi_remove_handle(m, b->h);
    curl_easy_cleanup(b->h);
    b->h = NULL;
    curl_slist_free_all(b->hl);
    b->hl = NULL;
    int r;
    if (rc != CURLE_OK) {
        r = reg_xfer_error(&p->c, rc, b->errbuf, &b->x, err);
    } else if (b->resp.status == 401 && b->resp.www_auth && !b->retried) {
        b->retried = true;
        r = reg_auth_challenge(&p->c, b->resp.www_auth, b->req.scope, err);
        if (r == 1) {
            reg_resp_free(&b->resp);
            return start_transfer(p, m, b, err) < 0 ? -1 : 1;
        }
        if (r == 0)
            r = reg_status_error(&b->resp, "blob", err);
    } else {
        long st = b->resp.status;
        if (b->resume > 0 && st == 416) /* the registry's blob is shorter than our .part */
            return restart_fresh(p, m, b, err);
        bool resumed = b->resume > 0 && (st == 200 || st == 206);
        r = blob_end(b, err);
        if (r < 0 && resumed)
            return restart_fresh(p, m, b, err);
    }
    if (r < 0)
        hull_error_prefix(err, "layer %s", b->d->digest);
    blob_fetch_free(b);
    return r;
}

static int by_digest(const void *a, const void *b)
{
    const struct image_desc *x = *(const struct image_desc *const *)a;
    const struct image_desc *y = *(const struct image_desc *const *)b;
    return strcmp(x->digest, y->digest);
}

/* The blobs of descs not stored yet, each once, `parallel` at once. Their
 * writers are opened first, in digest order: every pull takes blob locks in
 * the same order (two pulls sharing layers cannot wait on each other), and
 * a wait for another pull's writer never stalls a transfer of this one. */
static int fetch_layers(struct pull *p, const struct image_desc *descs, size_t n, hull_error *err)
{
    size_t parallel = p->o && p->o->parallel > 0 ? (size_t)p->o->parallel : 4;
    const struct image_desc **todo = calloc(n + 1, sizeof(*todo));
    struct blob_fetch *f = calloc(n + 1, sizeof(*f));
    CURLM *m = curl_multi_init();
    size_t nt = 0;
    int r = todo && f && m ? reg_client_prepare(&p->c, err)
                           : hull_error_set(err, ENOMEM, "out of memory");
    for (size_t i = 0; r == 0 && i < n; i++) {
        bool dup = false;
        for (size_t j = 0; j < nt && !dup; j++)
            dup = strcmp(todo[j]->digest, descs[i].digest) == 0;
        if (dup)
            continue;
        if (image_blob_exists(p->s, descs[i].digest)) {
            char what[20];
            short_digest(descs[i].digest, what);
            progress(p->o, what, "exists", descs[i].size, descs[i].size);
            r = blob_stored(p, descs[i].digest, err);
            continue;
        }
        todo[nt++] = &descs[i];
    }
    if (r == 0)
        qsort(todo, nt, sizeof(*todo), by_digest);
    for (size_t i = 0; r == 0 && i < nt; i++) {
        int b = blob_begin(p, todo[i], NULL, &f[i], err);
        if (b == 1) /* another pull stored it meanwhile */
            b = blob_stored(p, todo[i]->digest, err);
        if (b < 0)
            r = hull_error_prefix(err, "layer %s", todo[i]->digest);
    }
    size_t next = 0, active = 0;
    while (r == 0 && (next < nt || active > 0)) {
        while (r == 0 && active < parallel && next < nt) {
            struct blob_fetch *b = &f[next++];
            if (b->w && (r = start_transfer(p, m, b, err)) == 0)
                active++;
        }
        if (r < 0 || active == 0)
            continue;
        int running = 0;
        curl_multi_perform(m, &running);
        CURLMsg *msg;
        int left;
        while (r == 0 && (msg = curl_multi_info_read(m, &left))) {
            if (msg->msg != CURLMSG_DONE)
                continue;
            struct blob_fetch *b = NULL;
            curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, (char **)&b);
            r = finish_one(p, m, b, msg->data.result, err);
            if (r == 1)
                r = 0; /* restarted, still active */
            else
                active--;
        }
        if (r == 0 && active > 0)
            curl_multi_poll(m, NULL, 0, 1000, NULL);
    }
    /* On an error, the others stop where they are: their .part files stay
     * for the next pull to resume. */
    for (size_t i = 0; f && i < nt; i++) {
        if (f[i].h)
            curl_multi_remove_handle(m, f[i].h);
        blob_fetch_free(&f[i]);
    }
    free(todo);
    free(f);
    if (m)
        curl_multi_cleanup(m);
    return r;
}

/* ---- the whole image from one endpoint ---- */

static int record_sources(struct pull *p, const struct image_manifest *m, const char *mdigest)
{
    cleanup_hull_error hull_error e = NULL;
    /* A hint for cross-repository mounts on push: failing to write it costs
     * an upload later, not this pull. */
    reg_source_add(p->s, mdigest, p->c.host, p->repo, &e);
    reg_source_add(p->s, m->config.digest, p->c.host, p->repo, &e);
    for (size_t i = 0; i < m->n_layers; i++)
        reg_source_add(p->s, m->layers[i].digest, p->c.host, p->repo, &e);
    return 0;
}

static int pull_from(struct pull *p, const struct image_ref *ref, const char *name,
                     struct image_desc *mdesc, hull_error *err)
{
    const char *platform = p->o && p->o->platform ? p->o->platform : image_host_platform();
    cleanup_free char *body = NULL, *type = NULL;
    size_t len = 0;
    char digest[72];
    if (fetch_manifest(p, ref->digest ? ref->digest : ref->tag, &body, &len, &type, digest, err) <
        0)
        return -1;
    progress(p->o, "manifest", "done", (int64_t)len, (int64_t)len);
    const char *kind = image_doc_kind(body, len, type, err);
    if (!kind)
        return -1;
    if (strcmp(kind, MT_OCI_INDEX) == 0 || strcmp(kind, MT_DOCKER_LIST) == 0) {
        struct image_desc sel = {0};
        if (image_index_select(body, len, platform, &sel, err) < 0)
            return -1;
        int r = put_blob(p, body, len, err);
        free(body), body = NULL;
        free(type), type = NULL;
        if (r == 0)
            r = fetch_manifest(p, sel.digest, &body, &len, &type, digest, err);
        if (r < 0) {
            image_desc_free(&sel);
            return -1;
        }
        *mdesc = sel;
        if (!mdesc->media_type)
            mdesc->media_type = strdup(image_doc_kind(body, len, type, err) ?: MT_OCI_MANIFEST);
    } else {
        mdesc->media_type = strdup(kind);
        mdesc->digest = strdup(digest);
        mdesc->size = (int64_t)len;
        if (!mdesc->media_type || !mdesc->digest)
            return hull_error_errno(err, "out of memory");
    }
    cleanup_image_manifest struct image_manifest m = {0};
    if (image_manifest_parse(body, len, &m, err) < 0)
        return hull_error_prefix(err, "manifest %s", digest);
    if (put_blob(p, body, len, err) < 0)
        return -1;
    if (m.config.size > (int64_t)HULL_IMAGE_CONFIG_MAX)
        return hull_error_set(err, EFBIG, "config %s: %lld bytes is over the %u limit",
                              m.config.digest, (long long)m.config.size, HULL_IMAGE_CONFIG_MAX);
    if (!image_blob_exists(p->s, m.config.digest) &&
        fetch_blob_sync(p, &m.config, "config", err) < 0)
        return hull_error_prefix(err, "config");
    cleanup_free char *ctext = NULL;
    size_t clen = 0;
    cleanup_image_config struct image_config cfg = {0};
    if (image_blob_read(p->s, m.config.digest, HULL_IMAGE_CONFIG_MAX, &ctext, &clen, err) < 0 ||
        image_config_parse(ctext, clen, &cfg, err) < 0)
        return hull_error_prefix(err, "config %s", m.config.digest);
    /* The layers this pull will have made, for the undo of a failed one:
     * noted before any is unpacked. */
    for (size_t i = 0; i < cfg.n_diff_ids; i++) {
        cleanup_hull_error hull_error probe = NULL;
        cleanup_free char *have = image_layer_path(p->s, cfg.diff_ids[i], &probe);
        if (!have && reg_added_push(p->added, true, cfg.diff_ids[i]) < 0)
            return hull_error_errno(err, "out of memory");
    }
    /* A config that does not match its manifest gets no queue: the unpack
     * below says what is wrong. */
    if (cfg.n_diff_ids == m.n_layers && m.n_layers > 0) {
        p->m = &m;
        p->cfg = &cfg;
        if (unpack_queue_start(p->s, m.n_layers, &p->unpack, err) < 0)
            return -1;
    }
    int fetched = fetch_layers(p, m.layers, m.n_layers, err);
    /* A failed fetch drops the unpacks not started (and, at the last
     * endpoint, stops the running ones); the undo of a pull that fails
     * removes the layers that were finished. */
    int unpacked = unpack_queue_finish(p->unpack, fetched < 0 && p->last_endpoint, err);
    p->unpack = NULL;
    if (fetched < 0 || unpacked < 0)
        return -1;
    record_sources(p, &m, mdesc->digest);

    /* Unpack what is left, then name: the name is the last thing written. */
    struct image img = {0};
    img.entry.desc = *mdesc;
    img.manifest = m;
    img.config = cfg;
    img.manifest_digest = mdesc->digest;
    progress(p->o, "layers", "unpacking", 0, (int64_t)m.n_layers);
    if (image_unpack_all(p->s, &img, err) < 0)
        return -1;
    progress(p->o, "layers", "done", (int64_t)m.n_layers, (int64_t)m.n_layers);
    return image_store_tag(p->s, name, mdesc, err);
}

int image_pull(struct image_store *s, const char *text, const struct image_registry_opts *o,
               char **manifest_digest, hull_error *err)
{
    if (manifest_digest)
        *manifest_digest = NULL;
    cleanup_image_ref struct image_ref ref = {0};
    if (image_ref_parse(text, &ref, err) < 0)
        return hull_error_prefix(err, "pull %s", text);
    cleanup_free char *name = image_ref_name(&ref);
    if (!name)
        return hull_error_errno(err, "out of memory");
    struct reg_endpoint *eps = NULL;
    size_t n = 0;
    if (reg_endpoints(ref.registry, ref.repository, o, true, &eps, &n, err) < 0)
        return hull_error_prefix(err, "pull %s", text);
    /* What every endpoint said, for the error when none served. */
    cleanup_free char *tried = NULL;
    size_t tried_len = 0;
    /* Prune keeps away from what this pull writes until it is named. */
    cleanup_close int pin = image_store_pin(s, err);
    if (pin < 0) {
        reg_endpoints_free(eps, n);
        return hull_error_prefix(err, "pull %s", text);
    }
    struct reg_added added = {0};
    FILE *tf = open_memstream(&tried, &tried_len);
    int r = -1;
    /* One deadline for the whole pull, whichever endpoints it tries. */
    long limit = o ? o->pull_timeout_s : 0;
    uint64_t deadline = limit > 0 ? hull_monotonic_ns() + (uint64_t)limit * 1000000000ull : 0;
    bool timed_out = false;
    for (size_t i = 0; i < n && r < 0; i++) {
        hull_error e = NULL;
        struct pull p = {.s = s,
                         .o = o,
                         .repo = eps[i].repository,
                         .added = &added,
                         .last_endpoint = i + 1 == n};
        struct image_desc mdesc = {0};
        if (asprintf(&p.scope, "repository:%s:pull", eps[i].repository) < 0) {
            r = hull_error_errno(&e, "out of memory");
        } else if (reg_client_init(&p.c, eps[i].host, eps[i].insecure, o, &e) == 0) {
            p.c.deadline_ns = deadline;
            p.c.deadline_s = limit;
            r = pull_from(&p, &ref, name, &mdesc, &e);
            timed_out = timed_out || (r < 0 && p.c.deadline_hit);
        }
        if (r == 0 && manifest_digest)
            *manifest_digest = steal_ptr(&mdesc.digest);
        if (r < 0 && tf)
            fprintf(tf, "%s%s/%s: %s", i ? "; " : "", eps[i].host, eps[i].repository,
                    hull_error_msg(e));
        if (r < 0 && n == 1) {
            *err = e;
            e = NULL;
        }
        hull_error_free(&e);
        image_desc_free(&mdesc);
        reg_client_free(&p.c);
        free(p.scope);
    }
    if (tf)
        fclose(tf);
    if (r < 0 && timed_out) {
        /* Whatever was under way when time ran out says less than this. */
        hull_error_free(err);
        hull_error_set(err, ETIMEDOUT, "timed out after %ld s", limit);
    } else if (r < 0 && n > 1) {
        hull_error_set(err, EIO, "%s", tried ? tried : "no endpoint answered");
    }
    reg_endpoints_free(eps, n);
    close(hull_steal_fd(&pin));
    if (r < 0)
        reg_undo(s, &added);
    reg_added_free(&added);
    if (r < 0)
        return hull_error_prefix(err, "pull %s", text);
    return 0;
}
