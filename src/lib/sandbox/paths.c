/* Host paths a policy names, checked before anything is created: the
 * files to copy in, the root, and what the sandbox's root (an unprivileged
 * host uid at container level) can reach and mount over. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "sandbox/sandbox.h"
#include "util/error.h"
#include "util/log.h"
#include "util/proc.h"
#include "util/fs.h"

int hull_sandbox_open_input(const char *path, const char *what, hull_error *err)
{
    /* Opening a FIFO with no writer (or a device that waits) must not
     * hold the run before its limits apply, deaf to signals. */
    int fd = hull_open_input(path);
    if (fd < 0)
        return hull_error_errno(err, "%s %s", what, path);
    return fd;
}

int hull_sandbox_open_regular(const char *path, const char *what, hull_error *err)
{
    int fd = hull_sandbox_open_input(path, what, err);
    if (fd < 0)
        return -1;
    struct stat st;
    if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
        close(fd);
        return hull_error_set(err, EINVAL, "%s %s: not a regular file", what, path);
    }
    return fd;
}

/* A bundle (DIR/config.json + DIR/rootfs) or a plain root directory. */
char *hull_sandbox_resolve_rootfs(const char *dir, hull_error *err)
{
    char *real = realpath(dir, NULL);
    if (real == NULL) {
        hull_error_errno(err, "--rootfs %s", dir);
        return NULL;
    }
    struct stat st;
    if (stat(real, &st) < 0 || !S_ISDIR(st.st_mode)) {
        hull_error_set(err, ENOTDIR, "--rootfs %s: not a directory", dir);
        free(real);
        return NULL;
    }
    char sub[PATH_MAX];
    snprintf(sub, sizeof(sub), "%s/rootfs", real);
    if (stat(sub, &st) == 0 && S_ISDIR(st.st_mode)) {
        snprintf(sub, sizeof(sub), "%s/config.json", real);
        if (access(sub, F_OK) == 0) {
            char *r = NULL;
            if (asprintf(&r, "%s/rootfs", real) < 0)
                r = NULL;
            free(real);
            return r;
        }
    }
    return real;
}

/* The probe of hull_sandbox_reachable, in a child that shares hull's
 * memory (CLONE_VM) while hull waits (CLONE_VFORK): it touches its own
 * stack and, on failure, the suspended parent's errno, nothing else.
 * Only the filesystem ids change (and the supplementary groups go): path
 * lookups are checked with exactly those, and the fs capabilities
 * (CAP_DAC_*) leave the effective set with a non-root fsuid; its uid,
 * euid and saved uid stay root's, so no process of the sandbox's uid may
 * ptrace it or open its memory, which is hull's. Raw system calls: this
 * task alone (glibc's would change every thread's ids). Exits 0 when
 * reachable, the errno when not, 255 when the ids cannot be taken. */
struct reach {
    const char *path;
    long id;
};

static int reach_probe(void *arg)
{
    const struct reach *r = arg;
    const char *path = r->path;
    long id = r->id;
    if (syscall(SYS_setgroups, 0, NULL) < 0)
        syscall(SYS_exit, 255);
    syscall(SYS_setfsgid, id);
    syscall(SYS_setfsuid, id);
    /* Each returns the id in force: the one asked for unless refused. */
    if (syscall(SYS_setfsgid, id) != id || syscall(SYS_setfsuid, id) != id)
        syscall(SYS_exit, 255);
    long fd = syscall(SYS_openat, AT_FDCWD, path, O_PATH | O_CLOEXEC);
    syscall(SYS_exit, fd < 0 ? (errno & 0x7f) : 0);
    return 0;
}

/* Room for reach_probe's system calls many times over. */
#define REACH_STACK 16384

/* At container level the binds and the root are mounted by the sandbox's
 * init as root of its user namespace: on the host an unprivileged uid whose
 * capabilities count for nothing outside. A path that uid cannot reach (a
 * 0700 directory on the way, as /root or a private tmp dir) would fail deep
 * in the setup; find it here by trying the path as that uid, in a child
 * started the way posix_spawn starts one (no page tables copied). The
 * child's change of ids resets the dumpable flag of the memory it shares
 * with us (fs.suid_dumpable): ours is put back as it was. ASan cannot
 * follow a child onto a stack of its own (container/reaper.c): its
 * builds fork. */
int hull_sandbox_reachable(const char *path, uint32_t root_uid, const char *what, hull_error *err)
{
    struct reach r = {path, (long)root_uid};
    int dumpable = prctl(PR_GET_DUMPABLE);
    /* No handler of ours may run in the child, on its stack but in our
     * memory: it is born with every signal blocked (as posix_spawn's). */
    uint64_t old;
    hull_block_all_signals(&old);
#ifdef __SANITIZE_ADDRESS__
    pid_t pid = fork();
    if (pid == 0)
        reach_probe(&r);
#else
    _Alignas(64) char stack[REACH_STACK];
    pid_t pid = clone(reach_probe, stack + sizeof(stack), CLONE_VM | CLONE_VFORK | SIGCHLD, &r);
#endif
    int clone_errno = errno;
    hull_restore_signals(&old);
    errno = clone_errno;
    if (pid < 0)
        return hull_error_errno(err, "clone");
    int st = 0;
    while (waitpid(pid, &st, 0) < 0 && errno == EINTR)
        ;
    /* Only 0 or 1 can be set (and were what we had, unless a core
     * pattern made it 2): anything else is put back as 0, the stricter. */
    if (dumpable >= 0 && prctl(PR_GET_DUMPABLE) != dumpable &&
        prctl(PR_SET_DUMPABLE, dumpable == 1 ? 1 : 0) < 0)
        return hull_error_errno(err, "prctl(PR_SET_DUMPABLE)");
    int e = WIFEXITED(st) ? WEXITSTATUS(st) : 255;
    if (e == 0 || e == 255) /* reachable, or not ours to judge (not root) */
        return 0;
    return hull_error_set(err, e,
                          "%s %s: %s for the sandbox's root (host uid %u, unprivileged outside "
                          "its user namespace); every directory on the way must be searchable "
                          "by others",
                          what, path, strerror(e), root_uid);
}

/* A mount point must already exist where the sandbox cannot create it: in
 * a --rootfs (not ours to change, and not writable by the sandbox's root)
 * and in the host directories the default layout binds read-only. */
int hull_sandbox_check_mountpoint(const char *rootfs, const char *dst, const char *what,
                                  hull_error *err)
{
    if (rootfs == NULL && !hull_sandbox_under_host_dir(dst))
        return 0;
    cleanup_close int rootfd = open(rootfs ? rootfs : "/", O_PATH | O_DIRECTORY | O_CLOEXEC);
    if (rootfd < 0)
        return hull_error_errno(err, "%s", rootfs ? rootfs : "/");
    hull_error e = NULL;
    cleanup_close int fd = hull_resolve_in_root(rootfd, dst, 0, &e);
    if (fd >= 0)
        return 0;
    hull_debug("%s: %s", what, hull_error_msg(e));
    hull_error_free(&e);
    if (rootfs)
        return hull_error_set(err, ENOENT,
                              "%s: %s does not exist in --rootfs %s (the sandbox mounts over "
                              "it but cannot create it there)",
                              what, dst, rootfs);
    return hull_error_set(err, ENOENT,
                          "%s: %s does not exist on the host (it is in a read-only host "
                          "directory, where the sandbox cannot create it)",
                          what, dst);
}

/* /proc, /dev and /tmp of a --rootfs get the sandbox's own mounts, and
 * copy-ins are written into that /tmp: each must be a directory of the
 * rootfs itself. A symlink there (tmp -> /) would put the mount, and the
 * files written into it, somewhere else in the rootfs, which is the
 * user's and stays read-only. */
int hull_sandbox_check_own_mount(const char *rootfs, const char *dst, hull_error *err)
{
    cleanup_close int rootfd = open(rootfs, O_PATH | O_DIRECTORY | O_CLOEXEC);
    if (rootfd < 0)
        return hull_error_errno(err, "--rootfs %s", rootfs);
    hull_error e = NULL;
    cleanup_close int fd =
        hull_resolve_in_root(rootfd, dst, HULL_RESOLVE_NO_SYMLINKS | HULL_RESOLVE_DIRECTORY, &e);
    if (fd >= 0)
        return 0;
    int code = hull_error_code(e);
    hull_debug("--rootfs %s: %s", rootfs, hull_error_msg(e));
    hull_error_free(&e);
    if (code == ELOOP || code == ENOTDIR)
        return hull_error_set(err, code,
                              "--rootfs: %s in %s is %s; it must be a directory of the rootfs "
                              "(the sandbox mounts its own there)",
                              dst, rootfs, code == ELOOP ? "a symlink" : "not a directory");
    return hull_error_set(err, ENOENT,
                          "--rootfs: %s does not exist in --rootfs %s (the sandbox mounts over "
                          "it but cannot create it there)",
                          dst, rootfs);
}
