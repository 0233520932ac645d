/* Sandboxes that join the table other than by a create: a paused microVM
 * sandbox of an earlier hulld, adopted at start-up; one restored from the
 * cluster's snapshot after its node went down (cluster_restart.c); one
 * moved here from another node (cluster_move.c). Each gets a keeper of
 * its own that takes its VM over; nothing is in the table until that
 * keeper answers. */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/wait.h>
#include <unistd.h>

#include "daemon.h"
#include "move.h"
#include "procs.h"
#include "sbx_table.h"
#include "util/error.h"
#include "util/json.h"
#include "util/log.h"

/* Sandboxes on their way here from another node (cluster_move.c), by
 * tenant: counted against the quota like those in the table from the
 * moment the move is accepted, so a tenant cannot pass its quota on this
 * node by moving sandboxes onto it, nor race a create. Under the table's
 * lock. */
static struct {
    char tenant[72];
    unsigned n;
} arriving[16];

#define N_ARRIVING (sizeof(arriving) / sizeof(arriving[0]))

unsigned sbx_arriving_locked(const char *tenant)
{
    for (size_t i = 0; i < N_ARRIVING; i++)
        if (arriving[i].n && strcmp(arriving[i].tenant, tenant) == 0)
            return arriving[i].n;
    return 0;
}

int sandboxes_arrival_begin(const char *tenant, hull_error *err)
{
    int rc = 0;
    size_t slot = N_ARRIVING;
    sbx_table_lock();
    for (size_t i = 0; i < N_ARRIVING && slot == N_ARRIVING; i++)
        if (arriving[i].n && strcmp(arriving[i].tenant, tenant) == 0)
            slot = i;
    for (size_t i = 0; i < N_ARRIVING && slot == N_ARRIVING; i++)
        if (arriving[i].n == 0)
            slot = i;
    if (sbx_tenant_count_locked(tenant) >= hulld.o->tenant_sandboxes)
        rc = hull_error_set(err, EDQUOT, "tenant %s has %u sandboxes on this node, its quota",
                            tenant, hulld.o->tenant_sandboxes);
    else if (slot == N_ARRIVING)
        rc = hull_error_set(err, EBUSY, "too many sandboxes arriving at once: try again");
    else
        snprintf(arriving[slot].tenant, sizeof(arriving[slot].tenant), "%s", tenant);
    if (rc == 0)
        arriving[slot].n++;
    sbx_table_unlock();
    return rc;
}

void sandboxes_arrival_end(const char *tenant)
{
    sbx_table_lock();
    for (size_t i = 0; i < N_ARRIVING; i++)
        if (arriving[i].n && strcmp(arriving[i].tenant, tenant) == 0) {
            arriving[i].n--;
            break;
        }
    sbx_table_unlock();
}

int sandboxes_insert(const char *id, const char *tenant, const char *container, const char *spec,
                     unsigned lifetime_s, pid_t pid, int sock, hull_error *err)
{
    struct sbx *s = sbx_new(id, tenant, container);
    if (s == NULL) {
        close(sock);
        waitpid(pid, NULL, 0); /* it ends with its socket, and its VM with it */
        return hull_error_set(err, ENOMEM, "out of memory");
    }
    s->sock = sock;
    s->pid = pid;
    cleanup_json json_object *doc = spec ? json_tokener_parse(spec) : NULL;
    json_object *img = hj_get(doc, "image");
    if (img)
        snprintf(s->image, sizeof(s->image), "%s", json_object_get_string(img));
    s->spec = spec ? strdup(spec) : NULL;
    s->lifetime_s = lifetime_s;
    s->microvm = true;
    sbx_touch(s);
    s->kill_fd = eventfd(0, EFD_CLOEXEC);
    s->attach_sock =
        s->kill_fd < 0 ? hull_error_errno(err, "eventfd") : sbx_attach_over(s, sock, err);
    if (s->attach_sock >= 0)
        sbx_table_push(s);
    int ok = s->attach_sock < 0 ? -1 : 0;
    sbx_release(s);
    return ok;
}

/* A paused microVM sandbox of an earlier hulld, served again by a new
 * keeper that adopts its snapshot (sbx_vm.c). */
static int adopt(json_object *rec, hull_error *err)
{
    struct sbx *s = sbx_new(json_object_get_string(hj_get(rec, "id")),
                            json_object_get_string(hj_get(rec, "tenant")),
                            json_object_get_string(hj_get(rec, "container")));
    if (s == NULL)
        return hull_error_set(err, ENOMEM, "out of memory");
    s->lifetime_s = (unsigned)json_object_get_int64(hj_get(rec, "lifetime_s"));
    json_object *resume = hj_get(rec, "resume"); /* a restore (cluster_restart.c) */
    s->microvm = true;
    s->paused = !(resume && json_object_get_boolean(resume));
    s->kill_fd = eventfd(0, EFD_CLOEXEC);
    json_object *hdr = json_object_new_object();
    json_object_object_add(hdr, "vm", json_object_new_string(s->container));
    json_object_object_add(hdr, "resume", json_object_new_boolean(!s->paused));
    struct frame f;
    pthread_mutex_lock(&s->op);
    s->pid =
        s->kill_fd < 0 ? hull_error_errno(err, "eventfd") : helper_spawn("keeper", &s->sock, err);
    int ok = s->pid < 0 ? -1 : sbx_keeper_call(s, "adopt", hdr, &f, err);
    if (s->pid < 0)
        json_object_put(hdr);
    if (ok == 0) {
        frame_free(&f);
        s->attach_sock = sbx_attach_over(s, s->sock, err);
        ok = s->attach_sock < 0 ? -1 : 0;
    }
    pthread_mutex_unlock(&s->op);
    if (ok == 0)
        sbx_table_push(s);
    sbx_release(s);
    return ok;
}

int sandboxes_restore(json_object *rec, hull_error *err)
{
    return adopt(rec, err);
}

void sandboxes_adopt(void)
{
    hull_error e = NULL;
    json_object *rows = hull_sandbox_rec_suspended(hulld.store, &e);
    for (size_t i = 0; rows && i < json_object_array_length(rows); i++) {
        json_object *rec = json_object_array_get_idx(rows, i);
        const char *id = json_object_get_string(hj_get(rec, "id"));
        if (adopt(rec, &e) == 0) {
            hull_log(HULL_LOG_INFO, "sandbox %s: paused on disk, adopted", id);
            continue;
        }
        hull_log(HULL_LOG_ERROR, "sandbox %s: %s", id, hull_error_msg(e));
        hull_error_free(&e);
        if (hull_sandbox_rec_state(hulld.store, id, "destroyed", "could not be adopted", &e) < 0)
            hull_error_free(&e);
    }
    if (rows == NULL) {
        hull_log(HULL_LOG_ERROR, "start-up: %s", hull_error_msg(e));
        hull_error_free(&e);
    }
    json_object_put(rows);
}
