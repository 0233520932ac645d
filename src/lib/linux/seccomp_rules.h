/* The built-in sandbox filter as plain data, shared by the container level
 * (seccomp_default.c turns it into an OCI profile) and the microVM level
 * (hull-agent, src/guest, compiles it with libseccomp in the guest), so both
 * levels refuse exactly the same calls. Depends on nothing but libc headers:
 * the static guest agent links this file alone. */
#ifndef HULL_LINUX_SECCOMP_RULES_H
#define HULL_LINUX_SECCOMP_RULES_H

#include <stddef.h>
#include <stdint.h>

/* Everything not allowed fails with this errno. */
#define HULL_SBX_DEFAULT_ERRNO 1 /* EPERM */

/* NULL-terminated groups of names allowed without conditions. */
extern const char *const *const hull_sbx_allow_groups[];
extern const size_t hull_sbx_allow_group_count;

enum hull_sbx_op {
    HULL_SBX_EQ,        /* arg == value */
    HULL_SBX_MASKED_EQ, /* (arg & value) == value_two */
};

struct hull_sbx_cond {
    unsigned index;
    enum hull_sbx_op op;
    uint64_t value, value_two;
};

/* One rule: name, with all of conds (AND-ed), gets action. Several rules for
 * one name are alternatives (OR). errno_ret < 0 means allow. */
struct hull_sbx_rule {
    const char *name;
    int errno_ret;
    unsigned nconds;
    struct hull_sbx_cond conds[2];
};

extern const struct hull_sbx_rule hull_sbx_rules[];
extern const size_t hull_sbx_rule_count;

#endif
