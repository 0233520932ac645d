/* A sandbox's ports (issue 14): a listener of hulld's on 127.0.0.1 per
 * exposed port that forwards each connection, once its first request shows
 * the sandbox's access token, into the sandbox's own network namespace
 * (sbx_ports.c; the socket comes from the keeper, keeper_ports.c). */
#ifndef HULLD_PORTS_H
#define HULLD_PORTS_H

#include <stdbool.h>
#include <stddef.h>

#include "daemon.h"
#include "procs.h"

#define SBX_PORTS_MAX 16

/* ---- in the keeper ---- */

/* Op "socket" {"family": 4|6}: a socket in the sandbox's network
 * namespace, not connected, as the answer's fd. */
void keeper_socket(int sock, struct frame *f, struct hull_session *s);
/* sbx_vm_net.c, a microVM's keeper: the same op answered with a host
 * socket and "addr", the guest's address on its network to connect it to
 * (EPERM: no network, EBUSY: paused, EADDRNOTAVAIL: no such family). */
void vmk_socket(const char *vm, bool paused, int sock, struct frame *f);
/* The sandbox's network into o (its lease made by the VM library);
 * "host" and "publish" refused by name (ENOTSUP). */
int vmk_net_opts(const struct hull_policy *p, struct hull_vm_create_opts *o, hull_error *err);

/* ---- in hulld ---- */

/* "ports" of a create request checked and taken out of doc: 0, or -1 with
 * r filled (400 naming ports[i]). */
int sbx_ports_take(json_object *doc, unsigned *ports, size_t *n, struct resp *r);
/* The new sandbox id's access token (into o as "access_token", shown this
 * once) and its ports opened; -1 with r filled, nothing kept. token: the
 * one it had on the node it moved from (PORT_TOKEN_LEN hex digits), NULL:
 * a new one. */
int sbx_ports_open(const char *id, const unsigned *ports, size_t n, const char *token,
                   json_object *o, struct resp *r);
/* For a move (cluster_move.c): sandbox id's open "ports" (the sandbox's
 * port numbers) and its "access_token" into o; nothing when it has none. */
void sbx_ports_export(const char *id, json_object *o);
/* Its "ports": [{"port", "url"}] into a sandbox's JSON (none: nothing). */
void sbx_ports_show(const char *id, json_object *o);
/* Every listener and connection of sandbox id closed, and its token
 * forgotten; returns when nothing of it is left. */
void sbx_ports_drop(const char *id);
/* /v1/sandboxes/{sid}/ports[/{port}] (rest: "" or "/PORT"). */
void sbx_ports_api(struct sbx *s, const struct request *rq, const char *rest, struct resp *r);

/* sbx_vm_net.c: after the resume answered in r of microVM sandbox id,
 * which an earlier hulld paused: a new access token in the answer (the
 * old one was in that hulld's memory only). Nothing when it has one. */
void vmk_ports_renew(const char *id, struct resp *r);

/* sbx_ports_head.c: the proxy's HTTP. */
#define PORT_HEAD_MAX     16384 /* the first request's line and headers */
#define PORT_TOKEN_LEN    64
#define PORT_TOKEN_HEADER "X-Hull-Access-Token"
/* got (len bytes) is want (PORT_TOKEN_LEN), in constant time. */
bool port_token_ok(const char *want, const char *got, size_t len);
/* An answer of the proxy's own with the usual error body, best effort. */
void port_say(int fd, int status, const char *reason, const char *code, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));
/* fd ready for events before timeout_ms (-1: none) and before stop is
 * readable: 1, else 0. */
int port_wait_fd(int fd, short events, int stop, int timeout_ms);
/* The first request's head into buf (PORT_HEAD_MAX + 1 bytes), up to its
 * blank line, each read within timeout_ms: its length (*have: every byte read, which may run into
 * the body), 0 when the client went or was too slow, (size_t)-1 when the head is over
 * PORT_HEAD_MAX. */
size_t port_read_head(int fd, int stop, int timeout_ms, char *buf, size_t *have);
/* The token the head shows (the first non-empty X-Hull-Access-Token, else
 * ?token=; *tok NULL: none) and the head without any of them in *out
 * (malloc'd, *out_len): the sandbox never sees it. -1: out of memory;
 * -2: a line does not end in CRLF, or a NUL (refused: 400). */
int port_take_token(const char *head, size_t len, const char **tok, size_t *tok_len, char **out,
                    size_t *out_len);

/* sandboxes.c: a socket (family AF_INET/AF_INET6) in live sandbox id's
 * network namespace, over its attach connection (never waits behind an
 * exec): the fd, or -1 with err. addr (NULL: not wanted) gets where to
 * connect it: "" for the sandbox's own loopback, else a microVM guest's
 * address (sbx_vm_net.c). */
int sandboxes_socket(const char *id, int family, char *addr, size_t addr_len, hull_error *err);

#endif
