/* Handing an SCMP_ACT_NOTIFY listener to the seccomp agent.
 *
 * runtime-spec (config-linux.md, "seccomp"): the runtime connects to the
 * AF_UNIX socket at linux.seccomp.listenerPath and sends the listener fd with
 * SCM_RIGHTS together with the containerProcessState JSON, whose "fds" array
 * names the fds in the order they are attached. Agents (e.g. the reference
 * seccomp agent, podman's, containerd's) read one message and take fds[0].
 */
#include <errno.h>
#include <json-c/json.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "linux/seccomp.h"
#include "util/error.h"
#include "util/fdpass.h"
#include "util/json.h"

static json_object *process_state(int pid, const char *metadata, const char *state_json,
                                  hull_error *err)
{
    json_object *state = NULL;
    if (hj_parse(state_json, strlen(state_json), "container state", &state, err) < 0)
        return NULL;
    json_object *o = json_object_new_object();
    json_object *fds = json_object_new_array();
    if (o == NULL || fds == NULL) {
        json_object_put(o);
        json_object_put(fds);
        json_object_put(state);
        hull_error_set(err, ENOMEM, "out of memory");
        return NULL;
    }
    json_object_array_add(fds, json_object_new_string("seccompFd"));
    json_object_object_add(o, "ociVersion", json_object_new_string(HULL_OCI_VERSION));
    json_object_object_add(o, "fds", fds);
    json_object_object_add(o, "pid", json_object_new_int(pid));
    if (metadata && metadata[0])
        json_object_object_add(o, "metadata", json_object_new_string(metadata));
    json_object_object_add(o, "state", state);
    return o;
}

/* One sendmsg carrying the fd and as much of the text as fits; the rest
 * follows on the same stream. */
static int send_with_fd(int sock, int fd, const char *data, size_t len)
{
    struct iovec iov = {.iov_base = (void *)data, .iov_len = len};
    ssize_t n = hull_sendmsg_fd(sock, &iov, 1, fd);
    if (n < 0)
        return -1;
    for (size_t off = (size_t)n; off < len; off += (size_t)n) {
        iov = (struct iovec){.iov_base = (void *)(data + off), .iov_len = len - off};
        if ((n = hull_sendmsg_fd(sock, &iov, 1, -1)) < 0)
            return -1;
    }
    return 0;
}

int hull_seccomp_send_listener(const char *listener_path, int notify_fd, const char *metadata,
                               const char *state_json, pid_t pid, hull_error *err)
{
    const char *what = "linux.seccomp.listenerPath";
    if (listener_path == NULL || listener_path[0] == '\0')
        return hull_error_set(err, EINVAL, "%s: required with SCMP_ACT_NOTIFY", what);
    struct sockaddr_un addr = {.sun_family = AF_UNIX};
    if (strlen(listener_path) >= sizeof(addr.sun_path))
        return hull_error_set(err, ENAMETOOLONG, "%s: '%s' is longer than a socket path may be",
                              what, listener_path);
    strcpy(addr.sun_path, listener_path);

    json_object *o = process_state((int)pid, metadata, state_json, err);
    if (o == NULL)
        return hull_error_prefix(err, "seccomp listener");
    const char *text = json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN);

    int rc = -1;
    cleanup_close int sock = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (sock < 0)
        hull_error_errno(err, "seccomp listener: socket");
    else if (connect(sock, (struct sockaddr *)&addr, sizeof(addr)) < 0)
        hull_error_errno(err, "%s: connecting to %s", what, listener_path);
    else if (send_with_fd(sock, notify_fd, text, strlen(text)) < 0)
        hull_error_errno(err, "%s: sending the listener fd to %s", what, listener_path);
    else
        rc = 0;
    json_object_put(o);
    return rc;
}
