/* The microvm isolation level: placeholder until the VM backend lands. */
#include <errno.h>

#include "sandbox/sandbox.h"
#include "util/error.h"

static const char *vm_unavailable(void)
{
    return "not available in this build yet";
}

static int vm_run(const struct hull_policy *p, struct hull_result *r, hull_error *err)
{
    (void)p;
    (void)r;
    return hull_error_set(err, ENOTSUP, "isolation microvm: not available in this build yet");
}

const struct hull_sandbox_provider hull_provider_microvm = {
    .name = "microvm",
    .unavailable = vm_unavailable,
    .run = vm_run,
};
