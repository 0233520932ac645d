/* A QMP client (qmp.c): one connection, one command at a time. QEMU's QMP
 * socket takes one client; callers hold the VM's lock around a session. */
#ifndef HULL_VM_QMP_H
#define HULL_VM_QMP_H

#include <json-c/json.h>

#include "hull.h"

struct qmp;

/* Connect (retrying until timeout_ms while QEMU starts), read the greeting,
 * negotiate capabilities. */
int qmp_connect(const char *path, int timeout_ms, struct qmp **out, hull_error *err);
/* Run cmd with args (consumed; may be NULL). sendfd >= 0 travels with the
 * command as SCM_RIGHTS (for "getfd"). *ret (may be NULL) gets "return". */
int qmp_cmd(struct qmp *q, const char *cmd, json_object *args, int sendfd, json_object **ret,
            hull_error *err);
/* The string status of query-migrate ("completed", "failed", ...). */
int qmp_migrate_status(struct qmp *q, char *out, size_t len, hull_error *err);
void qmp_close(struct qmp *q);

#endif
