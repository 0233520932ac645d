/* The host side of the agent protocol (agent.c). Internal to vm/. */
#ifndef HULL_VM_AGENT_H
#define HULL_VM_AGENT_H

#include <json-c/json.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "hull.h"
#include "vm/agent_proto.h"

struct vm_agent {
    int fd;
    uint8_t *buf;
    size_t len, cap, consumed;
    int64_t next_id;
    char nonce[17];
};

struct vm_frame {
    uint8_t type;
    uint32_t len;
    uint8_t *data; /* valid until the next receive */
};

/* Connect to the agent's socket and say hello until it answers (the first
 * bytes after a connect can be lost: docs/agent-protocol.md). alive() is
 * polled while waiting so a VMM that died ends the wait at once. */
int vm_agent_open(const char *sock, int timeout_ms, bool (*alive)(void *), void *arg,
                  struct vm_agent **out, json_object **hello, hull_error *err);
void vm_agent_close(struct vm_agent *a);
/* End the session now, the struct kept: a guest that broke the protocol
 * (sent past a limit) gets no more of the host's time, and every later
 * send or receive on a fails. */
void vm_agent_drop(struct vm_agent *a);
/* What poll() is to wait until the monotonic time deadline (ms; -1 none):
 * 0 once it has passed, never more than INT_MAX. */
int vm_ms_left(int64_t deadline);
int vm_agent_send(struct vm_agent *a, uint8_t type, const void *data, size_t len, hull_error *err);
/* Send a request (consumed) with a fresh "id"; returns the id. */
int64_t vm_agent_send_req(struct vm_agent *a, json_object *req, hull_error *err);
/* Next frame, waiting up to timeout_ms (-1 forever). 0 = got one, 1 = timeout. */
int vm_agent_recv(struct vm_agent *a, int timeout_ms, struct vm_frame *f, hull_error *err);
/* The RESP to request id (other frames before it are dropped); the caller
 * frees *resp. A RESP with "ok": false becomes an error. timeout_ms holds
 * however many other frames come meanwhile. */
int vm_agent_wait_resp(struct vm_agent *a, int64_t id, int timeout_ms, json_object **resp,
                       hull_error *err);
/* Request and response in one. */
int vm_agent_call(struct vm_agent *a, json_object *req, int timeout_ms, json_object **resp,
                  hull_error *err);

#endif
