/* The runtime <-> container-init channel: a SOCK_SEQPACKET socketpair over
 * which the two sides step through setup together. Every message is one
 * packet: a type, an integer, and an optional text (an error message) or a
 * file descriptor (the pty master). */
#ifndef HULL_CONTAINER_SYNC_H
#define HULL_CONTAINER_SYNC_H

#include <sys/types.h>

#include "hull.h"

enum hull_sync_type {
    SYNC_ERROR = 1,    /* init -> runtime: setup failed, text says why */
    SYNC_USERMAP,      /* init -> runtime: please write my uid/gid maps (value = pid) */
    SYNC_USERMAP_DONE, /* runtime -> init */
    SYNC_PID,          /* stage-1 helper -> runtime: the init's pid */
    SYNC_CGROUP_DONE,  /* runtime -> init: you are in your cgroup, limits set */
    SYNC_HOOKS,        /* init -> runtime: namespaces ready, run createRuntime hooks */
    SYNC_HOOKS_DONE,   /* runtime -> init */
    SYNC_PTY,          /* init -> runtime: the pty master (fd attached) */
    SYNC_EXPORT,       /* init -> runtime: fd of launch.export_dir (fd attached) */
    SYNC_SECCOMP,      /* init -> runtime: seccomp notify listener (fd attached) */
    SYNC_READY,        /* init -> runtime: waiting for start */
    SYNC_START,        /* runtime -> init: exec now (foreground run) */
    SYNC_DETACH,       /* runtime -> init: your pid is recorded; stop dying with me */
    SYNC_DETACHED,     /* init -> runtime: done, the runtime may exit */
    SYNC_BIND_SOURCE,  /* init -> runtime: open mounts[value].source, which the init cannot
                          reach from its user namespace; runtime -> init: it (fd attached) */
    SYNC_NETNS,        /* runtime -> init: the network namespace made for it (fd attached;
                          launch.netns_late) */
};

struct hull_sync_msg {
    int type;
    int value;
    int fd; /* received fd, or -1 */
    char text[3072];
};

int hull_sync_send(int sock, int type, int value, hull_error *err);
int hull_sync_send_text(int sock, int type, const char *text, hull_error *err);
/* Report e to the runtime (best effort: the channel may be gone). */
int hull_sync_send_error(int sock, hull_error e);
int hull_sync_send_fd(int sock, int type, int fd, hull_error *err);
/* Receive one message; EOF (the peer died or exec'd) is an error with code EPIPE. */
int hull_sync_recv(int sock, struct hull_sync_msg *msg, hull_error *err);
/* Receive and require a given type; SYNC_ERROR becomes *err with its text. */
int hull_sync_expect(int sock, int type, struct hull_sync_msg *msg, hull_error *err);

#endif
