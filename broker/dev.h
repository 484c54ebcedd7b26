/* dev.h -- --dev mode: librdkafka's mock cluster in-process as the node's Kafka. */
#ifndef SUBWAY_DEV_H
#define SUBWAY_DEV_H

#include <stddef.h>

#include "broker/broker.h"

/* Starts a one-broker mock cluster on loopback. Returns NULL with errstr. */
dev_kafka *dev_kafka_new(int partitions, char *errstr, size_t errlen);

/* The bootstrap address producers such as kcat can use. */
const char *dev_kafka_bootstrap(const dev_kafka *d);

/* Creates the topic with the configured partition count unless it exists.
 * Thread-safe (the lookup thread calls it). */
void dev_kafka_ensure_topic(dev_kafka *d, const char *topic_name);

/* Stops the cluster; accepts NULL. */
void dev_kafka_free(dev_kafka *d);

#endif
