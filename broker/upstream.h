/* upstream.h -- a Kafka consumer of the node (live feeds, or catch-ups): hand-assigned partitions, lookups off the loop, records out through events. */
#ifndef SUBWAY_UPSTREAM_H
#define SUBWAY_UPSTREAM_H

#include <stddef.h>
#include <stdint.h>

#include "broker/broker.h"
#include "proto/proto.h"

/* One record the consumer read. Valid only during the event. */
typedef struct upstream_record {
    const char *topic;
    int32_t partition;
    int64_t offset;
    int64_t ts_ms;
    const void *key;              /* NULL for none */
    size_t key_len;
    const void *value;
    size_t value_len;
    const proto_header *headers;
    size_t header_cnt;
} upstream_record;

/* What the consumer reports, always on the loop thread and never before
 * the call that asked returns. Strings are valid only during the event. */
typedef struct upstream_events {
    /* upstream_resolve_topic's answer: the partition count, or code and
     * errstr (then partition_cnt is 0). */
    void (*topic)(void *cb_data, const char *topic, int32_t partition_cnt, proto_err code, const char *errstr);
    /* upstream_query_start's answer: the partition's log end offset, or
     * errstr. */
    void (*start)(void *cb_data, const char *topic, int32_t partition, int64_t offset, const char *errstr);
    /* The consumer's position `from` on the partition fell outside the log
     * (retention, deletion, or a log cut short); the partition stopped. */
    void (*out_of_range)(void *cb_data, const char *topic, int32_t partition, int64_t from);
    /* upstream_query_reset's answer: resume at offset (-1: not known);
     * lost records were gone before they were read. tag is the caller's. */
    void (*reset)(void *cb_data, const char *topic, int32_t partition, uint32_t tag, int64_t from, int64_t offset,
                  int64_t lost);
    /* One record; a run of them ends with batch_end. */
    void (*record)(void *cb_data, const upstream_record *r);
    void (*batch_end)(void *cb_data);
    void *cb_data;
    /* UPSTREAM_HISTORY only (NULL otherwise). The partition's fetch reached
     * the log end: every record below offset was handed out. */
    void (*eof)(void *cb_data, const char *topic, int32_t partition, int64_t offset);
    /* upstream_probe's answer: errstr NULL when Kafka answered. */
    void (*probe)(void *cb_data, const char *errstr);
    /* upstream_query_seek's answer: the offset, or errstr. */
    void (*seek)(void *cb_data, const char *topic, int32_t partition, uint32_t tag, int64_t offset,
                 const char *errstr);
} upstream_events;

/* The live feeds' consumer favours latency and drains its queue in big
 * bites; the catch-ups' consumer reports log ends and yields to the loop
 * after each bite, so history never delays live records. */
typedef enum upstream_kind { UPSTREAM_LIVE, UPSTREAM_HISTORY } upstream_kind;

/* Where upstream_query_seek looks. */
typedef enum upstream_seek {
    UPSTREAM_SEEK_END,            /* the log end */
    UPSTREAM_SEEK_BEGINNING,      /* the log start */
    UPSTREAM_SEEK_LAST,           /* arg records before the log end, not before the log start */
    UPSTREAM_SEEK_TIME,           /* the first record at or after arg ms; the log end when none */
} upstream_seek;

/* Creates the consumer for b->kafka_bootstrap, hooks its queue into b's
 * loop and starts the lookup and admin threads; events go to ev (copied).
 * Returns NULL with errstr filled. */
upstream *upstream_new(broker *b, upstream_kind kind, const upstream_events *ev, char *errstr, size_t errlen);

/* Stops the threads, unassigns, closes and frees; accepts NULL. */
void upstream_free(upstream *u);

/* Asks for the topic's partition count (creating a free topic that does
 * not exist); the answer comes through ev.topic. */
void upstream_resolve_topic(upstream *u, const char *topic_name);

/* Drops the topic's metadata lookup if it still waits its turn (nobody
 * wants the answer any more: its subscribers hung up); one under way is
 * answered as usual. */
void upstream_cancel_topic(upstream *u, const char *topic_name);

/* Lookups waiting their turn (for /stats). */
size_t upstream_lookups_queued(upstream *u);

/* Asks for the partition's log end offset, where a new fetch starts; the
 * answer comes through ev.start. */
void upstream_query_start(upstream *u, const char *topic_name, int32_t partition);

/* After ev.out_of_range: asks where the partition resumes; the answer
 * comes through ev.reset with tag. */
void upstream_query_reset(upstream *u, const char *topic_name, int32_t partition, int64_t from, uint32_t tag);

/* Looks up an offset of the partition (where); the answer comes through
 * ev.seek with tag. */
void upstream_query_seek(upstream *u, const char *topic_name, int32_t partition, upstream_seek where, int64_t arg,
                         uint32_t tag);

/* Asks a Kafka broker for metadata (off the loop, beside topic creation
 * and deletion, never in the way of a SUBSCRIBE's lookup); the answer
 * comes through ev.probe. */
void upstream_probe(upstream *u);

/* Deletes the topic from Kafka on the admin thread (so it never delays a
 * lookup); the outcome is only logged. */
void upstream_delete_topic(upstream *u, const char *topic_name);

/* Adds / removes one partition to / from the consumer's assignment.
 * Return 0, or -1 (logged) when the consumer refused. */
int upstream_assign(upstream *u, const char *topic_name, int32_t partition, int64_t offset);
int upstream_unassign(upstream *u, const char *topic_name, int32_t partition);

#endif
