/* A snapshot of a running VM made to be restored many times, its guest RAM
 * shared copy-on-write by every restore (ramfile.c, ramkeeper.c) as the
 * clones of a configuration's template share theirs (template.c).
 *
 * A VM that is itself a clone maps its RAM private, so there is no shared
 * memfd of it to copy out: its state is first saved the ordinary way (RAM
 * in the stream), restored into a VM of its own whose RAM is a memfd hull
 * shares with it, and that VM saved as a template's maker is: the stream
 * without the RAM, and the RAM as <file>.ram (digest in the signed
 * manifest). The intermediate VM and stream are removed on every path; the
 * source VM runs on (paused only for its own save). The verb that drives
 * this, hull_vm_snapshot_shared, is api.c's. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "util/error.h"
#include "util/fs.h"
#include "util/log.h"
#include "vm/vm.h"

/* The intermediate VM: restored from stream, saved to file, destroyed. */
int vm_template_reshare(const struct hull_runtime *rt, const char *id, uint64_t memory_mb,
                        const char *stream, const char *file, hull_error *err)
{
    struct vm vm;
    memset(&vm, 0, sizeof(vm));
    vm.ram_fd = vm.image_hold_fd = -1;
    if (snprintf(vm.id, sizeof(vm.id), "%s.tpl", id) >= (int)sizeof(vm.id) ||
        vm_id_validate(vm.id, err) < 0 || vm_dir_of(rt, vm.id, vm.dir, sizeof(vm.dir), err) < 0)
        return hull_error_set(err, EINVAL, "VM id %s: too long for a template's copy", id);
    if (access(vm.dir, F_OK) == 0)
        return hull_error_set(err, EEXIST, "VM %s exists already", vm.id);
    if (vm_make_dirs(&vm, err) < 0)
        return -1;
    int rc;
    {
        cleanup_close int lk = vm_lock(&vm, "lock", false, err);
        /* RAM shared with hull: QEMU loads the stream into it, and it is
         * what the save below copies out (ram_open/ram_share, as the maker
         * of a configuration's template). restore_into closes its copy. */
        cleanup_close int mem = -1;
        rc = lk < 0 ? -1 : vm_ram_memfd(memory_mb << 20, &mem, err);
        if (!rc) {
            vm.memory_mb = memory_mb;
            vm.ram_fd = fcntl(mem, F_DUPFD_CLOEXEC, 3);
            rc = vm.ram_fd < 0 ? hull_error_errno(err, "dup") : 0;
        }
        if (!rc) {
            vm.ram_open = vm.ram_share = true;
            rc = vm_restore_into(&vm, stream, NULL, err);
        }
        if (!rc) {
            vm.ram_fd = mem;
            vm.ram_open = vm.ram_share = true;
            rc = vm_snapshot_to(&vm, file, err);
            vm.ram_open = vm.ram_share = false;
        }
    }
    hull_error e = NULL;
    if (vm_destroy(&vm, &e) < 0) {
        /* The save's own result stands; name what is left. */
        hull_warn("template copy: %s", hull_error_msg(e));
        hull_error_free(&e);
    }
    return rc;
}
