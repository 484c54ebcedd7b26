/* coord.h -- cluster coordination of feeds (counts, owners, relay), behind one interface with pluggable backends. */
#ifndef SUBWAY_COORD_H
#define SUBWAY_COORD_H

#include <stddef.h>
#include <stdint.h>

struct event_base;

/* A feed as coordination sees it: topic plus an exact key, or every key. */
typedef struct coord_feed {
    const char *topic;            /* NUL-terminated */
    const char *key;              /* bytes; ignored when wildcard */
    size_t key_len;
    int wildcard;                 /* the topic/'*' feed */
} coord_feed;

typedef enum coord_status {
    COORD_ERROR = -1,             /* the change did not happen; errstr says why */
    COORD_OK = 0,                 /* done; count stays above zero */
    COORD_FIRST = 1,              /* acquire took the cluster-wide count 0 -> 1 */
    COORD_LAST = 2,               /* release took the cluster-wide count to 0 */
} coord_status;

#define COORD_MAX_OFFSETS 1024

/* What a coordination call found. Valid only during the callback. */
typedef struct coord_result {
    coord_status status;
    long count;                   /* cluster-wide subscriptions after the call */
    long nodes;                   /* nodes holding subscriptions to the feed */
    int own;                      /* this node owns (consumes) the feed */
    const char *owner;            /* owner's session token ("node:incarnation"; the node id
                                   * alone from the memory backend), "" if none */
    const int64_t *offsets;       /* partition, next offset pairs the owner relayed */
    size_t noffsets;              /* pairs */
    const char *errstr;           /* COORD_ERROR only */
} coord_result;

/* Completion of a call: exactly once, possibly before the call returns (the
 * in-memory backend completes at once). */
typedef void coord_cb(void *cb_data, const coord_result *r);

typedef enum coord_notice { COORD_JOIN, COORD_LEAVE } coord_notice;

/* Events from coordination: from other nodes for feeds this node watches,
 * and the store's state. Any member may be NULL. */
typedef struct coord_events {
    /* A node started (JOIN) or stopped (LEAVE) holding subscriptions to f;
     * nodes is how many hold it now. For owners. */
    void (*notice)(void *cb_data, const coord_feed *f, coord_notice what, const char *node, long nodes);
    /* The owner relayed bytes for f: exactly the data of its coord_relay()
     * call. For relays. */
    void (*relay)(void *cb_data, const coord_feed *f, const char *data, size_t len);
    /* The backend's store became reachable (up=1) or not (up=0). Up means
     * this node started a new session (README, "Sessions and fencing"): the
     * caller re-asserts its state with coord_assert(). A node whose
     * registration lapsed while it was paused or cut off (reaped while
     * alive) goes down and up again. */
    void (*state)(void *cb_data, int up);
    /* The feed's cluster-wide count went 0->1 or reached 0 through a call of
     * this node (reaps of dead nodes included): json is exactly what was
     * published on subway:demand. Valid only during the call. Each
     * transition reaches exactly one node's demand event; one whose call's
     * reply was lost (the connection dropped) reaches none. */
    void (*demand)(void *cb_data, const coord_feed *f, const char *json, size_t len);
    void *cb_data;
} coord_events;

typedef enum coord_watch_kind {
    COORD_WATCH_NONE,             /* stop watching */
    COORD_WATCH_NOTICES,          /* owner: joins and leaves */
    COORD_WATCH_RELAY,            /* relay: the owner's records */
} coord_watch_kind;

typedef struct coord coord;

/* 1: some node holds a feed of the topic; 0: none does; -1: unknown (store
 * unreachable). Exactly once, maybe before the call returns. */
typedef void coord_used_cb(void *cb_data, int used);

/* One feed of the cluster's table (coord_list_feeds). */
typedef struct coord_feed_info {
    const char *name;             /* topic, "/", then the key (or "*": every key); not NUL-terminated */
    size_t name_len;
    long count;                   /* cluster-wide subscriptions */
    const char *owner;            /* owner's session token, "" if none */
    long long owner_ttl_ms;       /* the owner's lease left; -1: no expiry, -2: no owner */
} coord_feed_info;

/* A page of the table, sorted by name: feeds[0..n) are entries offset..
 * of total. errstr is set (and n 0) when it could not be read. */
typedef struct coord_feed_list {
    size_t total;
    size_t offset;
    const coord_feed_info *feeds;
    size_t n;
    const char *errstr;
} coord_feed_list;

/* Valid only during the call; exactly once, maybe before the call returns. */
typedef void coord_list_cb(void *cb_data, const coord_feed_list *l);

/* A backend fills this table; coord.c dispatches through it. */
typedef struct coord_backend {
    const char *name;
    void (*acquire)(coord *c, const coord_feed *f, coord_cb *cb, void *cb_data);
    void (*release)(coord *c, const coord_feed *f, long local_after, coord_cb *cb, void *cb_data);
    void (*claim)(coord *c, const coord_feed *f, int announce, coord_cb *cb, void *cb_data);
    void (*renew)(coord *c, const coord_feed *f, coord_cb *cb, void *cb_data);
    void (*disown)(coord *c, const coord_feed *f, coord_cb *cb, void *cb_data);
    void (*assert_state)(coord *c, const coord_feed *f, long local, int own, coord_cb *cb, void *cb_data);
    void (*relay)(coord *c, const coord_feed *f, const char *data, size_t len, const int64_t *offsets,
                  size_t noffsets);
    void (*resign)(coord *c, const coord_feed *f, const char *data, size_t len, const int64_t *offsets,
                   size_t noffsets);
    void (*watch)(coord *c, const coord_feed *f, coord_watch_kind kind);
    int (*up)(coord *c);
    void (*topic_in_use)(coord *c, const char *topic, coord_used_cb *cb, void *cb_data);
    void (*list_feeds)(coord *c, size_t offset, size_t limit, coord_list_cb *cb, void *cb_data);
    void (*free)(coord *c);
} coord_backend;

struct coord {
    const coord_backend *backend;
    coord_events ev;
};

/* The single-node backend: counts in this process; this node owns all.
 * node_id (copied) names the node in demand events. Never NULL (out of
 * memory aborts the node). */
coord *coord_memory_new(const char *node_id);

/* The memory backend's exact count of f (0 when it has none; -1 from
 * another backend, which keeps no counts). For tests. */
long coord_memory_count(coord *c, const coord_feed *f);

/* Options of the Redis backend. */
typedef struct coord_redis_opts {
    const char *addr;             /* HOST:PORT or [V6ADDR]:PORT; NULL with sentinels */
    const char *sentinels;        /* HOST:PORT[,HOST:PORT...] of Sentinels to ask for master, or NULL */
    const char *master;           /* the master's name in them */
    const char *password;         /* NULL for none */
    const char *node_id;
    const char *node_addr;        /* for subway:node:<id>: where clients connect */
    const char *node_admin;       /* and the admin endpoint */
    uint64_t start_ms;            /* wall clock start time */
    void (*stats)(void *data, long *conns, long *feeds); /* live figures for the node hash */
    void *stats_data;
    uint64_t lease_ms;            /* owner lease */
    uint64_t node_ttl_ms;         /* node liveness key TTL */
    uint64_t reap_interval_ms;    /* how often dead nodes are looked for */
    uint64_t timeout_ms;          /* a connection silent this long (no PING answered) is dropped */
} coord_redis_opts;

/* The cluster backend on hiredis's async API in base's loop. Connects (and
 * reconnects) in the background; a connection counts as ready once every
 * script is loaded on it (SCRIPT LOAD), and calls then send EVALSHA. Needs
 * Redis 5.0 or later (see coord_redis.c). Returns NULL with errstr on bad
 * options. */
coord *coord_redis_new(struct event_base *base, const coord_redis_opts *o, char *errstr, size_t errlen);

/* Sets where events go; call once before any other call. */
void coord_set_events(coord *c, const coord_events *ev);

/* Adds one subscription of this node; takes ownership when the feed has no
 * owner. The result has the count, the owner, and the offsets to resume
 * from when this node became the owner. */
void coord_acquire(coord *c, const coord_feed *f, coord_cb *cb, void *cb_data);

/* Removes one subscription of this node, which then holds local_after of
 * them; COORD_LAST when the cluster-wide count reached zero. Ownership is
 * kept (see coord_disown). */
void coord_release(coord *c, const coord_feed *f, long local_after, coord_cb *cb, void *cb_data);

/* Takes ownership if the feed has no live owner (own=1, offsets set);
 * otherwise, with announce, tells the owner this node waits for its
 * records (the owner answers on the relay with a sync marker). */
void coord_claim(coord *c, const coord_feed *f, int announce, coord_cb *cb, void *cb_data);

/* Owner: extends the lease. own=0 in the result means it was lost. */
void coord_renew(coord *c, const coord_feed *f, coord_cb *cb, void *cb_data);

/* Owner: gives the feed up if its count is still zero (own=0 after), else
 * keeps it (own=1). */
void coord_disown(coord *c, const coord_feed *f, coord_cb *cb, void *cb_data);

/* Re-states this node's local count (and ownership) after the store came
 * back, possibly empty; the result is as for acquire. */
void coord_assert(coord *c, const coord_feed *f, long local, int own, coord_cb *cb, void *cb_data);

/* Owner: sends data to the relays and records the offsets (partition,
 * next offset pairs) a successor resumes from. Fire and forget. */
void coord_relay(coord *c, const coord_feed *f, const char *data, size_t len, const int64_t *offsets,
                 size_t noffsets);

/* Owner, stopping: records offsets for a successor, frees the lease at once
 * and publishes data (a marker telling the relays to claim the feed now), in
 * one step that only this session's ownership passes. Fire and forget. */
void coord_resign(coord *c, const coord_feed *f, const char *data, size_t len, const int64_t *offsets,
                  size_t noffsets);

/* Chooses which events of f reach this node. */
void coord_watch(coord *c, const coord_feed *f, coord_watch_kind kind);

/* 1 when the backend's store is reachable (always for memory). */
int coord_up(coord *c);

/* Asks whether any node in the cluster holds a feed of topic (a
 * subscription on a live or not yet reaped node); the answer goes to cb. The
 * Redis backend answers from a per-topic index without scanning the
 * keyspace, ordered after this node's earlier calls; memory at once. */
void coord_topic_in_use(coord *c, const char *topic, coord_used_cb *cb, void *cb_data);

/* The topic was deleted: forget what coordination kept about it. Neither
 * backend keeps anything a deletion leaves stale today (index entries go
 * with their subscriptions), so this changes nothing yet; call it anyway. */
void coord_topic_forget(coord *c, const char *topic);

/* Reads the page [offset, offset + limit) of the cluster's feed table: every
 * feed some node holds, with its cluster-wide count and owner. For
 * operators (GET /cluster/feeds); never on a hot path. */
void coord_list_feeds(coord *c, size_t offset, size_t limit, coord_list_cb *cb, void *cb_data);

/* Frees the backend; accepts NULL. Pending callbacks are completed with
 * COORD_ERROR first. */
void coord_free(coord *c);

/* Writes the feed's name, "topic/key", or "topic/" and '*' for every key, into out
 * (at least coord_feed_name_len(f) + 1 bytes); returns its length. */
size_t coord_feed_name(const coord_feed *f, char *out);
size_t coord_feed_name_len(const coord_feed *f);

#endif
