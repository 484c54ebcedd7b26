/* kafka_conf.h -- librdkafka configuration shared by the node's consumer and producer. */
#ifndef SUBWAY_KAFKA_CONF_H
#define SUBWAY_KAFKA_CONF_H

#include <librdkafka/rdkafka.h>
#include <stddef.h>

#include "broker/broker.h"

/* A conf with the bootstrap servers, client id and logging routed to the
 * node's log. Returns NULL with errstr filled. */
rd_kafka_conf_t *kafka_conf_new(broker *b, char *errstr, size_t errlen);

/* Sets one property; returns 0 or -1 with errstr naming it. */
int kafka_conf_set(rd_kafka_conf_t *conf, const char *name, const char *value, char *errstr, size_t errlen);

/* Applies the user's --kafka-opt properties last, so they win. */
int kafka_conf_apply_user(broker *b, rd_kafka_conf_t *conf, char *errstr, size_t errlen);

#endif
