/* A sandbox on a hull network (process and container levels; microVMs
 * are vm/'s): the sandbox keeps its own network namespace, and hull-net
 * puts a veth into it once its init exists.
 *
 *   prepare   before the layout: HULL_SANDBOX_NET_DIR/<id>/{hosts,resolv.conf}
 *             on a tmpfs in the supervisor's own mount namespace,
 *             empty for now, which the layout binds read-only over the
 *             sandbox's /etc/hosts and /etc/resolv.conf (the host's own
 *             files never show); and the hull-net helper started, so its
 *             exec overlaps the layout and the init's set-up (it waits
 *             for its request; it changes nothing before)
 *   attach    after hull_container_setup, before SYNC_START: the init's
 *             netns to hull_net_attach (hold: the helper undoes it when we
 *             ask, or when we die), then the lease's addresses written into
 *             those same files (in place: the binds hold their inodes)
 *   release   after the run: detach (veth, lease, rules) and the directory
 *
 * A supervisor killed with SIGKILL leaves only the directory (the helper
 * sees its socket close and detaches); hull_sandbox_net_sweep() removes
 * the directories of supervisors that are gone, as collect_stale() does
 * for their state.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

#include "net/net.h"
#include "sandbox/sandbox.h"
#include "util/error.h"
#include "util/fs.h"
#include "util/log.h"
#include "util/proc.h"

int hull_sandbox_net_prepare(struct hull_sandbox_net *n, const struct hull_policy *p,
                             const char *id, hull_error *err)
{
    memset(n, 0, sizeof(*n));
    if (p->network == NULL || p->isolation == HULL_ISOLATION_MICROVM)
        return 0;
    snprintf(n->dir, sizeof(n->dir), "%s/%s", HULL_SANDBOX_NET_DIR, id);
    /* Root's alone (0700 up to here): only hull writes these files; the
     * sandbox gets them read-only through binds whose sources the runtime
     * opens for a user-namespaced init (SYNC_BIND_SOURCE). */
    if (hull_mkdir_p(HULL_SANDBOX_NET_DIR, 0700, err) < 0)
        return hull_error_prefix(err, "network");
    if (mkdir(n->dir, 0755) < 0)
        return hull_error_errno(err, "network: %s", n->dir);
    n->made_dir = true;
    /* A tmpfs of the run's own on it: a bind's source shows in the
     * sandbox's mountinfo as its path on its filesystem, which is then
     * "/hosts" rather than a host path naming hull's directories and this
     * supervisor's pid. Mounted in a mount namespace of the supervisor's
     * own (a slave of the host's, as for --image; the init's is a copy of
     * it): the host's mount table never holds it, and it ends with the
     * supervisor however that ends. */
    if (unshare(CLONE_NEWNS) < 0 || mount(NULL, "/", NULL, MS_REC | MS_SLAVE, NULL) < 0)
        return hull_error_errno(err, "network: a mount namespace of the supervisor's own");
    if (mount("hull-net", n->dir, "tmpfs", MS_NOSUID | MS_NODEV | MS_NOEXEC, "size=64k,mode=0755") <
        0)
        return hull_error_errno(err, "network: mount a tmpfs on %s", n->dir);
    n->mounted = true;
    cleanup_close int dfd = open(n->dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (dfd < 0)
        return hull_error_errno(err, "network: %s", n->dir);
    /* Mount points for now: the binds need their sources to exist (and to
     * be files) when the layout is made, the contents come with the lease. */
    static const char *const names[] = {"hosts", "resolv.conf"};
    for (size_t i = 0; i < 2; i++) {
        cleanup_close int fd =
            openat(dfd, names[i], O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0644);
        if (fd < 0)
            return hull_error_errno(err, "network: %s/%s", n->dir, names[i]);
    }
    n->on = true;
    return hull_net_attach_spawn(&n->helper, err);
}

/* The attach request for the init's network namespace (nsfd: ours to close). */
static int request_for(struct hull_sandbox_net *n, const struct hull_policy *p, const char *id,
                       pid_t init, struct hull_net_attach_req *req, char *member, size_t len,
                       int *nsfd, hull_error *err)
{
    snprintf(member, len, "%s%s", strncmp(id, "sandbox-", 8) == 0 ? "" : "sandbox-", id);
    /* init is our unreaped child (set up, or waiting for SYNC_START), so
     * the pid cannot name another process: this is the sandbox's own
     * namespace. */
    char path[64];
    snprintf(path, sizeof(path), "/proc/%d/ns/net", (int)init);
    *nsfd = open(path, O_RDONLY | O_CLOEXEC);
    if (*nsfd < 0)
        return hull_error_errno(err, "network %s: %s", p->network, path);
    *req = (struct hull_net_attach_req){
        .network = p->network,
        .member = member,
        .owner_pid = 0,
        .tap = false,
        .netns_fd = *nsfd,
        .egress = p->egress,
        .publish = p->publish,
        .n_publish = p->n_publish,
        /* Held: undone by hull_net_detach, or by the helper itself when
         * this process dies without asking (the socket closes). */
        .hold = true,
        .helper = n->helper,
    };
    return 0;
}

void hull_sandbox_net_request(struct hull_sandbox_net *n, const struct hull_policy *p,
                              const char *id, pid_t init)
{
    if (!n->on || !n->helper)
        return;
    char member[sizeof(n->lease.member)];
    struct hull_net_attach_req req;
    cleanup_close int nsfd = -1;
    hull_error e = NULL;
    /* Best effort: if the request cannot go now, attach sends it later
     * and reports what fails then. */
    if (request_for(n, p, id, init, &req, member, sizeof(member), &nsfd, &e) < 0 ||
        hull_net_attach_request(&req, &e) < 0) {
        hull_debug("sandbox %s: early network request: %s", id, hull_error_msg(e));
        hull_error_free(&e);
    }
}

int hull_sandbox_net_attach(struct hull_sandbox_net *n, const struct hull_policy *p, const char *id,
                            pid_t init, hull_error *err)
{
    if (!n->on)
        return 0;
    char member[sizeof(n->lease.member)];
    struct hull_net_attach_req req;
    cleanup_close int nsfd = -1;
    if (request_for(n, p, id, init, &req, member, sizeof(member), &nsfd, err) < 0)
        return -1;
    n->helper = NULL; /* consumed by hull_net_attach */
    /* Its errors name the network already. */
    if (hull_net_attach(&req, &n->session, &n->lease, err) < 0)
        return -1;
    cleanup_close int dfd = open(n->dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (dfd < 0)
        return hull_error_errno(err, "network: %s", n->dir);
    /* Written in place before the program starts: it never sees them empty. */
    return hull_net_write_etc(&n->lease, "sandbox", dfd, err);
}

int hull_sandbox_net_detach(struct hull_sandbox_net *n, hull_error *err)
{
    struct hull_net_session *s = n->session;
    n->session = NULL;
    if (s && hull_net_detach(s, err) < 0)
        return hull_error_prefix(err, "network %s: detach", n->lease.network);
    return 0;
}

void hull_sandbox_net_release(struct hull_sandbox_net *n)
{
    hull_error e = NULL;
    /* A run that failed before its attach: the helper exits on EOF. */
    hull_net_session_drop(&n->helper);
    if (hull_sandbox_net_detach(n, &e) < 0) {
        hull_warn("sandbox: %s", hull_error_msg(e));
        hull_error_free(&e);
    }
    /* Our own directory under root's 0700 HULL_SANDBOX_NET_DIR, and the
     * tmpfs on it; the sandbox's binds of its files went with its mount
     * namespace. */
    if (n->mounted && umount2(n->dir, MNT_DETACH | UMOUNT_NOFOLLOW) < 0)
        hull_warn("sandbox: network: unmount %s: %s", n->dir, strerror(errno));
    if (n->made_dir && hull_rm_rf_at(AT_FDCWD, n->dir, &e) < 0) {
        hull_warn("sandbox: %s", hull_error_msg(e));
        hull_error_free(&e);
    }
    n->made_dir = n->mounted = n->on = false;
}

/* Cleanup warns of what stays; the sweep before each run only notes it. */
__attribute__((format(printf, 2, 3))) static void sweep_note(bool report, const char *fmt, ...)
{
    if (!report && !hull_log_debug_enabled())
        return;
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    hull_log(report ? HULL_LOG_WARNING : HULL_LOG_DEBUG, "%s", msg);
}

int hull_sandbox_net_sweep(bool report)
{
    DIR *d = opendir(HULL_SANDBOX_NET_DIR);
    if (d == NULL) {
        if (errno == ENOENT) /* no run was ever on a network */
            return 0;
        sweep_note(report, "sandbox: %s: %s", HULL_SANDBOX_NET_DIR, strerror(errno));
        return 1;
    }
    int failed = 0;
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        if (!hull_sandbox_id_orphaned(de->d_name))
            continue;
        /* A tmpfs on it is in its dead supervisor's mount namespace, gone
         * with it; one in ours would be a hull's that mounted it here (an
         * older one): unmounted first (EINVAL: none). */
        char path[PATH_MAX];
        snprintf(path, sizeof(path), "%s/%s", HULL_SANDBOX_NET_DIR, de->d_name);
        hull_error e = NULL;
        if (umount2(path, MNT_DETACH | UMOUNT_NOFOLLOW) < 0 && errno != EINVAL && errno != ENOENT) {
            sweep_note(report, "sandbox: stale %s: unmount: %s", path, strerror(errno));
            failed++;
        } else if (hull_rm_rf_at(dirfd(d), de->d_name, &e) < 0) {
            sweep_note(report, "sandbox: stale %s: %s", path, hull_error_msg(e));
            hull_error_free(&e);
            failed++;
        }
    }
    closedir(d);
    return failed;
}
