/* Accounting read back from the kernel: the sandbox's verdicts (OOM kills,
 * forks refused at the pids limit, CPU time), `events --stats` in runc's
 * JSON shape, and OOM notification fds. Reads are best effort: a counter a
 * kernel does not have reads as 0 rather than failing the whole report. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/inotify.h>
#include <unistd.h>

#include "linux/cgroup_internal.h"
#include "util/error.h"

static const char *node_dir(const struct hull_cgroup *cg, enum cg_ctrl c, bool *v2)
{
    int h = cg_hier_of(cg->L, c);
    if (h < 0 || !cg->n[h].joined)
        return NULL;
    *v2 = cg->L->h[h].v2;
    return cg->n[h].dir;
}

static uint64_t rd(const char *dir, const char *file)
{
    uint64_t v = 0;
    hull_error e = NULL;
    if (dir == NULL || cg_read_u64(dir, file, &v, &e) < 0)
        v = 0;
    hull_error_free(&e); /* a statistic the kernel does not keep reads as 0 */
    return v;
}

/* A keyed file (cpu.stat, memory.events, ...) into buf; "" when absent. */
static const char *rdk(const char *dir, const char *file, char *buf, size_t len)
{
    hull_error e = NULL;
    if (dir == NULL || cg_read(dir, file, buf, len, &e) < 0)
        buf[0] = '\0';
    hull_error_free(&e); /* absent file: "" (documented above) */
    return buf;
}

static uint64_t key(const char *text, const char *k)
{
    uint64_t v = 0;
    return cg_keyed_get(text, k, &v) ? v : 0;
}

static void cpu_stats(const struct hull_cgroup *cg, struct hull_cgroup_stats *st)
{
    char buf[1024];
    bool v2 = false;
    const char *d = node_dir(cg, CG_CPUACCT, &v2);
    if (d != NULL && v2) {
        rdk(d, "cpu.stat", buf, sizeof(buf));
        st->cpu_usage_ns = key(buf, "usage_usec") * 1000;
        st->cpu_user_ns = key(buf, "user_usec") * 1000;
        st->cpu_system_ns = key(buf, "system_usec") * 1000;
        st->cpu_periods = key(buf, "nr_periods");
        st->cpu_throttled_periods = key(buf, "nr_throttled");
        st->cpu_throttled_ns = key(buf, "throttled_usec") * 1000;
        return;
    }
    if (d != NULL) {
        st->cpu_usage_ns = rd(d, "cpuacct.usage");
        if (cg_exists(d, "cpuacct.usage_user")) {
            st->cpu_user_ns = rd(d, "cpuacct.usage_user");
            st->cpu_system_ns = rd(d, "cpuacct.usage_sys");
        } else {
            long hz = sysconf(_SC_CLK_TCK);
            rdk(d, "cpuacct.stat", buf, sizeof(buf));
            st->cpu_user_ns = key(buf, "user") * (1000000000ULL / (uint64_t)(hz > 0 ? hz : 100));
            st->cpu_system_ns =
                key(buf, "system") * (1000000000ULL / (uint64_t)(hz > 0 ? hz : 100));
        }
    }
    if ((d = node_dir(cg, CG_CPU, &v2)) != NULL) {
        rdk(d, "cpu.stat", buf, sizeof(buf));
        st->cpu_periods = key(buf, "nr_periods");
        st->cpu_throttled_periods = key(buf, "nr_throttled");
        st->cpu_throttled_ns = key(buf, "throttled_time");
    }
}

int hull_cgroup_cpu_usage(struct hull_cgroup *cg, uint64_t *ns, hull_error *err)
{
    char buf[1024];
    bool v2 = false;
    const char *d = node_dir(cg, CG_CPUACCT, &v2);
    if (d == NULL)
        return hull_error_set(err, ENOTSUP, "no cpu accounting in this cgroup");
    if (v2) {
        rdk(d, "cpu.stat", buf, sizeof(buf));
        *ns = key(buf, "usage_usec") * 1000;
    } else {
        *ns = rd(d, "cpuacct.usage");
    }
    return 0;
}

static uint64_t sat_add(uint64_t a, uint64_t b)
{
    return a > UINT64_MAX - b ? UINT64_MAX : a + b;
}

static void memory_stats(const struct hull_cgroup *cg, struct hull_cgroup_stats *st)
{
    char buf[1024];
    bool v2 = false;
    const char *d = node_dir(cg, CG_MEMORY, &v2);
    if (d == NULL)
        return;
    if (v2) {
        st->memory_usage = rd(d, "memory.current");
        st->memory_max_usage = rd(d, "memory.peak");
        st->memory_limit = rd(d, "memory.max");
        rdk(d, "memory.events", buf, sizeof(buf));
        st->oom_events = key(buf, "max");
        st->oom_kill_events = key(buf, "oom_kill");
        st->memory_failcnt = st->oom_events;
        /* Reported as memory+swap, the way v1 (and runc) count swap. */
        st->swap_usage = sat_add(rd(d, "memory.swap.current"), st->memory_usage);
        st->swap_limit = sat_add(rd(d, "memory.swap.max"), st->memory_limit);
        return;
    }
    st->memory_usage = rd(d, "memory.usage_in_bytes");
    st->memory_max_usage = rd(d, "memory.max_usage_in_bytes");
    st->memory_limit = rd(d, "memory.limit_in_bytes");
    st->memory_failcnt = rd(d, "memory.failcnt");
    st->oom_kill_events = key(rdk(d, "memory.oom_control", buf, sizeof(buf)), "oom_kill");
    /* With memory+swap limited, charges fail on memsw first; and recent
     * kernels stopped counting failcnt at all, while an OOM kill still
     * means the limit was hit. */
    st->oom_events = st->memory_failcnt + rd(d, "memory.memsw.failcnt");
    if (st->oom_events < st->oom_kill_events)
        st->oom_events = st->oom_kill_events;
    st->swap_usage = rd(d, "memory.memsw.usage_in_bytes");
    st->swap_limit = rd(d, "memory.memsw.limit_in_bytes");
}

int hull_cgroup_stats(struct hull_cgroup *cg, struct hull_cgroup_stats *st, hull_error *err)
{
    memset(st, 0, sizeof(*st));
    if (cg_main_node(cg) == NULL)
        return hull_error_set(err, ENOENT, "cgroup: stats: the cgroup does not exist");
    cpu_stats(cg, st);
    memory_stats(cg, st);
    bool v2 = false;
    const char *d = node_dir(cg, CG_PIDS, &v2);
    if (d != NULL) {
        char buf[256];
        st->pids_current = rd(d, "pids.current");
        st->pids_limit = rd(d, "pids.max");
        st->pids_max_events = key(rdk(d, "pids.events", buf, sizeof(buf)), "max");
    }
    return 0;
}

int hull_cgroup_stats_brief(struct hull_cgroup *cg, struct hull_cgroup_stats *st, hull_error *err)
{
    memset(st, 0, sizeof(*st));
    if (cg_main_node(cg) == NULL)
        return hull_error_set(err, ENOENT, "cgroup: stats: the cgroup does not exist");
    char buf[1024];
    bool v2 = false;
    hull_error e = NULL;
    if (hull_cgroup_cpu_usage(cg, &st->cpu_usage_ns, &e) < 0)
        st->cpu_usage_ns = 0;
    hull_error_free(&e); /* no cpu accounting reads as 0, as in hull_cgroup_stats */
    const char *d = node_dir(cg, CG_MEMORY, &v2);
    if (d != NULL && v2) {
        st->memory_max_usage = rd(d, "memory.peak");
        st->oom_kill_events = key(rdk(d, "memory.events", buf, sizeof(buf)), "oom_kill");
    } else if (d != NULL) {
        st->memory_max_usage = rd(d, "memory.max_usage_in_bytes");
        st->oom_kill_events = key(rdk(d, "memory.oom_control", buf, sizeof(buf)), "oom_kill");
    }
    if ((d = node_dir(cg, CG_PIDS, &v2)) != NULL)
        st->pids_max_events = key(rdk(d, "pids.events", buf, sizeof(buf)), "max");
    return 0;
}

/* ---- runc's `events --stats` JSON ---- */

static void add_u64(json_object *o, const char *k, uint64_t v)
{
    json_object_object_add(o, k, json_object_new_uint64(v));
}

static json_object *u64_list(const char *text)
{
    json_object *a = json_object_new_array();
    for (const char *p = text; *p;) {
        char *end;
        unsigned long long v = strtoull(p, &end, 10);
        if (end == p)
            break;
        json_object_array_add(a, json_object_new_uint64(v));
        p = end;
    }
    return a;
}

static json_object *cpu_json(const struct hull_cgroup *cg, const struct hull_cgroup_stats *st)
{
    json_object *cpu = json_object_new_object(), *u = json_object_new_object(),
                *t = json_object_new_object();
    char buf[4096];
    bool v2 = false;
    const char *d = node_dir(cg, CG_CPUACCT, &v2);
    add_u64(u, "total", st->cpu_usage_ns);
    if (d != NULL && !v2) {
        json_object_object_add(u, "percpu",
                               u64_list(rdk(d, "cpuacct.usage_percpu", buf, sizeof(buf))));
        if (cg_exists(d, "cpuacct.usage_percpu_sys")) {
            json_object_object_add(u, "percpu_kernel",
                                   u64_list(rdk(d, "cpuacct.usage_percpu_sys", buf, sizeof(buf))));
            json_object_object_add(u, "percpu_user",
                                   u64_list(rdk(d, "cpuacct.usage_percpu_user", buf, sizeof(buf))));
        }
    }
    add_u64(u, "kernel", st->cpu_system_ns);
    add_u64(u, "user", st->cpu_user_ns);
    add_u64(t, "periods", st->cpu_periods);
    add_u64(t, "throttledPeriods", st->cpu_throttled_periods);
    add_u64(t, "throttledTime", st->cpu_throttled_ns);
    json_object_object_add(cpu, "usage", u);
    json_object_object_add(cpu, "throttling", t);
    return cpu;
}

static json_object *mem_entry(uint64_t limit, uint64_t usage, uint64_t max, uint64_t failcnt)
{
    json_object *e = json_object_new_object();
    add_u64(e, "limit", limit);
    add_u64(e, "usage", usage);
    add_u64(e, "max", max);
    add_u64(e, "failcnt", failcnt);
    return e;
}

static json_object *raw_json(const char *text)
{
    json_object *raw = json_object_new_object();
    for (const char *p = text; *p;) {
        const char *eol = strchrnul(p, '\n');
        const char *sp = memchr(p, ' ', (size_t)(eol - p));
        if (sp != NULL) {
            char k[128];
            snprintf(k, sizeof(k), "%.*s", (int)(sp - p), p);
            add_u64(raw, k, strtoull(sp + 1, NULL, 10));
        }
        p = *eol ? eol + 1 : eol;
    }
    return raw;
}

static json_object *memory_json(const struct hull_cgroup *cg, const struct hull_cgroup_stats *st)
{
    json_object *m = json_object_new_object();
    bool v2 = false;
    const char *d = node_dir(cg, CG_MEMORY, &v2);
    char *text = malloc(16384);
    if (d == NULL || text == NULL) {
        free(text);
        return m;
    }
    rdk(d, "memory.stat", text, 16384);
    add_u64(m, "cache", key(text, v2 ? "file" : "cache"));
    json_object_object_add(
        m, "usage",
        mem_entry(st->memory_limit, st->memory_usage, st->memory_max_usage, st->memory_failcnt));
    if (v2) {
        json_object_object_add(m, "swap", mem_entry(st->swap_limit, st->swap_usage, 0, 0));
    } else {
        json_object_object_add(m, "swap",
                               mem_entry(st->swap_limit, st->swap_usage,
                                         rd(d, "memory.memsw.max_usage_in_bytes"),
                                         rd(d, "memory.memsw.failcnt")));
        json_object_object_add(
            m, "kernel",
            mem_entry(rd(d, "memory.kmem.limit_in_bytes"), rd(d, "memory.kmem.usage_in_bytes"),
                      rd(d, "memory.kmem.max_usage_in_bytes"), rd(d, "memory.kmem.failcnt")));
        json_object_object_add(m, "kernelTCP",
                               mem_entry(rd(d, "memory.kmem.tcp.limit_in_bytes"),
                                         rd(d, "memory.kmem.tcp.usage_in_bytes"),
                                         rd(d, "memory.kmem.tcp.max_usage_in_bytes"),
                                         rd(d, "memory.kmem.tcp.failcnt")));
    }
    json_object_object_add(m, "raw", raw_json(text));
    json_object *ev = json_object_new_object();
    add_u64(ev, "max", st->oom_events);
    add_u64(ev, "oom_kill", st->oom_kill_events);
    json_object_object_add(m, "event_count", ev);
    free(text);
    return m;
}

static void blkio_entry(json_object *arr, const char *majmin, const char *op, uint64_t v)
{
    unsigned maj = 0, min = 0;
    if (sscanf(majmin, "%u:%u", &maj, &min) != 2)
        return;
    json_object *e = json_object_new_object();
    add_u64(e, "major", maj);
    add_u64(e, "minor", min);
    json_object_object_add(e, "op", json_object_new_string(op));
    add_u64(e, "value", v);
    json_object_array_add(arr, e);
}

/* v1: "8:0 Read 4096" lines (plus a "Total" line, skipped). */
static json_object *v1_blkio_list(const char *dir, const char *file)
{
    json_object *arr = json_object_new_array();
    char *text = malloc(65536);
    if (text == NULL)
        return arr;
    rdk(dir, file, text, 65536);
    for (char *save = NULL, *l = strtok_r(text, "\n", &save); l; l = strtok_r(NULL, "\n", &save)) {
        char mm[32], op[32];
        unsigned long long v;
        if (sscanf(l, "%31s %31s %llu", mm, op, &v) == 3)
            blkio_entry(arr, mm, op, v);
    }
    free(text);
    return arr;
}

/* v2: "8:0 rbytes=1 wbytes=2 rios=3 wios=4 ..." per device. */
static void v2_io_stat(const char *dir, json_object *bytes, json_object *ios)
{
    char *text = malloc(65536);
    if (text == NULL)
        return;
    rdk(dir, "io.stat", text, 65536);
    for (char *save = NULL, *l = strtok_r(text, "\n", &save); l; l = strtok_r(NULL, "\n", &save)) {
        char mm[32];
        unsigned long long rb = 0, wb = 0, ri = 0, wi = 0;
        if (sscanf(l, "%31s", mm) != 1)
            continue;
        const char *p;
        if ((p = strstr(l, "rbytes=")))
            rb = strtoull(p + 7, NULL, 10);
        if ((p = strstr(l, "wbytes=")))
            wb = strtoull(p + 7, NULL, 10);
        if ((p = strstr(l, "rios=")))
            ri = strtoull(p + 5, NULL, 10);
        if ((p = strstr(l, "wios=")))
            wi = strtoull(p + 5, NULL, 10);
        blkio_entry(bytes, mm, "Read", rb);
        blkio_entry(bytes, mm, "Write", wb);
        blkio_entry(ios, mm, "Read", ri);
        blkio_entry(ios, mm, "Write", wi);
    }
    free(text);
}

static json_object *blkio_json(const struct hull_cgroup *cg)
{
    json_object *b = json_object_new_object();
    bool v2 = false;
    const char *d = node_dir(cg, CG_BLKIO, &v2);
    if (d == NULL)
        return b;
    if (v2) {
        json_object *bytes = json_object_new_array(), *ios = json_object_new_array();
        v2_io_stat(d, bytes, ios);
        json_object_object_add(b, "ioServiceBytesRecursive", bytes);
        json_object_object_add(b, "ioServicedRecursive", ios);
        return b;
    }
    json_object_object_add(b, "ioServiceBytesRecursive",
                           v1_blkio_list(d, "blkio.throttle.io_service_bytes_recursive"));
    json_object_object_add(b, "ioServicedRecursive",
                           v1_blkio_list(d, "blkio.throttle.io_serviced_recursive"));
    return b;
}

/* "hugepages-2048kB" -> "2MB", as the cgroup files name sizes. */
static bool page_size_name(const char *dirent, char *out, size_t len)
{
    unsigned long long kb;
    if (sscanf(dirent, "hugepages-%llukB", &kb) != 1)
        return false;
    if (kb >= 1048576 && kb % 1048576 == 0)
        snprintf(out, len, "%lluGB", kb / 1048576);
    else if (kb >= 1024 && kb % 1024 == 0)
        snprintf(out, len, "%lluMB", kb / 1024);
    else
        snprintf(out, len, "%lluKB", kb);
    return true;
}

static json_object *hugetlb_json(const struct hull_cgroup *cg)
{
    json_object *h = json_object_new_object();
    bool v2 = false;
    const char *d = node_dir(cg, CG_HUGETLB, &v2);
    DIR *dir = d ? opendir("/sys/kernel/mm/hugepages") : NULL;
    if (dir == NULL)
        return h;
    struct dirent *de;
    while ((de = readdir(dir)) != NULL) {
        char sz[32], f[96], buf[256];
        if (!page_size_name(de->d_name, sz, sizeof(sz)))
            continue;
        json_object *e = json_object_new_object();
        snprintf(f, sizeof(f), "hugetlb.%s.%s", sz, v2 ? "current" : "usage_in_bytes");
        add_u64(e, "usage", rd(d, f));
        if (!v2) {
            snprintf(f, sizeof(f), "hugetlb.%s.max_usage_in_bytes", sz);
            add_u64(e, "max", rd(d, f));
            snprintf(f, sizeof(f), "hugetlb.%s.failcnt", sz);
            add_u64(e, "failcnt", rd(d, f));
        } else {
            snprintf(f, sizeof(f), "hugetlb.%s.events", sz);
            add_u64(e, "failcnt", key(rdk(d, f, buf, sizeof(buf)), "max"));
        }
        json_object_object_add(h, sz, e);
    }
    closedir(dir);
    return h;
}

/* A cpuset list ("0-3,8\n") as its numbers ([0,1,2,3,8]); what does not
 * parse ends it. At most CPUSET_LIST_MAX numbers, whatever a range says. */
#define CPUSET_LIST_MAX 65536
static json_object *cpuset_list(const char *text)
{
    json_object *a = json_object_new_array();
    size_t n = 0;
    for (const char *p = text; *p >= '0' && *p <= '9';) {
        char *end;
        unsigned long lo = strtoul(p, &end, 10), hi = lo;
        p = end;
        if (*p == '-') {
            hi = strtoul(p + 1, &end, 10);
            if (end == p + 1 || hi < lo)
                break;
            p = end;
        }
        for (unsigned long i = lo; i <= hi && n < CPUSET_LIST_MAX; i++, n++)
            json_object_array_add(a, json_object_new_uint64(i));
        if (*p != ',')
            break;
        p++;
    }
    return a;
}

/* runc's "cpuset": the CPUs and memory nodes the container may use (cgroup
 * v2: the effective sets, which the parents narrow; v1: cpuset.cpus and
 * .mems, with the v1 flags), each list left out when empty. The flags that
 * v2 has no file for are 0, as runc prints them. */
static json_object *cpuset_json(const struct hull_cgroup *cg)
{
    static const char *const flags[][2] = {
        {"cpu_exclusive", "cpuset.cpu_exclusive"},
        {"mem_hardwall", "cpuset.mem_hardwall"},
        {"mem_exclusive", "cpuset.mem_exclusive"},
        {"memory_migrate", "cpuset.memory_migrate"},
        {"memory_spread_page", "cpuset.memory_spread_page"},
        {"memory_spread_slab", "cpuset.memory_spread_slab"},
        {"memory_pressure", "cpuset.memory_pressure"},
        {"sched_load_balance", "cpuset.sched_load_balance"},
    };
    json_object *o = json_object_new_object();
    bool v2 = false;
    const char *d = node_dir(cg, CG_CPUSET, &v2);
    char buf[8192];
    for (int mems = 0; mems < 2; mems++) {
        const char *file = mems ? (v2 ? "cpuset.mems.effective" : "cpuset.mems")
                                : (v2 ? "cpuset.cpus.effective" : "cpuset.cpus");
        json_object *a = cpuset_list(d ? rdk(d, file, buf, sizeof(buf)) : "");
        if (json_object_array_length(a) > 0)
            json_object_object_add(o, mems ? "mems" : "cpus", a);
        else
            json_object_put(a);
    }
    for (size_t i = 0; i < sizeof(flags) / sizeof(flags[0]); i++)
        add_u64(o, flags[i][0], d && !v2 ? rd(d, flags[i][1]) : 0);
    long long level = 0;
    if (d && !v2)
        level = strtoll(rdk(d, "cpuset.sched_relax_domain_level", buf, sizeof(buf)), NULL, 10);
    json_object_object_add(o, "sched_relax_domain_level", json_object_new_int64(level));
    return o;
}

json_object *hull_cgroup_stats_json(struct hull_cgroup *cg, hull_error *err)
{
    struct hull_cgroup_stats st;
    if (hull_cgroup_stats(cg, &st, err) < 0)
        return NULL;
    json_object *o = json_object_new_object(), *pids = json_object_new_object();
    json_object_object_add(o, "cpu", cpu_json(cg, &st));
    json_object_object_add(o, "cpuset", cpuset_json(cg));
    json_object_object_add(o, "memory", memory_json(cg, &st));
    add_u64(pids, "current", st.pids_current);
    /* runc reports "max" (no limit) as 0. */
    add_u64(pids, "limit", st.pids_limit == UINT64_MAX ? 0 : st.pids_limit);
    json_object_object_add(o, "pids", pids);
    json_object_object_add(o, "blkio", blkio_json(cg));
    json_object_object_add(o, "hugetlb", hugetlb_json(cg));
    json_object_object_add(o, "intel_rdt", json_object_new_object());
    json_object_object_add(o, "network_interfaces", NULL);
    return o;
}

/* ---- OOM notification ---- */

int hull_cgroup_oom_fd(struct hull_cgroup *cg, hull_error *err)
{
    bool v2 = false;
    const char *d = node_dir(cg, CG_MEMORY, &v2);
    char p[PATH_MAX];
    if (d == NULL)
        return hull_error_set(err, ENOTSUP, "cgroup: no memory controller to watch for OOM");
    if (v2) {
        /* memory.events changes on every limit event; the reader checks
         * oom_kill in hull_cgroup_stats after a wakeup. */
        int fd = inotify_init1(IN_CLOEXEC | IN_NONBLOCK);
        if (fd < 0)
            return hull_error_errno(err, "cgroup: inotify_init1");
        snprintf(p, sizeof(p), "%s/memory.events", d);
        if (inotify_add_watch(fd, p, IN_MODIFY) < 0) {
            hull_error_errno(err, "cgroup: watch %s", p);
            close(fd);
            return -1;
        }
        return fd;
    }
    int efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (efd < 0)
        return hull_error_errno(err, "cgroup: eventfd");
    snprintf(p, sizeof(p), "%s/memory.oom_control", d);
    cleanup_close int ofd = open(p, O_RDONLY | O_CLOEXEC);
    if (ofd < 0 || cg_writef(d, "cgroup.event_control", err, "%d %d", efd, ofd) < 0) {
        if (ofd < 0)
            hull_error_errno(err, "cgroup: open %s", p);
        close(efd);
        return -1;
    }
    /* The kernel holds what it needs; the registration lives as long as
     * the eventfd does. */
    return efd;
}
