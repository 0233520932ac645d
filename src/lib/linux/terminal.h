/* Terminals: a pty made inside the container's devpts, handed to the caller
 * through a console socket (podman, containerd) or relayed by hull. */
#ifndef HULL_LINUX_TERMINAL_H
#define HULL_LINUX_TERMINAL_H

#include <stdbool.h>
#include <termios.h>

#include "hull.h"

/* In the container, after pivot_root: open a pty pair from /dev/ptmx.
 * height/width 0 leave the size alone. */
int hull_pty_open(int *master, int *slave, unsigned height, unsigned width, hull_error *err);
/* In the container, before root.readonly takes effect: an O_PATH fd of
 * /dev/console (made as an empty file if missing) for the pty to be bound
 * on, as the runtime-spec asks of a container with a terminal. Anything
 * but a file or a device there, or one on procfs or sysfs, is refused. */
int hull_console_target(int rootfd, hull_error *err);
/* Bind the pty slave on the console target (both fds: no path to swap). */
int hull_pty_bind_console(int slave, int target, hull_error *err);
/* Make slave the controlling terminal and stdin/stdout/stderr of this process. */
int hull_pty_become_console(int slave, hull_error *err);

/* Check that path is a Unix socket we can connect to (before creating anything). */
int hull_console_socket_check(const char *path, hull_error *err);
/* Send the pty master over the AF_UNIX socket at path (SCM_RIGHTS), as runc does. */
int hull_console_socket_send(const char *path, int master, hull_error *err);

/* Foreground relay helpers: put our terminal in raw mode (saving the old
 * mode), copy our window size to the pty. */
int hull_tty_raw(int fd, struct termios *saved);
void hull_tty_restore(int fd, const struct termios *saved);
void hull_tty_copy_winsize(int from, int to);

#endif
