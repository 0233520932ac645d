/* Unit tests of the cgroup code that needs no kernel: layout detection from
 * mountinfo text, /proc/self/cgroup matching, linux.cgroupsPath resolution
 * (systemd form included), the eBPF device program's shape, weight
 * conversions and the keyed-file parser. The kernel side is covered by
 * tests/integration/test_cgroup_mech.py. */
#include <setjmp.h>
#include <stdio.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <linux/bpf.h>

#include "linux/cgroup_internal.h"
#include "util/error.h"

/* This machine's layout: v1 controllers, name=systemd, controller-less cgroup2. */
static const char *hybrid_mi =
    "22 1 0:21 / / rw - ext4 /dev/vda rw\n"
    "31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755\n"
    "32 31 0:29 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu\n"
    "33 31 0:30 / /sys/fs/cgroup/cpuacct rw,relatime - cgroup cgroup rw,cpuacct\n"
    "34 31 0:31 / /sys/fs/cgroup/cpuset rw,relatime - cgroup cgroup rw,cpuset\n"
    "35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory\n"
    "36 31 0:33 / /sys/fs/cgroup/devices rw,relatime - cgroup cgroup rw,devices\n"
    "37 31 0:34 / /sys/fs/cgroup/freezer rw,relatime - cgroup cgroup rw,freezer\n"
    "38 31 0:35 / /sys/fs/cgroup/blkio rw,relatime - cgroup cgroup rw,blkio\n"
    "39 31 0:36 / /sys/fs/cgroup/pids rw,relatime - cgroup cgroup rw,pids\n"
    "40 31 0:37 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,name=systemd\n"
    "41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw\n";

static void test_layout_hybrid(void **state)
{
    (void)state;
    struct cg_layout L;
    hull_error err = NULL;
    assert_int_equal(cg_layout_parse(hybrid_mi, &L, &err), 0);
    assert_int_equal(L.mode, HULL_CGROUP_HYBRID);
    assert_int_equal(L.n, 10);
    assert_true(L.v2 == 9);
    assert_string_equal(L.h[L.v2].mount, "/sys/fs/cgroup/unified");
    int mem = cg_hier_of(&L, CG_MEMORY);
    assert_true(mem >= 0);
    assert_string_equal(L.h[mem].mount, "/sys/fs/cgroup/memory");
    assert_string_equal(L.h[mem].opts, "memory");
    /* Named hierarchy: mounted as "none,name=systemd". */
    assert_string_equal(L.h[8].opts, "none,name=systemd");
    assert_string_equal(L.h[8].cgname, "systemd");
    /* v1 freezer wins over cgroup2's built-in one on hybrid. */
    assert_false(L.h[cg_hier_of(&L, CG_FREEZER)].v2);
    /* hugetlb: nowhere until cgroup2 lists it in cgroup.controllers. */
    assert_int_equal(cg_hier_of(&L, CG_HUGETLB), -1);
    L.h[L.v2].ctrls = cg_v2_ctrl_mask("hugetlb\n");
    assert_int_equal(cg_hier_of(&L, CG_HUGETLB), L.v2);
    assert_int_equal(cg_hier_of(&L, CG_NET_CLS), -1);
    cg_layout_clear(&L);
}

/* A test's private namespace: tmpfs and cgroup2 mounted over the old
 * tree, whose mounts stay listed in mountinfo but are hidden. */
static void test_layout_shadowed_is_v2(void **state)
{
    (void)state;
    char *mi = NULL;
    assert_true(asprintf(&mi, "%s%s", hybrid_mi,
                         "65 48 0:39 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw\n"
                         "66 65 0:38 / /sys/fs/cgroup rw,relatime - cgroup2 none rw\n") > 0);
    struct cg_layout L;
    hull_error err = NULL;
    assert_int_equal(cg_layout_parse(mi, &L, &err), 0);
    assert_int_equal(L.mode, HULL_CGROUP_V2);
    assert_int_equal(L.n, 1);
    assert_string_equal(L.h[0].mount, "/sys/fs/cgroup");
    /* cgroup2 has freezing and device filtering built in. */
    assert_int_equal(cg_hier_of(&L, CG_FREEZER), 0);
    assert_int_equal(cg_hier_of(&L, CG_DEVICES), 0);
    assert_int_equal(cg_hier_of(&L, CG_MEMORY), -1);
    L.h[0].ctrls = cg_v2_ctrl_mask("cpuset cpu io memory hugetlb pids rdma misc");
    assert_int_equal(cg_hier_of(&L, CG_MEMORY), 0);
    assert_int_equal(cg_hier_of(&L, CG_BLKIO), 0);
    cg_layout_clear(&L);
    free(mi);
}

static void test_layout_v1_comounted(void **state)
{
    (void)state;
    const char *mi =
        "30 25 0:26 / /sys/fs/cgroup ro - tmpfs tmpfs ro,mode=755\n"
        "34 30 0:30 / /sys/fs/cgroup/cpu,cpuacct rw - cgroup cgroup rw,cpu,cpuacct\n"
        "35 30 0:31 / /sys/fs/cgroup/net_cls,net_prio rw - cgroup cgroup rw,net_cls,net_prio\n"
        "36 30 0:32 / /sys/fs/cgroup/systemd rw - cgroup cgroup rw,xattr,release_agent=/x,"
        "name=systemd\n"
        "37 30 0:33 / /sys/fs/cgroup/memory rw - cgroup cgroup rw,memory\n"
        /* a bind mount of a hierarchy elsewhere is the same hierarchy */
        "38 22 0:33 /sub /mnt/mem rw - cgroup cgroup rw,memory\n"
        "39 30 0:34 / /sys/fs/cgroup/my\\040dir rw - cgroup cgroup rw,pids\n";
    struct cg_layout L;
    hull_error err = NULL;
    assert_int_equal(cg_layout_parse(mi, &L, &err), 0);
    assert_int_equal(L.mode, HULL_CGROUP_V1);
    assert_int_equal(L.n, 5);
    assert_true(L.v2 < 0);
    int cpu = cg_hier_of(&L, CG_CPU);
    assert_int_equal(cpu, cg_hier_of(&L, CG_CPUACCT));
    assert_string_equal(L.h[cpu].opts, "cpu,cpuacct");
    assert_string_equal(L.h[cpu].name, "cpu,cpuacct");
    assert_int_equal(cg_hier_of(&L, CG_NET_PRIO), cg_hier_of(&L, CG_NET_CLS));
    assert_string_equal(L.h[cg_hier_of(&L, CG_MEMORY)].mount, "/sys/fs/cgroup/memory");
    assert_string_equal(L.h[cg_hier_of(&L, CG_PIDS)].mount, "/sys/fs/cgroup/my dir");
    assert_int_equal(cg_hier_of(&L, CG_FREEZER), -1);
    char key[64];
    cg_hier_key(&L.h[cpu], key, sizeof(key));
    assert_string_equal(key, "cpu,cpuacct");
    cg_layout_clear(&L);
}

static void test_layout_none(void **state)
{
    (void)state;
    struct cg_layout L;
    hull_error err = NULL;
    assert_int_equal(cg_layout_parse("22 1 0:21 / / rw - ext4 /dev/vda rw\n", &L, &err), -1);
    assert_non_null(strstr(hull_error_msg(err), "no cgroup filesystem"));
    hull_error_free(&err);
}

static void test_own_paths(void **state)
{
    (void)state;
    const char *mi = "34 30 0:30 / /sys/fs/cgroup/cpu,cpuacct rw - cgroup cgroup rw,cpu,cpuacct\n"
                     "37 30 0:33 /outer /sys/fs/cgroup/memory rw - cgroup cgroup rw,memory\n"
                     "38 30 0:34 / /sys/fs/cgroup/systemd rw - cgroup cgroup rw,name=systemd\n"
                     "39 30 0:35 / /sys/fs/cgroup/unified rw - cgroup2 cgroup2 rw\n";
    const char *pc = "5:memory:/outer/inner\n"
                     "4:cpuacct,cpu:/a/b\n" /* kernel order, not ours */
                     "2:name=systemd:/user.slice\n"
                     "0::/x\n";
    struct cg_layout L;
    hull_error err = NULL;
    char *own[CG_MAX_HIER];
    assert_int_equal(cg_layout_parse(mi, &L, &err), 0);
    assert_int_equal(cg_own_paths(&L, pc, own, &err), 0);
    assert_string_equal(own[0], "/a/b");
    assert_string_equal(own[1], "/inner"); /* relative to the mount's root */
    assert_string_equal(own[2], "/user.slice");
    assert_string_equal(own[3], "/x");
    for (size_t i = 0; i < CG_MAX_HIER; i++)
        free(own[i]);
    cg_layout_clear(&L);
}

static char *resolve(const char *path, bool systemd, bool *relative)
{
    struct cg_target t;
    hull_error err = NULL;
    if (cg_target_parse(path, "ctr", systemd, &t, &err) < 0) {
        hull_error_free(&err);
        return NULL;
    }
    if (relative)
        *relative = t.relative;
    return t.path;
}

static void expect_path(const char *in, bool systemd, const char *want, bool want_rel)
{
    bool rel = !want_rel;
    char *got = resolve(in, systemd, &rel);
    assert_non_null(got);
    assert_string_equal(got, want);
    assert_int_equal(rel, want_rel);
    free(got);
}

static void expect_error(const char *in, bool systemd, const char *needle)
{
    struct cg_target t;
    hull_error err = NULL;
    assert_int_equal(cg_target_parse(in, "ctr", systemd, &t, &err), -1);
    assert_non_null(strstr(hull_error_msg(err), "linux.cgroupsPath"));
    assert_non_null(strstr(hull_error_msg(err), needle));
    hull_error_free(&err);
}

static void test_paths(void **state)
{
    (void)state;
    expect_path(NULL, false, "/hull/ctr", false);
    expect_path("", false, "/hull/ctr", false);
    expect_path("/a/b", false, "/a/b", false);
    expect_path("//a/./b/", false, "/a/b", false);
    expect_path("/a/../b", false, "/b", false);
    expect_path("a/b", false, "a/b", true);
    expect_path("a/../b", false, "b", true);
    expect_error("../../x", false, "climbs out");
    expect_error("/../../x", false, "climbs out");
    expect_error("a/../../x", false, "climbs out");
    expect_error("/", false, "root cgroup");
    expect_error("/a/..", false, "root cgroup");
    expect_error(".", false, "own cgroup");
}

static void test_systemd_paths(void **state)
{
    (void)state;
    expect_path("machine.slice:libpod:abc", true, "/machine.slice/libpod-abc.scope", false);
    expect_path("machine.slice:libpod:abc", false, "/machine.slice/libpod-abc.scope", false);
    expect_path("a-b.slice:p:n", true, "/a.slice/a-b.slice/p-n.scope", false);
    expect_path("a-b-c.slice:p:n", true, "/a.slice/a-b.slice/a-b-c.slice/p-n.scope", false);
    expect_path(":cri-containerd:id1", true, "/system.slice/cri-containerd-id1.scope", false);
    expect_path("system.slice::id1", true, "/system.slice/id1.scope", false);
    expect_path("-.slice:p:n", true, "/p-n.scope", false);
    expect_path("kubepods.slice:p:pod1.slice", true, "/kubepods.slice/pod1.slice", false);
    expect_error("a--b.slice:p:n", true, "not a valid systemd slice");
    expect_error("-a.slice:p:n", true, "not a valid systemd slice");
    expect_error("foo:p:n", true, "slice:prefix:name");
    expect_error("/abs/path", true, "slice:prefix:name");
    expect_error("a.slice:p:", true, "bad prefix or name");
    expect_error("a.slice:p:..", true, "bad prefix or name");
    assert_true(cg_is_systemd_form("user.slice:x:y"));
    assert_false(cg_is_systemd_form("a/b.slice:x:y"));
    assert_false(cg_is_systemd_form("a.slice:x"));
    assert_false(cg_is_systemd_form("a.slice:x:y:z"));
}

static void test_weights(void **state)
{
    (void)state;
    assert_int_equal(cg_shares_to_weight(0), 0);
    assert_int_equal(cg_shares_to_weight(2), 1);
    assert_int_equal(cg_shares_to_weight(1024), 39);
    assert_int_equal(cg_shares_to_weight(262144), 10000);
    assert_int_equal(cg_shares_to_weight(1000000), 10000);
    assert_int_equal(cg_blkio_to_io_weight(0), 0);
    assert_int_equal(cg_blkio_to_io_weight(10), 1);
    assert_int_equal(cg_blkio_to_io_weight(500), 4950);
    assert_int_equal(cg_blkio_to_io_weight(1000), 10000);
}

static void test_keyed(void **state)
{
    (void)state;
    uint64_t v = 0;
    const char *ev = "low 0\nhigh 3\nmax 17\noom 2\noom_kill 1\noom_group_kill 0\n";
    assert_true(cg_keyed_get(ev, "max", &v));
    assert_int_equal(v, 17);
    assert_true(cg_keyed_get(ev, "oom", &v));
    assert_int_equal(v, 2);
    assert_true(cg_keyed_get(ev, "oom_kill", &v));
    assert_int_equal(v, 1);
    assert_false(cg_keyed_get(ev, "oom_k", &v));
    assert_false(cg_keyed_get("", "max", &v));
    assert_int_equal(cg_v2_ctrl_mask("cpu io\n"), CG_BIT(CG_CPU) | CG_BIT(CG_BLKIO));
}

static void test_resources_ctrls(void **state)
{
    (void)state;
    struct hull_resources r;
    memset(&r, 0, sizeof(r));
    assert_int_equal(cg_resources_ctrls(&r), 0);
    r.has_cpu_shares = true; /* shares 0 means unset */
    assert_int_equal(cg_resources_ctrls(&r), 0);
    r.cpu_cpus = "";
    assert_int_equal(cg_resources_ctrls(&r), 0);
    r.cpu_cpus = "0-1";
    r.has_pids_limit = true;
    r.has_memory_swap = true;
    assert_int_equal(cg_resources_ctrls(&r),
                     CG_BIT(CG_CPUSET) | CG_BIT(CG_PIDS) | CG_BIT(CG_MEMORY));
}

static void test_needed_by(void **state)
{
    (void)state;
    struct hull_resources r;
    memset(&r, 0, sizeof(r));
    assert_null(hull_cgroup_needed_by(NULL, true));
    assert_null(hull_cgroup_needed_by(&r, true));
    struct hull_device_rule deny = {false, 'a', -1, -1, "rwm"};
    r.devices = &deny;
    r.n_devices = 1;
    /* Device rules need a cgroup only when the caller counts them. */
    assert_null(hull_cgroup_needed_by(&r, true));
    assert_string_equal(hull_cgroup_needed_by(&r, false), "linux.resources.devices");
    r.has_pids_limit = true;
    assert_string_equal(hull_cgroup_needed_by(&r, true), "linux.resources.pids");
    r.has_memory_limit = true;
    assert_string_equal(hull_cgroup_needed_by(&r, true), "linux.resources.memory");
    memset(&r, 0, sizeof(r));
    char *kv[] = {"memory.high", "1M", NULL};
    r.unified = kv;
    assert_string_equal(hull_cgroup_needed_by(&r, true), "linux.resources.unified");
}

static struct hull_device_rule rule(bool allow, char type, int64_t maj, int64_t min,
                                    const char *access)
{
    struct hull_device_rule d = {allow, type, maj, min, (char *)access};
    return d;
}

static void test_bpf_program(void **state)
{
    (void)state;
    struct bpf_insn prog[256];
    /* The OCI default: deny all, then allow a few. */
    struct hull_device_rule rules[] = {
        rule(false, 'a', -1, -1, "rwm"),
        rule(true, 'c', 1, 3, "rwm"),
        rule(true, 'c', 5, -1, "rw"),
    };
    size_t n = cg_devices_bpf_assemble(rules, 3, prog, 256);
    /* 6 to unpack the context; rule 3: type, access (3), major, verdict (2);
     * rule 2: type, major, minor, verdict (2); rule 1 is "everything": its
     * verdict ends the program (code after it would be unreachable). */
    assert_int_equal(n, 6 + 7 + 5 + 2);
    assert_int_equal(prog[n - 1].code, BPF_JMP | BPF_EXIT);
    assert_int_equal(prog[n - 2].imm, 0); /* deny */
    /* Every jump lands inside the program. */
    for (size_t i = 0; i < n; i++)
        if ((prog[i].code & 0x07) == BPF_JMP32)
            assert_true(i + 1 + (size_t)prog[i].off < n);
    /* Without a catch-all, a final "deny" is appended. */
    n = cg_devices_bpf_assemble(rules + 1, 2, prog, 256);
    assert_int_equal(n, 6 + 7 + 5 + 2);
    assert_int_equal(prog[n - 2].code, BPF_ALU64 | BPF_MOV | BPF_K);
    assert_int_equal(prog[n - 2].imm, 0);
    /* Too small a buffer: refused, not truncated. */
    assert_int_equal(cg_devices_bpf_assemble(rules, 3, prog, 10), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_layout_hybrid),
        cmocka_unit_test(test_layout_shadowed_is_v2),
        cmocka_unit_test(test_layout_v1_comounted),
        cmocka_unit_test(test_layout_none),
        cmocka_unit_test(test_own_paths),
        cmocka_unit_test(test_paths),
        cmocka_unit_test(test_systemd_paths),
        cmocka_unit_test(test_weights),
        cmocka_unit_test(test_keyed),
        cmocka_unit_test(test_resources_ctrls),
        cmocka_unit_test(test_needed_by),
        cmocka_unit_test(test_bpf_program),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
