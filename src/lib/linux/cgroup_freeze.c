/* Freezing, signalling and killing everything in a container's cgroup.
 *
 * Signalling a list of pids races with fork: a child born after the list
 * was read escapes. So every "all processes" operation runs with the
 * cgroup frozen (v1 freezer.state, v2 cgroup.freeze), or uses cgroup.kill,
 * which the kernel applies to the cgroup atomically, forks included.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "linux/cgroup_internal.h"
#include "util/error.h"
#include "util/log.h"

#define FREEZE_TIMEOUT_MS 5000

/* The freezer node: the v1 freezer hierarchy if the host has one, else
 * cgroup2's built-in freezer. */
static const struct cg_node *freezer_node(const struct hull_cgroup *cg, bool *v2)
{
    int f = cg_hier_of(cg->L, CG_FREEZER);
    if (f < 0 || !cg->n[f].joined)
        return NULL;
    *v2 = cg->L->h[f].v2;
    return &cg->n[f];
}

int cg_v2_wait_event(const char *dir, const char *key, uint64_t want, int timeout_ms,
                     hull_error *err)
{
    char p[PATH_MAX], buf[512];
    snprintf(p, sizeof(p), "%s/cgroup.events", dir);
    cleanup_close int fd = open(p, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return hull_error_errno(err, "open %s", p);
    long deadline = cg_now_ms() + timeout_ms;
    for (;;) {
        ssize_t r = pread(fd, buf, sizeof(buf) - 1, 0);
        if (r < 0)
            return hull_error_errno(err, "read %s", p);
        buf[r] = '\0';
        uint64_t v;
        if (cg_keyed_get(buf, key, &v) && v == want)
            return 0;
        long left = deadline - cg_now_ms();
        if (left <= 0)
            return hull_error_set(err, ETIMEDOUT, "%s: '%s' still not %llu after %d ms", p, key,
                                  (unsigned long long)want, timeout_ms);
        /* kernfs wakes POLLPRI pollers when the file's content changes. */
        struct pollfd pfd = {.fd = fd, .events = POLLPRI};
        if (poll(&pfd, 1, (int)left) < 0 && errno != EINTR)
            return hull_error_errno(err, "poll %s", p);
    }
}

static bool v1_state_is(const char *dir, const char *want)
{
    char buf[64];
    hull_error e = NULL;
    bool ok = cg_read(dir, "freezer.state", buf, sizeof(buf), &e) == 0 &&
              strncmp(buf, want, strlen(want)) == 0 && buf[strlen(want)] == '\n';
    hull_error_free(&e); /* unreadable: not yet in that state; the caller's deadline ends it */
    return ok;
}

static int v1_freeze(const char *dir, bool frozen, hull_error *err)
{
    const char *want = frozen ? "FROZEN" : "THAWED";
    if (cg_write(dir, "freezer.state", want, err) < 0)
        return -1;
    /* FREEZING until every task has stopped; a task in uninterruptible
     * sleep can hold it there, so the write is repeated now and then. */
    long us = 50, deadline = cg_now_ms() + FREEZE_TIMEOUT_MS;
    for (int i = 0; !v1_state_is(dir, want); i++) {
        if (cg_now_ms() > deadline) {
            if (frozen) {
                hull_error e = NULL;
                if (cg_write(dir, "freezer.state", "THAWED", &e) < 0)
                    hull_warn("%s: thaw after a failed freeze: %s", dir, hull_error_msg(e));
                hull_error_free(&e);
            }
            return hull_error_set(err, ETIMEDOUT, "%s/freezer.state: not %s after %d ms", dir, want,
                                  FREEZE_TIMEOUT_MS);
        }
        cg_sleep_us(us);
        us = us < 10000 ? us * 2 : us;
        if (i % 16 == 15 && cg_write(dir, "freezer.state", want, err) < 0)
            return -1;
    }
    return 0;
}

int hull_cgroup_freeze(struct hull_cgroup *cg, bool frozen, hull_error *err)
{
    bool v2 = false;
    const struct cg_node *n = freezer_node(cg, &v2);
    if (n == NULL)
        return hull_error_set(err, ENOTSUP,
                              "cgroup: no freezer (neither the v1 freezer "
                              "controller nor cgroup2 is available)");
    if (!v2)
        return v1_freeze(n->dir, frozen, err);
    if (cg_write(n->dir, "cgroup.freeze", frozen ? "1" : "0", err) < 0)
        return -1;
    if (cg_v2_wait_event(n->dir, "frozen", frozen ? 1 : 0, FREEZE_TIMEOUT_MS, err) < 0) {
        if (frozen) {
            hull_error e = NULL;
            if (cg_write(n->dir, "cgroup.freeze", "0", &e) < 0)
                hull_warn("%s: thaw after a failed freeze: %s", n->dir, hull_error_msg(e));
            hull_error_free(&e);
        }
        return -1;
    }
    return 0;
}

int hull_cgroup_is_frozen(struct hull_cgroup *cg, bool *frozen, hull_error *err)
{
    bool v2 = false;
    const struct cg_node *n = freezer_node(cg, &v2);
    *frozen = false;
    if (n == NULL)
        return 0;
    char buf[256];
    if (!v2) {
        if (cg_read(n->dir, "freezer.state", buf, sizeof(buf), err) < 0)
            return -1;
        *frozen = strncmp(buf, "FROZEN", 6) == 0;
        return 0;
    }
    uint64_t v = 0;
    if (cg_read(n->dir, "cgroup.events", buf, sizeof(buf), err) < 0)
        return -1;
    *frozen = cg_keyed_get(buf, "frozen", &v) && v == 1;
    return 0;
}

int cg_freeze_for_signal(struct hull_cgroup *cg, bool *was, hull_error *err)
{
    *was = false;
    if (hull_cgroup_is_frozen(cg, was, err) < 0)
        return -1;
    if (*was)
        return 0;
    return hull_cgroup_freeze(cg, true, err);
}

static int signal_all(struct hull_cgroup *cg, int signo, size_t *signalled, hull_error *err)
{
    pid_t *pids = NULL;
    size_t count = 0;
    *signalled = 0;
    if (hull_cgroup_pids(cg, &pids, &count, err) < 0)
        return -1;
    for (size_t i = 0; i < count; i++)
        if (kill(pids[i], signo) == 0)
            (*signalled)++;
    free(pids);
    return 0;
}

/* Signal everyone with the cgroup frozen, so that nobody forks between
 * reading the list and the signals. thaw_always: thaw even if it was frozen
 * before (after SIGKILL the dead must be able to exit). */
static int signal_frozen(struct hull_cgroup *cg, int signo, bool thaw_always, size_t *n,
                         bool *froze, hull_error *err)
{
    bool was = false;
    hull_error fe = NULL;
    *froze = cg_freeze_for_signal(cg, &was, &fe) == 0;
    /* Not frozen: the signals still go out, only a fork in between may miss one. */
    if (!*froze)
        hull_debug("cgroup: freeze for the signal: %s", hull_error_msg(fe));
    hull_error_free(&fe);
    int rc = signal_all(cg, signo, n, err);
    if (*froze && (thaw_always || !was) && hull_cgroup_freeze(cg, false, &fe) < 0 && rc == 0) {
        hull_error_free(err); /* the thaw's failure replaces it (rc was 0: nothing to lose) */
        *err = fe;
        return -1;
    }
    hull_error_free(&fe);
    return rc;
}

static void thaw_v1(struct hull_cgroup *cg)
{
    bool v2 = false;
    const struct cg_node *n = freezer_node(cg, &v2);
    hull_error e = NULL;
    if (n != NULL && !v2 && cg_write(n->dir, "freezer.state", "THAWED", &e) < 0)
        hull_debug("%s: thaw: %s", n->dir, hull_error_msg(e));
    hull_error_free(&e);
}

int cg_kill_all(struct hull_cgroup *cg, hull_error *err)
{
    int v2 = cg->L->v2;
    if (v2 >= 0 && cg->n[v2].joined && cg_exists(cg->n[v2].dir, "cgroup.kill")) {
        if (cg_write(cg->n[v2].dir, "cgroup.kill", "1", err) < 0)
            return -1;
        /* Killed tasks stopped by the v1 freezer die only once thawed
         * (cgroup2's freezer lets fatal signals through by itself). */
        thaw_v1(cg);
        return 0;
    }
    size_t n = 0;
    bool froze = false;
    int rc = signal_frozen(cg, SIGKILL, true, &n, &froze, err);
    /* Without a freezer, a child forked after the list was read survives:
     * repeat until a pass finds nobody (bounded by cg_wait_empty). */
    for (int pass = 0; rc == 0 && !froze && n > 0 && pass < 100; pass++)
        rc = signal_all(cg, SIGKILL, &n, err);
    return rc;
}

int hull_cgroup_kill(struct hull_cgroup *cg, int signo, hull_error *err)
{
    if (signo == SIGKILL)
        return cg_kill_all(cg, err);
    size_t n = 0;
    bool froze = false;
    /* A container the user paused stays paused. */
    return signal_frozen(cg, signo, false, &n, &froze, err);
}

int cg_wait_empty(struct hull_cgroup *cg, int timeout_ms, hull_error *err)
{
    int v2 = cg->L->v2;
    if (v2 >= 0 && cg->n[v2].joined)
        return cg_v2_wait_event(cg->n[v2].dir, "populated", 0, timeout_ms, err);
    const struct cg_node *m = cg_main_node(cg);
    long us = 50, deadline = cg_now_ms() + timeout_ms;
    for (;;) {
        pid_t *pids = NULL;
        size_t count = 0;
        if (m == NULL || cg_collect_pids(m->dir, &pids, &count, err) < 0)
            return m == NULL ? 0 : -1;
        free(pids);
        if (count == 0)
            return 0;
        if (cg_now_ms() > deadline)
            return hull_error_set(err, ETIMEDOUT, "%s: %zu processes left after %d ms", m->dir,
                                  count, timeout_ms);
        cg_sleep_us(us);
        us = us < 10000 ? us * 2 : us;
    }
}
