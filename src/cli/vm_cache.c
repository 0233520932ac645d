/* `hull vm cache prune [--dry-run] [--json]`: remove what the VM cache
 * holds that no VM uses (hull_vm_cache_prune; docs/vm.md "The cache"). */
#include <stdio.h>
#include <string.h>

#include "cli.h"

static void usage(void)
{
    printf("usage: hull vm cache prune [--dry-run] [--json]\n"
           "\n"
           "Remove from the VM cache ($HULL_VM_CACHE, else /var/cache/hull/vm) the\n"
           "kernels, initramfs and rootfs images and the templates that no VM uses;\n"
           "each is built again when next needed. Kept: what a VM of the state root\n"
           "(any state) was created from, the template of a --from-template VM, and a\n"
           "template being restored or saved. --dry-run lists what would go;\n"
           "--json prints the report as JSON.\n");
}

static const char *field(json_object *o, const char *k)
{
    json_object *v;
    return json_object_object_get_ex(o, k, &v) ? json_object_get_string(v) : "";
}

/* One line per file removed or kept, then the total. */
static int print_report(const char *s, bool dry_run)
{
    json_object *r = json_tokener_parse(s), *v;
    if (r == NULL)
        return 1;
    if (json_object_object_get_ex(r, "removed", &v))
        for (size_t i = 0; i < json_object_array_length(v); i++) {
            json_object *e = json_object_array_get_idx(v, i);
            printf("%s %s\n", dry_run ? "would remove" : "removed", field(e, "path"));
        }
    if (json_object_object_get_ex(r, "kept", &v))
        for (size_t i = 0; i < json_object_array_length(v); i++) {
            json_object *e = json_object_array_get_idx(v, i);
            printf("kept %s (in use: %s)\n", field(e, "path"), field(e, "in_use_by"));
        }
    long long bytes = json_object_object_get_ex(r, "bytes", &v) ? json_object_get_int64(v) : 0;
    printf("%s %.1f MiB\n", dry_run ? "would free" : "freed", (double)bytes / (1 << 20));
    json_object_put(r);
    return 0;
}

int cmd_vm_cache(struct cli *cli, int argc, char **argv)
{
    static const struct option opts[] = {
        {"dry-run", no_argument, NULL, 'n'},
        {"json", no_argument, NULL, 'j'},
        {"help", no_argument, NULL, 'h'},
        {0},
    };
    bool dry_run = false, json = false;
    int c;
    while ((c = cli_getopt(argc, argv, "h", opts)) != -1) {
        switch (c) {
        case 'n':
            dry_run = true;
            break;
        case 'j':
            json = true;
            break;
        case 'h':
            usage();
            return 0;
        default:
            return cli_bad_option(cli, argc, argv, c);
        }
    }
    if (optind >= argc)
        return cli_usage_error(cli, "missing command (prune)");
    if (strcmp(argv[optind], "prune") != 0)
        return cli_usage_error(cli, "unknown command '%s' (prune)", argv[optind]);
    if (optind + 1 < argc)
        return cli_usage_error(cli, "unexpected argument '%s'", argv[optind + 1]);
    hull_error err = NULL;
    char *s = hull_vm_cache_prune(&cli->rt, dry_run, &err);
    if (s == NULL)
        return cli_fail(cli, &err, "vm cache prune");
    int rc = 0;
    if (json)
        printf("%s\n", s);
    else
        rc = print_report(s, dry_run);
    free(s);
    return rc;
}
