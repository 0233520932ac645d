/* Background processes of a sandbox (issue 14): the keeper's side
 * (keeper_procs.c, keeper_ring.c) and the HTTP side (sbx_procs.c,
 * sbx_stream.c). */
#ifndef HULLD_PROCS_H
#define HULLD_PROCS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "daemon.h"

/* ---- in the keeper ---- */

/* A process's output: its chunks, oldest first, within a byte budget
 * (hulld --process-buffer); offsets count every byte it ever wrote. */
struct ring_chunk;
struct ring {
    struct ring_chunk *head, *tail;
    uint64_t start, end; /* offsets of the oldest byte kept and of the next one */
    size_t mem, budget;  /* bytes held (with each chunk's overhead), at most budget */
};
void ring_init(struct ring *r, size_t budget);
/* stream: 0 stdout, 1 stderr. */
void ring_append(struct ring *r, int stream, const char *data, size_t len);
/* Up to max bytes from offset on (from start when offset is older), the
 * same stream's neighbours merged: into hdr's "segs" [[stream, offset,
 * len]…] and *data (malloc'd); a "cut" [offset, lost] when offset was
 * dropped already. */
int ring_read(const struct ring *r, uint64_t offset, size_t max, json_object *hdr, char **data,
              size_t *len);
/* Drops the oldest chunk unless it is the newest, which is kept so that
 * what a process wrote last can still be read: false when none went. */
bool ring_shed_oldest(struct ring *r);
void ring_free(struct ring *r);

struct kprocs;
struct kprocs *kprocs_new(int main_sock);
/* The next request on one of the keeper's connections, supervising the
 * processes while none comes: 0 with *conn and *f, -1 once hulld closed
 * the main connection. */
int kprocs_next(struct kprocs *k, struct hull_session *s, int *conn, struct frame *f);
/* A process operation (attach, proc_*): true when f was one (answered). */
bool kprocs_op(struct kprocs *k, struct hull_session *s, int conn, struct frame *f);
/* For a non-streamed exec answered on conn: 0 in a child that runs it
 * (then _exit), its pid in the keeper, which does not read conn until it
 * ended; -1 (no fork) to run it in line. */
pid_t kprocs_fork(struct kprocs *k, int conn);
/* At the end: every process killed (before the sandbox is destroyed), then
 * reaped and freed (after). */
void kprocs_kill(struct kprocs *k, struct hull_session *s);
void kprocs_free(struct kprocs *k);

/* Processes started otherwise than by hull_session_spawn (sbx_vm.c): spawn
 * fills sp (pid a child of the keeper, pidfd, non-blocking pipes); result
 * is the process's result JSON once it was reaped (stop: HULL_STOP_*). */
struct kprocs_backend {
    int (*spawn)(const struct hull_policy *p, bool with_stdin, unsigned rows, unsigned cols,
                 struct hull_session_proc *sp, hull_error *err);
    json_object *(*result)(pid_t pid, int status, int stop);
    /* A signal for the process, a new size of its pty (NULL: as for a
     * container, to the pid and the pty's master). */
    int (*signal)(pid_t pid, int sig, hull_error *err);
    int (*resize)(pid_t pid, unsigned rows, unsigned cols, hull_error *err);
};
void kprocs_set_backend(struct kprocs *k, const struct kprocs_backend *be);

/* sbx_vm.c: a keeper serving a microVM sandbox. vmk_serves: first (the
 * keeper's first request) is a microVM's "create" or an "adopt" of a
 * paused one; vmk_loop then answers it and everything after. */
bool vmk_serves(struct frame *first);
int vmk_loop(struct kprocs *kp, int sock, struct frame *first);
/* Background processes and watches of a microVM sandbox each hold one of
 * its agent's sessions (8: docs/agent-protocol.md) for as long as they
 * run; at most this many at once, so sessions are always left for execs
 * and file calls, which the keeper runs in line (one waiting for a
 * session would hold the keeper). vmk_procs_running: sbx_vm.c's count;
 * vmk_watch_count: sbx_vm_watch.c's. */
#define VMK_SESSIONS_MAX 6
int vmk_procs_running(void);
int vmk_watch_count(void);
/* sbx_vm_procs.c: the control pipe of process pid (a child of the keeper
 * running hull_vm_exec: its ctl_fd's other end), taken; a signal or a pty
 * size sent through it to the agent, which passes it on without ending the
 * session. */
void vmk_ctl_add(pid_t pid, int fd);
void vmk_ctl_drop(pid_t pid);
int vmk_signal(pid_t pid, int sig, hull_error *err);
int vmk_resize(pid_t pid, unsigned rows, unsigned cols, hull_error *err);
/* sbx_vm_watch.c: "watch" of the /fs API: a child of the keeper streams
 * the agent's events of path into a pipe; *fd its read end for hulld. */
int vmk_watch(const char *vm, const char *path, bool recursive, json_object **out, int *fd,
              hull_error *err);
/* Reap watch children that ended; at the end (all) kill them first. */
void vmk_watch_reap(bool all);
/* sbx_vm_fs.c: op "fs" on VM vm (stage: the keeper's staging directory,
 * limit: what an upload may hold). */
void vmk_fs_op(const char *vm, const char *stage, uint64_t limit, int sock, struct frame *f);
/* mkdir -p of guest path's parent in VM vm, by its agent (nothing for "/"). */
int vmk_fs_parents(const char *vm, const char *path, hull_error *err);
/* sbx_vm_tpl.c: op "tpl_save" of VM vm: its snapshot into the template
 * directory dirfd (TPL_VM_SNAP), at most max bytes (0: no bound); *stats
 * what it holds. */
int vmk_tpl_save(const char *vm, int dirfd, uint64_t max, json_object **stats, hull_error *err);
/* sbx_vm_move.c: VM vm moves to another node (op "migrate": hdr "to",
 * "token_file", "mode"; the answer, the figures, sent on sock: 0 when it
 * runs there), or comes here (op "receive": hdr "listen", "token_file";
 * a first answer with "address" once listening; 0 when it runs here). */
int vmk_migrate_out(const char *vm, int sock, struct frame *f, hull_error *err);
int vmk_migrate_in(const char *vm, int sock, struct frame *f, hull_error *err);
/* sbx_vm_csnap.c: op "csnap" of VM vm (paused: on_disk, at disk_snap;
 * busy: a process holds its agent): its snapshot into dirfd/name (via
 * name.part); *unchanged when a paused one's copy is current. */
int vmk_csnap(const char *vm, const char *disk_snap, bool on_disk, bool busy, int dirfd,
              const char *name, bool *unchanged, hull_error *err);
/* src copied to dirfd/name (0600, made or truncated) and synced. */
int csnap_copy(const char *src, int dirfd, const char *name, hull_error *err);

/* ---- in hulld ---- */

/* /v1/sandboxes/{sid}/processes[/{pid}[/{verb}]] (rest: what follows
 * "processes", "" or "/p-…[/verb]"). */
struct sbx;
void sbx_processes(struct sbx *s, const struct request *rq, const char *rest, struct resp *r);
/* POST /v1/sandboxes/{sid}/exec with Accept: application/x-ndjson. */
void sbx_exec_stream(struct sbx *s, const struct request *rq, struct resp *r);
/* sandboxes.c, for sbx_procs.c: one keeper request under the sandbox's op
 * lock (refused 409 when paused and refuse_paused), its id and a new
 * connection of its own to the keeper (-1 with err). */
int sbx_call(struct sbx *s, const char *op, json_object *extra, const void *data, size_t len,
             bool refuse_paused, struct frame *reply, hull_error *err);
const char *sbx_id(const struct sbx *s);
/* A reference for what outlives the request (a stream), and its use: an
 * open stream keeps its sandbox from expiring idle. */
void sbx_hold(struct sbx *s);
void sbx_release(struct sbx *s);
void sbx_touch(struct sbx *s);
int sbx_connect(struct sbx *s, hull_error *err);
/* sbx_stream.c: hdr (taken) sent on keeper connection ks of sandbox s, its
 * answer in *f; while waiting, the client's going (client_fd's hang-up) is
 * ECONNRESET, hulld's draining ESHUTDOWN, the revocation of token (the
 * request's, when not NULL; *mark is what tokens.revoked was when last
 * looked at, zeroed at first) EKEYREVOKED, and s is in use (touched). */
int sbx_keeper_ask(struct sbx *s, int ks, int client_fd, const char *token,
                   struct hull_revoke_mark *mark, json_object *hdr, struct frame *f,
                   hull_error *err);
/* r becomes process pid's output as NDJSON from offset (following it to
 * its end or not), read on keeper connection ks (taken), after a "start"
 * line with first (taken) when not NULL; the stream holds (and gives back
 * at its end) quota's stream place, taken by the caller (NULL: none). -1
 * with r filled when it cannot. */
/* n bytes as base64 (malloc'd, NULL when out of memory): a chunk's
 * "data_b64", for streamed runs too (run_stream.c). */
char *stream_base64(const unsigned char *s, size_t n);
int sbx_stream_answer(struct sbx *s, const struct request *rq, int ks, const char *pid,
                      uint64_t offset, bool follow, json_object *first, const char *quota,
                      struct resp *r);

#endif
