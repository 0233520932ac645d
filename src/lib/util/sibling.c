/* Companion programs: see sibling.h. */
#include <errno.h>
#include <libgen.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "util/sibling.h"

int hull_find_sibling(const char *name, const char *env, char *out, size_t len, hull_error *err)
{
    const char *e = env ? getenv(env) : NULL;
    if (e && *e) {
        if (snprintf(out, len, "%s", e) >= (int)len)
            return hull_error_set(err, ENAMETOOLONG, "$%s: path too long", env);
        return 0;
    }
    char self[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);
    if (n <= 0)
        return hull_error_errno(err, "find %s: /proc/self/exe", name);
    self[n] = '\0';
    const char *dir = dirname(self);
    static const char *const where[] = {"%s/%s", "%s/../lib/hull/%s"};
    for (size_t i = 0; i < sizeof(where) / sizeof(where[0]); i++) {
        if (snprintf(out, len, where[i], dir, name) >= (int)len)
            return hull_error_set(err, ENAMETOOLONG, "find %s: path too long", name);
        if (access(out, X_OK) == 0)
            return 0;
    }
    return hull_error_set(err, ENOENT,
                          "%s is not installed (looked beside %s and in %s/../lib/hull; "
                          "$%s names another)",
                          name, dir, dir, env ? env : "?");
}
