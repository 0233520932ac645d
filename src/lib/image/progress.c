/* The progress renderer hull-image hands to image_pull/image_push.
 *
 * On a terminal: one line per blob, redrawn in place (cursor up, clear line)
 * with a bar, at most ten times a second unless a state changes. Elsewhere
 * (logs, pipes): nothing while it runs, then one summary line, e.g.
 *   pulled REF: 5 layers, 103.2 MB in 2.1 s (2 already present)
 * Quiet: nothing at all.
 */
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "image/registry.h"

struct view_row {
    char what[24];
    char state[16];
    int64_t done, total;
};

struct image_progress_view {
    FILE *out;
    bool quiet, tty;
    struct view_row *rows;
    size_t n_rows, drawn;
    struct timespec start, last_draw;
    int64_t bytes;          /* transferred */
    size_t exists, mounted; /* already there */
};

static double since(const struct timespec *a, const struct timespec *b)
{
    return (double)(b->tv_sec - a->tv_sec) + (double)(b->tv_nsec - a->tv_nsec) / 1e9;
}

struct image_progress_view *image_progress_view_new(FILE *out, bool quiet)
{
    struct image_progress_view *v = calloc(1, sizeof(*v));
    if (!v)
        return NULL;
    v->out = out ? out : stderr;
    v->quiet = quiet;
    v->tty = !quiet && isatty(fileno(v->out));
    clock_gettime(CLOCK_MONOTONIC, &v->start);
    return v;
}

static void human(int64_t n, char *buf, size_t len)
{
    if (n >= 1000 * 1000 * 1000)
        snprintf(buf, len, "%.1f GB", (double)n / 1e9);
    else if (n >= 1000 * 1000)
        snprintf(buf, len, "%.1f MB", (double)n / 1e6);
    else if (n >= 1000)
        snprintf(buf, len, "%.1f kB", (double)n / 1e3);
    else
        snprintf(buf, len, "%lld B", (long long)n);
}

static void draw(struct image_progress_view *v)
{
    if (v->drawn)
        fprintf(v->out, "\033[%zuA", v->drawn);
    for (size_t i = 0; i < v->n_rows; i++) {
        struct view_row *r = &v->rows[i];
        char bar[31];
        int fill =
            r->total > 0 ? (int)(30 * (r->done > r->total ? r->total : r->done) / r->total) : 0;
        for (int k = 0; k < 30; k++)
            bar[k] = k < fill ? '=' : ' ';
        bar[30] = '\0';
        char d[32], t[32];
        human(r->done, d, sizeof(d));
        human(r->total, t, sizeof(t));
        fprintf(v->out, "\r\033[K%-12s %-10s [%s] %s / %s\n", r->what, r->state, bar, d, t);
    }
    v->drawn = v->n_rows;
    fflush(v->out);
}

/* Rows that are not layers: they show, but the summary counts layers. */
static bool not_layer(const char *what)
{
    return strcmp(what, "manifest") == 0 || strcmp(what, "layers") == 0 ||
           strcmp(what, "config") == 0;
}

void image_progress_view_cb(void *arg, const char *what, const char *state, int64_t done,
                            int64_t total)
{
    struct image_progress_view *v = arg;
    if (!v || v->quiet || !what || !state)
        return;
    struct view_row *r = NULL;
    for (size_t i = 0; i < v->n_rows && !r; i++)
        if (strcmp(v->rows[i].what, what) == 0)
            r = &v->rows[i];
    if (!r) {
        struct view_row *g = realloc(v->rows, (v->n_rows + 1) * sizeof(*g));
        if (!g)
            return;
        v->rows = g;
        r = &v->rows[v->n_rows++];
        memset(r, 0, sizeof(*r));
        snprintf(r->what, sizeof(r->what), "%s", what);
    }
    bool changed = strcmp(r->state, state) != 0;
    bool is_layer = !not_layer(what);
    if (changed && is_layer) {
        if (strcmp(state, "exists") == 0)
            v->exists++;
        else if (strcmp(state, "mounted") == 0)
            v->mounted++;
    }
    if (is_layer && (strcmp(state, "fetching") == 0 || strcmp(state, "pushing") == 0 ||
                     strcmp(state, "done") == 0)) {
        if (done > r->done)
            v->bytes += done - r->done;
    }
    snprintf(r->state, sizeof(r->state), "%s", state);
    r->done = done;
    r->total = total;
    if (!v->tty)
        return;
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    if (changed || since(&v->last_draw, &now) >= 0.1) {
        v->last_draw = now;
        draw(v);
    }
}

void image_progress_view_finish(struct image_progress_view *v, const char *summary)
{
    if (!v)
        return;
    if (!v->quiet && summary) {
        if (v->tty)
            draw(v);
        size_t layers = 0;
        for (size_t i = 0; i < v->n_rows; i++)
            if (!not_layer(v->rows[i].what))
                layers++;
        struct timespec now;
        clock_gettime(CLOCK_MONOTONIC, &now);
        char b[32];
        human(v->bytes, b, sizeof(b));
        fprintf(v->out, "%s: %zu layer%s, %s in %.1f s", summary, layers, layers == 1 ? "" : "s", b,
                since(&v->start, &now));
        if (v->exists && v->mounted)
            fprintf(v->out, " (%zu already present, %zu mounted)", v->exists, v->mounted);
        else if (v->exists)
            fprintf(v->out, " (%zu already present)", v->exists);
        else if (v->mounted)
            fprintf(v->out, " (%zu mounted)", v->mounted);
        fputc('\n', v->out);
        fflush(v->out);
    }
    free(v->rows);
    free(v);
}
