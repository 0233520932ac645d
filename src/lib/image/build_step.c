/* One instruction of a build: substitution, its cache key, and either the
 * cached result or the work (config changes, or files changed in an
 * overlay of the image so far, made into a layer). */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <linux/magic.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <unistd.h>

#include "image/build_internal.h"
#include "util/clock.h"
#include "util/error.h"
#include "util/fs.h"
#include "util/json.h"
#include "util/log.h"
#include "util/strv.h"

/* What a step will do, worked out before the cache is asked. */
struct step {
    struct cf_instr *in;
    char *canon;      /* the instruction after substitution: part of the key */
    char *created_by; /* for the history */
    char **words;     /* substituted arguments */
    char **argv;      /* RUN, CMD, ENTRYPOINT */
    char **env;       /* RUN */
    char *path;       /* WORKDIR: absolute */
    struct build_copy copy;
    char **sources;
    char *dest;
    bool files; /* changes files (may make a layer) */
};

static void step_free(struct step *st)
{
    free(st->canon);
    free(st->created_by);
    hull_strv_free(st->words);
    hull_strv_free(st->argv);
    hull_strv_free(st->env);
    free(st->path);
    hull_strv_free(st->sources);
    free(st->dest);
}

/* ---- the config document ---- */

static json_object *cfg(struct builder *b)
{
    json_object *c = hj_get(b->config, "config");
    if (c == NULL || !json_object_is_type(c, json_type_object)) {
        c = json_object_new_object();
        json_object_object_add(b->config, "config", c);
    }
    return c;
}

static const char *cfg_string(struct builder *b, const char *key)
{
    json_object *v = hj_get(cfg(b), key);
    return v && json_object_is_type(v, json_type_string) ? json_object_get_string(v) : NULL;
}

static char **cfg_strv(struct builder *b, const char *key)
{
    json_object *v = hj_get(cfg(b), key);
    char **out = calloc(1, sizeof(char *));
    if (out == NULL || v == NULL || !json_object_is_type(v, json_type_array))
        return out;
    for (size_t i = 0; i < json_object_array_length(v); i++) {
        json_object *e = json_object_array_get_idx(v, i);
        if (json_object_is_type(e, json_type_string) &&
            hull_strv_append(&out, json_object_get_string(e)) < 0) {
            hull_strv_free(out);
            return NULL;
        }
    }
    return out;
}

static json_object *json_strv(char *const *v)
{
    json_object *a = json_object_new_array();
    for (size_t i = 0; v && v[i]; i++)
        json_object_array_add(a, json_object_new_string(v[i]));
    return a;
}

/* "K=V" into a vector, replacing K's earlier value. */
static int strv_set(char ***v, const char *k, const char *val)
{
    size_t kl = strlen(k);
    cleanup_free char *kv = NULL;
    if (asprintf(&kv, "%s=%s", k, val) < 0)
        return -1;
    for (size_t i = 0; *v && (*v)[i]; i++)
        if (strncmp((*v)[i], k, kl) == 0 && (*v)[i][kl] == '=') {
            free((*v)[i]);
            (*v)[i] = steal_ptr(&kv);
            return 0;
        }
    return hull_strv_append(v, kv);
}

/* ---- substitution ---- */

static int words_of(struct builder *b, struct cf_instr *in, bool split, char ***out,
                    hull_error *err)
{
    cleanup_strv char **env = cfg_strv(b, "Env");
    if (env == NULL)
        return hull_error_set(err, ENOMEM, "out of memory");
    struct cf_vars vars = {{b->args, env}};
    return cf_words(in->args, &vars, split, out, err);
}

/* "K=V K2=V2" or the legacy "K V W" (K = "V W") of ENV and LABEL: pairs
 * k, v, k, v, ... */
static int pairs_of(struct builder *b, struct cf_instr *in, char ***out, hull_error *err)
{
    cleanup_strv char **w = NULL;
    if (words_of(b, in, true, &w, err) < 0)
        return -1;
    cleanup_strv char **pairs = calloc(1, sizeof(char *));
    if (pairs == NULL)
        return hull_error_set(err, ENOMEM, "out of memory");
    if (w[0] && strchr(w[0], '=') == NULL) {
        /* Legacy: the key, then the rest of the line as one value. */
        size_t k = strcspn(in->args, " \t");
        if (in->args[k] == '\0')
            return hull_error_set(err, EINVAL, "%s %s: needs a value (%s KEY=VALUE)", in->keyword,
                                  in->args, in->keyword);
        cleanup_strv char **ws = NULL;
        cleanup_strv char **env = cfg_strv(b, "Env");
        struct cf_vars vars = {{b->args, env}};
        if (cf_words(in->args + k, &vars, false, &ws, err) < 0)
            return -1;
        if (hull_strv_append(&pairs, w[0]) < 0 || hull_strv_append(&pairs, ws[0]) < 0)
            return hull_error_set(err, ENOMEM, "out of memory");
    } else {
        for (size_t i = 0; w[i]; i++) {
            char *eq = strchr(w[i], '=');
            if (eq == NULL || eq == w[i])
                return hull_error_set(err, EINVAL, "%s: %s: must be KEY=VALUE", in->keyword, w[i]);
            *eq = '\0';
            if (hull_strv_append(&pairs, w[i]) < 0 || hull_strv_append(&pairs, eq + 1) < 0)
                return hull_error_set(err, ENOMEM, "out of memory");
        }
    }
    *out = steal_ptr(&pairs);
    return 0;
}

static char *joined(char *const *v, const char *sep)
{
    size_t len = 1;
    for (size_t i = 0; v && v[i]; i++)
        len += strlen(v[i]) + strlen(sep);
    char *s = calloc(1, len);
    for (size_t i = 0; s && v && v[i]; i++) {
        if (i)
            strcat(s, sep);
        strcat(s, v[i]);
    }
    return s;
}

/* An absolute, clean path: relative ones are under the WORKDIR. */
static int abs_path(struct builder *b, const char *p, char **out, hull_error *err)
{
    const char *wd = cfg_string(b, "WorkingDir");
    cleanup_free char *joined_path = NULL;
    if (asprintf(&joined_path, "%s/%s", p[0] == '/' ? "" : (wd && *wd ? wd : ""), p) < 0)
        return hull_error_set(err, ENOMEM, "out of memory");
    char clean[PATH_MAX];
    if (hull_path_clean(joined_path, clean, sizeof(clean)) < 0)
        return hull_error_set(err, EINVAL, "%s: climbs above /", p);
    return (*out = strdup(clean)) ? 0 : hull_error_set(err, ENOMEM, "out of memory");
}

/* ---- preparing each kind of step ---- */

static int prep_run(struct builder *b, struct step *st, hull_error *err)
{
    struct cf_instr *in = st->in;
    if (in->json) {
        st->argv = hull_strv_dup(in->json);
    } else {
        char *const sh[] = {"/bin/sh", "-c", in->args, NULL};
        st->argv = hull_strv_dup(sh);
    }
    /* Docker's rule: ARG values are the command's environment, below ENV. */
    st->env = cfg_strv(b, "Env");
    if (st->argv == NULL || st->env == NULL)
        return hull_error_set(err, ENOMEM, "out of memory");
    for (size_t i = 0; b->args && b->args[i]; i++) {
        size_t kl = strcspn(b->args[i], "=");
        bool in_env = false;
        for (size_t j = 0; st->env[j] && !in_env; j++)
            in_env = strncmp(st->env[j], b->args[i], kl + 1) == 0;
        if (!in_env && hull_strv_append(&st->env, b->args[i]) < 0)
            return hull_error_set(err, ENOMEM, "out of memory");
    }
    bool has_path = false;
    for (size_t j = 0; st->env[j]; j++)
        has_path |= strncmp(st->env[j], "PATH=", 5) == 0;
    if (!has_path &&
        hull_strv_append(&st->env,
                         "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin") < 0)
        return hull_error_set(err, ENOMEM, "out of memory");
    cleanup_json json_object *a = json_strv(st->argv), *e = json_strv(st->env);
    const char *wd = cfg_string(b, "WorkingDir"), *user = cfg_string(b, "User");
    if (asprintf(&st->canon, "RUN %s env=%s user=%s cwd=%s net=%d", hj_to_string(a),
                 hj_to_string(e), user ? user : "", wd ? wd : "", b->o->network) < 0 ||
        (in->json ? asprintf(&st->created_by, "RUN %s", hj_to_string(a))
                  : asprintf(&st->created_by, "/bin/sh -c %s", in->args)) < 0)
        return hull_error_set(err, ENOMEM, "out of memory");
    st->files = true;
    return 0;
}

static bool is_url(const char *s)
{
    return strstr(s, "://") != NULL || strncmp(s, "git@", 4) == 0;
}

static int parse_chown(const char *v, struct build_copy *c, hull_error *err)
{
    char *end;
    errno = 0;
    unsigned long u = strtoul(v, &end, 10);
    unsigned long g = u;
    if (end != v && *end == ':')
        g = strtoul(end + 1, &end, 10);
    if (end == v || *end != '\0' || errno || u > UINT32_MAX - 1 || g > UINT32_MAX - 1)
        return hull_error_set(err, EINVAL,
                              "--chown=%s: hull image build takes numeric UID[:GID] only", v);
    c->uid = (uid_t)u;
    c->gid = (gid_t)g;
    return 0;
}

static int prep_copy(struct builder *b, struct step *st, hull_error *err)
{
    struct cf_instr *in = st->in;
    struct build_copy *c = &st->copy;
    *c = (struct build_copy){
        .context_fd = b->context_fd, .ignore = b->ignore, .root_fd = -1, .add = in->op == CF_ADD};
    for (size_t i = 0; in->flags && in->flags[i]; i++) {
        const char *f = in->flags[i];
        if (strncmp(f, "--chown=", 8) == 0 && parse_chown(f + 8, c, err) < 0)
            return -1;
        if (strncmp(f, "--chmod=", 8) == 0) {
            char *end;
            unsigned long m = strtoul(f + 8, &end, 8);
            if (*end || end == f + 8 || m > 07777)
                return hull_error_set(err, EINVAL, "%s: an octal mode like 0644", f);
            c->chmod = (mode_t)m | 010000; /* the flag bit says "given" */
        }
    }
    if (in->json)
        st->words = hull_strv_dup(in->json);
    else if (words_of(b, in, true, &st->words, err) < 0)
        return -1;
    size_t n = hull_strv_len(st->words);
    if (n < 2)
        return hull_error_set(err, EINVAL, "%s needs a source and a destination", in->keyword);
    for (size_t i = 0; i + 1 < n; i++) {
        if (is_url(st->words[i]))
            return hull_error_set(err, ENOTSUP,
                                  "%s %s: URLs are not supported (builds have no network)",
                                  in->keyword, st->words[i]);
        if (hull_strv_append(&st->sources, st->words[i]) < 0)
            return hull_error_set(err, ENOMEM, "out of memory");
    }
    const char *d = st->words[n - 1];
    size_t dl = strlen(d);
    bool dir = n > 2 || (dl && d[dl - 1] == '/') || strcmp(d, ".") == 0;
    cleanup_free char *dabs = NULL;
    if (abs_path(b, d, &dabs, err) < 0)
        return -1;
    if (asprintf(&st->dest, "%s%s", dabs, dir && strcmp(dabs, "/") ? "/" : "") < 0)
        return hull_error_set(err, ENOMEM, "out of memory");
    c->sources = st->sources;
    c->dest = st->dest;
    char digest[65];
    if (build_copy_digest(c, digest, err) < 0)
        return -1;
    cleanup_free char *srcs = joined(st->sources, " ");
    if (srcs == NULL ||
        asprintf(&st->canon, "%s chown=%u:%u chmod=%o %s %s -> %s", in->keyword, (unsigned)c->uid,
                 (unsigned)c->gid, (unsigned)c->chmod, digest, srcs, st->dest) < 0 ||
        asprintf(&st->created_by, "/bin/sh -c #(nop) %s %s:%.12s in %s ", in->keyword,
                 n > 2 ? "multi" : "file", digest, st->dest) < 0)
        return hull_error_set(err, ENOMEM, "out of memory");
    st->files = true;
    return 0;
}

static int prep_config(struct builder *b, struct step *st, hull_error *err)
{
    struct cf_instr *in = st->in;
    switch (in->op) {
    case CF_ENV:
    case CF_LABEL:
        if (pairs_of(b, in, &st->words, err) < 0)
            return -1;
        break;
    case CF_EXPOSE:
        if (words_of(b, in, true, &st->words, err) < 0)
            return -1;
        break;
    case CF_USER:
    case CF_WORKDIR:
        if (words_of(b, in, false, &st->words, err) < 0)
            return -1;
        if (st->words[0][0] == '\0')
            return hull_error_set(err, EINVAL, "%s needs an argument", in->keyword);
        if (in->op == CF_WORKDIR) {
            if (abs_path(b, st->words[0], &st->path, err) < 0)
                return -1;
            st->files = true;
        }
        break;
    case CF_CMD:
    case CF_ENTRYPOINT:
        if (in->json) {
            st->argv = hull_strv_dup(in->json);
        } else {
            char *const sh[] = {"/bin/sh", "-c", in->args, NULL};
            st->argv = hull_strv_dup(sh);
        }
        if (st->argv == NULL)
            return hull_error_set(err, ENOMEM, "out of memory");
        break;
    default:
        return hull_error_set(err, EINVAL, "%s: not a config instruction", in->keyword);
    }
    cleanup_free char *w = NULL;
    if (st->argv) {
        cleanup_json json_object *a = json_strv(st->argv);
        w = strdup(hj_to_string(a));
    } else {
        w = st->path ? strdup(st->path)
                     : joined(st->words, in->op == CF_ENV || in->op == CF_LABEL ? "\x1f" : " ");
    }
    if (w == NULL || asprintf(&st->canon, "%s %s", in->keyword, w) < 0 ||
        asprintf(&st->created_by, "/bin/sh -c #(nop) %s %s", in->keyword, st->argv ? w : in->args) <
            0)
        return hull_error_set(err, ENOMEM, "out of memory");
    return 0;
}

/* ---- doing them ---- */

static int apply_config(struct builder *b, struct step *st, hull_error *err)
{
    json_object *c = cfg(b);
    struct cf_instr *in = st->in;
    switch (in->op) {
    case CF_ENV: {
        cleanup_strv char **env = cfg_strv(b, "Env");
        for (size_t i = 0; env && st->words[i]; i += 2)
            if (strv_set(&env, st->words[i], st->words[i + 1]) < 0)
                return hull_error_set(err, ENOMEM, "out of memory");
        if (env == NULL)
            return hull_error_set(err, ENOMEM, "out of memory");
        json_object_object_add(c, "Env", json_strv(env));
        break;
    }
    case CF_LABEL: {
        json_object *l = hj_get(c, "Labels");
        if (l == NULL || !json_object_is_type(l, json_type_object)) {
            l = json_object_new_object();
            json_object_object_add(c, "Labels", l);
        }
        for (size_t i = 0; st->words[i]; i += 2)
            json_object_object_add(l, st->words[i], json_object_new_string(st->words[i + 1]));
        break;
    }
    case CF_EXPOSE: {
        json_object *p = hj_get(c, "ExposedPorts");
        if (p == NULL || !json_object_is_type(p, json_type_object)) {
            p = json_object_new_object();
            json_object_object_add(c, "ExposedPorts", p);
        }
        for (size_t i = 0; st->words[i]; i++) {
            const char *w = st->words[i];
            char *end;
            unsigned long port = strtoul(w, &end, 10);
            if (end == w || port == 0 || port > 65535 ||
                (*end && strcmp(end, "/tcp") && strcmp(end, "/udp") && strcmp(end, "/sctp")))
                return hull_error_set(err, EINVAL, "EXPOSE %s: must be PORT[/tcp|udp|sctp]", w);
            char key[32];
            snprintf(key, sizeof(key), "%lu%s", port, *end ? end : "/tcp");
            json_object_object_add(p, key, json_object_new_object());
        }
        break;
    }
    case CF_USER:
        json_object_object_add(c, "User", json_object_new_string(st->words[0]));
        break;
    case CF_WORKDIR:
        json_object_object_add(c, "WorkingDir", json_object_new_string(st->path));
        break;
    case CF_CMD:
        json_object_object_add(c, "Cmd", json_strv(st->argv));
        break;
    case CF_ENTRYPOINT:
        json_object_object_add(c, "Entrypoint", json_strv(st->argv));
        /* Docker: a new ENTRYPOINT drops the CMD inherited from the base. */
        if (!b->cmd_set)
            json_object_object_del(c, "Cmd");
        break;
    default:
        break;
    }
    return 0;
}

/* The layers so far as a struct image for rootfs.c (borrowed pointers). */
static void image_view(struct builder *b, struct image *img)
{
    memset(img, 0, sizeof(*img));
    img->manifest.layers = b->layers;
    img->manifest.n_layers = b->n_layers;
    img->config.diff_ids = b->diff_ids;
    img->config.n_diff_ids = b->n_layers;
}

static int files_action(struct builder *b, struct step *st, const char *mnt, int rootfd,
                        hull_error *err)
{
    switch (st->in->op) {
    case CF_RUN: {
        char state[4200];
        snprintf(state, sizeof(state), "%s/state", b->tmp);
        const char *wd = cfg_string(b, "WorkingDir"), *user = cfg_string(b, "User");
        struct build_run r = {.rootfs = mnt,
                              .state = state,
                              .argv = st->argv,
                              .env = st->env,
                              .cwd = wd && *wd ? wd : "/",
                              .user = user && *user ? user : NULL,
                              .network = b->o->network,
                              .id_seq = ++b->n_run};
        if (build_run_command(&r, err) < 0)
            return -1;
        if (r.exit_code != 0) {
            cleanup_free char *text = cf_instr_text(st->in);
            return hull_error_set(err, ECHILD, "step %d/%d: %s: exit status %d", b->step,
                                  b->n_steps, text ? text : "RUN", r.exit_code);
        }
        return 0;
    }
    case CF_COPY:
    case CF_ADD:
        st->copy.root_fd = rootfd;
        return build_copy_run(&st->copy, err);
    case CF_WORKDIR: {
        int fd = hull_resolve_in_root(rootfd, st->path, HULL_RESOLVE_MKDIR | HULL_RESOLVE_DIRECTORY,
                                      err);
        if (fd < 0)
            return hull_error_prefix(err, "WORKDIR %s", st->path);
        close(fd);
        return 0;
    }
    default:
        return 0;
    }
}

/* Mount the image so far read-write over a fresh upper dir, act, and make
 * what changed a layer (none when nothing did). */
static int files_step(struct builder *b, struct step *st, bool *layer, hull_error *err)
{
    char dir[4200], upper[4300], work[4300], mnt[4300];
    snprintf(dir, sizeof(dir), "%s/step-%d", b->tmp, b->step);
    snprintf(upper, sizeof(upper), "%s/upper", dir);
    snprintf(work, sizeof(work), "%s/work", dir);
    snprintf(mnt, sizeof(mnt), "%s/mnt", dir);
    if (hull_mkdir_p(upper, 0755, err) < 0 || hull_mkdir_p(work, 0700, err) < 0 ||
        hull_mkdir_p(mnt, 0755, err) < 0)
        return -1;
    struct image img;
    image_view(b, &img);
    int r;
    if (b->n_layers == 0)
        r = mount(upper, mnt, NULL, MS_BIND, NULL) < 0 ? hull_error_errno(err, "bind %s", mnt) : 0;
    else
        r = image_unpack_all(b->s, &img, err) < 0
                ? -1
                : image_rootfs_mount(b->s, &img, mnt, upper, work, false, err);
    /* rootfs.c falls back to a flattened copy where overlayfs refuses: in
     * the upper dir, that copy would become the step's layer. */
    struct statfs sf;
    if (r == 0 && b->n_layers > 0 && (statfs(mnt, &sf) < 0 || sf.f_type != OVERLAYFS_SUPER_MAGIC)) {
        umount2(mnt, MNT_DETACH);
        r = hull_error_set(err, ENOTSUP,
                           "overlayfs refused the store's layers (%s): builds need it", upper);
    }
    if (r == 0) {
        cleanup_close int rootfd = open(mnt, O_PATH | O_DIRECTORY | O_CLOEXEC);
        r = rootfd < 0 ? hull_error_errno(err, "open %s", mnt)
                       : files_action(b, st, mnt, rootfd, err);
        hull_closep(&rootfd);
        if (umount2(mnt, 0) < 0 && umount2(mnt, MNT_DETACH) < 0 && r == 0)
            r = hull_error_errno(err, "umount %s", mnt);
    }
    *layer = false;
    if (r == 0 && hull_dir_empty(upper) == 0) {
        struct image_desc d = {0};
        char *diff_id = NULL;
        if (image_layer_write(b->s, upper, true, b->o->compression, &d, &diff_id, err) < 0)
            r = hull_error_prefix(err, "making the layer");
        else {
            struct image_desc *l = realloc(b->layers, (b->n_layers + 1) * sizeof(*l));
            char **ids = l ? realloc(b->diff_ids, (b->n_layers + 1) * sizeof(*ids)) : NULL;
            if (l)
                b->layers = l;
            if (ids)
                b->diff_ids = ids;
            if (l == NULL || ids == NULL) {
                image_desc_free(&d);
                free(diff_id);
                r = hull_error_set(err, ENOMEM, "out of memory");
            } else {
                b->layers[b->n_layers] = d;
                b->diff_ids[b->n_layers++] = diff_id;
                *layer = true;
            }
        }
    }
    char *slash = strrchr(dir, '/');
    *slash = '\0';
    cleanup_close int parent = open(dir, O_PATH | O_DIRECTORY | O_CLOEXEC);
    *slash = '/';
    hull_error e = NULL;
    if (parent < 0 || hull_rm_rf_at(parent, slash + 1, &e) < 0)
        hull_warn("image build: cleanup of %s: %s", dir, e ? hull_error_msg(e) : "open failed");
    hull_error_free(&e);
    return r;
}

static int add_history(struct builder *b, const char *created_by, bool layer)
{
    char now[64];
    hull_rfc3339_now(now, sizeof(now));
    json_object *h = hj_get(b->config, "history");
    if (h == NULL || !json_object_is_type(h, json_type_array)) {
        h = json_object_new_array();
        json_object_object_add(b->config, "history", h);
    }
    json_object *e = json_object_new_object();
    json_object_object_add(e, "created", json_object_new_string(now));
    json_object_object_add(e, "created_by", json_object_new_string(created_by));
    if (!layer)
        json_object_object_add(e, "empty_layer", json_object_new_boolean(true));
    json_object_array_add(h, e);
    json_object_object_add(b->config, "created", json_object_new_string(now));
    return 0;
}

static int use_cache(struct builder *b, struct build_cache_entry *ce, hull_error *err)
{
    if (ce->has_layer) {
        struct image_desc *l = realloc(b->layers, (b->n_layers + 1) * sizeof(*l));
        if (l)
            b->layers = l;
        char **ids = l ? realloc(b->diff_ids, (b->n_layers + 1) * sizeof(*ids)) : NULL;
        if (ids == NULL)
            return hull_error_set(err, ENOMEM, "out of memory");
        b->diff_ids = ids;
        b->layers[b->n_layers] = ce->layer;
        memset(&ce->layer, 0, sizeof(ce->layer));
        b->diff_ids[b->n_layers++] = steal_ptr(&ce->diff_id);
    }
    json_object_put(b->config);
    b->config = steal_ptr(&ce->config);
    return 0;
}

static int cached_step(struct builder *b, struct step *st, hull_error *err)
{
    char key[65];
    cleanup_free char *keytext = NULL;
    if (asprintf(&keytext, "%s\n%s", b->state, st->canon) < 0)
        return hull_error_set(err, ENOMEM, "out of memory");
    build_sha256_hex(keytext, strlen(keytext), key);
    struct build_cache_entry ce = {0};
    if (!b->o->no_cache && build_cache_get(b->s, key, &ce) == 1) {
        int r = use_cache(b, &ce, err);
        build_cache_entry_free(&ce);
        if (r < 0)
            return -1;
        builder_log(b, "--> Using cache %.12s\n--> %.12s\n", key, key);
        memcpy(b->state, key, sizeof(key));
        return 0;
    }
    bool layer = false;
    if (st->files && files_step(b, st, &layer, err) < 0)
        return -1;
    if (st->in->op != CF_RUN && st->in->op != CF_COPY && st->in->op != CF_ADD &&
        apply_config(b, st, err) < 0)
        return -1;
    add_history(b, st->created_by, layer);
    ce.has_layer = layer;
    if (layer) {
        ce.layer = b->layers[b->n_layers - 1];
        ce.diff_id = b->diff_ids[b->n_layers - 1];
    }
    ce.config = b->config;
    hull_error e = NULL;
    if (build_cache_put(b->s, key, &ce, &e) < 0) {
        hull_warn("image build: cache: %s", hull_error_msg(e));
        hull_error_free(&e);
    }
    builder_log(b, "--> %.12s\n", key);
    memcpy(b->state, key, sizeof(key));
    return 0;
}

/* ---- ARG and FROM ---- */

static int step_arg(struct builder *b, struct cf_instr *in, bool pre_from, hull_error *err)
{
    cleanup_strv char **w = NULL;
    cleanup_strv char **env = pre_from ? calloc(1, sizeof(char *)) : cfg_strv(b, "Env");
    struct cf_vars vars = {{pre_from ? b->global_args : b->args, env}};
    if (env == NULL || cf_words(in->args, &vars, true, &w, err) < 0)
        return env ? -1 : hull_error_set(err, ENOMEM, "out of memory");
    for (size_t i = 0; w[i]; i++) {
        char *eq = strchr(w[i], '=');
        if (eq)
            *eq = '\0';
        if (w[i][0] == '\0')
            return hull_error_set(err, EINVAL, "ARG: a name is missing");
        const char *val = builder_build_arg(b, w[i]);
        if (val == NULL)
            val = eq ? eq + 1 : NULL;
        if (val == NULL && !pre_from) {
            struct cf_vars g = {{b->global_args}};
            val = cf_var_get(&g, w[i]);
        }
        if (val == NULL)
            continue;
        if (strv_set(pre_from ? &b->global_args : &b->args, w[i], val) < 0)
            return hull_error_set(err, ENOMEM, "out of memory");
        if (!pre_from) {
            /* ARG values reach RUN's environment: they belong to the chain. */
            cleanup_free char *t = NULL;
            if (asprintf(&t, "%s\nARG %s=%s", b->state, w[i], val) < 0)
                return hull_error_set(err, ENOMEM, "out of memory");
            build_sha256_hex(t, strlen(t), b->state);
        }
    }
    return 0;
}

static int from_image(struct builder *b, const char *name, hull_error *err)
{
    cleanup_image struct image img = {0};
    if (image_load(b->s, name, NULL, &img, err) < 0 || image_unpack_all(b->s, &img, err) < 0)
        return -1;
    cleanup_free char *text = NULL;
    size_t len = 0;
    if (image_blob_read(b->s, img.manifest.config.digest, HULL_IMAGE_CONFIG_MAX, &text, &len, err) <
            0 ||
        hj_parse(text, len, "config", &b->config, err) < 0)
        return -1;
    if (img.manifest.n_layers != img.config.n_diff_ids)
        return hull_error_set(err, EINVAL, "%s: %zu layers but %zu diff_ids", name,
                              img.manifest.n_layers, img.config.n_diff_ids);
    b->layers = calloc(img.manifest.n_layers + 1, sizeof(*b->layers));
    b->diff_ids = calloc(img.manifest.n_layers + 1, sizeof(char *));
    if (b->layers == NULL || b->diff_ids == NULL)
        return hull_error_set(err, ENOMEM, "out of memory");
    for (size_t i = 0; i < img.manifest.n_layers; i++) {
        struct image_desc *d = &img.manifest.layers[i];
        b->layers[i].media_type = strdup(d->media_type);
        b->layers[i].digest = strdup(d->digest);
        b->layers[i].size = d->size;
        b->diff_ids[i] = strdup(img.config.diff_ids[i]);
        b->n_layers++;
        if (!b->layers[i].media_type || !b->layers[i].digest || !b->diff_ids[i])
            return hull_error_set(err, ENOMEM, "out of memory");
    }
    cleanup_free char *t = NULL;
    if (asprintf(&t, "FROM %s", img.manifest_digest) < 0)
        return hull_error_set(err, ENOMEM, "out of memory");
    build_sha256_hex(t, strlen(t), b->state);
    return 0;
}

static int step_from(struct builder *b, struct cf_instr *in, hull_error *err)
{
    cleanup_strv char **w = NULL;
    struct cf_vars vars = {{b->global_args}};
    if (cf_words(in->args, &vars, true, &w, err) < 0)
        return -1;
    size_t n = hull_strv_len(w);
    if (n != 1 && !(n == 3 && strcasecmp(w[1], "AS") == 0))
        return hull_error_set(err, EINVAL, "FROM %s: must be FROM IMAGE [AS NAME]", in->args);
    if (strcmp(w[0], "scratch") != 0)
        return from_image(b, w[0], err);
    const char *plat = image_host_platform();
    char os[32] = "linux", arch[32] = "amd64";
    sscanf(plat, "%31[^/]/%31[^/]", os, arch);
    b->config = json_object_new_object();
    json_object_object_add(b->config, "architecture", json_object_new_string(arch));
    json_object_object_add(b->config, "os", json_object_new_string(os));
    json_object_object_add(b->config, "config", json_object_new_object());
    build_sha256_hex("FROM scratch", 12, b->state);
    return 0;
}

int builder_step(struct builder *b, struct cf_instr *in, bool pre_from, hull_error *err)
{
    cleanup_free char *text = cf_instr_text(in);
    if (text == NULL)
        return hull_error_set(err, ENOMEM, "out of memory");
    if (!pre_from)
        builder_log(b, "STEP %d/%d: %s\n", b->step, b->n_steps, text);
    int r;
    struct step st = {.in = in};
    switch (in->op) {
    case CF_ARG:
        r = step_arg(b, in, pre_from, err);
        break;
    case CF_FROM:
        r = step_from(b, in, err);
        break;
    case CF_RUN:
        r = prep_run(b, &st, err) < 0 ? -1 : cached_step(b, &st, err);
        break;
    case CF_COPY:
    case CF_ADD:
        r = prep_copy(b, &st, err) < 0 ? -1 : cached_step(b, &st, err);
        break;
    default:
        r = prep_config(b, &st, err) < 0 ? -1 : cached_step(b, &st, err);
        /* Whether from the cache or not: a later ENTRYPOINT keeps this CMD. */
        if (in->op == CF_CMD)
            b->cmd_set = true;
        break;
    }
    step_free(&st);
    if (r < 0)
        return hull_error_prefix(err, "%s:%d", b->cf.name, in->line);
    return 0;
}
