/* The VMM's cgroup (vmcg.c): one leaf per VM in each hierarchy that has
 * the memory, cpu or pids controller. Internal to vm/. */
#ifndef HULL_VM_VMCG_H
#define HULL_VM_VMCG_H

#include <limits.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "hull.h"

struct vmcg {
    char path[3][PATH_MAX];
    size_t n;
};

struct vmcg_limits {
    uint64_t memory_bytes; /* guest RAM + the VMM's bounded overhead */
    unsigned cpu_millis;   /* 1000 = one CPU */
    unsigned pids;
};

int vmcg_create(const char *id, const struct vmcg_limits *lim, struct vmcg *cg, hull_error *err);
/* Move pid into every leaf. */
int vmcg_enter(const struct vmcg *cg, pid_t pid);
/* The leaves a VM id would have (for cleanup after a crash). */
void vmcg_paths(const char *id, struct vmcg *cg);
void vmcg_destroy(const struct vmcg *cg);
bool vmcg_exists(const struct vmcg *cg);

#endif
