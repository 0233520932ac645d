/* The guest side of a microVM sandbox's file API: stat, list, mkdir, rename
 * and remove, done by the agent itself in the workload root (the guest's
 * agent_fs.c runs the container level's verbs, sandbox/session_fs_ops.c).
 * No program of the guest runs for them: a workload cannot answer in the
 * agent's place by putting its own python3 on the PATH. */
#include <errno.h>
#include <string.h>

#include "hull.h"
#include "sandbox/session_fs.h"
#include "util/error.h"
#include "util/json.h"
#include "vm/agent.h"
#include "vm/vm.h"

int hull_vm_fs(const struct hull_runtime *rt, const char *id, const struct hull_fs_op *op,
               struct json_object **out, hull_error *err)
{
    const char *verb = op && hull_fs_verb_in_guest(op->verb) ? hull_fs_verb_name(op->verb) : NULL;
    if (verb == NULL)
        return hull_error_set(err, ENOTSUP, "fs: not a verb the guest's agent answers");
    if (op->path == NULL || op->path[0] != '/')
        return hull_error_set(err, EINVAL, "fs %s: the path must be absolute", verb);
    struct vm_session s;
    if (vm_session_begin(rt, id, &s, err) < 0)
        return hull_error_prefix(err, "fs %s", verb);
    json_object *req = json_object_new_object(), *resp = NULL;
    json_object_object_add(req, "op", json_object_new_string("fs"));
    json_object_object_add(req, "verb", json_object_new_string(verb));
    json_object_object_add(req, "path", json_object_new_string(op->path));
    if (op->to)
        json_object_object_add(req, "to", json_object_new_string(op->to));
    json_object_object_add(req, "depth", json_object_new_int64(op->depth));
    json_object_object_add(req, "recursive", json_object_new_int(op->recursive));
    json_object_object_add(req, "mode", json_object_new_int64(op->mode));
    /* A recursive remove or a deep list takes what the guest's disk takes. */
    int rc = vm_agent_call(s.a, req, 60000, &resp, err);
    if (rc < 0)
        vm_session_mark_failed(&s, err); /* a refusal keeps the guest's errno as its code */
    json_object *res = rc < 0 ? NULL : hj_get(resp, "result");
    if (rc == 0 && !json_object_is_type(res, json_type_object))
        rc = hull_error_set(err, EPROTO, "fs %s: the agent's answer has no result", verb);
    if (rc == 0)
        *out = json_object_get(res);
    json_object_put(resp);
    vm_session_end(&s);
    return rc;
}
