#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/un.h>
#include <unistd.h>
#include <linux/magic.h>

#include "linux/bind.h"
#include "linux/terminal.h"
#include "util/error.h"
#include "util/fdpass.h"
#include "util/fs.h"

int hull_pty_open(int *master, int *slave, unsigned height, unsigned width, hull_error *err)
{
    /* /dev/ptmx inside the container leads to its own devpts instance, so
     * the pty is one the container can see and nothing of the host's. */
    int m = open("/dev/ptmx", O_RDWR | O_NOCTTY | O_CLOEXEC);
    if (m < 0)
        return hull_error_errno(err, "process.terminal: open /dev/ptmx");
    int unlock = 0;
    if (ioctl(m, TIOCSPTLCK, &unlock) < 0) {
        close(m);
        return hull_error_errno(err, "process.terminal: unlock pty");
    }
    /* TIOCGPTPEER opens the slave through the master, not by a path name a
     * process in the container could have replaced. */
    int s = ioctl(m, TIOCGPTPEER, O_RDWR | O_NOCTTY | O_CLOEXEC);
    if (s < 0) {
        close(m);
        return hull_error_errno(err, "process.terminal: open pty slave");
    }
    if (height && width) {
        struct winsize ws = {.ws_row = (unsigned short)height, .ws_col = (unsigned short)width};
        ioctl(m, TIOCSWINSZ, &ws);
    }
    *master = m;
    *slave = s;
    return 0;
}

int hull_console_target(int rootfd, hull_error *err)
{
    /* Resolved inside the root like a mount destination; a symlink as the
     * last component is not followed, so it is refused below. */
    cleanup_close int fd = hull_resolve_in_root(rootfd, "/dev/console",
                                                HULL_RESOLVE_MKFILE | HULL_RESOLVE_NOFOLLOW, err);
    if (fd < 0)
        return hull_error_prefix(err, "process.terminal: /dev/console");
    struct stat st;
    struct statfs fs;
    if (fstat(fd, &st) < 0 || fstatfs(fd, &fs) < 0)
        return hull_error_errno(err, "process.terminal: stat /dev/console");
    /* The pty must never cover a kernel file (CVE-2025-52565's kind). */
    if (!(S_ISREG(st.st_mode) || S_ISCHR(st.st_mode)) || fs.f_type == PROC_SUPER_MAGIC ||
        fs.f_type == SYSFS_MAGIC)
        return hull_error_set(err, EPERM,
                              "process.terminal: /dev/console is not a file or device node of "
                              "the container's own");
    return hull_steal_fd(&fd);
}

int hull_pty_bind_console(int slave, int target, hull_error *err)
{
    /* Safe: both ends are fds the init opened itself in its own mount
     * namespace; the bind is only seen inside the container. */
    if (hull_bind_mount_from(slave, "the pty", target, NULL, 0, false, err) < 0)
        return hull_error_prefix(err, "process.terminal: /dev/console");
    return 0;
}

int hull_pty_become_console(int slave, hull_error *err)
{
    if (setsid() < 0 && errno != EPERM)
        return hull_error_errno(err, "setsid");
    if (ioctl(slave, TIOCSCTTY, 0) < 0)
        return hull_error_errno(err, "set controlling terminal");
    for (int fd = 0; fd < 3; fd++)
        if (dup2(slave, fd) < 0)
            return hull_error_errno(err, "dup pty to fd %d", fd);
    if (slave > 2)
        close(slave);
    return 0;
}

static int socket_connect(const char *path, hull_error *err)
{
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    if (strlen(path) >= sizeof(sa.sun_path))
        return hull_error_set(err, ENAMETOOLONG, "--console-socket %s: path too long", path);
    strcpy(sa.sun_path, path);
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return hull_error_errno(err, "--console-socket: socket");
    if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
        hull_error_errno(err, "--console-socket %s", path);
        close(fd);
        return -1;
    }
    return fd;
}

int hull_console_socket_check(const char *path, hull_error *err)
{
    struct stat st;
    if (stat(path, &st) < 0)
        return hull_error_errno(err, "--console-socket %s", path);
    if (!S_ISSOCK(st.st_mode))
        return hull_error_set(err, ENOTSOCK, "--console-socket %s: not a socket", path);
    return 0;
}

int hull_console_socket_send(const char *path, int master, hull_error *err)
{
    int sock = socket_connect(path, err);
    if (sock < 0)
        return -1;
    /* The payload is the pty's name; the fd rides along as SCM_RIGHTS. */
    char name[64] = "/dev/ptmx";
    int n = -1;
    if (ioctl(master, TIOCGPTN, &n) == 0)
        snprintf(name, sizeof(name), "/dev/pts/%d", n);
    struct iovec iov = {name, strlen(name)};
    int r = 0;
    if (hull_sendmsg_fd(sock, &iov, 1, master) < 0)
        r = hull_error_errno(err, "--console-socket %s: send", path);
    close(sock);
    return r;
}

int hull_tty_raw(int fd, struct termios *saved)
{
    if (tcgetattr(fd, saved) < 0)
        return -1;
    struct termios raw = *saved;
    cfmakeraw(&raw);
    return tcsetattr(fd, TCSANOW, &raw);
}

void hull_tty_restore(int fd, const struct termios *saved)
{
    tcsetattr(fd, TCSANOW, saved);
}

void hull_tty_copy_winsize(int from, int to)
{
    struct winsize ws;
    if (ioctl(from, TIOCGWINSZ, &ws) == 0)
        ioctl(to, TIOCSWINSZ, &ws);
}
