/* coord_redis_watch.c -- the Redis backend's pub/sub: the feed channels this node listens to, in as notices and relay. */
#include <stdlib.h>
#include <string.h>

#include "broker/xmalloc.h"
#include "coord/coord_cmd.h"
#include "coord/coord_redis_int.h"

/* One watched feed: which of its channels this node listens to. */
typedef struct watch {
    struct watch *next;
    coord_watch_kind kind;
    size_t len;
    char name[];                  /* feed name, topic/key */
} watch;

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

/* A message on a watched channel, handed on as a relay or a notice event. */
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

void coord_redis_watch(coord *base, const coord_feed *f, coord_watch_kind kind) {
    coord_redis *r = (coord_redis *)base;
    size_t nlen;
    char *name = coord_redis_feed_name_dup(f, &nlen);
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

void coord_redis_watch_resubscribe(coord_redis *r) {
    for (watch *w = r->watches; w; w = w->next) send_watch(r, w, "SUBSCRIBE", w->kind);
}

void coord_redis_watch_free(coord_redis *r) {
    while (r->watches) {
        watch *w = r->watches;
        r->watches = w->next;
        free(w);
    }
}
