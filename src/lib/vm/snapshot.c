/* Snapshots: a paused VM's QEMU migration stream, zstd-compressed, behind a
 * signed manifest.
 *
 *   offset 0     "HULLSNAP", u32 format (1), u32 manifest length,
 *                64 hex chars: HMAC-SHA256 of the manifest bytes with the
 *                host's snapshot key
 *   offset 80    manifest JSON (padded with spaces to MANIFEST_SPACE)
 *   offset 80+MANIFEST_SPACE   the payload: zstd frames of the stream
 *
 * The manifest records the sha256 of the stream and of the payload, and the
 * sha256 of the kernel, initrd and rootfs image the VM ran. Restore checks
 * the signature first, then the artifacts on disk, then streams the payload
 * into a paused QEMU while hashing it, and resumes the guest only if both
 * digests match: what QEMU loaded is exactly what was hashed, and a
 * mismatch leaves nothing running.
 */
#include <errno.h>
#include <fcntl.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zstd.h>

#include "util/clock.h"
#include "util/error.h"
#include "util/sha256.h"
#include "util/fs.h"
#include "util/json.h"
#include "util/log.h"
#include "vm/agent.h"
#include "vm/vm.h"
#include "vm/vmm.h"

#define SNAP_MAGIC     "HULLSNAP"
#define SNAP_FORMAT    1
#define HEADER_SIZE    80
#define MANIFEST_SPACE 8192
#define PAYLOAD_OFF    (HEADER_SIZE + MANIFEST_SPACE)

struct pump {
    int in, out;     /* read from in, write to out */
    int close_first; /* save: our copy of the pipe's write end, closed once QEMU has its own */
    EVP_MD_CTX *raw, *packed;
    uint64_t raw_size, packed_size;
    hull_error *err;
};

static void zstd_cctx_freep(ZSTD_CCtx **z)
{
    ZSTD_freeCCtx(*z);
}

static void zstd_dctx_freep(ZSTD_DCtx **z)
{
    ZSTD_freeDCtx(*z);
}

static void md_ctx_freep(EVP_MD_CTX **c)
{
    EVP_MD_CTX_free(*c);
}

/* save: raw stream from QEMU -> hash -> zstd -> hash -> file */
static int pump_save(void *arg)
{
    struct pump *p = arg;
    if (p->close_first >= 0) {
        close(p->close_first);
        p->close_first = -1;
    }
    __attribute__((cleanup(zstd_cctx_freep))) ZSTD_CCtx *z = ZSTD_createCCtx();
    size_t inlen = ZSTD_CStreamInSize(), outlen = ZSTD_CStreamOutSize();
    cleanup_free char *ib = malloc(inlen);
    cleanup_free char *ob = malloc(outlen);
    if (!z || !ib || !ob)
        return hull_error_set(p->err, ENOMEM, "snapshot: no memory for the compressor");
    if (ZSTD_isError(ZSTD_CCtx_setParameter(z, ZSTD_c_compressionLevel, 1)))
        return hull_error_set(p->err, EINVAL, "snapshot: zstd refuses compression level 1");
    for (;;) {
        ssize_t n = read(p->in, ib, inlen);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return hull_error_errno(p->err, "read the migration stream");
        EVP_DigestUpdate(p->raw, ib, (size_t)n);
        p->raw_size += (uint64_t)n;
        ZSTD_inBuffer zi = {ib, (size_t)n, 0};
        ZSTD_EndDirective mode = n == 0 ? ZSTD_e_end : ZSTD_e_continue;
        size_t left;
        do {
            ZSTD_outBuffer zo = {ob, outlen, 0};
            left = ZSTD_compressStream2(z, &zo, &zi, mode);
            if (ZSTD_isError(left))
                return hull_error_set(p->err, EIO, "zstd: %s", ZSTD_getErrorName(left));
            EVP_DigestUpdate(p->packed, ob, zo.pos);
            p->packed_size += zo.pos;
            if (hull_pwrite_all(p->out, ob, zo.pos, -1) < 0)
                return hull_error_errno(p->err, "write the snapshot");
        } while (mode == ZSTD_e_end ? left != 0 : zi.pos < zi.size);
        if (n == 0)
            return 0;
    }
}

/* Stop feeding QEMU: it sees EOF. */
static void pump_close_out(struct pump *p)
{
    if (p->out >= 0)
        close(p->out);
    p->out = -1;
}

/* restore: file -> hash -> unzstd -> hash -> QEMU */
static int pump_restore(void *arg)
{
    struct pump *p = arg;
    __attribute__((cleanup(zstd_dctx_freep))) ZSTD_DCtx *z = ZSTD_createDCtx();
    size_t inlen = ZSTD_DStreamInSize(), outlen = ZSTD_DStreamOutSize();
    cleanup_free char *ib = malloc(inlen);
    cleanup_free char *ob = malloc(outlen);
    if (!z || !ib || !ob) {
        pump_close_out(p);
        return hull_error_set(p->err, ENOMEM, "snapshot: no memory for the decompressor");
    }
    int rc = 0;
    size_t last = 0;
    while (!rc) {
        ssize_t n = read(p->in, ib, inlen);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            rc = hull_error_errno(p->err, "read the snapshot");
            break;
        }
        if (n == 0) {
            if (last != 0)
                rc = hull_error_set(p->err, EINVAL, "snapshot payload is truncated");
            break;
        }
        EVP_DigestUpdate(p->packed, ib, (size_t)n);
        p->packed_size += (uint64_t)n;
        ZSTD_inBuffer zi = {ib, (size_t)n, 0};
        while (zi.pos < zi.size) {
            ZSTD_outBuffer zo = {ob, outlen, 0};
            last = ZSTD_decompressStream(z, &zo, &zi);
            if (ZSTD_isError(last)) {
                rc = hull_error_set(p->err, EINVAL, "snapshot payload is corrupt (zstd: %s)",
                                    ZSTD_getErrorName(last));
                break;
            }
            EVP_DigestUpdate(p->raw, ob, zo.pos);
            p->raw_size += zo.pos;
            /* QEMU may already have given up on a bad stream: keep hashing,
             * stop feeding, and let the digest check speak. */
            if (p->out >= 0 && hull_pwrite_all(p->out, ob, zo.pos, -1) < 0)
                pump_close_out(p);
        }
    }
    pump_close_out(p);
    return rc;
}

static void hex_final(EVP_MD_CTX *c, char out[HULL_SHA256_HEX])
{
    unsigned char md[32];
    EVP_DigestFinal_ex(c, md, NULL);
    hull_sha256_to_hex(md, out);
}

/* Two fresh sha256 contexts for a pump: raw and packed stream. */
static int digests_new(EVP_MD_CTX **raw, EVP_MD_CTX **packed, hull_error *err)
{
    *raw = EVP_MD_CTX_new();
    *packed = EVP_MD_CTX_new();
    if (!*raw || !*packed || EVP_DigestInit_ex(*raw, EVP_sha256(), NULL) != 1 ||
        EVP_DigestInit_ex(*packed, EVP_sha256(), NULL) != 1)
        return hull_error_set(err, ENOMEM, "snapshot: sha256 context");
    return 0;
}

static json_object *artifact(const char *path, const char *sha)
{
    json_object *o = json_object_new_object();
    json_object_object_add(o, "path", json_object_new_string(path));
    json_object_object_add(o, "sha256", json_object_new_string(sha));
    return o;
}

/* What the pump measured of a stream. */
struct sums {
    char raw[HULL_SHA256_HEX], packed[HULL_SHA256_HEX];
    uint64_t raw_size, packed_size;
    char ram[HULL_SHA256_HEX]; /* the RAM file's (ramfile.c), "" when RAM is in the stream */
};

static json_object *manifest_json(const struct vm *vm, const struct sums *sum)
{
    json_object *m = json_object_new_object();
    json_object_object_add(m, "format", json_object_new_int(SNAP_FORMAT));
    json_object_object_add(m, "source_vm", json_object_new_string(vm->id));
    json_object_object_add(m, "created_unix", json_object_new_int64(hull_realtime_ms() / 1000));
    json_object_object_add(m, "memory_mb", json_object_new_int64((int64_t)vm->memory_mb));
    json_object_object_add(m, "vcpus", json_object_new_int((int)vm->vcpus));
    json_object_object_add(m, "agent_ports", json_object_new_int((int)vm->agent_ports));
    json_object_object_add(m, "accelerator", json_object_new_string(vm->accel));
    json_object *k = artifact(vm->kernel.bzimage, vm->kernel.bzimage_sha256);
    json_object_object_add(k, "release", json_object_new_string(vm->kernel.release));
    json_object_object_add(k, "vmlinux", json_object_new_string(vm->kernel.vmlinux));
    json_object_object_add(k, "vmlinux_sha256", json_object_new_string(vm->kernel.vmlinux_sha256));
    json_object_object_add(m, "kernel", k);
    json_object_object_add(m, "initrd", artifact(vm->initrd.path, vm->initrd.sha256));
    json_object *r = artifact(vm->rootfs.image, vm->rootfs.sha256);
    json_object_object_add(r, "source", json_object_new_string(vm->rootfs.source));
    json_object_object_add(m, "rootfs", r);
    if (vm->image[0]) {
        /* A restored VM of an image holds it in use while it runs, too. */
        json_object *img = json_object_new_object();
        json_object_object_add(img, "name", json_object_new_string(vm->image));
        json_object_object_add(img, "digest", json_object_new_string(vm->image_digest));
        json_object_object_add(img, "store", json_object_new_string(vm->image_root));
        json_object_object_add(img, "config", json_object_new_string(vm->image_config));
        json_object_object_add(m, "image", img);
    }
    if (vm->network[0]) {
        /* The guest has a network card: a VM restored from this needs
         * one too (its own TAP and lease on this network, same egress; not
         * the published ports, which the source VM may still hold). */
        json_object *net = json_object_new_object();
        json_object_object_add(net, "name", json_object_new_string(vm->network));
        json_object_object_add(net, "egress", json_object_new_string(vm->egress));
        json_object_object_add(m, "network", net);
    }
    json_object *s = json_object_new_object();
    json_object_object_add(s, "sha256", json_object_new_string(sum->raw));
    json_object_object_add(s, "size", json_object_new_int64((int64_t)sum->raw_size));
    json_object_object_add(s, "payload_sha256", json_object_new_string(sum->packed));
    json_object_object_add(s, "payload_size", json_object_new_int64((int64_t)sum->packed_size));
    json_object_object_add(s, "compression", json_object_new_string("zstd"));
    json_object_object_add(m, "stream", s);
    if (sum->ram[0]) {
        /* Guest RAM is <snapshot>.ram, not in the stream. */
        json_object *ram = json_object_new_object();
        json_object_object_add(ram, "sha256", json_object_new_string(sum->ram));
        json_object_object_add(ram, "digest", json_object_new_string(VM_RAM_DIGEST));
        json_object_object_add(ram, "size", json_object_new_int64((int64_t)(vm->memory_mb << 20)));
        json_object_object_add(m, "ram", ram);
    }
    return m;
}

json_object *vm_manifest_json(const struct vm *vm)
{
    struct sums none = {0};
    json_object *m = manifest_json(vm, &none);
    json_object_object_del(m, "stream");
    return m;
}

/* The header and the signed manifest in front of the payload, then fsync. */
static int write_manifest(const struct vm *vm, const struct sums *sum, int out, const char *tmp,
                          hull_error *err)
{
    cleanup_json json_object *m = manifest_json(vm, sum);
    size_t mlen;
    const char *ms = json_object_to_json_string_length(m, JSON_C_TO_STRING_PLAIN, &mlen);
    char hmac[HULL_SHA256_HEX];
    if (mlen > MANIFEST_SPACE)
        return hull_error_set(err, E2BIG, "snapshot manifest too large");
    if (vm_hmac(ms, mlen, hmac, err) < 0)
        return -1;
    char hdr[HEADER_SIZE] = {0};
    memcpy(hdr, SNAP_MAGIC, 8);
    uint32_t f = SNAP_FORMAT, l = (uint32_t)mlen;
    memcpy(hdr + 8, &f, 4);
    memcpy(hdr + 12, &l, 4);
    memcpy(hdr + 16, hmac, 64);
    cleanup_free char *space = malloc(MANIFEST_SPACE);
    if (!space)
        return hull_error_set(err, ENOMEM, "snapshot: no memory for the manifest");
    memset(space, ' ', MANIFEST_SPACE);
    memcpy(space, ms, mlen);
    if (pwrite(out, hdr, HEADER_SIZE, 0) != HEADER_SIZE ||
        pwrite(out, space, MANIFEST_SPACE, HEADER_SIZE) != MANIFEST_SPACE || fsync(out) < 0)
        return hull_error_errno(err, "write %s", tmp);
    return 0;
}

/* The VM's state through the pump into out at the payload's offset. */
static int save_stream(struct vm *vm, int out, struct sums *sum, hull_error *err)
{
    __attribute__((cleanup(md_ctx_freep))) EVP_MD_CTX *raw = NULL;
    __attribute__((cleanup(md_ctx_freep))) EVP_MD_CTX *packed = NULL;
    if (digests_new(&raw, &packed, err) < 0)
        return -1;
    if (lseek(out, PAYLOAD_OFF, SEEK_SET) < 0)
        return hull_error_errno(err, "seek");
    int pp[2];
    if (pipe2(pp, O_CLOEXEC) < 0)
        return hull_error_errno(err, "pipe");
    cleanup_close int rd = pp[0];
    /* QEMU gets its own copy of the write end (getfd); ours must go
     * before the pump reads, or it never sees EOF. */
    struct pump p = {
        .in = rd, .out = out, .close_first = pp[1], .raw = raw, .packed = packed, .err = err};
    int rc = vm_vmm()->save(vm, pp[1], pump_save, &p, err);
    if (p.close_first >= 0)
        close(p.close_first);
    hex_final(raw, sum->raw);
    hex_final(packed, sum->packed);
    sum->raw_size = p.raw_size;
    sum->packed_size = p.packed_size;
    return rc;
}

/* Save vm (locked by the caller, running or paused) to file. */
int vm_snapshot_to(struct vm *vm, const char *file, hull_error *err)
{
    if (vm->status != VM_RUNNING && vm->status != VM_PAUSED)
        return hull_error_set(err, EINVAL, "VM %s is %s", vm->id, vm_status_name(vm->status));
    bool was_running = vm->status == VM_RUNNING;
    char tmp[4200];
    /* A cut name would be another file, renamed over `file` below. */
    if (snprintf(tmp, sizeof(tmp), "%s.tmp.%d", file, getpid()) >= (int)sizeof(tmp))
        return hull_error_set(err, ENAMETOOLONG, "snapshot %s: path too long", file);
    cleanup_close int out = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (out < 0)
        return hull_error_errno(err, "create %s", tmp);
    struct sums sum = {0};
    int rc = save_stream(vm, out, &sum, err);
    /* A template's maker: its RAM was left out of the stream; copy it
     * while the guest is still paused. Both files are renamed into place
     * only once both are whole: a template being replaced stays as it was
     * until then. */
    char ramf[4200], ramtmp[4200];
    snprintf(ramf, sizeof(ramf), "%s.ram", file);
    snprintf(ramtmp, sizeof(ramtmp), "%s.ram.tmp.%d", file, getpid());
    bool ram = vm->ram_open && vm->ram_share;
    if (!rc && ram)
        rc = vm_ram_save(vm->ram_fd, vm->memory_mb << 20, ramtmp, sum.ram, err);
    /* The VM goes on as it was, whatever happened to the file. */
    if (was_running) {
        hull_error e = NULL;
        if (vm_vmm()->resume(vm, &e) < 0) {
            /* The snapshot's own result stands; say why the guest is still paused. */
            hull_warn("VM %s: resume after the snapshot: %s", vm->id, hull_error_msg(e));
            hull_error_free(&e);
        }
    } else
        vm->status = VM_PAUSED;
    if (!rc)
        rc = write_manifest(vm, &sum, out, tmp, err);
    close(out);
    out = -1;
    if (!rc && ram && rename(ramtmp, ramf) < 0)
        rc = hull_error_errno(err, "rename to %s", ramf);
    if (!rc && rename(tmp, file) < 0)
        rc = hull_error_errno(err, "rename to %s", file);
    if (rc)
        unlink(tmp);
    if (rc && ram)
        unlink(ramtmp);
    return rc;
}

static int read_manifest(const char *file, int *fdout, json_object **out, hull_error *err)
{
    /* A FIFO given as the snapshot opens at once and is refused below,
     * instead of holding restore until a writer comes. */
    cleanup_close int fd = hull_open_input(file);
    if (fd < 0)
        return hull_error_errno(err, "snapshot %s", file);
    struct stat st;
    if (fstat(fd, &st) < 0)
        return hull_error_errno(err, "snapshot %s", file);
    if (!S_ISREG(st.st_mode))
        return hull_error_set(err, EINVAL, "snapshot %s: not a hull snapshot", file);
    char hdr[HEADER_SIZE];
    uint32_t fmt, len;
    if (read(fd, hdr, HEADER_SIZE) != HEADER_SIZE || memcmp(hdr, SNAP_MAGIC, 8) != 0)
        return hull_error_set(err, EINVAL, "snapshot %s: not a hull snapshot", file);
    memcpy(&fmt, hdr + 8, 4);
    memcpy(&len, hdr + 12, 4);
    if (fmt != SNAP_FORMAT || len == 0 || len > MANIFEST_SPACE)
        return hull_error_set(err, EINVAL, "snapshot %s: unsupported format or damaged header",
                              file);
    cleanup_free char *ms = malloc(len + 1);
    char hmac[HULL_SHA256_HEX];
    if (!ms)
        return hull_error_set(err, ENOMEM, "snapshot %s: no memory for the manifest", file);
    if (pread(fd, ms, len, HEADER_SIZE) != (ssize_t)len)
        return hull_error_set(err, EINVAL, "snapshot %s: truncated manifest", file);
    ms[len] = 0;
    if (vm_hmac(ms, len, hmac, err) < 0)
        return -1;
    if (CRYPTO_memcmp(hmac, hdr + 16, 64) != 0)
        return hull_error_set(err, EPERM,
                              "snapshot %s: manifest signature does not match "
                              "(tampered with, or made on another host)",
                              file);
    if (hj_parse(ms, len, file, out, err) < 0)
        return -1;
    *fdout = fd;
    fd = -1;
    return 0;
}

int vm_snapshot_check(const char *file, hull_error *err)
{
    cleanup_close int fd = -1;
    cleanup_json json_object *m = NULL;
    return read_manifest(file, &fd, &m, err);
}

static const char *mget(json_object *m, const char *obj, const char *key);
static int payload_check(int fd, json_object *m, const char *file, hull_error *err);

int vm_snapshot_verify(const char *file, hull_error *err)
{
    cleanup_close int fd = -1;
    cleanup_json json_object *m = NULL;
    if (read_manifest(file, &fd, &m, err) < 0 || payload_check(fd, m, file, err) < 0)
        return -1;
    if (!hj_get(m, "ram"))
        return 0;
    json_object *v = hj_get(hj_get(m, "ram"), "size");
    char ramf[4200];
    snprintf(ramf, sizeof(ramf), "%s.ram", file);
    cleanup_close int mem = -1;
    return vm_ram_load(ramf, v ? (uint64_t)json_object_get_int64(v) : 0, mget(m, "ram", "sha256"),
                       &mem, err);
}

static const char *mget(json_object *m, const char *obj, const char *key)
{
    json_object *o = obj ? hj_get(m, obj) : m;
    json_object *v = o ? hj_get(o, key) : NULL;
    return v ? json_object_get_string(v) : "";
}

/* Fill vm's artifacts from the manifest and check each against the disk. */
int vm_manifest_artifacts(json_object *m, struct vm *vm, hull_error *err)
{
    /* A VM made for this restore (a template's) was measured moments ago by
     * vm_create: its own files, and its own image and store, are the ones to
     * use. The template may have been saved by a VM whose files lived
     * elsewhere (another image store holding the same image); what the
     * guest's memory depends on is their content, checked below. (Two images
     * whose layers are the same have one disk; their configs, which differ,
     * are given to each run, not kept in the guest.) */
    bool measured = vm->kernel.bzimage_sha256[0] && vm->initrd.sha256[0] && vm->rootfs.sha256[0];
    if (!measured) {
        snprintf(vm->kernel.bzimage, sizeof(vm->kernel.bzimage), "%s", mget(m, "kernel", "path"));
        snprintf(vm->kernel.bzimage_sha256, HULL_SHA256_HEX, "%s", mget(m, "kernel", "sha256"));
        snprintf(vm->kernel.release, sizeof(vm->kernel.release), "%s",
                 mget(m, "kernel", "release"));
        snprintf(vm->kernel.vmlinux, sizeof(vm->kernel.vmlinux), "%s",
                 mget(m, "kernel", "vmlinux"));
        snprintf(vm->kernel.vmlinux_sha256, HULL_SHA256_HEX, "%s",
                 mget(m, "kernel", "vmlinux_sha256"));
        snprintf(vm->initrd.path, sizeof(vm->initrd.path), "%s", mget(m, "initrd", "path"));
        snprintf(vm->initrd.sha256, HULL_SHA256_HEX, "%s", mget(m, "initrd", "sha256"));
        snprintf(vm->rootfs.image, sizeof(vm->rootfs.image), "%s", mget(m, "rootfs", "path"));
        snprintf(vm->rootfs.sha256, HULL_SHA256_HEX, "%s", mget(m, "rootfs", "sha256"));
        snprintf(vm->rootfs.source, sizeof(vm->rootfs.source), "%s", mget(m, "rootfs", "source"));
        if (hj_get(m, "image")) {
            snprintf(vm->image, sizeof(vm->image), "%s", mget(m, "image", "name"));
            snprintf(vm->image_digest, sizeof(vm->image_digest), "%s", mget(m, "image", "digest"));
            snprintf(vm->image_root, sizeof(vm->image_root), "%s", mget(m, "image", "store"));
            snprintf(vm->image_config, sizeof(vm->image_config), "%s", mget(m, "image", "config"));
        }
    }
    /* A VM made for this restore (a template's) brings its own network;
     * `vm restore` takes the snapshot's. */
    if (hj_get(m, "network") && !vm->network[0]) {
        snprintf(vm->network, sizeof(vm->network), "%s", mget(m, "network", "name"));
        snprintf(vm->egress, sizeof(vm->egress), "%s", mget(m, "network", "egress"));
    }
    if (!hj_get(m, "network") != !vm->network[0])
        return hull_error_set(err, EINVAL, "the snapshot was made %s a network card",
                              vm->network[0] ? "without" : "with");
    json_object *v;
    int64_t mem = (v = hj_get(m, "memory_mb")) ? json_object_get_int64(v) : 0;
    int64_t cpus = (v = hj_get(m, "vcpus")) ? json_object_get_int64(v) : 0;
    /* A migration's manifest is the source's: the VM it asks for gets no
     * more than `vm create` gives (QEMU's cgroup follows the size). */
    if (mem < HULL_VM_MIN_MEMORY_MB || mem > HULL_VM_MAX_MEMORY_MB || cpus < 1 ||
        cpus > HULL_VM_MAX_VCPUS)
        return hull_error_set(err, EINVAL,
                              "the manifest's VM (%lldM, %lld vCPUs) is outside %dM..%dM and "
                              "1..%d vCPUs",
                              (long long)mem, (long long)cpus, HULL_VM_MIN_MEMORY_MB,
                              HULL_VM_MAX_MEMORY_MB, HULL_VM_MAX_VCPUS);
    vm->memory_mb = (uint64_t)mem;
    /* The guest in the stream was saved with this many ports: QEMU must
     * have the same devices to load it. */
    vm->agent_ports =
        vm_agent_ports_valid((v = hj_get(m, "agent_ports")) ? json_object_get_int64(v) : 0);
    vm->vcpus = (unsigned)cpus;
    snprintf(vm->accel, sizeof(vm->accel), "%s", mget(m, NULL, "accelerator"));
    if (!vm->accel[0])
        return hull_error_set(err, EINVAL, "manifest lacks the VM's size");
    char want[8];
    if (vm_accel_resolve(vm->accel, want, err) < 0)
        return hull_error_prefix(err, "the snapshot was made with %s", vm->accel);
    /* The guest's memory refers to exactly these files: any change and the
     * restored guest would read a different disk or kernel than it booted.
     * A measured VM's digests are compared, the others' files read now. */
    struct {
        const char *what, *path, *sha;
    } a[] = {
        {"kernel", vm->kernel.bzimage, vm->kernel.bzimage_sha256},
        {"initrd", vm->initrd.path, vm->initrd.sha256},
        {"rootfs", vm->rootfs.image, vm->rootfs.sha256},
    };
    for (size_t i = 0; i < 3; i++) {
        const char *expect = mget(m, a[i].what, "sha256");
        char got[HULL_SHA256_HEX];
        if (measured)
            snprintf(got, sizeof(got), "%s", a[i].sha);
        else if (vm_sha256_file(a[i].path, got, err) < 0)
            return hull_error_prefix(err, "%s of the snapshot", a[i].what);
        /* A file read here is named without its digest: the manifest may
         * be a migration source's, which must learn nothing of our files. */
        if (strcmp(got, expect) != 0 && measured)
            return hull_error_set(err, EPERM,
                                  "%s %s is not the one of the snapshot (sha256 %s, expected %s)",
                                  a[i].what, a[i].path, got, expect);
        if (strcmp(got, expect) != 0)
            return hull_error_set(err, EPERM,
                                  "%s %s changed since the snapshot (its sha256 is not %s)",
                                  a[i].what, a[i].path, expect);
    }
    char sumfile[4200];
    cleanup_free char *sum = NULL;
    size_t sl;
    snprintf(sumfile, sizeof(sumfile), "%s.sha256", vm->kernel.vmlinux);
    /* Why the digest file cannot be read does not matter: the vmlinux is refused. */
    if (access(vm->kernel.vmlinux, R_OK) < 0 || hull_read_file(sumfile, &sum, &sl, NULL) < 0 ||
        sl < 64 || strncmp(sum, vm->kernel.vmlinux_sha256, 64) != 0)
        return hull_error_set(err, ENOENT, "the snapshot's vmlinux %s is gone or changed",
                              vm->kernel.vmlinux);
    return 0;
}

/* The packed payload read in full and checked against the signed
 * manifest before QEMU sees a byte of it: a damaged or tampered stream is
 * refused here, never parsed by QEMU's loader. */
static int payload_check(int fd, json_object *m, const char *file, hull_error *err)
{
    char hex[HULL_SHA256_HEX];
    uint64_t size = 0;
    if (lseek(fd, PAYLOAD_OFF, SEEK_SET) < 0)
        return hull_error_errno(err, "snapshot %s: seek", file);
    if (hull_sha256_fd(fd, hex, &size, err) < 0)
        return hull_error_prefix(err, "snapshot %s", file);
    json_object *want = hj_get(hj_get(m, "stream"), "payload_size");
    if (want && size < (uint64_t)json_object_get_int64(want))
        return hull_error_set(err, EINVAL, "snapshot %s: payload is truncated", file);
    if (strcmp(hex, mget(m, "stream", "payload_sha256")) != 0)
        return hull_error_set(
            err, EPERM,
            "snapshot %s: stream digest does not match the manifest (tampered with or damaged)",
            file);
    return 0;
}

/* Start a paused QEMU for vm that loads from a pipe, and feed it the
 * payload of fd while hashing it; the digests must be the manifest's. */
static int load_stream(struct vm *vm, int fd, json_object *m, const char *file, hull_error *err)
{
    __attribute__((cleanup(md_ctx_freep))) EVP_MD_CTX *raw = NULL;
    __attribute__((cleanup(md_ctx_freep))) EVP_MD_CTX *packed = NULL;
    if (digests_new(&raw, &packed, err) < 0)
        return -1;
    if (payload_check(fd, m, file, err) < 0)
        return -1;
    int pp[2];
    if (pipe2(pp, O_CLOEXEC) < 0)
        return hull_error_errno(err, "pipe");
    int rc = vm_save(vm, err) < 0 ? -1 : vm_start_vmm(vm, pp[0], err);
    /* QEMU has its own copy: a QEMU that exits makes our writes fail. */
    close(pp[0]);
    struct pump p = {
        .in = fd, .out = pp[1], .close_first = -1, .raw = raw, .packed = packed, .err = err};
    if (rc < 0) {
        pump_close_out(&p);
        return -1;
    }
    /* QEMU can exit mid-stream on a bad one: a write must fail, not kill us. */
    struct sigaction ign = {.sa_handler = SIG_IGN}, old;
    sigaction(SIGPIPE, &ign, &old);
    rc = lseek(fd, PAYLOAD_OFF, SEEK_SET) < 0 ? hull_error_errno(err, "seek") : pump_restore(&p);
    sigaction(SIGPIPE, &old, NULL);
    pump_close_out(&p);
    char rawhex[HULL_SHA256_HEX], packedhex[HULL_SHA256_HEX];
    hex_final(raw, rawhex);
    hex_final(packed, packedhex);
    if (!rc && (strcmp(packedhex, mget(m, "stream", "payload_sha256")) != 0 ||
                strcmp(rawhex, mget(m, "stream", "sha256")) != 0))
        rc = hull_error_set(
            err, EPERM,
            "snapshot %s: stream digest does not match the manifest (tampered with or damaged)",
            file);
    return rc;
}

/* The snapshot's guest RAM file, checked against the manifest, into a
 * sealed memfd QEMU will map private (ramfile.c). */
static int ram_copy(struct vm *vm, json_object *m, const char *file, int *conn, hull_error *err)
{
    json_object *v = hj_get(hj_get(m, "ram"), "size");
    uint64_t size = v ? (uint64_t)json_object_get_int64(v) : 0;
    if (size != vm->memory_mb << 20)
        return hull_error_set(err, EINVAL, "snapshot %s: its RAM file is not the VM's size", file);
    if (strcmp(mget(m, "ram", "digest"), VM_RAM_DIGEST) != 0)
        return hull_error_set(err, EINVAL, "snapshot %s: its RAM digest is not of a known kind",
                              file);
    char ramf[4200];
    snprintf(ramf, sizeof(ramf), "%s.ram", file);
    if (vm_ram_shared(ramf, size, mget(m, "ram", "sha256"), &vm->ram_fd, conn, err) < 0)
        return -1;
    vm->ram_open = true;
    vm->ram_share = false;
    return 0;
}

/* Load file into vm (a fresh VM directory, status created); leaves it
 * running with the agent answering. */
int vm_restore_into(struct vm *vm, const char *file, int64_t *ready_ms, hull_error *err)
{
    int64_t t0 = hull_monotonic_ms();
    cleanup_close int fd = -1;
    cleanup_json json_object *m = NULL;
    if (read_manifest(file, &fd, &m, err) < 0)
        return -1;
    int keeper = -1;
    int rc = vm_manifest_artifacts(m, vm, err);
    if (!rc && hj_get(m, "ram"))
        rc = ram_copy(vm, m, file, &keeper, err);
    if (!rc)
        rc = load_stream(vm, fd, m, file, err);
    /* The RAM's keeper holds it for later clones while this QEMU runs. */
    vm_ram_keeper_hold(keeper, rc ? 0 : vm->pid);
    /* QEMU holds its own copy of the sealed RAM now, or failed. */
    if (vm->ram_open)
        close(vm->ram_fd);
    vm->ram_open = false;
    if (!rc && vm_vmm()->load_wait(vm, err) < 0)
        rc = hull_error_prefix(err, "load the snapshot");
    if (!rc && vm_vmm()->resume(vm, err) == 0) {
        vm->status = VM_RUNNING;
        snprintf(vm->restored_from, sizeof(vm->restored_from), "%s", file);
        struct vm_agent *a = NULL;
        rc = vm_agent_connect(vm, 30000, &a, err);
        /* The guest still has the snapshot's address and MAC: it gets this
         * VM's own lease. */
        if (!rc)
            rc = vm_net_configure(vm, a, err);
        vm_agent_close(a);
    } else if (!rc)
        rc = -1;
    if (ready_ms)
        *ready_ms = hull_monotonic_ms() - t0;
    vm->boot_ms = ready_ms ? *ready_ms : 0;
    if (!rc)
        rc = vm_save(vm, err);
    if (rc) {
        vm_release(vm);
        vm->status = VM_FAILED;
        vm->pid = 0;
    }
    return rc;
}
