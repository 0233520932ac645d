/* hull — entry point: global flags, then one verb.
 *
 *     hull [--root DIR] [--log FILE] [--log-format text|json] [--debug] VERB ...
 *
 * The global flags and verbs follow runc's command line, so podman,
 * containerd and anything else that drives runc can drive hull unchanged.
 */
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "util/error.h"
#include "util/sibling.h"
#include "util/log.h"

static int cmd_image(struct cli *cli, int argc, char **argv);
static int cmd_network(struct cli *cli, int argc, char **argv);

static const struct cli_verb verbs[] = {
    {"spec", cmd_spec, "write a default config.json in the bundle"},
    {"create", cmd_create, "create a container (its process waits for start)"},
    {"start", cmd_start, "run the user process of a created container"},
    {"run", cmd_run, "create and start a container"},
    {"state", cmd_state, "print a container's state as JSON"},
    {"kill", cmd_kill, "send a signal to a container's process(es)"},
    {"delete", cmd_delete, "release a stopped container's resources"},
    {"list", cmd_list, "list containers"},
    {"exec", cmd_exec, "run a process in a running container"},
    {"ps", cmd_ps, "show a container's processes"},
    {"pause", cmd_pause, "freeze every process of a container"},
    {"resume", cmd_resume, "thaw a paused container"},
    {"update", cmd_update, "change a container's resource limits"},
    {"events", cmd_events, "print a container's statistics and OOM events"},
    {"sandbox", cmd_sandbox, "run untrusted code once, isolated, with limits"},
    {"features", cmd_features, "print what this build and host support"},
    {"token", cmd_token, "create, list and revoke hulld's bearer tokens"},
    {"cluster", cmd_cluster, "the nodes of a hull cluster (hulld --cluster)"},
    {"checkpoint", cmd_checkpoint, "not supported (use microVM snapshots)"},
    {"restore", cmd_checkpoint, "not supported (use microVM snapshots)"},
    {"vm", cmd_vm, "microVMs: create, start, exec, cp, snapshot, restore, ..."},
    {"image", cmd_image, "OCI images: pull, push, list, build, load, save, bundle, ..."},
    {"network", cmd_network, "hull's networks: create, list, inspect, remove, prune"},
};

/* `hull image` is a separate program, hull-image: it links libcurl and
 * libarchive, which the static hull (exec'd for every container) must not
 * carry. $HULL_IMAGE_HELPER, else beside this binary, else ../lib/hull/. */
static int exec_companion(struct cli *cli, const char *verb, const char *program, const char *env,
                          char **argv)
{
    char path[PATH_MAX];
    cleanup_hull_error hull_error err = {0};
    if (hull_find_sibling(program, env, path, sizeof(path), &err) < 0)
        return cli_fail(cli, &err, "%s", verb);
    argv[0] = (char *)program;
    execv(path, argv);
    fprintf(stderr, "hull: %s: exec %s: %s\n", verb, path, strerror(errno));
    return 1;
}

static int cmd_image(struct cli *cli, int argc, char **argv)
{
    (void)argc;
    return exec_companion(cli, "image", "hull-image", "HULL_IMAGE_HELPER", argv);
}

/* `hull network` is hull-net, for the same reason: libmnl and libnftables
 * (src/lib/net/net.h). $HULL_NET_HELPER, else beside this binary, else
 * ../lib/hull/. */
static int cmd_network(struct cli *cli, int argc, char **argv)
{
    (void)argc;
    return exec_companion(cli, "network", "hull-net", "HULL_NET_HELPER", argv);
}

static void usage(FILE *out)
{
    fprintf(out, "usage: hull [global options] COMMAND [options] [arguments]\n"
                 "\n"
                 "hull runs OCI containers, sandboxes for untrusted code and microVMs.\n"
                 "\n"
                 "Commands:\n");
    for (size_t i = 0; i < sizeof(verbs) / sizeof(verbs[0]); i++)
        fprintf(out, "  %-12s %s\n", verbs[i].name, verbs[i].summary);
    fprintf(out,
            "\n"
            "Global options:\n"
            "  --root DIR          state directory (default %s: " HULL_DEFAULT_ROOT " for root,\n"
            "                      $XDG_RUNTIME_DIR/hull or /tmp/hull-UID for other users)\n"
            "  --log FILE          write log messages to FILE (default: stderr)\n"
            "  --log-format FMT    text or json (default text)\n"
            "  --debug             log debug messages\n"
            "  --systemd-cgroup    linux.cgroupsPath is slice:prefix:name\n"
            "  --cgroup-manager M  cgroupfs (default), systemd (as --systemd-cgroup) or\n"
            "                      disabled (no cgroup; resource limits are refused)\n"
            "  --version, -v       print the version\n"
            "  --help, -h          print this help\n"
            "\n"
            "Run 'hull COMMAND --help' for a command's options.\n",
            hull_default_root());
}

static void version(void)
{
    char *v = hull_version_text();
    fputs(v ? v : "hull version " HULL_VERSION "\n", stdout);
    free(v);
}

int cli_fail(struct cli *cli, hull_error *err, const char *fmt, ...)
{
    /* Formatted whole (a fixed buffer cut long ones without a sign) and
     * printed through hull_error_print, which shortens a huge argument. */
    cleanup_free char *ctx = NULL;
    if (fmt != NULL) {
        va_list ap;
        va_start(ap, fmt);
        if (vasprintf(&ctx, fmt, ap) < 0)
            ctx = NULL;
        va_end(ap);
    }
    const char *msg = hull_error_msg(err ? *err : NULL);
    const char *c = ctx ? ctx : "";
    const char *sep = c[0] ? ": " : "";
    if (hull_log_fd() >= 0) {
        /* Engines read the log file; people read stderr. Serve both. */
        hull_log(HULL_LOG_ERROR, "%s%s%s", c, sep, msg);
    }
    hull_error_print(stderr, "hull: %s%s%s", c, sep, msg);
    hull_error_free(err);
    (void)cli;
    return 1;
}

int cli_usage_error(struct cli *cli, const char *fmt, ...)
{
    cleanup_free char *msg = NULL;
    va_list ap;
    va_start(ap, fmt);
    if (vasprintf(&msg, fmt, ap) < 0)
        msg = NULL;
    va_end(ap);
    const char *m = msg ? msg : "out of memory";
    if (hull_log_fd() >= 0)
        hull_log(HULL_LOG_ERROR, "%s: %s", cli->verb, m);
    hull_error_print(stderr, "hull: %s: %s", cli->verb, m);
    fprintf(stderr, "Try 'hull %s --help'.\n", cli->verb);
    return 1;
}

int cli_getopt(int argc, char **argv, const char *shortopts, const struct option *longopts)
{
    /* getopt's own complaint would name the verb ("spec: unrecognized
     * option"), not hull, and come before the verb's: silenced, and ':'
     * (after a leading '+') tells a missing value from an unknown option
     * for cli_bad_option. */
    char shorts[64];
    size_t lead = shortopts[0] == '+' ? 1 : 0;
    snprintf(shorts, sizeof(shorts), "%.*s:%s", (int)lead, shortopts, shortopts + lead);
    opterr = 0;
    /* getopt_long_only also takes "-bundle", which Go-flag based callers use. */
    return getopt_long_only(argc, argv, shorts, longopts, NULL);
}

const char *cli_option_problem(int argc, char **argv, int c, char *buf, size_t len)
{
    /* After an error getopt has stepped past the offending word, except
     * inside a cluster of short options ("-qz"), where optopt names it. */
    const char *arg = optind > 0 && optind <= argc ? argv[optind - 1] : "";
    const char *eq = strchr(arg, '=');
    int n = (int)strlen(arg);
    if (n > 64)
        n = 64; /* a 10 MB word is named by its start */
    const char *more = (size_t)n < strlen(arg) ? "..." : "";
    if (c == ':')
        snprintf(buf, len, "option '%.*s%s' needs a value", n, arg, more);
    else if (optopt != 0 && eq != NULL && arg[0] == '-')
        snprintf(buf, len, "option '%.*s' takes no value",
                 (int)(eq - arg) < n ? (int)(eq - arg) : n, arg);
    else if (optopt > ' ' && optopt < 127 && !(arg[0] == '-' && arg[1] == '-'))
        snprintf(buf, len, "unknown option '-%c'", optopt);
    else
        snprintf(buf, len, "unknown option '%.*s%s'", n, arg, more);
    return buf;
}

int cli_bad_option(struct cli *cli, int argc, char **argv, int c)
{
    char what[160];
    return cli_usage_error(cli, "%s", cli_option_problem(argc, argv, c, what, sizeof(what)));
}

int cli_one_id(struct cli *cli, int argc, char **argv, const char *usage, const char **id)
{
    static const struct option opts[] = {{"help", no_argument, NULL, 'h'}, {0}};
    int c;
    while ((c = cli_getopt(argc, argv, "h", opts)) != -1) {
        if (c == 'h') {
            fputs(usage, stdout);
            return -1;
        }
        return cli_bad_option(cli, argc, argv, c);
    }
    if (cli_need_args(cli, argc, argv, 1, "container id") != 0)
        return 1;
    *id = argv[optind];
    return 0;
}

int cli_need_args(struct cli *cli, int argc, char **argv, int n, const char *names)
{
    int have = argc - optind;
    if (have < n)
        return cli_usage_error(cli, "missing %s", names);
    if (have > n)
        return cli_usage_error(cli, "unexpected argument '%s'", argv[optind + n]);
    /* Said here: the library's "VERB ID: " would read "create : ...". */
    if (n >= 1 && strcmp(names, "container id") == 0 && argv[optind][0] == '\0')
        return cli_usage_error(cli, "container id must not be empty");
    return 0;
}

/* --preserve-fds N hands the container fds 3..3+N-1 as the caller left
 * them. A number in that range the caller left closed would otherwise be
 * the first hull opens for itself (its state directory, a socket, a
 * signalfd), and cross into the container with the caller's: a directory
 * fd of the host is a way out of the rootfs. So, before hull opens
 * anything, each closed number in the range is filled with /dev/null.
 * argv is scanned as it is, before option parsing, for that reason; a
 * stray "--preserve-fds" (say, in the container's command) only costs a
 * few /dev/null fds, close-on-exec unless the real option passes them. */
static void reserve_preserved_fds(int argc, char **argv)
{
    long n = 0;
    for (int i = 1; i < argc; i++) {
        /* Every spelling getopt_long_only takes: one dash or two, the name
         * or an abbreviation of it ("-pr"), the value after '=' or next. */
        const char *a = argv[i];
        if (a[0] != '-')
            continue;
        a += a[1] == '-' ? 2 : 1;
        size_t len = strcspn(a, "=");
        if (len < 2 || len > strlen("preserve-fds") || strncmp(a, "preserve-fds", len) != 0)
            continue;
        const char *v = a[len] == '=' ? a + len + 1 : i + 1 < argc ? argv[i + 1] : NULL;
        char *end;
        long k = v ? strtol(v, &end, 10) : 0;
        if (v && *v && *end == '\0' && k > n && k <= 1000)
            n = k;
    }
    for (int fd = 3; fd < 3 + n; fd++) {
        if (fcntl(fd, F_GETFD) >= 0 || errno != EBADF)
            continue; /* the caller's */
        int null = open("/dev/null", O_RDWR | O_CLOEXEC);
        if (null < 0)
            return; /* the fds above stay closed: hull's own may land there */
        if (null != fd) {
            dup3(null, fd, O_CLOEXEC);
            close(null);
        }
    }
}

int main(int argc, char **argv)
{
    reserve_preserved_fds(argc, argv);
    /* getopt names the program by argv[0] in its complaints: "hull: ...",
     * not the path it was started by. (Its own path comes from
     * /proc/self/exe wherever it is needed.) */
    argv[0] = (char *)"hull";
    struct cli cli = {.rt = {.root = hull_default_root()}, .log_format = "text"};
    enum {
        OPT_ROOT = 256,
        OPT_LOG,
        OPT_LOG_FORMAT,
        OPT_DEBUG,
        OPT_SYSTEMD,
        OPT_CGROUP_MANAGER,
        OPT_CRIU,
        OPT_ROOTLESS
    };
    static const struct option opts[] = {
        {"root", required_argument, NULL, OPT_ROOT},
        {"log", required_argument, NULL, OPT_LOG},
        {"log-format", required_argument, NULL, OPT_LOG_FORMAT},
        {"debug", no_argument, NULL, OPT_DEBUG},
        {"systemd-cgroup", no_argument, NULL, OPT_SYSTEMD},
        {"cgroup-manager", required_argument, NULL, OPT_CGROUP_MANAGER},
        {"criu", required_argument, NULL, OPT_CRIU},
        {"rootless", required_argument, NULL, OPT_ROOTLESS},
        {"version", no_argument, NULL, 'v'},
        {"help", no_argument, NULL, 'h'},
        {0},
    };
    int c;
    /* "+": stop at the verb; its options are its own. */
    while ((c = getopt_long_only(argc, argv, "+vh", opts, NULL)) != -1) {
        switch (c) {
        case OPT_ROOT:
            /* "" would be the current directory to some calls and nothing
             * to others: 'hull --root "" list' listed nothing, exit 0. */
            if (optarg[0] == '\0') {
                fprintf(stderr, "hull: --root: must not be empty\nTry 'hull --help'.\n");
                return 1;
            }
            cli.rt.root = optarg;
            break;
        case OPT_LOG:
            cli.log_path = optarg;
            break;
        case OPT_LOG_FORMAT:
            cli.log_format = optarg;
            break;
        case OPT_DEBUG:
            cli.debug = true;
            break;
        case OPT_SYSTEMD:
            cli.rt.systemd_cgroup = true;
            break;
        case OPT_CGROUP_MANAGER:
            /* crun's flag, which tools written for crun pass. */
            if (strcmp(optarg, "cgroupfs") == 0) {
                cli.rt.systemd_cgroup = false;
                cli.rt.no_cgroups = false;
            } else if (strcmp(optarg, "systemd") == 0) {
                cli.rt.systemd_cgroup = true;
                cli.rt.no_cgroups = false;
            } else if (strcmp(optarg, "disabled") == 0) {
                cli.rt.no_cgroups = true;
            } else {
                fprintf(stderr,
                        "hull: --cgroup-manager: unknown manager '%s' (cgroupfs, systemd or "
                        "disabled)\nTry 'hull --help'.\n",
                        optarg);
                return 1;
            }
            break;
        case OPT_CRIU:
        case OPT_ROOTLESS:
            /* Accepted for runc compatibility; hull decides these itself. */
            break;
        case 'v':
            version();
            return 0;
        case 'h':
            usage(stdout);
            return 0;
        default:
            fprintf(stderr, "Try 'hull --help'.\n");
            return 1;
        }
    }
    hull_error err = NULL;
    if (hull_log_init(cli.log_path, cli.log_format, cli.debug, &err) < 0) {
        fprintf(stderr, "hull: %s\n", hull_error_msg(err));
        hull_error_free(&err);
        return 1;
    }
    if (optind >= argc) {
        usage(stderr);
        return 1;
    }
    const char *name = argv[optind];
    for (size_t i = 0; i < sizeof(verbs) / sizeof(verbs[0]); i++) {
        if (strcmp(verbs[i].name, name) == 0) {
            cli.verb = name;
            int vargc = argc - optind;
            char **vargv = argv + optind;
            optind = 0; /* full getopt reset for the verb's own options */
            return verbs[i].fn(&cli, vargc, vargv);
        }
    }
    if (strcmp(name, "help") == 0) {
        usage(stdout);
        return 0;
    }
    hull_error_print(stderr, "hull: unknown command '%s'", name);
    fprintf(stderr, "Try 'hull --help'.\n");
    return 1;
}
