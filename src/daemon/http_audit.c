/* The audit log's entries of API requests (http_audit.h). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "daemon.h"
#include "http_audit.h"
#include "util/error.h"
#include "util/log.h"
#include "util/utf8.h"

bool http_state_changing(const char *method)
{
    return strcmp(method, "GET") != 0 && strcmp(method, "HEAD") != 0;
}

/* An audit entry with the copies it points to: it may be written after
 * the request (and its caller) is gone. */
struct audit_due {
    struct hull_audit_entry e;
    char *path, *meth, *target;
    char grants[sizeof(((struct resp *)0)->grants)];
    struct hull_token_info tok;
};

/* What the log keeps of a request's path, method or target, in bytes. */
#define AUDIT_FIELD_MAX 1024

static void audit_free(struct audit_due *a)
{
    if (a == NULL)
        return;
    free(a->path);
    free(a->meth);
    free(a->target);
    free(a);
}

/* The entry of a state-changing request, or NULL (none is kept: a GET, or
 * no memory, logged). */
static struct audit_due *audit_entry(const struct caller *c, const char *rt_id, const char *method,
                                     const char *url, const struct resp *r)
{
    if (!http_state_changing(method))
        return NULL;
    struct audit_due *a = calloc(1, sizeof(*a));
    if (a == NULL) {
        hull_log(HULL_LOG_ERROR, "audit: out of memory");
        return NULL;
    }
    /* The method and path as sent may hold any byte: the log keeps valid
     * text, and at most AUDIT_FIELD_MAX bytes of each, since the log only
     * grows and anyone who reaches the socket is logged (a refused request
     * too). */
    a->path = hull_utf8_fix(url, strnlen(url, AUDIT_FIELD_MAX), NULL);
    a->meth = hull_utf8_fix(method, strnlen(method, AUDIT_FIELD_MAX), NULL);
    const char *t = r->target[0] ? r->target : (rt_id[0] ? rt_id : NULL);
    a->target = t ? hull_utf8_fix(t, strnlen(t, AUDIT_FIELD_MAX), NULL) : NULL;
    snprintf(a->grants, sizeof(a->grants), "%s", r->grants);
    if (c)
        a->tok = c->tok;
    a->e = (struct hull_audit_entry){
        .token = c ? a->tok.id : NULL,
        .tenant = c ? a->tok.tenant : NULL,
        .role = c ? hull_role_name(a->tok.role) : NULL,
        .method = a->meth ? a->meth : "?",
        .path = a->path ? a->path : "?",
        .target = a->target,
        .status = r->status,
        .outcome = r->code ? r->code : "ok",
        .grants = a->grants[0] ? a->grants : NULL,
    };
    return a;
}

static void audit_write(struct audit_due *a)
{
    hull_error e = NULL;
    if (a && hull_audit_append(hulld.store, &a->e, &e) < 0) {
        hull_log(HULL_LOG_ERROR, "%s", hull_error_msg(e));
        hull_error_free(&e);
    }
    audit_free(a);
}

void http_audit(const struct caller *c, const char *rt_id, const char *method, const char *url,
                const struct resp *r)
{
    audit_write(audit_entry(c, rt_id, method, url, r));
}

/* An answer with work after it (a run's record), and its audit entry. */
struct answer_after {
    struct audit_due *audit;
    void (*fn)(void *arg);
    void *arg;
};

static void answer_after_run(void *p)
{
    struct answer_after *a = p;
    audit_write(a->audit); /* first: readers wait for the record (fn) */
    a->fn(a->arg);
    free(a);
}

void http_audit_after(const struct caller *c, const char *rt_id, const char *method,
                      const char *url, struct resp *r)
{
    struct answer_after *a = malloc(sizeof(*a));
    if (a == NULL) {
        http_audit(c, rt_id, method, url, r);
        r->after(r->after_arg);
    } else {
        *a = (struct answer_after){audit_entry(c, rt_id, method, url, r), r->after, r->after_arg};
        after_post(answer_after_run, a);
    }
    r->after = NULL;
}
