/* hull_vm_watch: a guest directory's changes, through an agent session of
 * their own (docs/agent-protocol.md, "watch"). The guest's lines are parsed
 * and written again here, bounded: a line longer than WATCH_LINE_MAX or not
 * an event of the five kinds is dropped, so what reaches out_fd is only
 * well-formed events whatever the guest sends. */
#include <errno.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "util/error.h"
#include "util/json.h"
#include "util/fs.h"
#include "util/utf8.h"
#include "vm/agent.h"
#include "vm/vm.h"

#define WATCH_LINE_MAX (8u << 10)

/* One line from the guest, checked, to out: -1 when out's reader went. */
static int relay_line(int out, const char *s, size_t n)
{
    static const char *const types[] = {"create",    "modify",   "delete", "rename_from",
                                        "rename_to", "overflow", NULL};
    json_tokener *tok = json_tokener_new();
    json_object *o = tok ? json_tokener_parse_ex(tok, s, (int)n) : NULL;
    json_tokener_free(tok);
    json_object *t = hj_get(o, "type"), *p = hj_get(o, "path"), *d = hj_get(o, "dir");
    const char *type =
        t && json_object_is_type(t, json_type_string) ? json_object_get_string(t) : "";
    bool known = false;
    for (const char *const *k = types; *k; k++)
        known = known || strcmp(*k, type) == 0;
    bool overflow = strcmp(type, "overflow") == 0;
    bool ok = known && (overflow || (p && json_object_is_type(p, json_type_string) &&
                                     json_object_get_string(p)[0] == '/'));
    int rc = 0;
    if (ok) {
        json_object *e = json_object_new_object();
        json_object_object_add(e, "type", json_object_new_string(type));
        if (!overflow) {
            json_object_object_add(e, "path", json_object_get(p));
            json_object_object_add(e, "dir",
                                   json_object_new_boolean(d && json_object_get_boolean(d)));
        }
        const char *text = json_object_to_json_string_ext(e, JSON_C_TO_STRING_PLAIN |
                                                                 JSON_C_TO_STRING_NOSLASHESCAPE);
        size_t len = 0;
        char *fixed = hull_utf8_fix(text, strlen(text), &len); /* a name may be any bytes */
        json_object_put(e);
        if (fixed &&
            (hull_pwrite_all(out, fixed, len, -1) < 0 || hull_pwrite_all(out, "\n", 1, -1) < 0))
            rc = -1;
        free(fixed);
    }
    json_object_put(o);
    return rc;
}

struct linebuf {
    char buf[WATCH_LINE_MAX];
    size_t len;
    bool skipping; /* inside a line too long to keep: dropped to its end */
};

static int relay(struct linebuf *lb, int out, const uint8_t *data, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        char ch = (char)data[i];
        if (ch == '\n') {
            int rc = lb->skipping ? 0 : relay_line(out, lb->buf, lb->len);
            lb->len = 0;
            lb->skipping = false;
            if (rc < 0)
                return -1;
        } else if (!lb->skipping && lb->len < sizeof(lb->buf)) {
            lb->buf[lb->len++] = ch;
        } else {
            lb->skipping = true;
            lb->len = 0;
        }
    }
    return 0;
}

int hull_vm_watch(const struct hull_runtime *rt, const char *id, const struct hull_vm_watch_opts *o,
                  hull_error *err)
{
    struct vm_session s;
    if (o == NULL || o->path == NULL || o->out_fd < 0)
        return hull_error_set(err, EINVAL, "watch: a path and an output are needed");
    if (vm_session_begin(rt, id, &s, err) < 0)
        return hull_error_prefix(err, "watch");
    json_object *req = json_object_new_object(), *resp = NULL;
    json_object_object_add(req, "op", json_object_new_string("watch"));
    json_object_object_add(req, "path", json_object_new_string(o->path));
    json_object_object_add(req, "recursive", json_object_new_boolean(o->recursive));
    int rc = vm_agent_call(s.a, req, 30000, &resp, err);
    if (rc < 0) {
        vm_session_end(&s);
        return -1; /* the guest's word: its errno is the code */
    }
    json_object *w = hj_get(resp, "watches");
    if (o->started)
        o->started(o->ctx, w ? (uint64_t)json_object_get_int64(w) : 0);
    json_object_put(resp);
    struct linebuf *lb = calloc(1, sizeof(*lb));
    if (lb == NULL) {
        vm_session_end(&s);
        return hull_error_set(err, ENOMEM, "out of memory");
    }
    for (rc = 1; rc > 0;) {
        /* The reader of out_fd going is POLLERR on its write end. */
        struct pollfd p[2] = {{.fd = s.a->fd, .events = POLLIN}, {.fd = o->out_fd, .events = 0}};
        bool buffered = s.a->len > s.a->consumed + sizeof(struct hull_agent_hdr) - 1;
        if (!buffered && poll(p, 2, -1) < 0 && errno != EINTR) {
            rc = hull_error_errno(err, "watch: poll");
            break;
        }
        if (p[1].revents & (POLLERR | POLLHUP)) {
            rc = 0;
            break;
        }
        struct vm_frame f;
        int r = vm_agent_recv(s.a, 0, &f, err);
        if (r < 0) {
            rc = hull_error_prefix(err, "watch %s", o->path);
        } else if (r == 0 && f.type == HULL_FRAME_DATA) {
            if (f.len == 0)
                rc = 0; /* the directory went: the end */
            else if (relay(lb, o->out_fd, f.data, f.len) < 0)
                rc = 0; /* nobody reads any more */
        }
    }
    free(lb);
    vm_session_end(&s);
    return rc;
}
