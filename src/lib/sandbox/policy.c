/* struct hull_policy: defaults, validation, and the REST API's JSON form.
 * Every limit has a range; a value outside it is an error naming the field,
 * never a silent clamp. */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hull.h"
#include "sandbox/sandbox.h"
#include "util/error.h"
#include "util/fs.h"
#include "util/json.h"
#include "util/strv.h"

#define KiB 1024ull
#define MiB (1024ull * KiB)
#define GiB (1024ull * MiB)

/* Limits a policy may ask for (inclusive). */
#define CPU_TIME_MIN_MS  1ull
#define CPU_TIME_MAX_MS  (24ull * 3600 * 1000)
#define WALL_TIME_MIN_MS 1ull
#define WALL_TIME_MAX_MS (24ull * 3600 * 1000)
#define MEMORY_MIN       (4ull * MiB)
#define MEMORY_MAX       (1024ull * GiB)
#define OUTPUT_MAX       (1ull * GiB)
#define TMPFS_MIN        (64ull * KiB)
#define TMPFS_MAX        (1024ull * GiB)
#define PIDS_MAX         1000000u
#define OPEN_FILES_MIN   4u
#define OPEN_FILES_MAX   1048576u
#define COPY_OUT_MAX     (1024ull * GiB)

void hull_policy_init(struct hull_policy *p)
{
    memset(p, 0, sizeof(*p));
    p->isolation = HULL_ISOLATION_CONTAINER;
    p->cpu_time_ms = 2000;
    p->wall_time_ms = 10000;
    p->memory_bytes = 256 * MiB;
    p->output_bytes = 1 * MiB;
    p->tmp_bytes = 64 * MiB;
    p->pids = 64;
    p->open_files = 64;
    p->cpus = 1.0;
    p->copy_out_max = 64 * MiB;
    p->cancel_fd = -1;
}

void hull_policy_free(struct hull_policy *p)
{
    hull_strv_free(p->argv);
    hull_strv_free(p->env);
    free(p->workdir);
    free(p->rootfs);
    for (size_t i = 0; i < p->n_binds; i++) {
        free(p->binds[i].source);
        free(p->binds[i].destination);
    }
    free(p->binds);
    free(p->stdin_path);
    free(p->stdin_data);
    for (size_t i = 0; i < p->n_copy_in; i++) {
        free(p->copy_in[i].host);
        free(p->copy_in[i].sandbox);
    }
    free(p->copy_in);
    for (size_t i = 0; i < p->n_copy_out; i++) {
        free(p->copy_out[i].host);
        free(p->copy_out[i].sandbox);
    }
    free(p->copy_out);
    for (size_t i = 0; i < p->n_files; i++) {
        free(p->files[i].path);
        free(p->files[i].data);
    }
    free(p->files);
    free(p->seccomp_path);
    free(p->image);
    free(p->image_root);
    free(p->network);
    free(p->egress);
    free(p->publish);
    int fd = p->cancel_fd;
    memset(p, 0, sizeof(*p));
    p->cancel_fd = fd;
}

int hull_policy_add_arg(struct hull_policy *p, const char *arg)
{
    return hull_strv_append(&p->argv, arg);
}

int hull_policy_add_env(struct hull_policy *p, const char *key_value)
{
    return hull_strv_append(&p->env, key_value);
}

const char *hull_isolation_name(enum hull_isolation i)
{
    switch (i) {
    case HULL_ISOLATION_PROCESS:
        return "process";
    case HULL_ISOLATION_CONTAINER:
        return "container";
    case HULL_ISOLATION_MICROVM:
        return "microvm";
    }
    return "unknown";
}

int hull_isolation_parse(const char *s, enum hull_isolation *out)
{
    for (int i = HULL_ISOLATION_PROCESS; i <= HULL_ISOLATION_MICROVM; i++)
        if (strcmp(s, hull_isolation_name(i)) == 0) {
            *out = i;
            return 0;
        }
    return -1;
}

const char *hull_pull_policy_name(enum hull_pull_policy p)
{
    return p == HULL_PULL_NEVER ? "never" : "missing";
}

int hull_pull_policy_parse(const char *s, enum hull_pull_policy *out)
{
    if (strcmp(s, "missing") == 0)
        *out = HULL_PULL_MISSING;
    else if (strcmp(s, "never") == 0)
        *out = HULL_PULL_NEVER;
    else
        return -1;
    return 0;
}

/* How long the plain decimal number a duration or size starts with is
 * ("2", "1.5", ".5", "1e3"); 0 when it does not start with one. strtod
 * alone would also take " 5", "+5", "0x10", "nan" and "inf": its end must
 * be this one. */
static size_t plain_number(const char *s)
{
    const char *const digits = "0123456789";
    size_t n = strspn(s, digits);
    if (s[n] == '.') {
        size_t f = strspn(s + n + 1, digits);
        if (f == 0)
            return 0;
        n += 1 + f;
    }
    if (n == 0)
        return 0;
    if (s[n] == 'e' || s[n] == 'E') {
        size_t sign = s[n + 1] == '+' || s[n + 1] == '-';
        size_t x = strspn(s + n + 1 + sign, digits);
        if (x > 0)
            n += 1 + sign + x;
    }
    return n;
}

int hull_parse_duration_ms(const char *s, uint64_t *ms)
{
    char *end;
    size_t n = plain_number(s);
    errno = 0;
    double v = strtod(s, &end);
    if (n == 0 || end != s + n || errno || !(v >= 0) || isinf(v))
        return -1;
    double mult;
    if (strcmp(end, "ms") == 0)
        mult = 1;
    else if (strcmp(end, "s") == 0 || *end == '\0')
        mult = 1000;
    else if (strcmp(end, "m") == 0 || strcmp(end, "min") == 0)
        mult = 60000;
    else if (strcmp(end, "h") == 0)
        mult = 3600000;
    else
        return -1;
    double r = v * mult;
    if (r > (double)UINT64_MAX / 2)
        return -1;
    *ms = (uint64_t)(r + 0.5);
    return 0;
}

/* Every size of hull (the CLI's --memory, --output, ..., hull vm's too, and
 * the API's limits) is read here: a whole number of bytes, or digits with
 * an optional fraction and a binary unit (K, M, G, T; then an optional 'i'
 * and 'B'). A fraction of a unit is exact: the bytes it makes, rounded
 * down to a whole byte, are worked out in integers (1.1G is 1181116006,
 * whatever a double makes of 1.1). A fraction of a byte ("1.5", "1.5B")
 * and exponents ("1e3M") are no size. */
int hull_parse_size(const char *s, uint64_t *bytes)
{
    static const char digits[] = "0123456789";
    size_t nint = strspn(s, digits);
    if (nint == 0 || nint > 20)
        return -1;
    uint64_t whole = 0;
    for (size_t i = 0; i < nint; i++) {
        if (whole > (UINT64_MAX - 9) / 10)
            return -1;
        whole = whole * 10 + (uint64_t)(s[i] - '0');
    }
    const char *p = s + nint;
    uint64_t num = 0, den = 1; /* the fraction, num/den */
    bool fraction = *p == '.';
    if (fraction) {
        size_t nfrac = strspn(p + 1, digits);
        if (nfrac == 0 || nfrac > 18) /* 10^18 and twice num fit in 64 bits */
            return -1;
        for (size_t i = 1; i <= nfrac; i++) {
            num = num * 10 + (uint64_t)(p[i] - '0');
            den *= 10;
        }
        p += 1 + nfrac;
    }
    unsigned shift = 0;
    switch (*p) {
    case 'k':
    case 'K':
        shift = 10;
        break;
    case 'm':
    case 'M':
        shift = 20;
        break;
    case 'g':
    case 'G':
        shift = 30;
        break;
    case 't':
    case 'T':
        shift = 40;
        break;
    }
    if (shift) {
        p++;
        if (*p == 'i')
            p++;
    }
    if (*p == 'b' || *p == 'B')
        p++;
    if (*p != '\0' || (fraction && shift == 0) || whole > (UINT64_MAX / 2) >> shift)
        return -1;
    uint64_t v = whole << shift;
    /* floor(num / den * 2^shift), a bit at a time: r < den <= 10^18, so
     * 2r never overflows. */
    uint64_t part = 0, r = num;
    for (unsigned i = 0; i < shift; i++) {
        r <<= 1;
        part <<= 1;
        if (r >= den) {
            r -= den;
            part |= 1;
        }
    }
    if (v + part > UINT64_MAX / 2)
        return -1;
    *bytes = v + part;
    return 0;
}

static int range(const char *name, uint64_t v, uint64_t lo, uint64_t hi, const char *unit,
                 hull_error *err)
{
    if (v < lo || v > hi)
        return hull_error_set(err, ERANGE, "%s: %llu%s is out of range [%llu%s, %llu%s]", name,
                              (unsigned long long)v, unit, (unsigned long long)lo, unit,
                              (unsigned long long)hi, unit);
    return 0;
}

static int sandbox_path(const char *name, const char *path, bool under_tmp, hull_error *err)
{
    char clean[4096];
    if (path == NULL || path[0] != '/')
        return hull_error_set(err, EINVAL, "%s: '%s' must be an absolute path in the sandbox", name,
                              path ? path : "");
    if (hull_path_clean(path, clean, sizeof(clean)) < 0)
        return hull_error_set(err, EINVAL, "%s: '%s' escapes the sandbox root", name, path);
    if (under_tmp && strncmp(clean, "/tmp/", 5) != 0)
        return hull_error_set(err, EINVAL,
                              "%s: '%s' must be under /tmp (the sandbox's only writable place)",
                              name, path);
    return 0;
}

/* lim: how the limits are named, "" for the CLI's flags, "limits." for the
 * API's JSON path. */
static int validate(const struct hull_policy *p, const char *lim, hull_error *err)
{
    /* With an image, no command means the image's Entrypoint + Cmd. */
    bool no_cmd = p->argv == NULL || p->argv[0] == NULL;
    if ((no_cmd && p->image == NULL) || (!no_cmd && p->argv[0][0] == '\0'))
        return hull_error_set(err, EINVAL, "cmd: a command is required");
    if (p->image && p->image[0] == '\0')
        return hull_error_set(err, EINVAL, "image: must not be empty");
    if (p->pull != HULL_PULL_MISSING && p->pull != HULL_PULL_NEVER)
        return hull_error_set(err, EINVAL, "pull: unknown policy");
    if (p->isolation < HULL_ISOLATION_PROCESS || p->isolation > HULL_ISOLATION_MICROVM)
        return hull_error_set(err, EINVAL, "isolation: unknown level");
    static const char *const names[] = {"cpu_time", "wall_time", "memory",    "output",
                                        "tmp_size", "pids",      "open_files"};
    const uint64_t v[] = {p->cpu_time_ms, p->wall_time_ms, p->memory_bytes, p->output_bytes,
                          p->tmp_bytes,   p->pids,         p->open_files};
    const uint64_t lo[] = {CPU_TIME_MIN_MS, WALL_TIME_MIN_MS, MEMORY_MIN, 0, TMPFS_MIN, 1,
                           OPEN_FILES_MIN};
    const uint64_t hi[] = {CPU_TIME_MAX_MS, WALL_TIME_MAX_MS, MEMORY_MAX,    OUTPUT_MAX,
                           TMPFS_MAX,       PIDS_MAX,         OPEN_FILES_MAX};
    static const char *const unit[] = {" ms", " ms", " bytes", " bytes", " bytes", "", ""};
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        char name[64];
        snprintf(name, sizeof(name), "%s%s", lim, names[i]);
        if (range(name, v[i], lo[i], hi[i], unit[i], err) < 0)
            return -1;
    }
    /* Not in the API's JSON: copy-out is the CLI's and the library's. */
    if (range("copy_out_max", p->copy_out_max, 0, COPY_OUT_MAX, " bytes", err) < 0)
        return -1;
    if (!(p->cpus >= 0.01 && p->cpus <= 1024))
        return hull_error_set(err, ERANGE, "%scpus: %g is out of range [0.01, 1024]", lim, p->cpus);
    /* Process level has rlimits and no cgroup: CPU time has an rlimit and
     * a watch, CPU bandwidth has nothing that could hold it. */
    if (p->cpus_given && p->isolation == HULL_ISOLATION_PROCESS)
        return hull_error_set(err, EINVAL,
                              "%scpus: process isolation cannot limit CPU bandwidth (it has no "
                              "cgroup); use container or microvm isolation, or leave it out",
                              lim);
    for (char **e = p->env; e && *e; e++)
        if (strchr(*e, '=') == NULL || **e == '=')
            return hull_error_set(err, EINVAL, "env: '%s' must be KEY=VALUE", *e);
    if (p->workdir && sandbox_path("workdir", p->workdir, false, err) < 0)
        return -1;
    for (size_t i = 0; i < p->n_binds; i++) {
        char name[64];
        snprintf(name, sizeof(name), "bind[%zu]", i);
        if (p->binds[i].source == NULL || p->binds[i].source[0] != '/')
            return hull_error_set(err, EINVAL, "%s: source must be an absolute host path", name);
        if (sandbox_path(name, p->binds[i].destination, false, err) < 0)
            return -1;
        /* Over the root it would do nothing; over /proc it would hide the
         * sandbox's own procfs and its masked paths. */
        char clean[4096];
        hull_path_clean(p->binds[i].destination, clean, sizeof(clean));
        if (strcmp(clean, "/") == 0 || strcmp(clean, "/proc") == 0 ||
            strncmp(clean, "/proc/", 6) == 0)
            return hull_error_set(err, EINVAL, "%s: cannot bind over '%s'", name, clean);
    }
    for (size_t i = 0; i < p->n_copy_in; i++) {
        char name[64];
        snprintf(name, sizeof(name), "copy_in[%zu]", i);
        if (p->copy_in[i].host == NULL || p->copy_in[i].host[0] == '\0')
            return hull_error_set(err, EINVAL, "%s: a host path is required", name);
        if (sandbox_path(name, p->copy_in[i].sandbox, true, err) < 0)
            return -1;
    }
    for (size_t i = 0; i < p->n_copy_out; i++) {
        char name[64];
        snprintf(name, sizeof(name), "copy_out[%zu]", i);
        if (p->copy_out[i].host == NULL || p->copy_out[i].host[0] == '\0')
            return hull_error_set(err, EINVAL, "%s: a host path is required", name);
        if (sandbox_path(name, p->copy_out[i].sandbox, true, err) < 0)
            return -1;
    }
    for (size_t i = 0; i < p->n_files; i++) {
        char name[64];
        snprintf(name, sizeof(name), "files[%zu]", i);
        if (sandbox_path(name, p->files[i].path, true, err) < 0)
            return -1;
    }
    if (p->stdin_path && p->stdin_data)
        return hull_error_set(err, EINVAL, "stdin: give a file or data, not both");
    return hull_policy_net_validate(p, err);
}

int hull_policy_validate(const struct hull_policy *p, hull_error *err)
{
    return validate(p, "", err);
}

/* ---- JSON (REST API) -------------------------------------------------- */

int hull_json_duration_ms(json_object *v, const char *path, uint64_t *ms, hull_error *err)
{
    if (json_object_is_type(v, json_type_int) || json_object_is_type(v, json_type_double)) {
        /* A bare number is seconds, as it is in a string ("2"). */
        double s = json_object_get_double(v);
        if (!(s >= 0) || s * 1000.0 > (double)UINT64_MAX / 2)
            return hull_error_set(err, ERANGE, "%s: %g is not a number of seconds", path, s);
        *ms = (uint64_t)(s * 1000.0 + 0.5);
        return 0;
    }
    const char *s = json_object_is_type(v, json_type_string) ? json_object_get_string(v) : NULL;
    if (s == NULL)
        return hull_error_set(err, EINVAL,
                              "%s: must be a duration: a string like \"2s\" or \"500ms\", or a "
                              "number of seconds",
                              path);
    if (hull_parse_duration_ms(s, ms) < 0)
        return hull_error_set(
            err, EINVAL, "%s: '%s' is not a duration (2s, 500ms, 10m, 1h, or seconds)", path, s);
    return 0;
}

int hull_json_size(json_object *v, const char *path, uint64_t *bytes, hull_error *err)
{
    if (json_object_is_type(v, json_type_int)) {
        int64_t n = json_object_get_int64(v);
        if (n < 0)
            return hull_error_set(err, ERANGE, "%s: must not be negative", path);
        *bytes = (uint64_t)n; /* a bare number is bytes, as it is in a string */
        return 0;
    }
    const char *s = json_object_is_type(v, json_type_string) ? json_object_get_string(v) : NULL;
    if (s == NULL)
        return hull_error_set(err, EINVAL,
                              "%s: must be a size: a string like \"256M\" or a whole number of "
                              "bytes",
                              path);
    if (hull_parse_size(s, bytes) < 0)
        return hull_error_set(err, EINVAL, "%s: '%s' is not a size (256M, 1G, or bytes)", path, s);
    return 0;
}

static int json_limit(json_object *limits, const char *key, bool size, uint64_t *out,
                      hull_error *err)
{
    json_object *v = hj_get(limits, key);
    if (v == NULL)
        return 0;
    char path[64];
    snprintf(path, sizeof(path), "limits.%s", key);
    return size ? hull_json_size(v, path, out, err) : hull_json_duration_ms(v, path, out, err);
}

static int json_u32_limit(json_object *limits, const char *key, uint32_t *out, hull_error *err)
{
    int64_t v = 0;
    bool here = false;
    if (hj_int_range(limits, "limits", key, 0, UINT32_MAX, &v, &here, err) < 0)
        return -1;
    if (here)
        *out = (uint32_t)v;
    return 0;
}

/* The first key of obj that is not in known (NULL-terminated), or NULL. A
 * misspelt key would otherwise be ignored and its value silently replaced
 * by the default. */
static const char *unknown_key(json_object *obj, const char *const *known)
{
    json_object_object_foreach(obj, key, val)
    {
        (void)val;
        bool ok = false;
        for (const char *const *k = known; *k; k++)
            ok = ok || strcmp(*k, key) == 0;
        if (!ok)
            return key;
    }
    return NULL;
}

static int json_limits(json_object *doc, struct hull_policy *p, hull_error *err)
{
    json_object *l = hj_get(doc, "limits");
    if (l == NULL)
        return 0;
    if (hj_require_object(l, "limits", err) < 0)
        return -1;
    static const char *const known[] = {"cpu_time", "wall_time",  "memory", "output", "tmp_size",
                                        "pids",     "open_files", "cpus",   NULL};
    const char *bad = unknown_key(l, known);
    if (bad)
        return hull_error_set(err, EINVAL,
                              "limits.%s: unknown limit (accepted: cpu_time, wall_time, memory, "
                              "output, tmp_size, pids, open_files, cpus)",
                              bad);
    if (json_limit(l, "cpu_time", false, &p->cpu_time_ms, err) < 0 ||
        json_limit(l, "wall_time", false, &p->wall_time_ms, err) < 0 ||
        json_limit(l, "memory", true, &p->memory_bytes, err) < 0 ||
        json_limit(l, "output", true, &p->output_bytes, err) < 0 ||
        json_limit(l, "tmp_size", true, &p->tmp_bytes, err) < 0 ||
        json_u32_limit(l, "pids", &p->pids, err) < 0 ||
        json_u32_limit(l, "open_files", &p->open_files, err) < 0)
        return -1;
    p->tmp_given = hj_get(l, "tmp_size") != NULL;
    json_object *c = hj_get(l, "cpus");
    if (c != NULL) {
        if (!json_object_is_type(c, json_type_int) && !json_object_is_type(c, json_type_double))
            return hull_error_set(err, EINVAL, "limits.cpus: must be a number");
        p->cpus = json_object_get_double(c);
        p->cpus_given = true;
    }
    return 0;
}

static int json_env(json_object *doc, struct hull_policy *p, hull_error *err)
{
    char **pairs = NULL;
    size_t n = 0;
    if (hj_string_map(doc, "", "env", &pairs, &n, err) < 0)
        return -1;
    if (pairs == NULL)
        return 0;
    /* KEY=VALUE is split at the first '=': a name holding one would set
     * another variable than the one named. */
    for (size_t i = 0; i < n; i++)
        if (strchr(pairs[2 * i], '=') != NULL) {
            int rc = hull_error_set(err, EINVAL, "env.%s: a name cannot hold '='", pairs[2 * i]);
            hull_strv_free(pairs);
            return rc;
        }
    char **env = calloc(n + 1, sizeof(char *));
    for (size_t i = 0; env && i < n; i++)
        if (asprintf(&env[i], "%s=%s", pairs[2 * i], pairs[2 * i + 1]) < 0)
            env[i] = NULL;
    hull_strv_free(pairs);
    if (env == NULL)
        return hull_error_set(err, ENOMEM, "out of memory");
    p->env = env;
    return 0;
}

static int json_files(json_object *doc, struct hull_policy *p, hull_error *err)
{
    json_object *f = hj_get(doc, "files");
    if (f == NULL)
        return 0;
    if (hj_require_object(f, "files", err) < 0)
        return -1;
    size_t n = (size_t)json_object_object_length(f);
    p->files = calloc(n ? n : 1, sizeof(*p->files));
    if (p->files == NULL)
        return hull_error_set(err, ENOMEM, "out of memory");
    json_object_object_foreach(f, path, val)
    {
        if (!json_object_is_type(val, json_type_string))
            return hull_error_set(err, EINVAL, "files.%s: must be a string (the content)", path);
        struct hull_inline_file *file = &p->files[p->n_files++];
        /* Relative names land in /tmp, the only writable place. */
        if (path[0] == '/')
            file->path = strdup(path);
        else if (asprintf(&file->path, "/tmp/%s", path) < 0)
            file->path = NULL;
        file->len = (size_t)json_object_get_string_len(val);
        file->data = malloc(file->len + 1);
        if (file->path == NULL || file->data == NULL)
            return hull_error_set(err, ENOMEM, "out of memory");
        memcpy(file->data, json_object_get_string(val), file->len);
        file->mode = 0644;
        /* Named by its JSON path (files.KEY), not by its index. */
        char name[4200];
        snprintf(name, sizeof(name), "files.%s", path);
        if (sandbox_path(name, file->path, true, err) < 0)
            return -1;
    }
    return 0;
}

/* Host paths (rootfs, binds, copies, seccomp files) are not part of a
 * request: they are the operator's. */
static int json_known_fields(json_object *doc, hull_error *err)
{
    static const char *const known[] = {"cmd",   "isolation", "workdir", "limits", "env",
                                        "files", "stdin",     "network", "image",  NULL};
    const char *bad = unknown_key(doc, known);
    if (bad)
        return hull_error_set(err, EINVAL,
                              "%s: unknown field (cmd, isolation, workdir, limits, env, files, "
                              "stdin, network, image)",
                              bad);
    return 0;
}

/* The request's fields into p (doc stays the caller's). */
static int policy_from_doc(json_object *doc, struct hull_policy *p, hull_error *err)
{
    cleanup_free char *iso = NULL;
    if (json_known_fields(doc, err) < 0)
        return -1;
    /* An image (a name in the operator's store: the store itself is not
     * part of a request) may bring the command; cmd then adds to its
     * Entrypoint, as on the command line. */
    if (hj_string(doc, "", "image", false, &p->image, err) < 0)
        return -1;
    json_object *cmd = hj_get(doc, "cmd");
    bool need_cmd = p->image == NULL || cmd != NULL;
    if (need_cmd && (cmd == NULL || !json_object_is_type(cmd, json_type_array) ||
                     json_object_array_length(cmd) == 0))
        return hull_error_set(err, EINVAL, "cmd: must be a non-empty array of strings");
    if ((cmd && hj_string_array(doc, "", "cmd", &p->argv, NULL, err) < 0) ||
        hj_string(doc, "", "isolation", false, &iso, err) < 0 ||
        hj_string(doc, "", "workdir", false, &p->workdir, err) < 0 ||
        json_limits(doc, p, err) < 0 || json_env(doc, p, err) < 0 || json_files(doc, p, err) < 0)
        return -1;
    if (iso && hull_isolation_parse(iso, &p->isolation) < 0)
        return hull_error_set(err, EINVAL,
                              "isolation: unknown level '%s' (process, container, microvm)", iso);
    json_object *in = hj_get(doc, "stdin");
    if (in != NULL) {
        if (!json_object_is_type(in, json_type_string))
            return hull_error_set(err, EINVAL, "stdin: must be a string");
        p->stdin_len = (size_t)json_object_get_string_len(in);
        p->stdin_data = malloc(p->stdin_len + 1);
        if (p->stdin_data == NULL)
            return hull_error_set(err, ENOMEM, "out of memory");
        memcpy(p->stdin_data, json_object_get_string(in), p->stdin_len);
    }
    json_object *net = hj_get(doc, "network");
    if (net != NULL && hull_policy_net_from_json(net, p, err) < 0)
        return -1;
    return validate(p, "limits.", err);
}

int hull_policy_from_json(const char *json, size_t len, struct hull_policy *p, hull_error *err)
{
    json_object *doc = NULL;
    if (hj_parse(json, len, "request", &doc, err) < 0)
        return -1;
    int ret = policy_from_doc(doc, p, err);
    json_object_put(doc);
    return ret;
}
