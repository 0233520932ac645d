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
#include <stdio.h>

#include "hull.h"

#define HULLD_DEFAULT_SOCKET    "/run/hull/hulld.sock"
#define HULLD_DEFAULT_STATE_DIR "/var/lib/hull"

struct hulld_options {
    const char *socket_path;   /* --socket */
    const char *state_dir;     /* --state-dir: holds hulld.db */
    const char *listen;        /* --listen HOST:PORT (TCP, needs TLS), or NULL */
    const char *tls_cert;      /* --tls-cert PEM file */
    const char *tls_key;       /* --tls-key PEM file */
    bool worker;               /* --worker: pull jobs from Redis instead of serving HTTP */
    const char *redis_url;     /* --redis redis://HOST:PORT */
    unsigned max_runs;         /* --max-runs: runs at once (worker processes) */
    unsigned queue_depth;      /* --queue-depth: runs waiting behind them */
    size_t max_body;           /* --max-body: request body limit in bytes */
    size_t process_buffer;     /* --process-buffer: output kept per sandbox process */
    unsigned client_timeout;   /* --client-timeout: idle connection limit, seconds */
    unsigned tenant_runs;      /* --tenant-runs: queued+running runs per tenant */
    unsigned tenant_sandboxes; /* --tenant-sandboxes: live sandboxes per tenant */
    unsigned tenant_templates; /* --tenant-templates: sandbox templates per tenant */
    unsigned tenant_streams;   /* --tenant-streams: open streams, waits, watches (0: default) */
    unsigned max_client_connections; /* --max-client-connections, per address (0: default) */
    size_t template_max;             /* --template-max: bytes of files one template keeps */
    unsigned max_connections;        /* --max-connections */
    bool debug;
    /* --worker mode (src/daemon/worker.c; 0/NULL: the queue's defaults) */
    const char *worker_name;   /* --name: unique among live workers */
    unsigned heartbeat_ms;     /* --heartbeat MS */
    unsigned reap_interval_ms; /* --reap-interval MS */
    unsigned max_attempts;     /* --max-attempts N */
    unsigned result_ttl_s;     /* --result-ttl SECS */
    unsigned worker_allow;     /* --allow GRANTS: isolation-weakening jobs it may run */
    /* images (src/daemon/images.c) */
    const char *image_root; /* --image-root, else $HULL_IMAGE_ROOT, else the default */
    const char *authfile;   /* --authfile: registry credentials for pulls */
    const char *cert_dir;   /* --cert-dir: extra CA certificates for registries */
    unsigned max_pulls;     /* --max-pulls: pulls at once, before 429 */
    unsigned pull_timeout;  /* --pull-timeout: seconds a pull may take in all */
    /* --cluster (src/daemon/cluster.c, docs/cluster.md) */
    const char *cluster_url;    /* --cluster redis://HOST:PORT, or NULL */
    const char *node_name;      /* --node NAME */
    const char *advertise;      /* --advertise HOST:PORT other nodes reach --listen at */
    const char *placement;      /* --placement spread|binpack */
    const char *node_capacity;  /* --node-capacity cpus=N,memory=SIZE,disk=SIZE,vm-slots=N */
    const char *cluster_ca;     /* --cluster-ca PEM file: the nodes' certificates' CA */
    const char *cluster_secret; /* --cluster-secret FILE: signs node-to-node moves (move.h) */
    unsigned node_down_after_s; /* --node-down-after SECS */
    /* --cluster-snapshots DIR, --cluster-snapshot-every SECS (cluster_restart.c) */
    const char *cluster_snapshots;
    unsigned cluster_snapshot_every_s;
    /* --metrics-interval MS: how often each sandbox is sampled (sbx_metrics.c) */
    unsigned metrics_interval_ms;
    /* --run-retention DURATION: runs that ended longer ago are removed
     * (runs.c); 0: kept for ever */
    uint64_t run_retention_ms;
    /* --sandbox-retention, --audit-retention: the same for destroyed
     * sandboxes' rows and for the audit log's entries (retention.c) */
    uint64_t sandbox_retention_ms, audit_retention_ms;
};

/* --worker mode (src/daemon/worker.c, branch `queue`); exit status. */
int hulld_worker_main(const struct hulld_options *o);

/* ---- internal to hulld ------------------------------------------------------ */

#include <json-c/json.h>
#include <sys/types.h>

#include "response.h"
#include "service/store.h"

/* The server's shared state (main.c). */
struct hulld {
    const struct hulld_options *o;
    struct hull_store *store;
    volatile int draining; /* SIGTERM received: refuse new work */
};
extern struct hulld hulld;

/* frame.c: length-prefixed messages over a stream socketpair, with an
 * optional fd (SCM_RIGHTS): a JSON header and raw bytes. */
struct frame {
    json_object *hdr;
    char *data;
    size_t len;
    int fd; /* received fd or -1 */
};
/* The largest header or data a frame carries: frame_send refuses more
 * (EMSGSIZE, nothing sent), frame_recv takes more for a broken stream. */
#define FRAME_MAX (256u << 20)
int frame_send(int sock, json_object *hdr, const void *data, size_t len, int fd);
/* -1 with errno (EPIPE at EOF: the peer is gone). */
int frame_recv(int sock, struct frame *f);
void frame_free(struct frame *f);
/* A keeper's replies: {"error":{errno, message}} (e freed), or {"ok":true}
 * with an optional string key and data; frame_str: a header string or "". */
void frame_reply_error(int sock, hull_error *e);
/* Such an error reply in f as err (fallback when it has no message): -1;
 * 0 when f is no error. f stays the caller's to free. */
int frame_error(const struct frame *f, const char *fallback, hull_error *err);
void frame_reply_ok(int sock, const char *key, const char *val, const void *data, size_t len);
const char *frame_str(const struct frame *f, const char *key);

/* helper.c: start a single-threaded helper ("worker", "keeper", ...)
 * talking over *sock: this binary again, or for "worker" and "runner" the
 * lean hull-worker when installed; returns its pid. Safe from any thread. */
pid_t helper_spawn(const char *mode, int *sock, hull_error *err);
/* The same, and with die_with_parent the helper gets a parent-death signal
 * (SIGKILL): the queue worker's runners ("runner"). */
pid_t helper_spawn_bound(const char *mode, bool die_with_parent, int *sock, hull_error *err);
/* The helper side: hulld --helper MODE --state-dir DIR, socket on fd 3. */
int helper_main(const char *mode, const char *state_dir);
/* runner_worker.c, the worker process (hulld --helper MODE, or the lean
 * hull-worker): "worker" runs hulld's runs and records a result hulld did
 * not take; "runner" (the queue worker's) has no store, records nothing,
 * and answers {"error": why} for a run that cannot start. Exit status. */
int worker_main(const char *mode, const char *state_dir, const char *image_root);
/* A helper's start: hulld's signals ignored, its socket (fd 3, returned)
 * checked; -1 when run by hand. */
int helper_prepare(void);
/* p's image (if any) resolved in image_root, never pulled. */
int policy_image_root(struct hull_policy *p, const char *image_root, hull_error *err);
/* An internal_error result saying why. */
char *run_failed_result(const char *why);
int keeper_loop(int sock);
/* keeper_files.c: the keeper's "fs" frames (the file API). */
struct hull_session;
void keeper_fs(int sock, struct frame *f, struct hull_session *s);
/* keeper_tpl.c: the keeper's "tpl_save" / "tpl_load" frames; false for
 * another op. */
bool keeper_tpl(int sock, struct frame *f, struct hull_session *s);
/* puller.c: one image pull in its own process, then exit. */
int puller_main(int sock);

/* request.c: the fields each endpoint takes (a field it would not apply is
 * a 400 naming it and listing those it takes), and the grants a request
 * needs from its token (403 without; used ones noted in r->grants). */
struct endpoint;
extern const struct endpoint endpoint_run, endpoint_create, endpoint_exec;
int request_fields(json_object *doc, const struct endpoint *ep, struct resp *r);
/* The body as a JSON document: 0, or -1 with a 400 "invalid_json" in r. An
 * empty body is {} when empty_ok (every field of the endpoint optional). */
int request_doc(const struct request *rq, bool empty_ok, json_object **doc, struct resp *r);
int request_grants(const struct caller *c, json_object *doc, struct resp *r);
/* "image": a name or digest that must already be in hulld's image store
 * (a tenant never triggers a pull: 404 otherwise). Replaced in doc by
 * "REPOSITORY@DIGEST" of what it resolves to now, so a later re-tag does
 * not change what runs; absent, nothing changes. With hold, the image is
 * also marked in use (*hold: the mark's fd, -1 without an image) until the
 * caller closes it. */
int request_image(json_object *doc, int *hold, struct resp *r);
/* In the helper that runs a request's policy: an image comes from hulld's
 * store (--image-root) and is never pulled. */
int request_policy_image(struct hull_policy *p, hull_error *err);

/* runner.c: runs in worker processes, a bounded queue in front. */
int runner_start(hull_error *err);
void runner_stop(void);
/* Wait up to ms for nothing to be queued or running; true when idle. */
bool runner_drain(unsigned ms);
/* Cancel every queued run and kill every running one (cleanly). */
void runner_cancel_all(void);
void runner_counts(unsigned *running, unsigned *queued);
void api_runs(const struct request *rq, const char *id, struct resp *r);
void runs_recover(void);
/* retention.c: with --run-retention, --sandbox-retention or
 * --audit-retention, remove what ended (was written) longer ago than that,
 * at start-up and then from the main thread's tick (at most once a minute). */
void retention_prune(void);
/* hull_sandbox_cleanup(): after a helper died, its sandbox's remains. */
void sweep_leftovers(void);

/* sandboxes.c: long-lived sandboxes, each in a keeper process. */
void api_sandboxes(const struct request *rq, const char *id, const char *action, const char *path,
                   struct resp *r);
/* sbx_meta.c: a sandbox's metadata (labels). "metadata" of a create
 * request checked and taken out of doc: *text the JSON to store (freed by
 * the caller), NULL without; -1 with r filled (400 naming the field). */
#define SBX_META_KEYS 32
#define SBX_META_LEN  256
int sbx_meta_take(json_object *doc, char **text, struct resp *r);
/* A record's stored metadata text as an object ({} without). */
void sbx_meta_show(json_object *row);
/* {"sandboxes": [...]}: each shown, only those matching every
 * metadata.KEY=VALUE of the query; -1 with r filled for a bad filter. */
int sbx_meta_filter(const struct request *rq, json_object *list, struct resp *r);
/* Destroy idle sandboxes past their lifetime; every one when all is true. */
void sandboxes_reap(bool all);
/* Paused microVM sandboxes of an earlier hulld, served again (start-up). */
void sandboxes_adopt(void);
/* Remove the VM (and snapshot) of a microVM sandbox whose keeper is gone;
 * at start-up, those of every microVM sandbox still listed live
 * (sbx_vm_sweep.c). */
void sbx_vm_sweep(const char *vm);
void sbx_vm_recover(void);
/* One microVM sandbox from a snapshot under <state-dir>/microvm: rec as
 * the store lists it ({id, tenant, container: its VM, lifetime_s}) and
 * "resume" (running at once; else paused). cluster_restart.c. */
int sandboxes_restore(json_object *rec, hull_error *err);
unsigned sandboxes_active(void);
/* thread.c: fn(arg) in a detached thread: 0, or pthread_create's error. */
int daemon_thread(void *(*fn)(void *), void *arg);
/* after.c: fn(arg) on the after-answer thread (here, when it cannot be
 * started); after_stop does what is queued, then ends the thread. */
void after_post(void (*fn)(void *arg), void *arg);
void after_stop(void);
/* A sandbox of tenant arriving from another node (cluster_move.c) is
 * counted against the tenant's quota here until sandboxes_arrival_end,
 * called once it is in the table or did not come: EDQUOT when the
 * tenant is at its quota. */
int sandboxes_arrival_begin(const char *tenant, hull_error *err);
void sandboxes_arrival_end(const char *tenant);
/* One frame (hdr consumed, op added) to the keeper of live sandbox id of
 * tenant (NULL: any), under its op lock: ENOENT when there is none. */
int sandboxes_call(const char *id, const char *tenant, const char *op, json_object *hdr, int fd,
                   struct frame *reply, hull_error *err);
/* A request is using it (a streamed upload): not idle. */
void sandboxes_touch(const char *id, const char *tenant);
/* True while sandbox id of tenant (NULL: any) is live. */
bool sandboxes_alive(const char *id, const char *tenant);
/* Whether id is in the table: live, or a copy another node took still
 * ending here (sandboxes_end). */
bool sandboxes_here(const char *id);
/* sbx_metrics.c: Prometheus lines for each sandbox's CPU and memory: tenant's only, or
 * every tenant's for NULL (an admin). */
void sandboxes_metrics(FILE *out, const char *tenant);

/* sandboxes.c, for templates.c: a copy of the create request live
 * sandbox id of tenant (NULL: any) was made with; ENOENT when none. */
int sandboxes_spec(const char *id, const char *tenant, char **spec, hull_error *err);
/* templates.c: /v1/templates (name: the rest of the path, or NULL), and
 * the sweep at start-up of copies no template names. */
void api_templates(const struct request *rq, const char *name, struct resp *r);
void templates_recover(void);
/* A sandbox made from a template: tpl_expand replaces a create request
 * naming "template" by the template's own (u->on then; 0 and nothing done
 * without "template"), tpl_apply loads the template's files into the new
 * sandbox and runs its start and ready commands (*extra: what the answer
 * adds). -1 with r filled. */
struct tpl_use {
    bool on;
    char name[72], id[64];
    char *start, *ready; /* JSON arrays, or NULL */
    uint64_t ready_ms;
    bool vm;     /* a microVM template: */
    int snap;    /* its directory, for the create frame (-1: none) */
    bool locked; /* a delete waits until the sandbox is made */
};
/* The snapshot's name in a microVM template's directory. */
#define TPL_VM_SNAP "vm.snap"
void tpl_use_free(struct tpl_use *u);
int tpl_expand(const struct caller *c, json_object **doc, struct tpl_use *u, struct resp *r);
struct sbx;
int tpl_apply(struct sbx *s, struct tpl_use *u, const struct request *rq, json_object **extra,
              struct resp *r);

/* images.c: /v1/images (ref: the rest of the path, URL-decoded, or NULL). */
void api_images(const struct request *rq, const char *ref, struct resp *r);
/* networks.c: GET /v1/networks. */
void api_networks(const struct request *rq, struct resp *r);
/* At shutdown: pulls in progress are stopped (their partial blobs stay
 * for the next pull to resume) and no new one starts. */
void images_stop(void);
/* Pulls in progress (for /metrics). */
unsigned images_pulls_running(void);

/* metrics.c */
void metrics_run_done(const char *verdict, double seconds);
void metrics_rejected(const char *code);
/* tenant: the caller's (NULL for an admin): per-sandbox series are shown
 * for its own sandboxes only; aggregate series to everyone. */
char *metrics_render(size_t *len, const char *tenant);

/* pending.c: store faults. A run's end the store refused (err, freed): kept and retried by
 * pending_flush() until stored. */
void pending_finish(const char *id, const char *result, const char *verdict, hull_error *err);
void pending_transition(const char *id, const char *const *from, const char *to, hull_error *err);
void pending_flush(void);
/* True while the store fails writes or run ends wait to be stored. */
bool pending_failing(char *why, size_t len);
/* {"state": ..., "result": "<json>"} of a run whose end waits, or NULL. */
json_object *pending_result(const char *id);
/* At exit: what could never be stored goes to the log. */
void pending_drop_all(void);

/* mhd_hooks.c: HTTP that libmicrohttpd would refuse on its own. */
/* A query string over this is refused (414): hulld's are a few short
 * parameters. */
#define HTTP_MAX_QUERY 2048
/* A body over --max-body (declared, or found so in a chunked one) is read
 * and dropped up to this much more, so the client, still sending, gets its
 * 413 (MHD cannot answer in the middle of a body); a longer one is refused
 * at once (declared) or cut off (chunked). */
#define HTTP_DISCARD_MAX (64u << 20)
/* From the URI log callback: true when the query is over HTTP_MAX_QUERY,
 * and then cut off before MHD parses it. */
bool http_query_cut(const char *uri);
/* The body's framing, from the headers as sent: 0, or -1 with r filled (the
 * connection is then closed). *overflow: the declared body is over
 * --max-body, to be read and dropped; overflow NULL: a streamed upload
 * (the file API), not bounded by --max-body. */
struct MHD_Connection;
int http_framing(struct MHD_Connection *conn, struct resp *r, bool *overflow);

/* http.c */
/* Check --socket's directory and read --tls-key and --tls-cert (with
 * --listen): first of all, so a refused one leaves no state directory,
 * store or socket behind. */
int http_load_tls(hull_error *err);
int http_start(hull_error *err);
void http_stop(void);

/* openapi.c: docs/openapi.json, built in. */
extern const char hulld_openapi[];

#endif
