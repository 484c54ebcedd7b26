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

/* ============================================================== issuing */

/* Refuses a request that was never recorded: calls cb once with code and
 * text (feed: UNSUBSCRIBE's, else 0). Returns -1. */
static int64_t refuse(subway_client *c, proto_type type, uint64_t feed, int code,
                      const char *text, subway_reply_cb *cb, void *cb_data) {
    subway_result res = { .type = (subway_req_type)type, .feed = feed };
    if (cb) cb(c, cb_data, code, text, &res);
    return -1;
}

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
        code = client_out_frame(c, f, false, errbuf, sizeof(errbuf));
        if (code != 0) {
            /* Unrecord it: the slot is the last one, nothing refers to it. */
            c->req_len--;
            c->pending--;
        }
    }
    if (code != 0) {
        free(topic_copy);
        return refuse(c, f->type, feed, code, errbuf, cb, cb_data);
    }
    *r = (client_req){ .req_id = c->next_req_id++, .type = f->type, .cb = cb,
                       .cb_data = cb_data, .feed = feed, .topic = topic_copy };
    return (int64_t)r->req_id;
}

int64_t subway_subscribe(subway_client *c, const char *topic, const char *key, size_t key_len,
                         subway_reply_cb *cb, void *cb_data) {
    client_enter(c);
    int64_t id;
    if (topic == NULL || topic[0] == '\0') {
        id = refuse(c, PROTO_SUBSCRIBE, 0, SUBWAY_E_ARG, "topic is NULL or empty", cb, cb_data);
    } else {
        proto_frame f = { .type = PROTO_SUBSCRIBE, .topic = { topic, strlen(topic) },
                          .key = { key, key ? key_len : 0 } };
        id = request(c, &f, client_strdup(topic), 0, cb, cb_data);
    }
    return client_leave(c, 0) < 0 ? -1 : id;
}

int64_t subway_unsubscribe(subway_client *c, uint64_t feed, subway_reply_cb *cb, void *cb_data) {
    client_enter(c);
    proto_frame f = { .type = PROTO_UNSUBSCRIBE, .feed = feed };
    int64_t id = request(c, &f, NULL, feed, cb, cb_data);
    client_feed *fe = id > 0 ? client_feed_find(c, feed) : NULL;
    if (fe) fe->leaving = true;
    return client_leave(c, 0) < 0 ? -1 : id;
}

int64_t subway_publish(subway_client *c, const char *topic, const char *key, size_t key_len,
                       const char *value, size_t value_len, subway_reply_cb *cb, void *cb_data) {
    client_enter(c);
    int64_t id;
    if (topic == NULL || topic[0] == '\0') {
        id = refuse(c, PROTO_PUBLISH, 0, SUBWAY_E_ARG, "topic is NULL or empty", cb, cb_data);
    } else {
        proto_frame f = { .type = PROTO_PUBLISH, .topic = { topic, strlen(topic) },
                          .key = { key, key ? key_len : 0 },
                          .value = { value, value ? value_len : 0 } };
        id = request(c, &f, NULL, 0, cb, cb_data);
    }
    return client_leave(c, 0) < 0 ? -1 : id;
}

size_t subway_pending(const subway_client *c) {
    return c->pending;
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

int client_on_subscribed(subway_client *c, const proto_frame *f) {
    client_req r;
    if (take_reply(c, f, PROTO_SUBSCRIBE, &r) < 0) return -1;
    subway_result res = { .feed = f->feed, .partitions = f->partitions,
                          .partition_cnt = f->partition_cnt };
    client_feed *fe = client_feed_add(c, f->feed, r.topic, f->partitions, f->partition_cnt);
    if (fe == NULL) {
        /* The node holds the feed now but we cannot name its records. */
        req_reply(c, &r, SUBWAY_E_NOMEM, "out of memory recording the feed", &res);
        return 0;
    }
    res.partitions = fe->partitions;
    req_reply(c, &r, 0, "", &res);
    return 0;
}

int client_on_unsubscribed(subway_client *c, const proto_frame *f) {
    client_req r;
    if (take_reply(c, f, PROTO_UNSUBSCRIBE, &r) < 0) return -1;
    client_feed_remove(c, f->feed);
    subway_result res = { .feed = f->feed };
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

bool client_req_refused(subway_client *c, uint64_t req_id, int code, const char *text) {
    client_req *rp = client_req_find(c, req_id);
    if (rp == NULL) return false;
    client_req r;
    req_take(c, rp, &r);
    subway_result res = { .feed = r.type == PROTO_UNSUBSCRIBE ? r.feed : 0 };
    if (r.type == PROTO_UNSUBSCRIBE) {
        /* Refused: the feed is still ours, so its records count again. */
        client_feed *fe = client_feed_find(c, r.feed);
        if (fe) fe->leaving = false;
    }
    free(r.topic);
    req_reply(c, &r, code, text, &res);
    return true;
}

/* ============================================================= failing */

/* Fails every pending request with SUBWAY_E_CLOSED. The table is detached
 * first: a callback that queues a new request finds the connection closed
 * and an empty table, so iteration here is never disturbed. */
void client_fail_requests(subway_client *c) {
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

void client_requests_free(subway_client *c) {
    for (size_t i = c->req_head; i < c->req_len; i++) free(c->reqs[i].topic);
    free(c->reqs);
    c->reqs = NULL;
    c->req_head = c->req_len = c->req_cap = 0;
    c->pending = 0;
}
