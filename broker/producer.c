/* producer.c -- PUBLISH: the node's one Kafka producer, acknowledged after Kafka's delivery report. */
#include "broker/producer.h"

#include <librdkafka/rdkafka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "broker/conn.h"
#include "broker/kafka_bridge.h"
#include "broker/kafka_conf.h"
#include "broker/log.h"
#include "broker/names.h"
#include "broker/xmalloc.h"

/* One PUBLISH waiting for Kafka. Owned by librdkafka (as the message's
 * opaque) until its delivery report; linked into its connection's list
 * while the connection lives. */
struct pub_req {
    conn *c;                      /* NULL once the connection closed */
    uint64_t req_id;
    pub_req *prev, *next;
};

struct producer {
    broker *b;
    rd_kafka_t *rk;
    rd_kafka_queue_t *q;          /* the main queue: delivery reports */
    kafka_bridge *bridge;
};

static void pub_unlink(pub_req *r) {
    if (!r->c) return;
    if (r->prev)
        r->prev->next = r->next;
    else
        r->c->pubs = r->next;
    if (r->next) r->next->prev = r->prev;
    r->c->npubs--;
    r->c = NULL;
}

static void dr_msg_cb(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque) {
    pub_req *r = m->_private;
    if (!r) return;
    conn *c = r->c;
    pub_unlink(r);
    if (c) {
        conn_input_resume(c);     /* it may have waited for this ack */
        if (m->err) {
            proto_err code = m->err == RD_KAFKA_RESP_ERR__UNKNOWN_TOPIC || m->err == RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART
                                 ? PROTO_E_UNKNOWN_TOPIC
                                 : PROTO_E_KAFKA;
            conn_send_error(c, r->req_id, code, "publish to %s failed: %s", rd_kafka_topic_name(m->rkt),
                            rd_kafka_err2str(m->err));
        } else {
            proto_frame f = {.type = PROTO_PUBACK, .req_id = r->req_id, .partition = (uint32_t)m->partition,
                             .offset = (uint64_t)m->offset};
            conn_send(c, &f);
        }
    }
    free(r);
}

/* --demand-topic must exist: Kafka is asked once, at start, so a missing
 * topic stops the node with a clear message instead of every event being
 * dropped later (their delivery reports go nowhere). A Kafka that does not
 * answer in time is only warned about: it may come up after the node.
 * --dev creates topics on first use, so it is not asked. */
static int check_demand_topic(producer *p, const char *name, char *errstr, size_t errlen) {
    rd_kafka_topic_t *rkt = rd_kafka_topic_new(p->rk, name, NULL);
    if (!rkt) return 0;
    const struct rd_kafka_metadata *md = NULL;
    rd_kafka_resp_err_t e = rd_kafka_metadata(p->rk, 0, rkt, &md, 5000);
    if (!e && md->topic_cnt == 1) e = md->topics[0].err;
    if (md) rd_kafka_metadata_destroy(md);
    rd_kafka_topic_destroy(rkt);
    if (e == RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART || e == RD_KAFKA_RESP_ERR__UNKNOWN_TOPIC) {
        snprintf(errstr, errlen, "--demand-topic %s: Kafka (%s) has no such topic; create it first", name,
                 p->b->kafka_bootstrap);
        return -1;
    }
    if (e) log_warn("--demand-topic %s: cannot check that it exists: %s", name, rd_kafka_err2str(e));
    return 0;
}

static void serve_reports(void *cb_data) {
    producer *p = cb_data;
    /* Reports are only signalled when the queue turns non-empty: drain it. */
    while (rd_kafka_poll(p->rk, 0) > 0) {}
}

producer *producer_new(broker *b, char *errstr, size_t errlen) {
    producer *p = xcalloc(1, sizeof(*p));
    p->b = b;
    rd_kafka_conf_t *conf = kafka_conf_new(b, errstr, errlen);
    if (!conf) goto err;
    char timeout_ms[32];
    snprintf(timeout_ms, sizeof(timeout_ms), "%llu", (unsigned long long)b->cfg->publish_timeout_ms);
    /* murmur2_random is the Java client's partitioner, so keyed publishes
     * land where exact-key subscribers read; linger 1 ms keeps acks fast. */
    if (kafka_conf_set(conf, "partitioner", "murmur2_random", errstr, errlen) < 0 ||
        kafka_conf_set(conf, "linger.ms", "1", errstr, errlen) < 0 ||
        /* A PUBLISH Kafka cannot take is answered (ERROR KAFKA) within
         * this, not librdkafka's 5 minutes. */
        kafka_conf_set(conf, "message.timeout.ms", timeout_ms, errstr, errlen) < 0 ||
        kafka_conf_set(conf, "allow.auto.create.topics", b->cfg->dev ? "true" : "false", errstr, errlen) < 0 ||
        kafka_conf_set(conf, "topic.metadata.propagation.max.ms", "1000", errstr, errlen) < 0 ||
        kafka_conf_apply_user(b, conf, errstr, errlen) < 0) {
        rd_kafka_conf_destroy(conf);
        goto err;
    }
    rd_kafka_conf_set_dr_msg_cb(conf, dr_msg_cb);
    p->rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, errstr, errlen);
    if (!p->rk) {
        rd_kafka_conf_destroy(conf);
        goto err;
    }
    p->q = rd_kafka_queue_get_main(p->rk);
    if (!(p->bridge = kafka_bridge_new(b->base, p->q, serve_reports, p, errstr, errlen))) goto err;
    if (b->cfg->demand_topic && !b->cfg->dev && check_demand_topic(p, b->cfg->demand_topic, errstr, errlen) < 0)
        goto err;
    return p;
err:
    producer_free(p);
    return NULL;
}

void producer_free(producer *p) {
    if (!p) return;
    if (p->rk) {
        rd_kafka_flush(p->rk, 2000);
        /* Reports still queued carry pub_reqs: serve them, then the rest are
         * freed by the purge's reports. */
        rd_kafka_purge(p->rk, RD_KAFKA_PURGE_F_QUEUE | RD_KAFKA_PURGE_F_INFLIGHT);
        rd_kafka_poll(p->rk, 0);
        while (rd_kafka_poll(p->rk, 0) > 0) {}
    }
    kafka_bridge_free(p->bridge);
    if (p->q) rd_kafka_queue_destroy(p->q);
    if (p->rk) rd_kafka_destroy(p->rk);
    free(p);
}

int producer_publish(producer *p, conn *c, const proto_frame *f, proto_err *code, char *err, size_t errlen) {
    const config *cfg = p->b->cfg;
    if (!names_topic_ok(f->topic.ptr, f->topic.len)) {
        *code = PROTO_E_INVALID_ARG;
        snprintf(err, errlen, "topic must be " NAMES_TOPIC_RULE " (got %zu bytes)", f->topic.len);
        return -1;
    }
    if (f->key.ptr && f->key.len > cfg->max_key) {
        *code = PROTO_E_INVALID_ARG;
        snprintf(err, errlen, "key must be at most %llu bytes (got %zu)", (unsigned long long)cfg->max_key,
                 f->key.len);
        return -1;
    }
    char tname[NAMES_TOPIC_MAX + 1];
    memcpy(tname, f->topic.ptr, f->topic.len);
    tname[f->topic.len] = '\0';
    pub_req *r = xcalloc(1, sizeof(*r));
    r->req_id = f->req_id;
    rd_kafka_resp_err_t e = rd_kafka_producev(
        p->rk, RD_KAFKA_V_TOPIC(tname), RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
        RD_KAFKA_V_KEY((void *)f->key.ptr, f->key.ptr ? f->key.len : 0),
        RD_KAFKA_V_VALUE((void *)f->value.ptr, f->value.ptr ? f->value.len : 0), RD_KAFKA_V_OPAQUE(r),
        RD_KAFKA_V_END);
    if (e) {
        free(r);
        *code = e == RD_KAFKA_RESP_ERR__QUEUE_FULL ? PROTO_E_UNAVAILABLE : PROTO_E_KAFKA;
        snprintf(err, errlen, "publish to %s refused: %s", tname, rd_kafka_err2str(e));
        return -1;
    }
    r->c = c;
    r->next = c->pubs;
    if (c->pubs) c->pubs->prev = r;
    c->pubs = r;
    c->npubs++;
    return 0;
}

void producer_send(producer *p, const char *topic_name, const void *key, size_t key_len, const void *value,
                   size_t value_len) {
    rd_kafka_resp_err_t e = rd_kafka_producev(
        p->rk, RD_KAFKA_V_TOPIC(topic_name), RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
        RD_KAFKA_V_KEY((void *)key, key_len), RD_KAFKA_V_VALUE((void *)value, value_len), RD_KAFKA_V_END);
    if (e) log_warn("write to %s: %s", topic_name, rd_kafka_err2str(e));
}

void producer_detach(producer *p, conn *c) {
    while (c->pubs) pub_unlink(c->pubs);
}
