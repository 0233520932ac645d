/* Writes the keeper makes into a long-lived sandbox's tmpfs on its behalf
 * (an upload, a template's files), charged to the sandbox's memory.
 *
 * The kernel charges a tmpfs page to the memory cgroup of whoever
 * allocates it. Left to the keeper (or hulld), the sandbox's /tmp would
 * hold data that its memory limit never counted: a sandbox of 32 MiB would
 * keep whatever its tmp_size allows. So the allocating is done by a child
 * that stands in the sandbox's memory cgroup, as the first choice of its
 * OOM killer: what does not fit fails, and costs the sandbox's programs
 * nothing. */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include "linux/cgroup.h"
#include "sandbox/session.h"
#include "sandbox/session_fs.h"
#include "util/error.h"
#include "util/fs.h"

int hull_session_charge_self(struct hull_session *s, hull_error *err)
{
    if (s->c.cgroup == NULL)
        return 0;
    /* Our own score, in our own /proc: raising it needs no privilege. */
    if (hull_write_proc_file("/proc/self/oom_score_adj", "1000", 4, err) < 0)
        return -1;
    /* Safe: the caller is a child that only allocates the sandbox's files
     * there, and exits. */
    return hull_cgroup_enter_memory(s->c.cgroup, getpid(), err);
}

int hull_session_paused_for(const struct hull_session *s, const char *what, hull_error *err)
{
    /* A frozen cgroup freezes what joins it (cgroup2: the memory
     * controller's hierarchy is the freezer's). */
    if (s->paused && s->c.cgroup)
        return hull_error_set(err, EBUSY, "%s: the sandbox is paused: resume it first", what);
    return 0;
}

__attribute__((noreturn)) static void child(struct hull_session *s, hull_charged_fn fn, void *arg,
                                            void *out, size_t out_len, int fd)
{
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    hull_error e = NULL;
    int code = 0;
    if (hull_session_charge_self(s, &e) < 0 || fn(s, arg, &e) < 0)
        code = hull_error_code(e) ? hull_error_code(e) : EIO;
    char msg[1024] = "";
    if (code)
        snprintf(msg, sizeof(msg), "%s", hull_error_msg(e));
    /* A write that fails shows the parent a cut answer: it says so. */
    if (hull_pwrite_all(fd, &code, sizeof(code), -1) == 0 &&
        hull_pwrite_all(fd, out, out_len, -1) == 0)
        hull_pwrite_all(fd, msg, strlen(msg), -1);
    _exit(0);
}

int hull_session_charged(struct hull_session *s, const char *what, hull_charged_fn fn, void *arg,
                         void *out, size_t out_len, hull_error *err)
{
    if (s->c.cgroup == NULL)
        return fn(s, arg, err); /* process level: no memory cgroup to charge */
    if (hull_session_paused_for(s, what, err) < 0)
        return -1;
    int p[2];
    if (pipe2(p, O_CLOEXEC) < 0)
        return hull_error_errno(err, "%s: pipe", what);
    pid_t pid = fork();
    if (pid < 0) {
        close(p[0]);
        close(p[1]);
        return hull_error_errno(err, "%s: fork", what);
    }
    if (pid == 0) {
        close(p[0]);
        child(s, fn, arg, out, out_len, p[1]);
    }
    close(p[1]);
    int code = 0;
    char msg[1025];
    size_t got = hull_read_all(p[0], &code, sizeof(code));
    got += hull_read_all(p[0], out, out_len);
    size_t m = hull_read_all(p[0], msg, sizeof(msg) - 1);
    msg[m] = '\0';
    close(p[0]);
    int status = 0;
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
        ;
    if (WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL)
        /* The sandbox's OOM killer took it: its first choice. */
        return hull_error_set(err, ENOSPC, "%s: does not fit in " HULL_FS_MEMORY_NOTE, what);
    if (got != sizeof(code) + out_len || !WIFEXITED(status))
        return hull_error_set(err, EIO, "%s: its process failed", what);
    if (code)
        return hull_error_set(err, code, "%s", msg);
    return 0;
}
