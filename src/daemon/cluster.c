/* hulld --cluster: this node in the fleet (cluster.h, docs/cluster.md).
 *
 * Two Redis connections: one for the heartbeat thread, one shared by
 * request threads under a mutex (each use is one or a few short commands).
 * A Redis that cannot be reached makes placement answer 503 and the node
 * miss heartbeats (so others see it down); local sandboxes keep working. */
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/statvfs.h>
#include <time.h>
#include <unistd.h>

#include "cluster.h"
#include "daemon.h"
#include "move.h"
#include "service/cluster.h"
#include "util/clock.h"
#include "util/error.h"
#include "util/json.h"
#include "util/log.h"

#define DEFAULT_MEMORY (256ull << 20) /* a sandbox's memory limit by default */
#define MAX_LOCAL      4096

static struct {
    bool on;
    struct hull_node_info info;
    json_object *labels; /* --node-label, then accelerator */
    char labels_text[4096];
    unsigned down_after_ms, beat_ms;
    pthread_mutex_t mu; /* the request threads' connection */
    redisContext *rc;
    pthread_t beat;
    bool beating;
    volatile int stop;
} cl = {.mu = PTHREAD_MUTEX_INITIALIZER};

/* This node's sandboxes, for sampling what they use. */
struct local_sbx {
    char id[40], container[64], key[512], tenant[72], isolation[16];
    uint64_t memory; /* reserved */
    unsigned cpu;
    uint64_t peak, cpu0, cpu1, t0, t1;
    unsigned samples;
    char *meta;   /* its metadata (JSON text), for anti-affinity; or NULL */
    bool restart; /* "restart": "from-snapshot" (cluster_restart.c) */
    unsigned lifetime_s;
};
static pthread_mutex_t local_mu = PTHREAD_MUTEX_INITIALIZER;
static struct local_sbx *local[MAX_LOCAL];

/* What placement decided for the create request this thread serves (one
 * connection, one thread: MHD's thread-per-connection model), consumed by
 * cluster_sandbox_added. */
static _Thread_local struct {
    bool set;
    char key[512];
    uint64_t memory;
    unsigned cpu;
    bool meta_set;
    char meta[8192]; /* metadata (JSON text); longer: not recorded (logged) */
} placed;

bool cluster_enabled(void)
{
    return cl.on;
}

const char *cluster_self(void)
{
    return cl.info.name;
}

const char *cluster_ca(void)
{
    return hulld.o ? hulld.o->cluster_ca : NULL;
}

int cluster_add_label(const char *kv)
{
    const char *eq = strchr(kv, '=');
    if (eq == NULL || eq == kv || eq - kv > 63 || strlen(eq + 1) > 255) {
        fprintf(stderr,
                "hulld: --node-label %s: must be KEY=VALUE (key up to 63, value up to "
                "255 characters)\n",
                kv);
        return -1;
    }
    if (cl.labels == NULL)
        cl.labels = json_object_new_object();
    char key[64];
    snprintf(key, sizeof(key), "%.*s", (int)(eq - kv), kv);
    json_object_object_add(cl.labels, key, json_object_new_string(eq + 1));
    return 0;
}

int cluster_check_options(const struct hulld_options *o)
{
    const char *msg = NULL;
    bool any = o->node_name || o->advertise || o->placement || o->node_capacity || o->cluster_ca ||
               o->cluster_secret || cl.labels || o->cluster_snapshots;
    hull_error e = NULL;
    if (o->cluster_url == NULL && any)
        msg = "--node, --advertise, --node-label, --node-capacity, --placement, --cluster-ca, "
              "--cluster-secret, --cluster-snapshots: only with --cluster";
    else if (o->cluster_url == NULL)
        return 0;
    else if (o->node_name == NULL || o->advertise == NULL || o->listen == NULL)
        msg = "--cluster: needs --node NAME, --listen HOST:PORT and --advertise HOST:PORT "
              "(other nodes forward requests to it)";
    else if (o->placement && strcmp(o->placement, "spread") != 0 &&
             strcmp(o->placement, "binpack") != 0)
        msg = "--placement: must be spread or binpack";
    else if (hull_node_name_check(o->node_name, &e) < 0) {
        fprintf(stderr, "hulld: --node: %s\n", hull_error_msg(e));
        hull_error_free(&e);
        return -1;
    }
    if (msg == NULL)
        return 0;
    fprintf(stderr, "hulld: %s\n", msg);
    return -1;
}

/* --node-capacity KEY=VALUE,...: over what was detected. */
static int parse_capacity(const char *list, struct hull_node_info *n, hull_error *err)
{
    for (const char *p = list; p && *p;) {
        size_t len = strcspn(p, ",");
        char item[128];
        snprintf(item, sizeof(item), "%.*s", (int)(len < sizeof(item) ? len : sizeof(item) - 1), p);
        char *eq = strchr(item, '=');
        uint64_t v = 0;
        if (eq)
            *eq++ = '\0';
        bool sized = eq && (strcmp(item, "memory") == 0 || strcmp(item, "disk") == 0);
        char *end = NULL;
        if (eq && sized && hull_parse_size(eq, &v) < 0)
            eq = NULL;
        else if (eq && !sized) {
            v = strtoull(eq, &end, 10);
            if (end == eq || *end || v > 1000000)
                eq = NULL;
        }
        if (eq == NULL)
            return hull_error_set(err, EINVAL,
                                  "--node-capacity: '%s': must be cpus=N, memory=SIZE, "
                                  "disk=SIZE or vm-slots=N",
                                  item);
        if (strcmp(item, "cpus") == 0)
            n->cpus = (unsigned)v;
        else if (strcmp(item, "memory") == 0)
            n->memory = v;
        else if (strcmp(item, "disk") == 0)
            n->disk = v;
        else if (strcmp(item, "vm-slots") == 0)
            n->vm_slots = (unsigned)v;
        else
            return hull_error_set(
                err, EINVAL, "--node-capacity: unknown '%s' (cpus, memory, disk, vm-slots)", item);
        p += len + (p[len] == ',');
    }
    return 0;
}

/* What this machine has: CPUs, memory, free disk under the state
 * directory, microVM slots (one per 512 MiB), the accelerator. */
static int detect(struct hull_node_info *n, hull_error *err)
{
    long cpus = sysconf(_SC_NPROCESSORS_ONLN);
    long pages = sysconf(_SC_PHYS_PAGES), psz = sysconf(_SC_PAGESIZE);
    n->cpus = cpus > 0 ? (unsigned)cpus : 1;
    n->memory = pages > 0 && psz > 0 ? (uint64_t)pages * (uint64_t)psz : 0;
    struct statvfs sv;
    if (statvfs(hulld.o->state_dir, &sv) == 0)
        n->disk = (uint64_t)sv.f_bavail * sv.f_frsize;
    n->vm_slots = (unsigned)(n->memory / (512ull << 20));
    /* Read-only probe of a device node's permissions: nothing is opened. */
    snprintf(n->accel, sizeof(n->accel), "%s",
             access("/dev/kvm", R_OK | W_OK) == 0 ? "kvm" : "tcg");
    return parse_capacity(hulld.o->node_capacity, n, err);
}

/* The shared connection, made on first use and after a failure; call with
 * cl.mu held. */
static redisContext *conn(hull_error *err)
{
    return hull_redis_ensure(&cl.rc, hulld.o->cluster_url, 3000, err);
}

/* ok = call, made with redisContext *c, on the shared connection; once
 * more on a new connection when that one broke (Redis restarted, or a
 * proxy dropped it): what failed was the connection, not the command. */
#define SHARED(ok, err, call)                                                                      \
    do {                                                                                           \
        pthread_mutex_lock(&cl.mu);                                                                \
        for (int try_ = 0; try_ < 2; try_++) {                                                     \
            if (try_)                                                                              \
                hull_error_free(err);                                                              \
            redisContext *c = conn(err);                                                           \
            (ok) = c ? (call) : -1;                                                                \
            if ((ok) >= 0 || c == NULL || !hull_redis_broken(c))                                   \
                break;                                                                             \
        }                                                                                          \
        pthread_mutex_unlock(&cl.mu);                                                              \
    } while (0)

/* ---- local sandboxes ---- */

static struct local_sbx **slot_of(const char *id)
{
    for (size_t i = 0; i < MAX_LOCAL; i++)
        if (local[i] && strcmp(local[i]->id, id) == 0)
            return &local[i];
    return NULL;
}

static void sample(struct local_sbx *l)
{
    uint64_t cpu = 0, mem = 0;
    hull_error e = NULL;
    if (l->container[0] == '\0' || hull_sandbox_usage(l->container, &cpu, &mem, &e) < 0) {
        hull_error_free(&e); /* not started or just gone: no sample */
        return;
    }
    uint64_t now = hull_monotonic_ns();
    if (l->samples == 0) {
        l->cpu0 = cpu;
        l->t0 = now;
    }
    l->cpu1 = cpu;
    l->t1 = now;
    if (mem > l->peak)
        l->peak = mem;
    l->samples++;
}

void cluster_sandbox_added(const char *id, const char *tenant, const char *container,
                           const char *isolation)
{
    if (!cl.on)
        return;
    struct local_sbx *l = calloc(1, sizeof(*l));
    if (l == NULL)
        return;
    snprintf(l->id, sizeof(l->id), "%s", id);
    snprintf(l->container, sizeof(l->container), "%s", container ? container : "");
    snprintf(l->key, sizeof(l->key), "%s", placed.set ? placed.key : "-");
    snprintf(l->tenant, sizeof(l->tenant), "%s", tenant);
    snprintf(l->isolation, sizeof(l->isolation), "%s", isolation ? isolation : "container");
    l->memory = placed.set ? placed.memory : DEFAULT_MEMORY;
    l->cpu = placed.set ? placed.cpu : 0;
    l->meta = placed.set && placed.meta_set ? strdup(placed.meta) : NULL;
    l->restart = cluster_restart_wanted(&l->lifetime_s);
    struct hull_cluster_sbx rec = {.id = id,
                                   .node = cl.info.name,
                                   .tenant = l->tenant,
                                   .key = l->key,
                                   .isolation = l->isolation,
                                   .memory = l->memory,
                                   .cpu = l->cpu,
                                   .metadata = l->meta,
                                   .restart = l->restart ? "from-snapshot" : NULL,
                                   .lifetime_s = l->lifetime_s};
    placed.set = false;
    if (l->restart)
        cluster_restart_track(id);
    pthread_mutex_lock(&local_mu);
    sample(l);
    struct local_sbx **free_slot = NULL;
    for (size_t i = 0; free_slot == NULL && i < MAX_LOCAL; i++)
        if (local[i] == NULL)
            free_slot = &local[i];
    if (free_slot)
        *free_slot = l;
    /* Recorded from a copy: l may go (removed) once the lock is let go. */
    cleanup_free char *meta = l->meta ? strdup(l->meta) : NULL;
    rec.metadata = meta;
    if (free_slot == NULL) {
        free(l->meta);
        free(l);
    }
    pthread_mutex_unlock(&local_mu);
    hull_error e = NULL;
    int ok;
    SHARED(ok, &e, hull_cluster_sbx_add(c, &rec, &e));
    if (ok < 0) {
        hull_warn("sandbox %s: not recorded in the cluster: %s", id, hull_error_msg(e));
        hull_error_free(&e);
    }
}

void cluster_sandbox_sample(const char *id)
{
    if (!cl.on)
        return;
    pthread_mutex_lock(&local_mu);
    struct local_sbx **p = slot_of(id);
    if (p)
        sample(*p);
    pthread_mutex_unlock(&local_mu);
}

/* Set while the heartbeat thread ends local copies the registry gives to
 * another node (fence): their removal touches neither the record nor the
 * shared snapshot, which are that node's now. */
static _Thread_local bool fencing;

void cluster_sandbox_removed(const char *id)
{
    if (!cl.on)
        return;
    pthread_mutex_lock(&local_mu);
    struct local_sbx **p = slot_of(id), *l = p ? *p : NULL;
    if (p)
        *p = NULL;
    pthread_mutex_unlock(&local_mu);
    if (fencing) {
        cluster_restart_untrack(id);
        if (l)
            free(l->meta);
        free(l);
        return;
    }
    hull_error e = NULL;
    int ok;
    SHARED(ok, &e, hull_cluster_sbx_remove(c, cl.info.name, id, &e));
    cluster_restart_forget(id);
    /* What it used, learned for the next sandbox of the same image: its
     * peak memory and its mean CPU (millicores) over the time it was
     * sampled. */
    if (ok == 0 && l && l->samples > 0 && l->peak > 0) {
        uint64_t dt = l->t1 > l->t0 ? l->t1 - l->t0 : 0;
        unsigned cpu = dt ? (unsigned)((l->cpu1 - l->cpu0) * 1000 / dt) : 0;
        SHARED(ok, &e, hull_cluster_predict_observe(c, l->key, l->peak, cpu, &e));
    }
    if (ok < 0) {
        hull_warn("sandbox %s: cluster: %s", id, hull_error_msg(e));
        hull_error_free(&e);
    }
    if (l)
        free(l->meta);
    free(l);
}

/* ---- heartbeat ---- */

/* Redis lost this node (restarted without persistence, flushed): it is
 * registered again with every sandbox it runs, as if it had just made
 * them. */
static int rejoin(redisContext *c, hull_error *err)
{
    if (hull_cluster_register(c, &cl.info, err) < 0)
        return -1;
    cleanup_free struct local_sbx *copy = calloc(MAX_LOCAL, sizeof(*copy));
    if (copy == NULL)
        return hull_error_set(err, ENOMEM, "out of memory");
    pthread_mutex_lock(&local_mu);
    size_t n = 0;
    for (size_t i = 0; i < MAX_LOCAL; i++)
        if (local[i]) {
            copy[n] = *local[i];
            copy[n++].meta = local[i]->meta ? strdup(local[i]->meta) : NULL;
        }
    pthread_mutex_unlock(&local_mu);
    int rc = 0;
    for (size_t i = 0; i < n; i++) {
        struct hull_cluster_sbx rec = {.id = copy[i].id,
                                       .node = cl.info.name,
                                       .tenant = copy[i].tenant,
                                       .key = copy[i].key,
                                       .isolation = copy[i].isolation,
                                       .memory = copy[i].memory,
                                       .cpu = copy[i].cpu,
                                       .metadata = copy[i].meta,
                                       .restart = copy[i].restart ? "from-snapshot" : NULL,
                                       .lifetime_s = copy[i].lifetime_s};
        if (rc == 0 && hull_cluster_sbx_add(c, &rec, err) < 0)
            rc = -1;
        free(copy[i].meta);
    }
    if (rc < 0)
        return -1;
    hull_log(HULL_LOG_INFO, "cluster: node %s registered again with its %zu sandboxes",
             cl.info.name, n);
    return 0;
}

/* Fencing. A node whose heartbeats stopped for longer than the others
 * wait before calling it down (hulld stopped, starved or cut off from
 * Redis while its keepers and VMs ran on) may find, back, that another
 * node restored some of its "restart": "from-snapshot" sandboxes
 * (hull_cluster_claim). Its own copies of those end at once, before the
 * next beat, so that a sandbox never runs twice for longer than that. */
static void fence(redisContext *c)
{
    fencing = true;
    cluster_restart_drop_moved(c);
    fencing = false;
}

static void *beat_main(void *arg)
{
    (void)arg;
    redisContext *c = NULL;
    bool failing = false;
    int64_t last_ok = hull_monotonic_ms();
    while (!cl.stop) {
        hull_error e = NULL;
        hull_redis_ensure(&c, hulld.o->cluster_url, 3000, &e);
        int ok = c ? hull_cluster_heartbeat(c, cl.info.name, &e) : -1;
        if (ok == 0)
            ok = rejoin(c, &e);
        else if (ok == 1)
            ok = 0;
        if (ok == 0)
            ok = hull_cluster_tokens_publish(c, cl.info.name, hulld.store, &e);
        if (ok == 0) {
            /* Half the down time: the others' clock (Redis's) and ours
             * may differ by a beat. */
            int64_t now = hull_monotonic_ms();
            if (now - last_ok > (int64_t)cl.down_after_ms / 2)
                fence(c);
            last_ok = now;
            cluster_drain_check(c); /* cluster_drain.c */
            cluster_moves_check(c);
        }
        if (ok < 0 && !failing)
            hull_warn("cluster: heartbeat: %s", hull_error_msg(e));
        else if (ok == 0 && failing)
            hull_log(HULL_LOG_INFO, "cluster: heartbeat: back");
        failing = ok < 0;
        hull_error_free(&e);
        pthread_mutex_lock(&local_mu);
        for (size_t i = 0; i < MAX_LOCAL; i++)
            if (local[i])
                sample(local[i]);
        pthread_mutex_unlock(&local_mu);
        for (unsigned t = 0; t < cl.beat_ms && !cl.stop; t += 50)
            usleep(50000);
    }
    hull_redis_close(c);
    return NULL;
}

int cluster_start(hull_error *err)
{
    const struct hulld_options *o = hulld.o;
    if (o->cluster_url == NULL)
        return 0;
    struct hull_node_info *n = &cl.info;
    snprintf(n->name, sizeof(n->name), "%s", o->node_name);
    snprintf(n->address, sizeof(n->address), "%s", o->advertise);
    if (detect(n, err) < 0 || cluster_secret_load(err) < 0 || cluster_restart_check(err) < 0)
        return -1;
    if (cl.labels == NULL)
        cl.labels = json_object_new_object();
    if (hj_get(cl.labels, "accelerator") == NULL)
        json_object_object_add(cl.labels, "accelerator", json_object_new_string(n->accel));
    snprintf(cl.labels_text, sizeof(cl.labels_text), "%s",
             json_object_to_json_string_ext(cl.labels, JSON_C_TO_STRING_PLAIN));
    n->labels = cl.labels_text;
    n->placement = o->placement ? o->placement : "spread";
    cl.down_after_ms = o->node_down_after_s * 1000;
    /* Three beats at least within the time after which a node is down. */
    cl.beat_ms = cl.down_after_ms / 3 < 1000 ? cl.down_after_ms / 3 : 1000;
    redisContext *c = hull_redis_connect(o->cluster_url, 3000, err);
    if (c == NULL)
        return hull_error_prefix(err, "--cluster");
    char **mine = cluster_restart_mine(c);
    if (hull_cluster_register(c, n, err) < 0 ||
        hull_cluster_tokens_publish(c, cl.info.name, hulld.store, err) < 0) {
        for (size_t i = 0; mine && mine[i]; i++)
            free(mine[i]);
        free(mine);
        hull_redis_close(c);
        return hull_error_prefix(err, "--cluster");
    }
    cluster_restart_orphans(c, mine);
    cluster_restart_drop_moved(c); /* before cl.on: its removal touches no record */
    cl.rc = c;
    cl.on = true;
    int rc = pthread_create(&cl.beat, NULL, beat_main, NULL);
    if (rc != 0) {
        errno = rc;
        return hull_error_errno(err, "cluster: heartbeat thread");
    }
    cl.beating = true;
    if (cluster_restart_start(err) < 0)
        return -1;
    hull_log(HULL_LOG_INFO,
             "cluster: node %s (%s): %u CPUs, %" PRIu64 " MiB, %u microVM slots, %s, %s placement",
             n->name, n->address, n->cpus, n->memory >> 20, n->vm_slots, n->accel, n->placement);
    return 0;
}

void cluster_stop(void)
{
    if (!cl.on)
        return;
    cluster_restart_stop();
    cl.stop = 1;
    if (cl.beating)
        pthread_join(cl.beat, NULL);
    cl.beating = false;
    hull_error e = NULL;
    int ok;
    SHARED(ok, &e, hull_cluster_leave(c, cl.info.name, &e));
    if (ok < 0) {
        hull_warn("cluster: leave: %s", hull_error_msg(e));
        hull_error_free(&e);
    }
    pthread_mutex_lock(&cl.mu);
    hull_redis_close(cl.rc);
    cl.rc = NULL;
    pthread_mutex_unlock(&cl.mu);
    cl.on = false;
    json_object_put(cl.labels);
    cl.labels = NULL;
}

/* ---- what others see ---- */

void cluster_annotate(json_object *o)
{
    if (cl.on && o) {
        json_object_object_add(o, "node", json_object_new_string(cl.info.name));
        cluster_restart_annotate(o);
    }
}

int cluster_token_verify(const char *token, struct hull_token_info *info, hull_error *err)
{
    if (!cl.on)
        return hull_error_set(err, EACCES, "invalid token");
    int ok;
    SHARED(ok, err, hull_cluster_token_verify(c, token, info, err));
    return ok;
}

/* The nodes, under the shared connection: NULL with err. */
static json_object *nodes(hull_error *err)
{
    json_object *a = NULL;
    int ok;
    SHARED(ok, err, (a = hull_cluster_nodes(c, cl.down_after_ms, err)) ? 0 : -1);
    return ok < 0 ? NULL : a;
}

json_object *cluster_nodes_now(hull_error *err)
{
    return nodes(err);
}

void cluster_placed(const char *key, uint64_t memory, unsigned cpu, const char *metadata)
{
    placed.meta_set = metadata && strlen(metadata) < sizeof(placed.meta);
    if (metadata && !placed.meta_set)
        hull_warn("cluster: metadata over %zu bytes: not recorded (anti-affinity does not see it)",
                  sizeof(placed.meta) - 1);
    snprintf(placed.meta, sizeof(placed.meta), "%s", placed.meta_set ? metadata : "");
    snprintf(placed.key, sizeof(placed.key), "%s", key);
    placed.memory = memory;
    placed.cpu = cpu;
    placed.set = true;
}

json_object *cluster_sbx_all_now(hull_error *err)
{
    json_object *a = NULL;
    int ok;
    SHARED(ok, err, (a = hull_cluster_sbx_all(c, NULL, err)) ? 0 : -1);
    return ok < 0 ? NULL : a;
}

json_object *cluster_sbx_record(const char *id, hull_error *err)
{
    json_object *o = NULL;
    int ok;
    SHARED(ok, err, (o = hull_cluster_sbx_get(c, id, err)) ? 0 : -1);
    return ok < 0 ? NULL : o;
}

int cluster_sbx_forget(const char *node, const char *id, hull_error *err)
{
    int ok;
    SHARED(ok, err, hull_cluster_sbx_remove(c, node, id, err));
    if (ok == 0)
        cluster_restart_forget(id);
    return ok;
}

int cluster_prediction(const char *key, uint64_t *memory, unsigned *cpu, unsigned *samples,
                       hull_error *err)
{
    int ok;
    SHARED(ok, err, hull_cluster_predict_get(c, key, memory, cpu, samples, err));
    return ok;
}

static void unavailable(struct resp *r, hull_error *e)
{
    resp_error(r, 503, "cluster_unavailable", NULL, "%s", hull_error_msg(*e));
    r->retry_after = 2;
    hull_error_free(e);
}

void api_nodes(const struct request *rq, struct resp *r)
{
    (void)rq;
    if (!cl.on) {
        resp_error(r, 404, "not_found", NULL, "hulld is not part of a cluster (hulld --cluster)");
        return;
    }
    hull_error e = NULL;
    json_object *a = nodes(&e);
    if (a == NULL) {
        unavailable(r, &e);
        return;
    }
    json_object *o = json_object_new_object();
    json_object_object_add(o, "self", json_object_new_string(cl.info.name));
    json_object_object_add(o, "down_after", json_object_new_int((int)(cl.down_after_ms / 1000)));
    json_object_object_add(o, "nodes", a);
    resp_json(r, 200, o);
}

/* The node named name in nodes, or NULL. */
static json_object *node_named(json_object *a, const char *name)
{
    for (size_t i = 0; a && i < json_object_array_length(a); i++) {
        json_object *n = json_object_array_get_idx(a, i), *v = hj_get(n, "name");
        if (v && strcmp(json_object_get_string(v), name) == 0)
            return n;
    }
    return NULL;
}

static bool no_metadata(void *cls, const char *key, const char *value)
{
    (void)value;
    bool *filtered = cls;
    *filtered = *filtered || strncmp(key, "metadata.", 9) == 0;
    return !*filtered;
}

void cluster_list_merge(const struct request *rq, json_object *list, const char *tenant)
{
    if (!cl.on)
        return;
    json_object *arr = hj_get(list, "sandboxes");
    for (size_t i = 0; arr && i < json_object_array_length(arr); i++)
        cluster_annotate(json_object_array_get_idx(arr, i));
    bool filtered = false;
    if (rq->query_each)
        rq->query_each(rq->conn, no_metadata, &filtered);
    if (filtered)
        return;
    hull_error e = NULL;
    cleanup_json json_object *ns = nodes(&e);
    cleanup_json json_object *remote = NULL;
    int ok = -1;
    if (ns)
        SHARED(ok, &e, (remote = hull_cluster_sbx_all(c, cl.info.name, &e)) ? 0 : -1);
    (void)ok;
    if (remote == NULL || arr == NULL) {
        /* This node's own are listed: the others' cannot be now. */
        hull_warn("cluster: listing other nodes' sandboxes: %s", e ? hull_error_msg(e) : "?");
        hull_error_free(&e);
        return;
    }
    for (size_t i = 0; i < json_object_array_length(remote); i++) {
        json_object *s = json_object_array_get_idx(remote, i);
        json_object *t = hj_get(s, "tenant"), *nn = hj_get(s, "node");
        if (tenant && (t == NULL || strcmp(json_object_get_string(t), tenant) != 0))
            continue;
        json_object *node = nn ? node_named(ns, json_object_get_string(nn)) : NULL;
        json_object *st = node ? hj_get(node, "state") : NULL;
        bool up = st && strcmp(json_object_get_string(st), "up") == 0;
        json_object *o = json_object_new_object();
        static const char *const keep[] = {"id", "node", "tenant", "isolation"};
        for (size_t k = 0; k < 4; k++) {
            json_object *v = hj_get(s, keep[k]);
            if (v)
                json_object_object_add(o, keep[k], json_object_get(v));
        }
        json_object *rs_ = hj_get(s, "state");
        bool restored = rs_ && strcmp(json_object_get_string(rs_), "restored") == 0;
        json_object_object_add(
            o, "state", json_object_new_string(up ? (restored ? "restored" : "running") : "lost"));
        json_object_array_add(arr, o);
    }
}
