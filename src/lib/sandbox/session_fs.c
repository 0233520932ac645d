/* The file API's way into a long-lived sandbox: each operation in a child
 * that joined the sandbox's network, IPC, UTS, user and mount namespaces
 * and dropped to the sandbox's user (session_fs.h), its answer and fd sent back over a
 * socketpair. The supervisor (the keeper) only forks and waits: it never
 * resolves a sandbox path with its own credentials. */
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <linux/capability.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "linux/namespaces.h"
#include "sandbox/session.h"
#include "sandbox/session_fs.h"
#include "util/error.h"
#include "util/fdpass.h"
#include "util/fs.h"
#include "util/log.h"

/* An answer over this is refused (a list is bounded well below it). */
#define ANSWER_MAX (64u << 20)

/* Absolute, under PATH_MAX, no ".." component: the client names a place in
 * the sandbox, never a way out of one. */
static int check_path(const char *what, const char *p, hull_error *err)
{
    if (p == NULL || p[0] != '/')
        return hull_error_set(err, EINVAL, "%s: must be an absolute path in the sandbox", what);
    size_t n = strnlen(p, PATH_MAX);
    if (n >= PATH_MAX)
        return hull_error_set(err, ENAMETOOLONG, "%s: longer than %d bytes", what, PATH_MAX - 1);
    for (const char *c = p; *c;) {
        while (*c == '/')
            c++;
        size_t k = strcspn(c, "/");
        if (k == 2 && c[0] == '.' && c[1] == '.')
            return hull_error_set(err, EINVAL, "%s: '..' is not allowed ('%s')", what, p);
        if (k > NAME_MAX)
            return hull_error_set(err, ENAMETOOLONG, "%s: a name over %d bytes", what, NAME_MAX);
        c += k;
    }
    return 0;
}

/* The namespaces the child joins, in the order it joins them. Besides the
 * user and mount namespaces, which decide what a path resolves to, those
 * that decide what the sandbox's /proc shows the reader (/proc/sys/net
 * lists the reader's network interfaces, /proc/sys/kernel its hostname
 * and IPC limits): in the keeper's, a list of /proc/sys/net/ipv4/conf
 * named the host's interfaces. They are joined first, while the child is
 * still host root: one the sandbox got from the netpool is owned by the
 * host's user namespace, where root of the sandbox's has no say. */
static const enum hull_ns_type joined[] = {HULL_NS_NET, HULL_NS_IPC, HULL_NS_UTS, HULL_NS_USER,
                                           HULL_NS_MNT};
#define N_JOINED (sizeof(joined) / sizeof(joined[0]))

/* The init's namespaces of joined[] (fds[t] -1 where it shares ours), and
 * its root for a sandbox without a mount namespace of its own. */
static int open_sandbox(pid_t init, int fds[HULL_NS_COUNT], int *rootfd, hull_error *err)
{
    const enum hull_ns_type *types = joined;
    for (int t = 0; t < HULL_NS_COUNT; t++)
        fds[t] = -1;
    *rootfd = -1;
    for (size_t i = 0; i < N_JOINED; i++) {
        const char *name = hull_ns_proc_name(types[i]);
        char theirs[64], ours[64];
        snprintf(theirs, sizeof(theirs), "/proc/%d/ns/%s", (int)init, name);
        snprintf(ours, sizeof(ours), "/proc/self/ns/%s", name);
        struct stat a, b;
        if (stat(theirs, &a) < 0)
            return hull_error_errno(err, "the sandbox's %s namespace", name);
        if (stat(ours, &b) == 0 && a.st_ino == b.st_ino && a.st_dev == b.st_dev)
            continue;
        fds[types[i]] = open(theirs, O_RDONLY | O_CLOEXEC);
        if (fds[types[i]] < 0)
            return hull_error_errno(err, "the sandbox's %s namespace", name);
    }
    if (fds[HULL_NS_MNT] < 0) {
        char root[64];
        snprintf(root, sizeof(root), "/proc/%d/root", (int)init);
        *rootfd = open(root, O_PATH | O_DIRECTORY | O_CLOEXEC);
        if (*rootfd < 0)
            return hull_error_errno(err, "the sandbox's root");
    }
    return 0;
}

/* In the child: become a process of the sandbox, as its user. */
static int enter(struct hull_session *s, int fds[HULL_NS_COUNT], int rootfd, hull_error *err)
{
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    /* Non-dumpable before entering: the sandbox's processes (same uid
     * once we drop) must not ptrace us or read our memory. */
    prctl(PR_SET_DUMPABLE, 0);
    if (hull_ns_join(fds, joined, N_JOINED, err) < 0)
        return -1;
    if (rootfd >= 0 && (fchdir(rootfd) < 0 || chroot(".") < 0))
        return hull_error_errno(err, "enter the sandbox's root");
    if (chdir("/") < 0)
        return hull_error_errno(err, "enter the sandbox's root");
    /* The sandbox's own ids, as its namespace sees them (host ids at
     * process level): no supplementary group of ours may stay. */
    gid_t g = s->lay.gid;
    uid_t u = s->lay.uid;
    if (setgroups(0, NULL) < 0 || setresgid(g, g, g) < 0 || setresuid(u, u, u) < 0)
        return hull_error_errno(err, "become the sandbox's user %u:%u", (unsigned)u, (unsigned)g);
    /* The kernel keeps our capabilities through that setresuid: we were
     * host root, not the root of the namespace we joined, so its
     * root-to-user fixup does not apply. Dropped by hand, and checked. */
    struct __user_cap_header_struct h = {.version = _LINUX_CAPABILITY_VERSION_3};
    struct __user_cap_data_struct none[2] = {{0}}, now[2];
    if (prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0) < 0 ||
        syscall(SYS_capset, &h, none) < 0 || syscall(SYS_capget, &h, now) < 0 || now[0].effective ||
        now[1].effective || now[0].permitted || now[1].permitted)
        return hull_error_errno(err, "drop capabilities");
    if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0)
        return hull_error_errno(err, "no_new_privs");
    prctl(PR_SET_DUMPABLE, 0);
    umask(0);
    return 0;
}

/* The verbs that allocate an upload's pages in the sandbox's /tmp. */
static bool charged(enum hull_fs_verb v)
{
    return v == HULL_FS_WRITE || v == HULL_FS_RESERVE;
}

static void send_answer(int sock, json_object *out, int fd, hull_error err)
{
    json_object *msg = json_object_new_object();
    if (err) {
        json_object *e = json_object_new_object();
        json_object_object_add(e, "errno", json_object_new_int(hull_error_code(err)));
        json_object_object_add(e, "message", json_object_new_string(hull_error_msg(err)));
        json_object_object_add(msg, "error", e);
        fd = -1;
    } else {
        json_object_object_add(msg, "result", out ? json_object_get(out) : NULL);
    }
    const char *text = json_object_to_json_string_ext(msg, JSON_C_TO_STRING_PLAIN);
    uint64_t len = strlen(text);
    struct iovec iov = {.iov_base = &len, .iov_len = sizeof(len)};
    if (hull_sendmsg_fd(sock, &iov, 1, fd) == (ssize_t)sizeof(len)) {
        for (size_t off = 0; off < len;) {
            ssize_t n = write(sock, text + off, len - off);
            if (n < 0 && errno == EINTR)
                continue;
            if (n <= 0)
                break;
            off += (size_t)n;
        }
    }
    json_object_put(msg);
}

__attribute__((noreturn)) static void child(struct hull_session *s, const struct hull_fs_op *op,
                                            int sock, int fds[HULL_NS_COUNT], int rootfd)
{
    hull_error err = NULL;
    json_object *out = NULL;
    int fd_out = -1;
    /* Nothing of the supervisor's (its socket to hulld, the sandbox's
     * state) stays open in a process that enters the sandbox. */
    int keep[HULL_NS_COUNT + 4] = {sock, rootfd, op->fd, hull_log_fd()};
    for (int t = 0; t < HULL_NS_COUNT; t++)
        keep[4 + t] = fds[t];
    hull_close_fds_except(3, keep, sizeof(keep) / sizeof(keep[0]));
    /* Our own fds, before entering: the sandbox's /proc does not show us. */
    int procfd = open("/proc/self/fd", O_PATH | O_DIRECTORY | O_CLOEXEC);
    int root = -1;
    if (procfd < 0)
        hull_error_errno(&err, "open /proc/self/fd");
    else if (charged(op->verb) && hull_session_charge_self(s, &err) < 0)
        ; /* err says why */
    else if (enter(s, fds, rootfd, &err) == 0 &&
             (root = open("/", O_PATH | O_DIRECTORY | O_CLOEXEC)) < 0)
        hull_error_errno(&err, "open the sandbox's root");
    if (err == NULL && hull_fs_do(op, root, procfd, &out, &fd_out, &err) == 0 &&
        op->verb == HULL_FS_WRITE && s->c.cgroup && out)
        /* The caller grows the file through RESERVE before it writes past
         * what WRITE made (a body of unknown length). */
        json_object_object_add(out, "reserve", json_object_new_boolean(1));
    send_answer(sock, out, fd_out, err);
    _exit(0);
}

/* The child's answer: the length (with the fd), then the JSON. -1 with the
 * child's own error; NO_ANSWER when there is none to take (the child died
 * first, or its answer is refused). */
#define NO_ANSWER (-2)
static int read_answer(int sock, json_object **out, int *fd_out, hull_error *err)
{
    uint64_t len = 0;
    ssize_t n = hull_recvmsg_fd(sock, &len, sizeof(len), fd_out);
    if (n != (ssize_t)sizeof(len)) {
        hull_error_set(err, EIO, "file operation: no answer from inside the sandbox");
        return NO_ANSWER;
    }
    if (len > ANSWER_MAX) {
        hull_error_set(err, EFBIG, "file operation: an answer of %llu bytes, over %u",
                       (unsigned long long)len, ANSWER_MAX);
        return NO_ANSWER;
    }
    char *text = malloc(len + 1);
    if (text == NULL)
        return hull_error_set(err, ENOMEM, "out of memory");
    size_t got = hull_read_all(sock, text, len);
    text[got] = '\0';
    json_object *msg = got == len ? json_tokener_parse(text) : NULL;
    free(text);
    if (msg == NULL) {
        hull_error_set(err, EIO, "file operation: a cut answer from inside the sandbox");
        return NO_ANSWER;
    }
    json_object *e = NULL, *r = NULL;
    int ret = 0;
    if (json_object_object_get_ex(msg, "error", &e)) {
        json_object *code = NULL, *m = NULL;
        json_object_object_get_ex(e, "errno", &code);
        json_object_object_get_ex(e, "message", &m);
        ret = hull_error_set(err, code ? json_object_get_int(code) : EIO, "%s",
                             m ? json_object_get_string(m) : "file operation failed");
    } else if (json_object_object_get_ex(msg, "result", &r)) {
        *out = json_object_get(r);
    }
    json_object_put(msg);
    return ret;
}

int hull_session_fs(struct hull_session *s, const struct hull_fs_op *op, json_object **out,
                    int *fd_out, hull_error *err)
{
    *out = NULL;
    *fd_out = -1;
    if (check_path("path", op->path, err) < 0 ||
        (op->verb == HULL_FS_RENAME && check_path("to", op->to, err) < 0))
        return -1;
    if (!hull_session_alive(s))
        return hull_error_set(err, ESRCH, "sandbox %s: its init has exited", s->id);
    if (charged(op->verb) && hull_session_paused_for(s, op->path, err) < 0)
        return hull_error_prefix(err, "%s", hull_fs_verb_name(op->verb));
    int fds[HULL_NS_COUNT], rootfd = -1, sv[2] = {-1, -1};
    int ret = -1;
    if (open_sandbox(s->c.launch.pid, fds, &rootfd, err) < 0)
        goto out;
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0) {
        hull_error_errno(err, "socketpair");
        goto out;
    }
    pid_t pid = fork();
    if (pid < 0) {
        hull_error_errno(err, "fork");
        goto out;
    }
    if (pid == 0) {
        close(sv[0]);
        child(s, op, sv[1], fds, rootfd);
    }
    hull_closep(&sv[1]);
    hull_error quiet = NULL;
    ret = read_answer(sv[0], out, fd_out, &quiet);
    if (ret == NO_ANSWER && hull_error_code(quiet) == EFBIG)
        /* A refused answer is one the child may still be writing: it would
         * wait on us forever, and we on it. (Never a charged verb's.) */
        kill(pid, SIGKILL);
    int status = 0;
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
        ;
    if (ret == NO_ANSWER && charged(op->verb) && WIFSIGNALED(status) &&
        WTERMSIG(status) == SIGKILL) {
        /* The sandbox's OOM killer took it (its first choice, see
         * session_charge.c): the upload does not fit its memory. */
        hull_error_free(&quiet);
        hull_error_set(err, op->verb == HULL_FS_WRITE ? ENOSPC : ENOMEM,
                       "%llu bytes do not fit in " HULL_FS_MEMORY_NOTE,
                       (unsigned long long)op->size);
    } else if (ret < 0 && err) {
        *err = quiet;
    } else {
        hull_error_free(&quiet);
    }
    if (ret == 0 && !(WIFEXITED(status) && WEXITSTATUS(status) == 0)) {
        json_object_put(*out);
        *out = NULL;
        hull_closep(fd_out);
        ret = hull_error_set(err, EIO, "file operation: its process failed");
    }
out:
    for (int t = 0; t < HULL_NS_COUNT; t++)
        hull_closep(&fds[t]);
    hull_closep(&rootfd);
    hull_closep(&sv[0]);
    hull_closep(&sv[1]);
    return ret < 0 ? hull_error_prefix(err, "%s %s", hull_fs_verb_name(op->verb), op->path) : 0;
}
