/* broker.h -- the node's shared state: event loop, connections, feeds, Kafka handles, counters. */
#ifndef SUBWAY_BROKER_H
#define SUBWAY_BROKER_H

#include <stddef.h>
#include <stdint.h>
#include <sys/time.h>

#include "broker/config.h"
#include "broker/timeval.h"
#include "coord/coord.h"

struct event_base;
struct event;
struct evconnlistener;
struct evhttp;

typedef struct conn conn;
typedef struct sub sub;
typedef struct feed feed;
typedef struct topic topic;
typedef struct feed_table feed_table;
typedef struct upstream upstream;
typedef struct producer producer;
typedef struct dev_kafka dev_kafka;
typedef struct conn_auth conn_auth;

/* libevent priorities of the node's loop (event_base_priority_init with
 * BROKER_PRIOS): events run at BROKER_PRIO_DEFAULT unless set otherwise;
 * background work (catch-ups) runs only in turns with nothing else pending. */
#define BROKER_PRIOS 3
#define BROKER_PRIO_DEFAULT 1
#define BROKER_PRIO_BACKGROUND 2

/* Monotonic counters, shown by GET /stats. */
typedef struct broker_counters {
    uint64_t records_in;          /* records taken from Kafka */
    uint64_t bytes_in;            /* their key + value bytes: what the node read */
    uint64_t records_out;         /* MESSAGE frames queued to clients */
    uint64_t dropped;             /* MESSAGE frames dropped for slow clients */
    uint64_t lost;                /* records Kafka lost before the node read them */
    uint64_t slow_closed;         /* clients closed as slow consumers */
    uint64_t heartbeat_closed;    /* clients closed for silence */
    uint64_t protocol_errors;     /* clients closed for bad input */
    uint64_t auth_refused;        /* clients closed for a missing, bad or expired token */
    uint64_t forbidden;           /* SUBSCRIBEs and PUBLISHes refused as not allowed */
    uint64_t hello_closed;        /* clients closed for sending no HELLO in --hello-timeout-ms */
    uint64_t input_paused;        /* times a client's input waited: answers unread, PUBLISH limits */
    uint64_t conns_accepted;
    uint64_t conns_refused;       /* over --max-conns */
    uint64_t tls_handshakes;      /* TLS handshakes completed */
    uint64_t tls_handshake_failed; /* TLS connections closed for a failed handshake (not for a slow one: hello_closed) */
    uint64_t catchup_records;     /* MESSAGE frames of catch-ups queued to clients */
    uint64_t catchup_missing;     /* records catch-ups asked for that Kafka no longer held (DROPPED) */
    uint64_t catchup_yields;      /* readers sent to the back of the queue for others */
    uint64_t oversize;            /* records too big for --max-message, sent as DROPPED 1 */
    uint64_t headers_cut;         /* records read with more headers than a MESSAGE carries (10000) */
} broker_counters;

typedef struct broker {
    config *cfg;                  /* not owned */
    struct event_base *base;
    char node_id[128];
    char *kafka_bootstrap;        /* what the node reads from */
    uint64_t start_ms;

    struct evconnlistener *listener;
    struct evconnlistener *tls_listener; /* --tls-listen, or NULL */
    struct ssl_ctx_st *tls_ctx;   /* tls.c's server context, NULL without --tls-listen */
    struct evhttp *admin;
    int auth_mode;                /* an auth_mode (auth.h) */
    struct jwt_keys *keys;        /* --auth-*-key-file, NULL with --auth off */
    struct acl *anon_acl;         /* --anonymous-acl */
    char *admin_token;            /* --admin-token-file's token, or NULL: the admin asks for none */
    size_t admin_token_len;
    struct event *tick_ev;        /* heartbeats, slow-consumer timeouts */
    struct event *flush_ev;       /* writes queued output once per loop turn */
    int flush_armed;
    struct event *sig_ev[2];      /* SIGTERM, SIGINT */
    struct event *drain_ev;       /* drain deadline */
    struct event *catchup_wake;   /* catchup.c's: a connection with parked catch-ups drained */
    struct event *health_ev;      /* health.c: Kafka probes */
    int probe_inflight;
    int kafka_state;              /* -1 not asked yet, 0 unreachable, 1 answering */
    char kafka_err[256];          /* why, when unreachable */

    conn *conns;                  /* every open connection */
    size_t nconns;
    conn *flush_list;             /* connections with output to write */
    conn *free_list;              /* closed connections, freed by flush_ev */
    uint64_t next_conn_id;
    int draining;

    feed_table *feeds;
    upstream *up;
    upstream *history;            /* the catch-ups' consumer */
    producer *prod;
    coord *coord;
    dev_kafka *dev;

    broker_counters ctr;
} broker;

/* Milliseconds of CLOCK_MONOTONIC. */
uint64_t broker_now_ms(void);


/* Puts c (if not NULL) on the flush list and arms the flush event, so queued
 * output is written and closed connections freed at the end of this loop turn. */
void broker_schedule_flush(broker *b, conn *c);

/* Starts the SIGTERM drain: GOAWAY to every client, stop accepting, exit
 * once flushed or after --drain-timeout-ms. */
void broker_drain(broker *b);

#endif
