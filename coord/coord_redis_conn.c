/* coord_redis_conn.c -- the Redis backend's two connections (commands, pub/sub): connect, AUTH, reconnect, and whether the store is up. */
#include <event2/event.h>
#include <hiredis/adapters/libevent.h>
#include <hiredis/async.h>
#include <hiredis/hiredis.h>
#include <stdio.h>

#include "coord/coord_redis_int.h"

#define RECONNECT_MS 250

static void schedule_reconnect(coord_redis *r);

void coord_redis_set_up(coord_redis *r, int up) {
    if (r->up == up || r->freeing) return;
    r->up = up;
    if (up) {
        coord_redis_register_node(r);
        coord_redis_watch_resubscribe(r);
    }
    if (r->base.ev.state) r->base.ev.state(r->base.ev.cb_data, up);
}

void coord_redis_conn_ready(coord_redis *r) {
    if (!r->cmd_ready || !r->sub_ready) return;
    if (r->self_reaped)
        coord_redis_set_up(r, 1);
    else
        coord_redis_self_reap(r);
}

static void auth_reply(redisAsyncContext *ac, void *reply, void *privdata) {
    coord_redis *r = privdata;
    redisReply *rep = reply;
    if (!rep || rep->type == REDIS_REPLY_ERROR) {
        fprintf(stderr, "subway: warn: redis AUTH failed: %s\n", rep ? rep->str : "connection lost");
        return;
    }
    if (ac == r->cmd) {
        coord_redis_load_scripts(r);
    } else if (ac == r->sub) {
        r->sub_ready = 1;
        coord_redis_conn_ready(r);
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
    coord_redis_set_up(r, 0);
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

int coord_redis_conn_init(coord_redis *r) {
    r->reconnect_ev = event_new(r->evb, -1, 0, reconnect_cb, r);
    return r->reconnect_ev ? 0 : -1;
}

void coord_redis_connect(coord_redis *r) {
    reconnect_cb(-1, 0, r);
}

void coord_redis_conn_close(coord_redis *r) {
    if (r->cmd && r->cmd_ready) {
        /* Let queued commands (the releases of closed connections, the
         * liveness key's DEL) go out first. */
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
    r->cmd = r->sub = NULL;
    r->reconnect_ev = NULL;
}
