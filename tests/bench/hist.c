/* hist.c -- log-linear latency histogram: percentiles to within 1.6%, no averages. */
#include "tests/bench/bench.h"

#include <string.h>

#define SUB (1u << HIST_SUB_BITS)

static unsigned msb64(uint64_t v) {
    return 63u - (unsigned)__builtin_clzll(v);
}

/* Bucket index of v. Bucket group g = 0 holds [0, SUB) exactly; group g >= 1
 * holds [SUB/2 << g, SUB << g) in SUB/2 slices of width 1 << g. */
static size_t bucket_of(uint64_t v) {
    if (v < SUB) return (size_t)v;
    unsigned e = msb64(v);                    /* >= HIST_SUB_BITS */
    unsigned g = e - HIST_SUB_BITS + 1;       /* >= 1 */
    if (g > HIST_EXP_MAX - HIST_SUB_BITS) return HIST_BUCKETS - 1;
    size_t slice = (size_t)(v >> g) - SUB / 2; /* 0 .. SUB/2-1 */
    return SUB + (size_t)(g - 1) * (SUB / 2) + slice;
}

/* Largest value that lands in bucket i. */
static uint64_t bucket_top(size_t i) {
    if (i < SUB) return i;
    size_t g = (i - SUB) / (SUB / 2) + 1;
    size_t slice = (i - SUB) % (SUB / 2);
    return (((uint64_t)(SUB / 2 + slice + 1)) << g) - 1;
}

void hist_reset(hist *h) {
    memset(h, 0, sizeof(*h));
}

void hist_add(hist *h, uint64_t v) {
    size_t b = bucket_of(v);
    if (b >= HIST_BUCKETS) b = HIST_BUCKETS - 1;
    h->counts[b]++;
    if (h->n == 0 || v < h->min) h->min = v;
    if (v > h->max) h->max = v;
    h->n++;
}

void hist_merge(hist *dst, const hist *src) {
    if (src->n == 0) return;
    for (size_t i = 0; i < HIST_BUCKETS; i++) dst->counts[i] += src->counts[i];
    if (dst->n == 0 || src->min < dst->min) dst->min = src->min;
    if (src->max > dst->max) dst->max = src->max;
    dst->n += src->n;
}

uint64_t hist_pct(const hist *h, double q) {
    if (h->n == 0) return 0;
    if (q >= 100.0) return h->max;
    /* The rank-th smallest sample, rank counted from 1. */
    uint64_t rank = (uint64_t)(q / 100.0 * (double)h->n + 0.999999);
    if (rank < 1) rank = 1;
    uint64_t seen = 0;
    for (size_t i = 0; i < HIST_BUCKETS; i++) {
        seen += h->counts[i];
        if (seen >= rank) {
            uint64_t top = bucket_top(i);
            if (top > h->max) top = h->max;
            if (top < h->min) top = h->min;
            return top;
        }
    }
    return h->max;
}
