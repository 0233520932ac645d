/* Workload cgroups and detached workloads, for agent_exec.c. Each server
 * process (one per port) keeps its own detached list: they are its
 * children, reaped by it. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "agent.h"

/* ---- detached workloads ---- */

static struct {
    pid_t pid;
    char cgroup[64];
} detached[64];

void agent_reap_detached(void)
{
    for (size_t i = 0; i < sizeof(detached) / sizeof(detached[0]); i++) {
        if (detached[i].pid <= 0)
            continue;
        int st;
        if (waitpid(detached[i].pid, &st, WNOHANG) == detached[i].pid) {
            detached[i].pid = 0;
            rmdir(detached[i].cgroup);
        }
    }
}

int agent_remember_detached(pid_t pid, const char *cg)
{
    for (size_t i = 0; i < sizeof(detached) / sizeof(detached[0]); i++) {
        if (detached[i].pid <= 0) {
            detached[i].pid = pid;
            snprintf(detached[i].cgroup, sizeof(detached[i].cgroup), "%s", cg);
            return 0;
        }
    }
    return -1;
}

/* ---- cgroup helpers ---- */

int64_t cg_read_key(const char *cg, const char *file, const char *key)
{
    char path[256], buf[4096];
    snprintf(path, sizeof(path), "%s/%s", cg, file);
    if (read_text(path, buf, sizeof(buf)) < 0)
        return -1;
    if (!key)
        return strtoll(buf, NULL, 10);
    size_t kl = strlen(key);
    for (char *p = buf; p && *p; p = strchr(p, '\n') ? strchr(p, '\n') + 1 : NULL)
        if (strncmp(p, key, kl) == 0 && p[kl] == ' ')
            return strtoll(p + kl + 1, NULL, 10);
    return -1;
}

int cg_write(const char *cg, const char *file, int64_t v)
{
    char path[256], val[32];
    snprintf(path, sizeof(path), "%s/%s", cg, file);
    snprintf(val, sizeof(val), "%lld", (long long)v);
    return write_text(path, val);
}

/* CPU bandwidth: milli thousandths of a CPU in each 100 ms (at least the
 * kernel's 1 ms quota). */
int cg_cpu_max(const char *cg, int64_t milli)
{
    char path[256], val[48];
    int64_t quota = milli * 100;
    snprintf(path, sizeof(path), "%s/cpu.max", cg);
    snprintf(val, sizeof(val), "%lld 100000", (long long)(quota < 1000 ? 1000 : quota));
    return write_text(path, val);
}

void cg_kill(const char *cg)
{
    char path[256];
    snprintf(path, sizeof(path), "%s/cgroup.kill", cg);
    write_text(path, "1");
}

/* rmdir succeeds once the last process has been released. */
void cg_remove(const char *cg)
{
    for (int i = 0; i < 2000 && rmdir(cg) < 0 && errno == EBUSY; i++) {
        cg_kill(cg);
        usleep(1000);
    }
}
