/* Bearer tokens: random secrets shown once, stored only as SHA-256 hashes.
 *
 * A token is "hull_" + 64 hex digits (32 bytes from OpenSSL's CSPRNG). The
 * database keeps its SHA-256, so a copy of hulld.db gives nobody a usable
 * token; a plain hash (no salt, no slow KDF) is enough because the secret
 * has 256 bits of entropy, nothing to guess. */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <pthread.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "service/store.h"
#include "util/clock.h"
#include "util/error.h"
#include "util/log.h"

#define TOKEN_PREFIX "hull_"
#define TOKEN_BYTES  32

static const char *const role_names[] = {
    [HULL_ROLE_READER] = "reader",
    [HULL_ROLE_USER] = "user",
    [HULL_ROLE_ADMIN] = "admin",
};

const char *hull_role_name(enum hull_role r)
{
    return r <= HULL_ROLE_ADMIN ? role_names[r] : "unknown";
}

int hull_role_parse(const char *s, enum hull_role *out)
{
    for (int r = HULL_ROLE_READER; r <= HULL_ROLE_ADMIN; r++)
        if (strcmp(s, role_names[r]) == 0) {
            *out = (enum hull_role)r;
            return 0;
        }
    return -1;
}

static const char *const allow_names[] = {"host-network", "process-isolation", "publish-public",
                                          "host-egress"};
#define N_ALLOW (sizeof(allow_names) / sizeof(allow_names[0]))

const char *hull_allow_name(unsigned bit)
{
    for (size_t i = 0; i < N_ALLOW; i++)
        if (bit == 1u << i)
            return allow_names[i];
    return NULL;
}

int hull_allow_parse(const char *list, unsigned *out, hull_error *err)
{
    *out = 0;
    if (list == NULL || strcmp(list, "none") == 0)
        return 0;
    for (const char *p = list; *p;) {
        size_t n = strcspn(p, ",");
        bool known = false;
        for (size_t i = 0; n && i < N_ALLOW; i++)
            if (strlen(allow_names[i]) == n && strncmp(p, allow_names[i], n) == 0) {
                *out |= 1u << i;
                known = true;
            }
        if (n && !known)
            return hull_error_set(err, EINVAL,
                                  "unknown grant '%.*s' (host-network, process-isolation, "
                                  "publish-public, host-egress)",
                                  (int)n, p);
        p += n + (p[n] == ',');
    }
    return 0;
}

void hull_allow_format(unsigned allow, char *buf, size_t len)
{
    size_t used = 0;
    if (len)
        buf[0] = '\0';
    for (size_t i = 0; i < N_ALLOW && used < len; i++)
        if (allow & (1u << i)) {
            int w = snprintf(buf + used, len - used, "%s%s", used ? "," : "", allow_names[i]);
            if (w < 0)
                return;
            used += (size_t)w;
        }
}

bool hull_publish_public(const struct hull_publish *pub)
{
    struct in_addr a4;
    struct in6_addr a6;
    if (inet_pton(AF_INET, pub->host_ip, &a4) == 1)
        return (ntohl(a4.s_addr) >> 24) != 127;
    if (inet_pton(AF_INET6, pub->host_ip, &a6) == 1)
        return !IN6_IS_ADDR_LOOPBACK(&a6);
    return true; /* "": every address of the host */
}

int hull_tenant_validate(const char *tenant, hull_error *err)
{
    size_t n = tenant ? strlen(tenant) : 0;
    if (n == 0 || n > 64)
        return hull_error_set(err, EINVAL, "tenant: must be 1 to 64 characters");
    for (size_t i = 0; i < n; i++) {
        char c = tenant[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '_' || c == '.' || c == '-'))
            return hull_error_set(err, EINVAL, "tenant: '%s': only letters, digits, '_', '.', '-'",
                                  tenant);
    }
    return 0;
}

static void hex(const unsigned char *b, size_t n, char *out)
{
    static const char d[] = "0123456789abcdef";
    for (size_t i = 0; i < n; i++) {
        out[2 * i] = d[b[i] >> 4];
        out[2 * i + 1] = d[b[i] & 15];
    }
    out[2 * n] = '\0';
}

static EVP_MD *sha256_md;

static void sha256_fetch(void)
{
    sha256_md = EVP_MD_fetch(NULL, "SHA256", NULL);
}

static int sha256_hex(const char *s, char out[65], hull_error *err)
{
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int len = 0;
    /* Fetched once: EVP_sha256() made every digest look the algorithm up
     * again (OpenSSL 3), a tenth of hulld's authentication per request. */
    static pthread_once_t once = PTHREAD_ONCE_INIT;
    pthread_once(&once, sha256_fetch);
    const EVP_MD *m = sha256_md ? sha256_md : EVP_sha256();
    if (EVP_Digest(s, strlen(s), md, &len, m, NULL) != 1 || len != 32)
        return hull_error_set(err, EIO, "token: SHA-256 failed");
    hex(md, 32, out);
    return 0;
}

static void fill_info(sqlite3_stmt *st, struct hull_token_info *info)
{
    memset(info, 0, sizeof(*info));
    snprintf(info->id, sizeof(info->id), "%s", (const char *)sqlite3_column_text(st, 0));
    const char *role = (const char *)sqlite3_column_text(st, 1);
    if (role == NULL || hull_role_parse(role, &info->role) < 0)
        info->role = HULL_ROLE_READER; /* the CHECK constraint makes this unreachable */
    snprintf(info->tenant, sizeof(info->tenant), "%s", (const char *)sqlite3_column_text(st, 2));
    snprintf(info->created, sizeof(info->created), "%s", (const char *)sqlite3_column_text(st, 3));
    const char *rev = (const char *)sqlite3_column_text(st, 4);
    snprintf(info->revoked, sizeof(info->revoked), "%s", rev ? rev : "");
    /* Written by hull_token_create_allowed only; anything unknown grants
     * nothing. */
    hull_error e = NULL;
    if (hull_allow_parse((const char *)sqlite3_column_text(st, 5), &info->allow, &e) < 0) {
        info->allow = 0;
        hull_warn("token %s: allow: %s; grants nothing", info->id, hull_error_msg(e));
        hull_error_free(&e);
    }
}

int hull_token_create(struct hull_store *s, enum hull_role role, const char *tenant, char **token,
                      struct hull_token_info *info, hull_error *err)
{
    return hull_token_create_allowed(s, role, tenant, 0, token, info, err);
}

static void cleanse_secret(char (*secret)[sizeof(TOKEN_PREFIX) + 2 * TOKEN_BYTES])
{
    OPENSSL_cleanse(*secret, sizeof(*secret));
}

int hull_token_create_allowed(struct hull_store *s, enum hull_role role, const char *tenant,
                              unsigned allow, char **token, struct hull_token_info *info,
                              hull_error *err)
{
    *token = NULL;
    if (allow & ~HULL_ALLOW_ALL)
        return hull_error_set(err, EINVAL, "allow: unknown grant bits %#x", allow);
    if (hull_tenant_validate(tenant, err) < 0)
        return -1;
    unsigned char raw[TOKEN_BYTES];
    if (RAND_bytes(raw, sizeof(raw)) != 1)
        return hull_error_set(err, EIO, "token: the random number generator failed");
    /* Wiped on every way out, after the store is let go. */
    __attribute__((cleanup(cleanse_secret))) char secret[sizeof(TOKEN_PREFIX) + 2 * TOKEN_BYTES];
    memcpy(secret, TOKEN_PREFIX, sizeof(TOKEN_PREFIX) - 1);
    hex(raw, sizeof(raw), secret + sizeof(TOKEN_PREFIX) - 1);
    OPENSSL_cleanse(raw, sizeof(raw));
    char hash[65];
    if (sha256_hex(secret, hash, err) < 0)
        return -1;
    memset(info, 0, sizeof(*info));
    snprintf(info->id, sizeof(info->id), "t%.16s", hash);
    info->role = role;
    info->allow = allow;
    snprintf(info->tenant, sizeof(info->tenant), "%s", tenant);
    hull_rfc3339_now(info->created, sizeof(info->created));
    char allow_s[64];
    hull_allow_format(allow, allow_s, sizeof(allow_s));

    cleanup_store_stmt struct hull_store_stmt q = hull_store_begin(s);
    if (hull_store_prepare(s,
                           "INSERT INTO tokens (id, hash, role, tenant, created, allow) "
                           "VALUES (?, ?, ?, ?, ?, ?)",
                           &q.st, NULL) < 0)
        return hull_store_fail(s, "create token", err);
    sqlite3_stmt *st = q.st;
    sqlite3_bind_text(st, 1, info->id, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, hash, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 3, hull_role_name(role), -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 4, tenant, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 5, info->created, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 6, allow_s, -1, SQLITE_STATIC);
    if (sqlite3_step(st) != SQLITE_DONE)
        return hull_store_fail(s, "create token", err);
    *token = strdup(secret);
    return *token ? 0 : hull_error_set(err, ENOMEM, "out of memory");
}

int hull_token_verify(struct hull_store *s, const char *token, struct hull_token_info *info,
                      hull_error *err)
{
    if (token == NULL || strncmp(token, TOKEN_PREFIX, sizeof(TOKEN_PREFIX) - 1) != 0 ||
        strlen(token) != sizeof(TOKEN_PREFIX) - 1 + 2 * TOKEN_BYTES)
        return hull_error_set(err, EACCES, "invalid token");
    char hash[65];
    if (sha256_hex(token, hash, err) < 0)
        return -1;
    cleanup_store_stmt struct hull_store_stmt q = hull_store_begin(s);
    /* Checked before the SELECT: a revocation committed after it changes
     * the file, so a token found valid here is not kept past it. */
    if (hull_store_token_cached(s, hash, info))
        return 0;
    if (hull_store_prepare(
            s, "SELECT id, role, tenant, created, revoked, allow FROM tokens WHERE hash = ?", &q.st,
            NULL) < 0)
        return hull_store_fail(s, "verify token", err);
    sqlite3_bind_text(q.st, 1, hash, -1, SQLITE_STATIC);
    int rc = sqlite3_step(q.st);
    if (rc == SQLITE_ROW) {
        fill_info(q.st, info);
        if (info->revoked[0])
            return hull_error_set(err, EACCES, "token %s was revoked", info->id);
        hull_store_token_remember(s, hash, info);
        return 0;
    }
    if (rc == SQLITE_DONE)
        return hull_error_set(err, EACCES, "invalid token");
    return hull_store_fail(s, "verify token", err);
}

int hull_token_list(struct hull_store *s, struct hull_token_info **out, size_t *count,
                    hull_error *err)
{
    *out = NULL;
    *count = 0;
    cleanup_store_stmt struct hull_store_stmt q = hull_store_begin(s);
    if (hull_store_prepare(s,
                           "SELECT id, role, tenant, created, revoked, allow FROM tokens "
                           "ORDER BY created, id",
                           &q.st, NULL) < 0)
        return hull_store_fail(s, "list tokens", err);
    /* Handed to *out only once complete. */
    cleanup_free struct hull_token_info *rows = NULL;
    size_t n = 0, cap = 0;
    int rc;
    while ((rc = sqlite3_step(q.st)) == SQLITE_ROW) {
        if (n == cap) {
            cap = cap ? 2 * cap : 16;
            struct hull_token_info *more = realloc(rows, cap * sizeof(*rows));
            if (more == NULL)
                return hull_error_set(err, ENOMEM, "out of memory");
            rows = more;
        }
        fill_info(q.st, &rows[n++]);
    }
    if (rc != SQLITE_DONE)
        return hull_store_fail(s, "list tokens", err);
    *out = steal_ptr(&rows);
    *count = n;
    return 0;
}

/* One byte appended to tokens.revoked: a hulld that verified a token
 * before sees the file change and verifies every token again. */
static int revoked_touch(struct hull_store *s)
{
    int fd = open(hull_store_revoked_path(s),
                  O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
    if (fd < 0 || write(fd, "\n", 1) != 1) {
        int e = errno;
        if (fd >= 0)
            close(fd);
        errno = e;
        return -1;
    }
    close(fd);
    return 0;
}

int hull_token_revoke(struct hull_store *s, const char *id, hull_error *err)
{
    char now[40];
    hull_rfc3339_now(now, sizeof(now));
    /* Before the commit too: a revoke killed between its commit and the
     * append below would leave a running hulld accepting the token until
     * it restarts, while `token list` says revoked. Touched first, the
     * file has changed by the time the row says revoked, so hulld's next
     * request verifies again whatever happens to this process. */
    if (revoked_touch(s) < 0)
        return hull_error_errno(err, "token %s not revoked: %s", id, hull_store_revoked_path(s));
    cleanup_store_stmt struct hull_store_stmt q = hull_store_begin(s);
    if (hull_store_prepare(s, "UPDATE tokens SET revoked = COALESCE(revoked, ?) WHERE id = ?",
                           &q.st, NULL) < 0)
        return hull_store_fail(s, "revoke token", err);
    sqlite3_bind_text(q.st, 1, now, -1, SQLITE_STATIC);
    sqlite3_bind_text(q.st, 2, id, -1, SQLITE_STATIC);
    if (sqlite3_step(q.st) != SQLITE_DONE)
        return hull_store_fail(s, "revoke token", err);
    if (sqlite3_changes(q.db) != 1)
        return hull_error_set(err, ENOENT, "no token with id '%s'", id);
    /* After the commit (autocommit: done by the step): a hulld that
     * verified the token again between the first touch and the commit
     * sees the file change once more. */
    if (revoked_touch(s) < 0)
        return hull_error_errno(err,
                                "token %s is revoked, but a running hulld may accept it "
                                "until it restarts: %s",
                                id, hull_store_revoked_path(s));
    return 0;
}

bool hull_token_revoked_since(struct hull_store *s, const char *id, struct hull_revoke_mark *mark)
{
    /* revoke appends a byte after its commit: another size (or a file
     * made anew) may be a revocation of id. */
    struct stat sb;
    struct hull_revoke_mark now = {0, -1};
    if (stat(hull_store_revoked_path(s), &sb) == 0)
        now = (struct hull_revoke_mark){(unsigned long long)sb.st_ino, (long long)sb.st_size};
    if (now.ino == mark->ino && now.size == mark->size)
        return false;
    cleanup_store_stmt struct hull_store_stmt q = hull_store_begin(s);
    if (hull_store_prepare(s, "SELECT revoked FROM tokens WHERE id = ?", &q.st, NULL) < 0)
        return false;
    sqlite3_bind_text(q.st, 1, id, -1, SQLITE_STATIC);
    int rc = sqlite3_step(q.st);
    if (rc != SQLITE_ROW && rc != SQLITE_DONE)
        return false; /* not marked seen: asked again next time */
    *mark = now;
    return rc == SQLITE_ROW && sqlite3_column_type(q.st, 0) != SQLITE_NULL;
}
