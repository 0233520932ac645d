/* The sandbox policy: the JSON of `POST /v1/runs`, of `hull sandbox run
 * --policy` and of queued jobs (src/lib/sandbox/policy.c), and the size and
 * duration strings its limits are written in. */
#include <string.h>

#include "fuzz.h"

/* A size or duration string: parsed, or refused with the output untouched. */
static void units(const uint8_t *data, size_t size)
{
    char s[64];
    if (size >= sizeof(s))
        return;
    memcpy(s, data, size);
    s[size] = '\0';
    uint64_t v = 0x5a5a5a5a;
    if (hull_parse_size(s, &v) < 0)
        FUZZ_CHECK(v == 0x5a5a5a5a);
    v = 0x5a5a5a5a;
    if (hull_parse_duration_ms(s, &v) < 0)
        FUZZ_CHECK(v == 0x5a5a5a5a);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    units(data, size);
    struct hull_policy p;
    hull_error e = NULL;
    hull_policy_init(&p);
    int rc = hull_policy_from_json((const char *)data, size, &p, &e);
    fuzz_check_error(rc, e);
    hull_error_free(&e);
    if (rc == 0) {
        /* A policy the JSON reader accepted is one the runner accepts:
         * it names a program, or an image whose Entrypoint/Cmd is one. */
        FUZZ_CHECK((p.argv && p.argv[0]) || p.image);
        rc = hull_policy_validate(&p, &e);
        fuzz_check_error(rc, e);
        FUZZ_CHECK(rc == 0);
    }
    hull_policy_free(&p);
    return 0;
}
