/* conn.h -- one client connection: input decoding, requests, output queue, limits, heartbeats. */
#ifndef SUBWAY_CONN_H
#define SUBWAY_CONN_H

#include <stdint.h>

#include "broker/broker.h"
#include "broker/outq.h"
#include "broker/ratelimit.h"
#include "proto/proto.h"

struct event;
struct ssl_st;

enum {
    CONN_HELLO = 1 << 0,          /* HELLO received */
    CONN_CLOSE_AFTER_FLUSH = 1 << 1, /* stop reading; close once output is written */
    CONN_CLOSED = 1 << 2,         /* released; waiting on the broker's free list */
    CONN_IN_FLUSH = 1 << 3,       /* on the broker's flush list */
    CONN_WANT_WRITE = 1 << 4,     /* write event armed: the socket was full */
    CONN_KILL = 1 << 5,           /* over the hard output limit: close at the next flush */
    CONN_LINGER = 1 << 6,         /* FIN sent; discarding input until the peer closes */
    CONN_REFUSED = 1 << 7,        /* over --max-conns: not counted in nconns */
    CONN_GOAWAY = 1 << 8,         /* GOAWAY sent: no records; requests refused; closed at close_deadline_ms */
    CONN_PAUSED = 1 << 9,         /* input not read: answers unread, or PUBLISH over its limits (conn_input_blocked) */
    CONN_TLS_HANDSHAKE = 1 << 10, /* TLS handshake not finished: no frame in or out yet */
    CONN_TLS_READ_WANTS_WRITE = 1 << 11, /* SSL_read waits for the socket to be writable */
    CONN_TLS_WRITE_WANTS_READ = 1 << 12, /* SSL_write waits for the socket to be readable */
};

/* The largest frame before HELLO: a HELLO with a token fits; more is refused. */
#define CONN_HELLO_MAX_FRAME 16384

typedef struct pub_req pub_req;

struct conn {
    broker *b;
    uint64_t id;
    int fd;
    int flags;
    int version;                  /* protocol version, from HELLO (0 before) */
    conn_auth *auth;              /* the token's identity and permissions; NULL: none shown (auth.c) */
    char peer[64];
    struct ssl_st *tls;           /* TLS session (--tls-listen), NULL on the plain port */
    struct event *read_ev;
    struct event *write_ev;
    char *in;                     /* input buffer, at most max_frame + header */
    size_t in_len;
    size_t in_cap;
    proto_decoder *dec;
    proto_buf scratch;            /* control frames are encoded here first */
    outq out;
    uint64_t accepted_ms;
    uint64_t last_rx_ms;          /* a whole frame received (a trickle of bytes is no sign of life) */
    uint64_t paused_since_ms;     /* CONN_PAUSED: since when */
    uint64_t last_ping_ms;
    uint64_t ping_token;
    uint64_t over_soft_since_ms;  /* first drop since the queue was last below the soft limit */
    uint64_t close_deadline_ms;   /* CONN_CLOSE_AFTER_FLUSH: close by then regardless */
    int has_dropped;              /* some sub has a DROPPED count to report */
    int cu_parked;                /* catch-up partitions waiting for this queue to drain (catchup.c) */
    sub **subs;                   /* pending and active subscriptions: linked and unlinked by sub.c only */
    size_t nsubs;
    size_t subs_cap;
    pub_req *pubs;                /* PUBLISHes awaiting Kafka's ack */
    size_t npubs;                 /* how many: at --max-publish-inflight, input waits */
    ratelimit pub_rate;           /* --publish-rate */
    ratelimit pub_bytes;          /* --publish-bytes-rate */
    ratelimit auth_rate;          /* AUTH frames (CONN_AUTH_PER_S) */
    conn *prev, *next;            /* broker's list of connections */
    conn *next_flush;             /* broker's flush list */
    conn *next_free;              /* broker's free list */
};

/* Takes ownership of the accepted socket fd; tls: it came to --tls-listen,
 * and speaks TLS (the handshake is driven by the connection's events, and
 * must end before --hello-timeout-ms). Returns the connection. Sends ERROR
 * TOO_MANY_CONNS and closes when the node is at --max-conns. */
conn *conn_new(broker *b, int fd, const char *peer, int tls);

/* Queues a control frame. Returns 0, or -1 when the connection is closing or
 * was closed for going over the hard output limit. */
int conn_send(conn *c, const proto_frame *f);

/* Queues ERROR{req_id, code, text}. */
void conn_send_error(conn *c, uint64_t req_id, proto_err code, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* Fan-out: queues a reference to bytes [off, off + len) of a block of s's
 * feed's frames (records MESSAGE frames, DROPPED frames counting lost), or
 * drops and counts them when the connection is over its soft output limit. */
void conn_deliver(conn *c, sub *s, outq_block *block, size_t off, size_t len, uint32_t records, uint64_t lost);

/* 1 when c's output queue is below its soft limit: it takes records. */
int conn_takes_records(const conn *c);

/* Writes what the connection has queued; called by the broker's flush. */
void conn_flush(conn *c);

/* Reads input again if it was paused and what paused it has passed (the
 * answers were read, Kafka acknowledged PUBLISHes, the rate allows). */
void conn_input_resume(conn *c);

/* Heartbeat and slow-consumer checks, from the broker's tick. */
void conn_tick(conn *c, uint64_t now_ms);

/* Stops reading, releases the subscriptions, and closes once the queued
 * output is written (or after a short deadline). */
void conn_close_after_flush(conn *c);

/* Sends GOAWAY and closes the connection once its output is written. */
void conn_goaway(conn *c, const char *text);

/* Closes now: releases subscriptions, stops events, and queues the memory
 * for the broker to free after the current callback. */
void conn_close(conn *c, const char *why);

/* Frees a closed connection (the broker calls this from flush_ev). */
void conn_free(conn *c);


#endif
