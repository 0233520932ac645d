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
