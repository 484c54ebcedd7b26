/* client_reconnect.c -- libsubway's reconnect (options.reconnect): backoff with full jitter, the lost/attempt/done cycle, and subscriptions sent again on each new connection. */
#include "client_int.h"

#include <stdio.h>
#include <string.h>

/* ================================================================ backoff */

int client_backoff_ms(int base_ms, int max_ms, unsigned attempt, uint64_t rnd) {
    int64_t ceiling = base_ms > 0 ? base_ms : 1;
    for (unsigned i = 1; i < attempt && ceiling < max_ms; i++) ceiling *= 2;
    if (ceiling > max_ms) ceiling = max_ms;
    if (ceiling < 0) ceiling = 0;
    return (int)(rnd % ((uint64_t)ceiling + 1));
}

/* The next number of c's xorshift64* generator. */
static uint64_t next_random(subway_client *c) {
    uint64_t x = c->rng;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    c->rng = x;
    return x * 0x2545F4914F6CDD1DULL;
}

static void tell(subway_client *c, const subway_reconnect_info *info) {
    if (c->cb.on_reconnect) c->cb.on_reconnect(c, c->cb.cb_data, info);
}

/* ================================================================= losing */

bool client_reconnect_wanted(const subway_client *c, int code) {
    /* The client's own close, and running out of memory, are final. */
    return c->reconnect && (c->flags & F_WAS_WELCOMED) && !(c->flags & F_FREE) &&
           code != SUBWAY_E_CLOSED && code != SUBWAY_E_NOMEM;
}

void client_lost(subway_client *c, int code, const char *why) {
    char text[sizeof(c->errstr)];
    snprintf(text, sizeof(text), "%s", why);
    client_drop_connection(c);
    c->state = STATE_WAITING;
    c->flags |= F_RECONNECTING;
    c->resub_at_ms = -1;
    c->resub_attempt = 0;
    client_feeds_unbind_all(c);
    c->attempt++;
    int delay = client_backoff_ms(c->backoff_base_ms, c->backoff_max_ms, c->attempt,
                                  next_random(c));
    c->retry_at_ms = client_now_ms() + delay;
    /* Everything is in its waiting state before any callback runs: one may
     * close or free the client, or issue requests. */
    client_fail_requests(c, SUBWAY_E_LOST, text);
    if (c->state != STATE_WAITING) return;
    subway_reconnect_info info = { .event = SUBWAY_RECONNECT_LOST, .err = code, .errstr = text,
                                   .attempt = c->attempt, .delay_ms = delay };
    tell(c, &info);
}

/* ============================================================ attempting */

/* Starts the attempt the backoff delay was waiting for. */
static void attempt(subway_client *c) {
    char errbuf[512];
    int code = client_open(c, errbuf, sizeof(errbuf));
    if (code != 0) {
        /* As if the attempt's connection had failed: the next one later. */
        client_lost(c, code, errbuf);
        return;
    }
    subway_reconnect_info info = { .event = SUBWAY_RECONNECT_ATTEMPT, .errstr = "",
                                   .attempt = c->attempt };
    tell(c, &info);
}

void client_plan_resubscribe(subway_client *c) {
    if (c->resub_at_ms >= 0) return;
    c->resub_attempt++;
    c->resub_at_ms = client_now_ms() + client_backoff_ms(c->backoff_base_ms, c->backoff_max_ms,
                                                         c->resub_attempt, next_random(c));
}

int client_resubscribe(subway_client *c) {
    bool reconnected = (c->flags & F_RECONNECTING) != 0;
    c->flags &= ~F_RECONNECTING;
    c->attempt = 0;
    c->resub_at_ms = -1;
    size_t sent = 0;
    /* By id, from a fresh search each time: a subscribe callback run for a
     * refusal may change the table. */
    uint64_t next = 0;
    for (;;) {
        client_feed *fe = NULL;
        for (size_t i = 0; i < c->feed_cnt && fe == NULL; i++)
            if (c->feeds[i].id >= next && c->feeds[i].state == FEED_UNSENT && !c->feeds[i].cancelled)
                fe = &c->feeds[i];
        if (fe == NULL) break;
        next = fe->id + 1;
        char errbuf[256];
        int code = client_send_subscribe(c, fe, errbuf, sizeof(errbuf));
        if (code == 0) {
            sent++;
            continue;
        }
        if (code == SUBWAY_E_OUTPUT_FULL || code == SUBWAY_E_TOO_MANY_PENDING) {
            /* Room comes back as the node answers and the socket drains. */
            client_plan_resubscribe(c);
            continue;
        }
        /* Refused here rather than by the node (version 1, too large). */
        client_subscribe_refused(c, fe, code, errbuf);
        if (!client_is_open(c)) return -1;
    }
    if (reconnected) {
        subway_reconnect_info info = { .event = SUBWAY_RECONNECT_DONE, .errstr = "",
                                       .feed_cnt = sent, .resumed = c->version >= 2 };
        tell(c, &info);
    }
    return client_is_open(c) ? 0 : -1;
}

/* ================================================================ timers */

int64_t client_reconnect_deadline(const subway_client *c) {
    if (c->state == STATE_WAITING) return c->retry_at_ms;
    if ((c->flags & F_WELCOMED) && client_is_open(c)) return c->resub_at_ms;
    return -1;
}

int client_reconnect_tick(subway_client *c) {
    /* Never under a callback: the read loop on the stack owns the socket. */
    if (client_in_callback(c)) return client_is_live(c) ? 0 : -1;
    int64_t now = client_now_ms();
    if (c->state == STATE_WAITING && now >= c->retry_at_ms) {
        attempt(c);
    } else if (client_is_open(c) && (c->flags & F_WELCOMED) && c->resub_at_ms >= 0 &&
               now >= c->resub_at_ms) {
        client_resubscribe(c);
    }
    return client_is_live(c) ? 0 : -1;
}
