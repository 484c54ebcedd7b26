/* partition.h -- which partitions this node's consumer reads, and from where: the partition state machine. */
#ifndef SUBWAY_PARTITION_H
#define SUBWAY_PARTITION_H

#include <stddef.h>
#include <stdint.h>

#include "broker/table.h"

/* Starts the module's timers (failed lookups retried; topics looked at again
 * every --metadata-refresh-ms). Returns 0 or -1. */
int part_init(feed_table *ft);
void part_fini(feed_table *ft);

/* Owner: references f's partitions, reading each from the offset a previous
 * owner relayed up to (offsets: pairs) or else from the log end. A
 * partition already read for other feeds is read again from that offset
 * when it is further on, so a feed taken over loses nothing to sharing. */
void part_take(feed_table *ft, feed *f, const int64_t *offsets, size_t noffsets);

/* Drops f's references; a partition no feed reads any more is unassigned. */
void part_drop(feed_table *ft, feed *f);

/* 1 when every partition f reads is in the consumer's assignment. */
int part_all_assigned(const feed *f);

/* The log-end lookup for t's partition p answered (errstr NULL) or failed.
 * Assigned: feeds on it whose partitions are all assigned become ready.
 * Failed: returns -1 with text saying why; the partition is looked up again
 * later for feeds that deliver already, and the caller fails the waiters
 * of the feeds on it. Returns 0 otherwise. */
int part_on_start(feed_table *ft, topic *t, int32_t p, int64_t offset, const char *errstr, char *text,
                  size_t textlen);

/* The consumer's position `from` on the partition fell outside the log:
 * asks where to resume, tagged with the current assignment. */
void part_on_out_of_range(feed_table *ft, const char *topic_name, int32_t partition, int64_t from);

/* ... and the answer: fetching resumes at offset (-1: not known, asked
 * again later); lost records (of any key) were deleted before they were
 * read, and each feed on the partition is told with DROPPED how many came
 * after what it had. An answer for an older assignment (gen) is ignored. */
void part_on_reset(feed_table *ft, const char *topic_name, int32_t partition, uint32_t gen, int64_t from,
                   int64_t offset, int64_t lost);

/* t's metadata answered again with partition_cnt partitions: when it grew,
 * every-key feeds read the new ones from their beginning, and an exact-key
 * feed moves to the partition its key now maps to. */
void part_on_refresh(feed_table *ft, topic *t, int32_t partition_cnt);

/* 1 when f reads p from Kafka on this node. */
int part_feed_reads(const feed *f, int32_t p);

#endif
