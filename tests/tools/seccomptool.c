/* seccomptool: drive libhull's seccomp code from tests, in real processes.
 *
 *   seccomptool [--no-nnp] [--debug] compile PROFILE
 *       compile; print "insns=N hash=H" (H: FNV-1a of the BPF program)
 *   seccomptool print-default
 *       print the built-in sandbox profile (OCI JSON)
 *   seccomptool [opts] syscall PROFILE NAME|NR [ARG...]
 *   seccomptool [opts] int80 PROFILE NR [ARG...]
 *       fork; the child loads the filter and makes one raw syscall (int80:
 *       a 32-bit one through int $0x80) and prints "ret=R errno=E"; when
 *       the child is killed the parent prints "signal=N"
 *   seccomptool [opts] exec PROFILE PROG [ARG...]
 *       fork; the child loads the filter and execs PROG; exits with PROG's
 *       status (128+N and "signal=N" when killed)
 *
 * PROFILE is a JSON file holding a linux.seccomp object (or a whole
 * config.json), "default" for the built-in profile, "none" for no filter.
 * ARG is a number (0x.. ok), "buf" (a 4 KiB buffer) or "str:TEXT" (a string
 * below 4 GiB, so 32-bit syscalls can take it too).
 * The child sets no_new_privs first unless --no-nnp (then it relies on
 * CAP_SYS_ADMIN). With an SCMP_ACT_NOTIFY profile the child hands the
 * listener fd to the parent (its number over a socketpair; the parent takes
 * it with pidfd_getfd), and the parent sends it to listenerPath with
 * hull_seccomp_send_listener -- the runtime's flow -- before the child goes on.
 */
#include <errno.h>
#include <seccomp.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "linux/seccomp.h"
#include "spec/spec.h"
#include "util/error.h"
#include "util/json.h"
#include "util/log.h"

static bool opt_nnp = true;

static int die(hull_error *err, const char *what)
{
    fprintf(stderr, "seccomptool: %s: %s\n", what, hull_error_msg(*err));
    hull_error_free(err);
    exit(1);
}

/* Load PROFILE into *out (NULL for "none"); *owned says whether to free it. */
static const struct hull_seccomp *profile_load(const char *arg, struct hull_seccomp *owned)
{
    hull_error err = NULL;
    if (strcmp(arg, "none") == 0)
        return NULL;
    if (strcmp(arg, "default") == 0) {
        const struct hull_seccomp *p = hull_seccomp_default_sandbox();
        if (p == NULL) {
            fprintf(stderr, "seccomptool: default profile: out of memory\n");
            exit(1);
        }
        return p;
    }
    json_object *doc = NULL;
    if (hj_parse_file(arg, &doc, &err) < 0)
        die(&err, arg);
    json_object *obj = doc, *lx = hj_get(doc, "linux");
    if (lx)
        obj = hj_get(lx, "seccomp");
    int rc = hull_seccomp_parse(obj, "linux.seccomp", owned, &err);
    json_object_put(doc);
    if (rc < 0)
        die(&err, arg);
    return owned;
}

static struct hull_seccomp_filter *compile(const struct hull_seccomp *p, const char *what)
{
    hull_error err = NULL;
    struct hull_seccomp_filter *f = NULL;
    if (p && hull_seccomp_compile(p, &f, &err) < 0)
        die(&err, what);
    return f;
}

static long arg_value(const char *s)
{
    static char buf[4096];
    if (strcmp(s, "buf") == 0)
        return (long)buf;
    if (strncmp(s, "str:", 4) == 0) {
        size_t n = strlen(s + 4) + 1;
        char *m =
            mmap(NULL, n, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_32BIT, -1, 0);
        if (m == MAP_FAILED) {
            perror("seccomptool: mmap");
            exit(1);
        }
        memcpy(m, s + 4, n);
        return (long)m;
    }
    char *end;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 0);
    if (errno || *end) {
        fprintf(stderr, "seccomptool: bad argument '%s'\n", s);
        exit(2);
    }
    return (long)v;
}

#if defined(__x86_64__)
/* The i386 ABI from a 64-bit process: number in eax, args in ebx, ecx,
 * edx, esi, edi. The kernel sees AUDIT_ARCH_I386. */
static long int80(long nr, const long *a)
{
    long ret;
    /* the compat entry zeroes r8-r11 on the way back */
    __asm__ volatile("int $0x80"
                     : "=a"(ret)
                     : "a"(nr), "b"(a[0]), "c"(a[1]), "d"(a[2]), "S"(a[3]), "D"(a[4])
                     : "memory", "r8", "r9", "r10", "r11");
    return ret;
}
#endif

/* In the child: load the filter (after no_new_privs unless told not to) and,
 * for a NOTIFY profile, hand the listener fd over and wait for the parent. */
static void child_setup(const struct hull_seccomp_filter *f, int sync)
{
    hull_error err = NULL;
    if (f == NULL)
        return;
    if (opt_nnp && prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0) {
        perror("seccomptool: PR_SET_NO_NEW_PRIVS");
        _exit(125);
    }
    int nfd = -1;
    if (hull_seccomp_load(f, &nfd, &err) < 0) {
        fprintf(stderr, "seccomptool: %s\n", hull_error_msg(err));
        _exit(125);
    }
    if (nfd >= 0) {
        char go;
        if (write(sync, &nfd, sizeof(nfd)) != sizeof(nfd) || read(sync, &go, 1) != 1 || go != 1)
            _exit(125);
        close(nfd);
    }
    close(sync);
}

/* In the parent: for a NOTIFY profile, take the child's listener fd and
 * send it to listenerPath, then let the child go on. */
static void parent_listener(const struct hull_seccomp *p, const struct hull_seccomp_filter *f,
                            pid_t child, int sync)
{
    hull_error err = NULL;
    if (f == NULL || !hull_seccomp_needs_listener(f))
        return;
    int remote;
    if (read(sync, &remote, sizeof(remote)) != sizeof(remote)) {
        fprintf(stderr, "seccomptool: the child did not report its listener fd\n");
        exit(1);
    }
    int pidfd = (int)syscall(SYS_pidfd_open, child, 0);
    int fd = pidfd < 0 ? -1 : (int)syscall(SYS_pidfd_getfd, pidfd, remote, 0);
    if (fd < 0) {
        perror("seccomptool: pidfd_getfd");
        exit(1);
    }
    char state[256];
    snprintf(state, sizeof(state),
             "{\"ociVersion\": \"%s\", \"id\": \"seccomptool\", \"status\": \"creating\", "
             "\"pid\": %d, \"bundle\": \"/\"}",
             HULL_OCI_VERSION, (int)child);
    if (hull_seccomp_send_listener(p->listener_path, fd, p->listener_metadata, state, child, &err) <
        0) {
        kill(child, SIGKILL);
        waitpid(child, NULL, 0);
        die(&err, "sending the listener");
    }
    close(fd);
    close(pidfd);
    char go = 1;
    if (write(sync, &go, 1) != 1)
        exit(1);
}

static int run_child(const struct hull_seccomp *p, const struct hull_seccomp_filter *f,
                     int (*body)(char **), char **argv)
{
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0) {
        perror("seccomptool: socketpair");
        return 1;
    }
    fflush(NULL);
    pid_t pid = fork();
    if (pid < 0) {
        perror("seccomptool: fork");
        return 1;
    }
    if (pid == 0) {
        close(sv[0]);
        child_setup(f, sv[1]);
        _exit(body(argv));
    }
    close(sv[1]);
    parent_listener(p, f, pid, sv[0]);
    close(sv[0]);
    int status;
    while (waitpid(pid, &status, 0) < 0)
        if (errno != EINTR) {
            perror("seccomptool: waitpid");
            return 1;
        }
    if (WIFSIGNALED(status)) {
        printf("signal=%d\n", WTERMSIG(status));
        return 128 + WTERMSIG(status);
    }
    return WEXITSTATUS(status);
}

static void report(long ret, int e)
{
    printf("ret=%ld errno=%d\n", ret, ret < 0 ? e : 0);
    fflush(stdout);
}

static int body_syscall(char **argv)
{
    long nr;
    if (argv[0][0] >= '0' && argv[0][0] <= '9')
        nr = arg_value(argv[0]);
    else if ((nr = seccomp_syscall_resolve_name(argv[0])) < 0) {
        fprintf(stderr, "seccomptool: unknown syscall '%s'\n", argv[0]);
        return 2;
    }
    long a[6] = {0};
    for (int i = 0; i < 6 && argv[i + 1]; i++)
        a[i] = arg_value(argv[i + 1]);
    errno = 0;
    long r = syscall(nr, a[0], a[1], a[2], a[3], a[4], a[5]);
    int e = errno;
    if (r == 0 && (nr == SYS_clone || nr == SYS_fork || nr == SYS_clone3))
        _exit(0); /* the new child of a successful clone/fork */
    report(r, e);
    if (r > 0 && (nr == SYS_clone || nr == SYS_fork))
        waitpid((pid_t)r, NULL, __WALL);
    return 0;
}

static int body_int80(char **argv)
{
#if defined(__x86_64__)
    long a[6] = {0};
    for (int i = 0; i < 5 && argv[i + 1]; i++)
        a[i] = arg_value(argv[i + 1]);
    long r = int80(arg_value(argv[0]), a);
    report(r < 0 && r > -4096 ? -1 : r, r < 0 && r > -4096 ? (int)-r : 0);
    return 0;
#else
    fprintf(stderr, "seccomptool: int80 exists only on x86_64\n");
    return 2;
#endif
}

static int body_exec(char **argv)
{
    execvp(argv[0], argv);
    fprintf(stderr, "seccomptool: exec %s: %s\n", argv[0], strerror(errno));
    return 127;
}

static int usage(void)
{
    fprintf(stderr, "usage: seccomptool [--no-nnp] [--debug] compile|print-default|syscall|"
                    "int80|exec PROFILE ...\n");
    return 2;
}

int main(int argc, char **argv)
{
    int i = 1;
    for (; i < argc && strncmp(argv[i], "--", 2) == 0; i++) {
        if (strcmp(argv[i], "--no-nnp") == 0)
            opt_nnp = false;
        else if (strcmp(argv[i], "--debug") == 0)
            hull_log_set_debug(true);
        else
            return usage();
    }
    if (i >= argc)
        return usage();
    const char *cmd = argv[i++];
    if (strcmp(cmd, "print-default") == 0) {
        const char *text = hull_seccomp_default_sandbox_json();
        if (text == NULL)
            return 1;
        puts(text);
        return 0;
    }
    if (i >= argc)
        return usage();
    const char *pname = argv[i++];
    struct hull_seccomp owned = {0};
    const struct hull_seccomp *p = profile_load(pname, &owned);
    struct hull_seccomp_filter *f = compile(p, pname);
    int rc;
    if (strcmp(cmd, "compile") == 0) {
        const unsigned char *b = f ? hull_seccomp_filter_insns(f) : NULL;
        size_t len = f ? hull_seccomp_filter_len(f) : 0;
        uint64_t h = 0xcbf29ce484222325ULL;
        for (size_t k = 0; k < len * 8; k++)
            h = (h ^ b[k]) * 0x100000001b3ULL;
        printf("insns=%zu hash=%016llx\n", len, (unsigned long long)h);
        rc = 0;
    } else if (i >= argc) {
        rc = usage();
    } else if (strcmp(cmd, "syscall") == 0) {
        rc = run_child(p, f, body_syscall, argv + i);
    } else if (strcmp(cmd, "int80") == 0) {
        rc = run_child(p, f, body_int80, argv + i);
    } else if (strcmp(cmd, "exec") == 0) {
        rc = run_child(p, f, body_exec, argv + i);
    } else {
        rc = usage();
    }
    hull_seccomp_filter_free(f);
    hull_seccomp_cache_clear();
    hull_seccomp_free(&owned);
    return rc;
}
