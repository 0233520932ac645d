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

/* ---- in hulld ---- */

/* "ports" of a create request checked and taken out of doc: 0, or -1 with
 * r filled (400 naming ports[i]). */
int sbx_ports_take(json_object *doc, unsigned *ports, size_t *n, struct resp *r);
/* The new sandbox id's access token (into o as "access_token", shown this
 * once) and its ports opened; -1 with r filled, nothing kept. */
int sbx_ports_open(const char *id, const unsigned *ports, size_t n, json_object *o, struct resp *r);
/* Its "ports": [{"port", "url"}] into a sandbox's JSON (none: nothing). */
void sbx_ports_show(const char *id, json_object *o);
/* Every listener and connection of sandbox id closed, and its token
 * forgotten; returns when nothing of it is left. */
void sbx_ports_drop(const char *id);
/* /v1/sandboxes/{sid}/ports[/{port}] (rest: "" or "/PORT"). */
void sbx_ports_api(struct sbx *s, const struct request *rq, const char *rest, struct resp *r);

/* sandboxes.c: a socket (family AF_INET/AF_INET6) in live sandbox id's
 * network namespace, over its attach connection (never waits behind an
 * exec): the fd, or -1 with err. */
int sandboxes_socket(const char *id, int family, hull_error *err);

#endif
