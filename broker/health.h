/* health.h -- whether this node is fit to serve new clients (Kafka answering, coordination current, not draining), for /readyz and the logs. */
#ifndef SUBWAY_HEALTH_H
#define SUBWAY_HEALTH_H

#include <stddef.h>

#include "broker/broker.h"

/* Every HEALTH_PROBE_MS the node asks Kafka for metadata (upstream_probe);
 * the first answer comes at start. Kafka counts as down from a failed or
 * unanswered probe until one succeeds. */
#define HEALTH_PROBE_MS 2000

/* Starts the probes. Returns 0 or -1. */
int health_start(broker *b);
void health_stop(broker *b);

/* The probe's answer (upstream_events.probe): logs a change either way. */
void health_on_probe(broker *b, const char *errstr);

/* 1 while Kafka answered the last probe. */
int health_kafka_up(const broker *b);

/* 1 when the node should get new clients: Kafka answers, coordination (in
 * a cluster) is connected under a current registration, and it is not
 * draining. Otherwise 0, with why filled ("kafka: ...; redis: ...").  */
int health_ready(const broker *b, char *why, size_t len);

#endif
