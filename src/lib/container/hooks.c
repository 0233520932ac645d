#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "container/hooks.h"
#include "util/clock.h"
#include "util/error.h"
#include "util/json.h"
#include "util/log.h"

extern char **environ;

static int pidfd_open_(pid_t pid)
{
    return (int)syscall(SYS_pidfd_open, pid, 0);
}

static int run_one(const struct hull_hook *h, const char *name, const char *state_json,
                   hull_error *err)
{
    /* A socket rather than a pipe: send(MSG_NOSIGNAL) cannot raise SIGPIPE
     * in the runtime when a hook ignores its stdin. */
    int in[2];
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, in) < 0)
        return hull_error_errno(err, "%s: socketpair", name);
    /* The child reports a failed execve here (close-on-exec: a successful
     * one closes it silently), so the runtime says it once, in its error. */
    int ex[2];
    if (pipe2(ex, O_CLOEXEC) < 0) {
        int e = errno;
        close(in[0]);
        close(in[1]);
        errno = e;
        return hull_error_errno(err, "%s: pipe", name);
    }
    pid_t parent = getpid();
    pid_t pid = fork();
    if (pid < 0) {
        int e = errno;
        close(in[0]);
        close(in[1]);
        close(ex[0]);
        close(ex[1]);
        errno = e;
        return hull_error_errno(err, "%s: fork", name);
    }
    if (pid == 0) {
        /* A hook dies with the hull that waits for it: if `hull create` is
         * killed, nobody would ever reap or time out an orphaned hook, and
         * delete --force cannot know its pid. */
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        if (getppid() != parent)
            _exit(127);
        dup2(in[0], 0);
        sigset_t all;
        sigemptyset(&all);
        sigprocmask(SIG_SETMASK, &all, NULL);
        /* Its own process group, so a timeout kills what the hook started too. */
        setpgid(0, 0);
        char *argv0[] = {h->path, NULL};
        /* Without "env", the runtime's own environment, as runc and crun. */
        execve(h->path, h->args && h->args[0] ? h->args : argv0, h->env ? h->env : environ);
        int e = errno;
        if (write(ex[1], &e, sizeof(e)) < 0)
            _exit(127);
        _exit(127);
    }
    close(ex[1]);
    cleanup_close int exec_fd = ex[0];
    setpgid(pid, pid); /* also here: the timeout may not wait for the child to do it */
    close(in[0]);
    /* The hook may not read its stdin; that is not our failure. */
    size_t len = state_json ? strlen(state_json) : 0;
    if (len && send(in[1], state_json, len, MSG_NOSIGNAL) < 0 && errno != EPIPE)
        hull_debug("%s: writing state: %s", name, strerror(errno));
    close(in[1]);

    int status = 0;
    int pfd = pidfd_open_(pid);
    if (h->has_timeout && pfd >= 0) {
        struct pollfd p = {.fd = pfd, .events = POLLIN};
        int timeout_ms = h->timeout * 1000;
        uint64_t deadline = hull_monotonic_ns() + (uint64_t)timeout_ms * 1000000ull;
        int r;
        do {
            uint64_t now = hull_monotonic_ns();
            int left = now >= deadline ? 0 : (int)((deadline - now) / 1000000ull);
            r = poll(&p, 1, left);
        } while (r < 0 && errno == EINTR);
        if (r == 0) {
            kill(-pid, SIGKILL);
            waitpid(pid, &status, 0);
            close(pfd);
            return hull_error_set(err, ETIMEDOUT, "%s: %s timed out after %d s", name, h->path,
                                  h->timeout);
        }
    }
    if (pfd >= 0)
        close(pfd);
    while (waitpid(pid, &status, 0) < 0) {
        if (errno != EINTR)
            return hull_error_errno(err, "%s: wait", name);
    }
    int exec_errno = 0;
    ssize_t got = read(exec_fd, &exec_errno, sizeof(exec_errno));
    if (got == (ssize_t)sizeof(exec_errno) && exec_errno != 0)
        return hull_error_set(err, exec_errno, "%s: exec %s: %s", name, h->path,
                              strerror(exec_errno));
    if (WIFEXITED(status) && WEXITSTATUS(status) == 0)
        return 0;
    if (WIFEXITED(status))
        return hull_error_set(err, 0, "%s: %s exited with status %d", name, h->path,
                              WEXITSTATUS(status));
    return hull_error_set(err, 0, "%s: %s killed by signal %d", name, h->path, WTERMSIG(status));
}

int hull_hooks_run(const struct hull_hook *hooks, size_t n, const char *which,
                   const char *state_json, hull_error *err)
{
    for (size_t i = 0; i < n; i++) {
        char name[128];
        snprintf(name, sizeof(name), "hooks.%s[%zu]", which, i);
        if (run_one(&hooks[i], name, state_json, err) < 0)
            return -1;
    }
    return 0;
}

size_t hull_hooks_run_all(const struct hull_hook *hooks, size_t n, const char *which,
                          const char *state_json, const char *context)
{
    size_t failed = 0;
    for (size_t i = 0; i < n; i++) {
        char name[128];
        snprintf(name, sizeof(name), "hooks.%s[%zu]", which, i);
        hull_error e = NULL;
        if (run_one(&hooks[i], name, state_json, &e) < 0) {
            hull_warn("%s: %s", context, hull_error_msg(e));
            hull_error_free(&e);
            failed++;
        }
    }
    return failed;
}

char *hull_hooks_state_with_status(const char *state_json, const char *status)
{
    json_object *o = state_json ? json_tokener_parse(state_json) : NULL;
    if (o == NULL)
        return NULL;
    json_object_object_add(o, "status", json_object_new_string(status));
    char *t = strdup(hj_to_string(o));
    json_object_put(o);
    return t;
}
