/* The keeper's background processes: its loop polls hulld's connections
 * (the main one, and one per streaming reader or waiter, handed over with
 * "attach"), every process's output pipes or pty master, its pidfd and its
 * stdin. Output goes into a bounded ring per process (keeper_ring.c); a
 * reader asks for "from offset N, waiting for more" on its own connection
 * and is answered when there is some, so a reader never blocks the others.
 *
 * A following reader holds its process back: while it keeps asking, the
 * process's output is read no faster than half the buffer ahead of it
 * (the pipe then makes the process wait, as a pipe to a slow reader
 * would), so a reader that keeps up sees all of it. A reader that has not
 * asked for HOLD_MS lets go: the process runs on and that reader, when it
 * comes back, is told what it lost (a cut). Nothing grows anyone's memory.
 * A process lives on when its reader goes: only the sandbox's end, a
 * signal or its own limits stop it. */
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "keeper_procs.h"
#include "util/clock.h"
#include "util/error.h"
#include "util/json.h"
#include "util/log.h"

void kprocs_set_backend(struct kprocs *k, const struct kprocs_backend *be)
{
    k->be = be;
}

/* hdr (taken) with "ok", and data. */
void kp_reply(int conn, json_object *hdr, const void *data, size_t len)
{
    if (hdr == NULL)
        hdr = json_object_new_object();
    json_object_object_add(hdr, "ok", json_object_new_boolean(1));
    frame_send(conn, hdr, data, len, -1);
    json_object_put(hdr);
}

void kp_reply_json(int conn, json_object *o)
{
    const char *t = hj_to_string(o);
    kp_reply(conn, NULL, t, strlen(t));
    json_object_put(o);
}

struct kprocs *kprocs_new(int main_sock)
{
    struct kprocs *k = calloc(1, sizeof(*k));
    if (k == NULL)
        return NULL;
    k->conns[0].fd = main_sock;
    k->n_conns = 1;
    k->exec_pid = -1;
    k->exec_pidfd = k->exec_conn = -1;
    return k;
}

static void stamp(json_object *o, const char *key, time_t t)
{
    char buf[32];
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(buf, sizeof(buf), "%Y-%m-%dT%H:%M:%SZ", &tm);
    json_object_object_add(o, key, json_object_new_string(buf));
}

json_object *kp_describe(const struct kproc *p)
{
    json_object *o = json_object_new_object();
    json_object_object_add(o, "id", json_object_new_string(p->id));
    json_object_object_add(o, "cmd", json_object_get(p->cmd));
    json_object_object_add(o, "state", json_object_new_string(p->running ? "running" : "exited"));
    json_object_object_add(o, "pty", json_object_new_boolean(p->pty));
    json_object_object_add(o, "stdin", json_object_new_boolean(p->stdin_open));
    stamp(o, "started", p->started);
    if (!p->running)
        stamp(o, "ended", p->ended);
    json_object *out = json_object_new_object();
    json_object_object_add(out, "start", json_object_new_uint64(p->out.start));
    json_object_object_add(out, "end", json_object_new_uint64(p->out.end));
    json_object_object_add(o, "output", out);
    if (p->result)
        json_object_object_add(o, "result", json_object_get(p->result));
    return o;
}

struct kproc *kp_find(struct kprocs *k, const char *id, hull_error *err)
{
    for (struct kproc *p = k->procs; p; p = p->next)
        if (strcmp(p->id, id) == 0)
            return p;
    hull_error_set(err, ENOENT, "process '%s' not found", id);
    return NULL;
}

const char *kp_hstr(struct frame *f, const char *key)
{
    json_object *v = hj_get(f->hdr, key);
    return v ? json_object_get_string(v) : "";
}

uint64_t kp_hu64(struct frame *f, const char *key)
{
    json_object *v = hj_get(f->hdr, key);
    return v ? json_object_get_uint64(v) : 0;
}

/* ---- supervision ---- */

void kp_kill_proc(struct kproc *p, int stop)
{
    if (!p->running || p->reaped) /* reaped: its pid may be another's now */
        return;
    if (p->stop == HULL_STOP_NONE)
        p->stop = stop;
    /* Its process group (it made its own session) and the process itself. */
    kill(-p->sp.pid, SIGKILL);
    kill(p->sp.pid, SIGKILL);
}

/* What fd (out or err) has now, up to room bytes: false at its end. */
static bool take_output(struct kproc *p, int *fd, int stream, int rounds, size_t room)
{
    char buf[READ_MAX];
    for (int i = 0; i < rounds && room; i++) {
        ssize_t n = read(*fd, buf, room < sizeof(buf) ? room : sizeof(buf));
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && errno == EAGAIN)
            return true;
        if (n <= 0) { /* EOF, or EIO: a pty whose terminal end is closed */
            hull_closep(fd);
            return false;
        }
        size_t keep = (size_t)n;
        if (p->output_max && p->out.end + keep > p->output_max) {
            keep = p->out.end < p->output_max ? (size_t)(p->output_max - p->out.end) : 0;
            kp_kill_proc(p, HULL_STOP_OUTPUT);
        }
        if (keep)
            ring_append(&p->out, stream, buf, keep);
        room -= (size_t)n;
        if (keep < (size_t)n)
            return true;
    }
    return true;
}

void kp_feed_stdin(struct kproc *p)
{
    while (p->sp.in >= 0 && p->inq_off < p->inq_len) {
        ssize_t w = write(p->sp.in, p->inq + p->inq_off, p->inq_len - p->inq_off);
        if (w < 0 && errno == EINTR)
            continue;
        if (w < 0 && errno == EAGAIN)
            return;
        if (w <= 0) { /* nobody reads it any more */
            p->inq_off = p->inq_len;
            p->stdin_open = false;
            break;
        }
        p->inq_off += (size_t)w;
    }
    p->inq_off = p->inq_len = 0;
    if (p->close_after && p->sp.in >= 0 && !p->pty)
        hull_closep(&p->sp.in);
    if (p->close_after && p->pty && p->sp.in >= 0) {
        /* A terminal has no end of input but EOT, as a typed ^D. */
        static const char eot = 4;
        if (write(p->sp.in, &eot, 1) < 0)
            hull_debug("process %s: ^D: %s", p->id, strerror(errno));
        p->close_after = false;
    }
}

/* Past SANDBOX_BUFFERS buffers held by all processes together, the oldest
 * output of the process holding the most goes first (a flood sheds its
 * own), down to each process's newest chunk; a reader of what went is told
 * it was cut, as when its own buffer overflows. */
static void shed_output(struct kprocs *k)
{
    size_t held = 0, budget = 0;
    for (const struct kproc *p = k->procs; p; p = p->next) {
        held += p->out.mem;
        budget = p->out.budget > budget ? p->out.budget : budget;
    }
    while (held > (size_t)SANDBOX_BUFFERS * budget) {
        struct kproc *most = NULL;
        for (struct kproc *p = k->procs; p; p = p->next)
            if (p->out.head != p->out.tail && (most == NULL || p->out.mem > most->out.mem))
                most = p;
        size_t before = most ? most->out.mem : 0;
        if (most == NULL || !ring_shed_oldest(&most->out))
            return;
        held -= before - most->out.mem;
    }
}

static void finish(struct kprocs *k, struct kproc *p, struct hull_session *s, int status,
                   const struct rusage *ru)
{
    /* What it wrote before it went (a child it left may write on). */
    if (p->sp.out >= 0)
        take_output(p, &p->sp.out, 0, 16, SIZE_MAX);
    if (p->sp.err >= 0)
        take_output(p, &p->sp.err, 1, 16, SIZE_MAX);
    shed_output(k);
    hull_session_proc_close(&p->sp);
    hull_closep(&p->sp.pidfd);
    free(p->inq);
    p->inq = NULL;
    p->inq_len = p->inq_off = 0;
    p->running = false;
    p->stdin_open = false;
    p->ended = time(NULL);
    if (k->be) {
        p->result = k->be->result(p->sp.pid, status, p->stop);
        return;
    }
    struct hull_policy pol = {.cpu_time_ms = p->cpu_time_ms};
    uint64_t cpu = (uint64_t)(ru->ru_utime.tv_sec + ru->ru_stime.tv_sec) * 1000ull +
                   (uint64_t)(ru->ru_utime.tv_usec + ru->ru_stime.tv_usec) / 1000ull;
    struct hull_result r;
    hull_session_proc_result(s, &pol, &p->sp, status, cpu, (uint64_t)ru->ru_maxrss, p->stop, &r);
    char *json = hull_result_to_json(&r);
    hull_result_free(&r);
    p->result = json ? json_tokener_parse(json) : NULL;
    free(json);
}

/* Exited ones beyond MAX_EXITED go, oldest first. */
static void forget_old(struct kprocs *k)
{
    size_t exited = 0;
    for (struct kproc **pp = &k->procs; *pp;) {
        struct kproc *p = *pp;
        if (!p->running && ++exited > MAX_EXITED) {
            *pp = p->next;
            ring_free(&p->out);
            json_object_put(p->cmd);
            json_object_put(p->result);
            free(p);
            continue;
        }
        pp = &p->next;
    }
}

/* Nothing left to read in fd (or it cannot tell). */
static bool drained(int fd)
{
    int n = 0;
    return fd < 0 || ioctl(fd, FIONREAD, &n) < 0 || n <= 0;
}

/* Exited ones are reaped at once; they end once their output is read (a
 * following reader may hold it back), or there is no more. */
static void reap(struct kprocs *k, struct hull_session *s)
{
    bool any = false;
    for (struct kproc *p = k->procs; p; p = p->next) {
        if (!p->running)
            continue;
        if (!p->reaped && wait4(p->sp.pid, &p->status, WNOHANG, &p->ru) == p->sp.pid) {
            p->reaped = true;
            p->reaped_ns = hull_monotonic_ns();
            hull_closep(&p->sp.pidfd);
        }
        /* A child it left may keep writing: then it ends HOLD_MS after. */
        if (p->reaped && ((drained(p->sp.out) && drained(p->sp.err)) ||
                          hull_monotonic_ns() - p->reaped_ns >= HOLD_MS * 1000000ull)) {
            finish(k, p, s, p->status, &p->ru);
            any = true;
        }
    }
    if (any)
        forget_old(k);
}

/* ---- parked requests ---- */

void kp_answer_read(struct kprocs *k, int conn, const char *id, uint64_t offset, size_t max)
{
    hull_error e = NULL;
    struct kproc *p = kp_find(k, id, &e);
    if (p == NULL) {
        frame_reply_error(conn, &e);
        return;
    }
    json_object *hdr = json_object_new_object();
    char *data;
    size_t len;
    if (ring_read(&p->out, offset, max ? max : READ_MAX, hdr, &data, &len) < 0) {
        json_object_put(hdr);
        hull_error_set(&e, ENOMEM, "out of memory");
        frame_reply_error(conn, &e);
        return;
    }
    json_object_object_add(hdr, "running", json_object_new_boolean(p->running));
    if (!p->running && p->result)
        json_object_object_add(hdr, "result", json_object_get(p->result));
    kp_reply(conn, hdr, data, len);
    free(data);
}

static bool park_ready(struct kprocs *k, struct kconn *c, uint64_t now)
{
    struct kproc *p = kp_find(k, c->id, &(hull_error){NULL});
    if (p == NULL || !p->running)
        return true;
    if (c->park == PARK_READ)
        return p->out.end > c->after;
    return now >= c->deadline_ns;
}

static void unpark(struct kprocs *k)
{
    uint64_t now = hull_monotonic_ns();
    for (size_t i = 0; i < k->n_conns; i++) {
        struct kconn *c = &k->conns[i];
        if (c->park == PARK_NONE || !park_ready(k, c, now))
            continue;
        enum park what = c->park;
        c->park = PARK_NONE;
        if (what == PARK_READ) {
            c->follow_ns = now; /* its time to come back starts now */
            kp_answer_read(k, c->fd, c->id, c->offset, c->max);
        } else {
            hull_error e = NULL;
            struct kproc *p = kp_find(k, c->id, &e);
            if (p)
                kp_reply_json(c->fd, kp_describe(p));
            else
                frame_reply_error(c->fd, &e);
        }
    }
}

/* ---- the loop ---- */

/* How much more of p's output may be read now: SIZE_MAX when no reader
 * holds it; *wake: when the oldest hold lapses (unchanged if none). */
static size_t room_for(struct kprocs *k, const struct kproc *p, uint64_t now, uint64_t *wake)
{
    uint64_t least = UINT64_MAX;
    for (size_t i = 0; i < k->n_conns; i++) {
        const struct kconn *c = &k->conns[i];
        /* Waiting here for more is live; otherwise since its last answer. */
        if (c->follow[0] == '\0' || strcmp(c->follow, p->id) != 0 ||
            (c->park != PARK_READ && now - c->follow_ns >= HOLD_MS * 1000000ull))
            continue;
        least = c->follow_off < least ? c->follow_off : least;
        uint64_t lapse = c->follow_ns + HOLD_MS * 1000000ull;
        *wake = lapse < *wake ? lapse : *wake;
    }
    /* An exec's stream has not asked yet: its output is kept from the start. */
    if (p->hold_start && now - p->start_ns < HOLD_MS * 1000000ull) {
        least = 0;
        uint64_t lapse = p->start_ns + HOLD_MS * 1000000ull;
        *wake = lapse < *wake ? lapse : *wake;
    }
    if (least == UINT64_MAX)
        return SIZE_MAX;
    uint64_t ahead = p->out.end > least ? p->out.end - least : 0, most = p->out.budget / 2;
    return ahead >= most ? 0 : (size_t)(most - ahead);
}

static int next_timeout(struct kprocs *k, uint64_t now)
{
    uint64_t soonest = UINT64_MAX;
    bool no_pidfd = false;
    for (struct kproc *p = k->procs; p; p = p->next) {
        if (p->running && p->deadline_ns && p->deadline_ns < soonest)
            soonest = p->deadline_ns;
        no_pidfd = no_pidfd || (p->running && !p->reaped && p->sp.pidfd < 0);
        uint64_t gone = p->reaped_ns + HOLD_MS * 1000000ull;
        if (p->running && p->reaped && gone < soonest)
            soonest = gone;
    }
    for (size_t i = 0; i < k->n_conns; i++)
        if (k->conns[i].park == PARK_WAIT && k->conns[i].deadline_ns < soonest)
            soonest = k->conns[i].deadline_ns;
    int t = soonest == UINT64_MAX ? -1
            : soonest <= now      ? 0
                                  : (int)((soonest - now) / 1000000ull) + 1;
    if (no_pidfd && (t < 0 || t > 50))
        t = 50; /* no pidfd: look for exits now and then */
    return t;
}

static void drop_conn(struct kprocs *k, size_t i)
{
    close(k->conns[i].fd);
    k->conns[i] = k->conns[--k->n_conns];
}

int kprocs_next(struct kprocs *k, struct hull_session *s, int *conn, struct frame *f)
{
    for (;;) {
        unpark(k);
        size_t n = k->n_conns, cap = n + 1;
        for (struct kproc *p = k->procs; p; p = p->next)
            cap += 4;
        struct pollfd *fds = calloc(cap, sizeof(*fds));
        if (fds == NULL)
            return -1;
        for (size_t i = 0; i < n; i++) /* a parked or busy one waits for its answer */
            fds[i] = (struct pollfd){
                .fd = k->conns[i].park || k->conns[i].fd == k->exec_conn ? -1 : k->conns[i].fd,
                .events = POLLIN};
        struct pollfd *execfd = &fds[n];
        *execfd = (struct pollfd){.fd = k->exec_pidfd, .events = POLLIN};
        size_t m = n + 1;
        uint64_t now = hull_monotonic_ns(), wake = UINT64_MAX;
        for (struct kproc *p = k->procs; p; p = p->next) {
            if (!p->running)
                continue;
            uint64_t lapse = UINT64_MAX;
            bool room = room_for(k, p, now, &lapse) > 0;
            if (!room && lapse < wake) /* held: until its reader asks again, or lets go */
                wake = lapse;
            fds[m++] = (struct pollfd){.fd = room ? p->sp.out : -1, .events = POLLIN};
            fds[m++] = (struct pollfd){.fd = room ? p->sp.err : -1, .events = POLLIN};
            fds[m++] = (struct pollfd){.fd = p->sp.pidfd, .events = POLLIN};
            fds[m++] = (struct pollfd){.fd = p->inq_len ? p->sp.in : -1, .events = POLLOUT};
        }
        int timeout = next_timeout(k, now);
        if (wake != UINT64_MAX) {
            int w = wake <= now ? 0 : (int)((wake - now) / 1000000ull) + 1;
            timeout = timeout < 0 || w < timeout ? w : timeout;
        }
        int r = poll(fds, m, timeout);
        if (r < 0 && errno != EINTR) {
            free(fds);
            return -1;
        }
        if (execfd->revents && waitpid(k->exec_pid, NULL, WNOHANG) == k->exec_pid) {
            hull_closep(&k->exec_pidfd);
            k->exec_pid = -1;
            k->exec_conn = -1;
        }
        m = n + 1;
        now = hull_monotonic_ns();
        bool exits = false;
        for (struct kproc *p = k->procs; p; p = p->next) {
            if (!p->running)
                continue;
            uint64_t ignored = UINT64_MAX;
            if (fds[m].revents)
                take_output(p, &p->sp.out, 0, 4, room_for(k, p, now, &ignored));
            if (fds[m + 1].revents)
                take_output(p, &p->sp.err, 1, 4, room_for(k, p, now, &ignored));
            exits = exits || fds[m + 2].revents || p->sp.pidfd < 0 || p->reaped;
            if (fds[m + 3].revents)
                kp_feed_stdin(p);
            if (p->deadline_ns && now >= p->deadline_ns)
                kp_kill_proc(p, HULL_STOP_WALL);
            m += 4;
        }
        shed_output(k);
        if (exits)
            reap(k, s);
        /* Requests: the main connection first; another's EOF is its reader gone. */
        for (size_t i = 0; i < n; i++) {
            if (!fds[i].revents)
                continue;
            int fd = k->conns[i].fd;
            if (frame_recv(fd, f) == 0) {
                free(fds);
                *conn = fd;
                return 0;
            }
            if (i == 0) {
                free(fds);
                return -1;
            }
            drop_conn(k, i);
            break; /* the indexes moved: poll again */
        }
        free(fds);
    }
}

void kprocs_kill(struct kprocs *k, struct hull_session *s)
{
    bool any = false;
    for (struct kproc *p = k->procs; p; p = p->next) {
        any = any || (p->running && !p->reaped);
        kp_kill_proc(p, HULL_STOP_CANCEL);
    }
    if (k->exec_pid > 0) { /* its command is in the sandbox, which ends */
        kill(k->exec_pid, SIGKILL);
        waitpid(k->exec_pid, NULL, 0);
        hull_closep(&k->exec_pidfd);
        k->exec_pid = -1;
        k->exec_conn = -1;
    }
    hull_error e = NULL;
    /* A frozen process would hold its SIGKILL; the sandbox ends anyway. */
    if (any && s && hull_session_resume(s, &e) < 0)
        hull_error_free(&e); /* not paused, or no freezer: nothing held */
    /* Reaped before the sandbox's init is waited for: its pid namespace
     * ends only once every process of it is, zombies of ours included. */
    for (struct kproc *p = k->procs; p; p = p->next)
        if (p->running && !p->reaped && wait4(p->sp.pid, &p->status, 0, &p->ru) == p->sp.pid)
            p->reaped = true;
    for (size_t i = 1; i < k->n_conns; i++)
        close(k->conns[i].fd);
    k->n_conns = 1;
}

void kprocs_free(struct kprocs *k)
{
    if (k == NULL)
        return;
    while (k->procs) {
        struct kproc *p = k->procs;
        k->procs = p->next;
        if (p->running && !p->reaped)
            waitpid(p->sp.pid, NULL, 0); /* killed, and its sandbox destroyed */
        hull_session_proc_close(&p->sp);
        hull_closep(&p->sp.pidfd);
        free(p->inq);
        ring_free(&p->out);
        json_object_put(p->cmd);
        json_object_put(p->result);
        free(p);
    }
    for (size_t i = 1; i < k->n_conns; i++)
        close(k->conns[i].fd);
    free(k);
}

pid_t kprocs_fork(struct kprocs *k, int conn)
{
    int pfd = -1;
    pid_t pid = fork(); /* safe: the keeper has one thread */
    if (pid == 0) {
        /* Not its to hold: a process's stdin would not see EOF while the
         * exec runs, a reader's connection not its end. */
        for (struct kproc *p = k->procs; p; p = p->next) {
            hull_session_proc_close(&p->sp);
            hull_closep(&p->sp.pidfd);
        }
        for (size_t i = 1; i < k->n_conns; i++)
            if (k->conns[i].fd != conn)
                close(k->conns[i].fd);
        return 0;
    }
    if (pid > 0 && (pfd = (int)syscall(SYS_pidfd_open, pid, 0)) < 0) {
        waitpid(pid, NULL, 0); /* no pidfd: the exec as before, in line */
        return pid;
    }
    if (pid > 0) {
        k->exec_pid = pid;
        k->exec_pidfd = pfd;
        k->exec_conn = conn;
    }
    return pid;
}
