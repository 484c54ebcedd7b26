/* sub.c -- subscriptions: the one module that links a connection and a feed, and unlinks both sides. */
#include "broker/sub.h"

#include <event2/event.h>
#include <stdlib.h>
#include <string.h>

#include "broker/conn.h"
#include "broker/histogram.h"
#include "broker/xmalloc.h"

/* ---------------------------------------------------------- connection side */

static void conn_side_link(conn *c, sub *s) {
    if (c->nsubs == c->subs_cap) {
        c->subs_cap = c->subs_cap ? c->subs_cap * 2 : 4;
        c->subs = xreallocarray(c->subs, c->subs_cap, sizeof(*c->subs));
    }
    c->subs[c->nsubs++] = s;
}

static void conn_side_unlink(conn *c, sub *s) {
    for (size_t i = 0; i < c->nsubs; i++)
        if (c->subs[i] == s) {
            c->subs[i] = c->subs[--c->nsubs];
            return;
        }
}

/* ----------------------------------------------------------------- feed side */

static void feed_side_unlink(sub *s) {
    switch (s->state) {
    case SUB_WAIT_TOPIC:
        sub_list_del(&s->t->waiters, s);
        break;
    case SUB_WAIT_FEED:
        sub_list_del(&s->f->waiters, s);
        break;
    case SUB_ACTIVE:
        sub_list_del(&s->f->subs, s);
        s->f->nsubs--;
        break;
    }
}

sub *sub_new(feed_table *ft, conn *c, uint64_t req_id, topic *t, const char *key, size_t key_len,
              const proto_frame *start) {
    sub *s = xcalloc(1, sizeof(*s));
    if (start && start->start_mode != PROTO_START_NONE) {
        s->start.mode = (uint8_t)start->start_mode;
        s->start.arg = start->start_arg;
        if (start->position_cnt > 0) {
            s->start.positions = xreallocarray(NULL, start->position_cnt, sizeof(*s->start.positions));
            memcpy(s->start.positions, start->positions, start->position_cnt * sizeof(*s->start.positions));
            s->start.npositions = start->position_cnt;
        }
    }
    s->c = c;
    s->t = t;
    s->req_id = req_id;
    s->wildcard = key == NULL;
    if (key) s->key = xmemdup(key, key_len);
    s->key_len = key ? key_len : 0;
    s->state = SUB_WAIT_TOPIC;
    conn_side_link(c, s);
    ft->nsubs++;
    return s;
}

void sub_wait_topic(sub *s) {
    s->state = SUB_WAIT_TOPIC;
    sub_list_push(&s->t->waiters, s);
}

void sub_unwait_topic(sub *s) {
    sub_list_del(&s->t->waiters, s);
}

static proto_position *scratch_positions(feed_table *ft, size_t n) {
    if (n > ft->scratch_pos_cap) {
        ft->scratch_pos = xreallocarray(ft->scratch_pos, n, sizeof(*ft->scratch_pos));
        ft->scratch_pos_cap = n;
    }
    return ft->scratch_pos;
}

void sub_send_live(feed_table *ft, sub *s) {
    int32_t a, z;
    feed_range(s->f, &a, &z);
    size_t n = (size_t)(z - a + 1);
    proto_position *ps = scratch_positions(ft, n);
    for (int32_t p = a; p <= z; p++) {
        /* A partition of the catch-up: where it joined, moved on by the
         * live records it got since. One the feed began reading after
         * (the topic grew): the live feed's position, which it had every
         * record below; its log start while not known yet. */
        const cu_part *cp = s->cu ? cu_find(s->cu, p) : NULL;
        int64_t at = cp ? cp->pos : feed_live_pos(s->f, p);
        ps[p - a] = (proto_position){(uint32_t)p, (uint64_t)(at >= 0 ? at : 0)};
    }
    proto_frame fr = {.type = PROTO_LIVE, .feed = s->f->handle, .positions = ps, .position_cnt = n};
    conn_send(s->c, &fr);
}

/* Where each partition of s starts, as far as the start says without a
 * lookup (-1: to be looked up). */
static int64_t start_pos(const sub *s, int32_t p, int64_t live) {
    switch ((proto_start_mode)s->start.mode) {
    case PROTO_START_OFFSET:
        return s->start.arg;
    case PROTO_START_POSITIONS:
        for (size_t i = 0; i < s->start.npositions; i++)
            if ((int32_t)s->start.positions[i].partition == p) return (int64_t)s->start.positions[i].offset;
        return live;              /* not listed: live */
    case PROTO_START_NONE:
        return live;
    default:
        return -1;
    }
}

/* A version-2 subscription just activated: LIVE at once when it starts
 * live and the feed's positions are all known (the common case), else a
 * catch-up, filed for catchup.c. */
static void sub_begin(feed_table *ft, feed *f, sub *s) {
    int32_t a, z;
    feed_range(f, &a, &z);
    size_t n = (size_t)(z - a + 1);
    int known = s->start.mode == PROTO_START_NONE;
    for (int32_t p = a; known && p <= z; p++)
        if (feed_live_pos(f, p) < 0) known = 0;
    if (known) {
        sub_send_live(ft, s);
        return;
    }
    sub_catchup *cu = xcalloc(1, sizeof(*cu) + n * sizeof(cu->parts[0]));
    cu->nparts = n;
    cu->unjoined = n;
    for (int32_t p = a; p <= z; p++) {
        cu_part *cp = &cu->parts[p - a];
        cp->s = s;
        cp->partition = p;
        cp->state = CU_NEW;
        cp->pos = start_pos(s, p, feed_live_pos(f, p));
        cp->b_last = -1;
        cu_list_push(&ft->cu_new, cp);
    }
    s->cu = cu;
    if (ft->catchup_ev) event_active(ft->catchup_ev, EV_TIMEOUT, 0);
}

static void sub_start_free(sub *s) {
    free(s->start.positions);
    s->start.positions = NULL;
    s->start.npositions = 0;
}

int sub_catchup_needed(const sub *s) {
    const sub_catchup *cu = s->cu;
    if (!cu) return 0;
    if (!cu->live_sent) return 1;
    for (size_t i = 0; i < cu->nparts; i++)
        if (feed_live_pos(s->f, cu->parts[i].partition) < cu->parts[i].pos) return 1;
    return 0;
}

void sub_catchup_free(feed_table *ft, sub *s) {
    sub_catchup *cu = s->cu;
    if (!cu) return;
    for (size_t i = 0; i < cu->nparts; i++) {
        cu_part *cp = &cu->parts[i];
        /* An emptied reader is let go by catchup.c's next look. */
        if (cp->list && ft->catchup_ev) event_active(ft->catchup_ev, EV_TIMEOUT, 0);
        if (cp->state == CU_PARKED && cp->list) s->c->cu_parked--;
        cu_list_del(cp);
    }
    free(cu);
    s->cu = NULL;
}

/* Sends SUBSCRIBED and makes s receive records. */
static void sub_activate(feed_table *ft, feed *f, sub *s) {
    int32_t a, z;
    feed_range(f, &a, &z);
    size_t n = (size_t)(z - a + 1);
    if (n > ft->scratch_cap) {
        ft->scratch_parts = xreallocarray(ft->scratch_parts, n, sizeof(*ft->scratch_parts));
        ft->scratch_cap = n;
    }
    for (size_t i = 0; i < n; i++) ft->scratch_parts[i] = (uint32_t)a + (uint32_t)i;
    s->state = SUB_ACTIVE;
    s->f = f;
    sub_list_push(&f->subs, s);
    f->nsubs++;
    proto_frame fr = {.type = PROTO_SUBSCRIBED, .req_id = s->req_id, .feed = f->handle,
                      .partitions = ft->scratch_parts, .partition_cnt = n};
    conn_send(s->c, &fr);
    histogram_observe_since(&node_hist.subscribe, s->arrived_us);
    if (s->c->version >= 2) sub_begin(ft, f, s);
    sub_start_free(s);
}

void sub_attach(feed_table *ft, sub *s, feed *f) {
    free(s->key);
    s->key = NULL;
    s->f = f;
    if (f->ready) {
        sub_activate(ft, f, s);
    } else {
        s->state = SUB_WAIT_FEED;
        sub_list_push(&f->waiters, s);
    }
}

void sub_feed_ready(feed_table *ft, feed *f) {
    if (f->ready) return;
    f->ready = 1;
    while (f->waiters) {
        sub *s = f->waiters;
        sub_list_del(&f->waiters, s);
        sub_activate(ft, f, s);
    }
}

void sub_free(feed_table *ft, sub *s) {
    sub_catchup_free(ft, s);
    feed_side_unlink(s);
    conn_side_unlink(s->c, s);
    sub_start_free(s);
    free(s->key);
    free(s);
    ft->nsubs--;
}

void sub_fail(feed_table *ft, sub *s, proto_err code, const char *text) {
    conn_send_error(s->c, s->req_id, code, "%s", text);
    sub_free(ft, s);
}

static int sub_matches(const sub *s, const char *topic_name, size_t topic_len, const char *key, size_t key_len) {
    if (strlen(s->t->name) != topic_len || memcmp(s->t->name, topic_name, topic_len) != 0) return 0;
    int wildcard = key == NULL;
    if (s->f)
        return s->f->wildcard == wildcard &&
               (wildcard || (s->f->key_len == key_len && memcmp(s->f->key, key, key_len) == 0));
    return s->wildcard == wildcard && (wildcard || (s->key_len == key_len && memcmp(s->key, key, key_len) == 0));
}

void sub_feed_name(const sub *s, const char **topic_name, const char **key, size_t *key_len) {
    *topic_name = s->t->name;
    int wildcard = s->f ? s->f->wildcard : s->wildcard;
    *key = wildcard ? NULL : s->f ? s->f->key : s->key;
    *key_len = wildcard ? 0 : s->f ? s->f->key_len : s->key_len;
}

sub *sub_find(conn *c, const char *topic_name, size_t topic_len, const char *key, size_t key_len) {
    for (size_t i = 0; i < c->nsubs; i++)
        if (sub_matches(c->subs[i], topic_name, topic_len, key, key_len)) return c->subs[i];
    return NULL;
}

sub *sub_find_handle(conn *c, uint32_t handle) {
    for (size_t i = 0; i < c->nsubs; i++)
        if (c->subs[i]->state == SUB_ACTIVE && c->subs[i]->f->handle == handle) return c->subs[i];
    return NULL;
}

uint32_t sub_handle(const sub *s) {
    return s->state == SUB_ACTIVE ? s->f->handle : 0;
}

/* Connections are gone by then (they unsubscribe as they close), so the
 * lists are normally empty; what is left is freed without touching them. */
static void sub_list_free(feed_table *ft, sub **head) {
    while (*head) {
        sub *s = *head;
        sub_list_del(head, s);
        sub_catchup_free(ft, s);
        sub_start_free(s);
        free(s->key);
        free(s);
        ft->nsubs--;
    }
}

void sub_free_all(feed_table *ft, topic *t) {
    sub_list_free(ft, &t->waiters);
    for (feed *f = t->feeds; f; f = f->tnext) {
        sub_list_free(ft, &f->subs);
        sub_list_free(ft, &f->waiters);
        f->nsubs = 0;
    }
}
