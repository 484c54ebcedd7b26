/* fanout.c -- records into shared blocks: encoded once per feed per loop turn, referenced by every subscriber, relayed once. */
#include "broker/fanout.h"

#include <stdlib.h>
#include <string.h>

#include "broker/conn.h"
#include "broker/histogram.h"
#include "broker/log.h"
#include "broker/xmalloc.h"
#include "broker/timeval.h"
#include "broker/relaywire.h"
#include "broker/sub.h"

/* Appends a frame to f's batch, marked with its partition and offset (-1
 * for a DROPPED). */
static void encode(feed *f, const proto_frame *fr, int32_t partition, int64_t offset) {
    if (proto_encode(&f->batch, fr) < 0) {
        log_error("out of memory encoding a frame of feed %s", feed_label(f));
        abort();
    }
    if (f->nmarks == f->marks_cap) {
        f->marks_cap = f->marks_cap ? 2 * f->marks_cap : 16;
        f->marks = xreallocarray(f->marks, f->marks_cap, sizeof(*f->marks));
    }
    f->marks[f->nmarks++] = (batch_mark){partition, offset, fr->type == PROTO_DROPPED ? fr->count : 0, f->batch.len};
}

/* Puts f on the list fanout_flush() hands out. */
static void mark_dirty(feed_table *ft, feed *f) {
    if (!f->dirty) {
        f->dirty = 1;
        f->dirty_next = ft->dirty;
        ft->dirty = f;
    }
}

/* 1 when what is appended to f now reaches someone: its subscribers or
 * the relay, once it delivers (a relay delivers after its sync marker). */
static int feed_listened(const feed *f) {
    return (f->ready || f->has_parts) && (f->nsubs > 0 || f->relay_on);
}

void fanout_append(feed_table *ft, feed *f, int32_t partition, int64_t offset, int64_t ts_ms, const void *key,
                   size_t key_len, const void *value, size_t value_len, const proto_header *headers,
                   size_t header_cnt) {
    if (!feed_listened(f)) return;
    if (f->partition >= 0 && f->partition != partition) return;
    /* Had already: read again for another feed, read by a repair and then
     * relayed, or relayed again by a new owner from its resume offsets. */
    if (offset < f->next_off[partition]) return;
    f->next_off[partition] = offset + 1;
    size_t before = f->batch.len;
    proto_frame fr = {
        .type = PROTO_MESSAGE, .feed = f->handle, .partition = (uint32_t)partition,
        .offset = (uint64_t)offset, .timestamp_ms = ts_ms,
        .key = {key, key_len}, .value = {value, value_len},
        .headers = headers, .header_cnt = header_cnt,
    };
    encode(f, &fr, partition, offset);
    if (f->batch.len - before - PROTO_HEADER_SIZE > ft->b->cfg->max_message) {
        /* No client takes a frame that big (PROTOCOL.md 5.3): the record
         * is told as missed, right where it was. */
        f->batch.len = before;
        f->nmarks--;
        ft->b->ctr.oversize++;
        fanout_append_lost(ft, f, partition, 1);
        return;
    }
    if (f->nsubs) histogram_observe_age(&node_hist.record_age, ts_ms);
    f->batch_records++;
    f->records++;
    mark_dirty(ft, f);
}

void fanout_append_lost(feed_table *ft, feed *f, int32_t partition, uint64_t lost) {
    if (!feed_listened(f)) return;
    proto_frame d = {.type = PROTO_DROPPED, .feed = f->handle, .count = lost};
    encode(f, &d, partition, -1);
    f->batch_lost += lost;
    mark_dirty(ft, f);
}

void fanout_record(feed_table *ft, const char *topic_name, int32_t partition, int64_t offset, int64_t ts_ms,
                   const void *key, size_t key_len, const void *value, size_t value_len, const proto_header *headers,
                   size_t header_cnt) {
    topic *t = topic_find(ft, topic_name, strlen(topic_name));
    ft->b->ctr.records_in++;
    ft->b->ctr.bytes_in += key_len + value_len;
    if (!t || !t->ready) return;
    if (partition >= 0 && partition < t->partition_cnt) {
        tpart *tp = &t->parts[partition];
        tp->next = offset + 1;
        if (tp->next > tp->head) tp->head = tp->next;
    }
    /* Only feeds reading from Kafka here take the record: a relayed feed of
     * a partition this node reads for another feed gets it from its owner. */
    feed *w = t->wild;
    if (w && w->has_parts)
        fanout_append(ft, w, partition, offset, ts_ms, key, key_len, value, value_len, headers, header_cnt);
    if (key && key_len > 0) {
        feed *f = feed_find(ft, t, key, key_len, 0);
        if (f && f->has_parts)
            fanout_append(ft, f, partition, offset, ts_ms, key, key_len, value, value_len, headers, header_cnt);
    }
}

size_t fanout_resume_offsets(feed_table *ft, const feed *f) {
    int32_t a, z;
    feed_range(f, &a, &z);
    return relaywire_resume_offsets(f->next_off, f->t->parts, a, z, f->has_parts, ft->relay_offsets,
                                    COORD_MAX_OFFSETS);
}

int fanout_may_relay(feed *f) {
    if (f->role != ROLE_OWNER || f->fenced) return 0;
    if (f->lease_until && monotonic_ms() >= f->lease_until) {
        /* Woken from a pause, or cut off from the store: the lease may be
         * another node's by now. Checked here, before acting. */
        f->fenced = 1;
        log_warn("feed %s: lease not renewed in time; stopped acting as owner (no relay, no resume offsets) "
                 "until coordination answers", feed_label(f));
        return 0;
    }
    return 1;
}

/* Owner: hands the batch to the other nodes with the offsets to resume
 * from, and the positions it spans; moves the feed's position on, relayed
 * or not, so a relay sees what it did not get. */
static void relay_batch(feed_table *ft, feed *f) {
    size_t n = fanout_resume_offsets(ft, f);
    if (f->relay_on && fanout_may_relay(f)) {
        relaywire_records(&ft->relay_buf, ft->b->node_id, f->rpos, ft->relay_offsets, n, f->batch.data,
                          f->batch.len);
        coord_feed cf = feed_coord(f);
        coord_relay(ft->b->coord, &cf, ft->relay_buf.data, ft->relay_buf.len, ft->relay_offsets, n);
    }
    for (size_t i = 0; i < n; i++) f->rpos[ft->relay_offsets[2 * i]] = ft->relay_offsets[2 * i + 1];
}

/* 1 when s, still catching up, takes the batch's frame m: a record of a
 * partition that joined the live feed, at or past where its catch-up
 * ended; a DROPPED of such a partition, or of one not known (better told
 * twice than not at all). */
static int filter_takes(sub_catchup *cu, const batch_mark *m) {
    if (m->partition < 0) return 1;
    cu_part *cp = cu_find(cu, m->partition);
    if (!cp) return 1;            /* a partition the feed read after it began (the topic grew) */
    if (cp->state != CU_JOINED) return 0;
    if (m->offset < 0) return 1;
    if (m->offset < cp->pos) return 0;
    cp->pos = m->offset + 1;
    return 1;
}

/* Hands s the frames of blk it takes, as slices of the shared block. */
static void deliver_filtered(feed *f, sub *s, outq_block *blk) {
    size_t start = 0, from = 0;
    uint32_t records = 0;
    uint64_t lost = 0;
    int open = 0;
    for (size_t i = 0; i <= f->nmarks; i++) {
        const batch_mark *m = i < f->nmarks ? &f->marks[i] : NULL;
        if (m && filter_takes(s->cu, m)) {
            if (!open) from = start, records = 0, lost = 0, open = 1;
            records += m->offset >= 0;
            lost += m->lost;
        } else if (open) {
            conn_deliver(s->c, s, blk, from, start - from, records, lost);
            open = 0;
        }
        if (m) start = m->end;
    }
}

void fanout_flush(feed_table *ft) {
    while (ft->dirty) {
        feed *f = ft->dirty;
        ft->dirty = f->dirty_next;
        f->dirty = 0;
        f->dirty_next = NULL;
        if (f->batch_records) f->last_record_ms = monotonic_ms(); /* broker_now_ms() is the same clock */
        if (f->role == ROLE_OWNER) relay_batch(ft, f);
        outq_block *blk = outq_block_adopt(f->batch.data, f->batch.len, f->batch.cap, f->batch_records);
        proto_buf_init(&f->batch);
        f->batch_records = 0;
        blk->lost = f->batch_lost;
        f->batch_lost = 0;
        for (sub *s = f->subs; s; s = s->next) {
            if (s->cu) {
                deliver_filtered(f, s, blk);
                if (!sub_catchup_needed(s)) sub_catchup_free(ft, s);
            } else
                conn_deliver(s->c, s, blk, 0, blk->len, blk->records, blk->lost);
        }
        f->nmarks = 0;
        outq_block_unref(blk);
    }
}

void fanout_forget(feed_table *ft, feed *f) {
    if (!f->dirty) return;
    feed **pp = &ft->dirty;
    while (*pp != f) pp = &(*pp)->dirty_next;
    *pp = f->dirty_next;
    f->dirty = 0;
}

void fanout_fini(feed_table *ft) {
    proto_buf_free(&ft->relay_buf);
}
