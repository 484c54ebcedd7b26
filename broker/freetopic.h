/* freetopic.h -- free topics: deleted a grace period after the last feed of them went, cluster-wide. */
#ifndef SUBWAY_FREETOPIC_H
#define SUBWAY_FREETOPIC_H

#include <stddef.h>

#include "broker/table.h"

/* The last feed of the free topic went on this node: after
 * --free-topic-grace-ms, coordination is asked whether any node still holds
 * a feed of it, and if none does it is deleted from Kafka. */
void freetopic_doom(feed_table *ft, const char *name);

/* The topic is wanted again: cancels its pending deletion, if any. */
void freetopic_spare(feed_table *ft, const char *name, size_t len);

/* Frees t once no feed or subscription refers to it; a ready free topic
 * is doomed then. */
void topic_maybe_free(feed_table *ft, topic *t);

/* Cancels every pending deletion. */
void freetopic_fini(feed_table *ft);

#endif
