/* A pool of fresh network namespaces for sandbox runs (see netpool.c). */
#ifndef HULL_SANDBOX_NETPOOL_H
#define HULL_SANDBOX_NETPOOL_H

/* Where `hull sandbox netpool` answers by default. */
#define HULL_SANDBOX_NETPOOL_SOCK "/run/hull/sandbox-netpool.sock"

/* A fresh network namespace (lo up, owned by the host's user namespace)
 * from the keeper listening on path (NULL: the default), or -1 when there
 * is none or what it sent is not one: the run then makes its own. The
 * caller owns the fd; it is the namespace's only reference but for the
 * processes the caller puts there. */
int hull_sandbox_netpool_take(const char *path);

struct hull_spec;
struct hull_setup_opts;
/* For a run whose spec makes a new network namespace: one from the pool
 * set in *so (netns_given, netns_fd; lo is up already, so not the init's
 * to bring up). Returns the fd for the caller to close once the init is
 * cloned, or -1 (nothing changed: the run makes its own). */
int hull_sandbox_netpool_offer(const struct hull_spec *spec, struct hull_setup_opts *so);

#endif
