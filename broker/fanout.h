/* fanout.h -- records into shared blocks: encoded once per feed per loop turn, referenced by every subscriber, relayed once. */
#ifndef SUBWAY_FANOUT_H
#define SUBWAY_FANOUT_H

#include <stddef.h>
#include <stdint.h>

#include "broker/table.h"

/* One record the consumer read: appended to the batch of each feed here
 * that reads it from Kafka (the every-key feed, and the key's feed). */
void fanout_record(feed_table *ft, const char *topic_name, int32_t partition, int64_t offset, int64_t ts_ms,
                   const void *key, size_t key_len, const void *value, size_t value_len, const proto_header *headers,
                   size_t header_cnt);

/* Appends one record to f's batch (from Kafka or from the relay). A feed
 * skips records below its next offset in the partition: it had them. */
void fanout_append(feed_table *ft, feed *f, int32_t partition, int64_t offset, int64_t ts_ms, const void *key,
                   size_t key_len, const void *value, size_t value_len, const proto_header *headers,
                   size_t header_cnt);

/* Records lost under f in partition (-1: not known) (Kafka deleted them
 * before they were read): a DROPPED frame in the batch, right at the gap,
 * for every subscriber and, through the relay, every other node's. */
void fanout_append_lost(feed_table *ft, feed *f, int32_t partition, uint64_t lost);

/* Ends the loop turn's batches: each touched feed's frames become one
 * block, referenced by each subscriber's queue and relayed once when other
 * nodes need them. */
void fanout_flush(feed_table *ft);

/* Fills ft->relay_offsets with where a successor resumes f; returns the
 * (partition, offset) pairs. */
size_t fanout_resume_offsets(feed_table *ft, const feed *f);

/* 1 when f's owner may act as owner now (relay, write resume offsets):
 * its lease, as this node counts it, has not run out. Fences f (for good,
 * until a renewal) when it has. */
int fanout_may_relay(feed *f);

/* Takes f off the pending batches (it is going away). */
void fanout_forget(feed_table *ft, feed *f);

/* Frees the module's buffers. */
void fanout_fini(feed_table *ft);

#endif
