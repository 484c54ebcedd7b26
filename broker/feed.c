/* feed.c -- the node's feed side as the rest of the node sees it: subscribe, unsubscribe, and Kafka's answers about topics. */
#include "broker/feed.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "broker/catchup.h"
#include "broker/cluster.h"
#include "broker/fanout.h"
#include "broker/freetopic.h"
#include "broker/histogram.h"
#include "broker/log.h"
#include "broker/names.h"
#include "broker/partition.h"
#include "broker/sub.h"
#include "broker/upstream.h"

feed_table *feed_table_new(broker *b) {
    feed_table *ft = table_new(b);
    if (part_init(ft) < 0 || cluster_init(ft) < 0 || catchup_init(ft) < 0) {
        feed_table_free(ft);
        return NULL;
    }
    return ft;
}

void feed_table_free(feed_table *ft) {
    if (!ft) return;
    catchup_fini(ft);
    /* Destroying a topic's last feed frees the topic. */
    for (size_t i = 0; ft->tbuckets && i < ft->ntbuckets; i++) {
        while (ft->tbuckets[i]) {
            topic *t = ft->tbuckets[i];
            sub_free_all(ft, t);
            if (!t->feeds)
                topic_maybe_free(ft, t);
            else
                while (ft->tbuckets[i] == t) cluster_retire(ft, t->feeds);
        }
    }
    freetopic_fini(ft);
    part_fini(ft);
    cluster_fini(ft);
    fanout_fini(ft);
    free(ft->scratch_parts);
    free(ft->scratch_pos);
    table_free(ft);
}

size_t feed_table_count(const feed_table *ft) {
    return ft->nfeeds;
}

/* ------------------------------------------------------------ subscribing */

static partitioner topic_partitioner(feed_table *ft, const char *name) {
    const config *cfg = ft->b->cfg;
    for (size_t i = cfg->partitioner_cnt; i-- > 0;)
        if (strcmp(cfg->partitioners[i].name, name) == 0)
            return (partitioner)partitioner_parse(cfg->partitioners[i].value);
    return (partitioner)partitioner_parse(cfg->default_partitioner);
}

/* The topic, asked about at once when new. */
static topic *topic_get(feed_table *ft, const char *name, size_t len) {
    topic *t = topic_find(ft, name, len);
    if (t) return t;
    freetopic_spare(ft, name, len);   /* wanted again within the grace */
    t = topic_create(ft, name, len, PARTITIONER_MURMUR2);
    t->ptr = topic_partitioner(ft, t->name);
    upstream_resolve_topic(ft->b->up, t->name);
    return t;
}

/* Joins s (its topic ready) to its feed, creating the feed, and counts it
 * with coordination. */
static void attach(feed_table *ft, sub *s) {
    topic *t = s->t;
    feed *f = feed_find(ft, t, s->key, s->key_len, s->wildcard);
    if (!f) f = feed_create(ft, t, s->key, s->key_len, s->wildcard);
    sub_attach(ft, s, f);
    cluster_acquire(ft, f);
}

sub *feed_subscribe(feed_table *ft, conn *c, const proto_frame *req, proto_err *code, char *err, size_t errlen) {
    const char *topic_name = req->topic.ptr, *key = req->key.ptr;
    size_t topic_len = req->topic.len, key_len = req->key.len;
    if (!names_topic_ok(topic_name, topic_len)) {
        *code = PROTO_E_INVALID_ARG;
        snprintf(err, errlen, "topic must be " NAMES_TOPIC_RULE " (got %zu bytes)", topic_len);
        return NULL;
    }
    if (key && key_len == 1 && key[0] == '*') {
        *code = PROTO_E_INVALID_ARG;
        snprintf(err, errlen, "key '*' names the every-key feed; subscribe with a nil key for it");
        return NULL;
    }
    if (!coord_up(ft->b->coord)) {
        *code = PROTO_E_UNAVAILABLE;
        snprintf(err, errlen, "coordination store unreachable; retry shortly");
        return NULL;
    }
    if (key && (key_len < 1 || key_len > ft->b->cfg->max_key)) {
        *code = PROTO_E_INVALID_ARG;
        snprintf(err, errlen, "key must be 1..%llu bytes (got %zu); use nil for every key",
                 (unsigned long long)ft->b->cfg->max_key, key_len);
        return NULL;
    }
    topic *t = topic_get(ft, topic_name, topic_len);
    sub *s = sub_new(ft, c, req->req_id, t, key, key_len, req);
    s->arrived_us = histogram_now_us();
    /* Attaching may send SUBSCRIBED now; that only queues output. */
    if (t->ready)
        attach(ft, s);
    else
        sub_wait_topic(s);
    return s;
}

void feed_unsubscribe(feed_table *ft, sub *s) {
    topic *t = s->t;
    feed *f = s->f;
    sub_free(ft, s);
    if (f)
        cluster_release(ft, f);
    else
        topic_maybe_free(ft, t);
}

/* ---------------------------------------------------------- Kafka answers */

void feed_on_topic_resolved(feed_table *ft, const char *topic_name, int32_t partition_cnt, proto_err code,
                            const char *errstr) {
    topic *t = topic_find(ft, topic_name, strlen(topic_name));
    if (!t) return;
    if (t->ready) {               /* a refresh */
        if (code == PROTO_E_NONE) part_on_refresh(ft, t, partition_cnt);
        return;
    }
    if (code == PROTO_E_NONE && partition_cnt <= 0) code = PROTO_E_KAFKA, errstr = "topic has no partitions";
    if (code != PROTO_E_NONE) {
        /* Not cached: the topic may exist at the next attempt. */
        while (t->waiters) sub_fail(ft, t->waiters, code, errstr);
        topic_maybe_free(ft, t);
        return;
    }
    topic_set_partitions(t, partition_cnt);
    t->ready = 1;
    log_debug("topic %s: %d partitions, partitioner %s", t->name, partition_cnt, partitioner_name(t->ptr));
    while (t->waiters) {
        sub *s = t->waiters;
        sub_unwait_topic(s);
        attach(ft, s);
    }
}

void feed_on_partition_start(feed_table *ft, const char *topic_name, int32_t partition, int64_t offset,
                             const char *errstr) {
    topic *t = topic_find(ft, topic_name, strlen(topic_name));
    if (!t || !t->ready || partition < 0 || partition >= t->partition_cnt) return;
    char text[512];
    if (part_on_start(ft, t, partition, offset, errstr, text, sizeof(text)) == 0) return;
    /* Fail the subscriptions waiting on it; the feed then goes. Feeds that
     * deliver already keep the partition (looked up again), and t with it. */
    for (feed *f = t->feeds, *next; f; f = next) {
        next = f->tnext;
        int32_t a, z;
        feed_range(f, &a, &z);
        if (f->ready || !f->has_parts || partition < a || partition > z) continue;
        long failed = 0;
        while (f->waiters) {
            sub_fail(ft, f->waiters, PROTO_E_KAFKA, text);
            failed++;
        }
        /* The last release may free f: it is not touched after. */
        while (failed-- > 0) cluster_release(ft, f);
    }
}
