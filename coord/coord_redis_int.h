/* coord_redis_int.h -- private to the Redis backend: its shared state and the calls between its files. */
#ifndef SUBWAY_COORD_REDIS_INT_H
#define SUBWAY_COORD_REDIS_INT_H

#include <hiredis/async.h>
#include <stddef.h>
#include <stdint.h>

#include "coord/coord.h"
#include "coord/coord_cmd.h"

struct event;
struct event_base;
struct watch;

typedef struct coord_redis_sentinel {
    char host[256];
    int port;
} coord_redis_sentinel;

/* The backend. coord_redis.c: script calls and the feed operations;
 * coord_redis_conn.c: the two connections, deadlines and up/down;
 * coord_redis_sentinel.c: finding the master; coord_redis_nodes.c: sessions,
 * the liveness key and reaping; coord_redis_watch.c: pub/sub. */
typedef struct coord_redis {
    coord base;
    struct event_base *evb;
    char host[256];               /* the master: --redis, or the last Sentinel's answer */
    int port;
    coord_redis_sentinel *sentinels; /* --redis-sentinel, nsentinels of them (0: none) */
    size_t nsentinels, sentinel_i;   /* and the one asked next */
    char *master;                 /* --redis-master */
    int master_known;             /* host/port are a Sentinel's answer since the last lost connection */
    redisAsyncContext *sentinel_ac; /* a question to a Sentinel under way */
    char *password;
    char *node_id;
    char *node_addr, *node_admin;
    uint64_t start_ms;
    void (*stats)(void *data, long *conns, long *feeds);
    void *stats_data;
    uint64_t lease_ms, node_ttl_ms, reap_interval_ms, timeout_ms;
    /* The session (README, "Sessions and fencing"): this process's current
     * incarnation, new at every session start; token = "node_id:inc" is what
     * the owner key holds when this session owns a feed. */
    char inc[17];
    char token[128];
    int had_session;              /* inc is a session this process held (not just made up) */
    int starting;                 /* a session start is under way */
    uint64_t sessions;            /* started by this process */
    uint64_t relays_fenced;       /* relays and resigns the scripts refused */
    uint64_t ping_sent_ms;        /* cmd: monotonic ms of the PING still unanswered, 0 if none */
    struct event *ping_ev;        /* deadline watchdog */
    redisAsyncContext *cmd;       /* commands and scripts */
    redisAsyncContext *sub;       /* pub/sub: notices and relay */
    int cmd_ready, sub_ready;     /* connected and authenticated; cmd: scripts loaded */
    int up;                       /* both ready, as last reported */
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

/* Runs reap.lua for the feed named name (nlen bytes) of the dead session
 * node:dead_inc; successor ("" for none) is the incarnation of this process
 * that takes over its leases. */
void coord_redis_reap_feed(coord_redis *r, const char *node, const char *dead_inc, const char *successor,
                           const char *name, size_t nlen);

/* The reply of a node script; rep NULL when the call failed or was lost. */
typedef void coord_redis_reply_fn(coord_redis *r, const struct redisReply *rep, void *data);

/* Runs script (coord_redis_script_id) with b (numkeys, keys, arguments;
 * taken over) on cmd; fn gets the reply, exactly once. */
void coord_redis_node_script(coord_redis *r, int script, coord_cmd *b, coord_redis_reply_fn *fn, void *data);

/* The COORD_SCRIPT_* id of a script by file name ("beat"), -1 if none. */
int coord_redis_script_id(const char *name);

/* ---- coord_redis_conn.c */

/* Creates the reconnect timer; 0, or -1 when it cannot. */
int coord_redis_conn_init(coord_redis *r);

/* Connects whichever connection is missing (retrying on a timer). */
void coord_redis_connect(coord_redis *r);

/* Both connections ready (each after a round trip): starts a session. */
void coord_redis_conn_ready(coord_redis *r);

/* Drops both connections now (no reply is awaited), and reconnects. */
void coord_redis_conn_drop(coord_redis *r, const char *why);

/* Reports up or down once per change; going up registers the node and
 * subscribes every watch again. */
void coord_redis_set_up(coord_redis *r, int up);

/* Lets queued commands out (at most 2 s of the loop), then frees both
 * connections and the reconnect timer. */
void coord_redis_conn_close(coord_redis *r);

/* Schedules the next connect attempt. */
void coord_redis_schedule_reconnect(coord_redis *r);

/* ---- coord_redis_sentinel.c */

/* Parses the Sentinels' HOST:PORT list; 0, or -1 with err. */
int coord_redis_sentinel_init(coord_redis *r, const char *list, const char *master, char *err, size_t errlen);

/* Asks the next Sentinel where the master is; when it answers (or fails)
 * coord_redis_connect() goes on with the master (or the next Sentinel). */
void coord_redis_sentinel_ask(coord_redis *r);

void coord_redis_sentinel_free(coord_redis *r);

/* ---- coord_redis_nodes.c */

/* Picks a new incarnation: inc and token. */
void coord_redis_new_incarnation(coord_redis *r);

/* Starts a new session on a ready cmd connection: reaps the previous one
 * (this process's, handing its leases to the new one; or a previous
 * process's, whose leases go free), registers, then sets the backend up. */
void coord_redis_session_start(coord_redis *r);

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

/* ---- coord_redis_list.c */

/* The backend's list_feeds: see coord_list_feeds. */
void coord_redis_list_feeds(coord *base, size_t offset, size_t limit, coord_list_cb *cb, void *cb_data);

#endif
