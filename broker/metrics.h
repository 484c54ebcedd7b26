/* metrics.h -- GET /metrics: the node's counters, gauges and histograms in Prometheus's text exposition format. */
#ifndef SUBWAY_METRICS_H
#define SUBWAY_METRICS_H

#include "broker/broker.h"

struct evbuffer;
struct evhttp_request;

/* Appends every metric of b (README, "Metrics") to out; changes nothing else. */
void metrics_write(broker *b, struct evbuffer *out);

/* The admin route: an evhttp callback, arg the broker. Replies 200 with
 * metrics_write's text (version 0.0.4), or 500 when out of memory. */
void metrics_cb(struct evhttp_request *req, void *arg);

#endif
