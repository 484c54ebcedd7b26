/* feed.h -- the subscription table: topics, feeds, subscriptions, partition targeting, linger, fan-out. */
#ifndef SUBWAY_FEED_H
#define SUBWAY_FEED_H

#include <stddef.h>
#include <stdint.h>

#include "broker/broker.h"
#include "broker/outq.h"
#include "broker/partitioner.h"
#include "proto/proto.h"

typedef enum sub_state {
    SUB_WAIT_TOPIC,               /* topic metadata being fetched */
    SUB_WAIT_FEED,                /* feed's partitions being assigned */
    SUB_ACTIVE,                   /* SUBSCRIBED sent; receives records */
} sub_state;

/* One connection's interest in one feed. Owned by the connection; linked
 * into exactly one list of its topic or feed. */
struct sub {
    conn *c;
    topic *t;
    feed *f;                      /* NULL in SUB_WAIT_TOPIC */
    sub_state state;
    uint64_t req_id;              /* of the SUBSCRIBE, until answered */
    uint64_t dropped;             /* records dropped since the last DROPPED */
    char *key;                    /* SUB_WAIT_TOPIC only: the key asked for */
    size_t key_len;
    int wildcard;
    sub *prev, *next;
};

/* Returns an empty table bound to b, or NULL on out of memory. */
feed_table *feed_table_new(broker *b);
/* Frees every topic and feed; subscriptions must be gone already. */
void feed_table_free(feed_table *ft);

/* Starts a subscription of c to topic/key (key NULL = every key). Validates
 * the names (-1 with *code and err filled when refused before anything
 * happened), else returns the new subscription: the SUBSCRIBED or ERROR
 * reply is sent to c when the topic and partitions are ready, maybe at once.
 * Duplicate and limit checks are the caller's. */
sub *feed_subscribe(feed_table *ft, conn *c, uint64_t req_id, const char *topic_name, size_t topic_len,
                    const char *key, size_t key_len, proto_err *code, char *err, size_t errlen);

/* Ends a subscription in any state and frees it; the feed lingers when it
 * was its last. Sends nothing to the connection. */
void feed_unsubscribe(feed_table *ft, sub *s);

/* 1 when s is for the same topic/key as the given names. */
int feed_sub_matches(const sub *s, const char *topic_name, size_t topic_len, const char *key, size_t key_len);

/* The feed's node-local handle, 0 while it has none. */
uint32_t feed_sub_handle(const sub *s);

/* Upstream results (called on the loop thread). */
void feed_on_topic_resolved(feed_table *ft, const char *topic_name, int32_t partition_cnt, proto_err code,
                            const char *errstr);
void feed_on_partition_start(feed_table *ft, const char *topic_name, int32_t partition, int64_t offset,
                             const char *errstr);

/* Cluster events from coordination (see coord_events). */
void feed_on_notice(feed_table *ft, const coord_feed *cf, coord_notice what, const char *node, long nodes);
void feed_on_relay(feed_table *ft, const coord_feed *cf, const char *data, size_t len);
void feed_on_coord_state(feed_table *ft, int up);

/* Feeds on this node. */
size_t feed_table_count(const feed_table *ft);

/* The partition's current assignment, to stamp a lookup with: an answer
 * that comes after it was reassigned is ignored. */
uint32_t feed_partition_gen(feed_table *ft, const char *topic_name, int32_t partition);

/* The consumer's position `from` on the partition (assignment gen) fell
 * outside the log: fetching resumes at offset. lost records (of any key)
 * were deleted before they were read; each feed reading the partition is
 * told with DROPPED how many of them came after what it had. */
void feed_on_partition_reset(feed_table *ft, const char *topic_name, int32_t partition, uint32_t gen,
                             int64_t from, int64_t offset, int64_t lost);

/* One record from Kafka: encoded once into each matching feed's batch. */
void feed_on_record(feed_table *ft, const char *topic_name, int32_t partition, int64_t offset, int64_t ts_ms,
                    const void *key, size_t key_len, const void *value, size_t value_len,
                    const proto_header *headers, size_t header_cnt);

/* Ends a batch of records: each touched feed's batch becomes one shared
 * block referenced by every subscriber's queue. */
void feed_flush_batch(feed_table *ft);

/* Appends the table as JSON fields "subscriptions", "feeds" and "assigned"
 * to out (an evbuffer). */
struct evbuffer;
void feed_table_stats_json(feed_table *ft, struct evbuffer *out);

#endif
