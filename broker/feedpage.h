/* feedpage.h -- the feed tables over HTTP: GET /feeds and /feeds/TOPIC/KEY (this node), /cluster/feeds (coordination), as JSON or browsable HTML. */
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

/* evhttp callback (cb_data: the broker) for GET /cluster/feeds?page=N&per_page=M:
 * one page of the cluster's feed table from coordination (every feed any
 * node holds, by name, with its cluster-wide count, owner and the owner's
 * lease left), as JSON; 503 when coordination cannot be read. The answer
 * comes when coordination does. */
void feedpage_cluster_cb(struct evhttp_request *req, void *cb_data);

/* Drops the answers of /cluster/feeds requests still waiting: call it when
 * the HTTP server (and so its requests) is freed. */
void feedpage_stop(void);

#endif
