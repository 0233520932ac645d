#include "util/watch_tree.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void watch_tree_init(struct watch_tree *t, const char *temp_prefix)
{
    memset(t, 0, sizeof(*t));
    t->root_wd = -1;
    t->temp_prefix = temp_prefix;
}

bool watch_tree_remember(struct watch_tree *t, int wd, const char *path)
{
    if (wd < 0 || wd > 1 << 20)
        return false;
    if ((size_t)wd >= t->n_paths) {
        size_t cap = (size_t)wd + 64;
        char **np = realloc(t->paths, cap * sizeof(*np));
        if (np == NULL)
            return false;
        memset(np + t->n_paths, 0, (cap - t->n_paths) * sizeof(*np));
        t->paths = np;
        t->n_paths = cap;
    }
    char *copy = strdup(path);
    if (copy == NULL)
        return false;
    if (t->paths[wd] == NULL)
        t->live++;
    free(t->paths[wd]);
    t->paths[wd] = copy;
    if (t->root_wd < 0)
        t->root_wd = wd;
    return true;
}

static const char *event_type(uint32_t mask)
{
    return mask & IN_CREATE       ? "create"
           : mask & IN_MODIFY     ? "modify"
           : mask & IN_DELETE     ? "delete"
           : mask & IN_MOVED_FROM ? "rename_from"
           : mask & IN_MOVED_TO   ? "rename_to"
                                  : NULL;
}

/* Forget the watches of path and of every directory below it. */
static void forget_below(struct watch_tree *t, const char *path)
{
    size_t len = strlen(path);
    for (size_t wd = 0; wd < t->n_paths; wd++) {
        const char *p = t->paths[wd];
        if (p == NULL || (int)wd == t->root_wd || strncmp(p, path, len) != 0 ||
            (p[len] != '\0' && p[len] != '/'))
            continue;
        free(t->paths[wd]);
        t->paths[wd] = NULL;
        t->live--;
    }
}

bool watch_tree_event(struct watch_tree *t, const struct inotify_event *ev, struct watch_news *n)
{
    n->path = NULL;
    n->dir = (ev->mask & IN_ISDIR) != 0;
    if (ev->mask & IN_Q_OVERFLOW) {
        n->type = "overflow";
        n->dir = false;
        return true;
    }
    if (ev->wd < 0 || (size_t)ev->wd >= t->n_paths || t->paths[ev->wd] == NULL)
        return false;
    const char *base = t->paths[ev->wd];
    if (ev->mask & IN_IGNORED) {
        free(t->paths[ev->wd]);
        t->paths[ev->wd] = NULL;
        if (--t->live == 0 || ev->wd == t->root_wd)
            t->ended = true;
        return false;
    }
    if (ev->mask & (IN_DELETE_SELF | IN_MOVE_SELF)) {
        /* The parent's watch tells of the ones below the root. */
        if (ev->wd != t->root_wd)
            return false;
        n->type = ev->mask & IN_DELETE_SELF ? "delete" : "rename_from";
        snprintf(n->buf, sizeof(n->buf), "%s", base);
        n->path = n->buf;
        n->dir = true;
        /* Moved: what happens in it now is no longer under the path that
         * was watched (a delete ends it with its IN_IGNORED). */
        if (ev->mask & IN_MOVE_SELF)
            t->ended = true;
        return true;
    }
    n->type = event_type(ev->mask);
    if (n->type == NULL)
        return false;
    if (ev->len && t->temp_prefix &&
        strncmp(ev->name, t->temp_prefix, strlen(t->temp_prefix)) == 0) {
        if (ev->mask & IN_MOVED_FROM)
            t->temp_cookie = ev->cookie;
        return false;
    }
    if ((ev->mask & IN_MOVED_TO) && ev->cookie && ev->cookie == t->temp_cookie)
        n->type = "create";
    snprintf(n->buf, sizeof(n->buf), "%s%s%s", base, strcmp(base, "/") ? "/" : "",
             ev->len ? ev->name : "");
    n->path = n->buf;
    /* A directory renamed away: its watches (its own and those below it)
     * would go on telling of it by its old path, wherever it went. A
     * rename within the tree watches it again by its new name. */
    if ((ev->mask & (IN_MOVED_FROM | IN_ISDIR)) == (IN_MOVED_FROM | IN_ISDIR))
        forget_below(t, n->buf);
    return true;
}

void watch_tree_free(struct watch_tree *t)
{
    for (size_t i = 0; i < t->n_paths; i++)
        free(t->paths[i]);
    free(t->paths);
    t->paths = NULL;
    t->n_paths = t->live = 0;
}
