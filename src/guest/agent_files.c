/* put_file / get_file: copy files into and out of the workload root.
 *
 * Paths are checked twice: lexically (absolute, no "." or ".." components,
 * not under /proc, /sys or /dev, which are the kernel's and not files of the
 * workload) and then by the kernel, which resolves them with
 * openat2(RESOLVE_IN_ROOT) so a symlink planted by a workload cannot point
 * the agent outside the workload root.
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/openat2.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "agent.h"

/* Files larger than this are refused whatever the host asks. */
#define AGENT_FILE_MAX (1LL << 32)

const char *agent_check_path(const char *p)
{
    if (!p || p[0] != '/')
        return "path must be absolute";
    if (strlen(p) >= 4096)
        return "path too long";
    /* The kernel reads "//dev" as "/dev": every leading slash is skipped
     * before the first component is compared. */
    const char *first = p;
    while (*first == '/')
        first++;
    static const char *const banned[] = {"proc", "sys", "dev"};
    for (size_t i = 0; i < sizeof(banned) / sizeof(banned[0]); i++) {
        size_t l = strlen(banned[i]);
        if (strncmp(first, banned[i], l) == 0 && (first[l] == '/' || first[l] == 0))
            return "path is outside the guest's allowed tree (/proc, /sys and /dev are not files)";
    }
    for (const char *s = p; *s;) {
        while (*s == '/')
            s++;
        size_t l = strcspn(s, "/");
        if ((l == 1 && s[0] == '.') || (l == 2 && s[0] == '.' && s[1] == '.'))
            return "path is outside the guest's allowed tree (\".\" and \"..\" are not allowed)";
        s += l;
    }
    if (*first == '\0')
        return "path names the root directory, not a file";
    return NULL;
}

int agent_open_in_root(const char *path, int flags, mode_t mode)
{
    int root = open(AGENT_ROOT, O_PATH | O_DIRECTORY | O_CLOEXEC);
    if (root < 0)
        return -1;
    struct open_how how = {
        .flags = (uint64_t)flags | O_CLOEXEC,
        .mode = (flags & O_CREAT) ? mode : 0,
        .resolve = RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS,
    };
    int fd = (int)syscall(SYS_openat2, root, path + 1, &how, sizeof(how));
    int e = errno;
    close(root);
    errno = e;
    return fd;
}

static int64_t get_i64(json_object *o, const char *key, int64_t dflt)
{
    json_object *v;
    return json_object_object_get_ex(o, key, &v) ? json_object_get_int64(v) : dflt;
}

static const char *get_str(json_object *o, const char *key)
{
    json_object *v;
    return json_object_object_get_ex(o, key, &v) ? json_object_get_string(v) : NULL;
}

/* Consume DATA frames up to the empty one; write them to fd unless fd < 0. */
static int receive_data(struct conn *c, int fd, int64_t limit, int64_t *got, int *werr)
{
    *got = 0;
    *werr = 0;
    for (;;) {
        struct frame f;
        if (conn_wait_frame(c, &f) < 0)
            return -1;
        if (f.type != HULL_FRAME_DATA)
            continue;
        if (f.len == 0)
            return 0;
        *got += f.len;
        if (fd < 0 || *werr)
            continue;
        if (*got > limit) {
            *werr = EFBIG;
            continue;
        }
        for (uint32_t off = 0; off < f.len;) {
            ssize_t n = write(fd, f.data + off, f.len - off);
            if (n < 0) {
                *werr = errno;
                break;
            }
            off += (uint32_t)n;
        }
    }
}

int agent_put_file(struct conn *c, json_object *req)
{
    const char *path = get_str(req, "path");
    int64_t size = get_i64(req, "size", -1);
    int64_t mode = get_i64(req, "mode", 0644) & 07777;
    const char *bad = agent_check_path(path);
    if (bad)
        return conn_send_error(c, "put_file %s: %s", path ? path : "(none)", bad);
    if (size < 0 || size > AGENT_FILE_MAX)
        return conn_send_error(c, "put_file %s: size %lld out of range", path, (long long)size);
    /* Write a temporary beside the target and rename it over, so a reader
     * never sees half a file and a failure leaves the old one. */
    char dir[4096], tmp[4200];
    snprintf(dir, sizeof(dir), "%s", path);
    char *slash = strrchr(dir, '/');
    const char *base = path + (slash - dir) + 1;
    if (slash == dir)
        strcpy(dir, "/");
    else
        *slash = 0;
    int dfd = strcmp(dir, "/") == 0 ? open(AGENT_ROOT, O_PATH | O_DIRECTORY | O_CLOEXEC)
                                    : agent_open_in_root(dir, O_PATH | O_DIRECTORY, 0);
    if (dfd < 0)
        return conn_send_error(c, "put_file %s: %s: %s", path, dir, strerror(errno));
    snprintf(tmp, sizeof(tmp), ".hull-put-%d-%s", getpid(), base);
    char fdpath[64];
    snprintf(fdpath, sizeof(fdpath), "/proc/self/fd/%d", dfd);
    int dirw = open(fdpath, O_DIRECTORY | O_RDONLY | O_CLOEXEC);
    int fd = dirw < 0
                 ? -1
                 : openat(dirw, tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
    if (fd < 0) {
        int e = errno;
        close(dfd);
        if (dirw >= 0)
            close(dirw);
        return conn_send_error(c, "put_file %s: %s", path, strerror(e));
    }
    conn_send_ok(c); /* the host may send the bytes now */
    int64_t got;
    int werr;
    int r = receive_data(c, fd, size, &got, &werr);
    if (!werr && got != size)
        werr = EIO;
    if (!werr && (fchmod(fd, (mode_t)mode) < 0 || fsync(fd) < 0))
        werr = errno;
    close(fd);
    if (!werr && renameat(dirw, tmp, dirw, base) < 0)
        werr = errno;
    if (werr)
        unlinkat(dirw, tmp, 0);
    close(dirw);
    close(dfd);
    if (r < 0)
        return -1;
    if (werr == EIO)
        return conn_send_error(c, "put_file %s: got %lld bytes, expected %lld", path,
                               (long long)got, (long long)size);
    if (werr)
        return conn_send_error(c, "put_file %s: %s", path, strerror(werr));
    json_object *o = json_object_new_object();
    json_object_object_add(o, "ok", json_object_new_boolean(1));
    json_object_object_add(o, "size", json_object_new_int64(got));
    conn_send_json(c, HULL_FRAME_RESP, o);
    json_object_put(o);
    return 0;
}

/* The data extents of fd (SEEK_DATA / SEEK_HOLE), at most max_data bytes
 * of them: holes are not sent, and the host keeps them as holes. Past
 * AGENT_MAX_EXTENTS the last extent runs to the end of the file. *length
 * is where the file ends on the host (size, or where max_data cut it). */
#define AGENT_MAX_EXTENTS 1024
static json_object *data_extents(int fd, int64_t size, int64_t max_data, int64_t *length, bool *cut)
{
    json_object *a = json_object_new_array();
    int64_t off = 0, left = max_data;
    size_t n = 0;
    *cut = false;
    *length = size;
    while (off < size) {
        off_t data = lseek(fd, off, SEEK_DATA);
        if (data < 0 && errno != ENXIO)
            data = off; /* no hole support: all of it is data */
        if (data < 0)
            break;
        off_t hole = ++n == AGENT_MAX_EXTENTS ? size : lseek(fd, data, SEEK_HOLE);
        if (hole < 0 || hole > size)
            hole = size;
        int64_t len = hole - data;
        if (len > left) {
            len = left;
            *cut = true;
            *length = data + len;
        }
        json_object *e = json_object_new_array();
        json_object_array_add(e, json_object_new_int64(data));
        json_object_array_add(e, json_object_new_int64(len));
        json_object_array_add(a, e);
        left -= len;
        off = data + len;
        if (*cut)
            break;
    }
    return a;
}

/* Send len bytes of fd from off; a file that shrank ends early (the host
 * checks the count). */
static int send_range(struct conn *c, int fd, int64_t off, int64_t len)
{
    uint8_t buf[HULL_AGENT_CHUNK];
    while (len > 0) {
        ssize_t n =
            pread(fd, buf, (size_t)(len < (int64_t)sizeof(buf) ? len : (int64_t)sizeof(buf)), off);
        if (n <= 0)
            return 0;
        if (conn_send(c, HULL_FRAME_DATA, buf, (size_t)n) < 0)
            return -1;
        off += n;
        len -= n;
    }
    return 0;
}

/* get_file {path, max_size} sends the whole file; with max_data it sends
 * only the data extents listed in the answer ("extents": [[offset, length],
 * ...], "length", "cut"), at most max_data bytes of them. */
int agent_get_file(struct conn *c, json_object *req)
{
    const char *path = get_str(req, "path");
    int64_t max = get_i64(req, "max_size", AGENT_FILE_MAX);
    int64_t max_data = get_i64(req, "max_data", -1);
    const char *bad = agent_check_path(path);
    if (bad)
        return conn_send_error(c, "get_file %s: %s", path ? path : "(none)", bad);
    int fd = agent_open_in_root(path, O_RDONLY | O_NOCTTY | O_NONBLOCK, 0);
    if (fd < 0) {
        /* With its errno, so the host can tell a missing file from others. */
        int e = errno;
        json_object *o = json_object_new_object();
        char msg[4200];
        snprintf(msg, sizeof(msg), "get_file %s: %s", path, strerror(e));
        json_object_object_add(o, "ok", json_object_new_boolean(0));
        json_object_object_add(o, "error", json_object_new_string(msg));
        json_object_object_add(o, "errno", json_object_new_int(e));
        int r = conn_send_json(c, HULL_FRAME_RESP, o);
        json_object_put(o);
        return r;
    }
    struct stat st;
    if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
        close(fd);
        return conn_send_error(c, "get_file %s: not a regular file", path);
    }
    if (max_data < 0 && st.st_size > max) {
        close(fd);
        return conn_send_error(c, "get_file %s: %lld bytes is over the limit of %lld", path,
                               (long long)st.st_size, (long long)max);
    }
    json_object *o = json_object_new_object();
    json_object *extents = NULL;
    int64_t length = st.st_size;
    bool cut = false;
    if (max_data >= 0) {
        extents = data_extents(fd, st.st_size, max_data < max ? max_data : max, &length, &cut);
        if (cut && max < max_data) {
            /* Cut by the agent's own bound, not the host's: refused whole. */
            json_object_put(extents);
            json_object_put(o);
            close(fd);
            return conn_send_error(c, "get_file %s: more than %lld bytes of data", path,
                                   (long long)max);
        }
        json_object_object_add(o, "extents", json_object_get(extents));
        json_object_object_add(o, "length", json_object_new_int64(length));
        json_object_object_add(o, "cut", json_object_new_boolean(cut));
    }
    json_object_object_add(o, "ok", json_object_new_boolean(1));
    json_object_object_add(o, "size", json_object_new_int64(st.st_size));
    json_object_object_add(o, "mode", json_object_new_int(st.st_mode & 07777));
    int r = conn_send_json(c, HULL_FRAME_RESP, o);
    json_object_put(o);
    if (extents == NULL) {
        /* Up to the size announced: a file that grows while we read is cut. */
        if (r == 0)
            r = send_range(c, fd, 0, st.st_size);
    } else {
        for (size_t i = 0; r == 0 && i < json_object_array_length(extents); i++) {
            json_object *e = json_object_array_get_idx(extents, i);
            r = send_range(c, fd, json_object_get_int64(json_object_array_get_idx(e, 0)),
                           json_object_get_int64(json_object_array_get_idx(e, 1)));
        }
        json_object_put(extents);
    }
    close(fd);
    return r == 0 ? conn_send(c, HULL_FRAME_DATA, NULL, 0) : -1;
}
