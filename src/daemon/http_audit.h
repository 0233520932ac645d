/* The audit log's entries of API requests (http_audit.c). */
#ifndef HULLD_HTTP_AUDIT_H
#define HULLD_HTTP_AUDIT_H

#include <stdbool.h>

#include "response.h"

/* Not GET or HEAD: audited, refused to readers, to a draining hulld. */
bool http_state_changing(const char *method);
/* The entry of a state-changing request (c: NULL when no token was
 * valid; rt_id: the routed id, or ""), written now. */
void http_audit(const struct caller *c, const char *rt_id, const char *method, const char *url,
                const struct resp *r);
/* An answer with work after it (r->after, taken): the entry and that work
 * go to the after-answer thread (after.c), which writes them while the
 * answer is sent; the entry first, so that readers who wait for the work
 * (runner_wait_recorded) see it. */
void http_audit_after(const struct caller *c, const char *rt_id, const char *method,
                      const char *url, struct resp *r);

#endif
