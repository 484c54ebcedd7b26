/* feedpage.h -- the node's feed table over HTTP: GET /feeds and /feeds/TOPIC/KEY, as JSON or a browsable HTML page. */
#ifndef SUBWAY_FEEDPAGE_H
#define SUBWAY_FEEDPAGE_H

#include <stdint.h>

#include "broker/broker.h"

struct evbuffer;
struct evhttp_request;

/* Appends f's summary to out as one JSON object: topic, key (null for every
 * key), handle, subscribers, partitions, records, lingering, ready, role,
 * fenced, repairing, local, cluster_count, nodes, last_record_age_ms (null
 * before its first record; now_ms is broker_now_ms()). */
void feedpage_feed_json(struct evbuffer *out, const feed *f, uint64_t now_ms);

/* evhttp callback (cb_data: the broker) for GET /feeds?page=N&per_page=M:
 * one page of this node's feeds by topic, then key (every-key feed first).
 * Answers HTML when the request accepts text/html, else JSON; 400 on a bad
 * parameter. Changes nothing. */
void feedpage_list_cb(struct evhttp_request *req, void *cb_data);

/* evhttp catch-all callback (cb_data: the broker): GET /feeds/TOPIC/KEY
 * (KEY percent-decoded; a bare * is the every-key feed, %2A the key "*")
 * shows one feed with its per-partition offsets; 404 for an unknown feed
 * and for every other unregistered path. Changes nothing. */
void feedpage_gen_cb(struct evhttp_request *req, void *cb_data);

#endif
