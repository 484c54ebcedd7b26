/* histogram.c -- the node's latency histograms: fixed buckets in seconds, observed on the loop thread, read by GET /metrics. */
#include "broker/histogram.h"

const double histogram_bounds[HISTOGRAM_NBOUNDS] = {HISTOGRAM_BOUNDS};

node_histograms node_hist;

void histogram_observe(histogram *h, double seconds) {
    if (!(seconds > 0)) seconds = 0;  /* a wall clock behind the producer's, or NaN */
    size_t i = 0;
    while (i < HISTOGRAM_NBOUNDS && seconds > histogram_bounds[i]) i++;
    h->buckets[i]++;
    h->count++;
    h->sum += seconds;
}

void histogram_observe_age(histogram *h, int64_t ts_ms) {
    if (ts_ms <= 0) return;
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    double now_ms = (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
    histogram_observe(h, (now_ms - (double)ts_ms) / 1e3);
}
