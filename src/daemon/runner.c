/* Runs: a bounded queue in front of a fixed pool of worker processes.
 *
 * Each slot is a dispatcher thread owning one single-threaded worker
 * process (helper.c). A dispatcher takes the oldest queued job, hands the
 * request and a cancel eventfd to its worker, and waits for the result.
 * The worker records the result in the store itself, so a run whose hulld
 * died is still finished and recorded by its worker; the worker then sees
 * its socket closed and exits. Cancel writes the eventfd: the library kills
 * the run cleanly (verdict "killed"); a worker is never SIGKILLed, which
 * would leave the run's cgroup and state behind. */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/wait.h>
#include <unistd.h>

#include "container/state.h"
#include "daemon.h"
#include "runner.h"
#include "util/clock.h"
#include "util/error.h"
#include "util/json.h"
#include "util/log.h"

static struct {
    pthread_mutex_t mu;
    pthread_cond_t work; /* a job was queued, or stop */
    pthread_cond_t done; /* a job ended */
    struct job *head, *tail; /* queued, oldest first */
    struct job *active;      /* every queued or running job */
    unsigned queued, running;
    bool stop;
    pthread_t *threads;
    unsigned n_threads;
} pool = {.mu = PTHREAD_MUTEX_INITIALIZER,
          .work = PTHREAD_COND_INITIALIZER,
          .done = PTHREAD_COND_INITIALIZER};

static void job_unref_locked(struct job *j)
{
    if (--j->refs > 0)
        return;
    if (j->cancel_fd >= 0)
        close(j->cancel_fd);
    free(j->request);
    free(j->result);
    free(j);
}

void job_release(struct job *j)
{
    pthread_mutex_lock(&pool.mu);
    job_unref_locked(j);
    pthread_mutex_unlock(&pool.mu);
}

static unsigned tenant_load(const char *tenant)
{
    unsigned n = 0;
    for (struct job *j = pool.active; j; j = j->next_active)
        n += strcmp(j->tenant, tenant) == 0;
    return n;
}

static void unlink_active(struct job *j)
{
    for (struct job **p = &pool.active; *p; p = &(*p)->next_active)
        if (*p == j) {
            *p = j->next_active;
            return;
        }
}

enum submit runner_submit(const char *id, const char *tenant, char *request, struct job **out,
                          hull_error *err)
{
    *out = NULL;
    struct job *j = calloc(1, sizeof(*j));
    int efd = eventfd(0, EFD_CLOEXEC);
    if (j == NULL || efd < 0) {
        free(j);
        free(request);
        if (efd >= 0)
            close(efd);
        hull_error_set(err, ENOMEM, "out of resources");
        return SUBMIT_ERROR;
    }
    snprintf(j->id, sizeof(j->id), "%s", id);
    snprintf(j->tenant, sizeof(j->tenant), "%s", tenant);
    j->request = request;
    j->cancel_fd = efd;
    j->refs = 2; /* the pool's and the caller's */
    enum submit res = SUBMIT_OK;
    pthread_mutex_lock(&pool.mu);
    if (hulld.draining || pool.stop)
        res = SUBMIT_DRAINING;
    else if (pool.queued >= hulld.o->queue_depth && pool.running >= pool.n_threads)
        res = SUBMIT_QUEUE_FULL;
    else if (tenant_load(tenant) >= hulld.o->tenant_runs)
        res = SUBMIT_QUOTA;
    /* The row exists before any dispatcher can see the job. */
    else if (hull_run_insert(hulld.store, id, tenant, "queued", NULL, err) < 0)
        res = SUBMIT_ERROR;
    if (res != SUBMIT_OK) {
        pthread_mutex_unlock(&pool.mu);
        j->refs = 1;
        job_release(j);
        return res;
    }
    j->state = JOB_QUEUED;
    j->enqueued_ns = hull_monotonic_ns();
    if (pool.tail)
        pool.tail->next = j;
    else
        pool.head = j;
    pool.tail = j;
    j->next_active = pool.active;
    pool.active = j;
    pool.queued++;
    pthread_cond_signal(&pool.work);
    pthread_mutex_unlock(&pool.mu);
    *out = j;
    return SUBMIT_OK;
}

void job_wait(struct job *j)
{
    pthread_mutex_lock(&pool.mu);
    while (j->state != JOB_DONE)
        pthread_cond_wait(&pool.done, &pool.mu);
    pthread_mutex_unlock(&pool.mu);
}

static void finish_locked(struct job *j)
{
    j->state = JOB_DONE;
    unlink_active(j);
    pthread_cond_broadcast(&pool.done);
}

struct job *runner_cancel(const char *id, bool *was_queued)
{
    *was_queued = false;
    pthread_mutex_lock(&pool.mu);
    struct job *j = pool.active;
    while (j && strcmp(j->id, id) != 0)
        j = j->next_active;
    if (j == NULL) {
        pthread_mutex_unlock(&pool.mu);
        return NULL;
    }
    j->refs++;
    if (j->state == JOB_QUEUED) {
        struct job **p = &pool.head, *prev = NULL;
        while (*p != j) {
            prev = *p;
            p = &(*p)->next;
        }
        *p = j->next;
        if (pool.tail == j)
            pool.tail = prev;
        pool.queued--;
        *was_queued = true;
        finish_locked(j);
        job_unref_locked(j); /* the pool's reference */
    } else {
        /* The worker polls this fd: the library kills the run. */
        uint64_t one = 1;
        if (write(j->cancel_fd, &one, sizeof(one)) < 0)
            hull_warn("cancel %s: %s", id, strerror(errno));
    }
    pthread_mutex_unlock(&pool.mu);
    return j;
}

void runner_counts(unsigned *running, unsigned *queued)
{
    pthread_mutex_lock(&pool.mu);
    *running = pool.running;
    *queued = pool.queued;
    pthread_mutex_unlock(&pool.mu);
}

void runner_drain(void)
{
    pthread_mutex_lock(&pool.mu);
    while (pool.active)
        pthread_cond_wait(&pool.done, &pool.mu);
    pthread_mutex_unlock(&pool.mu);
}

/* internal_error result for a run its worker could not finish. */
static char *failed_result(const char *why)
{
    struct hull_result r = {.verdict = HULL_VERDICT_INTERNAL_ERROR, .error = (char *)why};
    return hull_result_to_json(&r);
}

struct slot {
    pid_t pid;
    unsigned long long start;
    int sock;
};

static int slot_spawn(struct slot *s)
{
    hull_error e = NULL;
    s->pid = helper_spawn("worker", &s->sock, &e);
    if (s->pid < 0) {
        hull_log(HULL_LOG_ERROR, "worker: %s", hull_error_msg(e));
        hull_error_free(&e);
        return -1;
    }
    s->start = hull_pid_start_time(s->pid);
    return 0;
}

static void slot_close(struct slot *s)
{
    if (s->sock >= 0)
        close(s->sock); /* EOF: the worker exits after its current run */
    s->sock = -1;
    if (s->pid > 0)
        waitpid(s->pid, NULL, 0);
    s->pid = -1;
}

/* One run on this slot's worker; returns the result JSON. */
static char *dispatch(struct slot *s, struct job *j)
{
    if (s->sock < 0 && slot_spawn(s) < 0)
        return failed_result("no worker process could be started");
    hull_error e = NULL;
    if (hull_run_start(hulld.store, j->id, s->pid, s->start, &e) < 0) {
        hull_warn("run %s: %s", j->id, hull_error_msg(e));
        hull_error_free(&e);
    }
    json_object *hdr = json_object_new_object();
    json_object_object_add(hdr, "op", json_object_new_string("run"));
    json_object_object_add(hdr, "id", json_object_new_string(j->id));
    int r = frame_send(s->sock, hdr, j->request, strlen(j->request), j->cancel_fd);
    json_object_put(hdr);
    struct frame f;
    if (r < 0 || frame_recv(s->sock, &f) < 0) {
        /* The worker died under this run: say so, and start a new one. */
        hull_log(HULL_LOG_ERROR, "run %s: worker %d died", j->id, (int)s->pid);
        slot_close(s);
        char *res = failed_result("the worker process running it died");
        if (hull_run_finish(hulld.store, j->id, res, &e) < 0) {
            hull_warn("run %s: %s", j->id, hull_error_msg(e));
            hull_error_free(&e);
        }
        return res;
    }
    char *res = f.data;
    f.data = NULL;
    json_object *rec = hj_get(f.hdr, "recorded");
    if (rec == NULL || !json_object_get_boolean(rec)) {
        /* Already ended (a no-op) or the worker could not write: try here. */
        if (hull_run_finish(hulld.store, j->id, res, &e) < 0) {
            hull_warn("run %s: %s", j->id, hull_error_msg(e));
            hull_error_free(&e);
        }
    }
    frame_free(&f);
    return res;
}

static void *dispatcher(void *arg)
{
    (void)arg;
    struct slot s = {.pid = -1, .sock = -1};
    slot_spawn(&s);
    pthread_mutex_lock(&pool.mu);
    for (;;) {
        while (pool.head == NULL && !pool.stop)
            pthread_cond_wait(&pool.work, &pool.mu);
        if (pool.head == NULL)
            break;
        struct job *j = pool.head;
        pool.head = j->next;
        if (pool.head == NULL)
            pool.tail = NULL;
        pool.queued--;
        pool.running++;
        j->state = JOB_RUNNING;
        pthread_mutex_unlock(&pool.mu);

        uint64_t t0 = hull_monotonic_ns();
        char *res = dispatch(&s, j);
        double secs = (double)(hull_monotonic_ns() - t0) / 1e9;
        json_object *o = json_tokener_parse(res);
        json_object *v = o ? hj_get(o, "verdict") : NULL;
        metrics_run_done(v ? json_object_get_string(v) : "internal_error", secs);
        json_object_put(o);

        pthread_mutex_lock(&pool.mu);
        j->result = res;
        pool.running--;
        finish_locked(j);
        job_unref_locked(j);
    }
    pthread_mutex_unlock(&pool.mu);
    slot_close(&s);
    return NULL;
}

int runner_start(hull_error *err)
{
    pool.n_threads = hulld.o->max_runs;
    pool.threads = calloc(pool.n_threads, sizeof(pthread_t));
    if (pool.threads == NULL)
        return hull_error_set(err, ENOMEM, "out of memory");
    for (unsigned i = 0; i < pool.n_threads; i++) {
        int r = pthread_create(&pool.threads[i], NULL, dispatcher, NULL);
        if (r != 0) {
            pool.n_threads = i;
            errno = r;
            return hull_error_errno(err, "start run slots");
        }
    }
    return 0;
}

void runner_stop(void)
{
    pthread_mutex_lock(&pool.mu);
    pool.stop = true;
    pthread_cond_broadcast(&pool.work);
    pthread_mutex_unlock(&pool.mu);
    for (unsigned i = 0; i < pool.n_threads; i++)
        pthread_join(pool.threads[i], NULL);
    free(pool.threads);
    pool.threads = NULL;
    pool.n_threads = 0;
}

/* ---- the worker process -------------------------------------------------- */

static char *run_one(struct frame *f)
{
    struct hull_policy p;
    struct hull_result r;
    hull_error e = NULL;
    hull_policy_init(&p);
    char *res = NULL;
    if (hull_policy_from_json(f->data, f->len, &p, &e) < 0) {
        res = failed_result(hull_error_msg(e));
    } else {
        p.cancel_fd = f->fd;
        if (hull_sandbox_run(&p, &r, &e) < 0) {
            res = failed_result(hull_error_msg(e));
        } else {
            res = hull_result_to_json(&r);
            hull_result_free(&r);
        }
    }
    hull_error_free(&e);
    p.cancel_fd = -1;
    hull_policy_free(&p);
    return res;
}

int worker_loop(int sock, struct hull_store *st)
{
    for (;;) {
        struct frame f;
        if (frame_recv(sock, &f) < 0)
            return errno == EPIPE ? 0 : 1; /* hulld closed our socket: done */
        json_object *id = hj_get(f.hdr, "id");
        char *res = run_one(&f);
        hull_error e = NULL;
        int rec = id ? hull_run_finish(st, json_object_get_string(id), res, &e) : 0;
        if (rec < 0) {
            hull_warn("worker: %s", hull_error_msg(e));
            hull_error_free(&e);
        }
        json_object *hdr = json_object_new_object();
        json_object_object_add(hdr, "recorded", json_object_new_boolean(rec == 1));
        int r = frame_send(sock, hdr, res, strlen(res), -1);
        json_object_put(hdr);
        free(res);
        frame_free(&f);
        if (r < 0)
            return 0; /* hulld is gone; the result is in the store */
    }
}
