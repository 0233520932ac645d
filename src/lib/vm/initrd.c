/* The initramfs: hull-agent as /init plus the kernel modules it loads.
 *
 * Debian's kernel builds the virtio transport, console and block drivers,
 * squashfs and overlayfs as modules, so the initramfs carries exactly those
 * (and what modules.dep says they need), in load order, and nothing else.
 * The archive is cpio "newc" written with libarchive with every field fixed
 * (mtime 0, owner 0, inode numbers in order), so the same agent and modules
 * give the same bytes and the same sha256: the digest a user pins with
 * --expect-initrd-sha256 can be computed anywhere.
 */
#include <archive.h>
#include <archive_entry.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "util/error.h"
#include "util/fs.h"
#include "vm/vm.h"

/* What the agent needs, in the order it needs it. */
static const char *const wanted[] = {
    "virtio_mmio", "virtio_console", "virtio_blk", "squashfs", "overlay",
};

#define MAX_MODS 32

struct modset {
    char *path[MAX_MODS]; /* relative to /lib/modules/<release> */
    size_t n;
};

static const char *dep_line(const char *dep, const char *name)
{
    /* A line is "kernel/.../<name>.ko: deps..."; '-' and '_' are one. */
    char pat[128];
    size_t nl = strlen(name);
    for (const char *l = dep; l && *l; l = strchr(l, '\n') ? strchr(l, '\n') + 1 : NULL) {
        const char *colon = strchr(l, ':');
        const char *eol = strchrnul(l, '\n');
        if (!colon || colon > eol)
            continue;
        const char *slash = colon;
        while (slash > l && slash[-1] != '/')
            slash--;
        snprintf(pat, sizeof(pat), "%.*s", (int)(colon - slash), slash);
        if (strncmp(pat + nl, ".ko", 3) != 0)
            continue;
        bool same = true;
        for (size_t i = 0; i < nl && same; i++)
            same = pat[i] == name[i] || ((pat[i] == '-' || pat[i] == '_') && (name[i] == '-' || name[i] == '_'));
        if (same)
            return l;
    }
    return NULL;
}

/* Depth-first: dependencies before the module, each once. */
static int add_module(const char *dep, const char *line, struct modset *m, int depth, hull_error *err)
{
    if (depth > 16)
        return hull_error_set(err, ELOOP, "modules.dep: dependency loop");
    const char *colon = strchr(line, ':');
    char self[PATH_MAX];
    snprintf(self, sizeof(self), "%.*s", (int)(colon - line), line);
    for (size_t i = 0; i < m->n; i++)
        if (strcmp(m->path[i], self) == 0)
            return 0;
    const char *eol = strchrnul(line, '\n');
    for (const char *p = colon + 1; p < eol;) {
        while (p < eol && *p == ' ')
            p++;
        const char *end = p;
        while (end < eol && *end != ' ')
            end++;
        if (end > p) {
            char d[PATH_MAX];
            snprintf(d, sizeof(d), "%.*s", (int)(end - p), p);
            /* deps are paths; find their own line */
            const char *dl = NULL;
            for (const char *l = dep; l && *l; l = strchr(l, '\n') ? strchr(l, '\n') + 1 : NULL)
                if (strncmp(l, d, strlen(d)) == 0 && l[strlen(d)] == ':') {
                    dl = l;
                    break;
                }
            if (!dl)
                return hull_error_set(err, ENOENT, "modules.dep: %s not listed", d);
            if (add_module(dep, dl, m, depth + 1, err) < 0)
                return -1;
        }
        p = end;
    }
    if (m->n == MAX_MODS)
        return hull_error_set(err, E2BIG, "too many modules");
    if (strstr(self, ".ko.") )
        return hull_error_set(err, ENOTSUP, "%s: compressed modules are not supported", self);
    m->path[m->n++] = strdup(self);
    return 0;
}

static int resolve_modules(const char *release, struct modset *m, hull_error *err)
{
    char p[PATH_MAX];
    snprintf(p, sizeof(p), "/lib/modules/%s/modules.dep", release);
    char *dep = NULL, *builtin = NULL;
    size_t l;
    if (hull_read_file(p, &dep, &l, NULL) < 0)
        return hull_error_errno(err, "kernel %s: %s (install its modules: linux-image-%s)", release, p, release);
    snprintf(p, sizeof(p), "/lib/modules/%s/modules.builtin", release);
    hull_read_file(p, &builtin, &l, NULL);
    int rc = 0;
    for (size_t i = 0; i < sizeof(wanted) / sizeof(wanted[0]) && !rc; i++) {
        const char *line = dep_line(dep, wanted[i]);
        if (line) {
            rc = add_module(dep, line, m, 0, err);
            continue;
        }
        char pat[64];
        snprintf(pat, sizeof(pat), "/%s.ko", wanted[i]);
        if (!builtin || !strstr(builtin, pat))
            rc = hull_error_set(err, ENOENT, "kernel %s has no %s driver (neither module nor built in)",
                                release, wanted[i]);
    }
    free(dep);
    free(builtin);
    return rc;
}

/* Drop a module's appended signature. Debian's kernel checks it but does
 * not require it (MODULE_SIG without MODULE_SIG_FORCE), so in the guest it
 * buys nothing but an RSA verification per module under emulation; what
 * vouches for these modules is the initramfs digest the host measures and
 * the user can pin. Layout: module | signature | struct module_signature
 * (12 bytes, big-endian sig_len last) | "~Module signature appended~\n". */
static void strip_signature(const char *data, size_t *len)
{
    static const char marker[] = "~Module signature appended~\n";
    size_t ml = sizeof(marker) - 1;
    if (*len < ml + 12 || memcmp(data + *len - ml, marker, ml) != 0)
        return;
    const unsigned char *ms = (const unsigned char *)data + *len - ml - 12;
    size_t sig = (size_t)ms[8] << 24 | (size_t)ms[9] << 16 | (size_t)ms[10] << 8 | ms[11];
    size_t extra = ml + 12 + sig + ms[3] + ms[4]; /* + signer and key id lengths */
    if (extra < *len)
        *len -= extra;
}

static int add_entry(struct archive *a, unsigned ino, const char *name, mode_t mode, const char *data,
                     size_t len, hull_error *err)
{
    struct archive_entry *e = archive_entry_new();
    archive_entry_set_pathname(e, name);
    archive_entry_set_mode(e, mode);
    archive_entry_set_ino(e, ino);
    archive_entry_set_dev(e, 0);
    archive_entry_set_nlink(e, S_ISDIR(mode) ? 2 : 1);
    archive_entry_set_uid(e, 0);
    archive_entry_set_gid(e, 0);
    archive_entry_set_mtime(e, 0, 0);
    archive_entry_set_size(e, S_ISREG(mode) ? (la_int64_t)len : 0);
    int r = archive_write_header(a, e);
    archive_entry_free(e);
    if (r != ARCHIVE_OK)
        return hull_error_set(err, EIO, "cpio %s: %s", name, archive_error_string(a));
    if (S_ISREG(mode) && len && archive_write_data(a, data, len) != (la_ssize_t)len)
        return hull_error_set(err, EIO, "cpio %s: %s", name, archive_error_string(a));
    return 0;
}

static int write_cpio(const char *dst, const char *agent, const char *release, const struct modset *m,
                      hull_error *err)
{
    char tmp[PATH_MAX + 32];
    snprintf(tmp, sizeof(tmp), "%s.tmp.%d", dst, getpid());
    struct archive *a = archive_write_new();
    archive_write_set_format_cpio_newc(a);
    archive_write_set_bytes_in_last_block(a, 1);
    if (archive_write_open_filename(a, tmp) != ARCHIVE_OK) {
        hull_error_set(err, EIO, "create %s: %s", tmp, archive_error_string(a));
        archive_write_free(a);
        return -1;
    }
    unsigned ino = 1;
    int rc = add_entry(a, ino++, "hull", S_IFDIR | 0755, NULL, 0, err);
    char *data = NULL;
    size_t len;
    char order[4096] = "";
    if (!rc && m->n)
        rc = add_entry(a, ino++, "hull/modules", S_IFDIR | 0755, NULL, 0, err);
    for (size_t i = 0; i < m->n && !rc; i++) {
        char src[PATH_MAX], name[PATH_MAX];
        snprintf(src, sizeof(src), "/lib/modules/%s/%s", release, m->path[i]);
        const char *base = strrchr(m->path[i], '/') ? strrchr(m->path[i], '/') + 1 : m->path[i];
        snprintf(name, sizeof(name), "hull/modules/%s", base);
        rc = hull_read_file(src, &data, &len, err);
        if (!rc) {
            strip_signature(data, &len);
            rc = add_entry(a, ino++, name, S_IFREG | 0644, data, len, err);
        }
        free(data);
        data = NULL;
        strncat(order, base, sizeof(order) - strlen(order) - 2);
        strcat(order, "\n");
    }
    if (!rc && m->n)
        rc = add_entry(a, ino++, "hull/modules.order", S_IFREG | 0644, order, strlen(order), err);
    if (!rc && (rc = hull_read_file(agent, &data, &len, err)) == 0)
        rc = add_entry(a, ino++, "init", S_IFREG | 0755, data, len, err);
    free(data);
    if (archive_write_close(a) != ARCHIVE_OK && !rc)
        rc = hull_error_set(err, EIO, "write %s: %s", tmp, archive_error_string(a));
    archive_write_free(a);
    if (!rc && rename(tmp, dst) < 0)
        rc = hull_error_errno(err, "rename %s", dst);
    if (rc)
        unlink(tmp);
    return rc;
}

int vm_agent_path(char *out, size_t len, hull_error *err)
{
    const char *env = getenv("HULL_AGENT");
    if (env && *env) {
        if (access(env, R_OK) < 0)
            return hull_error_errno(err, "HULL_AGENT=%s", env);
        snprintf(out, len, "%s", env);
        return 0;
    }
    char self[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);
    if (n > 0) {
        self[n] = 0;
        char *slash = strrchr(self, '/');
        if (slash) {
            *slash = 0;
            snprintf(out, len, "%s/hull-agent", self);
            if (access(out, R_OK) == 0)
                return 0;
            snprintf(out, len, "%s/../lib/hull/hull-agent", self);
            if (access(out, R_OK) == 0)
                return 0;
        }
    }
    return hull_error_set(err, ENOENT, "hull-agent not found (next to hull, in ../lib/hull, or $HULL_AGENT)");
}

/* The cache key: the agent's and every module's digest, in order. */
static int initrd_key(const char *agent, const char *release, const struct modset *m, char key[HULL_SHA256_HEX],
                      hull_error *err)
{
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    EVP_DigestInit_ex(ctx, EVP_sha256(), NULL);
    char d[HULL_SHA256_HEX];
    int rc = vm_sha256_file(agent, d, err);
    EVP_DigestUpdate(ctx, "hull-initrd-2 unsigned-modules agent ", 37);
    EVP_DigestUpdate(ctx, d, 64);
    for (size_t i = 0; i < m->n && !rc; i++) {
        char src[PATH_MAX];
        snprintf(src, sizeof(src), "/lib/modules/%s/%s", release, m->path[i]);
        rc = vm_sha256_file(src, d, err);
        EVP_DigestUpdate(ctx, m->path[i], strlen(m->path[i]));
        EVP_DigestUpdate(ctx, d, 64);
    }
    unsigned char md[32];
    EVP_DigestFinal_ex(ctx, md, NULL);
    EVP_MD_CTX_free(ctx);
    vm_sha256_hex(md, key);
    return rc;
}

int vm_initrd_prepare(const char *release, struct vm_initrd *out, hull_error *err)
{
    memset(out, 0, sizeof(*out));
    char agent[PATH_MAX], dir[2048], key[HULL_SHA256_HEX];
    struct modset m = {0};
    int rc = -1;
    if (vm_agent_path(agent, sizeof(agent), err) < 0 || resolve_modules(release, &m, err) < 0 ||
        initrd_key(agent, release, &m, key, err) < 0 || vm_cache_subdir("initrd", dir, sizeof(dir), err) < 0)
        goto out;
    snprintf(out->path, sizeof(out->path), "%s/initrd-%s.cpio", dir, key);
    if (access(out->path, R_OK) < 0 && write_cpio(out->path, agent, release, &m, err) < 0)
        goto out;
    rc = vm_sha256_file(out->path, out->sha256, err);
out:
    for (size_t i = 0; i < m.n; i++)
        free(m.path[i]);
    if (rc < 0)
        hull_error_prefix(err, "initramfs");
    return rc;
}
