/* --run-retention, --sandbox-retention, --audit-retention: what ended (or
 * was written) longer ago than the operator keeps is removed from
 * hulld.db, so the database does not grow for ever. Off by default: nothing
 * is removed unless asked. The main thread does it, at start-up and then at
 * most once a minute, a batch per transaction (the store's lock is held
 * that long, and requests wait behind it): a backlog, such as the first
 * start with a retention, is worked off over a few ticks. */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "daemon.h"
#include "util/clock.h"
#include "util/error.h"
#include "util/log.h"

#define PRUNE_BATCH   500
#define PRUNE_BATCHES 20

struct retention {
    const char *label, *what, *when; /* "run", "runs", "ended": in messages */
    size_t age_off;                  /* its age in struct hulld_options (ms; 0: keep all) */
    int (*prune)(struct hull_store *s, const char *before, unsigned limit, unsigned *removed,
                 hull_error *err);
    int64_t next_ms; /* monotonic: when to look again */
    bool failing;    /* said once until it works again */
};

static struct retention kinds[] = {
    {"run", "runs", "ended", offsetof(struct hulld_options, run_retention_ms), hull_run_prune, 0,
     false},
    {"sandbox", "sandboxes", "ended", offsetof(struct hulld_options, sandbox_retention_ms),
     hull_sandbox_prune, 0, false},
    {"audit", "audit entries", "were written", offsetof(struct hulld_options, audit_retention_ms),
     hull_audit_prune, 0, false},
};

static void prune_one(struct retention *k)
{
    uint64_t keep = *(const uint64_t *)(const void *)((const char *)hulld.o + k->age_off);
    int64_t now = hull_monotonic_ms();
    if (keep == 0 || now < k->next_ms)
        return;
    k->next_ms = now + (int64_t)(keep < 60000 ? keep : 60000);
    struct timespec cut;
    clock_gettime(CLOCK_REALTIME, &cut);
    int64_t ns = (int64_t)cut.tv_sec * 1000000000 + cut.tv_nsec - (int64_t)keep * 1000000;
    cut.tv_sec = (time_t)(ns / 1000000000);
    cut.tv_nsec = (long)(ns % 1000000000);
    char before[40];
    hull_rfc3339_at(cut, before, sizeof(before));
    unsigned total = 0, n = 0;
    hull_error e = NULL;
    for (int i = 0; i < PRUNE_BATCHES; i++) {
        if (k->prune(hulld.store, before, PRUNE_BATCH, &n, &e) < 0) {
            if (!k->failing)
                hull_warn("%s retention: %s", k->label, hull_error_msg(e));
            hull_error_free(&e); /* warned once; the next look tries again */
            k->failing = true;
            break;
        }
        k->failing = false;
        total += n;
        if (n < PRUNE_BATCH)
            break;
    }
    if (n == PRUNE_BATCH)
        k->next_ms = now; /* more to remove: on the next tick */
    if (total)
        hull_log(HULL_LOG_INFO, "%s retention: removed %u %s that %s before %s", k->label, total,
                 k->what, k->when, before);
}

void retention_prune(void)
{
    for (size_t i = 0; i < sizeof(kinds) / sizeof(kinds[0]); i++)
        prune_one(&kinds[i]);
}
