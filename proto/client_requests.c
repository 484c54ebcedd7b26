/* client_requests.c -- libsubway's requests: issued, awaiting their replies in the pending table, answered or failed, each callback called once. */
#include "client_int.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ========================================================= pending table */

/* Returns the live request with req_id, or NULL. Binary search over the
 * sorted window; answered slots keep their ids so the order holds. */
client_req *client_req_find(subway_client *c, uint64_t req_id) {
    size_t lo = c->req_head;
    if (c->reqs)
        lo += CLIENT_LOWER_BOUND(client_req, c->reqs + lo, c->req_len - lo, req_id, req_id);
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
        client_req *r = client_grow(c->reqs, &c->req_cap, c->req_len + 1, sizeof(*r));
        if (r == NULL) return NULL;
        c->reqs = r;
    }
    client_req *r = &c->reqs[c->req_len++];
    memset(r, 0, sizeof(*r));
    c->pending++;
    return r;
}

/* Takes *r out of the table (into *out). */
static void req_take(subway_client *c, client_req *r, client_req *out) {
    *out = *r;
    r->type = 0;
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

/* ============================================================== issuing */

/* PROTOCOL.md 2: a start's positions hold at most this many entries. */
#define MAX_START_POSITIONS 100000

_Static_assert((int)SUBWAY_START_POSITIONS == (int)PROTO_START_POSITIONS &&
               (int)SUBWAY_START_TIMESTAMP == (int)PROTO_START_TIMESTAMP &&
               (int)SUBWAY_START_LAST == (int)PROTO_START_LAST &&
               (int)SUBWAY_START_BEGINNING == (int)PROTO_START_BEGINNING &&
               (int)SUBWAY_START_OFFSET == (int)PROTO_START_OFFSET &&
               PROTO_START_MAX == 5, "subway.h and proto.h disagree on start modes");

/* Refuses a request that was never recorded: calls cb once with code and
 * text (feed: UNSUBSCRIBE's, else 0). Returns -1. */
static int64_t refuse(subway_client *c, proto_type type, uint64_t feed, int code,
                      const char *text, subway_reply_cb *cb, void *cb_data) {
    subway_result res = { .type = (subway_req_type)type, .feed = feed };
    if (cb) cb(c, cb_data, code, text, &res);
    return -1;
}

/* Whether the application may issue a request of type now. Returns 0, or
 * a SUBWAY_E_* code with the reason in errbuf. */
static int may_request(const subway_client *c, proto_type type, char *errbuf, size_t errsize) {
    if (c->state == STATE_NEW) {
        snprintf(errbuf, errsize, "not connected");
        return SUBWAY_E_STATE;
    }
    if (c->state == STATE_CLOSED) {
        snprintf(errbuf, errsize, "%s", c->errstr);
        return SUBWAY_E_CLOSED;
    }
    /* A subscription outlives the connection; other requests need one. */
    if (type != PROTO_SUBSCRIBE && (c->flags & F_RECONNECTING)) {
        snprintf(errbuf, errsize, "connection lost, reconnecting");
        return SUBWAY_E_LOST;
    }
    size_t pending = c->pending + c->unsent_owed;
    if (pending >= c->max_pending) {
        snprintf(errbuf, errsize, "%zu requests already await replies (limit %zu)", pending,
                 c->max_pending);
        return SUBWAY_E_TOO_MANY_PENDING;
    }
    return 0;
}

/* Queues request frame f with the next req_id and records it (feed: the
 * subscription's id for SUBSCRIBE and UNSUBSCRIBE). Returns 0 and sets
 * *req_id, or a SUBWAY_E_* code with errbuf filled and nothing recorded. */
static int request(subway_client *c, proto_frame *f, uint64_t feed, subway_reply_cb *cb,
                   void *cb_data, uint64_t *req_id, char *errbuf, size_t errsize) {
    client_req *r = req_add(c);
    if (r == NULL) {
        snprintf(errbuf, errsize, "out of memory");
        return SUBWAY_E_NOMEM;
    }
    f->req_id = c->next_req_id;
    int code = client_out_frame(c, f, false, errbuf, errsize);
    if (code != 0) {
        /* Unrecord it: the slot is the last one, nothing refers to it. */
        c->req_len--;
        c->pending--;
        return code;
    }
    *r = (client_req){ .req_id = c->next_req_id++, .type = f->type, .cb = cb,
                       .cb_data = cb_data, .feed = feed };
    *req_id = r->req_id;
    return 0;
}

/* Checks a start the application gave. Returns 0, or SUBWAY_E_ARG with
 * the reason in errbuf. */
static int check_start(const subway_start *st, char *errbuf, size_t errsize) {
    if (st == NULL) return 0;
    switch (st->mode) {
    case SUBWAY_START_LIVE:
    case SUBWAY_START_TIMESTAMP:
    case SUBWAY_START_BEGINNING:
        return 0;
    case SUBWAY_START_LAST:
    case SUBWAY_START_OFFSET:
        if (st->arg >= 0) return 0;
        snprintf(errbuf, errsize, "start %s wants an argument >= 0, not %" PRId64,
                 st->mode == SUBWAY_START_LAST ? "LAST" : "OFFSET", st->arg);
        return SUBWAY_E_ARG;
    case SUBWAY_START_POSITIONS:
        if (st->position_cnt > MAX_START_POSITIONS) {
            snprintf(errbuf, errsize, "start POSITIONS: %zu positions exceed the %d limit",
                     st->position_cnt, MAX_START_POSITIONS);
            return SUBWAY_E_ARG;
        }
        if (st->position_cnt > 0 && st->positions == NULL) {
            snprintf(errbuf, errsize, "start POSITIONS: positions is NULL");
            return SUBWAY_E_ARG;
        }
        for (size_t i = 0; i < st->position_cnt; i++)
            if (st->positions[i].offset > INT64_MAX) {
                snprintf(errbuf, errsize, "start POSITIONS: offset of partition %" PRIu32
                         " is above INT64_MAX", st->positions[i].partition);
                return SUBWAY_E_ARG;
            }
        return 0;
    }
    snprintf(errbuf, errsize, "start mode %d is none of SUBWAY_START_*", (int)st->mode);
    return SUBWAY_E_ARG;
}

int client_send_subscribe(subway_client *c, client_feed *fe, char *errbuf, size_t errsize) {
    proto_frame f = { .type = PROTO_SUBSCRIBE, .topic = { fe->topic, strlen(fe->topic) },
                      .key = { fe->key, fe->key_len } };
    bool unresumed;
    if (client_feed_start(c, fe, &f, &unresumed) < 0) {
        snprintf(errbuf, errsize, "out of memory");
        return SUBWAY_E_NOMEM;
    }
    if (f.start_mode != PROTO_START_NONE && c->version < 2) {
        snprintf(errbuf, errsize, "the node speaks protocol version %" PRIu64
                 ", which has no start positions", c->version);
        return SUBWAY_E_UNSUPPORTED;
    }
    uint64_t req_id;
    int code = request(c, &f, fe->id, NULL, NULL, &req_id, errbuf, errsize);
    if (code != 0) return code;
    if (fe->user_req_id == 0) fe->user_req_id = req_id;
    client_feed_sent(c, fe);
    return 0;
}

int64_t subway_subscribe_from(subway_client *c, const char *topic, const char *key,
                              size_t key_len, const subway_start *start, subway_reply_cb *cb,
                              void *cb_data) {
    client_enter(c);
    char errbuf[256] = "";
    int code = may_request(c, PROTO_SUBSCRIBE, errbuf, sizeof(errbuf));
    if (code == 0 && (topic == NULL || topic[0] == '\0')) {
        code = SUBWAY_E_ARG;
        snprintf(errbuf, sizeof(errbuf), "topic is NULL or empty");
    }
    if (code == 0) code = check_start(start, errbuf, sizeof(errbuf));
    client_feed *fe = NULL;
    if (code == 0 && (fe = client_feed_add(c, topic, key, key_len, start)) == NULL) {
        code = SUBWAY_E_NOMEM;
        snprintf(errbuf, sizeof(errbuf), "out of memory");
    }
    int64_t id = -1;
    if (fe) {
        fe->cb = cb;
        fe->cb_data = cb_data;
        if (c->flags & F_WELCOMED) {
            code = client_send_subscribe(c, fe, errbuf, sizeof(errbuf));
            if (code != 0) client_feed_remove(c, fe->id);
        } else {
            /* Sent once WELCOME says which version the node speaks. */
            fe->user_req_id = c->next_req_id++;
        }
        if (code == 0) id = (int64_t)fe->user_req_id;
    }
    if (code != 0) refuse(c, PROTO_SUBSCRIBE, 0, code, errbuf, cb, cb_data);
    return client_leave(c, 0) < 0 ? -1 : id;
}

int64_t subway_subscribe(subway_client *c, const char *topic, const char *key, size_t key_len,
                         subway_reply_cb *cb, void *cb_data) {
    return subway_subscribe_from(c, topic, key, key_len, NULL, cb, cb_data);
}

/* Completes an unsubscribe the node has no part in, at once. */
static int64_t unsubscribe_locally(subway_client *c, uint64_t feed, subway_reply_cb *cb,
                                   void *cb_data) {
    client_req r = { .req_id = c->next_req_id++, .type = PROTO_UNSUBSCRIBE, .cb = cb,
                     .cb_data = cb_data };
    subway_result res = { .feed = feed };
    req_reply(c, &r, 0, "", &res);
    return (int64_t)r.req_id;
}

int64_t subway_unsubscribe(subway_client *c, uint64_t feed, subway_reply_cb *cb, void *cb_data) {
    client_enter(c);
    char errbuf[256] = "";
    int64_t id = -1;
    int code = 0;
    client_feed *fe = client_feed_find(c, feed);
    if (client_is_live(c) && fe && fe->answered &&
        (fe->state == FEED_UNSENT || fe->state == FEED_SENT)) {
        /* No node holds it right now (reconnecting, or asking again after
         * a refusal): it is forgotten at once. A SUBSCRIBE on its way gets
         * its handle given back when SUBSCRIBED names it. */
        if (fe->state == FEED_UNSENT)
            client_feed_remove(c, feed);
        else
            fe->cancelled = true;
        id = unsubscribe_locally(c, feed, cb, cb_data);
    } else if ((code = may_request(c, PROTO_UNSUBSCRIBE, errbuf, sizeof(errbuf))) != 0) {
        /* not connected, closed, pending bound */
    } else if (fe == NULL || !fe->answered) {
        code = SUBWAY_E_NOT_SUBSCRIBED;
        snprintf(errbuf, sizeof(errbuf), "feed %" PRIu64 " is not subscribed", feed);
    } else {
        proto_frame f = { .type = PROTO_UNSUBSCRIBE, .feed = fe->handle };
        uint64_t req_id;
        code = request(c, &f, feed, cb, cb_data, &req_id, errbuf, sizeof(errbuf));
        if (code == 0) {
            fe->state = FEED_LEAVING;
            id = (int64_t)req_id;
        }
    }
    if (code != 0) refuse(c, PROTO_UNSUBSCRIBE, feed, code, errbuf, cb, cb_data);
    return client_leave(c, 0) < 0 ? -1 : id;
}

int64_t subway_publish(subway_client *c, const char *topic, const char *key, size_t key_len,
                       const char *value, size_t value_len, subway_reply_cb *cb, void *cb_data) {
    client_enter(c);
    char errbuf[256] = "";
    int64_t id = -1;
    int code = may_request(c, PROTO_PUBLISH, errbuf, sizeof(errbuf));
    if (code == 0 && (topic == NULL || topic[0] == '\0')) {
        code = SUBWAY_E_ARG;
        snprintf(errbuf, sizeof(errbuf), "topic is NULL or empty");
    }
    if (code == 0) {
        proto_frame f = { .type = PROTO_PUBLISH, .topic = { topic, strlen(topic) },
                          .key = { key, key ? key_len : 0 },
                          .value = { value, value ? value_len : 0 } };
        uint64_t req_id;
        code = request(c, &f, 0, cb, cb_data, &req_id, errbuf, sizeof(errbuf));
        if (code == 0) id = (int64_t)req_id;
    }
    if (code != 0) refuse(c, PROTO_PUBLISH, 0, code, errbuf, cb, cb_data);
    return client_leave(c, 0) < 0 ? -1 : id;
}

void client_req_forget_cb(subway_client *c, uint64_t req_id) {
    client_req *r = client_req_find(c, req_id);
    if (r) r->cb = NULL;
    /* A subscription keeps its callback itself, under the id it was given. */
    for (size_t i = 0; i < c->feed_cnt; i++)
        if (!c->feeds[i].answered && c->feeds[i].user_req_id == req_id) c->feeds[i].cb = NULL;
}

size_t subway_pending(const subway_client *c) {
    return c->pending + c->unsent_owed;
}

/* ============================================================== replies */

/* Pops the pending request a reply names; a reply nobody asked for means
 * the node and we disagree about the conversation, so the connection fails. */
static int take_reply(subway_client *c, const proto_frame *f, proto_type want,
                      client_req *out) {
    client_req *r = client_req_find(c, f->req_id);
    if (r == NULL || r->type != want) {
        client_fail(c, SUBWAY_E_PROTOCOL, "protocol error: %s for %s req_id %" PRIu64,
                    proto_type_name(f->type), r ? "a mismatched" : "unknown", f->req_id);
        return -1;
    }
    req_take(c, r, out);
    return 0;
}

/* Calls fe's subscribe callback, once, and forgets it unless it succeeded. */
static void feed_answer(subway_client *c, client_feed *fe, int err, const char *errstr) {
    subway_reply_cb *cb = fe->cb;
    void *cb_data = fe->cb_data;
    subway_result res = { .req_id = fe->user_req_id, .type = SUBWAY_REQ_SUBSCRIBE };
    if (err == 0) {
        fe->answered = true;
        fe->cb = NULL;
        res.feed = fe->id;
        res.partitions = fe->partitions;
        res.partition_cnt = fe->partition_cnt;
    } else {
        client_feed_remove(c, fe->id);
    }
    if (cb) cb(c, cb_data, err, errstr, &res);
}

/* Gives back the handle of a subscription unsubscribed while its SUBSCRIBE
 * was on its way; nobody waits for the answer. */
static void feed_give_back(subway_client *c, client_feed *fe) {
    char errbuf[128];
    uint64_t req_id, id = fe->id;
    proto_frame f = { .type = PROTO_UNSUBSCRIBE, .feed = fe->handle };
    if (request(c, &f, id, NULL, NULL, &req_id, errbuf, sizeof(errbuf)) == 0)
        client_feed_get(c, id)->state = FEED_LEAVING;
    else
        client_feed_remove(c, id);
}

int client_on_subscribed(subway_client *c, const proto_frame *f) {
    client_req r;
    if (take_reply(c, f, PROTO_SUBSCRIBE, &r) < 0) return -1;
    client_feed *fe = client_feed_get(c, r.feed);
    if (fe == NULL) return 0;
    if (client_feed_bind(c, fe, f->feed, f->partitions, f->partition_cnt) < 0) {
        /* The node holds the feed now but we cannot name its records. */
        if (fe->answered) {
            client_feed_remove(c, r.feed);
            if (c->cb.on_feed_lost)
                c->cb.on_feed_lost(c, c->cb.cb_data, r.feed, SUBWAY_E_NOMEM,
                                   "out of memory recording the feed");
        } else {
            feed_answer(c, fe, SUBWAY_E_NOMEM, "out of memory recording the feed");
        }
        return 0;
    }
    if (fe->cancelled)
        feed_give_back(c, fe);
    else if (!fe->answered)
        feed_answer(c, fe, 0, "");
    else
        c->resub_attempt = 0;
    return 0;
}

int client_on_unsubscribed(subway_client *c, const proto_frame *f) {
    client_req r;
    if (take_reply(c, f, PROTO_UNSUBSCRIBE, &r) < 0) return -1;
    client_feed_remove(c, r.feed);
    subway_result res = { .feed = r.feed };
    req_reply(c, &r, 0, "", &res);
    return 0;
}

int client_on_puback(subway_client *c, const proto_frame *f) {
    client_req r;
    if (take_reply(c, f, PROTO_PUBLISH, &r) < 0) return -1;
    subway_result res = { .partition = f->partition, .offset = f->offset };
    req_reply(c, &r, 0, "", &res);
    return 0;
}

/* Refusals worth asking again for a subscription the application already
 * had: the node or what it depends on may be back in a moment. */
static bool retry_refusal(int code) {
    return code == SUBWAY_E_UNAVAILABLE || code == SUBWAY_E_SHUTTING_DOWN ||
           code == SUBWAY_E_KAFKA || code == SUBWAY_E_INTERNAL;
}

void client_subscribe_refused(subway_client *c, client_feed *fe, int code, const char *text) {
    uint64_t id = fe->id;
    if (fe->cancelled) {
        client_feed_remove(c, id);
    } else if (!fe->answered) {
        feed_answer(c, fe, code, text);
    } else if (retry_refusal(code)) {
        client_feed_unbind(c, fe);
        client_plan_resubscribe(c);
    } else {
        client_feed_remove(c, id);
        if (c->cb.on_feed_lost) c->cb.on_feed_lost(c, c->cb.cb_data, id, code, text);
    }
}

bool client_req_refused(subway_client *c, uint64_t req_id, int code, const char *text) {
    client_req *rp = client_req_find(c, req_id);
    if (rp == NULL) return false;
    client_req r;
    req_take(c, rp, &r);
    client_feed *fe = r.feed ? client_feed_get(c, r.feed) : NULL;
    if (r.type == PROTO_SUBSCRIBE) {
        if (fe) client_subscribe_refused(c, fe, code, text);
        return true;
    }
    if (fe && fe->cancelled) {
        /* Our own give-back refused: the node holds nothing. */
        client_feed_remove(c, r.feed);
    } else if (fe && fe->state == FEED_LEAVING) {
        /* Refused: the feed is still ours, so its records count again. */
        fe->state = FEED_BOUND;
    }
    subway_result res = { .feed = r.type == PROTO_UNSUBSCRIBE ? r.feed : 0 };
    req_reply(c, &r, code, text, &res);
    return true;
}

/* ============================================================= failing */

/* Fails every pending request with code. The table is detached first: a
 * callback that queues a new request finds the connection closed or
 * reconnecting and an empty table, so iteration here is never disturbed.
 * SUBSCRIBE entries are the feeds' business: their callbacks live there. */
void client_fail_requests(subway_client *c, int code, const char *errstr) {
    client_req *reqs = c->reqs;
    size_t head = c->req_head, len = c->req_len;
    c->reqs = NULL;
    c->req_head = c->req_len = c->req_cap = 0;
    c->pending = 0;
    for (size_t i = head; i < len; i++) {
        if (reqs[i].type == 0 || reqs[i].type == PROTO_SUBSCRIBE) continue;
        subway_result res = { .feed = reqs[i].type == PROTO_UNSUBSCRIBE ? reqs[i].feed : 0 };
        req_reply(c, &reqs[i], code, errstr, &res);
    }
    free(reqs);
}

void client_requests_free(subway_client *c) {
    free(c->reqs);
    c->reqs = NULL;
    c->req_head = c->req_len = c->req_cap = 0;
    c->pending = 0;
}
