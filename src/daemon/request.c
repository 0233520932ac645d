/* What a request may hold, endpoint by endpoint, and what its token may ask
 * for. Both are checked before anything runs:
 *
 * - a field an endpoint would not apply is refused by name (400), with the
 *   list of the fields it takes: never accepted and silently ignored;
 * - a request that weakens a sandbox's isolation ("network": "host",
 *   "isolation": "process", a port published beyond the host's loopback)
 *   needs a grant given to its token explicitly
 *   (hull token create --allow); without it, 403 naming the field and the
 *   grant. Grants used are written to the audit log with the request. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "daemon.h"
#include "image/image.h"
#include "net/net.h"
#include "util/json.h"
#include "util/log.h"

struct hint {
    const char *field; /* "files", "limits.memory" */
    const char *why;
};

struct endpoint {
    const char *name;
    const char *const *fields; /* NULL-terminated */
    const char *const *limits;
    const struct hint *hints; /* for fields other endpoints take */
};

/* Every limit the API knows, for the message about an unknown one. */
static const char *const all_limits[] = {"cpu_time", "wall_time",  "memory", "output", "tmp_size",
                                         "pids",     "open_files", "cpus",   NULL};

static const char *const run_fields[] = {"cmd",    "stdin",     "env",     "files",
                                         "limits", "isolation", "workdir", "network",
                                         "async",  "queue",     "image",   NULL};
static const struct hint run_hints[] = {
    {"lifetime", "only a long-lived sandbox (POST /v1/sandboxes) has a lifetime"},
    {NULL, NULL},
};

static const char *const create_fields[] = {"isolation", "limits", "env",      "files", "network",
                                            "lifetime",  "image",  "metadata", "ports", NULL};
static const char *const create_limits[] = {"memory",   "pids",       "cpus",
                                            "tmp_size", "open_files", NULL};
static const struct hint create_hints[] = {
    {"cmd", "a sandbox has no command of its own (use /exec)"},
    {"stdin", "stdin belongs to a command: give it to /exec"},
    {"workdir", "a working directory belongs to a command: give it to /exec"},
    {"async", "creating a sandbox is always synchronous"},
    {"queue", "a sandbox cannot go through the queue"},
    {"limits.cpu_time", "time limits are per command: give them to /exec"},
    {"limits.wall_time", "time limits are per command: give them to /exec"},
    {"limits.output", "output limits are per command: give them to /exec"},
    {NULL, NULL},
};

static const char *const exec_fields[] = {"cmd", "stdin", "env", "workdir", "limits", NULL};
static const char *const exec_limits[] = {"cpu_time", "wall_time", "output", NULL};
#define SHARED "a command shares the sandbox's limit, set when the sandbox is created"
static const struct hint exec_hints[] = {
    {"files", "upload files with PUT /v1/sandboxes/{id}/files/{path}"},
    {"isolation", "the sandbox's isolation is set when it is created"},
    {"network", "the sandbox's network is set when it is created"},
    {"lifetime", "the sandbox's lifetime is set when it is created"},
    {"image", "the sandbox's image is set when it is created"},
    {"metadata", "the sandbox's metadata is set when it is created"},
    {"async", "an exec is always synchronous"},
    {"queue", "an exec cannot go through the queue"},
    {"limits.memory", SHARED},
    {"limits.pids", SHARED},
    {"limits.cpus", SHARED},
    {"limits.tmp_size", SHARED},
    {"limits.open_files", SHARED},
    {NULL, NULL},
};

const struct endpoint endpoint_run = {"POST /v1/runs", run_fields, all_limits, run_hints};
const struct endpoint endpoint_create = {"POST /v1/sandboxes", create_fields, create_limits,
                                         create_hints};
const struct endpoint endpoint_exec = {"POST /v1/sandboxes/{id}/exec", exec_fields, exec_limits,
                                       exec_hints};

static bool listed(const char *const *list, const char *key)
{
    for (; *list; list++)
        if (strcmp(*list, key) == 0)
            return true;
    return false;
}

static void join(const char *const *list, char *buf, size_t len)
{
    size_t used = 0;
    buf[0] = '\0';
    for (; *list && used < len; list++) {
        int w = snprintf(buf + used, len - used, "%s%s", used ? ", " : "", *list);
        if (w < 0)
            return;
        used += (size_t)w;
    }
}

static const char *hint_for(const struct endpoint *ep, const char *path)
{
    for (const struct hint *h = ep->hints; h->field; h++)
        if (strcmp(h->field, path) == 0)
            return h->why;
    return NULL;
}

/* key (at path, "" or "limits.") refused: with the reason this endpoint
 * does not take it, if it is a field others take, and what it does take. */
static void refuse(const struct endpoint *ep, const char *prefix, const char *key,
                   const char *const *accepted, struct resp *r)
{
    char path[128], list[512];
    snprintf(path, sizeof(path), "%s%s", prefix, key);
    join(accepted, list, sizeof(list));
    const char *why = hint_for(ep, path);
    const char *what = prefix[0] ? "limit" : "field";
    if (why)
        resp_error(r, 400, "invalid_request", path, "%s: not applied by %s: %s (its %ss: %s)", path,
                   ep->name, why, what, list);
    else
        resp_error(r, 400, "invalid_request", path, "%s: unknown %s (accepted: %s)", path, what,
                   list);
}

/* The \u0000 escapes in JSON text (a NUL byte is not valid JSON as it is). */
static size_t raw_nuls(const char *text, size_t len)
{
    size_t n = 0;
    for (size_t i = 0; i < len; i++) {
        if (text[i] != '\\' || i + 1 >= len)
            continue;
        if (text[i + 1] == 'u' && i + 5 < len && memcmp(text + i + 2, "0000", 4) == 0)
            n++;
        i++; /* the escaped character: "\\u0000" is no NUL */
    }
    return n;
}

/* NULs in o's string values, at any depth; *bad set to the path of the first
 * one outside the request's byte fields: "stdin" and the contents of
 * "files" (at the top). */
static size_t value_nuls(json_object *o, const char *path, bool bytes, char *bad, size_t cap)
{
    size_t n = 0;
    if (json_object_is_type(o, json_type_string)) {
        const char *v = json_object_get_string(o);
        for (int i = 0; i < json_object_get_string_len(o); i++)
            n += v[i] == '\0';
        if (n && !bytes && bad[0] == '\0')
            snprintf(bad, cap, "%s", path[0] ? path : "request");
    } else if (json_object_is_type(o, json_type_object)) {
        json_object_object_foreach(o, k, v)
        {
            char sub[256];
            snprintf(sub, sizeof(sub), "%s%s%s", path, path[0] ? "." : "", k);
            bool top = path[0] == '\0';
            n += value_nuls(v, sub, (top && strcmp(k, "stdin") == 0) || strcmp(path, "files") == 0,
                            bad, cap);
        }
    } else if (json_object_is_type(o, json_type_array)) {
        for (size_t i = 0; i < json_object_array_length(o); i++) {
            char sub[256];
            snprintf(sub, sizeof(sub), "%s[%zu]", path, i);
            n += value_nuls(json_object_array_get_idx(o, i), sub, false, bad, cap);
        }
    }
    return n;
}

int request_doc(const struct request *rq, bool empty_ok, json_object **doc, struct resp *r)
{
    bool empty = empty_ok && rq->len == 0;
    hull_error e = NULL;
    if (hj_parse(empty ? "{}" : rq->body, empty ? 2 : rq->len, "request", doc, &e) < 0) {
        resp_error(r, 400, "invalid_json", NULL, "%s", hull_error_msg(e));
        hull_error_free(&e);
        return -1;
    }
    /* A NUL cuts a name or a value short where C reads it: the parser keeps
     * a field name only up to it ({"a\u0000x": 1} is {"a": 1}), and a path,
     * a network or an image named up to it would be used. Refused wherever
     * it is not data. The parsed names cannot show it: the text's escapes
     * are counted against the values'. */
    size_t raw = empty ? 0 : raw_nuls(rq->body, rq->len);
    char bad[256] = "";
    size_t kept = raw ? value_nuls(*doc, "", false, bad, sizeof(bad)) : 0;
    if (raw != kept || bad[0]) {
        if (bad[0])
            resp_error(r, 400, "invalid_request", bad, "%s: holds a NUL byte", bad);
        else
            resp_error(r, 400, "invalid_request", NULL, "a field name holds a NUL byte");
        json_object_put(*doc);
        *doc = NULL;
        return -1;
    }
    return 0;
}

int request_fields(json_object *doc, const struct endpoint *ep, struct resp *r)
{
    json_object_object_foreach(doc, key, val)
    {
        (void)val;
        if (!listed(ep->fields, key)) {
            refuse(ep, "", key, ep->fields, r);
            return -1;
        }
    }
    json_object *l = hj_get(doc, "limits");
    if (l == NULL || !json_object_is_type(l, json_type_object))
        return 0; /* absent, or the policy parser says what is wrong */
    json_object_object_foreach(l, lkey, lval)
    {
        (void)lval;
        if (!listed(ep->limits, lkey)) {
            refuse(ep, "limits.", lkey, ep->limits, r);
            return -1;
        }
    }
    return 0;
}

static bool asks(json_object *doc, const char *key, const char *value)
{
    json_object *v = hj_get(doc, key);
    return v && json_object_is_type(v, json_type_string) &&
           strcmp(json_object_get_string(v), value) == 0;
}

/* "network": {"egress": ...} naming one of the host's own addresses opens
 * the host's services on it to the sandbox: the host-egress grant. What
 * does not parse is left to the policy parser's 400. */
static int egress_grant(const struct caller *c, json_object *doc, unsigned *used, struct resp *r)
{
    json_object *net = hj_get(doc, "network"), *eg = hj_get(net, "egress");
    if (!json_object_is_type(net, json_type_object) || eg == NULL)
        return 0;
    bool array = json_object_is_type(eg, json_type_array);
    size_t n = array ? json_object_array_length(eg) : 1;
    for (size_t i = 0; i < n; i++) {
        const char *text = json_object_get_string(array ? json_object_array_get_idx(eg, i) : eg);
        struct hull_egress e;
        hull_error err = NULL;
        if (text == NULL || hull_egress_parse(text, &e, &err) < 0) {
            hull_error_free(&err);
            continue;
        }
        int k = hull_egress_host_rule(&e);
        if (k < 0)
            continue;
        const char *name = hull_allow_name(HULL_ALLOW_HOST_EGRESS);
        if (!(c->tok.allow & HULL_ALLOW_HOST_EGRESS)) {
            char field[64];
            if (array)
                snprintf(field, sizeof(field), "network.egress[%zu]", i);
            else
                snprintf(field, sizeof(field), "network.egress");
            resp_error(r, 403, "forbidden", field,
                       "%s: rule %d names an address of the host, which opens the host's own "
                       "services and needs the %s grant; token %s does not have it (an operator "
                       "gives it with hull token create --allow %s)",
                       field, k + 1, name, c->tok.id, name);
            json_object_object_add(hj_get(r->body, "error"), "permission",
                                   json_object_new_string(name));
            return -1;
        }
        *used |= HULL_ALLOW_HOST_EGRESS;
    }
    return 0;
}

/* "network": {"publish": [...]}: a port on an address other than the
 * host's loopback is reachable from other machines, so it needs the
 * publish-public grant. Elements that do not parse are left to the policy
 * parser's 400. */
static int publish_grant(const struct caller *c, json_object *doc, unsigned *used, struct resp *r)
{
    json_object *pub = hj_get(hj_get(doc, "network"), "publish");
    if (!json_object_is_type(hj_get(doc, "network"), json_type_object) ||
        !json_object_is_type(pub, json_type_array))
        return 0;
    const char *name = hull_allow_name(HULL_ALLOW_PUBLISH_PUBLIC);
    for (size_t i = 0; i < json_object_array_length(pub); i++) {
        const char *text = json_object_get_string(json_object_array_get_idx(pub, i));
        struct hull_publish p;
        hull_error e = NULL;
        if (text == NULL || hull_publish_parse(text, &p, &e) < 0) {
            hull_error_free(&e);
            continue;
        }
        if (!hull_publish_public(&p))
            continue;
        if (!(c->tok.allow & HULL_ALLOW_PUBLISH_PUBLIC)) {
            char field[64];
            snprintf(field, sizeof(field), "network.publish[%zu]", i);
            resp_error(r, 403, "forbidden", field,
                       "%s: \"%s\" is reachable from other machines (%s) and needs the %s "
                       "grant, which token %s does not have (publish on 127.0.0.1 instead, or "
                       "an operator gives it with hull token create --allow %s)",
                       field, text, p.host_ip[0] ? p.host_ip : "every address of the host", name,
                       c->tok.id, name);
            json_object_object_add(hj_get(r->body, "error"), "permission",
                                   json_object_new_string(name));
            return -1;
        }
        *used |= HULL_ALLOW_PUBLISH_PUBLIC;
    }
    return 0;
}

int request_grants(const struct caller *c, json_object *doc, struct resp *r)
{
    static const struct {
        const char *field, *value;
        unsigned grant;
    } weakening[] = {
        {"network", "host", HULL_ALLOW_HOST_NETWORK},
        {"isolation", "process", HULL_ALLOW_PROCESS_ISOLATION},
    };
    unsigned used = 0;
    for (size_t i = 0; i < sizeof(weakening) / sizeof(weakening[0]); i++) {
        if (!asks(doc, weakening[i].field, weakening[i].value))
            continue;
        const char *name = hull_allow_name(weakening[i].grant);
        if (!(c->tok.allow & weakening[i].grant)) {
            resp_error(r, 403, "forbidden", weakening[i].field,
                       "%s: \"%s\" needs the %s grant, which token %s does not have (an operator "
                       "gives it with hull token create --allow %s)",
                       weakening[i].field, weakening[i].value, name, c->tok.id, name);
            json_object_object_add(hj_get(r->body, "error"), "permission",
                                   json_object_new_string(name));
            return -1;
        }
        used |= weakening[i].grant;
    }
    if (publish_grant(c, doc, &used, r) < 0 || egress_grant(c, doc, &used, r) < 0)
        return -1;
    hull_allow_format(used, r->grants, sizeof(r->grants));
    return 0;
}

/* "REPOSITORY@DIGEST" of an entry (its name's repository, pinned to what
 * it points at now), or the bare digest for a name that is no reference. */
static char *pinned_name(const struct image_entry *e)
{
    struct image_ref ref = {0};
    hull_error err = NULL;
    if (e->name == NULL || image_ref_parse(e->name, &ref, &err) < 0) {
        hull_error_free(&err); /* a name skopeo wrote ("oci:..."): the digest says it all */
        return strdup(e->desc.digest);
    }
    free(ref.tag);
    free(ref.digest);
    ref.tag = NULL;
    ref.digest = strdup(e->desc.digest);
    char *name = ref.digest ? image_ref_name(&ref) : NULL;
    image_ref_free(&ref);
    return name;
}

int request_image(json_object *doc, int *hold, struct resp *r)
{
    json_object *v = hj_get(doc, "image");
    if (v == NULL)
        return 0;
    const char *text = json_object_get_string(v);
    if (hulld.o->image_root == NULL) { /* see api_images */
        resp_error(r, 501, "not_implemented", "image", "image: hulld has no image store");
        return -1;
    }
    if (!json_object_is_type(v, json_type_string) || text[0] == '\0') {
        resp_error(r, 400, "invalid_request", "image",
                   "image: a name or digest of an image in hulld's store (GET /v1/images)");
        return -1;
    }
    struct image_store s = {.rootfd = -1, .lockfd = -1};
    struct image_entry e = {0};
    hull_error err = NULL;
    int rc = image_store_open(hulld.o->image_root, false, &s, &err);
    if (rc == 0 && hold) {
        /* Resolved and marked in use at once: see image_store_resolve_use. */
        *hold = image_store_resolve_use(&s, text, &e, &err);
        rc = *hold < 0 ? -1 : 0;
        image_store_close(&s);
    } else if (rc == 0) {
        rc = image_store_resolve(&s, text, &e, &err);
        image_store_close(&s);
    }
    if (rc < 0 && hull_error_code(err) == ENOENT) {
        /* Never pulled here: a tenant's request does not make hulld reach
         * out to a registry; an admin pulls. */
        resp_error(r, 404, "not_found", "image", "image %s not found; pull it with POST /v1/images",
                   text);
        hull_error_free(&err);
        return -1;
    }
    if (rc < 0) {
        if (hull_error_code(err) != EINVAL)
            hull_log(HULL_LOG_ERROR, "image store %s: %s", hulld.o->image_root,
                     hull_error_msg(err));
        hull_error_prefix(&err, "image");
        resp_from_error(r, &err);
        return -1;
    }
    cleanup_free char *pinned = pinned_name(&e);
    free(e.name);
    image_desc_free(&e.desc);
    free(e.created);
    if (pinned == NULL) {
        resp_error(r, 500, "internal", NULL, "out of memory");
        return -1;
    }
    json_object_object_add(doc, "image", json_object_new_string(pinned));
    return 0;
}

int request_policy_image(struct hull_policy *p, hull_error *err)
{
    return policy_image_root(p, hulld.o->image_root, err);
}
