/* Images in and out of files (archive.c: libarchive) and OCI bundles
 * (bundle.c). Reached only from hull-image, hulld and libhull.so, never
 * from the static hull (see image.h, "Linking"). */
#ifndef HULL_IMAGE_ARCHIVE_H
#define HULL_IMAGE_ARCHIVE_H

#include "image/image.h"

enum image_archive_format {
    IMAGE_ARCHIVE_AUTO = 0, /* load: told by the archive's contents */
    IMAGE_ARCHIVE_DOCKER,   /* docker save's format (manifest.json, RepoTags) */
    IMAGE_ARCHIVE_OCI,      /* an OCI image layout in a tar */
};

/* Load every image of a docker-archive or oci-archive (a tar, possibly
 * gzip/zstd-compressed) read from fd, verifying every blob against its
 * digest. Docker archives written by hull, by docker 25+ (which carry an OCI
 * layout) and by skopeo/podman keep their manifest digests; a legacy docker
 * archive gets a new OCI manifest. Names come from RepoTags,
 * io.containerd.image.name or org.opencontainers.image.ref.name; an image
 * without one is named localhost/<12 hex>:latest. *names and *digests
 * (NULL-terminated, parallel, malloc'd) say what was loaded. On error no
 * name changes and blobs this call added are removed. */
int image_archive_load(struct image_store *s, int fd, char ***names, char ***digests,
                       hull_error *err);

/* Write image text (platform as in image_load) to fd as f: its manifest,
 * config and layer blobs unchanged, so loading it anywhere gives the same
 * manifest digest. A docker-archive also carries the OCI layout (as docker
 * 25+ writes it): manifest.json for docker/podman load, index.json for
 * everything else. */
int image_archive_save(struct image_store *s, const char *text, const char *platform,
                       enum image_archive_format f, int fd, hull_error *err);

/* A rootfs tarball (plain, gzip or zstd) read from fd as a one-layer image
 * named name (already a valid reference). config is the image config's
 * "config" object (Env, Cmd, ...; may be NULL); os/architecture are the
 * host's. Entries outside the root (.., absolute paths through symlinks)
 * are refused. Returns the manifest digest. */
int image_import(struct image_store *s, int fd, const char *name, json_object *config,
                 enum image_compression c, char **manifest_digest, hull_error *err);

/* Make an OCI bundle of image text in dir, which must not exist or be
 * empty: dir/rootfs, a flattened copy of the layers, and dir/config.json,
 * hull's default spec with the image's entrypoint+cmd, env, working
 * directory and user (names resolved in the rootfs's /etc/passwd and
 * /etc/group), and its exposed ports, stop signal and labels as
 * annotations. On error nothing of it is left (dir is removed when this
 * call made it). */
int image_bundle(struct image_store *s, const char *text, const char *platform, const char *dir,
                 hull_error *err);

#endif
