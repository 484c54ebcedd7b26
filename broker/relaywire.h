/* relaywire.h -- the relay's bytes: "R" batches with their positions, "S" sync and "G" hand-over markers, resume offsets; pure encode and decode. */
#ifndef SUBWAY_RELAYWIRE_H
#define SUBWAY_RELAYWIRE_H

#include <stddef.h>
#include <stdint.h>

#include "broker/table.h"
#include "proto/proto.h"

/* What an owner publishes on a feed's relay channel (a header line, then
 * frames):
 *   "R <owner> P:FROM:TO ...\n" then MESSAGE and DROPPED frames, exactly as
 *                 its own subscribers got them (the relay re-encodes them
 *                 with its own feed handle). For each partition P of the
 *                 feed, FROM is the owner's position (the resume offset)
 *                 before this batch (-1 when it has none yet), TO after it:
 *                 a relay whose last batch ended before FROM missed one, and
 *                 reads the gap from Kafka;
 *   "S <owner> P:POS ...\n" a sync marker: a joining node delivers from
 *                 here on; a node that already delivers compares POS with
 *                 where it is;
 *   "C <owner> P:POS ...\n" a check: the owner relays again after a while
 *                 it did not (nobody held the feed elsewhere, or it was
 *                 fenced); every relay compares POS with where it is, as
 *                 with a sync marker it asked for;
 *   "G <owner>\n" the owner stopped and freed the lease: claim it now.
 * Partitions with no known position are left out. */
typedef enum relaywire_kind {
    RELAYWIRE_BAD = 0,            /* not relay bytes */
    RELAYWIRE_RECORDS = 'R',
    RELAYWIRE_SYNC = 'S',
    RELAYWIRE_GONE = 'G',
    RELAYWIRE_CHECK = 'C',
} relaywire_kind;

/* Resets out to "R <owner> P:FROM:TO ...\n" followed by frames[0..len):
 * for each (partition, to) pair, from is from[partition] (-1: unknown). */
void relaywire_records(proto_buf *out, const char *owner, const int64_t *from, const int64_t *pairs, size_t npairs,
                       const char *frames, size_t len);

/* Resets out to the sync marker "S <owner> P:POS ...\n" of (partition, pos)
 * pairs, or with kind RELAYWIRE_CHECK the check marker "C ...". */
void relaywire_sync(proto_buf *out, const char *owner, const int64_t *pairs, size_t npairs);
void relaywire_check(proto_buf *out, const char *owner, const int64_t *pairs, size_t npairs);

/* Resets out to the hand-over marker "G <owner>\n". */
void relaywire_gone(proto_buf *out, const char *owner);

/* Reads the header of data[0..len): returns its kind and sets owner (not
 * terminated; owner_len bytes) and *body, where the frames start. Returns
 * RELAYWIRE_BAD for anything else. */
relaywire_kind relaywire_parse(const char *data, size_t len, const char **owner, size_t *owner_len, size_t *body);

/* The header's positions, at most max of them into out; returns how many,
 * or -1 when they do not parse. */
long relaywire_positions(const char *data, size_t body, relaywire_pos *out, size_t max);

/* Where a successor resumes a feed reading partitions [first, last]: for
 * each, the feed's own next offset (next_off[p]), or the consumer's
 * position when the feed reads Kafka here and the consumer is further on
 * (everything below it was dispatched, so a seldom-written key does not
 * hold its resume offset back). Unknown positions are left out. Writes
 * (partition, offset) pairs to out, at most max_pairs; returns the pairs. */
size_t relaywire_resume_offsets(const int64_t *next_off, const tpart *parts, int32_t first, int32_t last,
                                int reads_kafka, int64_t *out, size_t max_pairs);

#endif
