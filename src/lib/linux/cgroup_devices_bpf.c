/* Device access on cgroup v2: cgroup2 has no devices controller, the kernel
 * instead runs a BPF_PROG_TYPE_CGROUP_DEVICE program on every open/mknod of
 * a device node. We assemble that program from the OCI rules by hand (a
 * dozen instructions per rule; no compiler or libbpf needed) and attach it
 * with BPF_PROG_ATTACH.
 *
 * Semantics match the v1 replay in cgroup_v1.c: start from "deny all",
 * later rules override earlier ones. The program checks the rules from the
 * last to the first and returns the verdict of the first that matches; a
 * rule matches when type, major and minor match and the access asked for
 * is a subset of the rule's.
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/bpf.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "linux/cgroup_internal.h"
#include "util/error.h"

#define MAX_INSNS 4096

static struct bpf_insn insn(uint8_t code, uint8_t dst, uint8_t src, int16_t off, int32_t imm)
{
    struct bpf_insn i;
    memset(&i, 0, sizeof(i));
    i.code = code;
    i.dst_reg = dst & 0xf;
    i.src_reg = src & 0xf;
    i.off = off;
    i.imm = imm;
    return i;
}

/* Registers once the context is unpacked. */
enum { R_TYPE = 2, R_ACCESS = 3, R_MAJOR = 4, R_MINOR = 5, R_TMP = 6 };

static int access_bits(const char *access)
{
    int bits = 0;
    for (const char *p = access; p && *p; p++)
        bits |= *p == 'r'   ? BPF_DEVCG_ACC_READ
                : *p == 'w' ? BPF_DEVCG_ACC_WRITE
                : *p == 'm' ? BPF_DEVCG_ACC_MKNOD
                            : 0;
    return bits;
}

#define ALL_ACCESS (BPF_DEVCG_ACC_READ | BPF_DEVCG_ACC_WRITE | BPF_DEVCG_ACC_MKNOD)

/* One rule: a chain of "if different, skip to the next rule" tests, then
 * the verdict. Returns instructions written; *total says whether the rule
 * matches every access (nothing before it can be reached). */
static size_t emit_rule(const struct hull_device_rule *d, struct bpf_insn *o, bool *total)
{
    size_t n = 0;
    int acc = access_bits(d->access);
    int tests = (d->type != 'a') + (acc != ALL_ACCESS) + (d->major >= 0) + (d->minor >= 0);
    /* Each test is one jump except the access test (mov, and, jump). */
    size_t len = (size_t)tests + (acc != ALL_ACCESS ? 2 : 0) + 2;
#define SKIP() ((int16_t)(len - n - 1))
    if (d->type != 'a') {
        int t = d->type == 'b' ? BPF_DEVCG_DEV_BLOCK : BPF_DEVCG_DEV_CHAR;
        o[n] = insn(BPF_JMP32 | BPF_JNE | BPF_K, R_TYPE, 0, SKIP(), t);
        n++;
    }
    if (acc != ALL_ACCESS) {
        o[n++] = insn(BPF_ALU64 | BPF_MOV | BPF_X, R_TMP, R_ACCESS, 0, 0);
        o[n++] = insn(BPF_ALU64 | BPF_AND | BPF_K, R_TMP, 0, 0, ~acc & ALL_ACCESS);
        o[n] = insn(BPF_JMP32 | BPF_JNE | BPF_K, R_TMP, 0, SKIP(), 0);
        n++;
    }
    if (d->major >= 0) {
        o[n] = insn(BPF_JMP32 | BPF_JNE | BPF_K, R_MAJOR, 0, SKIP(), (int32_t)(uint32_t)d->major);
        n++;
    }
    if (d->minor >= 0) {
        o[n] = insn(BPF_JMP32 | BPF_JNE | BPF_K, R_MINOR, 0, SKIP(), (int32_t)(uint32_t)d->minor);
        n++;
    }
#undef SKIP
    o[n++] = insn(BPF_ALU64 | BPF_MOV | BPF_K, 0, 0, 0, d->allow ? 1 : 0);
    o[n++] = insn(BPF_JMP | BPF_EXIT, 0, 0, 0, 0);
    *total = tests == 0;
    return n;
}

size_t cg_devices_bpf_assemble(const struct hull_device_rule *rules, size_t count,
                               struct bpf_insn *out, size_t max)
{
    size_t n = 0;
    if (max < 8)
        return 0;
    /* ctx->access_type = (access << 16) | type; ctx->major; ctx->minor */
    out[n++] = insn(BPF_LDX | BPF_MEM | BPF_W, R_TYPE, 1, 0, 0);
    out[n++] = insn(BPF_ALU64 | BPF_MOV | BPF_X, R_ACCESS, R_TYPE, 0, 0);
    out[n++] = insn(BPF_ALU64 | BPF_RSH | BPF_K, R_ACCESS, 0, 0, 16);
    out[n++] = insn(BPF_ALU64 | BPF_AND | BPF_K, R_TYPE, 0, 0, 0xffff);
    out[n++] = insn(BPF_LDX | BPF_MEM | BPF_W, R_MAJOR, 1, 4, 0);
    out[n++] = insn(BPF_LDX | BPF_MEM | BPF_W, R_MINOR, 1, 8, 0);
    for (size_t i = count; i-- > 0;) {
        if (max - n < 10)
            return 0;
        bool total = false;
        n += emit_rule(&rules[i], out + n, &total);
        if (total) /* the verifier refuses unreachable code */
            return n;
    }
    if (max - n < 2)
        return 0;
    out[n++] = insn(BPF_ALU64 | BPF_MOV | BPF_K, 0, 0, 0, 0);
    out[n++] = insn(BPF_JMP | BPF_EXIT, 0, 0, 0, 0);
    return n;
}

static int sys_bpf(int cmd, union bpf_attr *attr)
{
    return (int)syscall(SYS_bpf, cmd, attr, sizeof(*attr));
}

static int load(const struct bpf_insn *prog, size_t n, hull_error *err)
{
    union bpf_attr a;
    memset(&a, 0, sizeof(a));
    a.prog_type = BPF_PROG_TYPE_CGROUP_DEVICE;
    a.insns = (uint64_t)(uintptr_t)prog;
    a.insn_cnt = (uint32_t)n;
    a.license = (uint64_t)(uintptr_t) "Apache-2.0";
    int fd = sys_bpf(BPF_PROG_LOAD, &a);
    if (fd >= 0)
        return fd;
    int e = errno;
    /* Again with the verifier's log, which says what it disliked. */
    char log[4096] = "";
    a.log_buf = (uint64_t)(uintptr_t)log;
    a.log_size = sizeof(log);
    a.log_level = 1;
    fd = sys_bpf(BPF_PROG_LOAD, &a);
    if (fd >= 0)
        return fd;
    log[sizeof(log) - 1] = '\0';
    /* The verifier's complaint is the last line before its statistics. */
    const char *why = "";
    for (char *save = NULL, *l = strtok_r(log, "\n", &save); l; l = strtok_r(NULL, "\n", &save))
        if (strncmp(l, "processed ", 10) != 0)
            why = l;
    errno = e;
    return hull_error_errno(err, "linux.resources.devices: load the eBPF device program%s%s",
                            why[0] ? ": " : "", why);
}

/* Programs attached directly to the cgroup (ours from an earlier apply). */
static int attached(int cgfd, uint32_t *ids, uint32_t max)
{
    union bpf_attr a;
    memset(&a, 0, sizeof(a));
    a.query.target_fd = (uint32_t)cgfd;
    a.query.attach_type = BPF_CGROUP_DEVICE;
    a.query.prog_ids = (uint64_t)(uintptr_t)ids;
    a.query.prog_cnt = max;
    if (sys_bpf(BPF_PROG_QUERY, &a) < 0)
        return 0;
    return (int)(a.query.prog_cnt < max ? a.query.prog_cnt : max);
}

static int attach(int cgfd, int progfd, uint32_t flags)
{
    union bpf_attr a;
    memset(&a, 0, sizeof(a));
    a.target_fd = (uint32_t)cgfd;
    a.attach_bpf_fd = (uint32_t)progfd;
    a.attach_type = BPF_CGROUP_DEVICE;
    a.attach_flags = flags;
    return sys_bpf(BPF_PROG_ATTACH, &a);
}

static void detach(int cgfd, uint32_t id)
{
    union bpf_attr a;
    memset(&a, 0, sizeof(a));
    a.prog_id = id;
    int fd = sys_bpf(BPF_PROG_GET_FD_BY_ID, &a);
    if (fd < 0)
        return;
    memset(&a, 0, sizeof(a));
    a.target_fd = (uint32_t)cgfd;
    a.attach_bpf_fd = (uint32_t)fd;
    a.attach_type = BPF_CGROUP_DEVICE;
    sys_bpf(BPF_PROG_DETACH, &a);
    close(fd);
}

int cg_devices_bpf_apply(const char *dir, const struct hull_device_rule *rules, size_t n,
                         hull_error *err)
{
    struct bpf_insn *prog = calloc(MAX_INSNS, sizeof(*prog));
    if (prog == NULL)
        return hull_error_set(err, ENOMEM, "out of memory");
    size_t len = cg_devices_bpf_assemble(rules, n, prog, MAX_INSNS);
    if (len == 0) {
        free(prog);
        return hull_error_set(err, E2BIG, "linux.resources.devices: too many rules (%zu)", n);
    }
    int progfd = load(prog, len, err);
    free(prog);
    if (progfd < 0)
        return -1;
    cleanup_close int pfd = progfd;
    cleanup_close int cgfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (cgfd < 0)
        return hull_error_errno(err, "linux.resources.devices: open %s", dir);
    uint32_t old[64];
    int nold = attached(cgfd, old, 64);
    /* The new program goes on before the old ones come off, so there is
     * never a moment with no filter (two attached both have to allow). */
    if (attach(cgfd, pfd, BPF_F_ALLOW_MULTI) < 0) {
        /* Someone attached a single, non-multi program here: replace it. */
        if (nold == 0 || attach(cgfd, pfd, 0) < 0)
            return hull_error_errno(err, "linux.resources.devices: attach to %s", dir);
        return 0;
    }
    for (int i = 0; i < nold; i++)
        detach(cgfd, old[i]);
    return 0;
}
