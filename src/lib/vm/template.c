/* Warm start: a new VM restored from a booted template snapshot, as E2B
 * does, instead of a cold boot.
 *
 * A template is keyed by everything that shapes the saved state: the
 * digests of kernel, initrd and rootfs image, the VM's size, the
 * accelerator and the QEMU binary. Any change gives a new key, so a stale
 * template is never restored. One that fails to restore is kept unless it
 * is no longer whole (damaged, or its signature no longer verifies); such
 * a one is replaced by the next cold boot's, renamed over it only once the
 * new one is written. The first VM of a
 * configuration boots cold and is saved as the template on the way (under
 * a lock, so concurrent first uses make it once).
 */
#include <errno.h>
#include <fcntl.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "util/error.h"
#include "util/sha256.h"
#include "util/fs.h"
#include "util/log.h"
#include "vm/vm.h"

static void hull_warn_template(const char *path, const char *why)
{
    hull_warn("template %s: %s", path, why);
}

void vm_template_key(const struct vm *vm, char key[HULL_SHA256_HEX])
{
    char buf[1024];
    struct stat st = {0};
    stat("/usr/bin/qemu-system-x86_64", &st);
    int n = snprintf(buf, sizeof(buf), "hull-template-4\n%s\n%s\n%s\n%llu\n%u\n%s\n%lld.%ld:%lld\n",
                     vm->kernel.bzimage_sha256, vm->initrd.sha256, vm->rootfs.sha256,
                     (unsigned long long)vm->memory_mb, vm->vcpus, vm->accel,
                     (long long)st.st_mtim.tv_sec, st.st_mtim.tv_nsec, (long long)st.st_size);
    /* A guest with a network card is another machine (the card's state is
     * in the snapshot); which network it is on is not: the agent
     * reconfigures the card after every restore. */
    if (vm->network[0])
        n += snprintf(buf + n, sizeof(buf) - (size_t)n, "net\n");
    /* Its agent ports are devices of the saved machine too. */
    if (vm->agent_ports > 1)
        n += snprintf(buf + n, sizeof(buf) - (size_t)n, "agent-ports %u\n", vm->agent_ports);
    unsigned char md[32];
    EVP_Digest(buf, (size_t)n, md, NULL, EVP_sha256(), NULL);
    hull_sha256_to_hex(md, key);
}

/* Undo a failed restore attempt so the same VM can boot cold. */
static void reset_for_boot(struct vm *vm)
{
    vm->status = VM_CREATED;
    vm->failure[0] = 0;
    vm->restored_from[0] = 0;
    vm->pid = 0;
    vm->monitor = 0;
}

int vm_create_from_template(const struct hull_runtime *rt, const struct vm_create_opts *o,
                            struct vm *vm, hull_error *err)
{
    if (vm_create(rt, o, vm, err) < 0)
        return -1;
    int rc;
    {
        cleanup_close int lk = vm_lock(vm, "lock", true, err);
        rc = lk < 0 ? -1 : vm_start_from_template(vm, err);
    }
    if (rc < 0) {
        hull_error e = NULL;
        if (vm_destroy(vm, &e) < 0) {
            /* The start's error is the one to report; name what is left. */
            hull_warn("VM %s: delete after a failed start: %s", vm->id, hull_error_msg(e));
            hull_error_free(&e);
        }
        return -1;
    }
    return 0;
}

/* Restore the template at path into vm; true when it did. A restore can
 * fail for reasons of its own (a QEMU killed, an I/O error, no memory):
 * the template stays, and vm is made ready to boot cold. */
static bool restore_template(struct vm *vm, const char *path)
{
    hull_error e = NULL;
    if (vm_restore_into(vm, path, NULL, &e) == 0)
        return true;
    hull_warn_template(path, hull_error_msg(e));
    hull_error_free(&e);
    reset_for_boot(vm);
    if (vm_save(vm, &e) < 0) {
        /* The cold boot that follows saves the record again. */
        hull_warn_template(path, hull_error_msg(e));
        hull_error_free(&e);
    }
    return false;
}

/* The identity of the file at path (0 when there is none): a template
 * another maker replaced has another. */
static ino_t template_inode(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 ? st.st_ino : 0;
}

/* Is the template at path, which failed to restore, whole? One that is
 * not (damaged, or its signature no longer verifies) is replaced by the
 * next cold boot's; a whole one is kept. */
static bool template_whole(const char *path)
{
    hull_error e = NULL;
    if (vm_snapshot_verify(path, &e) == 0)
        return true;
    hull_warn("template %s is replaced: %s", path, hull_error_msg(e));
    hull_error_free(&e);
    return false;
}

/* Save the freshly booted vm as the template at path. Saving pauses the
 * guest for the copy and resumes it: this VM goes on as the caller's, and
 * its twin is on disk for the next one. */
static void make_template(struct vm *vm, const char *path)
{
    hull_error e = NULL;
    if (vm_snapshot_to(vm, path, &e) < 0) {
        /* Only the next VM's warm start is lost: it makes the template again. */
        hull_warn_template(path, hull_error_msg(e));
        hull_error_free(&e);
    }
    if (vm_save(vm, &e) < 0) {
        /* vm_start saved the running VM already; this adds nothing it needs. */
        hull_warn("VM %s: %s", vm->id, hull_error_msg(e));
        hull_error_free(&e);
    }
}

int vm_start_from_template(struct vm *vm, hull_error *err)
{
    char dir[4096], key[HULL_SHA256_HEX], path[4200], lockp[4200];
    if (vm_cache_subdir("templates", dir, sizeof(dir), err) < 0)
        return -1;
    vm_template_key(vm, key);
    snprintf(path, sizeof(path), "%s/%s.snap", dir, key);
    snprintf(lockp, sizeof(lockp), "%s/%s.lock", dir, key);
    cleanup_close int tl = open(lockp, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
    if (tl < 0)
        return hull_error_errno(err, "lock %s", lockp);
    /* Shared while restoring: `vm cache prune` keeps a template whose lock
     * is held, and must not take it from under this restore. */
    ino_t tried = 0;
    if (access(path, R_OK) == 0) {
        if (flock(tl, LOCK_SH) < 0)
            return hull_error_errno(err, "lock %s", lockp);
        tried = template_inode(path);
        if (restore_template(vm, path))
            return 0;
        /* Released before the exclusive lock: two restores that both
         * failed must not wait for each other's shared lock. */
        (void)flock(tl, LOCK_UN); /* cannot fail on our open descriptor */
    }
    if (flock(tl, LOCK_EX) < 0)
        return hull_error_errno(err, "lock %s", lockp);
    /* Made (or remade) by another while this one waited for the lock? */
    ino_t now = template_inode(path);
    if (now && now != tried && restore_template(vm, path))
        return 0;
    /* A template that failed here but is whole is kept: this VM boots
     * cold without replacing it. */
    bool make = !now || !template_whole(path);
    /* The maker's RAM is a memfd shared with hull, so that the template's
     * RAM can be saved as a file its clones map (ramfile.c). */
    if (make && vm_ram_memfd(vm->memory_mb << 20, &vm->ram_fd, err) < 0)
        return -1;
    vm->ram_open = vm->ram_share = make;
    int rc = vm_start(vm, err);
    if (!rc && make)
        make_template(vm, path);
    if (make)
        close(vm->ram_fd);
    vm->ram_open = vm->ram_share = false;
    return rc;
}
