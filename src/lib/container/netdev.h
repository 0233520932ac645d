/* linux.netDevices: host interfaces moved into a container at create and
 * back at delete (container/netdev.c says how). */
#ifndef HULL_CONTAINER_NETDEV_H
#define HULL_CONTAINER_NETDEV_H

#include <sys/types.h>

#include "hull.h"
#include "spec/spec.h"

/* Before anything is made: every named interface is on the host and the
 * runtime may move it. */
int hull_netdev_precheck(const struct hull_spec *spec, hull_error *err);
/* The init exists: hold its network namespace in dirfd (the state
 * directory) and move the interfaces in. On failure the ones moved are
 * back and the hold released. */
int hull_netdev_move_in(const struct hull_spec *spec, pid_t init, int dirfd, hull_error *err);
/* Delete and rollback: every interface recorded in dirfd goes back to the
 * host, then the namespace is let go. Failures are warnings (delete goes
 * on); no record: nothing to do. */
void hull_netdev_move_out(int dirfd);

#endif
