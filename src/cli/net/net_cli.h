/* hull-net: the program behind `hull network` and the helper that makes
 * every run-time change to the host's network (src/lib/net/net.h says why
 * it is a program of its own). */
#ifndef HULL_CLI_NET_H
#define HULL_CLI_NET_H

#include <json-c/json.h>

#include "util/error.h"

/* A user-facing verb: argv starts at the verb; returns the exit code. */
typedef int (*netcli_verb_fn)(int argc, char **argv);

int net_create(int argc, char **argv);
int net_list(int argc, char **argv);
int net_inspect(int argc, char **argv);
int net_remove(int argc, char **argv);
int net_prune(int argc, char **argv);

/* A helper verb (`hull-net --helper VERB`, fd 0 the socket of
 * src/lib/net/helper.h): req is the first message, fd_in its fd (owned by
 * the verb: close it). It answers with netcli_reply() or returns -1 with
 * err set (main answers {"ok": false} from err). */
typedef int (*netcli_helper_fn)(int sock, json_object *req, int fd_in, hull_error *err);

int net_helper_attach(int sock, json_object *req, int fd_in, hull_error *err);
int net_helper_release(int sock, json_object *req, int fd_in, hull_error *err);
int net_helper_adopt(int sock, json_object *req, int fd_in, hull_error *err);
int net_helper_move_in(int sock, json_object *req, int fd_in, hull_error *err);
int net_helper_move_out(int sock, json_object *req, int fd_in, hull_error *err);

/* {"ok": true} plus the fields of extra (may be NULL; taken), with fd. */
int netcli_reply(int sock, json_object *extra, int fd, hull_error *err);
/* {"ok": false, "errno": code, "error": message}. */
void netcli_reply_error(int sock, hull_error e);

/* "hull: network <verb>: <message>" on stderr; returns 1. */
int netcli_fail(const char *verb, hull_error *err);

#endif
