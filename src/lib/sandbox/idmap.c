/* Idmapped mounts made by a container-level sandbox's supervisor, in its
 * private mount namespace (image.c: an image's layers; host_files.c: its
 * binds and --rootfs): mount_setattr(2) takes the mapping as a user
 * namespace, so one is made for it and then left with no process in it.
 */
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "linux/namespaces.h"
#include "sandbox/sandbox.h"
#include "util/error.h"
#include "util/fs.h"
#include "util/log.h"
#include "util/proc.h"

/* Room for userns_hold's three calls many times over. */
#define USERNS_STACK 16384

/* All the helper of hull_idmap_userns touches: its stack and its copy of
 * the hold pipe's fds, on the heap, owned by the caller's struct
 * hull_idmap_helper until the helper is reaped: killed, it may still be on
 * its way out while we go on. */
struct userns_helper {
    int hold[2];
    _Alignas(64) char stack[USERNS_STACK];
};

/* The helper: born in its new user namespace, it only waits for EOF on
 * the hold pipe (the parent is done, or died) and exits. It runs in the
 * parent's memory (CLONE_VM) on a stack of its own, with every signal
 * blocked, concurrently with the parent: so raw system calls only, which
 * touch nothing but its struct userns_helper (not even errno: none fail
 * here but by EBADF/EINTR, and nothing reads errno after). */
static int userns_hold(void *arg)
{
    const struct userns_helper *h = arg;
    char c;
    syscall(SYS_close, h->hold[1]);
    syscall(SYS_read, h->hold[0], &c, 1);
    syscall(SYS_exit, 0);
    return 0;
}

/* A child is cloned into a new user namespace and waits while we write
 * its maps and open it, then is killed. It is reaped later
 * (hull_idmap_reap), not here: waiting for a killed child to be scheduled
 * and die was most of this step's wall time on a busy machine. The child
 * shares our memory (no page tables copied, no copy-on-write faults after)
 * on a stack of its own. ASan cannot follow a child onto a stack of its
 * own (container/reaper.c), so its builds clone as fork does. */
int hull_idmap_userns(const struct hull_id_mapping *m, size_t n, struct hull_idmap_helper *out,
                      hull_error *err)
{
    struct userns_helper *h = aligned_alloc(64, sizeof(*h));
    if (h == NULL)
        return hull_error_set(err, ENOMEM, "out of memory");
    if (pipe2(h->hold, O_CLOEXEC) < 0) {
        free(h);
        return hull_error_errno(err, "pipe");
    }
    /* Blocked in the child from its first instruction: no handler of ours
     * may run on its stack; SIGKILL still ends it. */
    uint64_t old;
    hull_block_all_signals(&old);
#ifdef __SANITIZE_ADDRESS__
    /* As fork, into the new namespace: a copy of our memory. */
    pid_t pid = (pid_t)syscall(SYS_clone, CLONE_NEWUSER | SIGCHLD, NULL, NULL, NULL, 0L);
    if (pid == 0)
        userns_hold(h);
#else
    pid_t pid =
        clone(userns_hold, h->stack + sizeof(h->stack), CLONE_NEWUSER | CLONE_VM | SIGCHLD, h);
#endif
    int clone_errno = errno;
    hull_restore_signals(&old);
    close(h->hold[0]);
    int fd = -1;
    if (pid < 0) {
        errno = clone_errno;
        hull_error_errno(err, "clone a user namespace");
    } else {
        /* The same map for gids: every id is mapped as its uid is. */
        struct hull_linux l = {.uid_mappings = (struct hull_id_mapping *)m,
                               .gid_mappings = (struct hull_id_mapping *)m,
                               .n_uid_mappings = n,
                               .n_gid_mappings = n};
        char path[64];
        snprintf(path, sizeof(path), "/proc/%d/ns/user", (int)pid);
        if (hull_ns_write_id_maps(pid, &l, err) == 0 && (fd = open(path, O_RDONLY | O_CLOEXEC)) < 0)
            hull_error_errno(err, "open %s", path);
    }
    close(h->hold[1]);
    if (pid <= 0) {
        free(h);
        return fd;
    }
    kill(pid, SIGKILL);
    out->pid = pid;
    out->mem = h;
    return fd;
}

void hull_idmap_reap(struct hull_idmap_helper *h, bool wait)
{
    if (h->pid <= 0)
        return;
    pid_t r;
    while ((r = waitpid(h->pid, NULL, wait ? 0 : WNOHANG)) < 0 && errno == EINTR)
        ;
    if (r == 0)
        return; /* still on its way out */
    h->pid = 0;
    free(h->mem);
    h->mem = NULL;
}

int hull_idmap_clone(const char *path, int userns, uint64_t attrs, bool recursive, int *tree,
                     hull_error *err)
{
    *tree = -1;
    unsigned flags = OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC | (recursive ? AT_RECURSIVE : 0);
    cleanup_close int t = open_tree(AT_FDCWD, path, flags);
    if (t < 0)
        return errno == ENOSYS ? 1 : hull_error_errno(err, "clone the mount at %s", path);
    /* A detached copy, seen by no process yet: only ours changes. */
    struct mount_attr a = {.attr_set = MOUNT_ATTR_IDMAP | attrs, .userns_fd = (uint64_t)userns};
    if (mount_setattr(t, "", AT_EMPTY_PATH | (recursive ? AT_RECURSIVE : 0), &a, sizeof(a)) < 0) {
        if (errno == EINVAL || errno == ENOSYS || errno == EOPNOTSUPP || errno == EPERM) {
            hull_debug("idmap %s: %s", path, strerror(errno));
            return 1;
        }
        return hull_error_errno(err, "idmap the mount at %s", path);
    }
    *tree = t;
    t = -1;
    return 0;
}

int hull_idmap_attach(int tree, const char *path, const char *dest, hull_error *err)
{
    /* Only in the supervisor's private mount namespace (a slave of the
     * host's): nothing mounted here propagates back to the host. */
    if (move_mount(tree, "", AT_FDCWD, dest, MOVE_MOUNT_F_EMPTY_PATH) < 0)
        return hull_error_errno(err, "mount the idmapped %s on %s", path, dest);
    return 0;
}

int hull_sandbox_private_mounts(hull_error *err)
{
    /* Slave rather than private: the host's own later unmounts still
     * reach this namespace, so it pins nothing of theirs. */
    if (unshare(CLONE_NEWNS) < 0)
        return hull_error_errno(err, "private mount namespace");
    if (mount(NULL, "/", NULL, MS_REC | MS_SLAVE, NULL) < 0)
        return hull_error_errno(err, "make / a slave");
    return 0;
}
