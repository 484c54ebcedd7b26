/* catchup.h -- subscriptions that start in the past: shared readers of history on their own consumer, joined to the live feed by offsets. */
#ifndef SUBWAY_CATCHUP_H
#define SUBWAY_CATCHUP_H

#include <stdint.h>

#include "broker/table.h"
#include "broker/upstream.h"

/* How a catch-up goes (PROTOCOL.md 5.8). sub.c files each partition of a
 * subscription that does not simply start live on ft->cu_new; from there:
 *
 *   resolve  its start offset is looked up (timestamp, last N, beginning,
 *            or the log end when the live position is not known);
 *   read     a reader of the topic partition, shared by every catch-up of
 *            it on the node, reads from the lowest position asked on the
 *            catch-up consumer (b->history), never the live one; each
 *            subscription gets the records from its own position, encoded
 *            once per feed and handed out as slices of one block;
 *   park     while the connection's queue is above the soft limit, the
 *            partition leaves its reader and keeps its position;
 *   join     once its position reaches the live feed's (feed_live_pos),
 *            the partition follows the live feed from there; live records
 *            below that position are filtered out (fanout.c). When every
 *            partition joined, LIVE goes out with the positions.
 *
 * At most --catchup-readers readers are assigned at once; the others queue,
 * and a reader that served CU_QUANTUM records while others wait goes to
 * the back of the queue. */

/* What the catch-ups are doing now, for /stats. */
typedef struct catchup_stats {
    size_t readers;               /* partitions being read or waiting to be */
    size_t active;                /* assigned in the catch-up consumer */
    size_t queued;                /* waiting their turn */
    size_t reading;               /* subscriptions' partitions on readers */
    size_t parked;                /* ... waiting for their connection to drain */
    size_t resolving;             /* ... whose start offset is being looked up */
} catchup_stats;

void catchup_stats_get(const feed_table *ft, catchup_stats *st);

/* Creates the module's events. Returns 0 or -1. */
int catchup_init(feed_table *ft);
/* Lets every reader go and frees the module; subscriptions stay. */
void catchup_fini(feed_table *ft);

/* The catch-up consumer's events (upstream_events of b->history). */
void catchup_on_record(feed_table *ft, const upstream_record *r);
void catchup_on_batch_end(feed_table *ft);
void catchup_on_eof(feed_table *ft, const char *topic_name, int32_t partition, int64_t offset);
void catchup_on_seek(feed_table *ft, const char *topic_name, int32_t partition, uint32_t tag, int64_t offset,
                     const char *errstr);
void catchup_on_out_of_range(feed_table *ft, const char *topic_name, int32_t partition, int64_t from);
void catchup_on_reset(feed_table *ft, const char *topic_name, int32_t partition, uint32_t tag, int64_t from,
                      int64_t offset, int64_t lost);

#endif
