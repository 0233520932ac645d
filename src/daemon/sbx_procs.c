/* /v1/sandboxes/{sid}/processes: background processes of a sandbox, kept
 * by its keeper (keeper_procs.c). Short verbs go through the sandbox's op
 * lock like every request to it; reading output (sbx_stream.c) and waiting
 * use a keeper connection of their own, so they hold nothing while they
 * wait. Another tenant's sandbox is a 404 before anything here (its
 * processes with it). */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "procs.h"
#include "streams.h"
#include "util/error.h"
#include "util/json.h"

static const char *const proc_fields[] = {"cmd", "env", "workdir", "stdin", "pty", "limits", NULL};
static const char *const proc_limits[] = {"cpu_time", "wall_time", "output", NULL};

static bool listed(const char *const *l, const char *k)
{
    for (; *l; l++)
        if (strcmp(*l, k) == 0)
            return true;
    return false;
}

/* A field or limit a process does not take is refused by name. */
static int check_fields(json_object *doc, struct resp *r)
{
    json_object_object_foreach(doc, key, val)
    {
        if (!listed(proc_fields, key)) {
            resp_error(r, 400, "invalid_request", key,
                       "%s: not taken by a process (its fields: cmd, env, workdir, stdin, pty, "
                       "limits)",
                       key);
            return -1;
        }
        if (strcmp(key, "limits") != 0 || !json_object_is_type(val, json_type_object))
            continue;
        json_object_object_foreach(val, lk, lv)
        {
            (void)lv;
            if (!listed(proc_limits, lk)) {
                char path[96];
                snprintf(path, sizeof(path), "limits.%.80s", lk);
                resp_error(r, 400, "invalid_request", path,
                           "%s: cannot be applied to one process: it shares the sandbox's, set "
                           "when the sandbox is created (its limits: cpu_time, wall_time, output)",
                           path);
                return -1;
            }
        }
    }
    return 0;
}

/* pty {"rows","cols"} and stdin (bool), taken out of doc into hdr. */
static int take_tty(json_object *doc, json_object *hdr, struct resp *r)
{
    json_object *in = hj_get(doc, "stdin"), *pty = hj_get(doc, "pty");
    if (in && !json_object_is_type(in, json_type_boolean)) {
        resp_error(r, 400, "invalid_request", "stdin",
                   "stdin: true (kept open for /stdin) or false");
        return -1;
    }
    json_object_object_add(hdr, "stdin", json_object_new_int(in && json_object_get_boolean(in)));
    if (pty && !json_object_is_type(pty, json_type_null)) {
        static const char *const keys[] = {"rows", "cols"};
        if (!json_object_is_type(pty, json_type_object)) {
            resp_error(r, 400, "invalid_request", "pty", "pty: {\"rows\": R, \"cols\": C}");
            return -1;
        }
        json_object_object_foreach(pty, k, pv)
        {
            (void)pv;
            if (strcmp(k, "rows") != 0 && strcmp(k, "cols") != 0) {
                resp_error(r, 400, "invalid_request", "pty", "pty.%s: unknown (rows, cols)", k);
                return -1;
            }
        }
        for (int i = 0; i < 2; i++) {
            json_object *v = hj_get(pty, keys[i]);
            int64_t n = v && json_object_is_type(v, json_type_int) ? json_object_get_int64(v) : 0;
            if (n < 1 || n > 1000) {
                char path[16];
                snprintf(path, sizeof(path), "pty.%s", keys[i]);
                resp_error(r, 400, "invalid_request", path, "%s: a number from 1 to 1000", path);
                return -1;
            }
            json_object_object_add(hdr, keys[i], json_object_new_int64(n));
        }
    }
    json_object_object_del(doc, "stdin");
    json_object_object_del(doc, "pty");
    return 0;
}

/* The keeper's process JSON (f's data), with the sandbox: NULL if not JSON. */
static json_object *proc_json(struct sbx *s, struct frame *f)
{
    json_object *o = json_tokener_parse(f->data);
    frame_free(f);
    if (o && json_object_is_type(o, json_type_object) && hj_get(o, "id"))
        json_object_object_add(o, "sandbox", json_object_new_string(sbx_id(s)));
    return o;
}

static void answer(struct sbx *s, int status, struct frame *f, struct resp *r)
{
    json_object *o = proc_json(s, f);
    if (o == NULL)
        resp_error(r, 500, "internal", NULL, "the keeper's answer is not JSON");
    else
        resp_json(r, status, o);
}

/* Start: the process JSON in *out. */
static int start(struct sbx *s, const char *mode, json_object *hdr, const char *text,
                 json_object **out, struct resp *r)
{
    char id[40];
    daemon_new_id(id, sizeof(id), 'p');
    json_object_object_add(hdr, "id", json_object_new_string(id));
    json_object_object_add(hdr, "mode", json_object_new_string(mode));
    json_object_object_add(hdr, "buffer", json_object_new_uint64(hulld.o->process_buffer));
    struct frame f;
    hull_error e = NULL;
    if (sbx_call(s, "proc_start", hdr, text, strlen(text), true, &f, &e) < 0) {
        resp_from_error(r, &e);
        return -1;
    }
    snprintf(r->target, sizeof(r->target), "%s", id);
    *out = proc_json(s, &f);
    if (*out == NULL) {
        resp_error(r, 500, "internal", NULL, "the keeper's answer is not JSON");
        return -1;
    }
    return 0;
}

static void create(struct sbx *s, const struct request *rq, struct resp *r)
{
    cleanup_json json_object *doc = NULL;
    if (request_doc(rq, false, &doc, r) < 0 || check_fields(doc, r) < 0)
        return;
    json_object *hdr = json_object_new_object();
    if (take_tty(doc, hdr, r) < 0) {
        json_object_put(hdr);
        return;
    }
    const char *text = hj_to_string(doc);
    json_object *o = NULL;
    if (policy_check(text, r) < 0) {
        json_object_put(hdr);
        return;
    }
    if (start(s, "process", hdr, text, &o, r) == 0)
        resp_json(r, 201, o);
}

void sbx_exec_stream(struct sbx *s, const struct request *rq, struct resp *r)
{
    json_object *o = NULL;
    char quota[72];
    /* Refused before the command starts, not after. */
    if (streams_take(rq, quota, sizeof(quota), r) < 0)
        return;
    if (start(s, "exec", json_object_new_object(), rq->body, &o, r) < 0) {
        streams_give(quota);
        return;
    }
    const char *pid = json_object_get_string(hj_get(o, "id"));
    char id[40];
    snprintf(id, sizeof(id), "%s", pid ? pid : "");
    hull_error e = NULL;
    int ks = sbx_connect(s, &e);
    if (ks < 0) {
        json_object_put(o);
        streams_give(quota);
        resp_from_error(r, &e);
        return;
    }
    sbx_stream_answer(s, rq, ks, id, 0, true, o, quota, r);
}

static int parse_u64(const char *v, uint64_t *out)
{
    char *end;
    if (v == NULL || *v < '0' || *v > '9')
        return -1;
    errno = 0;
    unsigned long long n = strtoull(v, &end, 10);
    if (*end || errno)
        return -1;
    *out = n;
    return 0;
}

static void output(struct sbx *s, const struct request *rq, const char *pid, struct resp *r)
{
    const char *off = request_query(rq, "offset"), *fol = request_query(rq, "follow");
    uint64_t offset = 0;
    if (off && parse_u64(off, &offset) < 0) {
        resp_error(r, 400, "invalid_request", "offset", "offset: a byte offset (0, 1, ...)");
        return;
    }
    bool follow = fol == NULL || strcmp(fol, "true") == 0 || strcmp(fol, "1") == 0;
    if (fol && !follow && strcmp(fol, "false") != 0 && strcmp(fol, "0") != 0) {
        resp_error(r, 400, "invalid_request", "follow", "follow: true or false");
        return;
    }
    /* On a connection of its own (an exec may hold the sandbox); an unknown
     * process is a 404 now, not an error line after a 200. */
    char quota[72];
    if (streams_take(rq, quota, sizeof(quota), r) < 0)
        return;
    hull_error e = NULL;
    int ks = sbx_connect(s, &e);
    json_object *hdr = json_object_new_object();
    json_object_object_add(hdr, "op", json_object_new_string("proc_get"));
    json_object_object_add(hdr, "id", json_object_new_string(pid));
    struct frame f;
    struct hull_revoke_mark mark = {0};
    if (ks < 0 ||
        sbx_keeper_ask(s, ks, rq->client_fd, rq->caller->tok.id, &mark, hdr, &f, &e) < 0) {
        if (ks < 0)
            json_object_put(hdr);
        else
            close(ks);
        streams_give(quota);
        resp_from_error(r, &e);
        return;
    }
    frame_free(&f);
    sbx_stream_answer(s, rq, ks, pid, offset, follow, NULL, quota, r);
}

/* POST …/wait {"timeout": "30s"}: on a connection of its own, until the
 * process exits, the timeout passes or the client goes. */
static void wait_for(struct sbx *s, const struct request *rq, const char *pid, struct resp *r)
{
    cleanup_json json_object *doc = NULL;
    if (request_doc(rq, true, &doc, r) < 0)
        return;
    uint64_t ms = 24ull * 3600 * 1000;
    json_object *t = hj_get(doc, "timeout");
    hull_error e = NULL;
    if (t && hull_json_duration_ms(t, "timeout", &ms, &e) < 0) {
        resp_from_error(r, &e);
        return;
    }
    char quota[72];
    if (streams_take(rq, quota, sizeof(quota), r) < 0)
        return;
    int ks = sbx_connect(s, &e);
    if (ks < 0) {
        streams_give(quota);
        resp_from_error(r, &e);
        return;
    }
    json_object *hdr = json_object_new_object();
    json_object_object_add(hdr, "op", json_object_new_string("proc_wait"));
    json_object_object_add(hdr, "id", json_object_new_string(pid));
    json_object_object_add(hdr, "timeout_ms", json_object_new_uint64(ms));
    struct frame f;
    struct hull_revoke_mark mark = {0};
    int ok = sbx_keeper_ask(s, ks, rq->client_fd, rq->caller->tok.id, &mark, hdr, &f, &e);
    close(ks);
    streams_give(quota);
    sbx_touch(s);
    if (ok < 0)
        resp_from_error(r, &e);
    else
        answer(s, 200, &f, r);
}

/* "TERM", "SIGTERM" or 15: its number, or 0. */
static int signal_number(json_object *v)
{
    static const struct {
        const char *name;
        int sig;
    } names[] = {{"HUP", SIGHUP},   {"INT", SIGINT},   {"QUIT", SIGQUIT},   {"KILL", SIGKILL},
                 {"USR1", SIGUSR1}, {"USR2", SIGUSR2}, {"TERM", SIGTERM},   {"CONT", SIGCONT},
                 {"STOP", SIGSTOP}, {"TSTP", SIGTSTP}, {"WINCH", SIGWINCH}, {"ALRM", SIGALRM}};
    if (v && json_object_is_type(v, json_type_int)) {
        int64_t n = json_object_get_int64(v);
        return n >= 1 && n < NSIG ? (int)n : 0;
    }
    if (v == NULL || !json_object_is_type(v, json_type_string))
        return 0;
    const char *s = json_object_get_string(v);
    if (strncmp(s, "SIG", 3) == 0)
        s += 3;
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
        if (strcmp(s, names[i].name) == 0)
            return names[i].sig;
    return 0;
}

/* POST …/{pid}/{verb}. */
static void verb(struct sbx *s, const struct request *rq, const char *pid, const char *v,
                 struct resp *r)
{
    if (strcmp(v, "wait") == 0) {
        wait_for(s, rq, pid, r);
        return;
    }
    json_object *hdr = json_object_new_object();
    json_object_object_add(hdr, "id", json_object_new_string(pid));
    cleanup_json json_object *doc = NULL;
    bool is_stdin = strcmp(v, "stdin") == 0;
    if (strcmp(v, "signal") == 0 || strcmp(v, "resize") == 0) {
        if (request_doc(rq, false, &doc, r) < 0) {
            json_object_put(hdr);
            return;
        }
        const char *const *keys = v[0] == 's' ? (const char *const[]){"signal", NULL}
                                              : (const char *const[]){"rows", "cols", NULL};
        for (; *keys; keys++) {
            json_object *x = hj_get(doc, *keys);
            int sig = v[0] == 's' ? signal_number(x) : 0;
            if ((v[0] == 's' && sig == 0) ||
                (v[0] == 'r' &&
                 (x == NULL || !json_object_is_type(x, json_type_int) ||
                  json_object_get_int64(x) < 1 || json_object_get_int64(x) > 1000))) {
                resp_error(r, 400, "invalid_request", *keys, "%s: %s", *keys,
                           v[0] == 's' ? "a signal number or name (TERM, KILL, INT, HUP, ...)"
                                       : "a number from 1 to 1000");
                json_object_put(hdr);
                return;
            }
            json_object_object_add(hdr, *keys, sig ? json_object_new_int(sig) : json_object_get(x));
        }
    } else if (!is_stdin && strcmp(v, "close_stdin") != 0) {
        json_object_put(hdr);
        resp_error(r, 404, "not_found", NULL, "no such endpoint: %s", rq->path);
        return;
    }
    char op[32];
    snprintf(op, sizeof(op), "proc_%s", v);
    struct frame f;
    hull_error e = NULL;
    if (sbx_call(s, op, hdr, is_stdin ? rq->body : NULL, is_stdin ? rq->len : 0, false, &f, &e) < 0)
        resp_from_error(r, &e);
    else
        answer(s, 200, &f, r);
}

void sbx_processes(struct sbx *s, const struct request *rq, const char *rest, struct resp *r)
{
    bool post = strcmp(rq->method, "POST") == 0;
    struct frame f;
    hull_error e = NULL;
    if (rest[0] == '\0') {
        if (post) {
            create(s, rq, r);
        } else if (sbx_call(s, "proc_list", NULL, NULL, 0, false, &f, &e) < 0) {
            resp_from_error(r, &e);
        } else {
            json_object *o = json_tokener_parse(f.data);
            frame_free(&f);
            json_object *a = hj_get(o, "processes");
            for (size_t i = 0; a && i < json_object_array_length(a); i++)
                json_object_object_add(json_object_array_get_idx(a, i), "sandbox",
                                       json_object_new_string(sbx_id(s)));
            if (o)
                resp_json(r, 200, o);
            else
                resp_error(r, 500, "internal", NULL, "the keeper's answer is not JSON");
        }
        return;
    }
    char pid[40], v[16] = "";
    const char *p = rest + 1, *slash = strchr(p, '/');
    size_t n = slash ? (size_t)(slash - p) : strlen(p);
    if (n == 0 || n >= sizeof(pid) ||
        (slash && (strlen(slash + 1) >= sizeof(v) || slash[1] == '\0' || strchr(slash + 1, '/')))) {
        resp_error(r, 404, "not_found", NULL, "no such endpoint: %s", rq->path);
        return;
    }
    memcpy(pid, p, n);
    pid[n] = '\0';
    if (slash)
        snprintf(v, sizeof(v), "%s", slash + 1);
    snprintf(r->target, sizeof(r->target), "%s", pid);
    if (v[0] == '\0' && !post) {
        json_object *hdr = json_object_new_object();
        json_object_object_add(hdr, "id", json_object_new_string(pid));
        if (sbx_call(s, "proc_get", hdr, NULL, 0, false, &f, &e) < 0)
            resp_from_error(r, &e);
        else
            answer(s, 200, &f, r);
    } else if (strcmp(v, "output") == 0 && !post) {
        output(s, rq, pid, r);
    } else if (v[0] && post && strcmp(v, "output") != 0) {
        verb(s, rq, pid, v, r);
    } else {
        resp_error(r, 405, "method_not_allowed", NULL, "%s is not allowed on %s", rq->method,
                   rq->path);
        r->allow = v[0] == '\0' || strcmp(v, "output") == 0 ? "GET" : "POST";
    }
}
