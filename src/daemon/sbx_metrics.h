/* Per-sandbox metrics over time (sbx_metrics.c): a sampler thread reads
 * each live sandbox's usage every --metrics-interval into a bounded ring;
 * GET /v1/sandboxes/{id}/metrics and /metrics read the rings. */
#ifndef HULLD_SBX_METRICS_H
#define HULLD_SBX_METRICS_H

#include <stdio.h>

#include "daemon.h"

/* One live sandbox as the sampler sees it. */
struct sbx_brief {
    char id[40], tenant[72], container[64];
};
/* sandboxes.c: every live sandbox (malloc'd array, *out NULL when none). */
size_t sandboxes_brief(struct sbx_brief **out);

int sbx_metrics_start(hull_error *err);
void sbx_metrics_stop(void);
/* GET /v1/sandboxes/{id}/metrics[?since=RFC3339] of a live sandbox the
 * caller may see. */
void sbx_metrics_answer(const char *id, const struct request *rq, struct resp *r);
/* Prometheus gauges from each sandbox's latest sample (tenant NULL: all). */
void sbx_metrics_prometheus(FILE *out, const char *tenant);

#endif
