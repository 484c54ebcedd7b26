/* coord_redis.c -- the Redis coordination backend: its feed operations as Lua scripts, loaded once per connection and run with EVALSHA. */
/*
 * Needs Redis 5.0 or later: the feed scripts write after calling TIME (the
 * demand events' clock), which Redis allows by default only since 5.0
 * (script effects replication; 3.2 to 4.x would need
 * redis.replicate_commands()), and register_node's HSET of several fields
 * needs 4.0. Everything else (EVALSHA, SCRIPT LOAD, cjson, SET PX, PEXPIRE,
 * SCARD) is 2.6. Tested with 7.0.
 *
 * Scripts are loaded once per connection (SCRIPT LOAD before the connection
 * counts as ready) and run with EVALSHA. A NOSCRIPT reply (SCRIPT FLUSH, a
 * failover to a server without them) re-sends that call with EVAL and reloads
 * every script. A re-sent call runs after the calls sent behind it; if one of
 * those succeeded meanwhile (another client loaded the script in between),
 * the order of this node's scripts broke, and this node's counts may be off:
 * the connection is dropped, so the node re-asserts its exact state.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "broker/histogram.h"
#include "broker/log.h"
#include "broker/xmalloc.h"
#include "coord/coord.h"
#include "coord/coord_cmd.h"
#include "coord/coord_redis_int.h"
#include "coord_scripts.h"
#include "proto/addr.h"

char *coord_redis_feed_name_dup(const coord_feed *f, size_t *len) {
    char *name = xmalloc(coord_feed_name_len(f) + 1);
    *len = coord_feed_name(f, name);
    return name;
}

/* Who holds what, kept by each node for itself, in pipeline order with its
 * scripts (verb SADD before an acquire or assert, SREM after a release or
 * assert that leaves the node none): subway:node:ID:feeds, what a reaper
 * subtracts when ID dies, and subway:topic:{T}:feeds, members "ID FEED",
 * whose cardinality answers coord_topic_in_use. A reaper removes a dead
 * node's members the same way.
 *
 * Why this index and not a set of feed names per topic read with a GET of
 * each feed's count: members leave when their node stops holding the feed,
 * so a topic of many short-lived keys does not grow the set forever (only
 * deleted free topics would ever be cleaned), the answer is one SCARD
 * however many feeds the topic had, and the one writer per member means a
 * removal never races another node's acquire. Every script stays inside one
 * feed's hash tag; the index is written by plain commands beside them. */
static void index_feed(coord_redis *r, const char *verb, const char *node, const char *name, size_t nlen) {
    const char *slash = memchr(name, '/', nlen);
    coord_cmd b;
    coord_cmd_init(&b);
    coord_arg_str(&b, verb);
    coord_arg_node_key(&b, node, "feeds");
    coord_arg(&b, name, nlen);
    coord_cmd_send(r->cmd, &b, NULL, NULL);
    if (!slash) return;
    coord_cmd_init(&b);
    coord_arg_str(&b, verb);
    coord_arg_topic_key(&b, name, (size_t)(slash - name));
    coord_arg_topic_member(&b, node, name, nlen);
    coord_cmd_send(r->cmd, &b, NULL, NULL);
}

static void fail_cb(coord_cb *cb, void *cb_data, const char *why) {
    coord_result res = {.status = COORD_ERROR, .owner = "", .errstr = why};
    cb(cb_data, &res);
}

/* ------------------------------------------------------------ scripts */

enum {
    CALL_OTHER,                   /* a feed script: {count, nodes, owner, offsets, mine[, demand]} */
    CALL_RELEASE,                 /* the same; count 0 means COORD_LAST */
    CALL_ACQUIRE,                 /* the same; count 1 from our 0 means COORD_FIRST */
    CALL_REAP,                    /* {count, demand}; nobody waits */
    CALL_RELAY,                   /* 1, or 0 when fenced off; nobody waits */
    CALL_NODE,                    /* a node script (beat, forget): the reply goes to node_cb */
};

/* A script call in flight: completes the caller's callback (if any) exactly
 * once, and keeps its arguments until then for a NOSCRIPT re-send. */
typedef struct call {
    coord_redis *r;
    int script;                   /* COORD_SCRIPT_* */
    int kind;                     /* CALL_* */
    coord_cb *cb;                 /* NULL when nobody waits */
    void *cb_data;
    coord_redis_reply_fn *node_cb; /* CALL_NODE: gets the reply (NULL when lost) */
    char inc[17];                 /* the session it was sent in: its reply is about that one */
    uint64_t seq;                 /* send order (first sends) */
    int resent;                   /* went out again with EVAL */
    uint64_t sent_us;             /* when it last went out (histogram_now_us), for the round trip */
    coord_cmd b;                     /* numkeys, keys, arguments */
    coord_feed f;                 /* the feed, pointing into feed[], for the demand event */
    char feed[];                  /* topic \0 key */
} call;

/* A call of script about the feed named name ("topic/key"; wildcard as in
 * coord_feed), its arguments to be added to c->b before call_start(). */
static call *call_new(coord_redis *r, int script, int kind, const char *name, size_t nlen, int wildcard,
                      coord_cb *cb, void *cb_data) {
    call *c = xmalloc(sizeof(*c) + nlen + 1);
    c->r = r;
    c->script = script;
    c->kind = kind;
    c->cb = cb;
    c->cb_data = cb_data;
    c->node_cb = NULL;
    memcpy(c->inc, r->inc, sizeof(c->inc));
    c->seq = 0;
    c->resent = 0;
    coord_cmd_init(&c->b);
    memcpy(c->feed, name, nlen);
    c->feed[nlen] = '\0';
    char *slash = memchr(c->feed, '/', nlen);
    if (slash) *slash = '\0';
    c->f.topic = c->feed;
    c->f.key = slash ? slash + 1 : c->feed + nlen;
    c->f.key_len = slash ? nlen - (size_t)(slash + 1 - c->feed) : 0;
    c->f.wildcard = wildcard;
    if (wildcard) c->f.key_len = 0;
    return c;
}

static void call_free(call *c) {
    free(c->b.p);
    free(c);
}

static void call_fail(call *c, const char *why) {
    if (c->cb) fail_cb(c->cb, c->cb_data, why);
    if (c->node_cb) c->node_cb(c->r, NULL, c->cb_data);
    call_free(c);
}

static void script_reply(redisAsyncContext *ac, void *reply, void *privdata);

/* Sends the call: EVALSHA the first time, EVAL with the script's text when
 * re-sent. Returns REDIS_OK or REDIS_ERR. */
static int call_send(call *c) {
    coord_redis *r = c->r;
    size_t alen = c->b.len - COORD_CMD_HEAD_ROOM;
    c->sent_us = histogram_now_us();
    if (!c->resent) {
        char head[COORD_CMD_HEAD_ROOM];
        int hl = snprintf(head, sizeof(head), "*%d\r\n$7\r\nEVALSHA\r\n$40\r\n%s\r\n", c->b.argc + 2,
                          r->sha[c->script]);
        memcpy(c->b.p + COORD_CMD_HEAD_ROOM - hl, head, (size_t)hl);
        return redisAsyncFormattedCommand(r->cmd, script_reply, c, c->b.p + COORD_CMD_HEAD_ROOM - hl, alen + (size_t)hl);
    }
    const char *text = coord_script_text[c->script];
    size_t tl = strlen(text);
    char *buf = xmalloc(64 + tl + alen);
    size_t n = (size_t)sprintf(buf, "*%d\r\n$4\r\nEVAL\r\n$%zu\r\n", c->b.argc + 2, tl);
    memcpy(buf + n, text, tl);
    memcpy(buf + n + tl, "\r\n", 2);
    memcpy(buf + n + tl + 2, c->b.p + COORD_CMD_HEAD_ROOM, alen);
    int rc = redisAsyncFormattedCommand(r->cmd, script_reply, c, buf, n + tl + 2 + alen);
    free(buf);
    return rc;
}

/* Sends a built call on the command connection; fails it when that is not
 * ready (scripts not loaded) or refuses the command. */
static void call_start(call *c) {
    coord_redis *r = c->r;
    if (!r->cmd_ready) {
        call_fail(c, "redis: not connected");
        return;
    }
    c->seq = ++r->seq;
    if (call_send(c) != REDIS_OK) call_fail(c, "redis: not connected");
}

/* NOSCRIPT: the server lost its scripts. Reload them all for the calls to
 * come, and send this one again with its text. */
static void call_replay(call *c) {
    coord_redis *r = c->r;
    if (!r->loads_pending) coord_redis_load_scripts(r);
    c->resent = 1;
    if (call_send(c) != REDIS_OK) {
        call_fail(c, "redis: not connected");
        return;
    }
    r->replays++;
    r->replay_fence = r->seq;
}

static long long reply_int(const redisReply *e) {
    if (!e) return 0;
    if (e->type == REDIS_REPLY_INTEGER) return e->integer;
    if (e->type == REDIS_REPLY_STRING) return atoll(e->str);
    return 0;
}

/* Hands a script's demand JSON (a string element, else nothing) on. */
static void call_demand(call *c, const redisReply *e) {
    coord_redis *r = c->r;
    if (e && e->type == REDIS_REPLY_STRING && r->base.ev.demand)
        r->base.ev.demand(r->base.ev.cb_data, &c->f, e->str, (size_t)e->len);
}

/* The reply of a feed script {count, nodes, owner, offsets, mine[, demand]}. */
static void feed_reply(call *c, const redisReply *rep) {
    coord_redis *r = c->r;
    if (rep->type != REDIS_REPLY_ARRAY || rep->elements < 5) {
        call_fail(c, "redis: unexpected reply");
        return;
    }
    const redisReply *o = rep->element[3];
    size_t n = o->type == REDIS_REPLY_ARRAY ? o->elements / 2 : 0;
    if (n > COORD_MAX_OFFSETS) n = COORD_MAX_OFFSETS;
    int64_t *offs = n ? xmalloc(2 * n * sizeof(*offs)) : NULL;
    for (size_t i = 0; i < n; i++) {
        offs[2 * i] = reply_int(o->element[2 * i]);
        offs[2 * i + 1] = reply_int(o->element[2 * i + 1]);
    }
    const char *owner = rep->element[2]->type == REDIS_REPLY_STRING ? rep->element[2]->str : "";
    /* Owned by the session the call was sent in, and that is still ours:
     * a reply of a session since replaced grants nothing. */
    coord_result res = {.status = COORD_OK, .count = (long)reply_int(rep->element[0]),
                        .nodes = (long)reply_int(rep->element[1]),
                        .own = strcmp(owner, r->token) == 0 && strcmp(c->inc, r->inc) == 0,
                        .owner = owner, .offsets = offs, .noffsets = n};
    long long mine = reply_int(rep->element[4]);
    if (c->kind == CALL_RELEASE && res.count == 0) res.status = COORD_LAST;
    if (c->kind == CALL_ACQUIRE && res.count == 1 && mine == 1) res.status = COORD_FIRST;
    if (rep->elements > 5) call_demand(c, rep->element[5]);
    if (c->cb) c->cb(c->cb_data, &res);
    free(offs);
    call_free(c);
}

static void script_reply(redisAsyncContext *ac, void *reply, void *privdata) {
    call *c = privdata;
    coord_redis *r = c->r;
    redisReply *rep = reply;
    if (rep) histogram_observe_since(&node_hist.redis_rtt, c->sent_us);
    if (c->resent) {
        r->replays--;
    } else if (rep && rep->type == REDIS_REPLY_ERROR && strncmp(rep->str, "NOSCRIPT", 8) == 0) {
        call_replay(c);
        return;
    } else if (rep && r->replays > 0 && c->seq <= r->replay_fence && ac == r->cmd) {
        /* This call ran before an earlier one still being re-sent. */
        log_warn("redis: scripts ran out of order after NOSCRIPT; reconnecting to re-assert");
        redisAsyncDisconnect(ac);
    }
    if (!rep || rep->type == REDIS_REPLY_ERROR) {
        char why[256];
        snprintf(why, sizeof(why), "redis: %s", !rep ? "connection lost" : rep->str);
        call_fail(c, why);
        return;
    }
    if (c->kind == CALL_RELAY) {
        if (rep->type == REDIS_REPLY_INTEGER && rep->integer == 0) {
            r->relays_fenced++;
            log_warn("redis: relay of %s/%s refused: this session no longer owns it",
                    c->f.topic, c->f.wildcard ? "*" : c->f.key);
        }
        call_free(c);
    } else if (c->kind == CALL_NODE) {
        c->node_cb(r, rep, c->cb_data);
        call_free(c);
    } else if (c->kind == CALL_REAP) {
        if (rep->type == REDIS_REPLY_ARRAY && rep->elements >= 2) call_demand(c, rep->element[1]);
        call_free(c);
    } else {
        feed_reply(c, rep);
    }
}

/* A SCRIPT LOAD answered. On connect the command connection becomes ready
 * with the last of them; a reload after NOSCRIPT only refreshes the SHAs
 * (the same ones: a SHA1 of the same text). */
static void load_reply(redisAsyncContext *ac, void *reply, void *privdata) {
    coord_redis *r = ac->data;
    char *sha = privdata;
    redisReply *rep = reply;
    if (rep && rep->type == REDIS_REPLY_STRING && rep->len == 40) {
        memcpy(sha, rep->str, 41);
    } else if (rep) {
        log_warn("redis SCRIPT LOAD %s failed: %s",
                coord_script_name[(sha - r->sha[0]) / (int)sizeof(r->sha[0])],
                rep->type == REDIS_REPLY_ERROR ? rep->str : "unexpected reply");
        r->load_failed = 1;
    }
    if (--r->loads_pending > 0 || !rep || ac != r->cmd) return;
    if (r->load_failed) {
        redisAsyncDisconnect(ac);  /* retried with the reconnect */
    } else if (!r->cmd_ready) {
        r->cmd_ready = 1;
        coord_redis_conn_ready(r);
    }
}

/* Each script's text goes once per connection. */
void coord_redis_load_scripts(coord_redis *r) {
    r->load_failed = 0;
    for (int i = 0; i < COORD_NSCRIPTS; i++) {
        coord_cmd b;
        coord_cmd_init(&b);
        coord_arg_str(&b, "SCRIPT");
        coord_arg_str(&b, "LOAD");
        coord_arg_str(&b, coord_script_text[i]);
        if (coord_cmd_send(r->cmd, &b, load_reply, r->sha[i]) == REDIS_OK) r->loads_pending++;
    }
}

/* ------------------------------------------------------------ feed calls */

/* Every feed script gets these keys of its feed, in this order, and then
 * the node's liveness key (common.inc). */
static const char *const K_FEED[] = {"nodes", "count", "owner", "offsets", "sessions"};
#define NK_FEED 5

/* A call of a feed script about the feed named name: its keys, then node
 * and incarnation (ARGV[1], ARGV[2]); the caller adds the rest. */
static call *feed_call(coord_redis *r, int script, int kind, const char *name, size_t nlen, int wildcard,
                       const char *node, const char *inc, coord_cb *cb, void *cb_data) {
    call *c = call_new(r, script, kind, name, nlen, wildcard, cb, cb_data);
    coord_arg_num(&c->b, NK_FEED + 1);
    for (int i = 0; i < NK_FEED; i++) coord_arg_feed_key(&c->b, name, nlen, K_FEED[i]);
    coord_arg_node_key(&c->b, node, NULL);
    coord_arg_str(&c->b, node);
    coord_arg_str(&c->b, inc);
    return c;
}

/* A feed operation's call of script about f, as this session; the caller
 * adds the rest and call_start()s it. NULL, with cb failed, while the store
 * is down. *name gets the feed's name (heap, the caller frees it), *nlen its
 * length. */
static call *op_call(coord_redis *r, int script, int kind, const coord_feed *f, coord_cb *cb, void *cb_data,
                     char **name, size_t *nlen) {
    if (!r->up || !r->cmd_ready) {
        if (cb) fail_cb(cb, cb_data, "redis: not connected");
        return NULL;
    }
    *name = coord_redis_feed_name_dup(f, nlen);
    return feed_call(r, script, kind, *name, *nlen, f->wildcard, r->node_id, r->inc, cb, cb_data);
}

/* The index commands go out before or after a script in pipeline order
 * (index_feed), so each is sent around call_start(), never from a reply. */

static void r_acquire(coord *base, const coord_feed *f, coord_cb *cb, void *cb_data) {
    coord_redis *r = (coord_redis *)base;
    char *name;
    size_t nlen;
    call *c = op_call(r, COORD_SCRIPT_ACQUIRE, CALL_ACQUIRE, f, cb, cb_data, &name, &nlen);
    if (!c) return;
    coord_arg_num(&c->b, (long long)r->lease_ms);
    coord_arg_feed_key(&c->b, name, nlen, "ctl");
    coord_arg(&c->b, name, nlen);
    index_feed(r, "SADD", r->node_id, name, nlen);
    call_start(c);
    free(name);
}

static void r_release(coord *base, const coord_feed *f, long local_after, coord_cb *cb, void *cb_data) {
    coord_redis *r = (coord_redis *)base;
    char *name;
    size_t nlen;
    call *c = op_call(r, COORD_SCRIPT_RELEASE, CALL_RELEASE, f, cb, cb_data, &name, &nlen);
    if (!c) return;
    coord_arg_feed_key(&c->b, name, nlen, "ctl");
    coord_arg(&c->b, name, nlen);
    call_start(c);
    /* Right after the release (a later acquire's SADD follows it), never
     * from a reply, which could arrive after a new subscription re-added
     * the feed. */
    if (local_after == 0 && r->cmd_ready) index_feed(r, "SREM", r->node_id, name, nlen);
    free(name);
}

static void r_claim(coord *base, const coord_feed *f, int announce, coord_cb *cb, void *cb_data) {
    coord_redis *r = (coord_redis *)base;
    char *name;
    size_t nlen;
    call *c = op_call(r, COORD_SCRIPT_CLAIM, CALL_OTHER, f, cb, cb_data, &name, &nlen);
    if (!c) return;
    coord_arg_num(&c->b, (long long)r->lease_ms);
    coord_arg_feed_key(&c->b, name, nlen, "ctl");
    coord_arg_str(&c->b, announce ? "1" : "0");
    call_start(c);
    free(name);
}

static void r_renew(coord *base, const coord_feed *f, coord_cb *cb, void *cb_data) {
    coord_redis *r = (coord_redis *)base;
    char *name;
    size_t nlen;
    call *c = op_call(r, COORD_SCRIPT_RENEW, CALL_OTHER, f, cb, cb_data, &name, &nlen);
    if (!c) return;
    coord_arg_num(&c->b, (long long)r->lease_ms);
    call_start(c);
    free(name);
}

static void r_disown(coord *base, const coord_feed *f, coord_cb *cb, void *cb_data) {
    coord_redis *r = (coord_redis *)base;
    char *name;
    size_t nlen;
    call *c = op_call(r, COORD_SCRIPT_DISOWN, CALL_OTHER, f, cb, cb_data, &name, &nlen);
    if (!c) return;
    call_start(c);
    free(name);
}

static void r_assert(coord *base, const coord_feed *f, long local, int own, coord_cb *cb, void *cb_data) {
    coord_redis *r = (coord_redis *)base;
    char *name;
    size_t nlen;
    call *c = op_call(r, COORD_SCRIPT_ASSERT, CALL_OTHER, f, cb, cb_data, &name, &nlen);
    if (!c) return;
    coord_arg_num(&c->b, local);
    coord_arg_num(&c->b, (long long)r->lease_ms);
    coord_arg_feed_key(&c->b, name, nlen, "ctl");
    coord_arg_str(&c->b, own ? "1" : "0");
    coord_arg(&c->b, name, nlen);
    if (local > 0) index_feed(r, "SADD", r->node_id, name, nlen);
    call_start(c);
    /* Holding none: drop index entries a release lost while the store was away. */
    if (local <= 0 && r->cmd_ready) index_feed(r, "SREM", r->node_id, name, nlen);
    free(name);
}

/* relay.lua or resign.lua: data on f's relay channel and the resume
 * offsets, in one step that only this session's ownership passes (a
 * refusal is logged in script_reply). Fire and forget. While the store is
 * down it is dropped: the relays see the gap in the next batch's positions
 * (relaywire.c) and read it from Kafka themselves. */
static void owner_publish(coord_redis *r, int script, const coord_feed *f, const char *data, size_t len,
                          const int64_t *offsets, size_t noffsets) {
    char *name;
    size_t nlen;
    call *c = op_call(r, script, CALL_RELAY, f, NULL, NULL, &name, &nlen);
    if (!c) return;
    coord_arg_feed_key(&c->b, name, nlen, "relay");
    coord_arg(&c->b, data, len);
    if (noffsets > COORD_MAX_OFFSETS) noffsets = COORD_MAX_OFFSETS;
    for (size_t i = 0; i < 2 * noffsets; i++) coord_arg_num(&c->b, (long long)offsets[i]);
    call_start(c);
    free(name);
}

static void r_relay(coord *base, const coord_feed *f, const char *data, size_t len, const int64_t *offsets,
                    size_t noffsets) {
    owner_publish((coord_redis *)base, COORD_SCRIPT_RELAY, f, data, len, offsets, noffsets);
}

static void r_resign(coord *base, const coord_feed *f, const char *data, size_t len, const int64_t *offsets,
                     size_t noffsets) {
    owner_publish((coord_redis *)base, COORD_SCRIPT_RESIGN, f, data, len, offsets, noffsets);
}

/* The name alone cannot tell topic/'*' from a key "*": reaps say wildcard. */
void coord_redis_reap_feed(coord_redis *r, const char *node, const char *dead_inc, const char *successor,
                           const char *name, size_t nlen) {
    int wildcard = nlen >= 2 && memcmp(name + nlen - 2, "/*", 2) == 0;
    call *c = feed_call(r, COORD_SCRIPT_REAP, CALL_REAP, name, nlen, wildcard, node, dead_inc, NULL, NULL);
    coord_arg_feed_key(&c->b, name, nlen, "ctl");
    coord_arg(&c->b, name, nlen);
    coord_arg_str(&c->b, successor);
    call_start(c);
}

void coord_redis_node_script(coord_redis *r, int script, coord_cmd *b, coord_redis_reply_fn *fn, void *data) {
    call *c = call_new(r, script, CALL_NODE, "", 0, 0, NULL, data);
    free(c->b.p);
    c->b = *b;
    c->node_cb = fn;
    call_start(c);
}

int coord_redis_script_id(const char *name) {
    for (int i = 0; i < COORD_NSCRIPTS; i++)
        if (strcmp(coord_script_name[i], name) == 0) return i;
    return -1;
}

/* -------------------------------------------------------- topics in use */

typedef struct used_req {
    coord_used_cb *cb;
    void *cb_data;
} used_req;

static void used_reply(redisAsyncContext *ac, void *reply, void *privdata) {
    used_req *q = privdata;
    redisReply *rep = reply;
    q->cb(q->cb_data, !rep || rep->type != REDIS_REPLY_INTEGER ? -1 : rep->integer > 0);
    free(q);
}

/* One SCARD of the topic's index (see index_feed), sent after this node's
 * earlier calls, so its own releases are already counted out. */
static void r_topic_in_use(coord *base, const char *topic, coord_used_cb *cb, void *cb_data) {
    coord_redis *r = (coord_redis *)base;
    if (!r->up || !r->cmd_ready) {
        cb(cb_data, -1);
        return;
    }
    used_req *q = xmalloc(sizeof(*q));
    q->cb = cb;
    q->cb_data = cb_data;
    coord_cmd b;
    coord_cmd_init(&b);
    coord_arg_str(&b, "SCARD");
    coord_arg_topic_key(&b, topic, strlen(topic));
    if (coord_cmd_send(r->cmd, &b, used_reply, q) != REDIS_OK) {
        free(q);
        cb(cb_data, -1);
    }
}

/* ---------------------------------------------------------- the backend */

static int r_up(coord *base) {
    return ((coord_redis *)base)->up;
}

static void r_free(coord *base) {
    coord_redis *r = (coord_redis *)base;
    if (!r) return;
    r->freeing = 1;
    coord_redis_nodes_stop(r);    /* the liveness key's DEL is queued first, */
    coord_redis_conn_close(r);    /* then let out with the rest */
    coord_redis_watch_free(r);
    coord_redis_sentinel_free(r);
    free(r->password);
    free(r->node_id);
    free(r->node_addr);
    free(r->node_admin);
    free(r);
}

static const coord_backend redis_backend = {
    "redis", r_acquire, r_release, r_claim, r_renew, r_disown, r_assert,
    r_relay, r_resign, coord_redis_watch, r_up, r_topic_in_use, coord_redis_list_feeds, r_free,
};

coord *coord_redis_new(struct event_base *base, const coord_redis_opts *o, char *errstr, size_t errlen) {
    coord_redis *r = xcalloc(1, sizeof(*r) + COORD_NSCRIPTS * sizeof(r->sha[0]));
    r->base.backend = &redis_backend;
    r->evb = base;
    char why[300];
    if (o->sentinels) {
        if (coord_redis_sentinel_init(r, o->sentinels, o->master ? o->master : "", errstr, errlen) < 0) {
            coord_redis_sentinel_free(r);
            free(r);
            return NULL;
        }
    } else if (proto_addr_split(o->addr, r->host, sizeof(r->host), &r->port, why, sizeof(why)) < 0) {
        snprintf(errstr, errlen, "--redis: %s", why);
        free(r);
        return NULL;
    }
    r->password = o->password ? xstrdup(o->password) : NULL;
    r->node_id = xstrdup(o->node_id);
    r->node_addr = xstrdup(o->node_addr);
    r->node_admin = xstrdup(o->node_admin);
    r->start_ms = o->start_ms;
    r->stats = o->stats;
    r->stats_data = o->stats_data;
    r->lease_ms = o->lease_ms;
    r->node_ttl_ms = o->node_ttl_ms;
    r->reap_interval_ms = o->reap_interval_ms;
    r->timeout_ms = o->timeout_ms ? o->timeout_ms : 1500;
    coord_redis_new_incarnation(r);
    if (coord_redis_conn_init(r) < 0 || coord_redis_nodes_start(r) < 0) {
        snprintf(errstr, errlen, "cannot add the coordination timers to the event loop");
        r_free(&r->base);
        return NULL;
    }
    coord_redis_connect(r);
    return &r->base;
}
