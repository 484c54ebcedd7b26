/* coord_redis_list.c -- the cluster's feed table read from Redis a page at a time: names from every node's index, then each feed's count and owner. */
#include <hiredis/hiredis.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "broker/xmalloc.h"
#include "coord/coord_cmd.h"
#include "coord/coord_redis_int.h"

/*
 * Three rounds, each pipelined on the command connection, none of them a
 * script: a listing must never block Redis for the coordination it serves.
 *   1. HKEYS subway:nodes                      the registered nodes
 *   2. SMEMBERS subway:node:ID:feeds per node  the feeds each holds (the index
 *                                              coord_redis.c keeps), merged
 *   3. per feed of the page: GET count, GET owner, PTTL owner
 * So a page costs 1 + nodes + 3 x page commands, however many feeds exist;
 * the names of all feeds pass through the node once (sorted, so pages are
 * stable), which bounds what a listing can cost to what the indexes hold.
 */

typedef struct name {
    char *p;
    size_t len;
} name;

typedef struct list_req {
    coord_redis *r;
    coord_list_cb *cb;
    void *cb_data;
    size_t offset, limit;
    int pending;                  /* replies still due in this round */
    int failed;                   /* a reply of this round was missing or an error */
    char why[160];
    name *names;                  /* round 2: every feed name, then sorted and unique */
    size_t nnames, cap;
    coord_feed_info *page;        /* round 3 */
    char **owners;
    size_t npage;
} list_req;

static void finish(list_req *q, const char *err) {
    coord_feed_list l = {.total = q->nnames, .offset = q->offset, .feeds = q->page, .n = err ? 0 : q->npage,
                         .errstr = err};
    q->cb(q->cb_data, &l);
    for (size_t i = 0; i < q->nnames; i++) free(q->names[i].p);
    for (size_t i = 0; i < q->npage; i++) free(q->owners[i]);
    free(q->names);
    free(q->page);
    free(q->owners);
    free(q);
}

/* Notes a reply of the round; 1 when it is usable. */
static int take(list_req *q, const redisReply *rep, int type) {
    q->pending--;
    if (!rep) {
        if (!q->failed) snprintf(q->why, sizeof(q->why), "Redis connection lost during the listing");
        q->failed = 1;
        return 0;
    }
    if (rep->type == REDIS_REPLY_ERROR) {
        if (!q->failed) snprintf(q->why, sizeof(q->why), "Redis: %.120s", rep->str);
        q->failed = 1;
        return 0;
    }
    return rep->type == type;
}

static int name_cmp(const void *a, const void *b) {
    const name *x = a, *y = b;
    int c = memcmp(x->p, y->p, x->len < y->len ? x->len : y->len);
    return c ? c : (x->len > y->len) - (x->len < y->len);
}

static void send_cmd(list_req *q, coord_cmd *b, redisCallbackFn *fn) {
    if (coord_cmd_send(q->r->cmd, b, fn, q) == REDIS_OK) {
        q->pending++;
    } else if (!q->failed) {
        q->failed = 1;
        snprintf(q->why, sizeof(q->why), "Redis connection lost during the listing");
    }
}

static void info_reply(redisAsyncContext *ac, void *reply, void *privdata) {
    list_req *q = privdata;
    const redisReply *rep = reply;
    /* Replies come in the order sent: count, owner, PTTL per feed. */
    size_t done = (size_t)(3 * (int)q->npage - q->pending);
    size_t i = done / 3;
    switch (done % 3) {
    case 0:
        if (take(q, rep, REDIS_REPLY_STRING)) q->page[i].count = strtol(rep->str, NULL, 10);
        break;
    case 1:
        if (take(q, rep, REDIS_REPLY_STRING)) q->owners[i] = xstrndup(rep->str, rep->len);
        q->page[i].owner = q->owners[i] ? q->owners[i] : "";
        break;
    default:
        if (take(q, rep, REDIS_REPLY_INTEGER)) q->page[i].owner_ttl_ms = rep->integer;
        break;
    }
    if (q->pending == 0) finish(q, q->failed ? q->why : NULL);
}

static void page_round(list_req *q) {
    qsort(q->names, q->nnames, sizeof(*q->names), name_cmp);
    size_t n = 0;
    for (size_t i = 0; i < q->nnames; i++) {
        if (n && name_cmp(&q->names[n - 1], &q->names[i]) == 0) {
            free(q->names[i].p);
            continue;
        }
        q->names[n++] = q->names[i];
    }
    q->nnames = n;
    size_t from = q->offset < n ? q->offset : n;
    q->npage = n - from < q->limit ? n - from : q->limit;
    if (q->npage == 0) {
        finish(q, NULL);
        return;
    }
    q->page = xcalloc(q->npage, sizeof(*q->page));
    q->owners = xcalloc(q->npage, sizeof(*q->owners));
    for (size_t i = 0; i < q->npage; i++) {
        const name *nm = &q->names[from + i];
        q->page[i] = (coord_feed_info){.name = nm->p, .name_len = nm->len, .count = 0, .owner = "", .owner_ttl_ms = -2};
        static const char *const cmds[3][2] = {{"GET", "count"}, {"GET", "owner"}, {"PTTL", "owner"}};
        for (int k = 0; k < 3; k++) {
            coord_cmd b;
            coord_cmd_init(&b);
            coord_arg_str(&b, cmds[k][0]);
            coord_arg_feed_key(&b, nm->p, nm->len, cmds[k][1]);
            send_cmd(q, &b, info_reply);
        }
    }
    if (q->pending == 0) finish(q, q->why);
}

static void members_reply(redisAsyncContext *ac, void *reply, void *privdata) {
    list_req *q = privdata;
    const redisReply *rep = reply;
    if (take(q, rep, REDIS_REPLY_ARRAY)) {
        for (size_t i = 0; i < rep->elements; i++) {
            const redisReply *e = rep->element[i];
            if (e->type != REDIS_REPLY_STRING) continue;
            if (q->nnames == q->cap) {
                q->cap = q->cap ? 2 * q->cap : 64;
                q->names = xreallocarray(q->names, q->cap, sizeof(*q->names));
            }
            q->names[q->nnames++] = (name){xstrndup(e->str, e->len), e->len};
        }
    }
    if (q->pending > 0) return;
    if (q->failed)
        finish(q, q->why);
    else
        page_round(q);
}

static void nodes_reply(redisAsyncContext *ac, void *reply, void *privdata) {
    list_req *q = privdata;
    const redisReply *rep = reply;
    if (!take(q, rep, REDIS_REPLY_ARRAY)) {
        finish(q, q->failed ? q->why : "Redis: HKEYS subway:nodes did not answer a list");
        return;
    }
    for (size_t i = 0; i < rep->elements; i++) {
        const redisReply *e = rep->element[i];
        if (e->type != REDIS_REPLY_STRING) continue;
        char *id = xstrndup(e->str, e->len);
        coord_cmd b;
        coord_cmd_init(&b);
        coord_arg_str(&b, "SMEMBERS");
        coord_arg_node_key(&b, id, "feeds");
        free(id);
        send_cmd(q, &b, members_reply);
    }
    if (q->pending == 0) {
        if (q->failed)
            finish(q, q->why);
        else
            page_round(q);
    }
}

void coord_redis_list_feeds(coord *base, size_t offset, size_t limit, coord_list_cb *cb, void *cb_data) {
    coord_redis *r = (coord_redis *)base;
    coord_feed_list none = {.errstr = "coordination store unreachable"};
    if (!r->up || !r->cmd_ready) {
        cb(cb_data, &none);
        return;
    }
    list_req *q = xcalloc(1, sizeof(*q));
    q->r = r;
    q->cb = cb;
    q->cb_data = cb_data;
    q->offset = offset;
    q->limit = limit;
    coord_cmd b;
    coord_cmd_init(&b);
    coord_arg_str(&b, "HKEYS");
    coord_arg_str(&b, COORD_NODES_KEY);
    send_cmd(q, &b, nodes_reply);
    if (q->pending == 0) finish(q, q->why);
}
