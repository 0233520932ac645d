/* Long-lived requests (streams, waits, watches) a tenant holds at once
 * (streams.c). */
#ifndef HULLD_STREAMS_H
#define HULLD_STREAMS_H

#include <stddef.h>

#include "response.h"

/* --tenant-streams, or its default from --max-connections. */
unsigned streams_limit(void);
/* A place for one more of rq's tenant's: 0 with the tenant copied into
 * tenant (to give back with streams_give), -1 with r filled (429). */
int streams_take(const struct request *rq, char *tenant, size_t len, struct resp *r);
/* Give back a place taken (tenant "" or NULL: none was). */
void streams_give(const char *tenant);

#endif
