/* Placeholders for the Redis queue (src/lib/service/queue.c, branch
 * `queue`): weak, so the real definitions win when both are linked.
 * Delete this file when queue.c lands. See docs/api.md, "Contract". */
#include <errno.h>
#include <stddef.h>

#include "hull.h"
#include "util/error.h"

__attribute__((weak)) int hull_queue_submit(const char *redis_url, const char *job_json,
                                            char **job_id, hull_error *err)
{
    (void)redis_url;
    (void)job_json;
    *job_id = NULL;
    return hull_error_set(err, ENOTSUP, "queue: the Redis queue is not built in");
}

__attribute__((weak)) int hull_queue_result(const char *redis_url, const char *job_id,
                                            char **result_json, hull_error *err)
{
    (void)redis_url;
    (void)job_id;
    *result_json = NULL;
    return hull_error_set(err, ENOTSUP, "queue: the Redis queue is not built in");
}
