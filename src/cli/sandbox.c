/* hull sandbox run [options] -- CMD [ARGS...]
 * hull sandbox seccomp-profile
 *
 * A thin front end over hull_sandbox_run(): options become a struct
 * hull_policy, the result is printed as JSON or as the program's own output
 * followed by a one-line summary. */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"

/* Exit codes of `hull sandbox run` without --json (documented in --help). */
#define EXIT_LIMIT    124 /* a time, memory, output or pids limit was hit */
#define EXIT_INTERNAL 125 /* hull could not run it (bad input, setup failure) */

static void help(void)
{
    printf("usage: hull sandbox run [options] -- CMD [ARG...]\n"
           "       hull sandbox seccomp-profile\n"
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
           "  --cpus N              CPU bandwidth, e.g. 0.5 (default 1)\n"
           "Filesystem:\n"
           "  --rootfs DIR          use DIR (a bundle or an unpacked image) as the root\n"
           "  --bind SRC:DST[:rw]   bind a host path, read-only unless :rw (repeatable)\n"
           "  --workdir DIR         working directory (default /tmp)\n"
           "Data:\n"
           "  --stdin FILE|-        the program's stdin (default: empty)\n"
           "  --copy-in HOST:PATH   copy a host file to PATH under /tmp (repeatable)\n"
           "  --copy-out PATH:HOST  copy PATH under /tmp to the host after the run\n"
           "  --copy-out-max SIZE   data all copy-outs may write to the host together;\n"
           "                        holes stay holes (default 64M)\n"
           "  --env KEY=VALUE       set an environment variable (repeatable)\n"
           "Other:\n"
           "  --network none|host   none (default): only loopback; host: the host's\n"
           "  --seccomp FILE        an OCI seccomp profile instead of the built-in one\n"
           "  --json                print the result as one JSON object\n"
           "\n"
           "T is 2s, 500ms, 1m; SIZE is 256M, 1G, 65536.\n"
           "\n"
           "Without --json, the program's output is passed through and a summary line\n"
           "goes to stderr; the exit status is the program's (128+N after signal N),\n"
           "124 when a limit was hit, 125 when hull could not run it. With --json the\n"
           "exit status is 0 whenever the run happened (the verdict says how) and 125\n"
           "for bad input. SIGINT, SIGTERM or SIGHUP stop the run, clean it up and\n"
           "exit 128+N (verdict killed).\n"
           "\n"
           "Each --copy-out has a status in the result (files[].status: ok, missing,\n"
           "truncated, refused or failed); any but ok is also said once on stderr.\n");
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
    unsigned long v = strtoul(s, &end, 10);
    if (*s == '\0' || *s == '-' || *end != '\0' || errno || v > UINT32_MAX)
        return -1;
    *out = (uint32_t)v;
    return 0;
}

static void summary(const struct hull_result *r)
{
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

static int sandbox_run(struct cli *cli, int argc, char **argv)
{
    enum {
        ISO = 256,
        CPU_T,
        WALL_T,
        MEM,
        PIDS,
        OUTPUT,
        TMP,
        NOFILE,
        CPUS,
        ROOTFS,
        BIND,
        WORKDIR,
        STDIN,
        COPY_IN,
        COPY_OUT,
        COPY_OUT_MAX,
        ENV,
        NETWORK,
        SECCOMP,
        JSON
    };
    static const struct option opts[] = {
        {"isolation", required_argument, NULL, ISO},
        {"cpu-time", required_argument, NULL, CPU_T},
        {"wall-time", required_argument, NULL, WALL_T},
        {"memory", required_argument, NULL, MEM},
        {"pids", required_argument, NULL, PIDS},
        {"output", required_argument, NULL, OUTPUT},
        {"tmp-size", required_argument, NULL, TMP},
        {"open-files", required_argument, NULL, NOFILE},
        {"cpus", required_argument, NULL, CPUS},
        {"rootfs", required_argument, NULL, ROOTFS},
        {"bind", required_argument, NULL, BIND},
        {"workdir", required_argument, NULL, WORKDIR},
        {"stdin", required_argument, NULL, STDIN},
        {"copy-in", required_argument, NULL, COPY_IN},
        {"copy-out", required_argument, NULL, COPY_OUT},
        {"copy-out-max", required_argument, NULL, COPY_OUT_MAX},
        {"env", required_argument, NULL, ENV},
        {"network", required_argument, NULL, NETWORK},
        {"seccomp", required_argument, NULL, SECCOMP},
        {"json", no_argument, NULL, JSON},
        {"help", no_argument, NULL, 'h'},
        {0},
    };
    struct hull_policy p;
    hull_policy_init(&p);
    bool json = false;
    int ret = EXIT_INTERNAL, c;
    char *a = NULL, *b = NULL, *mode = NULL;
    /* "+": stop at the command; its own options are not ours. */
    while ((c = getopt_long(argc, argv, "+h", opts, NULL)) != -1) {
        switch (c) {
        case ISO:
            if (hull_isolation_parse(optarg, &p.isolation) < 0) {
                ret = bad("--isolation", optarg, "process, container or microvm");
                goto out;
            }
            break;
        case CPU_T:
        case WALL_T: {
            uint64_t *t = c == CPU_T ? &p.cpu_time_ms : &p.wall_time_ms;
            if (hull_parse_duration_ms(optarg, t) < 0) {
                ret = bad(c == CPU_T ? "--cpu-time" : "--wall-time", optarg,
                          "a duration (2s, 500ms, 1m)");
                goto out;
            }
            break;
        }
        case MEM:
        case OUTPUT:
        case TMP:
        case COPY_OUT_MAX: {
            uint64_t *v = c == MEM      ? &p.memory_bytes
                          : c == OUTPUT ? &p.output_bytes
                          : c == TMP    ? &p.tmp_bytes
                                        : &p.copy_out_max;
            if (hull_parse_size(optarg, v) < 0) {
                ret = bad(c == MEM      ? "--memory"
                          : c == OUTPUT ? "--output"
                          : c == TMP    ? "--tmp-size"
                                        : "--copy-out-max",
                          optarg, "a size (256M, 1G, 65536)");
                goto out;
            }
            break;
        }
        case PIDS:
        case NOFILE:
            if (parse_u32(optarg, c == PIDS ? &p.pids : &p.open_files) < 0) {
                ret = bad(c == PIDS ? "--pids" : "--open-files", optarg, "a count");
                goto out;
            }
            break;
        case CPUS: {
            char *end;
            p.cpus = strtod(optarg, &end);
            if (end == optarg || *end != '\0') {
                ret = bad("--cpus", optarg, "a number");
                goto out;
            }
            break;
        }
        case ROOTFS:
            free(p.rootfs);
            p.rootfs = strdup(optarg);
            break;
        case BIND: {
            if (split_pair(optarg, &a, &b, &mode) < 0 ||
                (mode && strcmp(mode, "rw") != 0 && strcmp(mode, "ro") != 0)) {
                ret = bad("--bind", optarg, "SRC:DST[:rw]");
                goto out;
            }
            struct hull_bind *nb = realloc(p.binds, (p.n_binds + 1) * sizeof(*nb));
            if (nb == NULL)
                goto out;
            p.binds = nb;
            p.binds[p.n_binds++] = (struct hull_bind){a, b, mode && strcmp(mode, "rw") == 0};
            a = b = NULL;
            free(mode);
            mode = NULL;
            break;
        }
        case WORKDIR:
            free(p.workdir);
            p.workdir = strdup(optarg);
            break;
        case STDIN:
            free(p.stdin_path);
            p.stdin_path = strdup(strcmp(optarg, "-") == 0 ? "/dev/stdin" : optarg);
            break;
        case COPY_IN:
        case COPY_OUT: {
            if (split_pair(optarg, &a, &b, &mode) < 0 || mode != NULL) {
                ret = bad(c == COPY_IN ? "--copy-in" : "--copy-out", optarg,
                          c == COPY_IN ? "HOST:PATH" : "PATH:HOST");
                goto out;
            }
            struct hull_copy **list = c == COPY_IN ? &p.copy_in : &p.copy_out;
            size_t *n = c == COPY_IN ? &p.n_copy_in : &p.n_copy_out;
            struct hull_copy *nl = realloc(*list, (*n + 1) * sizeof(*nl));
            if (nl == NULL)
                goto out;
            *list = nl;
            nl[(*n)++] = c == COPY_IN ? (struct hull_copy){a, b} : (struct hull_copy){b, a};
            a = b = NULL;
            break;
        }
        case ENV:
            if (hull_policy_add_env(&p, optarg) < 0)
                goto out;
            break;
        case NETWORK:
            if (strcmp(optarg, "none") == 0)
                p.network_host = false;
            else if (strcmp(optarg, "host") == 0)
                p.network_host = true;
            else {
                ret = bad("--network", optarg, "none or host");
                goto out;
            }
            break;
        case SECCOMP:
            free(p.seccomp_path);
            p.seccomp_path = strdup(optarg);
            break;
        case JSON:
            json = true;
            break;
        case 'h':
            help();
            ret = 0;
            goto out;
        default:
            fprintf(stderr, "Try 'hull sandbox --help'.\n");
            goto out;
        }
    }
    if (optind < argc && strcmp(argv[optind], "--") == 0)
        optind++;
    if (optind >= argc) {
        fprintf(stderr, "hull: sandbox run: no command given\nTry 'hull sandbox --help'.\n");
        goto out;
    }
    for (int i = optind; i < argc; i++)
        if (hull_policy_add_arg(&p, argv[i]) < 0)
            goto out;
    if (p.network_host)
        fprintf(stderr, "hull: warning: sandbox run: --network host: the sandbox shares the "
                        "host's network\n");
    (void)cli;
    struct hull_result r;
    hull_error err = NULL;
    p.cancel_fd = catch_cancel();
    if (hull_sandbox_run(&p, &r, &err) < 0) {
        fprintf(stderr, "hull: sandbox run: %s\n", hull_error_msg(err));
        hull_error_free(&err);
        goto out;
    }
    copy_out_notes(&r);
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
out:
    free(a);
    free(b);
    free(mode);
    hull_policy_free(&p);
    return ret;
}

int cmd_sandbox(struct cli *cli, int argc, char **argv)
{
    if (argc < 2 || strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0) {
        help();
        return argc < 2 ? 1 : 0;
    }
    if (strcmp(argv[1], "run") == 0) {
        optind = 0;
        return sandbox_run(cli, argc - 1, argv + 1);
    }
    if (strcmp(argv[1], "seccomp-profile") == 0) {
        char *j = hull_sandbox_seccomp_profile_json();
        printf("%s\n", j ? j : "");
        free(j);
        return j ? 0 : 1;
    }
    fprintf(stderr, "hull: sandbox: unknown command '%s' (run, seccomp-profile)\n", argv[1]);
    return 1;
}
