/* pool.c -- many subscriber sockets in one epoll set, speaking subway's protocol or Redis RESP. */
#include "tests/bench/bench.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include "proto/proto.h"

#define POOL_RBUF (2u << 20)      /* shared read buffer: carried partial frame + one read */
#define POOL_READ_MAX (256u << 10) /* bytes read per readiness event */
#define POOL_MAX_FRAME (1u << 20)
#define POOL_CONNECTING_MAX 256   /* connects in flight (the listen backlog is finite) */
#define POOL_EVENTS 512
#define POOL_MAX_PARTITION 65535  /* tracked partitions: a higher number is a bad frame */

enum pc_state {
    PC_IDLE,                      /* not connected yet */
    PC_CONNECTING,                /* connect() in progress */
    PC_HANDSHAKE,                 /* subway: HELLO sent, waiting for WELCOME */
    PC_CONNECTED,                 /* welcomed (subway) / connected (Redis) */
    PC_SUBSCRIBING,               /* SUBSCRIBE sent */
    PC_SUBSCRIBED,
    PC_DEAD,
};

typedef struct pconn {
    int fd;
    uint8_t state;
    uint8_t want_write;           /* EPOLLOUT armed */
    uint32_t feed;                /* subway feed handle */
    int port;                     /* 0: the pool's */
    uint64_t req_id;
    char *topic;                  /* or Redis channel */
    char *key;                    /* NULL: every key */
    size_t key_len;
    char *left;                   /* partial frame carried between reads */
    uint32_t left_len, left_cap;
    char *out;                    /* output the socket did not take yet */
    uint32_t out_len, out_cap;
    uint64_t msgs;                /* records received */
    uint64_t dropped;             /* records announced by DROPPED */
    uint64_t lat_sum, lat_n;      /* this connection's latency samples, for the spread */
    uint64_t start_mode;          /* SUBSCRIBE start (PROTOCOL.md 5.8); 0: none, live */
    int64_t start_arg;
    uint8_t live;                 /* LIVE received */
    pool_tracked *tr;             /* offsets checked (pool_track()), or NULL */
} pconn;

struct pool {
    pool_kind kind;
    int epfd;
    pconn *c;
    size_t n;
    size_t next_connect;          /* connections not started yet begin here */
    size_t connecting;
    int port;
    struct in_addr src;
    int has_src;
    char *rbuf;
    proto_decoder *dec;
    proto_buf enc;
    int lat_on;
    uint64_t win_from, win_to;    /* production stamps (wall ns) that count: [from, to) */
    uint64_t win_msgs;            /* records received stamped in the window */
    hist h;
    size_t nconnected, nsubscribed, nfailed, nlive;
    double sub_first, sub_last;
    char err[256];
};

/* --------------------------------------------------------------- set up */

pool *pool_new(pool_kind kind, size_t n) {
    pool *p = calloc(1, sizeof(*p));
    if (!p) return NULL;
    p->kind = kind;
    p->n = n;
    p->epfd = epoll_create1(EPOLL_CLOEXEC);
    p->c = calloc(n ? n : 1, sizeof(*p->c));
    p->rbuf = malloc(POOL_RBUF);
    p->dec = proto_decoder_new(POOL_MAX_FRAME);
    if (p->epfd < 0 || !p->c || !p->rbuf || !p->dec) {
        pool_free(p);
        return NULL;
    }
    for (size_t i = 0; i < n; i++) p->c[i].fd = -1;
    hist_reset(&p->h);
    return p;
}

void pool_close(pool *p) {
    if (!p) return;
    for (size_t i = 0; i < p->n; i++) {
        pconn *c = &p->c[i];
        if (c->fd >= 0) {
            struct linger lg = {1, 0};
            setsockopt(c->fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
            close(c->fd);
            c->fd = -1;
        }
        if (c->state != PC_DEAD) c->state = PC_DEAD;
    }
}

void pool_free(pool *p) {
    if (!p) return;
    pool_close(p);
    if (p->c)
        for (size_t i = 0; i < p->n; i++) {
            free(p->c[i].topic);
            free(p->c[i].key);
            free(p->c[i].left);
            free(p->c[i].out);
            if (p->c[i].tr) free(p->c[i].tr->parts);
            free(p->c[i].tr);
        }
    if (p->epfd >= 0) close(p->epfd);
    proto_decoder_free(p->dec);
    proto_buf_free(&p->enc);
    free(p->rbuf);
    free(p->c);
    free(p);
}

int pool_set_feed(pool *p, size_t i, const char *topic, const char *key) {
    pconn *c = &p->c[i];
    free(c->topic);
    free(c->key);
    c->topic = strdup(topic);
    c->key = key ? strdup(key) : NULL;
    c->key_len = key ? strlen(key) : 0;
    return c->topic && (!key || c->key) ? 0 : -1;
}

void pool_set_start(pool *p, size_t i, uint64_t mode, int64_t arg) {
    p->c[i].start_mode = mode;
    p->c[i].start_arg = arg;
}

int pool_track(pool *p, size_t i) {
    if (!p->c[i].tr) p->c[i].tr = calloc(1, sizeof(pool_tracked));
    return p->c[i].tr ? 0 : -1;
}

const pool_tracked *pool_tracked_get(const pool *p, size_t i) {
    return p->c[i].tr;
}

/* ------------------------------------------------------------- helpers */

static void conn_dead(pool *p, pconn *c, const char *why) {
    if (c->state == PC_DEAD) return;
    if (c->state == PC_CONNECTING && p->connecting > 0) p->connecting--;
    if (c->state >= PC_CONNECTED && p->nconnected > 0) p->nconnected--;
    if (c->state == PC_SUBSCRIBED && p->nsubscribed > 0) p->nsubscribed--;
    c->state = PC_DEAD;
    p->nfailed++;
    if (!p->err[0]) snprintf(p->err, sizeof(p->err), "connection %zu: %s", (size_t)(c - p->c), why);
    if (c->fd >= 0) {
        epoll_ctl(p->epfd, EPOLL_CTL_DEL, c->fd, NULL);
        close(c->fd);
        c->fd = -1;
    }
}

static void set_events(pool *p, pconn *c, int want_write) {
    struct epoll_event ev = {.events = EPOLLIN | (want_write ? EPOLLOUT : 0u), .data.u64 = (uint64_t)(c - p->c)};
    epoll_ctl(p->epfd, EPOLL_CTL_MOD, c->fd, &ev);
    c->want_write = (uint8_t)want_write;
}

/* Writes what is pending; arms EPOLLOUT for the rest. */
static void conn_flush(pool *p, pconn *c) {
    while (c->out_len > 0) {
        ssize_t w = send(c->fd, c->out, c->out_len, MSG_NOSIGNAL);
        if (w < 0) {
            if (errno == EINTR) continue;
            if (errno == EAGAIN || errno == EWOULDBLOCK) break;
            conn_dead(p, c, strerror(errno));
            return;
        }
        memmove(c->out, c->out + w, c->out_len - (size_t)w);
        c->out_len -= (uint32_t)w;
    }
    if ((c->out_len > 0) != c->want_write) set_events(p, c, c->out_len > 0);
}

static void conn_send(pool *p, pconn *c, const void *data, size_t len) {
    if (c->state == PC_DEAD) return;
    if (c->out_len + len > c->out_cap) {
        uint32_t cap = c->out_cap ? c->out_cap : 256;
        while (cap < c->out_len + len) cap *= 2;
        char *n = realloc(c->out, cap);
        if (!n) {
            conn_dead(p, c, "out of memory");
            return;
        }
        c->out = n;
        c->out_cap = cap;
    }
    memcpy(c->out + c->out_len, data, len);
    c->out_len += (uint32_t)len;
    conn_flush(p, c);
}

static void send_frame(pool *p, pconn *c, const proto_frame *f) {
    proto_buf_reset(&p->enc);
    if (proto_encode(&p->enc, f) < 0) {
        conn_dead(p, c, "cannot encode a frame");
        return;
    }
    conn_send(p, c, p->enc.data, p->enc.len);
}

/* ---------------------------------------------------------- connecting */

static void start_connects(pool *p) {
    while (p->next_connect < p->n && p->connecting < POOL_CONNECTING_MAX) {
        pconn *c = &p->c[p->next_connect++];
        int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        if (fd < 0) {
            c->state = PC_DEAD;
            p->nfailed++;
            if (!p->err[0]) snprintf(p->err, sizeof(p->err), "socket: %s", strerror(errno));
            continue;
        }
        int one = 1;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
        if (p->has_src) {
            setsockopt(fd, IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one, sizeof(one));
            struct sockaddr_in s = {.sin_family = AF_INET, .sin_addr = p->src};
            if (bind(fd, (struct sockaddr *)&s, sizeof(s)) < 0) {
                close(fd);
                c->state = PC_DEAD;
                p->nfailed++;
                if (!p->err[0]) snprintf(p->err, sizeof(p->err), "bind: %s", strerror(errno));
                continue;
            }
        }
        c->fd = fd;
        struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)(c->port ? c->port : p->port)),
                                .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
        struct epoll_event ev = {.events = EPOLLIN | EPOLLOUT, .data.u64 = (uint64_t)(c - p->c)};
        c->want_write = 1;
        c->state = PC_CONNECTING;
        p->connecting++;
        if (epoll_ctl(p->epfd, EPOLL_CTL_ADD, fd, &ev) < 0) {
            conn_dead(p, c, strerror(errno));
            continue;
        }
        if (connect(fd, (struct sockaddr *)&a, sizeof(a)) < 0 && errno != EINPROGRESS) conn_dead(p, c, strerror(errno));
    }
}

void pool_set_port(pool *p, size_t i, int port) {
    p->c[i].port = port;
}

int pool_connect(pool *p, int port, const char *src_ip) {
    p->port = port;
    p->has_src = 0;
    if (src_ip && inet_pton(AF_INET, src_ip, &p->src) == 1) p->has_src = 1;
    start_connects(p);
    return 0;
}

static void on_connected(pool *p, pconn *c) {
    int err = 0;
    socklen_t len = sizeof(err);
    p->connecting--;
    getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &len);
    if (err) {
        c->state = PC_IDLE;       /* not counted as connecting any more */
        conn_dead(p, c, strerror(err));
        return;
    }
    set_events(p, c, 0);
    if (p->kind == POOL_REDIS) {
        c->state = PC_CONNECTED;
        p->nconnected++;
    } else {
        c->state = PC_HANDSHAKE;
        proto_frame h = {.type = PROTO_HELLO, .version = PROTO_VERSION, .name = {"bench", 5}};
        send_frame(p, c, &h);
    }
    start_connects(p);
}

/* ------------------------------------------------------ subway frames */

static uint32_t be32(const uint8_t *b) {
    return (uint32_t)b[0] << 24 | (uint32_t)b[1] << 16 | (uint32_t)b[2] << 8 | b[3];
}

/* Reads one msgpack integer into *v; returns the next byte, or NULL when it is not one. */
static const uint8_t *mp_int(const uint8_t *q, const uint8_t *end, int64_t *v) {
    if (q >= end) return NULL;
    uint8_t b = *q++;
    if (b <= 0x7f || b >= 0xe0) {
        *v = b <= 0x7f ? (int64_t)b : (int64_t)(int8_t)b;   /* positive / negative fixint */
        return q;
    }
    size_t n;
    if (b == 0xcc || b == 0xd0) n = 1;
    else if (b == 0xcd || b == 0xd1) n = 2;
    else if (b == 0xce || b == 0xd2) n = 4;
    else if (b == 0xcf || b == 0xd3) n = 8;
    else return NULL;
    if (q + n > end) return NULL;
    uint64_t u = 0;
    for (size_t i = 0; i < n; i++) u = u << 8 | q[i];
    if (b >= 0xd0 && n < 8 && (u >> (8 * n - 1)) != 0) u |= ~0ull << (8 * n);   /* sign-extend */
    *v = (int64_t)u;
    return q + n;
}

/* Reads a bin/str/nil into *ptr, *len (ptr NULL for nil); returns the next byte or NULL. */
static const uint8_t *mp_bytes(const uint8_t *q, const uint8_t *end, const uint8_t **ptr, size_t *len) {
    if (q >= end) return NULL;
    uint8_t b = *q++;
    size_t n;
    if (b == 0xc0) {
        *ptr = NULL;
        *len = 0;
        return q;
    }
    if (b >= 0xa0 && b <= 0xbf) n = b & 0x1f;
    else if ((b == 0xc4 || b == 0xd9) && q + 1 <= end) n = *q++;
    else if ((b == 0xc5 || b == 0xda) && q + 2 <= end) {
        n = (size_t)q[0] << 8 | q[1];
        q += 2;
    } else if ((b == 0xc6 || b == 0xdb) && q + 4 <= end) {
        n = be32(q);
        q += 4;
    } else
        return NULL;
    if (q + n > end) return NULL;
    *ptr = q;
    *len = n;
    return q + n;
}

static void record_latency(pool *p, pconn *c, const uint8_t *value, size_t len, uint64_t now) {
    uint64_t ts;
    if (!p->lat_on || !value || len < 8) return;
    memcpy(&ts, value, 8);
    /* Produced before the window (a backlog of the warm-up) or after it:
     * neither its latency nor its count belongs to the measurement. */
    if (ts < p->win_from || ts >= p->win_to) return;
    p->win_msgs++;
    if (now >= ts) {
        hist_add(&p->h, now - ts);
        c->lat_sum += now - ts;
        c->lat_n++;
    }
}

/* The partition's entry of a tracked connection, grown on demand; NULL
 * for a partition number no topic has. */
static pool_part *track_part(pool_tracked *tr, int64_t partition) {
    if (partition < 0 || partition > POOL_MAX_PARTITION) return NULL;
    if ((uint32_t)partition >= tr->nparts) {
        uint32_t n = tr->nparts ? tr->nparts : 16;
        while (n <= (uint32_t)partition) n *= 2;
        pool_part *g = realloc(tr->parts, n * sizeof(*g));
        if (!g) return NULL;
        for (uint32_t i = tr->nparts; i < n; i++) g[i] = (pool_part){.first = -1, .next = -1, .live = -1, .next_at_live = -1};
        tr->parts = g;
        tr->nparts = n;
    }
    return &tr->parts[partition];
}

/* Checks a tracked connection's record against the offsets before it. */
static int track_record(pool_tracked *tr, int64_t partition, int64_t offset) {
    pool_part *pp = track_part(tr, partition);
    if (!pp || offset < 0) return -1;
    if (tr->records++ == 0) tr->first_at = now_s();
    pp->records++;
    if (pp->first < 0) pp->first = offset;
    else if (offset < pp->next) tr->repeats++;
    else if (offset > pp->next) tr->gaps += (uint64_t)(offset - pp->next);
    if (offset >= pp->next) pp->next = offset + 1;
    return 0;
}

/* LIVE on a tracked connection: where the node says it stands, beside
 * where the records received put it. */
static int track_live(pool_tracked *tr, const proto_frame *f) {
    tr->live_at = now_s();
    tr->before_live = tr->records;
    for (uint32_t i = 0; i < tr->nparts; i++) tr->parts[i].next_at_live = tr->parts[i].next;
    for (size_t i = 0; i < f->position_cnt; i++) {
        pool_part *pp = track_part(tr, f->positions[i].partition);
        if (!pp) return -1;
        pp->live = (int64_t)f->positions[i].offset;
    }
    return 0;
}

/* The fast path: MESSAGE frames are counted and stamped without the codec. */
static int subway_message(pool *p, pconn *c, const uint8_t *body, size_t len, uint64_t now) {
    const uint8_t *end = body + len, *q = body + 2, *key, *val;
    size_t key_len, val_len;
    int64_t head[4];              /* feed, partition, offset, timestamp */
    for (int i = 0; i < 4 && q; i++) q = mp_int(q, end, &head[i]);
    if (q) q = mp_bytes(q, end, &key, &key_len);
    if (q) q = mp_bytes(q, end, &val, &val_len);
    if (!q) return -1;
    c->msgs++;
    if (c->tr && track_record(c->tr, head[1], head[2]) < 0) return -1;
    record_latency(p, c, val, val_len, now);
    return 0;
}

static void subway_control(pool *p, pconn *c, const char *frame, size_t len) {
    size_t used;
    proto_frame f;
    proto_status st = proto_decode(p->dec, frame, len, &used, &f);
    if (st != PROTO_FRAME) {
        if (st == PROTO_BAD_INPUT && proto_decoder_err(p->dec) == PROTO_E_UNKNOWN_TYPE) return;
        conn_dead(p, c, st == PROTO_BAD_INPUT ? proto_decoder_errstr(p->dec) : "truncated frame");
        return;
    }
    char why[300];
    switch (f.type) {
    case PROTO_WELCOME:
        if (c->state == PC_HANDSHAKE) {
            c->state = PC_CONNECTED;
            p->nconnected++;
        }
        break;
    case PROTO_SUBSCRIBED:
        if (c->state == PC_SUBSCRIBING && f.req_id == c->req_id) {
            c->state = PC_SUBSCRIBED;
            c->feed = (uint32_t)f.feed;
            p->nsubscribed++;
            p->sub_last = now_s();
        }
        break;
    case PROTO_PING: {
        proto_frame pong = {.type = PROTO_PONG, .token = f.token};
        send_frame(p, c, &pong);
        break;
    }
    case PROTO_DROPPED:
        c->dropped += f.count;
        break;
    case PROTO_LIVE:
        if (c->state != PC_SUBSCRIBED || f.feed != c->feed || c->live) {
            conn_dead(p, c, "LIVE for no subscription, or twice");
            break;
        }
        c->live = 1;
        p->nlive++;
        if (c->tr && track_live(c->tr, &f) < 0) conn_dead(p, c, "LIVE with a bad partition");
        break;
    case PROTO_ERROR:
        snprintf(why, sizeof(why), "ERROR %s: %.*s", proto_err_name(f.code), (int)f.text.len, f.text.ptr);
        conn_dead(p, c, why);
        break;
    case PROTO_GOAWAY:
        conn_dead(p, c, "GOAWAY");
        break;
    default:
        break;
    }
}

/* Handles the complete frames of buf; returns the bytes used, or -1 when
 * the connection died. */
static long subway_input(pool *p, pconn *c, const char *buf, size_t len, uint64_t now) {
    size_t off = 0;
    while (len - off >= 4) {
        uint32_t blen = be32((const uint8_t *)buf + off);
        if (blen == 0 || blen > POOL_MAX_FRAME) {
            conn_dead(p, c, "bad frame length");
            return -1;
        }
        if (len - off < 4 + (size_t)blen) break;
        const uint8_t *body = (const uint8_t *)buf + off + 4;
        if (blen >= 2 && (body[0] == 0x97 || body[0] == 0x98) && body[1] == PROTO_MESSAGE) {
            if (subway_message(p, c, body, blen, now) < 0) {
                conn_dead(p, c, "undecodable MESSAGE");
                return -1;
            }
        } else {
            subway_control(p, c, buf + off, 4 + (size_t)blen);
            if (c->state == PC_DEAD) return -1;
        }
        off += 4 + (size_t)blen;
    }
    return (long)off;
}

/* ------------------------------------------------------- Redis replies */

/* Parses "<digits>\r\n" at q; returns the byte after it, or NULL if incomplete. */
static const char *resp_num(const char *q, const char *end, long long *v) {
    long long n = 0;
    int neg = 0;
    if (q < end && *q == '-') {
        neg = 1;
        q++;
    }
    while (q < end && *q >= '0' && *q <= '9') n = n * 10 + (*q++ - '0');
    if (q + 2 > end) return NULL;
    *v = neg ? -n : n;
    return q + 2;
}

/* One element of a push array: a bulk string, an integer or a simple
 * string. Returns the next byte, NULL when incomplete; sets *bad on junk. */
static const char *resp_elem(const char *q, const char *end, const char **ptr, long long *len, int *bad) {
    if (q >= end) return NULL;
    char t = *q++;
    long long n;
    if (t == '$') {
        q = resp_num(q, end, &n);
        if (!q) return NULL;
        if (n < 0) {
            *ptr = NULL;
            *len = 0;
            return q;
        }
        if (q + n + 2 > end) return NULL;
        *ptr = q;
        *len = n;
        return q + n + 2;
    }
    if (t == ':' || t == '+' || t == '-') {
        const char *s = q;
        const char *nl = memchr(q, '\n', (size_t)(end - q));
        if (!nl) return NULL;
        *ptr = s;
        *len = nl - 1 - s;
        return nl + 1;
    }
    *bad = 1;
    return NULL;
}

static long redis_input(pool *p, pconn *c, const char *buf, size_t len, uint64_t now) {
    const char *q = buf, *end = buf + len;
    while (q < end) {
        const char *start = q;
        int bad = 0;
        if (*q == '-') {
            conn_dead(p, c, "Redis error reply");
            return -1;
        }
        if (*q != '*') {
            conn_dead(p, c, "unexpected Redis reply");
            return -1;
        }
        long long cnt;
        q = resp_num(q + 1, end, &cnt);
        if (!q) return start - buf;
        const char *el[3] = {0};
        long long ellen[3] = {0};
        for (long long i = 0; i < cnt && q; i++) {
            const char *ptr;
            long long l;
            q = resp_elem(q, end, &ptr, &l, &bad);
            if (q && i < 3) {
                el[i] = ptr;
                ellen[i] = l;
            }
        }
        if (bad) {
            conn_dead(p, c, "unparsable Redis reply");
            return -1;
        }
        if (!q) return start - buf;
        if (cnt == 3 && ellen[0] == 7 && memcmp(el[0], "message", 7) == 0) {
            c->msgs++;
            record_latency(p, c, (const uint8_t *)el[2], (size_t)ellen[2], now);
        } else if (cnt == 3 && ellen[0] == 9 && memcmp(el[0], "subscribe", 9) == 0) {
            if (c->state == PC_SUBSCRIBING) {
                c->state = PC_SUBSCRIBED;
                p->nsubscribed++;
                p->sub_last = now_s();
            }
        }
    }
    return q - buf;
}

/* ------------------------------------------------------------- reading */

static void on_readable(pool *p, pconn *c) {
    char *buf = p->rbuf;
    size_t have = c->left_len;
    if (have) memcpy(buf, c->left, have);
    size_t room = POOL_RBUF - have;
    if (room > POOL_READ_MAX) room = POOL_READ_MAX;
    ssize_t n = recv(c->fd, buf + have, room, 0);
    if (n == 0) {
        conn_dead(p, c, "closed by the server");
        return;
    }
    if (n < 0) {
        if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) conn_dead(p, c, strerror(errno));
        return;
    }
    size_t len = have + (size_t)n;
    uint64_t now = p->lat_on ? wall_ns() : 0;
    long used = p->kind == POOL_SUBWAY ? subway_input(p, c, buf, len, now) : redis_input(p, c, buf, len, now);
    if (used < 0) return;
    size_t rest = len - (size_t)used;
    if (rest > POOL_RBUF - POOL_READ_MAX) {
        conn_dead(p, c, "frame too large");
        return;
    }
    if (rest > c->left_cap) {
        char *nl = realloc(c->left, rest);
        if (!nl) {
            conn_dead(p, c, "out of memory");
            return;
        }
        c->left = nl;
        c->left_cap = (uint32_t)rest;
    }
    if (rest) memcpy(c->left, buf + used, rest);
    c->left_len = (uint32_t)rest;
}

int pool_run(pool *p, int timeout_ms) {
    struct epoll_event evs[POOL_EVENTS];
    int n = epoll_wait(p->epfd, evs, POOL_EVENTS, timeout_ms);
    if (n < 0) return errno == EINTR ? 0 : -1;
    for (int i = 0; i < n; i++) {
        pconn *c = &p->c[evs[i].data.u64];
        if (c->state == PC_DEAD) continue;
        if (c->state == PC_CONNECTING) {
            if (evs[i].events & (EPOLLOUT | EPOLLERR | EPOLLHUP)) on_connected(p, c);
            continue;
        }
        if (evs[i].events & EPOLLOUT) conn_flush(p, c);
        if (c->state != PC_DEAD && (evs[i].events & (EPOLLIN | EPOLLERR | EPOLLHUP))) on_readable(p, c);
    }
    if (p->next_connect < p->n) start_connects(p);
    return n;
}

void pool_run_for(pool *p, double s) {
    double end = now_s() + s;
    for (double t = now_s(); t < end; t = now_s()) {
        int ms = (int)((end - t) * 1000);
        pool_run(p, ms < 1 ? 1 : ms > 50 ? 50 : ms);
    }
}

/* ----------------------------------------------------------- phases */

int pool_wait_connected(pool *p, double timeout_s) {
    double end = now_s() + timeout_s;
    while (p->nconnected + p->nfailed < p->n && now_s() < end) pool_run(p, 10);
    return p->nconnected == p->n ? 0 : -1;
}

void pool_subscribe(pool *p) {
    pool_subscribe_range(p, 0, p->n);
}

void pool_subscribe_range(pool *p, size_t from, size_t to) {
    p->sub_first = now_s();
    for (size_t i = from; i < to && i < p->n; i++) {
        pconn *c = &p->c[i];
        if (c->state != PC_CONNECTED || !c->topic) continue;
        c->state = PC_SUBSCRIBING;
        c->req_id = i + 1;
        if (p->kind == POOL_SUBWAY) {
            proto_frame f = {.type = PROTO_SUBSCRIBE, .req_id = c->req_id,
                             .topic = {c->topic, strlen(c->topic)}, .key = {c->key, c->key_len},
                             .start_mode = c->start_mode, .start_arg = c->start_arg};
            send_frame(p, c, &f);
        } else {
            char cmd[600];
            int n = snprintf(cmd, sizeof(cmd), "*2\r\n$9\r\nSUBSCRIBE\r\n$%zu\r\n%s\r\n", strlen(c->topic), c->topic);
            conn_send(p, c, cmd, (size_t)n);
        }
    }
}

int pool_wait_subscribed(pool *p, double timeout_s) {
    return pool_wait_subscribed_n(p, p->n, timeout_s);
}

int pool_wait_subscribed_n(pool *p, size_t n, double timeout_s) {
    double end = now_s() + timeout_s;
    while (p->nsubscribed < n && p->nsubscribed + p->nfailed < p->n && now_s() < end) pool_run(p, 10);
    return p->nsubscribed >= n ? 0 : -1;
}

/* ------------------------------------------------------------ figures */

uint64_t pool_total(const pool *p) {
    uint64_t t = 0;
    for (size_t i = 0; i < p->n; i++) t += p->c[i].msgs;
    return t;
}

uint64_t pool_min(const pool *p) {
    uint64_t m = UINT64_MAX;
    for (size_t i = 0; i < p->n; i++)
        if (p->c[i].state == PC_SUBSCRIBED && p->c[i].msgs < m) m = p->c[i].msgs;
    return m == UINT64_MAX ? 0 : m;
}

uint64_t pool_min_accounted(const pool *p) {
    uint64_t m = UINT64_MAX;
    for (size_t i = 0; i < p->n; i++)
        if (p->c[i].state == PC_SUBSCRIBED && p->c[i].msgs + p->c[i].dropped < m) m = p->c[i].msgs + p->c[i].dropped;
    return m == UINT64_MAX ? 0 : m;
}

uint64_t pool_dropped(const pool *p) {
    uint64_t t = 0;
    for (size_t i = 0; i < p->n; i++) t += p->c[i].dropped;
    return t;
}

size_t pool_count(const pool *p) { return p->n; }
size_t pool_connected(const pool *p) { return p->nconnected; }
size_t pool_subscribed(const pool *p) { return p->nsubscribed; }
size_t pool_failed(const pool *p) { return p->nfailed; }
size_t pool_live(const pool *p) { return p->nlive; }
double pool_sub_first(const pool *p) { return p->sub_first; }
double pool_sub_last(const pool *p) { return p->sub_last; }
const char *pool_err(const pool *p) { return p->err[0] ? p->err : "no error"; }
hist *pool_hist(pool *p) { return &p->h; }
void pool_latency_until(pool *p, uint64_t to_ns) { p->win_to = to_ns; }
uint64_t pool_windowed(const pool *p) { return p->win_msgs; }

void pool_latency(pool *p, int on) {
    p->lat_on = on;
    p->win_from = on ? wall_ns() : 0;
    p->win_to = UINT64_MAX;
    p->win_msgs = 0;
    hist_reset(&p->h);
    for (size_t i = 0; i < p->n; i++) p->c[i].lat_sum = p->c[i].lat_n = 0;
}

void pool_lat_spread(const pool *p, uint64_t *lo, uint64_t *hi) {
    *lo = UINT64_MAX;
    *hi = 0;
    for (size_t i = 0; i < p->n; i++) {
        if (!p->c[i].lat_n) continue;
        uint64_t mean = p->c[i].lat_sum / p->c[i].lat_n;
        if (mean < *lo) *lo = mean;
        if (mean > *hi) *hi = mean;
    }
    if (*lo == UINT64_MAX) *lo = 0;
}
