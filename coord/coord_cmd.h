/* coord_cmd.h -- Redis commands built in RESP on the heap, and the one builder of each subway key name. */
#ifndef SUBWAY_COORD_CMD_H
#define SUBWAY_COORD_CMD_H

#include <hiredis/async.h>
#include <stddef.h>

/* Room before a command's arguments for its head: "*N", and "EVALSHA <sha>"
 * for a script call. */
#define COORD_CMD_HEAD_ROOM 96

/* A command built in RESP, its arguments from COORD_CMD_HEAD_ROOM on; the
 * head goes in front when it is sent. Sizes come from the arguments, so
 * nothing sized by a client's key lives on the stack. */
typedef struct coord_cmd {
    char *p;                      /* heap; out of memory aborts */
    size_t len, cap;              /* used (head room included), allocated */
    int argc;                     /* arguments so far */
} coord_cmd;

/* Starts an empty command. */
void coord_cmd_init(coord_cmd *b);
/* Appends one argument of n bytes at p. */
void coord_arg(coord_cmd *b, const void *p, size_t n);
void coord_arg_str(coord_cmd *b, const char *s);
void coord_arg_num(coord_cmd *b, long long v);
/* One argument written in pieces: begin with its total length n, put
 * exactly n bytes, end. */
void coord_arg_begin(coord_cmd *b, size_t n);
void coord_arg_put(coord_cmd *b, const void *p, size_t n);
void coord_arg_end(coord_cmd *b);

/* Sends b on ac with its "*N" in front and frees b's buffer. Returns
 * REDIS_OK, or REDIS_ERR (then fn is never called). */
int coord_cmd_send(redisAsyncContext *ac, coord_cmd *b, redisCallbackFn *fn, void *privdata);

/* Key names (README, "Inspecting with redis-cli"), each appended as one
 * argument. */
#define COORD_NODES_KEY "subway:nodes" /* registered node -> incarnation: what reapers scan */
/* subway:feed:{NAME}:SUFFIX, NAME the feed's "topic/key": every key and
 * channel of one feed shares its hash tag, so each script stays in one
 * Redis Cluster slot. */
void coord_arg_feed_key(coord_cmd *b, const char *name, size_t nlen, const char *suffix);
/* subway:node:ID (suffix NULL: the liveness hash) or subway:node:ID:SUFFIX. */
void coord_arg_node_key(coord_cmd *b, const char *id, const char *suffix);
/* subway:topic:{TOPIC}:feeds, the per-topic index of who holds its feeds. */
void coord_arg_topic_key(coord_cmd *b, const char *topic, size_t tlen);
/* A member of that index: "NODE FEED". */
void coord_arg_topic_member(coord_cmd *b, const char *node, const char *name, size_t nlen);

#endif
