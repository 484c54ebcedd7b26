/* coord_redis_nodes.c -- the Redis backend's node registry: sessions, the liveness key and its heartbeat, and reaping sessions that lapsed. */
/*
 * A node's session is its id plus an incarnation, new at each session start
 * (README, "Sessions and fencing"). A session starts when both connections
 * are ready after a round trip, and again when the heartbeat finds the
 * liveness key gone or another incarnation's (the node was paused or cut off
 * past --node-ttl-ms, and may have been reaped while alive). Each start:
 *   1. registers: the liveness hash with the new incarnation, and
 *      subway:nodes[id] = incarnation. From here on the feed scripts refuse
 *      the old session's writes (common.inc's live()), so none that arrives
 *      late (a dropped connection's, held up in the network) counts;
 *   2. reaps the previous session: reap.lua for every feed in the node's
 *      index (this process hands its leases to the new incarnation; a new
 *      process frees them now, since it has not the positions that went
 *      with them), then empties the index;
 *   3. sets the backend up, so the node re-asserts what it holds.
 * All of it goes in order on the one command connection. Scripts fenced by
 * the session keep a reaper racing this (the node came back while another
 * node reaps it) from subtracting anything the new session wrote.
 */
#include <event2/event.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "broker/log.h"
#include "broker/timeval.h"
#include "broker/xmalloc.h"
#include "coord/coord_cmd.h"
#include "coord/coord_redis_int.h"

#define NODES_KEY COORD_NODES_KEY

/* ------------------------------------------------------------ sessions */

void coord_redis_new_incarnation(coord_redis *r) {
    uint64_t v = 0;
    int fd = open("/dev/urandom", O_RDONLY | O_CLOEXEC);
    if (fd < 0 || read(fd, &v, sizeof(v)) != (ssize_t)sizeof(v)) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        v = ((uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec) ^ ((uint64_t)getpid() << 40) ^ r->sessions;
    }
    if (fd >= 0) close(fd);
    snprintf(r->inc, sizeof(r->inc), "%016llx", (unsigned long long)v);
    snprintf(r->token, sizeof(r->token), "%s:%s", r->node_id, r->inc);
}

/* Appends the liveness hash's fields: what operators read with HGETALL. */
static void node_fields(coord_redis *r, coord_cmd *b) {
    long conns = 0, feeds = 0;
    if (r->stats) r->stats(r->stats_data, &conns, &feeds);
    coord_arg_str(b, "addr"), coord_arg_str(b, r->node_addr);
    coord_arg_str(b, "admin"), coord_arg_str(b, r->node_admin);
    coord_arg_str(b, "pid"), coord_arg_num(b, (long long)getpid());
    coord_arg_str(b, "version"), coord_arg_str(b, SUBWAY_VERSION);
    coord_arg_str(b, "started_ms"), coord_arg_num(b, (long long)r->start_ms);
    coord_arg_str(b, "connections"), coord_arg_num(b, conns);
    coord_arg_str(b, "feeds"), coord_arg_num(b, feeds);
}

static void register_node(coord_redis *r) {
    coord_cmd b;
    coord_cmd_init(&b);
    coord_arg_str(&b, "DEL");                 /* a lapsed incarnation's leftovers */
    coord_arg_node_key(&b, r->node_id, NULL);
    coord_cmd_send(r->cmd, &b, NULL, NULL);
    coord_cmd_init(&b);
    coord_arg_str(&b, "HSET");
    coord_arg_node_key(&b, r->node_id, NULL);
    coord_arg_str(&b, "incarnation"), coord_arg_str(&b, r->inc);
    node_fields(r, &b);
    coord_cmd_send(r->cmd, &b, NULL, NULL);
    coord_cmd_init(&b);
    coord_arg_str(&b, "PEXPIRE");
    coord_arg_node_key(&b, r->node_id, NULL);
    coord_arg_num(&b, (long long)r->node_ttl_ms);
    coord_cmd_send(r->cmd, &b, NULL, NULL);
    coord_cmd_init(&b);
    coord_arg_str(&b, "HSET");
    coord_arg_str(&b, NODES_KEY);
    coord_arg_str(&b, r->node_id);
    coord_arg_str(&b, r->inc);
    coord_cmd_send(r->cmd, &b, NULL, NULL);
}

/* Reaping one session: its feed index -> reap.lua each -> forget.lua. A
 * reaper and the node itself (at a session start) both run it. */
typedef struct reap_ctx {
    coord_redis *r;
    int own;                      /* this node's previous session: register and go up after */
    char successor[17];           /* reap.lua's: the incarnation taking leases over, "-" frees them, "" leaves them */
    char dead_inc[64];
    char node[];
} reap_ctx;

static reap_ctx *reap_ctx_new(coord_redis *r, const char *node, const char *dead_inc, int own,
                              const char *successor) {
    size_t len = strlen(node);
    reap_ctx *x = xcalloc(1, sizeof(*x) + len + 1);
    x->r = r;
    x->own = own;
    snprintf(x->successor, sizeof(x->successor), "%s", successor);
    snprintf(x->dead_inc, sizeof(x->dead_inc), "%s", dead_inc);
    memcpy(x->node, node, len + 1);
    return x;
}

static void session_up(coord_redis *r) {
    r->starting = 0;
    r->had_session = 1;
    r->sessions++;
    log_info("coordination: session %s started", r->token);
    coord_redis_set_up(r, r->cmd_ready && r->sub_ready);
}

/* A session start whose command connection went away meanwhile is begun
 * again by the next connection. */
static void reap_done(reap_ctx *x) {
    coord_redis *r = x->r;
    if (x->own) {
        if (r->cmd_ready)
            session_up(r);
        else
            r->starting = 0;
    }
    free(x);
}

/* This node's own previous session is reaped: its index goes (the asserts
 * to come add back what the node holds). The only writer of the node's
 * index is the node, in order on this connection: no fencing needed. */
static void own_index_clear(reap_ctx *x, const redisReply *feeds) {
    coord_redis *r = x->r;
    coord_cmd b;
    for (size_t i = 0; i < feeds->elements; i++) {
        const redisReply *e = feeds->element[i];
        if (e->type != REDIS_REPLY_STRING) continue;
        const char *slash = memchr(e->str, '/', (size_t)e->len);
        coord_cmd_init(&b);
        coord_arg_str(&b, "SREM");
        coord_arg_topic_key(&b, e->str, slash ? (size_t)(slash - e->str) : (size_t)e->len);
        coord_arg_topic_member(&b, r->node_id, e->str, (size_t)e->len);
        coord_cmd_send(r->cmd, &b, NULL, NULL);
    }
    coord_cmd_init(&b);
    coord_arg_str(&b, "DEL");
    coord_arg_node_key(&b, r->node_id, "feeds");
    coord_cmd_send(r->cmd, &b, NULL, NULL);
    reap_done(x);
}

static void forget_reply(coord_redis *r, const redisReply *rep, void *data) {
    reap_done(data);
}

static void reap_feeds(redisAsyncContext *ac, void *reply, void *privdata) {
    reap_ctx *x = privdata;
    coord_redis *r = x->r;
    redisReply *rep = reply;
    if (!rep || rep->type != REDIS_REPLY_ARRAY || !r->cmd_ready) {
        if (rep && rep->type == REDIS_REPLY_ERROR) log_warn("redis: reaping %s failed: %s", x->node, rep->str);
        reap_done(x);
        return;
    }
    if (x->own) {
        for (size_t i = 0; i < rep->elements; i++) {
            const redisReply *e = rep->element[i];
            if (e->type == REDIS_REPLY_STRING)
                coord_redis_reap_feed(r, x->node, x->dead_inc, x->successor, e->str, (size_t)e->len);
        }
        own_index_clear(x, rep);
        return;
    }
    log_info("coordination: node %s reaps node %s (session %s, silent past its TTL): %zu feeds",
            r->node_id, x->node, x->dead_inc, rep->elements);
    coord_cmd b;
    coord_cmd_init(&b);
    coord_arg_num(&b, 2 + (long long)rep->elements);
    coord_arg_str(&b, NODES_KEY);
    coord_arg_node_key(&b, x->node, "feeds");
    for (size_t i = 0; i < rep->elements; i++) {
        const redisReply *e = rep->element[i];
        const char *slash = e->type == REDIS_REPLY_STRING ? memchr(e->str, '/', (size_t)e->len) : NULL;
        coord_arg_topic_key(&b, e->str, slash ? (size_t)(slash - e->str) : (size_t)e->len);
    }
    coord_arg_str(&b, x->node);
    coord_arg_str(&b, x->dead_inc);
    for (size_t i = 0; i < rep->elements; i++) {
        const redisReply *e = rep->element[i];
        coord_arg(&b, e->str, (size_t)e->len);
        coord_redis_reap_feed(r, x->node, x->dead_inc, x->successor, e->str, (size_t)e->len);
    }
    coord_redis_node_script(r, coord_redis_script_id("forget"), &b, forget_reply, x);
}

/* Sends cmd KEY(node, suffix) with fn; a refused command never calls back,
 * so x ends here then. */
static void node_cmd(reap_ctx *x, const char *verb, const char *suffix, redisCallbackFn *fn) {
    coord_cmd b;
    coord_cmd_init(&b);
    coord_arg_str(&b, verb);
    coord_arg_node_key(&b, x->node, suffix);
    if (coord_cmd_send(x->r->cmd, &b, fn, x) != REDIS_OK) reap_done(x);
}

/* A new process: its previous process's incarnation, from the registry. */
static void prev_inc(redisAsyncContext *ac, void *reply, void *privdata) {
    reap_ctx *x = privdata;
    redisReply *rep = reply;
    if (!rep || !x->r->cmd_ready) {
        reap_done(x);
        return;
    }
    if (rep->type == REDIS_REPLY_STRING) snprintf(x->dead_inc, sizeof(x->dead_inc), "%s", rep->str);
    if (rep->type == REDIS_REPLY_ERROR)
        log_error("redis: %s is not a hash (%s): is an older subway using this Redis?",
                NODES_KEY, rep->str);
    register_node(x->r);
    node_cmd(x, "SMEMBERS", "feeds", reap_feeds);
}

void coord_redis_session_start(coord_redis *r) {
    if (r->starting || !r->cmd_ready) return;
    r->starting = 1;
    char old[17];
    memcpy(old, r->inc, sizeof(old));
    int mine = r->had_session;
    coord_redis_new_incarnation(r);
    /* The lease of the previous session: this process's goes on with the
     * new incarnation; a previous process's is freed. */
    reap_ctx *x = reap_ctx_new(r, r->node_id, mine ? old : "", 1, mine ? r->inc : "-");
    if (mine) {
        register_node(r);
        node_cmd(x, "SMEMBERS", "feeds", reap_feeds);
        return;
    }
    coord_cmd b;
    coord_cmd_init(&b);
    coord_arg_str(&b, "HGET");
    coord_arg_str(&b, NODES_KEY);
    coord_arg_str(&b, r->node_id);
    if (coord_cmd_send(r->cmd, &b, prev_inc, x) != REDIS_OK) reap_done(x);
}

/* ------------------------------------------------------------ heartbeat */

static void beat_reply(coord_redis *r, const redisReply *rep, void *data) {
    if (!rep || rep->type != REDIS_REPLY_INTEGER || rep->integer != 0 || !r->up || r->starting) return;
    log_warn("coordination: this node's registration lapsed (paused or cut off past "
            "--node-ttl-ms; others may have reaped it): starting a new session and re-asserting");
    coord_redis_set_up(r, 0);
    coord_redis_session_start(r);
}

static void node_tick(evutil_socket_t fd, short what, void *arg) {
    coord_redis *r = arg;
    if (!r->cmd_ready || !r->up || r->starting) return;
    coord_cmd b;
    coord_cmd_init(&b);
    coord_arg_num(&b, 1);
    coord_arg_node_key(&b, r->node_id, NULL);
    coord_arg_str(&b, r->inc);
    coord_arg_num(&b, (long long)r->node_ttl_ms);
    node_fields(r, &b);
    coord_redis_node_script(r, coord_redis_script_id("beat"), &b, beat_reply, NULL);
}

/* -------------------------------------------------------------- reaping */

/* A registered session whose liveness key is gone, or holds another
 * incarnation, is dead: reap it. */
static void reap_check(redisAsyncContext *ac, void *reply, void *privdata) {
    reap_ctx *x = privdata;
    redisReply *rep = reply;
    int alive = rep && rep->type == REDIS_REPLY_STRING && strcmp(rep->str, x->dead_inc) == 0;
    if (rep && !alive && rep->type != REDIS_REPLY_ERROR && x->r->cmd_ready) {
        node_cmd(x, "SMEMBERS", "feeds", reap_feeds);
        return;
    }
    free(x);
}

static void reap_nodes(redisAsyncContext *ac, void *reply, void *privdata) {
    coord_redis *r = privdata;
    redisReply *rep = reply;
    if (!rep || rep->type != REDIS_REPLY_ARRAY || !r->cmd_ready) return;
    for (size_t i = 0; i + 1 < rep->elements; i += 2) {
        const redisReply *id = rep->element[i], *inc = rep->element[i + 1];
        if (id->type != REDIS_REPLY_STRING || inc->type != REDIS_REPLY_STRING || strcmp(id->str, r->node_id) == 0)
            continue;
        reap_ctx *x = reap_ctx_new(r, id->str, inc->str, 0, "");
        coord_cmd b;
        coord_cmd_init(&b);
        coord_arg_str(&b, "HGET");
        coord_arg_node_key(&b, x->node, NULL);
        coord_arg_str(&b, "incarnation");
        if (coord_cmd_send(r->cmd, &b, reap_check, x) != REDIS_OK) free(x);
    }
}

static void reap_tick(evutil_socket_t fd, short what, void *arg) {
    coord_redis *r = arg;
    if (!r->cmd_ready || !r->up) return;
    coord_cmd b;
    coord_cmd_init(&b);
    coord_arg_str(&b, "HGETALL");
    coord_arg_str(&b, NODES_KEY);
    coord_cmd_send(r->cmd, &b, reap_nodes, r);
}

/* ---------------------------------------------------------------- timers */

int coord_redis_nodes_start(coord_redis *r) {
    r->node_ev = event_new(r->evb, -1, EV_PERSIST, node_tick, r);
    r->reap_ev = event_new(r->evb, -1, EV_PERSIST, reap_tick, r);
    struct timeval node_tv = ms_timeval(r->node_ttl_ms / 3 ? r->node_ttl_ms / 3 : 1);
    struct timeval reap_tv = ms_timeval(r->reap_interval_ms);
    if (!r->node_ev || !r->reap_ev || event_add(r->node_ev, &node_tv) < 0 || event_add(r->reap_ev, &reap_tv) < 0)
        return -1;
    return 0;
}

void coord_redis_nodes_stop(coord_redis *r) {
    if (r->cmd && r->cmd_ready && r->up) {
        /* Leave quickly: without the liveness key the others reap this
         * session's remaining counts at once. */
        coord_cmd b;
        coord_cmd_init(&b);
        coord_arg_str(&b, "DEL");
        coord_arg_node_key(&b, r->node_id, NULL);
        coord_cmd_send(r->cmd, &b, NULL, NULL);
    }
    if (r->node_ev) event_free(r->node_ev);
    if (r->reap_ev) event_free(r->reap_ev);
    r->node_ev = r->reap_ev = NULL;
}
