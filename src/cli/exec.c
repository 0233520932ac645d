/* hull exec: run a process in a running container. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

static void help(void)
{
    printf("usage: hull exec [options] ID [COMMAND [ARG...]]\n"
           "\n"
           "Run COMMAND in container ID: in all its namespaces and its cgroup, with\n"
           "its seccomp filter, capabilities and rlimits. Without --process, the\n"
           "container's own process is the template the options below override.\n"
           "In the foreground, hull waits and exits with the command's status.\n"
           "\n"
           "  -p, --process FILE        process JSON (config.json's \"process\") to run\n"
           "  -e, --env KEY=VALUE       set an environment variable (repeatable)\n"
           "      --cwd DIR             working directory inside the container\n"
           "  -u, --user UID[:GID]      run as this user\n"
           "  -g, --additional-gids GID add a supplementary group (repeatable)\n"
           "  -c, --cap CAP             add a capability to every set (repeatable)\n"
           "  -t, --tty                 allocate a pseudo-terminal\n"
           "  -d, --detach              do not wait for the process\n"
           "      --pid-file FILE       write the process's pid to FILE\n"
           "      --console-socket PATH send the pty master to this AF_UNIX socket\n"
           "      --no-new-privs        set no_new_privs\n"
           "      --apparmor PROFILE    AppArmor profile (hosts with AppArmor)\n"
           "      --process-label LABEL SELinux label (hosts with SELinux)\n"
           "      --preserve-fds N      pass fds 3..3+N-1 to the process\n");
}

static int push(char ***v, size_t *n, const char *s)
{
    char **nv = realloc(*v, (*n + 2) * sizeof(char *));
    if (nv == NULL)
        return -1;
    nv[(*n)++] = (char *)s;
    nv[*n] = NULL;
    *v = nv;
    return 0;
}

enum {
    OPT_CWD = 256,
    OPT_PID_FILE,
    OPT_CONSOLE,
    OPT_NNP,
    OPT_APPARMOR,
    OPT_LABEL,
    OPT_PRESERVE,
    OPT_CGROUP,
    OPT_IGNORE_PAUSED
};

/* The repeatable options, collected into NULL-terminated lists. */
struct exec_lists {
    char **env, **gids, **caps;
    size_t nenv, ngids, ncaps;
};

static void exec_lists_free(struct exec_lists *l)
{
    free(l->env);
    free(l->gids);
    free(l->caps);
}

/* One option into o / l: 0, or the exit status (-1 for --help: exit 0; 2
 * for one getopt refused, which the caller reports). */
static int exec_option(struct cli *cli, int c, struct hull_exec_opts *o, struct exec_lists *l)
{
    char *end;
    long n;
    switch (c) {
    case 'p':
        o->process_path = optarg;
        return 0;
    case 'e':
        return push(&l->env, &l->nenv, optarg) < 0 ? 1 : 0;
    case OPT_CWD:
        o->cwd = optarg;
        return 0;
    case 'u':
        o->user = optarg;
        return 0;
    case 'g':
        return push(&l->gids, &l->ngids, optarg) < 0 ? 1 : 0;
    case 'c':
        return push(&l->caps, &l->ncaps, optarg) < 0 ? 1 : 0;
    case 't':
        o->tty = true;
        return 0;
    case 'd':
        o->detach = true;
        return 0;
    case OPT_PID_FILE:
        o->pid_file = optarg;
        return 0;
    case OPT_CONSOLE:
        o->console_socket = optarg;
        return 0;
    case OPT_NNP:
        o->no_new_privs = true;
        return 0;
    case OPT_APPARMOR:
        o->apparmor_profile = optarg;
        return 0;
    case OPT_LABEL:
        o->process_label = optarg;
        return 0;
    case OPT_PRESERVE:
        n = strtol(optarg, &end, 10);
        if (!cli_plain_number(optarg, false) || *end != '\0' || n < 0 || n > 1000)
            return cli_usage_error(cli, "--preserve-fds: '%s' is not a count", optarg);
        o->preserve_fds = (int)n;
        return 0;
    case OPT_CGROUP:
    case OPT_IGNORE_PAUSED:
        return 0; /* accepted for runc compatibility */
    case 'h':
        help();
        return -1;
    default:
        return 2; /* getopt refused it: the caller says why */
    }
}

int cmd_exec(struct cli *cli, int argc, char **argv)
{
    static const struct option opts[] = {
        {"process", required_argument, NULL, 'p'},
        {"env", required_argument, NULL, 'e'},
        {"cwd", required_argument, NULL, OPT_CWD},
        {"user", required_argument, NULL, 'u'},
        {"additional-gids", required_argument, NULL, 'g'},
        {"cap", required_argument, NULL, 'c'},
        {"tty", no_argument, NULL, 't'},
        {"detach", no_argument, NULL, 'd'},
        {"pid-file", required_argument, NULL, OPT_PID_FILE},
        {"console-socket", required_argument, NULL, OPT_CONSOLE},
        {"no-new-privs", no_argument, NULL, OPT_NNP},
        {"apparmor", required_argument, NULL, OPT_APPARMOR},
        {"process-label", required_argument, NULL, OPT_LABEL},
        {"preserve-fds", required_argument, NULL, OPT_PRESERVE},
        {"cgroup", required_argument, NULL, OPT_CGROUP},
        {"ignore-paused", no_argument, NULL, OPT_IGNORE_PAUSED},
        {"help", no_argument, NULL, 'h'},
        {0},
    };
    struct hull_exec_opts o = {0};
    __attribute__((cleanup(exec_lists_free))) struct exec_lists l = {0};
    int c;
    /* "+": options stop at the container id; the rest is the command. */
    while ((c = cli_getopt(argc, argv, "+p:e:u:g:c:tdh", opts)) != -1) {
        int r = exec_option(cli, c, &o, &l);
        if (r == 2)
            return cli_bad_option(cli, argc, argv, c);
        if (r != 0)
            return r < 0 ? 0 : r;
    }
    if (optind >= argc)
        return cli_usage_error(cli, "missing container id");
    if (argv[optind][0] == '\0')
        return cli_usage_error(cli, "container id must not be empty");
    const char *id = argv[optind++];
    if (optind < argc && strcmp(argv[optind], "--") == 0)
        optind++;
    if (optind < argc && o.process_path)
        return cli_usage_error(cli, "give either --process or a command, not both");
    o.args = optind < argc ? argv + optind : NULL;
    o.env = l.env;
    o.additional_gids = l.gids;
    o.caps = l.caps;
    hull_error err = NULL;
    int status = 0;
    if (hull_container_exec(&cli->rt, id, &o, &status, &err) < 0)
        return cli_fail(cli, &err, NULL);
    return status;
}
