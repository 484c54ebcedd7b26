/* coord_redis.c -- the cluster coordination backend: counts, leases, relay and reaping in Redis via hiredis async. */
#include <event2/event.h>
#include <hiredis/adapters/libevent.h>
#include <hiredis/async.h>
#include <hiredis/hiredis.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "coord/coord.h"
#include "coord_scripts.h"

#define RECONNECT_MS 250
#define MAX_ARGS (8 + 2 * COORD_MAX_OFFSETS)

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
    int cmd_ready, sub_ready;     /* connected and authenticated */
    int up;                       /* both ready, as last reported */
    int self_reaped;              /* a previous process with our id was cleaned up */
    struct event *reconnect_ev;
    struct event *node_ev;        /* liveness key refresh */
    struct event *reap_ev;
    watch *watches;
    int freeing;
} coord_redis;

enum { CALL_OTHER = 0, CALL_RELEASE = 1, CALL_ACQUIRE = 2 };

/* A call in flight: completes the caller's callback exactly once. */
typedef struct call {
    coord_redis *r;
    coord_cb *cb;
    void *cb_data;
    int kind;                     /* CALL_*: how the status is derived */
} call;

static void schedule_reconnect(coord_redis *r);
static void set_up(coord_redis *r, int up);

/* ------------------------------------------------------------ helpers */

static char *feed_key(const char *name, size_t nlen, const char *suffix, size_t *len) {
    size_t sl = strlen(suffix);
    char *k = malloc(14 + nlen + 2 + sl + 1);
    if (!k) abort();
    memcpy(k, "subway:feed:{", 13);
    memcpy(k + 13, name, nlen);
    memcpy(k + 13 + nlen, "}:", 2);
    memcpy(k + 15 + nlen, suffix, sl + 1);
    *len = 15 + nlen + sl;
    return k;
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

static long long reply_int(redisReply *e) {
    if (!e) return 0;
    if (e->type == REDIS_REPLY_INTEGER) return e->integer;
    if (e->type == REDIS_REPLY_STRING) return atoll(e->str);
    return 0;
}

/* Every feed script answers {count, nodes, owner, offsets, mine}. */
static void script_reply(redisAsyncContext *ac, void *reply, void *privdata) {
    call *c = privdata;
    coord_redis *r = c->r;
    redisReply *rep = reply;
    if (!rep || rep->type == REDIS_REPLY_ERROR || rep->type != REDIS_REPLY_ARRAY || rep->elements < 5) {
        char why[256];
        snprintf(why, sizeof(why), "redis: %s", !rep ? "connection lost" : rep->type == REDIS_REPLY_ERROR ? rep->str : "unexpected reply");
        fail_cb(c->cb, c->cb_data, why);
        free(c);
        return;
    }
    static int64_t offs[2 * COORD_MAX_OFFSETS];
    size_t n = 0;
    redisReply *o = rep->element[3];
    for (size_t i = 0; o->type == REDIS_REPLY_ARRAY && i + 1 < o->elements && n < COORD_MAX_OFFSETS; i += 2, n++) {
        offs[2 * n] = reply_int(o->element[i]);
        offs[2 * n + 1] = reply_int(o->element[i + 1]);
    }
    const char *owner = rep->element[2]->type == REDIS_REPLY_STRING ? rep->element[2]->str : "";
    coord_result res = {.status = COORD_OK, .count = (long)reply_int(rep->element[0]),
                        .nodes = (long)reply_int(rep->element[1]), .own = strcmp(owner, r->node_id) == 0,
                        .owner = owner, .offsets = offs, .noffsets = n};
    long long mine = reply_int(rep->element[4]);
    if (c->kind == CALL_RELEASE && res.count == 0) res.status = COORD_LAST;
    if (c->kind == CALL_ACQUIRE && res.count == 1 && mine == 1) res.status = COORD_FIRST;
    /* Keep the node's feed index: reapers find its contributions there. */
    c->cb(c->cb_data, &res);
    free(c);
}

/* Runs script over the feed's keys (suffixes) with extra arguments. */
static void run_script(coord_redis *r, const char *script, const coord_feed *f, const char *const *suffixes,
                       int nkeys, const char **args, size_t *arglens, int nargs, int kind, coord_cb *cb,
                       void *cb_data) {
    if (!r->up || !r->cmd_ready) {
        fail_cb(cb, cb_data, "redis: not connected");
        return;
    }
    size_t nlen = coord_feed_name_len(f);
    char name[nlen + 1];
    coord_feed_name(f, name);
    call *c = malloc(sizeof(*c));
    if (!c) abort();
    c->r = r;
    c->cb = cb;
    c->cb_data = cb_data;
    c->kind = kind;
    const char *argv[MAX_ARGS];
    size_t argl[MAX_ARGS];
    char *keys[4];
    char nk[16];
    int argc = 0;
    argv[argc] = "EVAL", argl[argc++] = 4;
    argv[argc] = script, argl[argc++] = strlen(script);
    snprintf(nk, sizeof(nk), "%d", nkeys);
    argv[argc] = nk, argl[argc++] = strlen(nk);
    for (int i = 0; i < nkeys; i++) {
        keys[i] = feed_key(name, nlen, suffixes[i], &argl[argc]);
        argv[argc++] = keys[i];
    }
    for (int i = 0; i < nargs; i++) argv[argc] = args[i], argl[argc++] = arglens ? arglens[i] : strlen(args[i]);
    int rc = redisAsyncCommandArgv(r->cmd, script_reply, c, argc, argv, argl);
    for (int i = 0; i < nkeys; i++) free(keys[i]);
    if (rc != REDIS_OK) {
        fail_cb(cb, cb_data, "redis: not connected");
        free(c);
    }
}

static const char *const K_NCOO[] = {"nodes", "count", "owner", "offsets"};

static void channel_of(const coord_feed *f, const char *kind, char **out, size_t *len) {
    size_t nlen = coord_feed_name_len(f);
    char *name = malloc(nlen + 1);
    if (!name) abort();
    coord_feed_name(f, name);
    *out = feed_key(name, nlen, kind, len);
    free(name);
}

static void r_acquire(coord *base, const coord_feed *f, coord_cb *cb, void *cb_data) {
    coord_redis *r = (coord_redis *)base;
    char lease[32], *ctl;
    size_t ctl_len;
    snprintf(lease, sizeof(lease), "%llu", (unsigned long long)r->lease_ms);
    channel_of(f, "ctl", &ctl, &ctl_len);
    size_t nlen = coord_feed_name_len(f);
    char name[nlen + 1];
    coord_feed_name(f, name);
    const char *args[] = {r->node_id, lease, ctl, name};
    size_t lens[] = {strlen(r->node_id), strlen(lease), ctl_len, nlen};
    if (r->up) {
        char key[300];
        snprintf(key, sizeof(key), "subway:node:%s:feeds", r->node_id);
        redisAsyncCommand(r->cmd, NULL, NULL, "SADD %s %b", key, name, nlen);
    }
    run_script(r, coord_script_acquire, f, K_NCOO, 4, args, lens, 4, CALL_ACQUIRE, cb, cb_data);
    free(ctl);
}

static void r_release(coord *base, const coord_feed *f, long local_after, coord_cb *cb, void *cb_data) {
    coord_redis *r = (coord_redis *)base;
    char *ctl;
    size_t ctl_len;
    channel_of(f, "ctl", &ctl, &ctl_len);
    size_t nlen = coord_feed_name_len(f);
    char name[nlen + 1];
    coord_feed_name(f, name);
    const char *args[] = {r->node_id, ctl, name};
    size_t lens[] = {strlen(r->node_id), ctl_len, nlen};
    run_script(r, coord_script_release, f, K_NCOO, 3, args, lens, 3, CALL_RELEASE, cb, cb_data);
    if (local_after == 0 && r->up) {
        /* The node's feed index: sent in pipeline order right after the
         * release (a later acquire's SADD follows it), never from a reply,
         * which could arrive after a new subscription re-added the feed. */
        char key[300];
        snprintf(key, sizeof(key), "subway:node:%s:feeds", r->node_id);
        redisAsyncCommand(r->cmd, NULL, NULL, "SREM %s %b", key, name, nlen);
    }
    free(ctl);
}

static void r_claim(coord *base, const coord_feed *f, int announce, coord_cb *cb, void *cb_data) {
    coord_redis *r = (coord_redis *)base;
    char lease[32], *ctl;
    size_t ctl_len;
    snprintf(lease, sizeof(lease), "%llu", (unsigned long long)r->lease_ms);
    channel_of(f, "ctl", &ctl, &ctl_len);
    const char *args[] = {r->node_id, lease, ctl, announce ? "1" : "0"};
    size_t lens[] = {strlen(r->node_id), strlen(lease), ctl_len, 1};
    run_script(r, coord_script_claim, f, K_NCOO, 4, args, lens, 4, 0, cb, cb_data);
    free(ctl);
}

static void r_renew(coord *base, const coord_feed *f, coord_cb *cb, void *cb_data) {
    coord_redis *r = (coord_redis *)base;
    char lease[32];
    snprintf(lease, sizeof(lease), "%llu", (unsigned long long)r->lease_ms);
    const char *args[] = {r->node_id, lease};
    run_script(r, coord_script_renew, f, K_NCOO, 3, args, NULL, 2, 0, cb, cb_data);
}

static void r_disown(coord *base, const coord_feed *f, coord_cb *cb, void *cb_data) {
    coord_redis *r = (coord_redis *)base;
    const char *args[] = {r->node_id};
    run_script(r, coord_script_disown, f, K_NCOO, 4, args, NULL, 1, 0, cb, cb_data);
}

static void r_assert(coord *base, const coord_feed *f, long local, int own, coord_cb *cb, void *cb_data) {
    coord_redis *r = (coord_redis *)base;
    char lease[32], loc[32], *ctl;
    size_t ctl_len;
    snprintf(lease, sizeof(lease), "%llu", (unsigned long long)r->lease_ms);
    snprintf(loc, sizeof(loc), "%ld", local);
    channel_of(f, "ctl", &ctl, &ctl_len);
    size_t nlen = coord_feed_name_len(f);
    char name[nlen + 1];
    coord_feed_name(f, name);
    const char *args[] = {r->node_id, loc, lease, ctl, own ? "1" : "0", name};
    size_t lens[] = {strlen(r->node_id), strlen(loc), strlen(lease), ctl_len, 1, nlen};
    if (local > 0) {
        char key[300];
        snprintf(key, sizeof(key), "subway:node:%s:feeds", r->node_id);
        redisAsyncCommand(r->cmd, NULL, NULL, "SADD %s %b", key, name, nlen);
    }
    run_script(r, coord_script_assert, f, K_NCOO, 4, args, lens, 6, 0, cb, cb_data);
    free(ctl);
}

static void r_relay(coord *base, const coord_feed *f, const char *data, size_t len, const int64_t *offsets,
                    size_t noffsets) {
    coord_redis *r = (coord_redis *)base;
    if (!r->up) return;           /* nobody can hear it anyway; offsets catch up next batch */
    size_t nlen = coord_feed_name_len(f);
    char name[nlen + 1];
    coord_feed_name(f, name);
    size_t klen, chlen;
    char *okey = feed_key(name, nlen, "offsets", &klen);
    char *ch = feed_key(name, nlen, "relay", &chlen);
    const char *argv[MAX_ARGS];
    size_t argl[MAX_ARGS];
    static char nums[2 * COORD_MAX_OFFSETS][24];
    int argc = 0;
    argv[argc] = "EVAL", argl[argc++] = 4;
    argv[argc] = coord_script_relay, argl[argc++] = strlen(coord_script_relay);
    argv[argc] = "1", argl[argc++] = 1;
    argv[argc] = okey, argl[argc++] = klen;
    argv[argc] = ch, argl[argc++] = chlen;
    argv[argc] = data, argl[argc++] = len;
    for (size_t i = 0; i < 2 * noffsets && argc < MAX_ARGS; i++) {
        snprintf(nums[i], sizeof(nums[i]), "%lld", (long long)offsets[i]);
        argv[argc] = nums[i], argl[argc++] = strlen(nums[i]);
    }
    redisAsyncCommandArgv(r->cmd, NULL, NULL, argc, argv, argl);
    free(okey);
    free(ch);
}

/* ------------------------------------------------------------- pub/sub */

static void sub_message(redisAsyncContext *ac, void *reply, void *privdata) {
    coord_redis *r = privdata;
    redisReply *rep = reply;
    if (!rep || rep->type != REDIS_REPLY_ARRAY || rep->elements != 3) return;
    if (rep->element[0]->type != REDIS_REPLY_STRING || strcmp(rep->element[0]->str, "message") != 0) return;
    redisReply *ch = rep->element[1], *msg = rep->element[2];
    coord_feed f;
    char topic[256];
    const char *kind;
    if (parse_channel(ch->str, (size_t)ch->len, &f, topic, sizeof(topic), &kind) < 0) return;
    if (strcmp(kind, "relay") == 0) {
        if (r->base.ev.relay) r->base.ev.relay(r->base.ev.cb_data, &f, msg->str, (size_t)msg->len);
        return;
    }
    /* "join NODE NODES" / "leave NODE NODES" */
    char what[8], node[200];
    long nodes;
    if (r->base.ev.notice && sscanf(msg->str, "%7s %199s %ld", what, node, &nodes) == 3)
        r->base.ev.notice(r->base.ev.cb_data, &f, strcmp(what, "join") == 0 ? COORD_JOIN : COORD_LEAVE, node, nodes);
}

static void send_watch(coord_redis *r, const watch *w, const char *verb, coord_watch_kind kind) {
    if (!r->sub_ready || kind == COORD_WATCH_NONE) return;
    size_t len;
    char *ch = feed_key(w->name, w->len, kind == COORD_WATCH_RELAY ? "relay" : "ctl", &len);
    redisAsyncCommand(r->sub, sub_message, r, "%s %b", verb, ch, len);
    free(ch);
}

static void r_watch(coord *base, const coord_feed *f, coord_watch_kind kind) {
    coord_redis *r = (coord_redis *)base;
    size_t nlen = coord_feed_name_len(f);
    watch **pp = &r->watches;
    for (; *pp; pp = &(*pp)->next) {
        if ((*pp)->len != nlen) continue;
        char name[nlen + 1];
        coord_feed_name(f, name);
        if (memcmp((*pp)->name, name, nlen) == 0) break;
    }
    watch *w = *pp;
    if (w && w->kind == kind) return;
    if (w) {
        send_watch(r, w, "UNSUBSCRIBE", w->kind);
        if (kind == COORD_WATCH_NONE) {
            *pp = w->next;
            free(w);
            return;
        }
        w->kind = kind;
    } else {
        if (kind == COORD_WATCH_NONE) return;
        w = malloc(sizeof(*w) + nlen + 1);
        if (!w) abort();
        coord_feed_name(f, w->name);
        w->len = nlen;
        w->kind = kind;
        w->next = r->watches;
        r->watches = w;
    }
    send_watch(r, w, "SUBSCRIBE", kind);
}

/* ------------------------------------------------------------ node keys */

static void register_node(coord_redis *r) {
    if (!r->cmd_ready) return;
    char key[300], ttl[32];
    snprintf(key, sizeof(key), "subway:node:%s", r->node_id);
    snprintf(ttl, sizeof(ttl), "%llu", (unsigned long long)r->node_ttl_ms);
    long conns = 0, feeds = 0;
    if (r->stats) r->stats(r->stats_data, &conns, &feeds);
    redisAsyncCommand(r->cmd, NULL, NULL,
                      "HSET %s addr %s admin %s pid %d version %s started_ms %llu connections %ld feeds %ld", key,
                      r->node_addr, r->node_admin, (int)getpid(), SUBWAY_VERSION, (unsigned long long)r->start_ms,
                      conns, feeds);
    redisAsyncCommand(r->cmd, NULL, NULL, "PEXPIRE %s %s", key, ttl);
    redisAsyncCommand(r->cmd, NULL, NULL, "SADD subway:nodes %s", r->node_id);
}

static void node_tick(evutil_socket_t fd, short what, void *arg) {
    register_node(arg);
}

/* Reaping: subway:nodes -> each node without its liveness key -> each feed
 * in its feed set -> reap.lua; then its keys go. Any node may do it, and
 * several at once are harmless: the script subtracts only once. */
typedef struct reap_ctx {
    coord_redis *r;
    char node[200];
} reap_ctx;

static void reap_feeds(redisAsyncContext *ac, void *reply, void *privdata) {
    reap_ctx *x = privdata;
    coord_redis *r = x->r;
    redisReply *rep = reply;
    if (rep && rep->type == REDIS_REPLY_ARRAY && r->cmd_ready) {
        for (size_t i = 0; i < rep->elements; i++) {
            redisReply *e = rep->element[i];
            size_t l1, l2, l3, l4;
            char *k1 = feed_key(e->str, (size_t)e->len, "nodes", &l1);
            char *k2 = feed_key(e->str, (size_t)e->len, "count", &l2);
            char *k3 = feed_key(e->str, (size_t)e->len, "owner", &l3);
            char *ch = feed_key(e->str, (size_t)e->len, "ctl", &l4);
            const char *argv[] = {"EVAL", coord_script_reap, "3", k1, k2, k3, x->node, ch, e->str};
            size_t argl[] = {4, strlen(coord_script_reap), 1, l1, l2, l3, strlen(x->node), l4, (size_t)e->len};
            redisAsyncCommandArgv(r->cmd, NULL, NULL, 9, argv, argl);
            free(k1), free(k2), free(k3), free(ch);
        }
        redisAsyncCommand(r->cmd, NULL, NULL, "DEL subway:node:%s:feeds", x->node);
        if (strcmp(x->node, r->node_id) != 0) redisAsyncCommand(r->cmd, NULL, NULL, "SREM subway:nodes %s", x->node);
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
    /* A refused command never calls back: then x is freed here. */
    if (rep && rep->type == REDIS_REPLY_INTEGER && rep->integer == 0 && x->r->cmd_ready &&
        redisAsyncCommand(x->r->cmd, reap_feeds, x, "SMEMBERS subway:node:%s:feeds", x->node) == REDIS_OK)
        return;
    free(x);
}

static void reap_nodes(redisAsyncContext *ac, void *reply, void *privdata) {
    coord_redis *r = privdata;
    redisReply *rep = reply;
    if (!rep || rep->type != REDIS_REPLY_ARRAY || !r->cmd_ready) return;
    for (size_t i = 0; i < rep->elements; i++) {
        const char *id = rep->element[i]->str;
        if (strcmp(id, r->node_id) == 0 || strlen(id) >= sizeof(((reap_ctx *)0)->node)) continue;
        reap_ctx *x = malloc(sizeof(*x));
        if (!x) abort();
        x->r = r;
        snprintf(x->node, sizeof(x->node), "%s", id);
        if (redisAsyncCommand(r->cmd, reap_check, x, "EXISTS subway:node:%s", id) != REDIS_OK) free(x);
    }
}

static void reap_tick(evutil_socket_t fd, short what, void *arg) {
    coord_redis *r = arg;
    if (r->cmd_ready) redisAsyncCommand(r->cmd, reap_nodes, r, "SMEMBERS subway:nodes");
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
    reap_ctx *x = malloc(sizeof(*x));
    if (!x) abort();
    x->r = r;
    snprintf(x->node, sizeof(x->node), "%s", r->node_id);
    if (redisAsyncCommand(r->cmd, reap_feeds, x, "SMEMBERS subway:node:%s:feeds", x->node) != REDIS_OK) free(x);
}

static void auth_reply(redisAsyncContext *ac, void *reply, void *privdata) {
    coord_redis *r = privdata;
    redisReply *rep = reply;
    if (!rep || rep->type == REDIS_REPLY_ERROR) {
        fprintf(stderr, "subway: warn: redis AUTH failed: %s\n", rep ? rep->str : "connection lost");
        return;
    }
    if (ac == r->cmd) r->cmd_ready = 1;
    if (ac == r->sub) r->sub_ready = 1;
    if (!r->cmd_ready || !r->sub_ready) return;
    if (r->self_reaped)
        set_up(r, 1);
    else
        self_reap(r);
}

/* One connection is gone (hiredis frees it). The store counts as down until
 * both are back; then the state is re-asserted. A connected partner is
 * dropped too, so both reconnect to the same server; one still connecting
 * is left alone (hiredis would free it without a callback). */
static void conn_lost(coord_redis *r, const redisAsyncContext *ac) {
    if (ac == r->cmd) {
        r->cmd = NULL;
        r->cmd_ready = 0;
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

static long r_count(coord *base, const coord_feed *f) {
    return -1;                    /* feeds keep the last count they heard */
}

static void r_free(coord *base) {
    coord_redis *r = (coord_redis *)base;
    if (!r) return;
    r->freeing = 1;
    if (r->cmd && r->cmd_ready) {
        /* Leave quickly: without the liveness key the others reap this
         * node's remaining counts and leases at once. Let queued
         * commands (the releases of closed connections) go out first. */
        redisAsyncCommand(r->cmd, NULL, NULL, "DEL subway:node:%s", r->node_id);
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
    r_relay, r_watch, r_up, r_count, r_free,
};

static struct timeval ms_tv(uint64_t ms) {
    return (struct timeval){(time_t)(ms / 1000), (suseconds_t)(ms % 1000) * 1000};
}

coord *coord_redis_new(struct event_base *base, const coord_redis_opts *o, char *errstr, size_t errlen) {
    coord_redis *r = calloc(1, sizeof(*r));
    if (!r) {
        snprintf(errstr, errlen, "out of memory");
        return NULL;
    }
    r->base.backend = &redis_backend;
    r->evb = base;
    const char *colon = strrchr(o->addr, ':');
    if (!colon || colon == o->addr || (size_t)(colon - o->addr) >= sizeof(r->host) || atoi(colon + 1) <= 0) {
        snprintf(errstr, errlen, "--redis: '%s' is not HOST:PORT", o->addr);
        free(r);
        return NULL;
    }
    memcpy(r->host, o->addr, (size_t)(colon - o->addr));
    r->port = atoi(colon + 1);
    r->password = o->password ? strdup(o->password) : NULL;
    r->node_id = strdup(o->node_id);
    r->node_addr = strdup(o->node_addr);
    r->node_admin = strdup(o->node_admin);
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
    if (!r->node_id || !r->node_addr || !r->node_admin || !r->reconnect_ev || !r->node_ev || !r->reap_ev ||
        event_add(r->node_ev, &node_tv) < 0 || event_add(r->reap_ev, &reap_tv) < 0) {
        snprintf(errstr, errlen, "out of memory");
        r_free(&r->base);
        return NULL;
    }
    reconnect_cb(-1, 0, r);
    return &r->base;
}
