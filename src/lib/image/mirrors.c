/* Where a pull goes: a subset of containers-registries.conf(5) (TOML):
 *
 *   [[registry]]
 *   prefix = "example.com/team"     # matched against REGISTRY/REPOSITORY
 *   location = "127.0.0.1:5000/t"   # what replaces the prefix (default: prefix)
 *   insecure = true                 # no TLS verification, http allowed
 *   [[registry.mirror]]             # tried first, in order, by pulls only
 *   location = "127.0.0.1:5001/t"
 *   insecure = true
 *
 * The longest matching prefix wins. Other keys and tables are ignored, so a
 * podman registries.conf can be used as is.
 */
#include <ctype.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "image/registry.h"
#include "util/error.h"
#include "util/fs.h"

#define REG_CONF_DEFAULT "/etc/hull/registries.conf"

struct conf_loc {
    char *location;
    bool insecure;
};

struct conf_reg {
    char *prefix;
    struct conf_loc loc;
    struct conf_loc *mirrors;
    size_t n_mirrors;
};

static void conf_free(struct conf_reg *r, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        free(r[i].prefix);
        free(r[i].loc.location);
        for (size_t j = 0; j < r[i].n_mirrors; j++)
            free(r[i].mirrors[j].location);
        free(r[i].mirrors);
    }
    free(r);
}

static char *trim(char *s)
{
    while (isspace((unsigned char)*s))
        s++;
    char *e = s + strlen(s);
    while (e > s && isspace((unsigned char)e[-1]))
        *--e = '\0';
    return s;
}

/* A TOML basic string ("...", with \" and \\) or true/false. */
static int parse_value(const char *v, char **str, int *boolean)
{
    *str = NULL;
    *boolean = -1;
    if (strcmp(v, "true") == 0)
        return *boolean = 1, 0;
    if (strcmp(v, "false") == 0)
        return *boolean = 0, 0;
    if (*v != '"' && *v != '\'')
        return -1;
    char q = *v++;
    char *out = malloc(strlen(v) + 1), *o = out;
    if (!out)
        return -1;
    for (; *v && *v != q; v++) {
        if (q == '"' && *v == '\\' && v[1])
            v++;
        *o++ = *v;
    }
    *o = '\0';
    if (*v != q) {
        free(out);
        return -1;
    }
    *str = out;
    return 0;
}

/* Cut a comment that is not inside a string. */
static void strip_comment(char *line)
{
    char q = 0;
    for (char *p = line; *p; p++) {
        if (q) {
            if (*p == '\\' && q == '"' && p[1])
                p++;
            else if (*p == q)
                q = 0;
        } else if (*p == '"' || *p == '\'') {
            q = *p;
        } else if (*p == '#') {
            *p = '\0';
            return;
        }
    }
}

static int parse_conf(const char *file, char *text, struct conf_reg **out, size_t *n,
                      hull_error *err)
{
    struct conf_reg *regs = NULL;
    size_t nregs = 0;
    /* 0: elsewhere (ignored), 1: in [[registry]], 2: in [[registry.mirror]] */
    int section = 0;
    int lineno = 0;
    bool in_array = false;
    char *save = NULL;
    for (char *line = strtok_r(text, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
        lineno++;
        strip_comment(line);
        char *l = trim(line);
        if (in_array) { /* a multi-line array of an ignored key */
            in_array = !strchr(l, ']');
            continue;
        }
        if (!*l)
            continue;
        if (*l == '[') {
            if (strcmp(l, "[[registry]]") == 0) {
                struct conf_reg *g = realloc(regs, (nregs + 1) * sizeof(*g));
                if (!g) {
                    conf_free(regs, nregs);
                    return hull_error_errno(err, "out of memory");
                }
                regs = g;
                memset(&regs[nregs++], 0, sizeof(*regs));
                section = 1;
            } else if (strcmp(l, "[[registry.mirror]]") == 0 && nregs > 0) {
                struct conf_reg *r = &regs[nregs - 1];
                struct conf_loc *m = realloc(r->mirrors, (r->n_mirrors + 1) * sizeof(*m));
                if (!m) {
                    conf_free(regs, nregs);
                    return hull_error_errno(err, "out of memory");
                }
                r->mirrors = m;
                memset(&m[r->n_mirrors++], 0, sizeof(*m));
                section = 2;
            } else {
                section = 0;
            }
            continue;
        }
        char *eq = strchr(l, '=');
        if (!eq) {
            conf_free(regs, nregs);
            return hull_error_set(err, EINVAL, "%s:%d: expected KEY = VALUE", file, lineno);
        }
        *eq = '\0';
        char *key = trim(l), *val = trim(eq + 1);
        if (*val == '[') {
            in_array = !strchr(val, ']');
            continue;
        }
        if (section == 0)
            continue;
        struct conf_reg *r = &regs[nregs - 1];
        struct conf_loc *loc = section == 1 ? &r->loc : &r->mirrors[r->n_mirrors - 1];
        char *s = NULL;
        int b = -1;
        if (parse_value(val, &s, &b) < 0) {
            conf_free(regs, nregs);
            return hull_error_set(err, EINVAL, "%s:%d: %s: expected a string or true/false", file,
                                  lineno, key);
        }
        if (strcmp(key, "location") == 0 && s) {
            free(loc->location);
            loc->location = s;
        } else if (strcmp(key, "prefix") == 0 && s && section == 1) {
            free(r->prefix);
            r->prefix = s;
        } else if (strcmp(key, "insecure") == 0 && b >= 0) {
            loc->insecure = b;
        } else {
            free(s);
        }
    }
    *out = regs;
    *n = nregs;
    return 0;
}

/* Length of prefix when it matches name (whole components), else 0. */
static size_t prefix_match(const char *prefix, const char *name)
{
    size_t k = strlen(prefix);
    while (k > 0 && prefix[k - 1] == '/')
        k--;
    if (k == 0 || strncmp(prefix, name, k) != 0)
        return 0;
    return name[k] == '\0' || name[k] == '/' ? k : 0;
}

static int add_endpoint(struct reg_endpoint **e, size_t *n, const char *location, const char *rest,
                        bool insecure, bool mirror, hull_error *err)
{
    cleanup_free char *full = NULL;
    if (asprintf(&full, "%s%s", location, rest) < 0)
        return hull_error_errno(err, "out of memory");
    char *slash = strchr(full, '/');
    if (!slash || !slash[1])
        return hull_error_set(err, EINVAL, "registries.conf: location %s gives no repository",
                              location);
    struct reg_endpoint *g = realloc(*e, (*n + 1) * sizeof(*g));
    if (!g)
        return hull_error_errno(err, "out of memory");
    *e = g;
    struct reg_endpoint *p = &g[*n];
    p->host = strndup(full, (size_t)(slash - full));
    p->repository = strdup(slash + 1);
    p->insecure = insecure;
    p->mirror = mirror;
    (*n)++;
    if (!p->host || !p->repository)
        return hull_error_errno(err, "out of memory");
    return 0;
}

void reg_endpoints_free(struct reg_endpoint *e, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        free(e[i].host);
        free(e[i].repository);
    }
    free(e);
}

static int conf_path(const struct image_registry_opts *o, char **out, hull_error *err)
{
    *out = NULL;
    const char *p = o ? o->registries_conf : NULL;
    if (!p || !*p)
        p = getenv("HULL_REGISTRIES_CONF");
    if (p && *p) {
        *out = strdup(p);
        return *out ? 0 : hull_error_errno(err, "out of memory");
    }
    if (access(REG_CONF_DEFAULT, F_OK) == 0)
        *out = strdup(REG_CONF_DEFAULT);
    return 0;
}

int reg_endpoints(const char *registry, const char *repository, const struct image_registry_opts *o,
                  bool pull, struct reg_endpoint **out, size_t *n, hull_error *err)
{
    *out = NULL;
    *n = 0;
    cleanup_free char *name = NULL;
    if (asprintf(&name, "%s/%s", registry, repository) < 0)
        return hull_error_errno(err, "out of memory");
    cleanup_free char *file = NULL;
    if (conf_path(o, &file, err) < 0)
        return -1;
    struct conf_reg *regs = NULL;
    size_t nregs = 0;
    if (file) {
        cleanup_free char *text = NULL;
        size_t len = 0;
        if (hull_read_file(file, &text, &len, err) < 0)
            return hull_error_prefix(err, "registries.conf");
        if (parse_conf(file, text, &regs, &nregs, err) < 0)
            return -1;
    }
    struct conf_reg *best = NULL;
    size_t best_len = 0;
    for (size_t i = 0; i < nregs; i++) {
        const char *p = regs[i].prefix ? regs[i].prefix : regs[i].loc.location;
        size_t k = p ? prefix_match(p, name) : 0;
        if (k > best_len) {
            best = &regs[i];
            best_len = k;
        }
    }
    struct reg_endpoint *e = NULL;
    size_t ne = 0;
    int r = 0;
    if (!best) {
        r = add_endpoint(&e, &ne, name, "", false, false, err);
    } else {
        const char *rest = name + best_len;
        for (size_t j = 0; pull && j < best->n_mirrors && r == 0; j++)
            if (best->mirrors[j].location)
                r = add_endpoint(&e, &ne, best->mirrors[j].location, rest,
                                 best->mirrors[j].insecure, true, err);
        const char *loc = best->loc.location ? best->loc.location : best->prefix;
        if (r == 0)
            r = add_endpoint(&e, &ne, loc, rest, best->loc.insecure, false, err);
    }
    conf_free(regs, nregs);
    if (r < 0) {
        reg_endpoints_free(e, ne);
        return -1;
    }
    *out = e;
    *n = ne;
    return 0;
}
