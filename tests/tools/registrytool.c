/* registrytool: image_pull / image_push / image_login / image_logout from the
 * command line, for tests/integration/test_image_registry.py (the same calls
 * hull-image makes, without its option parsing).
 *
 *   registrytool pull STORE REF [OPTS]          prints the manifest digest
 *   registrytool push STORE LOCAL [DEST] [OPTS] prints the manifest digest
 *   registrytool login REGISTRY USER PASS [OPTS]
 *   registrytool logout REGISTRY [OPTS]
 *
 * OPTS: --tls-verify=false --cert-dir D --authfile F --creds U:P
 *       --platform OS/ARCH --registries-conf F --parallel N --timeout S
 *       --summary (the progress view's summary line on stderr)
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "image/image.h"
#include "image/registry.h"

static int fail(hull_error *err)
{
    fprintf(stderr, "registrytool: %s\n", hull_error_msg(*err));
    hull_error_free(err);
    return 1;
}

static int usage(void)
{
    fprintf(stderr, "usage: registrytool pull STORE REF | push STORE LOCAL [DEST] | login REGISTRY "
                    "USER PASS | logout REGISTRY [options]\n");
    return 2;
}

int main(int argc, char **argv)
{
    struct image_registry_opts o = {0};
    bool summary = false;
    char *pos[8];
    int npos = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        bool more = i + 1 < argc;
        if (strcmp(a, "--tls-verify=false") == 0)
            o.tls_insecure = true;
        else if (strcmp(a, "--tls-verify=true") == 0)
            o.tls_insecure = false;
        else if (strcmp(a, "--cert-dir") == 0 && more)
            o.cert_dir = argv[++i];
        else if (strcmp(a, "--authfile") == 0 && more)
            o.auth_file = argv[++i];
        else if (strcmp(a, "--creds") == 0 && more)
            o.creds = argv[++i];
        else if (strcmp(a, "--platform") == 0 && more)
            o.platform = argv[++i];
        else if (strcmp(a, "--registries-conf") == 0 && more)
            o.registries_conf = argv[++i];
        else if (strcmp(a, "--parallel") == 0 && more)
            o.parallel = atoi(argv[++i]);
        else if (strcmp(a, "--timeout") == 0 && more)
            o.timeout_s = atoi(argv[++i]);
        else if (strcmp(a, "--summary") == 0)
            summary = true;
        else if (a[0] == '-' || npos == 8)
            return usage();
        else
            pos[npos++] = argv[i];
    }
    if (npos < 2)
        return usage();
    hull_error err = NULL;
    const char *verb = pos[0];
    if (strcmp(verb, "login") == 0 && npos == 4)
        return image_login(pos[1], pos[2], pos[3], &o, &err) < 0 ? fail(&err) : 0;
    if (strcmp(verb, "logout") == 0 && npos == 2)
        return image_logout(pos[1], &o, &err) < 0 ? fail(&err) : 0;
    bool pull = strcmp(verb, "pull") == 0 && npos == 3;
    bool push = strcmp(verb, "push") == 0 && (npos == 3 || npos == 4);
    if (!pull && !push)
        return usage();
    struct image_store s = {0};
    if (image_store_open(pos[1], true, &s, &err) < 0)
        return fail(&err);
    struct image_progress_view *v = image_progress_view_new(stderr, !summary);
    o.progress = image_progress_view_cb;
    o.progress_arg = v;
    char *digest = NULL;
    int r = pull ? image_pull(&s, pos[2], &o, &digest, &err)
                 : image_push(&s, pos[2], npos == 4 ? pos[3] : NULL, &o, &digest, &err);
    char line[512];
    snprintf(line, sizeof(line), "%s %s", pull ? "pulled" : "pushed", pos[npos - 1]);
    image_progress_view_finish(v, r == 0 ? line : NULL);
    image_store_close(&s);
    if (r < 0)
        return fail(&err);
    printf("%s\n", digest);
    free(digest);
    return 0;
}
