/* coord_redis_conn.c -- the Redis backend's two connections (commands, pub/sub): connect, AUTH, deadlines, reconnect, and whether the store is up. */
/*
 * Reachable means a round trip succeeded on both connections (the scripts'
 * SCRIPT LOAD on cmd, a PING on sub), never a TCP connect alone. A cut that
 * leaves the connections open is caught by a deadline: cmd sends a PING every
 * third of --redis-timeout-ms, and a PING unanswered for --redis-timeout-ms
 * drops both connections (replies come in order, so everything sent before
 * it is unanswered too). TCP keepalive backs sub up when cmd is idle.
 */
#include <event2/event.h>
#include <hiredis/adapters/libevent.h>
#include <hiredis/async.h>
#include <hiredis/hiredis.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>

#include "broker/log.h"
#include "broker/timeval.h"
#include "coord/coord_redis_int.h"

#define RECONNECT_MS 250



void coord_redis_set_up(coord_redis *r, int up) {
    if (r->up == up || r->freeing) return;
    r->up = up;
    if (up) coord_redis_watch_resubscribe(r);
    if (r->base.ev.state) r->base.ev.state(r->base.ev.cb_data, up);
}

void coord_redis_conn_ready(coord_redis *r) {
    if (!r->cmd_ready || !r->sub_ready) return;
    coord_redis_session_start(r);
}

static void sub_pong(redisAsyncContext *ac, void *reply, void *privdata) {
    coord_redis *r = privdata;
    redisReply *rep = reply;
    if (!rep || rep->type == REDIS_REPLY_ERROR || ac != r->sub) return;
    r->sub_ready = 1;
    coord_redis_conn_ready(r);
}

/* Through Sentinel: the server must be the master (a failed-over one may
 * be back as a replica, which refuses writes). */
static void role_reply(redisAsyncContext *ac, void *reply, void *privdata) {
    coord_redis *r = privdata;
    redisReply *rep = reply;
    if (!rep || ac != r->cmd) return;
    if (rep->type == REDIS_REPLY_ARRAY && rep->elements > 0 && rep->element[0]->type == REDIS_REPLY_STRING &&
        strcmp(rep->element[0]->str, "master") == 0) {
        coord_redis_load_scripts(r);
        return;
    }
    log_warn("redis: %s:%d is not the master of %s (a failover under way?); asking again", r->host, r->port,
             r->master);
    redisAsyncDisconnect(ac);
}

static void auth_reply(redisAsyncContext *ac, void *reply, void *privdata) {
    coord_redis *r = privdata;
    redisReply *rep = reply;
    if (!rep || rep->type == REDIS_REPLY_ERROR) {
        log_warn("redis AUTH failed: %s", rep ? rep->str : "connection lost");
        return;
    }
    if (ac == r->cmd) {
        if (r->nsentinels)
            redisAsyncCommand(ac, role_reply, r, "ROLE");
        else
            coord_redis_load_scripts(r);
    } else if (ac == r->sub) {
        redisAsyncCommand(ac, sub_pong, r, "PING");
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
        r->ping_sent_ms = 0;
        r->starting = 0;
    } else if (ac == r->sub) {
        r->sub = NULL;
        r->sub_ready = 0;
    }
    if (r->freeing) return;
    r->master_known = 0;          /* through Sentinel: ask where the master is now */
    coord_redis_set_up(r, 0);
    if (r->cmd && (r->cmd->c.flags & REDIS_CONNECTED)) redisAsyncDisconnect(r->cmd);
    if (r->sub && (r->sub->c.flags & REDIS_CONNECTED)) redisAsyncDisconnect(r->sub);
    coord_redis_schedule_reconnect(r);
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

/* Probes a silent peer after 1 s idle, every 1 s, 3 times. */
static void keepalive(redisAsyncContext *ac) {
    int fd = ac->c.fd, on = 1, idle = 1, intvl = 1, cnt = 3;
    setsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &on, sizeof(on));
    setsockopt(fd, IPPROTO_TCP, TCP_KEEPIDLE, &idle, sizeof(idle));
    setsockopt(fd, IPPROTO_TCP, TCP_KEEPINTVL, &intvl, sizeof(intvl));
    setsockopt(fd, IPPROTO_TCP, TCP_KEEPCNT, &cnt, sizeof(cnt));
}

static redisAsyncContext *connect_one(coord_redis *r) {
    redisAsyncContext *ac = redisAsyncConnect(r->host, r->port);
    if (!ac) return NULL;
    if (ac->err) {
        redisAsyncFree(ac);
        return NULL;
    }
    keepalive(ac);
    ac->data = r;
    redisLibeventAttach(ac, r->evb);
    redisAsyncSetConnectCallback(ac, on_connect);
    redisAsyncSetDisconnectCallback(ac, on_disconnect);
    return ac;
}

/* Connects whichever of the two connections is missing. */
static void reconnect_cb(evutil_socket_t fd, short what, void *arg) {
    coord_redis *r = arg;
    if (r->nsentinels && !r->master_known) {
        if (!r->cmd && !r->sub) coord_redis_sentinel_ask(r);
        else coord_redis_schedule_reconnect(r);   /* the partner is still going */
        return;
    }
    if (!r->cmd) r->cmd = connect_one(r);
    if (!r->sub) r->sub = connect_one(r);
    if (!r->cmd || !r->sub) coord_redis_schedule_reconnect(r);
}

void coord_redis_schedule_reconnect(coord_redis *r) {
    struct timeval tv = {0, RECONNECT_MS * 1000};
    event_add(r->reconnect_ev, &tv);
}

void coord_redis_conn_drop(coord_redis *r, const char *why) {
    log_warn("redis: %s; dropping the connections", why);
    /* Freed, not disconnected: a disconnect would wait for the replies. The
     * disconnect callbacks (conn_lost) fail what was pending. */
    redisAsyncContext *cmd = r->cmd, *sub = r->sub;
    if (cmd) redisAsyncFree(cmd);
    if (sub && r->sub == sub) redisAsyncFree(sub);
}

static void pong(redisAsyncContext *ac, void *reply, void *privdata) {
    coord_redis *r = privdata;
    if (reply && ac == r->cmd) r->ping_sent_ms = 0;
}

/* The deadline: a PING on cmd unanswered for timeout_ms means Redis is not
 * answering, whether or not the connection is open. */
static void ping_tick(evutil_socket_t fd, short what, void *arg) {
    coord_redis *r = arg;
    if (!r->cmd || !(r->cmd->c.flags & REDIS_CONNECTED)) return;
    uint64_t now = monotonic_ms();
    if (r->ping_sent_ms && now - r->ping_sent_ms >= r->timeout_ms) {
        char why[96];
        snprintf(why, sizeof(why), "no answer for %llu ms (--redis-timeout-ms)", (unsigned long long)r->timeout_ms);
        coord_redis_conn_drop(r, why);
        return;
    }
    if (!r->ping_sent_ms && redisAsyncCommand(r->cmd, pong, r, "PING") == REDIS_OK) r->ping_sent_ms = now;
}

int coord_redis_conn_init(coord_redis *r) {
    r->reconnect_ev = event_new(r->evb, -1, 0, reconnect_cb, r);
    r->ping_ev = event_new(r->evb, -1, EV_PERSIST, ping_tick, r);
    struct timeval tv = ms_timeval(r->timeout_ms / 3 ? r->timeout_ms / 3 : 1);
    if (!r->reconnect_ev || !r->ping_ev || event_add(r->ping_ev, &tv) < 0) return -1;
    return 0;
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
    if (r->ping_ev) event_free(r->ping_ev);
    r->cmd = r->sub = NULL;
    r->reconnect_ev = r->ping_ev = NULL;
}
