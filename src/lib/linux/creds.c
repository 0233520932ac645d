#include <errno.h>
#include <grp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/capability.h>
#include <sys/personality.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include "linux/creds.h"
#include "util/error.h"
#include "util/fs.h"
#include "util/log.h"

static int last_cap(void)
{
    static int last = -1;
    if (last < 0) {
        char *text = NULL;
        hull_error e = NULL;
        if (hull_read_file("/proc/sys/kernel/cap_last_cap", &text, NULL, &e) == 0)
            last = atoi(text);
        else
            last = CAP_LAST_CAP;
        hull_error_free(&e); /* no procfs entry: the headers' CAP_LAST_CAP stands in */
        free(text);
    }
    return last;
}

/* The capabilities named, as a bit mask; names this kernel or libcap does
 * not know are left out (hull_caps_warn_unknown said so). One lookup per
 * name: libcap's cap_from_name searches its table of names linearly, and
 * asking it once per name and per capability number (41 x names x sets)
 * cost the init more than all its other user-space work. */
static uint64_t cap_mask(char **names)
{
    uint64_t m = 0;
    for (char **n = names; n && *n; n++) {
        cap_value_t c;
        if (cap_from_name(*n, &c) == 0 && c >= 0 && c < 64)
            m |= 1ull << c;
    }
    return m;
}

static bool in_mask(uint64_t m, int v)
{
    return v >= 0 && v < 64 && (m >> v) & 1;
}

int hull_cap_valid(const char *name)
{
    cap_value_t v;
    return cap_from_name(name, &v) < 0 || v > last_cap() ? -1 : 0;
}

void hull_caps_warn_unknown(const struct hull_caps *caps, const char *path)
{
    const char *keys[] = {"bounding", "effective", "inheritable", "permitted", "ambient"};
    char **sets[] = {caps->bounding, caps->effective, caps->inheritable, caps->permitted,
                     caps->ambient};
    for (size_t k = 0; k < 5; k++)
        for (size_t i = 0; sets[k] && sets[k][i]; i++)
            if (hull_cap_valid(sets[k][i]) < 0)
                hull_warn("%s.%s[%zu]: unknown capability '%s' (not known to this kernel or "
                          "libcap); ignored",
                          path, keys[k], i, sets[k][i]);
    /* The kernel raises an ambient capability only when it is permitted
     * and inheritable too; runc and crun skip one that is not (`runc spec`
     * writes such a config), and so does set_caps, with this warning. */
    uint64_t both = cap_mask(caps->permitted) & cap_mask(caps->inheritable);
    for (size_t i = 0; caps->ambient && caps->ambient[i]; i++) {
        cap_value_t v;
        if (cap_from_name(caps->ambient[i], &v) == 0 && !in_mask(both, v))
            hull_warn("%s.ambient[%zu]: %s is not also permitted and inheritable, which the "
                      "kernel requires; ignored",
                      path, i, caps->ambient[i]);
    }
}

int hull_caps_drop_bounding(const struct hull_caps *caps, hull_error *err)
{
    int last = last_cap();
    uint64_t keep = cap_mask(caps->bounding);
    for (int c = 0; c <= last; c++) {
        if (in_mask(keep, c))
            continue;
        if (prctl(PR_CAPBSET_DROP, c, 0, 0, 0) < 0 && errno != EINVAL)
            return hull_error_errno(err, "process.capabilities.bounding: drop capability %d", c);
    }
    return 0;
}

static int set_caps(const struct hull_caps *caps, hull_error *err)
{
    int last = last_cap();
    cap_t c = cap_init();
    if (c == NULL)
        return hull_error_errno(err, "cap_init");
    uint64_t eff = cap_mask(caps->effective), perm = cap_mask(caps->permitted),
             inh = cap_mask(caps->inheritable);
    for (int v = 0; v <= last; v++) {
        cap_value_t cv = v;
        if (in_mask(eff, v))
            cap_set_flag(c, CAP_EFFECTIVE, 1, &cv, CAP_SET);
        if (in_mask(perm, v))
            cap_set_flag(c, CAP_PERMITTED, 1, &cv, CAP_SET);
        if (in_mask(inh, v))
            cap_set_flag(c, CAP_INHERITABLE, 1, &cv, CAP_SET);
    }
    int r = cap_set_proc(c);
    cap_free(c);
    if (r < 0)
        return hull_error_errno(err, "process.capabilities: set capabilities");

    if (prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0) < 0 && errno != EINVAL)
        return hull_error_errno(err, "process.capabilities.ambient: clear");
    uint64_t both = perm & inh;
    for (char **n = caps->ambient; n && *n; n++) {
        cap_value_t v;
        /* Not permitted and inheritable: skipped (warned at create). */
        if (cap_from_name(*n, &v) < 0 || v > last || !in_mask(both, v))
            continue;
        /* The kernel only raises an ambient capability that is both
         * permitted and inheritable; say which rule was broken. */
        if (prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_RAISE, v, 0, 0) < 0)
            return hull_error_errno(err,
                                    "process.capabilities.ambient: raise %s (it must also be "
                                    "permitted and inheritable)",
                                    *n);
    }
    return 0;
}

int hull_creds_apply(const struct hull_process *p, hull_error *err)
{
    const struct hull_user *u = &p->user;
    /* Keep the permitted set across the uid change; the exact sets are
     * installed right after. */
    if (p->has_caps && prctl(PR_SET_KEEPCAPS, 1, 0, 0, 0) < 0)
        return hull_error_errno(err, "prctl(PR_SET_KEEPCAPS)");
    if (setgroups(u->n_additional_gids, u->additional_gids) < 0) {
        /* EPERM here means setgroups is denied in this user namespace; that
         * is only fatal when extra groups were asked for. */
        if (!(errno == EPERM && u->n_additional_gids == 0))
            return hull_error_errno(err, "process.user.additionalGids: setgroups");
    }
    if (setresgid(u->gid, u->gid, u->gid) < 0)
        return hull_error_errno(err, "process.user.gid: setgid %u", u->gid);
    if (setresuid(u->uid, u->uid, u->uid) < 0)
        return hull_error_errno(err, "process.user.uid: setuid %u", u->uid);
    if (p->has_caps) {
        if (prctl(PR_SET_KEEPCAPS, 0, 0, 0, 0) < 0)
            return hull_error_errno(err, "prctl(PR_SET_KEEPCAPS)");
        if (set_caps(&p->caps, err) < 0)
            return -1;
    }
    /* Without process.user.umask the container gets runc's 0022, not
     * whatever umask the engine that ran hull happened to have. */
    umask(u->has_umask ? u->umask : 022);
    return 0;
}

static rlim_t rlim_max_of(rlim_t a, rlim_t b)
{
    if (a == RLIM_INFINITY || b == RLIM_INFINITY)
        return RLIM_INFINITY;
    return a > b ? a : b;
}

int hull_rlimits_raise(pid_t pid, const struct hull_process *p, hull_error *err)
{
    for (size_t i = 0; i < p->n_rlimits; i++) {
        const struct hull_rlimit *r = &p->rlimits[i];
        struct rlimit now;
        if (prlimit(pid, r->resource, NULL, &now) < 0)
            return hull_error_errno(err, "process.rlimits[%zu]: %s", i, r->type);
        struct rlimit rl = {.rlim_cur = rlim_max_of(now.rlim_cur, r->soft),
                            .rlim_max = rlim_max_of(now.rlim_max, r->hard)};
        if ((rl.rlim_cur != now.rlim_cur || rl.rlim_max != now.rlim_max) &&
            prlimit(pid, r->resource, &rl, NULL) < 0)
            return hull_error_errno(err, "process.rlimits[%zu]: %s", i, r->type);
    }
    return 0;
}

int hull_rlimits_set_own(const struct hull_process *p, hull_error *err)
{
    for (size_t i = 0; i < p->n_rlimits; i++) {
        const struct hull_rlimit *r = &p->rlimits[i];
        struct rlimit rl = {.rlim_cur = r->soft, .rlim_max = r->hard};
        if (setrlimit((int)r->resource, &rl) < 0)
            return hull_error_errno(err, "process.rlimits[%zu]: %s", i, r->type);
    }
    return 0;
}

int hull_oom_score_adj_apply(pid_t pid, const struct hull_process *p, hull_error *err)
{
    if (!p->has_oom_score_adj)
        return 0;
    char path[64], val[16];
    snprintf(path, sizeof(path), "/proc/%d/oom_score_adj", (int)pid);
    int n = snprintf(val, sizeof(val), "%d", p->oom_score_adj);
    if (hull_write_proc_file(path, val, (size_t)n, err) < 0)
        return hull_error_prefix(err, "process.oomScoreAdj");
    return 0;
}

int hull_personality_apply(const struct hull_linux *l, hull_error *err)
{
    if (!l->has_personality)
        return 0;
    unsigned long persona = strcmp(l->personality_domain, "LINUX32") == 0 ? PER_LINUX32 : PER_LINUX;
    if (personality(persona) < 0)
        return hull_error_errno(err, "linux.personality: %s", l->personality_domain);
    return 0;
}
