/* Registry authentication.
 *
 * Every client starts anonymous; a 401 names the scheme in WWW-Authenticate:
 *   Basic                      -> send the user's credentials (when there are any)
 *   Bearer realm,service,scope -> GET realm?service=..&scope=.. (with the
 *                                 credentials as Basic when there are any) for
 *                                 a token, cached per scope for the client's life
 * Once a registry asked for Bearer, later requests with a new scope (another
 * repository, push) fetch their token before the request instead of after
 * another 401.
 *
 * Credentials: --creds, else the first auth file that has the registry:
 * --authfile, else $REGISTRY_AUTH_FILE, $XDG_RUNTIME_DIR/containers/auth.json,
 * ~/.docker/config.json; all are {"auths": {"HOST": {"auth": base64(user:pass)}}}.
 */
#include <curl/curl.h>
#include <errno.h>
#include <openssl/evp.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

#include "image/registry.h"
#include "util/error.h"
#include "util/fs.h"
#include "util/json.h"

/* ---- base64 ---- */

static char *b64_encode(const char *s)
{
    size_t n = strlen(s);
    char *out = malloc(4 * ((n + 2) / 3) + 1);
    if (out)
        EVP_EncodeBlock((unsigned char *)out, (const unsigned char *)s, (int)n);
    return out;
}

static char *b64_decode(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n % 4 != 0)
        return NULL;
    char *out = malloc(n / 4 * 3 + 1);
    if (!out)
        return NULL;
    int len = EVP_DecodeBlock((unsigned char *)out, (const unsigned char *)s, (int)n);
    if (len < 0) {
        free(out);
        return NULL;
    }
    /* EVP_DecodeBlock counts the padding as zero bytes. */
    for (size_t i = n; i > 0 && s[i - 1] == '='; i--)
        len--;
    out[len] = '\0';
    return out;
}

/* ---- auth files ---- */

/* Candidate auth files, in lookup order; the first is where login writes. */
static int auth_files(const struct image_registry_opts *o, char *files[3], hull_error *err)
{
    memset(files, 0, 3 * sizeof(char *));
    if (o && o->auth_file) {
        files[0] = strdup(o->auth_file);
        return files[0] ? 0 : hull_error_errno(err, "out of memory");
    }
    size_t n = 0;
    const char *e = getenv("REGISTRY_AUTH_FILE");
    if (e && *e)
        files[n++] = strdup(e);
    e = getenv("XDG_RUNTIME_DIR");
    if (e && *e && asprintf(&files[n], "%s/containers/auth.json", e) >= 0)
        n++;
    e = getenv("HOME");
    if (e && *e && asprintf(&files[n], "%s/.docker/config.json", e) >= 0)
        n++;
    return 0;
}

static void auth_files_free(char *files[3])
{
    for (int i = 0; i < 3; i++)
        free(files[i]);
}

/* The keys a registry may be stored under. */
static json_object *auths_entry(json_object *auths, const char *host)
{
    json_object *v = hj_get(auths, host);
    if (v)
        return v;
    char key[512];
    snprintf(key, sizeof(key), "https://%s", host);
    if ((v = hj_get(auths, key)))
        return v;
    if (strcmp(host, "docker.io") == 0)
        return hj_get(auths, "https://index.docker.io/v1/");
    return NULL;
}

static int read_auth_file(const char *file, json_object **out, hull_error *err)
{
    *out = NULL;
    cleanup_free char *text = NULL;
    size_t len = 0;
    if (hull_read_file(file, &text, &len, err) < 0) {
        if (hull_error_code(*err) == ENOENT) {
            hull_error_free(err);
            return 0;
        }
        return -1;
    }
    if (hj_parse(text, len, file, out, err) < 0)
        return hull_error_prefix(err, "auth file %s", file);
    if (!json_object_is_type(*out, json_type_object)) {
        json_object_put(*out);
        *out = NULL;
        return hull_error_set(err, EINVAL, "auth file %s: not a JSON object", file);
    }
    return 0;
}

int reg_auth_lookup(const char *host, const struct image_registry_opts *o, char **out,
                    hull_error *err)
{
    *out = NULL;
    if (o && o->creds) {
        if (!strchr(o->creds, ':') || o->creds[0] == ':')
            return hull_error_set(err, EINVAL, "--creds: expected USER:PASSWORD");
        *out = strdup(o->creds);
        return *out ? 0 : hull_error_errno(err, "out of memory");
    }
    char *files[3];
    if (auth_files(o, files, err) < 0)
        return -1;
    int r = 0;
    for (int i = 0; i < 3 && files[i] && !*out; i++) {
        cleanup_json json_object *doc = NULL;
        if ((r = read_auth_file(files[i], &doc, err)) < 0)
            break;
        json_object *entry = doc ? auths_entry(hj_get(doc, "auths"), host) : NULL;
        json_object *auth = entry ? hj_get(entry, "auth") : NULL;
        if (!auth || !json_object_is_type(auth, json_type_string))
            continue;
        char *plain = b64_decode(json_object_get_string(auth));
        if (!plain || !strchr(plain, ':')) {
            free(plain);
            r = hull_error_set(err, EINVAL, "auth file %s: %s: \"auth\" is not base64(user:pass)",
                               files[i], host);
            break;
        }
        *out = plain;
    }
    auth_files_free(files);
    return r;
}

/* ---- challenges and tokens ---- */

/* Value of key="..." (or key=token) in a challenge's parameter list. */
static char *challenge_param(const char *params, const char *key)
{
    size_t k = strlen(key);
    const char *p = params;
    while (*p) {
        while (*p == ' ' || *p == ',')
            p++;
        const char *eq = strchr(p, '=');
        if (!eq)
            return NULL;
        bool match = (size_t)(eq - p) == k && strncasecmp(p, key, k) == 0;
        const char *v = eq + 1, *end;
        if (*v == '"') {
            v++;
            end = strchr(v, '"');
            if (!end)
                return NULL;
        } else {
            end = v + strcspn(v, ",");
        }
        if (match)
            return strndup(v, (size_t)(end - v));
        p = *end == '"' ? end + 1 : end;
    }
    return NULL;
}

static const char *scope_key(const char *scope)
{
    return scope ? scope : "";
}

static struct reg_token *token_find(struct reg_client *c, const char *scope)
{
    for (size_t i = 0; i < c->n_tokens; i++)
        if (strcmp(c->tokens[i].scope, scope_key(scope)) == 0)
            return &c->tokens[i];
    return NULL;
}

static int token_fetch(struct reg_client *c, const char *scope, hull_error *err)
{
    CURL *esc = curl_easy_init();
    if (!esc)
        return hull_error_set(err, ENOMEM, "curl_easy_init failed");
    cleanup_free char *url = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&url, &len);
    if (!f) {
        curl_easy_cleanup(esc);
        return hull_error_errno(err, "out of memory");
    }
    fputs(c->realm, f);
    char sep = strchr(c->realm, '?') ? '&' : '?';
    if (c->service) {
        char *e = curl_easy_escape(esc, c->service, 0);
        fprintf(f, "%cservice=%s", sep, e);
        curl_free(e);
        sep = '&';
    }
    /* Several scopes are space separated here, one scope= each there. */
    cleanup_free char *scopes = scope ? strdup(scope) : NULL;
    char *save = NULL;
    for (char *s = scopes ? strtok_r(scopes, " ", &save) : NULL; s;
         s = strtok_r(NULL, " ", &save)) {
        char *e = curl_easy_escape(esc, s, 0);
        fprintf(f, "%cscope=%s", sep, e);
        curl_free(e);
        sep = '&';
    }
    fclose(f);
    curl_easy_cleanup(esc);

    cleanup_free char *basic = NULL;
    if (c->basic) {
        cleanup_free char *b = b64_encode(c->basic);
        if (!b || asprintf(&basic, "Basic %s", b) < 0)
            return hull_error_errno(err, "out of memory");
    }
    struct reg_req req = {
        .method = "GET", .path = url, .authorization = basic ? basic : "", .max = 1u << 20};
    cleanup_reg_resp struct reg_resp resp = {0};
    if (reg_do(c, &req, &resp, err) < 0)
        return hull_error_prefix(err, "token from %s", c->realm);
    if (resp.status != 200) {
        reg_status_error(&resp, NULL, err);
        return hull_error_prefix(err, "token from %s", c->realm);
    }
    cleanup_json json_object *doc = NULL;
    if (hj_parse(resp.body, resp.len, "token response", &doc, err) < 0)
        return hull_error_prefix(err, "token from %s", c->realm);
    json_object *tok = hj_get(doc, "token");
    if (!tok || !json_object_is_type(tok, json_type_string) || !*json_object_get_string(tok))
        tok = hj_get(doc, "access_token");
    if (!tok || !json_object_is_type(tok, json_type_string) || !*json_object_get_string(tok))
        return hull_error_set(err, EPROTO, "token from %s: no token in the response", c->realm);
    char *value = strdup(json_object_get_string(tok));
    if (!value)
        return hull_error_errno(err, "out of memory");
    struct reg_token *t = token_find(c, scope);
    if (t) {
        free(t->token);
        t->token = value;
        return 0;
    }
    struct reg_token *grown = realloc(c->tokens, (c->n_tokens + 1) * sizeof(*grown));
    if (!grown) {
        free(value);
        return hull_error_errno(err, "out of memory");
    }
    c->tokens = grown;
    c->tokens[c->n_tokens].scope = strdup(scope_key(scope));
    c->tokens[c->n_tokens].token = value;
    if (!c->tokens[c->n_tokens].scope) {
        free(value);
        return hull_error_errno(err, "out of memory");
    }
    c->n_tokens++;
    return 0;
}

int reg_auth_header(struct reg_client *c, const char *scope, char **out, hull_error *err)
{
    *out = NULL;
    if (c->auth_kind == 1 && c->basic) {
        cleanup_free char *b = b64_encode(c->basic);
        if (!b || asprintf(out, "Basic %s", b) < 0)
            return hull_error_errno(err, "out of memory");
        return 0;
    }
    if (c->auth_kind == 2) {
        struct reg_token *t = token_find(c, scope);
        if (!t) {
            if (token_fetch(c, scope, err) < 0)
                return -1;
            t = token_find(c, scope);
        }
        if (asprintf(out, "Bearer %s", t->token) < 0)
            return hull_error_errno(err, "out of memory");
    }
    return 0;
}

int reg_auth_challenge(struct reg_client *c, const char *www_auth, const char *scope,
                       hull_error *err)
{
    if (strncasecmp(www_auth, "Basic", 5) == 0) {
        if (!c->basic || c->auth_kind == 1)
            return 0; /* nothing to send, or the registry refused it */
        c->auth_kind = 1;
        return 1;
    }
    if (strncasecmp(www_auth, "Bearer", 6) != 0)
        return 0;
    cleanup_free char *realm = challenge_param(www_auth + 6, "realm");
    if (!realm)
        return hull_error_set(err, EPROTO, "%s: Bearer challenge without a realm", c->host);
    if (strncmp(realm, "https://", 8) != 0 && strncmp(realm, "http://", 7) != 0)
        return hull_error_set(err, EPROTO, "%s: Bearer realm %s is not an http(s) URL", c->host,
                              realm);
    free(c->realm);
    c->realm = steal_ptr(&realm);
    free(c->service);
    c->service = challenge_param(www_auth + 6, "service");
    c->auth_kind = 2;
    cleanup_free char *asked = scope ? NULL : challenge_param(www_auth + 6, "scope");
    if (token_fetch(c, scope ? scope : asked, err) < 0)
        return -1;
    if (asked && !scope) {
        /* Stored under the scope the request carries (none). */
        struct reg_token *t = token_find(c, asked);
        struct reg_token *none = token_find(c, NULL);
        if (t && !none) {
            free(t->scope);
            t->scope = strdup("");
        }
    }
    return 1;
}

/* ---- login / logout ---- */

static int write_target(const struct image_registry_opts *o, char **out, hull_error *err)
{
    char *files[3];
    if (auth_files(o, files, err) < 0)
        return -1;
    if (!files[0]) {
        auth_files_free(files);
        return hull_error_set(err, EINVAL, "no auth file: set --authfile or $HOME");
    }
    *out = steal_ptr(&files[0]);
    auth_files_free(files);
    return 0;
}

static int save_auth_file(const char *file, json_object *doc, hull_error *err)
{
    cleanup_free char *dir = strdup(file);
    if (!dir)
        return hull_error_errno(err, "out of memory");
    char *slash = strrchr(dir, '/');
    if (slash && slash != dir) {
        *slash = '\0';
        if (hull_mkdir_p(dir, 0700, err) < 0)
            return -1;
    }
    const char *text = json_object_to_json_string_ext(doc, JSON_C_TO_STRING_PRETTY);
    return hull_write_path_atomic(file, text, strlen(text), 0600, err);
}

int image_login(const char *registry, const char *user, const char *password,
                const struct image_registry_opts *o, hull_error *err)
{
    if (!registry || !*registry || !user || !*user || !password)
        return hull_error_set(err, EINVAL, "login: a registry, a user and a password are needed");
    cleanup_free char *file = NULL;
    if (write_target(o, &file, err) < 0)
        return hull_error_prefix(err, "login %s", registry);
    cleanup_reg_client struct reg_client c = {0};
    if (reg_client_init(&c, registry, false, o, err) < 0)
        return hull_error_prefix(err, "login %s", registry);
    free(c.basic);
    if (asprintf(&c.basic, "%s:%s", user, password) < 0)
        return hull_error_errno(err, "out of memory");
    struct reg_req req = {.method = "GET", .path = "/v2/"};
    cleanup_reg_resp struct reg_resp resp = {0};
    if (reg_do(&c, &req, &resp, err) < 0)
        return hull_error_prefix(err, "login %s", registry);
    if (resp.status == 401)
        return hull_error_set(err, EACCES, "login %s: invalid username or password", registry);
    if (resp.status != 200) {
        reg_status_error(&resp, NULL, err);
        return hull_error_prefix(err, "login %s", registry);
    }
    /* A registry that needs no credentials accepts any: they are stored
     * anyway, as podman does. */
    cleanup_json json_object *doc = NULL;
    if (read_auth_file(file, &doc, err) < 0)
        return hull_error_prefix(err, "login %s", registry);
    if (!doc)
        doc = json_object_new_object();
    json_object *auths = hj_get(doc, "auths");
    if (!auths || !json_object_is_type(auths, json_type_object)) {
        auths = json_object_new_object();
        json_object_object_add(doc, "auths", auths);
    }
    cleanup_free char *b = b64_encode(c.basic);
    json_object *entry = json_object_new_object();
    json_object_object_add(entry, "auth", json_object_new_string(b));
    json_object_object_add(auths, registry, entry);
    if (save_auth_file(file, doc, err) < 0)
        return hull_error_prefix(err, "login %s", registry);
    return 0;
}

int image_logout(const char *registry, const struct image_registry_opts *o, hull_error *err)
{
    cleanup_free char *file = NULL;
    if (write_target(o, &file, err) < 0)
        return hull_error_prefix(err, "logout %s", registry);
    cleanup_json json_object *doc = NULL;
    if (read_auth_file(file, &doc, err) < 0)
        return hull_error_prefix(err, "logout %s", registry);
    json_object *auths = doc ? hj_get(doc, "auths") : NULL;
    if (!auths || !hj_get(auths, registry))
        return hull_error_set(err, ENOENT, "logout %s: not logged in (%s)", registry, file);
    json_object_object_del(auths, registry);
    if (save_auth_file(file, doc, err) < 0)
        return hull_error_prefix(err, "logout %s", registry);
    return 0;
}
