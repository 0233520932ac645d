/* Name tables shared by the spec parser and the mechanisms. */
#include <ctype.h>
#include <sched.h>
#include <string.h>
#include <strings.h>
#include <sys/resource.h>

#include "spec/spec.h"

#ifndef CLONE_NEWTIME
#define CLONE_NEWTIME 0x00000080
#endif

static const struct {
    const char *spec, *proc;
    int flag;
} ns_table[HULL_NS_COUNT] = {
    [HULL_NS_PID] = {"pid", "pid", CLONE_NEWPID},
    [HULL_NS_NET] = {"network", "net", CLONE_NEWNET},
    [HULL_NS_MNT] = {"mount", "mnt", CLONE_NEWNS},
    [HULL_NS_IPC] = {"ipc", "ipc", CLONE_NEWIPC},
    [HULL_NS_UTS] = {"uts", "uts", CLONE_NEWUTS},
    [HULL_NS_USER] = {"user", "user", CLONE_NEWUSER},
    [HULL_NS_CGROUP] = {"cgroup", "cgroup", CLONE_NEWCGROUP},
    [HULL_NS_TIME] = {"time", "time", CLONE_NEWTIME},
};

const char *hull_ns_name(enum hull_ns_type t)
{
    return ns_table[t].spec;
}

const char *hull_ns_proc_name(enum hull_ns_type t)
{
    return ns_table[t].proc;
}

int hull_ns_clone_flag(enum hull_ns_type t)
{
    return ns_table[t].flag;
}

static const struct {
    const char *name;
    int resource;
} rlimit_table[] = {
    {"RLIMIT_AS", RLIMIT_AS},
    {"RLIMIT_CORE", RLIMIT_CORE},
    {"RLIMIT_CPU", RLIMIT_CPU},
    {"RLIMIT_DATA", RLIMIT_DATA},
    {"RLIMIT_FSIZE", RLIMIT_FSIZE},
    {"RLIMIT_LOCKS", RLIMIT_LOCKS},
    {"RLIMIT_MEMLOCK", RLIMIT_MEMLOCK},
    {"RLIMIT_MSGQUEUE", RLIMIT_MSGQUEUE},
    {"RLIMIT_NICE", RLIMIT_NICE},
    {"RLIMIT_NOFILE", RLIMIT_NOFILE},
    {"RLIMIT_NPROC", RLIMIT_NPROC},
    {"RLIMIT_RSS", RLIMIT_RSS},
    {"RLIMIT_RTPRIO", RLIMIT_RTPRIO},
    {"RLIMIT_RTTIME", RLIMIT_RTTIME},
    {"RLIMIT_SIGPENDING", RLIMIT_SIGPENDING},
    {"RLIMIT_STACK", RLIMIT_STACK},
};

int hull_rlimit_from_name(const char *name)
{
    for (size_t i = 0; i < sizeof(rlimit_table) / sizeof(rlimit_table[0]); i++)
        if (strcmp(rlimit_table[i].name, name) == 0)
            return rlimit_table[i].resource;
    return -1;
}

bool hull_cap_name_ok(const char *name)
{
    if (strncasecmp(name, "CAP_", 4) != 0 || name[4] == '\0')
        return false;
    for (const char *c = name + 4; *c; c++)
        if (!(isalnum((unsigned char)*c) || *c == '_'))
            return false;
    return true;
}

/* process.scheduler: runtime-spec names to the kernel's values. */
static const struct {
    const char *name;
    int policy;
} policies[] = {
    {"SCHED_OTHER", 0}, {"SCHED_FIFO", 1}, {"SCHED_RR", 2},
    {"SCHED_BATCH", 3}, {"SCHED_IDLE", 5}, {"SCHED_DEADLINE", 6},
};

static const struct {
    const char *name;
    unsigned long long bit;
} flags[] = {
    {"SCHED_FLAG_RESET_ON_FORK", 0x01},  {"SCHED_FLAG_RECLAIM", 0x02},
    {"SCHED_FLAG_DL_OVERRUN", 0x04},     {"SCHED_FLAG_KEEP_POLICY", 0x08},
    {"SCHED_FLAG_KEEP_PARAMS", 0x10},    {"SCHED_FLAG_UTIL_CLAMP_MIN", 0x20},
    {"SCHED_FLAG_UTIL_CLAMP_MAX", 0x40},
};

int hull_sched_policy_from_name(const char *name)
{
    for (size_t i = 0; i < sizeof(policies) / sizeof(policies[0]); i++)
        if (strcmp(policies[i].name, name) == 0)
            return policies[i].policy;
    return -1;
}

unsigned long long hull_sched_flag_from_name(const char *name)
{
    for (size_t i = 0; i < sizeof(flags) / sizeof(flags[0]); i++)
        if (strcmp(flags[i].name, name) == 0)
            return flags[i].bit;
    return 0;
}
