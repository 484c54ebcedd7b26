/* client_feeds.c -- libsubway's subscriptions: stable feed ids, the node's handles mapped to them, and each one's remembered positions. */
#include "client_int.h"

#include <stdlib.h>
#include <string.h>

/* ================================================================ helpers */

/* Frees what an entry owns. */
static void feed_clear(client_feed *fe) {
    free(fe->topic);
    free(fe->key);
    free(fe->partitions);
    free(fe->pos);
}

/* Index of id in the table, or where it would be inserted. */
static size_t feed_index(const subway_client *c, uint64_t id) {
    return CLIENT_LOWER_BOUND(client_feed, c->feeds, c->feed_cnt, id, id);
}

/* Index of handle in the handle index, or where it would be inserted. */
static size_t handle_index(const subway_client *c, uint64_t handle) {
    return CLIENT_LOWER_BOUND(client_handle, c->handles, c->handle_cnt, handle, handle);
}

static bool has_handle(const client_feed *fe) {
    return fe->state == FEED_BOUND || fe->state == FEED_LEAVING;
}

/* Moves fe to state st, counting the unanswered ones waiting to be sent:
 * they are requests awaiting a reply (subway_pending, max_pending). */
static void feed_set_state(subway_client *c, client_feed *fe, feed_state st) {
    if (!fe->answered && !fe->cancelled) {
        if (fe->state == FEED_UNSENT && st != FEED_UNSENT) c->unsent_owed--;
        if (fe->state != FEED_UNSENT && st == FEED_UNSENT) c->unsent_owed++;
    }
    fe->state = st;
}

/* Drops handle from the index, if there. */
static void handle_remove(subway_client *c, uint64_t handle) {
    size_t i = handle_index(c, handle);
    if (i >= c->handle_cnt || c->handles[i].handle != handle) return;
    memmove(&c->handles[i], &c->handles[i + 1], (c->handle_cnt - i - 1) * sizeof(*c->handles));
    c->handle_cnt--;
}

/* Index of partition in fe's positions, or where it would be inserted. */
static size_t pos_index(const client_feed *fe, uint32_t partition) {
    return CLIENT_LOWER_BOUND(subway_position, fe->pos, fe->pos_cnt, partition, partition);
}

/* Sets partition's position to offset, adding it when new. Returns 0, or
 * -1 when out of memory (nothing changed). */
static int pos_set(client_feed *fe, uint32_t partition, uint64_t offset) {
    size_t i = pos_index(fe, partition);
    if (i < fe->pos_cnt && fe->pos[i].partition == partition) {
        fe->pos[i].offset = offset;
        return 0;
    }
    subway_position *p = client_grow(fe->pos, &fe->pos_cap, fe->pos_cnt + 1, sizeof(*p));
    if (p == NULL) return -1;
    fe->pos = p;
    memmove(&fe->pos[i + 1], &fe->pos[i], (fe->pos_cnt - i) * sizeof(*fe->pos));
    fe->pos[i] = (subway_position){ partition, offset };
    fe->pos_cnt++;
    return 0;
}

/* ================================================================ lookups */

client_feed *client_feed_get(const subway_client *c, uint64_t id) {
    size_t i = feed_index(c, id);
    return i < c->feed_cnt && c->feeds[i].id == id ? &c->feeds[i] : NULL;
}

client_feed *client_feed_find(const subway_client *c, uint64_t id) {
    client_feed *fe = client_feed_get(c, id);
    return fe && !fe->cancelled ? fe : NULL;
}

client_feed *client_feed_by_handle(const subway_client *c, uint64_t handle) {
    size_t i = handle_index(c, handle);
    if (i >= c->handle_cnt || c->handles[i].handle != handle) return NULL;
    return client_feed_get(c, c->handles[i].id);
}

/* ============================================================== lifecycle */

client_feed *client_feed_add(subway_client *c, const char *topic, const char *key,
                             size_t key_len, const subway_start *start) {
    client_feed *fs = client_grow(c->feeds, &c->feed_cap, c->feed_cnt + 1, sizeof(*fs));
    if (fs == NULL) return NULL;
    c->feeds = fs;
    client_feed fe = { .id = c->next_feed_id, .state = FEED_UNSENT };
    fe.topic = client_strdup(topic);
    if (fe.topic == NULL) goto oom;
    if (key) {
        /* An empty key is not nil: it still needs a pointer. */
        fe.key = malloc(key_len ? key_len : 1);
        if (fe.key == NULL) goto oom;
        if (key_len) memcpy(fe.key, key, key_len);
        fe.key_len = key_len;
    }
    if (start) {
        fe.start_mode = start->mode;
        fe.start_arg = start->arg;
        if (start->mode == SUBWAY_START_POSITIONS)
            for (size_t i = 0; i < start->position_cnt; i++)
                if (pos_set(&fe, start->positions[i].partition, start->positions[i].offset) < 0)
                    goto oom;
    }
    /* Ids only grow, so appending keeps the table sorted. */
    c->feeds[c->feed_cnt++] = fe;
    c->next_feed_id++;
    c->unsent_owed++;
    return &c->feeds[c->feed_cnt - 1];
oom:
    feed_clear(&fe);
    return NULL;
}

int client_feed_bind(subway_client *c, client_feed *fe, uint64_t handle,
                     const uint32_t *parts, size_t cnt) {
    uint32_t *pcopy = NULL;
    if (cnt > 0) {
        pcopy = malloc(cnt * sizeof(*pcopy));
        if (pcopy == NULL) return -1;
        memcpy(pcopy, parts, cnt * sizeof(*pcopy));
    }
    client_handle *hs = client_grow(c->handles, &c->handle_cap, c->handle_cnt + 1, sizeof(*hs));
    if (hs == NULL) {
        free(pcopy);
        return -1;
    }
    c->handles = hs;
    client_feed *other = client_feed_by_handle(c, handle);
    if (other && other != fe) {
        /* The node reused a handle it still gave us: the newest reply
         * wins, and the other subscription asks again. */
        client_feed_unbind(c, other);
        client_plan_resubscribe(c);
    }
    if (has_handle(fe)) handle_remove(c, fe->handle);
    size_t i = handle_index(c, handle);
    memmove(&c->handles[i + 1], &c->handles[i], (c->handle_cnt - i) * sizeof(*c->handles));
    c->handles[i] = (client_handle){ handle, fe->id };
    c->handle_cnt++;
    free(fe->partitions);
    fe->partitions = pcopy;
    fe->partition_cnt = cnt;
    fe->handle = handle;
    feed_set_state(c, fe, FEED_BOUND);
    return 0;
}

void client_feed_unbind(subway_client *c, client_feed *fe) {
    if (has_handle(fe)) handle_remove(c, fe->handle);
    fe->handle = 0;
    feed_set_state(c, fe, FEED_UNSENT);
}

void client_feed_sent(subway_client *c, client_feed *fe) {
    feed_set_state(c, fe, FEED_SENT);
}

void client_feed_remove(subway_client *c, uint64_t id) {
    size_t i = feed_index(c, id);
    if (i >= c->feed_cnt || c->feeds[i].id != id) return;
    client_feed *fe = &c->feeds[i];
    if (has_handle(fe)) handle_remove(c, fe->handle);
    if (!fe->answered && !fe->cancelled && fe->state == FEED_UNSENT) c->unsent_owed--;
    feed_clear(fe);
    memmove(&c->feeds[i], &c->feeds[i + 1], (c->feed_cnt - i - 1) * sizeof(*c->feeds));
    c->feed_cnt--;
}

void client_feeds_unbind_all(subway_client *c) {
    c->handle_cnt = 0;
    size_t j = 0;
    for (size_t i = 0; i < c->feed_cnt; i++) {
        client_feed *fe = &c->feeds[i];
        if (fe->cancelled) {
            feed_clear(fe);
            continue;
        }
        fe->handle = 0;
        feed_set_state(c, fe, FEED_UNSENT);
        c->feeds[j++] = *fe;
    }
    c->feed_cnt = j;
}

void client_feeds_fail_unanswered(subway_client *c, int code, const char *errstr) {
    /* One at a time, from a fresh search: a callback may change the table. */
    for (;;) {
        size_t i = 0;
        while (i < c->feed_cnt && (c->feeds[i].answered || c->feeds[i].cancelled)) i++;
        if (i == c->feed_cnt) return;
        subway_reply_cb *cb = c->feeds[i].cb;
        void *cb_data = c->feeds[i].cb_data;
        subway_result res = { .req_id = c->feeds[i].user_req_id, .type = SUBWAY_REQ_SUBSCRIBE };
        client_feed_remove(c, c->feeds[i].id);
        if (cb) cb(c, cb_data, code, errstr, &res);
    }
}

void client_feeds_free(subway_client *c) {
    for (size_t i = 0; i < c->feed_cnt; i++) feed_clear(&c->feeds[i]);
    free(c->feeds);
    free(c->handles);
    free(c->scratch_pos);
    c->feeds = NULL;
    c->handles = NULL;
    c->scratch_pos = NULL;
    c->feed_cnt = c->feed_cap = c->handle_cnt = c->handle_cap = c->scratch_cap = 0;
}

/* ============================================================== positions */

bool client_feed_record(subway_client *c, client_feed *fe, uint32_t partition, uint64_t offset) {
    if (fe->skip_seen) {
        size_t i = pos_index(fe, partition);
        if (i < fe->pos_cnt && fe->pos[i].partition == partition && offset < fe->pos[i].offset)
            return false;
    }
    if (offset < UINT64_MAX) pos_set(fe, partition, offset + 1);
    return true;
}

int client_feed_live(subway_client *c, client_feed *fe, const proto_position *ps, size_t n) {
    /* LIVE names every partition the feed reads, each exactly: it replaces
     * what records and the start left, which keeps a POSITIONS resume to
     * partitions the node will accept. */
    int rc = 0;
    fe->pos_cnt = 0;
    for (size_t i = 0; i < n; i++)
        if (pos_set(fe, ps[i].partition, ps[i].offset) < 0) rc = -1;
    fe->had_live = true;
    fe->skip_seen = false;
    return rc;
}

int client_feed_start(subway_client *c, client_feed *fe, proto_frame *f, bool *unresumed) {
    subway_start_mode mode = fe->start_mode;
    bool from_pos = mode == SUBWAY_START_POSITIONS ||
                    (fe->answered && (fe->had_live || (fe->pos_cnt > 0 && mode == SUBWAY_START_LIVE)));
    fe->skip_seen = false;
    *unresumed = false;
    if (from_pos) {
        mode = SUBWAY_START_POSITIONS;
    } else if (fe->answered && fe->pos_cnt > 0) {
        /* Records came, but not every partition's position: the original
         * start again, skipping what was delivered. */
        fe->skip_seen = true;
    }
    if (mode != SUBWAY_START_LIVE && c->version < 2 && fe->answered) {
        /* A version-1 node can only restart it live. */
        mode = SUBWAY_START_LIVE;
        fe->skip_seen = false;
        *unresumed = true;
    }
    f->start_mode = (uint64_t)mode;
    f->start_arg = mode == SUBWAY_START_POSITIONS ? 0 : fe->start_arg;
    f->positions = NULL;
    f->position_cnt = 0;
    if (mode != SUBWAY_START_POSITIONS || fe->pos_cnt == 0) return 0;
    proto_position *p = client_grow(c->scratch_pos, &c->scratch_cap, fe->pos_cnt, sizeof(*p));
    if (p == NULL) return -1;
    c->scratch_pos = p;
    for (size_t i = 0; i < fe->pos_cnt; i++)
        c->scratch_pos[i] = (proto_position){ fe->pos[i].partition, fe->pos[i].offset };
    f->positions = c->scratch_pos;
    f->position_cnt = fe->pos_cnt;
    return 0;
}

/* ============================================================ accessors */

const char *subway_feed_topic(const subway_client *c, uint64_t feed) {
    const client_feed *fe = client_feed_find(c, feed);
    return fe && fe->answered ? fe->topic : NULL;
}

const uint32_t *subway_feed_partitions(const subway_client *c, uint64_t feed,
                                       size_t *partition_cnt) {
    const client_feed *fe = client_feed_find(c, feed);
    if (fe && !fe->answered) fe = NULL;
    if (partition_cnt) *partition_cnt = fe ? fe->partition_cnt : 0;
    return fe ? fe->partitions : NULL;
}

const subway_position *subway_feed_positions(const subway_client *c, uint64_t feed,
                                             size_t *position_cnt) {
    const client_feed *fe = client_feed_find(c, feed);
    if (fe && (!fe->answered || fe->pos_cnt == 0)) fe = NULL;
    if (position_cnt) *position_cnt = fe ? fe->pos_cnt : 0;
    return fe ? fe->pos : NULL;
}

int subway_feed_handle(const subway_client *c, uint64_t feed, uint64_t *handle) {
    const client_feed *fe = client_feed_find(c, feed);
    if (fe == NULL || !has_handle(fe)) return -1;
    if (handle) *handle = fe->handle;
    return 0;
}
