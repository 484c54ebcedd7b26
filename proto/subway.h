/* subway.h -- libsubway, the client library for subway nodes: an event-loop API and a blocking one over it. */
#ifndef SUBWAY_H
#define SUBWAY_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* What this header declares is the library's interface; the shared library
 * is built with -fvisibility=hidden and exports these only. */
#if defined(__GNUC__) && __GNUC__ >= 4
#pragma GCC visibility push(default)
#endif

/*
 * One subway_client is one TCP connection to one node. Two ways to drive it:
 *
 *  - Event loop: subway_client_new(), subway_client_connect(), then watch
 *    subway_client_fd() for reading (and for writing while
 *    subway_client_want_write()), call subway_client_process_readable() /
 *    subway_client_flush() when it is ready, and subway_client_tick() when
 *    subway_client_timeout_ms() expires. Requests queue frames and report
 *    through callbacks.
 *  - Blocking: subway_connect(), the *_sync() requests and subway_poll(),
 *    which run the same machinery with poll(2) inside.
 *
 * A client is not thread safe: use it from one thread at a time.
 *
 * Errors. Functions return 0 / -1 (or a count / a req_id). A failed
 * connection sets a sticky code and text, read with subway_err() and
 * subway_errstr(); the client then stays failed (create a new one to
 * reconnect, or set options.reconnect, below). A request the node refuses
 * does not fail the connection: its
 * callback (or subway_request_err() for the blocking calls) gets the code.
 * Codes are either one the node sent in an ERROR frame (1..99, the
 * protocol's codes, SUBWAY_E_VERSION .. SUBWAY_E_INTERNAL below) or a
 * client-side one (>= 100). This header stands alone: it is the only one
 * installed (as <subway/subway.h>), and the codec's types stay internal.
 *
 * Linking. Every symbol the library exports starts with subway_; pkg-config
 * gives the flags: cc prog.c $(pkg-config --cflags --libs subway).
 *
 * Callbacks. Every callback is called exactly once per event, from inside
 * the library call that handled it (process_readable, flush, tick, poll, a
 * request function, free, ...). Pointers passed to callbacks are valid only
 * during the callback. Callbacks may issue requests and may call
 * subway_client_close() or subway_client_free(); a free is deferred until the
 * library call that ran the callback returns, which then returns -1, and the
 * caller must not use the client after it.
 *
 * Bounds. Frames from the node above options.max_frame fail the connection
 * (SUBWAY_E_PROTOCOL); the input buffer never grows beyond max_frame + 4.
 * Queued output is bounded by options.max_output: a request that would
 * exceed it is refused with SUBWAY_E_OUTPUT_FULL (the connection is fine,
 * retry after flushing); PONGs may use 64 KiB beyond it, past which the node
 * is not reading and the connection fails. Requests awaiting a reply are
 * bounded by options.max_pending (SUBWAY_E_TOO_MANY_PENDING).
 *
 * Heartbeats. The node sends PING every heartbeat_ms (from WELCOME); the
 * library answers each with PONG by itself. If nothing at all arrives for
 * 3 x heartbeat_ms the node is considered dead and the connection fails with
 * SUBWAY_E_TIMEOUT. Until WELCOME arrives, options.timeout_ms bounds connect
 * plus handshake the same way.
 *
 * Feeds. subway_subscribe*() creates a subscription; its reply carries the
 * subscription's feed id (res->feed), which every MESSAGE, DROPPED and
 * LIVE callback of it carries and subway_unsubscribe() takes. Feed ids are
 * the library's own, not the node's handles: 1, 2, 3 ... in the order of
 * the subscribe calls, never reused by one client, and the same for the
 * whole life of the subscription, across reconnects. The node's handle for
 * it on the current connection is subway_feed_handle() (for logs; a new
 * node gives a new one). The library remembers, per feed and partition,
 * the offset of the next record (subway_feed_positions()): the offset after
 * the last MESSAGE of that partition, or LIVE's position for it when LIVE
 * came later (PROTOCOL.md 5.8); LIVE names every partition the feed reads.
 *
 * Reconnect (options.reconnect = 1). Once a connection has reached
 * WELCOME, losing it (network error, EOF, GOAWAY then close, heartbeat
 * silence, an undecodable frame, a connection ERROR) is not final: the
 * library closes the socket, waits a backoff delay, and connects again to
 * the same address (resolved anew), for ever, until subway_client_close()
 * or subway_client_free(). The delay before attempt n (1, 2, ...) is drawn
 * uniformly from [0, min(reconnect_max_ms, reconnect_base_ms * 2^(n-1))]
 * ("full jitter"), so that many clients of a node that went away do not
 * come back at the same moment; a WELCOME starts the count again. On the
 * new connection every subscription is sent SUBSCRIBE again before any
 * other request: with start POSITIONS of its remembered positions when it
 * has any (or had LIVE), else with its original start; a subscription
 * resumed with its original start after some records skips the records it
 * already delivered. A version-1 node cannot resume: its subscriptions are
 * sent again without a start (on_reconnect says so: records of the gap may
 * be missing). Meanwhile:
 *  - requests awaiting a reply when the connection went (PUBLISH,
 *    UNSUBSCRIBE) fail with SUBWAY_E_LOST; new ones fail with it too until
 *    the new WELCOME. A SUBSCRIBE awaiting its first reply is not failed: it
 *    is sent again, and its callback runs once, on whichever connection
 *    answers. Unsubscribing a feed while disconnected completes at once.
 *  - subway_err() stays 0; on_close is not called; on_reconnect reports
 *    each step; a subscription the new node refuses for good ends with
 *    on_feed_lost (UNAVAILABLE, SHUTTING_DOWN, KAFKA and INTERNAL refusals
 *    are retried after a backoff delay instead).
 *  - the socket changes: subway_client_fd() is -1 while waiting (watch only
 *    subway_client_timeout_ms() then) and a new descriptor once an attempt
 *    starts (on_reconnect's ATTEMPT). Event loops must read the fd anew
 *    after every library call; the blocking API does it itself.
 * A failure before the first WELCOME (bad address, refused, no WELCOME in
 * time) stays final, as without reconnect, so a wrong address is reported
 * at once rather than retried for ever.
 */

/* Error codes. Below 100 the node sent them (PROTOCOL.md lists them: "close"
 * ones end the connection, "refuse" ones fail one request); from 100 up the
 * library found the problem itself. */
typedef enum subway_err_code {
    SUBWAY_OK = 0,
    SUBWAY_E_VERSION = 1,            /* close: unsupported protocol version */
    SUBWAY_E_FRAME_TOO_LARGE = 2,    /* close: a frame above the node's max_frame */
    SUBWAY_E_MALFORMED = 3,          /* close: a body that is not one valid msgpack value */
    SUBWAY_E_BAD_FRAME = 4,          /* close: not an array, wrong field count or types */
    SUBWAY_E_UNKNOWN_TYPE = 5,       /* refuse: frame type not known to the node */
    SUBWAY_E_HELLO_REQUIRED = 6,     /* close: first frame was not HELLO, or HELLO repeated */
    SUBWAY_E_TOO_MANY_SUBS = 7,      /* refuse: per-connection subscription limit */
    SUBWAY_E_TOO_MANY_CONNS = 8,     /* close: the node's connection limit */
    SUBWAY_E_INVALID_ARG = 9,        /* refuse: empty/oversize topic or key, bad name */
    SUBWAY_E_UNKNOWN_TOPIC = 10,     /* refuse: topic does not exist in Kafka */
    SUBWAY_E_ALREADY_SUBSCRIBED = 11, /* refuse: this connection already has that feed */
    SUBWAY_E_NOT_SUBSCRIBED = 12,    /* refuse: UNSUBSCRIBE of a feed not held (the library
                                      * says it too, for a feed id it has no subscription for) */
    SUBWAY_E_KAFKA = 13,             /* refuse: Kafka failed the request (text says why) */
    SUBWAY_E_HEARTBEAT_TIMEOUT = 14, /* close: this client was silent past the heartbeat timeout */
    SUBWAY_E_SLOW_CONSUMER = 15,     /* close: this client read too slowly */
    SUBWAY_E_SHUTTING_DOWN = 16,     /* refuse: the node is draining */
    SUBWAY_E_UNAVAILABLE = 17,       /* refuse: coordination or Kafka temporarily unavailable */
    SUBWAY_E_INTERNAL = 18,          /* refuse: node-side failure */
    SUBWAY_E_UNAUTHORIZED = 19,      /* close: token missing, invalid or expired */
    SUBWAY_E_FORBIDDEN = 20,         /* refuse: this client may not subscribe or publish there */
    SUBWAY_E_IO = 100,               /* socket error: connect, read or write failed */
    SUBWAY_E_EOF = 101,              /* the node closed the connection */
    SUBWAY_E_PROTOCOL = 102,         /* the node sent an oversized, malformed or unexpected frame */
    SUBWAY_E_TIMEOUT = 103,          /* connect/handshake, heartbeat or blocking-call timeout */
    SUBWAY_E_NOMEM = 104,            /* out of memory */
    SUBWAY_E_ARG = 105,              /* bad argument: address, topic, frame above the node's max_frame */
    SUBWAY_E_STATE = 106,            /* call not valid now: not connected, blocking call in a callback */
    SUBWAY_E_CLOSED = 107,           /* request not answered: the connection closed or the client was freed */
    SUBWAY_E_OUTPUT_FULL = 108,      /* output buffer at options.max_output */
    SUBWAY_E_TOO_MANY_PENDING = 109, /* options.max_pending requests already await replies */
    SUBWAY_E_GOAWAY = 110,           /* the node closed the connection after GOAWAY */
    SUBWAY_E_LOST = 111,             /* request not answered: the connection was lost, options.reconnect is making a new one; retry it */
    SUBWAY_E_UNSUPPORTED = 112,      /* the node's protocol version lacks it: a start position on a version-1 node */
} subway_err_code;

typedef struct subway_client subway_client;

/* The request a reply belongs to; the values are the frame types. */
typedef enum subway_req_type {
    SUBWAY_REQ_SUBSCRIBE = 3,
    SUBWAY_REQ_UNSUBSCRIBE = 5,
    SUBWAY_REQ_PUBLISH = 8,
} subway_req_type;

/* Where a subscription starts in Kafka's log (PROTOCOL.md 3.3, 5.8). */
typedef enum subway_start_mode {
    SUBWAY_START_LIVE = 0,           /* no start: records produced from now on (protocol 1's only mode) */
    SUBWAY_START_POSITIONS = 1,      /* each listed partition at its listed offset; the others live */
    SUBWAY_START_TIMESTAMP = 2,      /* arg: ms since the epoch; each partition's first record at or after it */
    SUBWAY_START_LAST = 3,           /* arg: N; N records before each partition's log end (kcat -o -N) */
    SUBWAY_START_BEGINNING = 4,      /* each partition's log start; arg unused (0) */
    SUBWAY_START_OFFSET = 5,         /* arg: that offset in every partition */
} subway_start_mode;

/* A partition and the offset of the next record in it: the one wanted (a
 * start), or the one to come (remembered, LIVE). The last record seen + 1. */
typedef struct subway_position {
    uint32_t partition;
    uint64_t offset;                 /* at most INT64_MAX */
} subway_position;

/* A subscription's start. Zero-initialised it is SUBWAY_START_LIVE. */
typedef struct subway_start {
    subway_start_mode mode;
    int64_t arg;                     /* TIMESTAMP (any), LAST and OFFSET (>= 0); 0 otherwise */
    const subway_position *positions; /* POSITIONS: position_cnt entries (copied), at most 100000 */
    size_t position_cnt;
} subway_start;

/* One record header. name is never NULL; value NULL means nil. Not
 * NUL-terminated. */
typedef struct subway_header {
    const char *name;
    size_t name_len;
    const char *value;
    size_t value_len;
} subway_header;

/* What a request's reply carried. Fields not meaningful for `type` are 0/NULL. */
typedef struct subway_result {
    uint64_t req_id;                 /* the request's id, as returned when it was queued */
    subway_req_type type;
    uint64_t feed;                   /* subscribe, unsubscribe: the feed id (see Feeds above) */
    const uint32_t *partitions;      /* subscribe: the feed's Kafka partitions */
    size_t partition_cnt;
    uint32_t partition;              /* publish: where the record went */
    uint64_t offset;                 /* publish: its offset */
} subway_result;

/* One record of a subscribed feed. Byte strings are not NUL-terminated; a
 * NULL pointer means msgpack nil (no key / tombstone value). */
typedef struct subway_message {
    uint64_t feed;                   /* the subscription's feed id; 0 for a handle no subscription has */
    const char *topic;               /* the feed's topic, NUL-terminated; NULL when feed is 0 */
    uint32_t partition;
    uint64_t offset;
    int64_t timestamp_ms;            /* -1 when Kafka has none */
    const char *key;
    size_t key_len;
    const char *value;
    size_t value_len;
    const subway_header *headers;    /* header_cnt entries; NULL when none */
    size_t header_cnt;
} subway_message;

/* Completion of one request: err is 0 or a SUBWAY_E_* code, below 100 when
 * the node refused it, SUBWAY_E_CLOSED when the connection went away before
 * the reply (errstr then says why it went away). errstr is "" on success.
 * res is never NULL; res->req_id and res->type are always set. */
typedef void subway_reply_cb(subway_client *c, void *cb_data, int err,
                             const char *errstr, const subway_result *res);

/* A MESSAGE frame arrived. */
typedef void subway_message_cb(subway_client *c, void *cb_data, const subway_message *m);
/* The node dropped `count` records of `feed` (this client was slow, or
 * Kafka lost them: PROTOCOL.md 3.11). feed is 0 for a handle no
 * subscription has. */
typedef void subway_dropped_cb(subway_client *c, void *cb_data, uint64_t feed, uint64_t count);
/* LIVE: `feed` caught up and follows the live feed from here on.
 * positions are LIVE's (position_cnt entries, sorted by partition), which
 * are now the feed's remembered ones: where it stands in every partition
 * it reads. Comes once per subscription and connection, on version-2
 * nodes only. */
typedef void subway_live_cb(subway_client *c, void *cb_data, uint64_t feed,
                            const subway_position *positions, size_t position_cnt);
/* The node is going away (draining); it will close the connection soon. */
typedef void subway_goaway_cb(subway_client *c, void *cb_data, const char *text);
/* An ERROR frame not tied to a pending request: req_id is 0 (a connection
 * error, usually followed by the node closing) or an id no request has. */
typedef void subway_error_cb(subway_client *c, void *cb_data, uint64_t req_id, int code,
                             const char *text);
/* WELCOME arrived: subway_node_id() and friends are now set. */
typedef void subway_welcome_cb(subway_client *c, void *cb_data);
/* The connection ended: err and errstr are the sticky error (SUBWAY_E_CLOSED,
 * "client freed" when subway_client_free() closed it). Called exactly once
 * for each client whose subway_client_connect() returned 0, after the
 * pending requests' callbacks. */
typedef void subway_close_cb(subway_client *c, void *cb_data, int err, const char *errstr);

/* The steps of a reconnect (options.reconnect), in the order they come. */
typedef enum subway_reconnect_event {
    SUBWAY_RECONNECT_LOST = 1,       /* the connection (or an attempt) failed: err, errstr; the
                                      * socket is closed, attempt `attempt` starts in delay_ms */
    SUBWAY_RECONNECT_ATTEMPT = 2,    /* attempt `attempt` started: subway_client_fd() is its new socket */
    SUBWAY_RECONNECT_DONE = 3,       /* WELCOME arrived and every subscription was sent again */
} subway_reconnect_event;

/* What on_reconnect is told. errstr is "" when err is 0; valid during the callback. */
typedef struct subway_reconnect_info {
    subway_reconnect_event event;
    int err;                         /* LOST: why the connection or attempt failed (a SUBWAY_E_* code) */
    const char *errstr;
    unsigned attempt;                /* 1 for the first attempt after a loss, then 2, 3, ... */
    int delay_ms;                    /* LOST: the backoff delay before the attempt */
    size_t feed_cnt;                 /* DONE: subscriptions sent again */
    int resumed;                     /* DONE: 1 when they resume from their positions; 0 on a
                                      * version-1 node, which restarts them live (a gap may be lost) */
} subway_reconnect_info;

typedef void subway_reconnect_cb(subway_client *c, void *cb_data, const subway_reconnect_info *info);
/* After a reconnect the node refused, for good, to restore subscription
 * `feed` (err: its code, or SUBWAY_E_UNSUPPORTED); the feed id is
 * forgotten once this returns. Never called for a subscription whose
 * subscribe callback has not run yet: that callback gets the refusal. */
typedef void subway_feed_lost_cb(subway_client *c, void *cb_data, uint64_t feed, int err,
                                 const char *errstr);

/* Connection-level callbacks; any may be NULL. All get cb_data. */
typedef struct subway_callbacks {
    subway_message_cb *on_message;
    subway_dropped_cb *on_dropped;
    subway_goaway_cb *on_goaway;
    subway_error_cb *on_error;
    subway_welcome_cb *on_welcome;   /* on every connection's WELCOME, reconnects included */
    subway_close_cb *on_close;
    subway_live_cb *on_live;
    subway_reconnect_cb *on_reconnect;
    subway_feed_lost_cb *on_feed_lost;
    void *cb_data;
} subway_callbacks;

/* Zero-initialise, then set what you need; 0/NULL fields take the default. */
typedef struct subway_options {
    const char *client_name;         /* sent in HELLO; default "libsubway" (copied) */
    size_t max_frame;                /* largest frame body accepted from the node; default 16 MiB (a
                                      * node's default --max-message: every MESSAGE it sends), min 64 */
    size_t max_output;               /* bound on queued output bytes; default 8 MiB */
    size_t max_pending;              /* bound on requests awaiting replies; default 65536 */
    int timeout_ms;                  /* connect+handshake and blocking-request timeout; default 10000, <0 none */
    int reconnect;                   /* 1: reconnect and resume after a loss (see Reconnect); 0: failures are final */
    int reconnect_base_ms;           /* backoff ceiling of the first attempt; default 100 */
    int reconnect_max_ms;            /* limit of the doubling ceiling; default 10000 */
    subway_callbacks cb;
} subway_options;

/* TLS to a node's --tls-listen port (README "TLS"). Zero-initialise, then
 * set what you need; NULL fields take the default. */
typedef struct subway_tls {
    const char *ca_file;             /* PEM CAs the node's certificate must chain to; NULL: the system's */
    const char *cert_file;           /* PEM client certificate (chain) for --tls-verify-client; NULL: none */
    const char *key_file;            /* its PEM private key; NULL: in cert_file */
    const char *server_name;         /* name the node's certificate must carry (and SNI); NULL: the
                                      * host of the address connected to (a name, or an IP address) */
    void *reserved[4];               /* NULL: room for later fields without an ABI break */
} subway_tls;

/* --------------------------------------------------------- event-loop API */

/* Returns a new, unconnected client configured from opt (NULL = defaults;
 * opt is copied, nothing in it is kept), or NULL when out of memory. */
subway_client *subway_client_new(const subway_options *opt);

/* Starts connecting to "host:port" ("[v6addr]:port" for IPv6) and queues
 * HELLO. The connect itself is non-blocking (name resolution is not: use a
 * numeric address inside an event loop); it completes under
 * subway_client_flush() / process_readable(). Requests may be queued at
 * once; they are held back (counting against max_output) until WELCOME
 * arrives, as the protocol asks, and checked against the default max_frame
 * rather than the node's.
 * Returns 0, or -1: with the sticky error set (SUBWAY_E_ARG for a bad
 * address, SUBWAY_E_IO), or with c untouched when connect was already
 * called. on_close is not called for a connect that returned -1. addr is
 * not kept. */
int subway_client_connect(subway_client *c, const char *addr);

/* The socket to watch, or -1 before connect. It stays open, even after the
 * connection failed, until subway_client_free(), so its number is never
 * reused under your event loop. */
int subway_client_fd(const subway_client *c);

/* Reads what the socket has until it would block, decodes every complete
 * frame and dispatches it (PINGs are answered, replies go to request
 * callbacks, the rest to the connection callbacks), then tries to flush.
 * Returns 0, or -1 when the connection is closed or failed (sticky error
 * set, pending requests and on_close already called back). Called from
 * inside a callback it does nothing and returns 0. */
int subway_client_process_readable(subway_client *c);

/* Returns 1 when output can be written (queued and, before WELCOME, part of
 * HELLO) or the connect is still in progress: watch the fd for writing.
 * Else 0. */
int subway_client_want_write(const subway_client *c);

/* Writes queued output until the socket would block. Returns 0 (possibly
 * with output left: see want_write), or -1 when the connection failed. */
int subway_client_flush(subway_client *c);

/* Milliseconds until the library needs subway_client_tick() (heartbeat or
 * handshake deadline), 0 if already due, -1 when there is no deadline. */
int subway_client_timeout_ms(const subway_client *c);

/* Fails the connection with SUBWAY_E_TIMEOUT if its deadline passed (node
 * silent for 3 x heartbeat_ms, or no WELCOME within timeout_ms). Returns 0,
 * or -1 when the connection is (now) closed. */
int subway_client_tick(subway_client *c);

/* Closes the connection as if it failed with SUBWAY_E_CLOSED "closed by
 * client": pending requests and on_close are called back. Keeps the object
 * (and its fd) for subway_err() etc. until subway_client_free(). No-op when
 * already closed. */
void subway_client_close(subway_client *c);

/* Closes the connection if open (pending requests get SUBWAY_E_CLOSED
 * "client freed", then on_close) and frees c; accepts NULL. From inside a
 * callback the free is deferred, see above. Queued output not yet flushed is
 * discarded. */
void subway_client_free(subway_client *c);

/* Requests. Each queues one frame and returns the req_id it used (counting
 * from 1), or -1 when it could not be queued; cb has then already been
 * called with the error (exactly once either way). cb may be NULL. Strings
 * and byte buffers are copied; nothing is kept after the call returns. */

/* SUBSCRIBE to topic (NUL-terminated) and key (key_len bytes; key NULL =
 * every key), live: records produced from now on. On success res->feed is
 * the subscription's feed id (see Feeds above), and res->partitions the
 * Kafka partitions behind it (valid during the callback; afterwards
 * subway_feed_partitions()). Same as subway_subscribe_from() with start NULL. */
int64_t subway_subscribe(subway_client *c, const char *topic, const char *key, size_t key_len,
                         subway_reply_cb *cb, void *cb_data);

/* SUBSCRIBE as above, starting at start (NULL or SUBWAY_START_LIVE: live;
 * copied, nothing kept). The node sends the history from there, then LIVE
 * (on_live) once the subscription has caught up. A start on a version-1
 * node (subway_protocol_version() 1) is refused by the library with
 * SUBWAY_E_UNSUPPORTED, never sent: at once when WELCOME is already there,
 * else when it arrives. A malformed start (unknown mode, negative LAST or
 * OFFSET, positions NULL or above 100000 or an offset above INT64_MAX) is
 * refused with SUBWAY_E_ARG. */
int64_t subway_subscribe_from(subway_client *c, const char *topic, const char *key,
                              size_t key_len, const subway_start *start, subway_reply_cb *cb,
                              void *cb_data);

/* UNSUBSCRIBE feed (a feed id). From this call on, MESSAGE and DROPPED
 * frames of the feed that were already on their way are ignored (again
 * delivered if the node refuses the request); the feed's topic stays known
 * until the reply. A feed the node holds no handle for right now (while
 * reconnecting) is forgotten at once: cb runs before this returns. An id
 * this client has no subscription for is refused with
 * SUBWAY_E_NOT_SUBSCRIBED by the library. */
int64_t subway_unsubscribe(subway_client *c, uint64_t feed, subway_reply_cb *cb, void *cb_data);

/* PUBLISH value (NULL = nil) under key (NULL = nil key, Kafka picks the
 * partition) to topic. On success res->partition and res->offset are set.
 * A frame above the node's max_frame (1 MiB, the protocol default, until WELCOME)
 * is refused with SUBWAY_E_ARG. */
int64_t subway_publish(subway_client *c, const char *topic, const char *key, size_t key_len,
                       const char *value, size_t value_len, subway_reply_cb *cb, void *cb_data);

/* ------------------------------------------------------------ blocking API */

/* Connects to addr, sends HELLO and waits for WELCOME, at most
 * opt->timeout_ms in all. Returns the client, NULL only when out of memory
 * (or when one of opt's callbacks freed the client during the handshake).
 * Check subway_err(c): non-zero means it failed (errstr says why, e.g.
 * "connect 127.0.0.1:7700: Connection refused"); free c either way. */
subway_client *subway_connect(const char *addr, const subway_options *opt);

/* subway_connect() showing a token (a JWT) in HELLO; see subway_set_token(). */
subway_client *subway_connect_token(const char *addr, const subway_options *opt, const char *token);

/* subway_connect_token() over TLS (see subway_set_tls()); token and tls may
 * be NULL (none, plain TCP). A TLS failure (unknown CA, a certificate not
 * naming the node) is the sticky error: SUBWAY_E_ARG for files that cannot
 * be read, SUBWAY_E_IO with OpenSSL's reason for the handshake. */
subway_client *subway_connect_tls(const char *addr, const subway_options *opt, const char *token,
                                  const subway_tls *tls);

/* Blocking requests: queue the request, then dispatch incoming frames (all
 * callbacks run as usual) until its reply or options.timeout_ms. Return 0
 * and fill the out parameters (each may be NULL), or -1 with the reason in
 * subway_request_err()/subway_request_errstr(); subway_err() is also set if
 * the connection failed. On timeout (SUBWAY_E_TIMEOUT) the request stays
 * outstanding: a late reply is applied (a late SUBSCRIBED still creates the
 * feed) but reported to nobody. Not allowed inside callbacks (SUBWAY_E_STATE). */
int subway_subscribe_sync(subway_client *c, const char *topic, const char *key, size_t key_len,
                          uint64_t *feed);
int subway_subscribe_from_sync(subway_client *c, const char *topic, const char *key,
                               size_t key_len, const subway_start *start, uint64_t *feed);
int subway_unsubscribe_sync(subway_client *c, uint64_t feed);
int subway_publish_sync(subway_client *c, const char *topic, const char *key, size_t key_len,
                        const char *value, size_t value_len, uint32_t *partition, uint64_t *offset);

/* Flushes output and waits up to timeout_ms (-1 = no limit, 0 = just what is
 * already there) for frames, dispatching them. Returns the number of frames
 * handled (PINGs included) once at least one was, 0 on timeout or when a
 * signal interrupted the wait, -1 when the connection is closed or failed
 * (errstr says why, e.g. on heartbeat silence). Called from inside a
 * callback it does nothing and returns 0. */
int subway_poll(subway_client *c, int timeout_ms);

/* The outcome of the last blocking request: 0 or a SUBWAY_E_* code, and its
 * text (owned by c, valid until the next blocking request). */
int subway_request_err(const subway_client *c);
const char *subway_request_errstr(const subway_client *c);

/* ------------------------------------------------------------- accessors */

/* The sticky connection error: 0 while healthy, else a code as above. */
int subway_err(const subway_client *c);
/* Its text, "" while healthy; owned by c, valid until subway_client_free(). */
const char *subway_errstr(const subway_client *c);

/* From WELCOME: the node's id (owned by c; NULL before WELCOME), its
 * heartbeat interval and the largest frame body it accepts (0 before). */
const char *subway_node_id(const subway_client *c);
uint64_t subway_heartbeat_ms(const subway_client *c);
/* The protocol version the connection speaks, from WELCOME: 3, 2 for a
 * node that predates tokens, 1 for one that predates start positions and
 * LIVE; 0 before WELCOME. The library offers PROTOCOL.md's newest (3). */
uint64_t subway_protocol_version(const subway_client *c);
uint64_t subway_max_frame(const subway_client *c);

/* Sets the token (a JWT: see README "Access control") this client shows:
 * in every HELLO from now on (so reconnects use it), and at once in an
 * AUTH frame when connected on version 3, to replace one about to expire.
 * The node answers a refused AUTH with ERROR naming its request: FORBIDDEN
 * (the connection keeps its old token) or UNAUTHORIZED (closed). NULL
 * clears it. Copies token. Returns 0, or -1 when out of memory or the AUTH
 * could not be queued. */
int subway_set_token(subway_client *c, const char *token);

/* Makes every connection c opens speak TLS 1.2 or 1.3, checking the node's
 * certificate against tls->ca_file and the server name (README "TLS");
 * NULL goes back to plain TCP. Call before subway_client_connect(). Reads
 * the files now; keeps nothing of tls itself. Returns 0, or -1: with the
 * sticky error set and the client closed when a file cannot be used
 * (SUBWAY_E_ARG, OpenSSL's reason in subway_errstr()), or with c untouched
 * when it was already connected. libsubway links OpenSSL for this. */
int subway_set_tls(subway_client *c, const subway_tls *tls);

/* When the node says the token expires, in ms since 1970 (from WELCOME or
 * the last AUTH's answer); 0 when it never does or no token was shown. */
uint64_t subway_token_expires_ms(const subway_client *c);

/* Requests queued or sent that still await a reply. */
size_t subway_pending(const subway_client *c);

/* The topic (NUL-terminated) and partitions of a feed this client holds,
 * owned by c and valid until the feed's UNSUBSCRIBED or subway_client_free();
 * NULL for an unknown feed (partition_cnt, if not NULL, then 0). The
 * partitions are the last SUBSCRIBED's. */
const char *subway_feed_topic(const subway_client *c, uint64_t feed);
const uint32_t *subway_feed_partitions(const subway_client *c, uint64_t feed, size_t *partition_cnt);

/* The remembered positions of a feed (see Feeds above), sorted by
 * partition: *position_cnt entries, owned by c and valid until the next
 * library call that dispatches frames. A feed that started at POSITIONS
 * begins with those; one with no record and no LIVE yet has none (NULL,
 * count 0), as has an unknown feed. Resubscribing elsewhere with
 * SUBWAY_START_POSITIONS and these misses nothing Kafka still holds. */
const subway_position *subway_feed_positions(const subway_client *c, uint64_t feed,
                                             size_t *position_cnt);

/* Sets *handle to the node's handle for feed on the current connection
 * and returns 0, or returns -1 when it has none (unknown feed, SUBSCRIBE
 * not answered yet, reconnecting). */
int subway_feed_handle(const subway_client *c, uint64_t feed, uint64_t *handle);

/* The name of a code without its SUBWAY_E_ prefix ("IO", "UNKNOWN_TOPIC",
 * ...), "OK" for 0, "UNKNOWN" for anything else; never NULL, static storage. */
const char *subway_err_name(int code);

/* The library's version, "MAJOR.MINOR.PATCH", static storage: the one the
 * program runs with, which may be newer than the header it was built with.
 * The shared library's SONAME changes with MAJOR. */
const char *subway_version(void);

#if defined(__GNUC__) && __GNUC__ >= 4
#pragma GCC visibility pop
#endif

#ifdef __cplusplus
}
#endif

#endif
