/* The VM record: <root>/vm/<id>/state.json, written atomically, and the
 * truth about QEMU read from /proc rather than trusted from the file.
 *
 *   <root>/vm/<id>/state.json   this record
 *   <root>/vm/<id>/lock         flock: state changes and QMP sessions
 *   <root>/vm/<id>/agent.lock   flock: shared by each agent session, exclusive
 *                               for a snapshot or migration (none mid-request)
 *   <root>/vm/<id>/agentN.lock  flock: agent port N's one session
 *   <root>/vm/<id>/run/         0700, the VM's uid: qmp.sock, agent*.sock,
 *                               console.log, qemu.log (QEMU's /run)
 *   <root>/vm/<id>/jail/        empty mount point for QEMU's private root
 *   <root>/vm/.<id>.deleting.PID  a VM being deleted, moved out of its id's name
 *                               first (vm_destroy); a dead PID's is swept
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "util/clock.h"
#include "util/error.h"
#include "util/fs.h"
#include "util/json.h"
#include "util/log.h"
#include "vm/vm.h"

static const char *const status_names[] = {"created", "running", "paused", "stopped", "failed"};

const char *vm_status_name(enum vm_status s)
{
    return (unsigned)s < sizeof(status_names) / sizeof(status_names[0]) ? status_names[s]
                                                                        : "unknown";
}

int vm_id_validate(const char *id, hull_error *err)
{
    if (!id || !*id)
        return hull_error_set(err, EINVAL, "missing VM id");
    if (strspn(id, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_.-") !=
        strlen(id))
        return hull_error_set(
            err, EINVAL, "VM id \"%s\": only letters, digits, '_', '.' and '-' are allowed", id);
    if (strlen(id) > HULL_VM_ID_MAX)
        return hull_error_set(err, EINVAL, "VM id \"%s\": longer than %d bytes", id,
                              HULL_VM_ID_MAX);
    /* '-' first would read as an option everywhere but after "--". */
    if (id[0] == '.' || id[0] == '-')
        return hull_error_set(err, EINVAL, "VM id \"%s\": must not start with '%c'", id, id[0]);
    return 0;
}

int vm_root_dir(const struct hull_runtime *rt, char *out, size_t len, hull_error *err)
{
    const char *root = rt && rt->root ? rt->root : HULL_DEFAULT_ROOT;
    /* A cut path would be another directory. */
    if (snprintf(out, len, "%s/vm", root) >= (int)len)
        return hull_error_set(err, ENAMETOOLONG, "state directory %s/vm: path too long", root);
    if (hull_mkdir_p(out, 0700, err) < 0)
        return hull_error_prefix(err, "state directory");
    return 0;
}

int vm_dir_of(const struct hull_runtime *rt, const char *id, char *out, size_t len, hull_error *err)
{
    /* Only the path: a lookup of a VM that does not exist ('vm state
     * nosuch') makes nothing; vm_make_dirs makes ROOT/vm with the VM. */
    const char *root = rt && rt->root ? rt->root : HULL_DEFAULT_ROOT;
    if (vm_id_validate(id, err) < 0)
        return -1;
    if (snprintf(out, len, "%s/vm/%s", root, id) >= (int)len)
        return hull_error_set(err, ENAMETOOLONG, "VM directory %s/vm/%s: path too long", root, id);
    return 0;
}

/* Callers pass 4200 bytes: vm->dir fits 4096 (vm_dir_of) and names are short. */
void vm_path(const struct vm *vm, const char *name, char *out, size_t len)
{
    snprintf(out, len, "%s/%s", vm->dir, name);
}

int vm_lock(const struct vm *vm, const char *name, bool wait, hull_error *err)
{
    char p[4200];
    vm_path(vm, name, p, sizeof(p));
    int fd = open(p, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (fd < 0 && errno == ENOENT) /* its directory went: a delete came first */
        return hull_error_set(err, ENOENT, "VM %s does not exist", vm->id);
    if (fd < 0)
        return hull_error_errno(err, "lock %s", p);
    if (flock(fd, LOCK_EX | (wait ? 0 : LOCK_NB)) < 0) {
        int e = errno;
        close(fd);
        errno = e;
        return hull_error_errno(err, "VM %s is busy", vm->id);
    }
    /* Waited behind a delete, we hold the removed VM's lock (and a state
     * read before it), or one made in its directory after the delete moved
     * it away: nothing of it is ours to act on, nor is a VM of the same id
     * made since. */
    struct stat held, now;
    if (fstat(fd, &held) < 0 || stat(p, &now) < 0 || held.st_dev != now.st_dev ||
        held.st_ino != now.st_ino) {
        close(fd);
        return hull_error_set(err, ENOENT, "VM %s does not exist", vm->id);
    }
    return fd;
}

unsigned vm_agent_ports_valid(int64_t n)
{
    return n < 1 ? 1 : n > HULL_VM_AGENT_PORTS ? HULL_VM_AGENT_PORTS : (unsigned)n;
}

int vm_agent_session_lock(const struct vm *vm, int *gate, unsigned *port, hull_error *err)
{
    char p[4200];
    vm_path(vm, "agent.lock", p, sizeof(p));
    *gate = open(p, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (*gate < 0)
        return hull_error_errno(err, "lock %s", p);
    while (flock(*gate, LOCK_SH) < 0)
        if (errno != EINTR) {
            int rc = hull_error_errno(err, "lock %s", p);
            close(*gate);
            *gate = -1;
            return rc;
        }
    unsigned n = vm_agent_ports_valid(vm->agent_ports);
    /* Port 0's lock is agent0.lock: agent.lock is the gate above. A free
     * port is taken at once; with every one taken, wait for one (which
     * one is spread by pid, so waiters do not all queue on the first). */
    for (int pass = 0;; pass++) {
        for (unsigned i = 0; i < n; i++) {
            unsigned k = pass ? ((unsigned)getpid() + i) % n : i;
            char name[32];
            snprintf(name, sizeof(name), "agent%u.lock", k);
            hull_error e = NULL;
            int fd = vm_lock(vm, name, pass > 0, &e);
            if (fd >= 0) {
                *port = k;
                return fd;
            }
            if (pass > 0 || hull_error_code(e) != EWOULDBLOCK) {
                if (err)
                    *err = e;
                else
                    hull_error_free(&e);
                close(*gate);
                *gate = -1;
                return -1;
            }
            hull_error_free(&e); /* taken: the next port */
        }
    }
}

static unsigned long long proc_start_time(pid_t pid, char *state)
{
    char p[64], *buf = NULL;
    size_t l;
    snprintf(p, sizeof(p), "/proc/%d/stat", (int)pid);
    if (hull_read_file(p, &buf, &l, NULL) < 0)
        return 0; /* no such process: 0 is never a start time */
    /* comm may hold spaces and parentheses: fields count from the last ')'. */
    char *rp = strrchr(buf, ')');
    unsigned long long start = 0;
    if (rp && state)
        *state = rp[2];
    if (rp) {
        char *s = rp + 2;
        for (int field = 3; field < 22 && s; field++)
            s = strchr(s, ' ') ? strchr(s, ' ') + 1 : NULL;
        if (s)
            start = strtoull(s, NULL, 10);
    }
    free(buf);
    return start;
}

unsigned long long vm_proc_start_time(pid_t pid)
{
    return proc_start_time(pid, NULL);
}

bool vm_qemu_alive(const struct vm *vm)
{
    if (vm->pid <= 0)
        return false;
    char st = 0;
    unsigned long long start = proc_start_time(vm->pid, &st);
    /* A zombie has exited: hosts whose init does not reap leave them. */
    return start && start == vm->pid_start && st != 'Z' && st != 'X';
}

static void add_str(json_object *o, const char *k, const char *v)
{
    json_object_object_add(o, k, json_object_new_string(v ? v : ""));
}

static json_object *artifact(const char *path, const char *sha)
{
    json_object *o = json_object_new_object();
    add_str(o, "path", path);
    add_str(o, "sha256", sha);
    return o;
}

/* The network part of the record (vmnet.c does the rest). */
json_object *vm_net_json(const struct vm *vm)
{
    if (!vm->network[0])
        return NULL;
    json_object *o = json_object_new_object();
    add_str(o, "name", vm->network);
    add_str(o, "egress", vm->egress[0] ? vm->egress : "all");
    json_object_object_add(o, "publish", hull_publish_to_json(vm->publish, vm->n_publish));
    const struct hull_net_lease *l = &vm->lease;
    if (!l->ip4[0])
        return o; /* not running: no lease */
    add_str(o, "mac", l->mac);
    add_str(o, "ip", l->ip4);
    json_object_object_add(o, "prefix", json_object_new_int((int)l->prefix4));
    add_str(o, "gateway", l->gw4);
    if (l->ip6[0]) {
        add_str(o, "ip6", l->ip6);
        json_object_object_add(o, "prefix6", json_object_new_int((int)l->prefix6));
        add_str(o, "gateway6", l->gw6);
    }
    json_object *dns = json_object_new_array();
    for (size_t i = 0; i < l->n_dns && i < HULL_NET_MAX_DNS; i++)
        json_object_array_add(dns, json_object_new_string(l->dns[i]));
    json_object_object_add(o, "dns", dns);
    json_object_object_add(o, "mtu", json_object_new_int((int)l->mtu));
    add_str(o, "tap", l->host_ifname);
    add_str(o, "ifname", l->ifname);
    add_str(o, "member", l->member);
    return o;
}

json_object *vm_state_json(const struct vm *vm)
{
    json_object *o = json_object_new_object();
    add_str(o, "id", vm->id);
    add_str(o, "status", vm_status_name(vm->status));
    if (vm->failure[0])
        add_str(o, "failure", vm->failure);
    json_object_object_add(
        o, "pid",
        json_object_new_int(vm->status == VM_RUNNING || vm->status == VM_PAUSED ? vm->pid : 0));
    add_str(o, "accelerator", vm->accel);
    json_object_object_add(o, "memory_mb", json_object_new_int64((int64_t)vm->memory_mb));
    json_object_object_add(o, "vcpus", json_object_new_int((int)vm->vcpus));
    add_str(o, "created", vm->created);
    json_object_object_add(o, "agent_ports", json_object_new_int((int)vm->agent_ports));
    int64_t up = 0;
    if ((vm->status == VM_RUNNING || vm->status == VM_PAUSED) && vm->started_ms)
        up = hull_realtime_ms() - vm->started_ms;
    json_object_object_add(o, "uptime_ms", json_object_new_int64(up));
    json_object_object_add(o, "boot_ms", json_object_new_int64(vm->boot_ms));
    json_object *d = json_object_new_object();
    json_object *k = artifact(vm->kernel.bzimage, vm->kernel.bzimage_sha256);
    add_str(k, "release", vm->kernel.release);
    add_str(k, "vmlinux", vm->kernel.vmlinux);
    add_str(k, "vmlinux_sha256", vm->kernel.vmlinux_sha256);
    json_object_object_add(d, "kernel", k);
    json_object_object_add(d, "initrd", artifact(vm->initrd.path, vm->initrd.sha256));
    json_object *r = artifact(vm->rootfs.image, vm->rootfs.sha256);
    add_str(r, "source", vm->rootfs.source[0] ? vm->rootfs.source : "(default)");
    json_object_object_add(d, "rootfs", r);
    json_object_object_add(o, "measured", d);
    if (vm->image[0]) {
        json_object *img = json_object_new_object();
        add_str(img, "name", vm->image);
        add_str(img, "digest", vm->image_digest);
        add_str(img, "store", vm->image_root);
        json_object *cfg = json_tokener_parse(vm->image_config);
        if (cfg)
            json_object_object_add(img, "config", cfg);
        json_object_object_add(o, "image", img);
    }
    json_object *net = vm_net_json(vm);
    if (net)
        json_object_object_add(o, "network", net);
    json_object_object_add(o, "qemu_uid", json_object_new_int64(vm->uid));
    if (vm->restored_from[0])
        add_str(o, "restored_from", vm->restored_from);
    json_object_object_add(o, "ephemeral", json_object_new_boolean(vm->ephemeral));
    json_object_object_add(o, "from_template", json_object_new_boolean(vm->from_template));
    /* private: for hull itself */
    json_object_object_add(o, "qemu_pid", json_object_new_int(vm->pid));
    json_object_object_add(o, "qemu_start", json_object_new_int64((int64_t)vm->pid_start));
    json_object_object_add(o, "monitor_pid", json_object_new_int(vm->monitor));
    json_object_object_add(o, "started_ms", json_object_new_int64(vm->started_ms));
    if (vm->cgroup[0])
        json_object_object_add(o, "vmm_cgroup", json_tokener_parse(vm->cgroup));
    return o;
}

int vm_save(const struct vm *vm, hull_error *err)
{
    cleanup_json json_object *o = vm_state_json(vm);
    const char *s = json_object_to_json_string_ext(o, JSON_C_TO_STRING_PRETTY);
    cleanup_close int dfd = open(vm->dir, O_DIRECTORY | O_RDONLY | O_CLOEXEC);
    if (dfd < 0)
        return hull_error_errno(err, "open %s", vm->dir);
    return hull_write_file_atomic(dfd, "state.json", s, strlen(s), 0600, err);
}

static void get_str(json_object *o, const char *k, char *out, size_t len)
{
    json_object *v;
    if (o && json_object_object_get_ex(o, k, &v) && json_object_is_type(v, json_type_string))
        snprintf(out, len, "%s", json_object_get_string(v));
}

static int64_t get_int(json_object *o, const char *k)
{
    json_object *v;
    return o && json_object_object_get_ex(o, k, &v) ? json_object_get_int64(v) : 0;
}

void vm_net_from_json(struct vm *vm, json_object *o)
{
    memset(&vm->lease, 0, sizeof(vm->lease));
    vm->lease.tap_fd = -1;
    if (!o)
        return;
    get_str(o, "name", vm->network, sizeof(vm->network));
    get_str(o, "egress", vm->egress, sizeof(vm->egress));
    hull_error e = NULL;
    if (hull_publish_from_json(hj_get(o, "publish"), vm->publish, HULL_NET_MAX_PUBLISH,
                               &vm->n_publish, &e) < 0) {
        /* hull wrote this record: a list it cannot read publishes nothing. */
        hull_warn("vm %s: state: %s", vm->id, hull_error_msg(e));
        hull_error_free(&e);
        vm->n_publish = 0;
    }
    struct hull_net_lease *l = &vm->lease;
    get_str(o, "mac", l->mac, sizeof(l->mac));
    get_str(o, "ip", l->ip4, sizeof(l->ip4));
    l->prefix4 = (unsigned)get_int(o, "prefix");
    get_str(o, "gateway", l->gw4, sizeof(l->gw4));
    get_str(o, "ip6", l->ip6, sizeof(l->ip6));
    l->prefix6 = (unsigned)get_int(o, "prefix6");
    get_str(o, "gateway6", l->gw6, sizeof(l->gw6));
    json_object *dns = hj_get(o, "dns");
    for (size_t i = 0; dns && json_object_is_type(dns, json_type_array) &&
                       i < json_object_array_length(dns) && i < HULL_NET_MAX_DNS;
         i++)
        snprintf(l->dns[l->n_dns++], sizeof(l->dns[0]), "%s",
                 json_object_get_string(json_object_array_get_idx(dns, i)));
    l->mtu = (unsigned)get_int(o, "mtu");
    get_str(o, "tap", l->host_ifname, sizeof(l->host_ifname));
    get_str(o, "ifname", l->ifname, sizeof(l->ifname));
    get_str(o, "member", l->member, sizeof(l->member));
    snprintf(l->network, sizeof(l->network), "%s", vm->network);
}

int vm_read(const struct hull_runtime *rt, const char *id, struct vm *vm, hull_error *err)
{
    memset(vm, 0, sizeof(*vm));
    if (vm_dir_of(rt, id, vm->dir, sizeof(vm->dir), err) < 0)
        return -1;
    snprintf(vm->id, sizeof(vm->id), "%s", id);
    return vm_reread(vm, err);
}

int vm_reread(struct vm *vm, hull_error *err)
{
    char dir[sizeof(vm->dir)], id[sizeof(vm->id)];
    snprintf(dir, sizeof(dir), "%s", vm->dir);
    snprintf(id, sizeof(id), "%s", vm->id);
    memset(vm, 0, sizeof(*vm));
    memcpy(vm->dir, dir, sizeof(dir));
    char p[4200];
    vm_path(vm, "state.json", p, sizeof(p));
    cleanup_json json_object *o = NULL;
    if (access(p, F_OK) < 0)
        return hull_error_set(err, ENOENT, "VM %s does not exist", id);
    if (hj_parse_file(p, &o, err) < 0)
        return hull_error_prefix(err, "VM %s", id);
    snprintf(vm->id, sizeof(vm->id), "%s", id);
    char status[32] = "";
    get_str(o, "status", status, sizeof(status));
    for (size_t i = 0; i < sizeof(status_names) / sizeof(status_names[0]); i++)
        if (strcmp(status, status_names[i]) == 0)
            vm->status = (enum vm_status)i;
    get_str(o, "failure", vm->failure, sizeof(vm->failure));
    get_str(o, "accelerator", vm->accel, sizeof(vm->accel));
    get_str(o, "created", vm->created, sizeof(vm->created));
    get_str(o, "restored_from", vm->restored_from, sizeof(vm->restored_from));
    vm->memory_mb = (uint64_t)get_int(o, "memory_mb");
    vm->vcpus = (unsigned)get_int(o, "vcpus");
    vm->pid = (pid_t)get_int(o, "qemu_pid");
    vm->pid_start = (unsigned long long)get_int(o, "qemu_start");
    vm->monitor = (pid_t)get_int(o, "monitor_pid");
    vm->started_ms = get_int(o, "started_ms");
    vm->boot_ms = get_int(o, "boot_ms");
    vm->agent_ports = vm_agent_ports_valid(get_int(o, "agent_ports"));
    vm->uid = (uid_t)get_int(o, "qemu_uid");
    json_object *v;
    vm->ephemeral = json_object_object_get_ex(o, "ephemeral", &v) && json_object_get_boolean(v);
    vm->from_template =
        json_object_object_get_ex(o, "from_template", &v) && json_object_get_boolean(v);
    if (json_object_object_get_ex(o, "vmm_cgroup", &v) && v)
        snprintf(vm->cgroup, sizeof(vm->cgroup), "%s",
                 json_object_to_json_string_ext(v, JSON_C_TO_STRING_PLAIN));
    json_object *m = hj_get(o, "measured");
    json_object *k = m ? hj_get(m, "kernel") : NULL, *i = m ? hj_get(m, "initrd") : NULL,
                *r = m ? hj_get(m, "rootfs") : NULL;
    get_str(k, "path", vm->kernel.bzimage, sizeof(vm->kernel.bzimage));
    get_str(k, "sha256", vm->kernel.bzimage_sha256, sizeof(vm->kernel.bzimage_sha256));
    get_str(k, "release", vm->kernel.release, sizeof(vm->kernel.release));
    get_str(k, "vmlinux", vm->kernel.vmlinux, sizeof(vm->kernel.vmlinux));
    get_str(k, "vmlinux_sha256", vm->kernel.vmlinux_sha256, sizeof(vm->kernel.vmlinux_sha256));
    get_str(i, "path", vm->initrd.path, sizeof(vm->initrd.path));
    get_str(i, "sha256", vm->initrd.sha256, sizeof(vm->initrd.sha256));
    get_str(r, "path", vm->rootfs.image, sizeof(vm->rootfs.image));
    get_str(r, "sha256", vm->rootfs.sha256, sizeof(vm->rootfs.sha256));
    get_str(r, "source", vm->rootfs.source, sizeof(vm->rootfs.source));
    if (strcmp(vm->rootfs.source, "(default)") == 0)
        vm->rootfs.source[0] = 0;
    json_object *img = hj_get(o, "image");
    get_str(img, "name", vm->image, sizeof(vm->image));
    get_str(img, "digest", vm->image_digest, sizeof(vm->image_digest));
    get_str(img, "store", vm->image_root, sizeof(vm->image_root));
    json_object *cfg = img ? hj_get(img, "config") : NULL;
    if (cfg)
        snprintf(vm->image_config, sizeof(vm->image_config), "%s",
                 json_object_to_json_string_ext(cfg, JSON_C_TO_STRING_PLAIN));
    vm->image_hold_fd = -1;
    vm_net_from_json(vm, hj_get(o, "network"));
    return 0;
}
