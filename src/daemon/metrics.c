/* GET /metrics: the Prometheus text exposition format (version 0.0.4). */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "daemon.h"
#include "sbx_metrics.h"

static const char *const verdicts[] = {
    "ok",           "exit_nonzero", "signaled",   "cpu_time_limit", "wall_time_limit",
    "memory_limit", "output_limit", "pids_limit", "internal_error", "killed",
    "bad_command"};
#define N_VERDICTS (sizeof(verdicts) / sizeof(verdicts[0]))
static const double buckets[] = {0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60};
#define N_BUCKETS (sizeof(buckets) / sizeof(buckets[0]))
static const char *const reasons[] = {
    "invalid_json", "invalid_request", "unauthorized", "forbidden", "not_found",
    "method_not_allowed", "conflict", "payload_too_large", "queue_full", "quota_exceeded",
    "not_implemented", "shutting_down", "internal",
    /* faults and malformed HTTP */
    "store_unavailable", "queue_unavailable", "uri_too_long", "headers_too_large",
    "http_version_not_supported",
    /* image pulls */
    "too_many_pulls", "registry_error", "registry_timeout", "insufficient_storage"};
#define N_REASONS (sizeof(reasons) / sizeof(reasons[0]))

static struct {
    pthread_mutex_t mu;
    unsigned long long runs[N_VERDICTS];
    unsigned long long bucket[N_BUCKETS]; /* cumulative counts are made at render time */
    unsigned long long count;
    double sum;
    unsigned long long rejected[N_REASONS];
} m = {.mu = PTHREAD_MUTEX_INITIALIZER};

void metrics_run_done(const char *verdict, double seconds)
{
    pthread_mutex_lock(&m.mu);
    for (size_t i = 0; i < N_VERDICTS; i++)
        if (strcmp(verdicts[i], verdict) == 0)
            m.runs[i]++;
    for (size_t i = 0; i < N_BUCKETS; i++)
        if (seconds <= buckets[i]) {
            m.bucket[i]++;
            break;
        }
    m.count++;
    m.sum += seconds;
    pthread_mutex_unlock(&m.mu);
}

void metrics_rejected(const char *code)
{
    pthread_mutex_lock(&m.mu);
    for (size_t i = 0; i < N_REASONS; i++)
        if (strcmp(reasons[i], code) == 0)
            m.rejected[i]++;
    pthread_mutex_unlock(&m.mu);
}

char *metrics_render(size_t *len, const char *tenant)
{
    char *buf = NULL;
    FILE *out = open_memstream(&buf, len);
    if (out == NULL)
        return NULL;
    unsigned running, queued;
    runner_counts(&running, &queued);
    pthread_mutex_lock(&m.mu);
    fprintf(out, "# HELP hull_runs_total Runs finished, by verdict.\n"
                 "# TYPE hull_runs_total counter\n");
    for (size_t i = 0; i < N_VERDICTS; i++)
        fprintf(out, "hull_runs_total{verdict=\"%s\"} %llu\n", verdicts[i], m.runs[i]);
    fprintf(out, "# HELP hull_run_duration_seconds Time from dispatch to result of a run.\n"
                 "# TYPE hull_run_duration_seconds histogram\n");
    unsigned long long cum = 0;
    for (size_t i = 0; i < N_BUCKETS; i++) {
        cum += m.bucket[i];
        fprintf(out, "hull_run_duration_seconds_bucket{le=\"%g\"} %llu\n", buckets[i], cum);
    }
    fprintf(out, "hull_run_duration_seconds_bucket{le=\"+Inf\"} %llu\n", m.count);
    fprintf(out, "hull_run_duration_seconds_sum %.6f\nhull_run_duration_seconds_count %llu\n",
            m.sum, m.count);
    fprintf(out, "# HELP hull_requests_rejected_total Requests answered with an error, by code.\n"
                 "# TYPE hull_requests_rejected_total counter\n");
    for (size_t i = 0; i < N_REASONS; i++)
        fprintf(out, "hull_requests_rejected_total{code=\"%s\"} %llu\n", reasons[i], m.rejected[i]);
    pthread_mutex_unlock(&m.mu);
    fprintf(out,
            "# HELP hull_runs_running Runs in a sandbox now.\n"
            "# TYPE hull_runs_running gauge\nhull_runs_running %u\n"
            "# HELP hull_queue_depth Runs waiting for a slot.\n"
            "# TYPE hull_queue_depth gauge\nhull_queue_depth %u\n"
            "# HELP hull_run_slots Runs that can run at once.\n"
            "# TYPE hull_run_slots gauge\nhull_run_slots %u\n"
            "# HELP hull_sandboxes_active Long-lived sandboxes alive.\n"
            "# TYPE hull_sandboxes_active gauge\nhull_sandboxes_active %u\n"
            "# HELP hull_image_pulls_running Image pulls (POST /v1/images) in progress.\n"
            "# TYPE hull_image_pulls_running gauge\nhull_image_pulls_running %u\n",
            running, queued, hulld.o->max_runs, sandboxes_active(), images_pulls_running());
    sandboxes_metrics(out, tenant);
    sbx_metrics_prometheus(out, tenant);
    fclose(out);
    return buf;
}
