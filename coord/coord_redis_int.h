/* coord_redis_int.h -- private to the Redis backend: its shared state and the calls between its files. */
#ifndef SUBWAY_COORD_REDIS_INT_H
#define SUBWAY_COORD_REDIS_INT_H

#include <hiredis/async.h>
#include <stddef.h>
#include <stdint.h>

#include "coord/coord.h"

struct event;
struct event_base;
struct watch;

/* The backend. coord_redis.c: script calls and the feed operations;
 * coord_redis_conn.c: the two connections and up/down; coord_redis_nodes.c:
 * the liveness key and reaping; coord_redis_watch.c: pub/sub. */
typedef struct coord_redis {
    coord base;
    struct event_base *evb;
    char host[256];
    int port;
    char *password;
    char *node_id;
    char *node_addr, *node_admin;
    uint64_t start_ms;
    void (*stats)(void *data, long *conns, long *feeds);
    void *stats_data;
    uint64_t lease_ms, node_ttl_ms, reap_interval_ms;
    redisAsyncContext *cmd;       /* commands and scripts */
    redisAsyncContext *sub;       /* pub/sub: notices and relay */
    int cmd_ready, sub_ready;     /* connected and authenticated; cmd: scripts loaded */
    int up;                       /* both ready, as last reported */
    int self_reaped;              /* a previous process with our id was cleaned up */
    int loads_pending;            /* SCRIPT LOAD replies still to come on cmd */
    int load_failed;              /* one of them was an error */
    uint64_t seq;                 /* script calls sent on cmd (first sends only) */
    uint64_t replay_fence;        /* seq when the last NOSCRIPT re-send went out */
    int replays;                  /* re-sent calls whose replies are still to come */
    struct event *reconnect_ev;
    struct event *node_ev;        /* liveness key refresh */
    struct event *reap_ev;
    struct watch *watches;        /* coord_redis_watch.c's list */
    int freeing;
    char sha[][41];               /* each script's SHA1, from SCRIPT LOAD: COORD_NSCRIPTS of them
                                   * (the generated header's count, known to coord_redis.c only) */
} coord_redis;

/* ---- coord_redis.c */

/* The feed's name, "topic/key" (heap, NUL-terminated, the caller frees it);
 * *len gets its length. */
char *coord_redis_feed_name_dup(const coord_feed *f, size_t *len);

/* Sends SCRIPT LOAD for every script on cmd; when the last reply is in, a
 * connection not yet ready becomes so (coord_redis_conn_ready). */
void coord_redis_load_scripts(coord_redis *r);

/* Runs reap.lua for the feed named name (nlen bytes) of the dead node,
 * and drops the node's entry in the topic index. */
void coord_redis_reap_feed(coord_redis *r, const char *node, const char *name, size_t nlen);

/* ---- coord_redis_conn.c */

/* Creates the reconnect timer; 0, or -1 when it cannot. */
int coord_redis_conn_init(coord_redis *r);

/* Connects whichever connection is missing (retrying on a timer). */
void coord_redis_connect(coord_redis *r);

/* Both connections ready: up, once our previous incarnation is reaped. */
void coord_redis_conn_ready(coord_redis *r);

/* Reports up or down once per change; going up registers the node and
 * subscribes every watch again. */
void coord_redis_set_up(coord_redis *r, int up);

/* Lets queued commands out (at most 2 s of the loop), then frees both
 * connections and the reconnect timer. */
void coord_redis_conn_close(coord_redis *r);

/* ---- coord_redis_nodes.c */

/* Writes this node's liveness hash (addr, figures) and its TTL, and adds it
 * to the registered nodes. Nothing when cmd is not ready. */
void coord_redis_register_node(coord_redis *r);

/* Reaps a previous process under our id, then sets the backend up. */
void coord_redis_self_reap(coord_redis *r);

/* Starts the liveness and reaping timers; 0, or -1 when they cannot. */
int coord_redis_nodes_start(coord_redis *r);

/* Leaving: deletes the liveness key (when cmd is ready), so the others reap
 * this node at once, and frees the timers. */
void coord_redis_nodes_stop(coord_redis *r);

/* ---- coord_redis_watch.c */

/* The backend's watch: subscribes to f's notice or relay channel, or neither. */
void coord_redis_watch(coord *base, const coord_feed *f, coord_watch_kind kind);

/* Subscribes every watch again (the sub connection is new). */
void coord_redis_watch_resubscribe(coord_redis *r);

/* Frees every watch. */
void coord_redis_watch_free(coord_redis *r);

#endif
