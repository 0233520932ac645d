/* Where sandboxes keep their state directories.
 *
 * Every run makes a state directory and removes it when it ends. On a
 * tmpfs that is a few microseconds; on a disk it is not: ext4 gives each
 * new directory a block and, mounted with `discard`, waits for the device
 * to discard that block when the directory goes (0.2-1 ms of every run on
 * the critical path, measured on such a host). /run is a tmpfs on most
 * hosts, and there the state stays in /run/hull/sandbox. Where /run is on
 * a disk, it goes to /dev/shm/hull-sandbox instead: /dev/shm is a tmpfs on
 * every Linux host with glibc's shm_open, and using it mounts nothing.
 *
 * /dev/shm is writable by every user (sticky), so the directory is used
 * only if it is ours: a real directory (not a symlink), owned by us and
 * open to nobody else. In a sticky directory nobody but its owner can
 * rename or remove an entry, so what this check saw stays what it is; a
 * directory somebody else made first is never used (the state stays on
 * /run, slower but safe). Sandboxes never see the host's /dev/shm: theirs
 * is a tmpfs of their own.
 *
 * Both places are searched by the cleanup verbs, so a host whose choice
 * changed (its /dev/shm taken by someone else) still has its leftovers
 * collected.
 */
#include <errno.h>
#include <pthread.h>
#include <linux/magic.h>
#include <stdbool.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <unistd.h>

#include "sandbox/sandbox.h"
#include "util/log.h"

static bool on_tmpfs(const char *path)
{
    struct statfs sf;
    return statfs(path, &sf) == 0 && sf.f_type == TMPFS_MAGIC;
}

/* The /dev/shm directory (made first if make) if it is ours alone. */
static bool shm_root_ours(bool make)
{
    if (!on_tmpfs("/dev/shm"))
        return false;
    /* Safe: mkdir never follows a symlink at its last component and fails
     * with EEXIST on anything already there; lstat below decides. */
    if (make && mkdir(HULL_SANDBOX_SHM_ROOT, 0700) < 0 && errno != EEXIST)
        return false;
    struct stat st;
    if (lstat(HULL_SANDBOX_SHM_ROOT, &st) < 0)
        return false;
    if (!S_ISDIR(st.st_mode) || st.st_uid != geteuid() || (st.st_mode & 077) != 0) {
        hull_debug("%s: not a directory of uid %u alone: not used", HULL_SANDBOX_SHM_ROOT,
                   (unsigned)geteuid());
        return false;
    }
    return true;
}

static const char *chosen_root;

static void choose_root(void)
{
    /* /run/hull/sandbox's own filesystem if it exists, else /run's. */
    bool run_tmpfs = access(HULL_SANDBOX_RUN_ROOT, F_OK) == 0 ? on_tmpfs(HULL_SANDBOX_RUN_ROOT)
                                                              : on_tmpfs("/run");
    chosen_root = !run_tmpfs && shm_root_ours(true) ? HULL_SANDBOX_SHM_ROOT : HULL_SANDBOX_RUN_ROOT;
}

/* Chosen once per process: hulld's threads and a run's pieces agree. */
const char *hull_sandbox_root(void)
{
    static pthread_once_t once = PTHREAD_ONCE_INIT;
    pthread_once(&once, choose_root);
    return chosen_root;
}

/* The root not chosen, for the cleanup verbs; NULL for a /dev/shm
 * directory that is not ours alone (nothing in it is trusted). */
const char *hull_sandbox_other_root(void)
{
    if (strcmp(hull_sandbox_root(), HULL_SANDBOX_SHM_ROOT) == 0)
        return HULL_SANDBOX_RUN_ROOT;
    return shm_root_ours(false) ? HULL_SANDBOX_SHM_ROOT : NULL;
}
