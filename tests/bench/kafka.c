/* kafka.c -- the bench's librdkafka producer (stamped records) and direct consumer (the alternative). */
#include "tests/bench/bench.h"

#include <librdkafka/rdkafka.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int conf_set(rd_kafka_conf_t *conf, const char *k, const char *v, char *errstr, size_t errlen) {
    if (rd_kafka_conf_set(conf, k, v, errstr, errlen) != RD_KAFKA_CONF_OK) return -1;
    return 0;
}

static void quiet_log(const rd_kafka_t *rk, int level, const char *fac, const char *buf) {
    if (level <= 3 || g_opts.verbose) fprintf(stderr, "bench: kafka %s: %s: %s\n", rd_kafka_name(rk), fac, buf);
}

/* --------------------------------------------------------------- topics */

/* Every partition of every named topic has a leader (0), or not yet (-1). */
static int topics_ready(rd_kafka_t *rk, const char *const *topics) {
    const struct rd_kafka_metadata *md;
    if (rd_kafka_metadata(rk, 1, NULL, &md, 5000) != RD_KAFKA_RESP_ERR_NO_ERROR) return -1;
    int ok = 1;
    for (int i = 0; topics[i] && ok; i++) {
        size_t nlen = strcspn(topics[i], ":");
        int want = atoi(topics[i] + nlen + (topics[i][nlen] == ':')), found = 0;
        for (int t = 0; t < md->topic_cnt; t++) {
            const rd_kafka_metadata_topic_t *mt = &md->topics[t];
            if (strlen(mt->topic) != nlen || strncmp(mt->topic, topics[i], nlen) != 0) continue;
            found = !mt->err && mt->partition_cnt == want;
            for (int p = 0; found && p < mt->partition_cnt; p++)
                if (mt->partitions[p].leader < 0) found = 0;
        }
        ok = found;
    }
    rd_kafka_metadata_destroy(md);
    return ok ? 0 : -1;
}

int kafka_create_topics(const char *bootstrap, const char *const *topics, const char *const *configs, char *errstr,
                        size_t errlen) {
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    if (conf_set(conf, "bootstrap.servers", bootstrap, errstr, errlen) < 0) {
        rd_kafka_conf_destroy(conf);
        return -1;
    }
    rd_kafka_conf_set_log_cb(conf, quiet_log);
    rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, errstr, errlen);
    if (!rk) {
        rd_kafka_conf_destroy(conf);
        return -1;
    }
    int n = 0, rc = -1;
    rd_kafka_NewTopic_t *nt[32];
    while (topics[n] && n < 32) {
        char name[256];
        size_t nlen = strcspn(topics[n], ":");
        snprintf(name, sizeof(name), "%.*s", (int)nlen, topics[n]);
        int parts = atoi(topics[n] + nlen + (topics[n][nlen] == ':'));
        nt[n] = rd_kafka_NewTopic_new(name, parts > 0 ? parts : 1, 1, errstr, errlen);
        if (!nt[n]) goto out;
        n++;
        for (int c = 0; configs && configs[c]; c++) {
            char kv[256];
            snprintf(kv, sizeof(kv), "%s", configs[c]);
            char *eq = strchr(kv, '=');
            if (eq) *eq = '\0';
            if (!eq || rd_kafka_NewTopic_set_config(nt[n - 1], kv, eq + 1) != RD_KAFKA_RESP_ERR_NO_ERROR) {
                snprintf(errstr, errlen, "topic config '%s' not taken", configs[c]);
                goto out;
            }
        }
    }
    rd_kafka_queue_t *q = rd_kafka_queue_new(rk);
    rd_kafka_CreateTopics(rk, nt, (size_t)n, NULL, q);
    rd_kafka_event_t *ev = rd_kafka_queue_poll(q, 30000);
    const rd_kafka_CreateTopics_result_t *res = ev ? rd_kafka_event_CreateTopics_result(ev) : NULL;
    if (!res) snprintf(errstr, errlen, "CreateTopics: %s", ev ? rd_kafka_event_error_string(ev) : "timed out");
    else {
        size_t cnt;
        const rd_kafka_topic_result_t **tr = rd_kafka_CreateTopics_result_topics(res, &cnt);
        rc = 0;
        for (size_t i = 0; i < cnt; i++)
            if (rd_kafka_topic_result_error(tr[i]) && rd_kafka_topic_result_error(tr[i]) != RD_KAFKA_RESP_ERR_TOPIC_ALREADY_EXISTS) {
                snprintf(errstr, errlen, "create topic %s: %s", rd_kafka_topic_result_name(tr[i]),
                         rd_kafka_topic_result_error_string(tr[i]));
                rc = -1;
            }
    }
    if (ev) rd_kafka_event_destroy(ev);
    rd_kafka_queue_destroy(q);
    /* Created is not yet led: wait for every partition's leader. */
    for (double deadline = now_s() + 30; rc == 0 && topics_ready(rk, topics) < 0; sleep_s(0.1))
        if (now_s() > deadline) {
            snprintf(errstr, errlen, "topics created but without leaders after 30 s");
            rc = -1;
        }
out:
    for (int i = 0; i < n; i++) rd_kafka_NewTopic_destroy(nt[i]);
    rd_kafka_destroy(rk);
    return rc;
}

/* ------------------------------------------------------------- producer */

struct kprod {
    rd_kafka_t *rk;
    rd_kafka_topic_t *rkt;
    _Atomic uint64_t sent;
    _Atomic uint64_t acked;
    _Atomic uint64_t failed;
    char *value;                  /* g_opts.value_len bytes, stamped per record */
};

static void dr_cb(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque) {
    kprod *p = opaque;
    if (m->err) atomic_fetch_add(&p->failed, 1);
    else atomic_fetch_add(&p->acked, 1);
}

kprod *kprod_new(const char *bootstrap, const char *topic, const char *linger_ms, char *errstr, size_t errlen) {
    kprod *p = calloc(1, sizeof(*p));
    if (!p || !(p->value = calloc(1, (size_t)g_opts.value_len))) {
        free(p);
        snprintf(errstr, errlen, "out of memory");
        return NULL;
    }
    for (int i = 8; i < g_opts.value_len; i++) p->value[i] = (char)('a' + i % 26);
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    if (conf_set(conf, "bootstrap.servers", bootstrap, errstr, errlen) < 0 ||
        conf_set(conf, "partitioner", "murmur2_random", errstr, errlen) < 0 ||
        conf_set(conf, "linger.ms", linger_ms, errstr, errlen) < 0 ||
        conf_set(conf, "batch.num.messages", "10000", errstr, errlen) < 0 ||
        conf_set(conf, "queue.buffering.max.messages", "1000000", errstr, errlen) < 0 ||
        conf_set(conf, "queue.buffering.max.kbytes", "1048576", errstr, errlen) < 0 ||
        conf_set(conf, "acks", "1", errstr, errlen) < 0 ||
        conf_set(conf, "client.id", "subway-bench-producer", errstr, errlen) < 0) {
        rd_kafka_conf_destroy(conf);
        kprod_free(p);
        return NULL;
    }
    rd_kafka_conf_set_dr_msg_cb(conf, dr_cb);
    rd_kafka_conf_set_opaque(conf, p);
    rd_kafka_conf_set_log_cb(conf, quiet_log);
    p->rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, errstr, errlen);
    if (!p->rk) {
        rd_kafka_conf_destroy(conf);
        kprod_free(p);
        return NULL;
    }
    p->rkt = rd_kafka_topic_new(p->rk, topic, NULL);
    if (!p->rkt) {
        snprintf(errstr, errlen, "topic %s: %s", topic, rd_kafka_err2str(rd_kafka_last_error()));
        kprod_free(p);
        return NULL;
    }
    return p;
}

int kprod_send(kprod *p, const void *key, size_t key_len, int32_t partition) {
    double give_up = 0;
    for (;;) {
        uint64_t ts = wall_ns();
        memcpy(p->value, &ts, 8);
        if (rd_kafka_produce(p->rkt, partition < 0 ? RD_KAFKA_PARTITION_UA : partition, RD_KAFKA_MSG_F_COPY,
                             p->value, (size_t)g_opts.value_len, key, key_len, NULL) == 0) {
            atomic_fetch_add(&p->sent, 1);
            return 0;
        }
        if (rd_kafka_last_error() != RD_KAFKA_RESP_ERR__QUEUE_FULL) return -1;
        if (give_up == 0) give_up = now_s() + 1.0;
        else if (now_s() > give_up) return -1;
        rd_kafka_poll(p->rk, 1);
    }
}

void kprod_poll(kprod *p) {
    rd_kafka_poll(p->rk, 0);
}

int kprod_watermarks(kprod *p, int32_t partition, int64_t *lo, int64_t *hi) {
    return rd_kafka_query_watermark_offsets(p->rk, rd_kafka_topic_name(p->rkt), partition, lo, hi, 5000) ==
                   RD_KAFKA_RESP_ERR_NO_ERROR
               ? 0
               : -1;
}

int kprod_flush(kprod *p, double timeout_s) {
    return rd_kafka_flush(p->rk, (int)(timeout_s * 1000)) == RD_KAFKA_RESP_ERR_NO_ERROR ? 0 : -1;
}

uint64_t kprod_sent(const kprod *p) { return atomic_load(&p->sent); }
uint64_t kprod_acked(const kprod *p) { return atomic_load(&p->acked); }
uint64_t kprod_failed(const kprod *p) { return atomic_load(&p->failed); }

void kprod_free(kprod *p) {
    if (!p) return;
    if (p->rk) rd_kafka_flush(p->rk, 2000);
    if (p->rkt) rd_kafka_topic_destroy(p->rkt);
    if (p->rk) rd_kafka_destroy(p->rk);
    free(p->value);
    free(p);
}

/* ------------------------------------------------------ direct consumer */

struct kcons {
    rd_kafka_t *rk;
    pthread_t th;
    _Atomic int stop;
    _Atomic uint64_t records;
    _Atomic uint64_t bytes;
    pthread_mutex_t lock;         /* guards h and the window */
    hist h;
    uint64_t win_from, win_to;    /* production stamps that count; from 0: all */
    uint64_t win_records;         /* records received stamped in the window */
};

static void *kcons_main(void *arg) {
    kcons *c = arg;
    while (!atomic_load(&c->stop)) {
        rd_kafka_message_t *m = rd_kafka_consumer_poll(c->rk, 100);
        if (!m) continue;
        if (!m->err) {
            uint64_t now = wall_ns(), ts = 0;
            if (m->len >= 8) memcpy(&ts, m->payload, 8);
            pthread_mutex_lock(&c->lock);
            if (ts > 0 && ts >= c->win_from && ts < c->win_to) {
                c->win_records++;
                if (now >= ts) hist_add(&c->h, now - ts);
            }
            pthread_mutex_unlock(&c->lock);
            atomic_fetch_add(&c->records, 1);
            atomic_fetch_add(&c->bytes, m->len + m->key_len);
        }
        rd_kafka_message_destroy(m);
    }
    return NULL;
}

kcons *kcons_start(const char *bootstrap, const char *topic, int nparts, int fetch_wait_ms, char *errstr,
                   size_t errlen) {
    kcons *c = calloc(1, sizeof(*c));
    char wait[32], group[64];
    if (!c) {
        snprintf(errstr, errlen, "out of memory");
        return NULL;
    }
    pthread_mutex_init(&c->lock, NULL);
    hist_reset(&c->h);
    c->win_to = UINT64_MAX;
    snprintf(wait, sizeof(wait), "%d", fetch_wait_ms);
    snprintf(group, sizeof(group), "subway-bench-direct-%d", svc_free_port());
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    if (conf_set(conf, "bootstrap.servers", bootstrap, errstr, errlen) < 0 ||
        conf_set(conf, "group.id", group, errstr, errlen) < 0 ||
        conf_set(conf, "enable.auto.commit", "false", errstr, errlen) < 0 ||
        conf_set(conf, "enable.partition.eof", "false", errstr, errlen) < 0 ||
        conf_set(conf, "fetch.wait.max.ms", wait, errstr, errlen) < 0 ||
        conf_set(conf, "fetch.min.bytes", "1", errstr, errlen) < 0 ||
        conf_set(conf, "client.id", "subway-bench-direct", errstr, errlen) < 0) {
        rd_kafka_conf_destroy(conf);
        free(c);
        return NULL;
    }
    rd_kafka_conf_set_log_cb(conf, quiet_log);
    c->rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, errstr, errlen);
    if (!c->rk) {
        rd_kafka_conf_destroy(conf);
        free(c);
        return NULL;
    }
    rd_kafka_poll_set_consumer(c->rk);
    /* At the log end, looked up first so no record after this call is missed. */
    rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(nparts);
    for (int p = 0; p < nparts; p++) {
        int64_t lo = 0, hi = 0;
        rd_kafka_resp_err_t e;
        /* A topic created an instant ago: its leader may not know it yet. */
        for (double give_up = now_s() + 10;; sleep_s(0.1)) {
            e = rd_kafka_query_watermark_offsets(c->rk, topic, p, &lo, &hi, 5000);
            if ((e != RD_KAFKA_RESP_ERR_NOT_LEADER_FOR_PARTITION && e != RD_KAFKA_RESP_ERR_LEADER_NOT_AVAILABLE &&
                 e != RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART) || now_s() > give_up)
                break;
        }
        if (e) {
            snprintf(errstr, errlen, "watermarks of %s/%d: %s", topic, p, rd_kafka_err2str(e));
            rd_kafka_topic_partition_list_destroy(l);
            rd_kafka_destroy(c->rk);
            free(c);
            return NULL;
        }
        rd_kafka_topic_partition_list_add(l, topic, p)->offset = hi;
    }
    rd_kafka_assign(c->rk, l);
    rd_kafka_topic_partition_list_destroy(l);
    if (pthread_create(&c->th, NULL, kcons_main, c) != 0) {
        snprintf(errstr, errlen, "cannot start the consumer thread");
        rd_kafka_destroy(c->rk);
        free(c);
        return NULL;
    }
    return c;
}

uint64_t kcons_records(kcons *c) { return atomic_load(&c->records); }
uint64_t kcons_bytes(kcons *c) { return atomic_load(&c->bytes); }

void kcons_take_hist(kcons *c, hist *out) {
    pthread_mutex_lock(&c->lock);
    *out = c->h;
    hist_reset(&c->h);
    pthread_mutex_unlock(&c->lock);
}

void kcons_window(kcons *c, uint64_t from_ns, uint64_t to_ns) {
    pthread_mutex_lock(&c->lock);
    hist_reset(&c->h);
    c->win_from = from_ns;
    c->win_to = to_ns;
    c->win_records = 0;
    pthread_mutex_unlock(&c->lock);
}

void kcons_window_until(kcons *c, uint64_t to_ns) {
    pthread_mutex_lock(&c->lock);
    c->win_to = to_ns;
    pthread_mutex_unlock(&c->lock);
}

uint64_t kcons_windowed(kcons *c) {
    pthread_mutex_lock(&c->lock);
    uint64_t n = c->win_records;
    pthread_mutex_unlock(&c->lock);
    return n;
}

void kcons_stop(kcons *c) {
    if (!c) return;
    atomic_store(&c->stop, 1);
    pthread_join(c->th, NULL);
    rd_kafka_assign(c->rk, NULL);
    rd_kafka_consumer_close(c->rk);
    rd_kafka_destroy(c->rk);
    pthread_mutex_destroy(&c->lock);
    free(c);
}
