/* coord_redis_nodes.c -- the Redis backend's node registry: this node's liveness key, and reaping the nodes that lost theirs. */
#include <event2/event.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "broker/timeval.h"
#include "broker/xmalloc.h"
#include "coord/coord_cmd.h"
#include "coord/coord_redis_int.h"

#define NODES_KEY "subway:nodes"  /* registered nodes: what reapers scan */

/* ------------------------------------------------------------ node keys */

void coord_redis_register_node(coord_redis *r) {
    if (!r->cmd_ready) return;
    long conns = 0, feeds = 0;
    if (r->stats) r->stats(r->stats_data, &conns, &feeds);
    coord_cmd b;
    coord_cmd_init(&b);
    coord_arg_str(&b, "HSET");
    coord_arg_node_key(&b, r->node_id, NULL);
    coord_arg_str(&b, "addr"), coord_arg_str(&b, r->node_addr);
    coord_arg_str(&b, "admin"), coord_arg_str(&b, r->node_admin);
    coord_arg_str(&b, "pid"), coord_arg_num(&b, (long long)getpid());
    coord_arg_str(&b, "version"), coord_arg_str(&b, SUBWAY_VERSION);
    coord_arg_str(&b, "started_ms"), coord_arg_num(&b, (long long)r->start_ms);
    coord_arg_str(&b, "connections"), coord_arg_num(&b, conns);
    coord_arg_str(&b, "feeds"), coord_arg_num(&b, feeds);
    coord_cmd_send(r->cmd, &b, NULL, NULL);
    coord_cmd_init(&b);
    coord_arg_str(&b, "PEXPIRE");
    coord_arg_node_key(&b, r->node_id, NULL);
    coord_arg_num(&b, (long long)r->node_ttl_ms);
    coord_cmd_send(r->cmd, &b, NULL, NULL);
    coord_cmd_init(&b);
    coord_arg_str(&b, "SADD");
    coord_arg_str(&b, NODES_KEY);
    coord_arg_str(&b, r->node_id);
    coord_cmd_send(r->cmd, &b, NULL, NULL);
}

static void node_tick(evutil_socket_t fd, short what, void *arg) {
    coord_redis_register_node(arg);
}

/* Reaping: subway:nodes -> each node without its liveness key -> each feed
 * in its feed set -> reap.lua, and its topic index entries; then its keys
 * go. Any node may do it, and several at once are harmless: the script
 * subtracts only once, so only one reaper gets a feed's demand event. */
typedef struct reap_ctx {
    coord_redis *r;
    char node[];
} reap_ctx;

static reap_ctx *reap_ctx_new(coord_redis *r, const char *node) {
    size_t len = strlen(node);
    reap_ctx *x = xmalloc(sizeof(*x) + len + 1);
    x->r = r;
    memcpy(x->node, node, len + 1);
    return x;
}

/* Sends cmd NODE-KEY(node, suffix) with fn, or frees x when refused. */
static void reap_send(reap_ctx *x, const char *verb, const char *suffix, redisCallbackFn *fn) {
    coord_cmd b;
    coord_cmd_init(&b);
    coord_arg_str(&b, verb);
    coord_arg_node_key(&b, x->node, suffix);
    /* A refused command never calls back: then x is freed here. */
    if (coord_cmd_send(x->r->cmd, &b, fn, x) != REDIS_OK) free(x);
}

static void reap_feeds(redisAsyncContext *ac, void *reply, void *privdata) {
    reap_ctx *x = privdata;
    coord_redis *r = x->r;
    redisReply *rep = reply;
    if (rep && rep->type == REDIS_REPLY_ARRAY && r->cmd_ready) {
        for (size_t i = 0; i < rep->elements; i++) {
            redisReply *e = rep->element[i];
            if (e->type == REDIS_REPLY_STRING) coord_redis_reap_feed(r, x->node, e->str, (size_t)e->len);
        }
        coord_cmd b;
        coord_cmd_init(&b);
        coord_arg_str(&b, "DEL");
        coord_arg_node_key(&b, x->node, "feeds");
        coord_cmd_send(r->cmd, &b, NULL, NULL);
        if (strcmp(x->node, r->node_id) != 0) {
            coord_cmd_init(&b);
            coord_arg_str(&b, "SREM");
            coord_arg_str(&b, NODES_KEY);
            coord_arg_str(&b, x->node);
            coord_cmd_send(r->cmd, &b, NULL, NULL);
        }
    }
    if (strcmp(x->node, r->node_id) == 0) {
        /* Our own previous incarnation is subtracted: the scripts above are
         * queued before anything this process will send. Now we are up. */
        r->self_reaped = 1;
        coord_redis_set_up(r, r->cmd_ready && r->sub_ready);
    }
    free(x);
}

static void reap_check(redisAsyncContext *ac, void *reply, void *privdata) {
    reap_ctx *x = privdata;
    redisReply *rep = reply;
    if (rep && rep->type == REDIS_REPLY_INTEGER && rep->integer == 0 && x->r->cmd_ready)
        reap_send(x, "SMEMBERS", "feeds", reap_feeds);
    else
        free(x);
}

static void reap_nodes(redisAsyncContext *ac, void *reply, void *privdata) {
    coord_redis *r = privdata;
    redisReply *rep = reply;
    if (!rep || rep->type != REDIS_REPLY_ARRAY || !r->cmd_ready) return;
    for (size_t i = 0; i < rep->elements; i++) {
        const redisReply *e = rep->element[i];
        if (e->type != REDIS_REPLY_STRING || strcmp(e->str, r->node_id) == 0) continue;
        reap_send(reap_ctx_new(r, e->str), "EXISTS", NULL, reap_check);
    }
}

static void reap_tick(evutil_socket_t fd, short what, void *arg) {
    coord_redis *r = arg;
    if (!r->cmd_ready) return;
    coord_cmd b;
    coord_cmd_init(&b);
    coord_arg_str(&b, "SMEMBERS");
    coord_arg_str(&b, NODES_KEY);
    coord_cmd_send(r->cmd, &b, reap_nodes, r);
}

/* A node restarted under the same id finds its liveness key taken over by
 * itself before anyone reaped its previous process: it reaps that one
 * itself, once, before it takes any subscription. */
void coord_redis_self_reap(coord_redis *r) {
    reap_send(reap_ctx_new(r, r->node_id), "SMEMBERS", "feeds", reap_feeds);
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
    if (r->cmd && r->cmd_ready) {
        /* Leave quickly: without the liveness key the others reap this
         * node's remaining counts and leases at once. */
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
