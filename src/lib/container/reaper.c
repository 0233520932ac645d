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
 *
 * The program starts the way posix_spawn starts one: a child that shares
 * the reaper's memory (CLONE_VM) on a stack of its own, while the reaper
 * sleeps until its execve (CLONE_VFORK). A fork would copy the page tables
 * of the whole hull binary and its heap, only to throw them away at the
 * exec, and would leave both sides copy-on-write faults. The child touches
 * nothing of the reaper's memory but its own stack on the way to execve;
 * its fd table and signal handlers are its own copies (no CLONE_FILES, no
 * CLONE_SIGHAND). Only when execve fails does it format the error (heap
 * memory the reaper then never uses) before _exit.
 */
#include <errno.h>
#include <sched.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include "container/process.h"
#include "container/sync.h"
#include "util/error.h"
#include "util/fs.h"

struct spawn_args {
    struct hull_proc_plan *plan;
    int report_fd, status_fd;
};

/* The program's side of the clone: runs on program_stack until execve. */
static int program_main(void *arg)
{
    struct spawn_args *a = arg;
    /* The report socket closes on exec (success) or carries the error; the
     * status pipe is the reaper's alone. */
    close(a->status_fd);
    hull_proc_exec(a->plan, a->report_fd);
}

/* The child's stack until its execve: what hull_proc_exec and its error
 * report need, with room to spare. */
#ifndef __SANITIZE_ADDRESS__
static _Alignas(64) char program_stack[256 * 1024];
#endif

/* Start program_main as pid 2. ASan cannot follow a child onto a stack of
 * its own (it warns, on the program's stderr, at the first noreturn call),
 * so the sanitizer builds of the suite start it with a plain fork. */
static pid_t start_program(struct spawn_args *a)
{
#ifdef __SANITIZE_ADDRESS__
    pid_t pid = fork();
    if (pid == 0)
        program_main(a);
    return pid;
#else
    return clone(program_main, program_stack + sizeof(program_stack),
                 CLONE_VM | CLONE_VFORK | SIGCHLD, a);
#endif
}

void hull_proc_exec_reaped(struct hull_proc_plan *p, int report_fd, int status_fd)
{
    /* Nothing of the reaper may be opened through /proc/1 by the program:
     * not its fds (the status pipe), not its exe (the hull binary). The
     * credential change may have made it dumpable again (fs.suid_dumpable),
     * so before the program exists; execve decides the program's own. */
    prctl(PR_SET_DUMPABLE, 0);
    struct spawn_args a = {.plan = p, .report_fd = report_fd, .status_fd = status_fd};
    pid_t child = start_program(&a);
    if (child < 0) {
        hull_error err = NULL;
        hull_error_errno(&err, "sandbox init: start the program");
        hull_sync_send_error(report_fd, err);
        _exit(127);
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
