/* The sandbox policy: the JSON of `POST /v1/runs`, of `hull sandbox run
 * --policy` and of queued jobs (src/lib/sandbox/policy.c), and the size and
 * duration strings its limits are written in, and the network's --egress
 * and --publish syntax. */
#include <string.h>

#include "fuzz.h"
#include "net/net.h"

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

/* --egress and --publish (net/parse.c): refused with the output untouched,
 * or accepted, and then egress written back as text parses to the same. */
static void net_syntax(const uint8_t *data, size_t size)
{
    char s[512];
    if (size >= sizeof(s))
        return;
    memcpy(s, data, size);
    s[size] = '\0';
    static struct hull_egress e, again, untouched;
    hull_error err = NULL;
    memset(&e, 0x5a, sizeof(e));
    memset(&untouched, 0x5a, sizeof(untouched));
    int rc = hull_egress_parse(s, &e, &err);
    fuzz_check_error(rc, err);
    hull_error_free(&err);
    if (rc < 0) {
        FUZZ_CHECK(memcmp(&e, &untouched, sizeof(e)) == 0);
    } else {
        char text[HULL_NET_MAX_EGRESS * 64];
        FUZZ_CHECK(hull_egress_format(&e, text, sizeof(text)) == 0);
        FUZZ_CHECK(hull_egress_parse(text, &again, &err) == 0);
        FUZZ_CHECK(again.all == e.all && again.n == e.n);
        FUZZ_CHECK(memcmp(again.rules, e.rules, e.n * sizeof(e.rules[0])) == 0);
    }
    struct hull_publish pub;
    rc = hull_publish_parse(s, &pub, &err);
    fuzz_check_error(rc, err);
    hull_error_free(&err);
    if (rc == 0)
        FUZZ_CHECK(pub.host_port > 0 && pub.port > 0);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    units(data, size);
    net_syntax(data, size);
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
