/* Layers unpacked while the rest of a pull goes on (unpack_queue.h).
 *
 * A pull used to fetch every blob and then unpack the layers one after
 * the other, so its time was the sum of the two. Here each layer is handed
 * to a small pool of threads as soon as its blob is stored: the first
 * layers unpack while the later ones are still on the wire, and two large
 * layers unpack at once on a machine with the cores for it.
 *
 * Nothing about an unpack changes: every job is image_layer_unpack_until,
 * which takes the layer's lock, unpacks into a temporary directory, checks
 * the diff-id and renames it into place, so a layer is whole or absent
 * whichever thread made it and whatever another process does meanwhile.
 * The first failure stops the jobs not yet started (not the fetch, whose
 * own error comes first when it has one); finish reports it. A cancel
 * (the pull failed) also stops the running unpacks at their next block.
 */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "image/unpack_queue.h"
#include "util/error.h"

#define UNPACK_WORKERS_MAX 4

struct unpack_job {
    const char *layer_digest; /* the caller's strings: they outlive the queue */
    const char *diff_id;
};

struct unpack_queue {
    struct image_store *s;
    pthread_mutex_t mu;
    pthread_cond_t more;
    struct unpack_job *jobs;
    size_t n_jobs, cap, next;
    atomic_bool stop; /* cancelled: running jobs end early too */
    bool closed;      /* no more jobs: workers leave when the list is done */
    hull_error first; /* a job failed: its error; the jobs not started are dropped */
    pthread_t threads[UNPACK_WORKERS_MAX];
    size_t n_threads;
};

static void *worker_main(void *arg)
{
    struct unpack_queue *q = arg;
    pthread_mutex_lock(&q->mu);
    for (;;) {
        while (!q->closed && !q->first && q->next == q->n_jobs)
            pthread_cond_wait(&q->more, &q->mu);
        if (q->first || q->next == q->n_jobs)
            break;
        struct unpack_job job = q->jobs[q->next++];
        pthread_mutex_unlock(&q->mu);
        hull_error e = NULL;
        int rc = image_layer_unpack_until(q->s, job.layer_digest, job.diff_id, &q->stop, &e);
        pthread_mutex_lock(&q->mu);
        /* stopped by the cancel: the caller has the error that caused it */
        if (rc < 0 && !q->first && !atomic_load(&q->stop)) {
            q->first = e;
            e = NULL;
            pthread_cond_broadcast(&q->more);
        }
        hull_error_free(&e);
    }
    pthread_mutex_unlock(&q->mu);
    return NULL;
}

static size_t workers_for(size_t layers)
{
    long cpus = sysconf(_SC_NPROCESSORS_ONLN);
    size_t n = cpus > 0 ? (size_t)cpus : 1;
    if (n > UNPACK_WORKERS_MAX)
        n = UNPACK_WORKERS_MAX;
    return n < layers ? n : (layers > 0 ? layers : 1);
}

int unpack_queue_start(struct image_store *s, size_t layers, struct unpack_queue **out,
                       hull_error *err)
{
    *out = NULL;
    struct unpack_queue *q = calloc(1, sizeof(*q));
    if (q == NULL)
        return hull_error_set(err, ENOMEM, "out of memory");
    q->s = s;
    atomic_init(&q->stop, false);
    pthread_mutex_init(&q->mu, NULL);
    pthread_cond_init(&q->more, NULL);
    size_t want = workers_for(layers);
    for (size_t i = 0; i < want; i++) {
        int rc = pthread_create(&q->threads[i], NULL, worker_main, q);
        if (rc != 0) {
            if (q->n_threads > 0)
                break; /* fewer workers: slower, not wrong */
            pthread_cond_destroy(&q->more);
            pthread_mutex_destroy(&q->mu);
            free(q);
            errno = rc;
            return hull_error_errno(err, "unpack thread");
        }
        q->n_threads++;
    }
    *out = q;
    return 0;
}

/* Under q->mu: job appended, or -1 when out of memory. */
static int append(struct unpack_queue *q, const char *layer_digest, const char *diff_id)
{
    for (size_t i = 0; i < q->n_jobs; i++)
        if (strcmp(q->jobs[i].diff_id, diff_id) == 0)
            return 0; /* a layer listed twice is unpacked once */
    if (q->n_jobs == q->cap) {
        size_t cap = q->cap ? q->cap * 2 : 8;
        struct unpack_job *j = realloc(q->jobs, cap * sizeof(*j));
        if (j == NULL)
            return -1;
        q->jobs = j;
        q->cap = cap;
    }
    q->jobs[q->n_jobs++] = (struct unpack_job){layer_digest, diff_id};
    pthread_cond_signal(&q->more);
    return 0;
}

int unpack_queue_add(struct unpack_queue *q, const char *layer_digest, const char *diff_id,
                     hull_error *err)
{
    pthread_mutex_lock(&q->mu);
    int rc = append(q, layer_digest, diff_id);
    pthread_mutex_unlock(&q->mu);
    return rc < 0 ? hull_error_set(err, ENOMEM, "out of memory") : 0;
}

int unpack_queue_finish(struct unpack_queue *q, bool cancel, hull_error *err)
{
    if (q == NULL)
        return 0;
    pthread_mutex_lock(&q->mu);
    q->closed = true;
    if (cancel) {
        q->next = q->n_jobs;          /* the jobs not started are dropped, */
        atomic_store(&q->stop, true); /* and the running ones end early */
    }
    pthread_cond_broadcast(&q->more);
    pthread_mutex_unlock(&q->mu);
    for (size_t i = 0; i < q->n_threads; i++)
        pthread_join(q->threads[i], NULL);
    int rc = 0;
    if (q->first) {
        rc = -1;
        if (err && *err == NULL)
            *err = q->first;
        else
            hull_error_free(&q->first);
    }
    pthread_cond_destroy(&q->more);
    pthread_mutex_destroy(&q->mu);
    free(q->jobs);
    free(q);
    return rc;
}
