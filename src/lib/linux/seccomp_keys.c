/* The seccomp profile of the sandbox's process level: every system call
 * allowed but the kernel's key management (add_key, request_key, keyctl),
 * which fails with EPERM as at the container level.
 *
 * Why only these: a process-level run is a host uid from a pool of 1024
 * (sandbox/uids.c) that later runs are given again, and the kernel keeps a
 * uid's user keyring (@u), user session keyring (@us) and persistent
 * keyring after its last process is gone: a key one run stores there is
 * read by the next run given that uid, and one run can fill the uid's key
 * quota for all that follow. Nothing else a process of the level can make
 * outlives it (its namespaces, tmpfs and processes go with the run).
 *
 * Every architecture the machine runs is listed (on x86_64 also x86 and
 * x32), so a 32-bit program is refused the same calls rather than killed:
 * the level runs trusted code as it is. */
#include <stdlib.h>
#include <string.h>

#include <pthread.h>

#include "linux/seccomp.h"
#include "linux/seccomp_rules.h"
#include "spec/spec.h"
#include "util/json.h"
#include "util/strv.h"

static const char *const key_calls[] = {"add_key", "request_key", "keyctl", NULL};

static const char *const arches[] = {
#if defined(__x86_64__)
    "SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32",
#elif defined(__aarch64__)
    "SCMP_ARCH_AARCH64", "SCMP_ARCH_ARM",
#else
    "SCMP_ARCH_NATIVE",
#endif
    NULL};

static pthread_once_t once = PTHREAD_ONCE_INIT;
static struct hull_seccomp profile;
static bool profile_ok;

static int build(struct hull_seccomp *s)
{
    if ((s->default_action = strdup("SCMP_ACT_ALLOW")) == NULL ||
        (s->architectures = hull_strv_dup((char *const *)arches)) == NULL ||
        (s->syscalls = calloc(1, sizeof(*s->syscalls))) == NULL)
        return -1;
    s->n_syscalls = 1;
    struct hull_seccomp_rule *r = &s->syscalls[0];
    r->has_errno_ret = true;
    r->errno_ret = HULL_SBX_DEFAULT_ERRNO;
    if ((r->action = strdup("SCMP_ACT_ERRNO")) == NULL ||
        (r->names = hull_strv_dup((char *const *)key_calls)) == NULL)
        return -1;
    return 0;
}

static void build_once(void)
{
    if (build(&profile) < 0) {
        /* Only memory can fail here; the tables are ours. */
        hull_seccomp_free(&profile);
        return;
    }
    profile_ok = true;
}

static json_object *strings(const char *const *v)
{
    json_object *a = json_object_new_array();
    for (size_t i = 0; a && v[i]; i++)
        json_object_array_add(a, json_object_new_string(v[i]));
    return a;
}

json_object *hull_seccomp_process_sandbox_document(void)
{
    json_object *doc = json_object_new_object(), *rule = json_object_new_object(),
                *rules = json_object_new_array();
    if (doc == NULL || rule == NULL || rules == NULL) {
        json_object_put(doc);
        json_object_put(rule);
        json_object_put(rules);
        return NULL;
    }
    json_object_object_add(rule, "names", strings(key_calls));
    json_object_object_add(rule, "action", json_object_new_string("SCMP_ACT_ERRNO"));
    json_object_object_add(rule, "errnoRet", json_object_new_int(HULL_SBX_DEFAULT_ERRNO));
    json_object_array_add(rules, rule);
    json_object_object_add(doc, "defaultAction", json_object_new_string("SCMP_ACT_ALLOW"));
    json_object_object_add(doc, "architectures", strings(arches));
    json_object_object_add(doc, "syscalls", rules);
    return doc;
}

const struct hull_seccomp *hull_seccomp_process_sandbox(void)
{
    pthread_once(&once, build_once);
    return profile_ok ? &profile : NULL;
}
