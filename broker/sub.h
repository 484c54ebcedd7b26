/* sub.h -- subscriptions: the one module that links a connection and a feed, and unlinks both sides. */
#ifndef SUBWAY_SUB_H
#define SUBWAY_SUB_H

#include <stddef.h>
#include <stdint.h>

#include "broker/table.h"

/* Every subscription is created and freed here, and lives in two places
 * at once: its connection's subs array and one list of its topic or feed.
 * No other module links or unlinks either side. */

/* A new subscription of c to t (key NULL = every key; copied), in c's subs
 * array but in no list yet: follow with sub_wait_topic or sub_attach.
 * start: the SUBSCRIBE whose start it takes (copied), or NULL. */
sub *sub_new(feed_table *ft, conn *c, uint64_t req_id, topic *t, const char *key, size_t key_len,
             const proto_frame *start);

/* Parks s on its topic until the metadata is known. */
void sub_wait_topic(sub *s);

/* Takes s off its topic's waiters (it must be there). */
void sub_unwait_topic(sub *s);

/* Joins s to f: active at once (SUBSCRIBED sent) when f delivers, else
 * waiting for f's partitions. On a version-2 connection, activation also
 * sends LIVE when s starts live and f's positions are known, or else
 * files a catch-up (s->cu) on ft->cu_new for catchup.c. */
void sub_attach(feed_table *ft, sub *s, feed *f);

/* f delivers from now on: SUBSCRIBED to each of its waiters. */
void sub_feed_ready(feed_table *ft, feed *f);

/* Answers s with ERROR{code, text}, unlinks it from both sides and frees
 * it. Its feed's count is the caller's to release. */
void sub_fail(feed_table *ft, sub *s, proto_err code, const char *text);

/* LIVE for s: for each partition its feed reads, the offset of the next
 * record s gets (its catch-up's position, else the live feed's). */
void sub_send_live(feed_table *ft, sub *s);

/* 0 once s's catch-up is over and its live filter passes everything: LIVE
 * was sent and the live feed is at or past every partition's position. */
int sub_catchup_needed(const sub *s);

/* Ends s's catch-up (it follows the live feed alone from now on, or goes). */
void sub_catchup_free(feed_table *ft, sub *s);

/* Unlinks s from both sides and frees it; sends nothing. */
void sub_free(feed_table *ft, sub *s);

/* c's subscription to topic/key (key NULL = every key), or NULL. */
/* The topic and key s asked for (key NULL: every key). */
void sub_feed_name(const sub *s, const char **topic_name, const char **key, size_t *key_len);

sub *sub_find(conn *c, const char *topic_name, size_t topic_len, const char *key, size_t key_len);

/* c's active subscription with the feed handle, or NULL. */
sub *sub_find_handle(conn *c, uint32_t handle);

/* The feed's node-local handle, 0 while the subscription is not active. */
uint32_t sub_handle(const sub *s);

/* Shutdown: frees the subscriptions still in t's lists, leaving their
 * (already closed) connections alone. */
void sub_free_all(feed_table *ft, topic *t);

#endif
