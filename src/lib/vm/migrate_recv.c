/* `hull vm receive`: the receiving side of a migration (migrate.h has the
 * protocol). One connection, one VM, then it returns.
 *
 * The incoming VM is made like a restored one (snapshot.c checks its
 * artifacts against the manifest's digests): a paused QEMU started with
 * -incoming reads the stream hull writes into a pipe. A guard process
 * watches the receiver from the moment the VM's directory exists: unless
 * the receiver tells it the VM is kept, it deletes the VM (QEMU, cgroup,
 * directory) once the receiver is gone, so a receiver that fails or is
 * killed half-way leaves nothing behind. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <openssl/crypto.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "util/clock.h"
#include "util/error.h"
#include "util/fs.h"
#include "util/json.h"
#include "util/log.h"
#include "vm/agent.h"
#include "vm/migrate.h"
#include "vm/vm.h"
#include "vm/vmm.h"

struct recv_state {
    const struct hull_runtime *rt;
    struct mig_chan c;
    struct vm vm;
    char peer[160];
    int guard_fd; /* write end: 'k' keeps the VM, EOF alone deletes it */
    pid_t guard;
    uint64_t bytes;
    int64_t load_ms;
};

/* The guard (a child): waits for the receiver's word or its end. */
static pid_t guard_start(const struct hull_runtime *rt, const char *id, int *wfd, hull_error *err)
{
    int p[2];
    if (pipe2(p, O_CLOEXEC) < 0)
        return hull_error_errno(err, "pipe");
    pid_t pid = fork();
    if (pid < 0) {
        close(p[0]);
        close(p[1]);
        return hull_error_errno(err, "fork the guard");
    }
    if (pid == 0) {
        /* Only the pipe: the guard must not hold the connection or the
         * stream's pipe open after the receiver is gone. */
        if (dup2(p[0], 3) < 0)
            _exit(1);
        close_range(4, ~0U, 0);
        char c = 0;
        while (read(3, &c, 1) < 0 && errno == EINTR)
            ;
        if (c == 'k')
            _exit(0);
        struct vm vm;
        char dir[4096];
        hull_error e = NULL;
        int rc = 0;
        if (vm_load(rt, id, &vm, &e) == 0)
            rc = vm_destroy(&vm, &e);
        else {
            /* No record yet (it failed before QEMU): only the directory. */
            hull_error_free(&e);
            rc =
                vm_dir_of(rt, id, dir, sizeof(dir), &e) < 0 ? -1 : hull_rm_rf_at(AT_FDCWD, dir, &e);
        }
        if (rc < 0) {
            hull_warn("receive: remove the unfinished VM %s: %s", id, hull_error_msg(e));
            hull_error_free(&e);
        }
        _exit(rc < 0);
    }
    close(p[0]);
    *wfd = p[1];
    return pid;
}

static void guard_end(struct recv_state *s, bool keep)
{
    if (s->guard <= 0)
        return;
    if (keep && write(s->guard_fd, "k", 1) != 1)
        hull_warn("receive: tell the guard to keep VM %s: %s", s->vm.id, strerror(errno));
    close(s->guard_fd);
    /* Our own child: it ends after keeping or removing the VM. */
    while (waitpid(s->guard, NULL, 0) < 0 && errno == EINTR)
        ;
    s->guard = 0;
}

/* The manifest into a VM directory and a paused QEMU waiting on *wr. */
static int make_vm(struct recv_state *s, json_object *m, const char *want_id, int *wr,
                   hull_error *err)
{
    json_object *src = hj_get(m, "vm");
    const char *id = want_id ? want_id : src ? json_object_get_string(src) : "";
    if (vm_id_validate(id, err) < 0)
        return -1;
    struct vm *vm = &s->vm;
    if (vm_dir_of(s->rt, id, vm->dir, sizeof(vm->dir), err) < 0)
        return -1;
    snprintf(vm->id, sizeof(vm->id), "%s", id);
    if (access(vm->dir, F_OK) == 0)
        return hull_error_set(err, EEXIST, "VM %s already exists here", id);
    if (vm_make_dirs(vm, err) < 0)
        return -1;
    s->guard = guard_start(s->rt, id, &s->guard_fd, err);
    if (s->guard < 0) {
        hull_error e = NULL;
        /* Nothing runs in it yet: the directory is all there is. */
        if (hull_rm_rf_at(AT_FDCWD, vm->dir, &e) < 0) {
            hull_warn("receive: remove %s: %s", vm->dir, hull_error_msg(e));
            hull_error_free(&e);
        }
        s->guard = 0;
        return -1;
    }
    /* The same network, MAC, addresses and published ports: vm_start_vmm
     * attaches the TAP asking for exactly these, refused before 'A'. */
    /* The peer's paths name files of this host: only hull's own artifacts. */
    if (mig_manifest_confine(m, err) < 0 || vm_manifest_artifacts(m, vm, err) < 0 ||
        vm_net_from_manifest(m, vm, err) < 0)
        return -1;
    snprintf(vm->restored_from, sizeof(vm->restored_from), "migration from %s (VM %s)", s->peer,
             src ? json_object_get_string(src) : "?");
    int pp[2];
    if (pipe2(pp, O_CLOEXEC) < 0)
        return hull_error_errno(err, "pipe");
    /* Room for a whole frame: fewer stalls between us and QEMU (only speed). */
    if (fcntl(pp[1], F_SETPIPE_SZ, 1 << 20) < 0)
        hull_debug("receive: pipe size: %s", strerror(errno));
    int rc = vm_save(vm, err) < 0 ? -1 : vm_start_vmm(vm, pp[0], err);
    /* QEMU has its own copy (fd 3): a QEMU that exits makes our writes fail. */
    close(pp[0]);
    if (rc < 0) {
        close(pp[1]);
        return -1;
    }
    *wr = pp[1];
    return 0;
}

/* What the VM's run/<log> last said as " (<what>: ...)", or "". */
static void log_said(const struct vm *vm, const char *log, const char *what, char *out, size_t len)
{
    char said[480];
    vm_log_said(vm, log, said, sizeof(said));
    out[0] = 0;
    if (said[0])
        snprintf(out, len, " (%s: %s)", what, said);
}

/* The oldest files of dir removed until at most keep are left (names
 * carry no order: modification times do). Best effort: only disk space. */
static void logs_prune(const char *dir, size_t keep)
{
    for (;;) {
        DIR *d = opendir(dir);
        if (!d)
            return;
        struct dirent *de;
        size_t count = 0;
        char oldest[256] = "";
        struct timespec when = {0};
        while ((de = readdir(d))) {
            struct stat st;
            if (de->d_name[0] == '.' || fstatat(dirfd(d), de->d_name, &st, 0) < 0 ||
                !S_ISREG(st.st_mode))
                continue;
            count++;
            if (!oldest[0] || st.st_mtim.tv_sec < when.tv_sec ||
                (st.st_mtim.tv_sec == when.tv_sec && st.st_mtim.tv_nsec < when.tv_nsec)) {
                snprintf(oldest, sizeof(oldest), "%s", de->d_name);
                when = st.st_mtim;
            }
        }
        bool gone = count > keep && unlinkat(dirfd(d), oldest, 0) == 0;
        closedir(d);
        if (!gone)
            return;
    }
}

/* The guest's console and QEMU's stderr of a received VM that failed after
 * it ran here, kept as <root>/vm.failed/<id>-<ms>.log: the guard removes the
 * VM's directory, and a panic's text (why, where, the stack) is the only
 * evidence there is of what happened in the guest. The path is written to
 * out (" (logs kept in PATH)"), or "" when nothing could be kept. Only the
 * last MIG_KEPT_LOGS are kept. */
#define MIG_KEPT_LOGS 16
#define MIG_KEPT_TAIL (1 << 20) /* of each log: the end says how it ended */

/* The last MIG_KEPT_TAIL bytes of the log at path (QEMU's directory: its
 * uid may have put a symlink, a FIFO or a device there) into out, after a
 * header line. 1 copied, 0 nothing to copy, -1 a failed write. */
static int copy_log_tail(int out, const char *path, const char *header)
{
    cleanup_close int fd = open(path, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
    struct stat st;
    if (fd < 0 || fstat(fd, &st) < 0 || !S_ISREG(st.st_mode))
        return 0;
    if (st.st_size > MIG_KEPT_TAIL && lseek(fd, st.st_size - MIG_KEPT_TAIL, SEEK_SET) < 0)
        return 0;
    if (dprintf(out, "%s", header) < 0)
        return -1;
    char buf[65536];
    for (size_t left = MIG_KEPT_TAIL; left > 0;) {
        ssize_t n = read(fd, buf, left < sizeof(buf) ? left : sizeof(buf));
        if (n <= 0)
            break;
        if (hull_pwrite_all(out, buf, (size_t)n, -1) < 0)
            return -1;
        left -= (size_t)n;
    }
    return 1;
}

static void keep_logs(const struct recv_state *s, char *out, size_t len)
{
    char root[4096], dir[4200], path[4400];
    hull_error e = NULL;
    out[0] = 0;
    if (vm_root_dir(s->rt, root, sizeof(root), &e) < 0 ||
        snprintf(dir, sizeof(dir), "%s.failed", root) >= (int)sizeof(dir) ||
        hull_mkdir_p(dir, 0700, &e) < 0) {
        hull_warn("receive: keep the logs of VM %s: %s", s->vm.id,
                  e ? hull_error_msg(e) : "the state root's path is too long");
        hull_error_free(&e);
        return;
    }
    logs_prune(dir, MIG_KEPT_LOGS - 1);
    snprintf(path, sizeof(path), "%s/%s-%lld.log", dir, s->vm.id, (long long)hull_realtime_ms());
    static const char *const logs[] = {"console.log", "qemu.log"};
    cleanup_close int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd < 0) {
        hull_warn("receive: keep the logs of VM %s in %s: %s", s->vm.id, path, strerror(errno));
        return;
    }
    int copied = 0;
    for (size_t i = 0; i < 2 && copied >= 0; i++) {
        char name[32], p[4200], header[4400];
        snprintf(name, sizeof(name), "run/%s", logs[i]);
        vm_path(&s->vm, name, p, sizeof(p));
        snprintf(header, sizeof(header), "==== %s (VM %s, %s) ====\n", logs[i], s->vm.id,
                 s->vm.restored_from);
        int rc = copy_log_tail(fd, p, header);
        copied = rc < 0 ? -1 : copied + rc;
    }
    /* Only a whole copy is named; a failed or empty one goes. */
    if (copied <= 0) {
        if (copied < 0)
            hull_warn("receive: keep the logs of VM %s in %s: %s", s->vm.id, path, strerror(errno));
        unlink(path);
        return;
    }
    snprintf(out, len, " (logs kept in %s)", path);
}

/* 'D' frames into QEMU until 'E', whose count and digest must match. */
static int pump_in(struct recv_state *s, int wr, hull_error *err)
{
    __attribute__((cleanup(mig_sha_freep))) EVP_MD_CTX *sha = mig_sha_new();
    cleanup_free char *buf = malloc(MIG_DATA_MAX);
    if (!sha || !buf)
        return hull_error_set(err, ENOMEM, "no memory for the stream");
    for (;;) {
        char type;
        uint32_t n = 0;
        cleanup_json json_object *o = NULL;
        if (mig_recv(&s->c, &type, &o, &n, err) < 0)
            return -1;
        if (type == 'E') {
            char hex[65];
            mig_sha_hex(sha, hex);
            json_object *b = hj_get(o, "bytes"), *h = hj_get(o, "sha256");
            if (!b || (uint64_t)json_object_get_int64(b) != s->bytes || !h ||
                strcmp(json_object_get_string(h), hex) != 0)
                return hull_error_set(err, EPERM,
                                      "the stream does not match its digest (damaged or "
                                      "tampered with)");
            return 0;
        }
        if (type != 'D')
            return hull_error_set(err, EPROTO, "unexpected message '%c' in the stream", type);
        if (mig_read_data(&s->c, buf, n, err) < 0)
            return -1;
        EVP_DigestUpdate(sha, buf, n);
        s->bytes += n;
        if (hull_pwrite_all(wr, buf, n, -1) < 0) {
            int e = errno;
            char why[600];
            log_said(&s->vm, "qemu.log", "QEMU", why, sizeof(why));
            errno = e;
            return hull_error_errno(err, "QEMU stopped reading the stream%s", why);
        }
    }
}

/* After 'A': the stream, the load, the commit, the guest running. */
static int take_over(struct recv_state *s, int wr, hull_error *err)
{
    int64_t t0 = hull_monotonic_ms();
    int rc = pump_in(s, wr, err);
    close(wr);
    if (rc < 0)
        return -1;
    if (vm_vmm()->load_wait(&s->vm, err) < 0)
        return hull_error_prefix(err, "load the stream");
    s->load_ms = hull_monotonic_ms() - t0;
    if (mig_send(&s->c, 'L', NULL, err) < 0 || mig_expect(&s->c, 'C', NULL, err) < 0)
        return -1;
    if (vm_vmm()->resume(&s->vm, err) < 0)
        return -1;
    int64_t t_run = hull_monotonic_ms();
    s->vm.status = VM_RUNNING;
    /* The guest's card announces itself (gratuitous ARP, IPv6 neighbour
     * advertisements) on this host's bridge: the bridge and the host learn
     * where its MAC is now. Only speed: without it they learn at the first
     * frame the guest sends. */
    hull_error ae = NULL;
    if (s->vm.network[0] && vm_vmm()->announce(&s->vm, &ae) < 0) {
        hull_warn("receive: VM %s: announce its card: %s", s->vm.id, hull_error_msg(ae));
        hull_error_free(&ae);
    }
    /* The guest answers here before the source lets its own copy go. */
    struct vm_agent *a = NULL;
    rc = vm_agent_connect(&s->vm, 30000, &a, err);
    vm_agent_close(a);
    if (rc < 0) {
        char con[600], qemu[600];
        log_said(&s->vm, "console.log", "console", con, sizeof(con));
        log_said(&s->vm, "qemu.log", "QEMU", qemu, sizeof(qemu));
        char kept[4500];
        keep_logs(s, kept, sizeof(kept));
        return hull_error_prefix(err, "the guest after the move%s%s%s", con, qemu, kept);
    }
    if (vm_save(&s->vm, err) < 0)
        return -1;
    json_object *r = json_object_new_object();
    json_object_object_add(r, "id", json_object_new_string(s->vm.id));
    /* The guest ran during this: the source leaves it out of the downtime. */
    json_object_object_add(r, "running_ms", json_object_new_int64(hull_monotonic_ms() - t_run));
    return mig_send(&s->c, 'R', r, err);
}

/* A connection must prove itself (the handshake, in TLS when asked) within
 * this, or the timeout when shorter: one that does not is dropped. */
#define PROOF_MS 10000

/* The first connection on lfd that proves itself, within wait_ms of now:
 * one that does not (a wrong token or certificate, garbage, a hang-up, a
 * trickle) is dropped and the receive waits on for the next, so nobody
 * who merely reaches the port can end it. Its manifest is then due within
 * the timeout (60 s at most) of its connecting. */
static int accept_proven(struct recv_state *s, int lfd, int wait_ms, struct mig_sec *sec,
                         hull_error *err)
{
    int64_t end = hull_monotonic_ms() + wait_ms;
    cleanup_hull_error hull_error last = NULL; /* why the last one was dropped */
    char last_peer[sizeof(s->peer)] = "";
    for (;;) {
        int64_t left = end - hull_monotonic_ms();
        if (left <= 0 && last)
            return hull_error_set(err, ETIMEDOUT,
                                  "no source proved itself within %d s (the last, from %s: %s)",
                                  wait_ms / 1000, last_peer, hull_error_msg(last));
        if (mig_accept(lfd, left > 0 ? (int)left : 0, &s->c.fd, s->peer, sizeof(s->peer), err) < 0)
            return -1;
        int64_t t0 = hull_monotonic_ms();
        s->c.server = true;
        s->c.timeout_ms = 60000;
        s->c.deadline_ms = t0 + (wait_ms < PROOF_MS ? wait_ms : PROOF_MS);
        hull_error e = NULL;
        if (mig_secure(&s->c, sec, NULL, &e) == 0) {
            s->c.deadline_ms = t0 + (wait_ms < 60000 ? wait_ms : 60000);
            return 0;
        }
        hull_warn("receive: dropped a connection from %s that did not prove itself: %s", s->peer,
                  hull_error_msg(e));
        hull_error_free(&last);
        last = e;
        snprintf(last_peer, sizeof(last_peer), "%s", s->peer);
        mig_chan_close(&s->c);
        s->c = (struct mig_chan){.fd = -1};
    }
}

static int serve(struct recv_state *s, const struct hull_vm_receive_opts *o, struct mig_sec *sec,
                 hull_error *err)
{
    cleanup_close int lfd = -1;
    char bound[160];
    int wait_ms = (int)(o->timeout_s ? o->timeout_s : 300) * 1000;
    if (mig_listen(o->listen, &lfd, bound, sizeof(bound), err) < 0)
        return -1;
    if (o->ready)
        o->ready(bound, o->ready_arg);
    if (accept_proven(s, lfd, wait_ms, sec, err) < 0)
        return -1;
    close(lfd);
    lfd = -1;
    cleanup_json json_object *m = NULL;
    if (mig_expect(&s->c, 'M', &m, err) < 0)
        return -1;
    s->c.deadline_ms = 0;
    int wr = -1;
    if (make_vm(s, m, o->id, &wr, err) < 0)
        return -1;
    cleanup_close int lk = vm_lock(&s->vm, "lock", false, err);
    json_object *acc = json_object_new_object();
    json_object_object_add(acc, "id", json_object_new_string(s->vm.id));
    if (lk < 0 || mig_send(&s->c, 'A', acc, err) < 0) {
        close(wr);
        return -1;
    }
    return take_over(s, wr, err);
}

int hull_vm_receive(const struct hull_runtime *rt, const struct hull_vm_receive_opts *o,
                    char **result_json, hull_error *err)
{
    struct mig_sec_opts so = {.cert = o->tls_cert,
                              .key = o->tls_key,
                              .ca = o->tls_ca,
                              .token_file = o->token_file,
                              .insecure_plain = o->insecure_plain};
    __attribute__((cleanup(mig_sec_close))) struct mig_sec sec = {0};
    *result_json = NULL;
    if (mig_sec_open(&so, true, &sec, err) < 0)
        return hull_error_prefix(err, "receive");
    if (o->id && vm_id_validate(o->id, err) < 0)
        return hull_error_prefix(err, "receive");
    struct recv_state s = {.rt = rt, .c = {.fd = -1}, .guard_fd = -1};
    /* QEMU may exit mid-stream: a write must fail, not kill us. */
    struct sigaction ign = {.sa_handler = SIG_IGN}, old;
    sigaction(SIGPIPE, &ign, &old);
    int rc = serve(&s, o, &sec, err);
    if (rc < 0 && s.c.fd >= 0)
        mig_send_error(&s.c, *err);
    mig_chan_close(&s.c);
    /* On failure the guard removes what was made (QEMU, cgroup, directory). */
    guard_end(&s, rc == 0);
    sigaction(SIGPIPE, &old, NULL);
    if (rc < 0)
        return hull_error_prefix(err, "receive");
    cleanup_json json_object *r = json_object_new_object();
    json_object_object_add(r, "id", json_object_new_string(s.vm.id));
    json_object_object_add(r, "from", json_object_new_string(s.peer));
    json_object_object_add(r, "bytes", json_object_new_int64((int64_t)s.bytes));
    json_object_object_add(r, "load_ms", json_object_new_int64(s.load_ms));
    json_object_object_add(r, "pid", json_object_new_int(s.vm.pid));
    json_object_object_add(r, "transport", json_object_new_string(sec.ctx ? "tls" : "plain"));
    *result_json = strdup(json_object_to_json_string_ext(r, JSON_C_TO_STRING_PLAIN));
    return 0;
}
