/* What seccomp costs a hull run, with the built-in sandbox profile:
 *   compile     libseccomp compile + BPF export (hull_seccomp_compile_uncached)
 *   cached      hull_seccomp_compile on a profile already compiled
 *   load        the seccomp(2) install in a fresh child (precompiled filter)
 *   naive       compile in the child, then load (what precompiling saves)
 *   syscalls    getppid (unconditionally allowed: the kernel's action
 *               cache skips the BPF) and personality(0xffffffff) (has
 *               argument checks: the BPF runs), with and without the filter
 * Figures are medians over many runs; run it via bench/seccomp.sh.
 */
#include <stdio.h>
#include <stdlib.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "linux/seccomp.h"

static double now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e6 + ts.tv_nsec / 1e3;
}

static int cmp(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static double median(double *v, int n)
{
    qsort(v, (size_t)n, sizeof(*v), cmp);
    return v[n / 2];
}

static void check(int rc, hull_error *err)
{
    if (rc < 0) {
        fprintf(stderr, "seccomp_bench: %s\n", hull_error_msg(*err));
        exit(1);
    }
}

/* Time one step in n fresh children; what: 0 load, 1 compile+load,
 * 2 getppid loop, 3 personality loop (2, 3: per syscall, ns). */
static double in_children(const struct hull_seccomp_filter *f, int what, int n, int loops)
{
    double *v = calloc((size_t)n, sizeof(*v));
    for (int i = 0; i < n; i++) {
        int p[2];
        if (pipe(p) < 0)
            exit(1);
        pid_t pid = fork();
        if (pid == 0) {
            hull_error err = NULL;
            struct hull_seccomp_filter *g = NULL;
            prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0);
            double t0 = now_us();
            if (what == 1)
                check(hull_seccomp_compile_uncached(hull_seccomp_default_sandbox(), &g, &err),
                      &err);
            if (f)
                check(hull_seccomp_load(g ? g : f, NULL, &err), &err);
            double t = now_us() - t0;
            if (what >= 2) {
                t0 = now_us();
                for (int k = 0; k < loops; k++)
                    what == 2 ? syscall(SYS_getppid) : syscall(SYS_personality, 0xffffffffL);
                t = (now_us() - t0) * 1000.0 / loops;
            }
            if (write(p[1], &t, sizeof(t)) != sizeof(t))
                _exit(1);
            _exit(0);
        }
        close(p[1]);
        if (read(p[0], &v[i], sizeof(v[i])) != sizeof(v[i]))
            exit(1);
        close(p[0]);
        waitpid(pid, NULL, 0);
    }
    double m = median(v, n);
    free(v);
    return m;
}

int main(void)
{
    hull_error err = NULL;
    const struct hull_seccomp *def = hull_seccomp_default_sandbox();
    enum { N = 200 };
    double v[N];
    struct hull_seccomp_filter *f = NULL;

    for (int i = 0; i < N; i++) {
        double t0 = now_us();
        check(hull_seccomp_compile_uncached(def, &f, &err), &err);
        v[i] = now_us() - t0;
        if (i < N - 1)
            hull_seccomp_filter_free(f);
    }
    printf("default profile: %zu BPF instructions\n", hull_seccomp_filter_len(f));
    printf("compile (uncached)        %8.1f us\n", median(v, N));

    struct hull_seccomp_filter *c = NULL;
    check(hull_seccomp_compile(def, &c, &err), &err);
    hull_seccomp_filter_free(c);
    for (int i = 0; i < N; i++) {
        double t0 = now_us();
        check(hull_seccomp_compile(def, &c, &err), &err);
        v[i] = now_us() - t0;
        hull_seccomp_filter_free(c);
    }
    printf("compile (cached)          %8.1f us\n", median(v, N));

    /* the kernel's fixed cost, for scale: an allow-all filter */
    struct hull_seccomp allow = {.default_action = "SCMP_ACT_ALLOW"};
    struct hull_seccomp_filter *a = NULL;
    check(hull_seccomp_compile_uncached(&allow, &a, &err), &err);
    printf("load, allow-all (%zu insns) %6.1f us\n", hull_seccomp_filter_len(a),
           in_children(a, 0, N, 0));
    hull_seccomp_filter_free(a);
    printf("load, precompiled         %8.1f us\n", in_children(f, 0, N, 0));
    printf("compile+load in the child %8.1f us\n", in_children(f, 1, N, 0));
    const int loops = 200000;
    printf("getppid, no filter        %8.1f ns\n", in_children(NULL, 2, 9, loops));
    printf("getppid, filter           %8.1f ns\n", in_children(f, 2, 9, loops));
    printf("personality, no filter    %8.1f ns\n", in_children(NULL, 3, 9, loops));
    printf("personality, filter       %8.1f ns\n", in_children(f, 3, 9, loops));
    hull_seccomp_filter_free(f);
    hull_seccomp_cache_clear();
    return 0;
}
