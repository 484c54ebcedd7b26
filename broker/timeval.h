/* timeval.h -- the node's one milliseconds-to-timeval helper, for libevent timers (coord/ uses it too). */
#ifndef SUBWAY_TIMEVAL_H
#define SUBWAY_TIMEVAL_H

#include <stdint.h>
#include <sys/time.h>

/* ms as a timeval, for event_add(). */
static inline struct timeval ms_timeval(uint64_t ms) {
    return (struct timeval){(time_t)(ms / 1000), (suseconds_t)(ms % 1000) * 1000};
}

#endif
