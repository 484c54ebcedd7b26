/* upstream.c -- a Kafka consumer of the node (live feeds, or catch-ups): hand-assigned partitions, lookups off the loop, records out through events. */
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

#include "broker/dev.h"
#include "broker/kafka_bridge.h"
#include "broker/kafka_conf.h"
#include "broker/log.h"
#include "broker/xmalloc.h"

#define UPSTREAM_BATCH 1024       /* records taken from the queue per call */
#define UPSTREAM_HISTORY_BATCH 256 /* catch-ups: per loop turn */
#define UPSTREAM_MAX_HEADERS 10000 /* PROTOCOL.md's limit per MESSAGE; beyond it headers are cut, counted and logged */
#define LOOKUP_TIMEOUT_MS 5000
#define PROBE_TIMEOUT_MS 2000     /* a Kafka that answers no metadata request this long is down */
#define LOOKUP_BACKOFF_MS 50      /* first wait before retrying a lookup; doubles up to 1 s */

/* Work the loop cannot do without blocking, done by a worker thread and
 * answered back through a pipe. Lookups (metadata, offsets) and Admin
 * operations (create, delete topic) have a worker each, so a SUBSCRIBE's
 * lookup never waits behind a topic deletion. */
typedef enum job_kind { JOB_TOPIC, JOB_START, JOB_RESET, JOB_SEEK, JOB_CREATE, JOB_DELETE, JOB_PROBE } job_kind;

typedef struct job {
    struct job *next;
    job_kind kind;
    char topic[256];
    int32_t partition;
    /* answer */
    int32_t partition_cnt;        /* JOB_TOPIC, JOB_CREATE */
    int64_t offset;               /* JOB_START: log end; JOB_RESET: where to resume */
    int64_t lost;                 /* JOB_RESET: records gone before they were read */
    int64_t from;                 /* JOB_RESET: the position lost */
    uint32_t tag;                 /* JOB_RESET, JOB_SEEK: the caller's */
    upstream_seek where;          /* JOB_SEEK */
    int64_t arg;                  /* JOB_SEEK */
    proto_err code;
    char errstr[512];             /* empty when fine */
} job;

typedef struct worker {
    upstream *u;
    pthread_t thread;
    int started;
    pthread_mutex_t lock;
    pthread_cond_t cond;
    job *head, *tail;             /* under lock */
    int stopping;                 /* under lock */
} worker;

struct upstream {
    broker *b;
    upstream_kind kind;
    upstream_events ev;
    rd_kafka_t *rk;
    rd_kafka_queue_t *q;
    kafka_bridge *bridge;         /* records and errors of q */
    int answer_pipe[2];           /* the workers write job pointers here */
    struct event *answer_ev;
    worker lookup;                /* JOB_TOPIC, JOB_START, JOB_RESET */
    worker admin;                 /* JOB_CREATE, JOB_DELETE, JOB_PROBE */
    rd_kafka_message_t *batch[UPSTREAM_BATCH];
    proto_header *headers;        /* grown to the most headers a record had */
    size_t headers_cap;
};

static void job_push(worker *w, job *j);

/* ------------------------------------------------------------ Kafka calls */

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

/* Fills j with the topic's partition count, or an error. */
static void topic_answer(job *j, rd_kafka_resp_err_t e, const struct rd_kafka_metadata_topic *mt) {
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
}

/* Lookup worker. Returns 0 when j is answered, 1 when it moved to the
 * admin worker (a free topic to create). */
static int job_topic(upstream *u, job *j) {
    if (u->b->dev) dev_kafka_ensure_topic(u->b->dev, j->topic);
    /* A request naming the topic may create it on brokers (and librdkafka's
     * mock) that auto-create topics; listing every topic never does. */
    const struct rd_kafka_metadata *md = NULL;
    const struct rd_kafka_metadata_topic *mt = NULL;
    rd_kafka_resp_err_t e = find_topic(u, j->topic, &md, &mt);
    if (!e && !mt && config_is_free_topic(u->b->cfg, j->topic)) {
        rd_kafka_metadata_destroy(md);
        j->kind = JOB_CREATE;
        job_push(&u->admin, j);
        return 1;
    }
    topic_answer(j, e, mt);
    if (md) rd_kafka_metadata_destroy(md);
    return 0;
}

/* Admin worker: creates a free topic, waits for the metadata to show it,
 * and answers as a topic lookup. */
static void job_create(upstream *u, job *j) {
    char why[256];
    rd_kafka_resp_err_t ce = admin_topic(u, j->topic, 1, why, sizeof(why));
    j->kind = JOB_TOPIC;
    if (ce && ce != RD_KAFKA_RESP_ERR_TOPIC_ALREADY_EXISTS) {
        j->code = PROTO_E_KAFKA;
        snprintf(j->errstr, sizeof(j->errstr), "creating free topic %.249s: %.200s", j->topic, why);
        return;
    }
    if (!ce) log_info("created free topic %s", j->topic);
    const struct rd_kafka_metadata *md = NULL;
    const struct rd_kafka_metadata_topic *mt = NULL;
    rd_kafka_resp_err_t e = find_topic(u, j->topic, &md, &mt);
    /* Metadata catches up with a new topic shortly: wait for it. */
    for (int i = 0; i < 50 && !e && (!mt || mt->err || mt->partition_cnt == 0); i++) {
        rd_kafka_metadata_destroy(md);
        struct timespec ts = {0, 100 * 1000000};
        nanosleep(&ts, NULL);   /* a worker thread, never the loop */
        e = find_topic(u, j->topic, &md, &mt);
    }
    topic_answer(j, e, mt);
    if (md) rd_kafka_metadata_destroy(md);
}

/* Any broker answering a metadata request (of the topics this client
 * knows, which may be none) means Kafka is reachable. */
static void job_probe(upstream *u, job *j) {
    const struct rd_kafka_metadata *md = NULL;
    rd_kafka_resp_err_t e = rd_kafka_metadata(u->rk, 0, NULL, &md, PROBE_TIMEOUT_MS);
    if (e)
        snprintf(j->errstr, sizeof(j->errstr), "no metadata answer in %d ms: %s", PROBE_TIMEOUT_MS,
                 rd_kafka_err2str(e));
    else if (md->broker_cnt == 0)
        snprintf(j->errstr, sizeof(j->errstr), "metadata lists no broker");
    if (md) rd_kafka_metadata_destroy(md);
}

static void job_delete(upstream *u, job *j) {
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

/* The offset j->where names, in j->offset. */
static void job_seek(upstream *u, job *j) {
    int64_t lo, hi;
    rd_kafka_resp_err_t e = watermarks(u, j->topic, j->partition, &lo, &hi);
    if (e) {
        snprintf(j->errstr, sizeof(j->errstr), "offsets of %.249s/%d: %s", j->topic, (int)j->partition,
                 rd_kafka_err2str(e));
        return;
    }
    switch (j->where) {
    case UPSTREAM_SEEK_END:
        j->offset = hi;
        return;
    case UPSTREAM_SEEK_BEGINNING:
        j->offset = lo;
        return;
    case UPSTREAM_SEEK_LAST:
        j->offset = hi - lo > j->arg ? hi - j->arg : lo;
        return;
    case UPSTREAM_SEEK_TIME:
        break;
    }
    rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(1);
    rd_kafka_topic_partition_list_add(l, j->topic, j->partition)->offset = j->arg;
    e = rd_kafka_offsets_for_times(u->rk, l, LOOKUP_TIMEOUT_MS);
    if (!e) e = l->elems[0].err;
    if (e)
        snprintf(j->errstr, sizeof(j->errstr), "offset for time %lld in %.249s/%d: %s", (long long)j->arg, j->topic,
                 (int)j->partition, rd_kafka_err2str(e));
    else
        j->offset = l->elems[0].offset >= 0 ? l->elems[0].offset : hi;   /* none that late: the log end */
    rd_kafka_topic_partition_list_destroy(l);
}

/* ---------------------------------------------------------------- workers */

static void *worker_main(void *arg) {
    worker *w = arg;
    upstream *u = w->u;
    for (;;) {
        pthread_mutex_lock(&w->lock);
        while (!w->head && !w->stopping) pthread_cond_wait(&w->cond, &w->lock);
        if (w->stopping) {
            pthread_mutex_unlock(&w->lock);
            return NULL;
        }
        job *j = w->head;
        w->head = j->next;
        if (!w->head) w->tail = NULL;
        pthread_mutex_unlock(&w->lock);
        switch (j->kind) {
        case JOB_TOPIC:
            if (job_topic(u, j)) continue;   /* handed to the admin worker */
            break;
        case JOB_START:
            job_start(u, j);
            break;
        case JOB_RESET:
            job_reset(u, j);
            break;
        case JOB_SEEK:
            job_seek(u, j);
            break;
        case JOB_CREATE:
            job_create(u, j);
            break;
        case JOB_DELETE:
            job_delete(u, j);
            break;
        case JOB_PROBE:
            job_probe(u, j);
            break;
        }
        /* A pointer is written atomically to a pipe (< PIPE_BUF). */
        if (write(u->answer_pipe[1], &j, sizeof(j)) != sizeof(j)) {
            log_error("upstream worker: cannot answer: %s", strerror(errno));
            free(j);
        }
    }
}

static int worker_start(worker *w, upstream *u) {
    w->u = u;
    if (pthread_create(&w->thread, NULL, worker_main, w) != 0) return -1;
    w->started = 1;
    return 0;
}

static void worker_stop(worker *w) {
    if (w->started) {
        pthread_mutex_lock(&w->lock);
        w->stopping = 1;
        pthread_cond_signal(&w->cond);
        pthread_mutex_unlock(&w->lock);
        pthread_join(w->thread, NULL);
        w->started = 0;
    }
    for (job *j = w->head, *next; j; j = next) {
        next = j->next;
        free(j);
    }
    w->head = w->tail = NULL;
}

static void job_push(worker *w, job *j) {
    j->next = NULL;
    pthread_mutex_lock(&w->lock);
    if (w->tail)
        w->tail->next = j;
    else
        w->head = j;
    w->tail = j;
    pthread_cond_signal(&w->cond);
    pthread_mutex_unlock(&w->lock);
}

static job *job_new(job_kind kind, const char *topic_name, int32_t partition) {
    job *j = xcalloc(1, sizeof(*j));
    j->kind = kind;
    snprintf(j->topic, sizeof(j->topic), "%s", topic_name);
    j->partition = partition;
    return j;
}

/* The loop's end of the answer pipe. */
static void answer_cb(evutil_socket_t fd, short what, void *arg) {
    upstream *u = arg;
    const upstream_events *ev = &u->ev;
    job *j;
    while (read(fd, &j, sizeof(j)) == sizeof(j)) {
        const char *es = j->errstr[0] ? j->errstr : NULL;
        if (j->kind == JOB_TOPIC && ev->topic)
            ev->topic(ev->cb_data, j->topic, j->partition_cnt, j->code, es);
        else if (j->kind == JOB_START && ev->start)
            ev->start(ev->cb_data, j->topic, j->partition, j->offset, es);
        else if (j->kind == JOB_RESET)
            ev->reset(ev->cb_data, j->topic, j->partition, j->tag, j->from, j->offset, j->lost);
        else if (j->kind == JOB_PROBE && ev->probe)
            ev->probe(ev->cb_data, es);
        else if (j->kind == JOB_SEEK && ev->seek)
            ev->seek(ev->cb_data, j->topic, j->partition, j->tag, j->offset, es);
        free(j);
    }
}

void upstream_resolve_topic(upstream *u, const char *topic_name) {
    job_push(&u->lookup, job_new(JOB_TOPIC, topic_name, -1));
}

size_t upstream_lookups_queued(upstream *u) {
    size_t n = 0;
    pthread_mutex_lock(&u->lookup.lock);
    for (job *j = u->lookup.head; j; j = j->next) n++;
    pthread_mutex_unlock(&u->lookup.lock);
    return n;
}

void upstream_cancel_topic(upstream *u, const char *topic_name) {
    worker *w = &u->lookup;
    pthread_mutex_lock(&w->lock);
    job *prev = NULL;
    for (job *j = w->head, *next; j; j = next) {
        next = j->next;
        if (j->kind == JOB_TOPIC && strcmp(j->topic, topic_name) == 0) {
            if (prev)
                prev->next = next;
            else
                w->head = next;
            if (w->tail == j) w->tail = prev;
            free(j);
            continue;
        }
        prev = j;
    }
    pthread_mutex_unlock(&w->lock);
}

void upstream_query_start(upstream *u, const char *topic_name, int32_t partition) {
    job_push(&u->lookup, job_new(JOB_START, topic_name, partition));
}

void upstream_query_reset(upstream *u, const char *topic_name, int32_t partition, int64_t from, uint32_t tag) {
    job *j = job_new(JOB_RESET, topic_name, partition);
    j->offset = j->from = from;
    j->tag = tag;
    job_push(&u->lookup, j);
}

void upstream_query_seek(upstream *u, const char *topic_name, int32_t partition, upstream_seek where, int64_t arg,
                         uint32_t tag) {
    job *j = job_new(JOB_SEEK, topic_name, partition);
    j->where = where;
    j->arg = arg;
    j->tag = tag;
    job_push(&u->lookup, j);
}

void upstream_probe(upstream *u) {
    job_push(&u->admin, job_new(JOB_PROBE, "", -1));
}

void upstream_delete_topic(upstream *u, const char *topic_name) {
    job_push(&u->admin, job_new(JOB_DELETE, topic_name, -1));
}

/* ------------------------------------------------------------ assignment */

/* librdkafka 2.0.2 (Debian's) leaks a partition of a topic deleted after
 * it was unassigned, and its rd_kafka_destroy() then never returns (issue
 * 13). An unassign stops the fetcher, which unhooks the partition's fetch
 * queue from the consumer queue, and then queues a resume whose version
 * bump puts a BARRIER op, holding a reference to the partition, on that
 * unhooked queue, where nothing reads it. While the topic exists the
 * partition stays in its topic and rd_kafka_destroy() purges the queue;
 * once the metadata shows the topic gone ("partition count changed from 3
 * to 0") the partition leaves its topic, nothing can reach it, and its
 * reference to its leader broker keeps that broker's thread in "Handle is
 * terminating" forever, which rd_kafka_destroy() joins. librdkafka 2.1.0
 * purges that queue itself (confluentinc/librdkafka#4187, bd8f2a6; again
 * in 2.6.1, #4724). Here: take a handle on each partition's fetch queue
 * before unassigning it, and read the queue empty once the stop and the
 * resume are served, which frees the barrier. */
#define DRAIN_BATCH 64

/* The fetch queues of partitions still assigned, before unassigning them:
 * taking one after would mark the partition desired again. */
static rd_kafka_queue_t *partition_queue(upstream *u, const char *topic_name, int32_t partition) {
    return rd_kafka_queue_get_partition(u->rk, topic_name, partition);
}

/* After the unassign that stopped them: reads qs[0..n) empty and releases
 * them. Any record still there belongs to a partition no longer read. */
static void drain_stopped(upstream *u, rd_kafka_queue_t **qs, size_t n) {
    if (n == 0) return;
    /* A round trip through librdkafka's main thread, whose op queue is
     * served in order: the stops and resumes the unassign queued ahead of
     * it have been served, so each queue is unhooked and holds its barrier. */
    rd_kafka_topic_partition_list_t *cur = NULL;
    if (rd_kafka_assignment(u->rk, &cur) == RD_KAFKA_RESP_ERR_NO_ERROR && cur)
        rd_kafka_topic_partition_list_destroy(cur);
    rd_kafka_message_t *m[DRAIN_BATCH];
    for (size_t i = 0; i < n; i++) {
        if (!qs[i]) continue;
        ssize_t k;
        while ((k = rd_kafka_consume_batch_queue(qs[i], 0, m, DRAIN_BATCH)) > 0)
            for (ssize_t j = 0; j < k; j++) rd_kafka_message_destroy(m[j]);
        rd_kafka_queue_destroy(qs[i]);
    }
}

static int assign_change(upstream *u, const char *topic_name, int32_t partition, int64_t offset, int add) {
    rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(1);
    rd_kafka_topic_partition_list_add(l, topic_name, partition)->offset = offset;
    rd_kafka_queue_t *fq = add ? NULL : partition_queue(u, topic_name, partition);
    rd_kafka_error_t *e = add ? rd_kafka_incremental_assign(u->rk, l) : rd_kafka_incremental_unassign(u->rk, l);
    rd_kafka_topic_partition_list_destroy(l);
    if (e) {
        if (fq) rd_kafka_queue_destroy(fq);
        log_error("%s %s/%d: %s", add ? "assign" : "unassign", topic_name, (int)partition, rd_kafka_error_string(e));
        rd_kafka_error_destroy(e);
        return -1;
    }
    drain_stopped(u, &fq, fq ? 1 : 0);
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
    size_t cnt = rd_kafka_header_cnt(hdrs);
    if (cnt > UPSTREAM_MAX_HEADERS) {
        if (u->b->ctr.headers_cut++ % 1000 == 0)
            log_warn("a record of %s/%d at offset %lld has %zu headers: forwarded with the first %d "
                     "(the protocol's limit; /stats counters.headers_cut)", rd_kafka_topic_name(m->rkt),
                     (int)m->partition, (long long)m->offset, cnt, UPSTREAM_MAX_HEADERS);
        cnt = UPSTREAM_MAX_HEADERS;
    }
    if (cnt > u->headers_cap) {
        u->headers = xreallocarray(u->headers, cnt, sizeof(*u->headers));
        u->headers_cap = cnt;
    }
    while (n < cnt && rd_kafka_header_get_all(hdrs, n, &name, &val, &size) == RD_KAFKA_RESP_ERR_NO_ERROR) {
        u->headers[n].name = (proto_bytes){name, strlen(name)};
        u->headers[n].value = (proto_bytes){val, val ? size : 0};
        n++;
    }
    return n;
}

/* The consumer's queue turned non-empty: hand out what it holds. */
static void consume(void *arg) {
    upstream *u = arg;
    const upstream_events *ev = &u->ev;
    /* Drain it all, but yield to the loop after a bounded amount so
     * clients get served; catch-ups take one small bite per turn, so live
     * records never wait long behind history. */
    int max_rounds = u->kind == UPSTREAM_HISTORY ? 1 : 16;
    size_t bite = u->kind == UPSTREAM_HISTORY ? UPSTREAM_HISTORY_BATCH : UPSTREAM_BATCH;
    for (int rounds = 0; rounds < max_rounds; rounds++) {
        ssize_t n = rd_kafka_consume_batch_queue(u->q, 0, u->batch, bite);
        if (n <= 0) return;
        for (ssize_t i = 0; i < n; i++) {
            rd_kafka_message_t *m = u->batch[i];
            if (m->err == RD_KAFKA_RESP_ERR__AUTO_OFFSET_RESET && m->rkt) {
                log_warn("consumer: %s/%d: offset %lld is outside the log: %s", rd_kafka_topic_name(m->rkt),
                         (int)m->partition, (long long)m->offset, rd_kafka_message_errstr(m));
                ev->out_of_range(ev->cb_data, rd_kafka_topic_name(m->rkt), m->partition, m->offset);
            } else if (m->err == RD_KAFKA_RESP_ERR__PARTITION_EOF) {
                if (ev->eof && m->rkt) ev->eof(ev->cb_data, rd_kafka_topic_name(m->rkt), m->partition, m->offset);
            } else if (m->err) {
                log_warn("consumer%s: %s", u->kind == UPSTREAM_HISTORY ? " (catch-ups)" : "",
                         rd_kafka_message_errstr(m));
            } else {
                size_t hn = message_headers(u, m);
                upstream_record r = {
                    .topic = rd_kafka_topic_name(m->rkt), .partition = m->partition, .offset = m->offset,
                    .ts_ms = rd_kafka_message_timestamp(m, NULL), .key = m->key, .key_len = m->key_len,
                    .value = m->payload, .value_len = m->len, .headers = hn ? u->headers : NULL, .header_cnt = hn,
                };
                ev->record(ev->cb_data, &r);
            }
            rd_kafka_message_destroy(m);
        }
        ev->batch_end(ev->cb_data);
        if ((size_t)n < bite) return;
    }
    /* Still more: come back after other events had their turn. */
    kafka_bridge_again(u->bridge);
}

/* --------------------------------------------------------------- set up */

upstream *upstream_new(broker *b, upstream_kind kind, const upstream_events *ev, char *errstr, size_t errlen) {
    upstream *u = xcalloc(1, sizeof(*u));
    u->b = b;
    u->kind = kind;
    int history = kind == UPSTREAM_HISTORY;
    u->ev = *ev;
    u->answer_pipe[0] = u->answer_pipe[1] = -1;
    pthread_mutex_init(&u->lookup.lock, NULL);
    pthread_cond_init(&u->lookup.cond, NULL);
    pthread_mutex_init(&u->admin.lock, NULL);
    pthread_cond_init(&u->admin.cond, NULL);
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
    snprintf(group, sizeof(group), "subway-%s%s", b->node_id, history ? "-catchup" : "");
    if (kafka_conf_set(conf, "group.id", group, errstr, errlen) < 0 ||
        kafka_conf_set(conf, "enable.auto.commit", "false", errstr, errlen) < 0 ||
        kafka_conf_set(conf, "enable.auto.offset.store", "false", errstr, errlen) < 0 ||
        /* Catch-ups join the live feed once they reach the log end. */
        kafka_conf_set(conf, "enable.partition.eof", history ? "true" : "false", errstr, errlen) < 0 ||
        /* error: a position outside the log is reported to us, so the
         * records lost to it can be counted and told to the clients. */
        kafka_conf_set(conf, "auto.offset.reset", "error", errstr, errlen) < 0 ||
        kafka_conf_set(conf, "fetch.wait.max.ms", "10", errstr, errlen) < 0 ||
        kafka_conf_set(conf, "fetch.min.bytes", "1", errstr, errlen) < 0 ||
        kafka_conf_set(conf, "fetch.error.backoff.ms", "50", errstr, errlen) < 0 ||
        kafka_conf_set(conf, "queued.min.messages", "100000", errstr, errlen) < 0 ||
        /* Catch-ups: at most 16 MB prefetched per partition read. */
        (history && kafka_conf_set(conf, "queued.max.messages.kbytes", "16384", errstr, errlen) < 0) ||
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
    if (!(u->bridge = kafka_bridge_new(b->base, u->q, consume, u, errstr, errlen))) goto err;
    /* History runs when nothing else is pending in a loop turn: a catch-up
     * slows down under load rather than delay a live record. */
    if (history && kafka_bridge_set_priority(u->bridge, BROKER_PRIO_BACKGROUND) < 0) {
        snprintf(errstr, errlen, "cannot lower the catch-up consumer's priority");
        goto err;
    }
    if (pipe2(u->answer_pipe, O_NONBLOCK | O_CLOEXEC) < 0) {
        snprintf(errstr, errlen, "pipe: %s", strerror(errno));
        goto err;
    }
    u->answer_ev = event_new(b->base, u->answer_pipe[0], EV_READ | EV_PERSIST, answer_cb, u);
    if (!u->answer_ev || event_add(u->answer_ev, NULL) < 0) {
        snprintf(errstr, errlen, "cannot watch the lookup answers");
        goto err;
    }
    /* The workers block on a pipe whose reader is the loop: keep their
     * writes blocking so no answer is lost. */
    fcntl(u->answer_pipe[1], F_SETFL, 0);
    if (worker_start(&u->lookup, u) < 0 || worker_start(&u->admin, u) < 0) {
        snprintf(errstr, errlen, "cannot start the lookup threads");
        goto err;
    }
    return u;
err:
    upstream_free(u);
    return NULL;
}

/* Unassigns what is still assigned, freeing the barriers as above (a
 * partition whose topic was deleted while assigned waits in its topic's
 * desired list, which the unassign empties). */
static void unassign_all(upstream *u) {
    rd_kafka_topic_partition_list_t *cur = NULL;
    if (rd_kafka_assignment(u->rk, &cur) != RD_KAFKA_RESP_ERR_NO_ERROR || !cur) {
        rd_kafka_assign(u->rk, NULL);
        return;
    }
    rd_kafka_queue_t **qs = xcalloc(cur->cnt ? (size_t)cur->cnt : 1, sizeof(*qs));
    for (int i = 0; i < cur->cnt; i++) qs[i] = partition_queue(u, cur->elems[i].topic, cur->elems[i].partition);
    rd_kafka_assign(u->rk, NULL);
    drain_stopped(u, qs, (size_t)cur->cnt);
    free(qs);
    rd_kafka_topic_partition_list_destroy(cur);
}

void upstream_free(upstream *u) {
    if (!u) return;
    /* An answer in flight may wait on the pipe: make its write fail. */
    if (u->answer_pipe[1] >= 0) fcntl(u->answer_pipe[1], F_SETFL, O_NONBLOCK);
    worker_stop(&u->lookup);
    worker_stop(&u->admin);
    job *j;
    while (u->answer_pipe[0] >= 0 && read(u->answer_pipe[0], &j, sizeof(j)) == sizeof(j)) free(j);
    if (u->answer_ev) event_free(u->answer_ev);
    kafka_bridge_free(u->bridge);
    if (u->q) rd_kafka_queue_destroy(u->q);
    if (u->rk) {
        /* The group is never joined and nothing is committed: skip the
         * close handshake, which waits on the group coordinator and could
         * hold a stopping node for many seconds. */
        unassign_all(u);
        rd_kafka_destroy_flags(u->rk, RD_KAFKA_DESTROY_F_NO_CONSUMER_CLOSE);
    }
    for (int i = 0; i < 2; i++)
        if (u->answer_pipe[i] >= 0) close(u->answer_pipe[i]);
    pthread_mutex_destroy(&u->lookup.lock);
    pthread_cond_destroy(&u->lookup.cond);
    pthread_mutex_destroy(&u->admin.lock);
    pthread_cond_destroy(&u->admin.cond);
    free(u->headers);
    free(u);
}
