/* RUN: the command in a hull container on the mounted image. The spec is
 * what `hull spec` writes (capabilities, masked and read-only paths,
 * namespaces: pid, network, ipc, uts, mount, cgroup) plus hull's built-in
 * seccomp profile (the sandbox's: the command is real root of the host's
 * user namespace, so the kernel surface it reaches is cut down as Docker's
 * default profile does for builds), with the image's
 * environment, working directory and user, real root (no user namespace),
 * no terminal, stdin /dev/null, and no cgroup of its own: the build is a
 * short-lived child of the builder, and a container without a cgroup
 * leaves nothing behind when the builder is killed (the init dies with
 * it, and the pid namespace with the init). */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "container/container.h"
#include "container/sync.h"
#include "image/build.h"
#include "util/error.h"
#include "util/fs.h"
#include "util/json.h"
#include "util/log.h"
#include "util/strv.h"

/* name or number in an /etc/passwd or /etc/group of the image: its id (and
 * for passwd its group in *gid and its home directory in home). */
static int lookup_id(int rootfd, const char *file, const char *name, unsigned *id, unsigned *gid,
                     char home[PATH_MAX], hull_error *err)
{
    char *end;
    unsigned long n = strtoul(name, &end, 10);
    bool numeric = *name && *end == '\0';
    cleanup_close int fd = hull_resolve_in_root(rootfd, file, 0, err);
    cleanup_free char *text = NULL;
    size_t len = 0;
    if (fd < 0 || hull_read_file(hull_fd_path((char[32]){0}, fd), &text, &len, err) < 0) {
        if (!numeric)
            return hull_error_prefix(err, "USER %s: no %s in the image", name, file);
        hull_error_free(err); /* a number needs no file */
        *id = (unsigned)n;
        return 0;
    }
    for (char *line = strtok(text, "\n"); line; line = strtok(NULL, "\n")) {
        char *f[7] = {0};
        char *p = line;
        for (int i = 0; i < 7 && p; i++) {
            f[i] = p;
            p = strchr(p, ':');
            if (p)
                *p++ = '\0';
        }
        if (f[2] == NULL)
            continue;
        unsigned long fid = strtoul(f[2], NULL, 10);
        if (strcmp(f[0], name) == 0 || (numeric && fid == n)) {
            *id = (unsigned)fid;
            if (gid && f[3])
                *gid = (unsigned)strtoul(f[3], NULL, 10);
            if (home && f[5] && f[5][0] == '/')
                snprintf(home, PATH_MAX, "%s", f[5]);
            return 0;
        }
    }
    if (numeric) {
        *id = (unsigned)n;
        return 0;
    }
    return hull_error_set(err, ENOENT, "USER %s: no such %s in the image's %s", name,
                          gid ? "user" : "group", file);
}

static int resolve_user(int rootfd, const char *user, unsigned *uid, unsigned *gid,
                        char home[PATH_MAX], hull_error *err)
{
    *uid = *gid = 0;
    snprintf(home, PATH_MAX, "/root");
    if (user == NULL)
        return 0;
    cleanup_free char *u = strdup(user);
    if (u == NULL)
        return hull_error_set(err, ENOMEM, "out of memory");
    char *group = strchr(u, ':');
    if (group)
        *group++ = '\0';
    if (strcmp(u, "root") != 0 && strcmp(u, "0") != 0)
        snprintf(home, PATH_MAX, "/");
    if (lookup_id(rootfd, "/etc/passwd", u, uid, gid, home, err) < 0)
        return -1;
    if (group && lookup_id(rootfd, "/etc/group", group, gid, NULL, NULL, err) < 0)
        return -1;
    return 0;
}

/* The mount points the runtime may have to create (the name service files
 * only with the host's network); the ones it made are removed afterwards
 * when still empty, so they are no part of the layer. */
static const struct {
    const char *name;
    bool file;
} points[] = {{"proc", false},
              {"dev", false},
              {"sys", false},
              {"etc/resolv.conf", true},
              {"etc/hosts", true}};
#define N_POINTS (sizeof(points) / sizeof(points[0]))

static json_object *spec_doc(const struct build_run *r, unsigned uid, unsigned gid,
                             const char *home, bool *created, int rootfd, hull_error *err)
{
    cleanup_free char *text = hull_spec_default_json(false);
    json_object *doc = NULL;
    if (text == NULL || hj_parse(text, strlen(text), "default spec", &doc, err) < 0)
        return text ? NULL : (hull_error_set(err, ENOMEM, "out of memory"), NULL);
    json_object *proc = hj_get(doc, "process");
    json_object_object_add(proc, "terminal", json_object_new_boolean(false));
    json_object *a = json_object_new_array(), *e = json_object_new_array();
    for (size_t i = 0; r->argv[i]; i++)
        json_object_array_add(a, json_object_new_string(r->argv[i]));
    bool has_home = false;
    for (size_t i = 0; r->env && r->env[i]; i++) {
        json_object_array_add(e, json_object_new_string(r->env[i]));
        has_home |= strncmp(r->env[i], "HOME=", 5) == 0;
    }
    /* As Docker: HOME from the user's passwd entry unless the image sets it. */
    if (!has_home) {
        char h[PATH_MAX + 8];
        snprintf(h, sizeof(h), "HOME=%s", home);
        json_object_array_add(e, json_object_new_string(h));
    }
    json_object_object_add(proc, "args", a);
    json_object_object_add(proc, "env", e);
    json_object_object_add(proc, "cwd", json_object_new_string(r->cwd));
    json_object *u = json_object_new_object();
    json_object_object_add(u, "uid", json_object_new_int64(uid));
    json_object_object_add(u, "gid", json_object_new_int64(gid));
    json_object_object_add(proc, "user", u);
    json_object *root = json_object_new_object();
    json_object_object_add(root, "path", json_object_new_string(r->rootfs));
    json_object_object_add(root, "readonly", json_object_new_boolean(false));
    json_object_object_add(doc, "root", root);

    /* No cgroup of its own (see the top): no cgroupfs mount, no device rules. */
    json_object *mounts = hj_get(doc, "mounts"), *keep = json_object_new_array();
    for (size_t i = 0; i < json_object_array_length(mounts); i++) {
        json_object *m = json_object_array_get_idx(mounts, i);
        const char *dst = json_object_get_string(hj_get(m, "destination"));
        if (strcmp(dst, "/sys/fs/cgroup") != 0)
            json_object_array_add(keep, json_object_get(m));
    }
    for (size_t i = 0; i < N_POINTS; i++) {
        struct stat st;
        created[i] = fstatat(rootfd, points[i].name, &st, AT_SYMLINK_NOFOLLOW) < 0;
    }
    /* With the host's network, its name service too: over the image's files,
     * or over empty ones made for the run (under an /etc of the image only). */
    struct stat etc;
    bool etc_dir = fstatat(rootfd, "etc", &etc, AT_SYMLINK_NOFOLLOW) == 0 && S_ISDIR(etc.st_mode);
    for (size_t i = 0; r->network && i < N_POINTS; i++) {
        struct stat st;
        char host[64];
        snprintf(host, sizeof(host), "/%s", points[i].name);
        bool there = fstatat(rootfd, points[i].name, &st, AT_SYMLINK_NOFOLLOW) == 0;
        if (!points[i].file || (there && !S_ISREG(st.st_mode)) || (!there && !etc_dir) ||
            access(host, R_OK) < 0)
            continue;
        const char *netfile = host;
        json_object *m = json_object_new_object();
        json_object_object_add(m, "destination", json_object_new_string(netfile));
        json_object_object_add(m, "type", json_object_new_string("bind"));
        json_object_object_add(m, "source", json_object_new_string(netfile));
        json_object *o = json_object_new_array();
        json_object_array_add(o, json_object_new_string("rbind"));
        json_object_array_add(o, json_object_new_string("ro"));
        json_object_object_add(m, "options", o);
        json_object_array_add(keep, m);
    }
    json_object_object_add(doc, "mounts", keep);
    json_object *lx = hj_get(doc, "linux");
    json_object_object_del(lx, "resources");
    if (r->network) {
        json_object *ns = hj_get(lx, "namespaces"), *nk = json_object_new_array();
        for (size_t i = 0; i < json_object_array_length(ns); i++) {
            json_object *n = json_object_array_get_idx(ns, i);
            if (strcmp(json_object_get_string(hj_get(n, "type")), "network") != 0)
                json_object_array_add(nk, json_object_get(n));
        }
        json_object_object_add(lx, "namespaces", nk);
    }
    return doc;
}

/* Wait for the init; INT, TERM, HUP and QUIT to us kill the command (as
 * pid 1 of its namespace it would ignore them) and fail the build. */
static int supervise(pid_t pid, int sfd, int *status, bool *interrupted)
{
    for (;;) {
        struct signalfd_siginfo si;
        ssize_t n = read(sfd, &si, sizeof(si));
        if (n < 0 && errno == EINTR)
            continue;
        if (n != sizeof(si))
            return -1;
        if (si.ssi_signo != SIGCHLD) {
            if (si.ssi_signo == SIGINT || si.ssi_signo == SIGTERM || si.ssi_signo == SIGHUP ||
                si.ssi_signo == SIGQUIT) {
                *interrupted = true;
                kill(pid, SIGKILL);
            }
            continue;
        }
        pid_t w = waitpid(pid, status, WNOHANG);
        if (w == pid)
            return 0;
        if (w < 0 && errno != EINTR)
            return -1;
    }
}

static int run_container(struct build_run *r, struct hull_spec *spec, int sfd, hull_error *err)
{
    struct hull_runtime rt = {.root = r->state, .no_cgroups = true};
    char id[64];
    snprintf(id, sizeof(id), "build-%d-%d", (int)getpid(), r->id_seq);
    struct hull_create_opts co = {.id = id, .bundle = "/"};
    cleanup_close int null = open("/dev/null", O_RDONLY | O_CLOEXEC);
    int stdio[3] = {null, STDOUT_FILENO, STDERR_FILENO};
    struct hull_setup_opts so = {
        .spec = spec,
        .foreground = true,
        .die_with_parent = true,
        .no_cgroup = true,
        .verb = "RUN",
        .stdio = stdio,
        .loopback_up = !r->network,
    };
    struct hull_container_ctx c;
    if (null < 0)
        return hull_error_errno(err, "open /dev/null");
    struct hull_seccomp_filter *filter = NULL;
    if (hull_seccomp_compile(hull_seccomp_default_sandbox(), &filter, err) < 0)
        return hull_error_prefix(err, "built-in seccomp profile");
    so.seccomp = filter;
    if (hull_container_setup(&rt, &co, &so, &c, err) < 0) {
        hull_seccomp_filter_free(filter);
        return -1;
    }
    int ret = 0, status = 0;
    bool interrupted = false;
    if (hull_sync_send(c.launch.sync_fd, SYNC_START, 0, err) < 0 ||
        hull_wait_exec(c.launch.sync_fd, err) < 0) {
        kill(c.launch.pid, SIGKILL);
        waitpid(c.launch.pid, NULL, 0);
        ret = -1;
    } else if (supervise(c.launch.pid, sfd, &status, &interrupted) < 0) {
        kill(c.launch.pid, SIGKILL);
        waitpid(c.launch.pid, NULL, 0);
        ret = hull_error_errno(err, "waiting for the command");
    } else if (interrupted) {
        ret = hull_error_set(err, EINTR, "interrupted");
    } else {
        r->exit_code = hull_exit_code(status);
    }
    hull_error e = NULL;
    if (hull_container_destroy(&rt, c.dirfd, &c.cs, &e) < 0) {
        if (ret == 0) {
            *err = steal_ptr(&e);
            ret = hull_error_prefix(err, "removing the container");
        } else
            hull_warn("RUN: removing the container: %s", hull_error_msg(e));
    }
    hull_error_free(&e);
    hull_container_ctx_release(&c);
    hull_seccomp_filter_free(filter);
    return ret;
}

int build_run_command(struct build_run *r, hull_error *err)
{
    r->exit_code = -1;
    cleanup_close int rootfd = open(r->rootfs, O_PATH | O_DIRECTORY | O_CLOEXEC);
    if (rootfd < 0)
        return hull_error_errno(err, "open %s", r->rootfs);
    unsigned uid, gid;
    char home[PATH_MAX];
    if (resolve_user(rootfd, r->user, &uid, &gid, home, err) < 0)
        return -1;
    /* The working directory exists for the command, as Docker makes it. */
    cleanup_close int cwd =
        hull_resolve_in_root(rootfd, r->cwd, HULL_RESOLVE_MKDIR | HULL_RESOLVE_DIRECTORY, err);
    if (cwd < 0)
        return hull_error_prefix(err, "working directory %s", r->cwd);
    bool created[N_POINTS];
    struct stat etc = {0};
    if (fstatat(rootfd, "etc", &etc, AT_SYMLINK_NOFOLLOW) < 0)
        etc.st_mode = 0; /* no /etc: nothing is made in it */
    cleanup_json json_object *doc = spec_doc(r, uid, gid, home, created, rootfd, err);
    if (doc == NULL)
        return -1;
    const char *text = hj_to_string(doc);
    struct hull_spec *spec = NULL;
    if (hull_spec_parse(text, strlen(text), "/", &spec, err) < 0)
        return hull_error_prefix(err, "RUN spec");
    if (hull_mkdir_p(r->state, 0700, err) < 0) {
        hull_spec_free(spec);
        return -1;
    }
    sigset_t fwd, old;
    hull_forwardable_signals(&fwd);
    sigprocmask(SIG_BLOCK, &fwd, &old);
    int sfd = signalfd(-1, &fwd, SFD_CLOEXEC);
    int ret = sfd < 0 ? hull_error_errno(err, "signalfd") : run_container(r, spec, sfd, err);
    if (sfd >= 0)
        close(sfd);
    sigprocmask(SIG_SETMASK, &old, NULL);
    hull_spec_free(spec);
    bool removed_netfile = false;
    for (size_t i = 0; i < N_POINTS; i++) {
        struct stat st;
        if (!created[i] || fstatat(rootfd, points[i].name, &st, AT_SYMLINK_NOFOLLOW) < 0 ||
            (points[i].file && (!S_ISREG(st.st_mode) || st.st_size != 0)))
            continue; /* not made for the run, or the command put something there */
        if (unlinkat(rootfd, points[i].name, points[i].file ? 0 : AT_REMOVEDIR) < 0)
            hull_debug("RUN: /%s made for the command kept: %s", points[i].name, strerror(errno));
        else
            removed_netfile |= points[i].file;
    }
    /* A name service file made and removed in /etc left it copied up with a
     * new mtime: back to the image's, so the layer says nothing new of it. */
    struct timespec t[2] = {etc.st_atim, etc.st_mtim};
    if (removed_netfile && utimensat(rootfd, "etc", t, AT_SYMLINK_NOFOLLOW) < 0)
        hull_debug("RUN: /etc times: %s", strerror(errno));
    return ret;
}
