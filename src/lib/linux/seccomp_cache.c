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
 */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "linux/seccomp.h"
#include "util/error.h"

#define CACHE_SLOTS 8

struct slot {
    char *key;
    struct hull_seccomp_filter *filter;
    unsigned long last_use;
};

static pthread_mutex_t cache_lock = PTHREAD_MUTEX_INITIALIZER;
static struct slot cache[CACHE_SLOTS];
static unsigned long cache_clock;

/* Strings are written with their length so that no separator can be forged
 * by a name containing it. */
static void put_str(FILE *m, const char *s)
{
    if (s == NULL)
        fputs("-;", m);
    else
        fprintf(m, "%zu:%s;", strlen(s), s);
}

static void put_strv(FILE *m, char *const *v)
{
    size_t n = 0;
    while (v && v[n])
        n++;
    fprintf(m, "%c%zu[", v ? 'v' : '-', n);
    for (size_t i = 0; i < n; i++)
        put_str(m, v[i]);
    fputc(']', m);
}

static char *cache_key(const struct hull_seccomp *s)
{
    char *buf = NULL;
    size_t len = 0;
    FILE *m = open_memstream(&buf, &len);
    if (m == NULL)
        return NULL;
    put_str(m, s->default_action);
    fprintf(m, "%d,%u", s->has_default_errno_ret, s->default_errno_ret);
    put_strv(m, s->architectures);
    put_strv(m, s->flags);
    /* listenerPath/metadata do not change the program: not part of the key */
    fprintf(m, "n%zu{", s->n_syscalls);
    for (size_t i = 0; i < s->n_syscalls; i++) {
        const struct hull_seccomp_rule *r = &s->syscalls[i];
        put_strv(m, r->names);
        put_str(m, r->action);
        fprintf(m, "%d,%u,%zu(", r->has_errno_ret, r->errno_ret, r->n_args);
        for (size_t j = 0; j < r->n_args; j++) {
            const struct hull_seccomp_arg *a = &r->args[j];
            fprintf(m, "%u,%llx,%llx,", a->index, (unsigned long long)a->value,
                    (unsigned long long)a->value_two);
            put_str(m, a->op);
        }
        fputc(')', m);
    }
    fputc('}', m);
    if (fclose(m) != 0) {
        free(buf);
        return NULL;
    }
    return buf;
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
    struct hull_seccomp_filter *f;
    if (hull_seccomp_compile_uncached(spec, &f, err) < 0) {
        free(key);
        return -1;
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
