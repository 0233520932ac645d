/* Helper processes: this binary exec'd again, single-threaded.
 *
 * hull_sandbox_run and the session calls clone(2) the container's init
 * directly, past glibc's fork handlers; in a process with other threads the
 * child could inherit a malloc lock held by one of them and hang. So hulld
 * never calls them itself: a worker (one run at a time) or a keeper (one
 * long-lived sandbox) does, in a fresh image with no threads at all. fork()
 * followed at once by execve() is safe from any thread of hulld. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include "daemon.h"
#include "util/error.h"
#include "util/log.h"

pid_t helper_spawn(const char *mode, int *sock, hull_error *err)
{
    return helper_spawn_bound(mode, false, sock, err);
}

pid_t helper_spawn_bound(const char *mode, bool die_with_parent, int *sock, hull_error *err)
{
    int sv[2];
    *sock = -1;
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0)
        return hull_error_errno(err, "helper %s: socketpair", mode);
    /* Everything the child needs is prepared before fork: after it, only
     * async-signal-safe calls until execve. */
    char *argv[] = {"hulld",
                    "--helper",
                    (char *)mode,
                    "--state-dir",
                    (char *)hulld.o->state_dir,
                    "--image-root",
                    (char *)hulld.o->image_root,
                    hulld.o->debug ? "--debug" : NULL,
                    NULL};
    sigset_t none;
    sigemptyset(&none);
    pid_t parent = getpid();
    pid_t pid = fork();
    if (pid < 0) {
        close(sv[0]);
        close(sv[1]);
        return hull_error_errno(err, "helper %s: fork", mode);
    }
    if (pid == 0) {
        /* fd 3 is the socket; nothing else of hulld's (listening sockets,
         * the database, other helpers' sockets) may leak into the helper. */
        if (dup2(sv[1], 3) < 0)
            _exit(127);
        /* A queue job's runner dies with its worker: a run outliving it
         * would run twice (the reaper requeues the job). */
        if (die_with_parent && (prctl(PR_SET_PDEATHSIG, SIGKILL) < 0 || getppid() != parent))
            _exit(127);
        close_range(4, ~0u, 0);
        /* hulld blocks SIGTERM & co. for its signal thread; the mask would
         * survive execve. */
        sigprocmask(SIG_SETMASK, &none, NULL);
        signal(SIGPIPE, SIG_DFL);
        execv("/proc/self/exe", argv);
        _exit(127);
    }
    close(sv[1]);
    *sock = sv[0];
    return pid;
}

int helper_main(const char *mode, const char *state_dir)
{
    /* A helper ignores the signals meant for hulld (a terminal's ^C reaches
     * the whole group): hulld decides when it stops, by closing its socket. */
    signal(SIGINT, SIG_IGN);
    signal(SIGTERM, SIG_IGN);
    signal(SIGPIPE, SIG_IGN);
    int sock = 3;
    if (fcntl(sock, F_SETFD, FD_CLOEXEC) < 0) {
        fprintf(stderr, "hulld: --helper is internal to hulld\n");
        return 2;
    }
    if (strcmp(mode, "keeper") == 0)
        return keeper_loop(sock);
    if (strcmp(mode, "puller") == 0)
        return puller_main(sock);
    if (strcmp(mode, "runner") == 0)
        return worker_loop(sock, NULL);
    if (strcmp(mode, "worker") == 0) {
        hull_error err = NULL;
        struct hull_store *st = NULL;
        if (hull_store_open(state_dir, &st, &err) < 0) {
            hull_log(HULL_LOG_ERROR, "worker: %s", hull_error_msg(err));
            hull_error_free(&err);
            return 1;
        }
        int rc = worker_loop(sock, st);
        hull_store_close(st);
        return rc;
    }
    fprintf(stderr, "hulld: --helper %s: unknown helper\n", mode);
    return 2;
}
