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
#include <time.h>
#include <unistd.h>
#include <zstd.h>

#include "util/error.h"
#include "util/fs.h"
#include "util/json.h"
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

static int write_all(int fd, const void *p, size_t n)
{
    const char *c = p;
    while (n) {
        ssize_t w = write(fd, c, n);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return -1;
        c += w;
        n -= (size_t)w;
    }
    return 0;
}

/* save: raw stream from QEMU -> hash -> zstd -> hash -> file */
static int pump_save(void *arg)
{
    struct pump *p = arg;
    if (p->close_first >= 0) {
        close(p->close_first);
        p->close_first = -1;
    }
    ZSTD_CCtx *z = ZSTD_createCCtx();
    ZSTD_CCtx_setParameter(z, ZSTD_c_compressionLevel, 1);
    size_t inlen = ZSTD_CStreamInSize(), outlen = ZSTD_CStreamOutSize();
    char *ib = malloc(inlen), *ob = malloc(outlen);
    int rc = 0;
    for (;;) {
        ssize_t n = read(p->in, ib, inlen);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            rc = hull_error_errno(p->err, "read the migration stream");
            break;
        }
        EVP_DigestUpdate(p->raw, ib, (size_t)n);
        p->raw_size += (uint64_t)n;
        ZSTD_inBuffer zi = {ib, (size_t)n, 0};
        ZSTD_EndDirective mode = n == 0 ? ZSTD_e_end : ZSTD_e_continue;
        size_t left;
        do {
            ZSTD_outBuffer zo = {ob, outlen, 0};
            left = ZSTD_compressStream2(z, &zo, &zi, mode);
            if (ZSTD_isError(left)) {
                rc = hull_error_set(p->err, EIO, "zstd: %s", ZSTD_getErrorName(left));
                break;
            }
            EVP_DigestUpdate(p->packed, ob, zo.pos);
            p->packed_size += zo.pos;
            if (write_all(p->out, ob, zo.pos) < 0) {
                rc = hull_error_errno(p->err, "write the snapshot");
                break;
            }
        } while (!rc && (mode == ZSTD_e_end ? left != 0 : zi.pos < zi.size));
        if (rc || n == 0)
            break;
    }
    free(ib);
    free(ob);
    ZSTD_freeCCtx(z);
    return rc;
}

/* restore: file -> hash -> unzstd -> hash -> QEMU */
static int pump_restore(void *arg)
{
    struct pump *p = arg;
    ZSTD_DCtx *z = ZSTD_createDCtx();
    size_t inlen = ZSTD_DStreamInSize(), outlen = ZSTD_DStreamOutSize();
    char *ib = malloc(inlen), *ob = malloc(outlen);
    int rc = 0;
    size_t last = 0;
    for (;;) {
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
            if (p->out >= 0 && write_all(p->out, ob, zo.pos) < 0) {
                close(p->out);
                p->out = -1;
            }
        }
        if (rc)
            break;
    }
    if (p->out >= 0) {
        close(p->out);
        p->out = -1;
    }
    free(ib);
    free(ob);
    ZSTD_freeDCtx(z);
    return rc;
}

static void hex_final(EVP_MD_CTX *c, char out[HULL_SHA256_HEX])
{
    unsigned char md[32];
    EVP_DigestFinal_ex(c, md, NULL);
    vm_sha256_hex(md, out);
}

static json_object *artifact(const char *path, const char *sha)
{
    json_object *o = json_object_new_object();
    json_object_object_add(o, "path", json_object_new_string(path));
    json_object_object_add(o, "sha256", json_object_new_string(sha));
    return o;
}

/* Save vm (locked by the caller, running or paused) to file. */
int vm_snapshot_to(struct vm *vm, const char *file, hull_error *err)
{
    if (vm->status != VM_RUNNING && vm->status != VM_PAUSED)
        return hull_error_set(err, EINVAL, "VM %s is %s", vm->id, vm_status_name(vm->status));
    bool was_running = vm->status == VM_RUNNING;
    char tmp[4200];
    snprintf(tmp, sizeof(tmp), "%s.tmp.%d", file, getpid());
    int out = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (out < 0)
        return hull_error_errno(err, "create %s", tmp);
    int pp[2] = {-1, -1};
    struct pump p = {.out = out,
                     .close_first = -1,
                     .raw = EVP_MD_CTX_new(),
                     .packed = EVP_MD_CTX_new(),
                     .err = err};
    EVP_DigestInit_ex(p.raw, EVP_sha256(), NULL);
    EVP_DigestInit_ex(p.packed, EVP_sha256(), NULL);
    int rc = lseek(out, PAYLOAD_OFF, SEEK_SET) < 0 ? hull_error_errno(err, "seek") : 0;
    if (!rc && pipe2(pp, O_CLOEXEC) < 0)
        rc = hull_error_errno(err, "pipe");
    if (!rc) {
        p.in = pp[0];
        /* QEMU gets its own copy of the write end (getfd); ours must go
         * before the pump reads, or it never sees EOF. */
        p.close_first = pp[1];
        rc = vm_vmm()->save(vm, pp[1], pump_save, &p, err);
    }
    if (p.close_first >= 0)
        close(p.close_first);
    if (pp[0] >= 0)
        close(pp[0]);
    char raw[HULL_SHA256_HEX], packed[HULL_SHA256_HEX];
    hex_final(p.raw, raw);
    hex_final(p.packed, packed);
    EVP_MD_CTX_free(p.raw);
    EVP_MD_CTX_free(p.packed);
    /* The VM goes on as it was, whatever happened to the file. */
    if (was_running)
        vm_vmm()->resume(vm, NULL);
    if (!was_running)
        vm->status = VM_PAUSED;
    if (!rc) {
        json_object *m = json_object_new_object();
        json_object_object_add(m, "format", json_object_new_int(SNAP_FORMAT));
        json_object_object_add(m, "source_vm", json_object_new_string(vm->id));
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        json_object_object_add(m, "created_unix", json_object_new_int64(ts.tv_sec));
        json_object_object_add(m, "memory_mb", json_object_new_int64((int64_t)vm->memory_mb));
        json_object_object_add(m, "vcpus", json_object_new_int((int)vm->vcpus));
        json_object_object_add(m, "accelerator", json_object_new_string(vm->accel));
        json_object *k = artifact(vm->kernel.bzimage, vm->kernel.bzimage_sha256);
        json_object_object_add(k, "release", json_object_new_string(vm->kernel.release));
        json_object_object_add(k, "vmlinux", json_object_new_string(vm->kernel.vmlinux));
        json_object_object_add(k, "vmlinux_sha256",
                               json_object_new_string(vm->kernel.vmlinux_sha256));
        json_object_object_add(m, "kernel", k);
        json_object_object_add(m, "initrd", artifact(vm->initrd.path, vm->initrd.sha256));
        json_object *r = artifact(vm->rootfs.image, vm->rootfs.sha256);
        json_object_object_add(r, "source", json_object_new_string(vm->rootfs.source));
        json_object_object_add(m, "rootfs", r);
        json_object *s = json_object_new_object();
        json_object_object_add(s, "sha256", json_object_new_string(raw));
        json_object_object_add(s, "size", json_object_new_int64((int64_t)p.raw_size));
        json_object_object_add(s, "payload_sha256", json_object_new_string(packed));
        json_object_object_add(s, "payload_size", json_object_new_int64((int64_t)p.packed_size));
        json_object_object_add(s, "compression", json_object_new_string("zstd"));
        json_object_object_add(m, "stream", s);
        size_t mlen;
        const char *ms = json_object_to_json_string_length(m, JSON_C_TO_STRING_PLAIN, &mlen);
        char hmac[HULL_SHA256_HEX];
        char hdr[HEADER_SIZE];
        if (mlen > MANIFEST_SPACE)
            rc = hull_error_set(err, E2BIG, "snapshot manifest too large");
        else if (vm_hmac(ms, mlen, hmac, err) < 0)
            rc = -1;
        else {
            memset(hdr, 0, sizeof(hdr));
            memcpy(hdr, SNAP_MAGIC, 8);
            uint32_t f = SNAP_FORMAT, l = (uint32_t)mlen;
            memcpy(hdr + 8, &f, 4);
            memcpy(hdr + 12, &l, 4);
            memcpy(hdr + 16, hmac, 64);
            char *space = malloc(MANIFEST_SPACE);
            memset(space, ' ', MANIFEST_SPACE);
            memcpy(space, ms, mlen);
            if (pwrite(out, hdr, HEADER_SIZE, 0) != HEADER_SIZE ||
                pwrite(out, space, MANIFEST_SPACE, HEADER_SIZE) != MANIFEST_SPACE || fsync(out) < 0)
                rc = hull_error_errno(err, "write %s", tmp);
            free(space);
        }
        json_object_put(m);
    }
    close(out);
    if (!rc && rename(tmp, file) < 0)
        rc = hull_error_errno(err, "rename to %s", file);
    if (rc)
        unlink(tmp);
    return rc;
}

static int read_manifest(const char *file, int *fdout, json_object **out, hull_error *err)
{
    int fd = open(file, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return hull_error_errno(err, "snapshot %s", file);
    char hdr[HEADER_SIZE];
    uint32_t fmt, len;
    if (read(fd, hdr, HEADER_SIZE) != HEADER_SIZE || memcmp(hdr, SNAP_MAGIC, 8) != 0) {
        close(fd);
        return hull_error_set(err, EINVAL, "snapshot %s: not a hull snapshot", file);
    }
    memcpy(&fmt, hdr + 8, 4);
    memcpy(&len, hdr + 12, 4);
    if (fmt != SNAP_FORMAT || len == 0 || len > MANIFEST_SPACE) {
        close(fd);
        return hull_error_set(err, EINVAL, "snapshot %s: unsupported format or damaged header",
                              file);
    }
    char *ms = malloc(len + 1);
    char hmac[HULL_SHA256_HEX];
    if (pread(fd, ms, len, HEADER_SIZE) != (ssize_t)len) {
        free(ms);
        close(fd);
        return hull_error_set(err, EINVAL, "snapshot %s: truncated manifest", file);
    }
    ms[len] = 0;
    if (vm_hmac(ms, len, hmac, err) < 0) {
        free(ms);
        close(fd);
        return -1;
    }
    if (CRYPTO_memcmp(hmac, hdr + 16, 64) != 0) {
        free(ms);
        close(fd);
        return hull_error_set(err, EPERM,
                              "snapshot %s: manifest signature does not match "
                              "(tampered with, or made on another host)",
                              file);
    }
    int rc = hj_parse(ms, len, file, out, err);
    free(ms);
    if (rc < 0) {
        close(fd);
        return -1;
    }
    *fdout = fd;
    return 0;
}

static const char *mget(json_object *m, const char *obj, const char *key)
{
    json_object *o = obj ? hj_get(m, obj) : m;
    json_object *v = o ? hj_get(o, key) : NULL;
    return v ? json_object_get_string(v) : "";
}

/* Fill vm's artifacts from the manifest and check each against the disk. */
static int manifest_artifacts(json_object *m, struct vm *vm, hull_error *err)
{
    /* Measured moments ago by vm_create (a template restore)? Then the
     * digests must match those measurements; the files are not read twice. */
    bool measured = vm->kernel.bzimage_sha256[0] && vm->initrd.sha256[0] && vm->rootfs.sha256[0];
    char mk[HULL_SHA256_HEX], mi[HULL_SHA256_HEX], mr[HULL_SHA256_HEX];
    snprintf(mk, sizeof(mk), "%s", vm->kernel.bzimage_sha256);
    snprintf(mi, sizeof(mi), "%s", vm->initrd.sha256);
    snprintf(mr, sizeof(mr), "%s", vm->rootfs.sha256);
    snprintf(vm->kernel.bzimage, sizeof(vm->kernel.bzimage), "%s", mget(m, "kernel", "path"));
    snprintf(vm->kernel.bzimage_sha256, HULL_SHA256_HEX, "%s", mget(m, "kernel", "sha256"));
    snprintf(vm->kernel.release, sizeof(vm->kernel.release), "%s", mget(m, "kernel", "release"));
    snprintf(vm->kernel.vmlinux, sizeof(vm->kernel.vmlinux), "%s", mget(m, "kernel", "vmlinux"));
    snprintf(vm->kernel.vmlinux_sha256, HULL_SHA256_HEX, "%s", mget(m, "kernel", "vmlinux_sha256"));
    snprintf(vm->initrd.path, sizeof(vm->initrd.path), "%s", mget(m, "initrd", "path"));
    snprintf(vm->initrd.sha256, HULL_SHA256_HEX, "%s", mget(m, "initrd", "sha256"));
    snprintf(vm->rootfs.image, sizeof(vm->rootfs.image), "%s", mget(m, "rootfs", "path"));
    snprintf(vm->rootfs.sha256, HULL_SHA256_HEX, "%s", mget(m, "rootfs", "sha256"));
    snprintf(vm->rootfs.source, sizeof(vm->rootfs.source), "%s", mget(m, "rootfs", "source"));
    json_object *v;
    vm->memory_mb = (uint64_t)((v = hj_get(m, "memory_mb")) ? json_object_get_int64(v) : 0);
    vm->vcpus = (unsigned)((v = hj_get(m, "vcpus")) ? json_object_get_int(v) : 0);
    snprintf(vm->accel, sizeof(vm->accel), "%s", mget(m, NULL, "accelerator"));
    if (!vm->memory_mb || !vm->vcpus || !vm->accel[0])
        return hull_error_set(err, EINVAL, "manifest lacks the VM's size");
    char want[8];
    if (vm_accel_resolve(vm->accel, want, err) < 0)
        return hull_error_prefix(err, "the snapshot was made with %s", vm->accel);
    /* The guest's memory refers to exactly these files: any change and the
     * restored guest would read a different disk or kernel than it booted. */
    struct {
        const char *what, *path, *sha;
    } a[] = {
        {"kernel", vm->kernel.bzimage, vm->kernel.bzimage_sha256},
        {"initrd", vm->initrd.path, vm->initrd.sha256},
        {"rootfs", vm->rootfs.image, vm->rootfs.sha256},
    };
    const char *known[3] = {mk, mi, mr};
    for (size_t i = 0; i < 3; i++) {
        char got[HULL_SHA256_HEX];
        if (measured)
            snprintf(got, sizeof(got), "%s", known[i]);
        else if (vm_sha256_file(a[i].path, got, err) < 0)
            return hull_error_prefix(err, "%s of the snapshot", a[i].what);
        if (strcmp(got, a[i].sha) != 0)
            return hull_error_set(err, EPERM,
                                  "%s %s changed since the snapshot (sha256 %s, expected %s)",
                                  a[i].what, a[i].path, got, a[i].sha);
    }
    char sumfile[4200], *sum = NULL;
    size_t sl;
    snprintf(sumfile, sizeof(sumfile), "%s.sha256", vm->kernel.vmlinux);
    if (access(vm->kernel.vmlinux, R_OK) < 0 || hull_read_file(sumfile, &sum, &sl, NULL) < 0 ||
        sl < 64 || strncmp(sum, vm->kernel.vmlinux_sha256, 64) != 0) {
        free(sum);
        return hull_error_set(err, ENOENT, "the snapshot's vmlinux %s is gone or changed",
                              vm->kernel.vmlinux);
    }
    free(sum);
    return 0;
}

/* Load file into vm (a fresh VM directory, status created); leaves it
 * running with the agent answering. */
int vm_restore_into(struct vm *vm, const char *file, int64_t *ready_ms, hull_error *err)
{
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    int fd = -1;
    json_object *m = NULL;
    if (read_manifest(file, &fd, &m, err) < 0)
        return -1;
    int rc = manifest_artifacts(m, vm, err);
    int pp[2] = {-1, -1};
    if (!rc && pipe2(pp, O_CLOEXEC) < 0)
        rc = hull_error_errno(err, "pipe");
    if (!rc && (rc = vm_save(vm, err)) == 0)
        rc = vm_start_vmm(vm, pp[0], err);
    if (pp[0] >= 0)
        close(pp[0]);
    struct pump p = {.in = fd,
                     .out = pp[1],
                     .close_first = -1,
                     .raw = EVP_MD_CTX_new(),
                     .packed = EVP_MD_CTX_new(),
                     .err = err};
    EVP_DigestInit_ex(p.raw, EVP_sha256(), NULL);
    EVP_DigestInit_ex(p.packed, EVP_sha256(), NULL);
    if (!rc) {
        /* QEMU can exit mid-stream on a bad one: a write must fail, not kill us. */
        struct sigaction ign = {.sa_handler = SIG_IGN}, old;
        sigaction(SIGPIPE, &ign, &old);
        rc =
            lseek(fd, PAYLOAD_OFF, SEEK_SET) < 0 ? hull_error_errno(err, "seek") : pump_restore(&p);
        sigaction(SIGPIPE, &old, NULL);
    } else if (pp[1] >= 0)
        close(pp[1]);
    char raw[HULL_SHA256_HEX], packed[HULL_SHA256_HEX];
    hex_final(p.raw, raw);
    hex_final(p.packed, packed);
    EVP_MD_CTX_free(p.raw);
    EVP_MD_CTX_free(p.packed);
    if (!rc && (strcmp(packed, mget(m, "stream", "payload_sha256")) != 0 ||
                strcmp(raw, mget(m, "stream", "sha256")) != 0))
        rc = hull_error_set(
            err, EPERM,
            "snapshot %s: stream digest does not match the manifest (tampered with or damaged)",
            file);
    if (!rc && vm_vmm()->load_wait(vm, err) < 0)
        rc = hull_error_prefix(err, "load the snapshot");
    if (!rc && vm_vmm()->resume(vm, err) == 0) {
        vm->status = VM_RUNNING;
        snprintf(vm->restored_from, sizeof(vm->restored_from), "%s", file);
        struct vm_agent *a = NULL;
        rc = vm_agent_connect(vm, 30000, &a, err);
        vm_agent_close(a);
    } else if (!rc)
        rc = -1;
    clock_gettime(CLOCK_MONOTONIC, &t1);
    if (ready_ms)
        *ready_ms = (t1.tv_sec - t0.tv_sec) * 1000 + (t1.tv_nsec - t0.tv_nsec) / 1000000;
    vm->boot_ms = ready_ms ? *ready_ms : 0;
    if (!rc)
        rc = vm_save(vm, err);
    if (rc) {
        vm_release(vm);
        vm->status = VM_FAILED;
        vm->pid = 0;
    }
    close(fd);
    json_object_put(m);
    return rc;
}

int hull_vm_snapshot(const struct hull_runtime *rt, const char *id, const char *file,
                     hull_error *err)
{
    struct vm vm;
    if (!file || !*file)
        return hull_error_set(err, EINVAL, "snapshot: missing file");
    if (vm_load(rt, id, &vm, err) < 0)
        return hull_error_prefix(err, "snapshot");
    int lk = vm_lock(&vm, "lock", true, err);
    if (lk < 0)
        return hull_error_prefix(err, "snapshot");
    /* No agent session may be mid-request inside the saved state. */
    int alk = vm_lock(&vm, "agent.lock", true, err);
    int rc = alk < 0 ? -1 : vm_snapshot_to(&vm, file, err);
    if (alk >= 0)
        close(alk);
    if (!rc)
        rc = vm_save(&vm, err);
    close(lk);
    return rc < 0 ? hull_error_prefix(err, "snapshot %s", id) : 0;
}

int hull_vm_restore(const struct hull_runtime *rt, const char *file, const char *new_id,
                    hull_error *err)
{
    struct vm vm;
    memset(&vm, 0, sizeof(vm));
    if (vm_dir_of(rt, new_id, vm.dir, sizeof(vm.dir), err) < 0)
        return hull_error_prefix(err, "restore");
    snprintf(vm.id, sizeof(vm.id), "%s", new_id);
    if (access(vm.dir, F_OK) == 0)
        return hull_error_set(err, EEXIST, "restore: VM %s already exists", new_id);
    /* Check the file before making anything. */
    int fd = -1;
    json_object *m = NULL;
    if (read_manifest(file, &fd, &m, err) < 0)
        return hull_error_prefix(err, "restore");
    close(fd);
    json_object_put(m);
    if (vm_make_dirs(&vm, err) < 0)
        return hull_error_prefix(err, "restore");
    int lk = vm_lock(&vm, "lock", false, err);
    int rc = lk < 0 ? -1 : vm_restore_into(&vm, file, NULL, err);
    if (rc < 0)
        hull_rm_rf_at(AT_FDCWD, vm.dir, NULL);
    if (lk >= 0)
        close(lk);
    return rc < 0 ? hull_error_prefix(err, "restore") : 0;
}
