/* keeper_procs.c's insides, shared with keeper_procs_ops.c (the operations
 * hulld asks of a sandbox's processes). */
#ifndef HULLD_KEEPER_PROCS_H
#define HULLD_KEEPER_PROCS_H

#include <sys/resource.h>
#include <time.h>

#include "procs.h"

#define MAX_RUNNING 64 /* processes running at once in one sandbox */
#define MAX_EXITED  64 /* exited ones kept for their output and result */
#define MAX_CONNS   512
#define STDIN_QUEUE (1u << 20)
#define READ_MAX    (64u << 10)
#define HOLD_MS     5000u
/* The output all of a sandbox's processes hold together, in process
 * buffers: 64 running and 64 exited processes could otherwise make the
 * keeper (outside the sandbox's memory limit) hold 128 of them. */
#define SANDBOX_BUFFERS 8u
/* Stdin waiting in the keeper for all of a sandbox's processes together
 * (each has STDIN_QUEUE of it at most). */
#define SANDBOX_STDIN (8u * STDIN_QUEUE)

struct kproc {
    struct kproc *next;
    char id[40];
    json_object *cmd;
    uint64_t cpu_time_ms; /* for the verdict */
    struct hull_session_proc sp;
    bool pty, running, stdin_open;
    bool reaped;     /* exited, its output not all read yet (a reader holds it) */
    bool hold_start; /* an exec's: held for its first reader (HOLD_MS) */
    int status;
    struct rusage ru;
    uint64_t start_ns, reaped_ns;
    int stop;                         /* HULL_STOP_* */
    uint64_t deadline_ns, output_max; /* 0: none */
    time_t started, ended;
    char *inq; /* stdin not yet taken by the process */
    size_t inq_len, inq_off;
    bool close_after; /* close its stdin once inq is written */
    struct ring out;
    json_object *result;
};

enum park { PARK_NONE, PARK_READ, PARK_WAIT };

struct kconn {
    int fd;
    enum park park;
    char id[40];
    uint64_t offset, after, max, deadline_ns;
    /* The process it follows, where it was and when it last asked. */
    char follow[40];
    uint64_t follow_off, follow_ns;
};

struct kprocs {
    struct kconn conns[MAX_CONNS];
    size_t n_conns;
    struct kproc *procs; /* newest first */
    /* A non-streamed exec, run by a child of ours (kprocs_fork): the
     * connection it answers on is not read meanwhile. */
    pid_t exec_pid;
    int exec_pidfd, exec_conn;
    const struct kprocs_backend *be; /* NULL: the container session's */
};

void kp_reply(int conn, json_object *hdr, const void *data, size_t len);
void kp_reply_json(int conn, json_object *o);
json_object *kp_describe(const struct kproc *p);
struct kproc *kp_find(struct kprocs *k, const char *id, hull_error *err);
const char *kp_hstr(struct frame *f, const char *key);
uint64_t kp_hu64(struct frame *f, const char *key);
void kp_kill_proc(struct kproc *p, int stop);
void kp_feed_stdin(struct kproc *p);
void kp_answer_read(struct kprocs *k, int conn, const char *id, uint64_t offset, size_t max);

#endif
