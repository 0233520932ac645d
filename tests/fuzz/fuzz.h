/* Shared by the libFuzzer targets in tests/fuzz (README.md there says how
 * to build and run them). A broken invariant aborts, which libFuzzer
 * reports as a crash with the input that caused it. */
#ifndef HULL_FUZZ_H
#define HULL_FUZZ_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include "hull.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define FUZZ_CHECK(cond)                                                                           \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "fuzz: invariant broken at %s:%d: %s\n", __FILE__, __LINE__, #cond);   \
            abort();                                                                               \
        }                                                                                          \
    } while (0)

/* A call that failed must say why: an error with a message, never a
 * silent -1 ("errors travel as hull_error"). */
static inline void fuzz_check_error(int rc, hull_error e)
{
    if (rc < 0) {
        FUZZ_CHECK(e != NULL);
        FUZZ_CHECK(hull_error_msg(e) != NULL && hull_error_msg(e)[0] != '\0');
    } else {
        FUZZ_CHECK(e == NULL);
    }
}

#endif
