/* coord_redis.c -- the cluster coordination backend: counts, leases, relay and reaping in Redis via hiredis async. */
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
#include <event2/event.h>
#include <hiredis/adapters/libevent.h>
#include <hiredis/async.h>
#include <hiredis/hiredis.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "broker/xmalloc.h"
#include "coord/coord.h"
#include "coord/coord_cmd.h"
#include "coord_scripts.h"
#include "proto/addr.h"

#define RECONNECT_MS 250
#define NODES_KEY "subway:nodes"  /* registered nodes: what reapers scan */

/* One watched feed: which of its channels this node listens to. */
typedef struct watch {
    struct watch *next;
    coord_watch_kind kind;
    size_t len;
    char name[];                  /* feed name, topic/key */
} watch;

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
    char sha[COORD_NSCRIPTS][41]; /* each script's SHA1, from SCRIPT LOAD */
    int loads_pending;            /* SCRIPT LOAD replies still to come on cmd */
    int load_failed;              /* one of them was an error */
    uint64_t seq;                 /* script calls sent on cmd (first sends only) */
    uint64_t replay_fence;        /* seq when the last NOSCRIPT re-send went out */
    int replays;                  /* re-sent calls whose replies are still to come */
    struct event *reconnect_ev;
    struct event *node_ev;        /* liveness key refresh */
    struct event *reap_ev;
    watch *watches;
    int freeing;
} coord_redis;

static void schedule_reconnect(coord_redis *r);
static void set_up(coord_redis *r, int up);

/* The feed's name, "topic/key" (heap, NUL-terminated); *len gets its length. */
static char *feed_name_dup(const coord_feed *f, size_t *len) {
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

/* Splits a channel "subway:feed:{topic/key}:kind" into f (pointing into
 * topic_buf and the channel) and the kind; returns 0 or -1. */
static int parse_channel(const char *ch, size_t len, coord_feed *f, char *topic_buf, size_t tbuf, const char **kind) {
    if (len < 16 || memcmp(ch, "subway:feed:{", 13) != 0) return -1;
    const char *end = NULL;
    for (size_t i = len; i-- > 13;)
        if (ch[i] == '}' && i + 1 < len && ch[i + 1] == ':') {
            end = ch + i;
            break;
        }
    if (!end) return -1;
    const char *name = ch + 13;
    const char *slash = memchr(name, '/', (size_t)(end - name));
    if (!slash || (size_t)(slash - name) >= tbuf) return -1;
    memcpy(topic_buf, name, (size_t)(slash - name));
    topic_buf[slash - name] = '\0';
    f->topic = topic_buf;
    f->key = slash + 1;
    f->key_len = (size_t)(end - slash - 1);
    f->wildcard = f->key_len == 1 && f->key[0] == '*';
    if (f->wildcard) f->key_len = 0;
    *kind = end + 2;
    return 0;
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
    CALL_RELAY,                   /* nobody waits, nothing to read */
};

/* A script call in flight: completes the caller's callback (if any) exactly
 * once, and keeps its arguments until then for a NOSCRIPT re-send. */
typedef struct call {
    coord_redis *r;
    int script;                   /* COORD_SCRIPT_* */
    int kind;                     /* CALL_* */
    coord_cb *cb;                 /* NULL when nobody waits */
    void *cb_data;
    uint64_t seq;                 /* send order (first sends) */
    int resent;                   /* went out again with EVAL */
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

/* Adds numkeys and the feed's keys with these suffixes. */
static void call_keys(call *c, const char *name, size_t nlen, const char *const *suffixes, int nkeys) {
    coord_arg_num(&c->b, nkeys);
    for (int i = 0; i < nkeys; i++) coord_arg_feed_key(&c->b, name, nlen, suffixes[i]);
}

static void call_free(call *c) {
    free(c->b.p);
    free(c);
}

static void call_fail(call *c, const char *why) {
    if (c->cb) fail_cb(c->cb, c->cb_data, why);
    call_free(c);
}

static void script_reply(redisAsyncContext *ac, void *reply, void *privdata);

/* Sends the call: EVALSHA the first time, EVAL with the script's text when
 * re-sent. Returns REDIS_OK or REDIS_ERR. */
static int call_send(call *c) {
    coord_redis *r = c->r;
    size_t alen = c->b.len - COORD_CMD_HEAD_ROOM;
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

static void load_scripts(coord_redis *r);

/* NOSCRIPT: the server lost its scripts. Reload them all for the calls to
 * come, and send this one again with its text. */
static void call_replay(call *c) {
    coord_redis *r = c->r;
    if (!r->loads_pending) load_scripts(r);
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
    coord_result res = {.status = COORD_OK, .count = (long)reply_int(rep->element[0]),
                        .nodes = (long)reply_int(rep->element[1]), .own = strcmp(owner, r->node_id) == 0,
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
    if (c->resent) {
        r->replays--;
    } else if (rep && rep->type == REDIS_REPLY_ERROR && strncmp(rep->str, "NOSCRIPT", 8) == 0) {
        call_replay(c);
        return;
    } else if (rep && r->replays > 0 && c->seq <= r->replay_fence && ac == r->cmd) {
        /* This call ran before an earlier one still being re-sent. */
        fprintf(stderr, "subway: warn: redis: scripts ran out of order after NOSCRIPT; reconnecting to re-assert\n");
        redisAsyncDisconnect(ac);
    }
    if (!rep || rep->type == REDIS_REPLY_ERROR) {
        char why[256];
        snprintf(why, sizeof(why), "redis: %s", !rep ? "connection lost" : rep->str);
        call_fail(c, why);
        return;
    }
    if (c->kind == CALL_RELAY) {
        call_free(c);
    } else if (c->kind == CALL_REAP) {
        if (rep->type == REDIS_REPLY_ARRAY && rep->elements >= 2) call_demand(c, rep->element[1]);
        call_free(c);
    } else {
        feed_reply(c, rep);
    }
}

/* ------------------------------------------------------------ feed calls */

static const char *const K_NCOO[] = {"nodes", "count", "owner", "offsets"};

/* Refuses a call while the store is down; 1 when refused. */
static int refuse(coord_redis *r, coord_cb *cb, void *cb_data) {
    if (r->up && r->cmd_ready) return 0;
    fail_cb(cb, cb_data, "redis: not connected");
    return 1;
}

static void r_acquire(coord *base, const coord_feed *f, coord_cb *cb, void *cb_data) {
    coord_redis *r = (coord_redis *)base;
    if (refuse(r, cb, cb_data)) return;
    size_t nlen;
    char *name = feed_name_dup(f, &nlen);
    index_feed(r, "SADD", r->node_id, name, nlen);
    call *c = call_new(r, COORD_SCRIPT_ACQUIRE, CALL_ACQUIRE, name, nlen, f->wildcard, cb, cb_data);
    call_keys(c, name, nlen, K_NCOO, 4);
    coord_arg_str(&c->b, r->node_id);
    coord_arg_num(&c->b, (long long)r->lease_ms);
    coord_arg_feed_key(&c->b, name, nlen, "ctl");
    coord_arg(&c->b, name, nlen);
    call_start(c);
    free(name);
}

static void r_release(coord *base, const coord_feed *f, long local_after, coord_cb *cb, void *cb_data) {
    coord_redis *r = (coord_redis *)base;
    if (refuse(r, cb, cb_data)) return;
    size_t nlen;
    char *name = feed_name_dup(f, &nlen);
    call *c = call_new(r, COORD_SCRIPT_RELEASE, CALL_RELEASE, name, nlen, f->wildcard, cb, cb_data);
    call_keys(c, name, nlen, K_NCOO, 3);
    coord_arg_str(&c->b, r->node_id);
    coord_arg_feed_key(&c->b, name, nlen, "ctl");
    coord_arg(&c->b, name, nlen);
    call_start(c);
    /* Sent in pipeline order right after the release (a later acquire's
     * SADD follows it), never from a reply, which could arrive after a new
     * subscription re-added the feed. */
    if (local_after == 0 && r->cmd_ready) index_feed(r, "SREM", r->node_id, name, nlen);
    free(name);
}

static void r_claim(coord *base, const coord_feed *f, int announce, coord_cb *cb, void *cb_data) {
    coord_redis *r = (coord_redis *)base;
    if (refuse(r, cb, cb_data)) return;
    size_t nlen;
    char *name = feed_name_dup(f, &nlen);
    call *c = call_new(r, COORD_SCRIPT_CLAIM, CALL_OTHER, name, nlen, f->wildcard, cb, cb_data);
    call_keys(c, name, nlen, K_NCOO, 4);
    coord_arg_str(&c->b, r->node_id);
    coord_arg_num(&c->b, (long long)r->lease_ms);
    coord_arg_feed_key(&c->b, name, nlen, "ctl");
    coord_arg_str(&c->b, announce ? "1" : "0");
    call_start(c);
    free(name);
}

static void r_renew(coord *base, const coord_feed *f, coord_cb *cb, void *cb_data) {
    coord_redis *r = (coord_redis *)base;
    if (refuse(r, cb, cb_data)) return;
    size_t nlen;
    char *name = feed_name_dup(f, &nlen);
    call *c = call_new(r, COORD_SCRIPT_RENEW, CALL_OTHER, name, nlen, f->wildcard, cb, cb_data);
    call_keys(c, name, nlen, K_NCOO, 3);
    coord_arg_str(&c->b, r->node_id);
    coord_arg_num(&c->b, (long long)r->lease_ms);
    call_start(c);
    free(name);
}

static void r_disown(coord *base, const coord_feed *f, coord_cb *cb, void *cb_data) {
    coord_redis *r = (coord_redis *)base;
    if (refuse(r, cb, cb_data)) return;
    size_t nlen;
    char *name = feed_name_dup(f, &nlen);
    call *c = call_new(r, COORD_SCRIPT_DISOWN, CALL_OTHER, name, nlen, f->wildcard, cb, cb_data);
    call_keys(c, name, nlen, K_NCOO, 4);
    coord_arg_str(&c->b, r->node_id);
    call_start(c);
    free(name);
}

static void r_assert(coord *base, const coord_feed *f, long local, int own, coord_cb *cb, void *cb_data) {
    coord_redis *r = (coord_redis *)base;
    if (refuse(r, cb, cb_data)) return;
    size_t nlen;
    char *name = feed_name_dup(f, &nlen);
    if (local > 0) index_feed(r, "SADD", r->node_id, name, nlen);
    call *c = call_new(r, COORD_SCRIPT_ASSERT, CALL_OTHER, name, nlen, f->wildcard, cb, cb_data);
    call_keys(c, name, nlen, K_NCOO, 4);
    coord_arg_str(&c->b, r->node_id);
    coord_arg_num(&c->b, local);
    coord_arg_num(&c->b, (long long)r->lease_ms);
    coord_arg_feed_key(&c->b, name, nlen, "ctl");
    coord_arg_str(&c->b, own ? "1" : "0");
    coord_arg(&c->b, name, nlen);
    call_start(c);
    /* Holding none: drop index entries a release lost while the store was away. */
    if (local <= 0 && r->cmd_ready) index_feed(r, "SREM", r->node_id, name, nlen);
    free(name);
}

static void r_relay(coord *base, const coord_feed *f, const char *data, size_t len, const int64_t *offsets,
                    size_t noffsets) {
    coord_redis *r = (coord_redis *)base;
    if (!r->up || !r->cmd_ready) return;  /* nobody can hear it anyway; offsets catch up next batch */
    size_t nlen;
    char *name = feed_name_dup(f, &nlen);
    call *c = call_new(r, COORD_SCRIPT_RELAY, CALL_RELAY, name, nlen, f->wildcard, NULL, NULL);
    static const char *const K_OFFSETS[] = {"offsets"};
    call_keys(c, name, nlen, K_OFFSETS, 1);
    coord_arg_feed_key(&c->b, name, nlen, "relay");
    coord_arg(&c->b, data, len);
    if (noffsets > COORD_MAX_OFFSETS) noffsets = COORD_MAX_OFFSETS;
    for (size_t i = 0; i < 2 * noffsets; i++) coord_arg_num(&c->b, (long long)offsets[i]);
    call_start(c);
    free(name);
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

/* ------------------------------------------------------------- pub/sub */

static void sub_message(redisAsyncContext *ac, void *reply, void *privdata) {
    coord_redis *r = privdata;
    redisReply *rep = reply;
    if (!rep || rep->type != REDIS_REPLY_ARRAY || rep->elements != 3) return;
    if (rep->element[0]->type != REDIS_REPLY_STRING || strcmp(rep->element[0]->str, "message") != 0) return;
    redisReply *ch = rep->element[1], *msg = rep->element[2];
    if (ch->type != REDIS_REPLY_STRING || msg->type != REDIS_REPLY_STRING) return;
    coord_feed f;
    char topic[256];              /* Kafka topic names are at most 249 bytes */
    const char *kind;
    if (parse_channel(ch->str, (size_t)ch->len, &f, topic, sizeof(topic), &kind) < 0) return;
    if (strcmp(kind, "relay") == 0) {
        if (r->base.ev.relay) r->base.ev.relay(r->base.ev.cb_data, &f, msg->str, (size_t)msg->len);
        return;
    }
    /* "join NODE NODES" / "leave NODE NODES" */
    const char *sp1 = memchr(msg->str, ' ', (size_t)msg->len), *sp2 = memrchr(msg->str, ' ', (size_t)msg->len);
    if (!r->base.ev.notice || !sp1 || sp2 <= sp1 + 1) return;
    char *node = xstrndup(sp1 + 1, (size_t)(sp2 - sp1 - 1));
    coord_notice what = sp1 - msg->str == 4 && memcmp(msg->str, "join", 4) == 0 ? COORD_JOIN : COORD_LEAVE;
    r->base.ev.notice(r->base.ev.cb_data, &f, what, node, strtol(sp2 + 1, NULL, 10));
    free(node);
}

static void send_watch(coord_redis *r, const watch *w, const char *verb, coord_watch_kind kind) {
    if (!r->sub_ready || kind == COORD_WATCH_NONE) return;
    coord_cmd b;
    coord_cmd_init(&b);
    coord_arg_str(&b, verb);
    coord_arg_feed_key(&b, w->name, w->len, kind == COORD_WATCH_RELAY ? "relay" : "ctl");
    coord_cmd_send(r->sub, &b, sub_message, r);
}

static void r_watch(coord *base, const coord_feed *f, coord_watch_kind kind) {
    coord_redis *r = (coord_redis *)base;
    size_t nlen;
    char *name = feed_name_dup(f, &nlen);
    watch **pp = &r->watches;
    for (; *pp; pp = &(*pp)->next)
        if ((*pp)->len == nlen && memcmp((*pp)->name, name, nlen) == 0) break;
    watch *w = *pp;
    if (w && w->kind == kind) goto out;
    if (w) {
        send_watch(r, w, "UNSUBSCRIBE", w->kind);
        if (kind == COORD_WATCH_NONE) {
            *pp = w->next;
            free(w);
            goto out;
        }
        w->kind = kind;
    } else {
        if (kind == COORD_WATCH_NONE) goto out;
        w = xmalloc(sizeof(*w) + nlen + 1);
        memcpy(w->name, name, nlen + 1);
        w->len = nlen;
        w->kind = kind;
        w->next = r->watches;
        r->watches = w;
    }
    send_watch(r, w, "SUBSCRIBE", kind);
out:
    free(name);
}

/* ------------------------------------------------------------ node keys */

static void register_node(coord_redis *r) {
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
    register_node(arg);
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
        static const char *const K_NCO[] = {"nodes", "count", "owner"};
        for (size_t i = 0; i < rep->elements; i++) {
            redisReply *e = rep->element[i];
            if (e->type != REDIS_REPLY_STRING) continue;
            size_t nlen = (size_t)e->len;
            /* The name alone cannot tell topic/'*' from a key "*": reaps say wildcard. */
            int wildcard = nlen >= 2 && memcmp(e->str + nlen - 2, "/*", 2) == 0;
            call *c = call_new(r, COORD_SCRIPT_REAP, CALL_REAP, e->str, nlen, wildcard, NULL, NULL);
            call_keys(c, e->str, nlen, K_NCO, 3);
            coord_arg_str(&c->b, x->node);
            coord_arg_feed_key(&c->b, e->str, nlen, "ctl");
            coord_arg(&c->b, e->str, nlen);
            call_start(c);
            index_feed(r, "SREM", x->node, e->str, nlen);
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
        set_up(r, r->cmd_ready && r->sub_ready);
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

/* ---------------------------------------------------------- connection */

static void set_up(coord_redis *r, int up) {
    if (r->up == up || r->freeing) return;
    r->up = up;
    if (up) {
        register_node(r);
        for (watch *w = r->watches; w; w = w->next) send_watch(r, w, "SUBSCRIBE", w->kind);
    }
    if (r->base.ev.state) r->base.ev.state(r->base.ev.cb_data, up);
}

/* A node restarted under the same id finds its liveness key taken over by
 * itself before anyone reaped its previous process: it reaps that one
 * itself, once, before it takes any subscription. */
static void self_reap(coord_redis *r) {
    reap_send(reap_ctx_new(r, r->node_id), "SMEMBERS", "feeds", reap_feeds);
}

/* Both connections ready: up, once our previous incarnation is reaped. */
static void conn_ready(coord_redis *r) {
    if (!r->cmd_ready || !r->sub_ready) return;
    if (r->self_reaped)
        set_up(r, 1);
    else
        self_reap(r);
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
        fprintf(stderr, "subway: warn: redis SCRIPT LOAD %s failed: %s\n",
                coord_script_name[(sha - r->sha[0]) / (int)sizeof(r->sha[0])],
                rep->type == REDIS_REPLY_ERROR ? rep->str : "unexpected reply");
        r->load_failed = 1;
    }
    if (--r->loads_pending > 0 || !rep || ac != r->cmd) return;
    if (r->load_failed) {
        redisAsyncDisconnect(ac);  /* retried with the reconnect */
    } else if (!r->cmd_ready) {
        r->cmd_ready = 1;
        conn_ready(r);
    }
}

/* Sends SCRIPT LOAD for every script (each one's text once per connection). */
static void load_scripts(coord_redis *r) {
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

static void auth_reply(redisAsyncContext *ac, void *reply, void *privdata) {
    coord_redis *r = privdata;
    redisReply *rep = reply;
    if (!rep || rep->type == REDIS_REPLY_ERROR) {
        fprintf(stderr, "subway: warn: redis AUTH failed: %s\n", rep ? rep->str : "connection lost");
        return;
    }
    if (ac == r->cmd) {
        load_scripts(r);
    } else if (ac == r->sub) {
        r->sub_ready = 1;
        conn_ready(r);
    }
}

/* One connection is gone (hiredis frees it). The store counts as down until
 * both are back; then the state is re-asserted. A connected partner is
 * dropped too, so both reconnect to the same server; one still connecting
 * is left alone (hiredis would free it without a callback). */
static void conn_lost(coord_redis *r, const redisAsyncContext *ac) {
    if (ac == r->cmd) {
        r->cmd = NULL;
        r->cmd_ready = 0;
        r->loads_pending = 0;
        r->replays = 0;
    } else if (ac == r->sub) {
        r->sub = NULL;
        r->sub_ready = 0;
    }
    if (r->freeing) return;
    set_up(r, 0);
    if (r->cmd && (r->cmd->c.flags & REDIS_CONNECTED)) redisAsyncDisconnect(r->cmd);
    if (r->sub && (r->sub->c.flags & REDIS_CONNECTED)) redisAsyncDisconnect(r->sub);
    schedule_reconnect(r);
}

static void on_connect(const redisAsyncContext *cac, int status) {
    redisAsyncContext *ac = (redisAsyncContext *)cac;
    coord_redis *r = ac->data;
    if (status != REDIS_OK) {
        /* A failed connect gets no disconnect callback. */
        conn_lost(r, ac);
        return;
    }
    if (r->password)
        redisAsyncCommand(ac, auth_reply, r, "AUTH %s", r->password);
    else
        auth_reply(ac, &(redisReply){.type = REDIS_REPLY_STATUS}, r);
}

static void on_disconnect(const redisAsyncContext *cac, int status) {
    conn_lost(cac->data, cac);
}

static redisAsyncContext *connect_one(coord_redis *r) {
    redisAsyncContext *ac = redisAsyncConnect(r->host, r->port);
    if (!ac) return NULL;
    if (ac->err) {
        redisAsyncFree(ac);
        return NULL;
    }
    ac->data = r;
    redisLibeventAttach(ac, r->evb);
    redisAsyncSetConnectCallback(ac, on_connect);
    redisAsyncSetDisconnectCallback(ac, on_disconnect);
    return ac;
}

/* Connects whichever of the two connections is missing. */
static void reconnect_cb(evutil_socket_t fd, short what, void *arg) {
    coord_redis *r = arg;
    if (!r->cmd) r->cmd = connect_one(r);
    if (!r->sub) r->sub = connect_one(r);
    if (!r->cmd || !r->sub) schedule_reconnect(r);
}

static void schedule_reconnect(coord_redis *r) {
    struct timeval tv = {0, RECONNECT_MS * 1000};
    event_add(r->reconnect_ev, &tv);
}

/* ------------------------------------------------------------ the rest */

static int r_up(coord *base) {
    return ((coord_redis *)base)->up;
}

static void r_free(coord *base) {
    coord_redis *r = (coord_redis *)base;
    if (!r) return;
    r->freeing = 1;
    if (r->cmd && r->cmd_ready) {
        /* Leave quickly: without the liveness key the others reap this
         * node's remaining counts and leases at once. Let queued
         * commands (the releases of closed connections) go out first. */
        coord_cmd b;
        coord_cmd_init(&b);
        coord_arg_str(&b, "DEL");
        coord_arg_node_key(&b, r->node_id, NULL);
        coord_cmd_send(r->cmd, &b, NULL, NULL);
        redisAsyncDisconnect(r->cmd);
        struct timeval tv = {2, 0};
        event_base_loopexit(r->evb, &tv);
        while (r->cmd) {
            if (event_base_loop(r->evb, EVLOOP_ONCE) != 0 || event_base_got_exit(r->evb)) break;
        }
    }
    if (r->cmd) redisAsyncFree(r->cmd);
    if (r->sub) redisAsyncFree(r->sub);
    if (r->reconnect_ev) event_free(r->reconnect_ev);
    if (r->node_ev) event_free(r->node_ev);
    if (r->reap_ev) event_free(r->reap_ev);
    while (r->watches) {
        watch *w = r->watches;
        r->watches = w->next;
        free(w);
    }
    free(r->password);
    free(r->node_id);
    free(r->node_addr);
    free(r->node_admin);
    free(r);
}

static const coord_backend redis_backend = {
    "redis", r_acquire, r_release, r_claim, r_renew, r_disown, r_assert,
    r_relay, r_watch, r_up, r_topic_in_use, r_free,
};

static struct timeval ms_tv(uint64_t ms) {
    return (struct timeval){(time_t)(ms / 1000), (suseconds_t)(ms % 1000) * 1000};
}

coord *coord_redis_new(struct event_base *base, const coord_redis_opts *o, char *errstr, size_t errlen) {
    coord_redis *r = xcalloc(1, sizeof(*r));
    r->base.backend = &redis_backend;
    r->evb = base;
    char why[300];
    if (proto_addr_split(o->addr, r->host, sizeof(r->host), &r->port, why, sizeof(why)) < 0) {
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
    r->reconnect_ev = event_new(base, -1, 0, reconnect_cb, r);
    r->node_ev = event_new(base, -1, EV_PERSIST, node_tick, r);
    r->reap_ev = event_new(base, -1, EV_PERSIST, reap_tick, r);
    struct timeval node_tv = ms_tv(o->node_ttl_ms / 3 ? o->node_ttl_ms / 3 : 1);
    struct timeval reap_tv = ms_tv(o->reap_interval_ms);
    if (!r->reconnect_ev || !r->node_ev || !r->reap_ev || event_add(r->node_ev, &node_tv) < 0 ||
        event_add(r->reap_ev, &reap_tv) < 0) {
        snprintf(errstr, errlen, "cannot add the coordination timers to the event loop");
        r_free(&r->base);
        return NULL;
    }
    reconnect_cb(-1, 0, r);
    return &r->base;
}
