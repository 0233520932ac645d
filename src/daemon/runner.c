/* Runs: a bounded queue in front of a fixed pool of worker processes.
 *
 * Each slot is a dispatcher thread owning one single-threaded worker
 * process (helper.c). A dispatcher takes the oldest queued job, hands the
 * request and a cancel eventfd to its worker, and waits for the result.
 * hulld records the result (its own connection to the store, whose pages
 * are warm: a write from the worker's connection had to read them again
 * first, a millisecond per run); the next frame it sends the worker (the
 * next run) says the last result is taken. A worker that sees its socket
 * closed first records its last result itself (a no-op when hulld did), so
 * a run whose hulld died is still finished and recorded, then exits.
 * Cancel writes the eventfd: the library kills the run cleanly (verdict
 * "killed"); a worker is never SIGKILLed, which would leave the run's
 * cgroup and state behind. */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "daemon.h"
#include "run_stream.h"
#include "runner.h"
#include "service/job.h"
#include "util/clock.h"
#include "util/error.h"
#include "util/json.h"
#include "util/log.h"
#include "util/proc.h"

struct slot {
    pid_t pid;
    unsigned long long start;
    int sock;
    bool busy; /* running a job, for its dispatcher or for a borrower */
};

static struct {
    pthread_mutex_t mu;
    pthread_cond_t work;         /* a job was queued, or stop */
    pthread_cond_t done;         /* a job ended */
    struct run_job *head, *tail; /* queued, oldest first */
    struct run_job *active;      /* every queued or running job */
    unsigned queued, running;
    unsigned long deferred_gen; /* jobs deferred so far (runner_wait_recorded) */
    bool stop;
    pthread_t *threads;
    struct slot *slots; /* dispatcher i owns slots[i] */
    unsigned n_threads;
} pool = {.mu = PTHREAD_MUTEX_INITIALIZER,
          .work = PTHREAD_COND_INITIALIZER,
          .done = PTHREAD_COND_INITIALIZER};

static void job_unref_locked(struct run_job *j)
{
    if (--j->refs > 0)
        return;
    if (j->cancel_fd >= 0)
        close(j->cancel_fd);
    hull_error_free(&j->error);
    if (j->stream_fd >= 0)
        close(j->stream_fd);
    if (j->image_hold >= 0)
        close(j->image_hold);
    free(j->request);
    free(j->result);
    free(j);
}

void job_release(struct run_job *j)
{
    pthread_mutex_lock(&pool.mu);
    job_unref_locked(j);
    pthread_mutex_unlock(&pool.mu);
}

void runner_hold_image(struct run_job *j, int fd)
{
    pthread_mutex_lock(&pool.mu);
    if (j->state == JOB_DONE)
        close(fd); /* over already: its worker held its own mark while it ran */
    else
        j->image_hold = fd;
    pthread_mutex_unlock(&pool.mu);
}

static unsigned tenant_load(const char *tenant)
{
    unsigned n = 0;
    for (struct run_job *j = pool.active; j; j = j->next_active)
        n += strcmp(j->tenant, tenant) == 0;
    return n;
}

static void unlink_active(struct run_job *j)
{
    for (struct run_job **p = &pool.active; *p; p = &(*p)->next_active)
        if (*p == j) {
            *p = j->next_active;
            return;
        }
}

static enum submit submit(const char *id, const char *tenant, char *request, bool direct,
                          int stream_fd, struct run_job **out, hull_error *err);

enum submit runner_submit(const char *id, const char *tenant, char *request, bool direct,
                          struct run_job **out, hull_error *err)
{
    return submit(id, tenant, request, direct, -1, out, err);
}

enum submit runner_submit_stream(const char *id, const char *tenant, char *request, int stream_fd,
                                 struct run_job **out, hull_error *err)
{
    return submit(id, tenant, request, false, stream_fd, out, err);
}

static enum submit submit(const char *id, const char *tenant, char *request, bool direct,
                          int stream_fd, struct run_job **out, hull_error *err)
{
    *out = NULL;
    struct run_job *j = calloc(1, sizeof(*j));
    int efd = eventfd(0, EFD_CLOEXEC);
    if (j == NULL || efd < 0) {
        free(j);
        free(request);
        if (efd >= 0)
            close(efd);
        if (stream_fd >= 0)
            close(stream_fd);
        hull_error_set(err, ENOMEM, "out of resources");
        return SUBMIT_ERROR;
    }
    j->stream_fd = stream_fd;
    j->image_hold = -1;
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
    /* Nothing waiting and a slot idle: the caller's own thread will run it
     * (job_wait), one hand-over and one write fewer on the way of a
     * synchronous run. */
    for (unsigned i = 0; res == SUBMIT_OK && direct && pool.head == NULL && i < pool.n_threads; i++)
        if (!pool.slots[i].busy && pool.slots[i].sock >= 0) {
            j->slot = &pool.slots[i];
            break;
        }
    /* A queued job's row exists before any dispatcher can see the job; a
     * job run on the caller's thread gets its row while its worker starts
     * it (dispatch), so the insert does not delay the run. */
    hull_rfc3339_now(j->created_at, sizeof(j->created_at));
    if (j->slot) {
        snprintf(j->started_at, sizeof(j->started_at), "%s", j->created_at);
        j->unrecorded = true;
    }
    if (res == SUBMIT_OK && j->slot == NULL &&
        hull_run_insert(hulld.store, id, tenant, "queued", NULL, j->created_at, err) < 0)
        res = SUBMIT_ERROR;
    if (res != SUBMIT_OK) {
        pthread_mutex_unlock(&pool.mu);
        j->refs = 1;
        j->slot = NULL;
        job_release(j);
        return res;
    }
    j->enqueued_ns = hull_monotonic_ns();
    j->next_active = pool.active;
    pool.active = j;
    if (j->slot) {
        j->slot->busy = true;
        j->started = true;
        j->state = JOB_RUNNING;
        pool.running++;
        pthread_mutex_unlock(&pool.mu);
        *out = j;
        return SUBMIT_OK;
    }
    j->state = JOB_QUEUED;
    if (pool.tail)
        pool.tail->next = j;
    else
        pool.head = j;
    pool.tail = j;
    pool.queued++;
    pthread_cond_signal(&pool.work);
    pthread_mutex_unlock(&pool.mu);
    *out = j;
    return SUBMIT_OK;
}

static char *dispatch(struct slot *s, struct run_job *j, double *lib_ms, char verdict[32],
                      bool *defer);
static void record(struct run_job *j, const char *res, const char *verdict, bool stamped);
static void complete(struct run_job *j, char *res, double lib_ms, const char *verdict, uint64_t t0);

/* A borrowed slot is free again. */
static void slot_return(struct slot *s)
{
    pthread_mutex_lock(&pool.mu);
    s->busy = false;
    /* Its dispatcher may now serve the queue; with nothing queued, waking
     * every dispatcher (to find nothing) cost each run as many thread
     * wake-ups as there are slots. */
    if (pool.head || pool.stop)
        pthread_cond_broadcast(&pool.work);
    pthread_mutex_unlock(&pool.mu);
}

static bool wait_job(struct run_job *j, bool defer)
{
    if (j->slot) {
        struct slot *s = j->slot;
        j->slot = NULL;
        uint64_t t0 = hull_monotonic_ns();
        double lib_ms = 0;
        char verdict[32];
        char *res = dispatch(s, j, &lib_ms, verdict, &defer);
        if (defer) {
            pthread_mutex_lock(&pool.mu);
            j->result = res;
            j->lib_ms = lib_ms;
            snprintf(j->verdict, sizeof(j->verdict), "%s", verdict);
            j->held = s;
            j->t0_ns = t0;
            j->deferred = true;
            j->deferred_gen = ++pool.deferred_gen;
            pthread_mutex_unlock(&pool.mu);
            return true;
        }
        complete(j, res, lib_ms, verdict, t0);
        slot_return(s);
    }
    pthread_mutex_lock(&pool.mu);
    while (j->state != JOB_DONE)
        pthread_cond_wait(&pool.done, &pool.mu);
    pthread_mutex_unlock(&pool.mu);
    return false;
}

void job_wait(struct run_job *j)
{
    wait_job(j, false);
}

bool job_wait_answer_first(struct run_job *j)
{
    return wait_job(j, true);
}

void runner_record_deferred(void *job)
{
    struct run_job *j = job;
    struct slot *s = j->held;
    record(j, j->result, j->verdict, j->recorded);
    slot_return(s); /* before the drain can see it done (runner_stop frees slots) */
    complete(j, j->result, j->lib_ms, j->verdict, j->t0_ns);
    job_release(j); /* the caller's */
}

void runner_wait_recorded(const char *id)
{
    pthread_mutex_lock(&pool.mu);
    unsigned long upto = pool.deferred_gen;
    for (;;) {
        bool waiting = false;
        for (struct run_job *j = pool.active; j && !waiting; j = j->next_active)
            waiting =
                j->deferred && j->deferred_gen <= upto && (id == NULL || strcmp(j->id, id) == 0);
        if (!waiting)
            break;
        pthread_cond_wait(&pool.done, &pool.mu);
    }
    pthread_mutex_unlock(&pool.mu);
}

static void finish_locked(struct run_job *j)
{
    if (j->stream_fd >= 0)
        close(j->stream_fd); /* never handed over: its stream ends */
    j->stream_fd = -1;
    if (j->image_hold >= 0)
        close(j->image_hold); /* the run is over: the image may go */
    j->image_hold = -1;
    j->state = JOB_DONE;
    unlink_active(j);
    pthread_cond_broadcast(&pool.done);
}

struct run_job *runner_cancel(const char *id, bool *was_queued)
{
    *was_queued = false;
    pthread_mutex_lock(&pool.mu);
    struct run_job *j = pool.active;
    while (j && strcmp(j->id, id) != 0)
        j = j->next_active;
    if (j == NULL) {
        pthread_mutex_unlock(&pool.mu);
        return NULL;
    }
    j->refs++;
    if (j->state == JOB_QUEUED) {
        struct run_job **p = &pool.head, *prev = NULL;
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

bool runner_drain(unsigned ms)
{
    struct timespec until;
    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_sec += ms / 1000;
    until.tv_nsec += (long)(ms % 1000) * 1000000L;
    if (until.tv_nsec >= 1000000000L) {
        until.tv_sec++;
        until.tv_nsec -= 1000000000L;
    }
    pthread_mutex_lock(&pool.mu);
    while (pool.active && pthread_cond_timedwait(&pool.done, &pool.mu, &until) == 0)
        ;
    bool idle = pool.active == NULL;
    pthread_mutex_unlock(&pool.mu);
    return idle;
}

void runner_cancel_all(void)
{
    pthread_mutex_lock(&pool.mu);
    char(*ids)[40] = NULL;
    size_t n = 0;
    for (struct run_job *j = pool.active; j; j = j->next_active)
        n++;
    ids = calloc(n ? n : 1, sizeof(*ids));
    n = 0;
    for (struct run_job *j = pool.active; ids && j; j = j->next_active)
        snprintf(ids[n++], sizeof(ids[0]), "%s", j->id);
    pthread_mutex_unlock(&pool.mu);
    static const char *const from[] = {"queued", NULL};
    for (size_t i = 0; ids && i < n; i++) {
        bool was_queued = false;
        struct run_job *j = runner_cancel(ids[i], &was_queued);
        hull_error e = NULL;
        if (j && was_queued && hull_run_transition(hulld.store, ids[i], from, "cancelled", &e) < 0)
            pending_transition(ids[i], from, "cancelled", &e);
        if (j)
            job_release(j);
    }
    free(ids);
}

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

/* An idle worker's socket has nothing to read: one that does (EOF: the
 * worker is gone) or fails is dead. */
static bool slot_idle_alive(struct slot *s)
{
    char c;
    return recv(s->sock, &c, 1, MSG_PEEK | MSG_DONTWAIT) < 0 &&
           (errno == EAGAIN || errno == EWOULDBLOCK);
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

void sweep_leftovers(void)
{
    /* The dead helper's sandbox died with it (parent-death signal); its
     * state and cgroup are removed now rather than at the next start. */
    size_t n = 0;
    hull_error e = NULL;
    if (hull_sandbox_cleanup(&n, &e) < 0) {
        hull_warn("%s", hull_error_msg(e));
        hull_error_free(&e);
    }
}

/* Record the run's end (hulld's own write; pending.c keeps trying while
 * the store refuses). */
static void record(struct run_job *j, const char *res, const char *verdict, bool stamped)
{
    hull_error e = NULL;
    if (!j->deferred) /* else stamped when answered */
        hull_rfc3339_now(j->finished_at, sizeof(j->finished_at));
    int r = hull_run_finish_at(hulld.store, j->id, res, verdict, j->finished_at, &e);
    if (r < 0)
        pending_finish(j->id, res, verdict, &e);
    /* 0: it had ended already (cancelled, interrupted): the row says how. */
    j->recorded = r == 1 && stamped;
}

/* The row of a job handed straight to its worker, written while the
 * worker starts the run: 0, or -1 with j->error (the store refused: the run
 * must not go on unrecorded). */
static int insert_row(struct slot *s, struct run_job *j)
{
    if (!j->unrecorded)
        return 0;
    j->unrecorded = false;
    return hull_run_insert_running(hulld.store, j->id, j->tenant, s->pid, s->start, j->created_at,
                                   &j->error);
}

/* The store refused the row of a run its worker has begun: the run is
 * cancelled (the library kills it cleanly), its result taken and dropped.
 * The caller answers j->error; nothing of the run is recorded or kept. */
static void drop_run(struct slot *s, struct run_job *j)
{
    uint64_t one = 1;
    if (write(j->cancel_fd, &one, sizeof(one)) < 0)
        hull_warn("run %s: cancel: %s", j->id, strerror(errno));
    struct frame f;
    int r = frame_recv(s->sock, &f);
    if (r == 0) {
        frame_free(&f);
        /* "recorded": the worker forgets the result (there is no row). */
        json_object *hdr = json_object_new_object();
        json_object_object_add(hdr, "op", json_object_new_string("recorded"));
        r = frame_send(s->sock, hdr, NULL, 0, -1);
        json_object_put(hdr);
    }
    if (r < 0) {
        hull_log(HULL_LOG_ERROR, "run %s: worker %d died", j->id, (int)s->pid);
        slot_close(s);
        sweep_leftovers();
    }
}

/* One run on this slot's worker; returns the result JSON (NULL with
 * j->error when its row could not be written). *defer: the caller answers
 * before the end is recorded (runner_record_deferred); left true only when
 * the run ended in its worker with a result (the other ends are recorded
 * here). */
static char *dispatch(struct slot *s, struct run_job *j, double *lib_ms, char verdict[32],
                      bool *defer)
{
    bool may_defer = *defer;
    *defer = false;
    snprintf(verdict, 32, "internal_error");
    bool stamped = true; /* the row's times are those in j */
    if (s->sock >= 0 && !slot_idle_alive(s)) {
        /* Died while idle: replaced before the run is handed over, so the
         * run does not end "died" in a worker that never saw it. */
        hull_log(HULL_LOG_ERROR, "worker %d died while idle", (int)s->pid);
        slot_close(s);
        sweep_leftovers();
    }
    if (s->sock < 0 && slot_spawn(s) < 0) {
        if (insert_row(s, j) < 0)
            return NULL;
        char *res = run_failed_result("no worker process could be started");
        record(j, res, verdict, false);
        return res;
    }
    hull_error e = NULL;
    if (!j->started) {
        hull_rfc3339_now(j->started_at, sizeof(j->started_at));
        int rc = hull_run_start(hulld.store, j->id, s->pid, s->start, j->started_at, &e);
        if (rc < 0) {
            /* It runs all the same: its end is recorded from "queued" too. */
            hull_log(HULL_LOG_ERROR, "run %s: %s", j->id, hull_error_msg(e));
            hull_error_free(&e);
        }
        stamped = rc == 1;
    }
    json_object *hdr = json_object_new_object();
    int r = 0;
    if (j->stream_fd >= 0) {
        /* The worker's end of the stream goes first; hulld keeps none of
         * it, so the stream ends when the worker closes it. */
        json_object_object_add(hdr, "op", json_object_new_string("stream"));
        r = frame_send(s->sock, hdr, NULL, 0, j->stream_fd);
        close(j->stream_fd);
        j->stream_fd = -1;
        json_object_put(hdr);
        hdr = json_object_new_object();
    }
    json_object_object_add(hdr, "op", json_object_new_string("run"));
    json_object_object_add(hdr, "id", json_object_new_string(j->id));
    if (r == 0)
        r = frame_send(s->sock, hdr, j->request, strlen(j->request), j->cancel_fd);
    json_object_put(hdr);
    if (insert_row(s, j) < 0) {
        if (r == 0)
            drop_run(s, j);
        return NULL;
    }
    struct frame f;
    if (r < 0 || frame_recv(s->sock, &f) < 0) {
        /* The worker died under this run: say so, and start a new one.
         * Not retried: hulld cannot tell whether the worker had begun it,
         * and a run's program is started at most once. */
        hull_log(HULL_LOG_ERROR, "run %s: worker %d died", j->id, (int)s->pid);
        slot_close(s);
        sweep_leftovers();
        char *res = run_failed_result("the worker process running it died");
        record(j, res, verdict, stamped);
        return res;
    }
    char *res = f.data;
    f.data = NULL;
    json_object *lib = hj_get(f.hdr, "lib_ms"), *v = hj_get(f.hdr, "verdict");
    *lib_ms = lib ? json_object_get_double(lib) : 0;
    if (v)
        snprintf(verdict, 32, "%s", json_object_get_string(v));
    frame_free(&f);
    /* Ours now: the next frame the worker gets (the next run, or EOF)
     * tells it so; a separate acknowledgement cost a wake-up of the worker
     * on the way of every answer. */
    if (may_defer) {
        /* The row's end as it will be written: the answer shows it. */
        hull_rfc3339_now(j->finished_at, sizeof(j->finished_at));
        j->recorded = stamped;
        *defer = true;
        return res;
    }
    record(j, res, verdict, stamped);
    return res;
}

/* The job's end is recorded: it is done (t0: when its dispatch began). */
static void complete(struct run_job *j, char *res, double lib_ms, const char *verdict, uint64_t t0)
{
    metrics_run_done(verdict, (double)(hull_monotonic_ns() - t0) / 1e9);
    pthread_mutex_lock(&pool.mu);
    j->result = res;
    j->lib_ms = lib_ms;
    j->deferred = false;
    pool.running--;
    finish_locked(j);
    job_unref_locked(j);
    pthread_mutex_unlock(&pool.mu);
}

/* Run j on slot s (busy, ours) and complete it. */
static void run_on_slot(struct slot *s, struct run_job *j)
{
    uint64_t t0 = hull_monotonic_ns();
    double lib_ms = 0;
    char verdict[32];
    bool defer = false;
    char *res = dispatch(s, j, &lib_ms, verdict, &defer);
    complete(j, res, lib_ms, verdict, t0);
}

static void *dispatcher(void *arg)
{
    struct slot *s = arg;
    pthread_mutex_lock(&pool.mu);
    for (;;) {
        while ((pool.head == NULL || s->busy) && !pool.stop)
            pthread_cond_wait(&pool.work, &pool.mu);
        if (pool.head == NULL || s->busy)
            break; /* stopping */
        struct run_job *j = pool.head;
        pool.head = j->next;
        if (pool.head == NULL)
            pool.tail = NULL;
        pool.queued--;
        pool.running++;
        j->state = JOB_RUNNING;
        s->busy = true;
        pthread_mutex_unlock(&pool.mu);
        run_on_slot(s, j);
        pthread_mutex_lock(&pool.mu);
        s->busy = false;
    }
    pthread_mutex_unlock(&pool.mu);
    slot_close(s);
    return NULL;
}

int runner_start(hull_error *err)
{
    pool.n_threads = hulld.o->max_runs;
    pool.threads = calloc(pool.n_threads, sizeof(pthread_t));
    pool.slots = calloc(pool.n_threads, sizeof(struct slot));
    if (pool.threads == NULL || pool.slots == NULL)
        return hull_error_set(err, ENOMEM, "out of memory");
    for (unsigned i = 0; i < pool.n_threads; i++) {
        pool.slots[i].pid = pool.slots[i].sock = -1;
        /* Started here, before anyone can borrow the slot; later only the
         * slot's current holder restarts a worker that died. */
        slot_spawn(&pool.slots[i]);
        int r = pthread_create(&pool.threads[i], NULL, dispatcher, &pool.slots[i]);
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
    free(pool.slots);
    pool.threads = NULL;
    pool.slots = NULL;
    pool.n_threads = 0;
}
