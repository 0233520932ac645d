/* Host uids for process-level runs: one per run, never shared.
 *
 * Without a user namespace the program runs as a host uid, and the
 * kernel's per-uid counters (RLIMIT_NPROC first of all) are that uid's:
 * runs sharing one uid share them, and a fork bomb in one makes a fork in
 * another fail. Each run therefore takes a uid of its own from a range no
 * other part of hull uses.
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

int hull_sandbox_uid_claim(uint32_t *uid, hull_error *err)
{
    if (hull_mkdir_p(HULL_SANDBOX_UID_DIR, 0700, err) < 0)
        return hull_error_prefix(err, "process isolation: host uids");
    cleanup_close int dir = open(HULL_SANDBOX_UID_DIR, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dir < 0)
        return hull_error_errno(err, "process isolation: %s", HULL_SANDBOX_UID_DIR);
    /* Start where this process's pid points: concurrent supervisors
     * mostly try different slots first. */
    uint32_t first = (uint32_t)getpid() % HULL_SANDBOX_PROC_UIDS;
    for (uint32_t i = 0; i < HULL_SANDBOX_PROC_UIDS; i++) {
        uint32_t slot = (first + i) % HULL_SANDBOX_PROC_UIDS;
        char name[16];
        snprintf(name, sizeof(name), "%u", slot);
        int fd = openat(dir, name, O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0600);
        if (fd < 0)
            return hull_error_errno(err, "process isolation: %s/%s", HULL_SANDBOX_UID_DIR, name);
        if (flock(fd, LOCK_EX | LOCK_NB) == 0) {
            *uid = HULL_SANDBOX_PROC_UID_BASE + slot;
            return fd;
        }
        int e = errno;
        close(fd);
        if (e != EWOULDBLOCK && e != EINTR)
            return hull_error_set(err, e, "process isolation: lock %s/%s: %s", HULL_SANDBOX_UID_DIR,
                                  name, strerror(e));
    }
    return hull_error_set(err, EAGAIN,
                          "process isolation: all %u host uids for process-level runs are in "
                          "use (one per concurrent run)",
                          HULL_SANDBOX_PROC_UIDS);
}
