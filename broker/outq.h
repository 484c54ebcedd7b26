/* outq.h -- per-connection output queues of reference-counted byte blocks (zero-copy fan-out). */
#ifndef SUBWAY_OUTQ_H
#define SUBWAY_OUTQ_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* Immutable bytes holding one or more complete frames. A feed's records are
 * encoded once into a block, and every subscriber's queue holds a reference
 * to the same block: no per-subscriber copy or allocation. Holders: the
 * creator (one reference, dropped after fan-out) and each queue entry. */
typedef struct outq_block {
    uint32_t refs;
    uint32_t records;             /* MESSAGE frames inside, for DROPPED counts */
    uint64_t lost;                /* counts of the DROPPED frames inside (records Kafka lost) */
    size_t len;
    size_t cap;
    char *data;                   /* malloc'd, owned */
} outq_block;

/* Returns a block owning data[0..len) (takes ownership of the malloc'd data,
 * capacity cap), with one reference. */
outq_block *outq_block_adopt(char *data, size_t len, size_t cap, uint32_t records);

/* Returns a block with a copy of data and room for at least cap bytes. */
outq_block *outq_block_copy(const void *data, size_t len, size_t cap);

void outq_block_ref(outq_block *b);
/* Drops one reference; frees the block at zero. Accepts NULL. */
void outq_block_unref(outq_block *b);

typedef struct outq_ref {
    outq_block *block;
    size_t start;                 /* where its frames begin in the block */
    size_t off;                   /* next byte of the block to write */
    size_t end;                   /* past the last byte to write: a reference may hold a slice */
} outq_ref;

/* A FIFO ring of block references, with the byte total not yet written. */
typedef struct outq {
    outq_ref *ring;
    size_t head;
    size_t count;
    size_t cap;
    size_t bytes;
    size_t pinned;                /* bytes at the head's off promised to a writer (a TLS record
                                     encrypted but not yet sent): outq_cut_after_frame keeps them */
} outq;

void outq_init(outq *q);
/* Drops every reference and frees the ring. */
void outq_clear(outq *q);

/* Queues a reference to b (takes a new reference). */
void outq_push(outq *q, outq_block *b);

/* Queues a reference to b's bytes [off, off + len): whole frames of a
 * shared block, for a subscriber that may have only some of them. */
void outq_push_slice(outq *q, outq_block *b, size_t off, size_t len);

/* Queues a copy of data[0..len), appended to the last block when that block
 * is private to this queue and has room. */
void outq_push_copy(outq *q, const void *data, size_t len);

/* Drops everything queued but the rest of the frame being written, so a
 * last frame queued now goes out right after it (a closing ERROR must not
 * wait behind megabytes a slow client will never read). */
void outq_cut_after_frame(outq *q);

/* Points *data at the unwritten bytes of the head reference and returns how
 * many there are (0 when the queue is empty). Valid until the queue changes:
 * a writer that cannot use writev (TLS) writes the queue slice by slice. */
size_t outq_peek(const outq *q, const char **data);

/* Marks n bytes written: drops the references they finish, counts them off
 * q->bytes, and clears the pin. n is at most q->bytes. */
void outq_consume(outq *q, size_t n);

/* Promises the first n unwritten bytes of the head to a write in progress
 * that must be retried with them (SSL_write after WANT_WRITE): until
 * outq_consume, outq_cut_after_frame keeps them. n is at most what
 * outq_peek returns. */
void outq_pin(outq *q, size_t n);

/* Writes as much as the fd takes with writev(). Returns the bytes written
 * (0 when the socket is full), or -1 with errno on a write error. */
ssize_t outq_write(outq *q, int fd);

#endif
