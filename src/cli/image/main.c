/* hull-image: the program behind `hull image` (hull execs it with argv
 * starting at the verb).
 *
 *     hull image [common options] VERB [options] [arguments]
 *
 * It is separate from hull because it links libcurl and libarchive, which
 * the static hull that starts every container must not carry. Exit codes:
 * 0 success, 1 any failure (usage errors included, as in the rest of hull);
 * a failed verb leaves the store as it was. */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "image_cli.h"
#include "util/fs.h"

static const struct {
    const char *name;
    img_verb_fn fn;
    const char *summary;
} verbs[] = {
    {"pull", img_pull, "fetch an image from a registry"},
    {"push", img_push, "send an image to a registry"},
    {"login", img_login, "store credentials for a registry"},
    {"logout", img_logout, "forget a registry's credentials"},
    {"list", img_list, "list images (also: ls)"},
    {"inspect", img_inspect, "print images' manifest, config and layers as JSON"},
    {"tag", img_tag, "give an image another name"},
    {"remove", img_remove, "remove names, and the images no name keeps (also: rm)"},
    {"prune", img_prune, "delete blobs and layers that no image uses"},
    {"import", img_import, "make a one-layer image from a rootfs tarball"},
    {"load", img_load, "load images from a docker-archive or oci-archive"},
    {"save", img_save, "write an image as a docker-archive or oci-archive"},
    {"bundle", img_bundle, "make an OCI bundle (rootfs + config.json) from an image"},
    {"build", img_build, "build an image from a Containerfile"},
    {"prepare", img_prepare, "unpack an image's layers (no network)"},
};

enum {
    OPT_ROOT = 1000,
    OPT_TLS,
    OPT_CERT_DIR,
    OPT_AUTHFILE,
    OPT_CREDS,
    OPT_PLATFORM,
    OPT_FORMAT,
};

static const struct option common_opts[] = {
    {"image-root", required_argument, NULL, OPT_ROOT},
    {"quiet", no_argument, NULL, 'q'},
    {"tls-verify", optional_argument, NULL, OPT_TLS},
    {"cert-dir", required_argument, NULL, OPT_CERT_DIR},
    {"authfile", required_argument, NULL, OPT_AUTHFILE},
    {"creds", required_argument, NULL, OPT_CREDS},
    {"platform", required_argument, NULL, OPT_PLATFORM},
    {"format", required_argument, NULL, OPT_FORMAT},
    {"help", no_argument, NULL, 'h'},
};
#define N_COMMON (sizeof(common_opts) / sizeof(common_opts[0]))

static void usage(FILE *out)
{
    fprintf(out, "usage: hull image [options] COMMAND [options] [arguments]\n"
                 "\n"
                 "Pull, build, store and export OCI images. Images live in an OCI image\n"
                 "layout (skopeo's oci:DIR and umoci read it unchanged).\n"
                 "\n"
                 "Commands:\n");
    for (size_t i = 0; i < sizeof(verbs) / sizeof(verbs[0]); i++)
        fprintf(out, "  %-9s %s\n", verbs[i].name, verbs[i].summary);
    fprintf(out, "\n"
                 "Options (before or after COMMAND):\n"
                 "  --image-root DIR     the image store (default $HULL_IMAGE_ROOT, else\n"
                 "                       " HULL_IMAGE_DEFAULT_ROOT ")\n"
                 "  -q, --quiet          print only what scripts need (digests, ids)\n"
                 "  --tls-verify=false   registries: no certificate check, plain http allowed\n"
                 "  --cert-dir DIR       registries: extra CA certificates (*.crt)\n"
                 "  --authfile FILE      registries: credentials file (default\n"
                 "                       $REGISTRY_AUTH_FILE, then\n"
                 "                       $XDG_RUNTIME_DIR/containers/auth.json, then\n"
                 "                       ~/.docker/config.json)\n"
                 "  --creds USER:PASS    registries: credentials for this command only\n"
                 "  --platform OS/ARCH   which image of a multi-platform index (default: the\n"
                 "                       host's)\n"
                 "  --format FMT         list/inspect: table or json; save: docker-archive or\n"
                 "                       oci-archive\n"
                 "  -h, --help           print this help\n"
                 "\n"
                 "Run 'hull image COMMAND --help' for a command's options.\n"
                 "Exit status: 0 on success, 1 on any error (the store is then unchanged).\n");
}

void img_getopt_reset(void)
{
    optind = 0;
}

static bool parse_bool(const char *s, bool *out)
{
    if (s == NULL || strcmp(s, "true") == 0 || strcmp(s, "1") == 0) {
        *out = true;
        return true;
    }
    if (strcmp(s, "false") == 0 || strcmp(s, "0") == 0) {
        *out = false;
        return true;
    }
    return false;
}

/* One common option; false for an invalid value (reported). */
static bool common_opt(struct img_cli *c, int opt)
{
    switch (opt) {
    case OPT_ROOT:
        c->root = optarg;
        return true;
    case 'q':
        c->quiet = true;
        return true;
    case OPT_TLS:
        if (!parse_bool(optarg, &c->tls_verify)) {
            img_usage(c, "--tls-verify: '%s' is not true or false", optarg);
            return false;
        }
        return true;
    case OPT_CERT_DIR:
        c->cert_dir = optarg;
        return true;
    case OPT_AUTHFILE:
        c->auth_file = optarg;
        return true;
    case OPT_CREDS:
        c->creds = optarg;
        return true;
    case OPT_PLATFORM:
        c->platform = optarg;
        return true;
    case OPT_FORMAT:
        c->format = optarg;
        return true;
    }
    return false;
}

static bool is_common(int opt)
{
    return opt >= OPT_ROOT && opt <= OPT_FORMAT;
}

int img_getopt(struct img_cli *c, int argc, char **argv, const char *shortopts,
               const struct option *verb_opts)
{
    struct option all[64];
    size_t n = 0;
    for (; verb_opts != NULL && verb_opts[n].name != NULL && n < 48; n++)
        all[n] = verb_opts[n];
    for (size_t i = 0; i < N_COMMON; i++)
        all[n++] = common_opts[i];
    all[n] = (struct option){0};
    char shorts[64];
    snprintf(shorts, sizeof(shorts), ":%sqh", shortopts);
    for (;;) {
        int opt = getopt_long(argc, argv, shorts, all, NULL);
        if (opt == 'q' && strchr(shortopts, 'q') == NULL) {
            c->quiet = true;
            continue;
        }
        if (is_common(opt)) {
            if (!common_opt(c, opt))
                return '!';
            continue;
        }
        if (opt == '?') {
            if (optopt != 0)
                img_usage(c, "unknown option '-%c'", optopt);
            else
                img_usage(c, "unknown option '%s'", argv[optind - 1]);
            return '!';
        }
        if (opt == ':') {
            img_usage(c, "option '%s' needs a value", argv[optind - 1]);
            return '!';
        }
        return opt;
    }
}

int img_fail(struct img_cli *c, hull_error *err, const char *fmt, ...)
{
    /* Formatted whole, printed through hull_error_print (a huge argument
     * shortened, nothing else cut). */
    cleanup_free char *buf = NULL;
    if (fmt != NULL) {
        va_list ap;
        va_start(ap, fmt);
        if (vasprintf(&buf, fmt, ap) < 0)
            buf = NULL;
        va_end(ap);
    }
    const char *ctx = buf ? buf : "";
    const char *msg = hull_error_msg(err ? *err : NULL);
    /* Library errors may already say "pull REF: ..." or "image REF: ...";
     * say it once. */
    const char *heads[] = {c->verb, "image"};
    for (size_t i = 0; i < 2 && ctx[0]; i++) {
        size_t h = strlen(heads[i]), n = strlen(ctx);
        if (strncmp(msg, heads[i], h) == 0 && msg[h] == ' ' && strncmp(msg + h + 1, ctx, n) == 0 &&
            strncmp(msg + h + 1 + n, ": ", 2) == 0)
            msg += h + 1 + n + 2;
    }
    hull_error_print(stderr, "hull: image %s%s%s: %s", c->verb, ctx[0] ? " " : "", ctx, msg);
    hull_error_free(err);
    return 1;
}

int img_usage(struct img_cli *c, const char *fmt, ...)
{
    cleanup_free char *msg = NULL;
    va_list ap;
    va_start(ap, fmt);
    if (vasprintf(&msg, fmt, ap) < 0)
        msg = NULL;
    va_end(ap);
    const char *m = msg ? msg : "out of memory";
    if (c->verb != NULL) {
        hull_error_print(stderr, "hull: image %s: %s", c->verb, m);
        fprintf(stderr, "Try 'hull image %s --help'.\n", c->verb);
    } else {
        hull_error_print(stderr, "hull: image: %s", m);
        fprintf(stderr, "Try 'hull image --help'.\n");
    }
    return 1;
}

int img_need_args(struct img_cli *c, int argc, char **argv, int n, const char *names)
{
    int have = argc - optind;
    int want = n < 0 ? -n : n;
    if (have < want)
        return img_usage(c, "missing %s", names);
    if (n >= 0 && have > n)
        return img_usage(c, "unexpected argument '%s'", argv[optind + n]);
    return 0;
}

/* Note the root img_open_store is about to make (c->made_root) and the
 * topmost of its directories that does not exist (c->made_top). */
static void note_fresh_root(struct img_cli *c)
{
    const char *r = image_store_root(c->root);
    struct stat st;
    if (c->made_root[0] || strlen(r) >= sizeof(c->made_root))
        return;
    if (lstat(r, &st) == 0) {
        if (S_ISDIR(st.st_mode) && hull_dir_empty(r) == 1) /* mktemp -d's: the store is all ours */
            snprintf(c->made_root, sizeof(c->made_root), "%s", r);
        return;
    }
    if (errno != ENOENT)
        return;
    snprintf(c->made_top, sizeof(c->made_top), "%s", r);
    snprintf(c->made_root, sizeof(c->made_root), "%s", r);
    for (;;) {
        size_t len = strlen(c->made_top);
        while (len > 1 && c->made_top[len - 1] == '/')
            c->made_top[--len] = '\0';
        char *slash = strrchr(c->made_top, '/');
        if (slash == NULL)
            return; /* relative, one level: its parent is the working directory */
        char parent[4096];
        snprintf(parent, sizeof(parent), "%.*s",
                 slash == c->made_top ? 1 : (int)(slash - c->made_top), c->made_top);
        if (lstat(parent, &st) == 0 || errno != ENOENT)
            return;
        snprintf(c->made_top, sizeof(c->made_top), "%s", parent);
    }
}

int img_open_store(struct img_cli *c, bool create, struct image_store *s, hull_error *err)
{
    if (create)
        note_fresh_root(c);
    return image_store_open(c->root, create, s, err);
}

/* A verb failed: a store it made that holds nothing goes, and every
 * directory made for it, so a refused input leaves the host as it was. */
static void discard_fresh_root(const struct img_cli *c)
{
    if (c->made_root[0] == '\0' || !image_store_discard_empty(c->made_root, !c->made_top[0]))
        return;
    if (c->made_top[0] == '\0')
        return; /* the root was there: kept, emptied */
    char dir[4096];
    snprintf(dir, sizeof(dir), "%s", c->made_root);
    size_t top = strlen(c->made_top);
    /* "a/b/store/" names the store, not an entry in it: its parent is b. */
    for (size_t len = strlen(dir); len > 1 && dir[len - 1] == '/';)
        dir[--len] = '\0';
    for (;;) {
        char *slash = strrchr(dir, '/');
        if (strlen(dir) <= top || slash == NULL || slash == dir)
            return;
        *slash = '\0';
        if (strlen(dir) < top || rmdir(dir) < 0) /* only an empty one, made for the store */
            return;
    }
}

int main(int argc, char **argv)
{
    struct img_cli c = {.tls_verify = true};
    /* "+": stop at the verb; what follows is the verb's. */
    optind = 0;
    for (;;) {
        int opt = getopt_long(argc, argv, "+:qh", common_opts, NULL);
        if (opt == -1)
            break;
        if (opt == 'h') {
            usage(stdout);
            return 0;
        }
        if (opt == 'q' || is_common(opt)) {
            if (!common_opt(&c, opt))
                return 1;
            continue;
        }
        if (opt == ':')
            return img_usage(&c, "option '%s' needs a value", argv[optind - 1]);
        return img_usage(&c, "unknown option '%s'", argv[optind - 1]);
    }
    if (optind >= argc) {
        usage(stderr);
        return 1;
    }
    const char *name = argv[optind];
    if (strcmp(name, "ls") == 0)
        name = "list";
    else if (strcmp(name, "rm") == 0)
        name = "remove";
    else if (strcmp(name, "help") == 0) {
        usage(stdout);
        return 0;
    }
    for (size_t i = 0; i < sizeof(verbs) / sizeof(verbs[0]); i++) {
        if (strcmp(verbs[i].name, name) == 0) {
            c.verb = verbs[i].name;
            int vargc = argc - optind;
            char **vargv = argv + optind;
            img_getopt_reset();
            int rc = verbs[i].fn(&c, vargc, vargv);
            if (rc != 0)
                discard_fresh_root(&c);
            return rc;
        }
    }
    fprintf(stderr, "hull: image: unknown command '%s'\nTry 'hull image --help'.\n", name);
    return 1;
}
