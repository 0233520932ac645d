/* The artifact cache: vmlinux files, initramfs images, rootfs images,
 * template snapshots and the snapshot key. Root-only (0700): a VM trusts
 * what it boots from here as much as the files it was measured from. */
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
#include "vm/vm.h"

const char *vm_cache_dir(void)
{
    const char *d = getenv("HULL_VM_CACHE");
    return d && *d && d[0] == '/' && strlen(d) <= 1024 ? d : "/var/cache/hull/vm";
}

int vm_cache_subdir(const char *name, char *out, size_t len, hull_error *err)
{
    if (snprintf(out, len, "%s/%s", vm_cache_dir(), name) >= (int)len)
        return hull_error_set(err, ENAMETOOLONG, "cache directory");
    if (hull_mkdir_p(vm_cache_dir(), 0700, err) < 0)
        return hull_error_prefix(err, "cache directory");
    chmod(vm_cache_dir(), 0700);
    if (mkdir(out, 0755) < 0 && errno != EEXIST)
        return hull_error_errno(err, "mkdir %s", out);
    return 0;
}

int vm_cache_use_lock(bool exclusive, hull_error *err)
{
    char dir[4096], path[4200];
    if (vm_cache_subdir("rootfs", dir, sizeof(dir), err) < 0)
        return -1; /* makes the cache directory (0700) on the way */
    snprintf(path, sizeof(path), "%s/use.lock", vm_cache_dir());
    int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
    if (fd < 0)
        return hull_error_errno(err, "open %s", path);
    while (flock(fd, exclusive ? LOCK_EX : LOCK_SH) < 0) {
        if (errno != EINTR) {
            hull_error_errno(err, "lock %s", path);
            close(fd);
            return -1;
        }
    }
    return fd;
}
