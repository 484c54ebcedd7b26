/* sub.c -- subscriptions: the one module that links a connection and a feed, and unlinks both sides. */
#include "broker/sub.h"

#include <stdlib.h>
#include <string.h>

#include "broker/conn.h"
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

sub *sub_new(feed_table *ft, conn *c, uint64_t req_id, topic *t, const char *key, size_t key_len) {
    sub *s = xcalloc(1, sizeof(*s));
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
    feed_side_unlink(s);
    conn_side_unlink(s->c, s);
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
