/* /v1/templates: a prepared sandbox kept as a template, and sandboxes made
 * from it (POST /v1/sandboxes {"template": NAME}).
 *
 * A template is a row in the store (service/templates.c: what its
 * sandboxes are created with: the source sandbox's create request, with
 * its image pinned, limits, env, network; start and ready commands) and a
 * copy of the source sandbox's /tmp under STATE_DIR/templates/ID, made by
 * the source's keeper (keeper_tpl.c). The copy is made under a temporary
 * name, flushed, renamed into place, and only then the row is written; a
 * delete removes the row first. So a row always names a whole copy, and
 * what a crash leaves (a temporary copy, a copy with no row) is swept at
 * start-up. A template belongs to the tenant of the token that made it:
 * another tenant's names are 404, like their sandboxes.
 *
 * Making a sandbox from one: its create request is the template's (the
 * caller adds only lifetime and metadata), then the copy is loaded into its
 * /tmp by its keeper, start_cmd starts as a background process and
 * ready_cmd runs until it exits 0, bounded by ready_timeout; whatever
 * fails, the sandbox is destroyed and the answer is the failure. */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "daemon.h"
#include "procs.h"
#include "util/clock.h"
#include "util/error.h"
#include "util/fs.h"
#include "util/json.h"
#include "util/log.h"

#define TPL_DIR              "templates"
#define TPL_READY_DEFAULT_MS 30000ull
#define TPL_READY_MAX_MS     600000ull
#define TPL_NAME_MAX         63

/* Loads hold it shared from opening a copy to the end of the load; a
 * delete takes it exclusively to remove the row and move the copy away. */
static pthread_rwlock_t copies_mu = PTHREAD_RWLOCK_INITIALIZER;

static void tpl_path(char *buf, size_t len, const char *name)
{
    snprintf(buf, len, "%s/%s%s%s", hulld.o->state_dir, TPL_DIR, name ? "/" : "", name ? name : "");
}

/* A name: [A-Za-z0-9][A-Za-z0-9_.-]*, at most TPL_NAME_MAX bytes. */
static int name_check(json_object *v, struct resp *r)
{
    const char *n = v && json_object_is_type(v, json_type_string) ? json_object_get_string(v) : "";
    size_t len = strlen(n);
    bool ok = len > 0 && len <= TPL_NAME_MAX && strchr("_.-", n[0]) == NULL;
    for (size_t i = 0; ok && i < len; i++)
        ok = (n[i] >= 'a' && n[i] <= 'z') || (n[i] >= 'A' && n[i] <= 'Z') ||
             (n[i] >= '0' && n[i] <= '9') || strchr("_.-", n[i]) != NULL;
    if (!ok)
        resp_error(r, 400, "invalid_request", "name",
                   "name: 1 to %d of [A-Za-z0-9_.-], starting with a letter or digit",
                   TPL_NAME_MAX);
    return ok ? 0 : -1;
}

/* A command: a non-empty array of strings, or absent (NULL). */
static int cmd_check(json_object *doc, const char *key, const char **text, struct resp *r)
{
    json_object *v = hj_get(doc, key);
    *text = NULL;
    if (v == NULL || json_object_is_type(v, json_type_null))
        return 0;
    bool ok = json_object_is_type(v, json_type_array) && json_object_array_length(v) > 0;
    for (size_t i = 0; ok && i < json_object_array_length(v); i++)
        ok = json_object_is_type(json_object_array_get_idx(v, i), json_type_string);
    if (!ok) {
        resp_error(r, 400, "invalid_request", key, "%s: a command, a non-empty array of strings",
                   key);
        return -1;
    }
    *text = json_object_to_json_string_ext(v, JSON_C_TO_STRING_PLAIN);
    return 0;
}

static json_object *show(json_object *row)
{
    json_object *o = json_object_new_object();
    static const char *const copy[] = {"name",  "id",     "isolation", "bytes",
                                       "files", "source", "created",   NULL};
    for (const char *const *k = copy; *k; k++) {
        json_object *v = hj_get(row, *k);
        if (v)
            json_object_object_add(o, *k, json_object_get(v));
    }
    static const char *const cmds[] = {"start_cmd", "ready_cmd", NULL};
    for (const char *const *k = cmds; *k; k++) {
        json_object *v = hj_get(row, *k);
        json_object *c = v ? json_tokener_parse(json_object_get_string(v)) : NULL;
        if (c)
            json_object_object_add(o, *k, c);
    }
    json_object *ms = hj_get(row, "ready_timeout_ms");
    if (ms)
        json_object_object_add(o, "ready_timeout",
                               json_object_new_double((double)json_object_get_int64(ms) / 1000));
    /* What its sandboxes are created with (the source's create request). */
    json_object *sp = hj_get(row, "spec");
    json_object *spec = sp ? json_tokener_parse(json_object_get_string(sp)) : NULL;
    if (spec) {
        json_object_object_del(spec, "cmd");
        json_object_object_add(o, "sandbox", spec);
    }
    return o;
}

static void remove_copy(const char *name)
{
    char dir[4096];
    tpl_path(dir, sizeof(dir), NULL);
    cleanup_close int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    hull_error e = NULL;
    if (fd < 0 || hull_rm_rf_at(fd, name, &e) < 0) {
        hull_warn("template copy %s: %s", name, e ? hull_error_msg(e) : strerror(errno));
        hull_error_free(&e);
    }
}

/* The copy of sandbox sid's /tmp, made by its keeper under a temporary
 * name, flushed, then renamed to id: *stats what it holds; -1 with err
 * and nothing left. */
static int keep_copy(const char *sid, const char *tenant, const char *id, json_object **stats,
                     hull_error *err)
{
    char tmpname[64], dir[4096], final[4096];
    snprintf(tmpname, sizeof(tmpname), ".new-%s", id);
    tpl_path(dir, sizeof(dir), tmpname);
    tpl_path(final, sizeof(final), id);
    if (mkdir(dir, 0700) < 0)
        return hull_error_errno(err, "template: mkdir %s", dir);
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    struct frame f = {.fd = -1};
    json_object *hdr = json_object_new_object();
    json_object_object_add(hdr, "max", json_object_new_int64((int64_t)hulld.o->template_max));
    int ok = fd < 0 ? (json_object_put(hdr), hull_error_errno(err, "template: open %s", dir))
                    : sandboxes_call(sid, tenant, "tpl_save", hdr, fd, &f, err);
    /* On the disk before the row names it. */
    if (ok == 0 && syncfs(fd) < 0)
        ok = hull_error_errno(err, "template: sync");
    if (fd >= 0)
        close(fd);
    *stats = ok == 0 ? json_object_get(hj_get(f.hdr, "stats")) : NULL;
    if (ok == 0)
        frame_free(&f);
    if (ok == 0 && rename(dir, final) < 0)
        ok = hull_error_errno(err, "template: rename");
    if (ok < 0) {
        remove_copy(tmpname);
        json_object_put(*stats);
        *stats = NULL;
        if (hull_error_code(*err) == EFBIG)
            hull_error_prefix(err, "template: over hulld's --template-max (%zu bytes)",
                              hulld.o->template_max);
        if (hull_error_code(*err) == ESTALE) { /* a live sandbox swapped a file: 409 */
            char why[512];
            snprintf(why, sizeof(why), "%s", hull_error_msg(*err));
            hull_error_free(err);
            hull_error_set(err, EBUSY, "template: %s: changed while it was copied (try again)",
                           why);
        }
    }
    return ok;
}

/* POST /v1/templates {"sandbox", "name", "start_cmd"?, "ready_cmd"?,
 * "ready_timeout"?} */
static void create(const struct request *rq, struct resp *r)
{
    const char *tenant = rq->caller->tok.tenant;
    cleanup_json json_object *doc = NULL;
    if (request_doc(rq, false, &doc, r) < 0)
        return;
    json_object_object_foreach(doc, key, val)
    {
        (void)val;
        if (strcmp(key, "sandbox") != 0 && strcmp(key, "name") != 0 &&
            strcmp(key, "start_cmd") != 0 && strcmp(key, "ready_cmd") != 0 &&
            strcmp(key, "ready_timeout") != 0) {
            resp_error(r, 400, "invalid_request", key,
                       "%s: unknown field (accepted: sandbox, name, start_cmd, ready_cmd, "
                       "ready_timeout)",
                       key);
            return;
        }
    }
    json_object *sv = hj_get(doc, "sandbox");
    if (sv == NULL || !json_object_is_type(sv, json_type_string)) {
        resp_error(r, 400, "invalid_request", "sandbox",
                   "sandbox: required, the id of the sandbox to keep as a template");
        return;
    }
    const char *start = NULL, *ready = NULL;
    if (name_check(hj_get(doc, "name"), r) < 0 || cmd_check(doc, "start_cmd", &start, r) < 0 ||
        cmd_check(doc, "ready_cmd", &ready, r) < 0)
        return;
    const char *name = json_object_get_string(hj_get(doc, "name"));
    uint64_t ready_ms = TPL_READY_DEFAULT_MS;
    hull_error e = NULL;
    json_object *rt = hj_get(doc, "ready_timeout");
    if (rt && hull_json_duration_ms(rt, "ready_timeout", &ready_ms, &e) < 0) {
        resp_from_error(r, &e);
        return;
    }
    if (ready_ms < 1 || ready_ms > TPL_READY_MAX_MS) {
        resp_error(r, 400, "invalid_request", "ready_timeout", "ready_timeout: from 1ms to 10m");
        return;
    }
    snprintf(r->target, sizeof(r->target), "%s", name);
    unsigned n = 0;
    if (hull_template_count(hulld.store, tenant, &n, &e) < 0) {
        resp_store_error(r, &e);
        return;
    }
    if (n >= hulld.o->tenant_templates) {
        resp_error(r, 429, "quota_exceeded", NULL, "tenant %s has %u templates, its quota", tenant,
                   hulld.o->tenant_templates);
        return;
    }
    json_object *old = hull_template_get(hulld.store, tenant, name, &e);
    if (old) {
        json_object_put(old);
        resp_error(r, 409, "conflict", "name", "template '%s' exists already", name);
        return;
    }
    if (hull_error_code(e) != ENOENT) {
        resp_store_error(r, &e);
        return;
    }
    hull_error_free(&e);
    cleanup_free char *spec = NULL;
    if (sandboxes_spec(json_object_get_string(sv), rq->caller->tenant, &spec, &e) < 0) {
        resp_from_error(r, &e);
        return;
    }
    cleanup_json json_object *sp = json_tokener_parse(spec);
    json_object *iso_v = hj_get(sp, "isolation");
    const char *iso = iso_v ? json_object_get_string(iso_v) : "container";
    /* A microVM sandbox's copy is its snapshot (RAM, so its files and
     * memory), taken by its keeper (sbx_vm_tpl.c) into the same directory. */
    /* Its inline files are in its /tmp now, as it changed them. */
    json_object_object_del(sp, "files");
    char id[40];
    daemon_new_id(id, sizeof(id), 't');
    json_object *stats = NULL;
    if (keep_copy(json_object_get_string(sv), rq->caller->tenant, id, &stats, &e) < 0) {
        resp_from_error(r, &e);
        return;
    }
    json_object *b = hj_get(stats, "bytes"), *fl = hj_get(stats, "files");
    struct hull_template_rec t = {
        .id = id,
        .tenant = tenant,
        .name = name,
        .isolation = iso,
        .spec = json_object_to_json_string_ext(sp, JSON_C_TO_STRING_PLAIN),
        .start_cmd = start,
        .ready_cmd = ready,
        .source = json_object_get_string(sv),
        .ready_timeout_ms = ready_ms,
        .bytes = b ? (uint64_t)json_object_get_int64(b) : 0,
        .files = fl ? (uint64_t)json_object_get_int64(fl) : 0,
    };
    json_object_put(stats);
    if (hull_template_insert(hulld.store, &t, &e) < 0) {
        remove_copy(id);
        if (hull_error_code(e) == EEXIST) {
            resp_error(r, 409, "conflict", "name", "%s", hull_error_msg(e));
            hull_error_free(&e);
        } else {
            resp_store_error(r, &e);
        }
        return;
    }
    json_object *row = hull_template_get(hulld.store, tenant, name, &e);
    if (row == NULL) {
        resp_store_error(r, &e);
        return;
    }
    resp_json(r, 201, show(row));
    json_object_put(row);
}

static void delete (const char *tenant, const char *name, struct resp *r)
{
    hull_error e = NULL;
    json_object *row = hull_template_get(hulld.store, tenant, name, &e);
    if (row == NULL) {
        resp_store_error(r, &e);
        return;
    }
    char id[64], from[4096], to[4096], gone[80];
    snprintf(id, sizeof(id), "%s", json_object_get_string(hj_get(row, "id")));
    json_object_put(row);
    snprintf(gone, sizeof(gone), ".del-%s", id);
    tpl_path(from, sizeof(from), id);
    tpl_path(to, sizeof(to), gone);
    pthread_rwlock_wrlock(&copies_mu);
    int ok = hull_template_delete(hulld.store, tenant, name, &e);
    bool moved = ok == 0 && rename(from, to) == 0;
    pthread_rwlock_unlock(&copies_mu);
    if (ok < 0) {
        resp_store_error(r, &e);
        return;
    }
    remove_copy(moved ? gone : id);
    json_object *o = json_object_new_object();
    json_object_object_add(o, "name", json_object_new_string(name));
    json_object_object_add(o, "deleted", json_object_new_boolean(1));
    resp_json(r, 200, o);
}

void api_templates(const struct request *rq, const char *name, struct resp *r)
{
    const char *tenant = rq->caller->tok.tenant;
    hull_error e = NULL;
    if (name == NULL && strcmp(rq->method, "POST") == 0) {
        create(rq, r);
    } else if (name == NULL) {
        json_object *rows = hull_template_list(hulld.store, tenant, &e);
        if (rows == NULL) {
            resp_store_error(r, &e);
            return;
        }
        json_object *a = json_object_new_array();
        for (size_t i = 0; i < json_object_array_length(rows); i++)
            json_object_array_add(a, show(json_object_array_get_idx(rows, i)));
        json_object_put(rows);
        json_object *o = json_object_new_object();
        json_object_object_add(o, "templates", a);
        resp_json(r, 200, o);
    } else if (strcmp(rq->method, "DELETE") == 0) {
        snprintf(r->target, sizeof(r->target), "%s", name);
        delete (tenant, name, r);
    } else {
        json_object *row = hull_template_get(hulld.store, tenant, name, &e);
        if (row == NULL) {
            resp_store_error(r, &e);
            return;
        }
        resp_json(r, 200, show(row));
        json_object_put(row);
    }
}

void templates_recover(void)
{
    char dir[4096];
    tpl_path(dir, sizeof(dir), NULL);
    hull_error e = NULL;
    if (hull_mkdir_p(dir, 0700, &e) < 0) {
        hull_warn("start-up: templates: %s", hull_error_msg(e));
        hull_error_free(&e);
        return;
    }
    cleanup_json json_object *ids = hull_template_ids(hulld.store, &e);
    if (ids == NULL) {
        hull_warn("start-up: templates: %s", hull_error_msg(e));
        hull_error_free(&e);
        return;
    }
    cleanup_dir DIR *d = opendir(dir);
    struct dirent *de;
    while (d && (de = readdir(d)) != NULL) {
        if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
            continue;
        bool named = false;
        for (size_t i = 0; !named && i < json_object_array_length(ids); i++) {
            json_object *v = hj_get(json_object_array_get_idx(ids, i), "id");
            named = v && strcmp(json_object_get_string(v), de->d_name) == 0;
        }
        if (!named) {
            hull_log(HULL_LOG_INFO, "start-up: removing template copy %s, named by no template",
                     de->d_name);
            remove_copy(de->d_name);
        }
    }
}

/* ---- a sandbox made from a template ---- */

void tpl_use_free(struct tpl_use *u)
{
    free(u->start);
    free(u->ready);
    if (u->vm && u->snap >= 0)
        close(u->snap);
    if (u->locked)
        pthread_rwlock_unlock(&copies_mu);
    memset(u, 0, sizeof(*u));
}

/* A microVM template's directory, for the create frame: its keeper
 * restores the snapshot in it and maps the RAM file beside it (whose RAM
 * keeper's socket is there too, so all its sandboxes share one copy). Held
 * shared until the VM is restored (tpl_apply, or tpl_use_free when the
 * create fails), so a delete meanwhile waits for it. */
static int open_snapshot(struct tpl_use *u, struct resp *r)
{
    char path[4200];
    tpl_path(path, sizeof(path), u->id);
    pthread_rwlock_rdlock(&copies_mu);
    u->locked = true;
    u->snap = open(path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    int e = u->snap < 0 || faccessat(u->snap, TPL_VM_SNAP, R_OK, 0) < 0 ? errno : 0;
    if (e) {
        resp_error(r, e == ENOENT ? 404 : 500, e == ENOENT ? "not_found" : "internal", "template",
                   "template '%s': its snapshot: %s", u->name, strerror(e));
        return -1;
    }
    return 0;
}

int tpl_expand(const struct caller *c, json_object **doc, struct tpl_use *u, struct resp *r)
{
    memset(u, 0, sizeof(*u));
    json_object *tv = hj_get(*doc, "template");
    if (tv == NULL)
        return 0;
    if (!json_object_is_type(tv, json_type_string)) {
        resp_error(r, 400, "invalid_request", "template", "template: a template's name");
        return -1;
    }
    json_object_object_foreach(*doc, key, val)
    {
        (void)val;
        if (strcmp(key, "template") != 0 && strcmp(key, "lifetime") != 0 &&
            strcmp(key, "metadata") != 0) {
            resp_error(r, 400, "invalid_request", key,
                       "%s: comes from the template (a sandbox made from one takes: template, "
                       "lifetime, metadata)",
                       key);
            return -1;
        }
    }
    hull_error e = NULL;
    const char *name = json_object_get_string(tv);
    cleanup_json json_object *row = hull_template_get(hulld.store, c->tok.tenant, name, &e);
    if (row == NULL) {
        resp_store_error(r, &e);
        return -1;
    }
    json_object *spec = json_tokener_parse(json_object_get_string(hj_get(row, "spec")));
    if (spec == NULL) {
        resp_error(r, 500, "internal", "template", "template '%s': its record is not JSON", name);
        return -1;
    }
    json_object_object_del(spec, "cmd");
    static const char *const keep[] = {"lifetime", "metadata", NULL};
    for (const char *const *k = keep; *k; k++) {
        json_object *v = hj_get(*doc, *k);
        if (v)
            json_object_object_add(spec, *k, json_object_get(v));
    }
    json_object *sc = hj_get(row, "start_cmd"), *rc = hj_get(row, "ready_cmd");
    json_object *ms = hj_get(row, "ready_timeout_ms");
    u->on = true;
    snprintf(u->name, sizeof(u->name), "%s", name);
    snprintf(u->id, sizeof(u->id), "%s", json_object_get_string(hj_get(row, "id")));
    u->start = sc ? strdup(json_object_get_string(sc)) : NULL;
    u->ready = rc ? strdup(json_object_get_string(rc)) : NULL;
    u->ready_ms = ms ? (uint64_t)json_object_get_int64(ms) : TPL_READY_DEFAULT_MS;
    json_object *iso = hj_get(row, "isolation");
    u->vm = iso && strcmp(json_object_get_string(iso), "microvm") == 0;
    u->snap = -1;
    json_object_put(*doc);
    *doc = spec;
    if ((sc && u->start == NULL) || (rc && u->ready == NULL)) {
        resp_error(r, 500, "internal", NULL, "out of memory");
        return -1;
    }
    return u->vm ? open_snapshot(u, r) : 0;
}

/* The template's copy into the new sandbox's /tmp. */
static int load(struct sbx *s, const struct tpl_use *u, hull_error *err)
{
    char dir[4096];
    tpl_path(dir, sizeof(dir), u->id);
    pthread_rwlock_rdlock(&copies_mu);
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    int ok = fd < 0 ? hull_error_set(err, ENOENT, "template '%s' was deleted", u->name) : 0;
    struct frame f;
    if (ok == 0)
        ok = sandboxes_call(sbx_id(s), NULL, "tpl_load", json_object_new_object(), fd, &f, err);
    pthread_rwlock_unlock(&copies_mu);
    if (fd >= 0)
        close(fd);
    if (ok == 0)
        frame_free(&f);
    return ok;
}

/* start_cmd as a background process, as POST .../processes would. */
static int start_cmd(struct sbx *s, const struct tpl_use *u, const struct request *rq, char *pid,
                     size_t pid_len, struct resp *r)
{
    char body[8192 + 16];
    int n = snprintf(body, sizeof(body), "{\"cmd\":%s}", u->start);
    if (n < 0 || (size_t)n >= sizeof(body)) {
        resp_error(r, 400, "invalid_request", "start_cmd", "start_cmd: too long");
        return -1;
    }
    struct request sub = *rq;
    sub.method = "POST";
    sub.body = body;
    sub.len = (size_t)n;
    struct resp sr = {0};
    sbx_processes(s, &sub, "", &sr);
    if (sr.status != 201) {
        /* Its error, as it is, for the sandbox (the audit's target). */
        memcpy(sr.target, r->target, sizeof(sr.target));
        *r = sr;
        return -1;
    }
    json_object *id = hj_get(sr.body, "id");
    snprintf(pid, pid_len, "%s", id ? json_object_get_string(id) : "");
    json_object_put(sr.body);
    return 0;
}

/* ready_cmd until it exits 0 (verdict ok), within u->ready_ms. */
static int ready_cmd(struct sbx *s, const struct tpl_use *u, struct resp *r)
{
    uint64_t deadline = hull_monotonic_ns() + u->ready_ms * 1000000ull;
    unsigned pause_ms = 20;
    char last[512] = "it never ran";
    for (;;) {
        uint64_t now = hull_monotonic_ns();
        if (now >= deadline)
            break;
        if (hulld.draining) {
            resp_shutting_down(r, "hulld is shutting down");
            return -1;
        }
        uint64_t left_ms = (deadline - now) / 1000000ull + 1;
        char body[8192 + 64];
        int n =
            snprintf(body, sizeof(body), "{\"cmd\":%s,\"limits\":{\"wall_time\":%llu}}", u->ready,
                     (unsigned long long)((left_ms < 10000 ? left_ms : 10000) + 999) / 1000);
        if (n < 0 || (size_t)n >= sizeof(body)) {
            resp_error(r, 400, "invalid_request", "ready_cmd", "ready_cmd: too long");
            return -1;
        }
        struct frame f;
        hull_error e = NULL;
        if (sbx_call(s, "exec", NULL, body, (size_t)n, true, &f, &e) < 0) {
            resp_from_error(r, &e);
            return -1;
        }
        cleanup_json json_object *res = json_tokener_parse(f.data);
        frame_free(&f);
        json_object *v = hj_get(res, "verdict"), *x = hj_get(res, "exit_code");
        const char *verdict = v ? json_object_get_string(v) : "?";
        int code = x ? json_object_get_int(x) : -1;
        if (strcmp(verdict, "ok") == 0 && code == 0)
            return 0;
        json_object *se = hj_get(res, "stderr");
        snprintf(last, sizeof(last), "its last run: verdict %s, exit code %d, stderr '%.200s'",
                 verdict, code, se ? json_object_get_string(se) : "");
        struct timespec ts = {0, (long)pause_ms * 1000000L};
        nanosleep(&ts, NULL);
        pause_ms = pause_ms < 200 ? pause_ms * 2 : 200;
    }
    resp_error(r, 504, "not_ready", "ready_cmd",
               "template '%s': ready_cmd did not exit 0 within %llu ms (%s)", u->name,
               (unsigned long long)u->ready_ms, last);
    return -1;
}

int tpl_apply(struct sbx *s, struct tpl_use *u, const struct request *rq, json_object **extra,
              struct resp *r)
{
    hull_error e = NULL;
    *extra = NULL;
    if (u->locked) { /* restored: a delete may go on */
        pthread_rwlock_unlock(&copies_mu);
        u->locked = false;
    }
    /* A microVM sandbox was restored from the snapshot by its create. */
    if (!u->vm && load(s, u, &e) < 0) {
        hull_error_prefix(&e, "template '%s'", u->name);
        resp_from_error(r, &e);
        return -1;
    }
    char pid[64] = "";
    if (u->start && start_cmd(s, u, rq, pid, sizeof(pid), r) < 0)
        return -1;
    if (u->ready && ready_cmd(s, u, r) < 0)
        return -1;
    *extra = json_object_new_object();
    json_object_object_add(*extra, "template", json_object_new_string(u->name));
    if (pid[0])
        json_object_object_add(*extra, "start_process", json_object_new_string(pid));
    return 0;
}
