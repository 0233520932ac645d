/* QEMU's host uid (and gid): one of VM_UIDS from VM_UID_BASE, claimed by
 * one VM for its whole life, from create to delete.
 *
 * The kernel keeps some counts per host user (fds in flight over unix
 * sockets, pipe buffer pages, epoll watches, processes): two QEMUs of one
 * uid share them, and one could use them up for the other. The uid used to
 * be a 16-bit hash of the VM's id, so two VMs could have the same one.
 *
 * A claim is a file VM_UID_DIR/<slot> naming the VM's directory, made and
 * removed under an exclusive flock(2) of VM_UID_DIR itself, so concurrent
 * creators never take the same slot. A VM outlives the processes that made
 * it, so the claim is a file, not a held lock: delete removes it. One whose
 * VM is gone (a delete killed half-way, a state root removed by hand) is
 * stale: its directory no longer exists, and the next claim that meets it
 * takes the slot. A directory that exists without a record yet is a VM
 * being created, and keeps its claim.
 *
 * VM_UID_DIR is under /run: after a reboot no claim is left, while VMs in
 * a state root on disk keep the uid they recorded. Each start therefore
 * keeps the VM's claim (vm_uid_keep): its slot is claimed again when free
 * or stale, and when another VM holds it, this VM moves to a free slot.
 * A VM's first choice is the slot of the hash of its id, the uid it had
 * before claims existed.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "util/error.h"
#include "util/fs.h"
#include "util/log.h"
#include "vm/vm.h"

/* The claims directory, locked (an fd to close), made by the first claim. */
static int lock_claims(const char *claims, hull_error *err)
{
    int fd = open(claims, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0 && errno == ENOENT) {
        if (hull_mkdir_p(claims, 0700, err) < 0)
            return hull_error_prefix(err, "QEMU uids");
        fd = open(claims, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    }
    if (fd < 0)
        return hull_error_errno(err, "QEMU uids: %s", claims);
    while (flock(fd, LOCK_EX) < 0) {
        if (errno != EINTR) {
            int e = errno;
            close(fd);
            return hull_error_set(err, e, "QEMU uids: lock %s: %s", claims, strerror(e));
        }
    }
    return fd;
}

enum slot_state { SLOT_FREE, SLOT_MINE, SLOT_TAKEN };

/* Whose slot is: free (no claim, or a stale one, removed here), dir's, or
 * another VM's. */
static int slot_state(int dfd, uint32_t slot, const char *dir, enum slot_state *st, hull_error *err)
{
    char name[16], who[4200];
    snprintf(name, sizeof(name), "%u", slot);
    *st = SLOT_FREE;
    cleanup_close int fd = openat(dfd, name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0 && errno == ENOENT)
        return 0;
    if (fd < 0)
        return hull_error_errno(err, "QEMU uids: %s", name);
    ssize_t n = read(fd, who, sizeof(who) - 1);
    if (n < 0)
        return hull_error_errno(err, "QEMU uids: read %s", name);
    who[n] = '\0';
    who[strcspn(who, "\n")] = '\0';
    if (strcmp(who, dir) == 0) {
        *st = SLOT_MINE;
        return 0;
    }
    struct stat sb;
    /* Only a directory certainly gone frees the slot (a claim left empty
     * by a creator killed while writing it names none). */
    if (who[0] == '/' && (stat(who, &sb) == 0 || errno != ENOENT)) {
        *st = SLOT_TAKEN;
        return 0;
    }
    hull_debug("QEMU uid %u: the claim of %s is stale (gone)", VM_UID_BASE + slot, who);
    if (unlinkat(dfd, name, 0) < 0 && errno != ENOENT)
        return hull_error_errno(err, "QEMU uids: remove the stale %s", name);
    return 0;
}

static int write_claim(int dfd, uint32_t slot, const char *dir, hull_error *err)
{
    char name[16];
    snprintf(name, sizeof(name), "%u", slot);
    cleanup_close int fd =
        openat(dfd, name, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
    size_t len = strlen(dir);
    if (fd < 0 || write(fd, dir, len) != (ssize_t)len || write(fd, "\n", 1) != 1) {
        int e = errno;
        if (fd >= 0)
            unlinkat(dfd, name, 0);
        return hull_error_set(err, e, "QEMU uids: claim %s: %s", name, strerror(e));
    }
    return 0;
}

/* A claim dir already has (*found; stale claims met are removed): a VM
 * made again at a path whose delete was killed half-way gets that one
 * back rather than a second. One claim per VM, so as many files as VMs. */
static int find_mine(int dfd, const char *dir, bool *found, uint32_t *slot, hull_error *err)
{
    *found = false;
    int fd = openat(dfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    DIR *d = fd < 0 ? NULL : fdopendir(fd);
    if (d == NULL) {
        int e = errno;
        if (fd >= 0)
            close(fd);
        return hull_error_set(err, e, "QEMU uids: list the claims: %s", strerror(e));
    }
    struct dirent *de;
    int r = 0;
    while (r == 0 && !*found && (de = readdir(d)) != NULL) {
        char *end;
        unsigned long n = strtoul(de->d_name, &end, 10);
        if (de->d_name[0] < '0' || de->d_name[0] > '9' || *end || n >= VM_UIDS)
            continue;
        enum slot_state st;
        r = slot_state(dfd, (uint32_t)n, dir, &st, err);
        if (r == 0 && st == SLOT_MINE) {
            *found = true;
            *slot = (uint32_t)n;
        }
    }
    closedir(d);
    return r;
}

/* Under the lock: dir's claim, else the first free slot from first on. */
static int claim_locked(int dfd, const char *dir, uint32_t first, uid_t *uid, hull_error *err)
{
    bool found;
    uint32_t mine;
    if (find_mine(dfd, dir, &found, &mine, err) < 0)
        return -1;
    if (found) {
        *uid = (uid_t)(VM_UID_BASE + mine);
        return 0;
    }
    for (uint32_t i = 0; i < VM_UIDS; i++) {
        uint32_t slot = (first + i) % VM_UIDS;
        enum slot_state st;
        if (slot_state(dfd, slot, dir, &st, err) < 0)
            return -1;
        if (st == SLOT_TAKEN)
            continue;
        if (st == SLOT_FREE && write_claim(dfd, slot, dir, err) < 0)
            return -1;
        *uid = (uid_t)(VM_UID_BASE + slot);
        return 0;
    }
    return hull_error_set(err, EAGAIN, "QEMU uids: all %u are in use (one per VM)", VM_UIDS);
}

int vm_uid_claim_at(const char *claims, const char *dir, uint32_t first, uid_t *uid,
                    hull_error *err)
{
    cleanup_close int dfd = lock_claims(claims, err);
    if (dfd < 0)
        return -1;
    return claim_locked(dfd, dir, first % VM_UIDS, uid, err);
}

int vm_uid_keep_at(const char *claims, const char *dir, uid_t *uid, bool *moved, hull_error *err)
{
    *moved = false;
    cleanup_close int dfd = lock_claims(claims, err);
    if (dfd < 0)
        return -1;
    uint32_t first = 0;
    if (*uid >= VM_UID_BASE && *uid - VM_UID_BASE < VM_UIDS) {
        uint32_t slot = *uid - VM_UID_BASE;
        enum slot_state st;
        if (slot_state(dfd, slot, dir, &st, err) < 0)
            return -1;
        if (st == SLOT_MINE)
            return 0;
        if (st == SLOT_FREE)
            return write_claim(dfd, slot, dir, err);
        first = slot + 1;
    }
    uid_t was = *uid;
    if (claim_locked(dfd, dir, first % VM_UIDS, uid, err) < 0)
        return -1;
    *moved = *uid != was;
    return 0;
}

void vm_uid_release_at(const char *claims, const char *dir, uid_t uid)
{
    if (uid < VM_UID_BASE || uid - VM_UID_BASE >= VM_UIDS)
        return;
    hull_error e = NULL;
    cleanup_close int dfd = lock_claims(claims, &e);
    enum slot_state st = SLOT_TAKEN;
    if (dfd >= 0 && slot_state(dfd, uid - VM_UID_BASE, dir, &st, &e) == 0 && st == SLOT_MINE) {
        char name[16];
        snprintf(name, sizeof(name), "%u", uid - VM_UID_BASE);
        if (unlinkat(dfd, name, 0) < 0)
            hull_error_errno(&e, "QEMU uids: release %s", name);
    }
    /* Left behind, a claim is stale once the VM's directory is gone. */
    if (e)
        hull_debug("VM %s: %s", dir, hull_error_msg(e));
    hull_error_free(&e);
}
