/* ?op=watch of a microVM sandbox's /fs API: the keeper forks a child that
 * holds an agent session of its own running the guest's "watch" (inotify
 * in the guest) and writes its events, checked and rewritten on the host
 * (hull_vm_watch), as NDJSON into a pipe. hulld gets the pipe's read end
 * and streams it as is (sbx_watch.c); when hulld closes it, the child sees
 * the pipe's reader gone, ends its session (the guest's watch ends with
 * it) and exits. The keeper reaps it, and kills what is left at the end.
 * Whether the watch started (a missing directory is the guest's ENOENT)
 * comes back on a second pipe before the keeper answers. */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "procs.h"
#include "util/error.h"
#include "util/fs.h"
#include "util/json.h"

#define VMK_WATCH_MAX 32

static pid_t vmk_watchers[VMK_WATCH_MAX];

void vmk_watch_reap(bool all)
{
    for (int i = 0; i < VMK_WATCH_MAX; i++) {
        if (vmk_watchers[i] <= 0)
            continue;
        /* Our own child, not yet reaped: the pid cannot be another's. */
        if (all)
            kill(vmk_watchers[i], SIGKILL);
        if (waitpid(vmk_watchers[i], NULL, all ? 0 : WNOHANG) == vmk_watchers[i])
            vmk_watchers[i] = 0;
    }
}

int vmk_watch_count(void)
{
    int n = 0;
    for (int i = 0; i < VMK_WATCH_MAX; i++)
        n += vmk_watchers[i] > 0;
    return n;
}

static void started(void *ctx, uint64_t watches)
{
    char line[64];
    int n = snprintf(line, sizeof(line), "{\"ok\":true,\"watch_count\":%llu}",
                     (unsigned long long)watches);
    if (write(*(int *)ctx, line, (size_t)n) < 0)
        _exit(1);
    close(*(int *)ctx);
    *(int *)ctx = -1;
}

static void watch_child(const char *vm, const char *path, bool recursive, int out, int status)
{
    for (int fd = 3; fd < 1024; fd++)
        if (fd != out && fd != status)
            close(fd);
    signal(SIGPIPE, SIG_IGN);
    struct hull_vm_watch_opts o = {
        .path = path, .recursive = recursive, .out_fd = out, .started = started, .ctx = &status};
    hull_error e = NULL;
    if (hull_vm_watch(NULL, vm, &o, &e) < 0 && status >= 0) {
        /* Refused before it started: why, for the keeper's answer. */
        json_object *r = json_object_new_object();
        json_object_object_add(r, "errno", json_object_new_int(hull_error_code(e)));
        json_object_object_add(r, "message", json_object_new_string(hull_error_msg(e)));
        const char *t = json_object_to_json_string(r);
        if (write(status, t, strlen(t)) < 0)
            _exit(1);
        json_object_put(r);
    }
    hull_error_free(&e);
    _exit(0);
}

int vmk_watch(const char *vm, const char *path, bool recursive, json_object **out, int *fd,
              hull_error *err)
{
    vmk_watch_reap(false);
    if (vmk_procs_running() + vmk_watch_count() >= VMK_SESSIONS_MAX)
        return hull_error_set(err, EBUSY,
                              "the sandbox has %d processes and watches running, its most at "
                              "microvm isolation (each holds one of its agent's sessions)",
                              VMK_SESSIONS_MAX);
    int slot = 0;
    while (slot < VMK_WATCH_MAX && vmk_watchers[slot] > 0)
        slot++;
    if (slot == VMK_WATCH_MAX)
        return hull_error_set(err, EBUSY, "the sandbox has %d watches, its most", VMK_WATCH_MAX);
    int data[2], st[2];
    if (pipe2(data, O_CLOEXEC) < 0)
        return hull_error_errno(err, "pipe");
    if (pipe2(st, O_CLOEXEC) < 0) {
        close(data[0]);
        close(data[1]);
        return hull_error_errno(err, "pipe");
    }
    pid_t pid = fork(); /* safe: the keeper has one thread */
    if (pid == 0)
        watch_child(vm, path, recursive, data[1], st[1]);
    close(data[1]);
    close(st[1]);
    if (pid < 0) {
        close(data[0]);
        close(st[0]);
        return hull_error_errno(err, "fork");
    }
    vmk_watchers[slot] = pid;
    /* The child's first word: started, or why not (EOF: it died). */
    char *text = NULL;
    size_t len = 0;
    int rc = hull_read_fd(st[0], &text, &len, err);
    close(st[0]);
    json_object *r = rc == 0 && len ? json_tokener_parse(text) : NULL;
    free(text);
    json_object *en = hj_get(r, "errno");
    if (rc == 0 && (r == NULL || en)) {
        rc = hull_error_set(err, en ? json_object_get_int(en) : EIO, "watch %s: %s", path,
                            r ? json_object_get_string(hj_get(r, "message"))
                              : "the watch ended before it started");
    }
    if (rc < 0) {
        json_object_put(r);
        close(data[0]);
        vmk_watch_reap(false);
        return -1;
    }
    json_object_object_add(r, "ndjson", json_object_new_boolean(1));
    *out = r;
    *fd = data[0];
    return 0;
}
