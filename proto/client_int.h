/* client_int.h -- what libsubway's client files share: the connection struct, its request and feed tables, and the calls between the files. */
#ifndef SUBWAY_CLIENT_INT_H
#define SUBWAY_CLIENT_INT_H

/* Private to libsubway: never installed, and nothing here is exported
 * (the library is built with -fvisibility=hidden; only subway.h's
 * declarations are public). The functions are named client_* so that they
 * cannot collide with the node's own (feed_*, conn_*) when both are linked
 * statically into one program. The files:
 *
 *   client.c           the connection: lifecycle, socket I/O, buffers, deadlines
 *   client_frames.c    frames from the node, decoded and dispatched
 *   client_requests.c  requests: issued, pending, answered or failed
 *   client_feeds.c     the subscriptions: stable ids, the node's handles, positions
 *   client_reconnect.c reconnecting: backoff, attempts, re-subscribing
 *   client_sync.c      the blocking calls, poll(2) loops over the rest
 */

#include "subway.h"
#include "proto.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

typedef enum client_state {
    STATE_NEW,                       /* not connected yet */
    STATE_CONNECTING,                /* non-blocking connect in progress */
    STATE_CONNECTED,                 /* TCP up; WELCOME may or may not have arrived */
    STATE_WAITING,                   /* reconnect: no socket, the next attempt at retry_at_ms */
    STATE_CLOSED,                    /* failed or closed; sticky error set */
} client_state;

#define F_WELCOMED 1                 /* WELCOME received on this connection */
#define F_FREE 2                     /* subway_client_free() called from a callback */
#define F_GOAWAY 4                   /* GOAWAY received: an EOF is the node leaving */
#define F_CONN_ERROR 8               /* a req_id 0 ERROR arrived: an EOF follows it */
#define F_WAS_WELCOMED 16            /* some connection reached WELCOME: a loss may be retried */
#define F_RECONNECTING 32            /* lost, and no WELCOME since: requests fail with LOST */
#define F_TLS_HANDSHAKE 64           /* this connection's TLS handshake is not done */
#define F_TLS_WANT_WRITE 128         /* TLS waits for the socket to take bytes (handshake, or a read) */

/* One request awaiting its reply. type 0 marks an answered slot not yet
 * reclaimed, so the array stays sorted by req_id without moving memory on
 * every reply. */
typedef struct client_req {
    uint64_t req_id;                 /* the wire's; a SUBSCRIBE's user-visible id is its feed's */
    proto_type type;                 /* SUBSCRIBE, UNSUBSCRIBE, PUBLISH; 0 = answered */
    subway_reply_cb *cb;             /* NULL: nobody to tell (SUBSCRIBE: the feed holds it) */
    void *cb_data;
    uint64_t feed;                   /* SUBSCRIBE, UNSUBSCRIBE: the subscription's feed id */
} client_req;

/* Where a subscription stands with the node on the current connection. */
typedef enum feed_state {
    FEED_UNSENT,                     /* no SUBSCRIBE on this connection yet (before WELCOME, lost, retry) */
    FEED_SENT,                       /* SUBSCRIBE sent, no answer yet */
    FEED_BOUND,                      /* SUBSCRIBED: handle is the node's */
    FEED_LEAVING,                    /* UNSUBSCRIBE sent: its records are dropped (PROTOCOL.md 5.4) */
} feed_state;

/* One subscription, from subway_subscribe*() until UNSUBSCRIBED, a
 * refusal, or the client's end. Its id stays; the node's handle changes
 * with the connection. */
typedef struct client_feed {
    uint64_t id;                     /* stable feed id the application sees, from 1 */
    uint64_t handle;                 /* the node's, in FEED_BOUND and FEED_LEAVING */
    feed_state state;
    bool cancelled;                  /* unsubscribed while FEED_SENT: invisible, dropped once answered */
    bool answered;                   /* the subscribe callback ran (with success) */
    bool had_live;                   /* a LIVE arrived on some connection: pos is complete */
    bool skip_seen;                  /* resumed with the original start: skip records below pos */
    uint64_t user_req_id;            /* what subway_subscribe*() returned */
    subway_reply_cb *cb;             /* the subscribe callback, until answered */
    void *cb_data;
    char *topic;                     /* owned */
    char *key;                       /* owned; NULL = every key */
    size_t key_len;
    subway_start_mode start_mode;    /* the original start; POSITIONS ones are pos's first content */
    int64_t start_arg;
    uint32_t *partitions;            /* owned, from the last SUBSCRIBED; NULL when partition_cnt is 0 */
    size_t partition_cnt;
    subway_position *pos;            /* owned: remembered positions, sorted by partition */
    size_t pos_cnt;
    size_t pos_cap;
} client_feed;

/* The node's handle of a bound feed, for MESSAGE dispatch; sorted by handle. */
typedef struct client_handle {
    uint64_t handle;
    uint64_t id;
} client_handle;

struct subway_client {
    client_state state;
    int flags;                       /* F_* */
    int fd;                          /* -1 before connect; closed only by free */
    int depth;                       /* library calls on the stack; >1 = inside a callback */
    int err;                         /* sticky: 0, a proto_err or SUBWAY_E_* */
    char errstr[256];
    int conn_err;                    /* code of the last req_id 0 ERROR, for the EOF after it */
    char conn_errstr[192];           /* "CODE: text" of that ERROR, or the GOAWAY text */
    char addr[320];                  /* as given to connect: error texts, reconnects */

    /* limits and identity, from subway_options */
    char *client_name;
    char *token;                     /* subway_set_token(): sent in HELLO and AUTH; NULL: none */
    struct ssl_ctx_st *tls_ctx;      /* subway_set_tls(): every connection speaks TLS; NULL: plain */
    char *tls_server_name;           /* the name the node's certificate must carry; NULL: the address's host */
    struct ssl_st *ssl;              /* this connection's TLS session; NULL: plain, or no connection */
    size_t max_frame;
    size_t max_output;
    size_t max_pending;
    int timeout_ms;
    bool reconnect;
    int backoff_base_ms;
    int backoff_max_ms;
    subway_callbacks cb;

    /* from WELCOME */
    uint64_t version;                /* protocol version of this connection: 1 or 2; 0 before WELCOME */
    char *node_id;
    uint64_t heartbeat_ms;
    uint64_t node_max_frame;
    uint64_t token_expires_ms;       /* from WELCOME, then AUTHED (version 3); 0: never or unknown */

    /* input: raw bytes, decoded in place */
    proto_decoder *dec;
    char *in;
    size_t in_len;
    size_t in_cap;                   /* at most max_frame + PROTO_HEADER_SIZE */
    char *text;                      /* NUL-terminated copies of frame texts for callbacks */
    size_t text_cap;
    subway_header *hdrs;             /* a MESSAGE's headers in the public layout */
    size_t hdr_cap;

    /* output: encoded frames; out_pos bytes at the front are already written */
    proto_buf out;
    size_t out_pos;
    proto_buf held;                  /* requests queued before WELCOME, sent once it arrives */

    /* requests awaiting replies, sorted by req_id; live ones in [req_head, req_len) */
    client_req *reqs;
    size_t req_head;
    size_t req_len;
    size_t req_cap;
    size_t pending;                  /* live entries */
    uint64_t next_req_id;

    /* subscriptions, sorted by id, and the bound ones' handles */
    client_feed *feeds;
    size_t feed_cnt;
    size_t feed_cap;
    uint64_t next_feed_id;
    client_handle *handles;
    size_t handle_cnt;
    size_t handle_cap;
    size_t unsent_owed;              /* unanswered feeds not sent yet: pending requests too */
    proto_position *scratch_pos;     /* a SUBSCRIBE's start positions in the codec's layout */
    size_t scratch_cap;

    /* timing, monotonic milliseconds */
    int64_t connect_ms;              /* when connect started */
    int64_t last_rx_ms;              /* when bytes last arrived */

    /* reconnecting (options.reconnect) */
    unsigned attempt;                /* attempts since the last WELCOME */
    int64_t retry_at_ms;             /* STATE_WAITING: when the next attempt starts */
    unsigned resub_attempt;          /* failed rounds of re-sending refused subscriptions */
    int64_t resub_at_ms;             /* when FEED_UNSENT feeds are sent again; -1 = not planned */
    uint64_t rng;                    /* xorshift state for the jitter */

    /* the last blocking request's outcome */
    int req_err;
    char req_errstr[256];
};

/* ================================================== client.c: connection */

/* Every library entry point that can run callbacks brackets itself with
 * client_enter()/client_leave(): a subway_client_free() from a callback only
 * marks the client, and the outermost client_leave() frees it, when nothing
 * on the stack can still touch it. client_leave() returns rv, or -1 when it
 * freed the client. */
static inline void client_enter(subway_client *c) {
    c->depth++;
}

int client_leave(subway_client *c, int rv);

static inline bool client_in_callback(const subway_client *c) {
    return c->depth > 1;
}

static inline bool client_is_open(const subway_client *c) {
    return c->state == STATE_CONNECTING || c->state == STATE_CONNECTED;
}

/* Monotonic milliseconds. */
int64_t client_now_ms(void);

/* A malloc'd copy of s (the caller owns it), or NULL out of memory. */
char *client_strdup(const char *s);

/* The one binary search of the client's sorted tables (requests by req_id,
 * feeds by id, handles, positions by partition): the index of the first of
 * the n elements at base, stride bytes apart and sorted by an unsigned key
 * of key_size bytes (4 or 8) at key_off, whose key is not below key; that
 * is where key is, or would be inserted. */
size_t client_lower_bound(const void *base, size_t n, size_t stride, size_t key_off,
                          size_t key_size, uint64_t key);

/* The one way the client's arrays grow: returns arr (size-byte elements,
 * *cap of them) with room for at least need, doubling (from 8) when it
 * must grow, and updates *cap; or NULL when out of memory, arr and *cap
 * untouched. */
void *client_grow(void *arr, size_t *cap, size_t need, size_t size);

#define CLIENT_LOWER_BOUND(type, arr, n, field, key)                                   \
    client_lower_bound((arr), (n), sizeof(type), offsetof(type, field),               \
                       sizeof(((type *)0)->field), (key))

/* A NUL-terminated copy of b in c->text, valid until the next call; b may be
 * nil. Returns "" if memory runs out, because callbacks must still run. */
const char *client_frame_text(subway_client *c, proto_bytes b);

/* Between connect and the final close: a connection or a reconnect in
 * progress, so on_close is still owed. */
static inline bool client_is_live(const subway_client *c) {
    return client_is_open(c) || c->state == STATE_WAITING;
}

/* The connection failed. With options.reconnect, after some WELCOME, and
 * unless the client itself closed it (SUBWAY_E_CLOSED) or memory ran out,
 * this hands over to client_lost(). Otherwise it closes for good: records
 * the sticky error (the first one wins), fails every pending request and
 * unanswered subscription with SUBWAY_E_CLOSED and calls on_close. Safe to
 * call from inside callbacks, because the tables are detached before any
 * callback runs and the read loop stops once the state changed. */
void client_fail(subway_client *c, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Opens a socket to c->addr (resolved now), starts a non-blocking connect
 * and queues HELLO; sets the state and the handshake clock. Returns 0, or
 * a SUBWAY_E_* code with the reason in errbuf and nothing changed. */
int client_open(subway_client *c, char *errbuf, size_t errsize);

/* Closes the socket and forgets everything of the connection: buffers,
 * queued output, WELCOME's values, per-connection flags. */
void client_drop_connection(subway_client *c);

/* Encodes f onto the output: requests wait in c->held until WELCOME,
 * control frames (HELLO, PONG) go straight out. On failure the text goes
 * to errbuf and the buffers are left as they were. Returns 0 or a
 * SUBWAY_E_* code. */
int client_out_frame(subway_client *c, const proto_frame *f, bool control, char *errbuf,
                     size_t errsize);

/* Moves the requests held until WELCOME behind what is queued. Returns 0,
 * or -1 when out of memory (connection failed). */
int client_release_held(subway_client *c);

/* client_tls.c. client_tls_start: a TLS session on c->fd for a node at
 * host (checked against its certificate unless a server name was set);
 * returns 0 or a SUBWAY_E_* code with errbuf. client_tls_handshake: one
 * step; 1 done, 0 waiting (F_TLS_WANT_WRITE says for what), -1 failed
 * (connection failed). client_tls_io: sock_io's TLS half; the bytes moved,
 * 0 when it must wait, or a CLIENT_TLS_* with why (SYSCALL: errno kept).
 * client_tls_drop frees the session, client_tls_free the context too. */
#define CLIENT_TLS_EOF (-1)
#define CLIENT_TLS_SYSCALL (-2)
#define CLIENT_TLS_ERROR (-3)
int client_tls_start(subway_client *c, const char *host, char *errbuf, size_t errsize);
int client_tls_handshake(subway_client *c);
ssize_t client_tls_io(subway_client *c, bool out, char *buf, size_t len, char *why, size_t whylen);
void client_tls_drop(subway_client *c);
void client_tls_free(subway_client *c);

/* Writes queued output until the socket would block. Returns 0 or -1. */
int client_write(subway_client *c);

/* Reads until the socket would block, dispatching as it goes. Adds the
 * frames handled to *frames. Returns 0, or -1 when the connection is closed. */
int client_read(subway_client *c, int *frames);

/* The monotonic time the connection fails at if nothing arrives, or -1. */
int64_t client_deadline(const subway_client *c);

/* Fails the connection if its deadline passed. Returns 0, or -1 if closed. */
int client_check_deadline(subway_client *c);

/* Milliseconds from now until dl (-1 = none), clipped to [0, INT32_MAX]. */
int client_ms_until(int64_t dl);

/* =============================================== client_frames.c: input */

/* Decodes and dispatches every complete frame in the input buffer, then
 * moves the partial rest to the front. Adds the frames handled to *frames.
 * Returns 0, or -1 when the connection failed. */
int client_decode_input(subway_client *c, int *frames);

/* ============================================ client_requests.c: requests */

/* Returns the live request with req_id, or NULL. The pointer is valid
 * until the table next changes. */
client_req *client_req_find(subway_client *c, uint64_t req_id);

/* Aims the callback of request req_id (as returned to the application)
 * at nobody: its reply is still applied, and reported to no one. */
void client_req_forget_cb(subway_client *c, uint64_t req_id);

/* Complete the request a SUBSCRIBED, UNSUBSCRIBED or PUBACK answers, calling
 * its callback (and recording or forgetting the feed). Return 0, or -1 when
 * no such request was pending (the connection failed: the node and we
 * disagree about the conversation). */
int client_on_subscribed(subway_client *c, const proto_frame *f);
int client_on_unsubscribed(subway_client *c, const proto_frame *f);
int client_on_puback(subway_client *c, const proto_frame *f);

/* Completes pending request req_id with the node's ERROR code and text,
 * calling its callback. Returns false when no such request is pending. */
bool client_req_refused(subway_client *c, uint64_t req_id, int code, const char *text);

/* Fails every pending request with code and errstr, each callback once;
 * SUBSCRIBE requests are dropped silently (their feeds answer for them).
 * Callbacks may queue new requests: the table is detached before the
 * first runs. */
void client_fail_requests(subway_client *c, int code, const char *errstr);

/* fe's SUBSCRIBE was refused (code, text), by the node or before it was
 * sent. A subscription never answered gets the refusal through its
 * subscribe callback; one the application had is retried later when the
 * code is UNAVAILABLE, SHUTTING_DOWN, KAFKA or INTERNAL, else ends with
 * on_feed_lost. Either way fe may be gone afterwards. */
void client_subscribe_refused(subway_client *c, client_feed *fe, int code, const char *text);

/* Sends SUBSCRIBE for fe (FEED_UNSENT) on the welcomed connection: its
 * original start, or, when it has been answered before, where it stands
 * (client_feed_resume_start). On success fe is FEED_SENT and 0 returned.
 * Otherwise returns the SUBWAY_E_* code with errbuf filled and fe
 * unchanged; SUBWAY_E_UNSUPPORTED when the start cannot be said to a
 * version-1 node. */
int client_send_subscribe(subway_client *c, client_feed *fe, char *errbuf, size_t errsize);

/* Frees the request table without calling anybody (for client_destroy). */
void client_requests_free(subway_client *c);

/* ================================================ client_feeds.c: feeds */

/* The subscription with feed id `id`, cancelled ones included, or NULL.
 * The pointer is valid until the table next changes. */
client_feed *client_feed_get(const subway_client *c, uint64_t id);

/* As client_feed_get(), but what the application may name: not cancelled. */
client_feed *client_feed_find(const subway_client *c, uint64_t id);

/* The subscription bound to the node's handle, or NULL. */
client_feed *client_feed_by_handle(const subway_client *c, uint64_t handle);

/* Records a new FEED_UNSENT subscription with the next feed id: copies of
 * topic, key and start (start already checked). Returns it, or NULL when
 * out of memory. */
client_feed *client_feed_add(subway_client *c, const char *topic, const char *key,
                             size_t key_len, const subway_start *start);

/* Binds fe to the node's handle with a copy of its partitions (FEED_BOUND).
 * Returns 0, or -1 when out of memory (fe unchanged). */
int client_feed_bind(subway_client *c, client_feed *fe, uint64_t handle,
                     const uint32_t *parts, size_t cnt);

/* Forgets fe's handle: it goes back to FEED_UNSENT. */
void client_feed_unbind(subway_client *c, client_feed *fe);

/* fe's SUBSCRIBE went out: FEED_SENT. */
void client_feed_sent(subway_client *c, client_feed *fe);

/* Forgets subscription id. */
void client_feed_remove(subway_client *c, uint64_t id);

/* A record of fe arrived from partition at offset: returns false when it
 * is one fe already delivered (skip_seen), else moves the partition's
 * position past it and returns true. Out of memory the position stays
 * behind, which resumes with a repeat rather than a gap. */
bool client_feed_record(subway_client *c, client_feed *fe, uint32_t partition, uint64_t offset);

/* LIVE for fe: its positions become LIVE's, and fe is complete. Returns
 * 0, or -1 when out of memory (some positions may be missing). */
int client_feed_live(subway_client *c, client_feed *fe, const proto_position *ps, size_t n);

/* Fills *f's start for fe's SUBSCRIBE on this connection: the original
 * start when fe was never answered, else POSITIONS of where it stands when
 * it knows that (a LIVE came, or records did and it started live or at
 * POSITIONS), else the original start again with skip_seen set. Start
 * positions go through c->scratch_pos, valid until the next call. On a
 * version-1 connection the start of a feed answered before is dropped
 * (*unresumed set), and that of one never answered is kept, for the
 * caller to refuse. Returns 0, or -1 when out of memory. */
int client_feed_start(subway_client *c, client_feed *fe, proto_frame *f, bool *unresumed);

/* Runs every subscribe callback still owed with code and errstr, removing
 * those feeds; the others stay (for subway_feed_topic() after a close).
 * Feeds are detached first, as for requests. */
void client_feeds_fail_unanswered(subway_client *c, int code, const char *errstr);

/* Every feed back to FEED_UNSENT (the connection is gone); cancelled ones
 * and ones leaving with no UNSUBSCRIBE to answer are forgotten. */
void client_feeds_unbind_all(subway_client *c);

/* Frees the feed table (for client_destroy). */
void client_feeds_free(subway_client *c);

/* ======================================= client_reconnect.c: reconnecting */

/* Whether a failure with code is retried rather than final. */
bool client_reconnect_wanted(const subway_client *c, int code);

/* The connection was lost (code, why): drops it, fails pending requests
 * with SUBWAY_E_LOST, keeps the subscriptions, and plans the next attempt
 * after a backoff delay (on_reconnect LOST). */
void client_lost(subway_client *c, int code, const char *why);

/* WELCOME arrived after a loss: sends every FEED_UNSENT subscription,
 * then on_reconnect DONE. Also for the first WELCOME, without the
 * callback. Returns 0, or -1 when the connection failed meanwhile. */
int client_resubscribe(subway_client *c);

/* Starts the attempt or the re-send that is due, if any. Returns 0, or
 * -1 when the client is closed. */
int client_reconnect_tick(subway_client *c);

/* The next reconnect timer (attempt or re-send), or -1. */
int64_t client_reconnect_deadline(const subway_client *c);

/* Plans a re-send of the FEED_UNSENT subscriptions after a backoff delay. */
void client_plan_resubscribe(subway_client *c);

/* The backoff delay before attempt n (from 1): uniform in [0, ceiling]
 * with ceiling = min(max_ms, base_ms * 2^(n-1)), rnd a uniform 64-bit
 * random number. Pure, for the tests. */
int client_backoff_ms(int base_ms, int max_ms, unsigned attempt, uint64_t rnd);

#endif
