/* The transport between libhull and `hull-net --helper VERB` (net.h says
 * why the helper exists). One SOCK_SEQPACKET socket is the helper's fd 0;
 * each message is one JSON object (at most HULL_NET_MSG_MAX bytes) with at
 * most one fd riding along (SCM_RIGHTS). The caller sends one request; the
 * helper answers each message with {"ok": true, ...} or
 * {"ok": false, "errno": N, "error": "what failed: why"}. A helper holding
 * something (attach with "hold") waits for a further message or for EOF,
 * undoes it, answers, and exits; EOF alone (the caller died) undoes it too. */
#ifndef HULL_NET_HELPER_H
#define HULL_NET_HELPER_H

#include <json-c/json.h>
#include <sys/types.h>

#include "util/error.h"

#define HULL_NET_MSG_MAX (64 * 1024)

struct hull_net_helper {
    pid_t pid;
    int sock;
};

/* Exec hull-net --helper verb (found by hull_find_sibling), send req with
 * fd_in (-1: none), receive the first answer: *reply owned by the caller
 * (may be NULL when not wanted), *fd_out its fd or -1 (NULL: closed). An
 * {"ok": false} answer becomes err (its errno and text) and -1, the helper
 * reaped. */
int hull_net_helper_start(const char *verb, json_object *req, int fd_in, struct hull_net_helper *h,
                          json_object **reply, int *fd_out, hull_error *err);
/* The same in two steps: exec the helper (it waits for its request), then
 * send the request and receive the first answer. Between them the exec
 * overlaps the caller's other work; a helper that never gets its request
 * sees EOF when hull_net_helper_end closes the socket (or the caller
 * dies) and exits having done nothing. */
int hull_net_helper_spawn(const char *verb, struct hull_net_helper *h, hull_error *err);
int hull_net_helper_first(struct hull_net_helper *h, json_object *req, int fd_in,
                          json_object **reply, int *fd_out, hull_error *err);
/* The first answer alone, for a request sent with hull_net_msg_send. */
int hull_net_helper_answer(struct hull_net_helper *h, json_object **reply, int *fd_out,
                           hull_error *err);
/* Another message to a running helper and its answer (as above). */
int hull_net_helper_call(struct hull_net_helper *h, json_object *msg, json_object **reply,
                         hull_error *err);
/* Close the socket and reap the helper; its exit status is not an error
 * unless it died of a signal. Idempotent. */
int hull_net_helper_end(struct hull_net_helper *h, hull_error *err);
/* start + end: a verb that answers once. */
int hull_net_helper_once(const char *verb, json_object *req, int fd_in, json_object **reply,
                         int *fd_out, hull_error *err);

/* Both sides: one message. recv returns 0 at EOF (the peer is gone). */
int hull_net_msg_send(int sock, json_object *msg, int fd, hull_error *err);
int hull_net_msg_recv(int sock, json_object **msg, int *fd, hull_error *err);

#endif
