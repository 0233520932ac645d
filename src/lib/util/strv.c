/* NULL-terminated vectors of strings (argv, env, lists read from JSON). */
#include <stdlib.h>
#include <string.h>

#include "util/strv.h"

void hull_strv_free(char **v)
{
    if (v == NULL)
        return;
    for (char **p = v; *p; p++)
        free(*p);
    free(v);
}

size_t hull_strv_len(char *const *v)
{
    size_t n = 0;
    while (v && v[n])
        n++;
    return n;
}

char **hull_strv_dup(char *const *v)
{
    size_t n = hull_strv_len(v);
    char **r = calloc(n + 1, sizeof(char *));
    if (r == NULL)
        return NULL;
    for (size_t i = 0; i < n; i++) {
        r[i] = strdup(v[i]);
        if (r[i] == NULL) {
            hull_strv_free(r);
            return NULL;
        }
    }
    return r;
}

int hull_strv_append(char ***v, const char *s)
{
    size_t n = hull_strv_len(*v);
    char **nv = realloc(*v, (n + 2) * sizeof(char *));
    if (nv == NULL)
        return -1;
    *v = nv;
    nv[n] = strdup(s);
    nv[n + 1] = NULL;
    return nv[n] ? 0 : -1;
}
