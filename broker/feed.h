/* feed.h -- the node's feed side as the rest of the node sees it: subscribe, unsubscribe, and Kafka's answers about topics. */
#ifndef SUBWAY_FEED_H
#define SUBWAY_FEED_H

#include <stddef.h>
#include <stdint.h>

#include "broker/broker.h"
#include "proto/proto.h"

/* The layers below this facade, bottom up (each includes only those under it):
 *   table.c      topics, feeds, partitions, subscriptions as data
 *   sub.c        links a subscription into its connection and its feed
 *   relaywire.c  the relay's bytes, pure
 *   fanout.c     records into shared blocks, to connections and the relay
 *   partition.c  which partitions are read, from where
 *   freetopic.c  free topics deleted after their grace
 *   cluster.c    owner / relay roles, coordination answers, linger
 * Kafka (upstream.c) and coordination (coord/) answer through event structs
 * that main.c wires to these modules. */

/* Returns an empty table bound to b (its timers started), or NULL. */
feed_table *feed_table_new(broker *b);
/* Frees every topic and feed; connections must be closed already. */
void feed_table_free(feed_table *ft);

/* Starts the subscription a SUBSCRIBE frame asks c for (topic, key: nil =
 * every key, start). Validates the names (NULL with *code and err filled
 * when refused before anything happened), else returns the new
 * subscription, linked into c: the SUBSCRIBED or ERROR reply is sent to c
 * when the topic and partitions are ready, maybe at once. Duplicate, limit
 * and version checks are the caller's. */
sub *feed_subscribe(feed_table *ft, conn *c, const proto_frame *req, proto_err *code, char *err, size_t errlen);

/* Ends a subscription in any state, unlinks it from c and frees it; the
 * feed lingers when it was its last. Sends nothing to the connection. */
void feed_unsubscribe(feed_table *ft, sub *s);

/* Feeds on this node. */
size_t feed_table_count(const feed_table *ft);

/* Kafka's answers (upstream_events, on the loop thread). */
void feed_on_topic_resolved(feed_table *ft, const char *topic_name, int32_t partition_cnt, proto_err code,
                            const char *errstr);
void feed_on_partition_start(feed_table *ft, const char *topic_name, int32_t partition, int64_t offset,
                             const char *errstr);

#endif
