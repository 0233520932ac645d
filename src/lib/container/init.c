/* The container's init, from fork to execve. See launch.h for the protocol.
 *
 * This runs in a forked copy of the runtime, single-threaded, with the parsed
 * spec already in memory: no re-exec of hull, no helper process. Any failure
 * is sent to the runtime as text and the process exits; the runtime then
 * cleans up. Order matters throughout and each step says why it is where it is.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "container/hooks.h"
#include "container/launch.h"
#include "container/sync.h"
#include "linux/creds.h"
#include "linux/mounts.h"
#include "linux/namespaces.h"
#include "linux/terminal.h"
#include "util/error.h"
#include "util/fs.h"
#include "util/json.h"
#include "util/log.h"

#ifndef CLOSE_RANGE_CLOEXEC
#define CLOSE_RANGE_CLOEXEC (1U << 2)
#endif

#define DEFAULT_PATH "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

static const char *env_get(char *const *env, const char *key)
{
    size_t kl = strlen(key);
    for (char *const *e = env; e && *e; e++)
        if (strncmp(*e, key, kl) == 0 && (*e)[kl] == '=')
            return *e + kl + 1;
    return NULL;
}

static bool is_executable(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 && S_ISREG(st.st_mode) && access(path, X_OK) == 0;
}

char *hull_find_executable(const char *file, char *const *env, hull_error *err)
{
    if (strchr(file, '/') != NULL) {
        if (!is_executable(file)) {
            struct stat st;
            if (stat(file, &st) < 0)
                hull_error_errno(err, "exec: \"%s\"", file);
            else
                hull_error_set(err, EACCES, "exec: \"%s\": not an executable file", file);
            return NULL;
        }
        return strdup(file);
    }
    const char *path = env_get(env, "PATH");
    if (path == NULL)
        path = DEFAULT_PATH;
    const char *p = path;
    for (;;) {
        const char *end = strchrnul(p, ':');
        char cand[PATH_MAX];
        int n = end == p ? snprintf(cand, sizeof(cand), "./%s", file)
                         : snprintf(cand, sizeof(cand), "%.*s/%s", (int)(end - p), p, file);
        if (n > 0 && (size_t)n < sizeof(cand) && is_executable(cand))
            return strdup(cand);
        if (*end == '\0')
            break;
        p = end + 1;
    }
    hull_error_set(err, ENOENT, "exec: \"%s\": executable file not found in $PATH", file);
    return NULL;
}

/* HOME from the container's /etc/passwd when the spec's env has none. */
static char **env_with_home(char **env, uint32_t uid)
{
    size_t n = hull_strv_len(env);
    char **out = calloc(n + 2, sizeof(char *));
    if (out == NULL)
        return NULL;
    for (size_t i = 0; i < n; i++)
        out[i] = env[i];
    if (env_get(env, "HOME") != NULL)
        return out;
    const char *home = "/";
    char line[1024];
    static char found[PATH_MAX];
    FILE *f = fopen("/etc/passwd", "re");
    while (f && fgets(line, sizeof(line), f)) {
        /* name:pw:uid:gid:gecos:dir:shell */
        char *fields[7] = {0};
        char *s = line;
        for (int i = 0; i < 7 && s; i++) {
            fields[i] = s;
            s = strchr(s, ':');
            if (s)
                *s++ = '\0';
        }
        if (fields[2] && fields[5] && strtoul(fields[2], NULL, 10) == uid) {
            snprintf(found, sizeof(found), "%s", fields[5]);
            home = found;
            break;
        }
    }
    if (f)
        fclose(f);
    static char entry[PATH_MAX + 8];
    snprintf(entry, sizeof(entry), "HOME=%s", home);
    out[n] = entry;
    return out;
}

static int set_hostname(const struct hull_spec *spec, hull_error *err)
{
    if (spec->hostname && spec->hostname[0] &&
        sethostname(spec->hostname, strlen(spec->hostname)) < 0)
        return hull_error_errno(err, "hostname: %s", spec->hostname);
    if (spec->domainname && spec->domainname[0] &&
        setdomainname(spec->domainname, strlen(spec->domainname)) < 0)
        return hull_error_errno(err, "domainname: %s", spec->domainname);
    return 0;
}

/* linux.sysctl: only keys that belong to a namespace the container owns. */
static int apply_sysctl(const struct hull_spec *spec, hull_error *err)
{
    const struct hull_linux *l = &spec->linux_;
    for (char **kv = l->sysctl; kv && kv[0] && kv[1]; kv += 2) {
        const char *key = kv[0];
        bool ipc = strncmp(key, "kernel.msg", 10) == 0 || strncmp(key, "kernel.sem", 10) == 0 ||
                   strncmp(key, "kernel.shm", 10) == 0 || strncmp(key, "fs.mqueue.", 10) == 0;
        bool net = strncmp(key, "net.", 4) == 0;
        bool uts = strcmp(key, "kernel.hostname") == 0 || strcmp(key, "kernel.domainname") == 0;
        if (!((ipc && l->ns[HULL_NS_IPC].enabled) || (net && l->ns[HULL_NS_NET].enabled) ||
              (uts && l->ns[HULL_NS_UTS].enabled)))
            return hull_error_set(err, EPERM,
                                  "linux.sysctl: %s is not namespaced by this container's "
                                  "namespaces and would change the host",
                                  key);
        if (strstr(key, "..") != NULL || strchr(key, '/') != NULL)
            return hull_error_set(err, EINVAL, "linux.sysctl: invalid key %s", key);
        char path[PATH_MAX];
        snprintf(path, sizeof(path), "/proc/sys/%s", key);
        for (char *p = path + 10; *p; p++)
            if (*p == '.')
                *p = '/';
        if (hull_write_file(path, kv[1], strlen(kv[1]), err) < 0)
            return hull_error_prefix(err, "linux.sysctl: %s", key);
    }
    return 0;
}

static void reset_signals(void)
{
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);
    /* Ignored signals survive execve; the container must start clean. */
    for (int s = 1; s < NSIG; s++)
        if (s != SIGKILL && s != SIGSTOP)
            signal(s, SIG_DFL);
}

static int wait_for_start(struct hull_launch *l, hull_error *err)
{
    if (l->foreground) {
        struct hull_sync_msg m;
        return hull_sync_expect(l->child_fd, SYNC_START, &m, err);
    }
    /* The runtime is gone; `hull start` writes one byte into exec.fifo. */
    char b;
    ssize_t n;
    do {
        n = read(l->fifo_fd, &b, 1);
    } while (n < 0 && errno == EINTR);
    if (n != 1)
        return hull_error_errno(err, "wait for start");
    return 0;
}

static int init_steps(struct hull_launch *l, char **exec_path, char ***envp, hull_error *err)
{
    const struct hull_spec *spec = l->spec;
    const struct hull_process *proc = spec->process;
    const struct hull_linux *lx = &spec->linux_;
    struct hull_sync_msg m;
    bool userns = lx->ns[HULL_NS_USER].enabled;
    bool new_userns = userns && lx->ns[HULL_NS_USER].path == NULL;

    /* Wait until the runtime wrote our id maps and put us in our cgroup:
     * nothing below may run unaccounted or as an unmapped user. */
    if (hull_sync_expect(l->child_fd, SYNC_CGROUP_DONE, &m, err) < 0)
        return -1;

    if (userns) {
        /* Become root of the user namespace: the mounts below are owned by it. */
        if (setresgid(0, 0, 0) < 0 || setresuid(0, 0, 0) < 0)
            return hull_error_errno(err, "become root in the user namespace (is uid/gid 0 "
                                         "mapped in linux.uidMappings/gidMappings?)");
    }
    (void)new_userns;

    /* After the cgroup move, so the namespace's root is the container's cgroup. */
    if (lx->ns[HULL_NS_CGROUP].enabled && lx->ns[HULL_NS_CGROUP].path == NULL &&
        unshare(CLONE_NEWCGROUP) < 0)
        return hull_error_errno(err, "unshare cgroup namespace");

    struct hull_rootfs rfs = {
        .spec = spec,
        .cgroup = l->cgroup,
        .userns = userns,
        .cgroupns = lx->ns[HULL_NS_CGROUP].enabled,
        .rootfd = -1,
    };
    if (hull_rootfs_prepare(&rfs, err) < 0)
        return -1;

    /* Hooks that need the namespaces but the host's filesystem view run
     * here, before pivot_root takes that view away. */
    const struct hull_hooks *hk = &spec->hooks;
    char *state_json = NULL;
    if (hk->n_prestart || hk->n_create_runtime || hk->n_create_container ||
        hk->n_start_container) {
        if (hull_sync_send(l->child_fd, SYNC_HOOKS, 0, err) < 0 ||
            hull_sync_expect(l->child_fd, SYNC_HOOKS_DONE, &m, err) < 0)
            return -1;
        state_json = strdup(m.text);
        if (hull_hooks_run(hk->create_container, hk->n_create_container, "createContainer",
                           state_json, err) < 0)
            return -1;
    }

    if (hull_rootfs_pivot(&rfs, l->no_pivot, err) < 0 || hull_rootfs_propagation(&rfs, err) < 0)
        return -1;
    if (set_hostname(spec, err) < 0)
        return -1;
    /* sysctls go through /proc/sys, which the readonly paths below close. */
    if (apply_sysctl(spec, err) < 0)
        return -1;
    if (hull_rootfs_protect(&rfs, err) < 0)
        return -1;
    close(rfs.rootfd);

    if (proc->terminal) {
        int master, slave;
        if (hull_pty_open(&master, &slave, proc->console_height, proc->console_width, err) < 0)
            return -1;
        if (hull_sync_send_fd(l->child_fd, SYNC_PTY, master, err) < 0)
            return -1;
        close(master);
        if (hull_pty_become_console(slave, err) < 0)
            return -1;
    }

    /* Resolve the program now, so `create` fails for a missing binary
     * instead of `start` silently doing nothing. */
    *exec_path = hull_find_executable(proc->args[0], proc->env, err);
    if (*exec_path == NULL)
        return -1;
    if (chdir(proc->cwd) < 0)
        return hull_error_errno(err, "process.cwd: %s", proc->cwd);
    *envp = env_with_home(proc->env, proc->user.uid);
    if (*envp == NULL)
        return hull_error_set(err, ENOMEM, "out of memory");

    /* From here on the runtime may exit (create, or a killed `run`, as with
     * runc): the parent-death signal must not kill a set-up container. The
     * sandbox asks for the opposite (die_with_parent). */
    if (!l->die_with_parent && prctl(PR_SET_PDEATHSIG, 0) < 0)
        return hull_error_errno(err, "prctl(PR_SET_PDEATHSIG)");
    if (hull_sync_send(l->child_fd, SYNC_READY, 0, err) < 0)
        return -1;
    if (wait_for_start(l, err) < 0)
        return -1;

    if (hull_hooks_run(hk->start_container, hk->n_start_container, "startContainer", state_json,
                       err) < 0)
        return -1;
    free(state_json);

    if (hull_personality_apply(lx, err) < 0)
        return -1;
    if (!proc->terminal && setsid() < 0)
        return hull_error_errno(err, "setsid");

    /* Without no_new_privs, installing a filter needs CAP_SYS_ADMIN: load it
     * while we still have it (the profile must then allow what follows). */
    if (l->seccomp && !proc->no_new_privileges && hull_seccomp_load(l->seccomp, NULL, err) < 0)
        return -1;
    if (proc->has_caps && hull_caps_drop_bounding(&proc->caps, err) < 0)
        return -1;
    if (hull_creds_apply(proc, err) < 0)
        return -1;
    /* A uid change clears the parent-death signal; arm it again. */
    if (l->die_with_parent && prctl(PR_SET_PDEATHSIG, SIGKILL) < 0)
        return hull_error_errno(err, "prctl(PR_SET_PDEATHSIG)");
    if (proc->no_new_privileges && prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0)
        return hull_error_errno(err, "process.noNewPrivileges");
    /* Last, so the filter constrains only the container's own program. */
    if (l->seccomp && proc->no_new_privileges && hull_seccomp_load(l->seccomp, NULL, err) < 0)
        return -1;
    return 0;
}

void hull_init_main(struct hull_launch *l)
{
    hull_error err = NULL;
    char *exec_path = NULL;
    char **envp = NULL;

    /* Shed the runtime's fds first: the locked state directory above all,
     * or `start` would wait forever for a lock the init holds. */
    int keep[] = {l->child_fd, l->fifo_fd, hull_log_fd()};
    hull_close_fds_except(3 + l->preserve_fds, keep, sizeof(keep) / sizeof(keep[0]));
    l->sync_fd = -1;
    /* Die with the runtime while setting up: a half-built container must
     * not outlive the process that would clean it up. */
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    /* /proc/<init>/exe leads to the hull binary until execve; a non-dumpable
     * process keeps the container from opening it (CVE-2019-5736). */
    prctl(PR_SET_DUMPABLE, 0);

    if (init_steps(l, &exec_path, &envp, &err) < 0) {
        hull_sync_send_error(l->child_fd, err);
        _exit(1);
    }

    /* Only 0-2 and the preserved fds cross into the container; everything
     * else the runtime had open (sync socket, fifo, log) closes on exec. */
    int first = 3 + l->preserve_fds;
    if (syscall(SYS_close_range, first, ~0U, CLOSE_RANGE_CLOEXEC) < 0) {
        for (int fd = first; fd < 65536; fd++)
            fcntl(fd, F_SETFD, FD_CLOEXEC);
    }
    for (int fd = 3; fd < first; fd++)
        fcntl(fd, F_SETFD, 0);
    reset_signals();

    execve(exec_path, l->spec->process->args, envp);
    hull_error_errno(&err, "exec %s", exec_path);
    /* In a foreground run the runtime still listens; after `start` nobody does. */
    if (hull_sync_send_error(l->child_fd, err) < 0)
        dprintf(2, "hull: %s\n", hull_error_msg(err));
    _exit(127);
}
