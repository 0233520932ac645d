/* Mount options of config.json ("ro", "nosuid", "rbind", "mode=755", ...)
 * turned into mount(2) flags, propagation flags, mount_setattr(2) attributes
 * for the recursive variants, and leftover filesystem data. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>

#include "spec/spec.h"
#include "util/error.h"

#ifndef MOUNT_ATTR_NOSYMFOLLOW
#define MOUNT_ATTR_NOSYMFOLLOW 0x00200000
#endif
#ifndef MS_NOSYMFOLLOW
#define MS_NOSYMFOLLOW 256
#endif

enum kind {
    FLAG,
    CLEAR,
    PROPAGATION,
    ATTR_SET,
    ATTR_CLEAR,
    ATTR_ATIME,
    BIND,
    RBIND,
    IGNORE,
    TMPCOPYUP
};

static const struct {
    const char *name;
    enum kind kind;
    unsigned long value;
} options[] = {
    {"defaults", IGNORE, 0},
    {"ro", FLAG, MS_RDONLY},
    {"rw", CLEAR, MS_RDONLY},
    {"suid", CLEAR, MS_NOSUID},
    {"nosuid", FLAG, MS_NOSUID},
    {"dev", CLEAR, MS_NODEV},
    {"nodev", FLAG, MS_NODEV},
    {"exec", CLEAR, MS_NOEXEC},
    {"noexec", FLAG, MS_NOEXEC},
    {"sync", FLAG, MS_SYNCHRONOUS},
    {"async", CLEAR, MS_SYNCHRONOUS},
    {"dirsync", FLAG, MS_DIRSYNC},
    {"remount", FLAG, MS_REMOUNT},
    {"mand", FLAG, MS_MANDLOCK},
    {"nomand", CLEAR, MS_MANDLOCK},
    {"atime", CLEAR, MS_NOATIME},
    {"noatime", FLAG, MS_NOATIME},
    {"diratime", CLEAR, MS_NODIRATIME},
    {"nodiratime", FLAG, MS_NODIRATIME},
    {"relatime", FLAG, MS_RELATIME},
    {"norelatime", CLEAR, MS_RELATIME},
    {"strictatime", FLAG, MS_STRICTATIME},
    {"nostrictatime", CLEAR, MS_STRICTATIME},
    {"silent", FLAG, MS_SILENT},
    {"loud", CLEAR, MS_SILENT},
    {"iversion", FLAG, MS_I_VERSION},
    {"noiversion", CLEAR, MS_I_VERSION},
    {"lazytime", FLAG, MS_LAZYTIME},
    {"nolazytime", CLEAR, MS_LAZYTIME},
    {"acl", FLAG, MS_POSIXACL},
    {"noacl", CLEAR, MS_POSIXACL},
    {"nosymfollow", FLAG, MS_NOSYMFOLLOW},
    {"symfollow", CLEAR, MS_NOSYMFOLLOW},
    {"bind", BIND, 0},
    {"rbind", RBIND, 0},
    {"private", PROPAGATION, MS_PRIVATE},
    {"rprivate", PROPAGATION, MS_PRIVATE | MS_REC},
    {"shared", PROPAGATION, MS_SHARED},
    {"rshared", PROPAGATION, MS_SHARED | MS_REC},
    {"slave", PROPAGATION, MS_SLAVE},
    {"rslave", PROPAGATION, MS_SLAVE | MS_REC},
    {"unbindable", PROPAGATION, MS_UNBINDABLE},
    {"runbindable", PROPAGATION, MS_UNBINDABLE | MS_REC},
    {"rro", ATTR_SET, MOUNT_ATTR_RDONLY},
    {"rrw", ATTR_CLEAR, MOUNT_ATTR_RDONLY},
    {"rnosuid", ATTR_SET, MOUNT_ATTR_NOSUID},
    {"rsuid", ATTR_CLEAR, MOUNT_ATTR_NOSUID},
    {"rnodev", ATTR_SET, MOUNT_ATTR_NODEV},
    {"rdev", ATTR_CLEAR, MOUNT_ATTR_NODEV},
    {"rnoexec", ATTR_SET, MOUNT_ATTR_NOEXEC},
    {"rexec", ATTR_CLEAR, MOUNT_ATTR_NOEXEC},
    {"rnodiratime", ATTR_SET, MOUNT_ATTR_NODIRATIME},
    {"rdiratime", ATTR_CLEAR, MOUNT_ATTR_NODIRATIME},
    /* The atime modes are one field of mount_setattr(2), not bits: each
     * option picks a mode; undoing noatime or strictatime (as mount(2)
     * does without either) leaves the kernel's default, relatime. */
    {"rrelatime", ATTR_ATIME, MOUNT_ATTR_RELATIME},
    {"rnorelatime", ATTR_ATIME, MOUNT_ATTR_RELATIME},
    {"rnoatime", ATTR_ATIME, MOUNT_ATTR_NOATIME},
    {"ratime", ATTR_ATIME, MOUNT_ATTR_RELATIME},
    {"rstrictatime", ATTR_ATIME, MOUNT_ATTR_STRICTATIME},
    {"rnostrictatime", ATTR_ATIME, MOUNT_ATTR_RELATIME},
    {"rnosymfollow", ATTR_SET, MOUNT_ATTR_NOSYMFOLLOW},
    {"rsymfollow", ATTR_CLEAR, MOUNT_ATTR_NOSYMFOLLOW},
    {"tmpcopyup", TMPCOPYUP, 0},
    /* SELinux relabel requests are resolved by the engine before the spec
     * reaches the runtime; accepting them keeps podman's specs working. */
    {"z", IGNORE, 0},
    {"Z", IGNORE, 0},
};

size_t hull_mount_option_count(void)
{
    return sizeof(options) / sizeof(options[0]);
}

const char *hull_mount_option_name(size_t i)
{
    return i < hull_mount_option_count() ? options[i].name : NULL;
}

static int append_data(char **data, const char *opt)
{
    char *n = NULL;
    if (*data == NULL)
        n = strdup(opt);
    else if (asprintf(&n, "%s,%s", *data, opt) < 0)
        n = NULL;
    if (n == NULL)
        return -1;
    free(*data);
    *data = n;
    return 0;
}

int hull_mount_options_parse(struct hull_mount *m, const char *path, hull_error *err)
{
    m->flags = m->clear = m->propagation = 0;
    m->attr_set = m->attr_clr = 0;
    for (char **o = m->options; o && *o; o++) {
        size_t i;
        for (i = 0; i < sizeof(options) / sizeof(options[0]); i++)
            if (strcmp(options[i].name, *o) == 0)
                break;
        if (i == sizeof(options) / sizeof(options[0])) {
            if ((*o)[0] == '\0')
                return hull_error_set(err, EINVAL, "%s.options: empty option", path);
            if (append_data(&m->data, *o) < 0)
                return hull_error_set(err, ENOMEM, "out of memory");
            continue;
        }
        unsigned long v = options[i].value;
        switch (options[i].kind) {
        case FLAG:
            m->flags |= v;
            m->clear &= ~v;
            break;
        case CLEAR:
            m->flags &= ~v;
            m->clear |= v;
            break;
        case PROPAGATION:
            /* Several may be given ("rprivate" then "rshared"); the last wins. */
            m->propagation = v;
            break;
        case ATTR_SET:
            m->attr_set |= v;
            m->attr_clr &= ~v;
            break;
        case ATTR_CLEAR:
            m->attr_clr |= v;
            m->attr_set &= ~v;
            break;
        case ATTR_ATIME:
            /* The kernel takes a new mode only with the whole field cleared. */
            m->attr_set = (m->attr_set & ~(uint64_t)MOUNT_ATTR__ATIME) | v;
            m->attr_clr |= MOUNT_ATTR__ATIME;
            break;
        case BIND:
            m->bind = true;
            break;
        case RBIND:
            m->bind = m->rbind = true;
            break;
        case TMPCOPYUP:
            m->tmpcopyup = true;
            break;
        case IGNORE:
            break;
        }
    }
    /* "bind" as a type (podman writes "type": "bind") means a bind mount. */
    if (m->type && strcmp(m->type, "bind") == 0)
        m->bind = true;
    return 0;
}
