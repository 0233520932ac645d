/* References (image.h "references"): "[REGISTRY/]REPO[:TAG][@sha256:HEX]",
 * normalised the way docker and podman do for docker.io so that
 * "busybox", "library/busybox" and "docker.io/library/busybox:latest" are
 * one name in index.json. */
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "image/image.h"
#include "util/error.h"
#include "util/sha256.h"

#define REF_NAME_MAX 255 /* registry + repository, as docker limits it */
#define REF_TAG_MAX  128

void image_ref_free(struct image_ref *ref)
{
    if (ref == NULL)
        return;
    free(ref->registry);
    free(ref->repository);
    free(ref->tag);
    free(ref->digest);
    memset(ref, 0, sizeof(*ref));
}

bool image_digest_valid(const char *digest)
{
    return digest != NULL && strncmp(digest, "sha256:", 7) == 0 &&
           hull_sha256_hex_valid(digest + 7);
}

static bool lower_alnum(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');
}

/* One path component of a repository: lower-case alphanumerics separated by
 * ".", "_", "__" or a run of "-" (the distribution grammar). Returns a reason
 * or NULL when valid. */
static const char *repo_component_check(const char *c, size_t len)
{
    if (len == 0)
        return "empty path component";
    for (size_t i = 0; i < len; i++)
        if (c[i] >= 'A' && c[i] <= 'Z')
            return "repository name must be lowercase";
    if (!lower_alnum(c[0]) || !lower_alnum(c[len - 1]))
        return "path components must start and end with a letter or digit";
    for (size_t i = 0; i < len;) {
        if (lower_alnum(c[i])) {
            i++;
            continue;
        }
        size_t j = i;
        while (j < len && !lower_alnum(c[j]))
            j++;
        size_t run = j - i;
        bool dashes = strspn(c + i, "-") >= run;
        bool ok = dashes || (run == 1 && (c[i] == '.' || c[i] == '_')) ||
                  (run == 2 && c[i] == '_' && c[i + 1] == '_');
        if (!ok) {
            for (size_t k = i; k < j; k++)
                if (c[k] != '.' && c[k] != '_' && c[k] != '-')
                    return "invalid character in repository name";
            return "invalid separator in repository name";
        }
        i = j;
    }
    return NULL;
}

/* host[:port], a DNS name or IPv4 address, or a bracketed IPv6 address. */
static const char *registry_check(const char *r, size_t len)
{
    size_t host_end = len;
    if (len > 0 && r[0] == '[') {
        const char *close = memchr(r, ']', len);
        if (close == NULL)
            return "unterminated IPv6 address in registry";
        for (const char *p = r + 1; p < close; p++)
            if (!isxdigit((unsigned char)*p) && *p != ':' && *p != '.')
                return "invalid IPv6 address in registry";
        host_end = (size_t)(close - r) + 1;
        if (host_end < len && r[host_end] != ':')
            return "invalid registry";
    } else {
        const char *colon = memchr(r, ':', len);
        if (colon)
            host_end = (size_t)(colon - r);
        if (host_end == 0)
            return "empty registry host";
        for (size_t i = 0; i < host_end; i++) {
            char c = r[i];
            if (!isalnum((unsigned char)c) && c != '.' && c != '-')
                return "invalid character in registry host";
        }
        if (r[0] == '.' || r[0] == '-' || r[host_end - 1] == '.' || r[host_end - 1] == '-')
            return "invalid registry host";
    }
    if (host_end < len) {
        size_t plen = len - host_end - 1;
        if (plen == 0 || plen > 5 || strspn(r + host_end + 1, "0123456789") < plen)
            return "invalid registry port";
    }
    return NULL;
}

static const char *tag_check(const char *t)
{
    size_t len = strlen(t);
    if (len == 0)
        return "empty tag";
    if (len > REF_TAG_MAX)
        return "tag longer than 128 characters";
    if (strspn(t, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.-") != len)
        return "invalid character in tag (allowed: A-Z a-z 0-9 _ . -)";
    if (t[0] == '.' || t[0] == '-')
        return "tag must not start with '.' or '-'";
    return NULL;
}

static bool is_registry_component(const char *c, size_t len)
{
    return memchr(c, '.', len) || memchr(c, ':', len) ||
           (len == 9 && memcmp(c, "localhost", 9) == 0) || (len > 0 && c[0] == '[');
}

static int ref_fail(hull_error *err, const char *text, const char *why)
{
    return hull_error_set(err, EINVAL, "invalid reference '%s': %s", text, why);
}

/* Split "name[:tag]" (the part before any "@"); the tag's ':' is the last
 * one after the last '/', so "host:5000/repo" has no tag. */
static void split_tag(char *name, char **tag)
{
    char *slash = strrchr(name, '/');
    char *colon = strrchr(slash ? slash : name, ':');
    *tag = NULL;
    if (colon) {
        *colon = '\0';
        *tag = colon + 1;
    }
}

static int ref_fill(const char *text, const char *registry, size_t reglen, const char *repo,
                    const char *tag, const char *digest, struct image_ref *out, hull_error *err)
{
    bool docker = reglen == 0 || (reglen == 9 && memcmp(registry, "docker.io", 9) == 0) ||
                  (reglen == 15 && memcmp(registry, "index.docker.io", 15) == 0);
    struct image_ref r = {0};
    if (docker)
        r.registry = strdup(HULL_IMAGE_DEFAULT_REGISTRY);
    else
        r.registry = strndup(registry, reglen);
    /* docker.io's one-component names are its official images, "library/". */
    if (docker && strchr(repo, '/') == NULL) {
        if (asprintf(&r.repository, "library/%s", repo) < 0)
            r.repository = NULL;
    } else {
        r.repository = strdup(repo);
    }
    if (tag)
        r.tag = strdup(tag);
    else if (!digest)
        r.tag = strdup("latest");
    if (digest)
        r.digest = strdup(digest);
    if (!r.registry || !r.repository || (!r.tag && (tag || !digest)) || (digest && !r.digest)) {
        image_ref_free(&r);
        return hull_error_set(err, ENOMEM, "reference '%s': out of memory", text);
    }
    if (strlen(r.registry) + 1 + strlen(r.repository) > REF_NAME_MAX) {
        image_ref_free(&r);
        return ref_fail(err, text, "name longer than 255 characters");
    }
    *out = r;
    return 0;
}

int image_ref_parse(const char *text, struct image_ref *out, hull_error *err)
{
    memset(out, 0, sizeof(*out));
    if (text == NULL || text[0] == '\0')
        return ref_fail(err, text ? text : "", "empty");
    if (strlen(text) > 4096)
        return hull_error_set(err, EINVAL, "invalid reference: longer than 4096 characters");
    for (const char *p = text; *p; p++)
        if ((unsigned char)*p <= ' ' || (unsigned char)*p >= 0x7f)
            return ref_fail(err, text, "contains whitespace or a non-ASCII character");
    cleanup_free char *copy = strdup(text);
    if (copy == NULL)
        return hull_error_set(err, ENOMEM, "out of memory");

    const char *digest = NULL;
    char *at = strchr(copy, '@');
    if (at) {
        *at = '\0';
        digest = at + 1;
        if (strncmp(digest, "sha256:", 7) != 0)
            return ref_fail(err, text, "digest must be sha256:<64 hex characters>");
        if (!image_digest_valid(digest))
            return ref_fail(err, text, "digest must be sha256:<64 lower-case hex characters>");
    }
    char *tag = NULL;
    split_tag(copy, &tag);
    const char *why;
    if (tag && (why = tag_check(tag)) != NULL)
        return ref_fail(err, text, why);

    const char *registry = "";
    size_t reglen = 0;
    char *repo = copy;
    char *slash = strchr(copy, '/');
    if (slash && is_registry_component(copy, (size_t)(slash - copy))) {
        registry = copy;
        reglen = (size_t)(slash - copy);
        repo = slash + 1;
        if ((why = registry_check(registry, reglen)) != NULL)
            return ref_fail(err, text, why);
    } else if (slash == copy) {
        return ref_fail(err, text, "empty registry or path component");
    }
    if (repo[0] == '\0')
        return ref_fail(err, text, "empty repository name");
    for (char *c = repo;;) {
        char *end = strchr(c, '/');
        size_t len = end ? (size_t)(end - c) : strlen(c);
        if ((why = repo_component_check(c, len)) != NULL)
            return ref_fail(err, text, why);
        if (!end)
            break;
        c = end + 1;
    }
    /* A bare 64-hex "name" is an image ID, never a repository (docker
     * refuses it too): image_store_resolve looks IDs up before parsing. */
    if (reglen == 0 && hull_sha256_hex_valid(repo))
        return ref_fail(err, text, "a 64-character hex string is an image ID, not a name");
    return ref_fill(text, registry, reglen, repo, tag, digest, out, err);
}

char *image_ref_name(const struct image_ref *ref)
{
    char *s = NULL;
    int n =
        asprintf(&s, "%s/%s%s%s%s%s", ref->registry, ref->repository, ref->tag ? ":" : "",
                 ref->tag ? ref->tag : "", ref->digest ? "@" : "", ref->digest ? ref->digest : "");
    return n < 0 ? NULL : s;
}
