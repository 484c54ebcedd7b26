/* timeval.h -- the node's time helpers: milliseconds as a timeval for libevent timers, and the monotonic clock (coord/ uses both). */
#ifndef SUBWAY_TIMEVAL_H
#define SUBWAY_TIMEVAL_H

#include <stdint.h>
#include <sys/time.h>
#include <time.h>

/* ms as a timeval, for event_add(). */
static inline struct timeval ms_timeval(uint64_t ms) {
    return (struct timeval){(time_t)(ms / 1000), (suseconds_t)(ms % 1000) * 1000};
}

/* Milliseconds of the monotonic clock: for deadlines and leases, which
 * wall-clock steps must not move. */
static inline uint64_t monotonic_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

#endif
