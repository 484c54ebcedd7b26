/* test_feed.c -- the subscription table: sharing, partition targeting, linger, races, fan-out of one block. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <event2/event.h>

#include "broker/catchup.h"
#include "broker/conn.h"
#include "broker/fanout.h"
#include "broker/feed.h"
#include "broker/partition.h"
#include "broker/table.h"
#include "broker/upstream.h"

/* The feed table talks to connections and to the Kafka consumer through a
 * few calls; this test links recorders in their place so each decision of
 * the table can be observed. The integration tests run the real ones. */

typedef struct sent {
    conn *c;
    proto_type type;
    uint64_t req_id, feed, code;
    uint32_t parts[16];
    size_t nparts;
    char text[256];
} sent;

static struct {
    sent frames[1024];
    size_t nframes;
    char resolved[8][64];
    size_t nresolved;
    int32_t queried[64];
    size_t nqueried;
    int32_t assigned[64];
    int64_t assigned_at[64];
    size_t nassigned;
    int32_t unassigned[64];
    size_t nunassigned;
    struct {
        conn *c;
        outq_block *blk;          /* identity only: freed after fan-out */
        uint32_t records;
        uint64_t lost;
        char bytes[512];          /* the block's first bytes, copied */
        size_t len;
    } delivered[64];
    size_t ndelivered;
    size_t ndeleted;
} rec;

int conn_send(conn *c, const proto_frame *f) {
    sent *s = &rec.frames[rec.nframes++];
    memset(s, 0, sizeof(*s));
    s->c = c;
    s->type = f->type;
    s->req_id = f->req_id;
    s->feed = f->feed;
    s->code = f->code;
    s->nparts = f->partition_cnt;
    for (size_t i = 0; i < f->partition_cnt && i < 16; i++) s->parts[i] = f->partitions[i];
    return 0;
}

void conn_send_error(conn *c, uint64_t req_id, proto_err code, const char *fmt, ...) {
    sent *s = &rec.frames[rec.nframes++];
    memset(s, 0, sizeof(*s));
    s->c = c;
    s->type = PROTO_ERROR;
    s->req_id = req_id;
    s->code = code;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(s->text, sizeof(s->text), fmt, ap);
    va_end(ap);
}

void conn_deliver(conn *c, sub *s, outq_block *blk, size_t off, size_t len, uint32_t records, uint64_t lost) {
    rec.delivered[rec.ndelivered].c = c;
    rec.delivered[rec.ndelivered].blk = blk;
    rec.delivered[rec.ndelivered].records = records;
    rec.delivered[rec.ndelivered].lost = lost;
    size_t n = len < sizeof(rec.delivered[0].bytes) ? len : sizeof(rec.delivered[0].bytes);
    memcpy(rec.delivered[rec.ndelivered].bytes, blk->data + off, n);
    rec.delivered[rec.ndelivered].len = n;
    rec.ndelivered++;
}

int conn_takes_records(const conn *c) {
    return 1;
}

void upstream_cancel_topic(upstream *u, const char *topic_name) {}

void upstream_query_seek(upstream *u, const char *topic_name, int32_t partition, upstream_seek where, int64_t arg,
                         uint32_t tag) {}

void upstream_resolve_topic(upstream *u, const char *topic_name) {
    snprintf(rec.resolved[rec.nresolved++], 64, "%s", topic_name);
}

void upstream_query_start(upstream *u, const char *topic_name, int32_t partition) {
    rec.queried[rec.nqueried++] = partition;
}

void upstream_delete_topic(upstream *u, const char *topic_name) {
    rec.ndeleted++;
}

void upstream_query_reset(upstream *u, const char *topic_name, int32_t partition, int64_t from, uint32_t tag) {
}

int upstream_assign(upstream *u, const char *topic_name, int32_t partition, int64_t offset) {
    rec.assigned_at[rec.nassigned] = offset;
    rec.assigned[rec.nassigned++] = partition;
    return 0;
}

int upstream_unassign(upstream *u, const char *topic_name, int32_t partition) {
    rec.unassigned[rec.nunassigned++] = partition;
    return 0;
}

/* ---------------------------------------------------------------- fixture */

static config cfg;
static broker b;
static conn conn1, conn2;          /* only their subs arrays are used */
#define C1 (&conn1)
#define C2 (&conn2)

static int setup(void **state) {
    memset(&rec, 0, sizeof(rec));
    memset(&b, 0, sizeof(b));
    memset(&conn1, 0, sizeof(conn1));
    memset(&conn2, 0, sizeof(conn2));
    config_defaults(&cfg);
    cfg.linger_ms = 0;
    b.cfg = &cfg;
    b.base = event_base_new();
    b.coord = coord_memory_new("test");
    b.feeds = feed_table_new(&b);
    return 0;
}

static int teardown(void **state) {
    while (conn1.nsubs) feed_unsubscribe(b.feeds, conn1.subs[conn1.nsubs - 1]);
    while (conn2.nsubs) feed_unsubscribe(b.feeds, conn2.subs[conn2.nsubs - 1]);
    free(conn1.subs);
    free(conn2.subs);
    feed_table_free(b.feeds);
    coord_free(b.coord);
    event_base_free(b.base);
    config_free(&cfg);
    return 0;
}

static sub *subscribe(conn *c, uint64_t req, const char *topic_name, const char *key) {
    proto_err code = PROTO_E_NONE;
    char err[256];
    sub *s = feed_subscribe(b.feeds, c, &(proto_frame){.type = PROTO_SUBSCRIBE, .req_id = req, .topic = {topic_name, strlen(topic_name)}, .key = {key, key ? strlen(key) : 0}}, &code, err, sizeof(err));
    assert_non_null(s);
    return s;
}

/* The partition's current assignment generation. */
static uint32_t gen_of(const char *topic_name, int32_t p) {
    topic *t = topic_find(b.feeds, topic_name, strlen(topic_name));
    assert_non_null(t);
    return t->parts[p].gen;
}

static int32_t murmur_part(const char *key, int32_t n) {
    return partitioner_partition(PARTITIONER_MURMUR2, key, strlen(key), n);
}

static long count_of(const char *topic_name, const char *key) {
    coord_feed f = {topic_name, key, key ? strlen(key) : 0, key == NULL};
    return coord_memory_count(b.coord, &f);
}

/* ------------------------------------------------------------------ tests */

static void test_shared_feed_one_partition_one_block(void **state) {
    sub *s1 = subscribe(C1, 1, "orders", "cust-7");
    sub *s2 = subscribe(C2, 2, "orders", "cust-7");
    assert_int_equal(rec.nresolved, 1);            /* one metadata lookup for both */
    assert_int_equal(rec.nframes, 0);              /* nothing answered yet */
    feed_on_topic_resolved(b.feeds, "orders", 6, PROTO_E_NONE, NULL);
    int32_t p = murmur_part("cust-7", 6);
    assert_int_equal(rec.nqueried, 1);             /* only the key's partition */
    assert_int_equal(rec.queried[0], p);
    feed_on_partition_start(b.feeds, "orders", p, 42, NULL);
    assert_int_equal(rec.nassigned, 1);
    assert_int_equal(rec.assigned[0], p);
    assert_int_equal(rec.assigned_at[0], 42);      /* from the looked-up log end */
    assert_int_equal(rec.nframes, 2);
    for (int i = 0; i < 2; i++) {
        assert_int_equal(rec.frames[i].type, PROTO_SUBSCRIBED);
        assert_int_equal(rec.frames[i].nparts, 1);
        assert_int_equal(rec.frames[i].parts[0], p);
    }
    assert_int_equal(rec.frames[0].feed, rec.frames[1].feed); /* one handle for the shared feed */
    assert_int_equal(count_of("orders", "cust-7"), 2);

    /* the key's record, another key's record, the key on another partition */
    fanout_record(b.feeds, "orders", p, 42, 1000, "cust-7", 6, "v1", 2, NULL, 0);
    fanout_record(b.feeds, "orders", p, 43, 1000, "cust-8", 6, "v2", 2, NULL, 0);
    fanout_record(b.feeds, "orders", (p + 1) % 6, 5, 1000, "cust-7", 6, "v3", 2, NULL, 0);
    fanout_record(b.feeds, "orders", p, 44, 1000, "cust-7", 6, "v4", 2, NULL, 0);
    fanout_flush(b.feeds);
    assert_int_equal(rec.ndelivered, 2);
    assert_ptr_equal(rec.delivered[0].blk, rec.delivered[1].blk); /* same bytes to both */
    assert_int_equal(rec.delivered[0].records, 2);

    feed_unsubscribe(b.feeds, s1);
    assert_int_equal(rec.nunassigned, 0);          /* s2 still reads it */
    assert_int_equal(count_of("orders", "cust-7"), 1);
    feed_unsubscribe(b.feeds, s2);
    assert_int_equal(rec.nunassigned, 1);          /* linger 0: released at once */
    assert_int_equal(rec.unassigned[0], p);
    assert_int_equal(count_of("orders", "cust-7"), 0);
}

/* Decodes the next frame of delivered block i at *off (a frame's fields
 * are valid until the next decode). Returns 0, or -1 at the block's end. */
static int next_frame(proto_decoder *dec, size_t i, size_t *off, proto_frame *fr) {
    if (*off >= rec.delivered[i].len) return -1;
    size_t used;
    assert_int_equal(proto_decode(dec, rec.delivered[i].bytes + *off, rec.delivered[i].len - *off, &used, fr),
                     PROTO_FRAME);
    *off += used;
    return 0;
}

static void test_kafka_loss_told_in_order(void **state) {
    subscribe(C1, 1, "orders", "cust-7");
    feed_on_topic_resolved(b.feeds, "orders", 6, PROTO_E_NONE, NULL);
    int32_t p = murmur_part("cust-7", 6);
    feed_on_partition_start(b.feeds, "orders", p, 42, NULL);
    uint64_t handle = rec.frames[0].feed;
    fanout_record(b.feeds, "orders", p, 42, 1000, "cust-7", 6, "v1", 2, NULL, 0);
    /* offsets 43..59 were deleted before the node read them */
    part_on_reset(b.feeds, "orders", p, gen_of("orders", p), 43, 60, 17);
    assert_int_equal(rec.nassigned, 2);
    assert_int_equal(rec.assigned_at[1], 60);      /* resumed where the log now starts */
    fanout_record(b.feeds, "orders", p, 60, 1000, "cust-7", 6, "v2", 2, NULL, 0);
    fanout_flush(b.feeds);
    assert_int_equal(rec.nframes, 1);              /* only SUBSCRIBED went aside the blocks */

    /* the gap sits between the records around it, in the feed's own bytes
     * (which a relay hands on as they are) */
    proto_decoder *dec = proto_decoder_new(1024);
    proto_frame fr;
    size_t off = 0;
    assert_int_equal(rec.ndelivered, 2);
    assert_int_equal(next_frame(dec, 0, &off, &fr), 0);
    assert_int_equal(fr.type, PROTO_MESSAGE);
    assert_memory_equal(fr.value.ptr, "v1", 2);
    assert_int_equal(next_frame(dec, 0, &off, &fr), 0);
    assert_int_equal(fr.type, PROTO_DROPPED);
    assert_int_equal(fr.feed, handle);
    assert_int_equal(fr.count, 17);
    assert_int_equal(next_frame(dec, 0, &off, &fr), -1);
    assert_int_equal(rec.delivered[0].records, 1);
    assert_int_equal(rec.delivered[0].lost, 17);   /* folded into DROPPED if the block is dropped */
    off = 0;
    assert_int_equal(next_frame(dec, 1, &off, &fr), 0);
    assert_int_equal(fr.type, PROTO_MESSAGE);
    assert_memory_equal(fr.value.ptr, "v2", 2);
    assert_int_equal(next_frame(dec, 1, &off, &fr), -1);
    assert_int_equal(rec.delivered[1].lost, 0);
    assert_int_equal(b.ctr.lost, 17);
    proto_decoder_free(dec);
}

/* An unclean election cut the log short: new records reuse the offsets of
 * vanished ones and must still be delivered. */
static void test_log_cut_short_reused_offsets_delivered(void **state) {
    subscribe(C1, 1, "orders", "cust-7");
    feed_on_topic_resolved(b.feeds, "orders", 6, PROTO_E_NONE, NULL);
    int32_t p = murmur_part("cust-7", 6);
    feed_on_partition_start(b.feeds, "orders", p, 42, NULL);
    fanout_record(b.feeds, "orders", p, 42, 1000, "cust-7", 6, "v1", 2, NULL, 0);
    fanout_record(b.feeds, "orders", p, 43, 1000, "cust-7", 6, "v2", 2, NULL, 0);
    fanout_flush(b.feeds);
    /* the consumer was at 44; the log now ends at 42 */
    part_on_reset(b.feeds, "orders", p, gen_of("orders", p), 44, 42, 0);
    fanout_record(b.feeds, "orders", p, 42, 1000, "cust-7", 6, "v3", 2, NULL, 0);
    fanout_flush(b.feeds);
    assert_int_equal(rec.ndelivered, 2);
    assert_int_equal(rec.delivered[1].records, 1);
}

/* A feed taken over comes with the offsets its old owner relayed up to:
 * the memory backend (which always owns) is wrapped to hand these over on
 * the next acquire. It completes at once, so one pending call at a time. */
static const coord_backend *memory_backend;
static coord_backend takeover_backend;
static int64_t takeover_offsets[2];
static coord_cb *takeover_inner;

static void takeover_cb(void *cb_data, const coord_result *r) {
    coord_result with = *r;
    with.offsets = takeover_offsets;
    with.noffsets = 1;
    takeover_inner(cb_data, &with);
}

static void takeover_acquire(coord *c, const coord_feed *f, coord_cb *cb, void *cb_data) {
    takeover_inner = cb;
    memory_backend->acquire(c, f, takeover_cb, cb_data);
}

/* The next subscribe takes its feed over, resuming partition p at offset. */
static void next_acquire_resumes(int32_t p, int64_t offset) {
    memory_backend = b.coord->backend;
    takeover_backend = *memory_backend;
    takeover_backend.acquire = takeover_acquire;
    takeover_offsets[0] = p;
    takeover_offsets[1] = offset;
    b.coord->backend = &takeover_backend;
}

/* Records delivered to connection c, over every block. */
static uint32_t records_to(conn *c) {
    uint32_t n = 0;
    for (size_t i = 0; i < rec.ndelivered; i++)
        if (rec.delivered[i].c == c) n += rec.delivered[i].records;
    return n;
}

/* A key other than key whose partition among n is key's. */
static const char *key_beside(const char *key, int32_t n, char *buf, size_t len) {
    for (int i = 0;; i++) {
        snprintf(buf, len, "other-%d", i);
        if (murmur_part(buf, n) == murmur_part(key, n)) return buf;
    }
}

/* C1 holds the every-key feed of orders (partitions started at `from`)
 * and has read `from`..`to`-1 of cust-7's partition, all of another key,
 * which is written to other. Returns that partition. */
static int32_t every_key_read(int64_t from, int64_t to, char *other, size_t len) {
    subscribe(C1, 1, "orders", NULL);
    feed_on_topic_resolved(b.feeds, "orders", 6, PROTO_E_NONE, NULL);
    for (int32_t q = 0; q < 6; q++) feed_on_partition_start(b.feeds, "orders", q, from, NULL);
    int32_t p = murmur_part("cust-7", 6);
    key_beside("cust-7", 6, other, len);
    for (int64_t o = from; o < to; o++)
        fanout_record(b.feeds, "orders", p, o, 1000, other, strlen(other), "w", 1, NULL, 0);
    fanout_flush(b.feeds);
    return p;
}

static void test_takeover_reads_a_shared_partition_again(void **state) {
    char other[32];
    int32_t p = every_key_read(100, 105, other, sizeof(other));
    assert_int_equal(records_to(C1), 5);

    /* orders/cust-7 is taken over; its old owner relayed up to 102 */
    next_acquire_resumes(p, 102);
    size_t before = rec.nassigned;
    subscribe(C2, 2, "orders", "cust-7");
    assert_int_equal(rec.nunassigned, 1);
    assert_int_equal(rec.unassigned[0], p);
    assert_int_equal(rec.nassigned, before + 1);
    assert_int_equal(rec.assigned[before], p);
    assert_int_equal(rec.assigned_at[before], 102);    /* read again from there */

    /* 102..104 come again, then new ones */
    for (int64_t o = 102; o < 107; o++) {
        const char *k = o % 2 ? other : "cust-7";
        fanout_record(b.feeds, "orders", p, o, 1000, k, strlen(k), "v", 1, NULL, 0);
    }
    fanout_flush(b.feeds);
    assert_int_equal(records_to(C1), 7);               /* 105 and 106 only: it had the rest */
    assert_int_equal(records_to(C2), 3);               /* cust-7 at 102, 104 and 106 */
}

static void test_takeover_during_log_end_lookup_starts_further_back(void **state) {
    subscribe(C1, 1, "orders", "cust-7");
    feed_on_topic_resolved(b.feeds, "orders", 6, PROTO_E_NONE, NULL);
    int32_t p = murmur_part("cust-7", 6);
    assert_int_equal(rec.nqueried, 1);                 /* its log end is being looked up */
    char other[32];
    key_beside("cust-7", 6, other, sizeof(other));
    next_acquire_resumes(p, 50);
    subscribe(C2, 2, "orders", other);                 /* taken over, same partition */
    assert_int_equal(rec.nqueried, 1);                 /* no second lookup */
    assert_int_equal(rec.nassigned, 0);
    feed_on_partition_start(b.feeds, "orders", p, 100, NULL);
    assert_int_equal(rec.nassigned, 1);
    assert_int_equal(rec.assigned_at[0], 50);          /* from the resume offset, not the log end */
    fanout_record(b.feeds, "orders", p, 60, 1000, "cust-7", 6, "old", 3, NULL, 0);
    fanout_record(b.feeds, "orders", p, 70, 1000, other, strlen(other), "gap", 3, NULL, 0);
    fanout_record(b.feeds, "orders", p, 100, 1000, "cust-7", 6, "new", 3, NULL, 0);
    fanout_flush(b.feeds);
    assert_int_equal(records_to(C1), 1);               /* from its log end on: only 100 */
    assert_int_equal(records_to(C2), 1);               /* the record nobody relayed */
}

/* After a takeover read a partition again from 500, the log turned out to
 * start at 700: only the feed taken over lost records, and the every-key
 * feed, which had read up to 1010, neither hears of a loss nor gets
 * 700..1009 again. */
static void test_loss_after_a_rewind_counts_per_feed(void **state) {
    char other[32];
    int32_t p = every_key_read(1000, 1010, other, sizeof(other));
    next_acquire_resumes(p, 500);
    subscribe(C2, 2, "orders", "cust-7");
    assert_int_equal(rec.assigned_at[rec.nassigned - 1], 500);
    size_t first = rec.ndelivered;
    part_on_reset(b.feeds, "orders", p, gen_of("orders", p), 500, 700, 200);
    assert_int_equal(rec.assigned_at[rec.nassigned - 1], 700);
    for (int64_t o = 700; o < 1012; o++) {
        const char *k = o == 800 ? "cust-7" : other;
        fanout_record(b.feeds, "orders", p, o, 1000, k, strlen(k), "v", 1, NULL, 0);
    }
    fanout_flush(b.feeds);
    uint64_t lost1 = 0, lost2 = 0;
    for (size_t i = first; i < rec.ndelivered; i++) {
        if (rec.delivered[i].c == C1) lost1 += rec.delivered[i].lost;
        if (rec.delivered[i].c == C2) lost2 += rec.delivered[i].lost;
    }
    assert_int_equal(lost1, 0);
    assert_int_equal(lost2, 200);                      /* 500..699, of any key */
    assert_int_equal(records_to(C1), 10 + 2);          /* 1010 and 1011 only */
    assert_int_equal(records_to(C2), 1);               /* cust-7 at 800 */
}

/* A reset answered after the partition was read again from elsewhere is
 * about a position nobody reads from any more: it must not move it. */
static void test_stale_reset_ignored(void **state) {
    subscribe(C1, 1, "orders", NULL);
    feed_on_topic_resolved(b.feeds, "orders", 6, PROTO_E_NONE, NULL);
    for (int32_t q = 0; q < 6; q++) feed_on_partition_start(b.feeds, "orders", q, 100, NULL);
    int32_t p = murmur_part("cust-7", 6);
    uint32_t gen = gen_of("orders", p);   /* the error: consumer at 105, log end 103 */
    next_acquire_resumes(p, 50);
    subscribe(C2, 2, "orders", "cust-7");                      /* rewinds to 50 meanwhile */
    size_t assigned = rec.nassigned;
    part_on_reset(b.feeds, "orders", p, gen, 105, 103, 0);
    assert_int_equal(rec.nassigned, assigned);                 /* ignored */
    fanout_record(b.feeds, "orders", p, 60, 1000, "cust-7", 6, "v", 1, NULL, 0);
    fanout_flush(b.feeds);
    assert_int_equal(records_to(C2), 1);
}

/* A reset whose lookup failed (offset -1) leaves the partition to be
 * looked up again a little later, from the position it stopped at, and
 * keeps trying while the lookup keeps failing: a feed that delivers is
 * never left without its partition, and nothing is skipped unannounced. */
static void test_failed_reset_lookup_retried_from_the_position(void **state) {
    char other[32];
    int32_t p = every_key_read(100, 105, other, sizeof(other));
    size_t assigned = rec.nassigned, queried = rec.nqueried;
    part_on_reset(b.feeds, "orders", p, gen_of("orders", p), 105, -1, 0);
    assert_int_equal(rec.nunassigned, 1);
    assert_int_equal(rec.nassigned, assigned);         /* not moved to the log end */
    assert_int_equal(rec.nqueried, queried);
    event_base_loop(b.base, EVLOOP_ONCE);              /* the retry timer */
    assert_int_equal(rec.nqueried, queried + 1);
    feed_on_partition_start(b.feeds, "orders", p, 0, "Broker: Leader not available");
    assert_int_equal(rec.nframes, 1);                  /* the delivering feed is not failed */
    event_base_loop(b.base, EVLOOP_ONCE);
    assert_int_equal(rec.nqueried, queried + 2);       /* and it is tried again */
    feed_on_partition_start(b.feeds, "orders", p, 130, NULL);
    assert_int_equal(rec.nassigned, assigned + 1);
    assert_int_equal(rec.assigned_at[assigned], 105);  /* from where it stopped, not 130 */
    uint64_t lost = 0;
    for (size_t i = 0; i < rec.ndelivered; i++) lost += rec.delivered[i].lost;
    assert_int_equal(lost, 0);
}

/* An offset error raised for a position the partition has since left:
 * fetching goes on from where the partition is, nobody is told of a loss. */
static void test_reset_for_a_position_left_goes_on_from_here(void **state) {
    char other[32];
    int32_t p = every_key_read(100, 105, other, sizeof(other));
    size_t assigned = rec.nassigned;
    part_on_reset(b.feeds, "orders", p, gen_of("orders", p), 103, 120, 17);
    assert_int_equal(rec.nassigned, assigned + 1);
    assert_int_equal(rec.assigned_at[assigned], 105);
    assert_int_equal(b.ctr.lost, 0);
}

/* A topic freed and subscribed again starts its partitions' assignments
 * afresh; an answer about the old ones must not match the new ones. */
static void test_assignment_gen_not_reused_after_topic_freed(void **state) {
    sub *s = subscribe(C1, 1, "orders", "cust-7");
    feed_on_topic_resolved(b.feeds, "orders", 6, PROTO_E_NONE, NULL);
    int32_t p = murmur_part("cust-7", 6);
    feed_on_partition_start(b.feeds, "orders", p, 40, NULL);
    uint32_t old = gen_of("orders", p);
    feed_unsubscribe(b.feeds, s);                      /* linger 0: the topic goes */
    subscribe(C1, 2, "orders", "cust-7");
    feed_on_topic_resolved(b.feeds, "orders", 6, PROTO_E_NONE, NULL);
    feed_on_partition_start(b.feeds, "orders", p, 250, NULL);
    assert_int_not_equal(gen_of("orders", p), old);
    size_t assigned = rec.nassigned;
    part_on_reset(b.feeds, "orders", p, old, 250, 300, 50);
    assert_int_equal(rec.nassigned, assigned);         /* ignored */
}

static void test_wildcard_reads_every_partition(void **state) {
    subscribe(C1, 9, "t", NULL);
    feed_on_topic_resolved(b.feeds, "t", 3, PROTO_E_NONE, NULL);
    assert_int_equal(rec.nqueried, 3);
    feed_on_partition_start(b.feeds, "t", 0, 0, NULL);
    feed_on_partition_start(b.feeds, "t", 2, 0, NULL);
    assert_int_equal(rec.nframes, 0);              /* not until every partition is fetched */
    feed_on_partition_start(b.feeds, "t", 1, 0, NULL);
    assert_int_equal(rec.nframes, 1);
    assert_int_equal(rec.frames[0].nparts, 3);
    fanout_record(b.feeds, "t", 1, 0, 0, "any", 3, "v", 1, NULL, 0);
    fanout_record(b.feeds, "t", 2, 0, 0, NULL, 0, "v", 1, NULL, 0);  /* null keys too */
    fanout_flush(b.feeds);
    assert_int_equal(rec.ndelivered, 1);
    assert_int_equal(rec.delivered[0].records, 2);
}

static void test_unknown_topic_fails_waiters_and_is_not_cached(void **state) {
    subscribe(C1, 5, "nope", "k");
    subscribe(C2, 6, "nope", NULL);
    feed_on_topic_resolved(b.feeds, "nope", 0, PROTO_E_UNKNOWN_TOPIC, "topic 'nope' does not exist");
    assert_int_equal(rec.nframes, 2);
    assert_int_equal(rec.frames[0].type, PROTO_ERROR);
    assert_int_equal(rec.frames[0].code, PROTO_E_UNKNOWN_TOPIC);
    assert_string_equal(rec.frames[0].text, "topic 'nope' does not exist");
    assert_int_equal(conn1.nsubs + conn2.nsubs, 0);   /* unlinked from both sides */
    subscribe(C1, 7, "nope", "k");
    assert_int_equal(rec.nresolved, 2);            /* asked again: it may exist now */
}

static void test_unsubscribe_before_partition_answer(void **state) {
    /* The Lightstreamer race: subscribe, unsubscribe, subscribe on one feed. */
    sub *s = subscribe(C1, 1, "t", "k");
    feed_on_topic_resolved(b.feeds, "t", 4, PROTO_E_NONE, NULL);
    int32_t p = murmur_part("k", 4);
    feed_unsubscribe(b.feeds, s);                  /* answer still in flight */
    assert_int_equal(count_of("t", "k"), 0);
    feed_on_partition_start(b.feeds, "t", p, 10, NULL);
    assert_int_equal(rec.nassigned, 0);            /* nobody wants it any more */
    s = subscribe(C1, 2, "t", "k");
    assert_int_equal(rec.nresolved, 2);            /* the topic went with its last feed */
    feed_on_topic_resolved(b.feeds, "t", 4, PROTO_E_NONE, NULL);
    feed_on_partition_start(b.feeds, "t", p, 11, NULL);
    assert_int_equal(rec.nassigned, 1);
    assert_int_equal(rec.frames[rec.nframes - 1].type, PROTO_SUBSCRIBED);
    assert_int_equal(rec.frames[rec.nframes - 1].req_id, 2);
    assert_int_equal(count_of("t", "k"), 1);
    feed_unsubscribe(b.feeds, s);
}

static void test_resubscribe_while_query_in_flight(void **state) {
    sub *s = subscribe(C1, 1, "t", "k");
    feed_on_topic_resolved(b.feeds, "t", 4, PROTO_E_NONE, NULL);
    int32_t p = murmur_part("k", 4);
    feed_on_topic_resolved(b.feeds, "t", 4, PROTO_E_NONE, NULL); /* a stale duplicate answer is ignored */
    subscribe(C2, 3, "t", "other-key-on-topic");
    feed_unsubscribe(b.feeds, s);                  /* topic stays: another feed holds it */
    s = subscribe(C1, 2, "t", "k");
    assert_int_equal(rec.nqueried >= 1, 1);
    size_t queried_p = 0;
    for (size_t i = 0; i < rec.nqueried; i++) queried_p += rec.queried[i] == p;
    assert_int_equal(queried_p, 1);                /* the in-flight query serves the new feed */
    feed_on_partition_start(b.feeds, "t", p, 7, NULL);
    int found = 0;
    for (size_t i = 0; i < rec.nframes; i++)
        if (rec.frames[i].type == PROTO_SUBSCRIBED && rec.frames[i].req_id == 2) found = 1;
    assert_true(found);
    feed_unsubscribe(b.feeds, s);
}

static void test_linger_keeps_partitions_then_releases(void **state) {
    cfg.linger_ms = 30;
    sub *s = subscribe(C1, 1, "t", "k");
    feed_on_topic_resolved(b.feeds, "t", 2, PROTO_E_NONE, NULL);
    int32_t p = murmur_part("k", 2);
    feed_on_partition_start(b.feeds, "t", p, 0, NULL);
    uint64_t handle = rec.frames[0].feed;
    feed_unsubscribe(b.feeds, s);
    assert_int_equal(rec.nunassigned, 0);          /* lingering */
    s = subscribe(C2, 2, "t", "k");                /* back within the linger */
    assert_int_equal(rec.frames[1].type, PROTO_SUBSCRIBED);
    assert_int_equal(rec.frames[1].feed, handle);  /* same feed, nothing torn down */
    assert_int_equal(rec.nqueried, 1);
    feed_unsubscribe(b.feeds, s);
    while (rec.nunassigned == 0) event_base_loop(b.base, EVLOOP_ONCE);  /* until the linger fires */
    assert_int_equal(rec.unassigned[0], p);
}

static void test_shared_partition_counted_once(void **state) {
    /* Two keys on one partition: fetched once, released with the last. */
    const char *k1 = "a", *k2 = NULL;
    static char buf[16];
    for (int i = 0; i < 1000 && !k2; i++) {
        snprintf(buf, sizeof(buf), "b%d", i);
        if (murmur_part(buf, 3) == murmur_part(k1, 3)) k2 = buf;
    }
    assert_non_null(k2);
    sub *s1 = subscribe(C1, 1, "t", k1);
    sub *s2 = subscribe(C2, 2, "t", k2);
    feed_on_topic_resolved(b.feeds, "t", 3, PROTO_E_NONE, NULL);
    assert_int_equal(rec.nqueried, 1);
    feed_on_partition_start(b.feeds, "t", murmur_part(k1, 3), 0, NULL);
    assert_int_equal(rec.nframes, 2);
    feed_unsubscribe(b.feeds, s1);
    assert_int_equal(rec.nunassigned, 0);
    feed_unsubscribe(b.feeds, s2);
    assert_int_equal(rec.nunassigned, 1);
}

static void test_partition_error_fails_pending_feed(void **state) {
    subscribe(C1, 4, "t", "k");
    feed_on_topic_resolved(b.feeds, "t", 2, PROTO_E_NONE, NULL);
    feed_on_partition_start(b.feeds, "t", murmur_part("k", 2), 0, "log end offset: Local: Timed out");
    assert_int_equal(rec.nframes, 1);
    assert_int_equal(rec.frames[0].code, PROTO_E_KAFKA);
    char want[128];
    snprintf(want, sizeof(want), "partition t/%d: log end offset: Local: Timed out", murmur_part("k", 2));
    assert_string_equal(rec.frames[0].text, want);
    assert_int_equal(conn1.nsubs, 0);                 /* unlinked from both sides */
}

static void test_many_feeds_survive_table_growth(void **state) {
    /* The feed table starts with 64 buckets and grows: every feed must
     * still be found (shared, fed) after several growths. */
    enum { N = 300 };
    char key[16];
    subscribe(C1, 1, "t", "seed");
    feed_on_topic_resolved(b.feeds, "t", 1, PROTO_E_NONE, NULL);
    feed_on_partition_start(b.feeds, "t", 0, 0, NULL);
    for (int i = 0; i < N; i++) {
        snprintf(key, sizeof(key), "key-%d", i);
        subscribe(C1, (uint64_t)(100 + i), "t", key);
    }
    size_t before = rec.nframes;
    for (int i = 0; i < N; i++) {
        snprintf(key, sizeof(key), "key-%d", i);
        subscribe(C2, (uint64_t)(1000 + i), "t", key);   /* same feeds: found, not created again */
    }
    assert_int_equal(rec.nframes - before, N);
    for (int i = 0; i < N; i++) {
        sent *fr = &rec.frames[before + (size_t)i];
        assert_int_equal(fr->type, PROTO_SUBSCRIBED);
        assert_int_equal(fr->feed, rec.frames[1 + (size_t)i].feed);   /* the handle C1 got */
    }
    rec.ndelivered = 0;
    fanout_record(b.feeds, "t", 0, 1, 0, "key-299", 7, "v", 1, NULL, 0);
    fanout_flush(b.feeds);
    assert_int_equal(rec.ndelivered, 2);
}

static void test_invalid_names_refused_at_once(void **state) {
    proto_err code;
    char err[256];
    assert_null(feed_subscribe(b.feeds, C1, &(proto_frame){.type = PROTO_SUBSCRIBE, .req_id = 1, .topic = {"bad topic", 9}, .key = {"k", 1}}, &code, err, sizeof(err)));
    assert_int_equal(code, PROTO_E_INVALID_ARG);
    assert_string_equal(err, "topic must be 1..249 bytes of A-Z a-z 0-9 . _ - (got 9 bytes)");
    assert_null(feed_subscribe(b.feeds, C1, &(proto_frame){.type = PROTO_SUBSCRIBE, .req_id = 1, .topic = {"t", 1}, .key = {"*", 1}}, &code, err, sizeof(err)));
    assert_int_equal(code, PROTO_E_INVALID_ARG);
    assert_string_equal(err, "key '*' names the every-key feed; subscribe with a nil key for it");
    cfg.max_key = 4;
    assert_null(feed_subscribe(b.feeds, C1, &(proto_frame){.type = PROTO_SUBSCRIBE, .req_id = 1, .topic = {"t", 1}, .key = {"12345", 5}}, &code, err, sizeof(err)));
    assert_string_equal(err, "key must be 1..4 bytes (got 5); use nil for every key");
    assert_int_equal(rec.nresolved, 0);
}

/* ------------------------------------------------------------- catch-ups */

/* The first record's offset in what c was handed in delivery i. */
static uint64_t first_offset(size_t i) {
    proto_decoder *d = proto_decoder_new(1 << 20);
    proto_frame f;
    size_t used;
    assert_int_equal(proto_decode(d, rec.delivered[i].bytes, rec.delivered[i].len, &used, &f), PROTO_FRAME);
    assert_int_equal(f.type, PROTO_MESSAGE);
    uint64_t o = f.offset;
    proto_decoder_free(d);
    return o;
}

static void record(const char *key, int64_t offset) {
    fanout_record(b.feeds, "orders", murmur_part("cust-7", 6), offset, 1000, key, strlen(key), "v", 1, NULL, 0);
}

static void history(const char *key, int64_t offset) {
    upstream_record r = {.topic = "orders", .partition = murmur_part("cust-7", 6), .offset = offset, .ts_ms = 1000,
                         .key = key, .key_len = strlen(key), .value = "v", .value_len = 1};
    catchup_on_record(b.feeds, &r);
}

/* C1 holds orders/cust-7 live from offset 100 and has had 100..104; C2, a
 * version-2 client, then resumes the feed from offset 98. */
static sub *resume_from_98(void) {
    subscribe(C1, 1, "orders", "cust-7");
    feed_on_topic_resolved(b.feeds, "orders", 6, PROTO_E_NONE, NULL);
    int32_t p = murmur_part("cust-7", 6);
    feed_on_partition_start(b.feeds, "orders", p, 100, NULL);
    for (int64_t o = 100; o < 105; o++) record("cust-7", o);
    fanout_flush(b.feeds);
    conn2.version = 2;
    proto_position from = {(uint32_t)p, 98};
    proto_err code;
    char err[128];
    proto_frame req = {.type = PROTO_SUBSCRIBE, .req_id = 2, .topic = {"orders", 6}, .key = {"cust-7", 6},
                       .start_mode = PROTO_START_POSITIONS, .positions = &from, .position_cnt = 1};
    sub *s = feed_subscribe(b.feeds, C2, &req, &code, err, sizeof(err));
    assert_non_null(s);
    assert_non_null(s->cu);                        /* active, catching up */
    size_t assigned = rec.nassigned;
    event_base_loop(b.base, EVLOOP_NONBLOCK);      /* catchup.c takes it: a reader from 98 */
    assert_int_equal(rec.nassigned, assigned + 1);
    assert_int_equal(rec.assigned_at[assigned], 98);
    return s;
}

/* The index of c's last delivery. */
static size_t last_delivery_to(conn *c) {
    for (size_t i = rec.ndelivered; i-- > 0;)
        if (rec.delivered[i].c == c) return i;
    fail_msg("nothing delivered to the connection");
    return 0;
}

static size_t frames_of(conn *c, proto_type type) {
    size_t n = 0;
    for (size_t i = 0; i < rec.nframes; i++) n += rec.frames[i].c == c && rec.frames[i].type == type;
    return n;
}

/* The live feed moves on during the catch-up; the catch-up gets there and
 * joins: history in one slice (other keys left out), LIVE, then the live
 * records from where the history ended. */
static void test_catchup_joins_the_live_feed_where_history_ends(void **state) {
    sub *s = resume_from_98();
    record("cust-7", 105);                         /* live, while C2 catches up: not C2's yet */
    fanout_flush(b.feeds);
    assert_int_equal(records_to(C2), 0);
    history("cust-7", 98);
    history("other", 99);
    for (int64_t o = 100; o < 106; o++) history("cust-7", o);
    size_t before = rec.ndelivered;
    catchup_on_batch_end(b.feeds);
    assert_int_equal(rec.ndelivered, before + 1);  /* one slice */
    assert_int_equal(rec.delivered[before].c, C2);
    assert_int_equal(rec.delivered[before].records, 7);   /* 98, 100..105 */
    assert_int_equal(first_offset(before), 98);
    assert_int_equal(frames_of(C2, PROTO_LIVE), 1);
    assert_null(s->cu);                            /* at the live position: nothing left to filter */
    record("cust-7", 106);
    fanout_flush(b.feeds);
    assert_int_equal(first_offset(last_delivery_to(C2)), 106);
    assert_int_equal(records_to(C2), 8);
    assert_int_equal(records_to(C1), 7);           /* 100..106 */
}

/* Kafka's history runs ahead of the live consumer: the catch-up joins at
 * 108 and the live feed's 105..107 are left out of C2's share of the block. */
static void test_catchup_ahead_of_the_live_feed_filters_the_join(void **state) {
    sub *s = resume_from_98();
    for (int64_t o = 98; o < 108; o++) history("cust-7", o);
    catchup_on_batch_end(b.feeds);
    assert_int_equal(records_to(C2), 10);
    assert_int_equal(frames_of(C2, PROTO_LIVE), 1);
    assert_non_null(s->cu);                        /* the live feed is behind: filtering */
    for (int64_t o = 105; o < 110; o++) record("cust-7", o);
    fanout_flush(b.feeds);
    assert_int_equal(records_to(C1), 10);          /* 100..109 */
    size_t mine = last_delivery_to(C2);
    assert_int_equal(rec.delivered[mine].records, 2);     /* 108, 109: a slice of the shared block */
    assert_int_equal(first_offset(mine), 108);
    assert_int_equal(records_to(C2), 12);
    assert_null(s->cu);
}

/* A reader's clients each get records from their own position; the reader
 * goes back for one behind it. */
static void test_catchup_reader_shared_from_the_lowest_position(void **state) {
    resume_from_98();
    history("cust-7", 98);
    history("cust-7", 99);
    catchup_on_batch_end(b.feeds);
    conn1.version = 2;                             /* a second catch-up of the partition, from 90 */
    feed_unsubscribe(b.feeds, conn1.subs[0]);
    int32_t p = murmur_part("cust-7", 6);
    proto_position from = {(uint32_t)p, 90};
    proto_err code;
    char err[128];
    proto_frame req = {.type = PROTO_SUBSCRIBE, .req_id = 3, .topic = {"orders", 6}, .key = {"cust-7", 6},
                       .start_mode = PROTO_START_POSITIONS, .positions = &from, .position_cnt = 1};
    assert_non_null(feed_subscribe(b.feeds, C1, &req, &code, err, sizeof(err)));
    size_t assigned = rec.nassigned;
    event_base_loop(b.base, EVLOOP_NONBLOCK);
    assert_int_equal(rec.nassigned, assigned + 1);
    assert_int_equal(rec.assigned_at[assigned], 90);      /* one reader, moved back */
    size_t c1 = records_to(C1), c2 = records_to(C2);
    for (int64_t o = 90; o < 102; o++) history("cust-7", o);
    catchup_on_batch_end(b.feeds);
    assert_int_equal(records_to(C1) - c1, 12);     /* 90..101 */
    assert_int_equal(records_to(C2) - c2, 2);      /* 100, 101: it had 98, 99 */
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_shared_feed_one_partition_one_block, setup, teardown),
        cmocka_unit_test_setup_teardown(test_wildcard_reads_every_partition, setup, teardown),
        cmocka_unit_test_setup_teardown(test_unknown_topic_fails_waiters_and_is_not_cached, setup, teardown),
        cmocka_unit_test_setup_teardown(test_unsubscribe_before_partition_answer, setup, teardown),
        cmocka_unit_test_setup_teardown(test_resubscribe_while_query_in_flight, setup, teardown),
        cmocka_unit_test_setup_teardown(test_linger_keeps_partitions_then_releases, setup, teardown),
        cmocka_unit_test_setup_teardown(test_shared_partition_counted_once, setup, teardown),
        cmocka_unit_test_setup_teardown(test_partition_error_fails_pending_feed, setup, teardown),
        cmocka_unit_test_setup_teardown(test_many_feeds_survive_table_growth, setup, teardown),
        cmocka_unit_test_setup_teardown(test_invalid_names_refused_at_once, setup, teardown),
        cmocka_unit_test_setup_teardown(test_kafka_loss_told_in_order, setup, teardown),
        cmocka_unit_test_setup_teardown(test_log_cut_short_reused_offsets_delivered, setup, teardown),
        cmocka_unit_test_setup_teardown(test_takeover_reads_a_shared_partition_again, setup, teardown),
        cmocka_unit_test_setup_teardown(test_takeover_during_log_end_lookup_starts_further_back, setup, teardown),
        cmocka_unit_test_setup_teardown(test_loss_after_a_rewind_counts_per_feed, setup, teardown),
        cmocka_unit_test_setup_teardown(test_stale_reset_ignored, setup, teardown),
        cmocka_unit_test_setup_teardown(test_failed_reset_lookup_retried_from_the_position, setup, teardown),
        cmocka_unit_test_setup_teardown(test_reset_for_a_position_left_goes_on_from_here, setup, teardown),
        cmocka_unit_test_setup_teardown(test_assignment_gen_not_reused_after_topic_freed, setup, teardown),
        cmocka_unit_test_setup_teardown(test_catchup_joins_the_live_feed_where_history_ends, setup, teardown),
        cmocka_unit_test_setup_teardown(test_catchup_ahead_of_the_live_feed_filters_the_join, setup, teardown),
        cmocka_unit_test_setup_teardown(test_catchup_reader_shared_from_the_lowest_position, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
