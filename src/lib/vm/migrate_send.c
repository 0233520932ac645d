/* `hull vm migrate`: the source side (migrate.h has the protocol).
 *
 * The VM's lock and its agent lock are held throughout: no other hull
 * command drives this QEMU, and no agent session is mid-request in the
 * state that moves. Until the receiver has been told to commit, every
 * failure cancels QEMU's migration and lets the guest run here again
 * (QEMU never stops a live guest before the last round, hull stops a TCG
 * guest only over the migration's setup, and a guest stopped is
 * continued). After the commit, the source keeps its guest stopped unless
 * the receiver says it gave up: if the connection breaks between commit
 * and the receiver's answer, which side runs the guest is unknown here,
 * and resuming could run it twice. */
#include <errno.h>
#include <fcntl.h>
#include <openssl/crypto.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "util/clock.h"
#include "util/error.h"
#include "util/json.h"
#include "util/log.h"
#include "vm/migrate.h"
#include "vm/vm.h"
#include "vm/vmm.h"

struct send_state {
    struct vm *vm;
    struct mig_chan c;
    const struct hull_vm_migrate_opts *o;
    struct hull_vm_migrate_result *r;
    bool was_running, started, committed;
    int64_t t_stop, t_eof;
};

/* QEMU's stream from the pipe into 'D' frames until QEMU closes it; a
 * frame from the receiver meanwhile can only be its 'X' (or a hang-up). */
static int pump_out(struct send_state *s, int rd, hull_error *err)
{
    __attribute__((cleanup(mig_sha_freep))) EVP_MD_CTX *sha = mig_sha_new();
    cleanup_free char *buf = malloc(MIG_DATA_MAX);
    if (!sha || !buf)
        return hull_error_set(err, ENOMEM, "no memory for the stream");
    struct pollfd p[2] = {{.fd = rd, .events = POLLIN}, {.fd = s->c.fd, .events = POLLIN}};
    for (;;) {
        int n = poll(p, 2, s->c.timeout_ms);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return hull_error_errno(err, "poll");
        if (n == 0)
            return hull_error_set(err, ETIMEDOUT, "the stream made no progress in %d s",
                                  s->c.timeout_ms / 1000);
        if (p[1].revents || mig_pending(&s->c)) {
            char type;
            uint32_t dl;
            json_object *o = NULL;
            if (mig_recv(&s->c, &type, &o, &dl, err) == 0) {
                json_object_put(o);
                hull_error_set(err, EPROTO, "unexpected message '%c' from the receiver", type);
            }
            return hull_error_prefix(err, "during the copy");
        }
        if (!p[0].revents)
            continue;
        ssize_t got = read(rd, buf, MIG_DATA_MAX);
        if (got < 0 && errno == EINTR)
            continue;
        if (got < 0)
            return hull_error_errno(err, "read QEMU's stream");
        if (got == 0)
            break;
        EVP_DigestUpdate(sha, buf, (size_t)got);
        s->r->bytes += (uint64_t)got;
        if (mig_send_data(&s->c, buf, (uint32_t)got, err) < 0)
            return hull_error_prefix(err, "during the copy");
    }
    s->t_eof = hull_monotonic_ms();
    char hex[65];
    mig_sha_hex(sha, hex);
    json_object *e = json_object_new_object();
    json_object_object_add(e, "bytes", json_object_new_int64((int64_t)s->r->bytes));
    json_object_object_add(e, "sha256", json_object_new_string(hex));
    return mig_send(&s->c, 'E', e, err);
}

/* QEMU migrates into a pipe; we carry it. */
static int copy_state(struct send_state *s, hull_error *err)
{
    int pp[2];
    if (pipe2(pp, O_CLOEXEC) < 0)
        return hull_error_errno(err, "pipe");
    cleanup_close int rd = pp[0];
    /* A larger pipe: QEMU measures its bandwidth by how fast we drain it.
     * Without the room it only changes speed, so failure is only logged. */
    if (fcntl(rd, F_SETPIPE_SZ, 1 << 20) < 0)
        hull_debug("migrate: pipe size: %s", strerror(errno));
    s->t_stop = hull_monotonic_ms();
    /* From here a failure has something to undo (a cold guest is stopped
     * first, a live one may be past its last round). */
    s->started = true;
    int rc = vm_vmm()->migrate_out(s->vm, pp[1], !s->o->cold, s->o->bandwidth, err);
    /* QEMU has its own copy (getfd): ours must go, or EOF never comes. */
    close(pp[1]);
    if (rc < 0)
        return hull_error_prefix(err, "start QEMU's migration");
    if (pump_out(s, rd, err) < 0)
        return -1;
    struct vmm_migration m = {0};
    if (vm_vmm()->migrate_wait(s->vm, s->c.timeout_ms, &m, err) < 0)
        return -1;
    s->r->qemu_downtime_ms = s->o->cold ? m.total_ms : m.downtime_ms;
    s->r->rounds = m.dirty_syncs;
    return 0;
}

/* Connect, secure the channel (TLS, or the token when plain), agree on
 * the VM, copy, hand over. */
static int handover(struct send_state *s, struct mig_sec *sec, hull_error *err)
{
    int64_t t0 = hull_monotonic_ms();
    char host[256];
    if (mig_host_of(s->o->to, host, sizeof(host), err) < 0 ||
        mig_connect(s->o->to, s->c.timeout_ms, &s->c.fd, err) < 0 ||
        mig_secure(&s->c, sec, s->o->tls_name ? s->o->tls_name : host, err) < 0)
        return -1;
    json_object *m = vm_manifest_json(s->vm);
    /* Its network identity (MAC, addresses) and published ports follow it:
     * the receiver refuses before anything is copied if its host cannot
     * give them (the network missing or different, an address or a host
     * port taken), and the source's lease stays until the guest runs
     * there (vm_destroy below). */
    vm_net_manifest(s->vm, m);
    json_object_object_add(m, "vm", json_object_new_string(s->vm->id));
    json_object_object_add(m, "mode", json_object_new_string(s->r->mode));
    cleanup_json json_object *acc = NULL;
    if (mig_send(&s->c, 'M', m, err) < 0 || mig_expect(&s->c, 'A', &acc, err) < 0)
        return -1;
    json_object *id = hj_get(acc, "id");
    snprintf(s->r->target, sizeof(s->r->target), "%s", id ? json_object_get_string(id) : "");
    if (copy_state(s, err) < 0 || mig_expect(&s->c, 'L', NULL, err) < 0)
        return -1;
    /* From here the guest is the receiver's to run. */
    if (mig_send(&s->c, 'C', NULL, err) < 0)
        return -1;
    s->committed = true;
    cleanup_json json_object *run = NULL;
    if (mig_expect(&s->c, 'R', &run, err) < 0)
        return -1;
    int64_t now = hull_monotonic_ms();
    s->r->total_ms = now - t0;
    /* Up to the receiver's cont: what it did after (its check that the
     * agent answers) the guest spent running. */
    json_object *v = hj_get(run, "running_ms");
    int64_t after = v ? json_object_get_int64(v) : 0;
    int64_t end = now - (after > 0 && after < now - s->t_eof ? after : 0);
    s->r->copy_ms = end - s->t_stop;
    s->r->downtime_ms = s->o->cold ? end - s->t_stop : s->r->qemu_downtime_ms + (end - s->t_eof);
    return 0;
}

/* The handover failed: the guest runs here again when that is safe. */
static void fall_back(struct send_state *s, hull_error *err)
{
    int e = hull_error_code(*err);
    mig_send_error(&s->c, *err);
    if (s->committed && e != EREMOTEIO) {
        hull_error_prefix(err,
                          "in doubt: the receiver was told to run the guest and did not "
                          "answer; VM %s stays paused here (resume it only if the receiver "
                          "has no VM %s)",
                          s->vm->id, s->r->target);
        s->vm->status = VM_PAUSED;
        return;
    }
    hull_error e2 = NULL;
    if (s->started && vm_vmm()->migrate_abort(s->vm, s->was_running, &e2) < 0) {
        hull_warn("VM %s: resume after the failed migration: %s", s->vm->id, hull_error_msg(e2));
        hull_error_free(&e2);
        s->vm->status = VM_PAUSED;
    }
}

static int check_vm(const struct vm *vm, bool cold, hull_error *err)
{
    if (vm->status != VM_RUNNING && !(cold && vm->status == VM_PAUSED))
        return hull_error_set(err, EINVAL, "VM %s is %s%s", vm->id, vm_status_name(vm->status),
                              cold ? "" : " (a live migration needs it running)");
    /* The receiver asks its host for exactly this lease (vmnet.c). */
    if (vm->network[0] && (!vm->lease.ip4[0] || !vm->lease.mac[0]))
        return hull_error_set(err, EINVAL, "VM %s: its record has no lease on network %s", vm->id,
                              vm->network);
    return 0;
}

int hull_vm_migrate(const struct hull_runtime *rt, const char *id,
                    const struct hull_vm_migrate_opts *o, struct hull_vm_migrate_result *r,
                    hull_error *err)
{
    memset(r, 0, sizeof(*r));
    snprintf(r->mode, sizeof(r->mode), "%s", o->cold ? "cold" : "live");
    struct mig_sec_opts so = {.cert = o->tls_cert,
                              .key = o->tls_key,
                              .ca = o->tls_ca,
                              .name = o->tls_name,
                              .token_file = o->token_file,
                              .insecure_plain = o->insecure_plain};
    __attribute__((cleanup(mig_sec_close))) struct mig_sec sec = {0};
    struct vm vm;
    if (mig_sec_open(&so, false, &sec, err) < 0)
        return hull_error_prefix(err, "migrate");
    snprintf(r->transport, sizeof(r->transport), "%s", sec.ctx ? "tls" : "plain");
    cleanup_close int lk = vm_load_locked(rt, id, true, &vm, err);
    if (lk < 0)
        return hull_error_prefix(err, "migrate");
    cleanup_close int alk = vm_lock(&vm, "agent.lock", true, err);
    if (alk < 0 || check_vm(&vm, o->cold, err) < 0)
        return hull_error_prefix(err, "migrate");
    struct send_state s = {
        .vm = &vm,
        .c = {.fd = -1, .timeout_ms = (int)(o->timeout_s ? o->timeout_s : 60) * 1000},
        .o = o,
        .r = r,
        .was_running = vm.status == VM_RUNNING,
    };
    /* A receiver that hangs up must fail a write, not kill us. */
    struct sigaction ign = {.sa_handler = SIG_IGN}, old;
    sigaction(SIGPIPE, &ign, &old);
    int rc = handover(&s, &sec, err);
    if (rc < 0)
        fall_back(&s, err);
    mig_chan_close(&s.c);
    sigaction(SIGPIPE, &old, NULL);
    if (rc < 0) {
        hull_error e = NULL;
        /* The record follows what the guest does (paused when in doubt). */
        if (vm_save(&vm, &e) < 0) {
            hull_warn("VM %s: %s", vm.id, hull_error_msg(e));
            hull_error_free(&e);
        }
        return hull_error_prefix(err, "migrate %s to %s", id, o->to);
    }
    /* The guest runs on the receiver: this QEMU and its state go. */
    if (vm_destroy(&vm, err) < 0)
        return hull_error_prefix(err, "migrate %s: it runs on %s as %s, but removing it here", id,
                                 o->to, r->target);
    return 0;
}

char *hull_vm_migrate_result_json(const struct hull_vm_migrate_result *r)
{
    cleanup_json json_object *o = json_object_new_object();
    json_object_object_add(o, "mode", json_object_new_string(r->mode));
    json_object_object_add(o, "target_id", json_object_new_string(r->target));
    json_object_object_add(o, "total_ms", json_object_new_int64(r->total_ms));
    json_object_object_add(o, "downtime_ms", json_object_new_int64(r->downtime_ms));
    json_object_object_add(o, "qemu_downtime_ms", json_object_new_int64(r->qemu_downtime_ms));
    json_object_object_add(o, "copy_ms", json_object_new_int64(r->copy_ms));
    json_object_object_add(o, "bytes", json_object_new_int64((int64_t)r->bytes));
    json_object_object_add(o, "rounds", json_object_new_int64((int64_t)r->rounds));
    json_object_object_add(o, "transport", json_object_new_string(r->transport));
    return strdup(json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN));
}
