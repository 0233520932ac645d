/* Long-lived requests per tenant: an output stream (followed or not, a
 * streamed exec's or run's), a wait, a watch, an upload to or a download
 * from .../fs/. Each
 * holds a connection (and a thread) for as long as its client keeps it,
 * with no idle timeout (or a body as slow as its client likes), so without
 * a bound one tenant's token could take every one of hulld's
 * --max-connections and lock every other tenant (and /healthz) out. A
 * tenant holds at most --tenant-streams of them at once (default: a
 * quarter of the connections); beyond, 429 quota_exceeded. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "daemon.h"
#include "streams.h"

struct held {
    struct held *next;
    char tenant[72];
    unsigned n;
};

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static struct held *table; /* tenants holding at least one */

unsigned streams_limit(void)
{
    unsigned n = hulld.o->tenant_streams;
    if (n == 0)
        n = hulld.o->max_connections / 4;
    return n ? n : 1;
}

int streams_take(const struct request *rq, char *tenant, size_t len, struct resp *r)
{
    const char *t = rq->caller->tok.tenant;
    unsigned most = streams_limit(), had = 0;
    pthread_mutex_lock(&mu);
    struct held *h = table;
    while (h && strcmp(h->tenant, t) != 0)
        h = h->next;
    if (h == NULL && (h = calloc(1, sizeof(*h))) != NULL) {
        snprintf(h->tenant, sizeof(h->tenant), "%s", t);
        h->next = table;
        table = h;
    }
    bool ok = h && h->n < most;
    if (h)
        had = h->n;
    if (ok)
        h->n++;
    pthread_mutex_unlock(&mu);
    if (h == NULL) {
        resp_error(r, 500, "internal", NULL, "out of memory");
        return -1;
    }
    if (!ok) {
        resp_error(r, 429, "quota_exceeded", NULL,
                   "tenant %s holds %u streams, waits, watches and file transfers open, its quota "
                   "(--tenant-streams): close one first",
                   t, had);
        r->retry_after = 1;
        return -1;
    }
    snprintf(tenant, len, "%s", t);
    return 0;
}

void streams_give(const char *tenant)
{
    if (tenant == NULL || tenant[0] == '\0')
        return;
    pthread_mutex_lock(&mu);
    for (struct held **hp = &table; *hp; hp = &(*hp)->next) {
        struct held *h = *hp;
        if (strcmp(h->tenant, tenant) != 0)
            continue;
        if (h->n)
            h->n--;
        if (h->n == 0) {
            *hp = h->next;
            free(h);
        }
        break;
    }
    pthread_mutex_unlock(&mu);
}
