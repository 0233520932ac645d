/* Internal pieces of the sandbox: the layout (policy -> spec), copy-out,
 * and the isolation-level providers behind hull_sandbox_run(). */
#ifndef HULL_SANDBOX_SANDBOX_H
#define HULL_SANDBOX_SANDBOX_H

#include <stdbool.h>
#include <stdint.h>

#include "hull.h"
#include "linux/mounts.h"
#include "spec/spec.h"

/* The workload's uid (and gid) inside a container-level sandbox. */
#define HULL_SANDBOX_UID 1000u
/* Container uids 0..65535 map to host uids base..base+65535: root inside is
 * an unprivileged nobody outside. */
#define HULL_SANDBOX_ID_RANGE 65536u
#define HULL_SANDBOX_UID_BASE 1000000000u
#define HULL_SANDBOX_MAX_FILES 48
#define HULL_SANDBOX_ROOT "/run/hull/sandbox"
/* Annotation naming a run's supervisor, "pid:starttime". */
#define HULL_SANDBOX_SUPERVISOR_KEY "io.hull.sandbox.supervisor"

struct hull_sandbox_layout {
    struct hull_spec *spec;
    struct hull_rootfs_extras extras;
    struct hull_root_file files[HULL_SANDBOX_MAX_FILES];
    size_t n_files;
    char links[8][256]; /* symlink targets for /bin -> usr/bin and friends */
    size_t n_links;
    char passwd[512], group[256];
    uint32_t uid; /* the workload's uid inside */
};

/* Build the spec (and the files the init writes) for a policy. */
int hull_sandbox_layout(const struct hull_policy *p, const char *empty_root, uint32_t uid_base,
                        struct hull_sandbox_layout *lay, hull_error *err);
void hull_sandbox_layout_free(struct hull_sandbox_layout *lay);

/* Copy sandbox:/tmp/... out of the exported /tmp (tmpfd) to the host path,
 * never following a symlink or a hard link out of the sandbox and never
 * writing anywhere but host. Fills f. */
void hull_sandbox_copy_out(int tmpfd, const struct hull_copy *c, struct hull_copied_file *f);

/* A provider runs a policy at one isolation level. */
struct hull_sandbox_provider {
    const char *name;
    /* NULL when usable, else why not (static string) */
    const char *(*unavailable)(void);
    int (*run)(const struct hull_policy *p, struct hull_result *r, hull_error *err);
};

extern const struct hull_sandbox_provider hull_provider_namespaces; /* process + container */
extern const struct hull_sandbox_provider hull_provider_microvm;

#endif
