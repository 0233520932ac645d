/* linux/seccomp.c: what a compiled OCI profile really does to a process.
 * Every check loads the filter in a forked child and makes real syscalls;
 * getppid is the probe where arguments matter, because the kernel ignores
 * its arguments while the filter sees them. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include "linux/seccomp.h"
#include "spec/spec.h"
#include "util/json.h"

/* Children leave with _exit so no atexit work (LeakSanitizer's ptrace
 * included) runs under the filter. */

struct outcome {
    int sig;  /* the signal that killed the child, 0 if none */
    long ret; /* the syscall's return value */
    int err;  /* errno when ret < 0 */
};

/* Parse a linux.seccomp JSON text; 0 or -1 with *err set. */
static int profile_parse(const char *json, struct hull_seccomp *out, hull_error *err)
{
    json_object *doc = NULL;
    memset(out, 0, sizeof(*out));
    if (hj_parse(json, strlen(json), "profile", &doc, err) < 0)
        return -1;
    int rc = hull_seccomp_parse(doc, "linux.seccomp", out, err);
    json_object_put(doc);
    return rc;
}

/* Parse and compile; the filter or NULL with *err set. */
static struct hull_seccomp_filter *profile_compile(const char *json, hull_error *err)
{
    struct hull_seccomp s;
    struct hull_seccomp_filter *f = NULL;
    int rc = profile_parse(json, &s, err);
    if (rc == 0)
        rc = hull_seccomp_compile(&s, &f, err);
    hull_seccomp_free(&s);
    return rc < 0 ? NULL : f;
}

/* Compile or fail the test with the error. */
static struct hull_seccomp_filter *must_compile(const char *json)
{
    hull_error err = NULL;
    struct hull_seccomp_filter *f = profile_compile(json, &err);
    if (f == NULL)
        fail_msg("compiling %s: %s", json, hull_error_msg(err));
    return f;
}

/* In a child: set no_new_privs, load f, make syscall nr with args a. */
static struct outcome run_syscall(const struct hull_seccomp_filter *f, long nr, const long a[6])
{
    struct outcome o = {0, 0, 0};
    int p[2];
    if (pipe(p) < 0)
        return (struct outcome){-1, 0, 0};
    pid_t pid = fork();
    if (pid == 0) {
        close(p[0]);
        /* cmocka catches SIGSYS in the test process; the child must die of it */
        signal(SIGSYS, SIG_DFL);
        hull_error err = NULL;
        if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0 || hull_seccomp_load(f, NULL, &err) < 0)
            _exit(125);
        errno = 0;
        struct outcome r = {0, syscall(nr, a[0], a[1], a[2], a[3], a[4], a[5]), 0};
        r.err = errno;
        if (r.ret == 0 && (nr == SYS_clone || nr == SYS_fork))
            _exit(0);
        if (write(p[1], &r, sizeof(r)) != sizeof(r))
            _exit(124);
        _exit(0);
    }
    close(p[1]);
    ssize_t n = read(p[0], &o, sizeof(o));
    close(p[0]);
    int status = 0;
    waitpid(pid, &status, 0);
    if (WIFSIGNALED(status))
        return (struct outcome){WTERMSIG(status), 0, 0};
    if (n != sizeof(o) || WEXITSTATUS(status) != 0)
        return (struct outcome){-1, 0, WEXITSTATUS(status)};
    if (o.ret >= 0)
        o.err = 0;
    return o;
}

static struct outcome run0(const struct hull_seccomp_filter *f, long nr)
{
    const long a[6] = {0};
    return run_syscall(f, nr, a);
}

static struct outcome run1(const struct hull_seccomp_filter *f, long nr, long a0, long a1)
{
    const long a[6] = {a0, a1, 0, 0, 0, 0};
    return run_syscall(f, nr, a);
}

/* A profile allowing everything but one rule on getppid. */
static struct hull_seccomp_filter *getppid_rule(const char *rule)
{
    char json[1024];
    snprintf(json, sizeof(json),
             "{\"defaultAction\": \"SCMP_ACT_ALLOW\", \"syscalls\": [{\"names\": [\"getppid\"], "
             "%s}]}",
             rule);
    return must_compile(json);
}

static void test_errno_ret(void **state)
{
    struct hull_seccomp_filter *f = must_compile(
        "{\"defaultAction\": \"SCMP_ACT_ALLOW\", \"syscalls\": [{\"names\": [\"getcwd\"], "
        "\"action\": \"SCMP_ACT_ERRNO\", \"errnoRet\": 42}]}");
    struct outcome o = run1(f, SYS_getcwd, 0, 0);
    assert_int_equal(o.sig, 0);
    assert_int_equal(o.ret, -1);
    assert_int_equal(o.err, 42);
    /* the rest is untouched */
    o = run0(f, SYS_getppid);
    assert_true(o.ret > 0);
    assert_false(hull_seccomp_needs_listener(f));
    hull_seccomp_filter_free(f);
}

static void test_errno_defaults_to_eperm(void **state)
{
    struct hull_seccomp_filter *f = getppid_rule("\"action\": \"SCMP_ACT_ERRNO\"");
    struct outcome o = run0(f, SYS_getppid);
    assert_int_equal(o.ret, -1);
    assert_int_equal(o.err, EPERM);
    hull_seccomp_filter_free(f);
}

static void test_default_errno_ret(void **state)
{
    /* deny by default with 77; the child still needs write and exit (and,
     * under ASan, its runtime's signal-stack and memory calls) */
    struct hull_seccomp_filter *f = must_compile(
        "{\"defaultAction\": \"SCMP_ACT_ERRNO\", \"defaultErrnoRet\": 77, \"syscalls\": "
        "[{\"names\": [\"write\", \"exit_group\", \"exit\", \"sigaltstack\", \"mmap\", "
        "\"munmap\", \"mprotect\", \"madvise\", \"rt_sigaction\", \"rt_sigprocmask\"], "
        "\"action\": \"SCMP_ACT_ALLOW\"}]}");
    struct outcome o = run0(f, SYS_getppid);
    assert_int_equal(o.sig, 0);
    assert_int_equal(o.err, 77);
    hull_seccomp_filter_free(f);
}

static void test_kill_actions_signal_sigsys(void **state)
{
    static const char *const actions[] = {"SCMP_ACT_KILL", "SCMP_ACT_KILL_PROCESS",
                                          "SCMP_ACT_KILL_THREAD", "SCMP_ACT_TRAP"};
    for (size_t i = 0; i < sizeof(actions) / sizeof(actions[0]); i++) {
        char rule[128];
        snprintf(rule, sizeof(rule), "\"action\": \"%s\"", actions[i]);
        struct hull_seccomp_filter *f = getppid_rule(rule);
        struct outcome o = run0(f, SYS_getppid);
        if (o.sig != SIGSYS)
            fail_msg("%s: signal %d, want SIGSYS", actions[i], o.sig);
        hull_seccomp_filter_free(f);
    }
}

static void test_log_and_trace_actions(void **state)
{
    /* LOG lets the call through; TRACE without a tracer fails it (ENOSYS) */
    struct hull_seccomp_filter *f = getppid_rule("\"action\": \"SCMP_ACT_LOG\"");
    assert_true(run0(f, SYS_getppid).ret > 0);
    hull_seccomp_filter_free(f);
    f = getppid_rule("\"action\": \"SCMP_ACT_TRACE\"");
    struct outcome o = run0(f, SYS_getppid);
    assert_int_equal(o.ret, -1);
    assert_int_equal(o.err, ENOSYS);
    hull_seccomp_filter_free(f);
}

struct cmp_case {
    const char *op;
    unsigned long long value, value_two;
    long a0;
    bool denied;
};

static void test_argument_operators(void **state)
{
    static const struct cmp_case cases[] = {
        {"SCMP_CMP_EQ", 5, 0, 5, true},
        {"SCMP_CMP_EQ", 5, 0, 6, false},
        /* all 64 bits compare: a value with high bits set differs */
        {"SCMP_CMP_EQ", 1, 0, 0x100000001L, false},
        {"SCMP_CMP_EQ", 0x100000001ULL, 0, 0x100000001L, true},
        {"SCMP_CMP_NE", 5, 0, 6, true},
        {"SCMP_CMP_NE", 5, 0, 5, false},
        {"SCMP_CMP_LT", 5, 0, 4, true},
        {"SCMP_CMP_LT", 5, 0, 5, false},
        {"SCMP_CMP_LE", 5, 0, 5, true},
        {"SCMP_CMP_LE", 5, 0, 6, false},
        {"SCMP_CMP_GT", 5, 0, 6, true},
        {"SCMP_CMP_GT", 5, 0, 5, false},
        {"SCMP_CMP_GE", 5, 0, 5, true},
        {"SCMP_CMP_GE", 5, 0, 4, false},
        /* value is the mask, valueTwo what the masked argument must equal */
        {"SCMP_CMP_MASKED_EQ", 0xf0, 0x30, 0x3f, true},
        {"SCMP_CMP_MASKED_EQ", 0xf0, 0x30, 0x4f, false},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        const struct cmp_case *c = &cases[i];
        char rule[256];
        snprintf(rule, sizeof(rule),
                 "\"action\": \"SCMP_ACT_ERRNO\", \"errnoRet\": 33, \"args\": [{\"index\": 0, "
                 "\"value\": %llu, \"valueTwo\": %llu, \"op\": \"%s\"}]",
                 c->value, c->value_two, c->op);
        struct hull_seccomp_filter *f = getppid_rule(rule);
        struct outcome o = run1(f, SYS_getppid, c->a0, 0);
        bool denied = o.ret == -1 && o.err == 33;
        if (denied != c->denied || o.sig)
            fail_msg("case %zu: %s %llu/%llu on %#lx: denied=%d sig=%d", i, c->op, c->value,
                     c->value_two, c->a0, denied, o.sig);
        hull_seccomp_filter_free(f);
    }
}

static void test_conditions_on_distinct_args_are_anded(void **state)
{
    struct hull_seccomp_filter *f =
        getppid_rule("\"action\": \"SCMP_ACT_ERRNO\", \"errnoRet\": 33, \"args\": ["
                     "{\"index\": 0, \"value\": 1, \"op\": \"SCMP_CMP_EQ\"},"
                     "{\"index\": 1, \"value\": 2, \"op\": \"SCMP_CMP_EQ\"}]");
    assert_int_equal(run1(f, SYS_getppid, 1, 2).err, 33);
    assert_true(run1(f, SYS_getppid, 1, 3).ret > 0);
    assert_true(run1(f, SYS_getppid, 0, 2).ret > 0);
    hull_seccomp_filter_free(f);
}

static void test_repeated_index_becomes_separate_rules(void **state)
{
    /* as runc: libseccomp refuses two conditions on one index in a rule, so
     * each condition is a rule of its own -- they are OR-ed */
    struct hull_seccomp_filter *f =
        getppid_rule("\"action\": \"SCMP_ACT_ERRNO\", \"errnoRet\": 33, \"args\": ["
                     "{\"index\": 0, \"value\": 1, \"op\": \"SCMP_CMP_EQ\"},"
                     "{\"index\": 0, \"value\": 2, \"op\": \"SCMP_CMP_EQ\"},"
                     "{\"index\": 1, \"value\": 9, \"op\": \"SCMP_CMP_EQ\"}]");
    assert_int_equal(run1(f, SYS_getppid, 1, 0).err, 33);
    assert_int_equal(run1(f, SYS_getppid, 2, 0).err, 33);
    assert_int_equal(run1(f, SYS_getppid, 3, 9).err, 33);
    assert_true(run1(f, SYS_getppid, 3, 0).ret > 0);
    hull_seccomp_filter_free(f);
}

static void test_unknown_syscall_names_are_skipped(void **state)
{
    struct hull_seccomp_filter *f =
        must_compile("{\"defaultAction\": \"SCMP_ACT_ALLOW\", \"syscalls\": [{\"names\": "
                     "[\"no_such_syscall_hull\", \"getcwd\", \"socketcall\"], \"action\": "
                     "\"SCMP_ACT_ERRNO\", \"errnoRet\": 42}]}");
    assert_int_equal(run1(f, SYS_getcwd, 0, 0).err, 42);
    hull_seccomp_filter_free(f);
}

static void test_redundant_rule_is_skipped(void **state)
{
    /* same action as the default: libseccomp would refuse it */
    struct hull_seccomp_filter *f = getppid_rule("\"action\": \"SCMP_ACT_ALLOW\"");
    assert_true(run0(f, SYS_getppid).ret > 0);
    hull_seccomp_filter_free(f);
}

/* The message of a failed compile of json. */
static char *compile_error(const char *json)
{
    hull_error err = NULL;
    struct hull_seccomp_filter *f = profile_compile(json, &err);
    if (f != NULL)
        fail_msg("compiled: %s", json);
    char *msg = strdup(hull_error_msg(err));
    hull_error_free(&err);
    return msg;
}

#define assert_compile_error(json, want)                                                           \
    do {                                                                                           \
        char *m_ = compile_error(json);                                                            \
        if (strstr(m_, want) == NULL)                                                              \
            fail_msg("error '%s' lacks '%s'", m_, want);                                           \
        free(m_);                                                                                  \
    } while (0)

static void test_malformed_profiles(void **state)
{
    assert_compile_error("{\"defaultAction\": \"SCMP_ACT_ALLOW\", \"syscalls\": ["
                         "{\"names\": [\"read\"], \"action\": \"SCMP_ACT_ERRNO\"},"
                         "{\"names\": [\"getcwd\"], \"action\": \"SCMP_ACT_BOGUS\"}]}",
                         "linux.seccomp.syscalls[1].action: unknown action 'SCMP_ACT_BOGUS'");
    assert_compile_error("{\"defaultAction\": \"ALLOW\"}",
                         "linux.seccomp.defaultAction: unknown action 'ALLOW'");
    assert_compile_error("{\"defaultAction\": \"SCMP_ACT_ALLOW\", \"syscalls\": ["
                         "{\"names\": [\"getcwd\", \"Get Cwd\"], \"action\": \"SCMP_ACT_KILL\"}]}",
                         "linux.seccomp.syscalls[0].names[1]: malformed syscall name 'Get Cwd'");
    assert_compile_error("{\"defaultAction\": \"SCMP_ACT_ALLOW\", \"syscalls\": ["
                         "{\"names\": [\"getcwd\"], \"action\": \"SCMP_ACT_KILL\", \"args\": "
                         "[{\"index\": 0, \"value\": 1, \"op\": \"SCMP_CMP_SIMILAR\"}]}]}",
                         "linux.seccomp.syscalls[0].args[0].op: unknown operator");
    assert_compile_error("{\"defaultAction\": \"SCMP_ACT_ALLOW\", \"syscalls\": ["
                         "{\"names\": [\"getcwd\"], \"action\": \"SCMP_ACT_KILL\", \"args\": "
                         "[{\"index\": 6, \"value\": 1, \"op\": \"SCMP_CMP_EQ\"}]}]}",
                         "linux.seccomp.syscalls[0].args[0].index");
    assert_compile_error("{\"defaultAction\": \"SCMP_ACT_ALLOW\", \"syscalls\": ["
                         "{\"names\": [], \"action\": \"SCMP_ACT_KILL\"}]}",
                         "linux.seccomp.syscalls[0].names");
    assert_compile_error("{\"defaultAction\": \"SCMP_ACT_ALLOW\", \"flags\": "
                         "[\"SECCOMP_FILTER_FLAG_FAST\"]}",
                         "linux.seccomp.flags[0]: unknown flag");
    assert_compile_error("{\"defaultAction\": \"SCMP_ACT_ALLOW\", \"architectures\": "
                         "[\"SCMP_ARCH_Z80\"]}",
                         "linux.seccomp.architectures[0]: unknown architecture");
    assert_compile_error("{\"defaultAction\": \"SCMP_ACT_ERRNO\", \"defaultErrnoRet\": 5000}",
                         "linux.seccomp.defaultErrnoRet");
    assert_compile_error("{\"defaultAction\": \"SCMP_ACT_NOTIFY\"}",
                         "linux.seccomp.defaultAction: SCMP_ACT_NOTIFY cannot be the default");
    assert_compile_error("{\"defaultAction\": \"SCMP_ACT_ALLOW\", \"syscalls\": ["
                         "{\"names\": [\"write\"], \"action\": \"SCMP_ACT_NOTIFY\"}]}",
                         "linux.seccomp.syscalls[0].action: SCMP_ACT_NOTIFY cannot apply to "
                         "'write'");
}

/* A hand-built struct (no parser in front) gets the same checks. */
static void test_compile_checks_unparsed_structs(void **state)
{
    char *names[] = {"getcwd", NULL};
    struct hull_seccomp_rule rule = {.names = names, .action = "SCMP_ACT_MAYBE"};
    struct hull_seccomp s = {
        .default_action = "SCMP_ACT_ALLOW", .syscalls = &rule, .n_syscalls = 1};
    hull_error err = NULL;
    struct hull_seccomp_filter *f = NULL;
    assert_int_equal(hull_seccomp_compile(&s, &f, &err), -1);
    assert_null(f);
    assert_non_null(strstr(hull_error_msg(err),
                           "linux.seccomp.syscalls[0].action: unknown action 'SCMP_ACT_MAYBE'"));
    hull_error_free(&err);

    struct hull_seccomp_arg arg = {.index = 0, .value = 1, .op = "SCMP_CMP_ABOUT"};
    rule = (struct hull_seccomp_rule){
        .names = names, .action = "SCMP_ACT_KILL", .args = &arg, .n_args = 1};
    assert_int_equal(hull_seccomp_compile(&s, &f, &err), -1);
    assert_non_null(strstr(hull_error_msg(err), "linux.seccomp.syscalls[0].args[0].op"));
    hull_error_free(&err);
}

static void test_other_architectures(void **state)
{
#if defined(__x86_64__)
    /* big-endian and unknown arches cannot occur here and are skipped */
    struct hull_seccomp_filter *f = must_compile(
        "{\"defaultAction\": \"SCMP_ACT_ALLOW\", \"architectures\": [\"SCMP_ARCH_X86_64\", "
        "\"SCMP_ARCH_X86\", \"SCMP_ARCH_X32\", \"SCMP_ARCH_PPC64\", \"SCMP_ARCH_LOONGARCH64\"], "
        "\"syscalls\": [{\"names\": [\"getcwd\"], \"action\": \"SCMP_ACT_ERRNO\", "
        "\"errnoRet\": 42}]}");
    assert_int_equal(run1(f, SYS_getcwd, 0, 0).err, 42);
    /* x32 is listed: an x32 getppid reaches the kernel (which may lack x32) */
    struct outcome o = run0(f, 0x40000000 | SYS_getppid);
    assert_int_equal(o.sig, 0);
    hull_seccomp_filter_free(f);

    /* not listed: an x32 syscall is a bad arch and kills the process */
    f = getppid_rule("\"action\": \"SCMP_ACT_ERRNO\"");
    assert_int_equal(run0(f, 0x40000000 | SYS_getppid).sig, SIGSYS);
    hull_seccomp_filter_free(f);
#else
    skip();
#endif
}

static void test_flags(void **state)
{
    struct hull_seccomp_filter *f = must_compile(
        "{\"defaultAction\": \"SCMP_ACT_ALLOW\", \"flags\": [\"SECCOMP_FILTER_FLAG_LOG\", "
        "\"SECCOMP_FILTER_FLAG_SPEC_ALLOW\", \"SECCOMP_FILTER_FLAG_TSYNC\", "
        "\"SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV\"], \"syscalls\": [{\"names\": [\"getcwd\"], "
        "\"action\": \"SCMP_ACT_ERRNO\", \"errnoRet\": 42}]}");
    assert_int_equal(run1(f, SYS_getcwd, 0, 0).err, 42);
    hull_seccomp_filter_free(f);
}

/* TSYNC really puts the filter on the other threads of the process. */
static int tsync_pipe[2];
static void *tsync_thread(void *arg)
{
    char c;
    if (read(tsync_pipe[0], &c, 1) != 1)
        return (void *)-2L;
    return (void *)(syscall(SYS_getppid) < 0 ? (long)errno : 0L);
}

static int thread_sees_filter(const char *flags)
{
    char json[512];
    snprintf(json, sizeof(json),
             "{\"defaultAction\": \"SCMP_ACT_ALLOW\", \"flags\": [%s], \"syscalls\": "
             "[{\"names\": [\"getppid\"], \"action\": \"SCMP_ACT_ERRNO\", \"errnoRet\": 55}]}",
             flags);
    struct hull_seccomp_filter *f = must_compile(json);
    pid_t pid = fork();
    if (pid == 0) {
        pthread_t t;
        void *res;
        if (pipe(tsync_pipe) < 0 || pthread_create(&t, NULL, tsync_thread, NULL) != 0)
            _exit(100);
        hull_error err = NULL;
        if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0 || hull_seccomp_load(f, NULL, &err) < 0)
            _exit(101);
        if (write(tsync_pipe[1], "x", 1) != 1 || pthread_join(t, &res) != 0)
            _exit(102);
        _exit((long)res == 55 ? 1 : (long)res == 0 ? 0 : 103);
    }
    int status;
    waitpid(pid, &status, 0);
    hull_seccomp_filter_free(f);
    assert_true(WIFEXITED(status));
    assert_true(WEXITSTATUS(status) <= 1);
    return WEXITSTATUS(status);
}

static void test_tsync_reaches_other_threads(void **state)
{
    assert_int_equal(thread_sees_filter(""), 0);
    assert_int_equal(thread_sees_filter("\"SECCOMP_FILTER_FLAG_TSYNC\""), 1);
}

static void test_load_needs_nnp_or_cap_sys_admin(void **state)
{
    struct hull_seccomp_filter *f = getppid_rule("\"action\": \"SCMP_ACT_ERRNO\"");
    int p[2];
    assert_int_equal(pipe(p), 0);
    pid_t pid = fork();
    if (pid == 0) {
        hull_error err = NULL;
        close(p[0]);
        /* root without no_new_privs: allowed through CAP_SYS_ADMIN */
        int as_root = hull_seccomp_load(f, NULL, &err);
        /* an unprivileged uid without no_new_privs: refused */
        if (setgid(65534) < 0 || setuid(65534) < 0)
            _exit(100);
        int as_nobody = hull_seccomp_load(f, NULL, &err);
        const char *m = hull_error_msg(err);
        dprintf(p[1], "%d %d %d %s", as_root, as_nobody, hull_error_code(err), m);
        _exit(0);
    }
    close(p[1]);
    char buf[512] = {0};
    assert_true(read(p[0], buf, sizeof(buf) - 1) > 0);
    close(p[0]);
    waitpid(pid, NULL, 0);
    hull_seccomp_filter_free(f);
    if (geteuid() != 0)
        skip();
    int as_root, as_nobody, code;
    assert_int_equal(sscanf(buf, "%d %d %d", &as_root, &as_nobody, &code), 3);
    assert_int_equal(as_root, 0);
    assert_int_equal(as_nobody, -1);
    assert_int_equal(code, EACCES);
    assert_non_null(strstr(buf, "needs no_new_privs or CAP_SYS_ADMIN"));
}

static void test_notify_returns_listener_fd(void **state)
{
    struct hull_seccomp_filter *f = must_compile(
        "{\"defaultAction\": \"SCMP_ACT_ALLOW\", \"listenerPath\": \"/run/x.sock\", "
        "\"flags\": [\"SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV\", \"SECCOMP_FILTER_FLAG_TSYNC\"],"
        "\"syscalls\": [{\"names\": [\"getcwd\"], \"action\": \"SCMP_ACT_NOTIFY\"}]}");
    assert_true(hull_seccomp_needs_listener(f));
    pid_t pid = fork();
    if (pid == 0) {
        int nfd = -1;
        hull_error err = NULL;
        if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0 || hull_seccomp_load(f, &nfd, &err) < 0)
            _exit(100);
        /* a listener fd, close-on-exec so it never reaches the container */
        int fl = fcntl(nfd, F_GETFD);
        char link[64], target[128] = {0};
        snprintf(link, sizeof(link), "/proc/self/fd/%d", nfd);
        if (readlink(link, target, sizeof(target) - 1) < 0)
            _exit(101);
        _exit(fl >= 0 && (fl & FD_CLOEXEC) && strstr(target, "seccomp") ? 0 : 102);
    }
    int status;
    waitpid(pid, &status, 0);
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 0);
    hull_seccomp_filter_free(f);
}

/* ---- the compile cache ------------------------------------------------------ */

static const char *const cache_profile =
    "{\"defaultAction\": \"SCMP_ACT_ALLOW\", \"syscalls\": [{\"names\": [\"getcwd\"], "
    "\"action\": \"SCMP_ACT_ERRNO\", \"errnoRet\": %d}]}";

static struct hull_seccomp_filter *cache_compile(int errno_ret)
{
    char json[256];
    snprintf(json, sizeof(json), cache_profile, errno_ret);
    struct hull_seccomp_filter *f = must_compile(json);
    return f;
}

static void test_cache_returns_the_same_program(void **state)
{
    hull_seccomp_cache_clear();
    struct hull_seccomp_filter *a = cache_compile(40);
    struct hull_seccomp_filter *b = cache_compile(40);
    struct hull_seccomp_filter *c = cache_compile(41);
    assert_ptr_equal(a, b);
    assert_ptr_not_equal(a, c);
    assert_int_equal(run1(b, SYS_getcwd, 0, 0).err, 40);
    assert_int_equal(run1(c, SYS_getcwd, 0, 0).err, 41);

    /* the uncached compile gives the same instructions */
    struct hull_seccomp s;
    hull_error err = NULL;
    char json[256];
    snprintf(json, sizeof(json), cache_profile, 40);
    assert_int_equal(profile_parse(json, &s, &err), 0);
    struct hull_seccomp_filter *u = NULL;
    assert_int_equal(hull_seccomp_compile_uncached(&s, &u, &err), 0);
    hull_seccomp_free(&s);
    assert_ptr_not_equal(u, a);
    assert_int_equal(hull_seccomp_filter_len(u), hull_seccomp_filter_len(a));
    assert_memory_equal(hull_seccomp_filter_insns(u), hull_seccomp_filter_insns(a),
                        hull_seccomp_filter_len(a) * 8);
    hull_seccomp_filter_free(u);
    hull_seccomp_filter_free(a);
    hull_seccomp_filter_free(b);
    hull_seccomp_filter_free(c);
}

static void test_cache_eviction_keeps_held_filters(void **state)
{
    hull_seccomp_cache_clear();
    struct hull_seccomp_filter *held = cache_compile(50);
    /* sixteen other profiles push it out of the eight slots */
    for (int i = 0; i < 16; i++)
        hull_seccomp_filter_free(cache_compile(60 + i));
    struct hull_seccomp_filter *again = cache_compile(50);
    assert_ptr_not_equal(held, again);
    /* the evicted filter is still ours and still works (ASan watches) */
    assert_int_equal(run1(held, SYS_getcwd, 0, 0).err, 50);
    hull_seccomp_filter_free(held);
    hull_seccomp_filter_free(again);
    hull_seccomp_cache_clear();
}

/* ---- the built-in sandbox profile --------------------------------------------- */

static void test_default_profile_json_matches_struct(void **state)
{
    const struct hull_seccomp *def = hull_seccomp_default_sandbox();
    const char *text = hull_seccomp_default_sandbox_json();
    assert_non_null(def);
    assert_non_null(text);
    assert_ptr_equal(def, hull_seccomp_default_sandbox());

    struct hull_seccomp s;
    hull_error err = NULL;
    if (profile_parse(text, &s, &err) < 0)
        fail_msg("%s", hull_error_msg(err));
    struct hull_seccomp_filter *a = NULL, *b = NULL;
    assert_int_equal(hull_seccomp_compile_uncached(def, &a, &err), 0);
    assert_int_equal(hull_seccomp_compile_uncached(&s, &b, &err), 0);
    hull_seccomp_free(&s);
    assert_int_equal(hull_seccomp_filter_len(a), hull_seccomp_filter_len(b));
    assert_memory_equal(hull_seccomp_filter_insns(a), hull_seccomp_filter_insns(b),
                        hull_seccomp_filter_len(a) * 8);
    assert_true(hull_seccomp_filter_len(a) < 4096);
    assert_false(hull_seccomp_needs_listener(a));
    hull_seccomp_filter_free(a);
    hull_seccomp_filter_free(b);
}

static void test_default_profile_denies_and_allows(void **state)
{
    hull_error err = NULL;
    struct hull_seccomp_filter *f = NULL;
    assert_int_equal(hull_seccomp_compile(hull_seccomp_default_sandbox(), &f, &err), 0);
    assert_true(run0(f, SYS_getppid).ret > 0);
    assert_int_equal(run0(f, SYS_mount).err, EPERM);
    assert_int_equal(run1(f, SYS_unshare, CLONE_NEWUSER, 0).err, EPERM);
    assert_int_equal(run0(f, SYS_clone3).err, ENOSYS);
    assert_true(run1(f, SYS_clone, SIGCHLD, 0).ret > 0);
    assert_int_equal(run1(f, SYS_clone, SIGCHLD | CLONE_NEWNET, 0).err, EPERM);
    assert_int_equal(run1(f, SYS_personality, 0x0008 /* PER_LINUX32 */, 0).err, EPERM);
    assert_true(run1(f, SYS_personality, 0xffffffffL, 0).ret >= 0);
    hull_seccomp_filter_free(f);
}

/* ---- the listener hand-off ------------------------------------------------------ */

static void test_send_listener(void **state)
{
    char dir[] = "/tmp/hull-seccomp-test.XXXXXX";
    assert_non_null(mkdtemp(dir));
    struct sockaddr_un addr = {.sun_family = AF_UNIX};
    snprintf(addr.sun_path, sizeof(addr.sun_path), "%s/agent.sock", dir);
    int srv = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    assert_true(srv >= 0);
    assert_int_equal(bind(srv, (struct sockaddr *)&addr, sizeof(addr)), 0);
    assert_int_equal(listen(srv, 1), 0);

    int p[2];
    assert_int_equal(pipe(p), 0);
    hull_error err = NULL;
    const char *state_json = "{\"ociVersion\": \"1.2.0\", \"id\": \"c1\", \"status\": "
                             "\"creating\", \"pid\": 4242, \"bundle\": \"/b\"}";
    if (hull_seccomp_send_listener(addr.sun_path, p[0], "meta data", state_json, 4242, &err) < 0)
        fail_msg("%s", hull_error_msg(err));

    int conn = accept(srv, NULL, NULL);
    assert_true(conn >= 0);
    char buf[4096] = {0};
    union {
        char b[CMSG_SPACE(sizeof(int))];
        struct cmsghdr align;
    } ctl;
    struct iovec iov = {.iov_base = buf, .iov_len = sizeof(buf) - 1};
    struct msghdr msg = {
        .msg_iov = &iov, .msg_iovlen = 1, .msg_control = ctl.b, .msg_controllen = sizeof(ctl.b)};
    assert_true(recvmsg(conn, &msg, MSG_CMSG_CLOEXEC) > 0);
    struct cmsghdr *c = CMSG_FIRSTHDR(&msg);
    assert_non_null(c);
    assert_int_equal(c->cmsg_type, SCM_RIGHTS);
    int got;
    memcpy(&got, CMSG_DATA(c), sizeof(int));
    struct stat st1, st2;
    assert_int_equal(fstat(got, &st1), 0);
    assert_int_equal(fstat(p[0], &st2), 0);
    assert_int_equal(st1.st_ino, st2.st_ino);

    json_object *doc = NULL;
    assert_int_equal(hj_parse(buf, strlen(buf), "message", &doc, &err), 0);
    json_object *fds = hj_get(doc, "fds");
    assert_non_null(fds);
    assert_int_equal(json_object_array_length(fds), 1);
    assert_string_equal(json_object_get_string(json_object_array_get_idx(fds, 0)), "seccompFd");
    assert_int_equal(json_object_get_int(hj_get(doc, "pid")), 4242);
    assert_string_equal(json_object_get_string(hj_get(doc, "metadata")), "meta data");
    assert_string_equal(json_object_get_string(hj_get(doc, "ociVersion")), HULL_OCI_VERSION);
    assert_string_equal(json_object_get_string(hj_get(hj_get(doc, "state"), "id")), "c1");
    json_object_put(doc);
    close(got);
    close(conn);

    /* nobody listening: a clear error naming the field */
    close(srv);
    unlink(addr.sun_path);
    assert_int_equal(hull_seccomp_send_listener(addr.sun_path, p[0], NULL, state_json, 1, &err),
                     -1);
    assert_non_null(strstr(hull_error_msg(err), "linux.seccomp.listenerPath: connecting to"));
    hull_error_free(&err);
    assert_int_equal(hull_seccomp_send_listener(addr.sun_path, p[0], NULL, "{bad", 1, &err), -1);
    assert_non_null(strstr(hull_error_msg(err), "container state"));
    hull_error_free(&err);
    close(p[0]);
    close(p[1]);
    rmdir(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_errno_ret),
        cmocka_unit_test(test_errno_defaults_to_eperm),
        cmocka_unit_test(test_default_errno_ret),
        cmocka_unit_test(test_kill_actions_signal_sigsys),
        cmocka_unit_test(test_log_and_trace_actions),
        cmocka_unit_test(test_argument_operators),
        cmocka_unit_test(test_conditions_on_distinct_args_are_anded),
        cmocka_unit_test(test_repeated_index_becomes_separate_rules),
        cmocka_unit_test(test_unknown_syscall_names_are_skipped),
        cmocka_unit_test(test_redundant_rule_is_skipped),
        cmocka_unit_test(test_malformed_profiles),
        cmocka_unit_test(test_compile_checks_unparsed_structs),
        cmocka_unit_test(test_other_architectures),
        cmocka_unit_test(test_flags),
        cmocka_unit_test(test_tsync_reaches_other_threads),
        cmocka_unit_test(test_load_needs_nnp_or_cap_sys_admin),
        cmocka_unit_test(test_notify_returns_listener_fd),
        cmocka_unit_test(test_cache_returns_the_same_program),
        cmocka_unit_test(test_cache_eviction_keeps_held_filters),
        cmocka_unit_test(test_default_profile_json_matches_struct),
        cmocka_unit_test(test_default_profile_denies_and_allows),
        cmocka_unit_test(test_send_listener),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    hull_seccomp_cache_clear();
    return rc;
}
