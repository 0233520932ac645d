/* Images: libhull's internal interfaces for OCI images.
 *
 * The store is an OCI image layout (image-spec "image-layout"): skopeo's
 * oci:DIR:NAME and umoci read and write it unchanged. hull keeps what the
 * layout has no place for under <root>/hull/ (OCI tools ignore it):
 *
 *   <root>/oci-layout               {"imageLayoutVersion": "1.0.0"}
 *   <root>/index.json               one manifest descriptor per name, named by
 *                                   the annotation org.opencontainers.image.ref.name
 *   <root>/blobs/sha256/<hex>       every blob once, whatever uses it
 *   <root>/hull/lock                flock: index.json and prune (exclusive)
 *   <root>/hull/gc.lock             flock: shared by pins (image_store_pin: blobs
 *                                   written, name not yet), exclusive by prune
 *   <root>/hull/ingest/<hex>.part   a blob being fetched (resumed by the next pull)
 *   <root>/hull/ingest/<hex>.lock   flock: one writer per blob (a second pull waits)
 *   <root>/hull/layers/<diffhex>/   a layer unpacked once, by diff-id, in overlayfs
 *                                   form (whiteouts as 0:0 char devices, opaque
 *                                   directories as trusted.overlay.opaque=y)
 *   <root>/hull/layers/<diffhex>.lock   flock while it is being unpacked
 *   <root>/hull/using/<mhex>        flock(LOCK_SH) held by every run using manifest
 *                                   <mhex>; remove/prune test LOCK_EX|LOCK_NB
 *   <root>/hull/disks/<mhex>.sqfs   the read-only microVM disk of a manifest
 *   <root>/hull/build-cache/        `hull image build` cache entries
 *
 * Files are written to a temporary name and renamed; index.json only under
 * hull/lock. A pull killed at any moment leaves no name in index.json
 * pointing at anything missing, and the next pull reuses verified blobs.
 *
 *   ref.c        references: parse, normalise, print
 *   store.c      the layout: open/init, lock, index.json, blobs, names
 *   manifest.c   index / manifest / config documents (OCI and Docker schema 2),
 *                platform selection, size caps
 *   unpack.c     a layer blob -> layer directory (libarchive), never outside it
 *   layer_write.c a directory (or an upper dir against its lowers) -> layer blob
 *   rootfs.c     layer directories -> a root (overlayfs, or a flattened copy)
 *   registry*.c  the distribution API over libcurl: auth, pull, push, mirrors
 *   archive.c    docker-archive / oci-archive load and save, import
 *   build*.c     Containerfile subset
 *
 * Linking: the `hull` binary is static and links only what the run path needs
 * (ref, store, manifest, rootfs: json-c and libcrypto). Files that call
 * libcurl or libarchive (unpack, layer_write, registry*, archive, build*) are
 * reached only from `hull-image` (the dynamically linked program behind
 * `hull image`), hulld and libhull.so. Keep the two groups apart: a run-path
 * file must never call a function of the other group.
 */
#ifndef HULL_IMAGE_IMAGE_H
#define HULL_IMAGE_IMAGE_H

#include <json-c/json.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/types.h>

#include "util/error.h"

#define HULL_IMAGE_DEFAULT_ROOT     "/var/lib/hull/images"
#define HULL_IMAGE_DEFAULT_REGISTRY "docker.io"

/* The store a root names: root, else $HULL_IMAGE_ROOT, else the default.
 * Inline: the static hull (vm/image.c) needs it without the store's code. */
static inline const char *image_store_root(const char *root)
{
    if (root && root[0])
        return root;
    const char *env = getenv("HULL_IMAGE_ROOT");
    return env && env[0] ? env : HULL_IMAGE_DEFAULT_ROOT;
}
/* Documents larger than this are refused before parsing (manifests, indexes,
 * configs); a blob's size comes from its descriptor and is checked while
 * streaming. */
#define HULL_IMAGE_MANIFEST_MAX (4u << 20)
#define HULL_IMAGE_CONFIG_MAX   (8u << 20)

/* Media types. */
#define MT_OCI_INDEX       "application/vnd.oci.image.index.v1+json"
#define MT_OCI_MANIFEST    "application/vnd.oci.image.manifest.v1+json"
#define MT_OCI_CONFIG      "application/vnd.oci.image.config.v1+json"
#define MT_OCI_LAYER       "application/vnd.oci.image.layer.v1.tar"
#define MT_OCI_LAYER_GZIP  "application/vnd.oci.image.layer.v1.tar+gzip"
#define MT_OCI_LAYER_ZSTD  "application/vnd.oci.image.layer.v1.tar+zstd"
#define MT_DOCKER_LIST     "application/vnd.docker.distribution.manifest.list.v2+json"
#define MT_DOCKER_MANIFEST "application/vnd.docker.distribution.manifest.v2+json"
#define MT_DOCKER_CONFIG   "application/vnd.docker.container.image.v1+json"
#define MT_DOCKER_LAYER    "application/vnd.docker.image.rootfs.diff.tar.gzip"

/* ---- references (ref.c) ---- */

/* "[REGISTRY/]REPO[:TAG][@sha256:HEX]". REGISTRY is the first component when
 * it has a '.' or ':' or is "localhost"; otherwise docker.io, where a
 * one-component REPO gains "library/". TAG defaults to "latest" when there is
 * no digest. Refused: upper case in REPO, empty components, a tag over 128
 * characters or outside [A-Za-z0-9_.-], a digest that is not sha256:<64 hex>. */
struct image_ref {
    char *registry;   /* "docker.io", "localhost:5000" */
    char *repository; /* "library/busybox" */
    char *tag;        /* NULL when only a digest was given */
    char *digest;     /* "sha256:..." or NULL */
};
int image_ref_parse(const char *text, struct image_ref *out, hull_error *err);
void image_ref_free(struct image_ref *ref);
/* "registry/repository:tag" (and "@digest" when set), malloc'd. This is the
 * name stored in index.json. */
char *image_ref_name(const struct image_ref *ref);
#define cleanup_image_ref __attribute__((cleanup(image_ref_free)))

/* ---- descriptors and documents (manifest.c) ---- */

struct image_desc {
    char *media_type;
    char *digest; /* "sha256:<64 hex>" */
    int64_t size;
    char *platform; /* "os/arch[/variant]" in index entries, else NULL */
};
void image_desc_free(struct image_desc *d);

struct image_manifest {
    char *media_type; /* OCI or Docker manifest type */
    struct image_desc config;
    struct image_desc *layers; /* in order, base first */
    size_t n_layers;
    json_object *annotations; /* may be NULL */
};
void image_manifest_free(struct image_manifest *m);
#define cleanup_image_manifest __attribute__((cleanup(image_manifest_free)))

/* What a container needs from the image config ("config" object). */
struct image_config {
    char *os, *arch, *variant;
    char **entrypoint, **cmd, **env; /* NULL-terminated, may be NULL */
    char *working_dir, *user, *stop_signal;
    char **exposed_ports; /* "80/tcp", ... */
    json_object *labels;  /* may be NULL */
    char **diff_ids;      /* rootfs.diff_ids, one per layer */
    size_t n_diff_ids;
};
void image_config_free(struct image_config *c);
#define cleanup_image_config __attribute__((cleanup(image_config_free)))

/* Is text (len bytes) an index/list or a manifest? Returns its media type
 * (the document's mediaType, or the one given by the transport when the
 * document has none), NULL with err set otherwise. */
const char *image_doc_kind(const char *text, size_t len, const char *transport_type,
                           hull_error *err);
int image_manifest_parse(const char *text, size_t len, struct image_manifest *out, hull_error *err);
/* From an index or Docker manifest list: the manifest for platform
 * ("linux/amd64" when NULL). ENOENT names the platforms there are. */
int image_index_select(const char *text, size_t len, const char *platform, struct image_desc *out,
                       hull_error *err);
int image_config_parse(const char *text, size_t len, struct image_config *out, hull_error *err);
/* The host's platform, "linux/amd64" on x86_64. */
const char *image_host_platform(void);

/* ---- the store (store.c) ---- */

struct image_store {
    char *root; /* absolute */
    int rootfd; /* O_PATH|O_DIRECTORY of root */
    int lockfd; /* hull/lock while locked, else -1 */
};
/* Open the store at root (NULL: $HULL_IMAGE_ROOT, else the default). With
 * create, make the layout (0700 root, oci-layout, empty index.json) when it
 * is missing; without, a missing store is ENOENT "no images (hull image pull)". */
int image_store_open(const char *root, bool create, struct image_store *out, hull_error *err);
void image_store_close(struct image_store *s);
#define cleanup_image_store __attribute__((cleanup(image_store_close)))
/* flock(hull/lock) exclusively / release. */
int image_store_lock(struct image_store *s, hull_error *err);
void image_store_unlock(struct image_store *s);

/* One name in index.json. */
struct image_entry {
    char *name;             /* org.opencontainers.image.ref.name */
    struct image_desc desc; /* the manifest (or index) it names */
    char *created;          /* org.opencontainers.image.created, may be NULL */
};
void image_entries_free(struct image_entry *e, size_t n);
int image_store_list(struct image_store *s, struct image_entry **out, size_t *n, hull_error *err);
/* The store at root removed (with keep_root: all in it, the directory
 * kept), when nothing is stored in it (only what image_store_open makes)
 * and no other process holds its locks: true when it was. For a verb that
 * made the store and then failed (fresh.c). */
bool image_store_discard_empty(const char *root, bool keep_root);
/* Find by name (text is parsed as a reference and normalised; an exact
 * ref.name match is tried first, so names skopeo wrote as "oci:DIR:NAME"
 * are found too), by full "sha256:..." manifest digest, or by a unique hex
 * prefix of at least 12 characters. ENOENT: "image X not found". */
int image_store_resolve(struct image_store *s, const char *text, struct image_entry *out,
                        hull_error *err);
/* Point name at desc (replacing any entry of that name). name is parsed as a
 * reference and stored in normal form (image_ref_name). Refused (ENOENT)
 * when the blob desc names is not in the store. Takes the lock (unless this
 * handle holds it). */
int image_store_tag(struct image_store *s, const char *name, const struct image_desc *desc,
                    hull_error *err);
/* Drop a name (exact, else in normal form). ENOENT when absent. Takes the
 * lock (unless this handle holds it). */
int image_store_untag(struct image_store *s, const char *name, hull_error *err);

/* Blobs. */
bool image_digest_valid(const char *digest); /* "sha256:" + 64 lower-case hex */
bool image_blob_exists(struct image_store *s, const char *digest);
/* Open a blob for reading (O_RDONLY|O_CLOEXEC). */
int image_blob_open(struct image_store *s, const char *digest, hull_error *err);
/* Read a whole blob of at most max bytes, checking its digest. */
int image_blob_read(struct image_store *s, const char *digest, size_t max, char **out, size_t *len,
                    hull_error *err);
/* Store bytes as a blob; *digest_out (malloc'd) names it. Atomic. */
int image_blob_put(struct image_store *s, const char *data, size_t len, char **digest_out,
                   hull_error *err);

/* A blob arriving in pieces (a download, a layer being written): bytes are
 * hashed as they come; commit checks the digest (and size when >= 0) and
 * renames into blobs/. A writer for an expected digest takes the blob's
 * ingest lock (waiting for another writer) and resumes from a .part file
 * left by a killed one: *resume_from says where to continue. With
 * expected == NULL the digest is whatever was written. */
struct image_blob_writer;
int image_blob_writer_open(struct image_store *s, const char *expected, int64_t size,
                           struct image_blob_writer **out, int64_t *resume_from, hull_error *err);
int image_blob_writer_write(struct image_blob_writer *w, const void *buf, size_t len,
                            hull_error *err);
/* After open found the blob already stored (another writer finished it while
 * this one waited): true, and commit is a no-op. */
bool image_blob_writer_done(const struct image_blob_writer *w);
/* Commit frees w whether it succeeds or not (do not abort it afterwards); a
 * blob of the wrong size or digest is refused with EIO and its bytes are
 * dropped. After a failed write, abort. */
int image_blob_writer_commit(struct image_blob_writer *w, char **digest_out, hull_error *err);
/* Abort (keeps the .part for a resume only when keep_partial). Frees w. */
void image_blob_writer_abort(struct image_blob_writer *w, bool keep_partial);

/* A resolved, runnable image: everything read, digests checked. */
struct image {
    struct image_entry entry; /* name (may be NULL for a bare digest) and descriptor */
    struct image_manifest manifest;
    struct image_config config;
    char *manifest_digest; /* of the platform manifest actually used */
};
void image_free(struct image *img);
#define cleanup_image __attribute__((cleanup(image_free)))
/* Resolve text and read its manifest (selecting platform from an index) and
 * config. */
int image_load(struct image_store *s, const char *text, const char *platform, struct image *out,
               hull_error *err);

/* "Used" marks: a run holds a shared lock on hull/using/<manifest hex> for as
 * long as it uses the image; returns the fd (close to release). */
int image_use(struct image_store *s, const char *manifest_digest, hull_error *err);
/* Is anyone holding it? */
bool image_in_use(struct image_store *s, const char *manifest_digest);
/* image_store_resolve, and a use mark (image_use) on the entry's manifest
 * for this host's platform, both under the store's lock: a remove either
 * came first (ENOENT, as for a name never stored) or finds the image in
 * use. The mark's fd, held as long as the image must stay; or -1. */
int image_store_resolve_use(struct image_store *s, const char *text, struct image_entry *out,
                            hull_error *err);

/* ---- layers on disk (unpack.c: libarchive) ---- */

/* Path of the unpacked layer for diff_id ("<root>/hull/layers/<hex>"),
 * malloc'd; NULL with ENOENT when it is not unpacked. */
char *image_layer_path(struct image_store *s, const char *diff_id, hull_error *err);
/* Unpack blob layer_digest (tar, tar+gzip or tar+zstd, told by its bytes)
 * into hull/layers/<diff_id hex>, once: under the layer's lock, into a
 * temporary directory renamed when complete; the uncompressed stream's
 * sha256 must equal diff_id. Entries that would land outside the directory
 * (.., absolute paths, through symlinks, hard links to outside) are refused
 * with EPERM and nothing is kept. */
int image_layer_unpack(struct image_store *s, const char *layer_digest, const char *diff_id,
                       hull_error *err);
/* image_layer_unpack that ends early, with ECANCELED and nothing kept, once
 * *stop is set (unpack_queue.c: the pull it serves failed). It is seen
 * between blocks of the stream and before the rename; a wait for another
 * unpacker's lock, or the final sync, is not cut short. */
int image_layer_unpack_until(struct image_store *s, const char *layer_digest, const char *diff_id,
                             const atomic_bool *stop, hull_error *err);
/* Unpack every layer of img that is not unpacked yet. */
int image_unpack_all(struct image_store *s, const struct image *img, hull_error *err);

/* ---- roots (rootfs.c: no libcurl, no libarchive) ---- */

/* Mount img's layers at target: overlayfs read-only (lowerdir only) when
 * upper is NULL, else copy-on-write with upper and work (both made when
 * missing, on the same filesystem). Layers are named relative to the
 * store's hull/layers, so the mount's options show no host path. One layer
 * read-only is an overlay with IMAGE_EMPTY_LOWER where that exists (see
 * image_empty_lower), else a bind mount. The caller is in the mount
 * namespace it wants the mount in. */
int image_rootfs_mount(struct image_store *s, const struct image *img, const char *target,
                       const char *upper, const char *work, bool readonly, hull_error *err);
/* An empty directory beside the layers (hull/empty-layer, made with the
 * store's directories), named relative to hull/layers: a one-layer image's
 * second lower layer, so that it can be an overlay too. */
#define IMAGE_EMPTY_LOWER "../empty-layer"
/* Where overlayfs cannot serve: copy the layers, in order, into dir
 * (applying overlay-form whiteouts). */
int image_rootfs_flatten(struct image_store *s, const struct image *img, const char *dir,
                         hull_error *err);

/* ---- writing layers (layer_write.c: libarchive) ---- */

enum image_compression { IMAGE_COMPRESS_ZSTD = 0, IMAGE_COMPRESS_GZIP, IMAGE_COMPRESS_NONE };
/* Tar dir as a layer blob: when lower is NULL every file; else dir is an
 * overlay upper directory and its whiteouts (0:0 char devices, opaque
 * xattrs) become .wh. entries. Stores the blob and unpacks it as a layer
 * (a rename of dir's copy, not a second extraction, where possible).
 * Fills the descriptor (media type from compression) and diff_id. */
int image_layer_write(struct image_store *s, const char *dir, bool upper_dir,
                      enum image_compression c, struct image_desc *out, char **diff_id,
                      hull_error *err);

/* ---- commit an image (manifest.c) ---- */

/* Write config and manifest blobs for (config JSON, layers) and tag name.
 * config gets rootfs.diff_ids from diff_ids. Returns the manifest digest. */
int image_commit(struct image_store *s, const char *name, json_object *config,
                 const struct image_desc *layers, char *const *diff_ids, size_t n,
                 char **manifest_digest, hull_error *err);

/* ---- removing images, freeing space (gc.c) ---- */

/* Remove an image. By name: drop that name. By ID (full digest or a unique
 * prefix): drop every name of it, refused (EINVAL) when it has several
 * unless force. Refused with EBUSY "image X is in use by a running sandbox
 * or container" when the image would lose its last name while a run holds
 * it (image_use), unless force. Blobs stay until image_store_prune. */
int image_store_remove(struct image_store *s, const char *text, bool force, hull_error *err);

struct image_prune_report {
    size_t blobs, layers; /* blobs and unpacked layer directories removed */
    uint64_t bytes;       /* bytes of the files removed */
};
/* Delete everything no name in index.json reaches (index -> manifests ->
 * config + layers) and no run uses: blobs, unpacked layers (not locked for
 * unpacking), microVM disks, abandoned ingest files, temporaries left by
 * crashes. Waits for pins (below) to be released. r may be NULL. */
int image_store_prune(struct image_store *s, struct image_prune_report *r, hull_error *err);

/* A pin keeps prune away while blobs are written but not yet named (a pull,
 * a build, a load, an import): hold it from the first blob written until
 * image_store_tag. A shared flock on hull/gc.lock; returns the fd (close it
 * to release). Prune takes the lock exclusively. */
int image_store_pin(struct image_store *s, hull_error *err);

#endif
