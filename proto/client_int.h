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
 *   client_feeds.c     the feeds the connection holds
 *   client_sync.c      the blocking calls, poll(2) loops over the rest
 */

#include "subway.h"
#include "proto.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef enum client_state {
    STATE_NEW,                       /* not connected yet */
    STATE_CONNECTING,                /* non-blocking connect in progress */
    STATE_CONNECTED,                 /* TCP up; WELCOME may or may not have arrived */
    STATE_CLOSED,                    /* failed or closed; sticky error set */
} client_state;

#define F_WELCOMED 1                 /* WELCOME received */
#define F_FREE 2                     /* subway_client_free() called from a callback */
#define F_GOAWAY 4                   /* GOAWAY received: an EOF is the node leaving */
#define F_CONN_ERROR 8               /* a req_id 0 ERROR arrived: an EOF follows it */

/* One request awaiting its reply. type 0 marks an answered slot not yet
 * reclaimed, so the array stays sorted by req_id without moving memory on
 * every reply. */
typedef struct client_req {
    uint64_t req_id;
    proto_type type;                 /* SUBSCRIBE, UNSUBSCRIBE, PUBLISH; 0 = answered */
    subway_reply_cb *cb;             /* NULL: nobody to tell (or a timed-out blocking call) */
    void *cb_data;
    uint64_t feed;                   /* UNSUBSCRIBE: the feed given up */
    char *topic;                     /* SUBSCRIBE: owned copy, moves into the feed table */
} client_req;

/* A feed this connection holds, from SUBSCRIBED until UNSUBSCRIBED. */
typedef struct client_feed {
    uint64_t feed;
    char *topic;                     /* owned */
    uint32_t *partitions;            /* owned; NULL when partition_cnt is 0 */
    size_t partition_cnt;
    bool leaving;                    /* UNSUBSCRIBE sent: its records are dropped (PROTOCOL.md 5.4) */
} client_feed;

struct subway_client {
    client_state state;
    int flags;                       /* F_* */
    int fd;                          /* -1 before connect; closed only by free */
    int depth;                       /* library calls on the stack; >1 = inside a callback */
    int err;                         /* sticky: 0, a proto_err or SUBWAY_E_* */
    char errstr[256];
    int conn_err;                    /* code of the last req_id 0 ERROR, for the EOF after it */
    char conn_errstr[192];           /* "CODE: text" of that ERROR, or the GOAWAY text */
    char addr[128];                  /* as given to connect, for error texts */

    /* limits and identity, from subway_options */
    char *client_name;
    size_t max_frame;
    size_t max_output;
    size_t max_pending;
    int timeout_ms;
    subway_callbacks cb;

    /* from WELCOME */
    uint64_t version;                /* protocol version of this connection: 1 or 2; 0 before WELCOME */
    char *node_id;
    uint64_t heartbeat_ms;
    uint64_t node_max_frame;

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

    /* feeds held, sorted by feed handle */
    client_feed *feeds;
    size_t feed_cnt;
    size_t feed_cap;

    /* timing, monotonic milliseconds */
    int64_t connect_ms;              /* when connect started */
    int64_t last_rx_ms;              /* when bytes last arrived */

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

/* A NUL-terminated copy of b in c->text, valid until the next call; b may be
 * nil. Returns "" if memory runs out, because callbacks must still run. */
const char *client_frame_text(subway_client *c, proto_bytes b);

/* Closes the connection for good: records the sticky error (the first one
 * wins), fails every pending request with SUBWAY_E_CLOSED and calls on_close.
 * Safe to call from inside callbacks, because the request table is detached
 * before any callback runs and the read loop stops at STATE_CLOSED. */
void client_fail(subway_client *c, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Encodes f onto the output: requests wait in c->held until WELCOME,
 * control frames (HELLO, PONG) go straight out. On failure the text goes
 * to errbuf and the buffers are left as they were. Returns 0 or a
 * SUBWAY_E_* code. */
int client_out_frame(subway_client *c, const proto_frame *f, bool control, char *errbuf,
                     size_t errsize);

/* Moves the requests held until WELCOME behind what is queued. Returns 0,
 * or -1 when out of memory (connection failed). */
int client_release_held(subway_client *c);

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

/* Fails every pending request with SUBWAY_E_CLOSED and c->errstr, each
 * callback once. Callbacks may queue new requests: the table is detached
 * before the first runs. */
void client_fail_requests(subway_client *c);

/* Frees the request table without calling anybody (for client_destroy). */
void client_requests_free(subway_client *c);

/* ================================================ client_feeds.c: feeds */

/* The feed with handle feed, or NULL. The pointer is valid until the table
 * next changes. */
client_feed *client_feed_find(const subway_client *c, uint64_t feed);

/* Records feed with its topic (takes ownership of topic, even on failure)
 * and a copy of its partitions. Returns the entry, or NULL when out of memory. */
client_feed *client_feed_add(subway_client *c, uint64_t feed, char *topic,
                             const uint32_t *parts, size_t cnt);

/* Forgets feed, if held. */
void client_feed_remove(subway_client *c, uint64_t feed);

/* Frees the feed table (for client_destroy). */
void client_feeds_free(subway_client *c);

#endif
