/* ratelimit.h -- a token bucket: how much a client may do per second, with a burst of one second's worth. */
#ifndef SUBWAY_RATELIMIT_H
#define SUBWAY_RATELIMIT_H

#include <stdint.h>

typedef struct ratelimit {
    uint64_t rate;                /* units per second; 0: unlimited */
    int64_t tokens_milli;         /* thousandths of a unit: at most one second's worth, at least minus that */
    uint64_t last_ms;             /* when tokens were last refilled */
} ratelimit;

/* A full bucket (one second's worth) of rate units per second; 0 is unlimited. */
void ratelimit_init(ratelimit *r, uint64_t rate, uint64_t now_ms);

/* Spends n units. The bucket may go below zero once: a single request
 * larger than the burst still goes through, and the next waits for it.
 * Returns 0 when more may be spent now, or the milliseconds until the
 * bucket is positive again. */
uint64_t ratelimit_take(ratelimit *r, uint64_t n, uint64_t now_ms);

/* Milliseconds until the bucket is positive again (0: now). */
uint64_t ratelimit_wait_ms(ratelimit *r, uint64_t now_ms);

#endif
