/* A policy becomes an OCI spec: the sandbox is an ordinary container whose
 * config hull writes itself, so every mechanism (and every check) of the
 * runtime applies to it unchanged.
 *
 * The default filesystem: a tmpfs root that exists only in the sandbox's
 * mount namespace, the host's /usr and library directories bound read-only
 * (so python3 just works), the few /etc files programs need, a fresh /tmp
 * (the only writable place), /proc, and a minimal /dev. Nothing else of the
 * host is visible.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "container/container.h"
#include "sandbox/sandbox.h"
#include "util/error.h"
#include "util/fs.h"
#include "util/json.h"
#include "util/log.h"
#include "util/proc.h"
#include "util/strv.h"

/* Host directories bound read-only by default (when they exist). On merged
 * /usr systems /bin, /lib... are symlinks into /usr: those become the same
 * symlinks in the sandbox instead of binds. */
static const char *const host_dirs[] = {"/usr",   "/bin",   "/sbin",   "/lib",
                                        "/lib32", "/lib64", "/libx32", NULL};
/* /etc files a dynamically linked program or an interpreter reads. */
static const char *const host_etc[] = {"/etc/ld.so.cache",   "/etc/alternatives", "/etc/localtime",
                                       "/etc/nsswitch.conf", "/etc/mime.types",   NULL};

char *const hull_sandbox_default_env[] = {"PATH=/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin",
                                          "HOME=/tmp", "TMPDIR=/tmp", "LANG=C.UTF-8", NULL};

bool hull_sandbox_under_host_dir(const char *path)
{
    for (const char *const *d = host_dirs; *d; d++) {
        size_t n = strlen(*d);
        if (strncmp(path, *d, n) == 0 && (path[n] == '\0' || path[n] == '/'))
            return true;
    }
    return false;
}

static json_object *str(const char *s)
{
    return json_object_new_string(s);
}

static json_object *strings(const char *const *v)
{
    json_object *a = json_object_new_array();
    for (; *v; v++)
        json_object_array_add(a, str(*v));
    return a;
}

static void add_mount(json_object *mounts, const char *dest, const char *type, const char *src,
                      const char *const *opts)
{
    json_object *m = json_object_new_object();
    json_object_object_add(m, "destination", str(dest));
    json_object_object_add(m, "type", str(type));
    json_object_object_add(m, "source", str(src));
    json_object_object_add(m, "options", strings(opts));
    json_object_array_add(mounts, m);
}

static void add_bind(json_object *mounts, const char *src, const char *dest, bool writable)
{
    /* nosuid,nodev down the whole tree: a mount under the source (/dev/shm
     * under /dev, anything under /) keeps neither set-id bits nor devices. */
    static const char *const ro[] = {"rbind", "ro",      "nosuid", "nodev",
                                     "rro",   "rnosuid", "rnodev", NULL};
    static const char *const rw[] = {"rbind", "rw", "nosuid", "nodev", "rnosuid", "rnodev", NULL};
    add_mount(mounts, dest, "bind", src, writable ? rw : ro);
}

static int add_root_file(struct hull_sandbox_layout *lay, const char *path, const char *data,
                         const char *link, bool after_mounts)
{
    if (lay->n_files == HULL_SANDBOX_MAX_FILES)
        return -1;
    struct hull_root_file *f = &lay->files[lay->n_files++];
    memset(f, 0, sizeof(*f));
    f->path = path;
    f->data = data;
    f->len = data ? strlen(data) : 0;
    f->link = link;
    f->src_fd = -1;
    f->mode = 0644;
    f->after_mounts = after_mounts;
    return 0;
}

/* The host's system directories, read-only, as binds or symlinks. */
static int host_filesystem(struct hull_sandbox_layout *lay, json_object *mounts, hull_error *err)
{
    for (const char *const *d = host_dirs; *d; d++) {
        struct stat st;
        if (lstat(*d, &st) < 0)
            continue;
        if (S_ISLNK(st.st_mode)) {
            char *target = lay->links[lay->n_links];
            ssize_t n = readlink(*d, target, sizeof(lay->links[0]) - 1);
            if (n <= 0)
                continue;
            target[n] = '\0';
            lay->n_links++;
            if (add_root_file(lay, *d, NULL, target, false) < 0)
                return hull_error_set(err, E2BIG, "sandbox layout: too many files");
        } else if (S_ISDIR(st.st_mode)) {
            add_bind(mounts, *d, *d, false);
        }
    }
    for (const char *const *f = host_etc; *f; f++)
        if (access(*f, F_OK) == 0)
            add_bind(mounts, *f, *f, false);
    return 0;
}

static void namespaces(json_object *lx, const struct hull_policy *p)
{
    json_object *ns = json_object_new_array();
    const char *types[] = {"pid", "mount", "ipc", "uts", "cgroup", "network", "user"};
    size_t n = sizeof(types) / sizeof(types[0]);
    for (size_t i = 0; i < n; i++) {
        if (strcmp(types[i], "network") == 0 && p->network_host)
            continue;
        if (strcmp(types[i], "user") == 0 && p->isolation != HULL_ISOLATION_CONTAINER)
            continue;
        json_object *o = json_object_new_object();
        json_object_object_add(o, "type", str(types[i]));
        json_object_array_add(ns, o);
    }
    json_object_object_add(lx, "namespaces", ns);
}

static json_object *id_map(uint32_t host)
{
    json_object *a = json_object_new_array();
    json_object *m = json_object_new_object();
    json_object_object_add(m, "containerID", json_object_new_int(0));
    json_object_object_add(m, "hostID", json_object_new_int64(host));
    json_object_object_add(m, "size", json_object_new_int(HULL_SANDBOX_ID_RANGE));
    json_object_array_add(a, m);
    return a;
}

static json_object *resources(const struct hull_policy *p)
{
    json_object *r = json_object_new_object();
    json_object *mem = json_object_new_object();
    json_object_object_add(mem, "limit", json_object_new_int64((int64_t)p->memory_bytes));
    /* memory+swap equal to memory: the sandbox gets no swap at all. */
    json_object_object_add(mem, "swap", json_object_new_int64((int64_t)p->memory_bytes));
    json_object_object_add(r, "memory", mem);
    json_object *pids = json_object_new_object();
    /* The sandbox's init (the reaper, see container/reaper.c) is one task
     * of the cgroup that is not the program's: --pids counts the program's. */
    json_object_object_add(pids, "limit", json_object_new_int64((int64_t)p->pids + 1));
    json_object_object_add(r, "pids", pids);
    json_object *cpu = json_object_new_object();
    json_object_object_add(cpu, "period", json_object_new_int64(100000));
    json_object_object_add(cpu, "quota", json_object_new_int64((int64_t)(p->cpus * 100000 + 0.5)));
    json_object_object_add(r, "cpu", cpu);
    return r;
}

static json_object *rlimit(const char *type, uint64_t soft, uint64_t hard)
{
    json_object *o = json_object_new_object();
    json_object_object_add(o, "type", str(type));
    json_object_object_add(o, "soft", json_object_new_uint64(soft));
    json_object_object_add(o, "hard", json_object_new_uint64(hard));
    return o;
}

static json_object *process(const struct hull_policy *p, const struct hull_sandbox_layout *lay,
                            const struct image_user *user)
{
    json_object *proc = json_object_new_object();
    json_object_object_add(proc, "terminal", json_object_new_boolean(false));
    json_object *u = json_object_new_object();
    json_object_object_add(u, "uid", json_object_new_int64(lay->uid));
    json_object_object_add(u, "gid", json_object_new_int64(lay->gid));
    if (user && user->n_extra) {
        json_object *g = json_object_new_array();
        for (size_t i = 0; i < user->n_extra; i++)
            json_object_array_add(g, json_object_new_int64(user->extra[i]));
        json_object_object_add(u, "additionalGids", g);
    }
    json_object_object_add(proc, "user", u);
    json_object *args = json_object_new_array();
    for (char **a = p->argv; *a; a++)
        json_object_array_add(args, str(*a));
    json_object_object_add(proc, "args", args);
    json_object *env = json_object_new_array();
    /* The policy's variables replace the defaults of the same name (a
     * program's getenv sees the first of two). */
    cleanup_strv char **merged = vm_env_merge(hull_sandbox_default_env, p->env);
    for (char **e = merged; e && *e; e++)
        json_object_array_add(env, str(*e));
    json_object_object_add(proc, "env", env);
    json_object_object_add(proc, "cwd", str(p->workdir ? p->workdir : "/tmp"));
    /* No capabilities in any set: the sandbox user has none to use. */
    json_object *caps = json_object_new_object();
    const char *sets[] = {"bounding", "effective", "inheritable", "permitted", "ambient"};
    for (size_t i = 0; i < 5; i++)
        json_object_object_add(caps, sets[i], json_object_new_array());
    json_object_object_add(proc, "capabilities", caps);
    json_object_object_add(proc, "noNewPrivileges", json_object_new_boolean(true));
    json_object *rl = json_object_new_array();
    json_object_array_add(rl, rlimit("RLIMIT_NOFILE", p->open_files, p->open_files));
    json_object_array_add(rl, rlimit("RLIMIT_CORE", 0, 0));
    /* A per-process backstop; the cgroup's total is what the verdict uses. */
    uint64_t cpu_s = (p->cpu_time_ms + 999) / 1000 + 1;
    json_object_array_add(rl, rlimit("RLIMIT_CPU", cpu_s, cpu_s + 1));
    if (p->isolation == HULL_ISOLATION_PROCESS) {
        /* No cgroup at this level: address space and tasks by rlimit only. */
        json_object_array_add(rl, rlimit("RLIMIT_AS", p->memory_bytes, p->memory_bytes));
        /* Counted per host uid, which is this run's own (uids.c); the init
         * has the same uid and counts too. */
        json_object_array_add(rl, rlimit("RLIMIT_NPROC", p->pids + 1ull, p->pids + 1ull));
    } else {
        /* Queued signals and POSIX message queue bytes are charged up to the
         * namespace's owner (a uid of the sandbox's own); a sandbox needs no
         * more than 1024 signals and one default-sized message queue. */
        json_object_array_add(rl, rlimit("RLIMIT_SIGPENDING", 1024, 1024));
        json_object_array_add(rl, rlimit("RLIMIT_MSGQUEUE", 128 * 1024, 128 * 1024));
    }
    json_object_object_add(proc, "rlimits", rl);
    return proc;
}

/* The default layout's root files: passwd, group (naming the sandbox user
 * at container level) and hosts, beside the host's filesystem binds. */
static int default_root(struct hull_sandbox_layout *lay, json_object *mounts, bool container,
                        hull_error *err)
{
    if (host_filesystem(lay, mounts, err) < 0)
        return -1;
    /* At process level the workload is a host uid of the run's own
     * (uids.c), one of many from run to run: it is left without a name. */
    char user[128] = "", group[64] = "";
    if (container) {
        snprintf(user, sizeof(user), "sandbox:x:%u:%u:sandbox:/tmp:/bin/sh\n", lay->uid, lay->uid);
        snprintf(group, sizeof(group), "sandbox:x:%u:\n", lay->uid);
    }
    snprintf(lay->passwd, sizeof(lay->passwd),
             "root:x:0:0:root:/root:/bin/sh\n%s"
             "nobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n",
             user);
    snprintf(lay->group, sizeof(lay->group), "root:x:0:\n%snogroup:x:65534:\n", group);
    if (add_root_file(lay, "/etc/passwd", lay->passwd, NULL, false) < 0 ||
        add_root_file(lay, "/etc/group", lay->group, NULL, false) < 0 ||
        add_root_file(lay, "/etc/hosts", "127.0.0.1 localhost sandbox\n::1 localhost\n", NULL,
                      false) < 0)
        return hull_error_set(err, E2BIG, "sandbox layout: too many files");
    return 0;
}

/* A hull network's /etc/hosts and /etc/resolv.conf (network.c), bound
 * read-only over the root's. A --rootfs or an image that lacks one keeps
 * it lacking: its files are not ours to create. */
static void net_etc_binds(json_object *mounts, const char *rootfs, const char *net_etc)
{
    static const char *const names[] = {"hosts", "resolv.conf"};
    cleanup_close int rootfd = rootfs ? open(rootfs, O_PATH | O_DIRECTORY | O_CLOEXEC) : -1;
    for (size_t i = 0; i < 2; i++) {
        char src[PATH_MAX], dst[64];
        snprintf(src, sizeof(src), "%s/%s", net_etc, names[i]);
        snprintf(dst, sizeof(dst), "/etc/%s", names[i]);
        if (rootfs) {
            hull_error e = NULL;
            cleanup_close int fd = rootfd < 0 ? -1 : hull_resolve_in_root(rootfd, dst, 0, &e);
            hull_error_free(&e); /* missing: said just below */
            if (fd < 0) {
                hull_debug("sandbox: network: %s has no %s, left without", rootfs, dst);
                continue;
            }
        }
        add_bind(mounts, src, dst, false);
    }
}

/* Files a writable tmpfs of the sandbox may hold: one per 4 KiB of its
 * size, the least a file with data takes there, and at least 1024. Its
 * size bounds only data: each empty file still costs the kernel about a
 * KiB, which at process level (no memory cgroup) nothing else bounds --
 * left at the kernel's default, a 64 MiB /tmp took millions of them. */
static uint64_t tmpfs_inodes(uint64_t bytes)
{
    return bytes / 4096 > 1024 ? bytes / 4096 : 1024;
}

/* The spec's mounts, or NULL. */
static json_object *layout_mounts(const struct hull_policy *p, bool container, const char *net_etc,
                                  struct hull_sandbox_layout *lay, hull_error *err)
{
    json_object *mounts = json_object_new_array();
    lay->extras.root_nosuid_nodev = true;
    if (p->rootfs == NULL) {
        lay->extras.tmpfs_root = true;
        if (default_root(lay, mounts, container, err) < 0) {
            json_object_put(mounts);
            return NULL;
        }
    }
    char tmpopts[96], shmopts[96];
    uint64_t shm_bytes = p->tmp_bytes < 64ull << 20 ? p->tmp_bytes : 64ull << 20;
    snprintf(tmpopts, sizeof(tmpopts), "size=%llu,nr_inodes=%llu", (unsigned long long)p->tmp_bytes,
             (unsigned long long)tmpfs_inodes(p->tmp_bytes));
    snprintf(shmopts, sizeof(shmopts), "size=%llu,nr_inodes=%llu", (unsigned long long)shm_bytes,
             (unsigned long long)tmpfs_inodes(shm_bytes));
    const char *const tmp_o[] = {"nosuid", "nodev", "mode=1777", tmpopts, NULL};
    const char *const proc_o[] = {"nosuid", "nodev", "noexec", NULL};
    const char *const dev_o[] = {"nosuid", "noexec", "mode=755", "size=64k", NULL};
    const char *const shm_o[] = {"nosuid", "nodev", "noexec", "mode=1777", shmopts, NULL};
    add_mount(mounts, "/proc", "proc", "proc", proc_o);
    add_mount(mounts, "/dev", "tmpfs", "tmpfs", dev_o);
    add_mount(mounts, "/dev/shm", "tmpfs", "shm", shm_o);
    add_mount(mounts, "/tmp", "tmpfs", "tmpfs", tmp_o);
    if (net_etc)
        net_etc_binds(mounts, p->rootfs, net_etc);
    for (size_t i = 0; i < p->n_binds; i++)
        add_bind(mounts, p->binds[i].source, p->binds[i].destination, p->binds[i].writable);
    return mounts;
}

int hull_sandbox_layout(const struct hull_policy *p, const char *empty_root, uint32_t uid_base,
                        const struct image_user *user, const char *net_etc,
                        struct hull_sandbox_layout *lay, hull_error *err)
{
    memset(lay, 0, sizeof(*lay));
    bool container = p->isolation == HULL_ISOLATION_CONTAINER;
    /* Inside the sandbox the workload is uid 1000; at container level that
     * is uid_base+1000 on the host. At process level there is no inside:
     * it is the host uid uid_base, its run's own (see uids.c). */
    lay->uid = lay->gid = container ? HULL_SANDBOX_UID : uid_base;
    /* An image's User (checked to be mapped, sandbox/image.c). */
    if (container && user) {
        lay->uid = user->uid;
        lay->gid = user->gid;
    }
    json_object *doc = json_object_new_object();
    json_object_object_add(doc, "ociVersion", str("1.0.2"));
    json_object *root = json_object_new_object();
    json_object_object_add(root, "path", str(p->rootfs ? p->rootfs : empty_root));
    json_object_object_add(root, "readonly", json_object_new_boolean(true));
    json_object_object_add(doc, "root", root);
    json_object_object_add(doc, "hostname", str("sandbox"));
    /* Who supervises this run: hull_sandbox_cleanup() removes sessions whose
     * supervisor is gone (pid and start time, so a reused pid is no alibi). */
    char sup[64];
    snprintf(sup, sizeof(sup), "%d:%llu", (int)getpid(), hull_self_start_time());
    json_object *ann = json_object_new_object();
    json_object_object_add(ann, HULL_SANDBOX_SUPERVISOR_KEY, str(sup));
    json_object_object_add(doc, "annotations", ann);
    json_object_object_add(doc, "process", process(p, lay, container ? user : NULL));

    json_object *mounts = layout_mounts(p, container, net_etc, lay, err);
    if (mounts == NULL) {
        json_object_put(doc);
        return -1;
    }
    json_object_object_add(doc, "mounts", mounts);

    json_object *lx = json_object_new_object();
    namespaces(lx, p);
    if (container) {
        json_object_object_add(lx, "uidMappings", id_map(uid_base));
        json_object_object_add(lx, "gidMappings", id_map(uid_base));
        json_object_object_add(lx, "resources", resources(p));
    }
    /* /proc/cmdline: the host kernel's command line, which also carries the
     * host init's own arguments. */
    static const char *const masked[] = {
        "/proc/acpi",        "/proc/asound",        "/proc/cmdline",       "/proc/kcore",
        "/proc/keys",        "/proc/latency_stats", "/proc/timer_list",    "/proc/timer_stats",
        "/proc/sched_debug", "/proc/scsi",          "/proc/sysrq-trigger", NULL};
    static const char *const readonly[] = {"/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", NULL};
    json_object_object_add(lx, "maskedPaths", strings(masked));
    json_object_object_add(lx, "readonlyPaths", strings(readonly));
    json_object_object_add(doc, "linux", lx);

    /* The document goes to the parser as it is: printing it to read it back
     * cost a third of the run's JSON work, for nothing. */
    if (hull_spec_from_json(doc, "/", &lay->spec, err) < 0)
        return hull_error_prefix(err, "sandbox layout");
    lay->extras.files = lay->files;
    lay->extras.n_files = lay->n_files;
    return 0;
}

void hull_sandbox_layout_free(struct hull_sandbox_layout *lay)
{
    hull_spec_free(lay->spec);
    lay->spec = NULL;
}

void hull_sandbox_setup_opts(const struct hull_policy *p, struct hull_sandbox_layout *lay,
                             const struct hull_seccomp_filter *seccomp, const int stdio[3],
                             uint32_t userns_owner, struct hull_setup_opts *so)
{
    *so = (struct hull_setup_opts){
        .spec = lay->spec,
        .seccomp = seccomp,
        .foreground = true,
        .die_with_parent = true,
        .no_cgroup = p->isolation == HULL_ISOLATION_PROCESS,
        .verb = "sandbox",
        .stdio = stdio,
        .loopback_up = !p->network_host,
        .export_dir = "/tmp",
        .rootfs_extras = &lay->extras,
        .userns_owner = userns_owner,
    };
}
