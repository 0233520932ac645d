/* NULL-terminated vectors of strings: argv, env, and the lists parsers
 * read from JSON. Owned vectors are freed with hull_strv_free. */
#ifndef HULL_UTIL_STRV_H
#define HULL_UTIL_STRV_H

#include <stddef.h>

/* Free each string and the vector; NULL is a no-op. */
void hull_strv_free(char **v);
/* Number of strings before the NULL; 0 for NULL. */
size_t hull_strv_len(char *const *v);
/* A deep copy, or NULL out of memory. */
char **hull_strv_dup(char *const *v);
/* Append a copy of s to *v (which may be NULL); 0, or -1 out of memory. */
int hull_strv_append(char ***v, const char *s);

static inline void hull_strv_freep(char ***v)
{
    hull_strv_free(*v);
    *v = NULL;
}
/* The vector is freed when the variable goes out of scope. */
#define cleanup_strv __attribute__((cleanup(hull_strv_freep)))

#endif
