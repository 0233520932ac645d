/* Signals and terminal sizes for a microVM sandbox's processes.
 *
 * A process of a microVM sandbox is a child of the keeper holding an agent
 * session (sbx_vm.c). A signal must reach the workload in the guest
 * without ending that session (killing the child would: the agent kills
 * the workload of a host that left), so the keeper writes a fixed-size
 * record (struct hull_vm_exec_ctl) into a pipe the child reads while the
 * workload runs; the child sends it to the agent as a request of the
 * session ("signal" or "resize", docs/agent-protocol.md). The pipe is
 * non-blocking on our side: a child that stopped reading makes the verb
 * fail (EBUSY), never the keeper wait. */
#include <errno.h>
#include <fcntl.h>
#include <unistd.h>

#include "procs.h"
#include "util/error.h"

#define VMK_CTL_MAX 128

static struct {
    pid_t pid;
    int fd;
} vmk_ctl[VMK_CTL_MAX];

void vmk_ctl_add(pid_t pid, int fd)
{
    for (int i = 0; i < VMK_CTL_MAX; i++)
        if (vmk_ctl[i].pid <= 0) {
            fcntl(fd, F_SETFL, O_NONBLOCK);
            vmk_ctl[i].pid = pid;
            vmk_ctl[i].fd = fd;
            return;
        }
    close(fd); /* the spawner's table is as large: never reached */
}

void vmk_ctl_drop(pid_t pid)
{
    for (int i = 0; i < VMK_CTL_MAX; i++)
        if (vmk_ctl[i].pid == pid && pid > 0) {
            close(vmk_ctl[i].fd);
            vmk_ctl[i].pid = 0;
        }
}

static int vmk_ctl_send(pid_t pid, const struct hull_vm_exec_ctl *c, hull_error *err)
{
    for (int i = 0; i < VMK_CTL_MAX; i++) {
        if (vmk_ctl[i].pid != pid || pid <= 0)
            continue;
        /* One record is less than PIPE_BUF: written whole or not at all. */
        ssize_t n = write(vmk_ctl[i].fd, c, sizeof(*c));
        if (n == (ssize_t)sizeof(*c))
            return 0;
        if (n < 0 && errno == EAGAIN)
            return hull_error_set(err, EBUSY,
                                  "the process does not take signals now (its "
                                  "session has %d unread)",
                                  (int)(4096 / sizeof(*c)));
        return hull_error_set(err, EBUSY, "the process has exited");
    }
    return hull_error_set(err, EBUSY, "the process has exited");
}

int vmk_signal(pid_t pid, int sig, hull_error *err)
{
    struct hull_vm_exec_ctl c = {.op = HULL_VM_CTL_SIGNAL, .a = sig};
    return vmk_ctl_send(pid, &c, err);
}

int vmk_resize(pid_t pid, unsigned rows, unsigned cols, hull_error *err)
{
    if (rows == 0 || cols == 0)
        return hull_error_set(err, EINVAL, "rows and cols: both must be more than 0");
    struct hull_vm_exec_ctl c = {.op = HULL_VM_CTL_RESIZE, .a = (int32_t)rows, .b = (int32_t)cols};
    return vmk_ctl_send(pid, &c, err);
}
