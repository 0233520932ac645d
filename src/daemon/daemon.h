/* hulld: shared declarations of the daemon's parts.
 *
 * Process model: the main process serves HTTP with libmicrohttpd's threads
 * and never runs a sandbox itself. Runs happen in pre-started worker
 * processes (runner.c), each single-threaded, fed one request at a time over
 * a socketpair; each long-lived sandbox has its own single-threaded keeper
 * process (sandboxes.c). Those helpers are this binary exec'd again with a
 * hidden flag, so they start from a clean, thread-free image.
 */
#ifndef HULLD_DAEMON_H
#define HULLD_DAEMON_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "hull.h"

#define HULLD_DEFAULT_SOCKET "/run/hull/hulld.sock"
#define HULLD_DEFAULT_STATE_DIR "/var/lib/hull"

struct hulld_options {
    const char *socket_path; /* --socket */
    const char *state_dir;   /* --state-dir: holds hulld.db */
    const char *listen;      /* --listen HOST:PORT (TCP, needs TLS), or NULL */
    const char *tls_cert;    /* --tls-cert PEM file */
    const char *tls_key;     /* --tls-key PEM file */
    bool worker;             /* --worker: pull jobs from Redis instead of serving HTTP */
    const char *redis_url;   /* --redis redis://HOST:PORT */
    unsigned max_runs;       /* --max-runs: runs at once (worker processes) */
    unsigned queue_depth;    /* --queue-depth: runs waiting behind them */
    size_t max_body;         /* --max-body: request body limit in bytes */
    unsigned client_timeout; /* --client-timeout: idle connection limit, seconds */
    unsigned tenant_runs;    /* --tenant-runs: queued+running runs per tenant */
    unsigned tenant_sandboxes; /* --tenant-sandboxes: live sandboxes per tenant */
    unsigned max_connections;  /* --max-connections */
    bool debug;
};

/* --worker mode (src/daemon/worker.c, branch `queue`); exit status. */
int hulld_worker_main(const struct hulld_options *o);

#endif
