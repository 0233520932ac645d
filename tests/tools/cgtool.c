/* cgtool: drives linux/cgroup*.c from the command line, so the integration
 * tests (tests/integration/test_cgroup_mech.py) and bench/cgroup_bench.sh
 * can exercise the real mechanism and check kernel state from the host.
 *
 *   cgtool mode | layout
 *   cgtool create --state F [--path P] [--systemd] [--resources R] [--all] ID
 *   cgtool apply  --state F --resources R          (update; re-saves F)
 *   cgtool exec   --state F [--detach] [--out FILE] -- CMD...
 *   cgtool pids|freeze|thaw|frozen|stats|events|destroy --state F
 *   cgtool kill   --state F SIGNAL
 *   cgtool oomwait --state F TIMEOUT_MS
 *   cgtool mount  --state F [--ro] [--cgroupns] DEST -- CMD...
 *   cgtool bench  N [--resources R] [--path-prefix P] [--all]
 *
 * The state file is what hull_cgroup_save writes; every command but create
 * and bench loads it with hull_cgroup_load, as the runtime's verbs do.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "linux/cgroup.h"
#include "linux/cgroup_internal.h"
#include "util/error.h"
#include "util/json.h"

static const char *state_file, *resources_file, *cg_path, *out_file, *path_prefix;
static bool systemd, detach, readonly, cgroupns, join_all;

static int die(hull_error *err, const char *what)
{
    fprintf(stderr, "cgtool: %s: %s\n", what, hull_error_msg(*err));
    hull_error_free(err);
    exit(1);
}

static void load_resources(struct hull_resources *r, hull_error *err)
{
    memset(r, 0, sizeof(*r));
    if (resources_file == NULL)
        return;
    json_object *o = NULL;
    if (hj_parse_file(resources_file, &o, err) < 0 ||
        hull_resources_parse(o, "linux.resources", r, err) < 0)
        die(err, "resources");
    json_object_put(o);
}

static void save(struct hull_cgroup *cg)
{
    json_object *o = hull_cgroup_save(cg);
    if (json_object_to_file_ext(state_file, o, JSON_C_TO_STRING_PRETTY) < 0) {
        fprintf(stderr, "cgtool: write %s failed\n", state_file);
        exit(1);
    }
    json_object_put(o);
}

static struct hull_cgroup *load(hull_error *err)
{
    json_object *o = NULL;
    struct hull_cgroup *cg = NULL;
    if (state_file == NULL) {
        fprintf(stderr, "cgtool: --state is required\n");
        exit(2);
    }
    if (hj_parse_file(state_file, &o, err) < 0 || hull_cgroup_load(o, &cg, err) < 0)
        die(err, "load state");
    json_object_put(o);
    return cg;
}

static int cmd_create(int argc, char **argv, hull_error *err)
{
    if (argc < 1 || state_file == NULL) {
        fprintf(stderr, "usage: cgtool create --state F [--path P] [--resources R] ID\n");
        return 2;
    }
    struct hull_resources r;
    load_resources(&r, err);
    struct hull_cgroup *cg = NULL;
    if (hull_cgroup_create(cg_path, argv[0], systemd, &cg, err) < 0)
        die(err, "create");
    /* Saved before apply, so a failing apply leaves a state to destroy. */
    save(cg);
    if (join_all && hull_cgroup_join_all(cg, err) < 0)
        die(err, "join all");
    if (hull_cgroup_apply(cg, &r, err) < 0) {
        hull_error e = NULL;
        hull_cgroup_destroy(cg, &e);
        hull_error_free(&e);
        remove(state_file);
        die(err, "apply");
    }
    save(cg);
    hull_resources_free(&r);
    hull_cgroup_free(cg);
    return 0;
}

static int cmd_apply(hull_error *err)
{
    struct hull_cgroup *cg = load(err);
    struct hull_resources r;
    load_resources(&r, err);
    int rc = hull_cgroup_apply(cg, &r, err);
    save(cg); /* apply may have joined hierarchies */
    hull_resources_free(&r);
    hull_cgroup_free(cg);
    if (rc < 0)
        die(err, "apply");
    return 0;
}

static void redirect_detached(void)
{
    int in = open("/dev/null", O_RDONLY);
    int out = open(out_file ? out_file : "/dev/null", O_WRONLY | O_CREAT | O_APPEND, 0644);
    if (in < 0 || out < 0)
        _exit(127);
    dup2(in, 0);
    dup2(out, 1);
    dup2(out, 2);
    setsid();
}

/* Fork a child that waits until it has been moved into the cgroup. */
static pid_t spawn(struct hull_cgroup *cg, char **cmd, void (*prepare)(void), hull_error *err)
{
    int p[2];
    if (pipe2(p, O_CLOEXEC) < 0) {
        hull_error_errno(err, "pipe");
        return -1;
    }
    pid_t pid = fork();
    if (pid < 0) {
        hull_error_errno(err, "fork");
        return -1;
    }
    if (pid == 0) {
        char c;
        close(p[1]);
        if (read(p[0], &c, 1) != 1)
            _exit(127);
        if (prepare)
            prepare();
        execvp(cmd[0], cmd);
        fprintf(stderr, "cgtool: exec %s: %s\n", cmd[0], strerror(errno));
        _exit(127);
    }
    close(p[0]);
    int rc = hull_cgroup_enter(cg, pid, err);
    if (rc == 0 && write(p[1], "x", 1) != 1)
        rc = hull_error_errno(err, "release child");
    close(p[1]);
    if (rc < 0) {
        kill(pid, SIGKILL);
        waitpid(pid, NULL, 0);
        return -1;
    }
    return pid;
}

static int report_exit(pid_t pid)
{
    int st;
    while (waitpid(pid, &st, 0) < 0 && errno == EINTR)
        ;
    if (WIFSIGNALED(st))
        printf("signal %d\n", WTERMSIG(st));
    else
        printf("exit %d\n", WEXITSTATUS(st));
    return 0;
}

static int cmd_exec(char **cmd, hull_error *err)
{
    struct hull_cgroup *cg = load(err);
    pid_t pid = spawn(cg, cmd, detach ? redirect_detached : NULL, err);
    hull_cgroup_free(cg);
    if (pid < 0)
        die(err, "exec");
    if (detach) {
        printf("%d\n", (int)pid);
        return 0;
    }
    return report_exit(pid);
}

static const char *mount_dest;
static struct hull_cgroup *mount_cg;

/* In the child, after it was moved into the cgroup. */
static void prepare_mount(void)
{
    hull_error err = NULL;
    if (unshare(CLONE_NEWNS | (cgroupns ? CLONE_NEWCGROUP : 0)) < 0 ||
        mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0) {
        perror("cgtool: unshare");
        _exit(127);
    }
    int fd = open(mount_dest, O_PATH | O_DIRECTORY | O_CLOEXEC);
    char dest[32];
    if (fd < 0) {
        perror("cgtool: open dest");
        _exit(127);
    }
    snprintf(dest, sizeof(dest), "/proc/self/fd/%d", fd);
    if (hull_cgroup_mount(mount_cg, dest, readonly, cgroupns, MS_RELATIME, &err) < 0)
        die(&err, "mount");
    close(fd);
}

static int cmd_mount(int argc, char **argv, hull_error *err)
{
    if (argc < 2) {
        fprintf(stderr, "usage: cgtool mount --state F [--ro] [--cgroupns] DEST -- CMD...\n");
        return 2;
    }
    mount_cg = load(err);
    mount_dest = argv[0];
    char **cmd = argv + 1;
    if (strcmp(cmd[0], "--") == 0 && cmd[1] != NULL)
        cmd++;
    pid_t pid = spawn(mount_cg, cmd, prepare_mount, err);
    if (pid < 0)
        die(err, "mount");
    hull_cgroup_free(mount_cg);
    return report_exit(pid);
}

static int cmd_simple(const char *verb, int argc, char **argv, hull_error *err)
{
    struct hull_cgroup *cg = load(err);
    int rc = 0;
    if (strcmp(verb, "pids") == 0) {
        pid_t *pids = NULL;
        size_t n = 0;
        rc = hull_cgroup_pids(cg, &pids, &n, err);
        for (size_t i = 0; rc == 0 && i < n; i++)
            printf("%d\n", (int)pids[i]);
        free(pids);
    } else if (strcmp(verb, "freeze") == 0 || strcmp(verb, "thaw") == 0) {
        rc = hull_cgroup_freeze(cg, strcmp(verb, "freeze") == 0, err);
    } else if (strcmp(verb, "frozen") == 0) {
        bool f = false;
        if ((rc = hull_cgroup_is_frozen(cg, &f, err)) == 0)
            printf("%d\n", f);
    } else if (strcmp(verb, "kill") == 0) {
        int sig = argc > 0 ? atoi(argv[0]) : SIGKILL;
        rc = hull_cgroup_kill(cg, sig, err);
    } else if (strcmp(verb, "stats") == 0) {
        struct hull_cgroup_stats s;
        if ((rc = hull_cgroup_stats(cg, &s, err)) == 0)
            printf("{\"cpu_usage_ns\": %llu, \"cpu_user_ns\": %llu, \"cpu_system_ns\": %llu, "
                   "\"cpu_periods\": %llu, \"cpu_throttled_periods\": %llu, "
                   "\"memory_usage\": %llu, \"memory_max_usage\": %llu, \"memory_limit\": %llu, "
                   "\"memory_failcnt\": %llu, \"oom_events\": %llu, \"oom_kill_events\": %llu, "
                   "\"pids_current\": %llu, \"pids_limit\": %llu, \"pids_max_events\": %llu}\n",
                   (unsigned long long)s.cpu_usage_ns, (unsigned long long)s.cpu_user_ns,
                   (unsigned long long)s.cpu_system_ns, (unsigned long long)s.cpu_periods,
                   (unsigned long long)s.cpu_throttled_periods, (unsigned long long)s.memory_usage,
                   (unsigned long long)s.memory_max_usage, (unsigned long long)s.memory_limit,
                   (unsigned long long)s.memory_failcnt, (unsigned long long)s.oom_events,
                   (unsigned long long)s.oom_kill_events, (unsigned long long)s.pids_current,
                   (unsigned long long)s.pids_limit, (unsigned long long)s.pids_max_events);
    } else if (strcmp(verb, "events") == 0) {
        json_object *o = hull_cgroup_stats_json(cg, err);
        if (o == NULL)
            rc = -1;
        else
            printf("%s\n", json_object_to_json_string_ext(o, JSON_C_TO_STRING_PRETTY));
        json_object_put(o);
    } else if (strcmp(verb, "oomwait") == 0) {
        int fd = hull_cgroup_oom_fd(cg, err);
        if (fd >= 0) {
            struct pollfd p = {.fd = fd, .events = POLLIN};
            int n = poll(&p, 1, argc > 0 ? atoi(argv[0]) : 10000);
            printf("%s\n", n > 0 ? "oom" : "timeout");
            close(fd);
        } else {
            rc = -1;
        }
    } else if (strcmp(verb, "destroy") == 0) {
        if ((rc = hull_cgroup_destroy(cg, err)) == 0)
            remove(state_file);
    } else {
        fprintf(stderr, "cgtool: unknown command %s\n", verb);
        rc = -2;
    }
    hull_cgroup_free(cg);
    if (rc == -1)
        die(err, verb);
    return rc < 0 ? 2 : 0;
}

static int cmd_layout(bool full, hull_error *err)
{
    const struct cg_layout *L = cg_layout_get(err);
    if (L == NULL)
        die(err, "layout");
    static const char *const names[] = {"v1", "hybrid", "v2"};
    printf("%s\n", names[L->mode]);
    for (size_t i = 0; full && i < L->n; i++) {
        char key[256];
        cg_hier_key(&L->h[i], key, sizeof(key));
        printf("%s %s %s %s\n", L->h[i].v2 ? "v2" : "v1", L->h[i].mount, L->h[i].name,
               key[0] ? key : "-");
    }
    return 0;
}

static double now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e6 + (double)ts.tv_nsec / 1e3;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* create (+apply) + enter a child + destroy, N times; the fork/exit of
 * the child is timed apart so the figures are the cgroup work alone. */
static int cmd_bench(int argc, char **argv, hull_error *err)
{
    int n = argc > 0 ? atoi(argv[0]) : 100;
    struct hull_resources r;
    load_resources(&r, err);
    double t_create = 0, t_enter = 0, t_destroy = 0, t_proc = 0;
    double *tot = calloc((size_t)(n > 0 ? n : 1), sizeof(double));
    double *ent = calloc((size_t)(n > 0 ? n : 1), sizeof(double));
    for (int i = 0; i < n; i++) {
        char id[64], path[256];
        snprintf(id, sizeof(id), "bench-%d-%d", (int)getpid(), i);
        if (path_prefix)
            snprintf(path, sizeof(path), "%s/%s", path_prefix, id);
        struct hull_cgroup *cg = NULL;
        int p[2];
        if (pipe2(p, O_CLOEXEC) < 0)
            return 1;
        double t0 = now_us();
        pid_t pid = fork();
        if (pid == 0) {
            char c;
            _exit(read(p[0], &c, 1) == 1 ? 0 : 1);
        }
        double t1 = now_us();
        if (hull_cgroup_create(path_prefix ? path : NULL, id, false, &cg, err) < 0 ||
            (join_all && hull_cgroup_join_all(cg, err) < 0) || hull_cgroup_apply(cg, &r, err) < 0)
            die(err, "bench create");
        double t2 = now_us();
        if (hull_cgroup_enter(cg, pid, err) < 0)
            die(err, "bench enter");
        double t3 = now_us();
        if (write(p[1], "x", 1) != 1)
            return 1;
        close(p[0]);
        close(p[1]);
        waitpid(pid, NULL, 0);
        double t4 = now_us();
        if (hull_cgroup_destroy(cg, err) < 0)
            die(err, "bench destroy");
        double t5 = now_us();
        hull_cgroup_free(cg);
        t_proc += (t1 - t0) + (t4 - t3);
        t_create += t2 - t1;
        t_enter += t3 - t2;
        t_destroy += t5 - t4;
        tot[i] = (t2 - t1) + (t3 - t2) + (t5 - t4);
        ent[i] = t3 - t2;
    }
    qsort(tot, (size_t)n, sizeof(double), cmp_double);
    qsort(ent, (size_t)n, sizeof(double), cmp_double);
    double total = (t_create + t_enter + t_destroy) / n;
    printf("{\"n\": %d, \"create_us\": %.1f, \"enter_us\": %.1f, \"destroy_us\": %.1f, "
           "\"cgroup_total_us\": %.1f, \"total_p50_us\": %.1f, \"total_p90_us\": %.1f, "
           "\"enter_p50_us\": %.1f, \"fork_wait_us\": %.1f, \"cgroups_per_s\": %.0f}\n",
           n, t_create / n, t_enter / n, t_destroy / n, total, tot[n / 2], tot[n * 9 / 10],
           ent[n / 2], t_proc / n, 1e6 / total);
    free(tot);
    free(ent);
    hull_resources_free(&r);
    return 0;
}

int main(int argc, char **argv)
{
    static const struct option opts[] = {
        {"state", required_argument, NULL, 's'},
        {"resources", required_argument, NULL, 'r'},
        {"path", required_argument, NULL, 'p'},
        {"path-prefix", required_argument, NULL, 'P'},
        {"out", required_argument, NULL, 'o'},
        {"systemd", no_argument, NULL, 'S'},
        {"detach", no_argument, NULL, 'd'},
        {"ro", no_argument, NULL, 'R'},
        {"cgroupns", no_argument, NULL, 'C'},
        {"all", no_argument, NULL, 'A'},
        {NULL, 0, NULL, 0},
    };
    if (argc < 2) {
        fprintf(stderr, "usage: cgtool COMMAND [options] [args]\n");
        return 2;
    }
    const char *verb = argv[1];
    argv++;
    argc--;
    int c;
    while ((c = getopt_long(argc, argv, "+", opts, NULL)) != -1) {
        switch (c) {
        case 's':
            state_file = optarg;
            break;
        case 'r':
            resources_file = optarg;
            break;
        case 'p':
            cg_path = optarg;
            break;
        case 'P':
            path_prefix = optarg;
            break;
        case 'o':
            out_file = optarg;
            break;
        case 'S':
            systemd = true;
            break;
        case 'd':
            detach = true;
            break;
        case 'R':
            readonly = true;
            break;
        case 'C':
            cgroupns = true;
            break;
        case 'A':
            join_all = true;
            break;
        default:
            return 2;
        }
    }
    argc -= optind;
    argv += optind;
    if (argc > 0 && strcmp(argv[0], "--") == 0) {
        argc--;
        argv++;
    }
    hull_error err = NULL;
    if (strcmp(verb, "mode") == 0 || strcmp(verb, "layout") == 0)
        return cmd_layout(strcmp(verb, "layout") == 0, &err);
    if (strcmp(verb, "create") == 0)
        return cmd_create(argc, argv, &err);
    if (strcmp(verb, "apply") == 0)
        return cmd_apply(&err);
    if (strcmp(verb, "exec") == 0) {
        if (argc < 1)
            return 2;
        return cmd_exec(argv, &err);
    }
    if (strcmp(verb, "mount") == 0) {
        /* DEST comes before the "--" that getopt stopped at. */
        return cmd_mount(argc, argv, &err);
    }
    if (strcmp(verb, "bench") == 0)
        return cmd_bench(argc, argv, &err);
    return cmd_simple(verb, argc, argv, &err);
}
