/* hull image build: a thin front end over image_build (build.h). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "image/build.h"
#include "image_cli.h"
#include "util/strv.h"

static void help_build(void)
{
    printf("usage: hull image build [-t NAME] [-f FILE] [--build-arg K=V]... [--no-cache]\n"
           "                        [--network none|host] [--compression zstd|gzip]\n"
           "                        [-q] CONTEXT\n"
           "\n"
           "Build an image from CONTEXT/Containerfile (else CONTEXT/Dockerfile): FROM,\n"
           "ARG, ENV, RUN, COPY, ADD, WORKDIR, USER, LABEL, EXPOSE, CMD, ENTRYPOINT.\n"
           "RUN steps run in a hull container with no network unless asked. Prints\n"
           "the manifest digest.\n"
           "\n"
           "  -t, --tag NAME        name the result\n"
           "  -f, --file FILE       the Containerfile\n"
           "  --build-arg K=V       set an ARG (repeatable)\n"
           "  --no-cache            run every step, reusing nothing\n"
           "  --network none|host   RUN's network: none (default, loopback only) or the\n"
           "                        host's\n"
           "  --compression ALG     of new layers: zstd (default) or gzip\n"
           "  -q, --quiet           no step log, only the digest\n");
}

int img_build(struct img_cli *c, int argc, char **argv)
{
    enum { OPT_ARG = 3000, OPT_NO_CACHE, OPT_NETWORK, OPT_COMPRESSION };
    static const struct option opts[] = {
        {"tag", required_argument, NULL, 't'},
        {"file", required_argument, NULL, 'f'},
        {"build-arg", required_argument, NULL, OPT_ARG},
        {"no-cache", no_argument, NULL, OPT_NO_CACHE},
        {"network", required_argument, NULL, OPT_NETWORK},
        {"compression", required_argument, NULL, OPT_COMPRESSION},
        {0},
    };
    struct image_build_opts o = {.compression = IMAGE_COMPRESS_ZSTD, .log = stderr};
    cleanup_strv char **args = NULL;
    int opt;
    while ((opt = img_getopt(c, argc, argv, "t:f:", opts)) != -1) {
        switch (opt) {
        case 'h':
            help_build();
            return 0;
        case 't':
            o.tag = optarg;
            break;
        case 'f':
            o.containerfile = optarg;
            break;
        case OPT_ARG:
            if (strchr(optarg, '=') == NULL)
                return img_usage(c, "--build-arg: '%s' is not KEY=VALUE", optarg);
            if (hull_strv_append(&args, optarg) < 0)
                return img_usage(c, "out of memory");
            break;
        case OPT_NO_CACHE:
            o.no_cache = true;
            break;
        case OPT_NETWORK:
            if (strcmp(optarg, "host") != 0 && strcmp(optarg, "none") != 0)
                return img_usage(c, "--network: '%s' is not none or host", optarg);
            o.network = strcmp(optarg, "host") == 0;
            break;
        case OPT_COMPRESSION:
            if (img_parse_compression(optarg, &o.compression) < 0 ||
                o.compression == IMAGE_COMPRESS_NONE)
                return img_usage(c, "--compression: '%s' is not zstd or gzip", optarg);
            break;
        default:
            return 1;
        }
    }
    if (img_need_args(c, argc, argv, 1, "CONTEXT") != 0)
        return 1;
    o.context_dir = argv[optind];
    o.build_args = args;
    o.quiet = c->quiet;
    hull_error err = NULL;
    if (o.tag != NULL) {
        cleanup_image_ref struct image_ref ref = {0};
        if (image_ref_parse(o.tag, &ref, &err) < 0)
            return img_fail(c, &err, "%s", o.tag);
    }
    cleanup_image_store struct image_store s = {.rootfd = -1, .lockfd = -1};
    cleanup_free char *digest = NULL;
    if (img_open_store(c, true, &s, &err) < 0 || image_build(&s, &o, &digest, &err) < 0)
        return img_fail(c, &err, "%s", o.tag ? o.tag : o.context_dir);
    printf("%s\n", digest);
    return 0;
}
