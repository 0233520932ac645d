/* watch: a directory's changes (inotify), streamed to the host.
 *
 * {"op":"watch","path":"/d","recursive":true} → RESP {"ok":true,
 * "watches":N}, then DATA frames of NDJSON lines {"type", "path", "dir"}
 * (type create, modify, delete, rename_from, rename_to; "overflow" with no
 * path when the kernel's queue overflowed) until the host leaves the
 * session or the directory goes (then an empty DATA ends the stream). The
 * session's server does nothing else meanwhile; the other ports serve the
 * other sessions.
 *
 * The directory is opened beneath the workload root (RESOLVE_IN_ROOT), and
 * each subdirectory of a recursive watch from its parent's fd without
 * following a symlink, so no path a workload planted leads outside it.
 * Watches are bounded (WATCH_MAX): past that, subdirectories go unwatched
 * and an "overflow" line says so.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/inotify.h>
#include <unistd.h>

#include "agent.h"
#include "util/watch_tree.h"

#define WATCH_MAX 4096
#define WATCH_MASK                                                                                 \
    (IN_CREATE | IN_MODIFY | IN_DELETE | IN_MOVED_FROM | IN_MOVED_TO | IN_DELETE_SELF |            \
     IN_MOVE_SELF | IN_ONLYDIR | IN_EXCL_UNLINK)
/* put_file's temporary (agent_files.c): not news; its rename onto the
 * real name is a "create". */
#define PUT_PREFIX ".hull-put-"

struct wstate {
    struct conn *c;
    int ifd;
    bool recursive;
    struct watch_tree tree; /* guest paths */
    char out[HULL_AGENT_CHUNK];
    size_t out_len;
};

static int flush_out(struct wstate *w)
{
    if (w->out_len == 0)
        return 0;
    int r = conn_send(w->c, HULL_FRAME_DATA, w->out, w->out_len);
    w->out_len = 0;
    return r;
}

static void emit(struct wstate *w, const char *type, const char *path, bool dir)
{
    json_object *o = json_object_new_object();
    json_object_object_add(o, "type", json_object_new_string(type));
    if (path) {
        json_object_object_add(o, "path", json_object_new_string(path));
        json_object_object_add(o, "dir", json_object_new_boolean(dir));
    }
    size_t n;
    const char *s = json_object_to_json_string_length(
        o, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE, &n);
    if (n + 1 <= sizeof(w->out)) {
        if (w->out_len + n + 1 > sizeof(w->out))
            flush_out(w);
        memcpy(w->out + w->out_len, s, n);
        w->out[w->out_len + n] = '\n';
        w->out_len += n + 1;
    }
    json_object_put(o);
}

/* Watch the directory dfd (taken) at path, and below it when recursive. */
static void add_tree(struct wstate *w, int dfd, const char *path, int depth)
{
    char proc[64];
    snprintf(proc, sizeof(proc), "/proc/self/fd/%d", dfd);
    if (w->tree.live >= WATCH_MAX) {
        emit(w, "overflow", NULL, false);
        close(dfd);
        return;
    }
    int wd = inotify_add_watch(w->ifd, proc, WATCH_MASK);
    if (wd >= 0)
        watch_tree_remember(&w->tree, wd, path);
    if (wd < 0 || !w->recursive || depth > 64) {
        close(dfd);
        return;
    }
    DIR *d = fdopendir(dfd);
    if (d == NULL) {
        close(dfd);
        return;
    }
    struct dirent *e;
    while ((e = readdir(d))) {
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
            continue;
        if (e->d_type != DT_DIR && e->d_type != DT_UNKNOWN)
            continue;
        int sub = openat(dirfd(d), e->d_name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        if (sub < 0)
            continue;
        char p[PATH_MAX];
        if ((size_t)snprintf(p, sizeof(p), "%s%s%s", path, strcmp(path, "/") ? "/" : "",
                             e->d_name) >= sizeof(p)) {
            close(sub);
            continue;
        }
        add_tree(w, sub, p, depth + 1);
    }
    closedir(d);
}

static void one_event(struct wstate *w, const struct inotify_event *ev)
{
    struct watch_news n;
    if (!watch_tree_event(&w->tree, ev, &n))
        return;
    emit(w, n.type, n.path, n.dir);
    /* A directory made (or moved in) under a recursive watch: watched too,
     * opened through its parent's watch path beneath the root. */
    if (w->recursive && n.dir && (ev->mask & (IN_CREATE | IN_MOVED_TO))) {
        int sub = agent_open_in_root(n.path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW, 0);
        if (sub >= 0)
            add_tree(w, sub, n.path, 1);
    }
}

static void read_events(struct wstate *w)
{
    char buf[8192] __attribute__((aligned(__alignof__(struct inotify_event))));
    for (;;) {
        ssize_t n = read(w->ifd, buf, sizeof(buf));
        if (n <= 0)
            return;
        for (ssize_t off = 0; off < n;) {
            const struct inotify_event *ev = (const void *)(buf + off);
            one_event(w, ev);
            off += (ssize_t)(sizeof(*ev) + ev->len);
        }
    }
}

static void wstate_free(struct wstate *w)
{
    watch_tree_free(&w->tree);
    if (w->ifd >= 0)
        close(w->ifd);
}

int agent_watch(struct conn *c, json_object *req)
{
    json_object *v;
    const char *path =
        json_object_object_get_ex(req, "path", &v) ? json_object_get_string(v) : NULL;
    if (path == NULL || path[0] != '/' || strlen(path) >= PATH_MAX || strstr(path, "/../") ||
        strstr(path, "/./") || (strlen(path) >= 3 && strcmp(path + strlen(path) - 3, "/..") == 0))
        return conn_send_error(c, "watch: path must be absolute, without . or ..");
    int dfd = strcmp(path, "/") == 0
                  ? open(AGENT_ROOT, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
                  : agent_open_in_root(path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW, 0);
    if (dfd < 0) {
        json_object *o = json_object_new_object();
        json_object_object_add(o, "ok", json_object_new_boolean(0));
        json_object_object_add(o, "errno", json_object_new_int(errno));
        char msg[PATH_MAX + 64];
        snprintf(msg, sizeof(msg), "watch %s: %s", path, strerror(errno));
        json_object_object_add(o, "error", json_object_new_string(msg));
        int r = conn_send_json(c, HULL_FRAME_RESP, o);
        json_object_put(o);
        return r;
    }
    struct wstate w = {.c = c};
    watch_tree_init(&w.tree, PUT_PREFIX);
    w.recursive = json_object_object_get_ex(req, "recursive", &v) && json_object_get_boolean(v);
    w.ifd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
    if (w.ifd < 0) {
        close(dfd);
        return conn_send_error(c, "watch: inotify: %s", strerror(errno));
    }
    char norm[PATH_MAX];
    snprintf(norm, sizeof(norm), "%s", path);
    for (size_t l = strlen(norm); l > 1 && norm[l - 1] == '/'; l--)
        norm[l - 1] = 0;
    add_tree(&w, dfd, norm, 0);
    json_object *o = json_object_new_object();
    json_object_object_add(o, "ok", json_object_new_boolean(1));
    json_object_object_add(o, "watches", json_object_new_int64((int64_t)w.tree.live));
    conn_send_json(c, HULL_FRAME_RESP, o);
    json_object_put(o);
    flush_out(&w); /* an overflow of the first walk */
    while (!w.tree.ended && c->connected) {
        struct pollfd p[3] = {{.fd = w.ifd, .events = POLLIN},
                              {.fd = c->fd, .events = POLLIN},
                              {.fd = agent_sigfd, .events = POLLIN}};
        poll(p, 3, 1000);
        agent_drain_signals();
        agent_reap_detached();
        if (p[1].revents & (POLLIN | POLLHUP)) {
            if (conn_fill(c) < 0)
                break; /* the host left: the watch ends with its session */
            struct frame f;
            while (conn_frame(c, &f))
                ; /* nothing is asked of a watch; what comes is dropped */
        }
        if (p[0].revents & POLLIN)
            read_events(&w);
        if (flush_out(&w) < 0)
            break;
    }
    if (w.tree.ended && c->connected)
        conn_send(c, HULL_FRAME_DATA, NULL, 0);
    wstate_free(&w);
    return 0;
}
