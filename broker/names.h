/* names.h -- the one validator of the names the node accepts: topics and node ids. */
#ifndef SUBWAY_NAMES_H
#define SUBWAY_NAMES_H

#include <stddef.h>

#define NAMES_TOPIC_MAX 249       /* Kafka's limit */
#define NAMES_NODE_ID_MAX 100

/* 1 when name[0..len) is a legal Kafka topic name: 1..249 bytes of
 * A-Z a-z 0-9 . _ - and neither "." nor "..". No NUL, no slash. */
int names_topic_ok(const char *name, size_t len);

/* 1 when the NUL-terminated s is a legal --node-id: 1..100 of the same characters. */
int names_node_id_ok(const char *s);

/* The rule, for error texts. */
#define NAMES_TOPIC_RULE "1..249 bytes of A-Z a-z 0-9 . _ -"

#endif
