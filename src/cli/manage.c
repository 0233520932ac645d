/* hull ps | pause | resume | update | events | features | checkpoint | restore */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "cli.h"
#include "util/error.h"
#include "util/fs.h"

int cmd_pause(struct cli *cli, int argc, char **argv)
{
    const char *id = NULL;
    int r = cli_one_id(cli, argc, argv,
                       "usage: hull pause ID\n\nFreeze every process of container ID (cgroup "
                       "freezer).\n",
                       &id);
    if (r != 0)
        return r < 0 ? 0 : r;
    hull_error err = NULL;
    return hull_container_pause(&cli->rt, id, &err) < 0 ? cli_fail(cli, &err, NULL) : 0;
}

int cmd_resume(struct cli *cli, int argc, char **argv)
{
    const char *id = NULL;
    int r = cli_one_id(cli, argc, argv, "usage: hull resume ID\n\nThaw a paused container.\n", &id);
    if (r != 0)
        return r < 0 ? 0 : r;
    hull_error err = NULL;
    return hull_container_resume(&cli->rt, id, &err) < 0 ? cli_fail(cli, &err, NULL) : 0;
}

static bool pid_in(pid_t p, const pid_t *pids, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (pids[i] == p)
            return true;
    return false;
}

/* Run the host's ps and keep the header and the container's lines, as runc does. */
static int ps_table(const pid_t *pids, size_t n, char **ps_args)
{
    int pfd[2];
    if (pipe2(pfd, O_CLOEXEC) < 0) {
        fprintf(stderr, "hull: ps: pipe: %s\n", strerror(errno));
        return 1;
    }
    pid_t child = fork();
    if (child < 0) {
        fprintf(stderr, "hull: ps: fork: %s\n", strerror(errno));
        close(pfd[0]);
        close(pfd[1]);
        return 1;
    }
    if (child == 0) {
        /* dup2 clears close-on-exec on fd 1 only: ps gets its stdout and
         * no other end of the pipe. */
        dup2(pfd[1], 1);
        close(pfd[0]);
        close(pfd[1]);
        execvp("ps", ps_args);
        fprintf(stderr, "hull: ps: exec ps: %s\n", strerror(errno));
        _exit(127);
    }
    close(pfd[1]);
    FILE *f = fdopen(pfd[0], "r");
    char line[4096];
    int pid_col = -1;
    bool header = true;
    while (f && fgets(line, sizeof(line), f)) {
        if (header) {
            /* Find which column is PID. */
            char copy[4096];
            snprintf(copy, sizeof(copy), "%s", line);
            int col = 0;
            for (char *t = strtok(copy, " \t\n"); t; t = strtok(NULL, " \t\n"), col++)
                if (strcmp(t, "PID") == 0)
                    pid_col = col;
            fputs(line, stdout);
            header = false;
            continue;
        }
        char copy[4096];
        snprintf(copy, sizeof(copy), "%s", line);
        int col = 0;
        for (char *t = strtok(copy, " \t\n"); t; t = strtok(NULL, " \t\n"), col++)
            if (col == pid_col) {
                if (pid_in((pid_t)atoi(t), pids, n))
                    fputs(line, stdout);
                break;
            }
    }
    if (f)
        fclose(f);
    int status = 0;
    waitpid(child, &status, 0);
    if (pid_col < 0) {
        fprintf(stderr, "hull: ps: the ps output has no PID column\n");
        return 1;
    }
    return WIFEXITED(status) ? WEXITSTATUS(status) : 1;
}

int cmd_ps(struct cli *cli, int argc, char **argv)
{
    static const struct option opts[] = {
        {"format", required_argument, NULL, 'f'},
        {"help", no_argument, NULL, 'h'},
        {0},
    };
    const char *format = "table";
    int c;
    while ((c = cli_getopt(argc, argv, "+f:h", opts)) != -1) {
        switch (c) {
        case 'f':
            format = optarg;
            break;
        case 'h':
            printf("usage: hull ps [--format table|json] ID [PS-OPTIONS...]\n"
                   "\n"
                   "Show the processes of container ID: the host's `ps` (default -ef)\n"
                   "limited to the container's cgroup (a rootless container without one:\n"
                   "to its pid namespace), or --format json for the pids.\n");
            return 0;
        default:
            return cli_bad_option(cli, argc, argv, c);
        }
    }
    if (strcmp(format, "table") != 0 && strcmp(format, "json") != 0)
        return cli_usage_error(cli, "--format: unknown format '%s' (table or json)", format);
    if (optind >= argc)
        return cli_usage_error(cli, "missing container id");
    if (argv[optind][0] == '\0')
        return cli_usage_error(cli, "container id must not be empty");
    const char *id = argv[optind++];
    if (optind < argc && strcmp(argv[optind], "--") == 0)
        optind++;
    pid_t *pids = NULL;
    size_t n = 0;
    hull_error err = NULL;
    if (hull_container_pids(&cli->rt, id, &pids, &n, &err) < 0)
        return cli_fail(cli, &err, NULL);
    int ret = 0;
    if (strcmp(format, "json") == 0) {
        if (optind < argc) {
            free(pids);
            return cli_usage_error(cli, "ps options make no sense with --format json");
        }
        printf("[");
        for (size_t i = 0; i < n; i++)
            printf("%s%d", i ? "," : "", (int)pids[i]);
        printf("]\n");
    } else {
        char *def[] = {"ps", "-ef", NULL};
        char **ps_args = def;
        char **own = NULL;
        if (optind < argc) {
            own = calloc((size_t)(argc - optind) + 2, sizeof(char *));
            own[0] = "ps";
            for (int i = optind; i < argc; i++)
                own[i - optind + 1] = argv[i];
            ps_args = own;
        }
        fflush(stdout);
        ret = ps_table(pids, n, ps_args);
        free(own);
    }
    free(pids);
    return ret;
}

/* "512m", "1G", "-1" (unlimited) -> bytes, as runc's flags accept. */
static int parse_bytes(const char *s, long long *out)
{
    char *end;
    errno = 0;
    if (!cli_plain_number(s, true))
        return -1;
    long long v = strtoll(s, &end, 10);
    if (end == s || errno)
        return -1;
    if (v == -1 && *end == '\0') {
        *out = -1;
        return 0;
    }
    if (v < 0)
        return -1;
    long long mult = 1;
    switch (*end) {
    case '\0':
        break;
    case 'k':
    case 'K':
        mult = 1024LL;
        end++;
        break;
    case 'm':
    case 'M':
        mult = 1024LL * 1024;
        end++;
        break;
    case 'g':
    case 'G':
        mult = 1024LL * 1024 * 1024;
        end++;
        break;
    case 't':
    case 'T':
        mult = 1024LL * 1024 * 1024 * 1024;
        end++;
        break;
    default:
        return -1;
    }
    if (*end == 'b' || *end == 'B')
        end++;
    if (*end != '\0' || v > __LONG_LONG_MAX__ / mult)
        return -1;
    *out = v * mult;
    return 0;
}

static int parse_int(const char *s, long long *out)
{
    char *end;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (!cli_plain_number(s, true) || end == s || *end != '\0' || errno)
        return -1;
    *out = v;
    return 0;
}

/* The most a --resources document may hold: far above any real one, and
 * what keeps `--resources /dev/zero` from reading until memory runs out. */
#define RESOURCES_MAX (1u << 20)

/* hull update's limit flags: each sets linux.resources.<group>.<key>. */
enum upd_kind { U_BYTES, U_NUMBER, U_STRING, U_RDT };

struct upd_opt {
    const char *name;
    const char *group, *key;
    enum upd_kind kind;
};

/* getopt_long's val is 256 + the index of the first entry setting the same
 * key, so that an alias (--cpu-share) and its abbreviations are no
 * ambiguity. */
static const struct upd_opt upd_opts[] = {
    {"memory", "memory", "limit", U_BYTES},
    {"memory-reservation", "memory", "reservation", U_BYTES},
    {"memory-swap", "memory", "swap", U_BYTES},
    {"kernel-memory", "memory", "kernel", U_BYTES},
    {"kernel-memory-tcp", "memory", "kernelTCP", U_BYTES},
    {"cpu-quota", "cpu", "quota", U_NUMBER},
    {"cpu-period", "cpu", "period", U_NUMBER},
    {"cpu-share", "cpu", "shares", U_NUMBER},
    {"cpu-shares", "cpu", "shares", U_NUMBER},
    {"cpu-rt-period", "cpu", "realtimePeriod", U_NUMBER},
    {"cpu-rt-runtime", "cpu", "realtimeRuntime", U_NUMBER},
    {"cpuset-cpus", "cpu", "cpus", U_STRING},
    {"cpuset-mems", "cpu", "mems", U_STRING},
    {"pids-limit", "pids", "limit", U_NUMBER},
    {"blkio-weight", "blockIO", "weight", U_NUMBER},
    {"l3-cache-schema", NULL, NULL, U_RDT},
    {"mem-bw-schema", NULL, NULL, U_RDT},
};
#define N_UPD_OPTS (sizeof(upd_opts) / sizeof(upd_opts[0]))

static int update_val(size_t i)
{
    for (size_t j = 0; j < i; j++)
        if (upd_opts[i].key && upd_opts[j].key &&
            strcmp(upd_opts[i].group, upd_opts[j].group) == 0 &&
            strcmp(upd_opts[i].key, upd_opts[j].key) == 0)
            return 256 + (int)j;
    return 256 + (int)i;
}

static void update_help(void)
{
    printf("usage: hull update [options] ID\n"
           "\n"
           "Change the cgroup limits of a running container. Fields not given\n"
           "are left alone. A memory limit below current usage is refused.\n"
           "Device rules (linux.resources.devices) stay as create set them.\n"
           "\n"
           "  -r, --resources FILE|-   a linux.resources JSON object\n"
           "      --memory BYTES       memory limit (512m, 1g; -1 = unlimited)\n"
           "      --memory-reservation BYTES\n"
           "      --memory-swap BYTES  memory + swap limit\n"
           "      --kernel-memory BYTES, --kernel-memory-tcp BYTES\n"
           "      --cpu-quota US       CFS quota per period (-1 = unlimited)\n"
           "      --cpu-period US      CFS period\n"
           "      --cpu-share(s) N     relative CPU weight\n"
           "      --cpu-rt-period US, --cpu-rt-runtime US\n"
           "      --cpuset-cpus LIST   e.g. 0-1\n"
           "      --cpuset-mems LIST\n"
           "      --pids-limit N       maximum number of tasks (-1 = unlimited, 0 = unchanged)\n"
           "      --blkio-weight N     10..1000\n");
}

/* Add one limit flag to doc ({group: {key: value}}): 0, or the exit status. */
static int add_limit(struct cli *cli, json_object *doc, const struct upd_opt *o, const char *arg)
{
    if (o->kind == U_RDT) {
        fprintf(stderr, "hull: update: Intel RDT is not supported by hull\n");
        return 1;
    }
    long long v = 0;
    bool bytes = o->kind == U_BYTES;
    if (o->kind != U_STRING && (bytes ? parse_bytes(arg, &v) : parse_int(arg, &v)) < 0)
        return cli_usage_error(cli, "%s: '%s' is not a valid %s", o->key, arg,
                               bytes ? "size" : "number");
    json_object *g = NULL;
    if (!json_object_object_get_ex(doc, o->group, &g)) {
        g = json_object_new_object();
        json_object_object_add(doc, o->group, g);
    }
    json_object_object_add(
        g, o->key, o->kind == U_STRING ? json_object_new_string(arg) : json_object_new_int64(v));
    return 0;
}

/* Send the limits (the --resources file, else doc) to container id. */
static int update_send(struct cli *cli, const char *id, const char *resources, json_object *doc)
{
    cleanup_free char *text = NULL;
    if (resources) {
        if (json_object_object_length(doc) > 0)
            return cli_usage_error(cli, "give either --resources or the limit flags, not both");
        /* A FIFO without a writer opens at once (and reads as empty)
         * instead of holding hull; stdin is read blocking. */
        bool from_stdin = strcmp(resources, "-") == 0;
        int fl = from_stdin ? fcntl(STDIN_FILENO, F_GETFL) : 0;
        if (fl < 0 || (from_stdin && fcntl(STDIN_FILENO, F_SETFL, fl & ~O_NONBLOCK) < 0)) {
            fprintf(stderr, "hull: update %s: --resources -: %s\n", id, strerror(errno));
            return 1;
        }
        hull_error e = NULL;
        size_t len = 0;
        if ((from_stdin ? hull_read_fd_max(STDIN_FILENO, RESOURCES_MAX, &text, &len, &e)
                        : hull_read_file_max(resources, RESOURCES_MAX, &text, &len, &e)) < 0) {
            /* Said by its code, in update's own words. */
            int code = hull_error_code(e);
            hull_error_free(&e);
            fprintf(stderr, "hull: update %s: --resources %s: %s\n", id, resources,
                    code == EFBIG ? "more than 1 MiB" : strerror(code));
            return 1;
        }
    } else {
        text = strdup(json_object_to_json_string(doc));
    }
    hull_error err = NULL;
    if (text == NULL) {
        fprintf(stderr, "hull: update %s: out of memory\n", id);
        return 1;
    }
    if (hull_container_update(&cli->rt, id, text, &err) < 0)
        return cli_fail(cli, &err, NULL);
    return 0;
}

static void put_json(json_object **doc)
{
    json_object_put(*doc);
}

int cmd_update(struct cli *cli, int argc, char **argv)
{
    struct option opts[N_UPD_OPTS + 3];
    opts[0] = (struct option){"resources", required_argument, NULL, 'r'};
    for (size_t i = 0; i < N_UPD_OPTS; i++)
        opts[i + 1] = (struct option){upd_opts[i].name, required_argument, NULL, update_val(i)};
    opts[N_UPD_OPTS + 1] = (struct option){"help", no_argument, NULL, 'h'};
    opts[N_UPD_OPTS + 2] = (struct option){0};
    const char *resources = NULL;
    __attribute__((cleanup(put_json))) json_object *doc = json_object_new_object();
    int c;
    while ((c = cli_getopt(argc, argv, "r:h", opts)) != -1) {
        if (c == 'r') {
            resources = optarg;
        } else if (c == 'h') {
            update_help();
            return 0;
        } else if (c >= 256 && c < 256 + (int)N_UPD_OPTS) {
            int r = add_limit(cli, doc, &upd_opts[c - 256], optarg);
            if (r != 0)
                return r;
        } else {
            return cli_bad_option(cli, argc, argv, c);
        }
    }
    if (cli_need_args(cli, argc, argv, 1, "container id") != 0)
        return 1;
    return update_send(cli, argv[optind], resources, doc);
}

/* "5s", "500ms", "1m", or plain seconds, as the sandbox reads them
 * (strtod alone took " 5", "0x10", "inf" and "nan", the last two cast to
 * a long out of range); at most a day. */
static int parse_interval_ms(const char *s, long *ms)
{
    uint64_t v;
    if (hull_parse_duration_ms(s, &v) < 0 || v == 0 || v > 86400000)
        return -1;
    *ms = (long)v;
    return 0;
}

static volatile sig_atomic_t events_stop;

static void on_stop(int sig)
{
    (void)sig;
    events_stop = 1;
}

int cmd_events(struct cli *cli, int argc, char **argv)
{
    static const struct option opts[] = {
        {"stats", no_argument, NULL, 's'},
        {"interval", required_argument, NULL, 'i'},
        {"help", no_argument, NULL, 'h'},
        {0},
    };
    bool stats_once = false;
    long interval = 5000;
    int c;
    while ((c = cli_getopt(argc, argv, "si:h", opts)) != -1) {
        switch (c) {
        case 's':
            stats_once = true;
            break;
        case 'i':
            if (parse_interval_ms(optarg, &interval) < 0)
                return cli_usage_error(cli, "--interval: '%s' is not a duration (5s, 500ms)",
                                       optarg);
            break;
        case 'h':
            printf("usage: hull events [--stats] [--interval DURATION] ID\n"
                   "\n"
                   "Print the container's events as JSON lines: resource statistics every\n"
                   "interval (default 5s) and an \"oom\" event when the OOM killer strikes,\n"
                   "until the container stops. --stats prints one statistics event.\n");
            return 0;
        default:
            return cli_bad_option(cli, argc, argv, c);
        }
    }
    if (cli_need_args(cli, argc, argv, 1, "container id") != 0)
        return 1;
    const char *id = argv[optind];
    hull_error err = NULL;
    if (stats_once) {
        char *ev = hull_container_stats_json(&cli->rt, id, &err);
        if (ev == NULL)
            return cli_fail(cli, &err, NULL);
        printf("%s\n", ev);
        free(ev);
        return 0;
    }
    signal(SIGINT, on_stop);
    signal(SIGTERM, on_stop);
    int oom = hull_container_oom_fd(&cli->rt, id, &err);
    if (oom < 0 && err != NULL)
        return cli_fail(cli, &err, NULL);
    while (!events_stop) {
        char *ev = hull_container_stats_json(&cli->rt, id, &err);
        if (ev == NULL) {
            /* The container ended: that ends the stream. */
            if (hull_error_code(err) == ESRCH) {
                hull_error_free(&err);
                break;
            }
            if (oom >= 0)
                close(oom);
            return cli_fail(cli, &err, NULL);
        }
        printf("%s\n", ev);
        fflush(stdout);
        free(ev);
        struct pollfd p = {.fd = oom, .events = POLLIN};
        if (poll(&p, oom >= 0 ? 1 : 0, (int)interval) > 0 && (p.revents & POLLIN)) {
            char buf[64];
            if (read(oom, buf, sizeof(buf)) > 0) {
                printf("{\"type\":\"oom\",\"id\":\"%s\"}\n", id);
                fflush(stdout);
            }
        }
    }
    if (oom >= 0)
        close(oom);
    return 0;
}

int cmd_features(struct cli *cli, int argc, char **argv)
{
    static const struct option opts[] = {{"help", no_argument, NULL, 'h'}, {0}};
    int c;
    while ((c = cli_getopt(argc, argv, "h", opts)) != -1) {
        if (c == 'h') {
            printf("usage: hull features\n\nPrint what this build and host support "
                   "(runtime-spec features.md JSON).\n");
            return 0;
        }
        return cli_bad_option(cli, argc, argv, c);
    }
    if (cli_need_args(cli, argc, argv, 0, "") != 0)
        return 1;
    char *f = hull_features_json();
    printf("%s\n", f ? f : "{}");
    free(f);
    return 0;
}

int cmd_checkpoint(struct cli *cli, int argc, char **argv)
{
    /* --help is answered like every verb's (exit 0, on stdout): the help
     * says what to use instead. */
    for (int i = 1; i < argc && strcmp(argv[i], "--") != 0; i++)
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            printf("usage: hull %s ID\n"
                   "\n"
                   "Not supported: hull does not checkpoint containers (CRIU is not\n"
                   "available). microVM snapshots are the migration path: hull vm snapshot\n"
                   "and hull vm restore (hull-vm(1)).\n",
                   cli->verb);
            return 0;
        }
    fprintf(stderr,
            "hull: %s: not supported: hull does not checkpoint containers (CRIU is "
            "not available); microVM snapshots are the migration path "
            "(hull vm snapshot)\n",
            cli->verb);
    return 1;
}
