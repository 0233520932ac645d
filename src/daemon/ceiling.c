/* Operator ceilings on what a request's "limits" may ask for (hulld
 * --max-limit NAME=VALUE). Without one, a tenant's run may ask for a
 * terabyte of memory or a day of wall time, and a few such runs take the
 * host. A request over a ceiling is refused by name (400), never cut down
 * quietly: the caller asked for something this server does not give. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "daemon.h"
#include "util/error.h"

enum ceiling_kind { C_DURATION, C_SIZE, C_COUNT, C_CPUS };

struct ceiling {
    const char *name; /* as in the request's "limits" */
    enum ceiling_kind kind;
    bool set;
    uint64_t max; /* ms, bytes or a count */
    double max_cpus;
    char text[32]; /* as the operator wrote it */
};

static struct ceiling ceilings[] = {
    {"cpu_time", C_DURATION, false, 0, 0, ""}, {"wall_time", C_DURATION, false, 0, 0, ""},
    {"memory", C_SIZE, false, 0, 0, ""},       {"output", C_SIZE, false, 0, 0, ""},
    {"tmp_size", C_SIZE, false, 0, 0, ""},     {"pids", C_COUNT, false, 0, 0, ""},
    {"open_files", C_COUNT, false, 0, 0, ""},  {"cpus", C_CPUS, false, 0, 0, ""},
};
#define N_CEILINGS (sizeof(ceilings) / sizeof(ceilings[0]))

/* Limit i of p (of a fresh policy: the default a request gets when it
 * names no such limit). */
static double limit_of(const struct hull_policy *d, size_t i)
{
    const double v[] = {(double)d->cpu_time_ms,  (double)d->wall_time_ms,
                        (double)d->memory_bytes, (double)d->output_bytes,
                        (double)d->tmp_bytes,    (double)d->pids,
                        (double)d->open_files,   d->cpus};
    return v[i];
}

/* v as this kind of limit reads: "268435456 bytes", "10000 ms", "64", "1.5". */
static const char *fmt_value(const struct ceiling *c, double v, char buf[48])
{
    if (c->kind == C_CPUS)
        snprintf(buf, 48, "%g", v);
    else
        snprintf(buf, 48, "%.0f%s", v,
                 c->kind == C_DURATION ? " ms"
                 : c->kind == C_SIZE   ? " bytes"
                                       : "");
    return buf;
}

static double max_of(const struct ceiling *c)
{
    return c->kind == C_CPUS ? c->max_cpus : (double)c->max;
}

static int parse_value(struct ceiling *c, const char *v)
{
    char *end;
    switch (c->kind) {
    case C_DURATION:
        return hull_parse_duration_ms(v, &c->max);
    case C_SIZE:
        return hull_parse_size(v, &c->max);
    case C_COUNT:
        errno = 0;
        c->max = strtoull(v, &end, 10);
        return (*v >= '0' && *v <= '9' && !*end && !errno && c->max > 0) ? 0 : -1;
    case C_CPUS:
        errno = 0;
        c->max_cpus = strtod(v, &end);
        return (*v >= '0' && *v <= '9' && !*end && !errno && c->max_cpus > 0) ? 0 : -1;
    }
    return -1;
}

int ceiling_add(const char *arg, hull_error *err)
{
    const char *eq = strchr(arg, '=');
    size_t n = eq ? (size_t)(eq - arg) : 0;
    struct ceiling *c = NULL;
    for (size_t i = 0; eq && i < N_CEILINGS; i++)
        if (strlen(ceilings[i].name) == n && strncmp(arg, ceilings[i].name, n) == 0)
            c = &ceilings[i];
    if (c == NULL)
        return hull_error_set(err, EINVAL,
                              "'%s': want NAME=VALUE, NAME one of cpu_time, wall_time, memory, "
                              "output, tmp_size, pids, open_files, cpus",
                              arg);
    const char *v = eq + 1;
    if (strlen(v) >= sizeof(c->text) || parse_value(c, v) < 0)
        return hull_error_set(err, EINVAL, "%s: '%s' is not a %s", c->name, v,
                              c->kind == C_DURATION ? "duration (like 30s)"
                              : c->kind == C_SIZE   ? "size (like 4G)"
                              : c->kind == C_COUNT  ? "count above 0"
                                                    : "number of CPUs above 0");
    /* A request that names no such limit gets the default: a ceiling under
     * it would refuse every such request. */
    struct hull_policy d;
    hull_policy_init(&d);
    size_t i = (size_t)(c - ceilings);
    double def = limit_of(&d, i);
    hull_policy_free(&d);
    c->set = true;
    snprintf(c->text, sizeof(c->text), "%s", v);
    char buf[48];
    if (max_of(c) < def)
        return hull_error_set(err, EINVAL,
                              "%s=%s: below the default a request gets when it names no %s (%s)",
                              c->name, v, c->name, fmt_value(c, def, buf));
    return 0;
}

int ceiling_check(const struct hull_policy *p, hull_error *err)
{
    for (size_t i = 0; i < N_CEILINGS; i++) {
        const struct ceiling *c = &ceilings[i];
        double asked = limit_of(p, i);
        if (!c->set || asked <= max_of(c))
            continue;
        char buf[48];
        return hull_error_set(err, EINVAL,
                              "limits.%s: %s is above what this server gives (hulld "
                              "--max-limit %s=%s)",
                              c->name, fmt_value(c, asked, buf), c->name, c->text);
    }
    return 0;
}
