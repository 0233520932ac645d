/* QEMU's side of an outgoing live migration (struct vmm_ops, vmm.h):
 * `migrate` to an fd hull passes over QMP, its figures from
 * `query-migrate`, and the way back when it fails. Under KVM the guest
 * keeps running while QEMU copies its RAM and re-sends what it dirties, and
 * is stopped only for the last round (QEMU's downtime-limit, 300 ms); under
 * TCG it runs over one pass and is stopped for the rest (migrate_out). */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "util/clock.h"
#include "util/error.h"
#include "util/json.h"
#include "util/log.h"
#include "vm/qmp.h"
#include "vm/vm.h"
#include "vm/vmm.h"

static void qmp_closep(struct qmp **q)
{
    qmp_close(*q);
}

static int open_qmp(struct vm *vm, struct qmp **q, hull_error *err)
{
    char sock[128];
    cleanup_close int dfd = vm_run_socket(vm, "qmp.sock", sock, err);
    if (dfd < 0)
        return -1;
    return qmp_connect(sock, 5000, q, err);
}

static json_object *one(const char *key, json_object *v)
{
    json_object *o = json_object_new_object();
    json_object_object_add(o, key, v);
    return o;
}

static bool ongoing(const char *st)
{
    return strcmp(st, "setup") == 0 || strcmp(st, "active") == 0 ||
           strcmp(st, "pre-switchover") == 0 || strcmp(st, "device") == 0 ||
           strcmp(st, "cancelling") == 0 || strcmp(st, "wait-unplug") == 0;
}

static bool ended(const char *st)
{
    return !ongoing(st);
}

static bool past_setup(const char *st)
{
    return strcmp(st, "setup") != 0;
}

/* query-migrate every step_us until done(its status) or timeout_ms; the
 * status in st (64 bytes), QEMU's error-desc in why (256, "" without one)
 * and, when last is given, the last reply (the caller's to put).
 * 1 when done, 0 at the timeout, -1 on error. */
static int poll_status(struct qmp *q, bool (*done)(const char *), int timeout_ms, unsigned step_us,
                       char st[64], char why[256], json_object **last, hull_error *err)
{
    int64_t end = hull_monotonic_ms() + timeout_ms;
    for (;;) {
        cleanup_json json_object *r = NULL;
        if (qmp_cmd(q, "query-migrate", NULL, -1, &r, err) < 0)
            return -1;
        json_object *v = hj_get(r, "status"), *desc = hj_get(r, "error-desc");
        snprintf(st, 64, "%s", v ? json_object_get_string(v) : "none");
        snprintf(why, 256, "%s", desc ? json_object_get_string(desc) : "");
        int rc = done(st) ? 1 : hull_monotonic_ms() > end ? 0 : -2;
        if (rc != -2) {
            if (last) {
                *last = r;
                r = NULL;
            }
            return rc;
        }
        usleep(step_us);
    }
}

/* Until QEMU has left "setup" (dirty logging on, the first bitmap sync
 * done) for its RAM pass, "active". Anything else (failed, or already
 * past its RAM: the guest's final state is on its way) is an error: the
 * caller's abort decides whether the guest runs again, never a cont here. */
static int wait_setup_done(struct qmp *q, hull_error *err)
{
    char st[64], why[256];
    int rc = poll_status(q, past_setup, 30000, 1000, st, why, NULL, err);
    if (rc < 0)
        return -1;
    if (rc == 0)
        return hull_error_set(err, ETIMEDOUT, "QEMU's migration still in setup after 30 s");
    if (strcmp(st, "active") != 0)
        return hull_error_set(err, EIO, "QEMU's migration is %s after its setup%s%s", st,
                              strcmp(st, "failed") == 0 ? ": " : "",
                              strcmp(st, "failed") != 0 ? ""
                              : why[0]                  ? why
                                                        : "no reason given");
    return 0;
}

int vm_qemu_migrate_out(struct vm *vm, int fd, bool live, uint64_t bandwidth, hull_error *err)
{
    __attribute__((cleanup(qmp_closep))) struct qmp *q = NULL;
    if (open_qmp(vm, &q, err) < 0)
        return -1;
    /* A live move of a TCG guest copies its RAM once while it runs, then
     * stops it and sends what it dirtied meanwhile: never a second round
     * while it runs. QEMU before 9.0 (this host's 7.2 among them; fixed by
     * upstream 03bfc2188f06, "physmem: Fix migration dirty bitmap coherency
     * with TCG memory access") clears the dirty bits at each bitmap sync
     * without resetting TCG's TLB entries, so a store through an entry
     * already marked dirty is not recorded: a page sent in a round while
     * the guest runs and written again afterwards reaches the receiver
     * stale. The guest's memory is then corrupt: 4 of 6 moves here that
     * took 5-17 rounds left a guest process dead of SIGSEGV (3) or a guest
     * that never answered again (1); in CI a guest kernel panicked right
     * after a move. With one pass: 2 syncs, 0 of 5. The first sync is
     * safe: QEMU flushes every TLB when dirty logging starts; the guest is
     * stopped over that setup so no store of a running TB slips between
     * the sync and the flush. downtime-limit 0 makes QEMU iterate until its first
     * pass is done and then complete (nothing left in the bitmap): the
     * guest stops before the second sync. KVM tracks dirty pages itself
     * and keeps QEMU's rounds. */
    bool one_pass = live && strcmp(vm->accel, "tcg") == 0;
    /* Cold: the guest stops now and the stream is its final state. */
    if ((!live || one_pass) && qmp_cmd(q, "stop", NULL, -1, NULL, err) < 0)
        return -1;
    if (qmp_cmd(q, "getfd", one("fdname", json_object_new_string("hullmig")), fd, NULL, err) < 0)
        return -1;
    /* Every RAM block travels (a template clone's private copy too: the
     * receiver has no template to share it from). A guest that dirties
     * memory faster than it can be sent is slowed down (auto-converge)
     * rather than copied forever. */
    json_object *caps = json_object_new_array();
    static const struct {
        const char *name;
        bool on;
    } want[] = {{"x-ignore-shared", false}, {"auto-converge", true}};
    for (size_t i = 0; i < 2; i++) {
        json_object *cap = json_object_new_object();
        json_object_object_add(cap, "capability", json_object_new_string(want[i].name));
        json_object_object_add(cap, "state", json_object_new_boolean(want[i].on && live));
        json_object_array_add(caps, cap);
    }
    if (qmp_cmd(q, "migrate-set-capabilities", one("capabilities", caps), -1, NULL, err) < 0)
        return -1;
    /* QEMU's default cap (128 MiB/s) is for shared links; hull carries the
     * stream itself and caps it only when asked. */
    int64_t bw = bandwidth ? (int64_t)bandwidth : INT64_C(1) << 40;
    json_object *params = one("max-bandwidth", json_object_new_int64(bw));
    if (one_pass)
        json_object_object_add(params, "downtime-limit", json_object_new_int64(0));
    if (qmp_cmd(q, "migrate-set-parameters", params, -1, NULL, err) < 0)
        return -1;
    if (qmp_cmd(q, "migrate", one("uri", json_object_new_string("fd:hullmig")), -1, NULL, err) < 0)
        return -1;
    /* The stream's start is small (the pipe holds it): setup ends without
     * our reader. On failure the caller's abort continues the guest. */
    if (one_pass && (wait_setup_done(q, err) < 0 || qmp_cmd(q, "cont", NULL, -1, NULL, err) < 0))
        return -1;
    return 0;
}

static int64_t i64(json_object *o, const char *k)
{
    json_object *v = o ? hj_get(o, k) : NULL;
    return v ? json_object_get_int64(v) : 0;
}

int vm_qemu_migrate_wait(struct vm *vm, int timeout_ms, struct vmm_migration *m, hull_error *err)
{
    __attribute__((cleanup(qmp_closep))) struct qmp *q = NULL;
    if (open_qmp(vm, &q, err) < 0)
        return -1;
    char why[256];
    cleanup_json json_object *r = NULL;
    int rc = poll_status(q, ended, timeout_ms, 5000, m->status, why, &r, err);
    if (rc < 0)
        return -1;
    if (rc == 0)
        return hull_error_set(err, ETIMEDOUT, "QEMU's migration still %s after %d s", m->status,
                              timeout_ms / 1000);
    if (strcmp(m->status, "completed") != 0)
        return hull_error_set(err, EIO, "QEMU's migration %s%s%s", m->status, why[0] ? ": " : "",
                              why);
    m->total_ms = i64(r, "total-time");
    /* A TCG guest is also stopped over the setup (migrate_out). */
    m->downtime_ms =
        i64(r, "downtime") + (strcmp(vm->accel, "tcg") == 0 ? i64(r, "setup-time") : 0);
    m->setup_ms = i64(r, "setup-time");
    m->transferred = (uint64_t)i64(hj_get(r, "ram"), "transferred");
    m->dirty_syncs = (uint64_t)i64(hj_get(r, "ram"), "dirty-sync-count");
    return 0;
}

int vm_qemu_migrate_abort(struct vm *vm, bool resume, hull_error *err)
{
    __attribute__((cleanup(qmp_closep))) struct qmp *q = NULL;
    if (open_qmp(vm, &q, err) < 0)
        return -1;
    hull_error e = NULL;
    /* Nothing to cancel when it already ended (failed or completed). */
    if (qmp_cmd(q, "migrate_cancel", NULL, -1, NULL, &e) < 0) {
        hull_debug("VM %s: migrate_cancel: %s", vm->id, hull_error_msg(e));
        hull_error_free(&e);
    }
    char st[64], why[256];
    int rc = poll_status(q, ended, 30000, 5000, st, why, NULL, err);
    if (rc < 0)
        return -1;
    if (rc == 0) {
        /* Still copying RAM: the guest's state is not final, and a TCG
         * guest stopped over the setup (migrate_out) must not stay so. */
        hull_error ce = NULL;
        if (resume && (strcmp(st, "setup") == 0 || strcmp(st, "active") == 0) &&
            qmp_cmd(q, "cont", NULL, -1, NULL, &ce) < 0)
            hull_warn("VM %s: cont after a cancel that did not end: %s", vm->id,
                      hull_error_msg(ce));
        hull_error_free(&ce);
        return hull_error_set(err, ETIMEDOUT, "the migration does not end after cancel (%s)", st);
    }
    if (!resume)
        return 0;
    cleanup_json json_object *r = NULL;
    if (qmp_cmd(q, "query-status", NULL, -1, &r, err) < 0)
        return -1;
    json_object *run = hj_get(r, "running");
    /* A migration that failed after its last round, or completed, left the
     * guest stopped; QEMU takes its disk back on cont. */
    if (run && json_object_get_boolean(run))
        return 0;
    return qmp_cmd(q, "cont", NULL, -1, NULL, err);
}

int vm_qemu_announce(struct vm *vm, hull_error *err)
{
    __attribute__((cleanup(qmp_closep))) struct qmp *q = NULL;
    if (open_qmp(vm, &q, err) < 0)
        return -1;
    /* QEMU sends RARP for the card (which the bridge's anti-spoofing rules
     * drop: only IPv4, IPv6 and ARP pass) and, the guest's virtio-net
     * driver having the announce feature, has the guest send gratuitous
     * ARP and neighbour advertisements for its own addresses. A few
     * rounds, 50 ms apart at first: frames a busy bridge drops are sent
     * again. */
    json_object *a = json_object_new_object();
    json_object_object_add(a, "initial", json_object_new_int(50));
    json_object_object_add(a, "max", json_object_new_int(550));
    json_object_object_add(a, "rounds", json_object_new_int(3));
    json_object_object_add(a, "step", json_object_new_int(100));
    return qmp_cmd(q, "announce-self", a, -1, NULL, err);
}
