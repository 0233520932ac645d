/* hull spec: write a default config.json (runc's defaults). */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"

static void help(void)
{
    printf("usage: hull spec [--bundle DIR] [--rootless]\n"
           "\n"
           "Write a default config.json into the bundle directory (default: the\n"
           "current directory). Its root.path is \"rootfs\"; edit process.args and\n"
           "the rest to taste. An existing config.json is never overwritten.\n"
           "\n"
           "  -b, --bundle DIR   where to write config.json\n"
           "      --rootless     map the caller to root in a user namespace\n");
}

int cmd_spec(struct cli *cli, int argc, char **argv)
{
    static const struct option opts[] = {
        {"bundle", required_argument, NULL, 'b'},
        {"rootless", no_argument, NULL, 'r'},
        {"help", no_argument, NULL, 'h'},
        {0},
    };
    const char *bundle = ".";
    bool rootless = false;
    int c;
    while ((c = cli_getopt(argc, argv, "b:h", opts)) != -1) {
        switch (c) {
        case 'b':
            bundle = optarg;
            break;
        case 'r':
            rootless = true;
            break;
        case 'h':
            help();
            return 0;
        default:
            return cli_bad_option(cli, argc, argv, c);
        }
    }
    if (cli_need_args(cli, argc, argv, 0, "") != 0)
        return 1;
    char path[4096];
    snprintf(path, sizeof(path), "%s/config.json", bundle);
    int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
    if (fd < 0) {
        fprintf(stderr, "hull: spec: %s: %s\n", path,
                errno == EEXIST ? "already exists (remove it first)" : strerror(errno));
        return 1;
    }
    char *json = hull_spec_default_json(rootless);
    size_t len = json ? strlen(json) : 0;
    bool ok = json && write(fd, json, len) == (ssize_t)len;
    if (close(fd) < 0)
        ok = false;
    free(json);
    if (!ok) {
        fprintf(stderr, "hull: spec: write %s: %s\n", path, strerror(errno));
        unlink(path);
        return 1;
    }
    return 0;
}
