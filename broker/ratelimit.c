/* ratelimit.c -- a token bucket: how much a client may do per second, with a burst of one second's worth. */
#include "broker/ratelimit.h"

#define BURST_MILLI(r) ((int64_t)(r)->rate * 1000)

void ratelimit_init(ratelimit *r, uint64_t rate, uint64_t now_ms) {
    r->rate = rate;
    r->tokens_milli = BURST_MILLI(r);
    r->last_ms = now_ms;
}

static void refill(ratelimit *r, uint64_t now_ms) {
    if (now_ms <= r->last_ms) return;
    uint64_t elapsed = now_ms - r->last_ms;
    r->last_ms = now_ms;
    if (elapsed >= 2000) {            /* long enough to fill from any debt */
        r->tokens_milli = BURST_MILLI(r);
        return;
    }
    r->tokens_milli += (int64_t)(elapsed * r->rate); /* rate units a second = rate thousandths a millisecond */
    if (r->tokens_milli > BURST_MILLI(r)) r->tokens_milli = BURST_MILLI(r);
}

uint64_t ratelimit_wait_ms(ratelimit *r, uint64_t now_ms) {
    if (r->rate == 0) return 0;
    refill(r, now_ms);
    if (r->tokens_milli > 0) return 0;
    return (uint64_t)(-r->tokens_milli) / r->rate + 1;
}

uint64_t ratelimit_take(ratelimit *r, uint64_t n, uint64_t now_ms) {
    if (r->rate == 0) return 0;
    refill(r, now_ms);
    /* The debt is at most one burst, so one huge request costs a second. */
    r->tokens_milli -= n > r->rate ? BURST_MILLI(r) : (int64_t)n * 1000;
    if (r->tokens_milli < -BURST_MILLI(r)) r->tokens_milli = -BURST_MILLI(r);
    return ratelimit_wait_ms(r, now_ms);
}
