/* Choosing the accelerator: KVM when it can really run a guest, TCG else.
 *
 * /dev/kvm existing is not enough: nested setups expose a KVM whose
 * supported CPUID lacks the baseline x86-64 features (SSE3 and friends),
 * and Debian's kernel then hangs early in boot. So "usable" means: the
 * device opens, speaks API 12, makes a VM, and reports SSE2, SSE3 and
 * long mode as supported guest CPUID bits.
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/kvm.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include "util/error.h"
#include "vm/vm.h"

bool vm_kvm_usable(char *why, size_t len)
{
    cleanup_close int kvm = open("/dev/kvm", O_RDWR | O_CLOEXEC);
    if (kvm < 0) {
        snprintf(why, len, "/dev/kvm: %s", strerror(errno));
        return false;
    }
    if (ioctl(kvm, KVM_GET_API_VERSION, 0) != KVM_API_VERSION) {
        snprintf(why, len, "/dev/kvm: unexpected API version");
        return false;
    }
    cleanup_close int vmfd = ioctl(kvm, KVM_CREATE_VM, 0);
    if (vmfd < 0) {
        snprintf(why, len, "KVM_CREATE_VM: %s", strerror(errno));
        return false;
    }
    cleanup_free struct kvm_cpuid2 *c =
        calloc(1, sizeof(*c) + 256 * sizeof(struct kvm_cpuid_entry2));
    if (!c) {
        snprintf(why, len, "KVM_GET_SUPPORTED_CPUID: out of memory");
        return false;
    }
    c->nent = 256;
    if (ioctl(kvm, KVM_GET_SUPPORTED_CPUID, c) < 0) {
        snprintf(why, len, "KVM_GET_SUPPORTED_CPUID: %s", strerror(errno));
        return false;
    }
    uint32_t ecx1 = 0, edx1 = 0, edx81 = 0;
    for (uint32_t i = 0; i < c->nent; i++) {
        if (c->entries[i].function == 1) {
            ecx1 = c->entries[i].ecx;
            edx1 = c->entries[i].edx;
        } else if (c->entries[i].function == 0x80000001)
            edx81 = c->entries[i].edx;
    }
    if (!(edx1 & (1u << 26)) || !(ecx1 & 1u) || !(edx81 & (1u << 29))) {
        snprintf(why, len,
                 "KVM offers guests no SSE2/SSE3/long mode (a nested KVM that cannot boot Linux)");
        return false;
    }
    return true;
}

int vm_accel_resolve(const char *want, char out[8], hull_error *err)
{
    if (!want || !*want)
        want = getenv("HULL_VM_ACCEL");
    if (!want || !*want)
        want = "auto";
    char why[256] = "";
    if (strcmp(want, "tcg") == 0) {
        strcpy(out, "tcg");
        return 0;
    }
    if (strcmp(want, "kvm") == 0) {
        if (!vm_kvm_usable(why, sizeof(why)))
            return hull_error_set(err, ENODEV, "accelerator kvm: %s", why);
        strcpy(out, "kvm");
        return 0;
    }
    if (strcmp(want, "auto") == 0) {
        strcpy(out, vm_kvm_usable(why, sizeof(why)) ? "kvm" : "tcg");
        return 0;
    }
    return hull_error_set(err, EINVAL, "accelerator \"%s\": must be kvm, tcg or auto", want);
}
