/* Device nodes and /dev links inside the container's rootfs. */
#ifndef HULL_LINUX_DEVICES_H
#define HULL_LINUX_DEVICES_H

#include <stdbool.h>

#include "hull.h"
#include "spec/spec.h"

/* Create the default devices (null, zero, full, random, urandom, tty), the
 * spec's linux.devices, and the /dev/fd, stdio, ptmx links, unless /dev is a
 * bind mount from the host. In a user namespace, where mknod is refused,
 * the host's node is bind-mounted instead. */
int hull_devices_setup(int rootfd, const struct hull_spec *spec, bool userns, hull_error *err);

#endif
