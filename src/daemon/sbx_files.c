/* /v1/sandboxes/{sid}/fs/{path}: the file API over HTTP.
 *
 * hulld never resolves a sandbox path: the keeper's child does, inside the
 * sandbox as its user (sandbox/session_fs.c), and hands back an fd. hulld
 * streams through that fd: a download is read from the fd as the client
 * takes it (file_read: a file the sandbox shrinks meanwhile ends the
 * connection short of its length), an upload's chunks are written straight
 * into an unnamed file (O_TMPFILE) beside the target that only gets its
 * name when the whole body is in, so memory does not grow with the file or
 * with a slow client, and a cut upload leaves nothing. The sandbox's tmpfs
 * size bounds the upload (ENOSPC -> 413 naming the limit). Watch streams
 * are sbx_watch.c. */
#include <errno.h>
#include <microhttpd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "daemon.h"
#include "sbx_files.h"
#include "streams.h"
#include "util/clock.h"
#include "util/error.h"
#include "util/json.h"
#include "util/log.h"

/* How far ahead of an upload of unknown length its file is made. */
#define UPLOAD_STEP (16ull << 20)

struct fs_upload {
    char sid[64];
    char tenant[72];
    char path[4200];
    char limit[4200]; /* what bounds the file (from the keeper) */
    unsigned mode;
    int fd;              /* the unnamed file, -1 after a failure */
    uint64_t written;    /* bytes in it */
    uint64_t reserved;   /* its length as made by the sandbox (0: none needed) */
    bool reserve;        /* grow it through the keeper before writing past reserved */
    uint64_t dropped;    /* bytes read and dropped after a failure */
    int err_code;        /* the failure's errno, 0 while fine */
    uint64_t touched_ns; /* when the sandbox was last marked in use */
    char quota[72];      /* the tenant whose stream place it holds (streams.c) */
    char err_msg[8800];
};

void sbx_fs_error(struct resp *r, hull_error *e)
{
    const char *msg = hull_error_msg(*e);
    switch (hull_error_code(*e)) {
    case EACCES:
    case EPERM:
    case EROFS:
        resp_error(r, 403, "forbidden", NULL, "%s", msg);
        break;
    case EISDIR:
    case ENOTDIR:
    case EEXIST:
    case ENOTEMPTY:
    case EBUSY:
    case ESRCH:
        resp_error(r, 409, "conflict", NULL, "%s", msg);
        break;
    case ENOSPC:
    case EDQUOT:
    case EFBIG:
        resp_error(r, 413, "payload_too_large", NULL, "%s", msg);
        break;
    case ELOOP:
    case EINVAL:
    case ENAMETOOLONG:
    case EXDEV:
        resp_error(r, 400, "invalid_request", "path", "%s", msg);
        break;
    default:
        resp_from_error(r, e);
        return;
    }
    hull_error_free(e);
}

int sbx_fs_call(const char *sid, const char *tenant, json_object *hdr, int fd, json_object **result,
                int *fd_out, hull_error *err)
{
    struct frame f;
    *result = NULL;
    if (fd_out)
        *fd_out = -1;
    if (sandboxes_call(sid, tenant, "fs", hdr, fd, &f, err) < 0)
        return -1;
    *result = json_object_get(hj_get(f.hdr, "result"));
    if (fd_out) {
        *fd_out = f.fd;
        f.fd = -1;
    }
    frame_free(&f);
    return 0;
}

static json_object *fs_hdr(const char *verb, const char *path)
{
    json_object *hdr = json_object_new_object();
    json_object_object_add(hdr, "verb", json_object_new_string(verb));
    json_object_object_add(hdr, "path", json_object_new_string(path));
    return hdr;
}

/* "0644" (octal, at most 07777) -> mode; -1 when not one. */
static int parse_mode(const char *s)
{
    char *end = NULL;
    if (s == NULL || *s == '\0')
        return -1;
    unsigned long m = strtoul(s, &end, 8);
    return *end != '\0' || m > 07777 ? -1 : (int)m;
}

static bool parse_bool(const char *s, bool *out)
{
    *out = false;
    if (s == NULL)
        return true;
    if (strcmp(s, "true") == 0 || strcmp(s, "1") == 0)
        *out = true;
    else if (strcmp(s, "false") != 0 && strcmp(s, "0") != 0)
        return false;
    return true;
}

int sbx_fs_path(const char *file, char *out, size_t len, struct resp *r)
{
    if (snprintf(out, len, "/%s", file ? file : "") >= (int)len) {
        resp_error(r, 400, "invalid_request", "path", "path: longer than %zu bytes", len - 1);
        return -1;
    }
    return 0;
}

/* A download's file, read for MHD at the offsets it asks for. A download
 * is a stream of its tenant's (streams.c), and ends when the token that
 * asked for it is revoked (as every stream does, http.c). */
struct file_src {
    int fd;
    uint64_t size;  /* what Content-Length said */
    char quota[72]; /* the tenant whose stream place it holds */
    char token[sizeof(((struct hull_token_info *)0)->id)];
    struct hull_revoke_mark mark;
};

#define FILE_BLOCK (128u << 10)

static ssize_t file_read(void *cls, uint64_t pos, char *buf, size_t max)
{
    struct file_src *f = cls;
    if (pos >= f->size)
        return MHD_CONTENT_READER_END_OF_STREAM;
    if (f->token[0] && hull_token_revoked_since(hulld.store, f->token, &f->mark)) {
        hull_log(HULL_LOG_INFO, "token %s was revoked: its download ends", f->token);
        return MHD_CONTENT_READER_END_WITH_ERROR;
    }
    if (max > f->size - pos)
        max = (size_t)(f->size - pos);
    ssize_t n;
    do
        n = pread(f->fd, buf, max, (off_t)pos);
    while (n < 0 && errno == EINTR);
    if (n > 0)
        return n;
    /* Short of the length the answer declared (the file shrank, or cannot
     * be read): the connection ends, so the client sees a cut answer. */
    hull_debug("download: %s at byte %llu of %llu", n < 0 ? strerror(errno) : "the file shrank",
               (unsigned long long)pos, (unsigned long long)f->size);
    return MHD_CONTENT_READER_END_WITH_ERROR;
}

static void file_free(void *cls)
{
    struct file_src *f = cls;
    close(f->fd);
    streams_give(f->quota);
    free(f);
}

static void download(const struct request *rq, const char *sid, const char *path, struct resp *r)
{
    json_object *res = NULL;
    int fd = -1;
    hull_error e = NULL;
    char quota[72];
    if (streams_take(rq, quota, sizeof(quota), r) < 0)
        return;
    if (sbx_fs_call(sid, rq->caller->tenant, fs_hdr("read", path), -1, &res, &fd, &e) < 0) {
        streams_give(quota);
        sbx_fs_error(r, &e);
        return;
    }
    int64_t size = json_object_get_int64(hj_get(res, "size"));
    json_object_put(res);
    if (fd < 0) {
        streams_give(quota);
        resp_error(r, 500, "internal", NULL, "read %s: no file came back", path);
        return;
    }
    /* Read as the client takes the bytes; the fd is closed with the
     * response. Not MHD's own response from an fd: its sendfile loop
     * spins on a CPU for as long as the client stays when the sandbox
     * shrinks the file under it, where this ends the connection. */
    struct file_src *src = malloc(sizeof(*src));
    struct MHD_Response *m = NULL;
    if (src) {
        *src = (struct file_src){.fd = fd, .size = (uint64_t)size};
        snprintf(src->quota, sizeof(src->quota), "%s", quota);
        snprintf(src->token, sizeof(src->token), "%s", rq->caller->tok.id);
        m = MHD_create_response_from_callback(src->size, FILE_BLOCK, file_read, src, file_free);
    }
    if (m == NULL) {
        free(src);
        close(fd);
        streams_give(quota);
        resp_error(r, 500, "internal", NULL, "read %s: no response", path);
        return;
    }
    r->mhd = m;
    r->status = 200;
    r->content_type = "application/octet-stream";
}

/* One verb whose answer is JSON. */
static void simple(const struct request *rq, const char *sid, json_object *hdr, int status,
                   struct resp *r)
{
    json_object *res = NULL;
    hull_error e = NULL;
    if (sbx_fs_call(sid, rq->caller->tenant, hdr, -1, &res, NULL, &e) < 0)
        sbx_fs_error(r, &e);
    else
        resp_json(r, status, res ? res : json_object_new_object());
}

static void get(const struct request *rq, const char *sid, const char *path, struct resp *r)
{
    const char *op = request_query(rq, "op");
    if (op == NULL || strcmp(op, "read") == 0) {
        download(rq, sid, path, r);
    } else if (strcmp(op, "stat") == 0) {
        simple(rq, sid, fs_hdr("stat", path), 200, r);
    } else if (strcmp(op, "list") == 0) {
        const char *d = request_query(rq, "depth");
        char *end = NULL;
        long depth = d ? strtol(d, &end, 10) : 1;
        if (d && (*end != '\0' || depth < 1 || depth > 32)) {
            resp_error(r, 400, "invalid_request", "depth", "depth: must be 1 to 32");
            return;
        }
        json_object *hdr = fs_hdr("list", path);
        json_object_object_add(hdr, "depth", json_object_new_int((int)depth));
        simple(rq, sid, hdr, 200, r);
    } else if (strcmp(op, "watch") == 0) {
        bool rec;
        if (!parse_bool(request_query(rq, "recursive"), &rec)) {
            resp_error(r, 400, "invalid_request", "recursive", "recursive: true or false");
            return;
        }
        sbx_watch(rq, sid, path, rec, r);
    } else {
        resp_error(r, 400, "invalid_request", "op", "op '%s': GET takes read, stat, list or watch",
                   op);
    }
}

static void post(const struct request *rq, const char *sid, const char *path, struct resp *r)
{
    const char *op = request_query(rq, "op");
    if (op && strcmp(op, "mkdir") == 0) {
        const char *ms = request_query(rq, "mode");
        int mode = ms ? parse_mode(ms) : 0;
        if (mode < 0) {
            resp_error(r, 400, "invalid_request", "mode", "mode: an octal mode like 0755");
            return;
        }
        json_object *hdr = fs_hdr("mkdir", path);
        json_object_object_add(hdr, "mode", json_object_new_int(mode));
        simple(rq, sid, hdr, 201, r);
        return;
    }
    if (op == NULL || strcmp(op, "rename") != 0) {
        resp_error(r, 400, "invalid_request", "op", "op: POST takes mkdir or rename");
        return;
    }
    cleanup_json json_object *doc = NULL;
    if (request_doc(rq, false, &doc, r) < 0)
        return;
    json_object *to = hj_get(doc, "to");
    if (to == NULL || !json_object_is_type(to, json_type_string)) {
        resp_error(r, 400, "invalid_request", "to", "to: the new absolute path is required");
        return;
    }
    json_object *hdr = fs_hdr("rename", path);
    json_object_object_add(hdr, "to", json_object_get(to));
    simple(rq, sid, hdr, 200, r);
}

void sbx_fs(const struct request *rq, const char *sid, const char *file, struct resp *r)
{
    char path[4200];
    snprintf(r->target, sizeof(r->target), "%s", sid);
    if (sbx_fs_path(file, path, sizeof(path), r) < 0)
        return;
    if (strcmp(rq->method, "GET") == 0) {
        get(rq, sid, path, r);
    } else if (strcmp(rq->method, "POST") == 0) {
        post(rq, sid, path, r);
    } else if (strcmp(rq->method, "DELETE") == 0) {
        bool rec;
        if (!parse_bool(request_query(rq, "recursive"), &rec)) {
            resp_error(r, 400, "invalid_request", "recursive", "recursive: true or false");
            return;
        }
        json_object *hdr = fs_hdr("remove", path);
        json_object_object_add(hdr, "recursive", json_object_new_boolean(rec));
        simple(rq, sid, hdr, 200, r);
    } else {
        resp_error(r, 405, "method_not_allowed", NULL, "%s is not allowed here", rq->method);
    }
}

/* ---- uploads ---- */

int sbx_fs_upload_begin(const struct request *rq, const char *sid, const char *file,
                        uint64_t declared, struct fs_upload **out, struct resp *r)
{
    *out = NULL;
    const char *ms = request_query(rq, "mode");
    int mode = ms ? parse_mode(ms) : 0;
    if (mode < 0 || mode > 0777) {
        resp_error(r, 400, "invalid_request", "mode", "mode: an octal mode like 0644");
        return -1;
    }
    /* A body of any size, as slow as its client likes: a long-lived
     * request like a stream. */
    char quota[72];
    if (streams_take(rq, quota, sizeof(quota), r) < 0)
        return -1;
    struct fs_upload *u = calloc(1, sizeof(*u));
    if (u == NULL) {
        streams_give(quota);
        resp_error(r, 500, "internal", NULL, "out of memory");
        return -1;
    }
    u->fd = -1;
    snprintf(u->quota, sizeof(u->quota), "%s", quota);
    u->mode = (unsigned)mode;
    snprintf(u->sid, sizeof(u->sid), "%s", sid);
    snprintf(u->tenant, sizeof(u->tenant), "%s", rq->caller->tenant ? rq->caller->tenant : "");
    if (sbx_fs_path(file, u->path, sizeof(u->path), r) < 0) {
        sbx_fs_upload_free(u);
        return -1;
    }
    json_object *hdr = fs_hdr("write", u->path), *res = NULL;
    json_object_object_add(hdr, "mode", json_object_new_int(mode));
    json_object_object_add(hdr, "size", json_object_new_int64((int64_t)declared));
    hull_error e = NULL;
    if (sbx_fs_call(sid, rq->caller->tenant, hdr, -1, &res, &u->fd, &e) < 0 || u->fd < 0) {
        if (e == NULL)
            hull_error_set(&e, EIO, "write %s: no file came back", u->path);
        sbx_fs_error(r, &e);
        sbx_fs_upload_free(u);
        return -1;
    }
    snprintf(u->limit, sizeof(u->limit), "%s", json_object_get_string(hj_get(res, "limit")));
    u->reserve = hj_get(res, "reserve") && json_object_get_boolean(hj_get(res, "reserve"));
    u->reserved = declared;
    u->touched_ns = hull_monotonic_ns();
    json_object_put(res);
    *out = u;
    return 0;
}

/* The unnamed file made (by the sandbox, charged to its memory: see the
 * keeper's "reserve") at least need bytes long, a step ahead. */
static int upload_room(struct fs_upload *u, uint64_t need, hull_error *e)
{
    if (!u->reserve || need <= u->reserved)
        return 0;
    uint64_t want = (need + UPLOAD_STEP - 1) / UPLOAD_STEP * UPLOAD_STEP;
    json_object *hdr = fs_hdr("reserve", u->path), *res = NULL;
    json_object_object_add(hdr, "size", json_object_new_int64((int64_t)want));
    if (sbx_fs_call(u->sid, u->tenant[0] ? u->tenant : NULL, hdr, u->fd, &res, NULL, e) < 0)
        return -1;
    json_object_put(res);
    u->reserved = want;
    return 0;
}

/* The upload failed with code (message msg): its file goes now, its
 * space with it; the rest of the body is read and dropped. */
static void upload_fail(struct fs_upload *u, int code, const char *msg, size_t n)
{
    u->err_code = code == EDQUOT || code == EFBIG ? ENOSPC : code;
    if (msg)
        snprintf(u->err_msg, sizeof(u->err_msg), "%s", msg);
    else if (u->err_code == ENOSPC)
        snprintf(u->err_msg, sizeof(u->err_msg),
                 "write %s: the sandbox's disk is full after %llu bytes: bounded by %s", u->path,
                 (unsigned long long)u->written, u->limit);
    else
        snprintf(u->err_msg, sizeof(u->err_msg), "write %s: %s", u->path, strerror(code));
    close(u->fd);
    u->fd = -1;
    u->dropped = n;
}

bool sbx_fs_upload_part(struct fs_upload *u, const char *data, size_t n)
{
    if (u->fd < 0) {
        u->dropped += n;
        return u->dropped <= HTTP_DISCARD_MAX;
    }
    hull_error e = NULL;
    if (upload_room(u, u->written + n, &e) < 0) {
        /* ENOMEM: the sandbox's memory refused it (the keeper says so);
         * ENOSPC: its disk, whose limit we name as a write's. */
        int code = hull_error_code(e);
        upload_fail(u, code == ENOMEM ? ENOSPC : code, code == ENOSPC ? NULL : hull_error_msg(e),
                    n);
        hull_error_free(&e);
        return true;
    }
    while (n) {
        ssize_t k = write(u->fd, data, n);
        if (k < 0 && errno == EINTR)
            continue;
        if (k <= 0) {
            int code = k < 0 ? errno : EIO;
            upload_fail(u, code, NULL, n);
            return true;
        }
        u->written += (uint64_t)k;
        data += k;
        n -= (size_t)k;
    }
    /* A body still flowing is a sandbox in use (its idle lifetime). */
    uint64_t now = hull_monotonic_ns();
    if (now - u->touched_ns > 1000000000ull) {
        sandboxes_touch(u->sid, u->tenant[0] ? u->tenant : NULL);
        u->touched_ns = now;
    }
    return true;
}

void sbx_fs_upload_end(struct fs_upload *u, struct resp *r)
{
    hull_error e = NULL;
    if (u->fd < 0) {
        hull_error_set(&e, u->err_code ? u->err_code : EIO, "%s", u->err_msg);
        sbx_fs_error(r, &e);
        return;
    }
    /* What was made ahead and not written goes before the file is named. */
    if (u->reserved > u->written && ftruncate(u->fd, (off_t)u->written) < 0) {
        hull_error_set(&e, errno, "write %s: truncate: %s", u->path, strerror(errno));
        sbx_fs_error(r, &e);
        return;
    }
    json_object *hdr = fs_hdr("commit", u->path), *res = NULL;
    json_object_object_add(hdr, "mode", json_object_new_int((int)u->mode));
    if (sbx_fs_call(u->sid, u->tenant[0] ? u->tenant : NULL, hdr, u->fd, &res, NULL, &e) < 0)
        sbx_fs_error(r, &e);
    else
        resp_json(r, 201, res ? res : json_object_new_object());
    close(u->fd);
    u->fd = -1;
}

void sbx_fs_upload_free(struct fs_upload *u)
{
    if (u == NULL)
        return;
    if (u->fd >= 0)
        close(u->fd); /* never named: the kernel drops it */
    streams_give(u->quota);
    free(u);
}
