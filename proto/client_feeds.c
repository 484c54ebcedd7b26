/* client_feeds.c -- the feeds a libsubway connection holds, from SUBSCRIBED until UNSUBSCRIBED, sorted by handle. */
#include "client_int.h"

#include <stdlib.h>
#include <string.h>

/* Frees what an entry owns. */
static void feed_clear(client_feed *fe) {
    free(fe->topic);
    free(fe->partitions);
}

/* Index of feed in the table, or where it would be inserted. */
static size_t feed_index(const subway_client *c, uint64_t feed) {
    size_t lo = 0, hi = c->feed_cnt;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (c->feeds[mid].feed < feed)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

client_feed *client_feed_find(const subway_client *c, uint64_t feed) {
    size_t i = feed_index(c, feed);
    return i < c->feed_cnt && c->feeds[i].feed == feed ? &c->feeds[i] : NULL;
}

/* Records feed with its topic (takes ownership of topic, even on failure)
 * and a copy of its partitions. Returns the entry, or NULL when out of memory. */
client_feed *client_feed_add(subway_client *c, uint64_t feed, char *topic,
                             const uint32_t *parts, size_t cnt) {
    uint32_t *pcopy = NULL;
    if (cnt > 0) {
        pcopy = malloc(cnt * sizeof(*pcopy));
        if (pcopy == NULL) goto oom;
        memcpy(pcopy, parts, cnt * sizeof(*pcopy));
    }
    size_t i = feed_index(c, feed);
    if (i < c->feed_cnt && c->feeds[i].feed == feed) {
        /* The node reused a handle it still gave us: the newest reply wins. */
        feed_clear(&c->feeds[i]);
    } else {
        if (c->feed_cnt == c->feed_cap) {
            size_t cap = c->feed_cap ? c->feed_cap * 2 : 8;
            client_feed *fs = realloc(c->feeds, cap * sizeof(*fs));
            if (fs == NULL) goto oom;
            c->feeds = fs;
            c->feed_cap = cap;
        }
        memmove(&c->feeds[i + 1], &c->feeds[i], (c->feed_cnt - i) * sizeof(*c->feeds));
        c->feed_cnt++;
    }
    c->feeds[i] = (client_feed){ feed, topic, pcopy, cnt, false };
    return &c->feeds[i];
oom:
    free(pcopy);
    free(topic);
    return NULL;
}

void client_feed_remove(subway_client *c, uint64_t feed) {
    size_t i = feed_index(c, feed);
    if (i >= c->feed_cnt || c->feeds[i].feed != feed) return;
    feed_clear(&c->feeds[i]);
    memmove(&c->feeds[i], &c->feeds[i + 1], (c->feed_cnt - i - 1) * sizeof(*c->feeds));
    c->feed_cnt--;
}

void client_feeds_free(subway_client *c) {
    for (size_t i = 0; i < c->feed_cnt; i++) feed_clear(&c->feeds[i]);
    free(c->feeds);
    c->feeds = NULL;
    c->feed_cnt = c->feed_cap = 0;
}

/* ============================================================ accessors */

const char *subway_feed_topic(const subway_client *c, uint64_t feed) {
    const client_feed *fe = client_feed_find(c, feed);
    return fe ? fe->topic : NULL;
}

const uint32_t *subway_feed_partitions(const subway_client *c, uint64_t feed,
                                       size_t *partition_cnt) {
    const client_feed *fe = client_feed_find(c, feed);
    if (partition_cnt) *partition_cnt = fe ? fe->partition_cnt : 0;
    return fe ? fe->partitions : NULL;
}
