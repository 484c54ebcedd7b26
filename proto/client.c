/* client.c -- libsubway: one connection to a subway node, its buffers, requests, feeds and the blocking calls over them. */
#include "subway.h"
#include "proto.h"
#include "addr.h"

#include <errno.h>
#include <inttypes.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define DEFAULT_CLIENT_NAME "libsubway"
#define DEFAULT_MAX_OUTPUT (8u * 1024 * 1024)
#define DEFAULT_MAX_PENDING 65536
#define DEFAULT_TIMEOUT_MS 10000
/* PONGs may go this far past max_output: a PING must not be refused just
 * because requests filled the buffer, but a node that sends PINGs and never
 * reads must not make it grow without end either. */
#define CONTROL_SLACK (64u * 1024)
/* The input buffer starts here and doubles up to max_frame + header. */
#define INPUT_INITIAL 16384
/* Read at least this much per read() when the buffer can still grow. */
#define INPUT_MIN_READ 4096
/* Heartbeat silence tolerated, in heartbeat intervals (PROTOCOL.md). */
#define HEARTBEAT_MISSES 3

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

/* A blocking request's landing place; lives on the blocking caller's stack. */
typedef struct sync_wait {
    bool done;
    int err;
    subway_result res;
} sync_wait;

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

static void client_destroy(subway_client *c);

/* ================================================================ helpers */

static int64_t now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static char *dup_str(const char *s) {
    size_t n = strlen(s) + 1;
    char *p = malloc(n);
    if (p) memcpy(p, s, n);
    return p;
}

/* Every library entry point that can run callbacks brackets itself with
 * enter()/leave(): a subway_client_free() from a callback only marks the
 * client, and the outermost leave() frees it, when nothing on the stack can
 * still touch it. leave() returns rv, or -1 when it freed the client. */
static void enter(subway_client *c) {
    c->depth++;
}

static int leave(subway_client *c, int rv) {
    if (--c->depth == 0 && (c->flags & F_FREE)) {
        client_destroy(c);
        return -1;
    }
    return rv;
}

static bool in_callback(const subway_client *c) {
    return c->depth > 1;
}

static bool is_open(const subway_client *c) {
    return c->state == STATE_CONNECTING || c->state == STATE_CONNECTED;
}

/* A NUL-terminated copy of b in c->text, valid until the next call; b may be
 * nil. Returns "" if memory runs out, because callbacks must still run. */
static const char *frame_text(subway_client *c, proto_bytes b) {
    size_t len = b.ptr ? b.len : 0;
    if (len + 1 > c->text_cap) {
        char *t = realloc(c->text, len + 1);
        if (t == NULL) return "";
        c->text = t;
        c->text_cap = len + 1;
    }
    if (len) memcpy(c->text, b.ptr, len);
    c->text[len] = '\0';
    return c->text;
}

/* ======================================================== failing & closing */

static void fail_requests(subway_client *c);

/* Closes the connection for good: records the sticky error (the first one
 * wins), fails every pending request with SUBWAY_E_CLOSED and calls on_close.
 * Safe to call from inside callbacks, because the request table is detached
 * before any callback runs and the read loop stops at STATE_CLOSED. */
static void client_fail(subway_client *c, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void client_fail(subway_client *c, int code, const char *fmt, ...) {
    if (c->state == STATE_CLOSED) return;
    bool was_open = is_open(c);
    c->state = STATE_CLOSED;
    if (c->err == 0) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(c->errstr, sizeof(c->errstr), fmt, ap);
        va_end(ap);
        c->err = code;
    }
    /* Queued output can never be sent now; dropping it makes want_write 0. */
    proto_buf_reset(&c->out);
    proto_buf_reset(&c->held);
    c->out_pos = 0;
    if (!was_open) return;
    fail_requests(c);
    if (c->cb.on_close) c->cb.on_close(c, c->cb.cb_data, c->err, c->errstr);
}

/* The node hung up. Says why as precisely as the frames before allow. */
static void client_eof(subway_client *c) {
    if (c->flags & F_CONN_ERROR)
        client_fail(c, c->conn_err, "closed by node: %s", c->conn_errstr);
    else if (c->flags & F_GOAWAY)
        client_fail(c, SUBWAY_E_GOAWAY, "node going away: %s", c->conn_errstr);
    else
        client_fail(c, SUBWAY_E_EOF, "connection closed by node");
}

/* A node that closes right after GOAWAY or a connection ERROR, with our
 * PONGs or requests still unread, makes the kernel answer with RST: that is
 * the announced hang-up, not a network failure, so it is reported as one. */
static bool io_error_is_hangup(const subway_client *c, int err) {
    return (err == ECONNRESET || err == EPIPE) && (c->flags & (F_GOAWAY | F_CONN_ERROR));
}

/* ============================================================== requests */

/* Returns the live request with req_id, or NULL. Binary search over the
 * sorted window; answered slots keep their ids so the order holds. */
static client_req *req_find(subway_client *c, uint64_t req_id) {
    size_t lo = c->req_head, hi = c->req_len;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (c->reqs[mid].req_id < req_id)
            lo = mid + 1;
        else
            hi = mid;
    }
    if (lo < c->req_len && c->reqs[lo].req_id == req_id && c->reqs[lo].type != 0)
        return &c->reqs[lo];
    return NULL;
}

/* Appends a request slot. Returns it, or NULL when out of memory. */
static client_req *req_add(subway_client *c) {
    if (c->req_len == c->req_cap) {
        if (c->req_head > 0) {
            /* Reclaim answered slots at the front before growing. */
            memmove(c->reqs, c->reqs + c->req_head,
                    (c->req_len - c->req_head) * sizeof(*c->reqs));
            c->req_len -= c->req_head;
            c->req_head = 0;
        }
        if (c->req_len == c->req_cap) {
            size_t cap = c->req_cap ? c->req_cap * 2 : 16;
            client_req *r = realloc(c->reqs, cap * sizeof(*r));
            if (r == NULL) return NULL;
            c->reqs = r;
            c->req_cap = cap;
        }
    }
    client_req *r = &c->reqs[c->req_len++];
    memset(r, 0, sizeof(*r));
    c->pending++;
    return r;
}

/* Takes *r out of the table (into *out, which then owns r's topic). */
static void req_take(subway_client *c, client_req *r, client_req *out) {
    *out = *r;
    r->type = 0;
    r->topic = NULL;
    c->pending--;
    while (c->req_head < c->req_len && c->reqs[c->req_head].type == 0) c->req_head++;
    if (c->req_head == c->req_len) c->req_head = c->req_len = 0;
}

/* Calls a request's callback once. Owns nothing. */
static void req_reply(subway_client *c, const client_req *r, int err, const char *errstr,
                      subway_result *res) {
    res->req_id = r->req_id;
    res->type = (subway_req_type)r->type;
    if (r->cb) r->cb(c, r->cb_data, err, errstr ? errstr : "", res);
}

/* Fails every pending request with SUBWAY_E_CLOSED. The table is detached
 * first: a callback that queues a new request finds the connection closed
 * and an empty table, so iteration here is never disturbed. */
static void fail_requests(subway_client *c) {
    client_req *reqs = c->reqs;
    size_t head = c->req_head, len = c->req_len;
    c->reqs = NULL;
    c->req_head = c->req_len = c->req_cap = 0;
    c->pending = 0;
    for (size_t i = head; i < len; i++) {
        if (reqs[i].type == 0) continue;
        subway_result res = {0};
        req_reply(c, &reqs[i], SUBWAY_E_CLOSED, c->errstr, &res);
    }
    for (size_t i = head; i < len; i++) free(reqs[i].topic);
    free(reqs);
}

/* ================================================================= feeds */

/* Index of feed in the table, or where it would be inserted. */
static size_t feed_index(const subway_client *c, uint64_t feed) {
    size_t lo = 0, hi = c->feed_cnt;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (c->feeds[mid].feed < feed)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

static client_feed *feed_find(const subway_client *c, uint64_t feed) {
    size_t i = feed_index(c, feed);
    return i < c->feed_cnt && c->feeds[i].feed == feed ? &c->feeds[i] : NULL;
}

/* Records feed with its topic (takes ownership of topic, even on failure)
 * and a copy of its partitions. Returns the entry, or NULL when out of memory. */
static client_feed *feed_add(subway_client *c, uint64_t feed, char *topic,
                             const uint32_t *parts, size_t cnt) {
    uint32_t *pcopy = NULL;
    if (cnt > 0) {
        pcopy = malloc(cnt * sizeof(*pcopy));
        if (pcopy == NULL) goto oom;
        memcpy(pcopy, parts, cnt * sizeof(*pcopy));
    }
    size_t i = feed_index(c, feed);
    if (i < c->feed_cnt && c->feeds[i].feed == feed) {
        /* The node reused a handle it still gave us: the newest reply wins. */
        free(c->feeds[i].topic);
        free(c->feeds[i].partitions);
    } else {
        if (c->feed_cnt == c->feed_cap) {
            size_t cap = c->feed_cap ? c->feed_cap * 2 : 8;
            client_feed *fs = realloc(c->feeds, cap * sizeof(*fs));
            if (fs == NULL) goto oom;
            c->feeds = fs;
            c->feed_cap = cap;
        }
        memmove(&c->feeds[i + 1], &c->feeds[i], (c->feed_cnt - i) * sizeof(*c->feeds));
        c->feed_cnt++;
    }
    c->feeds[i] = (client_feed){ feed, topic, pcopy, cnt, false };
    return &c->feeds[i];
oom:
    free(pcopy);
    free(topic);
    return NULL;
}

static void feed_remove(subway_client *c, uint64_t feed) {
    size_t i = feed_index(c, feed);
    if (i >= c->feed_cnt || c->feeds[i].feed != feed) return;
    free(c->feeds[i].topic);
    free(c->feeds[i].partitions);
    memmove(&c->feeds[i], &c->feeds[i + 1], (c->feed_cnt - i - 1) * sizeof(*c->feeds));
    c->feed_cnt--;
}

/* ================================================================ output */

/* Output bytes ready to write. */
static size_t out_queued(const subway_client *c) {
    return c->out.len - c->out_pos;
}

/* Output bytes in the client, held requests included: what max_output bounds. */
static size_t out_total(const subway_client *c) {
    return out_queued(c) + c->held.len;
}

/* Encodes f onto the output. Requests (control false) must fit under
 * max_output and the node's max_frame, and wait in c->held until WELCOME
 * (PROTOCOL.md 5.1: clients wait for WELCOME), so a node refusing the
 * handshake never sees them. Control frames (HELLO, PONG) go straight out
 * and may use CONTROL_SLACK more. On failure the text goes to errbuf for
 * the caller's callback and the buffers are left as they were. Returns 0
 * or a SUBWAY_E_* code. */
static int out_frame(subway_client *c, const proto_frame *f, bool control, char *errbuf,
                     size_t errsize) {
    size_t limit = c->max_output + (control ? CONTROL_SLACK : 0);
    proto_buf *b = control || (c->flags & F_WELCOMED) ? &c->out : &c->held;
    size_t start = b->len;
    if (out_total(c) >= limit) {
        snprintf(errbuf, errsize, "output buffer full (%zu bytes queued, limit %zu)",
                 out_total(c), c->max_output);
        return SUBWAY_E_OUTPUT_FULL;
    }
    if (proto_encode(b, f) < 0) {
        snprintf(errbuf, errsize, "out of memory encoding %s", proto_type_name(f->type));
        return SUBWAY_E_NOMEM;
    }
    size_t body = b->len - start - PROTO_HEADER_SIZE;
    uint64_t node_max = c->node_max_frame ? c->node_max_frame : PROTO_DEFAULT_MAX_FRAME;
    if (body > node_max) {
        b->len = start;
        snprintf(errbuf, errsize, "%s frame of %zu bytes exceeds the node's max_frame %" PRIu64,
                 proto_type_name(f->type), body, node_max);
        return SUBWAY_E_ARG;
    }
    if (out_total(c) > limit) {
        b->len = start;
        snprintf(errbuf, errsize, "output buffer full (%zu bytes queued, limit %zu)",
                 out_total(c), c->max_output);
        return SUBWAY_E_OUTPUT_FULL;
    }
    return 0;
}

/* Moves the requests held until WELCOME behind what is queued. Returns 0,
 * or -1 when out of memory (connection failed). */
static int release_held(subway_client *c) {
    if (c->held.len == 0) return 0;
    if (out_queued(c) == 0) {
        /* The common case: swap instead of copying. */
        proto_buf t = c->out;
        c->out = c->held;
        c->held = t;
        c->out_pos = 0;
        proto_buf_reset(&c->held);
        return 0;
    }
    size_t need = c->out.len + c->held.len;
    if (need > c->out.cap) {
        char *d = realloc(c->out.data, need);
        if (d == NULL) {
            client_fail(c, SUBWAY_E_NOMEM, "out of memory releasing queued requests");
            return -1;
        }
        c->out.data = d;
        c->out.cap = need;
    }
    memcpy(c->out.data + c->out.len, c->held.data, c->held.len);
    c->out.len = need;
    proto_buf_reset(&c->held);
    return 0;
}

/* Completes a non-blocking connect if it has. Returns 1 when connected, 0
 * while still in progress, -1 when it failed (connection failed). */
static int check_connected(subway_client *c) {
    if (c->state == STATE_CONNECTED) return 1;
    if (c->state != STATE_CONNECTING) return -1;
    int soerr = 0;
    socklen_t len = sizeof(soerr);
    if (getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &soerr, &len) < 0) soerr = errno;
    if (soerr != 0) {
        client_fail(c, SUBWAY_E_IO, "connect %s: %s", c->addr, strerror(soerr));
        return -1;
    }
    struct sockaddr_storage ss;
    socklen_t sslen = sizeof(ss);
    if (getpeername(c->fd, (struct sockaddr *)&ss, &sslen) < 0) {
        if (errno == ENOTCONN) return 0;
        client_fail(c, SUBWAY_E_IO, "connect %s: %s", c->addr, strerror(errno));
        return -1;
    }
    c->state = STATE_CONNECTED;
    return 1;
}

/* Writes queued output until the socket would block. Returns 0 or -1. */
static int client_write(subway_client *c) {
    int rc = check_connected(c);
    if (rc <= 0) return rc;
    while (out_queued(c) > 0) {
        ssize_t n = send(c->fd, c->out.data + c->out_pos, out_queued(c), MSG_NOSIGNAL);
        if (n < 0) {
            if (errno == EINTR) continue;
            if (errno == EAGAIN || errno == EWOULDBLOCK) break;
            if (io_error_is_hangup(c, errno))
                client_eof(c);
            else
                client_fail(c, SUBWAY_E_IO, "write: %s", strerror(errno));
            return -1;
        }
        c->out_pos += (size_t)n;
    }
    if (c->out_pos == c->out.len) {
        proto_buf_reset(&c->out);
        c->out_pos = 0;
    } else if (c->out_pos > c->out.len / 2) {
        /* Keep the buffer from creeping forward forever under steady load. */
        memmove(c->out.data, c->out.data + c->out_pos, out_queued(c));
        c->out.len -= c->out_pos;
        c->out_pos = 0;
    }
    return 0;
}

/* ============================================================== dispatch */

static int protocol_error(subway_client *c, const char *what, const proto_frame *f) {
    client_fail(c, SUBWAY_E_PROTOCOL, "protocol error: %s %s", what,
                proto_type_name(f->type));
    return -1;
}

static int on_welcome(subway_client *c, const proto_frame *f) {
    if (c->flags & F_WELCOMED) return protocol_error(c, "unexpected", f);
    if (f->version != PROTO_VERSION) {
        client_fail(c, SUBWAY_E_PROTOCOL, "protocol error: node speaks version %" PRIu64
                    ", this library %d", f->version, PROTO_VERSION);
        return -1;
    }
    char *id = dup_str(frame_text(c, f->name));
    if (id == NULL) {
        client_fail(c, SUBWAY_E_NOMEM, "out of memory");
        return -1;
    }
    c->node_id = id;
    c->heartbeat_ms = f->heartbeat_ms;
    c->node_max_frame = f->max_frame;
    c->flags |= F_WELCOMED;
    if (release_held(c) < 0) return -1;
    if (c->cb.on_welcome) c->cb.on_welcome(c, c->cb.cb_data);
    return 0;
}

/* Pops the pending request a reply names; a reply nobody asked for means
 * the node and we disagree about the conversation, so the connection fails. */
static int take_reply(subway_client *c, const proto_frame *f, proto_type want,
                      client_req *out) {
    client_req *r = req_find(c, f->req_id);
    if (r == NULL || r->type != want) {
        client_fail(c, SUBWAY_E_PROTOCOL, "protocol error: %s for %s req_id %" PRIu64,
                    proto_type_name(f->type), r ? "a mismatched" : "unknown", f->req_id);
        return -1;
    }
    req_take(c, r, out);
    return 0;
}

static int on_subscribed(subway_client *c, const proto_frame *f) {
    client_req r;
    if (take_reply(c, f, PROTO_SUBSCRIBE, &r) < 0) return -1;
    subway_result res = { .feed = f->feed, .partitions = f->partitions,
                          .partition_cnt = f->partition_cnt };
    client_feed *fe = feed_add(c, f->feed, r.topic, f->partitions, f->partition_cnt);
    if (fe == NULL) {
        /* The node holds the feed now but we cannot name its records. */
        req_reply(c, &r, SUBWAY_E_NOMEM, "out of memory recording the feed", &res);
        return 0;
    }
    res.partitions = fe->partitions;
    req_reply(c, &r, 0, "", &res);
    return 0;
}

static int on_unsubscribed(subway_client *c, const proto_frame *f) {
    client_req r;
    if (take_reply(c, f, PROTO_UNSUBSCRIBE, &r) < 0) return -1;
    feed_remove(c, f->feed);
    subway_result res = { .feed = f->feed };
    req_reply(c, &r, 0, "", &res);
    return 0;
}

static int on_puback(subway_client *c, const proto_frame *f) {
    client_req r;
    if (take_reply(c, f, PROTO_PUBLISH, &r) < 0) return -1;
    subway_result res = { .partition = f->partition, .offset = f->offset };
    req_reply(c, &r, 0, "", &res);
    return 0;
}

static int on_error_frame(subway_client *c, const proto_frame *f) {
    const char *text = frame_text(c, f->text);
    int code = f->code > INT32_MAX ? INT32_MAX : (int)f->code;
    client_req *rp = f->req_id ? req_find(c, f->req_id) : NULL;
    if (rp) {
        client_req r;
        req_take(c, rp, &r);
        subway_result res = { .feed = r.type == PROTO_UNSUBSCRIBE ? r.feed : 0 };
        if (r.type == PROTO_UNSUBSCRIBE) {
            /* Refused: the feed is still ours, so its records count again. */
            client_feed *fe = feed_find(c, r.feed);
            if (fe) fe->leaving = false;
        }
        free(r.topic);
        req_reply(c, &r, code, text, &res);
        return 0;
    }
    if (f->req_id == 0) {
        /* Usually the node closes right after; the EOF will name this. */
        c->flags |= F_CONN_ERROR;
        c->conn_err = code;
        snprintf(c->conn_errstr, sizeof(c->conn_errstr), "%s: %s", proto_err_name(f->code), text);
    }
    if (c->cb.on_error) c->cb.on_error(c, c->cb.cb_data, f->req_id, code, text);
    return 0;
}

static int on_message(subway_client *c, const proto_frame *f) {
    if (c->cb.on_message == NULL) return 0;
    const client_feed *fe = feed_find(c, f->feed);
    if (fe && fe->leaving) return 0;
    if (f->header_cnt > c->hdr_cap) {
        /* The codec caps the count, and the array is reused across frames. */
        subway_header *h = realloc(c->hdrs, f->header_cnt * sizeof(*h));
        if (h == NULL) {
            client_fail(c, SUBWAY_E_NOMEM, "out of memory decoding MESSAGE headers");
            return -1;
        }
        c->hdrs = h;
        c->hdr_cap = f->header_cnt;
    }
    for (size_t i = 0; i < f->header_cnt; i++)
        c->hdrs[i] = (subway_header){ f->headers[i].name.ptr, f->headers[i].name.len,
                                      f->headers[i].value.ptr, f->headers[i].value.len };
    subway_message m = {
        .feed = f->feed,
        .topic = fe ? fe->topic : NULL,
        .partition = f->partition,
        .offset = f->offset,
        .timestamp_ms = f->timestamp_ms,
        .key = f->key.ptr,
        .key_len = f->key.len,
        .value = f->value.ptr,
        .value_len = f->value.len,
        .headers = f->header_cnt ? c->hdrs : NULL,
        .header_cnt = f->header_cnt,
    };
    c->cb.on_message(c, c->cb.cb_data, &m);
    return 0;
}

static int on_ping(subway_client *c, const proto_frame *f) {
    proto_frame pong = { .type = PROTO_PONG, .token = f->token };
    char errbuf[128];
    int code = out_frame(c, &pong, true, errbuf, sizeof(errbuf));
    if (code != 0) {
        if (code == SUBWAY_E_OUTPUT_FULL)
            client_fail(c, code, "output buffer over its limit: node is not reading");
        else
            client_fail(c, code, "%s", errbuf);
        return -1;
    }
    return 0;
}

/* Handles one decoded frame. Returns 0, or -1 when the connection failed. */
static int dispatch(subway_client *c, const proto_frame *f) {
    if (!(c->flags & F_WELCOMED) && f->type != PROTO_WELCOME && f->type != PROTO_ERROR &&
        f->type != PROTO_GOAWAY && f->type != PROTO_PING && f->type != PROTO_PONG)
        return protocol_error(c, "expected WELCOME, got", f);

    switch (f->type) {
    case PROTO_WELCOME:
        return on_welcome(c, f);
    case PROTO_SUBSCRIBED:
        return on_subscribed(c, f);
    case PROTO_UNSUBSCRIBED:
        return on_unsubscribed(c, f);
    case PROTO_PUBACK:
        return on_puback(c, f);
    case PROTO_MESSAGE:
        return on_message(c, f);
    case PROTO_PING:
        return on_ping(c, f);
    case PROTO_PONG:
        return 0;                    /* we never ping; tolerate an echo anyway */
    case PROTO_ERROR:
        return on_error_frame(c, f);
    case PROTO_DROPPED: {
        const client_feed *fe = feed_find(c, f->feed);
        if (c->cb.on_dropped && !(fe && fe->leaving))
            c->cb.on_dropped(c, c->cb.cb_data, f->feed, f->count);
        return 0;
    }
    case PROTO_GOAWAY: {
        const char *text = frame_text(c, f->text);
        c->flags |= F_GOAWAY;
        snprintf(c->conn_errstr, sizeof(c->conn_errstr), "%s", text);
        if (c->cb.on_goaway) c->cb.on_goaway(c, c->cb.cb_data, text);
        return 0;
    }
    case PROTO_HELLO:
    case PROTO_SUBSCRIBE:
    case PROTO_UNSUBSCRIBE:
    case PROTO_PUBLISH:
        return protocol_error(c, "unexpected", f);
    }
    return protocol_error(c, "unexpected", f);
}

/* Decodes and dispatches every complete frame in the input buffer, then
 * moves the partial rest to the front. Adds the frames handled to *frames.
 * Returns 0, or -1 when the connection failed. */
static int decode_input(subway_client *c, int *frames) {
    size_t pos = 0;
    int rc = 0;
    while (c->state == STATE_CONNECTED && !(c->flags & F_FREE)) {
        proto_frame f;
        size_t used = 0;
        proto_status st = proto_decode(c->dec, c->in + pos, c->in_len - pos, &used, &f);
        if (st == PROTO_NEED_MORE) break;
        if (st == PROTO_BAD_INPUT) {
            if (proto_decoder_err(c->dec) == PROTO_E_UNKNOWN_TYPE && used > 0) {
                /* A newer node's frame: skipping it keeps old clients working. */
                pos += used;
                continue;
            }
            client_fail(c, SUBWAY_E_PROTOCOL, "bad frame from node: %s",
                        proto_decoder_errstr(c->dec));
            rc = -1;
            break;
        }
        pos += used;
        (*frames)++;
        if (dispatch(c, &f) < 0) {
            rc = -1;
            break;
        }
    }
    if (c->state == STATE_CLOSED || (c->flags & F_FREE)) return -1;
    if (pos > 0) {
        memmove(c->in, c->in + pos, c->in_len - pos);
        c->in_len -= pos;
    }
    return rc;
}

/* Makes room to read into: grows the buffer toward the frame being
 * received and keeps at least INPUT_MIN_READ free when it can, never past
 * max_frame + header. Returns 0, or -1 out of memory. */
static int input_reserve(subway_client *c) {
    size_t max = c->max_frame + PROTO_HEADER_SIZE;
    size_t want = c->in_cap ? c->in_cap : (INPUT_INITIAL < max ? INPUT_INITIAL : max);
    if (c->in_len >= PROTO_HEADER_SIZE) {
        /* A too-large length never gets here: decode_input failed on it. */
        size_t need = PROTO_HEADER_SIZE + (size_t)proto_peek_length(c->in);
        if (need > want) want = need;
    }
    if (want - c->in_len < INPUT_MIN_READ && want < max / 2) want *= 2;
    if (want > max) want = max;
    if (want <= c->in_cap) return 0;
    char *in = realloc(c->in, want);
    if (in == NULL) return -1;
    c->in = in;
    c->in_cap = want;
    return 0;
}

/* Reads until the socket would block, dispatching as it goes. Adds the
 * frames handled to *frames. Returns 0, or -1 when the connection is closed. */
static int client_read(subway_client *c, int *frames) {
    int rc = check_connected(c);
    if (rc <= 0) return rc;
    for (;;) {
        if (input_reserve(c) < 0) {
            client_fail(c, SUBWAY_E_NOMEM, "out of memory growing the input buffer");
            return -1;
        }
        size_t room = c->in_cap - c->in_len;
        if (room == 0) {
            /* Cannot happen: a full buffer always holds a complete frame. */
            client_fail(c, SUBWAY_E_PROTOCOL, "protocol error: input buffer full");
            return -1;
        }
        ssize_t n = recv(c->fd, c->in + c->in_len, room, 0);
        if (n == 0) {
            client_eof(c);
            return -1;
        }
        if (n < 0) {
            if (errno == EINTR) continue;
            if (errno == EAGAIN || errno == EWOULDBLOCK) break;
            if (io_error_is_hangup(c, errno))
                client_eof(c);
            else
                client_fail(c, SUBWAY_E_IO, "read: %s", strerror(errno));
            return -1;
        }
        c->in_len += (size_t)n;
        c->last_rx_ms = now_ms();
        if (decode_input(c, frames) < 0) return -1;
        /* A short read means the socket was drained just now. */
        if ((size_t)n < room) break;
    }
    /* Answer PINGs (and send whatever callbacks queued) right away. */
    return client_write(c);
}

/* ============================================================== timeouts */

/* The monotonic time the connection fails at if nothing arrives, or -1. */
static int64_t client_deadline(const subway_client *c) {
    if (!is_open(c)) return -1;
    if (c->flags & F_WELCOMED) {
        if (c->heartbeat_ms == 0) return -1;
        uint64_t hb = c->heartbeat_ms > INT32_MAX ? INT32_MAX : c->heartbeat_ms;
        return c->last_rx_ms + (int64_t)hb * HEARTBEAT_MISSES;
    }
    if (c->timeout_ms < 0) return -1;
    return c->connect_ms + c->timeout_ms;
}

/* Fails the connection if its deadline passed. Returns 0, or -1 if closed. */
static int client_check_deadline(subway_client *c) {
    if (!is_open(c)) return -1;
    int64_t dl = client_deadline(c);
    if (dl < 0 || now_ms() < dl) return 0;
    if (c->flags & F_WELCOMED)
        client_fail(c, SUBWAY_E_TIMEOUT, "heartbeat timeout: nothing received from node for "
                    "%" PRIu64 " ms", c->heartbeat_ms * HEARTBEAT_MISSES);
    else if (c->state == STATE_CONNECTING)
        client_fail(c, SUBWAY_E_TIMEOUT, "connect %s: timed out after %d ms", c->addr,
                    c->timeout_ms);
    else
        client_fail(c, SUBWAY_E_TIMEOUT, "no WELCOME from node within %d ms", c->timeout_ms);
    return -1;
}

/* Milliseconds from now until dl (-1 = none), clipped to [0, INT32_MAX]. */
static int ms_until(int64_t dl) {
    if (dl < 0) return -1;
    int64_t left = dl - now_ms();
    if (left < 0) return 0;
    return left > INT32_MAX ? INT32_MAX : (int)left;
}

/* The smaller of two poll timeouts, where -1 means forever. */
static int min_timeout(int a, int b) {
    if (a < 0) return b;
    if (b < 0) return a;
    return a < b ? a : b;
}

/* One poll(2) round: waits up to wait_ms (capped by the connection's own
 * deadline), then writes and reads what is ready. Adds frames handled to
 * *frames. Returns 0 (also on EINTR: *interrupted is set), or -1 when the
 * connection is closed. */
static int client_poll_once(subway_client *c, int wait_ms, int *frames, bool *interrupted) {
    if (client_check_deadline(c) < 0) return -1;
    if (subway_client_want_write(c) && client_write(c) < 0) return -1;
    struct pollfd p = { .fd = c->fd, .events = POLLIN };
    if (subway_client_want_write(c)) p.events |= POLLOUT;
    int rc = poll(&p, 1, min_timeout(wait_ms, ms_until(client_deadline(c))));
    if (rc < 0) {
        if (errno == EINTR) {
            *interrupted = true;
            return 0;
        }
        client_fail(c, SUBWAY_E_IO, "poll: %s", strerror(errno));
        return -1;
    }
    if (rc == 0) return client_check_deadline(c);
    if ((p.revents & (POLLOUT | POLLERR | POLLHUP)) && subway_client_want_write(c) &&
        client_write(c) < 0)
        return -1;
    if ((p.revents & (POLLIN | POLLERR | POLLHUP)) && client_read(c, frames) < 0) return -1;
    return 0;
}

/* ============================================================ lifecycle */

subway_client *subway_client_new(const subway_options *opt) {
    subway_options defaults = {0};
    if (opt == NULL) opt = &defaults;
    subway_client *c = calloc(1, sizeof(*c));
    if (c == NULL) return NULL;
    c->fd = -1;
    c->state = STATE_NEW;
    c->next_req_id = 1;
    proto_buf_init(&c->out);
    c->max_frame = opt->max_frame ? opt->max_frame : PROTO_DEFAULT_MAX_FRAME;
    if (c->max_frame < PROTO_MIN_MAX_FRAME) c->max_frame = PROTO_MIN_MAX_FRAME;
    if (c->max_frame > UINT32_MAX) c->max_frame = UINT32_MAX;
    c->max_output = opt->max_output ? opt->max_output : DEFAULT_MAX_OUTPUT;
    c->max_pending = opt->max_pending ? opt->max_pending : DEFAULT_MAX_PENDING;
    c->timeout_ms = opt->timeout_ms == 0 ? DEFAULT_TIMEOUT_MS
                    : opt->timeout_ms < 0 ? -1 : opt->timeout_ms;
    c->cb = opt->cb;
    c->client_name = dup_str(opt->client_name ? opt->client_name : DEFAULT_CLIENT_NAME);
    c->dec = proto_decoder_new(c->max_frame);
    if (c->client_name == NULL || c->dec == NULL) goto err;
    return c;
err:
    subway_client_free(c);
    return NULL;
}

int subway_client_connect(subway_client *c, const char *addr) {
    /* Not sticky: the existing connection is unaffected. */
    if (c->state != STATE_NEW) return -1;
    char host[256], port[8], why[384];
    int portnum;
    snprintf(c->addr, sizeof(c->addr), "%s", addr ? addr : "(null)");
    if (proto_addr_split(addr, host, sizeof(host), &portnum, why, sizeof(why)) < 0) {
        client_fail(c, SUBWAY_E_ARG, "bad address: %s", why);
        return -1;
    }
    snprintf(port, sizeof(port), "%d", portnum);

    struct addrinfo hints = { .ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM,
                              .ai_flags = AI_NUMERICSERV };
    struct addrinfo *ai = NULL;
    int gai = getaddrinfo(host, port, &hints, &ai);
    if (gai != 0) {
        client_fail(c, SUBWAY_E_IO, "resolve %s: %s", c->addr, gai_strerror(gai));
        return -1;
    }
    /* Try each address until one connects or is in progress; a connect in
     * progress commits to that address (its outcome is known only later). */
    int fd = -1, saved = 0;
    bool in_progress = false;
    for (struct addrinfo *a = ai; a; a = a->ai_next) {
        fd = socket(a->ai_family, a->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, a->ai_protocol);
        if (fd < 0) {
            saved = errno;
            continue;
        }
        int one = 1;
        /* Frames are small and latency matters more than packet count. */
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
        if (connect(fd, a->ai_addr, a->ai_addrlen) == 0) break;
        if (errno == EINPROGRESS) {
            in_progress = true;
            break;
        }
        saved = errno;
        close(fd);
        fd = -1;
    }
    freeaddrinfo(ai);
    if (fd < 0) {
        client_fail(c, SUBWAY_E_IO, "connect %s: %s", c->addr, strerror(saved));
        return -1;
    }
    c->fd = fd;
    c->state = in_progress ? STATE_CONNECTING : STATE_CONNECTED;
    c->connect_ms = c->last_rx_ms = now_ms();

    proto_frame hello = { .type = PROTO_HELLO, .version = PROTO_VERSION,
                          .name = { c->client_name, strlen(c->client_name) } };
    char errbuf[128];
    int code = out_frame(c, &hello, true, errbuf, sizeof(errbuf));
    if (code != 0) {
        /* Nothing can have been queued yet: no request, no callback to run. */
        c->state = STATE_NEW;
        client_fail(c, code, "%s", errbuf);
        return -1;
    }
    return 0;
}

int subway_client_fd(const subway_client *c) {
    return c->fd;
}

int subway_client_want_write(const subway_client *c) {
    if (c->state == STATE_CONNECTING) return 1;
    return c->state == STATE_CONNECTED && out_queued(c) > 0;
}

int subway_client_process_readable(subway_client *c) {
    enter(c);
    if (in_callback(c)) return leave(c, 0);
    int frames = 0;
    int rc = is_open(c) ? client_read(c, &frames) : -1;
    return leave(c, rc);
}

int subway_client_flush(subway_client *c) {
    enter(c);
    int rc = is_open(c) ? client_write(c) : -1;
    return leave(c, rc);
}

int subway_client_timeout_ms(const subway_client *c) {
    return ms_until(client_deadline(c));
}

int subway_client_tick(subway_client *c) {
    enter(c);
    return leave(c, client_check_deadline(c));
}

void subway_client_close(subway_client *c) {
    enter(c);
    client_fail(c, SUBWAY_E_CLOSED, "closed by client");
    leave(c, 0);
}

static void client_destroy(subway_client *c) {
    /* Callbacks run by the close below must not free c a second time. */
    c->depth++;
    c->flags |= F_FREE;
    client_fail(c, SUBWAY_E_CLOSED, "client freed");
    if (c->fd >= 0) close(c->fd);
    for (size_t i = c->req_head; i < c->req_len; i++) free(c->reqs[i].topic);
    free(c->reqs);
    for (size_t i = 0; i < c->feed_cnt; i++) {
        free(c->feeds[i].topic);
        free(c->feeds[i].partitions);
    }
    free(c->feeds);
    proto_decoder_free(c->dec);
    proto_buf_free(&c->out);
    proto_buf_free(&c->held);
    free(c->in);
    free(c->text);
    free(c->hdrs);
    free(c->node_id);
    free(c->client_name);
    free(c);
}

void subway_client_free(subway_client *c) {
    if (c == NULL) return;
    if (c->depth > 0) {
        /* Inside a callback: close now, free when the stack unwinds. */
        c->flags |= F_FREE;
        client_fail(c, SUBWAY_E_CLOSED, "client freed");
        return;
    }
    client_destroy(c);
}

/* ============================================================ requests */

/* Queues request frame f. On success records the request and returns its
 * req_id; on failure calls cb with the error and returns -1. Takes
 * ownership of topic_copy (SUBSCRIBE's feed-table name; may be NULL). */
static int64_t request(subway_client *c, proto_frame *f, char *topic_copy, uint64_t feed,
                       subway_reply_cb *cb, void *cb_data) {
    char errbuf[256] = "";
    int code = 0;
    client_req *r = NULL;

    if (c->state == STATE_NEW) {
        code = SUBWAY_E_STATE;
        snprintf(errbuf, sizeof(errbuf), "not connected");
    } else if (c->state == STATE_CLOSED) {
        code = SUBWAY_E_CLOSED;
        snprintf(errbuf, sizeof(errbuf), "%s", c->errstr);
    } else if (c->pending >= c->max_pending) {
        code = SUBWAY_E_TOO_MANY_PENDING;
        snprintf(errbuf, sizeof(errbuf), "%zu requests already await replies (limit %zu)",
                 c->pending, c->max_pending);
    } else if (f->type == PROTO_SUBSCRIBE && topic_copy == NULL) {
        code = SUBWAY_E_NOMEM;
        snprintf(errbuf, sizeof(errbuf), "out of memory");
    } else if ((r = req_add(c)) == NULL) {
        code = SUBWAY_E_NOMEM;
        snprintf(errbuf, sizeof(errbuf), "out of memory");
    } else {
        f->req_id = c->next_req_id;
        code = out_frame(c, f, false, errbuf, sizeof(errbuf));
        if (code != 0) {
            /* Unrecord it: the slot is the last one, nothing refers to it. */
            c->req_len--;
            c->pending--;
        }
    }
    if (code != 0) {
        free(topic_copy);
        subway_result res = { .type = (subway_req_type)f->type, .feed = feed };
        if (cb) cb(c, cb_data, code, errbuf, &res);
        return -1;
    }
    *r = (client_req){ .req_id = c->next_req_id++, .type = f->type, .cb = cb,
                       .cb_data = cb_data, .feed = feed, .topic = topic_copy };
    return (int64_t)r->req_id;
}

/* Refuses a request before it is built: calls cb once with code and text. */
static int64_t refuse(subway_client *c, proto_type type, int code, const char *text,
                      subway_reply_cb *cb, void *cb_data) {
    subway_result res = { .type = (subway_req_type)type };
    if (cb) cb(c, cb_data, code, text, &res);
    return -1;
}

int64_t subway_subscribe(subway_client *c, const char *topic, const char *key, size_t key_len,
                         subway_reply_cb *cb, void *cb_data) {
    enter(c);
    int64_t id;
    if (topic == NULL || topic[0] == '\0') {
        id = refuse(c, PROTO_SUBSCRIBE, SUBWAY_E_ARG, "topic is NULL or empty", cb, cb_data);
    } else {
        proto_frame f = { .type = PROTO_SUBSCRIBE, .topic = { topic, strlen(topic) },
                          .key = { key, key ? key_len : 0 } };
        id = request(c, &f, dup_str(topic), 0, cb, cb_data);
    }
    return leave(c, 0) < 0 ? -1 : id;
}

int64_t subway_unsubscribe(subway_client *c, uint64_t feed, subway_reply_cb *cb, void *cb_data) {
    enter(c);
    proto_frame f = { .type = PROTO_UNSUBSCRIBE, .feed = feed };
    int64_t id = request(c, &f, NULL, feed, cb, cb_data);
    client_feed *fe = id > 0 ? feed_find(c, feed) : NULL;
    if (fe) fe->leaving = true;
    return leave(c, 0) < 0 ? -1 : id;
}

int64_t subway_publish(subway_client *c, const char *topic, const char *key, size_t key_len,
                       const char *value, size_t value_len, subway_reply_cb *cb, void *cb_data) {
    enter(c);
    int64_t id;
    if (topic == NULL || topic[0] == '\0') {
        id = refuse(c, PROTO_PUBLISH, SUBWAY_E_ARG, "topic is NULL or empty", cb, cb_data);
    } else {
        proto_frame f = { .type = PROTO_PUBLISH, .topic = { topic, strlen(topic) },
                          .key = { key, key ? key_len : 0 },
                          .value = { value, value ? value_len : 0 } };
        id = request(c, &f, NULL, 0, cb, cb_data);
    }
    return leave(c, 0) < 0 ? -1 : id;
}

/* ============================================================ blocking API */

subway_client *subway_connect(const char *addr, const subway_options *opt) {
    subway_client *c = subway_client_new(opt);
    if (c == NULL) return NULL;
    enter(c);
    if (subway_client_connect(c, addr) == 0) {
        int frames = 0;
        bool intr = false;
        /* The handshake deadline (timeout_ms) is enforced by poll_once. */
        while (is_open(c) && !(c->flags & F_WELCOMED) && !(c->flags & F_FREE))
            if (client_poll_once(c, -1, &frames, &intr) < 0) break;
    }
    /* A callback freeing c during the handshake leaves nothing to return. */
    return leave(c, 0) < 0 ? NULL : c;
}

static void sync_cb(subway_client *c, void *cb_data, int err, const char *errstr,
                    const subway_result *res) {
    sync_wait *w = cb_data;
    w->done = true;
    w->err = err;
    w->res = *res;
    c->req_err = err;
    snprintf(c->req_errstr, sizeof(c->req_errstr), "%s", errstr);
}

/* Starts a blocking request: checks the caller is not a callback and resets
 * the request error. Returns 0, or -1 with the request error set. */
static int sync_begin(subway_client *c) {
    c->req_err = 0;
    c->req_errstr[0] = '\0';
    if (in_callback(c)) {
        c->req_err = SUBWAY_E_STATE;
        snprintf(c->req_errstr, sizeof(c->req_errstr), "blocking call from inside a callback");
        return -1;
    }
    return 0;
}

/* Waits for the reply to req_id (queued with sync_cb and w). Returns 0 when
 * it succeeded, -1 otherwise (request error set). */
static int sync_finish(subway_client *c, int64_t req_id, sync_wait *w) {
    if (req_id < 0) return -1;       /* sync_cb already ran with the reason */
    int64_t dl = c->timeout_ms < 0 ? -1 : now_ms() + c->timeout_ms;
    while (!w->done && !(c->flags & F_FREE)) {
        int frames = 0;
        bool intr = false;
        if (dl >= 0 && now_ms() >= dl) {
            /* Leave the request outstanding but aim its reply at nobody,
             * since w is about to go out of scope. */
            client_req *r = req_find(c, (uint64_t)req_id);
            if (r) r->cb = NULL;
            c->req_err = SUBWAY_E_TIMEOUT;
            snprintf(c->req_errstr, sizeof(c->req_errstr), "no reply within %d ms",
                     c->timeout_ms);
            return -1;
        }
        /* A closed connection fails the request through sync_cb. */
        if (client_poll_once(c, ms_until(dl), &frames, &intr) < 0 && !w->done) {
            c->req_err = SUBWAY_E_CLOSED;
            snprintf(c->req_errstr, sizeof(c->req_errstr), "%s", c->errstr);
            return -1;
        }
    }
    return w->done && w->err == 0 ? 0 : -1;
}

int subway_subscribe_sync(subway_client *c, const char *topic, const char *key, size_t key_len,
                          uint64_t *feed) {
    enter(c);
    sync_wait w = {0};
    int rc = sync_begin(c);
    if (rc == 0) rc = sync_finish(c, subway_subscribe(c, topic, key, key_len, sync_cb, &w), &w);
    if (rc == 0 && feed) *feed = w.res.feed;
    return leave(c, rc);
}

int subway_unsubscribe_sync(subway_client *c, uint64_t feed) {
    enter(c);
    sync_wait w = {0};
    int rc = sync_begin(c);
    if (rc == 0) rc = sync_finish(c, subway_unsubscribe(c, feed, sync_cb, &w), &w);
    return leave(c, rc);
}

int subway_publish_sync(subway_client *c, const char *topic, const char *key, size_t key_len,
                        const char *value, size_t value_len, uint32_t *partition,
                        uint64_t *offset) {
    enter(c);
    sync_wait w = {0};
    int rc = sync_begin(c);
    if (rc == 0)
        rc = sync_finish(c, subway_publish(c, topic, key, key_len, value, value_len, sync_cb, &w),
                         &w);
    if (rc == 0) {
        if (partition) *partition = w.res.partition;
        if (offset) *offset = w.res.offset;
    }
    return leave(c, rc);
}

int subway_poll(subway_client *c, int timeout_ms) {
    enter(c);
    if (in_callback(c)) return leave(c, 0);
    int64_t dl = timeout_ms < 0 ? -1 : now_ms() + timeout_ms;
    int frames = 0;
    for (;;) {
        bool intr = false;
        if (client_poll_once(c, ms_until(dl), &frames, &intr) < 0) return leave(c, -1);
        if (frames > 0 || intr) break;
        if (dl >= 0 && now_ms() >= dl) break;
    }
    return leave(c, frames);
}

/* ============================================================= accessors */

int subway_request_err(const subway_client *c) {
    return c->req_err;
}

const char *subway_request_errstr(const subway_client *c) {
    return c->req_errstr;
}

int subway_err(const subway_client *c) {
    return c->err;
}

const char *subway_errstr(const subway_client *c) {
    return c->errstr;
}

const char *subway_node_id(const subway_client *c) {
    return c->node_id;
}

uint64_t subway_heartbeat_ms(const subway_client *c) {
    return c->heartbeat_ms;
}

uint64_t subway_max_frame(const subway_client *c) {
    return c->node_max_frame;
}

size_t subway_pending(const subway_client *c) {
    return c->pending;
}

const char *subway_feed_topic(const subway_client *c, uint64_t feed) {
    const client_feed *fe = feed_find(c, feed);
    return fe ? fe->topic : NULL;
}

const uint32_t *subway_feed_partitions(const subway_client *c, uint64_t feed,
                                       size_t *partition_cnt) {
    const client_feed *fe = feed_find(c, feed);
    if (partition_cnt) *partition_cnt = fe ? fe->partition_cnt : 0;
    return fe ? fe->partitions : NULL;
}

/* subway.h repeats the node's codes so that it stands alone; they are the
 * protocol's, so the two lists must agree. */
#define SAME_CODE(name) _Static_assert((int)SUBWAY_E_##name == (int)PROTO_E_##name, \
                                       "subway.h and proto.h disagree on " #name)
SAME_CODE(VERSION);
SAME_CODE(FRAME_TOO_LARGE);
SAME_CODE(MALFORMED);
SAME_CODE(BAD_FRAME);
SAME_CODE(UNKNOWN_TYPE);
SAME_CODE(HELLO_REQUIRED);
SAME_CODE(TOO_MANY_SUBS);
SAME_CODE(TOO_MANY_CONNS);
SAME_CODE(INVALID_ARG);
SAME_CODE(UNKNOWN_TOPIC);
SAME_CODE(ALREADY_SUBSCRIBED);
SAME_CODE(NOT_SUBSCRIBED);
SAME_CODE(KAFKA);
SAME_CODE(HEARTBEAT_TIMEOUT);
SAME_CODE(SLOW_CONSUMER);
SAME_CODE(SHUTTING_DOWN);
SAME_CODE(UNAVAILABLE);
SAME_CODE(INTERNAL);
_Static_assert(PROTO_ERR_MAX == 18, "a new node error code: add it to subway.h");

const char *subway_version(void) {
    return SUBWAY_VERSION;
}

const char *subway_err_name(int code) {
    switch (code) {
    case SUBWAY_OK: return "OK";
    case SUBWAY_E_IO: return "IO";
    case SUBWAY_E_EOF: return "EOF";
    case SUBWAY_E_PROTOCOL: return "PROTOCOL";
    case SUBWAY_E_TIMEOUT: return "TIMEOUT";
    case SUBWAY_E_NOMEM: return "NOMEM";
    case SUBWAY_E_ARG: return "ARG";
    case SUBWAY_E_STATE: return "STATE";
    case SUBWAY_E_CLOSED: return "CLOSED";
    case SUBWAY_E_OUTPUT_FULL: return "OUTPUT_FULL";
    case SUBWAY_E_TOO_MANY_PENDING: return "TOO_MANY_PENDING";
    case SUBWAY_E_GOAWAY: return "GOAWAY";
    }
    return code > 0 ? proto_err_name((uint64_t)code) : "UNKNOWN";
}
