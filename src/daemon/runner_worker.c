/* The worker process: one run at a time for hulld's run pool (runner.c)
 * or for the queue worker ("runner", worker.c), single-threaded, talking
 * frames over fd 3.
 *
 * It is its own small static program, hull-worker (src/worker/main.c), so
 * that it maps what a run needs and nothing of hulld's: the sandbox's first
 * clone copies every mapping of the process it is made from, and hulld's
 * 49 shared libraries made each run's clone ~0.5-1 ms dearer than the same
 * call in a lean process. hulld --helper worker runs the same code where
 * hull-worker is not installed (helper.c). */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include "daemon.h"
#include "run_stream.h"
#include "runner.h"
#include "service/job.h"
#include "util/error.h"
#include "util/json.h"
#include "util/log.h"

/* ---- a streamed run's output (run_stream.c has hulld's side) ---- */

static struct {
    int fd;
    uint64_t off;
} hook = {.fd = -1};

static void on_output(void *ctx, int stream, const char *d, size_t n)
{
    (void)ctx;
    while (n) {
        size_t k = n > RUN_STREAM_REC_MAX ? RUN_STREAM_REC_MAX : n;
        struct run_stream_rec h = {.stream = (uint32_t)stream, .offset = hook.off};
        struct iovec iov[2] = {{.iov_base = &h, .iov_len = sizeof(h)},
                               {.iov_base = (void *)d, .iov_len = k}};
        struct msghdr m = {.msg_iov = iov, .msg_iovlen = 2};
        /* Never waits (the run's clocks go on): what does not fit now is
         * lost to this client, which its offsets show. A client gone
         * (EPIPE) leaves the run as it is. */
        if (sendmsg(hook.fd, &m, MSG_DONTWAIT | MSG_NOSIGNAL) < 0 && errno != EAGAIN &&
            errno != ENOBUFS)
            hull_debug("run stream: %s", strerror(errno));
        hook.off += k;
        d += k;
        n -= k;
    }
}

void run_stream_hook(struct hull_policy *p, int stream_fd)
{
    hook.fd = stream_fd;
    hook.off = 0;
    if (stream_fd < 0)
        return;
    /* The sandbox's processes must never hold it (it came with
     * MSG_CMSG_CLOEXEC; said again in case). */
    fcntl(stream_fd, F_SETFD, FD_CLOEXEC);
    p->on_output = on_output;
    p->on_output_ctx = NULL;
}

char *run_failed_result(const char *why)
{
    struct hull_result r = {.verdict = HULL_VERDICT_INTERNAL_ERROR, .error = (char *)why};
    return hull_result_to_json(&r);
}

/* The same, for a run whose policy was read: it names the level asked for. */
static char *policy_failed_result(const struct hull_policy *p, const char *why)
{
    struct hull_result r = {
        .verdict = HULL_VERDICT_INTERNAL_ERROR, .error = (char *)why, .isolation = p->isolation};
    return hull_result_to_json(&r);
}

/* A result no frame carries (output escaped in JSON grows up to six
 * times) is replaced by the error it is: sent whole, it would be refused. */
static char *fit_frame(char *res, const char **verdict)
{
    size_t len = res ? strlen(res) : 0;
    if (len <= FRAME_MAX)
        return res;
    free(res);
    char why[256];
    snprintf(why, sizeof(why),
             "the result is %zu MiB of JSON, more than one answer carries (%u MiB): lower "
             "limits.output, or stream the run",
             len >> 20, FRAME_MAX >> 20);
    *verdict = "internal_error";
    return run_failed_result(why);
}

int policy_image_root(struct hull_policy *p, const char *image_root, hull_error *err)
{
    if (p->image == NULL)
        return 0;
    if (image_root == NULL) /* see api_images */
        return hull_error_set(err, ENOTSUP, "image: hulld has no image store");
    free(p->image_root);
    p->image_root = strdup(image_root);
    if (p->image_root == NULL)
        return hull_error_set(err, ENOMEM, "out of memory");
    p->pull = HULL_PULL_NEVER;
    return 0;
}

static char *run_one(struct frame *f, int stream_fd, const char *image_root, double *lib_ms,
                     const char **verdict)
{
    *verdict = hull_verdict_name(HULL_VERDICT_INTERNAL_ERROR);
    struct hull_policy p;
    hull_error e = NULL;
    hull_policy_init(&p);
    char *res = NULL;
    if (hull_policy_from_json(f->data, f->len, &p, &e) < 0 ||
        policy_image_root(&p, image_root, &e) < 0) {
        res = run_failed_result(hull_error_msg(e));
    } else {
        p.cancel_fd = f->fd;
        run_stream_hook(&p, stream_fd);
        if (hull_job_run(&p, &res, verdict, lib_ms, &e) < 0)
            res = policy_failed_result(&p, hull_error_msg(e));
    }
    hull_error_free(&e);
    p.cancel_fd = -1;
    hull_policy_free(&p);
    return res;
}

/* hulld is gone before it recorded the result: the worker does (a no-op
 * when hulld did after all: a run's end is recorded once, the first word
 * stands). */
static void record_self(struct hull_store *st, const char *id, const char *res, const char *verdict)
{
    hull_error e = NULL;
    if (id && hull_run_finish(st, id, res, verdict, &e) < 0) {
        hull_warn("worker: %s", hull_error_msg(e));
        hull_error_free(&e);
    }
}

/* A queue job (hulld --worker): the result, or {"error": why} when it
 * could not start; the queue worker stores either in Redis. */
static int answer_queued(int sock, const struct frame *f)
{
    struct hull_policy p;
    hull_error e = NULL;
    hull_policy_init(&p);
    char *res = NULL;
    const char *verdict;
    double lib_ms = 0;
    json_object *hdr = json_object_new_object();
    int parsed = hull_policy_from_json(f->data, f->len, &p, &e);
    p.cancel_fd = f->fd; /* written when someone asked the job to stop */
    if (parsed < 0 || hull_job_run(&p, &res, &verdict, &lib_ms, &e) < 0) {
        char why[1024];
        snprintf(why, sizeof(why), "cannot run: %s", hull_error_msg(e));
        json_object_object_add(hdr, "error", json_object_new_string(why));
    } else {
        res = fit_frame(res, &verdict);
        json_object_object_add(hdr, "lib_ms", json_object_new_double(lib_ms));
        json_object_object_add(hdr, "verdict", json_object_new_string(verdict));
    }
    hull_error_free(&e);
    p.cancel_fd = -1; /* the frame's: frame_free closes it */
    hull_policy_free(&p);
    int r = frame_send(sock, hdr, res, res ? strlen(res) : 0, -1);
    json_object_put(hdr);
    free(res);
    return r;
}

/* The last result sent, until hulld shows it has it. */
struct unacked {
    char *id, *res;
    const char *verdict;
};

static void unacked_drop(struct unacked *u)
{
    free(u->id);
    free(u->res);
    *u = (struct unacked){0};
}

static int worker_loop(int sock, struct hull_store *st, const char *image_root)
{
    /* A result is hulld's (recorded, or kept in pending.c) once hulld sends
     * anything more: the next run (or its stream), or "recorded". hulld
     * closing the socket first may mean it died before recording it: then
     * the worker does (a no-op when hulld did: a run's end is recorded
     * once). */
    struct unacked u = {0};
    int stream_fd = -1; /* the next run's output stream (run_stream.c) */
    for (;;) {
        struct frame f;
        if (frame_recv(sock, &f) < 0) {
            int rc = errno == EPIPE ? 0 : 1; /* hulld closed our socket: done */
            if (u.res)
                record_self(st, u.id, u.res, u.verdict);
            unacked_drop(&u);
            if (stream_fd >= 0)
                close(stream_fd);
            return rc;
        }
        if (st == NULL) {
            int r = answer_queued(sock, &f);
            frame_free(&f);
            if (r < 0)
                return 0; /* the queue worker is gone */
            continue;
        }
        unacked_drop(&u);
        const char *op = json_object_get_string(hj_get(f.hdr, "op"));
        if (op && strcmp(op, "recorded") == 0) {
            frame_free(&f);
            continue;
        }
        if (op && strcmp(op, "stream") == 0) {
            if (stream_fd >= 0)
                close(stream_fd);
            stream_fd = f.fd;
            f.fd = -1;
            frame_free(&f);
            continue;
        }
        json_object *id = hj_get(f.hdr, "id");
        double lib_ms = 0;
        const char *verdict;
        char *res = fit_frame(run_one(&f, stream_fd, image_root, &lib_ms, &verdict), &verdict);
        if (stream_fd >= 0)
            close(stream_fd); /* its end: the stream then gives the result */
        stream_fd = -1;
        json_object *hdr = json_object_new_object();
        json_object_object_add(hdr, "lib_ms", json_object_new_double(lib_ms));
        json_object_object_add(hdr, "verdict", json_object_new_string(verdict));
        int r = frame_send(sock, hdr, res, strlen(res), -1);
        json_object_put(hdr);
        if (r < 0) {
            record_self(st, json_object_get_string(id), res, verdict);
            free(res);
            frame_free(&f);
            return 0;
        }
        u.id = id ? strdup(json_object_get_string(id)) : NULL;
        u.res = res;
        u.verdict = verdict;
        frame_free(&f);
    }
}

int helper_prepare(void)
{
    /* A helper ignores the signals meant for hulld (a terminal's ^C reaches
     * the whole group): hulld decides when it stops, by closing its socket. */
    signal(SIGINT, SIG_IGN);
    signal(SIGTERM, SIG_IGN);
    signal(SIGPIPE, SIG_IGN);
    if (fcntl(3, F_SETFD, FD_CLOEXEC) < 0) {
        fprintf(stderr, "%s: --helper is internal to hulld\n", program_invocation_short_name);
        return -1;
    }
    return 3;
}

int worker_main(const char *mode, const char *state_dir, const char *image_root)
{
    int sock = helper_prepare();
    if (sock < 0)
        return 2;
    if (strcmp(mode, "runner") == 0)
        return worker_loop(sock, NULL, image_root);
    hull_error err = NULL;
    struct hull_store *st = NULL;
    if (hull_store_open(state_dir, &st, &err) < 0) {
        hull_log(HULL_LOG_ERROR, "worker: %s", hull_error_msg(err));
        hull_error_free(&err);
        return 1;
    }
    int rc = worker_loop(sock, st, image_root);
    hull_store_close(st);
    return rc;
}
