/* linux.seccomp: parsed and checked here, compiled by linux/seccomp.c.
 * Names of actions, operators, architectures and flags are checked against
 * the runtime-spec lists so a typo is an error naming its path; syscall names
 * are only checked for shape, because a name this kernel lacks is skipped at
 * load time (as runc does), not refused. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "spec/spec.h"
#include "util/error.h"
#include "util/json.h"
#include "util/strv.h"

static const char *const actions[] = {"SCMP_ACT_KILL",        "SCMP_ACT_KILL_PROCESS",
                                      "SCMP_ACT_KILL_THREAD", "SCMP_ACT_TRAP",
                                      "SCMP_ACT_ERRNO",       "SCMP_ACT_TRACE",
                                      "SCMP_ACT_ALLOW",       "SCMP_ACT_LOG",
                                      "SCMP_ACT_NOTIFY",      NULL};

static const char *const operators[] = {"SCMP_CMP_NE",        "SCMP_CMP_LT", "SCMP_CMP_LE",
                                        "SCMP_CMP_EQ",        "SCMP_CMP_GE", "SCMP_CMP_GT",
                                        "SCMP_CMP_MASKED_EQ", NULL};

static const char *const arches[] = {"SCMP_ARCH_NATIVE",
                                     "SCMP_ARCH_X86",
                                     "SCMP_ARCH_X86_64",
                                     "SCMP_ARCH_X32",
                                     "SCMP_ARCH_ARM",
                                     "SCMP_ARCH_AARCH64",
                                     "SCMP_ARCH_LOONGARCH64",
                                     "SCMP_ARCH_M68K",
                                     "SCMP_ARCH_MIPS",
                                     "SCMP_ARCH_MIPS64",
                                     "SCMP_ARCH_MIPS64N32",
                                     "SCMP_ARCH_MIPSEL",
                                     "SCMP_ARCH_MIPSEL64",
                                     "SCMP_ARCH_MIPSEL64N32",
                                     "SCMP_ARCH_PPC",
                                     "SCMP_ARCH_PPC64",
                                     "SCMP_ARCH_PPC64LE",
                                     "SCMP_ARCH_S390",
                                     "SCMP_ARCH_S390X",
                                     "SCMP_ARCH_SH",
                                     "SCMP_ARCH_SHEB",
                                     "SCMP_ARCH_PARISC",
                                     "SCMP_ARCH_PARISC64",
                                     "SCMP_ARCH_RISCV64",
                                     NULL};

static const char *const flags[] = {"SECCOMP_FILTER_FLAG_TSYNC", "SECCOMP_FILTER_FLAG_LOG",
                                    "SECCOMP_FILTER_FLAG_SPEC_ALLOW",
                                    "SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV", NULL};

const char *const *hull_seccomp_action_names(void)
{
    return actions;
}

const char *const *hull_seccomp_operator_names(void)
{
    return operators;
}

const char *const *hull_seccomp_arch_names(void)
{
    return arches;
}

const char *const *hull_seccomp_flag_names(void)
{
    return flags;
}

static bool in_list(const char *const *list, const char *s)
{
    for (; *list; list++)
        if (strcmp(*list, s) == 0)
            return true;
    return false;
}

static int check_list(char **v, const char *const *allowed, const char *p, const char *what,
                      hull_error *err)
{
    for (size_t i = 0; v && v[i]; i++)
        if (!in_list(allowed, v[i]))
            return hull_error_set(err, EINVAL, "%s[%zu]: unknown %s '%s'", p, i, what, v[i]);
    return 0;
}

static int rule_parse(json_object *e, const char *ep, struct hull_seccomp_rule *r, hull_error *err)
{
    char p[700], ap[800];
    size_t nnames = 0;
    int64_t eret = 0;
    if (hj_require_object(e, ep, err) < 0 ||
        hj_string_array(e, ep, "names", &r->names, &nnames, err) < 0 ||
        hj_string(e, ep, "action", true, &r->action, err) < 0 ||
        hj_int_range(e, ep, "errnoRet", 0, 4095, &eret, &r->has_errno_ret, err) < 0)
        return -1;
    if (nnames == 0)
        return hull_error_set(err, EINVAL, "%s.names: must be a non-empty array of strings", ep);
    for (size_t i = 0; i < nnames; i++)
        if (r->names[i][0] == '\0')
            return hull_error_set(err, EINVAL, "%s.names[%zu]: empty syscall name", ep, i);
    if (!in_list(actions, r->action))
        return hull_error_set(err, EINVAL, "%s.action: unknown action '%s'", ep, r->action);
    r->errno_ret = (unsigned)eret;

    json_object *args = hj_get(e, "args");
    if (args == NULL)
        return 0;
    hj_path(p, sizeof(p), ep, "args");
    if (hj_require_array(args, p, err) < 0)
        return -1;
    size_t n = json_object_array_length(args);
    r->args = calloc(n ? n : 1, sizeof(*r->args));
    if (r->args == NULL)
        return hull_error_set(err, ENOMEM, "out of memory");
    r->n_args = n;
    for (size_t i = 0; i < n; i++) {
        struct hull_seccomp_arg *a = &r->args[i];
        json_object *ae = json_object_array_get_idx(args, i);
        hj_path_index(ap, sizeof(ap), p, i);
        int64_t idx = 0;
        bool hi, hv;
        if (hj_require_object(ae, ap, err) < 0 ||
            hj_int_range(ae, ap, "index", 0, 5, &idx, &hi, err) < 0 ||
            hj_uint64(ae, ap, "value", &a->value, &hv, err) < 0 ||
            hj_uint64(ae, ap, "valueTwo", &a->value_two, NULL, err) < 0 ||
            hj_string(ae, ap, "op", true, &a->op, err) < 0)
            return -1;
        if (!hi)
            return hull_error_set(err, EINVAL, "%s.index: required", ap);
        if (!hv)
            return hull_error_set(err, EINVAL, "%s.value: required", ap);
        if (!in_list(operators, a->op))
            return hull_error_set(err, EINVAL, "%s.op: unknown operator '%s'", ap, a->op);
        a->index = (unsigned)idx;
    }
    return 0;
}

int hull_seccomp_parse(json_object *obj, const char *path, struct hull_seccomp *s, hull_error *err)
{
    char p[512], ep[600];
    int64_t eret = 0;
    if (hj_require_object(obj, path, err) < 0 ||
        hj_string(obj, path, "defaultAction", true, &s->default_action, err) < 0 ||
        hj_int_range(obj, path, "defaultErrnoRet", 0, 4095, &eret, &s->has_default_errno_ret, err) <
            0 ||
        hj_string_array(obj, path, "architectures", &s->architectures, NULL, err) < 0 ||
        hj_string_array(obj, path, "flags", &s->flags, NULL, err) < 0 ||
        hj_string(obj, path, "listenerPath", false, &s->listener_path, err) < 0 ||
        hj_string(obj, path, "listenerMetadata", false, &s->listener_metadata, err) < 0)
        return -1;
    s->default_errno_ret = (unsigned)eret;
    if (!in_list(actions, s->default_action))
        return hull_error_set(err, EINVAL, "%s: unknown action '%s'",
                              hj_path(p, sizeof(p), path, "defaultAction"), s->default_action);
    if (check_list(s->architectures, arches, hj_path(p, sizeof(p), path, "architectures"),
                   "architecture", err) < 0 ||
        check_list(s->flags, flags, hj_path(p, sizeof(p), path, "flags"), "flag", err) < 0)
        return -1;

    json_object *arr = hj_get(obj, "syscalls");
    if (arr == NULL)
        return 0;
    hj_path(p, sizeof(p), path, "syscalls");
    if (hj_require_array(arr, p, err) < 0)
        return -1;
    size_t n = json_object_array_length(arr);
    s->syscalls = calloc(n ? n : 1, sizeof(*s->syscalls));
    if (s->syscalls == NULL)
        return hull_error_set(err, ENOMEM, "out of memory");
    s->n_syscalls = n;
    for (size_t i = 0; i < n; i++) {
        hj_path_index(ep, sizeof(ep), p, i);
        if (rule_parse(json_object_array_get_idx(arr, i), ep, &s->syscalls[i], err) < 0)
            return -1;
    }
    return 0;
}

void hull_seccomp_free(struct hull_seccomp *s)
{
    if (s == NULL)
        return;
    free(s->default_action);
    hull_strv_free(s->architectures);
    hull_strv_free(s->flags);
    free(s->listener_path);
    free(s->listener_metadata);
    for (size_t i = 0; i < s->n_syscalls; i++) {
        struct hull_seccomp_rule *r = &s->syscalls[i];
        hull_strv_free(r->names);
        free(r->action);
        for (size_t j = 0; j < r->n_args; j++)
            free(r->args[j].op);
        free(r->args);
    }
    free(s->syscalls);
    memset(s, 0, sizeof(*s));
}
