/* Detached bind mounts (linux/bind.c), shared by the rootfs assembly
 * (mounts.c) and the device nodes (devices.c). */
#ifndef HULL_LINUX_BIND_H
#define HULL_LINUX_BIND_H

#include <stdbool.h>

#include "hull.h"
#include "spec/spec.h"

/* Build a detached bind of src (or of srcfd, an O_PATH fd, when >= 0: src
 * then only names it), give it m's flags, recursive attributes and
 * propagation plus extra_set (m may be NULL), and attach it on destfd. */
int hull_bind_mount_from(int srcfd, const char *src, int destfd, const struct hull_mount *m,
                         unsigned long extra_set, bool recursive, hull_error *err);
/* Set the propagation (MS_SHARED, MS_PRIVATE, ... | MS_REC) of the mount
 * at fd; 0 changes nothing. */
int hull_mount_propagation_fd(int fd, unsigned long prop, hull_error *err);
/* Make a bind mount of the host path src at dest inside rootfd (used for
 * devices in a user namespace). */
int hull_bind_into(int rootfd, const char *src, const char *dest, bool recursive, bool readonly,
                   hull_error *err);

#endif
