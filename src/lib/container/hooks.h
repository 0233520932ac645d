/* OCI hooks: each runs with the container's state JSON on stdin, its own
 * args and env, and an optional timeout after which it is killed. */
#ifndef HULL_CONTAINER_HOOKS_H
#define HULL_CONTAINER_HOOKS_H

#include <stddef.h>

#include "hull.h"
#include "spec/spec.h"

/* Run hooks[0..n) in order; stop at the first failure. `which` names the
 * list in errors ("hooks.prestart[1]: /bin/x exited with status 3"). */
int hull_hooks_run(const struct hull_hook *hooks, size_t n, const char *which,
                   const char *state_json, hull_error *err);

#endif
