/* exec and cp through the agent, and list. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "util/clock.h"
#include "util/error.h"
#include "util/fs.h"
#include "util/json.h"
#include "util/strv.h"
#include "vm/agent.h"
#include "vm/vm.h"

/* Answers to requests (not workloads) come within this, or the agent is hung. */
#define AGENT_DEADLINE_MS 30000

void hull_vm_exec_result_free(struct hull_vm_exec_result *r)
{
    if (!r)
        return;
    free(r->stdout_buf);
    free(r->stderr_buf);
    r->stdout_buf = r->stderr_buf = NULL;
}

void vm_session_end(struct vm_session *s)
{
    vm_agent_close(s->a);
    if (s->lock >= 0)
        close(s->lock);
    if (s->gate >= 0)
        close(s->gate);
}

/* The agent stopped answering: record it, so `state` says failed, not hung. */
void vm_session_mark_failed(struct vm_session *s, hull_error *err)
{
    if (!err || !*err || hull_error_code(*err) != ETIMEDOUT)
        return;
    cleanup_close int lk = vm_lock(&s->vm, "lock", true, NULL);
    /* Under the lock, the record as it is now: a VM stopped, deleted or
     * started again meanwhile is not this session's to mark. */
    struct vm now = s->vm;
    if (lk < 0 || vm_reread(&now, NULL) < 0 || now.status != VM_RUNNING || now.pid != s->vm.pid ||
        now.pid_start != s->vm.pid_start)
        return;
    snprintf(now.failure, sizeof(now.failure), "agent: %s", hull_error_msg(*err));
    now.status = VM_FAILED;
    vm_save(&now, NULL);
    s->vm.status = VM_FAILED;
}

int vm_session_begin(const struct hull_runtime *rt, const char *id, struct vm_session *s,
                     hull_error *err)
{
    memset(s, 0, sizeof(*s));
    s->lock = s->gate = -1;
    if (vm_load(rt, id, &s->vm, err) < 0)
        return -1;
    if (s->vm.status != VM_RUNNING)
        return hull_error_set(err, EINVAL, "VM %s is %s, not running", id,
                              vm_status_name(s->vm.status));
    /* A port of its own: sessions on other ports run meanwhile. */
    unsigned port = 0;
    s->lock = vm_agent_session_lock(&s->vm, &s->gate, &port, err);
    if (s->lock < 0)
        return -1;
    if (vm_agent_connect_port(&s->vm, port, 10000, &s->a, err) < 0) {
        vm_session_mark_failed(s, err);
        vm_session_end(s);
        return -1;
    }
    return 0;
}

static json_object *strv_json(char *const *v)
{
    json_object *a = json_object_new_array();
    for (; v && *v; v++)
        json_object_array_add(a, json_object_new_string(*v));
    return a;
}

static int append(char **buf, size_t *len, const void *data, size_t n)
{
    char *nb = realloc(*buf, *len + n + 1);
    if (!nb)
        return -1;
    memcpy(nb + *len, data, n);
    *len += n;
    nb[*len] = 0;
    *buf = nb;
    return 0;
}

/* The guest's JSON is read by type: a value of another type is the
 * agent's error, never a json-c assertion. True when key is absent or a t. */
static bool typed(json_object *o, const char *key, json_type t, json_object **v)
{
    *v = hj_get(o, key);
    return *v == NULL || json_object_is_type(*v, t);
}

static int malformed(hull_error *err)
{
    return hull_error_set(err, EPROTO, "malformed answer from the agent");
}

static int parse_exit(json_object *o, struct hull_vm_exec_result *r, hull_error *err)
{
    json_object *v;
    if (!json_object_is_type(o, json_type_object) || !typed(o, "verdict", json_type_string, &v))
        return malformed(err);
    /* It is printed on the host's terminal. */
    if (v)
        vm_printable(json_object_get_string(v), r->verdict, sizeof(r->verdict));
#define GET(k, t, dst, conv)                                                                       \
    if (!typed(o, k, t, &v))                                                                       \
        return malformed(err);                                                                     \
    if (v)                                                                                         \
    dst = conv(v)
    GET("exit_code", json_type_int, r->exit_code, json_object_get_int);
    GET("signal", json_type_int, r->signal, json_object_get_int);
    GET("cpu_time_ms", json_type_int, r->cpu_time_ms, (uint64_t)json_object_get_int64);
    GET("wall_time_ms", json_type_int, r->wall_time_ms, (uint64_t)json_object_get_int64);
    GET("max_memory_kb", json_type_int, r->max_memory_kb, (uint64_t)json_object_get_int64);
    GET("stdout_truncated", json_type_boolean, r->stdout_truncated, json_object_get_boolean);
    GET("stderr_truncated", json_type_boolean, r->stderr_truncated, json_object_get_boolean);
#undef GET
    return 0;
}

/* Records on the control fd while a workload runs: a signal for it or a
 * new terminal size, each a request of its own to the agent. */
static int exec_ctl(struct vm_agent *a, int fd, bool *open, hull_error *err)
{
    struct hull_vm_exec_ctl c;
    ssize_t n = read(fd, &c, sizeof(c));
    if (n < 0 && (errno == EINTR || errno == EAGAIN))
        return 0;
    if (n != (ssize_t)sizeof(c)) {
        *open = false; /* its writer went (or wrote half a record): no more */
        return 0;
    }
    json_object *req = json_object_new_object();
    if (c.op == HULL_VM_CTL_SIGNAL && c.a > 0 && c.a < 65) {
        json_object_object_add(req, "op", json_object_new_string("signal"));
        json_object_object_add(req, "signal", json_object_new_int(c.a));
    } else if (c.op == HULL_VM_CTL_RESIZE && c.a > 0 && c.b > 0 && c.a < 65536 && c.b < 65536) {
        json_object_object_add(req, "op", json_object_new_string("resize"));
        json_object_object_add(req, "rows", json_object_new_int(c.a));
        json_object_object_add(req, "cols", json_object_new_int(c.b));
    } else {
        json_object_put(req);
        return 0; /* not one we know: ignored, as a stray byte would be */
    }
    return vm_agent_send_req(a, req, err) < 0 ? -1 : 0;
}

/* The exec request: command, environment, limits, terminal. */
static json_object *exec_request(const struct hull_vm_exec_opts *o, bool have_stdin)
{
    json_object *req = json_object_new_object();
    json_object_object_add(req, "op", json_object_new_string("exec"));
    json_object_object_add(req, "args", strv_json(o->argv));
    char *defenv[] = {"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
                      "HOME=/root", "TERM=xterm", NULL};
    /* A command is looked up in its own PATH: an env without one gets ours. */
    char *path_only[] = {defenv[0], NULL};
    bool has_path = false;
    for (char *const *e = o->env; e && *e; e++)
        has_path |= strncmp(*e, "PATH=", 5) == 0;
    cleanup_strv char **env = o->env && !has_path ? vm_env_merge(path_only, o->env) : NULL;
    json_object_object_add(req, "env", strv_json(env ? env : o->env ? o->env : defenv));
    json_object_object_add(req, "cwd", json_object_new_string(o->cwd ? o->cwd : "/"));
    json_object_object_add(req, "stdin", json_object_new_boolean(have_stdin));
    json_object_object_add(req, "detach", json_object_new_boolean(o->detach));
    json_object *lim = json_object_new_object();
    const struct hull_vm_limits *l = &o->limits;
    json_object_object_add(lim, "cpu_time_ms", json_object_new_int64((int64_t)l->cpu_time_ms));
    json_object_object_add(lim, "wall_time_ms", json_object_new_int64((int64_t)l->wall_time_ms));
    json_object_object_add(lim, "memory_bytes", json_object_new_int64((int64_t)l->memory_bytes));
    json_object_object_add(lim, "pids", json_object_new_int64((int64_t)l->pids));
    json_object_object_add(lim, "output_bytes", json_object_new_int64((int64_t)l->output_bytes));
    json_object_object_add(lim, "open_files", json_object_new_int64((int64_t)l->open_files));
    json_object_object_add(lim, "cpu_milli", json_object_new_int64((int64_t)l->cpu_milli));
    json_object_object_add(req, "limits", lim);
    if (o->pty_rows && o->pty_cols && !o->detach) {
        json_object *t = json_object_new_object();
        json_object_object_add(t, "rows", json_object_new_int((int)o->pty_rows));
        json_object_object_add(t, "cols", json_object_new_int((int)o->pty_cols));
        json_object_object_add(req, "pty", t);
    }
    return req;
}

/* Output the host takes: at most output_bytes a stream. The agent cuts
 * there itself, so more is an agent not keeping the limit: the host ends
 * the exec as the agent would (output_limit) and takes no more of it.
 * Returns 1 then, 0 for output within the limit. */
static int take_output(const struct hull_vm_exec_opts *o, struct hull_vm_exec_result *r,
                       const struct vm_frame *f, uint64_t taken[2], hull_error *err)
{
    bool out = f->type == HULL_FRAME_STDOUT;
    uint64_t cap = o->limits.output_bytes, *t = &taken[out ? 0 : 1];
    size_t n = f->len;
    bool over = cap && n > cap - *t; /* *t never passes cap */
    if (over)
        n = (size_t)(cap - *t);
    *t += n;
    int fd = out ? o->stdout_fd : o->stderr_fd;
    if (fd >= 0)
        hull_pwrite_all(fd, f->data, n, -1);
    else if (append(out ? &r->stdout_buf : &r->stderr_buf, out ? &r->stdout_len : &r->stderr_len,
                    f->data, n) < 0)
        return hull_error_set(err, ENOMEM, "exec: output");
    else if (o->on_output && n)
        o->on_output(o->on_output_ctx, out ? 1 : 2, (const char *)f->data, n);
    if (!over)
        return 0;
    snprintf(r->verdict, sizeof(r->verdict), "output_limit");
    r->exit_code = -1;
    *(out ? &r->stdout_truncated : &r->stderr_truncated) = true;
    return 1;
}

/* The buffers a caller without fds reads are there even when empty. */
static void exec_done(const struct hull_vm_exec_opts *o, struct hull_vm_exec_result *r)
{
    if (!r->stdout_buf && o->stdout_fd < 0)
        r->stdout_buf = calloc(1, 1);
    if (!r->stderr_buf && o->stderr_fd < 0)
        r->stderr_buf = calloc(1, 1);
}

/* When the agent must have reported the end: the workload may run as long
 * as its wall limit allows, and past that plus a margin the agent is not
 * doing its job. Fixed once, so output that keeps coming does not move it;
 * -1 (none) without a wall limit: then the agent's word is awaited. */
static int64_t exec_deadline(const struct hull_vm_limits *l, int64_t *budget)
{
    if (!l->wall_time_ms)
        return *budget = -1;
    /* Some centuries at most: the sum stays an int64. */
    uint64_t wall = l->wall_time_ms < ((uint64_t)1 << 52) ? l->wall_time_ms : (uint64_t)1 << 52;
    *budget = (int64_t)wall + AGENT_DEADLINE_MS;
    return hull_monotonic_ms() + *budget;
}

/* The next frame of the exec stream, forwarding stdin and control records
 * meanwhile: 0 with a frame, 1 when the deadline passed. Past the deadline
 * only the end is still taken, so a guest sending on cannot hold us. */
static int exec_next(struct vm_agent *a, const struct hull_vm_exec_opts *o, int64_t deadline,
                     bool *in_open, bool *ctl_open, struct vm_frame *f, hull_error *err)
{
    for (;;) {
        if (deadline >= 0 && hull_monotonic_ms() >= deadline) {
            int rc = vm_agent_recv(a, 0, f, err);
            return rc == 0 && f->type != HULL_FRAME_EXIT ? 1 : rc;
        }
        /* A whole frame already read is taken first. */
        if (a->len > a->consumed + sizeof(struct hull_agent_hdr) - 1) {
            int rc = vm_agent_recv(a, 0, f, err);
            if (rc != 1)
                return rc;
        }
        if (!*in_open && !*ctl_open) {
            int rc = vm_agent_recv(a, vm_ms_left(deadline), f, err);
            if (rc != 1)
                return rc;
            continue; /* the deadline is checked above */
        }
        struct pollfd p[3] = {{.fd = a->fd, .events = POLLIN},
                              {.fd = *in_open ? o->stdin_fd : -1, .events = POLLIN},
                              {.fd = *ctl_open ? o->ctl_fd : -1, .events = POLLIN}};
        int pr = poll(p, 3, vm_ms_left(deadline));
        if (pr < 0 && errno != EINTR)
            return hull_error_errno(err, "poll");
        if (pr <= 0)
            continue; /* EINTR, or the deadline: checked above */
        if (p[2].revents) {
            if (exec_ctl(a, o->ctl_fd, ctl_open, err) < 0)
                return -1;
            continue;
        }
        if (p[1].revents) {
            char buf[HULL_AGENT_CHUNK];
            ssize_t n = read(o->stdin_fd, buf, sizeof(buf));
            if (n < 0 && errno == EINTR)
                continue;
            if (n <= 0) {
                *in_open = false;
                n = 0;
            }
            if (vm_agent_send(a, HULL_FRAME_STDIN, buf, (size_t)n, err) < 0)
                return -1;
            continue;
        }
        int rc = vm_agent_recv(a, 0, f, err);
        if (rc != 1)
            return rc; /* else a partial frame: read more */
    }
}

/* Stream: stdin out (from fd or bytes), stdout/stderr in, until EXIT. */
static int exec_stream(struct vm_agent *a, const struct hull_vm_exec_opts *o, bool have_stdin,
                       struct hull_vm_exec_result *r, hull_error *err)
{
    bool in_open = have_stdin;
    if (have_stdin && o->stdin_fd < 0) {
        for (size_t sent = 0; sent < o->stdin_len;) {
            size_t n =
                o->stdin_len - sent > HULL_AGENT_CHUNK ? HULL_AGENT_CHUNK : o->stdin_len - sent;
            if (vm_agent_send(a, HULL_FRAME_STDIN, (const char *)o->stdin_data + sent, n, err) < 0)
                return -1;
            sent += n;
        }
        if (vm_agent_send(a, HULL_FRAME_STDIN, NULL, 0, err) < 0)
            return -1;
        in_open = false;
    }
    int64_t budget;
    int64_t deadline = exec_deadline(&o->limits, &budget);
    bool ctl_open = o->ctl_fd > 0;
    uint64_t taken[2] = {0, 0};
    for (;;) {
        struct vm_frame f;
        int rc = exec_next(a, o, deadline, &in_open, &ctl_open, &f, err);
        if (rc < 0)
            return -1;
        if (rc == 1)
            return hull_error_set(err, ETIMEDOUT, "the agent did not report the end within %lld ms",
                                  (long long)budget);
        if (f.type == HULL_FRAME_STDOUT || f.type == HULL_FRAME_STDERR) {
            rc = take_output(o, r, &f, taken, err);
            if (rc < 0)
                return -1;
            if (rc == 1) {
                /* The rest of its flood is not read: the session ends. */
                vm_agent_drop(a);
                exec_done(o, r);
                return 0;
            }
        } else if (f.type == HULL_FRAME_EXIT) {
            json_tokener *tok = json_tokener_new();
            json_object *x = json_tokener_parse_ex(tok, (const char *)f.data, (int)f.len);
            json_tokener_free(tok);
            rc = parse_exit(x, r, err);
            json_object_put(x);
            if (rc < 0)
                return -1;
            exec_done(o, r);
            return 0;
        }
    }
}

/* The agent could not start the command for what it is (the guest's errno
 * of its exec or chdir): the caller's mistake, marked as the container
 * level marks it (HULL_ENOCMD, HULL_ECMDEXEC). */
static void mark_cmd_error(hull_error *err)
{
    int code = err && *err ? hull_error_code(*err) : 0;
    if (code == ENOENT || code == ENOTDIR)
        (*err)->code = HULL_ENOCMD;
    else if (code == EACCES || code == ENOEXEC || code == EISDIR || code == ELOOP ||
             code == ETXTBSY)
        (*err)->code = HULL_ECMDEXEC;
}

int vm_exec_on(struct vm_agent *a, const struct hull_vm_exec_opts *o, struct hull_vm_exec_result *r,
               hull_error *err)
{
    memset(r, 0, sizeof(*r));
    if (!o->argv || !o->argv[0])
        return hull_error_set(err, EINVAL, "exec: no command");
    bool have_stdin = !o->detach && (o->stdin_fd >= 0 || o->stdin_len);
    json_object *resp = NULL, *v;
    if (vm_agent_call(a, exec_request(o, have_stdin), AGENT_DEADLINE_MS, &resp, err) < 0) {
        mark_cmd_error(err);
        return hull_error_prefix(err, "exec %s", o->argv[0]);
    }
    bool ok = typed(resp, "pid", json_type_int, &v);
    if (ok && v)
        r->pid = json_object_get_int(v);
    json_object_put(resp);
    if (!ok) {
        malformed(err);
        return hull_error_prefix(err, "exec %s", o->argv[0]);
    }
    if (o->detach) {
        snprintf(r->verdict, sizeof(r->verdict), "ok");
        return 0;
    }
    if (exec_stream(a, o, have_stdin, r, err) < 0)
        return hull_error_prefix(err, "exec %s", o->argv[0]);
    return 0;
}

/* A VM of an image: its config's Env under the command's (and over the
 * defaults), its WorkingDir unless a cwd is given. */
static int image_defaults(const struct vm *vm, const struct hull_vm_exec_opts *o,
                          struct hull_vm_exec_opts *local, char ***env, char **cwd, hull_error *err)
{
    cleanup_json json_object *cfg = json_tokener_parse(vm->image_config);
    if (cfg == NULL)
        return hull_error_set(err, EINVAL, "VM %s: its image config is unreadable", vm->id);
    cleanup_strv char **img_env = NULL;
    json_object *e = hj_get(cfg, "env"), *w = hj_get(cfg, "workdir");
    for (size_t i = 0; e && i < json_object_array_length(e); i++)
        if (hull_strv_append(&img_env, json_object_get_string(json_object_array_get_idx(e, i))) < 0)
            return hull_error_set(err, ENOMEM, "out of memory");
    char *defenv[] = {"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
                      "HOME=/root", "TERM=xterm", NULL};
    cleanup_strv char **base = vm_env_merge(defenv, img_env);
    *env = base ? vm_env_merge(base, o->env) : NULL;
    if (*env == NULL)
        return hull_error_set(err, ENOMEM, "out of memory");
    local->env = *env;
    const char *wd = w ? json_object_get_string(w) : "";
    if (o->cwd == NULL && wd[0]) {
        if ((*cwd = strdup(wd)) == NULL)
            return hull_error_set(err, ENOMEM, "out of memory");
        local->cwd = *cwd;
    }
    return 0;
}

int hull_vm_exec(const struct hull_runtime *rt, const char *id, const struct hull_vm_exec_opts *o,
                 struct hull_vm_exec_result *r, hull_error *err)
{
    struct vm_session s;
    memset(r, 0, sizeof(*r));
    if (vm_session_begin(rt, id, &s, err) < 0)
        return hull_error_prefix(err, "exec");
    struct hull_vm_exec_opts local = *o;
    cleanup_strv char **env = NULL;
    cleanup_free char *cwd = NULL;
    if (s.vm.image_config[0] && image_defaults(&s.vm, o, &local, &env, &cwd, err) < 0) {
        vm_session_end(&s);
        return hull_error_prefix(err, "exec");
    }
    int rc = vm_exec_on(s.a, &local, r, err);
    if (rc < 0) {
        vm_session_mark_failed(&s, err);
        hull_vm_exec_result_free(r);
    }
    vm_session_end(&s);
    return rc;
}

int vm_put_file(struct vm_agent *a, const char *host, const char *guest, hull_error *err)
{
    cleanup_close int fd = open(host, O_RDONLY | O_CLOEXEC | O_NOCTTY);
    struct stat st;
    if (fd < 0 || fstat(fd, &st) < 0)
        return hull_error_errno(err, "%s", host);
    if (!S_ISREG(st.st_mode))
        return hull_error_set(err, EINVAL, "%s: not a regular file", host);
    json_object *req = json_object_new_object();
    json_object_object_add(req, "op", json_object_new_string("put_file"));
    json_object_object_add(req, "path", json_object_new_string(guest));
    json_object_object_add(req, "size", json_object_new_int64(st.st_size));
    json_object_object_add(req, "mode", json_object_new_int(st.st_mode & 0777));
    int64_t id = vm_agent_send_req(a, req, err);
    if (id < 0 || vm_agent_wait_resp(a, id, AGENT_DEADLINE_MS, NULL, err) < 0)
        return -1;
    char buf[HULL_AGENT_CHUNK];
    off_t left = st.st_size;
    while (left > 0) {
        ssize_t n = read(fd, buf, sizeof(buf) < (size_t)left ? sizeof(buf) : (size_t)left);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            break; /* shrank under us: the agent reports the short count */
        if (vm_agent_send(a, HULL_FRAME_DATA, buf, (size_t)n, err) < 0)
            return -1;
        left -= n;
    }
    if (vm_agent_send(a, HULL_FRAME_DATA, NULL, 0, err) < 0)
        return -1;
    return vm_agent_wait_resp(a, id, AGENT_DEADLINE_MS, NULL, err);
}

/* Where the agent's bytes go: its extents in order, or the whole file from
 * an agent that sends no extents. */
struct extents {
    int64_t (*e)[2];
    size_t n;
};

/* An integer of the guest's JSON, or a malformed answer. */
static bool typed_int(json_object *o, const char *key, int64_t *out)
{
    json_object *v;
    if (!typed(o, key, json_type_int, &v))
        return false;
    if (v)
        *out = json_object_get_int64(v);
    return true;
}

static int parse_extents(json_object *resp, int64_t size, struct extents *x, int64_t *length,
                         bool *cut, hull_error *err)
{
    json_object *a, *v;
    *length = size;
    *cut = false;
    if (!typed(resp, "extents", json_type_array, &a) || !typed_int(resp, "length", length) ||
        !typed(resp, "cut", json_type_boolean, &v))
        return malformed(err);
    if (v)
        *cut = json_object_get_boolean(v);
    size_t n = a ? json_object_array_length(a) : 1;
    x->e = calloc(n ? n : 1, sizeof(*x->e));
    if (x->e == NULL)
        return hull_error_set(err, ENOMEM, "out of memory");
    if (a == NULL) {
        /* An agent without extents sends the whole file. */
        x->e[0][0] = 0;
        x->e[0][1] = *length = size;
        x->n = 1;
        *cut = false;
        return 0;
    }
    int64_t end = 0;
    for (size_t i = 0; i < n; i++) {
        json_object *p = json_object_array_get_idx(a, i), *po, *pl;
        if (!json_object_is_type(p, json_type_array) || json_object_array_length(p) != 2 ||
            !json_object_is_type(po = json_object_array_get_idx(p, 0), json_type_int) ||
            !json_object_is_type(pl = json_object_array_get_idx(p, 1), json_type_int))
            return malformed(err);
        int64_t off = json_object_get_int64(po), len = json_object_get_int64(pl);
        if (off < end || len < 0 || off > INT64_MAX - len)
            return hull_error_set(err, EPROTO, "get_file: the agent's extents are not in order");
        x->e[x->n][0] = off;
        x->e[x->n++][1] = len;
        end = off + len;
    }
    if (*length < end)
        return hull_error_set(err, EPROTO, "get_file: the agent's extents pass the file's end");
    return 0;
}

/* What the agent's answer to get_file announces. */
struct get_head {
    struct extents x;
    int64_t length, want; /* the file's length; the data bytes to come */
    int mode;
    bool cut;
};

/* Ask for guest's file and read the announcement, held to max_data: the
 * agent is asked to keep it, but the host does not take its word. 1 when
 * the file is refused but its (empty) data still comes. */
static int get_file_head(struct vm_agent *a, const char *guest, uint64_t max_data,
                         struct get_head *h, struct vm_got *got, hull_error *err)
{
    json_object *req = json_object_new_object();
    json_object_object_add(req, "op", json_object_new_string("get_file"));
    json_object_object_add(req, "path", json_object_new_string(guest));
    json_object_object_add(
        req, "max_data",
        json_object_new_int64(max_data > INT64_MAX ? INT64_MAX : (int64_t)max_data));
    int64_t id = vm_agent_send_req(a, req, err);
    if (id < 0)
        return -1;
    cleanup_json json_object *resp = NULL;
    if (vm_agent_wait_resp(a, id, AGENT_DEADLINE_MS, &resp, err) < 0) {
        /* The agent's refusal: no such file, or not one it copies. */
        int code = err ? hull_error_code(*err) : 0;
        if (code == ENOENT)
            got->status = HULL_COPY_MISSING;
        else if (code != ETIMEDOUT && code != EPROTO)
            got->status = HULL_COPY_REFUSED;
        return -1;
    }
    int64_t size = 0, mode = 0644;
    if (!typed_int(resp, "size", &size) || !typed_int(resp, "mode", &mode) || size < 0)
        return malformed(err);
    h->mode = (int)(mode & 0777);
    if (parse_extents(resp, size, &h->x, &h->length, &h->cut, err) < 0)
        return -1;
    for (size_t i = 0; i < h->x.n; i++)
        h->want += h->x.e[i][1]; /* in order and apart: at most the last end */
    if ((uint64_t)h->want > max_data)
        return hull_error_set(err, EPROTO,
                              "get_file: the agent announced %lld bytes, over the limit of %llu",
                              (long long)h->want, (unsigned long long)max_data);
    /* Cut before its first byte: nothing of it is written (the agent sends
     * no data, only the end). */
    if (h->cut && h->want == 0) {
        got->status = HULL_COPY_REFUSED;
        hull_error_set(err, EFBIG,
                       "the copy-out limit (--copy-out-max) is used up by the files before it");
        return 1;
    }
    return 0;
}

/* The data frames into fd at the extents, up to the empty one that ends
 * them; a failure on our side still reads them all (the session goes on),
 * an agent breaking the protocol ends the session. rc: the error so far. */
static int get_file_data(struct vm_agent *a, const char *guest, const struct get_head *h, int fd,
                         const char *tmp, int rc, hull_error *err)
{
    /* Not a wait per frame, which a trickle would renew for ever: the
     * data must come at 256 KiB/s on average after the usual margin (far
     * below even TCG's link), so the time it may take grows only with the
     * bytes that did come, and those are held to the announcement. */
    int64_t start = hull_monotonic_ms();
    size_t idx = 0;
    int64_t done = 0, got_bytes = 0; /* within extent idx; in all */
    for (;;) {
        struct vm_frame f;
        int left = vm_ms_left(start + AGENT_DEADLINE_MS + (got_bytes >> 18) * 1000);
        int r = vm_agent_recv(a, left < AGENT_DEADLINE_MS ? left : AGENT_DEADLINE_MS, &f, err);
        if (r != 0) {
            if (r == 1)
                /* ETIME, not ETIMEDOUT: a slow copy is this copy's failure, not
                 * an agent that stopped answering (vm_session_mark_failed). */
                hull_error_set(err, ETIME,
                               "get_file: the agent stopped sending (or fell below 256 KiB/s)");
            return -1;
        }
        if (f.type != HULL_FRAME_DATA)
            continue;
        if (f.len == 0)
            break;
        got_bytes += f.len;
        if (got_bytes > h->want) {
            vm_agent_drop(a); /* the rest of its stream is not read */
            return hull_error_set(err, EPROTO, "%s: the agent sent more than it announced", guest);
        }
        for (size_t k = 0; !rc && k < f.len;) {
            while (idx < h->x.n && done == h->x.e[idx][1])
                idx++, done = 0;
            size_t n = f.len - k;
            if ((int64_t)n > h->x.e[idx][1] - done)
                n = (size_t)(h->x.e[idx][1] - done);
            if (hull_pwrite_all(fd, (const char *)f.data + k, n, (off_t)(h->x.e[idx][0] + done)) <
                0)
                rc = hull_error_errno(err, "write %s", tmp);
            k += n;
            done += (int64_t)n;
        }
    }
    if (!rc && got_bytes != h->want)
        rc = hull_error_set(err, EIO, "%s: got %lld bytes of %lld", guest, (long long)got_bytes,
                            (long long)h->want);
    return rc;
}

int vm_get_file(struct vm_agent *a, const char *guest, const char *host, uint64_t max_data,
                struct vm_got *got, hull_error *err)
{
    struct vm_got unused;
    if (got == NULL)
        got = &unused;
    *got = (struct vm_got){.status = HULL_COPY_FAILED};
    struct get_head h = {0};
    int rc = get_file_head(a, guest, max_data, &h, got, err);
    if (rc < 0) {
        /* An answer that breaks the protocol may have data behind it,
         * which is not read: the session ends. */
        if (err && hull_error_code(*err) == EPROTO)
            vm_agent_drop(a);
        free(h.x.e);
        return -1;
    }
    rc = rc ? -1 : 0;
    /* Into a temporary beside the target, renamed when complete: a failed
     * copy leaves nothing. Only the extents are written: holes stay holes. */
    char tmp[4200];
    snprintf(tmp, sizeof(tmp), "%s.hull-cp-%d", host, getpid());
    int fd = rc < 0 ? -1 : open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
    if (!rc && fd < 0)
        rc = hull_error_errno(err, "create %s", tmp);
    rc = get_file_data(a, guest, &h, fd, tmp, rc, err);
    free(h.x.e);
    if (fd >= 0) {
        if (!rc && (ftruncate(fd, h.length) < 0 || fchmod(fd, (mode_t)h.mode) < 0 || fsync(fd) < 0))
            rc = hull_error_errno(err, "write %s", tmp);
        close(fd);
        if (!rc && rename(tmp, host) < 0)
            rc = hull_error_errno(err, "rename to %s", host);
        if (rc)
            unlink(tmp);
    }
    if (!rc) {
        got->length = (uint64_t)h.length;
        got->bytes = (uint64_t)h.want;
        got->status = h.cut ? HULL_COPY_TRUNCATED : HULL_COPY_OK;
    }
    return rc;
}

static int copy(const struct hull_runtime *rt, const char *id, bool in, const char *from,
                const char *to, uint64_t max_data, hull_error *err)
{
    struct vm_session s;
    if (vm_session_begin(rt, id, &s, err) < 0)
        return hull_error_prefix(err, "cp");
    struct vm_got got;
    int rc = in ? vm_put_file(s.a, from, to, err) : vm_get_file(s.a, from, to, max_data, &got, err);
    /* Cut at the limit is the whole copy refused: a caller with a limit
     * wants the file or nothing. */
    if (rc == 0 && !in && got.status == HULL_COPY_TRUNCATED) {
        unlink(to);
        rc = hull_error_set(err, EFBIG, "more than %llu bytes of data (the limit)",
                            (unsigned long long)max_data);
    }
    if (rc < 0) {
        vm_session_mark_failed(&s, err);
        if (in)
            hull_error_prefix(err, "cp %s %s:%s", from, id, to);
        else
            hull_error_prefix(err, "cp %s:%s %s", id, from, to);
    }
    vm_session_end(&s);
    return rc;
}

int hull_vm_copy_in(const struct hull_runtime *rt, const char *id, const char *host,
                    const char *guest, hull_error *err)
{
    return copy(rt, id, true, host, guest, UINT64_MAX, err);
}

int hull_vm_copy_out(const struct hull_runtime *rt, const char *id, const char *guest,
                     const char *host, hull_error *err)
{
    /* Into a directory: the guest file's own name in it, as cp does. */
    char into[4200];
    struct stat st;
    if (stat(host, &st) == 0 && S_ISDIR(st.st_mode)) {
        const char *base = strrchr(guest, '/');
        base = base ? base + 1 : guest;
        if (!*base || strcmp(base, ".") == 0 || strcmp(base, "..") == 0)
            return hull_error_set(err, EISDIR,
                                  "cp %s:%s %s: name the guest's file, not a directory", id, guest,
                                  host);
        if (snprintf(into, sizeof(into), "%s/%s", host, base) >= (int)sizeof(into))
            return hull_error_set(err, ENAMETOOLONG, "cp %s:%s %s: path too long", id, guest, host);
        host = into;
    }
    return copy(rt, id, false, guest, host, UINT64_MAX, err);
}

int hull_vm_copy_out_max(const struct hull_runtime *rt, const char *id, const char *guest,
                         const char *host, uint64_t max_data, hull_error *err)
{
    return copy(rt, id, false, guest, host, max_data, err);
}

char *hull_vm_list(const struct hull_runtime *rt, hull_error *err)
{
    char root[4096];
    if (vm_root_dir(rt, root, sizeof(root), err) < 0)
        return NULL;
    DIR *d = opendir(root);
    if (!d) {
        hull_error_errno(err, "list: %s", root);
        return NULL;
    }
    json_object *arr = json_object_new_array();
    struct dirent *e;
    while ((e = readdir(d))) {
        if (e->d_name[0] == '.')
            continue;
        struct vm vm;
        if (vm_load(rt, e->d_name, &vm, NULL) == 0)
            json_object_array_add(arr, vm_state_json(&vm));
    }
    closedir(d);
    char *s = strdup(json_object_to_json_string_ext(arr, JSON_C_TO_STRING_PRETTY |
                                                             JSON_C_TO_STRING_NOSLASHESCAPE));
    json_object_put(arr);
    return s;
}
