/* hulld's routes: a request's URL to what it names (http_route.c), for
 * http.c, which authenticates and dispatches it. */
#ifndef HULLD_HTTP_ROUTE_H
#define HULLD_HTTP_ROUTE_H

#include <stdbool.h>

enum route_kind {
    R_HEALTH,
    R_METRICS,
    R_OPENAPI,
    R_AUDIT,
    R_RUNS,
    R_RUN,
    R_SANDBOXES,
    R_SANDBOX,
    R_SBX_ACTION,
    R_SBX_FILE,
    R_SBX_FS,
    R_SBX_PROCS,
    R_SBX_PORTS,
    R_IMAGES,
    R_IMAGE,
    R_NETWORKS,
    R_NODES,
    R_NODE_DRAIN,
    R_CLUSTER_RECEIVE,
    R_TEMPLATES,
    R_TEMPLATE,
};

struct route {
    enum route_kind kind;
    const char *allow; /* methods, as the Allow header lists them */
    bool public;       /* no token needed */
    bool admin_writes; /* a state-changing method needs an admin token */
    char id[64];
    char action[16];
    const char *file; /* into the URL: a sandbox file, or an image reference */
    bool raw_body;    /* any bytes, not JSON (a file, a process's stdin) */
};

/* url's route into rt: 0, or -1 for none (404). */
int http_route(const char *url, struct route *rt);

#endif
