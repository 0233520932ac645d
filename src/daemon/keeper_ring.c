/* A process's output in the keeper: chunks of one stream each, oldest
 * dropped once they hold more than the budget. What is held is counted
 * with each chunk's overhead and spare room, so a process writing one byte
 * at a time, stdout and stderr in turn, cannot make it hold more memory
 * than the budget either (it then keeps less output). */
#include <stdlib.h>
#include <string.h>

#include "procs.h"
#include "util/json.h"

#define CHUNK_MIN 512u
#define CHUNK_MAX (64u << 10)

struct ring_chunk {
    struct ring_chunk *next;
    uint64_t off;
    uint32_t len, cap;
    int stream;
    char data[];
};

static size_t chunk_mem(const struct ring_chunk *c)
{
    return sizeof(*c) + c->cap;
}

void ring_init(struct ring *r, size_t budget)
{
    memset(r, 0, sizeof(*r));
    r->budget = budget;
}

static void drop_oldest(struct ring *r)
{
    struct ring_chunk *c = r->head;
    r->head = c->next;
    if (r->head == NULL)
        r->tail = NULL;
    r->mem -= chunk_mem(c);
    free(c);
    r->start = r->head ? r->head->off : r->end;
}

void ring_append(struct ring *r, int stream, const char *data, size_t len)
{
    while (len) {
        struct ring_chunk *t = r->tail;
        if (t && t->stream == stream && t->len < t->cap) {
            size_t n = t->cap - t->len < len ? t->cap - t->len : len;
            memcpy(t->data + t->len, data, n);
            t->len += (uint32_t)n;
            r->end += n;
            data += n;
            len -= n;
            continue;
        }
        /* A stream that keeps writing gets room to grow into; a burst
         * of small alternating writes small chunks. */
        /* At most an eighth of the budget: the spare room of the newest
         * chunk never pushes out much of what a reader has yet to read. */
        size_t most = r->budget / 8 < CHUNK_MAX ? r->budget / 8 : CHUNK_MAX;
        if (most < CHUNK_MIN)
            most = CHUNK_MIN;
        size_t cap = len > CHUNK_MIN ? len : CHUNK_MIN;
        if (t && t->stream == stream)
            cap = most;
        if (cap > most)
            cap = most;
        struct ring_chunk *c = malloc(sizeof(*c) + cap);
        if (c == NULL) {
            /* Out of memory: the bytes are lost, as if cut. */
            r->end += len;
            while (r->head)
                drop_oldest(r);
            r->start = r->end;
            return;
        }
        c->next = NULL;
        c->off = r->end;
        c->len = 0;
        c->cap = (uint32_t)cap;
        c->stream = stream;
        if (t)
            t->next = c;
        else
            r->head = c;
        r->tail = c;
        r->mem += chunk_mem(c);
        while (r->mem > r->budget && r->head != c)
            drop_oldest(r);
    }
    /* The newest chunk alone over the budget (a tiny --process-buffer). */
    while (r->mem > r->budget && r->head && r->head->next)
        drop_oldest(r);
    if (r->head)
        r->start = r->head->off;
}

int ring_read(const struct ring *r, uint64_t offset, size_t max, json_object *hdr, char **data,
              size_t *len)
{
    *data = NULL;
    *len = 0;
    json_object *segs = json_object_new_array();
    json_object_object_add(hdr, "segs", segs);
    if (offset < r->start) {
        json_object *cut = json_object_new_array();
        json_object_array_add(cut, json_object_new_uint64(offset));
        json_object_array_add(cut, json_object_new_uint64(r->start - offset));
        json_object_object_add(hdr, "cut", cut);
        offset = r->start;
    }
    json_object_object_add(hdr, "end", json_object_new_uint64(r->end));
    if (offset >= r->end || max == 0)
        return 0;
    size_t want = r->end - offset < max ? (size_t)(r->end - offset) : max;
    char *buf = malloc(want);
    if (buf == NULL)
        return -1;
    size_t got = 0;
    json_object *last = NULL;
    int last_stream = -1;
    for (const struct ring_chunk *c = r->head; c && got < want; c = c->next) {
        if (c->off + c->len <= offset)
            continue;
        size_t from = offset > c->off ? (size_t)(offset - c->off) : 0;
        size_t n = c->len - from;
        if (n > want - got)
            n = want - got;
        memcpy(buf + got, c->data + from, n);
        if (last && last_stream == c->stream) {
            json_object *l = json_object_array_get_idx(last, 2);
            json_object_set_uint64(l, json_object_get_uint64(l) + n);
        } else {
            last = json_object_new_array();
            json_object_array_add(last, json_object_new_int(c->stream));
            json_object_array_add(last, json_object_new_uint64(c->off + from));
            json_object_array_add(last, json_object_new_uint64(n));
            json_object_array_add(segs, last);
            last_stream = c->stream;
        }
        got += n;
    }
    *data = buf;
    *len = got;
    return 0;
}

bool ring_shed_oldest(struct ring *r)
{
    if (r->head == NULL || r->head == r->tail)
        return false;
    drop_oldest(r);
    return true;
}

void ring_free(struct ring *r)
{
    while (r->head)
        drop_oldest(r);
}
