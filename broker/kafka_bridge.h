/* kafka_bridge.h -- the one bridge from a librdkafka queue to the libevent loop, so nothing waits on Kafka in the loop. */
#ifndef SUBWAY_KAFKA_BRIDGE_H
#define SUBWAY_KAFKA_BRIDGE_H

#include <librdkafka/rdkafka.h>
#include <stddef.h>

struct event_base;

typedef struct kafka_bridge kafka_bridge;

/* Called on the loop thread when q turned non-empty (or after
 * kafka_bridge_again): serve the queue with non-blocking calls. */
typedef void kafka_bridge_cb(void *cb_data);

/* Has librdkafka signal q's first event through a pipe that base watches.
 * Does not take q. Returns NULL with errstr filled. */
kafka_bridge *kafka_bridge_new(struct event_base *base, rd_kafka_queue_t *q, kafka_bridge_cb *cb, void *cb_data,
                               char *errstr, size_t errlen);

/* Serves the queue at libevent priority prio (0 is first; the node's
 * events run at 1): lower-priority work waits while higher is pending. */
int kafka_bridge_set_priority(kafka_bridge *kb, int prio);

/* The queue still holds events: call back after other events had a turn. */
void kafka_bridge_again(kafka_bridge *kb);

/* Stops the signalling and frees; accepts NULL. Call before destroying q. */
void kafka_bridge_free(kafka_bridge *kb);

#endif
