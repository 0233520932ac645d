/* The file API's HTTP side (sbx_files.c, sbx_watch.c), for http.c. */
#ifndef HULLD_SBX_FILES_H
#define HULLD_SBX_FILES_H

#include <json-c/json.h>
#include <stdbool.h>
#include <stdint.h>

#include "response.h"

/* GET (read, stat, list, watch), POST (mkdir, rename) and DELETE on
 * /v1/sandboxes/{sid}/fs/{file}; file is the URL's rest (decoded). */
void sbx_fs(const struct request *rq, const char *sid, const char *file, struct resp *r);

/* PUT, streamed: begin from the headers (the body's declared length, 0 when
 * chunked), each part as it comes, end once the whole body is in. begin:
 * 0, or -1 with r filled (the body is then read and dropped). part: false
 * when the rest of a failed upload is too long to drop (close the
 * connection). free: also for a cut upload, which leaves nothing. */
struct fs_upload;
int sbx_fs_upload_begin(const struct request *rq, const char *sid, const char *file,
                        uint64_t declared, struct fs_upload **out, struct resp *r);
bool sbx_fs_upload_part(struct fs_upload *u, const char *data, size_t n);
void sbx_fs_upload_end(struct fs_upload *u, struct resp *r);
void sbx_fs_upload_free(struct fs_upload *u);

/* Shared by sbx_files.c and sbx_watch.c. */
/* One "fs" frame to the sandbox's keeper (hdr consumed): its "result" and
 * the fd it gave (fd_out may be NULL). */
int sbx_fs_call(const char *sid, const char *tenant, json_object *hdr, int fd, json_object **result,
                int *fd_out, hull_error *err);
/* A file error as the answer (freed): 403, 404, 409, 413, 400. */
void sbx_fs_error(struct resp *r, hull_error *e);
/* "/" + file, or -1 with a 400 in r. */
int sbx_fs_path(const char *file, char *out, size_t len, struct resp *r);
/* GET ...?op=watch: NDJSON events until the client goes (sbx_watch.c). */
void sbx_watch(const struct request *rq, const char *sid, const char *path, bool recursive,
               struct resp *r);

#endif
