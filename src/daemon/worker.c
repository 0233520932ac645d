/* hulld --worker: a queue worker instead of an HTTP server.
 *
 *     hulld --worker --redis redis://HOST:PORT [--concurrency N] [--name NAME]
 *           [--heartbeat MS] [--reap-interval MS] [--max-attempts N] [--result-ttl SECS]
 *
 * The loop itself is libhull's (src/lib/service/queue_worker.c; protocol in
 * docs/queue.md); this front end only maps the options and turns SIGTERM
 * and SIGINT into "finish the running jobs, then stop", and gives the loop
 * its runners: per slot, one persistent `hull-worker --helper runner` (the
 * same single-threaded helper and frames as the HTTP runs' workers), fed one
 * job at a time, with an eventfd that kills it when written (a job someone
 * asked to stop); it dies with this process (parent-death signal). */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/wait.h>
#include <unistd.h>

#include "daemon.h"
#include "service/queue.h"
#include "util/error.h"
#include "util/json.h"

static volatile sig_atomic_t stop;

static void on_stop(int sig)
{
    (void)sig;
    stop = 1;
}

struct runner_slot {
    pid_t pid; /* -1: none */
    int sock;
    int cancel; /* the running job's eventfd, handed to the runner: written to kill it */
};

static struct runner_slot *slots;

static void qrunner_close(void *ctx, unsigned i)
{
    (void)ctx;
    struct runner_slot *s = &slots[i];
    if (s->sock >= 0)
        close(s->sock); /* EOF: it exits */
    if (s->pid > 0)
        waitpid(s->pid, NULL, 0);
    if (s->cancel >= 0)
        close(s->cancel);
    s->sock = s->pid = s->cancel = -1;
}

/* The library polls the eventfd and kills the run cleanly (verdict
 * killed): the runner itself lives on for the next job. */
static void qrunner_cancel(void *ctx, unsigned i)
{
    (void)ctx;
    uint64_t one = 1;
    if (slots[i].cancel >= 0 && write(slots[i].cancel, &one, sizeof(one)) < 0)
        fprintf(stderr, "hulld: worker: cancel: %s\n", strerror(errno));
}

/* A runner that died while idle (its socket shows it only on use) is
 * replaced before the job is handed over: the job never reached it, so it
 * must not cost an attempt. */
static int qrunner_start(void *ctx, unsigned i, const char *id, const char *request, pid_t *pid,
                         hull_error *err)
{
    struct runner_slot *s = &slots[i];
    /* One per job: a cancel written late never reaches the next one. */
    if (s->cancel >= 0)
        close(s->cancel);
    if ((s->cancel = eventfd(0, EFD_CLOEXEC)) < 0)
        return hull_error_errno(err, "eventfd");
    json_object *hdr = json_object_new_object();
    json_object_object_add(hdr, "op", json_object_new_string("run"));
    json_object_object_add(hdr, "id", json_object_new_string(id));
    int sent = -1;
    for (int tries = 0; sent < 0 && tries < 2; tries++) {
        if (s->pid < 0) {
            s->pid = helper_spawn_bound("runner", true, &s->sock, err);
            if (s->pid < 0)
                break;
        }
        sent = frame_send(s->sock, hdr, request, strlen(request), s->cancel);
        if (sent < 0 && tries == 0)
            qrunner_close(ctx, i);
    }
    json_object_put(hdr);
    if (s->pid < 0)
        return -1;
    /* A send that failed twice shows as the runner's death when read. */
    *pid = s->pid;
    return s->sock;
}

static int qrunner_collect(void *ctx, unsigned i, char **result, char *why, size_t n)
{
    struct runner_slot *s = &slots[i];
    if (s->cancel >= 0) /* its job is over, however it went */
        close(s->cancel);
    s->cancel = -1;
    struct frame f;
    if (frame_recv(s->sock, &f) < 0) {
        int status = 0;
        close(s->sock);
        pid_t r = s->pid > 0 ? waitpid(s->pid, &status, 0) : -1;
        s->sock = s->pid = -1;
        if (r > 0 && WIFSIGNALED(status))
            snprintf(why, n, "its runner was killed by signal %d", WTERMSIG(status));
        else if (r > 0)
            snprintf(why, n, "its runner exited with status %d", WEXITSTATUS(status));
        else
            snprintf(why, n, "its runner was lost: %s", strerror(errno));
        (void)ctx;
        return -1;
    }
    json_object *error = hj_get(f.hdr, "error");
    int rc = 0;
    if (error) {
        snprintf(why, n, "%s", json_object_get_string(error));
        rc = 1;
    } else {
        *result = f.data;
        f.data = NULL;
    }
    frame_free(&f);
    return rc;
}

int hulld_worker_main(const struct hulld_options *o)
{
    if (geteuid() != 0) {
        fprintf(stderr, "hulld: must run as root (it creates namespaces and cgroups)\n");
        return 1;
    }
    /* No SA_RESTART: a wait in the loop returns at once and sees the flag. */
    struct sigaction sa = {.sa_handler = on_stop};
    sigemptyset(&sa.sa_mask);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);

    static const struct hull_queue_runner runner = {.start = qrunner_start,
                                                    .collect = qrunner_collect,
                                                    .close = qrunner_close,
                                                    .cancel = qrunner_cancel};
    struct hull_queue_worker_opts q = {
        .redis_url = o->redis_url,
        .name = o->worker_name,
        .concurrency = o->max_runs,
        .heartbeat_ms = o->heartbeat_ms,
        .reap_interval_ms = o->reap_interval_ms,
        .max_attempts = o->max_attempts,
        .result_ttl_s = o->result_ttl_s,
        .allow = o->worker_allow,
        .check = ceiling_check,
        .stop = &stop,
        .runner = &runner,
    };
    unsigned n = o->max_runs ? o->max_runs : 1;
    slots = calloc(n, sizeof(*slots));
    if (slots == NULL) {
        fprintf(stderr, "hulld: out of memory\n");
        return 1;
    }
    for (unsigned i = 0; i < n; i++)
        slots[i].pid = slots[i].sock = slots[i].cancel = -1;
    hulld.o = o; /* the helpers' --state-dir and --image-root */
    hull_error err = NULL;
    int rc = hull_queue_worker_run(&q, &err);
    free(slots);
    if (rc < 0) {
        fprintf(stderr, "hulld: %s\n", hull_error_msg(err));
        hull_error_free(&err);
        return 1;
    }
    return 0;
}
