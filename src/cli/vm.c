/* `hull vm ...`: microVMs. A thin front end over the hull_vm_* calls.
 *
 *   hull vm create [options] ID        measure, prepare, record (no boot)
 *   hull vm start ID | stop ID | pause ID | resume ID | delete [--force] ID
 *   hull vm state ID | list [--format table|json]
 *   hull vm exec [options] ID -- CMD...     as `hull sandbox run` reports
 *   hull vm cp ID:PATH HOST | cp HOST ID:PATH
 *   hull vm snapshot ID FILE | restore FILE NEWID
 *   hull vm migrate ... ID | receive ...   (vm_migrate.c)
 *   hull vm initrd [--kernel F]        build the initramfs, print sha256 and path
 *   hull vm run [options] -- CMD...    one workload in a fresh VM, result JSON
 */
#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "util/error.h"

/* A count (--vcpus, --pids, --open-files): digits only, as `hull sandbox
 * run` reads them. Sizes are hull_parse_size's, the one rule of every size. */
static int parse_count(const char *s, uint64_t *out)
{
    char *end;
    errno = 0;
    if (s[0] == '\0' || strspn(s, "0123456789") != strlen(s))
        return -1;
    unsigned long long v = strtoull(s, &end, 10);
    if (*end != '\0' || errno)
        return -1;
    *out = v;
    return 0;
}

/* As `hull sandbox run` reads them (strtod alone took " 5", "0x10", "inf"
 * and "nan", the last two cast to an integer out of range). */
static int parse_ms(const char *s, uint64_t *out)
{
    return hull_parse_duration_ms(s, out);
}

static void usage(void)
{
    printf(
        "usage: hull vm COMMAND [options] [arguments]\n\n"
        "  create [--memory 256M] [--vcpus 1] [--kernel F] [--rootfs DIR] [--accel kvm|tcg|auto]\n"
        "         [--image REF [--image-root DIR] [--pull missing|never]]\n"
        "         [--expect-kernel-sha256 H] [--expect-initrd-sha256 H] [--expect-rootfs-sha256 "
        "H]\n"
        "         [--from-template] [--network NAME [--egress RULES] [--publish P]...] ID\n"
        "         (creates only; `start` boots it, from the cached template with\n"
        "         --from-template)\n"
        "  start ID | stop ID | pause ID | resume ID | delete [--force] ID | state ID\n"
        "  list [--format table|json]\n"
        "  exec [--detach] [--env K=V] [--cwd DIR] [--json] [limits] ID -- CMD [ARGS...]\n"
        "       exit status: the command's (128+N after signal N), 124 when a limit was\n"
        "       hit (with a summary on stderr), 127/126 when it cannot be found/run, 125\n"
        "       when hull could not run it; with --json 0 whenever it ran (the verdict\n"
        "       says how)\n"
        "  cp ID:PATH HOSTFILE | cp HOSTFILE ID:PATH\n"
        "  snapshot ID FILE | restore FILE NEWID\n"
        "  migrate --to HOST:PORT AUTH [--mode live|cold] ID   (migrate --help)\n"
        "  receive --listen HOST:PORT AUTH [--id NEWID]\n"
        "      AUTH: --tls-cert F --tls-key F --tls-ca F | --insecure-plain --token-file F\n"
        "  initrd [--kernel F]\n"
        "  cache prune [--dry-run] [--json]   (remove cache entries no VM uses)\n"
        "  run [--rootfs DIR | --image REF [--image-root DIR] [--pull P]] [--kernel F] [--accel "
        "A]\n"
        "      [--vm-memory 256M] [--cold] [--stdin FILE]\n"
        "      [--network NAME [--egress RULES] [--publish P]...]\n"
        "      [--copy-in HOST:GUEST] [--copy-out GUEST:HOST] [--env K=V] [--cwd DIR] [limits] -- "
        "CMD...\n\n"
        "limits: --cpu-time 2s --wall-time 10s --memory 256M --pids 64 --output 1M --open-files "
        "64\n"
        "network: --network NAME (a hull network: a TAP for the VM, its address from the\n"
        "         network; `none` for no card, the default; `host` is refused),\n"
        "         --egress none|all|CIDR[:PORT[/PROTO]],... (default all: not the host, not\n"
        "         peers), --publish [HOSTIP:]HOSTPORT:PORT[/tcp|udp] (repeatable)\n"
        "environment: HULL_VM_ACCEL=kvm|tcg|auto, HULL_VM_CACHE=DIR, "
        "HULL_VM_BOOT_TIMEOUT=SECONDS\n");
}

enum {
    O_MEMORY = 300,
    O_VCPUS,
    O_KERNEL,
    O_ROOTFS,
    O_ACCEL,
    O_EK,
    O_EI,
    O_ER,
    O_TEMPLATE,
    O_FORCE,
    O_DETACH,
    O_ENV,
    O_CWD,
    O_JSON,
    O_CPU,
    O_WALL,
    O_PIDS,
    O_OUTPUT,
    O_FILES,
    O_VMMEM,
    O_COLD,
    O_STDIN,
    O_CIN,
    O_COUT,
    O_FORMAT,
    O_IMAGE,
    O_IMAGE_ROOT,
    O_PULL,
    O_NETWORK,
    O_EGRESS,
    O_PUBLISH,
    O_HELP,
};

static const struct option all_opts[] = {
    {"memory", required_argument, NULL, O_MEMORY},
    {"vcpus", required_argument, NULL, O_VCPUS},
    {"kernel", required_argument, NULL, O_KERNEL},
    {"rootfs", required_argument, NULL, O_ROOTFS},
    {"accel", required_argument, NULL, O_ACCEL},
    {"expect-kernel-sha256", required_argument, NULL, O_EK},
    {"expect-initrd-sha256", required_argument, NULL, O_EI},
    {"expect-rootfs-sha256", required_argument, NULL, O_ER},
    {"from-template", no_argument, NULL, O_TEMPLATE},
    {"force", no_argument, NULL, O_FORCE},
    {"detach", no_argument, NULL, O_DETACH},
    {"env", required_argument, NULL, O_ENV},
    {"cwd", required_argument, NULL, O_CWD},
    {"json", no_argument, NULL, O_JSON},
    {"cpu-time", required_argument, NULL, O_CPU},
    {"wall-time", required_argument, NULL, O_WALL},
    {"pids", required_argument, NULL, O_PIDS},
    {"output", required_argument, NULL, O_OUTPUT},
    {"open-files", required_argument, NULL, O_FILES},
    {"vm-memory", required_argument, NULL, O_VMMEM},
    {"cold", no_argument, NULL, O_COLD},
    {"stdin", required_argument, NULL, O_STDIN},
    {"copy-in", required_argument, NULL, O_CIN},
    {"copy-out", required_argument, NULL, O_COUT},
    {"format", required_argument, NULL, O_FORMAT},
    {"image", required_argument, NULL, O_IMAGE},
    {"image-root", required_argument, NULL, O_IMAGE_ROOT},
    {"pull", required_argument, NULL, O_PULL},
    {"network", required_argument, NULL, O_NETWORK},
    {"egress", required_argument, NULL, O_EGRESS},
    {"publish", required_argument, NULL, O_PUBLISH},
    {"help", no_argument, NULL, O_HELP},
    {0},
};

struct vm_args {
    struct hull_vm_create_opts c;
    struct hull_vm_limits lim;
    uint64_t vm_memory;
    bool force, detach, json, cold;
    const char *cwd, *stdin_file, *format;
    char *env[128];
    size_t nenv;
    struct hull_vm_file cin[32], cout[32];
    size_t ncin, ncout;
    struct hull_publish pub[32];
};

static int split_pair(char *s, struct hull_vm_file *f)
{
    char *colon = strchr(s, ':');
    if (!colon || colon == s || !colon[1])
        return -1;
    *colon = 0;
    f->host = s;
    f->guest = colon + 1;
    return 0;
}

/* Options of every subcommand share one parser; "memory" means the VM's
 * size for create and the workload's limit for exec and run. */
static const char *opt_name(int c)
{
    for (const struct option *o = all_opts; o->name; o++)
        if (o->val == c)
            return o->name;
    return "?";
}

static bool allowed_opt(const int *allowed, int c)
{
    for (; *allowed; allowed++)
        if (*allowed == c)
            return true;
    return false;
}

/* The options that only keep their argument, or set a flag. */
static const struct {
    int opt;
    size_t off; /* in struct vm_args: a const char * or, for a flag, a bool */
    bool flag;
} vm_plain[] = {
    {O_KERNEL, offsetof(struct vm_args, c.kernel), false},
    {O_ROOTFS, offsetof(struct vm_args, c.rootfs), false},
    {O_IMAGE, offsetof(struct vm_args, c.image), false},
    {O_IMAGE_ROOT, offsetof(struct vm_args, c.image_root), false},
    {O_ACCEL, offsetof(struct vm_args, c.accel), false},
    {O_NETWORK, offsetof(struct vm_args, c.network), false},
    {O_EGRESS, offsetof(struct vm_args, c.egress), false},
    {O_EK, offsetof(struct vm_args, c.expect_kernel_sha256), false},
    {O_EI, offsetof(struct vm_args, c.expect_initrd_sha256), false},
    {O_ER, offsetof(struct vm_args, c.expect_rootfs_sha256), false},
    {O_CWD, offsetof(struct vm_args, cwd), false},
    {O_STDIN, offsetof(struct vm_args, stdin_file), false},
    {O_TEMPLATE, offsetof(struct vm_args, c.from_template), true},
    {O_FORCE, offsetof(struct vm_args, force), true},
    {O_DETACH, offsetof(struct vm_args, detach), true},
    {O_JSON, offsetof(struct vm_args, json), true},
    {O_COLD, offsetof(struct vm_args, cold), true},
};

/* An option's value in a message: '' when empty ("--memory : not a size"
 * read as if a part were missing). */
static const char *shown(const char *s)
{
    return s[0] ? s : "''";
}

/* One option c (allowed here) into a: 0, or the exit status. */
static int vm_option(struct cli *cli, int c, bool memory_is_limit, struct vm_args *a)
{
    for (size_t i = 0; i < sizeof(vm_plain) / sizeof(vm_plain[0]); i++) {
        if (vm_plain[i].opt != c)
            continue;
        char *field = (char *)a + vm_plain[i].off;
        if (vm_plain[i].flag)
            *(bool *)field = true;
        else
            *(const char **)field = optarg;
        return 0;
    }
    uint64_t v = 0;
    switch (c) {
    case O_MEMORY:
    case O_VMMEM:
        if (hull_parse_size(optarg, &v) < 0 || v == 0)
            return cli_usage_error(cli, "--%s %s: not a size (like 256M)",
                                   c == O_MEMORY ? "memory" : "vm-memory", shown(optarg));
        if (c == O_MEMORY && memory_is_limit)
            a->lim.memory_bytes = v;
        else if (c == O_MEMORY)
            a->c.memory_mb = (v + (1 << 20) - 1) >> 20;
        else
            a->vm_memory = (v + (1 << 20) - 1) >> 20;
        break;
    case O_VCPUS:
        if (parse_count(optarg, &v) < 0 || v == 0 || v > 64)
            return cli_usage_error(cli, "--vcpus %s: must be 1..64", shown(optarg));
        a->c.vcpus = (unsigned)v;
        break;
    case O_PULL:
        if (hull_pull_policy_parse(optarg, &a->c.pull) < 0)
            return cli_usage_error(cli, "--pull: unknown policy '%s' (missing or never)", optarg);
        break;
    case O_FORMAT:
        if (strcmp(optarg, "table") != 0 && strcmp(optarg, "json") != 0)
            return cli_usage_error(cli, "--format: unknown format '%s' (table or json)", optarg);
        a->format = optarg;
        break;
    case O_PUBLISH: {
        hull_error e = NULL;
        if (a->c.n_publish >= sizeof(a->pub) / sizeof(a->pub[0]))
            return cli_usage_error(cli, "--publish: at most %zu ports",
                                   sizeof(a->pub) / sizeof(a->pub[0]));
        if (hull_publish_parse(optarg, &a->pub[a->c.n_publish], &e) < 0) {
            int r = cli_usage_error(cli, "%s", hull_error_msg(e));
            hull_error_free(&e);
            return r;
        }
        a->c.publish = a->pub;
        a->c.n_publish++;
        break;
    }
    case O_ENV:
        if (!strchr(optarg, '=') || a->nenv + 2 >= sizeof(a->env) / sizeof(a->env[0]))
            return cli_usage_error(cli, "--env %s: must be K=V", shown(optarg));
        a->env[a->nenv++] = optarg;
        break;
    case O_CIN:
    case O_COUT: {
        struct hull_vm_file *f = c == O_CIN ? &a->cin[a->ncin] : &a->cout[a->ncout];
        if ((c == O_CIN ? a->ncin : a->ncout) >= 32 || split_pair(optarg, f) < 0)
            return cli_usage_error(cli, "--%s %s: must be SRC:DST",
                                   c == O_CIN ? "copy-in" : "copy-out", shown(optarg));
        if (c == O_COUT) { /* GUEST:HOST */
            const char *g = f->host;
            f->host = f->guest;
            f->guest = g;
            a->ncout++;
        } else
            a->ncin++;
        break;
    }
    case O_CPU:
    case O_WALL:
        if (parse_ms(optarg, &v) < 0)
            return cli_usage_error(cli, "--%s %s: not a duration (like 2s or 500ms)", opt_name(c),
                                   shown(optarg));
        *(c == O_CPU ? &a->lim.cpu_time_ms : &a->lim.wall_time_ms) = v;
        break;
    case O_PIDS:
    case O_FILES:
    case O_OUTPUT:
        if ((c == O_OUTPUT ? hull_parse_size(optarg, &v) : parse_count(optarg, &v)) < 0 || v == 0)
            return cli_usage_error(cli, "--%s %s: not a positive number", opt_name(c),
                                   shown(optarg));
        *(c == O_PIDS    ? &a->lim.pids
          : c == O_FILES ? &a->lim.open_files
                         : &a->lim.output_bytes) = v;
        break;
    }
    return 0;
}

static int parse(struct cli *cli, int argc, char **argv, const int *allowed, bool memory_is_limit,
                 struct vm_args *a)
{
    memset(a, 0, sizeof(*a));
    int c;
    opterr = 0; /* said once, by cli_bad_option */
    while ((c = getopt_long(argc, argv, "+:", all_opts, NULL)) != -1) {
        if (c == O_HELP) {
            usage();
            exit(0);
        }
        if (c == '?' || c == ':' || c < O_MEMORY)
            return cli_bad_option(cli, argc, argv, c);
        if (!allowed_opt(allowed, c))
            return cli_usage_error(cli, "option --%s does not apply here", opt_name(c));
        int r = vm_option(cli, c, memory_is_limit, a);
        if (r != 0)
            return r;
    }
    return 0;
}

#define LIMIT_OPTS O_MEMORY, O_CPU, O_WALL, O_PIDS, O_OUTPUT, O_FILES
static const int CREATE_OPTS[] = {O_MEMORY,  O_VCPUS,  O_KERNEL,   O_ROOTFS, O_ACCEL,      O_EK,
                                  O_EI,      O_ER,     O_TEMPLATE, O_IMAGE,  O_IMAGE_ROOT, O_PULL,
                                  O_NETWORK, O_EGRESS, O_PUBLISH,  0};
static const int EXEC_OPTS[] = {LIMIT_OPTS, O_DETACH, O_ENV, O_CWD, O_JSON, 0};
static const int RUN_OPTS[] = {LIMIT_OPTS,   O_KERNEL, O_ROOTFS,  O_ACCEL,  O_ENV,     O_CWD,
                               O_VMMEM,      O_COLD,   O_STDIN,   O_CIN,    O_COUT,    O_IMAGE,
                               O_IMAGE_ROOT, O_PULL,   O_NETWORK, O_EGRESS, O_PUBLISH, 0};
static const int DELETE_OPTS[] = {O_FORCE, 0};
static const int LIST_OPTS[] = {O_FORMAT, 0};
static const int INITRD_OPTS[] = {O_KERNEL, 0};

static void print_json(const char *s)
{
    if (s) {
        fputs(s, stdout);
        fputc('\n', stdout);
    }
}

/* As `hull sandbox run` reports a run: the command's own ending passes
 * through; a limit, or hull's own failure, is said on stderr. */
#define EXIT_LIMIT    124
#define EXIT_INTERNAL 125

static bool own_ending(const char *verdict)
{
    return strcmp(verdict, "ok") == 0 || strcmp(verdict, "exit_nonzero") == 0 ||
           strcmp(verdict, "signaled") == 0;
}

static int exit_status(const struct hull_vm_exec_result *r)
{
    if (strcmp(r->verdict, "internal_error") == 0 || !r->verdict[0])
        return EXIT_INTERNAL;
    if (!own_ending(r->verdict))
        return EXIT_LIMIT;
    return r->signal ? 128 + r->signal : r->exit_code;
}

static void summary(const char *id, const struct hull_vm_exec_result *r)
{
    fprintf(stderr, "hull: vm exec %s: verdict=%s", id,
            r->verdict[0] ? r->verdict : "internal_error");
    if (r->signal)
        fprintf(stderr, " signal=%d", r->signal);
    else
        fprintf(stderr, " exit=%d", r->exit_code);
    fprintf(stderr, " cpu=%llums wall=%llums memory=%lluKiB\n", (unsigned long long)r->cpu_time_ms,
            (unsigned long long)r->wall_time_ms, (unsigned long long)r->max_memory_kb);
}

static int do_exec(struct cli *cli, int argc, char **argv, const char *id, struct vm_args *a)
{
    struct hull_vm_exec_opts o = {
        .argv = argv,
        .cwd = a->cwd,
        .stdin_fd = a->detach ? -1 : 0,
        .stdout_fd = a->json ? -1 : 1,
        .stderr_fd = a->json ? -1 : 2,
        .detach = a->detach,
        .limits = a->lim,
    };
    /* Without PATH, the library gives the default one (or the image's). */
    if (a->nenv) {
        a->env[a->nenv] = NULL;
        o.env = a->env;
    }
    (void)argc;
    struct hull_vm_exec_result r;
    hull_error err = NULL;
    if (hull_vm_exec(&cli->rt, id, &o, &r, &err) < 0) {
        /* As a shell reports it: not found 127, not executable 126. */
        int cmd_status = hull_cmd_status(hull_error_code(err));
        bool cannot_start = cmd_status != 0;
        int status = cannot_start ? cmd_status : EXIT_INTERNAL;
        if (a->json && cannot_start) {
            /* The command could not start: a run that happened, as
             * `sandbox run --json` reports it (verdict bad_command). */
            struct hull_vm_exec_result none = {.verdict = "bad_command", .exit_code = status};
            char *s = hull_vm_exec_result_json(&none, hull_error_msg(err));
            print_json(s);
            free(s);
            hull_error_free(&err);
            return 0;
        }
        cli_fail(cli, &err, "vm exec %s", id);
        return status;
    }
    int st = 0;
    if (a->detach)
        printf("%d\n", (int)r.pid);
    else if (a->json) {
        char *s = hull_vm_exec_result_json(&r, NULL);
        print_json(s);
        free(s);
    } else {
        st = exit_status(&r);
        if (!own_ending(r.verdict))
            summary(id, &r);
    }
    hull_vm_exec_result_free(&r);
    return st;
}

/* `vm list`: a table like `hull list`, or the state documents as JSON. */
static int do_list(struct cli *cli, const struct vm_args *a)
{
    hull_error err = NULL;
    char *s = hull_vm_list(&cli->rt, &err);
    if (!s)
        return cli_fail(cli, &err, "vm list");
    if (a->format && strcmp(a->format, "json") == 0) {
        print_json(s);
        free(s);
        return 0;
    }
    json_object *all = json_tokener_parse(s);
    free(s);
    if (!all || !json_object_is_type(all, json_type_array)) {
        json_object_put(all);
        fprintf(stderr, "hull: vm list: unreadable state\n");
        return 1;
    }
    printf("%-24s %-8s %-8s %-6s %-8s %-5s %s\n", "ID", "STATUS", "PID", "ACCEL", "MEMORY", "VCPUS",
           "CREATED");
    for (size_t i = 0; i < json_object_array_length(all); i++) {
        json_object *v = json_object_array_get_idx(all, i), *f;
#define FIELD(k) (json_object_object_get_ex(v, k, &f) ? json_object_get_string(f) : "")
        char mem[32];
        snprintf(mem, sizeof(mem), "%sM", FIELD("memory_mb"));
        printf("%-24s %-8s %-8s %-6s %-8s %-5s %s\n", FIELD("id"), FIELD("status"), FIELD("pid"),
               FIELD("accelerator"), mem, FIELD("vcpus"), FIELD("created"));
#undef FIELD
    }
    json_object_put(all);
    return 0;
}

static int do_run(struct cli *cli, char **argv, struct vm_args *a)
{
    char *data = NULL;
    size_t len = 0;
    if (a->stdin_file) {
        FILE *f = strcmp(a->stdin_file, "-") == 0 ? stdin : fopen(a->stdin_file, "re");
        if (!f) {
            fprintf(stderr, "hull: vm run: --stdin %s: %s\n", a->stdin_file, strerror(errno));
            return 1;
        }
        char buf[65536];
        size_t n, cap = 0;
        const char *why = NULL;
        while (why == NULL && (n = fread(buf, 1, sizeof(buf), f)) > 0) {
            if (len + n > HULL_VM_STDIN_MAX) {
                why = "more than 256 MiB";
                break;
            }
            if (len + n > cap) { /* doubled: not a copy of all so far per read */
                cap = cap ? cap * 2 : sizeof(buf);
                char *more = realloc(data, cap);
                if (more == NULL) {
                    why = "out of memory";
                    break;
                }
                data = more;
            }
            memcpy(data + len, buf, n);
            len += n;
        }
        if (why == NULL && ferror(f)) /* a directory, an I/O error */
            why = strerror(errno);
        if (f != stdin)
            fclose(f);
        if (why) {
            fprintf(stderr, "hull: vm run: --stdin %s: %s\n", a->stdin_file, why);
            free(data);
            return 1;
        }
    }
    a->env[a->nenv] = NULL;
    struct hull_vm_oneshot_opts o = {
        .rt = &cli->rt,
        .argv = argv,
        .env = a->nenv ? a->env : NULL,
        .cwd = a->cwd,
        .stdin_data = data,
        .stdin_len = len,
        .copy_in = a->cin,
        .n_copy_in = a->ncin,
        .copy_out = a->cout,
        .n_copy_out = a->ncout,
        .copy_out_max = UINT64_MAX, /* the operator's own files */
        .limits = a->lim,
        .rootfs = a->c.rootfs,
        .kernel = a->c.kernel,
        .accel = a->c.accel,
        .memory_mb = a->vm_memory,
        .cold = a->cold,
        .image = a->c.image,
        .image_root = a->c.image_root,
        .pull = a->c.pull,
        .network = a->c.network,
        .egress = a->c.egress,
        .publish = a->c.publish,
        .n_publish = a->c.n_publish,
    };
    struct hull_vm_oneshot_result r;
    hull_error err = NULL;
    int rc = hull_vm_oneshot(&o, &r, &err);
    free(data);
    if (rc < 0)
        return cli_fail(cli, &err, "vm run");
    char *s = hull_vm_oneshot_result_json(&r);
    print_json(s);
    free(s);
    /* hull's failure 1; a command that cannot start a shell's 127 or 126. */
    rc = strcmp(r.run.verdict, "internal_error") == 0 ? 1
         : strcmp(r.run.verdict, "bad_command") == 0  ? r.run.exit_code
                                                      : 0;
    hull_vm_oneshot_result_free(&r);
    return rc;
}

static int do_cp(struct cli *cli, const char *src, const char *dst)
{
    hull_error err = NULL;
    const char *sc = strchr(src, ':'), *dc = strchr(dst, ':');
    /* ID:PATH on exactly one side; a host path with ':' must be ./-prefixed. */
    bool src_vm = sc && src[0] != '/' && src[0] != '.',
         dst_vm = dc && dst[0] != '/' && dst[0] != '.';
    if (src_vm == dst_vm)
        return cli_usage_error(cli, "exactly one of SRC and DST must be ID:PATH");
    char id[128];
    const char *vmside = src_vm ? src : dst, *colon = src_vm ? sc : dc;
    snprintf(id, sizeof(id), "%.*s", (int)(colon - vmside), vmside);
    int rc = src_vm ? hull_vm_copy_out(&cli->rt, id, colon + 1, dst, &err)
                    : hull_vm_copy_in(&cli->rt, id, src, colon + 1, &err);
    return rc < 0 ? cli_fail(cli, &err, "vm cp") : 0;
}

int cmd_vm(struct cli *cli, int argc, char **argv)
{
    if (argc < 2) {
        /* A usage error: said on stderr, not the help on stdout. */
        fprintf(stderr, "hull: vm: missing command\nTry 'hull vm --help'.\n");
        return 1;
    }
    if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0 ||
        strcmp(argv[1], "help") == 0) {
        usage();
        return 0;
    }
    const char *sub = argv[1];
    static const char *const verbs[] = {
        "create", "start", "stop",     "pause",   "resume", "delete",  "state",   "list",  "exec",
        "run",    "cp",    "snapshot", "restore", "initrd", "migrate", "receive", "cache", NULL};
    bool known = false;
    for (size_t i = 0; verbs[i] && !known; i++)
        known = strcmp(sub, verbs[i]) == 0;
    if (!known) {
        /* As for `hull bogus`: the verb itself is the mistake. */
        fprintf(stderr, "hull: vm: unknown command '%s'\nTry 'hull vm --help'.\n", sub);
        return 1;
    }
    argc--;
    argv++;
    optind = 0;
    static char verb[32];
    snprintf(verb, sizeof(verb), "vm %s", sub);
    cli->verb = verb;
    if (strcmp(sub, "migrate") == 0 || strcmp(sub, "receive") == 0)
        return cmd_vm_migrate(cli, argc, argv); /* vm_migrate.c */
    if (strcmp(sub, "cache") == 0)
        return cmd_vm_cache(cli, argc, argv); /* vm_cache.c */
    struct vm_args a;
    hull_error err = NULL;
    if (strcmp(sub, "create") == 0) {
        if (parse(cli, argc, argv, CREATE_OPTS, false, &a) ||
            cli_need_args(cli, argc, argv, 1, "ID"))
            return 1;
        a.c.id = argv[optind];
        return hull_vm_create(&cli->rt, &a.c, &err) < 0 ? cli_fail(cli, &err, "vm create") : 0;
    }
    if (strcmp(sub, "exec") == 0 || strcmp(sub, "run") == 0) {
        bool run = strcmp(sub, "run") == 0;
        if (parse(cli, argc, argv, run ? RUN_OPTS : EXEC_OPTS, true, &a))
            return 1;
        int first = optind;
        const char *id = NULL;
        if (!run) {
            if (first >= argc)
                return cli_usage_error(cli, "missing ID");
            id = argv[first++];
        }
        if (first < argc && strcmp(argv[first], "--") == 0)
            first++;
        if (first >= argc)
            return cli_usage_error(cli, "missing command (after --)");
        return run ? do_run(cli, argv + first, &a)
                   : do_exec(cli, argc - first, argv + first, id, &a);
    }
    if (parse(cli, argc, argv,
              strcmp(sub, "initrd") == 0 ? INITRD_OPTS
              : strcmp(sub, "list") == 0 ? LIST_OPTS
                                         : DELETE_OPTS,
              false, &a))
        return 1;
    if (strcmp(sub, "list") == 0)
        return cli_need_args(cli, argc, argv, 0, "") ? 1 : do_list(cli, &a);
    if (strcmp(sub, "initrd") == 0) {
        if (cli_need_args(cli, argc, argv, 0, ""))
            return 1;
        char path[4096], sha[65];
        if (hull_vm_initrd(a.c.kernel, path, sha, &err) < 0)
            return cli_fail(cli, &err, "vm initrd");
        printf("%s  %s\n", sha, path);
        return 0;
    }
    if (strcmp(sub, "cp") == 0 || strcmp(sub, "snapshot") == 0 || strcmp(sub, "restore") == 0) {
        if (cli_need_args(cli, argc, argv, 2,
                          sub[0] == 'c'   ? "SRC DST"
                          : sub[0] == 's' ? "ID FILE"
                                          : "FILE NEWID"))
            return 1;
        const char *x = argv[optind], *y = argv[optind + 1];
        if (sub[0] == 'c')
            return do_cp(cli, x, y);
        int rc = sub[0] == 's' ? hull_vm_snapshot(&cli->rt, x, y, &err)
                               : hull_vm_restore(&cli->rt, x, y, &err);
        return rc < 0 ? cli_fail(cli, &err, "vm %s", sub) : 0;
    }
    if (cli_need_args(cli, argc, argv, 1, "ID"))
        return 1;
    const char *id = argv[optind];
    int rc;
    if (strcmp(sub, "start") == 0)
        rc = hull_vm_start(&cli->rt, id, &err);
    else if (strcmp(sub, "stop") == 0)
        rc = hull_vm_stop(&cli->rt, id, &err);
    else if (strcmp(sub, "pause") == 0)
        rc = hull_vm_pause(&cli->rt, id, &err);
    else if (strcmp(sub, "resume") == 0)
        rc = hull_vm_resume(&cli->rt, id, &err);
    else if (strcmp(sub, "delete") == 0)
        rc = hull_vm_delete(&cli->rt, id, a.force, &err);
    else if (strcmp(sub, "state") == 0) {
        char *s = hull_vm_state(&cli->rt, id, &err);
        if (!s)
            return cli_fail(cli, &err, "vm state");
        print_json(s);
        free(s);
        return 0;
    } else
        return cli_usage_error(cli, "unknown command '%s'", sub);
    return rc < 0 ? cli_fail(cli, &err, "vm %s", sub) : 0;
}
