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
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "daemon.h"
#include "util/error.h"
#include "util/log.h"
#include "util/sibling.h"

pid_t helper_spawn(const char *mode, int *sock, hull_error *err)
{
    return helper_spawn_bound(mode, false, sock, err);
}

static const char self_exe[] = "/proc/self/exe";

/* hull-worker beside hulld (or in ../lib/hull, or $HULL_WORKER), found
 * once; "" when it is not there. */
static char lean_worker[PATH_MAX];
static pthread_once_t lean_once = PTHREAD_ONCE_INIT;

static void find_lean_worker(void)
{
    hull_error e = NULL;
    struct stat st;
    if (hull_find_sibling("hull-worker", "HULL_WORKER", lean_worker, sizeof(lean_worker), &e) < 0 ||
        stat(lean_worker, &st) < 0 || !S_ISREG(st.st_mode) || access(lean_worker, X_OK) < 0) {
        /* A path that cannot be exec'd would make every run's worker die
         * at once: hulld runs them itself instead. */
        hull_debug("runs' workers: hulld --helper worker (no hull-worker: %s)",
                   e ? hull_error_msg(e) : "not an executable file");
        hull_error_free(&e);
        lean_worker[0] = '\0';
        return;
    }
    hull_debug("runs' workers: %s", lean_worker);
}

/* The program a helper of this mode runs: a run's worker is the lean
 * hull-worker when there is one (runner_worker.c says why), else hulld. */
static const char *helper_exe(const char *mode)
{
    if (strcmp(mode, "worker") != 0 && strcmp(mode, "runner") != 0)
        return self_exe;
    pthread_once(&lean_once, find_lean_worker);
    return lean_worker[0] ? lean_worker : self_exe;
}

pid_t helper_spawn_bound(const char *mode, bool die_with_parent, int *sock, hull_error *err)
{
    int sv[2];
    *sock = -1;
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0)
        return hull_error_errno(err, "helper %s: socketpair", mode);
    /* Everything the child needs is prepared before fork: after it, only
     * async-signal-safe calls until execve. hull-worker takes the same
     * arguments. No --image-root without one (a NULL would end argv). */
    const char *exe = helper_exe(mode);
    /* ps names the program that runs: hull-worker or hulld. */
    char *argv[10] = {exe == self_exe ? "hulld" : "hull-worker", "--helper", (char *)mode,
                      "--state-dir", (char *)hulld.o->state_dir};
    int n = 5;
    if (hulld.o->image_root) {
        argv[n++] = "--image-root";
        argv[n++] = (char *)hulld.o->image_root;
    }
    if (hulld.o->debug)
        argv[n++] = "--debug";
    argv[n] = NULL;
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
        execv(exe, argv);
        /* hull-worker gone since it was found (an upgrade, an uninstall):
         * hulld itself runs the same loop, as where it was never there. */
        if (exe != self_exe) {
            argv[0] = "hulld";
            execv(self_exe, argv);
        }
        _exit(127);
    }
    close(sv[1]);
    *sock = sv[0];
    return pid;
}

int helper_main(const char *mode, const char *state_dir)
{
    if (strcmp(mode, "worker") == 0 || strcmp(mode, "runner") == 0)
        return worker_main(mode, state_dir, hulld.o->image_root);
    int sock = helper_prepare();
    if (sock < 0)
        return 2;
    if (strcmp(mode, "keeper") == 0)
        return keeper_loop(sock);
    if (strcmp(mode, "puller") == 0)
        return puller_main(sock);
    fprintf(stderr, "hulld: --helper %s: unknown helper\n", mode);
    return 2;
}
