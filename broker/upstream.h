/* upstream.h -- the node's one Kafka consumer: hand-assigned partitions, metadata lookups, record dispatch. */
#ifndef SUBWAY_UPSTREAM_H
#define SUBWAY_UPSTREAM_H

#include <stddef.h>
#include <stdint.h>

#include "broker/broker.h"

/* Creates the consumer for b->kafka_bootstrap, hooks its queue into b's
 * loop and starts the lookup thread. Returns NULL with errstr filled. */
upstream *upstream_new(broker *b, char *errstr, size_t errlen);

/* Stops the thread, unassigns, closes and frees; accepts NULL. */
void upstream_free(upstream *u);

/* Asks for the topic's partition count; the answer comes later through
 * feed_on_topic_resolved() (never before this returns). */
void upstream_resolve_topic(upstream *u, const char *topic_name);

/* Asks for the partition's log end offset, where a new fetch starts; the
 * answer comes through feed_on_partition_start(). */
void upstream_query_start(upstream *u, const char *topic_name, int32_t partition);

/* Deletes a free topic unless some node holds a feed of it (checked in
 * Redis in a cluster); the outcome is only logged. */
void upstream_delete_free_topic(upstream *u, const char *topic_name);

/* Adds / removes one partition to / from the consumer's assignment. */
int upstream_assign(upstream *u, const char *topic_name, int32_t partition, int64_t offset);
int upstream_unassign(upstream *u, const char *topic_name, int32_t partition);

#endif
