/* coord.c -- dispatch from the coordination interface to its backend. */
#include "coord/coord.h"

#include <stddef.h>

void coord_acquire(coord *c, const coord_feed *f, coord_cb *cb, void *cb_data) {
    c->backend->acquire(c, f, cb, cb_data);
}

void coord_release(coord *c, const coord_feed *f, coord_cb *cb, void *cb_data) {
    c->backend->release(c, f, cb, cb_data);
}

long coord_count(coord *c, const coord_feed *f) {
    return c->backend->count(c, f);
}

size_t coord_feed_count(coord *c) {
    return c->backend->feed_count(c);
}

void coord_free(coord *c) {
    if (c) c->backend->free(c);
}
