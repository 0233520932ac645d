/* The operations hulld asks of a sandbox's background processes (start,
 * stdin, signal, resize, wait, read, list), answered by the keeper; its
 * loop and supervision are keeper_procs.c. */
#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "keeper_procs.h"
#include "util/clock.h"
#include "util/error.h"
#include "util/json.h"
#include "util/log.h"

static unsigned running_count(struct kprocs *k)
{
    unsigned n = 0;
    for (struct kproc *p = k->procs; p; p = p->next)
        n += p->running;
    return n;
}

/* Limits of a process: those given; a background process has no wall time
 * or output limit of its own unless given ("exec" mode: an exec's
 * defaults). */
static void proc_limits(struct kproc *p, struct frame *f, const struct hull_policy *pol,
                        json_object *doc)
{
    bool exec = strcmp(kp_hstr(f, "mode"), "exec") == 0;
    json_object *l = hj_get(doc, "limits");
    p->cpu_time_ms = pol->cpu_time_ms;
    uint64_t now = hull_monotonic_ns();
    if (exec || hj_get(l, "wall_time"))
        p->deadline_ns = now + pol->wall_time_ms * 1000000ull;
    if (exec || hj_get(l, "output"))
        p->output_max = pol->output_bytes;
}

static int start_proc(struct kprocs *k, struct hull_session *s, struct frame *f, hull_error *err)
{
    const char *id = kp_hstr(f, "id");
    if (id[0] == '\0' || strlen(id) >= sizeof(((struct kproc *)0)->id))
        return hull_error_set(err, EPROTO, "keeper: a process needs an id");
    if (running_count(k) >= MAX_RUNNING)
        return hull_error_set(err, EBUSY, "the sandbox has %d processes running, its most",
                              MAX_RUNNING);
    json_object *doc = json_tokener_parse(f->data);
    struct hull_policy pol;
    hull_policy_init(&pol);
    bool cpu_given = hj_get(hj_get(doc, "limits"), "cpu_time") != NULL;
    if (doc == NULL || hull_policy_from_json(f->data, f->len, &pol, err) < 0) {
        json_object_put(doc);
        hull_policy_free(&pol);
        return doc ? -1 : hull_error_set(err, EINVAL, "keeper: the process is not JSON");
    }
    bool exec = strcmp(kp_hstr(f, "mode"), "exec") == 0;
    if (!exec && !cpu_given)
        pol.cpu_time_ms = 24ull * 3600 * 1000; /* the most: a shell may idle all day */
    struct kproc *p = calloc(1, sizeof(*p));
    unsigned rows = (unsigned)kp_hu64(f, "rows"), cols = (unsigned)kp_hu64(f, "cols");
    bool with_stdin = kp_hu64(f, "stdin") != 0 || pol.stdin_data != NULL;
    int r = p == NULL ? hull_error_set(err, ENOMEM, "out of memory")
            : k->be   ? k->be->spawn(&pol, with_stdin, rows, cols, &p->sp, err)
                      : hull_session_spawn(s, &pol, with_stdin, rows, cols, &p->sp, err);
    if (r == 0) {
        snprintf(p->id, sizeof(p->id), "%s", id);
        p->cmd = json_object_get(hj_get(doc, "cmd"));
        p->pty = rows && cols;
        p->running = true;
        p->stdin_open = p->sp.in >= 0;
        p->started = time(NULL);
        p->start_ns = hull_monotonic_ns();
        p->hold_start = strcmp(kp_hstr(f, "mode"), "exec") == 0;
        size_t budget = (size_t)kp_hu64(f, "buffer");
        ring_init(&p->out, budget == 0 ? (size_t)1 << 20 : budget < READ_MAX ? READ_MAX : budget);
        proc_limits(p, f, &pol, doc);
        if (pol.stdin_data) { /* an exec's stdin: written, then closed */
            p->inq = malloc(pol.stdin_len ? pol.stdin_len : 1);
            if (p->inq)
                memcpy(p->inq, pol.stdin_data, pol.stdin_len);
            p->inq_len = p->inq ? pol.stdin_len : 0;
            p->close_after = true;
            kp_feed_stdin(p);
        }
        p->next = k->procs;
        k->procs = p;
    } else {
        free(p);
    }
    json_object_put(doc);
    hull_policy_free(&pol);
    return r;
}

static int take_stdin(struct kprocs *k, struct kproc *p, struct frame *f, size_t *written,
                      hull_error *err)
{
    if (!p->running || !p->stdin_open || p->close_after)
        return hull_error_set(err, EBUSY, "process '%s': its stdin is %s", p->id,
                              p->running ? "closed" : "closed: it exited");
    size_t queued = 0; /* by all of the sandbox's processes */
    for (const struct kproc *q = k->procs; q; q = q->next)
        queued += q->inq_len - q->inq_off;
    size_t room = STDIN_QUEUE - (p->inq_len - p->inq_off);
    if (queued >= SANDBOX_STDIN)
        room = 0;
    else if (SANDBOX_STDIN - queued < room)
        room = SANDBOX_STDIN - queued;
    size_t n = f->len < room ? f->len : room;
    if (p->inq_off) {
        memmove(p->inq, p->inq + p->inq_off, p->inq_len - p->inq_off);
        p->inq_len -= p->inq_off;
        p->inq_off = 0;
    }
    char *q = realloc(p->inq, p->inq_len + n + 1);
    if (q == NULL)
        return hull_error_set(err, ENOMEM, "out of memory");
    p->inq = q;
    memcpy(p->inq + p->inq_len, f->data, n);
    p->inq_len += n;
    *written = n;
    kp_feed_stdin(p);
    return 0;
}

/* proc_* on a known process: -1 with err, 0 answered, 1 parked. */
static int proc_verb(struct kprocs *k, struct kconn *c, struct kproc *p, const char *op,
                     struct frame *f, hull_error *err)
{
    if (strcmp(op, "proc_get") == 0) {
        kp_reply_json(c->fd, kp_describe(p));
    } else if (strcmp(op, "proc_stdin") == 0) {
        size_t n = 0;
        if (take_stdin(k, p, f, &n, err) < 0)
            return -1;
        json_object *o = json_object_new_object();
        json_object_object_add(o, "written", json_object_new_uint64(n));
        kp_reply_json(c->fd, o);
    } else if (strcmp(op, "proc_close_stdin") == 0) {
        if (p->running && p->stdin_open && !p->close_after) {
            p->close_after = true;
            p->stdin_open = false;
            if (p->inq_len == 0)
                kp_feed_stdin(p);
        }
        kp_reply_json(c->fd, kp_describe(p));
    } else if (strcmp(op, "proc_signal") == 0) {
        int sig = (int)kp_hu64(f, "signal"); /* hulld took a name or a number */
        if (sig < 1 || sig >= NSIG)
            return hull_error_set(err, EINVAL, "signal: %d is not a signal", sig);
        if (!p->running || p->reaped)
            return hull_error_set(err, EBUSY, "process '%s' has exited", p->id);
        if (k->be && k->be->signal) {
            if (k->be->signal(p->sp.pid, sig, err) < 0)
                return -1;
        } else if (p->sp.pidfd >= 0 /* never a recycled pid */
                       ? syscall(SYS_pidfd_send_signal, p->sp.pidfd, sig, NULL, 0) < 0
                       : kill(p->sp.pid, sig) < 0)
            hull_debug("process %s: signal %d: %s", p->id, sig, strerror(errno));
        kp_reply_json(c->fd, kp_describe(p));
    } else if (strcmp(op, "proc_resize") == 0) {
        if (!p->pty)
            return hull_error_set(err, EBUSY, "process '%s' has no pty to resize", p->id);
        if (!p->running)
            return hull_error_set(err, EBUSY, "process '%s' has exited", p->id);
        struct winsize ws = {.ws_row = (unsigned short)kp_hu64(f, "rows"),
                             .ws_col = (unsigned short)kp_hu64(f, "cols")};
        if (k->be && k->be->resize) {
            if (k->be->resize(p->sp.pid, ws.ws_row, ws.ws_col, err) < 0)
                return -1;
        } else if (ioctl(p->sp.in, TIOCSWINSZ, &ws) < 0)
            return hull_error_errno(err, "resize");
        kp_reply_json(c->fd, kp_describe(p));
    } else if (strcmp(op, "proc_read") == 0) {
        c->offset = kp_hu64(f, "offset");
        c->after = kp_hu64(f, "after");
        c->max = kp_hu64(f, "max");
        c->follow[0] = '\0';
        if (kp_hu64(f, "wait")) { /* a follower: it holds the process back */
            snprintf(c->follow, sizeof(c->follow), "%s", p->id);
            p->hold_start = false;
            c->follow_off = c->offset;
            c->follow_ns = hull_monotonic_ns();
        }
        if (kp_hu64(f, "wait") && p->running && p->out.end <= c->after) {
            snprintf(c->id, sizeof(c->id), "%s", p->id);
            c->park = PARK_READ;
            return 1;
        }
        kp_answer_read(k, c->fd, p->id, c->offset, c->max);
    } else if (strcmp(op, "proc_wait") == 0) {
        if (!p->running) {
            kp_reply_json(c->fd, kp_describe(p));
            return 0;
        }
        snprintf(c->id, sizeof(c->id), "%s", p->id);
        c->deadline_ns = hull_monotonic_ns() + kp_hu64(f, "timeout_ms") * 1000000ull;
        c->park = PARK_WAIT;
        return 1;
    } else {
        return hull_error_set(err, EPROTO, "keeper: unknown operation '%s'", op);
    }
    return 0;
}

bool kprocs_op(struct kprocs *k, struct hull_session *s, int conn, struct frame *f)
{
    const char *op = kp_hstr(f, "op");
    hull_error e = NULL;
    struct kconn *c = NULL;
    for (size_t i = 0; i < k->n_conns; i++)
        if (k->conns[i].fd == conn)
            c = &k->conns[i];
    if (strcmp(op, "attach") == 0) {
        if (f->fd < 0 || k->n_conns >= MAX_CONNS) {
            hull_error_set(&e, EBUSY, "keeper: no room for another connection");
            frame_reply_error(conn, &e);
        } else {
            k->conns[k->n_conns++] = (struct kconn){.fd = f->fd};
            f->fd = -1;
            kp_reply(conn, NULL, NULL, 0);
        }
        return true;
    }
    if (strncmp(op, "proc_", 5) != 0 || c == NULL)
        return false;
    if (strcmp(op, "proc_start") == 0) {
        if (start_proc(k, s, f, &e) < 0)
            frame_reply_error(conn, &e);
        else
            kp_reply_json(conn, kp_describe(k->procs));
        return true;
    }
    if (strcmp(op, "proc_list") == 0) {
        json_object *o = json_object_new_object(), *a = json_object_new_array();
        for (struct kproc *p = k->procs; p; p = p->next)
            json_object_array_add(a, kp_describe(p));
        json_object_object_add(o, "processes", a);
        kp_reply_json(conn, o);
        return true;
    }
    struct kproc *p = kp_find(k, kp_hstr(f, "id"), &e);
    if (p == NULL || proc_verb(k, c, p, op, f, &e) < 0)
        frame_reply_error(conn, &e);
    return true;
}
