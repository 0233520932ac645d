/* One sealed guest-RAM memfd for every clone of a template, handed out by a
 * small keeper process, instead of a copy per clone.
 *
 * The first restore of a template's RAM file copies it into a memfd while
 * hashing it and seals it (ramfile.c), then forks a keeper that holds that
 * memfd and listens on <templates>/ram-<digest>.sock (root only: the cache
 * directory is 0700 root, the socket 0600, and the keeper answers uid 0
 * peers only). Every later restore of the same RAM digest gets the same
 * memfd over SCM_RIGHTS and hands it to its QEMU, which maps it private
 * (copy-on-write): N clones share the template's pages, and none can write
 * them (F_SEAL_WRITE: no shared writable mapping, no write(2); the private
 * mapping copies on write into QEMU's own memory).
 *
 * A clone checks what it gets: a memfd of hull's name and the VM's size,
 * sealed against write, grow, shrink and further seals, from a uid-0 peer;
 * and the RAM file on disk must still be the one the keeper loaded (device,
 * inode, size, mtime, ctime), so a file changed since is read and checked
 * again (and refused when its digest is wrong) instead of trusted.
 *
 * Lifetime: each restore keeps its connection open until its QEMU runs,
 * then sends the QEMU's pidfd and hangs up. The keeper counts open
 * connections and live pidfds; at zero, and under the lock every client
 * takes to find or start a keeper, it removes its socket and exits. A
 * keeper killed outright leaves a socket nobody listens on: the next
 * client (under the lock) or `vm delete` removes it (vm_ram_keepers_sweep).
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include "util/error.h"
#include "util/fdpass.h"
#include "util/fs.h"
#include "util/log.h"
#include "vm/vm.h"

#define MAX_HOLDERS 512
#define SEALS       (F_SEAL_WRITE | F_SEAL_GROW | F_SEAL_SHRINK | F_SEAL_SEAL)

/* What the keeper loaded: the RAM file as it was then. */
struct ram_ident {
    uint64_t dev, ino, size;
    int64_t mtime_s, mtime_ns, ctime_s, ctime_ns;
};

static void ident_of(const struct stat *st, struct ram_ident *id)
{
    memset(id, 0, sizeof(*id));
    id->dev = st->st_dev;
    id->ino = st->st_ino;
    id->size = (uint64_t)st->st_size;
    id->mtime_s = st->st_mtim.tv_sec;
    id->mtime_ns = st->st_mtim.tv_nsec;
    id->ctime_s = st->st_ctim.tv_sec;
    id->ctime_ns = st->st_ctim.tv_nsec;
}

/* path in a sockaddr_un; false when it does not fit (callers' paths are
 * /proc/self/fd/N/ram-<32 hex>.sock: they always do). */
static bool sun_of(struct sockaddr_un *sa, const char *path)
{
    size_t l = strlen(path);
    memset(sa, 0, sizeof(*sa));
    sa->sun_family = AF_UNIX;
    if (l >= sizeof(sa->sun_path))
        return false;
    memcpy(sa->sun_path, path, l + 1);
    return true;
}

static void unlock_closep(int *fd)
{
    if (*fd >= 0) {
        flock(*fd, LOCK_UN);
        close(*fd);
    }
}

/* ---- the keeper ---- */

static int serve(int lfd, int memfd, const struct ram_ident *id)
{
    int c = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
    if (c < 0)
        return -1;
    struct ucred cr;
    socklen_t len = sizeof(cr);
    struct iovec iov = {.iov_base = (void *)id, .iov_len = sizeof(*id)};
    if (getsockopt(c, SOL_SOCKET, SO_PEERCRED, &cr, &len) < 0 || cr.uid != 0 ||
        hull_sendmsg_fd(c, &iov, 1, memfd) != (ssize_t)sizeof(*id)) {
        close(c);
        return -1;
    }
    return c;
}

static bool is_pidfd(int fd)
{
    char p[64], t[64];
    snprintf(p, sizeof(p), "/proc/self/fd/%d", fd);
    ssize_t n = readlink(p, t, sizeof(t) - 1);
    return n > 0 && (size_t)n == strlen("anon_inode:[pidfd]") &&
           memcmp(t, "anon_inode:[pidfd]", (size_t)n) == 0;
}

/* The keeper's life: serve, count holders, leave at zero. */
static void keeper(int lfd, int memfd, int dfd, int lockfd, const char *sock,
                   const struct ram_ident *id) __attribute__((noreturn));
static void keeper(int lfd, int memfd, int dfd, int lockfd, const char *sock,
                   const struct ram_ident *id)
{
    prctl(PR_SET_NAME, "hull-ramkeeper");
    /* Whatever its starter blocked or caught (hulld's workers block
     * signals they read from a signalfd): a keeper dies of SIGTERM. */
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);
    signal(SIGTERM, SIG_DFL);
    signal(SIGINT, SIG_DFL);
    signal(SIGHUP, SIG_DFL);
    signal(SIGPIPE, SIG_IGN);
    static struct pollfd p[1 + MAX_HOLDERS];
    static bool pidfd[1 + MAX_HOLDERS];
    int n = 1;
    bool served = false;
    p[0] = (struct pollfd){.fd = lfd, .events = POLLIN};
    for (;;) {
        if (n == 1 && served && flock(lockfd, LOCK_EX | LOCK_NB) == 0) {
            /* No holder, and no client between finding this keeper and
             * getting the memfd (they hold the lock for that): one already
             * queued is served, else the socket goes and so does the keeper. */
            int c = serve(lfd, memfd, id);
            if (c < 0) {
                unlinkat(dfd, sock, 0);
                _exit(0);
            }
            p[n] = (struct pollfd){.fd = c, .events = POLLIN};
            pidfd[n++] = false;
            flock(lockfd, LOCK_UN);
        }
        /* Waiting for the lock: poll briefly. Nobody ever came (the
         * starter died before connecting): give up after a minute. */
        int r = poll(p, (nfds_t)n, n == 1 ? (served ? 50 : 60000) : -1);
        if (r == 0 && !served) {
            unlinkat(dfd, sock, 0);
            _exit(0);
        }
        if (r < 0)
            continue;
        for (int i = n - 1; i >= 1; i--) {
            if (!p[i].revents)
                continue;
            bool drop = true;
            if (!pidfd[i] && (p[i].revents & POLLIN)) {
                char b[8];
                int fd = -1;
                ssize_t m = hull_recvmsg_fd(p[i].fd, b, sizeof(b), &fd);
                if (m > 0 && fd >= 0 && is_pidfd(fd) && n < 1 + MAX_HOLDERS) {
                    /* The clone's QEMU: a holder until it exits. */
                    p[n] = (struct pollfd){.fd = fd, .events = POLLIN};
                    pidfd[n++] = true;
                } else if (fd >= 0)
                    close(fd);
                drop = m <= 0;
            }
            if (drop) {
                close(p[i].fd);
                p[i] = p[n - 1];
                pidfd[i] = pidfd[n - 1];
                n--;
            }
        }
        if ((p[0].revents & POLLIN) && n < 1 + MAX_HOLDERS) {
            int c = serve(lfd, memfd, id);
            if (c >= 0) {
                p[n] = (struct pollfd){.fd = c, .events = POLLIN};
                pidfd[n++] = false;
                served = true;
            }
        }
    }
}

/* Fork the keeper of memfd on a socket bound (listening) before the fork,
 * so the caller's connect cannot miss it. */
static int start_keeper(int dfd, const char *lockn, const char *name, const char *path, int memfd,
                        const struct ram_ident *id, hull_error *err)
{
    cleanup_close int lfd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    struct sockaddr_un sa;
    if (!sun_of(&sa, path))
        return hull_error_set(err, ENAMETOOLONG, "RAM keeper socket %s", path);
    if (lfd < 0)
        return hull_error_errno(err, "RAM keeper socket");
    /* 0600 from the start: no window in which another uid could connect. */
    mode_t old = umask(0177);
    int rc = bind(lfd, (struct sockaddr *)&sa, sizeof(sa));
    umask(old);
    if (rc < 0 || listen(lfd, 64) < 0)
        return hull_error_errno(err, "RAM keeper socket %s", name);
    pid_t a = fork();
    if (a < 0) {
        unlinkat(dfd, name, 0);
        return hull_error_errno(err, "fork the RAM keeper");
    }
    if (a == 0) {
        /* Double fork: the keeper is nobody's child, in no terminal's
         * session, and holds nothing of hull's or its caller's but these. */
        setsid();
        if (fork() != 0)
            _exit(0);
        /* Its own open of the lock file: a flock belongs to the open file
         * description, and the caller's is held (and dropped) by the caller. */
        int lockfd = openat(dfd, lockn, O_RDWR | O_CLOEXEC | O_NOFOLLOW);
        if (lockfd < 0) {
            unlinkat(dfd, name, 0);
            _exit(1);
        }
        int keep[] = {lfd, memfd, dfd, lockfd};
        hull_close_fds_except(3, keep, 4);
        int null = open("/dev/null", O_RDWR);
        if (null >= 0) {
            dup2(null, 0), dup2(null, 1), dup2(null, 2);
            if (null > 2)
                close(null);
        }
        keeper(lfd, memfd, dfd, lockfd, name, id);
    }
    while (waitpid(a, NULL, 0) < 0 && errno == EINTR)
        ;
    return 0;
}

/* ---- clients ---- */

/* The memfd from the keeper at path, checked; 1 when nobody listens. */
static int fetch(const char *path, uint64_t size, const struct stat *file, int *memfd, int *conn,
                 hull_error *err)
{
    cleanup_close int c = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_un sa;
    if (!sun_of(&sa, path))
        return hull_error_set(err, ENAMETOOLONG, "RAM keeper socket %s", path);
    if (c < 0)
        return hull_error_errno(err, "RAM keeper socket");
    if (connect(c, (struct sockaddr *)&sa, sizeof(sa)) < 0)
        return errno == ENOENT || errno == ECONNREFUSED ? 1 : hull_error_errno(err, "RAM keeper");
    struct timeval tv = {.tv_sec = 10};
    setsockopt(c, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    struct ucred cr;
    socklen_t len = sizeof(cr);
    if (getsockopt(c, SOL_SOCKET, SO_PEERCRED, &cr, &len) < 0 || cr.uid != 0)
        return hull_error_set(err, EPERM, "RAM keeper is not root's");
    struct ram_ident got, now;
    int fd = -1;
    ssize_t m = hull_recvmsg_fd(c, &got, sizeof(got), &fd);
    cleanup_close int mfd = fd;
    if (m != (ssize_t)sizeof(got) || mfd < 0)
        return hull_error_set(err, EPROTO, "RAM keeper sent no memfd");
    struct stat st;
    char link[64], t[64];
    snprintf(link, sizeof(link), "/proc/self/fd/%d", mfd);
    ssize_t tn = readlink(link, t, sizeof(t) - 1);
    t[tn > 0 ? tn : 0] = 0;
    if (fstat(mfd, &st) < 0 || !S_ISREG(st.st_mode) || (uint64_t)st.st_size != size ||
        fcntl(mfd, F_GET_SEALS) != SEALS || strncmp(t, "/memfd:hull-guest-ram", 21) != 0)
        return hull_error_set(err, EPERM, "RAM keeper's memfd is not a sealed guest RAM copy");
    ident_of(file, &now);
    if (memcmp(&got, &now, sizeof(now)) != 0)
        return 2; /* the file changed since the keeper read it */
    *memfd = mfd, mfd = -1;
    *conn = c, c = -1;
    return 0;
}

static void keeper_names(const char *sha, char sock[64], char lock[64])
{
    snprintf(sock, 64, "ram-%.32s.sock", sha);
    snprintf(lock, 64, "ram-%.32s.lock", sha);
}

int vm_ram_shared(const char *ramf, uint64_t size, const char *sha, int *memfd, int *conn,
                  hull_error *err)
{
    *conn = -1;
    char dir[4200], sock[64], lockn[64], path[128];
    snprintf(dir, sizeof(dir), "%s", ramf);
    char *slash = strrchr(dir, '/');
    if (!slash)
        return vm_ram_load(ramf, size, sha, memfd, err);
    *slash = 0;
    keeper_names(sha, sock, lockn);
    cleanup_close int dfd = open(dir, O_PATH | O_DIRECTORY | O_CLOEXEC);
    if (dfd < 0)
        return hull_error_errno(err, "open %s", dir);
    snprintf(path, sizeof(path), "/proc/self/fd/%d/%s", dfd, sock);
    __attribute__((cleanup(unlock_closep))) int lk =
        openat(dfd, lockn, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
    if (lk < 0 || flock(lk, LOCK_EX) < 0)
        return hull_error_errno(err, "lock %s/%s", dir, lockn);
    struct stat st;
    if (stat(ramf, &st) < 0)
        return hull_error_errno(err, "guest RAM file %s", ramf);
    hull_error e = NULL;
    int rc = fetch(path, size, &st, memfd, conn, &e);
    if (rc == 0)
        return 0;
    if (rc < 0) {
        /* A keeper that answers wrongly is not used; a private copy is. */
        hull_warn("%s: %s", sock, hull_error_msg(e));
        hull_error_free(&e);
        return vm_ram_load(ramf, size, sha, memfd, err);
    }
    if (rc == 2)
        return vm_ram_load(ramf, size, sha, memfd, err);
    /* Nobody listens: a keeper killed outright left its socket. */
    unlinkat(dfd, sock, 0);
    cleanup_close int own = -1;
    if (vm_ram_load(ramf, size, sha, &own, err) < 0)
        return -1;
    struct ram_ident id;
    ident_of(&st, &id);
    if (start_keeper(dfd, lockn, sock, path, own, &id, &e) < 0 ||
        (rc = fetch(path, size, &st, memfd, conn, &e)) != 0) {
        /* Only the sharing is lost: this clone uses its own copy. */
        hull_warn("%s: %s", sock, e ? hull_error_msg(e) : "keeper did not answer");
        hull_error_free(&e);
        *memfd = own, own = -1;
    }
    return 0;
}

void vm_ram_keeper_hold(int conn, pid_t vmm)
{
    if (conn < 0)
        return;
    int pfd = vmm > 0 ? (int)syscall(SYS_pidfd_open, vmm, 0) : -1;
    if (pfd >= 0) {
        char b = 'P';
        struct iovec iov = {.iov_base = &b, .iov_len = 1};
        hull_sendmsg_fd(conn, &iov, 1, pfd);
        close(pfd);
    }
    close(conn);
}

void vm_ram_keepers_sweep(void)
{
    /* Looked up, never created: a delete makes no cache directory. */
    char dir[4096];
    if (snprintf(dir, sizeof(dir), "%s/templates", vm_cache_dir()) >= (int)sizeof(dir))
        return;
    cleanup_close int dfd = open(dir, O_PATH | O_DIRECTORY | O_CLOEXEC);
    DIR *d = opendir(dir);
    if (dfd < 0 || !d) {
        if (d)
            closedir(d);
        return;
    }
    struct dirent *de;
    while ((de = readdir(d))) {
        size_t l = strlen(de->d_name);
        if (strncmp(de->d_name, "ram-", 4) != 0 || l < 5 || strcmp(de->d_name + l - 5, ".sock"))
            continue;
        char lockn[300], path[400];
        snprintf(lockn, sizeof(lockn), "%.*s.lock", (int)(l - 5), de->d_name);
        snprintf(path, sizeof(path), "/proc/self/fd/%d/%s", dfd, de->d_name);
        __attribute__((cleanup(unlock_closep))) int lk =
            openat(dfd, lockn, O_RDWR | O_CLOEXEC | O_NOFOLLOW);
        if (lk < 0 || flock(lk, LOCK_EX | LOCK_NB) < 0)
            continue; /* in use right now */
        cleanup_close int c = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        struct sockaddr_un sa;
        if (c >= 0 && sun_of(&sa, path) && connect(c, (struct sockaddr *)&sa, sizeof(sa)) < 0 &&
            errno == ECONNREFUSED) {
            /* Its keeper was killed: the socket is all that is left (the
             * lock file stays, as a template's does, for whoever opens it). */
            unlinkat(dfd, de->d_name, 0);
        }
    }
    closedir(d);
}
