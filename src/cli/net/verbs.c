/* hull network create/list/inspect/remove/prune. (Owner: netcore; stub.) */
#include <errno.h>
#include <stdio.h>

#include "net_cli.h"

static int todo(const char *verb)
{
    fprintf(stderr, "hull: network %s: not implemented yet\n", verb);
    return 1;
}

int net_create(int argc, char **argv)
{
    return todo("create");
}
int net_list(int argc, char **argv)
{
    return todo("list");
}
int net_inspect(int argc, char **argv)
{
    return todo("inspect");
}
int net_remove(int argc, char **argv)
{
    return todo("remove");
}
int net_prune(int argc, char **argv)
{
    return todo("prune");
}
