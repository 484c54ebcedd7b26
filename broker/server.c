/* server.c -- the node's loop: listener, output flushing, periodic checks, signals and the drain. */
#include "broker/server.h"
#include "broker/timeval.h"

#include <arpa/inet.h>
#include <errno.h>
#include <event2/event.h>
#include <event2/listener.h>
#include <netdb.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

#include "broker/conn.h"
#include "broker/log.h"
#include "proto/addr.h"

#define TICK_MS 50                /* resolution of heartbeat and slow-consumer checks */

uint64_t broker_now_ms(void) {
    return monotonic_ms();
}

void broker_schedule_flush(broker *b, conn *c) {
    if (c && !(c->flags & (CONN_IN_FLUSH | CONN_CLOSED))) {
        c->flags |= CONN_IN_FLUSH;
        c->next_flush = b->flush_list;
        b->flush_list = c;
    }
    /* Active events run before the loop sleeps again: one flush per turn. */
    if (!b->flush_armed) {
        b->flush_armed = 1;
        event_active(b->flush_ev, EV_TIMEOUT, 0);
    }
}

static void flush_cb(evutil_socket_t fd, short what, void *arg) {
    broker *b = arg;
    b->flush_armed = 0;
    /* Flushing may queue more (DROPPED) or close connections: loop until
     * the list stays empty, so no freed connection is left on it. */
    while (b->flush_list) {
        conn *list = b->flush_list;
        b->flush_list = NULL;
        while (list) {
            conn *c = list;
            list = c->next_flush;
            c->next_flush = NULL;
            c->flags &= ~CONN_IN_FLUSH;
            conn_flush(c);
        }
    }
    while (b->free_list) {
        conn *c = b->free_list;
        b->free_list = c->next_free;
        conn_free(c);
    }
    if (b->draining && b->nconns == 0) event_base_loopbreak(b->base);
}

static void tick_cb(evutil_socket_t fd, short what, void *arg) {
    broker *b = arg;
    uint64_t now = broker_now_ms();
    for (conn *c = b->conns, *next; c; c = next) {
        next = c->next;           /* conn_tick may close c */
        conn_tick(c, now);
    }
}

/* "ip:port" of an accepted peer into peer[len]. */
static void peer_name(const struct sockaddr *sa, char *peer, size_t len) {
    snprintf(peer, len, "?");
    if (sa->sa_family == AF_INET) {
        const struct sockaddr_in *in = (const struct sockaddr_in *)sa;
        char ip[INET_ADDRSTRLEN];
        inet_ntop(AF_INET, &in->sin_addr, ip, sizeof(ip));
        snprintf(peer, len, "%s:%d", ip, ntohs(in->sin_port));
    } else if (sa->sa_family == AF_INET6) {
        const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)sa;
        char ip[INET6_ADDRSTRLEN];
        inet_ntop(AF_INET6, &in6->sin6_addr, ip, sizeof(ip));
        snprintf(peer, len, "[%s]:%d", ip, ntohs(in6->sin6_port));
    }
}

static void accept_cb(struct evconnlistener *l, evutil_socket_t fd, struct sockaddr *sa, int salen, void *arg) {
    char peer[64];
    peer_name(sa, peer, sizeof(peer));
    conn_new(arg, fd, peer, 0);
}

/* --tls-listen's: the same connection, with a TLS session under it. */
static void accept_tls_cb(struct evconnlistener *l, evutil_socket_t fd, struct sockaddr *sa, int salen, void *arg) {
    char peer[64];
    peer_name(sa, peer, sizeof(peer));
    conn_new(arg, fd, peer, 1);
}

static void accept_error_cb(struct evconnlistener *l, void *arg) {
    /* EMFILE and friends: the listener keeps going; say so once per burst. */
    log_warn("accept: %s", strerror(errno));
}

static void drain_timeout_cb(evutil_socket_t fd, short what, void *arg) {
    broker *b = arg;
    log_warn("drain: %zu connections still open after %llu ms; closing them", b->nconns,
             (unsigned long long)b->cfg->drain_timeout_ms);
    event_base_loopbreak(b->base);
}

void broker_drain(broker *b) {
    if (b->draining) return;
    b->draining = 1;
    log_info("draining: GOAWAY to %zu connections (node %s)", b->nconns, b->node_id);
    /* The listener stays: a client that connects now gets ERROR
     * SHUTTING_DOWN at once (conn_new), not a connection that hangs. */
    for (conn *c = b->conns, *next; c; c = next) {
        next = c->next;
        conn_goaway(c, "node is shutting down; reconnect and resubscribe");
    }
    struct timeval tv = ms_timeval(b->cfg->drain_timeout_ms);
    event_add(b->drain_ev, &tv);
    broker_schedule_flush(b, NULL);
}

static void signal_cb(evutil_socket_t sig, short what, void *arg) {
    log_info("%s received", sig == SIGTERM ? "SIGTERM" : "SIGINT");
    broker_drain(arg);
}

/* Resolves an address option (opt names it in errors) into a socket
 * address to bind. 0, or -1 with errstr. */
static int listen_addr(const char *opt, const char *addr, struct sockaddr_storage *ss, socklen_t *sslen, char *errstr,
                       size_t errlen) {
    char host[256], why[300], port[8];
    int p;
    if (proto_addr_split(addr, host, sizeof(host), &p, why, sizeof(why)) < 0) {
        snprintf(errstr, errlen, "%s: %s", opt, why);
        return -1;
    }
    snprintf(port, sizeof(port), "%d", p);
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM,
                             .ai_flags = AI_PASSIVE | AI_NUMERICSERV};
    struct addrinfo *ai = NULL;
    int rc = getaddrinfo(host, port, &hints, &ai);
    if (rc != 0) {
        snprintf(errstr, errlen, "%s: %s: %s", opt, addr, gai_strerror(rc));
        return -1;
    }
    memcpy(ss, ai->ai_addr, ai->ai_addrlen);
    *sslen = ai->ai_addrlen;
    freeaddrinfo(ai);
    return 0;
}

/* Binds a client listener on addr (option opt) that hands sockets to cb.
 * Returns it, or NULL with errstr. */
static struct evconnlistener *listen_on(broker *b, const char *opt, const char *addr, evconnlistener_cb cb,
                                        char *errstr, size_t errlen) {
    struct sockaddr_storage ss;
    socklen_t sslen;
    if (listen_addr(opt, addr, &ss, &sslen, errstr, errlen) < 0) return NULL;
    struct evconnlistener *l = evconnlistener_new_bind(b->base, cb, b,
                                                       LEV_OPT_CLOSE_ON_FREE | LEV_OPT_REUSEABLE | LEV_OPT_CLOSE_ON_EXEC,
                                                       4096, (struct sockaddr *)&ss, (int)sslen);
    if (!l) {
        snprintf(errstr, errlen, "cannot listen on %s: %s", addr, strerror(errno));
        return NULL;
    }
    evconnlistener_set_error_cb(l, accept_error_cb);
    log_info("listening on %s%s", addr, cb == accept_tls_cb ? " (TLS)" : "");
    return l;
}

int server_start(broker *b, char *errstr, size_t errlen) {
    if (!(b->listener = listen_on(b, "--listen", b->cfg->listen, accept_cb, errstr, errlen))) return -1;
    if (b->cfg->tls_listen &&
        !(b->tls_listener = listen_on(b, "--tls-listen", b->cfg->tls_listen, accept_tls_cb, errstr, errlen)))
        return -1;
    b->flush_ev = event_new(b->base, -1, 0, flush_cb, b);
    b->tick_ev = event_new(b->base, -1, EV_PERSIST, tick_cb, b);
    b->drain_ev = event_new(b->base, -1, 0, drain_timeout_cb, b);
    b->sig_ev[0] = evsignal_new(b->base, SIGTERM, signal_cb, b);
    b->sig_ev[1] = evsignal_new(b->base, SIGINT, signal_cb, b);
    struct timeval tick = {0, TICK_MS * 1000};
    if (!b->flush_ev || !b->tick_ev || !b->drain_ev || !b->sig_ev[0] || !b->sig_ev[1] ||
        event_add(b->tick_ev, &tick) < 0 || event_add(b->sig_ev[0], NULL) < 0 || event_add(b->sig_ev[1], NULL) < 0) {
        snprintf(errstr, errlen, "cannot set up the event loop");
        return -1;
    }
    return 0;
}

void server_stop(broker *b) {
    while (b->conns) conn_close(b->conns, "node stopping");
    b->flush_list = NULL;
    while (b->free_list) {
        conn *c = b->free_list;
        b->free_list = c->next_free;
        conn_free(c);
    }
    if (b->listener) evconnlistener_free(b->listener);
    if (b->tls_listener) evconnlistener_free(b->tls_listener);
    b->listener = b->tls_listener = NULL;
    struct event **evs[] = {&b->flush_ev, &b->tick_ev, &b->drain_ev, &b->sig_ev[0], &b->sig_ev[1]};
    for (size_t i = 0; i < sizeof(evs) / sizeof(evs[0]); i++)
        if (*evs[i]) {
            event_free(*evs[i]);
            *evs[i] = NULL;
        }
}
