/* Process credentials: user and groups, capabilities, and the small
 * per-process attributes set just before execve. */
#ifndef HULL_LINUX_CREDS_H
#define HULL_LINUX_CREDS_H

#include "hull.h"
#include "spec/spec.h"

/* 0 when name is a capability both libcap and the running kernel know
 * ("CAP_SYS_ADMIN"), else -1. */
int hull_cap_valid(const char *name);

/* Warn "<path>.<set>[i]: unknown capability 'X' ...; ignored" for each name
 * in caps that hull_cap_valid refuses, and for each ambient one that is not
 * also permitted and inheritable: such names are ignored when the sets are
 * applied. */
void hull_caps_warn_unknown(const struct hull_caps *caps, const char *path);

/* Drop the bounding set to process.capabilities.bounding. Needs CAP_SETPCAP,
 * so it runs before the user switch. */
int hull_caps_drop_bounding(const struct hull_caps *caps, hull_error *err);

/* Switch to process.user (groups, gid, uid) keeping capabilities across the
 * switch, then set the effective/permitted/inheritable and ambient sets.
 * Without process.capabilities, the process keeps what a uid switch leaves. */
int hull_creds_apply(const struct hull_process *p, hull_error *err);

/* process.rlimits, in two steps. From the runtime, outside the process's
 * user namespace (where raising a hard limit is allowed): each limit raised
 * to what the process asks for, never lowered, so that the process's own
 * setup (mounts, devices, /etc files) is not cut short by an RLIMIT_NOFILE
 * of 4. Then in the process itself, its last step before execve: exactly
 * the values asked for (lowering needs no privilege). */
int hull_rlimits_raise(pid_t pid, const struct hull_process *p, hull_error *err);
int hull_rlimits_set_own(const struct hull_process *p, hull_error *err);

/* process.oomScoreAdj, written from the runtime for the same reason. */
int hull_oom_score_adj_apply(pid_t pid, const struct hull_process *p, hull_error *err);

/* linux.personality */
int hull_personality_apply(const struct hull_linux *l, hull_error *err);

#endif
