/* linux.seccomp -> BPF with libseccomp, and its installation with seccomp(2).
 *
 * Compilation happens in the runtime (parent) process: libseccomp builds the
 * filter, exports the raw BPF into a memfd, and we keep the instructions in
 * memory. The container's init then installs them with one seccomp(2) call,
 * which allocates nothing, so it is safe in a forked child right before
 * execve. Loading ourselves instead of through seccomp_load() also lets us
 * pass kernel flags libseccomp 2.5.4 does not know (WAIT_KILLABLE_RECV).
 *
 * Semantics follow runc where the runtime-spec leaves room:
 *  - a syscall name libseccomp does not know, or that exists on none of the
 *    filter's architectures, is skipped (debug-logged), not refused;
 *  - SCMP_ACT_ERRNO / SCMP_ACT_TRACE without errnoRet return EPERM;
 *  - a rule whose action equals the default action is redundant and skipped;
 *  - when several conditions of one rule test the same argument index,
 *    each condition becomes a rule of its own (libseccomp refuses repeated
 *    indexes in one rule), i.e. they are OR-ed;
 *  - SCMP_ACT_NOTIFY cannot be the default action nor apply to write/sendmsg
 *    (the init needs those to hand the listener fd to the runtime).
 * Syscalls of an architecture not in the filter (32-bit int 0x80 or x32 on
 * x86_64 unless listed) kill the whole process: killing just the thread, the
 * libseccomp default, leaves a multi-threaded program half alive.
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <pthread.h>
#include <seccomp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "linux/seccomp.h"
#include "util/error.h"
#include "util/log.h"

#ifndef SECCOMP_FILTER_FLAG_TSYNC_ESRCH
#define SECCOMP_FILTER_FLAG_TSYNC_ESRCH (1UL << 4)
#endif
#ifndef SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV
#define SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV (1UL << 5)
#endif

#define MAX_ARCHES 24

struct hull_seccomp_filter {
    struct sock_filter *insns;
    unsigned short len;
    unsigned long flags; /* SECCOMP_FILTER_FLAG_* for seccomp(2) */
    bool notify;
    int refs; /* callers + the cache; atomic */
};

/* The context of one compilation. */
struct build {
    scmp_filter_ctx ctx;
    uint32_t default_action;
    uint32_t arches[MAX_ARCHES];
    size_t n_arches;
    size_t n_rules; /* rules actually added */
    bool notify;
};

static long sys_seccomp(unsigned op, unsigned long flags, void *args)
{
    return syscall(SYS_seccomp, op, flags, args);
}

/* ---- actions, operators, flags, architectures ---------------------------- */

static int action_code(const char *name, bool has_errno, unsigned errno_ret, const char *path,
                       uint32_t *out, hull_error *err)
{
    unsigned e = has_errno ? errno_ret : EPERM;
    if (strcmp(name, "SCMP_ACT_ALLOW") == 0)
        *out = SCMP_ACT_ALLOW;
    else if (strcmp(name, "SCMP_ACT_ERRNO") == 0)
        *out = SCMP_ACT_ERRNO(e);
    else if (strcmp(name, "SCMP_ACT_KILL") == 0 || strcmp(name, "SCMP_ACT_KILL_THREAD") == 0)
        *out = SCMP_ACT_KILL_THREAD;
    else if (strcmp(name, "SCMP_ACT_KILL_PROCESS") == 0)
        *out = SCMP_ACT_KILL_PROCESS;
    else if (strcmp(name, "SCMP_ACT_TRAP") == 0)
        *out = SCMP_ACT_TRAP;
    else if (strcmp(name, "SCMP_ACT_TRACE") == 0)
        *out = SCMP_ACT_TRACE(e);
    else if (strcmp(name, "SCMP_ACT_LOG") == 0)
        *out = SCMP_ACT_LOG;
    else if (strcmp(name, "SCMP_ACT_NOTIFY") == 0)
        *out = SCMP_ACT_NOTIFY;
    else
        return hull_error_set(err, EINVAL, "%s: unknown action '%s'", path, name);
    if (has_errno && e > 4095)
        return hull_error_set(err, EINVAL, "%s: errnoRet %u out of range 0..4095", path, e);

    /* Ask the kernel, not just libseccomp: an action it lacks (NOTIFY before
     * 5.0, LOG and KILL_PROCESS before 4.14) must fail here, in the parent,
     * with a message, rather than as EINVAL from the init. */
    uint32_t kact = *out & SECCOMP_RET_ACTION_FULL;
    if (sys_seccomp(SECCOMP_GET_ACTION_AVAIL, 0, &kact) < 0 && errno == EOPNOTSUPP)
        return hull_error_set(err, EOPNOTSUPP, "%s: %s is not supported by this kernel", path,
                              name);
    return 0;
}

static int operator_code(const char *name, enum scmp_compare *out)
{
    static const struct {
        const char *name;
        enum scmp_compare op;
    } ops[] = {
        {"SCMP_CMP_NE", SCMP_CMP_NE},
        {"SCMP_CMP_LT", SCMP_CMP_LT},
        {"SCMP_CMP_LE", SCMP_CMP_LE},
        {"SCMP_CMP_EQ", SCMP_CMP_EQ},
        {"SCMP_CMP_GE", SCMP_CMP_GE},
        {"SCMP_CMP_GT", SCMP_CMP_GT},
        {"SCMP_CMP_MASKED_EQ", SCMP_CMP_MASKED_EQ},
    };
    for (size_t i = 0; i < sizeof(ops) / sizeof(ops[0]); i++)
        if (strcmp(ops[i].name, name) == 0) {
            *out = ops[i].op;
            return 0;
        }
    return -1;
}

static const struct {
    const char *name;
    unsigned long flag;
} flag_names[] = {
    {"SECCOMP_FILTER_FLAG_TSYNC", SECCOMP_FILTER_FLAG_TSYNC},
    {"SECCOMP_FILTER_FLAG_LOG", SECCOMP_FILTER_FLAG_LOG},
    {"SECCOMP_FILTER_FLAG_SPEC_ALLOW", SECCOMP_FILTER_FLAG_SPEC_ALLOW},
    {"SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV", SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV},
};

/* The kernel validates flags before it reads the program, so a NULL program
 * answers EFAULT for a known flag and EINVAL for one it lacks. Nothing is
 * installed either way. */
static bool kernel_has_flags(unsigned long flags)
{
    return sys_seccomp(SECCOMP_SET_MODE_FILTER, flags, NULL) < 0 && errno == EFAULT;
}

static int flags_parse(const struct hull_seccomp *s, bool notify, unsigned long *out,
                       hull_error *err)
{
    *out = 0;
    for (size_t i = 0; s->flags && s->flags[i]; i++) {
        unsigned long f = 0;
        for (size_t j = 0; j < sizeof(flag_names) / sizeof(flag_names[0]); j++)
            if (strcmp(flag_names[j].name, s->flags[i]) == 0)
                f = flag_names[j].flag;
        if (f == 0)
            return hull_error_set(err, EINVAL, "linux.seccomp.flags[%zu]: unknown flag '%s'", i,
                                  s->flags[i]);
        if (f == SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV && !notify) {
            /* Only meaningful for a listener; the kernel refuses it alone. */
            hull_debug("seccomp: %s ignored: no SCMP_ACT_NOTIFY rule", s->flags[i]);
            continue;
        }
        unsigned long probe =
            f == SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV ? f | SECCOMP_FILTER_FLAG_NEW_LISTENER : f;
        if (!kernel_has_flags(probe))
            return hull_error_set(err, EOPNOTSUPP,
                                  "linux.seccomp.flags[%zu]: %s is not supported by this kernel", i,
                                  s->flags[i]);
        *out |= f;
    }
    if (notify) {
        *out |= SECCOMP_FILTER_FLAG_NEW_LISTENER;
        /* With a listener the return value is the fd, so TSYNC must report
         * a failed thread as ESRCH instead of its tid. */
        if (*out & SECCOMP_FILTER_FLAG_TSYNC)
            *out |= SECCOMP_FILTER_FLAG_TSYNC_ESRCH;
    }
    return 0;
}

/* "SCMP_ARCH_X86_64" -> libseccomp's token; 0 when libseccomp lacks it. */
static uint32_t arch_token(const char *name)
{
    if (strcmp(name, "SCMP_ARCH_NATIVE") == 0)
        return seccomp_arch_native();
    if (strncmp(name, "SCMP_ARCH_", 10) != 0)
        return 0;
    char lower[32];
    size_t i = 0;
    for (const char *p = name + 10; *p && i < sizeof(lower) - 1; p++)
        lower[i++] = (char)(*p >= 'A' && *p <= 'Z' ? *p - 'A' + 'a' : *p);
    lower[i] = '\0';
    return seccomp_arch_resolve_name(lower);
}

/* Architectures that cannot occur on this host (unknown to libseccomp, or of
 * the other byte order, which libseccomp cannot mix into one filter) are
 * skipped like unknown syscalls: profiles list every arch of a family. */
static int arches_add(struct build *b, const struct hull_seccomp *s, hull_error *err)
{
    b->arches[b->n_arches++] = seccomp_arch_native();
    for (size_t i = 0; s->architectures && s->architectures[i]; i++) {
        const char *name = s->architectures[i];
        uint32_t tok = arch_token(name);
        if (tok == 0) {
            hull_debug("seccomp: architecture %s unknown to libseccomp, skipped", name);
            continue;
        }
        int rc = seccomp_arch_add(b->ctx, tok);
        if (rc == -EEXIST)
            continue;
        if (rc == -EDOM) {
            hull_debug("seccomp: architecture %s cannot occur on this host, skipped", name);
            continue;
        }
        if (rc < 0)
            return hull_error_set(err, -rc, "linux.seccomp.architectures[%zu]: adding %s", i, name);
        if (b->n_arches < MAX_ARCHES)
            b->arches[b->n_arches++] = tok;
    }
    return 0;
}

/* ---- rules ------------------------------------------------------------------ */

/* Syscall names are [a-z0-9_]; anything else is a typo or garbage and is
 * refused, while a well-formed name this kernel lacks is merely skipped. */
static bool name_well_formed(const char *n)
{
    size_t len = strlen(n);
    if (len == 0 || len > 64)
        return false;
    for (const char *p = n; *p; p++)
        if (!((*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') || *p == '_'))
            return false;
    return true;
}

/* The syscall number to hand libseccomp, or -1 to skip the name. A negative
 * pseudo-number means "not native but maybe on another arch": keep it when
 * one of the filter's arches has it, libseccomp translates per arch. */
static int resolve(const struct build *b, const char *name)
{
    int nr = seccomp_syscall_resolve_name(name);
    if (nr == __NR_SCMP_ERROR)
        return -1;
    if (nr >= 0)
        return nr;
    for (size_t i = 0; i < b->n_arches; i++)
        if (seccomp_syscall_resolve_name_arch(b->arches[i], name) >= 0)
            return nr;
    return -1;
}

static int conditions(const struct hull_seccomp_rule *r, const char *path, struct scmp_arg_cmp *cmp,
                      bool *repeated, hull_error *err)
{
    unsigned seen = 0;
    *repeated = false;
    for (size_t i = 0; i < r->n_args; i++) {
        const struct hull_seccomp_arg *a = &r->args[i];
        enum scmp_compare op;
        if (a->index > 5)
            return hull_error_set(err, EINVAL, "%s.args[%zu].index: %u out of range 0..5", path, i,
                                  a->index);
        if (a->op == NULL || operator_code(a->op, &op) < 0)
            return hull_error_set(err, EINVAL, "%s.args[%zu].op: unknown operator '%s'", path, i,
                                  a->op ? a->op : "");
        /* MASKED_EQ: value is the mask, valueTwo the expected result. */
        cmp[i] = (struct scmp_arg_cmp){
            .arg = a->index, .op = op, .datum_a = a->value, .datum_b = a->value_two};
        if (seen & (1u << a->index))
            *repeated = true;
        seen |= 1u << a->index;
    }
    return 0;
}

static int rule_add(struct build *b, const struct hull_seccomp_rule *r, size_t ri, hull_error *err)
{
    char path[64];
    snprintf(path, sizeof(path), "linux.seccomp.syscalls[%zu]", ri);
    char apath[80];
    snprintf(apath, sizeof(apath), "%s.action", path);

    uint32_t act;
    if (r->action == NULL)
        return hull_error_set(err, EINVAL, "%s: required", apath);
    if (action_code(r->action, r->has_errno_ret, r->errno_ret, apath, &act, err) < 0)
        return -1;
    if (r->names == NULL || r->names[0] == NULL)
        return hull_error_set(err, EINVAL, "%s.names: must be a non-empty array of strings", path);
    if (r->n_args > 64)
        return hull_error_set(err, EINVAL, "%s.args: too many conditions", path);
    struct scmp_arg_cmp cmp[64];
    bool repeated;
    if (conditions(r, path, cmp, &repeated, err) < 0)
        return -1;

    for (size_t i = 0; r->names[i]; i++) {
        const char *name = r->names[i];
        if (!name_well_formed(name))
            return hull_error_set(err, EINVAL, "%s.names[%zu]: malformed syscall name '%s'", path,
                                  i, name);
        if (act == SCMP_ACT_NOTIFY && (strcmp(name, "write") == 0 || strcmp(name, "sendmsg") == 0))
            return hull_error_set(err, EINVAL,
                                  "%s: SCMP_ACT_NOTIFY cannot apply to '%s': the container's "
                                  "init needs it to hand over the listener fd",
                                  apath, name);
    }
    if (act == b->default_action) {
        /* libseccomp refuses it (EACCES) and it changes nothing. */
        hull_debug("seccomp: %s has the default action, skipped", path);
        return 0;
    }
    if (act == SCMP_ACT_NOTIFY)
        b->notify = true;

    for (size_t i = 0; r->names[i]; i++) {
        int nr = resolve(b, r->names[i]);
        if (nr == -1) {
            hull_debug("seccomp: %s.names[%zu]: syscall '%s' unknown on this system, skipped", path,
                       i, r->names[i]);
            continue;
        }
        int rc = 0;
        if (!repeated) {
            rc = seccomp_rule_add_array(b->ctx, act, nr, (unsigned)r->n_args, cmp);
        } else {
            for (size_t j = 0; j < r->n_args && rc == 0; j++)
                rc = seccomp_rule_add_array(b->ctx, act, nr, 1, &cmp[j]);
        }
        if (rc < 0)
            return hull_error_set(err, -rc, "%s: adding the rule for '%s'", path, r->names[i]);
        b->n_rules++;
    }
    return 0;
}

/* ---- compile ---------------------------------------------------------------- */

static int export_bpf(scmp_filter_ctx ctx, struct hull_seccomp_filter *f, hull_error *err)
{
    /* libseccomp 2.5.4 can only export to an fd; a memfd keeps it in RAM. */
    cleanup_close int fd = memfd_create("hull-seccomp-bpf", MFD_CLOEXEC);
    if (fd < 0)
        return hull_error_errno(err, "seccomp: memfd_create");
    int rc = seccomp_export_bpf(ctx, fd);
    if (rc < 0)
        return hull_error_set(err, -rc, "seccomp: exporting the BPF program");
    struct stat st;
    if (fstat(fd, &st) < 0)
        return hull_error_errno(err, "seccomp: fstat");
    size_t n = (size_t)st.st_size / sizeof(struct sock_filter);
    if (st.st_size <= 0 || (size_t)st.st_size % sizeof(struct sock_filter) != 0)
        return hull_error_set(err, EINVAL, "seccomp: exported program has a bad size (%lld)",
                              (long long)st.st_size);
    if (n > BPF_MAXINSNS)
        return hull_error_set(err, E2BIG,
                              "linux.seccomp: the filter needs %zu BPF instructions, the kernel "
                              "allows %d",
                              n, BPF_MAXINSNS);
    f->insns = malloc((size_t)st.st_size);
    if (f->insns == NULL)
        return hull_error_set(err, ENOMEM, "seccomp: out of memory");
    if (pread(fd, f->insns, (size_t)st.st_size, 0) != st.st_size)
        return hull_error_errno(err, "seccomp: reading the BPF program back");
    f->len = (unsigned short)n;
    return 0;
}

static int build_filter(const struct hull_seccomp *s, struct build *b,
                        struct hull_seccomp_filter *f, hull_error *err)
{
    if (s->default_action == NULL)
        return hull_error_set(err, EINVAL, "linux.seccomp.defaultAction: required");
    if (action_code(s->default_action, s->has_default_errno_ret, s->default_errno_ret,
                    "linux.seccomp.defaultAction", &b->default_action, err) < 0)
        return -1;
    if (b->default_action == SCMP_ACT_NOTIFY)
        return hull_error_set(err, EINVAL,
                              "linux.seccomp.defaultAction: SCMP_ACT_NOTIFY cannot be the default "
                              "(the container's init could not hand over the listener fd)");
    b->ctx = seccomp_init(b->default_action);
    if (b->ctx == NULL)
        return hull_error_set(err, ENOMEM, "seccomp: seccomp_init failed");
    int rc = seccomp_attr_set(b->ctx, SCMP_FLTATR_ACT_BADARCH, SCMP_ACT_KILL_PROCESS);
    if (rc < 0)
        return hull_error_set(err, -rc, "seccomp: setting the bad-architecture action");
    if (arches_add(b, s, err) < 0)
        return -1;
    for (size_t i = 0; i < s->n_syscalls; i++)
        if (rule_add(b, &s->syscalls[i], i, err) < 0)
            return -1;
    if (flags_parse(s, b->notify, &f->flags, err) < 0)
        return -1;
    /* A binary search over syscall numbers instead of a linear chain once
     * the list is long (libseccomp <= 2.5.4 mishandles it with no rules). */
    if (b->n_rules > 32 && (rc = seccomp_attr_set(b->ctx, SCMP_FLTATR_CTL_OPTIMIZE, 2)) < 0)
        hull_debug("seccomp: binary tree optimization unavailable: %s", strerror(-rc));
    f->notify = b->notify;
    return export_bpf(b->ctx, f, err);
}

static void filter_destroy(struct hull_seccomp_filter *f)
{
    if (f == NULL)
        return;
    free(f->insns);
    free(f);
}

int hull_seccomp_compile_uncached(const struct hull_seccomp *spec, struct hull_seccomp_filter **out,
                                  hull_error *err)
{
    *out = NULL;
    struct hull_seccomp_filter *f = calloc(1, sizeof(*f));
    if (f == NULL)
        return hull_error_set(err, ENOMEM, "seccomp: out of memory");
    f->refs = 1;
    struct build b = {0};
    int rc = build_filter(spec, &b, f, err);
    if (b.ctx)
        seccomp_release(b.ctx);
    if (rc < 0) {
        filter_destroy(f);
        return -1;
    }
    *out = f;
    return 0;
}

struct hull_seccomp_filter *hull_seccomp_filter_ref(struct hull_seccomp_filter *f)
{
    if (f)
        __atomic_add_fetch(&f->refs, 1, __ATOMIC_RELAXED);
    return f;
}

void hull_seccomp_filter_free(struct hull_seccomp_filter *f)
{
    if (f && __atomic_sub_fetch(&f->refs, 1, __ATOMIC_ACQ_REL) == 0)
        filter_destroy(f);
}

/* ---- load --------------------------------------------------------------------- */

int hull_seccomp_load(const struct hull_seccomp_filter *f, int *notify_fd, hull_error *err)
{
    if (notify_fd)
        *notify_fd = -1;
    /* The program lives in the filter; this is a stack struct pointing at
     * it, so nothing is allocated between fork and execve. */
    struct sock_fprog prog = {.len = f->len, .filter = f->insns};
    long rc = sys_seccomp(SECCOMP_SET_MODE_FILTER, f->flags, &prog);
    if (rc < 0) {
        if (errno == EACCES)
            return hull_error_errno(err, "loading the seccomp filter (needs no_new_privs or "
                                         "CAP_SYS_ADMIN)");
        return hull_error_errno(err, "loading the seccomp filter");
    }
    if (f->notify) {
        if (notify_fd)
            *notify_fd = (int)rc; /* O_CLOEXEC from the kernel */
        else
            close((int)rc);
    } else if (rc > 0) {
        /* TSYNC without a listener: the tid of a thread that could not
         * be synchronised. */
        return hull_error_set(err, ESRCH,
                              "loading the seccomp filter: thread %ld could not "
                              "be synchronised",
                              rc);
    }
    return 0;
}

bool hull_seccomp_needs_listener(const struct hull_seccomp_filter *f)
{
    return f->notify;
}

size_t hull_seccomp_filter_len(const struct hull_seccomp_filter *f)
{
    return f->len;
}

const void *hull_seccomp_filter_insns(const struct hull_seccomp_filter *f)
{
    return f->insns;
}

unsigned long hull_seccomp_filter_flags(const struct hull_seccomp_filter *f)
{
    return f->flags;
}

struct hull_seccomp_filter *hull_seccomp_filter_from_bpf(const void *insns, size_t len,
                                                         unsigned long flags, bool notify)
{
    if (len == 0 || len > BPF_MAXINSNS)
        return NULL;
    struct hull_seccomp_filter *f = calloc(1, sizeof(*f));
    if (f == NULL)
        return NULL;
    f->insns = malloc(len * sizeof(struct sock_filter));
    if (f->insns == NULL) {
        free(f);
        return NULL;
    }
    memcpy(f->insns, insns, len * sizeof(struct sock_filter));
    f->len = (unsigned short)len;
    f->flags = flags;
    f->notify = notify;
    f->refs = 1;
    return f;
}
