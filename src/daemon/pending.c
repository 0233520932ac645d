/* Store faults: writes the store refused (a full disk, a locked or broken
 * database) are never dropped. An API request that cannot be recorded is
 * answered 503 (500 for a broken database) and logged; a run's end that
 * cannot be recorded (its result, a cancel, an interruption) is kept here,
 * in memory, and written again every tick until it is stored, so a run
 * that finished while the disk was full is not left "running" and later
 * "interrupted". Until then /healthz says the store is failing, and the
 * run is shown with its result from here. */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "daemon.h"
#include "util/error.h"
#include "util/log.h"

struct pending {
    char id[40];
    char *result;         /* finish with this result, or */
    char to[16];          /* a transition to this state */
    char from[2][16];     /* from these ("" unused) */
    char verdict[32];     /* of the result, "" to read it from the JSON */
    struct pending *next; /* oldest first */
};

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static struct pending *head, **tail = &head;
static char last_error[256];

static void keep(struct pending *p, hull_error *err)
{
    pthread_mutex_lock(&mu);
    snprintf(last_error, sizeof(last_error), "%s", hull_error_msg(*err));
    /* The same end again (a queued run's result, read at each GET): kept
     * once. */
    bool dup = false;
    for (struct pending *o = head; o && !dup; o = o->next)
        dup = strcmp(o->id, p->id) == 0 && (o->result != NULL) == (p->result != NULL) &&
              strcmp(o->to, p->to) == 0;
    if (dup) {
        pthread_mutex_unlock(&mu);
        free(p->result);
        free(p);
        hull_error_free(err); /* its message is in last_error, and was logged the first time */
        return;
    }
    char id[sizeof(p->id)];
    memcpy(id, p->id, sizeof(id)); /* p is the flusher's once listed */
    *tail = p;
    tail = &p->next;
    pthread_mutex_unlock(&mu);
    hull_log(HULL_LOG_ERROR, "run %s: %s; kept in memory, retried until stored", id,
             hull_error_msg(*err));
    hull_error_free(err);
}

void pending_finish(const char *id, const char *result, const char *verdict, hull_error *err)
{
    struct pending *p = calloc(1, sizeof(*p));
    char *copy = strdup(result);
    if (p == NULL || copy == NULL) {
        hull_log(HULL_LOG_ERROR, "run %s: its result is lost (out of memory): %s", id,
                 hull_error_msg(*err));
        free(p);
        free(copy);
        hull_error_free(err);
        return;
    }
    snprintf(p->id, sizeof(p->id), "%s", id);
    snprintf(p->verdict, sizeof(p->verdict), "%s", verdict ? verdict : "");
    p->result = copy;
    keep(p, err);
}

void pending_transition(const char *id, const char *const *from, const char *to, hull_error *err)
{
    struct pending *p = calloc(1, sizeof(*p));
    if (p == NULL) {
        hull_log(HULL_LOG_ERROR, "run %s: not marked %s (out of memory): %s", id, to,
                 hull_error_msg(*err));
        hull_error_free(err);
        return;
    }
    snprintf(p->id, sizeof(p->id), "%s", id);
    snprintf(p->to, sizeof(p->to), "%s", to);
    for (size_t i = 0; from[i] && i < 2; i++)
        snprintf(p->from[i], sizeof(p->from[i]), "%s", from[i]);
    keep(p, err);
}

static int store_one(struct pending *p, hull_error *err)
{
    if (p->result)
        return hull_run_finish(hulld.store, p->id, p->result, p->verdict[0] ? p->verdict : NULL,
                               err);
    const char *from[3] = {p->from[0], p->from[1][0] ? p->from[1] : NULL, NULL};
    return hull_run_transition(hulld.store, p->id, from, p->to, err);
}

void pending_flush(void)
{
    for (;;) {
        pthread_mutex_lock(&mu);
        struct pending *p = head;
        pthread_mutex_unlock(&mu);
        if (p == NULL) {
            /* The last write failed and nothing else will write soon: try
             * one, so /healthz says so once the store is back. */
            hull_error e = NULL;
            if (hull_store_failing(hulld.store, NULL, 0) && hull_store_probe(hulld.store, &e) < 0)
                hull_error_free(&e); /* still failing: the store keeps the reason for /healthz */
            return;
        }
        /* Only this thread removes entries: p stays valid unlocked. */
        hull_error e = NULL;
        if (store_one(p, &e) < 0) {
            pthread_mutex_lock(&mu);
            snprintf(last_error, sizeof(last_error), "%s", hull_error_msg(e));
            pthread_mutex_unlock(&mu);
            hull_error_free(&e);
            return; /* in order: the next tick tries again */
        }
        hull_log(HULL_LOG_INFO, "run %s: %s stored after all", p->id,
                 p->result ? "its result" : p->to);
        pthread_mutex_lock(&mu);
        head = p->next;
        if (head == NULL)
            tail = &head;
        pthread_mutex_unlock(&mu);
        free(p->result);
        free(p);
    }
}

bool pending_failing(char *why, size_t len)
{
    pthread_mutex_lock(&mu);
    size_t n = 0;
    for (struct pending *p = head; p; p = p->next)
        n++;
    if (n)
        snprintf(why, len, "%zu run ends not stored yet: %s", n, last_error);
    pthread_mutex_unlock(&mu);
    return n > 0 || hull_store_failing(hulld.store, why, len);
}

json_object *pending_result(const char *id)
{
    json_object *o = NULL;
    pthread_mutex_lock(&mu);
    for (struct pending *p = head; p; p = p->next)
        if (strcmp(p->id, id) == 0) {
            json_object_put(o);
            o = json_object_new_object();
            json_object_object_add(o, "state",
                                   json_object_new_string(p->result ? "finished" : p->to));
            if (p->result)
                json_object_object_add(o, "result", json_object_new_string(p->result));
        }
    pthread_mutex_unlock(&mu);
    return o;
}

void pending_drop_all(void)
{
    pthread_mutex_lock(&mu);
    while (head) {
        struct pending *p = head;
        head = p->next;
        /* Stopping with the store still failing: the log keeps it. */
        if (p->result)
            hull_log(HULL_LOG_ERROR, "run %s: result never stored: %s", p->id, p->result);
        else
            hull_log(HULL_LOG_ERROR, "run %s: never marked %s", p->id, p->to);
        free(p->result);
        free(p);
    }
    tail = &head;
    pthread_mutex_unlock(&mu);
}
