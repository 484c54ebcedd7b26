/* coord_redis_sentinel.c -- the Redis backend finds its master through Sentinel: asks each Sentinel in turn, and again after every lost connection. */
/*
 * --redis-sentinel HOST:PORT[,...] --redis-master NAME. Before each connect
 * the backend asks a Sentinel (SENTINEL get-master-addr-by-name NAME) where
 * the master is; a Sentinel that does not answer is skipped for the next.
 * After a failover the old master's connections drop (it died, or was turned
 * into a replica and answers ROLE with "slave", see coord_redis_conn.c), the
 * backend asks again, connects to the new master and starts a new session
 * there, so every node re-asserts its state on it.
 */
#include <event2/event.h>
#include <hiredis/adapters/libevent.h>
#include <hiredis/async.h>
#include <hiredis/hiredis.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "broker/log.h"
#include "broker/xmalloc.h"
#include "coord/coord_redis_int.h"
#include "proto/addr.h"

int coord_redis_sentinel_init(coord_redis *r, const char *list, const char *master, char *err, size_t errlen) {
    char *copy = xstrdup(list), *save = NULL;
    for (char *tok = strtok_r(copy, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
        r->sentinels = xreallocarray(r->sentinels, r->nsentinels + 1, sizeof(*r->sentinels));
        coord_redis_sentinel *s = &r->sentinels[r->nsentinels];
        char why[300];
        if (proto_addr_split(tok, s->host, sizeof(s->host), &s->port, why, sizeof(why)) < 0) {
            snprintf(err, errlen, "--redis-sentinel: %s", why);
            free(copy);
            return -1;
        }
        r->nsentinels++;
    }
    free(copy);
    if (!r->nsentinels) {
        snprintf(err, errlen, "--redis-sentinel: no HOST:PORT given");
        return -1;
    }
    r->master = xstrdup(master);
    return 0;
}

static void next_sentinel(coord_redis *r) {
    r->sentinel_i = (r->sentinel_i + 1) % r->nsentinels;
}

static void sentinel_reply(redisAsyncContext *ac, void *reply, void *privdata) {
    coord_redis *r = privdata;
    redisReply *rep = reply;
    const coord_redis_sentinel *s = &r->sentinels[r->sentinel_i];
    if (rep && rep->type == REDIS_REPLY_ARRAY && rep->elements == 2 && rep->element[0]->type == REDIS_REPLY_STRING &&
        rep->element[1]->type == REDIS_REPLY_STRING && strlen(rep->element[0]->str) < sizeof(r->host)) {
        int port = atoi(rep->element[1]->str);
        if (strcmp(r->host, rep->element[0]->str) != 0 || r->port != port)
            log_info("redis: Sentinel %s:%d says master %s is at %s:%d", s->host, s->port,
                    r->master, rep->element[0]->str, port);
        snprintf(r->host, sizeof(r->host), "%s", rep->element[0]->str);
        r->port = port;
        r->master_known = 1;
    } else if (rep) {
        log_warn("redis: Sentinel %s:%d does not know master %s (%s)", s->host, s->port,
                r->master, rep->type == REDIS_REPLY_ERROR ? rep->str : "no address");
        next_sentinel(r);
    }
    redisAsyncDisconnect(ac);
}

static void sentinel_connected(const redisAsyncContext *cac, int status) {
    redisAsyncContext *ac = (redisAsyncContext *)cac;
    coord_redis *r = ac->data;
    if (status != REDIS_OK) {
        const coord_redis_sentinel *s = &r->sentinels[r->sentinel_i];
        log_warn("redis: Sentinel %s:%d unreachable: %s", s->host, s->port, ac->errstr);
        r->sentinel_ac = NULL;    /* freed by hiredis, with no disconnect callback */
        next_sentinel(r);
        coord_redis_schedule_reconnect(r);
        return;
    }
    redisAsyncCommand(ac, sentinel_reply, r, "SENTINEL get-master-addr-by-name %s", r->master);
}

static void sentinel_gone(const redisAsyncContext *cac, int status) {
    coord_redis *r = cac->data;
    r->sentinel_ac = NULL;
    if (r->freeing) return;
    if (r->master_known)
        coord_redis_connect(r);   /* to the master, now */
    else
        coord_redis_schedule_reconnect(r);   /* the next Sentinel, in a moment */
}

void coord_redis_sentinel_ask(coord_redis *r) {
    if (r->sentinel_ac) return;   /* an answer is on its way */
    const coord_redis_sentinel *s = &r->sentinels[r->sentinel_i];
    redisAsyncContext *ac = redisAsyncConnect(s->host, s->port);
    if (!ac || ac->err) {
        if (ac) redisAsyncFree(ac);
        next_sentinel(r);
        coord_redis_schedule_reconnect(r);
        return;
    }
    ac->data = r;
    redisLibeventAttach(ac, r->evb);
    redisAsyncSetConnectCallback(ac, sentinel_connected);
    redisAsyncSetDisconnectCallback(ac, sentinel_gone);
    r->sentinel_ac = ac;
}

void coord_redis_sentinel_free(coord_redis *r) {
    if (r->sentinel_ac) redisAsyncFree(r->sentinel_ac);
    r->sentinel_ac = NULL;
    free(r->sentinels);
    free(r->master);
    r->sentinels = NULL;
    r->master = NULL;
}
