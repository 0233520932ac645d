/* image_build: the Containerfile, one instruction at a time, into layers
 * and a config; the cache; the commit. The steps themselves are in
 * build_step.c; running a command in build_run.c, copying in build_copy.c.
 *
 * The build runs in a forked child with a private mount namespace (/ made
 * rslave first), so a killed build leaves no mount and its containers die
 * with it (their init has PR_SET_PDEATHSIG). The child reports the digest or
 * the error on a pipe. */
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <poll.h>
#include <sys/file.h>
#include <sys/signalfd.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "image/build_internal.h"
#include "util/error.h"
#include "util/fs.h"
#include "util/log.h"
#include "util/strv.h"

void builder_log(struct builder *b, const char *fmt, ...)
{
    if (b->o->quiet || b->log == NULL)
        return;
    va_list ap;
    va_start(ap, fmt);
    vfprintf(b->log, fmt, ap);
    va_end(ap);
    fflush(b->log);
}

/* ---- the temporary area: <root>/hull/tmp/build-XXXXXX, locked while used ---- */

/* Remove what killed builds left: their directories whose lock nobody holds. */
static void sweep_stale(int tmpfd)
{
    cleanup_close int dfd = openat(tmpfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    DIR *d = dfd >= 0 ? fdopendir(dfd) : NULL;
    if (d == NULL)
        return;
    dfd = -1; /* the DIR owns it now */
    cleanup_dir DIR *dir = d;
    struct dirent *de;
    while ((de = readdir(dir)) != NULL) {
        if (strncmp(de->d_name, "build-", 6) != 0)
            continue;
        char lock[300];
        snprintf(lock, sizeof(lock), "%s/lock", de->d_name);
        cleanup_close int lfd = openat(tmpfd, lock, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
        if (lfd >= 0 && flock(lfd, LOCK_EX | LOCK_NB) < 0)
            continue; /* a build running now */
        hull_error e = NULL;
        if (hull_rm_rf_at(tmpfd, de->d_name, &e) < 0)
            hull_warn("image build: removing %s left by an earlier build: %s", de->d_name,
                      hull_error_msg(e));
        else
            hull_debug("image build: removed %s left by an earlier build", de->d_name);
        hull_error_free(&e);
    }
}

static int tmp_create(struct builder *b, hull_error *err)
{
    char path[4096];
    snprintf(path, sizeof(path), "%s/hull/tmp", b->s->root);
    if (hull_mkdir_p(path, 0700, err) < 0)
        return -1;
    cleanup_close int tmpfd = open(path, O_PATH | O_DIRECTORY | O_CLOEXEC);
    if (tmpfd < 0)
        return hull_error_errno(err, "open %s", path);
    sweep_stale(tmpfd);
    /* Made as new-XXXXXX and renamed once its lock is held: the sweep of a
     * build starting at the same moment never sees it unlocked. */
    cleanup_free char *fresh = NULL;
    if (asprintf(&fresh, "%s/new-XXXXXX", path) < 0)
        return hull_error_set(err, ENOMEM, "out of memory");
    if (mkdtemp(fresh) == NULL)
        return hull_error_errno(err, "mkdtemp in %s", path);
    char lock[4200];
    snprintf(lock, sizeof(lock), "%s/lock", fresh);
    b->tmp_lock = open(lock, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (b->tmp_lock < 0 || flock(b->tmp_lock, LOCK_EX) < 0 ||
        asprintf(&b->tmp, "%s/build-%s", path, strrchr(fresh, '-') + 1) < 0 ||
        rename(fresh, b->tmp) < 0) {
        hull_error_errno(err, "temporary directory %s", fresh);
        free(b->tmp);
        b->tmp = steal_ptr(&fresh); /* removed by tmp_remove */
        return -1;
    }
    return 0;
}

static void tmp_remove(struct builder *b)
{
    if (b->tmp == NULL)
        return;
    char *slash = strrchr(b->tmp, '/');
    *slash = '\0';
    cleanup_close int parent = open(b->tmp, O_PATH | O_DIRECTORY | O_CLOEXEC);
    *slash = '/';
    hull_error e = NULL;
    if (parent < 0 || hull_rm_rf_at(parent, slash + 1, &e) < 0)
        hull_warn("image build: cleanup of %s: %s", b->tmp,
                  parent < 0 ? strerror(errno) : hull_error_msg(e));
    hull_error_free(&e);
    free(b->tmp);
    b->tmp = NULL;
    hull_closep(&b->tmp_lock);
}

static void builder_free(struct builder *b)
{
    tmp_remove(b);
    hull_closep(&b->pin);
    containerfile_free(&b->cf);
    hull_closep(&b->context_fd);
    hull_strv_free(b->ignore);
    hull_strv_free(b->global_args);
    hull_strv_free(b->args);
    free(b->arg_used);
    json_object_put(b->config);
    for (size_t i = 0; i < b->n_layers; i++) {
        image_desc_free(&b->layers[i]);
        free(b->diff_ids[i]);
    }
    free(b->layers);
    free(b->diff_ids);
    free(b->tag);
}

/* ---- reading the input ---- */

static int read_containerfile(struct builder *b, hull_error *err)
{
    const struct image_build_opts *o = b->o;
    cleanup_free char *path = NULL;
    if (o->containerfile) {
        path = strdup(o->containerfile);
    } else {
        static const char *const names[] = {"Containerfile", "Dockerfile"};
        for (size_t i = 0; i < 2 && path == NULL; i++) {
            char *p = NULL;
            if (asprintf(&p, "%s/%s", o->context_dir, names[i]) < 0)
                return hull_error_set(err, ENOMEM, "out of memory");
            if (access(p, F_OK) == 0)
                path = p;
            else
                free(p);
        }
        if (path == NULL)
            return hull_error_set(err, ENOENT, "no Containerfile or Dockerfile in %s (use -f FILE)",
                                  o->context_dir);
    }
    if (path == NULL)
        return hull_error_set(err, ENOMEM, "out of memory");
    cleanup_free char *text = NULL;
    size_t len = 0;
    /* At most 16 MiB (far above any real one): -f /dev/zero is refused,
     * not read until memory runs out. */
    if (hull_read_file_max(path, (size_t)16 << 20, &text, &len, err) < 0)
        return -1;
    const char *slash = strrchr(path, '/');
    return containerfile_parse(text, len, slash ? slash + 1 : path, &b->cf, err);
}

static int open_context(struct builder *b, hull_error *err)
{
    b->context_fd = open(b->o->context_dir, O_PATH | O_DIRECTORY | O_CLOEXEC);
    if (b->context_fd < 0)
        return hull_error_errno(err, "build context %s", b->o->context_dir);
    return build_ignore_load(b->context_fd, &b->ignore, err);
}

/* --build-arg K=V (or K alone: the value from our environment, as podman). */
static int check_build_args(struct builder *b, hull_error *err)
{
    size_t n = hull_strv_len(b->o->build_args);
    b->arg_used = calloc(n + 1, sizeof(bool));
    if (b->arg_used == NULL)
        return hull_error_set(err, ENOMEM, "out of memory");
    for (size_t i = 0; i < n; i++)
        if (b->o->build_args[i][0] == '=' || b->o->build_args[i][0] == '\0')
            return hull_error_set(err, EINVAL, "--build-arg %s: must be NAME=VALUE",
                                  b->o->build_args[i]);
    return 0;
}

/* The --build-arg value of name (marking it used), or NULL. */
const char *builder_build_arg(struct builder *b, const char *name)
{
    size_t nl = strlen(name);
    const char *found = NULL;
    for (size_t i = 0; b->o->build_args && b->o->build_args[i]; i++) {
        const char *a = b->o->build_args[i];
        if (strncmp(a, name, nl) == 0 && (a[nl] == '=' || a[nl] == '\0')) {
            b->arg_used[i] = true;
            found = a[nl] == '=' ? a + nl + 1 : getenv(name);
        }
    }
    return found;
}

static void warn_unused_build_args(struct builder *b)
{
    cleanup_free char *list = NULL;
    size_t len = 0;
    for (size_t i = 0; b->o->build_args && b->o->build_args[i]; i++) {
        if (b->arg_used[i])
            continue;
        const char *a = b->o->build_args[i];
        size_t n = strcspn(a, "=");
        char *l = realloc(list, len + n + 2);
        if (l == NULL)
            return;
        list = l;
        if (len)
            list[len++] = ' ';
        memcpy(list + len, a, n);
        len += n;
        list[len] = '\0';
    }
    if (list)
        fprintf(b->log ? b->log : stderr,
                "[Warning] one or more build args were not consumed: [%s]\n", list);
}

/* ---- the build ---- */

/* The signals that stop a build. The child keeps them blocked and looks at
 * them between steps (and RUN while its command runs, see build_run.c), so
 * an interrupted build still removes what it made. */
static void stop_signals(sigset_t *set)
{
    sigemptyset(set);
    sigaddset(set, SIGINT);
    sigaddset(set, SIGTERM);
    sigaddset(set, SIGHUP);
    sigaddset(set, SIGQUIT);
}

static bool stop_requested(void)
{
    sigset_t pending, stop;
    stop_signals(&stop);
    if (sigpending(&pending) < 0)
        return false;
    for (int sig = 1; sig < NSIG; sig++)
        if (sigismember(&stop, sig) == 1 && sigismember(&pending, sig) == 1)
            return true;
    return false;
}

static int build_all(struct builder *b, char **digest, hull_error *err)
{
    const struct image_build_opts *o = b->o;
    if (o->tag) {
        cleanup_image_ref struct image_ref ref = {0};
        if (image_ref_parse(o->tag, &ref, err) < 0)
            return hull_error_prefix(err, "-t %s", o->tag);
        if ((b->tag = image_ref_name(&ref)) == NULL)
            return hull_error_set(err, ENOMEM, "out of memory");
    }
    if (check_build_args(b, err) < 0 || open_context(b, err) < 0 || read_containerfile(b, err) < 0)
        return -1;
    /* ARGs before FROM are the only thing allowed there; FROM once. */
    size_t i = 0;
    while (i < b->cf.n && b->cf.v[i].op == CF_ARG)
        i++;
    if (i == b->cf.n || b->cf.v[i].op != CF_FROM)
        return hull_error_set(err, EINVAL, "%s:%d: the first instruction must be FROM", b->cf.name,
                              i < b->cf.n ? b->cf.v[i].line : 1);
    for (size_t j = i + 1; j < b->cf.n; j++)
        if (b->cf.v[j].op == CF_FROM)
            return hull_error_set(err, ENOTSUP,
                                  "%s:%d: a second FROM: multi-stage builds are not supported",
                                  b->cf.name, b->cf.v[j].line);
    /* Blobs written before the commit names them: prune keeps away. */
    if (tmp_create(b, err) < 0 || (b->pin = image_store_pin(b->s, err)) < 0)
        return -1;
    b->n_steps = (int)(b->cf.n - i);
    for (size_t j = 0; j < b->cf.n; j++) {
        struct cf_instr *in = &b->cf.v[j];
        if (j >= i)
            b->step++;
        if (stop_requested())
            return hull_error_set(err, EINTR, "interrupted before step %d/%d", b->step, b->n_steps);
        if (builder_step(b, in, j < i, err) < 0)
            return -1;
    }
    if (stop_requested())
        return hull_error_set(err, EINTR, "interrupted before the commit");
    warn_unused_build_args(b);
    if (b->tag)
        builder_log(b, "COMMIT %s\n", b->tag);
    else
        builder_log(b, "COMMIT\n");
    if (image_commit(b->s, b->tag, b->config, b->layers, b->diff_ids, b->n_layers, digest, err) < 0)
        return hull_error_prefix(err, "commit");
    builder_log(b, "--> %.12s\n", *digest + 7);
    if (b->tag)
        builder_log(b, "Successfully tagged %s\n", b->tag);
    return 0;
}

/* The child: write "0<digest>" or "<code>:<message>" to fd. */
static __attribute__((noreturn)) void
build_child(struct image_store *s, const struct image_build_opts *o, int fd, pid_t parent)
{
    sigset_t stop;
    stop_signals(&stop);
    sigprocmask(SIG_BLOCK, &stop, NULL);
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (getppid() != parent)
        _exit(3); /* the caller died before the death signal was armed */
    hull_error err = NULL;
    cleanup_free char *digest = NULL;
    struct builder b = {.s = s,
                        .o = o,
                        .log = o->log ? o->log : stderr,
                        .context_fd = -1,
                        .tmp_lock = -1,
                        .pin = -1};
    int r;
    if (unshare(CLONE_NEWNS) < 0)
        r = hull_error_errno(&err, "unshare(CLONE_NEWNS)");
    else if (mount(NULL, "/", NULL, MS_REC | MS_SLAVE, NULL) < 0)
        r = hull_error_errno(&err, "make / rslave");
    else
        r = build_all(&b, &digest, &err);
    builder_free(&b);
    cleanup_free char *msg = NULL;
    if (r == 0 ? asprintf(&msg, "0%s", digest) < 0
               : asprintf(&msg, "%d:%s", hull_error_code(err) ? hull_error_code(err) : EIO,
                          hull_error_msg(err)) < 0)
        _exit(3);
    size_t len = strlen(msg);
    for (size_t off = 0; off < len;) {
        ssize_t w = write(fd, msg + off, len - off);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            _exit(3);
        off += (size_t)w;
    }
    fflush(NULL);
    _exit(r == 0 ? 0 : 1);
}

/* Read the child's report, passing on the stop signals we receive. */
static int wait_report(pid_t child, int fd, const sigset_t *stop, char **msg, size_t *len,
                       hull_error *err)
{
    cleanup_close int sfd = signalfd(-1, stop, SFD_CLOEXEC);
    if (sfd < 0)
        return hull_error_errno(err, "signalfd");
    size_t cap = 0;
    for (;;) {
        struct pollfd pf[2] = {{.fd = fd, .events = POLLIN}, {.fd = sfd, .events = POLLIN}};
        if (poll(pf, 2, -1) < 0) {
            if (errno == EINTR)
                continue;
            return hull_error_errno(err, "poll");
        }
        if (pf[1].revents & POLLIN) {
            struct signalfd_siginfo si;
            if (read(sfd, &si, sizeof(si)) == sizeof(si))
                kill(child, (int)si.ssi_signo);
        }
        if (!(pf[0].revents & (POLLIN | POLLHUP)))
            continue;
        if (*len + 4096 + 1 > cap) {
            char *m = realloc(*msg, cap = *len + 8192);
            if (m == NULL)
                return hull_error_set(err, ENOMEM, "out of memory");
            *msg = m;
        }
        ssize_t n = read(fd, *msg + *len, 4096);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return hull_error_errno(err, "reading the build's report");
        if (n == 0)
            break;
        *len += (size_t)n;
    }
    if (*msg == NULL && (*msg = calloc(1, 1)) == NULL)
        return hull_error_set(err, ENOMEM, "out of memory");
    (*msg)[*len] = '\0';
    return 0;
}

int image_build(struct image_store *s, const struct image_build_opts *o, char **manifest_digest,
                hull_error *err)
{
    *manifest_digest = NULL;
    if (o->context_dir == NULL)
        return hull_error_set(err, EINVAL, "no build context given");
    if (geteuid() != 0)
        return hull_error_set(err, EPERM,
                              "needs root: RUN uses namespaces and overlay mounts (running as "
                              "uid %u)",
                              (unsigned)geteuid());
    int p[2];
    if (pipe2(p, O_CLOEXEC) < 0)
        return hull_error_errno(err, "pipe");
    /* INT, TERM, HUP, QUIT to us go to the child, which stops at the next
     * step (or kills a running RUN) and cleans up; blocked before the fork,
     * so none is lost in between. */
    sigset_t stop, old;
    stop_signals(&stop);
    sigprocmask(SIG_BLOCK, &stop, &old);
    fflush(NULL); /* nothing buffered before the fork is written twice */
    pid_t parent = getpid();
    pid_t pid = fork();
    if (pid < 0) {
        sigprocmask(SIG_SETMASK, &old, NULL);
        close(p[0]);
        close(p[1]);
        return hull_error_errno(err, "fork");
    }
    if (pid == 0) {
        close(p[0]);
        build_child(s, o, p[1], parent);
    }
    close(p[1]);
    cleanup_free char *msg = NULL;
    size_t len = 0;
    int rr = wait_report(pid, p[0], &stop, &msg, &len, err);
    close(p[0]);
    int status = -1;
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
        ;
    sigprocmask(SIG_SETMASK, &old, NULL);
    if (rr < 0)
        return -1;
    if (len > 1 && msg[0] == '0' && WIFEXITED(status) && WEXITSTATUS(status) == 0) {
        *manifest_digest = strdup(msg + 1);
        return *manifest_digest ? 0 : hull_error_set(err, ENOMEM, "out of memory");
    }
    char *colon = len ? strchr(msg, ':') : NULL;
    if (colon)
        return hull_error_set(err, atoi(msg), "%s", colon + 1);
    if (status >= 0 && WIFSIGNALED(status))
        return hull_error_set(err, EINTR, "the build process was killed by signal %d",
                              WTERMSIG(status));
    return hull_error_set(err, EIO, "the build process failed (status %d)", status);
}
