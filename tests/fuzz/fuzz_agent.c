/* The agent protocol's frame parsers (src/lib/vm/agent_proto.h): the
 * guest's (src/guest/agent_io.c, what hull-agent reads from the host) and
 * the host's (src/lib/vm/agent.c, what hull reads from a guest it does not
 * trust). The input is the byte stream on the port.
 *
 * Both sides resynchronise on the magic after garbage, so both must cut the
 * same stream into the same frames, whether the bytes arrive at once or a
 * few at a time. The guest's reader runs on a small stack: how deep it goes
 * must not depend on what the host sends. The host's answer matching (ids, "ok": false) runs over
 * the same stream. Streams are handed over through a memfd: the parsers'
 * own read() and poll() calls run, on memory. */
#include <errno.h>
#include <pthread.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include "../../src/guest/agent.h"
#include "fuzz.h"
#include "util/error.h"
#include "vm/agent.h"

/* agent_io.c's clock comes from agent_main.c, which is not linked here. */
uint64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

#define MAX_FRAMES 4096

struct seen {
    size_t n;
    struct {
        uint8_t type;
        uint32_t len;
        uint64_t hash;
    } f[MAX_FRAMES];
};

static uint64_t fnv(const uint8_t *p, size_t n)
{
    uint64_t h = 1469598103934665603ull;
    for (size_t i = 0; i < n; i++)
        h = (h ^ p[i]) * 1099511628211ull;
    return h;
}

static void record(struct seen *s, uint8_t type, uint32_t len, const uint8_t *data)
{
    FUZZ_CHECK(type >= HULL_FRAME_REQ && type <= HULL_FRAME_EXIT);
    FUZZ_CHECK(len <= HULL_AGENT_MAX_FRAME);
    if (s->n == MAX_FRAMES)
        return;
    s->f[s->n].type = type;
    s->f[s->n].len = len;
    s->f[s->n].hash = fnv(data, len);
    s->n++;
}

static void same(const struct seen *x, const struct seen *y)
{
    FUZZ_CHECK(x->n == y->n);
    for (size_t i = 0; i < x->n; i++)
        FUZZ_CHECK(x->f[i].type == y->f[i].type && x->f[i].len == y->f[i].len &&
                   x->f[i].hash == y->f[i].hash);
}

static int memfd_of(const uint8_t *data, size_t size)
{
    int fd = memfd_create("fuzz-agent", MFD_CLOEXEC);
    FUZZ_CHECK(fd >= 0);
    size_t off = 0;
    while (off < size) {
        ssize_t n = write(fd, data + off, size - off);
        FUZZ_CHECK(n > 0);
        off += (size_t)n;
    }
    FUZZ_CHECK(lseek(fd, 0, SEEK_SET) == 0);
    return fd;
}

/* The guest reading the whole stream through conn_fill(). */
static void guest_fd(const uint8_t *data, size_t size, struct seen *s)
{
    struct conn c;
    int fd = memfd_of(data, size);
    FUZZ_CHECK(conn_open(&c, fd) == 0);
    for (int rounds = 0;; rounds++) {
        FUZZ_CHECK(rounds < 1000);
        int fr = conn_fill(&c);
        struct frame f;
        while (conn_frame(&c, &f)) {
            record(s, f.type, f.len, f.data);
            /* What handle() does with a request. */
            if (f.type == HULL_FRAME_REQ) {
                json_tokener *tok = json_tokener_new();
                json_object *req = json_tokener_parse_ex(tok, (const char *)f.data, (int)f.len);
                json_tokener_free(tok);
                json_object *op;
                if (req && json_object_is_type(req, json_type_object) &&
                    json_object_object_get_ex(req, "op", &op))
                    (void)json_object_get_string(op);
                json_object_put(req);
            }
        }
        if (fr < 0)
            break;
    }
    free(c.buf);
    close(fd);
}

/* The guest handed the same bytes a few at a time, straight into its
 * buffer (chunk sizes drawn from the input itself). */
static void guest_chunks(const uint8_t *data, size_t size, struct seen *s)
{
    struct conn c;
    FUZZ_CHECK(conn_open(&c, -1) == 0);
    size_t off = 0;
    uint32_t rnd = (uint32_t)size * 2654435761u;
    while (off < size) {
        rnd = rnd * 1103515245u + 12345u;
        size_t n = 1 + (rnd >> 16) % 97;
        if (n > size - off)
            n = size - off;
        /* conn_fill's part: drop what was handed out, make room. */
        struct frame f;
        if (c.consumed) {
            memmove(c.buf, c.buf + c.consumed, c.len - c.consumed);
            c.len -= c.consumed;
            c.consumed = 0;
        }
        if (c.len + n > c.cap) {
            c.cap = (c.len + n) * 2;
            c.buf = realloc(c.buf, c.cap);
            FUZZ_CHECK(c.buf != NULL);
        }
        memcpy(c.buf + c.len, data + off, n);
        c.len += n;
        off += n;
        while (conn_frame(&c, &f))
            record(s, f.type, f.len, f.data);
    }
    free(c.buf);
}

/* The host reading frames from a guest. */
static void host_frames(const uint8_t *data, size_t size, struct seen *s)
{
    struct vm_agent *a = calloc(1, sizeof(*a));
    FUZZ_CHECK(a != NULL);
    a->fd = memfd_of(data, size);
    for (;;) {
        struct vm_frame f;
        hull_error e = NULL;
        int r = vm_agent_recv(a, -1, &f, &e);
        fuzz_check_error(r, e);
        if (r < 0) {
            FUZZ_CHECK(hull_error_code(e) == ECONNRESET);
            hull_error_free(&e);
            break;
        }
        FUZZ_CHECK(r == 0);
        record(s, f.type, f.len, f.data);
    }
    vm_agent_close(a);
}

/* The host waiting for the answer to request 1: answers to other ids are
 * skipped, "ok": false becomes an error carrying the guest's message. */
static void host_answers(const uint8_t *data, size_t size)
{
    struct vm_agent *a = calloc(1, sizeof(*a));
    FUZZ_CHECK(a != NULL);
    a->fd = memfd_of(data, size);
    for (;;) {
        json_object *resp = NULL;
        hull_error e = NULL;
        int r = vm_agent_wait_resp(a, 1, -1, &resp, &e);
        fuzz_check_error(r, e);
        if (r == 0) {
            FUZZ_CHECK(resp != NULL);
            json_object_put(resp);
            continue;
        }
        bool end = hull_error_code(e) == ECONNRESET &&
                   strstr(hull_error_msg(e), "connection closed") != NULL;
        hull_error_free(&e);
        if (end)
            break;
    }
    vm_agent_close(a);
}

struct job {
    const uint8_t *data;
    size_t size;
    struct seen *s;
};

static void *guest_fd_thread(void *arg)
{
    struct job *j = arg;
    guest_fd(j->data, j->size, j->s);
    return NULL;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static struct seen a, b, h;
    a.n = b.n = h.n = 0;
    pthread_attr_t attr;
    pthread_t t;
    struct job j = {data, size, &a};
    FUZZ_CHECK(pthread_attr_init(&attr) == 0);
    FUZZ_CHECK(pthread_attr_setstacksize(&attr, 256 << 10) == 0);
    FUZZ_CHECK(pthread_create(&t, &attr, guest_fd_thread, &j) == 0);
    FUZZ_CHECK(pthread_join(t, NULL) == 0);
    pthread_attr_destroy(&attr);
    guest_chunks(data, size, &b);
    host_frames(data, size, &h);
    host_answers(data, size);
    same(&a, &b);
    same(&a, &h);
    return 0;
}
