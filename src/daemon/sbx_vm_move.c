/* A microVM sandbox moving between nodes (docs/cluster.md, "Moving
 * sandboxes"): the keepers' side. The source keeper runs the VM library's
 * live (or cold) migration to the target keeper, which received it with
 * hull_vm_receive. The channel is TLS with the nodes' own certificates
 * (hulld --tls-cert/--tls-key, checked against --cluster-ca) when hulld
 * has them; otherwise the library's plain channel authenticated with the
 * cluster's shared secret (--cluster-secret), not encrypted. Until the
 * target runs the guest, any failure leaves it running on the source
 * (hull_vm_migrate). */
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "daemon.h"
#include "procs.h"
#include "util/error.h"
#include "util/json.h"

#define MOVE_TIMEOUT_S 60 /* the longest wait for the other side */

/* The channel hulld chose (cluster_move.c): "tls_cert", "tls_key",
 * "tls_ca" for TLS, else "token_file" for the plain channel. */
struct channel {
    const char *cert, *key, *ca, *token;
    bool plain;
};

static struct channel channel_of(const struct frame *f)
{
    struct channel c = {.cert = frame_str(f, "tls_cert"),
                        .key = frame_str(f, "tls_key"),
                        .ca = frame_str(f, "tls_ca")};
    c.plain = !c.cert[0];
    if (c.plain) {
        c.cert = c.key = c.ca = NULL;
        c.token = frame_str(f, "token_file");
    }
    return c;
}

int vmk_migrate_out(const char *vm, int sock, struct frame *f, hull_error *err)
{
    const char *mode = frame_str(f, "mode");
    struct channel c = channel_of(f);
    struct hull_vm_migrate_opts o = {
        .to = frame_str(f, "to"),
        .token_file = c.token,
        .tls_cert = c.cert,
        .tls_key = c.key,
        .tls_ca = c.ca,
        .insecure_plain = c.plain,
        .cold = strcmp(mode, "cold") == 0,
        .timeout_s = MOVE_TIMEOUT_S,
    };
    struct hull_vm_migrate_result r;
    if (hull_vm_migrate(NULL, vm, &o, &r, err) < 0)
        return -1;
    char *json = hull_vm_migrate_result_json(&r);
    frame_reply_ok(sock, NULL, NULL, json, json ? strlen(json) : 0);
    free(json);
    return 0;
}

struct listening {
    int sock;
};

/* hull_vm_receive listens: hulld hears where, and answers the source. */
static void listening(const char *addr, void *arg)
{
    struct listening *l = arg;
    frame_reply_ok(l->sock, "address", addr ? addr : "", NULL, 0);
}

/* While the VM comes, a child of the keeper watches hulld: when hulld goes
 * (its socket hangs up) the keeper is killed before it could run a guest
 * nobody would serve. The receiver's guard then removes what came, and
 * the source, which never hears that the guest runs here, runs it on. */
static pid_t watch_hulld(int sock, const char *vm)
{
    /* The keeper's staging directory (sbx_vm.c's vmk_paths), which a
     * SIGKILLed keeper cannot remove and no store row names yet. */
    char stage[128];
    snprintf(stage, sizeof(stage), "/run/hull/vmsbx-%s", vm);
    pid_t keeper = getpid();
    pid_t pid = fork(); /* safe: the keeper has one thread */
    if (pid != 0)
        return pid;
    struct pollfd p = {.fd = sock, .events = POLLRDHUP};
    while (getppid() == keeper) {
        if (poll(&p, 1, 500) > 0 && (p.revents & (POLLRDHUP | POLLHUP | POLLERR))) {
            kill(keeper, SIGKILL); /* our parent, by pid, still the same (checked above) */
            rmdir(stage);          /* empty: nothing is staged while a VM comes */
            break;
        }
    }
    _exit(0);
}

int vmk_migrate_in(const char *vm, int sock, struct frame *f, hull_error *err)
{
    struct listening l = {.sock = sock};
    struct channel c = channel_of(f);
    struct hull_vm_receive_opts o = {
        .listen = frame_str(f, "listen"),
        .token_file = c.token,
        .tls_cert = c.cert,
        .tls_key = c.key,
        .tls_ca = c.ca,
        .insecure_plain = c.plain,
        .id = vm,
        .timeout_s = MOVE_TIMEOUT_S,
        .ready = listening,
        .ready_arg = &l,
    };
    char *json = NULL;
    pid_t watcher = watch_hulld(sock, vm);
    if (watcher < 0)
        return hull_error_errno(err, "receive: fork");
    int r = hull_vm_receive(NULL, &o, &json, err);
    kill(watcher, SIGKILL); /* our child, by pid, not reaped yet */
    waitpid(watcher, NULL, 0);
    free(json);
    return r < 0 ? hull_error_prefix(err, "receive") : 0;
}
