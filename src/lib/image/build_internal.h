/* The builder's state, shared by build.c and build_step.c. */
#ifndef HULL_IMAGE_BUILD_INTERNAL_H
#define HULL_IMAGE_BUILD_INTERNAL_H

#include <stdarg.h>

#include "image/build.h"

struct builder {
    struct image_store *s;
    const struct image_build_opts *o;
    FILE *log;
    struct containerfile cf;
    int context_fd;
    char **ignore;      /* .containerignore patterns */
    bool *arg_used;     /* per --build-arg */
    char **global_args; /* "K=V" of ARGs before FROM */
    char **args;        /* "K=V" of ARGs in effect after FROM */
    char *tag;          /* normalised -t name, or NULL */

    json_object *config; /* the whole config document so far */
    struct image_desc *layers;
    char **diff_ids;
    size_t n_layers;
    bool cmd_set; /* CMD given in this file (ENTRYPOINT then keeps it) */

    char state[65]; /* the cache chain: the key of the last step */
    char *tmp;      /* <root>/hull/tmp/build-XXXXXX */
    int tmp_lock;
    int pin; /* image_store_pin while blobs are not yet named */
    int step, n_steps, n_run;
};

void builder_log(struct builder *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
const char *builder_build_arg(struct builder *b, const char *name);
/* One instruction (pre_from: an ARG before FROM). */
int builder_step(struct builder *b, struct cf_instr *in, bool pre_from, hull_error *err);

/* sha256 hex of bytes (build_cache.c). */
void build_sha256_hex(const void *data, size_t len, char out[65]);

#endif
