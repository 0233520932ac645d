/* linux.cgroupsPath -> a cgroup path, the same in every hierarchy:
 *
 *   unset               /hull/<id>
 *   "/a/b"              /a/b below each hierarchy's root
 *   "a/b"               a/b below the caller's own cgroup in each hierarchy
 *   "slice:prefix:name" systemd's layout, mapped onto cgroupfs: hull does
 *                       not ask systemd for a scope, it makes the directories
 *                       systemd would have made:
 *                       "machine.slice:libpod:abc" -> /machine.slice/libpod-abc.scope
 *                       "a-b.slice:p:n"           -> /a.slice/a-b.slice/p-n.scope
 *
 * A path that climbs out of its base ("../..") is refused rather than
 * clamped, as is one naming the base itself: destroy kills everything in
 * the container's cgroup, so it must never be a cgroup shared with others.
 */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "linux/cgroup_internal.h"
#include "util/error.h"
#include "util/fs.h"

#define FIELD "linux.cgroupsPath"

static bool ends_with(const char *s, const char *suffix)
{
    size_t l = strlen(s), sl = strlen(suffix);
    return l >= sl && strcmp(s + l - sl, suffix) == 0;
}

bool cg_is_systemd_form(const char *s)
{
    const char *c1 = strchr(s, ':');
    const char *c2 = c1 ? strchr(c1 + 1, ':') : NULL;
    if (c2 == NULL || strchr(c2 + 1, ':') != NULL || strchr(s, '/') != NULL)
        return false;
    size_t sl = (size_t)(c1 - s);
    return sl == 0 || (sl > 6 && strncmp(c1 - 6, ".slice", 6) == 0);
}

/* "a-b.slice" -> "/a.slice/a-b.slice"; "-.slice" (the root slice) -> "". */
static int expand_slice(const char *slice, char *out, size_t len, hull_error *err)
{
    out[0] = '\0';
    if (strcmp(slice, "-.slice") == 0)
        return 0;
    size_t stem = strlen(slice) - strlen(".slice");
    if (!ends_with(slice, ".slice") || stem == 0 || slice[0] == '-' || slice[stem - 1] == '-' ||
        strstr(slice, "--") != NULL)
        return hull_error_set(err, EINVAL, FIELD ": '%s' is not a valid systemd slice name", slice);
    size_t o = 0;
    for (size_t i = 0; i <= stem; i++) {
        if (i < stem && slice[i] != '-')
            continue;
        int n = i < stem ? snprintf(out + o, len - o, "/%.*s.slice", (int)i, slice)
                         : snprintf(out + o, len - o, "/%s", slice);
        if (n < 0 || (size_t)n >= len - o)
            return hull_error_set(err, ENAMETOOLONG, FIELD ": slice '%s' is too long", slice);
        o += (size_t)n;
    }
    return 0;
}

static bool bad_part(const char *s)
{
    return strchr(s, '/') != NULL || strcmp(s, ".") == 0 || strcmp(s, "..") == 0;
}

int cg_systemd_path(const char *spec, char **out, hull_error *err)
{
    if (!cg_is_systemd_form(spec))
        return hull_error_set(err, EINVAL, FIELD ": '%s' is not of the form slice:prefix:name",
                              spec);
    char slice[256], prefix[256], name[256];
    const char *c1 = strchr(spec, ':'), *c2 = strchr(c1 + 1, ':');
    if ((size_t)(c1 - spec) >= sizeof(slice) || (size_t)(c2 - c1 - 1) >= sizeof(prefix) ||
        strlen(c2 + 1) >= sizeof(name))
        return hull_error_set(err, ENAMETOOLONG, FIELD ": '%s' is too long", spec);
    snprintf(slice, sizeof(slice), "%.*s", (int)(c1 - spec), spec);
    snprintf(prefix, sizeof(prefix), "%.*s", (int)(c2 - c1 - 1), c1 + 1);
    snprintf(name, sizeof(name), "%s", c2 + 1);
    if (name[0] == '\0' || bad_part(name) || bad_part(prefix))
        return hull_error_set(err, EINVAL, FIELD ": '%s': bad prefix or name", spec);

    char base[PATH_MAX];
    /* An empty slice means the default one for system containers. */
    if (expand_slice(slice[0] ? slice : "system.slice", base, sizeof(base), err) < 0)
        return -1;
    char unit[600];
    if (ends_with(name, ".slice"))
        snprintf(unit, sizeof(unit), "%s", name);
    else if (prefix[0] == '\0')
        snprintf(unit, sizeof(unit), "%s.scope", name);
    else
        snprintf(unit, sizeof(unit), "%s-%s.scope", prefix, name);
    if (asprintf(out, "%s/%s", base, unit) < 0)
        return hull_error_set(err, ENOMEM, "out of memory");
    return 0;
}

void cg_target_clear(struct cg_target *t)
{
    free(t->path);
    memset(t, 0, sizeof(*t));
}

static int clean_below(const char *in, bool relative, struct cg_target *t, hull_error *err)
{
    char joined[PATH_MAX + 2], out[PATH_MAX];
    if (strlen(in) >= PATH_MAX)
        return hull_error_set(err, ENAMETOOLONG, FIELD ": too long");
    snprintf(joined, sizeof(joined), "%s%s", relative ? "/" : "", in);
    if (hull_path_clean(joined, out, sizeof(out)) < 0)
        return hull_error_set(err, EINVAL, FIELD ": '%s' climbs out of the cgroup %s", in,
                              relative ? "it is relative to" : "root");
    if (strcmp(out, "/") == 0)
        return hull_error_set(err, EINVAL,
                              FIELD ": '%s' names %s, not a cgroup of the container's own", in,
                              relative ? "hull's own cgroup" : "the root cgroup");
    t->relative = relative;
    t->path = strdup(relative ? out + 1 : out);
    if (t->path == NULL)
        return hull_error_set(err, ENOMEM, "out of memory");
    return 0;
}

int cg_target_parse(const char *cgroups_path, const char *id, bool systemd, struct cg_target *t,
                    hull_error *err)
{
    memset(t, 0, sizeof(*t));
    if (cgroups_path == NULL || cgroups_path[0] == '\0') {
        if (id == NULL || id[0] == '\0' || bad_part(id))
            return hull_error_set(err, EINVAL, "cgroup: bad container id '%s'", id ? id : "");
        t->is_default = true;
        if (asprintf(&t->path, "/hull/%s", id) < 0)
            return hull_error_set(err, ENOMEM, "out of memory");
        return 0;
    }
    if (systemd || cg_is_systemd_form(cgroups_path)) {
        cleanup_free char *p = NULL;
        if (cg_systemd_path(cgroups_path, &p, err) < 0)
            return -1;
        return clean_below(p, false, t, err);
    }
    if (cgroups_path[0] == '/')
        return clean_below(cgroups_path, false, t, err);
    return clean_below(cgroups_path, true, t, err);
}
