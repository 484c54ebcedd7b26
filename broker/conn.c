/* conn.c -- one client connection: input decoding, requests, output queue, limits, heartbeats. */
#include "broker/conn.h"

#include <errno.h>
#include <event2/event.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "broker/auth.h"
#include "broker/feed.h"
#include "broker/log.h"
#include "broker/producer.h"
#include "broker/sub.h"
#include "broker/tls.h"
#include "broker/xmalloc.h"

#define CONN_IN_INITIAL 512       /* most clients send little: memory per connection counts */
#define CONN_IN_STEADY 65536      /* a buffer a read fills doubles up to this */
#define CONN_READS_PER_EVENT 4    /* fairness: then let other connections run */
#define CONN_FRAMES_PER_EVENT 1024 /* fairness: frames handled before the others' turn */
#define CONN_AUTH_PER_S 1         /* AUTHs a second per connection (each costs a signature check); more wait */
#define CONN_LINGER_CLOSE_MS 2000 /* how long an ERROR-then-close waits to flush */

static void conn_read_cb(evutil_socket_t fd, short what, void *arg);
static void conn_write_cb(evutil_socket_t fd, short what, void *arg);

/* ------------------------------------------------------------- lifecycle */

conn *conn_new(broker *b, int fd, const char *peer, int tls) {
    conn *c = xcalloc(1, sizeof(*c));
    c->b = b;
    c->fd = fd;
    c->id = ++b->next_conn_id;
    snprintf(c->peer, sizeof(c->peer), "%s", peer);
    outq_init(&c->out);
    proto_buf_init(&c->scratch);
    c->in_cap = CONN_IN_INITIAL;
    c->in = xmalloc(c->in_cap);
    /* Until HELLO, a frame is at most CONN_HELLO_MAX_FRAME: a stranger
     * cannot make the node hold --max-frame of its input. */
    c->dec = proto_decoder_new(b->cfg->max_frame < CONN_HELLO_MAX_FRAME ? b->cfg->max_frame : CONN_HELLO_MAX_FRAME);
    c->read_ev = event_new(b->base, fd, EV_READ | EV_PERSIST, conn_read_cb, c);
    c->write_ev = event_new(b->base, fd, EV_WRITE | EV_PERSIST, conn_write_cb, c);
    if (!c->dec || !c->read_ev || !c->write_ev) {
        log_error("out of memory accepting a connection");
        abort();
    }
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    if (tls) {
        /* The read event, armed below, brings the client's hello. */
        c->tls = tls_session_new(b, fd);
        c->flags |= CONN_TLS_HANDSHAKE;
    }
    c->accepted_ms = c->last_rx_ms = c->last_ping_ms = broker_now_ms();
    ratelimit_init(&c->pub_rate, b->cfg->publish_rate, c->accepted_ms);
    ratelimit_init(&c->pub_bytes, b->cfg->publish_bytes_rate, c->accepted_ms);
    ratelimit_init(&c->auth_rate, CONN_AUTH_PER_S, c->accepted_ms);
    c->next = b->conns;
    if (b->conns) b->conns->prev = c;
    b->conns = c;
    b->nconns++;
    b->ctr.conns_accepted++;
    if (b->nconns > b->cfg->max_conns || b->draining) {
        /* A refused connection only lives to deliver its ERROR: it does
         * not count as one of the node's connections. */
        b->ctr.conns_refused++;
        b->nconns--;
        c->flags |= CONN_REFUSED;
        if (b->draining)
            conn_send_error(c, 0, PROTO_E_SHUTTING_DOWN, "node is shutting down; reconnect elsewhere");
        else
            conn_send_error(c, 0, PROTO_E_TOO_MANY_CONNS, "node is at its limit of %llu connections",
                            (unsigned long long)b->cfg->max_conns);
        conn_close_after_flush(c);
        return c;
    }
    event_add(c->read_ev, NULL);
    log_debug("conn %llu: accepted from %s", (unsigned long long)c->id, c->peer);
    return c;
}

/* Releases everything that ties the connection to feeds and Kafka. */
static void conn_release(conn *c) {
    while (c->nsubs > 0) feed_unsubscribe(c->b->feeds, c->subs[c->nsubs - 1]);
    producer_detach(c->b->prod, c);
}

void conn_close_after_flush(conn *c) {
    if (c->flags & (CONN_CLOSED | CONN_CLOSE_AFTER_FLUSH)) return;
    c->flags |= CONN_CLOSE_AFTER_FLUSH;
    c->close_deadline_ms = broker_now_ms() + CONN_LINGER_CLOSE_MS;
    event_del(c->read_ev);
    conn_release(c);              /* nothing more is read, so nothing more is wanted */
    broker_schedule_flush(c->b, c);
}

void conn_close(conn *c, const char *why) {
    if (c->flags & CONN_CLOSED) return;
    broker *b = c->b;
    log_debug("conn %llu: closed (%s)", (unsigned long long)c->id, why);
    c->flags |= CONN_CLOSED;
    conn_release(c);
    event_del(c->read_ev);
    event_del(c->write_ev);
    close(c->fd);
    c->fd = -1;
    outq_clear(&c->out);
    if (c->prev)
        c->prev->next = c->next;
    else
        b->conns = c->next;
    if (c->next) c->next->prev = c->prev;
    c->prev = c->next = NULL;
    if (!(c->flags & CONN_REFUSED)) b->nconns--;
    c->next_free = b->free_list;
    b->free_list = c;
    broker_schedule_flush(b, NULL);
}

void conn_free(conn *c) {
    if (!c) return;
    if (c->read_ev) event_free(c->read_ev);
    if (c->write_ev) event_free(c->write_ev);
    if (c->fd >= 0) close(c->fd);
    outq_clear(&c->out);
    proto_buf_free(&c->scratch);
    proto_decoder_free(c->dec);
    tls_session_free(c->tls);
    auth_conn_free(c);
    free(c->subs);
    free(c->in);
    free(c);
}

/* Everything is written: send FIN, then read and discard until the peer
 * closes too (or the deadline). Closing with unread input would make the
 * kernel send RST, and an RST can destroy the last ERROR or GOAWAY before
 * the client reads it. */
static void conn_linger(conn *c) {
    c->flags |= CONN_LINGER;
    if (c->tls && !(c->flags & CONN_TLS_HANDSHAKE)) tls_close_notify(c->tls);
    shutdown(c->fd, SHUT_WR);
    event_add(c->read_ev, NULL);
}

/* For peers that may never read again (silent, slow): drops what is
 * queued after the frame being written, queues a last ERROR right there,
 * and closes once that is written (FIN, then the unread input is drained,
 * so no RST destroys the ERROR), or after a short deadline. */
static void conn_close_with_error(conn *c, proto_err code, const char *text) {
    log_debug("conn %llu: closing: %s", (unsigned long long)c->id, text);
    outq_cut_after_frame(&c->out);
    c->flags &= ~CONN_KILL;
    conn_send_error(c, 0, code, "%s", text);
    conn_close_after_flush(c);
}

/* ---------------------------------------------------------------- output */

int conn_send(conn *c, const proto_frame *f) {
    if (c->flags & CONN_CLOSED) return -1;
    proto_buf_reset(&c->scratch);
    if (proto_encode(&c->scratch, f) < 0) {
        log_error("cannot encode a %s frame", proto_type_name(f->type));
        abort();
    }
    outq_push_copy(&c->out, c->scratch.data, c->scratch.len);
    if (c->out.bytes > c->b->cfg->out_hard_limit) c->flags |= CONN_KILL;
    broker_schedule_flush(c->b, c);
    return c->flags & CONN_KILL ? -1 : 0;
}

/* Length of the valid UTF-8 sequence at s[0..len), or 0 when there is none
 * (overlong forms, surrogates and code points past U+10FFFF included). */
static size_t utf8_seq(const unsigned char *s, size_t len) {
    unsigned c = s[0];
    size_t n = c < 0x80 ? 1 : c >= 0xc2 && c <= 0xdf ? 2 : c >= 0xe0 && c <= 0xef ? 3 : c >= 0xf0 && c <= 0xf4 ? 4 : 0;
    if (n == 0 || n > len) return 0;
    for (size_t i = 1; i < n; i++)
        if ((s[i] & 0xc0) != 0x80) return 0;
    if ((c == 0xe0 && s[1] < 0xa0) || (c == 0xed && s[1] > 0x9f) || (c == 0xf0 && s[1] < 0x90) ||
        (c == 0xf4 && s[1] > 0x8f))
        return 0;
    return n;
}

/* Text on the wire is UTF-8 (PROTOCOL.md 2), and an error text may echo a
 * client's raw key bytes: each byte that starts no valid sequence, or
 * the end of one cut short, becomes '?'. */
static void utf8_clean(char *s, size_t len) {
    for (size_t i = 0; i < len;) {
        size_t n = utf8_seq((const unsigned char *)s + i, len - i);
        if (n == 0) {
            s[i++] = '?';
            continue;
        }
        i += n;
    }
}

void conn_send_error(conn *c, uint64_t req_id, proto_err code, const char *fmt, ...) {
    char text[512];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(text, sizeof(text), fmt, ap);
    va_end(ap);
    if (n < 0) n = 0;
    if ((size_t)n >= sizeof(text)) n = sizeof(text) - 1;
    utf8_clean(text, (size_t)n);
    proto_frame f = {.type = PROTO_ERROR, .req_id = req_id, .code = code, .text = {text, (size_t)n}};
    conn_send(c, &f);
}

void conn_deliver(conn *c, sub *s, outq_block *block, size_t off, size_t len, uint32_t records, uint64_t lost) {
    broker *b = c->b;
    if (c->flags & (CONN_CLOSED | CONN_CLOSE_AFTER_FLUSH | CONN_KILL | CONN_GOAWAY)) return;
    if (c->out.bytes >= b->cfg->out_soft_limit) {
        /* The slice's own DROPPED frames go with it: fold them in. */
        s->dropped += records + lost;
        b->ctr.dropped += records;
        c->has_dropped = 1;
        if (!c->over_soft_since_ms) c->over_soft_since_ms = broker_now_ms();
        return;
    }
    if (s->dropped) {
        /* Caught up after a gap: say how many went missing, right where. */
        proto_frame d = {.type = PROTO_DROPPED, .feed = sub_handle(s), .count = s->dropped};
        s->dropped = 0;
        conn_send(c, &d);
    }
    /* Queued below the soft limit: whatever its size, one batch is not
     * slowness (the slow timeout judges that), so it never trips the hard
     * limit, which bounds what the connection queues otherwise. */
    outq_push_slice(&c->out, block, off, len);
    b->ctr.records_out += records;
    broker_schedule_flush(b, c);
}

int conn_takes_records(const conn *c) {
    return !(c->flags & (CONN_CLOSED | CONN_CLOSE_AFTER_FLUSH | CONN_KILL)) && c->out.bytes < c->b->cfg->out_soft_limit;
}

/* Queues one DROPPED per feed that lost records and has had no record
 * since (those were reported in front of that record). */
static void conn_report_drops(conn *c) {
    c->has_dropped = 0;
    for (size_t i = 0; i < c->nsubs; i++) {
        sub *s = c->subs[i];
        if (s->dropped == 0 || s->state != SUB_ACTIVE) continue;
        proto_frame f = {.type = PROTO_DROPPED, .feed = sub_handle(s), .count = s->dropped};
        s->dropped = 0;
        conn_send(c, &f);
    }
}

/* Arms the write event (once): the socket must take more before going on. */
static void conn_want_write(conn *c) {
    if (c->flags & CONN_WANT_WRITE) return;
    event_add(c->write_ev, NULL);
    c->flags |= CONN_WANT_WRITE;
}

/* Takes one step of a TLS connection's handshake, waiting on the event it
 * needs. Once it is done the connection reads and writes frames as a
 * plain one does; a failed one is closed and counted. */
static void conn_tls_handshake(conn *c) {
    static int ktls_said;
    broker *b = c->b;
    char what[512];
    switch (tls_handshake(c->tls, what, sizeof(what))) {
    case TLS_WANT_READ:
        if (c->flags & CONN_WANT_WRITE) {
            event_del(c->write_ev);
            c->flags &= ~CONN_WANT_WRITE;
        }
        event_add(c->read_ev, NULL); /* even on a refused connection: its ERROR goes out over TLS */
        return;
    case TLS_WANT_WRITE:
        conn_want_write(c);
        return;
    case TLS_DONE:
        c->flags &= ~CONN_TLS_HANDSHAKE;
        b->ctr.tls_handshakes++;
        log_debug("conn %llu from %s: %s", (unsigned long long)c->id, c->peer, what);
        if (b->cfg->tls_ktls && !ktls_said) {
            ktls_said = 1;
            log_info("TLS: kernel TLS %s (first TLS connection; Linux needs the tls module, OpenSSL a kTLS build)",
                     tls_ktls_send(c->tls) ? "took: records go out with writev" : "did not take: OpenSSL encrypts");
        }
        if (c->flags & CONN_CLOSE_AFTER_FLUSH)
            event_del(c->read_ev);
        else
            event_active(c->read_ev, EV_READ, 0); /* HELLO may be in already */
        broker_schedule_flush(b, c);
        return;
    case TLS_EOF:
    case TLS_FAILED:
        b->ctr.tls_handshake_failed++;
        log_info_limited("conn %llu from %s: TLS %s", (unsigned long long)c->id, c->peer, what);
        conn_close(c, what);
        return;
    }
}

/* Writes queued output: writev on a plain connection, SSL_write from the
 * same shared blocks on a TLS one. Returns NULL, or why the connection
 * failed. */
static const char *conn_write_out(conn *c) {
    if (!c->tls) return outq_write(&c->out, c->fd) < 0 ? strerror(errno) : NULL;
    tls_status st;
    tls_write(c->tls, &c->out, c->fd, &st);
    if (st == TLS_FAILED || st == TLS_EOF) return "TLS write failed";
    if (st == TLS_WANT_READ) c->flags |= CONN_TLS_WRITE_WANTS_READ; /* the read event brings it back */
    return NULL;
}

void conn_flush(conn *c) {
    if (c->flags & CONN_CLOSED) return;
    if (c->flags & CONN_KILL) {
        c->b->ctr.slow_closed++;
        conn_close_with_error(c, PROTO_E_SLOW_CONSUMER, "output above the hard limit: closing a slow consumer");
        return;
    }
    if (c->flags & CONN_TLS_HANDSHAKE) {
        conn_tls_handshake(c);    /* output waits for it */
        return;
    }
    for (int round = 0; round < 2; round++) {
        const char *err = conn_write_out(c);
        if (err) {
            conn_close(c, err);
            return;
        }
        if (c->out.bytes > 0 || !c->has_dropped) break;
        conn_report_drops(c);     /* drained: tell it what it missed */
    }
    if (c->out.bytes < c->b->cfg->out_soft_limit) c->over_soft_since_ms = 0;
    if (c->flags & CONN_PAUSED) conn_input_resume(c); /* its answers were read */
    if (c->cu_parked && c->out.bytes < c->b->cfg->out_soft_limit / 2 && c->b->catchup_wake)
        event_active(c->b->catchup_wake, EV_TIMEOUT, 0);   /* its catch-ups go on now */
    if (c->out.bytes == 0) {
        if (c->flags & CONN_WANT_WRITE) {
            event_del(c->write_ev);
            c->flags &= ~CONN_WANT_WRITE;
        }
        if ((c->flags & CONN_CLOSE_AFTER_FLUSH) && !(c->flags & CONN_LINGER)) conn_linger(c);
    } else if (!(c->flags & CONN_TLS_WRITE_WANTS_READ)) {
        conn_want_write(c);
    }
}

static void conn_write_cb(evutil_socket_t fd, short what, void *arg) {
    conn *c = arg;
    if (c->flags & CONN_TLS_READ_WANTS_WRITE) {
        c->flags &= ~CONN_TLS_READ_WANTS_WRITE;
        event_active(c->read_ev, EV_READ, 0);
    }
    conn_flush(c);
}

/* ----------------------------------------------------------------- input */

/* Refuses the connection's input for good: ERROR, then close once flushed. */
static void conn_protocol_error(conn *c, proto_err code, const char *text) {
    c->b->ctr.protocol_errors++;
    log_debug("conn %llu: protocol error %s: %s", (unsigned long long)c->id, proto_err_name(code), text);
    conn_send_error(c, 0, code, "%s", text);
    conn_close_after_flush(c);
}

/* A token refused: ERROR UNAUTHORIZED (naming the AUTH that carried it,
 * or 0 for HELLO's), then close. */
static void conn_unauthorized(conn *c, uint64_t req_id, const char *why) {
    c->b->ctr.auth_refused++;
    log_info_limited("conn %llu from %s (%s): token refused: %s", (unsigned long long)c->id, c->peer, auth_who(c), why);
    conn_send_error(c, req_id, PROTO_E_UNAUTHORIZED, "%s", why);
    conn_close_after_flush(c);
}

/* Up to n bytes of s into out (NUL-terminated), each byte outside printable
 * ASCII as '?': a refusal names what was asked, without a NUL cutting the
 * name short into one that looks allowed. */
static const char *printable(const char *s, size_t n, char *out, size_t outlen) {
    size_t i = 0;
    for (; i < n && i + 1 < outlen; i++) out[i] = s[i] >= 0x20 && s[i] < 0x7f ? s[i] : '?';
    out[i] = '\0';
    return out;
}

static void forbidden(conn *c, uint64_t req_id, const char *what, const proto_frame *f) {
    c->b->ctr.forbidden++;
    char tbuf[256], kbuf[129];
    conn_send_error(c, req_id, PROTO_E_FORBIDDEN, "%s may not %s %s/%s", auth_who(c), what,
                    printable(f->topic.ptr, f->topic.len, tbuf, sizeof(tbuf)),
                    f->key.ptr ? printable(f->key.ptr, f->key.len, kbuf, sizeof(kbuf)) : "*");
}

static void handle_subscribe(conn *c, const proto_frame *f) {
    broker *b = c->b;
    const char *key = f->key.ptr;
    if (b->draining) {
        conn_send_error(c, f->req_id, PROTO_E_SHUTTING_DOWN, "node is shutting down; reconnect elsewhere");
        return;
    }
    if (c->nsubs >= b->cfg->max_subs) {
        conn_send_error(c, f->req_id, PROTO_E_TOO_MANY_SUBS, "connection is at its limit of %llu subscriptions",
                        (unsigned long long)b->cfg->max_subs);
        return;
    }
    if (sub_find(c, f->topic.ptr, f->topic.len, key, f->key.len)) {
        conn_send_error(c, f->req_id, PROTO_E_ALREADY_SUBSCRIBED, "already subscribed to %.*s/%.*s",
                        (int)f->topic.len, f->topic.ptr, key ? (int)f->key.len : 1, key ? key : "*");
        return;
    }
    if (!auth_may_subscribe(c, f->topic.ptr, f->topic.len, key, f->key.len)) {
        forbidden(c, f->req_id, "subscribe to", f);
        return;
    }
    if (f->start_mode != PROTO_START_NONE && c->version < 2) {
        conn_send_error(c, f->req_id, PROTO_E_INVALID_ARG, "a start position needs protocol version 2 (HELLO said %d)",
                        c->version);
        return;
    }
    proto_err code;
    char err[256];
    /* It may answer at once, which only queues output. */
    if (!feed_subscribe(b->feeds, c, f, &code, err, sizeof(err))) conn_send_error(c, f->req_id, code, "%s", err);
}

static void handle_unsubscribe(conn *c, const proto_frame *f) {
    sub *s = f->feed <= UINT32_MAX ? sub_find_handle(c, (uint32_t)f->feed) : NULL;
    if (!s) {
        conn_send_error(c, f->req_id, PROTO_E_NOT_SUBSCRIBED, "no subscription with feed handle %llu",
                        (unsigned long long)f->feed);
        return;
    }
    feed_unsubscribe(c->b->feeds, s);
    proto_frame r = {.type = PROTO_UNSUBSCRIBED, .req_id = f->req_id, .feed = f->feed};
    conn_send(c, &r);
}

static void handle_auth(conn *c, const proto_frame *f) {
    proto_err code;
    char why[256];
    /* A signature check is dear: a client pipelining AUTHs waits (input
     * paused) rather than taking the loop from everyone else. */
    ratelimit_take(&c->auth_rate, 1, broker_now_ms());
    if (auth_refresh(c, f->auth, &code, why, sizeof(why)) < 0) {
        if (code == PROTO_E_UNAUTHORIZED)
            conn_unauthorized(c, f->req_id, why);
        else
            conn_send_error(c, f->req_id, code, "%s", why);
        return;
    }
    proto_frame r = {.type = PROTO_AUTHED, .req_id = f->req_id, .expires_ms = auth_expires_ms(c)};
    conn_send(c, &r);
}

static void handle_publish(conn *c, const proto_frame *f) {
    broker *b = c->b;
    proto_err code;
    char err[256];
    if (b->draining) {
        conn_send_error(c, f->req_id, PROTO_E_SHUTTING_DOWN, "node is shutting down; reconnect elsewhere");
        return;
    }
    if (strcmp(b->cfg->publish, "off") == 0) {
        conn_send_error(c, f->req_id, PROTO_E_FORBIDDEN, "PUBLISH is turned off on this node (--publish off)");
        return;
    }
    if (!auth_may_publish(c, f->topic.ptr, f->topic.len, f->key.ptr, f->key.len)) {
        forbidden(c, f->req_id, "publish to", f);
        return;
    }
    if (producer_publish(b->prod, c, f, &code, err, sizeof(err)) < 0) {
        conn_send_error(c, f->req_id, code, "%s", err);
        return;
    }
    /* Over a rate, the next frames wait (conn_input_blocked): nothing is refused. */
    uint64_t now = broker_now_ms();
    ratelimit_take(&c->pub_rate, 1, now);
    ratelimit_take(&c->pub_bytes, (f->key.ptr ? f->key.len : 0) + (f->value.ptr ? f->value.len : 0), now);
}

static void handle_frame(conn *c, const proto_frame *f) {
    broker *b = c->b;
    if (!(c->flags & CONN_HELLO)) {
        if (f->type != PROTO_HELLO) {
            conn_protocol_error(c, PROTO_E_HELLO_REQUIRED, "the first frame must be HELLO");
            return;
        }
        if (f->version < PROTO_MIN_VERSION) {
            char text[128];
            snprintf(text, sizeof(text), "protocol version %llu is not supported; this node speaks versions %d to %d",
                     (unsigned long long)f->version, PROTO_MIN_VERSION, PROTO_VERSION);
            conn_protocol_error(c, PROTO_E_VERSION, text);
            return;
        }
        char why[256];
        if (auth_hello(c, f->auth, why, sizeof(why)) < 0) {
            conn_unauthorized(c, 0, why);
            return;
        }
        c->flags |= CONN_HELLO;
        proto_decoder_set_max_frame(c->dec, b->cfg->max_frame);
        c->version = f->version < PROTO_VERSION ? (int)f->version : PROTO_VERSION;
        const char *who = c->auth ? auth_who(c) : "";
        proto_frame w = {.type = PROTO_WELCOME, .version = (uint64_t)c->version,
                         .name = {b->node_id, strlen(b->node_id)},
                         .heartbeat_ms = b->cfg->heartbeat_ms, .max_frame = b->cfg->max_frame,
                         .heartbeat_timeout_ms = config_heartbeat_timeout_ms(b->cfg), .max_key = b->cfg->max_key,
                         .max_subs = b->cfg->max_subs, .client = {who, strlen(who)},
                         .expires_ms = auth_expires_ms(c)};
        conn_send(c, &w);
        if (c->auth) log_debug("conn %llu from %s: client %s", (unsigned long long)c->id, c->peer, auth_who(c));
        return;
    }
    switch (f->type) {
    case PROTO_HELLO:
        conn_protocol_error(c, PROTO_E_HELLO_REQUIRED, "HELLO was already received");
        return;
    case PROTO_SUBSCRIBE:
        handle_subscribe(c, f);
        return;
    case PROTO_UNSUBSCRIBE:
        handle_unsubscribe(c, f);
        return;
    case PROTO_PUBLISH:
        handle_publish(c, f);
        return;
    case PROTO_AUTH:
        handle_auth(c, f);
        return;
    case PROTO_PING: {
        proto_frame p = {.type = PROTO_PONG, .token = f->token};
        conn_send(c, &p);
        return;
    }
    case PROTO_PONG:
        return;                   /* its arrival already counted as life */
    default: {
        char text[128];
        snprintf(text, sizeof(text), "%s is a node-to-client frame", proto_type_name(f->type));
        conn_protocol_error(c, PROTO_E_BAD_FRAME, text);
        return;
    }
    }
}

/* Why this connection's input must wait, or NULL: its answers are not
 * being read (a client that sends requests and reads nothing cannot make
 * the node queue without bound), or its PUBLISHes are over their limits. */
static const char *conn_input_blocked(conn *c, uint64_t now) {
    const config *cfg = c->b->cfg;
    if (c->out.bytes >= cfg->out_soft_limit) return "answers unread";
    if (c->npubs >= cfg->max_publish_inflight) return "PUBLISHes awaiting Kafka";
    if (ratelimit_wait_ms(&c->pub_rate, now) || ratelimit_wait_ms(&c->pub_bytes, now)) return "PUBLISH rate";
    if (ratelimit_wait_ms(&c->auth_rate, now)) return "AUTH rate";
    return NULL;
}

static void conn_pause(conn *c, uint64_t now, const char *why) {
    c->flags |= CONN_PAUSED;
    c->paused_since_ms = now;
    c->b->ctr.input_paused++;
    event_del(c->read_ev);
    log_debug("conn %llu: input waits: %s", (unsigned long long)c->id, why);
}

void conn_input_resume(conn *c) {
    if ((c->flags & (CONN_PAUSED | CONN_CLOSED | CONN_CLOSE_AFTER_FLUSH)) != CONN_PAUSED) return;
    uint64_t now = broker_now_ms();
    if (conn_input_blocked(c, now)) return;
    c->flags &= ~CONN_PAUSED;
    c->last_rx_ms = now;          /* it could not be heard while it waited */
    event_add(c->read_ev, NULL);
    event_active(c->read_ev, EV_READ, 0); /* frames already buffered go first */
}

/* Decodes and handles the complete frames in the input buffer, until the
 * connection must wait or has had its turn. Returns 1 when it stopped
 * with whole frames left (the read callback comes back for them). */
static int conn_process_input(conn *c) {
    size_t off = 0;
    int frames = 0, more = 0;
    uint64_t now = broker_now_ms();
    while (!(c->flags & (CONN_CLOSED | CONN_CLOSE_AFTER_FLUSH))) {
        const char *why = conn_input_blocked(c, now);
        if (why) {
            conn_pause(c, now, why);
            more = 1;
            break;
        }
        if (frames == CONN_FRAMES_PER_EVENT) {
            event_active(c->read_ev, EV_READ, 0); /* behind the others' events */
            more = 1;
            break;
        }
        size_t used = 0;
        proto_frame f;
        proto_status st = proto_decode(c->dec, c->in + off, c->in_len - off, &used, &f);
        if (st == PROTO_NEED_MORE) break;
        frames++;
        c->last_rx_ms = now;      /* a whole frame, even a refused one, is life */
        if (st == PROTO_BAD_INPUT) {
            proto_err code = proto_decoder_err(c->dec);
            if (code == PROTO_E_UNKNOWN_TYPE && used > 0 && (c->flags & CONN_HELLO)) {
                /* Newer clients may send frames we do not know: refuse, go on. */
                conn_send_error(c, 0, code, "%s", proto_decoder_errstr(c->dec));
                off += used;
                continue;
            }
            conn_protocol_error(c, code, proto_decoder_errstr(c->dec));
            break;
        }
        off += used;
        handle_frame(c, &f);
    }
    if (c->flags & CONN_CLOSED) return 0;
    memmove(c->in, c->in + off, c->in_len - off);
    c->in_len -= off;
    /* A frame larger than the buffer: grow to hold it (its size was
     * checked against the decoder's limit). Once no such frame is
     * pending, a grown buffer goes back to the steady size. */
    size_t need = c->in_len >= PROTO_HEADER_SIZE ? PROTO_HEADER_SIZE + (size_t)proto_peek_length(c->in) : 0;
    if (need > c->in_cap && need <= PROTO_HEADER_SIZE + c->b->cfg->max_frame) {
        c->in = xrealloc(c->in, need);
        c->in_cap = need;
    } else if (c->in_cap > CONN_IN_STEADY && need <= CONN_IN_STEADY && c->in_len <= CONN_IN_STEADY) {
        c->in = xrealloc(c->in, CONN_IN_STEADY);
        c->in_cap = CONN_IN_STEADY;
    }
    return more;
}

/* Reads into buf as read(2) does: the count, 0 at the peer's end, or -1
 * with errno (EAGAIN: nothing now). A TLS connection reads through its
 * session. */
static ssize_t conn_recv(conn *c, void *buf, size_t len) {
    if (!c->tls) return read(c->fd, buf, len);
    tls_status st;
    size_t n = tls_read(c->tls, buf, len, &st);
    switch (st) {
    case TLS_DONE:
        return (ssize_t)n;
    case TLS_EOF:
        return 0;
    case TLS_WANT_WRITE:
        c->flags |= CONN_TLS_READ_WANTS_WRITE; /* the write event brings it back */
        conn_want_write(c);
        errno = EAGAIN;
        return -1;
    case TLS_WANT_READ:
        errno = EAGAIN;
        return -1;
    case TLS_FAILED:
        break;
    }
    errno = EPROTO;
    return -1;
}

/* Reads and handles input until the socket is drained, the connection must
 * wait, or it has had its turn. */
static void conn_read_input(conn *c) {
    if (c->flags & (CONN_PAUSED | CONN_CLOSED | CONN_CLOSE_AFTER_FLUSH)) return;
    /* Frames left from a turn cut short, or from a pause, go first. */
    if (c->in_len > 0 && conn_process_input(c)) return;
    for (int i = 0; i < CONN_READS_PER_EVENT; i++) {
        if (c->flags & (CONN_PAUSED | CONN_CLOSED | CONN_CLOSE_AFTER_FLUSH)) return;
        ssize_t n = conn_recv(c, c->in + c->in_len, c->in_cap - c->in_len);
        if (n == 0) {
            conn_close(c, "closed by peer");
            return;
        }
        if (n < 0) {
            if (errno == EINTR) continue;
            if (errno != EAGAIN && errno != EWOULDBLOCK) conn_close(c, strerror(errno));
            return;
        }
        c->in_len += (size_t)n;
        size_t room = c->in_cap - c->in_len + (size_t)n;
        if (conn_process_input(c)) return;
        if ((size_t)n < room) return; /* the socket is drained */
        if (c->in_cap < CONN_IN_STEADY && !(c->flags & (CONN_CLOSED | CONN_CLOSE_AFTER_FLUSH))) {
            /* A busy client: read it in bigger bites from now on. */
            c->in = xrealloc(c->in, c->in_cap * 2);
            c->in_cap *= 2;
        }
    }
}

static void conn_read_cb(evutil_socket_t fd, short what, void *arg) {
    conn *c = arg;
    if (c->flags & CONN_LINGER) {
        /* Raw bytes, TLS or not: they are thrown away. */
        char sink[4096];
        ssize_t n;
        while ((n = read(fd, sink, sizeof(sink))) > 0) {}
        if (n == 0 || (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)) conn_close(c, "closed after the last frame");
        return;
    }
    if (c->flags & CONN_TLS_HANDSHAKE) {
        conn_tls_handshake(c);
        return;
    }
    if (c->flags & CONN_TLS_WRITE_WANTS_READ) {
        c->flags &= ~CONN_TLS_WRITE_WANTS_READ;
        broker_schedule_flush(c->b, c);
    }
    conn_read_input(c);
    /* Bytes OpenSSL already took from the socket (a record bigger than the
     * room left) do not make the socket readable again: come back for them. */
    if (c->tls && !(c->flags & (CONN_PAUSED | CONN_CLOSED | CONN_CLOSE_AFTER_FLUSH)) && tls_has_pending(c->tls))
        event_active(c->read_ev, EV_READ, 0);
}

/* --------------------------------------------------------------- timers */

void conn_tick(conn *c, uint64_t now) {
    const config *cfg = c->b->cfg;
    if (c->flags & CONN_CLOSED) return;
    if (c->flags & CONN_CLOSE_AFTER_FLUSH) {
        if (now >= c->close_deadline_ms) conn_close(c, "output not flushed in time");
        return;
    }
    if ((c->flags & CONN_GOAWAY) && now >= c->close_deadline_ms) {
        conn_close_after_flush(c);    /* the client did not leave by itself */
        return;
    }
    if (!(c->flags & CONN_HELLO) && now - c->accepted_ms >= cfg->hello_timeout_ms) {
        c->b->ctr.hello_closed++;
        if (c->flags & CONN_TLS_HANDSHAKE) {
            conn_close(c, "TLS handshake not finished within --hello-timeout-ms"); /* no way to say why */
            return;
        }
        char text[96];
        snprintf(text, sizeof(text), "no HELLO within %llu ms of connecting", (unsigned long long)cfg->hello_timeout_ms);
        conn_close_with_error(c, PROTO_E_HELLO_REQUIRED, text);
        return;
    }
    uint64_t exp = auth_expires_ms(c);
    if (exp && (c->flags & CONN_HELLO) && auth_wall_ms() >= exp) {
        c->b->ctr.auth_refused++;
        conn_close_with_error(c, PROTO_E_UNAUTHORIZED, "token expired: send AUTH with a new one before it does");
        return;
    }
    if (c->flags & CONN_PAUSED) {
        /* Not read, so not heard: the heartbeat waits. A client that reads
         * none of its answers is as slow as one that reads no records. */
        if (c->out.bytes >= cfg->out_soft_limit && now - c->paused_since_ms >= cfg->slow_timeout_ms) {
            c->b->ctr.slow_closed++;
            conn_close_with_error(c, PROTO_E_SLOW_CONSUMER, "answers not read for too long: closing a slow consumer");
            return;
        }
        conn_input_resume(c);     /* a rate's wait may be over */
    } else if ((c->flags & CONN_HELLO) && now - c->last_rx_ms >= config_heartbeat_timeout_ms(cfg)) {
        c->b->ctr.heartbeat_closed++;
        char text[128];
        snprintf(text, sizeof(text), "nothing received for %llu ms", (unsigned long long)(now - c->last_rx_ms));
        conn_close_with_error(c, PROTO_E_HEARTBEAT_TIMEOUT, text);
        return;
    }
    if (c->over_soft_since_ms && now - c->over_soft_since_ms >= cfg->slow_timeout_ms) {
        c->b->ctr.slow_closed++;
        conn_close_with_error(c, PROTO_E_SLOW_CONSUMER, "output above the soft limit for too long: closing a slow consumer");
        return;
    }
    if ((c->flags & CONN_HELLO) && !(c->flags & CONN_PAUSED) && now - c->last_ping_ms >= cfg->heartbeat_ms) {
        c->last_ping_ms = now;
        proto_frame p = {.type = PROTO_PING, .token = ++c->ping_token};
        conn_send(c, &p);
    }
}

/* GOAWAY comes after every record already queued, and no record after it.
 * The connection stays readable a little while, so a request the client
 * sent before it read GOAWAY is answered (SHUTTING_DOWN) rather than lost
 * in a close; the client is expected to hang up and reconnect elsewhere,
 * and is closed after the grace (or the drain's end) if it does not. */
void conn_goaway(conn *c, const char *text) {
    if (c->flags & (CONN_CLOSED | CONN_CLOSE_AFTER_FLUSH | CONN_GOAWAY)) return;
    proto_frame g = {.type = PROTO_GOAWAY, .text = {text, strlen(text)}};
    conn_send(c, &g);
    c->flags |= CONN_GOAWAY;
    /* Its subscriptions end; PUBLISHes in flight still get their answer. */
    while (c->nsubs > 0) feed_unsubscribe(c->b->feeds, c->subs[c->nsubs - 1]);
    const config *cfg = c->b->cfg;
    uint64_t grace = cfg->drain_timeout_ms < cfg->goaway_grace_ms ? cfg->drain_timeout_ms : cfg->goaway_grace_ms;
    c->close_deadline_ms = broker_now_ms() + grace;
}
