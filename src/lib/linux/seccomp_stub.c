/* TEMPORARY stand-in until linux/seccomp.c lands. */
#include <errno.h>
#include <stddef.h>

#include "linux/seccomp.h"
#include "util/error.h"

int hull_seccomp_compile(const struct hull_seccomp *spec, struct hull_seccomp_filter **out,
                         hull_error *err)
{
    *out = NULL;
    return hull_error_set(err, ENOTSUP, "linux.seccomp: not supported yet");
}
int hull_seccomp_load(const struct hull_seccomp_filter *f, int *notify_fd, hull_error *err)
{
    return 0;
}
bool hull_seccomp_needs_listener(const struct hull_seccomp_filter *f)
{
    return false;
}
void hull_seccomp_filter_free(struct hull_seccomp_filter *f)
{
}
const struct hull_seccomp *hull_seccomp_default_sandbox(void)
{
    return NULL;
}
