/* upstream.c -- the node's one Kafka consumer: hand-assigned partitions, metadata lookups, record dispatch. */
#include "broker/upstream.h"

#include <errno.h>
#include <event2/event.h>
#include <fcntl.h>
#include <librdkafka/rdkafka.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <hiredis/hiredis.h>

#include "broker/dev.h"
#include "broker/feed.h"
#include "broker/kafka_conf.h"
#include "broker/log.h"

#define UPSTREAM_BATCH 1024       /* records taken from the queue per call */
#define UPSTREAM_MAX_HEADERS 64   /* headers beyond this are not forwarded */
#define LOOKUP_TIMEOUT_MS 5000
#define LOOKUP_BACKOFF_MS 50      /* first wait before retrying a lookup; doubles up to 1 s */

/* A lookup the loop cannot do without blocking (metadata, offsets): done by
 * the lookup thread, answered back through a pipe. */
typedef enum job_kind { JOB_TOPIC, JOB_START, JOB_DELETE, JOB_RESET } job_kind;

typedef struct job {
    struct job *next;
    job_kind kind;
    char topic[256];
    int32_t partition;
    /* answer */
    int32_t partition_cnt;        /* JOB_TOPIC */
    int64_t offset;               /* JOB_START: log end; JOB_RESET: in: the position lost, out: where to resume */
    int64_t lost;                 /* JOB_RESET: records gone before they were read */
    int64_t from;                 /* JOB_RESET: the position lost */
    uint32_t gen;                 /* JOB_RESET: the partition's assignment then (feed_partition_gen) */
    proto_err code;
    char errstr[512];             /* empty when fine */
} job;

struct upstream {
    broker *b;
    rd_kafka_t *rk;
    rd_kafka_queue_t *q;
    int kafka_pipe[2];            /* librdkafka signals records here */
    struct event *kafka_ev;
    int answer_pipe[2];           /* the lookup thread writes job pointers here */
    struct event *answer_ev;
    pthread_t thread;
    int thread_started;
    pthread_mutex_t lock;
    pthread_cond_t cond;
    job *jobs_head, *jobs_tail;   /* under lock */
    int stopping;                 /* under lock */
    rd_kafka_message_t *batch[UPSTREAM_BATCH];
    proto_header headers[UPSTREAM_MAX_HEADERS];
};

/* ------------------------------------------------------- lookup thread */

/* Runs one Admin API request (CreateTopics / DeleteTopics) on the lookup
 * thread and waits for its result. Returns the topic's error code. */
static rd_kafka_resp_err_t admin_topic(upstream *u, const char *topic_name, int create, char *errstr, size_t errlen) {
    const config *cfg = u->b->cfg;
    rd_kafka_queue_t *q = rd_kafka_queue_new(u->rk);
    rd_kafka_AdminOptions_t *opt = rd_kafka_AdminOptions_new(u->rk, RD_KAFKA_ADMIN_OP_ANY);
    rd_kafka_AdminOptions_set_request_timeout(opt, LOOKUP_TIMEOUT_MS, NULL, 0);
    rd_kafka_NewTopic_t *nt = NULL;
    rd_kafka_DeleteTopic_t *dt = NULL;
    if (create) {
        nt = rd_kafka_NewTopic_new(topic_name, (int)cfg->free_topic_partitions, (int)cfg->free_topic_replication,
                                   errstr, errlen);
        if (!nt) {
            rd_kafka_AdminOptions_destroy(opt);
            rd_kafka_queue_destroy(q);
            return RD_KAFKA_RESP_ERR__INVALID_ARG;
        }
        rd_kafka_CreateTopics(u->rk, &nt, 1, opt, q);
    } else {
        dt = rd_kafka_DeleteTopic_new(topic_name);
        rd_kafka_DeleteTopics(u->rk, &dt, 1, opt, q);
    }
    rd_kafka_resp_err_t e = RD_KAFKA_RESP_ERR__TIMED_OUT;
    snprintf(errstr, errlen, "no answer from Kafka");
    rd_kafka_event_t *ev = rd_kafka_queue_poll(q, LOOKUP_TIMEOUT_MS + 1000);
    if (ev) {
        e = rd_kafka_event_error(ev);
        if (e) {
            snprintf(errstr, errlen, "%s", rd_kafka_event_error_string(ev));
        } else {
            size_t n = 0;
            const rd_kafka_topic_result_t **res =
                create ? rd_kafka_CreateTopics_result_topics(rd_kafka_event_CreateTopics_result(ev), &n)
                       : rd_kafka_DeleteTopics_result_topics(rd_kafka_event_DeleteTopics_result(ev), &n);
            if (n > 0) {
                e = rd_kafka_topic_result_error(res[0]);
                const char *es = rd_kafka_topic_result_error_string(res[0]);
                snprintf(errstr, errlen, "%s", es ? es : rd_kafka_err2str(e));
            }
        }
        rd_kafka_event_destroy(ev);
    }
    if (nt) rd_kafka_NewTopic_destroy(nt);
    if (dt) rd_kafka_DeleteTopic_destroy(dt);
    rd_kafka_AdminOptions_destroy(opt);
    rd_kafka_queue_destroy(q);
    return e;
}

/* Lists every topic (which never creates one) and finds ours. */
static rd_kafka_resp_err_t find_topic(upstream *u, const char *topic_name, const struct rd_kafka_metadata **md,
                                      const struct rd_kafka_metadata_topic **mt) {
    *md = NULL;
    *mt = NULL;
    rd_kafka_resp_err_t e = rd_kafka_metadata(u->rk, 1, NULL, md, LOOKUP_TIMEOUT_MS);
    for (int i = 0; !e && i < (*md)->topic_cnt; i++)
        if (strcmp((*md)->topics[i].topic, topic_name) == 0) *mt = &(*md)->topics[i];
    return e;
}

static void job_topic(upstream *u, job *j) {
    if (u->b->dev) dev_kafka_ensure_topic(u->b->dev, j->topic);
    /* A request naming the topic may create it on brokers (and librdkafka's
     * mock) that auto-create topics; listing every topic never does. */
    const struct rd_kafka_metadata *md = NULL;
    const struct rd_kafka_metadata_topic *mt = NULL;
    rd_kafka_resp_err_t e = find_topic(u, j->topic, &md, &mt);
    if (!e && !mt && config_is_free_topic(u->b->cfg, j->topic)) {
        char why[256];
        rd_kafka_resp_err_t ce = admin_topic(u, j->topic, 1, why, sizeof(why));
        if (ce && ce != RD_KAFKA_RESP_ERR_TOPIC_ALREADY_EXISTS) {
            j->code = PROTO_E_KAFKA;
            snprintf(j->errstr, sizeof(j->errstr), "creating free topic %.249s: %.200s", j->topic, why);
            rd_kafka_metadata_destroy(md);
            return;
        }
        if (!ce) log_info("created free topic %s", j->topic);
        /* Metadata catches up with a new topic shortly: wait for it. */
        for (int i = 0; i < 50 && !e && (!mt || mt->err || mt->partition_cnt == 0); i++) {
            rd_kafka_metadata_destroy(md);
            struct timespec ts = {0, 100 * 1000000};
            nanosleep(&ts, NULL);   /* the lookup thread, never the loop */
            e = find_topic(u, j->topic, &md, &mt);
        }
    }
    if (!e && (!mt || mt->err == RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART)) {
        j->code = PROTO_E_UNKNOWN_TOPIC;
        snprintf(j->errstr, sizeof(j->errstr), "topic '%s' does not exist", j->topic);
    } else if (e || mt->err) {
        rd_kafka_resp_err_t te = e ? e : mt->err;
        j->code = te == RD_KAFKA_RESP_ERR__TIMED_OUT || te == RD_KAFKA_RESP_ERR_LEADER_NOT_AVAILABLE ||
                          te == RD_KAFKA_RESP_ERR__TRANSPORT
                      ? PROTO_E_UNAVAILABLE
                      : PROTO_E_KAFKA;
        snprintf(j->errstr, sizeof(j->errstr), "metadata for topic '%s': %s", j->topic, rd_kafka_err2str(te));
    } else {
        j->partition_cnt = mt->partition_cnt;
    }
    if (md) rd_kafka_metadata_destroy(md);
}

/* 1 when some node holds a feed of the topic (cluster mode: any
 * subway:feed:{topic/...}:count key exists), 0 when none, -1 on error. */
static int topic_in_use_cluster(upstream *u, const char *topic_name) {
    const config *cfg = u->b->cfg;
    const char *colon = strrchr(cfg->redis, ':');
    char host[256];
    snprintf(host, sizeof(host), "%.*s", (int)(colon - cfg->redis), cfg->redis);
    struct timeval tv = {2, 0};
    redisContext *rc = redisConnectWithTimeout(host, atoi(colon + 1), tv);
    if (!rc || rc->err) {
        if (rc) redisFree(rc);
        return -1;
    }
    int used = -1;
    redisReply *r;
    if (cfg->redis_password) {
        r = redisCommand(rc, "AUTH %s", cfg->redis_password);
        if (!r || r->type == REDIS_REPLY_ERROR) goto out;
        freeReplyObject(r);
    }
    char pattern[300];
    snprintf(pattern, sizeof(pattern), "subway:feed:{%s/*}:count", topic_name);
    char cursor[32] = "0";
    used = 0;
    do {
        r = redisCommand(rc, "SCAN %s MATCH %s COUNT 1000", cursor, pattern);
        if (!r || r->type != REDIS_REPLY_ARRAY || r->elements != 2) {
            used = -1;
            break;
        }
        snprintf(cursor, sizeof(cursor), "%s", r->element[0]->str);
        if (r->element[1]->elements > 0) used = 1;
        freeReplyObject(r);
        r = NULL;
    } while (!used && strcmp(cursor, "0") != 0);
out:
    if (r) freeReplyObject(r);
    redisFree(rc);
    return used;
}

static void job_delete(upstream *u, job *j) {
    if (u->b->cfg->redis) {
        int used = topic_in_use_cluster(u, j->topic);
        if (used != 0) {
            log_info("free topic %s: %s; not deleted", j->topic, used > 0 ? "in use on another node" : "cannot ask Redis");
            return;
        }
    }
    char why[256];
    rd_kafka_resp_err_t e = admin_topic(u, j->topic, 0, why, sizeof(why));
    if (!e)
        log_info("deleted free topic %s", j->topic);
    else if (e != RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART)
        log_warn("deleting free topic %s: %s", j->topic, why);
}

/* Errors a partition has for a moment and then not: its leadership is
 * moving (election, broker restart) or it was created an instant ago and
 * its leader does not know it yet. */
static int lookup_retriable(rd_kafka_resp_err_t e) {
    switch (e) {
    case RD_KAFKA_RESP_ERR_NOT_LEADER_FOR_PARTITION:
    case RD_KAFKA_RESP_ERR_LEADER_NOT_AVAILABLE:
    case RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART:
    case RD_KAFKA_RESP_ERR_FENCED_LEADER_EPOCH:
    case RD_KAFKA_RESP_ERR_UNKNOWN_LEADER_EPOCH:
    case RD_KAFKA_RESP_ERR_OFFSET_NOT_AVAILABLE:
    case RD_KAFKA_RESP_ERR_REQUEST_TIMED_OUT:
    case RD_KAFKA_RESP_ERR__TRANSPORT:
        return 1;
    default:
        return 0;
    }
}

/* rd_kafka_query_watermark_offsets(), which gives up at the first error,
 * retried over such moments for up to LOOKUP_TIMEOUT_MS in all. */
static rd_kafka_resp_err_t watermarks(upstream *u, const char *tname, int32_t partition, int64_t *lo,
                                      int64_t *hi) {
    uint64_t deadline = broker_now_ms() + LOOKUP_TIMEOUT_MS;
    for (uint64_t backoff = LOOKUP_BACKOFF_MS;; backoff = backoff * 2 < 1000 ? backoff * 2 : 1000) {
        uint64_t now = broker_now_ms();
        int wait_ms = (int)(deadline > now ? deadline - now : 1);
        rd_kafka_resp_err_t e = rd_kafka_query_watermark_offsets(u->rk, tname, partition, lo, hi, wait_ms);
        if (!e || !lookup_retriable(e) || broker_now_ms() + backoff >= deadline) return e;
        log_debug("offsets of %s/%d: %s; retrying in %llu ms", tname, (int)partition, rd_kafka_err2str(e),
                  (unsigned long long)backoff);
        struct timespec ts = {(time_t)(backoff / 1000), (long)(backoff % 1000) * 1000000L};
        nanosleep(&ts, NULL);
    }
}

/* The fetch position j->offset fell outside the partition's log (records
 * deleted by retention or DeleteRecords before they were read, or a log cut
 * short by an unclean leader election): resume at the nearest offset the log
 * still has, and count what went missing in between. */
static void job_reset(upstream *u, job *j) {
    int64_t lo, hi;
    rd_kafka_resp_err_t e = watermarks(u, j->topic, j->partition, &lo, &hi);
    if (e) {
        snprintf(j->errstr, sizeof(j->errstr), "watermarks: %s", rd_kafka_err2str(e));
        j->offset = RD_KAFKA_OFFSET_END;
        return;
    }
    if (j->offset < lo) {
        j->lost = lo - j->offset;
        j->offset = lo;
    } else if (j->offset > hi) {
        j->offset = hi;           /* the log was cut short: new records reuse these offsets */
    }
}

static void job_start(upstream *u, job *j) {
    int64_t lo, hi;
    rd_kafka_resp_err_t e = watermarks(u, j->topic, j->partition, &lo, &hi);
    if (e)
        snprintf(j->errstr, sizeof(j->errstr), "log end offset: %s", rd_kafka_err2str(e));
    else
        j->offset = hi;
}

static void *lookup_thread(void *arg) {
    upstream *u = arg;
    for (;;) {
        pthread_mutex_lock(&u->lock);
        while (!u->jobs_head && !u->stopping) pthread_cond_wait(&u->cond, &u->lock);
        if (u->stopping) {
            pthread_mutex_unlock(&u->lock);
            return NULL;
        }
        job *j = u->jobs_head;
        u->jobs_head = j->next;
        if (!u->jobs_head) u->jobs_tail = NULL;
        pthread_mutex_unlock(&u->lock);
        if (j->kind == JOB_TOPIC)
            job_topic(u, j);
        else if (j->kind == JOB_START)
            job_start(u, j);
        else if (j->kind == JOB_RESET)
            job_reset(u, j);
        else
            job_delete(u, j);
        /* A pointer is written atomically to a pipe (< PIPE_BUF). */
        if (write(u->answer_pipe[1], &j, sizeof(j)) != sizeof(j)) {
            log_error("lookup thread: cannot answer: %s", strerror(errno));
            free(j);
        }
    }
}

static job *job_new(job_kind kind, const char *topic_name, int32_t partition) {
    job *j = calloc(1, sizeof(*j));
    if (!j) {
        log_error("out of memory");
        abort();
    }
    j->kind = kind;
    snprintf(j->topic, sizeof(j->topic), "%s", topic_name);
    j->partition = partition;
    return j;
}

static void job_push(upstream *u, job *j) {
    pthread_mutex_lock(&u->lock);
    if (u->jobs_tail)
        u->jobs_tail->next = j;
    else
        u->jobs_head = j;
    u->jobs_tail = j;
    pthread_cond_signal(&u->cond);
    pthread_mutex_unlock(&u->lock);
}

static void job_submit(upstream *u, job_kind kind, const char *topic_name, int32_t partition) {
    job_push(u, job_new(kind, topic_name, partition));
}

static void answer_cb(evutil_socket_t fd, short what, void *arg) {
    upstream *u = arg;
    job *j;
    while (read(fd, &j, sizeof(j)) == sizeof(j)) {
        if (j->kind == JOB_TOPIC)
            feed_on_topic_resolved(u->b->feeds, j->topic, j->partition_cnt, j->code, j->errstr[0] ? j->errstr : NULL);
        else if (j->kind == JOB_START)
            feed_on_partition_start(u->b->feeds, j->topic, j->partition, j->offset, j->errstr[0] ? j->errstr : NULL);
        else if (j->kind == JOB_RESET)
            feed_on_partition_reset(u->b->feeds, j->topic, j->partition, j->gen, j->from, j->offset, j->lost);
        free(j);
    }
}

void upstream_resolve_topic(upstream *u, const char *topic_name) {
    job_submit(u, JOB_TOPIC, topic_name, -1);
}

void upstream_delete_free_topic(upstream *u, const char *topic_name) {
    job_submit(u, JOB_DELETE, topic_name, -1);
}

void upstream_query_start(upstream *u, const char *topic_name, int32_t partition) {
    job_submit(u, JOB_START, topic_name, partition);
}

/* ------------------------------------------------------------ assignment */

static int assign_change(upstream *u, const char *topic_name, int32_t partition, int64_t offset, int add) {
    rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(1);
    rd_kafka_topic_partition_list_add(l, topic_name, partition)->offset = offset;
    rd_kafka_error_t *e = add ? rd_kafka_incremental_assign(u->rk, l) : rd_kafka_incremental_unassign(u->rk, l);
    rd_kafka_topic_partition_list_destroy(l);
    if (e) {
        log_error("%s %s/%d: %s", add ? "assign" : "unassign", topic_name, (int)partition, rd_kafka_error_string(e));
        rd_kafka_error_destroy(e);
        return -1;
    }
    log_debug("%s %s/%d%s", add ? "fetching" : "released", topic_name, (int)partition, add ? " from the log end" : "");
    return 0;
}

int upstream_assign(upstream *u, const char *topic_name, int32_t partition, int64_t offset) {
    return assign_change(u, topic_name, partition, offset, 1);
}

int upstream_unassign(upstream *u, const char *topic_name, int32_t partition) {
    return assign_change(u, topic_name, partition, RD_KAFKA_OFFSET_INVALID, 0);
}

/* -------------------------------------------------------------- records */

static size_t message_headers(upstream *u, rd_kafka_message_t *m) {
    rd_kafka_headers_t *hdrs;
    if (rd_kafka_message_headers(m, &hdrs) != RD_KAFKA_RESP_ERR_NO_ERROR) return 0;
    size_t n = 0;
    const char *name;
    const void *val;
    size_t size;
    while (n < UPSTREAM_MAX_HEADERS && rd_kafka_header_get_all(hdrs, n, &name, &val, &size) == RD_KAFKA_RESP_ERR_NO_ERROR) {
        u->headers[n].name = (proto_bytes){name, strlen(name)};
        u->headers[n].value = (proto_bytes){val, val ? size : 0};
        n++;
    }
    return n;
}

static void kafka_cb(evutil_socket_t fd, short what, void *arg) {
    upstream *u = arg;
    char buf[64];
    while (read(fd, buf, sizeof(buf)) > 0) {}
    /* The pipe is written only when the queue turns non-empty: drain it all,
     * but yield to the loop after a bounded amount so clients get served. */
    for (int rounds = 0; rounds < 16; rounds++) {
        ssize_t n = rd_kafka_consume_batch_queue(u->q, 0, u->batch, UPSTREAM_BATCH);
        if (n <= 0) return;
        for (ssize_t i = 0; i < n; i++) {
            rd_kafka_message_t *m = u->batch[i];
            if (m->err == RD_KAFKA_RESP_ERR__AUTO_OFFSET_RESET && m->rkt) {
                log_warn("consumer: %s/%d: offset %lld is outside the log: %s", rd_kafka_topic_name(m->rkt),
                         (int)m->partition, (long long)m->offset, rd_kafka_message_errstr(m));
                job *j = job_new(JOB_RESET, rd_kafka_topic_name(m->rkt), m->partition);
                j->offset = j->from = m->offset;
                j->gen = feed_partition_gen(u->b->feeds, j->topic, j->partition);
                job_push(u, j);
            } else if (m->err) {
                if (m->err != RD_KAFKA_RESP_ERR__PARTITION_EOF)
                    log_warn("consumer: %s", rd_kafka_message_errstr(m));
            } else {
                int64_t ts = rd_kafka_message_timestamp(m, NULL);
                size_t hn = message_headers(u, m);
                feed_on_record(u->b->feeds, rd_kafka_topic_name(m->rkt), m->partition, m->offset, ts, m->key,
                               m->key_len, m->payload, m->len, hn ? u->headers : NULL, hn);
            }
            rd_kafka_message_destroy(m);
        }
        feed_flush_batch(u->b->feeds);
        if (n < UPSTREAM_BATCH) return;
    }
    /* Still more: come back after other events had their turn. */
    event_active(u->kafka_ev, EV_READ, 0);
}

/* --------------------------------------------------------------- set up */

upstream *upstream_new(broker *b, char *errstr, size_t errlen) {
    upstream *u = calloc(1, sizeof(*u));
    if (!u) {
        snprintf(errstr, errlen, "out of memory");
        return NULL;
    }
    u->b = b;
    u->kafka_pipe[0] = u->kafka_pipe[1] = u->answer_pipe[0] = u->answer_pipe[1] = -1;
    pthread_mutex_init(&u->lock, NULL);
    pthread_cond_init(&u->cond, NULL);
    rd_kafka_conf_t *conf = kafka_conf_new(b, errstr, errlen);
    if (!conf) goto err;
    /* No group, no commits: partitions are assigned by hand and a feed
     * starts at the log end. The fetch settings favour latency: a fetch
     * returns as soon as there is one byte, or after 10 ms. The local
     * queue stays at librdkafka's default depth: at 10000 fetching stalled
     * under load and records came in bursts (tests/bench/RESULTS.md). */
    char group[200];
    /* librdkafka routes assigned partitions through a consumer queue only
     * when a group is configured; the group is never joined (no subscribe)
     * and never committed to. */
    snprintf(group, sizeof(group), "subway-%s", b->node_id);
    if (kafka_conf_set(conf, "group.id", group, errstr, errlen) < 0 ||
        kafka_conf_set(conf, "enable.auto.commit", "false", errstr, errlen) < 0 ||
        kafka_conf_set(conf, "enable.auto.offset.store", "false", errstr, errlen) < 0 ||
        kafka_conf_set(conf, "enable.partition.eof", "false", errstr, errlen) < 0 ||
        /* error: a position outside the log is reported to us, so the
         * records lost to it can be counted and told to the clients. */
        kafka_conf_set(conf, "auto.offset.reset", "error", errstr, errlen) < 0 ||
        kafka_conf_set(conf, "fetch.wait.max.ms", "10", errstr, errlen) < 0 ||
        kafka_conf_set(conf, "fetch.min.bytes", "1", errstr, errlen) < 0 ||
        kafka_conf_set(conf, "fetch.error.backoff.ms", "50", errstr, errlen) < 0 ||
        kafka_conf_set(conf, "queued.min.messages", "100000", errstr, errlen) < 0 ||
        kafka_conf_set(conf, "allow.auto.create.topics", b->cfg->dev ? "true" : "false", errstr, errlen) < 0 ||
        kafka_conf_apply_user(b, conf, errstr, errlen) < 0) {
        rd_kafka_conf_destroy(conf);
        goto err;
    }
    u->rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, errstr, errlen);
    if (!u->rk) {
        rd_kafka_conf_destroy(conf);
        goto err;
    }
    rd_kafka_poll_set_consumer(u->rk);
    if (!(u->q = rd_kafka_queue_get_consumer(u->rk))) {
        snprintf(errstr, errlen, "the Kafka consumer has no queue");
        goto err;
    }
    if (pipe2(u->kafka_pipe, O_NONBLOCK | O_CLOEXEC) < 0 || pipe2(u->answer_pipe, O_NONBLOCK | O_CLOEXEC) < 0) {
        snprintf(errstr, errlen, "pipe: %s", strerror(errno));
        goto err;
    }
    rd_kafka_queue_io_event_enable(u->q, u->kafka_pipe[1], "1", 1);
    u->kafka_ev = event_new(b->base, u->kafka_pipe[0], EV_READ | EV_PERSIST, kafka_cb, u);
    u->answer_ev = event_new(b->base, u->answer_pipe[0], EV_READ | EV_PERSIST, answer_cb, u);
    if (!u->kafka_ev || !u->answer_ev || event_add(u->kafka_ev, NULL) < 0 || event_add(u->answer_ev, NULL) < 0) {
        snprintf(errstr, errlen, "cannot watch the consumer's queue");
        goto err;
    }
    /* The lookup thread blocks on a pipe whose reader is the loop: keep
     * its writes blocking so no answer is lost. */
    fcntl(u->answer_pipe[1], F_SETFL, 0);
    if (pthread_create(&u->thread, NULL, lookup_thread, u) != 0) {
        snprintf(errstr, errlen, "cannot start the lookup thread");
        goto err;
    }
    u->thread_started = 1;
    return u;
err:
    upstream_free(u);
    return NULL;
}

void upstream_free(upstream *u) {
    if (!u) return;
    if (u->thread_started) {
        pthread_mutex_lock(&u->lock);
        u->stopping = 1;
        pthread_cond_signal(&u->cond);
        pthread_mutex_unlock(&u->lock);
        /* An answer in flight may wait on the pipe: keep reading it. */
        fcntl(u->answer_pipe[1], F_SETFL, O_NONBLOCK);
        pthread_join(u->thread, NULL);
    }
    for (job *j = u->jobs_head, *next; j; j = next) {
        next = j->next;
        free(j);
    }
    job *j;
    while (u->answer_pipe[0] >= 0 && read(u->answer_pipe[0], &j, sizeof(j)) == sizeof(j)) free(j);
    if (u->kafka_ev) event_free(u->kafka_ev);
    if (u->answer_ev) event_free(u->answer_ev);
    if (u->q) {
        rd_kafka_queue_io_event_enable(u->q, -1, NULL, 0);
        rd_kafka_queue_destroy(u->q);
    }
    if (u->rk) {
        /* The group is never joined and nothing is committed: skip the
         * close handshake, which waits on the group coordinator and could
         * hold a stopping node for many seconds. */
        rd_kafka_assign(u->rk, NULL);
        rd_kafka_destroy_flags(u->rk, RD_KAFKA_DESTROY_F_NO_CONSUMER_CLOSE);
    }
    for (int i = 0; i < 2; i++) {
        if (u->kafka_pipe[i] >= 0) close(u->kafka_pipe[i]);
        if (u->answer_pipe[i] >= 0) close(u->answer_pipe[i]);
    }
    pthread_mutex_destroy(&u->lock);
    pthread_cond_destroy(&u->cond);
    free(u);
}
