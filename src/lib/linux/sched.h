/* process.scheduler and process.ioPriority. */
#ifndef HULL_LINUX_SCHED_H
#define HULL_LINUX_SCHED_H

#include "hull.h"
#include "spec/spec.h"

/* Apply both to the calling process; runs before capabilities are dropped,
 * since a real-time policy or a raised priority needs CAP_SYS_NICE. */
int hull_sched_apply(const struct hull_process *p, hull_error *err);

#endif
