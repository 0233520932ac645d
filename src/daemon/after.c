/* Work after an answer (a run's record and its audit entry), done by one
 * thread of its own while the connection's thread sends the answer: it
 * waits neither for the client to read the answer nor delays the next
 * request on that connection. Readers that must see it wait for it
 * (runner_wait_recorded). */
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "daemon.h"
#include "util/log.h"

struct after_item {
    void (*fn)(void *arg);
    void *arg;
    struct after_item *next;
};

static struct {
    pthread_mutex_t mu;
    pthread_cond_t work;
    struct after_item *head, **tail;
    bool started, stop;
    pthread_t thread;
} q = {.mu = PTHREAD_MUTEX_INITIALIZER, .work = PTHREAD_COND_INITIALIZER, .tail = &q.head};

static void *after_loop(void *unused)
{
    (void)unused;
    pthread_mutex_lock(&q.mu);
    for (;;) {
        while (q.head == NULL && !q.stop)
            pthread_cond_wait(&q.work, &q.mu);
        struct after_item *it = q.head;
        if (it == NULL)
            break; /* stopping, nothing left */
        q.head = it->next;
        if (q.head == NULL)
            q.tail = &q.head;
        pthread_mutex_unlock(&q.mu);
        it->fn(it->arg);
        free(it);
        pthread_mutex_lock(&q.mu);
    }
    pthread_mutex_unlock(&q.mu);
    return NULL;
}

void after_post(void (*fn)(void *arg), void *arg)
{
    struct after_item *it = malloc(sizeof(*it));
    pthread_mutex_lock(&q.mu);
    if (!q.started && !q.stop && it) {
        int rc = pthread_create(&q.thread, NULL, after_loop, NULL);
        q.started = rc == 0;
        if (rc != 0)
            hull_log(HULL_LOG_ERROR, "after-answer thread: %s", strerror(rc));
    }
    if (it == NULL || !q.started || q.stop) {
        /* No thread for it: done here, before the answer. */
        pthread_mutex_unlock(&q.mu);
        free(it);
        fn(arg);
        return;
    }
    *it = (struct after_item){.fn = fn, .arg = arg};
    *q.tail = it;
    q.tail = &it->next;
    pthread_cond_signal(&q.work);
    pthread_mutex_unlock(&q.mu);
}

void after_stop(void)
{
    pthread_mutex_lock(&q.mu);
    q.stop = true;
    bool started = q.started;
    pthread_cond_signal(&q.work);
    pthread_mutex_unlock(&q.mu);
    if (started)
        pthread_join(q.thread, NULL); /* what is queued is done first */
}
