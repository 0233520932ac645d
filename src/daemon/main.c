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
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <unistd.h>

#include "cluster.h"
#include "daemon.h"
#include "image/image.h"
#include "sbx_metrics.h"
#include "service/redis.h"
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
            "  --tenant-streams N      streams, waits, watches and uploads a tenant holds open\n"
            "                          (default: a quarter of --max-connections)\n"
            "  --max-body BYTES        request body limit (default 8M)\n"
            "  --process-buffer BYTES  output kept per sandbox process (default 1M)\n"
            "  --metrics-interval MS   how often each sandbox's usage is sampled (default 5000)\n"
            "  --tenant-templates N    sandbox templates per tenant (default 16)\n"
            "  --template-max BYTES    files a template keeps, at most (default 1G)\n"
            "  --client-timeout SECS   idle connection limit, and the time a request head\n"
            "                          may take (default 30)\n"
            "  --max-connections N     open connections (default 256)\n"
            "  --max-client-connections N  open --listen connections from one client\n"
            "                          address (default: a quarter of --max-connections)\n"
            "  --image-root DIR        image store (default $HULL_IMAGE_ROOT, else\n"
            "                          " HULL_IMAGE_DEFAULT_ROOT ")\n"
            "  --authfile FILE         registry credentials for POST /v1/images pulls\n"
            "  --cert-dir DIR          extra CA certificates (*.crt) for registries\n"
            "  --max-pulls N           image pulls at once before 429 (default 2)\n"
            "  --pull-timeout SECS     a pull's whole time limit (default 3600)\n"
            "  --run-retention AGE     remove runs that ended longer ago than AGE (12h, 30d),\n"
            "                          with their results (default: keep them all)\n"
            "  --sandbox-retention AGE the same for the records of destroyed sandboxes\n"
            "  --audit-retention AGE   the same for audit log entries written longer ago\n"
            "  --max-limit NAME=VALUE  the most a request's limits.NAME may ask for (cpu_time,\n"
            "                          wall_time, memory, output, tmp_size, pids, open_files,\n"
            "                          cpus; repeatable): more is refused with 400\n"
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
            "                          process-isolation, publish-public, host-egress);\n"
            "                          others are dead-lettered\n"
            "Cluster (docs/cluster.md):\n"
            "  --cluster URL           join the fleet registered in Redis (redis://HOST:PORT)\n"
            "  --node NAME             this node's name, unique in the fleet\n"
            "  --advertise HOST:PORT   where other nodes reach --listen\n"
            "  --node-label KEY=VALUE  a label placement constraints match (repeatable)\n"
            "  --node-capacity LIST    override what is detected: cpus=N,memory=SIZE,\n"
            "                          disk=SIZE,vm-slots=N\n"
            "  --placement POLICY      spread (default) or binpack\n"
            "  --node-down-after SECS  a node without heartbeats this long is down (15)\n"
            "  --cluster-ca FILE       CA certificate(s) the other nodes' TLS is checked with\n"
            "  --cluster-secret FILE   the fleet's shared secret (0600): nodes moving\n"
            "                          microVM sandboxes between them sign with it\n"
            "  --cluster-snapshots DIR where microVM sandboxes made with \"restart\":\n"
            "                          \"from-snapshot\" are saved (shared by every node)\n"
            "  --cluster-snapshot-every SECS  how often they are saved (30)\n"
            "  --debug                 log debug messages\n"
            "  --help                  this text\n"
            "  --version               print the version\n"
            "\n"
            "Tokens: hull token create --state-dir DIR --role user --tenant NAME\n");
}

static int parse_uint(const char *opt, const char *s, unsigned lo, unsigned hi, unsigned *out)
{
    char *end;
    errno = 0;
    unsigned long v = strtoul(s, &end, 10);
    /* Digits only: strtoul also takes " 5", "+5" and "-1" (wrapped). */
    if (!(s[0] >= '0' && s[0] <= '9') || errno || end == s || *end || v < lo || v > hi) {
        fprintf(stderr, "hulld: %s: '%s' is not a number from %u to %u\n", opt, s, lo, hi);
        return -1;
    }
    *out = (unsigned)v;
    return 0;
}

/* A duration as the sandbox's limits take it (500ms, 2s, 1m, 12h) or in
 * days (30d), from a second to a hundred years. */
static int parse_age(const char *opt, const char *s, uint64_t *ms)
{
    size_t n = strlen(s);
    uint64_t v = 0;
    int ok;
    if (n > 1 && s[n - 1] == 'd' && strspn(s, "0123456789") == n - 1) {
        char num[24];
        snprintf(num, sizeof(num), "%.*s", (int)(n - 1), s);
        ok = hull_parse_duration_ms(num, &v) == 0 && v <= 36500ull * 1000;
        v *= 86400;
    } else {
        ok = hull_parse_duration_ms(s, &v) == 0;
    }
    if (!ok || v < 1000 || v > 36500ull * 86400 * 1000) {
        fprintf(stderr, "hulld: %s: '%s' is not a duration from 1s to 36500d (12h, 30d)\n", opt, s);
        return -1;
    }
    *ms = v;
    return 0;
}

/* The options, as a table: what each sets in struct hulld_options and how
 * its value is read. */
enum opt_kind {
    OPT_STRING, /* a const char * field */
    OPT_FLAG,   /* a bool field, set */
    OPT_UINT,   /* an unsigned field, lo..hi */
    OPT_SIZE,   /* --max-body: a size_t field, 1K..256M (FRAME_MAX) */
    OPT_ALLOW,  /* --allow: grants */
    OPT_HELPER, /* --helper MODE (hidden) */
    OPT_LABEL,  /* --node-label: cluster.c keeps them */
    OPT_LIMIT,  /* --max-limit NAME=VALUE: ceiling.c keeps them */
    OPT_AGE,    /* --*-retention: a uint64_t of ms, 1s..100 years ("30d" too) */
    OPT_HELP,
    OPT_VERSION,
};

struct opt_spec {
    const char *name;
    enum opt_kind kind;
    size_t off; /* of the field in struct hulld_options */
    unsigned lo, hi;
};

#define OFF(f) offsetof(struct hulld_options, f)
static const struct opt_spec opt_specs[] = {
    {"socket", OPT_STRING, OFF(socket_path), 0, 0},
    {"state-dir", OPT_STRING, OFF(state_dir), 0, 0},
    {"listen", OPT_STRING, OFF(listen), 0, 0},
    {"tls-cert", OPT_STRING, OFF(tls_cert), 0, 0},
    {"tls-key", OPT_STRING, OFF(tls_key), 0, 0},
    {"worker", OPT_FLAG, OFF(worker), 0, 0},
    {"redis", OPT_STRING, OFF(redis_url), 0, 0},
    {"max-runs", OPT_UINT, OFF(max_runs), 1, 4096},
    {"queue-depth", OPT_UINT, OFF(queue_depth), 0, 1000000},
    {"tenant-runs", OPT_UINT, OFF(tenant_runs), 1, 1000000},
    {"tenant-sandboxes", OPT_UINT, OFF(tenant_sandboxes), 0, 100000},
    {"max-body", OPT_SIZE, OFF(max_body), 0, 0},
    {"process-buffer", OPT_SIZE, OFF(process_buffer), 0, 0},
    {"metrics-interval", OPT_UINT, OFF(metrics_interval_ms), 100, 3600000},
    {"tenant-templates", OPT_UINT, OFF(tenant_templates), 0, 100000},
    {"tenant-streams", OPT_UINT, OFF(tenant_streams), 1, 65536},
    {"template-max", OPT_SIZE, OFF(template_max), 0, 0},
    {"client-timeout", OPT_UINT, OFF(client_timeout), 1, 86400},
    {"max-connections", OPT_UINT, OFF(max_connections), 1, 65536},
    {"max-client-connections", OPT_UINT, OFF(max_client_connections), 1, 65536},
    {"debug", OPT_FLAG, OFF(debug), 0, 0},
    {"image-root", OPT_STRING, OFF(image_root), 0, 0},
    {"authfile", OPT_STRING, OFF(authfile), 0, 0},
    {"cert-dir", OPT_STRING, OFF(cert_dir), 0, 0},
    {"max-pulls", OPT_UINT, OFF(max_pulls), 1, 64},
    {"pull-timeout", OPT_UINT, OFF(pull_timeout), 10, 7 * 86400},
    {"max-limit", OPT_LIMIT, 0, 0, 0},
    {"helper", OPT_HELPER, 0, 0, 0},
    {"concurrency", OPT_UINT, OFF(max_runs), 1, 256},
    {"name", OPT_STRING, OFF(worker_name), 0, 0},
    {"heartbeat", OPT_UINT, OFF(heartbeat_ms), 10, 600000},
    {"reap-interval", OPT_UINT, OFF(reap_interval_ms), 10, 3600000},
    {"max-attempts", OPT_UINT, OFF(max_attempts), 1, 100},
    {"result-ttl", OPT_UINT, OFF(result_ttl_s), 1, 365 * 86400},
    {"allow", OPT_ALLOW, OFF(worker_allow), 0, 0},
    {"cluster", OPT_STRING, OFF(cluster_url), 0, 0},
    {"node", OPT_STRING, OFF(node_name), 0, 0},
    {"advertise", OPT_STRING, OFF(advertise), 0, 0},
    {"node-label", OPT_LABEL, 0, 0, 0},
    {"node-capacity", OPT_STRING, OFF(node_capacity), 0, 0},
    {"placement", OPT_STRING, OFF(placement), 0, 0},
    {"node-down-after", OPT_UINT, OFF(node_down_after_s), 1, 3600},
    {"cluster-ca", OPT_STRING, OFF(cluster_ca), 0, 0},
    {"cluster-secret", OPT_STRING, OFF(cluster_secret), 0, 0},
    {"cluster-snapshots", OPT_STRING, OFF(cluster_snapshots), 0, 0},
    {"cluster-snapshot-every", OPT_UINT, OFF(cluster_snapshot_every_s), 1, 86400},
    {"run-retention", OPT_AGE, OFF(run_retention_ms), 0, 0},
    {"sandbox-retention", OPT_AGE, OFF(sandbox_retention_ms), 0, 0},
    {"audit-retention", OPT_AGE, OFF(audit_retention_ms), 0, 0},
    {"help", OPT_HELP, 0, 0, 0},
    {"version", OPT_VERSION, 0, 0, 0},
};
#undef OFF
#define N_OPTS (sizeof(opt_specs) / sizeof(opt_specs[0]))

/* getopt_long's table from opt_specs: option i answers 256 + i. */
static void long_options(struct option out[N_OPTS + 1])
{
    for (size_t i = 0; i < N_OPTS; i++) {
        bool arg = opt_specs[i].kind != OPT_FLAG && opt_specs[i].kind != OPT_HELP &&
                   opt_specs[i].kind != OPT_VERSION;
        out[i] = (struct option){opt_specs[i].name, arg ? required_argument : no_argument, NULL,
                                 256 + (int)i};
    }
    out[N_OPTS] = (struct option){0};
}

/* Apply one option to o: 0, or -1 with the message printed. */
static int set_option(const struct opt_spec *sp, const char *arg, struct hulld_options *o,
                      const char **helper)
{
    char *field = (char *)o + sp->off;
    char opt[40];
    snprintf(opt, sizeof(opt), "--%s", sp->name);
    switch (sp->kind) {
    case OPT_STRING:
        *(const char **)(void *)field = arg;
        return 0;
    case OPT_FLAG:
        *(bool *)(void *)field = true;
        return 0;
    case OPT_UINT:
        return parse_uint(opt, arg, sp->lo, sp->hi, (unsigned *)(void *)field);
    case OPT_SIZE: {
        uint64_t bytes;
        /* At most what one frame to a keeper or worker carries. */
        if (hull_parse_size(arg, &bytes) < 0 || bytes < 1024 || bytes > FRAME_MAX) {
            fprintf(stderr, "hulld: %s: '%s' is not a size from 1K to 256M\n", opt, arg);
            return -1;
        }
        *(size_t *)(void *)field = (size_t)bytes;
        return 0;
    }
    case OPT_ALLOW: {
        hull_error e = NULL;
        if (hull_allow_parse(arg, (unsigned *)(void *)field, &e) < 0) {
            fprintf(stderr, "hulld: %s: %s\n", opt, hull_error_msg(e));
            hull_error_free(&e);
            return -1;
        }
        return 0;
    }
    case OPT_HELPER:
        *helper = arg;
        return 0;
    case OPT_AGE:
        return parse_age(opt, arg, (uint64_t *)(void *)field);
    case OPT_LABEL:
        return cluster_add_label(arg);
    case OPT_LIMIT: {
        hull_error e = NULL;
        if (ceiling_add(arg, &e) < 0) {
            fprintf(stderr, "hulld: %s: %s\n", opt, hull_error_msg(e));
            hull_error_free(&e);
            return -1;
        }
        return 0;
    }
    case OPT_HELP:
        break;
    case OPT_VERSION:
        printf("hulld version %s\n", HULL_VERSION);
        exit(0);
    }
    usage(stdout);
    exit(0);
}

/* Options that need or exclude others: 0, or -1 with the message printed. */
static int check_options(const struct hulld_options *o)
{
    const char *msg = NULL;
    if (o->listen && (o->tls_cert == NULL || o->tls_key == NULL))
        msg = "--listen: TCP is served over TLS only: give --tls-cert and --tls-key";
    else if (!o->listen && (o->tls_cert || o->tls_key))
        msg = "--tls-cert/--tls-key: only used with --listen";
    else if (o->worker_allow && !o->worker)
        msg = "--allow: only for --worker (API tokens carry their own grants: "
              "hull token create --allow)";
    else if (o->worker && o->redis_url == NULL)
        msg = "--worker: needs --redis redis://HOST:PORT";
    if (msg == NULL)
        return cluster_check_options(o);
    fprintf(stderr, "hulld: %s\n", msg);
    return -1;
}

/* A Redis URL's password out of argv: kept in a copy, starred where it
 * was, since /proc/PID/cmdline (ps) shows argv to every local user. */
static int hide_password(const char **url)
{
    if (*url == NULL)
        return 0;
    char *copy = strdup(*url);
    if (copy == NULL) {
        fprintf(stderr, "hulld: out of memory\n");
        return -1;
    }
    hull_redis_url_scrub((char *)*url); /* optarg: a string of argv's, ours to change */
    *url = copy;
    return 0;
}

static int parse_args(int argc, char **argv, struct hulld_options *o, const char **helper)
{
    struct option opts[N_OPTS + 1];
    long_options(opts);
    long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
    *o = (struct hulld_options){
        .socket_path = HULLD_DEFAULT_SOCKET,
        .state_dir = HULLD_DEFAULT_STATE_DIR,
        .max_runs = (unsigned)(ncpu > 0 ? 2 * ncpu : 2),
        .queue_depth = 64,
        .max_body = 8u << 20,
        .process_buffer = 1u << 20,
        .metrics_interval_ms = 5000,
        .client_timeout = 30,
        .tenant_runs = 32,
        .tenant_sandboxes = 8,
        .tenant_templates = 16,
        .template_max = 1u << 30,
        .max_connections = 256,
        .max_pulls = 2,
        .pull_timeout = 3600,
        .node_down_after_s = 15,
        .cluster_snapshot_every_s = 30,
    };
    int c;
    /* getopt's own complaint names hulld by the path it was started by;
     * said here instead, as "hulld: ...", with ':' for a missing value. */
    opterr = 0;
    while ((c = getopt_long(argc, argv, ":h", opts, NULL)) != -1) {
        if (c == 'h') {
            usage(stdout);
            exit(0);
        }
        if (c < 256 || c >= 256 + (int)N_OPTS) {
            const char *arg = argv[optind - 1];
            if (c == ':')
                fprintf(stderr, "hulld: option '%.64s' needs a value\n", arg);
            else if (optopt != 0 && strchr(arg, '=') != NULL)
                fprintf(stderr, "hulld: option '%.*s' takes no value\n",
                        (int)(strchr(arg, '=') - arg), arg);
            else if (optopt > ' ' && optopt < 127 && arg[1] != '-')
                fprintf(stderr, "hulld: unknown option '-%c'\n", optopt);
            else
                fprintf(stderr, "hulld: unknown option '%.64s'\n", arg);
            fprintf(stderr, "Try 'hulld --help'.\n");
            return -1;
        }
        if (set_option(&opt_specs[c - 256], optarg, o, helper) < 0)
            return -1;
    }
    if (hide_password(&o->redis_url) < 0 || hide_password(&o->cluster_url) < 0)
        return -1;
    if (optind < argc) {
        fprintf(stderr, "hulld: unexpected argument '%s'\nTry 'hulld --help'.\n", argv[optind]);
        return -1;
    }
    o->image_root = image_store_root(o->image_root);
    return check_options(o);
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
    /* Sandboxes die with their keepers, which die with the old hulld; a
     * microVM's QEMU does not, and goes before its record does. */
    sbx_vm_recover();
    if (hull_sandbox_rec_destroy_all(hulld.store, "hulld restarted", &e) < 0) {
        hull_warn("start-up: %s", hull_error_msg(e));
        hull_error_free(&e);
    }
    sandboxes_adopt();
    runs_recover();
    retention_prune();
    templates_recover();
}

/* The store's WAL is checkpointed by the main thread's tick on this
 * connection of its own, once SQLite would have (1000 pages), not inside
 * a request's commit (store.h). */
static struct hull_store *checkpointer;

static void checkpoint(void)
{
    static bool failing; /* said once until it works again, not every second */
    hull_error e = NULL;
    if (!hull_store_checkpoint_due(hulld.store) && !failing)
        return;
    if (hull_store_checkpoint(checkpointer, &e) < 0) {
        if (!failing)
            hull_warn("%s", hull_error_msg(e));
        hull_error_free(&e);
        failing = true;
    } else {
        failing = false;
    }
}

/* Open the store, take the state directory, finish what a previous hulld
 * left, and start the run pool and HTTP: the lock's fd, or -1 with err. */
static int start(const struct hulld_options *o, hull_error *err)
{
    int lockfd;
    if (http_load_tls(err) < 0 || hull_store_open(o->state_dir, &hulld.store, err) < 0 ||
        (lockfd = lock_state(o->state_dir, err)) < 0 ||
        hull_store_open(o->state_dir, &checkpointer, err) < 0 ||
        hull_store_defer_checkpoints(hulld.store, err) < 0)
        return -1;
    recover();
    if (runner_start(err) < 0 || sbx_metrics_start(err) < 0 || cluster_start(err) < 0 ||
        http_start(err) < 0)
        return -1; /* hulld exits at once: the lock goes with it */
    return lockfd;
}

static int serve(const struct hulld_options *o)
{
    hull_error err = NULL;
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

    int lockfd = start(o, &err);
    if (lockfd < 0) {
        fprintf(stderr, "hulld: %s\n", hull_error_msg(err));
        hull_error_free(&err);
        return 1;
    }
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
        retention_prune();
        checkpoint();
    }
    hull_log(HULL_LOG_INFO, "hulld: stopping: finishing queued and running runs "
                            "(signal again to cancel them)");
    hulld.draining = 1;
    /* A pull can take minutes: stopped now, resumed by the next one. */
    images_stop();
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
    after_stop(); /* the runs' records that followed their answers */
    sbx_metrics_stop();
    cluster_restart_stop(); /* no restore may add a sandbox after the reap */
    sandboxes_reap(true);
    cluster_stop();
    runner_stop();
    pending_flush();
    pending_drop_all();
    hull_store_close(checkpointer);
    hull_store_close(hulld.store);
    close(lockfd);
    hull_log(HULL_LOG_INFO, "hulld: stopped");
    return 0;
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
    if (helper) {
        hulld.o = &o; /* the image store, for the runs a helper starts */
        return helper_main(helper, o.state_dir);
    }
    if (o.worker)
        return hulld_worker_main(&o);
    if (geteuid() != 0) {
        fprintf(stderr, "hulld: must run as root (it creates namespaces and cgroups)\n");
        return 1;
    }
    return serve(&o);
}
