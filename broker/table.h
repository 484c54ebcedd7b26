/* table.h -- the bottom of the node's feed side: topics, feeds, partitions and subscriptions as data, with lookup, create and destroy. */
#ifndef SUBWAY_TABLE_H
#define SUBWAY_TABLE_H

#include <stddef.h>
#include <stdint.h>

#include "broker/broker.h"
#include "broker/partitioner.h"
#include "coord/coord.h"
#include "proto/proto.h"

struct event;

/* ------------------------------------------------------------ subscriptions */

typedef struct cu_reader cu_reader;

/* Where one partition of a subscription stands while it catches up
 * (catchup.c). Until it joins, the live feed's records of the partition
 * are not delivered to it; once joined, live records below pos are not
 * either (the catch-up delivered them). */
typedef enum cu_state {
    CU_NEW,                       /* on ft->cu_new: catchup.c has not looked at it yet */
    CU_RESOLVING,                 /* on ft->cu_resolving: its start offset is being looked up */
    CU_READING,                   /* on its reader's clients */
    CU_PARKED,                    /* on ft->cu_parked: its connection's queue is above the soft limit */
    CU_JOINED,                    /* on no list: follows the live feed */
} cu_state;

typedef struct cu_part {
    sub *s;
    int32_t partition;
    cu_state state;
    uint32_t seek_tag;            /* CU_RESOLVING: the lookup's tag */
    int64_t pos;                  /* next offset it gets (-1: to be looked up) */
    cu_reader *rd;                /* CU_READING */
    struct cu_part **list;        /* the list it is on, NULL when none */
    struct cu_part *prev, *next;
    /* catchup.c, during one batch of its reader */
    int64_t b_last;               /* last offset of the batch at or past pos (-1 none) */
    size_t b_first;               /* its first record among its feed's records of the batch */
    uint32_t b_records;
} cu_part;

/* A subscription's catch-up (NULL once it follows the live feed alone). */
typedef struct sub_catchup {
    size_t unjoined;              /* partitions not joined */
    int live_sent;
    size_t nparts;
    cu_part parts[];              /* the feed's partitions, first to last */
} sub_catchup;

/* The start a SUBSCRIBE asked for (proto_start_mode). */
typedef struct sub_start {
    uint8_t mode;
    int64_t arg;
    proto_position *positions;    /* START_POSITIONS, owned */
    size_t npositions;
} sub_start;

typedef enum sub_state {
    SUB_WAIT_TOPIC,               /* topic metadata being fetched */
    SUB_WAIT_FEED,                /* feed's partitions being assigned */
    SUB_ACTIVE,                   /* SUBSCRIBED sent; receives records */
} sub_state;

/* One connection's interest in one feed. Created and freed by sub.c only,
 * which links it into both sides at once: the connection's subs array and
 * exactly one list of its topic (waiting for metadata) or feed (waiting
 * for partitions, or active). */
struct sub {
    conn *c;
    topic *t;
    feed *f;                      /* NULL in SUB_WAIT_TOPIC */
    sub_state state;
    uint64_t req_id;              /* of the SUBSCRIBE, until answered */
    uint64_t arrived_us;          /* when the SUBSCRIBE came (histogram_now_us), for its latency */
    uint64_t dropped;             /* records dropped since the last DROPPED */
    char *key;                    /* SUB_WAIT_TOPIC only: the key asked for */
    size_t key_len;
    int wildcard;
    sub_start start;              /* freed once its catch-up begins */
    sub_catchup *cu;              /* SUB_ACTIVE with a catch-up or a live filter */
    sub *prev, *next;             /* the topic's or feed's list */
};

/* ---------------------------------------------------------------- partitions */

typedef enum part_state {
    PART_IDLE,                    /* not fetched */
    PART_QUERYING,                /* log end offset being looked up */
    PART_ASSIGNED,                /* in the consumer's assignment */
    PART_RETRY,                   /* a lookup failed while feeds need it: asked again by retry_ev */
} part_state;

/* One partition of a topic as this node's consumer reads it. */
typedef struct tpart {
    uint32_t refs;                /* feeds reading this partition */
    part_state state;
    uint32_t gen;                 /* new at every (un)assignment: an answer about an older one is stale */
    int64_t next;                 /* ASSIGNED: offset of the next record the consumer hands us (-1 unknown) */
    int64_t head;                 /* ASSIGNED: past the furthest record read, even after a rewind (-1 unknown) */
    int64_t rewind;               /* QUERYING: start at this offset instead, if lower than the log end (-1 none) */
    cu_reader *cu_rd;             /* the catch-up reader of this partition, if any */
} tpart;

/* ------------------------------------------------------------- topics, feeds */

typedef enum feed_role {
    ROLE_PENDING,                 /* asked coordination who owns it */
    ROLE_OWNER,                   /* this node consumes it from Kafka */
    ROLE_RELAY,                   /* another node does; records come through the relay */
} feed_role;

#define REPAIR_UNKNOWN INT64_MAX

/* A partition's positions in a relay header (relaywire.h): from == to in a
 * sync marker. */
typedef struct relaywire_pos {
    int32_t partition;
    int64_t from, to;
} relaywire_pos;

/* f as "topic/key" (topic/ and a star for every key) for logs: bytes outside
 * printable ASCII as '?', long keys cut. A static buffer: valid until the
 * next call. */
const char *feed_label(const feed *f);

/* "pending", "owner", "relay". */
const char *feed_role_name(feed_role r);

struct topic {
    topic *hnext;                 /* hash chain; hash must follow (see table.c) */
    uint64_t hash;
    feed_table *ft;
    char *name;
    int ready;                    /* metadata known */
    int32_t partition_cnt;
    partitioner ptr;
    tpart *parts;                 /* partition_cnt of them once ready */
    feed *wild;                   /* the topic/'*' feed, if any */
    feed *feeds;                  /* every feed of the topic */
    sub *waiters;                 /* subscriptions waiting for metadata */
};

struct feed {
    feed *hnext;                  /* hash chain; hash must follow (see table.c) */
    uint64_t hash;
    feed *tprev, *tnext;          /* topic's feeds */
    topic *t;
    char *key;
    size_t key_len;
    int wildcard;
    uint32_t handle;              /* node-local, in SUBSCRIBED and MESSAGE frames */
    int32_t partition;            /* the one partition read, or -1 for all */
    int ready;                    /* delivering: SUBSCRIBED sent to waiters */
    sub *subs;                    /* SUB_ACTIVE */
    size_t nsubs;
    sub *waiters;                 /* SUB_WAIT_FEED */
    struct event *linger_ev;      /* created on first linger */
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
    /* Per partition, the relay stream's position (relaywire.h): owner, at
     * the end of its last batch, relayed or not; relay, at the end of the
     * last batch it took. -1 unknown. */
    int64_t *rpos;
    /* Repairing (a relay that missed part of the stream, or an owner that
     * lost the feed): per partition, how far the live relay has got, which
     * the feed's own Kafka reads must reach before it takes the relay
     * again; REPAIR_UNKNOWN until a sync marker says. */
    int64_t *live;
    int repairing;
    int need_sync;                /* relay, after a session start: asks for a sync marker until one comes */
    /* Owner, cluster only: the lease as this node counts it (monotonic ms),
     * from when the call that granted it was sent; past it the feed is
     * fenced: no relay, no resume offsets, until a renewal succeeds. */
    uint64_t lease_until;
    uint64_t grant_sent;          /* send time of the oldest unanswered granting call */
    int grants_inflight;
    int fenced;
    proto_buf batch;              /* this loop turn's MESSAGE (and DROPPED) frames */
    struct batch_mark *marks;     /* one per frame of batch: where it is, whose it is */
    size_t nmarks, marks_cap;
    uint32_t batch_records;
    uint64_t batch_lost;          /* counts of the DROPPED frames in batch */
    feed *dirty_next;             /* on the table's dirty list */
    int dirty;
    uint64_t records;
    uint64_t last_record_ms;      /* fanout.c: when its last batch with records went out (monotonic; 0 never) */
};

/* One frame of a feed's batch: its partition (-1 when not known), offset
 * (-1 for a DROPPED) and bytes, so a subscription still catching up gets
 * only the frames it may have, as slices of the shared block. */
typedef struct batch_mark {
    int32_t partition;
    int64_t offset;
    uint64_t lost;                /* a DROPPED's count */
    size_t end;                   /* the frame is batch[previous mark's end, end) */
} batch_mark;

/* A free topic nobody here uses any more, deleted after the grace. */
typedef struct doomed {
    struct doomed *next;
    feed_table *ft;
    struct event *ev;
    char name[];
} doomed;

/* The node's feed side. Each module keeps its own fields here, marked. */
struct feed_table {
    broker *b;
    /* table.c */
    topic **tbuckets;
    size_t ntbuckets;
    size_t ntopics;
    feed **fbuckets;
    size_t nfbuckets;
    size_t nfeeds;
    uint32_t next_handle;
    size_t nsubs;                 /* every sub, any state */
    /* partition.c */
    struct event *refresh_ev;     /* --metadata-refresh-ms */
    struct event *retry_ev;       /* looks up PART_RETRY partitions again */
    uint32_t gen_seq;             /* tpart.gen values, never reused while the node runs */
    /* fanout.c */
    feed *dirty;                  /* feeds with a batch to fan out */
    proto_buf relay_buf;          /* relay bytes being built */
    int64_t relay_offsets[2 * COORD_MAX_OFFSETS];
    /* cluster.c */
    proto_decoder *relay_dec;     /* decodes relayed MESSAGE frames */
    struct event *tick_ev;        /* leases */
    struct event *fence_ev;       /* lease deadlines, repairs */
    uint64_t lease_safe_ms;       /* the lease as owners count it; 0 without a cluster */
    size_t repairs;               /* feeds repairing, as last counted (0: skip the checks) */
    relaywire_pos relay_pos[COORD_MAX_OFFSETS];
    int64_t repair_starts[2 * COORD_MAX_OFFSETS];
    /* sub.c */
    uint32_t *scratch_parts;      /* SUBSCRIBED partition lists */
    size_t scratch_cap;
    proto_position *scratch_pos;  /* LIVE position lists */
    size_t scratch_pos_cap;
    /* catchup.c (sub.c files new catch-ups on cu_new and wakes catchup_ev) */
    struct event *catchup_ev;     /* looks at cu_new */
    struct event *catchup_tick_ev;
    cu_part *cu_new, *cu_resolving, *cu_parked;
    cu_reader *cu_readers;        /* every reader */
    cu_reader *cu_queue, *cu_queue_tail; /* readers waiting their turn */
    cu_reader *cu_touched;        /* readers with records in the catch-up batch */
    size_t cu_active;             /* readers assigned in the catch-up consumer */
    uint32_t cu_seq;
    /* freetopic.c */
    doomed *doomed;               /* free topics waiting out their grace */
};

/* An empty table bound to b (its modules' fields zero). */
feed_table *table_new(broker *b);
/* Frees the table itself; its topics and feeds must be gone. */
void table_free(feed_table *ft);

/* Visits every topic, then every feed of it. The body must not free the
 * topic it is on. */
#define TABLE_FOR_EACH_TOPIC(ft, t) \
    for (size_t t##_i = 0; t##_i < (ft)->ntbuckets; t##_i++) \
        for (topic *t = (ft)->tbuckets[t##_i]; t; t = t->hnext)

topic *topic_find(feed_table *ft, const char *name, size_t len);
/* A new, unready topic (no partitions yet). */
topic *topic_create(feed_table *ft, const char *name, size_t len, partitioner ptr);
/* 1 when no feed and no subscription refers to t. */
int topic_unused(const topic *t);
/* Unlinks and frees an unused topic. */
void topic_free(feed_table *ft, topic *t);
/* Gives the ready topic partition_cnt partitions (all idle), or grows it to
 * that many: the new ones idle, each feed's next_off extended with -1. */
void topic_set_partitions(topic *t, int32_t partition_cnt);

/* The feed of t for key (or the every-key feed), or NULL. */
feed *feed_find(feed_table *ft, topic *t, const char *key, size_t key_len, int wildcard);
/* The same by names; NULL when the topic is unknown or not ready. */
feed *feed_lookup(feed_table *ft, const char *topic_name, const char *key, size_t key_len, int wildcard);
/* A new pending feed of the ready topic t, on the partition its key maps to. */
feed *feed_create(feed_table *ft, topic *t, const char *key, size_t key_len, int wildcard);
/* Unlinks f from the tables and frees it; its topic stays. f must hold no
 * partitions, subscriptions or pending batch. */
void feed_free(feed_table *ft, feed *f);

/* Partitions [first, last] the feed reads. */
void feed_range(const feed *f, int32_t *first, int32_t *last);
/* The feed as coordination names it (pointers into f). */
coord_feed feed_coord(const feed *f);

/* The offset of the next record f's live feed delivers on p, as far as
 * this node knows (-1: not known). Live records below it never come again. */
int64_t feed_live_pos(const feed *f, int32_t p);

/* cu's part for partition p, or NULL. */
cu_part *cu_find(sub_catchup *cu, int32_t p);

/* Lists of catch-up partitions. */
void cu_list_push(cu_part **head, cu_part *cp);
void cu_list_del(cu_part *cp);

/* Doubly linked sub lists of topics and feeds. */
void sub_list_push(sub **head, sub *s);
void sub_list_del(sub **head, sub *s);

/* A coordination answer may come after its feed is gone: callbacks carry
 * a ticket, the feed's name, and look the feed up again. */
typedef struct ticket ticket;
/* A ticket naming f; the callback takes it back with ticket_take. */
ticket *ticket_new(feed_table *ft, const feed *f);
/* Frees tk; returns its feed if it still exists, else NULL. */
feed *ticket_take(ticket *tk);

#endif
