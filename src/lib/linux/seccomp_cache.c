/* A process-wide cache of compiled seccomp filters, keyed by the profile's
 * content, so `hull_seccomp_compile` is cheap when the same profile comes
 * back (the sandbox's built-in profile on every run, the daemon's jobs).
 *
 * The key is a canonical text form of struct hull_seccomp, compared in full
 * (no hash collisions to reason about). Compiled filters are reference
 * counted: the cache holds one reference, each caller another, and
 * hull_seccomp_filter_free drops one, so evicting an entry never frees a
 * filter someone is about to load. The key costs microseconds against the
 * milliseconds libseccomp needs to compile a few hundred rules.
 *
 * Behind the memory cache sits a disk cache under /run/hull/seccomp, for
 * the `hull` command that compiles the same built-in profile in every new
 * process. A file is named by a hash of the key but holds the whole key,
 * compared in full on load, and is trusted only if root owns it and nobody
 * else may write it (or its directory).
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <seccomp.h>
#include <stdio.h>
#include <sys/stat.h>
#include <unistd.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "linux/seccomp.h"
#include "util/error.h"
#include "util/fs.h"
#include "util/log.h"

#define DISK_DIR   "/run/hull/seccomp"
#define DISK_MAGIC "HULLBPF1"

struct disk_header {
    char magic[8];
    uint64_t flags;
    uint32_t notify;
    uint32_t len;     /* instructions */
    uint64_t key_len; /* bytes of key text after the header */
    uint32_t lib_version;
    uint32_t pad;
};

#define CACHE_SLOTS 8

struct slot {
    char *key;
    struct hull_seccomp_filter *filter;
    unsigned long last_use;
};

static pthread_mutex_t cache_lock = PTHREAD_MUTEX_INITIALIZER;
static struct slot cache[CACHE_SLOTS];
static unsigned long cache_clock;

/* The key is built by hand into a growing buffer: with stdio (fprintf on
 * a memstream) it took ~40 us for the built-in profile, a tenth of a load. */
struct key {
    char *p;
    size_t len, cap;
    bool oom;
};

static void put(struct key *k, const void *s, size_t n)
{
    if (k->oom)
        return;
    if (k->len + n + 1 > k->cap) {
        size_t cap = k->cap ? k->cap : 4096;
        while (cap < k->len + n + 1)
            cap *= 2;
        char *p = realloc(k->p, cap);
        if (p == NULL) {
            k->oom = true;
            return;
        }
        k->p = p;
        k->cap = cap;
    }
    memcpy(k->p + k->len, s, n);
    k->len += n;
    k->p[k->len] = '\0';
}

static void put_u64(struct key *k, char tag, uint64_t v)
{
    char buf[24];
    size_t i = sizeof(buf);
    do
        buf[--i] = (char)('0' + v % 10);
    while ((v /= 10) != 0);
    buf[--i] = tag;
    put(k, buf + i, sizeof(buf) - i);
}

/* Strings go with their length, so no separator can be forged by a name
 * containing it; NULL and "" differ. */
static void put_str(struct key *k, const char *s)
{
    if (s == NULL) {
        put(k, "-", 1);
        return;
    }
    size_t n = strlen(s);
    put_u64(k, 's', n);
    put(k, ":", 1);
    put(k, s, n);
}

static void put_strv(struct key *k, char *const *v)
{
    size_t n = 0;
    while (v && v[n])
        n++;
    put_u64(k, v ? 'v' : '-', n);
    for (size_t i = 0; i < n; i++)
        put_str(k, v[i]);
}

static char *cache_key(const struct hull_seccomp *s)
{
    struct key k = {0};
    put_str(&k, s->default_action);
    put_u64(&k, 'e', s->has_default_errno_ret);
    put_u64(&k, ',', s->default_errno_ret);
    put_strv(&k, s->architectures);
    put_strv(&k, s->flags);
    /* listenerPath/metadata do not change the program: not part of the key */
    put_u64(&k, 'n', s->n_syscalls);
    for (size_t i = 0; i < s->n_syscalls; i++) {
        const struct hull_seccomp_rule *r = &s->syscalls[i];
        put_strv(&k, r->names);
        put_str(&k, r->action);
        put_u64(&k, 'e', r->has_errno_ret);
        put_u64(&k, ',', r->errno_ret);
        put_u64(&k, 'a', r->n_args);
        for (size_t j = 0; j < r->n_args; j++) {
            const struct hull_seccomp_arg *a = &r->args[j];
            put_u64(&k, 'i', a->index);
            put_u64(&k, ',', a->value);
            put_u64(&k, ',', a->value_two);
            put_str(&k, a->op);
        }
    }
    if (k.oom || k.p == NULL) {
        free(k.p);
        return NULL;
    }
    return k.p;
}

static uint64_t fnv1a(const char *s)
{
    uint64_t h = 1469598103934665603ull;
    for (; *s; s++) {
        h ^= (unsigned char)*s;
        h *= 1099511628211ull;
    }
    return h;
}

static uint32_t lib_version(void)
{
    const struct scmp_version *v = seccomp_version();
    return v ? (v->major << 16) | (v->minor << 8) | v->micro : 0;
}

static void disk_name(const char *key, char *buf, size_t len)
{
    snprintf(buf, len, "%016llx.bpf", (unsigned long long)fnv1a(key));
}

static bool trusted(int fd)
{
    struct stat st;
    return fstat(fd, &st) == 0 && st.st_uid == geteuid() && !(st.st_mode & 022);
}

static struct hull_seccomp_filter *disk_load(const char *key)
{
    char name[64];
    disk_name(key, name, sizeof(name));
    int dir = open(DISK_DIR, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (dir < 0)
        return NULL;
    int fd = trusted(dir) ? openat(dir, name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC) : -1;
    close(dir);
    if (fd < 0)
        return NULL;
    struct hull_seccomp_filter *f = NULL;
    char *text = NULL;
    size_t n = 0;
    hull_error e = NULL;
    if (trusted(fd) && hull_read_fd(fd, &text, &n, &e) == 0 && n >= sizeof(struct disk_header)) {
        struct disk_header h;
        memcpy(&h, text, sizeof(h));
        size_t klen = strlen(key);
        size_t want = sizeof(h) + klen + (size_t)h.len * 8;
        if (memcmp(h.magic, DISK_MAGIC, 8) == 0 && h.key_len == klen && n == want &&
            h.lib_version == lib_version() && memcmp(text + sizeof(h), key, klen) == 0)
            f = hull_seccomp_filter_from_bpf(text + sizeof(h) + klen, h.len, h.flags,
                                             h.notify != 0);
    }
    hull_error_free(&e); /* unreadable: a cache miss, the filter is compiled instead */
    free(text);
    close(fd);
    return f;
}

/* Best effort: a cache that cannot be written only costs time. */
static void disk_store(const char *key, const struct hull_seccomp_filter *f)
{
    if (geteuid() != 0 || hull_mkdir_p(DISK_DIR, 0700, NULL) < 0)
        return;
    int dir = open(DISK_DIR, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (dir < 0)
        return;
    size_t klen = strlen(key), len = hull_seccomp_filter_len(f);
    struct disk_header h = {.flags = hull_seccomp_filter_flags(f),
                            .notify = hull_seccomp_needs_listener(f),
                            .len = (uint32_t)len,
                            .key_len = klen,
                            .lib_version = lib_version()};
    memcpy(h.magic, DISK_MAGIC, 8);
    size_t total = sizeof(h) + klen + len * 8;
    char *buf = malloc(total);
    if (buf != NULL && trusted(dir)) {
        memcpy(buf, &h, sizeof(h));
        memcpy(buf + sizeof(h), key, klen);
        memcpy(buf + sizeof(h) + klen, hull_seccomp_filter_insns(f), len * 8);
        char name[64];
        disk_name(key, name, sizeof(name));
        hull_error e = NULL;
        if (hull_write_file_atomic(dir, name, buf, total, 0600, &e) < 0)
            hull_debug("seccomp cache: %s", hull_error_msg(e));
        hull_error_free(&e);
    }
    free(buf);
    close(dir);
}

int hull_seccomp_compile(const struct hull_seccomp *spec, struct hull_seccomp_filter **out,
                         hull_error *err)
{
    *out = NULL;
    char *key = cache_key(spec);
    if (key == NULL)
        return hull_error_set(err, ENOMEM, "seccomp: out of memory");

    pthread_mutex_lock(&cache_lock);
    for (size_t i = 0; i < CACHE_SLOTS; i++)
        if (cache[i].key && strcmp(cache[i].key, key) == 0) {
            cache[i].last_use = ++cache_clock;
            *out = hull_seccomp_filter_ref(cache[i].filter);
            break;
        }
    pthread_mutex_unlock(&cache_lock);
    if (*out) {
        free(key);
        return 0;
    }

    /* Compile outside the lock: two threads racing on one new profile both
     * compile it, and the second insert simply replaces nothing. */
    struct hull_seccomp_filter *f = disk_load(key);
    if (f == NULL) {
        if (hull_seccomp_compile_uncached(spec, &f, err) < 0) {
            free(key);
            return -1;
        }
        disk_store(key, f);
    }

    pthread_mutex_lock(&cache_lock);
    struct slot *victim = &cache[0];
    for (size_t i = 0; i < CACHE_SLOTS; i++) {
        if (cache[i].key && strcmp(cache[i].key, key) == 0) {
            victim = NULL; /* another thread won the race; keep its entry */
            break;
        }
        if (cache[i].key == NULL || cache[i].last_use < victim->last_use)
            victim = &cache[i];
        if (cache[i].key == NULL)
            break;
    }
    struct hull_seccomp_filter *old = NULL;
    char *old_key = key;
    if (victim) {
        old = victim->filter;
        old_key = victim->key;
        victim->key = key;
        victim->filter = hull_seccomp_filter_ref(f);
        victim->last_use = ++cache_clock;
    }
    pthread_mutex_unlock(&cache_lock);
    free(old_key);
    hull_seccomp_filter_free(old);
    *out = f;
    return 0;
}

void hull_seccomp_cache_clear(void)
{
    pthread_mutex_lock(&cache_lock);
    for (size_t i = 0; i < CACHE_SLOTS; i++) {
        free(cache[i].key);
        hull_seccomp_filter_free(cache[i].filter);
        cache[i] = (struct slot){0};
    }
    pthread_mutex_unlock(&cache_lock);
}
