/* The built-in seccomp profile of `hull sandbox run` (container isolation).
 *
 * An allow-list in the spirit of Docker's default profile: whatever is not
 * listed fails with EPERM. It is written as tables of syscall names grouped by
 * purpose, turned into the profile a run uses, and, when printed, into an
 * OCI linux.seccomp JSON document -- the unit test parses that document with
 * the parser a user's --seccomp FILE goes through and checks that it compiles
 * to the same program, so `hull sandbox seccomp-profile > p.json; --seccomp
 * p.json` gives exactly the same filter.
 *
 * Deliberately NOT allowed (they fall to the default EPERM), and why:
 *   kernel attack surface that ordinary programs never need: bpf,
 *     perf_event_open, userfaultfd, io_uring_setup/enter/register, keyctl,
 *     add_key, request_key, modify_ldt, lookup_dcookie, memfd_secret;
 *   leaving or reshaping the sandbox: mount, umount2, pivot_root, chroot,
 *     unshare, setns, the new mount API (fsopen, fsmount, move_mount, ...),
 *     name_to_handle_at, open_by_handle_at (the "shocker" escape);
 *   other processes' memory: ptrace, process_vm_readv/writev, kcmp,
 *     pidfd_getfd, process_madvise, process_mrelease, move_pages,
 *     migrate_pages;
 *   the host's machine state: kexec_load, kexec_file_load, init_module,
 *     finit_module, delete_module, reboot, swapon, swapoff, acct, syslog,
 *     quotactl, clock_settime, clock_adjtime, adjtimex, settimeofday,
 *     sethostname, setdomainname, iopl, ioperm, vhangup, fanotify_*;
 *   obsolete or never implemented: _sysctl, ustat, sysfs, uselib,
 *     create_module, get_kernel_syms, query_module, nfsservctl, vm86,
 *     afs_syscall, tuxcall, security, vserver, getpmsg, putpmsg.
 *
 * Allowed only with conditions:
 *   clone: only without CLONE_NEW* flags (a masked compare of the flags);
 *     clone3 answers ENOSYS because its flags live in memory seccomp cannot
 *     read, and glibc then falls back to clone (as with Docker's profile);
 *   personality: only the query (0xffffffff) and PER_LINUX (0);
 *   socket: AF_UNIX, AF_INET, AF_INET6, and AF_NETLINK with NETLINK_ROUTE
 *     only (what getaddrinfo, `ip` and ifaddrs need; the sandbox's own net
 *     namespace has nothing else). Packet, raw netlink families (netfilter,
 *     audit, uevent...), AF_ALG, AF_VSOCK, bluetooth etc. are refused:
 *     rarely needed by programs and a recurring source of kernel bugs.
 *
 * The filter lists only the native architecture. On x86_64 a 32-bit syscall
 * (int 0x80, sysenter) or an x32 one arrives with another audit arch or the
 * x32 bit, which the filter treats as a bad architecture: the process is
 * killed with SIGSYS (linux/seccomp.c sets that action).
 *
 * The tables themselves are in seccomp_rules.c, shared with the microVM
 * level's agent (src/guest), which applies the same filter in the guest.
 *
 * ioctl is allowed whole: TIOCSTI/TIOCLINUX cannot be singled out reliably
 * against a full allow of ioctl with libseccomp, and the sandbox's process
 * runs in its own session without a controlling terminal of the host.
 */
#include <errno.h>
#include <linux/netlink.h>
#include <pthread.h>
#include <sched.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "linux/seccomp.h"
#include "linux/seccomp_rules.h"
#include "spec/spec.h"
#include "util/error.h"
#include "util/json.h"
#include "util/strv.h"

/* ---- building the JSON document -------------------------------------------- */

static json_object *names_array(const char *const *names)
{
    json_object *a = json_object_new_array();
    for (size_t i = 0; a && names[i]; i++)
        json_object_array_add(a, json_object_new_string(names[i]));
    return a;
}

static json_object *arg(unsigned index, uint64_t value, uint64_t value_two, const char *op)
{
    json_object *o = json_object_new_object();
    json_object_object_add(o, "index", json_object_new_int((int)index));
    json_object_object_add(o, "value", json_object_new_uint64(value));
    json_object_object_add(o, "valueTwo", json_object_new_uint64(value_two));
    json_object_object_add(o, "op", json_object_new_string(op));
    return o;
}

/* One "syscalls" entry; args is a NULL-terminated list of arg objects. */
static json_object *entry(const char *const *names, const char *action, int errno_ret,
                          json_object **args)
{
    json_object *o = json_object_new_object();
    json_object_object_add(o, "names", names_array(names));
    json_object_object_add(o, "action", json_object_new_string(action));
    if (errno_ret >= 0)
        json_object_object_add(o, "errnoRet", json_object_new_int(errno_ret));
    if (args && args[0]) {
        json_object *a = json_object_new_array();
        for (size_t i = 0; args[i]; i++)
            json_object_array_add(a, args[i]);
        json_object_object_add(o, "args", a);
    }
    return o;
}

/* The conditional rules, one entry each: an entry's conditions are AND-ed,
 * several entries for one name are alternatives. */
static json_object *conditional_entries(void)
{
    json_object *a = json_object_new_array();
    for (size_t r = 0; a && r < hull_sbx_rule_count; r++) {
        const struct hull_sbx_rule *rule = &hull_sbx_rules[r];
        const char *names[] = {rule->name, NULL};
        json_object *args[3] = {NULL, NULL, NULL};
        for (unsigned c = 0; c < rule->nconds; c++) {
            const struct hull_sbx_cond *k = &rule->conds[c];
            args[c] = arg(k->index, k->value, k->value_two,
                          k->op == HULL_SBX_MASKED_EQ ? "SCMP_CMP_MASKED_EQ" : "SCMP_CMP_EQ");
        }
        json_object_array_add(a, entry(names,
                                       rule->errno_ret < 0 ? "SCMP_ACT_ALLOW" : "SCMP_ACT_ERRNO",
                                       rule->errno_ret, args));
    }
    return a;
}

static const char *native_arch_name(void)
{
#if defined(__x86_64__)
    return "SCMP_ARCH_X86_64";
#elif defined(__aarch64__)
    return "SCMP_ARCH_AARCH64";
#else
    return "SCMP_ARCH_NATIVE";
#endif
}

static json_object *build_document(void)
{
    json_object *doc = json_object_new_object();
    if (doc == NULL)
        return NULL;
    json_object_object_add(doc, "defaultAction", json_object_new_string("SCMP_ACT_ERRNO"));
    json_object_object_add(doc, "defaultErrnoRet", json_object_new_int(HULL_SBX_DEFAULT_ERRNO));
    json_object *arches = json_object_new_array();
    json_object_array_add(arches, json_object_new_string(native_arch_name()));
    json_object_object_add(doc, "architectures", arches);

    json_object *calls = json_object_new_array();
    size_t total = 0;
    for (size_t g = 0; g < hull_sbx_allow_group_count; g++)
        for (size_t i = 0; hull_sbx_allow_groups[g][i]; i++)
            total++;
    /* One entry for every unconditional name: shortest to read and diff. */
    const char **all = calloc(total + 1, sizeof(*all));
    if (all == NULL || calls == NULL) {
        free(all);
        json_object_put(calls);
        json_object_put(doc);
        return NULL;
    }
    size_t n = 0;
    for (size_t g = 0; g < hull_sbx_allow_group_count; g++)
        for (size_t i = 0; hull_sbx_allow_groups[g][i]; i++)
            all[n++] = hull_sbx_allow_groups[g][i];
    json_object_array_add(calls, entry(all, "SCMP_ACT_ALLOW", -1, NULL));
    free(all);

    json_object *cond = conditional_entries();
    for (size_t i = 0; cond && i < json_object_array_length(cond); i++)
        json_object_array_add(calls, json_object_get(json_object_array_get_idx(cond, i)));
    json_object_put(cond);
    json_object_object_add(doc, "syscalls", calls);
    return doc;
}

/* ---- the same profile, straight from the tables -------------------------------- */

/* What hull_seccomp_parse makes of build_document(), without the document:
 * a run needs only the struct (its filter usually comes from the cache), and
 * building and parsing the JSON was a quarter of the supervisor's user-space
 * instructions. The unit test compiles both and compares the programs. */
static int rule_from(const struct hull_sbx_rule *rule, struct hull_seccomp_rule *r)
{
    r->action = strdup(rule->errno_ret < 0 ? "SCMP_ACT_ALLOW" : "SCMP_ACT_ERRNO");
    r->has_errno_ret = rule->errno_ret >= 0;
    r->errno_ret = rule->errno_ret >= 0 ? (unsigned)rule->errno_ret : 0;
    if (hull_strv_append(&r->names, rule->name) < 0 || r->action == NULL)
        return -1;
    if (rule->nconds == 0)
        return 0;
    if ((r->args = calloc(rule->nconds, sizeof(*r->args))) == NULL)
        return -1;
    r->n_args = rule->nconds;
    for (unsigned c = 0; c < rule->nconds; c++) {
        const struct hull_sbx_cond *k = &rule->conds[c];
        struct hull_seccomp_arg *a = &r->args[c];
        a->index = k->index;
        a->value = k->value;
        a->value_two = k->value_two;
        a->op = strdup(k->op == HULL_SBX_MASKED_EQ ? "SCMP_CMP_MASKED_EQ" : "SCMP_CMP_EQ");
        if (a->op == NULL)
            return -1;
    }
    return 0;
}

static int build_profile(struct hull_seccomp *s)
{
    s->default_action = strdup("SCMP_ACT_ERRNO");
    s->has_default_errno_ret = true;
    s->default_errno_ret = HULL_SBX_DEFAULT_ERRNO;
    if (s->default_action == NULL || hull_strv_append(&s->architectures, native_arch_name()) < 0)
        return -1;
    size_t total = 0;
    for (size_t g = 0; g < hull_sbx_allow_group_count; g++)
        for (size_t i = 0; hull_sbx_allow_groups[g][i]; i++)
            total++;
    if ((s->syscalls = calloc(1 + hull_sbx_rule_count, sizeof(*s->syscalls))) == NULL)
        return -1;
    s->n_syscalls = 1 + hull_sbx_rule_count;
    /* One entry for every unconditional name, as in the document. */
    struct hull_seccomp_rule *all = &s->syscalls[0];
    if ((all->names = calloc(total + 1, sizeof(*all->names))) == NULL ||
        (all->action = strdup("SCMP_ACT_ALLOW")) == NULL)
        return -1;
    size_t n = 0;
    for (size_t g = 0; g < hull_sbx_allow_group_count; g++)
        for (size_t i = 0; hull_sbx_allow_groups[g][i]; i++)
            if ((all->names[n++] = strdup(hull_sbx_allow_groups[g][i])) == NULL)
                return -1;
    for (size_t r = 0; r < hull_sbx_rule_count; r++)
        if (rule_from(&hull_sbx_rules[r], &s->syscalls[1 + r]) < 0)
            return -1;
    return 0;
}

/* ---- the process-wide instances ---------------------------------------------- */

static pthread_once_t once = PTHREAD_ONCE_INIT;
static pthread_once_t text_once = PTHREAD_ONCE_INIT;
static char *document_text;
static struct hull_seccomp profile;
static bool profile_ok;

static void build_once(void)
{
    if (build_profile(&profile) < 0) {
        /* Only memory can fail here; the tables are ours. */
        hull_seccomp_free(&profile);
        return;
    }
    profile_ok = true;
}

const struct hull_seccomp *hull_seccomp_default_sandbox(void)
{
    pthread_once(&once, build_once);
    return profile_ok ? &profile : NULL;
}

/* Printed only when asked for (`hull sandbox seccomp-profile`): a run needs
 * the profile, not a pretty text of it. The text is kept for the process's
 * lifetime (a copy: the document itself goes). */
static void text_once_fn(void)
{
    json_object *document = build_document();
    if (document)
        document_text = strdup(json_object_to_json_string_ext(
            document,
            JSON_C_TO_STRING_PRETTY | JSON_C_TO_STRING_SPACED | JSON_C_TO_STRING_NOSLASHESCAPE));
    json_object_put(document);
}

json_object *hull_seccomp_default_sandbox_document(void)
{
    return build_document();
}

const char *hull_seccomp_default_sandbox_json(void)
{
    pthread_once(&text_once, text_once_fn);
    return document_text;
}
