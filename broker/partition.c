/* partition.c -- which partitions this node's consumer reads, and from where: the partition state machine. */
#include "broker/partition.h"

#include <event2/event.h>
#include <stdio.h>
#include <string.h>

#include "broker/fanout.h"
#include "broker/log.h"
#include "broker/sub.h"
#include "broker/upstream.h"

#define START_AT_LOG_END (-1)
#define START_AT_BEGINNING (-2)   /* librdkafka's RD_KAFKA_OFFSET_BEGINNING */
#define PART_RETRY_MS 1000        /* a failed partition lookup is tried again after this */

int part_feed_reads(const feed *f, int32_t p) {
    return f->has_parts && (f->partition < 0 || f->partition == p);
}

int part_all_assigned(const feed *f) {
    int32_t a, z;
    feed_range(f, &a, &z);
    for (int32_t p = a; p <= z; p++)
        if (f->t->parts[p].state != PART_ASSIGNED) return 0;
    return 1;
}

static void part_unref(feed_table *ft, topic *t, int32_t p) {
    tpart *tp = &t->parts[p];
    if (--tp->refs > 0) return;
    if (tp->state == PART_ASSIGNED) {
        upstream_unassign(ft->b->up, t->name, p);
        tp->gen = ++ft->gen_seq;
    }
    if (tp->state != PART_QUERYING) tp->state = PART_IDLE;
    tp->next = tp->head = tp->rewind = -1;
    /* PART_QUERYING stays: the answer is discarded when it comes. */
}

/* A partition being looked up (or waiting to be) starts from `from`
 * (an offset, or -1 for none) when that is lower than the log end and
 * than what others asked for. */
static void part_start_no_later_than(tpart *tp, int64_t from) {
    if (from >= 0 && (tp->rewind < 0 || from < tp->rewind)) tp->rewind = from;
}

/* A lookup for p failed while feeds still read it: ask again after
 * PART_RETRY_MS, from `from` when that is below the log end then, so a
 * partition feeds need is never left unread and nothing is skipped. */
static void part_retry_later(feed_table *ft, tpart *tp, int64_t from) {
    tp->state = PART_RETRY;
    part_start_no_later_than(tp, from);
    if (!event_pending(ft->retry_ev, EV_TIMEOUT, NULL)) {
        struct timeval tv = ms_timeval(PART_RETRY_MS);
        event_add(ft->retry_ev, &tv);
    }
}

/* Starts fetching p at offset (>= 0 or START_AT_BEGINNING), or at the log
 * end. Should the consumer refuse, the log end is looked up and the
 * partition assigned again then (from offset, when it is below it), so a
 * partition feeds need is never left unread. */
static void part_assign(feed_table *ft, topic *t, int32_t p, int64_t offset) {
    tpart *tp = &t->parts[p];
    tp->gen = ++ft->gen_seq;
    if (offset != START_AT_LOG_END && upstream_assign(ft->b->up, t->name, p, offset) == 0) {
        tp->state = PART_ASSIGNED;
        tp->next = offset >= 0 ? offset : -1;
        if (tp->next > tp->head) tp->head = tp->next;
        return;
    }
    tp->state = PART_QUERYING;
    tp->rewind = offset >= 0 ? offset : -1;
    upstream_query_start(ft->b->up, t->name, p);
}

/* References partition p; the first reference starts fetching it at start
 * (an offset, or one of the START_AT values). */
static void part_ref(feed_table *ft, topic *t, int32_t p, int64_t start) {
    tpart *tp = &t->parts[p];
    if (tp->refs++ > 0 || tp->state != PART_IDLE) return;
    if (start != START_AT_LOG_END)
        log_info("topic %s: fetching partition %d from %s %lld", t->name, (int)p,
                 start >= 0 ? "offset" : "the beginning", (long long)start);
    part_assign(ft, t, p, start);
}

/* Fetches an assigned partition again from offset, after an error or for
 * a feed taken over; the feeds on it skip what they had (next_off). */
static void part_reassign(feed_table *ft, topic *t, int32_t p, int64_t offset) {
    upstream_unassign(ft->b->up, t->name, p);
    part_assign(ft, t, p, offset);
}

void part_take(feed_table *ft, feed *f, const int64_t *offsets, size_t noffsets) {
    if (f->has_parts) return;
    f->has_parts = 1;
    topic *t = f->t;
    int32_t a, z;
    feed_range(f, &a, &z);
    for (int32_t p = a; p <= z; p++) {
        int64_t start = START_AT_LOG_END;
        for (size_t i = 0; i < noffsets; i++)
            if (offsets[2 * i] == p && offsets[2 * i + 1] >= 0) start = offsets[2 * i + 1];
        /* The feed's subscribers had everything below next_off already. */
        if (start >= 0 && f->next_off[p] > start) start = f->next_off[p];
        part_ref(ft, t, p, start);
        tpart *tp = &t->parts[p];
        if (start >= 0) {
            if (f->next_off[p] < start) f->next_off[p] = start;
            if (tp->state == PART_QUERYING || tp->state == PART_RETRY) part_start_no_later_than(tp, start);
            if (tp->state == PART_ASSIGNED && tp->next > start) {
                log_info("topic %s: reading partition %d again from offset %lld for a feed taken over", t->name,
                         (int)p, (long long)start);
                part_reassign(ft, t, p, start);
            }
        } else if (tp->state == PART_ASSIGNED) {
            /* Shared: from the furthest record read, even while the
             * partition is read again from further back for another feed. */
            if (f->next_off[p] < tp->head) f->next_off[p] = tp->head;
        }
    }
}

void part_drop(feed_table *ft, feed *f) {
    if (!f->has_parts) return;
    f->has_parts = 0;
    int32_t a, z;
    feed_range(f, &a, &z);
    /* next_off stays: what the feed's subscribers had, whoever brings the
     * records next (the relay, or this node again). */
    for (int32_t p = a; p <= z; p++) part_unref(ft, f->t, p);
}

/* ------------------------------------------------------- lookup answers */

int part_on_start(feed_table *ft, topic *t, int32_t partition, int64_t offset, const char *errstr, char *text,
                  size_t textlen) {
    tpart *tp = &t->parts[partition];
    if (tp->state != PART_QUERYING) return 0;
    int64_t rewind = tp->rewind, at = rewind >= 0 && rewind < offset ? rewind : offset;
    tp->rewind = -1;
    if (tp->refs == 0) {
        tp->state = PART_IDLE;    /* every feed that wanted it left meanwhile */
        return 0;
    }
    tp->gen = ++ft->gen_seq;
    if (!errstr && upstream_assign(ft->b->up, t->name, partition, at) < 0)
        errstr = "cannot add the partition to the consumer's assignment";
    if (errstr) {
        tp->state = PART_IDLE;
        /* Feeds with no one waiting (they already deliver, or linger) keep
         * it: they are not failed, and the partition is looked up again for
         * them. */
        int held = 0;
        for (feed *f = t->feeds; f; f = f->tnext)
            if ((f->ready || !f->waiters) && part_feed_reads(f, partition)) held = 1;
        if (held) {
            log_warn("partition %s/%d: %s; trying again", t->name, (int)partition, errstr);
            part_retry_later(ft, tp, rewind);
        }
        snprintf(text, textlen, "partition %s/%d: %s", t->name, (int)partition, errstr);
        return -1;
    }
    tp->state = PART_ASSIGNED;
    tp->next = at;
    if (offset > tp->head) tp->head = offset;
    for (feed *f = t->feeds; f; f = f->tnext) {
        if (!part_feed_reads(f, partition)) continue;
        /* Feeds that asked for the log end start there, even when a feed
         * taken over has the partition read from further back. */
        if (f->next_off[partition] < 0) f->next_off[partition] = offset;
        if (!f->ready && part_all_assigned(f)) sub_feed_ready(ft, f);
    }
    return 0;
}

/* The topic's partition, when the topic is ready and has it. */
static tpart *find_part(feed_table *ft, const char *topic_name, int32_t partition, topic **t_out) {
    topic *t = topic_find(ft, topic_name, strlen(topic_name));
    if (!t || !t->ready || partition < 0 || partition >= t->partition_cnt) return NULL;
    *t_out = t;
    return &t->parts[partition];
}

void part_on_out_of_range(feed_table *ft, const char *topic_name, int32_t partition, int64_t from) {
    topic *t;
    tpart *tp = find_part(ft, topic_name, partition, &t);
    upstream_query_reset(ft->b->up, topic_name, partition, from, tp ? tp->gen : 0);
}

void part_on_reset(feed_table *ft, const char *topic_name, int32_t partition, uint32_t gen, int64_t from,
                   int64_t offset, int64_t lost) {
    topic *t;
    tpart *tp = find_part(ft, topic_name, partition, &t);
    /* Reassigned since the error (a rewind, or released and taken again):
     * the answer is about a position nobody reads from any more. */
    if (!tp || tp->state != PART_ASSIGNED || tp->gen != gen) return;
    if (tp->next >= 0 && from != tp->next) {
        /* The error was raised for a position the partition had left by
         * the time it was taken from the queue (read again from elsewhere
         * meanwhile): fetch on from where it is now. */
        part_reassign(ft, t, partition, tp->next);
        return;
    }
    if (offset < 0) {
        /* The lookup failed: look again later, from the same position, so
         * nothing is skipped without a DROPPED. */
        log_warn("topic %s partition %d: where to resume is not known yet; trying again", t->name, (int)partition);
        upstream_unassign(ft->b->up, t->name, partition);
        tp->gen = ++ft->gen_seq;
        part_retry_later(ft, tp, from);
        return;
    }
    /* The consumer stopped the partition on the error: start it again. */
    part_reassign(ft, t, partition, offset);
    if (offset < from && offset < tp->head) tp->head = offset;
    if (lost > 0) {
        log_warn("topic %s partition %d: %lld records were gone before they were read", t->name, (int)partition,
                 (long long)lost);
        ft->b->ctr.lost += (uint64_t)lost;
    }
    for (feed *f = t->feeds; f; f = f->tnext) {
        if (!part_feed_reads(f, partition)) continue;
        /* Each feed had everything below the consumer's position, and more
         * when it is ahead of a rewind. */
        int64_t had = f->next_off[partition] > from ? f->next_off[partition] : from;
        if (offset > had) {
            /* Deleted under it: only what came after what it had. */
            fanout_append_lost(ft, f, partition, (uint64_t)(offset - had));
            f->next_off[partition] = offset;
        } else if (offset < from && f->next_off[partition] > offset) {
            /* The log was cut short: new records reuse the offsets of
             * vanished ones, and must not be taken for ones it had. */
            f->next_off[partition] = offset;
        }
    }
    fanout_flush(ft);
}

/* ------------------------------------------------------- topic growth */

void part_on_refresh(feed_table *ft, topic *t, int32_t cnt) {
    int32_t old = t->partition_cnt;
    if (cnt <= old) return;
    topic_set_partitions(t, cnt);
    log_info("topic %s: grew from %d to %d partitions; re-targeting its feeds", t->name, (int)old, (int)cnt);
    for (feed *f = t->feeds; f; f = f->tnext) {
        if (f->partition < 0) {       /* every partition: add the new ones, from their beginning */
            if (f->has_parts)
                for (int32_t p = old; p < cnt; p++) part_ref(ft, t, p, START_AT_BEGINNING);
            continue;
        }
        /* An exact key moves to where it now maps: from the beginning when
         * that partition is new, else from the log end. Subscribers keep
         * their feed handles. */
        int32_t to = partitioner_partition(t->ptr, f->key, f->key_len, cnt);
        if (to == f->partition) continue;
        if (f->has_parts) {
            part_ref(ft, t, to, to >= old ? START_AT_BEGINNING : START_AT_LOG_END);
            if (t->parts[to].state == PART_ASSIGNED) f->next_off[to] = t->parts[to].head;
            part_unref(ft, t, f->partition);
            f->next_off[f->partition] = -1;
        }
        f->partition = to;
    }
}

/* ------------------------------------------------------------- timers */

/* retry_ev: looks the partitions whose lookup failed up again. */
static void retry_cb(evutil_socket_t fd, short what, void *arg) {
    feed_table *ft = arg;
    TABLE_FOR_EACH_TOPIC(ft, t)
        for (int32_t p = 0; t->ready && p < t->partition_cnt; p++) {
            tpart *tp = &t->parts[p];
            if (tp->state != PART_RETRY) continue;
            tp->state = PART_QUERYING;
            upstream_query_start(ft->b->up, t->name, p);
        }
}

/* Every --metadata-refresh-ms: look again at the topics in use. */
static void refresh_cb(evutil_socket_t fd, short what, void *arg) {
    feed_table *ft = arg;
    TABLE_FOR_EACH_TOPIC(ft, t)
        if (t->ready) upstream_resolve_topic(ft->b->up, t->name);
}

int part_init(feed_table *ft) {
    broker *b = ft->b;
    ft->retry_ev = event_new(b->base, -1, 0, retry_cb, ft);
    if (!ft->retry_ev) return -1;
    if (b->cfg->metadata_refresh_ms > 0) {
        struct timeval tv = ms_timeval(b->cfg->metadata_refresh_ms);
        ft->refresh_ev = event_new(b->base, -1, EV_PERSIST, refresh_cb, ft);
        if (!ft->refresh_ev || event_add(ft->refresh_ev, &tv) < 0) return -1;
    }
    return 0;
}

void part_fini(feed_table *ft) {
    if (ft->refresh_ev) event_free(ft->refresh_ev);
    if (ft->retry_ev) event_free(ft->retry_ev);
    ft->refresh_ev = ft->retry_ev = NULL;
}
