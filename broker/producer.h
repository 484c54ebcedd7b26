/* producer.h -- PUBLISH: the node's one Kafka producer, acknowledged after Kafka's delivery report. */
#ifndef SUBWAY_PRODUCER_H
#define SUBWAY_PRODUCER_H

#include <stddef.h>

#include "broker/broker.h"
#include "proto/proto.h"

/* Creates the producer for b->kafka_bootstrap and hooks its delivery
 * reports into b's loop. Returns NULL with errstr filled. */
producer *producer_new(broker *b, char *errstr, size_t errlen);

/* Flushes outstanding records (bounded wait) and frees; accepts NULL. */
void producer_free(producer *p);

/* Sends f (a PUBLISH) to Kafka for c; PUBACK or ERROR follows on c once
 * Kafka answers. Returns 0, or -1 with *code and err when refused at once. */
int producer_publish(producer *p, conn *c, const proto_frame *f, proto_err *code, char *err, size_t errlen);

/* Writes one record for the node itself (no acknowledgement wanted). */
void producer_send(producer *p, const char *topic_name, const void *key, size_t key_len, const void *value,
                   size_t value_len);

/* Forgets c's outstanding publishes (c is closing): their reports are
 * dropped when they come. */
void producer_detach(producer *p, conn *c);

#endif
