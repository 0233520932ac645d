/* OCI hooks: each runs with the container's state JSON on stdin, its own
 * args and env, and an optional timeout after which it is killed. */
#ifndef HULL_CONTAINER_HOOKS_H
#define HULL_CONTAINER_HOOKS_H

#include <stddef.h>

#include "hull.h"
#include "spec/spec.h"

/* Run hooks[0..n) in order; stop at the first failure. `which` names the
 * list in errors ("hooks.prestart[1]: /bin/x exited with status 3"). For
 * the hooks whose failure fails the verb (prestart, createRuntime,
 * createContainer, startContainer). */
int hull_hooks_run(const struct hull_hook *hooks, size_t n, const char *which,
                   const char *state_json, hull_error *err);

/* Run every hook of hooks[0..n), warning "<context>: <error>" for each
 * one that fails and going on with the next: poststart and poststop, whose
 * failures the runtime-spec has logged while the lifecycle continues.
 * Returns how many failed. */
size_t hull_hooks_run_all(const struct hull_hook *hooks, size_t n, const char *which,
                          const char *state_json, const char *context);

/* state_json with its "status" replaced; NULL when it is not JSON or on
 * allocation failure. Caller frees. */
char *hull_hooks_state_with_status(const char *state_json, const char *status);

#endif
