/* config.json: the OCI spec parser (src/lib/spec) and, for a profile that
 * parses, the seccomp compiler that turns linux.seccomp into BPF in memory
 * (nothing is loaded). The input is the file's bytes, not NUL-terminated. */
#include <stdlib.h>
#include <string.h>

#include "fuzz.h"
#include "linux/seccomp.h"
#include "spec/spec.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct hull_spec *spec = NULL;
    hull_error e = NULL;
    int rc = hull_spec_parse((const char *)data, size, "/fuzz/bundle", &spec, &e);
    fuzz_check_error(rc, e);
    if (rc < 0) {
        FUZZ_CHECK(spec == NULL);
        hull_error_free(&e);
        return 0;
    }
    FUZZ_CHECK(spec != NULL && spec->rootfs != NULL);
    /* What the parser promises its callers. */
    if (spec->process) {
        FUZZ_CHECK(spec->process->args && spec->process->args[0]);
        FUZZ_CHECK(spec->process->cwd && spec->process->cwd[0] == '/');
    }
    for (size_t i = 0; i < spec->n_mounts; i++)
        FUZZ_CHECK(spec->mounts[i].destination && spec->mounts[i].destination[0]);
    if (spec->linux_.seccomp) {
        struct hull_seccomp_filter *f = NULL;
        rc = hull_seccomp_compile_uncached(spec->linux_.seccomp, &f, &e);
        fuzz_check_error(rc, e);
        if (rc == 0)
            hull_seccomp_filter_free(f);
        hull_error_free(&e);
    }
    hull_spec_free(spec);
    return 0;
}
