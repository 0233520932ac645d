/* hulld — the sandbox service.
 *
 *     hulld [--socket PATH] [--state-dir DIR] [--listen HOST:PORT --tls-cert F --tls-key F]
 *     hulld --worker --redis redis://HOST:PORT [--concurrency N] [--name NAME] ...
 *
 * Runs in the foreground. Start-up finishes what a previous hulld left
 * (runs it was running, sandboxes it kept), then serves until SIGTERM or
 * SIGINT, when it stops taking work, finishes what it has, and exits 0. */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <unistd.h>

#include "daemon.h"
#include "util/error.h"
#include "util/log.h"

struct hulld hulld;

/* Until the queue branch brings worker.c. */
__attribute__((weak)) int hulld_worker_main(const struct hulld_options *o)
{
    (void)o;
    fprintf(stderr, "hulld: --worker: worker mode not built\n");
    return 1;
}

static void usage(FILE *out)
{
    fprintf(out,
            "usage: hulld [options]\n"
            "       hulld --worker --redis redis://HOST:PORT [options]\n"
            "\n"
            "The hull sandbox service: a REST API (docs/api.md) for one-shot runs and\n"
            "long-lived sandboxes. Runs in the foreground; SIGTERM drains and stops.\n"
            "\n"
            "  --socket PATH           unix socket (default " HULLD_DEFAULT_SOCKET ", mode 0660)\n"
            "  --state-dir DIR         database and state (default " HULLD_DEFAULT_STATE_DIR ")\n"
            "  --listen HOST:PORT      also serve HTTPS on TCP (needs --tls-cert, --tls-key)\n"
            "  --tls-cert FILE         PEM certificate (chain) for --listen\n"
            "  --tls-key FILE          PEM private key for --listen\n"
            "  --max-runs N            runs at once (default: 2 per CPU)\n"
            "  --queue-depth N         runs waiting behind them before 429 (default 64)\n"
            "  --tenant-runs N         runs queued or running per tenant (default 32)\n"
            "  --tenant-sandboxes N    live sandboxes per tenant (default 8)\n"
            "  --max-body BYTES        request body limit (default 8M)\n"
            "  --client-timeout SECS   idle connection limit (default 30)\n"
            "  --max-connections N     open connections (default 256)\n"
            "  --worker                pull runs from Redis instead of serving HTTP\n"
            "  --redis URL             the Redis queue (redis://HOST:PORT)\n"
            "Worker mode (docs/queue.md):\n"
            "  --concurrency N         jobs at once (the same as --max-runs)\n"
            "  --name NAME             worker name, unique among live workers\n"
            "                          (default HOSTNAME:PID)\n"
            "  --heartbeat MS          heartbeat period; dead after 3 (default 1000)\n"
            "  --reap-interval MS      how often to look for dead workers (default 2 x heartbeat)\n"
            "  --max-attempts N        starts per job before dead-lettering (default 3)\n"
            "  --result-ttl SECS       how long results are kept (default 3600)\n"
            "  --allow GRANT,...       run jobs that ask for these (host-network,\n"
            "                          process-isolation); others are dead-lettered\n"
            "  --debug                 log debug messages\n"
            "  --help                  this text\n"
            "\n"
            "Tokens: hull token create --state-dir DIR --role user --tenant NAME\n");
}

static int parse_uint(const char *opt, const char *s, unsigned lo, unsigned hi, unsigned *out)
{
    char *end;
    errno = 0;
    unsigned long v = strtoul(s, &end, 10);
    if (errno || end == s || *end || v < lo || v > hi) {
        fprintf(stderr, "hulld: %s: '%s' is not a number from %u to %u\n", opt, s, lo, hi);
        return -1;
    }
    *out = (unsigned)v;
    return 0;
}

static int parse_args(int argc, char **argv, struct hulld_options *o, const char **helper)
{
    enum {
        O_SOCKET = 256,
        O_STATE,
        O_LISTEN,
        O_CERT,
        O_KEY,
        O_WORKER,
        O_REDIS,
        O_MAXRUNS,
        O_QUEUE,
        O_TRUNS,
        O_TSBX,
        O_BODY,
        O_TIMEOUT,
        O_CONNS,
        O_DEBUG,
        O_HELPER,
        O_CONCURRENCY,
        O_WNAME,
        O_HEARTBEAT,
        O_REAP,
        O_ATTEMPTS,
        O_RESULT_TTL,
        O_ALLOW
    };
    static const struct option opts[] = {
        {"socket", required_argument, NULL, O_SOCKET},
        {"state-dir", required_argument, NULL, O_STATE},
        {"listen", required_argument, NULL, O_LISTEN},
        {"tls-cert", required_argument, NULL, O_CERT},
        {"tls-key", required_argument, NULL, O_KEY},
        {"worker", no_argument, NULL, O_WORKER},
        {"redis", required_argument, NULL, O_REDIS},
        {"max-runs", required_argument, NULL, O_MAXRUNS},
        {"queue-depth", required_argument, NULL, O_QUEUE},
        {"tenant-runs", required_argument, NULL, O_TRUNS},
        {"tenant-sandboxes", required_argument, NULL, O_TSBX},
        {"max-body", required_argument, NULL, O_BODY},
        {"client-timeout", required_argument, NULL, O_TIMEOUT},
        {"max-connections", required_argument, NULL, O_CONNS},
        {"debug", no_argument, NULL, O_DEBUG},
        {"helper", required_argument, NULL, O_HELPER},
        {"concurrency", required_argument, NULL, O_CONCURRENCY},
        {"name", required_argument, NULL, O_WNAME},
        {"heartbeat", required_argument, NULL, O_HEARTBEAT},
        {"reap-interval", required_argument, NULL, O_REAP},
        {"max-attempts", required_argument, NULL, O_ATTEMPTS},
        {"result-ttl", required_argument, NULL, O_RESULT_TTL},
        {"allow", required_argument, NULL, O_ALLOW},
        {"help", no_argument, NULL, 'h'},
        {0},
    };
    long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
    *o = (struct hulld_options){
        .socket_path = HULLD_DEFAULT_SOCKET,
        .state_dir = HULLD_DEFAULT_STATE_DIR,
        .max_runs = (unsigned)(ncpu > 0 ? 2 * ncpu : 2),
        .queue_depth = 64,
        .max_body = 8u << 20,
        .client_timeout = 30,
        .tenant_runs = 32,
        .tenant_sandboxes = 8,
        .max_connections = 256,
    };
    int c;
    unsigned v;
    uint64_t bytes;
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        switch (c) {
        case O_SOCKET:
            o->socket_path = optarg;
            break;
        case O_STATE:
            o->state_dir = optarg;
            break;
        case O_LISTEN:
            o->listen = optarg;
            break;
        case O_CERT:
            o->tls_cert = optarg;
            break;
        case O_KEY:
            o->tls_key = optarg;
            break;
        case O_WORKER:
            o->worker = true;
            break;
        case O_REDIS:
            o->redis_url = optarg;
            break;
        case O_DEBUG:
            o->debug = true;
            break;
        case O_HELPER:
            *helper = optarg;
            break;
        case O_WNAME:
            o->worker_name = optarg;
            break;
        case O_CONCURRENCY:
            if (parse_uint("--concurrency", optarg, 1, 256, &o->max_runs) < 0)
                return -1;
            break;
        case O_HEARTBEAT:
            if (parse_uint("--heartbeat", optarg, 10, 600000, &o->heartbeat_ms) < 0)
                return -1;
            break;
        case O_REAP:
            if (parse_uint("--reap-interval", optarg, 10, 3600000, &o->reap_interval_ms) < 0)
                return -1;
            break;
        case O_ATTEMPTS:
            if (parse_uint("--max-attempts", optarg, 1, 100, &o->max_attempts) < 0)
                return -1;
            break;
        case O_ALLOW: {
            hull_error e = NULL;
            if (hull_allow_parse(optarg, &o->worker_allow, &e) < 0) {
                fprintf(stderr, "hulld: --allow: %s\n", hull_error_msg(e));
                hull_error_free(&e);
                return -1;
            }
            break;
        }
        case O_RESULT_TTL:
            if (parse_uint("--result-ttl", optarg, 1, 365 * 86400, &o->result_ttl_s) < 0)
                return -1;
            break;
        case O_MAXRUNS:
            if (parse_uint("--max-runs", optarg, 1, 4096, &o->max_runs) < 0)
                return -1;
            break;
        case O_QUEUE:
            if (parse_uint("--queue-depth", optarg, 0, 1000000, &o->queue_depth) < 0)
                return -1;
            break;
        case O_TRUNS:
            if (parse_uint("--tenant-runs", optarg, 1, 1000000, &o->tenant_runs) < 0)
                return -1;
            break;
        case O_TSBX:
            if (parse_uint("--tenant-sandboxes", optarg, 0, 100000, &o->tenant_sandboxes) < 0)
                return -1;
            break;
        case O_TIMEOUT:
            if (parse_uint("--client-timeout", optarg, 1, 86400, &o->client_timeout) < 0)
                return -1;
            break;
        case O_CONNS:
            if (parse_uint("--max-connections", optarg, 1, 65536, &o->max_connections) < 0)
                return -1;
            break;
        case O_BODY:
            if (hull_parse_size(optarg, &bytes) < 0 || bytes < 1024 || bytes > (1ull << 30)) {
                fprintf(stderr, "hulld: --max-body: '%s' is not a size from 1K to 1G\n", optarg);
                return -1;
            }
            o->max_body = (size_t)bytes;
            break;
        case 'h':
            usage(stdout);
            exit(0);
        default:
            fprintf(stderr, "Try 'hulld --help'.\n");
            return -1;
        }
    }
    (void)v;
    if (optind < argc) {
        fprintf(stderr, "hulld: unexpected argument '%s'\nTry 'hulld --help'.\n", argv[optind]);
        return -1;
    }
    if (o->listen && (o->tls_cert == NULL || o->tls_key == NULL)) {
        fprintf(stderr, "hulld: --listen: TCP is served over TLS only: give --tls-cert and "
                        "--tls-key\n");
        return -1;
    }
    if (!o->listen && (o->tls_cert || o->tls_key)) {
        fprintf(stderr, "hulld: --tls-cert/--tls-key: only used with --listen\n");
        return -1;
    }
    if (o->worker_allow && !o->worker) {
        fprintf(stderr, "hulld: --allow: only for --worker (API tokens carry their own grants: "
                        "hull token create --allow)\n");
        return -1;
    }
    if (o->worker && o->redis_url == NULL) {
        fprintf(stderr, "hulld: --worker: needs --redis redis://HOST:PORT\n");
        return -1;
    }
    return 0;
}

/* One hulld per state directory: recovery assumes nobody else is running
 * the runs it finds unfinished. */
static int lock_state(const char *dir, hull_error *err)
{
    char path[PATH_MAX];
    snprintf(path, sizeof(path), "%s/hulld.lock", dir);
    int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (fd < 0)
        return hull_error_errno(err, "%s", path);
    if (flock(fd, LOCK_EX | LOCK_NB) < 0) {
        close(fd);
        return hull_error_set(err, EBUSY, "%s: another hulld uses this state directory", dir);
    }
    return fd;
}

/* Finish what a previous hulld (crashed, killed) left behind. */
static void recover(void)
{
    size_t removed = 0;
    hull_error e = NULL;
    if (hull_sandbox_cleanup(&removed, &e) < 0) {
        hull_warn("start-up: %s", hull_error_msg(e));
        hull_error_free(&e);
    }
    if (removed)
        hull_log(HULL_LOG_INFO, "start-up: removed %zu sandboxes left by dead supervisors",
                 removed);
    /* Sandboxes die with their keepers, which die with the old hulld. */
    if (hull_sandbox_rec_destroy_all(hulld.store, "hulld restarted", &e) < 0) {
        hull_warn("start-up: %s", hull_error_msg(e));
        hull_error_free(&e);
    }
    runs_recover();
}

static int serve(const struct hulld_options *o)
{
    hull_error err = NULL;
    int lockfd = -1;
    hulld.o = o;
    /* Signals are taken by the main thread alone (sigtimedwait): blocked
     * before any thread exists, so every thread inherits the mask. */
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGHUP);
    sigprocmask(SIG_BLOCK, &set, NULL);
    signal(SIGPIPE, SIG_IGN);

    if (hull_store_open(o->state_dir, &hulld.store, &err) < 0 ||
        (lockfd = lock_state(o->state_dir, &err)) < 0)
        goto fail;
    recover();
    if (runner_start(&err) < 0 || http_start(&err) < 0)
        goto fail;
    hull_log(HULL_LOG_INFO, "hulld %s: listening on %s%s%s (%u run slots, queue %u)", HULL_VERSION,
             o->socket_path, o->listen ? " and https://" : "", o->listen ? o->listen : "",
             o->max_runs, o->queue_depth);
    fprintf(stderr, "hulld: ready\n");

    for (;;) {
        struct timespec tick = {.tv_sec = 1};
        int sig = sigtimedwait(&set, NULL, &tick);
        if (sig == SIGTERM || sig == SIGINT)
            break;
        sandboxes_reap(false);
        pending_flush();
    }
    hull_log(HULL_LOG_INFO, "hulld: stopping: finishing queued and running runs "
                            "(signal again to cancel them)");
    hulld.draining = 1;
    bool cancelled = false;
    while (!runner_drain(200)) {
        struct timespec now = {0};
        int sig = sigtimedwait(&set, NULL, &now);
        if (!cancelled && (sig == SIGTERM || sig == SIGINT)) {
            hull_log(HULL_LOG_INFO, "hulld: cancelling queued and running runs");
            runner_cancel_all();
            cancelled = true;
        }
    }
    http_stop();
    sandboxes_reap(true);
    runner_stop();
    pending_flush();
    pending_drop_all();
    hull_store_close(hulld.store);
    close(lockfd);
    hull_log(HULL_LOG_INFO, "hulld: stopped");
    return 0;
fail:
    fprintf(stderr, "hulld: %s\n", hull_error_msg(err));
    hull_error_free(&err);
    return 1;
}

int main(int argc, char **argv)
{
    struct hulld_options o;
    const char *helper = NULL;
    if (parse_args(argc, argv, &o, &helper) < 0)
        return 2;
    hull_error err = NULL;
    if (hull_log_init(NULL, "text", o.debug, &err) < 0) {
        fprintf(stderr, "hulld: %s\n", hull_error_msg(err));
        hull_error_free(&err);
        return 1;
    }
    if (helper)
        return helper_main(helper, o.state_dir);
    if (o.worker)
        return hulld_worker_main(&o);
    if (geteuid() != 0) {
        fprintf(stderr, "hulld: must run as root (it creates namespaces and cgroups)\n");
        return 1;
    }
    return serve(&o);
}
