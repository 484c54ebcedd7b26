/* outq.c -- per-connection output queues of reference-counted byte blocks (zero-copy fan-out). */
#include "broker/outq.h"

#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/uio.h>

#include "broker/xmalloc.h"
#include "proto/proto.h"

#define OUTQ_SMALL_BLOCK 512      /* control frames are gathered into blocks this big */
#define OUTQ_IOV_MAX 64

outq_block *outq_block_adopt(char *data, size_t len, size_t cap, uint32_t records) {
    outq_block *b = xmalloc(sizeof(*b));
    b->refs = 1;
    b->records = records;
    b->lost = 0;
    b->len = len;
    b->cap = cap;
    b->data = data;
    return b;
}

outq_block *outq_block_copy(const void *data, size_t len, size_t cap) {
    if (cap < len) cap = len;
    char *d = xmalloc(cap);
    memcpy(d, data, len);
    return outq_block_adopt(d, len, cap, 0);
}

void outq_block_ref(outq_block *b) {
    b->refs++;
}

void outq_block_unref(outq_block *b) {
    if (!b || --b->refs > 0) return;
    free(b->data);
    free(b);
}

void outq_init(outq *q) {
    memset(q, 0, sizeof(*q));
}

void outq_clear(outq *q) {
    for (size_t i = 0; i < q->count; i++) outq_block_unref(q->ring[(q->head + i) % q->cap].block);
    free(q->ring);
    outq_init(q);
}

static void outq_grow(outq *q) {
    size_t ncap = q->cap ? q->cap * 2 : 8;
    outq_ref *n = xreallocarray(NULL, ncap, sizeof(*n));
    /* Unroll the ring so head is 0 again. */
    for (size_t i = 0; i < q->count; i++) n[i] = q->ring[(q->head + i) % q->cap];
    free(q->ring);
    q->ring = n;
    q->head = 0;
    q->cap = ncap;
}

void outq_push_slice(outq *q, outq_block *b, size_t off, size_t len) {
    if (q->count == q->cap) outq_grow(q);
    outq_block_ref(b);
    q->ring[(q->head + q->count) % q->cap] = (outq_ref){b, off, off, off + len};
    q->count++;
    q->bytes += len;
}

void outq_push(outq *q, outq_block *b) {
    outq_push_slice(q, b, 0, b->len);
}

void outq_push_copy(outq *q, const void *data, size_t len) {
    if (q->count > 0) {
        outq_ref *r = &q->ring[(q->head + q->count - 1) % q->cap];
        outq_block *last = r->block;
        /* Only a private control block (one holder, no records) may grow. */
        if (last->refs == 1 && last->records == 0 && r->end == last->len && last->cap - last->len >= len) {
            memcpy(last->data + last->len, data, len);
            last->len += len;
            r->end = last->len;
            q->bytes += len;
            return;
        }
    }
    outq_block *b = outq_block_copy(data, len, len < OUTQ_SMALL_BLOCK ? OUTQ_SMALL_BLOCK : len);
    outq_push(q, b);
    outq_block_unref(b);          /* the queue holds the only reference now */
}

void outq_cut_after_frame(outq *q) {
    if (q->count == 0) return;
    outq_ref *r = &q->ring[q->head];
    size_t cut = r->off + q->pinned;   /* pinned bytes are as good as written */
    if (cut > r->start) {
        /* Mid-way through the head: find the end of the frame it is in. */
        size_t f = r->start;
        while (f < cut) f += PROTO_HEADER_SIZE + proto_peek_length(r->block->data + f);
        cut = f;
    }
    for (size_t i = 1; i < q->count; i++) outq_block_unref(q->ring[(q->head + i) % q->cap].block);
    q->count = 1;
    r->end = cut;
    q->bytes = r->end - r->off;
    if (q->bytes == 0) {
        outq_block_unref(r->block);
        q->count = 0;
        q->head = 0;
    }
}

size_t outq_peek(const outq *q, const char **data) {
    if (q->count == 0) return 0;
    const outq_ref *r = &q->ring[q->head];
    *data = r->block->data + r->off;
    return r->end - r->off;
}

void outq_consume(outq *q, size_t n) {
    q->bytes -= n;
    q->pinned = 0;
    while (n > 0) {
        outq_ref *r = &q->ring[q->head];
        size_t avail = r->end - r->off;
        if (n < avail) {
            r->off += n;
            break;
        }
        n -= avail;
        outq_block_unref(r->block);
        q->head = (q->head + 1) % q->cap;
        q->count--;
    }
    if (q->count == 0) q->head = 0;
}

void outq_pin(outq *q, size_t n) {
    q->pinned = n;
}

ssize_t outq_write(outq *q, int fd) {
    ssize_t total = 0;
    while (q->count > 0) {
        struct iovec iov[OUTQ_IOV_MAX];
        int n = 0;
        for (size_t i = 0; i < q->count && n < OUTQ_IOV_MAX; i++) {
            outq_ref *r = &q->ring[(q->head + i) % q->cap];
            iov[n].iov_base = r->block->data + r->off;
            iov[n].iov_len = r->end - r->off;
            n++;
        }
        ssize_t w = writev(fd, iov, n);
        if (w < 0) {
            if (errno == EINTR) continue;
            if (errno == EAGAIN || errno == EWOULDBLOCK) return total;
            return -1;
        }
        total += w;
        outq_consume(q, (size_t)w);
        /* A short write means the socket buffer is full: stop here. */
        size_t asked = 0;
        for (int i = 0; i < n; i++) asked += iov[i].iov_len;
        if ((size_t)w < asked) return total;
    }
    return total;
}
