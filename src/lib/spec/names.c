/* Name tables shared by the spec parser and the mechanisms. */
#include <sched.h>
#include <string.h>
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
