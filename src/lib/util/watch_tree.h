/* The paths of one recursive inotify watch, by watch descriptor, and what
 * an event of it means to a client: shared by hulld's watch of a container
 * sandbox (daemon/sbx_watch.c) and the guest agent's (guest/agent_watch.c),
 * so both streams tell the same story. Plain C and libc only: the agent is
 * built without libhull. */
#ifndef HULL_UTIL_WATCH_TREE_H
#define HULL_UTIL_WATCH_TREE_H

#include <limits.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/inotify.h>

struct watch_tree {
    char **paths; /* by wd */
    size_t n_paths;
    size_t live; /* watches not yet IN_IGNORED */
    int root_wd; /* -1 until the first remembered */
    bool ended;  /* the root, or every watch, is gone */
    /* Files named temp_prefix* are the writer's own temporaries: not news,
     * and their rename onto the real name is a "create". */
    const char *temp_prefix;
    uint32_t temp_cookie; /* the last rename away from such a name */
};

/* What a watch event is told as: its type ("create", "modify", "delete",
 * "rename_from", "rename_to", "overflow"), its path (none for "overflow")
 * and whether it names a directory. */
struct watch_news {
    const char *type;
    const char *path;
    bool dir;
    char buf[PATH_MAX + NAME_MAX + 2];
};

void watch_tree_init(struct watch_tree *t, const char *temp_prefix);
/* wd watches path; false when out of memory (it stays unwatched). */
bool watch_tree_remember(struct watch_tree *t, int wd, const char *path);
/* Whether ev is news to tell (filled into *n); an IN_IGNORED forgets its
 * watch and may end the tree. */
bool watch_tree_event(struct watch_tree *t, const struct inotify_event *ev, struct watch_news *n);
void watch_tree_free(struct watch_tree *t);

#endif
