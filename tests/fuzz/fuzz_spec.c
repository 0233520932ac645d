/* config.json: the OCI spec parser (src/lib/spec) and, for a profile that
 * parses, the seccomp compiler that turns linux.seccomp into BPF in memory
 * (nothing is loaded). The input is the file's bytes, not NUL-terminated. */
#include <seccomp.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz.h"
#include "linux/seccomp.h"
#include "spec/spec.h"

/* libseccomp 2.5.4 leaks the rules it drops when a later rule on the same
 * syscall covers them (two rules on one syscall, the second's conditions a
 * subset of the first's: corpus/spec/regress-seccomp-covered-rule); that
 * leak is the library's and is suppressed here. That hull releases every
 * filter context it makes is checked instead: the Makefile links this
 * target with --wrap for seccomp_init and seccomp_release. */
const char *__lsan_default_suppressions(void);
const char *__lsan_default_suppressions(void)
{
    return "leak:libseccomp.so\n";
}

static long contexts; /* made and not released */
scmp_filter_ctx __real_seccomp_init(uint32_t def_action);
void __real_seccomp_release(scmp_filter_ctx ctx);
scmp_filter_ctx __wrap_seccomp_init(uint32_t def_action);
void __wrap_seccomp_release(scmp_filter_ctx ctx);

scmp_filter_ctx __wrap_seccomp_init(uint32_t def_action)
{
    scmp_filter_ctx ctx = __real_seccomp_init(def_action);
    if (ctx)
        contexts++;
    return ctx;
}

void __wrap_seccomp_release(scmp_filter_ctx ctx)
{
    if (ctx)
        contexts--;
    __real_seccomp_release(ctx);
}

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
        FUZZ_CHECK(contexts == 0);
    }
    hull_spec_free(spec);
    return 0;
}
