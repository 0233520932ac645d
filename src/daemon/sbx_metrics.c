/* Per-sandbox metrics over time.
 *
 * One thread samples every live sandbox each --metrics-interval (CPU time,
 * memory now and at its peak, the space used on its writable tmpfs mounts,
 * its network's bytes: hull_sandbox_stats) into a ring of the last
 * RING_SAMPLES samples per sandbox, so hulld's memory is bounded by the
 * number of sandboxes, never by time. A sandbox's ring goes with it. The
 * sampler reads the kernel's counters outside every lock the API takes. */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "sbx_metrics.h"
#include "util/clock.h"
#include "util/error.h"
#include "util/json.h"
#include "util/log.h"

#define RING_SAMPLES 720 /* an hour at the default 5 s */

struct sample {
    int64_t t_ms; /* wall clock, ms since the epoch */
    struct hull_sandbox_stats st;
};

struct series {
    char id[40], tenant[72];
    struct sample ring[RING_SAMPLES];
    unsigned head, count; /* next slot; samples held */
    bool seen;            /* live at the last round */
    struct series *next;
};

static struct {
    pthread_mutex_t mu;
    pthread_cond_t wake;
    struct series *all;
    bool stop, started;
    pthread_t thread;
} sm = {.mu = PTHREAD_MUTEX_INITIALIZER};

static struct series *series_find(const char *id)
{
    struct series *s = sm.all;
    while (s && strcmp(s->id, id) != 0)
        s = s->next;
    return s;
}

static void record(const struct sbx_brief *b, const struct sample *smp)
{
    struct series *s = series_find(b->id);
    if (s == NULL) {
        s = calloc(1, sizeof(*s));
        if (s == NULL) {
            hull_warn("metrics of %s: out of memory", b->id);
            return;
        }
        snprintf(s->id, sizeof(s->id), "%s", b->id);
        snprintf(s->tenant, sizeof(s->tenant), "%s", b->tenant);
        s->next = sm.all;
        sm.all = s;
    }
    s->seen = true;
    s->ring[s->head] = *smp;
    s->head = (s->head + 1) % RING_SAMPLES;
    if (s->count < RING_SAMPLES)
        s->count++;
}

static void sample_round(void)
{
    struct sbx_brief *b = NULL;
    size_t n = sandboxes_brief(&b);
    struct sample *got = calloc(n ? n : 1, sizeof(*got));
    bool *ok = calloc(n ? n : 1, sizeof(*ok));
    for (size_t i = 0; got && ok && i < n; i++) {
        hull_error e = NULL;
        got[i].t_ms = hull_realtime_ms();
        ok[i] = b[i].container[0] && hull_sandbox_stats(b[i].container, &got[i].st, &e) == 0;
        /* Not started yet, or destroyed meanwhile: no sample this round,
         * not an error worth a log line. */
        hull_error_free(&e);
    }
    pthread_mutex_lock(&sm.mu);
    for (struct series *s = sm.all; s; s = s->next)
        s->seen = false;
    for (size_t i = 0; got && ok && i < n; i++) {
        struct series *s = series_find(b[i].id);
        if (ok[i])
            record(&b[i], &got[i]);
        else if (s)
            s->seen = true; /* alive, only unreadable this once */
    }
    /* Gone sandboxes take their samples with them. */
    for (struct series **p = &sm.all; *p;) {
        struct series *s = *p;
        if (s->seen) {
            p = &s->next;
            continue;
        }
        *p = s->next;
        free(s);
    }
    pthread_mutex_unlock(&sm.mu);
    free(got);
    free(ok);
    free(b);
}

static void *sampler(void *arg)
{
    (void)arg;
    unsigned ms = hulld.o->metrics_interval_ms;
    pthread_mutex_lock(&sm.mu);
    while (!sm.stop) {
        pthread_mutex_unlock(&sm.mu);
        sample_round();
        pthread_mutex_lock(&sm.mu);
        struct timespec until;
        clock_gettime(CLOCK_MONOTONIC, &until);
        until.tv_sec += ms / 1000;
        until.tv_nsec += (long)(ms % 1000) * 1000000L;
        if (until.tv_nsec >= 1000000000L) {
            until.tv_sec++;
            until.tv_nsec -= 1000000000L;
        }
        while (!sm.stop && pthread_cond_timedwait(&sm.wake, &sm.mu, &until) != ETIMEDOUT)
            ;
    }
    pthread_mutex_unlock(&sm.mu);
    return NULL;
}

int sbx_metrics_start(hull_error *err)
{
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&sm.wake, &ca);
    pthread_condattr_destroy(&ca);
    int r = pthread_create(&sm.thread, NULL, sampler, NULL);
    if (r != 0) {
        errno = r;
        return hull_error_errno(err, "start the metrics sampler");
    }
    sm.started = true;
    return 0;
}

void sbx_metrics_stop(void)
{
    if (!sm.started)
        return;
    pthread_mutex_lock(&sm.mu);
    sm.stop = true;
    pthread_cond_broadcast(&sm.wake);
    pthread_mutex_unlock(&sm.mu);
    pthread_join(sm.thread, NULL);
    sm.started = false;
    while (sm.all) {
        struct series *s = sm.all;
        sm.all = s->next;
        free(s);
    }
}

/* "2026-12-03T02:50:01[.123…](Z|+01:00)" -> ms since the epoch. */
static int parse_rfc3339(const char *s, int64_t *ms)
{
    struct tm tm = {0};
    char *end = strptime(s, "%Y-%m-%dT%H:%M:%S", &tm);
    if (end == NULL)
        return -1;
    int64_t frac = 0, scale = 1000;
    if (*end == '.') {
        end++;
        if (*end < '0' || *end > '9')
            return -1;
        for (; *end >= '0' && *end <= '9'; end++)
            if (scale > 1) {
                scale /= 10;
                frac += (*end - '0') * scale;
            }
    }
    long off = 0;
    if (*end == 'Z' || *end == 'z') {
        end++;
    } else if ((*end == '+' || *end == '-') && end[1] >= '0' && end[1] <= '9' && end[2] >= '0' &&
               end[2] <= '9' && end[3] == ':' && end[4] >= '0' && end[4] <= '9' && end[5] >= '0' &&
               end[5] <= '9') {
        off = ((end[1] - '0') * 10 + (end[2] - '0')) * 3600L +
              ((end[4] - '0') * 10 + (end[5] - '0')) * 60L;
        if (*end == '-')
            off = -off;
        end += 6;
    } else {
        return -1;
    }
    if (*end != '\0')
        return -1;
    time_t t = timegm(&tm);
    if (t == (time_t)-1)
        return -1;
    *ms = ((int64_t)t - off) * 1000 + frac;
    return 0;
}

static json_object *sample_json(const struct sample *smp)
{
    json_object *o = json_object_new_object();
    char when[40];
    time_t sec = (time_t)(smp->t_ms / 1000);
    struct tm tm;
    gmtime_r(&sec, &tm);
    size_t n = strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(when + n, sizeof(when) - n, ".%03dZ", (int)(smp->t_ms % 1000));
    json_object_object_add(o, "time", json_object_new_string(when));
    const struct hull_sandbox_stats *st = &smp->st;
    if (st->has_cgroup) {
        json_object_object_add(o, "cpu_seconds", json_object_new_double((double)st->cpu_ns / 1e9));
        json_object_object_add(o, "memory_bytes", json_object_new_int64((int64_t)st->memory_bytes));
        json_object_object_add(o, "memory_peak_bytes",
                               json_object_new_int64((int64_t)st->memory_peak_bytes));
    }
    if (st->has_disk)
        json_object_object_add(o, "disk_bytes", json_object_new_int64((int64_t)st->disk_bytes));
    if (st->has_net) {
        json_object_object_add(o, "net_rx_bytes", json_object_new_int64((int64_t)st->net_rx_bytes));
        json_object_object_add(o, "net_tx_bytes", json_object_new_int64((int64_t)st->net_tx_bytes));
    }
    return o;
}

void sbx_metrics_answer(const char *id, const struct request *rq, struct resp *r)
{
    if (strcmp(rq->method, "GET") != 0) {
        resp_error(r, 405, "method_not_allowed", NULL, "%s is not allowed on metrics", rq->method);
        r->allow = "GET";
        return;
    }
    const char *since = request_query(rq, "since");
    int64_t since_ms = INT64_MIN;
    if (since && parse_rfc3339(since, &since_ms) < 0) {
        resp_error(r, 400, "invalid_request", "since",
                   "since: '%.64s' is not an RFC 3339 time (2026-01-02T03:04:05Z)", since);
        return;
    }
    json_object *samples = json_object_new_array();
    pthread_mutex_lock(&sm.mu);
    struct series *s = series_find(id);
    for (unsigned i = 0; s && i < s->count; i++) {
        const struct sample *smp = &s->ring[(s->head + RING_SAMPLES - s->count + i) % RING_SAMPLES];
        if (smp->t_ms > since_ms)
            json_object_array_add(samples, sample_json(smp));
    }
    pthread_mutex_unlock(&sm.mu);
    json_object *o = json_object_new_object();
    json_object_object_add(o, "sandbox", json_object_new_string(id));
    json_object_object_add(o, "interval_ms", json_object_new_int64(hulld.o->metrics_interval_ms));
    json_object_object_add(o, "samples", samples);
    resp_json(r, 200, o);
}

static void gauge(FILE *out, const char *name, const char *help, const char *type, int which,
                  const char *tenant)
{
    fprintf(out, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
    for (struct series *s = sm.all; s; s = s->next) {
        if ((tenant && strcmp(s->tenant, tenant) != 0) || s->count == 0)
            continue;
        const struct hull_sandbox_stats *st =
            &s->ring[(s->head + RING_SAMPLES - 1) % RING_SAMPLES].st;
        bool has = which == 0 ? st->has_cgroup : which == 1 ? st->has_disk : st->has_net;
        uint64_t v = which == 0   ? st->memory_peak_bytes
                     : which == 1 ? st->disk_bytes
                     : which == 2 ? st->net_rx_bytes
                                  : st->net_tx_bytes;
        if (has)
            fprintf(out, "%s{tenant=\"%s\",sandbox=\"%s\"} %llu\n", name, s->tenant, s->id,
                    (unsigned long long)v);
    }
}

void sbx_metrics_prometheus(FILE *out, const char *tenant)
{
    pthread_mutex_lock(&sm.mu);
    gauge(out, "hull_sandbox_memory_peak_bytes",
          "Most memory a sandbox has used (cgroup), at its latest sample.", "gauge", 0, tenant);
    gauge(out, "hull_sandbox_disk_bytes",
          "Space used on a sandbox's writable tmpfs mounts, at its latest sample.", "gauge", 1,
          tenant);
    gauge(out, "hull_sandbox_network_receive_bytes_total",
          "Bytes a sandbox's network received, at its latest sample.", "counter", 2, tenant);
    gauge(out, "hull_sandbox_network_transmit_bytes_total",
          "Bytes a sandbox's network sent, at its latest sample.", "counter", 3, tenant);
    pthread_mutex_unlock(&sm.mu);
}

/* The live CPU and memory counters of the caller's sandboxes (another
 * tenant's ids are not shown: the API answers 404 for them, so they must
 * not leak here either), read now rather than from the last sample. */
void sandboxes_metrics(FILE *out, const char *tenant)
{
    struct sbx_brief *b = NULL;
    size_t n = sandboxes_brief(&b);
    uint64_t *cpu = calloc(n ? n : 1, sizeof(*cpu)), *mem = calloc(n ? n : 1, sizeof(*mem));
    for (size_t i = 0; cpu && mem && i < n; i++) {
        hull_error e = NULL;
        bool mine = tenant == NULL || strcmp(b[i].tenant, tenant) == 0;
        if (!mine || b[i].container[0] == '\0' ||
            hull_sandbox_usage(b[i].container, &cpu[i], &mem[i], &e) < 0) {
            /* Not ours, not started yet or just destroyed: left out of this
             * scrape, which is not an error worth a log line. */
            hull_error_free(&e);
            cpu[i] = mem[i] = UINT64_MAX;
        }
    }
    fprintf(out, "# HELP hull_sandbox_cpu_seconds_total CPU time used by a sandbox (cgroup).\n"
                 "# TYPE hull_sandbox_cpu_seconds_total counter\n");
    for (size_t i = 0; cpu && mem && i < n; i++)
        if (cpu[i] != UINT64_MAX)
            fprintf(out, "hull_sandbox_cpu_seconds_total{tenant=\"%s\",sandbox=\"%s\"} %.6f\n",
                    b[i].tenant, b[i].id, (double)cpu[i] / 1e9);
    fprintf(out, "# HELP hull_sandbox_memory_bytes Memory in use by a sandbox (cgroup).\n"
                 "# TYPE hull_sandbox_memory_bytes gauge\n");
    for (size_t i = 0; cpu && mem && i < n; i++)
        if (mem[i] != UINT64_MAX)
            fprintf(out, "hull_sandbox_memory_bytes{tenant=\"%s\",sandbox=\"%s\"} %llu\n",
                    b[i].tenant, b[i].id, (unsigned long long)mem[i]);
    free(cpu);
    free(mem);
    free(b);
}
