/* coord.c -- dispatch from the coordination interface to its backend, and feed names. */
#include "coord/coord.h"

#include <string.h>

void coord_set_events(coord *c, const coord_events *ev) {
    c->ev = *ev;
}

void coord_acquire(coord *c, const coord_feed *f, coord_cb *cb, void *cb_data) {
    c->backend->acquire(c, f, cb, cb_data);
}

void coord_release(coord *c, const coord_feed *f, long local_after, coord_cb *cb, void *cb_data) {
    c->backend->release(c, f, local_after, cb, cb_data);
}

void coord_claim(coord *c, const coord_feed *f, int announce, coord_cb *cb, void *cb_data) {
    c->backend->claim(c, f, announce, cb, cb_data);
}

void coord_renew(coord *c, const coord_feed *f, coord_cb *cb, void *cb_data) {
    c->backend->renew(c, f, cb, cb_data);
}

void coord_disown(coord *c, const coord_feed *f, coord_cb *cb, void *cb_data) {
    c->backend->disown(c, f, cb, cb_data);
}

void coord_assert(coord *c, const coord_feed *f, long local, int own, coord_cb *cb, void *cb_data) {
    c->backend->assert_state(c, f, local, own, cb, cb_data);
}

void coord_resign(coord *c, const coord_feed *f, const char *data, size_t len, const int64_t *offsets,
                  size_t noffsets) {
    c->backend->resign(c, f, data, len, offsets, noffsets);
}

void coord_relay(coord *c, const coord_feed *f, const char *data, size_t len, const int64_t *offsets,
                 size_t noffsets) {
    c->backend->relay(c, f, data, len, offsets, noffsets);
}

void coord_watch(coord *c, const coord_feed *f, coord_watch_kind kind) {
    c->backend->watch(c, f, kind);
}

int coord_up(coord *c) {
    return c->backend->up(c);
}

void coord_topic_in_use(coord *c, const char *topic, coord_used_cb *cb, void *cb_data) {
    c->backend->topic_in_use(c, topic, cb, cb_data);
}

void coord_list_feeds(coord *c, size_t offset, size_t limit, coord_list_cb *cb, void *cb_data) {
    c->backend->list_feeds(c, offset, limit, cb, cb_data);
}

/* Nothing to do: the per-topic index holds an entry only while its node holds
 * the feed (coord_redis.c), so a deleted topic leaves none behind. */
void coord_topic_forget(coord *c, const char *topic) {}

void coord_free(coord *c) {
    if (c) c->backend->free(c);
}

size_t coord_feed_name_len(const coord_feed *f) {
    return strlen(f->topic) + 1 + (f->wildcard ? 1 : f->key_len);
}

size_t coord_feed_name(const coord_feed *f, char *out) {
    size_t tl = strlen(f->topic);
    memcpy(out, f->topic, tl);
    out[tl] = '/';
    size_t n = tl + 1;
    if (f->wildcard) {
        out[n++] = '*';
    } else {
        memcpy(out + n, f->key, f->key_len);
        n += f->key_len;
    }
    out[n] = '\0';
    return n;
}
