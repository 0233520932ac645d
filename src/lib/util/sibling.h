/* Companion programs (hull-image beside hull): found the same way by every
 * caller, so `hull image` and a run that needs an image pulled agree. */
#ifndef HULL_UTIL_SIBLING_H
#define HULL_UTIL_SIBLING_H

#include <stddef.h>

#include "util/error.h"

/* Path of program name: $env when set and non-empty (an explicit choice
 * wins), else beside the running program (a build tree), else in
 * ../lib/hull/ relative to it (where `make install` puts helpers beside
 * PREFIX/bin). ENOENT says where it looked. */
int hull_find_sibling(const char *name, const char *env, char *out, size_t len, hull_error *err);

#endif
