/* The keeper's side of templates (templates.c): "tpl_save" copies the
 * sandbox's /tmp into the empty host directory that came with the frame
 * (at most "max" bytes), "tpl_load" copies such a directory into it; both
 * answer with what was copied. The copy is the library's
 * (sandbox/session_template.c), which treats what the sandbox made as
 * hostile. */
#include <errno.h>
#include <string.h>

#include "daemon.h"
#include "hull.h"
#include "util/error.h"
#include "util/json.h"

static json_object *stats_json(const struct hull_tmp_stats *st)
{
    json_object *o = json_object_new_object();
    json_object_object_add(o, "bytes", json_object_new_uint64(st->bytes));
    json_object_object_add(o, "files", json_object_new_uint64(st->files));
    json_object_object_add(o, "dirs", json_object_new_uint64(st->dirs));
    json_object_object_add(o, "symlinks", json_object_new_uint64(st->symlinks));
    json_object_object_add(o, "skipped", json_object_new_uint64(st->skipped));
    return o;
}

bool keeper_tpl(int sock, struct frame *f, struct hull_session *s)
{
    json_object *opv = hj_get(f->hdr, "op");
    const char *op = opv ? json_object_get_string(opv) : "";
    bool save = strcmp(op, "tpl_save") == 0;
    if (!save && strcmp(op, "tpl_load") != 0)
        return false;
    struct hull_tmp_stats st;
    hull_error e = NULL;
    json_object *m = hj_get(f->hdr, "max");
    int r = f->fd < 0 ? hull_error_set(&e, EPROTO, "keeper: %s without a directory", op)
            : save    ? hull_session_save_tmp(s, f->fd, m ? (uint64_t)json_object_get_int64(m) : 0,
                                              &st, &e)
                      : hull_session_load_tmp(s, f->fd, &st, &e);
    json_object *hdr = json_object_new_object();
    if (r < 0) {
        json_object *er = json_object_new_object();
        json_object_object_add(er, "errno", json_object_new_int(hull_error_code(e)));
        json_object_object_add(er, "message", json_object_new_string(hull_error_msg(e)));
        json_object_object_add(hdr, "error", er);
        hull_error_free(&e);
    } else {
        json_object_object_add(hdr, "ok", json_object_new_boolean(1));
        json_object_object_add(hdr, "stats", stats_json(&st));
    }
    frame_send(sock, hdr, NULL, 0, -1);
    json_object_put(hdr);
    return true;
}
