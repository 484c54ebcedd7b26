/* client.c -- libsubway's connection to a node: lifecycle, socket I/O, the input and output buffers, deadlines and the sticky error. */
#include "client_int.h"
#include "addr.h"

#include <errno.h>
#include <inttypes.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdarg.h>
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
#define DEFAULT_BACKOFF_BASE_MS 100
#define DEFAULT_BACKOFF_MAX_MS 10000
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

static void client_destroy(subway_client *c);

/* ================================================================ helpers */

int64_t client_now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

char *client_strdup(const char *s) {
    size_t n = strlen(s) + 1;
    char *p = malloc(n);
    if (p) memcpy(p, s, n);
    return p;
}

void *client_grow(void *arr, size_t *cap, size_t need, size_t size) {
    if (need <= *cap && arr) return arr;
    size_t n = *cap ? *cap : 8;
    while (n < need) n *= 2;
    if (n > SIZE_MAX / size) return NULL;
    void *p = realloc(arr, n * size);
    if (p) *cap = n;
    return p;
}

size_t client_lower_bound(const void *base, size_t n, size_t stride, size_t key_off,
                          size_t key_size, uint64_t key) {
    const char *b = base;
    size_t lo = 0, hi = n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        uint64_t k;
        if (key_size == sizeof(uint32_t)) {
            uint32_t k32;
            memcpy(&k32, b + mid * stride + key_off, sizeof(k32));
            k = k32;
        } else {
            memcpy(&k, b + mid * stride + key_off, sizeof(k));
        }
        if (k < key)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

/* The other half of client_enter() (client_int.h): the outermost call
 * frees a client subway_client_free() marked from a callback. Returns rv,
 * or -1 when it freed the client. */
int client_leave(subway_client *c, int rv) {
    if (--c->depth == 0 && (c->flags & F_FREE)) {
        client_destroy(c);
        return -1;
    }
    return rv;
}

/* A NUL-terminated copy of b in c->text, valid until the next call; b may be
 * nil. Returns "" if memory runs out, because callbacks must still run. */
const char *client_frame_text(subway_client *c, proto_bytes b) {
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

/* The connection failed: hands over to client_lost() when options.reconnect
 * retries this failure, else closes for good: records the sticky error (the
 * first one wins), fails every pending request and unanswered subscription
 * with SUBWAY_E_CLOSED and calls on_close. Safe to call from inside
 * callbacks, because the tables are detached before any callback runs and
 * the read loop stops once the state changed. */
void client_fail(subway_client *c, int code, const char *fmt, ...) {
    if (c->state == STATE_CLOSED) return;
    char why[sizeof(c->errstr)];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(why, sizeof(why), fmt, ap);
    va_end(ap);
    if (client_reconnect_wanted(c, code)) {
        /* While waiting there is no connection to lose. */
        if (client_is_open(c)) client_lost(c, code, why);
        return;
    }
    bool was_live = client_is_live(c);
    c->state = STATE_CLOSED;
    if (c->err == 0) {
        memcpy(c->errstr, why, sizeof(why));
        c->err = code;
    }
    /* Queued output can never be sent now; dropping it makes want_write 0. */
    proto_buf_reset(&c->out);
    proto_buf_reset(&c->held);
    c->out_pos = 0;
    if (!was_live) return;
    client_fail_requests(c, SUBWAY_E_CLOSED, c->errstr);
    client_feeds_fail_unanswered(c, SUBWAY_E_CLOSED, c->errstr);
    if (c->cb.on_close) c->cb.on_close(c, c->cb.cb_data, c->err, c->errstr);
}

void client_drop_connection(subway_client *c) {
    client_tls_drop(c);
    if (c->fd >= 0) close(c->fd);
    c->fd = -1;
    c->flags &= ~(F_WELCOMED | F_GOAWAY | F_CONN_ERROR);
    c->in_len = 0;
    proto_buf_reset(&c->out);
    proto_buf_reset(&c->held);
    c->out_pos = 0;
    free(c->node_id);
    c->node_id = NULL;
    c->version = c->heartbeat_ms = c->node_max_frame = c->token_expires_ms = 0;
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

/* One send (out) or recv (!out) of up to len bytes at buf, retried on
 * EINTR: the one place that says what a socket call's result means.
 * Returns the bytes moved, 0 when the socket would block, or -1 when the
 * connection failed (an error, or the node's EOF on a read). */
static ssize_t sock_io(subway_client *c, bool out, char *buf, size_t len) {
    if (c->ssl) {
        char why[256];
        ssize_t n = client_tls_io(c, out, buf, len, why, sizeof(why));
        if (n >= 0) return n;
        if (n == CLIENT_TLS_EOF || (n == CLIENT_TLS_SYSCALL && io_error_is_hangup(c, errno)))
            client_eof(c);
        else
            client_fail(c, SUBWAY_E_IO, "%s: %s", out ? "write" : "read", why);
        return -1;
    }
    for (;;) {
        ssize_t n = out ? send(c->fd, buf, len, MSG_NOSIGNAL) : recv(c->fd, buf, len, 0);
        if (n == 0 && !out) {
            client_eof(c);
            return -1;
        }
        if (n >= 0) return n;
        if (errno == EINTR) continue;
        if (errno == EAGAIN || errno == EWOULDBLOCK) return 0;
        if (io_error_is_hangup(c, errno))
            client_eof(c);
        else
            client_fail(c, SUBWAY_E_IO, "%s: %s", out ? "write" : "read", strerror(errno));
        return -1;
    }
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
int client_out_frame(subway_client *c, const proto_frame *f, bool control, char *errbuf,
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
int client_release_held(subway_client *c) {
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

/* ================================================================ socket */

/* Completes a non-blocking connect, and then a TLS handshake, if they
 * have. Returns 1 when connected, 0 while still in progress, -1 when it
 * failed (connection failed). */
static int check_connected(subway_client *c) {
    if (c->state == STATE_CONNECTED) return c->flags & F_TLS_HANDSHAKE ? client_tls_handshake(c) : 1;
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
    return c->flags & F_TLS_HANDSHAKE ? client_tls_handshake(c) : 1;
}

/* Writes queued output until the socket would block. Returns 0 or -1. */
int client_write(subway_client *c) {
    int rc = check_connected(c);
    if (rc <= 0) return rc;
    while (out_queued(c) > 0) {
        ssize_t n = sock_io(c, true, c->out.data + c->out_pos, out_queued(c));
        if (n < 0) return -1;
        if (n == 0) break;
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
int client_read(subway_client *c, int *frames) {
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
        ssize_t n = sock_io(c, false, c->in + c->in_len, room);
        if (n < 0) return -1;
        if (n == 0) break;
        c->in_len += (size_t)n;
        c->last_rx_ms = client_now_ms();
        if (client_decode_input(c, frames) < 0) return -1;
        /* A short read means the socket was drained just now (TLS reads
         * a record at a time: it reads on until it must wait). */
        if ((size_t)n < room && !c->ssl) break;
    }
    /* Answer PINGs (and send whatever callbacks queued) right away. */
    return client_write(c);
}

/* ============================================================== timeouts */

/* The monotonic time the connection fails at if nothing arrives, or -1. */
static int64_t silence_deadline(const subway_client *c) {
    if (!client_is_open(c)) return -1;
    if (c->flags & F_WELCOMED) {
        if (c->heartbeat_ms == 0) return -1;
        uint64_t hb = c->heartbeat_ms > INT32_MAX ? INT32_MAX : c->heartbeat_ms;
        return c->last_rx_ms + (int64_t)hb * HEARTBEAT_MISSES;
    }
    if (c->timeout_ms < 0) return -1;
    return c->connect_ms + c->timeout_ms;
}

/* The next time the library has something to do: the silence deadline or
 * a reconnect timer; -1 when there is none. */
int64_t client_deadline(const subway_client *c) {
    int64_t a = silence_deadline(c), b = client_reconnect_deadline(c);
    if (a < 0) return b;
    if (b < 0) return a;
    return a < b ? a : b;
}

/* Fails the connection if its silence deadline passed, and runs a due
 * reconnect step. Returns 0, or -1 when the client is closed (or not
 * connected yet). */
int client_check_deadline(subway_client *c) {
    if (!client_is_live(c)) return -1;
    int64_t dl = silence_deadline(c);
    if (dl >= 0 && client_now_ms() >= dl) {
        if (c->flags & F_WELCOMED)
            client_fail(c, SUBWAY_E_TIMEOUT, "heartbeat timeout: nothing received from node for "
                        "%" PRIu64 " ms", c->heartbeat_ms * HEARTBEAT_MISSES);
        else if (c->state == STATE_CONNECTING)
            client_fail(c, SUBWAY_E_TIMEOUT, "connect %s: timed out after %d ms", c->addr,
                        c->timeout_ms);
        else
            client_fail(c, SUBWAY_E_TIMEOUT, "no WELCOME from node within %d ms", c->timeout_ms);
    }
    if (client_is_live(c)) client_reconnect_tick(c);
    return client_is_live(c) ? 0 : -1;
}

/* Milliseconds from now until dl (-1 = none), clipped to [0, INT32_MAX]. */
int client_ms_until(int64_t dl) {
    if (dl < 0) return -1;
    int64_t left = dl - client_now_ms();
    if (left < 0) return 0;
    return left > INT32_MAX ? INT32_MAX : (int)left;
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
    c->max_frame = opt->max_frame ? opt->max_frame : PROTO_DEFAULT_MAX_MESSAGE;
    if (c->max_frame < PROTO_MIN_MAX_FRAME) c->max_frame = PROTO_MIN_MAX_FRAME;
    if (c->max_frame > UINT32_MAX) c->max_frame = UINT32_MAX;
    c->max_output = opt->max_output ? opt->max_output : DEFAULT_MAX_OUTPUT;
    c->max_pending = opt->max_pending ? opt->max_pending : DEFAULT_MAX_PENDING;
    c->timeout_ms = opt->timeout_ms == 0 ? DEFAULT_TIMEOUT_MS
                    : opt->timeout_ms < 0 ? -1 : opt->timeout_ms;
    c->reconnect = opt->reconnect != 0;
    c->backoff_base_ms = opt->reconnect_base_ms > 0 ? opt->reconnect_base_ms : DEFAULT_BACKOFF_BASE_MS;
    c->backoff_max_ms = opt->reconnect_max_ms > 0 ? opt->reconnect_max_ms : DEFAULT_BACKOFF_MAX_MS;
    if (c->backoff_max_ms < c->backoff_base_ms) c->backoff_max_ms = c->backoff_base_ms;
    c->next_feed_id = 1;
    c->resub_at_ms = -1;
    /* Jitter only has to differ between clients, not resist anyone. */
    c->rng = ((uint64_t)client_now_ms() << 20) ^ (uint64_t)(uintptr_t)c ^ (uint64_t)getpid();
    if (c->rng == 0) c->rng = 1;
    c->cb = opt->cb;
    c->client_name = client_strdup(opt->client_name ? opt->client_name : DEFAULT_CLIENT_NAME);
    c->dec = proto_decoder_new(c->max_frame);
    if (c->client_name == NULL || c->dec == NULL) goto err;
    return c;
err:
    subway_client_free(c);
    return NULL;
}

int client_open(subway_client *c, char *errbuf, size_t errsize) {
    char host[256], port[8], why[384];
    int portnum;
    if (proto_addr_split(c->addr, host, sizeof(host), &portnum, why, sizeof(why)) < 0) {
        snprintf(errbuf, errsize, "bad address: %s", why);
        return SUBWAY_E_ARG;
    }
    snprintf(port, sizeof(port), "%d", portnum);

    struct addrinfo hints = { .ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM,
                              .ai_flags = AI_NUMERICSERV };
    struct addrinfo *ai = NULL;
    int gai = getaddrinfo(host, port, &hints, &ai);
    if (gai != 0) {
        snprintf(errbuf, errsize, "resolve %s: %s", c->addr, gai_strerror(gai));
        return SUBWAY_E_IO;
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
        snprintf(errbuf, errsize, "connect %s: %s", c->addr, strerror(saved));
        return SUBWAY_E_IO;
    }
    client_state was = c->state;
    c->fd = fd;
    if (c->tls_ctx) {
        int code = client_tls_start(c, host, errbuf, errsize);
        if (code != 0) {
            close(fd);
            c->fd = -1;
            return code;
        }
    }
    c->state = in_progress ? STATE_CONNECTING : STATE_CONNECTED;
    c->connect_ms = c->last_rx_ms = client_now_ms();

    proto_frame hello = { .type = PROTO_HELLO, .version = PROTO_VERSION,
                          .name = { c->client_name, strlen(c->client_name) },
                          .auth = { c->token, c->token ? strlen(c->token) : 0 } };
    int code = client_out_frame(c, &hello, true, errbuf, errsize);
    if (code != 0) {
        /* Nothing can have been queued yet: no request, no callback to run. */
        client_tls_drop(c);
        close(fd);
        c->fd = -1;
        c->state = was;
        return code;
    }
    return 0;
}

int subway_client_connect(subway_client *c, const char *addr) {
    /* Not sticky: the existing connection is unaffected. */
    if (c->state != STATE_NEW) return -1;
    char errbuf[512];
    int code = 0;
    if (addr && strlen(addr) >= sizeof(c->addr)) {
        snprintf(errbuf, sizeof(errbuf), "bad address: longer than %zu bytes", sizeof(c->addr) - 1);
        code = SUBWAY_E_ARG;
    } else {
        /* Kept: a reconnect resolves it again. */
        snprintf(c->addr, sizeof(c->addr), "%s", addr ? addr : "");
        code = client_open(c, errbuf, sizeof(errbuf));
    }
    if (code != 0) {
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
    if (c->state != STATE_CONNECTED) return 0;
    if (c->flags & F_TLS_WANT_WRITE) return 1;
    return !(c->flags & F_TLS_HANDSHAKE) && out_queued(c) > 0;
}

/* What a public call returns after an I/O step: 0 while the client lives
 * (a lost connection being replaced counts), -1 once it is closed. */
static int live_rc(const subway_client *c, int rc) {
    return rc < 0 && !client_is_live(c) ? -1 : 0;
}

int subway_client_process_readable(subway_client *c) {
    client_enter(c);
    if (client_in_callback(c)) return client_leave(c, 0);
    int frames = 0;
    int rc = client_is_open(c) ? client_read(c, &frames) : -1;
    return client_leave(c, live_rc(c, rc));
}

int subway_client_flush(subway_client *c) {
    client_enter(c);
    int rc = client_is_open(c) ? client_write(c) : -1;
    return client_leave(c, live_rc(c, rc));
}

int subway_client_timeout_ms(const subway_client *c) {
    return client_ms_until(client_deadline(c));
}

int subway_client_tick(subway_client *c) {
    client_enter(c);
    return client_leave(c, client_check_deadline(c));
}

void subway_client_close(subway_client *c) {
    client_enter(c);
    client_fail(c, SUBWAY_E_CLOSED, "closed by client");
    client_leave(c, 0);
}

static void client_destroy(subway_client *c) {
    /* Callbacks run by the close below must not free c a second time. */
    c->depth++;
    c->flags |= F_FREE;
    client_fail(c, SUBWAY_E_CLOSED, "client freed");
    client_tls_free(c);
    if (c->fd >= 0) close(c->fd);
    client_requests_free(c);
    client_feeds_free(c);
    proto_decoder_free(c->dec);
    proto_buf_free(&c->out);
    proto_buf_free(&c->held);
    free(c->in);
    free(c->text);
    free(c->hdrs);
    free(c->node_id);
    free(c->client_name);
    if (c->token) {
        memset(c->token, 0, strlen(c->token));
        free(c->token);
    }
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

/* ======================================================== state & errors */

int subway_err(const subway_client *c) {
    return c->err;
}

const char *subway_errstr(const subway_client *c) {
    return c->errstr;
}

const char *subway_node_id(const subway_client *c) {
    return c->node_id;
}

uint64_t subway_protocol_version(const subway_client *c) {
    return c->version;
}

uint64_t subway_heartbeat_ms(const subway_client *c) {
    return c->heartbeat_ms;
}

int subway_set_token(subway_client *c, const char *token) {
    char *copy = NULL;
    if (token && !(copy = client_strdup(token))) return -1;
    if (c->token) {
        memset(c->token, 0, strlen(c->token));
        free(c->token);
    }
    c->token = copy;
    if (!copy || c->state != STATE_CONNECTED || !(c->flags & F_WELCOMED) || c->version < 3) return 0;
    /* Connected: the node takes it now (AUTHED, or ERROR naming this
     * request: FORBIDDEN keeps the old token, UNAUTHORIZED closes). */
    char errbuf[256];
    proto_frame f = { .type = PROTO_AUTH, .req_id = c->next_req_id++, .auth = { copy, strlen(copy) } };
    return client_out_frame(c, &f, true, errbuf, sizeof(errbuf)) == 0 ? 0 : -1;
}

uint64_t subway_token_expires_ms(const subway_client *c) {
    return c->token_expires_ms;
}

uint64_t subway_max_frame(const subway_client *c) {
    return c->node_max_frame;
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
SAME_CODE(UNAUTHORIZED);
SAME_CODE(FORBIDDEN);
_Static_assert(PROTO_ERR_MAX == 20, "a new node error code: add it to subway.h");

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
    case SUBWAY_E_LOST: return "LOST";
    case SUBWAY_E_UNSUPPORTED: return "UNSUPPORTED";
    }
    return code > 0 ? proto_err_name((uint64_t)code) : "UNKNOWN";
}

