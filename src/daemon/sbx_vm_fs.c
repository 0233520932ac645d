/* The /fs API of a microVM sandbox (op "fs", as keeper_files.c answers it
 * for containers). Bytes travel through the agent (get_file / put_file,
 * paths resolved by the agent inside the workload root); read and write
 * hand hulld a host file in the keeper's private staging directory.
 * stat, list, mkdir, rename and remove are done by the agent itself
 * (hull_vm_fs), with the code that serves a container's: no program of the
 * guest answers them, so a workload cannot answer in the agent's place. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "daemon.h"
#include "procs.h"
#include "util/error.h"
#include "util/json.h"

static const char *hstr(struct frame *f, const char *key)
{
    json_object *v = hj_get(f->hdr, key);
    return v ? json_object_get_string(v) : NULL;
}

/* op, done by the guest's agent: its answer, or NULL with err. */
static json_object *guest_fs(const char *vm, const struct hull_fs_op *op, hull_error *err)
{
    json_object *out = NULL;
    return hull_vm_fs(NULL, vm, op, &out, err) < 0 ? NULL : out;
}

/* The file is staged on the host before it is sent, so its data is held to
 * limit (the guest's memory, as for a write): the host's disk is not the
 * guest's to fill. */
static int fs_read(const char *vm, const char *stage, uint64_t limit, const char *path,
                   json_object **out, int *fd, hull_error *err)
{
    char host[128];
    snprintf(host, sizeof(host), "%s/read", stage);
    unlink(host);
    if (hull_vm_copy_out_max(NULL, vm, path, host, limit, err) < 0) {
        unlink(host);
        return -1;
    }
    *fd = open(host, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    struct stat st;
    int rc = *fd < 0 || fstat(*fd, &st) < 0 ? hull_error_errno(err, "read: staging file") : 0;
    unlink(host); /* hulld streams it from the fd; then it is gone */
    /* The length is the guest's word (holes cost no disk): what hulld would
     * stream is held to the same limit as the data. */
    if (rc == 0 && (uint64_t)st.st_size > limit)
        rc = hull_error_set(err, EFBIG, "read %s: %lld bytes long, more than %llu", path,
                            (long long)st.st_size, (unsigned long long)limit);
    if (rc == 0) {
        *out = json_object_new_object();
        json_object_object_add(*out, "size", json_object_new_int64((int64_t)st.st_size));
    }
    return rc;
}

static int fs_write(const char *stage, uint64_t limit, json_object **out, int *fd, hull_error *err)
{
    *fd = open(stage, O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
    if (*fd < 0)
        return hull_error_errno(err, "write: staging file");
    *out = json_object_new_object();
    json_object_object_add(*out, "limit", json_object_new_int64((int64_t)limit));
    return 0;
}

int vmk_fs_parents(const char *vm, const char *path, hull_error *err)
{
    char dir[4200];
    snprintf(dir, sizeof(dir), "%s", path);
    char *slash = strrchr(dir, '/');
    if (slash == NULL || slash == dir)
        return 0;
    *slash = '\0';
    struct hull_fs_op mk = {.verb = HULL_FS_MKDIR, .path = dir, .fd = -1};
    json_object *d = guest_fs(vm, &mk, err);
    json_object_put(d);
    return d ? 0 : -1;
}

static int fs_commit(const char *vm, int up, const char *path, unsigned mode, json_object **out,
                     hull_error *err)
{
    if (up < 0)
        return hull_error_set(err, EPROTO, "commit: no file");
    /* put_file gives the guest's file the host file's mode. */
    if (fchmod(up, mode ? mode & 07777 : 0644) < 0)
        return hull_error_errno(err, "commit: mode");
    if (vmk_fs_parents(vm, path, err) < 0)
        return -1;
    /* The keeper's own fd, by a path copy_in can open. */
    char host[64];
    snprintf(host, sizeof(host), "/proc/self/fd/%d", up);
    if (hull_vm_copy_in(NULL, vm, host, path, err) < 0)
        return -1;
    struct hull_fs_op st = {.verb = HULL_FS_STAT, .path = path, .fd = -1};
    *out = guest_fs(vm, &st, err);
    return *out ? 0 : -1;
}

void vmk_fs_op(const char *vm, const char *stage, uint64_t limit, int sock, struct frame *f)
{
    hull_error e = NULL;
    json_object *out = NULL;
    int fd = -1;
    const char *verb = hstr(f, "verb"), *path = hstr(f, "path");
    if (verb == NULL || path == NULL || path[0] != '/') {
        hull_error_set(&e, EINVAL, "path: must be absolute");
    } else if (strcmp(verb, "read") == 0) {
        fs_read(vm, stage, limit, path, &out, &fd, &e);
    } else if (strcmp(verb, "write") == 0) {
        fs_write(stage, limit, &out, &fd, &e);
    } else if (strcmp(verb, "commit") == 0) {
        json_object *m = hj_get(f->hdr, "mode");
        fs_commit(vm, f->fd, path, m ? (unsigned)json_object_get_int(m) : 0, &out, &e);
    } else if (strcmp(verb, "stat") == 0 || strcmp(verb, "list") == 0 ||
               strcmp(verb, "mkdir") == 0 || strcmp(verb, "remove") == 0 ||
               strcmp(verb, "rename") == 0) {
        json_object *depth = hj_get(f->hdr, "depth"), *rec = hj_get(f->hdr, "recursive"),
                    *mode = hj_get(f->hdr, "mode");
        int d = depth ? json_object_get_int(depth) : 0;
        struct hull_fs_op op = {.verb = (enum hull_fs_verb)hull_fs_verb_parse(verb),
                                .path = path,
                                .to = strcmp(verb, "rename") == 0 ? hstr(f, "to") : NULL,
                                .depth = d > 0 ? (unsigned)d : 1,
                                .recursive = rec && json_object_get_boolean(rec),
                                .mode = mode ? (unsigned)json_object_get_int(mode) & 07777 : 0,
                                .fd = -1};
        if (strcmp(verb, "rename") == 0 && (op.to == NULL || op.to[0] != '/'))
            hull_error_set(&e, EINVAL, "to: must be an absolute path");
        else
            out = guest_fs(vm, &op, &e);
    } else if (strcmp(verb, "watch") == 0) {
        json_object *rec = hj_get(f->hdr, "recursive");
        vmk_watch(vm, path, rec && json_object_get_boolean(rec), &out, &fd, &e);
    } else {
        hull_error_set(&e, ENOTSUP, "fs: %s is not available for microVM sandboxes yet", verb);
    }
    json_object *hdr = json_object_new_object();
    if (e) {
        json_object *er = json_object_new_object();
        json_object_object_add(er, "errno", json_object_new_int(hull_error_code(e)));
        json_object_object_add(er, "message", json_object_new_string(hull_error_msg(e)));
        json_object_object_add(hdr, "error", er);
        hull_error_free(&e);
    } else {
        json_object_object_add(hdr, "ok", json_object_new_boolean(1));
        json_object_object_add(hdr, "result", json_object_get(out));
    }
    frame_send(sock, hdr, NULL, 0, e == NULL && out ? fd : -1);
    json_object_put(hdr);
    json_object_put(out);
    if (fd >= 0)
        close(fd);
}
