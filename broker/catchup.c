/* catchup.c -- subscriptions that start in the past: shared readers of history on their own consumer, joined to the live feed by offsets. */
#include "broker/catchup.h"

#include <event2/event.h>
#include <stdlib.h>
#include <string.h>

#include "broker/conn.h"
#include "broker/log.h"
#include "broker/outq.h"
#include "broker/sub.h"
#include "broker/timeval.h"
#include "broker/xmalloc.h"

#define CU_TICK_MS 100            /* parked catch-ups looked at again, joins checked */
#define CU_QUANTUM 20000          /* records a reader serves before it yields to a waiting one */

/* One record's frame in a cu_enc's buffer: it ends at end. */
typedef struct cu_mark {
    int64_t offset;
    size_t end;
} cu_mark;

/* One feed's frames of a reader's batch: encoded once, sliced per client. */
typedef struct cu_enc {
    feed *f;
    proto_buf buf;
    cu_mark *marks;               /* one per record encoded; the array is kept across batches */
    size_t nmarks, marks_cap;
    outq_block *blk;              /* at batch end */
} cu_enc;

/* A reader names its topic rather than pointing at it: the topic may go
 * (its last feed retired) before catchup.c lets the emptied reader go. */
struct cu_reader {
    feed_table *ft;
    char *topic_name;
    int32_t partition;
    cu_part *clients;             /* CU_READING parts */
    int active;                   /* assigned in the catch-up consumer */
    int queued;                   /* on ft->cu_queue */
    cu_reader *qnext;
    cu_reader *prev, *next;       /* ft->cu_readers */
    cu_reader *tnext;             /* ft->cu_touched */
    int touched;
    int64_t pos;                  /* active: the next offset the consumer hands out */
    int64_t eof_at;               /* this batch: the log end reached (-1 none) */
    uint32_t gen;                 /* new at every assignment: older reset answers are ignored */
    uint64_t served;              /* records since it was assigned */
    cu_enc *enc;
    size_t nenc, enc_cap;
};

static void schedule(feed_table *ft);

static broker *ft_broker(feed_table *ft) {
    return ft->b;
}

static feed *cp_feed(const cu_part *cp) {
    return cp->s->f;
}

/* ------------------------------------------------------------- readers */

static void queue_push(feed_table *ft, cu_reader *rd) {
    rd->queued = 1;
    rd->qnext = NULL;
    if (ft->cu_queue_tail)
        ft->cu_queue_tail->qnext = rd;
    else
        ft->cu_queue = rd;
    ft->cu_queue_tail = rd;
}

static void queue_del(feed_table *ft, cu_reader *rd) {
    if (!rd->queued) return;
    cu_reader **pp = &ft->cu_queue, *prev = NULL;
    while (*pp != rd) prev = *pp, pp = &(*pp)->qnext;
    *pp = rd->qnext;
    if (ft->cu_queue_tail == rd) ft->cu_queue_tail = prev;
    rd->queued = 0;
    rd->qnext = NULL;
}

static cu_reader *reader_get(feed_table *ft, topic *t, int32_t p) {
    tpart *tp = &t->parts[p];
    if (tp->cu_rd) return tp->cu_rd;
    /* One left from before the topic was made anew: the same partition of
     * the same consumer, so the same reader. */
    for (cu_reader *rd = ft->cu_readers; rd; rd = rd->next)
        if (rd->partition == p && strcmp(rd->topic_name, t->name) == 0) return tp->cu_rd = rd;
    cu_reader *rd = xcalloc(1, sizeof(*rd));
    rd->ft = ft;
    rd->topic_name = xstrdup(t->name);
    rd->partition = p;
    rd->pos = rd->eof_at = -1;
    rd->next = ft->cu_readers;
    if (ft->cu_readers) ft->cu_readers->prev = rd;
    ft->cu_readers = rd;
    tp->cu_rd = rd;
    queue_push(ft, rd);
    return rd;
}

static void reader_unassign(feed_table *ft, cu_reader *rd) {
    if (!rd->active) return;
    upstream_unassign(ft_broker(ft)->history, rd->topic_name, rd->partition);
    rd->active = 0;
    rd->gen++;
    ft->cu_active--;
}

/* Fetches from offset (the lowest its clients need). */
static int reader_assign(feed_table *ft, cu_reader *rd, int64_t offset) {
    rd->gen++;
    log_debug("catch-up reader of %s/%d: reading from offset %lld", rd->topic_name, (int)rd->partition,
              (long long)offset);
    if (upstream_assign(ft_broker(ft)->history, rd->topic_name, rd->partition, offset) < 0) return -1;
    if (!rd->active) ft->cu_active++;
    rd->active = 1;
    rd->pos = offset;
    return 0;
}

static void reader_free(feed_table *ft, cu_reader *rd) {
    reader_unassign(ft, rd);
    queue_del(ft, rd);
    while (rd->clients) cu_list_del(rd->clients);
    if (rd->prev)
        rd->prev->next = rd->next;
    else
        ft->cu_readers = rd->next;
    if (rd->next) rd->next->prev = rd->prev;
    topic *t = topic_find(ft, rd->topic_name, strlen(rd->topic_name));
    if (t && t->ready && rd->partition < t->partition_cnt && t->parts[rd->partition].cu_rd == rd)
        t->parts[rd->partition].cu_rd = NULL;
    free(rd->topic_name);
    for (size_t i = 0; i < rd->enc_cap; i++) {
        proto_buf_free(&rd->enc[i].buf);
        free(rd->enc[i].marks);
    }
    free(rd->enc);
    free(rd);
}

static int64_t clients_min_pos(const cu_reader *rd) {
    int64_t lo = -1;
    for (const cu_part *cp = rd->clients; cp; cp = cp->next)
        if (lo < 0 || cp->pos < lo) lo = cp->pos;
    return lo;
}

/* Assigns waiting readers while there is room. */
static void schedule(feed_table *ft) {
    uint64_t max = ft_broker(ft)->cfg->catchup_readers;
    while (ft->cu_queue && ft->cu_active < max) {
        cu_reader *rd = ft->cu_queue;
        queue_del(ft, rd);
        if (!rd->clients) {
            reader_free(ft, rd);
            continue;
        }
        if (reader_assign(ft, rd, clients_min_pos(rd)) < 0) {
            queue_push(ft, rd);   /* logged; tried again at the next tick */
            return;
        }
        rd->served = 0;
    }
}

/* ----------------------------------------------------------- partitions */

static void send_live_if_done(feed_table *ft, sub *s) {
    sub_catchup *cu = s->cu;
    if (cu->unjoined > 0 || cu->live_sent) return;
    sub_send_live(ft, s);
    cu->live_sent = 1;
    if (!sub_catchup_needed(s)) sub_catchup_free(ft, s);
}

/* cp follows the live feed from its position on. */
static void join(feed_table *ft, cu_part *cp) {
    cu_list_del(cp);
    cp->rd = NULL;
    cp->state = CU_JOINED;
    cp->s->cu->unjoined--;
    send_live_if_done(ft, cp->s);
}

/* The live feed never delivers a record below its position again, so a
 * catch-up that got there joins with nothing missed or repeated. While
 * this node does not know the live position (a relay told nothing of the
 * partition yet: its owner may not even have started reading it), the
 * catch-up reads on and a relay asks the owner where it is. A partition
 * the feed no longer reads (a key that moved when the topic grew) has
 * nothing left to join. */
static int may_join(const cu_part *cp) {
    feed *f = cp_feed(cp);
    int32_t a, z;
    feed_range(f, &a, &z);
    if (cp->partition < a || cp->partition > z) return 1;
    int64_t live = feed_live_pos(f, cp->partition);
    if (live < 0 && f->role == ROLE_RELAY) f->need_sync = 1;
    return live >= 0 && cp->pos >= live;
}

static void park(feed_table *ft, cu_part *cp) {
    cp->s->c->cu_parked++;
    log_debug("catch-up of %s partition %d: parked at offset %lld while its connection drains",
              feed_label(cp_feed(cp)), (int)cp->partition, (long long)cp->pos);
    cu_list_del(cp);
    cp->rd = NULL;
    cp->state = CU_PARKED;
    cu_list_push(&ft->cu_parked, cp);
}

static void attach_reader(feed_table *ft, cu_part *cp) {
    cu_reader *rd = reader_get(ft, cp_feed(cp)->t, cp->partition);
    cu_list_push(&rd->clients, cp);
    cp->state = CU_READING;
    cp->rd = rd;
    cp->b_last = -1;
    cp->b_records = 0;
    /* Shared: the reader goes back for a client behind it; the others skip
     * what they had. */
    if (rd->active && cp->pos < rd->pos) {
        upstream_unassign(ft_broker(ft)->history, rd->topic_name, rd->partition);
        if (reader_assign(ft, rd, cp->pos) < 0) {
            ft->cu_active--;
            rd->active = 0;
            queue_push(ft, rd);
        }
    }
    schedule(ft);
}

/* cp's start is known: it joins, reads, or waits for its connection. */
static void place(feed_table *ft, cu_part *cp) {
    if (may_join(cp))
        join(ft, cp);
    else if (!conn_takes_records(cp->s->c))
        park(ft, cp);
    else
        attach_reader(ft, cp);
}

static upstream_seek seek_for(const sub *s) {
    switch ((proto_start_mode)s->start.mode) {
    case PROTO_START_TIMESTAMP:
        return UPSTREAM_SEEK_TIME;
    case PROTO_START_LAST:
        return UPSTREAM_SEEK_LAST;
    case PROTO_START_BEGINNING:
        return UPSTREAM_SEEK_BEGINNING;
    default:
        return UPSTREAM_SEEK_END;
    }
}

static void resolve(feed_table *ft, cu_part *cp) {
    cp->state = CU_RESOLVING;
    cp->seek_tag = ++ft->cu_seq;
    cu_list_push(&ft->cu_resolving, cp);
    const sub *s = cp->s;
    upstream_query_seek(ft_broker(ft)->history, cp_feed(cp)->t->name, cp->partition, seek_for(s), s->start.arg,
                        cp->seek_tag);
}

/* The tick runs only while there are catch-ups: an idle node sleeps. */
static void tick_arm(feed_table *ft) {
    int work = ft->cu_readers || ft->cu_parked || ft->cu_new || ft->cu_resolving;
    int armed = event_pending(ft->catchup_tick_ev, EV_TIMEOUT, NULL);
    if (work && !armed) {
        struct timeval tv = ms_timeval(CU_TICK_MS);
        event_add(ft->catchup_tick_ev, &tv);
    } else if (!work && armed) {
        event_del(ft->catchup_tick_ev);
    }
}

/* Parked catch-ups whose connection drained below half the soft limit go
 * on (conn_flush wakes catchup_ev when one does). */
static void unpark_drained(feed_table *ft) {
    for (cu_part *cp = ft->cu_parked, *next; cp; cp = next) {
        next = cp->next;
        conn *c = cp->s->c;
        if (conn_takes_records(c) && c->out.bytes < ft_broker(ft)->cfg->out_soft_limit / 2) {
            c->cu_parked--;
            cu_list_del(cp);
            place(ft, cp);
        }
    }
}

/* catchup_ev: new catch-ups, drained connections, and readers their last
 * client left. */
static void process_cb(evutil_socket_t fd, short what, void *arg) {
    feed_table *ft = arg;
    unpark_drained(ft);
    while (ft->cu_new) {
        cu_part *cp = ft->cu_new;
        cu_list_del(cp);
        if (cp->pos < 0)
            resolve(ft, cp);
        else
            place(ft, cp);
    }
    for (cu_reader *rd = ft->cu_readers, *next; rd; rd = next) {
        next = rd->next;
        if (!rd->clients) reader_free(ft, rd);
    }
    schedule(ft);
    tick_arm(ft);
}

/* Every CU_TICK_MS: readers' clients check the live position, which may
 * have moved. */
static void tick_cb(evutil_socket_t fd, short what, void *arg) {
    feed_table *ft = arg;
    for (cu_reader *rd = ft->cu_readers; rd; rd = rd->next)
        for (cu_part *cp = rd->clients, *next; cp; cp = next) {
            next = cp->next;
            if (may_join(cp)) join(ft, cp);
        }
    process_cb(-1, 0, ft);
}

/* ------------------------------------------------------ consumer events */

static cu_reader *active_reader(feed_table *ft, const char *topic_name, int32_t partition) {
    topic *t = topic_find(ft, topic_name, strlen(topic_name));
    if (!t || !t->ready || partition < 0 || partition >= t->partition_cnt) return NULL;
    cu_reader *rd = t->parts[partition].cu_rd;
    return rd && rd->active ? rd : NULL;
}

static void touch(feed_table *ft, cu_reader *rd) {
    if (rd->touched) return;
    rd->touched = 1;
    rd->tnext = ft->cu_touched;
    ft->cu_touched = rd;
}

static cu_enc *enc_for(cu_reader *rd, feed *f) {
    for (size_t i = 0; i < rd->nenc; i++)
        if (rd->enc[i].f == f) return &rd->enc[i];
    if (rd->nenc == rd->enc_cap) {
        size_t cap = rd->enc_cap ? 2 * rd->enc_cap : 2;
        rd->enc = xreallocarray(rd->enc, cap, sizeof(*rd->enc));
        memset(rd->enc + rd->enc_cap, 0, (cap - rd->enc_cap) * sizeof(*rd->enc));
        rd->enc_cap = cap;
    }
    cu_enc *e = &rd->enc[rd->nenc++];
    e->f = f;
    e->nmarks = 0;
    e->blk = NULL;
    return e;
}

static int key_matches(const feed *f, const upstream_record *r) {
    return f->wildcard || (r->key && r->key_len == f->key_len && memcmp(r->key, f->key, f->key_len) == 0);
}

void catchup_on_record(feed_table *ft, const upstream_record *r) {
    cu_reader *rd = active_reader(ft, r->topic, r->partition);
    if (!rd) return;
    rd->pos = r->offset + 1;
    rd->served++;
    touch(ft, rd);
    for (cu_part *cp = rd->clients; cp; cp = cp->next) {
        if (r->offset < cp->pos || r->offset <= cp->b_last) continue;
        cp->b_last = r->offset;
        feed *f = cp_feed(cp);
        if (!key_matches(f, r)) continue;
        cu_enc *e = enc_for(rd, f);
        if (e->nmarks == 0 || e->marks[e->nmarks - 1].offset != r->offset) {
            proto_frame fr = {
                .type = PROTO_MESSAGE, .feed = f->handle, .partition = (uint32_t)r->partition,
                .offset = (uint64_t)r->offset, .timestamp_ms = r->ts_ms,
                .key = {r->key, r->key_len}, .value = {r->value, r->value_len},
                .headers = r->headers, .header_cnt = r->header_cnt,
            };
            size_t before = e->buf.len;
            if (proto_encode(&e->buf, &fr) < 0) {
                log_error("out of memory encoding a catch-up record of %s", feed_label(f));
                abort();
            }
            if (e->buf.len - before - PROTO_HEADER_SIZE > ft_broker(ft)->cfg->max_message) {
                /* Too big for any client: DROPPED 1 in its place, as live. */
                e->buf.len = before;
                proto_frame d = {.type = PROTO_DROPPED, .feed = f->handle, .count = 1};
                if (proto_encode(&e->buf, &d) < 0) abort();
                ft_broker(ft)->ctr.oversize++;
            }
            if (e->nmarks == e->marks_cap) {
                e->marks_cap = e->marks_cap ? 2 * e->marks_cap : 64;
                e->marks = xreallocarray(e->marks, e->marks_cap, sizeof(*e->marks));
            }
            e->marks[e->nmarks++] = (cu_mark){r->offset, e->buf.len};
        }
        if (cp->b_records++ == 0) cp->b_first = e->nmarks - 1;
    }
}

void catchup_on_eof(feed_table *ft, const char *topic_name, int32_t partition, int64_t offset) {
    cu_reader *rd = active_reader(ft, topic_name, partition);
    if (!rd) return;
    rd->eof_at = offset;
    touch(ft, rd);
}

/* Hands cp its records of e from mark first on, as one slice of e's block,
 * but no more than fill its connection's queue to halfway between the
 * soft and the hard limit (at least one record): a catch-up never pushes a
 * reading client to the hard limit. Returns 1 when some were left (cp->pos
 * is then the first of them). */
static int deliver_some(feed_table *ft, cu_part *cp, const cu_enc *e, size_t first) {
    conn *c = cp->s->c;
    const config *cfg = ft_broker(ft)->cfg;
    size_t cap = cfg->out_soft_limit + (cfg->out_hard_limit - cfg->out_soft_limit) / 2;
    size_t room = cap > c->out.bytes ? cap - c->out.bytes : 0;
    size_t from = first ? e->marks[first - 1].end : 0, to = from, k = first;
    while (k < e->nmarks && (k == first || e->marks[k].end - from <= room)) to = e->marks[k++].end;
    conn_deliver(c, cp->s, e->blk, from, to - from, (uint32_t)(k - first), 0);
    ft_broker(ft)->ctr.catchup_records += k - first;
    if (k == e->nmarks) return 0;
    cp->pos = e->marks[k].offset;
    return 1;
}

/* Ends one reader's batch: each client gets its slice, moves on, and joins
 * the live feed when it got there. */
static void reader_batch_end(feed_table *ft, cu_reader *rd) {
    for (size_t i = 0; i < rd->nenc; i++) {
        cu_enc *e = &rd->enc[i];
        e->blk = e->buf.len ? outq_block_adopt(e->buf.data, e->buf.len, e->buf.cap, (uint32_t)e->nmarks) : NULL;
        if (e->blk) proto_buf_init(&e->buf);
    }
    int at_eof = rd->eof_at >= 0;
    for (cu_part *cp = rd->clients, *next; cp; cp = next) {
        next = cp->next;
        int64_t last = cp->b_last;
        uint32_t records = cp->b_records;
        cp->b_last = -1;
        cp->b_records = 0;
        if (last < 0 && !at_eof) continue;
        if (!conn_takes_records(cp->s->c)) {
            park(ft, cp);         /* from the same position, once it drained */
            continue;
        }
        if (records > 0 && deliver_some(ft, cp, enc_for(rd, cp_feed(cp)), cp->b_first)) {
            park(ft, cp);         /* the rest once it drained */
            continue;
        }
        if (last >= 0) cp->pos = last + 1;
        if (rd->eof_at > cp->pos) cp->pos = rd->eof_at;
        if (may_join(cp)) join(ft, cp);
    }
    for (size_t i = 0; i < rd->nenc; i++) outq_block_unref(rd->enc[i].blk);
    rd->nenc = 0;
    rd->eof_at = -1;
}

void catchup_on_batch_end(feed_table *ft) {
    while (ft->cu_touched) {
        cu_reader *rd = ft->cu_touched;
        ft->cu_touched = rd->tnext;
        rd->touched = 0;
        rd->tnext = NULL;
        reader_batch_end(ft, rd);
        if (!rd->clients) {
            reader_free(ft, rd);
        } else if (ft->cu_queue && rd->served >= CU_QUANTUM) {
            /* Others wait: to the back of the queue, from where it is. */
            reader_unassign(ft, rd);
            queue_push(ft, rd);
            ft_broker(ft)->ctr.catchup_yields++;
            log_debug("catch-up reader of %s/%d: served %llu records; yields to a waiting one", rd->topic_name,
                      (int)rd->partition, (unsigned long long)rd->served);
        }
    }
    schedule(ft);
}

void catchup_on_seek(feed_table *ft, const char *topic_name, int32_t partition, uint32_t tag, int64_t offset,
                     const char *errstr) {
    cu_part *cp = ft->cu_resolving;
    while (cp && cp->seek_tag != tag) cp = cp->next;
    if (!cp) return;              /* its subscription went */
    cu_list_del(cp);
    if (errstr) {
        log_warn("catch-up of %s: %s; trying again", feed_label(cp_feed(cp)), errstr);
        cp->state = CU_NEW;
        cu_list_push(&ft->cu_new, cp);   /* looked up again at the next tick */
        return;
    }
    cp->pos = offset;
    place(ft, cp);
}

void catchup_on_out_of_range(feed_table *ft, const char *topic_name, int32_t partition, int64_t from) {
    cu_reader *rd = active_reader(ft, topic_name, partition);
    if (rd) upstream_query_reset(ft_broker(ft)->history, topic_name, partition, from, rd->gen);
}

void catchup_on_reset(feed_table *ft, const char *topic_name, int32_t partition, uint32_t tag, int64_t from,
                      int64_t offset, int64_t lost) {
    cu_reader *rd = active_reader(ft, topic_name, partition);
    if (!rd || rd->gen != tag) return;
    if (offset < 0) offset = from;   /* not known yet: ask again by fetching again */
    /* Kafka no longer holds what they asked for below offset: each client
     * is told how many, right at the gap. */
    for (cu_part *cp = rd->clients; cp; cp = cp->next) {
        if (cp->pos >= offset) continue;
        proto_frame d = {.type = PROTO_DROPPED, .feed = cp_feed(cp)->handle, .count = (uint64_t)(offset - cp->pos)};
        conn_send(cp->s->c, &d);
        ft_broker(ft)->ctr.catchup_missing += d.count;
        cp->pos = offset;
    }
    if (lost > 0)
        log_info("catch-up of %s/%d: %lld records asked for are no longer in Kafka", topic_name, (int)partition,
                 (long long)lost);
    upstream_unassign(ft_broker(ft)->history, topic_name, partition);
    if (reader_assign(ft, rd, offset) < 0) {
        ft->cu_active--;
        rd->active = 0;
        queue_push(ft, rd);
    }
}

/* ---------------------------------------------------------------- stats */

static size_t list_len(const cu_part *cp) {
    size_t n = 0;
    for (; cp; cp = cp->next) n++;
    return n;
}

void catchup_stats_get(const feed_table *ft, catchup_stats *st) {
    memset(st, 0, sizeof(*st));
    for (const cu_reader *rd = ft->cu_readers; rd; rd = rd->next) {
        st->readers++;
        st->queued += rd->queued;
        st->reading += list_len(rd->clients);
    }
    st->active = ft->cu_active;
    st->parked = list_len(ft->cu_parked);
    st->resolving = list_len(ft->cu_resolving) + list_len(ft->cu_new);
}

/* ---------------------------------------------------------------- setup */

int catchup_init(feed_table *ft) {
    broker *b = ft->b;
    ft->catchup_ev = event_new(b->base, -1, 0, process_cb, ft);
    ft->catchup_tick_ev = event_new(b->base, -1, EV_PERSIST, tick_cb, ft);
    if (!ft->catchup_ev || !ft->catchup_tick_ev) return -1;
    b->catchup_wake = ft->catchup_ev;
    return 0;
}

void catchup_fini(feed_table *ft) {
    while (ft->cu_readers) reader_free(ft, ft->cu_readers);
    while (ft->cu_new) cu_list_del(ft->cu_new);
    while (ft->cu_resolving) cu_list_del(ft->cu_resolving);
    /* At shutdown the connections are gone: their counts are not touched. */
    while (ft->cu_parked) cu_list_del(ft->cu_parked);
    if (ft->b->catchup_wake == ft->catchup_ev) ft->b->catchup_wake = NULL;
    if (ft->catchup_ev) event_free(ft->catchup_ev);
    if (ft->catchup_tick_ev) event_free(ft->catchup_tick_ev);
    ft->catchup_ev = ft->catchup_tick_ev = NULL;
}
