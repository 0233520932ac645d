/* Layers unpacked by a pool of threads while a pull fetches the rest
 * (unpack_queue.c). Each job is image_layer_unpack: whole or absent. */
#ifndef HULL_IMAGE_UNPACK_QUEUE_H
#define HULL_IMAGE_UNPACK_QUEUE_H

#include <stdbool.h>
#include <stddef.h>

#include "image/image.h"

struct unpack_queue;

/* Workers for up to `layers` layers (at most one per CPU, four at most),
 * waiting for jobs. */
int unpack_queue_start(struct image_store *s, size_t layers, struct unpack_queue **out,
                       hull_error *err);
/* Unpack layer_digest's blob (stored by now) as diff_id. Both strings must
 * outlive the queue. A diff-id already queued is not queued again. */
int unpack_queue_add(struct unpack_queue *q, const char *layer_digest, const char *diff_id,
                     hull_error *err);
/* No more jobs: waits for the workers and frees q. cancel (the caller
 * has an error of its own, which stays first): the jobs not yet started
 * are dropped and the running ones stop early, keeping nothing; job errors
 * after the cancel are not reported. Otherwise -1 with the first job's
 * error when one failed. */
int unpack_queue_finish(struct unpack_queue *q, bool cancel, hull_error *err);

#endif
