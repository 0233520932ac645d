/* The initramfs: hull-agent as /init plus the kernel modules it loads.
 *
 * Debian's kernel builds the virtio transport, console and block drivers,
 * squashfs and overlayfs as modules, so the initramfs carries exactly those
 * (and what modules.dep says they need), in load order, and nothing else;
 * plus the network card's driver, listed apart (hull/modules.net) and
 * loaded only for a VM on a network (src/guest/agent_net.c).
 * The archive is cpio "newc" (the kernel's initramfs format) with every
 * field fixed (mtime 0, owner 0, inode numbers in order), so the same agent
 * and modules give the same bytes and the same sha256: the digest a user
 * pins with --expect-initrd-sha256 can be computed anywhere. It is written
 * here, not with libarchive: newc is a 110-byte ASCII header per file, and
 * hull links statically, where libarchive would drag in libxml2 and ICU.
 */
#include <elf.h>
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
#include "util/sha256.h"
#include "util/fs.h"
#include "vm/vm.h"

/* What the agent needs, in the order it needs it. */
static const char *const wanted[] = {
    "virtio_mmio", "virtio_console", "virtio_blk", "squashfs", "overlay",
};
/* What it loads only for a VM with a network card (the "net" request):
 * not at boot, so a VM without one boots no slower. */
static const char *const wanted_net[] = {
    "virtio_net",
};

#define MAX_MODS 32

struct modset {
    char *path[MAX_MODS]; /* relative to /lib/modules/<release> */
    size_t n;
    size_t n_boot; /* path[0..n_boot) at boot, the rest on demand (network) */
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
            same = pat[i] == name[i] ||
                   ((pat[i] == '-' || pat[i] == '_') && (name[i] == '-' || name[i] == '_'));
        if (same)
            return l;
    }
    return NULL;
}

/* Depth-first: dependencies before the module, each once. */
static int add_module(const char *dep, const char *line, struct modset *m, int depth,
                      hull_error *err)
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
    if (strstr(self, ".ko."))
        return hull_error_set(err, ENOTSUP, "%s: compressed modules are not supported", self);
    m->path[m->n++] = strdup(self);
    return 0;
}

static int resolve_modules(const char *release, struct modset *m, hull_error *err)
{
    char p[PATH_MAX];
    snprintf(p, sizeof(p), "/lib/modules/%s/modules.dep", release);
    cleanup_free char *dep = NULL;
    cleanup_free char *builtin = NULL;
    size_t l;
    /* hull_read_file keeps errno: the message below names the file and why. */
    if (hull_read_file(p, &dep, &l, NULL) < 0)
        return hull_error_errno(err, "kernel %s: %s (install its modules: linux-image-%s)", release,
                                p, release);
    snprintf(p, sizeof(p), "/lib/modules/%s/modules.builtin", release);
    /* Optional: without it, a driver that is no module is reported missing below. */
    hull_read_file(p, &builtin, &l, NULL);
    int rc = 0;
    size_t nb = sizeof(wanted) / sizeof(wanted[0]), nn = sizeof(wanted_net) / sizeof(wanted_net[0]);
    for (size_t i = 0; i < nb + nn && !rc; i++) {
        const char *name = i < nb ? wanted[i] : wanted_net[i - nb];
        if (i == nb)
            m->n_boot = m->n;
        const char *line = dep_line(dep, name);
        if (line) {
            rc = add_module(dep, line, m, 0, err);
            continue;
        }
        char pat[64];
        snprintf(pat, sizeof(pat), "/%s.ko", name);
        /* A kernel without the network driver still runs VMs without a
         * card; one with a card says so when the agent finds none. */
        if (i >= nb)
            continue;
        if (!builtin || !strstr(builtin, pat))
            rc = hull_error_set(err, ENOENT,
                                "kernel %s has no %s driver (neither module nor built in)", release,
                                name);
    }
    if (nn == 0)
        m->n_boot = m->n;
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

/* Hide a module's .BTF section from the guest kernel (its name becomes
 * ""): on the first module with BTF the kernel parses and checks all of
 * vmlinux's BTF (megabytes, under TCG a good share of the modules' load
 * time), which only BPF tools inside the guest would use. The bytes stay;
 * the kernel loads no section without SHF_ALLOC, and .BTF has none. */
static void hide_btf(char *data, size_t len)
{
    Elf64_Ehdr eh;
    if (len < sizeof(eh))
        return;
    memcpy(&eh, data, sizeof(eh));
    if (memcmp(eh.e_ident, ELFMAG, SELFMAG) != 0 || eh.e_ident[EI_CLASS] != ELFCLASS64 ||
        eh.e_shentsize != sizeof(Elf64_Shdr) || eh.e_shstrndx >= eh.e_shnum || eh.e_shoff > len ||
        (len - eh.e_shoff) / sizeof(Elf64_Shdr) < eh.e_shnum)
        return;
    Elf64_Shdr strs;
    memcpy(&strs, data + eh.e_shoff + (size_t)eh.e_shstrndx * sizeof(Elf64_Shdr), sizeof(strs));
    if (strs.sh_offset > len || strs.sh_size > len - strs.sh_offset)
        return;
    for (size_t i = 1; i < eh.e_shnum; i++) {
        char *at = data + eh.e_shoff + i * sizeof(Elf64_Shdr);
        Elf64_Shdr sh;
        memcpy(&sh, at, sizeof(sh));
        if (sh.sh_name + sizeof(".BTF") > strs.sh_size || (sh.sh_flags & SHF_ALLOC) ||
            memcmp(data + strs.sh_offset + sh.sh_name, ".BTF", sizeof(".BTF")) != 0)
            continue;
        sh.sh_name = 0; /* offset 0 of the string table is "" */
        memcpy(at, &sh, sizeof(sh));
    }
}

struct cpio {
    FILE *f;
    unsigned ino;
};

static int add_entry(struct cpio *c, const char *name, mode_t mode, const char *data, size_t len,
                     hull_error *err)
{
    size_t nl = strlen(name) + 1;
    /* c_magic, ino, mode, uid, gid, nlink, mtime, filesize, devmajor,
     * devminor, rdevmajor, rdevminor, namesize, check: all hex, 8 wide. */
    if (fprintf(c->f, "070701%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X", c->ino++,
                (unsigned)mode, 0u, 0u, S_ISDIR(mode) ? 2u : 1u, 0u, (unsigned)len, 0u, 0u, 0u, 0u,
                (unsigned)nl, 0u) < 0 ||
        fwrite(name, 1, nl, c->f) != nl)
        return hull_error_errno(err, "cpio %s", name);
    static const char zeros[4] = {0};
    size_t pad = (4 - (110 + nl) % 4) % 4;
    if (fwrite(zeros, 1, pad, c->f) != pad || (len && fwrite(data, 1, len, c->f) != len) ||
        fwrite(zeros, 1, (4 - len % 4) % 4, c->f) != (4 - len % 4) % 4)
        return hull_error_errno(err, "cpio %s", name);
    return 0;
}

static int write_cpio(const char *dst, const char *agent, const char *release,
                      const struct modset *m, hull_error *err)
{
    char tmp[PATH_MAX + 32];
    snprintf(tmp, sizeof(tmp), "%s.tmp.%d", dst, getpid());
    struct cpio c = {.f = fopen(tmp, "wxe"), .ino = 1};
    if (!c.f)
        return hull_error_errno(err, "create %s", tmp);
    int rc = add_entry(&c, "hull", S_IFDIR | 0755, NULL, 0, err);
    char *data = NULL;
    size_t len;
    char order[4096] = "", order_net[4096] = "";
    if (!rc && m->n)
        rc = add_entry(&c, "hull/modules", S_IFDIR | 0755, NULL, 0, err);
    for (size_t i = 0; i < m->n && !rc; i++) {
        char src[PATH_MAX], name[PATH_MAX];
        snprintf(src, sizeof(src), "/lib/modules/%s/%s", release, m->path[i]);
        const char *base = strrchr(m->path[i], '/') ? strrchr(m->path[i], '/') + 1 : m->path[i];
        snprintf(name, sizeof(name), "hull/modules/%s", base);
        rc = hull_read_file(src, &data, &len, err);
        if (!rc) {
            strip_signature(data, &len);
            hide_btf(data, len);
            rc = add_entry(&c, name, S_IFREG | 0644, data, len, err);
        }
        free(data);
        data = NULL;
        char *o = i < m->n_boot ? order : order_net;
        strncat(o, base, sizeof(order) - strlen(o) - 2);
        strcat(o, "\n");
    }
    if (!rc && m->n)
        rc = add_entry(&c, "hull/modules.order", S_IFREG | 0644, order, strlen(order), err);
    /* Loaded by the agent when the host gives the VM a network. */
    if (!rc && m->n > m->n_boot)
        rc = add_entry(&c, "hull/modules.net", S_IFREG | 0644, order_net, strlen(order_net), err);
    if (!rc && (rc = hull_read_file(agent, &data, &len, err)) == 0)
        rc = add_entry(&c, "init", S_IFREG | 0755, data, len, err);
    free(data);
    if (!rc)
        rc = add_entry(&c, "TRAILER!!!", 0, NULL, 0, err);
    /* Pad to a 512-byte block, as cpio(1) does. */
    long end = ftell(c.f);
    static const char zeros[512] = {0};
    if (!rc && end % 512 &&
        fwrite(zeros, 1, (size_t)(512 - end % 512), c.f) != (size_t)(512 - end % 512))
        rc = hull_error_errno(err, "write %s", tmp);
    if (fflush(c.f) != 0 || fsync(fileno(c.f)) < 0)
        rc = rc ? rc : hull_error_errno(err, "write %s", tmp);
    fclose(c.f);
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
    return hull_error_set(err, ENOENT,
                          "hull-agent not found (next to hull, in ../lib/hull, or $HULL_AGENT)");
}

/* The cache key: the agent's and every module's digest, in order. */
static int initrd_key(const char *agent, const char *release, const struct modset *m,
                      char key[HULL_SHA256_HEX], hull_error *err)
{
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    EVP_DigestInit_ex(ctx, EVP_sha256(), NULL);
    char d[HULL_SHA256_HEX];
    int rc = vm_sha256_file(agent, d, err);
    static const char fmt[] = "hull-initrd-5 newc unsigned-modules no-btf agent ";
    EVP_DigestUpdate(ctx, fmt, sizeof(fmt) - 1);
    EVP_DigestUpdate(ctx, d, 64);
    for (size_t i = 0; i < m->n && !rc; i++) {
        char src[PATH_MAX];
        snprintf(src, sizeof(src), "/lib/modules/%s/%s", release, m->path[i]);
        rc = vm_sha256_file(src, d, err);
        /* Where the list splits (boot / network) is part of the layout. */
        EVP_DigestUpdate(ctx, i < m->n_boot ? "b" : "n", 1);
        EVP_DigestUpdate(ctx, m->path[i], strlen(m->path[i]));
        EVP_DigestUpdate(ctx, d, 64);
    }
    unsigned char md[32];
    EVP_DigestFinal_ex(ctx, md, NULL);
    EVP_MD_CTX_free(ctx);
    hull_sha256_to_hex(md, key);
    return rc;
}

static void modset_free(struct modset *m)
{
    for (size_t i = 0; i < m->n; i++)
        free(m->path[i]);
}

int vm_initrd_prepare(const char *release, struct vm_initrd *out, hull_error *err)
{
    memset(out, 0, sizeof(*out));
    char agent[PATH_MAX], dir[2048], key[HULL_SHA256_HEX];
    __attribute__((cleanup(modset_free))) struct modset m = {0};
    if (vm_agent_path(agent, sizeof(agent), err) < 0 || resolve_modules(release, &m, err) < 0 ||
        initrd_key(agent, release, &m, key, err) < 0 ||
        vm_cache_subdir("initrd", dir, sizeof(dir), err) < 0)
        return hull_error_prefix(err, "initramfs");
    snprintf(out->path, sizeof(out->path), "%s/initrd-%s.cpio", dir, key);
    if ((access(out->path, R_OK) < 0 && write_cpio(out->path, agent, release, &m, err) < 0) ||
        vm_sha256_file(out->path, out->sha256, err) < 0)
        return hull_error_prefix(err, "initramfs");
    return 0;
}
