/* feed.c -- the subscription table: topics, feeds, subscriptions, partition targeting, linger, fan-out. */
#include "broker/feed.h"

#include <event2/buffer.h>
#include <event2/event.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "broker/conn.h"
#include "broker/log.h"
#include "broker/producer.h"
#include "broker/upstream.h"

/* ------------------------------------------------------------------ types */

typedef enum part_state {
    PART_IDLE,                    /* not fetched */
    PART_QUERYING,                /* log end offset being looked up */
    PART_ASSIGNED,                /* in the consumer's assignment */
    PART_RETRY,                   /* a lookup failed while feeds need it: asked again by retry_ev */
} part_state;

typedef enum feed_role {
    ROLE_PENDING,                 /* asked coordination who owns it */
    ROLE_OWNER,                   /* this node consumes it from Kafka */
    ROLE_RELAY,                   /* another node does; records come through the relay */
} feed_role;

static const char *const role_names[] = {"pending", "owner", "relay"};

typedef struct tpart {
    uint32_t refs;                /* feeds reading this partition */
    part_state state;
    uint32_t gen;                 /* new at every (un)assignment: an answer about an older one is stale */
    int64_t next;                 /* ASSIGNED: offset of the next record the consumer hands us (-1 unknown) */
    int64_t head;                 /* ASSIGNED: past the furthest record read, even after a rewind (-1 unknown) */
    int64_t rewind;               /* QUERYING: start at this offset instead, if lower than the log end (-1 none) */
} tpart;

static void tpart_init(tpart *tp) {
    memset(tp, 0, sizeof(*tp));
    tp->next = tp->head = tp->rewind = -1;
}

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
    feed *hnext;                  /* feed hash chain; hash must follow (table_grow) */
    uint64_t hash;
    feed *tprev, *tnext;          /* topic's feeds */
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
    feed_role role;
    int has_parts;                /* owner: holds references on its partitions */
    long local;                   /* this node's acquired subscriptions */
    long cluster_count;           /* cluster-wide, as last heard */
    long nodes;                   /* nodes holding the feed, as last heard */
    int relay_on;                 /* owner: other nodes need the records */
    /* Owner: per partition, the offset its next record is read from (-1
     * unknown). Records below it are ones it had: after a partition is
     * read again from further back for another feed, it skips them. */
    int64_t *next_off;
    proto_buf batch;              /* this loop turn's MESSAGE frames */
    uint32_t batch_records;
    uint64_t batch_lost;          /* counts of the DROPPED frames in batch */
    feed *dirty_next;
    int dirty;
    uint64_t records;
};

/* A free topic nobody here uses any more, to delete after the grace. */
typedef struct doomed {
    struct doomed *next;
    feed_table *ft;
    struct event *ev;
    char name[];
} doomed;

struct feed_table {
    broker *b;
    doomed *doomed;               /* free topics waiting out their grace */
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
    proto_buf relay_buf;          /* relay bytes being built */
    int64_t relay_offsets[2 * COORD_MAX_OFFSETS];
    proto_decoder *relay_dec;     /* decodes relayed MESSAGE frames */
    struct event *tick_ev;
    struct event *refresh_ev;
    struct event *retry_ev;       /* looks up PART_RETRY partitions again */
    uint32_t gen_seq;             /* tpart.gen values, never reused while the node runs */
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

_Static_assert(offsetof(topic, hash) == offsetof(chained, hash) && offsetof(feed, hash) == offsetof(chained, hash),
               "table_grow needs hnext then hash first in topic and feed");

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

static void doomed_remove(feed_table *ft, doomed *d) {
    doomed **pp = &ft->doomed;
    while (*pp != d) pp = &(*pp)->next;
    *pp = d->next;
    event_free(d->ev);
    free(d);
}

static void doomed_expired(evutil_socket_t fd, short what, void *arg) {
    doomed *d = arg;
    feed_table *ft = d->ft;
    /* Still unused here (a new use would have cancelled us): delete, if no
     * other node uses it either (the lookup thread asks Redis). */
    upstream_delete_free_topic(ft->b->up, d->name);
    doomed_remove(ft, d);
}

/* A free topic's last feed here went: delete it after the grace. */
static void topic_doom(feed_table *ft, const char *name) {
    for (doomed *d = ft->doomed; d; d = d->next)
        if (strcmp(d->name, name) == 0) return;
    doomed *d = calloc(1, sizeof(*d) + strlen(name) + 1);
    if (!d || !(d->ev = event_new(ft->b->base, -1, 0, doomed_expired, d))) {
        free(d);
        return;
    }
    strcpy(d->name, name);
    d->ft = ft;
    d->next = ft->doomed;
    ft->doomed = d;
    uint64_t ms = ft->b->cfg->free_topic_grace_ms;
    struct timeval tv = broker_tv(ms);
    event_add(d->ev, &tv);
}

static topic *topic_get(feed_table *ft, const char *name, size_t len) {
    topic *t = topic_find(ft, name, len);
    if (t) return t;
    for (doomed *d = ft->doomed; d; d = d->next)
        if (strlen(d->name) == len && memcmp(d->name, name, len) == 0) {
            doomed_remove(ft, d);   /* wanted again within the grace */
            break;
        }
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
    if (t->ready && config_is_free_topic(ft->b->cfg, t->name)) topic_doom(ft, t->name);
    free(t->parts);
    free(t->name);
    free(t);
}

/* ----------------------------------------------------------------- feeds */

static void feed_destroy(feed_table *ft, feed *f);
static void feed_check_idle(feed_table *ft, feed *f);

static coord_feed feed_coord(const feed *f) {
    return (coord_feed){f->t->name, f->key, f->key_len, f->wildcard};
}

/* A coordination answer may come after its feed is gone: callbacks carry
 * the feed's name and look it up again. */
typedef struct ticket {
    feed_table *ft;
    int wildcard;
    size_t key_len;
    char topic[256];
    char key[];
} ticket;

static ticket *ticket_new(feed_table *ft, const feed *f) {
    ticket *tk = malloc(sizeof(*tk) + f->key_len);
    if (!tk) {
        log_error("out of memory");
        abort();
    }
    tk->ft = ft;
    tk->wildcard = f->wildcard;
    tk->key_len = f->key_len;
    snprintf(tk->topic, sizeof(tk->topic), "%s", f->t->name);
    if (f->key_len) memcpy(tk->key, f->key, f->key_len);
    return tk;
}

static feed *feed_lookup(feed_table *ft, const char *topic_name, const char *key, size_t key_len, int wildcard) {
    topic *t = topic_find(ft, topic_name, strlen(topic_name));
    return t && t->ready ? feed_find(ft, t, key, key_len, wildcard) : NULL;
}

/* Returns the ticket's feed or NULL, and frees the ticket. */
static feed *ticket_take(ticket *tk) {
    feed *f = feed_lookup(tk->ft, tk->topic, tk->key, tk->key_len, tk->wildcard);
    free(tk);
    return f;
}

static void feed_linger_expired(evutil_socket_t fd, short what, void *arg);

/* Partitions [first, last] this feed reads. */
static void feed_range(const feed *f, int32_t *first, int32_t *last) {
    if (f->partition >= 0) {
        *first = *last = f->partition;
    } else {
        *first = 0;
        *last = f->t->partition_cnt - 1;
    }
}

/* f reads partition p from Kafka on this node. */
static int feed_reads(const feed *f, int32_t p) {
    return f->has_parts && (f->partition < 0 || f->partition == p);
}

static int feed_all_assigned(const feed *f) {
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

#define START_AT_LOG_END (-1)
#define START_AT_BEGINNING (-2)   /* librdkafka's RD_KAFKA_OFFSET_BEGINNING */
#define PART_RETRY_MS 1000        /* a failed partition lookup is tried again after this */

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
        struct timeval tv = broker_tv(PART_RETRY_MS);
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

/* Owner: references the feed's partitions, reading each from the offset a
 * previous owner relayed up to (from offsets pairs) or else from the log
 * end. A partition this node already reads for other feeds is read again
 * from that offset when it is further on, so a feed taken over loses
 * nothing to the sharing. */
static void feed_take_parts(feed_table *ft, feed *f, const int64_t *offsets, size_t noffsets) {
    if (f->has_parts) return;
    f->has_parts = 1;
    topic *t = f->t;
    int32_t a, z;
    feed_range(f, &a, &z);
    for (int32_t p = a; p <= z; p++) {
        int64_t start = START_AT_LOG_END;
        for (size_t i = 0; i < noffsets; i++)
            if (offsets[2 * i] == p && offsets[2 * i + 1] >= 0) start = offsets[2 * i + 1];
        part_ref(ft, t, p, start);
        tpart *tp = &t->parts[p];
        if (start >= 0) {
            f->next_off[p] = start;
            if (tp->state == PART_QUERYING || tp->state == PART_RETRY) part_start_no_later_than(tp, start);
            if (tp->state == PART_ASSIGNED && tp->next > start) {
                log_info("topic %s: reading partition %d again from offset %lld for a feed taken over", t->name,
                         (int)p, (long long)start);
                part_reassign(ft, t, p, start);
            }
        } else if (tp->state == PART_ASSIGNED) {
            /* Shared: from the furthest record read, even while the
             * partition is read again from further back for another feed. */
            f->next_off[p] = tp->head;
        }
    }
}

static void feed_drop_parts(feed_table *ft, feed *f) {
    if (!f->has_parts) return;
    f->has_parts = 0;
    int32_t a, z;
    feed_range(f, &a, &z);
    for (int32_t p = a; p <= z; p++) {
        part_unref(ft, f->t, p);
        f->next_off[p] = -1;      /* known again when it next reads them */
    }
}

static void sub_activate(feed_table *ft, feed *f, sub *s);

/* Sends SUBSCRIBED to everyone waiting once the feed delivers. */
static void feed_set_ready(feed_table *ft, feed *f) {
    if (f->ready) return;
    f->ready = 1;
    while (f->waiters) {
        sub *s = f->waiters;
        list_del(&f->waiters, s);
        sub_activate(ft, f, s);
    }
}

static void feed_become_owner(feed_table *ft, feed *f, const coord_result *r) {
    if (f->role != ROLE_OWNER) {
        log_debug("feed %s: this node is the owner", f->t->name);
        f->role = ROLE_OWNER;
        coord_feed cf = feed_coord(f);
        coord_watch(ft->b->coord, &cf, COORD_WATCH_NOTICES);
    }
    /* Only turned on here: a count read before other nodes re-asserted (or
     * joined) says nothing about them. Only an ordered 'leave' notice turns
     * relaying off, so no relay misses records in between. */
    if (r->nodes > (f->local > 0 ? 1 : 0)) f->relay_on = 1;
    feed_take_parts(ft, f, r->offsets, r->noffsets);
    if (feed_all_assigned(f)) feed_set_ready(ft, f);
}

static void claim_done(void *cb_data, const coord_result *r);

static void feed_become_relay(feed_table *ft, feed *f) {
    if (f->role == ROLE_RELAY) return;
    if (f->role == ROLE_OWNER) log_info("feed %s: lost ownership; relaying", f->t->name);
    f->role = ROLE_RELAY;
    f->relay_on = 0;
    feed_drop_parts(ft, f);
    coord_feed cf = feed_coord(f);
    coord_watch(ft->b->coord, &cf, COORD_WATCH_RELAY);
    /* Now that the relay channel is watched, tell the owner we wait: it
     * answers with a sync marker, after which nothing it reads is missed. */
    if (!f->ready) coord_claim(ft->b->coord, &cf, 1, claim_done, ticket_new(ft, f));
}

static void feed_update_counts(feed *f, const coord_result *r) {
    f->cluster_count = r->count;
    f->nodes = r->nodes;
}

/* --demand-topic: the same event as the subway:demand channel carries. */
static void feed_demand_event(feed_table *ft, const feed *f, const char *event) {
    const char *topic_name = ft->b->cfg->demand_topic;
    if (!topic_name) return;
    char name[600], esc[1300], json[1600];
    coord_feed cf = feed_coord(f);
    if (coord_feed_name_len(&cf) >= sizeof(name)) return;
    size_t n = coord_feed_name(&cf, name), e = 0;
    for (size_t i = 0; i < n && e + 7 < sizeof(esc); i++) {
        unsigned char ch = (unsigned char)name[i];
        if (ch == '"' || ch == '\\')
            e += (size_t)snprintf(esc + e, sizeof(esc) - e, "\\%c", ch);
        else if (ch < 0x20 || ch >= 0x7f)
            e += (size_t)snprintf(esc + e, sizeof(esc) - e, "\\u%04x", ch);
        else
            esc[e++] = (char)ch;
    }
    esc[e] = '\0';
    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now);
    int len = snprintf(json, sizeof(json), "{\"event\":\"%s\",\"feed\":\"%s\",\"node\":\"%s\",\"ts_ms\":%lld}", event, esc,
                       ft->b->node_id, (long long)now.tv_sec * 1000 + now.tv_nsec / 1000000);
    producer_send(ft->b->prod, topic_name, name, n, json, (size_t)len);
}

static void acquire_done(void *cb_data, const coord_result *r) {
    feed *f = ticket_take(cb_data);
    if (!f) return;
    feed_table *ft = f->t->ft;
    if (r->status == COORD_ERROR) {
        log_warn("feed %s: coordination failed: %s", f->t->name, r->errstr);
        return;                   /* the waiters time out through claim retries */
    }
    feed_update_counts(f, r);
    if (r->status == COORD_FIRST) feed_demand_event(ft, f, "demand");
    if (r->own)
        feed_become_owner(ft, f, r);
    else if (f->role == ROLE_PENDING)
        feed_become_relay(ft, f);
}

static void claim_done(void *cb_data, const coord_result *r) {
    feed *f = ticket_take(cb_data);
    if (!f || r->status == COORD_ERROR) return;
    feed_update_counts(f, r);
    if (r->own) feed_become_owner(f->t->ft, f, r);
}

static void renew_done(void *cb_data, const coord_result *r) {
    feed *f = ticket_take(cb_data);
    if (!f || r->status == COORD_ERROR || f->role != ROLE_OWNER) return;
    feed_table *ft = f->t->ft;
    feed_update_counts(f, r);
    if (!r->own) {
        feed_become_relay(ft, f);
        return;
    }
    if (r->nodes > (f->local > 0 ? 1 : 0)) f->relay_on = 1;
    feed_check_idle(ft, f);
}

static void release_done(void *cb_data, const coord_result *r) {
    feed *f = ticket_take(cb_data);
    if (!f) return;
    if (r->status != COORD_ERROR) feed_update_counts(f, r);
    if (r->status == COORD_LAST) feed_demand_event(f->t->ft, f, "release");
    feed_check_idle(f->t->ft, f);
}

static void disown_done(void *cb_data, const coord_result *r) {
    feed *f = ticket_take(cb_data);
    if (!f) return;
    feed_table *ft = f->t->ft;
    if (r->status != COORD_ERROR && !r->own) {
        feed_destroy(ft, f);
        return;
    }
    /* Wanted again meanwhile (or the store is away): keep serving. */
    if (r->status != COORD_ERROR) feed_update_counts(f, r);
    feed_check_idle(ft, f);
}

/* A feed nobody here needs lingers, then goes; an owner waits for the
 * cluster-wide count to reach zero first, since others rely on it. */
static void feed_check_idle(feed_table *ft, feed *f) {
    if (f->nsubs > 0 || f->waiters || f->local > 0 || f->lingering) return;
    if (f->role == ROLE_OWNER && f->cluster_count > 0) return;
    if (ft->b->cfg->linger_ms == 0 || (f->role != ROLE_OWNER && !f->ready)) {
        feed_linger_expired(-1, 0, f);
        return;
    }
    struct timeval tv = broker_tv(ft->b->cfg->linger_ms);
    f->lingering = 1;
    event_add(f->linger_ev, &tv);
}

static void feed_linger_expired(evutil_socket_t fd, short what, void *arg) {
    feed *f = arg;
    feed_table *ft = f->t->ft;
    f->lingering = 0;
    if (f->role == ROLE_OWNER) {
        log_debug("feed %s: linger over, giving it up", f->t->name);
        coord_feed cf = feed_coord(f);
        coord_disown(ft->b->coord, &cf, disown_done, ticket_new(ft, f));
        return;
    }
    feed_destroy(ft, f);
}

static void feed_destroy(feed_table *ft, feed *f) {
    topic *t = f->t;
    if (f->dirty) {
        feed **pp = &ft->dirty;
        while (*pp != f) pp = &(*pp)->dirty_next;
        *pp = f->dirty_next;
    }
    coord_feed cf = feed_coord(f);
    if (f->role != ROLE_PENDING && ft->b->coord) coord_watch(ft->b->coord, &cf, COORD_WATCH_NONE);
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
    feed_drop_parts(ft, f);
    if (f->linger_ev) event_free(f->linger_ev);
    proto_buf_free(&f->batch);
    free(f->next_off);
    free(f->key);
    free(f);
    topic_maybe_free(ft, t);
}

static feed *feed_create(feed_table *ft, topic *t, const char *key, size_t key_len, int wildcard) {
    if (!wildcard && table_grow((void ***)&ft->fbuckets, &ft->nfbuckets, ft->nfeeds) < 0) return NULL;
    feed *f = calloc(1, sizeof(*f));
    if (!f) return NULL;
    f->next_off = calloc((size_t)t->partition_cnt, sizeof(*f->next_off));
    f->linger_ev = event_new(ft->b->base, -1, 0, feed_linger_expired, f);
    if ((!wildcard && !(f->key = malloc(key_len))) || !f->next_off || !f->linger_ev) {
        if (f->linger_ev) event_free(f->linger_ev);
        free(f->next_off);
        free(f->key);
        free(f);
        return NULL;
    }
    for (int32_t p = 0; p < t->partition_cnt; p++) f->next_off[p] = -1; /* nothing read yet */
    if (!wildcard) memcpy(f->key, key, key_len);
    f->key_len = wildcard ? 0 : key_len;
    f->wildcard = wildcard;
    f->t = t;
    f->role = ROLE_PENDING;
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
    return f;
}

/* ------------------------------------------------------- subscriptions */

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

/* Attaches s (its topic ready) to its feed, creating the feed, and counts
 * it with coordination. Returns 0, or -1 on out of memory with s untouched. */
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
    s->f = f;
    f->local++;
    if (f->ready) {
        sub_activate(ft, f, s);
    } else {
        s->state = SUB_WAIT_FEED;
        list_push(&f->waiters, s);
    }
    coord_feed cf = feed_coord(f);
    coord_acquire(ft->b->coord, &cf, acquire_done, ticket_new(ft, f));
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

/* Takes an attached subscription off its feed's count. The feed may be
 * gone when this returns (a synchronous backend completes at once and the
 * feed's idle check runs in the completion): callers must not touch it. */
static void sub_detach_count(feed_table *ft, feed *f) {
    f->local--;
    coord_feed cf = feed_coord(f);
    coord_release(ft->b->coord, &cf, f->local, release_done, ticket_new(ft, f));
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
    case SUB_ACTIVE:
        list_del(&f->subs, s);
        f->nsubs--;
        break;
    }
    free(s->key);
    free(s);
    ft->nsubs--;
    if (f)
        sub_detach_count(ft, f);
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

/* The topic gained partitions: wildcard feeds read the new ones from their
 * beginning (nothing written to them is missed), and an exact-key feed
 * moves to the partition its key now maps to (from the beginning too when
 * that partition is new, else from the log end). Subscribers keep their
 * feed handles. */
static void topic_grow(feed_table *ft, topic *t, int32_t cnt) {
    int32_t old = t->partition_cnt;
    tpart *np = realloc(t->parts, (size_t)cnt * sizeof(*np));
    if (!np) {
        log_error("out of memory growing topic %s", t->name);
        return;
    }
    for (int32_t p = old; p < cnt; p++) tpart_init(&np[p]);
    t->parts = np;
    for (feed *f = t->feeds; f; f = f->tnext) {
        int64_t *no = realloc(f->next_off, (size_t)cnt * sizeof(*no));
        if (!no) {
            log_error("out of memory growing topic %s", t->name);
            return;
        }
        for (int32_t p = old; p < cnt; p++) no[p] = -1;
        f->next_off = no;
    }
    t->partition_cnt = cnt;
    log_info("topic %s: grew from %d to %d partitions; re-targeting its feeds", t->name, (int)old, (int)cnt);
    for (feed *f = t->feeds; f; f = f->tnext) {
        if (f->partition < 0) {       /* every partition: add the new ones */
            if (f->has_parts)
                for (int32_t p = old; p < cnt; p++) part_ref(ft, t, p, START_AT_BEGINNING);
            continue;
        }
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

/* Every --metadata-refresh-ms: look again at the topics in use. */
static void feed_refresh(evutil_socket_t fd, short what, void *arg) {
    feed_table *ft = arg;
    for (size_t i = 0; i < ft->ntbuckets; i++)
        for (topic *t = ft->tbuckets[i]; t; t = t->hnext)
            if (t->ready) upstream_resolve_topic(ft->b->up, t->name);
}

void feed_on_topic_resolved(feed_table *ft, const char *topic_name, int32_t partition_cnt, proto_err code,
                            const char *errstr) {
    topic *t = topic_find(ft, topic_name, strlen(topic_name));
    if (!t) return;
    if (t->ready) {               /* a refresh */
        if (code == PROTO_E_NONE && partition_cnt > t->partition_cnt) topic_grow(ft, t, partition_cnt);
        return;
    }
    if (code == PROTO_E_NONE && partition_cnt > 0) {
        t->parts = calloc((size_t)partition_cnt, sizeof(*t->parts));
        if (!t->parts) code = PROTO_E_INTERNAL, errstr = "out of memory";
        else
            for (int32_t p = 0; p < partition_cnt; p++) tpart_init(&t->parts[p]);
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

/* retry_ev: looks the partitions whose lookup failed up again. */
static void feed_retry(evutil_socket_t fd, short what, void *arg) {
    feed_table *ft = arg;
    for (size_t i = 0; i < ft->ntbuckets; i++)
        for (topic *t = ft->tbuckets[i]; t; t = t->hnext)
            for (int32_t p = 0; t->ready && p < t->partition_cnt; p++) {
                tpart *tp = &t->parts[p];
                if (tp->state != PART_RETRY) continue;
                tp->state = PART_QUERYING;
                upstream_query_start(ft->b->up, t->name, p);
            }
}

void feed_on_partition_start(feed_table *ft, const char *topic_name, int32_t partition, int64_t offset,
                             const char *errstr) {
    topic *t = topic_find(ft, topic_name, strlen(topic_name));
    if (!t || !t->ready || partition < 0 || partition >= t->partition_cnt) return;
    tpart *tp = &t->parts[partition];
    if (tp->state != PART_QUERYING) return;
    int64_t rewind = tp->rewind, at = rewind >= 0 && rewind < offset ? rewind : offset;
    tp->rewind = -1;
    if (tp->refs == 0) {
        tp->state = PART_IDLE;    /* every feed that wanted it left meanwhile */
        return;
    }
    tp->gen = ++ft->gen_seq;
    if (!errstr && upstream_assign(ft->b->up, t->name, partition, at) < 0)
        errstr = "cannot add the partition to the consumer's assignment";
    if (errstr) {
        tp->state = PART_IDLE;
        /* Feeds with no one waiting (they already deliver, or linger) keep
         * it: they are not failed, and the partition is looked up again for
         * them. They also keep t alive through the loop below. */
        int held = 0;
        for (feed *f = t->feeds; f; f = f->tnext)
            if ((f->ready || !f->waiters) && feed_reads(f, partition)) held = 1;
        if (held) log_warn("partition %s/%d: %s; trying again", t->name, (int)partition, errstr);
        char text[512];
        snprintf(text, sizeof(text), "partition %s/%d: %s", t->name, (int)partition, errstr);
        /* Fail the subscriptions waiting on it; the feed then goes. */
        for (feed *f = t->feeds, *next; f; f = next) {
            next = f->tnext;
            int32_t a, z;
            feed_range(f, &a, &z);
            if (f->ready || !f->has_parts || partition < a || partition > z) continue;
            long failed = 0;
            while (f->waiters) {
                sub *s = f->waiters;
                list_del(&f->waiters, s);
                sub_fail(ft, s, PROTO_E_KAFKA, text);
                failed++;
            }
            /* The last release may free f: it is not touched after. */
            while (failed-- > 0) sub_detach_count(ft, f);
        }
        if (held) part_retry_later(ft, &t->parts[partition], rewind);
        return;
    }
    tp->state = PART_ASSIGNED;
    tp->next = at;
    if (offset > tp->head) tp->head = offset;
    for (feed *f = t->feeds; f; f = f->tnext) {
        if (!feed_reads(f, partition)) continue;
        /* Feeds that asked for the log end start there, even when a feed
         * taken over has the partition read from further back. */
        if (f->next_off[partition] < 0) f->next_off[partition] = offset;
        if (!f->ready && feed_all_assigned(f)) feed_set_ready(ft, f);
    }
}

static void feed_append_lost(feed_table *ft, feed *f, uint64_t lost);

uint32_t feed_partition_gen(feed_table *ft, const char *topic_name, int32_t partition) {
    topic *t = topic_find(ft, topic_name, strlen(topic_name));
    if (!t || !t->ready || partition < 0 || partition >= t->partition_cnt) return 0;
    return t->parts[partition].gen;
}

void feed_on_partition_reset(feed_table *ft, const char *topic_name, int32_t partition, uint32_t gen,
                             int64_t from, int64_t offset, int64_t lost) {
    topic *t = topic_find(ft, topic_name, strlen(topic_name));
    if (!t || !t->ready || partition < 0 || partition >= t->partition_cnt) return;
    tpart *tp = &t->parts[partition];
    /* Reassigned since the error (a rewind, or released and taken again):
     * the answer is about a position nobody reads from any more. */
    if (tp->state != PART_ASSIGNED || tp->gen != gen) return;
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
        if (!feed_reads(f, partition)) continue;
        /* Each feed had everything below the consumer's position, and more
         * when it is ahead of a rewind. */
        int64_t had = f->next_off[partition] > from ? f->next_off[partition] : from;
        if (offset > had) {
            /* Deleted under it: only what came after what it had. */
            feed_append_lost(ft, f, (uint64_t)(offset - had));
            f->next_off[partition] = offset;
        } else if (offset < from && f->next_off[partition] > offset) {
            /* The log was cut short: new records reuse the offsets of
             * vanished ones, and must not be taken for ones it had. */
            f->next_off[partition] = offset;
        }
    }
    feed_flush_batch(ft);
}

/* --------------------------------------------------------------- records */

/* Puts f on the list feed_flush_batch() hands out. */
static void feed_mark_dirty(feed_table *ft, feed *f) {
    if (!f->dirty) {
        f->dirty = 1;
        f->dirty_next = ft->dirty;
        ft->dirty = f;
    }
}

static void feed_append(feed_table *ft, feed *f, int32_t partition, int64_t offset, int64_t ts_ms,
                        const void *key, size_t key_len, const void *value, size_t value_len,
                        const proto_header *headers, size_t header_cnt) {
    if (!f->ready && !f->has_parts) return;  /* a relay before its sync marker */
    if (f->nsubs == 0 && !f->relay_on) return;
    if (f->partition >= 0 && f->partition != partition) return;
    if (f->has_parts) {
        if (offset < f->next_off[partition]) return;   /* read again for another feed: it had this one */
        f->next_off[partition] = offset + 1;
    }
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
    feed_mark_dirty(ft, f);
}

/* Records Kafka lost under the feed: a DROPPED frame in the batch, so each
 * subscriber (and, through the relay, each other node's) gets it right
 * between the records before the gap and those after it. */
static void feed_append_lost(feed_table *ft, feed *f, uint64_t lost) {
    if (!f->ready && !f->has_parts) return;
    if (f->nsubs == 0 && !f->relay_on) return;
    proto_frame d = {.type = PROTO_DROPPED, .feed = f->handle, .count = lost};
    if (proto_encode(&f->batch, &d) < 0) {
        log_error("out of memory encoding a DROPPED");
        abort();
    }
    f->batch_lost += lost;
    feed_mark_dirty(ft, f);
}

void feed_on_record(feed_table *ft, const char *topic_name, int32_t partition, int64_t offset, int64_t ts_ms,
                    const void *key, size_t key_len, const void *value, size_t value_len,
                    const proto_header *headers, size_t header_cnt) {
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
    if (w && w->has_parts) feed_append(ft, w, partition, offset, ts_ms, key, key_len, value, value_len, headers, header_cnt);
    if (key && key_len > 0) {
        feed *f = feed_find(ft, t, key, key_len, 0);
        if (f && f->has_parts)
            feed_append(ft, f, partition, offset, ts_ms, key, key_len, value, value_len, headers, header_cnt);
    }
}

/* Owner: fills ft->relay_offsets with (partition, next offset) pairs, where
 * a successor resumes the feed. Returns the pairs. */
static size_t feed_resume_offsets(feed_table *ft, const feed *f) {
    size_t np = 0;
    int32_t a, z;
    feed_range(f, &a, &z);
    for (int32_t p = a; p <= z; p++) {
        /* Every record below the consumer's position was dispatched, so an
         * exact key seldom written does not hold its resume offset back. */
        int64_t at = f->next_off[p];
        const tpart *tp = &f->t->parts[p];
        if (f->has_parts && tp->state == PART_ASSIGNED && tp->next > at) at = tp->next;
        if (at >= 0 && np < COORD_MAX_OFFSETS) {
            ft->relay_offsets[2 * np] = p;
            ft->relay_offsets[2 * np + 1] = at;
            np++;
        }
    }
    return np;
}

/* Owner: hands the batch to the other nodes with the offsets to resume
 * from. The relay bytes are "R <node>\n" and the batch's MESSAGE (and
 * DROPPED) frames. */
static void feed_relay_batch(feed_table *ft, feed *f) {
    proto_buf_reset(&ft->relay_buf);
    char head[160];
    int n = snprintf(head, sizeof(head), "R %s\n", ft->b->node_id);
    if (proto_buf_append(&ft->relay_buf, head, (size_t)n) < 0 ||
        proto_buf_append(&ft->relay_buf, f->batch.data, f->batch.len) < 0) {
        log_error("out of memory relaying");
        abort();
    }
    coord_feed cf = feed_coord(f);
    coord_relay(ft->b->coord, &cf, ft->relay_buf.data, ft->relay_buf.len, ft->relay_offsets,
                feed_resume_offsets(ft, f));
}

void feed_flush_batch(feed_table *ft) {
    while (ft->dirty) {
        feed *f = ft->dirty;
        ft->dirty = f->dirty_next;
        f->dirty = 0;
        f->dirty_next = NULL;
        if (f->role == ROLE_OWNER && f->relay_on) feed_relay_batch(ft, f);
        outq_block *blk = outq_block_adopt(f->batch.data, f->batch.len, f->batch.cap, f->batch_records);
        proto_buf_init(&f->batch);
        f->batch_records = 0;
        if (!blk) {
            log_error("out of memory in fan-out");
            abort();
        }
        blk->lost = f->batch_lost;
        f->batch_lost = 0;
        for (sub *s = f->subs; s; s = s->next) conn_deliver(s->c, s, blk);
        outq_block_unref(blk);
    }
}

/* ------------------------------------------------------------ cluster */

static feed *feed_of(feed_table *ft, const coord_feed *cf) {
    return feed_lookup(ft, cf->topic, cf->key, cf->key_len, cf->wildcard);
}

void feed_on_notice(feed_table *ft, const coord_feed *cf, coord_notice what, const char *node, long nodes) {
    feed *f = feed_of(ft, cf);
    if (!f || f->role != ROLE_OWNER) return;
    f->nodes = nodes;
    if (nodes == 0) f->cluster_count = 0;
    if (what == COORD_JOIN && strcmp(node, ft->b->node_id) != 0) {
        /* Relay from now on, and tell the joiner where "now" is: it starts
         * delivering at this marker, so no record read after it is lost.
         * The marker records where a successor resumes, too, for a feed
         * that has had no record to relay yet. */
        f->relay_on = 1;
        char sync[160];
        int n = snprintf(sync, sizeof(sync), "S %s\n", ft->b->node_id);
        coord_relay(ft->b->coord, cf, sync, (size_t)n, ft->relay_offsets, feed_resume_offsets(ft, f));
        return;
    }
    if (what == COORD_LEAVE) {
        f->relay_on = nodes > (f->local > 0 ? 1 : 0);
        feed_check_idle(ft, f);
    }
}

void feed_on_relay(feed_table *ft, const coord_feed *cf, const char *data, size_t len) {
    feed *f = feed_of(ft, cf);
    if (!f || f->role != ROLE_RELAY || len < 2) return;
    if (data[0] == 'S') {
        feed_set_ready(ft, f);
        return;
    }
    const char *nl = memchr(data, '\n', len);
    if (data[0] != 'R' || !nl || !f->ready) return;
    size_t off = (size_t)(nl + 1 - data);
    while (off < len) {
        size_t used;
        proto_frame fr;
        if (proto_decode(ft->relay_dec, data + off, len - off, &used, &fr) != PROTO_FRAME) {
            log_warn("feed %s: undecodable relay data dropped", f->t->name);
            break;
        }
        off += used;
        if (fr.type == PROTO_MESSAGE)
            feed_append(ft, f, (int32_t)fr.partition, (int64_t)fr.offset, fr.timestamp_ms, fr.key.ptr, fr.key.len,
                        fr.value.ptr, fr.value.len, fr.headers, fr.header_cnt);
        else if (fr.type == PROTO_DROPPED)
            feed_append_lost(ft, f, fr.count);   /* records the owner's Kafka lost */
    }
    feed_flush_batch(ft);
}

static void assert_done(void *cb_data, const coord_result *r) {
    feed *f = ticket_take(cb_data);
    if (!f || r->status == COORD_ERROR) return;
    feed_table *ft = f->t->ft;
    feed_update_counts(f, r);
    if (r->own)
        feed_become_owner(ft, f, r);
    else
        feed_become_relay(ft, f);
    feed_check_idle(ft, f);
}

size_t feed_table_count(const feed_table *ft) {
    return ft->nfeeds;
}

void feed_on_coord_state(feed_table *ft, int up) {
    log_info("coordination store %s", up ? "reachable: re-asserting this node's feeds" : "unreachable");
    if (!up) return;
    for (size_t i = 0; i < ft->ntbuckets; i++)
        for (topic *t = ft->tbuckets[i]; t; t = t->hnext)
            for (feed *f = t->feeds; f; f = f->tnext) {
                coord_feed cf = feed_coord(f);
                coord_assert(ft->b->coord, &cf, f->local, f->role == ROLE_OWNER, assert_done, ticket_new(ft, f));
            }
}

/* Every third of a lease: owners renew, the others check the owner lives. */
static void feed_tick(evutil_socket_t fd, short what, void *arg) {
    feed_table *ft = arg;
    if (!coord_up(ft->b->coord)) return;
    for (size_t i = 0; i < ft->ntbuckets; i++)
        for (topic *t = ft->tbuckets[i]; t; t = t->hnext)
            for (feed *f = t->feeds; f; f = f->tnext) {
                coord_feed cf = feed_coord(f);
                if (f->role == ROLE_OWNER)
                    coord_renew(ft->b->coord, &cf, renew_done, ticket_new(ft, f));
                else
                    coord_claim(ft->b->coord, &cf, !f->ready, claim_done, ticket_new(ft, f));
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
    ft->relay_dec = proto_decoder_new(64u << 20);
    ft->retry_ev = event_new(b->base, -1, 0, feed_retry, ft);
    if (!ft->tbuckets || !ft->fbuckets || !ft->relay_dec || !ft->retry_ev) {
        feed_table_free(ft);
        return NULL;
    }
    if (b->cfg->metadata_refresh_ms > 0) {
        uint64_t ms = b->cfg->metadata_refresh_ms;
        struct timeval tv = broker_tv(ms);
        ft->refresh_ev = event_new(b->base, -1, EV_PERSIST, feed_refresh, ft);
        if (!ft->refresh_ev || event_add(ft->refresh_ev, &tv) < 0) {
            feed_table_free(ft);
            return NULL;
        }
    }
    if (b->cfg->redis) {
        uint64_t every = b->cfg->lease_ms / 3 ? b->cfg->lease_ms / 3 : 1;
        struct timeval tv = broker_tv(every);
        ft->tick_ev = event_new(b->base, -1, EV_PERSIST, feed_tick, ft);
        if (!ft->tick_ev || event_add(ft->tick_ev, &tv) < 0) {
            feed_table_free(ft);
            return NULL;
        }
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
    while (ft->doomed) doomed_remove(ft, ft->doomed);
    if (ft->tick_ev) event_free(ft->tick_ev);
    if (ft->refresh_ev) event_free(ft->refresh_ev);
    if (ft->retry_ev) event_free(ft->retry_ev);
    proto_decoder_free(ft->relay_dec);
    proto_buf_free(&ft->relay_buf);
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
                evbuffer_add_printf(out, "],\"records\":%llu,\"lingering\":%s,\"ready\":%s,\"role\":\"%s\","
                                    "\"local\":%ld,\"cluster_count\":%ld}",
                                    (unsigned long long)f->records, f->lingering ? "true" : "false",
                                    f->ready ? "true" : "false", role_names[f->role], f->local, f->cluster_count);
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
