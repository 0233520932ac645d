/* An init that stays: the sandbox's pid 1 forks the program and reaps.
 *
 * The first process of a pid namespace is special to the kernel: signals it
 * sends itself, or that others in the namespace send it, are dropped unless
 * it installed a handler, and every orphan becomes its child. A program run
 * as that process misbehaves in ways a user sees: abort() and assert()
 * end with SIGSEGV instead of SIGABRT, `kill -TERM $$` does nothing, and
 * the zombies of double-forked helpers pile up against the pids limit. So
 * in a sandbox the init, already confined exactly like the program (same
 * credentials, no capabilities, no_new_privs, seccomp), forks the program
 * as pid 2, reaps every process that ends, and when the program ends
 * writes its wait status to the supervisor and exits -- which makes the
 * kernel kill whatever is left in the namespace.
 */
#include <errno.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include "container/process.h"
#include "container/sync.h"
#include "util/error.h"
#include "util/fs.h"

void hull_proc_exec_reaped(struct hull_proc_plan *p, int report_fd, int status_fd)
{
    /* Nothing of the reaper may be opened through /proc/1 by the program:
     * not its fds (the status pipe), not its exe (the hull binary). The
     * credential change may have made it dumpable again (fs.suid_dumpable),
     * so before the program exists; execve decides the program's own. */
    prctl(PR_SET_DUMPABLE, 0);
    pid_t child = fork();
    if (child < 0) {
        hull_error err = NULL;
        hull_error_errno(&err, "sandbox init: fork the program");
        hull_sync_send_error(report_fd, err);
        _exit(127);
    }
    if (child == 0) {
        /* The program: the report socket closes on exec (success) or
         * carries the error; the status pipe is the reaper's alone. */
        close(status_fd);
        hull_proc_exec(p, report_fd);
    }
    /* The supervisor reads EOF on the sync socket once the program's exec
     * closed the last other copy of it: ours must be gone by then. */
    close(report_fd);
    for (int fd = 0; fd < status_fd && fd < 3; fd++)
        close(fd);
    hull_close_fds_except(3, &status_fd, 1);

    for (;;) {
        int st;
        pid_t w = waitpid(-1, &st, 0);
        if (w == child) {
            ssize_t n;
            do {
                n = write(status_fd, &st, sizeof(st));
            } while (n < 0 && errno == EINTR);
            _exit(0);
        }
        if (w < 0 && errno != EINTR)
            _exit(127); /* ECHILD cannot happen before the program ends */
    }
}
