/* histogram.h -- the node's latency histograms: fixed buckets in seconds, observed on the loop thread, read by GET /metrics. */
#ifndef SUBWAY_HISTOGRAM_H
#define SUBWAY_HISTOGRAM_H

#include <stddef.h>
#include <stdint.h>
#include <time.h>

/* Upper bounds of the buckets, in seconds (README, "Metrics"): from half a
 * millisecond, where a loop turn on loopback lands, to 10 s, past a lease.
 * Everything above the last goes to the implicit +Inf bucket. */
#define HISTOGRAM_BOUNDS 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10
#define HISTOGRAM_NBOUNDS 14

extern const double histogram_bounds[HISTOGRAM_NBOUNDS];

typedef struct histogram {
    uint64_t buckets[HISTOGRAM_NBOUNDS + 1]; /* per bucket, not cumulative; the last is +Inf */
    uint64_t count;
    double sum;                   /* seconds */
} histogram;

/* The node's histograms. One node per process, so one set, a global: the
 * coordination backend observes into it without a way back to the broker. */
typedef struct node_histograms {
    histogram record_age;         /* fanout.c: Kafka timestamp to the record's fan-out, per feed with subscribers */
    histogram subscribe;          /* SUBSCRIBE in to SUBSCRIBED queued */
    histogram redis_rtt;          /* coord_redis.c: a script call sent to its reply */
    histogram relay_lag;          /* cluster.c: Kafka timestamp to a relayed record appended on a relay */
} node_histograms;

extern node_histograms node_hist;

/* Counts one observation of `seconds` (negative ones as 0). */
void histogram_observe(histogram *h, double seconds);

/* Microseconds of CLOCK_MONOTONIC: the start of a span observed with
 * histogram_observe_since. */
static inline uint64_t histogram_now_us(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000 + (uint64_t)ts.tv_nsec / 1000;
}

/* Observes the time since start_us (histogram_now_us). */
static inline void histogram_observe_since(histogram *h, uint64_t start_us) {
    histogram_observe(h, (double)(histogram_now_us() - start_us) / 1e6);
}

/* Observes the age of a record stamped ts_ms (Kafka's timestamp, wall-clock
 * milliseconds) by this host's wall clock; a record without one (ts_ms <= 0)
 * is not counted. */
void histogram_observe_age(histogram *h, int64_t ts_ms);

#endif
