/* "fs": stat, list, mkdir, rename and remove in the workload root, done by
 * the agent itself with the same code that serves a container sandbox's
 * file API (sandbox/session_fs_ops.c): every path resolved from the
 * workload root with openat2(RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS), the
 * last component never followed. Nothing of the workload runs for it, so
 * no program a workload put on the guest's PATH (or over /usr/bin/python3)
 * answers for the host.
 */
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <unistd.h>

#include "agent.h"
#include "sandbox/session_fs.h"
#include "util/error.h"

/* A RESP frame carries at most HULL_AGENT_MAX_FRAME bytes: a list is cut
 * to fit (and says "truncated", as one past HULL_FS_LIST_MAX does). */
#define FS_ANSWER_MAX (HULL_AGENT_MAX_FRAME - (64u << 10))

static int fs_refuse(struct conn *c, int code, const char *verb, const char *path, const char *msg)
{
    char text[1024];
    snprintf(text, sizeof(text), "%s: %s", path ? path : "(none)", msg);
    json_object *o = json_object_new_object();
    json_object_object_add(o, "ok", json_object_new_boolean(0));
    json_object_object_add(o, "error", json_object_new_string(text));
    json_object_object_add(o, "errno", json_object_new_int(code > 0 ? code : EIO));
    json_object_object_add(o, "verb", json_object_new_string(verb ? verb : ""));
    int r = conn_send_json(c, HULL_FRAME_RESP, o);
    json_object_put(o);
    return r;
}

static void fit_list(json_object *res)
{
    json_object *entries;
    if (!json_object_object_get_ex(res, "entries", &entries))
        return;
    for (;;) {
        size_t len = strlen(json_object_to_json_string_ext(res, JSON_C_TO_STRING_PLAIN));
        size_t n = json_object_array_length(entries);
        if (len <= FS_ANSWER_MAX || n == 0)
            return;
        size_t keep = (size_t)((unsigned long long)n * FS_ANSWER_MAX / len);
        keep = keep < n ? keep : n - 1;
        json_object_array_del_idx(entries, keep, n - keep);
        json_object_object_add(res, "truncated", json_object_new_boolean(1));
    }
}

static const char *str_of(json_object *req, const char *key)
{
    json_object *v;
    return json_object_object_get_ex(req, key, &v) && json_object_is_type(v, json_type_string)
               ? json_object_get_string(v)
               : NULL;
}

static int64_t int_of(json_object *req, const char *key)
{
    json_object *v;
    return json_object_object_get_ex(req, key, &v) ? json_object_get_int64(v) : 0;
}

int agent_fs(struct conn *c, json_object *req)
{
    const char *verb = str_of(req, "verb"), *path = str_of(req, "path"), *to = str_of(req, "to");
    int v = hull_fs_verb_parse(verb);
    if (!hull_fs_verb_in_guest(v))
        return fs_refuse(c, EINVAL, verb, path, "not a file operation of the agent");
    if (path == NULL || path[0] != '/' || strlen(path) >= 4096)
        return fs_refuse(c, EINVAL, verb, path, "path must be absolute and shorter than 4096");
    if (v == HULL_FS_RENAME && (to == NULL || to[0] != '/' || strlen(to) >= 4096))
        return fs_refuse(c, EINVAL, verb, to, "to must be absolute and shorter than 4096");
    /* What a change may name is what put_file may: the mount points of the
     * workload's /proc, /sys and /dev are not the client's to move. */
    bool change = v == HULL_FS_MKDIR || v == HULL_FS_RENAME || v == HULL_FS_REMOVE;
    const char *named = path, *bad = change ? agent_check_path(path) : NULL;
    if (!bad && v == HULL_FS_RENAME)
        bad = agent_check_path(named = to);
    if (bad)
        return fs_refuse(c, EPERM, verb, named, bad);
    int64_t depth = int_of(req, "depth"), mode = int_of(req, "mode");
    struct hull_fs_op op = {
        .verb = (enum hull_fs_verb)v,
        .path = path,
        .to = to,
        .depth = depth > 0 && depth <= HULL_FS_DEPTH_MAX ? (unsigned)depth : 1,
        .recursive = int_of(req, "recursive") != 0,
        .mode = mode > 0 ? (unsigned)(mode & 07777) : 0,
        .fd = -1,
    };
    /* The agent is the guest's root: the workload root is the whole of
     * what it acts on, every path resolved beneath it by the kernel. */
    cleanup_close int root = open(AGENT_ROOT, O_PATH | O_DIRECTORY | O_CLOEXEC);
    if (root < 0)
        return fs_refuse(c, errno, verb, AGENT_ROOT, strerror(errno));
    json_object *res = NULL;
    int fd = -1;
    cleanup_hull_error hull_error e = NULL;
    if (hull_fs_do(&op, root, -1, &res, &fd, &e) < 0)
        return fs_refuse(c, hull_error_code(e), verb, path, hull_error_msg(e));
    if (fd >= 0)
        close(fd); /* none of these verbs gives one */
    fit_list(res);
    json_object *o = json_object_new_object();
    json_object_object_add(o, "ok", json_object_new_boolean(1));
    json_object_object_add(o, "result", res);
    int r = conn_send_json(c, HULL_FRAME_RESP, o);
    json_object_put(o);
    return r;
}
