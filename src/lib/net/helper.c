/* The client side of the hull-net helper's transport (helper.h). */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "net/helper.h"
#include "util/fdpass.h"
#include "util/json.h"
#include "util/sibling.h"

extern char **environ;

int hull_net_msg_send(int sock, json_object *msg, int fd, hull_error *err)
{
    size_t len = 0;
    const char *text = json_object_to_json_string_length(msg, JSON_C_TO_STRING_PLAIN, &len);
    if (len > HULL_NET_MSG_MAX)
        return hull_error_set(err, EMSGSIZE, "network helper: message of %zu bytes", len);
    struct iovec iov = {.iov_base = (void *)text, .iov_len = len};
    if (hull_sendmsg_fd(sock, &iov, 1, fd) < 0)
        return hull_error_errno(err, "network helper: send");
    return 0;
}

int hull_net_msg_recv(int sock, json_object **msg, int *fd, hull_error *err)
{
    cleanup_free char *buf = malloc(HULL_NET_MSG_MAX);
    int got_fd = -1;
    *msg = NULL;
    if (fd)
        *fd = -1;
    if (!buf)
        return hull_error_set(err, ENOMEM, "network helper: out of memory");
    ssize_t n = hull_recvmsg_fd(sock, buf, HULL_NET_MSG_MAX, &got_fd);
    if (n < 0)
        return hull_error_errno(err, "network helper: receive");
    if (n == 0)
        return 0;
    json_tokener *tok = json_tokener_new();
    *msg = tok ? json_tokener_parse_ex(tok, buf, (int)n) : NULL;
    bool whole = tok && json_tokener_get_error(tok) == json_tokener_success;
    if (tok)
        json_tokener_free(tok);
    if (!whole || !json_object_is_type(*msg, json_type_object)) {
        json_object_put(*msg);
        *msg = NULL;
        if (got_fd >= 0)
            close(got_fd);
        return hull_error_set(err, EPROTO, "network helper: a message that is not a JSON object");
    }
    if (fd)
        *fd = got_fd;
    else if (got_fd >= 0)
        close(got_fd);
    return 1;
}

/* An answer: {"ok": true} passes; {"ok": false} becomes err. */
static int answer(json_object *reply, hull_error *err)
{
    if (json_object_get_boolean(hj_get(reply, "ok")))
        return 0;
    const char *text = json_object_get_string(hj_get(reply, "error"));
    int code = json_object_get_int(hj_get(reply, "errno"));
    return hull_error_set(err, code > 0 ? code : EIO, "%s",
                          text ? text : "network helper: failed without saying why");
}

int hull_net_helper_call(struct hull_net_helper *h, json_object *msg, json_object **reply,
                         hull_error *err)
{
    json_object *r = NULL;
    if (reply)
        *reply = NULL;
    if (hull_net_msg_send(h->sock, msg, -1, err) < 0)
        return -1;
    int rc = hull_net_msg_recv(h->sock, &r, NULL, err);
    if (rc <= 0)
        return rc < 0 ? -1 : hull_error_set(err, EPIPE, "network helper: exited without answering");
    if (answer(r, err) < 0) {
        json_object_put(r);
        return -1;
    }
    if (reply)
        *reply = r;
    else
        json_object_put(r);
    return 0;
}

int hull_net_helper_end(struct hull_net_helper *h, hull_error *err)
{
    hull_closep(&h->sock);
    if (h->pid <= 0)
        return 0;
    int status = 0;
    pid_t r;
    do
        r = waitpid(h->pid, &status, 0);
    while (r < 0 && errno == EINTR);
    h->pid = 0;
    if (r > 0 && WIFSIGNALED(status))
        return hull_error_set(err, EIO, "network helper: killed by signal %d", WTERMSIG(status));
    return 0;
}

/* The helper in a child: its fd 0 the socket, stdout /dev/null (never the
 * caller's output stream), stderr kept for its diagnostics. setsid: a
 * signal to the caller's process group (a timeout's kill) does not reach
 * it, so a holding helper still undoes its work when the caller dies. */
static pid_t spawn(const char *path, const char *verb, int sock, int devnull)
{
    pid_t pid = fork();
    if (pid != 0)
        return pid;
    /* Only system calls from here: the caller may be a threaded daemon. */
    setsid();
    if (dup2(sock, 0) < 0 || dup2(devnull, 1) < 0)
        _exit(127);
    char *argv[] = {(char *)"hull-net", (char *)"--helper", (char *)verb, NULL};
    execve(path, argv, environ);
    _exit(127);
}

int hull_net_helper_spawn(const char *verb, struct hull_net_helper *h, hull_error *err)
{
    char path[4096];
    h->pid = 0;
    h->sock = -1;
    if (hull_find_sibling("hull-net", "HULL_NET_HELPER", path, sizeof(path), err) < 0)
        return hull_error_prefix(err, "network");
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) < 0)
        return hull_error_errno(err, "network helper: socketpair");
    cleanup_close int theirs = sv[1];
    h->sock = sv[0];
    cleanup_close int devnull = open("/dev/null", O_WRONLY | O_CLOEXEC);
    if (devnull < 0) {
        hull_closep(&h->sock);
        return hull_error_errno(err, "open /dev/null");
    }
    h->pid = spawn(path, verb, theirs, devnull);
    if (h->pid < 0) {
        h->pid = 0;
        hull_closep(&h->sock);
        return hull_error_errno(err, "network helper: fork");
    }
    return 0;
}

int hull_net_helper_first(struct hull_net_helper *h, json_object *req, int fd_in,
                          json_object **reply, int *fd_out, hull_error *err)
{
    if (hull_net_msg_send(h->sock, req, fd_in, err) < 0) {
        if (reply)
            *reply = NULL;
        if (fd_out)
            *fd_out = -1;
        hull_net_helper_end(h, NULL);
        return -1;
    }
    return hull_net_helper_answer(h, reply, fd_out, err);
}

int hull_net_helper_answer(struct hull_net_helper *h, json_object **reply, int *fd_out,
                           hull_error *err)
{
    if (reply)
        *reply = NULL;
    if (fd_out)
        *fd_out = -1;
    json_object *r = NULL;
    int rfd = -1;
    int rc = hull_net_msg_recv(h->sock, &r, &rfd, err);
    if (rc == 0)
        rc = hull_error_set(err, EPIPE, "network helper: exited without answering");
    else if (rc > 0)
        rc = answer(r, err);
    if (rc < 0) {
        json_object_put(r);
        if (rfd >= 0)
            close(rfd);
        hull_net_helper_end(h, NULL);
        return -1;
    }
    if (reply)
        *reply = r;
    else
        json_object_put(r);
    if (fd_out)
        *fd_out = rfd;
    else if (rfd >= 0)
        close(rfd);
    return 0;
}

int hull_net_helper_start(const char *verb, json_object *req, int fd_in, struct hull_net_helper *h,
                          json_object **reply, int *fd_out, hull_error *err)
{
    if (reply)
        *reply = NULL;
    if (fd_out)
        *fd_out = -1;
    if (hull_net_helper_spawn(verb, h, err) < 0)
        return -1;
    return hull_net_helper_first(h, req, fd_in, reply, fd_out, err);
}

int hull_net_helper_once(const char *verb, json_object *req, int fd_in, json_object **reply,
                         int *fd_out, hull_error *err)
{
    struct hull_net_helper h;
    if (hull_net_helper_start(verb, req, fd_in, &h, reply, fd_out, err) < 0)
        return -1;
    return hull_net_helper_end(&h, err);
}
