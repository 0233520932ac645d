/* hull-agent: PID 1 of a hull microVM.
 *
 * It brings the guest up (mounts, kernel modules, the workload root), then
 * serves the host over the virtio-serial port, one connection and one request
 * at a time. Everything here is static C, linked with only a few of libhull's
 * files (the watch events, the file API's verbs and what they use), so the
 * binary can be dropped into an initramfs as is.
 */
#ifndef HULL_AGENT_H
#define HULL_AGENT_H

#include <json-c/json.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "vm/agent_proto.h"

/* Where the agent keeps its own state inside the guest. */
#define AGENT_RUN    "/run/hull"
#define AGENT_ROOT   AGENT_RUN "/root"  /* the workload's root (overlay) */
#define AGENT_LOWER  AGENT_RUN "/lower" /* read-only rootfs disk */
#define AGENT_RW     AGENT_RUN "/rw"    /* tmpfs holding the overlay's upper layer */
#define AGENT_DEV    AGENT_RUN "/dev"   /* the workload's minimal /dev */
#define AGENT_CGROUP "/sys/fs/cgroup"

/* Log to the console (the host keeps it in console.log). */
void agent_log(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* ---- the connection to the host (agent_io.c) ---- */

struct frame {
    uint8_t type;
    uint32_t len;
    uint8_t *data; /* owned by the connection; valid until the next read */
};

struct conn {
    int fd;
    bool connected; /* the host has the port open */
    uint8_t *buf;   /* bytes read, not yet consumed */
    size_t len, cap;
    size_t consumed; /* bytes of buf belonging to the frame handed out last */
};

int conn_open(struct conn *c, int fd);
/* Read what the port has (non-blocking). 0 = ok, -1 = host went away. */
int conn_fill(struct conn *c);
/* A complete frame in the buffer? 1 yes, 0 not yet. */
int conn_frame(struct conn *c, struct frame *f);
void conn_reset(struct conn *c);
/* Send one frame; blocks until written. -1 when the host went away. */
int conn_send(struct conn *c, uint8_t type, const void *data, size_t len);
/* RESP and EXIT objects get the current request's "id" added, so a host
 * can tell the answer to its request from a late answer to an earlier one
 * (it repeats "hello" until answered: see agent_main.c). */
int conn_send_json(struct conn *c, uint8_t type, json_object *obj);
extern json_object *agent_req_id;
int conn_send_error(struct conn *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
int conn_send_ok(struct conn *c);
/* Wait for the next frame, blocking; -1 when the host went away. */
int conn_wait_frame(struct conn *c, struct frame *f);

/* ---- requests ---- */

int agent_exec(struct conn *c, json_object *req);
int agent_put_file(struct conn *c, json_object *req);
int agent_get_file(struct conn *c, json_object *req);
/* "fs": stat, list, mkdir, rename, remove in the workload root (agent_fs.c). */
int agent_fs(struct conn *c, json_object *req);
/* "net": configure the guest's network card as the host's lease says
 * (agent_net.c). Once done, workloads share the guest's network namespace
 * (agent_net_up) instead of getting an empty one of their own. */
int agent_net(struct conn *c, json_object *req);
extern bool agent_net_up;
/* path (absolute) beneath the workload root, resolved by the kernel with
 * RESOLVE_IN_ROOT: a symlink in the root cannot lead outside it. */
int agent_open_in_root(const char *path, int flags, mode_t mode);
/* Why path is not one put_file, get_file or a change by "fs" may name
 * (relative, "." or "..", under /proc, /sys or /dev, the root), or NULL. */
const char *agent_check_path(const char *p);
/* Reap exited children that no request waits for (detached execs). */
void agent_reap_detached(void);
int agent_remember_detached(pid_t pid, const char *cgroup);
/* A workload's cgroup (agent_cgroup.c): a key's value in one of its files
 * (the file's first number when key is NULL; -1 when absent), a value
 * written, everything in it killed, and the cgroup removed once empty. */
int64_t cg_read_key(const char *cg, const char *file, const char *key);
int cg_write(const char *cg, const char *file, int64_t v);
int cg_cpu_max(const char *cg, int64_t milli);
void cg_kill(const char *cg);
void cg_remove(const char *cg);

/* Ports (sessions at once) the agent serves at most, and the one this
 * server process serves. */
#define AGENT_MAX_PORTS 8
extern int agent_port_index;
/* Requests that arrive while an exec runs on this session: "signal" and
 * "resize" (agent_exec.c). watch: inotify events of a directory (agent_watch.c). */
int agent_watch(struct conn *c, json_object *req);
/* The guest's network is up (a "net" request succeeded on any session). */
bool agent_net_is_up(void);

/* signalfd for SIGCHLD and SIGIO (both blocked); every wait polls it. */
extern int agent_sigfd;
/* Drain agent_sigfd; returns a mask: 1 = SIGCHLD seen, 2 = SIGIO seen. */
int agent_drain_signals(void);

/* Small helpers (agent_main.c). */
int write_text(const char *path, const char *text);
int read_text(const char *path, char *buf, size_t len);
uint64_t now_ms(void);

#endif
