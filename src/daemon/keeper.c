/* The keeper: one process per long-lived sandbox, single-threaded, the
 * sandbox's creator and supervisor (the sandbox dies with it). It serves
 * hulld's requests one at a time over its sockets and destroys the sandbox
 * when told to, or when hulld goes away (EOF). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "daemon.h"
#include "ports.h"
#include "procs.h"
#include "util/error.h"
#include "util/json.h"

static int do_create(int sock, struct frame *f, struct hull_session **s)
{
    struct hull_policy p;
    hull_error e = NULL;
    hull_policy_init(&p);
    int r = hull_policy_from_json(f->data, f->len, &p, &e);
    if (r == 0)
        r = request_policy_image(&p, &e);
    if (r == 0)
        r = hull_session_create(&p, s, &e);
    hull_policy_free(&p);
    if (r < 0) {
        frame_reply_error(sock, &e);
        return -1;
    }
    frame_reply_ok(sock, "container", hull_session_id(*s), NULL, 0);
    return 0;
}

static void do_exec(int sock, struct frame *f, struct hull_session *s)
{
    struct hull_policy p;
    struct hull_result r;
    hull_error e = NULL;
    hull_policy_init(&p);
    if (hull_policy_from_json(f->data, f->len, &p, &e) < 0) {
        hull_policy_free(&p);
        frame_reply_error(sock, &e);
        return;
    }
    p.cancel_fd = f->fd;
    int rc = hull_session_exec(s, &p, &r, &e);
    p.cancel_fd = -1;
    hull_policy_free(&p);
    if (rc < 0) {
        frame_reply_error(sock, &e);
        return;
    }
    char *json = hull_result_to_json(&r);
    hull_result_free(&r);
    size_t len = strlen(json);
    if (len > FRAME_MAX) { /* an answer in one piece: output escaped in JSON */
        hull_error_set(&e, EFBIG,
                       "exec: its result is %zu MiB of JSON, more than one answer carries (%u "
                       "MiB): lower limits.output, or stream the output (Accept: "
                       "application/x-ndjson)",
                       len >> 20, FRAME_MAX >> 20);
        frame_reply_error(sock, &e);
    } else {
        frame_reply_ok(sock, NULL, NULL, json, len);
    }
    free(json);
}

int keeper_loop(int main_sock)
{
    struct hull_session *s = NULL;
    /* Requests come on the main connection and on those hulld attached
     * (keeper_procs.c); each is answered on its own. */
    struct kprocs *kp = kprocs_new(main_sock);
    for (;;) {
        struct frame f;
        int sock;
        if (kp == NULL || kprocs_next(kp, s, &sock, &f) < 0)
            break;
        const char *op = frame_str(&f, "op");
        hull_error e = NULL;
        bool done = false;
        if (s == NULL && vmk_serves(&f)) { /* a microVM sandbox: sbx_vm.c */
            int rc = vmk_loop(kp, sock, &f);
            frame_free(&f);
            kprocs_free(kp);
            return rc;
        } else if (strcmp(op, "create") == 0 && s == NULL) {
            done = do_create(sock, &f, &s) < 0;
        } else if (s == NULL) {
            hull_error_set(&e, EPROTO, "keeper: no sandbox yet");
            frame_reply_error(sock, &e);
        } else if (kprocs_op(kp, s, sock, &f)) {
            /* a background process's */
        } else if (strcmp(op, "exec") == 0) {
            /* In a child of ours: its processes are served meanwhile. */
            pid_t child = kprocs_fork(kp, sock);
            if (child <= 0)
                do_exec(sock, &f, s);
            if (child == 0)
                _exit(0);
        } else if (strcmp(op, "put") == 0) {
            json_object *m = hj_get(f.hdr, "mode");
            if (hull_session_put_file(s, frame_str(&f, "path"), f.data, f.len,
                                      m ? (unsigned)json_object_get_int(m) : 0, &e) < 0)
                frame_reply_error(sock, &e);
            else
                frame_reply_ok(sock, NULL, NULL, NULL, 0);
        } else if (strcmp(op, "get") == 0) {
            char *data = NULL;
            size_t len = 0;
            json_object *m = hj_get(f.hdr, "max");
            if (hull_session_get_file(s, frame_str(&f, "path"),
                                      m ? (size_t)json_object_get_int64(m) : 0, &data, &len,
                                      &e) < 0)
                frame_reply_error(sock, &e);
            else
                frame_reply_ok(sock, NULL, NULL, data, len);
            free(data);
        } else if (strcmp(op, "socket") == 0) {
            keeper_socket(sock, &f, s);
        } else if (strcmp(op, "fs") == 0) {
            keeper_fs(sock, &f, s);
        } else if (keeper_tpl(sock, &f, s)) {
            /* a template's save or load (keeper_tpl.c) */
        } else if (strcmp(op, "pause") == 0 || strcmp(op, "resume") == 0) {
            int r = op[0] == 'p' ? hull_session_pause(s, &e) : hull_session_resume(s, &e);
            if (r < 0)
                frame_reply_error(sock, &e);
            else
                frame_reply_ok(sock, NULL, NULL, NULL, 0);
        } else if (strcmp(op, "destroy") == 0) {
            kprocs_kill(kp, s);
            hull_session_destroy(s);
            s = NULL;
            frame_reply_ok(sock, NULL, NULL, NULL, 0);
            done = true;
        } else {
            hull_error_set(&e, EPROTO, "keeper: unknown operation '%s'", op);
            frame_reply_error(sock, &e);
        }
        frame_free(&f);
        if (done)
            break;
    }
    if (kp)
        kprocs_kill(kp, s);
    hull_session_destroy(s);
    kprocs_free(kp);
    return 0;
}
