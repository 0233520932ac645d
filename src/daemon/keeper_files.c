/* The keeper's side of the file API (op "fs"): the header names the verb
 * and its arguments, the frame's fd is the upload or inotify fd a verb
 * takes back; the answer is the verb's JSON, with the fd it gives (a file
 * to stream, an unnamed upload file, an inotify fd). The work happens in a
 * child inside the sandbox (sandbox/session_fs.c); the keeper only waits
 * for it, so it stays short whatever the sandbox holds. */
#include <errno.h>
#include <string.h>
#include <unistd.h>

#include "daemon.h"
#include "hull.h"
#include "util/error.h"
#include "util/json.h"

static void reply(int sock, json_object *out, int fd, hull_error *e)
{
    json_object *hdr = json_object_new_object();
    if (*e) {
        json_object *er = json_object_new_object();
        json_object_object_add(er, "errno", json_object_new_int(hull_error_code(*e)));
        json_object_object_add(er, "message", json_object_new_string(hull_error_msg(*e)));
        json_object_object_add(hdr, "error", er);
        hull_error_free(e);
        fd = -1;
    } else {
        json_object_object_add(hdr, "ok", json_object_new_boolean(1));
        json_object_object_add(hdr, "result", json_object_get(out));
    }
    frame_send(sock, hdr, NULL, 0, fd);
    json_object_put(hdr);
}

static const char *str_of(json_object *hdr, const char *key)
{
    json_object *v = hj_get(hdr, key);
    return v ? json_object_get_string(v) : NULL;
}

void keeper_fs(int sock, struct frame *f, struct hull_session *s)
{
    hull_error e = NULL;
    json_object *v = NULL;
    struct hull_fs_op op = {
        .path = str_of(f->hdr, "path"),
        .to = str_of(f->hdr, "to"),
        .fd = f->fd,
    };
    int verb = hull_fs_verb_parse(str_of(f->hdr, "verb"));
    op.verb = verb < 0 ? HULL_FS_STAT : (enum hull_fs_verb)verb;
    if ((v = hj_get(f->hdr, "depth")))
        op.depth = (unsigned)json_object_get_int(v);
    if ((v = hj_get(f->hdr, "recursive")))
        op.recursive = json_object_get_boolean(v);
    if ((v = hj_get(f->hdr, "mode")))
        op.mode = (unsigned)json_object_get_int(v);
    if ((v = hj_get(f->hdr, "size")))
        op.size = (uint64_t)json_object_get_int64(v);
    json_object *out = NULL;
    int fd = -1;
    if (verb < 0)
        hull_error_set(&e, EPROTO, "keeper: unknown file verb");
    else
        hull_session_fs(s, &op, &out, &fd, &e);
    reply(sock, out, fd, &e);
    json_object_put(out);
    if (fd >= 0)
        close(fd);
}
