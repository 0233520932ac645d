/* hulld's request handling (src/daemon/http.c): routing, methods, tokens
 * and roles, body limits, and the handlers' validation of what they are
 * sent, driven through the real access handler the way libmicrohttpd
 * drives it, with the connection replaced by the input. The input is an
 * HTTP request:
 *
 *     METHOD TARGET\n
 *     Name: value\n            (headers; "Authorization: Bearer @user"
 *     \n                        uses a real token of that role)
 *     body
 *
 * Runs never start and sandboxes are never made: hulld is set up with no
 * run slot and no sandbox quota, so a request that passes validation is
 * answered 429; a run or sandbox id is never found. Every request gets
 * exactly one answer, of valid JSON with the uniform error body when it
 * is an error. */
#include <microhttpd.h>

struct fake_response;
static const char *fake_lookup(struct MHD_Connection *c, enum MHD_ValueKind kind, const char *key);
static enum MHD_Result fake_queue(struct MHD_Connection *c, unsigned status,
                                  struct MHD_Response *m);
static struct MHD_Response *fake_create(size_t size, void *buf, enum MHD_ResponseMemoryMode mode);
static enum MHD_Result fake_add_header(struct MHD_Response *m, const char *name, const char *value);
static void fake_destroy(struct MHD_Response *m);
#define MHD_lookup_connection_value     fake_lookup
#define MHD_queue_response              fake_queue
#define MHD_create_response_from_buffer fake_create
#define MHD_add_response_header         fake_add_header
#define MHD_destroy_response            fake_destroy

#include "../../src/daemon/http.c" /* its static parts are the point */

#undef MHD_lookup_connection_value
#undef MHD_queue_response
#undef MHD_create_response_from_buffer
#undef MHD_add_response_header
#undef MHD_destroy_response

#include <ftw.h>
#include <strings.h>

#include "fuzz.h"
#include "service/store.h"

struct hulld hulld; /* main.c's, which is not linked */

#define MAX_PAIRS 32

struct pair {
    char *key, *value;
};

struct fake_conn {
    struct pair headers[MAX_PAIRS], args[MAX_PAIRS];
    size_t n_headers, n_args;
    int answers; /* responses queued */
    unsigned status;
    char *body;
    size_t body_len;
    char content_type[128];
};

struct fake_response {
    char *data;
    size_t len;
    bool owned;
    char content_type[128];
};

static char *tokens[3]; /* reader, user, admin */
static char state_dir[4096];
static unsigned requests;

static const char *fake_lookup(struct MHD_Connection *mc, enum MHD_ValueKind kind, const char *key)
{
    struct fake_conn *c = (struct fake_conn *)mc;
    FUZZ_CHECK(c != NULL);
    if (kind == MHD_HEADER_KIND) {
        for (size_t i = 0; i < c->n_headers; i++)
            if (strcasecmp(c->headers[i].key, key) == 0)
                return c->headers[i].value;
    } else if (kind == MHD_GET_ARGUMENT_KIND) {
        for (size_t i = 0; i < c->n_args; i++)
            if (strcmp(c->args[i].key, key) == 0)
                return c->args[i].value;
    }
    return NULL;
}

/* mhd_hooks.c's http_framing walks the request's headers itself; this
 * definition is linked in place of the library's, for the fake connection. */
/* The fake connections carry no socket: http_deadline.c finds none. */
const union MHD_ConnectionInfo *MHD_get_connection_info(struct MHD_Connection *mc,
                                                        enum MHD_ConnectionInfoType type, ...)
{
    (void)mc;
    (void)type;
    return NULL;
}

int MHD_get_connection_values(struct MHD_Connection *mc, enum MHD_ValueKind kind,
                              MHD_KeyValueIterator it, void *cls)
{
    struct fake_conn *c = (struct fake_conn *)mc;
    FUZZ_CHECK(c != NULL);
    if (kind != MHD_HEADER_KIND)
        return 0;
    int n = 0;
    for (size_t i = 0; i < c->n_headers; i++) {
        n++;
        if (it != NULL && it(cls, kind, c->headers[i].key, c->headers[i].value) != MHD_YES)
            break;
    }
    return n;
}

static struct MHD_Response *fake_create(size_t size, void *buf, enum MHD_ResponseMemoryMode mode)
{
    struct fake_response *m = calloc(1, sizeof(*m));
    FUZZ_CHECK(m != NULL);
    m->data = buf;
    m->len = size;
    m->owned = mode == MHD_RESPMEM_MUST_FREE;
    return (struct MHD_Response *)m;
}

static enum MHD_Result fake_add_header(struct MHD_Response *mr, const char *name, const char *value)
{
    struct fake_response *m = (struct fake_response *)mr;
    FUZZ_CHECK(name && value && !strchr(value, '\n') && !strchr(value, '\r'));
    if (strcasecmp(name, "Content-Type") == 0)
        snprintf(m->content_type, sizeof(m->content_type), "%s", value);
    return MHD_YES;
}

static void fake_destroy(struct MHD_Response *mr)
{
    struct fake_response *m = (struct fake_response *)mr;
    if (m->owned)
        free(m->data);
    free(m);
}

static enum MHD_Result fake_queue(struct MHD_Connection *mc, unsigned status,
                                  struct MHD_Response *mr)
{
    struct fake_conn *c = (struct fake_conn *)mc;
    struct fake_response *m = (struct fake_response *)mr;
    c->answers++;
    FUZZ_CHECK(c->answers == 1); /* one answer per request */
    FUZZ_CHECK(status >= 200 && status <= 599);
    c->status = status;
    c->body = malloc(m->len + 1);
    FUZZ_CHECK(c->body != NULL);
    memcpy(c->body, m->data, m->len);
    c->body[m->len] = '\0';
    c->body_len = m->len;
    snprintf(c->content_type, sizeof(c->content_type), "%s", m->content_type);
    return MHD_YES;
}

/* ---- the store: a fresh one now and then, so the audit log stays small ---- */

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)flag;
    (void)ftw;
    return remove(path);
}

static void store_close(void)
{
    if (hulld.store) {
        hull_store_close(hulld.store);
        hulld.store = NULL;
        nftw(state_dir, rm_entry, 8, FTW_DEPTH | FTW_PHYS);
    }
    for (int i = 0; i < 3; i++) {
        free(tokens[i]);
        tokens[i] = NULL;
    }
}

static void store_open(void)
{
    const char *tmp = getenv("TMPDIR");
    snprintf(state_dir, sizeof(state_dir), "%s/hull-fuzz-hulld-XXXXXX", tmp && *tmp ? tmp : "/tmp");
    FUZZ_CHECK(mkdtemp(state_dir) != NULL);
    hull_error e = NULL;
    FUZZ_CHECK(hull_store_open(state_dir, &hulld.store, &e) == 0);
    static const enum hull_role roles[3] = {HULL_ROLE_READER, HULL_ROLE_USER, HULL_ROLE_ADMIN};
    for (int i = 0; i < 3; i++) {
        struct hull_token_info info;
        FUZZ_CHECK(hull_token_create(hulld.store, roles[i], "fuzz", &tokens[i], &info, &e) == 0);
    }
}

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    /* No run slot, no queue, no sandbox quota: nothing valid gets further
     * than the 429 that says so. Bodies over 2 KiB are refused (413). */
    static struct hulld_options o = {
        .max_runs = 0,
        .queue_depth = 0,
        .max_body = 2048,
        .tenant_runs = 0,
        .tenant_sandboxes = 0,
    };
    hulld.o = &o;
    hull_error e = NULL;
    FUZZ_CHECK(hull_log_init("/dev/null", "text", false, &e) == 0);
    store_open();
    atexit(store_close);
    return 0;
}

/* ---- the request ---- */

static int hexval(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* %XX and (in queries) '+', in place, as libmicrohttpd unescapes. */
static void unescape(char *s, bool plus)
{
    char *w = s;
    for (char *r = s; *r; r++) {
        if (*r == '%' && hexval(r[1]) >= 0 && hexval(r[2]) >= 0) {
            *w++ = (char)(hexval(r[1]) * 16 + hexval(r[2]));
            r += 2;
        } else {
            *w++ = plus && *r == '+' ? ' ' : *r;
        }
    }
    *w = '\0';
}

static void parse_query(struct fake_conn *c, char *q)
{
    for (char *save = NULL, *kv = strtok_r(q, "&", &save); kv && c->n_args < MAX_PAIRS;
         kv = strtok_r(NULL, "&", &save)) {
        char *eq = strchr(kv, '=');
        if (eq)
            *eq++ = '\0';
        unescape(kv, true);
        if (eq)
            unescape(eq, true);
        c->args[c->n_args++] = (struct pair){kv, eq ? eq : ""};
    }
}

/* "Bearer @user": the real token of that role. */
static char *auth_value(char *v)
{
    static const char *const names[3] = {"@reader", "@user", "@admin"};
    if (strncasecmp(v, "Bearer ", 7) != 0)
        return v;
    for (int i = 0; i < 3; i++)
        if (strcmp(v + 7, names[i]) == 0) {
            static char buf[3][256];
            snprintf(buf[i], sizeof(buf[i]), "Bearer %s", tokens[i]);
            return buf[i];
        }
    return v;
}

static void check_answer(const struct fake_conn *c)
{
    if (strncmp(c->content_type, "application/json", 16) != 0)
        return; /* /metrics */
    /* One JSON object and a newline. */
    FUZZ_CHECK(c->body_len > 1 && c->body[c->body_len - 1] == '\n');
    json_tokener *tok = json_tokener_new();
    json_tokener_set_flags(tok, JSON_TOKENER_STRICT | JSON_TOKENER_VALIDATE_UTF8);
    json_object *o = json_tokener_parse_ex(tok, c->body, (int)c->body_len - 1);
    bool whole = json_tokener_get_error(tok) == json_tokener_success &&
                 json_tokener_get_parse_end(tok) + 1 == c->body_len;
    json_tokener_free(tok);
    if (o == NULL || !whole)
        fprintf(stderr, "fuzz: answer %u is not one JSON object: %s\n", c->status, c->body);
    FUZZ_CHECK(o != NULL && whole);
    if (c->status >= 400) {
        json_object *err = NULL, *v = NULL;
        FUZZ_CHECK(json_object_object_get_ex(o, "error", &err));
        FUZZ_CHECK(json_object_object_get_ex(err, "code", &v) &&
                   json_object_is_type(v, json_type_string));
        FUZZ_CHECK(json_object_object_get_ex(err, "message", &v) &&
                   json_object_is_type(v, json_type_string));
    }
    json_object_put(o);
}

static void serve(struct fake_conn *c, const char *method, const char *url, const char *body,
                  size_t len)
{
    void *con_cls = NULL;
    struct MHD_Connection *mc = (struct MHD_Connection *)c;
    size_t up = 0;
    enum MHD_Result ret = handler(NULL, mc, url, method, "HTTP/1.1", NULL, &up, &con_cls);
    /* The body in pieces, as it comes off the socket. */
    for (size_t off = 0; ret == MHD_YES && off < len;) {
        size_t n = len - off < 700 ? len - off : 700;
        up = n;
        ret = handler(NULL, mc, url, method, "HTTP/1.1", body + off, &up, &con_cls);
        FUZZ_CHECK(up <= n);
        off += n - up;
    }
    /* The end of the body: an answer now if there was none yet. */
    if (ret == MHD_YES && c->answers == 0) {
        up = 0;
        ret = handler(NULL, mc, url, method, "HTTP/1.1", NULL, &up, &con_cls);
        FUZZ_CHECK(c->answers == 1 || ret == MHD_NO);
    }
    completed(NULL, mc, &con_cls, MHD_REQUEST_TERMINATED_COMPLETED_OK);
    FUZZ_CHECK(atomic_load(&in_flight) == 0);
    if (c->answers)
        check_answer(c);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (++requests % 20000 == 0) {
        store_close();
        store_open();
    }
    char *text = malloc(size + 1);
    FUZZ_CHECK(text != NULL);
    memcpy(text, data, size);
    text[size] = '\0';
    struct fake_conn c = {0};
    /* Request line: what libmicrohttpd would pass on (a NUL ends it early,
     * as it would end the C string). */
    char *eol = memchr(text, '\n', size);
    char *body = eol ? eol + 1 : text + size;
    if (eol)
        *eol = '\0';
    char *sp = strchr(text, ' ');
    if (sp == NULL || sp == text) {
        free(text);
        return 0;
    }
    *sp = '\0';
    char *method = text, *url = sp + 1, *q = strchr(url, '?');
    if (q) {
        *q++ = '\0';
        parse_query(&c, q);
    }
    unescape(url, false);
    /* Headers up to an empty line. */
    while (eol && body < text + size && *body != '\n') {
        char *line = body;
        eol = memchr(line, '\n', (size_t)(text + size - line));
        body = eol ? eol + 1 : text + size;
        if (eol)
            *eol = '\0';
        char *colon = strchr(line, ':');
        if (colon == NULL || c.n_headers == MAX_PAIRS)
            continue;
        *colon = '\0';
        char *v = colon + 1;
        while (*v == ' ')
            v++;
        if (strcasecmp(line, "Content-Length") == 0)
            continue; /* set from the body below */
        if (strcasecmp(line, "Authorization") == 0)
            v = auth_value(v);
        c.headers[c.n_headers++] = (struct pair){line, v};
    }
    if (body < text + size && *body == '\n')
        body++;
    size_t len = (size_t)(text + size - body);
    char cl[32];
    snprintf(cl, sizeof(cl), "%zu", len);
    if (len && c.n_headers < MAX_PAIRS)
        c.headers[c.n_headers++] = (struct pair){"Content-Length", cl};
    serve(&c, method, url, body, len);
    free(c.body);
    free(text);
    return 0;
}
