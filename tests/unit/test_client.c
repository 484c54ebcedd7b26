/* test_client.c -- libsubway against a scripted node on a loopback socket: handshake, heartbeats, requests, dispatch, failures. */

#include "proto/proto.h"
#include "proto/subway.h"
#include "proto/client_int.h"         /* client_backoff_ms(), the pure backoff rule */

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#define WAIT_MS 2000                 /* how long any single expected event may take */
#define PEER_IN_MAX (2u * 1024 * 1024)

/* ============================================================ the node side */

/* The scripted node: a listener, one accepted connection, and the codec. */
typedef struct peer {
    int lfd;
    int fd;
    int port;
    char addr[64];
    proto_decoder *dec;
    char *in;
    size_t in_len;
    size_t consumed;                 /* bytes of the last frame, dropped on the next read */
    proto_buf out;
} peer;

static void peer_listen(peer *p) {
    memset(p, 0, sizeof(*p));
    p->fd = -1;
    p->lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    assert_true(p->lfd >= 0);
    struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = 0 };
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(bind(p->lfd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    assert_int_equal(listen(p->lfd, 8), 0);
    socklen_t len = sizeof(sa);
    assert_int_equal(getsockname(p->lfd, (struct sockaddr *)&sa, &len), 0);
    p->port = ntohs(sa.sin_port);
    snprintf(p->addr, sizeof(p->addr), "127.0.0.1:%d", p->port);
    p->dec = proto_decoder_new(PROTO_DEFAULT_MAX_FRAME);
    p->in = malloc(PEER_IN_MAX);
    assert_non_null(p->dec);
    assert_non_null(p->in);
    proto_buf_init(&p->out);
}

/* Accepts the client's connection; returns 0, or -1 after WAIT_MS. */
static int peer_accept(peer *p) {
    struct pollfd pf = { .fd = p->lfd, .events = POLLIN };
    if (poll(&pf, 1, WAIT_MS) != 1) return -1;
    p->fd = accept(p->lfd, NULL, NULL);
    return p->fd >= 0 ? 0 : -1;
}

/* Hangs up with a FIN. Unread input would make the kernel send RST instead,
 * and the client could then lose the frames sent just before the close. */
static void peer_close(peer *p) {
    if (p->fd < 0) return;
    char buf[4096];
    while (recv(p->fd, buf, sizeof(buf), MSG_DONTWAIT) > 0) continue;
    close(p->fd);
    p->fd = -1;
}

static void peer_free(peer *p) {
    peer_close(p);
    if (p->lfd >= 0) close(p->lfd);
    proto_decoder_free(p->dec);
    proto_buf_free(&p->out);
    free(p->in);
}

static int peer_send_raw(peer *p, const void *buf, size_t len) {
    const char *s = buf;
    while (len > 0) {
        ssize_t n = send(p->fd, s, len, MSG_NOSIGNAL);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) return -1;
        s += n;
        len -= (size_t)n;
    }
    return 0;
}

static int peer_send(peer *p, const proto_frame *f) {
    proto_buf_reset(&p->out);
    if (proto_encode(&p->out, f) < 0) return -1;
    return peer_send_raw(p, p->out.data, p->out.len);
}

/* Reads the next frame the client wrote into *f (valid until the next call).
 * Returns 1, 0 on EOF or after wait_ms without a frame, -1 on a bad frame. */
static int peer_read_wait(peer *p, proto_frame *f, int wait_ms) {
    memmove(p->in, p->in + p->consumed, p->in_len - p->consumed);
    p->in_len -= p->consumed;
    p->consumed = 0;
    for (;;) {
        size_t used = 0;
        proto_status st = proto_decode(p->dec, p->in, p->in_len, &used, f);
        if (st == PROTO_FRAME) {
            p->consumed = used;
            return 1;
        }
        if (st == PROTO_BAD_INPUT) return -1;
        struct pollfd pf = { .fd = p->fd, .events = POLLIN };
        if (poll(&pf, 1, wait_ms) != 1) return 0;
        ssize_t n = recv(p->fd, p->in + p->in_len, PEER_IN_MAX - p->in_len, 0);
        if (n <= 0) return 0;
        p->in_len += (size_t)n;
    }
}

static int peer_read(peer *p, proto_frame *f) {
    return peer_read_wait(p, f, WAIT_MS);
}

/* ====================================================== the client's side */

/* Everything the connection-level callbacks saw. */
typedef struct rec {
    int welcome_calls;
    int close_calls;
    int close_err;
    char close_errstr[256];
    int message_calls;
    uint64_t msg_feed;
    char msg_topic[64];              /* "(null)" when the message had no topic */
    uint32_t msg_partition;
    uint64_t msg_offset;
    int64_t msg_ts;
    char msg_key[64];                /* "(nil)" for nil */
    char msg_value[64];
    size_t msg_value_len;
    char msg_headers[128];           /* name=value,... ("name" alone for nil) */
    int dropped_calls;
    uint64_t dropped_feed;
    uint64_t dropped_count;
    int goaway_calls;
    char goaway_text[64];
    int error_calls;
    uint64_t error_req_id;
    int error_code;
    char error_text[128];
    int live_calls;
    uint64_t live_feed;
    char live_pos[128];              /* "partition:offset,..." as on_live got them */
    int rc_calls[4];                 /* on_reconnect calls by subway_reconnect_event */
    int rc_lost_err;
    char rc_lost_errstr[256];
    unsigned rc_attempt;             /* of the last call */
    int rc_delays[64];               /* LOST's delay_ms, by call */
    unsigned rc_attempts[64];        /* LOST's attempt, by call */
    int64_t rc_lost_ms[64];          /* when each LOST came */
    int64_t rc_attempt_ms[64];       /* when each ATTEMPT came */
    int rc_fd_at_lost;               /* subway_client_fd() during the last LOST */
    size_t rc_done_feeds;
    int rc_done_resumed;
    int lost_calls;                  /* on_feed_lost */
    uint64_t lost_feed;
    int lost_err;
    char lost_errstr[128];
    bool free_on_message;            /* subway_client_free() from on_message */
    bool publish_on_message;         /* queue a PUBLISH from on_message */
    subway_client **cp;              /* where the test keeps the client, cleared on free */
} rec;

/* Everything one request callback saw. */
typedef struct reply {
    int calls;
    int err;
    char errstr[256];
    subway_result res;
    uint32_t parts[8];
    bool free_client;                /* call subway_client_free() from the callback */
    subway_client **cp;
} reply;

static void copy_bytes(char *dst, size_t size, const char *p, size_t len) {
    if (p == NULL) {
        snprintf(dst, size, "(nil)");
        return;
    }
    snprintf(dst, size, "%.*s", (int)len, p);
}

static void on_welcome(subway_client *c, void *cb_data) {
    ((rec *)cb_data)->welcome_calls++;
}

static void on_close(subway_client *c, void *cb_data, int err, const char *errstr) {
    rec *r = cb_data;
    r->close_calls++;
    r->close_err = err;
    snprintf(r->close_errstr, sizeof(r->close_errstr), "%s", errstr);
}

static void on_message(subway_client *c, void *cb_data, const subway_message *m) {
    rec *r = cb_data;
    r->message_calls++;
    r->msg_feed = m->feed;
    snprintf(r->msg_topic, sizeof(r->msg_topic), "%s", m->topic ? m->topic : "(null)");
    r->msg_partition = m->partition;
    r->msg_offset = m->offset;
    r->msg_ts = m->timestamp_ms;
    copy_bytes(r->msg_key, sizeof(r->msg_key), m->key, m->key_len);
    copy_bytes(r->msg_value, sizeof(r->msg_value), m->value, m->value_len);
    r->msg_value_len = m->value_len;
    r->msg_headers[0] = '\0';
    for (size_t i = 0; i < m->header_cnt; i++) {
        size_t n = strlen(r->msg_headers);
        const subway_header *h = &m->headers[i];
        if (h->value)
            snprintf(r->msg_headers + n, sizeof(r->msg_headers) - n, "%s%.*s=%.*s", i ? "," : "",
                     (int)h->name_len, h->name, (int)h->value_len, h->value);
        else
            snprintf(r->msg_headers + n, sizeof(r->msg_headers) - n, "%s%.*s", i ? "," : "",
                     (int)h->name_len, h->name);
    }
    if (r->publish_on_message) subway_publish(c, "echo", NULL, 0, "x", 1, NULL, NULL);
    if (r->free_on_message) {
        subway_client_free(c);
        *r->cp = NULL;
    }
}

static void on_dropped(subway_client *c, void *cb_data, uint64_t feed, uint64_t count) {
    rec *r = cb_data;
    r->dropped_calls++;
    r->dropped_feed = feed;
    r->dropped_count = count;
}

static void on_goaway(subway_client *c, void *cb_data, const char *text) {
    rec *r = cb_data;
    r->goaway_calls++;
    snprintf(r->goaway_text, sizeof(r->goaway_text), "%s", text);
}

static void on_error(subway_client *c, void *cb_data, uint64_t req_id, int code,
                     const char *text) {
    rec *r = cb_data;
    r->error_calls++;
    r->error_req_id = req_id;
    r->error_code = code;
    snprintf(r->error_text, sizeof(r->error_text), "%s", text);
}

/* "partition:offset,..." of n positions into dst. */
static void format_positions(char *dst, size_t size, const subway_position *ps, size_t n) {
    dst[0] = '\0';
    for (size_t i = 0; i < n; i++) {
        size_t len = strlen(dst);
        snprintf(dst + len, size - len, "%s%u:%llu", i ? "," : "", (unsigned)ps[i].partition,
                 (unsigned long long)ps[i].offset);
    }
}

static int64_t mono_ms(void);

static void on_live(subway_client *c, void *cb_data, uint64_t feed, const subway_position *ps,
                    size_t n) {
    rec *r = cb_data;
    r->live_calls++;
    r->live_feed = feed;
    format_positions(r->live_pos, sizeof(r->live_pos), ps, n);
}

static void on_reconnect(subway_client *c, void *cb_data, const subway_reconnect_info *info) {
    rec *r = cb_data;
    assert_true(info->event >= 1 && info->event <= 3);
    int k = r->rc_calls[info->event]++;
    r->rc_attempt = info->attempt;
    if (info->event == SUBWAY_RECONNECT_LOST) {
        r->rc_lost_err = info->err;
        snprintf(r->rc_lost_errstr, sizeof(r->rc_lost_errstr), "%s", info->errstr);
        r->rc_fd_at_lost = subway_client_fd(c);
        if (k < 64) {
            r->rc_delays[k] = info->delay_ms;
            r->rc_attempts[k] = info->attempt;
            r->rc_lost_ms[k] = mono_ms();
        }
    } else if (info->event == SUBWAY_RECONNECT_ATTEMPT) {
        assert_true(subway_client_fd(c) >= 0);
        if (k < 64) r->rc_attempt_ms[k] = mono_ms();
    } else {
        assert_int_equal(info->err, 0);
        r->rc_done_feeds = info->feed_cnt;
        r->rc_done_resumed = info->resumed;
    }
}

static void on_feed_lost(subway_client *c, void *cb_data, uint64_t feed, int err,
                         const char *errstr) {
    rec *r = cb_data;
    r->lost_calls++;
    r->lost_feed = feed;
    r->lost_err = err;
    snprintf(r->lost_errstr, sizeof(r->lost_errstr), "%s", errstr);
}

static void reply_cb(subway_client *c, void *cb_data, int err, const char *errstr,
                     const subway_result *res) {
    reply *r = cb_data;
    r->calls++;
    r->err = err;
    snprintf(r->errstr, sizeof(r->errstr), "%s", errstr);
    r->res = *res;
    for (size_t i = 0; i < res->partition_cnt && i < 8; i++) r->parts[i] = res->partitions[i];
    r->res.partitions = NULL;
    if (r->free_client) {
        subway_client_free(c);
        *r->cp = NULL;
    }
}

/* A client connected to a peer, with recorders. */
typedef struct fx {
    peer p;
    rec r;
    subway_client *c;
    subway_options opt;
} fx;

static void fx_options(fx *t) {
    memset(t, 0, sizeof(*t));
    t->opt.client_name = "test-client";
    t->opt.cb = (subway_callbacks){ .on_message = on_message, .on_dropped = on_dropped,
                                    .on_goaway = on_goaway, .on_error = on_error,
                                    .on_welcome = on_welcome, .on_close = on_close,
                                    .on_live = on_live, .on_reconnect = on_reconnect,
                                    .on_feed_lost = on_feed_lost, .cb_data = &t->r };
    t->r.cp = &t->c;
}

/* Writes the client's queued output (HELLO, requests) to the peer. */
static void client_flush_all(subway_client *c) {
    for (int i = 0; i < 100 && subway_client_want_write(c); i++) {
        struct pollfd pf = { .fd = subway_client_fd(c), .events = POLLOUT };
        poll(&pf, 1, WAIT_MS / 100);
        assert_int_equal(subway_client_flush(c), 0);
    }
    assert_int_equal(subway_client_want_write(c), 0);
}

/* Event-API pump: waits for the socket, then processes it once. */
static int client_pump(subway_client *c) {
    struct pollfd pf = { .fd = subway_client_fd(c), .events = POLLIN };
    if (poll(&pf, 1, WAIT_MS) != 1) return -2;
    return subway_client_process_readable(c);
}

/* Connects t->c (options already in t->opt) to a fresh peer and checks HELLO. */
static void fx_connect(fx *t) {
    peer_listen(&t->p);
    t->c = subway_client_new(&t->opt);
    assert_non_null(t->c);
    assert_int_equal(subway_client_fd(t->c), -1);
    assert_int_equal(subway_client_connect(t->c, t->p.addr), 0);
    assert_true(subway_client_fd(t->c) >= 0);
    assert_int_equal(peer_accept(&t->p), 0);
    client_flush_all(t->c);
    proto_frame f;
    assert_int_equal(peer_read(&t->p, &f), 1);
    assert_int_equal(f.type, PROTO_HELLO);
    assert_int_equal(f.version, PROTO_VERSION);
    assert_int_equal(f.name.len, strlen(t->opt.client_name ? t->opt.client_name : "libsubway"));
    assert_memory_equal(f.name.ptr, t->opt.client_name ? t->opt.client_name : "libsubway",
                        f.name.len);
}

static void send_welcome_version(fx *t, uint64_t version, uint64_t heartbeat_ms,
                                 uint64_t max_frame) {
    proto_frame w = { .type = PROTO_WELCOME, .version = version,
                      .name = { "node-a", 6 }, .heartbeat_ms = heartbeat_ms,
                      .max_frame = max_frame };
    assert_int_equal(peer_send(&t->p, &w), 0);
}

static void send_welcome(fx *t, uint64_t heartbeat_ms, uint64_t max_frame) {
    send_welcome_version(t, PROTO_VERSION, heartbeat_ms, max_frame);
}

/* Connects and completes the handshake. */
static void fx_start(fx *t) {
    fx_connect(t);
    send_welcome(t, 5000, PROTO_DEFAULT_MAX_FRAME);
    assert_int_equal(client_pump(t->c), 0);
    assert_int_equal(t->r.welcome_calls, 1);
}

static void fx_stop(fx *t) {
    subway_client_free(t->c);
    t->c = NULL;
    peer_free(&t->p);
}

/* Subscribes and answers with SUBSCRIBED{feed, partitions}; checks the frame. */
static void subscribe_ok(fx *t, const char *topic, const char *key, uint64_t feed,
                         const uint32_t *parts, size_t nparts, reply *rp) {
    int64_t id = subway_subscribe(t->c, topic, key, key ? strlen(key) : 0, reply_cb, rp);
    assert_true(id > 0);
    client_flush_all(t->c);
    proto_frame f;
    assert_int_equal(peer_read(&t->p, &f), 1);
    assert_int_equal(f.type, PROTO_SUBSCRIBE);
    assert_int_equal(f.req_id, (uint64_t)id);
    assert_int_equal(f.topic.len, strlen(topic));
    assert_memory_equal(f.topic.ptr, topic, f.topic.len);
    assert_int_equal(f.start_mode, PROTO_START_NONE);   /* no start field */
    if (key) {
        assert_non_null(f.key.ptr);
        assert_int_equal(f.key.len, strlen(key));
        assert_memory_equal(f.key.ptr, key, f.key.len);
    } else {
        assert_null(f.key.ptr);
    }
    proto_frame s = { .type = PROTO_SUBSCRIBED, .req_id = (uint64_t)id, .feed = feed,
                      .partitions = parts, .partition_cnt = nparts };
    assert_int_equal(peer_send(&t->p, &s), 0);
    assert_int_equal(client_pump(t->c), 0);
}

static int64_t mono_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* ================================================================= tests */

static void test_handshake(void **state) {
    fx t;
    fx_options(&t);
    fx_connect(&t);
    assert_null(subway_node_id(t.c));
    assert_int_equal(subway_max_frame(t.c), 0);
    /* Before WELCOME the handshake deadline runs: timeout_ms, 10 s default. */
    int left = subway_client_timeout_ms(t.c);
    assert_true(left > 9000 && left <= 10000);

    send_welcome(&t, 1000, 4096);
    assert_int_equal(client_pump(t.c), 0);
    assert_int_equal(t.r.welcome_calls, 1);
    assert_string_equal(subway_node_id(t.c), "node-a");
    assert_int_equal(subway_heartbeat_ms(t.c), 1000);
    assert_int_equal(subway_max_frame(t.c), 4096);
    assert_int_equal(subway_err(t.c), 0);
    assert_string_equal(subway_errstr(t.c), "");
    /* After it, silence is allowed for 3 heartbeats. */
    left = subway_client_timeout_ms(t.c);
    assert_true(left > 2500 && left <= 3000);
    assert_int_equal(subway_client_tick(t.c), 0);
    fx_stop(&t);
    assert_int_equal(t.r.close_calls, 1);
    assert_int_equal(t.r.close_err, SUBWAY_E_CLOSED);
    assert_string_equal(t.r.close_errstr, "client freed");
}

/* HELLO offers version 3; a node may answer with 3 or, predating it, 2 or 1. */
static void test_welcome_versions(void **state) {
    assert_int_equal(PROTO_VERSION, 3);
    for (uint64_t v = 1; v <= 3; v++) {
        fx t;
        fx_options(&t);
        fx_connect(&t);              /* checks HELLO carries PROTO_VERSION */
        assert_int_equal(subway_protocol_version(t.c), 0);
        send_welcome_version(&t, v, 5000, PROTO_DEFAULT_MAX_FRAME);
        assert_int_equal(client_pump(t.c), 0);
        assert_int_equal(t.r.welcome_calls, 1);
        assert_int_equal(subway_err(t.c), 0);
        assert_int_equal(subway_protocol_version(t.c), v);
        fx_stop(&t);
    }
}

/* A token goes in HELLO; set again on a version-3 connection it goes out
 * at once in AUTH, and AUTHED's expiry is what the accessor says. */
static void test_token(void **state) {
    fx t;
    fx_options(&t);
    peer_listen(&t.p);
    t.c = subway_client_new(&t.opt);
    assert_non_null(t.c);
    assert_int_equal(subway_set_token(t.c, "tok-1"), 0);
    assert_int_equal(subway_client_connect(t.c, t.p.addr), 0);
    assert_int_equal(peer_accept(&t.p), 0);
    client_flush_all(t.c);
    proto_frame f;
    assert_int_equal(peer_read(&t.p, &f), 1);
    assert_int_equal(f.type, PROTO_HELLO);
    assert_int_equal(f.auth.len, 5);
    assert_memory_equal(f.auth.ptr, "tok-1", 5);
    proto_frame w = { .type = PROTO_WELCOME, .version = 3, .name = { "node-a", 6 }, .heartbeat_ms = 5000,
                      .max_frame = PROTO_DEFAULT_MAX_FRAME, .heartbeat_timeout_ms = 15000, .max_key = 1024,
                      .max_subs = 1024, .client = { "svc", 3 }, .expires_ms = 1000 };
    assert_int_equal(peer_send(&t.p, &w), 0);
    assert_int_equal(client_pump(t.c), 0);
    assert_int_equal(subway_token_expires_ms(t.c), 1000);

    assert_int_equal(subway_set_token(t.c, "tok-2"), 0);
    client_flush_all(t.c);
    assert_int_equal(peer_read(&t.p, &f), 1);
    assert_int_equal(f.type, PROTO_AUTH);
    assert_int_equal(f.auth.len, 5);
    assert_memory_equal(f.auth.ptr, "tok-2", 5);
    proto_frame a = { .type = PROTO_AUTHED, .req_id = f.req_id, .expires_ms = 2000 };
    assert_int_equal(peer_send(&t.p, &a), 0);
    assert_int_equal(client_pump(t.c), 0);
    assert_int_equal(subway_token_expires_ms(t.c), 2000);
    assert_int_equal(subway_err(t.c), 0);
    fx_stop(&t);
}

static void test_default_client_name(void **state) {
    fx t;
    fx_options(&t);
    t.opt.client_name = NULL;
    fx_connect(&t);                  /* checks HELLO carries "libsubway" */
    fx_stop(&t);
}

static void test_ping_pong(void **state) {
    fx t;
    fx_options(&t);
    fx_start(&t);
    proto_frame ping = { .type = PROTO_PING, .token = 42 };
    assert_int_equal(peer_send(&t.p, &ping), 0);
    ping.token = UINT64_MAX;
    assert_int_equal(peer_send(&t.p, &ping), 0);
    /* Both PINGs may arrive in one read or two. */
    int frames = 0;
    while (frames < 2) {
        int n = subway_poll(t.c, WAIT_MS);
        assert_true(n > 0);
        frames += n;
    }
    proto_frame f;
    assert_int_equal(peer_read(&t.p, &f), 1);
    assert_int_equal(f.type, PROTO_PONG);
    assert_int_equal(f.token, 42);
    assert_int_equal(peer_read(&t.p, &f), 1);
    assert_int_equal(f.type, PROTO_PONG);
    assert_true(f.token == UINT64_MAX);
    fx_stop(&t);
}

static void test_ping_before_welcome(void **state) {
    fx t;
    fx_options(&t);
    fx_connect(&t);
    proto_frame ping = { .type = PROTO_PING, .token = 7 };
    assert_int_equal(peer_send(&t.p, &ping), 0);
    assert_int_equal(client_pump(t.c), 0);
    proto_frame f;
    assert_int_equal(peer_read(&t.p, &f), 1);
    assert_int_equal(f.type, PROTO_PONG);
    assert_int_equal(f.token, 7);
    fx_stop(&t);
}

static void test_subscribe(void **state) {
    fx t;
    fx_options(&t);
    fx_start(&t);
    reply rp = {0};
    static const uint32_t parts[] = { 0, 2 };
    /* The node's handle is 7; the application sees the library's feed id 1. */
    subscribe_ok(&t, "demo", "user-3", 7, parts, 2, &rp);
    assert_int_equal(rp.calls, 1);
    assert_int_equal(rp.err, 0);
    assert_string_equal(rp.errstr, "");
    assert_int_equal(rp.res.req_id, 1);
    assert_int_equal(rp.res.type, SUBWAY_REQ_SUBSCRIBE);
    assert_int_equal(rp.res.feed, 1);
    assert_int_equal(rp.res.partition_cnt, 2);
    assert_int_equal(rp.parts[0], 0);
    assert_int_equal(rp.parts[1], 2);
    assert_string_equal(subway_feed_topic(t.c, 1), "demo");
    uint64_t h = 0;
    assert_int_equal(subway_feed_handle(t.c, 1, &h), 0);
    assert_int_equal(h, 7);
    size_t n = 99;
    const uint32_t *p = subway_feed_partitions(t.c, 1, &n);
    assert_int_equal(n, 2);
    assert_int_equal(p[1], 2);
    /* Ids are not handles: 7 names nothing. */
    assert_null(subway_feed_topic(t.c, 7));
    assert_null(subway_feed_partitions(t.c, 7, &n));
    assert_int_equal(n, 0);
    assert_int_equal(subway_feed_handle(t.c, 7, &h), -1);

    /* Every key (nil on the wire); req_ids and feed ids keep counting. */
    reply rp2 = {0};
    static const uint32_t parts2[] = { 1 };
    subscribe_ok(&t, "orders", NULL, 3, parts2, 1, &rp2);
    assert_int_equal(rp2.calls, 1);
    assert_int_equal(rp2.res.req_id, 2);
    assert_int_equal(rp2.res.feed, 2);
    assert_string_equal(subway_feed_topic(t.c, 2), "orders");
    assert_int_equal(subway_pending(t.c), 0);

    /* Unsubscribe names the node's handle, and removes the feed once UNSUBSCRIBED arrives. */
    reply rp3 = {0};
    assert_int_equal(subway_unsubscribe(t.c, 1, reply_cb, &rp3), 3);
    client_flush_all(t.c);
    proto_frame f;
    assert_int_equal(peer_read(&t.p, &f), 1);
    assert_int_equal(f.type, PROTO_UNSUBSCRIBE);
    assert_int_equal(f.req_id, 3);
    assert_int_equal(f.feed, 7);
    assert_string_equal(subway_feed_topic(t.c, 1), "demo");
    proto_frame u = { .type = PROTO_UNSUBSCRIBED, .req_id = 3, .feed = 7 };
    assert_int_equal(peer_send(&t.p, &u), 0);
    assert_int_equal(client_pump(t.c), 0);
    assert_int_equal(rp3.calls, 1);
    assert_int_equal(rp3.err, 0);
    assert_int_equal(rp3.res.type, SUBWAY_REQ_UNSUBSCRIBE);
    assert_int_equal(rp3.res.feed, 1);
    assert_null(subway_feed_topic(t.c, 1));
    assert_string_equal(subway_feed_topic(t.c, 2), "orders");

    /* An id never given out is refused by the library, nothing sent. */
    reply rp4 = {0};
    assert_int_equal(subway_unsubscribe(t.c, 9, reply_cb, &rp4), -1);
    assert_int_equal(rp4.calls, 1);
    assert_int_equal(rp4.err, SUBWAY_E_NOT_SUBSCRIBED);
    assert_string_equal(rp4.errstr, "feed 9 is not subscribed");
    assert_int_equal(rp4.res.feed, 9);
    assert_int_equal(subway_client_want_write(t.c), 0);
    fx_stop(&t);
    assert_int_equal(rp.calls + rp2.calls + rp3.calls + rp4.calls, 4);
}

/* Requests queued before WELCOME stay in the client until it arrives. */
static void test_requests_wait_for_welcome(void **state) {
    fx t;
    fx_options(&t);
    fx_connect(&t);
    reply rp = {0};
    assert_int_equal(subway_subscribe(t.c, "demo", NULL, 0, reply_cb, &rp), 1);
    assert_int_equal(subway_client_want_write(t.c), 0);
    assert_int_equal(subway_client_flush(t.c), 0);
    proto_frame f;
    assert_int_equal(peer_read_wait(&t.p, &f, 50), 0);
    assert_int_equal(subway_pending(t.c), 1);
    send_welcome(&t, 5000, PROTO_DEFAULT_MAX_FRAME);
    assert_int_equal(client_pump(t.c), 0);
    assert_int_equal(peer_read(&t.p, &f), 1);
    assert_int_equal(f.type, PROTO_SUBSCRIBE);
    /* Sent once the version is known, under a req_id of its own; the
     * reply still reports the one the application got. */
    assert_int_equal(f.req_id, 2);
    assert_int_equal(subway_pending(t.c), 1);
    proto_frame sd = { .type = PROTO_SUBSCRIBED, .req_id = 2, .feed = 5 };
    assert_int_equal(peer_send(&t.p, &sd), 0);
    assert_int_equal(client_pump(t.c), 0);
    assert_int_equal(rp.calls, 1);
    assert_int_equal(rp.err, 0);
    assert_int_equal(rp.res.req_id, 1);
    assert_int_equal(rp.res.feed, 1);
    assert_int_equal(subway_pending(t.c), 0);
    fx_stop(&t);
    assert_int_equal(rp.calls, 1);
}

/* Between UNSUBSCRIBE and its answer the feed's records are ignored. */
static void test_unsubscribe_ignores_records(void **state) {
    fx t;
    fx_options(&t);
    fx_start(&t);
    reply rp = {0}, ru = {0}, ru2 = {0};
    static const uint32_t parts[] = { 0 };
    subscribe_ok(&t, "demo", "k", 7, parts, 1, &rp);
    proto_frame m = { .type = PROTO_MESSAGE, .feed = 7, .value = { "v", 1 } };
    proto_frame d = { .type = PROTO_DROPPED, .feed = 7, .count = 2 };

    assert_int_equal(subway_unsubscribe(t.c, 1, reply_cb, &ru), 2);
    assert_int_equal(peer_send(&t.p, &m), 0);
    assert_int_equal(peer_send(&t.p, &d), 0);
    /* Refused: records count again. */
    proto_frame e = { .type = PROTO_ERROR, .req_id = 2, .code = PROTO_E_NOT_SUBSCRIBED,
                      .text = { "no", 2 } };
    assert_int_equal(peer_send(&t.p, &e), 0);
    assert_int_equal(peer_send(&t.p, &m), 0);
    while (ru.calls == 0 || t.r.message_calls == 0) assert_true(subway_poll(t.c, WAIT_MS) > 0);
    assert_int_equal(t.r.message_calls, 1);
    assert_int_equal(t.r.dropped_calls, 0);
    assert_int_equal(ru.err, PROTO_E_NOT_SUBSCRIBED);
    assert_int_equal(ru.res.feed, 1);
    assert_string_equal(subway_feed_topic(t.c, 1), "demo");

    /* Accepted: ignored until UNSUBSCRIBED, then the feed is gone. */
    assert_int_equal(subway_unsubscribe(t.c, 1, reply_cb, &ru2), 3);
    assert_int_equal(peer_send(&t.p, &m), 0);
    proto_frame u = { .type = PROTO_UNSUBSCRIBED, .req_id = 3, .feed = 7 };
    assert_int_equal(peer_send(&t.p, &u), 0);
    while (ru2.calls == 0) assert_true(subway_poll(t.c, WAIT_MS) > 0);
    assert_int_equal(t.r.message_calls, 1);
    assert_int_equal(ru2.res.feed, 1);
    assert_null(subway_feed_topic(t.c, 1));
    fx_stop(&t);
}

static void test_message(void **state) {
    fx t;
    fx_options(&t);
    fx_start(&t);
    reply rp = {0};
    static const uint32_t parts[] = { 0, 2 };
    subscribe_ok(&t, "demo", "user-3", 7, parts, 2, &rp);

    proto_header hs[] = { { { "trace", 5 }, { "abc", 3 } }, { { "empty", 5 }, { NULL, 0 } } };
    proto_frame m = { .type = PROTO_MESSAGE, .feed = 7, .partition = 2, .offset = 42,
                      .timestamp_ms = 1700000000123, .key = { "user-3", 6 },
                      .value = { "hello", 5 }, .headers = hs, .header_cnt = 2 };
    assert_int_equal(peer_send(&t.p, &m), 0);
    assert_int_equal(subway_poll(t.c, WAIT_MS), 1);
    assert_int_equal(t.r.message_calls, 1);
    assert_int_equal(t.r.msg_feed, 1);
    assert_string_equal(t.r.msg_topic, "demo");
    assert_int_equal(t.r.msg_partition, 2);
    assert_int_equal(t.r.msg_offset, 42);
    assert_true(t.r.msg_ts == 1700000000123);
    assert_string_equal(t.r.msg_key, "user-3");
    assert_string_equal(t.r.msg_value, "hello");
    assert_string_equal(t.r.msg_headers, "trace=abc,empty");

    /* nil key and value, no headers, no timestamp, a feed we do not know. */
    proto_frame m2 = { .type = PROTO_MESSAGE, .feed = 99, .partition = 0, .offset = 0,
                       .timestamp_ms = -1 };
    assert_int_equal(peer_send(&t.p, &m2), 0);
    assert_int_equal(subway_poll(t.c, WAIT_MS), 1);
    assert_int_equal(t.r.message_calls, 2);
    assert_int_equal(t.r.msg_feed, 0);
    assert_string_equal(t.r.msg_topic, "(null)");
    assert_string_equal(t.r.msg_key, "(nil)");
    assert_string_equal(t.r.msg_value, "(nil)");
    assert_string_equal(t.r.msg_headers, "");
    assert_true(t.r.msg_ts == -1);

    /* DROPPED goes to on_dropped. */
    proto_frame d = { .type = PROTO_DROPPED, .feed = 7, .count = 12 };
    assert_int_equal(peer_send(&t.p, &d), 0);
    assert_int_equal(subway_poll(t.c, WAIT_MS), 1);
    assert_int_equal(t.r.dropped_calls, 1);
    assert_int_equal(t.r.dropped_feed, 1);
    assert_int_equal(t.r.dropped_count, 12);
    /* ... with feed 0 for a handle no subscription has. */
    d.feed = 99;
    assert_int_equal(peer_send(&t.p, &d), 0);
    assert_int_equal(subway_poll(t.c, WAIT_MS), 1);
    assert_int_equal(t.r.dropped_calls, 2);
    assert_int_equal(t.r.dropped_feed, 0);
    fx_stop(&t);
}

/* Frames split across reads, many in one read, and one large enough to grow the buffer. */
static void test_framing(void **state) {
    fx t;
    fx_options(&t);
    fx_start(&t);

    proto_frame m = { .type = PROTO_MESSAGE, .feed = 1, .offset = 5, .key = { "k", 1 },
                      .value = { "split", 5 } };
    proto_buf b;
    proto_buf_init(&b);
    assert_int_equal(proto_encode(&b, &m), 0);
    assert_int_equal(peer_send_raw(&t.p, b.data, 3), 0);     /* inside the length prefix */
    assert_int_equal(subway_poll(t.c, 100), 0);
    assert_int_equal(peer_send_raw(&t.p, b.data + 3, 5), 0); /* inside the body */
    assert_int_equal(subway_poll(t.c, 100), 0);
    assert_int_equal(t.r.message_calls, 0);
    assert_int_equal(peer_send_raw(&t.p, b.data + 8, b.len - 8), 0);
    assert_int_equal(subway_poll(t.c, WAIT_MS), 1);
    assert_int_equal(t.r.message_calls, 1);
    assert_string_equal(t.r.msg_value, "split");

    /* 50 frames in one write. */
    proto_buf_reset(&b);
    for (int i = 0; i < 50; i++) {
        m.offset = (uint64_t)i;
        assert_int_equal(proto_encode(&b, &m), 0);
    }
    assert_int_equal(peer_send_raw(&t.p, b.data, b.len), 0);
    int frames = 0;
    while (frames < 50) {
        int n = subway_poll(t.c, WAIT_MS);
        assert_true(n > 0);
        frames += n;
    }
    assert_int_equal(t.r.message_calls, 51);
    assert_int_equal(t.r.msg_offset, 49);

    /* A 600 KB value (below the 1 MiB default max_frame). */
    size_t big = 600 * 1024;
    char *v = malloc(big);
    assert_non_null(v);
    memset(v, 'v', big);
    m.value = (proto_bytes){ v, big };
    assert_int_equal(peer_send(&t.p, &m), 0);
    while (t.r.message_calls < 52) assert_true(subway_poll(t.c, WAIT_MS) >= 0);
    assert_int_equal(t.r.msg_value_len, big);
    free(v);
    proto_buf_free(&b);
    assert_int_equal(subway_err(t.c), 0);
    fx_stop(&t);
}

static void test_publish(void **state) {
    fx t;
    fx_options(&t);
    fx_start(&t);
    reply rp = {0}, rp2 = {0};
    assert_int_equal(subway_publish(t.c, "demo", "user-3", 6, "v1", 2, reply_cb, &rp), 1);
    assert_int_equal(subway_publish(t.c, "demo", NULL, 0, NULL, 0, reply_cb, &rp2), 2);
    assert_int_equal(subway_pending(t.c), 2);
    client_flush_all(t.c);
    proto_frame f;
    assert_int_equal(peer_read(&t.p, &f), 1);
    assert_int_equal(f.type, PROTO_PUBLISH);
    assert_int_equal(f.req_id, 1);
    assert_memory_equal(f.topic.ptr, "demo", 4);
    assert_int_equal(f.key.len, 6);
    assert_memory_equal(f.key.ptr, "user-3", 6);
    assert_int_equal(f.value.len, 2);
    assert_memory_equal(f.value.ptr, "v1", 2);
    assert_int_equal(peer_read(&t.p, &f), 1);
    assert_int_equal(f.req_id, 2);
    assert_null(f.key.ptr);
    assert_null(f.value.ptr);

    /* Acks out of order are matched by req_id. */
    proto_frame a = { .type = PROTO_PUBACK, .req_id = 2, .partition = 1, .offset = 77 };
    assert_int_equal(peer_send(&t.p, &a), 0);
    a = (proto_frame){ .type = PROTO_PUBACK, .req_id = 1, .partition = 3, .offset = 1234567890123 };
    assert_int_equal(peer_send(&t.p, &a), 0);
    while (rp.calls == 0 || rp2.calls == 0) assert_true(subway_poll(t.c, WAIT_MS) > 0);
    assert_int_equal(rp.calls, 1);
    assert_int_equal(rp.err, 0);
    assert_int_equal(rp.res.type, SUBWAY_REQ_PUBLISH);
    assert_int_equal(rp.res.req_id, 1);
    assert_int_equal(rp.res.partition, 3);
    assert_true(rp.res.offset == 1234567890123);
    assert_int_equal(rp2.calls, 1);
    assert_int_equal(rp2.res.partition, 1);
    assert_int_equal(rp2.res.offset, 77);
    assert_int_equal(subway_pending(t.c), 0);
    fx_stop(&t);
    assert_int_equal(rp.calls, 1);
    assert_int_equal(rp2.calls, 1);
}

static void test_error_routed_to_request(void **state) {
    fx t;
    fx_options(&t);
    fx_start(&t);
    reply rp = {0}, rp2 = {0};
    assert_int_equal(subway_subscribe(t.c, "x", "k", 1, reply_cb, &rp), 1);
    assert_int_equal(subway_publish(t.c, "demo", "k", 1, "v", 1, reply_cb, &rp2), 2);
    proto_frame e = { .type = PROTO_ERROR, .req_id = 1, .code = PROTO_E_UNKNOWN_TOPIC,
                      .text = { "topic 'x' does not exist", 24 } };
    assert_int_equal(peer_send(&t.p, &e), 0);
    assert_int_equal(subway_poll(t.c, WAIT_MS), 1);
    assert_int_equal(rp.calls, 1);
    assert_int_equal(rp.err, PROTO_E_UNKNOWN_TOPIC);
    assert_string_equal(rp.errstr, "topic 'x' does not exist");
    assert_int_equal(rp.res.req_id, 1);
    assert_int_equal(rp.res.type, SUBWAY_REQ_SUBSCRIBE);
    assert_int_equal(rp2.calls, 0);
    assert_int_equal(t.r.error_calls, 0);
    /* A refusal does not hurt the connection. */
    assert_int_equal(subway_err(t.c), 0);
    assert_int_equal(subway_pending(t.c), 1);
    assert_string_equal(subway_err_name(rp.err), "UNKNOWN_TOPIC");

    /* An ERROR naming no pending request goes to on_error. */
    e = (proto_frame){ .type = PROTO_ERROR, .req_id = 55, .code = PROTO_E_INTERNAL,
                       .text = { "lost", 4 } };
    assert_int_equal(peer_send(&t.p, &e), 0);
    assert_int_equal(subway_poll(t.c, WAIT_MS), 1);
    assert_int_equal(t.r.error_calls, 1);
    assert_int_equal(t.r.error_req_id, 55);
    assert_int_equal(t.r.error_code, PROTO_E_INTERNAL);
    assert_string_equal(t.r.error_text, "lost");
    assert_int_equal(subway_err(t.c), 0);

    /* A connection-level ERROR, then the node closes: the close names it. */
    e = (proto_frame){ .type = PROTO_ERROR, .req_id = 0, .code = PROTO_E_SLOW_CONSUMER,
                       .text = { "output over 64 MiB", 18 } };
    assert_int_equal(peer_send(&t.p, &e), 0);
    peer_close(&t.p);
    int n;
    while ((n = subway_poll(t.c, WAIT_MS)) > 0) continue;
    assert_int_equal(n, -1);
    assert_int_equal(t.r.error_calls, 2);
    assert_int_equal(t.r.error_req_id, 0);
    assert_int_equal(t.r.error_code, PROTO_E_SLOW_CONSUMER);
    assert_int_equal(subway_err(t.c), PROTO_E_SLOW_CONSUMER);
    assert_string_equal(subway_errstr(t.c), "closed by node: SLOW_CONSUMER: output over 64 MiB");
    assert_int_equal(rp2.calls, 1);
    assert_int_equal(rp2.err, SUBWAY_E_CLOSED);
    assert_string_equal(rp2.errstr, "closed by node: SLOW_CONSUMER: output over 64 MiB");
    assert_int_equal(t.r.close_calls, 1);
    fx_stop(&t);
    assert_int_equal(rp.calls, 1);
    assert_int_equal(rp2.calls, 1);
    assert_int_equal(t.r.close_calls, 1);
}

static void test_close_fails_pending(void **state) {
    fx t;
    fx_options(&t);
    fx_start(&t);
    reply r0 = {0}, rs = {0}, rp = {0}, ru = {0};
    subscribe_ok(&t, "held", "k", 9, NULL, 0, &r0);
    assert_int_equal(subway_subscribe(t.c, "demo", NULL, 0, reply_cb, &rs), 2);
    assert_int_equal(subway_publish(t.c, "demo", "k", 1, "v", 1, reply_cb, &rp), 3);
    assert_int_equal(subway_unsubscribe(t.c, 1, reply_cb, &ru), 4);
    client_flush_all(t.c);
    peer_close(&t.p);
    assert_int_equal(client_pump(t.c), -1);
    assert_int_equal(subway_err(t.c), SUBWAY_E_EOF);
    assert_string_equal(subway_errstr(t.c), "connection closed by node");
    reply *all[] = { &rs, &rp, &ru };
    for (int i = 0; i < 3; i++) {
        assert_int_equal(all[i]->calls, 1);
        assert_int_equal(all[i]->err, SUBWAY_E_CLOSED);
        assert_string_equal(all[i]->errstr, "connection closed by node");
        assert_int_equal(all[i]->res.req_id, (uint64_t)i + 2);
    }
    assert_int_equal(ru.res.feed, 1);
    assert_int_equal(r0.calls, 1);
    assert_int_equal(rs.res.type, SUBWAY_REQ_SUBSCRIBE);
    assert_int_equal(rp.res.type, SUBWAY_REQ_PUBLISH);
    assert_int_equal(ru.res.type, SUBWAY_REQ_UNSUBSCRIBE);
    assert_int_equal(t.r.close_calls, 1);
    assert_int_equal(t.r.close_err, SUBWAY_E_EOF);
    assert_string_equal(t.r.close_errstr, "connection closed by node");
    assert_int_equal(subway_pending(t.c), 0);

    /* The failure is sticky; later calls fail at once, callbacks still exactly once. */
    assert_int_equal(subway_client_process_readable(t.c), -1);
    assert_int_equal(subway_poll(t.c, 0), -1);
    assert_int_equal(subway_client_flush(t.c), -1);
    assert_int_equal(subway_client_want_write(t.c), 0);
    assert_true(subway_client_fd(t.c) >= 0);      /* kept until free */
    reply late = {0};
    assert_int_equal(subway_publish(t.c, "demo", NULL, 0, "v", 1, reply_cb, &late), -1);
    assert_int_equal(late.calls, 1);
    assert_int_equal(late.err, SUBWAY_E_CLOSED);
    assert_string_equal(late.errstr, "connection closed by node");
    assert_int_equal(subway_err(t.c), SUBWAY_E_EOF);
    fx_stop(&t);
    for (int i = 0; i < 3; i++) assert_int_equal(all[i]->calls, 1);
    assert_int_equal(t.r.close_calls, 1);
}

static void test_free_fails_pending(void **state) {
    fx t;
    fx_options(&t);
    fx_start(&t);
    reply rs = {0}, rp = {0};
    assert_int_equal(subway_subscribe(t.c, "demo", "k", 1, reply_cb, &rs), 1);
    assert_int_equal(subway_publish(t.c, "demo", "k", 1, "v", 1, reply_cb, &rp), 2);
    fx_stop(&t);
    assert_int_equal(rs.calls, 1);
    assert_int_equal(rs.err, SUBWAY_E_CLOSED);
    assert_string_equal(rs.errstr, "client freed");
    assert_int_equal(rp.calls, 1);
    assert_int_equal(rp.err, SUBWAY_E_CLOSED);
    assert_int_equal(t.r.close_calls, 1);
    assert_int_equal(t.r.close_err, SUBWAY_E_CLOSED);
    assert_string_equal(t.r.close_errstr, "client freed");
    subway_client_free(NULL);
}

/* Freeing the client from its own callbacks is deferred until the library returns. */
static void test_free_in_callback(void **state) {
    fx t;
    fx_options(&t);
    fx_start(&t);
    reply rs = {0}, rp = {0};
    rs.free_client = true;
    rs.cp = &t.c;
    assert_int_equal(subway_subscribe(t.c, "demo", "k", 1, reply_cb, &rs), 1);
    assert_int_equal(subway_publish(t.c, "demo", "k", 1, "v", 1, reply_cb, &rp), 2);
    static const uint32_t parts[] = { 0 };
    proto_frame s = { .type = PROTO_SUBSCRIBED, .req_id = 1, .feed = 1, .partitions = parts,
                      .partition_cnt = 1 };
    proto_frame m = { .type = PROTO_MESSAGE, .feed = 1, .value = { "late", 4 } };
    assert_int_equal(peer_send(&t.p, &s), 0);
    assert_int_equal(peer_send(&t.p, &m), 0);
    subway_client *c = t.c;
    struct pollfd pf = { .fd = subway_client_fd(c), .events = POLLIN };
    assert_int_equal(poll(&pf, 1, WAIT_MS), 1);
    usleep(20000);                   /* let both frames arrive together */
    assert_int_equal(subway_client_process_readable(c), -1);    /* c is gone now */
    assert_null(t.c);
    assert_int_equal(rs.calls, 1);
    assert_int_equal(rs.err, 0);
    assert_int_equal(rp.calls, 1);
    assert_int_equal(rp.err, SUBWAY_E_CLOSED);
    assert_string_equal(rp.errstr, "client freed");
    assert_int_equal(t.r.message_calls, 0);   /* nothing dispatched after the free */
    assert_int_equal(t.r.close_calls, 1);
    fx_stop(&t);

    /* The same from on_message, through subway_poll(). */
    fx_options(&t);
    t.r.free_on_message = true;
    fx_start(&t);
    assert_int_equal(peer_send(&t.p, &m), 0);
    assert_int_equal(subway_poll(t.c, WAIT_MS), -1);
    assert_null(t.c);
    assert_int_equal(t.r.message_calls, 1);
    assert_int_equal(t.r.close_calls, 1);
    fx_stop(&t);
}

static void test_request_from_callback(void **state) {
    fx t;
    fx_options(&t);
    t.r.publish_on_message = true;
    fx_start(&t);
    proto_frame m = { .type = PROTO_MESSAGE, .feed = 1, .value = { "v", 1 } };
    assert_int_equal(peer_send(&t.p, &m), 0);
    assert_int_equal(subway_poll(t.c, WAIT_MS), 1);
    /* process_readable flushes what callbacks queued. */
    proto_frame f;
    assert_int_equal(peer_read(&t.p, &f), 1);
    assert_int_equal(f.type, PROTO_PUBLISH);
    assert_int_equal(f.req_id, 1);
    assert_memory_equal(f.topic.ptr, "echo", 4);
    fx_stop(&t);
}

static void test_frame_too_large(void **state) {
    fx t;
    fx_options(&t);
    t.opt.max_frame = 1024;
    fx_start(&t);
    reply rp = {0};
    assert_int_equal(subway_publish(t.c, "demo", NULL, 0, "v", 1, reply_cb, &rp), 1);
    /* Only the length prefix: the client must not wait for the body. */
    static const unsigned char hdr[4] = { 0, 0, 0x07, 0xd0 };   /* 2000 */
    assert_int_equal(peer_send_raw(&t.p, hdr, 4), 0);
    assert_int_equal(subway_poll(t.c, WAIT_MS), -1);
    assert_int_equal(subway_err(t.c), SUBWAY_E_PROTOCOL);
    assert_string_equal(subway_errstr(t.c),
                        "bad frame from node: frame of 2000 bytes exceeds the 1024-byte limit");
    assert_int_equal(rp.calls, 1);
    assert_int_equal(rp.err, SUBWAY_E_CLOSED);
    assert_string_equal(rp.errstr,
                        "bad frame from node: frame of 2000 bytes exceeds the 1024-byte limit");
    assert_int_equal(t.r.close_calls, 1);
    assert_int_equal(t.r.close_err, SUBWAY_E_PROTOCOL);
    fx_stop(&t);
}

/* A frame of exactly max_frame is fine. */
static void test_frame_at_limit(void **state) {
    fx t;
    fx_options(&t);
    t.opt.max_frame = 1024;
    fx_start(&t);
    proto_buf b;
    proto_buf_init(&b);
    char v[1024];
    memset(v, 'x', sizeof(v));
    size_t vlen = 1000;
    proto_frame m = { .type = PROTO_MESSAGE, .feed = 1, .value = { v, vlen } };
    assert_int_equal(proto_encode(&b, &m), 0);
    /* Pad the value until the body is exactly 1024 bytes. */
    vlen += 1024 - (b.len - PROTO_HEADER_SIZE);
    m.value.len = vlen;
    proto_buf_reset(&b);
    assert_int_equal(proto_encode(&b, &m), 0);
    assert_int_equal(b.len - PROTO_HEADER_SIZE, 1024);
    assert_int_equal(peer_send_raw(&t.p, b.data, b.len), 0);
    assert_int_equal(subway_poll(t.c, WAIT_MS), 1);
    assert_int_equal(t.r.msg_value_len, vlen);
    proto_buf_free(&b);
    fx_stop(&t);
}

static void test_bad_frames(void **state) {
    /* Each: bytes the node sends after WELCOME, the errstr expected. */
    static const struct {
        const char *bytes;
        size_t len;
        const char *errstr;
    } cases[] = {
        { "\0\0\0\0", 4, "bad frame from node: frame body is empty" },
        { "\0\0\0\1\xc1", 5, "bad frame from node: frame body is not valid msgpack" },
        { "\0\0\0\1\x01", 5, "bad frame from node: frame body is not an array" },
        { "\0\0\0\2\x91\x0a", 6, "bad frame from node: PING: expected 1 field, got 0" },
        { "\0\0\0\3\x92\x01\x01", 7, "bad frame from node: HELLO: expected 2 or 3 fields, got 1" },
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        fx t;
        fx_options(&t);
        fx_start(&t);
        assert_int_equal(peer_send_raw(&t.p, cases[i].bytes, cases[i].len), 0);
        assert_int_equal(subway_poll(t.c, WAIT_MS), -1);
        assert_int_equal(subway_err(t.c), SUBWAY_E_PROTOCOL);
        assert_string_equal(subway_errstr(t.c), cases[i].errstr);
        assert_int_equal(t.r.close_calls, 1);
        fx_stop(&t);
    }
}

static void test_unexpected_frames(void **state) {
    static const struct {
        proto_frame f;
        bool before_welcome;
        const char *errstr;
    } cases[] = {
        { { .type = PROTO_PUBACK, .req_id = 99 }, false,
          "protocol error: PUBACK for unknown req_id 99" },
        { { .type = PROTO_SUBSCRIBED, .req_id = 1 }, false,
          "protocol error: SUBSCRIBED for a mismatched req_id 1" },
        { { .type = PROTO_HELLO, .name = { "x", 1 } }, false, "protocol error: unexpected HELLO" },
        { { .type = PROTO_WELCOME, .version = 1, .name = { "n", 1 } }, false,
          "protocol error: unexpected WELCOME" },
        { { .type = PROTO_MESSAGE, .feed = 1 }, true,
          "protocol error: expected WELCOME, got MESSAGE" },
        { { .type = PROTO_WELCOME, .version = 4, .name = { "n", 1 } }, true,
          "protocol error: node speaks version 4, this library 1 to 3" },
        { { .type = PROTO_WELCOME, .version = 0, .name = { "n", 1 } }, true,
          "protocol error: node speaks version 0, this library 1 to 3" },
        { { .type = PROTO_AUTH, .auth = { "t", 1 } }, false, "protocol error: unexpected AUTH" },
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        fx t;
        fx_options(&t);
        if (cases[i].before_welcome) {
            fx_connect(&t);
        } else {
            fx_start(&t);
            /* req 1 is a PUBLISH, so a SUBSCRIBED for it is mismatched. */
            assert_int_equal(subway_publish(t.c, "t", NULL, 0, "v", 1, NULL, NULL), 1);
        }
        assert_int_equal(peer_send(&t.p, &cases[i].f), 0);
        assert_int_equal(subway_poll(t.c, WAIT_MS), -1);
        assert_int_equal(subway_err(t.c), SUBWAY_E_PROTOCOL);
        assert_string_equal(subway_errstr(t.c), cases[i].errstr);
        fx_stop(&t);
    }
}

/* A frame type newer than this library is skipped, not fatal. */
static void test_unknown_type_skipped(void **state) {
    fx t;
    fx_options(&t);
    fx_start(&t);
    static const char raw[] = "\0\0\0\3\x92\x63\x01";           /* [99, 1] */
    assert_int_equal(peer_send_raw(&t.p, raw, 7), 0);
    proto_frame ping = { .type = PROTO_PING, .token = 5 };
    assert_int_equal(peer_send(&t.p, &ping), 0);
    proto_frame f;
    while (1) {
        assert_true(subway_poll(t.c, WAIT_MS) >= 0);
        if (peer_read_wait(&t.p, &f, 10) == 1) break;
    }
    assert_int_equal(f.type, PROTO_PONG);
    assert_int_equal(f.token, 5);
    assert_int_equal(subway_err(t.c), 0);
    fx_stop(&t);
}

static void test_heartbeat_silence(void **state) {
    fx t;
    fx_options(&t);
    fx_connect(&t);
    reply rp = {0};
    send_welcome(&t, 50, PROTO_DEFAULT_MAX_FRAME);
    assert_int_equal(client_pump(t.c), 0);
    assert_int_equal(subway_subscribe(t.c, "demo", NULL, 0, reply_cb, &rp), 1);
    int64_t start = mono_ms();
    int n;
    while ((n = subway_poll(t.c, WAIT_MS)) == 0) continue;
    int64_t took = mono_ms() - start;
    assert_int_equal(n, -1);
    assert_true(took >= 140 && took < 1000);
    assert_int_equal(subway_err(t.c), SUBWAY_E_TIMEOUT);
    assert_string_equal(subway_errstr(t.c),
                        "heartbeat timeout: nothing received from node for 150 ms");
    assert_int_equal(rp.calls, 1);
    assert_int_equal(rp.err, SUBWAY_E_CLOSED);
    assert_string_equal(rp.errstr, "heartbeat timeout: nothing received from node for 150 ms");
    assert_int_equal(t.r.close_calls, 1);
    assert_int_equal(t.r.close_err, SUBWAY_E_TIMEOUT);
    assert_int_equal(subway_client_timeout_ms(t.c), -1);
    fx_stop(&t);
    assert_int_equal(rp.calls, 1);
}

/* PINGs keep a connection alive well past 3 heartbeats; the event API's tick sees it too. */
static void test_heartbeat_kept_alive(void **state) {
    fx t;
    fx_options(&t);
    fx_connect(&t);
    send_welcome(&t, 50, PROTO_DEFAULT_MAX_FRAME);
    assert_int_equal(client_pump(t.c), 0);
    int64_t start = mono_ms();
    uint64_t token = 1;
    while (mono_ms() - start < 400) {
        proto_frame ping = { .type = PROTO_PING, .token = token++ };
        assert_int_equal(peer_send(&t.p, &ping), 0);
        assert_int_equal(client_pump(t.c), 0);
        assert_int_equal(subway_client_tick(t.c), 0);
        proto_frame f;
        assert_int_equal(peer_read(&t.p, &f), 1);
        assert_int_equal(f.type, PROTO_PONG);
        assert_int_equal(f.token, token - 1);
        usleep(30000);
    }
    assert_int_equal(subway_err(t.c), 0);
    /* Then silence: the deadline passes and tick() fails the connection. */
    usleep((useconds_t)subway_client_timeout_ms(t.c) * 1000 + 5000);
    assert_int_equal(subway_client_tick(t.c), -1);
    assert_int_equal(subway_err(t.c), SUBWAY_E_TIMEOUT);
    assert_int_equal(t.r.close_calls, 1);
    fx_stop(&t);
}

static void test_goaway(void **state) {
    /* Nothing asked: GOAWAY alone ends the connection (the client hangs up
     * rather than wait for the node to). */
    fx t;
    fx_options(&t);
    fx_start(&t);
    proto_frame g = { .type = PROTO_GOAWAY, .text = { "draining", 8 } };
    assert_int_equal(peer_send(&t.p, &g), 0);
    assert_int_equal(subway_poll(t.c, WAIT_MS), -1);
    assert_int_equal(t.r.goaway_calls, 1);
    assert_string_equal(t.r.goaway_text, "draining");
    assert_int_equal(subway_err(t.c), SUBWAY_E_GOAWAY);
    assert_string_equal(subway_errstr(t.c), "node going away: draining");
    assert_int_equal(t.r.close_calls, 1);
    fx_stop(&t);

    /* A PUBLISH in flight: its answer comes after GOAWAY, and the client
     * hangs up once it has it. */
    fx_options(&t);
    fx_start(&t);
    reply rp = {0};
    assert_int_equal(subway_publish(t.c, "demo", "k", 1, "v", 1, reply_cb, &rp), 1);
    client_flush_all(t.c);
    assert_int_equal(peer_send(&t.p, &g), 0);
    assert_int_equal(subway_poll(t.c, WAIT_MS), 1);
    assert_int_equal(subway_err(t.c), 0);            /* waits for the answer */
    assert_int_equal(t.r.close_calls, 0);
    proto_frame a = { .type = PROTO_PUBACK, .req_id = 1, .partition = 0, .offset = 5 };
    assert_int_equal(peer_send(&t.p, &a), 0);
    assert_int_equal(subway_poll(t.c, WAIT_MS), -1);
    assert_int_equal(rp.calls, 1);
    assert_int_equal(rp.err, 0);
    assert_int_equal(subway_err(t.c), SUBWAY_E_GOAWAY);
    assert_int_equal(t.r.close_calls, 1);
    fx_stop(&t);
}

/* Hangs up with RST (SO_LINGER 0), as a node closing with unread input does. */
static void peer_reset(peer *p) {
    struct linger lg = { .l_onoff = 1, .l_linger = 0 };
    setsockopt(p->fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
    close(p->fd);
    p->fd = -1;
}

static void test_reset(void **state) {
    /* After GOAWAY a reset is the announced hang-up. */
    fx t;
    fx_options(&t);
    fx_start(&t);
    reply rp = {0};                /* a PUBLISH in flight keeps the client listening */
    assert_int_equal(subway_publish(t.c, "demo", "k", 1, "v", 1, reply_cb, &rp), 1);
    client_flush_all(t.c);
    proto_frame g = { .type = PROTO_GOAWAY, .text = { "draining", 8 } };
    assert_int_equal(peer_send(&t.p, &g), 0);
    assert_int_equal(subway_poll(t.c, WAIT_MS), 1);
    peer_reset(&t.p);
    assert_int_equal(subway_poll(t.c, WAIT_MS), -1);
    assert_int_equal(subway_err(t.c), SUBWAY_E_GOAWAY);
    assert_string_equal(subway_errstr(t.c), "node going away: draining");
    fx_stop(&t);

    /* Without it, a network failure. */
    fx_options(&t);
    fx_start(&t);
    peer_reset(&t.p);
    assert_int_equal(subway_poll(t.c, WAIT_MS), -1);
    assert_int_equal(subway_err(t.c), SUBWAY_E_IO);
    assert_string_equal(subway_errstr(t.c), "read: Connection reset by peer");
    assert_int_equal(t.r.close_calls, 1);
    fx_stop(&t);
}

static void test_request_refusals(void **state) {
    /* Not connected yet. */
    reply rp = {0};
    subway_client *c = subway_client_new(NULL);
    assert_non_null(c);
    assert_int_equal(subway_subscribe(c, "demo", NULL, 0, reply_cb, &rp), -1);
    assert_int_equal(rp.calls, 1);
    assert_int_equal(rp.err, SUBWAY_E_STATE);
    assert_string_equal(rp.errstr, "not connected");
    assert_int_equal(rp.res.type, SUBWAY_REQ_SUBSCRIBE);
    assert_int_equal(subway_err(c), 0);
    subway_client_free(c);
    assert_int_equal(rp.calls, 1);

    fx t;
    fx_options(&t);
    t.opt.max_output = 200;
    t.opt.max_pending = 2;
    fx_connect(&t);
    send_welcome(&t, 5000, 100);
    assert_int_equal(client_pump(t.c), 0);

    /* Bad topic. */
    memset(&rp, 0, sizeof(rp));
    assert_int_equal(subway_publish(t.c, "", NULL, 0, "v", 1, reply_cb, &rp), -1);
    assert_int_equal(rp.calls, 1);
    assert_int_equal(rp.err, SUBWAY_E_ARG);
    assert_string_equal(rp.errstr, "topic is NULL or empty");

    /* Above the node's max_frame (100 from WELCOME). */
    char v[300];
    memset(v, 'v', sizeof(v));
    memset(&rp, 0, sizeof(rp));
    assert_int_equal(subway_publish(t.c, "demo", NULL, 0, v, 120, reply_cb, &rp), -1);
    assert_int_equal(rp.calls, 1);
    assert_int_equal(rp.err, SUBWAY_E_ARG);
    assert_string_equal(rp.errstr, "PUBLISH frame of 131 bytes exceeds the node's max_frame 100");
    assert_int_equal(subway_client_want_write(t.c), 0);     /* nothing was queued */

    /* Pending bound: 2. */
    reply ok1 = {0}, ok2 = {0}, ok3 = {0};
    assert_int_equal(subway_publish(t.c, "demo", NULL, 0, v, 10, reply_cb, &ok1), 1);
    assert_int_equal(subway_publish(t.c, "demo", NULL, 0, v, 10, reply_cb, &ok2), 2);
    memset(&rp, 0, sizeof(rp));
    assert_int_equal(subway_publish(t.c, "demo", NULL, 0, v, 10, reply_cb, &rp), -1);
    assert_int_equal(rp.calls, 1);
    assert_int_equal(rp.err, SUBWAY_E_TOO_MANY_PENDING);
    assert_string_equal(rp.errstr, "2 requests already await replies (limit 2)");
    /* A reply frees a slot. */
    proto_frame a = { .type = PROTO_PUBACK, .req_id = 1 };
    assert_int_equal(peer_send(&t.p, &a), 0);
    assert_int_equal(client_pump(t.c), 0);
    assert_int_equal(ok1.calls, 1);
    assert_int_equal(subway_publish(t.c, "demo", NULL, 0, v, 10, reply_cb, &ok3), 3);
    assert_int_equal(subway_err(t.c), 0);
    fx_stop(&t);
    assert_int_equal(ok2.calls, 1);
    assert_int_equal(ok3.calls, 1);
    assert_int_equal(rp.calls, 1);
}

static void test_output_full(void **state) {
    fx t;
    fx_options(&t);
    t.opt.max_output = 200;
    fx_start(&t);
    char v[84];
    memset(v, 'v', sizeof(v));
    reply r1 = {0}, r2 = {0}, r3 = {0};
    /* Each frame is 99 bytes; nothing is flushed in between. */
    assert_int_equal(subway_publish(t.c, "demo", NULL, 0, v, 84, reply_cb, &r1), 1);
    assert_int_equal(subway_publish(t.c, "demo", NULL, 0, v, 84, reply_cb, &r2), 2);
    assert_int_equal(subway_publish(t.c, "demo", NULL, 0, v, 84, reply_cb, &r3), -1);
    assert_int_equal(r3.calls, 1);
    assert_int_equal(r3.err, SUBWAY_E_OUTPUT_FULL);
    assert_string_equal(r3.errstr, "output buffer full (198 bytes queued, limit 200)");
    assert_int_equal(subway_err(t.c), 0);
    assert_int_equal(subway_pending(t.c), 2);
    /* After a flush there is room again, and the req_id was not consumed. */
    client_flush_all(t.c);
    assert_int_equal(subway_publish(t.c, "demo", NULL, 0, v, 84, reply_cb, &r3), 3);
    fx_stop(&t);
    assert_int_equal(r1.calls, 1);
    assert_int_equal(r3.calls, 2);   /* once refused, once freed: two requests */
}

static void test_connect_errors(void **state) {
    /* Bad address. */
    subway_client *c = subway_connect("no-port-here", NULL);
    assert_non_null(c);
    assert_int_equal(subway_err(c), SUBWAY_E_ARG);
    assert_string_equal(subway_errstr(c), "bad address: 'no-port-here' has no port: want HOST:PORT");
    subway_client_free(c);
    /* The client parses with the node's parser: IPv6 needs brackets. */
    c = subway_connect("::1:7700", NULL);
    assert_non_null(c);
    assert_int_equal(subway_err(c), SUBWAY_E_ARG);
    assert_string_equal(subway_errstr(c), "bad address: '::1:7700': put an IPv6 address in brackets, [IPV6]:PORT");
    subway_client_free(c);
    c = subway_connect(NULL, NULL);
    assert_non_null(c);
    assert_string_equal(subway_errstr(c), "bad address: empty address: want HOST:PORT or [IPV6]:PORT");
    subway_client_free(c);

    /* Refused: a port that was just free. */
    peer p;
    peer_listen(&p);
    char addr[64];
    snprintf(addr, sizeof(addr), "%s", p.addr);
    peer_free(&p);
    rec r = {0};
    subway_options opt = { .cb = { .on_close = on_close, .cb_data = &r } };
    c = subway_connect(addr, &opt);
    assert_non_null(c);
    assert_int_equal(subway_err(c), SUBWAY_E_IO);
    char want[128];
    snprintf(want, sizeof(want), "connect %s: Connection refused", addr);
    assert_string_equal(subway_errstr(c), want);
    subway_client_free(c);
    assert_true(r.close_calls <= 1);

    /* Accepted but no WELCOME within timeout_ms. */
    peer_listen(&p);
    memset(&r, 0, sizeof(r));
    opt.timeout_ms = 100;
    int64_t start = mono_ms();
    c = subway_connect(p.addr, &opt);
    assert_true(mono_ms() - start >= 95);
    assert_int_equal(subway_err(c), SUBWAY_E_TIMEOUT);
    assert_string_equal(subway_errstr(c), "no WELCOME from node within 100 ms");
    assert_int_equal(r.close_calls, 1);
    subway_client_free(c);
    assert_int_equal(r.close_calls, 1);
    peer_free(&p);

    /* connect twice: refused, first connection untouched. */
    fx t;
    fx_options(&t);
    fx_start(&t);
    assert_int_equal(subway_client_connect(t.c, t.p.addr), -1);
    assert_int_equal(subway_err(t.c), 0);
    fx_stop(&t);
}

/* ------------------------------------------------ blocking API, node in a thread */

typedef struct script {
    peer p;
    int step_failed;                 /* the step number that went wrong, 0 if none */
    bool answer_subscribe;           /* false: leave SUBSCRIBE unanswered for a while */
} script;

/* Reads one frame of type want; returns it in *f or marks the step failed. */
static bool script_expect(script *s, proto_frame *f, proto_type want, int step) {
    if (peer_read(&s->p, f) != 1 || f->type != want) {
        s->step_failed = step;
        return false;
    }
    return true;
}

static void *node_thread(void *arg) {
    script *s = arg;
    proto_frame f;
    if (peer_accept(&s->p) < 0) {
        s->step_failed = 1;
        return NULL;
    }
    if (!script_expect(s, &f, PROTO_HELLO, 2)) return NULL;
    proto_frame w = { .type = PROTO_WELCOME, .version = PROTO_VERSION, .name = { "node-b", 6 },
                      .heartbeat_ms = 5000, .max_frame = 65536 };
    peer_send(&s->p, &w);

    if (!script_expect(s, &f, PROTO_SUBSCRIBE, 3)) return NULL;
    uint64_t sub_id = f.req_id;
    if (!s->answer_subscribe) {
        usleep(300000);              /* past the client's 100 ms timeout */
        /* Answer late, then a PING, to see the client survive it. */
    }
    static const uint32_t parts[] = { 0, 1, 2 };
    proto_frame sd = { .type = PROTO_SUBSCRIBED, .req_id = sub_id, .feed = 4,
                       .partitions = parts, .partition_cnt = 3 };
    /* A record and a PING first: the blocking call must dispatch them meanwhile. */
    proto_frame m = { .type = PROTO_MESSAGE, .feed = 4, .value = { "early", 5 } };
    proto_frame ping = { .type = PROTO_PING, .token = 9 };
    peer_send(&s->p, &m);
    peer_send(&s->p, &ping);
    peer_send(&s->p, &sd);
    if (!script_expect(s, &f, PROTO_PONG, 4)) return NULL;

    if (!script_expect(s, &f, PROTO_PUBLISH, 5)) return NULL;
    proto_frame a = { .type = PROTO_PUBACK, .req_id = f.req_id, .partition = 2, .offset = 900 };
    peer_send(&s->p, &a);

    if (!script_expect(s, &f, PROTO_PUBLISH, 6)) return NULL;
    proto_frame e = { .type = PROTO_ERROR, .req_id = f.req_id, .code = PROTO_E_UNKNOWN_TOPIC,
                      .text = { "topic 'nope' does not exist", 27 } };
    peer_send(&s->p, &e);

    if (!script_expect(s, &f, PROTO_UNSUBSCRIBE, 7)) return NULL;
    proto_frame u = { .type = PROTO_UNSUBSCRIBED, .req_id = f.req_id, .feed = f.feed };
    peer_send(&s->p, &u);

    /* Two records for subway_poll(), then hang up. */
    peer_send(&s->p, &m);
    peer_send(&s->p, &m);
    usleep(50000);
    peer_close(&s->p);
    return NULL;
}

static void test_blocking_api(void **state) {
    script s = { .answer_subscribe = true };
    peer_listen(&s.p);
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, node_thread, &s), 0);

    rec r = {0};
    subway_options opt = { .client_name = "sync",
                           .cb = { .on_message = on_message, .on_close = on_close,
                                   .cb_data = &r } };
    subway_client *c = subway_connect(s.p.addr, &opt);
    assert_non_null(c);
    assert_int_equal(subway_err(c), 0);
    assert_string_equal(subway_node_id(c), "node-b");
    assert_int_equal(subway_max_frame(c), 65536);

    uint64_t feed = 0;
    assert_int_equal(subway_subscribe_sync(c, "demo", "k", 1, &feed), 0);
    assert_int_equal(feed, 1);       /* the feed id; the node's handle is 4 */
    assert_int_equal(subway_request_err(c), 0);
    assert_int_equal(r.message_calls, 1);
    assert_string_equal(r.msg_value, "early");
    size_t n = 0;
    const uint32_t *parts = subway_feed_partitions(c, 1, &n);
    assert_int_equal(n, 3);
    assert_int_equal(parts[2], 2);

    uint32_t partition = 0;
    uint64_t offset = 0;
    assert_int_equal(subway_publish_sync(c, "demo", "k", 1, "v", 1, &partition, &offset), 0);
    assert_int_equal(partition, 2);
    assert_int_equal(offset, 900);

    assert_int_equal(subway_publish_sync(c, "nope", "k", 1, "v", 1, &partition, &offset), -1);
    assert_int_equal(subway_request_err(c), PROTO_E_UNKNOWN_TOPIC);
    assert_string_equal(subway_request_errstr(c), "topic 'nope' does not exist");
    assert_int_equal(subway_err(c), 0);

    assert_int_equal(subway_unsubscribe_sync(c, 1), 0);
    assert_null(subway_feed_topic(c, 1));

    int got = 0, rc;
    while ((rc = subway_poll(c, WAIT_MS)) > 0) got += rc;
    assert_int_equal(rc, -1);
    assert_int_equal(got, 2);
    assert_int_equal(r.message_calls, 3);
    assert_int_equal(subway_err(c), SUBWAY_E_EOF);
    assert_string_equal(subway_errstr(c), "connection closed by node");
    assert_int_equal(r.close_calls, 1);

    assert_int_equal(subway_publish_sync(c, "demo", "k", 1, "v", 1, NULL, NULL), -1);
    assert_int_equal(subway_request_err(c), SUBWAY_E_CLOSED);
    assert_string_equal(subway_request_errstr(c), "connection closed by node");

    subway_client_free(c);
    pthread_join(th, NULL);
    assert_int_equal(s.step_failed, 0);
    assert_int_equal(r.close_calls, 1);
    peer_free(&s.p);
}

/* A blocking request that times out: the late reply is applied, reported to nobody. */
static void test_blocking_timeout(void **state) {
    script s = { .answer_subscribe = false };
    peer_listen(&s.p);
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, node_thread, &s), 0);
    rec r = {0};
    subway_options opt = { .timeout_ms = 100,
                           .cb = { .on_message = on_message, .on_close = on_close,
                                   .cb_data = &r } };
    subway_client *c = subway_connect(s.p.addr, &opt);
    assert_int_equal(subway_err(c), 0);
    uint64_t feed = 0;
    assert_int_equal(subway_subscribe_sync(c, "demo", NULL, 0, &feed), -1);
    assert_int_equal(subway_request_err(c), SUBWAY_E_TIMEOUT);
    assert_string_equal(subway_request_errstr(c), "no reply within 100 ms");
    assert_int_equal(feed, 0);
    assert_int_equal(subway_pending(c), 1);
    /* The late SUBSCRIBED creates the feed; its record and PING are handled. */
    while (subway_feed_topic(c, 1) == NULL) assert_true(subway_poll(c, WAIT_MS) > 0);
    assert_int_equal(subway_pending(c), 0);
    assert_int_equal(r.message_calls, 1);
    subway_client_free(c);
    pthread_join(th, NULL);
    /* The script stops at step 5 because the client left before publishing. */
    assert_true(s.step_failed == 0 || s.step_failed == 5);
    peer_free(&s.p);
}

/* ------------------------------------------- protocol 2: starts, LIVE, reconnect */

/* "partition:offset,..." of a decoded frame's positions. */
static const char *frame_positions(const proto_frame *f, char *buf, size_t size) {
    buf[0] = '\0';
    for (size_t i = 0; i < f->position_cnt; i++) {
        size_t len = strlen(buf);
        snprintf(buf + len, size - len, "%s%u:%llu", i ? "," : "", (unsigned)f->positions[i].partition,
                 (unsigned long long)f->positions[i].offset);
    }
    return buf;
}

/* What subway_feed_positions() says of feed, as "partition:offset,...". */
static const char *feed_positions(subway_client *c, uint64_t feed, char *buf, size_t size) {
    size_t n = 99;
    const subway_position *ps = subway_feed_positions(c, feed, &n);
    assert_true(ps != NULL || n == 0);
    format_positions(buf, size, ps, n);
    return buf;
}

/* Runs the client until *counter reaches want; fails the test after WAIT_MS. */
static void poll_until(subway_client *c, const int *counter, int want) {
    int64_t end = mono_ms() + WAIT_MS;
    while (*counter < want) {
        assert_true(mono_ms() < end);
        assert_true(subway_poll(c, 10) >= 0);
    }
}

/* Reads the client's next frame while running the client, for frames a
 * timer of the client's sends. */
static void peer_read_pumping(fx *t, proto_frame *f) {
    int64_t end = mono_ms() + WAIT_MS;
    while (peer_read_wait(&t->p, f, 0) != 1) {
        assert_true(mono_ms() < end);
        assert_true(subway_poll(t->c, 10) >= 0);
    }
}

/* Sends a frame and runs the client until it has handled it. */
static void peer_send_handled(fx *t, const proto_frame *f) {
    assert_int_equal(peer_send(&t->p, f), 0);
    assert_true(subway_poll(t->c, WAIT_MS) > 0);
}

/* Reads a SUBSCRIBE and checks topic, key (NULL = nil) and start
 * (mode, arg, positions as "p:o,..."); returns its req_id. */
static uint64_t expect_subscribe(fx *t, const char *topic, const char *key, uint64_t mode,
                                 int64_t arg, const char *positions) {
    proto_frame f;
    char buf[128];
    assert_int_equal(peer_read(&t->p, &f), 1);
    assert_int_equal(f.type, PROTO_SUBSCRIBE);
    assert_int_equal(f.topic.len, strlen(topic));
    assert_memory_equal(f.topic.ptr, topic, f.topic.len);
    if (key) {
        assert_int_equal(f.key.len, strlen(key));
        assert_memory_equal(f.key.ptr, key, f.key.len);
    } else {
        assert_null(f.key.ptr);
    }
    assert_int_equal(f.start_mode, mode);
    if (mode != PROTO_START_POSITIONS) assert_true(f.start_arg == arg);
    assert_string_equal(frame_positions(&f, buf, sizeof(buf)), positions);
    return f.req_id;
}

static void send_subscribed(fx *t, uint64_t req_id, uint64_t handle, const uint32_t *parts,
                            size_t n) {
    proto_frame s = { .type = PROTO_SUBSCRIBED, .req_id = req_id, .feed = handle,
                      .partitions = parts, .partition_cnt = n };
    assert_int_equal(peer_send(&t->p, &s), 0);
}

static void send_record(fx *t, uint64_t handle, uint32_t partition, uint64_t offset) {
    proto_frame m = { .type = PROTO_MESSAGE, .feed = handle, .partition = partition,
                      .offset = offset, .value = { "v", 1 } };
    assert_int_equal(peer_send(&t->p, &m), 0);
}

static void send_live(fx *t, uint64_t handle, const proto_position *ps, size_t n) {
    proto_frame l = { .type = PROTO_LIVE, .feed = handle, .positions = ps, .position_cnt = n };
    assert_int_equal(peer_send(&t->p, &l), 0);
}

/* The client sends nothing more until it sends a PUBLISH, which is read. */
static void expect_publish_next(fx *t) {
    assert_true(subway_publish(t->c, "probe", NULL, 0, "x", 1, NULL, NULL) > 0);
    client_flush_all(t->c);
    proto_frame f;
    assert_int_equal(peer_read(&t->p, &f), 1);
    assert_int_equal(f.type, PROTO_PUBLISH);
}

/* Each start mode on the wire, as PROTOCOL.md 3.3 spells it. */
static void test_subscribe_start_encoding(void **state) {
    static const subway_position ps[] = { { 2, 98 }, { 0, 120 }, { 1, 0 } };
    static const struct {
        subway_start start;
        uint64_t mode;
        int64_t arg;
        const char *positions;
    } cases[] = {
        { { SUBWAY_START_LIVE, 0, NULL, 0 }, PROTO_START_NONE, 0, "" },
        { { SUBWAY_START_POSITIONS, 0, ps, 3 }, PROTO_START_POSITIONS, 0, "0:120,1:0,2:98" },
        { { SUBWAY_START_POSITIONS, 0, NULL, 0 }, PROTO_START_POSITIONS, 0, "" },
        { { SUBWAY_START_TIMESTAMP, 1700000000000, NULL, 0 }, PROTO_START_TIMESTAMP,
          1700000000000, "" },
        { { SUBWAY_START_TIMESTAMP, -1, NULL, 0 }, PROTO_START_TIMESTAMP, -1, "" },
        { { SUBWAY_START_LAST, 10, NULL, 0 }, PROTO_START_LAST, 10, "" },
        { { SUBWAY_START_BEGINNING, 0, NULL, 0 }, PROTO_START_BEGINNING, 0, "" },
        { { SUBWAY_START_OFFSET, 12345, NULL, 0 }, PROTO_START_OFFSET, 12345, "" },
        { { SUBWAY_START_OFFSET, INT64_MAX, NULL, 0 }, PROTO_START_OFFSET, INT64_MAX, "" },
    };
    fx t;
    fx_options(&t);
    fx_start(&t);
    reply rps[sizeof(cases) / sizeof(cases[0])];
    memset(rps, 0, sizeof(rps));
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        int64_t id = subway_subscribe_from(t.c, "demo", "k", 1, &cases[i].start, reply_cb, &rps[i]);
        assert_true(id > 0);
        assert_int_equal(rps[i].calls, 0);
        client_flush_all(t.c);
        uint64_t req = expect_subscribe(&t, "demo", "k", cases[i].mode, cases[i].arg,
                                        cases[i].positions);
        assert_int_equal(req, (uint64_t)id);
    }
    /* NULL is live too. */
    assert_true(subway_subscribe_from(t.c, "demo", NULL, 0, NULL, NULL, NULL) > 0);
    client_flush_all(t.c);
    expect_subscribe(&t, "demo", NULL, PROTO_START_NONE, 0, "");

    /* Malformed starts: refused by the library, nothing sent. */
    static const subway_position huge[] = { { 4, (uint64_t)INT64_MAX + 1 } };
    static const struct {
        subway_start start;
        const char *errstr;
    } bad[] = {
        { { (subway_start_mode)9, 0, NULL, 0 }, "start mode 9 is none of SUBWAY_START_*" },
        { { SUBWAY_START_LAST, -1, NULL, 0 }, "start LAST wants an argument >= 0, not -1" },
        { { SUBWAY_START_OFFSET, -2, NULL, 0 }, "start OFFSET wants an argument >= 0, not -2" },
        { { SUBWAY_START_POSITIONS, 0, NULL, 2 }, "start POSITIONS: positions is NULL" },
        { { SUBWAY_START_POSITIONS, 0, ps, 100001 },
          "start POSITIONS: 100001 positions exceed the 100000 limit" },
        { { SUBWAY_START_POSITIONS, 0, huge, 1 },
          "start POSITIONS: offset of partition 4 is above INT64_MAX" },
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        reply rp = {0};
        assert_int_equal(subway_subscribe_from(t.c, "demo", "k", 1, &bad[i].start, reply_cb, &rp),
                         -1);
        assert_int_equal(rp.calls, 1);
        assert_int_equal(rp.err, SUBWAY_E_ARG);
        assert_string_equal(rp.errstr, bad[i].errstr);
        assert_int_equal(rp.res.type, SUBWAY_REQ_SUBSCRIBE);
    }
    assert_int_equal(subway_pending(t.c), sizeof(cases) / sizeof(cases[0]) + 1);
    expect_publish_next(&t);
    fx_stop(&t);
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        assert_int_equal(rps[i].calls, 1);
        assert_int_equal(rps[i].err, SUBWAY_E_CLOSED);
    }
}

/* A version-1 node knows no start: the library refuses one rather than send it. */
static void test_version1_refuses_start(void **state) {
    fx t;
    fx_options(&t);
    fx_connect(&t);
    /* Before WELCOME the version is unknown: both wait. */
    reply r1 = {0}, r2 = {0}, r3 = {0}, r4 = {0};
    subway_start beg = { .mode = SUBWAY_START_BEGINNING };
    assert_int_equal(subway_subscribe_from(t.c, "hist", "k", 1, &beg, reply_cb, &r1), 1);
    assert_int_equal(subway_subscribe(t.c, "plain", "k", 1, reply_cb, &r2), 2);
    assert_int_equal(subway_pending(t.c), 2);
    send_welcome_version(&t, 1, 5000, PROTO_DEFAULT_MAX_FRAME);
    assert_int_equal(client_pump(t.c), 0);
    assert_int_equal(subway_protocol_version(t.c), 1);
    assert_int_equal(r1.calls, 1);
    assert_int_equal(r1.err, SUBWAY_E_UNSUPPORTED);
    assert_string_equal(r1.errstr, "the node speaks protocol version 1, which has no start positions");
    assert_int_equal(r1.res.req_id, 1);
    assert_int_equal(r2.calls, 0);
    assert_int_equal(subway_pending(t.c), 1);
    /* Only the plain one went out, without a start field. */
    uint64_t req = expect_subscribe(&t, "plain", "k", PROTO_START_NONE, 0, "");
    send_subscribed(&t, req, 3, NULL, 0);
    assert_int_equal(client_pump(t.c), 0);
    assert_int_equal(r2.calls, 1);
    assert_int_equal(r2.err, 0);

    /* After WELCOME: refused at once; an explicit LIVE start is no start. */
    subway_start last = { .mode = SUBWAY_START_LAST, .arg = 5 };
    assert_int_equal(subway_subscribe_from(t.c, "hist", NULL, 0, &last, reply_cb, &r3), -1);
    assert_int_equal(r3.calls, 1);
    assert_int_equal(r3.err, SUBWAY_E_UNSUPPORTED);
    subway_start live = { .mode = SUBWAY_START_LIVE };
    assert_true(subway_subscribe_from(t.c, "live", NULL, 0, &live, reply_cb, &r4) > 0);
    client_flush_all(t.c);
    expect_subscribe(&t, "live", NULL, PROTO_START_NONE, 0, "");
    /* The blocking variant says the same. */
    uint64_t feed = 77;
    assert_int_equal(subway_subscribe_from_sync(t.c, "hist", "k", 1, &beg, &feed), -1);
    assert_int_equal(subway_request_err(t.c), SUBWAY_E_UNSUPPORTED);
    assert_int_equal(feed, 77);
    expect_publish_next(&t);
    assert_int_equal(subway_err(t.c), 0);
    fx_stop(&t);
    assert_int_equal(r1.calls + r2.calls + r3.calls + r4.calls, 4);
}

/* Records move a partition's position past them; LIVE fills in the rest. */
static void test_live_and_positions(void **state) {
    fx t;
    fx_options(&t);
    fx_start(&t);
    char buf[128];
    reply rp = {0};
    static const uint32_t parts[] = { 0, 1, 2 };
    subscribe_ok(&t, "demo", NULL, 7, parts, 3, &rp);
    assert_string_equal(feed_positions(t.c, 1, buf, sizeof(buf)), "");

    send_record(&t, 7, 0, 10);
    send_record(&t, 7, 2, 3);
    poll_until(t.c, &t.r.message_calls, 2);
    assert_string_equal(feed_positions(t.c, 1, buf, sizeof(buf)), "0:11,2:4");
    assert_int_equal(t.r.live_calls, 0);

    static const proto_position lp[] = { { 2, 4 }, { 0, 11 }, { 1, 50 } };
    send_live(&t, 7, lp, 3);
    poll_until(t.c, &t.r.live_calls, 1);
    assert_int_equal(t.r.live_feed, 1);
    assert_string_equal(t.r.live_pos, "0:11,1:50,2:4");
    assert_string_equal(feed_positions(t.c, 1, buf, sizeof(buf)), "0:11,1:50,2:4");

    /* After LIVE records go on moving their partition. A LIVE for a
     * handle nobody has changes nothing. */
    send_live(&t, 99, lp, 1);
    send_record(&t, 7, 1, 50);
    send_record(&t, 7, 0, 11);
    poll_until(t.c, &t.r.message_calls, 4);
    assert_int_equal(t.r.live_calls, 1);
    assert_string_equal(feed_positions(t.c, 1, buf, sizeof(buf)), "0:12,1:51,2:4");
    assert_int_equal(t.r.msg_feed, 1);

    /* A POSITIONS start is where the feed stands until records come; LIVE,
     * which names every partition the feed reads, replaces it. */
    static const subway_position from[] = { { 9, 3 }, { 5, 77 } };
    subway_start st = { .mode = SUBWAY_START_POSITIONS, .positions = from, .position_cnt = 2 };
    reply rp2 = {0};
    assert_true(subway_subscribe_from(t.c, "other", "k", 1, &st, reply_cb, &rp2) > 0);
    client_flush_all(t.c);
    uint64_t req = expect_subscribe(&t, "other", "k", PROTO_START_POSITIONS, 0, "5:77,9:3");
    static const uint32_t p5[] = { 5 };
    send_subscribed(&t, req, 8, p5, 1);
    assert_int_equal(client_pump(t.c), 0);
    assert_int_equal(rp2.res.feed, 2);
    assert_string_equal(feed_positions(t.c, 2, buf, sizeof(buf)), "5:77,9:3");
    static const proto_position lp5[] = { { 5, 80 } };
    send_live(&t, 8, lp5, 1);
    poll_until(t.c, &t.r.live_calls, 2);
    assert_int_equal(t.r.live_feed, 2);
    assert_string_equal(t.r.live_pos, "5:80");
    assert_string_equal(feed_positions(t.c, 2, buf, sizeof(buf)), "5:80");
    assert_null(subway_feed_positions(t.c, 3, NULL));
    fx_stop(&t);
}

/* The node's side of a reconnect: waits until the client started its
 * next attempt, accepts it, checks HELLO, answers WELCOME (version) and
 * runs the client until it says it is done. */
static void peer_welcome_again(fx *t, uint64_t version) {
    /* Each loss is followed by one attempt, which may have started already. */
    poll_until(t->c, &t->r.rc_calls[SUBWAY_RECONNECT_ATTEMPT],
               t->r.rc_calls[SUBWAY_RECONNECT_LOST]);
    t->p.in_len = t->p.consumed = 0;
    assert_int_equal(peer_accept(&t->p), 0);
    client_flush_all(t->c);
    proto_frame f;
    assert_int_equal(peer_read(&t->p, &f), 1);
    assert_int_equal(f.type, PROTO_HELLO);
    assert_int_equal(f.version, PROTO_VERSION);
    send_welcome_version(t, version, 5000, PROTO_DEFAULT_MAX_FRAME);
    poll_until(t->c, &t->r.rc_calls[SUBWAY_RECONNECT_DONE],
               t->r.rc_calls[SUBWAY_RECONNECT_DONE] + 1);
    client_flush_all(t->c);
}

static void fx_reconnecting(fx *t) {
    fx_options(t);
    t->opt.reconnect = 1;
    t->opt.reconnect_base_ms = 1;
    t->opt.reconnect_max_ms = 8;
}

/* The node closes: the client reconnects, sends every subscription again
 * from where it stands, and maps the new handles to the same feed ids. */
static void test_reconnect_after_close(void **state) {
    fx t;
    fx_reconnecting(&t);
    fx_start(&t);
    char buf[128];
    reply ra = {0}, rb = {0}, rc = {0}, rpub = {0}, runs = {0};
    static const uint32_t p01[] = { 0, 1 };
    subscribe_ok(&t, "demo", "k", 7, p01, 2, &ra);                    /* feed 1 */
    static const proto_position lp[] = { { 0, 5 }, { 1, 9 } };
    send_live(&t, 7, lp, 2);
    send_record(&t, 7, 0, 5);
    poll_until(t.c, &t.r.message_calls, 1);
    assert_string_equal(feed_positions(t.c, 1, buf, sizeof(buf)), "0:6,1:9");

    subway_start beg = { .mode = SUBWAY_START_BEGINNING };             /* feed 2: nothing yet */
    assert_int_equal(subway_subscribe_from(t.c, "orders", NULL, 0, &beg, reply_cb, &rb), 2);
    client_flush_all(t.c);
    send_subscribed(&t, expect_subscribe(&t, "orders", NULL, PROTO_START_BEGINNING, 0, ""), 8,
                    p01, 2);
    assert_int_equal(client_pump(t.c), 0);
    assert_int_equal(rb.res.feed, 2);

    /* In flight when the connection goes: a SUBSCRIBE (survives), a PUBLISH
     * and an UNSUBSCRIBE (fail with LOST; the feed stays). */
    subway_start off = { .mode = SUBWAY_START_OFFSET, .arg = 40 };
    assert_int_equal(subway_subscribe_from(t.c, "late", NULL, 0, &off, reply_cb, &rc), 3);
    assert_int_equal(subway_publish(t.c, "demo", "k", 1, "v", 1, reply_cb, &rpub), 4);
    assert_int_equal(subway_unsubscribe(t.c, 1, reply_cb, &runs), 5);
    client_flush_all(t.c);
    peer_close(&t.p);

    poll_until(t.c, &t.r.rc_calls[SUBWAY_RECONNECT_LOST], 1);
    assert_int_equal(t.r.rc_lost_err, SUBWAY_E_EOF);
    assert_string_equal(t.r.rc_lost_errstr, "connection closed by node");
    assert_int_equal(t.r.rc_attempts[0], 1);
    assert_int_equal(t.r.rc_fd_at_lost, -1);
    assert_int_equal(rpub.calls, 1);
    assert_int_equal(rpub.err, SUBWAY_E_LOST);
    assert_string_equal(rpub.errstr, "connection closed by node");
    assert_int_equal(runs.calls, 1);
    assert_int_equal(runs.err, SUBWAY_E_LOST);
    assert_int_equal(runs.res.feed, 1);
    assert_int_equal(rc.calls, 0);
    assert_int_equal(subway_err(t.c), 0);
    assert_int_equal(t.r.close_calls, 0);
    assert_int_equal(subway_feed_handle(t.c, 1, NULL), -1);
    assert_string_equal(subway_feed_topic(t.c, 1), "demo");
    assert_string_equal(feed_positions(t.c, 1, buf, sizeof(buf)), "0:6,1:9");
    /* Until the new WELCOME, requests other than subscribes fail at once. */
    reply late = {0};
    assert_int_equal(subway_publish(t.c, "demo", NULL, 0, "v", 1, reply_cb, &late), -1);
    assert_int_equal(late.err, SUBWAY_E_LOST);
    assert_string_equal(late.errstr, "connection lost, reconnecting");

    peer_welcome_again(&t, 2);
    assert_int_equal(t.r.rc_done_feeds, 3);
    assert_int_equal(t.r.rc_done_resumed, 1);
    assert_int_equal(t.r.welcome_calls, 2);
    /* In id order: feed 1 from its positions, 2 and 3 from their own starts. */
    uint64_t qa = expect_subscribe(&t, "demo", "k", PROTO_START_POSITIONS, 0, "0:6,1:9");
    uint64_t qb = expect_subscribe(&t, "orders", NULL, PROTO_START_BEGINNING, 0, "");
    uint64_t qc = expect_subscribe(&t, "late", NULL, PROTO_START_OFFSET, 40, "");
    /* The new node hands out other handles: 1 is now 8, 2 is 7. */
    send_subscribed(&t, qa, 8, p01, 2);
    send_subscribed(&t, qb, 7, p01, 2);
    send_subscribed(&t, qc, 2, NULL, 0);
    poll_until(t.c, &rc.calls, 1);
    assert_int_equal(rc.err, 0);
    assert_int_equal(rc.res.req_id, 3);
    assert_int_equal(rc.res.feed, 3);
    uint64_t h = 0;
    assert_int_equal(subway_feed_handle(t.c, 1, &h), 0);
    assert_int_equal(h, 8);
    assert_int_equal(subway_feed_handle(t.c, 2, &h), 0);
    assert_int_equal(h, 7);
    send_record(&t, 7, 0, 0);
    poll_until(t.c, &t.r.message_calls, 2);
    assert_int_equal(t.r.msg_feed, 2);
    assert_string_equal(t.r.msg_topic, "orders");
    send_record(&t, 8, 1, 9);
    poll_until(t.c, &t.r.message_calls, 3);
    assert_int_equal(t.r.msg_feed, 1);
    assert_string_equal(feed_positions(t.c, 1, buf, sizeof(buf)), "0:6,1:10");
    assert_int_equal(ra.calls + rb.calls + rc.calls, 3);
    assert_int_equal(t.r.close_calls, 0);
    fx_stop(&t);
    assert_int_equal(t.r.close_calls, 1);
    assert_int_equal(t.r.close_err, SUBWAY_E_CLOSED);
}

/* GOAWAY then close: the same, and a feed that had records but no LIVE
 * starts over from its own start, skipping what it already delivered. */
static void test_reconnect_after_goaway(void **state) {
    fx t;
    fx_reconnecting(&t);
    fx_start(&t);
    char buf[128];
    static const uint32_t p0[] = { 0 };
    subway_start beg = { .mode = SUBWAY_START_BEGINNING };
    reply ra = {0};
    assert_int_equal(subway_subscribe_from(t.c, "hist", "k", 1, &beg, reply_cb, &ra), 1);
    client_flush_all(t.c);
    send_subscribed(&t, expect_subscribe(&t, "hist", "k", PROTO_START_BEGINNING, 0, ""), 4, p0, 1);
    for (uint64_t o = 0; o < 3; o++) send_record(&t, 4, 0, o);
    poll_until(t.c, &t.r.message_calls, 3);
    assert_string_equal(feed_positions(t.c, 1, buf, sizeof(buf)), "0:3");

    proto_frame g = { .type = PROTO_GOAWAY, .text = { "draining", 8 } };
    peer_send_handled(&t, &g);
    assert_int_equal(t.r.goaway_calls, 1);
    peer_close(&t.p);
    poll_until(t.c, &t.r.rc_calls[SUBWAY_RECONNECT_LOST], 1);
    assert_int_equal(t.r.rc_lost_err, SUBWAY_E_GOAWAY);
    assert_string_equal(t.r.rc_lost_errstr, "node going away: draining");

    peer_welcome_again(&t, 2);
    /* No LIVE came, so not every partition's position is known. */
    uint64_t q = expect_subscribe(&t, "hist", "k", PROTO_START_BEGINNING, 0, "");
    send_subscribed(&t, q, 9, p0, 1);
    for (uint64_t o = 0; o < 4; o++) send_record(&t, 9, 0, o);
    poll_until(t.c, &t.r.message_calls, 4);
    assert_int_equal(t.r.msg_offset, 3);
    assert_int_equal(t.r.msg_feed, 1);
    static const proto_position lp[] = { { 0, 4 } };
    send_live(&t, 9, lp, 1);
    poll_until(t.c, &t.r.live_calls, 1);
    /* Once live, a repeat would be delivered (the node says there is none). */
    send_record(&t, 9, 0, 4);
    poll_until(t.c, &t.r.message_calls, 5);
    assert_string_equal(feed_positions(t.c, 1, buf, sizeof(buf)), "0:5");

    /* Lost again: the attempts count from 1 again, and now it resumes from positions. */
    peer_close(&t.p);
    poll_until(t.c, &t.r.rc_calls[SUBWAY_RECONNECT_LOST], 2);
    assert_int_equal(t.r.rc_lost_err, SUBWAY_E_EOF);
    assert_int_equal(t.r.rc_attempts[1], 1);
    peer_welcome_again(&t, 2);
    q = expect_subscribe(&t, "hist", "k", PROTO_START_POSITIONS, 0, "0:5");
    send_subscribed(&t, q, 1, p0, 1);

    /* A version-1 node can only restart it live, and the library says so. */
    peer_close(&t.p);
    poll_until(t.c, &t.r.rc_calls[SUBWAY_RECONNECT_LOST], 3);
    peer_welcome_again(&t, 1);
    assert_int_equal(t.r.rc_done_resumed, 0);
    assert_int_equal(t.r.rc_done_feeds, 1);
    expect_subscribe(&t, "hist", "k", PROTO_START_NONE, 0, "");
    assert_int_equal(ra.calls, 1);
    assert_int_equal(t.r.lost_calls, 0);
    fx_stop(&t);
}

/* After a reconnect the node may refuse a subscription: for good (the
 * application is told) or for now (the library asks again later). One
 * unsubscribed while disconnected is not asked for at all. */
static void test_reconnect_refusals(void **state) {
    fx t;
    fx_reconnecting(&t);
    fx_start(&t);
    reply ra = {0}, rb = {0}, rc = {0}, ru = {0};
    subscribe_ok(&t, "a", "k", 1, NULL, 0, &ra);
    subscribe_ok(&t, "b", "k", 2, NULL, 0, &rb);
    subscribe_ok(&t, "c", "k", 3, NULL, 0, &rc);
    peer_close(&t.p);
    poll_until(t.c, &t.r.rc_calls[SUBWAY_RECONNECT_LOST], 1);
    assert_true(subway_unsubscribe(t.c, 3, reply_cb, &ru) > 0);
    assert_int_equal(ru.calls, 1);
    assert_int_equal(ru.err, 0);
    assert_int_equal(ru.res.feed, 3);
    assert_null(subway_feed_topic(t.c, 3));

    peer_welcome_again(&t, 2);
    assert_int_equal(t.r.rc_done_feeds, 2);
    uint64_t qa = expect_subscribe(&t, "a", "k", PROTO_START_NONE, 0, "");
    uint64_t qb = expect_subscribe(&t, "b", "k", PROTO_START_NONE, 0, "");
    proto_frame e = { .type = PROTO_ERROR, .req_id = qa, .code = PROTO_E_UNAVAILABLE,
                      .text = { "redis down", 10 } };
    peer_send_handled(&t, &e);
    e = (proto_frame){ .type = PROTO_ERROR, .req_id = qb, .code = PROTO_E_UNKNOWN_TOPIC,
                       .text = { "no topic b", 10 } };
    peer_send_handled(&t, &e);
    assert_int_equal(t.r.lost_calls, 1);
    assert_int_equal(t.r.lost_feed, 2);
    assert_int_equal(t.r.lost_err, SUBWAY_E_UNKNOWN_TOPIC);
    assert_string_equal(t.r.lost_errstr, "no topic b");
    assert_null(subway_feed_topic(t.c, 2));
    assert_string_equal(subway_feed_topic(t.c, 1), "a");

    /* UNAVAILABLE: asked again after a backoff delay, on the same connection. */
    proto_frame f;
    peer_read_pumping(&t, &f);
    assert_int_equal(f.type, PROTO_SUBSCRIBE);
    assert_memory_equal(f.topic.ptr, "a", 1);
    send_subscribed(&t, f.req_id, 6, NULL, 0);
    assert_int_equal(client_pump(t.c), 0);
    uint64_t h = 0;
    assert_int_equal(subway_feed_handle(t.c, 1, &h), 0);
    assert_int_equal(h, 6);
    assert_int_equal(t.r.lost_calls, 1);
    assert_int_equal(ra.calls + rb.calls + rc.calls + ru.calls, 4);
    assert_int_equal(subway_err(t.c), 0);
    fx_stop(&t);
}

/* Unsubscribed while its SUBSCRIBE is on the way again: forgotten at once;
 * the handle the node then gives is handed back, its records unseen. */
static void test_unsubscribe_while_resubscribing(void **state) {
    fx t;
    fx_reconnecting(&t);
    fx_start(&t);
    reply ra = {0}, rb = {0}, ru = {0};
    subscribe_ok(&t, "a", "k", 1, NULL, 0, &ra);
    subscribe_ok(&t, "b", "k", 2, NULL, 0, &rb);
    peer_close(&t.p);
    poll_until(t.c, &t.r.rc_calls[SUBWAY_RECONNECT_LOST], 1);
    peer_welcome_again(&t, 2);
    uint64_t qa = expect_subscribe(&t, "a", "k", PROTO_START_NONE, 0, "");
    uint64_t qb = expect_subscribe(&t, "b", "k", PROTO_START_NONE, 0, "");
    assert_true(subway_unsubscribe(t.c, 1, reply_cb, &ru) > 0);
    assert_int_equal(ru.calls, 1);
    assert_int_equal(ru.err, 0);
    assert_int_equal(ru.res.feed, 1);
    assert_null(subway_feed_topic(t.c, 1));
    assert_int_equal(subway_unsubscribe(t.c, 1, NULL, NULL), -1);   /* gone for the application */

    send_subscribed(&t, qa, 11, NULL, 0);
    send_record(&t, 11, 0, 1);
    send_subscribed(&t, qb, 12, NULL, 0);
    send_record(&t, 12, 0, 1);
    poll_until(t.c, &t.r.message_calls, 1);
    assert_int_equal(t.r.msg_feed, 2);           /* feed 1's record was not delivered */
    proto_frame f;
    assert_int_equal(peer_read(&t.p, &f), 1);
    assert_int_equal(f.type, PROTO_UNSUBSCRIBE);
    assert_int_equal(f.feed, 11);
    proto_frame u = { .type = PROTO_UNSUBSCRIBED, .req_id = f.req_id, .feed = 11 };
    peer_send_handled(&t, &u);
    send_record(&t, 12, 0, 2);
    poll_until(t.c, &t.r.message_calls, 2);
    assert_int_equal(t.r.msg_feed, 2);
    assert_int_equal(t.r.message_calls, 2);
    assert_int_equal(ru.calls, 1);
    assert_int_equal(subway_pending(t.c), 0);
    assert_int_equal(subway_err(t.c), 0);
    fx_stop(&t);
}

/* Backoff ceilings double from base up to max; the delay is uniform below. */
static void test_backoff_bounds(void **state) {
    static const int ceilings[] = { 100, 200, 400, 800, 1000, 1000 };
    for (unsigned a = 1; a <= 6; a++) {
        int ceil = ceilings[a - 1];
        assert_int_equal(client_backoff_ms(100, 1000, a, (uint64_t)ceil), ceil);
        assert_int_equal(client_backoff_ms(100, 1000, a, (uint64_t)ceil + 1), 0);
        uint64_t x = 88172645463325252ULL;
        for (int i = 0; i < 1000; i++) {
            x ^= x << 13, x ^= x >> 7, x ^= x << 17;
            int d = client_backoff_ms(100, 1000, a, x);
            assert_true(d >= 0 && d <= ceil);
        }
    }
    /* No overflow however many attempts. */
    assert_int_equal(client_backoff_ms(100, 1000, 100000, 1000), 1000);
    assert_int_equal(client_backoff_ms(INT32_MAX, INT32_MAX, 40, INT32_MAX), INT32_MAX);
}

/* Against a node that stays away: every attempt fails, each delay within
 * its attempt's ceiling and waited for, and they differ (jitter). */
static void test_backoff_jitter(void **state) {
    fx t;
    fx_options(&t);
    t.opt.reconnect = 1;
    t.opt.reconnect_base_ms = 2;
    t.opt.reconnect_max_ms = 16;
    fx_start(&t);
    peer_free(&t.p);                 /* the listener too: attempts are refused */
    t.p.lfd = t.p.fd = -1;
    t.p.dec = NULL;
    t.p.in = NULL;
    enum { N = 14 };
    poll_until(t.c, &t.r.rc_calls[SUBWAY_RECONNECT_LOST], N);
    bool differ = false;
    for (int k = 0; k < N; k++) {
        int ceil = 2 << k;
        if (ceil > 16 || ceil <= 0) ceil = 16;
        assert_int_equal(t.r.rc_attempts[k], (unsigned)k + 1);
        assert_true(t.r.rc_delays[k] >= 0 && t.r.rc_delays[k] <= ceil);
        if (k > 0) {
            assert_int_equal(t.r.rc_lost_err, SUBWAY_E_IO);
            assert_true(t.r.rc_lost_ms[k] - t.r.rc_lost_ms[k - 1] >= t.r.rc_delays[k - 1] - 1);
        }
        if (k > 3 && t.r.rc_delays[k] != t.r.rc_delays[3]) differ = true;
    }
    assert_true(differ);
    char want[128];
    snprintf(want, sizeof(want), "connect %s: Connection refused", t.p.addr);
    assert_string_equal(t.r.rc_lost_errstr, want);
    assert_int_equal(t.r.close_calls, 0);
    assert_int_equal(t.r.welcome_calls, 1);
    /* Closing while it waits is final, and on_close says so once. */
    subway_client_close(t.c);
    assert_int_equal(t.r.close_calls, 1);
    assert_int_equal(subway_err(t.c), SUBWAY_E_CLOSED);
    assert_int_equal(subway_poll(t.c, 0), -1);
    subway_client_free(t.c);
    assert_int_equal(t.r.close_calls, 1);
}

/* Without options.reconnect a loss stays final, as before: nothing is retried. */
static void test_no_reconnect_by_default(void **state) {
    fx t;
    fx_options(&t);
    fx_start(&t);
    reply ra = {0};
    subscribe_ok(&t, "a", "k", 1, NULL, 0, &ra);
    peer_close(&t.p);
    assert_int_equal(subway_poll(t.c, WAIT_MS), -1);
    assert_int_equal(subway_err(t.c), SUBWAY_E_EOF);
    assert_int_equal(t.r.close_calls, 1);
    assert_int_equal(t.r.rc_calls[SUBWAY_RECONNECT_LOST], 0);
    assert_int_equal(subway_client_timeout_ms(t.c), -1);
    assert_true(subway_client_fd(t.c) >= 0);      /* kept until free, as documented */
    fx_stop(&t);
}

static void test_err_names(void **state) {
    assert_string_equal(subway_err_name(0), "OK");
    assert_string_equal(subway_err_name(SUBWAY_E_TIMEOUT), "TIMEOUT");
    assert_string_equal(subway_err_name(SUBWAY_E_CLOSED), "CLOSED");
    assert_string_equal(subway_err_name(SUBWAY_E_LOST), "LOST");
    assert_string_equal(subway_err_name(SUBWAY_E_UNSUPPORTED), "UNSUPPORTED");
    assert_string_equal(subway_err_name(113), "UNKNOWN");
    assert_string_equal(subway_err_name(PROTO_E_SLOW_CONSUMER), "SLOW_CONSUMER");
    assert_string_equal(subway_err_name(99), "UNKNOWN");
    assert_string_equal(subway_err_name(-1), "UNKNOWN");
    /* The node's codes, as subway.h spells them for programs without proto.h. */
    assert_string_equal(subway_err_name(SUBWAY_E_UNKNOWN_TOPIC), "UNKNOWN_TOPIC");
    assert_string_equal(subway_err_name(SUBWAY_E_INTERNAL), "INTERNAL");
    assert_string_equal(subway_err_name(SUBWAY_E_UNAUTHORIZED), "UNAUTHORIZED");
    assert_string_equal(subway_err_name(SUBWAY_E_FORBIDDEN), "FORBIDDEN");
    assert_string_equal(subway_version(), SUBWAY_VERSION);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_handshake),
        cmocka_unit_test(test_welcome_versions),
        cmocka_unit_test(test_default_client_name),
        cmocka_unit_test(test_token),
        cmocka_unit_test(test_ping_pong),
        cmocka_unit_test(test_ping_before_welcome),
        cmocka_unit_test(test_subscribe),
        cmocka_unit_test(test_requests_wait_for_welcome),
        cmocka_unit_test(test_unsubscribe_ignores_records),
        cmocka_unit_test(test_message),
        cmocka_unit_test(test_framing),
        cmocka_unit_test(test_publish),
        cmocka_unit_test(test_error_routed_to_request),
        cmocka_unit_test(test_close_fails_pending),
        cmocka_unit_test(test_free_fails_pending),
        cmocka_unit_test(test_free_in_callback),
        cmocka_unit_test(test_request_from_callback),
        cmocka_unit_test(test_frame_too_large),
        cmocka_unit_test(test_frame_at_limit),
        cmocka_unit_test(test_bad_frames),
        cmocka_unit_test(test_unexpected_frames),
        cmocka_unit_test(test_unknown_type_skipped),
        cmocka_unit_test(test_heartbeat_silence),
        cmocka_unit_test(test_heartbeat_kept_alive),
        cmocka_unit_test(test_goaway),
        cmocka_unit_test(test_reset),
        cmocka_unit_test(test_request_refusals),
        cmocka_unit_test(test_output_full),
        cmocka_unit_test(test_connect_errors),
        cmocka_unit_test(test_blocking_api),
        cmocka_unit_test(test_blocking_timeout),
        cmocka_unit_test(test_subscribe_start_encoding),
        cmocka_unit_test(test_version1_refuses_start),
        cmocka_unit_test(test_live_and_positions),
        cmocka_unit_test(test_reconnect_after_close),
        cmocka_unit_test(test_reconnect_after_goaway),
        cmocka_unit_test(test_reconnect_refusals),
        cmocka_unit_test(test_unsubscribe_while_resubscribing),
        cmocka_unit_test(test_backoff_bounds),
        cmocka_unit_test(test_backoff_jitter),
        cmocka_unit_test(test_no_reconnect_by_default),
        cmocka_unit_test(test_err_names),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
