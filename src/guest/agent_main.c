/* hull-agent: boot the guest and serve the host.
 *
 * Boot order matters: /dev, /proc and /sys first (everything else needs
 * them), then the kernel modules (the virtio transport, console and block
 * drivers are modules in Debian's kernel), then the rootfs disk and the
 * workload root, and only then the port, so the host's first "hello" is
 * answered by an agent that can already run workloads. A failure anywhere
 * powers the guest off: the host sees QEMU exit at once rather than waiting
 * out a deadline.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/random.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/reboot.h>
#include <sys/signalfd.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <sys/utsname.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "agent.h"

int agent_sigfd = -1;
int agent_port_index;

static void vlog(const char *prefix, const char *fmt, va_list ap)
{
    char msg[1024];
    vsnprintf(msg, sizeof(msg), fmt, ap);
    dprintf(2, "hull-agent: %s%s\n", prefix, msg);
}

void agent_log(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vlog("", fmt, ap);
    va_end(ap);
}

static void die(const char *fmt, ...) __attribute__((noreturn, format(printf, 1, 2)));
static void die(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vlog("fatal: ", fmt, ap);
    va_end(ap);
    sync();
    if (getpid() == 1)
        reboot(RB_POWER_OFF);
    _exit(1);
}

uint64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

int write_text(const char *path, const char *text)
{
    int fd = open(path, O_WRONLY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    ssize_t n = write(fd, text, strlen(text));
    int saved = errno;
    close(fd);
    errno = saved;
    return n == (ssize_t)strlen(text) ? 0 : -1;
}

int read_text(const char *path, char *buf, size_t len)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    ssize_t n = read(fd, buf, len - 1);
    close(fd);
    if (n < 0)
        return -1;
    buf[n] = 0;
    return (int)n;
}

static void must_mount(const char *src, const char *dst, const char *type, unsigned long flags,
                       const char *data)
{
    mkdir(dst, 0755);
    if (mount(src, dst, type, flags, data) < 0)
        die("mount %s on %s: %s", type ? type : src, dst, strerror(errno));
}

/* The host lists the modules in dependency order in /hull/modules.order
 * (it resolved modules.dep when it built the initramfs). */
static void load_modules(void)
{
    FILE *f = fopen("/hull/modules.order", "re");
    if (!f)
        return; /* a kernel with everything built in */
    char line[256];
    while (fgets(line, sizeof(line), f)) {
        line[strcspn(line, "\n")] = 0;
        if (!line[0])
            continue;
        char path[320];
        snprintf(path, sizeof(path), "/hull/modules/%s", line);
        int fd = open(path, O_RDONLY | O_CLOEXEC);
        if (fd < 0)
            die("open %s: %s", path, strerror(errno));
        if (syscall(SYS_finit_module, fd, "", 0) < 0 && errno != EEXIST)
            die("load module %s: %s", line, strerror(errno));
        close(fd);
    }
    fclose(f);
}

static bool cmdline_has(const char *word)
{
    char buf[4096];
    if (read_text("/proc/cmdline", buf, sizeof(buf)) < 0)
        return false;
    size_t wl = strlen(word);
    for (char *p = buf; (p = strstr(p, word)); p += wl)
        if ((p == buf || p[-1] == ' ') &&
            (p[wl] == ' ' || p[wl] == '\n' || p[wl] == 0 || p[wl] == '='))
            return true;
    return false;
}

static bool wait_path(const char *path, int timeout_ms)
{
    uint64_t end = now_ms() + (uint64_t)timeout_ms;
    while (access(path, F_OK) < 0) {
        if (now_ms() > end)
            return false;
        usleep(1000);
    }
    return true;
}

/* The workload root: the rootfs disk read-only under a tmpfs upper layer,
 * so writes land in guest RAM (and so in snapshots) and never on the image
 * that several VMs share. */
static void setup_root(void)
{
    must_mount("tmpfs", AGENT_RW, "tmpfs", MS_NOSUID | MS_NODEV, "mode=0755");
    if (cmdline_has("hull.disk")) {
        if (!wait_path("/dev/vda", 10000))
            die("rootfs disk /dev/vda did not appear");
        mkdir(AGENT_LOWER, 0755);
        if (mount("/dev/vda", AGENT_LOWER, "squashfs", MS_RDONLY | MS_NODEV, NULL) < 0 &&
            mount("/dev/vda", AGENT_LOWER, "erofs", MS_RDONLY | MS_NODEV, NULL) < 0)
            die("mount rootfs disk: %s", strerror(errno));
        mkdir(AGENT_RW "/upper", 0755);
        mkdir(AGENT_RW "/work", 0755);
        must_mount("overlay", AGENT_ROOT, "overlay", MS_NODEV,
                   "lowerdir=" AGENT_LOWER ",upperdir=" AGENT_RW "/upper,workdir=" AGENT_RW
                   "/work");
    } else {
        mkdir(AGENT_RW "/root", 0755);
        must_mount(AGENT_RW "/root", AGENT_ROOT, NULL, MS_BIND, NULL);
    }
    static const char *dirs[] = {"proc", "dev", "sys", "tmp"};
    for (size_t i = 0; i < sizeof(dirs) / sizeof(dirs[0]); i++) {
        char p[128];
        snprintf(p, sizeof(p), AGENT_ROOT "/%s", dirs[i]);
        mkdir(p, 0755);
    }
    chmod(AGENT_ROOT "/tmp", 01777);
}

/* The minimal /dev every workload gets, made once and bind-mounted. */
static void setup_dev(void)
{
    must_mount("tmpfs", AGENT_DEV, "tmpfs", MS_NOSUID | MS_NOEXEC, "mode=0755,size=64k");
    static const struct {
        const char *name;
        int maj, min;
    } nodes[] = {
        {"null", 1, 3},   {"zero", 1, 5},    {"full", 1, 7},
        {"random", 1, 8}, {"urandom", 1, 9}, {"tty", 5, 0},
    };
    for (size_t i = 0; i < sizeof(nodes) / sizeof(nodes[0]); i++) {
        char p[128];
        snprintf(p, sizeof(p), AGENT_DEV "/%s", nodes[i].name);
        if (mknod(p, S_IFCHR | 0666, makedev(nodes[i].maj, nodes[i].min)) < 0)
            die("mknod %s: %s", p, strerror(errno));
        chmod(p, 0666);
    }
    symlink("/proc/self/fd", AGENT_DEV "/fd");
    symlink("/proc/self/fd/0", AGENT_DEV "/stdin");
    symlink("/proc/self/fd/1", AGENT_DEV "/stdout");
    symlink("/proc/self/fd/2", AGENT_DEV "/stderr");
    mkdir(AGENT_DEV "/shm", 01777);
    chmod(AGENT_DEV "/shm", 01777);
    /* Terminals for exec with a pty: a devpts of the agent's own, in the
     * workloads' /dev so that a terminal's name (/proc/self/fd/0 ->
     * /dev/pts/N) resolves there and ttyname(3), tty(1) and ssh-style
     * programs work. Everything in it belongs to this guest's sandbox
     * (the VM is the boundary); the slaves are mode 0600. */
    mkdir(AGENT_DEV "/pts", 0755);
    if (mount("devpts", AGENT_DEV "/pts", "devpts", MS_NOSUID | MS_NOEXEC,
              "newinstance,ptmxmode=0600,mode=0600") < 0)
        agent_log("mount devpts: %s (exec with a pty will fail)", strerror(errno));
    symlink("pts/ptmx", AGENT_DEV "/ptmx");
}

static void setup_cgroup(void)
{
    must_mount("cgroup2", AGENT_CGROUP, "cgroup2", MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL);
    if (write_text(AGENT_CGROUP "/cgroup.subtree_control", "+memory +pids +cpu") < 0)
        die("enable cgroup controllers: %s", strerror(errno));
}

/* The port's index from its name: "org.hull.agent" is 0, "org.hull.agent.N"
 * is N; -1 for any other port. */
static int port_index(const char *name)
{
    size_t l = strlen(HULL_AGENT_PORT_NAME);
    if (strncmp(name, HULL_AGENT_PORT_NAME, l) != 0)
        return -1;
    if (name[l] == '\n' || name[l] == 0)
        return 0;
    if (name[l] != '.' || name[l + 1] < '1' || name[l + 1] > '9')
        return -1;
    char *end;
    long n = strtol(name + l + 1, &end, 10);
    return (*end == '\n' || *end == 0) && n < AGENT_MAX_PORTS ? (int)n : -1;
}

/* Every agent port the host gave (one per session it may hold at once):
 * fds[i] for port i, -1 where none. Port 0 must be there; the rest are
 * announced by the time it is (one device, one probe). */
static int open_ports(int fds[AGENT_MAX_PORTS])
{
    /* How many the host made: hull.ports=N on the command line (absent:
     * one, a VM of an older hull). */
    char cmd[4096];
    int want = 1, found = 0;
    char *w = read_text("/proc/cmdline", cmd, sizeof(cmd)) > 0 ? strstr(cmd, "hull.ports=") : NULL;
    if (w && atoi(w + 11) > 1)
        want = atoi(w + 11) < AGENT_MAX_PORTS ? atoi(w + 11) : AGENT_MAX_PORTS;
    for (int i = 0; i < AGENT_MAX_PORTS; i++)
        fds[i] = -1;
    uint64_t end = now_ms() + 10000;
    for (;;) {
        DIR *d = opendir("/sys/class/virtio-ports");
        struct dirent *e;
        while (d && (e = readdir(d))) {
            if (e->d_name[0] == '.')
                continue;
            char p[300], name[128];
            snprintf(p, sizeof(p), "/sys/class/virtio-ports/%s/name", e->d_name);
            int idx = read_text(p, name, sizeof(name)) > 0 ? port_index(name) : -1;
            if (idx < 0 || fds[idx] >= 0)
                continue;
            snprintf(p, sizeof(p), "/dev/%s", e->d_name);
            if (!wait_path(p, 5000))
                die("%s did not appear", p);
            fds[idx] = open(p, O_RDWR | O_NONBLOCK | O_CLOEXEC);
            if (fds[idx] < 0)
                die("open %s: %s", p, strerror(errno));
            found++;
        }
        if (d)
            closedir(d);
        if (fds[0] >= 0 && found >= want)
            return found;
        if (now_ms() > end)
            die("virtio-serial port %s not found", HULL_AGENT_PORT_NAME);
        usleep(1000);
    }
}

int agent_drain_signals(void)
{
    struct signalfd_siginfo si;
    int mask = 0;
    while (read(agent_sigfd, &si, sizeof(si)) == sizeof(si))
        mask |= si.ssi_signo == SIGCHLD ? 1 : si.ssi_signo == SIGIO ? 2 : 0;
    return mask;
}

/* A new host connection: take its clock and entropy. A VM restored from a
 * template would otherwise run with the template's wall clock and the same
 * RNG state as every sibling restored from it. */
static void do_hello(struct conn *c, json_object *req)
{
    json_object *v;
    if (json_object_object_get_ex(req, "time_ns", &v)) {
        int64_t ns = json_object_get_int64(v);
        struct timespec ts = {.tv_sec = ns / 1000000000, .tv_nsec = ns % 1000000000};
        if (ns > 0)
            clock_settime(CLOCK_REALTIME, &ts);
    }
    if (json_object_object_get_ex(req, "seed", &v)) {
        const char *hex = json_object_get_string(v);
        struct {
            struct rand_pool_info info;
            uint8_t bytes[64];
        } pool = {0};
        size_t n = 0;
        for (; hex[2 * n] && hex[2 * n + 1] && n < sizeof(pool.bytes); n++) {
            unsigned b;
            if (sscanf(hex + 2 * n, "%2x", &b) != 1)
                break;
            pool.bytes[n] = (uint8_t)b;
        }
        pool.info.entropy_count = (int)(n * 8);
        pool.info.buf_size = (int)n;
        int fd = open("/dev/urandom", O_WRONLY | O_CLOEXEC);
        if (fd >= 0) {
            /* Credited: the host's getrandom() output is a real seed. */
            if (ioctl(fd, RNDADDENTROPY, &pool) < 0)
                (void)!write(fd, pool.bytes, n);
            close(fd);
        }
    }
    struct utsname u;
    uname(&u);
    struct timespec up;
    clock_gettime(CLOCK_BOOTTIME, &up);
    json_object *o = json_object_new_object();
    json_object_object_add(o, "ok", json_object_new_boolean(1));
    if (json_object_object_get_ex(req, "nonce", &v))
        json_object_object_add(o, "nonce", json_object_get(v));
    json_object_object_add(o, "version", json_object_new_int(HULL_AGENT_VERSION));
    json_object_object_add(o, "kernel", json_object_new_string(u.release));
    json_object_object_add(o, "uptime_ms",
                           json_object_new_int64(up.tv_sec * 1000 + up.tv_nsec / 1000000));
    conn_send_json(c, HULL_FRAME_RESP, o);
    json_object_put(o);
}

static void handle(struct conn *c, struct frame *f)
{
    if (f->type != HULL_FRAME_REQ)
        return; /* leftovers of a request the previous host abandoned */
    json_tokener *tok = json_tokener_new();
    json_object *req = json_tokener_parse_ex(tok, (const char *)f->data, (int)f->len);
    json_tokener_free(tok);
    json_object *opv;
    const char *op = NULL;
    if (req && json_object_is_type(req, json_type_object) &&
        json_object_object_get_ex(req, "op", &opv))
        op = json_object_get_string(opv);
    agent_req_id = NULL;
    if (req && json_object_is_type(req, json_type_object))
        json_object_object_get_ex(req, "id", &agent_req_id);
    if (!op)
        conn_send_error(c, "request is not a JSON object with \"op\"");
    else if (strcmp(op, "hello") == 0)
        do_hello(c, req);
    else if (strcmp(op, "ping") == 0)
        conn_send_ok(c);
    else if (strcmp(op, "exec") == 0)
        agent_exec(c, req);
    else if (strcmp(op, "put_file") == 0)
        agent_put_file(c, req);
    else if (strcmp(op, "get_file") == 0)
        agent_get_file(c, req);
    else if (strcmp(op, "net") == 0)
        agent_net(c, req);
    else if (strcmp(op, "watch") == 0)
        agent_watch(c, req);
    else if (strcmp(op, "fs") == 0)
        agent_fs(c, req);
    else if (strcmp(op, "shutdown") == 0) {
        conn_send_ok(c);
        sync();
        /* Power off through ACPI: QEMU exits, which is how the host knows. */
        reboot(RB_POWER_OFF);
    } else
        conn_send_error(c, "unknown op \"%s\"", op);
    agent_req_id = NULL;
    json_object_put(req);
}

static void send_ready(struct conn *c)
{
    json_object *o = json_object_new_object();
    json_object_object_add(o, "ok", json_object_new_boolean(1));
    json_object_object_add(o, "ready", json_object_new_boolean(1));
    agent_req_id = NULL; /* no id: it answers no request */
    conn_send_json(c, HULL_FRAME_RESP, o);
    json_object_put(o);
}

static uint64_t boot_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_BOOTTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static uint64_t t_init, t_modules, t_root;

static void serve(int port) __attribute__((noreturn));
static void serve(int port)
{
    struct conn c;
    if (conn_open(&c, port) < 0)
        die("out of memory");
    /* SIGIO tells us when the host opens its side of the port: with no host,
     * poll() reports POLLHUP at once and would spin. */
    if (fcntl(port, F_SETOWN, getpid()) < 0 || fcntl(port, F_SETFL, O_NONBLOCK | O_ASYNC) < 0)
        die("fcntl port: %s", strerror(errno));
    agent_log("ready at %llu ms since boot (agent started at %llu, modules took %llu, root %llu, "
              "port %llu)",
              (unsigned long long)boot_ms(), (unsigned long long)t_init,
              (unsigned long long)(t_modules - t_init), (unsigned long long)(t_root - t_modules),
              (unsigned long long)(boot_ms() - t_root));
    for (;;) {
        agent_reap_detached();
        bool was = c.connected;
        if (conn_fill(&c) < 0) {
            if (was)
                agent_log("host disconnected");
            conn_reset(&c);
            struct pollfd pfd = {.fd = agent_sigfd, .events = POLLIN};
            poll(&pfd, 1, 1000);
            agent_drain_signals();
            continue;
        }
        if (!was && c.connected) {
            agent_log("host connected");
            /* Unasked: the host's hellos sent before the port was seen open
             * were dropped; this tells it to say hello again now. */
            send_ready(&c);
        }
        struct frame f;
        if (conn_frame(&c, &f)) {
            handle(&c, &f);
            continue;
        }
        struct pollfd pfd[2] = {{.fd = port, .events = POLLIN},
                                {.fd = agent_sigfd, .events = POLLIN}};
        poll(pfd, 2, -1);
        agent_drain_signals();
    }
}

/* One server process per port, so one host session never waits for
 * another (a long exec, a watch): each is this process forked after boot,
 * sharing nothing with its siblings but the guest (the network's state is
 * a file, agent_net.c). PID 1 stays here: it reaps whatever is orphaned to
 * it and forks a server again should one die. */
static void supervise(void)
{
    int fds[AGENT_MAX_PORTS];
    pid_t servers[AGENT_MAX_PORTS] = {0};
    int n = open_ports(fds);
    agent_log("%d port%s", n, n == 1 ? "" : "s");
    for (;;) {
        for (int i = 0; i < AGENT_MAX_PORTS; i++) {
            if (fds[i] < 0 || servers[i] > 0)
                continue;
            pid_t pid = fork();
            if (pid == 0) {
                for (int j = 0; j < AGENT_MAX_PORTS; j++)
                    if (j != i && fds[j] >= 0)
                        close(fds[j]);
                agent_port_index = i;
                serve(fds[i]);
            }
            if (pid < 0) {
                agent_log("fork a server for port %d: %s", i, strerror(errno));
                break; /* tried again on the next signal or second */
            }
            servers[i] = pid;
        }
        struct pollfd pfd = {.fd = agent_sigfd, .events = POLLIN};
        poll(&pfd, 1, 1000);
        agent_drain_signals();
        int st;
        pid_t p;
        while ((p = waitpid(-1, &st, WNOHANG)) > 0)
            for (int i = 0; i < AGENT_MAX_PORTS; i++)
                if (servers[i] == p) {
                    agent_log("server of port %d ended (status %d)", i, st);
                    servers[i] = 0;
                }
    }
}

int main(void)
{
    /* The agent is a microVM's init and sets its system up as one (mounts
     * devtmpfs, proc, sysfs and tmpfs over /dev, /proc, /sys, /run, takes
     * the console). Started on a host by mistake it would do the same
     * there, under root over the host's own: it refuses unless it is pid 1
     * (a guest's). */
    if (getpid() != 1) {
        fprintf(stderr, "hull-agent: the guest agent of hull's microVMs runs as their init "
                        "(pid 1), not as a command; see hull-vm(1)\n");
        return 1;
    }
    /* json-c seeds its default string hash from the kernel's RNG on the
     * first table it makes: with no RDRAND (TCG's CPU) and the RNG not yet
     * initialised that read of /dev/urandom runs the kernel's jitter
     * entropy loop, a second or more under TCG, before the first frame
     * went out. The agent's JSON comes from the host it serves, so an
     * unseeded hash loses nothing; chosen before any table exists. */
    json_global_set_string_hash(JSON_C_STR_HASH_PERLLIKE);
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGCHLD);
    sigaddset(&set, SIGIO);
    sigprocmask(SIG_BLOCK, &set, NULL);
    signal(SIGPIPE, SIG_IGN);
    agent_sigfd = signalfd(-1, &set, SFD_NONBLOCK | SFD_CLOEXEC);

    mkdir("/dev", 0755);
    if (mount("devtmpfs", "/dev", "devtmpfs", MS_NOSUID, "mode=0755") < 0 && errno != EBUSY)
        die("mount /dev: %s", strerror(errno));
    int con = open("/dev/console", O_RDWR | O_CLOEXEC);
    if (con >= 0) {
        dup2(con, 1);
        dup2(con, 2);
        close(con);
    }
    int null = open("/dev/null", O_RDWR);
    if (null >= 0 && null != 0) {
        dup2(null, 0);
        close(null);
    }
    if (agent_sigfd < 0)
        die("signalfd: %s", strerror(errno));
    must_mount("proc", "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL);
    must_mount("sysfs", "/sys", "sysfs", MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL);
    must_mount("tmpfs", "/run", "tmpfs", MS_NOSUID | MS_NODEV, "mode=0755");
    mkdir(AGENT_RUN, 0700);
    /* The guest's own OOM killer must never pick the agent: it is the only
     * way the host reaches the guest. */
    write_text("/proc/self/oom_score_adj", "-1000");
    t_init = boot_ms();
    load_modules();
    t_modules = boot_ms();
    setup_cgroup();
    setup_root();
    setup_dev();
    t_root = boot_ms();
    supervise();
    return 0;
}
