/* client_frames.c -- libsubway's input side: frames decoded from the node and handed to the handshake, the request table or the user's callbacks. */
#include "client_int.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ============================================================== dispatch */

static int protocol_error(subway_client *c, const char *what, const proto_frame *f) {
    client_fail(c, SUBWAY_E_PROTOCOL, "protocol error: %s %s", what,
                proto_type_name(f->type));
    return -1;
}

static int on_welcome(subway_client *c, const proto_frame *f) {
    if (c->flags & F_WELCOMED) return protocol_error(c, "unexpected", f);
    if (f->version < PROTO_MIN_VERSION || f->version > PROTO_VERSION) {
        client_fail(c, SUBWAY_E_PROTOCOL, "protocol error: node speaks version %" PRIu64
                    ", this library %d to %d", f->version, PROTO_MIN_VERSION, PROTO_VERSION);
        return -1;
    }
    char *id = client_strdup(client_frame_text(c, f->name));
    if (id == NULL) {
        client_fail(c, SUBWAY_E_NOMEM, "out of memory");
        return -1;
    }
    c->node_id = id;
    c->version = f->version;
    c->heartbeat_ms = f->heartbeat_ms;
    c->node_max_frame = f->max_frame;
    c->token_expires_ms = f->expires_ms;
    c->flags |= F_WELCOMED | F_WAS_WELCOMED;
    /* Subscriptions first (their start depends on the version), then what
     * was held; a callback of either may close the client. */
    if (client_resubscribe(c) < 0 || client_release_held(c) < 0) return -1;
    if (c->cb.on_welcome) c->cb.on_welcome(c, c->cb.cb_data);
    return 0;
}

/* An ERROR answers a request (client_requests.c completes it) or speaks
 * for the connection (req_id 0), or names a request we no longer hold:
 * the last two go to on_error. */
static int on_error_frame(subway_client *c, const proto_frame *f) {
    const char *text = client_frame_text(c, f->text);
    int code = f->code > INT32_MAX ? INT32_MAX : (int)f->code;
    if (f->req_id && client_req_refused(c, f->req_id, code, text)) return 0;
    if (f->req_id == 0) {
        /* Usually the node closes right after; the EOF will name this. */
        c->flags |= F_CONN_ERROR;
        c->conn_err = code;
        snprintf(c->conn_errstr, sizeof(c->conn_errstr), "%s: %s", proto_err_name(f->code), text);
    }
    if (c->cb.on_error) c->cb.on_error(c, c->cb.cb_data, f->req_id, code, text);
    return 0;
}

/* The subscription a MESSAGE, DROPPED or LIVE names by its handle; NULL
 * for a handle no subscription has. *ignore is set for one being given up,
 * whose frames still on their way are dropped (PROTOCOL.md 5.4). */
static client_feed *frame_feed(subway_client *c, const proto_frame *f, bool *ignore) {
    client_feed *fe = client_feed_by_handle(c, f->feed);
    *ignore = fe && (fe->state == FEED_LEAVING || fe->cancelled);
    return fe;
}

static int on_message(subway_client *c, const proto_frame *f) {
    bool ignore;
    client_feed *fe = frame_feed(c, f, &ignore);
    if (ignore) return 0;
    /* Positions move even when nobody listens: a resume depends on them. */
    if (fe && !client_feed_record(c, fe, f->partition, f->offset)) return 0;
    if (c->cb.on_message == NULL) return 0;
    if (f->header_cnt > c->hdr_cap) {
        /* The codec caps the count, and the array is reused across frames. */
        subway_header *h = client_grow(c->hdrs, &c->hdr_cap, f->header_cnt, sizeof(*h));
        if (h == NULL) {
            client_fail(c, SUBWAY_E_NOMEM, "out of memory decoding MESSAGE headers");
            return -1;
        }
        c->hdrs = h;
    }
    for (size_t i = 0; i < f->header_cnt; i++)
        c->hdrs[i] = (subway_header){ f->headers[i].name.ptr, f->headers[i].name.len,
                                      f->headers[i].value.ptr, f->headers[i].value.len };
    subway_message m = {
        .feed = fe ? fe->id : 0,
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

/* LIVE: the subscription caught up; its positions are now complete. */
static int on_live(subway_client *c, const proto_frame *f) {
    bool ignore;
    client_feed *fe = frame_feed(c, f, &ignore);
    if (fe == NULL || ignore) return 0;
    if (client_feed_live(c, fe, f->positions, f->position_cnt) < 0) {
        /* A resume from incomplete positions could skip records: fail
         * rather than pretend (the library does not lose records silently). */
        client_fail(c, SUBWAY_E_NOMEM, "out of memory recording LIVE positions");
        return -1;
    }
    if (c->cb.on_live) c->cb.on_live(c, c->cb.cb_data, fe->id, fe->pos, fe->pos_cnt);
    return 0;
}

static int on_ping(subway_client *c, const proto_frame *f) {
    proto_frame pong = { .type = PROTO_PONG, .token = f->token };
    char errbuf[128];
    int code = client_out_frame(c, &pong, true, errbuf, sizeof(errbuf));
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
        return client_on_subscribed(c, f);
    case PROTO_UNSUBSCRIBED:
        return client_on_unsubscribed(c, f);
    case PROTO_PUBACK:
        return client_on_puback(c, f);
    case PROTO_MESSAGE:
        return on_message(c, f);
    case PROTO_PING:
        return on_ping(c, f);
    case PROTO_PONG:
        return 0;                    /* we never ping; tolerate an echo anyway */
    case PROTO_ERROR:
        return on_error_frame(c, f);
    case PROTO_DROPPED: {
        bool ignore;
        const client_feed *fe = frame_feed(c, f, &ignore);
        if (c->cb.on_dropped && !ignore)
            c->cb.on_dropped(c, c->cb.cb_data, fe ? fe->id : 0, f->count);
        return 0;
    }
    case PROTO_GOAWAY: {
        const char *text = client_frame_text(c, f->text);
        c->flags |= F_GOAWAY;
        snprintf(c->conn_errstr, sizeof(c->conn_errstr), "%s", text);
        if (c->cb.on_goaway) c->cb.on_goaway(c, c->cb.cb_data, text);
        return 0;
    }
    case PROTO_LIVE:
        return on_live(c, f);
    case PROTO_AUTHED:
        c->token_expires_ms = f->expires_ms;
        return 0;
    case PROTO_AUTH:
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
int client_decode_input(subway_client *c, int *frames) {
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
        /* After GOAWAY nothing more comes but the answers to what we
         * asked: once we have them all, hang up (and reconnect, when
         * asked to) instead of waiting for the node to close. */
        if ((c->flags & F_GOAWAY) && subway_pending(c) == 0) {
            client_fail(c, SUBWAY_E_GOAWAY, "node going away: %s", c->conn_errstr);
            rc = -1;
            break;
        }
    }
    /* Gone (closed, or lost and reconnecting): the buffer is no longer ours to trim. */
    if (c->state != STATE_CONNECTED || (c->flags & F_FREE)) return -1;
    if (pos > 0) {
        memmove(c->in, c->in + pos, c->in_len - pos);
        c->in_len -= pos;
    }
    return rc;
}
