/* `hull image build`: a Containerfile subset (build*.c, containerfile.c).
 *
 * Single stage: FROM image|scratch, ARG, ENV, RUN, COPY, ADD (local files
 * and tar archives only), WORKDIR, USER, LABEL, EXPOSE, CMD, ENTRYPOINT.
 * Each instruction that changes files makes one layer (an empty change makes
 * none); the others change the config. RUN runs in a hull container on an
 * overlay of the image so far, with no network unless asked.
 *
 * The build runs in a child process of the caller with a private mount
 * namespace: the caller's mounts are never touched, and a build killed at
 * any moment leaves no mount and no container (they die with it). What a
 * killed build leaves under <store>/hull/tmp/ is removed by the next one.
 *
 * Like every libarchive/container user in image/, reached only from
 * hull-image, hulld and libhull.so (see image.h).
 */
#ifndef HULL_IMAGE_BUILD_H
#define HULL_IMAGE_BUILD_H

#include <stdbool.h>
#include <stdio.h>

#include "image/image.h"

struct image_build_opts {
    const char *context_dir;
    const char *containerfile; /* NULL: CONTEXT/Containerfile, else CONTEXT/Dockerfile */
    const char *tag;           /* -t NAME (may be NULL: untagged, digest printed) */
    char *const *build_args;   /* "K=V", NULL-terminated, may be NULL */
    bool no_cache;
    bool network; /* --network host for RUN; default: no network (loopback only) */
    enum image_compression compression;
    bool quiet; /* no step log */
    FILE *log;  /* step log ("STEP 2/6: RUN ..."), program output goes to stdout/stderr */
};
/* Build, commit and tag (when o->tag). *manifest_digest (malloc'd) names
 * the result; printing it is the caller's. Errors read "Containerfile:7:
 * unknown instruction FOO", "Containerfile:5: step 3/6: RUN false: exit
 * status 1": the caller adds "image build: ". A failed build tags nothing
 * and leaves no mount, container or temporary directory (layers of the
 * steps that succeeded stay as cache entries, for prune). Root only. It
 * forks (the child builds): call it from a single-threaded process, as
 * hull_sandbox_run. */
int image_build(struct image_store *s, const struct image_build_opts *o, char **manifest_digest,
                hull_error *err);

/* ---- the Containerfile (containerfile.c) ---- */

enum cf_op {
    CF_FROM,
    CF_ARG,
    CF_ENV,
    CF_RUN,
    CF_COPY,
    CF_ADD,
    CF_WORKDIR,
    CF_USER,
    CF_LABEL,
    CF_EXPOSE,
    CF_CMD,
    CF_ENTRYPOINT,
};

struct cf_instr {
    enum cf_op op;
    int line;      /* where it starts (1-based) */
    char *keyword; /* upper case, "RUN" */
    char *args;    /* the rest, continuations joined, flags taken off, trimmed */
    char **flags;  /* "--chown=1:2" (COPY, ADD), NULL-terminated, may be NULL */
    char **json;   /* exec form ["a", "b"] (RUN, CMD, ENTRYPOINT, COPY, ADD), else NULL */
};

struct containerfile {
    char *name; /* for messages: "Containerfile" */
    struct cf_instr *v;
    size_t n;
};

/* Parse text. Errors name the line: "Containerfile:7: unknown instruction
 * FOO". Arguments are kept raw; variables are substituted at build time. */
int containerfile_parse(const char *text, size_t len, const char *name, struct containerfile *out,
                        hull_error *err);
void containerfile_free(struct containerfile *cf);

/* Variables for substitution: "K=V" vectors searched last first (so a
 * later ENV or ARG wins); NULL ends the list. */
struct cf_vars {
    char *const *v[4];
};
/* Value of name, or NULL when unset. */
const char *cf_var_get(const struct cf_vars *vars, const char *name);

/* Split s into words as Docker does for ENV, LABEL, ARG, COPY, ...: quotes
 * ('..' literal, ".." with \" \\ \$ escapes), backslash escapes, and $V,
 * ${V}, ${V:-word}, ${V:+word}, ${V-word}, ${V+word} substituted from vars
 * (unset is empty). split false: one word, spaces kept. vars NULL: no
 * substitution ($ is literal). */
int cf_words(const char *s, const struct cf_vars *vars, bool split, char ***out, hull_error *err);

/* The instruction as one line for the log and history: "RUN echo hi". */
char *cf_instr_text(const struct cf_instr *in);

/* ---- the cache (build_cache.c) ---- */

struct build_cache_entry {
    bool has_layer;
    struct image_desc layer; /* when has_layer */
    char *diff_id;           /* when has_layer */
    json_object *config;     /* the whole config document after the step */
};
void build_cache_entry_free(struct build_cache_entry *e);
/* key: 64 hex. 1 with *out filled on a usable hit; 0 on a miss (or an entry
 * whose layer blob is gone, or unreadable: a cache never fails a build). */
int build_cache_get(struct image_store *s, const char *key, struct build_cache_entry *out);
int build_cache_put(struct image_store *s, const char *key, const struct build_cache_entry *e,
                    hull_error *err);

/* ---- RUN (build_run.c) ---- */

struct build_run {
    const char *rootfs; /* the mounted image (read-write overlay) */
    const char *state;  /* a private container state root */
    char *const *argv;  /* the command */
    char *const *env;   /* "K=V" */
    const char *cwd;    /* absolute */
    const char *user;   /* USER: "name|uid[:group|gid]", or NULL for root */
    bool network;       /* the host's network instead of a new one with lo only */
    int id_seq;         /* makes the container id unique in the build */
    int exit_code;      /* filled */
};
/* Run it in a container to its end: 0 when it ran (whatever its exit
 * code), -1 when it could not. Creates the mount points the runtime needs
 * and removes again any it made that are still empty. */
int build_run_command(struct build_run *r, hull_error *err);

/* ---- COPY and ADD (build_copy.c) ---- */

struct build_copy {
    int context_fd;       /* O_PATH of the context directory */
    char *const *ignore;  /* .containerignore patterns, may be NULL */
    char *const *sources; /* relative to the context */
    const char *dest;     /* absolute in the image */
    int root_fd;          /* O_PATH of the mounted image */
    uid_t uid;            /* owner of what is copied */
    gid_t gid;
    mode_t chmod; /* --chmod: 010000 | mode, or 0 to keep the sources' */
    bool add;     /* ADD: local tar archives are extracted */
};
/* sha256 (64 hex) of the sources: names, types, modes and bytes. */
int build_copy_digest(const struct build_copy *c, char out[65], hull_error *err);
int build_copy_run(const struct build_copy *c, hull_error *err);
/* .containerignore (else .dockerignore) of the context, NULL when none. */
int build_ignore_load(int context_fd, char ***out, hull_error *err);
/* rel (a path in the context, no leading /) excluded by the patterns. */
bool build_ignored(char *const *ignore, const char *rel);

#endif
