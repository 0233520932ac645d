/* hull create | start | run | kill | delete: the OCI lifecycle verbs. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "util/error.h"

enum {
    OPT_CONSOLE = 256,
    OPT_PID_FILE,
    OPT_NO_PIVOT,
    OPT_NO_KEYRING,
    OPT_PRESERVE,
    OPT_KEEP,
    OPT_NO_SUBREAPER
};

static const struct option create_opts[] = {
    {"bundle", required_argument, NULL, 'b'},
    {"config", required_argument, NULL, 'f'},
    {"console-socket", required_argument, NULL, OPT_CONSOLE},
    {"pid-file", required_argument, NULL, OPT_PID_FILE},
    {"no-pivot", no_argument, NULL, OPT_NO_PIVOT},
    {"no-new-keyring", no_argument, NULL, OPT_NO_KEYRING},
    {"preserve-fds", required_argument, NULL, OPT_PRESERVE},
    {"detach", no_argument, NULL, 'd'},
    {"keep", no_argument, NULL, OPT_KEEP},
    {"no-subreaper", no_argument, NULL, OPT_NO_SUBREAPER},
    {"help", no_argument, NULL, 'h'},
    {0},
};

static const char create_help[] =
    "  -b, --bundle DIR          bundle directory holding config.json (default .)\n"
    "  -f, --config FILE         read FILE instead of the bundle's config.json\n"
    "                            (root.path stays relative to the bundle)\n"
    "      --console-socket PATH AF_UNIX socket that receives the pty master when\n"
    "                            process.terminal is true\n"
    "      --pid-file FILE       write the container's init pid to FILE\n"
    "      --no-pivot            chroot instead of pivot_root (for ramdisk roots)\n"
    "      --no-new-keyring      keep the caller's session keyring\n"
    "      --preserve-fds N      pass fds 3..3+N-1 to the container\n";

/* Parse create/run options; returns -1 on --help (done), 1 on error, 0 ok. */
static int parse_create(struct cli *cli, int argc, char **argv, struct hull_create_opts *o,
                        bool run, bool *detach, void (*help)(void))
{
    int c;
    while ((c = cli_getopt(argc, argv, run ? "b:f:dh" : "b:f:h", create_opts)) != -1) {
        switch (c) {
        case 'b':
            o->bundle = optarg;
            break;
        case 'f':
            o->config_path = optarg;
            break;
        case OPT_CONSOLE:
            o->console_socket = optarg;
            break;
        case OPT_PID_FILE:
            o->pid_file = optarg;
            break;
        case OPT_NO_PIVOT:
            o->no_pivot = true;
            break;
        case OPT_NO_KEYRING:
            o->no_new_keyring = true;
            break;
        case OPT_PRESERVE: {
            char *end;
            long n = strtol(optarg, &end, 10);
            if (!cli_plain_number(optarg, false) || *end != '\0' || n < 0 || n > 1000)
                return cli_usage_error(cli, "--preserve-fds: '%s' is not a count in [0, 1000]",
                                       optarg);
            o->preserve_fds = (int)n;
            break;
        }
        case 'd':
            if (!run)
                return cli_usage_error(cli, "invalid option -d");
            *detach = true;
            break;
        case OPT_KEEP:
            if (!run)
                return cli_usage_error(cli, "invalid option");
            o->keep = true;
            break;
        case OPT_NO_SUBREAPER:
            if (!run)
                return cli_usage_error(cli, "option '%s' is for run only", argv[optind - 1]);
            break;
        case 'h':
            help();
            return -1;
        default:
            return cli_bad_option(cli, argc, argv, c);
        }
    }
    if (cli_need_args(cli, argc, argv, 1, "container id") != 0)
        return 1;
    o->id = argv[optind];
    return 0;
}

static void help_create(void)
{
    printf("usage: hull create [options] ID\n"
           "\n"
           "Create container ID from the bundle: namespaces, mounts, cgroups are set\n"
           "up and the process waits; 'hull start ID' runs it.\n"
           "\n%s",
           create_help);
}

int cmd_create(struct cli *cli, int argc, char **argv)
{
    struct hull_create_opts o = {0};
    int r = parse_create(cli, argc, argv, &o, false, NULL, help_create);
    if (r != 0)
        return r < 0 ? 0 : r;
    hull_error err = NULL;
    if (hull_container_create(&cli->rt, &o, &err) < 0)
        return cli_fail(cli, &err, NULL);
    return 0;
}

static void help_run(void)
{
    printf("usage: hull run [options] ID\n"
           "\n"
           "Create and start container ID. In the foreground, hull waits for it,\n"
           "forwards the signals it receives, relays the terminal, deletes the\n"
           "container when it exits and exits with its status (128+N after signal N).\n"
           "\n"
           "  -d, --detach              start it and return at once\n"
           "      --keep                leave it stopped when it exits ('hull delete ID'\n"
           "                            removes it and runs the poststop hooks)\n%s",
           create_help);
}

int cmd_run(struct cli *cli, int argc, char **argv)
{
    struct hull_create_opts o = {0};
    bool detach = false;
    int r = parse_create(cli, argc, argv, &o, true, &detach, help_run);
    if (r != 0)
        return r < 0 ? 0 : r;
    hull_error err = NULL;
    int status = 0;
    if (hull_container_run(&cli->rt, &o, detach, &status, &err) < 0)
        return cli_fail(cli, &err, NULL);
    return status;
}

int cmd_start(struct cli *cli, int argc, char **argv)
{
    const char *id = NULL;
    int r = cli_one_id(cli, argc, argv,
                       "usage: hull start ID\n\nRun the process of created container ID.\n", &id);
    if (r != 0)
        return r < 0 ? 0 : r;
    hull_error err = NULL;
    if (hull_container_start(&cli->rt, id, &err) < 0)
        return cli_fail(cli, &err, NULL);
    return 0;
}

/* `hull kill ID -9`: kill(1)'s spelling, which runc and crun refuse as a
 * signal they do not know. Found before getopt, which would take it for an
 * unknown option and say so twice; the id is the first other operand. */
static int dashed_signal(struct cli *cli, int argc, char **argv)
{
    const char *id = NULL, *bad = NULL;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--") == 0)
            break;
        if (argv[i][0] == '-' && argv[i][1] != '-' && hull_signal_parse(argv[i] + 1) > 0)
            bad = bad ? bad : argv[i];
        else if (argv[i][0] != '-' && id == NULL)
            id = argv[i];
    }
    if (bad == NULL)
        return 0;
    hull_error err = NULL;
    hull_error_set(&err, EINVAL, "unknown signal '%s': give it without the dash ('%s')", bad,
                   bad + 1);
    return id ? cli_fail(cli, &err, "kill %s", id) : cli_fail(cli, &err, "kill");
}

int cmd_kill(struct cli *cli, int argc, char **argv)
{
    static const struct option opts[] = {
        {"all", no_argument, NULL, 'a'},
        {"help", no_argument, NULL, 'h'},
        {0},
    };
    bool all = false;
    if (dashed_signal(cli, argc, argv) != 0)
        return 1;
    int c;
    while ((c = cli_getopt(argc, argv, "ah", opts)) != -1) {
        switch (c) {
        case 'a':
            all = true;
            break;
        case 'h':
            printf("usage: hull kill [--all] ID [SIGNAL]\n"
                   "\n"
                   "Send SIGNAL (default TERM; a name like KILL or SIGKILL, or a number)\n"
                   "to the container's init, or with --all to every process in it.\n"
                   "Signal 0 sends nothing: the exit status says whether the init runs.\n"
                   "SIGNAL takes no dash (9, not kill(1)'s -9), as for runc and crun.\n");
            return 0;
        default:
            return cli_bad_option(cli, argc, argv, c);
        }
    }
    int n = argc - optind;
    if (n < 1)
        return cli_usage_error(cli, "missing container id");
    if (n > 2)
        return cli_usage_error(cli, "unexpected argument '%s'", argv[optind + 2]);
    if (argv[optind][0] == '\0')
        return cli_usage_error(cli, "container id must not be empty");
    const char *id = argv[optind];
    int sig = 15;
    if (n == 2) {
        /* 0, as for kill(1): is it running? No signal is sent. */
        sig = strcmp(argv[optind + 1], "0") == 0 ? 0 : hull_signal_parse(argv[optind + 1]);
        if (sig < 0) {
            hull_error err = NULL;
            hull_error_set(&err, EINVAL, "unknown signal '%s'", argv[optind + 1]);
            return cli_fail(cli, &err, "kill %s", id);
        }
    }
    hull_error err = NULL;
    if (hull_container_kill(&cli->rt, id, sig, all, &err) < 0)
        return cli_fail(cli, &err, NULL);
    return 0;
}

int cmd_delete(struct cli *cli, int argc, char **argv)
{
    static const struct option opts[] = {
        {"force", no_argument, NULL, 'f'},
        {"help", no_argument, NULL, 'h'},
        {0},
    };
    bool force = false;
    int c;
    while ((c = cli_getopt(argc, argv, "fh", opts)) != -1) {
        switch (c) {
        case 'f':
            force = true;
            break;
        case 'h':
            printf("usage: hull delete [--force] ID\n"
                   "\n"
                   "Release a stopped (or created) container: run its poststop hooks,\n"
                   "remove its cgroup and state. --force kills a running one first and\n"
                   "cleans up what a crashed create left; an unknown ID is then no error.\n");
            return 0;
        default:
            return cli_bad_option(cli, argc, argv, c);
        }
    }
    if (cli_need_args(cli, argc, argv, 1, "container id") != 0)
        return 1;
    hull_error err = NULL;
    if (hull_container_delete(&cli->rt, argv[optind], force, &err) < 0)
        return cli_fail(cli, &err, NULL);
    return 0;
}
