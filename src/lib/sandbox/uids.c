/* Host uids handed to one sandbox at a time, never shared.
 *
 * Process level: without a user namespace the program runs as a host uid,
 * and the kernel's per-uid counters (RLIMIT_NPROC first of all) are that
 * uid's: runs sharing one uid share them, and a fork bomb in one makes a
 * fork in another fail. Each run therefore takes a uid of its own from a
 * range no other part of hull uses.
 *
 * Container level: the kernel charges what a user of a user namespace holds
 * (inotify instances, message queue bytes, pending signals, ...) to that
 * user and also to the namespace's owner in the parent namespace, against
 * the host's per-user limits. Each sandbox's namespace is therefore owned
 * by a uid of its own, from a second range in which no process ever runs
 * (an owner in the parent namespace holds every capability in the child),
 * and its uids are a block of host uids of its own, the owner's slot's:
 * the kernel keeps some counts per host user, not per namespace.
 *
 * The claim is an exclusive flock(2) on a slot file under a root-only
 * directory. The kernel releases it when the last descriptor of the lock
 * goes, however the supervisor ends (SIGKILL included): a stale claim
 * cannot exist, and concurrent hull processes cannot take the same slot
 * (flock is atomic; losing a race means trying the next slot). */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/file.h>
#include <unistd.h>

#include "sandbox/sandbox.h"
#include "util/error.h"
#include "util/fs.h"

/* A range of host uids handed out one per claim. */
struct uid_pool {
    const char *dir;  /* root-only directory of the slots' lock files */
    uint32_t base, n; /* uids base .. base+n-1 */
    const char *what; /* for messages */
    const char *use;
};

static const struct uid_pool process_uids = {HULL_SANDBOX_UID_DIR, HULL_SANDBOX_PROC_UID_BASE,
                                             HULL_SANDBOX_PROC_UIDS, "process isolation",
                                             "host uids for process-level runs"};
static const struct uid_pool owner_uids = {HULL_SANDBOX_OWNER_DIR, HULL_SANDBOX_OWNER_UID_BASE,
                                           HULL_SANDBOX_OWNER_UIDS, "container isolation",
                                           "host uids owning sandboxes' user namespaces"};

static int claim(const struct uid_pool *pool, uint32_t *uid, hull_error *err)
{
    cleanup_close int dir = open(pool->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    /* Made by the first claim (under /run: after each boot, usually). */
    if (dir < 0 && errno == ENOENT) {
        if (hull_mkdir_p(pool->dir, 0700, err) < 0)
            return hull_error_prefix(err, "%s: %s", pool->what, pool->use);
        dir = open(pool->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    }
    if (dir < 0)
        return hull_error_errno(err, "%s: %s", pool->what, pool->dir);
    /* Start where this process's pid points: concurrent supervisors
     * mostly try different slots first. */
    uint32_t first = (uint32_t)getpid() % pool->n;
    for (uint32_t i = 0; i < pool->n; i++) {
        uint32_t slot = (first + i) % pool->n;
        char name[16];
        snprintf(name, sizeof(name), "%u", slot);
        int fd = openat(dir, name, O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0600);
        if (fd < 0)
            return hull_error_errno(err, "%s: %s/%s", pool->what, pool->dir, name);
        if (flock(fd, LOCK_EX | LOCK_NB) == 0) {
            *uid = pool->base + slot;
            return fd;
        }
        int e = errno;
        close(fd);
        if (e != EWOULDBLOCK && e != EINTR)
            return hull_error_set(err, e, "%s: lock %s/%s: %s", pool->what, pool->dir, name,
                                  strerror(e));
    }
    return hull_error_set(err, EAGAIN, "%s: all %u %s are in use (one per concurrent sandbox)",
                          pool->what, pool->n, pool->use);
}

int hull_sandbox_ids_claim(const struct hull_policy *p, struct hull_sandbox_ids *ids,
                           hull_error *err)
{
    *ids = (struct hull_sandbox_ids){.lock = -1, .base = HULL_SANDBOX_UID_BASE};
    if (p->isolation == HULL_ISOLATION_PROCESS)
        return (ids->lock = claim(&process_uids, &ids->base, err)) < 0 ? -1 : 0;
    if (p->isolation != HULL_ISOLATION_CONTAINER)
        return 0;
    if ((ids->lock = claim(&owner_uids, &ids->owner, err)) < 0)
        return -1;
    /* The owner's slot is the block's: held by the same lock. Host files
     * the sandbox uses are idmapped to it (host_files.c). */
    ids->base = HULL_SANDBOX_BLOCKS_BASE +
                (ids->owner - HULL_SANDBOX_OWNER_UID_BASE) * HULL_SANDBOX_ID_RANGE;
    return 0;
}

void hull_sandbox_ids_release(struct hull_sandbox_ids *ids)
{
    hull_closep(&ids->lock);
}
