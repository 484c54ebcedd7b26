/* coord_cmd.c -- Redis commands built in RESP on the heap, and the one builder of each subway key name. */
#include "coord/coord_cmd.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "broker/xmalloc.h"

void coord_cmd_init(coord_cmd *b) {
    b->cap = 512;
    b->p = xmalloc(b->cap);
    b->len = COORD_CMD_HEAD_ROOM;
    b->argc = 0;
}

/* Starts an argument of n bytes; room for it and its "\r\n" is made here. */
void coord_arg_begin(coord_cmd *b, size_t n) {
    if (b->len + n + 32 > b->cap) {
        while (b->len + n + 32 > b->cap) b->cap *= 2;
        b->p = xrealloc(b->p, b->cap);
    }
    b->len += (size_t)sprintf(b->p + b->len, "$%zu\r\n", n);
    b->argc++;
}

void coord_arg_put(coord_cmd *b, const void *p, size_t n) {
    memcpy(b->p + b->len, p, n);
    b->len += n;
}

void coord_arg_end(coord_cmd *b) {
    coord_arg_put(b, "\r\n", 2);
}

void coord_arg(coord_cmd *b, const void *p, size_t n) {
    coord_arg_begin(b, n);
    coord_arg_put(b, p, n);
    coord_arg_end(b);
}

void coord_arg_str(coord_cmd *b, const char *s) {
    coord_arg(b, s, strlen(s));
}

void coord_arg_num(coord_cmd *b, long long v) {
    char t[24];
    coord_arg(b, t, (size_t)snprintf(t, sizeof(t), "%lld", v));
}

/* Sends b (freed here) on ac with its "*N" in front; REDIS_OK or REDIS_ERR
 * (then fn is never called). */
int coord_cmd_send(redisAsyncContext *ac, coord_cmd *b, redisCallbackFn *fn, void *privdata) {
    char head[24];
    int hl = snprintf(head, sizeof(head), "*%d\r\n", b->argc);
    memcpy(b->p + COORD_CMD_HEAD_ROOM - hl, head, (size_t)hl);
    /* hiredis 0.14 reads a formatted SUBSCRIBE's verb with strchr(): the
     * buffer must end in a NUL (coord_arg_begin always leaves room). */
    b->p[b->len] = '\0';
    int rc = redisAsyncFormattedCommand(ac, fn, privdata, b->p + COORD_CMD_HEAD_ROOM - hl, b->len - COORD_CMD_HEAD_ROOM + (size_t)hl);
    free(b->p);
    return rc;
}


/* subway:feed:{NAME}:SUFFIX: every key and channel of one feed shares the
 * hash tag {topic/key}, so each script stays in one Redis Cluster slot. */
void coord_arg_feed_key(coord_cmd *b, const char *name, size_t nlen, const char *suffix) {
    size_t sl = strlen(suffix);
    coord_arg_begin(b, 13 + nlen + 2 + sl);
    coord_arg_put(b, "subway:feed:{", 13);
    coord_arg_put(b, name, nlen);
    coord_arg_put(b, "}:", 2);
    coord_arg_put(b, suffix, sl);
    coord_arg_end(b);
}

/* subway:node:ID (suffix NULL: the liveness hash) or subway:node:ID:SUFFIX. */
void coord_arg_node_key(coord_cmd *b, const char *id, const char *suffix) {
    size_t il = strlen(id), sl = suffix ? strlen(suffix) + 1 : 0;
    coord_arg_begin(b, 12 + il + sl);
    coord_arg_put(b, "subway:node:", 12);
    coord_arg_put(b, id, il);
    if (suffix) {
        coord_arg_put(b, ":", 1);
        coord_arg_put(b, suffix, sl - 1);
    }
    coord_arg_end(b);
}

/* subway:topic:{TOPIC}:feeds, the per-topic index coord_topic_in_use reads. */
void coord_arg_topic_key(coord_cmd *b, const char *topic, size_t tlen) {
    coord_arg_begin(b, 14 + tlen + 7);
    coord_arg_put(b, "subway:topic:{", 14);
    coord_arg_put(b, topic, tlen);
    coord_arg_put(b, "}:feeds", 7);
    coord_arg_end(b);
}

/* Each node adds and removes only its own members of a topic index (see
 * index_feed in coord_redis.c), so no two nodes race on one. */
void coord_arg_topic_member(coord_cmd *b, const char *node, const char *name, size_t nlen) {
    size_t il = strlen(node);
    coord_arg_begin(b, il + 1 + nlen);
    coord_arg_put(b, node, il);
    coord_arg_put(b, " ", 1);
    coord_arg_put(b, name, nlen);
    coord_arg_end(b);
}

