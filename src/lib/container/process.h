/* The last steps every container process takes, whether it is the init or a
 * process added by `exec`: find the program, take on the spec's user,
 * capabilities, LSM label and seccomp filter, shed fds and signals, execve. */
#ifndef HULL_CONTAINER_PROCESS_H
#define HULL_CONTAINER_PROCESS_H

#include <stdbool.h>

#include "hull.h"
#include "linux/seccomp.h"
#include "spec/spec.h"

struct hull_proc_plan {
    const struct hull_process *proc;
    const struct hull_linux *lx; /* personality; may be NULL */
    const struct hull_seccomp_filter *seccomp;
    bool die_with_parent; /* re-arm PR_SET_PDEATHSIG after the uid switch */
    bool new_session;     /* setsid() (not when a pty already made one) */
    bool ctty;            /* then fd 0, a terminal, becomes its controlling one */
    int preserve_fds;
    /* Where a failure after `create` returned is recorded for `start` to
     * report (exec.error in the state directory); -1 when someone listens. */
    int error_fd;
    /* filled by hull_proc_resolve */
    char *path;
    char **envp;
};

/* In the container's root: resolve args[0] through PATH and build the
 * environment (HOME from /etc/passwd when unset). */
int hull_proc_resolve(struct hull_proc_plan *p, hull_error *err);

/* Credentials and confinement, in the order the kernel requires. */
int hull_proc_finish(struct hull_proc_plan *p, hull_error *err);

/* Learn from /proc/self/status which signals this process ignores, so that
 * hull_proc_exec sets back only those (with one syscall each) rather than
 * all 64. Call it in the single-threaded child that will exec, while the
 * host's /proc is still in view and before it changes a disposition;
 * without it, or when /proc cannot be read, every signal is reset. */
void hull_proc_note_ignored_signals(void);

/* Close all but 0-2 and the preserved fds on exec, reset signals, execve.
 * On failure the error goes to report_fd (a sync socket) or, when nobody
 * listens there, to p->error_fd and stderr. */
__attribute__((noreturn)) void hull_proc_exec(struct hull_proc_plan *p, int report_fd);

/* Report a failure of the init or an exec'd process: to report_fd, else to
 * error_fd (if >= 0) and the process's stderr. */
void hull_proc_report(int report_fd, int error_fd, hull_error err);

/* Look up file in PATH (from env, or the default PATH) like execvp does,
 * inside the current root. Returns a malloc'd path. */
/* The same, as the sandbox does it (reaper.c): this process stays as the
 * pid namespace's init, forks the program, reaps everything, and writes the
 * program's wait status (an int) to status_fd when it ends. */
__attribute__((noreturn)) void hull_proc_exec_reaped(struct hull_proc_plan *p, int report_fd,
                                                     int status_fd);

char *hull_find_executable(const char *file, char *const *env, hull_error *err);

/* *err (its code an errno) says process.cwd cannot be entered or made:
 * not there in a read-only root, not a directory, no search permission.
 * Such reasons are the caller's mistake and become HULL_ECWD; the others
 * (ENOMEM, EIO) stay the runtime's. */
void hull_proc_mark_cwd_error(hull_error *err);

/* Check the LSM fields of a process against the host, so a profile the host
 * cannot apply is refused up front instead of silently ignored. */
int hull_proc_check_lsm(const struct hull_process *proc, const char *path, hull_error *err);

/* AppArmor/SELinux availability, for precise errors before anything starts. */
bool hull_lsm_apparmor_enabled(void);
bool hull_lsm_selinux_enabled(void);

#endif
