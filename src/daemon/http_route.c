/* Routing: a request URL to the route it names (http_route.h). Only the
 * shape of the path is checked here; what the ids name, and who may use
 * them, is for the handlers and http.c. */
#include <stdio.h>
#include <string.h>

#include "http_route.h"

static bool segment(const char **p, char *out, size_t len)
{
    const char *s = *p;
    size_t n = strcspn(s, "/");
    if (n == 0 || n >= len)
        return false;
    memcpy(out, s, n);
    out[n] = '\0';
    *p = s + n + (s[n] == '/');
    return true;
}

/* /v1/images and /v1/images/{ref}: the reference is the rest of the path
 * (MHD has decoded it: "localhost%3A5000%2Fapp%3A1" and "localhost:5000/app:1"
 * are the same image). Reading is for any token, changing for an admin's. */
static int route_images(const char *p, struct route *rt)
{
    rt->admin_writes = true;
    if (*p == '\0') {
        rt->kind = R_IMAGES;
        rt->allow = "GET, POST";
        return 0;
    }
    if (p[1] == '\0')
        return -1;
    rt->kind = R_IMAGE;
    rt->allow = "GET, DELETE";
    rt->file = p + 1;
    /* The audit log's target: as much of the reference as fits. */
    snprintf(rt->id, sizeof(rt->id), "%s", rt->file);
    return 0;
}

int http_route(const char *url, struct route *rt)
{
    memset(rt, 0, sizeof(*rt));
    rt->allow = "GET";
    if (strcmp(url, "/healthz") == 0) {
        rt->kind = R_HEALTH;
        rt->public = true;
        return 0;
    }
    if (strcmp(url, "/metrics") == 0) {
        rt->kind = R_METRICS;
        return 0;
    }
    if (strncmp(url, "/v1/", 4) != 0)
        return -1;
    const char *p = url + 4;
    if (strcmp(p, "openapi.json") == 0) {
        rt->kind = R_OPENAPI;
        rt->public = true;
        return 0;
    }
    if (strcmp(p, "audit") == 0) {
        rt->kind = R_AUDIT;
        return 0;
    }
    if (strcmp(p, "networks") == 0) {
        rt->kind = R_NETWORKS;
        return 0;
    }
    if (strcmp(p, "nodes") == 0) {
        rt->kind = R_NODES;
        return 0;
    }
    if (strncmp(p, "nodes/", 6) == 0) { /* /v1/nodes/{name}/drain (cluster_drain.c) */
        const char *n = p + 6;
        rt->kind = R_NODE_DRAIN;
        rt->allow = "GET, POST";
        return segment(&n, rt->id, sizeof(rt->id)) && strcmp(n, "drain") == 0 ? 0 : -1;
    }
    if (strcmp(p, "cluster/receive") == 0) { /* signed by a node, no token (cluster_move.c) */
        rt->kind = R_CLUSTER_RECEIVE;
        rt->allow = "POST";
        rt->public = true;
        return 0;
    }
    if (strncmp(p, "images", 6) == 0 && (p[6] == '\0' || p[6] == '/'))
        return route_images(p + 6, rt);
    if (strcmp(p, "templates") == 0 || strncmp(p, "templates/", 10) == 0) {
        /* /v1/templates[/{name}] (templates.c) */
        rt->kind = p[9] ? R_TEMPLATE : R_TEMPLATES;
        rt->allow = p[9] ? "GET, DELETE" : "GET, POST";
        const char *n = p + 10;
        if (p[9] && (!segment(&n, rt->id, sizeof(rt->id)) || *n != '\0' || n[-1] == '/'))
            return -1;
        return 0;
    }
    bool runs = strncmp(p, "runs", 4) == 0 && (p[4] == '\0' || p[4] == '/');
    bool sbx = strncmp(p, "sandboxes", 9) == 0 && (p[9] == '\0' || p[9] == '/');
    if (!runs && !sbx)
        return -1;
    p += runs ? 4 : 9;
    if (*p == '\0') {
        rt->kind = runs ? R_RUNS : R_SANDBOXES;
        rt->allow = "GET, POST";
        return 0;
    }
    p++;
    if (!segment(&p, rt->id, sizeof(rt->id)))
        return -1;
    if (*p == '\0' && p[-1] != '/') {
        rt->kind = runs ? R_RUN : R_SANDBOX;
        rt->allow = "GET, DELETE";
        return 0;
    }
    if (runs || !segment(&p, rt->action, sizeof(rt->action)))
        return -1;
    if (strcmp(rt->action, "files") == 0) {
        if (*p == '\0')
            return -1;
        rt->kind = R_SBX_FILE;
        rt->file = p;
        rt->allow = "GET, PUT";
        rt->raw_body = true;
        return 0;
    }
    if (strcmp(rt->action, "processes") == 0) {
        rt->kind = R_SBX_PROCS;
        rt->file = p - (p[-1] == '/'); /* "" or "/p-…[/verb]" */
        rt->allow = "GET, POST";
        size_t n = strlen(p);
        rt->raw_body = n > 6 && strcmp(p + n - 6, "/stdin") == 0;
        return 0;
    }
    if (strcmp(rt->action, "ports") == 0) {
        rt->kind = R_SBX_PORTS;
        rt->file = p - (p[-1] == '/'); /* "" or "/PORT" */
        rt->allow = strlen(rt->file) > 1 ? "GET, DELETE" : "GET, POST";
        return 0;
    }
    if (strcmp(rt->action, "fs") == 0) {
        rt->kind = R_SBX_FS;
        rt->file = p;
        rt->allow = "GET, PUT, POST, DELETE";
        return 0;
    }
    if (strcmp(rt->action, "metrics") == 0 && *p == '\0') {
        rt->kind = R_SBX_ACTION;
        rt->allow = "GET";
        return 0;
    }
    if (*p != '\0' || (strcmp(rt->action, "exec") != 0 && strcmp(rt->action, "pause") != 0 &&
                       strcmp(rt->action, "resume") != 0 && strcmp(rt->action, "timeout") != 0 &&
                       strcmp(rt->action, "migrate") != 0))
        return -1;
    rt->kind = R_SBX_ACTION;
    rt->allow = "POST";
    return 0;
}
