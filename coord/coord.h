/* coord.h -- cluster coordination of feed reference counts, behind one interface with pluggable backends. */
#ifndef SUBWAY_COORD_H
#define SUBWAY_COORD_H

#include <stddef.h>
#include <stdint.h>

/* A feed as coordination sees it: topic plus an exact key, or every key. */
typedef struct coord_feed {
    const char *topic;            /* NUL-terminated */
    const char *key;              /* bytes; ignored when wildcard */
    size_t key_len;
    int wildcard;                 /* the topic/'*' feed */
} coord_feed;

typedef enum coord_status {
    COORD_ERROR = -1,             /* the change did not happen; errstr says why */
    COORD_OK = 0,                 /* count changed, was and stays above zero */
    COORD_FIRST = 1,              /* acquire took the cluster-wide count 0 -> 1 */
    COORD_LAST = 2,               /* release took the cluster-wide count 1 -> 0 */
} coord_status;

/* Completion of acquire/release: called exactly once, possibly before the
 * call that started it returns (the in-memory backend completes at once).
 * errstr is valid only during the call. */
typedef void coord_cb(void *cb_data, coord_status status, const char *errstr);

typedef struct coord coord;

/* A backend fills this table; coord.c dispatches through it. */
typedef struct coord_backend {
    const char *name;
    void (*acquire)(coord *c, const coord_feed *f, coord_cb *cb, void *cb_data);
    void (*release)(coord *c, const coord_feed *f, coord_cb *cb, void *cb_data);
    long (*count)(coord *c, const coord_feed *f);
    size_t (*feed_count)(coord *c);
    void (*free)(coord *c);
} coord_backend;

struct coord {
    const coord_backend *backend;
};

/* The single-node backend: counts in this process. Returns NULL on OOM. */
coord *coord_memory_new(void);

/* Adds one subscription to the feed's cluster-wide count; cb learns whether
 * it was the first. Copies what it needs of f. */
void coord_acquire(coord *c, const coord_feed *f, coord_cb *cb, void *cb_data);

/* Removes one subscription; cb learns whether it was the last. Releasing a
 * feed whose count is zero completes with COORD_ERROR. */
void coord_release(coord *c, const coord_feed *f, coord_cb *cb, void *cb_data);

/* The count as this node last knew it (cached for remote backends). */
long coord_count(coord *c, const coord_feed *f);

/* Feeds with a count above zero. */
size_t coord_feed_count(coord *c);

/* Frees the backend; accepts NULL. Pending callbacks are completed with
 * COORD_ERROR first. */
void coord_free(coord *c);

#endif
