/* /v1/images: hulld's image store (--image-root).
 *
 * Listing and inspecting are for any token; pulling (POST) and removing
 * (DELETE) change what every tenant can run, so they take an admin token
 * (http.c refuses others before the body) and are audited like every
 * state-changing request. Registry credentials are hulld's own
 * (--authfile), never taken from a request.
 *
 * A pull happens in a helper process (puller.c), the request answered when
 * it is done: hulld's thread for the connection only waits on a socket, so
 * hulld stays responsive, a crash in the pull ends the pull and not hulld,
 * and hulld can stop one (--pull-timeout, shutdown) with SIGKILL without
 * leaving a half image: the store publishes a name only when everything it
 * names is there. At most --max-pulls run at once; more are told 429.
 *
 * Reading the store (list, inspect, remove) is short work on local files
 * under the store's flock, done in the request's thread. */
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "daemon.h"
#include "image/image.h"
#include "image/registry.h"
#include "response.h"
#include "util/clock.h"
#include "util/error.h"
#include "util/json.h"
#include "util/log.h"

#define MAX_PULLERS 64

/* The pullers alive, so shutdown can stop them. */
static pthread_mutex_t pull_mu = PTHREAD_MUTEX_INITIALIZER;
static pid_t pullers[MAX_PULLERS];
static unsigned n_pulls; /* slots taken, pid known or not yet */
static bool pulls_stopped;

/* ---- the pull, in a helper ---- */

/* A pull slot, or -1 (EAGAIN: --max-pulls reached; ECANCELED: stopping). */
static int slot_take(hull_error *err)
{
    pthread_mutex_lock(&pull_mu);
    int rc = 0;
    if (pulls_stopped)
        rc = hull_error_set(err, ECANCELED, "hulld is shutting down");
    else if (n_pulls >= hulld.o->max_pulls || n_pulls >= MAX_PULLERS)
        rc = hull_error_set(err, EAGAIN, "hulld runs %u pulls at once (--max-pulls): try again",
                            hulld.o->max_pulls);
    else
        n_pulls++;
    pthread_mutex_unlock(&pull_mu);
    return rc;
}

/* Note pid as a live puller (0: forget old). False when hulld is stopping:
 * then the caller kills it. */
static bool slot_pid(pid_t old, pid_t pid)
{
    pthread_mutex_lock(&pull_mu);
    for (size_t i = 0; i < MAX_PULLERS; i++)
        if (pullers[i] == old) {
            pullers[i] = pid;
            break;
        }
    bool ok = !pulls_stopped;
    pthread_mutex_unlock(&pull_mu);
    return ok;
}

static void slot_release(pid_t pid)
{
    if (pid > 0)
        slot_pid(pid, 0);
    pthread_mutex_lock(&pull_mu);
    n_pulls--;
    pthread_mutex_unlock(&pull_mu);
}

void images_stop(void)
{
    pthread_mutex_lock(&pull_mu);
    pulls_stopped = true;
    for (size_t i = 0; i < MAX_PULLERS; i++)
        if (pullers[i] > 0 && kill(pullers[i], SIGKILL) < 0)
            hull_warn("puller %d: %s", (int)pullers[i], strerror(errno));
    pthread_mutex_unlock(&pull_mu);
}

unsigned images_pulls_running(void)
{
    pthread_mutex_lock(&pull_mu);
    unsigned n = n_pulls;
    pthread_mutex_unlock(&pull_mu);
    return n;
}

/* Wait for the puller's one answer, up to --pull-timeout. */
static int await_reply(int sock, struct frame *f, const char *ref, hull_error *err)
{
    uint64_t end = hull_monotonic_ns() + (uint64_t)hulld.o->pull_timeout * 1000000000ull;
    for (;;) {
        uint64_t now = hull_monotonic_ns();
        if (now >= end)
            return hull_error_set(err, ETIMEDOUT, "pull %s: not done after %u s (--pull-timeout)",
                                  ref, hulld.o->pull_timeout);
        struct pollfd p = {.fd = sock, .events = POLLIN};
        uint64_t left = (end - now) / 1000000 + 1;
        int n = poll(&p, 1, left > 60000 ? 60000 : (int)left);
        if (n < 0 && errno != EINTR)
            return hull_error_errno(err, "pull %s: poll", ref);
        if (n > 0)
            break;
    }
    if (frame_recv(sock, f) < 0)
        return hull_error_set(err, ECHILD, "pull %s: the pull process died", ref);
    return 0;
}

/* The puller's reaped status, said in words for a died pull. */
static void reap(pid_t pid, bool killed, const char *ref, hull_error *err)
{
    int st = 0;
    if (killed && kill(pid, SIGKILL) < 0 && errno != ESRCH)
        hull_warn("puller %d: %s", (int)pid, strerror(errno));
    while (waitpid(pid, &st, 0) < 0 && errno == EINTR)
        ;
    if (err && *err && hull_error_code(*err) == ECHILD) {
        pthread_mutex_lock(&pull_mu);
        bool stopped = pulls_stopped;
        pthread_mutex_unlock(&pull_mu);
        if (stopped) {
            hull_error_free(err);
            hull_error_set(err, ECANCELED, "pull %s: stopped, hulld is shutting down", ref);
        } else if (WIFSIGNALED(st)) {
            hull_error_free(err);
            hull_error_set(err, ECHILD, "pull %s: the pull process was killed by signal %d", ref,
                           WTERMSIG(st));
        }
    }
}

static int send_pull(int sock, const char *ref, const char *platform, bool tls_verify)
{
    const struct hulld_options *o = hulld.o;
    json_object *hdr = json_object_new_object();
    json_object_object_add(hdr, "ref", json_object_new_string(ref));
    json_object_object_add(hdr, "image_root", json_object_new_string(o->image_root));
    json_object_object_add(hdr, "tls_verify", json_object_new_boolean(tls_verify));
    if (platform)
        json_object_object_add(hdr, "platform", json_object_new_string(platform));
    if (o->authfile)
        json_object_object_add(hdr, "authfile", json_object_new_string(o->authfile));
    if (o->cert_dir)
        json_object_object_add(hdr, "cert_dir", json_object_new_string(o->cert_dir));
    int rc = frame_send(sock, hdr, NULL, 0, -1);
    json_object_put(hdr);
    return rc;
}

/* Pull ref into the store by a puller; its manifest digest, or NULL. */
static char *pull_in_helper(const char *ref, const char *platform, bool tls_verify, hull_error *err)
{
    if (slot_take(err) < 0)
        return NULL;
    cleanup_close int sock = -1;
    pid_t pid = helper_spawn("puller", &sock, err);
    if (pid < 0) {
        slot_release(0);
        return NULL;
    }
    bool live = slot_pid(0, pid);
    struct frame f = {0};
    int rc = -1;
    if (!live)
        hull_error_set(err, ECHILD, "pull %s: not started", ref);
    else if (send_pull(sock, ref, platform, tls_verify) < 0)
        hull_error_set(err, ECHILD, "pull %s: the pull process died", ref);
    else
        rc = await_reply(sock, &f, ref, err);
    /* Killed when it is not done: the timeout, or stopping. */
    reap(pid, rc < 0, ref, err);
    slot_release(pid);
    if (rc < 0)
        return NULL;
    char *digest = NULL;
    if (frame_error(&f, "the pull failed", err) == 0) {
        const char *d = json_object_get_string(hj_get(f.hdr, "digest"));
        digest = strdup(d ? d : "");
        if (digest == NULL)
            hull_error_set(err, ENOMEM, "out of memory");
    }
    frame_free(&f);
    return digest;
}

/* A failed pull as the answer: the caller's mistake (400), nothing there
 * (404), the registry's fault or unreachable (502/504), the store's disk
 * (507), busy (429), stopping (503); hulld's own faults 500. */
static void resp_pull_error(struct resp *r, hull_error *err)
{
    const char *msg = hull_error_msg(*err);
    int code = hull_error_code(*err);
    switch (code) {
    case EINVAL:
    case ENAMETOOLONG:
    case ENOENT:
        resp_from_error(r, err);
        return;
    case EAGAIN:
        resp_error(r, 429, "too_many_pulls", NULL, "%s", msg);
        r->retry_after = 5;
        break;
    case ECANCELED:
        resp_shutting_down(r, msg);
        break;
    case ETIMEDOUT:
        resp_error(r, 504, "registry_timeout", NULL, "%s", msg);
        break;
    case ENOSPC:
    case EDQUOT:
        resp_error(r, 507, "insufficient_storage", NULL, "%s", msg);
        break;
    case ECHILD: /* the puller died, or hulld could not talk to it */
    case ENOMEM:
        hull_log(HULL_LOG_ERROR, "%s", msg);
        resp_error(r, 500, "internal", NULL, "%s", msg);
        break;
    default:
        /* Refused, unreachable, a bad or tampered answer, too big: what
         * the registry did. */
        resp_error(r, 502, "registry_error", NULL, "%s", msg);
    }
    hull_error_free(err);
}

/* ---- documents ---- */

static void add_str(json_object *o, const char *key, const char *val)
{
    if (val)
        json_object_object_add(o, key, json_object_new_string(val));
}

static json_object *strv_json(char **v)
{
    json_object *a = json_object_new_array();
    for (; v && *v; v++)
        json_object_array_add(a, json_object_new_string(*v));
    return a;
}

static json_object *config_json(const struct image_config *c)
{
    json_object *o = json_object_new_object();
    if (c->entrypoint)
        json_object_object_add(o, "entrypoint", strv_json(c->entrypoint));
    if (c->cmd)
        json_object_object_add(o, "cmd", strv_json(c->cmd));
    if (c->env)
        json_object_object_add(o, "env", strv_json(c->env));
    add_str(o, "working_dir", c->working_dir);
    add_str(o, "user", c->user);
    add_str(o, "stop_signal", c->stop_signal);
    if (c->exposed_ports)
        json_object_object_add(o, "exposed_ports", strv_json(c->exposed_ports));
    if (c->labels)
        json_object_object_add(o, "labels", json_object_get(c->labels));
    return o;
}

static json_object *layers_json(const struct image_manifest *m)
{
    json_object *a = json_object_new_array();
    for (size_t i = 0; i < m->n_layers; i++) {
        json_object *l = json_object_new_object();
        add_str(l, "digest", m->layers[i].digest);
        json_object_object_add(l, "size", json_object_new_int64(m->layers[i].size));
        add_str(l, "media_type", m->layers[i].media_type);
        json_object_array_add(a, l);
    }
    return a;
}

/* One image: name, digest, size (config and layers as stored), created;
 * with full, what `inspect` adds. An image whose manifest cannot be read
 * (another platform's, a blob gone) is still listed, from its index entry. */
static json_object *image_json(struct image_store *s, const struct image_entry *e, bool full)
{
    json_object *o = json_object_new_object();
    add_str(o, "name", e->name);
    add_str(o, "digest", e->desc.digest);
    add_str(o, "media_type", e->desc.media_type);
    add_str(o, "created", e->created);
    cleanup_image struct image img = {0};
    hull_error err = NULL;
    int64_t size = e->desc.size;
    bool loaded = image_load(s, e->desc.digest, NULL, &img, &err) == 0;
    if (loaded) {
        size = img.manifest.config.size;
        for (size_t i = 0; i < img.manifest.n_layers; i++)
            size += img.manifest.layers[i].size;
    } else {
        hull_debug("image %s: %s", e->name ? e->name : e->desc.digest, hull_error_msg(err));
    }
    json_object_object_add(o, "size", json_object_new_int64(size));
    if (!full)
        return o;
    if (!loaded) {
        json_object_object_add(o, "error", json_object_new_string(hull_error_msg(err)));
        hull_error_free(&err);
        return o;
    }
    add_str(o, "manifest_digest", img.manifest_digest);
    char platform[128];
    snprintf(platform, sizeof(platform), "%s/%s%s%s", img.config.os ? img.config.os : "?",
             img.config.arch ? img.config.arch : "?", img.config.variant ? "/" : "",
             img.config.variant ? img.config.variant : "");
    add_str(o, "platform", platform);
    json_object_object_add(o, "config", config_json(&img.config));
    json_object_object_add(o, "layers", layers_json(&img.manifest));
    json_object_object_add(o, "in_use",
                           json_object_new_boolean(image_in_use(s, img.manifest_digest)));
    return o;
}

/* The store, when there is one: 0, 1 when there is none yet (nothing
 * pulled), or -1 with r filled. */
static int open_store(struct image_store *s, bool create, struct resp *r)
{
    hull_error e = NULL;
    if (image_store_open(hulld.o->image_root, create, s, &e) == 0)
        return 0;
    if (!create && hull_error_code(e) == ENOENT) {
        hull_error_free(&e); /* no store yet: no images, not a fault */
        return 1;
    }
    hull_error_prefix(&e, "image store %s", hulld.o->image_root);
    hull_log(HULL_LOG_ERROR, "%s", hull_error_msg(e));
    resp_from_error(r, &e);
    return -1;
}

static void list_images(struct resp *r)
{
    cleanup_image_store struct image_store s = {.rootfd = -1, .lockfd = -1};
    json_object *arr = json_object_new_array();
    json_object *o = json_object_new_object();
    json_object_object_add(o, "images", arr);
    int rc = open_store(&s, false, r);
    if (rc != 0) {
        if (rc > 0)
            resp_json(r, 200, o);
        else
            json_object_put(o);
        return;
    }
    struct image_entry *es = NULL;
    size_t n = 0;
    hull_error e = NULL;
    if (image_store_list(&s, &es, &n, &e) < 0) {
        json_object_put(o);
        resp_from_error(r, &e);
        return;
    }
    for (size_t i = 0; i < n; i++)
        json_object_array_add(arr, image_json(&s, &es[i], false));
    image_entries_free(es, n);
    resp_json(r, 200, o);
}

/* One entry's fields (image_entries_free is for a list). */
static void entry_clear(struct image_entry *e)
{
    free(e->name);
    image_desc_free(&e->desc);
    free(e->created);
    memset(e, 0, sizeof(*e));
}

/* Resolve text in s: 0, or -1 with r filled (404 names the image). */
static int resolve(struct image_store *s, const char *text, struct image_entry *out, struct resp *r)
{
    hull_error e = NULL;
    if (image_store_resolve(s, text, out, &e) == 0)
        return 0;
    if (hull_error_code(e) == ENOENT) {
        resp_error(r, 404, "not_found", NULL, "image %s not found", text);
        hull_error_free(&e); /* the 404 says it */
    } else {
        resp_from_error(r, &e);
    }
    return -1;
}

/* The store and ref's entry in it: 0, or -1 with r filled. With no store
 * yet there are no images, so ref is not found (404), as in an empty one. */
static int open_image(struct image_store *s, const char *ref, struct image_entry *e, struct resp *r)
{
    int rc = open_store(s, false, r);
    if (rc > 0)
        resp_error(r, 404, "not_found", NULL, "image %s not found", ref);
    if (rc != 0)
        return -1;
    return resolve(s, ref, e, r);
}

static void inspect_image(const char *ref, struct resp *r)
{
    cleanup_image_store struct image_store s = {.rootfd = -1, .lockfd = -1};
    struct image_entry e = {0};
    if (open_image(&s, ref, &e, r) < 0)
        return;
    resp_json(r, 200, image_json(&s, &e, true));
    entry_clear(&e);
}

static void remove_image(const struct request *rq, const char *ref, struct resp *r)
{
    const char *f = request_query(rq, "force");
    bool force = f && (strcmp(f, "true") == 0 || strcmp(f, "1") == 0);
    if (f && !force && strcmp(f, "false") != 0 && strcmp(f, "0") != 0) {
        resp_error(r, 400, "invalid_request", "force", "force: must be true or false");
        return;
    }
    cleanup_image_store struct image_store s = {.rootfd = -1, .lockfd = -1};
    struct image_entry e = {0};
    if (open_image(&s, ref, &e, r) < 0)
        return;
    hull_error err = NULL;
    if (image_store_remove(&s, ref, force, &err) < 0) {
        entry_clear(&e);
        resp_from_error(r, &err); /* EBUSY (in use): 409; ENOENT (gone since): 404 */
        return;
    }
    json_object *o = json_object_new_object();
    add_str(o, "name", e.name);
    add_str(o, "digest", e.desc.digest);
    json_object_object_add(o, "removed", json_object_new_boolean(1));
    entry_clear(&e);
    resp_json(r, 200, o);
}

/* ---- POST /v1/images ---- */

static const char *const pull_fields[] = {"ref", "platform", "tls_verify", NULL};

/* The pull request's fields, each checked: 0, or -1 with r filled. */
static int pull_request(json_object *doc, const char **ref, const char **platform, bool *tls_verify,
                        struct resp *r)
{
    json_object_object_foreach(doc, key, val)
    {
        (void)val;
        bool known = false;
        for (const char *const *k = pull_fields; *k; k++)
            known = known || strcmp(*k, key) == 0;
        if (!known) {
            resp_error(r, 400, "invalid_request", key,
                       "%s: unknown field (accepted: ref, platform, tls_verify)", key);
            return -1;
        }
    }
    json_object *v = hj_get(doc, "ref");
    if (v == NULL || !json_object_is_type(v, json_type_string)) {
        resp_error(r, 400, "invalid_request", "ref",
                   "ref: required, the image to pull (\"registry/repository:tag\")");
        return -1;
    }
    *ref = json_object_get_string(v);
    struct image_ref parsed = {0};
    hull_error e = NULL;
    if (image_ref_parse(*ref, &parsed, &e) < 0) {
        resp_error(r, 400, "invalid_request", "ref", "ref: %s", hull_error_msg(e));
        hull_error_free(&e);
        return -1;
    }
    image_ref_free(&parsed);
    v = hj_get(doc, "platform");
    *platform = NULL;
    if (v) {
        const char *p = json_object_get_string(v);
        if (!json_object_is_type(v, json_type_string) || strchr(p, '/') == NULL) {
            resp_error(r, 400, "invalid_request", "platform",
                       "platform: \"os/arch[/variant]\", as \"linux/amd64\"");
            return -1;
        }
        *platform = p;
    }
    v = hj_get(doc, "tls_verify");
    *tls_verify = true;
    if (v) {
        if (!json_object_is_type(v, json_type_boolean)) {
            resp_error(r, 400, "invalid_request", "tls_verify",
                       "tls_verify: must be true or false");
            return -1;
        }
        *tls_verify = json_object_get_boolean(v);
    }
    return 0;
}

static void pull_image(const struct request *rq, struct resp *r)
{
    if (!rq->caller->admin) { /* http.c refuses it first; kept here so it cannot be lost */
        resp_error(r, 403, "forbidden", NULL, "pulling an image needs an admin token");
        return;
    }
    cleanup_json json_object *doc = NULL;
    if (request_doc(rq, true, &doc, r) < 0)
        return;
    const char *ref, *platform;
    bool tls_verify;
    if (pull_request(doc, &ref, &platform, &tls_verify, r) < 0)
        return;
    snprintf(r->target, sizeof(r->target), "%s", ref);
    hull_log(HULL_LOG_INFO, "image pull %s (token %s)", ref, rq->caller->tok.id);
    hull_error e = NULL;
    cleanup_free char *digest = pull_in_helper(ref, platform, tls_verify, &e);
    if (digest == NULL) {
        hull_log(HULL_LOG_INFO, "%s", hull_error_msg(e));
        resp_pull_error(r, &e);
        return;
    }
    hull_log(HULL_LOG_INFO, "image pull %s: %s", ref, digest);
    cleanup_image_store struct image_store s = {.rootfd = -1, .lockfd = -1};
    if (open_store(&s, false, r) != 0) {
        if (r->status == 0)
            resp_error(r, 500, "internal", NULL, "pull %s: the store is gone", ref);
        return;
    }
    struct image_entry ent = {0};
    if (resolve(&s, ref, &ent, r) < 0)
        return;
    resp_json(r, 201, image_json(&s, &ent, true));
    entry_clear(&ent);
}

void api_images(const struct request *rq, const char *ref, struct resp *r)
{
    bool get = strcmp(rq->method, "GET") == 0;
    if (hulld.o->image_root == NULL) {
        /* main() always sets one; a harness that does not (tests/fuzz)
         * must not reach the host's default store. */
        resp_error(r, 501, "not_implemented", NULL, "hulld has no image store");
        return;
    }
    if (ref == NULL) {
        if (get)
            list_images(r);
        else
            pull_image(rq, r);
    } else if (get) {
        inspect_image(ref, r);
    } else {
        snprintf(r->target, sizeof(r->target), "%s", ref);
        remove_image(rq, ref, r);
    }
}
