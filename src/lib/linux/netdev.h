/* Network devices inside a namespace. */
#ifndef HULL_LINUX_NETDEV_H
#define HULL_LINUX_NETDEV_H

#include "hull.h"

/* Bring up "lo" in the current network namespace (a new one starts down). */
int hull_loopback_up(hull_error *err);

#endif
