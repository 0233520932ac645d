/* hull sandbox run [options] -- CMD [ARGS...]
 * hull sandbox seccomp-profile
 * hull sandbox netpool [--size N] [--socket PATH]
 * hull sandbox cleanup
 *
 * A thin front end over hull_sandbox_run(): options become a struct
 * hull_policy, the result is printed as JSON or as the program's own output
 * followed by a one-line summary. */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "util/error.h"

/* Exit codes of `hull sandbox run` without --json (documented in --help). */
#define EXIT_LIMIT    124 /* a time, memory, output or pids limit was hit */
#define EXIT_INTERNAL 125 /* hull could not run it (bad input, setup failure) */
/* The pool's default socket, as sandbox/netpool.h has it (the CLI includes
 * only hull.h). */
#define HULL_NETPOOL_SOCK_TEXT "/run/hull/sandbox-netpool.sock"

static void help(void)
{
    printf("usage: hull sandbox run [options] -- CMD [ARG...]\n"
           "       hull sandbox run --image REF [options] [-- CMD [ARG...]]\n"
           "       hull sandbox seccomp-profile\n"
           "       hull sandbox netpool [--size N] [--socket PATH]\n"
           "       hull sandbox cleanup\n"
           "\n"
           "Run CMD once, fully isolated, and report how it went. By default the\n"
           "sandbox sees the host's /usr, /bin and /lib* read-only, a fresh /tmp (the\n"
           "only writable place), /proc and a minimal /dev; no network but loopback;\n"
           "it runs as an unprivileged user in a user namespace, with no capabilities,\n"
           "a seccomp allow-list and cgroup limits.\n"
           "\n"
           "Isolation:\n"
           "  --isolation LEVEL     process | container (default) | microvm\n"
           "Limits:\n"
           "  --cpu-time T          CPU time of all its processes (default 2s)\n"
           "  --wall-time T         wall-clock time (default 10s)\n"
           "  --memory SIZE         memory, no swap (default 256M)\n"
           "  --pids N              processes and threads (default 64)\n"
           "  --output SIZE         bytes kept of stdout and of stderr each (default 1M)\n"
           "  --tmp-size SIZE       size of /tmp (default 64M)\n"
           "  --open-files N        open files per process (default 64)\n"
           "  --cpus N              CPU bandwidth, e.g. 0.5 (default 1; refused with\n"
           "                        --isolation process, which has no cgroup)\n"
           "Filesystem:\n"
           "  --rootfs DIR          use DIR (a bundle or an unpacked image) as the root\n"
           "  --image REF           an image of the store as the root, read-only; its\n"
           "                        Env, WorkingDir and (without CMD) Entrypoint+Cmd\n"
           "  --image-root DIR      the image store (default $HULL_IMAGE_ROOT, else\n"
           "                        /var/lib/hull/images)\n"
           "  --pull missing|never  fetch an image the store lacks (default missing)\n"
           "  --bind SRC:DST[:rw]   bind a host path, read-only unless :rw (repeatable)\n"
           "  --workdir DIR         working directory (default /tmp)\n"
           "Data:\n"
           "  --stdin FILE|-        the program's stdin (default: empty)\n"
           "  --copy-in HOST:PATH   copy a host file to PATH under /tmp (repeatable)\n"
           "  --copy-out PATH:HOST  copy PATH under /tmp to the host after the run\n"
           "  --copy-out-max SIZE   data all copy-outs may write to the host together;\n"
           "                        holes stay holes (default 64M)\n"
           "  --env KEY=VALUE       set an environment variable (repeatable)\n"
           "Network:\n"
           "  --network NAME|none|host\n"
           "                        none (default): only loopback; NAME: a veth into\n"
           "                        hull network NAME (hull0 is made on first use) with\n"
           "                        an address, a default route and its own /etc/hosts\n"
           "                        and /etc/resolv.conf; host: the host's network\n"
           "                        (explicit opt-in, no isolation)\n"
           "  --egress LIST         with NAME: what the sandbox may reach: all (default:\n"
           "                        everything but the host, the network's other\n"
           "                        members and 169.254.0.0/16), none, or\n"
           "                        CIDR[:PORT[/tcp|udp]],... (IPv6 as\n"
           "                        [ADDR/LEN]:PORT/PROTO), all among them allowed; the\n"
           "                        host is reachable only where a rule names it\n"
           "  --publish [HOSTIP:]HOSTPORT:PORT[/tcp|udp]\n"
           "                        with NAME: the sandbox's PORT on the host's HOSTPORT\n"
           "                        (every address, 127.0.0.1 included, unless HOSTIP;\n"
           "                        IPv6 as [::1]:8080:80) (repeatable)\n"
           "Other:\n"
           "  --seccomp FILE        an OCI seccomp profile instead of the built-in one\n"
           "  --json                print the result as one JSON object\n"
           "\n"
           "T is 2s, 500ms, 1m; SIZE is 256M, 1G, 65536.\n"
           "\n"
           "Without --json, the program's output is passed through and a summary line\n"
           "goes to stderr; the exit status is the program's (128+N after signal N),\n"
           "124 when a limit was hit, 127 when the command does not exist and 126 when\n"
           "it cannot be executed (verdict bad_command, said on stderr as one error),\n"
           "125 when hull could not run it. With --json the\n"
           "exit status is 0 whenever the run happened (the verdict says how) and 125\n"
           "for bad input. SIGINT, SIGTERM or SIGHUP stop the run, clean it up and\n"
           "exit 128+N (verdict killed), a --copy-out under way too (its destination\n"
           "is left as it was).\n"
           "\n"
           "Each --copy-out has a status in the result (files[].status: ok, missing,\n"
           "truncated, refused or failed); any but ok is also said once on stderr.\n"
           "\n"
           "netpool keeps fresh network namespaces ready and hands each to exactly one\n"
           "sandbox run, which then need not make its own (runs use it when it answers;\n"
           "each namespace goes when its run ends). Stops on SIGINT, SIGTERM, SIGHUP.\n"
           "  --size N              namespaces kept ready (default 8, at most 256)\n"
           "  --socket PATH         where it answers (default " HULL_NETPOOL_SOCK_TEXT ";\n"
           "                        runs ask only there)\n"
           "\n"
           "cleanup removes what runs whose hull was killed left behind (state\n"
           "directories, cgroups, network attachments) and prints how many it removed;\n"
           "runs in progress are not touched. The next run does the same for its own\n"
           "kind; hulld does it at start-up.\n");
}

/* hull sandbox cleanup */
static int sandbox_cleanup(int argc, char **argv)
{
    if (argc > 1) {
        if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0) {
            help();
            return 0;
        }
        fprintf(stderr, "hull: sandbox cleanup: unexpected argument '%s'\n", argv[1]);
        return EXIT_INTERNAL;
    }
    if (geteuid() != 0) {
        fprintf(stderr, "hull: sandbox cleanup: needs root (sandboxes are root's)\n");
        return 1;
    }
    size_t removed = 0;
    hull_error err = NULL;
    int rc = hull_sandbox_cleanup(&removed, &err);
    printf("removed %zu\n", removed);
    if (rc < 0) {
        fprintf(stderr, "hull: %s\n", hull_error_msg(err));
        hull_error_free(&err);
        return 1;
    }
    return 0;
}

/* hull sandbox netpool [--size N] [--socket PATH] */
static int sandbox_netpool(int argc, char **argv)
{
    static const struct option opts[] = {{"size", required_argument, NULL, 's'},
                                         {"socket", required_argument, NULL, 'S'},
                                         {"help", no_argument, NULL, 'h'},
                                         {NULL, 0, NULL, 0}};
    unsigned long size = 8;
    const char *sock = NULL;
    int c;
    opterr = 0; /* said once, below */
    while ((c = getopt_long(argc, argv, "+:h", opts, NULL)) != -1) {
        char *end = NULL;
        switch (c) {
        case 's':
            errno = 0;
            size = strtoul(optarg, &end, 10);
            if (!cli_plain_number(optarg, false) || errno || end == optarg || *end || size == 0 ||
                size > 256) {
                fprintf(stderr, "hull: sandbox netpool: --size: '%s' is not 1 to 256\n", optarg);
                return EXIT_INTERNAL;
            }
            break;
        case 'S':
            sock = optarg;
            break;
        case 'h':
            help();
            return 0;
        default: {
            char what[160];
            fprintf(stderr, "hull: sandbox netpool: %s\n",
                    cli_option_problem(argc, argv, c, what, sizeof(what)));
            return EXIT_INTERNAL;
        }
        }
    }
    if (optind < argc) {
        fprintf(stderr, "hull: sandbox netpool: unexpected argument '%s'\n", argv[optind]);
        return EXIT_INTERNAL;
    }
    hull_error err = NULL;
    if (hull_sandbox_netpool_serve(sock, (unsigned)size, &err) < 0) {
        fprintf(stderr, "hull: sandbox %s\n", hull_error_msg(err));
        hull_error_free(&err);
        return 1;
    }
    return 0;
}

/* SIGINT, SIGTERM and SIGHUP stop the run through the policy's cancel fd,
 * so the sandbox is killed and cleaned up before hull exits 128+N; dying
 * on the spot would leave its state and cgroups behind. */
static int cancel_pipe[2] = {-1, -1};
static pid_t cli_pid;
static volatile sig_atomic_t cancelled_by;

static void on_cancel(int sig)
{
    /* The sandbox's init is a fork of hull and has this handler until its
     * execve; only hull itself may write to the pipe. */
    if (getpid() != cli_pid)
        return;
    int saved = errno;
    cancelled_by = sig;
    ssize_t n = write(cancel_pipe[1], "x", 1);
    (void)n;
    errno = saved;
}

static int catch_cancel(void)
{
    if (pipe2(cancel_pipe, O_CLOEXEC | O_NONBLOCK) < 0)
        return -1;
    cli_pid = getpid();
    struct sigaction sa = {.sa_handler = on_cancel, .sa_flags = SA_RESTART};
    sigemptyset(&sa.sa_mask);
    const int sigs[] = {SIGINT, SIGTERM, SIGHUP};
    for (size_t i = 0; i < sizeof(sigs) / sizeof(sigs[0]); i++)
        sigaction(sigs[i], &sa, NULL);
    return cancel_pipe[0];
}

/* "A:B" or "A:B:rw" */
static int split_pair(const char *arg, char **a, char **b, char **mode)
{
    const char *c1 = strchr(arg, ':');
    if (c1 == NULL || c1 == arg || c1[1] == '\0')
        return -1;
    const char *c2 = strchr(c1 + 1, ':');
    *a = strndup(arg, (size_t)(c1 - arg));
    *b = c2 ? strndup(c1 + 1, (size_t)(c2 - c1 - 1)) : strdup(c1 + 1);
    *mode = c2 ? strdup(c2 + 1) : NULL;
    return 0;
}

static int bad(const char *opt, const char *val, const char *what)
{
    fprintf(stderr, "hull: sandbox run: %s: '%s' is not %s\nTry 'hull sandbox --help'.\n", opt, val,
            what);
    return EXIT_INTERNAL;
}

static int parse_u32(const char *s, uint32_t *out)
{
    char *end;
    errno = 0;
    /* Digits only: strtoul would also take " 5", "+5" and "-1" (wrapped). */
    if (s[0] == '\0' || strspn(s, "0123456789") != strlen(s))
        return -1;
    unsigned long v = strtoul(s, &end, 10);
    if (*end != '\0' || errno || v > UINT32_MAX)
        return -1;
    *out = (uint32_t)v;
    return 0;
}

static void summary(const struct hull_result *r)
{
    /* Not hull's failure but the command's: said as `hull run` says it. */
    if (r->verdict == HULL_VERDICT_BAD_COMMAND) {
        fprintf(stderr, "hull: sandbox: %s\n", r->error ? r->error : "the command cannot run");
        return;
    }
    fprintf(stderr, "hull: sandbox: verdict=%s", hull_verdict_name(r->verdict));
    if (r->signal)
        fprintf(stderr, " signal=%d", r->signal);
    else
        fprintf(stderr, " exit=%d", r->exit_code);
    fprintf(stderr, " cpu=%llums wall=%llums memory=%lluKiB%s%s",
            (unsigned long long)r->cpu_time_ms, (unsigned long long)r->wall_time_ms,
            (unsigned long long)r->max_memory_kb, r->out.truncated ? " stdout-truncated" : "",
            r->err.truncated ? " stderr-truncated" : "");
    if (r->error)
        fprintf(stderr, " error=\"%s\"", r->error);
    fputc('\n', stderr);
}

/* One line for each copy-out that did not come out whole. */
static void copy_out_notes(const struct hull_result *r)
{
    for (size_t i = 0; i < r->n_files; i++) {
        const struct hull_copied_file *f = &r->files[i];
        if (f->status != HULL_COPY_OK)
            fprintf(stderr, "hull: sandbox: copy-out %s: %s\n", hull_copy_status_name(f->status),
                    f->error ? f->error : f->sandbox);
    }
}

static int exit_status(const struct hull_result *r)
{
    switch (r->verdict) {
    case HULL_VERDICT_OK:
    case HULL_VERDICT_EXIT_NONZERO:
        return r->exit_code;
    case HULL_VERDICT_SIGNALED:
        return 128 + r->signal;
    case HULL_VERDICT_BAD_COMMAND:
        return r->exit_code; /* a shell's: 127 not found, 126 not runnable */
    case HULL_VERDICT_INTERNAL_ERROR:
    case HULL_VERDICT_KILLED:
        return EXIT_INTERNAL;
    default:
        return EXIT_LIMIT;
    }
}

static void write_all(int fd, const char *d, size_t n)
{
    while (n > 0) {
        ssize_t w = write(fd, d, n);
        if (w <= 0)
            return;
        d += w;
        n -= (size_t)w;
    }
}

/* How each option's value lands in the policy. */
enum run_kind {
    K_ISOLATION,
    K_DURATION, /* uint64_t ms */
    K_SIZE,     /* uint64_t bytes */
    K_COUNT,    /* uint32_t */
    K_CPUS,     /* double */
    K_STRING,   /* char *, replaced */
    K_STDIN,
    K_BIND,
    K_COPY_IN,
    K_COPY_OUT,
    K_ENV,
    K_NETWORK,
    K_PUBLISH,
    K_JSON,
    K_PULL,
};

struct run_opt {
    const char *name;
    enum run_kind kind;
    size_t off;       /* the field in struct hull_policy, where the kind has one */
    const char *what; /* "'VALUE' is not <what>" */
};

#define FIELD(f) offsetof(struct hull_policy, f)

/* In the order --help lists them; getopt_long's val is 256 + the index. */
static const struct run_opt run_opts[] = {
    {"isolation", K_ISOLATION, 0, "process, container or microvm"},
    {"cpu-time", K_DURATION, FIELD(cpu_time_ms), "a duration (2s, 500ms, 1m)"},
    {"wall-time", K_DURATION, FIELD(wall_time_ms), "a duration (2s, 500ms, 1m)"},
    {"memory", K_SIZE, FIELD(memory_bytes), "a size (256M, 1G, 65536)"},
    {"pids", K_COUNT, FIELD(pids), "a count"},
    {"output", K_SIZE, FIELD(output_bytes), "a size (256M, 1G, 65536)"},
    {"tmp-size", K_SIZE, FIELD(tmp_bytes), "a size (256M, 1G, 65536)"},
    {"open-files", K_COUNT, FIELD(open_files), "a count"},
    {"cpus", K_CPUS, 0, "a number"},
    {"rootfs", K_STRING, FIELD(rootfs), NULL},
    {"image", K_STRING, FIELD(image), NULL},
    {"image-root", K_STRING, FIELD(image_root), NULL},
    {"pull", K_PULL, 0, "missing or never"},
    {"bind", K_BIND, 0, "SRC:DST[:rw]"},
    {"workdir", K_STRING, FIELD(workdir), NULL},
    {"stdin", K_STDIN, 0, NULL},
    {"copy-in", K_COPY_IN, 0, "HOST:PATH"},
    {"copy-out", K_COPY_OUT, 0, "PATH:HOST"},
    {"copy-out-max", K_SIZE, FIELD(copy_out_max), "a size (256M, 1G, 65536)"},
    {"env", K_ENV, 0, NULL},
    {"network", K_NETWORK, 0, NULL},
    {"egress", K_STRING, FIELD(egress), NULL},
    {"publish", K_PUBLISH, 0, NULL},
    {"seccomp", K_STRING, FIELD(seccomp_path), NULL},
    {"json", K_JSON, 0, NULL},
};
#define N_RUN_OPTS (sizeof(run_opts) / sizeof(run_opts[0]))

static int add_bind(struct hull_policy *p, const char *arg)
{
    cleanup_free char *a = NULL, *b = NULL, *mode = NULL;
    if (split_pair(arg, &a, &b, &mode) < 0 ||
        (mode && strcmp(mode, "rw") != 0 && strcmp(mode, "ro") != 0))
        return bad("--bind", arg, "SRC:DST[:rw]");
    struct hull_bind *nb = realloc(p->binds, (p->n_binds + 1) * sizeof(*nb));
    if (nb == NULL)
        return EXIT_INTERNAL;
    p->binds = nb;
    p->binds[p->n_binds++] = (struct hull_bind){a, b, mode && strcmp(mode, "rw") == 0};
    a = b = NULL;
    return 0;
}

static int add_copy(struct hull_policy *p, const struct run_opt *o, const char *arg)
{
    bool in = o->kind == K_COPY_IN;
    cleanup_free char *a = NULL, *b = NULL, *mode = NULL;
    if (split_pair(arg, &a, &b, &mode) < 0 || mode != NULL)
        return bad(in ? "--copy-in" : "--copy-out", arg, o->what);
    struct hull_copy **list = in ? &p->copy_in : &p->copy_out;
    size_t *n = in ? &p->n_copy_in : &p->n_copy_out;
    struct hull_copy *nl = realloc(*list, (*n + 1) * sizeof(*nl));
    if (nl == NULL)
        return EXIT_INTERNAL;
    *list = nl;
    nl[(*n)++] = in ? (struct hull_copy){a, b} : (struct hull_copy){b, a};
    a = b = NULL;
    return 0;
}

/* none | host | NAME (the last of several wins, as for every option); the
 * name is checked with the rest of the policy (hull_policy_validate). */
static int set_network(struct hull_policy *p, const char *arg)
{
    free(p->network);
    p->network = NULL;
    p->network_host = strcmp(arg, "host") == 0;
    if (strcmp(arg, "none") == 0 || p->network_host)
        return 0;
    p->network = strdup(arg);
    return p->network ? 0 : EXIT_INTERNAL;
}

static int add_publish(struct hull_policy *p, const char *arg)
{
    struct hull_publish pub;
    hull_error err = NULL;
    if (hull_publish_parse(arg, &pub, &err) < 0) {
        fprintf(stderr, "hull: sandbox run: %s\nTry 'hull sandbox --help'.\n", hull_error_msg(err));
        hull_error_free(&err); /* said just above */
        return EXIT_INTERNAL;
    }
    struct hull_publish *np = realloc(p->publish, (p->n_publish + 1) * sizeof(*np));
    if (np == NULL)
        return EXIT_INTERNAL;
    p->publish = np;
    p->publish[p->n_publish++] = pub;
    return 0;
}

/* Apply one option to the policy: 0, or EXIT_INTERNAL (said on stderr when
 * the value is bad; out of memory is not said, as before). */
static int apply(struct hull_policy *p, bool *json, const struct run_opt *o, const char *arg)
{
    char *field = (char *)p + o->off;
    if (o->kind == K_SIZE && o->off == FIELD(tmp_bytes))
        p->tmp_given = true;
    char opt[32];
    snprintf(opt, sizeof(opt), "--%s", o->name);
    char *end;
    switch (o->kind) {
    case K_ISOLATION:
        return hull_isolation_parse(arg, &p->isolation) < 0 ? bad(opt, arg, o->what) : 0;
    case K_DURATION:
        return hull_parse_duration_ms(arg, (uint64_t *)field) < 0 ? bad(opt, arg, o->what) : 0;
    case K_SIZE:
        return hull_parse_size(arg, (uint64_t *)field) < 0 ? bad(opt, arg, o->what) : 0;
    case K_COUNT:
        return parse_u32(arg, (uint32_t *)field) < 0 ? bad(opt, arg, o->what) : 0;
    case K_CPUS:
        if (arg[strspn(arg, "0123456789.")] != '\0' || strpbrk(arg, "0123456789") == NULL)
            return bad(opt, arg, o->what); /* no " 1", "+1", "0x10", "1e3" */
        p->cpus = strtod(arg, &end);
        p->cpus_given = true;
        return end == arg || *end != '\0' ? bad(opt, arg, o->what) : 0;
    case K_STRING:
        free(*(char **)field);
        *(char **)field = strdup(arg);
        return 0;
    case K_STDIN:
        free(p->stdin_path);
        p->stdin_path = strdup(strcmp(arg, "-") == 0 ? "/dev/stdin" : arg);
        return 0;
    case K_BIND:
        return add_bind(p, arg);
    case K_COPY_IN:
    case K_COPY_OUT:
        return add_copy(p, o, arg);
    case K_ENV:
        return hull_policy_add_env(p, arg) < 0 ? EXIT_INTERNAL : 0;
    case K_NETWORK:
        return set_network(p, arg);
    case K_PUBLISH:
        return add_publish(p, arg);
    case K_JSON:
        *json = true;
        return 0;
    case K_PULL:
        return hull_pull_policy_parse(arg, &p->pull) < 0 ? bad(opt, arg, o->what) : 0;
    }
    return EXIT_INTERNAL;
}

/* Options up to the command into p: 0 to run, 1 after --help, else the
 * exit status (EXIT_INTERNAL). */
static int parse_run_options(int argc, char **argv, struct hull_policy *p, bool *json)
{
    struct option opts[N_RUN_OPTS + 2];
    for (size_t i = 0; i < N_RUN_OPTS; i++)
        opts[i] = (struct option){run_opts[i].name,
                                  run_opts[i].kind == K_JSON ? no_argument : required_argument,
                                  NULL, 256 + (int)i};
    opts[N_RUN_OPTS] = (struct option){"help", no_argument, NULL, 'h'};
    opts[N_RUN_OPTS + 1] = (struct option){0};
    int c;
    /* "+": stop at the command; its own options are not ours. */
    opterr = 0; /* said once, below */
    while ((c = getopt_long(argc, argv, "+:h", opts, NULL)) != -1) {
        if (c == 'h') {
            help();
            return 1;
        }
        if (c < 256 || c >= 256 + (int)N_RUN_OPTS) {
            char what[160];
            fprintf(stderr, "hull: sandbox run: %s\nTry 'hull sandbox --help'.\n",
                    cli_option_problem(argc, argv, c, what, sizeof(what)));
            return EXIT_INTERNAL;
        }
        int r = apply(p, json, &run_opts[c - 256], optarg);
        if (r != 0)
            return r;
    }
    if (optind < argc && strcmp(argv[optind], "--") == 0)
        optind++;
    /* An image may bring its own command (Entrypoint + Cmd). */
    if (optind >= argc && p->image == NULL) {
        fprintf(stderr, "hull: sandbox run: no command given\nTry 'hull sandbox --help'.\n");
        return EXIT_INTERNAL;
    }
    for (int i = optind; i < argc; i++)
        if (hull_policy_add_arg(p, argv[i]) < 0)
            return EXIT_INTERNAL;
    return 0;
}

/* Run the policy and report: JSON, or the program's output and a summary. */
static int run_and_report(struct hull_policy *p, bool json)
{
    struct hull_result r;
    hull_error err = NULL;
    /* Bad input is said alone, without the warning below before it. */
    if (hull_policy_validate(p, &err) < 0) {
        fprintf(stderr, "hull: sandbox run: %s\n", hull_error_msg(err));
        hull_error_free(&err); /* said just above */
        return EXIT_INTERNAL;
    }
    if (p->network_host)
        fprintf(stderr, "hull: warning: sandbox run: --network host: the sandbox shares the "
                        "host's network\n");
    p->cancel_fd = catch_cancel();
    if (hull_sandbox_run(p, &r, &err) < 0) {
        fprintf(stderr, "hull: sandbox run: %s\n", hull_error_msg(err));
        hull_error_free(&err); /* said just above */
        return EXIT_INTERNAL;
    }
    copy_out_notes(&r);
    int ret;
    if (json) {
        char *j = hull_result_to_json(&r);
        printf("%s\n", j ? j : "{}");
        free(j);
        ret = 0;
    } else {
        write_all(1, r.out.data ? r.out.data : "", r.out.len);
        write_all(2, r.err.data ? r.err.data : "", r.err.len);
        summary(&r);
        ret = exit_status(&r);
    }
    if (cancelled_by && r.verdict == HULL_VERDICT_KILLED)
        ret = 128 + cancelled_by;
    hull_result_free(&r);
    return ret;
}

static int sandbox_run(struct cli *cli, int argc, char **argv)
{
    (void)cli;
    struct hull_policy p;
    hull_policy_init(&p);
    bool json = false;
    int ret = parse_run_options(argc, argv, &p, &json);
    if (ret == 0)
        ret = run_and_report(&p, json);
    else if (ret == 1)
        ret = 0; /* --help */
    hull_policy_free(&p);
    return ret;
}

int cmd_sandbox(struct cli *cli, int argc, char **argv)
{
    if (argc < 2) {
        /* A usage error: said on stderr, not the help on stdout. */
        fprintf(stderr, "hull: sandbox: missing command (run, seccomp-profile, netpool, "
                        "cleanup)\nTry 'hull sandbox --help'.\n");
        return 1;
    }
    if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0) {
        help();
        return 0;
    }
    if (strcmp(argv[1], "run") == 0) {
        optind = 0;
        return sandbox_run(cli, argc - 1, argv + 1);
    }
    if (strcmp(argv[1], "seccomp-profile") == 0) {
        if (argc > 2 && (strcmp(argv[2], "--help") == 0 || strcmp(argv[2], "-h") == 0)) {
            printf("usage: hull sandbox seccomp-profile\n"
                   "Print the built-in seccomp profile (OCI JSON), a start for --seccomp FILE.\n");
            return 0;
        }
        if (argc > 2) {
            fprintf(stderr, "hull: sandbox seccomp-profile: unexpected argument '%s'\n", argv[2]);
            return 1;
        }
        char *j = hull_sandbox_seccomp_profile_json();
        printf("%s\n", j ? j : "");
        free(j);
        return j ? 0 : 1;
    }
    if (strcmp(argv[1], "netpool") == 0) {
        optind = 0;
        return sandbox_netpool(argc - 1, argv + 1);
    }
    if (strcmp(argv[1], "cleanup") == 0)
        return sandbox_cleanup(argc - 1, argv + 1);
    fprintf(stderr,
            "hull: sandbox: unknown command '%s' (run, seccomp-profile, netpool, cleanup)\n",
            argv[1]);
    return 1;
}
