/* Internal to the long-lived sandbox (session*.c). */
#ifndef HULL_SANDBOX_SESSION_H
#define HULL_SANDBOX_SESSION_H

#include "container/container.h"
#include "hull.h"
#include "linux/seccomp.h"
#include "sandbox/sandbox.h"

struct hull_session {
    char id[80];
    struct hull_policy policy; /* what it was created with (env merged into execs) */
    struct hull_sandbox_layout lay;
    struct hull_seccomp_filter *seccomp;
    struct hull_container_ctx c;
    uint32_t host_uid;           /* the sandbox user as the host sees it, owner of put files */
    uint32_t host_gid;           /* its group (an image's User may give another) */
    int tmpfd;                   /* the sandbox's /tmp */
    struct hull_sandbox_ids ids; /* its host ids and their claim (uids.c); lock -1 before */
    bool paused;
    struct hull_sandbox_image img; /* policy.image: its mount and use mark */
    struct hull_sandbox_net net;   /* policy.network: the attachment and /etc files */
};

/* session_exec.c's pieces, shared with session_procs.c. */
void hull_session_stats(struct hull_session *s, struct hull_cgroup_stats *st);
/* why: a HULL_STOP_* (hull.h). */
void hull_session_verdict(struct hull_result *r, const struct hull_policy *p, int status, int why,
                          const struct hull_cgroup_stats *before,
                          const struct hull_cgroup_stats *after);
/* The layout one command of the sandbox runs in: its own fields on the
 * sandbox's policy. Refused while paused or after the sandbox ended; what
 * names the verb in the error. hull_sandbox_layout_free it. */
int hull_session_command_layout(struct hull_session *s, const struct hull_policy *p,
                                const char *what, struct hull_sandbox_layout *lay, hull_error *err);

/* session_charge.c: the keeper's writes into the sandbox's tmpfs, charged
 * to the sandbox's memory. fn(s, arg, err) runs in a child standing in the
 * sandbox's memory cgroup, its OOM killer's first choice; out (out_len
 * bytes, filled by fn) is copied back. Without a cgroup (process level) fn
 * runs here. ENOSPC when it did not fit the sandbox's memory, EBUSY while
 * the sandbox is paused; what names the work in errors. */
typedef int (*hull_charged_fn)(struct hull_session *s, void *arg, hull_error *err);
int hull_session_charged(struct hull_session *s, const char *what, hull_charged_fn fn, void *arg,
                         void *out, size_t out_len, hull_error *err);
/* In such a child (still host root): into the memory cgroup, first victim. */
int hull_session_charge_self(struct hull_session *s, hull_error *err);
/* EBUSY while paused: nothing may join its frozen cgroup. */
int hull_session_paused_for(const struct hull_session *s, const char *what, hull_error *err);

#endif
