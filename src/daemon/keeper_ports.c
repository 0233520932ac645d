/* The keeper's side of a sandbox's ports (op "socket"): a socket made in
 * the sandbox's network namespace, handed to hulld unconnected, so the
 * keeper never waits on a connection (hulld connects it, sbx_ports.c). */
#include <sys/socket.h>
#include <unistd.h>

#include "ports.h"
#include "util/error.h"
#include "util/json.h"

void keeper_socket(int sock, struct frame *f, struct hull_session *s)
{
    hull_error e = NULL;
    json_object *v = hj_get(f->hdr, "family");
    int fd = -1;
    int family = v && json_object_get_int(v) == 6 ? AF_INET6 : AF_INET;
    json_object *hdr = json_object_new_object();
    if (hull_session_socket(s, family, &fd, &e) < 0) {
        json_object *er = json_object_new_object();
        json_object_object_add(er, "errno", json_object_new_int(hull_error_code(e)));
        json_object_object_add(er, "message", json_object_new_string(hull_error_msg(e)));
        json_object_object_add(hdr, "error", er);
        hull_error_free(&e);
    } else {
        json_object_object_add(hdr, "ok", json_object_new_boolean(1));
    }
    frame_send(sock, hdr, NULL, 0, fd);
    json_object_put(hdr);
    if (fd >= 0)
        close(fd);
}
