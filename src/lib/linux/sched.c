#include <errno.h>
#include <sched.h>
#include <stdint.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "linux/sched.h"
#include "util/error.h"

/* The kernel's struct sched_attr (glibc 2.36 does not wrap sched_setattr). */
struct kernel_sched_attr {
    uint32_t size;
    uint32_t sched_policy;
    uint64_t sched_flags;
    int32_t sched_nice;
    uint32_t sched_priority;
    uint64_t sched_runtime;
    uint64_t sched_deadline;
    uint64_t sched_period;
};

int hull_sched_apply(const struct hull_process *p, hull_error *err)
{
    if (p->has_scheduler) {
        struct kernel_sched_attr a = {
            .size = sizeof(a),
            .sched_policy = (uint32_t)hull_sched_policy_from_name(p->sched_policy),
            .sched_nice = p->sched_nice,
            .sched_priority = (uint32_t)p->sched_priority,
            .sched_runtime = p->sched_runtime,
            .sched_deadline = p->sched_deadline,
            .sched_period = p->sched_period,
        };
        for (char **f = p->sched_flags; f && *f; f++)
            a.sched_flags |= hull_sched_flag_from_name(*f);
        if (syscall(SYS_sched_setattr, 0, &a, 0) < 0)
            return hull_error_errno(err, "process.scheduler: %s", p->sched_policy);
    }
    if (p->has_io_priority) {
        /* IOPRIO_PRIO_VALUE(class, data); IOPRIO_WHO_PROCESS = 1, 0 = us. */
        int value = (p->io_priority_class << 13) | p->io_priority;
        if (syscall(SYS_ioprio_set, 1, 0, value) < 0)
            return hull_error_errno(err, "process.ioPriority");
    }
    return 0;
}
