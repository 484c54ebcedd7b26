/* test_cluster.c -- a feed's cluster roles against a scripted coordination backend: relay, notices, leases, takeover, store up/down. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <event2/event.h>

#include "broker/cluster.h"
#include "broker/conn.h"
#include "broker/fanout.h"
#include "broker/feed.h"
#include "broker/table.h"
#include "broker/upstream.h"

/* Coordination is a backend table, so this test scripts one: every call is
 * recorded and answered by the test, in any order it likes, as a slow or
 * racing Redis would. Connections and the Kafka consumer are recorders
 * linked in their place (their real code runs in the integration tests). */

/* ------------------------------------------------------------ recorders */

static struct {
    proto_type types[64];
    uint64_t feeds[64];
    size_t nframes;
    struct {
        conn *c;
        uint32_t records;
        uint64_t lost;
        char bytes[512];
        size_t len;
    } delivered[32];
    size_t ndelivered;
    int32_t assigned[32];
    int64_t assigned_at[32];
    size_t nassigned;
    int32_t unassigned[32];
    size_t nunassigned;
    size_t nqueried;
} rec;

int conn_send(conn *c, const proto_frame *f) {
    rec.types[rec.nframes] = f->type;
    rec.feeds[rec.nframes++] = f->feed;
    return 0;
}

void conn_send_error(conn *c, uint64_t req_id, proto_err code, const char *fmt, ...) {
    rec.types[rec.nframes] = PROTO_ERROR;
    rec.feeds[rec.nframes++] = 0;
}

void conn_deliver(conn *c, sub *s, outq_block *blk, size_t off, size_t len, uint32_t records, uint64_t lost) {
    size_t i = rec.ndelivered++;
    rec.delivered[i].c = c;
    rec.delivered[i].records = records;
    rec.delivered[i].lost = lost;
    rec.delivered[i].len = len < sizeof(rec.delivered[i].bytes) ? len : sizeof(rec.delivered[i].bytes);
    memcpy(rec.delivered[i].bytes, blk->data + off, rec.delivered[i].len);
}

int conn_takes_records(const conn *c) {
    return 1;
}

void upstream_cancel_topic(upstream *u, const char *topic_name) {}

void upstream_query_seek(upstream *u, const char *topic_name, int32_t partition, upstream_seek where, int64_t arg,
                         uint32_t tag) {}

void upstream_resolve_topic(upstream *u, const char *topic_name) {}
void upstream_query_start(upstream *u, const char *topic_name, int32_t partition) {
    rec.nqueried++;
}
void upstream_query_reset(upstream *u, const char *topic_name, int32_t partition, int64_t from, uint32_t tag) {}
void upstream_delete_topic(upstream *u, const char *topic_name) {}
int upstream_assign(upstream *u, const char *topic_name, int32_t partition, int64_t offset) {
    rec.assigned_at[rec.nassigned] = offset;
    rec.assigned[rec.nassigned++] = partition;
    return 0;
}
int upstream_unassign(upstream *u, const char *topic_name, int32_t partition) {
    rec.unassigned[rec.nunassigned++] = partition;
    return 0;
}

/* ---------------------------------------------------- scripted backend */

typedef struct call {
    const char *op;
    char feed[128];
    long local;
    int own, announce;
    coord_watch_kind kind;
    coord_cb *cb;
    void *cb_data;
    int answered;
    char data[512];               /* relay bytes */
    size_t len;
    int64_t offs[8];              /* relay resume offsets */
    size_t noffs;
} call;

static struct {
    call calls[128];
    size_t n;
    int up;
} script;

static call *record(const char *op, const coord_feed *f, coord_cb *cb, void *cb_data) {
    call *k = &script.calls[script.n++];
    memset(k, 0, sizeof(*k));
    k->op = op;
    coord_feed_name(f, k->feed);
    k->cb = cb;
    k->cb_data = cb_data;
    return k;
}

static void s_acquire(coord *c, const coord_feed *f, coord_cb *cb, void *d) {
    record("acquire", f, cb, d);
}
static void s_release(coord *c, const coord_feed *f, long local_after, coord_cb *cb, void *d) {
    record("release", f, cb, d)->local = local_after;
}
static void s_claim(coord *c, const coord_feed *f, int announce, coord_cb *cb, void *d) {
    record("claim", f, cb, d)->announce = announce;
}
static void s_renew(coord *c, const coord_feed *f, coord_cb *cb, void *d) {
    record("renew", f, cb, d);
}
static void s_disown(coord *c, const coord_feed *f, coord_cb *cb, void *d) {
    record("disown", f, cb, d);
}
static void s_assert(coord *c, const coord_feed *f, long local, int own, coord_cb *cb, void *d) {
    call *k = record("assert", f, cb, d);
    k->local = local;
    k->own = own;
}
static void s_relay(coord *c, const coord_feed *f, const char *data, size_t len, const int64_t *offsets, size_t n) {
    call *k = record("relay", f, NULL, NULL);
    k->answered = 1;
    k->len = len < sizeof(k->data) ? len : sizeof(k->data);
    memcpy(k->data, data, k->len);
    k->noffs = n < 4 ? n : 4;
    memcpy(k->offs, offsets, 2 * k->noffs * sizeof(*offsets));
}
static void s_resign(coord *c, const coord_feed *f, const char *data, size_t len, const int64_t *offsets, size_t n) {
    s_relay(c, f, data, len, offsets, n);
    script.calls[script.n - 1].op = "resign";
}
static void s_watch(coord *c, const coord_feed *f, coord_watch_kind kind) {
    call *k = record("watch", f, NULL, NULL);
    k->kind = kind;
    k->answered = 1;
}
static int s_up(coord *c) {
    return script.up;
}
static void s_topic_in_use(coord *c, const char *topic_name, coord_used_cb *cb, void *d) {
    cb(d, 0);
}
static void s_free(coord *c) {
    coord_result r = {.status = COORD_ERROR, .owner = "", .errstr = "closing"};
    for (size_t i = 0; i < script.n; i++)
        if (!script.calls[i].answered) {
            script.calls[i].answered = 1;
            script.calls[i].cb(script.calls[i].cb_data, &r);
        }
    free(c);
}

static const coord_backend scripted = {
    .name = "scripted", .acquire = s_acquire, .release = s_release, .claim = s_claim, .renew = s_renew,
    .disown = s_disown, .assert_state = s_assert, .relay = s_relay, .resign = s_resign, .watch = s_watch, .up = s_up,
    .topic_in_use = s_topic_in_use, .free = s_free,
};

/* The newest unanswered call of op (NULL when none). */
static call *pending(const char *op) {
    for (size_t i = script.n; i-- > 0;)
        if (!script.calls[i].answered && strcmp(script.calls[i].op, op) == 0) return &script.calls[i];
    return NULL;
}

/* Calls of op made so far. */
static size_t calls_of(const char *op) {
    size_t n = 0;
    for (size_t i = 0; i < script.n; i++) n += strcmp(script.calls[i].op, op) == 0;
    return n;
}

static call *last(const char *op) {
    for (size_t i = script.n; i-- > 0;)
        if (strcmp(script.calls[i].op, op) == 0) return &script.calls[i];
    return NULL;
}

/* Answers the call as Redis would. */
static void answer(call *k, long count, long nodes, const char *owner, const int64_t *offs, size_t noffs) {
    assert_non_null(k);
    assert_false(k->answered);
    k->answered = 1;
    coord_result r = {.status = COORD_OK, .count = count, .nodes = nodes, .own = strcmp(owner, "n1") == 0,
                      .owner = owner, .offsets = offs, .noffsets = noffs};
    k->cb(k->cb_data, &r);
}

/* ---------------------------------------------------------------- fixture */

static config cfg;
static broker b;
static conn conn1;
#define C1 (&conn1)
#define P 3                       /* the partition every test feed reads */

static int setup(void **state) {
    memset(&rec, 0, sizeof(rec));
    memset(&script, 0, sizeof(script));
    memset(&b, 0, sizeof(b));
    memset(&conn1, 0, sizeof(conn1));
    script.up = 1;
    config_defaults(&cfg);
    cfg.linger_ms = 0;
    cfg.redis = strdup("127.0.0.1:6379");   /* cluster mode: the lease tick runs */
    snprintf(b.node_id, sizeof(b.node_id), "n1");
    b.cfg = &cfg;
    b.base = event_base_new();
    coord *c = calloc(1, sizeof(*c));
    c->backend = &scripted;
    b.coord = c;
    b.feeds = feed_table_new(&b);
    return 0;
}

static int teardown(void **state) {
    while (conn1.nsubs) feed_unsubscribe(b.feeds, conn1.subs[conn1.nsubs - 1]);
    free(conn1.subs);
    coord_free(b.coord);          /* completes what is pending, as at shutdown */
    b.coord = NULL;
    feed_table_free(b.feeds);
    event_base_free(b.base);
    config_free(&cfg);
    return 0;
}

/* C1 subscribes to t/key on a 6-partition topic whose key maps to P (a
 * partitioner "all" keeps the arithmetic out: P is given to the feed). */
static sub *subscribe(const char *key) {
    proto_err code;
    char err[128];
    sub *s = feed_subscribe(b.feeds, C1, &(proto_frame){.type = PROTO_SUBSCRIBE, .req_id = 1, .topic = {"t", 1}, .key = {key, key ? strlen(key) : 0}}, &code, err, sizeof(err));
    assert_non_null(s);
    feed_on_topic_resolved(b.feeds, "t", 6, PROTO_E_NONE, NULL);
    if (s->f && !s->f->wildcard) s->f->partition = P;
    return s;
}

/* The feed t/k, owned here and delivering from offset 42. */
static feed *owned_feed(void) {
    sub *s = subscribe("k");
    answer(pending("acquire"), 1, 1, "n1", NULL, 0);
    assert_int_equal(last("watch")->kind, COORD_WATCH_NOTICES);
    feed_on_partition_start(b.feeds, "t", P, 42, NULL);
    assert_int_equal(s->state, SUB_ACTIVE);
    return s->f;
}

/* The feed t/k, relayed from n2 and delivering. */
static feed *relayed_feed(void) {
    sub *s = subscribe("k");
    answer(pending("acquire"), 2, 2, "n2", NULL, 0);
    cluster_on_relay(b.feeds, &(coord_feed){"t", "k", 1, 0}, "S n2\n", 5);
    assert_int_equal(s->state, SUB_ACTIVE);
    return s->f;
}

/* Relay bytes from owner: a MESSAGE at offset (owner's feed handle 99),
 * and a DROPPED of lost when lost > 0; the batch spans positions from..to
 * of partition P (from INT64_MIN: none in the header). */
static size_t relay_span(char *out, size_t cap, const char *owner, int64_t offset, uint64_t lost, int64_t from,
                         int64_t to) {
    proto_buf pb;
    proto_buf_init(&pb);
    int n = from == INT64_MIN ? snprintf(out, cap, "R %s\n", owner)
                     : snprintf(out, cap, "R %s %d:%lld:%lld\n", owner, P, (long long)from, (long long)to);
    proto_frame m = {.type = PROTO_MESSAGE, .feed = 99, .partition = P, .offset = (uint64_t)offset,
                     .key = {"k", 1}, .value = {"v", 1}};
    assert_int_equal(proto_encode(&pb, &m), 0);
    if (lost) {
        proto_frame d = {.type = PROTO_DROPPED, .feed = 99, .count = lost};
        assert_int_equal(proto_encode(&pb, &d), 0);
    }
    assert_true((size_t)n + pb.len <= cap);
    memcpy(out + n, pb.data, pb.len);
    size_t len = (size_t)n + pb.len;
    proto_buf_free(&pb);
    return len;
}

static size_t relay_bytes(char *out, size_t cap, const char *owner, int64_t offset, uint64_t lost) {
    return relay_span(out, cap, owner, offset, lost, INT64_MIN, -1);
}

static void relay_in(const char *data, size_t len) {
    cluster_on_relay(b.feeds, &(coord_feed){"t", "k", 1, 0}, data, len);
}

/* A record of t/k from this node's own Kafka consumer, and the batch's end. */
static void kafka_in(int64_t offset) {
    fanout_record(b.feeds, "t", P, offset, 0, "k", 1, "v", 1, NULL, 0);
    cluster_on_batch_end(b.feeds);
}

/* The offset of the one MESSAGE in delivered block i. */
static int64_t delivered_offset(size_t i) {
    proto_decoder *d = proto_decoder_new(1 << 20);
    proto_frame fr;
    size_t used;
    assert_int_equal(rec.delivered[i].records, 1);
    assert_int_equal(proto_decode(d, rec.delivered[i].bytes, rec.delivered[i].len, &used, &fr), PROTO_FRAME);
    int64_t off = (int64_t)fr.offset;
    proto_decoder_free(d);
    return off;
}

/* Runs the lease tick once, as its timer would. */
static void tick(void) {
    event_active(b.feeds->tick_ev, EV_TIMEOUT, 0);
    event_base_loop(b.base, EVLOOP_NONBLOCK);
}

/* ------------------------------------------------------------------ tests */

static void test_relay_waits_for_sync_then_delivers_in_its_own_handle(void **state) {
    sub *s = subscribe("k");
    answer(pending("acquire"), 2, 2, "n2", NULL, 0);
    feed *f = s->f;
    assert_int_equal(f->role, ROLE_RELAY);
    assert_int_equal(last("watch")->kind, COORD_WATCH_RELAY);
    assert_int_equal(last("claim")->announce, 1);    /* asks the owner for a sync marker */
    assert_int_equal(rec.nqueried + rec.nassigned, 0);   /* a relay reads nothing from Kafka */
    char data[256];
    size_t n = relay_bytes(data, sizeof(data), "n2", 10, 0);
    coord_feed cf = {"t", "k", 1, 0};
    cluster_on_relay(b.feeds, &cf, data, n);         /* before the marker: not yet */
    assert_int_equal(rec.ndelivered, 0);
    assert_int_equal(rec.nframes, 0);
    cluster_on_relay(b.feeds, &cf, "S n2\n", 5);
    assert_int_equal(rec.nframes, 1);
    assert_int_equal(rec.types[0], PROTO_SUBSCRIBED);
    assert_int_equal(rec.feeds[0], f->handle);
    n = relay_bytes(data, sizeof(data), "n2", 11, 3);
    cluster_on_relay(b.feeds, &cf, data, n);
    assert_int_equal(rec.ndelivered, 1);
    assert_int_equal(rec.delivered[0].records, 1);
    assert_int_equal(rec.delivered[0].lost, 3);     /* the owner's DROPPED rides along */
    proto_decoder *d = proto_decoder_new(1 << 20);
    proto_frame fr;
    size_t used;
    assert_int_equal(proto_decode(d, rec.delivered[0].bytes, rec.delivered[0].len, &used, &fr), PROTO_FRAME);
    assert_int_equal(fr.type, PROTO_MESSAGE);
    assert_int_equal(fr.feed, f->handle);            /* re-encoded: this node's handle, not 99 */
    assert_int_equal(fr.offset, 11);
    proto_decoder_free(d);
}

static void test_undecodable_relay_is_dropped(void **state) {
    relayed_feed();
    coord_feed cf = {"t", "k", 1, 0};
    cluster_on_relay(b.feeds, &cf, "R n2\n\xff\xff\xff\xff", 9);
    cluster_on_relay(b.feeds, &cf, "garbage", 7);
    assert_int_equal(rec.ndelivered, 0);
}

static void test_owner_relays_from_a_join_until_the_leave(void **state) {
    feed *f = owned_feed();
    coord_feed cf = feed_coord(f);
    fanout_record(b.feeds, "t", P, 42, 0, "k", 1, "v", 1, NULL, 0);
    fanout_flush(b.feeds);
    assert_int_equal(calls_of("relay"), 0);          /* nobody else holds it */
    cluster_on_notice(b.feeds, &cf, COORD_JOIN, "n2", 2);
    call *sync = last("relay");
    assert_non_null(sync);
    assert_int_equal(sync->len, 10);
    assert_memory_equal(sync->data, "S n1 3:43\n", 10);   /* where the feed is */
    assert_int_equal(sync->noffs, 1);                /* where a successor resumes */
    assert_int_equal(sync->offs[0], P);
    assert_int_equal(sync->offs[1], 43);
    fanout_record(b.feeds, "t", P, 43, 0, "k", 1, "v", 1, NULL, 0);
    fanout_flush(b.feeds);
    call *r = last("relay");
    assert_ptr_not_equal(r, sync);
    assert_memory_equal(r->data, "R n1 3:43:44\n", 13);   /* from where to where */
    assert_int_equal(r->offs[1], 44);
    assert_int_equal(rec.ndelivered, 2);             /* its own subscriber too */
    cluster_on_notice(b.feeds, &cf, COORD_LEAVE, "n2", 1);
    fanout_record(b.feeds, "t", P, 44, 0, "k", 1, "v", 1, NULL, 0);
    fanout_flush(b.feeds);
    assert_ptr_equal(last("relay"), r);              /* relaying stopped */
    assert_int_equal(rec.ndelivered, 3);
}

/* Lost to a takeover (while paused, or cut off): it keeps reading Kafka
 * until its subscribers reach the new owner's relay, then relays. */
static void test_lost_lease_catches_up_then_relays(void **state) {
    feed *f = owned_feed();
    kafka_in(42);
    tick();
    answer(pending("renew"), 2, 2, "n2", NULL, 0);
    assert_int_equal(f->role, ROLE_RELAY);
    assert_true(f->repairing);
    assert_int_equal(rec.nunassigned, 0);            /* still reading */
    assert_int_equal(last("watch")->kind, COORD_WATCH_RELAY);
    assert_int_equal(pending("claim")->announce, 1); /* asks where the relay is */
    char data[256];
    size_t n = relay_span(data, sizeof(data), "n2", 45, 0, 45, 46);
    relay_in(data, n);                               /* the relay before the marker: waits */
    assert_int_equal(rec.ndelivered, 1);
    relay_in("S n2 3:46\n", 10);
    assert_true(f->repairing);                       /* this node is at 43, the relay at 46 */
    kafka_in(43);
    kafka_in(45);
    assert_int_equal(rec.ndelivered, 3);
    assert_int_equal(delivered_offset(2), 45);
    assert_false(f->repairing);                      /* reached it: stops reading */
    assert_int_equal(rec.nunassigned, 1);
    assert_int_equal(rec.unassigned[0], P);
    n = relay_span(data, sizeof(data), "n2", 45, 0, 45, 46);
    relay_in(data, n);                               /* had it */
    assert_int_equal(rec.ndelivered, 3);
    n = relay_span(data, sizeof(data), "n2", 47, 0, 46, 48);
    relay_in(data, n);
    assert_int_equal(rec.ndelivered, 4);
    assert_int_equal(delivered_offset(3), 47);
}

/* An owner whose lease ran out as it counts it (a pause, a cut from the
 * store) stops relaying and writing offsets, but serves its own; a renewal
 * brings it back, and its next batch shows the relays what they missed. */
static void test_owner_past_its_lease_is_fenced(void **state) {
    feed *f = owned_feed();
    cluster_on_notice(b.feeds, &(coord_feed){"t", "k", 1, 0}, COORD_JOIN, "n2", 2);
    size_t relays = calls_of("relay");
    f->lease_until = 1;                              /* long past */
    kafka_in(42);
    assert_true(f->fenced);
    assert_int_equal(calls_of("relay"), relays);     /* nothing relayed, no offsets written */
    assert_int_equal(rec.ndelivered, 1);             /* its own subscriber still served */
    tick();
    answer(pending("renew"), 2, 2, "n1", NULL, 0);
    assert_false(f->fenced);
    assert_int_equal(calls_of("relay"), relays + 1);
    assert_memory_equal(last("relay")->data, "C n1 3:43\n", 10);   /* where it is now: relays check */
    kafka_in(43);
    call *r = last("relay");
    assert_int_equal(calls_of("relay"), relays + 2);
    assert_memory_equal(r->data, "R n1 3:43:44\n", 13);   /* from 43: a relay at 42 sees the gap */
}

/* A check marker (the owner relays again after a while it did not) is
 * compared by a relay that delivers already: one further back reads the
 * difference from Kafka, even while no new batch comes to show it. */
static void test_check_marker_starts_a_repair(void **state) {
    sub *s = subscribe("k");
    answer(pending("acquire"), 2, 2, "n2", NULL, 0);
    relay_in("S n2 3:42\n", 10);
    relay_in("S n2 3:50\n", 10);                    /* another node's sync: not ours to compare */
    assert_false(s->f->repairing);
    relay_in("C n2 3:50\n", 10);
    assert_true(s->f->repairing);
    assert_int_equal(rec.assigned_at[0], 42);
    kafka_in(45);
    assert_int_equal(rec.ndelivered, 1);
    feed_on_partition_start(b.feeds, "t", P, 50, NULL);
    kafka_in(49);
    assert_false(s->f->repairing);                   /* met the owner's position */
}

/* A relay that missed batches (its link to the store was down) reads the
 * gap from Kafka, then takes the relay again: nothing lost, nothing twice. */
static void test_relay_gap_is_read_from_kafka(void **state) {
    sub *s = subscribe("k");
    answer(pending("acquire"), 2, 2, "n2", NULL, 0);
    feed *f = s->f;
    relay_in("S n2 3:100\n", 11);
    char data[256];
    size_t n = relay_span(data, sizeof(data), "n2", 101, 0, 100, 102);
    relay_in(data, n);
    assert_int_equal(rec.ndelivered, 1);
    n = relay_span(data, sizeof(data), "n2", 111, 0, 110, 112);
    relay_in(data, n);                               /* 102..110 never came */
    assert_true(f->repairing);
    assert_int_equal(rec.ndelivered, 1);
    assert_int_equal(rec.nassigned, 1);              /* an offset to start at: no lookup */
    assert_int_equal(rec.assigned_at[0], 102);       /* from where the relay left off */
    kafka_in(105);
    kafka_in(111);
    assert_int_equal(rec.ndelivered, 3);
    assert_int_equal(delivered_offset(1), 105);
    assert_int_equal(delivered_offset(2), 111);
    assert_false(f->repairing);
    assert_int_equal(rec.nunassigned, 1);
    relay_in(data, n);                               /* 111 again: had it */
    n = relay_span(data, sizeof(data), "n2", 112, 0, 112, 113);
    relay_in(data, n);
    assert_int_equal(rec.ndelivered, 4);
    assert_int_equal(delivered_offset(3), 112);
}

static void test_feed_label_names_the_feed_for_logs(void **state) {
    assert_string_equal(feed_label(subscribe("k")->f), "t/k");
    assert_string_equal(feed_label(subscribe(NULL)->f), "t/*");
    sub *s = subscribe("a\001b");
    assert_string_equal(feed_label(s->f), "t/a?b");
}

/* Records that went by while nobody listened (no subscriber here, the
 * other nodes reaped while cut off) were never batched: a sync marker says
 * where the feed is now, so a node coming back sees what it lacks. */
static void test_sync_marker_says_where_the_feed_is_now(void **state) {
    feed *f = owned_feed();
    coord_feed cf = feed_coord(f);
    cluster_on_notice(b.feeds, &cf, COORD_JOIN, "n2", 2);
    feed_unsubscribe(b.feeds, conn1.subs[0]);
    answer(pending("release"), 1, 1, "n1", NULL, 0);  /* n2 still holds it */
    cluster_on_notice(b.feeds, &cf, COORD_LEAVE, "n2", 0);   /* n2 reaped */
    assert_false(f->relay_on);
    kafka_in(42);
    kafka_in(43);                                    /* nobody listens */
    cluster_on_notice(b.feeds, &cf, COORD_JOIN, "n2", 1);    /* n2 back */
    answer(pending("disown"), 1, 1, "n1", NULL, 0);  /* so it keeps the feed */
    call *sync = last("relay");
    assert_int_equal(sync->len, 10);
    assert_memory_equal(sync->data, "S n1 3:44\n", 10);
}

/* A disown the store could not take (it is away) is not retried at once:
 * with no linger that was a recursion without end. */
static void test_disown_failing_is_not_retried_at_once(void **state) {
    owned_feed();
    feed_unsubscribe(b.feeds, conn1.subs[0]);
    answer(pending("release"), 0, 0, "n1", NULL, 0);
    size_t disowns = calls_of("disown");
    assert_int_equal(disowns, 1);
    call *k = pending("disown");
    k->answered = 1;
    k->cb(k->cb_data, &(coord_result){.status = COORD_ERROR, .owner = "", .errstr = "redis: not connected"});
    assert_int_equal(calls_of("disown"), disowns);
    assert_int_equal(feed_table_count(b.feeds), 1);  /* still serving, until the store answers */
}

/* A new owner's first batch has no position to start from yet: it says
 * -1, and the relays take its end, so the next batch is no false gap (a
 * relay repaired after every new owner's first batch, and counted the
 * owner's DROPPED a second time from its own reads). */
static void test_first_batch_without_a_position(void **state) {
    owned_feed();
    cluster_on_notice(b.feeds, &(coord_feed){"t", "k", 1, 0}, COORD_JOIN, "n2", 2);
    kafka_in(42);
    assert_memory_equal(last("relay")->data, "R n1 3:-1:43\n", 13);
}

static void test_relay_takes_the_end_of_a_batch_without_a_start(void **state) {
    sub *s = subscribe("k");
    answer(pending("acquire"), 2, 2, "n2", NULL, 0);
    relay_in("S n2 3:42\n", 10);
    char data[256];
    size_t n = relay_span(data, sizeof(data), "n2", 42, 0, -1, 43);
    relay_in(data, n);
    n = relay_span(data, sizeof(data), "n2", 53, 10, 43, 54);   /* ten lost in Kafka, then 53 */
    relay_in(data, n);
    assert_false(s->f->repairing);
    assert_int_equal(rec.ndelivered, 2);
    assert_int_equal(rec.delivered[1].lost, 10);
}

static void test_gone_marker_claims_at_once(void **state) {
    relayed_feed();
    size_t claims = calls_of("claim");
    relay_in("G n2\n", 5);
    assert_int_equal(calls_of("claim"), claims + 1);
    assert_int_equal(pending("claim")->announce, 0);
    int64_t offs[] = {P, 77};
    answer(pending("claim"), 1, 1, "n1", offs, 1);
    assert_int_equal(rec.assigned_at[0], 77);
}

static void test_stopping_owner_resigns(void **state) {
    owned_feed();
    kafka_in(42);
    cluster_resign_all(b.feeds);
    call *k = last("resign");
    assert_non_null(k);
    assert_int_equal(k->len, 5);
    assert_memory_equal(k->data, "G n1\n", 5);
    assert_int_equal(k->noffs, 1);
    assert_int_equal(k->offs[0], P);
    assert_int_equal(k->offs[1], 43);                /* where the successor resumes */
}

static void test_takeover_resumes_where_the_old_owner_stopped(void **state) {
    feed *f = relayed_feed();
    tick();
    call *k = pending("claim");
    assert_int_equal(k->announce, 0);                /* delivering already: no sync wanted */
    int64_t offs[] = {P, 500};
    answer(k, 2, 2, "n1", offs, 1);
    assert_int_equal(f->role, ROLE_OWNER);
    assert_int_equal(rec.nassigned, 1);
    assert_int_equal(rec.assigned[0], P);
    assert_int_equal(rec.assigned_at[0], 500);       /* not the log end */
    fanout_record(b.feeds, "t", P, 500, 0, "k", 1, "v", 1, NULL, 0);
    fanout_flush(b.feeds);
    assert_int_equal(rec.ndelivered, 1);
    assert_memory_equal(last("relay")->data, "R n1 3:500:501\n", 15);   /* others still need it */
}

static void test_store_back_reasserts_and_follows_the_answer(void **state) {
    feed *f = owned_feed();
    cluster_on_state(b.feeds, 0);
    assert_int_equal(calls_of("assert"), 0);
    cluster_on_state(b.feeds, 1);
    call *k = pending("assert");
    assert_non_null(k);
    assert_string_equal(k->feed, "t/k");
    assert_int_equal(k->local, 1);
    assert_int_equal(k->own, 1);
    answer(k, 2, 2, "n2", NULL, 0);                  /* someone else owns it now */
    assert_int_equal(f->role, ROLE_RELAY);
    assert_true(f->repairing);                       /* catches up from Kafka first */
}

static void test_last_release_disowns_then_retires(void **state) {
    owned_feed();
    feed_unsubscribe(b.feeds, conn1.subs[0]);
    call *k = pending("release");
    assert_int_equal(k->local, 0);
    answer(k, 0, 0, "n1", NULL, 0);
    answer(pending("disown"), 0, 0, "", NULL, 0);
    assert_int_equal(feed_table_count(b.feeds), 0);
    assert_int_equal(last("watch")->kind, COORD_WATCH_NONE);
    assert_int_equal(rec.nunassigned, 1);
}

static void test_owner_waits_for_the_cluster_count(void **state) {
    owned_feed();
    feed_unsubscribe(b.feeds, conn1.subs[0]);
    answer(pending("release"), 1, 1, "n1", NULL, 0); /* another node still holds it */
    assert_int_equal(calls_of("disown"), 0);
    assert_int_equal(feed_table_count(b.feeds), 1);
    assert_int_equal(rec.nunassigned, 0);
}

static void test_disown_refused_keeps_serving(void **state) {
    owned_feed();
    feed_unsubscribe(b.feeds, conn1.subs[0]);
    answer(pending("release"), 0, 0, "n1", NULL, 0);
    answer(pending("disown"), 1, 1, "n1", NULL, 0);  /* wanted again meanwhile */
    assert_int_equal(feed_table_count(b.feeds), 1);
    assert_int_equal(rec.nunassigned, 0);
}

static void test_answer_for_a_feed_gone_is_ignored(void **state) {
    sub *s = subscribe("k");
    feed_unsubscribe(b.feeds, s);
    answer(pending("release"), 0, 0, "", NULL, 0);  /* pending, not ready: goes at once */
    assert_int_equal(feed_table_count(b.feeds), 0);
    answer(pending("acquire"), 1, 1, "n1", NULL, 0); /* the late answer finds nothing */
    assert_int_equal(rec.nqueried + rec.nassigned, 0);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_relay_waits_for_sync_then_delivers_in_its_own_handle, setup, teardown),
        cmocka_unit_test_setup_teardown(test_undecodable_relay_is_dropped, setup, teardown),
        cmocka_unit_test_setup_teardown(test_owner_relays_from_a_join_until_the_leave, setup, teardown),
        cmocka_unit_test_setup_teardown(test_lost_lease_catches_up_then_relays, setup, teardown),
        cmocka_unit_test_setup_teardown(test_owner_past_its_lease_is_fenced, setup, teardown),
        cmocka_unit_test_setup_teardown(test_relay_gap_is_read_from_kafka, setup, teardown),
        cmocka_unit_test_setup_teardown(test_gone_marker_claims_at_once, setup, teardown),
        cmocka_unit_test_setup_teardown(test_check_marker_starts_a_repair, setup, teardown),
        cmocka_unit_test_setup_teardown(test_first_batch_without_a_position, setup, teardown),
        cmocka_unit_test_setup_teardown(test_relay_takes_the_end_of_a_batch_without_a_start, setup, teardown),
        cmocka_unit_test_setup_teardown(test_disown_failing_is_not_retried_at_once, setup, teardown),
        cmocka_unit_test_setup_teardown(test_sync_marker_says_where_the_feed_is_now, setup, teardown),
        cmocka_unit_test_setup_teardown(test_feed_label_names_the_feed_for_logs, setup, teardown),
        cmocka_unit_test_setup_teardown(test_stopping_owner_resigns, setup, teardown),
        cmocka_unit_test_setup_teardown(test_takeover_resumes_where_the_old_owner_stopped, setup, teardown),
        cmocka_unit_test_setup_teardown(test_store_back_reasserts_and_follows_the_answer, setup, teardown),
        cmocka_unit_test_setup_teardown(test_last_release_disowns_then_retires, setup, teardown),
        cmocka_unit_test_setup_teardown(test_owner_waits_for_the_cluster_count, setup, teardown),
        cmocka_unit_test_setup_teardown(test_disown_refused_keeps_serving, setup, teardown),
        cmocka_unit_test_setup_teardown(test_answer_for_a_feed_gone_is_ignored, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
