/* hull-image, the program behind `hull image`: shared state of one
 * invocation and the helpers its verbs use. Each verb is a thin front end
 * over src/lib/image; one file per group of verbs. */
#ifndef HULL_CLI_IMAGE_H
#define HULL_CLI_IMAGE_H

#include <getopt.h>
#include <stdbool.h>

#include "image/image.h"
#include "util/error.h"

struct img_cli {
    const char *verb; /* for messages: "pull", "list", ... */
    const char *root; /* --image-root; NULL: $HULL_IMAGE_ROOT, else the default */
    bool quiet;
    const char *format; /* --format, whatever the verb makes of it */
    bool tls_verify;
    const char *cert_dir, *auth_file, *creds, *platform;
    /* The store's root when img_open_store made the store (the root did
     * not exist, or was an empty directory: made_top ""), and the topmost
     * directory made for it: a failed verb removes what it made again if
     * nothing was stored (main). */
    char made_root[4096], made_top[4096];
};

/* Parse a verb's options: the common ones (--image-root, --quiet, --format,
 * --tls-verify, --cert-dir, --authfile, --creds, --platform) are handled
 * here and may come before or after the verb; the verb's own come back as
 * getopt would return them. 'h' is --help; '?' an unknown option (already
 * reported, as a usage error). */
int img_getopt(struct img_cli *c, int argc, char **argv, const char *shortopts,
               const struct option *verb_opts);
/* Reset getopt for a verb's argv (argv[0] is the verb). */
void img_getopt_reset(void);

/* "hull: image VERB[ CTX]: <error>", frees err; returns 1. */
int img_fail(struct img_cli *c, hull_error *err, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* "hull: image VERB: <msg>" and a hint at --help; returns 1. */
int img_usage(struct img_cli *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Exactly n (or, with n < 0, at least -n) operands after the options. */
int img_need_args(struct img_cli *c, int argc, char **argv, int n, const char *names);

/* Open the store: create it when the verb adds images. */
int img_open_store(struct img_cli *c, bool create, struct image_store *s, hull_error *err);

/* "zstd", "gzip" or "none"; -1 for anything else. */
int img_parse_compression(const char *s, enum image_compression *out);

typedef int (*img_verb_fn)(struct img_cli *c, int argc, char **argv);
int img_pull(struct img_cli *c, int argc, char **argv);
int img_push(struct img_cli *c, int argc, char **argv);
int img_login(struct img_cli *c, int argc, char **argv);
int img_logout(struct img_cli *c, int argc, char **argv);
int img_list(struct img_cli *c, int argc, char **argv);
int img_inspect(struct img_cli *c, int argc, char **argv);
int img_tag(struct img_cli *c, int argc, char **argv);
int img_remove(struct img_cli *c, int argc, char **argv);
int img_prune(struct img_cli *c, int argc, char **argv);
int img_import(struct img_cli *c, int argc, char **argv);
int img_load(struct img_cli *c, int argc, char **argv);
int img_save(struct img_cli *c, int argc, char **argv);
int img_bundle(struct img_cli *c, int argc, char **argv);
int img_build(struct img_cli *c, int argc, char **argv);
int img_prepare(struct img_cli *c, int argc, char **argv);

#endif
