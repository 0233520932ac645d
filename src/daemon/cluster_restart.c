/* hulld --cluster: microVM sandboxes made with "restart": "from-snapshot"
 * come back on another node when theirs goes down (cluster.h,
 * docs/cluster.md "Restart from a snapshot").
 *
 * The owning node saves each such sandbox's snapshot into
 * --cluster-snapshots DIR (storage every node reads: one directory on one
 * machine, a shared file system in a fleet) as DIR/ID.snap every
 * --cluster-snapshot-every seconds (a paused one: its file, copied once),
 * and marks the record in Redis with the time. One thread per node also
 * watches the fleet: a record of a down node with restart is claimed in
 * one Lua script (hull_cluster_claim: exactly one node gets it) by a node
 * that has room, which copies the snapshot into its own state directory
 * and serves it again through a keeper that adopts and resumes it: same
 * sandbox id, a new VM, "state": "restored". What the sandbox did after
 * its last snapshot is lost (at most one period, plus the time a snapshot
 * takes). */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "cluster.h"
#include "daemon.h"
#include "move.h"
#include "procs.h"
#include "sbx_metrics.h"
#include "service/cluster.h"
#include "util/error.h"
#include "util/json.h"
#include "util/log.h"

#define RESTART_MAX 4096

/* A restartable sandbox this node runs. */
struct tracked {
    char id[40];
    char from[HULL_NODE_NAME_MAX + 1]; /* restored from this node, or "" */
    time_t restored_at, snap_at;
};

static struct {
    pthread_mutex_t mu;
    struct tracked *t[RESTART_MAX];
    pthread_t thread;
    bool running;
    volatile int stop;
} rs = {.mu = PTHREAD_MUTEX_INITIALIZER};

/* What the create this thread serves asked for (cluster_route.c), taken by
 * cluster_sandbox_added (one connection, one thread). */
static _Thread_local struct {
    bool want;
    unsigned lifetime_s;
} asked;

int cluster_restart_take(json_object *doc, bool local, struct resp *r)
{
    json_object *v = hj_get(doc, "restart");
    asked.want = false;
    asked.lifetime_s = 0;
    if (v == NULL) {
        json_object_object_del(doc, "restart"); /* an explicit null: never */
        return 0;
    }
    const char *s = json_object_is_type(v, json_type_string) ? json_object_get_string(v) : "";
    if (strcmp(s, "never") == 0) {
        json_object_object_del(doc, "restart");
        return 0;
    }
    if (strcmp(s, "from-snapshot") != 0) {
        resp_error(r, 400, "invalid_request", "restart",
                   "restart: must be \"from-snapshot\" or \"never\"");
        return -1;
    }
    json_object *iso = hj_get(doc, "isolation");
    if (iso == NULL || strcmp(json_object_get_string(iso), "microvm") != 0) {
        resp_error(r, 400, "invalid_request", "restart",
                   "restart: only a microVM sandbox (\"isolation\": \"microvm\") is restored "
                   "from a snapshot; a container sandbox is lost with its node");
        return -1;
    }
    if (hulld.o->cluster_snapshots == NULL) {
        resp_error(r, 400, "invalid_request", "restart",
                   "restart: node %s has no --cluster-snapshots directory", cluster_self());
        return -1;
    }
    if (!local)
        return 0; /* forwarded with it: its node takes it */
    json_object *life = hj_get(doc, "lifetime");
    uint64_t ms = 0;
    hull_error e = NULL;
    if (life && hull_json_duration_ms(life, "lifetime", &ms, &e) < 0)
        hull_error_free(&e); /* the create's own check says so */
    asked.lifetime_s = (unsigned)(ms / 1000);
    asked.want = true;
    json_object_object_del(doc, "restart");
    return 0;
}

bool cluster_restart_wanted(unsigned *lifetime_s)
{
    bool w = asked.want;
    *lifetime_s = asked.lifetime_s;
    asked.want = false;
    return w;
}

static void snap_name(const char *id, char *out, size_t len)
{
    snprintf(out, len, "%s.snap", id);
}

static struct tracked **slot(const char *id)
{
    for (size_t i = 0; i < RESTART_MAX; i++)
        if (rs.t[i] && strcmp(rs.t[i]->id, id) == 0)
            return &rs.t[i];
    return NULL;
}

static void track(const char *id, const char *from)
{
    struct tracked *t = calloc(1, sizeof(*t));
    if (t == NULL)
        return;
    snprintf(t->id, sizeof(t->id), "%s", id);
    snprintf(t->from, sizeof(t->from), "%s", from ? from : "");
    t->restored_at = from ? time(NULL) : 0;
    pthread_mutex_lock(&rs.mu);
    struct tracked **p = slot(id);
    for (size_t i = 0; p == NULL && i < RESTART_MAX; i++)
        if (rs.t[i] == NULL)
            p = &rs.t[i];
    if (p) {
        free(*p);
        *p = t;
    } else {
        hull_warn("sandbox %s: more than %d restartable sandboxes: not saved", id, RESTART_MAX);
        free(t);
    }
    pthread_mutex_unlock(&rs.mu);
}

void cluster_restart_track(const char *id)
{
    if (hulld.o->cluster_snapshots)
        track(id, NULL);
}

void cluster_restart_untrack(const char *id)
{
    if (hulld.o->cluster_snapshots == NULL)
        return;
    pthread_mutex_lock(&rs.mu);
    struct tracked **p = slot(id);
    if (p) {
        free(*p);
        *p = NULL;
    }
    pthread_mutex_unlock(&rs.mu);
}

void cluster_restart_forget(const char *id)
{
    if (hulld.o->cluster_snapshots == NULL)
        return;
    cluster_restart_untrack(id);
    /* Gone for good (deleted, expired, forgotten while lost): its
     * snapshot too. */
    char name[64], path[4200];
    snap_name(id, name, sizeof(name));
    snprintf(path, sizeof(path), "%s/%s", hulld.o->cluster_snapshots, name);
    if (unlink(path) < 0 && errno != ENOENT)
        hull_warn("sandbox %s: %s: %s", id, path, strerror(errno));
    /* A save its keeper never finished (it died during one). */
    snprintf(path, sizeof(path), "%s/%s.part", hulld.o->cluster_snapshots, name);
    if (unlink(path) < 0 && errno != ENOENT)
        hull_warn("sandbox %s: %s: %s", id, path, strerror(errno));
}

static void rfc3339(time_t t, char *out, size_t len)
{
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(out, len, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

void cluster_restart_annotate(json_object *o)
{
    json_object *idv = hj_get(o, "id"), *st = hj_get(o, "state");
    if (idv == NULL || hulld.o->cluster_snapshots == NULL)
        return;
    pthread_mutex_lock(&rs.mu);
    struct tracked **p = slot(json_object_get_string(idv)), t = p ? **p : (struct tracked){0};
    pthread_mutex_unlock(&rs.mu);
    if (p == NULL)
        return;
    char buf[40];
    json_object_object_add(o, "restart", json_object_new_string("from-snapshot"));
    if (t.snap_at) {
        rfc3339(t.snap_at, buf, sizeof(buf));
        json_object_object_add(o, "snapshot_at", json_object_new_string(buf));
    }
    if (t.from[0] == '\0')
        return;
    if (st && strcmp(json_object_get_string(st), "running") == 0)
        json_object_object_add(o, "state", json_object_new_string("restored"));
    json_object_object_add(o, "restored_from", json_object_new_string(t.from));
    rfc3339(t.restored_at, buf, sizeof(buf));
    json_object_object_add(o, "restored_at", json_object_new_string(buf));
}

/* ---- saving ---- */

static const char *field(json_object *rec, const char *k)
{
    json_object *v = hj_get(rec, k);
    return v ? json_object_get_string(v) : "";
}

/* The registry still gives sandbox id to this node. A node back from a
 * stop the others took for its end must not write over the snapshot of
 * the copy another node restored (fence, cluster.c, ends its own); nor
 * save without Redis, where that cannot be known. */
static bool still_mine(redisContext *c, const char *id)
{
    hull_error e = NULL;
    cleanup_json json_object *rec = c ? hull_cluster_sbx_get(c, id, &e) : NULL;
    hull_error_free(&e);
    return rec && strcmp(field(rec, "node"), cluster_self()) == 0;
}

static void save_all(redisContext *c)
{
    int dirfd = open(hulld.o->cluster_snapshots, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dirfd < 0) {
        hull_warn("cluster: --cluster-snapshots %s: %s", hulld.o->cluster_snapshots,
                  strerror(errno));
        return;
    }
    /* The ids copied first: the lock is never held across a snapshot. */
    cleanup_free char(*ids)[40] = calloc(RESTART_MAX, sizeof(*ids));
    size_t n = 0;
    pthread_mutex_lock(&rs.mu);
    for (size_t i = 0; ids && i < RESTART_MAX; i++)
        if (rs.t[i])
            snprintf(ids[n++], sizeof(ids[0]), "%s", rs.t[i]->id);
    pthread_mutex_unlock(&rs.mu);
    for (size_t k = 0; k < n && !rs.stop; k++) {
        if (!still_mine(c, ids[k]))
            continue;
        char name[64];
        snap_name(ids[k], name, sizeof(name));
        json_object *hdr = json_object_new_object();
        json_object_object_add(hdr, "name", json_object_new_string(name));
        struct frame f = {.fd = -1};
        hull_error e = NULL;
        if (sandboxes_call(ids[k], NULL, "csnap", hdr, dirfd, &f, &e) < 0) {
            if (hull_error_code(e) == EBUSY || hull_error_code(e) == ENOENT)
                hull_debug("sandbox %s: %s", ids[k], hull_error_msg(e));
            else
                hull_warn("sandbox %s: %s", ids[k], hull_error_msg(e));
            hull_error_free(&e);
            continue;
        }
        json_object *pv = hj_get(f.hdr, "paused"), *uv = hj_get(f.hdr, "unchanged");
        bool paused = pv && json_object_get_boolean(pv);
        bool unchanged = uv && json_object_get_boolean(uv);
        frame_free(&f);
        if (unchanged)
            continue;
        if (c && hull_cluster_snapshot_saved(c, ids[k], cluster_self(), paused, &e) < 0) {
            hull_warn("sandbox %s: %s", ids[k], hull_error_msg(e));
            hull_error_free(&e);
        }
        pthread_mutex_lock(&rs.mu);
        struct tracked **p = slot(ids[k]);
        if (p)
            (*p)->snap_at = time(NULL);
        pthread_mutex_unlock(&rs.mu);
        hull_debug("sandbox %s: snapshot saved%s", ids[k], paused ? " (paused)" : "");
    }
    close(dirfd);
}

/* ---- restoring ---- */

/* The VM's snapshot copied out of the cluster directory into
 * <state-dir>/microvm/<vm>.snap, where a keeper adopts it. */
static int stage(const char *id, const char *vm, char *dst, size_t len, hull_error *err)
{
    char dir[4096], name[64], src[4200];
    snprintf(dir, sizeof(dir), "%s/microvm", hulld.o->state_dir);
    if (mkdir(dir, 0700) < 0 && errno != EEXIST)
        return hull_error_errno(err, "%s", dir);
    snap_name(id, name, sizeof(name));
    snprintf(src, sizeof(src), "%s/%s", hulld.o->cluster_snapshots, name);
    snprintf(dst, len, "%s/%s.snap", dir, vm);
    int dirfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dirfd < 0)
        return hull_error_errno(err, "%s", dir);
    char file[80];
    snprintf(file, sizeof(file), "%s.snap", vm);
    int rc = csnap_copy(src, dirfd, file, err);
    close(dirfd);
    return rc;
}

/* Claimed rec of dead: served here again, or given up (its record goes). */
static void restore(redisContext *c, json_object *rec, const char *dead)
{
    const char *id = field(rec, "id"), *tenant = field(rec, "tenant");
    const char *meta = field(rec, "metadata");
    unsigned lifetime = (unsigned)strtoul(field(rec, "lifetime"), NULL, 10);
    bool paused = strcmp(field(rec, "paused"), "1") == 0;
    char vm[40] = "hulld-", snap[4200] = "";
    unsigned char b[8];
    hull_error e = NULL;
    int ok =
        getrandom(b, sizeof(b), 0) == (ssize_t)sizeof(b) ? 0 : hull_error_errno(&e, "getrandom");
    for (size_t i = 0; ok == 0 && i < sizeof(b); i++)
        snprintf(vm + 6 + 2 * i, 3, "%02x", b[i]);
    if (ok == 0)
        ok = stage(id, vm, snap, sizeof(snap), &e);
    if (ok == 0)
        ok = hull_sandbox_rec_insert(hulld.store, id, tenant, "microvm", vm,
                                     lifetime ? lifetime : 600, &e);
    if (ok == 0 && meta[0] && strcmp(meta, "{}") != 0)
        ok = hull_sandbox_rec_metadata(hulld.store, id, meta, &e);
    if (ok == 0 && paused)
        ok = hull_sandbox_rec_state(hulld.store, id, "paused", NULL, &e);
    if (ok == 0) {
        json_object *r = json_object_new_object();
        json_object_object_add(r, "id", json_object_new_string(id));
        json_object_object_add(r, "tenant", json_object_new_string(tenant));
        json_object_object_add(r, "container", json_object_new_string(vm));
        json_object_object_add(r, "lifetime_s", json_object_new_int64(lifetime ? lifetime : 600));
        json_object_object_add(r, "resume", json_object_new_boolean(!paused));
        ok = sandboxes_restore(r, &e);
        json_object_put(r);
    }
    if (ok < 0) {
        hull_log(HULL_LOG_ERROR, "sandbox %s (of node %s): not restored: %s", id, dead,
                 hull_error_msg(e));
        hull_error_free(&e);
        if (snap[0] && unlink(snap) < 0 && errno != ENOENT)
            hull_warn("sandbox %s: %s: %s", id, snap, strerror(errno));
        if (hull_sandbox_rec_state(hulld.store, id, "destroyed", "its restore failed", &e) < 0)
            hull_error_free(&e);
        if (hull_cluster_sbx_remove(c, cluster_self(), id, &e) < 0)
            hull_error_free(&e);
        cluster_restart_forget(id);
        return;
    }
    /* Recorded as a sandbox of this node (its record already names it). */
    cluster_placed(field(rec, "key"), strtoull(field(rec, "memory"), NULL, 10),
                   (unsigned)strtoul(field(rec, "cpu"), NULL, 10), meta[0] ? meta : NULL);
    asked.want = true;
    asked.lifetime_s = lifetime;
    cluster_sandbox_added(id, tenant, vm, "microvm");
    track(id, dead);
    hull_log(HULL_LOG_INFO, "sandbox %s: restored from node %s's snapshot (snap_at %s ms)%s", id,
             dead, field(rec, "snap_at"), paused ? ", paused" : "");
}

/* A down node's restartable sandboxes: claimed here when this node has
 * room and their snapshot exists; restored when the claim is ours. */
static void watch(redisContext *c)
{
    hull_error e = NULL;
    unsigned down_ms = hulld.o->node_down_after_s * 1000;
    cleanup_json json_object *ns = hull_cluster_nodes(c, down_ms, &e);
    for (size_t i = 0; ns && i < json_object_array_length(ns) && !rs.stop; i++) {
        json_object *n = json_object_array_get_idx(ns, i);
        const char *name = field(n, "name");
        if (strcmp(field(n, "state"), "down") != 0 || strcmp(name, cluster_self()) == 0)
            continue;
        char set[160];
        snprintf(set, sizeof(set), "hull:cluster:node:%s:sandboxes", name);
        cleanup_reply redisReply *ids = hull_redis_cmd(c, &e, "SMEMBERS", set, NULL);
        for (size_t j = 0; ids && ids->type == REDIS_REPLY_ARRAY && j < ids->elements; j++) {
            const char *id = hull_redis_str(ids->element[j]);
            cleanup_json json_object *rec = id ? hull_cluster_sbx_get(c, id, &e) : NULL;
            hull_error_free(&e);
            if (rec == NULL || strcmp(field(rec, "restart"), "from-snapshot") != 0)
                continue;
            char name_[64], path[4200], fit[HULL_NODE_NAME_MAX + 1];
            snap_name(id, name_, sizeof(name_));
            snprintf(path, sizeof(path), "%s/%s", hulld.o->cluster_snapshots, name_);
            struct hull_place_req q = {.pin = cluster_self(),
                                       .memory = strtoull(field(rec, "memory"), NULL, 10),
                                       .microvm = true};
            if (access(path, R_OK) < 0 || hull_cluster_place(ns, &q, fit, sizeof(fit), &e) < 0) {
                hull_error_free(&e); /* no snapshot yet, or no room here: not ours */
                continue;
            }
            int won = hull_cluster_claim(c, id, name, cluster_self(), down_ms, &e);
            if (won < 0) {
                hull_warn("cluster: %s", hull_error_msg(e));
                hull_error_free(&e);
            } else if (won == 1) {
                hull_log(HULL_LOG_INFO, "sandbox %s: claimed from down node %s", id, name);
                restore(c, rec, name);
            }
        }
        hull_error_free(&e);
    }
    if (ns == NULL)
        hull_error_free(&e); /* the heartbeat says Redis is away */
}

static void *restart_main(void *arg)
{
    (void)arg;
    redisContext *c = NULL;
    uint64_t every = hulld.o->cluster_snapshot_every_s, tick = 0;
    while (!rs.stop) {
        hull_error e = NULL;
        hull_redis_ensure(&c, hulld.o->cluster_url, 3000, &e);
        hull_error_free(&e);
        if (c)
            watch(c);
        if (++tick >= every) {
            save_all(c);
            tick = 0;
        }
        for (unsigned t = 0; t < 1000 && !rs.stop; t += 50)
            usleep(50000);
    }
    hull_redis_close(c);
    return NULL;
}

/* ---- a node back before it was restored elsewhere ---- */

char **cluster_restart_mine(redisContext *c)
{
    if (hulld.o->cluster_snapshots == NULL)
        return NULL;
    char set[160];
    snprintf(set, sizeof(set), "hull:cluster:node:%s:sandboxes", cluster_self());
    hull_error e = NULL;
    cleanup_reply redisReply *ids = hull_redis_cmd(c, &e, "SMEMBERS", set, NULL);
    size_t n = ids && ids->type == REDIS_REPLY_ARRAY ? ids->elements : 0, k = 0;
    char **out = calloc(n + 1, sizeof(*out));
    for (size_t i = 0; out && i < n; i++) {
        const char *id = hull_redis_str(ids->element[i]);
        cleanup_json json_object *rec = id ? hull_cluster_sbx_get(c, id, &e) : NULL;
        hull_error_free(&e);
        if (rec && strcmp(field(rec, "restart"), "from-snapshot") == 0)
            out[k++] = strdup(id);
    }
    hull_error_free(&e);
    return out;
}

void cluster_restart_orphans(redisContext *c, char **ids)
{
    for (size_t i = 0; ids && ids[i]; i++) {
        hull_error e = NULL;
        cleanup_json json_object *rec = hull_cluster_sbx_get(c, ids[i], &e);
        /* Forgotten by the registration (not claimed by another node in
         * the meantime): its sandbox died with this node's previous
         * hulld, so its snapshot goes. */
        if (rec == NULL && hull_error_code(e) == ENOENT) {
            hull_log(HULL_LOG_INFO, "sandbox %s: lost with this node's previous hulld", ids[i]);
            cluster_restart_forget(ids[i]);
        }
        hull_error_free(&e);
        free(ids[i]);
    }
    free(ids);
}

void cluster_restart_drop_moved(redisContext *c)
{
    struct sbx_brief *b = NULL;
    size_t n = sandboxes_brief(&b);
    for (size_t i = 0; i < n; i++) {
        hull_error e = NULL;
        cleanup_json json_object *rec = hull_cluster_sbx_get(c, b[i].id, &e);
        hull_error_free(&e);
        const char *node = rec ? field(rec, "node") : "";
        if (node[0] == '\0' || strcmp(node, cluster_self()) == 0)
            continue;
        /* Kept on this node's disk (paused) while it was down, and
         * restored by another node meanwhile: that one is the sandbox now. */
        hull_log(HULL_LOG_INFO,
                 "sandbox %s: restored on node %s while this node was down: "
                 "this copy is destroyed",
                 b[i].id, node);
        sandboxes_end(b[i].id, "restored on another node while this one was down");
    }
    free(b);
}

int cluster_restart_check(hull_error *err)
{
    const char *dir = hulld.o->cluster_snapshots;
    if (dir == NULL)
        return 0;
    /* Root's and private: snapshots hold the guests' memory. */
    if (mkdir(dir, 0700) < 0 && errno != EEXIST)
        return hull_error_errno(err, "--cluster-snapshots %s", dir);
    struct stat st;
    if (stat(dir, &st) < 0 || !S_ISDIR(st.st_mode))
        return hull_error_set(err, ENOTDIR, "--cluster-snapshots %s: not a directory", dir);
    /* Whoever else may put a file there chooses a sandbox this node
     * restores; refused as a state directory others may change is. */
    char real[4096];
    return hull_trusted_dir("--cluster-snapshots", dir, false, real, sizeof(real), err);
}

int cluster_restart_start(hull_error *err)
{
    if (hulld.o->cluster_snapshots == NULL)
        return 0;
    int rc = pthread_create(&rs.thread, NULL, restart_main, NULL);
    if (rc != 0) {
        errno = rc;
        return hull_error_errno(err, "cluster: restart thread");
    }
    rs.running = true;
    return 0;
}

void cluster_restart_stop(void)
{
    rs.stop = 1;
    if (rs.running)
        pthread_join(rs.thread, NULL);
    rs.running = false;
    pthread_mutex_lock(&rs.mu);
    for (size_t i = 0; i < RESTART_MAX; i++) {
        free(rs.t[i]);
        rs.t[i] = NULL;
    }
    pthread_mutex_unlock(&rs.mu);
}
