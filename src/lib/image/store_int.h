/* Internals shared by store.c, blob.c and gc.c (img-store's files only):
 * index.json as a document, lock files that may be unlinked, the store lock
 * taken at most once per handle. */
#ifndef HULL_IMAGE_STORE_INT_H
#define HULL_IMAGE_STORE_INT_H

#include <json-c/json.h>
#include <stdbool.h>

#include "image/image.h"

#define IMAGE_REF_NAME_ANNOTATION "org.opencontainers.image.ref.name"
#define IMAGE_CREATED_ANNOTATION  "org.opencontainers.image.created"
/* index.json holds one small descriptor per name: 64 MiB is far beyond any
 * real store and keeps a corrupt or hostile file from exhausting memory. */
#define IMAGE_INDEX_MAX (64u << 20)

/* Relative paths under the root ("blobs/sha256/<hex>" ...). */
#define IMAGE_PATH_MAX 160
void image_blob_relpath(char out[IMAGE_PATH_MAX], const char *digest);

/* index.json as json-c (every field and entry kept, also those written by
 * skopeo or umoci that hull does not know); a missing file is an empty
 * index. Written atomically (temporary, fsync, rename, fsync of the root);
 * callers hold the store lock. */
int image_index_read(struct image_store *s, json_object **out, hull_error *err);
int image_index_write(struct image_store *s, json_object *index, hull_error *err);
/* Free an entry's strings (not the entry). */
void image_entry_clear(struct image_entry *e);
/* The ref.name annotation of an index.json entry, or NULL. */
const char *image_index_entry_name(json_object *entry);

/* A descriptor object (manifest.c). */
int image_desc_from_json(json_object *o, const char *path, bool with_platform,
                         struct image_desc *out, hull_error *err);
int image_desc_copy(const struct image_desc *in, struct image_desc *out, hull_error *err);
/* The store lock for the length of a scope, taken only when the handle does
 * not hold it already (image_store_tag inside a caller's locked section). */
struct image_lock_guard {
    struct image_store *s;
    bool mine;
};
int image_lock_guard_take(struct image_store *s, struct image_lock_guard *g, hull_error *err);
static inline void image_lock_guard_release(struct image_lock_guard *g)
{
    if (g->mine)
        image_store_unlock(g->s);
    g->mine = false;
}
#define cleanup_lock_guard __attribute__((cleanup(image_lock_guard_release)))

/* Open (creating when create) dirfd/name and flock it with op. A lock file
 * may be unlinked by whoever holds it (the last writer of a blob, prune):
 * a lock won on a file no longer at that name is retried, so the lock held
 * is always the one the name points at. With LOCK_NB a held lock is
 * EWOULDBLOCK. Returns the fd. */
int image_flock_at(int dirfd, const char *name, int op, bool create, hull_error *err);

/* fsync a directory under the root (after a rename into it). */
int image_fsync_dir(struct image_store *s, const char *rel, hull_error *err);

#endif
