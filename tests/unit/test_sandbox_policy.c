/* sandbox/policy.c and sandbox/result.c: the units a sandbox request is
 * written in, the ranges a policy must keep, the REST request's JSON with
 * errors that name the field, and the result's JSON (text or base64). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hull.h"
#include "util/json.h"

#define MiB (1024ull * 1024)

/* ---- durations and sizes ------------------------------------------------- */

static void test_parse_duration(void **state)
{
    (void)state;
    static const struct {
        const char *in;
        uint64_t ms;
    } ok[] = {
        {"2s", 2000},    {"500ms", 500},  {"1m", 60000},        {"1min", 60000},
        {"1h", 3600000}, {"1.5s", 1500},  {"2", 2000},          {"0.25", 250},
        {"0ms", 0},      {"1e3ms", 1000}, {"86400s", 86400000},
    };
    for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
        uint64_t ms = 12345;
        assert_int_equal(hull_parse_duration_ms(ok[i].in, &ms), 0);
        assert_int_equal(ms, ok[i].ms);
    }
    static const char *const bad[] = {"",    "s",   "abc",    "2x",  "2 s",  "-1s",
                                      "nan", "inf", "1e300s", "2ss", "5 ",   "1mss",
                                      " 5s", "+5s", "0x10s",  "1.s", "infs", "."};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        uint64_t ms = 777;
        assert_int_equal(hull_parse_duration_ms(bad[i], &ms), -1);
        assert_int_equal(ms, 777); /* untouched on error */
    }
}

static void test_parse_size(void **state)
{
    (void)state;
    static const struct {
        const char *in;
        uint64_t bytes;
    } ok[] = {
        {"65536", 65536},
        {"1k", 1024},
        {"1K", 1024},
        {"256M", 256 * MiB},
        {"256m", 256 * MiB},
        {"1G", 1024 * MiB},
        {"1GiB", 1024 * MiB},
        {"1GB", 1024 * MiB},
        {"1Mi", MiB},
        {"1.5M", 3 * MiB / 2},
        {"1.5G", 3 * 1024 * MiB / 2},
        {"1.1G", 1181116006}, /* 1.1 * 2^30 = 1181116006.4, in integers */
        {"0.001K", 1},        /* 1.024 bytes, rounded down */
        {"4.000000000000000001T", 4096ull * 1024 * MiB},
        {"16383.5G", 16383ull * 1024 * MiB + 512 * MiB},
        {"2T", 2048ull * 1024 * MiB},
        {"512B", 512},
        {"512b", 512},
        {"0", 0},
    };
    for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
        uint64_t b = 1;
        assert_int_equal(hull_parse_size(ok[i].in, &b), 0);
        assert_int_equal(b, ok[i].bytes);
    }
    static const char *const bad[] = {
        "",   "M",   "12Q", "1 M",   "-1M",  "1MM", "1iB",  "nan", "inf", "1e30G", "1Gx",
        "0x", " 1M", "+1M", "0x10M", "1e3M", "1.5", "1.5B", "1.",  ".5M", "1.5iB", "9999999999T"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        uint64_t b = 99;
        assert_int_equal(hull_parse_size(bad[i], &b), -1);
        assert_int_equal(b, 99);
    }
}

/* ---- validation ------------------------------------------------------------ */

static char *argv_true[] = {"true", NULL};

/* A valid policy; fields that are not ours stay NULL so nothing is freed. */
static void base(struct hull_policy *p)
{
    hull_policy_init(p);
    p->argv = argv_true;
}

static void expect_invalid(const struct hull_policy *p, const char *msg)
{
    hull_error err = NULL;
    assert_int_equal(hull_policy_validate(p, &err), -1);
    if (strstr(hull_error_msg(err), msg) == NULL)
        fail_msg("error '%s' does not contain '%s'", hull_error_msg(err), msg);
    hull_error_free(&err);
}

static void test_defaults_are_valid(void **state)
{
    (void)state;
    struct hull_policy p;
    base(&p);
    hull_error err = NULL;
    assert_int_equal(hull_policy_validate(&p, &err), 0);
    assert_int_equal(p.isolation, HULL_ISOLATION_CONTAINER);
    assert_int_equal(p.cpu_time_ms, 2000);
    assert_int_equal(p.wall_time_ms, 10000);
    assert_int_equal(p.memory_bytes, 256 * MiB);
    assert_int_equal(p.output_bytes, MiB);
    assert_int_equal(p.tmp_bytes, 64 * MiB);
    assert_int_equal(p.pids, 64);
    assert_int_equal(p.open_files, 64);
    assert_true(p.cpus == 1.0);
    assert_false(p.network_host);
    assert_int_equal(p.copy_out_max, 64 * MiB);
    assert_int_equal(p.cancel_fd, -1);
}

static void test_validate_ranges(void **state)
{
    (void)state;
    struct hull_policy p;
#define CASE(field, value, msg)                                                                    \
    do {                                                                                           \
        base(&p);                                                                                  \
        p.field = value;                                                                           \
        expect_invalid(&p, msg);                                                                   \
    } while (0)
    CASE(cpu_time_ms, 0, "cpu_time: 0 ms is out of range [1 ms, 86400000 ms]");
    CASE(cpu_time_ms, 86400001, "cpu_time: 86400001 ms is out of range");
    CASE(wall_time_ms, 0, "wall_time: 0 ms is out of range");
    CASE(memory_bytes, 4 * MiB - 1, "memory: 4194303 bytes is out of range");
    CASE(memory_bytes, 1025ull * 1024 * MiB, "memory:");
    CASE(output_bytes, 1024 * MiB + 1, "output:");
    CASE(tmp_bytes, 1024, "tmp_size: 1024 bytes is out of range");
    CASE(pids, 0, "pids: 0 is out of range [1, 1000000]");
    CASE(pids, 1000001, "pids:");
    CASE(open_files, 3, "open_files: 3 is out of range [4, 1048576]");
    CASE(cpus, 0.001, "cpus: 0.001 is out of range [0.01, 1024]");
    CASE(cpus, 2000, "cpus:");
    CASE(copy_out_max, 1025ull * 1024 * MiB,
         "copy_out_max: 1100585369600 bytes is out of range [0 bytes, 1099511627776 bytes]");
    CASE(argv, NULL, "cmd: a command is required");
#undef CASE
    /* The edges themselves are in range. */
    base(&p);
    p.cpu_time_ms = 1;
    p.memory_bytes = 4 * MiB;
    p.output_bytes = 0;
    p.pids = 1;
    p.open_files = 4;
    p.cpus = 0.01;
    p.copy_out_max = 0; /* holes only */
    hull_error err = NULL;
    assert_int_equal(hull_policy_validate(&p, &err), 0);

    char *empty[] = {"", NULL};
    base(&p);
    p.argv = empty;
    expect_invalid(&p, "cmd: a command is required");
    base(&p);
    p.isolation = (enum hull_isolation)7;
    expect_invalid(&p, "isolation: unknown level");
}

static void test_validate_paths(void **state)
{
    (void)state;
    struct hull_policy p;
    char *env[] = {"GOOD=1", "BAD", NULL};
    base(&p);
    p.env = env;
    expect_invalid(&p, "env: 'BAD' must be KEY=VALUE");
    char *env2[] = {"=x", NULL};
    p.env = env2;
    expect_invalid(&p, "env: '=x' must be KEY=VALUE");

    base(&p);
    p.workdir = "tmp";
    expect_invalid(&p, "workdir: 'tmp' must be an absolute path in the sandbox");

    struct hull_copy in[] = {{"/host/f", "/tmp/ok"}, {"/host/g", "/tmp/../etc/passwd"}};
    base(&p);
    p.copy_in = in;
    p.n_copy_in = 2;
    expect_invalid(&p, "copy_in[1]: '/tmp/../etc/passwd' must be under /tmp");
    struct hull_copy in2[] = {{"/host/f", "/tmp"}};
    p.copy_in = in2;
    p.n_copy_in = 1;
    expect_invalid(&p, "copy_in[0]: '/tmp' must be under /tmp");
    struct hull_copy in3[] = {{"", "/tmp/x"}};
    p.copy_in = in3;
    expect_invalid(&p, "copy_in[0]: a host path is required");

    struct hull_copy out[] = {{"/host/o", "/etc/shadow"}};
    base(&p);
    p.copy_out = out;
    p.n_copy_out = 1;
    expect_invalid(&p, "copy_out[0]: '/etc/shadow' must be under /tmp");

    struct hull_bind b[] = {{"relative", "/data", false}};
    base(&p);
    p.binds = b;
    p.n_binds = 1;
    expect_invalid(&p, "bind[0]: source must be an absolute host path");
    struct hull_bind b2[] = {{"/srv", "data", true}};
    p.binds = b2;
    expect_invalid(&p, "bind[0]: 'data' must be an absolute path");

    struct hull_inline_file f[] = {{"/etc/x", "x", 1, 0644}};
    base(&p);
    p.files = f;
    p.n_files = 1;
    expect_invalid(&p, "files[0]: '/etc/x' must be under /tmp");

    base(&p);
    p.stdin_path = "/dev/null";
    p.stdin_data = "x";
    expect_invalid(&p, "stdin: give a file or data, not both");
}

/* ---- the REST request --------------------------------------------------------- */

static int from_json(const char *json, struct hull_policy *p, hull_error *err)
{
    hull_policy_init(p);
    return hull_policy_from_json(json, strlen(json), p, err);
}

static void test_from_json(void **state)
{
    (void)state;
    struct hull_policy p;
    hull_error err = NULL;
    const char *req =
        "{\"cmd\": [\"python3\", \"-c\", \"print(1)\"], \"isolation\": \"process\","
        " \"workdir\": \"/tmp/w\", \"network\": \"host\", \"stdin\": \"in\\u0000put\","
        " \"env\": {\"A\": \"1\", \"B\": \"x=y\"},"
        " \"limits\": {\"cpu_time\": \"1.5s\", \"wall_time\": 3, \"memory\": \"64M\","
        "  \"output\": 4096, \"tmp_size\": \"1M\", \"pids\": 8, \"open_files\": 32},"
        " \"files\": {\"main.py\": \"print(2)\", \"/tmp/abs.txt\": \"\"}}";
    assert_int_equal(from_json(req, &p, &err), 0);
    assert_string_equal(p.argv[0], "python3");
    assert_string_equal(p.argv[2], "print(1)");
    assert_null(p.argv[3]);
    assert_int_equal(p.isolation, HULL_ISOLATION_PROCESS);
    assert_string_equal(p.workdir, "/tmp/w");
    assert_true(p.network_host);
    assert_int_equal(p.stdin_len, 6);
    assert_memory_equal(p.stdin_data, "in\0put", 6);
    assert_string_equal(p.env[0], "A=1");
    assert_string_equal(p.env[1], "B=x=y");
    assert_null(p.env[2]);
    assert_int_equal(p.cpu_time_ms, 1500);
    assert_int_equal(p.wall_time_ms, 3000); /* a bare number is seconds */
    assert_int_equal(p.memory_bytes, 64 * MiB);
    assert_int_equal(p.output_bytes, 4096); /* and bytes */
    assert_int_equal(p.tmp_bytes, MiB);
    assert_int_equal(p.pids, 8);
    assert_int_equal(p.open_files, 32);
    assert_true(p.cpus == 1.0 && !p.cpus_given);
    assert_int_equal(p.n_files, 2);
    assert_string_equal(p.files[0].path, "/tmp/main.py"); /* relative: under /tmp */
    assert_int_equal(p.files[0].len, 8);
    assert_memory_equal(p.files[0].data, "print(2)", 8);
    assert_string_equal(p.files[1].path, "/tmp/abs.txt");
    assert_int_equal(p.files[1].len, 0);
    hull_policy_free(&p);

    /* Only cmd is required; the rest keeps the defaults. */
    assert_int_equal(from_json("{\"cmd\": [\"true\"]}", &p, &err), 0);
    assert_int_equal(p.memory_bytes, 256 * MiB);
    assert_int_equal(p.isolation, HULL_ISOLATION_CONTAINER);
    assert_null(p.env);
    hull_policy_free(&p);
}

/* "network": a name, or an object with the name, egress and publish. */
static void test_from_json_network(void **state)
{
    (void)state;
    struct hull_policy p;
    hull_error err = NULL;
    assert_int_equal(from_json("{\"cmd\": [\"x\"], \"network\": \"hull0\"}", &p, &err), 0);
    assert_string_equal(p.network, "hull0");
    assert_false(p.network_host);
    assert_null(p.egress);
    hull_policy_free(&p);
    assert_int_equal(from_json("{\"cmd\": [\"x\"], \"network\": \"none\"}", &p, &err), 0);
    assert_null(p.network);
    assert_false(p.network_host);
    hull_policy_free(&p);
    assert_int_equal(from_json("{\"cmd\": [\"x\"], \"network\": {\"name\": \"n1\","
                               " \"egress\": [\"198.18.0.0/15:8080/tcp\", \"[fd00::/8]\"],"
                               " \"publish\": [\"8080:80\", \"[::1]:5353:53/udp\"]}}",
                               &p, &err),
                     0);
    assert_string_equal(p.network, "n1");
    assert_string_equal(p.egress, "198.18.0.0/15:8080/tcp,[fd00::/8]");
    assert_int_equal(p.n_publish, 2);
    assert_int_equal(p.publish[0].host_port, 8080);
    assert_int_equal(p.publish[0].port, 80);
    assert_string_equal(p.publish[0].host_ip, "");
    assert_string_equal(p.publish[1].host_ip, "::1");
    assert_true(p.publish[1].udp);
    hull_policy_free(&p);
    /* An empty allow-list allows nothing; a string is kept as written. */
    assert_int_equal(from_json("{\"cmd\": [\"x\"], \"network\": {\"name\": \"n1\","
                               " \"egress\": []}}",
                               &p, &err),
                     0);
    assert_string_equal(p.egress, "none");
    hull_policy_free(&p);
    assert_int_equal(from_json("{\"cmd\": [\"x\"], \"network\": {\"name\": \"n1\","
                               " \"egress\": \"all,10.0.0.1:6379\"}}",
                               &p, &err),
                     0);
    assert_string_equal(p.egress, "all,10.0.0.1:6379");
    hull_policy_free(&p);
}

/* egress and publish go with a named network only; not with host. */
static void test_validate_network(void **state)
{
    (void)state;
    struct hull_policy p;
    hull_error err = NULL;
    hull_policy_init(&p);
    hull_policy_add_arg(&p, "true");
    assert_int_equal(hull_policy_validate(&p, &err), 0);
    p.egress = strdup("all");
    assert_int_equal(hull_policy_validate(&p, &err), -1);
    assert_string_equal(hull_error_msg(err), "egress: only with a hull network (--network NAME)");
    hull_error_free(&err);
    p.network_host = true;
    assert_int_equal(hull_policy_validate(&p, &err), -1);
    assert_string_equal(hull_error_msg(err),
                        "egress: not with the host's network, which hull does not filter");
    hull_error_free(&err);
    p.network = strdup("n1");
    assert_int_equal(hull_policy_validate(&p, &err), -1);
    assert_string_equal(hull_error_msg(err),
                        "network: a hull network and the host's network exclude each other");
    hull_error_free(&err);
    p.network_host = false;
    assert_int_equal(hull_policy_validate(&p, &err), 0);
    free(p.egress);
    p.egress = strdup("1.2.3.4:0");
    assert_int_equal(hull_policy_validate(&p, &err), -1);
    assert_string_equal(hull_error_msg(err),
                        "egress rule \"1.2.3.4:0\": port \"0\" is not 1-65535");
    hull_error_free(&err);
    free(p.egress);
    p.egress = NULL;
    free(p.network);
    p.network = strdup("none");
    assert_int_equal(hull_policy_validate(&p, &err), -1);
    assert_non_null(strstr(hull_error_msg(err), "network: 'none' is not a network name"));
    hull_error_free(&err);
    free(p.network);
    p.network = NULL;
    p.publish = calloc(1, sizeof(*p.publish));
    p.publish[0] = (struct hull_publish){.host_port = 8080, .port = 80};
    p.n_publish = 1;
    assert_int_equal(hull_policy_validate(&p, &err), -1);
    assert_string_equal(hull_error_msg(err), "publish: only with a hull network (--network NAME)");
    hull_error_free(&err);
    hull_policy_free(&p);
}

static void test_from_json_errors_name_the_field(void **state)
{
    (void)state;
    static const struct {
        const char *json, *msg;
    } cases[] = {
        {"", "request"},
        {"[1]", "request"},
        {"{\"cmd\": []}", "cmd: must be a non-empty array of strings"},
        {"{\"cmd\": \"ls\"}", "cmd: must be a non-empty array of strings"},
        {"{\"cmd\": [\"ls\", 3]}", "cmd[1]"},
        {"{}", "cmd: must be a non-empty array of strings"},
        {"{\"cmd\": [\"x\"], \"isolation\": \"vm\"}", "isolation: unknown level 'vm'"},
        {"{\"cmd\": [\"x\"], \"isolation\": 1}", "isolation"},
        {"{\"cmd\": [\"x\"], \"limits\": []}", "limits"},
        {"{\"cmd\": [\"x\"], \"limits\": {\"memroy\": \"1G\"}}", "limits.memroy: unknown limit"},
        {"{\"cmd\": [\"x\"], \"limits\": {\"memory\": \"lots\"}}",
         "limits.memory: 'lots' is not a size"},
        {"{\"cmd\": [\"x\"], \"limits\": {\"memory\": -1}}", "limits.memory: must not be negative"},
        {"{\"cmd\": [\"x\"], \"limits\": {\"memory\": true}}", "limits.memory: must be a size"},
        {"{\"cmd\": [\"x\"], \"limits\": {\"cpu_time\": \"2 s\"}}",
         "limits.cpu_time: '2 s' is not a duration"},
        {"{\"cmd\": [\"x\"], \"limits\": {\"memory\": \"1k\"}}",
         "memory: 1024 bytes is out of range"},
        {"{\"cmd\": [\"x\"], \"limits\": {\"pids\": \"64\"}}", "limits.pids"},
        {"{\"cmd\": [\"x\"], \"limits\": {\"pids\": -1}}", "limits.pids"},
        {"{\"cmd\": [\"x\"], \"limits\": {\"cpus\": \"1\"}}", "limits.cpus: must be a number"},
        {"{\"cmd\": [\"x\"], \"env\": {\"A\": 1}}", "env.A"},
        {"{\"cmd\": [\"x\"], \"env\": [\"A=1\"]}", "env"},
        {"{\"cmd\": [\"x\"], \"files\": {\"a\": 1}}", "files.a: must be a string"},
        {"{\"cmd\": [\"x\"], \"files\": {\"../etc/x\": \"\"}}", "must be under /tmp"},
        {"{\"cmd\": [\"x\"], \"files\": {\"/etc/x\": \"\"}}",
         "files./etc/x: '/etc/x' must be under /tmp"},
        {"{\"cmd\": [\"x\"], \"files\": []}", "files"},
        {"{\"cmd\": [\"x\"], \"stdin\": 5}", "stdin: must be a string"},
        {"{\"cmd\": [\"x\"], \"network\": \"Bridge\"}", "network: 'Bridge' is not a network name"},
        {"{\"cmd\": [\"x\"], \"network\": 7}",
         "network: must be \"none\", \"host\", a network name"},
        {"{\"cmd\": [\"x\"], \"network\": {\"egress\": \"all\"}}",
         "network.name: a network name is required"},
        {"{\"cmd\": [\"x\"], \"network\": {\"name\": \"host\"}}",
         "network.name: 'host' is not a network name (write \"network\": \"host\")"},
        {"{\"cmd\": [\"x\"], \"network\": {\"name\": \"n1\", \"egres\": \"all\"}}",
         "network.egres: unknown field (name, egress, publish)"},
        {"{\"cmd\": [\"x\"], \"network\": {\"name\": \"n1\", \"egress\": \"10.0.0.0/33\"}}",
         "network.egress: egress rule \"10.0.0.0/33\": prefix length"},
        {"{\"cmd\": [\"x\"], \"network\": {\"name\": \"n1\", \"egress\": [\"all\", \"x\"]}}",
         "network.egress[1]: egress rule \"x\": \"x\" is not an IP address"},
        {"{\"cmd\": [\"x\"], \"network\": {\"name\": \"n1\", \"egress\": [\"none\", "
         "\"1.2.3.4\"]}}",
         "network.egress: --egress \"none,1.2.3.4\": \"none\" cannot be combined with rules"},
        {"{\"cmd\": [\"x\"], \"network\": {\"name\": \"n1\", \"egress\": [1]}}",
         "network.egress[0]: must be a string"},
        {"{\"cmd\": [\"x\"], \"network\": {\"name\": \"n1\", \"egress\": 1}}",
         "network.egress: must be a string"},
        {"{\"cmd\": [\"x\"], \"network\": {\"name\": \"n1\", \"publish\": \"80:80\"}}",
         "network.publish: must be an array"},
        {"{\"cmd\": [\"x\"], \"network\": {\"name\": \"n1\", \"publish\": [\"80:80\", "
         "\"80\"]}}",
         "network.publish[1]: \"80\": want [HOSTIP:]HOSTPORT:PORT[/tcp|udp]"},
        {"{\"cmd\": [\"x\"], \"network\": {\"name\": \"n1\", \"publish\": [\"8080:80\", "
         "\"127.0.0.1:8080:81\"]}}",
         "publish[1]: host port 8080/tcp is already published by publish[0]"},
        {"{\"cmd\": [\"x\"], \"workdir\": \"rel\"}", "workdir: 'rel' must be an absolute path"},
        {"{\"cmd\": [\"x\"], \"limit\": {\"memory\": \"1G\"}}", "limit: unknown field"},
        {"{\"cmd\": [\"x\"], \"rootfs\": \"/\"}", "rootfs: unknown field"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct hull_policy p;
        hull_error err = NULL;
        if (from_json(cases[i].json, &p, &err) != -1)
            fail_msg("accepted: %s", cases[i].json);
        if (strstr(hull_error_msg(err), cases[i].msg) == NULL)
            fail_msg("%s: error '%s' does not contain '%s'", cases[i].json, hull_error_msg(err),
                     cases[i].msg);
        hull_error_free(&err);
        hull_policy_free(&p);
    }
}

/* One rule for every duration and size: a string with a unit, or a bare
 * number (JSON number or string) of seconds or bytes. */
static void test_json_units(void **state)
{
    (void)state;
    static const struct {
        const char *limits;
        uint64_t cpu_ms, memory;
    } ok[] = {
        {"{\"cpu_time\": 2}", 2000, 256 * MiB},         {"{\"cpu_time\": \"2\"}", 2000, 256 * MiB},
        {"{\"cpu_time\": \"2s\"}", 2000, 256 * MiB},    {"{\"cpu_time\": 0.25}", 250, 256 * MiB},
        {"{\"cpu_time\": \"250ms\"}", 250, 256 * MiB},  {"{\"memory\": 67108864}", 2000, 64 * MiB},
        {"{\"memory\": \"67108864\"}", 2000, 64 * MiB}, {"{\"memory\": \"64M\"}", 2000, 64 * MiB},
    };
    for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
        char req[256];
        snprintf(req, sizeof(req), "{\"cmd\": [\"x\"], \"limits\": %s}", ok[i].limits);
        struct hull_policy p;
        hull_error err = NULL;
        if (from_json(req, &p, &err) != 0)
            fail_msg("%s: %s", req, hull_error_msg(err));
        if (p.cpu_time_ms != ok[i].cpu_ms || p.memory_bytes != ok[i].memory)
            fail_msg("%s: cpu_time %llu ms, memory %llu", req, (unsigned long long)p.cpu_time_ms,
                     (unsigned long long)p.memory_bytes);
        hull_policy_free(&p);
    }
    /* Errors start with the full JSON path; an unknown limit lists them all. */
    static const struct {
        const char *limits, *prefix;
    } bad[] = {
        {"{\"memory\": 1.5}", "limits.memory: must be a size"},
        {"{\"memory\": \"1k\"}", "limits.memory: 1024 bytes is out of range"},
        {"{\"cpu_time\": \"0ms\"}", "limits.cpu_time: 0 ms is out of range"},
        {"{\"cpu_time\": -1}", "limits.cpu_time: -1 is not a number of seconds"},
        {"{\"wall_time\": 100000}", "limits.wall_time: 100000000 ms is out of range"},
        {"{\"cpus\": 0}", "limits.cpus: 0 is out of range"},
        {"{\"memroy\": 1}",
         "limits.memroy: unknown limit (accepted: cpu_time, wall_time, memory, output, tmp_size, "
         "pids, open_files, cpus)"},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        char req[256];
        snprintf(req, sizeof(req), "{\"cmd\": [\"x\"], \"limits\": %s}", bad[i].limits);
        struct hull_policy p;
        hull_error err = NULL;
        if (from_json(req, &p, &err) != -1)
            fail_msg("accepted: %s", req);
        if (strncmp(hull_error_msg(err), bad[i].prefix, strlen(bad[i].prefix)) != 0)
            fail_msg("%s: error '%s' does not start with '%s'", req, hull_error_msg(err),
                     bad[i].prefix);
        hull_error_free(&err);
        hull_policy_free(&p);
    }
    /* Process level has no cgroup for a CPU bandwidth: asked for, refused. */
    struct hull_policy p;
    hull_error err = NULL;
    assert_int_equal(
        from_json("{\"cmd\": [\"x\"], \"isolation\": \"process\", \"limits\": {\"cpus\": 1}}", &p,
                  &err),
        -1);
    assert_non_null(strstr(hull_error_msg(err), "limits.cpus: process isolation cannot"));
    hull_error_free(&err);
    hull_policy_free(&p);
}

/* ---- the result ------------------------------------------------------------------ */

static json_object *result_json(struct hull_result *r)
{
    char *s = hull_result_to_json(r);
    assert_non_null(s);
    json_object *o = json_tokener_parse(s);
    free(s);
    assert_non_null(o);
    return o;
}

static const char *str_of(json_object *o, const char *key)
{
    json_object *v = NULL;
    if (!json_object_object_get_ex(o, key, &v))
        return NULL;
    return json_object_get_string(v);
}

static void set_out(struct hull_output *out, const char *data, size_t len, bool truncated)
{
    out->data = malloc(len + 1);
    memcpy(out->data, data, len);
    out->data[len] = '\0';
    out->len = len;
    out->truncated = truncated;
}

static void test_result_json_shape(void **state)
{
    (void)state;
    struct hull_result r = {0};
    r.verdict = HULL_VERDICT_EXIT_NONZERO;
    r.exit_code = 3;
    r.cpu_time_ms = 12;
    r.wall_time_ms = 34;
    r.max_memory_kb = 56;
    r.isolation = HULL_ISOLATION_CONTAINER;
    set_out(&r.out, "out\n", 4, false);
    set_out(&r.err, "err", 3, true);
    r.n_files = 2;
    r.files = calloc(2, sizeof(*r.files));
    r.files[0] = (struct hull_copied_file){
        .sandbox = strdup("/tmp/a"), .host = strdup("/h/a"), .size = 7, .bytes = 5};
    r.files[1] = (struct hull_copied_file){.sandbox = strdup("/tmp/b"),
                                           .host = strdup("/h/b"),
                                           .status = HULL_COPY_MISSING,
                                           .error = strdup("nope")};
    json_object *o = result_json(&r);
    assert_string_equal(str_of(o, "verdict"), "exit_nonzero");
    assert_string_equal(str_of(o, "exit_code"), "3");
    assert_string_equal(str_of(o, "signal"), "0");
    assert_string_equal(str_of(o, "cpu_time_ms"), "12");
    assert_string_equal(str_of(o, "wall_time_ms"), "34");
    assert_string_equal(str_of(o, "max_memory_kb"), "56");
    assert_string_equal(str_of(o, "stdout"), "out\n");
    assert_string_equal(str_of(o, "stdout_truncated"), "false");
    assert_string_equal(str_of(o, "stderr"), "err");
    assert_string_equal(str_of(o, "stderr_truncated"), "true");
    assert_string_equal(str_of(o, "isolation"), "container");
    assert_null(str_of(o, "error"));
    json_object *files = NULL;
    assert_true(json_object_object_get_ex(o, "files", &files));
    assert_int_equal(json_object_array_length(files), 2);
    json_object *f0 = json_object_array_get_idx(files, 0),
                *f1 = json_object_array_get_idx(files, 1);
    assert_string_equal(str_of(f0, "sandbox"), "/tmp/a");
    assert_string_equal(str_of(f0, "host"), "/h/a");
    assert_string_equal(str_of(f0, "size"), "7");
    assert_string_equal(str_of(f0, "bytes"), "5");
    assert_string_equal(str_of(f0, "status"), "ok");
    assert_null(str_of(f0, "error"));
    assert_string_equal(str_of(f1, "status"), "missing");
    assert_string_equal(str_of(f1, "error"), "nope");
    static const char *const statuses[] = {"ok", "missing", "truncated", "refused", "failed"};
    for (int st = HULL_COPY_OK; st <= HULL_COPY_FAILED; st++)
        assert_string_equal(hull_copy_status_name((enum hull_copy_status)st), statuses[st]);
    assert_string_equal(hull_copy_status_name((enum hull_copy_status)99), "unknown");
    json_object_put(o);
    hull_result_free(&r);
    assert_null(r.out.data); /* freed and zeroed */

    /* Every verdict has its name; internal errors carry the reason. */
    static const char *const names[] = {
        "ok",           "exit_nonzero", "signaled",   "cpu_time_limit", "wall_time_limit",
        "memory_limit", "output_limit", "pids_limit", "internal_error", "killed"};
    for (int v = HULL_VERDICT_OK; v <= HULL_VERDICT_KILLED; v++)
        assert_string_equal(hull_verdict_name((enum hull_verdict)v), names[v]);
    assert_string_equal(hull_verdict_name((enum hull_verdict)99), "unknown");
    struct hull_result e = {0};
    e.verdict = HULL_VERDICT_INTERNAL_ERROR;
    e.error = strdup("exec: \"x\": No such file or directory");
    o = result_json(&e);
    assert_string_equal(str_of(o, "error"), "exec: \"x\": No such file or directory");
    assert_string_equal(str_of(o, "stdout"), ""); /* no output is empty text */
    json_object_put(o);
    hull_result_free(&e);
}

/* Output travels as a JSON string when it is strict UTF-8 text, else as
 * base64 under *_base64. */
static void expect_output(const char *data, size_t len, bool truncated, const char *text,
                          const char *b64)
{
    struct hull_result r = {0};
    set_out(&r.out, data, len, truncated);
    json_object *o = result_json(&r);
    if (text) {
        assert_string_equal(str_of(o, "stdout"), text);
        assert_null(str_of(o, "stdout_base64"));
    } else {
        assert_null(str_of(o, "stdout"));
        assert_string_equal(str_of(o, "stdout_base64"), b64);
    }
    assert_string_equal(str_of(o, "stdout_truncated"), truncated ? "true" : "false");
    json_object_put(o);
    hull_result_free(&r);
}

static void test_result_text_or_base64(void **state)
{
    (void)state;
    expect_output("plain\ttext\n", 11, false, "plain\ttext\n", NULL);
    expect_output("h\xc3\xa9llo \xf0\x9f\x98\x80", 11, false, "h\xc3\xa9llo \xf0\x9f\x98\x80",
                  NULL);
    expect_output("a\0b", 3, false, NULL, "YQBi");                     /* NUL */
    expect_output("\xff\xfe", 2, false, NULL, "//4=");                 /* not UTF-8 at all */
    expect_output("\xc0\xaf", 2, false, NULL, "wK8=");                 /* overlong '/' */
    expect_output("\xe0\x80\x80", 3, false, NULL, "4ICA");             /* overlong 3-byte */
    expect_output("\xed\xa0\x80", 3, false, NULL, "7aCA");             /* a surrogate */
    expect_output("\xf4\x90\x80\x80", 4, false, NULL, "9JCAgA==");     /* above U+10FFFF */
    expect_output("\xf8\x88\x80\x80\x80", 5, false, NULL, "+IiAgIA="); /* 5-byte form */
    expect_output("\xc3", 1, false, NULL, "ww==");                     /* cut, not truncated */
    /* Cut at the output limit inside a character: the text up to it. */
    expect_output("h\xc3", 2, true, "h", NULL);
    expect_output("ab\xf0\x9f\x98", 5, true, "ab", NULL);
    expect_output("ab\xf0\x28", 4, true, NULL, "YWLwKA=="); /* invalid, not just cut */
    expect_output("", 0, true, "", NULL);
    /* base64 padding for 1, 2 and 3 trailing bytes */
    expect_output("\x80", 1, false, NULL, "gA==");
    expect_output("\x80\x81", 2, false, NULL, "gIE=");
    expect_output("\x80\x81\x82", 3, false, NULL, "gIGC");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse_duration),
        cmocka_unit_test(test_parse_size),
        cmocka_unit_test(test_defaults_are_valid),
        cmocka_unit_test(test_validate_ranges),
        cmocka_unit_test(test_validate_paths),
        cmocka_unit_test(test_from_json),
        cmocka_unit_test(test_from_json_errors_name_the_field),
        cmocka_unit_test(test_from_json_network),
        cmocka_unit_test(test_validate_network),
        cmocka_unit_test(test_json_units),
        cmocka_unit_test(test_result_json_shape),
        cmocka_unit_test(test_result_text_or_base64),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
