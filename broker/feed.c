/* feed.c -- the subscription table: topics, feeds, subscriptions, partition targeting, linger, fan-out. */
#include "broker/feed.h"

#include <event2/buffer.h>
#include <event2/event.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "broker/conn.h"
#include "broker/log.h"
#include "broker/upstream.h"

/* ------------------------------------------------------------------ types */

typedef enum part_state {
    PART_IDLE,                    /* not fetched */
    PART_QUERYING,                /* log end offset being looked up */
    PART_ASSIGNED,                /* in the consumer's assignment */
} part_state;

typedef struct tpart {
    uint32_t refs;                /* feeds reading this partition */
    part_state state;
} tpart;

struct topic {
    topic *hnext;
    uint64_t hash;
    feed_table *ft;
    char *name;
    int ready;                    /* metadata known */
    int32_t partition_cnt;
    partitioner ptr;
    tpart *parts;
    feed *wild;                   /* the topic/'*' feed, if any */
    feed *feeds;                  /* every feed of the topic */
    sub *waiters;                 /* subscriptions waiting for metadata */
};

struct feed {
    feed *hnext;                  /* feed hash chain */
    feed *tprev, *tnext;          /* topic's feeds */
    uint64_t hash;
    topic *t;
    char *key;
    size_t key_len;
    int wildcard;
    uint32_t handle;
    int32_t partition;            /* the one partition read, or -1 for all */
    int ready;                    /* every partition assigned */
    sub *subs;                    /* SUB_ACTIVE */
    size_t nsubs;
    sub *waiters;                 /* SUB_WAIT_FEED */
    struct event *linger_ev;
    int lingering;
    proto_buf batch;              /* this loop turn's MESSAGE frames */
    uint32_t batch_records;
    feed *dirty_next;
    int dirty;
    uint64_t records;
};

struct feed_table {
    broker *b;
    topic **tbuckets;
    size_t ntbuckets;
    size_t ntopics;
    feed **fbuckets;
    size_t nfbuckets;
    size_t nfeeds;
    feed *dirty;                  /* feeds with a batch to fan out */
    uint32_t next_handle;
    size_t nsubs;                 /* every sub, any state */
    uint32_t *scratch_parts;      /* SUBSCRIBED partition lists */
    size_t scratch_cap;
};

/* --------------------------------------------------------------- hashing */

static uint64_t hash_bytes(uint64_t h, const void *p, size_t len) {
    const uint8_t *s = p;
    for (size_t i = 0; i < len; i++) h = (h ^ s[i]) * 1099511628211ull;
    return h;
}

#define HASH_SEED 14695981039346656037ull

static uint64_t feed_hash(const topic *t, const char *key, size_t key_len, int wildcard) {
    uint64_t h = hash_bytes(HASH_SEED, &t, sizeof(t));
    h = hash_bytes(h, wildcard ? "*" : "=", 1);
    return wildcard ? h : hash_bytes(h, key, key_len);
}

/* Doubles a chained table when it is as full as it is wide. The hnext
 * field is first in both structs, so one routine serves topics and feeds. */
typedef struct chained {
    struct chained *hnext;
    uint64_t hash;
} chained;

static int table_grow(void ***buckets, size_t *nbuckets, size_t nitems) {
    if (nitems < *nbuckets) return 0;
    size_t n = *nbuckets * 2;
    chained **nb = calloc(n, sizeof(*nb));
    if (!nb) return -1;
    chained **old = (chained **)*buckets;
    for (size_t i = 0; i < *nbuckets; i++)
        for (chained *e = old[i], *next; e; e = next) {
            next = e->hnext;
            e->hnext = nb[e->hash % n];
            nb[e->hash % n] = e;
        }
    free(old);
    *buckets = (void **)nb;
    *nbuckets = n;
    return 0;
}

static topic *topic_find(feed_table *ft, const char *name, size_t len) {
    uint64_t h = hash_bytes(HASH_SEED, name, len);
    for (topic *t = ft->tbuckets[h % ft->ntbuckets]; t; t = t->hnext)
        if (t->hash == h && strlen(t->name) == len && memcmp(t->name, name, len) == 0) return t;
    return NULL;
}

static feed *feed_find(feed_table *ft, topic *t, const char *key, size_t key_len, int wildcard) {
    if (wildcard) return t->wild;
    uint64_t h = feed_hash(t, key, key_len, 0);
    for (feed *f = ft->fbuckets[h % ft->nfbuckets]; f; f = f->hnext)
        if (f->hash == h && f->t == t && !f->wildcard && f->key_len == key_len &&
            memcmp(f->key, key, key_len) == 0)
            return f;
    return NULL;
}

/* ------------------------------------------------------------ sub lists */

static void list_push(sub **head, sub *s) {
    s->prev = NULL;
    s->next = *head;
    if (*head) (*head)->prev = s;
    *head = s;
}

static void list_del(sub **head, sub *s) {
    if (s->prev)
        s->prev->next = s->next;
    else
        *head = s->next;
    if (s->next) s->next->prev = s->prev;
    s->prev = s->next = NULL;
}

/* ---------------------------------------------------------------- topics */

static partitioner topic_partitioner(feed_table *ft, const char *name) {
    const config *cfg = ft->b->cfg;
    for (size_t i = cfg->partitioner_cnt; i-- > 0;)
        if (strcmp(cfg->partitioners[i].name, name) == 0)
            return (partitioner)partitioner_parse(cfg->partitioners[i].value);
    return (partitioner)partitioner_parse(cfg->default_partitioner);
}

static topic *topic_get(feed_table *ft, const char *name, size_t len) {
    topic *t = topic_find(ft, name, len);
    if (t) return t;
    if (table_grow((void ***)&ft->tbuckets, &ft->ntbuckets, ft->ntopics) < 0) return NULL;
    t = calloc(1, sizeof(*t));
    if (!t || !(t->name = strndup(name, len))) {
        free(t);
        return NULL;
    }
    t->hash = hash_bytes(HASH_SEED, name, len);
    t->ft = ft;
    t->ptr = topic_partitioner(ft, t->name);
    t->hnext = ft->tbuckets[t->hash % ft->ntbuckets];
    ft->tbuckets[t->hash % ft->ntbuckets] = t;
    ft->ntopics++;
    upstream_resolve_topic(ft->b->up, t->name);
    return t;
}

/* Frees the topic once nothing refers to it. */
static void topic_maybe_free(feed_table *ft, topic *t) {
    if (t->feeds || t->waiters) return;
    topic **pp = &ft->tbuckets[t->hash % ft->ntbuckets];
    while (*pp != t) pp = &(*pp)->hnext;
    *pp = t->hnext;
    ft->ntopics--;
    free(t->parts);
    free(t->name);
    free(t);
}

/* ----------------------------------------------------------------- feeds */

static void feed_destroy(feed_table *ft, feed *f);

static void feed_linger_expired(evutil_socket_t fd, short what, void *arg) {
    feed *f = arg;
    log_debug("feed %s/%.*s: linger over, releasing", f->t->name, (int)f->key_len, f->key ? f->key : "*");
    feed_destroy(f->t->ft, f);
}

/* A feed with neither subscribers nor waiters lingers, then goes. */
static void feed_check_idle(feed_table *ft, feed *f) {
    if (f->nsubs > 0 || f->waiters) return;
    if (!f->ready || ft->b->cfg->linger_ms == 0) {
        feed_destroy(ft, f);
        return;
    }
    struct timeval tv = {(time_t)(ft->b->cfg->linger_ms / 1000), (suseconds_t)(ft->b->cfg->linger_ms % 1000) * 1000};
    f->lingering = 1;
    event_add(f->linger_ev, &tv);
}

static void part_unref(feed_table *ft, topic *t, int32_t p) {
    tpart *tp = &t->parts[p];
    if (--tp->refs > 0) return;
    if (tp->state == PART_ASSIGNED) {
        upstream_unassign(ft->b->up, t->name, p);
        tp->state = PART_IDLE;
    }
    /* PART_QUERYING stays: the answer is discarded when it comes. */
}

static void feed_destroy(feed_table *ft, feed *f) {
    topic *t = f->t;
    if (f->dirty) {
        feed **pp = &ft->dirty;
        while (*pp != f) pp = &(*pp)->dirty_next;
        *pp = f->dirty_next;
    }
    if (f->wildcard) {
        t->wild = NULL;
    } else {
        feed **pp = &ft->fbuckets[f->hash % ft->nfbuckets];
        while (*pp != f) pp = &(*pp)->hnext;
        *pp = f->hnext;
    }
    if (f->tprev)
        f->tprev->tnext = f->tnext;
    else
        t->feeds = f->tnext;
    if (f->tnext) f->tnext->tprev = f->tprev;
    ft->nfeeds--;
    if (f->partition >= 0)
        part_unref(ft, t, f->partition);
    else
        for (int32_t p = 0; p < t->partition_cnt; p++) part_unref(ft, t, p);
    if (f->linger_ev) event_free(f->linger_ev);
    proto_buf_free(&f->batch);
    free(f->key);
    free(f);
    topic_maybe_free(ft, t);
}

/* Partitions [first, last] this feed reads. */
static void feed_range(const feed *f, int32_t *first, int32_t *last) {
    if (f->partition >= 0) {
        *first = *last = f->partition;
    } else {
        *first = 0;
        *last = f->t->partition_cnt - 1;
    }
}

static int feed_all_assigned(const feed *f) {
    int32_t a, z;
    feed_range(f, &a, &z);
    for (int32_t p = a; p <= z; p++)
        if (f->t->parts[p].state != PART_ASSIGNED) return 0;
    return 1;
}

static feed *feed_create(feed_table *ft, topic *t, const char *key, size_t key_len, int wildcard) {
    if (!wildcard && table_grow((void ***)&ft->fbuckets, &ft->nfbuckets, ft->nfeeds) < 0) return NULL;
    feed *f = calloc(1, sizeof(*f));
    if (!f) return NULL;
    if (!wildcard && !(f->key = malloc(key_len))) {
        free(f);
        return NULL;
    }
    f->linger_ev = event_new(ft->b->base, -1, 0, feed_linger_expired, f);
    if (!f->linger_ev) {
        free(f->key);
        free(f);
        return NULL;
    }
    if (!wildcard) memcpy(f->key, key, key_len);
    f->key_len = wildcard ? 0 : key_len;
    f->wildcard = wildcard;
    f->t = t;
    f->handle = ++ft->next_handle ? ft->next_handle : ++ft->next_handle;
    f->hash = feed_hash(t, key, key_len, wildcard);
    f->partition = wildcard ? -1 : partitioner_partition(t->ptr, key, key_len, t->partition_cnt);
    if (wildcard) {
        t->wild = f;
    } else {
        f->hnext = ft->fbuckets[f->hash % ft->nfbuckets];
        ft->fbuckets[f->hash % ft->nfbuckets] = f;
    }
    f->tnext = t->feeds;
    if (t->feeds) t->feeds->tprev = f;
    t->feeds = f;
    ft->nfeeds++;

    int32_t a, z;
    feed_range(f, &a, &z);
    for (int32_t p = a; p <= z; p++) {
        tpart *tp = &t->parts[p];
        if (tp->refs++ == 0 && tp->state == PART_IDLE) {
            tp->state = PART_QUERYING;
            upstream_query_start(ft->b->up, t->name, p);
        }
    }
    f->ready = feed_all_assigned(f);
    return f;
}

/* ------------------------------------------------------- subscriptions */

static void coord_done(void *cb_data, coord_status st, const char *errstr) {
    if (st == COORD_ERROR) log_warn("coordination: %s", errstr ? errstr : "error");
}

static coord_feed feed_coord(const feed *f) {
    return (coord_feed){f->t->name, f->key, f->key_len, f->wildcard};
}

/* Sends SUBSCRIBED and makes s receive records. */
static void sub_activate(feed_table *ft, feed *f, sub *s) {
    int32_t a, z;
    feed_range(f, &a, &z);
    size_t n = (size_t)(z - a + 1);
    if (n > ft->scratch_cap) {
        uint32_t *np = realloc(ft->scratch_parts, n * sizeof(*np));
        if (!np) {
            log_error("out of memory");
            abort();
        }
        ft->scratch_parts = np;
        ft->scratch_cap = n;
    }
    for (size_t i = 0; i < n; i++) ft->scratch_parts[i] = (uint32_t)a + (uint32_t)i;
    s->state = SUB_ACTIVE;
    s->f = f;
    list_push(&f->subs, s);
    f->nsubs++;
    proto_frame fr = {.type = PROTO_SUBSCRIBED, .req_id = s->req_id, .feed = f->handle,
                      .partitions = ft->scratch_parts, .partition_cnt = n};
    coord_feed cf = feed_coord(f);
    coord_acquire(ft->b->coord, &cf, coord_done, NULL);
    conn_send(s->c, &fr);
}

/* Answers s with an error and frees it. */
static void sub_fail(feed_table *ft, sub *s, proto_err code, const char *text) {
    conn *c = s->c;
    conn_send_error(c, s->req_id, code, "%s", text);
    conn_remove_sub(c, s);
    free(s->key);
    free(s);
    ft->nsubs--;
}

/* Attaches s (its topic ready) to its feed, creating the feed. Returns 0,
 * or -1 on out of memory with s untouched. */
static int sub_attach(feed_table *ft, sub *s) {
    topic *t = s->t;
    feed *f = feed_find(ft, t, s->key, s->key_len, s->wildcard);
    if (!f && !(f = feed_create(ft, t, s->key, s->key_len, s->wildcard))) return -1;
    free(s->key);
    s->key = NULL;
    if (f->lingering) {
        event_del(f->linger_ev);
        f->lingering = 0;
    }
    if (f->ready) {
        sub_activate(ft, f, s);
    } else {
        s->state = SUB_WAIT_FEED;
        s->f = f;
        list_push(&f->waiters, s);
    }
    return 0;
}

static int topic_name_ok(const char *name, size_t len) {
    if (len < 1 || len > 249) return 0;
    for (size_t i = 0; i < len; i++) {
        char ch = name[i];
        if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') || ch == '.' ||
              ch == '_' || ch == '-'))
            return 0;
    }
    return !(len == 1 && name[0] == '.') && !(len == 2 && name[0] == '.' && name[1] == '.');
}

sub *feed_subscribe(feed_table *ft, conn *c, uint64_t req_id, const char *topic_name, size_t topic_len,
                    const char *key, size_t key_len, proto_err *code, char *err, size_t errlen) {
    if (!topic_name_ok(topic_name, topic_len)) {
        *code = PROTO_E_INVALID_ARG;
        snprintf(err, errlen, "topic must be 1..249 bytes of A-Z a-z 0-9 . _ - (got %zu bytes)", topic_len);
        return NULL;
    }
    if (key && (key_len < 1 || key_len > ft->b->cfg->max_key)) {
        *code = PROTO_E_INVALID_ARG;
        snprintf(err, errlen, "key must be 1..%llu bytes (got %zu); use nil for every key",
                 (unsigned long long)ft->b->cfg->max_key, key_len);
        return NULL;
    }
    topic *t = topic_get(ft, topic_name, topic_len);
    sub *s = calloc(1, sizeof(*s));
    if (!t || !s || (key && !(s->key = malloc(key_len)))) {
        free(s);
        if (t) topic_maybe_free(ft, t);
        *code = PROTO_E_INTERNAL;
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    s->c = c;
    s->t = t;
    s->req_id = req_id;
    s->wildcard = key == NULL;
    if (key) memcpy(s->key, key, key_len);
    s->key_len = key ? key_len : 0;
    if (t->ready) {
        /* Activation may send SUBSCRIBED now; that only queues output. */
        if (sub_attach(ft, s) < 0) {
            free(s->key);
            free(s);
            topic_maybe_free(ft, t);
            *code = PROTO_E_INTERNAL;
            snprintf(err, errlen, "out of memory");
            return NULL;
        }
    } else {
        s->state = SUB_WAIT_TOPIC;
        list_push(&t->waiters, s);
    }
    ft->nsubs++;
    return s;
}

void feed_unsubscribe(feed_table *ft, sub *s) {
    topic *t = s->t;
    feed *f = s->f;
    switch (s->state) {
    case SUB_WAIT_TOPIC:
        list_del(&t->waiters, s);
        break;
    case SUB_WAIT_FEED:
        list_del(&f->waiters, s);
        break;
    case SUB_ACTIVE: {
        list_del(&f->subs, s);
        f->nsubs--;
        coord_feed cf = feed_coord(f);
        coord_release(ft->b->coord, &cf, coord_done, NULL);
        break;
    }
    }
    free(s->key);
    free(s);
    ft->nsubs--;
    if (f)
        feed_check_idle(ft, f);
    else
        topic_maybe_free(ft, t);
}

int feed_sub_matches(const sub *s, const char *topic_name, size_t topic_len, const char *key, size_t key_len) {
    if (strlen(s->t->name) != topic_len || memcmp(s->t->name, topic_name, topic_len) != 0) return 0;
    int wildcard = key == NULL;
    if (s->f) return s->f->wildcard == wildcard && (wildcard || (s->f->key_len == key_len && memcmp(s->f->key, key, key_len) == 0));
    return s->wildcard == wildcard && (wildcard || (s->key_len == key_len && memcmp(s->key, key, key_len) == 0));
}

uint32_t feed_sub_handle(const sub *s) {
    return s->state == SUB_ACTIVE ? s->f->handle : 0;
}

/* ------------------------------------------------------- upstream results */

void feed_on_topic_resolved(feed_table *ft, const char *topic_name, int32_t partition_cnt, proto_err code,
                            const char *errstr) {
    topic *t = topic_find(ft, topic_name, strlen(topic_name));
    if (!t || t->ready) return;
    if (code == PROTO_E_NONE && partition_cnt > 0) {
        t->parts = calloc((size_t)partition_cnt, sizeof(*t->parts));
        if (!t->parts) code = PROTO_E_INTERNAL, errstr = "out of memory";
    } else if (code == PROTO_E_NONE) {
        code = PROTO_E_KAFKA, errstr = "topic has no partitions";
    }
    if (code != PROTO_E_NONE) {
        /* Not cached: the topic may exist at the next attempt. */
        while (t->waiters) {
            sub *s = t->waiters;
            list_del(&t->waiters, s);
            sub_fail(ft, s, code, errstr);
        }
        topic_maybe_free(ft, t);
        return;
    }
    t->ready = 1;
    t->partition_cnt = partition_cnt;
    log_debug("topic %s: %d partitions, partitioner %s", t->name, partition_cnt, partitioner_name(t->ptr));
    while (t->waiters) {
        sub *s = t->waiters;
        list_del(&t->waiters, s);
        if (sub_attach(ft, s) < 0) sub_fail(ft, s, PROTO_E_INTERNAL, "out of memory");
    }
}

void feed_on_partition_start(feed_table *ft, const char *topic_name, int32_t partition, int64_t offset,
                             const char *errstr) {
    topic *t = topic_find(ft, topic_name, strlen(topic_name));
    if (!t || !t->ready || partition < 0 || partition >= t->partition_cnt) return;
    tpart *tp = &t->parts[partition];
    if (tp->state != PART_QUERYING) return;
    if (tp->refs == 0) {
        tp->state = PART_IDLE;    /* every feed that wanted it left meanwhile */
        return;
    }
    if (!errstr && upstream_assign(ft->b->up, t->name, partition, offset) < 0)
        errstr = "cannot add the partition to the consumer's assignment";
    if (errstr) {
        tp->state = PART_IDLE;
        char text[512];
        snprintf(text, sizeof(text), "partition %s/%d: %s", t->name, (int)partition, errstr);
        /* Fail the feeds that were waiting on it; feed_destroy may free t, so
         * walk a snapshot of the pending feeds. */
        for (feed *f = t->feeds, *next; f; f = next) {
            next = f->tnext;
            int32_t a, z;
            feed_range(f, &a, &z);
            if (f->ready || partition < a || partition > z) continue;
            while (f->waiters) {
                sub *s = f->waiters;
                list_del(&f->waiters, s);
                sub_fail(ft, s, PROTO_E_KAFKA, text);
            }
            if (f->nsubs == 0) feed_destroy(ft, f);
        }
        return;
    }
    tp->state = PART_ASSIGNED;
    for (feed *f = t->feeds; f; f = f->tnext) {
        if (f->ready || !feed_all_assigned(f)) continue;
        f->ready = 1;
        while (f->waiters) {
            sub *s = f->waiters;
            list_del(&f->waiters, s);
            sub_activate(ft, f, s);
        }
    }
}

/* --------------------------------------------------------------- records */

static void feed_append(feed_table *ft, feed *f, int32_t partition, int64_t offset, int64_t ts_ms,
                        const void *key, size_t key_len, const void *value, size_t value_len,
                        const proto_header *headers, size_t header_cnt) {
    if (!f->ready || f->nsubs == 0) return;
    if (f->partition >= 0 && f->partition != partition) return;
    proto_frame fr = {
        .type = PROTO_MESSAGE, .feed = f->handle, .partition = (uint32_t)partition,
        .offset = (uint64_t)offset, .timestamp_ms = ts_ms,
        .key = {key, key_len}, .value = {value, value_len},
        .headers = headers, .header_cnt = header_cnt,
    };
    if (proto_encode(&f->batch, &fr) < 0) {
        log_error("out of memory encoding a record");
        abort();
    }
    f->batch_records++;
    f->records++;
    if (!f->dirty) {
        f->dirty = 1;
        f->dirty_next = ft->dirty;
        ft->dirty = f;
    }
}

void feed_on_record(feed_table *ft, const char *topic_name, int32_t partition, int64_t offset, int64_t ts_ms,
                    const void *key, size_t key_len, const void *value, size_t value_len,
                    const proto_header *headers, size_t header_cnt) {
    topic *t = topic_find(ft, topic_name, strlen(topic_name));
    ft->b->ctr.records_in++;
    if (!t || !t->ready) return;
    if (t->wild) feed_append(ft, t->wild, partition, offset, ts_ms, key, key_len, value, value_len, headers, header_cnt);
    if (key && key_len > 0) {
        feed *f = feed_find(ft, t, key, key_len, 0);
        if (f) feed_append(ft, f, partition, offset, ts_ms, key, key_len, value, value_len, headers, header_cnt);
    }
}

void feed_flush_batch(feed_table *ft) {
    while (ft->dirty) {
        feed *f = ft->dirty;
        ft->dirty = f->dirty_next;
        f->dirty = 0;
        f->dirty_next = NULL;
        outq_block *blk = outq_block_adopt(f->batch.data, f->batch.len, f->batch.cap, f->batch_records);
        proto_buf_init(&f->batch);
        f->batch_records = 0;
        if (!blk) {
            log_error("out of memory in fan-out");
            abort();
        }
        for (sub *s = f->subs; s; s = s->next) conn_deliver(s->c, s, blk);
        outq_block_unref(blk);
    }
}

/* ------------------------------------------------------------------ table */

static void sub_list_free(sub **head) {
    while (*head) {
        sub *s = *head;
        *head = s->next;
        free(s->key);
        free(s);
    }
}

feed_table *feed_table_new(broker *b) {
    feed_table *ft = calloc(1, sizeof(*ft));
    if (!ft) return NULL;
    ft->b = b;
    ft->ntbuckets = 16;
    ft->nfbuckets = 64;
    ft->tbuckets = calloc(ft->ntbuckets, sizeof(*ft->tbuckets));
    ft->fbuckets = calloc(ft->nfbuckets, sizeof(*ft->fbuckets));
    if (!ft->tbuckets || !ft->fbuckets) {
        feed_table_free(ft);
        return NULL;
    }
    return ft;
}

void feed_table_free(feed_table *ft) {
    if (!ft) return;
    /* Connections are closed first, so the lists are normally empty; any
     * subscription still linked is freed here. Destroying a topic's last
     * feed frees the topic. */
    for (size_t i = 0; ft->tbuckets && i < ft->ntbuckets; i++) {
        while (ft->tbuckets[i]) {
            topic *t = ft->tbuckets[i];
            sub_list_free(&t->waiters);
            for (feed *f = t->feeds; f; f = f->tnext) {
                sub_list_free(&f->subs);
                sub_list_free(&f->waiters);
                f->nsubs = 0;
            }
            if (!t->feeds)
                topic_maybe_free(ft, t);
            else
                while (ft->tbuckets[i] == t) feed_destroy(ft, t->feeds);
        }
    }
    free(ft->tbuckets);
    free(ft->fbuckets);
    free(ft->scratch_parts);
    free(ft);
}

/* ------------------------------------------------------------------ stats */

static void json_str(struct evbuffer *out, const char *s, size_t len) {
    evbuffer_add(out, "\"", 1);
    for (size_t i = 0; i < len; i++) {
        unsigned char ch = (unsigned char)s[i];
        if (ch == '"' || ch == '\\')
            evbuffer_add_printf(out, "\\%c", ch);
        else if (ch < 0x20 || ch >= 0x7f)
            evbuffer_add_printf(out, "\\u%04x", ch);
        else
            evbuffer_add(out, &s[i], 1);
    }
    evbuffer_add(out, "\"", 1);
}

void feed_table_stats_json(feed_table *ft, struct evbuffer *out) {
    evbuffer_add_printf(out, "\"subscriptions\":%zu,\"feeds\":[", ft->nsubs);
    int first = 1;
    for (size_t i = 0; i < ft->ntbuckets; i++)
        for (topic *t = ft->tbuckets[i]; t; t = t->hnext)
            for (feed *f = t->feeds; f; f = f->tnext) {
                evbuffer_add_printf(out, "%s{\"topic\":", first ? "" : ",");
                first = 0;
                json_str(out, t->name, strlen(t->name));
                evbuffer_add_printf(out, ",\"key\":");
                if (f->wildcard)
                    evbuffer_add_printf(out, "null");
                else
                    json_str(out, f->key, f->key_len);
                evbuffer_add_printf(out, ",\"handle\":%u,\"subscribers\":%zu,\"partitions\":[", f->handle, f->nsubs);
                int32_t a, z;
                feed_range(f, &a, &z);
                for (int32_t p = a; p <= z; p++) evbuffer_add_printf(out, "%s%d", p == a ? "" : ",", (int)p);
                evbuffer_add_printf(out, "],\"records\":%llu,\"lingering\":%s,\"ready\":%s}",
                                    (unsigned long long)f->records, f->lingering ? "true" : "false",
                                    f->ready ? "true" : "false");
            }
    evbuffer_add_printf(out, "],\"assigned\":[");
    first = 1;
    for (size_t i = 0; i < ft->ntbuckets; i++)
        for (topic *t = ft->tbuckets[i]; t; t = t->hnext)
            for (int32_t p = 0; t->ready && p < t->partition_cnt; p++) {
                if (t->parts[p].state != PART_ASSIGNED) continue;
                evbuffer_add_printf(out, "%s{\"topic\":", first ? "" : ",");
                first = 0;
                json_str(out, t->name, strlen(t->name));
                evbuffer_add_printf(out, ",\"partition\":%d}", (int)p);
            }
    evbuffer_add_printf(out, "]");
}
