/* client_sync.c -- libsubway's blocking calls: connect, the _sync requests and subway_poll, each a poll(2) loop over the non-blocking connection. */
#include "client_int.h"

#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>

/* A blocking request's landing place; lives on the blocking caller's stack. */
typedef struct sync_wait {
    bool done;
    int err;
    subway_result res;
} sync_wait;

/* ================================================================= poll */

/* The smaller of two poll timeouts, where -1 means forever. */
static int min_timeout(int a, int b) {
    if (a < 0) return b;
    if (b < 0) return a;
    return a < b ? a : b;
}

/* One poll(2) round: waits up to wait_ms (capped by the library's own
 * deadline), then writes and reads what is ready; while a reconnect waits
 * there is no socket, only the wait. Adds frames handled to *frames.
 * Returns 0 (also on EINTR: *interrupted is set, and when a lost
 * connection is being replaced), or -1 when the client is closed. */
static int poll_once(subway_client *c, int wait_ms, int *frames, bool *interrupted) {
    if (client_check_deadline(c) < 0) return -1;
    if (subway_client_want_write(c) && client_write(c) < 0) return client_is_live(c) ? 0 : -1;
    bool sock = client_is_open(c);
    struct pollfd p = { .fd = c->fd, .events = POLLIN };
    if (subway_client_want_write(c)) p.events |= POLLOUT;
    int rc = poll(&p, sock ? 1 : 0, min_timeout(wait_ms, client_ms_until(client_deadline(c))));
    if (rc < 0) {
        if (errno == EINTR) {
            *interrupted = true;
            return 0;
        }
        client_fail(c, SUBWAY_E_IO, "poll: %s", strerror(errno));
        return client_is_live(c) ? 0 : -1;
    }
    if (rc == 0) return client_check_deadline(c);
    if ((p.revents & (POLLOUT | POLLERR | POLLHUP)) && subway_client_want_write(c) &&
        client_write(c) < 0)
        return client_is_live(c) ? 0 : -1;
    if ((p.revents & (POLLIN | POLLERR | POLLHUP)) && client_read(c, frames) < 0)
        return client_is_live(c) ? 0 : -1;
    return 0;
}

/* ================================================================ calls */

subway_client *subway_connect(const char *addr, const subway_options *opt) {
    return subway_connect_token(addr, opt, NULL);
}

subway_client *subway_connect_token(const char *addr, const subway_options *opt, const char *token) {
    return subway_connect_tls(addr, opt, token, NULL);
}

subway_client *subway_connect_tls(const char *addr, const subway_options *opt, const char *token,
                                  const subway_tls *tls) {
    subway_client *c = subway_client_new(opt);
    if (c == NULL) return NULL;
    if (token && subway_set_token(c, token) < 0) {
        subway_client_free(c);
        return NULL;
    }
    if (tls && subway_set_tls(c, tls) < 0) return c; /* the sticky error says why */
    client_enter(c);
    if (subway_client_connect(c, addr) == 0) {
        int frames = 0;
        bool intr = false;
        /* The handshake deadline (timeout_ms) is enforced by poll_once. */
        while (client_is_open(c) && !(c->flags & F_WELCOMED) && !(c->flags & F_FREE))
            if (poll_once(c, -1, &frames, &intr) < 0) break;
    }
    /* A callback freeing c during the handshake leaves nothing to return. */
    return client_leave(c, 0) < 0 ? NULL : c;
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
    if (client_in_callback(c)) {
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
    int64_t dl = c->timeout_ms < 0 ? -1 : client_now_ms() + c->timeout_ms;
    while (!w->done && !(c->flags & F_FREE)) {
        int frames = 0;
        bool intr = false;
        if (dl >= 0 && client_now_ms() >= dl) {
            /* Leave the request outstanding but aim its reply at nobody,
             * since w is about to go out of scope. */
            client_req_forget_cb(c, (uint64_t)req_id);
            c->req_err = SUBWAY_E_TIMEOUT;
            snprintf(c->req_errstr, sizeof(c->req_errstr), "no reply within %d ms",
                     c->timeout_ms);
            return -1;
        }
        /* A closed connection fails the request through sync_cb. */
        if (poll_once(c, client_ms_until(dl), &frames, &intr) < 0 && !w->done) {
            c->req_err = SUBWAY_E_CLOSED;
            snprintf(c->req_errstr, sizeof(c->req_errstr), "%s", c->errstr);
            return -1;
        }
    }
    return w->done && w->err == 0 ? 0 : -1;
}

int subway_subscribe_from_sync(subway_client *c, const char *topic, const char *key,
                               size_t key_len, const subway_start *start, uint64_t *feed) {
    client_enter(c);
    sync_wait w = {0};
    int rc = sync_begin(c);
    if (rc == 0)
        rc = sync_finish(c, subway_subscribe_from(c, topic, key, key_len, start, sync_cb, &w), &w);
    if (rc == 0 && feed) *feed = w.res.feed;
    return client_leave(c, rc);
}

int subway_subscribe_sync(subway_client *c, const char *topic, const char *key, size_t key_len,
                          uint64_t *feed) {
    return subway_subscribe_from_sync(c, topic, key, key_len, NULL, feed);
}

int subway_unsubscribe_sync(subway_client *c, uint64_t feed) {
    client_enter(c);
    sync_wait w = {0};
    int rc = sync_begin(c);
    if (rc == 0) rc = sync_finish(c, subway_unsubscribe(c, feed, sync_cb, &w), &w);
    return client_leave(c, rc);
}

int subway_publish_sync(subway_client *c, const char *topic, const char *key, size_t key_len,
                        const char *value, size_t value_len, uint32_t *partition,
                        uint64_t *offset) {
    client_enter(c);
    sync_wait w = {0};
    int rc = sync_begin(c);
    if (rc == 0)
        rc = sync_finish(c, subway_publish(c, topic, key, key_len, value, value_len, sync_cb, &w),
                         &w);
    if (rc == 0) {
        if (partition) *partition = w.res.partition;
        if (offset) *offset = w.res.offset;
    }
    return client_leave(c, rc);
}

int subway_poll(subway_client *c, int timeout_ms) {
    client_enter(c);
    if (client_in_callback(c)) return client_leave(c, 0);
    int64_t dl = timeout_ms < 0 ? -1 : client_now_ms() + timeout_ms;
    int frames = 0;
    for (;;) {
        bool intr = false;
        if (poll_once(c, client_ms_until(dl), &frames, &intr) < 0) return client_leave(c, -1);
        if (frames > 0 || intr) break;
        if (dl >= 0 && client_now_ms() >= dl) break;
    }
    return client_leave(c, frames);
}

/* ============================================================= accessors */

int subway_request_err(const subway_client *c) {
    return c->req_err;
}

const char *subway_request_errstr(const subway_client *c) {
    return c->req_errstr;
}
