/* hulld --worker: a queue worker instead of an HTTP server.
 *
 *     hulld --worker --redis redis://HOST:PORT [--concurrency N] [--name NAME]
 *           [--heartbeat MS] [--reap-interval MS] [--max-attempts N] [--result-ttl SECS]
 *
 * The loop itself is libhull's (src/lib/service/queue_worker.c; protocol in
 * docs/queue.md); this front end only maps the options and turns SIGTERM
 * and SIGINT into "finish the running jobs, then stop". The process stays
 * single-threaded: every job's sandbox is run by a forked child. */
#include <signal.h>
#include <stdio.h>
#include <unistd.h>

#include "daemon.h"
#include "service/queue.h"

static volatile sig_atomic_t stop;

static void on_stop(int sig)
{
    (void)sig;
    stop = 1;
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

    struct hull_queue_worker_opts q = {
        .redis_url = o->redis_url,
        .name = o->worker_name,
        .concurrency = o->max_runs,
        .heartbeat_ms = o->heartbeat_ms,
        .reap_interval_ms = o->reap_interval_ms,
        .max_attempts = o->max_attempts,
        .result_ttl_s = o->result_ttl_s,
        .allow = o->worker_allow,
        .stop = &stop,
    };
    hull_error err = NULL;
    if (hull_queue_worker_run(&q, &err) < 0) {
        fprintf(stderr, "hulld: %s\n", hull_error_msg(err));
        hull_error_free(&err);
        return 1;
    }
    return 0;
}
