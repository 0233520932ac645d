/* Namespaces: joining by path, uid/gid maps, and the clone flags a spec asks for. */
#ifndef HULL_LINUX_NAMESPACES_H
#define HULL_LINUX_NAMESPACES_H

#include <sys/types.h>

#include "hull.h"
#include "spec/spec.h"

/* CLONE_NEW* flags of the namespaces the spec creates (those without a path). */
int hull_ns_new_flags(const struct hull_linux *l);
/* True when some namespace is joined by path. */
bool hull_ns_any_join(const struct hull_linux *l);

/* Open every namespace path of the spec (O_RDONLY|O_CLOEXEC), checking that
 * each file really is a namespace of the named type. fds[t] is -1 for
 * namespaces not joined. Done in the runtime before forking, so a bad path
 * is reported before anything is created. */
int hull_ns_open_joins(const struct hull_linux *l, int fds[HULL_NS_COUNT], hull_error *err);
void hull_ns_close_joins(int fds[HULL_NS_COUNT]);

/* setns() into the opened namespaces of the given types, in the order given
 * (user first when present, so the rest are owned by it). */
int hull_ns_join(int fds[HULL_NS_COUNT], const enum hull_ns_type *order, size_t n, hull_error *err);

/* Write /proc/PID/{uid_map,gid_map} (and setgroups when needed). */
int hull_ns_write_id_maps(pid_t pid, const struct hull_linux *l, hull_error *err);

/* True when the caller is not root of the initial user namespace: an
 * unprivileged user, or root of a user namespace (podman's rootless mode).
 * Such a caller can map only its own ids and usually cannot create cgroups.
 * Decided on the first call: call it before any setuid or unshare. */
bool hull_rootless(void);

/* Write /proc/PID/timens_offsets for a time namespace not yet entered. */
int hull_ns_write_time_offsets(pid_t pid, const struct hull_linux *l, hull_error *err);

#endif
