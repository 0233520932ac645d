/* The table of live sandboxes (sandboxes.c's API works on it): entries
 * counted by reference, each with its keeper connections, and the calls
 * that go to a keeper. The table lock guards the list, the counts and each
 * entry's lifetime; a sandbox's op lock puts its keeper requests in order. */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "cluster.h"
#include "daemon.h"
#include "ports.h"
#include "procs.h"
#include "sbx_metrics.h"
#include "sbx_table.h"
#include "util/clock.h"
#include "util/error.h"
#include "util/json.h"

static pthread_mutex_t tab_mu = PTHREAD_MUTEX_INITIALIZER;
static struct sbx *table;

static void unref(struct sbx *s)
{
    pthread_mutex_lock(&tab_mu);
    bool last = --s->refs == 0;
    pthread_mutex_unlock(&tab_mu);
    if (!last)
        return;
    if (s->sock >= 0)
        close(s->sock);
    if (s->kill_fd >= 0)
        close(s->kill_fd);
    if (s->attach_sock >= 0)
        close(s->attach_sock);
    pthread_mutex_destroy(&s->attach_mu);
    if (s->pid > 0)
        waitpid(s->pid, NULL, 0);
    pthread_mutex_destroy(&s->op);
    free(s->spec);
    free(s);
}

static struct sbx *find_locked(const char *id, const char *tenant)
{
    struct sbx *s = table;
    while (s && (s->ending || strcmp(s->id, id) != 0 || (tenant && strcmp(s->tenant, tenant) != 0)))
        s = s->next;
    if (s)
        s->refs++;
    return s;
}

struct sbx *sbx_find(const char *id, const char *tenant)
{
    pthread_mutex_lock(&tab_mu);
    struct sbx *s = find_locked(id, tenant);
    pthread_mutex_unlock(&tab_mu);
    return s;
}

struct sbx *sbx_find_to_end(const char *id)
{
    pthread_mutex_lock(&tab_mu);
    struct sbx *s = find_locked(id, NULL);
    if (s)
        s->ending = true;
    pthread_mutex_unlock(&tab_mu);
    return s;
}

bool sandboxes_here(const char *id)
{
    bool has = false;
    pthread_mutex_lock(&tab_mu);
    for (struct sbx *s = table; s && !has; s = s->next)
        has = strcmp(s->id, id) == 0;
    pthread_mutex_unlock(&tab_mu);
    return has;
}

void sbx_unlink(struct sbx *s)
{
    bool listed = false;
    pthread_mutex_lock(&tab_mu);
    for (struct sbx **p = &table; *p; p = &(*p)->next)
        if (*p == s) {
            *p = s->next;
            s->refs--; /* the table's reference */
            listed = true;
            break;
        }
    pthread_mutex_unlock(&tab_mu);
    if (listed)
        cluster_sandbox_removed(s->id);
}

struct sbx *sbx_new(const char *id, const char *tenant, const char *container)
{
    struct sbx *s = calloc(1, sizeof(*s));
    if (s == NULL)
        return NULL;
    s->sock = s->attach_sock = s->kill_fd = -1;
    s->pid = -1;
    s->refs = 1; /* the caller's, until the table has it */
    pthread_mutex_init(&s->op, NULL);
    pthread_mutex_init(&s->attach_mu, NULL);
    snprintf(s->id, sizeof(s->id), "%s", id);
    snprintf(s->tenant, sizeof(s->tenant), "%s", tenant);
    snprintf(s->container, sizeof(s->container), "%s", container);
    return s;
}

void sbx_table_insert_locked(struct sbx *s)
{
    s->refs++;
    s->next = table;
    table = s;
}

void sbx_table_push(struct sbx *s)
{
    pthread_mutex_lock(&tab_mu);
    sbx_table_insert_locked(s);
    pthread_mutex_unlock(&tab_mu);
}

bool sbx_listed(struct sbx *s)
{
    bool listed = false;
    pthread_mutex_lock(&tab_mu);
    for (struct sbx *t = table; t; t = t->next)
        listed = listed || (t == s && !t->ending);
    pthread_mutex_unlock(&tab_mu);
    return listed;
}

struct sbx *sbx_table_victim(bool all, uint64_t now)
{
    struct sbx *victim = NULL;
    pthread_mutex_lock(&tab_mu);
    for (struct sbx *s = table; s && !victim; s = s->next) {
        uint64_t used = __atomic_load_n(&s->last_used_ns, __ATOMIC_RELAXED);
        bool idle = used < now && now - used > (uint64_t)s->lifetime_s * 1000000000ull;
        if (s->ending)
            continue; /* its ender destroys it */
        if (all || s->gone || idle) {
            /* Busy right now is not idle: its request will touch it. */
            if (!all && pthread_mutex_trylock(&s->op) != 0)
                continue;
            if (!all)
                pthread_mutex_unlock(&s->op);
            victim = s;
            s->refs++;
        }
    }
    pthread_mutex_unlock(&tab_mu);
    return victim;
}

unsigned sandboxes_active(void)
{
    unsigned n = 0;
    pthread_mutex_lock(&tab_mu);
    for (struct sbx *s = table; s; s = s->next)
        n++;
    pthread_mutex_unlock(&tab_mu);
    return n;
}

static unsigned tenant_count(const char *tenant)
{
    unsigned n = sbx_arriving_locked(tenant);
    for (struct sbx *s = table; s; s = s->next)
        n += strcmp(s->tenant, tenant) == 0;
    return n;
}

void sbx_table_lock(void)
{
    pthread_mutex_lock(&tab_mu);
}

void sbx_table_unlock(void)
{
    pthread_mutex_unlock(&tab_mu);
}

unsigned sbx_tenant_count_locked(const char *tenant)
{
    return tenant_count(tenant);
}

int sbx_keeper_send(struct sbx *s, const char *op, json_object *extra, const void *data, size_t len,
                    int fd, struct frame *reply, hull_error *err)
{
    if (s->gone)
        return hull_error_set(err, ENOENT, "sandbox '%s' is gone", s->id);
    json_object *hdr = extra ? extra : json_object_new_object();
    json_object_object_add(hdr, "op", json_object_new_string(op));
    int r = frame_send(s->sock, hdr, data, len, fd);
    json_object_put(hdr);
    if (r < 0 && errno == EMSGSIZE) /* nothing was sent: the stream is whole */
        return hull_error_set(err, EFBIG,
                              "sandbox '%s': a request of %zu MiB, more than one "
                              "message carries (%u MiB)",
                              s->id, len >> 20, FRAME_MAX >> 20);
    if (r < 0 || frame_recv(s->sock, reply) < 0) {
        /* The stream is broken (the keeper died, or sent what cannot be a
         * frame): the keeper, if alive, is stopped for good, so that nothing
         * of the sandbox runs on unseen and its reaping cannot hang. Killed
         * before it is marked gone: a handler that sees gone may reap it. */
        shutdown(s->sock, SHUT_RDWR);
        if (s->pid > 0)
            kill(s->pid, SIGKILL); /* our child, not yet reaped: the pid is still its */
        s->gone = true;
        return hull_error_set(err, ESRCH, "sandbox '%s': its keeper process died", s->id);
    }
    if (frame_error(reply, "keeper failed", err) < 0) {
        frame_free(reply);
        return -1;
    }
    if (strcmp(op, "csnap") == 0)
        return 0; /* the cluster's periodic snapshot is no use of it */
    __atomic_store_n(&s->last_used_ns, hull_monotonic_ns(), __ATOMIC_RELAXED);
    s->last_used = time(NULL);
    return 0;
}

int sandboxes_call(const char *id, const char *tenant, const char *op, json_object *hdr, int fd,
                   struct frame *reply, hull_error *err)
{
    struct sbx *s = sbx_find(id, tenant);
    if (s == NULL) {
        json_object_put(hdr);
        return hull_error_set(err, ENOENT, "sandbox '%s' not found", id);
    }
    pthread_mutex_lock(&s->op);
    int ok = s->gone ? hull_error_set(err, ENOENT, "sandbox '%s' is gone", id)
                     : sbx_keeper_send(s, op, hdr, NULL, 0, fd, reply, err);
    if (s->gone && ok < 0 && hull_error_code(*err) == ENOENT)
        json_object_put(hdr); /* call() did not take it */
    pthread_mutex_unlock(&s->op);
    unref(s);
    return ok;
}

void sandboxes_touch(const char *id, const char *tenant)
{
    struct sbx *s = sbx_find(id, tenant);
    if (s) {
        sbx_touch(s);
        unref(s);
    }
}

int sandboxes_spec(const char *id, const char *tenant, char **spec, hull_error *err)
{
    struct sbx *s = sbx_find(id, tenant);
    *spec = s && !s->gone && s->spec ? strdup(s->spec) : NULL;
    if (s)
        unref(s);
    if (*spec == NULL)
        return hull_error_set(err, ENOENT, "sandbox '%s' not found", id);
    return 0;
}

bool sandboxes_alive(const char *id, const char *tenant)
{
    struct sbx *s = sbx_find(id, tenant);
    bool alive = s && !s->gone;
    if (s)
        unref(s);
    return alive;
}

int sbx_call(struct sbx *s, const char *op, json_object *extra, const void *data, size_t len,
             bool refuse_paused, struct frame *reply, hull_error *err)
{
    pthread_mutex_lock(&s->op);
    int r = refuse_paused && s->paused ? hull_error_set(err, EBUSY, "sandbox '%s' is paused", s->id)
                                       : sbx_keeper_send(s, op, extra, data, len, -1, reply, err);
    if (refuse_paused && s->paused)
        json_object_put(extra);
    pthread_mutex_unlock(&s->op);
    return r;
}

const char *sbx_id(const struct sbx *s)
{
    return s->id;
}

void sbx_hold(struct sbx *s)
{
    pthread_mutex_lock(&tab_mu);
    s->refs++;
    pthread_mutex_unlock(&tab_mu);
}

void sbx_release(struct sbx *s)
{
    unref(s);
}

void sbx_touch(struct sbx *s)
{
    /* Without the op lock (a stream must not wait behind an exec): the
     * reaper reads it atomically too. */
    __atomic_store_n(&s->last_used_ns, hull_monotonic_ns(), __ATOMIC_RELAXED);
    s->last_used = time(NULL);
}

/* A new keeper connection, attached over via (the main one under the op
 * lock, else the attach connection): -1 with err. */
static int attach_over(struct sbx *s, int via, hull_error *err)
{
    int sv[2];
    if (s->gone)
        return hull_error_set(err, ENOENT, "sandbox '%s' is gone", s->id);
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0)
        return hull_error_errno(err, "socketpair");
    json_object *hdr = json_object_new_object();
    json_object_object_add(hdr, "op", json_object_new_string("attach"));
    struct frame f;
    int r = frame_send(via, hdr, NULL, 0, sv[1]);
    json_object_put(hdr);
    close(sv[1]);
    if (r < 0 || frame_recv(via, &f) < 0) {
        close(sv[0]);
        return hull_error_set(err, ESRCH, "sandbox '%s': its keeper process died", s->id);
    }
    json_object *er = hj_get(f.hdr, "error");
    if (er) {
        json_object *msg = hj_get(er, "message");
        hull_error_set(err, EBUSY, "%s", msg ? json_object_get_string(msg) : "keeper failed");
        frame_free(&f);
        close(sv[0]);
        return -1;
    }
    frame_free(&f);
    return sv[0];
}

int sbx_attach_over(struct sbx *s, int via, hull_error *err)
{
    return attach_over(s, via, err);
}

int sbx_keeper_call(struct sbx *s, const char *op, json_object *extra, struct frame *reply,
                    hull_error *err)
{
    return sbx_keeper_send(s, op, extra, NULL, 0, -1, reply, err);
}

int sbx_connect(struct sbx *s, hull_error *err)
{
    pthread_mutex_lock(&s->attach_mu);
    int r = s->attach_sock >= 0 ? attach_over(s, s->attach_sock, err)
                                : hull_error_set(err, ESRCH, "sandbox '%s' is gone", s->id);
    pthread_mutex_unlock(&s->attach_mu);
    return r;
}

int sandboxes_socket(const char *id, int family, char *addr, size_t addr_len, hull_error *err)
{
    struct sbx *s = sbx_find(id, NULL);
    if (s == NULL)
        return hull_error_set(err, ENOENT, "sandbox '%s' not found", id);
    json_object *hdr = json_object_new_object();
    json_object_object_add(hdr, "op", json_object_new_string("socket"));
    json_object_object_add(hdr, "family", json_object_new_int(family == AF_INET6 ? 6 : 4));
    int fd = -1;
    struct frame f;
    /* The attach connection, not the op lock: a port's connection does not
     * wait behind an exec. */
    pthread_mutex_lock(&s->attach_mu);
    if (s->gone || s->attach_sock < 0) {
        hull_error_set(err, ENOENT, "sandbox '%s' is gone", id);
    } else if (frame_send(s->attach_sock, hdr, NULL, 0, -1) < 0 ||
               frame_recv(s->attach_sock, &f) < 0) {
        hull_error_set(err, ESRCH, "sandbox '%s': its keeper process died", id);
    } else {
        int bad = frame_error(&f, "keeper failed", err);
        if (bad == 0 && f.fd < 0)
            bad = hull_error_set(err, EPROTO, "sandbox '%s': the keeper sent no socket", id);
        if (bad == 0) {
            fd = f.fd;
            f.fd = -1;
            if (addr) /* a microVM's guest address (sbx_vm_net.c), else "" */
                snprintf(addr, addr_len, "%s", frame_str(&f, "addr"));
        }
        frame_free(&f);
    }
    pthread_mutex_unlock(&s->attach_mu);
    json_object_put(hdr);
    if (fd >= 0)
        sbx_touch(s);
    unref(s);
    return fd;
}

size_t sandboxes_brief(struct sbx_brief **out)
{
    pthread_mutex_lock(&tab_mu);
    size_t n = 0;
    for (struct sbx *s = table; s; s = s->next)
        n++;
    struct sbx_brief *b = n ? calloc(n, sizeof(*b)) : NULL;
    n = 0;
    for (struct sbx *s = table; b && s; s = s->next, n++) {
        snprintf(b[n].id, sizeof(b[n].id), "%s", s->id);
        snprintf(b[n].tenant, sizeof(b[n].tenant), "%s", s->tenant);
        snprintf(b[n].container, sizeof(b[n].container), "%s", s->container);
    }
    pthread_mutex_unlock(&tab_mu);
    *out = b;
    return n;
}
